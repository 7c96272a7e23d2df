//! Shared helpers for the reliability suite (crash simulation, process kills, fuzz replay,
//! stress, locking): a deterministic RNG, an in-memory model of a database, a random
//! workload generator that keeps the model and the database in step, and the "child role"
//! switch that lets a test binary re-run itself as a child process.
//!
//! Every test crate includes this module with `mod reliability_support;` and uses a subset of
//! it, so unused items are expected.
#![allow(dead_code)]

pub mod child;
pub mod fuzz_input;

use std::collections::BTreeMap;

use rivet::{Bucket, Db, Tx};
use sha2::{Digest, Sha256};

/// Whether the long-running ("thorough") modes are requested with `RIVET_THOROUGH=1`.
pub fn thorough() -> bool {
    std::env::var("RIVET_THOROUGH").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A base seed: `RIVET_SEED` when set (to replay a thorough run), else `default`.
pub fn base_seed(default: u64) -> u64 {
    std::env::var("RIVET_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A small, fast, deterministic PRNG (SplitMix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo)
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u32, den: u32) -> bool {
        (self.next_u64() % u64::from(den)) < u64::from(num)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(n);
        v
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// An entry of the model: a value or a sub-bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MEntry {
    Value(Vec<u8>),
    Bucket(MBucket),
}

/// The model of one bucket (the root bucket models the whole database).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MBucket {
    pub seq: u64,
    pub entries: BTreeMap<Vec<u8>, MEntry>,
}

impl MBucket {
    pub fn at(&self, path: &[Vec<u8>]) -> Option<&MBucket> {
        let mut b = self;
        for p in path {
            match b.entries.get(p) {
                Some(MEntry::Bucket(c)) => b = c,
                _ => return None,
            }
        }
        Some(b)
    }

    pub fn at_mut(&mut self, path: &[Vec<u8>]) -> Option<&mut MBucket> {
        let mut b = self;
        for p in path {
            match b.entries.get_mut(p) {
                Some(MEntry::Bucket(c)) => b = c,
                _ => return None,
            }
        }
        Some(b)
    }

    /// Every bucket path below this bucket (not including the empty path of `self`).
    pub fn bucket_paths(&self) -> Vec<Vec<Vec<u8>>> {
        fn walk(b: &MBucket, prefix: &mut Vec<Vec<u8>>, out: &mut Vec<Vec<Vec<u8>>>) {
            for (k, e) in &b.entries {
                if let MEntry::Bucket(c) = e {
                    prefix.push(k.clone());
                    out.push(prefix.clone());
                    walk(c, prefix, out);
                    prefix.pop();
                }
            }
        }
        let mut out = Vec::new();
        walk(self, &mut Vec::new(), &mut out);
        out
    }

    /// Number of plain key/value entries, recursively.
    pub fn key_count(&self) -> usize {
        self.entries
            .values()
            .map(|e| match e {
                MEntry::Value(_) => 1,
                MEntry::Bucket(c) => c.key_count(),
            })
            .sum()
    }

    fn encode(&self, h: &mut Sha256) {
        h.update(self.seq.to_le_bytes());
        h.update((self.entries.len() as u64).to_le_bytes());
        for (k, e) in &self.entries {
            h.update((k.len() as u64).to_le_bytes());
            h.update(k);
            match e {
                MEntry::Value(v) => {
                    h.update([0u8]);
                    h.update((v.len() as u64).to_le_bytes());
                    h.update(v);
                }
                MEntry::Bucket(c) => {
                    h.update([1u8]);
                    c.encode(h);
                }
            }
        }
    }

    /// A digest of the whole content (keys, values, nesting, sequences).
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        self.encode(&mut h);
        h.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// A short human-readable summary for failure messages.
    pub fn summary(&self) -> String {
        format!(
            "{} buckets, {} keys, digest {}",
            self.bucket_paths().len(),
            self.key_count(),
            self.digest()
        )
    }
}

/// Reads a bucket (recursively) into the model representation.
pub fn dump_bucket(b: &Bucket<'_>) -> rivet::Result<MBucket> {
    let mut m = MBucket {
        seq: b.sequence(),
        entries: BTreeMap::new(),
    };
    for e in b.iter() {
        let e = e?;
        if e.is_bucket() {
            let c = b.bucket(e.key())?.ok_or_else(|| {
                rivet::Error::corrupted(0, "iterated sub-bucket cannot be opened")
            })?;
            m.entries
                .insert(e.key().to_vec(), MEntry::Bucket(dump_bucket(&c)?));
        } else {
            m.entries.insert(
                e.key().to_vec(),
                MEntry::Value(e.value().unwrap_or_default().to_vec()),
            );
        }
    }
    Ok(m)
}

/// Reads the whole snapshot of `tx` into the model representation.
pub fn dump(tx: &Tx) -> rivet::Result<MBucket> {
    dump_bucket(&tx.root())
}

/// Reads the latest committed state of `db`.
pub fn dump_db(db: &Db) -> rivet::Result<(u64, MBucket)> {
    let tx = db.begin_read()?;
    Ok((tx.id(), dump(&tx)?))
}

/// One change to the database.
#[derive(Clone, Debug)]
pub enum Op {
    Put {
        path: Vec<Vec<u8>>,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        path: Vec<Vec<u8>>,
        key: Vec<u8>,
    },
    CreateBucket {
        path: Vec<Vec<u8>>,
        name: Vec<u8>,
    },
    DeleteBucket {
        path: Vec<Vec<u8>>,
        name: Vec<u8>,
    },
    NextSequence {
        path: Vec<Vec<u8>>,
    },
}

/// Applies `op` to the model. Ops come from [`gen_ops`], so they are valid for the model.
pub fn apply_model(m: &mut MBucket, op: &Op) {
    match op {
        Op::Put { path, key, value } => {
            let b = m.at_mut(path).expect("bucket exists in model");
            b.entries.insert(key.clone(), MEntry::Value(value.clone()));
        }
        Op::Delete { path, key } => {
            let b = m.at_mut(path).expect("bucket exists in model");
            if let Some(MEntry::Value(_)) = b.entries.get(key) {
                b.entries.remove(key);
            }
        }
        Op::CreateBucket { path, name } => {
            let b = m.at_mut(path).expect("bucket exists in model");
            b.entries
                .insert(name.clone(), MEntry::Bucket(MBucket::default()));
        }
        Op::DeleteBucket { path, name } => {
            let b = m.at_mut(path).expect("bucket exists in model");
            b.entries.remove(name);
        }
        Op::NextSequence { path } => {
            let b = m.at_mut(path).expect("bucket exists in model");
            b.seq = b.seq.wrapping_add(1);
        }
    }
}

/// Opens the bucket at `path` (empty = root) in `tx`.
pub fn open_path<'tx>(tx: &'tx Tx, path: &[Vec<u8>]) -> rivet::Result<Bucket<'tx>> {
    let mut b = tx.root();
    for p in path {
        b = b.bucket(p)?.ok_or(rivet::Error::BucketNotFound)?;
    }
    Ok(b)
}

