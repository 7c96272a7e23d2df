//! Byte layouts of the bbolt file format, version 2.
//!
//! This module owns every on-disk structure: the 16-byte page header, branch and leaf elements,
//! the meta page (with its FNV-1a checksum), bucket headers, inline bucket images and the
//! freelist page. Everything here is a pure function over byte slices; every read is bounds
//! checked and little-endian, and a bad layout yields [`Error::Corrupted`] naming the page.

use crate::error::{Error, Result};

/// A page id: the page's offset in the file divided by the page size.
pub type Pgid = u64;
/// A transaction id.
pub type Txid = u64;

/// Size of the page header at the start of every page run.
pub const PAGE_HEADER_SIZE: usize = 16;
/// Size of one branch or leaf element.
pub const ELEMENT_SIZE: usize = 16;
/// Size of the bucket header stored as the value of a bucket entry.
pub const BUCKET_HEADER_SIZE: usize = 16;
/// Offset of the meta body inside a meta page.
pub const META_OFFSET: usize = PAGE_HEADER_SIZE;
/// Size of the meta body, checksum included.
pub const META_SIZE: usize = 64;

/// Page flag: branch page.
pub const FLAG_BRANCH: u16 = 0x01;
/// Page flag: leaf page (also the flag of an inline bucket's page image).
pub const FLAG_LEAF: u16 = 0x02;
/// Page flag: meta page.
pub const FLAG_META: u16 = 0x04;
/// Page flag: freelist page.
pub const FLAG_FREELIST: u16 = 0x10;
/// Leaf element flag: the value is a bucket header.
pub const LEAF_FLAG_BUCKET: u32 = 0x01;

/// The bbolt magic number.
pub const MAGIC: u32 = 0xED0C_DAED;
/// The only supported file format version.
pub const VERSION: u32 = 2;
/// `meta.freelist` value meaning "no freelist persisted" (NoFreelistSync).
pub const PGID_NO_FREELIST: Pgid = u64::MAX;
/// Largest key accepted by `put`.
pub const MAX_KEY_SIZE: usize = 32768;
/// Largest value accepted by `put`.
pub const MAX_VALUE_SIZE: usize = (1 << 31) - 2;
/// Freelist pages whose count reaches this value store the real count in the first id slot.
pub const FREELIST_COUNT_OVERFLOW: u16 = 0xFFFF;

/// Reads a little-endian u16 at `off`, or `None` when out of bounds.
#[inline]
fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

/// Reads a little-endian u32 at `off`, or `None` when out of bounds.
#[inline]
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Reads a little-endian u64 at `off`, or `None` when out of bounds.
#[inline]
pub(crate) fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    let s = b.get(off..off.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

fn put_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// The first 8 bytes of `b`, zero padded, as a big-endian integer. Zero padding preserves
/// order: `prefix8(a) < prefix8(b)` implies `a < b`.
#[inline]
pub(crate) fn prefix8(b: &[u8]) -> u64 {
    if b.len() >= 8 {
        u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    } else {
        let mut a = [0u8; 8];
        a[..b.len()].copy_from_slice(b);
        u64::from_be_bytes(a)
    }
}

/// FNV-1a 64-bit hash, as used by the meta checksum.
pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The 16-byte header at the start of every page run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageHeader {
    /// Page id recorded in the page.
    pub id: Pgid,
    /// Page type flags.
    pub flags: u16,
    /// Element count (or freelist count, see the 0xFFFF rule).
    pub count: u16,
    /// Number of extra pages in this run.
    pub overflow: u32,
}

impl PageHeader {
    /// Decodes a header from its 16 bytes.
    #[inline(always)]
    pub fn from_bytes(b: &[u8; PAGE_HEADER_SIZE]) -> PageHeader {
        PageHeader {
            id: u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            flags: u16::from_le_bytes([b[8], b[9]]),
            count: u16::from_le_bytes([b[10], b[11]]),
            overflow: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
        }
    }

    /// Decodes the header at the start of `page`.
    #[inline]
    pub fn decode(page: &[u8], pgid: Pgid) -> Result<PageHeader> {
        let bad = || Error::corrupted(pgid, "page shorter than its 16-byte header");
        Ok(PageHeader {
            id: u64_at(page, 0).ok_or_else(bad)?,
            flags: u16_at(page, 8).ok_or_else(bad)?,
            count: u16_at(page, 10).ok_or_else(bad)?,
            overflow: u32_at(page, 12).ok_or_else(bad)?,
        })
    }

    /// Encodes the header into the first 16 bytes of `page`.
    pub fn encode(&self, page: &mut [u8]) {
        put_u64(page, 0, self.id);
        put_u16(page, 8, self.flags);
        put_u16(page, 10, self.count);
        put_u32(page, 12, self.overflow);
    }

    /// A short name for the page type, as the CLI and check messages print it.
    pub fn type_name(&self) -> &'static str {
        page_type_name(self.flags)
    }
}

