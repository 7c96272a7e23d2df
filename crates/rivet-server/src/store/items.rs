//! Memcached items: their own namespace in the file, beside the Redis databases.
//!
//! The namespace has the same buckets as a Redis database (`memcached/keys`,
//! `memcached/expires`, `memcached/chunks`, ...), so items share the keyspace layout, the
//! deadline index and the expiry sweeper with Redis keys, and Redis and Memcached keys never
//! collide. An item is a keyspace entry of kind [`Kind::Item`]:
//!
//! ```text
//! header      kind Item, expiry (absolute Unix ms = exptime seconds * 1000, if any)
//! meta        17 bytes: CAS (u64), client flags (u32), last access (u32 Unix seconds),
//!             bits (fetched 1, stale 2, win token sent 4, key stored base64 8), big-endian
//! value       inline after the meta up to 16 KiB; bigger values live in `memcached/chunks`
//!             under an id and the meta is the header's type-specific bytes
//! ```
//!
//! `memcached/state` holds `cas` (the last CAS value handed out, u64) and `flush_at` (the
//! second from which a delayed `flush_all` hides older items, i64; absent = none).

use std::borrow::Cow;

use super::keyspace::{Body, Header, Kind};
use super::strings::INLINE_MAX;
use super::{DbView, Result};

/// The bucket holding the namespace's counters.
pub const STATE_BUCKET: &[u8] = b"memcached/state";

/// The item has been fetched since it was stored (memcached's `ITEM_FETCHED`, meta `h`).
pub const BIT_FETCHED: u8 = 1;
/// Marked stale by `md ... I` or a stale `ms ... I` (meta `X`).
pub const BIT_STALE: u8 = 2;
/// A client already got the recache win token (meta `W`, then `Z`).
pub const BIT_TOKEN_SENT: u8 = 4;
/// The key was given base64-encoded (meta `b`): `k` returns it encoded again.
pub const BIT_KEY_BINARY: u8 = 8;

const META_LEN: usize = 17;

/// The per-item fields memcached keeps beside the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ItemMeta {
    /// The 64-bit CAS unique value.
    pub cas: u64,
    /// The opaque 32-bit client flags.
    pub flags: u32,
    /// Last access (or store) time, Unix seconds.
    pub time: u32,
    /// `BIT_*` flags.
    pub bits: u8,
}

impl ItemMeta {
    fn encode(&self) -> [u8; META_LEN] {
        let mut m = [0u8; META_LEN];
        m[..8].copy_from_slice(&self.cas.to_be_bytes());
        m[8..12].copy_from_slice(&self.flags.to_be_bytes());
        m[12..16].copy_from_slice(&self.time.to_be_bytes());
        m[16] = self.bits;
        m
    }

    fn decode(b: &[u8]) -> Option<ItemMeta> {
        let b: &[u8; META_LEN] = b.get(..META_LEN)?.try_into().ok()?;
        Some(ItemMeta {
            cas: u64::from_be_bytes(b[..8].try_into().ok()?),
            flags: u32::from_be_bytes(b[8..12].try_into().ok()?),
            time: u32::from_be_bytes(b[12..16].try_into().ok()?),
            bits: b[16],
        })
    }

    /// True when `bit` is set.
    pub fn has(&self, bit: u8) -> bool {
        self.bits & bit != 0
    }
}

/// A stored item as read in one transaction.
#[derive(Debug, Clone, Copy)]
pub struct Item<'tx> {
    /// Its fields.
    pub meta: ItemMeta,
    /// Absolute expiry in Unix seconds; 0 = never.
    pub exp: i64,
    header: Header<'tx>,
}

impl Item<'_> {
    /// The value's length in bytes.
    pub fn len(&self) -> u64 {
        match self.header.body {
            Body::Inline(b) => (b.len() - META_LEN) as u64,
            Body::Id { len, .. } => len,
        }
    }

    /// True when the value is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Expired at `now` (Unix seconds): memcached's `exptime <= current_time`.
    pub fn expired(&self, now: i64) -> bool {
        self.exp != 0 && self.exp <= now
    }
}

fn corrupt(what: &str, key: &[u8]) -> rivet::Error {
    rivet::Error::corrupted(
        0,
        format!(
            "{what} for memcached item {:?}",
            String::from_utf8_lossy(key)
        ),
    )
}

