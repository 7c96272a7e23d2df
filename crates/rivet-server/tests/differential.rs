//! Differential test: seeded random command sequences go to a reference `redis-server`
//! (Debian's, 7.0) and to rivet-server, and every reply must agree: same type and value;
//! errors by their first word (`ERR`, `WRONGTYPE`, `EXECABORT`, ...; differing texts are
//! listed as notes at the end); KEYS, SMEMBERS and SCAN (pages collected to completion) as
//! sorted sets; RANDOMKEY as nil vs present; TTL/EXPIRETIME within 1 s and PTTL/PEXPIRETIME
//! within 1000 ms; DBSIZE exactly, or if it differs, again after a 1.2 s pause (it counts
//! expired keys that a server has not purged yet, which is timing-dependent).
//!
//! The generator uses a small key alphabet and databases 0..3 so that commands collide,
//! MULTI/EXEC/WATCH (with a second connection touching watched keys), pipelined batches,
//! wrong arity, bad integers/floats, binary values and a few 20-100 KB values (appended,
//! SETRANGEd, SETBITed) since the server stores big strings in chunks. Expiry times are
//! either in the past, or at least 100 s ahead and 10 s apart from each other (so GT/LT
//! never compare two nearly equal times), or a few hundred ms in a batch that is followed by
//! a 1.2 s sleep: the outcome never depends on timing.
//!
//! Environment:
//! - `DIFF_SEED=N`: run only seed N (default: seeds 1, 2, 3, 4).
//! - `DIFF_SEEDS=N`: run seeds 1..=N (the long mode, e.g. `DIFF_SEEDS=200`).
//! - `DIFF_OPS=N`: generated operations per seed (default 4000; an operation is one command,
//!   a pipelined batch, a transaction, a full SCAN or a sleep).
//! - `DIFF_AGAINST_REDIS=1`: compare redis-server with a second redis-server instead of
//!   rivet-server (validates the generator and the comparison rules: it must always pass).
//! - `DIFF_EXCLUDE=LCS,BITPOS`: never generate these commands (to look past a known
//!   mismatch; scenario names MULTI, WATCH, SCAN, LCS and PIPELINE also work, and ARITY
//!   turns off the wrong-arity variants).
//! - `DIFF_OTHER_TYPES=0`: strings and the keyspace only. By default the generator also
//!   creates lists, sets, hashes and sorted sets, so that string commands meet WRONGTYPE
//!   keys, and runs the collection commands on them (lists, sets, hashes, sorted sets with
//!   their range, rank, pop, random and algebra commands; read back with LRANGE, SMEMBERS,
//!   HGETALL, ZRANGE...). They mostly use keys of their own (`l0`..`l2`, `s0`..`s2`,
//!   `h0`..`h2`, `z0`..`z2`; the lex commands use `zl`, whose members all score 0, as Redis
//!   defines lex ranges only for equal scores) and sometimes the string keys;
//!   elements come from a small alphabet so that pivots and members meet; a scenario runs
//!   20..60 of these commands in a row so that collections grow between FLUSHDBs. Set-algebra
//!   replies compare as sorted multisets, HGETALL as a multiset of pairs, random picks
//!   (HRANDFIELD, SRANDMEMBER, ZRANDMEMBER) by presence or reply length. A blocking
//!   scenario parks BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN, BZPOPMAX or BZMPOP on
//!   a second connection (keys `bl0`/`bl1`, `bz0`/`bz1`, deleted first) and serves it with
//!   pushes on the first, or lets a 0.1 s timeout expire; the parked reply is compared too.
//!   A streams scenario (`DIFF_EXCLUDE=STREAMS` turns it off) runs stream and consumer group
//!   commands on keys `x0`..`x3` with explicit entry ids, then parks an XREAD or
//!   XREADGROUP on the second connection and serves it with an XADD on the first.
//!   A scripts scenario runs EVALs of small templates mixing reads and writes (some failing
//!   half-way after writing, some catching errors with `redis.pcall`) and reads the keys
//!   back.
//! - `DIFF_VERBOSE=1`: print every command and redis' reply.
//! - `DIFF_PARANOID=1`: after every operation also compare `KEYS *` and DBSIZE of databases
//!   0..3 (slow; finds the operation where the states start to differ).
//!
//! A separate test, `pubsub_differential_against_redis`, runs the pub/sub scenario: several
//! subscriber connections per server (one in RESP3) get random SUBSCRIBE, PSUBSCRIBE,
//! UNSUBSCRIBE and PUNSUBSCRIBE, a control connection PUBLISHes and asks PUBSUB NUMSUB,
//! NUMPAT and CHANNELS (compared sorted), and after every PUBLISH each subscriber's received
//! messages are compared in order (a PING marks the end; the pattern messages of one PUBLISH
//! as a sorted list, since Redis walks its patterns in hash order). It honours `DIFF_SEED`,
//! `DIFF_SEEDS` and `DIFF_OPS` (a tenth of it).
//!
//! The first seed (so also a lone `DIFF_SEED`) runs rivet-server with its default (durable)
//! settings, the others with `--no-sync`. After each seed rivet-server is stopped with SIGTERM (it must exit 0) and
//! `rivet check` must find its data file clean.
//!
//! Run: `cargo test -p rivet-server --test differential -- --nocapture`.
//! Without redis-server the test prints `SKIPPED` and passes, unless `CI` is set.

mod common;

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{
    env_flag, env_u64, escape_cmd, redis_or_skip, stop_and_check, Conn, Frame, RedisServer,
    RivetServer, Rng,
};

// ---------------------------------------------------------------------------------------
// Generator
// ---------------------------------------------------------------------------------------

type Args = Vec<Vec<u8>>;

/// How two replies are compared.
#[derive(Clone, Debug, PartialEq)]
enum Cmp {
    Exact,
    /// Arrays compared as sorted multisets.
    Unordered,
    /// Flat field/value arrays (HGETALL) compared as sorted multisets of pairs.
    Pairs,
    /// Bulk replies compared by nil vs present only.
    Presence,
    /// Arrays compared by length only, bulk replies by presence (random picks; a wrong-arity
    /// variant may drop the count).
    Len,
    /// Non-negative integers may differ by this much.
    Tol(i64),
    /// EXEC: the elements compared with the rules of the queued commands.
    Exec(Vec<Cmp>),
    /// DBSIZE: exact, but a difference is only reported if it persists after a pause (it
    /// counts expired keys that one server has already purged and the other not yet).
    Settled,
}

#[derive(Clone, Debug, PartialEq)]
struct Step {
    conn: usize,
    args: Args,
    cmp: Cmp,
}

#[derive(Clone, Debug, PartialEq)]
enum Op {
    Single(Step),
    /// Sent pipelined on connection 0, then all replies read.
    Batch(Vec<Step>),
    /// SCAN 0 with these options, pages collected until the cursor is 0.
    ScanAll(Args),
    /// A blocking command sent on connection 1; once both servers report it parked (or
    /// after 2 s), `wake` runs on connection 0, then the parked reply is read and compared.
    Parked {
        park: Step,
        wake: Vec<Step>,
    },
    SleepMs(u64),
}

/// Command line builder.
struct C(Args);

fn c(name: &str) -> C {
    C(vec![name.as_bytes().to_vec()])
}

impl C {
    fn a(mut self, x: impl AsRef<[u8]>) -> C {
        self.0.push(x.as_ref().to_vec());
        self
    }

    fn all(mut self, xs: Args) -> C {
        self.0.extend(xs);
        self
    }

    fn exact(self) -> (Args, Cmp) {
        (self.0, Cmp::Exact)
    }

    fn with(self, cmp: Cmp) -> (Args, Cmp) {
        (self.0, cmp)
    }
}

/// Scripts of the SCRIPTS scenario (`EVAL script 2 k1 k2 value int`).
const SCRIPT_TEMPLATES: &[&str] = &[
    "redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1])",
    "local n = redis.call('INCRBY', KEYS[1], ARGV[2]) redis.call('SET', KEYS[2], n) return {n, redis.call('STRLEN', KEYS[2])}",
    // Writes, then fails on a non-integer value or a wrong type; the write stays.
    "redis.call('SET', KEYS[1], ARGV[2]) redis.call('INCRBY', KEYS[2], ARGV[1]) return redis.call('GET', KEYS[2])",
    "redis.call('APPEND', KEYS[1], 'x') return redis.call('LPUSH', KEYS[2], ARGV[1])",
    "local r = redis.pcall('INCR', KEYS[1]) if type(r) == 'table' and r.err then redis.call('SET', KEYS[2], 'caught') return r.err end return r",
    "local r = redis.pcall('HSET', KEYS[1], 'f', ARGV[1]) return {type(r), redis.call('EXISTS', KEYS[1], KEYS[2])}",
    "return redis.call('MGET', KEYS[1], KEYS[2])",
    "redis.call('DEL', KEYS[1]) return redis.call('APPEND', KEYS[1], ARGV[1])",
    "return {1, 2.7, 'x', true, {ok='fine'}, redis.call('TYPE', KEYS[1])}",
    // (+ 0: mlua hands -0 to Rust as the integer 0, so cjson here writes 0 for -0.)
    "return cjson.encode({redis.call('GET', KEYS[2]) or 'none', tonumber(ARGV[2]) + 0})",
    "return redis.error_reply('MYERR custom')",
    "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('GETDEL', KEYS[1]) else return redis.call('SETNX', KEYS[1], ARGV[1]) end",
    "redis.call('SET', KEYS[1], ARGV[1]) error('boom')",
    "local t = {} for i = 1, tonumber(ARGV[2]) % 5 do t[i] = redis.call('INCR', KEYS[2]) end return t",
];

const KEYS: &[&[u8]] = &[
    b"k0",
    b"k1",
    b"k2",
    b"k3",
    b"k4",
    b"kx:1",
    b"kx:2",
    b"b\x00\xfe",
];
const LCS_KEYS: &[&str] = &["lcs:a", "lcs:b"];
const INTS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "10",
    "42",
    "-100",
    "9223372036854775807",
    "-9223372036854775808",
    "007",
    "+5",
    " 3",
    "3 ",
    "1e3",
    "0x10",
    "-0",
    "12345678901234567890",
];
const FLOATS: &[&str] = &[
    "1.5", "-0.25", "3.0e2", "0.1", "1e-5", "inf", "-inf", "nan", "1.", "abc", "5", "10.50",
    "1e308", "0", "-1.5e10", ".5", "", "1e15",
];
const INT_ARGS: &[&str] = &[
    "1",
    "-1",
    "0",
    "5",
    "-7",
    "100",
    "9223372036854775807",
    "-9223372036854775808",
    "abc",
    "1.5",
    "",
    "99999999999999999999",
    " 1",
];
const INDEXES: &[&str] = &[
    "0",
    "1",
    "-1",
    "-2",
    "3",
    "10",
    "-10",
    "100",
    "-100",
    "4095",
    "4096",
    "65536",
    "-65537",
    "9223372036854775807",
    "-9223372036854775808",
    "abc",
];
/// Offsets around likely chunk sizes.
const BOUNDARIES: &[i64] = &[
    0, 1, 100, 4095, 4096, 4097, 8191, 8192, 16383, 16384, 32767, 32768, 65535, 65536, 65537,
    100_000,
];
const PATTERNS: &[&str] = &[
    "*", "k*", "k?", "kx:*", "k[0-2]", "k[^0]", "b*", "*1", "nomatch*", "[a-k]*", "k\\*", "lcs:*",
    "*:*", "?", "k[1-3]*",
];
const BAD_TIMES: &[&str] = &[
    "abc",
    "",
    "1.5",
    "9223372036854775807",
    "9223372036854775",
    "-9223372036854775808",
];

