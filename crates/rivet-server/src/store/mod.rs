//! The typed data model over Rivet transactions, protocol-agnostic.
//!
//! Layout of the one file (every name is a top-level bbolt bucket, so `rivet buckets` shows
//! them):
//!
//! - `rivet-server`: metadata: `schema` (format version of this layout), `dbmap` (which
//!   physical slot each logical Redis database uses; SWAPDB swaps two bytes of it), and the
//!   bucket's sequence hands out ids for chunked values and collections.
//! - `redis/<slot>/keys`: the keyspace of one database: `xxh3(key)` (8 bytes, big-endian)
//!   followed by the key → a [`keyspace::Header`] with the value inline when small. Ordering
//!   by hash makes the SCAN cursor a plain position that survives restarts. The bucket's
//!   sequence is the key count (DBSIZE in O(1)).
//! - `redis/<slot>/expires`: the deadline index: deadline in ms (8 bytes, big-endian, sign bit
//!   flipped so negative deadlines sort first)
//!   followed by the keyspace entry's key → empty. The sweeper walks it from the front.
//! - `redis/<slot>/chunks`: big strings: value id (8 bytes) and chunk number (4 bytes) →
//!   up to [`strings::CHUNK`] bytes. A missing chunk reads as zeros.
//! - `redis/<slot>/data`: collection members, keyed by collection id (see [`collections`]).
//! - `redis/<slot>/rank`: the rank index of every set and sorted set (see [`rank`]).
//! - `redis/<slot>/trash`: ids of deleted big collections whose entries the writer is
//!   still freeing, a bounded step per commit (id → empty).
//! - `memcached/keys`, `memcached/expires`, `memcached/chunks` (and unused `data`, `rank`,
//!   `trash`, for a uniform layout): the Memcached items, laid out like one Redis database;
//!   `memcached/state`: their CAS counter and pending `flush_all` (see [`items`]).

pub mod collections;
pub mod items;
pub mod keyspace;
pub mod rank;
pub mod scan;
pub mod strings;

use std::cell::RefCell;
use std::path::Path;
use std::sync::RwLock;

use rivet::{Bucket, Db, Tx};

pub use keyspace::{Header, Kind};

/// Layout version written to `rivet-server/schema`. Version 1 had no rank index; such a
/// file is upgraded in place when opened (the index is built for every set and sorted set).
pub const SCHEMA_VERSION: &[u8] = b"2";

/// The metadata bucket.
pub const META_BUCKET: &[u8] = b"rivet-server";

/// Result type of the store: every failure is an engine error (I/O, corruption, limits).
pub type Result<T> = std::result::Result<T, rivet::Error>;

/// Which physical slot each logical database uses, and for which snapshots that is known
/// without reading the file.
#[derive(Debug, Clone)]
struct DbMapCache {
    map: Vec<u8>,
    /// Snapshots with a txid in `valid_from..valid_until` may use `map`.
    valid_from: u64,
    valid_until: u64,
}

/// The Redis data in one Rivet file.
pub struct Store {
    db: Db,
    databases: usize,
    names: Vec<SlotNames>,
    mc_names: SlotNames,
    dbmap: RwLock<DbMapCache>,
}

/// The bucket names of one physical slot.
struct SlotNames {
    keys: Vec<u8>,
    expires: Vec<u8>,
    chunks: Vec<u8>,
    data: Vec<u8>,
    rank: Vec<u8>,
    trash: Vec<u8>,
}

impl SlotNames {
    fn new(slot: usize) -> SlotNames {
        SlotNames::with_prefix(&format!("redis/{slot}"))
    }

    /// The Memcached namespace.
    fn memcached() -> SlotNames {
        SlotNames::with_prefix("memcached")
    }

    fn with_prefix(p: &str) -> SlotNames {
        SlotNames {
            keys: format!("{p}/keys").into_bytes(),
            expires: format!("{p}/expires").into_bytes(),
            chunks: format!("{p}/chunks").into_bytes(),
            data: format!("{p}/data").into_bytes(),
            rank: format!("{p}/rank").into_bytes(),
            trash: format!("{p}/trash").into_bytes(),
        }
    }

    fn all(&self) -> [&Vec<u8>; 6] {
        [
            &self.keys,
            &self.expires,
            &self.chunks,
            &self.data,
            &self.rank,
            &self.trash,
        ]
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({:?}, {} databases)", self.db, self.databases)
    }
}

