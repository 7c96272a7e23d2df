//! On-disk consumer groups of a stream: every group, consumer and pending entry is its own
//! record under the stream's collection id, after every entry (their sub-keys start with
//! sixteen 0xff bytes, which sort after any 16-byte entry id), so no command loads a whole
//! pending entries list (PEL) and XACK of one id is a few B+tree operations.
//!
//! ```text
//! group:         FF*16 'g' name                                   -> last id (16) | entries read (i64, -1: unknown) | pel count (8) | consumers (8)
//! consumer:      FF*16 'c' len(group) group name                  -> seen time ms (8) | pel count (8)
//! group PEL:     FF*16 'p' len(group) group id(16)                -> delivery time ms (8) | delivery count (8) | consumer name
//! consumer PEL:  FF*16 'q' len(group) group len(consumer) consumer id(16) -> (empty)
//! ```
//!
//! Lengths are 4-byte big-endian. Deleting the stream frees these records with its entries
//! (they share the collection id); COPY, RENAME and MOVE carry them along.

use std::collections::BTreeMap;

use super::streams::StreamId;
use crate::store::collections::member_key;
use crate::store::DbView;

type Res<T> = Result<T, rivet::Error>;

const META: [u8; 16] = [0xff; 16];

fn sub(tag: u8, parts: &[&[u8]], sized: &[bool]) -> Vec<u8> {
    let mut k = Vec::with_capacity(17 + parts.iter().map(|p| p.len() + 4).sum::<usize>());
    k.extend_from_slice(&META);
    k.push(tag);
    for (p, s) in parts.iter().zip(sized) {
        if *s {
            k.extend_from_slice(&(p.len() as u32).to_be_bytes());
        }
        k.extend_from_slice(p);
    }
    k
}

fn group_key(g: &[u8]) -> Vec<u8> {
    sub(b'g', &[g], &[false])
}

fn consumer_prefix(g: &[u8]) -> Vec<u8> {
    sub(b'c', &[g], &[true])
}

fn pel_prefix(g: &[u8]) -> Vec<u8> {
    sub(b'p', &[g], &[true])
}

fn cpel_group_prefix(g: &[u8]) -> Vec<u8> {
    sub(b'q', &[g], &[true])
}

fn cpel_prefix(g: &[u8], c: &[u8]) -> Vec<u8> {
    sub(b'q', &[g, c], &[true, true])
}

fn corrupt(what: &str) -> rivet::Error {
    rivet::Error::corrupted(0, format!("stream consumer group record: {what}"))
}

fn u64_at(b: &[u8], at: usize) -> Res<u64> {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| corrupt("too short"))
}

/// A consumer group's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    /// `last-delivered-id`.
    pub last: StreamId,
    /// `entries-read` (-1: unknown).
    pub entries_read: i64,
    /// Entries in the group's PEL.
    pub pel: u64,
    /// Number of consumers.
    pub consumers: u64,
}

impl Group {
    fn decode(b: &[u8]) -> Res<Group> {
        if b.len() < 40 {
            return Err(corrupt("group record too short"));
        }
        Ok(Group {
            last: StreamId::from_key(&b[..16]),
            entries_read: u64_at(b, 16)? as i64,
            pel: u64_at(b, 24)?,
            consumers: u64_at(b, 32)?,
        })
    }

    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(40);
        v.extend_from_slice(&self.last.key());
        v.extend_from_slice(&self.entries_read.to_be_bytes());
        v.extend_from_slice(&self.pel.to_be_bytes());
        v.extend_from_slice(&self.consumers.to_be_bytes());
        v
    }
}

/// A consumer's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consumer {
    /// Last time it was seen (ms).
    pub seen: i64,
    /// Entries in its PEL.
    pub pel: u64,
}

/// A pending entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nack {
    /// Last delivery time (ms).
    pub time: i64,
    /// Times delivered.
    pub count: u64,
    /// Owner (empty: none yet, after XCLAIM FORCE before it is assigned).
    pub consumer: Vec<u8>,
}