/// (command, weight) of the single commands.
const COMMANDS: &[(&str, u64)] = &[
    ("GET", 6),
    ("SET", 10),
    ("SETNX", 2),
    ("SETEX", 2),
    ("PSETEX", 2),
    ("GETSET", 2),
    ("GETDEL", 2),
    ("GETEX", 3),
    ("MGET", 3),
    ("MSET", 3),
    ("MSETNX", 2),
    ("APPEND", 5),
    ("STRLEN", 3),
    ("GETRANGE", 3),
    ("SUBSTR", 1),
    ("SETRANGE", 3),
    ("INCR", 3),
    ("DECR", 2),
    ("INCRBY", 3),
    ("DECRBY", 2),
    ("INCRBYFLOAT", 3),
    ("SETBIT", 3),
    ("GETBIT", 2),
    ("BITCOUNT", 3),
    ("BITPOS", 3),
    ("BITOP", 3),
    ("DEL", 3),
    ("UNLINK", 2),
    ("EXISTS", 3),
    ("TYPE", 2),
    ("RENAME", 2),
    ("RENAMENX", 2),
    ("COPY", 3),
    ("MOVE", 2),
    ("KEYS", 2),
    ("RANDOMKEY", 2),
    ("DBSIZE", 2),
    ("TOUCH", 1),
    ("SELECT", 4),
    ("SWAPDB", 1),
    ("FLUSHDB", 1),
    ("EXPIRE", 3),
    ("PEXPIRE", 2),
    ("EXPIREAT", 2),
    ("PEXPIREAT", 2),
    ("TTL", 3),
    ("PTTL", 2),
    ("EXPIRETIME", 2),
    ("PEXPIRETIME", 1),
    ("PERSIST", 2),
    ("PING", 1),
    ("ECHO", 1),
    ("SCAN", 1),
    ("WATCH", 1),
    ("UNWATCH", 1),
    ("EXEC", 1),
    ("DISCARD", 1),
    ("MULTI", 1),
    ("NOSUCHCMD", 1),
];
/// Extra commands with `DIFF_OTHER_TYPES=1`.
const OTHER_TYPE_COMMANDS: &[(&str, u64)] = &[
    ("RPUSH", 8),
    ("SADD", 8),
    ("LRANGE", 3),
    ("SMEMBERS", 2),
    ("HSET", 5),
    ("LINSERT", 3),
    ("LREM", 3),
    ("LPOS", 2),
    ("LMOVE", 2),
    ("RPOPLPUSH", 1),
    ("LMPOP", 2),
    ("SMOVE", 2),
    ("SINTER", 1),
    ("SINTERCARD", 1),
    ("SINTERSTORE", 1),
    ("SUNION", 1),
    ("SUNIONSTORE", 1),
    ("SDIFF", 1),
    ("SDIFFSTORE", 1),
    ("HRANDFIELD", 2),
    ("HGET", 2),
    ("HMGET", 1),
    ("HDEL", 2),
    ("HGETALL", 1),
    ("HKEYS", 1),
    ("HVALS", 1),
    ("HLEN", 1),
    ("HEXISTS", 1),
    ("HSTRLEN", 1),
    ("HSETNX", 1),
    ("HINCRBY", 1),
    ("HINCRBYFLOAT", 1),
    ("SREM", 2),
    ("SISMEMBER", 1),
    ("SMISMEMBER", 1),
    ("SCARD", 1),
    ("SRANDMEMBER", 1),
    ("LPUSH", 2),
    ("LPOP", 2),
    ("RPOP", 2),
    ("LINDEX", 1),
    ("LSET", 1),
    ("LTRIM", 1),
    ("LLEN", 1),
    ("ZADD", 10),
    ("ZINCRBY", 2),
    ("ZREM", 2),
    ("ZSCORE", 1),
    ("ZMSCORE", 1),
    ("ZCARD", 1),
    ("ZRANK", 2),
    ("ZREVRANK", 1),
    ("ZCOUNT", 2),
    ("ZLEXCOUNT", 1),
    ("ZRANGE", 5),
    ("ZREVRANGE", 1),
    ("ZRANGEBYSCORE", 2),
    ("ZREVRANGEBYSCORE", 1),
    ("ZRANGEBYLEX", 1),
    ("ZREVRANGEBYLEX", 1),
    ("ZRANGESTORE", 1),
    ("ZREMRANGEBYSCORE", 1),
    ("ZREMRANGEBYRANK", 1),
    ("ZREMRANGEBYLEX", 1),
    ("ZPOPMIN", 1),
    ("ZPOPMAX", 1),
    ("ZMPOP", 1),
    ("ZRANDMEMBER", 1),
    ("ZUNION", 1),
    ("ZINTER", 1),
    ("ZDIFF", 1),
    ("ZUNIONSTORE", 1),
    ("ZINTERSTORE", 1),
    ("ZDIFFSTORE", 1),
    ("ZINTERCARD", 1),
];
/// Sorted-set scores (and increments): exact binary fractions, infinities, a hexadecimal
/// form, and rarely something that is not a float.
const SCORES: &[&str] = &[
    "0", "1", "2", "-1", "1.5", "10", "-2.25", "3e2", "inf", "-inf", "+inf", "0x10", "1",
];
/// Score range bounds.
const SCORE_BOUNDS: &[&str] = &[
    "-inf", "+inf", "0", "1", "(1", "2", "(2", "1.5", "(1.5", "10", "-1", "(-inf", "inf",
];
/// Lex range bounds (used only on `zl`, whose members all score 0).
const LEX_BOUNDS: &[&str] = &[
    "-", "+", "[a", "(a", "[b", "(c", "[1", "[10", "(2", "[", "(x",
];
/// List elements, set members and hash fields: few, so that pivots and members meet.
const ELEMENTS: &[&str] = &[
    "a",
    "b",
    "c",
    "1",
    "2",
    "10",
    "",
    "x\x00y",
    "-5",
    "long-element",
];
/// LREM counts, LPOS ranks, counts and lengths.
const SMALL_INTS: &[&str] = &[
    "0",
    "1",
    "2",
    "-1",
    "-2",
    "3",
    "-3",
    "100",
    "abc",
    "9223372036854775807",
    "-9223372036854775808",
];
/// Commands that end a transaction: not generated inside one.
const TX_CONTROL: &[&str] = &["EXEC", "DISCARD"];
/// Commands that run at once inside MULTI (with an error) instead of being queued.
const NOT_QUEUED: &[&str] = &["MULTI", "WATCH"];
const BAD_SCANS: &[&[&str]] = &[
    &["abc"],
    &["0", "COUNT", "0"],
    &["0", "COUNT", "abc"],
    &["0", "MATCH"],
    &["0", "FOO", "bar"],
    &["0", "TYPE"],
    &["1.5"],
];
const LCS_OPTIONS: &[&[&str]] = &[
    &[],
    &["LEN"],
    &["IDX"],
    &["IDX", "WITHMATCHLEN"],
    &["IDX", "MINMATCHLEN", "2"],
    &["IDX", "MINMATCHLEN", "3", "WITHMATCHLEN"],
    &["LEN", "IDX"],
    &["FOO"],
];
const FLUSH_OPTIONS: &[&[&str]] = &[&[], &["SYNC"], &["ASYNC"]];

/// Far-future expiry times are `base + 10 s * slot`, each slot used once per seed.
const SLOT_MS: u64 = 10_000;
const SLOTS: u64 = 100_000;
/// The base is this far after the generator's start (a seed must finish within it).
const BASE_AHEAD_MS: u64 = 3_600_000;
const SHORT_SLEEP_MS: u64 = 1_200;

struct Gen {
    rng: Rng,
    queue: VecDeque<Op>,
    now_ms: u64,
    base_ms: Option<u64>,
    used_slots: HashSet<u64>,
    exclude: Vec<String>,
    other_types: bool,
    in_tx: bool,
    in_batch: bool,
    /// The next millisecond part the streams scenario gives an explicit entry id.
    xms: u64,
}

