//! Runtime configuration: the parameters CONFIG GET/SET know, their defaults and checks, and
//! a Redis-style config file reader (`name value` per line, `#` comments).
//!
//! Parameters that change behaviour (limits, password, timeouts) are kept in atomics read on
//! the hot path; the rest are accepted and reported so that clients and the Redis test suite
//! that set them keep working, with no effect on a server that has no such knob.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::RwLock;

/// How a parameter's value is checked.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// An integer (memory units like `1gb` allowed) within bounds.
    Int { min: i64, max: i64, memory: bool },
    /// `yes` or `no`.
    Bool,
    /// Any string.
    Text,
    /// One of a few words.
    Enum(&'static [&'static str]),
    /// `notify-keyspace-events` flags (see [`crate::notify`]).
    Events,
    /// `client-output-buffer-limit`: `class hard soft seconds` groups.
    BufferLimits,
}

/// One known parameter.
struct Param {
    name: &'static str,
    default: &'static str,
    kind: Kind,
    /// False for parameters that can only be set at start-up.
    mutable: bool,
}

const fn param(name: &'static str, default: &'static str, kind: Kind, mutable: bool) -> Param {
    Param {
        name,
        default,
        kind,
        mutable,
    }
}

const fn int(name: &'static str, default: &'static str, min: i64, max: i64) -> Param {
    param(
        name,
        default,
        Kind::Int {
            min,
            max,
            memory: false,
        },
        true,
    )
}

const fn mem(name: &'static str, default: &'static str, min: i64, max: i64) -> Param {
    param(
        name,
        default,
        Kind::Int {
            min,
            max,
            memory: true,
        },
        true,
    )
}

const fn flag(name: &'static str, default: &'static str) -> Param {
    param(name, default, Kind::Bool, true)
}

const fn text(name: &'static str, default: &'static str) -> Param {
    param(name, default, Kind::Text, true)
}

const fn fixed(name: &'static str, default: &'static str) -> Param {
    param(name, default, Kind::Text, false)
}

const fn fixed_int(name: &'static str, default: &'static str, min: i64, max: i64) -> Param {
    param(
        name,
        default,
        Kind::Int {
            min,
            max,
            memory: false,
        },
        false,
    )
}

/// Redis directives a config file may carry that have no effect here (persistence, replication,
/// cluster, TLS, allocator and process settings of Redis itself): accepted with a warning, so
/// an existing redis.conf can be used as it is.
const IGNORED: &[&str] = &[
    "tcp-backlog",
    "pidfile",
    "logfile",
    "supervised",
    "always-show-logo",
    "set-proc-title",
    "proc-title-template",
    "disable-thp",
    "jemalloc-bg-thread",
    "oom-score-adj-values",
    "dynamic-hz",
    "aof-load-truncated",
    "aof-rewrite-incremental-fsync",
    "aof-timestamp-enabled",
    "aof-use-rdb-preamble",
    "auto-aof-rewrite-min-size",
    "auto-aof-rewrite-percentage",
    "no-appendfsync-on-rewrite",
    "rdb-del-sync-files",
    "rdb-save-incremental-fsync",
    "repl-disable-tcp-nodelay",
    "repl-diskless-load",
    "repl-diskless-sync",
    "repl-diskless-sync-delay",
    "repl-diskless-sync-max-replicas",
    "repl-backlog-size",
    "repl-backlog-ttl",
    "repl-ping-replica-period",
    "repl-timeout",
    "replica-lazy-flush",
    "replica-priority",
    "replica-serve-stale-data",
    "replica-announced",
    "replica-ignore-disk-write-errors",
    "replica-ignore-maxmemory",
    "acllog-max-len",
    "hll-sparse-max-bytes",
    "syslog-enabled",
    "syslog-ident",
    "syslog-facility",
    "shutdown-on-sigint",
    "shutdown-on-sigterm",
    "shutdown-timeout",
    "sanitize-dump-payload",
    "lfu-log-factor",
    "lfu-decay-time",
    "active-defrag-ignore-bytes",
    "active-defrag-threshold-lower",
    "active-defrag-threshold-upper",
    "active-defrag-cycle-min",
    "active-defrag-cycle-max",
    "active-defrag-max-scan-fields",
    "maxmemory-clients",
    "maxmemory-eviction-tenacity",
    "crash-memcheck-enabled",
    "enable-protected-configs",
    "enable-module-command",
    "latency-tracking",
    "latency-tracking-info-percentiles",
    "propagation-error-behavior",
    "ignore-warnings",
    "socket-mark-id",
    "bind-source-addr",
    "acl-pubsub-default",
    "min-replicas-max-lag",
    "daemonize",
];

