//! Hash commands (Redis `t_hash.c`): each field is its own entry, so HGET/HSET/HDEL are one
//! B+tree operation whatever the hash's size.
//!
//! HRANDFIELD draws uniformly random field indexes, then walks the hash once (O(n)) to read
//! the fields at those indexes; a rank index would make the walk unnecessary.

use bytes::Bytes;
use rand::seq::SliceRandom;
use rand::Rng;

use super::access::{or_new, read, write};
use super::args::{err, int, is, SYNTAX};
use super::strings::{arg, tri};
use super::{arity_error, CmdResult, Ctx};
use crate::resp::{Reply, OK};
use crate::store::keyspace::Kind;
use crate::store::DbView;

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

/// Fields with their values.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// The fields (and values) at `indexes` (ascending, distinct) in the hash's order.
fn fields_at(v: &DbView<'_>, id: u64, indexes: &[u64]) -> Result<Pairs, rivet::Error> {
    let mut out = Vec::with_capacity(indexes.len());
    let mut next = indexes.iter().peekable();
    let mut i = 0u64;
    v.coll_scan(id, &[], None, false, |f, val| {
        if next.peek() == Some(&&i) {
            out.push((f.to_vec(), val.to_vec()));
            next.next();
        }
        i += 1;
        Ok(next.peek().is_some())
    })?;
    Ok(out)
}

/// The fields picked for a count: `n` draws with repetition when `repeat`, else `n` distinct
/// fields (all of them when `n` reaches the size), in random order. `size` must be above 0.
fn pick(v: &DbView<'_>, id: u64, size: u64, n: u64, repeat: bool) -> Result<Pairs, rivet::Error> {
    let mut rng = rand::thread_rng();
    if !repeat {
        let mut indexes: Vec<u64> = if n >= size {
            (0..size).collect()
        } else {
            rand::seq::index::sample(&mut rng, size as usize, n as usize)
                .into_iter()
                .map(|i| i as u64)
                .collect()
        };
        indexes.sort_unstable();
        let mut out = fields_at(v, id, &indexes)?;
        if n < size {
            out.shuffle(&mut rng);
        }
        return Ok(out);
    }
    let draws: Vec<u64> = (0..n).map(|_| rng.gen_range(0..size)).collect();
    let mut distinct = draws.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let fields = fields_at(v, id, &distinct)?;
    Ok(draws
        .iter()
        .filter_map(|d| {
            let at = distinct.binary_search(d).ok()?;
            fields.get(at).cloned()
        })
        .collect())
}

/// HRANDFIELD key [count [WITHVALUES]]
pub fn hrandfield(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    if a.len() == 2 {
        let v = ctx.view()?;
        let Some((_, c)) = tri!(read(&v, &a[1], ctx.now_ms, Kind::Hash)) else {
            return Ok(Reply::Nil);
        };
        if c.len == 0 {
            return Ok(Reply::Nil);
        }
        let mut picked = pick(&v, c.id, c.len, 1, true)?;
        return Ok(picked.pop().map_or(Reply::Nil, |(f, _)| Reply::Bulk(f)));
    }
    let n = arg!(int(&a[2]));
    if n == i64::MIN {
        return Ok(err(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    if a.len() > 4 || (a.len() == 4 && !is(&a[3], "withvalues")) {
        return Ok(err(SYNTAX));
    }
    let withvalues = a.len() == 4;
    if withvalues && n.unsigned_abs() > (i64::MAX / 2) as u64 {
        return Ok(err("ERR value is out of range"));
    }
    let v = ctx.view()?;
    let Some((_, c)) = tri!(read(&v, &a[1], ctx.now_ms, Kind::Hash)) else {
        return Ok(Reply::Array(vec![]));
    };
    let repeat = n < 0;
    let count = n.unsigned_abs();
    if count == 0 || c.len == 0 {
        return Ok(Reply::Array(vec![]));
    }
    if repeat && count > super::args::RANDOM_DRAWS_MAX {
        return Ok(err("ERR value is out of range"));
    }
    let picked = pick(&v, c.id, c.len, count, repeat)?;
    Ok(Reply::Array(match (withvalues, ctx.proto >= 3) {
        (false, _) => picked.into_iter().map(|(f, _)| Reply::Bulk(f)).collect(),
        (true, true) => picked
            .into_iter()
            .map(|(f, val)| Reply::Array(vec![Reply::Bulk(f), Reply::Bulk(val)]))
            .collect(),
        (true, false) => picked
            .into_iter()
            .flat_map(|(f, val)| [Reply::Bulk(f), Reply::Bulk(val)])
            .collect(),
    }))
}
