//! Store-level model tests, without sockets: random operation sequences run against
//! `rivet_server::store` (through [`DbView`]) and against a plain in-memory model, and every
//! observable must agree after every operation.
//!
//! The model is a `BTreeMap<(db, key), Entry>` (a string's bytes or a set's members, and
//! an optional deadline in ms) holding the *physical* entries: a key whose deadline has
//! passed stays in the model (and in the store) until a write meets it (`lookup_for_write`),
//! it is deleted, or a sweep removes it. The clock is fake: `now_ms` starts at [`T0`] and only
//! moves on [`Op::Advance`]; the real clock is never consulted.
//!
//! Operations: SET-like `write_string` (with or without deadline, over strings and sets),
//! `string_set_range` at random offsets (APPEND = at the end), `string_range` reads,
//! `delete_key`, `set_expiry` (past and future deadlines) and clearing it, SADD/SREM through
//! the collection API (so writes meet WRONGTYPE keys and free collection data), bulk fills,
//! a writer-style sweep of `due(now, limit)`, FLUSHDB, SWAPDB (published after commit as the
//! writer does), SCAN to completion with keys added/removed/expiring between pages, commit,
//! rollback, reopen of the file, and read snapshots held across later commits.
//!
//! Checked after every operation (per database): `len()` and `volatile_len()` equal the
//! model's physical and volatile counts; `due(now, ∞)` lists exactly the model's keys with
//! deadline ≤ now in (deadline, hash, key) order; every key of the small key alphabet reads
//! the same through `lookup_raw` (physical) and `lookup` (live at now), with the model's
//! type, deadline and length; the operated key's whole value round-trips byte for byte;
//! mutating operations record the key in the `WriteLog`, reads record nothing; the `data`
//! bucket holds exactly the model's set members; every chunk belongs to a live chunked
//! string and holds no byte past its length, and a string is chunked exactly when longer
//! than `INLINE_MAX`. SCAN: no key twice, every key live for the whole scan returned, none
//! returned that was never live during it. After commits, rollbacks, reopens and at the end
//! of each case every entry is read back in full (also through held snapshots, against the
//! model of their commit), `all_keys` and a complete SCAN equal the live set, and at the end
//! `Db::check()` must find nothing, before and after a final reopen.
//!
//! Values range from empty to ~100 KB (around the 16 KiB inline/chunk limit on purpose);
//! SETRANGE offsets are absolute, relative to the current end, around chunk boundaries, and
//! sometimes ~1 MB away (sparse chunks). Value bytes come from a (length, seed) pair so that
//! failing cases print and shrink compactly.
//!
//! Environment:
//! - `STORE_CASES=N`: cases per property (default 64).
//! - `STORE_SEED=N`: the proptest RNG seed (default fixed, so runs are reproducible).
//! - `STORE_OPS=N`: longest operation sequence per case (default 100).
//!
//! Run: `cargo test -p rivet-server --test store_model` (add `-- --include-ignored` to run the
//! regression tests of known bugs).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::{RngSeed, TestCaseError};
use rivet::Tx;
use rivet_server::store::collections::Coll;
use rivet_server::store::keyspace::{key_hash, Body, Header, Kind};
use rivet_server::store::strings::{string_len, CHUNK, INLINE_MAX};
use rivet_server::store::{Change, DbView, Store, Touched, WriteLog};

// ---------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------

/// Logical databases of the store under test.
const DATABASES: usize = 3;
/// The fake clock's start, in ms.
const T0: i64 = 1_000_000;
/// Named keys (ids below this) are checked after every operation; ids above are fill keys.
const NAMED: u16 = 10;
/// Fill keys (`f0` ..), used by [`Op::Fill`] to make SCAN span many pages.
const FILL_KEYS: u16 = 150;

fn env_num(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, got {v:?}")),
        Err(_) => default,
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: env_num("STORE_CASES", 64) as u32,
        rng_seed: RngSeed::Fixed(env_num("STORE_SEED", 0x5eed_2024)),
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    }
}

fn max_ops() -> usize {
    env_num("STORE_OPS", 100) as usize
}

fn options() -> rivet::Options {
    rivet::Options {
        // Reopening in-process reads the page cache, so syncing buys the tests nothing.
        no_sync: true,
        page_size: Some(4096),
        ..rivet::Options::default()
    }
}

// ---------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------

/// A key for messages: printable ASCII as is, other bytes escaped.
fn show(key: &[u8]) -> String {
    key.escape_ascii().to_string()
}

/// Turns engine errors into test failures.
trait Tc<T> {
    fn tc(self) -> Result<T, TestCaseError>;
}

impl<T, E: Display> Tc<T> for Result<T, E> {
    fn tc(self) -> Result<T, TestCaseError> {
        self.map_err(|e| TestCaseError::fail(format!("engine error: {e}")))
    }
}

/// Bytes of a generated value: `len` bytes from a seeded xorshift (seed 0 = all `b'z'`, so
/// some values compress the debugging output).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Blob {
    len: usize,
    seed: u64,
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Blob({}, seed {})", self.len, self.seed)
    }
}

impl Blob {
    fn bytes(&self) -> Vec<u8> {
        if self.seed == 0 {
            return vec![b'z'; self.len];
        }
        let mut x = self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..self.len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }
}

/// The user key of key id `id`: a few named keys (one binary, one long) and the fill keys.
fn key_name(id: u16) -> Vec<u8> {
    match id {
        8 => b"\x00bin\xffkey\r\n".to_vec(),
        9 => {
            let mut k = b"long:".to_vec();
            k.resize(700, b'L');
            k
        }
        i if i < NAMED => format!("k{i}").into_bytes(),
        i => format!("f{}", i - NAMED).into_bytes(),
    }
}

/// A byte position chosen at run time from the key's current length.
#[derive(Clone, Copy, Debug)]
enum Off {
    /// This exact offset.
    Abs(u64),
    /// The current end plus this (clamped at 0).
    End(i64),
    /// Chunk boundary `k * CHUNK` plus this (clamped at 0).
    Chunk(u64, i64),
}

