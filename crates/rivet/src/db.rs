//! The database handle: open, options, transactions, durability.
//!
//! `Db` owns the file, the current meta page, the current memory map, the set of open readers
//! and the freelist. It hands out transactions and carries out the write half of the commit
//! protocol (grow, write pages in id order, sync, write meta, sync).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::{self, Meta, MetaError, Pgid, Txid, PGID_NO_FREELIST};
use crate::freelist::Freelist;
use crate::readers::OpenReaders;
use crate::storage::{self, FileStorage, LockMode, Mapping, OpenError, Storage};
use crate::tx::Tx;

/// Most bytes one commit cuts off the end of the file: freeing a file's extents takes the
/// file system time (about a second for 2 GB here), and the commit holds the write lock
/// meanwhile, so a large cut is spread over several commits.
pub(crate) const MAX_CUT_BYTES: u64 = 64 << 20;
/// Default [`Options::shrink_threshold`]: 1 MiB of free pages at the end of the file.
pub const DEFAULT_SHRINK_THRESHOLD: u64 = 1 << 20;
/// Default growth step of the file beyond 16 MiB (bbolt's `DefaultAllocSize`).
pub const DEFAULT_ALLOC_SIZE: u64 = 16 * 1024 * 1024;

/// How to open a database.
#[derive(Debug, Clone)]
pub struct Options {
    /// Open read-only: shared lock, no write transactions.
    pub read_only: bool,
    /// Skip `fdatasync` at commit. Fast and unsafe: a crash can lose or corrupt recent commits.
    pub no_sync: bool,
    /// Skip the `fsync` after growing the file.
    pub no_grow_sync: bool,
    /// Do not persist the freelist; rebuild it by walking the tree on open.
    pub no_freelist_sync: bool,
    /// Map at least this many bytes from the start, to avoid early remaps.
    pub initial_mmap_size: u64,
    /// Page size for new files (existing files keep theirs). `None` = the OS page size.
    pub page_size: Option<usize>,
    /// How long to wait for the file lock; `None` waits forever.
    pub timeout: Option<Duration>,
    /// Refuse to grow the file beyond this many bytes (0 = no limit).
    pub max_size: u64,
    /// Give disk space back: when a commit leaves at least this many bytes of free pages at
    /// the end of the file (pages no open reader can see), the commit lowers the high-water
    /// mark below them and the file is truncated once the new meta page is durable (at most
    /// 64 MiB per commit; later commits cut the rest). 0 never shrinks the file (bbolt's
    /// behaviour). Default 1 MiB.
    pub shrink_threshold: u64,
    /// Largest number of calls coalesced into one `batch` transaction (0 disables batching).
    pub max_batch_size: usize,
    /// Longest a `batch` call waits for others to join.
    pub max_batch_delay: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            read_only: false,
            no_sync: false,
            no_grow_sync: false,
            no_freelist_sync: false,
            initial_mmap_size: 0,
            page_size: None,
            timeout: None,
            max_size: 0,
            shrink_threshold: DEFAULT_SHRINK_THRESHOLD,
            max_batch_size: 1000,
            max_batch_delay: Duration::from_millis(10),
        }
    }
}

/// Database-wide statistics (bbolt's `Stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DbStats {
    /// Free pages in the freelist.
    pub free_page_n: u64,
    /// Pages freed but still visible to open readers.
    pub pending_page_n: u64,
    /// Bytes in free and pending pages.
    pub free_alloc: u64,
    /// Bytes the serialized freelist takes.
    pub freelist_inuse: u64,
    /// Read transactions started.
    pub tx_n: u64,
    /// Read transactions open now.
    pub open_tx_n: u64,
    /// Write transactions committed.
    pub commit_n: u64,
}

/// Who holds the write transaction, and how many callers wait for it.
#[derive(Default)]
struct WriterSlot {
    busy: bool,
    waiting: usize,
}

