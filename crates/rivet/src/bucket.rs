//! Buckets: named, nestable key/value collections inside a transaction.
//!
//! A [`Bucket`] is a small handle (transaction + bucket index). Reads borrow from the
//! transaction, so `get` returns `&'tx [u8]` without copying; writes go through the
//! transaction's dirty trees. Keys are ordered by unsigned byte comparison.

use std::collections::HashSet;
use std::ops::RangeBounds;

use crate::children::OpenChildren;
use crate::cursor::{Cursor, Entry, Iter};
use crate::error::{Error, Result};
use crate::format::{
    BucketHeader, BUCKET_HEADER_SIZE, LEAF_FLAG_BUCKET, MAX_KEY_SIZE, MAX_VALUE_SIZE,
    PAGE_HEADER_SIZE,
};
use crate::raw::RawBytes;
use crate::tree::{self, NodeRef};
use crate::tx::{BucketId, BucketState, Tx};

/// Default fill percent used when splitting pages (bbolt's 0.5).
pub const DEFAULT_FILL_PERCENT: f64 = 0.5;

/// A bucket inside a transaction.
#[derive(Clone, Copy)]
pub struct Bucket<'tx> {
    pub(crate) tx: &'tx Tx,
    pub(crate) id: BucketId,
}

impl std::fmt::Debug for Bucket<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bucket(tx {}, #{})", self.tx.id(), self.id)
    }
}

fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(Error::KeyRequired);
    }
    if key.len() > MAX_KEY_SIZE {
        return Err(Error::KeyTooLarge(key.len()));
    }
    Ok(())
}

fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty() {
        return Err(Error::BucketNameRequired);
    }
    if name.len() > MAX_KEY_SIZE {
        return Err(Error::KeyTooLarge(name.len()));
    }
    Ok(())
}

/// Value of a freshly created, empty, inline bucket: header + empty leaf page image.
fn empty_bucket_value() -> [u8; BUCKET_HEADER_SIZE + PAGE_HEADER_SIZE] {
    let mut v = [0u8; BUCKET_HEADER_SIZE + PAGE_HEADER_SIZE];
    v[BUCKET_HEADER_SIZE + 8] = crate::format::FLAG_LEAF as u8;
    v
}

impl<'tx> Bucket<'tx> {
    pub(crate) fn new(tx: &'tx Tx, id: BucketId) -> Bucket<'tx> {
        Bucket { tx, id }
    }

    fn alive(&self) -> Result<()> {
        self.tx.check_open()?;
        if self.tx.state.borrow().buckets[self.id].deleted {
            return Err(Error::BucketNotFound);
        }
        Ok(())
    }

    fn writable(&self) -> Result<()> {
        self.tx.check_writable()?;
        self.alive()
    }

    /// Whether the bucket belongs to a write transaction.
    pub fn is_writable(&self) -> bool {
        self.tx.writable()
    }

    /// The transaction this bucket belongs to.
    pub fn tx(&self) -> &'tx Tx {
        self.tx
    }

    pub(crate) fn root_ref(&self) -> NodeRef {
        self.tx.state.borrow().buckets[self.id].root
    }

    /// Root page id of the bucket's tree as of the snapshot (0 for inline buckets and for
    /// trees changed in this transaction).
    pub fn root_page(&self) -> u64 {
        match self.root_ref() {
            NodeRef::Page(p) => p,
            _ => 0,
        }
    }

    /// Looks up a key's entry: (flags, value).
    fn lookup(&self, key: &[u8]) -> Result<Option<(u32, &'tx [u8])>> {
        Ok(self.lookup_entry(key)?.map(|(f, _, v)| (f, v)))
    }