impl Nack {
    fn decode(b: &[u8]) -> Res<Nack> {
        Ok(Nack {
            time: u64_at(b, 0)? as i64,
            count: u64_at(b, 8)?,
            consumer: b.get(16..).unwrap_or(&[]).to_vec(),
        })
    }

    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(16 + self.consumer.len());
        v.extend_from_slice(&self.time.to_be_bytes());
        v.extend_from_slice(&self.count.to_be_bytes());
        v.extend_from_slice(&self.consumer);
        v
    }
}

/// The groups of stream `sid`, in name order.
pub fn groups(v: &DbView<'_>, sid: u64) -> Res<Vec<(Vec<u8>, Group)>> {
    let mut out = Vec::new();
    let prefix = sub(b'g', &[], &[]);
    let mut bad = None;
    v.coll_scan(sid, &prefix, None, false, |k, val| {
        match Group::decode(val) {
            Ok(g) => out.push((k.to_vec(), g)),
            Err(e) => bad = Some(e),
        }
        Ok(bad.is_none())
    })?;
    match bad {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Deletes every record of stream `sid` whose sub-key starts with `prefix`.
fn delete_prefix(v: &DbView<'_>, sid: u64, prefix: &[u8]) -> Res<u64> {
    let d = v.data()?;
    let base = member_key(sid, prefix);
    let mut c = d.cursor();
    let mut e = c.seek(&base)?;
    let mut n = 0;
    while let Some(entry) = e {
        if !entry.key().starts_with(&base) {
            break;
        }
        c.delete()?;
        n += 1;
        e = c.next()?;
    }
    Ok(n)
}

/// Creates group `name`; false if it exists.
pub fn create_group(v: &DbView<'_>, sid: u64, name: &[u8], last: StreamId, read: i64) -> Res<bool> {
    if v.coll_get(sid, &group_key(name))?.is_some() {
        return Ok(false);
    }
    let g = Group {
        last,
        entries_read: read,
        pel: 0,
        consumers: 0,
    };
    v.coll_put(sid, &group_key(name), &g.encode())?;
    Ok(true)
}

/// Deletes group `name` with its consumers and PEL; false if it did not exist.
pub fn destroy_group(v: &DbView<'_>, sid: u64, name: &[u8]) -> Res<bool> {
    if !v.coll_del(sid, &group_key(name))? {
        return Ok(false);
    }
    delete_prefix(v, sid, &consumer_prefix(name))?;
    delete_prefix(v, sid, &pel_prefix(name))?;
    delete_prefix(v, sid, &cpel_group_prefix(name))?;
    Ok(true)
}

/// One group being read or changed: its state and the consumers touched, written back by
/// [`GroupEdit::save`].
pub struct GroupEdit<'a, 'tx> {
    v: &'a DbView<'tx>,
    sid: u64,
    name: Vec<u8>,
    /// The group's state.
    pub g: Group,
    consumers: BTreeMap<Vec<u8>, Option<Consumer>>,
    dirty: BTreeMap<Vec<u8>, bool>,
    group_dirty: bool,
}

impl<'a, 'tx> GroupEdit<'a, 'tx> {
    /// Group `name` of stream `sid`, if it exists.
    pub fn load(v: &'a DbView<'tx>, sid: u64, name: &[u8]) -> Res<Option<GroupEdit<'a, 'tx>>> {
        let Some(b) = v.coll_get(sid, &group_key(name))? else {
            return Ok(None);
        };
        Ok(Some(GroupEdit {
            v,
            sid,
            name: name.to_vec(),
            g: Group::decode(b)?,
            consumers: BTreeMap::new(),
            dirty: BTreeMap::new(),
            group_dirty: false,
        }))
    }

    /// Marks the group state changed.
    pub fn touch(&mut self) {
        self.group_dirty = true;
    }

    fn ckey(&self, c: &[u8]) -> Vec<u8> {
        let mut k = consumer_prefix(&self.name);
        k.extend_from_slice(c);
        k
    }

    fn pkey(&self, id: StreamId) -> Vec<u8> {
        let mut k = pel_prefix(&self.name);
        k.extend_from_slice(&id.key());
        k
    }

    fn qkey(&self, c: &[u8], id: StreamId) -> Vec<u8> {
        let mut k = cpel_prefix(&self.name, c);
        k.extend_from_slice(&id.key());
        k
    }

    /// Consumer `c`, as stored or as changed in this edit.
    pub fn consumer(&mut self, c: &[u8]) -> Res<Option<Consumer>> {
        if let Some(x) = self.consumers.get(c) {
            return Ok(*x);
        }
        let found = match self.v.coll_get(self.sid, &self.ckey(c))? {
            Some(b) => Some(Consumer {
                seen: u64_at(b, 0)? as i64,
                pel: u64_at(b, 8)?,
            }),
            None => None,
        };
        self.consumers.insert(c.to_vec(), found);
        Ok(found)
    }

    fn set_consumer(&mut self, c: &[u8], x: Option<Consumer>) {
        self.consumers.insert(c.to_vec(), x);
        self.dirty.insert(c.to_vec(), true);
    }

    /// Consumer `c`, created when missing (returns whether it was created); `seen` refreshed to
    /// `now` when `refresh` or created.
    pub fn ensure_consumer(&mut self, c: &[u8], now: i64, refresh: bool) -> Res<bool> {
        match self.consumer(c)? {
            Some(mut x) => {
                if refresh {
                    x.seen = now;
                    self.set_consumer(c, Some(x));
                }
                Ok(false)
            }
            None => {
                self.set_consumer(c, Some(Consumer { seen: now, pel: 0 }));
                self.g.consumers += 1;
                self.group_dirty = true;
                Ok(true)
            }
        }
    }

    /// Deletes consumer `c` and its pending entries; returns how many it had, or None.
    pub fn delete_consumer(&mut self, c: &[u8]) -> Res<Option<u64>> {
        let Some(x) = self.consumer(c)? else {
            return Ok(None);
        };
        // In batches, so that a consumer with millions of pending entries is not loaded whole.
        let mut removed = 0u64;
        loop {
            let ids = self.consumer_pel(c, StreamId::default(), StreamId::MAX, 1024)?;
            if ids.is_empty() {
                break;
            }
            for id in &ids {
                self.v.coll_del(self.sid, &self.pkey(*id))?;
                self.v.coll_del(self.sid, &self.qkey(c, *id))?;
            }
            removed += ids.len() as u64;
        }
        self.g.pel = self.g.pel.saturating_sub(removed);
        self.g.consumers = self.g.consumers.saturating_sub(1);
        self.group_dirty = true;
        self.set_consumer(c, None);
        Ok(Some(x.pel))
    }

    /// Every consumer, in name order, with this edit's changes.
    pub fn consumers(&mut self) -> Res<Vec<(Vec<u8>, Consumer)>> {
        let prefix = consumer_prefix(&self.name);
        let mut names = Vec::new();
        self.v.coll_scan(self.sid, &prefix, None, false, |k, _| {
            names.push(k.to_vec());
            Ok(true)
        })?;
        for (k, x) in &self.consumers {
            if x.is_some() && !names.contains(k) {
                names.push(k.clone());
            }
        }
        names.sort();
        let mut out = Vec::new();
        for n in names {
            if let Some(x) = self.consumer(&n)? {
                out.push((n, x));
            }
        }
        Ok(out)
    }

    /// The pending entry `id`.
    pub fn nack(&self, id: StreamId) -> Res<Option<Nack>> {
        match self.v.coll_get(self.sid, &self.pkey(id))? {
            Some(b) => Ok(Some(Nack::decode(b)?)),
            None => Ok(None),
        }
    }

    /// Stores pending entry `id` as `new`, where `old` is what is stored now; moves it between
    /// consumers' lists and keeps the counts in step.
    pub fn put_nack(&mut self, id: StreamId, old: Option<&Nack>, new: &Nack) -> Res<()> {
        match old {
            None => {
                self.g.pel += 1;
                self.group_dirty = true;
                self.add_to_consumer(&new.consumer, id)?;
            }
            Some(o) if o.consumer != new.consumer => {
                self.remove_from_consumer(&o.consumer, id)?;
                self.add_to_consumer(&new.consumer, id)?;
            }
            Some(_) => {}
        }
        self.v.coll_put(self.sid, &self.pkey(id), &new.encode())?;
        Ok(())
    }

    /// Removes pending entry `id` (stored as `old`).
    pub fn remove_nack(&mut self, id: StreamId, old: &Nack) -> Res<()> {
        self.v.coll_del(self.sid, &self.pkey(id))?;
        self.remove_from_consumer(&old.consumer, id)?;
        self.g.pel = self.g.pel.saturating_sub(1);
        self.group_dirty = true;
        Ok(())
    }

    fn add_to_consumer(&mut self, c: &[u8], id: StreamId) -> Res<()> {
        if c.is_empty() {
            return Ok(());
        }
        if let Some(mut x) = self.consumer(c)? {
            x.pel += 1;
            self.set_consumer(c, Some(x));
        }
        self.v.coll_put(self.sid, &self.qkey(c, id), b"")?;
        Ok(())
    }

    fn remove_from_consumer(&mut self, c: &[u8], id: StreamId) -> Res<()> {
        if c.is_empty() {
            return Ok(());
        }
        if self.v.coll_del(self.sid, &self.qkey(c, id))? {
            if let Some(mut x) = self.consumer(c)? {
                x.pel = x.pel.saturating_sub(1);
                self.set_consumer(c, Some(x));
            }
        }
        Ok(())
    }

    /// Up to `count` (0: all) ids of the group PEL from `start` to `end`, with their entries.
    pub fn group_pel(
        &self,
        start: StreamId,
        end: StreamId,
        count: usize,
    ) -> Res<Vec<(StreamId, Nack)>> {
        let mut out = Vec::new();
        if start > end {
            return Ok(out);
        }
        let mut bad = None;
        self.v.coll_scan(
            self.sid,
            &pel_prefix(&self.name),
            Some(&start.key()),
            false,
            |k, val| {
                let id = StreamId::from_key(k);
                if id > end {
                    return Ok(false);
                }
                match Nack::decode(val) {
                    Ok(n) => out.push((id, n)),
                    Err(e) => bad = Some(e),
                }
                Ok(bad.is_none() && (count == 0 || out.len() < count))
            },
        )?;
        match bad {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// The first and last id of the group PEL.
    pub fn pel_edges(&self) -> Res<Option<(StreamId, StreamId)>> {
        let prefix = pel_prefix(&self.name);
        let mut first = None;
        self.v.coll_scan(self.sid, &prefix, None, false, |k, _| {
            first = Some(StreamId::from_key(k));
            Ok(false)
        })?;
        let mut last = None;
        self.v.coll_scan(
            self.sid,
            &prefix,
            Some(&StreamId::MAX.key()),
            true,
            |k, _| {
                last = Some(StreamId::from_key(k));
                Ok(false)
            },
        )?;
        Ok(first.zip(last))
    }

    /// Up to `count` (0: all) ids of consumer `c`'s PEL from `start` to `end`.
    pub fn consumer_pel(
        &self,
        c: &[u8],
        start: StreamId,
        end: StreamId,
        count: usize,
    ) -> Res<Vec<StreamId>> {
        let mut out = Vec::new();
        if start > end {
            return Ok(out);
        }
        self.v.coll_scan(
            self.sid,
            &cpel_prefix(&self.name, c),
            Some(&start.key()),
            false,
            |k, _| {
                let id = StreamId::from_key(k);
                if id > end {
                    return Ok(false);
                }
                out.push(id);
                Ok(count == 0 || out.len() < count)
            },
        )?;
        Ok(out)
    }

    /// Writes the group and the changed consumers.
    pub fn save(self) -> Res<()> {
        if self.group_dirty {
            self.v
                .coll_put(self.sid, &group_key(&self.name), &self.g.encode())?;
        }
        for c in self.dirty.keys() {
            let k = self.ckey(c);
            match self.consumers.get(c).copied().flatten() {
                Some(x) => {
                    let mut b = Vec::with_capacity(16);
                    b.extend_from_slice(&x.seen.to_be_bytes());
                    b.extend_from_slice(&x.pel.to_be_bytes());
                    self.v.coll_put(self.sid, &k, &b)?;
                }
                None => {
                    self.v.coll_del(self.sid, &k)?;
                }
            }
        }
        Ok(())
    }
}