/// Fields shared by every handle and transaction of one open database.
pub(crate) struct Shared {
    pub path: PathBuf,
    pub storage: Box<dyn Storage>,
    pub options: Options,
    pub page_size: usize,
    pub state: Mutex<State>,
    writer_busy: Mutex<WriterSlot>,
    writer_cv: Condvar,
    /// The freelist while no write transaction holds it; `None` in read-only mode until needed.
    freelist: Mutex<Option<Box<Freelist>>>,
    /// Set after a failed sync: writes are refused from then on.
    poisoned: Mutex<Option<String>>,
    pub(crate) batch: crate::batch::Batcher,
    /// Online compactions running: while any does, every commit places its pages as low in
    /// the file as it can (see [`Db::compact_in_place`]).
    pub(crate) compacting: std::sync::atomic::AtomicUsize,
    /// Which meta page the open chose, and why the other was passed over.
    meta_choice: MetaChoice,
    /// Why the stored freelist was not used and was rebuilt from the tree (read-write opens).
    freelist_rebuilt: Mutex<Option<String>>,
}

/// Which meta page a database was opened at, and why the other one was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaChoice {
    /// The meta page in use at open (0 or 1).
    pub page: u64,
    /// Its transaction id.
    pub txid: Txid,
    /// The other meta page, when it was passed over (an older valid meta is not reported).
    pub passed_over: Option<PassedOver>,
}

/// A meta page the open did not use although it could have been the newest, or is damaged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassedOver {
    /// The meta page (0 or 1).
    pub page: u64,
    /// The transaction id recorded in it (unreliable when its checksum fails).
    pub txid: Txid,
    /// Why it was not used.
    pub reason: String,
    /// Whether this is damage to an acknowledged commit: the meta's checksum is valid and
    /// its txid newer than the one in use, yet it cannot be used (it points at pages the file
    /// does not have, or at a broken tree). A newest meta whose checksum fails is what a crash
    /// during a commit leaves (that commit was never acknowledged): not damage.
    pub damaged_commit: bool,
    /// Whether its magic, version and checksum are valid (it was rejected for what it points
    /// at).
    pub checksum_valid: bool,
}

impl std::fmt::Display for PassedOver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "meta page {} (txid {}) passed over: {}",
            self.page, self.txid, self.reason
        )?;
        if self.damaged_commit {
            write!(
                f,
                " (its checksum is valid: an acknowledged commit is damaged)"
            )
        } else if self.checksum_valid {
            write!(f, " (an older commit than the one in use; nothing is lost)")
        } else {
            write!(
                f,
                " (a commit interrupted by a crash leaves this; nothing acknowledged is lost)"
            )
        }
    }
}

pub(crate) struct State {
    pub meta: Meta,
    pub map: Arc<Mapping>,
    pub readers: OpenReaders,
    pub file_size: u64,
    pub stats: DbStats,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these short critical sections cannot leave the data
    // half-updated in a way later callers could observe, so poisoning is ignored.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An open database. Cheap to clone; all clones share one file and one set of transactions.
#[derive(Clone)]
pub struct Db {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Db({})", self.shared.path.display())
    }
}

fn os_page_size() -> usize {
    rustix::param::page_size()
}

impl Db {
    /// Opens (creating if missing, unless read-only) the database at `path`.
    ///
    /// Locking follows bbolt: a read-write open takes an exclusive `flock`, a read-only open a
    /// shared one; an open that conflicts with another process waits (up to
    /// [`Options::timeout`], then [`Error::Timeout`]). An open that conflicts with a handle
    /// this process already holds on the same file fails at once with
    /// [`Error::AlreadyOpen`], since it would wait for ever (bbolt hangs there); several
    /// read-only opens may coexist. Share a [`Db`] between threads by cloning it.
    pub fn open(path: impl AsRef<Path>, options: Options) -> Result<Db> {
        let path = path.as_ref().to_path_buf();
        if let Some(ps) = options.page_size {
            if !(1024..=(1 << 24)).contains(&ps) || !ps.is_power_of_two() {
                return Err(Error::InvalidOption(format!(
                    "page size {ps} must be a power of two between 1 KiB and 16 MiB"
                )));
            }
        }
        let storage = FileStorage::open(
            &path,
            options.read_only,
            true,
            LockMode {
                shared: options.read_only,
                timeout: options.timeout,
            },
        )
        .map_err(|e| match e {
            OpenError::Timeout => Error::Timeout(path.clone()),
            OpenError::AlreadyOpen => Error::AlreadyOpen(path.clone()),
            OpenError::Io(e) => Error::io(format!("open {}", path.display()), e),
        })?;
        Db::open_storage(path, Box::new(storage), options)
    }