    /// Looks up a key's entry: (flags, the stored key, value).
    fn lookup_entry(&self, key: &[u8]) -> Result<Option<(u32, RawBytes, &'tx [u8])>> {
        self.alive()?;
        let st = self.tx.state.borrow();
        let reader = self.tx.reader();
        let found = tree::get(&reader, &st.nodes, st.buckets[self.id].root, key)?;
        // Re-borrow the slices with the transaction's lifetime: they point into the map or
        // the arena, not into `st`.
        Ok(found.map(|(f, k, v)| (f, RawBytes::new(k), reader.bytes(RawBytes::new(v)))))
    }

    /// The value of `key`, or `None` if the key is missing or names a sub-bucket. The slice
    /// borrows from the transaction; no copy is made.
    pub fn get(&self, key: &[u8]) -> Result<Option<&'tx [u8]>> {
        Ok(self
            .lookup(key)?
            .filter(|(f, _)| f & LEAF_FLAG_BUCKET == 0)
            .map(|(_, v)| v))
    }

    /// Whether a plain key (not a bucket) named `key` exists.
    pub fn contains_key(&self, key: &[u8]) -> Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    /// Stores `value` under `key`, replacing any value. Fails with
    /// [`Error::IncompatibleValue`] if `key` names a sub-bucket.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let (k, v) = self.stash_pair(key, value)?;
        self.put_stashed(k, v)
    }

    /// Online compaction: moves the nodes on the path to the leaf holding `key` to new pages
    /// at commit and packs them with their right-hand siblings up to `limit` bytes (see
    /// [`crate::tree::TreeMut::pack`]). Returns the nodes absorbed.
    pub(crate) fn pack_at(&self, key: &[u8], limit: Option<usize>) -> Result<usize> {
        self.writable()?;
        self.tx
            .with_tree(self.id, |tm, root| tm.pack(root, key, limit))
    }

    /// Stores `value` under `key` like [`Bucket::put`], optimised for keys arriving in
    /// ascending order (bulk loads, imports, compaction): a key greater than every key in the
    /// bucket goes straight to the rightmost leaf, and full pages are left completely full
    /// (LMDB's append mode). Any other key falls back to an ordinary `put`.
    pub fn append(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let (k, v) = self.stash_pair(key, value)?;
        let appended = self
            .tx
            .with_tree(self.id, |tm, root| tm.append(root, k, v, 0))?;
        if !appended {
            self.put_stashed(k, v)?;
        }
        Ok(())
    }

    /// Validates a key/value pair for writing and copies it into the transaction's arena.
    fn stash_pair(&self, key: &[u8], value: &[u8]) -> Result<(RawBytes, RawBytes)> {
        self.writable()?;
        check_key(key)?;
        if value.len() > MAX_VALUE_SIZE {
            return Err(Error::ValueTooLarge(value.len()));
        }
        Ok((self.tx.stash(key), self.tx.stash(value)))
    }

    /// Puts a stashed pair, refusing to overwrite a sub-bucket.
    fn put_stashed(&self, k: RawBytes, v: RawBytes) -> Result<()> {
        self.tx.with_tree(self.id, |tm, root| {
            tm.put(root, k, v, 0, |old| match old {
                Some(f) if f & LEAF_FLAG_BUCKET != 0 => Err(Error::IncompatibleValue),
                _ => Ok(()),
            })
        })?;
        Ok(())
    }

    /// Removes `key`; returns whether it existed. A missing key is not an error (as in
    /// bbolt); a sub-bucket is ([`Error::IncompatibleValue`]). Callers that do not care may
    /// ignore the `bool`: `b.delete(k)?;`.
    pub fn delete(&self, key: &[u8]) -> Result<bool> {
        self.writable()?;
        let removed = self.tx.with_tree(self.id, |tm, root| {
            tm.delete(root, key, |f| {
                if f & LEAF_FLAG_BUCKET != 0 {
                    Err(Error::IncompatibleValue)
                } else {
                    Ok(())
                }
            })
        })?;
        Ok(removed.is_some())
    }

    /// Opens the sub-bucket `name`; `None` if it does not exist or `name` is a plain key.
    pub fn bucket(&self, name: &[u8]) -> Result<Option<Bucket<'tx>>> {
        self.alive()?;
        let open = self.tx.state.borrow().buckets[self.id]
            .children
            .get(&self.tx.reader(), name);
        if let Some(id) = open {
            return Ok(Some(Bucket::new(self.tx, id)));
        }
        let Some((flags, stored_name, value)) = self.lookup_entry(name)? else {
            return Ok(None);
        };
        if flags & LEAF_FLAG_BUCKET == 0 {
            return Ok(None);
        }
        let id = self.register_child(stored_name, value)?;
        Ok(Some(Bucket::new(self.tx, id)))
    }

    /// Registers the sub-bucket stored as `name` (bytes the transaction holds) with the
    /// header and root in `value`.
    fn register_child(&self, name: RawBytes, value: &'tx [u8]) -> Result<BucketId> {
        let page = self.root_page();
        let h = BucketHeader::decode(value, page)?;
        let root = if h.root == 0 {
            if value.len() < BUCKET_HEADER_SIZE + PAGE_HEADER_SIZE {
                return Err(Error::corrupted(
                    page,
                    format!("inline bucket value of {} bytes is too short", value.len()),
                ));
            }
            NodeRef::Inline(RawBytes::new(&value[BUCKET_HEADER_SIZE..]))
        } else {
            NodeRef::Page(h.root)
        };
        let reader = self.tx.reader();
        let mut st = self.tx.state.borrow_mut();
        if let NodeRef::Page(p) = root {
            // A sub-bucket whose root is the root of a bucket it is nested in would nest
            // without end (every walk of it would too). Any endless nesting through clean
            // pages repeats a root page, so this check bounds nesting by the page count.
            let mut up = Some(self.id);
            while let Some(a) = up {
                if matches!(st.buckets[a].root, NodeRef::Page(q) if q == p) {
                    return Err(Error::corrupted(
                        p,
                        "sub-bucket's root page is the root of a bucket it is nested in \
                         (cyclic bucket references)",
                    ));
                }
                up = st.buckets[a].parent;
            }
            if !st.opened_roots.insert(p) {
                return Err(Error::corrupted(
                    p,
                    "page is the root of two buckets (shared page references)",
                ));
            }
        }
        let fill_percent = st.buckets[self.id].fill_percent;
        st.buckets.push(BucketState {
            root,
            sequence: h.sequence,
            parent: Some(self.id),
            name,
            children: Default::default(),
            dirty: false,
            deleted: false,
            fill_percent: if self.id == 0 {
                DEFAULT_FILL_PERCENT
            } else {
                fill_percent
            },
        });
        let id = st.buckets.len() - 1;
        st.buckets[self.id].children.insert(&reader, name, id);
        Ok(id)
    }

    /// Creates the sub-bucket `name`. Fails with [`Error::BucketExists`] if it exists and
    /// [`Error::IncompatibleValue`] if `name` is a plain key.
    pub fn create_bucket(&self, name: &[u8]) -> Result<Bucket<'tx>> {
        self.writable()?;
        check_name(name)?;
        let k = self.tx.stash(name);
        let v = self.tx.stash(&empty_bucket_value());
        self.tx.with_tree(self.id, |tm, root| {
            tm.put(root, k, v, LEAF_FLAG_BUCKET, |old| match old {
                Some(f) if f & LEAF_FLAG_BUCKET != 0 => Err(Error::BucketExists),
                Some(_) => Err(Error::IncompatibleValue),
                None => Ok(()),
            })
        })?;
        let value = self.tx.reader().bytes(v);
        let id = self.register_child(k, value)?;
        // A new bucket must be written at commit even if it stays empty.
        self.tx.state.borrow_mut().buckets[id].dirty = true;
        Ok(Bucket::new(self.tx, id))
    }

    /// Creates the sub-bucket `name` unless it exists; returns it either way.
    pub fn create_bucket_if_not_exists(&self, name: &[u8]) -> Result<Bucket<'tx>> {
        self.writable()?;
        check_name(name)?;
        match self.bucket(name)? {
            Some(b) => Ok(b),
            None => self.create_bucket(name),
        }
    }

    /// Deletes the sub-bucket `name` and everything below it, freeing all their pages.
    pub fn delete_bucket(&self, name: &[u8]) -> Result<()> {
        self.writable()?;
        check_name(name)?;
        let Some((flags, _)) = self.lookup(name)? else {
            return Err(Error::BucketNotFound);
        };
        if flags & LEAF_FLAG_BUCKET == 0 {
            return Err(Error::IncompatibleValue);
        }
        let child = self.bucket(name)?.ok_or(Error::BucketNotFound)?;
        self.tx.free_bucket(child.id)?;
        self.tx
            .with_tree(self.id, |tm, root| tm.delete(root, name, |_| Ok(())))?;
        self.tx.state.borrow_mut().buckets[self.id]
            .children
            .remove(&self.tx.reader(), name);
        Ok(())
    }

    /// Moves the sub-bucket `name` (with everything in it) from this bucket into `dst`.
    pub fn move_bucket(&self, name: &[u8], dst: &Bucket<'tx>) -> Result<()> {
        self.writable()?;
        dst.writable()?;
        if !std::ptr::eq(self.tx, dst.tx) {
            return Err(Error::DifferentTx);
        }
        if self.id == dst.id {
            return Err(Error::SameBuckets);
        }
        let child = self.bucket(name)?.ok_or(Error::BucketNotFound)?;
        // Refuse to move a bucket into itself or its own descendant.
        {
            let st = self.tx.state.borrow();
            let mut cur = Some(dst.id);
            while let Some(c) = cur {
                if c == child.id {
                    return Err(Error::IncompatibleValue);
                }
                cur = st.buckets[c].parent;
            }
        }
        let (_, old_value) = self.lookup(name)?.ok_or(Error::BucketNotFound)?;
        let k = self.tx.stash(name);
        let v = self.tx.stash(old_value);
        dst.tx.with_tree(dst.id, |tm, root| {
            tm.put(root, k, v, LEAF_FLAG_BUCKET, |old| match old {
                Some(f) if f & LEAF_FLAG_BUCKET != 0 => Err(Error::BucketExists),
                Some(_) => Err(Error::IncompatibleValue),
                None => Ok(()),
            })
        })?;
        self.tx
            .with_tree(self.id, |tm, root| tm.delete(root, name, |_| Ok(())))?;
        let reader = self.tx.reader();
        let mut st = self.tx.state.borrow_mut();
        st.buckets[self.id].children.remove(&reader, name);
        st.buckets[dst.id].children.insert(&reader, k, child.id);
        let c = &mut st.buckets[child.id];
        c.parent = Some(dst.id);
        c.name = k;
        c.dirty = true;
        Ok(())
    }

    /// The bucket's sequence number.
    pub fn sequence(&self) -> u64 {
        self.tx.state.borrow().buckets[self.id].sequence
    }

    /// Sets the bucket's sequence number.
    pub fn set_sequence(&self, v: u64) -> Result<()> {
        self.writable()?;
        let mut st = self.tx.state.borrow_mut();
        st.buckets[self.id].sequence = v;
        st.buckets[self.id].dirty = true;
        Ok(())
    }

    /// Increments the sequence and returns the new value.
    pub fn next_sequence(&self) -> Result<u64> {
        self.writable()?;
        let mut st = self.tx.state.borrow_mut();
        let b = &mut st.buckets[self.id];
        b.sequence = b.sequence.wrapping_add(1);
        b.dirty = true;
        Ok(b.sequence)
    }

    /// Sets the fill percent used when this bucket's pages split (0.1..=1.0; bbolt default
    /// 0.5). Higher values pack pages fuller, which suits appends in key order.
    pub fn set_fill_percent(&self, fill: f64) {
        self.tx.state.borrow_mut().buckets[self.id].fill_percent = fill.clamp(0.1, 1.0);
    }

    /// A cursor over this bucket's entries.
    pub fn cursor(&self) -> Cursor<'tx> {
        Cursor::new(*self)
    }

    /// Iterates over every entry in key order (double-ended).
    pub fn iter(&self) -> Iter<'tx> {
        Iter::new(
            *self,
            std::ops::Bound::Unbounded,
            std::ops::Bound::Unbounded,
            None,
        )
    }

    /// Iterates over the entries whose keys fall in `range` (double-ended).
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Iter<'tx> {
        Iter::new(
            *self,
            range.start_bound().map(AsRef::as_ref),
            range.end_bound().map(AsRef::as_ref),
            None,
        )
    }

    /// Iterates over the entries whose keys start with `prefix` (double-ended).
    pub fn prefix(&self, prefix: &[u8]) -> Iter<'tx> {
        Iter::new(
            *self,
            std::ops::Bound::Included(prefix),
            std::ops::Bound::Unbounded,
            Some(prefix),
        )
    }

    /// Calls `f(key, value)` for every entry in key order; `value` is `None` for sub-buckets.
    pub fn for_each(
        &self,
        mut f: impl FnMut(&'tx [u8], Option<&'tx [u8]>) -> Result<()>,
    ) -> Result<()> {
        for e in self.iter() {
            let e: Entry<'tx> = e?;
            f(e.key(), e.value())?;
        }
        Ok(())
    }
}

