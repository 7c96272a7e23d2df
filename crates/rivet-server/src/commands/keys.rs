//! Generic key commands and expiry (Redis `db.c` and `expire.c`): DEL EXISTS TYPE RENAME
//! COPY MOVE KEYS SCAN RANDOMKEY DBSIZE TOUCH OBJECT, the EXPIRE family, TTL family,
//! PERSIST, SELECT SWAPDB FLUSHDB FLUSHALL.

use bytes::Bytes;

use super::args::{err, int, is, lower, DB_RANGE, NOT_INT, NO_SUCH_KEY, SYNTAX};
use super::strings::arg;
use super::{CmdResult, Ctx};
use crate::resp::{Reply, OK};
use crate::store::keyspace::{Body, Header, Kind, MAX_KEY_LEN};
use crate::store::DbView;

/// DEL key [key ...] (and UNLINK): the number of keys removed.
pub fn del(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let mut n = 0;
    for k in &a[1..] {
        if v.delete_key(k, ctx.now_ms)? {
            n += 1;
        }
    }
    Ok(Reply::Int(n))
}

/// EXISTS key [key ...]: counts repeats.
pub fn exists(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let mut n = 0;
    for k in &a[1..] {
        if v.lookup(k, ctx.now_ms)?.is_some() {
            n += 1;
        }
    }
    Ok(Reply::Int(n))
}

/// TOUCH key [key ...]: like EXISTS (access times are not tracked).
pub fn touch(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    exists(ctx, a)
}

/// TYPE key
pub fn type_(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    Ok(Reply::Status(match v.lookup(&a[1], ctx.now_ms)? {
        Some(h) => h.kind.name(),
        None => "none",
    }))
}

/// Writes a copy of `h` (a value in `from`) as `dst` in `into`, replacing `dst_old`.
fn copy_value(
    from: &DbView<'_>,
    h: &Header<'_>,
    into: &DbView<'_>,
    dst: &[u8],
    dst_old: Option<&Header<'_>>,
) -> Result<(), rivet::Error> {
    if let Some(o) = dst_old {
        into.delete_entry(dst, o)?;
    }
    match h.kind {
        Kind::String => {
            let value = from.string_bytes(h)?;
            into.write_string(dst, None, &value, h.expire_at)
        }
        _ => {
            let Body::Id { id, len, extra } = h.body else {
                return Err(rivet::Error::corrupted(
                    0,
                    "collection header without an id",
                ));
            };
            let new_id = into.new_id()?;
            from.coll_copy(id, into, new_id)?;
            let copy = Header {
                body: Body::Id {
                    id: new_id,
                    len,
                    extra,
                },
                ..*h
            };
            into.put_header(dst, None, &copy)
        }
    }
}

/// RENAME key newkey
pub fn rename(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    rename_generic(ctx, a, false)
}

/// RENAMENX key newkey
pub fn renamenx(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    rename_generic(ctx, a, true)
}

fn rename_generic(ctx: &mut Ctx<'_>, a: &[Bytes], nx: bool) -> CmdResult {
    let v = ctx.view()?;
    let Some(h) = v.lookup_for_write(&a[1], ctx.now_ms)? else {
        return Ok(err(NO_SUCH_KEY));
    };
    if a[1] == a[2] {
        return Ok(if nx { Reply::Int(0) } else { OK });
    }
    if a[2].len() > MAX_KEY_LEN {
        return Ok(err(super::args::KEY_TOO_LONG));
    }
    let dst_old = v.lookup_for_write(&a[2], ctx.now_ms)?;
    if dst_old.is_some() && nx {
        return Ok(Reply::Int(0));
    }
    move_value(&v, &a[1], &h, &v, &a[2], dst_old.as_ref())?;
    Ok(if nx { Reply::Int(1) } else { OK })
}

/// Moves the value of `src` (header `h`, in `from`) to `dst` in `into`. Within one
/// database the new header points at the same out-of-line data; across databases that data
/// is copied (it is keyed by id inside its database's buckets).
fn move_value(
    from: &DbView<'_>,
    src: &[u8],
    h: &Header<'_>,
    into: &DbView<'_>,
    dst: &[u8],
    dst_old: Option<&Header<'_>>,
) -> Result<(), rivet::Error> {
    let shares_data = matches!(h.body, Body::Inline(_)) || from.index() == into.index();
    if !shares_data {
        copy_value(from, h, into, dst, dst_old)?;
        return from.delete_entry(src, h);
    }
    let bytes = h.encode();
    let copy = Header::decode(&bytes)
        .ok_or_else(|| rivet::Error::corrupted(0, "header failed to re-decode"))?;
    if let Some(o) = dst_old {
        into.delete_entry(dst, o)?;
    }
    into.put_header(dst, None, &copy)?;
    from.forget_entry(src, h)
}

