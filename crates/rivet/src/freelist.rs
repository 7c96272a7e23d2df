//! Free page bookkeeping.
//!
//! This module owns the set of free page spans, the pages freed by recent transactions that an
//! open reader may still see ("pending"), and the rules that release pending pages. Allocation
//! is O(log n): a single page comes from the lowest free id, a run of `n > 1` pages from the
//! smallest span that holds it (lowest id among equals). Both choices are deterministic.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::FxHashMap;

use crate::readers::OpenReaders;

use crate::error::{Error, Result};
use crate::format::{Pgid, Txid};

/// A run of pages freed by one transaction, with the transaction that had allocated it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PendingRun {
    start: Pgid,
    len: u64,
    /// Txid of the transaction that allocated the run (0 when unknown: it predates this process).
    alloc_txid: Txid,
}

/// Free spans plus pending frees.
#[derive(Debug, Default, Clone)]
pub struct Freelist {
    /// start -> length of each maximal free span.
    spans: BTreeMap<Pgid, u64>,
    /// (length, start) of each span, for best-fit allocation of runs.
    by_size: BTreeSet<(u64, Pgid)>,
    free_count: u64,
    /// Pages freed by each transaction that readers may still see.
    pending: BTreeMap<Txid, Vec<PendingRun>>,
    pending_count: u64,
    /// Txid that allocated each run still in use, for runs allocated by this process.
    /// (Keyed by page id: a fast integer hash, not SipHash; page ids are not attacker-chosen
    /// hash-flooding material, and this map is touched for every page a commit writes.)
    allocated_by: FxHashMap<Pgid, Txid>,
}

impl Freelist {
    /// An empty freelist.
    pub fn new() -> Freelist {
        Freelist::default()
    }

    /// Builds a freelist from page ids read from disk (or found unreachable), validating them
    /// against the high-water mark. Duplicates are an error.
    pub fn from_ids(ids: &[Pgid], hwm: Pgid, freelist_page: Pgid) -> Result<Freelist> {
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        let mut fl = Freelist::new();
        let mut prev: Option<Pgid> = None;
        for &id in &sorted {
            if id < 2 || id >= hwm {
                return Err(Error::corrupted(
                    freelist_page,
                    format!("freelist lists page {id}, outside the data pages 2..{hwm}"),
                ));
            }
            if prev == Some(id) {
                return Err(Error::corrupted(
                    freelist_page,
                    format!("freelist lists page {id} twice"),
                ));
            }
            prev = Some(id);
        }
        let mut i = 0;
        while i < sorted.len() {
            let start = sorted[i];
            let mut len = 1;
            while i + (len as usize) < sorted.len() && sorted[i + len as usize] == start + len {
                len += 1;
            }
            fl.insert_span(start, len);
            i += len as usize;
        }
        Ok(fl)
    }

    fn insert_span(&mut self, start: Pgid, len: u64) {
        self.spans.insert(start, len);
        self.by_size.insert((len, start));
        self.free_count += len;
    }

    fn remove_span(&mut self, start: Pgid, len: u64) {
        self.spans.remove(&start);
        self.by_size.remove(&(len, start));
        self.free_count -= len;
    }

    /// Returns `len` pages starting at `start` to the free set, merging with neighbours.
    fn add_free(&mut self, mut start: Pgid, mut len: u64) {
        if let Some((&ps, &pl)) = self.spans.range(..start).next_back() {
            debug_assert!(ps + pl <= start, "page {start} freed twice");
            if ps + pl == start {
                self.remove_span(ps, pl);
                start = ps;
                len += pl;
            }
        }
        if let Some(&nl) = self.spans.get(&(start + len)) {
            self.remove_span(start + len, nl);
            len += nl;
        }
        self.insert_span(start, len);
    }

