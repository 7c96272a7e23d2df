//! Collection storage: every member of a hash, set, list or sorted set is its own entry in
//! the database's `data` bucket, under the collection's id, so a member operation is one
//! B+tree operation and no command loads a whole collection unless it returns it.
//!
//! Entry keys (all start with the 8-byte big-endian collection id):
//!
//! ```text
//! hash:  id | field                      -> value
//! set:   id | member                     -> (empty)
//! list:  id | position (8 bytes)         -> element     positions head..head+len, ordered
//! zset:  id | 'm' | member               -> score (f64 bits, 8 bytes)
//!        id | 's' | sortable score | member -> (empty)
//! ```
//!
//! The header (keyspace entry) holds the id and the element count, so HLEN, SCARD, LLEN and
//! ZCARD never touch the data; a list's header also holds its head position.

use rivet::Bucket;

use super::keyspace::{Body, Header, Kind};
use super::rank::RankIndex;
use super::{DbView, Result};

/// Builds `id | sub`.
pub fn member_key(id: u64, sub: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + sub.len());
    k.extend_from_slice(&id.to_be_bytes());
    k.extend_from_slice(sub);
    k
}

/// A list position as an order-preserving 8-byte key part.
pub fn list_pos(pos: i64) -> [u8; 8] {
    ((pos as u64) ^ (1 << 63)).to_be_bytes()
}

/// A score as 8 bytes whose byte order is the numeric order (-inf first, +inf last).
pub fn sortable_score(s: f64) -> [u8; 8] {
    let s = if s == 0.0 { 0.0 } else { s }; // -0 and +0 sort together
    let bits = s.to_bits();
    let v = if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    };
    v.to_be_bytes()
}

/// Inverse of [`sortable_score`].
pub fn score_from_sortable(b: [u8; 8]) -> f64 {
    let v = u64::from_be_bytes(b);
    let bits = if v >> 63 == 1 { v & !(1 << 63) } else { !v };
    f64::from_bits(bits)
}

/// The parts of a collection header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coll {
    /// The value type.
    pub kind: Kind,
    /// Storage id.
    pub id: u64,
    /// Element count.
    pub len: u64,
    /// Lists: position of the first element.
    pub head: i64,
    /// Absolute expiry in ms.
    pub expire_at: Option<i64>,
}

impl Coll {
    /// Reads the collection fields of a header; `None` for strings.
    pub fn of(h: &Header<'_>) -> Option<Coll> {
        match h.body {
            Body::Id { id, len, extra } if h.kind != Kind::String => Some(Coll {
                kind: h.kind,
                id,
                len,
                head: extra
                    .first_chunk::<8>()
                    .map(|b| i64::from_be_bytes(*b))
                    .unwrap_or(0),
                expire_at: h.expire_at,
            }),
            _ => None,
        }
    }
}

impl<'tx> DbView<'tx> {
    /// Creates an empty collection header for `key` (which must not exist) and returns it.
    /// It is written by the first [`DbView::coll_save`].
    pub fn coll_new(&self, kind: Kind) -> Result<Coll> {
        Ok(Coll {
            kind,
            id: self.new_id()?,
            len: 0,
            head: 0,
            expire_at: None,
        })
    }

    /// Writes the header of collection `c` for `key` (`existed`: whether a header is there
    /// now). A collection whose count dropped to 0 is deleted, as Redis deletes empty
    /// collections.
    pub fn coll_save(&self, key: &[u8], existed: Option<&Header<'_>>, c: &Coll) -> Result<()> {
        if c.len == 0 {
            if let Some(h) = existed {
                self.delete_entry(key, h)?;
            } else {
                self.coll_free(c.id)?;
            }
            return Ok(());
        }
        let head = c.head.to_be_bytes();
        let h = Header {
            kind: c.kind,
            expire_at: c.expire_at,
            body: Body::Id {
                id: c.id,
                len: c.len,
                extra: if c.kind == Kind::List { &head } else { &[] },
            },
        };
        self.put_header(key, existed, &h)
    }