impl Gen {
    fn new(seed: u64, exclude: &[String], other_types: bool) -> Gen {
        Gen {
            rng: Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5851_F42D_4C95_7F2D),
            queue: VecDeque::new(),
            now_ms: 0,
            base_ms: None,
            used_slots: HashSet::new(),
            exclude: exclude.iter().map(|s| s.to_ascii_uppercase()).collect(),
            other_types,
            in_tx: false,
            in_batch: false,
            xms: 1,
        }
    }

    /// The next operation; `now_ms` is the current Unix time (fixed in unit tests).
    fn next_op(&mut self, now_ms: u64) -> Op {
        self.now_ms = now_ms;
        let base = *self.base_ms.get_or_insert(now_ms + BASE_AHEAD_MS);
        assert!(
            now_ms + 100_000 < base,
            "a seed ran for over {BASE_AHEAD_MS} ms"
        );
        while self.queue.is_empty() {
            self.scenario();
        }
        self.queue.pop_front().expect("queue is not empty")
    }

    fn excluded(&self, name: &str) -> bool {
        self.exclude.iter().any(|e| e == name)
    }

    /// A lone MULTI only inside a transaction (nested: an error), EXEC/DISCARD only outside;
    /// DBSIZE only alone (it is run again after a pause when it differs).
    fn allowed(&self, name: &str) -> bool {
        let tx_ok = if self.in_tx {
            !TX_CONTROL.contains(&name)
        } else {
            name != "MULTI"
        };
        let settled_ok = name != "DBSIZE" || !(self.in_tx || self.in_batch);
        tx_ok && settled_ok && !self.excluded(name)
    }

    fn scenario(&mut self) {
        let r = self.rng.below(1000);
        let name = match r {
            0..=2 => "SHORTTTL",
            3..=12 => "BIG",
            13..=22 => "LCS",
            23..=42 => "SCAN",
            43..=92 => "MULTI",
            93..=122 => "WATCH",
            123..=192 => "PIPELINE",
            193..=232 if self.other_types => "COLLECTIONS",
            233..=247 if self.other_types => "BLOCKING",
            248..=262 if self.other_types => "STREAMS",
            263..=282 => "SCRIPTS",
            _ => "",
        };
        if name.is_empty() || self.excluded(name) || (name == "WATCH" && self.excluded("MULTI")) {
            let s = self.single(0);
            self.queue.push_back(Op::Single(s));
            return;
        }
        match name {
            "SHORTTTL" => self.short_ttl(),
            "BIG" => self.big_value(),
            "LCS" => self.lcs(),
            "SCAN" => self.scan_all(),
            "MULTI" => {
                let steps = self.transaction();
                self.queue.extend(steps.into_iter().map(Op::Single));
            }
            "WATCH" => self.watch(),
            "COLLECTIONS" => self.collections(),
            "BLOCKING" => self.blocking(),
            "STREAMS" => self.streams(),
            "SCRIPTS" => self.scripts(),
            _ => self.pipeline(),
        }
    }

    /// One random command on connection `conn` (sometimes with a wrong arity).
    fn single(&mut self, conn: usize) -> Step {
        let (mut args, cmp) = loop {
            let name = self.command_name();
            if self.allowed(name) {
                break self.build(name);
            }
        };
        // A wrong arity (not for SCAN: `SCAN 0 MATCH` would become a valid single page).
        if self.rng.chance(3) && args[0] != b"SCAN" && !self.excluded("ARITY") {
            if args.len() > 1 && self.rng.chance(50) {
                args.pop();
            } else {
                args.push(b"extra".to_vec());
            }
        }
        Step { conn, args, cmp }
    }

    fn command_name(&mut self) -> &'static str {
        let extra: &[(&str, u64)] = if self.other_types {
            OTHER_TYPE_COMMANDS
        } else {
            &[]
        };
        let total: u64 = COMMANDS.iter().chain(extra).map(|(_, w)| w).sum();
        let mut r = self.rng.below(total);
        for (name, w) in COMMANDS.iter().chain(extra) {
            if r < *w {
                return name;
            }
            r -= w;
        }
        unreachable!("weights cover the range")
    }

    fn build(&mut self, name: &str) -> (Args, Cmp) {
        match name {
            "GET" | "SET" | "SETNX" | "SETEX" | "PSETEX" | "GETSET" | "GETDEL" | "GETEX" => {
                self.string_cmd(name)
            }
            "MGET" | "MSET" | "MSETNX" | "APPEND" | "STRLEN" | "GETRANGE" | "SUBSTR"
            | "SETRANGE" => self.string_cmd2(name),
            "INCR" | "DECR" | "INCRBY" | "DECRBY" | "INCRBYFLOAT" => self.counter_cmd(name),
            "SETBIT" | "GETBIT" | "BITCOUNT" | "BITPOS" | "BITOP" => self.bit_cmd(name),
            "DEL" | "UNLINK" | "EXISTS" | "TYPE" | "RENAME" | "RENAMENX" | "COPY" | "MOVE"
            | "TOUCH" => self.key_cmd(name),
            "KEYS" | "RANDOMKEY" | "DBSIZE" | "SELECT" | "SWAPDB" | "FLUSHDB" | "SCAN" => {
                self.keyspace_cmd(name)
            }
            "EXPIRE" | "PEXPIRE" | "EXPIREAT" | "PEXPIREAT" => self.expire_cmd(name),
            "TTL" | "PTTL" | "EXPIRETIME" | "PEXPIRETIME" | "PERSIST" => self.ttl_cmd(name),
            "RPUSH" | "SADD" | "LRANGE" | "SMEMBERS" | "HSET" => self.other_type_cmd(name),
            "LINSERT" | "LREM" | "LPOS" | "LMOVE" | "RPOPLPUSH" | "LMPOP" => self.list_cmd(name),
            "SMOVE" | "SINTER" | "SINTERCARD" | "SINTERSTORE" | "SUNION" | "SUNIONSTORE"
            | "SDIFF" | "SDIFFSTORE" => self.set_algebra_cmd(name),
            "HRANDFIELD" => self.hrandfield_cmd(),
            n if n.starts_with('H') || n.starts_with('L') || n.starts_with('S') => {
                self.member_cmd(name)
            }
            n if n.starts_with('Z') => self.zset_cmd(name),
            _ => self.misc_cmd(name),
        }
    }

    // --- argument helpers -----------------------------------------------------------

    fn key(&mut self) -> &'static [u8] {
        self.rng.pick(KEYS)
    }

    fn keys(&mut self, lo: i64, hi: i64) -> Args {
        let n = self.rng.range(lo, hi);
        (0..n).map(|_| self.key().to_vec()).collect()
    }

    fn pick_str(&mut self, v: &[&str]) -> Vec<u8> {
        self.rng.pick(v).as_bytes().to_vec()
    }

    fn word(&mut self, max: i64) -> Vec<u8> {
        let n = self.rng.range(0, max);
        (0..n).map(|_| b'a' + self.rng.below(26) as u8).collect()
    }

    fn binary(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.rng.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }

    fn value(&mut self) -> Vec<u8> {
        match self.rng.below(20) {
            0..=5 => self.pick_str(INTS),
            6..=7 => self.pick_str(FLOATS),
            8..=12 => self.word(12),
            13..=15 => {
                let n = self.rng.range(0, 24) as usize;
                self.binary(n)
            }
            16 => b"a\r\nb\x00c".to_vec(),
            17..=18 => {
                let n = self.rng.range(100, 5000) as usize;
                self.binary(n)
            }
            _ => Vec::new(),
        }
    }

    fn big(&mut self) -> Vec<u8> {
        let n = self.rng.range(20_000, 100_000) as usize;
        self.binary(n)
    }

    fn index(&mut self) -> Vec<u8> {
        if self.rng.chance(40) {
            return self.rng.range(-200, 200).to_string().into_bytes();
        }
        self.pick_str(INDEXES)
    }

    fn offset(&mut self) -> i64 {
        match self.rng.below(3) {
            0 => self.rng.range(0, 64),
            1 => self.rng.pick(BOUNDARIES) + self.rng.range(-2, 2),
            _ => self.rng.range(0, 120_000),
        }
        .max(0)
    }

    fn db(&mut self) -> Vec<u8> {
        if self.rng.chance(90) {
            return self.rng.range(0, 3).to_string().into_bytes();
        }
        self.pick_str(&["16", "-1", "abc", "15", "4", ""])
    }

    // --- expiry times (see the module doc) -------------------------------------------

    /// A fresh far-future expiry time in ms (at least 100 s ahead, 10 s from any other).
    fn future_ms(&mut self) -> u64 {
        let base = self.base_ms.expect("next_op sets the base");
        loop {
            let slot = self.rng.below(SLOTS);
            if self.used_slots.insert(slot) {
                return base + slot * SLOT_MS + self.rng.below(1000);
            }
        }
    }

    fn past_ms(&mut self) -> u64 {
        self.now_ms - 10_000 - self.rng.below(1_000_000_000)
    }

    /// A relative time in seconds (`ms == false`) or milliseconds.
    fn rel_time(&mut self, ms: bool) -> Vec<u8> {
        let unit = if ms { 1 } else { 1000 };
        let v: i64 = match self.rng.below(10) {
            0..=5 => (self.future_ms() - self.now_ms).div_ceil(unit) as i64,
            6..=7 => -self.rng.range(0, 100_000),
            _ => return self.pick_str(BAD_TIMES),
        };
        v.to_string().into_bytes()
    }

    /// An absolute Unix time in seconds or milliseconds.
    fn abs_time(&mut self, ms: bool) -> Vec<u8> {
        let unit = if ms { 1 } else { 1000 };
        let v = match self.rng.below(10) {
            0..=5 => self.future_ms().div_ceil(unit),
            6..=7 => self.past_ms() / unit,
            8 => 0,
            _ => return self.pick_str(BAD_TIMES),
        };
        v.to_string().into_bytes()
    }

    /// An expiry option of SET or GETEX.
    fn expiry_option(&mut self, with_keep: bool) -> Args {
        let r = self.rng.below(if with_keep { 5 } else { 4 });
        let (opt, val) = match r {
            0 => ("EX", self.rel_time(false)),
            1 => ("PX", self.rel_time(true)),
            2 => ("EXAT", self.abs_time(false)),
            3 => ("PXAT", self.abs_time(true)),
            _ => return vec![b"KEEPTTL".to_vec()],
        };
        vec![opt.as_bytes().to_vec(), val]
    }

    // --- command builders ------------------------------------------------------------

    fn string_cmd(&mut self, name: &str) -> (Args, Cmp) {
        let k = self.key();
        match name {
            "GET" | "GETDEL" => c(name).a(k).exact(),
            "SET" => self.set_cmd(),
            "SETNX" | "GETSET" => c(name).a(k).a(self.value()).exact(),
            "SETEX" => c(name).a(k).a(self.rel_time(false)).a(self.value()).exact(),
            "PSETEX" => c(name).a(k).a(self.rel_time(true)).a(self.value()).exact(),
            _ => self.getex_cmd(),
        }
    }

    fn set_cmd(&mut self) -> (Args, Cmp) {
        let mut opts: Vec<Args> = Vec::new();
        if self.rng.chance(25) {
            opts.push(vec![self.pick_str(&["NX", "XX", "nx"])]);
        }
        if self.rng.chance(20) {
            opts.push(vec![b"GET".to_vec()]);
        }
        if self.rng.chance(40) {
            let o = self.expiry_option(true);
            opts.push(o);
        }
        if self.rng.chance(3) {
            opts.push(vec![self.pick_str(&["NX", "XX", "KEEPTTL", "EX", "FOO"])]);
        }
        if self.rng.chance(30) {
            opts.reverse();
        }
        c("SET")
            .a(self.key())
            .a(self.value())
            .all(opts.concat())
            .exact()
    }

    fn getex_cmd(&mut self) -> (Args, Cmp) {
        let k = self.key();
        let opt = match self.rng.below(4) {
            0 => Vec::new(),
            1 => vec![b"PERSIST".to_vec()],
            _ => self.expiry_option(false),
        };
        c("GETEX").a(k).all(opt).exact()
    }

    fn string_cmd2(&mut self, name: &str) -> (Args, Cmp) {
        match name {
            "MGET" => c(name).all(self.keys(1, 5)).exact(),
            "MSET" | "MSETNX" => {
                let n = self.rng.range(1, 4);
                let kv: Args = (0..n)
                    .flat_map(|_| [self.key().to_vec(), self.value()])
                    .collect();
                c(name).all(kv).exact()
            }
            "APPEND" => c(name).a(self.key()).a(self.value()).exact(),
            "STRLEN" => c(name).a(self.key()).exact(),
            "GETRANGE" | "SUBSTR" => c(name)
                .a(self.key())
                .a(self.index())
                .a(self.index())
                .exact(),
            _ => self.setrange_cmd(),
        }
    }

    fn setrange_cmd(&mut self) -> (Args, Cmp) {
        let off = match self.rng.below(20) {
            0 => b"-1".to_vec(),
            1 => b"536870911".to_vec(), // with a 2+ byte value: over the 512 MB limit
            2 => b"abc".to_vec(),
            _ => self.offset().to_string().into_bytes(),
        };
        let mut v = self.value();
        if off == b"536870911" {
            v = b"xy".to_vec();
        }
        c("SETRANGE").a(self.key()).a(off).a(v).exact()
    }

    fn counter_cmd(&mut self, name: &str) -> (Args, Cmp) {
        let k = self.key();
        match name {
            "INCR" | "DECR" => c(name).a(k).exact(),
            "INCRBY" | "DECRBY" => c(name).a(k).a(self.pick_str(INT_ARGS)).exact(),
            _ => c(name).a(k).a(self.pick_str(FLOATS)).exact(),
        }
    }

    fn bit_offset(&mut self) -> Vec<u8> {
        match self.rng.below(20) {
            0 => self.pick_str(&["-1", "4294967296", "abc", ""]),
            1..=4 => self.rng.range(0, 800_000).to_string().into_bytes(),
            5..=9 => (self.rng.pick(BOUNDARIES) * 8 + self.rng.range(-9, 9))
                .max(0)
                .to_string()
                .into_bytes(),
            _ => self.rng.range(0, 100).to_string().into_bytes(),
        }
    }

    fn bit_cmd(&mut self, name: &str) -> (Args, Cmp) {
        let k = self.key();
        match name {
            "SETBIT" => {
                let bit = self.pick_str(&["0", "1", "1", "2", "x"]);
                c(name).a(k).a(self.bit_offset()).a(bit).exact()
            }
            "GETBIT" => c(name).a(k).a(self.bit_offset()).exact(),
            "BITCOUNT" => {
                let n = self.rng.pick(&[0, 0, 2, 2, 3, 1]);
                c(name).a(k).all(self.bit_range(n)).exact()
            }
            "BITPOS" => {
                let bit = self.pick_str(&["0", "1", "1", "2"]);
                let n = self.rng.pick(&[0, 1, 2, 2, 3, 3]);
                c(name).a(k).a(bit).all(self.bit_range(n)).exact()
            }
            _ => self.bitop_cmd(),
        }
    }

    /// The first `n` of `start end BYTE|BIT`.
    fn bit_range(&mut self, n: usize) -> Args {
        let mut v = vec![self.index(), self.index()];
        v.push(self.pick_str(&["BYTE", "BIT", "bit", "WORD"]));
        v.truncate(n);
        v
    }

    fn bitop_cmd(&mut self) -> (Args, Cmp) {
        let op = self.pick_str(&["AND", "OR", "XOR", "NOT", "and", "FOO"]);
        let n = if op == b"NOT" && self.rng.chance(80) {
            1
        } else {
            self.rng.range(1, 4)
        };
        c("BITOP").a(op).a(self.key()).all(self.keys(n, n)).exact()
    }

    fn key_cmd(&mut self, name: &str) -> (Args, Cmp) {
        match name {
            "DEL" | "UNLINK" | "EXISTS" | "TOUCH" => c(name).all(self.keys(1, 4)).exact(),
            "TYPE" => c(name).a(self.key()).exact(),
            "RENAME" | "RENAMENX" => c(name).a(self.key()).a(self.key()).exact(),
            "MOVE" => c(name).a(self.key()).a(self.db()).exact(),
            _ => self.copy_cmd(),
        }
    }

    fn copy_cmd(&mut self) -> (Args, Cmp) {
        let mut cmd = c("COPY").a(self.key()).a(self.key());
        if self.rng.chance(40) {
            cmd = cmd.a("DB").a(self.db());
        }
        if self.rng.chance(40) {
            cmd = cmd.a("REPLACE");
        }
        cmd.exact()
    }

    fn keyspace_cmd(&mut self, name: &str) -> (Args, Cmp) {
        match name {
            "KEYS" => c(name).a(self.pick_str(PATTERNS)).with(Cmp::Unordered),
            "RANDOMKEY" => c(name).with(Cmp::Presence),
            "DBSIZE" => c(name).with(Cmp::Settled),
            "SELECT" => c(name).a(self.db()).exact(),
            "SWAPDB" => c(name).a(self.db()).a(self.db()).exact(),
            "FLUSHDB" => c(name).all(strs(self.rng.pick(FLUSH_OPTIONS))).exact(),
            _ => self.bad_scan(),
        }
    }

    /// SCAN calls that fail (valid ones are [`Op::ScanAll`]).
    fn bad_scan(&mut self) -> (Args, Cmp) {
        c("SCAN").all(strs(self.rng.pick(BAD_SCANS))).exact()
    }

    fn expire_cmd(&mut self, name: &str) -> (Args, Cmp) {
        let t = match name {
            "EXPIRE" => self.rel_time(false),
            "PEXPIRE" => self.rel_time(true),
            "EXPIREAT" => self.abs_time(false),
            _ => self.abs_time(true),
        };
        let flags: Args = match self.rng.below(20) {
            0..=9 => vec![],
            10..=17 => vec![self.pick_str(&["NX", "XX", "GT", "LT", "gt"])],
            18 => vec![self.pick_str(&["NX", "GT"]), self.pick_str(&["XX", "LT"])],
            _ => vec![
                self.pick_str(&["FOO", "GT"]),
                self.pick_str(&["GT", "XX", "BAR"]),
            ],
        };
        c(name).a(self.key()).a(t).all(flags).exact()
    }

    fn ttl_cmd(&mut self, name: &str) -> (Args, Cmp) {
        let cmp = match name {
            "TTL" | "EXPIRETIME" => Cmp::Tol(1),
            "PTTL" | "PEXPIRETIME" => Cmp::Tol(1000),
            _ => Cmp::Exact,
        };
        c(name).a(self.key()).with(cmp)
    }

    fn other_type_cmd(&mut self, name: &str) -> (Args, Cmp) {
        let kind = match name {
            "RPUSH" | "LRANGE" => b'l',
            "HSET" => b'h',
            _ => b's',
        };
        let k = self.coll_key(kind);
        match name {
            "RPUSH" | "SADD" => c(name)
                .a(k)
                .all((0..self.rng.range(1, 8)).map(|_| self.element()).collect())
                .exact(),
            "HSET" => {
                let mut cmd = c(name).a(k);
                for _ in 0..self.rng.range(1, 3) {
                    cmd = cmd.a(self.element()).a(self.value());
                }
                cmd.exact()
            }
            "LRANGE" => c(name).a(k).a("0").a("-1").exact(),
            _ => c(name).a(k).with(Cmp::Unordered),
        }
    }

    /// A key for a collection command of `kind` (b'l', b's' or b'h'): mostly one of three keys
    /// of that kind (`l0`..`l2`...), sometimes one of another kind or of [`KEYS`] (which the
    /// string commands use), so that collections grow and still meet other types.
    fn coll_key(&mut self, kind: u8) -> Vec<u8> {
        let kind = match self.rng.below(20) {
            0..=1 => return self.key().to_vec(),
            2..=3 => self.rng.pick(b"lshz"),
            _ => kind,
        };
        vec![kind, b'0' + self.rng.below(3) as u8]
    }

    /// One to `max` keys from [`Gen::coll_key`].
    fn coll_keys(&mut self, kind: u8, max: i64) -> Args {
        let n = self.rng.range(1, max);
        (0..n).map(|_| self.coll_key(kind)).collect()
    }

    /// A list element, set member or hash field: mostly from [`ELEMENTS`].
    fn element(&mut self) -> Vec<u8> {
        if self.rng.chance(85) {
            return self.pick_str(ELEMENTS);
        }
        self.value()
    }

    /// One of `good`, or rarely `bad`.
    fn mostly(&mut self, good: &[&str], bad: &str) -> Vec<u8> {
        if self.rng.chance(95) {
            return self.pick_str(good);
        }
        bad.as_bytes().to_vec()
    }

    fn side(&mut self) -> Vec<u8> {
        self.mostly(&["LEFT", "RIGHT", "left", "Right"], "MIDDLE")
    }

    fn list_cmd(&mut self, name: &str) -> (Args, Cmp) {
        let k = self.coll_key(b'l');
        match name {
            "LINSERT" => {
                let at = self.mostly(&["BEFORE", "AFTER", "before", "After"], "AROUND");
                c(name)
                    .a(k)
                    .a(at)
                    .a(self.element())
                    .a(self.element())
                    .exact()
            }
            "LREM" => c(name)
                .a(k)
                .a(self.pick_str(SMALL_INTS))
                .a(self.element())
                .exact(),
            "LPOS" => {
                let mut cmd = c(name).a(k).a(self.element());
                for _ in 0..self.rng.range(0, 3) {
                    let opt = self.pick_str(&["RANK", "COUNT", "MAXLEN", "rank", "FOO"]);
                    cmd = cmd.a(opt);
                    if self.rng.chance(97) {
                        cmd = cmd.a(self.pick_str(SMALL_INTS));
                    }
                }
                cmd.exact()
            }
            "LMOVE" => {
                let (d, from, to) = (self.coll_key(b'l'), self.side(), self.side());
                c(name).a(k).a(d).a(from).a(to).exact()
            }
            "RPOPLPUSH" => c(name).a(k).a(self.coll_key(b'l')).exact(),
            _ => self.lmpop_cmd(),
        }
    }

    fn numkeys(&mut self, n: usize) -> Vec<u8> {
        if self.rng.chance(92) {
            return n.to_string().into_bytes();
        }
        // Not a huge count: Redis 7.0's LMPOP reads past its arguments with one.
        self.pick_str(&["0", "-1", "abc", "5", "1"])
    }

    fn lmpop_cmd(&mut self) -> (Args, Cmp) {
        let keys = self.coll_keys(b'l', 3);
        let mut cmd = c("LMPOP")
            .a(self.numkeys(keys.len()))
            .all(keys)
            .a(self.side());
        if self.rng.chance(50) {
            cmd = cmd
                .a("COUNT")
                .a(self.pick_str(&["1", "2", "3", "10", "0", "-1", "abc"]));
        }
        if self.rng.chance(3) {
            cmd = cmd.a("COUNT").a("1");
        }
        cmd.exact()
    }

    fn set_algebra_cmd(&mut self, name: &str) -> (Args, Cmp) {
        match name {
            "SMOVE" => c(name)
                .a(self.coll_key(b's'))
                .a(self.coll_key(b's'))
                .a(self.element())
                .exact(),
            "SINTER" | "SUNION" | "SDIFF" => {
                c(name).all(self.coll_keys(b's', 4)).with(Cmp::Unordered)
            }
            "SINTERCARD" => {
                let keys = self.coll_keys(b's', 3);
                let mut cmd = c(name).a(self.numkeys(keys.len())).all(keys);
                if self.rng.chance(50) {
                    cmd = cmd
                        .a("LIMIT")
                        .a(self.pick_str(&["0", "1", "2", "5", "-1", "abc"]));
                }
                cmd.exact()
            }
            _ => c(name)
                .a(self.coll_key(b's'))
                .all(self.coll_keys(b's', 3))
                .exact(),
        }
    }

    fn hrandfield_cmd(&mut self) -> (Args, Cmp) {
        let k = self.coll_key(b'h');
        if self.rng.chance(30) {
            return c("HRANDFIELD").a(k).with(Cmp::Presence);
        }
        // Never a huge negative count without WITHVALUES: Redis would try to send it.
        let count = match self.rng.below(10) {
            0 => self.pick_str(&["abc", "-9223372036854775808", "1.5"]),
            _ => self.rng.range(-12, 12).to_string().into_bytes(),
        };
        let cmd = c("HRANDFIELD").a(k);
        match self.rng.below(10) {
            0..=5 => cmd.a(count).with(Cmp::Len),
            6..=8 => cmd.a(count).a("WITHVALUES").with(Cmp::Len),
            _ => cmd
                // Not -(2^63-1): with WITHVALUES dropped by a wrong-arity variant Redis would
                // try to send that many fields.
                .a(self.pick_str(&["9223372036854775807", "-9223372036854775808", "3"]))
                .a(self.pick_str(&["WITHVALUES", "withvalues", "FOO"]))
                .with(Cmp::Len),
        }
    }

    /// Point commands on hashes, sets and lists.
    fn member_cmd(&mut self, name: &str) -> (Args, Cmp) {
        let kind = match name.as_bytes()[0] {
            b'H' => b'h',
            b'L' => b'l',
            _ => b's',
        };
        let k = self.coll_key(kind);
        let cmd = c(name).a(k);
        match name {
            "HGET" | "HEXISTS" | "HSTRLEN" | "SISMEMBER" => cmd.a(self.element()).exact(),
            "HMGET" | "HDEL" | "SREM" | "SMISMEMBER" => cmd
                .all((0..self.rng.range(1, 4)).map(|_| self.element()).collect())
                .exact(),
            "HGETALL" => cmd.with(Cmp::Pairs),
            "HKEYS" | "HVALS" => cmd.with(Cmp::Unordered),
            "HSETNX" => cmd.a(self.element()).a(self.value()).exact(),
            "HINCRBY" => cmd
                .a(self.element())
                .a(self.pick_str(&["1", "-3", "100", "abc", "9223372036854775807"]))
                .exact(),
            "HINCRBYFLOAT" => cmd
                .a(self.element())
                .a(self.pick_str(&["1.5", "-0.25", "10", "abc", "inf"]))
                .exact(),
            "SRANDMEMBER" if self.rng.chance(30) => cmd.with(Cmp::Presence),
            "SRANDMEMBER" => cmd.a(self.rng.range(-6, 6).to_string()).with(Cmp::Len),
            "LPUSH" => cmd
                .all((0..self.rng.range(1, 4)).map(|_| self.element()).collect())
                .exact(),
            "LPOP" | "RPOP" if self.rng.chance(50) => cmd.exact(),
            "LPOP" | "RPOP" => cmd.a(self.pick_str(&["0", "1", "2", "5", "-1"])).exact(),
            "LINDEX" => cmd.a(self.pick_str(SMALL_INTS)).exact(),
            "LSET" => cmd.a(self.pick_str(SMALL_INTS)).a(self.element()).exact(),
            "LTRIM" => cmd
                .a(self.rng.range(-4, 4).to_string())
                .a(self.rng.range(-4, 8).to_string())
                .exact(),
            _ => cmd.exact(), // HLEN SCARD LLEN
        }
    }

    /// A sorted-set key: `z0`..`z2` (mixed scores) or, for the lex commands, `zl` (every
    /// member scores 0: Redis defines lex ranges only for equal scores).
    fn zkey(&mut self, lex: bool) -> Vec<u8> {
        if lex {
            return b"zl".to_vec();
        }
        self.coll_key(b'z')
    }

    fn score(&mut self) -> Vec<u8> {
        self.mostly(SCORES, "abc")
    }

    fn zset_cmd(&mut self, name: &str) -> (Args, Cmp) {
        let lex = name.contains("LEX") || (name == "ZADD" && self.rng.chance(25));
        let k = self.zkey(lex);
        match name {
            "ZADD" => {
                let mut cmd = c(name).a(&k);
                if !lex {
                    for o in ["NX", "XX", "GT", "LT", "CH", "INCR"] {
                        if self.rng.chance(8) {
                            cmd = cmd.a(o);
                        }
                    }
                }
                for _ in 0..self.rng.range(1, 4) {
                    let s = if lex { b"0".to_vec() } else { self.score() };
                    cmd = cmd.a(s).a(self.element());
                }
                cmd.exact()
            }
            "ZINCRBY" => c(name).a(k).a(self.score()).a(self.element()).exact(),
            "ZREM" | "ZMSCORE" => c(name)
                .a(k)
                .all((0..self.rng.range(1, 3)).map(|_| self.element()).collect())
                .exact(),
            "ZSCORE" | "ZRANK" | "ZREVRANK" => c(name).a(k).a(self.element()).exact(),
            "ZCARD" => c(name).a(k).exact(),
            "ZCOUNT" | "ZRANGEBYSCORE" | "ZREVRANGEBYSCORE" | "ZREMRANGEBYSCORE" => {
                let mut cmd = c(name)
                    .a(k)
                    .a(self.mostly(SCORE_BOUNDS, "abc"))
                    .a(self.mostly(SCORE_BOUNDS, "(abc"));
                if name.contains("RANGEBY") && !name.starts_with("ZREM") {
                    cmd = self.range_options(cmd, true);
                }
                cmd.exact()
            }
            "ZLEXCOUNT" | "ZRANGEBYLEX" | "ZREVRANGEBYLEX" | "ZREMRANGEBYLEX" => {
                let mut cmd = c(name)
                    .a(k)
                    .a(self.mostly(LEX_BOUNDS, "a"))
                    .a(self.mostly(LEX_BOUNDS, "b"));
                if name.contains("RANGEBY") && !name.starts_with("ZREM") {
                    cmd = self.range_options(cmd, false);
                }
                cmd.exact()
            }
            "ZREVRANGE" | "ZREMRANGEBYRANK" => {
                let mut cmd = c(name)
                    .a(k)
                    .a(self.rng.range(-5, 5).to_string())
                    .a(self.rng.range(-5, 8).to_string());
                if name == "ZREVRANGE" && self.rng.chance(50) {
                    cmd = cmd.a("WITHSCORES");
                }
                cmd.exact()
            }
            "ZRANGE" | "ZRANGESTORE" => self.zrange_cmd(name),
            "ZPOPMIN" | "ZPOPMAX" => {
                let cmd = c(name).a(k);
                if self.rng.chance(50) {
                    cmd.exact()
                } else {
                    cmd.a(self.pick_str(&["0", "1", "2", "10", "-1"])).exact()
                }
            }
            "ZMPOP" => {
                let keys: Args = (0..self.rng.range(1, 3))
                    .map(|_| self.zkey(false))
                    .collect();
                let mut cmd = c(name)
                    .a(self.numkeys(keys.len()))
                    .all(keys)
                    .a(self.mostly(&["MIN", "MAX", "min"], "MIDDLE"));
                if self.rng.chance(50) {
                    cmd = cmd
                        .a("COUNT")
                        .a(self.pick_str(&["1", "2", "5", "0", "abc"]));
                }
                cmd.exact()
            }
            "ZRANDMEMBER" => {
                if self.rng.chance(30) {
                    return c(name).a(k).with(Cmp::Presence);
                }
                let cmd = c(name).a(k).a(self.rng.range(-6, 6).to_string());
                if self.rng.chance(50) {
                    cmd.a("WITHSCORES").with(Cmp::Len)
                } else {
                    cmd.with(Cmp::Len)
                }
            }
            _ => self.zsetop_cmd(name),
        }
    }

    /// `[LIMIT offset count] [WITHSCORES]` for the older range forms.
    fn range_options(&mut self, mut cmd: C, scores: bool) -> C {
        if self.rng.chance(40) {
            cmd = cmd
                .a("LIMIT")
                .a(self.pick_str(&["0", "1", "2", "-1", "10"]))
                .a(self.pick_str(&["1", "2", "-1", "0", "5"]));
        }
        if scores && self.rng.chance(50) {
            cmd = cmd.a("WITHSCORES");
        }
        cmd
    }

    fn zrange_cmd(&mut self, name: &str) -> (Args, Cmp) {
        let by = self.rng.below(3);
        let lex = by == 2;
        let mut cmd = c(name);
        if name == "ZRANGESTORE" {
            cmd = cmd.a(self.zkey(false));
        }
        cmd = cmd.a(self.zkey(lex));
        cmd = match by {
            0 => cmd
                .a(self.rng.range(-5, 5).to_string())
                .a(self.rng.range(-5, 8).to_string()),
            1 => cmd
                .a(self.mostly(SCORE_BOUNDS, "x"))
                .a(self.mostly(SCORE_BOUNDS, "x"))
                .a("BYSCORE"),
            _ => cmd
                .a(self.mostly(LEX_BOUNDS, "x"))
                .a(self.mostly(LEX_BOUNDS, "x"))
                .a("BYLEX"),
        };
        if self.rng.chance(40) {
            cmd = cmd.a("REV");
        }
        if self.rng.chance(if by == 0 { 5 } else { 40 }) {
            cmd = cmd
                .a("LIMIT")
                .a(self.pick_str(&["0", "1", "-1", "3"]))
                .a(self.pick_str(&["1", "2", "-1", "0"]));
        }
        if name == "ZRANGE" && self.rng.chance(if lex { 5 } else { 50 }) {
            cmd = cmd.a("WITHSCORES");
        }
        cmd.exact()
    }

    /// ZUNION/ZINTER/ZDIFF (and STORE forms, ZINTERCARD) over sorted sets and plain sets.
    fn zsetop_cmd(&mut self, name: &str) -> (Args, Cmp) {
        let n = self.rng.range(1, 3) as usize;
        let keys: Args = (0..n)
            .map(|_| {
                if self.rng.chance(20) {
                    self.coll_key(b's')
                } else {
                    self.zkey(false)
                }
            })
            .collect();
        let mut cmd = c(name);
        if name.ends_with("STORE") {
            cmd = cmd.a(self.zkey(false));
        }
        cmd = cmd.a(self.numkeys(n)).all(keys);
        let weighted = !name.contains("DIFF") && name != "ZINTERCARD";
        if weighted && self.rng.chance(30) {
            cmd = cmd.a("WEIGHTS");
            for _ in 0..n {
                cmd = cmd.a(self.mostly(&["1", "2", "0", "-1", "0.5", "inf"], "abc"));
            }
        }
        if weighted && self.rng.chance(30) {
            cmd = cmd
                .a("AGGREGATE")
                .a(self.mostly(&["SUM", "MIN", "MAX", "max"], "AVG"));
        }
        if name == "ZINTERCARD" && self.rng.chance(50) {
            cmd = cmd.a("LIMIT").a(self.pick_str(&["0", "1", "2", "-1"]));
        }
        if !name.ends_with("STORE") && name != "ZINTERCARD" && self.rng.chance(50) {
            cmd = cmd.a("WITHSCORES");
        }
        cmd.exact()
    }

    fn misc_cmd(&mut self, name: &str) -> (Args, Cmp) {
        match name {
            "PING" if self.rng.chance(50) => c(name).exact(),
            "PING" | "ECHO" => c(name).a(self.value()).exact(),
            "WATCH" => c(name).all(self.keys(1, 3)).exact(),
            "UNWATCH" | "EXEC" | "DISCARD" | "MULTI" => c(name).exact(),
            _ => c(name).a(self.key()).exact(),
        }
    }

    // --- scenarios ---------------------------------------------------------------------

    /// A run of 20..60 list, set and hash commands, so that collections grow between the
    /// FLUSHDBs and SELECTs of the other scenarios.
    fn collections(&mut self) {
        let total: u64 = OTHER_TYPE_COMMANDS.iter().map(|(_, w)| w).sum();
        for _ in 0..self.rng.range(20, 60) {
            let mut r = self.rng.below(total);
            let name = OTHER_TYPE_COMMANDS
                .iter()
                .find(|(_, w)| {
                    let hit = r < *w;
                    r = r.saturating_sub(*w);
                    hit
                })
                .map_or("RPUSH", |(n, _)| n);
            if self.allowed(name) {
                let s = step(0, self.build(name));
                self.queue.push_back(Op::Single(s));
            }
        }
    }

    /// A blocking pop parked on connection 1 (both connections in database 0, the keys
    /// deleted first), then served by pushes on connection 0, or left to time out.
    fn blocking(&mut self) {
        let list = self.rng.chance(60);
        let keys: Args = if list {
            strs(&["bl0", "bl1"])
        } else {
            strs(&["bz0", "bz1"])
        };
        for conn in [0, 1] {
            let s = step(conn, c("SELECT").a("0").exact());
            self.queue.push_back(Op::Single(s));
        }
        let del = step(0, c("DEL").all(keys.clone()).exact());
        self.queue.push_back(Op::Single(del));
        let n = self.rng.range(1, 2) as usize;
        let waits = keys[..n].to_vec();
        let timeout = if self.rng.chance(15) { "0.1" } else { "0" };
        if self.rng.chance(10) {
            // Inside MULTI a blocking command answers at once, as if it timed out.
            let name = if list { "BLPOP" } else { "BZPOPMIN" };
            for built in [
                c("MULTI").exact(),
                c(name).all(waits.clone()).a("0").exact(),
                c("EXEC").with(Cmp::Exec(vec![Cmp::Exact])),
            ] {
                self.queue.push_back(Op::Single(step(0, built)));
            }
        }
        let park = if list {
            match self.rng.below(5) {
                0 => c("BLPOP").all(waits.clone()).a(timeout),
                1 => c("BRPOP").all(waits.clone()).a(timeout),
                2 => {
                    let (from, to) = (self.side(), self.side());
                    c("BLMOVE").a("bl0").a("bl1").a(from).a(to).a(timeout)
                }
                3 => c("BRPOPLPUSH").a("bl0").a("bl1").a(timeout),
                _ => {
                    let mut cmd = c("BLMPOP")
                        .a(timeout)
                        .a(n.to_string())
                        .all(waits.clone())
                        .a(self.pick_str(&["LEFT", "RIGHT"]));
                    if self.rng.chance(50) {
                        cmd = cmd.a("COUNT").a(self.pick_str(&["1", "2", "5"]));
                    }
                    cmd
                }
            }
        } else {
            match self.rng.below(3) {
                0 => c("BZPOPMIN").all(waits.clone()).a(timeout),
                1 => c("BZPOPMAX").all(waits.clone()).a(timeout),
                _ => {
                    let mut cmd = c("BZMPOP")
                        .a(timeout)
                        .a(n.to_string())
                        .all(waits.clone())
                        .a(self.pick_str(&["MIN", "MAX"]));
                    if self.rng.chance(50) {
                        cmd = cmd.a("COUNT").a(self.pick_str(&["1", "2", "5"]));
                    }
                    cmd
                }
            }
        };
        let target = if park.0[0] == b"BLMOVE" || park.0[0] == b"BRPOPLPUSH" {
            b"bl0".to_vec()
        } else {
            waits[self.rng.below(n as u64) as usize].clone()
        };
        let mut wake = Vec::new();
        if timeout == "0" {
            let push = if list {
                c(self.rng.pick(&["RPUSH", "LPUSH"]))
                    .a(&target)
                    .all((0..self.rng.range(1, 4)).map(|_| self.element()).collect())
            } else {
                let mut cmd = c("ZADD").a(&target);
                for _ in 0..self.rng.range(1, 4) {
                    cmd = cmd
                        .a(self.pick_str(&["1", "2", "-1", "1.5"]))
                        .a(self.element());
                }
                cmd
            };
            wake.push(step(0, push.exact()));
        }
        for k in &keys {
            let read = if list {
                c("LRANGE").a(k).a("0").a("-1")
            } else {
                c("ZRANGE").a(k).a("0").a("-1").a("WITHSCORES")
            };
            wake.push(step(0, read.exact()));
        }
        self.queue.push_back(Op::Parked {
            park: step(1, park.exact()),
            wake,
        });
    }

    /// An explicit stream id after the last one given (sometimes `ms-*`, sometimes an old
    /// one, which both servers refuse).
    fn stream_id(&mut self) -> Vec<u8> {
        if self.rng.chance(5) {
            return format!("{}-0", self.rng.below(self.xms)).into_bytes();
        }
        self.xms += self.rng.range(1, 3) as u64;
        if self.rng.chance(30) {
            format!("{}-*", self.xms).into_bytes()
        } else {
            format!("{}-{}", self.xms, self.rng.below(3)).into_bytes()
        }
    }

    /// An id somewhere in the range given so far.
    fn old_stream_id(&mut self) -> Vec<u8> {
        let ms = self.rng.below(self.xms + 1);
        format!("{ms}-{}", self.rng.below(3)).into_bytes()
    }

    /// Streams (keys `x0`..`x3`, deleted first, entry ids explicit so that replies do not
    /// depend on the clock): 15..40 commands among XADD (with exact MAXLEN/MINID trimming),
    /// XRANGE, XREVRANGE, XDEL, XTRIM, XLEN, XREADGROUP (new entries and history), XACK,
    /// XPENDING (summary exactly; the extended form, whose idle times differ, by length),
    /// XCLAIM and XAUTOCLAIM with JUSTID, XINFO GROUPS, XGROUP CREATECONSUMER/DELCONSUMER/
    /// SETID and COPY/RENAME of a stream with its groups; then an XREAD or XREADGROUP parked
    /// on connection 1 and served by an XADD on connection 0 (or timing out).
    fn streams(&mut self) {
        for conn in [0, 1] {
            let s = step(conn, c("SELECT").a("0").exact());
            self.queue.push_back(Op::Single(s));
        }
        let mut setup = vec![
            c("DEL").all(strs(&["x0", "x1", "x2", "x3"])).exact(),
            c("XGROUP")
                .a("CREATE")
                .a("x0")
                .a("g")
                .a("0")
                .a("MKSTREAM")
                .exact(),
        ];
        if self.rng.chance(50) {
            setup.push(c("XGROUP").a("CREATE").a("x0").a("h").a("$").exact());
        }
        for b in setup {
            self.queue.push_back(Op::Single(step(0, b)));
        }
        let consumers = ["alice", "bob", "carol"];
        for _ in 0..self.rng.range(15, 40) {
            let key = if self.rng.chance(85) { "x0" } else { "x1" };
            let group = if self.rng.chance(80) { "g" } else { "h" };
            let who = consumers[self.rng.below(3) as usize];
            let built = match self.rng.below(16) {
                0..=3 => {
                    let mut cmd = c("XADD").a(key);
                    if self.rng.chance(10) {
                        cmd = cmd.a("MAXLEN").a("=").a(self.rng.range(2, 8).to_string());
                    } else if self.rng.chance(5) {
                        let min = self.old_stream_id();
                        cmd = cmd.a("MINID").a(min);
                    }
                    let id = self.stream_id();
                    cmd.a(id).a("f").a(self.element()).exact()
                }
                4 => {
                    let (a, b) = (self.old_stream_id(), self.old_stream_id());
                    let name = if self.rng.chance(50) {
                        "XRANGE"
                    } else {
                        "XREVRANGE"
                    };
                    let mut cmd = c(name).a(key);
                    cmd = if self.rng.chance(50) {
                        cmd.a("-").a("+")
                    } else {
                        cmd.a(a).a(b)
                    };
                    if self.rng.chance(50) {
                        cmd = cmd.a("COUNT").a(self.rng.range(0, 4).to_string());
                    }
                    cmd.exact()
                }
                5 => {
                    let id = self.old_stream_id();
                    c("XDEL").a(key).a(id).exact()
                }
                6 => if self.rng.chance(50) {
                    c("XTRIM")
                        .a(key)
                        .a("MAXLEN")
                        .a(self.rng.range(3, 10).to_string())
                } else {
                    let min = self.old_stream_id();
                    c("XTRIM").a(key).a("MINID").a("=").a(min)
                }
                .exact(),
                7 => c("XLEN").a(key).exact(),
                8..=9 => {
                    let mut cmd = c("XREADGROUP").a("GROUP").a(group).a(who);
                    if self.rng.chance(60) {
                        cmd = cmd.a("COUNT").a(self.rng.range(1, 3).to_string());
                    }
                    if self.rng.chance(10) {
                        cmd = cmd.a("NOACK");
                    }
                    let id = if self.rng.chance(75) { ">" } else { "0" };
                    cmd.a("STREAMS").a("x0").a(id).exact()
                }
                10 => {
                    let mut cmd = c("XACK").a("x0").a(group);
                    for _ in 0..self.rng.range(1, 3) {
                        cmd = cmd.a(self.old_stream_id());
                    }
                    cmd.exact()
                }
                11 => {
                    if self.rng.chance(50) {
                        c("XPENDING").a("x0").a(group).exact()
                    } else {
                        let mut cmd = c("XPENDING").a("x0").a(group).a("-").a("+").a("10");
                        if self.rng.chance(50) {
                            cmd = cmd.a(who);
                        }
                        cmd.with(Cmp::Len)
                    }
                }
                12 => {
                    let mut cmd = c("XCLAIM").a("x0").a(group).a(who).a("0");
                    for _ in 0..self.rng.range(1, 3) {
                        cmd = cmd.a(self.old_stream_id());
                    }
                    cmd.a("JUSTID").exact()
                }
                13 => c("XAUTOCLAIM")
                    .a("x0")
                    .a(group)
                    .a(who)
                    .a("0")
                    .a("0")
                    .a("COUNT")
                    .a(self.rng.range(1, 5).to_string())
                    .a("JUSTID")
                    .exact(),
                14 => match self.rng.below(4) {
                    0 => c("XGROUP").a("CREATECONSUMER").a("x0").a(group).a(who),
                    1 => c("XGROUP").a("DELCONSUMER").a("x0").a(group).a(who),
                    2 => {
                        let id = self.old_stream_id();
                        c("XGROUP").a("SETID").a("x0").a(group).a(id)
                    }
                    _ => c("XINFO").a("GROUPS").a(key),
                }
                .exact(),
                _ => {
                    // Groups travel with COPY and RENAME.
                    self.queue.push_back(Op::Single(step(
                        0,
                        c("COPY").a("x0").a("x2").a("REPLACE").exact(),
                    )));
                    self.queue
                        .push_back(Op::Single(step(0, c("RENAME").a("x2").a("x3").exact())));
                    self.queue
                        .push_back(Op::Single(step(0, c("XPENDING").a("x3").a("g").exact())));
                    c("XINFO").a("GROUPS").a("x3").exact()
                }
            };
            self.queue.push_back(Op::Single(step(0, built)));
        }
        let timeout = if self.rng.chance(15) { "100" } else { "0" };
        let group_read = self.rng.chance(50);
        if group_read {
            // So that the group has nothing new to read and the client parks.
            let s = step(0, c("XGROUP").a("SETID").a("x0").a("g").a("$").exact());
            self.queue.push_back(Op::Single(s));
        }
        let park = if group_read {
            c("XREADGROUP")
                .a("GROUP")
                .a("g")
                .a("dave")
                .a("BLOCK")
                .a(timeout)
                .a("STREAMS")
                .a("x0")
                .a(">")
        } else {
            c("XREAD")
                .a("BLOCK")
                .a(timeout)
                .a("STREAMS")
                .a("x0")
                .a("x1")
                .a("$")
                .a("$")
        };
        let mut wake = Vec::new();
        if timeout == "0" {
            let target = if group_read || self.rng.chance(50) {
                "x0"
            } else {
                "x1"
            };
            self.xms += 1;
            let id = format!("{}-5", self.xms);
            wake.push(step(0, c("XADD").a(target).a(id).a("w").a("1").exact()));
        }
        wake.push(step(0, c("XPENDING").a("x0").a("g").exact()));
        self.queue.push_back(Op::Parked {
            park: step(1, park.exact()),
            wake,
        });
    }

    /// MULTI, 1..6 commands, EXEC (or DISCARD); the steps run one by one.
    fn transaction(&mut self) -> Vec<Step> {
        let mut steps = vec![step(0, c("MULTI").exact())];
        self.in_tx = true;
        let n = self.rng.range(1, 6);
        let queued: Vec<Step> = (0..n).map(|_| self.single(0)).collect();
        self.in_tx = false;
        let cmps = queued
            .iter()
            .filter(|s| is_queued(s))
            .map(|s| s.cmp.clone())
            .collect();
        steps.extend(queued);
        if self.rng.chance(85) {
            steps.push(step(0, c("EXEC").with(Cmp::Exec(cmps))));
        } else {
            steps.push(step(0, c("DISCARD").exact()));
        }
        steps
    }

    /// WATCH on connection 0, a change (or not) by connection 1 in the same database,
    /// then a transaction.
    fn watch(&mut self) {
        let db = self.rng.range(0, 3).to_string();
        let watched = self.keys(1, 3);
        let mut steps = vec![
            step(0, c("SELECT").a(&db).exact()),
            step(1, c("SELECT").a(&db).exact()),
            step(0, c("WATCH").all(watched.clone()).exact()),
        ];
        let toucher = if self.rng.chance(85) { 1 } else { 0 };
        if self.rng.chance(80) {
            let k = if self.rng.chance(70) {
                watched[self.rng.below(watched.len() as u64) as usize].clone()
            } else {
                self.key().to_vec()
            };
            steps.push(self.touch_step(toucher, k));
        }
        if self.rng.chance(10) {
            steps.push(step(0, c("UNWATCH").exact()));
        }
        steps.extend(self.transaction());
        self.queue.extend(steps.into_iter().map(Op::Single));
    }

    /// A command on `k` that may or may not modify it.
    fn touch_step(&mut self, conn: usize, k: Vec<u8>) -> Step {
        let other = self.key();
        let names = [
            "SET", "DEL", "APPEND", "EXPIRE", "PERSIST", "INCR", "GET", "RENAME", "FLUSHDB",
            "SWAPDB", "SETRANGE",
        ];
        let r = self.rng.below(12) as usize;
        if names.get(r).is_some_and(|n| self.excluded(n)) {
            return self.single(conn);
        }
        let built = match r {
            0 => c("SET").a(&k).a(self.value()).exact(),
            1 => c("DEL").a(&k).exact(),
            2 => c("APPEND").a(&k).a(self.value()).exact(),
            3 => c("EXPIRE").a(&k).a(self.rel_time(false)).exact(),
            4 => c("PERSIST").a(&k).exact(),
            5 => c("INCR").a(&k).exact(),
            6 => c("GET").a(&k).exact(),
            7 => c("RENAME").a(&k).a(other).exact(),
            8 => c("FLUSHDB").exact(),
            9 => c("SWAPDB").a(self.db()).a(self.db()).exact(),
            10 => c("SETRANGE").a(&k).a("0").a(self.value()).exact(),
            _ => return self.single(conn),
        };
        step(conn, built)
    }

    /// A pipelined batch of commands, sometimes with a transaction inside.
    fn pipeline(&mut self) {
        let n = self.rng.range(2, 20);
        self.in_batch = true;
        let mut steps: Vec<Step> = (0..n).map(|_| self.single(0)).collect();
        if self.rng.chance(30) && !self.excluded("MULTI") {
            let at = self.rng.range(0, n) as usize;
            let tx = self.transaction();
            steps.splice(at..at, tx);
        }
        self.in_batch = false;
        self.queue.push_back(Op::Batch(steps));
    }

    /// Keys that expire in a few hundred ms, then a sleep long enough for both servers.
    fn short_ttl(&mut self) {
        let n = self.rng.range(1, 4);
        let steps = (0..n)
            .map(|_| {
                let k = self.key();
                let ms = self.rng.range(100, 400).to_string();
                let built = match self.rng.below(3) {
                    0 => c("SET").a(k).a(self.value()).a("PX").a(ms).exact(),
                    1 => c("PSETEX").a(k).a(ms).a(self.value()).exact(),
                    _ => c("PEXPIRE").a(k).a(ms).exact(),
                };
                step(0, built)
            })
            .collect();
        self.queue.push_back(Op::Batch(steps));
        self.queue.push_back(Op::SleepMs(SHORT_SLEEP_MS));
    }

    /// A 20-100 KB value written, appended or SETRANGEd, sometimes read back.
    fn big_value(&mut self) {
        let k = self.key();
        let off = self.offset().to_string();
        let built = match self.rng.below(5) {
            0 => c("SET").a(k).a(self.big()).exact(),
            1 => c("APPEND").a(k).a(self.big()).exact(),
            2 => c("SETRANGE").a(k).a(&off).a(self.big()).exact(),
            3 => c("SETRANGE")
                .a(k)
                .a(self.rng.range(20_000, 120_000).to_string())
                .a("xyz")
                .exact(),
            _ => c("SETBIT")
                .a(k)
                .a(self.rng.range(160_000, 800_000).to_string())
                .a("1")
                .exact(),
        };
        self.queue.push_back(Op::Single(step(0, built)));
        let read = match self.rng.below(5) {
            0 => c("GET").a(k).exact(),
            1 => c("STRLEN").a(k).exact(),
            2 => c("GETRANGE")
                .a(k)
                .a(&off)
                .a((off.parse::<i64>().unwrap_or(0) + 5000).to_string())
                .exact(),
            3 => c("BITCOUNT").a(k).exact(),
            _ => return,
        };
        self.queue.push_back(Op::Single(step(0, read)));
    }

    /// 1..4 EVALs of small script templates mixing reads and writes on the string keys
    /// (which may hold other types): some fail half-way with a `redis.call` error after
    /// writing (the writes stay, as in Redis), some catch errors with `redis.pcall`, some use
    /// cjson or return mixed Lua types.
    fn scripts(&mut self) {
        for _ in 0..self.rng.range(1, 4) {
            let script = self.rng.pick(SCRIPT_TEMPLATES);
            let (k1, k2) = (self.key(), self.key());
            let (a1, a2) = (self.value(), self.pick_str(INTS));
            let built = c("EVAL").a(script).a("2").a(k1).a(k2).a(a1).a(a2).exact();
            self.queue.push_back(Op::Single(step(0, built)));
            // Read back what the script may have written.
            let read = c("MGET").a(k1).a(k2).exact();
            self.queue.push_back(Op::Single(step(0, read)));
        }
    }

    /// Two small strings on keys only this scenario writes (LCS is quadratic), then LCS.
    fn lcs(&mut self) {
        for k in LCS_KEYS {
            let n = self.rng.pick(&[0, 5, 20, 40, 200]);
            let v: Vec<u8> = (0..n).map(|_| self.rng.pick(b"ACGT")).collect();
            self.queue
                .push_back(Op::Single(step(0, c("SET").a(k).a(v).exact())));
        }
        let b = if self.rng.chance(90) {
            "lcs:b"
        } else {
            "nokey"
        };
        let opts = strs(self.rng.pick(LCS_OPTIONS));
        let built = c("LCS").a("lcs:a").a(b).all(opts).exact();
        self.queue.push_back(Op::Single(step(0, built)));
    }

    /// A full SCAN (not `TYPE none`: redis 7.0 then also returns keys that expire during the
    /// scan, which depends on when its active expiry ran).
    fn scan_all(&mut self) {
        let mut args: Args = Vec::new();
        if self.rng.chance(50) {
            args.extend([b"MATCH".to_vec(), self.pick_str(PATTERNS)]);
        }
        if self.rng.chance(50) {
            args.extend([
                b"COUNT".to_vec(),
                self.rng.range(1, 20).to_string().into_bytes(),
            ]);
        }
        if self.rng.chance(30) {
            args.extend([
                b"TYPE".to_vec(),
                self.pick_str(&["string", "list", "set", "STRING"]),
            ]);
        }
        self.queue.push_back(Op::ScanAll(args));
    }
}