    /// Opens a database on an already opened (and locked) storage; used by tests that inject
    /// faults.
    pub fn open_storage(path: PathBuf, storage: Box<dyn Storage>, options: Options) -> Result<Db> {
        let io = |op: &str, e| Error::io(format!("{op} {}", path.display()), e);
        let mut file_size = storage.len().map_err(|e| io("stat", e))?;
        if file_size == 0 {
            if options.read_only {
                return Err(Error::Invalid {
                    path,
                    reason: "file is empty".into(),
                });
            }
            let ps = options.page_size.unwrap_or_else(os_page_size);
            init_file(storage.as_ref(), ps).map_err(|e| io("initialise", e))?;
            file_size = 4 * ps as u64;
        }
        let page_size = detect_page_size(storage.as_ref(), file_size, &path)?;
        if file_size < 2 * page_size as u64 {
            return Err(Error::Invalid {
                path,
                reason: format!("file size {file_size} is smaller than two {page_size}-byte pages"),
            });
        }
        let map_len =
            storage::mmap_size(file_size.max(options.initial_mmap_size), page_size as u64)
                .ok_or_else(|| Error::InvalidOption("mmap too large".into()))?;
        let map = storage.map(map_len as usize).map_err(|e| io("mmap", e))?;
        let (meta, meta_choice) = choose_meta(map.bytes(), page_size, file_size, &path)?;
        let shared = Arc::new(Shared {
            path,
            storage,
            page_size,
            state: Mutex::new(State {
                meta,
                map,
                readers: OpenReaders::new(),
                file_size,
                stats: DbStats::default(),
            }),
            writer_busy: Mutex::new(WriterSlot::default()),
            writer_cv: Condvar::new(),
            freelist: Mutex::new(None),
            poisoned: Mutex::new(None),
            batch: crate::batch::Batcher::default(),
            compacting: std::sync::atomic::AtomicUsize::new(0),
            options,
            meta_choice,
            freelist_rebuilt: Mutex::new(None),
        });
        let db = Db { shared };
        if !db.shared.options.read_only {
            let fl = match db.load_freelist() {
                Ok(fl) => fl,
                Err(Error::Corrupted { page, reason }) if meta.freelist != PGID_NO_FREELIST => {
                    // A damaged freelist must not lock the tree away: rebuild it from the
                    // pages the tree reaches, as for a file written without one, and let the
                    // next commit store a fresh one. The snapshot forgets the bad pointer, so
                    // no commit frees the page it names.
                    *lock(&db.shared.freelist_rebuilt) = Some(format!(
                        "stored freelist (page {}) unusable, rebuilt from the tree: page {page}: {reason}",
                        meta.freelist
                    ));
                    lock(&db.shared.state).meta.freelist = PGID_NO_FREELIST;
                    db.load_freelist()?
                }
                Err(e) => return Err(e),
            };
            *lock(&db.shared.freelist) = Some(Box::new(fl));
            let meta = lock(&db.shared.state).meta;
            if meta.freelist == PGID_NO_FREELIST && !db.shared.options.no_freelist_sync {
                // Persist a freelist so tools unaware of NoFreelistSync can read the file (as
                // bbolt does on a read-write open).
                db.begin_write()?.commit()?;
            }
        }
        Ok(db)
    }