/// MOVE key db
pub fn move_(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let Ok(dbid) = int(&a[2]) else {
        return Ok(err(NOT_INT));
    };
    if dbid < 0 || dbid as usize >= ctx.store.databases() || dbid > i32::MAX as i64 {
        return Ok(err(DB_RANGE));
    }
    let dbid = dbid as usize;
    if dbid == ctx.db {
        return Ok(err("ERR source and destination objects are the same"));
    }
    let src = ctx.view()?;
    let dst = ctx.view_at(dbid)?;
    let Some(h) = src.lookup_for_write(&a[1], ctx.now_ms)? else {
        return Ok(Reply::Int(0));
    };
    if dst.lookup_for_write(&a[1], ctx.now_ms)?.is_some() {
        return Ok(Reply::Int(0));
    }
    move_value(&src, &a[1], &h, &dst, &a[1], None)?;
    Ok(Reply::Int(1))
}

/// COPY source destination [DB db] [REPLACE]
pub fn copy(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let mut replace = false;
    let mut dbid = ctx.db;
    let mut i = 3;
    while i < a.len() {
        if is(&a[i], "replace") {
            replace = true;
        } else if is(&a[i], "db") && i + 1 < a.len() {
            let n = arg!(int(&a[i + 1]));
            if n < 0 || n as usize >= ctx.store.databases() || n > i32::MAX as i64 {
                return Ok(err(DB_RANGE));
            }
            dbid = n as usize;
            i += 1;
        } else {
            return Ok(err(SYNTAX));
        }
        i += 1;
    }
    if dbid == ctx.db && a[1] == a[2] {
        return Ok(err("ERR source and destination objects are the same"));
    }
    if a[2].len() > MAX_KEY_LEN {
        return Ok(err(super::args::KEY_TOO_LONG));
    }
    let src = ctx.view()?;
    let Some(h) = src.lookup(&a[1], ctx.now_ms)? else {
        return Ok(Reply::Int(0));
    };
    let dst = if dbid == ctx.db {
        ctx.view()?
    } else {
        ctx.view_at(dbid)?
    };
    let dst_old = dst.lookup_for_write(&a[2], ctx.now_ms)?;
    if dst_old.is_some() && !replace {
        return Ok(Reply::Int(0));
    }
    copy_value(&src, &h, &dst, &a[2], dst_old.as_ref())?;
    Ok(Reply::Int(1))
}

/// KEYS pattern
pub fn keys(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let pat = &a[1];
    let all = pat.as_ref() == b"*";
    let keys = v.all_keys(ctx.now_ms, |k| all || crate::glob::matches(pat, k, false))?;
    Ok(Reply::Array(keys.into_iter().map(Reply::Bulk).collect()))
}

/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]
pub fn scan(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let o = arg!(super::args::scan_options(a, 1, true));
    let v = ctx.view()?;
    let page = v.scan(o.cursor, o.count, ctx.now_ms, |k, kind| {
        o.pattern.is_none_or(|p| crate::glob::matches(p, k, false))
            && o.type_filter.as_deref().is_none_or(|t| t == kind.name())
    })?;
    Ok(Reply::Array(vec![
        Reply::Bulk(page.cursor.to_string().into_bytes()),
        Reply::Array(page.keys.into_iter().map(Reply::Bulk).collect()),
    ]))
}

/// RANDOMKEY
pub fn randomkey(ctx: &mut Ctx<'_>, _a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let r: u64 = rand::random();
    Ok(match v.random_key(r, ctx.now_ms)? {
        Some(k) => Reply::Bulk(k),
        None => Reply::Nil,
    })
}

/// DBSIZE: O(1), from the keyspace's counter.
pub fn dbsize(ctx: &mut Ctx<'_>, _a: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(ctx.view()?.len()? as i64))
}