fn step(conn: usize, (args, cmp): (Args, Cmp)) -> Step {
    Step { conn, args, cmp }
}

fn strs(v: &[&str]) -> Args {
    v.iter().map(|a| a.as_bytes().to_vec()).collect()
}

/// Whether MULTI queues `s` (so that EXEC answers for it).
fn is_queued(s: &Step) -> bool {
    !NOT_QUEUED
        .iter()
        .any(|n| s.args[0].eq_ignore_ascii_case(n.as_bytes()))
}

// ---------------------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------------------

/// Tolerated differences: error texts whose first words agree, transient DBSIZE values.
type Notes = BTreeSet<String>;

fn compare(cmp: &Cmp, a: &Frame, b: &Frame, notes: &mut Notes) -> Result<(), String> {
    match (cmp, a, b) {
        (Cmp::Unordered, Frame::Array(Some(x)), Frame::Array(Some(y))) => same(
            &Frame::Array(Some(sorted(x))),
            &Frame::Array(Some(sorted(y))),
            notes,
        ),
        (Cmp::Pairs, Frame::Array(Some(x)), Frame::Array(Some(y))) => {
            let pairs = |v: &[Frame]| {
                let mut p: Vec<Frame> = v
                    .chunks(2)
                    .map(|c| Frame::Array(Some(c.to_vec())))
                    .collect();
                p.sort_by_key(|f| format!("{f:?}"));
                Frame::Array(Some(p))
            };
            same(&pairs(x), &pairs(y), notes)
        }
        (Cmp::Presence | Cmp::Len, Frame::Bulk(Some(_)), Frame::Bulk(Some(_))) => Ok(()),
        (Cmp::Len, Frame::Array(Some(x)), Frame::Array(Some(y))) => {
            if x.len() == y.len() {
                Ok(())
            } else {
                Err(format!("lengths differ: {} vs {}", x.len(), y.len()))
            }
        }
        (Cmp::Tol(t), Frame::Integer(x), Frame::Integer(y)) if *x >= 0 && *y >= 0 => {
            if x.abs_diff(*y) <= *t as u64 {
                Ok(())
            } else {
                Err(format!("integers differ by more than {t}"))
            }
        }
        (Cmp::Exec(cmps), Frame::Array(Some(x)), Frame::Array(Some(y))) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                compare(cmps.get(i).unwrap_or(&Cmp::Exact), p, q, notes)
                    .map_err(|e| format!("EXEC element {i}: {e}"))?;
            }
            Ok(())
        }
        _ => same(a, b, notes),
    }
}

