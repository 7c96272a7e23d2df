//! The copy-on-write B+tree of one bucket.
//!
//! Clean parts of a tree are pages in the memory map; a write transaction copies the nodes it
//! touches into memory ("materialises" them, freeing their old pages) and edits them there.
//! Unlike bbolt, nodes are split as soon as they outgrow a page and merged as soon as they fall
//! below a quarter page, so a transaction costs O(log n) per operation however large it grows.
//! At commit, `spill` serialises dirty nodes to newly allocated pages, children first.

use crate::error::{Error, Result};
use crate::format::{
    self, NodePage, PageHeader, Pgid, ELEMENT_SIZE, LEAF_FLAG_BUCKET, PAGE_HEADER_SIZE,
};
use crate::raw::RawBytes;

/// Index of a dirty node in the transaction's node arena.
pub(crate) type NodeId = usize;

/// Deepest tree we accept; deeper means a corrupt (cyclic) page graph.
pub(crate) const MAX_DEPTH: usize = 64;
/// Nodes with this many entries or fewer are never split (bbolt's 2 × MinKeysPerPage).
const MIN_SPLIT_ENTRIES: usize = 4;
/// A page holds fewer than 0xFFFF elements.
const MAX_PAGE_ENTRIES: usize = 0xFFFE;

/// Where a node lives.
#[derive(Clone, Copy, Debug)]
pub(crate) enum NodeRef {
    /// A clean page in the map.
    Page(Pgid),
    /// The page image of an inline bucket, inside its parent's leaf value.
    Inline(RawBytes),
    /// A dirty node in the arena.
    Dirty(NodeId),
}

/// A key held by a dirty node: its bytes plus its first 8 bytes as a big-endian integer, so
/// that binary search rarely has to follow the pointer (a cache miss) to compare.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Key {
    prefix: u64,
    pub raw: RawBytes,
}

impl Key {
    pub(crate) fn new(raw: RawBytes, bytes: &[u8]) -> Key {
        Key {
            prefix: format::prefix8(bytes),
            raw,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.raw.len()
    }

    const EMPTY: Key = Key {
        prefix: 0,
        raw: RawBytes::EMPTY,
    };

    /// Compares this key with a search key.
    #[inline]
    fn cmp_probe(&self, r: &PageReader<'_>, p: &Probe<'_>) -> std::cmp::Ordering {
        match self.prefix.cmp(&p.prefix) {
            std::cmp::Ordering::Equal => r.bytes(self.raw).cmp(p.key),
            o => o,
        }
    }
}

/// A search key with its precomputed prefix.
pub(crate) struct Probe<'k> {
    prefix: u64,
    key: &'k [u8],
}

impl<'k> Probe<'k> {
    pub(crate) fn new(key: &'k [u8]) -> Probe<'k> {
        Probe {
            prefix: format::prefix8(key),
            key,
        }
    }
}

/// A key/value (or sub-bucket) entry of a leaf.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LeafEntry {
    pub flags: u32,
    pub key: Key,
    pub value: RawBytes,
}

/// A child pointer of a branch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BranchEntry {
    pub key: Key,
    pub child: NodeRef,
}

/// A dirty in-memory node.
#[derive(Debug)]
pub(crate) enum Node {
    Leaf(Vec<LeafEntry>),
    Branch(Vec<BranchEntry>),
}

impl Node {
    fn len(&self) -> usize {
        match self {
            Node::Leaf(e) => e.len(),
            Node::Branch(e) => e.len(),
        }
    }

    /// Serialized size in bytes.
    pub(crate) fn size(&self) -> usize {
        match self {
            Node::Leaf(e) => format::node_size(e.iter().map(|x| (x.key.len(), x.value.len()))),
            Node::Branch(e) => format::node_size(e.iter().map(|x| (x.key.len(), 0))),
        }
    }

    fn first_key(&self) -> Key {
        match self {
            Node::Leaf(e) => e.first().map(|x| x.key).unwrap_or(Key::EMPTY),
            Node::Branch(e) => e.first().map(|x| x.key).unwrap_or(Key::EMPTY),
        }
    }

    fn is_leaf(&self) -> bool {
        matches!(self, Node::Leaf(_))
    }
}

/// Read access to the pages of one transaction's snapshot.
#[derive(Clone, Copy)]
pub(crate) struct PageReader<'a> {
    pub data: &'a [u8],
    pub page_size: usize,
    /// High-water mark of the snapshot: valid page ids are `2..hwm`.
    pub hwm: Pgid,
}

