//! The small trait every in-process backend implements, and [`open`] to pick one by name.
//!
//! Workloads only see [`Engine`], [`ReadTx`] and [`WriteTx`]. Every write transaction is a
//! durable commit (each engine's fsync-on-commit mode); reads hand values to a callback so
//! zero-copy engines stay zero-copy. One engine instance owns one directory.
//!
//! Go bbolt is not here: it runs in the Go peer (`bench` subcommand), which implements the
//! same workloads and prints the same JSON events.

use std::path::{Path, PathBuf};

/// Boxed error used across the suite.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Result with [`BoxError`].
pub type Result<T, E = BoxError> = std::result::Result<T, E>;

/// A read transaction (a consistent snapshot).
pub trait ReadTx {
    /// Looks up `key`; calls `f` with the value if present and returns whether it was.
    fn get(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool>;
    /// Visits up to `limit` entries with keys `>= start` in key order; returns how many.
    fn scan_from(
        &self,
        start: &[u8],
        limit: usize,
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<usize>;
    /// Number of entries, the `len()` phase (each engine's idiomatic way: O(1) where it has one).
    fn count(&self) -> Result<u64>;
}

/// A write transaction, committed durably when the closure given to [`Engine::write`]
/// returns `Ok`.
pub trait WriteTx {
    /// Inserts or replaces.
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()>;
    /// Inserts a key greater than every key in the table (sorted bulk load). Engines with a
    /// faster path for that use it; the default is [`WriteTx::put`].
    fn put_sorted(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.put(key, value)
    }
    /// Removes `key`; returns whether it existed (engines that cannot tell cheaply return
    /// `true`).
    fn delete(&mut self, key: &[u8]) -> Result<bool>;
    /// Reads inside the write transaction (read-modify-write).
    fn get(&mut self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool>;
}

/// One open database of one engine.
pub trait Engine: Send + Sync {
    /// Engine name as used on the command line and in reports.
    fn name(&self) -> &'static str;
    /// Runs `f` in one write transaction and commits it durably.
    fn write(&self, f: &mut dyn FnMut(&mut dyn WriteTx) -> Result<()>) -> Result<()>;
    /// Runs `f` in one read transaction.
    fn read(&self, f: &mut dyn FnMut(&dyn ReadTx) -> Result<()>) -> Result<()>;
    /// Offline compaction: rewrite the data compactly, then keep serving from the result.
    fn compact(&mut self) -> Result<()>;
    /// The directory holding all of this engine's files.
    fn dir(&self) -> &Path;
}

/// Settings shared by every engine.
#[derive(Debug, Clone)]
pub struct OpenConfig {
    /// Expected number of entries (sizes LMDB's map).
    pub expected_entries: u64,
    /// Expected bytes per entry (key + value), also for LMDB's map.
    pub entry_bytes: u64,
}

/// Engines compiled into this binary (Go bbolt is separate: see [`crate::driver`]).
pub fn compiled_engines() -> Vec<&'static str> {
    let mut v = vec!["rivet"];
    if cfg!(feature = "lmdb") {
        v.push("lmdb");
    }
    if cfg!(feature = "redb") {
        v.push("redb");
    }
    if cfg!(feature = "fjall") {
        v.push("fjall");
    }
    v
}

/// Opens (creating) engine `name` in the empty directory `dir`.
pub fn open(name: &str, dir: &Path, cfg: &OpenConfig) -> Result<Box<dyn Engine>> {
    std::fs::create_dir_all(dir)?;
    let dir = dir.to_path_buf();
    match name {
        "rivet" => Ok(Box::new(crate::engines::rivet::RivetEngine::open(dir)?)),
        #[cfg(feature = "lmdb")]
        "lmdb" => Ok(Box::new(crate::engines::lmdb::LmdbEngine::open(dir, cfg)?)),
        #[cfg(feature = "redb")]
        "redb" => Ok(Box::new(crate::engines::redb::RedbEngine::open(dir)?)),
        #[cfg(feature = "fjall")]
        "fjall" => Ok(Box::new(crate::engines::fjall::FjallEngine::open(dir)?)),
        _ => {
            let _ = cfg;
            Err(format!(
                "engine {name:?} is not compiled into this binary (have: {})",
                compiled_engines().join(", ")
            )
            .into())
        }
    }
}

/// Sum of the apparent sizes of every file under `dir` (what redb's harness measures, so
/// LMDB's `lock.mdb` counts).
pub fn dir_size(dir: &Path) -> u64 {
    fn walk(p: &Path, total: &mut u64) {
        let Ok(rd) = std::fs::read_dir(p) else {
            return;
        };
        for e in rd.flatten() {
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() {
                walk(&e.path(), total);
            } else {
                *total += md.len();
            }
        }
    }
    let mut total = 0;
    walk(dir, &mut total);
    total
}

/// Path of a file inside an engine directory.
pub fn file_in(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}
