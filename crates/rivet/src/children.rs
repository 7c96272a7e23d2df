//! The sub-buckets a transaction has opened under one bucket, by name.
//!
//! Most buckets have a handful of open children at most (often one), so names are kept as
//! [`RawBytes`] pointing at bytes the transaction already holds (the key in the page or in the
//! arena) and found by a linear scan: opening a bucket allocates nothing here. Past
//! [`LINEAR_MAX`] children a hash index takes over, so a transaction that opens thousands of
//! sibling buckets stays O(1) per lookup.

use std::collections::HashMap;

use smallvec::SmallVec;

use crate::raw::RawBytes;
use crate::tree::PageReader;
use crate::tx::BucketId;

/// Children kept in the plain list before the hash index is built.
const LINEAR_MAX: usize = 8;

/// Open sub-buckets of one bucket.
#[derive(Clone, Default)]
pub(crate) struct OpenChildren {
    /// Inline room for two: opening a bucket usually allocates nothing.
    list: SmallVec<[(RawBytes, BucketId); 2]>,
    index: Option<HashMap<Vec<u8>, BucketId>>,
}

impl OpenChildren {
    /// The open child named `name`.
    pub fn get(&self, r: &PageReader<'_>, name: &[u8]) -> Option<BucketId> {
        if let Some(index) = &self.index {
            return index.get(name).copied();
        }
        self.list
            .iter()
            .find(|(n, _)| r.bytes(*n) == name)
            .map(|&(_, id)| id)
    }

    /// Records child `id` under `name` (bytes that live as long as the transaction).
    pub fn insert(&mut self, r: &PageReader<'_>, name: RawBytes, id: BucketId) {
        self.list.push((name, id));
        if let Some(index) = &mut self.index {
            index.insert(r.bytes(name).to_vec(), id);
        } else if self.list.len() > LINEAR_MAX {
            self.index = Some(
                self.list
                    .iter()
                    .map(|&(n, id)| (r.bytes(n).to_vec(), id))
                    .collect(),
            );
        }
    }

    /// Forgets the child named `name`.
    pub fn remove(&mut self, r: &PageReader<'_>, name: &[u8]) {
        self.list.retain(|(n, _)| r.bytes(*n) != name);
        if let Some(index) = &mut self.index {
            index.remove(name);
        }
    }

    /// Ids of the open children, in the order they were opened.
    pub fn ids(&self) -> impl Iterator<Item = BucketId> + '_ {
        self.list.iter().map(|&(_, id)| id)
    }
}
