//! Copy-compaction (bbolt's `Compact`): rewrite a database into a fresh one.
//!
//! A database file never shrinks: freed pages only go to the freelist. [`compact`] walks every
//! bucket of a source database in one read transaction and recreates it in a destination
//! database, with sequences, packing pages full (fill percent 1.0 for every non-root bucket).
//! To bound memory it can commit the destination every `tx_max_size` bytes of keys and values;
//! a bucket cut by such a commit is reopened by its path in the next transaction.
//!
//! The copy is never larger than it needs to be: appends leave full pages of earlier commits
//! alone (see `TreeMut::append`), so a page is not rewritten by the copy's own transactions,
//! and the destination is cut to its high-water mark at the end (no growth padding).
//! [`compact_file`] compacts a file in place: into `FILE.compact-tmp`, synced, renamed over
//! the original, directory synced.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::bucket::Bucket;
use crate::cursor::Iter;
use crate::db::{Db, Options};
use crate::error::{Error, Result};
use crate::tx::{BucketId, Tx};

/// Fill percent used for every non-root bucket of the destination.
const COMPACT_FILL_PERCENT: f64 = 1.0;

/// What a [`compact`] run copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactStats {
    /// Buckets created in the destination (at every nesting level).
    pub buckets: u64,
    /// Plain key/value pairs copied.
    pub keys: u64,
    /// Key and value bytes copied (bucket names count as keys), the quantity `tx_max_size`
    /// limits per transaction.
    pub bytes: u64,
    /// Destination transactions committed.
    pub commits: u64,
}

/// Copies everything in `src` into `dst` (bbolt's `Compact(dst, src, txMaxSize)`); the same
/// as [`Db::compact_into`], which documents the details.
pub fn compact(dst: &Db, src: &Db, tx_max_size: u64) -> Result<CompactStats> {
    let src_tx = src.begin_read()?;
    let mut c = Compactor {
        dst,
        tx: Some(dst.begin_write()?),
        generation: 0,
        size: 0,
        max: tx_max_size,
        stats: CompactStats::default(),
    };
    let mut path = Vec::new();
    c.copy_bucket(src_tx.root(), &mut path, 0)?;
    if let Some(tx) = c.tx.take() {
        tx.commit()?;
        c.stats.commits += 1;
    }
    drop(src_tx);
    // The copy is never larger than it needs to be: no growth padding past the last page.
    dst.trim_to_high_water_mark()?;
    Ok(c.stats)
}

/// Options of [`compact_file`].
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// Commit the copy every this many bytes of keys and values (0: one transaction), as
    /// [`compact`]'s `tx_max_size`. Default 64 KiB, the `rivet compact` default.
    pub tx_max_size: u64,
    /// How long to wait for the source file's lock; `None` waits forever.
    pub timeout: Option<Duration>,
}

impl Default for CompactOptions {
    fn default() -> CompactOptions {
        CompactOptions {
            tx_max_size: 65536,
            timeout: None,
        }
    }
}

/// What [`compact_file`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactReport {
    /// File size before, in bytes.
    pub before: u64,
    /// File size after, in bytes.
    pub after: u64,
    /// What was copied.
    pub stats: CompactStats,
}

/// The temporary file [`compact_file`] writes next to `path`: `path` + `.compact-tmp`.
pub fn compact_tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".compact-tmp");
    PathBuf::from(s)
}

/// Compacts the database file at `path` and replaces it with the compacted copy, safely.
///
/// The source is opened read-write (an exclusive lock: no other process may have it open,
/// and a second open in this process fails with [`Error::AlreadyOpen`]) but never written.
/// The copy goes to [`compact_tmp_path`] (a leftover from an earlier failed run is removed
/// first, not an error), is synced, renamed over `path`, and the directory is synced: after a
/// crash at any point `path` is either the old file or the complete new one. On failure the
/// temporary file is removed and the original is untouched.
///
/// As with any file replacement, a process that opens `path` while the compaction runs and
/// waits for its lock gets the old file once the lock is released: stop other users first.
pub fn compact_file(path: impl AsRef<Path>, options: CompactOptions) -> Result<CompactReport> {
    let path = path.as_ref();
    let tmp = compact_tmp_path(path);
    let io = |op: &str, p: &Path, e| Error::io(format!("{op} {}", p.display()), e);
    let src = Db::open(
        path,
        Options {
            timeout: options.timeout,
            // Never write the source: no freelist is persisted on open.
            no_freelist_sync: true,
            ..Options::default()
        },
    )?;
    let before = std::fs::metadata(path)
        .map_err(|e| io("stat", path, e))?
        .len();
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("remove leftover", &tmp, e)),
    }
    let copy = (|| {
        let dst = Db::open(
            &tmp,
            Options {
                page_size: Some(src.page_size()),
                no_sync: true,
                ..Options::default()
            },
        )?;
        let stats = compact(&dst, &src, options.tx_max_size)?;
        drop(dst);
        let f = std::fs::File::open(&tmp).map_err(|e| io("open", &tmp, e))?;
        f.sync_all().map_err(|e| io("sync", &tmp, e))?;
        Ok(stats)
    })();
    let stats = match copy {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io("rename over", path, e));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("sync directory", dir, e))?;
    drop(src);
    let after = std::fs::metadata(path)
        .map_err(|e| io("stat", path, e))?
        .len();
    Ok(CompactReport {
        before,
        after,
        stats,
    })
}

