//! List commands (Redis `t_list.c`). Elements sit at consecutive positions `head..head+len`,
//! so push, pop, LINDEX and LSET anywhere are one B+tree operation and LRANGE is a range scan.

use bytes::Bytes;

use super::access::{or_new, read, write};
use super::args::{err, int};
use super::strings::{arg, tri};
use super::{CmdResult, Ctx};
use crate::resp::{Reply, OK};
use crate::store::collections::{list_pos, Coll};
use crate::store::keyspace::Kind;
use crate::store::DbView;

fn push(ctx: &mut Ctx<'_>, a: &[Bytes], left: bool, only_existing: bool) -> CmdResult {
    let v = ctx.view()?;
    let found = tri!(write(&v, &a[1], ctx.now_ms, Kind::List));
    if found.is_none() && only_existing {
        return Ok(Reply::Int(0));
    }
    let mut c = or_new(&v, &found, Kind::List)?;
    for e in &a[2..] {
        if left {
            c.head -= 1;
            v.coll_put(c.id, &list_pos(c.head), e)?;
        } else {
            v.coll_put(c.id, &list_pos(c.head + c.len as i64), e)?;
        }
        c.len += 1;
    }
    v.coll_save(&a[1], found.as_ref().map(|f| &f.0), &c)?;
    Ok(Reply::Int(c.len as i64))
}

/// LPUSH key element [element ...]
pub fn lpush(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    push(ctx, a, true, false)
}

/// RPUSH key element [element ...]
pub fn rpush(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    push(ctx, a, false, false)
}

/// LPUSHX key element [element ...]
pub fn lpushx(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    push(ctx, a, true, true)
}

/// RPUSHX key element [element ...]
pub fn rpushx(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    push(ctx, a, false, true)
}

/// Removes and returns up to `n` elements from one end.
pub fn pop_n(
    v: &DbView<'_>,
    c: &mut Coll,
    n: u64,
    left: bool,
) -> Result<Vec<Vec<u8>>, rivet::Error> {
    let mut out = Vec::new();
    for _ in 0..n.min(c.len) {
        let pos = if left {
            c.head
        } else {
            c.head + c.len as i64 - 1
        };
        let e = v
            .coll_get(c.id, &list_pos(pos))?
            .map(|e| e.to_vec())
            .unwrap_or_default();
        v.coll_del(c.id, &list_pos(pos))?;
        if left {
            c.head += 1;
        }
        c.len -= 1;
        out.push(e);
    }
    Ok(out)
}

fn pop(ctx: &mut Ctx<'_>, a: &[Bytes], left: bool) -> CmdResult {
    let count = arg!(super::args::optional_count(a, 2));
    let v = ctx.view()?;
    let Some((h, mut c)) = tri!(write(&v, &a[1], ctx.now_ms, Kind::List)) else {
        return Ok(if count.is_some() {
            Reply::NilArray
        } else {
            Reply::Nil
        });
    };
    let items = pop_n(&v, &mut c, count.unwrap_or(1), left)?;
    v.coll_save(&a[1], Some(&h), &c)?;
    Ok(match count {
        None => Reply::Bulk(items.into_iter().next().unwrap_or_default()),
        Some(_) => Reply::Array(items.into_iter().map(Reply::Bulk).collect()),
    })
}

/// LPOP key [count]
pub fn lpop(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    pop(ctx, a, true)
}

/// RPOP key [count]
pub fn rpop(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    pop(ctx, a, false)
}

/// LLEN key
pub fn llen(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let found = tri!(read(&v, &a[1], ctx.now_ms, Kind::List));
    Ok(Reply::Int(found.map(|f| f.1.len as i64).unwrap_or(0)))
}

/// Maps a Redis index (negative from the end) to a position, if in range.
fn index_pos(c: &Coll, i: i64) -> Option<i64> {
    let len = c.len as i64;
    let i = if i < 0 { i + len } else { i };
    (0..len).contains(&i).then_some(c.head + i)
}

/// LINDEX key index
pub fn lindex(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let i = arg!(int(&a[2]));
    let v = ctx.view()?;
    let Some((_, c)) = tri!(read(&v, &a[1], ctx.now_ms, Kind::List)) else {
        return Ok(Reply::Nil);
    };
    match index_pos(&c, i) {
        Some(p) => Ok(Reply::opt_bulk(v.coll_get(c.id, &list_pos(p))?)),
        None => Ok(Reply::Nil),
    }
}

/// LSET key index element
pub fn lset(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let i = arg!(int(&a[2]));
    let v = ctx.view()?;
    let Some((h, c)) = tri!(write(&v, &a[1], ctx.now_ms, Kind::List)) else {
        return Ok(err(super::args::NO_SUCH_KEY));
    };
    let Some(p) = index_pos(&c, i) else {
        return Ok(err("ERR index out of range"));
    };
    v.coll_put(c.id, &list_pos(p), &a[3])?;
    v.coll_save(&a[1], Some(&h), &c)?;
    Ok(OK)
}

/// LRANGE key start stop
pub fn lrange(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let start = arg!(int(&a[2]));
    let end = arg!(int(&a[3]));
    let v = ctx.view()?;
    let Some((_, c)) = tri!(read(&v, &a[1], ctx.now_ms, Kind::List)) else {
        return Ok(Reply::Array(vec![]));
    };
    let Some((s, e)) = super::args::list_range(c.len as i64, start, end) else {
        return Ok(Reply::Array(vec![]));
    };
    let mut out = Vec::with_capacity((e - s + 1) as usize);
    v.coll_scan(c.id, &[], Some(&list_pos(c.head + s)), false, |_, el| {
        out.push(Reply::bulk(el));
        Ok(out.len() < (e - s + 1) as usize)
    })?;
    Ok(Reply::Array(out))
}

/// LTRIM key start stop
pub fn ltrim(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let start = arg!(int(&a[2]));
    let end = arg!(int(&a[3]));
    let v = ctx.view()?;
    let Some((h, mut c)) = tri!(write(&v, &a[1], ctx.now_ms, Kind::List)) else {
        return Ok(OK);
    };
    let (keep_from, keep_to) = super::args::list_range(c.len as i64, start, end).unwrap_or((0, -1));
    let len = c.len as i64;
    for i in (0..keep_from.min(len)).chain((keep_to + 1).max(0)..len) {
        v.coll_del(c.id, &list_pos(c.head + i))?;
    }
    let kept = (keep_to - keep_from + 1).max(0);
    c.head += keep_from.min(len);
    c.len = kept as u64;
    v.coll_save(&a[1], Some(&h), &c)?;
    Ok(OK)
}