impl Off {
    fn resolve(self, cur_len: u64) -> u64 {
        match self {
            Off::Abs(o) => o,
            Off::End(d) => (cur_len as i64 + d).max(0) as u64,
            Off::Chunk(k, d) => ((k * CHUNK as u64) as i64 + d).max(0) as u64,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    /// `lookup_for_write` + `write_string`, with deadline `now + ttl`.
    Set {
        db: usize,
        key: u16,
        value: Blob,
        ttl: Option<i64>,
    },
    /// `lookup_for_write` + `string_set_range`.
    SetRange {
        db: usize,
        key: u16,
        off: Off,
        data: Blob,
    },
    /// `string_set_range` at the current length.
    Append {
        db: usize,
        key: u16,
        data: Blob,
    },
    /// `lookup` + `string_range(start, end)`.
    GetRange {
        db: usize,
        key: u16,
        start: Off,
        end: Off,
    },
    /// `delete_key`.
    Del {
        db: usize,
        key: u16,
    },
    /// `lookup_for_write` + `set_expiry(now + delta)` (a deadline in the past is allowed at
    /// this level: the key becomes expired-but-present).
    Expire {
        db: usize,
        key: u16,
        delta: i64,
    },
    /// SADD of `n` members `m{(seed + 7i) % 60}` (skipped on a string: WRONGTYPE).
    SAdd {
        db: usize,
        key: u16,
        n: u8,
        seed: u64,
    },
    /// SREM of the set's first `n` members (an emptied set is deleted).
    SRem {
        db: usize,
        key: u16,
        n: u8,
    },
    /// `lookup_for_write` + `set_expiry(None)`.
    Persist {
        db: usize,
        key: u16,
    },
    /// Writes `n` small fill keys (some with deadlines).
    Fill {
        db: usize,
        n: u16,
        seed: u64,
    },
    /// Moves the fake clock.
    Advance(i64),
    /// `due(now, limit)` then deletes them as the writer's sweeper does.
    Sweep {
        db: usize,
        limit: usize,
    },
    /// `Store::flush` (FLUSHDB).
    Flush {
        db: usize,
    },
    /// `Store::swap_databases` (SWAPDB; `publish_dbmap` after the commit, as the writer does).
    SwapDb {
        a: usize,
        b: usize,
    },
    /// Opens a read transaction on the last commit, to be checked later against the model
    /// of that commit (snapshot isolation, also across SWAPDB and page reuse).
    HoldSnapshot,
    /// Checks and closes the held snapshots.
    CheckSnapshots,
    /// A SCAN to completion with `churn` applied between pages.
    Scan {
        db: usize,
        count: usize,
        filter: ScanFilter,
        churn: Vec<Op>,
    },
    Commit,
    Rollback,
    Reopen,
}

/// What a SCAN keeps (MATCH / TYPE).
#[derive(Clone, Copy, Debug)]
enum ScanFilter {
    All,
    /// Keys whose last byte is odd (a stand-in for MATCH).
    OddKeys,
    /// TYPE string.
    Strings,
    /// TYPE set.
    Sets,
}

impl ScanFilter {
    fn keep(self, key: &[u8], kind: Kind) -> bool {
        match self {
            ScanFilter::All => true,
            ScanFilter::OddKeys => key.last().is_some_and(|b| b % 2 == 1),
            ScanFilter::Strings => kind == Kind::String,
            ScanFilter::Sets => kind == Kind::Set,
        }
    }
}

fn scan_filter() -> impl Strategy<Value = ScanFilter> {
    prop_oneof![
        Just(ScanFilter::All),
        Just(ScanFilter::OddKeys),
        Just(ScanFilter::Strings),
        Just(ScanFilter::Sets),
    ]
}

fn db() -> impl Strategy<Value = usize> {
    0..DATABASES
}

fn key() -> impl Strategy<Value = u16> {
    prop_oneof![
        8 => 0..NAMED,
        1 => NAMED..NAMED + FILL_KEYS,
    ]
}

fn value_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        5 => 0usize..48,
        2 => 48usize..4096,
        2 => (INLINE_MAX - 4)..(INLINE_MAX + 4),
        3 => (INLINE_MAX + 4)..100_000,
        1 => (1usize..7).prop_map(|k| k * CHUNK),
    ]
}

fn blob(len: impl Strategy<Value = usize>) -> impl Strategy<Value = Blob> {
    (len, 0u64..1000).prop_map(|(len, seed)| Blob { len, seed })
}

fn data_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 0usize..40,
        2 => 40usize..3000,
        1 => 3000usize..40_000,
    ]
}

fn off() -> impl Strategy<Value = Off> {
    prop_oneof![
        3 => (0u64..200).prop_map(Off::Abs),
        2 => (0u64..120_000).prop_map(Off::Abs),
        1 => (1_000_000u64..1_200_000).prop_map(Off::Abs),
        3 => (-100i64..100).prop_map(Off::End),
        1 => (-20_000i64..40_000).prop_map(Off::End),
        3 => (0u64..8, -3i64..3).prop_map(|(k, d)| Off::Chunk(k, d)),
    ]
}

fn ttl() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![
        3 => Just(None),
        2 => (-20i64..400).prop_map(Some),
    ]
}

/// Operations that may run between SCAN pages.
fn churn_op() -> impl Strategy<Value = Op> {
    let k = || NAMED..NAMED + FILL_KEYS;
    prop_oneof![
        (db(), k(), blob(0usize..20), ttl()).prop_map(|(db, key, value, ttl)| Op::Set {
            db,
            key,
            value,
            ttl
        }),
        (db(), k()).prop_map(|(db, key)| Op::Del { db, key }),
        (db(), k(), -20i64..300).prop_map(|(db, key, delta)| Op::Expire { db, key, delta }),
        (0i64..100).prop_map(Op::Advance),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (db(), key(), blob(value_len()), ttl())
            .prop_map(|(db, key, value, ttl)| Op::Set { db, key, value, ttl }),
        8 => (db(), key(), off(), blob(data_len()))
            .prop_map(|(db, key, off, data)| Op::SetRange { db, key, off, data }),
        5 => (db(), key(), blob(data_len())).prop_map(|(db, key, data)| Op::Append { db, key, data }),
        6 => (db(), key(), off(), off())
            .prop_map(|(db, key, start, end)| Op::GetRange { db, key, start, end }),
        4 => (db(), key()).prop_map(|(db, key)| Op::Del { db, key }),
        5 => (db(), key(), -50i64..400).prop_map(|(db, key, delta)| Op::Expire { db, key, delta }),
        2 => (db(), key()).prop_map(|(db, key)| Op::Persist { db, key }),
        2 => (db(), 0u16..FILL_KEYS, any::<u64>()).prop_map(|(db, n, seed)| Op::Fill { db, n, seed }),
        4 => (0i64..250).prop_map(Op::Advance),
        3 => (db(), 0usize..6).prop_map(|(db, limit)| Op::Sweep { db, limit }),
        1 => db().prop_map(|db| Op::Flush { db }),
        2 => (db(), db()).prop_map(|(a, b)| Op::SwapDb { a, b }),
        2 => Just(Op::HoldSnapshot),
        3 => (db(), key(), 0u8..12, 0u64..60).prop_map(|(db, key, n, seed)| Op::SAdd { db, key, n, seed }),
        2 => (db(), key(), 0u8..8).prop_map(|(db, key, n)| Op::SRem { db, key, n }),
        1 => Just(Op::CheckSnapshots),
        3 => (db(), 1usize..25, scan_filter(), prop::collection::vec(churn_op(), 0..6))
            .prop_map(|(db, count, filter, churn)| Op::Scan { db, count, filter, churn }),
        2 => Just(Op::Commit),
        1 => Just(Op::Rollback),
        1 => Just(Op::Reopen),
    ]
}

// ---------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    /// A string's bytes (empty for a set).
    value: Vec<u8>,
    /// A set's members: `Some` makes the entry a set.
    set: Option<BTreeSet<Vec<u8>>>,
    expire: Option<i64>,
}

impl Entry {
    fn string(value: Vec<u8>, expire: Option<i64>) -> Entry {
        Entry {
            value,
            set: None,
            expire,
        }
    }

    fn kind(&self) -> Kind {
        if self.set.is_some() {
            Kind::Set
        } else {
            Kind::String
        }
    }