/// Applies `op` to a write transaction.
pub fn apply_tx(tx: &Tx, op: &Op) -> rivet::Result<()> {
    match op {
        Op::Put { path, key, value } => open_path(tx, path)?.put(key, value),
        Op::Delete { path, key } => open_path(tx, path)?.delete(key).map(|_| ()),
        Op::CreateBucket { path, name } => open_path(tx, path)?.create_bucket(name).map(|_| ()),
        Op::DeleteBucket { path, name } => open_path(tx, path)?.delete_bucket(name),
        Op::NextSequence { path } => open_path(tx, path)?.next_sequence().map(|_| ()),
    }
}

/// Applies every op of a transaction.
pub fn apply_all(tx: &Tx, ops: &[Op]) -> rivet::Result<()> {
    ops.iter().try_for_each(|op| apply_tx(tx, op))
}

/// Shape of the generated data.
#[derive(Clone, Copy, Debug)]
pub struct GenCfg {
    pub page_size: usize,
    /// Keys are `k00000..k{key_space}`.
    pub key_space: usize,
    /// Top-level buckets are `b0..b{top_buckets}`.
    pub top_buckets: usize,
    /// Nested buckets (one level) are `n0..n{nested_buckets}`.
    pub nested_buckets: usize,
}

impl GenCfg {
    pub fn new(page_size: usize) -> GenCfg {
        GenCfg {
            page_size,
            key_space: 400,
            top_buckets: 4,
            nested_buckets: 2,
        }
    }
}