/// Directives that would change what the server does in ways it cannot honour: refused unless
/// they carry the given harmless value.
const REFUSED: &[(&str, &str)] = &[
    ("unixsocket", ""),
    ("tls-port", "0"),
    ("cluster-enabled", "no"),
];

const MAX: i64 = i64::MAX;

/// Every parameter CONFIG knows.
static PARAMS: &[Param] = &[
    mem("proto-max-bulk-len", "536870912", 1024 * 1024, MAX),
    mem("client-query-buffer-limit", "1073741824", 1024 * 1024, MAX),
    int("maxclients", "10000", 1, 1_000_000),
    int("timeout", "0", 0, i32::MAX as i64),
    text("requirepass", ""),
    fixed_int("databases", "16", 1, 255),
    fixed_int("port", "6379", 0, 65535),
    fixed("bind", "127.0.0.1"),
    fixed("dbfilename", "rivet-server.db"),
    fixed("dir", "."),
    Param {
        name: "loglevel",
        default: "notice",
        kind: Kind::Enum(&["debug", "verbose", "notice", "warning", "nothing"]),
        mutable: true,
    },
    Param {
        name: "appendfsync",
        default: "always",
        kind: Kind::Enum(&["always", "everysec", "no"]),
        mutable: true,
    },
    flag("appendonly", "no"),
    text("save", ""),
    mem("maxmemory", "0", 0, MAX),
    Param {
        name: "maxmemory-policy",
        default: "noeviction",
        kind: Kind::Enum(&[
            "volatile-lru",
            "volatile-lfu",
            "volatile-random",
            "volatile-ttl",
            "allkeys-lru",
            "allkeys-lfu",
            "allkeys-random",
            "noeviction",
        ]),
        mutable: true,
    },
    int("maxmemory-samples", "5", 1, MAX),
    int("lua-time-limit", "5000", 0, MAX),
    int("busy-reply-threshold", "5000", 0, MAX),
    param("notify-keyspace-events", "", Kind::Events, true),
    int("hz", "10", 1, 500),
    int("slowlog-log-slower-than", "10000", -1, MAX),
    int("slowlog-max-len", "128", 0, MAX),
    int("latency-monitor-threshold", "0", 0, MAX),
    int("list-max-ziplist-size", "-2", i64::MIN, MAX),
    int("list-max-listpack-size", "-2", i64::MIN, MAX),
    int("list-compress-depth", "0", 0, MAX),
    int("hash-max-ziplist-entries", "128", 0, MAX),
    int("hash-max-ziplist-value", "64", 0, MAX),
    int("hash-max-listpack-entries", "128", 0, MAX),
    int("hash-max-listpack-value", "64", 0, MAX),
    int("set-max-intset-entries", "512", 0, MAX),
    int("zset-max-ziplist-entries", "128", 0, MAX),
    int("zset-max-ziplist-value", "64", 0, MAX),
    int("zset-max-listpack-entries", "128", 0, MAX),
    int("zset-max-listpack-value", "64", 0, MAX),
    int("stream-node-max-bytes", "4096", 0, MAX),
    int("stream-node-max-entries", "100", 0, MAX),
    flag("lazyfree-lazy-eviction", "no"),
    flag("lazyfree-lazy-expire", "no"),
    flag("lazyfree-lazy-server-del", "no"),
    flag("lazyfree-lazy-user-del", "no"),
    flag("lazyfree-lazy-user-flush", "no"),
    flag("activerehashing", "yes"),
    flag("activedefrag", "no"),
    param(
        "client-output-buffer-limit",
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
        Kind::BufferLimits,
        true,
    ),
    int("tcp-keepalive", "300", 0, MAX),
    int("active-expire-effort", "1", 1, 10),
    flag("protected-mode", "no"),
    flag("enable-debug-command", "yes"),
    int("min-replicas-to-write", "0", 0, MAX),
    int("repl-min-slaves-to-write", "0", 0, MAX),
    text("replica-read-only", "yes"),
    text("appenddirname", "appendonlydir"),
    text("appendfilename", "appendonly.aof"),
    flag("rdbcompression", "yes"),
    flag("rdbchecksum", "yes"),
    flag("stop-writes-on-bgsave-error", "yes"),
    flag("crash-log-enabled", "yes"),
    text("oom-score-adj", "no"),
    int("io-threads", "1", 1, 128),
    flag("io-threads-do-reads", "no"),
    flag("cluster-enabled", "no"),
    text("unixsocket", ""),
    int("tls-port", "0", 0, 65535),
    int("tracking-table-max-keys", "1000000", 0, MAX),
];

