//! Per-bucket page statistics (bbolt's `Bucket.Stats()`).
//!
//! [`Bucket::stats`] walks every page of a bucket's tree, and recursively of every sub-bucket,
//! and adds up page counts, key counts and byte usage exactly as bbolt does, so the numbers can
//! be compared one for one with Go's output. In a write transaction the walk sees the
//! transaction's uncommitted state: a dirty node counts as the page run it will be written as
//! (`ceil(size / page_size)` pages), and a changed sub-bucket counts as inline when the commit
//! would store it inline.

use std::collections::HashSet;

use crate::bucket::Bucket;
use crate::error::{Error, Result};
use crate::format::{
    BucketHeader, NodePage, Pgid, BUCKET_HEADER_SIZE, ELEMENT_SIZE, LEAF_FLAG_BUCKET,
    PAGE_HEADER_SIZE,
};
use crate::raw::RawBytes;
use crate::tree::{self, Node, NodeRef, NodeView, PageReader};
use crate::tx::{BucketId, BucketState};

/// Deepest single tree accepted (as in the tree module); deeper means cyclic page references.
const MAX_TREE_DEPTH: usize = 64;
/// Deepest bucket nesting walked; protects the call stack from hostile files.
const MAX_BUCKET_NESTING: usize = 1000;

/// Page and byte usage of a bucket and all of its sub-buckets, field for field bbolt's
/// `BucketStats`.
///
/// "Alloc" counts whole pages (`pages × page_size`); "inuse" counts the bytes actually used:
/// the 16-byte page header, the 16-byte element headers and the key and value bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct BucketStats {
    /// Number of branch pages (a page run counts once).
    pub branch_page_n: u64,
    /// Number of extra pages in branch page runs.
    pub branch_overflow_n: u64,
    /// Number of leaf pages of paged (non-inline) buckets (a page run counts once).
    pub leaf_page_n: u64,
    /// Number of extra pages in leaf page runs.
    pub leaf_overflow_n: u64,
    /// Number of leaf elements: key/value pairs plus sub-bucket entries, in this bucket and
    /// all sub-buckets (inline ones included).
    pub key_n: u64,
    /// Nesting depth: the levels of this bucket's tree plus the deepest sub-bucket's depth.
    pub depth: u64,
    /// Bytes allocated to branch pages (`(branch_page_n + branch_overflow_n) × page_size`).
    pub branch_alloc: u64,
    /// Bytes used in branch pages.
    pub branch_inuse: u64,
    /// Bytes allocated to leaf pages (`(leaf_page_n + leaf_overflow_n) × page_size`).
    pub leaf_alloc: u64,
    /// Bytes used in leaf pages.
    pub leaf_inuse: u64,
    /// Number of buckets, this one included.
    pub bucket_n: u64,
    /// Number of inline buckets (stored inside their parent's leaf), this one included.
    pub inline_bucket_n: u64,
    /// Bytes used by the page images of inline buckets.
    pub inline_bucket_inuse: u64,
}

impl BucketStats {
    /// Adds `other` into `self` the way bbolt's `BucketStats.Add` does: every counter is
    /// summed, except `depth`, which becomes the larger of the two.
    pub fn add(&mut self, other: &BucketStats) {
        self.branch_page_n += other.branch_page_n;
        self.branch_overflow_n += other.branch_overflow_n;
        self.leaf_page_n += other.leaf_page_n;
        self.leaf_overflow_n += other.leaf_overflow_n;
        self.key_n += other.key_n;
        self.depth = self.depth.max(other.depth);
        self.branch_alloc += other.branch_alloc;
        self.branch_inuse += other.branch_inuse;
        self.leaf_alloc += other.leaf_alloc;
        self.leaf_inuse += other.leaf_inuse;
        self.bucket_n += other.bucket_n;
        self.inline_bucket_n += other.inline_bucket_n;
        self.inline_bucket_inuse += other.inline_bucket_inuse;
    }
}

impl std::ops::AddAssign<&BucketStats> for BucketStats {
    /// Same as [`BucketStats::add`].
    fn add_assign(&mut self, other: &BucketStats) {
        self.add(other);
    }
}

