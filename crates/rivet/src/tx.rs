//! Read and write transactions.
//!
//! A transaction pins one snapshot: the meta page current at its start and the memory map
//! that covers it. A write transaction additionally owns the dirty nodes of every tree it
//! touched, an append-only arena holding the keys and values it was given, the list of page
//! runs it stopped using, and (for the duration) the database's freelist. `commit` runs the
//! commit protocol; dropping an open transaction rolls it back.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::Instant;

use bumpalo::Bump;

use crate::children::OpenChildren;
use crate::db::Shared;
use crate::error::{Error, Result};
use crate::format::{self, BucketHeader, Meta, Pgid, LEAF_FLAG_BUCKET, PGID_NO_FREELIST};
use crate::freelist::Freelist;
use crate::raw::RawBytes;
use crate::storage::Mapping;
use crate::tree::{self, Node, NodeRef, PageReader, PageSink, TreeMut};

/// What a successful commit publishes: the new meta and, if the file outgrew the map, the new
/// mapping.
type Published = (Meta, Option<Arc<Mapping>>);

/// Serialized pages buffered during a commit before they are written out.
const SPILL_BATCH_BYTES: usize = 32 << 20;

/// Index of a bucket opened in a transaction.
pub(crate) type BucketId = usize;

/// Per-transaction statistics (bbolt's `TxStats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxStats {
    /// Pages allocated by the commit.
    pub page_alloc: u64,
    /// Dirty nodes created.
    pub node_count: u64,
    /// Page runs written.
    pub write: u64,
    /// Time spent serialising dirty nodes, in microseconds.
    pub spill_time_us: u64,
    /// Time spent writing and syncing, in microseconds.
    pub write_time_us: u64,
}

/// A bucket as the transaction knows it.
pub(crate) struct BucketState {
    pub root: NodeRef,
    pub sequence: u64,
    pub parent: Option<BucketId>,
    pub name: RawBytes,
    pub children: OpenChildren,
    pub dirty: bool,
    pub deleted: bool,
    pub fill_percent: f64,
}

/// Mutable state of a transaction.
pub(crate) struct TxState {
    pub buckets: Vec<BucketState>,
    pub nodes: Vec<Node>,
    pub freed: Vec<(Pgid, u64)>,
    /// Bumped on every change so cursors know to re-seek.
    pub version: u64,
    /// Boxed so that read transactions, which have none, stay small to create and move.
    pub freelist: Option<Box<Freelist>>,
    /// Root pages of the sub-buckets opened so far: in a valid file no two buckets share a
    /// root page, and refusing a second one bounds any walk over nested buckets (a damaged
    /// file could otherwise point many bucket entries at one page, level after level).
    pub opened_roots: RootSet,
}

/// A set of page ids: a few inline (most transactions open a handful of buckets, and this
/// allocates nothing for them), a hash set past that.
#[derive(Default)]
pub(crate) struct RootSet {
    few: smallvec::SmallVec<[Pgid; 8]>,
    many: std::collections::HashSet<Pgid>,
}

impl RootSet {
    /// Past this many ids, lookups go through the hash set.
    const LINEAR_MAX: usize = 32;

    /// Adds `p`; false when it was already there.
    pub(crate) fn insert(&mut self, p: Pgid) -> bool {
        if self.few.len() < Self::LINEAR_MAX {
            if self.few.contains(&p) {
                return false;
            }
            self.few.push(p);
            return true;
        }
        if self.many.is_empty() {
            self.many.extend(self.few.iter().copied());
        }
        self.many.insert(p)
    }
}

/// A transaction: a consistent snapshot for reading, and for a write transaction the only
/// way to change the database.
///
/// Read transactions can be opened on any thread at any time and never block the writer.
/// At most one write transaction exists at a time. Dropping an open transaction rolls it back.
pub struct Tx {
    pub(crate) shared: Arc<Shared>,
    pub(crate) meta: Meta,
    pub(crate) map: Arc<Mapping>,
    pub(crate) writable: bool,
    pub(crate) state: RefCell<TxState>,
    pub(crate) arena: Bump,
    done: Cell<bool>,
    stats: Cell<TxStats>,
    /// Overrides `Options::shrink_threshold` for this commit, in pages (online compaction
    /// gives back every free page at the end of the file).
    pub(crate) shrink_pages: Cell<Option<u64>>,
}