/// The live configuration.
pub struct Config {
    /// The config file the server was started with, if any (INFO's `config_file`).
    pub file: std::sync::OnceLock<std::path::PathBuf>,
    values: RwLock<BTreeMap<&'static str, String>>,
    proto_max_bulk_len: AtomicI64,
    query_buffer_limit: AtomicU64,
    maxclients: AtomicU64,
    timeout: AtomicU64,
    has_password: AtomicBool,
    notify_flags: AtomicU32,
    pubsub_limit: [AtomicU64; 3],
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Config")
    }
}

impl Default for Config {
    fn default() -> Config {
        let values = PARAMS
            .iter()
            .map(|p| (p.name, p.default.to_string()))
            .collect();
        Config {
            file: std::sync::OnceLock::new(),
            values: RwLock::new(values),
            proto_max_bulk_len: AtomicI64::new(512 * 1024 * 1024),
            query_buffer_limit: AtomicU64::new(1024 * 1024 * 1024),
            maxclients: AtomicU64::new(10000),
            timeout: AtomicU64::new(0),
            has_password: AtomicBool::new(false),
            notify_flags: AtomicU32::new(0),
            pubsub_limit: [
                AtomicU64::new(32 << 20),
                AtomicU64::new(8 << 20),
                AtomicU64::new(60),
            ],
        }
    }
}

/// Applies `client-output-buffer-limit` groups (`class hard soft seconds`, sizes with
/// memory units) to the `current` value; the result lists every class in Redis's order.
fn merge_buffer_limits(current: &str, value: &str) -> Result<String, String> {
    let classes = ["normal", "slave", "pubsub"];
    let mut limits: Vec<[u64; 3]> = vec![[0; 3]; 3];
    let cur: Vec<&str> = current.split_whitespace().collect();
    for g in cur.chunks(4) {
        if let Some(i) = classes.iter().position(|c| Some(c) == g.first()) {
            for (j, l) in limits[i].iter_mut().enumerate() {
                *l = g.get(j + 1).and_then(|v| v.parse().ok()).unwrap_or(0);
            }
        }
    }
    let w: Vec<&str> = value.split_whitespace().collect();
    if w.is_empty() || !w.len().is_multiple_of(4) {
        return Err("Wrong number of arguments in buffer limit configuration.".into());
    }
    for g in w.chunks(4) {
        let class = match g[0].to_ascii_lowercase().as_str() {
            "normal" => 0,
            "slave" | "replica" => 1,
            "pubsub" => 2,
            _ => {
                return Err("Invalid client class specified in buffer limit configuration.".into())
            }
        };
        let hard = parse_memory(g[1]).filter(|n| *n >= 0);
        let soft = parse_memory(g[2]).filter(|n| *n >= 0);
        let secs = g[3].parse::<i64>().ok().filter(|n| *n >= 0);
        let (Some(h), Some(s), Some(t)) = (hard, soft, secs) else {
            return Err(
                "Error in hard, soft or soft_seconds setting in buffer limit configuration.".into(),
            );
        };
        limits[class] = [h as u64, s as u64, t as u64];
    }
    Ok(classes
        .iter()
        .zip(&limits)
        .map(|(c, l)| format!("{c} {} {} {}", l[0], l[1], l[2]))
        .collect::<Vec<_>>()
        .join(" "))
}