impl<'a> PageReader<'a> {
    /// The bytes behind a `RawBytes` captured in this transaction.
    pub(crate) fn bytes(&self, r: RawBytes) -> &'a [u8] {
        // SAFETY: every RawBytes in a transaction points into the transaction's memory map or
        // arena (see `raw`), both of which outlive the `&'a` borrow of the transaction that
        // this reader was built from.
        unsafe { r.get() }
    }

    /// The whole run (header plus overflow pages) of page `pgid`, after checking that the id
    /// is in bounds, the header names the same id and the run fits below the high-water mark.
    pub(crate) fn run(&self, pgid: Pgid) -> Result<(PageHeader, &'a [u8])> {
        if pgid < 2 || pgid >= self.hwm {
            return Err(Error::corrupted(
                pgid,
                format!("page id out of bounds (data pages are 2..{})", self.hwm),
            ));
        }
        let ps = self.page_size as u64;
        let off = (pgid * ps) as usize;
        let first = self
            .data
            .get(off..off + self.page_size)
            .ok_or_else(|| Error::corrupted(pgid, "page lies beyond the mapped file"))?;
        let h = PageHeader::decode(first, pgid)?;
        if h.id != pgid {
            return Err(Error::corrupted(
                pgid,
                format!(
                    "page header says id {} (misplaced or overwritten page)",
                    h.id
                ),
            ));
        }
        let end = pgid + 1 + u64::from(h.overflow);
        if end > self.hwm {
            return Err(Error::corrupted(
                pgid,
                format!(
                    "overflow of {} pages runs past the high-water mark {}",
                    h.overflow, self.hwm
                ),
            ));
        }
        let run = self
            .data
            .get(off..(end * ps) as usize)
            .ok_or_else(|| Error::corrupted(pgid, "page run lies beyond the mapped file"))?;
        Ok((h, run))
    }

    /// Page `pgid` as a branch or leaf.
    #[inline]
    pub(crate) fn node_page(&self, pgid: Pgid) -> Result<NodePage<'a>> {
        match self.node_page_fast(pgid) {
            Some(p) => Ok(p),
            None => Err(self.node_page_error(pgid)),
        }
    }

    /// [`PageReader::node_page`] on the hot path: the same checks, with `None` for any
    /// failure (the error is then rebuilt by [`PageReader::node_page_error`]).
    #[inline(always)]
    pub(crate) fn node_page_fast(&self, pgid: Pgid) -> Option<NodePage<'a>> {
        if pgid < 2 || pgid >= self.hwm {
            return None;
        }
        let off = pgid as usize * self.page_size;
        let header: &[u8; format::PAGE_HEADER_SIZE] = self
            .data
            .get(off..off + format::PAGE_HEADER_SIZE)?
            .try_into()
            .ok()?;
        let h = PageHeader::from_bytes(header);
        let end = pgid.checked_add(1 + u64::from(h.overflow))?;
        if h.id != pgid || end > self.hwm {
            return None;
        }
        let run = self.data.get(off..end as usize * self.page_size)?;
        NodePage::with_header(run, pgid, &h).ok()
    }

    /// Why page `pgid` is not a readable branch or leaf.
    #[cold]
    fn node_page_error(&self, pgid: Pgid) -> Error {
        match self
            .run(pgid)
            .and_then(|(h, run)| NodePage::with_header(run, pgid, &h))
        {
            Err(e) => e,
            Ok(_) => Error::corrupted(pgid, "page could not be read"),
        }
    }
}

/// A read-only view of any node, clean or dirty.
#[derive(Clone, Copy)]
pub(crate) enum NodeView<'a> {
    Page(NodePage<'a>),
    Dirty(&'a Node),
}

impl<'a> NodeView<'a> {
    pub(crate) fn count(&self) -> usize {
        match self {
            NodeView::Page(p) => p.count(),
            NodeView::Dirty(n) => n.len(),
        }
    }
    pub(crate) fn is_leaf(&self) -> bool {
        match self {
            NodeView::Page(p) => p.is_leaf(),
            NodeView::Dirty(n) => n.is_leaf(),
        }
    }
    /// Leaf entry `i`: (flags, key, value).
    pub(crate) fn leaf(&self, r: &PageReader<'a>, i: usize) -> Result<(u32, &'a [u8], &'a [u8])> {
        match self {
            NodeView::Page(p) => p.leaf_elem(i),
            NodeView::Dirty(Node::Leaf(e)) => {
                Ok((e[i].flags, r.bytes(e[i].key.raw), r.bytes(e[i].value)))
            }
            NodeView::Dirty(Node::Branch(_)) => unreachable!("leaf() on a branch node"),
        }
    }
    /// Child of branch entry `i`.
    pub(crate) fn child(&self, i: usize) -> Result<NodeRef> {
        match self {
            NodeView::Page(p) => Ok(NodeRef::Page(p.branch_elem(i)?.1)),
            NodeView::Dirty(Node::Branch(e)) => Ok(e[i].child),
            NodeView::Dirty(Node::Leaf(_)) => unreachable!("child() on a leaf node"),
        }
    }
    /// First index whose key is `>= key`.
    pub(crate) fn lower_bound(&self, r: &PageReader<'a>, key: &[u8]) -> Result<usize> {
        match self {
            NodeView::Page(p) => p.lower_bound(key),
            NodeView::Dirty(Node::Leaf(e)) => {
                let p = Probe::new(key);
                Ok(e.partition_point(|x| x.key.cmp_probe(r, &p).is_lt()))
            }
            NodeView::Dirty(Node::Branch(e)) => {
                let p = Probe::new(key);
                Ok(e.partition_point(|x| x.key.cmp_probe(r, &p).is_lt()))
            }
        }
    }
    /// Branch child whose range holds `key`.
    pub(crate) fn child_index(&self, r: &PageReader<'a>, key: &[u8]) -> Result<usize> {
        match self {
            NodeView::Page(p) => p.child_index(key),
            NodeView::Dirty(Node::Branch(e)) => {
                // last entry with key <= target, clamped to 0
                let p = Probe::new(key);
                Ok(e.partition_point(|x| x.key.cmp_probe(r, &p).is_le())
                    .saturating_sub(1))
            }
            NodeView::Dirty(Node::Leaf(_)) => unreachable!("child_index() on a leaf node"),
        }
    }
}

/// Resolves a node reference to a view.
pub(crate) fn view<'a>(
    r: &PageReader<'a>,
    nodes: &'a [Node],
    nref: NodeRef,
) -> Result<NodeView<'a>> {
    match nref {
        NodeRef::Page(p) => Ok(NodeView::Page(r.node_page(p)?)),
        NodeRef::Inline(raw) => Ok(NodeView::Page(inline_page(r, raw)?)),
        NodeRef::Dirty(id) => Ok(NodeView::Dirty(&nodes[id])),
    }
}

/// The page image of an inline bucket, validated as a leaf.
pub(crate) fn inline_page<'a>(r: &PageReader<'a>, raw: RawBytes) -> Result<NodePage<'a>> {
    let page = NodePage::parse(r.bytes(raw), 0).map_err(inline_error)?;
    if !page.is_leaf() {
        return Err(Error::corrupted(0, "inline bucket page is not a leaf"));
    }
    Ok(page)
}

