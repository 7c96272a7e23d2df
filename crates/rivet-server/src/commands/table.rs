//! The command table, in the shape of Redis's: name, arity (positive = exact, negative = at
//! least), flags, and the first/last/step positions of key arguments (for COMMAND INFO).

use std::collections::HashMap;
use std::sync::OnceLock;

use super::{
    bits, bpop, hashes, keys, lists, member_scan, pubsub, server, sets, sort, stream_cg,
    stream_info, stream_read, streams, strings, zrange, zsetops, zsets, Handler,
};
use super::{
    ADMIN, BLOCKING, CONN, DENY_OOM, FAST, LOADING, NO_AUTH, NO_MULTI, NO_QUEUE, READONLY, STALE,
    WRITE,
};

/// One command.
#[derive(Debug)]
pub struct Spec {
    /// Lowercase name.
    pub name: &'static str,
    /// Redis arity.
    pub arity: i32,
    /// Flag bits (`WRITE`, `READONLY`...).
    pub flags: u32,
    /// First key argument (0 = none).
    pub first_key: i32,
    /// Last key argument (-1 = last argument).
    pub last_key: i32,
    /// Step between keys.
    pub step: i32,
    /// The handler; `None` for commands the connection runs itself.
    pub handler: Option<Handler>,
    /// Redis's command group (COMMAND DOCS).
    pub group: &'static str,
}

macro_rules! cmd {
    ($name:literal, $arity:expr, $flags:expr, $keys:expr, $h:expr, $group:literal) => {
        Spec {
            name: $name,
            arity: $arity,
            flags: $flags,
            first_key: $keys.0,
            last_key: $keys.1,
            step: $keys.2,
            handler: $h,
            group: $group,
        }
    };
}

const NOKEYS: (i32, i32, i32) = (0, 0, 0);
const KEY1: (i32, i32, i32) = (1, 1, 1);
const KEY12: (i32, i32, i32) = (1, 2, 1);
const ALLKEYS: (i32, i32, i32) = (1, -1, 1);

const W: u32 = WRITE | DENY_OOM;
const WF: u32 = WRITE | DENY_OOM | FAST;
const R: u32 = READONLY;
const RF: u32 = READONLY | FAST;