    /// Builds the freelist of the current snapshot: from its freelist page, or by walking
    /// every reachable page when none was persisted.
    pub(crate) fn load_freelist(&self) -> Result<Freelist> {
        let tx = self.begin_read()?;
        let meta = tx.meta;
        if meta.freelist == PGID_NO_FREELIST {
            let reachable = crate::check::reachable_pages(&tx)?;
            let ids: Vec<Pgid> = (2..meta.pgid).filter(|p| !reachable.contains(p)).collect();
            Freelist::from_ids(&ids, meta.pgid, 0)
        } else {
            let (_, run) = tx.reader().run(meta.freelist)?;
            let ids = format::read_freelist(run, meta.freelist)?;
            // Cheap sanity checks beyond the bounds `from_ids` applies: a freelist that lists
            // its own pages or the root page would hand out pages in use.
            let own = meta.freelist..meta.freelist + (run.len() / self.shared.page_size) as u64;
            if let Some(&bad) = ids.iter().find(|&&id| own.contains(&id) || id == meta.root) {
                return Err(Error::corrupted(
                    meta.freelist,
                    format!("freelist lists page {bad}, which is in use"),
                ));
            }
            Freelist::from_ids(&ids, meta.pgid, meta.freelist)
        }
    }

    /// Cuts the file down to its high-water mark (the growth padding past the last page in
    /// use), under the writer slot so no commit grows it meanwhile. No snapshot references a
    /// page past the current high-water mark (it never decreases), so no reader is affected.
    /// Returns the bytes given back.
    pub(crate) fn trim_to_high_water_mark(&self) -> Result<u64> {
        let _writer = self.begin_write()?;
        let (hwm, file_size) = {
            let st = lock(&self.shared.state);
            (st.meta.pgid, st.file_size)
        };
        let want = hwm * self.shared.page_size as u64;
        if file_size <= want {
            return Ok(0);
        }
        let io = |op: &str, e| Error::io(format!("{op} {}", self.shared.path.display()), e);
        self.shared
            .storage
            .set_len(want)
            .map_err(|e| io("truncate", e))?;
        if !self.shared.options.no_sync {
            self.shared.storage.sync_all().map_err(|e| io("sync", e))?;
        }
        lock(&self.shared.state).file_size = want;
        Ok(file_size - want)
    }

    /// Which meta page this database was opened at, and why the other one was passed over
    /// (see [`MetaChoice`]).
    pub fn meta_choice(&self) -> &MetaChoice {
        &self.shared.meta_choice
    }

    /// Set when a read-write open found the stored freelist unusable (a bad pointer, not a
    /// freelist page, ids out of range, repeated or in use) and rebuilt it from the pages the
    /// tree reaches: says what was wrong. The next commit stores a fresh freelist.
    pub fn freelist_rebuilt(&self) -> Option<String> {
        lock(&self.shared.freelist_rebuilt).clone()
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Page size of the file.
    pub fn page_size(&self) -> usize {
        self.shared.page_size
    }

    /// Whether the database was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.shared.options.read_only
    }

    /// The options the database was opened with.
    pub fn options(&self) -> &Options {
        &self.shared.options
    }

    /// Starts a read transaction. Never blocks on the writer.
    pub fn begin_read(&self) -> Result<Tx> {
        let (meta, map) = {
            let mut st = lock(&self.shared.state);
            let meta = st.meta;
            st.readers.register(meta.txid);
            st.stats.tx_n += 1;
            st.stats.open_tx_n += 1;
            (meta, st.map.clone())
        };
        Ok(Tx::new(self.shared.clone(), meta, map, false, None))
    }

    /// Starts the write transaction, waiting while another one is open.
    pub fn begin_write(&self) -> Result<Tx> {
        self.begin_write_inner(true)
    }

    /// Starts the write transaction, or fails with [`Error::WriterBusy`] if one is open.
    pub fn try_begin_write(&self) -> Result<Tx> {
        self.begin_write_inner(false)
    }