fn inline_error(e: Error) -> Error {
    match e {
        Error::Corrupted { page, reason } => {
            Error::corrupted(page, format!("inline bucket: {reason}"))
        }
        e => e,
    }
}

/// A leaf entry found by [`get`]: (flags, key, value).
pub(crate) type FoundEntry<'a> = (u32, &'a [u8], &'a [u8]);

/// Looks up `key`; returns its (flags, stored key, value).
#[inline]
pub(crate) fn get<'a>(
    r: &PageReader<'a>,
    nodes: &'a [Node],
    root: NodeRef,
    key: &[u8],
) -> Result<Option<FoundEntry<'a>>> {
    if let NodeRef::Page(p) = root {
        // A clean root means a clean tree (dirty nodes hang only under dirty parents).
        if let Some(found) = get_clean(r, p, key) {
            return Ok(found);
        }
    }
    get_general(r, nodes, root, key)
}

/// [`get`] through clean pages only, without building errors: `None` when anything is
/// invalid, and [`get_general`] then reports exactly what.
#[inline]
fn get_clean<'a>(r: &PageReader<'a>, root: Pgid, key: &[u8]) -> Option<Option<FoundEntry<'a>>> {
    let mut pgid = root;
    for _ in 0..MAX_DEPTH {
        let page = r.node_page_fast(pgid)?;
        if !page.is_leaf() {
            pgid = page.child_for_opt(key)?;
            continue;
        }
        let i = page.lower_bound_opt(key)?;
        if i < page.count() {
            let (flags, k, val) = page.leaf_elem_opt(i)?;
            if k == key {
                return Some(Some((flags, k, val)));
            }
        }
        return Some(None);
    }
    None
}

/// [`get`] over any mix of clean pages, inline pages and dirty nodes.
fn get_general<'a>(
    r: &PageReader<'a>,
    nodes: &'a [Node],
    root: NodeRef,
    key: &[u8],
) -> Result<Option<FoundEntry<'a>>> {
    let mut nref = root;
    for _ in 0..MAX_DEPTH {
        let v = view(r, nodes, nref)?;
        if v.is_leaf() {
            let i = v.lower_bound(r, key)?;
            if i < v.count() {
                let (flags, k, val) = v.leaf(r, i)?;
                if k == key {
                    return Ok(Some((flags, k, val)));
                }
            }
            return Ok(None);
        }
        nref = v.child(v.child_index(r, key)?)?;
    }
    Err(too_deep(nref))
}

/// Pages of the clean (on-disk) nodes on the path from `root` to the leaf where `key` belongs:
/// what a write of `key` would have to copy.
pub(crate) fn clean_path_pages(
    r: &PageReader<'_>,
    nodes: &[Node],
    root: NodeRef,
    key: &[u8],
) -> Result<u64> {
    let mut nref = root;
    let mut pages = 0;
    for _ in 0..MAX_DEPTH {
        if let NodeRef::Page(p) = nref {
            let (h, _) = r.run(p)?;
            pages += u64::from(h.overflow) + 1;
        }
        let v = view(r, nodes, nref)?;
        if v.is_leaf() {
            return Ok(pages);
        }
        nref = v.child(v.child_index(r, key)?)?;
    }
    Err(too_deep(nref))
}

pub(crate) fn too_deep(nref: NodeRef) -> Error {
    let page = match nref {
        NodeRef::Page(p) => p,
        _ => 0,
    };
    Error::corrupted(
        page,
        format!("tree deeper than {MAX_DEPTH} levels (cyclic page references?)"),
    )
}

/// Writes one batch of serialized pages.
pub(crate) type FlushFn<'s> = dyn FnMut(&mut Vec<(Pgid, Vec<u8>)>) -> Result<()> + 's;

/// Serialized pages on their way to the file. Once `limit` bytes are buffered they are handed
/// to `flush` (which writes them, sorted by page id), so a huge commit never holds all of its
/// pages in memory at once. Early writes are safe: every page goes to space that is free in the
/// committed state, and nothing points at it until the meta page is written.
pub(crate) struct PageSink<'s> {
    pub pages: Vec<(Pgid, Vec<u8>)>,
    bytes: usize,
    limit: usize,
    flush: &'s mut FlushFn<'s>,
}

impl<'s> PageSink<'s> {
    pub(crate) fn new(limit: usize, flush: &'s mut FlushFn<'s>) -> PageSink<'s> {
        PageSink {
            pages: Vec::new(),
            bytes: 0,
            limit,
            flush,
        }
    }

    pub(crate) fn push(&mut self, pgid: Pgid, buf: Vec<u8>) -> Result<()> {
        self.bytes += buf.len();
        self.pages.push((pgid, buf));
        if self.bytes >= self.limit {
            (self.flush)(&mut self.pages)?;
            self.pages.clear();
            self.bytes = 0;
        }
        Ok(())
    }
}

/// Mutable access to one transaction's dirty nodes, with the pages they came from.
pub(crate) struct TreeMut<'a, 'r> {
    pub reader: PageReader<'r>,
    pub nodes: &'a mut Vec<Node>,
    /// Page runs (start, pages) no longer used by this transaction's tree.
    pub freed: &'a mut Vec<(Pgid, u64)>,
    pub fill_percent: f64,
}

/// One step of a root-to-leaf path: node and the index taken (or found, at the leaf).
/// Root-to-leaf (node, index) steps; held inline for any realistic depth.
type Path = smallvec::SmallVec<[(NodeId, usize); 8]>;