// SAFETY: the raw pointers inside `state` point into `map` (kept alive by the Arc this struct
// owns) or into `arena` (owned by this struct); neither is tied to a thread, so moving the
// whole transaction to another thread is sound. `Tx` stays `!Sync` (RefCell, Bump).
unsafe impl Send for Tx {}

impl Tx {
    pub(crate) fn new(
        shared: Arc<Shared>,
        meta: Meta,
        map: Arc<Mapping>,
        writable: bool,
        freelist: Option<Box<Freelist>>,
    ) -> Tx {
        let root = BucketState {
            root: NodeRef::Page(meta.root),
            sequence: meta.root_sequence,
            parent: None,
            name: RawBytes::EMPTY,
            children: OpenChildren::default(),
            dirty: false,
            deleted: false,
            fill_percent: crate::DEFAULT_FILL_PERCENT,
        };
        Tx {
            shared,
            meta,
            map,
            writable,
            state: RefCell::new(TxState {
                buckets: {
                    // Room for the root and the few buckets a transaction usually opens.
                    let mut b = Vec::with_capacity(4);
                    b.push(root);
                    b
                },
                nodes: Vec::new(),
                freed: Vec::new(),
                version: 0,
                freelist,
                opened_roots: RootSet::default(),
            }),
            arena: Bump::new(),
            done: Cell::new(false),
            stats: Cell::new(TxStats::default()),
            shrink_pages: Cell::new(None),
        }
    }

    /// Free pages, pending pages and the longest free span of a write transaction's
    /// freelist (zeros for a read transaction).
    pub(crate) fn free_and_pending(&self) -> (u64, u64, u64) {
        self.state
            .borrow()
            .freelist
            .as_ref()
            .map_or((0, 0, 0), |fl| {
                (fl.free_count(), fl.pending_count(), fl.longest_span())
            })
    }

    /// The transaction id: the snapshot's txid for a read transaction, the txid this commit
    /// will get for a write transaction.
    pub fn id(&self) -> u64 {
        self.meta.txid
    }

    /// Whether this is a write transaction.
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// Size of the database as this transaction sees it (high-water mark × page size).
    pub fn size(&self) -> u64 {
        self.meta.pgid * u64::from(self.meta.page_size)
    }

    /// Page size of the database.
    pub fn page_size(&self) -> usize {
        self.meta.page_size as usize
    }

    /// The meta page this transaction started from.
    pub fn meta(&self) -> Meta {
        self.meta
    }

    /// Statistics of this transaction so far.
    pub fn stats(&self) -> TxStats {
        self.stats.get()
    }