    fn begin_write_inner(&self, wait: bool) -> Result<Tx> {
        if self.shared.options.read_only {
            return Err(Error::DatabaseReadOnly);
        }
        if let Some(why) = lock(&self.shared.poisoned).clone() {
            return Err(Error::Poisoned(why));
        }
        {
            let mut slot = lock(&self.shared.writer_busy);
            while slot.busy {
                if !wait {
                    return Err(Error::WriterBusy);
                }
                slot.waiting += 1;
                slot = self
                    .shared
                    .writer_cv
                    .wait(slot)
                    .unwrap_or_else(|e| e.into_inner());
                slot.waiting -= 1;
            }
            slot.busy = true;
        }
        let mut fl = lock(&self.shared.freelist)
            .take()
            .expect("a read-write database keeps its freelist");
        let (mut meta, map) = {
            let st = lock(&self.shared.state);
            fl.release(&st.readers);
            (st.meta, st.map.clone())
        };
        meta.txid += 1;
        Ok(Tx::new(self.shared.clone(), meta, map, true, Some(fl)))
    }

    /// Runs `f` in a read transaction.
    pub fn view<R, E: From<Error>>(&self, f: impl FnOnce(&Tx) -> Result<R, E>) -> Result<R, E> {
        let tx = self.begin_read()?;
        f(&tx)
    }

    /// Runs `f` in a write transaction: commits if it returns `Ok`, rolls back if it returns
    /// `Err` or panics.
    pub fn update<R, E: From<Error>>(&self, f: impl FnOnce(&Tx) -> Result<R, E>) -> Result<R, E> {
        let tx = self.begin_write()?;
        let r = f(&tx)?;
        tx.commit()?;
        Ok(r)
    }

    /// Database statistics.
    pub fn stats(&self) -> DbStats {
        let mut s = lock(&self.shared.state).stats;
        let ps = self.shared.page_size as u64;
        if let Some(fl) = lock(&self.shared.freelist).as_ref() {
            s.free_page_n = fl.free_count();
            s.pending_page_n = fl.pending_count();
            s.free_alloc = fl.count() * ps;
            s.freelist_inuse = format::freelist_size(fl.count() as usize) as u64;
        } else if let Some(n) = self.persisted_free_count() {
            // Read-only handles keep no freelist in memory: report the committed one.
            s.free_page_n = n;
            s.free_alloc = n * ps;
            s.freelist_inuse = format::freelist_size(n as usize) as u64;
        }
        s
    }

    /// Number of ids in the latest snapshot's persisted freelist (`None` when the file has no
    /// persisted freelist or it cannot be read).
    fn persisted_free_count(&self) -> Option<u64> {
        let tx = self.begin_read().ok()?;
        if tx.meta.freelist == PGID_NO_FREELIST {
            return None;
        }
        let (_, run) = tx.reader().run(tx.meta.freelist).ok()?;
        format::read_freelist(run, tx.meta.freelist)
            .ok()
            .map(|ids| ids.len() as u64)
    }

    /// Flushes the file to stable storage (useful after `no_sync` commits).
    pub fn sync(&self) -> Result<()> {
        self.shared
            .storage
            .sync_data()
            .map_err(|e| Error::io(format!("fdatasync {}", self.shared.path.display()), e))
    }
}

impl Shared {
    /// Size of the file in bytes (it may extend past the high-water mark).
    pub(crate) fn file_size(&self) -> u64 {
        lock(&self.state).file_size
    }

    pub(crate) fn finish_read(&self, txid: Txid) {
        let mut st = lock(&self.state);
        st.readers.unregister(txid);
        st.stats.open_tx_n = st.stats.open_tx_n.saturating_sub(1);
    }

    /// Ends the write transaction: publishes `meta` (if it committed) and returns the
    /// freelist, then lets the next writer in.
    pub(crate) fn finish_write(
        &self,
        commit: Option<(Meta, Option<Arc<Mapping>>)>,
        fl: Box<Freelist>,
    ) {
        if let Some((meta, map)) = commit {
            let mut st = lock(&self.state);
            st.meta = meta;
            st.stats.commit_n += 1;
            if let Some(map) = map {
                // Open readers keep the old mapping alive through their Arc.
                st.map = map;
            }
        }
        *lock(&self.freelist) = Some(fl);
        let waiting = {
            let mut slot = lock(&self.writer_busy);
            slot.busy = false;
            slot.waiting
        };
        // Waking is a system call; skip it when nobody waits (the common case).
        if waiting > 0 {
            self.writer_cv.notify_one();
        }
    }

