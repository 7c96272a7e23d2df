//! The snapshots open read transactions hold: a multiset of txids.
//!
//! Kept as a deque of `(txid, open readers)` sorted by txid. A new reader always opens the
//! newest snapshot, so registering is an increment or a push at the back, and closing the
//! oldest snapshot is a pop at the front; once the deque has room nothing is allocated, which
//! matters when every lookup is its own read transaction.

use std::collections::VecDeque;

use crate::format::Txid;

/// Txids of the snapshots held by open read transactions, with multiplicity.
#[derive(Debug, Default, Clone)]
pub(crate) struct OpenReaders {
    by_txid: VecDeque<(Txid, usize)>,
}

impl OpenReaders {
    /// No readers.
    pub fn new() -> OpenReaders {
        OpenReaders::default()
    }

    /// Records one more reader of snapshot `txid`.
    pub fn register(&mut self, txid: Txid) {
        match self.by_txid.back_mut() {
            Some((t, n)) if *t == txid => *n += 1,
            Some((t, _)) if *t > txid => match self.find(txid) {
                Ok(i) => self.by_txid[i].1 += 1,
                Err(i) => self.by_txid.insert(i, (txid, 1)),
            },
            _ => self.by_txid.push_back((txid, 1)),
        }
    }

    /// Forgets one reader of snapshot `txid` (which must have been registered).
    pub fn unregister(&mut self, txid: Txid) {
        let Ok(i) = self.find(txid) else {
            debug_assert!(false, "reader of snapshot {txid} was not registered");
            return;
        };
        self.by_txid[i].1 -= 1;
        if self.by_txid[i].1 == 0 {
            if i == 0 {
                self.by_txid.pop_front();
            } else {
                self.by_txid.remove(i);
            }
        }
    }

    /// Whether some reader holds a snapshot `r` with `lo <= r < hi`.
    pub fn any_in(&self, lo: Txid, hi: Txid) -> bool {
        let i = self.by_txid.partition_point(|&(t, _)| t < lo);
        self.by_txid.get(i).is_some_and(|&(t, _)| t < hi)
    }

    fn find(&self, txid: Txid) -> Result<usize, usize> {
        self.by_txid.binary_search_by_key(&txid, |&(t, _)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        /// Against a BTreeMap multiset: any sequence of registrations and closes.
        #[test]
        fn matches_a_multiset(ops in proptest::collection::vec((any::<bool>(), 0u64..12), 1..200),
                              probes in proptest::collection::vec((0u64..14, 0u64..14), 1..20)) {
            let mut r = OpenReaders::new();
            let mut model: BTreeMap<Txid, usize> = BTreeMap::new();
            for (open, t) in ops {
                if open {
                    r.register(t);
                    *model.entry(t).or_insert(0) += 1;
                } else if let Some(n) = model.get_mut(&t) {
                    r.unregister(t);
                    *n -= 1;
                    if *n == 0 {
                        model.remove(&t);
                    }
                }
                for &(lo, hi) in &probes {
                    prop_assert_eq!(r.any_in(lo, hi), model.range(lo..hi.max(lo)).next().is_some());
                }
            }
        }
    }
}
