//! Server-wide state shared by connections and the writer: configuration, the store, the
//! writer's queue, connected clients, WATCH registrations and statistics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::config::Config;
use crate::store::Store;
use crate::writer::WriterHandle;

/// Time since the Unix epoch (zero if the clock is before it).
pub fn unix_now() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// Unix time in milliseconds: the clock every expiry decision uses.
pub fn now_ms() -> i64 {
    unix_now().as_millis() as i64
}

/// Locks a mutex, ignoring poisoning (the protected data stays consistent across panics:
/// every critical section is a single insert, remove or counter update).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counters reported by INFO. All are totals since start-up unless named otherwise.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted.
    pub connections_received: AtomicU64,
    /// Clients parked by blocking commands (INFO's `blocked_clients`).
    pub blocked_clients: AtomicU64,
    /// Connections refused by `maxclients`.
    pub rejected_connections: AtomicU64,
    /// Commands processed.
    pub commands_processed: AtomicU64,
    /// Write transactions committed by the writer.
    pub commits: AtomicU64,
    /// Commits that synced to stable storage (0 under `--no-sync`).
    pub fsyncs: AtomicU64,
    /// Write commands carried by those commits.
    pub writes_committed: AtomicU64,
    /// Sum of commit latencies, in microseconds.
    pub commit_usec_total: AtomicU64,
    /// Longest commit, in microseconds.
    pub commit_usec_max: AtomicU64,
    /// Keys removed by expiry (lazy or active).
    pub expired_keys: AtomicU64,
    /// Key changes since the last SAVE/BGSAVE (Redis's `rdb_changes_since_last_save`).
    pub dirty: AtomicU64,
    /// Unix time of the last successful SAVE/BGSAVE (start-up time initially).
    pub lastsave: AtomicU64,
    /// Bytes the last (or running) online compaction gave back to the file system.
    pub compaction_bytes_returned: AtomicU64,
    /// Online compactions finished, and whether the last one failed.
    pub compactions: AtomicU64,
    /// Whether the last online compaction failed (INFO's `aof_last_bgrewrite_status`).
    pub compaction_failed: AtomicBool,
    /// Error replies sent.
    pub error_replies: AtomicU64,
    /// Error replies sent by error code (the first word of the message; INFO errorstats).
    pub error_codes: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    /// Keyspace lookups that found a key / did not (GET-like commands).
    pub keyspace_hits: AtomicU64,
    /// See `keyspace_hits`.
    pub keyspace_misses: AtomicU64,
    /// Bytes read from clients.
    pub net_input_bytes: AtomicU64,
    /// Bytes written to clients.
    pub net_output_bytes: AtomicU64,
}

/// Distinct error codes INFO errorstats keeps (Redis's limit too); later codes are counted
/// in `error_replies` only.
const MAX_ERROR_CODES: usize = 128;

impl Stats {
    /// Counts the error replies in a reply sent to a client, nested ones included (an EXEC
    /// whose commands failed), as Redis counts them.
    pub fn count_reply_errors(&self, r: &crate::resp::Reply) {
        use crate::resp::Reply;
        match r {
            Reply::Error(e) => self.count_error(e),
            Reply::Array(v) | Reply::Set(v) => v.iter().for_each(|x| self.count_reply_errors(x)),
            Reply::Map(v) => v.iter().for_each(|(k, x)| {
                self.count_reply_errors(k);
                self.count_reply_errors(x);
            }),
            _ => {}
        }
    }

    /// Counts an error reply sent to a client: `error_replies` and the per-code count (the
    /// code is the first word of `message`, as Redis's errorstats).
    pub fn count_error(&self, message: &str) {
        self.error_replies.fetch_add(1, Ordering::Relaxed);
        let code = message.split(' ').next().unwrap_or("");
        let code = if code.is_empty() { "ERR" } else { code };
        let mut codes = self.error_codes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = codes.get_mut(code) {
            *n += 1;
        } else if codes.len() < MAX_ERROR_CODES {
            codes.insert(code.to_string(), 1);
        }
    }
}

/// Per-command counters for INFO commandstats: one slot per command-table entry, updated
/// with relaxed atomics (no lock or allocation on the command path).
#[derive(Debug)]
pub struct CommandStats {
    slots: Vec<[AtomicU64; 4]>,
}