impl Bucket<'_> {
    /// Page and byte statistics of this bucket and, recursively, all its sub-buckets,
    /// computed as bbolt's `Bucket.Stats()` computes them.
    ///
    /// In a read transaction the result equals Go's for the same file. In a write transaction
    /// it describes the uncommitted state (Go's would describe the snapshot the transaction
    /// started from): each dirty node counts as a page run of `ceil(size / page_size)` pages,
    /// measured with the separator keys and sub-bucket values the commit will write, and a
    /// changed sub-bucket counts as inline when the commit would inline it (a single leaf
    /// without sub-buckets, at most a quarter page). When the commit still has to split a
    /// node (a leaf that outgrows its page because a sub-bucket's value grew), the committed
    /// numbers differ slightly.
    ///
    /// A damaged page (bad header, elements outside the page, a page reached twice, a tree
    /// deeper than 64 levels) yields [`Error::Corrupted`]; a deleted bucket yields
    /// [`Error::BucketNotFound`].
    pub fn stats(&self) -> Result<BucketStats> {
        self.tx.check_open()?;
        let st = self.tx.state.borrow();
        let me = &st.buckets[self.id];
        if me.deleted {
            return Err(Error::BucketNotFound);
        }
        let mut w = Walker {
            r: self.tx.reader(),
            nodes: &st.nodes,
            buckets: &st.buckets,
            page_size: self.tx.page_size(),
            seen: HashSet::new(),
        };
        let inline = me.parent.is_some() && w.would_be_inline(me)?;
        w.bucket(me.root, Some(self.id), inline, 0)
    }
}

/// State of one stats walk over a transaction's buckets.
struct Walker<'a> {
    r: PageReader<'a>,
    nodes: &'a [Node],
    buckets: &'a [BucketState],
    page_size: usize,
    /// Page ids already visited: a second visit means a corrupt (shared or cyclic) page graph.
    seen: HashSet<Pgid>,
}

/// Reads a little-endian u32 at `off` of `b`, or reports the page as corrupt.
fn u32_at(b: &[u8], off: usize, pgid: Pgid) -> Result<u64> {
    b.get(off..off + 4)
        .map(|s| u64::from(u32::from_le_bytes([s[0], s[1], s[2], s[3]])))
        .ok_or_else(|| Error::corrupted(pgid, "element header lies outside the page"))
}

/// Bytes in use in a page image, computed as bbolt does from the last element's position:
/// header, element headers, and all keys and values.
fn page_inuse(data: &[u8], page: &NodePage<'_>) -> Result<u64> {
    let n = page.count();
    let pgid = page.pgid();
    if n == 0 {
        return Ok(PAGE_HEADER_SIZE as u64);
    }
    // Validates that the last element's key (and value) lie inside the page.
    let last = PAGE_HEADER_SIZE + (n - 1) * ELEMENT_SIZE;
    let tail = if page.is_leaf() {
        page.leaf_elem(n - 1)?;
        u32_at(data, last + 4, pgid)?
            + u32_at(data, last + 8, pgid)?
            + u32_at(data, last + 12, pgid)?
    } else {
        page.key(n - 1)?;
        u32_at(data, last, pgid)? + u32_at(data, last + 4, pgid)?
    };
    Ok((PAGE_HEADER_SIZE + (n - 1) * ELEMENT_SIZE) as u64 + tail)
}

/// One node of a tree, clean or dirty, with what the stats need about it.
struct Visited<'a> {
    view: NodeView<'a>,
    /// Whether the node is a dirty (uncommitted) node.
    dirty: bool,
    /// Extra pages of its run.
    overflow: u64,
    /// Bytes in use.
    inuse: u64,
}

/// What the commit will store as a sub-bucket's value, when it rewrites that value.
#[derive(Clone, Copy)]
enum NewValue {
    /// The value stays as it is on the page.
    Unchanged,
    /// The value will be rewritten with this many bytes.
    Len(usize),
}

impl<'a> Walker<'a> {
    /// Extra pages of the run a node of `size` bytes is written as.
    fn overflow_for(&self, size: u64) -> u64 {
        size.div_ceil(self.page_size as u64).max(1) - 1
    }

