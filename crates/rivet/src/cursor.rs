//! Cursors and iterators over a bucket.
//!
//! A [`Cursor`] keeps the path from the root to its current leaf entry. In a write transaction
//! the tree may change under it (including by [`Cursor::delete`]); the cursor notices through the
//! transaction's change counter and re-seeks from the key it was on, so deleting the current
//! entry while iterating never skips the next one. [`Iter`] wraps two cursors into a
//! double-ended iterator with optional bounds.

use std::ops::Bound;

use smallvec::SmallVec;

use crate::bucket::Bucket;
use crate::error::{Error, Result};
use crate::format::NodePage;
use crate::format::LEAF_FLAG_BUCKET;
use crate::raw::RawBytes;
use crate::tree::{self, NodeRef, NodeView};

/// One entry of a bucket: a key and either a value or a sub-bucket.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Entry<'tx> {
    key: &'tx [u8],
    value: &'tx [u8],
    bucket: bool,
}

impl<'tx> Entry<'tx> {
    /// The key.
    pub fn key(&self) -> &'tx [u8] {
        self.key
    }
    /// The value, or `None` when the entry is a sub-bucket.
    pub fn value(&self) -> Option<&'tx [u8]> {
        (!self.bucket).then_some(self.value)
    }
    /// Whether the entry is a sub-bucket.
    pub fn is_bucket(&self) -> bool {
        self.bucket
    }
}

impl std::fmt::Debug for Entry<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.bucket {
            write!(f, "Bucket({:?})", String::from_utf8_lossy(self.key))
        } else {
            write!(
                f,
                "({:?}, {:?})",
                String::from_utf8_lossy(self.key),
                String::from_utf8_lossy(self.value)
            )
        }
    }
}

#[derive(Clone, Copy)]
struct Frame<'tx> {
    node: NodeRef,
    /// The parsed page for clean (and inline) nodes, so stepping needs no re-validation.
    page: Option<NodePage<'tx>>,
    index: usize,
    count: usize,
    leaf: bool,
}

/// A position in a bucket, moved with first/last/next/prev/seek.
pub struct Cursor<'tx> {
    bucket: Bucket<'tx>,
    stack: Vec<Frame<'tx>>,
    version: u64,
    /// Key of the current entry, used to re-seek after the tree changed.
    current: Option<RawBytes>,
    /// Off either end (bbolt's positions with no entry), see [`Edge`].
    edge: Edge,
}

/// Where a cursor without a current entry stands, following bbolt 1.3.6.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Edge {
    /// Not off an end (on an entry, or never positioned, or in an empty bucket).
    None,
    /// After a `seek` past the last key: `next` gives `None`, `prev` the last entry.
    PastEnd,
    /// After `prev` from the first entry: `next` and `prev` give `None` until the cursor is
    /// positioned again.
    PastStart,
}

impl<'tx> Cursor<'tx> {
    pub(crate) fn new(bucket: Bucket<'tx>) -> Cursor<'tx> {
        Cursor {
            bucket,
            stack: Vec::new(),
            version: 0,
            current: None,
            edge: Edge::None,
        }
    }

    /// The bucket this cursor walks.
    pub fn bucket(&self) -> Bucket<'tx> {
        self.bucket
    }