/// Parses `123`, `1k`, `1kb`, `2mb`, `1gb` (Redis's `memtoull`: k = 1000, kb = 1024...).
pub fn parse_memory(s: &str) -> Option<i64> {
    let l = s.to_ascii_lowercase();
    let units: [(&str, i64); 6] = [
        ("gb", 1 << 30),
        ("mb", 1 << 20),
        ("kb", 1 << 10),
        ("g", 1_000_000_000),
        ("m", 1_000_000),
        ("k", 1000),
    ];
    for (suffix, mul) in units {
        if let Some(n) = l.strip_suffix(suffix) {
            return n.parse::<i64>().ok()?.checked_mul(mul);
        }
    }
    if let Some(n) = l.strip_suffix('b') {
        return n.parse().ok();
    }
    l.parse().ok()
}

impl Config {
    /// `proto-max-bulk-len` in bytes.
    pub fn proto_max_bulk_len(&self) -> i64 {
        self.proto_max_bulk_len.load(Ordering::Relaxed)
    }

    /// `client-query-buffer-limit` in bytes.
    pub fn query_buffer_limit(&self) -> u64 {
        self.query_buffer_limit.load(Ordering::Relaxed)
    }

    /// `maxclients`.
    pub fn maxclients(&self) -> u64 {
        self.maxclients.load(Ordering::Relaxed)
    }

    /// `timeout`: idle seconds before a client is closed (0 = never).
    pub fn timeout(&self) -> u64 {
        self.timeout.load(Ordering::Relaxed)
    }

    /// `notify-keyspace-events` as flag bits ([`crate::notify`]); 0 when off.
    pub fn notify_flags(&self) -> u32 {
        self.notify_flags.load(Ordering::Relaxed)
    }

    /// The `pubsub` class of `client-output-buffer-limit`.
    pub fn pubsub_limit(&self) -> crate::pubsub::BufferLimit {
        let g = |i: usize| self.pubsub_limit[i].load(Ordering::Relaxed);
        crate::pubsub::BufferLimit {
            hard: g(0),
            soft: g(1),
            soft_secs: g(2),
        }
    }

    /// The password, if `requirepass` is set.
    pub fn requirepass(&self) -> Option<String> {
        if !self.has_password.load(Ordering::Relaxed) {
            return None;
        }
        self.get("requirepass").filter(|p| !p.is_empty())
    }

