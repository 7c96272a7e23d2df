//! The database file: open, lock, size, grow, positioned and vectored writes, sync, and the
//! read-only memory map.
//!
//! This is the only module that performs system calls on the file. The engine talks to it
//! through the [`Storage`] trait so that tests can inject faults (failed writes, ENOSPC,
//! failed syncs) or record every write to simulate power loss.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use memmap2::{Mmap, MmapOptions};

/// A read-only mapping of the file. Readers keep the mapping they started on alive through an
/// `Arc`, so the writer can create a larger one without waiting for them.
pub struct Mapping {
    map: Option<Mmap>,
}

impl Mapping {
    /// The mapped bytes (empty for a zero-length mapping).
    pub fn bytes(&self) -> &[u8] {
        match &self.map {
            Some(m) => m,
            None => &[],
        }
    }

    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.bytes().len()
    }

    /// Whether the mapping is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The operations the engine needs from the database file.
pub trait Storage: Send + Sync + std::panic::RefUnwindSafe {
    /// Current file length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `bufs`, back to back, starting at `offset`.
    fn write_all_vectored_at(&self, bufs: &[&[u8]], offset: u64) -> io::Result<()>;
    /// Flushes file data (not necessarily metadata) to stable storage (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Flushes data and metadata (`fsync`), used after growing the file.
    fn sync_all(&self) -> io::Result<()>;
    /// Sets the file length.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Maps `len` bytes of the file read-only.
    fn map(&self, len: usize) -> io::Result<Arc<Mapping>>;
}

/// How to lock the file when opening it.
#[derive(Debug, Clone, Copy)]
pub struct LockMode {
    /// Shared (read-only) instead of exclusive.
    pub shared: bool,
    /// Give up after this long; `None` waits forever.
    pub timeout: Option<Duration>,
}

/// A real file on disk.
pub struct FileStorage {
    file: File,
    /// Its entry in [`OPEN_FILES`] and whether it holds the shared lock.
    id: (u64, u64),
    shared: bool,
}

/// Files this process holds open, by (device, inode): (shared holders, exclusive holders).
/// `flock` locks belong to open file descriptions, so a second open of the same file in the
/// same process would wait for a lock that this process itself holds, for ever; the table
/// turns that into an error at once.
static OPEN_FILES: std::sync::Mutex<std::collections::BTreeMap<(u64, u64), (usize, usize)>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

fn open_files(
) -> std::sync::MutexGuard<'static, std::collections::BTreeMap<(u64, u64), (usize, usize)>> {
    OPEN_FILES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Forgets one holder of `id`.
fn release(id: (u64, u64), shared: bool) {
    let mut files = open_files();
    if let Some(e) = files.get_mut(&id) {
        if shared {
            e.0 = e.0.saturating_sub(1);
        } else {
            e.1 = e.1.saturating_sub(1);
        }
        if *e == (0, 0) {
            files.remove(&id);
        }
    }
}

impl Drop for FileStorage {
    fn drop(&mut self) {
        release(self.id, self.shared);
    }
}

/// Outcome of [`FileStorage::open`] when the lock could not be taken in time.
#[derive(Debug)]
pub enum OpenError {
    /// An I/O error.
    Io(io::Error),
    /// The lock timeout expired.
    Timeout,
    /// This process already has the file open in a conflicting mode (read-write, or
    /// read-only while this open wants read-write).
    AlreadyOpen,
}