    /// The root bucket, whose entries are the top-level buckets.
    pub fn root(&self) -> crate::Bucket<'_> {
        crate::Bucket::new(self, 0)
    }

    /// Opens a top-level bucket; `None` when it does not exist (or `name` is a plain key).
    pub fn bucket(&self, name: &[u8]) -> Result<Option<crate::Bucket<'_>>> {
        self.root().bucket(name)
    }

    /// Creates a top-level bucket; fails with [`Error::BucketExists`] if it exists.
    pub fn create_bucket(&self, name: &[u8]) -> Result<crate::Bucket<'_>> {
        self.root().create_bucket(name)
    }

    /// Creates a top-level bucket unless it exists, and returns it.
    pub fn create_bucket_if_not_exists(&self, name: &[u8]) -> Result<crate::Bucket<'_>> {
        self.root().create_bucket_if_not_exists(name)
    }

    /// Deletes a top-level bucket and everything in it.
    pub fn delete_bucket(&self, name: &[u8]) -> Result<()> {
        self.root().delete_bucket(name)
    }

    /// Calls `f` with the name of every top-level bucket, in key order.
    pub fn for_each_bucket(&self, mut f: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        for e in self.root().iter() {
            let e = e?;
            if e.is_bucket() {
                f(e.key())?;
            }
        }
        Ok(())
    }

    pub(crate) fn reader(&self) -> PageReader<'_> {
        PageReader {
            data: self.map.bytes(),
            page_size: self.meta.page_size as usize,
            hwm: self.meta_hwm_for_reads(),
        }
    }

    /// Pages the snapshot can reference: below the snapshot's high-water mark. (A write
    /// transaction never reads the pages it allocates.)
    fn meta_hwm_for_reads(&self) -> Pgid {
        self.meta.pgid
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.done.get() {
            return Err(Error::TxClosed);
        }
        Ok(())
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        self.check_open()?;
        if !self.writable {
            return Err(Error::TxNotWritable);
        }
        Ok(())
    }

    /// Copies bytes into the transaction's arena.
    pub(crate) fn stash(&self, b: &[u8]) -> RawBytes {
        RawBytes::new(self.arena.alloc_slice_copy(b))
    }

    /// Runs a tree mutation on bucket `id`.
    pub(crate) fn with_tree<R>(
        &self,
        id: BucketId,
        f: impl FnOnce(&mut TreeMut<'_, '_>, &mut NodeRef) -> Result<R>,
    ) -> Result<R> {
        let mut st = self.state.borrow_mut();
        let TxState {
            buckets,
            nodes,
            freed,
            version,
            ..
        } = &mut *st;
        let b = &mut buckets[id];
        let mut tm = TreeMut {
            reader: self.reader(),
            nodes,
            freed,
            fill_percent: b.fill_percent,
        };
        let mut root = b.root;
        let r = f(&mut tm, &mut root);
        b.root = root;
        b.dirty = true;
        *version += 1;
        r
    }

    /// Commits the transaction: writes dirty pages, syncs, writes the meta page, syncs.
    /// On error the transaction is rolled back and the database stays as it was.
    pub fn commit(self) -> Result<()> {
        self.check_open()?;
        if !self.writable {
            return Err(Error::TxNotWritable);
        }
        let res = self.commit_inner();
        self.done.set(true);
        let fl = self.state.borrow_mut().freelist.take();
        match res {
            Ok((commit, fl2)) => {
                self.shared.finish_write(Some(commit), fl2);
                Ok(())
            }
            Err((e, allocated)) => {
                let mut fl = fl.expect("write transaction holds the freelist");
                fl.rollback(self.meta.txid, &allocated, self.meta.pgid);
                self.shared.finish_write(None, fl);
                Err(e)
            }
        }
    }

    /// Rolls the transaction back, discarding its changes.
    pub fn rollback(self) {
        self.rollback_inner();
    }

    fn rollback_inner(&self) {
        if self.done.replace(true) {
            return;
        }
        if self.writable {
            let fl = self.state.borrow_mut().freelist.take();
            if let Some(fl) = fl {
                self.shared.finish_write(None, fl);
            }
        } else {
            self.shared.finish_read(self.meta.txid);
        }
    }

    /// The commit protocol. On success returns the new meta and the freelist to keep; on
    /// failure the error and the runs allocated so far (to undo).
    #[allow(clippy::type_complexity)]
    fn commit_inner(
        &self,
    ) -> std::result::Result<(Published, Box<Freelist>), (Error, Vec<(Pgid, u64)>)> {
        let spill_start = Instant::now();
        let txid = self.meta.txid;
        let ps = self.meta.page_size as usize;
        let mut meta = self.meta;
        let fl = self
            .state
            .borrow_mut()
            .freelist
            .take()
            .expect("write transaction holds the freelist");
        let file_pages = self.shared.file_size() / ps as u64;

        // Online compaction wants every page as low in the file as it can go: no contiguous
        // reservations (their best-fit span may lie near the end), lowest free page first.
        // (Every commit while one runs, its own rounds included: see `Shared::compacting`.)
        let low_first = self
            .shared
            .compacting
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0;
        let mut pa = PageAllocator::new(fl, meta.pgid, txid, file_pages);
        pa.low_first = low_first;
        pa.max_cut = (crate::db::MAX_CUT_BYTES / ps as u64).max(1);
        if let Some(est) = self.estimate_commit_pages(&pa.fl).filter(|_| !low_first) {
            if !pa.reserve_all(est.total) {
                pa.reserve_hot(est.hot);
            }
        }
        let mut written = 0u64;
        let mut flush = |batch: &mut Vec<(Pgid, Vec<u8>)>| -> Result<()> {
            written += batch.len() as u64;
            self.shared.write_pages(batch)
        };
        let mut pages = PageSink::new(SPILL_BATCH_BYTES, &mut flush);

        let spilled = (|| -> Result<()> {
            meta.root = self.spill_buckets(&mut |n, hot| Ok(pa.allocate(n, hot)), &mut pages)?;
            // The root bucket's sequence lives in the meta page.
            meta.root_sequence = self.state.borrow().buckets[0].sequence;
            // Pages this transaction stopped using become pending under its txid.
            let freed = std::mem::take(&mut self.state.borrow_mut().freed);
            for (p, n) in freed {
                pa.fl.free(txid, p, n);
            }
            if meta.freelist != PGID_NO_FREELIST {
                let (h, _) = self.reader().run(meta.freelist)?;
                pa.fl.free(txid, meta.freelist, u64::from(h.overflow) + 1);
            }
            let shrink_pages = self
                .shrink_pages
                .get()
                .unwrap_or_else(|| self.shared.options.shrink_threshold.div_ceil(ps as u64));
            if self.shared.options.no_freelist_sync {
                pa.end_reservations();
                pa.trim_tail(shrink_pages);
                meta.freelist = PGID_NO_FREELIST;
            } else {
                // Sized for the worst case: every still-reserved page returned to the free set.
                let listed = pa.fl.count() + pa.reserved_left();
                let n = (format::freelist_size(listed as usize) / ps + 1) as u64;
                // The freelist is rewritten by every commit: a hot page.
                let p = pa.allocate(n, true);
                pa.end_reservations();
                pa.trim_tail(shrink_pages);
                let ids = pa.fl.all_ids();
                let mut buf = vec![0u8; n as usize * ps];
                format::write_freelist(&mut buf, p, (n - 1) as u32, &ids);
                pages.push(p, buf)?;
                meta.freelist = p;
            }
            Ok(())
        })();
        if let Err(e) = spilled {
            pa.undo_trim();
            pa.abandon_reservations();
            self.state.borrow_mut().freelist = Some(pa.fl);
            return Err((e, pa.allocated));
        }
        meta.pgid = pa.hwm;
        let spill_us = spill_start.elapsed().as_micros() as u64;
        let write_start = Instant::now();
        let rest = std::mem::take(&mut pages.pages);
        drop(pages);
        let writes = written + rest.len() as u64;
        let new_map = match self.shared.write_commit(&meta, self.meta.pgid, rest) {
            Ok(m) => m,
            Err(e) => {
                pa.undo_trim();
                self.state.borrow_mut().freelist = Some(pa.fl);
                return Err((e, pa.allocated));
            }
        };
        let mut s = self.stats.get();
        s.page_alloc = pa.allocated.iter().map(|a| a.1).sum();
        s.node_count = self.state.borrow().nodes.len() as u64;
        s.write = writes;
        s.spill_time_us = spill_us;
        s.write_time_us = write_start.elapsed().as_micros() as u64;
        self.stats.set(s);
        Ok(((meta, new_map), pa.fl))
    }

    /// Upper estimates of the pages this commit will allocate: in all (dirty nodes, the
    /// paths rewritten in parent buckets, the freelist) and of those the hot ones (bucket
    /// roots, the root bucket's path, the freelist). `None` when there is nothing to spill.
    fn estimate_commit_pages(&self, fl: &Freelist) -> Option<CommitEstimate> {
        let st = self.state.borrow();
        if st.nodes.is_empty() {
            return None;
        }
        let ps = self.meta.page_size as usize;
        let pages_of = |n: &Node| n.size().div_ceil(ps).max(1) as u64;
        // Summing every node is O(entries): skip it when no span could hold the result.
        let nodes: u64 = if st.nodes.len() as u64 <= fl.longest_span() {
            st.nodes.iter().map(pages_of).sum()
        } else {
            u64::MAX / 4
        };
        // A dirty sub-bucket rewrites its entry in the parent, copying the clean part of the
        // path to it there; its own root is rewritten too.
        let reader = self.reader();
        let (mut paths, mut roots) = (0, 0);
        for b in st.buckets.iter().filter(|b| b.dirty && !b.deleted) {
            if let Some(parent) = b.parent {
                let name = reader.bytes(b.name);
                paths += tree::clean_path_pages(&reader, &st.nodes, st.buckets[parent].root, name)
                    .ok()?;
                roots += match b.root {
                    NodeRef::Dirty(id) => pages_of(&st.nodes[id]),
                    _ => 1,
                };
            }
        }
        let freed: u64 = st.freed.iter().map(|f| f.1).sum();
        let old_freelist = if self.meta.freelist == PGID_NO_FREELIST {
            0
        } else {
            reader
                .run(self.meta.freelist)
                .map_or(0, |(h, _)| u64::from(h.overflow) + 1)
        };
        // Allocation only shrinks the free set, so this bounds what the freelist will list.
        let listed = fl.count() + freed + paths + old_freelist;
        let freelist = (format::freelist_size(listed as usize) / ps + 1) as u64;
        Some(CommitEstimate {
            total: nodes + paths + freelist,
            hot: roots + paths + freelist,
        })
    }

    /// Serialises every dirty bucket, children before parents, and returns the new root page
    /// of the root bucket.
    fn spill_buckets(
        &self,
        alloc: &mut dyn FnMut(u64, bool) -> Result<Pgid>,
        pages: &mut PageSink<'_>,
    ) -> Result<Pgid> {
        // Post-order over the live bucket hierarchy.
        let order = {
            let st = self.state.borrow();
            let mut order = Vec::new();
            let mut stack = vec![(0usize, false)];
            while let Some((id, expanded)) = stack.pop() {
                if expanded {
                    order.push(id);
                    continue;
                }
                stack.push((id, true));
                let mut kids: Vec<BucketId> = st.buckets[id]
                    .children
                    .ids()
                    .filter(|&c| !st.buckets[c].deleted)
                    .collect();
                kids.sort_unstable();
                for c in kids {
                    stack.push((c, false));
                }
            }
            order
        };
        let max_inline = self.meta.page_size as usize / 4;
        for id in order {
            let (dirty, parent) = {
                let st = self.state.borrow();
                (st.buckets[id].dirty, st.buckets[id].parent)
            };
            let Some(parent) = parent else {
                // The root bucket: always paged.
                let mut st = self.state.borrow_mut();
                let TxState {
                    buckets,
                    nodes,
                    freed,
                    ..
                } = &mut *st;
                let mut tm = TreeMut {
                    reader: self.reader(),
                    nodes,
                    freed,
                    fill_percent: buckets[0].fill_percent,
                };
                return tm.spill(buckets[0].root, alloc, pages, true);
            };
            if !dirty {
                continue;
            }
            let value = {
                let mut st = self.state.borrow_mut();
                let TxState {
                    buckets,
                    nodes,
                    freed,
                    ..
                } = &mut *st;
                let b = &buckets[id];
                let mut tm = TreeMut {
                    reader: self.reader(),
                    nodes,
                    freed,
                    fill_percent: b.fill_percent,
                };
                let mut value = Vec::new();
                match tm.inline_image(b.root, max_inline)? {
                    Some(img) => {
                        BucketHeader {
                            root: 0,
                            sequence: b.sequence,
                        }
                        .encode_into(&mut value);
                        value.extend_from_slice(&img);
                    }
                    None => {
                        let root = tm.spill(b.root, alloc, pages, false)?;
                        BucketHeader {
                            root,
                            sequence: b.sequence,
                        }
                        .encode_into(&mut value);
                    }
                }
                value
            };
            let name = self.state.borrow().buckets[id].name;
            let value = self.stash(&value);
            self.with_tree(parent, |tm, root| {
                tm.put(root, name, value, LEAF_FLAG_BUCKET, |_| Ok(()))
            })?;
        }
        unreachable!("the root bucket is last in post-order")
    }
}