    /// Takes a contiguous run of `n` free pages: a single page from the lowest free id, a run
    /// from the smallest span that holds it (lowest id among equals). Returns `None` when no
    /// span is large enough (the caller extends the file). The caller hands the run out whole
    /// or piecewise and records each piece's allocating transaction with
    /// [`Freelist::note_allocated`] and returns what it did not use with
    /// [`Freelist::give_back`].
    pub fn reserve(&mut self, n: u64) -> Option<Pgid> {
        debug_assert!(n > 0);
        let (start, len) = if n == 1 {
            let (&s, &l) = self.spans.iter().next()?;
            (s, l)
        } else {
            let &(l, s) = self.by_size.range((n, 0)..).next()?;
            (s, l)
        };
        self.remove_span(start, len);
        if len > n {
            self.insert_span(start + n, len - n);
        }
        Some(start)
    }

    /// Like [`Freelist::reserve`], but a run comes from the lowest span that holds it (first
    /// fit by address, O(spans)): online compaction fills the start of the file first.
    pub fn reserve_low(&mut self, n: u64) -> Option<Pgid> {
        if n <= 1 {
            return self.reserve(n.max(1));
        }
        let (&start, &len) = self.spans.iter().find(|(_, &l)| l >= n)?;
        self.remove_span(start, len);
        if len > n {
            self.insert_span(start + n, len - n);
        }
        Some(start)
    }

    /// Returns unused reserved pages `start..start+len` to the free set.
    pub fn give_back(&mut self, start: Pgid, len: u64) {
        if len > 0 {
            self.add_free(start, len);
        }
    }

    /// Removes the free span that ends at the high-water mark `hwm` when it is at least
    /// `min` pages long, and returns the new high-water mark. Only free
    /// pages count: pending ones may still be read by an open snapshot.
    /// At most `max` pages are taken (the top ones); the rest of the span stays free.
    pub fn take_tail(&mut self, hwm: Pgid, min: u64, max: u64) -> Option<Pgid> {
        let (&start, &len) = self.spans.range(..hwm).next_back()?;
        if start + len != hwm || len < min.max(1) || max == 0 {
            return None;
        }
        self.remove_span(start, len);
        let cut = len.min(max);
        if cut < len {
            self.insert_span(start, len - cut);
        }
        Some(hwm - cut)
    }

    /// Length of the longest free span (0 when nothing is free).
    pub fn longest_span(&self) -> u64 {
        self.by_size.last().map_or(0, |&(l, _)| l)
    }

    /// Records that the run starting at `start` was allocated by transaction `txid`.
    pub fn note_allocated(&mut self, start: Pgid, txid: Txid) {
        self.allocated_by.insert(start, txid);
    }

    /// Marks the run `start..start+len` as freed by transaction `txid` (pending until no reader
    /// can see it).
    pub fn free(&mut self, txid: Txid, start: Pgid, len: u64) {
        debug_assert!(start > 1, "meta pages cannot be freed");
        let alloc_txid = self.allocated_by.get(&start).copied().unwrap_or(0);
        self.pending.entry(txid).or_default().push(PendingRun {
            start,
            len,
            alloc_txid,
        });
        self.pending_count += len;
    }

    /// Undoes a transaction that did not commit: its frees are forgotten, the runs it
    /// allocated from free spans (those below `old_hwm`) become free again, and no page at or
    /// above `old_hwm` stays free (a commit may have returned unused pages it had taken past
    /// the high-water mark, which no longer exist once it failed).
    pub fn rollback(&mut self, txid: Txid, allocated: &[(Pgid, u64)], old_hwm: Pgid) {
        if let Some(runs) = self.pending.remove(&txid) {
            self.pending_count -= runs.iter().map(|r| r.len).sum::<u64>();
        }
        for &(start, len) in allocated {
            self.allocated_by.remove(&start);
            if start < old_hwm {
                self.add_free(start, len.min(old_hwm - start));
            }
        }
        let beyond: Vec<(Pgid, u64)> = self
            .spans
            .range(..)
            .rev()
            .take_while(|&(&s, &l)| s + l > old_hwm)
            .map(|(&s, &l)| (s, l))
            .collect();
        for (s, l) in beyond {
            self.remove_span(s, l);
            if s < old_hwm {
                self.insert_span(s, old_hwm - s);
            }
        }
    }

