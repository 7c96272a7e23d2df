//! The Memcached protocol (text and meta commands, memcached 1.6.18's behaviour) on the
//! same file and the same write loop as the Redis side.
//!
//! - [`proto`]: framing, tokenizing and parsing requests, with memcached's error replies.
//! - [`exec`]: running requests against the item namespace ([`crate::store::items`]).
//! - [`conn`]: one client connection: reads run on snapshots, writes go to the writer
//!   (group commit, fsync before the reply), replies in request order.
//!
//! Items live in their own namespace of the file, so Redis and Memcached keys never collide;
//! they share the deadline index and the expiry sweeper with Redis keys. Nothing about items
//! is kept in memory but the CAS counter, the pending `flush_all` time, statistics, and the
//! fetch marks of the last few milliseconds (see [`Shared::mark`]).

pub mod conn;
pub mod exec;
pub mod proto;
pub mod stats;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU16, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::state::lock;
use crate::store::items::ItemMeta;
use crate::store::{DbView, Result};

/// The version `version` and `stats` report: the memcached release whose behaviour this
/// follows, then this server.
pub const VERSION: &str = concat!("1.6.18-rivet-", env!("CARGO_PKG_VERSION"));

/// memcached's default item size limit (`-I 1m`).
pub const DEFAULT_MAX_ITEM_SIZE: usize = 1024 * 1024;

/// Most fetch marks held before readers stop adding more until the writer catches up (a
/// bound on memory under a flood of first fetches; an unrecorded mark only leaves an item
/// reporting `h0` a little longer).
const MAX_MARKS: usize = 100_000;

/// A fetch recorded by a reader, written by the writer's next commit: the item (by CAS,
/// so a mark never lands on a newer item) and the fields it should have.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    /// CAS of the item that was fetched.
    pub cas: u64,
    /// Its fields after the fetch.
    pub meta: ItemMeta,
}

/// Counters reported by `stats` (memcached's names).
#[derive(Debug, Default)]
#[allow(missing_docs)]
pub struct Stats {
    pub cmd_get: AtomicU64,
    pub cmd_set: AtomicU64,
    pub cmd_flush: AtomicU64,
    pub cmd_touch: AtomicU64,
    pub total_items: AtomicU64,
    pub store_too_large: AtomicU64,
    pub get_hits: AtomicU64,
    pub get_misses: AtomicU64,
    pub delete_hits: AtomicU64,
    pub delete_misses: AtomicU64,
    pub incr_hits: AtomicU64,
    pub incr_misses: AtomicU64,
    pub decr_hits: AtomicU64,
    pub decr_misses: AtomicU64,
    pub cas_hits: AtomicU64,
    pub cas_misses: AtomicU64,
    pub cas_badval: AtomicU64,
    pub touch_hits: AtomicU64,
    pub touch_misses: AtomicU64,
    pub auth_cmds: AtomicU64,
    pub auth_errors: AtomicU64,
    pub curr_connections: AtomicU64,
    pub total_connections: AtomicU64,
}

/// Memcached state shared by connections and the writer.
#[derive(Debug)]
pub struct Shared {
    /// The last CAS value handed out (the writer persists it with every commit that used one).
    pub cas: AtomicU64,
    /// A `flush_all` hides items last stored or accessed at or before this Unix second once
    /// it has come (0 = none).
    pub flush_at: AtomicI64,
    /// The `flush_at` whose items the writer already dropped from the file.
    pub flush_done: AtomicI64,
    /// Largest item accepted, in memcached's accounting (`-I`).
    pub max_item_size: usize,
    /// `--max-file-size` (0 = none), reported as `limit_maxbytes`.
    pub max_bytes: u64,
    /// The bound Memcached port (0 = not listening).
    pub port: AtomicU16,
    /// memcached's `process_started`: 62 s before the server started, in Unix seconds (the
    /// base of its relative clock; absolute exptimes before it expire at once).
    pub started: i64,
    /// Counters.
    pub stats: Stats,
    marks: Mutex<HashMap<Vec<u8>, Mark>>,
    /// True while `marks` may be non-empty (readers skip the lock when it is not).
    marks_pending: AtomicBool,
}

