//! Unowned byte-slice handles used inside a transaction.
//!
//! A transaction's in-memory nodes point at keys and values that live either in the memory
//! map the transaction holds or in its append-only arena. Neither moves nor changes while the
//! transaction is alive, so a node can keep a plain pointer and hand out slices that live as
//! long as the transaction. This module owns that one idea and the `unsafe` it needs.

/// A pointer and a length into memory that outlives the transaction that created it.
#[derive(Clone, Copy)]
pub(crate) struct RawBytes {
    ptr: *const u8,
    len: usize,
}

impl RawBytes {
    /// Captures `s`. The caller must only create `RawBytes` for memory owned by the current
    /// transaction's memory map or arena (see the module comment).
    pub(crate) fn new(s: &[u8]) -> RawBytes {
        RawBytes {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// An empty slice.
    pub(crate) const EMPTY: RawBytes = RawBytes {
        ptr: std::ptr::NonNull::<u8>::dangling().as_ptr(),
        len: 0,
    };

    /// Returns the slice with the lifetime of the transaction that created it.
    ///
    /// # Safety
    /// The caller picks `'a` no longer than the transaction that owns the memory (its map and
    /// arena), which is how every call site in the crate uses it: slices are handed out with
    /// the lifetime of a `&'tx Tx` borrow, and the memory is freed only when the `Tx` drops.
    pub(crate) unsafe fn get<'a>(self) -> &'a [u8] {
        // SAFETY: `ptr`/`len` came from a valid slice (`new`) or are a dangling pointer with
        // length 0 (`EMPTY`); the memory is immutable and alive for 'a per the contract above.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// Length in bytes.
    pub(crate) fn len(self) -> usize {
        self.len
    }
}

impl std::fmt::Debug for RawBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawBytes({})", self.len)
    }
}