impl<'a, 'r> TreeMut<'a, 'r> {
    /// Makes `nref` a dirty node (copying a page, whose run is freed) and returns its id.
    pub(crate) fn materialize(&mut self, nref: NodeRef) -> Result<NodeId> {
        let page = match nref {
            NodeRef::Dirty(id) => return Ok(id),
            NodeRef::Page(pgid) => {
                let p = self.reader.node_page(pgid)?;
                self.freed
                    .push((pgid, (p.run_len() / self.reader.page_size) as u64));
                p
            }
            NodeRef::Inline(raw) => inline_page(&self.reader, raw)?,
        };
        let node = if page.is_leaf() {
            let mut v = Vec::with_capacity(page.count() + 1);
            for i in 0..page.count() {
                let (flags, k, val) = page.leaf_elem(i)?;
                v.push(LeafEntry {
                    flags,
                    key: Key::new(RawBytes::new(k), k),
                    value: RawBytes::new(val),
                });
            }
            Node::Leaf(v)
        } else {
            let mut v = Vec::with_capacity(page.count() + 1);
            for i in 0..page.count() {
                let (k, child) = page.branch_elem(i)?;
                v.push(BranchEntry {
                    key: Key::new(RawBytes::new(k), k),
                    child: NodeRef::Page(child),
                });
            }
            Node::Branch(v)
        };
        self.nodes.push(node);
        Ok(self.nodes.len() - 1)
    }

    /// Walks from the root to the leaf that holds (or would hold) `key`, materialising every
    /// node on the way.
    fn descend(&mut self, root: &mut NodeRef, key: &[u8]) -> Result<Path> {
        let mut path = Path::new();
        let probe = Probe::new(key);
        let mut id = self.materialize(*root)?;
        *root = NodeRef::Dirty(id);
        for _ in 0..MAX_DEPTH {
            let r = self.reader;
            match &self.nodes[id] {
                Node::Leaf(e) => {
                    let i = e.partition_point(|x| x.key.cmp_probe(&r, &probe).is_lt());
                    path.push((id, i));
                    return Ok(path);
                }
                Node::Branch(e) => {
                    let i = e
                        .partition_point(|x| x.key.cmp_probe(&r, &probe).is_le())
                        .saturating_sub(1);
                    let child = e[i].child;
                    let cid = self.materialize(child)?;
                    if let Node::Branch(e) = &mut self.nodes[id] {
                        e[i].child = NodeRef::Dirty(cid);
                    }
                    path.push((id, i));
                    id = cid;
                }
            }
        }
        Err(too_deep(*root))
    }

    /// Online compaction's step: materialises the path from the root to the leaf that holds
    /// `key` (so those nodes move to newly allocated pages at commit). With a `limit`, it then
    /// packs, bottom-up, each node of the path and every sibling to its right under the same
    /// parent: each leaf takes entries from the next (the whole next node when it fits) until
    /// it holds `limit` bytes, as copy-compaction's full pages do, and a branch absorbs the
    /// next branches that fit whole. The content is unchanged.
    /// Returns the number of nodes that disappeared into a neighbour.
    pub(crate) fn pack(
        &mut self,
        root: &mut NodeRef,
        key: &[u8],
        limit: Option<usize>,
    ) -> Result<usize> {
        let path = self.descend(root, key)?;
        let Some(limit) = limit else {
            return Ok(0);
        };
        let mut absorbed = 0;
        for level in (1..path.len()).rev() {
            let (parent, mut idx) = path[level - 1];
            let mut cur = path[level].0;
            loop {
                let next = match &self.nodes[parent] {
                    Node::Branch(pe) if idx + 1 < pe.len() => pe[idx + 1].child,
                    _ => break,
                };
                let sib = self.materialize(next)?;
                let same_kind = self.nodes[cur].is_leaf() == self.nodes[sib].is_leaf();
                let whole = same_kind
                    && self.nodes[cur].size() + self.nodes[sib].size() - PAGE_HEADER_SIZE <= limit
                    && self.nodes[cur].len() + self.nodes[sib].len() <= MAX_PAGE_ENTRIES;
                if whole {
                    let moved = std::mem::replace(&mut self.nodes[sib], Node::Leaf(Vec::new()));
                    match (&mut self.nodes[cur], moved) {
                        (Node::Leaf(l), Node::Leaf(r)) => l.extend(r),
                        (Node::Branch(l), Node::Branch(r)) => l.extend(r),
                        _ => unreachable!("kinds compared above"),
                    }
                    if let Node::Branch(pe) = &mut self.nodes[parent] {
                        pe.remove(idx + 1);
                    }
                    absorbed += 1;
                    continue;
                }
                // Not whole: fill a leaf from the sibling's first entries, point the parent at
                // the sibling's copy (its new first key is the separator), go on from it.
                // Branches only merge whole: moving a branch's first children to its left
                // neighbour would move leaves that a later packing step of the same round
                // expects under their old parent.
                let moved = if same_kind && self.nodes[cur].is_leaf() {
                    self.fill_from(cur, sib, limit)
                } else {
                    0
                };
                let first = match &self.nodes[sib] {
                    Node::Leaf(e) => e.first().map(|x| x.key),
                    Node::Branch(e) => e.first().map(|x| x.key),
                };
                if let Node::Branch(pe) = &mut self.nodes[parent] {
                    pe[idx + 1].child = NodeRef::Dirty(sib);
                    if let (true, Some(k)) = (moved > 0, first) {
                        pe[idx + 1].key = k;
                    }
                }
                cur = sib;
                idx += 1;
            }
        }
        // A root branch left with one child hands the root to it.
        while let NodeRef::Dirty(rid) = *root {
            match &self.nodes[rid] {
                Node::Branch(e) if e.len() == 1 => *root = e[0].child,
                _ => break,
            }
        }
        Ok(absorbed)
    }

