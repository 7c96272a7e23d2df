//! Keyspace notifications (`notify-keyspace-events`): the event classes, and the events a
//! write command produced, derived in the writer from the command and the keys its
//! transaction changed (the store's write log records each key's creation, change,
//! deletion and expiry). Events become pub/sub messages on `__keyspace@<db>__:<key>` and
//! `__keyevent@<db>__:<event>`, queued in the write log and delivered after the commit.

use bytes::Bytes;

use crate::store::{Change, Touched, WriteLog};

/// `K`: `__keyspace@<db>__:<key>` channels.
pub const KEYSPACE: u32 = 1;
/// `E`: `__keyevent@<db>__:<event>` channels.
pub const KEYEVENT: u32 = 1 << 1;
/// `g`: generic commands (DEL, EXPIRE, RENAME...).
pub const GENERIC: u32 = 1 << 2;
/// `$`: string commands.
pub const STRING: u32 = 1 << 3;
/// `l`: list commands.
pub const LIST: u32 = 1 << 4;
/// `s`: set commands.
pub const SET: u32 = 1 << 5;
/// `h`: hash commands.
pub const HASH: u32 = 1 << 6;
/// `z`: sorted set commands.
pub const ZSET: u32 = 1 << 7;
/// `x`: expired keys.
pub const EXPIRED: u32 = 1 << 8;
/// `e`: evicted keys (this server never evicts).
pub const EVICTED: u32 = 1 << 9;
/// `t`: stream commands.
pub const STREAM: u32 = 1 << 10;
/// `m`: key misses (not generated here).
pub const KEY_MISS: u32 = 1 << 11;
/// `d`: module events (no modules here).
pub const MODULE: u32 = 1 << 13;
/// `n`: new keys.
pub const NEW: u32 = 1 << 14;
/// `A`: every class but `m` and `n`.
pub const ALL: u32 =
    GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// Parses Redis's class characters; `None` on an unknown one.
pub fn parse_flags(s: &str) -> Option<u32> {
    let mut f = 0;
    for c in s.chars() {
        f |= match c {
            'A' => ALL,
            'g' => GENERIC,
            '$' => STRING,
            'l' => LIST,
            's' => SET,
            'h' => HASH,
            'z' => ZSET,
            'x' => EXPIRED,
            'e' => EVICTED,
            'K' => KEYSPACE,
            'E' => KEYEVENT,
            't' => STREAM,
            'm' => KEY_MISS,
            'd' => MODULE,
            'n' => NEW,
            _ => return None,
        };
    }
    Some(f)
}

/// The canonical string of `flags`, as CONFIG GET shows it.
pub fn flags_string(flags: u32) -> String {
    let mut s = String::new();
    if flags & ALL == ALL {
        s.push('A');
    } else {
        for (bit, c) in [
            (GENERIC, 'g'),
            (STRING, '$'),
            (LIST, 'l'),
            (SET, 's'),
            (HASH, 'h'),
            (ZSET, 'z'),
            (EXPIRED, 'x'),
            (EVICTED, 'e'),
            (STREAM, 't'),
            (MODULE, 'd'),
            (NEW, 'n'),
        ] {
            if flags & bit != 0 {
                s.push(c);
            }
        }
    }
    for (bit, c) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
        if flags & bit != 0 {
            s.push(c);
        }
    }
    s
}

