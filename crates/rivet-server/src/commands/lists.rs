//! List commands (Redis `t_list.c`). Elements sit at consecutive positions `head..head+len`,
//! so push, pop, LINDEX and LSET anywhere are one B+tree operation and LRANGE is a range scan.
//!
//! LINSERT and LREM keep the positions consecutive by moving elements: LINSERT moves the
//! shorter side of the insertion point by one, LREM closes the gaps from whichever side moves
//! fewer elements. Elements are moved in batches (read a batch, then write it), so memory
//! stays bounded whatever the list's length. LPOS is a scan from either end; LMOVE,
//! RPOPLPUSH and LMPOP are pops and pushes.

use bytes::Bytes;

use super::access::{first_nonempty, or_new, read, write, Found};
use super::args::{err, int, is, SYNTAX};
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
        push_one(&v, &mut c, e, left)?;
    }
    v.coll_save(&a[1], found.as_ref().map(|f| &f.0), &c)?;
    Ok(Reply::Int(c.len as i64))
}

/// Adds `e` at one end of list `c` (the caller saves the header).
fn push_one(v: &DbView<'_>, c: &mut Coll, e: &[u8], left: bool) -> Result<(), rivet::Error> {
    if left {
        c.head -= 1;
        v.coll_put(c.id, &list_pos(c.head), e)?;
    } else {
        v.coll_put(c.id, &list_pos(c.head + c.len as i64), e)?;
    }
    c.len += 1;
    Ok(())
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
    if a.len() > 3 {
        return Ok(super::arity_error(if left { "lpop" } else { "rpop" }));
    }
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
    (0..len).contains(&i).then(|| c.head + i)
}

/// LINDEX key index
pub fn lindex(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    // Redis looks the key up before it reads the index.
    let v = ctx.view()?;
    let Some((_, c)) = tri!(read(&v, &a[1], ctx.now_ms, Kind::List)) else {
        return Ok(Reply::Nil);
    };
    let i = arg!(int(&a[2]));
    match index_pos(&c, i) {
        Some(p) => Ok(Reply::opt_bulk(v.coll_get(c.id, &list_pos(p))?)),
        None => Ok(Reply::Nil),
    }
}