    /// The data bucket.
    pub fn data(&self) -> Result<Bucket<'tx>> {
        self.bucket(&self.names.data)
    }

    /// The value stored at `id | sub`.
    pub fn coll_get(&self, id: u64, sub: &[u8]) -> Result<Option<&'tx [u8]>> {
        self.data()?.get(&member_key(id, sub))
    }

    /// Stores `id | sub` → `value`; returns whether the entry is new.
    pub fn coll_put(&self, id: u64, sub: &[u8], value: &[u8]) -> Result<bool> {
        let d = self.data()?;
        let k = member_key(id, sub);
        let new = d.get(&k)?.is_none();
        d.put(&k, value)?;
        Ok(new)
    }

    /// Removes `id | sub`; returns whether it existed.
    pub fn coll_del(&self, id: u64, sub: &[u8]) -> Result<bool> {
        let d = self.data()?;
        let k = member_key(id, sub);
        if d.get(&k)?.is_none() {
            return Ok(false);
        }
        d.delete(&k)?;
        Ok(true)
    }

    /// Visits the entries of collection `id` whose sub-key starts with `prefix`, from
    /// `prefix | from` on, in order (or in reverse from the end when `rev`), until `f`
    /// returns false.
    pub fn coll_scan(
        &self,
        id: u64,
        prefix: &[u8],
        from: Option<&[u8]>,
        rev: bool,
        mut f: impl FnMut(&'tx [u8], &'tx [u8]) -> Result<bool>,
    ) -> Result<()> {
        let d = self.data()?;
        let base = member_key(id, prefix);
        let mut c = d.cursor();
        let mut e = if rev {
            match from {
                Some(f) => {
                    let mut start = base.clone();
                    start.extend_from_slice(f);
                    match c.seek(&start)? {
                        Some(e) if e.key() == start.as_slice() => Some(e),
                        Some(_) => c.prev()?,
                        None => c.last()?,
                    }
                }
                None => match prefix_end(&base) {
                    Some(end) => match c.seek(&end)? {
                        Some(_) => c.prev()?,
                        None => c.last()?,
                    },
                    None => c.last()?,
                },
            }
        } else {
            let mut start = base.clone();
            if let Some(f) = from {
                start.extend_from_slice(f);
            }
            c.seek(&start)?
        };
        while let Some(entry) = e {
            let k = entry.key();
            if !k.starts_with(&base) {
                break;
            }
            if !f(&k[base.len()..], entry.value().unwrap_or(&[]))? {
                break;
            }
            e = if rev { c.prev()? } else { c.next()? };
        }
        Ok(())
    }

    /// Frees collection `id` of `len` elements: at once when small, otherwise by putting it
    /// in the trash, which [`DbView::trash_step`] empties in bounded steps (so deleting or
    /// expiring a collection of millions of members never stalls other clients).
    pub fn coll_discard(&self, id: u64, len: u64) -> Result<()> {
        if len <= FREE_AT_ONCE {
            self.coll_free(id)
        } else {
            self.trash()?.put(&id.to_be_bytes(), b"")
        }
    }

    /// Deletes up to about `budget` entries of trashed collections; returns how many it
    /// deleted and whether trash is left.
    pub fn trash_step(&self, budget: usize) -> Result<(usize, bool)> {
        let trash = self.trash()?;
        let mut deleted = 0;
        loop {
            let Some(first) = trash.cursor().first()? else {
                return Ok((deleted, false));
            };
            let id_key = first.key().to_vec();
            let d = self.data()?;
            let mut c = d.cursor();
            let mut e = c.seek(&id_key)?;
            while let Some(entry) = e {
                if !entry.key().starts_with(&id_key) {
                    break;
                }
                if deleted >= budget {
                    return Ok((deleted, true));
                }
                c.delete()?;
                deleted += 1;
                e = c.next()?;
            }
            super::delete_prefix(&self.rank()?, &id_key)?;
            trash.delete(&id_key)?;
            if deleted >= budget {
                return Ok((deleted, trash.cursor().first()?.is_some()));
            }
        }
    }

    /// Deletes every entry of collection `id`, and its rank index.
    pub fn coll_free(&self, id: u64) -> Result<()> {
        super::delete_prefix(&self.data()?, &id.to_be_bytes())?;
        super::delete_prefix(&self.rank()?, &id.to_be_bytes())
    }

    /// Copies every entry of collection `from_id` (in this database) to `to_id` in `into`.
    pub fn coll_copy(&self, from_id: u64, into: &DbView<'_>, to_id: u64) -> Result<()> {
        let mut entries = Vec::new();
        self.coll_scan(from_id, &[], None, false, |k, v| {
            entries.push((k.to_vec(), v.to_vec()));
            Ok(true)
        })?;
        let d = into.data()?;
        for (k, v) in entries {
            d.put(&member_key(to_id, &k), &v)?;
        }
        let rank = into.rank()?;
        for (k, v) in RankIndex::new(self, from_id, b"", 0).records()? {
            rank.put(&member_key(to_id, k.get(8..).unwrap_or(&[])), &v)?;
        }
        Ok(())
    }
}