impl FileStorage {
    /// Opens (and, when `create`, creates) the file and takes its `flock`.
    pub fn open(
        path: &Path,
        read_only: bool,
        create: bool,
        lock: LockMode,
    ) -> Result<FileStorage, OpenError> {
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .create(create && !read_only)
            .open(path)
            .map_err(OpenError::Io)?;
        let id = {
            use std::os::unix::fs::MetadataExt;
            let md = file.metadata().map_err(OpenError::Io)?;
            (md.dev(), md.ino())
        };
        {
            let mut files = open_files();
            let e = files.entry(id).or_insert((0, 0));
            let conflict = if lock.shared { e.1 > 0 } else { *e != (0, 0) };
            if conflict {
                if *e == (0, 0) {
                    files.remove(&id);
                }
                return Err(OpenError::AlreadyOpen);
            }
            if lock.shared {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
        // From here the entry is ours: the FileStorage's drop releases it, and so does every
        // early return below.
        let storage = FileStorage {
            file,
            id,
            shared: lock.shared,
        };
        let file = &storage.file;
        let start = Instant::now();
        loop {
            let r = if lock.shared {
                file.try_lock_shared()
            } else {
                file.try_lock()
            };
            match r {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    if let Some(t) = lock.timeout {
                        if start.elapsed() >= t {
                            return Err(OpenError::Timeout);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(TryLockError::Error(e)) => return Err(OpenError::Io(e)),
            }
        }
        Ok(storage)
    }
}

impl Storage for FileStorage {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn write_all_vectored_at(&self, bufs: &[&[u8]], offset: u64) -> io::Result<()> {
        let mut slices: Vec<&[u8]> = bufs.iter().copied().filter(|b| !b.is_empty()).collect();
        let mut offset = offset;
        let mut first = 0; // slices[..first] are fully written
        while first < slices.len() {
            // pwritev takes at most IOV_MAX (1024 on Linux) buffers per call.
            let end = slices.len().min(first + 1024);
            let iov: Vec<io::IoSlice<'_>> = slices[first..end]
                .iter()
                .map(|s| io::IoSlice::new(s))
                .collect();
            let n = match rustix::io::pwritev(&self.file, &iov, offset) {
                Ok(n) => n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "pwritev wrote 0 bytes",
                ));
            }
            offset += n as u64;
            let mut left = n;
            while left > 0 {
                if left >= slices[first].len() {
                    left -= slices[first].len();
                    first += 1;
                } else {
                    slices[first] = &slices[first][left..];
                    left = 0;
                }
            }
        }
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn map(&self, len: usize) -> io::Result<Arc<Mapping>> {
        if len == 0 {
            return Ok(Arc::new(Mapping { map: None }));
        }
        // SAFETY: the mapping is read-only and shared. Rivet never writes through it; pages
        // that any open transaction can see are never rewritten while it is open (copy-on-write
        // with the reader-aware freelist), and other processes are excluded by the flock.
        // Readers only access offsets below the high-water mark, which lies inside the file.
        let map = unsafe { MmapOptions::new().len(len).map(&self.file)? };
        // Random access is the common pattern for B+tree lookups.
        let _ = map.advise(memmap2::Advice::Random);
        Ok(Arc::new(Mapping { map: Some(map) }))
    }
}

/// Size of the mapping bbolt uses for a file that needs `size` bytes: powers of two from 32 KiB
/// to 1 GiB, then whole GiB, rounded to the page size.
pub fn mmap_size(size: u64, page_size: u64) -> Option<u64> {
    const MAX_MAP_SIZE: u64 = 0xFFFF_FFFF_FFFF;
    const MAX_STEP: u64 = 1 << 30;
    for i in 15..=30 {
        if size <= 1 << i {
            return Some(1 << i);
        }
    }
    if size > MAX_MAP_SIZE {
        return None;
    }
    let mut sz = size.div_ceil(MAX_STEP) * MAX_STEP;
    sz = sz.div_ceil(page_size) * page_size;
    Some(sz.min(MAX_MAP_SIZE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmap_size_follows_bbolt_policy() {
        assert_eq!(mmap_size(0, 4096), Some(32768));
        assert_eq!(mmap_size(32768, 4096), Some(32768));
        assert_eq!(mmap_size(32769, 4096), Some(65536));
        assert_eq!(mmap_size(1 << 30, 4096), Some(1 << 30));
        assert_eq!(mmap_size((1 << 30) + 1, 4096), Some(2 << 30));
        assert_eq!(mmap_size(u64::MAX, 4096), None);
    }

    #[test]
    fn vectored_write_writes_everything() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let s = FileStorage::open(
            &p,
            false,
            true,
            LockMode {
                shared: false,
                timeout: None,
            },
        )
        .unwrap();
        let a = vec![1u8; 5000];
        let b = vec![2u8; 3];
        s.write_all_vectored_at(&[&a, &[], &b], 10).unwrap();
        let mut out = vec![0u8; 5003];
        s.read_exact_at(&mut out, 10).unwrap();
        assert_eq!(&out[..5000], &a[..]);
        assert_eq!(&out[5000..], &b[..]);
        assert_eq!(s.len().unwrap(), 5013);
    }
}