/// Page estimates of a commit, see [`Tx::estimate_commit_pages`].
struct CommitEstimate {
    total: u64,
    hot: u64,
}

/// Largest hot run reserved past the high-water mark when no free span fits it.
const MAX_HOT_RUN: u64 = 16;

/// Hands out the pages of one commit so that they go out in few writes (each separate write
/// costs a small commit about as much as a page of data on a typical disk):
///
/// - When the freelist has a span large enough for the whole commit, every page comes from
///   that one reserved run, in allocation order.
/// - Otherwise the hot pages (rewritten by nearly every commit: bucket roots, the root
///   bucket's path, the freelist) come from a small run of their own, from a free span or
///   else past the high-water mark. Hot runs are freed whole by the next commit, so in steady
///   state they recycle each other instead of growing the file.
/// - Everything else (and any overflow) comes from the freelist, lowest page first, or from
///   extending the high-water mark.
///
/// Every run handed out is recorded so a failed commit can undo it.
struct PageAllocator {
    fl: Box<Freelist>,
    hwm: Pgid,
    /// High-water mark before this commit; pages at or above it vanish on rollback.
    base_hwm: Pgid,
    /// Pages the file already holds: a hot run is only placed past the high-water mark
    /// within them, so reserving one never grows the file (nor trips `max_size`).
    file_pages: Pgid,
    txid: u64,
    allocated: Vec<(Pgid, u64)>,
    /// The unused part `next..end` of the whole-commit reservation.
    all: Option<(Pgid, Pgid)>,
    /// The unused part `next..end` of the hot-page reservation.
    hot: Option<(Pgid, Pgid)>,
    /// Free pages `start..end` at the top of the file that this commit gives back.
    trimmed: Option<(Pgid, Pgid)>,
    /// Runs come from the lowest free span that holds them instead of the best fit.
    low_first: bool,
    /// Most pages one commit cuts off the end of the file (the truncation runs while the
    /// commit holds the write lock: a bounded cut keeps other writers' waits short).
    max_cut: u64,
}