/// How a command's changes map to events.
enum Rule {
    /// Every changed key gets this event; a key the command emptied also gets `del`.
    Each(u32, &'static str),
    /// Like `Each`, but a key the command deleted gets only `del` (STORE commands, EXPIRE
    /// with a past time).
    OrDel(u32, &'static str),
    /// The first key argument (the source) gets the first event, the other keys the
    /// second (RENAME, LMOVE, SMOVE, MOVE); the last field puts the destination's events
    /// first, as Redis sends them for LMOVE and RPOPLPUSH.
    Pair(u32, &'static str, u32, &'static str, bool),
    /// No event.
    None,
}

fn upper_is(a: &[u8], w: &str) -> bool {
    a.eq_ignore_ascii_case(w.as_bytes())
}

/// The rule of command `name` called with `args`.
fn rule(name: &str, args: &[Bytes]) -> Rule {
    use Rule::*;
    let arg = |i: usize| args.get(i).map(|a| a.as_ref()).unwrap_or(b"");
    let side = |i: usize, l: &'static str, r: &'static str| {
        if upper_is(arg(i), "left") {
            l
        } else {
            r
        }
    };
    match name {
        "del" | "unlink" | "getdel" => Each(GENERIC, "del"),
        "expire" | "pexpire" | "expireat" | "pexpireat" => OrDel(GENERIC, "expire"),
        "persist" => Each(GENERIC, "persist"),
        "rename" | "renamenx" => Pair(GENERIC, "rename_from", GENERIC, "rename_to", false),
        "move" => Pair(GENERIC, "move_from", GENERIC, "move_to", false),
        "copy" => OrDel(GENERIC, "copy_to"),
        "restore" => Each(GENERIC, "restore"),
        "sort" => OrDel(GENERIC, "sortstore"),
        "set" | "setnx" | "setex" | "psetex" | "getset" | "mset" | "msetnx" => Each(STRING, "set"),
        "incr" | "decr" | "incrby" | "decrby" => Each(STRING, "incrby"),
        "incrbyfloat" => Each(STRING, "incrbyfloat"),
        "append" => Each(STRING, "append"),
        "setrange" => Each(STRING, "setrange"),
        "setbit" | "bitfield" => Each(STRING, "setbit"),
        "bitop" => OrDel(STRING, "set"),
        "getex" if args.iter().skip(2).any(|a| upper_is(a, "persist")) => Each(GENERIC, "persist"),
        "getex" => Each(GENERIC, "expire"),
        "lpush" | "lpushx" => Each(LIST, "lpush"),
        "rpush" | "rpushx" => Each(LIST, "rpush"),
        "lpop" | "blpop" => Each(LIST, "lpop"),
        "rpop" | "brpop" => Each(LIST, "rpop"),
        "lmpop" | "blmpop" => {
            let dir = args.iter().any(|a| upper_is(a, "left"));
            Each(LIST, if dir { "lpop" } else { "rpop" })
        }
        "linsert" => Each(LIST, "linsert"),
        "lset" => Each(LIST, "lset"),
        "lrem" => Each(LIST, "lrem"),
        "ltrim" => Each(LIST, "ltrim"),
        "rpoplpush" | "brpoplpush" => Pair(LIST, "rpop", LIST, "lpush", true),
        "lmove" | "blmove" => Pair(
            LIST,
            side(3, "lpop", "rpop"),
            LIST,
            side(4, "lpush", "rpush"),
            true,
        ),
        "sadd" => Each(SET, "sadd"),
        "srem" => Each(SET, "srem"),
        "spop" => Each(SET, "spop"),
        "smove" => Pair(SET, "srem", SET, "sadd", false),
        "sinterstore" => OrDel(SET, "sinterstore"),
        "sunionstore" => OrDel(SET, "sunionstore"),
        "sdiffstore" => OrDel(SET, "sdiffstore"),
        "hset" | "hmset" | "hsetnx" => Each(HASH, "hset"),
        "hdel" => Each(HASH, "hdel"),
        "hincrby" => Each(HASH, "hincrby"),
        "hincrbyfloat" => Each(HASH, "hincrbyfloat"),
        "zadd" => {
            let incr = args.iter().skip(2).any(|a| upper_is(a, "incr"));
            Each(ZSET, if incr { "zincr" } else { "zadd" })
        }
        "zincrby" => Each(ZSET, "zincr"),
        "zrem" => Each(ZSET, "zrem"),
        "zremrangebyscore" => Each(ZSET, "zremrangebyscore"),
        "zremrangebyrank" => Each(ZSET, "zremrangebyrank"),
        "zremrangebylex" => Each(ZSET, "zremrangebylex"),
        "zpopmin" | "bzpopmin" => Each(ZSET, "zpopmin"),
        "zpopmax" | "bzpopmax" => Each(ZSET, "zpopmax"),
        "zmpop" | "bzmpop" => {
            let min = args.iter().any(|a| upper_is(a, "min"));
            Each(ZSET, if min { "zpopmin" } else { "zpopmax" })
        }
        "zunionstore" => OrDel(ZSET, "zunionstore"),
        "zinterstore" => OrDel(ZSET, "zinterstore"),
        "zdiffstore" => OrDel(ZSET, "zdiffstore"),
        "zrangestore" => OrDel(ZSET, "zrangestore"),
        "xadd" => Each(STREAM, "xadd"),
        "xdel" => Each(STREAM, "xdel"),
        "xtrim" => Each(STREAM, "xtrim"),
        "xsetid" => Each(STREAM, "xsetid"),
        "pfadd" => Each(STRING, "pfadd"),
        "pfmerge" => Each(STRING, "pfmerge"),
        _ => None,
    }
}

/// What one command did to one key.
struct KeyChanges<'a> {
    db: usize,
    key: &'a [u8],
    expired: bool,
    created: bool,
    removed: bool,
}

/// Groups `touched` by key, in order of first change. A key deleted and created again by
/// the same command was overwritten (SET over a list), not created, unless `recreate`
/// (RENAME and COPY onto an existing key report it as new, as Redis does).
fn by_key(touched: &[Touched], recreate: bool) -> Vec<KeyChanges<'_>> {
    let mut out: Vec<KeyChanges<'_>> = Vec::new();
    for t in touched {
        let i = match out
            .iter()
            .position(|k| k.db == t.db && k.key == t.key.as_slice())
        {
            Some(i) => i,
            None => {
                out.push(KeyChanges {
                    db: t.db,
                    key: &t.key,
                    expired: false,
                    created: false,
                    removed: false,
                });
                out.len() - 1
            }
        };
        let k = &mut out[i];
        match t.change {
            Change::Expired => k.expired = true,
            Change::Created => {
                k.created = recreate || !k.removed;
                k.removed = false;
            }
            Change::Changed => k.removed = false,
            Change::Removed => k.removed = true,
        }
    }
    out
}

