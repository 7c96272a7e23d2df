//! The rank index: position queries (rank of an entry, entry at a rank) over the ordered
//! entries of one collection in about a hundred B+tree steps whatever the collection's size,
//! kept beside the entries so that nothing about a collection lives in RAM.
//!
//! It is a deterministic skip list of counts. Every entry has a *level* drawn from a hash of
//! its member (0 with probability 63/64, at least `L` with probability 64^-L, capped at
//! [`LEVELS`]); an entry of level >= `L` is a *boundary* at level `L`. For each level the
//! `rank` bucket holds one record per boundary, and one for the *head* (before every entry):
//!
//! ```text
//! id (8 bytes) | level (1 byte) | 0x01 | order key  ->  count (u64, big-endian)
//! id (8 bytes) | level (1 byte) | 0x00              ->  count of the head
//! ```
//!
//! (The marker byte keeps the head apart from a boundary whose order key is empty: a set may
//! hold the empty string.)
//!
//! where the count is the number of entries from that boundary (inclusive) up to the next
//! boundary of the same level (exclusive). Boundaries are nested (a level-2 boundary is a
//! level-1 boundary), so a rank query walks the few top-level records from the head, then
//! descends: at each level it sums counts until the next boundary would pass the target,
//! and finishes with a walk over at most a few dozen entries. Expected steps: about
//! `32 * LEVELS + n / 64^LEVELS` (n = entries), so 10 thousand and 10 million entries cost
//! about the same.
//!
//! Cost on writes: inserting or removing an entry updates one record per level (one seek and
//! one put each, [`LEVELS`] in all); an entry that is itself a boundary at level `L` (one in
//! 64^L) also walks about 64 records of level `L - 1` to split or merge a span.
//!
//! The level comes from the member only, so a member keeps its level when its score
//! changes. The hash is xxh3 with a fixed seed: it is part of the file format.

use rivet::{Bucket, Cursor, Entry};

use super::{DbView, Result};

/// Number of indexed levels above the entries themselves.
pub const LEVELS: u8 = 4;
/// log2 of the expected number of level `L - 1` records per level `L` span.
const FANOUT_BITS: u32 = 6;
/// Seed of the level hash (format constant).
const LEVEL_SEED: u64 = 0x7269_7665_742d_726b; // "rivet-rk"

/// The level of a member: the number of leading 6-bit groups of zeros in its hash, at most
/// [`LEVELS`].
pub fn level_of_member(member: &[u8]) -> u8 {
    level_with(member, FANOUT_BITS)
}

fn level_with(member: &[u8], bits: u32) -> u8 {
    let h = xxhash_rust::xxh3::xxh3_64_with_seed(member, LEVEL_SEED);
    ((h.trailing_zeros() / bits) as u8).min(LEVELS)
}

/// The rank index of one collection.
pub struct RankIndex<'v, 'tx> {
    view: &'v DbView<'tx>,
    id: u64,
    /// Sub-key prefix of the ordered entries in the data bucket (after the id).
    prefix: &'static [u8],
    /// Bytes of an order key before the member (8 for a score, 0 for a set member).
    skip: usize,
    /// [`FANOUT_BITS`] (smaller in tests, to reach every level with few entries).
    bits: u32,
}

fn corrupt(id: u64, what: &str) -> rivet::Error {
    rivet::Error::corrupted(
        0,
        format!("rank index of collection {id} is damaged: {what}"),
    )
}

fn count_of(id: u64, v: Option<&[u8]>) -> Result<u64> {
    v.and_then(|v| v.first_chunk::<8>())
        .map(|b| u64::from_be_bytes(*b))
        .ok_or_else(|| corrupt(id, "a count is not 8 bytes"))
}

impl<'v, 'tx> RankIndex<'v, 'tx> {
    /// The index of collection `id`, whose ordered entries are `id | prefix | order key` in
    /// the data bucket, with the member at `order_key[skip..]`.
    pub fn new(view: &'v DbView<'tx>, id: u64, prefix: &'static [u8], skip: usize) -> Self {
        RankIndex {
            view,
            id,
            prefix,
            skip,
            bits: FANOUT_BITS,
        }
    }

    fn level(&self, order_key: &[u8]) -> u8 {
        level_with(order_key.get(self.skip..).unwrap_or(&[]), self.bits)
    }

