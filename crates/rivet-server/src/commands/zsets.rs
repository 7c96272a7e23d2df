//! Sorted-set commands (Redis `t_zset.c`) that add, remove, score, rank, count, pop and
//! sample members. Two orders on disk (member → score, and order-preserving score bytes +
//! member) and the rank index (`store::rank`), so ZADD/ZREM/ZSCORE/ZRANK and the range
//! boundaries are O(log n) whatever the set's size. Range reads live in `zrange`, the
//! multi-key algebra in `zsetops`.

use bytes::Bytes;
use rand::Rng;

use super::access::{first_nonempty, or_new, read, write};
use super::args::{err, int, is, parse_f64, NOT_FLOAT, SYNTAX};
use super::strings::{arg, tri};
use super::zrange::{parse_lex_range, parse_score_range, LexBound, ScoreRange};
use super::{CmdResult, Ctx};
use crate::resp::Reply;
use crate::store::collections::{
    sortable_score, split_order_key, zset_order_key, Coll, ZSET_ORDER,
};
use crate::store::keyspace::Kind;
use crate::store::DbView;

/// A member with its score.
pub type Scored = (Vec<u8>, f64);

/// The key popped from and the members popped.
pub type Popped = (Bytes, Vec<Scored>);

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
        let old = if c.len > 0 {
            v.zset_score(c.id, m)?
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
                v.zset_put(c.id, m, old, new)?;
                changed += 1;
            }
        } else {
            v.zset_put(c.id, m, None, new)?;
            added += 1;
            c.len += 1;
        }
        incr_result = Some(new);
    }
    if found.is_none() || added > 0 || changed > 0 {
        v.coll_save(&a[1], found.as_ref().map(|f| &f.0), &c)?;
    }
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
    Ok(v.zset_score(c.id, &a[2])?
        .map(Reply::Double)
        .unwrap_or(Reply::Nil))
}

/// ZMSCORE key member [member ...]
pub fn zmscore(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let found = tri!(read(&v, &a[1], ctx.now_ms, Kind::ZSet));
    let mut out = Vec::with_capacity(a.len() - 2);
    for m in &a[2..] {
        let s = match &found {
            Some((_, c)) => v.zset_score(c.id, m)?,
            None => None,
        };
        out.push(s.map(Reply::Double).unwrap_or(Reply::Nil));
    }
    Ok(Reply::Array(out))
}

/// ZCARD key
pub fn zcard(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let found = tri!(read(&v, &a[1], ctx.now_ms, Kind::ZSet));
    Ok(Reply::Int(found.map(|f| f.1.len as i64).unwrap_or(0)))
}

/// Removes `members` that exist; returns how many did.
fn remove_members(v: &DbView<'_>, c: &mut Coll, members: &[Bytes]) -> Result<u64, rivet::Error> {
    let mut n = 0;
    for m in members {
        if let Some(s) = v.zset_score(c.id, m)? {
            v.zset_remove(c.id, m, s)?;
            n += 1;
        }
    }
    c.len -= n;
    Ok(n)
}

/// ZREM key member [member ...]
pub fn zrem(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let Some((h, mut c)) = tri!(write(&v, &a[1], ctx.now_ms, Kind::ZSet)) else {
        return Ok(Reply::Int(0));
    };
    let n = remove_members(&v, &mut c, &a[2..])?;
    if n > 0 {
        v.coll_save(&a[1], Some(&h), &c)?;
    }
    Ok(Reply::Int(n as i64))
}

/// ZRANK key member, ZREVRANK key member
pub fn zrank(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let rev = is(&a[0], "zrevrank");
    let v = ctx.view()?;
    let Some((_, c)) = tri!(read(&v, &a[1], ctx.now_ms, Kind::ZSet)) else {
        return Ok(Reply::Nil);
    };
    let Some(score) = v.zset_score(c.id, &a[2])? else {
        return Ok(Reply::Nil);
    };
    let r = v
        .rank_index(Kind::ZSet, c.id)
        .rank_of(&zset_order_key(score, &a[2]))?;
    Ok(Reply::Int(
        if rev { c.len.saturating_sub(r + 1) } else { r } as i64,
    ))
}