/// Collections up to this many elements are freed inside the command that deletes them;
/// bigger ones go to the trash, which the writer empties a few milliseconds per commit.
pub const FREE_AT_ONCE: u64 = 1024;

/// A sorted-set member's sub-key: `'m' | member` → score.
pub fn zset_member_sub(m: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + m.len());
    k.push(b'm');
    k.extend_from_slice(m);
    k
}

/// A sorted-set order key (after the `'s'` prefix): sortable score then member.
pub fn zset_order_key(score: f64, m: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + m.len());
    k.extend_from_slice(&sortable_score(score));
    k.extend_from_slice(m);
    k
}

/// Splits a sorted-set order key into (score, member).
pub fn split_order_key(k: &[u8]) -> (f64, &[u8]) {
    match k.split_first_chunk::<8>() {
        Some((s, m)) => (score_from_sortable(*s), m),
        None => (f64::NAN, k),
    }
}

/// The sub-key prefix of a sorted set's score order.
pub const ZSET_ORDER: &[u8] = b"s";

impl<'tx> DbView<'tx> {
    /// The rank index of a set (over its members) or sorted set (over its score order).
    pub fn rank_index(&self, kind: Kind, id: u64) -> RankIndex<'_, 'tx> {
        match kind {
            Kind::ZSet => RankIndex::new(self, id, ZSET_ORDER, 8),
            _ => RankIndex::new(self, id, b"", 0),
        }
    }

    /// Replaces whatever `key` holds with a new collection of `kind` and `len` elements
    /// whose entries `fill` writes under the new collection, or only deletes `key` when
    /// `len` is 0, as Redis's STORE forms do (SORT, SINTERSTORE..., ZRANGESTORE, ZUNIONSTORE...).
    /// The rank index of a set or sorted set is built in one pass afterwards.
    pub fn replace_collection(
        &self,
        key: &[u8],
        now: i64,
        kind: Kind,
        len: u64,
        fill: impl FnOnce(&Coll) -> Result<()>,
    ) -> Result<()> {
        self.delete_key(key, now)?;
        if len == 0 {
            return Ok(());
        }
        let mut c = self.coll_new(kind)?;
        fill(&c)?;
        if matches!(kind, Kind::Set | Kind::ZSet) {
            self.rank_index(kind, c.id).rebuild()?;
        }
        c.len = len;
        self.coll_save(key, None, &c)
    }

    /// Adds `m` to set `id`; returns whether it is new.
    pub fn set_add(&self, id: u64, m: &[u8]) -> Result<bool> {
        let new = self.coll_put(id, m, b"")?;
        if new {
            self.rank_index(Kind::Set, id).insert(m)?;
        }
        Ok(new)
    }

    /// Removes `m` from set `id`; returns whether it was there.
    pub fn set_remove(&self, id: u64, m: &[u8]) -> Result<bool> {
        let had = self.coll_del(id, m)?;
        if had {
            self.rank_index(Kind::Set, id).remove(m)?;
        }
        Ok(had)
    }

    /// The score of member `m` of sorted set `id`.
    pub fn zset_score(&self, id: u64, m: &[u8]) -> Result<Option<f64>> {
        match self.coll_get(id, &zset_member_sub(m))? {
            None => Ok(None),
            Some(b) => match b.first_chunk::<8>() {
                Some(a) => Ok(Some(f64::from_bits(u64::from_be_bytes(*a)))),
                None => Err(rivet::Error::corrupted(
                    0,
                    format!("sorted set {id}: a score is not 8 bytes"),
                )),
            },
        }
    }

    /// Sets member `m` of sorted set `id` to `score` (`old`: its current score, if any).
    pub fn zset_put(&self, id: u64, m: &[u8], old: Option<f64>, score: f64) -> Result<()> {
        let rank = self.rank_index(Kind::ZSet, id);
        let d = self.data()?;
        if let Some(o) = old {
            if sortable_score(o) == sortable_score(score) {
                return Ok(());
            }
            let ok = zset_order_key(o, m);
            rank.remove(&ok)?;
            d.delete(&member_key(id, &member_key_sub(ZSET_ORDER, &ok)))?;
        }
        // Plain puts: the caller knows whether the member is new, so no lookups first.
        d.put(
            &member_key(id, &zset_member_sub(m)),
            &score.to_bits().to_be_bytes(),
        )?;
        let nk = zset_order_key(score, m);
        d.put(&member_key(id, &member_key_sub(ZSET_ORDER, &nk)), b"")?;
        rank.insert(&nk)
    }