    /// Bytes of a string, members of a set (what the header's length field holds).
    fn len(&self) -> u64 {
        match &self.set {
            Some(s) => s.len() as u64,
            None => self.value.len() as u64,
        }
    }

    fn expired(&self, now: i64) -> bool {
        matches!(self.expire, Some(e) if e <= now)
    }
}

/// The physical entries: `(db, key) → entry`, expired-but-present ones included.
#[derive(Clone, Debug, Default)]
struct Model {
    map: BTreeMap<(usize, Vec<u8>), Entry>,
}

impl Model {
    fn get(&self, db: usize, key: &[u8]) -> Option<&Entry> {
        self.map.get(&(db, key.to_vec()))
    }

    /// What `lookup_for_write` does: drops an expired entry, returns the live one.
    fn for_write(&mut self, db: usize, key: &[u8], now: i64) -> Option<&mut Entry> {
        let k = (db, key.to_vec());
        if self.map.get(&k).is_some_and(|e| e.expired(now)) {
            self.map.remove(&k);
        }
        self.map.get_mut(&k)
    }

    fn entries(&self, db: usize) -> impl Iterator<Item = (&Vec<u8>, &Entry)> {
        self.map
            .range((db, Vec::new())..)
            .take_while(move |((d, _), _)| *d == db)
            .map(|((_, k), e)| (k, e))
    }

    fn len(&self, db: usize) -> u64 {
        self.entries(db).count() as u64
    }

    fn volatile_len(&self, db: usize) -> u64 {
        self.entries(db).filter(|(_, e)| e.expire.is_some()).count() as u64
    }

    fn live(&self, db: usize, now: i64) -> BTreeSet<Vec<u8>> {
        self.entries(db)
            .filter(|(_, e)| !e.expired(now))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The keys `due(now, ∞)` must return, in the deadline index's order.
    fn due(&self, db: usize, now: i64) -> Vec<(i64, Vec<u8>)> {
        let mut v: Vec<(i64, u64, Vec<u8>)> = self
            .entries(db)
            .filter_map(|(k, e)| match e.expire {
                Some(at) if at <= now => Some((at, key_hash(k), k.clone())),
                _ => None,
            })
            .collect();
        v.sort();
        v.into_iter().map(|(at, _, k)| (at, k)).collect()
    }
}

/// `v[start..end]` clamped as `string_range` does.
fn model_range(v: &[u8], start: u64, end: u64) -> Vec<u8> {
    let end = end.min(v.len() as u64);
    if start >= end {
        return Vec::new();
    }
    v[start as usize..end as usize].to_vec()
}

// ---------------------------------------------------------------------------------------
// The harness: one store file, one open write transaction, the model
// ---------------------------------------------------------------------------------------

struct Harness {
    _dir: tempfile::TempDir,
    path: PathBuf,
    store: Option<Store>,
    tx: Option<Tx>,
    now: i64,
    model: Model,
    /// The model as of the last commit (what a rollback or reopen must show).
    committed: Model,
    /// The open write transaction swapped databases: publish the map after its commit.
    swapped: bool,
    /// Read transactions held open, with the model and clock of their snapshot.
    snapshots: Vec<(Tx, Model, i64)>,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("store.rivet");
        let store = Store::open(&path, DATABASES, options()).expect("open store");
        let tx = store.db().begin_write().expect("begin write");
        Harness {
            _dir: dir,
            path,
            store: Some(store),
            tx: Some(tx),
            now: T0,
            model: Model::default(),
            committed: Model::default(),
            swapped: false,
            snapshots: Vec::new(),
        }
    }

    fn store(&self) -> &Store {
        self.store.as_ref().expect("store open")
    }

    fn tx(&self) -> &Tx {
        self.tx.as_ref().expect("write transaction open")
    }

    fn commit(&mut self) -> Result<(), TestCaseError> {
        let tx = self.tx.take().expect("tx");
        tx.commit().tc()?;
        if std::mem::take(&mut self.swapped) {
            self.store().publish_dbmap().tc()?;
        }
        self.committed = self.model.clone();
        Ok(())
    }

    /// Checks every held snapshot against the model of its commit, then closes them.
    fn check_snapshots(&mut self) -> Result<(), TestCaseError> {
        for (i, (rtx, model, now)) in std::mem::take(&mut self.snapshots).into_iter().enumerate() {
            check_all(self.store(), &rtx, &model, now)
                .map_err(|e| TestCaseError::fail(format!("held snapshot #{i}: {e}")))?;
        }
        Ok(())
    }

    fn begin(&mut self) -> Result<(), TestCaseError> {
        self.tx = Some(self.store().db().begin_write().tc()?);
        Ok(())
    }

    /// Checks the committed state in a read transaction.
    fn check_committed(&self) -> Result<(), TestCaseError> {
        let rtx = self.store().db().begin_read().tc()?;
        check_all(self.store(), &rtx, &self.committed, self.now)
    }

    fn reopen(&mut self) -> Result<(), TestCaseError> {
        if self.tx.is_some() {
            self.commit()?;
        }
        // An open read transaction keeps the old handle (and its file lock) alive.
        self.check_snapshots()?;
        self.store = None;
        self.store = Some(Store::open(&self.path, DATABASES, options()).tc()?);
        self.check_committed()
    }

