//! Sorted-set range reads (Redis `t_zset.c`): ZRANGE with BYSCORE/BYLEX/REV/LIMIT and its
//! older forms (ZREVRANGE, ZRANGEBYSCORE, ZREVRANGEBYSCORE, ZRANGEBYLEX, ZREVRANGEBYLEX),
//! and ZRANGESTORE. Every form turns its range into a pair of ranks with the rank index,
//! then reads one run of the score order: LIMIT's offset costs nothing to skip.

use bytes::Bytes;

use super::access::read;
use super::args::{err, int, is, parse_f64, KEY_TOO_LONG, SYNTAX};
use super::strings::{arg, tri};
use super::zsets::{lex_rank_bounds, members_from_rank, score_rank_bounds, scored_reply, Scored};
use super::{CmdResult, Ctx};
use crate::resp::Reply;
use crate::store::collections::{zset_member_sub, zset_order_key, ZSET_ORDER};
use crate::store::keyspace::{Kind, MAX_KEY_LEN};
use crate::store::DbView;

/// A score interval as Redis's `zrangespec`.
#[derive(Debug, Clone, Copy)]
pub struct ScoreRange {
    /// Lower bound.
    pub min: f64,
    /// Upper bound.
    pub max: f64,
    /// The lower bound is exclusive (`(` prefix).
    pub min_ex: bool,
    /// The upper bound is exclusive.
    pub max_ex: bool,
}

/// One end of a lex interval as Redis's `zlexrangespec` reads it.
#[derive(Debug, Clone)]
pub enum LexBound {
    /// `-`: before every member.
    Min,
    /// `+`: after every member.
    Max,
    /// `[member`
    Incl(Vec<u8>),
    /// `(member`
    Excl(Vec<u8>),
}

/// A range bound as C's `strtod` reads it for ZRANGEBYSCORE (leading spaces allowed, the
/// empty string is 0, overflow gives infinity; NaN refused).
fn strtod(a: &[u8]) -> Option<f64> {
    let start = a
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(a.len());
    let t = &a[start..];
    if t.is_empty() {
        return Some(0.0);
    }
    parse_f64(t).or_else(|| {
        std::str::from_utf8(t)
            .ok()?
            .parse::<f64>()
            .ok()
            .filter(|x| !x.is_nan())
    })
}

fn score_bound(a: &[u8]) -> Option<(f64, bool)> {
    match a.strip_prefix(b"(") {
        Some(rest) => Some((strtod(rest)?, true)),
        None => Some((strtod(a)?, false)),
    }
}

/// Parses `min max` of a score range, with Redis's error.
pub fn parse_score_range(min: &[u8], max: &[u8]) -> Result<ScoreRange, Reply> {
    match (score_bound(min), score_bound(max)) {
        (Some((min, min_ex)), Some((max, max_ex))) => Ok(ScoreRange {
            min,
            max,
            min_ex,
            max_ex,
        }),
        _ => Err(err("ERR min or max is not a float")),
    }
}

fn lex_bound(a: &[u8]) -> Option<LexBound> {
    match a.split_first() {
        Some((b'+', [])) => Some(LexBound::Max),
        Some((b'-', [])) => Some(LexBound::Min),
        Some((b'[', m)) => Some(LexBound::Incl(m.to_vec())),
        Some((b'(', m)) => Some(LexBound::Excl(m.to_vec())),
        _ => None,
    }
}

/// Parses `min max` of a lex range, with Redis's error.
pub fn parse_lex_range(min: &[u8], max: &[u8]) -> Result<(LexBound, LexBound), Reply> {
    match (lex_bound(min), lex_bound(max)) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(err("ERR min or max not valid string range item")),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RangeType {
    Auto,
    Rank,
    Score,
    Lex,
}

/// The parsed range of one call.
enum Range {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexBound, LexBound),
}