/// A short name for a page flags value.
pub fn page_type_name(flags: u16) -> &'static str {
    match flags {
        FLAG_BRANCH => "branch",
        FLAG_LEAF => "leaf",
        FLAG_META => "meta",
        FLAG_FREELIST => "freelist",
        _ => "unknown",
    }
}

/// The meta page body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Page size of the file.
    pub page_size: u32,
    /// Unused flags, always 0.
    pub flags: u32,
    /// Root page of the root bucket.
    pub root: Pgid,
    /// Sequence of the root bucket (unused, kept).
    pub root_sequence: u64,
    /// Page id of the freelist, or [`PGID_NO_FREELIST`].
    pub freelist: Pgid,
    /// High-water mark: first never-allocated page id.
    pub pgid: Pgid,
    /// Id of the transaction that wrote this meta.
    pub txid: Txid,
}

/// Why a meta page was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaError {
    /// The page is too short to hold a meta.
    Short,
    /// The magic number is wrong; `big_endian` is set when it is bbolt's magic byte-swapped.
    Magic {
        /// The file looks like a big-endian bbolt file.
        big_endian: bool,
    },
    /// The version is not 2.
    Version(u32),
    /// The checksum does not match.
    Checksum,
}

impl std::fmt::Display for MetaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetaError::Short => write!(f, "meta page is truncated"),
            MetaError::Magic { big_endian: true } => {
                write!(
                    f,
                    "big-endian bbolt file (only little-endian files are supported)"
                )
            }
            MetaError::Magic { big_endian: false } => {
                write!(f, "bad magic number (not a bbolt file)")
            }
            MetaError::Version(v) => write!(f, "unsupported format version {v} (expected 2)"),
            MetaError::Checksum => write!(f, "meta checksum mismatch"),
        }
    }
}

impl Meta {
    /// Decodes and validates (magic, version, checksum) the meta of the page starting at `page`.
    pub fn decode(page: &[u8]) -> std::result::Result<Meta, MetaError> {
        let body = page
            .get(META_OFFSET..META_OFFSET + META_SIZE)
            .ok_or(MetaError::Short)?;
        let magic = u32_at(body, 0).ok_or(MetaError::Short)?;
        if magic != MAGIC {
            return Err(MetaError::Magic {
                big_endian: magic == MAGIC.swap_bytes(),
            });
        }
        let version = u32_at(body, 4).ok_or(MetaError::Short)?;
        if version != VERSION {
            return Err(MetaError::Version(version));
        }
        let checksum = u64_at(body, 56).ok_or(MetaError::Short)?;
        if checksum != fnv1a64(&body[..56]) {
            return Err(MetaError::Checksum);
        }
        let g = |off| u64_at(body, off).ok_or(MetaError::Short);
        Ok(Meta {
            page_size: u32_at(body, 8).ok_or(MetaError::Short)?,
            flags: u32_at(body, 12).ok_or(MetaError::Short)?,
            root: g(16)?,
            root_sequence: g(24)?,
            freelist: g(32)?,
            pgid: g(40)?,
            txid: g(48)?,
        })
    }

