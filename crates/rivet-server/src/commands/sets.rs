//! Set commands (Redis `t_set.c`): each member is its own entry, and the rank index
//! (`store::rank`) lets SRANDMEMBER and SPOP pick uniformly random members in O(log n) each.
//!
//! Set algebra: SINTER and SINTERCARD walk the smallest set and probe the others with point
//! lookups; SDIFF walks the first set and probes the rest; SUNION walks them all. The STORE
//! forms compute the result first (a source may be the destination), then replace the
//! destination whatever its type, or delete it when the result is empty.

use std::collections::BTreeSet;

use bytes::Bytes;

use super::access::{or_new, read, write};
use super::args::{err, int, is, SYNTAX};
use super::strings::{arg, tri};
use super::zsets::{random_members, random_of};
use super::{CmdResult, Ctx};
use crate::resp::Reply;
use crate::store::collections::Coll;
use crate::store::keyspace::{Kind, MAX_KEY_LEN};
use crate::store::DbView;

/// SADD key member [member ...]
pub fn sadd(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let found = tri!(write(&v, &a[1], ctx.now_ms, Kind::Set));
    let mut c = or_new(&v, &found, Kind::Set)?;
    let mut added = 0;
    for m in &a[2..] {
        if v.set_add(c.id, m)? {
            added += 1;
        }
    }
    if added > 0 || found.is_none() {
        c.len += added;
        v.coll_save(&a[1], found.as_ref().map(|f| &f.0), &c)?;
    }
    Ok(Reply::Int(added as i64))
}

/// SREM key member [member ...]
pub fn srem(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let Some((h, mut c)) = tri!(write(&v, &a[1], ctx.now_ms, Kind::Set)) else {
        return Ok(Reply::Int(0));
    };
    let mut n = 0;
    for m in &a[2..] {
        if v.set_remove(c.id, m)? {
            n += 1;
        }
    }
    if n > 0 {
        c.len -= n;
        v.coll_save(&a[1], Some(&h), &c)?;
    }
    Ok(Reply::Int(n as i64))
}

/// SISMEMBER key member
pub fn sismember(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let Some((_, c)) = tri!(read(&v, &a[1], ctx.now_ms, Kind::Set)) else {
        return Ok(Reply::Int(0));
    };
    Ok(Reply::Int(v.coll_get(c.id, &a[2])?.is_some() as i64))
}

/// SMISMEMBER key member [member ...]
pub fn smismember(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let found = tri!(read(&v, &a[1], ctx.now_ms, Kind::Set));
    let mut out = Vec::new();
    for m in &a[2..] {
        let hit = match &found {
            Some((_, c)) => v.coll_get(c.id, m)?.is_some(),
            None => false,
        };
        out.push(Reply::Int(hit as i64));
    }
    Ok(Reply::Array(out))
}

/// SCARD key
pub fn scard(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let found = tri!(read(&v, &a[1], ctx.now_ms, Kind::Set));
    Ok(Reply::Int(found.map(|f| f.1.len as i64).unwrap_or(0)))
}

fn members(v: &DbView<'_>, id: u64) -> Result<Vec<Vec<u8>>, rivet::Error> {
    let mut out = Vec::new();
    v.coll_scan(id, &[], None, false, |m, _| {
        out.push(m.to_vec());
        Ok(true)
    })?;
    Ok(out)
}

/// SMEMBERS key
pub fn smembers(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let Some((_, c)) = tri!(read(&v, &a[1], ctx.now_ms, Kind::Set)) else {
        return Ok(Reply::Set(vec![]));
    };
    Ok(Reply::Set(
        members(&v, c.id)?.into_iter().map(Reply::Bulk).collect(),
    ))
}