impl Store {
    /// Opens (creating if missing) the file at `path` with `databases` logical databases
    /// (1..=255). A file made with fewer databases gains the missing ones; one made with more
    /// keeps them, and only the first `databases` are reachable.
    pub fn open(path: &Path, databases: usize, options: rivet::Options) -> Result<Store> {
        Store::check_databases(databases)?;
        Store::from_db(Db::open(path, options)?, databases)
    }

    fn check_databases(databases: usize) -> Result<()> {
        if databases == 0 || databases > 255 {
            return Err(rivet::Error::InvalidOption(format!(
                "databases must be 1..255, got {databases}"
            )));
        }
        Ok(())
    }

    /// Builds the store on an open engine handle (for example one opened on a custom
    /// `rivet::storage::Storage`), creating the layout if missing.
    pub fn from_db(db: Db, databases: usize) -> Result<Store> {
        Store::check_databases(databases)?;
        let map = db.update(|tx| init_layout(tx, databases))?;
        let txid = db.begin_read()?.id();
        let names = (0..map.len()).map(SlotNames::new).collect();
        Ok(Store {
            db,
            databases,
            names,
            mc_names: SlotNames::memcached(),
            dbmap: RwLock::new(DbMapCache {
                map,
                valid_from: txid,
                valid_until: u64::MAX,
            }),
        })
    }

    /// The engine handle.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Number of logical databases.
    pub fn databases(&self) -> usize {
        self.databases
    }

    /// Number of databases the file holds (more than [`Store::databases`] when it was last
    /// used with a larger `--databases`; the extra ones are kept but unreachable).
    pub fn stored_databases(&self) -> usize {
        self.names.len()
    }

    /// Empties every database slot of the file, reachable or not (FLUSHALL).
    pub fn flush_all_slots(&self, tx: &Tx) -> Result<()> {
        for n in &self.names {
            for name in n.all() {
                tx.delete_bucket(name)?;
                tx.create_bucket(name)?;
            }
        }
        Ok(())
    }

    /// Opens logical database `index` inside `tx` for reading. `index` must be below
    /// [`Store::databases`].
    pub fn view<'tx>(&'tx self, tx: &'tx Tx, index: usize) -> Result<DbView<'tx>> {
        let slot = self.slot(tx, index)?;
        Ok(DbView {
            tx,
            index,
            names: &self.names[slot],
            log: None,
        })
    }

    /// Opens the Memcached namespace inside `tx` (no WATCH log: Redis clients cannot watch
    /// Memcached items).
    pub fn memcached<'tx>(&'tx self, tx: &'tx Tx) -> DbView<'tx> {
        DbView {
            tx,
            index: usize::MAX,
            names: &self.mc_names,
            log: None,
        }
    }

    /// Opens logical database `index` inside the write transaction `tx`; every key written
    /// is recorded in `log`.
    pub fn view_mut<'tx>(
        &'tx self,
        tx: &'tx Tx,
        index: usize,
        log: &'tx WriteLog,
    ) -> Result<DbView<'tx>> {
        let mut v = self.view(tx, index)?;
        v.log = Some(log);
        Ok(v)
    }

    fn slot(&self, tx: &Tx, index: usize) -> Result<usize> {
        if !tx.writable() {
            let cache = self.dbmap.read().unwrap_or_else(|e| e.into_inner());
            if (cache.valid_from..cache.valid_until).contains(&tx.id()) {
                return Ok(cache.map[index] as usize);
            }
        }
        let map = read_dbmap(tx)?;
        match map.get(index) {
            Some(&s) if (s as usize) < self.names.len() => Ok(s as usize),
            _ => Err(rivet::Error::corrupted(0, "rivet-server/dbmap is damaged")),
        }
    }

    /// Swaps logical databases `a` and `b` inside the write transaction `tx`. Readers keep
    /// their snapshot's mapping; call [`Store::publish_dbmap`] once the transaction is over.
    pub fn swap_databases(&self, tx: &Tx, a: usize, b: usize) -> Result<()> {
        let mut map = read_dbmap(tx)?;
        map.swap(a, b);
        meta(tx)?.put(b"dbmap", &map)?;
        let mut cache = self.dbmap.write().unwrap_or_else(|e| e.into_inner());
        // Snapshots from this commit on must read the map from the file until it is published.
        cache.valid_until = cache.valid_until.min(tx.id());
        Ok(())
    }

    /// After a write transaction ends (committed or rolled back): if it swapped databases,
    /// lets readers use the file's current map from memory again. A no-op otherwise (the
    /// cache is pending exactly when a swap lowered its `valid_until`).
    pub fn publish_dbmap(&self) -> Result<()> {
        if self
            .dbmap
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .valid_until
            == u64::MAX
        {
            return Ok(());
        }
        let tx = self.db.begin_read()?;
        let map = read_dbmap(&tx)?;
        let mut cache = self.dbmap.write().unwrap_or_else(|e| e.into_inner());
        *cache = DbMapCache {
            map,
            valid_from: tx.id(),
            valid_until: u64::MAX,
        };
        Ok(())
    }

    /// Empties logical database `index` (FLUSHDB): its buckets are deleted and made anew.
    pub fn flush(&self, tx: &Tx, index: usize) -> Result<()> {
        let slot = self.slot(tx, index)?;
        let n = &self.names[slot];
        for name in n.all() {
            tx.delete_bucket(name)?;
            tx.create_bucket(name)?;
        }
        Ok(())
    }
}