    /// The checksum this meta would be written with.
    pub fn checksum(&self) -> u64 {
        let mut body = [0u8; META_SIZE];
        self.encode_body(&mut body);
        fnv1a64(&body[..56])
    }

    fn encode_body(&self, body: &mut [u8]) {
        put_u32(body, 0, MAGIC);
        put_u32(body, 4, VERSION);
        put_u32(body, 8, self.page_size);
        put_u32(body, 12, self.flags);
        put_u64(body, 16, self.root);
        put_u64(body, 24, self.root_sequence);
        put_u64(body, 32, self.freelist);
        put_u64(body, 40, self.pgid);
        put_u64(body, 48, self.txid);
        let sum = fnv1a64(&body[..56]);
        put_u64(body, 56, sum);
    }

    /// Encodes a whole meta page (zero padded to `page_size`) for page id `txid % 2`.
    pub fn encode_page(&self) -> Vec<u8> {
        let mut page = vec![0u8; self.page_size as usize];
        PageHeader {
            id: self.txid % 2,
            flags: FLAG_META,
            count: 0,
            overflow: 0,
        }
        .encode(&mut page);
        self.encode_body(&mut page[META_OFFSET..META_OFFSET + META_SIZE]);
        page
    }
}

/// The bucket header stored as a bucket entry's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketHeader {
    /// Root page of the bucket's tree; 0 for an inline bucket.
    pub root: Pgid,
    /// The bucket's sequence.
    pub sequence: u64,
}

impl BucketHeader {
    /// Decodes a bucket header from the start of a bucket entry's value.
    pub fn decode(value: &[u8], pgid: Pgid) -> Result<BucketHeader> {
        let bad = || Error::corrupted(pgid, "bucket value shorter than its 16-byte header");
        Ok(BucketHeader {
            root: u64_at(value, 0).ok_or_else(bad)?,
            sequence: u64_at(value, 8).ok_or_else(bad)?,
        })
    }

    /// Appends the 16 encoded bytes to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.root.to_le_bytes());
        out.extend_from_slice(&self.sequence.to_le_bytes());
    }
}

/// A validated view of a branch or leaf page (or an inline bucket's page image).
///
/// Construction checks that the element array lies inside the page; each element access checks
/// that its key and value lie inside the page.
#[derive(Clone, Copy)]
pub struct NodePage<'a> {
    data: &'a [u8],
    /// The element array (`count` 16-byte elements after the header).
    elems: &'a [[u8; ELEMENT_SIZE]],
    pgid: Pgid,
    count: usize,
    leaf: bool,
}

/// Reads the little-endian u32 at byte `o` of an element.
#[inline(always)]
fn elem_u32(el: &[u8; ELEMENT_SIZE], o: usize) -> u32 {
    u32::from_le_bytes([el[o], el[o + 1], el[o + 2], el[o + 3]])
}

/// Reads the child page id of a branch element.
#[inline(always)]
fn elem_child(el: &[u8; ELEMENT_SIZE]) -> Pgid {
    u64::from_le_bytes([el[8], el[9], el[10], el[11], el[12], el[13], el[14], el[15]])
}