/// SRANDMEMBER key [count]
pub fn srandmember(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    if a.len() > 3 {
        return Ok(err(super::args::SYNTAX));
    }
    let count = if a.len() == 3 {
        Some(arg!(int(&a[2])))
    } else {
        None
    };
    if count == Some(i64::MIN) {
        return Ok(err(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    let Some(picked) = tri!(random_of(ctx, &a[1], Kind::Set, count)) else {
        return Ok(if count.is_some() {
            Reply::Array(vec![])
        } else {
            Reply::Nil
        });
    };
    let mut members = picked.into_iter().map(|(m, _)| Reply::Bulk(m));
    match count {
        None => Ok(members.next().unwrap_or(Reply::Nil)),
        Some(_) => Ok(Reply::Array(members.collect())),
    }
}

/// SPOP key [count]
pub fn spop(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let count = arg!(super::args::optional_count(a, 2));
    let v = ctx.view()?;
    let Some((h, mut c)) = tri!(write(&v, &a[1], ctx.now_ms, Kind::Set)) else {
        return Ok(if count.is_some() {
            Reply::Set(vec![])
        } else {
            Reply::Nil
        });
    };
    let n = count.unwrap_or(1).min(i64::MAX as u64) as i64;
    let picked: Vec<Vec<u8>> = random_members(&v, Kind::Set, &c, n)?
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    for m in &picked {
        v.set_remove(c.id, m)?;
    }
    c.len -= picked.len() as u64;
    v.coll_save(&a[1], Some(&h), &c)?;
    let mut members = picked.into_iter().map(Reply::Bulk);
    Ok(match count {
        None => members.next().unwrap_or(Reply::Nil),
        Some(_) => Reply::Set(members.collect()),
    })
}

/// SMOVE source destination member
pub fn smove(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let Some((sh, mut sc)) = tri!(write(&v, &a[1], ctx.now_ms, Kind::Set)) else {
        return Ok(Reply::Int(0));
    };
    if a[1] == a[2] {
        return Ok(Reply::Int(v.coll_get(sc.id, &a[3])?.is_some() as i64));
    }
    let found = tri!(write(&v, &a[2], ctx.now_ms, Kind::Set));
    if !v.set_remove(sc.id, &a[3])? {
        return Ok(Reply::Int(0));
    }
    sc.len -= 1;
    v.coll_save(&a[1], Some(&sh), &sc)?;
    let mut dc = or_new(&v, &found, Kind::Set)?;
    if v.set_add(dc.id, &a[3])? {
        dc.len += 1;
        v.coll_save(&a[2], found.as_ref().map(|f| &f.0), &dc)?;
    }
    Ok(Reply::Int(1))
}

/// The sets at `keys`, `None` for a missing key; WRONGTYPE if any key holds another type.
fn sources(
    v: &DbView<'_>,
    keys: &[Bytes],
    now: i64,
) -> Result<Result<Vec<Option<Coll>>, Reply>, rivet::Error> {
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        match read(v, k, now, Kind::Set)? {
            Ok(found) => out.push(found.map(|f| f.1)),
            Err(reply) => return Ok(Err(reply)),
        }
    }
    Ok(Ok(out))
}

/// Calls `f` with each member of the intersection of `sets` (empty if one is missing) until
/// it returns false: walks the smallest set, probing the others.
fn intersect(
    v: &DbView<'_>,
    sets: &[Option<Coll>],
    mut f: impl FnMut(&[u8]) -> bool,
) -> Result<(), rivet::Error> {
    let Some(mut sets) = sets.iter().copied().collect::<Option<Vec<Coll>>>() else {
        return Ok(());
    };
    sets.sort_by_key(|c| c.len);
    let Some((smallest, rest)) = sets.split_first() else {
        return Ok(());
    };
    v.coll_scan(smallest.id, &[], None, false, |m, _| {
        for c in rest {
            if c.id != smallest.id && v.coll_get(c.id, m)?.is_none() {
                return Ok(true);
            }
        }
        Ok(f(m))
    })
}

/// The members of the first set that are in none of the others.
fn difference(v: &DbView<'_>, sets: &[Option<Coll>]) -> Result<Vec<Vec<u8>>, rivet::Error> {
    let mut out = Vec::new();
    let Some((Some(first), rest)) = sets.split_first() else {
        return Ok(out);
    };
    let rest: Vec<Coll> = rest.iter().flatten().copied().collect();
    if rest.iter().any(|c| c.id == first.id) {
        return Ok(out); // the first set minus itself
    }
    v.coll_scan(first.id, &[], None, false, |m, _| {
        for c in &rest {
            if v.coll_get(c.id, m)?.is_some() {
                return Ok(true);
            }
        }
        out.push(m.to_vec());
        Ok(true)
    })?;
    Ok(out)
}

/// The members of any of `sets`, in byte order.
fn union(v: &DbView<'_>, sets: &[Option<Coll>]) -> Result<BTreeSet<Vec<u8>>, rivet::Error> {
    let mut out = BTreeSet::new();
    for c in sets.iter().flatten() {
        v.coll_scan(c.id, &[], None, false, |m, _| {
            if !out.contains(m) {
                out.insert(m.to_vec());
            }
            Ok(true)
        })?;
    }
    Ok(out)
}

/// Which set operation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Inter,
    Union,
    Diff,
}

/// The result of `op` over the sets at `keys`, or WRONGTYPE.
fn compute(
    v: &DbView<'_>,
    keys: &[Bytes],
    now: i64,
    op: SetOp,
) -> Result<Result<Vec<Vec<u8>>, Reply>, rivet::Error> {
    let sets = match sources(v, keys, now)? {
        Ok(s) => s,
        Err(reply) => return Ok(Err(reply)),
    };
    Ok(Ok(match op {
        SetOp::Inter => {
            let mut out = Vec::new();
            intersect(v, &sets, |m| {
                out.push(m.to_vec());
                true
            })?;
            out
        }
        SetOp::Union => union(v, &sets)?.into_iter().collect(),
        SetOp::Diff => difference(v, &sets)?,
    }))
}

/// Replaces `dst` (whatever it holds) with a set of `members` (distinct), or deletes it when
/// there are none; replies with the new cardinality.
fn store(v: &DbView<'_>, dst: &[u8], now: i64, members: &[Vec<u8>]) -> CmdResult {
    if members.is_empty() {
        v.delete_key(dst, now)?;
        return Ok(Reply::Int(0));
    }
    if dst.len() > MAX_KEY_LEN {
        return Ok(err(super::args::KEY_TOO_LONG));
    }
    v.replace_collection(dst, now, Kind::Set, members.len() as u64, |c| {
        for m in members {
            v.coll_put(c.id, m, b"")?;
        }
        Ok(())
    })?;
    Ok(Reply::Int(members.len() as i64))
}

fn set_op(ctx: &mut Ctx<'_>, a: &[Bytes], op: SetOp, stored: bool) -> CmdResult {
    let v = ctx.view()?;
    let keys = if stored { &a[2..] } else { &a[1..] };
    let members = tri!(compute(&v, keys, ctx.now_ms, op));
    if stored {
        return store(&v, &a[1], ctx.now_ms, &members);
    }
    Ok(Reply::Set(members.into_iter().map(Reply::Bulk).collect()))
}

/// SINTER key [key ...]
pub fn sinter(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    set_op(ctx, a, SetOp::Inter, false)
}

/// SINTERSTORE destination key [key ...]
pub fn sinterstore(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    set_op(ctx, a, SetOp::Inter, true)
}

/// SUNION key [key ...]
pub fn sunion(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    set_op(ctx, a, SetOp::Union, false)
}

/// SUNIONSTORE destination key [key ...]
pub fn sunionstore(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    set_op(ctx, a, SetOp::Union, true)
}

/// SDIFF key [key ...]
pub fn sdiff(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    set_op(ctx, a, SetOp::Diff, false)
}

/// SDIFFSTORE destination key [key ...]
pub fn sdiffstore(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    set_op(ctx, a, SetOp::Diff, true)
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit]
pub fn sintercard(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let numkeys = match int(&a[1]) {
        Ok(n) if n >= 1 => n as u64,
        _ => return Ok(err("ERR numkeys should be greater than 0")),
    };
    if numkeys > (a.len() - 2) as u64 {
        return Ok(err(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    let end = 2 + numkeys as usize;
    let mut limit = 0u64;
    let mut j = end;
    while j < a.len() {
        if is(&a[j], "limit") && j + 1 < a.len() {
            limit = match int(&a[j + 1]) {
                Ok(n) if n >= 0 => n as u64,
                _ => return Ok(err("ERR LIMIT can't be negative")),
            };
            j += 2;
        } else {
            return Ok(err(SYNTAX));
        }
    }
    let v = ctx.view()?;
    let sets = tri!(sources(&v, &a[2..end], ctx.now_ms));
    let mut n = 0u64;
    intersect(&v, &sets, |_| {
        n += 1;
        limit == 0 || n < limit
    })?;
    Ok(Reply::Int(n as i64))
}