/// Queues the events of one writer step (a command named `name` with `args`, or the
/// expiry sweep when `name` is empty) that changed `touched`, if `flags` enable them.
pub fn command_events(flags: u32, log: &WriteLog, name: &str, args: &[Bytes], touched: &[Touched]) {
    if flags & (KEYSPACE | KEYEVENT) == 0 || touched.is_empty() {
        return;
    }
    let rule = if name.is_empty() {
        Rule::None
    } else {
        rule(name, args)
    };
    let first_key = args.get(1).map(|a| a.as_ref());
    let is_source = |k: &KeyChanges<'_>| match name {
        "move" => k.removed,
        _ => Some(k.key) == first_key,
    };
    let recreate = matches!(name, "rename" | "renamenx" | "copy" | "move");
    let mut keys = by_key(touched, recreate);
    if let Rule::Pair(.., dest_first) = rule {
        // RENAME: rename_from, then rename_to; LMOVE: the push, then the pop.
        keys.sort_by_key(|k| is_source(k) == dest_first);
    }
    // RENAME and MOVE report the new key before their own events, as Redis does.
    let new_first = matches!(name, "rename" | "renamenx" | "move");
    if new_first {
        for k in keys.iter().filter(|k| k.created && !k.removed) {
            emit(flags, log, NEW, "new", k.db, k.key);
        }
    }
    for k in keys {
        let ev = |class: u32, event: &str| emit(flags, log, class, event, k.db, k.key);
        if k.expired {
            ev(EXPIRED, "expired");
        }
        if k.created && !k.removed && !new_first {
            ev(NEW, "new");
        }
        match rule {
            Rule::None => {}
            Rule::Each(c, e) => {
                // MSET reports each pair, so a key given twice gets two events.
                let times = match name {
                    "mset" | "msetnx" => args
                        .iter()
                        .skip(1)
                        .step_by(2)
                        .filter(|a| a.as_ref() == k.key)
                        .count()
                        .max(1),
                    _ => 1,
                };
                for _ in 0..times {
                    ev(c, e);
                }
                if k.removed && e != "del" {
                    ev(GENERIC, "del");
                }
            }
            Rule::OrDel(c, e) => {
                if k.removed {
                    ev(GENERIC, "del");
                } else {
                    ev(c, e);
                }
            }
            Rule::Pair(c1, e1, c2, e2, dest_first) => {
                if dest_first && args.get(1) == args.get(2) {
                    // LMOVE l l: the push, then the pop, on the one key.
                    ev(c2, e2);
                    ev(c1, e1);
                } else if is_source(&k) {
                    ev(c1, e1);
                    if k.removed && !matches!(name, "rename" | "renamenx" | "move") {
                        ev(GENERIC, "del");
                    }
                } else {
                    ev(c2, e2);
                }
            }
        }
        // SET/SETEX/GETEX with an expiry also report it.
        if matches!(name, "setex" | "psetex") && !k.removed {
            ev(GENERIC, "expire");
        }
        if name == "set"
            && !k.removed
            && args
                .iter()
                .skip(3)
                .any(|a| ["ex", "px", "exat", "pxat"].iter().any(|w| upper_is(a, w)))
        {
            ev(GENERIC, "expire");
        }
    }
}