/// Every command the server knows.
pub static COMMANDS: &[Spec] = &[
    // strings
    cmd!("get", 2, RF, KEY1, Some(strings::get), "string"),
    cmd!("set", -3, W, KEY1, Some(strings::set), "string"),
    cmd!("setnx", 3, WF, KEY1, Some(strings::setnx), "string"),
    cmd!("setex", 4, W, KEY1, Some(strings::setex), "string"),
    cmd!("psetex", 4, W, KEY1, Some(strings::psetex), "string"),
    cmd!("getset", 3, WF, KEY1, Some(strings::getset), "string"),
    cmd!("getdel", 2, WF, KEY1, Some(strings::getdel), "string"),
    cmd!("getex", -2, WF, KEY1, Some(strings::getex), "string"),
    cmd!("mget", -2, RF, ALLKEYS, Some(strings::mget), "string"),
    cmd!("mset", -3, W, (1, -1, 2), Some(strings::mset), "string"),
    cmd!("msetnx", -3, W, (1, -1, 2), Some(strings::msetnx), "string"),
    cmd!("append", 3, WF, KEY1, Some(strings::append), "string"),
    cmd!("strlen", 2, RF, KEY1, Some(strings::strlen), "string"),
    cmd!("getrange", 4, R, KEY1, Some(strings::getrange), "string"),
    cmd!("substr", 4, R, KEY1, Some(strings::getrange), "string"),
    cmd!("setrange", 4, W, KEY1, Some(strings::setrange), "string"),
    cmd!("lcs", -3, R, KEY12, Some(strings::lcs), "string"),
    cmd!("incr", 2, WF, KEY1, Some(strings::incr), "string"),
    cmd!("decr", 2, WF, KEY1, Some(strings::decr), "string"),
    cmd!("incrby", 3, WF, KEY1, Some(strings::incrby), "string"),
    cmd!("decrby", 3, WF, KEY1, Some(strings::decrby), "string"),
    cmd!(
        "incrbyfloat",
        3,
        WF,
        KEY1,
        Some(strings::incrbyfloat),
        "string"
    ),
    // bits
    cmd!("setbit", 4, W, KEY1, Some(bits::setbit), "bitmap"),
    cmd!("getbit", 3, RF, KEY1, Some(bits::getbit), "bitmap"),
    cmd!("bitcount", -2, R, KEY1, Some(bits::bitcount), "bitmap"),
    cmd!("bitpos", -3, R, KEY1, Some(bits::bitpos), "bitmap"),
    cmd!("bitop", -4, W, (2, -1, 1), Some(bits::bitop), "bitmap"),
    // hashes
    cmd!("hset", -4, WF, KEY1, Some(hashes::hset), "hash"),
    cmd!("hmset", -4, WF, KEY1, Some(hashes::hset), "hash"),
    cmd!("hsetnx", 4, WF, KEY1, Some(hashes::hsetnx), "hash"),
    cmd!("hget", 3, RF, KEY1, Some(hashes::hget), "hash"),
    cmd!("hmget", -3, RF, KEY1, Some(hashes::hmget), "hash"),
    cmd!("hdel", -3, WRITE | FAST, KEY1, Some(hashes::hdel), "hash"),
    cmd!("hlen", 2, RF, KEY1, Some(hashes::hlen), "hash"),
    cmd!("hexists", 3, RF, KEY1, Some(hashes::hexists), "hash"),
    cmd!("hstrlen", 3, RF, KEY1, Some(hashes::hstrlen), "hash"),
    cmd!("hgetall", 2, R, KEY1, Some(hashes::hgetall), "hash"),
    cmd!("hkeys", 2, R, KEY1, Some(hashes::hkeys), "hash"),
    cmd!("hvals", 2, R, KEY1, Some(hashes::hvals), "hash"),
    cmd!("hrandfield", -2, R, KEY1, Some(hashes::hrandfield), "hash"),
    cmd!("hincrby", 4, WF, KEY1, Some(hashes::hincrby), "hash"),
    cmd!(
        "hincrbyfloat",
        4,
        WF,
        KEY1,
        Some(hashes::hincrbyfloat),
        "hash"
    ),
    // sets
    cmd!("sadd", -3, WF, KEY1, Some(sets::sadd), "set"),
    cmd!("srem", -3, WRITE | FAST, KEY1, Some(sets::srem), "set"),
    cmd!("sismember", 3, RF, KEY1, Some(sets::sismember), "set"),
    cmd!("smismember", -3, RF, KEY1, Some(sets::smismember), "set"),
    cmd!("scard", 2, RF, KEY1, Some(sets::scard), "set"),
    cmd!("smembers", 2, R, KEY1, Some(sets::smembers), "set"),
    cmd!("srandmember", -2, R, KEY1, Some(sets::srandmember), "set"),
    cmd!("spop", -2, WRITE | FAST, KEY1, Some(sets::spop), "set"),
    cmd!("smove", 4, WRITE | FAST, KEY12, Some(sets::smove), "set"),
    cmd!("sinter", -2, R, ALLKEYS, Some(sets::sinter), "set"),
    // The keys of SINTERCARD follow its numkeys argument: no fixed range (as Redis reports).
    cmd!("sintercard", -3, R, NOKEYS, Some(sets::sintercard), "set"),
    cmd!(
        "sinterstore",
        -3,
        W,
        ALLKEYS,
        Some(sets::sinterstore),
        "set"
    ),
    cmd!("sunion", -2, R, ALLKEYS, Some(sets::sunion), "set"),
    cmd!(
        "sunionstore",
        -3,
        W,
        ALLKEYS,
        Some(sets::sunionstore),
        "set"
    ),
    cmd!("sdiff", -2, R, ALLKEYS, Some(sets::sdiff), "set"),
    cmd!("sdiffstore", -3, W, ALLKEYS, Some(sets::sdiffstore), "set"),
    // lists
    cmd!("lpush", -3, WF, KEY1, Some(lists::lpush), "list"),
    cmd!("rpush", -3, WF, KEY1, Some(lists::rpush), "list"),
    cmd!("lpushx", -3, WF, KEY1, Some(lists::lpushx), "list"),
    cmd!("rpushx", -3, WF, KEY1, Some(lists::rpushx), "list"),
    cmd!("lpop", -2, WRITE | FAST, KEY1, Some(lists::lpop), "list"),
    cmd!("rpop", -2, WRITE | FAST, KEY1, Some(lists::rpop), "list"),
    cmd!("llen", 2, RF, KEY1, Some(lists::llen), "list"),
    cmd!("lindex", 3, R, KEY1, Some(lists::lindex), "list"),
    cmd!(
        "blpop",
        -3,
        W | BLOCKING,
        (1, -2, 1),
        Some(bpop::blpop),
        "list"
    ),
    cmd!(
        "brpop",
        -3,
        W | BLOCKING,
        (1, -2, 1),
        Some(bpop::blpop),
        "list"
    ),
    cmd!("blmove", 6, W | BLOCKING, KEY12, Some(bpop::blmove), "list"),
    cmd!(
        "brpoplpush",
        4,
        W | BLOCKING,
        KEY12,
        Some(bpop::blmove),
        "list"
    ),
    cmd!(
        "blmpop",
        -5,
        W | BLOCKING,
        NOKEYS,
        Some(bpop::blmpop),
        "list"
    ),
    cmd!("lset", 4, W, KEY1, Some(lists::lset), "list"),
    cmd!("lrange", 4, R, KEY1, Some(lists::lrange), "list"),
    cmd!("ltrim", 4, WRITE, KEY1, Some(lists::ltrim), "list"),
    cmd!("linsert", 5, W, KEY1, Some(lists::linsert), "list"),
    cmd!("lrem", 4, WRITE, KEY1, Some(lists::lrem), "list"),
    cmd!("lpos", -3, R, KEY1, Some(lists::lpos), "list"),
    cmd!("lmove", 5, W, KEY12, Some(lists::lmove), "list"),
    cmd!("rpoplpush", 3, W, KEY12, Some(lists::rpoplpush), "list"),
    // The keys of LMPOP follow its numkeys argument: no fixed range (as Redis reports).
    cmd!("lmpop", -4, WRITE, NOKEYS, Some(lists::lmpop), "list"),
    // sorted sets
    cmd!("zadd", -4, WF, KEY1, Some(zsets::zadd), "sorted-set"),
    cmd!("zincrby", 4, WF, KEY1, Some(zsets::zincrby), "sorted-set"),
    cmd!("zscore", 3, RF, KEY1, Some(zsets::zscore), "sorted-set"),
    cmd!("zmscore", -3, RF, KEY1, Some(zsets::zmscore), "sorted-set"),
    cmd!("zcard", 2, RF, KEY1, Some(zsets::zcard), "sorted-set"),
    cmd!(
        "zrem",
        -3,
        WRITE | FAST,
        KEY1,
        Some(zsets::zrem),
        "sorted-set"
    ),
    cmd!("zrank", 3, RF, KEY1, Some(zsets::zrank), "sorted-set"),
    cmd!("zrevrank", 3, RF, KEY1, Some(zsets::zrank), "sorted-set"),
    cmd!("zcount", 4, RF, KEY1, Some(zsets::zcount), "sorted-set"),
    cmd!(
        "zlexcount",
        4,
        RF,
        KEY1,
        Some(zsets::zlexcount),
        "sorted-set"
    ),
    cmd!("zrange", -4, R, KEY1, Some(zrange::zrange), "sorted-set"),
    cmd!(
        "zrangestore",
        -5,
        W,
        KEY12,
        Some(zrange::zrange),
        "sorted-set"
    ),
    cmd!("zrevrange", -4, R, KEY1, Some(zrange::zrange), "sorted-set"),
    cmd!(
        "zrangebyscore",
        -4,
        R,
        KEY1,
        Some(zrange::zrange),
        "sorted-set"
    ),
    cmd!(
        "zrevrangebyscore",
        -4,
        R,
        KEY1,
        Some(zrange::zrange),
        "sorted-set"
    ),
    cmd!(
        "zrangebylex",
        -4,
        R,
        KEY1,
        Some(zrange::zrange),
        "sorted-set"
    ),
    cmd!(
        "zrevrangebylex",
        -4,
        R,
        KEY1,
        Some(zrange::zrange),
        "sorted-set"
    ),
    cmd!(
        "zremrangebyrank",
        4,
        WRITE,
        KEY1,
        Some(zsets::zremrange),
        "sorted-set"
    ),
    cmd!(
        "zremrangebyscore",
        4,
        WRITE,
        KEY1,
        Some(zsets::zremrange),
        "sorted-set"
    ),
    cmd!(
        "zremrangebylex",
        4,
        WRITE,
        KEY1,
        Some(zsets::zremrange),
        "sorted-set"
    ),
    cmd!(
        "zpopmin",
        -2,
        WRITE | FAST,
        KEY1,
        Some(zsets::zpop),
        "sorted-set"
    ),
    cmd!(
        "zpopmax",
        -2,
        WRITE | FAST,
        KEY1,
        Some(zsets::zpop),
        "sorted-set"
    ),
    cmd!("zmpop", -4, WRITE, NOKEYS, Some(zsets::zmpop), "sorted-set"),
    cmd!(
        "zrandmember",
        -2,
        R,
        KEY1,
        Some(zsets::zrandmember),
        "sorted-set"
    ),
    cmd!(
        "bzpopmin",
        -3,
        WF | BLOCKING,
        (1, -2, 1),
        Some(bpop::bzpop),
        "sorted-set"
    ),
    cmd!(
        "bzpopmax",
        -3,
        WF | BLOCKING,
        (1, -2, 1),
        Some(bpop::bzpop),
        "sorted-set"
    ),
    cmd!(
        "bzmpop",
        -5,
        W | BLOCKING,
        NOKEYS,
        Some(bpop::bzmpop),
        "sorted-set"
    ),
    cmd!("zunion", -3, R, NOKEYS, Some(zsetops::zsetop), "sorted-set"),
    cmd!("zinter", -3, R, NOKEYS, Some(zsetops::zsetop), "sorted-set"),
    cmd!("zdiff", -3, R, NOKEYS, Some(zsetops::zsetop), "sorted-set"),
    cmd!(
        "zintercard",
        -3,
        R,
        NOKEYS,
        Some(zsetops::zsetop),
        "sorted-set"
    ),
    cmd!(
        "zunionstore",
        -4,
        W,
        KEY1,
        Some(zsetops::zsetop),
        "sorted-set"
    ),
    cmd!(
        "zinterstore",
        -4,
        W,
        KEY1,
        Some(zsetops::zsetop),
        "sorted-set"
    ),
    cmd!(
        "zdiffstore",
        -4,
        W,
        KEY1,
        Some(zsetops::zsetop),
        "sorted-set"
    ),
    cmd!("sscan", -3, R, KEY1, Some(member_scan::sscan), "set"),
    cmd!("hscan", -3, R, KEY1, Some(member_scan::hscan), "hash"),
    cmd!("zscan", -3, R, KEY1, Some(member_scan::zscan), "sorted-set"),
    // streams
    cmd!("xadd", -5, WF, KEY1, Some(streams::xadd), "stream"),
    cmd!("xlen", 2, RF, KEY1, Some(streams::xlen), "stream"),
    cmd!("xrange", -4, R, KEY1, Some(streams::xrange), "stream"),
    cmd!("xrevrange", -4, R, KEY1, Some(streams::xrange), "stream"),
    cmd!(
        "xdel",
        -3,
        WRITE | FAST,
        KEY1,
        Some(streams::xdel),
        "stream"
    ),
    cmd!("xtrim", -4, WRITE, KEY1, Some(streams::xtrim), "stream"),
    cmd!("xsetid", -3, WF, KEY1, Some(streams::xsetid), "stream"),
    cmd!(
        "xread",
        -4,
        R | BLOCKING,
        (0, 0, 0),
        Some(stream_read::xread),
        "stream"
    ),
    cmd!(
        "xreadgroup",
        -7,
        W | BLOCKING,
        (0, 0, 0),
        Some(stream_read::xread),
        "stream"
    ),
    cmd!(
        "xgroup",
        -2,
        W,
        (2, 2, 1),
        Some(stream_cg::xgroup),
        "stream"
    ),
    cmd!(
        "xack",
        -4,
        WRITE | FAST,
        KEY1,
        Some(stream_cg::xack),
        "stream"
    ),
    cmd!("xpending", -3, R, KEY1, Some(stream_cg::xpending), "stream"),
    cmd!(
        "xclaim",
        -6,
        WRITE | FAST,
        KEY1,
        Some(stream_cg::xclaim),
        "stream"
    ),
    cmd!(
        "xautoclaim",
        -6,
        WRITE | FAST,
        KEY1,
        Some(stream_cg::xautoclaim),
        "stream"
    ),
    cmd!(
        "xinfo",
        -2,
        R,
        (2, 2, 1),
        Some(stream_info::xinfo),
        "stream"
    ),
    cmd!("sort", -2, W, KEY1, Some(sort::sort), "generic"),
    cmd!("sort_ro", -2, R, KEY1, Some(sort::sort), "generic"),
    // scripting
    cmd!(
        "eval",
        -3,
        WRITE,
        NOKEYS,
        Some(crate::scripting::eval),
        "scripting"
    ),
    cmd!(
        "evalsha",
        -3,
        WRITE,
        NOKEYS,
        Some(crate::scripting::evalsha),
        "scripting"
    ),
    cmd!(
        "eval_ro",
        -3,
        WRITE,
        NOKEYS,
        Some(crate::scripting::eval),
        "scripting"
    ),
    cmd!(
        "evalsha_ro",
        -3,
        WRITE,
        NOKEYS,
        Some(crate::scripting::evalsha),
        "scripting"
    ),
    cmd!(
        "script",
        -2,
        0,
        NOKEYS,
        Some(crate::scripting::script),
        "scripting"
    ),
    // keys
    cmd!("del", -2, WRITE, ALLKEYS, Some(keys::del), "generic"),
    cmd!(
        "unlink",
        -2,
        WRITE | FAST,
        ALLKEYS,
        Some(keys::del),
        "generic"
    ),
    cmd!("exists", -2, RF, ALLKEYS, Some(keys::exists), "generic"),
    cmd!("touch", -2, RF, ALLKEYS, Some(keys::touch), "generic"),
    cmd!("type", 2, RF, KEY1, Some(keys::type_), "generic"),
    cmd!("rename", 3, WRITE, KEY12, Some(keys::rename), "generic"),
    cmd!(
        "renamenx",
        3,
        WRITE | FAST,
        KEY12,
        Some(keys::renamenx),
        "generic"
    ),
    cmd!("copy", -3, W, KEY12, Some(keys::copy), "generic"),
    cmd!("move", 3, WRITE | FAST, KEY1, Some(keys::move_), "generic"),
    cmd!("keys", 2, R, NOKEYS, Some(keys::keys), "generic"),
    cmd!("scan", -2, R, NOKEYS, Some(keys::scan), "generic"),
    cmd!("randomkey", 1, R, NOKEYS, Some(keys::randomkey), "generic"),
    cmd!("dbsize", 1, RF, NOKEYS, Some(keys::dbsize), "server"),
    cmd!("object", -2, R, (2, 2, 1), Some(keys::object), "generic"),
    cmd!("expire", -3, WF, KEY1, Some(keys::expire), "generic"),
    cmd!("pexpire", -3, WF, KEY1, Some(keys::pexpire), "generic"),
    cmd!("expireat", -3, WF, KEY1, Some(keys::expireat), "generic"),
    cmd!("pexpireat", -3, WF, KEY1, Some(keys::pexpireat), "generic"),
    cmd!("ttl", 2, RF, KEY1, Some(keys::ttl), "generic"),
    cmd!("pttl", 2, RF, KEY1, Some(keys::pttl), "generic"),
    cmd!("expiretime", 2, RF, KEY1, Some(keys::expiretime), "generic"),
    cmd!(
        "pexpiretime",
        2,
        RF,
        KEY1,
        Some(keys::pexpiretime),
        "generic"
    ),
    cmd!("persist", 2, WF, KEY1, Some(keys::persist), "generic"),
    cmd!(
        "select",
        2,
        LOADING | STALE | FAST,
        NOKEYS,
        Some(keys::select),
        "connection"
    ),
    cmd!(
        "swapdb",
        3,
        WRITE | FAST,
        NOKEYS,
        Some(keys::swapdb),
        "server"
    ),
    cmd!("flushdb", -1, WRITE, NOKEYS, Some(keys::flushdb), "server"),
    cmd!(
        "flushall",
        -1,
        WRITE,
        NOKEYS,
        Some(keys::flushall),
        "server"
    ),
    // pub/sub: the connection runs the subscription commands
    cmd!(
        "subscribe",
        -2,
        CONN | LOADING | STALE,
        NOKEYS,
        None,
        "pubsub"
    ),
    cmd!(
        "unsubscribe",
        -1,
        CONN | LOADING | STALE,
        NOKEYS,
        None,
        "pubsub"
    ),
    cmd!(
        "psubscribe",
        -2,
        CONN | LOADING | STALE,
        NOKEYS,
        None,
        "pubsub"
    ),
    cmd!(
        "punsubscribe",
        -1,
        CONN | LOADING | STALE,
        NOKEYS,
        None,
        "pubsub"
    ),
    cmd!(
        "ssubscribe",
        -2,
        CONN | LOADING | STALE,
        ALLKEYS,
        None,
        "pubsub"
    ),
    cmd!(
        "sunsubscribe",
        -1,
        CONN | LOADING | STALE,
        ALLKEYS,
        None,
        "pubsub"
    ),
    cmd!(
        "publish",
        3,
        FAST | LOADING | STALE,
        NOKEYS,
        Some(pubsub::publish),
        "pubsub"
    ),
    cmd!(
        "spublish",
        3,
        FAST | LOADING | STALE,
        KEY1,
        Some(pubsub::spublish),
        "pubsub"
    ),
    cmd!(
        "pubsub",
        -2,
        LOADING | STALE,
        NOKEYS,
        Some(pubsub::pubsub),
        "pubsub"
    ),
    // server
    cmd!(
        "ping",
        -1,
        FAST | STALE,
        NOKEYS,
        Some(server::ping),
        "connection"
    ),
    cmd!("echo", 2, FAST, NOKEYS, Some(server::echo), "connection"),
    cmd!(
        "time",
        1,
        FAST | LOADING | STALE,
        NOKEYS,
        Some(server::time),
        "server"
    ),
    cmd!(
        "lastsave",
        1,
        FAST | LOADING | STALE,
        NOKEYS,
        Some(server::lastsave),
        "server"
    ),
    cmd!(
        "save",
        1,
        ADMIN | NO_MULTI,
        NOKEYS,
        Some(server::save),
        "server"
    ),
    cmd!("bgsave", -1, ADMIN, NOKEYS, Some(server::save), "server"),
    cmd!(
        "bgrewriteaof",
        1,
        ADMIN,
        NOKEYS,
        Some(server::bgrewriteaof),
        "server"
    ),
    cmd!(
        "info",
        -1,
        LOADING | STALE,
        NOKEYS,
        Some(server::info),
        "server"
    ),
    cmd!(
        "config",
        -2,
        ADMIN | LOADING | STALE,
        NOKEYS,
        Some(server::config),
        "server"
    ),
    cmd!(
        "command",
        -1,
        LOADING | STALE,
        NOKEYS,
        Some(server::command),
        "server"
    ),
    cmd!("wait", 3, 0, NOKEYS, Some(server::wait), "generic"),
    cmd!("debug", -2, ADMIN, NOKEYS, Some(server::debug), "server"),
    cmd!(
        "function",
        -2,
        WRITE,
        NOKEYS,
        Some(crate::functions::function),
        "scripting"
    ),
    cmd!(
        "fcall",
        -3,
        WRITE,
        NOKEYS,
        Some(crate::scripting::fcall),
        "scripting"
    ),
    cmd!(
        "fcall_ro",
        -3,
        WRITE,
        NOKEYS,
        Some(crate::scripting::fcall),
        "scripting"
    ),
    cmd!("memory", -2, R, NOKEYS, Some(server::memory), "server"),
    // connection-owned
    cmd!(
        "auth",
        -2,
        CONN | NO_AUTH | FAST | STALE | LOADING,
        NOKEYS,
        None,
        "connection"
    ),
    cmd!(
        "hello",
        -1,
        CONN | NO_AUTH | FAST | STALE | LOADING,
        NOKEYS,
        None,
        "connection"
    ),
    cmd!(
        "quit",
        -1,
        CONN | NO_AUTH | NO_QUEUE | FAST | STALE | LOADING,
        NOKEYS,
        None,
        "connection"
    ),
    cmd!(
        "reset",
        1,
        CONN | NO_AUTH | NO_QUEUE | FAST | STALE | LOADING,
        NOKEYS,
        None,
        "connection"
    ),
    cmd!("client", -2, CONN | ADMIN, NOKEYS, None, "connection"),
    cmd!(
        "multi",
        1,
        CONN | NO_QUEUE | FAST,
        NOKEYS,
        None,
        "transactions"
    ),
    cmd!("exec", 1, CONN | NO_QUEUE, NOKEYS, None, "transactions"),
    cmd!(
        "discard",
        1,
        CONN | NO_QUEUE | FAST,
        NOKEYS,
        None,
        "transactions"
    ),
    cmd!(
        "watch",
        -2,
        CONN | NO_QUEUE | FAST,
        ALLKEYS,
        None,
        "transactions"
    ),
    cmd!(
        "unwatch",
        1,
        CONN | FAST,
        NOKEYS,
        Some(server::unwatch_in_exec),
        "transactions"
    ),
    cmd!(
        "shutdown",
        -1,
        CONN | ADMIN | NO_MULTI,
        NOKEYS,
        None,
        "server"
    ),
];

/// The position of `spec` in [`COMMANDS`] (it must come from that table).
pub fn index_of(spec: &Spec) -> usize {
    (spec as *const Spec as usize).wrapping_sub(COMMANDS.as_ptr() as usize)
        / std::mem::size_of::<Spec>()
}

/// Finds a command by name, case-insensitively.
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    static INDEX: OnceLock<HashMap<&'static str, &'static Spec>> = OnceLock::new();
    let index = INDEX.get_or_init(|| COMMANDS.iter().map(|c| (c.name, c)).collect());
    if name.len() > 32 {
        return None;
    }
    let mut buf = [0u8; 32];
    let lower = &mut buf[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    std::str::from_utf8(lower)
        .ok()
        .and_then(|s| index.get(s).copied())
}
