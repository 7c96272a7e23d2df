//! String values: inline in the header up to [`INLINE_MAX`] bytes, otherwise in chunks of
//! [`CHUNK`] bytes under a value id, so APPEND, SETRANGE, GETRANGE, SETBIT and GETBIT cost in
//! proportion to the bytes they touch. A chunk that was never written reads as zeros, which
//! keeps `SETBIT k 4294967295 1` cheap.

use std::borrow::Cow;

use super::keyspace::{Body, Header, Kind};
use super::{DbView, Result};

/// Largest string kept inline in its header, in bytes.
pub const INLINE_MAX: usize = 16 * 1024;

/// Size of one chunk of a big string, in bytes.
pub const CHUNK: usize = 16 * 1024;

fn chunk_key(id: u64, n: u64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&id.to_be_bytes());
    k[8..].copy_from_slice(&(n as u32).to_be_bytes());
    k
}

/// The header of a chunked string value `id` of `len` bytes.
fn chunked(id: u64, len: u64, expire_at: Option<i64>) -> Header<'static> {
    Header {
        kind: Kind::String,
        expire_at,
        body: Body::Id {
            id,
            len,
            extra: &[],
        },
    }
}

/// The length in bytes of a string header's value.
pub fn string_len(h: &Header<'_>) -> u64 {
    match h.body {
        Body::Inline(b) => b.len() as u64,
        Body::Id { len, .. } => len,
    }
}

impl<'tx> DbView<'tx> {
    /// The whole value of a string header.
    pub fn string_value(&self, h: &Header<'tx>) -> Result<Cow<'tx, [u8]>> {
        match h.body {
            Body::Inline(b) => Ok(Cow::Borrowed(b)),
            Body::Id { .. } => Ok(Cow::Owned(self.string_bytes(h)?)),
        }
    }

    /// The whole value of a string header as an owned buffer (any header lifetime).
    pub fn string_bytes(&self, h: &Header<'_>) -> Result<Vec<u8>> {
        match h.body {
            Body::Inline(b) => Ok(b.to_vec()),
            Body::Id { id, len, .. } => self.chunk_range(id, len, 0, len),
        }
    }

    /// Bytes `start..end` of a string (clamped to its length).
    pub fn string_range(&self, h: &Header<'tx>, start: u64, end: u64) -> Result<Vec<u8>> {
        let len = string_len(h);
        let end = end.min(len);
        if start >= end {
            return Ok(Vec::new());
        }
        match h.body {
            Body::Inline(b) => Ok(b[start as usize..end as usize].to_vec()),
            Body::Id { id, len, .. } => self.chunk_range(id, len, start, end),
        }
    }

    /// Bytes `start..end` (clamped to `len`) of chunked value `id`.
    fn chunk_range(&self, id: u64, len: u64, start: u64, end: u64) -> Result<Vec<u8>> {
        let end = end.min(len);
        if start >= end {
            return Ok(Vec::new());
        }
        let chunks = self.chunks()?;
        let mut out = Vec::with_capacity((end - start) as usize);
        let mut pos = start;
        while pos < end {
            let n = pos / CHUNK as u64;
            let within = (pos % CHUNK as u64) as usize;
            let take = ((CHUNK - within) as u64).min(end - pos) as usize;
            let data = chunks.get(&chunk_key(id, n))?.unwrap_or(&[]);
            let have = data.len().saturating_sub(within).min(take);
            if have > 0 {
                out.extend_from_slice(&data[within..within + have]);
            }
            out.resize(out.len() + (take - have), 0);
            pos += take as u64;
        }
        Ok(out)
    }

    /// Replaces the value of `key` (current live header `old`, any type) with the string
    /// `value`, expiring at `expire_at`.
    pub fn write_string(
        &self,
        key: &[u8],
        old: Option<&Header<'_>>,
        value: &[u8],
        expire_at: Option<i64>,
    ) -> Result<()> {
        if let Some(o) = old {
            match o.body {
                Body::Id { id, .. } if o.kind == Kind::String => self.free_chunks(id)?,
                Body::Id { .. } => {
                    // Replacing a collection with a string: drop the whole old entry first.
                    self.delete_entry(key, o)?;
                    return self.write_string(key, None, value, expire_at);
                }
                Body::Inline(_) => {}
            }
        }
        if value.len() <= INLINE_MAX {
            let h = Header {
                kind: Kind::String,
                expire_at,
                body: Body::Inline(value),
            };
            return self.put_header(key, old, &h);
        }
        let id = self.new_id()?;
        self.write_chunks(id, 0, value)?;
        self.put_header(key, old, &chunked(id, value.len() as u64, expire_at))
    }

    /// Writes `data` at byte `offset` of the string `key` (current live string header `old`,
    /// or `None` to create it), zero-filling any gap, keeping the expiry. Returns the new
    /// length. Costs in proportion to `data.len()` (plus one chunk at each end) once the
    /// string is chunked.
    pub fn string_set_range(
        &self,
        key: &[u8],
        old: Option<&Header<'tx>>,
        offset: u64,
        data: &[u8],
    ) -> Result<u64> {
        let cur_len = old.map(string_len).unwrap_or(0);
        let new_len = cur_len.max(offset + data.len() as u64);
        let expire_at = old.and_then(|h| h.expire_at);
        match old.map(|h| h.body) {
            None | Some(Body::Inline(_)) if new_len as usize <= INLINE_MAX => {
                let mut v = match old.map(|h| h.body) {
                    Some(Body::Inline(b)) => b.to_vec(),
                    _ => Vec::new(),
                };
                v.resize(new_len as usize, 0);
                v[offset as usize..offset as usize + data.len()].copy_from_slice(data);
                self.write_string(key, old, &v, expire_at)?;
            }
            Some(Body::Id { id, .. }) => {
                self.write_chunks(id, offset, data)?;
                self.put_header(key, old, &chunked(id, new_len, expire_at))?;
            }
            _ => {
                // Inline (or new) growing past the inline limit: move to chunks.
                let id = self.new_id()?;
                if let Some(Body::Inline(b)) = old.map(|h| h.body) {
                    self.write_chunks(id, 0, b)?;
                }
                self.write_chunks(id, offset, data)?;
                self.put_header(key, old, &chunked(id, new_len, expire_at))?;
            }
        }
        Ok(new_len)
    }

    /// Writes `data` at `offset` into the chunks of value `id`, read-modify-writing the
    /// partial chunks at either end.
    pub(crate) fn write_chunks(&self, id: u64, offset: u64, data: &[u8]) -> Result<()> {
        let chunks = self.chunks()?;
        let mut pos = offset;
        let mut src = data;
        while !src.is_empty() {
            let n = pos / CHUNK as u64;
            let within = (pos % CHUNK as u64) as usize;
            let take = (CHUNK - within).min(src.len());
            let k = chunk_key(id, n);
            if within == 0 && take == CHUNK {
                chunks.put(&k, &src[..take])?;
            } else {
                let mut buf = chunks.get(&k)?.map(|c| c.to_vec()).unwrap_or_default();
                if buf.len() < within + take {
                    buf.resize(within + take, 0);
                }
                buf[within..within + take].copy_from_slice(&src[..take]);
                chunks.put(&k, &buf)?;
            }
            pos += take as u64;
            src = &src[take..];
        }
        Ok(())
    }

    /// Deletes every chunk of value `id` (only the chunks that exist are visited).
    pub(crate) fn free_chunks(&self, id: u64) -> Result<()> {
        super::delete_prefix(&self.chunks()?, &id.to_be_bytes())
    }
}