/// After one command of a script (`redis.call`): queues the events of the keys it changed
/// (the script's own command, EVAL, generates none of its own).
pub fn after_script_command(flags: u32, log: &WriteLog, name: &str, args: &[Bytes]) {
    if flags & (KEYSPACE | KEYEVENT) == 0 {
        return;
    }
    let fresh = log.unnotified();
    command_events(flags, log, name, args, &fresh);
}

/// Queues one event of class `class` named `event` for `key` in the context's database, for
/// a handler whose events the command table cannot derive from the keys it changed (the
/// stream consumer-group events such as `xgroup-createconsumer`). Only in the writer
/// (outside it, `ctx.log` is absent and nothing is queued).
pub fn event(ctx: &crate::commands::Ctx<'_>, class: u32, event: &str, key: &[u8]) {
    if let Some(log) = ctx.log {
        let flags = ctx.state.config.notify_flags();
        // What the command changed before this point comes first, as in Redis: the `new` of
        // the key XGROUP CREATE ... MKSTREAM made precedes `xgroup-create`.
        let earlier = log.unnotified();
        command_events(flags, log, "", &[], &earlier);
        emit(flags, log, class, event, ctx.db, key);
    }
}

/// Queues one event's messages (if its class is on).
fn emit(flags: u32, log: &WriteLog, class: u32, event: &str, db: usize, key: &[u8]) {
    if flags & class == 0 {
        return;
    }
    if flags & KEYSPACE != 0 {
        let mut chan = format!("__keyspace@{db}__:").into_bytes();
        chan.extend_from_slice(key);
        log.publish(chan, event.as_bytes().to_vec());
    }
    if flags & KEYEVENT != 0 {
        let chan = format!("__keyevent@{db}__:{event}").into_bytes();
        log.publish(chan, key.to_vec());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip_like_redis() {
        let f = |s: &str| flags_string(parse_flags(s).unwrap());
        assert_eq!(f("gKE"), "gKE");
        assert_eq!(f("$lshzxeKE"), "$lshzxeKE");
        assert_eq!(f("KA"), "AK");
        assert_eq!(f("EA"), "AE");
        assert_eq!(f(""), "");
        assert!(parse_flags("Kq").is_none());
    }
}