impl PageAllocator {
    fn new(fl: Box<Freelist>, hwm: Pgid, txid: u64, file_pages: Pgid) -> PageAllocator {
        PageAllocator {
            fl,
            hwm,
            base_hwm: hwm,
            file_pages,
            txid,
            allocated: Vec::new(),
            all: None,
            hot: None,
            trimmed: None,
            low_first: false,
            max_cut: u64::MAX,
        }
    }

    /// Lowers the high-water mark below the free span at the top of the file when it holds
    /// at least `min` pages (0 = never): the file gives those pages back (see
    /// [`crate::Options::shrink_threshold`]).
    fn trim_tail(&mut self, min: u64) {
        if min == 0 {
            return;
        }
        if let Some(start) = self.fl.take_tail(self.hwm, min, self.max_cut) {
            self.trimmed = Some((start, self.hwm));
            self.hwm = start;
        }
    }

    /// Puts the pages [`PageAllocator::trim_tail`] took back when the commit fails.
    fn undo_trim(&mut self) {
        if let Some((start, end)) = self.trimmed.take() {
            self.fl.give_back(start, end - start);
            self.hwm = end;
        }
    }

    /// Reserves `n` contiguous free pages for the whole commit if the freelist has them.
    fn reserve_all(&mut self, n: u64) -> bool {
        if n > self.fl.longest_span() {
            return false;
        }
        self.all = self.fl.reserve(n).map(|p| (p, p + n));
        self.all.is_some()
    }

