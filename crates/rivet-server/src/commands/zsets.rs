//! Sorted-set commands (Redis `t_zset.c`). Two orders on disk: member → score, and
//! (order-preserving score bytes, member), so score order is a range scan and ZADD/ZREM/ZSCORE
//! are O(log n). Rank by index walks the score order from the nearer end.

use bytes::Bytes;

use super::access::{or_new, read, write};
use super::args::{err, int, is, parse_f64, NOT_FLOAT, SYNTAX};
use super::strings::{arg, tri};
use super::{CmdResult, Ctx};
use crate::resp::Reply;
use crate::store::collections::{score_from_sortable, sortable_score, Coll};
use crate::store::keyspace::Kind;
use crate::store::DbView;

fn member_sub(m: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + m.len());
    k.push(b'm');
    k.extend_from_slice(m);
    k
}

fn order_sub(score: f64, m: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + m.len());
    k.push(b's');
    k.extend_from_slice(&sortable_score(score));
    k.extend_from_slice(m);
    k
}

fn score_of(v: &DbView<'_>, c: &Coll, m: &[u8]) -> Result<Option<f64>, rivet::Error> {
    Ok(v.coll_get(c.id, &member_sub(m))?.map(|b| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[..8.min(b.len())]);
        f64::from_bits(u64::from_be_bytes(a))
    }))
}

/// Sets member `m` to `score`; returns whether it is new.
fn put(
    v: &DbView<'_>,
    c: &Coll,
    m: &[u8],
    old: Option<f64>,
    score: f64,
) -> Result<bool, rivet::Error> {
    if let Some(o) = old {
        v.coll_del(c.id, &order_sub(o, m))?;
    }
    v.coll_put(c.id, &member_sub(m), &score.to_bits().to_be_bytes())?;
    v.coll_put(c.id, &order_sub(score, m), b"")?;
    Ok(old.is_none())
}

/// ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]
pub fn zadd(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    zadd_generic(ctx, a, false)
}

/// ZINCRBY key increment member
pub fn zincrby(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    zadd_generic(ctx, a, true)
}