/// ZRANGE, ZRANGESTORE, ZREVRANGE, ZRANGEBYSCORE, ZREVRANGEBYSCORE, ZRANGEBYLEX,
/// ZREVRANGEBYLEX.
pub fn zrange(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let name = String::from_utf8_lossy(&a[0]).to_ascii_lowercase();
    let store = name == "zrangestore";
    let (mut kind, mut rev) = match name.as_str() {
        "zrevrange" => (RangeType::Rank, Some(true)),
        "zrangebyscore" => (RangeType::Score, Some(false)),
        "zrevrangebyscore" => (RangeType::Score, Some(true)),
        "zrangebylex" => (RangeType::Lex, Some(false)),
        "zrevrangebylex" => (RangeType::Lex, Some(true)),
        _ => (RangeType::Auto, None),
    };
    let src = if store { 2 } else { 1 };
    let (mut withscores, mut limit) = (false, None::<(i64, i64)>);
    let mut j = src + 3;
    while j < a.len() {
        let o = &a[j];
        let left = a.len() - j - 1;
        if !store && is(o, "withscores") {
            withscores = true;
        } else if is(o, "limit") && left >= 2 {
            let off = arg!(int(&a[j + 1]));
            let count = arg!(int(&a[j + 2]));
            limit = Some((off, count));
            j += 2;
        } else if rev.is_none() && is(o, "rev") {
            rev = Some(true);
        } else if kind == RangeType::Auto && is(o, "bylex") {
            kind = RangeType::Lex;
        } else if kind == RangeType::Auto && is(o, "byscore") {
            kind = RangeType::Score;
        } else {
            return Ok(err(SYNTAX));
        }
        j += 1;
    }
    let rev = rev.unwrap_or(false);
    if kind == RangeType::Auto {
        kind = RangeType::Rank;
    }
    // Redis cannot tell `LIMIT offset -1` from no LIMIT (its count defaults to -1).
    if limit.is_some_and(|(_, count)| count != -1) && kind == RangeType::Rank {
        return Ok(err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if withscores && kind == RangeType::Lex {
        return Ok(err(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    let (mut lo_arg, mut hi_arg) = (&a[src + 1], &a[src + 2]);
    if rev && kind != RangeType::Rank {
        std::mem::swap(&mut lo_arg, &mut hi_arg);
    }
    let range = match kind {
        RangeType::Score => Range::Score(arg!(parse_score_range(lo_arg, hi_arg))),
        RangeType::Lex => {
            let (min, max) = arg!(parse_lex_range(lo_arg, hi_arg));
            Range::Lex(min, max)
        }
        _ => Range::Rank(arg!(int(lo_arg)), arg!(int(hi_arg))),
    };
    if store && a[1].len() > MAX_KEY_LEN {
        return Ok(err(KEY_TOO_LONG));
    }
    let v = ctx.view()?;
    let found = tri!(read(&v, &a[src], ctx.now_ms, Kind::ZSet));
    let items = match found {
        None => Vec::new(),
        Some((_, c)) => {
            let (lo, hi) = match &range {
                Range::Rank(s, e) => match super::args::list_range(c.len as i64, *s, *e) {
                    Some((s, e)) => (s as u64, e as u64 + 1),
                    None => (0, 0),
                },
                Range::Score(r) => score_rank_bounds(&v, &c, r)?,
                Range::Lex(min, max) => lex_rank_bounds(&v, &c, min, max)?,
            };
            let (lo, hi) = if rev && matches!(range, Range::Rank(..)) {
                // Ranks counted from the high end.
                (c.len - hi, c.len - lo)
            } else {
                (lo, hi)
            };
            let (offset, count) = match range {
                // Only `LIMIT offset -1` gets here, which Redis ignores for index ranges.
                Range::Rank(..) => (0, -1),
                _ => limit.unwrap_or((0, -1)),
            };
            if offset < 0 {
                Vec::new()
            } else {
                let avail = (hi - lo).saturating_sub(offset as u64);
                let n = if count < 0 {
                    avail
                } else {
                    avail.min(count as u64)
                };
                if n == 0 {
                    Vec::new()
                } else if rev {
                    // n > 0, so hi - offset > lo >= 0.
                    members_from_rank(&v, &c, hi - 1 - offset as u64, n, true)?
                } else {
                    members_from_rank(&v, &c, lo + offset as u64, n, false)?
                }
            }
        }
    };
    if store {
        let n = store_zset(&v, &a[1], ctx.now_ms, items)?;
        return Ok(Reply::Int(n as i64));
    }
    if withscores {
        return Ok(Reply::Array(scored_reply(items, ctx.proto, true)));
    }
    Ok(Reply::Array(
        items.into_iter().map(|(m, _)| Reply::Bulk(m)).collect(),
    ))
}

/// Replaces whatever `dst` holds with a sorted set of `items` (distinct members), or deletes
/// it when `items` is empty, as Redis's *STORE commands do. Returns the new cardinality.
pub fn store_zset(
    v: &DbView<'_>,
    dst: &[u8],
    now: i64,
    items: Vec<Scored>,
) -> Result<u64, rivet::Error> {
    let len = items.len() as u64;
    v.replace_collection(dst, now, Kind::ZSet, len, |c| {
        for (m, s) in &items {
            v.coll_put(c.id, &zset_member_sub(m), &s.to_bits().to_be_bytes())?;
            let mut ok = ZSET_ORDER.to_vec();
            ok.extend_from_slice(&zset_order_key(*s, m));
            v.coll_put(c.id, &ok, b"")?;
        }
        Ok(())
    })?;
    Ok(len)
}