    /// Moves the leading entries of node `from` to the end of node `to` (same kind) while `to`
    /// stays within `limit` bytes, keeping at least one entry in `from`. Returns how many
    /// moved.
    fn fill_from(&mut self, to: NodeId, from: NodeId, limit: usize) -> usize {
        let mut room = limit.saturating_sub(self.nodes[to].size());
        let mut slots = MAX_PAGE_ENTRIES.saturating_sub(self.nodes[to].len());
        let sizes: Vec<usize> = match &self.nodes[from] {
            Node::Leaf(e) => e
                .iter()
                .map(|x| ELEMENT_SIZE + x.key.len() + x.value.len())
                .collect(),
            Node::Branch(e) => e.iter().map(|x| ELEMENT_SIZE + x.key.len()).collect(),
        };
        let mut n = 0;
        for sz in sizes.iter().take(sizes.len().saturating_sub(1)) {
            if *sz > room || slots == 0 {
                break;
            }
            room -= sz;
            slots -= 1;
            n += 1;
        }
        if n == 0 {
            return 0;
        }
        let taken = std::mem::replace(&mut self.nodes[from], Node::Leaf(Vec::new()));
        let rest = match (&mut self.nodes[to], taken) {
            (Node::Leaf(l), Node::Leaf(mut r)) => {
                l.extend(r.drain(..n));
                Node::Leaf(r)
            }
            (Node::Branch(l), Node::Branch(mut r)) => {
                l.extend(r.drain(..n));
                Node::Branch(r)
            }
            (_, other) => other,
        };
        self.nodes[from] = rest;
        n
    }

    /// Inserts or replaces `key`. `check` sees the flags of an existing entry first and may
    /// refuse the write. Returns whether the key existed.
    pub(crate) fn put(
        &mut self,
        root: &mut NodeRef,
        key: RawBytes,
        value: RawBytes,
        flags: u32,
        check: impl FnOnce(Option<u32>) -> Result<()>,
    ) -> Result<bool> {
        let kb = self.reader.bytes(key);
        let path = self.descend(root, kb)?;
        let &(leaf, i) = path.last().expect("descend returns a non-empty path");
        let r = self.reader;
        let on_right_edge = self.rightmost(&path);
        let Node::Leaf(e) = &mut self.nodes[leaf] else {
            unreachable!("descend ends at a leaf")
        };
        // Compare the inline prefixes first: a new key then never touches the stored key's
        // bytes (a cache miss into the arena or the map).
        let exists =
            i < e.len() && e[i].key.prefix == format::prefix8(kb) && r.bytes(e[i].key.raw) == kb;
        check(exists.then(|| e[i].flags))?;
        let entry = LeafEntry {
            flags,
            key: Key::new(key, kb),
            value,
        };
        // A new key past the end of the rightmost leaf is an append: like LMDB, split so that
        // the full pages stay full (sequential inserts then leave no half-empty pages).
        let appending = !exists && i == e.len() && on_right_edge;
        if exists {
            e[i] = entry;
        } else {
            e.insert(i, entry);
        }
        if appending {
            self.split_up_full(root, &path)?;
        } else {
            self.split_up(root, &path)?;
        }
        Ok(exists)
    }

    /// Whether every branch step of `path` took the last child.
    fn rightmost(&self, path: &[(NodeId, usize)]) -> bool {
        path[..path.len() - 1]
            .iter()
            .all(|&(id, i)| match &self.nodes[id] {
                Node::Branch(e) => i + 1 == e.len(),
                Node::Leaf(_) => false,
            })
    }

    /// Appends `key` after every key in the tree, filling pages completely (LMDB's append
    /// mode). Returns `Ok(false)` without changing anything when `key` is not greater than the
    /// last key (the caller then falls back to [`TreeMut::put`]).
    ///
    /// A clean page on the rightmost path that is already full (the entry would not fit in
    /// it) is left as it is: the entry starts a new node beside it instead of copying the
    /// page, so a bulk load committed in several transactions (compaction) never rewrites a
    /// full page, however large (an 8 MiB value is written once, not once per commit).
    pub(crate) fn append(
        &mut self,
        root: &mut NodeRef,
        key: RawBytes,
        value: RawBytes,
        flags: u32,
    ) -> Result<bool> {
        let kb = self.reader.bytes(key);
        // The rightmost path, read without copying anything.
        let mut refs: smallvec::SmallVec<[NodeRef; 8]> = smallvec::SmallVec::new();
        let mut nref = *root;
        loop {
            if refs.len() > MAX_DEPTH {
                return Err(too_deep(nref));
            }
            refs.push(nref);
            let v = view(&self.reader, self.nodes, nref)?;
            if v.is_leaf() {
                match v.count() {
                    0 if refs.len() > 1 => return Ok(false),
                    0 => {}
                    n => {
                        let (_, last, _) = v.leaf(&self.reader, n - 1)?;
                        if last >= kb {
                            return Ok(false);
                        }
                    }
                }
                break;
            }
            if v.count() == 0 {
                return Ok(false);
            }
            nref = v.child(v.count() - 1)?;
        }
        // The deepest level that takes the new entry: levels below it get a fresh node each.
        let leaf_extra = ELEMENT_SIZE + kb.len() + value.len();
        let branch_extra = ELEMENT_SIZE + kb.len();
        // `None`: every level is a full clean page, and the tree grows a new root.
        let mut take = None;
        for level in (0..refs.len()).rev() {
            let extra = if level == refs.len() - 1 {
                leaf_extra
            } else {
                branch_extra
            };
            if !self.clean_and_full(refs[level], extra)? {
                take = Some(level);
                break;
            }
        }
        let new_entry = LeafEntry {
            flags,
            key: Key::new(key, kb),
            value,
        };
        if take == Some(refs.len() - 1) {
            // The usual case: the rightmost leaf takes the entry.
            return self.append_in_place(root, new_entry);
        }
        // A chain of fresh nodes from the level below `take` (or the root's level) down to a
        // leaf.
        let fresh_levels = match take {
            Some(t) => refs.len() - 1 - t,
            None => refs.len(),
        };
        self.nodes.push(Node::Leaf(vec![new_entry]));
        let mut top = self.nodes.len() - 1;
        for _ in 1..fresh_levels {
            self.nodes.push(Node::Branch(vec![BranchEntry {
                key: Key::new(key, kb),
                child: NodeRef::Dirty(top),
            }]));
            top = self.nodes.len() - 1;
        }
        let Some(take) = take else {
            // Every level is full: a new root over the old one and the chain.
            let old = refs[0];
            let first = match view(&self.reader, self.nodes, old)? {
                v if v.is_leaf() => v.leaf(&self.reader, 0)?.1,
                v => match v {
                    NodeView::Page(p) => p.key(0)?,
                    NodeView::Dirty(_) => unreachable!("a full node is a clean page"),
                },
            };
            self.nodes.push(Node::Branch(vec![
                BranchEntry {
                    key: Key::new(RawBytes::new(first), first),
                    child: old,
                },
                BranchEntry {
                    key: Key::new(key, kb),
                    child: NodeRef::Dirty(top),
                },
            ]));
            *root = NodeRef::Dirty(self.nodes.len() - 1);
            return Ok(true);
        };
        // Copy the path down to level `take` and hang the chain at its end.
        let mut path = Path::new();
        let mut id = self.materialize(*root)?;
        *root = NodeRef::Dirty(id);
        for level in 0..=take {
            let Node::Branch(e) = &self.nodes[id] else {
                return Err(Error::corrupted(
                    0,
                    "rightmost path changed type while appending",
                ));
            };
            let i = e.len() - 1;
            if level == take {
                path.push((id, i + 1));
                if let Node::Branch(e) = &mut self.nodes[id] {
                    e.push(BranchEntry {
                        key: Key::new(key, kb),
                        child: NodeRef::Dirty(top),
                    });
                }
                break;
            }
            let cid = self.materialize(e[i].child)?;
            if let Node::Branch(e) = &mut self.nodes[id] {
                e[i].child = NodeRef::Dirty(cid);
            }
            path.push((id, i));
            id = cid;
        }
        self.split_up_full(root, &path)?;
        Ok(true)
    }

