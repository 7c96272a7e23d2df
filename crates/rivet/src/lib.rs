//! Rivet: an embedded key/value store that reads and writes the bbolt file format.
//!
//! One file, memory-mapped, holding a copy-on-write B+tree of nested buckets. Many read
//! transactions run concurrently on MVCC snapshots alongside one write transaction; commits
//! are durable (`fdatasync` before and after the meta page) unless `no_sync` is set.
//!
//! ```
//! use rivet::{Db, Options};
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("example.db");
//! let db = Db::open(&path, Options::default())?;
//!
//! // Write: commit on Ok, roll back on Err or panic.
//! db.update(|tx| {
//!     let widgets = tx.create_bucket_if_not_exists(b"widgets")?;
//!     widgets.put(b"foo", b"bar")?;
//!     let nested = widgets.create_bucket_if_not_exists(b"parts")?;
//!     nested.put(b"bolt", b"m6")?;
//!     let id = widgets.next_sequence()?;
//!     assert_eq!(id, 1);
//!     Ok::<_, rivet::Error>(())
//! })?;
//!
//! // Read: zero-copy values borrowed for the transaction.
//! db.view(|tx| {
//!     let widgets = tx.bucket(b"widgets")?.expect("bucket exists");
//!     assert_eq!(widgets.get(b"foo")?, Some(&b"bar"[..]));
//!     // Iterate in key order; sub-buckets are entries without a value.
//!     for entry in widgets.iter() {
//!         let entry = entry?;
//!         println!("{:?} bucket={}", entry.key(), entry.is_bucket());
//!     }
//!     // Ranges and prefixes, double-ended.
//!     let last = widgets.range(&b"a"[..]..&b"g"[..]).next_back().transpose()?;
//!     assert_eq!(last.map(|e| e.key()), Some(&b"foo"[..]));
//!     // Cursors.
//!     let mut c = widgets.cursor();
//!     assert_eq!(c.seek(b"f")?.map(|e| e.key()), Some(&b"foo"[..]));
//!     Ok::<_, rivet::Error>(())
//! })?;
//!
//! // Explicit transactions; dropping an uncommitted one rolls it back.
//! let tx = db.begin_write()?;
//! let widgets = tx.bucket(b"widgets")?.expect("bucket exists");
//! let mut cursor = widgets.cursor();
//! let mut entry = cursor.first()?;
//! while let Some(e) = entry {
//!     if e.key() == b"foo" {
//!         cursor.delete()?; // the next call to next() does not skip anything
//!     }
//!     entry = cursor.next()?;
//! }
//! tx.commit()?;
//!
//! // Group commit: concurrent callers share one durable transaction.
//! db.batch(|tx| tx.create_bucket_if_not_exists(b"events")?.put(b"e1", b"x"))?;
//!
//! // Consistency check (every problem, never just the first) and statistics.
//! assert!(db.check()?.is_empty());
//! let stats = db.view(|tx| tx.bucket(b"widgets")?.expect("exists").stats())?;
//! assert_eq!(stats.bucket_n, 2); // widgets and widgets/parts
//!
//! // Hot backup from a read transaction while writers continue.
//! let backup_path = path.with_extension("backup");
//! db.view(|tx| tx.copy_file(&backup_path))?;
//!
//! // Copy-compaction into a new file (full pages, sequences kept).
//! let compacted = Db::open(path.with_extension("compact"), Options::default())?;
//! rivet::compact(&compacted, &db, 0)?;
//! # Ok::<_, rivet::Error>(())
//! ```
//!
//! Files are bbolt version 2, byte-compatible with Go bbolt: see the `format` module for the
//! layouts and `storage` for the file, lock and map layer.

#![warn(missing_docs)]

mod backup;
mod batch;
mod bucket;
mod check;
mod children;
mod compact;
mod compact_in_place;
mod cursor;
mod db;
mod error;
pub mod export;
pub mod format;
mod freelist;
mod raw;
mod readers;
mod stats;
pub mod storage;
mod tree;
mod tx;

pub use bucket::{Bucket, DEFAULT_FILL_PERCENT};
pub use check::Problem;
pub use compact::{
    compact, compact_file, compact_tmp_path, CompactOptions, CompactReport, CompactStats,
};
pub use compact_in_place::InPlaceProgress;
pub use cursor::{Cursor, Entry, Iter};
pub use db::{
    Db, DbStats, MetaChoice, Options, PassedOver, DEFAULT_ALLOC_SIZE, DEFAULT_SHRINK_THRESHOLD,
};
pub use error::{Error, Result};
pub use stats::BucketStats;
pub use tx::{Tx, TxStats};

impl Db {
    /// Checks the consistency of the latest committed state; returns every problem found.
    /// Besides the snapshot's own problems ([`Tx::check`]), a newest meta page passed over at
    /// open although its checksum is valid (an acknowledged commit is damaged, see
    /// [`PassedOver::damaged_commit`]) is a problem.
    pub fn check(&self) -> Result<Vec<Problem>> {
        let mut problems = Vec::new();
        if let Some(p) = &self.meta_choice().passed_over {
            if p.damaged_commit {
                problems.push(Problem {
                    page: Some(p.page),
                    message: p.to_string(),
                });
            }
        }
        problems.extend(self.begin_read()?.check());
        Ok(problems)
    }
}