    /// Releases pending pages no open reader can see. `readers` holds the snapshot txids of
    /// the open read transactions. A run allocated by transaction A and freed by transaction F
    /// is visible exactly to readers whose snapshot r satisfies A <= r < F.
    pub fn release(&mut self, readers: &OpenReaders) {
        let mut pending = std::mem::take(&mut self.pending);
        let mut released = Vec::new();
        pending.retain(|&f, runs| {
            runs.retain(|run| {
                let visible = readers.any_in(run.alloc_txid, f);
                if !visible {
                    released.push(*run);
                }
                visible
            });
            !runs.is_empty()
        });
        self.pending = pending;
        for run in released {
            self.pending_count -= run.len;
            self.allocated_by.remove(&run.start);
            self.add_free(run.start, run.len);
        }
    }

    /// Number of free (allocatable) pages.
    pub fn free_count(&self) -> u64 {
        self.free_count
    }

    /// Number of pending pages.
    pub fn pending_count(&self) -> u64 {
        self.pending_count
    }

    /// Total pages the on-disk freelist lists (free plus pending).
    pub fn count(&self) -> u64 {
        self.free_count + self.pending_count
    }

    /// Sorted ids of every free and pending page, as written to a freelist page.
    pub fn all_ids(&self) -> Vec<Pgid> {
        let mut ids = Vec::with_capacity(self.count() as usize);
        for (&s, &l) in &self.spans {
            ids.extend(s..s + l);
        }
        for runs in self.pending.values() {
            for r in runs {
                ids.extend(r.start..r.start + r.len);
            }
        }
        ids.sort_unstable();
        ids
    }

