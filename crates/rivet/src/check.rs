//! Consistency check of a snapshot.
//!
//! The check walks every bucket from the root, counts references to every page, and compares
//! the result with the freelist. It never stops at the first problem: a damaged subtree is
//! reported and skipped, and the walk goes on. The same walk provides the reachable-page set
//! used to rebuild the freelist of a file written without one.

use std::collections::{HashMap, HashSet};

use crate::error::{Error, Result};
use crate::format::{
    self, BucketHeader, NodePage, Pgid, BUCKET_HEADER_SIZE, LEAF_FLAG_BUCKET, PGID_NO_FREELIST,
};
use crate::tree::PageReader;
use crate::tx::Tx;

/// One problem found by [`Tx::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The page concerned, when there is one.
    pub page: Option<Pgid>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.page {
            Some(p) => write!(f, "page {p}: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

/// Deepest bucket nesting the check follows (each level costs stack; a cycle of bucket pages
/// is caught earlier by the reference count).
const MAX_NESTING: usize = 1000;

struct Walker<'a> {
    reader: PageReader<'a>,
    refs: HashMap<Pgid, u32>,
    problems: Vec<Problem>,
}

impl<'a> Walker<'a> {
    fn problem(&mut self, page: Option<Pgid>, message: impl Into<String>) {
        self.problems.push(Problem {
            page,
            message: message.into(),
        });
    }

    fn mark(&mut self, start: Pgid, len: u64) {
        for p in start..start + len {
            let n = self.refs.entry(p).or_insert(0);
            *n += 1;
            if *n == 2 {
                self.problems.push(Problem {
                    page: Some(p),
                    message: "page referenced more than once (multiple references)".into(),
                });
            }
        }
    }

    /// Walks the tree rooted at `pgid`; keys must lie in `[lo, hi)`. `depth` counts tree
    /// levels inside one bucket; `nesting` counts buckets inside buckets.
    fn walk(
        &mut self,
        pgid: Pgid,
        lo: Option<&'a [u8]>,
        hi: Option<&'a [u8]>,
        depth: usize,
        nesting: usize,
    ) {
        if depth > 64 {
            self.problem(
                Some(pgid),
                "tree deeper than 64 levels (cyclic references?)",
            );
            return;
        }
        let (h, run) = match self.reader.run(pgid) {
            Ok(x) => x,
            Err(e) => {
                self.report(e, pgid);
                return;
            }
        };
        self.mark(pgid, u64::from(h.overflow) + 1);
        if self.refs.get(&pgid).copied().unwrap_or(0) > 1 {
            return; // already walked (or a cycle): reported as multiple references
        }
        let page = match NodePage::parse(run, pgid) {
            Ok(p) => p,
            Err(e) => {
                self.report(e, pgid);
                return;
            }
        };
        self.check_node(page, lo, hi, depth, nesting);
    }

    fn report(&mut self, e: Error, fallback: Pgid) {
        match e {
            Error::Corrupted { page, reason } => self.problem(Some(page), reason),
            e => self.problem(Some(fallback), e.to_string()),
        }
    }

    fn check_node(
        &mut self,
        page: NodePage<'a>,
        lo: Option<&'a [u8]>,
        hi: Option<&'a [u8]>,
        depth: usize,
        nesting: usize,
    ) {
        let pgid = page.pgid();
        let mut keys: Vec<&'a [u8]> = Vec::with_capacity(page.count());
        for i in 0..page.count() {
            match page.key(i) {
                Ok(k) => keys.push(k),
                Err(e) => {
                    self.report(e, pgid);
                    return;
                }
            }
        }
        for i in 1..keys.len() {
            if keys[i - 1] >= keys[i] {
                self.problem(
                    Some(pgid),
                    format!(
                        "keys out of order: element {} ({}) >= element {i} ({})",
                        i - 1,
                        hex(keys[i - 1]),
                        hex(keys[i])
                    ),
                );
            }
        }
        if let (Some(lo), Some(first)) = (lo, keys.first()) {
            if *first < lo {
                self.problem(
                    Some(pgid),
                    format!(
                        "first key {} is below its parent's key {}",
                        hex(first),
                        hex(lo)
                    ),
                );
            }
        }
        if let (Some(hi), Some(last)) = (hi, keys.last()) {
            if *last >= hi {
                self.problem(
                    Some(pgid),
                    format!(
                        "last key {} is not below the next parent key {}",
                        hex(last),
                        hex(hi)
                    ),
                );
            }
        }
        if page.is_leaf() {
            for i in 0..page.count() {
                let (flags, k, v) = match page.leaf_elem(i) {
                    Ok(x) => x,
                    Err(e) => {
                        self.report(e, pgid);
                        continue;
                    }
                };
                if flags & LEAF_FLAG_BUCKET != 0 {
                    self.check_bucket_value(pgid, k, v, nesting);
                }
            }
        } else {
            for i in 0..page.count() {
                let child = match page.branch_elem(i) {
                    Ok((_, c)) => c,
                    Err(e) => {
                        self.report(e, pgid);
                        continue;
                    }
                };
                let clo = keys.get(i).copied();
                let chi = keys.get(i + 1).copied().or(hi);
                self.walk(child, clo, chi, depth + 1, nesting);
            }
        }
    }

    fn check_bucket_value(&mut self, pgid: Pgid, name: &[u8], v: &'a [u8], nesting: usize) {
        if nesting >= MAX_NESTING {
            self.problem(
                Some(pgid),
                format!(
                    "bucket {} is nested more than {MAX_NESTING} levels deep; not checked further",
                    hex(name)
                ),
            );
            return;
        }
        let h = match BucketHeader::decode(v, pgid) {
            Ok(h) => h,
            Err(_) => {
                self.problem(
                    Some(pgid),
                    format!(
                        "bucket {} has a value shorter than a bucket header",
                        hex(name)
                    ),
                );
                return;
            }
        };
        if h.root == 0 {
            match NodePage::parse(&v[BUCKET_HEADER_SIZE..], pgid) {
                Ok(p) if p.is_leaf() => {
                    for i in 0..p.count() {
                        match p.leaf_elem(i) {
                            Ok((f, _, _)) if f & LEAF_FLAG_BUCKET != 0 => self.problem(
                                Some(pgid),
                                format!("inline bucket {} contains a sub-bucket", hex(name)),
                            ),
                            Ok(_) => {}
                            Err(e) => {
                                self.problem(
                                    Some(pgid),
                                    format!("inline bucket {}: {e}", hex(name)),
                                );
                                return;
                            }
                        }
                    }
                    let page = p;
                    self.check_node(page, None, None, 0, nesting + 1);
                }
                Ok(_) => self.problem(
                    Some(pgid),
                    format!("inline bucket {} is not a leaf page", hex(name)),
                ),
                Err(e) => self.problem(Some(pgid), format!("inline bucket {}: {e}", hex(name))),
            }
        } else {
            self.walk(h.root, None, None, 0, nesting + 1);
        }
    }
}

pub(crate) fn hex(b: &[u8]) -> String {
    const MAX: usize = 32;
    let mut s: String = b.iter().take(MAX).map(|x| format!("{x:02x}")).collect();
    if b.len() > MAX {
        s.push('…');
    }
    s
}

/// Walks the snapshot of `tx` and returns (reference counts, problems).
fn walk(tx: &Tx) -> (HashMap<Pgid, u32>, Vec<Problem>) {
    let mut w = Walker {
        reader: tx.reader(),
        refs: HashMap::new(),
        problems: Vec::new(),
    };
    w.walk(tx.meta.root, None, None, 0, 0);
    (w.refs, w.problems)
}

/// Every page reachable from the root of `tx`'s snapshot (tree pages only, not the freelist).
/// Fails if the walk finds damage, since a freelist rebuilt from a damaged tree would hand out
/// pages still in use.
pub(crate) fn reachable_pages(tx: &Tx) -> Result<HashSet<Pgid>> {
    let (refs, problems) = walk(tx);
    if let Some(p) = problems.into_iter().next() {
        return Err(Error::corrupted(p.page.unwrap_or(0), p.message));
    }
    Ok(refs.into_keys().collect())
}

impl Tx {
    /// Checks the consistency of this transaction's snapshot and returns every problem found
    /// (empty when the file is consistent). In a write transaction the snapshot is the state
    /// the transaction started from.
    pub fn check(&self) -> Vec<Problem> {
        let (mut refs, mut problems) = walk(self);
        let hwm = self.meta.pgid;
        let mut free: HashSet<Pgid> = HashSet::new();
        if self.meta.freelist == PGID_NO_FREELIST {
            // No freelist persisted: everything unreachable is free by definition.
            free.extend((2..hwm).filter(|p| !refs.contains_key(p)));
        } else {
            let fpg = self.meta.freelist;
            let unusable = |why: String| Problem {
                page: Some(fpg),
                message: format!(
                    "freelist unusable: {why}; the tree does not depend on it (a read-write \
                     open rebuilds it from the reachable pages)"
                ),
            };
            match self
                .reader()
                .run(fpg)
                .and_then(|(h, run)| Ok((h, format::read_freelist(run, fpg)?)))
            {
                Ok((h, ids)) => {
                    for p in fpg..fpg + u64::from(h.overflow) + 1 {
                        if refs.contains_key(&p) {
                            problems.push(Problem {
                                page: Some(p),
                                message: "freelist page is also referenced by the tree (multiple references)".into(),
                            });
                        }
                    }
                    for id in ids {
                        if id < 2 || id >= hwm {
                            problems.push(Problem {
                                page: Some(id),
                                message: format!(
                                    "freelist lists page outside 2..{hwm} (out of bounds)"
                                ),
                            });
                        } else if !free.insert(id) {
                            problems.push(Problem {
                                page: Some(id),
                                message: "page listed twice in the freelist (already freed)".into(),
                            });
                        }
                    }
                    for p in fpg..fpg + u64::from(h.overflow) + 1 {
                        refs.entry(p).or_insert(1);
                    }
                }
                Err(e) => {
                    let why = match e {
                        Error::Corrupted { page, reason } => format!("page {page}: {reason}"),
                        e => e.to_string(),
                    };
                    problems.push(unusable(why));
                    // One problem, not one per page: the free set is what the tree leaves.
                    free.extend((2..hwm).filter(|p| !refs.contains_key(p)));
                }
            }
        }
        let mut reachable_freed: Vec<Pgid> =
            refs.keys().copied().filter(|p| free.contains(p)).collect();
        reachable_freed.sort_unstable();
        for p in reachable_freed {
            problems.push(Problem {
                page: Some(p),
                message: "page is reachable but listed in the freelist (reachable freed)".into(),
            });
        }
        for p in 2..hwm {
            if !refs.contains_key(&p) && !free.contains(&p) {
                problems.push(Problem {
                    page: Some(p),
                    message: "page is neither reachable nor free (unreachable unfreed)".into(),
                });
            }
        }
        problems
    }
}