impl Db {
    /// Copies everything in this database into `dst`, which should be empty: every bucket at
    /// every nesting level with its sequence, and every key/value pair, with fill percent 1.0
    /// for all non-root buckets so the destination's pages are packed full. Returns what was
    /// copied.
    ///
    /// This database is read in a single read transaction, so the copy is a consistent
    /// snapshot even while it keeps being written. The destination is committed, and a new
    /// write transaction begun, whenever the key and value bytes accumulated in the current
    /// one would exceed `tx_max_size`; 0 means a single transaction. If the copy fails,
    /// transactions already committed stay in `dst` and the current one is rolled back.
    ///
    /// Fails with [`Error::BucketExists`] if `dst` already holds a bucket of the same name, and
    /// with [`Error::DatabaseReadOnly`] if `dst` is read-only.
    pub fn compact_into(&self, dst: &Db, tx_max_size: u64) -> Result<CompactStats> {
        compact(dst, self, tx_max_size)
    }
}

/// State of one compaction: the destination's current write transaction and its size.
struct Compactor<'d> {
    dst: &'d Db,
    /// The open destination transaction (`None` only between a commit and the next begin).
    tx: Option<Tx>,
    /// Incremented at each commit; bucket ids from an older generation are stale.
    generation: u64,
    /// Key and value bytes written in the current transaction.
    size: u64,
    max: u64,
    stats: CompactStats,
}

/// A destination bucket as known in one transaction generation.
#[derive(Clone, Copy)]
struct DstBucket {
    id: BucketId,
    generation: u64,
}

impl Compactor<'_> {
    /// The open destination transaction.
    fn tx(&self) -> Result<&Tx> {
        self.tx.as_ref().ok_or(Error::TxClosed)
    }

    /// Commits the current transaction and begins the next if adding `sz` bytes would exceed
    /// the limit; then accounts for the bytes.
    fn reserve(&mut self, sz: u64) -> Result<()> {
        if self.max != 0 && self.size + sz > self.max {
            if let Some(tx) = self.tx.take() {
                tx.commit()?;
                self.stats.commits += 1;
            }
            self.tx = Some(self.dst.begin_write()?);
            self.generation += 1;
            self.size = 0;
        }
        self.size += sz;
        self.stats.bytes += sz;
        Ok(())
    }

    /// The destination bucket at `path` in the current transaction, reopened by path when
    /// `cached` belongs to an earlier transaction.
    fn open(&self, path: &[Vec<u8>], cached: &mut DstBucket) -> Result<BucketId> {
        if cached.generation == self.generation {
            return Ok(cached.id);
        }
        let mut b = self.tx()?.root();
        for name in path {
            b = b.bucket(name)?.ok_or(Error::BucketNotFound)?;
        }
        if !path.is_empty() {
            b.set_fill_percent(COMPACT_FILL_PERCENT);
        }
        *cached = DstBucket {
            id: b.id,
            generation: self.generation,
        };
        Ok(b.id)
    }

    /// Copies the contents of `src` into the destination bucket at `path` (which exists),
    /// descending into sub-buckets with an explicit stack (one level per open bucket), so a
    /// hostile nesting depth costs heap, not call stack, up to the limit below.
    fn copy_bucket(
        &mut self,
        src: Bucket<'_>,
        path: &mut Vec<Vec<u8>>,
        dst_id: BucketId,
    ) -> Result<()> {
        const MAX_NESTING: usize = 1000;
        /// One bucket being copied: its source iterator and its destination.
        struct Level<'s> {
            src: Bucket<'s>,
            entries: Iter<'s>,
            dst: DstBucket,
        }
        let base = path.len();
        let mut stack = vec![Level {
            src,
            entries: src.iter(),
            dst: DstBucket {
                id: dst_id,
                generation: self.generation,
            },
        }];
        while let Some(level) = stack.last_mut() {
            let Some(entry) = level.entries.next() else {
                stack.pop();
                if path.len() > base {
                    path.pop();
                }
                continue;
            };
            let entry = entry?;
            let key = entry.key();
            let value = entry.value();
            self.reserve((key.len() + value.map_or(0, <[u8]>::len)) as u64)?;
            let id = self.open(path, &mut level.dst)?;
            let parent = Bucket::new(self.tx.as_ref().ok_or(Error::TxClosed)?, id);
            let Some(v) = value else {
                let src = level.src;
                let child_src = src.bucket(key)?.ok_or_else(|| {
                    Error::corrupted(
                        src.root_page(),
                        "bucket entry could not be opened as a bucket",
                    )
                })?;
                let child = parent.create_bucket(key)?;
                child.set_sequence(child_src.sequence())?;
                child.set_fill_percent(COMPACT_FILL_PERCENT);
                self.stats.buckets += 1;
                if path.len() - base >= MAX_NESTING {
                    return Err(Error::corrupted(
                        child_src.root_page(),
                        format!("buckets nested deeper than {MAX_NESTING} levels"),
                    ));
                }
                path.push(key.to_vec());
                stack.push(Level {
                    src: child_src,
                    entries: child_src.iter(),
                    dst: DstBucket {
                        id: child.id,
                        generation: self.generation,
                    },
                });
                continue;
            };
            parent.append(key, v)?; // source order is ascending: full pages
            self.stats.keys += 1;
        }
        Ok(())
    }
}