/// The order key just after every order key that starts with the 8 bytes of `s`.
fn after_score(s: f64) -> Vec<u8> {
    let n = u64::from_be_bytes(sortable_score(s));
    n.saturating_add(1).to_be_bytes().to_vec()
}

/// The rank bounds `lo..hi` of the members inside a score range.
pub fn score_rank_bounds(
    v: &DbView<'_>,
    c: &Coll,
    r: &ScoreRange,
) -> Result<(u64, u64), rivet::Error> {
    let idx = v.rank_index(Kind::ZSet, c.id);
    let lo_key = if r.min_ex {
        after_score(r.min)
    } else {
        sortable_score(r.min).to_vec()
    };
    let hi_key = if r.max_ex {
        sortable_score(r.max).to_vec()
    } else {
        after_score(r.max)
    };
    let lo = idx.rank_of(&lo_key)?;
    let hi = idx.rank_of(&hi_key)?;
    Ok((lo, hi.max(lo)))
}

/// The first and last score of a non-empty sorted set.
fn end_scores(v: &DbView<'_>, c: &Coll) -> Result<(f64, f64), rivet::Error> {
    let mut ends = [0.0f64; 2];
    for (i, rev) in [false, true].into_iter().enumerate() {
        v.coll_scan(c.id, ZSET_ORDER, None, rev, |k, _| {
            ends[i] = split_order_key(k).0;
            Ok(false)
        })?;
    }
    Ok((ends[0], ends[1]))
}

/// Whether `m` is at or after the lower bound `b`.
fn gte_min(m: &[u8], b: &LexBound) -> bool {
    match b {
        LexBound::Min => true,
        LexBound::Max => false,
        LexBound::Incl(x) => m >= x.as_slice(),
        LexBound::Excl(x) => m > x.as_slice(),
    }
}

/// Whether `m` is at or before the upper bound `b`.
fn lte_max(m: &[u8], b: &LexBound) -> bool {
    match b {
        LexBound::Min => false,
        LexBound::Max => true,
        LexBound::Incl(x) => m <= x.as_slice(),
        LexBound::Excl(x) => m < x.as_slice(),
    }
}