impl<'a> NodePage<'a> {
    /// Parses the page run `data` (header first) that was fetched as page `pgid`.
    pub fn parse(data: &'a [u8], pgid: Pgid) -> Result<NodePage<'a>> {
        let h = PageHeader::decode(data, pgid)?;
        NodePage::with_header(data, pgid, &h)
    }

    /// Like [`NodePage::parse`] for a run whose header was already decoded.
    #[inline]
    pub fn with_header(data: &'a [u8], pgid: Pgid, h: &PageHeader) -> Result<NodePage<'a>> {
        let leaf = match h.flags {
            FLAG_LEAF => true,
            FLAG_BRANCH => false,
            f => {
                return Err(Error::corrupted(
                    pgid,
                    format!(
                        "expected a branch or leaf page, found flags {f:#x} ({})",
                        page_type_name(f)
                    ),
                ))
            }
        };
        let count = h.count as usize;
        let Some(elems) = data.get(PAGE_HEADER_SIZE..PAGE_HEADER_SIZE + count * ELEMENT_SIZE)
        else {
            return Err(Error::corrupted(
                pgid,
                format!("{count} elements do not fit in a {}-byte page", data.len()),
            ));
        };
        if !leaf && count == 0 {
            return Err(Error::corrupted(pgid, "branch page with no elements"));
        }
        Ok(NodePage {
            data,
            elems: elems.as_chunks::<ELEMENT_SIZE>().0,
            pgid,
            count,
            leaf,
        })
    }

    /// Page id this view was fetched as (0 for inline pages).
    pub fn pgid(&self) -> Pgid {
        self.pgid
    }
    /// Number of elements.
    pub fn count(&self) -> usize {
        self.count
    }
    /// Whether this is a leaf page.
    pub fn is_leaf(&self) -> bool {
        self.leaf
    }

    fn slice(&self, elem: usize, pos: u32, len: u64, what: &str) -> Result<&'a [u8]> {
        let start = elem as u64 + u64::from(pos);
        let end = start + len;
        if end > self.data.len() as u64 {
            return Err(Error::corrupted(
                self.pgid,
                format!(
                    "{what} at offset {start}..{end} lies outside the {}-byte page",
                    self.data.len()
                ),
            ));
        }
        Ok(&self.data[start as usize..end as usize])
    }

    /// Key of element `i`.
    pub fn key(&self, i: usize) -> Result<&'a [u8]> {
        self.key_opt(i).ok_or_else(|| self.key_error(i))
    }

    /// The error for a key that lies outside the page.
    #[cold]
    fn key_error(&self, i: usize) -> Error {
        let e = PAGE_HEADER_SIZE + i * ELEMENT_SIZE;
        let (pos, ksize) = if self.leaf {
            (u32_at(self.data, e + 4), u32_at(self.data, e + 8))
        } else {
            (u32_at(self.data, e), u32_at(self.data, e + 4))
        };
        Error::corrupted(
            self.pgid,
            format!(
                "key of element {i} (pos {}, size {}) lies outside the {}-byte page",
                pos.unwrap_or(0),
                ksize.unwrap_or(0),
                self.data.len()
            ),
        )
    }

