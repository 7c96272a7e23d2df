//! Direct access to the pages of a database file, without the engine.
//!
//! `pages`, `page`, `dump` and the `surgery` commands must work on files the engine refuses to
//! open (a damaged meta page, a broken freelist), so they read the file themselves: [`RawFile`]
//! takes the same `flock` the engine takes (shared to read, exclusive to modify, with the
//! `--timeout`), finds the page size (assuming 4096 bytes when no meta page tells it, so they
//! work on any bytes), and reads pages with positioned reads. Decoding uses the
//! engine's public codecs in [`rivet::format`].

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rivet::format::{self, Meta, PageHeader, Pgid, META_OFFSET};

use crate::error::{io_error, CliError, CliResult};
use crate::open::require_file;

/// How to lock the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read-only file, shared lock.
    Read,
    /// Read-write file, exclusive lock.
    Write,
}

/// An open database file read page by page.
pub struct RawFile {
    file: File,
    path: PathBuf,
    len: u64,
    page_size: usize,
    /// Whether a meta page gave the page size (else it is [`GUESSED_PAGE_SIZE`]).
    page_size_known: bool,
}

/// The page size assumed when no meta page tells it (random bytes, a zeroed file).
pub const GUESSED_PAGE_SIZE: usize = 4096;

impl RawFile {
    /// Opens and locks `path`, then determines its page size. Any non-empty file opens: when
    /// no meta page gives the page size, [`GUESSED_PAGE_SIZE`] is assumed (see
    /// [`page_size_known`](RawFile::page_size_known)), so the raw views work on any bytes.
    pub fn open(path: &Path, access: Access, timeout: Duration) -> CliResult<RawFile> {
        RawFile::open_with(path, access, Some(timeout))
    }

    /// Opens `path` read-only without taking the lock: only for a quick look at the meta
    /// pages of a file this process already has open through the engine.
    fn peek(path: &Path) -> CliResult<RawFile> {
        RawFile::open_with(path, Access::Read, None)
    }

    fn open_with(
        path: &Path,
        access: Access,
        lock_timeout: Option<Duration>,
    ) -> CliResult<RawFile> {
        require_file(path)?;
        let file = OpenOptions::new()
            .read(true)
            .write(access == Access::Write)
            .open(path)
            .map_err(|e| io_error(path, "", &e))?;
        if let Some(timeout) = lock_timeout {
            lock(&file, path, access, timeout)?;
        }
        let len = file
            .metadata()
            .map_err(|e| io_error(path, "stat", &e))?
            .len();
        if len == 0 {
            return Err(CliError::new(format!(
                "{}: not a bbolt file: file is empty",
                path.display()
            )));
        }
        let mut raw = RawFile {
            file,
            path: path.to_path_buf(),
            len,
            page_size: GUESSED_PAGE_SIZE,
            page_size_known: false,
        };
        if let Some(ps) = raw.detect_page_size()? {
            raw.page_size = ps;
            raw.page_size_known = true;
        }
        Ok(raw)
    }

