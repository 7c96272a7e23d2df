//! Blocking pops (Redis `t_list.c`, `t_zset.c`, `blocked.c`): BLPOP, BRPOP, BLMOVE,
//! BRPOPLPUSH, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP. Each answers like its non-blocking form when a key has something to
//! take; otherwise, run as its own writer job it asks to be parked (see
//! [`crate::blocking`]), and inside MULTI or a script it answers as if it timed out, as
//! Redis does.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::access::{first_nonempty, write};
use super::args::{err, parse_f64};
use super::lists::{end_of, move_element, mpop_first, parse_lmpop, pop_n};
use super::strings::{arg, tri};
use super::zsets::{mpop_reply, parse_mpop, pop_first};
use super::{CmdResult, Ctx};
use crate::blocking::WouldBlock;
use crate::resp::Reply;
use crate::store::keyspace::Kind;

/// Parses a blocking timeout in seconds (`getTimeoutFromObjectOrReply`): a float, 0 for
/// ever; returns the deadline (`None`: wait for ever).
pub fn timeout(a: &[u8], now_ms: i64) -> Result<Option<Instant>, Reply> {
    let secs = parse_f64(a).ok_or_else(|| err("ERR timeout is not a float or out of range"))?;
    let ms = (secs * 1000.0).ceil();
    if ms < 0.0 {
        return Err(err("ERR timeout is negative"));
    }
    if ms >= (i64::MAX - now_ms) as f64 {
        return Err(err("ERR timeout is out of range"));
    }
    if ms == 0.0 {
        return Ok(None);
    }
    Ok(Some(Instant::now() + Duration::from_millis(ms as u64)))
}

/// Parks the client on `keys` when allowed (a timeout answers a null array, as Redis 7.0
/// answers every blocked client that times out); otherwise answers `now` at once.
pub fn block_on(
    ctx: &mut Ctx<'_>,
    kind: Kind,
    keys: &[Bytes],
    deadline: Option<Instant>,
    now: Reply,
) -> Reply {
    if !ctx.may_block {
        return now;
    }
    let timeout_reply = Reply::NilArray;
    ctx.would_block = Some(WouldBlock {
        keys: keys.iter().map(|k| k.to_vec()).collect(),
        kind,
        deadline,
        timeout_reply,
        park_args: None,
    });
    Reply::Nil
}

/// BLPOP key [key ...] timeout, BRPOP key [key ...] timeout
pub fn blpop(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let left = a[0].eq_ignore_ascii_case(b"blpop");
    let deadline = arg!(timeout(&a[a.len() - 1], ctx.now_ms));
    let keys = &a[1..a.len() - 1];
    let v = ctx.view()?;
    if let Some((k, h, mut c)) = tri!(first_nonempty(&v, keys, ctx.now_ms, Kind::List)) {
        let item = pop_n(&v, &mut c, 1, left)?;
        v.coll_save(k, Some(&h), &c)?;
        let e = item.into_iter().next().unwrap_or_default();
        return Ok(Reply::Array(vec![Reply::Bulk(k.to_vec()), Reply::Bulk(e)]));
    }
    Ok(block_on(ctx, Kind::List, keys, deadline, Reply::NilArray))
}

/// BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout, BRPOPLPUSH source destination
/// timeout. The destination's type is checked only when there is something to move.
pub fn blmove(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let (from_left, to_left, t) = if a.len() == 6 {
        (arg!(end_of(&a[3])), arg!(end_of(&a[4])), &a[5])
    } else {
        (false, true, &a[3])
    };
    let deadline = arg!(timeout(t, ctx.now_ms));
    let v = ctx.view()?;
    if tri!(write(&v, &a[1], ctx.now_ms, Kind::List)).is_some() {
        return move_element(ctx, &a[1], &a[2], from_left, to_left);
    }
    // Inside MULTI: a null bulk string; after a timeout: a null array (Redis 7.0).
    Ok(block_on(ctx, Kind::List, &a[1..2], deadline, Reply::Nil))
}

/// BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]
pub fn blmpop(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let (keys, left, count) = arg!(parse_lmpop(a, 2));
    let deadline = arg!(timeout(&a[1], ctx.now_ms));
    let v = ctx.view()?;
    if let Some(r) = tri!(mpop_first(&v, ctx.now_ms, keys, left, count)) {
        return Ok(r);
    }
    Ok(block_on(ctx, Kind::List, keys, deadline, Reply::NilArray))
}

/// BZPOPMIN key [key ...] timeout, BZPOPMAX key [key ...] timeout
pub fn bzpop(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let max = a[0].eq_ignore_ascii_case(b"bzpopmax");
    let deadline = arg!(timeout(&a[a.len() - 1], ctx.now_ms));
    let keys = &a[1..a.len() - 1];
    let v = ctx.view()?;
    if let Some((k, items)) = tri!(pop_first(&v, ctx.now_ms, keys, max, 1)) {
        let mut out = vec![Reply::Bulk(k.to_vec())];
        for (m, s) in items {
            out.push(Reply::Bulk(m));
            out.push(Reply::Double(s));
        }
        return Ok(Reply::Array(out));
    }
    Ok(block_on(ctx, Kind::ZSet, keys, deadline, Reply::NilArray))
}

/// BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]
pub fn bzmpop(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let (keys, max, count) = arg!(parse_mpop(a, 2));
    let deadline = arg!(timeout(&a[1], ctx.now_ms));
    let v = ctx.view()?;
    if let Some((k, items)) = tri!(pop_first(&v, ctx.now_ms, keys, max, count)) {
        return Ok(mpop_reply(k, items));
    }
    Ok(block_on(ctx, Kind::ZSet, keys, deadline, Reply::NilArray))
}
