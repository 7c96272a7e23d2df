//! String commands (Redis `t_string.c`): GET SET and its variants, MGET MSET, APPEND,
//! ranges, counters and LCS.

use bytes::Bytes;

use super::args::{self, err, int, is, NOT_INT, SYNTAX, WRONGTYPE};
use super::{CmdResult, Ctx};
use crate::resp::{Reply, OK};
use crate::store::keyspace::{Header, Kind, MAX_KEY_LEN};
use crate::store::strings::string_len;
use crate::store::DbView;

/// Longest string value (Redis's default `proto-max-bulk-len`, 512 MB).
pub const MAX_STRING: u64 = 512 * 1024 * 1024;

/// Looks up `key` as a string for reading: `Ok(None)` when missing, `Err(WRONGTYPE)` when it
/// holds another type.
pub(crate) fn read_string<'tx>(
    v: &DbView<'tx>,
    key: &[u8],
    now: i64,
) -> Result<Result<Option<Header<'tx>>, Reply>, rivet::Error> {
    Ok(match v.lookup(key, now)? {
        Some(h) if h.kind != Kind::String => Err(err(WRONGTYPE)),
        other => Ok(other),
    })
}

/// Like [`read_string`] for a write (an expired key is deleted first).
pub(crate) fn write_target<'tx>(
    v: &DbView<'tx>,
    key: &[u8],
    now: i64,
) -> Result<Result<Option<Header<'tx>>, Reply>, rivet::Error> {
    if key.len() > MAX_KEY_LEN {
        return Ok(Err(err(args::KEY_TOO_LONG)));
    }
    Ok(match v.lookup_for_write(key, now)? {
        Some(h) if h.kind != Kind::String => Err(err(WRONGTYPE)),
        other => Ok(other),
    })
}

macro_rules! tri {
    ($e:expr) => {
        match $e? {
            Ok(v) => v,
            Err(reply) => return Ok(reply),
        }
    };
}
pub(crate) use tri;

macro_rules! arg {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(reply) => return Ok(reply),
        }
    };
}
pub(crate) use arg;

/// GET key
pub fn get(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    match tri!(read_string(&v, &a[1], ctx.now_ms)) {
        Some(h) => Ok(Reply::Bulk(v.string_value(&h)?.into_owned())),
        None => Ok(Reply::Nil),
    }
}

/// Expiry options shared by SET and GETEX.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Ttl {
    #[default]
    None,
    Keep,
    Persist,
    At(i64),
}

/// Parses the value of EX/PX/EXAT/PXAT into an absolute deadline in ms (Redis's
/// `getExpireMillisecondsOrReply`).
fn deadline(
    ctx: &Ctx<'_>,
    raw: &[u8],
    unit_ms: bool,
    relative: bool,
    cmd: &str,
) -> Result<i64, Reply> {
    let v = int(raw)?;
    let bad = || Reply::err(format!("ERR invalid expire time in '{cmd}' command"));
    if v <= 0 || (!unit_ms && v > i64::MAX / 1000) {
        return Err(bad());
    }
    let mut ms = if unit_ms { v } else { v * 1000 };
    if relative {
        ms = ms.checked_add(ctx.now_ms).ok_or_else(bad)?;
    }
    if ms <= 0 {
        return Err(bad());
    }
    Ok(ms)
}

/// SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]
pub fn set(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let (mut nx, mut xx, mut get) = (false, false, false);
    let mut ttl = Ttl::None;
    let mut expire: Option<(usize, bool, bool)> = None; // (arg index, ms unit, relative)
    let mut i = 3;
    while i < a.len() {
        let o = &a[i];
        let has_next = i + 1 < a.len();
        let timed = expire.is_some();
        if is(o, "nx") && !xx {
            nx = true;
        } else if is(o, "xx") && !nx {
            xx = true;
        } else if is(o, "get") {
            get = true;
        } else if is(o, "keepttl") && !timed {
            ttl = Ttl::Keep;
        } else if has_next
            && !timed
            && ttl != Ttl::Keep
            && (is(o, "ex") || is(o, "px") || is(o, "exat") || is(o, "pxat"))
        {
            let ms = is(o, "px") || is(o, "pxat");
            let rel = is(o, "ex") || is(o, "px");
            expire = Some((i + 1, ms, rel));
            i += 1;
        } else {
            return Ok(err(SYNTAX));
        }
        i += 1;
    }
    if let Some((idx, ms, rel)) = expire {
        ttl = Ttl::At(arg!(deadline(ctx, &a[idx], ms, rel, "set")));
    }
    if a[2].len() as u64 > MAX_STRING {
        return Ok(err(
            "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
        ));
    }
    let v = ctx.view()?;
    let key = &a[1];
    if key.len() > MAX_KEY_LEN {
        return Ok(err(args::KEY_TOO_LONG));
    }
    let old = v.lookup_for_write(key, ctx.now_ms)?;
    let mut reply = OK;
    if get {
        reply = match old {
            Some(h) if h.kind != Kind::String => return Ok(err(WRONGTYPE)),
            Some(h) => Reply::Bulk(v.string_value(&h)?.into_owned()),
            None => Reply::Nil,
        };
    }
    if (nx && old.is_some()) || (xx && old.is_none()) {
        return Ok(if get { reply } else { Reply::Nil });
    }
    let expire_at = match ttl {
        Ttl::At(t) => Some(t),
        Ttl::Keep => old.and_then(|h| h.expire_at),
        _ => None,
    };
    v.write_string(key, old.as_ref(), &a[2], expire_at)?;
    Ok(reply)
}

/// Sets `key` to `value` with an optional deadline, replacing any value of any type.
fn put_value(
    v: &DbView<'_>,
    key: &[u8],
    value: &[u8],
    at: Option<i64>,
    now: i64,
) -> Result<(), rivet::Error> {
    let old = v.lookup_for_write(key, now)?;
    v.write_string(key, old.as_ref(), value, at)
}

/// SETNX key value
pub fn setnx(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    if a[1].len() > MAX_KEY_LEN {
        return Ok(err(args::KEY_TOO_LONG));
    }
    if v.lookup_for_write(&a[1], ctx.now_ms)?.is_some() {
        return Ok(Reply::Int(0));
    }
    v.write_string(&a[1], None, &a[2], None)?;
    Ok(Reply::Int(1))
}

/// SETEX key seconds value
pub fn setex(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    set_with_ttl(ctx, a, false, "setex")
}

/// PSETEX key ms value
pub fn psetex(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    set_with_ttl(ctx, a, true, "psetex")
}

fn set_with_ttl(ctx: &mut Ctx<'_>, a: &[Bytes], ms: bool, name: &str) -> CmdResult {
    let at = arg!(deadline(ctx, &a[2], ms, true, name));
    if a[1].len() > MAX_KEY_LEN {
        return Ok(err(args::KEY_TOO_LONG));
    }
    let v = ctx.view()?;
    put_value(&v, &a[1], &a[3], Some(at), ctx.now_ms)?;
    Ok(OK)
}

/// GETSET key value
pub fn getset(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let old = tri!(write_target(&v, &a[1], ctx.now_ms));
    let reply = match &old {
        Some(h) => Reply::Bulk(v.string_value(h)?.into_owned()),
        None => Reply::Nil,
    };
    v.write_string(&a[1], old.as_ref(), &a[2], None)?;
    Ok(reply)
}

/// GETDEL key
pub fn getdel(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    match tri!(write_target(&v, &a[1], ctx.now_ms)) {
        Some(h) => {
            let reply = Reply::Bulk(v.string_value(&h)?.into_owned());
            v.delete_entry(&a[1], &h)?;
            Ok(reply)
        }
        None => Ok(Reply::Nil),
    }
}

/// GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST]
pub fn getex(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let mut ttl = Ttl::None;
    let mut expire: Option<(usize, bool, bool)> = None;
    let mut i = 2;
    while i < a.len() {
        let o = &a[i];
        let has_next = i + 1 < a.len();
        let timed = expire.is_some();
        if is(o, "persist") && !timed {
            ttl = Ttl::Persist;
        } else if has_next
            && !timed
            && ttl != Ttl::Persist
            && (is(o, "ex") || is(o, "px") || is(o, "exat") || is(o, "pxat"))
        {
            expire = Some((
                i + 1,
                is(o, "px") || is(o, "pxat"),
                is(o, "ex") || is(o, "px"),
            ));
            i += 1;
        } else {
            return Ok(err(SYNTAX));
        }
        i += 1;
    }
    let v = ctx.view()?;
    let Some(h) = tri!(write_target(&v, &a[1], ctx.now_ms)) else {
        return Ok(Reply::Nil);
    };
    if let Some((idx, ms, rel)) = expire {
        ttl = Ttl::At(arg!(deadline(ctx, &a[idx], ms, rel, "getex")));
    }
    let reply = Reply::Bulk(v.string_value(&h)?.into_owned());
    match ttl {
        Ttl::At(t) if t <= ctx.now_ms => v.delete_entry(&a[1], &h)?,
        Ttl::At(t) => v.set_expiry(&a[1], &h, Some(t))?,
        Ttl::Persist if h.expire_at.is_some() => v.set_expiry(&a[1], &h, None)?,
        _ => {}
    }
    Ok(reply)
}

/// MGET key [key ...]: nil for missing keys and keys of other types.
pub fn mget(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let mut out = Vec::with_capacity(a.len() - 1);
    for k in &a[1..] {
        out.push(match v.lookup(k, ctx.now_ms)? {
            Some(h) if h.kind == Kind::String => Reply::Bulk(v.string_value(&h)?.into_owned()),
            _ => Reply::Nil,
        });
    }
    Ok(Reply::Array(out))
}

/// MSET key value [key value ...]
pub fn mset(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    mset_generic(ctx, a, false)
}

/// MSETNX key value [key value ...]
pub fn msetnx(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    mset_generic(ctx, a, true)
}

fn mset_generic(ctx: &mut Ctx<'_>, a: &[Bytes], nx: bool) -> CmdResult {
    if a.len().is_multiple_of(2) {
        return Ok(super::arity_error(if nx { "msetnx" } else { "mset" }));
    }
    if a[1..].chunks(2).any(|p| p[0].len() > MAX_KEY_LEN) {
        return Ok(err(args::KEY_TOO_LONG));
    }
    let v = ctx.view()?;
    if nx {
        for p in a[1..].chunks(2) {
            if v.lookup(&p[0], ctx.now_ms)?.is_some() {
                return Ok(Reply::Int(0));
            }
        }
    }
    for p in a[1..].chunks(2) {
        put_value(&v, &p[0], &p[1], None, ctx.now_ms)?;
    }
    Ok(if nx { Reply::Int(1) } else { OK })
}

/// APPEND key value: costs in proportion to the appended bytes.
pub fn append(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let old = tri!(write_target(&v, &a[1], ctx.now_ms));
    let len = old.as_ref().map(string_len).unwrap_or(0);
    if len + a[2].len() as u64 > max_len(ctx) {
        return Ok(err(
            "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
        ));
    }
    let n = v.string_set_range(&a[1], old.as_ref(), len, &a[2])?;
    Ok(Reply::Int(n as i64))
}

fn max_len(ctx: &Ctx<'_>) -> u64 {
    ctx.state.config.proto_max_bulk_len() as u64
}

/// STRLEN key
pub fn strlen(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let h = tri!(read_string(&v, &a[1], ctx.now_ms));
    Ok(Reply::Int(h.as_ref().map(string_len).unwrap_or(0) as i64))
}

/// GETRANGE key start end (and SUBSTR): inclusive, negative indexes from the end.
pub fn getrange(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let start = arg!(int(&a[2]));
    let end = arg!(int(&a[3]));
    let v = ctx.view()?;
    let Some(h) = tri!(read_string(&v, &a[1], ctx.now_ms)) else {
        return Ok(Reply::Bulk(Vec::new()));
    };
    let len = string_len(&h) as i64;
    if start < 0 && end < 0 && start > end {
        return Ok(Reply::Bulk(Vec::new()));
    }
    let Some((s, e)) = args::string_range(len, start, end) else {
        return Ok(Reply::Bulk(Vec::new()));
    };
    Ok(Reply::Bulk(v.string_range(&h, s as u64, e as u64 + 1)?))
}