/// OBJECT ENCODING|REFCOUNT|IDLETIME|FREQ|HELP key
pub fn object(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let sub = lower(&a[1]);
    if sub == "help" {
        return Ok(Reply::Array(
            [
                "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "ENCODING <key>",
                "    Return the kind of internal representation used in order to store the value",
                "    associated with a <key>.",
                "FREQ <key>",
                "    Return the access frequency index of the <key>. The returned integer is",
                "    proportional to the logarithm of the recent access frequency of the key.",
                "IDLETIME <key>",
                "    Return the idle time of the <key>, that is the approximated number of",
                "    seconds elapsed since the last access to the key.",
                "REFCOUNT <key>",
                "    Return the number of references of the value associated with the specified",
                "    <key>.",
                "HELP",
                "    Prints this help.",
            ]
            .iter()
            .map(|s| Reply::StatusOwned(s.to_string()))
            .collect(),
        ));
    }
    if a.len() != 3 || !matches!(sub.as_str(), "encoding" | "refcount" | "idletime" | "freq") {
        return Ok(super::unknown_subcommand("object", &a[1]));
    }
    let v = ctx.view()?;
    let Some(h) = v.lookup(&a[2], ctx.now_ms)? else {
        return Ok(Reply::Nil);
    };
    Ok(match sub.as_str() {
        "encoding" => Reply::bulk(encoding(&h).as_bytes()),
        "refcount" => Reply::Int(1),
        "idletime" => Reply::Int(0),
        _ => err("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust."),
    })
}