/// Deletes every entry of `b` whose key starts with `prefix` (only those entries are visited).
fn delete_prefix(b: &Bucket<'_>, prefix: &[u8]) -> Result<()> {
    let mut c = b.cursor();
    let mut e = c.seek(prefix)?;
    while let Some(entry) = e {
        if !entry.key().starts_with(prefix) {
            break;
        }
        c.delete()?;
        e = c.next()?;
    }
    Ok(())
}

fn meta(tx: &Tx) -> Result<Bucket<'_>> {
    tx.bucket(META_BUCKET)?
        .ok_or_else(|| rivet::Error::corrupted(0, "bucket rivet-server is missing"))
}

fn read_dbmap(tx: &Tx) -> Result<Vec<u8>> {
    meta(tx)?
        .get(b"dbmap")?
        .map(|m| m.to_vec())
        .ok_or_else(|| rivet::Error::corrupted(0, "rivet-server/dbmap is missing"))
}

/// Creates the metadata bucket and every database's buckets that are missing; returns the
/// database map.
fn init_layout(tx: &Tx, databases: usize) -> Result<Vec<u8>> {
    if tx.bucket(META_BUCKET)?.is_none() {
        // Never write our layout into another application's bbolt file.
        let mut others = Vec::new();
        tx.for_each_bucket(|name| {
            others.push(String::from_utf8_lossy(name).to_string());
            Ok(())
        })?;
        if !others.is_empty() {
            others.truncate(5);
            return Err(rivet::Error::InvalidOption(format!(
                "not a rivet-server data file: it already holds other buckets ({}); give rivet-server a file of its own",
                others.join(", ")
            )));
        }
    }
    let meta = tx.create_bucket_if_not_exists(META_BUCKET)?;
    let mut upgrade = false;
    match meta.get(b"schema")? {
        None => meta.put(b"schema", SCHEMA_VERSION)?,
        Some(v) if v == SCHEMA_VERSION => {}
        Some(b"1") => upgrade = true,
        Some(v) => {
            return Err(rivet::Error::InvalidOption(format!(
                "the file's rivet-server schema is {:?}; this build reads {:?}",
                String::from_utf8_lossy(v),
                String::from_utf8_lossy(SCHEMA_VERSION)
            )))
        }
    }
    let mut map = meta.get(b"dbmap")?.map(|m| m.to_vec()).unwrap_or_default();
    while map.len() < databases {
        map.push(map.len() as u8);
    }
    meta.put(b"dbmap", &map)?;
    let names: Vec<SlotNames> = (0..map.len()).map(SlotNames::new).collect();
    for n in names.iter().chain([&SlotNames::memcached()]) {
        for name in n.all() {
            tx.create_bucket_if_not_exists(name)?;
        }
    }
    tx.create_bucket_if_not_exists(items::STATE_BUCKET)?;
    if upgrade {
        for (slot, n) in names.iter().enumerate() {
            let view = DbView {
                tx,
                index: slot,
                names: n,
                log: None,
            };
            view.build_rank_indexes()?;
        }
        meta.put(b"schema", SCHEMA_VERSION)?;
    }
    Ok(map)
}