/// LSET key index element
pub fn lset(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    // Redis looks the key up before it reads the index.
    let v = ctx.view()?;
    let Some((h, c)) = tri!(write(&v, &a[1], ctx.now_ms, Kind::List)) else {
        return Ok(err(super::args::NO_SUCH_KEY));
    };
    let i = arg!(int(&a[2]));
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

/// Elements read per batch when a run of elements moves.
const MOVE_BATCH: usize = 1024;

/// The position encoded in a list entry's sub-key (inverse of [`list_pos`]).
fn pos_of(k: &[u8]) -> Option<i64> {
    let b: [u8; 8] = k.try_into().ok()?;
    Some((u64::from_be_bytes(b) ^ (1 << 63)) as i64)
}

/// Elements with their positions.
type Batch = Vec<(i64, Vec<u8>)>;

/// Up to [`MOVE_BATCH`] elements with their positions, from position `from` on (backwards
/// when `back`), stopping at the first position outside `lo..hi`.
fn read_batch(
    v: &DbView<'_>,
    id: u64,
    from: i64,
    (lo, hi): (i64, i64),
    back: bool,
) -> Result<Batch, rivet::Error> {
    let mut out = Vec::new();
    v.coll_scan(id, &[], Some(&list_pos(from)), back, |k, e| {
        match pos_of(k) {
            Some(p) if (lo..hi).contains(&p) => out.push((p, e.to_vec())),
            _ => return Ok(false),
        }
        Ok(out.len() < MOVE_BATCH)
    })?;
    Ok(out)
}

/// Moves the elements at positions `lo..hi` of list `id` by `delta` positions. The positions
/// they leave keep their old entries (callers overwrite or delete them). Moving towards the
/// head goes front to back, towards the tail back to front, one batch at a time (read, then
/// write), so no element is overwritten before it has been read.
fn move_run(v: &DbView<'_>, id: u64, lo: i64, hi: i64, delta: i64) -> Result<(), rivet::Error> {
    let back = delta > 0;
    let mut next = if back { hi - 1 } else { lo };
    loop {
        let batch = read_batch(v, id, next, (lo, hi), back)?;
        for (p, e) in &batch {
            v.coll_put(id, &list_pos(p + delta), e)?;
        }
        match batch.last() {
            Some((p, _)) if batch.len() == MOVE_BATCH => next = if back { p - 1 } else { p + 1 },
            _ => break,
        }
    }
    Ok(())
}

/// Removes the elements at `indexes` (ascending, relative to the head) from list `c` and
/// closes the gaps, moving the elements after the first removal towards the head or those
/// before the last removal towards the tail, whichever moves fewer. Updates `c`.
fn remove_indexes(v: &DbView<'_>, c: &mut Coll, indexes: &[i64]) -> Result<(), rivet::Error> {
    let (Some(&first), Some(&last)) = (indexes.first(), indexes.last()) else {
        return Ok(());
    };
    let (len, m) = (c.len as i64, indexes.len() as i64);
    if len - 1 - first <= last {
        // The run after the k-th removal moves k+1 positions towards the head.
        for (k, &r) in indexes.iter().enumerate() {
            let end = indexes.get(k + 1).copied().unwrap_or(len);
            move_run(v, c.id, c.head + r + 1, c.head + end, -(k as i64 + 1))?;
        }
        for i in len - m..len {
            v.coll_del(c.id, &list_pos(c.head + i))?;
        }
    } else {
        // The run before the k-th removal moves m-k positions towards the tail.
        for k in (0..indexes.len()).rev() {
            let start = if k == 0 { 0 } else { indexes[k - 1] + 1 };
            let shift = m - k as i64;
            move_run(v, c.id, c.head + start, c.head + indexes[k], shift)?;
        }
        for i in 0..m {
            v.coll_del(c.id, &list_pos(c.head + i))?;
        }
        c.head += m;
    }
    c.len -= m as u64;
    Ok(())
}

/// The index of the first element equal to `pivot`, scanning from the head.
fn find_first(v: &DbView<'_>, c: &Coll, pivot: &[u8]) -> Result<Option<i64>, rivet::Error> {
    let mut index = 0i64;
    let mut found = None;
    v.coll_scan(c.id, &[], Some(&list_pos(c.head)), false, |_, e| {
        if e == pivot {
            found = Some(index);
            return Ok(false);
        }
        index += 1;
        Ok(true)
    })?;
    Ok(found)
}

/// LINSERT key BEFORE|AFTER pivot element
pub fn linsert(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let after = if is(&a[2], "after") {
        true
    } else if is(&a[2], "before") {
        false
    } else {
        return Ok(err(SYNTAX));
    };
    let v = ctx.view()?;
    let Some((h, mut c)) = tri!(write(&v, &a[1], ctx.now_ms, Kind::List)) else {
        return Ok(Reply::Int(0));
    };
    let Some(i) = find_first(&v, &c, &a[3])? else {
        return Ok(Reply::Int(-1));
    };
    let j = if after { i + 1 } else { i };
    let len = c.len as i64;
    if j < len - j {
        move_run(&v, c.id, c.head, c.head + j, -1)?;
        c.head -= 1;
    } else {
        move_run(&v, c.id, c.head + j, c.head + len, 1)?;
    }
    v.coll_put(c.id, &list_pos(c.head + j), &a[4])?;
    c.len += 1;
    v.coll_save(&a[1], Some(&h), &c)?;
    Ok(Reply::Int(c.len as i64))
}

/// LREM key count element
pub fn lrem(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let count = arg!(int(&a[2]));
    let v = ctx.view()?;
    let Some((h, mut c)) = tri!(write(&v, &a[1], ctx.now_ms, Kind::List)) else {
        return Ok(Reply::Int(0));
    };
    let from_tail = count < 0;
    let limit = count.unsigned_abs() as usize; // 0: all
    let len = c.len as i64;
    let start = if from_tail { c.head + len - 1 } else { c.head };
    let mut hits = Vec::new();
    let mut index = 0i64;
    v.coll_scan(c.id, &[], Some(&list_pos(start)), from_tail, |_, e| {
        if e == a[3].as_ref() {
            hits.push(if from_tail { len - 1 - index } else { index });
            if hits.len() == limit {
                return Ok(false);
            }
        }
        index += 1;
        Ok(true)
    })?;
    if hits.is_empty() {
        return Ok(Reply::Int(0));
    }
    if from_tail {
        hits.reverse();
    }
    remove_indexes(&v, &mut c, &hits)?;
    v.coll_save(&a[1], Some(&h), &c)?;
    Ok(Reply::Int(hits.len() as i64))
}

/// A non-negative integer option; `msg` is the error for anything else (Redis's
/// `getPositiveLongFromObjectOrReply` with a message).
fn non_negative(a: &[u8], msg: &str) -> Result<i64, Reply> {
    match int(a) {
        Ok(n) if n >= 0 => Ok(n),
        _ => Err(err(msg)),
    }
}

/// An integer of at least 1; `msg` is the error for anything else.
fn at_least_one(a: &[u8], msg: &str) -> Result<i64, Reply> {
    match int(a) {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(err(msg)),
    }
}

/// The options of LPOS.
struct LposOptions {
    rank: i64,
    count: Option<i64>,
    maxlen: i64,
}

fn lpos_options(a: &[Bytes]) -> Result<LposOptions, Reply> {
    let mut o = LposOptions {
        rank: 1,
        count: None,
        maxlen: 0,
    };
    let mut j = 3;
    while j < a.len() {
        let more = j + 1 < a.len();
        if is(&a[j], "rank") && more {
            o.rank = int(&a[j + 1])?;
            if o.rank == 0 {
                return Err(err(
                    "ERR RANK can't be zero: use 1 to start from the first match, \
                     2 from the second ... or use negative to start from the end of the list",
                ));
            }
        } else if is(&a[j], "count") && more {
            o.count = Some(non_negative(&a[j + 1], "ERR COUNT can't be negative")?);
        } else if is(&a[j], "maxlen") && more {
            o.maxlen = non_negative(&a[j + 1], "ERR MAXLEN can't be negative")?;
        } else {
            return Err(err(SYNTAX));
        }
        j += 2;
    }
    Ok(o)
}

/// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]
pub fn lpos(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let o = arg!(lpos_options(a));
    let from_tail = o.rank < 0;
    // Redis negates the rank in a C long: the most negative one stays negative.
    let rank = if from_tail {
        o.rank.wrapping_neg()
    } else {
        o.rank
    };
    let v = ctx.view()?;
    let Some((_, c)) = tri!(read(&v, &a[1], ctx.now_ms, Kind::List)) else {
        return Ok(match o.count {
            Some(_) => Reply::Array(vec![]),
            None => Reply::Nil,
        });
    };
    let len = c.len as i64;
    let start = if from_tail { c.head + len - 1 } else { c.head };
    let (mut index, mut matches) = (0i64, 0i64);
    let mut out = Vec::new();
    v.coll_scan(c.id, &[], Some(&list_pos(start)), from_tail, |_, e| {
        if o.maxlen != 0 && index >= o.maxlen {
            return Ok(false);
        }
        if e == a[2].as_ref() {
            matches += 1;
            if matches >= rank {
                out.push(if from_tail { len - index - 1 } else { index });
                let enough = match o.count {
                    None => true,
                    Some(n) => n != 0 && matches.wrapping_sub(rank).wrapping_add(1) >= n,
                };
                if enough {
                    return Ok(false);
                }
            }
        }
        index += 1;
        Ok(true)
    })?;
    Ok(match o.count {
        Some(_) => Reply::Array(out.into_iter().map(Reply::Int).collect()),
        None => out.first().map_or(Reply::Nil, |&i| Reply::Int(i)),
    })
}

/// LEFT (true) or RIGHT (false).
pub fn end_of(a: &[u8]) -> Result<bool, Reply> {
    if is(a, "left") {
        Ok(true)
    } else if is(a, "right") {
        Ok(false)
    } else {
        Err(err(SYNTAX))
    }
}

/// Pops one element from `src` (the left end when `from_left`) and pushes it onto `dst`;
/// checks both keys' types before changing anything.
pub fn move_element(
    ctx: &mut Ctx<'_>,
    src: &[u8],
    dst: &[u8],
    from_left: bool,
    to_left: bool,
) -> CmdResult {
    let v = ctx.view()?;
    let Some((sh, mut sc)) = tri!(write(&v, src, ctx.now_ms, Kind::List)) else {
        return Ok(Reply::Nil);
    };
    if src == dst {
        let Some(e) = pop_n(&v, &mut sc, 1, from_left)?.pop() else {
            return Ok(Reply::Nil);
        };
        push_one(&v, &mut sc, &e, to_left)?;
        v.coll_save(src, Some(&sh), &sc)?;
        return Ok(Reply::Bulk(e));
    }
    let found: Found<'_> = tri!(write(&v, dst, ctx.now_ms, Kind::List));
    let Some(e) = pop_n(&v, &mut sc, 1, from_left)?.pop() else {
        return Ok(Reply::Nil);
    };
    let mut dc = or_new(&v, &found, Kind::List)?;
    v.coll_save(src, Some(&sh), &sc)?;
    push_one(&v, &mut dc, &e, to_left)?;
    v.coll_save(dst, found.as_ref().map(|f| &f.0), &dc)?;
    Ok(Reply::Bulk(e))
}

/// LMOVE source destination LEFT|RIGHT LEFT|RIGHT
pub fn lmove(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let from_left = arg!(end_of(&a[3]));
    let to_left = arg!(end_of(&a[4]));
    move_element(ctx, &a[1], &a[2], from_left, to_left)
}

/// RPOPLPUSH source destination
pub fn rpoplpush(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    move_element(ctx, &a[1], &a[2], false, true)
}

/// Parses `numkeys key... LEFT|RIGHT [COUNT n]` from `a[at..]` (LMPOP and BLMPOP):
/// (keys, left, count).
pub fn parse_lmpop(a: &[Bytes], at: usize) -> Result<(&[Bytes], bool, u64), Reply> {
    let numkeys = at_least_one(&a[at], "ERR numkeys should be greater than 0")?;
    let where_at = match usize::try_from(numkeys)
        .ok()
        .and_then(|n| n.checked_add(at + 1))
    {
        Some(i) if i < a.len() => i,
        _ => return Err(err(SYNTAX)),
    };
    let left = end_of(&a[where_at])?;
    let mut count = None;
    let mut j = where_at + 1;
    while j < a.len() {
        if count.is_none() && is(&a[j], "count") && j + 1 < a.len() {
            count = Some(at_least_one(
                &a[j + 1],
                "ERR count should be greater than 0",
            )?);
            j += 2;
        } else {
            return Err(err(SYNTAX));
        }
    }
    Ok((&a[at + 1..where_at], left, count.unwrap_or(1) as u64))
}

/// Pops up to `count` elements from the first non-empty list among `keys`: the LMPOP reply
/// `[key, [elements]]`, `None` when all are empty, or WRONGTYPE.
pub fn mpop_first(
    v: &DbView<'_>,
    now: i64,
    keys: &[Bytes],
    left: bool,
    count: u64,
) -> Result<Result<Option<Reply>, Reply>, rivet::Error> {
    // A key longer than the format allows cannot exist: skipped, not an error.
    let keys: Vec<Bytes> = keys
        .iter()
        .filter(|k| k.len() <= crate::store::keyspace::MAX_KEY_LEN)
        .cloned()
        .collect();
    let (key, h, mut c) = match first_nonempty(v, &keys, now, Kind::List)? {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(Ok(None)),
        Err(reply) => return Ok(Err(reply)),
    };
    let items = pop_n(v, &mut c, count, left)?;
    v.coll_save(key, Some(&h), &c)?;
    Ok(Ok(Some(Reply::Array(vec![
        Reply::bulk(key),
        Reply::Array(items.into_iter().map(Reply::Bulk).collect()),
    ]))))
}

/// LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]
pub fn lmpop(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let (keys, left, count) = arg!(parse_lmpop(a, 1));
    let v = ctx.view()?;
    Ok(tri!(mpop_first(&v, ctx.now_ms, keys, left, count)).unwrap_or(Reply::NilArray))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip() {
        for p in [i64::MIN, -5, -1, 0, 7, i64::MAX] {
            assert_eq!(pos_of(&list_pos(p)), Some(p));
        }
        assert_eq!(pos_of(b"short"), None);
    }
}