    /// Whether page `id` is free (not pending).
    #[cfg(test)]
    pub fn is_free(&self, id: Pgid) -> bool {
        matches!(self.spans.range(..=id).next_back(), Some((&s, &l)) if id < s + l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn allocates_lowest_single_page_and_best_fit_runs() {
        let mut fl = Freelist::from_ids(&[3, 4, 5, 9, 10, 20, 21, 22, 23], 30, 2).unwrap();
        assert_eq!(fl.free_count(), 9);
        assert_eq!(fl.reserve(2), Some(9)); // exact fit
        assert_eq!(fl.reserve(1), Some(3));
        assert_eq!(fl.reserve(3), Some(20)); // 20..24 is the only span >= 3
        assert_eq!(fl.reserve(5), None);
        assert_eq!(fl.all_ids(), vec![4, 5, 23]);
    }

    #[test]
    fn reserve_takes_best_fit_and_give_back_merges() {
        let mut fl =
            Freelist::from_ids(&[3, 9, 10, 11, 12, 20, 21, 22, 23, 24, 25], 30, 2).unwrap();
        assert_eq!(fl.longest_span(), 6);
        assert_eq!(fl.reserve(4), Some(9)); // 9..13 fits exactly; 20..26 is larger
        assert_eq!(fl.free_count(), 7);
        fl.note_allocated(9, 5);
        fl.give_back(10, 3); // only page 9 was used
        assert_eq!(fl.all_ids(), vec![3, 10, 11, 12, 20, 21, 22, 23, 24, 25]);
        assert_eq!(fl.reserve(7), None);
    }

    #[test]
    fn pending_release_respects_readers_and_gaps() {
        let mut fl = Freelist::new();
        // page 10 allocated by tx 3, freed by tx 6; page 11 unknown origin, freed by tx 6.
        fl.note_allocated(10, 3);
        fl.free(6, 10, 1);
        fl.free(6, 11, 1);
        let mut readers = OpenReaders::new();
        readers.register(2); // reader at snapshot 2 cannot see page 10 (allocated by 3)
        fl.release(&readers);
        assert!(fl.is_free(10));
        assert!(!fl.is_free(11)); // of unknown origin, reader 2 may see it
        readers.unregister(2);
        readers.register(6); // snapshot 6 no longer references pages freed by 6
        fl.release(&readers);
        assert!(fl.is_free(11));
        assert_eq!(fl.pending_count(), 0);
    }

    #[test]
    fn rollback_restores_allocations_and_drops_frees() {
        let mut fl = Freelist::from_ids(&[4, 5, 6], 10, 2).unwrap();
        let a = fl.reserve(2).unwrap();
        fl.free(7, 8, 1);
        fl.rollback(7, &[(a, 2), (10, 1)], 10);
        assert_eq!(fl.all_ids(), vec![4, 5, 6]);
        assert_eq!(fl.pending_count(), 0);
    }

    #[test]
    fn take_tail_cuts_only_the_top_free_span_and_at_most_max_pages() {
        let mut fl = Freelist::from_ids(&[5, 6, 10, 11, 12, 13, 14], 15, 2).unwrap();
        // Too short, or not ending at the high-water mark.
        assert_eq!(fl.take_tail(15, 6, 100), None);
        assert_eq!(fl.take_tail(14, 1, 100), None);
        // At most 3 of the 5 top pages: 12..15 go, 10..12 stay free.
        assert_eq!(fl.take_tail(15, 1, 3), Some(12));
        assert_eq!(fl.all_ids(), vec![5, 6, 10, 11]);
        assert_eq!(fl.take_tail(12, 1, 100), Some(10));
        assert_eq!(fl.all_ids(), vec![5, 6]);
        assert_eq!(fl.free_count(), 2);
    }

    #[test]
    fn rollback_drops_free_pages_past_the_old_high_water_mark() {
        let mut fl = Freelist::from_ids(&[4, 5], 10, 2).unwrap();
        // A failed commit had taken 10..14 past the mark and returned 8..12 as unused.
        fl.give_back(8, 4);
        fl.rollback(7, &[(10, 2)], 10);
        assert_eq!(fl.all_ids(), vec![4, 5, 8, 9]);
        assert_eq!(fl.free_count(), 4);
    }

    #[test]
    fn from_ids_rejects_bad_ids() {
        assert!(Freelist::from_ids(&[1], 10, 2).is_err());
        assert!(Freelist::from_ids(&[10], 10, 2).is_err());
        assert!(Freelist::from_ids(&[5, 5], 10, 2).is_err());
    }

    proptest! {
        /// Allocation and freeing against a model set of free pages.
        #[test]
        fn model_matches(ops in proptest::collection::vec((0u8..3, 1u64..6), 1..200)) {
            let hwm = 200u64;
            let initial: Vec<u64> = (2..hwm).filter(|p| p % 3 != 0).collect();
            let mut fl = Freelist::from_ids(&initial, hwm, 2).unwrap();
            let mut model: BTreeSet<u64> = initial.iter().copied().collect();
            let mut in_use: Vec<(u64, u64)> = Vec::new();
            let mut tx = 10;
            for (op, n) in ops {
                tx += 1;
                match op {
                    0 | 1 => {
                        if let Some(s) = fl.reserve(n) {
                            for p in s..s + n {
                                prop_assert!(model.remove(&p), "page {} was not free", p);
                            }
                            in_use.push((s, n));
                        } else {
                            // No run of n consecutive free pages may exist in the model.
                            let v: Vec<u64> = model.iter().copied().collect();
                            let found = v.windows(n as usize).any(|w| w[w.len() - 1] - w[0] == n - 1);
                            prop_assert!(!found);
                        }
                    }
                    _ => {
                        if let Some((s, l)) = in_use.pop() {
                            fl.free(tx, s, l);
                            fl.release(&OpenReaders::new());
                            for p in s..s + l { model.insert(p); }
                        }
                    }
                }
                prop_assert_eq!(fl.all_ids(), model.iter().copied().collect::<Vec<_>>());
            }
        }
    }
}