/// One command's counters, read out.
#[derive(Debug, Default, Clone, Copy)]
pub struct CommandStat {
    /// Calls.
    pub calls: u64,
    /// Total time, microseconds.
    pub usec: u64,
    /// Calls rejected before running (arity, auth...).
    pub rejected: u64,
    /// Calls that ran and replied with an error.
    pub failed: u64,
}

impl Default for CommandStats {
    fn default() -> CommandStats {
        CommandStats {
            slots: crate::commands::COMMANDS
                .iter()
                .map(|_| Default::default())
                .collect(),
        }
    }
}

impl CommandStats {
    fn slot(&self, spec: &crate::commands::Spec) -> Option<&[AtomicU64; 4]> {
        self.slots.get(crate::commands::index_of(spec))
    }

    /// Every command with a call or a rejection, by name.
    pub fn snapshot(&self) -> Vec<(&'static str, CommandStat)> {
        crate::commands::COMMANDS
            .iter()
            .zip(&self.slots)
            .map(|(c, s)| {
                let g = |i: usize| s[i].load(Ordering::Relaxed);
                (
                    c.name,
                    CommandStat {
                        calls: g(0),
                        usec: g(1),
                        rejected: g(2),
                        failed: g(3),
                    },
                )
            })
            .filter(|(_, s)| s.calls + s.rejected > 0)
            .collect()
    }

    /// Zeroes every counter (CONFIG RESETSTAT).
    pub fn reset(&self) {
        for s in &self.slots {
            for c in s {
                c.store(0, Ordering::Relaxed);
            }
        }
    }
}

/// What CLIENT LIST/INFO shows of a connection, and how to kill it.
#[derive(Debug)]
pub struct ClientHandle {
    /// Client id (CLIENT ID), unique for the server's life.
    pub id: u64,
    /// Peer address.
    pub addr: String,
    /// Local address.
    pub laddr: String,
    /// When the connection was accepted.
    pub created: Instant,
    /// Mutable parts.
    pub info: Mutex<ClientInfo>,
    /// Set by CLIENT KILL; the connection closes at its next step.
    pub killed: AtomicBool,
    /// Wakes the connection when killed.
    pub kill_notify: tokio::sync::Notify,
}

/// The parts of a client that change as it runs.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// CLIENT SETNAME.
    pub name: String,
    /// Selected database.
    pub db: usize,
    /// Protocol version.
    pub resp: u8,
    /// Last command's full name.
    pub last_cmd: String,
    /// When the last command arrived.
    pub last_active: Instant,
    /// Inside MULTI: queued commands; otherwise -1.
    pub multi: i64,
    /// CLIENT NO-EVICT.
    pub no_evict: bool,
    /// CLIENT NO-TOUCH.
    pub no_touch: bool,
    /// Channels subscribed (CLIENT LIST `sub`).
    pub sub: usize,
    /// Patterns subscribed (`psub`).
    pub psub: usize,
    /// Shard channels subscribed (`ssub`).
    pub ssub: usize,
}

impl ClientInfo {
    /// A new connection's info.
    pub fn new() -> ClientInfo {
        ClientInfo {
            name: String::new(),
            db: 0,
            resp: 2,
            last_cmd: "NULL".into(),
            last_active: Instant::now(),
            multi: -1,
            no_evict: false,
            no_touch: false,
            sub: 0,
            psub: 0,
            ssub: 0,
        }
    }

    /// In pub/sub mode (any subscription).
    pub fn pubsub(&self) -> bool {
        self.sub + self.psub + self.ssub > 0
    }
}

impl Default for ClientInfo {
    fn default() -> ClientInfo {
        ClientInfo::new()
    }
}

/// The watchers of one key: (client id, that client's dirty flag, whether the key was
/// already expired (but present) when the client watched it).
type Watchers = Vec<(u64, Arc<AtomicBool>, bool)>;

/// WATCH registrations: which connections watch which keys.
#[derive(Debug, Default)]
pub struct Watches {
    map: Mutex<HashMap<(usize, Vec<u8>), Watchers>>,
    count: AtomicUsize,
}