    /// Removes member `m` (current score `score`) from sorted set `id`.
    pub fn zset_remove(&self, id: u64, m: &[u8], score: f64) -> Result<()> {
        let ok = zset_order_key(score, m);
        self.rank_index(Kind::ZSet, id).remove(&ok)?;
        let d = self.data()?;
        d.delete(&member_key(id, &member_key_sub(ZSET_ORDER, &ok)))?;
        d.delete(&member_key(id, &zset_member_sub(m)))?;
        Ok(())
    }

    /// Builds the rank index of every set and sorted set of this database (upgrade of a
    /// file written before the index existed).
    pub(super) fn build_rank_indexes(&self) -> Result<()> {
        let mut todo = Vec::new();
        for e in self.keys()?.iter() {
            let e = e?;
            if let Some(h) = e.value().and_then(Header::decode) {
                if let (Kind::Set | Kind::ZSet, Body::Id { id, .. }) = (h.kind, h.body) {
                    todo.push((h.kind, id));
                }
            }
        }
        for (kind, id) in todo {
            self.rank_index(kind, id).rebuild()?;
        }
        Ok(())
    }
}

/// `prefix | k` as one sub-key.
fn member_key_sub(prefix: &[u8], k: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(prefix.len() + k.len());
    v.extend_from_slice(prefix);
    v.extend_from_slice(k);
    v
}

/// The smallest key greater than every key starting with `p` (None if `p` is all 0xff).
fn prefix_end(p: &[u8]) -> Option<Vec<u8>> {
    let mut v = p.to_vec();
    while let Some(last) = v.pop() {
        if last < 0xff {
            v.push(last + 1);
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_order_is_numeric_order() {
        let scores = [
            f64::NEG_INFINITY,
            -1e300,
            -2.5,
            -0.0,
            0.0,
            1e-300,
            3.0,
            f64::INFINITY,
        ];
        for w in scores.windows(2) {
            assert!(
                sortable_score(w[0]) <= sortable_score(w[1]),
                "{} {}",
                w[0],
                w[1]
            );
        }
        for s in scores {
            assert_eq!(
                score_from_sortable(sortable_score(s)),
                if s == 0.0 { 0.0 } else { s }
            );
        }
    }

    /// A big collection leaves the keyspace at once and its entries go in bounded steps.
    #[test]
    fn big_collections_are_freed_in_steps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            crate::store::Store::open(&dir.path().join("t.db"), 1, rivet::Options::default())
                .expect("open");
        let log = crate::store::WriteLog::default();
        let tx = store.db().begin_write().expect("tx");
        let v = store.view_mut(&tx, 0, &log).expect("view");
        let mut c = v.coll_new(Kind::Set).expect("new");
        let n = FREE_AT_ONCE * 3;
        for i in 0..n {
            assert!(v.set_add(c.id, &i.to_be_bytes()).expect("add"));
        }
        c.len = n;
        v.coll_save(b"big", None, &c).expect("save");
        let small = v.coll_new(Kind::Set).expect("new");
        v.set_add(small.id, b"x").expect("add");
        v.coll_save(b"small", None, &Coll { len: 1, ..small })
            .expect("save");
        for k in [&b"big"[..], b"small"] {
            let h = v.lookup_raw(k).expect("lookup").expect("present");
            v.delete_entry(k, &h).expect("delete");
        }
        let left = |id: u64| {
            let mut n = 0;
            v.coll_scan(id, &[], None, false, |_, _| {
                n += 1;
                Ok(true)
            })
            .expect("scan");
            n
        };
        assert_eq!(left(small.id), 0, "a small collection is freed at once");
        assert_eq!(left(c.id), n, "a big one waits in the trash");
        let mut steps = 0;
        loop {
            let (freed, more) = v.trash_step(1000).expect("step");
            assert!(freed <= 1000);
            steps += 1;
            if !more {
                break;
            }
        }
        assert_eq!(steps, 4);
        assert_eq!(left(c.id), 0);
        assert!(v
            .rank_index(Kind::Set, c.id)
            .records()
            .expect("records")
            .is_empty());
        assert!(v
            .trash()
            .expect("trash")
            .cursor()
            .first()
            .expect("first")
            .is_none());
    }

    #[test]
    fn list_positions_order() {
        assert!(list_pos(-5) < list_pos(-1));
        assert!(list_pos(-1) < list_pos(0));
        assert!(list_pos(0) < list_pos(7));
    }
}