    /// Applies one operation to the store and the model and checks what it touched.
    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let now = self.now;
        match op {
            Op::Commit => {
                self.commit()?;
                self.check_committed()?;
                return self.begin();
            }
            Op::Rollback => {
                self.tx.take().expect("tx").rollback();
                self.swapped = false;
                self.model = self.committed.clone();
                self.check_committed()?;
                return self.begin();
            }
            Op::Reopen => {
                self.reopen()?;
                return self.begin();
            }
            Op::Advance(ms) => {
                self.now += ms;
                return self.check_cheap(None);
            }
            Op::SwapDb { a, b } => {
                self.store().swap_databases(self.tx(), *a, *b).tc()?;
                self.swapped = true;
                let (a, b) = (*a, *b);
                let old = std::mem::take(&mut self.model.map);
                self.model.map = old
                    .into_iter()
                    .map(|((d, k), e)| {
                        let d = if d == a {
                            b
                        } else if d == b {
                            a
                        } else {
                            d
                        };
                        ((d, k), e)
                    })
                    .collect();
                return self.check_cheap(None);
            }
            Op::HoldSnapshot => {
                if self.snapshots.len() >= 2 {
                    let (rtx, model, now) = self.snapshots.remove(0);
                    check_all(self.store(), &rtx, &model, now)?;
                }
                let rtx = self.store().db().begin_read().tc()?;
                self.snapshots.push((rtx, self.committed.clone(), self.now));
                return Ok(());
            }
            Op::CheckSnapshots => return self.check_snapshots(),
            Op::Flush { db } => {
                self.store().flush(self.tx(), *db).tc()?;
                self.model.map.retain(|(d, _), _| d != db);
                return self.check_cheap(None);
            }
            Op::Scan {
                db,
                count,
                filter,
                churn,
            } => return self.scan_with_churn(*db, *count, *filter, churn),
            Op::Fill { db, n, seed } => {
                for i in 0..*n {
                    let key = key_name(NAMED + i);
                    let x = seed
                        .wrapping_add(i as u64)
                        .wrapping_mul(0x2545_F491_4F6C_DD1D);
                    let ttl = (x % 4 == 0).then_some((x >> 8) as i64 % 400 - 20);
                    let value = Blob {
                        len: (x >> 20) as usize % 24,
                        seed: x >> 40,
                    };
                    self.write(*db, &key, &value.bytes(), ttl.map(|t| now + t))?;
                }
                return self.check_cheap(None);
            }
            _ => {}
        }
        let log = WriteLog::default();
        let (db, key, mutated) = {
            let store = self.store.as_ref().expect("store");
            let tx = self.tx.as_ref().expect("tx");
            let model = &mut self.model;
            match op {
                Op::Set {
                    db,
                    key,
                    value,
                    ttl,
                } => {
                    let k = key_name(*key);
                    let v = store.view_mut(tx, *db, &log).tc()?;
                    let old = v.lookup_for_write(&k, now).tc()?;
                    let value = value.bytes();
                    let at = ttl.map(|t| now + t);
                    v.write_string(&k, old.as_ref(), &value, at).tc()?;
                    model.for_write(*db, &k, now);
                    model.map.insert((*db, k.clone()), Entry::string(value, at));
                    (*db, k, true)
                }
                Op::SetRange { db, key, data, .. } | Op::Append { db, key, data } => {
                    let k = key_name(*key);
                    let v = store.view_mut(tx, *db, &log).tc()?;
                    let old = v.lookup_for_write(&k, now).tc()?;
                    let e = model.for_write(*db, &k, now);
                    prop_assert_eq!(old.map(|h| h.kind), e.map(|e| e.kind()));
                    if old.is_some_and(|h| h.kind != Kind::String) {
                        // WRONGTYPE for the command; nothing changes.
                        (*db, k, false)
                    } else {
                        let cur = old.as_ref().map(string_len).unwrap_or(0);
                        let offset = match op {
                            Op::SetRange { off, .. } => off.resolve(cur),
                            _ => cur,
                        };
                        let data = data.bytes();
                        let n = v.string_set_range(&k, old.as_ref(), offset, &data).tc()?;
                        let e = match model.for_write(*db, &k, now) {
                            Some(e) => e,
                            None => model
                                .map
                                .entry((*db, k.clone()))
                                .or_insert(Entry::string(Vec::new(), None)),
                        };
                        prop_assert_eq!(cur, e.value.len() as u64, "length before write");
                        let end = offset as usize + data.len();
                        if e.value.len() < end {
                            e.value.resize(end, 0);
                        }
                        e.value[offset as usize..end].copy_from_slice(&data);
                        prop_assert_eq!(n, e.value.len() as u64, "returned length");
                        (*db, k, true)
                    }
                }
                Op::SAdd { db, key, n, seed } => {
                    let k = key_name(*key);
                    let v = store.view_mut(tx, *db, &log).tc()?;
                    let was_physical = model.get(*db, &k).is_some();
                    let old = v.lookup_for_write(&k, now).tc()?;
                    let e = model.for_write(*db, &k, now);
                    prop_assert_eq!(old.map(|h| h.kind), e.as_ref().map(|e| e.kind()));
                    if old.is_some_and(|h| h.kind != Kind::Set) {
                        (*db, k, false)
                    } else {
                        let mut c = match &old {
                            Some(h) => Coll::of(h).expect("a set header"),
                            None => v.coll_new(Kind::Set).tc()?,
                        };
                        let mut members = e.and_then(|e| e.set.clone()).unwrap_or_default();
                        for i in 0..*n as u64 {
                            let m = format!("m{}", seed.wrapping_add(i * 7) % 60).into_bytes();
                            let added = v.coll_put(c.id, &m, b"").tc()?;
                            prop_assert_eq!(added, members.insert(m), "coll_put: member new");
                            c.len += added as u64;
                        }
                        v.coll_save(&k, old.as_ref(), &c).tc()?;
                        if members.is_empty() {
                            model.map.remove(&(*db, k.clone()));
                        } else {
                            let e = model.map.entry((*db, k.clone())).or_insert(Entry {
                                value: Vec::new(),
                                set: None,
                                expire: None,
                            });
                            e.set = Some(members);
                        }
                        (*db, k, was_physical || *n > 0)
                    }
                }
                Op::SRem { db, key, n } => {
                    let k = key_name(*key);
                    let v = store.view_mut(tx, *db, &log).tc()?;
                    let was_physical = model.get(*db, &k).is_some();
                    let old = v.lookup_for_write(&k, now).tc()?;
                    let e = model.for_write(*db, &k, now);
                    prop_assert_eq!(old.map(|h| h.kind), e.as_ref().map(|e| e.kind()));
                    match (old, e) {
                        (Some(h), Some(e)) if h.kind == Kind::Set => {
                            let mut c = Coll::of(&h).expect("a set header");
                            let mut first = Vec::new();
                            if *n > 0 {
                                v.coll_scan(c.id, &[], None, false, |m, _| {
                                    first.push(m.to_vec());
                                    Ok(first.len() < *n as usize)
                                })
                                .tc()?;
                            }
                            let set = e.set.as_mut().expect("model set");
                            let want: Vec<Vec<u8>> =
                                set.iter().take(*n as usize).cloned().collect();
                            prop_assert_eq!(&first, &want, "first members in order");
                            for m in &first {
                                prop_assert!(v.coll_del(c.id, m).tc()?, "coll_del of a member");
                                set.remove(m);
                            }
                            c.len -= first.len() as u64;
                            v.coll_save(&k, Some(&h), &c).tc()?;
                            if set.is_empty() {
                                model.map.remove(&(*db, k.clone()));
                            }
                            (*db, k, true)
                        }
                        _ => (*db, k, was_physical && old.is_none()),
                    }
                }
                Op::GetRange {
                    db,
                    key,
                    start,
                    end,
                } => {
                    let k = key_name(*key);
                    let v = store.view_mut(tx, *db, &log).tc()?;
                    let h = v.lookup(&k, now).tc()?;
                    let live = model.get(*db, &k).filter(|e| !e.expired(now));
                    prop_assert_eq!(h.is_some(), live.is_some(), "lookup presence");
                    let live = live.filter(|e| e.kind() == Kind::String);
                    if let (Some(h), Some(e)) = (h.filter(|h| h.kind == Kind::String), live) {
                        let len = e.value.len() as u64;
                        let (s, t) = (start.resolve(len), end.resolve(len));
                        let got = v.string_range(&h, s, t).tc()?;
                        let want = model_range(&e.value, s, t);
                        prop_assert!(
                            got == want,
                            "string_range({s}, {t}) of {len}-byte value: got {} bytes, want {} (first difference at {:?})",
                            got.len(),
                            want.len(),
                            got.iter().zip(&want).position(|(a, b)| a != b)
                        );
                    }
                    (*db, k, false)
                }
                Op::Del { db, key } => {
                    let k = key_name(*key);
                    let v = store.view_mut(tx, *db, &log).tc()?;
                    let got = v.delete_key(&k, now).tc()?;
                    let was_physical = model.get(*db, &k).is_some();
                    let want = model.for_write(*db, &k, now).is_some();
                    model.map.remove(&(*db, k.clone()));
                    prop_assert_eq!(got, want, "delete_key reply");
                    (*db, k, was_physical)
                }
                Op::Expire { db, key, delta } => {
                    let k = key_name(*key);
                    let v = store.view_mut(tx, *db, &log).tc()?;
                    let was_physical = model.get(*db, &k).is_some();
                    let old = v.lookup_for_write(&k, now).tc()?;
                    let e = model.for_write(*db, &k, now);
                    prop_assert_eq!(old.is_some(), e.is_some(), "lookup_for_write presence");
                    if let (Some(h), Some(e)) = (old, e) {
                        v.set_expiry(&k, &h, Some(now + delta)).tc()?;
                        e.expire = Some(now + delta);
                    }
                    (*db, k, was_physical)
                }
                Op::Persist { db, key } => {
                    let k = key_name(*key);
                    let v = store.view_mut(tx, *db, &log).tc()?;
                    let was_physical = model.get(*db, &k).is_some();
                    let old = v.lookup_for_write(&k, now).tc()?;
                    let e = model.for_write(*db, &k, now);
                    prop_assert_eq!(old.is_some(), e.is_some(), "lookup_for_write presence");
                    if let (Some(h), Some(e)) = (old, e) {
                        v.set_expiry(&k, &h, None).tc()?;
                        e.expire = None;
                    }
                    (*db, k, was_physical)
                }
                Op::Sweep { db, limit } => {
                    let v = store.view_mut(tx, *db, &log).tc()?;
                    let due = v.due(now, *limit).tc()?;
                    let mut want = model.due(*db, now);
                    want.truncate(*limit);
                    prop_assert_eq!(&due, &want, "due(now, {})", limit);
                    for (at, k) in due {
                        match v.lookup_raw(&k).tc()? {
                            Some(h) if h.expire_at == Some(at) && h.is_expired(now) => {
                                v.delete_expired(&k, &h).tc()?;
                            }
                            other => {
                                return Err(TestCaseError::fail(format!(
                                    "due() listed {k:?} at {at} but its header is {other:?}"
                                )))
                            }
                        }
                        model.map.remove(&(*db, k));
                    }
                    let touched: Vec<Touched> = want
                        .into_iter()
                        .map(|(_, key)| Touched {
                            db: *db,
                            key,
                            expired: true,
                            change: Change::Expired,
                        })
                        .collect();
                    prop_assert_eq!(log.take(), touched, "write log of the sweep");
                    return self.check_cheap(None);
                }
                _ => unreachable!("handled above"),
            }
        };
        let logged = log.take();
        if mutated {
            prop_assert!(
                logged.iter().any(|t| t.db == db && t.key == key),
                "write log {logged:?} lacks ({db}, {key:?})"
            );
        } else {
            prop_assert!(logged.is_empty(), "read-only op logged {logged:?}");
        }
        self.check_cheap(Some((db, &key)))
    }

    /// A `Set` as a building block (fill keys, churn): expired entry dropped first.
    fn write(
        &mut self,
        db: usize,
        key: &[u8],
        value: &[u8],
        at: Option<i64>,
    ) -> Result<(), TestCaseError> {
        let log = WriteLog::default();
        let v = self
            .store
            .as_ref()
            .expect("store")
            .view_mut(self.tx.as_ref().expect("tx"), db, &log)
            .tc()?;
        let old = v.lookup_for_write(key, self.now).tc()?;
        v.write_string(key, old.as_ref(), value, at).tc()?;
        self.model.for_write(db, key, self.now);
        self.model
            .map
            .insert((db, key.to_vec()), Entry::string(value.to_vec(), at));
        Ok(())
    }

    /// Counts, the deadline index, every named key's header, and `key`'s full value.
    fn check_cheap(&self, key: Option<(usize, &[u8])>) -> Result<(), TestCaseError> {
        let store = self.store();
        let tx = self.tx();
        for db in 0..DATABASES {
            let v = store.view(tx, db).tc()?;
            check_counts(&v, &self.model, db, self.now)?;
            for id in 0..NAMED {
                let k = key_name(id);
                check_header(&v, &self.model, db, &k, self.now)?;
            }
        }
        if let Some((db, k)) = key {
            let v = store.view(tx, db).tc()?;
            check_header(&v, &self.model, db, k, self.now)?;
            check_value(&v, &self.model, db, k)?;
        }
        Ok(())
    }

    /// SCAN of `db` to completion, applying `churn` between pages. Checks Redis's guarantee:
    /// no key twice, every key live for the whole scan returned, no key returned that was
    /// never live during it.
    fn scan_with_churn(
        &mut self,
        db: usize,
        count: usize,
        filter: ScanFilter,
        churn: &[Op],
    ) -> Result<(), TestCaseError> {
        let matching = |m: &Model, now: i64| -> BTreeSet<Vec<u8>> {
            m.entries(db)
                .filter(|(k, e)| !e.expired(now) && filter.keep(k, e.kind()))
                .map(|(k, _)| k.clone())
                .collect()
        };
        let start = matching(&self.model, self.now);
        let mut always = start.clone();
        let mut ever = start;
        let mut seen: Vec<Vec<u8>> = Vec::new();
        let mut cursor = 0u64;
        let mut pages = 0usize;
        let mut churn = churn.iter();
        loop {
            let page = {
                let v = self.store().view(self.tx(), db).tc()?;
                v.scan(cursor, count, self.now, |k, kind| filter.keep(k, kind))
                    .tc()?
            };
            // A page visits about `count` entries (more only for keys sharing a hash).
            prop_assert!(
                page.keys.len() <= count.max(1),
                "page of {} keys for count {count}",
                page.keys.len()
            );
            seen.extend(page.keys);
            cursor = page.cursor;
            pages += 1;
            prop_assert!(pages <= 10_000, "scan does not terminate");
            if cursor == 0 {
                break;
            }
            if let Some(op) = churn.next() {
                self.apply_churn(op)?;
                let live = matching(&self.model, self.now);
                always = always.intersection(&live).cloned().collect();
                ever.extend(live);
            }
        }
        let seen_set: BTreeSet<Vec<u8>> = seen.iter().cloned().collect();
        prop_assert_eq!(seen_set.len(), seen.len(), "a key was returned twice");
        let missing: Vec<_> = always.difference(&seen_set).collect();
        prop_assert!(
            missing.is_empty(),
            "keys live for the whole scan missing: {missing:?}"
        );
        let phantom: Vec<_> = seen_set.difference(&ever).collect();
        prop_assert!(phantom.is_empty(), "keys never live returned: {phantom:?}");
        self.check_cheap(None)
    }

    fn apply_churn(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Set {
                db,
                key,
                value,
                ttl,
            } => {
                let at = ttl.map(|t| self.now + t);
                self.write(*db, &key_name(*key), &value.bytes(), at)
            }
            other => self.apply(other),
        }
    }
}