    /// Reserves `n` contiguous pages for the hot pages: a free span, or past the high-water
    /// mark when none fits, the run is small and the file already has room for it.
    fn reserve_hot(&mut self, n: u64) {
        if n == 0 || n > MAX_HOT_RUN {
            return;
        }
        let p = match self.fl.reserve(n) {
            Some(p) => p,
            None if self.hwm + n <= self.file_pages => self.extend(n),
            None => return,
        };
        self.hot = Some((p, p + n));
    }

    /// Pages still unused in the reservations.
    fn reserved_left(&self) -> u64 {
        [self.all, self.hot]
            .iter()
            .flatten()
            .map(|(next, end)| end - next)
            .sum()
    }

    /// Returns the unused parts of the reservations: pages that were free before the commit
    /// become free again; unused pages past the old high-water mark lower it again when they
    /// are at the top, and are otherwise freed too (a failed commit's rollback drops those).
    fn end_reservations(&mut self) {
        for (next, end) in [self.all.take(), self.hot.take()].into_iter().flatten() {
            let split = next.clamp(self.base_hwm.min(end), end);
            if next < split {
                self.fl.give_back(next, split - next);
            }
            if split < end {
                if end == self.hwm {
                    self.hwm = split;
                } else {
                    self.fl.give_back(split, end - split);
                }
            }
        }
    }

