//! The keyspace: one entry per Redis key holding its header (type, expiry, where the value
//! lives) and, for small strings, the value itself.
//!
//! Entry key: `xxh3_64(key)` big-endian, then the key. Entry value:
//!
//! ```text
//! byte 0      type (Kind)
//! byte 1      flags: 1 = has expiry, 2 = body is an id (chunked string or collection)
//! [8 bytes]   expiry, absolute Unix time in ms, big-endian (flag 1)
//! body        inline:   the string's bytes
//!             id body:  id (8 bytes) and length or element count (8 bytes), then any
//!                       type-specific bytes
//! ```
//!
//! Every write through this module records the key as touched, which is how WATCH learns of
//! changes, and keeps the deadline index and the key count (`keys` bucket sequence) in step.

use super::{DbView, Result};

const FLAG_EXPIRY: u8 = 1;
const FLAG_ID_BODY: u8 = 2;

/// Longest key accepted: the engine's 32768-byte key limit minus the 8-byte hash prefix.
pub const MAX_KEY_LEN: usize = 32768 - 8;

/// A Redis value type, as stored in byte 0 of a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `string`
    String = 0,
    /// `list`
    List = 1,
    /// `hash`
    Hash = 2,
    /// `set`
    Set = 3,
    /// `zset`
    ZSet = 4,
    /// `stream`
    Stream = 5,
    /// A Memcached item (only in the Memcached namespace, see [`super::items`]).
    Item = 6,
}

impl Kind {
    /// The name TYPE replies with.
    pub fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::List => "list",
            Kind::Hash => "hash",
            Kind::Set => "set",
            Kind::ZSet => "zset",
            Kind::Stream => "stream",
            Kind::Item => "memcached-item",
        }
    }

    fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            0 => Kind::String,
            1 => Kind::List,
            2 => Kind::Hash,
            3 => Kind::Set,
            4 => Kind::ZSet,
            5 => Kind::Stream,
            6 => Kind::Item,
            _ => return None,
        })
    }
}

/// Where a value lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body<'a> {
    /// A string stored in the header.
    Inline(&'a [u8]),
    /// A value stored elsewhere under `id`, with its length (strings: bytes; collections:
    /// elements) and any type-specific bytes.
    Id {
        /// The storage id.
        id: u64,
        /// Bytes (strings) or elements (collections).
        len: u64,
        /// Type-specific trailing bytes.
        extra: &'a [u8],
    },
}

/// A decoded keyspace entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The value type.
    pub kind: Kind,
    /// Absolute expiry in Unix ms, if any.
    pub expire_at: Option<i64>,
    /// The value or where it lives.
    pub body: Body<'a>,
}

impl<'a> Header<'a> {
    /// Decodes an entry value; `None` if it is malformed.
    pub fn decode(v: &'a [u8]) -> Option<Header<'a>> {
        let kind = Kind::from_byte(*v.first()?)?;
        let flags = *v.get(1)?;
        let mut rest = &v[2..];
        let expire_at = if flags & FLAG_EXPIRY != 0 {
            let (e, r) = rest.split_first_chunk::<8>()?;
            rest = r;
            Some(i64::from_be_bytes(*e))
        } else {
            None
        };
        let body = if flags & FLAG_ID_BODY != 0 {
            let (id, r) = rest.split_first_chunk::<8>()?;
            let (len, extra) = r.split_first_chunk::<8>()?;
            Body::Id {
                id: u64::from_be_bytes(*id),
                len: u64::from_be_bytes(*len),
                extra,
            }
        } else {
            Body::Inline(rest)
        };
        Some(Header {
            kind,
            expire_at,
            body,
        })
    }

    /// Encodes the header into a new buffer.
    pub fn encode(&self) -> Vec<u8> {
        let body_len = match self.body {
            Body::Inline(b) => b.len(),
            Body::Id { extra, .. } => 16 + extra.len(),
        };
        let mut out = Vec::with_capacity(10 + body_len);
        let mut flags = 0;
        if self.expire_at.is_some() {
            flags |= FLAG_EXPIRY;
        }
        if matches!(self.body, Body::Id { .. }) {
            flags |= FLAG_ID_BODY;
        }
        out.push(self.kind as u8);
        out.push(flags);
        if let Some(e) = self.expire_at {
            out.extend_from_slice(&e.to_be_bytes());
        }
        match self.body {
            Body::Inline(b) => out.extend_from_slice(b),
            Body::Id { id, len, extra } => {
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(extra);
            }
        }
        out
    }

    /// True when the key has expired at `now_ms` (Redis: a deadline equal to now has expired).
    pub fn is_expired(&self, now_ms: i64) -> bool {
        matches!(self.expire_at, Some(e) if e <= now_ms)
    }
}

/// A keyspace entry key, on the stack for keys up to 56 bytes (no allocation per lookup).
pub type SlotKey = smallvec::SmallVec<[u8; 64]>;

/// The keyspace entry key of `key`: its 64-bit hash, then the key.
pub fn slot_key(key: &[u8]) -> SlotKey {
    let mut k = SlotKey::with_capacity(8 + key.len());
    k.extend_from_slice(&key_hash(key).to_be_bytes());
    k.extend_from_slice(key);
    k
}

/// The 64-bit hash that orders the keyspace (xxh3, seed 0: fixed forever by the file format).
pub fn key_hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// A deadline as 8 bytes whose byte order is numeric order over all of `i64` (sign bit
/// flipped), so every deadline a header can hold has an exact index entry.
fn deadline_bytes(at: i64) -> [u8; 8] {
    ((at as u64) ^ (1 << 63)).to_be_bytes()
}

/// The deadline index key for `slot` expiring at `at`.
fn deadline_key(at: i64, slot: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + slot.len());
    k.extend_from_slice(&deadline_bytes(at));
    k.extend_from_slice(slot);
    k
}