/// The encoding name Redis would report for a value of this shape.
fn encoding(h: &Header<'_>) -> &'static str {
    match h.kind {
        Kind::String => match h.body {
            Body::Inline(b) => {
                if b.len() <= 20 && crate::resp::parse::parse_i64(b).is_some() {
                    "int"
                } else if b.len() <= 44 {
                    "embstr"
                } else {
                    "raw"
                }
            }
            _ => "raw",
        },
        Kind::List => "quicklist",
        Kind::Hash => "hashtable",
        Kind::Set => "hashtable",
        Kind::ZSet => "skiplist",
        Kind::Stream => "stream",
        Kind::Item => "raw",
    }
}

/// Which EXPIRE flavour: unit and whether the argument is absolute.
#[derive(Clone, Copy)]
struct ExpireKind {
    ms: bool,
    absolute: bool,
    name: &'static str,
}

/// EXPIRE key seconds [NX|XX|GT|LT]
pub fn expire(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    expire_generic(
        ctx,
        a,
        ExpireKind {
            ms: false,
            absolute: false,
            name: "expire",
        },
    )
}

/// PEXPIRE key ms [NX|XX|GT|LT]
pub fn pexpire(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    expire_generic(
        ctx,
        a,
        ExpireKind {
            ms: true,
            absolute: false,
            name: "pexpire",
        },
    )
}

/// EXPIREAT key unix-seconds [NX|XX|GT|LT]
pub fn expireat(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    expire_generic(
        ctx,
        a,
        ExpireKind {
            ms: false,
            absolute: true,
            name: "expireat",
        },
    )
}

/// PEXPIREAT key unix-ms [NX|XX|GT|LT]
pub fn pexpireat(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    expire_generic(
        ctx,
        a,
        ExpireKind {
            ms: true,
            absolute: true,
            name: "pexpireat",
        },
    )
}

fn expire_generic(ctx: &mut Ctx<'_>, a: &[Bytes], k: ExpireKind) -> CmdResult {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for o in &a[3..] {
        match lower(o).as_str() {
            "nx" => nx = true,
            "xx" => xx = true,
            "gt" => gt = true,
            "lt" => lt = true,
            _ => {
                return Ok(Reply::err(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(o)
                )))
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Ok(err(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Ok(err(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    let mut when = arg!(int(&a[2]));
    let bad = || Reply::err(format!("ERR invalid expire time in '{}' command", k.name));
    if !k.ms {
        if !(i64::MIN / 1000..=i64::MAX / 1000).contains(&when) {
            return Ok(bad());
        }
        when *= 1000;
    }
    let base = if k.absolute { 0 } else { ctx.now_ms };
    if when > i64::MAX - base {
        return Ok(bad());
    }
    when += base;
    let v = ctx.view()?;
    let Some(h) = v.lookup_for_write(&a[1], ctx.now_ms)? else {
        return Ok(Reply::Int(0));
    };
    let cur = h.expire_at;
    if (nx && cur.is_some())
        || (xx && cur.is_none())
        || (gt && cur.is_none_or(|c| when <= c))
        || (lt && cur.is_some_and(|c| when >= c))
    {
        return Ok(Reply::Int(0));
    }
    if when <= ctx.now_ms {
        v.delete_entry(&a[1], &h)?;
    } else {
        v.set_expiry(&a[1], &h, Some(when))?;
    }
    Ok(Reply::Int(1))
}

/// TTL family: `ms` output in milliseconds, `abs` output the deadline itself.
fn ttl_generic(ctx: &mut Ctx<'_>, a: &[Bytes], ms: bool, abs: bool) -> CmdResult {
    let v = ctx.view()?;
    let Some(h) = v.lookup(&a[1], ctx.now_ms)? else {
        return Ok(Reply::Int(-2));
    };
    let Some(e) = h.expire_at else {
        return Ok(Reply::Int(-1));
    };
    let t = if abs {
        e
    } else {
        e.saturating_sub(ctx.now_ms).max(0)
    };
    // i128: a deadline near i64::MAX must not overflow the rounding.
    Ok(Reply::Int(if ms {
        t
    } else {
        ((t as i128 + 500) / 1000) as i64
    }))
}

/// TTL key
pub fn ttl(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, a, false, false)
}

/// PTTL key
pub fn pttl(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, a, true, false)
}

/// EXPIRETIME key
pub fn expiretime(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, a, false, true)
}

/// PEXPIRETIME key
pub fn pexpiretime(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, a, true, true)
}

/// PERSIST key
pub fn persist(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    match v.lookup_for_write(&a[1], ctx.now_ms)? {
        Some(h) if h.expire_at.is_some() => {
            v.set_expiry(&a[1], &h, None)?;
            Ok(Reply::Int(1))
        }
        _ => Ok(Reply::Int(0)),
    }
}

/// Parses a database index argument as SELECT does.
fn db_index(ctx: &Ctx<'_>, raw: &[u8]) -> Result<usize, Reply> {
    let n = int(raw).map_err(|_| err(NOT_INT))?;
    if n < 0 || n as usize >= ctx.store.databases() || n > i32::MAX as i64 {
        return Err(err(DB_RANGE));
    }
    Ok(n as usize)
}

/// SELECT index
pub fn select(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    ctx.db = arg!(db_index(ctx, &a[1]));
    Ok(OK)
}

/// SWAPDB a b
pub fn swapdb(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let Ok(x) = int(&a[1]) else {
        return Ok(err("ERR invalid first DB index"));
    };
    let Ok(y) = int(&a[2]) else {
        return Ok(err("ERR invalid second DB index"));
    };
    let n = ctx.store.databases() as i64;
    if x < 0 || x >= n || y < 0 || y >= n {
        return Ok(err(DB_RANGE));
    }
    let (x, y) = (x as usize, y as usize);
    if x != y {
        // Redis touches watched keys that exist in either database before the swap.
        for (a, b) in [(x, y), (y, x)] {
            let (va, vb) = (ctx.view_at(a)?, ctx.view_at(b)?);
            for k in ctx.state.watches.keys_in(a) {
                if va.lookup(&k, ctx.now_ms)?.is_some() || vb.lookup(&k, ctx.now_ms)?.is_some() {
                    ctx.state.watches.touch(a, &k);
                }
            }
        }
        ctx.store.swap_databases(ctx.tx, x, y)?;
        if let Some(log) = ctx.log {
            log.databases_swapped(x, y);
        }
    }
    Ok(OK)
}

/// Parses FLUSHDB/FLUSHALL's optional ASYNC|SYNC.
fn flush_mode(a: &[Bytes]) -> Result<(), Reply> {
    match a.get(1) {
        None => Ok(()),
        Some(m) if a.len() == 2 && (is(m, "async") || is(m, "sync")) => Ok(()),
        Some(_) => Err(err(SYNTAX)),
    }
}

/// FLUSHDB [ASYNC|SYNC]
pub fn flushdb(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    arg!(flush_mode(a));
    flush_one(ctx, ctx.db)?;
    Ok(OK)
}

/// FLUSHALL [ASYNC|SYNC]
pub fn flushall(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    arg!(flush_mode(a));
    for i in 0..ctx.store.databases() {
        flush_one(ctx, i)?;
    }
    // Databases beyond --databases (left by an earlier, larger setting) go too.
    ctx.store.flush_all_slots(ctx.tx)?;
    Ok(OK)
}

/// Empties database `db`, first touching the watched keys that exist in it (Redis leaves
/// watchers of absent keys alone).
fn flush_one(ctx: &mut Ctx<'_>, db: usize) -> Result<(), rivet::Error> {
    let v = ctx.view_at(db)?;
    for k in ctx.state.watches.keys_in(db) {
        if v.lookup(&k, ctx.now_ms)?.is_some() {
            ctx.state.watches.touch(db, &k);
        }
    }
    if let Some(log) = ctx.log {
        log.database_flushed(db);
    }
    ctx.store.flush(ctx.tx, db)
}