/// The keys a write transaction changed, in order, as (logical database, key): WATCH and
/// (later) blocked clients are told from it.
#[derive(Debug, Default)]
pub struct WriteLog {
    touched: RefCell<Vec<Touched>>,
    swapped: RefCell<Vec<usize>>,
    published: RefCell<Vec<Published>>,
    /// How many of `touched` have had their keyspace notifications generated.
    notified: std::cell::Cell<usize>,
}

/// A pub/sub message waiting for its commit: channel, payload, and whether it is a shard
/// message (SPUBLISH).
pub type Published = (Vec<u8>, Vec<u8>, bool);

impl WriteLog {
    /// Takes the keys recorded so far.
    pub fn take(&self) -> Vec<Touched> {
        self.notified.set(0);
        std::mem::take(&mut *self.touched.borrow_mut())
    }

    /// How many of the keys recorded so far had their keyspace notifications generated
    /// (a script's commands generate theirs one by one; see [`WriteLog::unnotified`]).
    pub fn notified(&self) -> usize {
        self.notified.get()
    }

    /// The keys recorded since the last call (or [`WriteLog::take`]), without taking them.
    pub fn unnotified(&self) -> Vec<Touched> {
        let t = self.touched.borrow();
        let from = self.notified.get().min(t.len());
        self.notified.set(t.len());
        t[from..].to_vec()
    }

    /// Records that SWAPDB exchanged logical databases `a` and `b`: any of their keys may
    /// now hold something else.
    pub fn databases_swapped(&self, a: usize, b: usize) {
        self.swapped.borrow_mut().extend([a, b]);
    }

    /// Records that FLUSHDB/FLUSHALL emptied logical database `db` (parked clients waiting
    /// on its keys are told, as after SWAPDB).
    pub fn database_flushed(&self, db: usize) {
        self.swapped.borrow_mut().push(db);
    }

    /// Queues a pub/sub message (channel, payload) to deliver once the transaction commits
    /// (keyspace notifications, PUBLISH inside MULTI or a script).
    pub fn publish(&self, channel: Vec<u8>, payload: Vec<u8>) {
        self.published.borrow_mut().push((channel, payload, false));
    }

    /// Like [`WriteLog::publish`], for SPUBLISH.
    pub fn publish_shard(&self, channel: Vec<u8>, payload: Vec<u8>) {
        self.published.borrow_mut().push((channel, payload, true));
    }

    /// Takes the queued messages: (channel, payload, shard).
    pub fn take_published(&self) -> Vec<Published> {
        std::mem::take(&mut *self.published.borrow_mut())
    }

    /// Takes the databases recorded by [`WriteLog::databases_swapped`] and
    /// [`WriteLog::database_flushed`].
    pub fn take_swapped(&self) -> Vec<usize> {
        std::mem::take(&mut *self.swapped.borrow_mut())
    }
}

/// A key a write transaction changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touched {
    /// Logical database.
    pub db: usize,
    /// The key.
    pub key: Vec<u8>,
    /// The change was the deletion of an expired key (WATCH treats it specially).
    pub expired: bool,
    /// What happened to the key.
    pub change: Change,
}

/// What a write did to a key (keyspace notifications tell them apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The key was created.
    Created,
    /// The key's value or expiry changed.
    Changed,
    /// The key was deleted.
    Removed,
    /// The key was deleted because it had expired.
    Expired,
}

/// One logical database inside one transaction.
pub struct DbView<'tx> {
    tx: &'tx Tx,
    index: usize,
    names: &'tx SlotNames,
    log: Option<&'tx WriteLog>,
}

impl<'tx> DbView<'tx> {
    /// The logical database index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Records that `key` changed.
    pub fn touch(&self, key: &[u8]) {
        self.record(key, Change::Changed);
    }

    fn record(&self, key: &[u8], change: Change) {
        if let Some(log) = self.log {
            log.touched.borrow_mut().push(Touched {
                db: self.index,
                key: key.to_vec(),
                expired: change == Change::Expired,
                change,
            });
        }
    }