    /// Whether `nref` is a clean page (in the map) whose entries plus `extra` bytes would not
    /// fit in one page.
    fn clean_and_full(&self, nref: NodeRef, extra: usize) -> Result<bool> {
        let NodeRef::Page(p) = nref else {
            return Ok(false);
        };
        let page = self.reader.node_page(p)?;
        if page.count() == 0 {
            return Ok(false); // an empty node takes any entry
        }
        let ps = self.reader.page_size;
        if page.run_len() > ps {
            return Ok(true);
        }
        let mut size = PAGE_HEADER_SIZE + extra;
        for i in 0..page.count() {
            size += ELEMENT_SIZE
                + if page.is_leaf() {
                    let (_, k, v) = page.leaf_elem(i)?;
                    k.len() + v.len()
                } else {
                    page.key(i)?.len()
                };
        }
        Ok(size > ps)
    }

    /// Appends `entry` to the rightmost leaf, copying the path to it.
    fn append_in_place(&mut self, root: &mut NodeRef, entry: LeafEntry) -> Result<bool> {
        let mut path = Path::new();
        let mut id = self.materialize(*root)?;
        *root = NodeRef::Dirty(id);
        for _ in 0..MAX_DEPTH {
            match &self.nodes[id] {
                Node::Leaf(e) => {
                    path.push((id, e.len()));
                    break;
                }
                Node::Branch(e) => {
                    let i = e.len() - 1;
                    let cid = self.materialize(e[i].child)?;
                    if let Node::Branch(e) = &mut self.nodes[id] {
                        e[i].child = NodeRef::Dirty(cid);
                    }
                    path.push((id, i));
                    id = cid;
                }
            }
        }
        let Some(&(leaf, _)) = path
            .last()
            .filter(|_| matches!(self.nodes[id], Node::Leaf(_)))
        else {
            return Err(too_deep(*root));
        };
        if let Node::Leaf(e) = &mut self.nodes[leaf] {
            e.push(entry);
        }
        self.split_up_full(root, &path)?;
        Ok(true)
    }

    /// Removes `key`; `check` sees the existing entry's flags first and may refuse.
    /// Returns the removed entry.
    pub(crate) fn delete(
        &mut self,
        root: &mut NodeRef,
        key: &[u8],
        check: impl FnOnce(u32) -> Result<()>,
    ) -> Result<Option<LeafEntry>> {
        let path = self.descend(root, key)?;
        let &(leaf, i) = path.last().expect("descend returns a non-empty path");
        let r = self.reader;
        let Node::Leaf(e) = &mut self.nodes[leaf] else {
            unreachable!("descend ends at a leaf")
        };
        if i >= e.len() || r.bytes(e[i].key.raw) != key {
            return Ok(None);
        }
        check(e[i].flags)?;
        let removed = e.remove(i);
        self.rebalance(root, &path)?;
        Ok(Some(removed))
    }

    fn needs_split(&self, id: NodeId) -> bool {
        let n = &self.nodes[id];
        n.len() > MIN_SPLIT_ENTRIES
            && (n.size() > self.reader.page_size || n.len() > MAX_PAGE_ENTRIES)
    }