    /// Returns the unused parts of the reservations when the commit fails: only pages below
    /// the old high-water mark were ever free.
    fn abandon_reservations(&mut self) {
        for (next, end) in [self.all.take(), self.hot.take()].into_iter().flatten() {
            let end = end.min(self.base_hwm);
            if next < end {
                self.fl.give_back(next, end - next);
            }
        }
    }

    /// Allocates a run of `n` pages; `hot` marks pages the next commit will most likely
    /// rewrite.
    fn allocate(&mut self, n: u64, hot: bool) -> Pgid {
        let take = |r: &mut Option<(Pgid, Pgid)>| match r {
            Some((next, end)) if *end - *next >= n => {
                let p = *next;
                *next += n;
                Some(p)
            }
            _ => None,
        };
        let low_first = self.low_first;
        let p = take(&mut self.all)
            .or_else(|| if hot { take(&mut self.hot) } else { None })
            .or_else(|| {
                if low_first {
                    self.fl.reserve_low(n)
                } else {
                    self.fl.reserve(n)
                }
            })
            .unwrap_or_else(|| self.extend(n));
        self.fl.note_allocated(p, self.txid);
        self.allocated.push((p, n));
        p
    }

    /// Takes `n` pages past the high-water mark.
    fn extend(&mut self, n: u64) -> Pgid {
        let p = self.hwm;
        self.hwm += n;
        p
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        self.rollback_inner();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free_pages(ids: &[Pgid], hwm: Pgid) -> Box<Freelist> {
        Box::new(Freelist::from_ids(ids, hwm, 2).unwrap())
    }

    #[test]
    fn unused_reserved_pages_below_the_old_mark_stay_free_even_at_the_top() {
        // The best-fit span 92..100 ends at the high-water mark; the commit uses 92..97.
        let mut pa =
            PageAllocator::new(free_pages(&(92..100).collect::<Vec<_>>(), 100), 100, 7, 200);
        assert!(pa.reserve_all(8));
        assert_eq!(pa.allocate(5, false), 92);
        pa.end_reservations();
        assert_eq!(
            pa.hwm, 100,
            "the mark never drops below where the commit started"
        );
        assert_eq!(pa.fl.all_ids(), vec![97, 98, 99]);
        // The commit then fails: everything it took is free again, nothing is lost.
        let PageAllocator {
            mut fl, allocated, ..
        } = pa;
        fl.rollback(7, &allocated, 100);
        assert_eq!(fl.all_ids(), (92..100).collect::<Vec<_>>());
    }

    #[test]
    fn hot_run_past_the_mark_only_within_the_file_and_its_unused_tail_is_returned() {
        let mut pa = PageAllocator::new(free_pages(&[], 100), 100, 7, 110);
        pa.reserve_hot(4);
        assert_eq!(
            pa.allocate(1, false),
            104,
            "cold pages do not use the hot run"
        );
        assert_eq!(pa.allocate(3, true), 100);
        pa.end_reservations();
        // Page 103 went unused but page 104 lies above it: it becomes a free page.
        assert_eq!(pa.hwm, 105);
        assert_eq!(pa.fl.all_ids(), vec![103]);

        // No room left in the file: no hot run, pages come one by one.
        let mut pa = PageAllocator::new(free_pages(&[], 100), 100, 7, 102);
        pa.reserve_hot(4);
        assert_eq!(pa.reserved_left(), 0);
        assert_eq!(pa.allocate(1, true), 100);
        pa.end_reservations();
        assert_eq!(pa.hwm, 101);
    }
}

#[cfg(test)]
mod root_set_tests {
    use super::RootSet;

    #[test]
    fn finds_repeats_before_and_after_growing() {
        let mut s = RootSet::default();
        for p in 0..100u64 {
            assert!(s.insert(p * 7), "{p}");
        }
        for p in 0..100u64 {
            assert!(!s.insert(p * 7), "{p}");
        }
        assert!(s.insert(1));
    }
}
