//! Which pages of a file are in use and which are free, read straight from the pages.
//!
//! A file written with `NoFreelistSync` stores no freelist: its free pages are the pages below
//! the high-water mark that no bucket reaches. [`reachable`] walks every bucket's tree from the
//! root (iteratively, so hostile nesting cannot overflow the stack) and [`free_pages`] returns
//! the free set either from the freelist page or from that walk.

use std::collections::{BTreeSet, HashSet};

use rivet::format::{
    self, BucketHeader, Meta, NodePage, Pgid, BUCKET_HEADER_SIZE, LEAF_FLAG_BUCKET,
};

use crate::error::{CliError, CliResult};
use crate::raw::RawFile;

/// The result of a reachability walk.
#[derive(Debug, Default)]
pub struct Reach {
    /// Every page of every reachable page run (overflow pages included).
    pub pages: HashSet<Pgid>,
    /// Damage met on the way (the damaged subtree is skipped).
    pub problems: Vec<String>,
}

/// Walks every bucket tree reachable from `meta.root`.
pub fn reachable(raw: &RawFile, meta: &Meta) -> Reach {
    let mut r = Reach::default();
    let hwm = meta.pgid;
    let mut stack = vec![meta.root];
    while let Some(id) = stack.pop() {
        if id < 2 || id >= hwm {
            r.problems
                .push(format!("page {id}: referenced but outside 2..{hwm}"));
            continue;
        }
        if r.pages.contains(&id) {
            r.problems
                .push(format!("page {id}: referenced more than once"));
            continue;
        }
        let (h, data) = match raw.run(id, hwm) {
            Ok(x) => x,
            Err(e) => {
                r.problems.push(e.message);
                continue;
            }
        };
        r.pages.extend(id..=id + u64::from(h.overflow));
        match NodePage::parse(&data, id) {
            Ok(node) => children(node, &mut stack, &mut r.problems),
            Err(e) => r.problems.push(e.to_string()),
        }
    }
    r
}

/// Pushes the pages a node refers to: branch children and the roots of sub-buckets (looking
/// inside inline buckets too).
fn children(node: NodePage<'_>, stack: &mut Vec<Pgid>, problems: &mut Vec<String>) {
    let id = node.pgid();
    if !node.is_leaf() {
        for i in 0..node.count() {
            match node.branch_elem(i) {
                Ok((_, child)) => stack.push(child),
                Err(e) => problems.push(e.to_string()),
            }
        }
        return;
    }
    // Inline bucket images are walked with a local stack (they cannot nest deeply in valid
    // files, but a damaged one must not recurse without bound).
    let mut inline: Vec<NodePage<'_>> = vec![node];
    let mut budget = 10_000usize;
    while let Some(n) = inline.pop() {
        for i in 0..n.count() {
            let (flags, _, v) = match n.leaf_elem(i) {
                Ok(x) => x,
                Err(e) => {
                    problems.push(e.to_string());
                    continue;
                }
            };
            if flags & LEAF_FLAG_BUCKET == 0 {
                continue;
            }
            match BucketHeader::decode(v, id) {
                Ok(h) if h.root != 0 => stack.push(h.root),
                Ok(_) => match v
                    .get(BUCKET_HEADER_SIZE..)
                    .map(|img| NodePage::parse(img, id))
                {
                    Some(Ok(p)) if budget > 0 => {
                        budget -= 1;
                        inline.push(p);
                    }
                    Some(Ok(_)) => {
                        problems.push(format!("page {id}: inline buckets nest too deeply"))
                    }
                    Some(Err(e)) => problems.push(e.to_string()),
                    None => problems.push(format!("page {id}: inline bucket value too short")),
                },
                Err(e) => problems.push(e.to_string()),
            }
        }
    }
}

/// Where the free set came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeSource {
    /// The freelist page (run) with this id.
    Synced(Pgid),
    /// No freelist stored (`NoFreelistSync`): computed by walking the tree.
    NotSynced,
    /// The stored freelist (this page) is unusable: computed by walking the tree.
    Unusable(Pgid),
}

/// The free pages of a snapshot.
#[derive(Debug)]
pub struct FreeSet {
    /// Free page ids.
    pub ids: BTreeSet<Pgid>,
    /// Where they came from.
    pub source: FreeSource,
    /// Problems met while walking the tree (`NotSynced` and `Unusable`, whose first problem
    /// says what is wrong with the freelist); the set may then be wrong.
    pub problems: Vec<String>,
}

/// The free pages of the snapshot described by `meta`.
pub fn free_pages(raw: &RawFile, meta: &Meta) -> CliResult<FreeSet> {
    if meta.freelist == format::PGID_NO_FREELIST {
        let reach = reachable(raw, meta);
        let ids = (2..meta.pgid)
            .filter(|p| !reach.pages.contains(p))
            .collect();
        return Ok(FreeSet {
            ids,
            source: FreeSource::NotSynced,
            problems: reach.problems,
        });
    }
    let stored = raw
        .run(meta.freelist, meta.pgid)
        .and_then(|(_, data)| {
            format::read_freelist(&data, meta.freelist).map_err(|e| raw.corrupted(meta.freelist, e))
        })
        .and_then(
            |ids| match ids.iter().find(|&&id| id < 2 || id >= meta.pgid) {
                Some(bad) => Err(CliError::new(format!(
                    "page {}: freelist lists page {bad}, outside 2..{}",
                    meta.freelist, meta.pgid
                ))),
                None => Ok(ids),
            },
        );
    let ids = match stored {
        Ok(ids) => ids,
        Err(e) => {
            // A damaged freelist does not hide the tree: the free pages are the ones it does
            // not reach, as the engine rebuilds them.
            let reach = reachable(raw, meta);
            let mut problems = vec![format!("freelist unusable: {}", e.message)];
            problems.extend(reach.problems);
            return Ok(FreeSet {
                ids: (2..meta.pgid)
                    .filter(|p| !reach.pages.contains(p))
                    .collect(),
                source: FreeSource::Unusable(meta.freelist),
                problems,
            });
        }
    };
    Ok(FreeSet {
        ids: ids.into_iter().collect(),
        source: FreeSource::Synced(meta.freelist),
        problems: Vec::new(),
    })
}