    fn level_prefix(&self, level: u8) -> [u8; 9] {
        let mut p = [0u8; 9];
        p[..8].copy_from_slice(&self.id.to_be_bytes());
        p[8] = level;
        p
    }

    /// The record key of the boundary `at` of `level` (`None`: the head).
    fn rkey(&self, level: u8, at: Option<&[u8]>) -> Vec<u8> {
        let mut k = Vec::with_capacity(10 + at.map_or(0, <[u8]>::len));
        k.extend_from_slice(&self.level_prefix(level));
        match at {
            None => k.push(0),
            Some(o) => {
                k.push(1);
                k.extend_from_slice(o);
            }
        }
        k
    }

    /// The boundary a record key of `level` names (`Some(None)`: the head); `None` for a key
    /// of another level or collection, or a malformed one.
    fn parse_rkey<'k>(&self, level: u8, key: &'k [u8]) -> Option<Option<&'k [u8]>> {
        match key.strip_prefix(&self.level_prefix(level)[..]) {
            Some([0]) => Some(None),
            Some([1, rest @ ..]) => Some(Some(rest)),
            _ => None,
        }
    }

    /// The record at `level` whose span holds `order_key` (the last boundary strictly
    /// before it, or the head): (the boundary, `None` for the head; its count). A missing
    /// head counts 0.
    fn floor(
        &self,
        rank: &Bucket<'tx>,
        level: u8,
        order_key: &[u8],
    ) -> Result<(Option<Vec<u8>>, u64)> {
        let mut c = rank.cursor();
        let e = match c.seek(&self.rkey(level, Some(order_key)))? {
            Some(_) => c.prev()?,
            None => c.last()?,
        };
        match e {
            Some(e) => match self.parse_rkey(level, e.key()) {
                Some(at) => Ok((at.map(<[u8]>::to_vec), count_of(self.id, e.value())?)),
                None => Ok((None, 0)),
            },
            None => Ok((None, 0)),
        }
    }

    /// Entries from the boundary `from` (inclusive) to the next boundary of `level`
    /// (exclusive), summed from the records of `level - 1` (or the entries at level 1).
    fn span(&self, rank: &Bucket<'tx>, level: u8, from: &[u8]) -> Result<u64> {
        let mut total = 0u64;
        if level == 1 {
            self.view
                .coll_scan(self.id, self.prefix, Some(from), false, |k, _| {
                    if total > 0 && self.level(k) >= level {
                        return Ok(false);
                    }
                    total += 1;
                    Ok(true)
                })?;
        } else {
            let mut c = rank.cursor();
            let mut e = c.seek(&self.rkey(level - 1, Some(from)))?;
            let mut first = true;
            while let Some(entry) = e {
                let Some(Some(k)) = self.parse_rkey(level - 1, entry.key()) else {
                    break;
                };
                if !first && self.level(k) >= level {
                    break;
                }
                first = false;
                total += count_of(self.id, entry.value())?;
                e = c.next()?;
            }
        }
        Ok(total)
    }

    /// Records a new entry `order_key`, which must already be in the data bucket.
    pub fn insert(&self, order_key: &[u8]) -> Result<()> {
        let rank = self.view.rank()?;
        let lvl = self.level(order_key);
        for l in 1..=LEVELS {
            let (pk, pc) = self.floor(&rank, l, order_key)?;
            if lvl < l {
                rank.put(&self.rkey(l, pk.as_deref()), &(pc + 1).to_be_bytes())?;
            } else {
                let ec = self.span(&rank, l, order_key)?;
                let left = (pc + 1)
                    .checked_sub(ec)
                    .ok_or_else(|| corrupt(self.id, "a span is larger than its parent"))?;
                rank.put(&self.rkey(l, pk.as_deref()), &left.to_be_bytes())?;
                rank.put(&self.rkey(l, Some(order_key)), &ec.to_be_bytes())?;
            }
        }
        Ok(())
    }

    /// Forgets the entry `order_key` (before or after it leaves the data bucket).
    pub fn remove(&self, order_key: &[u8]) -> Result<()> {
        let rank = self.view.rank()?;
        let lvl = self.level(order_key);
        for l in 1..=LEVELS {
            let (pk, pc) = self.floor(&rank, l, order_key)?;
            // The entry leaves; if it was a boundary, the rest of its span joins the
            // previous one.
            let merged = if lvl < l {
                0
            } else {
                let k = self.rkey(l, Some(order_key));
                let ec = count_of(self.id, rank.get(&k)?)?;
                rank.delete(&k)?;
                ec
            };
            let left = (pc + merged)
                .checked_sub(1)
                .ok_or_else(|| corrupt(self.id, "a count would go below zero"))?;
            rank.put(&self.rkey(l, pk.as_deref()), &left.to_be_bytes())?;
        }
        Ok(())
    }

    /// Positions `c` on the record of `level` at `at`, which must exist.
    fn seek_exact(&self, c: &mut Cursor<'tx>, level: u8, at: Option<&[u8]>) -> Result<Entry<'tx>> {
        let k = self.rkey(level, at);
        match c.seek(&k)? {
            Some(e) if e.key() == k.as_slice() => Ok(e),
            _ => Err(corrupt(self.id, "a boundary record is missing")),
        }
    }

    /// The next boundary of `level` after the cursor's record, as (order key, count).
    fn next_record(&self, c: &mut Cursor<'tx>, level: u8) -> Result<Option<(&'tx [u8], u64)>> {
        match c.next()? {
            Some(e) => match self.parse_rkey(level, e.key()) {
                Some(Some(k)) => Ok(Some((k, count_of(self.id, e.value())?))),
                _ => Ok(None),
            },
            None => Ok(None),
        }
    }

    /// The number of entries ordered before `order_key` (its 0-based rank when present).
    pub fn rank_of(&self, order_key: &[u8]) -> Result<u64> {
        let rank = self.view.rank()?;
        let mut pos: Option<Vec<u8>> = None;
        let mut before = 0u64;
        for l in (1..=LEVELS).rev() {
            let mut c = rank.cursor();
            let head = self.seek_exact(&mut c, l, pos.as_deref())?;
            let mut count = count_of(self.id, head.value())?;
            while let Some((k, n)) = self.next_record(&mut c, l)? {
                if k > order_key {
                    break;
                }
                before += count;
                pos = Some(k.to_vec());
                count = n;
            }
        }
        self.view
            .coll_scan(self.id, self.prefix, pos.as_deref(), false, |k, _| {
                let less = k < order_key;
                before += u64::from(less);
                Ok(less)
            })?;
        Ok(before)
    }

    /// The order key of the entry at 0-based rank `r` (`None` past the end).
    pub fn select(&self, r: u64) -> Result<Option<Vec<u8>>> {
        let rank = self.view.rank()?;
        let mut pos: Option<Vec<u8>> = None;
        let mut rem = r;
        for l in (1..=LEVELS).rev() {
            let mut c = rank.cursor();
            let want = self.rkey(l, pos.as_deref());
            let head = match c.seek(&want)? {
                Some(e) if e.key() == want.as_slice() => e,
                // An empty collection has no records.
                _ if pos.is_none() => return Ok(None),
                _ => return Err(corrupt(self.id, "a boundary record is missing")),
            };
            let mut count = count_of(self.id, head.value())?;
            while rem >= count {
                match self.next_record(&mut c, l)? {
                    Some((k, n)) => {
                        rem -= count;
                        pos = Some(k.to_vec());
                        count = n;
                    }
                    None => return Ok(None),
                }
            }
        }
        let mut found = None;
        self.view
            .coll_scan(self.id, self.prefix, pos.as_deref(), false, |k, _| {
                if rem == 0 {
                    found = Some(k.to_vec());
                    return Ok(false);
                }
                rem -= 1;
                Ok(true)
            })?;
        Ok(found)
    }

    /// Rebuilds the whole index from the entries in one ordered pass (for collections
    /// written without one). Existing records of the collection are replaced.
    pub fn rebuild(&self) -> Result<()> {
        let rank = self.view.rank()?;
        super::delete_prefix(&rank, &self.id.to_be_bytes())?;
        // Per level: the current span's start and count.
        let mut spans: Vec<(Option<Vec<u8>>, u64)> = vec![(None, 0); LEVELS as usize];
        self.view
            .coll_scan(self.id, self.prefix, None, false, |k, _| {
                let lvl = self.level(k);
                for l in 1..=LEVELS {
                    let span = &mut spans[l as usize - 1];
                    if lvl >= l {
                        rank.put(&self.rkey(l, span.0.as_deref()), &span.1.to_be_bytes())?;
                        *span = (Some(k.to_vec()), 0);
                    }
                    span.1 += 1;
                }
                Ok(true)
            })?;
        for (l, (k, n)) in (1..=LEVELS).zip(spans) {
            rank.put(&self.rkey(l, k.as_deref()), &n.to_be_bytes())?;
        }
        Ok(())
    }

    /// Every record of the collection, in key order (for checks and tests).
    pub fn records(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let rank = self.view.rank()?;
        let p = self.id.to_be_bytes();
        let mut c = rank.cursor();
        let mut e = c.seek(&p)?;
        let mut out = Vec::new();
        while let Some(entry) = e {
            if !entry.key().starts_with(&p) {
                break;
            }
            out.push((entry.key().to_vec(), entry.value().unwrap_or(&[]).to_vec()));
            e = c.next()?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::store::{Store, WriteLog};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&dir.path().join("r.db"), 1, rivet::Options::default()).expect("open");
        (dir, s)
    }

    /// Checks every query against the model, and the records against a rebuild.
    fn check(idx: &RankIndex<'_, '_>, model: &BTreeSet<Vec<u8>>) {
        let all: Vec<&Vec<u8>> = model.iter().collect();
        for (r, k) in all.iter().enumerate() {
            assert_eq!(idx.rank_of(k).expect("rank"), r as u64, "rank of {k:?}");
            assert_eq!(idx.select(r as u64).expect("select").as_ref(), Some(*k));
        }
        assert_eq!(idx.select(all.len() as u64).expect("select"), None);
        assert_eq!(
            idx.rank_of(b"\xff\xff\xff").expect("rank"),
            all.len() as u64
        );
        let incremental = idx.records().expect("records");
        idx.rebuild().expect("rebuild");
        assert_eq!(
            idx.records().expect("records"),
            incremental,
            "records differ from a rebuild"
        );
    }

    /// Random inserts and removals with a tiny fanout (every level is busy), against a
    /// `BTreeSet` model.
    #[test]
    fn matches_a_model_at_every_level() {
        let (_dir, store) = store();
        let log = WriteLog::default();
        let tx = store.db().begin_write().expect("tx");
        let v = store.view_mut(&tx, 0, &log).expect("view");
        let mut idx = RankIndex::new(&v, 7, b"", 0);
        idx.bits = 1;
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut model = BTreeSet::new();
        for step in 0..3000 {
            // The empty member too: a set may hold it, and its key must not meet the head's.
            let n = rng.gen_range(0..400);
            let m = if n == 0 {
                Vec::new()
            } else {
                format!("m{n}").into_bytes()
            };
            if model.contains(&m) {
                v.coll_del(7, &m).expect("del");
                idx.remove(&m).expect("remove");
                model.remove(&m);
            } else {
                v.coll_put(7, &m, b"").expect("put");
                idx.insert(&m).expect("insert");
                model.insert(m);
            }
            if step % 500 == 499 {
                check(&idx, &model);
            }
        }
        for m in model.clone() {
            v.coll_del(7, &m).expect("del");
            idx.remove(&m).expect("remove");
            model.remove(&m);
        }
        check(&idx, &model);
    }

    /// The production fanout through the set API, with enough members for level 2.
    #[test]
    fn sets_keep_their_index() {
        let (_dir, store) = store();
        let log = WriteLog::default();
        let tx = store.db().begin_write().expect("tx");
        let v = store.view_mut(&tx, 0, &log).expect("view");
        let mut model = BTreeSet::new();
        for i in 0..12_000u32 {
            let m = (i.wrapping_mul(2_654_435_761)).to_be_bytes().to_vec();
            assert!(v.set_add(3, &m).expect("add"));
            model.insert(m);
        }
        for i in (0..12_000u32).step_by(3) {
            let m = (i.wrapping_mul(2_654_435_761)).to_be_bytes().to_vec();
            assert!(v.set_remove(3, &m).expect("remove"));
            model.remove(&m);
        }
        let idx = v.rank_index(crate::store::Kind::Set, 3);
        let levels: BTreeSet<u8> = idx
            .records()
            .expect("records")
            .iter()
            .map(|(k, _)| k[8])
            .collect();
        assert_eq!(levels.len(), LEVELS as usize);
        check(&idx, &model);
    }
}