    /// Key of element `i`, or `None` when it lies outside the page (the hot path of searches;
    /// callers turn `None` into an error through [`NodePage::key`]).
    #[inline(always)]
    fn key_opt(&self, i: usize) -> Option<&'a [u8]> {
        // Leaf elements are (flags, pos, ksize, vsize), branch elements (pos, ksize, pgid).
        let pos_off = if self.leaf { 4 } else { 0 };
        self.key_at(i, pos_off)
    }

    /// Key of element `i` whose (pos, ksize) pair starts at byte `pos_off` of the element.
    #[inline(always)]
    fn key_at(&self, i: usize, pos_off: usize) -> Option<&'a [u8]> {
        let el = self.elems.get(i)?;
        let pos = elem_u32(el, pos_off) as usize;
        let ksize = elem_u32(el, pos_off + 4) as usize;
        // Checked: on 32-bit targets a hostile `pos`/`ksize` could otherwise wrap.
        let start = (PAGE_HEADER_SIZE + i * ELEMENT_SIZE).checked_add(pos)?;
        self.data.get(start..start.checked_add(ksize)?)
    }

    /// Leaf element `i`: (flags, key, value).
    #[inline]
    pub fn leaf_elem(&self, i: usize) -> Result<(u32, &'a [u8], &'a [u8])> {
        debug_assert!(self.leaf && i < self.count);
        self.leaf_elem_opt(i).ok_or_else(|| self.leaf_elem_error(i))
    }

    /// [`NodePage::leaf_elem`] with one bounds check for the element and one for its data,
    /// without building the error (the hot path of lookups).
    #[inline(always)]
    pub fn leaf_elem_opt(&self, i: usize) -> Option<(u32, &'a [u8], &'a [u8])> {
        let el = self.elems.get(i)?;
        let (flags, pos, ksize, vsize) = (
            elem_u32(el, 0),
            elem_u32(el, 4),
            elem_u32(el, 8),
            elem_u32(el, 12),
        );
        let start = (PAGE_HEADER_SIZE + i * ELEMENT_SIZE).checked_add(pos as usize)?;
        let mid = start.checked_add(ksize as usize)?;
        let kv = self.data.get(start..mid.checked_add(vsize as usize)?)?;
        let (k, v) = kv.split_at(ksize as usize);
        Some((flags, k, v))
    }

    /// The error for a leaf element whose key/value lies outside the page.
    #[cold]
    fn leaf_elem_error(&self, i: usize) -> Error {
        let e = PAGE_HEADER_SIZE + i * ELEMENT_SIZE;
        let pos = u32_at(self.data, e + 4).unwrap_or(0);
        let ksize = u32_at(self.data, e + 8).unwrap_or(0);
        let vsize = u32_at(self.data, e + 12).unwrap_or(0);
        match self.slice(
            e,
            pos,
            u64::from(ksize) + u64::from(vsize),
            "leaf key/value",
        ) {
            Err(err) => err,
            Ok(_) => Error::corrupted(self.pgid, format!("leaf element {i} is unreadable")),
        }
    }

    /// Bytes of the page run this view covers (header first).
    pub fn run_len(&self) -> usize {
        self.data.len()
    }

    /// [`NodePage::branch_elem`] without building the error.
    #[inline]
    pub fn branch_elem_opt(&self, i: usize) -> Option<(&'a [u8], Pgid)> {
        let child = elem_child(self.elems.get(i)?);
        Some((self.key_at(i, 0)?, child))
    }

    /// Branch element `i`: (key, child page id).
    #[inline]
    pub fn branch_elem(&self, i: usize) -> Result<(&'a [u8], Pgid)> {
        debug_assert!(!self.leaf && i < self.count);
        self.branch_elem_opt(i).ok_or_else(|| self.key_error(i))
    }

    /// Index of the first element whose key is `>= key` (== count when none).
    pub fn lower_bound(&self, key: &[u8]) -> Result<usize> {
        self.search(key).map_err(|mid| self.key_error(mid))
    }

    /// [`NodePage::lower_bound`] without building the error (the hot path of lookups).
    #[inline]
    pub fn lower_bound_opt(&self, key: &[u8]) -> Option<usize> {
        self.search(key).ok()
    }

    /// [`NodePage::lower_bound_at`] for this page's layout.
    #[inline(always)]
    fn search(&self, key: &[u8]) -> std::result::Result<usize, usize> {
        if self.leaf {
            self.lower_bound_at(key, 4)
        } else {
            self.lower_bound_at(key, 0)
        }
    }

    /// For a branch: [`NodePage::child_index`] followed by the child's page id, or `None`
    /// when an element lies outside the page.
    #[inline]
    pub fn child_for_opt(&self, key: &[u8]) -> Option<Pgid> {
        debug_assert!(!self.leaf);
        let i = self.lower_bound_at(key, 0).ok()?;
        let i = if i < self.elems.len() && self.key_at(i, 0)? == key {
            i
        } else {
            i.saturating_sub(1)
        };
        self.elems.get(i).map(elem_child)
    }

    /// [`NodePage::lower_bound`] for elements whose (pos, ksize) pair is at byte `pos_off`
    /// (a constant per call site, so the search loop has no layout branch). `Err` holds the
    /// index of an element whose key lies outside the page.
    #[inline(always)]
    fn lower_bound_at(&self, key: &[u8], pos_off: usize) -> std::result::Result<usize, usize> {
        let probe = prefix8(key);
        let (mut lo, mut hi) = (0usize, self.elems.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            let k = self.key_at(mid, pos_off).ok_or(mid)?;
            // Compare the first 8 bytes as an integer first; only equal prefixes need memcmp.
            let less = match prefix8(k).cmp(&probe) {
                std::cmp::Ordering::Equal => k < key,
                o => o.is_lt(),
            };
            if less {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// For a branch: index of the child whose range holds `key` (last key `<= key`, clamped to 0).
    pub fn child_index(&self, key: &[u8]) -> Result<usize> {
        let i = self.lower_bound(key)?;
        if i < self.count && self.key(i)? == key {
            Ok(i)
        } else {
            Ok(i.saturating_sub(1))
        }
    }
}

/// Serialized size of a node with the given elements: header plus, per element, the element
/// header, key and value.
pub fn node_size<'a>(entries: impl Iterator<Item = (usize, usize)> + 'a) -> usize {
    PAGE_HEADER_SIZE + entries.map(|(k, v)| ELEMENT_SIZE + k + v).sum::<usize>()
}

/// Writes a leaf page image into `buf` (which must be large enough and zeroed past the data).
///
/// `entries` yields (flags, key, value) in ascending key order.
pub fn write_leaf(buf: &mut [u8], id: Pgid, overflow: u32, entries: &[(u32, &[u8], &[u8])]) {
    write_leaf_from(buf, id, overflow, entries.iter().copied());
}

/// [`write_leaf`] from an iterator, so callers need not collect their entries first.
pub fn write_leaf_from<'e>(
    buf: &mut [u8],
    id: Pgid,
    overflow: u32,
    entries: impl ExactSizeIterator<Item = (u32, &'e [u8], &'e [u8])>,
) {
    let n = entries.len();
    PageHeader {
        id,
        flags: FLAG_LEAF,
        count: n as u16,
        overflow,
    }
    .encode(buf);
    let mut data = PAGE_HEADER_SIZE + n * ELEMENT_SIZE;
    for (i, (flags, k, v)) in entries.enumerate() {
        let e = PAGE_HEADER_SIZE + i * ELEMENT_SIZE;
        put_u32(buf, e, flags);
        put_u32(buf, e + 4, (data - e) as u32);
        put_u32(buf, e + 8, k.len() as u32);
        put_u32(buf, e + 12, v.len() as u32);
        buf[data..data + k.len()].copy_from_slice(k);
        data += k.len();
        buf[data..data + v.len()].copy_from_slice(v);
        data += v.len();
    }
}