fn corrupt(what: &str, key: &[u8]) -> rivet::Error {
    rivet::Error::corrupted(
        0,
        format!("{what} for key {:?}", String::from_utf8_lossy(key)),
    )
}

impl<'tx> DbView<'tx> {
    /// The header of `key` including an expired one (the physical entry).
    pub fn lookup_raw(&self, key: &[u8]) -> Result<Option<Header<'tx>>> {
        if key.len() > MAX_KEY_LEN {
            return Ok(None);
        }
        match self.keys()?.get(&slot_key(key))? {
            None => Ok(None),
            Some(v) => Header::decode(v)
                .map(Some)
                .ok_or_else(|| corrupt("malformed keyspace header", key)),
        }
    }

    /// The header of `key` if it exists and has not expired at `now_ms` (lazy expiry: an
    /// expired key reads as absent).
    pub fn lookup(&self, key: &[u8], now_ms: i64) -> Result<Option<Header<'tx>>> {
        Ok(self.lookup_raw(key)?.filter(|h| !h.is_expired(now_ms)))
    }

    /// For a write: the live header of `key`, deleting it first if it has expired.
    pub fn lookup_for_write(&self, key: &[u8], now_ms: i64) -> Result<Option<Header<'tx>>> {
        match self.lookup_raw(key)? {
            Some(h) if h.is_expired(now_ms) => {
                self.delete_expired(key, &h)?;
                Ok(None)
            }
            other => Ok(other),
        }
    }

    /// Number of keys, expired-but-not-yet-swept ones included (Redis's DBSIZE counts them too).
    pub fn len(&self) -> Result<u64> {
        Ok(self.keys()?.sequence())
    }

    /// Number of keys with an expiry (the deadline index's counter).
    pub fn volatile_len(&self) -> Result<u64> {
        Ok(self.expires()?.sequence())
    }

    /// True when the database has no keys.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Writes `new` as the header of `key`, where `old` is the entry's current header (as
    /// returned by a lookup in this transaction), keeping the deadline index and the key count
    /// in step. Does not free `old`'s out-of-line data: callers that replace a value use
    /// [`DbView::delete_entry`] or the string functions.
    pub fn put_header(&self, key: &[u8], old: Option<&Header<'_>>, new: &Header<'_>) -> Result<()> {
        if key.len() > MAX_KEY_LEN {
            return Err(rivet::Error::KeyTooLarge(key.len() + 8));
        }
        let slot = slot_key(key);
        let old_exp = old.and_then(|h| h.expire_at);
        if old_exp != new.expire_at {
            let idx = self.expires()?;
            if let Some(e) = old_exp {
                idx.delete(&deadline_key(e, &slot))?;
            }
            if let Some(e) = new.expire_at {
                idx.put(&deadline_key(e, &slot), b"")?;
            }
            match (old_exp, new.expire_at) {
                (None, Some(_)) => idx.set_sequence(idx.sequence() + 1)?,
                (Some(_), None) => idx.set_sequence(idx.sequence().saturating_sub(1))?,
                _ => {}
            }
        }
        let keys = self.keys()?;
        keys.put(&slot, &new.encode())?;
        if old.is_none() {
            keys.set_sequence(keys.sequence() + 1)?;
            self.record(key, super::Change::Created);
        } else {
            self.touch(key);
        }
        Ok(())
    }

    /// Removes `key` (whose current header is `h`) with its deadline entry and its out-of-line
    /// data.
    pub fn delete_entry(&self, key: &[u8], h: &Header<'_>) -> Result<()> {
        self.remove(key, h, false)
    }

    /// Deletes the expired `key` (header `h`): recorded as an expiry, not a change, for WATCH.
    pub fn delete_expired(&self, key: &[u8], h: &Header<'_>) -> Result<()> {
        self.remove(key, h, true)
    }

    fn remove(&self, key: &[u8], h: &Header<'_>, expired: bool) -> Result<()> {
        let slot = slot_key(key);
        if let Some(e) = h.expire_at {
            let idx = self.expires()?;
            idx.delete(&deadline_key(e, &slot))?;
            idx.set_sequence(idx.sequence().saturating_sub(1))?;
        }
        if let Body::Id { id, len, .. } = h.body {
            self.free_data(h.kind, id, len)?;
        }
        let keys = self.keys()?;
        keys.delete(&slot)?;
        keys.set_sequence(keys.sequence().saturating_sub(1))?;
        let change = if expired {
            super::Change::Expired
        } else {
            super::Change::Removed
        };
        self.record(key, change);
        Ok(())
    }

    /// Removes the entry of `key` (header `h`) and its deadline, but not its out-of-line data,
    /// which a new header (RENAME, MOVE) now owns.
    pub fn forget_entry(&self, key: &[u8], h: &Header<'_>) -> Result<()> {
        let without_data = Header {
            body: Body::Inline(&[]),
            ..*h
        };
        self.delete_entry(key, &without_data)
    }

    /// Deletes `key` if it exists and is live; returns whether it did.
    pub fn delete_key(&self, key: &[u8], now_ms: i64) -> Result<bool> {
        match self.lookup_for_write(key, now_ms)? {
            Some(h) => {
                self.delete_entry(key, &h)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Frees the out-of-line storage of a value.
    fn free_data(&self, kind: Kind, id: u64, len: u64) -> Result<()> {
        match kind {
            Kind::String | Kind::Item => self.free_chunks(id),
            Kind::Stream => {
                // Consumer group records (sub-keys from sixteen 0xff bytes on, after every
                // entry) are not counted in `len`: a stream that has any goes to the trash,
                // however few entries it has, so a big pending list is freed in steps too.
                let mut groups = false;
                self.coll_scan(id, &[0xff; 16], None, false, |_, _| {
                    groups = true;
                    Ok(false)
                })?;
                self.coll_discard(id, if groups { u64::MAX } else { len })
            }
            _ => self.coll_discard(id, len),
        }
    }

    /// Sets or clears the expiry of the live key `key` (current header `h`).
    pub fn set_expiry(&self, key: &[u8], h: &Header<'_>, at: Option<i64>) -> Result<()> {
        let new = Header {
            expire_at: at,
            ..*h
        };
        self.put_header(key, Some(h), &new)
    }

    /// Up to `limit` keys whose deadline is at or before `now_ms`, oldest first, as
    /// (deadline, user key).
    pub fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<(i64, Vec<u8>)>> {
        let mut out = Vec::new();
        for e in self.expires()?.iter() {
            let e = e?;
            let k = e.key();
            if k.len() < 16 {
                return Err(corrupt("short deadline index entry", k));
            }
            let at = (u64::from_be_bytes(k[..8].try_into().unwrap_or_default()) ^ (1 << 63)) as i64;
            if at > now_ms || out.len() >= limit {
                break;
            }
            out.push((at, k[16..].to_vec()));
        }
        Ok(out)
    }

    /// Removes a deadline index entry that no longer matches its key (left by damage or a
    /// crash-free but interrupted sweep).
    pub fn drop_deadline(&self, at: i64, key: &[u8]) -> Result<()> {
        self.expires()?.delete(&deadline_key(at, &slot_key(key)))?;
        Ok(())
    }
}
