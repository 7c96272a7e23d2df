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
//! fetch marks of the last few seconds (see [`Shared::mark`]).

pub mod conn;
pub mod exec;
pub mod proto;
pub mod stats;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU16, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// How long a mark stays in memory after the writer wrote it: a reader whose snapshot
/// predates that commit must still see it (snapshots live for one batch of requests).
const MARK_KEEP: Duration = Duration::from_secs(5);

/// A fetch recorded by a reader, written by the writer's next commit: the item (by CAS, so a
/// mark never lands on a newer item) becomes fetched, and its access time at least `time`.
/// Applying a mark is monotone (a bit set, a maximum), so applying it twice, or over an item
/// whose other fields changed since, is harmless.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    /// CAS of the item that was fetched.
    pub cas: u64,
    /// The access time it moves to (Unix seconds), if the fetch moves it.
    pub time: Option<u32>,
    /// When the writer wrote it (`None`: not yet).
    written: Option<Instant>,
}

impl Mark {
    /// A new mark for the item of CAS `cas`.
    pub fn new(cas: u64, time: Option<u32>) -> Mark {
        Mark {
            cas,
            time,
            written: None,
        }
    }

    /// `meta` with this mark applied (if it is for that item).
    pub fn apply(&self, meta: ItemMeta) -> ItemMeta {
        if meta.cas != self.cas {
            return meta;
        }
        ItemMeta {
            bits: meta.bits | crate::store::items::BIT_FETCHED,
            time: self.time.map_or(meta.time, |t| t.max(meta.time)),
            ..meta
        }
    }
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
    /// True while some mark waits for the writer (`marks` may also hold written marks,
    /// kept for [`MARK_KEEP`]).
    marks_pending: AtomicBool,
    /// True while `marks` may be non-empty (readers skip the lock when it is not).
    marks_held: AtomicBool,
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
            marks_held: AtomicBool::new(false),
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
            self.marks_held.store(true, Ordering::Release);
        }
    }

    /// The fetch mark of `key` (written or not) still held, if any.
    pub fn pending_mark(&self, key: &[u8]) -> Option<Mark> {
        if !self.marks_held.load(Ordering::Acquire) {
            return None;
        }
        lock(&self.marks).get(key).copied()
    }

    /// True when marks wait for the writer. (Written marks still held are forgotten by a
    /// later upkeep; they never start a commit of their own.)
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
        // Marks stay in memory (as written) for MARK_KEEP: a reader whose snapshot is older
        // than this commit must still report them.
        let todo: Vec<(Vec<u8>, Mark)> = {
            let mut marks = lock(&self.marks);
            self.marks_pending.store(false, Ordering::Release);
            let now = Instant::now();
            marks.retain(|_, m| m.written.is_none_or(|w| now.duration_since(w) < MARK_KEEP));
            let todo = marks
                .iter_mut()
                .filter(|(_, m)| m.written.is_none())
                .map(|(k, m)| {
                    m.written = Some(now);
                    (k.clone(), *m)
                })
                .collect();
            if marks.is_empty() {
                self.marks_held.store(false, Ordering::Release);
            }
            todo
        };
        for (key, m) in todo {
            if let Some(it) = v.item_raw(&key)? {
                let meta = m.apply(it.meta);
                if meta != it.meta {
                    v.item_update(&key, &it, meta, it.exp)?;
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
            self.marks_held.store(false, Ordering::Release);
            m.clear();
        }
        self.flush_done.store(at, Ordering::Release);
        v.set_mc_state(b"flush_done", at)
    }
}

#[cfg(test)]
mod tests {
    use super::proto::{Parsed, Parser, Request};
    use super::*;
    use crate::store::Store;

    fn parse(line: &str) -> Request {
        let mut p = Parser::new(DEFAULT_MAX_ITEM_SIZE);
        match p.next(&mut bytes::BytesMut::from(line.as_bytes())) {
            Parsed::Request(r) => r,
            other => panic!("{line:?} parsed as {other:?}"),
        }
    }

    /// A reader's fetch mark is written by the writer's next commit, and a reader whose
    /// snapshot is older than that commit still reports it (the differential test once
    /// caught `h0` in that window).
    #[test]
    fn a_written_mark_is_still_seen_by_an_older_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            Store::open(&dir.path().join("m.db"), 1, rivet::Options::default()).expect("open");
        let shared = Shared::new(DEFAULT_MAX_ITEM_SIZE, 0);
        let now = 1_800_000_000;
        let mut out = Vec::new();
        let tx = store.db().begin_write().expect("tx");
        exec::write(
            &store.memcached(&tx),
            &shared,
            now,
            &parse("set k 0 0 1\r\nx\r\n"),
            &mut out,
        )
        .expect("set");
        tx.commit().expect("commit");
        assert_eq!(out, b"STORED\r\n");

        let old = store.db().begin_read().expect("snapshot");
        let h = |tx: &rivet::Tx| {
            let mut out = Vec::new();
            exec::read(
                &store.memcached(tx),
                &shared,
                now,
                &parse("mg k h\r\n"),
                &mut out,
            )
            .expect("mg");
            String::from_utf8(out).expect("utf-8")
        };
        assert_eq!(
            h(&old),
            "HD h0\r\n",
            "h reports the state before this fetch"
        );
        assert!(shared.has_marks(), "the fetch left a mark for the writer");
        assert_eq!(h(&old), "HD h1\r\n", "a pending mark is reported");

        let tx = store.db().begin_write().expect("tx");
        shared.upkeep(&store, &tx, now).expect("upkeep");
        tx.commit().expect("commit");
        assert!(!shared.has_marks(), "written");
        assert_eq!(
            h(&old),
            "HD h1\r\n",
            "the older snapshot still sees the mark"
        );
        drop(old);
        let fresh = store.db().begin_read().expect("snapshot");
        let v = store.memcached(&fresh);
        let it = v.item_raw(b"k").expect("read").expect("item");
        assert!(it.meta.has(crate::store::items::BIT_FETCHED), "in the file");
    }
}
