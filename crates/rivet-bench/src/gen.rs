//! Deterministic data: keys, values and item order, identical in Rust and in the Go peer
//! (`tests/interop/peer/bench.go` implements the same functions bit for bit).
//!
//! Every datum is a pure function of an item index, so any phase can regenerate any key
//! without replaying a generator: reads hit existing keys, shards for reader threads are
//! index ranges, and the removal phase removes items `0..total/2`.
//!
//! * [`mix64`] is the SplitMix64 finaliser (a bijection on `u64`).
//! * Item `i`'s key is 24 bytes: `mix64(KEY_SEED ^ (4i + j))` little-endian for `j = 0, 1, 2`.
//! * Item `i`'s value is 150 bytes: the first 150 bytes of `mix64(VALUE_SEED ^ (32i + j))`
//!   little-endian for `j = 0..19`.
//! * Sorted item `i`'s key is `i` big-endian (8 bytes) followed by the first 16 bytes of the
//!   random key, so keys ascend with `i`; its value is the random value of item `i`.
//! * [`Seq`] is a plain SplitMix64 stream used for random choices (which ids to read).

/// Length of a workload-1 key (redb's `lmdb_benchmark`: 24 bytes).
pub const KEY_LEN: usize = 24;
/// Length of a workload-1 value (redb's `lmdb_benchmark`: 150 bytes).
pub const VALUE_LEN: usize = 150;

/// Seed of the key function.
pub const KEY_SEED: u64 = 0x5249_5645_545f_4b45; // "RIVET_KE"
/// Seed of the value function.
pub const VALUE_SEED: u64 = 0x5249_5645_545f_5641; // "RIVET_VA"

/// The SplitMix64 output function: a fast, well-mixed bijection.
#[inline]
pub fn mix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Writes item `i`'s random key into `out`.
#[inline]
pub fn key(i: u64, out: &mut [u8; KEY_LEN]) {
    for j in 0..3u64 {
        let w = mix64(KEY_SEED ^ (i.wrapping_mul(4) + j));
        out[j as usize * 8..j as usize * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
}

/// Writes item `i`'s sorted key into `out` (`i` big-endian, then 16 random bytes).
#[inline]
pub fn sorted_key(i: u64, out: &mut [u8; KEY_LEN]) {
    out[..8].copy_from_slice(&i.to_be_bytes());
    for j in 0..2u64 {
        let w = mix64(KEY_SEED ^ (i.wrapping_mul(4) + j));
        out[8 + j as usize * 8..16 + j as usize * 8].copy_from_slice(&w.to_le_bytes());
    }
}

/// Writes item `i`'s value into `out`.
#[inline]
pub fn value(i: u64, out: &mut [u8; VALUE_LEN]) {
    let mut buf = [0u8; 152];
    for j in 0..19u64 {
        let w = mix64(VALUE_SEED ^ (i.wrapping_mul(32) + j));
        buf[j as usize * 8..j as usize * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    out.copy_from_slice(&buf[..VALUE_LEN]);
}

/// The first byte of item `i`'s value, checked by every read.
#[inline]
pub fn value_check_byte(i: u64) -> u8 {
    mix64(VALUE_SEED ^ i.wrapping_mul(32)) as u8
}

/// A SplitMix64 stream for random choices.
#[derive(Debug, Clone)]
pub struct Seq {
    state: u64,
}

impl Seq {
    /// A stream starting from `seed`.
    pub fn new(seed: u64) -> Seq {
        Seq { state: seed }
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`; modulo bias is irrelevant here).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden values shared with the Go peer's `bench.go` (its `-selftest` prints them).
    #[test]
    fn golden() {
        assert_eq!(mix64(0), 0xE220_A839_7B1D_CDAF);
        let mut k = [0u8; KEY_LEN];
        key(7, &mut k);
        let mut v = [0u8; VALUE_LEN];
        value(7, &mut v);
        assert_eq!(v[0], value_check_byte(7));
        sorted_key(7, &mut k);
        assert_eq!(&k[..8], &7u64.to_be_bytes());
        let mut s = Seq::new(1);
        assert_eq!(s.next_u64(), mix64(1));
    }
}