impl Watches {
    /// Registers that `client` (whose dirty flag is `flag`) watches `key` in `db`;
    /// `was_expired` when the key was present but already expired.
    pub fn watch(
        &self,
        client: u64,
        flag: &Arc<AtomicBool>,
        db: usize,
        key: &[u8],
        was_expired: bool,
    ) {
        let mut m = lock(&self.map);
        let list = m.entry((db, key.to_vec())).or_default();
        if !list.iter().any(|(c, _, _)| *c == client) {
            list.push((client, flag.clone(), was_expired));
            self.count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Removes `client`'s registrations for `keys`.
    pub fn unwatch(&self, client: u64, keys: &[(usize, Vec<u8>)]) {
        let mut m = lock(&self.map);
        for k in keys {
            if let Some(list) = m.get_mut(k) {
                let before = list.len();
                list.retain(|(c, _, _)| *c != client);
                self.count.fetch_sub(before - list.len(), Ordering::Relaxed);
                if list.is_empty() {
                    m.remove(k);
                }
            }
        }
    }

    /// Marks every watcher of `key` in `db` dirty.
    pub fn touch(&self, db: usize, key: &[u8]) {
        if self.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        // The map is keyed by owned keys; build the probe only when someone watches.
        if let Some(list) = lock(&self.map).get(&(db, key.to_vec())) {
            for (_, f, _) in list {
                f.store(true, Ordering::Release);
            }
        }
    }

    /// An expired `key` was deleted (sweeper or a write that met it). Like Redis's
    /// `touchWatchedKey`: a watcher that saw the key already expired sees no change (the key is
    /// logically the same: absent) and from now on watches an absent key; a watcher that saw
    /// it live is told.
    pub fn touch_expired(&self, db: usize, key: &[u8]) {
        if self.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        if let Some(list) = lock(&self.map).get_mut(&(db, key.to_vec())) {
            for (_, f, was_expired) in list.iter_mut() {
                if *was_expired {
                    *was_expired = false;
                } else {
                    f.store(true, Ordering::Release);
                }
            }
        }
    }

    /// The keys watched in `db` (for FLUSHDB/SWAPDB, which touch those that exist).
    pub fn keys_in(&self, db: usize) -> Vec<Vec<u8>> {
        if self.count.load(Ordering::Relaxed) == 0 {
            return Vec::new();
        }
        lock(&self.map)
            .keys()
            .filter(|(d, _)| *d == db)
            .map(|(_, k)| k.clone())
            .collect()
    }
}

/// Everything shared.
pub struct ServerState {
    /// Live configuration.
    pub config: Config,
    /// The data.
    pub store: Arc<Store>,
    /// The writer's queue.
    pub writer: WriterHandle,
    /// Statistics.
    pub stats: Stats,
    /// Per-command statistics.
    pub command_stats: CommandStats,
    /// Connected clients by id.
    pub clients: Mutex<HashMap<u64, Arc<ClientHandle>>>,
    /// Next client id.
    pub next_client_id: AtomicU64,
    /// WATCH registrations.
    pub watches: Watches,
    /// Pub/sub subscriptions.
    pub pubsub: crate::pubsub::PubSub,
    /// When the server started.
    pub started: Instant,
    /// Unix time in seconds when the server started.
    pub started_unix: u64,
    /// TCP port served.
    pub port: u16,
    /// The data file.
    pub db_path: std::path::PathBuf,
    /// True under `--no-sync`.
    pub no_sync: bool,
    /// Active expiry on (DEBUG SET-ACTIVE-EXPIRE toggles it).
    pub active_expire: AtomicBool,
    /// Set when shutdown begins.
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// A background save (BGSAVE) is running.
    pub bgsave_running: AtomicBool,
    /// An online compaction of the data file (BGREWRITEAOF) is running.
    pub compaction_running: AtomicBool,
    /// The Lua script cache and the running script's state.
    pub scripts: crate::scripting::Scripts,
    /// The Memcached side's counters and settings.
    pub memcached: crate::memcached::Shared,
}

impl std::fmt::Debug for ServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerState(port {})", self.port)
    }
}

impl ServerState {
    /// Records one call of `spec` taking `usec`.
    pub fn record_call(&self, spec: &crate::commands::Spec, usec: u64, failed: bool) {
        if let Some(s) = self.command_stats.slot(spec) {
            s[0].fetch_add(1, Ordering::Relaxed);
            s[1].fetch_add(usec, Ordering::Relaxed);
            if failed {
                s[3].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Records a call of `spec` rejected before running (arity, NOAUTH...).
    pub fn record_rejected(&self, spec: &crate::commands::Spec) {
        if let Some(s) = self.command_stats.slot(spec) {
            s[2].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Number of connected clients.
    pub fn client_count(&self) -> usize {
        lock(&self.clients).len()
    }

    /// True once shutdown has begun.
    pub fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}