    fn poison(&self, why: String) -> Error {
        *lock(&self.poisoned) = Some(why.clone());
        Error::Poisoned(why)
    }

    /// Writes page runs sorted by page id, coalescing neighbours into one vectored write.
    pub(crate) fn write_pages(&self, pages: &mut [(Pgid, Vec<u8>)]) -> Result<()> {
        let ps = self.page_size as u64;
        pages.sort_unstable_by_key(|p| p.0);
        let mut i = 0;
        while i < pages.len() {
            let start = pages[i].0;
            let mut end = start + pages[i].1.len() as u64 / ps;
            let mut j = i + 1;
            while j < pages.len() && pages[j].0 == end {
                end += pages[j].1.len() as u64 / ps;
                j += 1;
            }
            let bufs: Vec<&[u8]> = pages[i..j].iter().map(|p| p.1.as_slice()).collect();
            self.storage
                .write_all_vectored_at(&bufs, start * ps)
                .map_err(|e| {
                    Error::io(
                        format!("write pages {start}..{end} of {}", self.path.display()),
                        e,
                    )
                })?;
            i = j;
        }
        Ok(())
    }

    /// The write half of the commit protocol (the last batch of pages, grow, sync, meta,
    /// sync); earlier batches went through [`Shared::write_pages`] during spill.
    pub(crate) fn write_commit(
        &self,
        meta: &Meta,
        old_hwm: Pgid,
        mut pages: Vec<(Pgid, Vec<u8>)>,
    ) -> Result<Option<Arc<Mapping>>> {
        let ps = self.page_size as u64;
        let path = self.path.display();
        let (file_size, map_len) = {
            let st = lock(&self.state);
            (st.file_size, st.map.len() as u64)
        };
        if meta.pgid != old_hwm {
            let target = (meta.pgid + 1) * ps;
            if target > file_size {
                // bbolt's growth rule: small files grow to the mapping size, larger ones by
                // 16 MiB beyond what is needed.
                // (The mapping may be larger than the file needs after the file was cut
                // back: grow by the rule for the size needed, not to the old mapping.)
                let by_rule = storage::mmap_size(target, ps).unwrap_or(target);
                let need_map = if target < map_len {
                    by_rule.min(map_len)
                } else {
                    by_rule
                };
                let new_size = if need_map <= DEFAULT_ALLOC_SIZE {
                    need_map
                } else {
                    target + DEFAULT_ALLOC_SIZE
                };
                let max = self.options.max_size;
                if max > 0 && new_size > max && target > file_size.max(max) {
                    return Err(Error::MaxSizeReached { limit: max });
                }
                let new_size = if max > 0 && new_size > max {
                    max.max(target)
                } else {
                    new_size
                };
                self.storage
                    .set_len(new_size)
                    .map_err(|e| Error::io(format!("grow {path} to {new_size} bytes"), e))?;
                if !self.options.no_grow_sync {
                    self.storage
                        .sync_all()
                        .map_err(|e| self.poison(format!("fsync after growing {path}: {e}")))?;
                }
                lock(&self.state).file_size = new_size;
            }
        }
        self.write_pages(&mut pages)?;
        // Map the grown file before the commit point, so that a failure here is an ordinary
        // rolled-back error rather than a durable commit nobody can read.
        let need = meta.pgid * ps;
        let new_map = if need > map_len {
            let len = storage::mmap_size(need, ps).ok_or_else(|| {
                Error::InvalidOption(format!("mmap of {need} bytes is too large"))
            })?;
            Some(
                self.storage
                    .map(len as usize)
                    .map_err(|e| Error::io(format!("mmap {path} ({len} bytes)"), e))?,
            )
        } else {
            None
        };
        if !self.options.no_sync {
            self.storage
                .sync_data()
                .map_err(|e| self.poison(format!("fdatasync of data pages of {path}: {e}")))?;
        }
        let page = meta.encode_page();
        if let Err(e) = self
            .storage
            .write_all_vectored_at(&[&page], (meta.txid % 2) * ps)
        {
            // The meta page may be half written; refuse further writes until reopened.
            return Err(self.poison(format!(
                "write of meta page {} of {path}: {e}",
                meta.txid % 2
            )));
        }
        if !self.options.no_sync {
            self.storage
                .sync_data()
                .map_err(|e| self.poison(format!("fdatasync of meta page of {path}: {e}")))?;
        }
        if meta.pgid < old_hwm {
            self.shrink(meta, file_size);
        }
        Ok(new_map)
    }
}