/// Writes a branch page image into `buf`; `entries` yields (key, child) in ascending key order.
pub fn write_branch(buf: &mut [u8], id: Pgid, overflow: u32, entries: &[(&[u8], Pgid)]) {
    write_branch_from(buf, id, overflow, entries.iter().copied());
}

/// [`write_branch`] from an iterator, so callers need not collect their entries first.
pub fn write_branch_from<'e>(
    buf: &mut [u8],
    id: Pgid,
    overflow: u32,
    entries: impl ExactSizeIterator<Item = (&'e [u8], Pgid)>,
) {
    let n = entries.len();
    PageHeader {
        id,
        flags: FLAG_BRANCH,
        count: n as u16,
        overflow,
    }
    .encode(buf);
    let mut data = PAGE_HEADER_SIZE + n * ELEMENT_SIZE;
    for (i, (k, child)) in entries.enumerate() {
        let e = PAGE_HEADER_SIZE + i * ELEMENT_SIZE;
        put_u32(buf, e, (data - e) as u32);
        put_u32(buf, e + 4, k.len() as u32);
        put_u64(buf, e + 8, child);
        buf[data..data + k.len()].copy_from_slice(k);
        data += k.len();
    }
}

/// Decodes the ids listed in a freelist page run (`data` covers the whole run).
pub fn read_freelist(data: &[u8], pgid: Pgid) -> Result<Vec<Pgid>> {
    let h = PageHeader::decode(data, pgid)?;
    if h.flags != FLAG_FREELIST {
        return Err(Error::corrupted(
            pgid,
            format!(
                "expected a freelist page, found flags {:#x} ({})",
                h.flags,
                page_type_name(h.flags)
            ),
        ));
    }
    let (count, start) = if h.count == FREELIST_COUNT_OVERFLOW {
        let n = u64_at(data, PAGE_HEADER_SIZE)
            .ok_or_else(|| Error::corrupted(pgid, "freelist page too short for its count"))?;
        (n, PAGE_HEADER_SIZE + 8)
    } else {
        (u64::from(h.count), PAGE_HEADER_SIZE)
    };
    let need = count
        .checked_mul(8)
        .and_then(|b| b.checked_add(start as u64))
        .filter(|&end| end <= data.len() as u64)
        .ok_or_else(|| {
            Error::corrupted(
                pgid,
                format!(
                    "freelist of {count} ids does not fit in its {}-byte run",
                    data.len()
                ),
            )
        })?;
    let ids = data[start..need as usize]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect();
    Ok(ids)
}