fn sorted(v: &[Frame]) -> Vec<Frame> {
    let mut v = v.to_vec();
    v.sort_by_key(|f| format!("{f:?}"));
    v
}

/// Equal type and value; errors by their first word (other differences go to `notes`).
fn same(a: &Frame, b: &Frame, notes: &mut Notes) -> Result<(), String> {
    match (a, b) {
        (Frame::Error(x), Frame::Error(y)) => {
            if a.error_kind() != b.error_kind() {
                return Err("error kinds differ".into());
            }
            if x != y {
                notes.insert(format!("-{x}  vs  -{y}"));
            }
            Ok(())
        }
        (Frame::Array(Some(x)), Frame::Array(Some(y))) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                same(p, q, notes).map_err(|e| format!("element {i}: {e}"))?;
            }
            Ok(())
        }
        _ if a == b => Ok(()),
        _ => Err("replies differ".into()),
    }
}

// ---------------------------------------------------------------------------------------
// Runner
// ---------------------------------------------------------------------------------------

struct Config {
    seeds: Vec<u64>,
    ops: usize,
    against_redis: bool,
    exclude: Vec<String>,
    other_types: bool,
    verbose: bool,
    paranoid: bool,
}

impl Config {
    fn from_env() -> Config {
        let seeds = match (env_u64("DIFF_SEED"), env_u64("DIFF_SEEDS")) {
            (Some(s), _) => vec![s],
            (None, Some(n)) => (1..=n).collect(),
            (None, None) => vec![1, 2, 3, 4],
        };
        let exclude = std::env::var("DIFF_EXCLUDE")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        Config {
            seeds,
            ops: env_u64("DIFF_OPS").unwrap_or(4000) as usize,
            against_redis: env_flag("DIFF_AGAINST_REDIS"),
            exclude,
            other_types: std::env::var("DIFF_OTHER_TYPES").map_or(true, |v| v != "0"),
            verbose: env_flag("DIFF_VERBOSE"),
            paranoid: env_flag("DIFF_PARANOID"),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// One server's two connections.
struct Side {
    name: &'static str,
    /// 0 and 1 for the generated commands, 2 to inspect the state after a mismatch.
    conns: [Conn; 3],
}

type Reply = Result<Frame, String>;

impl Side {
    fn new(name: &'static str, port: u16) -> Side {
        Side {
            name,
            conns: [
                Conn::connect(port),
                Conn::connect(port),
                Conn::connect(port),
            ],
        }
    }

    fn send(&mut self, s: &Step) -> Result<(), String> {
        let bytes = Conn::encode(&s.args);
        self.conns[s.conn]
            .try_send_raw(&bytes)
            .map_err(|e| format!("{}: write failed: {e}", self.name))
    }

    fn read(&mut self, conn: usize) -> Reply {
        self.conns[conn]
            .try_read()
            .map_err(|e| format!("{}: read failed: {e}", self.name))
    }

    fn step(&mut self, s: &Step) -> Reply {
        self.send(s)?;
        self.read(s.conn)
    }

    fn batch(&mut self, steps: &[Step]) -> Vec<Reply> {
        let mut bytes = Vec::new();
        for s in steps {
            bytes.extend(Conn::encode(&s.args));
        }
        if let Err(e) = self.conns[0].try_send_raw(&bytes) {
            let e = format!("{}: write failed: {e}", self.name);
            return steps.iter().map(|_| Err(e.clone())).collect();
        }
        steps.iter().map(|_| self.read(0)).collect()
    }

    /// Waits (up to 2 s) until INFO on connection 2 reports a parked client.
    fn wait_parked(&mut self) {
        let until = std::time::Instant::now() + Duration::from_secs(2);
        while std::time::Instant::now() < until {
            let info = self.step(&Step {
                conn: 2,
                args: strs(&["INFO", "clients"]),
                cmp: Cmp::Exact,
            });
            if let Ok(Frame::Bulk(Some(b))) = info {
                if !String::from_utf8_lossy(&b).contains("blocked_clients:0\r") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// `KEYS *` (sorted) and DBSIZE of database `db`, read on connection 2.
    fn db_state(&mut self, db: u32) -> String {
        let mut get = |args: &[&str]| {
            let args: Args = strs(args);
            match self.step(&Step {
                conn: 2,
                args,
                cmp: Cmp::Exact,
            }) {
                Ok(Frame::Array(Some(v))) => Frame::Array(Some(sorted(&v))).to_string(),
                Ok(f) => f.to_string(),
                Err(e) => e,
            }
        };
        get(&["SELECT", &db.to_string()]);
        format!("keys {} dbsize {}", get(&["KEYS", "*"]), get(&["DBSIZE"]))
    }

    /// SCAN from cursor 0 to the end: the sorted distinct keys, or the first error reply.
    fn scan_all(&mut self, opts: &Args) -> Reply {
        let mut keys = BTreeSet::new();
        let mut cursor = b"0".to_vec();
        for _ in 0..100_000 {
            let args = c("SCAN").a(&cursor).all(opts.clone()).0;
            let reply = self.step(&Step {
                conn: 0,
                args,
                cmp: Cmp::Exact,
            })?;
            let (next, page) = match &reply {
                Frame::Error(_) => return Ok(reply),
                Frame::Array(Some(v)) => match v.as_slice() {
                    [Frame::Bulk(Some(next)), Frame::Array(Some(page))] => (next.clone(), page),
                    _ => return Err(format!("{}: malformed SCAN reply {reply}", self.name)),
                },
                _ => return Err(format!("{}: malformed SCAN reply {reply}", self.name)),
            };
            for k in page {
                match k {
                    Frame::Bulk(Some(k)) => keys.insert(k.clone()),
                    _ => return Err(format!("{}: SCAN page element {k}", self.name)),
                };
            }
            if next == b"0" {
                return Ok(Frame::Array(Some(
                    keys.into_iter().map(Frame::bulk).collect(),
                )));
            }
            cursor = next;
        }
        Err(format!(
            "{}: SCAN did not finish in 100000 calls",
            self.name
        ))
    }
}

/// The server compared with redis: rivet-server, or a second redis-server.
enum Target {
    Rivet(RivetServer),
    Redis(RedisServer),
}

impl Target {
    fn port(&self) -> u16 {
        match self {
            Target::Rivet(s) => s.port(),
            Target::Redis(s) => s.port(),
        }
    }
}

struct Run<'a> {
    cfg: &'a Config,
    seed: u64,
    redis: Side,
    target: Side,
    history: VecDeque<String>,
    /// The commands after the current one in a pipelined batch.
    rest_of_batch: Vec<String>,
    /// rivet-server's output file, shown when a connection fails.
    target_log: Option<PathBuf>,
    notes: Notes,
}

impl Run<'_> {
    fn op(&mut self, index: usize, op: &Op) {
        self.run_op(index, op);
        if self.cfg.paranoid {
            let diff = self.state_diff();
            assert!(
                diff.starts_with("databases 0..3 agree"),
                "seed {}: states diverged after op #{index}\n{diff}last commands:\n  {}",
                self.seed,
                Vec::from(self.history.clone()).join("\n  ")
            );
        }
    }

    fn run_op(&mut self, index: usize, op: &Op) {
        match op {
            Op::Single(s) => {
                self.record(index, s.conn, &s.args);
                let a = self.redis.step(s);
                let b = self.target.step(s);
                self.check(index, s, a, b);
            }
            Op::Batch(steps) => self.batch(index, steps),
            Op::ScanAll(opts) => {
                let args = c("SCAN").a("0").all(opts.clone()).a("(all pages)").0;
                self.record(index, 0, &args);
                let a = self.redis.scan_all(opts);
                let b = self.target.scan_all(opts);
                self.check(
                    index,
                    &Step {
                        conn: 0,
                        args,
                        cmp: Cmp::Exact,
                    },
                    a,
                    b,
                );
            }
            Op::Parked { park, wake } => {
                self.record(index, park.conn, &park.args);
                let sent = self.redis.send(park).and(self.target.send(park));
                if let Err(e) = sent {
                    self.check(index, park, Err(e.clone()), Err(e));
                    return;
                }
                self.redis.wait_parked();
                self.target.wait_parked();
                for w in wake {
                    self.record(index, w.conn, &w.args);
                    let a = self.redis.step(w);
                    let b = self.target.step(w);
                    self.check(index, w, a, b);
                }
                let a = self.redis.read(park.conn);
                let b = self.target.read(park.conn);
                self.check(index, park, a, b);
            }
            Op::SleepMs(ms) => {
                self.record(index, 0, &[format!("(sleep {ms} ms)").into_bytes()]);
                std::thread::sleep(Duration::from_millis(*ms));
            }
        }
    }

    fn batch(&mut self, index: usize, steps: &[Step]) {
        let a = self.redis.batch(steps);
        let b = self.target.batch(steps);
        for (i, ((s, a), b)) in steps.iter().zip(a).zip(b).enumerate() {
            self.record(index, 0, &s.args);
            self.rest_of_batch = steps[i + 1..].iter().map(|s| escape_cmd(&s.args)).collect();
            self.check(index, s, a, b);
        }
        self.rest_of_batch.clear();
    }

    fn record(&mut self, index: usize, conn: usize, args: &[Vec<u8>]) {
        let line = format!("#{index} [conn {conn}] {}", escape_cmd(args));
        if self.cfg.verbose {
            println!("seed {}: {line}", self.seed);
        }
        if self.history.len() == 20 {
            self.history.pop_front();
        }
        self.history.push_back(line);
    }

    /// Databases 0..3 as seen by KEYS and DBSIZE on both sides, where they differ (read after
    /// a mismatch, to show how the states diverged).
    fn state_diff(&mut self) -> String {
        let mut out = String::new();
        for db in 0..4 {
            let a = self.redis.db_state(db);
            let b = self.target.db_state(db);
            if a != b {
                out += &format!(
                    "  db {db}: redis {a}\n  db {db}: {} {b}\n",
                    self.target.name
                );
            }
        }
        if out.is_empty() {
            return "databases 0..3 agree after the mismatch (KEYS *, DBSIZE)\n".into();
        }
        format!("databases that differ after the mismatch (KEYS *, DBSIZE):\n{out}")
    }

    /// After a pause long enough for both servers to purge expired keys, runs `s` again on
    /// both; a difference that went away becomes a note.
    fn settle(&mut self, s: &Step, x: &Frame, y: &Frame) -> Result<(), String> {
        std::thread::sleep(Duration::from_millis(SHORT_SLEEP_MS));
        let again = (self.redis.step(s), self.target.step(s));
        if let (Ok(p), Ok(q)) = &again {
            if compare(&Cmp::Exact, p, q, &mut self.notes).is_ok() {
                let what = escape_cmd(&s.args);
                self.notes
                    .insert(format!("{what}: {x} vs {y}, equal ({p}) after a pause"));
                return Ok(());
            }
        }
        Err(format!("still differ after a pause: {again:?}"))
    }

    fn log_tail(&self) -> String {
        let Some(path) = &self.target_log else {
            return String::new();
        };
        let log = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n  ");
        format!("rivet-server output (last 30 lines):\n  {tail}\n")
    }

    fn batch_note(&self) -> String {
        if self.rest_of_batch.is_empty() {
            return String::new();
        }
        let rest = self.rest_of_batch.join("\n  ");
        format!("then, in the same pipelined batch:\n  {rest}\n")
    }

    fn check(&mut self, index: usize, s: &Step, a: Reply, b: Reply) {
        if self.cfg.verbose {
            if let Ok(f) = &a {
                println!("    -> {f}");
            }
            if let Ok(f) = &b {
                println!("    rivet -> {f}");
            }
        }
        let why = match (&a, &b) {
            (Ok(x), Ok(y)) => match compare(&s.cmp, x, y, &mut self.notes) {
                Ok(()) => return,
                Err(_) if s.cmp == Cmp::Settled => match self.settle(s, x, y) {
                    Ok(()) => return,
                    Err(e) => e,
                },
                Err(e) => e,
            },
            _ => "I/O or protocol failure".to_string(),
        };
        let state = match (&a, &b) {
            (Ok(_), Ok(_)) => self.state_diff(),
            _ => self.log_tail(),
        };
        let show = |r: &Reply| match r {
            Ok(f) => f.to_string(),
            Err(e) => format!("<{e}>"),
        };
        panic!(
            "\ndifferential mismatch: seed {}, op #{index}, conn {} ({why}, compared {:?})\n\
             command: {}\n  redis:  {}\n  {}: {}\nlast commands:\n  {}\n{}{}\
             reproduce: DIFF_SEED={} DIFF_OPS={} cargo test -p rivet-server --test differential\n",
            self.seed,
            s.conn,
            s.cmp,
            escape_cmd(&s.args),
            show(&a),
            self.target.name,
            show(&b),
            Vec::from(self.history.clone()).join("\n  "),
            self.batch_note(),
            state,
            self.seed,
            index + 1,
        );
    }
}

fn start_target(cfg: &Config, durable: bool) -> Target {
    if cfg.against_redis {
        return Target::Redis(RedisServer::start().expect("a second redis-server"));
    }
    let args: &[&str] = if durable { &[] } else { &["--no-sync"] };
    Target::Rivet(RivetServer::start(args))
}

/// Runs one seed; returns its notes, or None when redis-server is missing.
fn run_seed(cfg: &Config, seed: u64, durable: bool) -> Option<Notes> {
    let reference = redis_or_skip("differential test")?;
    let target = start_target(cfg, durable);
    let name = if cfg.against_redis { "redis2" } else { "rivet" };
    let mut run = Run {
        cfg,
        seed,
        redis: Side::new("redis", reference.port()),
        target: Side::new(name, target.port()),
        history: VecDeque::new(),
        rest_of_batch: Vec::new(),
        target_log: match &target {
            Target::Rivet(s) => Some(s.log_path()),
            Target::Redis(_) => None,
        },
        notes: Notes::new(),
    };
    let mut gen = Gen::new(seed, &cfg.exclude, cfg.other_types);
    for i in 0..cfg.ops {
        let op = gen.next_op(now_ms());
        run.op(i, &op);
    }
    let notes = std::mem::take(&mut run.notes);
    drop(run);
    if let Target::Rivet(server) = target {
        stop_and_check(server);
    }
    Some(notes)
}

#[test]
fn differential_against_redis() {
    let cfg = Config::from_env();
    let mut notes = Notes::new();
    for (i, &seed) in cfg.seeds.iter().enumerate() {
        let durable = i == 0;
        let t = std::time::Instant::now();
        let Some(n) = run_seed(&cfg, seed, durable) else {
            return;
        };
        println!(
            "differential: seed {seed}: {} ops agree (durable: {durable}, {:.1} s)",
            cfg.ops,
            t.elapsed().as_secs_f64()
        );
        notes.extend(n);
    }
    if !notes.is_empty() {
        println!(
            "NOTE: {} difference(s) tolerated (error texts with the same first word, transient DBSIZE):",
            notes.len()
        );
        for n in notes.iter().take(100) {
            println!("  {n}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Generator tests (no servers)
// ---------------------------------------------------------------------------------------

const FIXED_NOW_MS: u64 = 1_700_000_000_000;

fn generate(seed: u64, n: usize, exclude: &[String]) -> Vec<Op> {
    let mut g = Gen::new(seed, exclude, false);
    (0..n).map(|_| g.next_op(FIXED_NOW_MS)).collect()
}

/// Every step with whether it may use a short expiry (a batch followed by a long sleep).
fn steps_of(ops: &[Op]) -> Vec<(&Step, bool)> {
    let mut out = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let slept = matches!(ops.get(i + 1), Some(Op::SleepMs(ms)) if *ms >= SHORT_SLEEP_MS);
        match op {
            Op::Single(s) => out.push((s, false)),
            Op::Batch(v) => out.extend(v.iter().map(|s| (s, slept))),
            Op::Parked { park, wake } => {
                out.push((park, false));
                out.extend(wake.iter().map(|s| (s, false)));
            }
            _ => {}
        }
    }
    out
}

/// The expiry times (absolute ms) a step sets, from its time arguments that parse.
fn expiries(s: &Step) -> Vec<(i128, bool)> {
    let name = String::from_utf8_lossy(&s.args[0]).to_ascii_uppercase();
    let num = |i: usize| -> Option<i128> { std::str::from_utf8(s.args.get(i)?).ok()?.parse().ok() };
    let now = FIXED_NOW_MS as i128;
    let mut out = Vec::new();
    let mut add = |v: Option<i128>, scale: i128, relative: bool| {
        if let Some(v) = v {
            out.push((if relative { now + v * scale } else { v * scale }, relative));
        }
    };
    match name.as_str() {
        "SETEX" | "EXPIRE" => add(num(2), 1000, true),
        "PSETEX" | "PEXPIRE" => add(num(2), 1, true),
        "EXPIREAT" => add(num(2), 1000, false),
        "PEXPIREAT" => add(num(2), 1, false),
        "SET" | "GETEX" => {
            for (i, a) in s.args.iter().enumerate() {
                match a.to_ascii_uppercase().as_slice() {
                    b"EX" => add(num(i + 1), 1000, true),
                    b"PX" => add(num(i + 1), 1, true),
                    b"EXAT" => add(num(i + 1), 1000, false),
                    b"PXAT" => add(num(i + 1), 1, false),
                    _ => {}
                }
            }
        }
        _ => {}
    }
    out
}

/// Checks the timing rules of the module doc on the generated expiry times.
fn check_times(ops: &[Op]) {
    let now = FIXED_NOW_MS as i128;
    let mut future = Vec::new();
    for (s, short_ok) in steps_of(ops) {
        for (t, relative) in expiries(s) {
            let past = if relative {
                t <= now
            } else {
                t <= now - 10_000
            };
            let short = short_ok && (now + 100..=now + 400).contains(&t);
            let far = t >= now + 100_000;
            assert!(
                past || short || far,
                "timing-dependent expiry in {}",
                escape_cmd(&s.args)
            );
            if far && t < now + 10 * 365 * 86_400_000 {
                future.push(t);
            }
        }
    }
    future.sort();
    for w in future.windows(2) {
        assert!(
            w[1] - w[0] >= 9_000,
            "two far expiries {} ms apart",
            w[1] - w[0]
        );
    }
}

fn names(ops: &[Op]) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = steps_of(ops)
        .iter()
        .map(|(s, _)| String::from_utf8_lossy(&s.args[0]).to_ascii_uppercase())
        .collect();
    if ops.iter().any(|o| matches!(o, Op::ScanAll(_))) {
        out.insert("SCAN".into());
    }
    out
}

const SCOPE: &[&str] = &[
    "GET",
    "SET",
    "SETNX",
    "SETEX",
    "PSETEX",
    "GETSET",
    "GETDEL",
    "GETEX",
    "MGET",
    "MSET",
    "MSETNX",
    "APPEND",
    "STRLEN",
    "GETRANGE",
    "SETRANGE",
    "SUBSTR",
    "LCS",
    "INCR",
    "DECR",
    "INCRBY",
    "DECRBY",
    "INCRBYFLOAT",
    "SETBIT",
    "GETBIT",
    "BITCOUNT",
    "BITPOS",
    "BITOP",
    "DEL",
    "UNLINK",
    "EXISTS",
    "TYPE",
    "RENAME",
    "RENAMENX",
    "COPY",
    "MOVE",
    "KEYS",
    "SCAN",
    "RANDOMKEY",
    "DBSIZE",
    "TOUCH",
    "EXPIRE",
    "PEXPIRE",
    "EXPIREAT",
    "PEXPIREAT",
    "TTL",
    "PTTL",
    "EXPIRETIME",
    "PEXPIRETIME",
    "PERSIST",
    "SELECT",
    "SWAPDB",
    "FLUSHDB",
    "MULTI",
    "EXEC",
    "DISCARD",
    "WATCH",
    "UNWATCH",
    "PING",
    "ECHO",
];

#[test]
fn generator_is_deterministic_and_covers_the_scope() {
    let ops = generate(7, 6000, &[]);
    assert_eq!(ops, generate(7, 6000, &[]), "same seed, same operations");
    assert_ne!(
        ops,
        generate(8, 6000, &[]),
        "another seed, other operations"
    );
    let seen = names(&ops);
    let missing: Vec<&&str> = SCOPE.iter().filter(|n| !seen.contains(**n)).collect();
    assert!(missing.is_empty(), "never generated: {missing:?}");
    check_times(&ops);
    let big = steps_of(&ops)
        .iter()
        .filter(|(s, _)| s.args.iter().any(|a| a.len() >= 20_000))
        .count();
    assert!(big >= 5, "only {big} commands with a 20+ KB value");
    for kind in ["Batch", "ScanAll", "SleepMs"] {
        assert!(
            ops.iter().any(|o| format!("{o:?}").starts_with(kind)),
            "no {kind}"
        );
    }
    assert!(
        steps_of(&ops).iter().any(|(s, _)| s.conn == 1),
        "second connection unused"
    );
    let batched_dbsize = ops
        .iter()
        .any(|o| matches!(o, Op::Batch(v) if v.iter().any(|s| s.args[0] == b"DBSIZE")));
    assert!(
        !batched_dbsize,
        "DBSIZE in a pipelined batch (it cannot be re-run there)"
    );
}

#[test]
fn other_types_cover_the_collection_commands() {
    let mut g = Gen::new(5, &[], true);
    let ops: Vec<Op> = (0..8000).map(|_| g.next_op(FIXED_NOW_MS)).collect();
    let seen = names(&ops);
    let missing: Vec<&str> = OTHER_TYPE_COMMANDS
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !seen.contains(*n))
        .collect();
    assert!(missing.is_empty(), "never generated: {missing:?}");
    check_times(&ops);
    check_exec_alignment(&ops);
}

#[test]
fn generator_honours_exclusions_and_transactions_are_well_formed() {
    let exclude = vec!["LCS".to_string(), "bitpos".to_string(), "SCAN".to_string()];
    let ops = generate(3, 4000, &exclude);
    let seen = names(&ops);
    for n in ["LCS", "BITPOS", "SCAN"] {
        assert!(!seen.contains(n), "{n} generated although excluded");
    }
    check_exec_alignment(&ops);
}

/// Each EXEC compares as many replies as its transaction queued commands.
fn check_exec_alignment(ops: &[Op]) {
    let mut queued: Option<usize> = None;
    for (s, _) in steps_of(ops).iter().filter(|(s, _)| s.conn == 0) {
        match (&s.cmp, queued) {
            (Cmp::Exec(cmps), Some(n)) => {
                assert_eq!(cmps.len(), n, "EXEC compares {} of {n} replies", cmps.len());
                queued = None;
            }
            (_, None) if s.args == [b"MULTI".to_vec()] => queued = Some(0),
            (_, Some(_)) if s.args == [b"DISCARD".to_vec()] => queued = None,
            (_, Some(n)) if is_queued(s) => queued = Some(n + 1),
            _ => {}
        }
    }
}

#[test]
fn comparison_rules() {
    let ok = |cmp: Cmp, a: Frame, b: Frame| compare(&cmp, &a, &b, &mut Notes::new()).is_ok();
    let err = |s: &str| Frame::Error(s.into());
    let arr = |v: &[&str]| Frame::Array(Some(v.iter().map(Frame::bulk).collect()));
    assert!(ok(Cmp::Exact, err("ERR one"), err("ERR two")));
    assert!(!ok(Cmp::Exact, err("ERR x"), err("WRONGTYPE x")));
    assert!(!ok(Cmp::Exact, Frame::Bulk(None), Frame::Array(None)));
    assert!(!ok(Cmp::Exact, Frame::Bulk(None), Frame::Null));
    assert!(!ok(
        Cmp::Exact,
        Frame::Simple("OK".into()),
        Frame::bulk("OK")
    ));
    assert!(!ok(Cmp::Exact, arr(&["a", "b"]), arr(&["b", "a"])));
    assert!(ok(Cmp::Unordered, arr(&["a", "b"]), arr(&["b", "a"])));
    assert!(!ok(Cmp::Unordered, arr(&["a"]), arr(&["a", "a"])));
    assert!(ok(Cmp::Presence, Frame::bulk("k1"), Frame::bulk("k2")));
    assert!(!ok(Cmp::Presence, Frame::bulk("k1"), Frame::Bulk(None)));
    assert!(ok(Cmp::Tol(1), Frame::Integer(100), Frame::Integer(101)));
    assert!(!ok(Cmp::Tol(1), Frame::Integer(100), Frame::Integer(102)));
    assert!(!ok(Cmp::Tol(1), Frame::Integer(-1), Frame::Integer(0)));
    assert!(ok(Cmp::Len, arr(&["a", "b"]), arr(&["c", "c"])));
    assert!(!ok(Cmp::Len, arr(&["a"]), arr(&["a", "b"])));
    assert!(ok(Cmp::Len, Frame::bulk("a"), Frame::bulk("b")));
    assert!(!ok(Cmp::Len, Frame::bulk("a"), Frame::Bulk(None)));
    let exec = Cmp::Exec(vec![Cmp::Unordered, Cmp::Exact]);
    let reply = |v: Frame, e: &str| Frame::Array(Some(vec![v, err(e)]));
    assert!(ok(
        exec.clone(),
        reply(arr(&["a", "b"]), "ERR x"),
        reply(arr(&["b", "a"]), "ERR y")
    ));
    assert!(!ok(
        exec,
        reply(arr(&["a"]), "ERR x"),
        reply(arr(&["a"]), "EXECABORT x")
    ));
}

#[test]
fn resp_parser_reads_every_type() {
    let wire: &[u8] = b"+OK\r\n-ERR bad thing\r\n:-42\r\n$3\r\na\r\n\r\n$-1\r\n*-1\r\n*0\r\n\
        _\r\n,3.14\r\n#t\r\n%1\r\n+k\r\n:1\r\n~1\r\n$1\r\nx\r\n=7\r\ntxt:abc\r\n(123456789012345678901\r\n\
        >2\r\n+message\r\n$0\r\n\r\n|1\r\n+ttl\r\n:3\r\n:7\r\n*2\r\n$-1\r\n*1\r\n:5\r\n-ERR k\xfe\r\n";
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a test listener");
    let port = l.local_addr().expect("listener address").port();
    let writer = std::thread::spawn(move || {
        let (mut s, _) = l.accept().expect("accept the test connection");
        std::io::Write::write_all(&mut s, wire).expect("write the canned replies");
    });
    let mut conn = Conn::connect(port);
    let want = [
        Frame::Simple("OK".into()),
        Frame::Error("ERR bad thing".into()),
        Frame::Integer(-42),
        Frame::bulk(b"a\r\n"),
        Frame::Bulk(None),
        Frame::Array(None),
        Frame::Array(Some(vec![])),
        Frame::Null,
        Frame::Double("3.14".into()),
        Frame::Boolean(true),
        Frame::Map(vec![(Frame::Simple("k".into()), Frame::Integer(1))]),
        Frame::Set(vec![Frame::bulk("x")]),
        Frame::Verbatim("txt".into(), b"abc".to_vec()),
        Frame::BigNumber("123456789012345678901".into()),
        Frame::Push(vec![Frame::Simple("message".into()), Frame::bulk("")]),
        Frame::Integer(7), // the attribute before it is dropped
        Frame::Array(Some(vec![
            Frame::Bulk(None),
            Frame::Array(Some(vec![Frame::Integer(5)])),
        ])),
        Frame::Error("ERR k\\xfe".into()), // not UTF-8: the byte is escaped
    ];
    for w in want {
        assert_eq!(conn.read(), w);
    }
    writer.join().expect("writer thread");
}

// ---------------------------------------------------------------------------------------
// Pub/sub scenario
// ---------------------------------------------------------------------------------------

/// Channels and patterns the pub/sub scenario draws from (patterns overlap the channels).
const PS_CHANNELS: &[&str] = &["c0", "c1", "c2", "news.a", "news.b", "x"];
const PS_PATTERNS: &[&str] = &["c*", "news.*", "c[01]", "*", "?", "n*s.?"];
/// Subscriber connections per server; the last one speaks RESP3.
const PS_SUBSCRIBERS: usize = 4;

/// One server's side of the pub/sub scenario: a control connection (PUBLISH, PUBSUB) and
/// the subscribers.
struct PsSide {
    ctl: Conn,
    subs: Vec<Conn>,
}

impl PsSide {
    fn new(port: u16) -> PsSide {
        let mut subs: Vec<Conn> = (0..PS_SUBSCRIBERS).map(|_| Conn::connect(port)).collect();
        let hello = subs[PS_SUBSCRIBERS - 1].cmd(&["HELLO", "3"]);
        assert!(matches!(hello, Frame::Map(_)), "HELLO 3: {hello}");
        PsSide {
            ctl: Conn::connect(port),
            subs,
        }
    }

    /// Sends PING to subscriber `i` and returns what it received before the PING's reply
    /// (the messages published so far: every PUBLISH has returned before).
    fn messages(&mut self, i: usize) -> Vec<Frame> {
        let c = &mut self.subs[i];
        c.send(&["PING"]);
        let mut got = Vec::new();
        loop {
            let f = c.read();
            let pong = match &f {
                Frame::Simple(s) => s == "PONG",
                Frame::Array(Some(v)) => v.first() == Some(&Frame::bulk("pong")),
                _ => false,
            };
            if pong {
                return got;
            }
            got.push(f);
        }
    }
}

/// A message frame's elements, whatever its RESP type.
fn ps_items(f: &Frame) -> Vec<Frame> {
    match f {
        Frame::Array(Some(v)) | Frame::Push(v) => v.clone(),
        other => vec![other.clone()],
    }
}

/// One PUBLISH's deliveries to one subscriber: the channel message first, then the pattern
/// messages in any order (Redis walks its patterns in hash order).
fn ps_canonical(frames: &[Frame]) -> Vec<Frame> {
    let (mut pat, plain): (Vec<Frame>, Vec<Frame>) = frames
        .iter()
        .cloned()
        .partition(|f| ps_items(f).first() == Some(&Frame::bulk("pmessage")));
    pat.sort_by_key(|f| f.to_string());
    plain.into_iter().chain(pat).collect()
}

/// Seeded random SUBSCRIBE/PSUBSCRIBE/UNSUBSCRIBE/PUNSUBSCRIBE on several subscribers (one
/// in RESP3), PUBLISH, PUBSUB NUMSUB/NUMPAT/CHANNELS and a command refused in RESP2
/// subscribed mode, on redis-server and rivet-server alike; every reply and every
/// subscriber's received messages must agree (PUBSUB CHANNELS as a sorted list; the
/// confirmations of an argument-less UNSUBSCRIBE as sorted names and counts).
#[test]
fn pubsub_differential_against_redis() {
    let seeds: Vec<u64> = match (env_u64("DIFF_SEED"), env_u64("DIFF_SEEDS")) {
        (Some(s), _) => vec![s],
        (None, Some(n)) => (1..=n).collect(),
        (None, None) => vec![1, 2, 3],
    };
    let ops = env_u64("DIFF_OPS").unwrap_or(4000) / 10;
    let Some(reference) = redis_or_skip("pub/sub differential test") else {
        return;
    };
    let target = RivetServer::start(&["--no-sync"]);
    for seed in seeds {
        let mut rng = Rng(seed);
        let mut sides = [PsSide::new(reference.port()), PsSide::new(target.port())];
        // What each subscriber is subscribed to (the same on both sides while they agree).
        let mut model: Vec<[BTreeSet<&str>; 2]> = vec![Default::default(); PS_SUBSCRIBERS];
        for op in 0..ops {
            let ctx = |what: &str| format!("seed {seed}, op {op}: {what}");
            match rng.below(10) {
                0..=3 => {
                    let i = rng.below(PS_SUBSCRIBERS as u64) as usize;
                    let pattern = rng.chance(50);
                    let sub = rng.chance(55);
                    let pool = if pattern { PS_PATTERNS } else { PS_CHANNELS };
                    let n = if sub {
                        rng.range(1, 3)
                    } else {
                        rng.range(0, 2)
                    } as usize;
                    let names: Vec<&str> = (0..n).map(|_| rng.pick(pool)).collect();
                    let cmd = match (pattern, sub) {
                        (false, true) => "SUBSCRIBE",
                        (false, false) => "UNSUBSCRIBE",
                        (true, true) => "PSUBSCRIBE",
                        (true, false) => "PUNSUBSCRIBE",
                    };
                    let set = &mut model[i][pattern as usize];
                    let replies = if names.is_empty() {
                        set.len().max(1)
                    } else {
                        names.len()
                    };
                    for n in &names {
                        if sub {
                            set.insert(n);
                        } else {
                            set.remove(n);
                        }
                    }
                    if names.is_empty() {
                        set.clear();
                    }
                    let args: Vec<&str> =
                        std::iter::once(cmd).chain(names.iter().copied()).collect();
                    let got: Vec<Vec<Frame>> = sides
                        .iter_mut()
                        .map(|s| {
                            s.subs[i].send(&args);
                            (0..replies).map(|_| s.subs[i].read()).collect()
                        })
                        .collect();
                    let norm = |v: &[Frame]| -> Vec<Vec<Frame>> {
                        let mut v: Vec<Vec<Frame>> = v.iter().map(ps_items).collect();
                        if names.is_empty() {
                            // Redis unsubscribes in hash order: compare names and counts
                            // as sorted lists.
                            let mut counts: Vec<Frame> =
                                v.iter().filter_map(|x| x.get(2).cloned()).collect();
                            counts.sort_by_key(|f| f.to_string());
                            for x in v.iter_mut() {
                                x.truncate(2);
                            }
                            v.sort_by_key(|x| format!("{x:?}"));
                            v.push(counts);
                        }
                        v
                    };
                    assert_eq!(
                        norm(&got[0]),
                        norm(&got[1]),
                        "{}",
                        ctx(&format!("subscriber {i}: {args:?}"))
                    );
                }
                4..=6 => {
                    let chan = rng.pick(PS_CHANNELS);
                    let payload = format!("m{op}");
                    let r: Vec<Frame> = sides
                        .iter_mut()
                        .map(|s| s.ctl.cmd(&["PUBLISH", chan, &payload]))
                        .collect();
                    assert_eq!(r[0], r[1], "{}", ctx(&format!("PUBLISH {chan}")));
                    for i in 0..PS_SUBSCRIBERS {
                        let a = ps_canonical(&sides[0].messages(i));
                        let b = ps_canonical(&sides[1].messages(i));
                        assert_eq!(
                            a,
                            b,
                            "{}",
                            ctx(&format!("subscriber {i} after PUBLISH {chan}"))
                        );
                    }
                }
                7 => {
                    let mut args = vec!["PUBSUB", "NUMSUB"];
                    for _ in 0..rng.below(4) {
                        args.push(rng.pick(PS_CHANNELS));
                    }
                    if rng.chance(30) {
                        args = vec!["PUBSUB", "NUMPAT"];
                    }
                    let r: Vec<Frame> = sides.iter_mut().map(|s| s.ctl.cmd(&args)).collect();
                    assert_eq!(r[0], r[1], "{}", ctx(&format!("{args:?}")));
                }
                8 => {
                    let mut args = vec!["PUBSUB", "CHANNELS"];
                    if rng.chance(60) {
                        args.push(rng.pick(PS_PATTERNS));
                    }
                    let r: Vec<Frame> = sides
                        .iter_mut()
                        .map(|s| match s.ctl.cmd(&args) {
                            Frame::Array(Some(v)) => Frame::Array(Some(sorted(&v))),
                            other => other,
                        })
                        .collect();
                    assert_eq!(r[0], r[1], "{}", ctx(&format!("{args:?}")));
                }
                _ => {
                    // Refused in RESP2 subscribed mode, allowed otherwise and in RESP3.
                    let i = rng.below(PS_SUBSCRIBERS as u64) as usize;
                    let r: Vec<Frame> = sides
                        .iter_mut()
                        .map(|s| s.subs[i].cmd(&["ECHO", "hi"]))
                        .collect();
                    assert_eq!(r[0], r[1], "{}", ctx(&format!("ECHO on subscriber {i}")));
                }
            }
        }
        println!("pubsub differential: seed {seed}: {ops} ops agree");
    }
    stop_and_check(target);
}

/// Commands whose keyspace notifications the keyspace-events scenario compares (one
/// command per string, split on spaces; deterministic: no random pops).
const KS_COMMANDS: &[&str] = &[
    "set k v",
    "set k v2 EX 100",
    "setnx k v",
    "setnx k2 v",
    "getset k v3",
    "getdel k2",
    "mset a 1 b 2",
    "msetnx c 1 d 2",
    "incr a",
    "incrby a 3",
    "decr a",
    "incrbyfloat a 1.5",
    "append a x",
    "setrange a 0 zz",
    "setbit bits 3 1",
    "getex k EX 50",
    "getex k PERSIST",
    "expire k 100",
    "persist k",
    "pexpire k 100000",
    "expire k -1",
    "del a b nosuch",
    "lpush l a b c",
    "rpush l d",
    "lpushx nol a",
    "linsert l BEFORE a x",
    "lset l 0 y",
    "lrem l 1 y",
    "ltrim l 0 1",
    "lpop l",
    "rpop l",
    "rpop l",
    "rpush l a b",
    "rpoplpush l l2",
    "lmove l l2 LEFT RIGHT",
    "sadd s a b c",
    "sadd s a",
    "srem s x",
    "srem s a",
    "srem s b",
    "smove s s2 c",
    "sadd s a",
    "sinterstore s3 s s2",
    "sinterstore s3 nosuch s2",
    "sunionstore s4 s s2",
    "hset h a 1 b 2",
    "hset h a 1",
    "hsetnx h a 2",
    "hsetnx h c 3",
    "hincrby h a 5",
    "hincrbyfloat h a 1.5",
    "hdel h a x",
    "hdel h b c",
    "zadd z 1 a 2 b",
    "zadd z 1 a",
    "zadd z INCR 5 a",
    "zincrby z 1 b",
    "zrem z x",
    "zrem z a",
    "zadd z 1 a 3 c 4 d",
    "zremrangebyscore z 0 1",
    "zremrangebyrank z 0 0",
    "zpopmin z",
    "zpopmax z",
    "zadd z 1 a 2 b",
    "zunionstore z2 1 z",
    "zinterstore z3 2 z nosuch",
    "rename z2 z4",
    "renamenx z4 z",
    "copy z4 z5",
    "move z5 1",
    "set k v",
    "del k",
    "getex k PERSIST",
    "set e 1",
    "pexpire e 0",
    "set big x",
    "setex sx 100 v",
    "psetex px 100000 v",
    "sort l2 STORE sorted",
    "sort nosuch STORE sorted",
    "lpush l9 c b a",
    "blpop l9 0",
    "brpop l9 0",
    "lmpop 1 l9 LEFT",
    "zadd z9 1 a 2 b 3 c",
    "zmpop 1 z9 MIN",
    "bzpopmax z9 0",
    "zadd zl 0 a 0 b 0 c",
    "zremrangebylex zl [a [b",
    "zrangestore zr zl 0 -1",
    "zdiffstore zd 1 zl",
    "sdiffstore sd s nosuch",
    "bitop or bo bits bits",
    "hset h2 f v",
    "hdel h2 f",
    "set n1 1",
    "incrbyfloat n1 2",
    "unlink n1",
    "setrange sr 0 abc",
    "append ap x",
    "del nosuchkey",
    "lpush tk a",
    "set tk v",
    "set a 1",
    "set b 2",
    "rename a b",
    "sadd sa x",
    "copy b sa REPLACE",
    "hset h f 1",
    "set h v XX",
    "set h v GET",
    "lpush l1 a",
    "lpush l2 b",
    "rpoplpush l1 l2",
    "lmove l2 l2 LEFT RIGHT",
    "sadd s1 a",
    "smove s1 s1 a",
    "smove s1 s2 a",
    "zadd z 1 a",
    "zunionstore z 1 nosuch",
    "sinterstore nosuch2 nosuch",
    "expireat b 1",
    "set x 1",
    "pexpireat x 1",
    "set y 1 KEEPTTL",
    "set y 2 EX 100",
    "set y 3 KEEPTTL",
    "getex y",
    "mset y 1 y 2",
    "incr y",
    "hincrby hh f 1",
    "hincrby hh f 1",
    // Streams and their consumer groups (Redis's unit/pubsub "stream events" sequence, and
    // the events a consumer created implicitly or deleted gives).
    "xgroup create st g $ MKSTREAM",
    "xgroup createconsumer st g Bob",
    "xgroup createconsumer st g Bob",
    "xadd st 1-1 f A",
    "xreadgroup GROUP g Alice STREAMS st >",
    "xclaim st g Mike 0 1-1 FORCE",
    "xgroup delconsumer st g Lee",
    "xautoclaim st g Bob 0 1-1",
    "xgroup delconsumer st g Bob",
    "xgroup setid st g 0",
    "xdel st 1-1",
    "xtrim st MAXLEN 0",
    "xsetid st 5-0",
    "xgroup destroy st g",
    "xgroup destroy st g",
];

/// Runs [`KS_COMMANDS`] with `notify-keyspace-events KEAn` on one server and returns every
/// notification as (command, channel, payload), a PING on the subscriber marking the end of
/// each command's.
fn keyspace_events(port: u16) -> Vec<(String, String, String)> {
    let mut c = Conn::connect(port);
    let mut sub = Conn::connect(port);
    assert_eq!(c.cmd(&["FLUSHALL"]), Frame::Simple("OK".into()));
    let set = c.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KEAn"]);
    assert_eq!(set, Frame::Simple("OK".into()));
    sub.send(&["PSUBSCRIBE", "__key*"]);
    sub.read();
    let text = |f: &Frame| match f {
        Frame::Bulk(Some(b)) => String::from_utf8_lossy(b).to_string(),
        other => other.to_string(),
    };
    let mut events = Vec::new();
    for line in KS_COMMANDS {
        let args: Vec<&str> = line.split(' ').collect();
        c.cmd(&args);
        sub.send(&["PING"]);
        loop {
            let f = sub.read();
            let Frame::Array(Some(v)) = &f else {
                panic!("{line}: unexpected {f}");
            };
            if v.len() != 4 {
                break;
            }
            events.push((line.to_string(), text(&v[2]), text(&v[3])));
        }
    }
    c.cmd(&["CONFIG", "SET", "notify-keyspace-events", ""]);
    events
}

/// Keyspace notifications (`__keyspace@<db>__:` and `__keyevent@<db>__:` channels, every
/// class and `new`) of a fixed list of commands, in order, on redis-server and rivet-server.
#[test]
fn keyspace_events_differential_against_redis() {
    let Some(reference) = redis_or_skip("keyspace events differential test") else {
        return;
    };
    let target = RivetServer::start(&["--no-sync"]);
    let want = keyspace_events(reference.port());
    let got = keyspace_events(target.port());
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        assert_eq!(w, g, "notification {i}");
    }
    assert_eq!(want.len(), got.len(), "number of notifications");
    stop_and_check(target);
}