/// The first rank in `lo..hi` whose member fails `pred` (members assumed ordered).
fn partition_rank(
    v: &DbView<'_>,
    c: &Coll,
    mut lo: u64,
    mut hi: u64,
    pred: impl Fn(&[u8]) -> bool,
) -> Result<u64, rivet::Error> {
    let idx = v.rank_index(Kind::ZSet, c.id);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let k = idx.select(mid)?.unwrap_or_default();
        if pred(split_order_key(&k).1) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// The rank bounds `lo..hi` of the members inside a lex range. Redis defines lex ranges
/// for members of equal score; then both bounds are one seek each. With mixed scores the
/// bounds come from a binary search over ranks, as Redis's skip-list search finds them.
pub fn lex_rank_bounds(
    v: &DbView<'_>,
    c: &Coll,
    min: &LexBound,
    max: &LexBound,
) -> Result<(u64, u64), rivet::Error> {
    if c.len == 0 {
        return Ok((0, 0));
    }
    let (first, last) = end_scores(v, c)?;
    if sortable_score(first) != sortable_score(last) {
        let lo = partition_rank(v, c, 0, c.len, |m| !gte_min(m, min))?;
        let hi = partition_rank(v, c, lo, c.len, |m| lte_max(m, max))?;
        return Ok((lo, hi));
    }
    let idx = v.rank_index(Kind::ZSet, c.id);
    let bound = |b: &LexBound, upper: bool| -> Result<u64, rivet::Error> {
        match b {
            LexBound::Min => Ok(0),
            LexBound::Max => Ok(c.len),
            LexBound::Incl(m) | LexBound::Excl(m) => {
                let mut k = zset_order_key(first, m);
                // Inclusive upper and exclusive lower bounds start after the member itself.
                if upper == matches!(b, LexBound::Incl(_)) {
                    k.push(0);
                }
                idx.rank_of(&k)
            }
        }
    };
    let lo = bound(min, false)?;
    let hi = bound(max, true)?;
    Ok((lo, hi.max(lo)))
}

/// ZCOUNT key min max
pub fn zcount(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let r = arg!(parse_score_range(&a[2], &a[3]));
    let v = ctx.view()?;
    let Some((_, c)) = tri!(read(&v, &a[1], ctx.now_ms, Kind::ZSet)) else {
        return Ok(Reply::Int(0));
    };
    let (lo, hi) = score_rank_bounds(&v, &c, &r)?;
    Ok(Reply::Int((hi - lo) as i64))
}

/// ZLEXCOUNT key min max
pub fn zlexcount(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let (min, max) = arg!(parse_lex_range(&a[2], &a[3]));
    let v = ctx.view()?;
    let Some((_, c)) = tri!(read(&v, &a[1], ctx.now_ms, Kind::ZSet)) else {
        return Ok(Reply::Int(0));
    };
    let (lo, hi) = lex_rank_bounds(&v, &c, &min, &max)?;
    Ok(Reply::Int((hi - lo) as i64))
}

/// Up to `n` members from rank `from` on, in order (or backwards from it when `rev`).
pub fn members_from_rank(
    v: &DbView<'_>,
    c: &Coll,
    from: u64,
    n: u64,
    rev: bool,
) -> Result<Vec<Scored>, rivet::Error> {
    let mut out = Vec::new();
    if n == 0 || from >= c.len {
        return Ok(out);
    }
    let start = if (!rev && from == 0) || (rev && from == c.len - 1) {
        None
    } else {
        v.rank_index(Kind::ZSet, c.id).select(from)?
    };
    v.coll_scan(c.id, ZSET_ORDER, start.as_deref(), rev, |k, _| {
        let (s, m) = split_order_key(k);
        out.push((m.to_vec(), s));
        Ok((out.len() as u64) < n)
    })?;
    Ok(out)
}

/// ZREMRANGEBYRANK / ZREMRANGEBYSCORE / ZREMRANGEBYLEX key min max
pub fn zremrange(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    enum By {
        Rank(i64, i64),
        Score(ScoreRange),
        Lex(LexBound, LexBound),
    }
    let by = if is(&a[0], "zremrangebyrank") {
        By::Rank(arg!(int(&a[2])), arg!(int(&a[3])))
    } else if is(&a[0], "zremrangebyscore") {
        By::Score(arg!(parse_score_range(&a[2], &a[3])))
    } else {
        let (min, max) = arg!(parse_lex_range(&a[2], &a[3]));
        By::Lex(min, max)
    };
    let v = ctx.view()?;
    let Some((h, mut c)) = tri!(write(&v, &a[1], ctx.now_ms, Kind::ZSet)) else {
        return Ok(Reply::Int(0));
    };
    let (lo, hi) = match by {
        By::Rank(s, e) => match super::args::list_range(c.len as i64, s, e) {
            Some((s, e)) => (s as u64, e as u64 + 1),
            None => (0, 0),
        },
        By::Score(r) => score_rank_bounds(&v, &c, &r)?,
        By::Lex(min, max) => lex_rank_bounds(&v, &c, &min, &max)?,
    };
    let doomed = members_from_rank(&v, &c, lo, hi - lo, false)?;
    for (m, s) in &doomed {
        v.zset_remove(c.id, m, *s)?;
    }
    c.len -= doomed.len() as u64;
    if !doomed.is_empty() {
        v.coll_save(&a[1], Some(&h), &c)?;
    }
    Ok(Reply::Int(doomed.len() as i64))
}

/// Pops up to `count` members from the low (`max` false) or high end of the first
/// non-empty sorted set among `keys`: `None` when every key is missing; a wrong type stops
/// the search with WRONGTYPE.
pub fn pop_first(
    v: &DbView<'_>,
    now: i64,
    keys: &[Bytes],
    max: bool,
    count: u64,
) -> Result<Result<Option<Popped>, Reply>, rivet::Error> {
    let (k, h, mut c) = match first_nonempty(v, keys, now, Kind::ZSet)? {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(Ok(None)),
        Err(reply) => return Ok(Err(reply)),
    };
    let from = if max { c.len - 1 } else { 0 };
    let popped = members_from_rank(v, &c, from, count, max)?;
    for (m, s) in &popped {
        v.zset_remove(c.id, m, *s)?;
    }
    c.len -= popped.len() as u64;
    v.coll_save(k, Some(&h), &c)?;
    Ok(Ok(Some((k.clone(), popped))))
}

/// Member/score pairs as Redis replies them: flat in RESP2 (or when `nested` is false),
/// as two-element arrays in RESP3 when `nested`.
pub fn scored_reply(items: Vec<Scored>, proto: u8, nested: bool) -> Vec<Reply> {
    let mut out = Vec::with_capacity(items.len() * 2);
    for (m, s) in items {
        if nested && proto >= 3 {
            out.push(Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)]));
        } else {
            out.push(Reply::Bulk(m));
            out.push(Reply::Double(s));
        }
    }
    out
}