/// Bytes a freelist page needs for `n` ids (bbolt's estimate, used to size the run).
pub fn freelist_size(n: usize) -> usize {
    let mut size = PAGE_HEADER_SIZE + 8 * n;
    if n >= FREELIST_COUNT_OVERFLOW as usize {
        size += 8;
    }
    size
}

/// Writes a freelist page run holding the sorted `ids` into `buf` (zeroed, large enough).
pub fn write_freelist(buf: &mut [u8], id: Pgid, overflow: u32, ids: &[Pgid]) {
    let (count, mut off) = if ids.len() >= FREELIST_COUNT_OVERFLOW as usize {
        put_u64(buf, PAGE_HEADER_SIZE, ids.len() as u64);
        (FREELIST_COUNT_OVERFLOW, PAGE_HEADER_SIZE + 8)
    } else {
        (ids.len() as u16, PAGE_HEADER_SIZE)
    };
    PageHeader {
        id,
        flags: FLAG_FREELIST,
        count,
        overflow,
    }
    .encode(buf);
    for &pg in ids {
        put_u64(buf, off, pg);
        off += 8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init_meta(page_size: u32, txid: u64) -> Meta {
        Meta {
            page_size,
            flags: 0,
            root: 3,
            root_sequence: 0,
            freelist: 2,
            pgid: 4,
            txid,
        }
    }

    #[test]
    fn meta_checksums_match_reference_vectors() {
        let vectors = [
            (1024, 0xa405d3b025610722u64, 0xc3009ab930505143u64),
            (4096, 0x07516e114689fdee, 0x264c351a5179480f),
            (16384, 0x90f347e30dddf37e, 0xafee0eec18cd3d9f),
            (65536, 0x05c392110dcba3a7, 0xe6c8cb0802dc5986),
        ];
        for (ps, m0, m1) in vectors {
            assert_eq!(init_meta(ps, 0).checksum(), m0, "meta0 at {ps}");
            assert_eq!(init_meta(ps, 1).checksum(), m1, "meta1 at {ps}");
        }
    }

    #[test]
    fn meta_round_trips_and_rejects_damage() {
        let m = init_meta(4096, 7);
        let page = m.encode_page();
        assert_eq!(page.len(), 4096);
        assert_eq!(PageHeader::decode(&page, 1).unwrap().id, 1);
        assert_eq!(Meta::decode(&page).unwrap(), m);
        let mut bad = page.clone();
        bad[60] ^= 1;
        assert_eq!(Meta::decode(&bad), Err(MetaError::Checksum));
        let mut be = page.clone();
        be[16..20].copy_from_slice(&MAGIC.to_be_bytes());
        assert_eq!(
            Meta::decode(&be),
            Err(MetaError::Magic { big_endian: true })
        );
        let mut v = page.clone();
        v[20] = 3;
        assert_eq!(Meta::decode(&v), Err(MetaError::Version(3)));
        assert_eq!(Meta::decode(&page[..40]), Err(MetaError::Short));
    }

    #[test]
    fn leaf_page_round_trip_matches_layout() {
        let mut buf = vec![0u8; 4096];
        let entries: Vec<(u32, &[u8], &[u8])> = vec![(0, b"a", b"xyz"), (1, b"bb", b"")];
        write_leaf(&mut buf, 9, 0, &entries);
        // pos of element 0 = 16*2 (elements after it, including itself) + 0
        assert_eq!(u32_at(&buf, 16 + 4), Some(32));
        assert_eq!(u32_at(&buf, 32 + 4), Some(16 + 4));
        let p = NodePage::parse(&buf, 9).unwrap();
        assert!(p.is_leaf());
        assert_eq!(p.leaf_elem(0).unwrap(), (0, &b"a"[..], &b"xyz"[..]));
        assert_eq!(p.leaf_elem(1).unwrap(), (1, &b"bb"[..], &b""[..]));
        assert_eq!(p.lower_bound(b"b").unwrap(), 1);
        assert_eq!(p.lower_bound(b"c").unwrap(), 2);
    }

    #[test]
    fn branch_page_round_trip_and_child_search() {
        let mut buf = vec![0u8; 1024];
        write_branch(&mut buf, 5, 0, &[(b"b", 10), (b"d", 11), (b"f", 12)]);
        let p = NodePage::parse(&buf, 5).unwrap();
        assert!(!p.is_leaf());
        assert_eq!(p.branch_elem(1).unwrap(), (&b"d"[..], 11));
        assert_eq!(p.child_index(b"a").unwrap(), 0);
        assert_eq!(p.child_index(b"d").unwrap(), 1);
        assert_eq!(p.child_index(b"e").unwrap(), 1);
        assert_eq!(p.child_index(b"z").unwrap(), 2);
    }

    #[test]
    fn corrupt_elements_are_errors_not_panics() {
        let mut buf = vec![0u8; 256];
        write_leaf(&mut buf, 3, 0, &[(0, b"k", b"v")]);
        buf[16 + 8..16 + 12].copy_from_slice(&1000u32.to_le_bytes());
        let p = NodePage::parse(&buf, 3).unwrap();
        let err = p.leaf_elem(0).unwrap_err();
        assert!(matches!(err, Error::Corrupted { page: 3, .. }), "{err}");
        // count too large for the page
        let mut buf2 = vec![0u8; 64];
        write_leaf(&mut buf2, 4, 0, &[]);
        buf2[10..12].copy_from_slice(&100u16.to_le_bytes());
        assert!(NodePage::parse(&buf2, 4).is_err());
        // wrong page type
        let mut buf3 = vec![0u8; 64];
        PageHeader {
            id: 4,
            flags: FLAG_META,
            count: 0,
            overflow: 0,
        }
        .encode(&mut buf3);
        assert!(NodePage::parse(&buf3, 4).is_err());
    }

    #[test]
    fn freelist_round_trip_including_count_overflow() {
        for n in [0usize, 3, 0xFFFE, 0xFFFF, 70_000] {
            let ids: Vec<Pgid> = (2..2 + n as u64).collect();
            let size = freelist_size(n);
            let mut buf = vec![0u8; size];
            write_freelist(&mut buf, 2, 0, &ids);
            let h = PageHeader::decode(&buf, 2).unwrap();
            if n >= 0xFFFF {
                assert_eq!(h.count, 0xFFFF);
            } else {
                assert_eq!(h.count as usize, n);
            }
            assert_eq!(read_freelist(&buf, 2).unwrap(), ids);
        }
        let mut short = vec![0u8; 32];
        PageHeader {
            id: 2,
            flags: FLAG_FREELIST,
            count: 10,
            overflow: 0,
        }
        .encode(&mut short);
        assert!(read_freelist(&short, 2).is_err());
    }

    #[test]
    fn fnv_known_values() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
    }
}