    /// Splits node `id` into pieces no larger than a page (where possible). Returns the ids of
    /// the new right-hand pieces, in order; `id` keeps the leftmost part.
    fn split(&mut self, id: NodeId) -> Vec<NodeId> {
        let threshold = (self.reader.page_size as f64 * self.fill_percent.clamp(0.1, 1.0)) as usize;
        let mut pieces = Vec::new();
        let mut cur = id;
        while self.needs_split(cur) {
            let sizes: Vec<usize> = match &self.nodes[cur] {
                Node::Leaf(e) => e
                    .iter()
                    .map(|x| ELEMENT_SIZE + x.key.len() + x.value.len())
                    .collect(),
                Node::Branch(e) => e.iter().map(|x| ELEMENT_SIZE + x.key.len()).collect(),
            };
            let at = if self.fill_percent >= 1.0 {
                // Fill 100% (appends, compaction): the first part takes everything that fits in
                // one page, leaving at least one entry. bbolt's rule below would keep two back
                // and leave every appended page one entry short.
                let mut at = 1;
                let mut sz = PAGE_HEADER_SIZE + sizes[0];
                while at < sizes.len() - 1 && sz + sizes[at] <= threshold {
                    sz += sizes[at];
                    at += 1;
                }
                at
            } else {
                // First part: at least 2 entries, as many as fit under the threshold, leaving
                // at least 2 (bbolt's splitIndex rule).
                let mut at = sizes.len() - 2;
                let mut sz = PAGE_HEADER_SIZE;
                for (i, s) in sizes.iter().enumerate().take(sizes.len() - 2) {
                    if i >= 2 && sz + s > threshold {
                        at = i;
                        break;
                    }
                    sz += s;
                }
                at
            };
            let right = match &mut self.nodes[cur] {
                Node::Leaf(e) => Node::Leaf(e.split_off(at)),
                Node::Branch(e) => Node::Branch(e.split_off(at)),
            };
            self.nodes.push(right);
            cur = self.nodes.len() - 1;
            pieces.push(cur);
        }
        pieces
    }

    /// After an insert along `path`, splits overfull nodes bottom-up, growing a new root if
    /// the old root split.
    fn split_up(&mut self, root: &mut NodeRef, path: &[(NodeId, usize)]) -> Result<()> {
        for level in (0..path.len()).rev() {
            let id = path[level].0;
            if !self.needs_split(id) {
                return Ok(());
            }
            let pieces = self.split(id);
            if level == 0 {
                let mut entries = vec![BranchEntry {
                    key: self.nodes[id].first_key(),
                    child: NodeRef::Dirty(id),
                }];
                for p in pieces {
                    entries.push(BranchEntry {
                        key: self.nodes[p].first_key(),
                        child: NodeRef::Dirty(p),
                    });
                }
                self.nodes.push(Node::Branch(entries));
                let new_root = self.nodes.len() - 1;
                *root = NodeRef::Dirty(new_root);
                if self.needs_split(new_root) {
                    // A root with very many children: split it too.
                    return self.split_up(root, &[(new_root, 0)]);
                }
                return Ok(());
            }
            let (parent, idx) = path[level - 1];
            self.insert_pieces(parent, idx, &pieces);
        }
        Ok(())
    }

    /// [`TreeMut::split_up`] at fill 100 %, for appends: full pages stay full.
    fn split_up_full(&mut self, root: &mut NodeRef, path: &[(NodeId, usize)]) -> Result<()> {
        let fill = std::mem::replace(&mut self.fill_percent, 1.0);
        let r = self.split_up(root, path);
        self.fill_percent = fill;
        r
    }

    fn insert_pieces(&mut self, parent: NodeId, idx: usize, pieces: &[NodeId]) {
        let new: Vec<BranchEntry> = pieces
            .iter()
            .map(|&p| BranchEntry {
                key: self.nodes[p].first_key(),
                child: NodeRef::Dirty(p),
            })
            .collect();
        if let Node::Branch(e) = &mut self.nodes[parent] {
            e.splice(idx + 1..idx + 1, new);
        }
    }

    /// After a delete along `path`, merges underfull nodes with a sibling bottom-up and
    /// collapses a root branch with a single child.
    fn rebalance(&mut self, root: &mut NodeRef, path: &[(NodeId, usize)]) -> Result<()> {
        let threshold = self.reader.page_size / 4;
        for level in (0..path.len()).rev() {
            let id = path[level].0;
            if level == 0 {
                let NodeRef::Dirty(rid) = *root else {
                    return Ok(());
                };
                match &self.nodes[rid] {
                    // A root branch with one child hands the root to that child.
                    Node::Branch(e) if e.len() == 1 => *root = e[0].child,
                    Node::Branch(e) if e.is_empty() => self.nodes[rid] = Node::Leaf(Vec::new()),
                    _ => {}
                }
                return Ok(());
            }
            let node = &self.nodes[id];
            let min_keys = if node.is_leaf() { 1 } else { 2 };
            if node.size() > threshold && node.len() >= min_keys {
                return Ok(());
            }
            let (parent, pidx) = path[level - 1];
            let Node::Branch(pe) = &self.nodes[parent] else {
                unreachable!("parent on a path is a branch")
            };
            if self.nodes[id].len() == 0 {
                if let Node::Branch(pe) = &mut self.nodes[parent] {
                    pe.remove(pidx);
                }
                continue;
            }
            if pe.len() < 2 {
                continue;
            }
            // Merge with a sibling: the first child absorbs its right neighbour, any other
            // child moves into its left neighbour.
            let (left_idx, right_idx) = if pidx == 0 { (0, 1) } else { (pidx - 1, pidx) };
            let left_ref = pe[left_idx].child;
            let right_ref = pe[right_idx].child;
            let left = self.materialize(left_ref)?;
            let right = self.materialize(right_ref)?;
            let moved = std::mem::replace(&mut self.nodes[right], Node::Leaf(Vec::new()));
            match (&mut self.nodes[left], moved) {
                (Node::Leaf(l), Node::Leaf(r)) => l.extend(r),
                (Node::Branch(l), Node::Branch(r)) => l.extend(r),
                _ => {
                    return Err(Error::corrupted(
                        0,
                        "sibling nodes at the same depth have different types",
                    ))
                }
            }
            if let Node::Branch(pe) = &mut self.nodes[parent] {
                pe[left_idx].child = NodeRef::Dirty(left);
                pe.remove(right_idx);
            }
            if self.needs_split(left) {
                let pieces = self.split(left);
                self.insert_pieces(parent, left_idx, &pieces);
            }
        }
        Ok(())
    }