/// ZPOPMIN key [count], ZPOPMAX key [count]
pub fn zpop(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    if a.len() > 3 {
        return Ok(err(SYNTAX));
    }
    let count = arg!(super::args::optional_count(a, 2));
    let v = ctx.view()?;
    if count == Some(0) {
        // Redis checks the type before answering an empty array.
        tri!(read(&v, &a[1], ctx.now_ms, Kind::ZSet));
        return Ok(Reply::Array(vec![]));
    }
    let max = is(&a[0], "zpopmax");
    let popped = tri!(pop_first(&v, ctx.now_ms, &a[1..2], max, count.unwrap_or(1)));
    let items = popped.map(|p| p.1).unwrap_or_default();
    Ok(Reply::Array(scored_reply(
        items,
        ctx.proto,
        count.is_some(),
    )))
}

/// Parses `numkeys key... MIN|MAX [COUNT n]` from `a[at..]` (ZMPOP and BZMPOP):
/// (keys, max, count).
pub fn parse_mpop(a: &[Bytes], at: usize) -> Result<(&[Bytes], bool, u64), Reply> {
    // Redis answers a non-number with the range message too.
    let n = match int(&a[at]) {
        Ok(n) if n > 0 => n as usize,
        _ => return Err(err("ERR numkeys should be greater than 0")),
    };
    let where_at = at + 1 + n;
    if where_at >= a.len() || n > a.len() {
        return Err(err(SYNTAX));
    }
    let max = if is(&a[where_at], "max") {
        true
    } else if is(&a[where_at], "min") {
        false
    } else {
        return Err(err(SYNTAX));
    };
    let mut count = None;
    let mut j = where_at + 1;
    while j < a.len() {
        if count.is_none() && is(&a[j], "count") && j + 1 < a.len() {
            match int(&a[j + 1]) {
                Ok(c) if c > 0 => count = Some(c as u64),
                _ => return Err(err("ERR count should be greater than 0")),
            }
            j += 2;
        } else {
            return Err(err(SYNTAX));
        }
    }
    Ok((&a[at + 1..where_at], max, count.unwrap_or(1)))
}

/// The reply of ZMPOP and BZMPOP: `[key, [[member, score]...]]`.
pub fn mpop_reply(key: Bytes, items: Vec<Scored>) -> Reply {
    let pairs = items
        .into_iter()
        .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)]))
        .collect();
    Reply::Array(vec![Reply::Bulk(key.to_vec()), Reply::Array(pairs)])
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]
pub fn zmpop(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let (keys, max, count) = arg!(parse_mpop(a, 1));
    let v = ctx.view()?;
    match tri!(pop_first(&v, ctx.now_ms, keys, max, count)) {
        Some((k, items)) => Ok(mpop_reply(k, items)),
        None => Ok(Reply::NilArray),
    }
}