/// `len`, `volatile_len` and `due(now, ∞)` of one database against the model.
fn check_counts(v: &DbView<'_>, m: &Model, db: usize, now: i64) -> Result<(), TestCaseError> {
    prop_assert_eq!(v.len().tc()?, m.len(db), "len() of db {}", db);
    prop_assert_eq!(
        v.volatile_len().tc()?,
        m.volatile_len(db),
        "volatile_len() of db {}",
        db
    );
    prop_assert_eq!(
        v.is_empty().tc()?,
        m.len(db) == 0,
        "is_empty() of db {}",
        db
    );
    let due = v.due(now, usize::MAX).tc()?;
    prop_assert_eq!(due, m.due(db, now), "due({}) of db {}", now, db);
    // Out-of-line data: exactly the members of the model's sets (nothing leaked).
    let members: u64 = m
        .entries(db)
        .filter_map(|(_, e)| e.set.as_ref())
        .map(|s| s.len() as u64)
        .sum();
    let mut stored = 0u64;
    for entry in v.data().tc()?.iter() {
        entry.tc()?;
        stored += 1;
    }
    prop_assert_eq!(stored, members, "entries in the data bucket of db {}", db);
    check_chunks(v, db)
}

/// Layout invariants of big strings: a string is chunked exactly when it is longer than
/// `INLINE_MAX`; every chunk belongs to a string of this database, lies inside its length and
/// holds no bytes past its end (so nothing leaks and nothing stale can resurface on growth).
fn check_chunks(v: &DbView<'_>, db: usize) -> Result<(), TestCaseError> {
    let mut owners: BTreeMap<u64, u64> = BTreeMap::new();
    for entry in v.keys().tc()?.iter() {
        let entry = entry.tc()?;
        let key = &entry.key()[8..];
        let h = Header::decode(entry.value().unwrap_or(&[]));
        let h = h.ok_or_else(|| TestCaseError::fail(format!("bad header of {key:?}")))?;
        if h.kind != Kind::String {
            continue;
        }
        match h.body {
            Body::Inline(b) => prop_assert!(
                b.len() <= INLINE_MAX,
                "{} inline bytes for {:?} in db {}",
                b.len(),
                key,
                db
            ),
            Body::Id { id, len, .. } => {
                prop_assert!(
                    len > INLINE_MAX as u64,
                    "chunked string {:?} of only {} bytes in db {}",
                    key,
                    len,
                    db
                );
                prop_assert!(
                    owners.insert(id, len).is_none(),
                    "value id {} used twice",
                    id
                );
            }
        }
    }
    for entry in v.chunks().tc()?.iter() {
        let entry = entry.tc()?;
        let k = entry.key();
        prop_assert_eq!(k.len(), 12, "chunk key length");
        let id = u64::from_be_bytes(k[..8].try_into().expect("8 bytes"));
        let n = u32::from_be_bytes(k[8..].try_into().expect("4 bytes")) as u64;
        let Some(&len) = owners.get(&id) else {
            return Err(TestCaseError::fail(format!(
                "chunk {n} of value id {id} in db {db} belongs to no key (leaked)"
            )));
        };
        let start = n * CHUNK as u64;
        prop_assert!(
            start < len,
            "chunk {} of value {} starts past its {} bytes",
            n,
            id,
            len
        );
        let data = entry.value().unwrap_or(&[]).len() as u64;
        prop_assert!(
            data <= (CHUNK as u64).min(len - start),
            "chunk {} of value {} holds {} bytes; the value has {} bytes",
            n,
            id,
            data,
            len
        );
    }
    Ok(())
}