    /// Serialises the dirty nodes under `nref`, children first, into pages from `alloc`.
    /// Returns the page id of `nref` and appends (page id, page bytes) to `out`.
    ///
    /// `alloc(n, hot)` is told which pages will be rewritten by (almost) every commit that
    /// touches this tree: the root node, or every node when `all_hot` (the root bucket's small
    /// tree of bucket headers).
    pub(crate) fn spill(
        &mut self,
        nref: NodeRef,
        alloc: &mut dyn FnMut(u64, bool) -> Result<Pgid>,
        out: &mut PageSink<'_>,
        all_hot: bool,
    ) -> Result<Pgid> {
        self.spill_node(nref, alloc, out, all_hot, true)
    }

    fn spill_node(
        &mut self,
        nref: NodeRef,
        alloc: &mut dyn FnMut(u64, bool) -> Result<Pgid>,
        out: &mut PageSink<'_>,
        all_hot: bool,
        is_root: bool,
    ) -> Result<Pgid> {
        let id = match nref {
            NodeRef::Page(p) => return Ok(p),
            NodeRef::Inline(_) => self.materialize(nref)?,
            NodeRef::Dirty(id) => id,
        };
        if let Node::Branch(e) = &self.nodes[id] {
            let children: Vec<(usize, NodeId)> = e
                .iter()
                .enumerate()
                .filter_map(|(i, x)| match x.child {
                    NodeRef::Dirty(c) => Some((i, c)),
                    _ => None,
                })
                .collect();
            for (i, c) in children {
                let pgid = self.spill_node(NodeRef::Dirty(c), alloc, out, all_hot, false)?;
                let first = self.nodes[c].first_key();
                if let Node::Branch(e) = &mut self.nodes[id] {
                    e[i].child = NodeRef::Page(pgid);
                    e[i].key = first;
                }
            }
        }
        let ps = self.reader.page_size;
        let size = self.nodes[id].size();
        let pages = size.div_ceil(ps).max(1);
        let pgid = alloc(pages as u64, all_hot || is_root)?;
        let mut buf = vec![0u8; pages * ps];
        let r = self.reader;
        match &self.nodes[id] {
            Node::Leaf(e) => {
                let items = e
                    .iter()
                    .map(|x| (x.flags, r.bytes(x.key.raw), r.bytes(x.value)));
                format::write_leaf_from(&mut buf, pgid, (pages - 1) as u32, items);
            }
            Node::Branch(e) => {
                let items = e.iter().map(|x| {
                    let NodeRef::Page(p) = x.child else {
                        unreachable!("children are spilled first")
                    };
                    (r.bytes(x.key.raw), p)
                });
                format::write_branch_from(&mut buf, pgid, (pages - 1) as u32, items);
            }
        }
        out.push(pgid, buf)?;
        Ok(pgid)
    }

    /// The serialized inline image (page header + elements) of a small leaf root, or `None`
    /// when the tree is not inlineable (not a single leaf, holds sub-buckets, or larger than
    /// `max_size`).
    pub(crate) fn inline_image(
        &mut self,
        root: NodeRef,
        max_size: usize,
    ) -> Result<Option<Vec<u8>>> {
        let r = self.reader;
        let v = view(&r, self.nodes, root)?;
        if !v.is_leaf() {
            return Ok(None);
        }
        let mut items = Vec::with_capacity(v.count());
        for i in 0..v.count() {
            let (flags, k, val) = v.leaf(&r, i)?;
            if flags & LEAF_FLAG_BUCKET != 0 {
                return Ok(None);
            }
            items.push((flags, k, val));
        }
        let size = format::node_size(items.iter().map(|(_, k, v)| (k.len(), v.len())));
        if size > max_size {
            return Ok(None);
        }
        if let NodeRef::Page(p) = root {
            // The bucket gives up its page to become inline.
            let (h, _) = r.run(p)?;
            self.freed.push((p, u64::from(h.overflow) + 1));
        }
        let mut buf = vec![0u8; size];
        format::write_leaf(&mut buf, 0, 0, &items);
        Ok(Some(buf))
    }
}

/// Collects every page run of the tree under `nref` and the (key, value) of every sub-bucket
/// entry in it; used to free a deleted bucket and by the reachability walk. `seen` holds the
/// pages already collected by the same walk (across buckets): a page reached twice means a
/// shared or cyclic page graph, and is refused rather than freed twice or walked forever.
pub(crate) fn collect_tree(
    r: &PageReader<'_>,
    nodes: &[Node],
    nref: NodeRef,
    depth: usize,
    seen: &mut std::collections::HashSet<Pgid>,
    pages: &mut Vec<(Pgid, u64)>,
    buckets: &mut Vec<(Vec<u8>, Vec<u8>)>,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(too_deep(nref));
    }
    if let NodeRef::Page(p) = nref {
        if !seen.insert(p) {
            return Err(Error::corrupted(
                p,
                "page reached twice while walking buckets (shared or cyclic page references)",
            ));
        }
        let (h, _) = r.run(p)?;
        pages.push((p, u64::from(h.overflow) + 1));
    }
    let v = view(r, nodes, nref)?;
    for i in 0..v.count() {
        if v.is_leaf() {
            let (flags, k, val) = v.leaf(r, i)?;
            if flags & LEAF_FLAG_BUCKET != 0 {
                buckets.push((k.to_vec(), val.to_vec()));
            }
        } else {
            collect_tree(r, nodes, v.child(i)?, depth + 1, seen, pages, buckets)?;
        }
    }
    Ok(())
}