    fn frame(&self, node: NodeRef) -> Result<Frame<'tx>> {
        let r = self.bucket.tx.reader();
        let page = match node {
            NodeRef::Page(p) => Some(r.node_page(p)?),
            NodeRef::Inline(raw) => Some(tree::inline_page(&r, raw)?),
            NodeRef::Dirty(_) => None,
        };
        if let Some(p) = page {
            return Ok(Frame {
                node,
                page,
                index: 0,
                count: p.count(),
                leaf: p.is_leaf(),
            });
        }
        let st = self.bucket.tx.state.borrow();
        let v = tree::view(&r, &st.nodes, node)?;
        Ok(Frame {
            node,
            page: None,
            index: 0,
            count: v.count(),
            leaf: v.is_leaf(),
        })
    }

    fn child_of(&self, f: &Frame<'tx>) -> Result<NodeRef> {
        if let Some(p) = f.page {
            return Ok(NodeRef::Page(p.branch_elem(f.index)?.1));
        }
        let st = self.bucket.tx.state.borrow();
        let r = self.bucket.tx.reader();
        tree::view(&r, &st.nodes, f.node)?.child(f.index)
    }

    fn entry_at(&self, f: &Frame<'tx>) -> Result<Entry<'tx>> {
        let (flags, key, value) = match f.page {
            Some(p) => p.leaf_elem(f.index)?,
            None => {
                let st = self.bucket.tx.state.borrow();
                let r = self.bucket.tx.reader();
                let v: NodeView<'_> = tree::view(&r, &st.nodes, f.node)?;
                let (flags, k, val) = v.leaf(&r, f.index)?;
                // Both slices point into the map or the arena, which live as long as the
                // transaction, not into `st`.
                (
                    flags,
                    r.bytes(RawBytes::new(k)),
                    r.bytes(RawBytes::new(val)),
                )
            }
        };
        Ok(Entry {
            key,
            value,
            bucket: flags & LEAF_FLAG_BUCKET != 0,
        })
    }

    /// Pushes `f` on the path, refusing a page that is already on it (a cycle in the page
    /// graph) and paths deeper than a tree can be.
    fn push(&mut self, f: Frame<'tx>) -> Result<()> {
        if let NodeRef::Page(p) = f.node {
            if self
                .stack
                .iter()
                .any(|g| matches!(g.node, NodeRef::Page(q) if q == p))
            {
                return Err(Error::corrupted(
                    p,
                    "page is its own ancestor in the bucket's tree (cyclic page references)",
                ));
            }
        }
        if self.stack.len() >= tree::MAX_DEPTH {
            return Err(tree::too_deep(f.node));
        }
        self.stack.push(f);
        Ok(())
    }

    /// How many leaves one step may pass over before the tree must be damaged: a tree has no
    /// more leaves than the snapshot has pages plus the transaction's dirty nodes.
    fn leaf_budget(&self) -> u64 {
        let nodes = self.bucket.tx.state.borrow().nodes.len() as u64;
        self.bucket.tx.reader().hwm + nodes + 1
    }

    /// The page of the top frame, for error reports (0 for an in-memory node).
    fn top_page(&self) -> u64 {
        match self.stack.last().map(|f| f.node) {
            Some(NodeRef::Page(p)) => p,
            _ => 0,
        }
    }

    /// Checks that a step moved strictly forward (or backward) in key order. Keys of a bucket
    /// are unique and sorted, so a step that does not is reading a page twice (a shared or
    /// cyclic page graph); refusing it bounds every iteration by the number of keys in the
    /// file.
    fn ordered(&self, prev: Option<RawBytes>, e: &Entry<'tx>, forward: bool) -> Result<()> {
        let Some(prev) = prev else {
            return Ok(());
        };
        let prev = self.bucket.tx.reader().bytes(prev);
        let ok = if forward { e.key > prev } else { e.key < prev };
        if ok {
            return Ok(());
        }
        Err(Error::corrupted(
            self.top_page(),
            format!(
                "keys out of order: {} comes {} {} (a page reached twice?)",
                crate::check::hex(e.key),
                if forward { "after" } else { "before" },
                crate::check::hex(prev)
            ),
        ))
    }

    fn sync_version(&mut self) {
        self.version = self.bucket.tx.state.borrow().version;
    }

    fn stale(&self) -> bool {
        self.bucket.tx.state.borrow().version != self.version
    }

    /// Descends from the top frame to a leaf, taking the first (or last) child at each level.
    fn descend(&mut self, last: bool) -> Result<()> {
        loop {
            let top = *self.stack.last().expect("descend needs a frame");
            if top.leaf {
                return Ok(());
            }
            let child = self.child_of(&top)?;
            let mut f = self.frame(child)?;
            if last {
                f.index = f.count.saturating_sub(1);
            }
            self.push(f)?;
        }
    }

    fn current_entry(&mut self) -> Result<Option<Entry<'tx>>> {
        let top = match self.stack.last() {
            Some(t) if t.leaf && t.index < t.count => *t,
            _ => {
                self.current = None;
                return Ok(None);
            }
        };
        let e = self.entry_at(&top)?;
        self.current = Some(RawBytes::new(e.key));
        Ok(Some(e))
    }

    /// Moves to the next (or previous) non-empty leaf entry. Returns false at the end, leaving
    /// the position unchanged.
    fn step(&mut self, forward: bool) -> Result<bool> {
        let can_move = |f: &Frame| {
            if forward {
                f.index + 1 < f.count
            } else {
                f.index > 0
            }
        };
        let mut moved = false;
        let mut leaves = 0u64;
        let budget = self.leaf_budget();
        loop {
            leaves += 1;
            if leaves > budget {
                return Err(Error::corrupted(
                    self.top_page(),
                    "more empty leaves in a row than the file has pages (cyclic page references?)",
                ));
            }
            let Some(i) = self.stack.iter().rposition(can_move) else {
                if moved {
                    // Only empty leaves (left by bbolt deletes) followed: go back to where we were.
                    if let Some(cur) = self.current {
                        let key = self.bucket.tx.reader().bytes(cur);
                        self.seek_position(key)?;
                    }
                }
                return Ok(false);
            };
            moved = true;
            self.stack.truncate(i + 1);
            if forward {
                self.stack[i].index += 1;
            } else {
                self.stack[i].index -= 1;
            }
            self.descend(!forward)?;
            if self.stack.last().is_some_and(|f| f.count > 0) {
                return Ok(true);
            }
        }
    }

    fn step_forward(&mut self) -> Result<bool> {
        self.step(true)
    }

    fn step_backward(&mut self) -> Result<bool> {
        self.step(false)
    }

    fn reset(&mut self) -> Result<()> {
        self.bucket.tx.check_open()?;
        self.edge = Edge::None;
        self.sync_version();
        self.stack.clear();
        let root = self.bucket.root_ref();
        self.stack.push(self.frame(root)?);
        Ok(())
    }

    /// Moves to the first entry.
    pub fn first(&mut self) -> Result<Option<Entry<'tx>>> {
        self.reset()?;
        self.descend(false)?;
        if self.stack.last().is_some_and(|f| f.count == 0) && !self.step_forward()? {
            self.current = None;
            return Ok(None);
        }
        self.current_entry()
    }

    /// Moves to the last entry.
    pub fn last(&mut self) -> Result<Option<Entry<'tx>>> {
        self.reset()?;
        let top = self.stack.last_mut().expect("reset pushes the root");
        top.index = top.count.saturating_sub(1);
        self.descend(true)?;
        if self.stack.last().is_some_and(|f| f.count == 0) && !self.step_backward()? {
            self.current = None;
            return Ok(None);
        }
        self.current_entry()
    }

    /// Positions at the first entry whose key is `>= key` without reading it.
    fn seek_position(&mut self, key: &[u8]) -> Result<bool> {
        self.reset()?;
        loop {
            let top = *self.stack.last().expect("reset pushes the root");
            let (i, child) = match top.page {
                Some(p) if top.leaf => (p.lower_bound(key)?, None),
                Some(p) => {
                    let i = p.child_index(key)?;
                    (i, Some(NodeRef::Page(p.branch_elem(i)?.1)))
                }
                None => {
                    let st = self.bucket.tx.state.borrow();
                    let r = self.bucket.tx.reader();
                    let v = tree::view(&r, &st.nodes, top.node)?;
                    if top.leaf {
                        (v.lower_bound(&r, key)?, None)
                    } else {
                        let i = v.child_index(&r, key)?;
                        (i, Some(v.child(i)?))
                    }
                }
            };
            let last = self.stack.last_mut().expect("non-empty");
            match child {
                None => {
                    if i < last.count {
                        last.index = i;
                        return Ok(true);
                    }
                    last.index = last.count.saturating_sub(1);
                    return self.step_forward();
                }
                Some(child) => {
                    last.index = i;
                    let f = self.frame(child)?;
                    self.push(f)?;
                }
            }
        }
    }

    /// Moves to the first entry whose key is `>= key`. When every key is smaller, returns
    /// `None` and stands past the end, as bbolt does: [`Cursor::next`] then returns `None` and
    /// [`Cursor::prev`] the last entry (so `seek(k)` then `prev()` finds the greatest key below
    /// `k` whether or not one is `>= k`).
    pub fn seek(&mut self, key: &[u8]) -> Result<Option<Entry<'tx>>> {
        if !self.seek_position(key)? {
            self.current = None;
            self.edge = Edge::PastEnd;
            return Ok(None);
        }
        self.current_entry()
    }

    /// Moves to the next entry. At the end returns `None` and stays on the last entry (a
    /// following [`Cursor::prev`] returns the entry before it), as bbolt does.
    #[allow(clippy::should_implement_trait)] // bbolt's name; it returns Result<Option<_>>
    pub fn next(&mut self) -> Result<Option<Entry<'tx>>> {
        self.bucket.tx.check_open()?;
        if self.edge != Edge::None {
            return Ok(None);
        }
        let Some(cur) = self.current else {
            return Ok(None);
        };
        let e = self.next_unchecked(cur)?;
        if let Some(e) = &e {
            self.ordered(Some(cur), e, true)?;
        }
        Ok(e)
    }

    fn next_unchecked(&mut self, cur: RawBytes) -> Result<Option<Entry<'tx>>> {
        if self.stale() {
            // The tree changed: find our key again. If it is gone (for example deleted through
            // this cursor), the entry now at its position is the next one.
            let key = self.bucket.tx.reader().bytes(cur);
            if !self.seek_position(key)? {
                // Nothing left after our key: stay on the last entry, as at any end.
                self.last()?;
                return Ok(None);
            }
            let top = *self.stack.last().expect("positioned");
            if self.entry_at(&top)?.key != key {
                return self.current_entry();
            }
        }
        // Fast path: the next entry is in the same leaf.
        if let Some(top) = self.stack.last_mut() {
            if top.leaf && top.index + 1 < top.count {
                top.index += 1;
                if let Some(p) = top.page {
                    let (flags, key, value) = p.leaf_elem(top.index)?;
                    self.current = Some(RawBytes::new(key));
                    return Ok(Some(Entry {
                        key,
                        value,
                        bucket: flags & LEAF_FLAG_BUCKET != 0,
                    }));
                }
                return self.current_entry();
            }
        }
        if !self.step_forward()? {
            return Ok(None);
        }
        self.current_entry()
    }

    /// Moves to the previous entry. At the start returns `None` and, as in bbolt, leaves the
    /// cursor off the front: `next` and `prev` return `None` until [`Cursor::first`],
    /// [`Cursor::last`] or [`Cursor::seek`] positions it again. After a `seek` past the last
    /// key it returns the last entry.
    pub fn prev(&mut self) -> Result<Option<Entry<'tx>>> {
        self.bucket.tx.check_open()?;
        match self.edge {
            Edge::PastEnd => return self.last(),
            Edge::PastStart => return Ok(None),
            Edge::None => {}
        }
        let Some(cur) = self.current else {
            return Ok(None);
        };
        let e = if self.stale() {
            let key = self.bucket.tx.reader().bytes(cur);
            if !self.seek_position(key)? {
                // Every remaining key is smaller than ours: the previous entry is the last.
                self.last()?
            } else if !self.step_backward()? {
                // Positioned on the first key >= ours; nothing lies before it.
                return Ok(self.off_the_front());
            } else {
                self.current_entry()?
            }
        } else if !self.step_backward()? {
            return Ok(self.off_the_front());
        } else {
            self.current_entry()?
        };
        if let Some(e) = &e {
            self.ordered(Some(cur), e, false)?;
        }
        Ok(e)
    }

    /// Moves off the front of the bucket (see [`Cursor::prev`]).
    fn off_the_front(&mut self) -> Option<Entry<'tx>> {
        self.edge = Edge::PastStart;
        self.current = None;
        None
    }

    /// Deletes the entry under the cursor. The next call to [`Cursor::next`] returns the entry
    /// that followed it. Sub-buckets cannot be deleted this way
    /// ([`crate::Error::IncompatibleValue`]); without a current entry (never positioned, or
    /// off either end) it does nothing.
    ///
    /// Deliberate differences from bbolt 1.3.6, whose cursor keeps reading the pages it was
    /// positioned on: there, `next` after `delete` skips an entry when the leaf had already
    /// been copied in the transaction (by an earlier write in it), and `delete` off the front
    /// panics. Here `next` after `delete` always returns the entry that followed the deleted
    /// one, and `delete` off an end does nothing. Every other answer of first, last, next,
    /// prev and seek matches bbolt 1.3.6 (tests/cursor_diff.rs compares them with Go).
    pub fn delete(&mut self) -> Result<()> {
        let Some(cur) = self.current else {
            return Ok(());
        };
        let key = self.bucket.tx.reader().bytes(cur);
        self.bucket.delete(key)?;
        Ok(())
    }
}

