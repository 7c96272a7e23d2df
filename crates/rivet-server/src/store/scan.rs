//! Walking the keyspace: SCAN's stateless cursor, KEYS and RANDOMKEY.
//!
//! The keyspace is ordered by the keys' 64-bit hash, so a SCAN cursor is simply the hash to
//! continue from. It needs no server memory, survives restarts, and keeps Redis's guarantee:
//! a key present for the whole scan sits at a fixed position and is returned exactly once
//! (keys that share a 64-bit hash are always returned in the same batch).

use super::keyspace::{Header, Kind};
use super::{DbView, Result};

/// One page of a SCAN.
#[derive(Debug, Default)]
pub struct ScanPage {
    /// The cursor to send next; 0 when the scan is complete.
    pub cursor: u64,
    /// Keys of this page that passed the filters.
    pub keys: Vec<Vec<u8>>,
}

impl DbView<'_> {
    /// Visits up to about `count` keyspace entries starting at `cursor`, returning the live
    /// keys for which `keep(key, kind)` holds.
    pub fn scan(
        &self,
        cursor: u64,
        count: usize,
        now_ms: i64,
        mut keep: impl FnMut(&[u8], Kind) -> bool,
    ) -> Result<ScanPage> {
        let keys = self.keys()?;
        let mut c = keys.cursor();
        let mut e = c.seek(&cursor.to_be_bytes())?;
        let mut page = ScanPage::default();
        let mut visited = 0usize;
        let mut last_hash: Option<u64> = None;
        while let Some(entry) = e {
            let (hash, key) = split_slot(entry.key())?;
            if visited >= count.max(1) && last_hash != Some(hash) {
                page.cursor = hash;
                return Ok(page);
            }
            visited += 1;
            last_hash = Some(hash);
            let h = decode(entry.value(), key)?;
            if !h.is_expired(now_ms) && keep(key, h.kind) {
                page.keys.push(key.to_vec());
            }
            e = c.next()?;
        }
        page.cursor = 0;
        Ok(page)
    }

    /// Every live key for which `keep(key)` holds (KEYS).
    pub fn all_keys(
        &self,
        now_ms: i64,
        mut keep: impl FnMut(&[u8]) -> bool,
    ) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        for entry in self.keys()?.iter() {
            let entry = entry?;
            let (_, key) = split_slot(entry.key())?;
            let h = decode(entry.value(), key)?;
            if !h.is_expired(now_ms) && keep(key) {
                out.push(key.to_vec());
            }
        }
        Ok(out)
    }

    /// A live key chosen by hash position `r` (uniform over the hash space, so close to
    /// uniform over keys); `None` when the database has no live key near there.
    pub fn random_key(&self, r: u64, now_ms: i64) -> Result<Option<Vec<u8>>> {
        let keys = self.keys()?;
        let mut c = keys.cursor();
        let mut e = c.seek(&r.to_be_bytes())?;
        if e.is_none() {
            e = c.first()?;
        }
        // Skip past expired keys, wrapping once.
        let mut wrapped = false;
        let mut steps = 0;
        while steps < 1000 {
            match e {
                Some(entry) => {
                    let (_, key) = split_slot(entry.key())?;
                    if !decode(entry.value(), key)?.is_expired(now_ms) {
                        return Ok(Some(key.to_vec()));
                    }
                    e = c.next()?;
                }
                None if !wrapped => {
                    wrapped = true;
                    e = c.first()?;
                }
                None => return Ok(None),
            }
            steps += 1;
        }
        Ok(None)
    }
}

fn split_slot(k: &[u8]) -> Result<(u64, &[u8])> {
    match k.split_first_chunk::<8>() {
        Some((h, rest)) => Ok((u64::from_be_bytes(*h), rest)),
        None => Err(rivet::Error::corrupted(
            0,
            "keyspace entry key shorter than its hash",
        )),
    }
}

fn decode<'a>(v: Option<&'a [u8]>, key: &[u8]) -> Result<Header<'a>> {
    v.and_then(Header::decode).ok_or_else(|| {
        rivet::Error::corrupted(
            0,
            format!(
                "malformed keyspace header for key {:?}",
                String::from_utf8_lossy(key)
            ),
        )
    })
}