impl Shared {
    /// Cuts the file to the high-water mark of `meta`, which a commit lowered (see
    /// [`Options::shrink_threshold`]) and which is on disk. The cut pages were free: no
    /// snapshot can read them, and the older meta page, which still counts them, is
    /// replaced by the next commit. With `no_sync` the meta page is synced first, so that a
    /// power cut never leaves a shorter file with only the older meta on disk. The commit
    /// has happened already: a failure here leaves the file longer, nothing else.
    pub(crate) fn shrink(&self, meta: &Meta, file_size: u64) {
        self.cut_file(meta.pgid * self.page_size as u64, file_size);
    }

    /// Cuts the file to `new_len` bytes (no shorter than the current meta's high-water mark:
    /// the caller holds the write lock and checked), syncing first under `no_sync`. A
    /// failure leaves the file longer, nothing else.
    pub(crate) fn cut_file(&self, new_len: u64, file_size: u64) {
        if new_len >= file_size {
            return;
        }
        if self.options.no_sync && self.storage.sync_data().is_err() {
            return;
        }
        if self.storage.set_len(new_len).is_ok() {
            lock(&self.state).file_size = new_len;
        }
    }
}

/// Writes the four pages of a new, empty database and syncs them.
fn init_file(storage: &dyn Storage, ps: usize) -> std::io::Result<()> {
    let mut buf = vec![0u8; 4 * ps];
    for txid in 0..2u64 {
        let m = Meta {
            page_size: ps as u32,
            flags: 0,
            root: 3,
            root_sequence: 0,
            freelist: 2,
            pgid: 4,
            txid,
        };
        let page = m.encode_page();
        buf[txid as usize * ps..(txid as usize + 1) * ps].copy_from_slice(&page);
    }
    format::write_freelist(&mut buf[2 * ps..3 * ps], 2, 0, &[]);
    format::write_leaf(&mut buf[3 * ps..4 * ps], 3, 0, &[]);
    storage.write_all_vectored_at(&[&buf], 0)?;
    storage.sync_data()
}