    /// The current value of a parameter.
    pub fn get(&self, name: &str) -> Option<String> {
        self.values
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Every (name, value) whose name matches the glob `pattern` (CONFIG GET).
    pub fn matching(&self, pattern: &[u8]) -> Vec<(String, String)> {
        self.values
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(k, _)| crate::glob::matches(pattern, k.as_bytes(), true))
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    /// Checks `value` for `name`; returns the canonical name and value, or the reason.
    pub fn check(
        &self,
        name: &str,
        value: &str,
        startup: bool,
    ) -> Result<(&'static str, String), String> {
        let lname = name.to_ascii_lowercase();
        let Some(p) = PARAMS.iter().find(|p| p.name == lname) else {
            return Err("unknown".into());
        };
        if !p.mutable && !startup {
            return Err("can't set immutable config".into());
        }
        let v = match p.kind {
            Kind::Int { min, max, memory } => {
                let n = if memory {
                    parse_memory(value)
                } else {
                    value.parse::<i64>().ok()
                };
                let Some(n) = n else {
                    return Err("argument couldn't be parsed into an integer".into());
                };
                if n < min || n > max {
                    return Err(format!(
                        "argument must be between {min} and {max} inclusive"
                    ));
                }
                n.to_string()
            }
            Kind::Bool => match value.to_ascii_lowercase().as_str() {
                "yes" => "yes".into(),
                "no" => "no".into(),
                _ => return Err("argument must be 'yes' or 'no'".into()),
            },
            Kind::Enum(words) => {
                let l = value.to_ascii_lowercase();
                if !words.contains(&l.as_str()) {
                    return Err("argument(s) must be one of the following: ".to_string()
                        + &words.join(", "));
                }
                l
            }
            Kind::Text => value.to_string(),
            // Kept as given: `apply` stores the flags (CONFIG GET's canonical form drops
            // `n` next to `A`; the flags keep it, as in Redis).
            Kind::Events => match crate::notify::parse_flags(value) {
                Some(_) => value.to_string(),
                None => return Err("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".into()),
            },
            Kind::BufferLimits => {
                let current = self.get(p.name).unwrap_or_else(|| p.default.to_string());
                merge_buffer_limits(&current, value)?
            }
        };
        Ok((p.name, v))
    }

    /// Stores a checked value and updates the fast-path copies.
    pub fn apply(&self, name: &'static str, value: String) {
        let n: i64 = value.parse().unwrap_or(0);
        match name {
            "proto-max-bulk-len" => self.proto_max_bulk_len.store(n, Ordering::Relaxed),
            "client-query-buffer-limit" => {
                self.query_buffer_limit.store(n as u64, Ordering::Relaxed)
            }
            "maxclients" => self.maxclients.store(n as u64, Ordering::Relaxed),
            "timeout" => self.timeout.store(n as u64, Ordering::Relaxed),
            "requirepass" => self
                .has_password
                .store(!value.is_empty(), Ordering::Relaxed),
            "notify-keyspace-events" => {
                let flags = crate::notify::parse_flags(&value).unwrap_or(0);
                self.notify_flags.store(flags, Ordering::Relaxed);
                let mut values = self.values.write().unwrap_or_else(|e| e.into_inner());
                values.insert(name, crate::notify::flags_string(flags));
                return;
            }
            "client-output-buffer-limit" => {
                let w: Vec<&str> = value.split_whitespace().collect();
                if let Some(i) = w.iter().position(|c| *c == "pubsub") {
                    for j in 0..3 {
                        let n = w.get(i + 1 + j).and_then(|v| v.parse().ok()).unwrap_or(0);
                        self.pubsub_limit[j].store(n, Ordering::Relaxed);
                    }
                }
            }
            _ => {}
        }
        let mut values = self.values.write().unwrap_or_else(|e| e.into_inner());
        // `lua-time-limit` is the old name of `busy-reply-threshold` (Redis 7.0 aliases them).
        match name {
            "lua-time-limit" => {
                values.insert("busy-reply-threshold", value.clone());
            }
            "busy-reply-threshold" => {
                values.insert("lua-time-limit", value.clone());
            }
            _ => {}
        }
        values.insert(name, value);
    }

    /// Sets a start-up value (flags and config file), allowing immutable parameters.
    pub fn set_startup(&self, name: &str, value: &str) -> Result<(), String> {
        let (n, v) = self.check(name, value, true)?;
        self.apply(n, v);
        Ok(())
    }

    /// Reads a Redis-style config file: one `name value...` per line, `#` comments, quoted
    /// values allowed. Redis directives with no effect here are accepted with a warning (see
    /// `IGNORED`); unknown names, missing values, bad values and directives this server
    /// cannot honour are errors naming the line.
    /// Returns the lines that were ignored, for the caller to log.
    pub fn load_file(&self, path: &std::path::Path) -> Result<Vec<String>, String> {
        let mut ignored = Vec::new();
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for (i, line) in text.lines().enumerate() {
            let at = format!("{}:{}", path.display(), i + 1);
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some(words) = crate::resp::parse::split_args(line.as_bytes()) else {
                return Err(format!("{at}: unbalanced quotes"));
            };
            let name = String::from_utf8_lossy(&words[0]).to_ascii_lowercase();
            if words.len() < 2 {
                return Err(format!("{at}: '{name}' needs a value"));
            }
            let value = words[1..]
                .iter()
                .map(|w| String::from_utf8_lossy(w).to_string())
                .collect::<Vec<_>>()
                .join(" ");
            if let Some((_, ok)) = REFUSED.iter().find(|(n, _)| *n == name) {
                if !value.eq_ignore_ascii_case(ok) {
                    return Err(format!(
                        "{at}: '{name} {value}' is not supported by rivet-server"
                    ));
                }
            }
            if ["include", "loadmodule", "rename-command", "user", "aclfile"]
                .contains(&name.as_str())
            {
                return Err(format!("{at}: '{name}' is not supported by rivet-server"));
            }
            if IGNORED.contains(&name.as_str()) {
                ignored.push(format!(
                    "{at}: '{name}' ignored (no effect in rivet-server)"
                ));
                continue;
            }
            self.set_startup(&name, &value)
                .map_err(|e| format!("{at}: '{name}': {e}"))?;
        }
        let _ = self.file.set(path.to_path_buf());
        Ok(ignored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("1gb"), Some(1 << 30));
        assert_eq!(parse_memory("10k"), Some(10_000));
        assert_eq!(parse_memory("512"), Some(512));
        assert_eq!(parse_memory("x"), None);
    }

    fn load(text: &str) -> Result<(Config, Vec<String>), String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("redis.conf");
        std::fs::write(&path, text).expect("write config");
        let c = Config::default();
        let ignored = c.load_file(&path)?;
        Ok((c, ignored))
    }