/// `lookup_raw` / `lookup` of one key against the model (header only).
fn check_header(
    v: &DbView<'_>,
    m: &Model,
    db: usize,
    key: &[u8],
    now: i64,
) -> Result<(), TestCaseError> {
    let want = m.get(db, key);
    let raw = v.lookup_raw(key).tc()?;
    prop_assert_eq!(
        raw.is_some(),
        want.is_some(),
        "lookup_raw('{}') in db {}",
        show(key),
        db
    );
    let live = v.lookup(key, now).tc()?;
    let want_live = want.filter(|e| !e.expired(now));
    prop_assert_eq!(
        live.is_some(),
        want_live.is_some(),
        "lookup('{}', {}) in db {}",
        show(key),
        now,
        db
    );
    if let (Some(h), Some(e)) = (raw, want) {
        prop_assert_eq!(h.kind, e.kind(), "type of '{}' in db {}", show(key), db);
        prop_assert_eq!(
            h.expire_at,
            e.expire,
            "deadline of '{}' in db {}",
            show(key),
            db
        );
        prop_assert_eq!(string_len(&h), e.len(), "length of '{}'", show(key));
    }
    Ok(())
}

/// The whole value of one (physically present) key, read all three ways.
fn check_value(v: &DbView<'_>, m: &Model, db: usize, key: &[u8]) -> Result<(), TestCaseError> {
    let Some(e) = m.get(db, key) else {
        return Ok(());
    };
    let h: Header<'_> = v.lookup_raw(key).tc()?.expect("checked present");
    if let Some(set) = &e.set {
        let c = Coll::of(&h).expect("a set header");
        let mut got = Vec::new();
        v.coll_scan(c.id, &[], None, false, |m, _| {
            got.push(m.to_vec());
            Ok(true)
        })
        .tc()?;
        let want: Vec<Vec<u8>> = set.iter().cloned().collect();
        prop_assert_eq!(got, want, "members of '{}' in db {}", show(key), db);
        return Ok(());
    }
    let a = v.string_value(&h).tc()?;
    let b = v.string_bytes(&h).tc()?;
    let c = v.string_range(&h, 0, u64::MAX).tc()?;
    for (how, got) in [
        ("string_value", &a[..]),
        ("string_bytes", &b[..]),
        ("string_range", &c[..]),
    ] {
        prop_assert!(
            got == &e.value[..],
            "{how} of '{}' in db {db}: got {} bytes, want {} (first difference at {:?})",
            show(key),
            got.len(),
            e.value.len(),
            got.iter().zip(&e.value).position(|(x, y)| x != y)
        );
    }
    Ok(())
}

/// Everything: counts, every entry in full, `all_keys` and a complete SCAN.
fn check_all(store: &Store, tx: &Tx, m: &Model, now: i64) -> Result<(), TestCaseError> {
    for db in 0..DATABASES {
        let v = store.view(tx, db).tc()?;
        check_counts(&v, m, db, now)?;
        for (k, _) in m.entries(db) {
            check_header(&v, m, db, k, now)?;
            check_value(&v, m, db, k)?;
        }
        for id in 0..NAMED {
            check_header(&v, m, db, &key_name(id), now)?;
        }
        let live = m.live(db, now);
        let all: BTreeSet<Vec<u8>> = v.all_keys(now, |_| true).tc()?.into_iter().collect();
        prop_assert_eq!(&all, &live, "all_keys of db {}", db);
        let mut scanned = Vec::new();
        let mut cursor = 0;
        loop {
            let page = v.scan(cursor, 7, now, |_, _| true).tc()?;
            scanned.extend(page.keys);
            cursor = page.cursor;
            if cursor == 0 {
                break;
            }
        }
        let n = scanned.len();
        let scanned: BTreeSet<Vec<u8>> = scanned.into_iter().collect();
        prop_assert_eq!(n, scanned.len(), "full scan returned a key twice");
        prop_assert_eq!(&scanned, &live, "full scan of db {}", db);
    }
    Ok(())
}