    /// Warns on stderr when the page size was guessed, so page numbers are read with care.
    pub fn warn_if_guessed(&self) {
        if !self.page_size_known {
            eprintln!(
                "rivet: warning: {}: no meta page gives the page size; assuming {} bytes",
                self.path.display(),
                self.page_size
            );
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The page size.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// The file length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Number of whole pages in the file.
    pub fn page_count(&self) -> u64 {
        self.len / self.page_size as u64
    }

    /// Reads `n` bytes at `offset`; fails if they lie beyond the end of the file.
    pub fn read_at(&self, offset: u64, n: usize) -> CliResult<Vec<u8>> {
        let end = offset.checked_add(n as u64);
        if end.is_none_or(|e| e > self.len) {
            return Err(CliError::new(format!(
                "{}: bytes {offset}..{} lie beyond the end of the {}-byte file",
                self.path.display(),
                offset.saturating_add(n as u64),
                self.len
            )));
        }
        let mut buf = vec![0u8; n];
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(|e| io_error(&self.path, &format!("read at offset {offset}"), &e))?;
        Ok(buf)
    }

    /// Reads page `id` (one page, without its overflow).
    pub fn page(&self, id: Pgid) -> CliResult<Vec<u8>> {
        self.read_at(self.offset(id)?, self.page_size)
    }

    /// Reads the header of page `id`.
    pub fn header(&self, id: Pgid) -> CliResult<PageHeader> {
        let b = self.read_at(self.offset(id)?, format::PAGE_HEADER_SIZE)?;
        PageHeader::decode(&b, id).map_err(|e| self.corrupted(id, e))
    }

    /// Reads page `id` and its overflow pages, which must end below `limit` (a page id).
    pub fn run(&self, id: Pgid, limit: Pgid) -> CliResult<(PageHeader, Vec<u8>)> {
        let h = self.header(id)?;
        let n = u64::from(h.overflow) + 1;
        if id.checked_add(n).is_none_or(|end| end > limit) {
            return Err(CliError::new(format!(
                "{}: corrupted page {id}: its {} overflow pages run past page {limit}",
                self.path.display(),
                h.overflow
            )));
        }
        let len = usize::try_from(n * self.page_size as u64)
            .map_err(|_| CliError::new(format!("page run {id} too large")))?;
        Ok((h, self.read_at(self.offset(id)?, len)?))
    }

    /// Writes `data` at `offset` (the file must have been opened for writing).
    pub fn write_at(&self, offset: u64, data: &[u8]) -> CliResult<()> {
        self.file
            .write_all_at(data, offset)
            .map_err(|e| io_error(&self.path, &format!("write at offset {offset}"), &e))
    }

    /// Flushes data and metadata to stable storage.
    pub fn sync(&self) -> CliResult<()> {
        self.file
            .sync_all()
            .map_err(|e| io_error(&self.path, "fsync", &e))
    }

    /// Byte offset of page `id`.
    pub fn offset(&self, id: Pgid) -> CliResult<u64> {
        id.checked_mul(self.page_size as u64)
            .ok_or_else(|| CliError::new(format!("page id {id} is out of range")))
    }

    /// A "corrupted page" error from an engine codec error.
    pub fn corrupted(&self, id: Pgid, e: rivet::Error) -> CliError {
        match e {
            rivet::Error::Corrupted { page, reason } => CliError::new(format!(
                "{}: corrupted page {page}: {reason}",
                self.path.display()
            )),
            other => CliError::new(format!("{}: page {id}: {other}", self.path.display())),
        }
    }

    /// Decodes both meta pages.
    pub fn metas(&self) -> CliResult<[MetaSlot; 2]> {
        Ok([self.meta_slot(0)?, self.meta_slot(1)?])
    }

    /// Decodes meta page `index`, reading only the bytes the file holds (a file cut off inside
    /// the meta page reads as zeros past its end).
    fn meta_slot(&self, index: Pgid) -> CliResult<MetaSlot> {
        let off = self.offset(index)?;
        let avail = self.len.saturating_sub(off).min(self.page_size as u64) as usize;
        let mut page = if avail > 0 {
            self.read_at(off, avail)?
        } else {
            Vec::new()
        };
        page.resize(self.page_size, 0);
        let raw = RawMeta::decode(&page, index);
        let cut = avail < META_OFFSET + format::META_SIZE;
        let problem = match Meta::decode(&page) {
            Err(_) if cut => Some(format!(
                "the file ends at byte {}, before this meta page's fields",
                self.len
            )),
            Err(e) => Some(e.to_string().replace(" (not a bbolt file)", "")),
            Ok(m) => self.meta_bounds(&m).err(),
        };
        let truncated = match Meta::decode(&page) {
            Ok(m) if !cut && u64::from(m.page_size) == self.page_size as u64 => {
                m.pgid.saturating_mul(self.page_size as u64) > self.len
            }
            _ => false,
        };
        Ok(MetaSlot {
            index,
            raw,
            problem,
            truncated,
        })
    }

    /// The checks the engine applies to a meta before using it (beyond magic, version and
    /// checksum).
    fn meta_bounds(&self, m: &Meta) -> Result<(), String> {
        let ps = self.page_size as u64;
        if u64::from(m.page_size) != ps {
            return Err(format!("page size {} differs from {ps}", m.page_size));
        }
        if m.pgid >= 3 && m.pgid.saturating_mul(ps) > self.len {
            return Err(format!(
                "truncated: high-water mark {} needs {} bytes, the file holds {}",
                m.pgid,
                m.pgid.saturating_mul(ps),
                self.len
            ));
        }
        if m.pgid < 3 {
            return Err(format!(
                "high-water mark {} is below 3 (two meta pages and a root)",
                m.pgid
            ));
        }
        if m.root < 2 || m.root >= m.pgid {
            return Err(format!("root page {} outside 2..{}", m.root, m.pgid));
        }
        // A bad freelist pointer does not make a meta unusable: the engine rebuilds the
        // freelist from the tree.
        Ok(())
    }

    /// The meta the engine would use: the valid one with the highest txid.
    pub fn active_meta(&self) -> CliResult<Meta> {
        let slots = self.metas()?;
        let best = slots
            .iter()
            .filter(|s| s.problem.is_none())
            .max_by_key(|s| s.raw.txid);
        match best {
            Some(s) => Ok(s.raw.to_meta()),
            None => Err(CliError::new(self.why_unusable(&slots))),
        }
    }

    /// The newest meta page that is intact but describes more pages than a truncated file
    /// holds; `None` unless the file is truncated.
    pub fn truncated_meta(&self) -> CliResult<Option<MetaSlot>> {
        let slots = self.metas()?;
        Ok(slots
            .into_iter()
            .filter(|s| s.truncated)
            .max_by_key(|s| s.raw.txid))
    }

    /// Why neither meta page can be used, as one message naming the file: truncated (an
    /// intact meta page describes more bytes than the file holds), not a bbolt file at all
    /// (neither has the magic number), or each meta page's problem.
    pub fn why_unusable(&self, slots: &[MetaSlot; 2]) -> String {
        let shown = self.path.display();
        if let Some(t) = slots
            .iter()
            .filter(|s| s.truncated)
            .max_by_key(|s| s.raw.txid)
        {
            let need = t.raw.pgid.saturating_mul(self.page_size as u64);
            return format!(
                "{shown}: truncated: the file holds {} bytes, but meta page {} (txid {}) describes \
                 {} pages of {} bytes ({need} bytes)",
                self.len, t.index, t.raw.txid, t.raw.pgid, self.page_size
            );
        }
        if !self.page_size_known && slots.iter().all(|s| s.raw.magic != format::MAGIC) {
            return format!(
                "{shown}: not a bbolt file: neither meta page has the bbolt magic number \
                 (see `rivet dump {shown} 0`)"
            );
        }
        format!(
            "{shown}: not a bbolt file: meta page 0: {}; meta page 1: {}",
            slots[0].problem.as_deref().unwrap_or("valid"),
            slots[1].problem.as_deref().unwrap_or("valid"),
        )
    }

    /// Finds the page size: from a valid meta page 0, else a valid meta page 1 probed at every
    /// possible page size, else the page size field of meta page 0 when its magic is right;
    /// `None` when nothing gives it.
    fn detect_page_size(&self) -> CliResult<Option<usize>> {
        let head_len = self.len.min(4096) as usize;
        let head = self.read_at(0, head_len)?;
        if let Ok(m) = Meta::decode(&head) {
            if valid_page_size(m.page_size) {
                return Ok(Some(m.page_size as usize));
            }
        }
        for i in 0..15 {
            let off = 1024u64 << i;
            if off + 1024 > self.len {
                break;
            }
            let buf = self.read_at(off, 1024)?;
            if let Ok(m) = Meta::decode(&buf) {
                if u64::from(m.page_size) == off {
                    return Ok(Some(m.page_size as usize));
                }
            }
        }
        let raw = RawMeta::decode(&head, 0);
        if raw.magic == format::MAGIC && valid_page_size(raw.page_size) {
            return Ok(Some(raw.page_size as usize));
        }
        Ok(None)
    }
}

/// Why the engine refused `path` as a database, when reading its meta pages directly tells
/// more (a truncated file, or bytes that are no bbolt file at all); `None` when the file
/// cannot be read or its meta pages look usable.
pub fn why_not_bbolt(path: &Path) -> Option<String> {
    let raw = RawFile::open(path, Access::Read, Duration::ZERO).ok()?;
    raw.active_meta().err().map(|e| e.message)
}

/// A warning when the engine opened `path` at an older commit because the newer meta page
/// describes more bytes than the (truncated) file holds: the last commit is lost.
pub fn older_commit_warning(path: &Path) -> Option<String> {
    let raw = RawFile::peek(path).ok()?;
    let slots = raw.metas().ok()?;
    let used = slots
        .iter()
        .filter(|s| s.problem.is_none())
        .max_by_key(|s| s.raw.txid)?;
    let cut = slots
        .iter()
        .find(|s| s.truncated && s.raw.txid > used.raw.txid)?;
    Some(format!(
        "{}: truncated: the file holds {} bytes, but meta page {} (txid {}) describes {} pages \
         of {} bytes; using the older meta page {} (txid {}), without the later commit",
        path.display(),
        raw.len,
        cut.index,
        cut.raw.txid,
        cut.raw.pgid,
        raw.page_size,
        used.index,
        used.raw.txid
    ))
}

/// Whether `ps` is a page size bbolt can write.
fn valid_page_size(ps: u32) -> bool {
    ps.is_power_of_two() && (1024..=(1 << 24)).contains(&ps)
}

/// Takes the file lock, retrying until `timeout`.
fn lock(file: &File, path: &Path, access: Access, timeout: Duration) -> CliResult<()> {
    let start = Instant::now();
    loop {
        let r = match access {
            Access::Read => file.try_lock_shared(),
            Access::Write => file.try_lock(),
        };
        match r {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) => {
                if start.elapsed() >= timeout {
                    return Err(CliError::new(format!(
                        "{}: locked by another process (timed out waiting for the file lock; see --timeout)",
                        path.display()
                    )));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(TryLockError::Error(e)) => return Err(io_error(path, "lock", &e)),
        }
    }
}

/// One meta page: its raw fields and, when it is not usable, why.
#[derive(Debug, Clone)]
pub struct MetaSlot {
    /// 0 or 1.
    pub index: Pgid,
    /// The fields as stored.
    pub raw: RawMeta,
    /// Why the engine would not use this meta (`None` when valid).
    pub problem: Option<String>,
    /// Intact (magic, version, checksum), but describing more pages than the file holds.
    pub truncated: bool,
}

/// The fields of a meta page as stored, whether valid or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawMeta {
    /// The page header.
    pub header: PageHeader,
    /// Magic number.
    pub magic: u32,
    /// Format version.
    pub version: u32,
    /// Page size.
    pub page_size: u32,
    /// Flags (unused).
    pub flags: u32,
    /// Root page of the root bucket.
    pub root: Pgid,
    /// Sequence of the root bucket.
    pub root_sequence: u64,
    /// Freelist page, or `PGID_NO_FREELIST`.
    pub freelist: Pgid,
    /// High-water mark.
    pub pgid: Pgid,
    /// Transaction id.
    pub txid: u64,
    /// Stored checksum.
    pub checksum: u64,
    /// Checksum computed over the stored fields.
    pub computed_checksum: u64,
}

/// Offset of the `freelist` field inside a meta page.
pub const META_FREELIST_OFFSET: usize = META_OFFSET + 32;
/// Offset of the checksum inside a meta page.
pub const META_CHECKSUM_OFFSET: usize = META_OFFSET + 56;

fn le_u32(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .unwrap_or(0)
}

fn le_u64(b: &[u8], off: usize) -> u64 {
    b.get(off..off + 8)
        .map(|s| {
            let mut a = [0u8; 8];
            a.copy_from_slice(s);
            u64::from_le_bytes(a)
        })
        .unwrap_or(0)
}

impl RawMeta {
    /// Decodes the fields of the meta page `page` (missing bytes read as zero).
    pub fn decode(page: &[u8], id: Pgid) -> RawMeta {
        let header = PageHeader::decode(page, id).unwrap_or(PageHeader {
            id: 0,
            flags: 0,
            count: 0,
            overflow: 0,
        });
        let m = META_OFFSET;
        let body = page.get(m..m + 56).unwrap_or(&[]);
        RawMeta {
            header,
            magic: le_u32(page, m),
            version: le_u32(page, m + 4),
            page_size: le_u32(page, m + 8),
            flags: le_u32(page, m + 12),
            root: le_u64(page, m + 16),
            root_sequence: le_u64(page, m + 24),
            freelist: le_u64(page, m + 32),
            pgid: le_u64(page, m + 40),
            txid: le_u64(page, m + 48),
            checksum: le_u64(page, m + 56),
            computed_checksum: format::fnv1a64(body),
        }
    }

    /// The fields as a [`Meta`].
    pub fn to_meta(self) -> Meta {
        Meta {
            page_size: self.page_size,
            flags: self.flags,
            root: self.root,
            root_sequence: self.root_sequence,
            freelist: self.freelist,
            pgid: self.pgid,
            txid: self.txid,
        }
    }
}

/// Rewrites the checksum of the meta page image `page` after its fields were changed.
pub fn reseal_meta(page: &mut [u8]) {
    let sum = format::fnv1a64(&page[META_OFFSET..META_CHECKSUM_OFFSET]);
    page[META_CHECKSUM_OFFSET..META_CHECKSUM_OFFSET + 8].copy_from_slice(&sum.to_le_bytes());
}