impl Shared {
    /// State for a server accepting items up to `max_item_size` bytes in a file limited to
    /// `max_bytes` (0 = unlimited), with counters read from the file by [`Shared::load`].
    pub fn new(max_item_size: usize, max_bytes: u64) -> Shared {
        Shared {
            started: crate::state::unix_now().as_secs() as i64 - 62,
            max_bytes,
            port: AtomicU16::new(0),
            cas: AtomicU64::new(0),
            flush_at: AtomicI64::new(0),
            flush_done: AtomicI64::new(0),
            max_item_size,
            stats: Stats::default(),
            marks: Mutex::new(HashMap::new()),
            marks_pending: AtomicBool::new(false),
        }
    }

    /// Reads the CAS counter and the pending flush from `memcached/state`.
    pub fn load(&self, v: &DbView<'_>) -> Result<()> {
        self.cas
            .store(v.mc_state(b"cas")? as u64, Ordering::Release);
        self.flush_at
            .store(v.mc_state(b"flush_at")?, Ordering::Release);
        self.flush_done
            .store(v.mc_state(b"flush_done")?, Ordering::Release);
        Ok(())
    }

    /// Records a reader's fetch for the writer's next commit.
    pub fn mark(&self, key: &[u8], m: Mark) {
        let mut marks = lock(&self.marks);
        if marks.len() < MAX_MARKS || marks.contains_key(key) {
            marks.insert(key.to_vec(), m);
            self.marks_pending.store(true, Ordering::Release);
        }
    }

    /// The fetch mark of `key` not yet written, if any.
    pub fn pending_mark(&self, key: &[u8]) -> Option<Mark> {
        if !self.marks_pending.load(Ordering::Acquire) {
            return None;
        }
        let marks = lock(&self.marks);
        if marks.is_empty() {
            return None;
        }
        marks.get(key).copied()
    }

    /// True when marks wait for the writer.
    pub fn has_marks(&self) -> bool {
        self.marks_pending.load(Ordering::Acquire)
    }

    /// True when a delayed `flush_all` has come and its items are still in the file.
    pub fn flush_due(&self, now: i64) -> bool {
        let at = self.flush_at.load(Ordering::Acquire);
        at != 0 && at <= now && at != self.flush_done.load(Ordering::Acquire)
    }

    /// Writer: sets a `flush_all` hiding items of second `at` and before from then on, and
    /// drops them at once if that time has come.
    pub fn schedule_flush(&self, v: &DbView<'_>, at: i64, now: i64) -> Result<()> {
        let at = at.max(1);
        self.flush_at.store(at, Ordering::Release);
        v.set_mc_state(b"flush_at", at)?;
        if at <= now {
            self.drop_flushed(v, at)?;
        }
        Ok(())
    }

    /// Writer: the per-commit upkeep: a due delayed flush, the readers' fetch marks, the
    /// CAS counter.
    pub fn upkeep(&self, store: &crate::store::Store, tx: &rivet::Tx, now: i64) -> Result<()> {
        let v = store.memcached(tx);
        if self.flush_due(now) {
            let at = self.flush_at.load(Ordering::Acquire);
            self.drop_flushed(&v, at)?;
        }
        let marks = {
            let mut m = lock(&self.marks);
            self.marks_pending.store(false, Ordering::Release);
            std::mem::take(&mut *m)
        };
        for (key, m) in marks {
            if let Some(it) = v.item_raw(&key)? {
                if it.meta.cas == m.cas && it.meta != m.meta {
                    v.item_update(&key, &it, m.meta, it.exp)?;
                }
            }
        }
        Ok(())
    }

    /// Writer: persists the CAS counter (after requests that may have used it).
    pub fn save_cas(&self, v: &DbView<'_>) -> Result<()> {
        v.set_mc_state(b"cas", self.cas.load(Ordering::Acquire) as i64)
    }

    fn drop_flushed(&self, v: &DbView<'_>, at: i64) -> Result<()> {
        v.flush_namespace()?;
        {
            let mut m = lock(&self.marks);
            self.marks_pending.store(false, Ordering::Release);
            m.clear();
        }
        self.flush_done.store(at, Ordering::Release);
        v.set_mc_state(b"flush_done", at)
    }
}