/// Runs one case: the operations, then a final commit, full check, reopen and engine check.
fn run_ops(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut h = Harness::new();
    for (i, op) in ops.iter().enumerate() {
        h.apply(op)
            .map_err(|e| TestCaseError::fail(format!("op #{i} {op:?}: {e}")))?;
    }
    h.commit()?;
    h.check_committed()?;
    h.check_snapshots()?;
    let problems = h.store().db().check().tc()?;
    prop_assert!(problems.is_empty(), "Db::check: {problems:?}");
    h.reopen()?;
    let problems = h.store().db().check().tc()?;
    prop_assert!(problems.is_empty(), "Db::check after reopen: {problems:?}");
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Random mixes of every operation against the model.
    #[test]
    fn store_matches_model(ops in prop::collection::vec(op(), 1..max_ops())) {
        run_ops(&ops)?;
    }
}

// ---------------------------------------------------------------------------------------
// Targeted tests
// ---------------------------------------------------------------------------------------

fn temp_store() -> (tempfile::TempDir, PathBuf, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.rivet");
    let store = Store::open(&path, DATABASES, options()).expect("open store");
    (dir, path, store)
}

/// Runs `f` on database 0 in a write transaction and commits.
fn update<R>(store: &Store, f: impl FnOnce(&DbView<'_>) -> rivet::Result<R>) -> R {
    let tx = store.db().begin_write().expect("begin write");
    let log = WriteLog::default();
    let r = f(&store.view_mut(&tx, 0, &log).expect("view")).expect("update");
    tx.commit().expect("commit");
    r
}

/// Runs `f` on database 0 in a read transaction.
fn read<R>(store: &Store, f: impl FnOnce(&DbView<'_>) -> rivet::Result<R>) -> R {
    let tx = store.db().begin_read().expect("begin read");
    let r = f(&store.view(&tx, 0).expect("view")).expect("read");
    r
}

fn chunk_count(v: &DbView<'_>) -> rivet::Result<usize> {
    let mut n = 0;
    for e in v.chunks()?.iter() {
        e?;
        n += 1;
    }
    Ok(n)
}

/// Sets `key` to `value` (no expiry) as SET does.
fn set(v: &DbView<'_>, key: &[u8], value: &[u8], now: i64) -> rivet::Result<()> {
    let old = v.lookup_for_write(key, now)?;
    v.write_string(key, old.as_ref(), value, None)
}

fn chunks_for(len: usize) -> usize {
    len.div_ceil(CHUNK)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("stat data file").len()
}

fn assert_clean(store: &Store) {
    let problems = store.db().check().expect("check");
    assert!(problems.is_empty(), "Db::check: {problems:?}");
}

#[test]
fn chunks_are_freed_on_delete_overwrite_and_expiry() {
    let (_dir, _path, store) = temp_store();
    let big = Blob {
        len: 100_000,
        seed: 7,
    }
    .bytes();
    let k = b"big".as_slice();

    update(&store, |v| set(v, k, &big, T0));
    assert_eq!(read(&store, chunk_count), chunks_for(big.len()));
    assert_eq!(read(&store, |v| v.len()), 1);

    // DEL frees every chunk, and the pages come back to the freelist.
    let before = store.db().stats();
    assert!(update(&store, |v| v.delete_key(k, T0)));
    assert_eq!(read(&store, chunk_count), 0);
    // The next write transaction releases what the delete freed.
    update(&store, |_| Ok(()));
    let after = store.db().stats();
    let free = |s: rivet::DbStats| s.free_page_n + s.pending_page_n;
    assert!(
        free(after) >= free(before) + (big.len() / 4096) as u64,
        "free pages {} -> {} after deleting a {}-byte value",
        free(before),
        free(after),
        big.len()
    );

    // Overwriting a chunked value with another chunked value keeps only the new chunks...
    update(&store, |v| set(v, k, &big, T0));
    update(&store, |v| set(v, k, &big[..50_000], T0));
    assert_eq!(read(&store, chunk_count), chunks_for(50_000));
    // ...and with an inline one, none.
    update(&store, |v| set(v, k, b"small", T0));
    assert_eq!(read(&store, chunk_count), 0);

    // SETRANGE growing a chunked value past its end, then an inline overwrite.
    update(&store, |v| set(v, k, &big, T0));
    let n = update(&store, |v| {
        let h = v.lookup_for_write(k, T0)?;
        v.string_set_range(k, h.as_ref(), 200_000 - 1, b"!")
    });
    assert_eq!(n, 200_000);
    // The gap between 100_000 and 200_000 is only materialised in the chunks actually
    // written: the one holding byte 199_999 and the partial last chunk of the old value.
    assert_eq!(read(&store, chunk_count), chunks_for(big.len()) + 1);
    update(&store, |v| set(v, k, b"", T0));
    assert_eq!(read(&store, chunk_count), 0);

    // An expired chunked value is freed when a write meets it (lazy expiry)...
    update(&store, |v| {
        let old = v.lookup_for_write(k, T0)?;
        v.write_string(k, old.as_ref(), &big, Some(T0 + 10))
    });
    assert_eq!(read(&store, |v| v.volatile_len()), 1);
    assert!(read(&store, |v| v.lookup(k, T0 + 10).map(|h| h.is_none())));
    assert!(read(&store, |v| v.lookup_raw(k).map(|h| h.is_some())));
    assert!(update(&store, |v| v
        .lookup_for_write(k, T0 + 10)
        .map(|h| h.is_none())));
    assert_eq!(read(&store, chunk_count), 0);
    assert_eq!(read(&store, |v| v.len()), 0);
    assert_eq!(read(&store, |v| v.volatile_len()), 0);

    // ...and when the sweeper deletes it.
    update(&store, |v| v.write_string(k, None, &big, Some(T0 + 10)));
    update(&store, |v| {
        let due = v.due(T0 + 10, 10)?;
        assert_eq!(due, vec![(T0 + 10, k.to_vec())]);
        let h = v.lookup_raw(k)?.expect("present");
        v.delete_entry(k, &h)
    });
    assert_eq!(read(&store, chunk_count), 0);
    assert_eq!(read(&store, |v| v.len()), 0);
    assert_clean(&store);
}

#[test]
fn set_delete_cycles_do_not_grow_the_file() {
    let (_dir, path, store) = temp_store();
    let big = Blob {
        len: 90_000,
        seed: 3,
    }
    .bytes();
    let mut sizes = Vec::new();
    for i in 0..40 {
        update(&store, |v| set(v, b"cycle", &big, T0));
        update(&store, |v| v.delete_key(b"cycle", T0));
        if i == 9 || i == 39 {
            sizes.push(file_len(&path));
        }
    }
    assert_eq!(read(&store, chunk_count), 0);
    assert!(
        sizes[1] <= sizes[0],
        "file grew from {} to {} bytes over 30 more set/delete cycles: chunks leak",
        sizes[0],
        sizes[1]
    );
    assert_clean(&store);
}

#[test]
fn setrange_on_a_sparse_10mb_string_writes_one_chunk() {
    let (_dir, path, store) = temp_store();
    const TEN_MB: u64 = 10 * 1024 * 1024;
    let k = b"sparse".as_slice();

    let n = update(&store, |v| v.string_set_range(k, None, TEN_MB - 1, b"x"));
    assert_eq!(n, TEN_MB);
    assert_eq!(read(&store, chunk_count), 1, "only the last chunk exists");
    assert!(
        file_len(&path) < 1024 * 1024,
        "a 10 MB sparse string made the file {} bytes",
        file_len(&path)
    );

    // One byte in the middle of the string: exactly one more chunk.
    let mid = 5 * 1024 * 1024 + 3;
    let n = update(&store, |v| {
        let h = v.lookup_for_write(k, T0)?;
        v.string_set_range(k, h.as_ref(), mid, b"hello")
    });
    assert_eq!(n, TEN_MB);
    assert_eq!(read(&store, chunk_count), 2);

    // Writing inside an existing chunk adds none; straddling a boundary adds two.
    update(&store, |v| {
        let h = v.lookup_for_write(k, T0)?;
        v.string_set_range(k, h.as_ref(), mid + 100, b"again")
    });
    assert_eq!(read(&store, chunk_count), 2);
    let edge = 100 * CHUNK as u64 - 2;
    update(&store, |v| {
        let h = v.lookup_for_write(k, T0)?;
        v.string_set_range(k, h.as_ref(), edge, b"abcd")
    });
    assert_eq!(read(&store, chunk_count), 4);
    assert!(file_len(&path) < 1024 * 1024);

    // Reads: zeros everywhere except what was written.
    let mut want = vec![0u8; TEN_MB as usize];
    want[TEN_MB as usize - 1] = b'x';
    want[mid as usize..mid as usize + 5].copy_from_slice(b"hello");
    want[mid as usize + 100..mid as usize + 105].copy_from_slice(b"again");
    want[edge as usize..edge as usize + 4].copy_from_slice(b"abcd");
    read(&store, |v| {
        let h = v.lookup(k, T0)?.expect("present");
        assert_eq!(string_len(&h), TEN_MB);
        assert_eq!(v.string_range(&h, 0, 100)?, vec![0u8; 100]);
        assert_eq!(v.string_range(&h, mid - 2, mid + 7)?, b"\0\0hello\0\0");
        assert_eq!(v.string_range(&h, edge - 1, edge + 5)?, b"\0abcd\0");
        assert_eq!(v.string_range(&h, TEN_MB - 2, TEN_MB + 50)?, b"\0x");
        assert!(v.string_range(&h, TEN_MB, TEN_MB + 1)?.is_empty());
        let all = v.string_value(&h)?;
        assert!(all[..] == want[..], "the whole sparse value differs");
        Ok(())
    });

    update(&store, |v| v.delete_key(k, T0));
    assert_eq!(read(&store, chunk_count), 0);
    assert_clean(&store);
}

#[test]
fn durable_reopen_and_scan_cursor_across_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("durable.rivet");
    let mut model = Model::default();
    let mut cursor;
    let mut seen = BTreeSet::new();
    {
        // Default options: synced commits.
        let store = Store::open(&path, DATABASES, rivet::Options::default()).expect("open");
        let tx = store.db().begin_write().expect("begin");
        let log = WriteLog::default();
        for db in 0..DATABASES {
            let v = store.view_mut(&tx, db, &log).expect("view");
            for i in 0..60u64 {
                let key = format!("key:{db}:{i}").into_bytes();
                let value = Blob {
                    len: if i % 20 == 0 { 40_000 } else { i as usize },
                    seed: i + 1,
                }
                .bytes();
                let at = (i % 3 == 0).then_some(T0 + i as i64);
                v.write_string(&key, None, &value, at).expect("write");
                model.map.insert((db, key), Entry::string(value, at));
            }
        }
        tx.commit().expect("commit");
        // First page of a SCAN before the restart.
        let tx = store.db().begin_read().expect("read");
        let page = store
            .view(&tx, 1)
            .expect("view")
            .scan(0, 10, T0, |_, _| true)
            .expect("scan");
        assert_ne!(page.cursor, 0);
        cursor = page.cursor;
        seen.extend(page.keys);
    }
    let store = Store::open(&path, DATABASES, rivet::Options::default()).expect("reopen");
    let tx = store.db().begin_read().expect("read");
    check_all(&store, &tx, &model, T0).expect("state after reopen");
    check_all(&store, &tx, &model, T0 + 30).expect("state after reopen, later");
    // The cursor handed out before the restart continues the scan.
    let v = store.view(&tx, 1).expect("view");
    while cursor != 0 {
        let page = v.scan(cursor, 10, T0, |_, _| true).expect("scan");
        for k in page.keys {
            assert!(seen.insert(k.clone()), "{k:?} returned twice");
        }
        cursor = page.cursor;
    }
    assert_eq!(seen, model.live(1, T0));
    drop(tx);
    assert_clean(&store);
}

#[test]
fn due_orders_by_deadline_then_position_and_honours_limit() {
    let (_dir, _path, store) = temp_store();
    let mut model = Model::default();
    update(&store, |v| {
        for i in 0..40i64 {
            let key = format!("d{i}").into_bytes();
            // Many keys share a deadline: ties are in keyspace (hash) order.
            let at = T0 + (i % 4) * 10;
            v.write_string(&key, None, b"v", Some(at))?;
            model
                .map
                .insert((0, key), Entry::string(b"v".to_vec(), Some(at)));
        }
        Ok(())
    });
    read(&store, |v| {
        for now in [T0 - 1, T0, T0 + 9, T0 + 10, T0 + 25, T0 + 30, T0 + 1000] {
            let want = model.due(0, now);
            assert_eq!(v.due(now, usize::MAX)?, want, "due({now})");
            for limit in [0, 1, 7, 10, 11] {
                let mut w = want.clone();
                w.truncate(limit);
                assert_eq!(v.due(now, limit)?, w, "due({now}, {limit})");
            }
        }
        assert_eq!(v.volatile_len()?, 40);
        Ok(())
    });
}

/// What the writer's sweeper does with `due(now, limit)` (writer.rs `sweep_expired`).
fn sweep_like_writer(v: &DbView<'_>, now: i64, limit: usize) -> rivet::Result<()> {
    for (at, key) in v.due(now, limit)? {
        match v.lookup_raw(&key)? {
            Some(h) if h.expire_at == Some(at) && h.is_expired(now) => v.delete_entry(&key, &h)?,
            _ => v.drop_deadline(at, &key)?,
        }
    }
    Ok(())
}

/// Regression: a negative deadline used to be indexed clamped to 0, so `due` reported 0
/// instead of the header's deadline and the sweeper dropped the entry as stale, never
/// deleting the key. The index now encodes every i64 deadline exactly.
#[test]
fn negative_deadline_is_reported_and_swept() {
    let (_dir, _path, store) = temp_store();
    update(&store, |v| v.write_string(b"neg", None, b"v", Some(-5)));
    assert_eq!(
        read(&store, |v| v.due(0, 10)),
        vec![(-5, b"neg".to_vec())],
        "due() must report the key's own deadline"
    );
    update(&store, |v| sweep_like_writer(v, 0, 10));
    assert!(read(&store, |v| v.lookup_raw(b"neg").map(|h| h.is_none())));
    assert_eq!(read(&store, |v| v.len()), 0);
    assert_eq!(read(&store, |v| v.volatile_len()), 0);
}
