//! Online compaction: [`Db::compact_in_place`] gives a file's free space back while the
//! database stays in use.
//!
//! Copy-compaction ([`crate::compact`]) needs a second file and downtime. This one works in
//! ordinary, bounded write transactions, so other writers interleave with it (they queue for
//! the write lock between rounds), readers are never blocked, and a crash at any moment
//! leaves the last committed round (each round is a normal commit). A round walks the clean
//! pages of one bucket after another from where the last round stopped and picks leaves:
//!
//! - a leaf (or any page on its path from the bucket root) at or above the *boundary*: the
//!   high-water mark minus the free and pending pages, where the file would end if every hole
//!   were filled; touching it makes the commit write its path to new pages, which come from
//!   the lowest free pages first;
//! - a leaf with room for its right-hand neighbour's first entry: packing moves entries from
//!   the neighbours under the same parent into it (whole neighbours when they fit) until it
//!   is full, and does the same for the nodes above it, so pages end up as full as
//!   copy-compaction's.
//!
//! The pages a round moved away from are freed; once no reader can see them and they form
//! the end of the file, a commit cuts them off (every round commits with the shrink threshold
//! at one page). Passes over all buckets repeat until one finds nothing to do.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use crate::bucket::Bucket;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::format::{
    BucketHeader, NodePage, Pgid, ELEMENT_SIZE, LEAF_FLAG_BUCKET, PAGE_HEADER_SIZE,
};
use crate::tree::{NodeRef, PageReader};
use crate::tx::Tx;

/// Deepest tree the walk follows; deeper means a cyclic (corrupt) page graph.
const MAX_DEPTH: usize = 64;
/// Passes over every bucket before giving up on reaching the boundary.
const MAX_PASSES: u64 = 8;
/// Leaves a round touches even when no page is free.
const MIN_ROUND_LEAVES: usize = 8;
/// Leaves a round may look at per leaf it may touch, before it stops and commits.
const VISITS_PER_TOUCH: usize = 64;

/// Where an online compaction stands, reported after every round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InPlaceProgress {
    /// Rounds (write transactions) committed so far.
    pub rounds: u64,
    /// Passes over all buckets started so far (the first packs and moves, later ones move
    /// what is still above the boundary).
    pub passes: u64,
    /// Leaves the rounds touched (each moved to a new page with the nodes above it).
    pub leaves_moved: u64,
    /// Nodes merged into a neighbour (each saves a page).
    pub nodes_merged: u64,
    /// File size when the compaction started, in bytes.
    pub start_bytes: u64,
    /// File size now, in bytes.
    pub file_bytes: u64,
}

impl InPlaceProgress {
    /// Bytes given back to the file system so far.
    pub fn bytes_returned(&self) -> u64 {
        self.start_bytes.saturating_sub(self.file_bytes)
    }
}

/// The scan of one bucket in one round: the leaves to touch, the paged sub-buckets found,
/// and where the next round resumes.
struct Scan<'a> {
    r: PageReader<'a>,
    boundary: Pgid,
    /// Longest free span: a multi-page node that fits in none would only move to the end
    /// of the file, so it stays where it is.
    longest: u64,
    page_size: usize,
    budget: usize,
    /// Keys that lead to the leaves to touch, and whether to pack there (or only move).
    targets: Vec<(Vec<u8>, bool)>,
    /// Leaves the targets rewrite (a packing target rewrites the rest of its parent's).
    used: usize,
    /// Leaves looked at in this round.
    visited: usize,
    /// Names of paged sub-buckets with keys at or after the start key.
    subs: Vec<Vec<u8>>,
    /// The key to resume from when the budget ran out.
    resume: Option<Vec<u8>>,
}

/// Bytes a leaf page's entries take (header, element headers, keys and values).
fn leaf_used(p: &NodePage<'_>) -> Result<usize> {
    let mut n = PAGE_HEADER_SIZE;
    for i in 0..p.count() {
        let (_, k, v) = p.leaf_elem(i)?;
        n += ELEMENT_SIZE + k.len() + v.len();
    }
    Ok(n)
}

