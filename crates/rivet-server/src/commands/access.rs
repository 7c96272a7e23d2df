//! Typed key access for collection commands: find a key's collection for reading or writing,
//! with Redis's WRONGTYPE rule.

use bytes::Bytes;

use super::args::{err, WRONGTYPE};
use crate::resp::Reply;
use crate::store::collections::Coll;
use crate::store::keyspace::{Header, Kind, MAX_KEY_LEN};
use crate::store::DbView;

/// A collection found by a lookup: its header as stored (for rewriting) and its fields.
pub type Found<'tx> = Option<(Header<'tx>, Coll)>;

/// Result of a typed lookup: engine error outside, wrong type (a ready reply) inside.
pub type Typed<'tx> = Result<Result<Found<'tx>, Reply>, rivet::Error>;

fn check<'tx>(h: Option<Header<'tx>>, kind: Kind) -> Result<Found<'tx>, Reply> {
    match h {
        None => Ok(None),
        Some(h) if h.kind != kind => Err(err(WRONGTYPE)),
        Some(h) => match Coll::of(&h) {
            Some(c) => Ok(Some((h, c))),
            None => Err(err(WRONGTYPE)),
        },
    }
}

/// The live collection of `kind` at `key`, for reading.
pub fn read<'tx>(v: &DbView<'tx>, key: &[u8], now: i64, kind: Kind) -> Typed<'tx> {
    Ok(check(v.lookup(key, now)?, kind))
}

/// The live collection of `kind` at `key`, for writing (an expired key is deleted first).
pub fn write<'tx>(v: &DbView<'tx>, key: &[u8], now: i64, kind: Kind) -> Typed<'tx> {
    if key.len() > MAX_KEY_LEN {
        return Ok(Err(err(super::args::KEY_TOO_LONG)));
    }
    Ok(check(v.lookup_for_write(key, now)?, kind))
}

/// The first of `keys` with a non-empty collection, for writing: its key, header and fields.
pub type First<'k, 'tx> = Option<(&'k Bytes, Header<'tx>, Coll)>;

/// The first of `keys` holding a non-empty collection of `kind`, for writing, as LMPOP,
/// ZMPOP and the blocking pops look for it: missing keys are skipped, a key of another type
/// stops the search with WRONGTYPE.
pub fn first_nonempty<'k, 'tx>(
    v: &DbView<'tx>,
    keys: &'k [Bytes],
    now: i64,
    kind: Kind,
) -> Result<Result<First<'k, 'tx>, Reply>, rivet::Error> {
    for k in keys {
        match write(v, k, now, kind)? {
            Ok(Some((h, c))) if c.len > 0 => return Ok(Ok(Some((k, h, c)))),
            Ok(_) => continue,
            Err(reply) => return Ok(Err(reply)),
        }
    }
    Ok(Ok(None))
}

/// The collection to write into: the existing one or a new empty one.
pub fn or_new(v: &DbView<'_>, found: &Found<'_>, kind: Kind) -> Result<Coll, rivet::Error> {
    match found {
        Some((_, c)) => Ok(*c),
        None => v.coll_new(kind),
    }
}
