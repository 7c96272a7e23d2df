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

    /// Deletes every entry of collection `id`.
    pub fn coll_free(&self, id: u64) -> Result<()> {
        super::delete_prefix(&self.data()?, &id.to_be_bytes())
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
        Ok(())
    }
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

    #[test]
    fn list_positions_order() {
        assert!(list_pos(-5) < list_pos(-1));
        assert!(list_pos(-1) < list_pos(0));
        assert!(list_pos(0) < list_pos(7));
    }
}