/// ZRANDMEMBER key [count [WITHSCORES]]
pub fn zrandmember(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    if a.len() > 4 {
        return Ok(err(SYNTAX));
    }
    let count = match a.get(2) {
        Some(x) => Some(arg!(int(x))),
        None => None,
    };
    let withscores = match a.get(3) {
        Some(o) if is(o, "withscores") => true,
        Some(_) => return Ok(err(SYNTAX)),
        None => false,
    };
    if let Some(n) = count {
        if n == i64::MIN {
            return Ok(err(
                "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
            ));
        }
        if withscores && n.unsigned_abs() > (i64::MAX as u64) / 2 {
            return Ok(err("ERR value is out of range"));
        }
    }
    let Some(picked) = tri!(random_of(ctx, &a[1], Kind::ZSet, count)) else {
        return Ok(if count.is_some() {
            Reply::Array(vec![])
        } else {
            Reply::Nil
        });
    };
    let Some(_) = count else {
        let m = picked
            .into_iter()
            .next()
            .map(|(k, _)| k)
            .unwrap_or_default();
        return Ok(Reply::Bulk(split_order_key(&m).1.to_vec()));
    };
    let items: Vec<Scored> = picked
        .into_iter()
        .map(|(k, _)| {
            let (s, m) = split_order_key(&k);
            (m.to_vec(), s)
        })
        .collect();
    if withscores {
        Ok(Reply::Array(scored_reply(items, ctx.proto, true)))
    } else {
        Ok(Reply::Array(
            items.into_iter().map(|(m, _)| Reply::Bulk(m)).collect(),
        ))
    }
}

/// Entries picked at random, as (order key, rank).
pub type Picks = Vec<(Vec<u8>, u64)>;

/// SRANDMEMBER/ZRANDMEMBER once their arguments are read: [`random_members`] of the set or
/// sorted set at `key` (`count` `None` = one pick), `None` for a missing key, or an error
/// reply (WRONGTYPE, or a repeated-pick count above [`super::args::RANDOM_DRAWS_MAX`]).
pub fn random_of(
    ctx: &Ctx<'_>,
    key: &[u8],
    kind: Kind,
    count: Option<i64>,
) -> Result<Result<Option<Picks>, Reply>, rivet::Error> {
    let v = ctx.view()?;
    let c = match read(&v, key, ctx.now_ms, kind)? {
        Ok(Some((_, c))) => c,
        Ok(None) => return Ok(Ok(None)),
        Err(r) => return Ok(Err(r)),
    };
    if count.is_some_and(|n| n < 0 && n.unsigned_abs() > super::args::RANDOM_DRAWS_MAX) {
        return Ok(Err(err("ERR value is out of range")));
    }
    Ok(Ok(Some(random_members(&v, kind, &c, count.unwrap_or(1))?)))
}

/// Random entries of a set or sorted set by Redis's SRANDMEMBER/ZRANDMEMBER rules:
/// `count` > 0 gives distinct entries (all of them when `count` >= the size), `count` < 0
/// gives `|count|` independent uniform picks. Each pick is a rank-index lookup, so a
/// small sample of a huge collection costs O(count · log n). Entries are (order key, rank).
pub fn random_members(
    v: &DbView<'_>,
    kind: Kind,
    c: &Coll,
    count: i64,
) -> Result<Picks, rivet::Error> {
    let idx = v.rank_index(kind, c.id);
    let prefix: &[u8] = if kind == Kind::ZSet { ZSET_ORDER } else { b"" };
    let mut rng = rand::thread_rng();
    let len = c.len;
    let mut out = Vec::new();
    if count < 0 {
        for _ in 0..count.unsigned_abs() {
            let r = rng.gen_range(0..len);
            if let Some(k) = idx.select(r)? {
                out.push((k, r));
            }
        }
        return Ok(out);
    }
    let count = count as u64;
    if count >= len || count.saturating_mul(3) > len {
        // Most of the collection: one ordered pass, keeping a uniform sample.
        let keep = count.min(len) as usize;
        let mut chosen = rand::seq::index::sample(&mut rng, len as usize, keep).into_vec();
        chosen.sort_unstable();
        let mut next = chosen.into_iter().peekable();
        let mut r = 0u64;
        v.coll_scan(c.id, prefix, None, false, |k, _| {
            if next.peek() == Some(&(r as usize)) {
                next.next();
                out.push((k.to_vec(), r));
            }
            r += 1;
            Ok(next.peek().is_some())
        })?;
        rand::seq::SliceRandom::shuffle(out.as_mut_slice(), &mut rng);
        return Ok(out);
    }
    for r in rand::seq::index::sample(&mut rng, len as usize, count as usize) {
        if let Some(k) = idx.select(r as u64)? {
            out.push((k, r as u64));
        }
    }
    Ok(out)
}