    /// Resolves and measures one node.
    fn visit(&mut self, nref: NodeRef) -> Result<Visited<'a>> {
        match nref {
            NodeRef::Page(pgid) => {
                if !self.seen.insert(pgid) {
                    return Err(Error::corrupted(
                        pgid,
                        "page reached twice while walking buckets (multiple references)",
                    ));
                }
                let (h, run) = self.r.run(pgid)?;
                let page = NodePage::parse(run, pgid)?;
                Ok(Visited {
                    view: NodeView::Page(page),
                    dirty: false,
                    overflow: u64::from(h.overflow),
                    inuse: page_inuse(run, &page)?,
                })
            }
            NodeRef::Inline(raw) => {
                let data = self.r.bytes(raw);
                let view = tree::view(&self.r, self.nodes, nref)?;
                let NodeView::Page(page) = view else {
                    return Err(Error::corrupted(
                        0,
                        "inline bucket did not resolve to a page",
                    ));
                };
                Ok(Visited {
                    view,
                    dirty: false,
                    overflow: 0,
                    inuse: page_inuse(data, &page)?,
                })
            }
            NodeRef::Dirty(id) => {
                let node = self.nodes.get(id).ok_or_else(|| {
                    Error::corrupted(0, format!("dirty node {id} does not exist"))
                })?;
                let view = NodeView::Dirty(node);
                // The commit rewrites each separator key of a dirty branch to the first key
                // of its dirty child; measure the branch with those keys.
                let inuse = match node {
                    Node::Leaf(_) => node.size() as u64,
                    Node::Branch(entries) => {
                        let mut size = PAGE_HEADER_SIZE as u64;
                        for e in entries {
                            let key_len = match e.child {
                                NodeRef::Dirty(c) => self.first_key_len(c)?,
                                _ => e.key.len(),
                            };
                            size += (ELEMENT_SIZE + key_len) as u64;
                        }
                        size
                    }
                };
                Ok(Visited {
                    view,
                    dirty: true,
                    overflow: self.overflow_for(inuse),
                    inuse,
                })
            }
        }
    }

    /// Length of the first key the dirty node `id` will have once written (its leftmost
    /// dirty descendant's first key, as the commit propagates it).
    fn first_key_len(&self, mut id: usize) -> Result<usize> {
        for _ in 0..MAX_TREE_DEPTH {
            let node = self
                .nodes
                .get(id)
                .ok_or_else(|| Error::corrupted(0, format!("dirty node {id} does not exist")))?;
            match node {
                Node::Branch(e) => match e.first() {
                    Some(first) => match first.child {
                        NodeRef::Dirty(c) => id = c,
                        _ => return Ok(first.key.len()),
                    },
                    None => return Ok(0),
                },
                Node::Leaf(e) => return Ok(e.first().map_or(0, |x| x.key.len())),
            }
        }
        Err(tree::too_deep(NodeRef::Dirty(id)))
    }

    /// The size of the page image the commit would store inline for the (non-root) bucket
    /// `b`, or `None` when it would be paged; mirrors the rule the commit applies.
    fn inline_size(&self, b: &BucketState) -> Result<Option<usize>> {
        match b.root {
            NodeRef::Inline(raw) => Ok(Some(raw.len())),
            NodeRef::Page(_) if !b.dirty => Ok(None),
            root => {
                let v = tree::view(&self.r, self.nodes, root)?;
                if !v.is_leaf() {
                    return Ok(None);
                }
                let mut size = PAGE_HEADER_SIZE;
                for i in 0..v.count() {
                    let (flags, k, val) = v.leaf(&self.r, i)?;
                    if flags & LEAF_FLAG_BUCKET != 0 {
                        return Ok(None);
                    }
                    size += ELEMENT_SIZE + k.len() + val.len();
                }
                Ok((size <= self.page_size / 4).then_some(size))
            }
        }
    }

    /// Whether the (non-root) bucket `b` is, or after the commit will be, stored inline.
    fn would_be_inline(&self, b: &BucketState) -> Result<bool> {
        Ok(self.inline_size(b)?.is_some())
    }

    /// Stats of the bucket whose tree starts at `root`. `registered` is the bucket's index
    /// when the transaction has opened it (its children may then have uncommitted state);
    /// `inline` says whether the bucket is stored inline; `nesting` is its bucket depth.
    fn bucket(
        &mut self,
        root: NodeRef,
        registered: Option<BucketId>,
        inline: bool,
        nesting: usize,
    ) -> Result<BucketStats> {
        if nesting > MAX_BUCKET_NESTING {
            return Err(Error::corrupted(
                root_pgid(root),
                format!("buckets nested deeper than {MAX_BUCKET_NESTING} levels"),
            ));
        }
        let mut s = BucketStats {
            bucket_n: 1,
            inline_bucket_n: u64::from(inline),
            ..BucketStats::default()
        };
        let mut sub = BucketStats::default();
        // Depth-first over the tree with an explicit stack: (node, depth below the root).
        let mut stack: Vec<(NodeRef, usize)> = vec![(root, 0)];
        while let Some((nref, depth)) = stack.pop() {
            if depth >= MAX_TREE_DEPTH {
                return Err(tree::too_deep(nref));
            }
            let node = self.visit(nref)?;
            if node.view.is_leaf() {
                s.key_n += node.view.count() as u64;
                if inline {
                    s.inline_bucket_inuse += node.inuse;
                } else {
                    // Sub-bucket values the commit rewrites change this leaf's size.
                    let mut size = node.inuse;
                    let mut rewritten = node.dirty;
                    for i in 0..node.view.count() {
                        let (flags, key, value) = node.view.leaf(&self.r, i)?;
                        if flags & LEAF_FLAG_BUCKET != 0 {
                            let (child, new) = self.child(registered, key, value, nref, nesting)?;
                            sub.add(&child);
                            if let NewValue::Len(n) = new {
                                size = size - value.len() as u64 + n as u64;
                                rewritten = true;
                            }
                        }
                    }
                    s.leaf_page_n += 1;
                    s.leaf_inuse += size;
                    s.leaf_overflow_n += if rewritten {
                        self.overflow_for(size)
                    } else {
                        node.overflow
                    };
                }
            } else {
                s.branch_page_n += 1;
                s.branch_inuse += node.inuse;
                s.branch_overflow_n += node.overflow;
                // Push in reverse so children are visited in key order.
                for i in (0..node.view.count()).rev() {
                    stack.push((node.view.child(i)?, depth + 1));
                }
            }
            s.depth = s.depth.max(depth as u64 + 1);
        }
        let ps = self.page_size as u64;
        s.branch_alloc = (s.branch_page_n + s.branch_overflow_n) * ps;
        s.leaf_alloc = (s.leaf_page_n + s.leaf_overflow_n) * ps;
        s.depth += sub.depth;
        s.add(&sub);
        Ok(s)
    }

    /// Stats of the sub-bucket stored under `key` with the on-page `value`, preferring the
    /// transaction's own (possibly uncommitted) state when it has opened that bucket; also
    /// says what the commit will store as the value.
    fn child(
        &mut self,
        parent: Option<BucketId>,
        key: &[u8],
        value: &'a [u8],
        at: NodeRef,
        nesting: usize,
    ) -> Result<(BucketStats, NewValue)> {
        let buckets = self.buckets;
        let open = parent
            .and_then(|p| buckets.get(p))
            .and_then(|p| p.children.get(&self.r, key))
            .filter(|&c| buckets.get(c).is_some_and(|b| !b.deleted));
        if let Some(c) = open {
            let b = &buckets[c];
            let inline = self.inline_size(b)?;
            let stats = self.bucket(b.root, Some(c), inline.is_some(), nesting + 1)?;
            let new = if b.dirty {
                NewValue::Len(BUCKET_HEADER_SIZE + inline.unwrap_or(0))
            } else {
                NewValue::Unchanged
            };
            return Ok((stats, new));
        }
        let pgid = root_pgid(at);
        let h = BucketHeader::decode(value, pgid)?;
        let stats = if h.root == 0 {
            let image = value.get(BUCKET_HEADER_SIZE..).unwrap_or_default();
            if image.len() < PAGE_HEADER_SIZE {
                return Err(Error::corrupted(
                    pgid,
                    format!("inline bucket value of {} bytes is too short", value.len()),
                ));
            }
            let root = NodeRef::Inline(RawBytes::new(image));
            self.bucket(root, None, true, nesting + 1)?
        } else {
            self.bucket(NodeRef::Page(h.root), None, false, nesting + 1)?
        };
        Ok((stats, NewValue::Unchanged))
    }
}

/// The page id to name in an error about `nref` (0 when it is not a page).
fn root_pgid(nref: NodeRef) -> Pgid {
    match nref {
        NodeRef::Page(p) => p,
        _ => 0,
    }
}