/// The smallest key after every key of leaf `p` (where a later round resumes).
fn after_last_key(p: &NodePage<'_>, start: &[u8]) -> Result<Vec<u8>> {
    let mut next = match p.count() {
        0 => start.to_vec(),
        n => p.leaf_elem(n - 1)?.1.to_vec(),
    };
    next.push(0);
    Ok(next)
}

impl Scan<'_> {
    /// Whether the node's page run reaches past the boundary and could move below it.
    fn is_high(&self, p: &NodePage<'_>) -> bool {
        let pages = p.run_len().div_ceil(self.page_size).max(1) as u64;
        p.pgid() + pages > self.boundary && (pages == 1 || pages <= self.longest)
    }

    /// Visits the tree under `pgid`, skipping subtrees whose keys all lie before `start`.
    /// `force` asks for one leaf under this node to be touched (an ancestor must move).
    /// Returns whether that is still owed.
    fn node(&mut self, pgid: Pgid, mut force: bool, start: &[u8], depth: usize) -> Result<bool> {
        if depth > MAX_DEPTH {
            return Err(Error::corrupted(
                pgid,
                "tree deeper than 64 levels (a page cycle?) during online compaction",
            ));
        }
        let page = self.r.node_page(pgid)?;
        force |= self.is_high(&page);
        if page.is_leaf() {
            // A bucket whose root is a leaf: nothing to pack with.
            if force {
                self.take_leaf(&page, start, None)?;
            } else {
                self.note_subs(&page, start)?;
            }
            return Ok(false);
        }
        let n = page.count();
        let mut packing = false;
        for i in 0..n {
            if self.resume.is_some() {
                return Ok(force);
            }
            // Child i holds the keys from its separator up to the next one.
            if i + 1 < n {
                let (next_key, _) = page.branch_elem(i + 1)?;
                if next_key <= start {
                    continue;
                }
            }
            let (_, child) = page.branch_elem(i)?;
            let cp = self.r.node_page(child)?;
            if !cp.is_leaf() {
                force = self.node(child, force, start, depth + 1)?;
                continue;
            }
            // Packable: the next leaf's first entry would fit in this one's free room.
            let packable = if i + 1 < n {
                let (_, next) = page.branch_elem(i + 1)?;
                let np = self.r.node_page(next)?;
                let room = self.page_size.saturating_sub(leaf_used(&cp)?);
                np.is_leaf()
                    && np.count() > 0
                    && np
                        .leaf_elem(0)
                        .map(|(_, k, v)| ELEMENT_SIZE + k.len() + v.len())?
                        <= room
            } else {
                false
            };
            self.visited += 1;
            if packing {
                // Already rewritten by the packing of an earlier leaf of this parent.
                self.note_subs(&cp, start)?;
            } else if packable {
                // Packing this leaf rewrites it and every later leaf of this parent.
                self.take_leaf(&cp, start, Some(n - i))?;
                packing = true;
                force = false;
            } else if force || self.is_high(&cp) {
                self.take_leaf(&cp, start, None)?;
                force = false;
            } else {
                self.note_subs(&cp, start)?;
            }
            // Bound the walk too, not only the leaves touched: a round that finds little to
            // do would otherwise read the whole bucket while holding the write lock.
            if self.resume.is_none() && self.visited >= self.budget * VISITS_PER_TOUCH {
                self.resume = Some(after_last_key(&cp, start)?);
            }
        }
        Ok(force)
    }

    /// Records a leaf to touch (by a key that leads to it) and its paged sub-buckets. With
    /// `pack: Some(n)` the touch packs it with the `n - 1` leaves after it under the same
    /// parent (rewriting all of them); with `None` it only moves the leaf's path.
    fn take_leaf(&mut self, p: &NodePage<'_>, start: &[u8], pack: Option<usize>) -> Result<()> {
        let key = match p.count() {
            0 => start.to_vec(),
            _ => {
                let (_, first, _) = p.leaf_elem(0)?;
                first.max(start).to_vec()
            }
        };
        self.targets.push((key, pack.is_some()));
        self.used += pack.unwrap_or(1);
        self.note_subs(p, start)?;
        if self.used >= self.budget {
            self.resume = Some(after_last_key(p, start)?);
        }
        Ok(())
    }

    /// Records the paged sub-buckets of a leaf at or after `start`.
    fn note_subs(&mut self, p: &NodePage<'_>, start: &[u8]) -> Result<()> {
        for i in 0..p.count() {
            let (flags, k, v) = p.leaf_elem(i)?;
            if flags & LEAF_FLAG_BUCKET != 0 && k >= start {
                let h = BucketHeader::decode(v, p.pgid())?;
                if h.root != 0 {
                    self.subs.push(k.to_vec());
                }
            }
        }
        Ok(())
    }
}