impl Tx {
    /// Frees every page of bucket `id` and of all buckets below it, and marks them deleted.
    /// Nothing is freed unless the whole walk succeeds: a damaged tree (a page reached twice,
    /// a cycle, a bad page) fails with [`Error::Corrupted`] and leaves the freelist untouched.
    pub(crate) fn free_bucket(&self, id: BucketId) -> Result<()> {
        let mut pages = Vec::new();
        let mut deleted = Vec::new();
        let mut seen = HashSet::new();
        self.collect_bucket(id, &mut seen, &mut pages, &mut deleted)?;
        self.state.borrow_mut().freed.extend(pages);
        let mut st = self.state.borrow_mut();
        for id in deleted {
            st.buckets[id].deleted = true;
        }
        Ok(())
    }

    fn collect_bucket(
        &self,
        id: BucketId,
        seen: &mut HashSet<u64>,
        pages: &mut Vec<(u64, u64)>,
        deleted: &mut Vec<BucketId>,
    ) -> Result<()> {
        let (root, children) = {
            let st = self.state.borrow();
            (st.buckets[id].root, st.buckets[id].children.clone())
        };
        self.collect_subtree(root, &children, seen, pages, deleted)?;
        deleted.push(id);
        Ok(())
    }

    fn collect_subtree(
        &self,
        root: NodeRef,
        registered: &OpenChildren,
        seen: &mut HashSet<u64>,
        pages: &mut Vec<(u64, u64)>,
        deleted: &mut Vec<BucketId>,
    ) -> Result<()> {
        let mut subs = Vec::new();
        {
            let st = self.state.borrow();
            tree::collect_tree(&self.reader(), &st.nodes, root, 0, seen, pages, &mut subs)?;
        }
        for (name, value) in subs {
            if let Some(cid) = registered.get(&self.reader(), &name) {
                self.collect_bucket(cid, seen, pages, deleted)?;
            } else {
                let h = BucketHeader::decode(&value, 0)?;
                if h.root != 0 {
                    self.collect_subtree(
                        NodeRef::Page(h.root),
                        &Default::default(),
                        seen,
                        pages,
                        deleted,
                    )?;
                }
            }
        }
        Ok(())
    }
}