/// SETRANGE key offset value
pub fn setrange(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let offset = arg!(int(&a[2]));
    if offset < 0 {
        return Ok(err("ERR offset is out of range"));
    }
    let v = ctx.view()?;
    let old = tri!(write_target(&v, &a[1], ctx.now_ms));
    if a[3].is_empty() {
        return Ok(Reply::Int(old.as_ref().map(string_len).unwrap_or(0) as i64));
    }
    if offset as u64 + a[3].len() as u64 > max_len(ctx) {
        return Ok(err(
            "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
        ));
    }
    let n = v.string_set_range(&a[1], old.as_ref(), offset as u64, &a[3])?;
    Ok(Reply::Int(n as i64))
}

/// INCR key
pub fn incr(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    incr_by(ctx, &a[1], 1)
}

/// DECR key
pub fn decr(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    incr_by(ctx, &a[1], -1)
}

/// INCRBY key increment
pub fn incrby(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let by = arg!(int(&a[2]));
    incr_by(ctx, &a[1], by)
}

/// DECRBY key decrement
pub fn decrby(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let by = arg!(int(&a[2]));
    if by == i64::MIN {
        return Ok(err("ERR decrement would overflow"));
    }
    incr_by(ctx, &a[1], -by)
}

fn incr_by(ctx: &mut Ctx<'_>, key: &[u8], by: i64) -> CmdResult {
    let v = ctx.view()?;
    let old = tri!(write_target(&v, key, ctx.now_ms));
    let cur = match &old {
        Some(h) => {
            if string_len(h) > 20 {
                return Ok(err(NOT_INT));
            }
            arg!(int(&v.string_value(h)?))
        }
        None => 0,
    };
    let Some(n) = cur.checked_add(by) else {
        return Ok(err("ERR increment or decrement would overflow"));
    };
    let text = itoa::Buffer::new().format(n).as_bytes().to_vec();
    v.write_string(key, old.as_ref(), &text, old.and_then(|h| h.expire_at))?;
    Ok(Reply::Int(n))
}

/// INCRBYFLOAT key increment
pub fn incrbyfloat(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let old = tri!(write_target(&v, &a[1], ctx.now_ms));
    let cur_text = match &old {
        Some(h) => v.string_value(h)?.into_owned(),
        None => b"0".to_vec(),
    };
    if !crate::numeric::is_long_double(&cur_text) || !crate::numeric::is_long_double(&a[2]) {
        return Ok(err(args::NOT_FLOAT));
    }
    let Some(text) = crate::numeric::add_decimal_text(&cur_text, &a[2]) else {
        return Ok(err("ERR increment would produce NaN or Infinity"));
    };
    v.write_string(
        &a[1],
        old.as_ref(),
        text.as_bytes(),
        old.and_then(|h| h.expire_at),
    )?;
    Ok(Reply::Bulk(text.into_bytes()))
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN]
pub fn lcs(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let ha = v.lookup(&a[1], ctx.now_ms)?;
    let hb = v.lookup(&a[2], ctx.now_ms)?;
    if ha.is_some_and(|h| h.kind != Kind::String) || hb.is_some_and(|h| h.kind != Kind::String) {
        return Ok(err("ERR The specified keys must contain string values"));
    }
    let (mut getlen, mut getidx, mut withlen, mut minlen) = (false, false, false, 0i64);
    let mut i = 3;
    while i < a.len() {
        let o = &a[i];
        if is(o, "idx") {
            getidx = true;
        } else if is(o, "len") {
            getlen = true;
        } else if is(o, "withmatchlen") {
            withlen = true;
        } else if is(o, "minmatchlen") && i + 1 < a.len() {
            minlen = arg!(int(&a[i + 1])).max(0);
            i += 1;
        } else {
            return Ok(err(SYNTAX));
        }
        i += 1;
    }
    if getidx && getlen {
        return Ok(err(
            "ERR If you want both the length and indexes, please just use IDX.",
        ));
    }
    let sa = match &ha {
        Some(h) => v.string_value(h)?.into_owned(),
        None => Vec::new(),
    };
    let sb = match &hb {
        Some(h) => v.string_value(h)?.into_owned(),
        None => Vec::new(),
    };
    let cells = (sa.len() as u128 + 1) * (sb.len() as u128 + 1) * 4;
    if cells > ctx.state.config.proto_max_bulk_len() as u128 {
        return Ok(err(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    Ok(crate::lcs::reply(
        &sa,
        &sb,
        getlen,
        getidx,
        withlen,
        minlen as u64,
    ))
}