/// Opens the bucket at `path` (empty: the root bucket); `None` when it is gone.
fn open_path<'tx>(tx: &'tx Tx, path: &[Vec<u8>]) -> Result<Option<Bucket<'tx>>> {
    let mut b = tx.root();
    for name in path {
        match b.bucket(name)? {
            Some(next) => b = next,
            None => return Ok(None),
        }
    }
    Ok(Some(b))
}

/// Counts a running compaction for as long as it lives.
struct LowFirst<'a>(&'a Db);

impl<'a> LowFirst<'a> {
    fn new(db: &'a Db) -> LowFirst<'a> {
        db.shared.compacting.fetch_add(1, Ordering::Relaxed);
        LowFirst(db)
    }
}

impl Drop for LowFirst<'_> {
    fn drop(&mut self) {
        self.0.shared.compacting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The compaction's position between rounds.
struct Position {
    /// Buckets still to visit in this pass (paths from the root).
    queue: VecDeque<Vec<Vec<u8>>>,
    /// The bucket being visited and the key to resume from.
    current: Option<(Vec<Vec<u8>>, Vec<u8>)>,
    /// Leaves touched in this pass.
    touched_in_pass: u64,
}

impl Position {
    fn new_pass() -> Position {
        Position {
            queue: VecDeque::from([Vec::new()]),
            current: None,
            touched_in_pass: 0,
        }
    }
}

impl Db {
    /// Online compaction: moves live pages from the end of the file into free pages nearer
    /// its start and packs half-empty neighbouring pages together, in write transactions of
    /// at most about `max_tx_pages` touched leaves each, then truncates the file. Other
    /// writers interleave between the rounds and readers are never blocked; a crash at any
    /// point loses nothing (each round is an ordinary commit). `progress` is called after
    /// every round.
    ///
    /// Returns the final progress (file size before and after, leaves moved, nodes merged).
    /// Errors: [`Error::DatabaseReadOnly`] on a read-only handle, I/O errors of a commit,
    /// [`Error::Corrupted`] when a page cannot be read (nothing of the failing round is
    /// committed).
    pub fn compact_in_place(
        &self,
        max_tx_pages: usize,
        mut progress: impl FnMut(&InPlaceProgress),
    ) -> Result<InPlaceProgress> {
        let page_size = self.page_size();
        let budget = max_tx_pages.max(1);
        // Every writer's commit places its pages low while this runs (see `Shared`).
        let _low = LowFirst::new(self);
        let mut p = InPlaceProgress {
            start_bytes: self.shared.file_size(),
            ..InPlaceProgress::default()
        };
        p.file_bytes = p.start_bytes;
        let mut pos = Position::new_pass();
        p.passes = 1;
        // File size at the start of the last two passes.
        let mut pass_starts = [p.start_bytes; 2];
        loop {
            let (touched, merged, pass_done) = self.round(&mut pos, budget, page_size)?;
            p.rounds += 1;
            p.leaves_moved += touched;
            p.nodes_merged += merged;
            pos.touched_in_pass += touched;
            p.file_bytes = self.shared.file_size();
            progress(&p);
            if pass_done {
                // Done when a pass found nothing to do, or two passes moved pages without
                // the file getting shorter (what is left above the boundary only trades
                // places; the file is cut a commit or two after pages move, so one pass
                // without progress is not enough to tell).
                let stuck = p.passes > 2 && p.file_bytes >= pass_starts[0];
                if pos.touched_in_pass == 0 || stuck || p.passes >= MAX_PASSES {
                    break;
                }
                pass_starts = [pass_starts[1], p.file_bytes];
                pos = Position::new_pass();
                p.passes += 1;
            }
        }
        // The last rounds' old pages are still pending: let commits release them and cut
        // the file until it stops shrinking.
        // Each commit cuts at most 64 MiB: a large cut takes as many commits as it needs.
        for _ in 0..(p.start_bytes / crate::db::MAX_CUT_BYTES + 4) {
            let tx = self.begin_write()?;
            tx.shrink_pages.set(Some(1));
            tx.commit()?;
            let now = self.shared.file_size();
            let shrank = now < p.file_bytes;
            p.file_bytes = now;
            p.rounds += 1;
            progress(&p);
            if !shrank && now <= self.view(|tx| Ok::<_, Error>(tx.size()))? {
                break;
            }
        }
        // Growth padding past the high-water mark (from a round that had to extend the file)
        // goes too, 64 MiB per step: under the write lock nobody extends the file meanwhile,
        // and other writers get their turn between the steps.
        loop {
            let tx = self.begin_write()?;
            let (end, size) = (tx.size(), self.shared.file_size());
            if size <= end {
                break;
            }
            self.shared
                .cut_file(end.max(size - crate::db::MAX_CUT_BYTES.min(size)), size);
            tx.rollback();
            if self.shared.file_size() >= size {
                break;
            }
        }
        p.file_bytes = self.shared.file_size();
        Ok(p)
    }

    /// One round: touches up to `budget` leaves from the current position and commits.
    /// Returns (leaves touched, nodes merged, whether the pass ended).
    fn round(
        &self,
        pos: &mut Position,
        budget: usize,
        page_size: usize,
    ) -> Result<(u64, u64, bool)> {
        let tx = self.begin_write()?;
        tx.shrink_pages.set(Some(1));
        let hwm = tx.size() / page_size as u64;
        let (free, pending, longest) = tx.free_and_pending();
        let boundary = hwm.saturating_sub(free + pending);
        // Rewritten pages should land in free pages, not past the end of the file: touch no
        // more leaves than there are free pages now (with room for the branches above them
        // and the freelist). The pages this round frees are pending until the next one. A
        // few leaves still move when nothing is free (a reader may pin every freed page).
        let room = free.saturating_sub(16 + free / 8) as usize;
        let (mut touched, mut merged) = (0u64, 0u64);
        let mut left = budget.min(room).max(MIN_ROUND_LEAVES);
        let mut pass_done = false;
        while left > 0 {
            let (path, start) = match pos.current.take() {
                Some(c) => c,
                None => match pos.queue.pop_front() {
                    Some(path) => (path, Vec::new()),
                    None => {
                        pass_done = true;
                        break;
                    }
                },
            };
            let Some(bucket) = open_path(&tx, &path)? else {
                continue;
            };
            let root = match bucket.root_ref() {
                NodeRef::Page(pgid) => pgid,
                // Inline buckets move with their parent's leaf.
                NodeRef::Inline(_) => continue,
                // Already changed in this round: come back to it in the next one.
                NodeRef::Dirty(_) => {
                    pos.current = Some((path, start));
                    break;
                }
            };
            let mut scan = Scan {
                r: tx.reader(),
                boundary,
                longest,
                page_size,
                budget: left,
                targets: Vec::new(),
                used: 0,
                visited: 0,
                subs: Vec::new(),
                resume: None,
            };
            scan.node(root, false, &start, 0)?;
            let Scan {
                targets,
                used,
                subs,
                resume,
                ..
            } = scan;
            for name in subs {
                let mut sub = path.clone();
                sub.push(name);
                pos.queue.push_back(sub);
            }
            for (key, pack) in &targets {
                merged += bucket.pack_at(key, pack.then_some(page_size))? as u64;
            }
            touched += used as u64;
            left = left.saturating_sub(used);
            if let Some(k) = resume {
                pos.current = Some((path, k));
            }
        }
        tx.commit()?;
        Ok((touched, merged, pass_done))
    }
}