fn zadd_generic(ctx: &mut Ctx<'_>, a: &[Bytes], zincrby: bool) -> CmdResult {
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
        (false, false, false, false, false, zincrby);
    let mut i = 2;
    if !zincrby {
        while i < a.len() {
            let o = &a[i];
            if is(o, "nx") {
                nx = true;
            } else if is(o, "xx") {
                xx = true;
            } else if is(o, "gt") {
                gt = true;
            } else if is(o, "lt") {
                lt = true;
            } else if is(o, "ch") {
                ch = true;
            } else if is(o, "incr") {
                incr = true;
            } else {
                break;
            }
            i += 1;
        }
    }
    let pairs = &a[i..];
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return Ok(err(SYNTAX));
    }
    if nx && xx {
        return Ok(err(
            "ERR XX and NX options at the same time are not compatible",
        ));
    }
    if (nx && (gt || lt)) || (gt && lt) {
        return Ok(err(
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if incr && pairs.len() > 2 {
        return Ok(err(
            "ERR INCR option supports a single increment-element pair",
        ));
    }
    let mut scores = Vec::with_capacity(pairs.len() / 2);
    for p in pairs.chunks(2) {
        match parse_f64(&p[0]) {
            Some(s) => scores.push(s),
            None => return Ok(err(NOT_FLOAT)),
        }
    }
    let v = ctx.view()?;
    let found = tri!(write(&v, &a[1], ctx.now_ms, Kind::ZSet));
    let mut c = or_new(&v, &found, Kind::ZSet)?;
    let (mut added, mut changed) = (0u64, 0u64);
    let mut incr_result = None;
    for (p, &s) in pairs.chunks(2).zip(&scores) {
        let m = &p[1];
        let old = if found.is_some() || c.len > 0 {
            score_of(&v, &c, m)?
        } else {
            None
        };
        if (nx && old.is_some()) || (xx && old.is_none()) {
            continue;
        }
        let mut new = s;
        if incr {
            new = old.unwrap_or(0.0) + s;
            if new.is_nan() {
                return Ok(err("ERR resulting score is not a number (NaN)"));
            }
        }
        if let Some(o) = old {
            if (gt && new <= o) || (lt && new >= o) {
                continue;
            }
            if o != new {
                put(&v, &c, m, old, new)?;
                changed += 1;
            }
        } else {
            put(&v, &c, m, None, new)?;
            added += 1;
            c.len += 1;
        }
        incr_result = Some(new);
    }
    v.coll_save(&a[1], found.as_ref().map(|f| &f.0), &c)?;
    if incr {
        return Ok(match incr_result {
            Some(s) => Reply::Double(s),
            None => Reply::Nil,
        });
    }
    Ok(Reply::Int((added + if ch { changed } else { 0 }) as i64))
}

/// ZSCORE key member
pub fn zscore(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let Some((_, c)) = tri!(read(&v, &a[1], ctx.now_ms, Kind::ZSet)) else {
        return Ok(Reply::Nil);
    };
    Ok(score_of(&v, &c, &a[2])?
        .map(Reply::Double)
        .unwrap_or(Reply::Nil))
}

/// ZCARD key
pub fn zcard(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let found = tri!(read(&v, &a[1], ctx.now_ms, Kind::ZSet));
    Ok(Reply::Int(found.map(|f| f.1.len as i64).unwrap_or(0)))
}

/// ZREM key member [member ...]
pub fn zrem(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let Some((h, mut c)) = tri!(write(&v, &a[1], ctx.now_ms, Kind::ZSet)) else {
        return Ok(Reply::Int(0));
    };
    let mut n = 0;
    for m in &a[2..] {
        if let Some(s) = score_of(&v, &c, m)? {
            v.coll_del(c.id, &member_sub(m))?;
            v.coll_del(c.id, &order_sub(s, m))?;
            n += 1;
        }
    }
    c.len -= n;
    v.coll_save(&a[1], Some(&h), &c)?;
    Ok(Reply::Int(n as i64))
}

/// ZRANGE key start stop [REV] [WITHSCORES] (by index) and ZREVRANGE.
pub fn zrange(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let mut rev = is(&a[0], "zrevrange");
    let mut withscores = false;
    for o in &a[4..] {
        if is(o, "withscores") {
            withscores = true;
        } else if is(o, "rev") && !is(&a[0], "zrevrange") {
            rev = true;
        } else if !is(&a[0], "zrevrange") && (is(o, "byscore") || is(o, "bylex") || is(o, "limit"))
        {
            return Ok(err(
                "ERR ZRANGE BYSCORE, BYLEX and LIMIT are not supported by rivet-server yet",
            ));
        } else {
            return Ok(err(SYNTAX));
        }
    }
    let start = arg!(int(&a[2]));
    let end = arg!(int(&a[3]));
    let v = ctx.view()?;
    let Some((_, c)) = tri!(read(&v, &a[1], ctx.now_ms, Kind::ZSet)) else {
        return Ok(Reply::Array(vec![]));
    };
    let Some((s, e)) = super::args::list_range(c.len as i64, start, end) else {
        return Ok(Reply::Array(vec![]));
    };
    let mut out = Vec::new();
    let mut idx = 0i64;
    v.coll_scan(c.id, b"s", None, rev, |k, _| {
        if idx >= s {
            let (score, m) = k.split_at(8.min(k.len()));
            let mut b = [0u8; 8];
            b.copy_from_slice(&score[..8.min(score.len())]);
            if withscores && ctx.proto >= 3 {
                out.push(Reply::Array(vec![
                    Reply::bulk(m),
                    Reply::Double(score_from_sortable(b)),
                ]));
            } else {
                out.push(Reply::bulk(m));
                if withscores {
                    out.push(Reply::Double(score_from_sortable(b)));
                }
            }
        }
        idx += 1;
        Ok(idx <= e)
    })?;
    Ok(Reply::Array(out))
}