    /// The transaction.
    pub fn tx(&self) -> &'tx Tx {
        self.tx
    }

    fn bucket(&self, name: &[u8]) -> Result<Bucket<'tx>> {
        self.tx.bucket(name)?.ok_or_else(|| {
            rivet::Error::corrupted(
                0,
                format!("bucket {} is missing", String::from_utf8_lossy(name)),
            )
        })
    }

    /// The keyspace bucket.
    pub fn keys(&self) -> Result<Bucket<'tx>> {
        self.bucket(&self.names.keys)
    }

    /// The deadline index bucket.
    pub fn expires(&self) -> Result<Bucket<'tx>> {
        self.bucket(&self.names.expires)
    }

    /// The big-value chunk bucket.
    pub fn chunks(&self) -> Result<Bucket<'tx>> {
        self.bucket(&self.names.chunks)
    }

    /// The rank index bucket.
    pub fn rank(&self) -> Result<Bucket<'tx>> {
        self.bucket(&self.names.rank)
    }

    /// The bucket of deleted big collections still being freed.
    pub fn trash(&self) -> Result<Bucket<'tx>> {
        self.bucket(&self.names.trash)
    }

    /// A new id for a chunked value or a collection (never reused within the file).
    pub fn new_id(&self) -> Result<u64> {
        meta(self.tx)?.next_sequence()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file written by a schema-1 server (no rank index) is upgraded when opened: every
    /// set and sorted set gets its index, and nothing else changes.
    #[test]
    fn schema_1_files_get_their_rank_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.db");
        let (set_id, zset_id) = {
            let store = Store::open(&path, 2, rivet::Options::default()).expect("open");
            let log = WriteLog::default();
            let tx = store.db().begin_write().expect("tx");
            let v = store.view_mut(&tx, 1, &log).expect("view");
            let mut s = v.coll_new(Kind::Set).expect("set");
            let mut z = v.coll_new(Kind::ZSet).expect("zset");
            for i in 0..3000u32 {
                v.set_add(s.id, &i.to_be_bytes()).expect("sadd");
                v.zset_put(z.id, &i.to_be_bytes(), None, f64::from(i % 97))
                    .expect("zadd");
            }
            s.len = 3000;
            z.len = 3000;
            v.coll_save(b"s", None, &s).expect("save");
            v.coll_save(b"z", None, &z).expect("save");
            // Make it a schema-1 file: no rank records, old version.
            tx.delete_bucket(b"redis/1/rank").expect("drop rank");
            tx.delete_bucket(b"redis/0/rank").expect("drop rank");
            meta(&tx)
                .expect("meta")
                .put(b"schema", b"1")
                .expect("schema");
            tx.commit().expect("commit");
            (s.id, z.id)
        };
        let store = Store::open(&path, 2, rivet::Options::default()).expect("reopen");
        let tx = store.db().begin_read().expect("read");
        assert_eq!(
            meta(&tx).expect("meta").get(b"schema").expect("get"),
            Some(SCHEMA_VERSION)
        );
        let v = store.view(&tx, 1).expect("view");
        for (kind, id) in [(Kind::Set, set_id), (Kind::ZSet, zset_id)] {
            let idx = v.rank_index(kind, id);
            let mut order = Vec::new();
            let prefix: &[u8] = if kind == Kind::ZSet { b"s" } else { b"" };
            v.coll_scan(id, prefix, None, false, |k, _| {
                order.push(k.to_vec());
                Ok(true)
            })
            .expect("scan");
            assert_eq!(order.len(), 3000);
            for r in [0usize, 1, 1234, 2999] {
                assert_eq!(idx.rank_of(&order[r]).expect("rank"), r as u64);
                assert_eq!(
                    idx.select(r as u64).expect("select"),
                    Some(order[r].clone())
                );
            }
        }
    }

    #[test]
    fn another_applications_file_is_refused_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("other.db");
        let db = Db::open(&path, rivet::Options::default()).expect("open");
        db.update(|tx| tx.create_bucket(b"invoices")?.put(b"k", b"v"))
            .expect("write");
        let before = db.begin_read().expect("read").id();
        let e = Store::from_db(db.clone(), 16).expect_err("refused");
        assert!(e.to_string().contains("invoices"), "{e}");
        assert_eq!(
            db.begin_read().expect("read").id(),
            before,
            "nothing was written"
        );
    }
}