/// How many operations a generated transaction holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxSize {
    Empty,
    Tiny,
    Small,
    Medium,
    Large,
}

impl TxSize {
    /// A random size, weighted towards small transactions.
    pub fn random(rng: &mut Rng) -> TxSize {
        match rng.below(100) {
            0..=2 => TxSize::Empty,
            3..=24 => TxSize::Tiny,
            25..=69 => TxSize::Small,
            70..=91 => TxSize::Medium,
            _ => TxSize::Large,
        }
    }
}

/// Generates the operations of one write transaction, valid against `model`, and returns
/// them together with the model state after them.
pub fn gen_ops(rng: &mut Rng, model: &MBucket, cfg: GenCfg, size: TxSize) -> (Vec<Op>, MBucket) {
    let n = match size {
        TxSize::Empty => 0,
        TxSize::Tiny => 1,
        TxSize::Small => rng.range(2, 9),
        TxSize::Medium => rng.range(20, 61),
        TxSize::Large => rng.range(150, 401),
    };
    let overflow_weight = if size == TxSize::Large { 4 } else { 2 };
    let mut m = model.clone();
    let mut ops = Vec::with_capacity(n);
    for _ in 0..n {
        // Top-level buckets named `_...` are reserved for the tests' own bookkeeping.
        let mut paths = m.bucket_paths();
        paths.retain(|p| !p[0].starts_with(b"_"));
        let roll = rng.below(100);
        let op = if paths.is_empty() || roll < 4 {
            // Create a bucket: top-level or nested one level deep.
            let tops: Vec<_> = paths.iter().filter(|p| p.len() == 1).cloned().collect();
            if !tops.is_empty() && rng.chance(1, 2) {
                let parent = rng.pick(&tops).clone();
                let name = format!("n{}", rng.below(cfg.nested_buckets)).into_bytes();
                if m.at(&parent).unwrap().entries.contains_key(&name) {
                    continue;
                }
                Op::CreateBucket { path: parent, name }
            } else {
                let name = format!("b{}", rng.below(cfg.top_buckets)).into_bytes();
                if m.entries.contains_key(&name) {
                    continue;
                }
                Op::CreateBucket {
                    path: Vec::new(),
                    name,
                }
            }
        } else if roll < 6 {
            // Delete a bucket (rarely: it frees a lot).
            let p = rng.pick(&paths).clone();
            let (name, parent) = p.split_last().unwrap();
            Op::DeleteBucket {
                path: parent.to_vec(),
                name: name.clone(),
            }
        } else if roll < 9 {
            Op::NextSequence {
                path: rng.pick(&paths).clone(),
            }
        } else if roll < 30 {
            let path = rng.pick(&paths).clone();
            let b = m.at(&path).unwrap();
            let keys: Vec<&Vec<u8>> = b
                .entries
                .iter()
                .filter(|(_, e)| matches!(e, MEntry::Value(_)))
                .map(|(k, _)| k)
                .collect();
            let key = if !keys.is_empty() && rng.chance(4, 5) {
                (*rng.pick(&keys)).clone()
            } else {
                format!("k{:05}", rng.below(cfg.key_space)).into_bytes()
            };
            Op::Delete { path, key }
        } else {
            let path = rng.pick(&paths).clone();
            let key = format!("k{:05}", rng.below(cfg.key_space)).into_bytes();
            let r = rng.below(100);
            let len = if r < overflow_weight {
                rng.range(cfg.page_size, 3 * cfg.page_size)
            } else if r < 12 {
                rng.range(100, 600)
            } else {
                rng.below(64)
            };
            Op::Put {
                path,
                key,
                value: rng.bytes(len),
            }
        };
        apply_model(&mut m, &op);
        ops.push(op);
    }
    (ops, m)
}