fn meta_error(path: &Path, e: MetaError) -> Error {
    match e {
        MetaError::Magic { big_endian: true } => Error::BigEndian(path.to_path_buf()),
        MetaError::Version(v) => Error::VersionMismatch {
            path: path.to_path_buf(),
            version: v,
        },
        MetaError::Checksum => Error::Checksum(path.to_path_buf()),
        e => Error::Invalid {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
    }
}

/// Reads the page size from meta 0, or probes for meta 1 when meta 0 is damaged.
fn detect_page_size(storage: &dyn Storage, file_size: u64, path: &Path) -> Result<usize> {
    let mut head = vec![0u8; file_size.min(4096) as usize];
    storage
        .read_exact_at(&mut head, 0)
        .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    let first = match Meta::decode(&head) {
        Ok(m) if valid_page_size(m.page_size) => return Ok(m.page_size as usize),
        Ok(m) => {
            MetaError::Magic { big_endian: false }.to_string()
                + &format!(" (page size {})", m.page_size)
        }
        Err(e) => {
            if let MetaError::Magic { big_endian: true } | MetaError::Version(_) = e {
                return Err(meta_error(path, e));
            }
            e.to_string()
        }
    };
    let mut buf = vec![0u8; 1024];
    for i in 0..15 {
        let off = 1024u64 << i;
        if off + 1024 > file_size {
            break;
        }
        if storage.read_exact_at(&mut buf, off).is_err() {
            break;
        }
        if let Ok(m) = Meta::decode(&buf) {
            if m.page_size as u64 == off {
                return Ok(m.page_size as usize);
            }
        }
    }
    Err(Error::Invalid {
        path: path.to_path_buf(),
        reason: format!("meta page 0: {first}; no valid meta page 1 found either"),
    })
}

fn valid_page_size(ps: u32) -> bool {
    ps.is_power_of_two() && (1024..=(1 << 24)).contains(&ps)
}

/// Validates both metas and returns the newest usable one.
/// Picks the meta page to open at: the usable one with the highest txid. Usable means a valid
/// magic, version and checksum, a high-water mark that fits the file and a root page below
/// it. A damaged tree behind a usable meta is reported by reads and `check` as corruption
/// (as bbolt does), not silently replaced by the older commit. The freelist pointer is not
/// required: a damaged freelist is rebuilt from the tree, never a reason to lose the tree.
fn choose_meta(map: &[u8], ps: usize, file_size: u64, path: &Path) -> Result<(Meta, MetaChoice)> {
    // Err((reason, checksum valid)).
    let check = |i: usize| -> std::result::Result<Meta, (String, bool)> {
        let page = map
            .get(i * ps..(i + 1) * ps)
            .ok_or(("meta page beyond end of file".to_string(), false))?;
        let m = Meta::decode(page).map_err(|e| (e.to_string(), false))?;
        let unusable = |r: String| (r, true);
        if m.page_size as usize != ps {
            return Err(unusable(format!(
                "page size {} differs from {ps}",
                m.page_size
            )));
        }
        if m.pgid < 3 || m.pgid.saturating_mul(ps as u64) > file_size {
            return Err(unusable(format!(
                "high-water mark {} does not fit the {file_size}-byte file",
                m.pgid
            )));
        }
        if m.root < 2 || m.root >= m.pgid {
            return Err(unusable(format!(
                "root page {} outside 2..{}",
                m.root, m.pgid
            )));
        }
        Ok(m)
    };
    let recorded_txid = |i: usize| {
        map.get(i * ps..(i + 1) * ps)
            .and_then(|p| format::u64_at(p, format::META_OFFSET + 48))
            .unwrap_or(0)
    };
    let passed = |i: usize, used: &Meta, (reason, valid): (String, bool)| {
        let txid = recorded_txid(i);
        PassedOver {
            page: i as u64,
            txid,
            reason,
            damaged_commit: valid && txid > used.txid,
            checksum_valid: valid,
        }
    };
    let choice = |i: usize, m: &Meta, other: Option<PassedOver>| MetaChoice {
        page: i as u64,
        txid: m.txid,
        passed_over: other,
    };
    match (check(0), check(1)) {
        (Ok(a), Ok(b)) => Ok(if b.txid > a.txid {
            (b, choice(1, &b, None))
        } else {
            (a, choice(0, &a, None))
        }),
        (Ok(a), Err(e)) => {
            let p = passed(1, &a, e);
            Ok((a, choice(0, &a, Some(p))))
        }
        (Err(e), Ok(b)) => {
            let p = passed(0, &b, e);
            Ok((b, choice(1, &b, Some(p))))
        }
        (Err((e0, _)), Err((e1, _))) => {
            if let Some(page) = map.get(0..ps) {
                if let Err(
                    e @ (MetaError::Checksum
                    | MetaError::Version(_)
                    | MetaError::Magic { big_endian: true }),
                ) = Meta::decode(page)
                {
                    return Err(meta_error(path, e));
                }
            }
            Err(Error::Invalid {
                path: path.to_path_buf(),
                reason: format!("meta page 0: {e0}; meta page 1: {e1}"),
            })
        }
    }
}
