//! Hash commands (Redis `t_hash.c`): each field is its own entry, so HGET/HSET/HDEL are one
//! B+tree operation whatever the hash's size.

use bytes::Bytes;

use super::access::{or_new, read, write};
use super::args::{err, int};
use super::strings::{arg, tri};
use super::{arity_error, CmdResult, Ctx};
use crate::resp::{Reply, OK};
use crate::store::keyspace::Kind;

/// HSET key field value [field value ...] (and HMSET, which replies OK).
pub fn hset(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let hmset = super::args::is(&a[0], "hmset");
    if !a.len().is_multiple_of(2) {
        return Ok(arity_error(if hmset { "hmset" } else { "hset" }));
    }
    let v = ctx.view()?;
    let found = tri!(write(&v, &a[1], ctx.now_ms, Kind::Hash));
    let mut c = or_new(&v, &found, Kind::Hash)?;
    let mut added = 0;
    for p in a[2..].chunks(2) {
        if v.coll_put(c.id, &p[0], &p[1])? {
            added += 1;
        }
    }
    c.len += added;
    v.coll_save(&a[1], found.as_ref().map(|f| &f.0), &c)?;
    Ok(if hmset { OK } else { Reply::Int(added as i64) })
}

/// HSETNX key field value
pub fn hsetnx(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let found = tri!(write(&v, &a[1], ctx.now_ms, Kind::Hash));
    let mut c = or_new(&v, &found, Kind::Hash)?;
    if found.is_some() && v.coll_get(c.id, &a[2])?.is_some() {
        return Ok(Reply::Int(0));
    }
    v.coll_put(c.id, &a[2], &a[3])?;
    c.len += 1;
    v.coll_save(&a[1], found.as_ref().map(|f| &f.0), &c)?;
    Ok(Reply::Int(1))
}

/// HGET key field
pub fn hget(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let Some((_, c)) = tri!(read(&v, &a[1], ctx.now_ms, Kind::Hash)) else {
        return Ok(Reply::Nil);
    };
    Ok(Reply::opt_bulk(v.coll_get(c.id, &a[2])?))
}

/// HMGET key field [field ...]
pub fn hmget(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let found = tri!(read(&v, &a[1], ctx.now_ms, Kind::Hash));
    let mut out = Vec::with_capacity(a.len() - 2);
    for f in &a[2..] {
        out.push(match &found {
            Some((_, c)) => Reply::opt_bulk(v.coll_get(c.id, f)?),
            None => Reply::Nil,
        });
    }
    Ok(Reply::Array(out))
}

/// HDEL key field [field ...]
pub fn hdel(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let Some((h, mut c)) = tri!(write(&v, &a[1], ctx.now_ms, Kind::Hash)) else {
        return Ok(Reply::Int(0));
    };
    let mut n = 0;
    for f in &a[2..] {
        if v.coll_del(c.id, f)? {
            n += 1;
        }
    }
    if n > 0 {
        c.len -= n;
        v.coll_save(&a[1], Some(&h), &c)?;
    }
    Ok(Reply::Int(n as i64))
}

/// HLEN key
pub fn hlen(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let found = tri!(read(&v, &a[1], ctx.now_ms, Kind::Hash));
    Ok(Reply::Int(found.map(|f| f.1.len as i64).unwrap_or(0)))
}

/// HEXISTS key field
pub fn hexists(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let Some((_, c)) = tri!(read(&v, &a[1], ctx.now_ms, Kind::Hash)) else {
        return Ok(Reply::Int(0));
    };
    Ok(Reply::Int(v.coll_get(c.id, &a[2])?.is_some() as i64))
}

/// HSTRLEN key field
pub fn hstrlen(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let Some((_, c)) = tri!(read(&v, &a[1], ctx.now_ms, Kind::Hash)) else {
        return Ok(Reply::Int(0));
    };
    Ok(Reply::Int(
        v.coll_get(c.id, &a[2])?
            .map(|x| x.len() as i64)
            .unwrap_or(0),
    ))
}

fn walk(ctx: &mut Ctx<'_>, a: &[Bytes], keys: bool, values: bool) -> CmdResult {
    let v = ctx.view()?;
    let Some((_, c)) = tri!(read(&v, &a[1], ctx.now_ms, Kind::Hash)) else {
        return Ok(if keys && values {
            Reply::Map(vec![])
        } else {
            Reply::Array(vec![])
        });
    };
    let mut pairs = Vec::new();
    let mut items = Vec::new();
    v.coll_scan(c.id, &[], None, false, |f, val| {
        match (keys, values) {
            (true, true) => pairs.push((Reply::bulk(f), Reply::bulk(val))),
            (true, false) => items.push(Reply::bulk(f)),
            _ => items.push(Reply::bulk(val)),
        }
        Ok(true)
    })?;
    Ok(if keys && values {
        Reply::Map(pairs)
    } else {
        Reply::Array(items)
    })
}

/// HGETALL key
pub fn hgetall(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    walk(ctx, a, true, true)
}

/// HKEYS key
pub fn hkeys(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    walk(ctx, a, true, false)
}

/// HVALS key
pub fn hvals(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    walk(ctx, a, false, true)
}

/// HINCRBY key field increment
pub fn hincrby(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let by = arg!(int(&a[3]));
    let v = ctx.view()?;
    let found = tri!(write(&v, &a[1], ctx.now_ms, Kind::Hash));
    let mut c = or_new(&v, &found, Kind::Hash)?;
    let cur = match v.coll_get(c.id, &a[2])? {
        Some(x) => match crate::resp::parse::parse_i64(x) {
            Some(n) => Some(n),
            None => return Ok(err("ERR hash value is not an integer")),
        },
        None => None,
    };
    let Some(n) = cur.unwrap_or(0).checked_add(by) else {
        return Ok(err("ERR increment or decrement would overflow"));
    };
    if v.coll_put(c.id, &a[2], itoa::Buffer::new().format(n).as_bytes())? {
        c.len += 1;
    }
    v.coll_save(&a[1], found.as_ref().map(|f| &f.0), &c)?;
    Ok(Reply::Int(n))
}

/// HINCRBYFLOAT key field increment
pub fn hincrbyfloat(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    if !crate::numeric::is_long_double(&a[3]) {
        return Ok(err(super::args::NOT_FLOAT));
    }
    // Redis refuses an infinite increment before it looks at the key.
    if a[3].to_ascii_lowercase().windows(3).any(|w| w == b"inf") {
        return Ok(err("ERR value is NaN or Infinity"));
    }
    let v = ctx.view()?;
    let found = tri!(write(&v, &a[1], ctx.now_ms, Kind::Hash));
    let mut c = or_new(&v, &found, Kind::Hash)?;
    let cur = match v.coll_get(c.id, &a[2])? {
        Some(x) if !crate::numeric::is_long_double(x) => {
            return Ok(err("ERR hash value is not a float"))
        }
        Some(x) => x.to_vec(),
        None => b"0".to_vec(),
    };
    let Some(text) = crate::numeric::add_decimal_text(&cur, &a[3]) else {
        return Ok(err("ERR increment would produce NaN or Infinity"));
    };
    if v.coll_put(c.id, &a[2], text.as_bytes())? {
        c.len += 1;
    }
    v.coll_save(&a[1], found.as_ref().map(|f| &f.0), &c)?;
    Ok(Reply::Bulk(text.into_bytes()))
}
