//! Set commands (Redis `t_set.c`): each member is its own entry, and the rank index
//! (`store::rank`) lets SRANDMEMBER and SPOP pick uniformly random members in O(log n) each.

use bytes::Bytes;

use super::access::{or_new, read, write};
use super::args::{err, int};
use super::strings::{arg, tri};
use super::zsets::random_members;
use super::{CmdResult, Ctx};
use crate::resp::Reply;
use crate::store::keyspace::Kind;
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
    let v = ctx.view()?;
    let Some((_, c)) = tri!(read(&v, &a[1], ctx.now_ms, Kind::Set)) else {
        return Ok(if count.is_some() {
            Reply::Array(vec![])
        } else {
            Reply::Nil
        });
    };
    let picked = random_members(&v, Kind::Set, &c, count.unwrap_or(1))?;
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