impl<'tx> DbView<'tx> {
    /// The stored item under `key`, expired or not; an entry that is not an item is reported
    /// as corruption.
    pub fn item_raw(&self, key: &[u8]) -> Result<Option<Item<'tx>>> {
        let Some(h) = self.lookup_raw(key)? else {
            return Ok(None);
        };
        if h.kind != Kind::Item {
            return Err(corrupt("a non-item entry", key));
        }
        let meta = match h.body {
            Body::Inline(b) => ItemMeta::decode(b),
            Body::Id { extra, .. } => ItemMeta::decode(extra),
        }
        .ok_or_else(|| corrupt("a short item header", key))?;
        Ok(Some(Item {
            meta,
            exp: h.expire_at.map_or(0, |ms| ms.div_euclid(1000)),
            header: h,
        }))
    }

    /// The whole value of `it`.
    pub fn item_value(&self, it: &Item<'tx>) -> Result<Cow<'tx, [u8]>> {
        match it.header.body {
            Body::Inline(b) => Ok(Cow::Borrowed(&b[META_LEN..])),
            Body::Id { .. } => Ok(Cow::Owned(self.string_bytes(&it.header)?)),
        }
    }

    /// Stores `value` under `key` with `meta` and expiry `exp` (Unix seconds, 0 = never),
    /// replacing `old` (the current entry, as read in this transaction).
    pub fn item_put(
        &self,
        key: &[u8],
        old: Option<&Item<'_>>,
        meta: ItemMeta,
        exp: i64,
        value: &[u8],
    ) -> Result<()> {
        if let Some(Body::Id { id, .. }) = old.map(|o| o.header.body) {
            self.free_chunks(id)?;
        }
        let expire_at = (exp != 0).then(|| exp.saturating_mul(1000));
        let m = meta.encode();
        let old_h = old.map(|o| o.header);
        if value.len() <= INLINE_MAX {
            let mut inline = Vec::with_capacity(META_LEN + value.len());
            inline.extend_from_slice(&m);
            inline.extend_from_slice(value);
            let h = Header {
                kind: Kind::Item,
                expire_at,
                body: Body::Inline(&inline),
            };
            return self.put_header(key, old_h.as_ref(), &h);
        }
        let id = self.new_id()?;
        self.write_chunks(id, 0, value)?;
        let h = Header {
            kind: Kind::Item,
            expire_at,
            body: Body::Id {
                id,
                len: value.len() as u64,
                extra: &m,
            },
        };
        self.put_header(key, old_h.as_ref(), &h)
    }

    /// Rewrites the fields and expiry of the item `old` under `key`, keeping its value.
    pub fn item_update(&self, key: &[u8], old: &Item<'_>, meta: ItemMeta, exp: i64) -> Result<()> {
        let expire_at = (exp != 0).then(|| exp.saturating_mul(1000));
        let m = meta.encode();
        match old.header.body {
            Body::Inline(b) => {
                let mut inline = b.to_vec();
                inline[..META_LEN].copy_from_slice(&m);
                let h = Header {
                    kind: Kind::Item,
                    expire_at,
                    body: Body::Inline(&inline),
                };
                self.put_header(key, Some(&old.header), &h)
            }
            Body::Id { id, len, .. } => {
                let h = Header {
                    kind: Kind::Item,
                    expire_at,
                    body: Body::Id { id, len, extra: &m },
                };
                self.put_header(key, Some(&old.header), &h)
            }
        }
    }

    /// Removes the item `it` stored under `key`, with its chunks and deadline.
    pub fn item_delete(&self, key: &[u8], it: &Item<'_>) -> Result<()> {
        self.delete_entry(key, &it.header)
    }

    /// Empties this namespace's buckets (`flush_all`).
    pub fn flush_namespace(&self) -> Result<()> {
        for name in self.names.all() {
            self.tx.delete_bucket(name)?;
            self.tx.create_bucket(name)?;
        }
        Ok(())
    }

    /// Reads a counter of `memcached/state` (0 when absent).
    pub fn mc_state(&self, name: &[u8]) -> Result<i64> {
        let b = self
            .tx()
            .bucket(STATE_BUCKET)?
            .ok_or_else(|| rivet::Error::corrupted(0, "bucket memcached/state is missing"))?;
        match b.get(name)? {
            None => Ok(0),
            Some(v) => v
                .try_into()
                .map(i64::from_be_bytes)
                .map_err(|_| corrupt("a malformed counter", name)),
        }
    }

    /// Writes a counter of `memcached/state`.
    pub fn set_mc_state(&self, name: &[u8], v: i64) -> Result<()> {
        self.tx()
            .bucket(STATE_BUCKET)?
            .ok_or_else(|| rivet::Error::corrupted(0, "bucket memcached/state is missing"))?
            .put(name, &v.to_be_bytes())
    }
}
