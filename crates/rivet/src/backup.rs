//! Hot backups: a transaction's snapshot written out as a complete database file.
//!
//! The layout is bbolt's `Tx.WriteTo`: page 0 is a meta page carrying the snapshot's meta
//! (its txid, header id 0), page 1 the same meta with txid − 1 (header id 1), each with its own
//! checksum, followed by pages `2..hwm` copied verbatim from the snapshot's memory map. The
//! pages the snapshot references cannot change while the transaction is open (the freelist
//! keeps them pending), so the copy is consistent however many commits run meanwhile. Pages
//! that are free in the snapshot may be reused by a concurrent writer; their contents do not
//! matter because the copied freelist lists them as free.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};
use crate::format::{Meta, PageHeader, FLAG_META};
use crate::tx::Tx;

/// Bytes handed to the writer per call when copying data pages.
const COPY_CHUNK: usize = 1 << 20;

/// Encodes a full meta page for `meta` whose header id is `id` (bbolt's `WriteTo` sets the id
/// by position, not by `txid % 2` as a commit does). The checksum covers only the meta body,
/// which the header id is not part of.
fn meta_page(meta: &Meta, id: u64) -> Vec<u8> {
    let mut page = meta.encode_page();
    PageHeader {
        id,
        flags: FLAG_META,
        count: 0,
        overflow: 0,
    }
    .encode(&mut page);
    page
}

/// Whether `a` and `b` name the same file (same device and inode); false when either is
/// missing.
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

impl Tx {
    /// The meta of the committed snapshot this transaction reads: for a write transaction the
    /// meta it started from (one txid lower than [`Tx::id`]).
    fn snapshot_meta(&self) -> Meta {
        let mut meta = self.meta;
        if self.writable {
            meta.txid -= 1;
        }
        meta
    }

    /// Writes a consistent copy of this transaction's snapshot to `w`, as a complete database
    /// file (bbolt's `Tx.WriteTo`), and returns the number of bytes written.
    ///
    /// The output is exactly `hwm × page_size` bytes: meta page 0 with the snapshot's txid,
    /// meta page 1 with txid − 1 (0 stays 0), then every page from 2 up to the high-water
    /// mark copied raw. Other transactions, including a writer, may run meanwhile; the copy
    /// reflects the snapshot only. In a write transaction the snapshot is the committed state
    /// the transaction started from: its uncommitted changes are not included.
    ///
    /// I/O errors from `w` are returned as [`Error::Io`]; `w` is not flushed.
    pub fn write_to(&self, w: &mut impl Write) -> Result<u64> {
        self.check_open()?;
        let meta = self.snapshot_meta();
        let ps = self.page_size();
        let io = |what: &str, e| Error::io(format!("backup: write {what}"), e);
        let m0 = meta_page(&meta, 0);
        w.write_all(&m0).map_err(|e| io("meta page 0", e))?;
        let m1 = meta_page(
            &Meta {
                txid: meta.txid.saturating_sub(1),
                ..meta
            },
            1,
        );
        w.write_all(&m1).map_err(|e| io("meta page 1", e))?;
        let end = meta
            .pgid
            .checked_mul(ps as u64)
            .and_then(|e| usize::try_from(e).ok())
            .ok_or_else(|| {
                Error::corrupted(meta.pgid, "high-water mark times page size overflows")
            })?;
        let start = (2 * ps).min(end);
        let data = self.map.bytes().get(start..end).ok_or_else(|| {
            Error::corrupted(
                meta.pgid,
                format!(
                    "high-water mark {} lies beyond the {}-byte memory map",
                    meta.pgid,
                    self.map.len()
                ),
            )
        })?;
        for chunk in data.chunks(COPY_CHUNK) {
            w.write_all(chunk).map_err(|e| io("data pages", e))?;
        }
        Ok((m0.len() + m1.len() + data.len()) as u64)
    }

    /// Writes a backup of this transaction's snapshot (see [`Tx::write_to`]) to a new file at
    /// `path`, replacing any existing file, syncs it to stable storage, and returns its size.
    ///
    /// The result can be opened as a database right away. Naming the database file itself
    /// is refused with [`Error::InvalidOption`].
    pub fn copy_file(&self, path: impl AsRef<Path>) -> Result<u64> {
        let path = path.as_ref();
        let shown = path.display();
        self.check_open()?;
        if same_file(path, &self.shared.path) {
            return Err(Error::InvalidOption(format!(
                "backup target {shown} is the database file itself"
            )));
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| Error::io(format!("backup: create {shown}"), e))?;
        let mut out = std::io::BufWriter::with_capacity(COPY_CHUNK, file);
        let n = self.write_to(&mut out)?;
        let file = out
            .into_inner()
            .map_err(|e| Error::io(format!("backup: write {shown}"), e.into_error()))?;
        file.sync_all()
            .map_err(|e| Error::io(format!("backup: fsync {shown}"), e))?;
        Ok(n)
    }
}