    #[test]
    fn config_files_like_redis_conf() {
        let (c, ignored) = load(
            "# comment\nport 7000\ndaemonize yes\ntcp-backlog 511\nsave 3600 1\ndir /var/lib/x\ndbfilename data.rdb\nclient-output-buffer-limit normal 0 0 0\nrequirepass \"s3 cret\"\n",
        )
        .expect("a redis.conf-style file loads");
        assert_eq!(c.get("port").as_deref(), Some("7000"));
        assert_eq!(c.get("dir").as_deref(), Some("/var/lib/x"));
        assert_eq!(c.get("dbfilename").as_deref(), Some("data.rdb"));
        assert_eq!(c.requirepass().as_deref(), Some("s3 cret"));
        assert_eq!(ignored.len(), 2, "{ignored:?}");
        let e = |t: &str| load(t).map(|_| ()).expect_err("must be refused");
        assert!(e("port abc\n").contains("redis.conf:1: 'port'"));
        assert!(e("\n\nrequirepass\n").contains("redis.conf:3: 'requirepass' needs a value"));
        assert!(e("unixsocket /tmp/r.sock\n").contains("not supported"));
        assert!(e("include other.conf\n").contains("not supported"));
        assert!(e("no-such-directive 1\n").contains("unknown"));
        assert!(e("databases 0\n").contains("databases"));
    }

    #[test]
    fn set_and_get() {
        let c = Config::default();
        let (n, v) = c.check("PROTO-MAX-BULK-LEN", "2mb", false).unwrap();
        c.apply(n, v);
        assert_eq!(c.proto_max_bulk_len(), 2 << 20);
        assert!(c.check("nope", "1", false).is_err());
        assert!(c.check("port", "1", false).is_err());
        assert!(c.check("maxclients", "abc", false).is_err());
    }
}