/// A bound or prefix key held by an [`Iter`]; keys up to 32 bytes need no allocation.
type KeyBuf = SmallVec<[u8; 32]>;

fn own_bound(b: Bound<&[u8]>) -> Bound<KeyBuf> {
    match b {
        Bound::Included(k) => Bound::Included(KeyBuf::from_slice(k)),
        Bound::Excluded(k) => Bound::Excluded(KeyBuf::from_slice(k)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// A double-ended iterator over a bucket's entries, optionally bounded.
pub struct Iter<'tx> {
    front: Cursor<'tx>,
    /// Created on the first call from the back; most iterations only go forward.
    back: Option<Box<Cursor<'tx>>>,
    start: Bound<KeyBuf>,
    end: Bound<KeyBuf>,
    prefix: Option<KeyBuf>,
    front_started: bool,
    back_started: bool,
    /// Last key returned from the front / back; the two ends stop when they meet.
    front_key: Option<&'tx [u8]>,
    back_key: Option<&'tx [u8]>,
    done: bool,
}

impl<'tx> Iter<'tx> {
    pub(crate) fn new(
        bucket: Bucket<'tx>,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        prefix: Option<&[u8]>,
    ) -> Iter<'tx> {
        Iter {
            front: bucket.cursor(),
            back: None,
            start: own_bound(start),
            end: own_bound(end),
            prefix: prefix.map(KeyBuf::from_slice),
            front_started: false,
            back_started: false,
            front_key: None,
            back_key: None,
            done: false,
        }
    }

    fn below_end(&self, k: &[u8]) -> bool {
        if let Some(p) = &self.prefix {
            if !k.starts_with(p) {
                return false;
            }
        }
        match &self.end {
            Bound::Included(e) => k <= e.as_slice(),
            Bound::Excluded(e) => k < e.as_slice(),
            Bound::Unbounded => true,
        }
    }

    fn above_start(&self, k: &[u8]) -> bool {
        if let Some(p) = &self.prefix {
            if !k.starts_with(p) {
                return false;
            }
        }
        match &self.start {
            Bound::Included(s) => k >= s.as_slice(),
            Bound::Excluded(s) => k > s.as_slice(),
            Bound::Unbounded => true,
        }
    }

    fn front_step(&mut self) -> Result<Option<Entry<'tx>>> {
        if self.front_started {
            return self.front.next();
        }
        self.front_started = true;
        match &self.start {
            Bound::Unbounded => self.front.first(),
            Bound::Included(s) => self.front.seek(s),
            Bound::Excluded(s) => match self.front.seek(s)? {
                Some(e) if e.key == s.as_slice() => self.front.next(),
                other => Ok(other),
            },
        }
    }

    fn back_step(&mut self) -> Result<Option<Entry<'tx>>> {
        let bucket = self.front.bucket;
        let back = self.back.get_or_insert_with(|| Box::new(bucket.cursor()));
        if self.back_started {
            return back.prev();
        }
        self.back_started = true;
        let successor;
        let upper: Option<(&[u8], bool)> = match (&self.end, &self.prefix) {
            (Bound::Included(e), _) => Some((e, true)),
            (Bound::Excluded(e), _) => Some((e, false)),
            (Bound::Unbounded, Some(p)) => {
                successor = prefix_successor(p);
                successor.as_deref().map(|s| (s, false))
            }
            (Bound::Unbounded, None) => None,
        };
        match upper {
            None => back.last(),
            Some((e, inclusive)) => match back.seek(e)? {
                Some(x) if inclusive && x.key == e => Ok(Some(x)),
                Some(_) => back.prev(),
                None => back.last(),
            },
        }
    }
}

/// The smallest key greater than every key starting with `p`, if any.
fn prefix_successor(p: &[u8]) -> Option<Vec<u8>> {
    let mut s = p.to_vec();
    while let Some(last) = s.pop() {
        if last < 0xFF {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

impl<'tx> Iterator for Iter<'tx> {
    type Item = Result<Entry<'tx>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let e = match self.front_step() {
            Ok(Some(e)) => e,
            Ok(None) => {
                self.done = true;
                return None;
            }
            Err(err) => {
                self.done = true;
                return Some(Err(err));
            }
        };
        if !self.below_end(e.key) || self.back_key.is_some_and(|b| e.key >= b) {
            self.done = true;
            return None;
        }
        self.front_key = Some(e.key);
        Some(Ok(e))
    }
}

impl<'tx> DoubleEndedIterator for Iter<'tx> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let e = match self.back_step() {
            Ok(Some(e)) => e,
            Ok(None) => {
                self.done = true;
                return None;
            }
            Err(err) => {
                self.done = true;
                return Some(Err(err));
            }
        };
        if !self.above_start(e.key) || self.front_key.is_some_and(|f| e.key <= f) {
            self.done = true;
            return None;
        }
        self.back_key = Some(e.key);
        Some(Ok(e))
    }
}
