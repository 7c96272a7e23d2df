//! Power-loss simulation and I/O fault injection on the commit path.
//!
//! **Power loss.** A recording `Storage` shim logs every write (offset and bytes), every
//! `fdatasync`/`fsync` and every `set_len` while random workloads run (several buckets, nested
//! buckets, puts, deletes, bucket deletes, empty/small/large commits, overflow values, file
//! growth and remaps, the file cut back after deletes, online compactions
//! (`Db::compact_in_place`), reopens, rollbacks). For every prefix
//! of the log (every crash point) the test builds the disk images a power cut could leave: everything before the last sync is
//! there; each unsynced write is dropped, applied, applied only in part (torn at 512-byte
//! sectors) or applied out of order (any subset of sectors); an unsynced `set_len` may or may
//! not have reached the disk. Each image is written to a file and must open with
//! `Db::open`, check clean, hold exactly the model state of its txid, that txid must be the
//! last acknowledged one or (if a commit was in flight) the next one, and a write
//! transaction on it must succeed.
//!
//! **Faults.** A fault-injecting `Storage` counts every call on the commit path (vectored
//! write, `fdatasync`, `set_len`, `fsync`, `map`) and fails the Nth one, for every N within a
//! commit, with EIO, ENOSPC, ENOSPC after a partial write, or ENOMEM for the map, across
//! several workloads. The commit must fail with an error that names the operation; the file
//! must stay consistent (reopen + check + content); the database must either stay usable or,
//! after a failed sync (or a failed meta write / remap), refuse writes with an error that
//! says why.
//!
//! Fast by default; `RIVET_THOROUGH=1` runs ≥ 10,000 crash images and more fault workloads.

mod reliability_support;

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use reliability_support::{
    apply_all, base_seed, dump, dump_db, gen_ops, thorough, GenCfg, MBucket, Op, Rng, TxSize,
};
use rivet::storage::{FileStorage, LockMode, Mapping, Storage};
use rivet::{Db, Error, Options};

const SECTOR: usize = 512;
/// Online compactions (`Db::compact_in_place`) the recorded workloads ran.
static COMPACTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn open_file_storage(path: &Path) -> FileStorage {
    FileStorage::open(
        path,
        false,
        true,
        LockMode {
            shared: false,
            timeout: None,
        },
    )
    .unwrap_or_else(|e| panic!("open {}: {e:?}", path.display()))
}

// ---------------------------------------------------------------------------------------
// Power-loss simulation
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Ev {
    Write {
        off: u64,
        data: Vec<u8>,
    },
    SyncData,
    SyncAll,
    SetLen(u64),
    /// The test is about to commit write transaction `txid`.
    Begin(u64),
    /// Commit `txid` returned `Ok` (or the database was opened at `txid`).
    Ack(u64),
}

/// Passes every call to a real file and logs the ones that change it.
struct Recorder {
    inner: FileStorage,
    log: Arc<Mutex<Vec<Ev>>>,
}

impl Storage for Recorder {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn write_all_vectored_at(&self, bufs: &[&[u8]], offset: u64) -> io::Result<()> {
        self.log.lock().unwrap().push(Ev::Write {
            off: offset,
            data: bufs.concat(),
        });
        self.inner.write_all_vectored_at(bufs, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.log.lock().unwrap().push(Ev::SyncData);
        self.inner.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.log.lock().unwrap().push(Ev::SyncAll);
        self.inner.sync_all()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.log.lock().unwrap().push(Ev::SetLen(len));
        self.inner.set_len(len)
    }
    fn map(&self, len: usize) -> io::Result<Arc<Mapping>> {
        self.inner.map(len)
    }
}

#[derive(Clone, Copy, Debug)]
struct SimCfg {
    seed: u64,
    page_size: usize,
    commits: usize,
    no_freelist_sync: bool,
    /// Commit 3 writes > 32 MiB (more than the engine's spill batch, so pages are written
    /// during spill, before the grow), commit 4 deletes it again.
    huge: bool,
}

fn sim_options(cfg: &SimCfg) -> Options {
    Options {
        page_size: Some(cfg.page_size),
        no_freelist_sync: cfg.no_freelist_sync,
        // Odd seeds give back free pages at the end of the file as soon as there are two, so
        // that the log holds many truncations (and regrowths); even seeds use the default.
        shrink_threshold: if cfg.seed % 2 == 1 {
            2 * cfg.page_size as u64
        } else {
            rivet::DEFAULT_SHRINK_THRESHOLD
        },
        ..Options::default()
    }
}

/// Runs a random workload on a recorded file; returns the log and the model state per txid.
fn record_workload(cfg: &SimCfg, dir: &Path) -> (Vec<Ev>, BTreeMap<u64, MBucket>) {
    let path = dir.join(format!("live-{}.db", cfg.seed));
    let log = Arc::new(Mutex::new(Vec::new()));
    let open = |log: &Arc<Mutex<Vec<Ev>>>| {
        let storage = Recorder {
            inner: open_file_storage(&path),
            log: log.clone(),
        };
        Db::open_storage(path.clone(), Box::new(storage), sim_options(cfg)).unwrap()
    };
    let mut db = open(&log);
    let mut rng = Rng::new(cfg.seed);
    let gen = GenCfg {
        key_space: 150 + rng.below(400),
        ..GenCfg::new(cfg.page_size)
    };
    let mut states = BTreeMap::new();
    let (txid0, mut model) = dump_db(&db).unwrap();
    states.insert(txid0, model.clone());
    log.lock().unwrap().push(Ev::Ack(txid0));
    let mut commits = 0;
    while commits < cfg.commits {
        if rng.chance(1, 25) {
            drop(db);
            db = open(&log);
            let (txid, m) = dump_db(&db).unwrap();
            assert_eq!(m, model, "reopen changed the content");
            assert_eq!(Some(&m), states.get(&txid));
            continue;
        }
        if commits > 3 && rng.chance(1, 10) {
            // Online compaction: rounds of commits that keep the content.
            let txid_now = |db: &Db| db.view(|tx| Ok::<_, Error>(tx.id())).unwrap();
            let t0 = txid_now(&db);
            log.lock().unwrap().push(Ev::Begin(t0 + 1));
            db.compact_in_place(4, |_| {
                let t = txid_now(&db);
                let mut l = log.lock().unwrap();
                l.push(Ev::Ack(t));
                l.push(Ev::Begin(t + 1));
            })
            .unwrap();
            for t in t0 + 1..=txid_now(&db) + 1 {
                states.insert(t, model.clone());
            }
            COMPACTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            commits += 1;
            continue;
        }
        let size = TxSize::random(&mut rng);
        let (ops, next) = if cfg.huge && (commits == 3 || commits == 4) {
            huge_ops(&model, commits == 3)
        } else {
            gen_ops(&mut rng, &model, gen, size)
        };
        let tx = db.begin_write().unwrap();
        let txid = tx.id();
        apply_all(&tx, &ops).unwrap();
        if rng.chance(1, 20) {
            tx.rollback();
            continue;
        }
        states.insert(txid, next.clone());
        log.lock().unwrap().push(Ev::Begin(txid));
        tx.commit().unwrap();
        log.lock().unwrap().push(Ev::Ack(txid));
        model = next;
        commits += 1;
    }
    assert!(db.check().unwrap().is_empty());
    drop(db);
    let log = std::mem::take(&mut *log.lock().unwrap());
    (log, states)
}

/// A commit of 9,000 values of 4,000 bytes (about 36 MiB of pages), or its deletion.
fn huge_ops(model: &MBucket, create: bool) -> (Vec<Op>, MBucket) {
    let name = b"_huge".to_vec();
    let mut ops = Vec::new();
    if create {
        ops.push(Op::CreateBucket {
            path: Vec::new(),
            name: name.clone(),
        });
        for i in 0..9000u32 {
            ops.push(Op::Put {
                path: vec![name.clone()],
                key: format!("h{i:05}").into_bytes(),
                value: vec![(i % 251) as u8; 4000],
            });
        }
    } else {
        ops.push(Op::DeleteBucket {
            path: Vec::new(),
            name,
        });
    }
    let mut m = model.clone();
    for op in &ops {
        reliability_support::apply_model(&mut m, op);
    }
    (ops, m)
}

#[derive(Default, Debug)]
struct SimStats {
    crash_points: u64,
    images: u64,
    distinct_images: u64,
    in_flight_survived: u64,
    violations: u64,
    /// `set_len` calls that shortened the file (disk space given back).
    shrinks: u64,
}

/// What opening an image gave.
#[derive(Clone, Copy)]
struct Outcome {
    txid: u64,
}

/// Checks one image; returns its txid, or what is wrong with it.
fn verify_image(
    image: &[u8],
    cfg: &SimCfg,
    states: &BTreeMap<u64, MBucket>,
    scratch: &Path,
) -> Result<Outcome, String> {
    std::fs::write(scratch, image).unwrap();
    let db = Db::open(
        scratch,
        Options {
            no_sync: true,
            ..sim_options(cfg)
        },
    )
    .map_err(|e| format!("crash image does not open: {e}"))?;
    let (txid, got) = {
        let tx = db.begin_read().unwrap();
        let problems = tx.check();
        if !problems.is_empty() {
            return Err(format!("crash image fails check: {problems:?}"));
        }
        let m = dump(&tx).map_err(|e| format!("crash image cannot be read: {e}"))?;
        (tx.id(), m)
    };
    match states.get(&txid) {
        None => return Err(format!("crash image has txid {txid}, never committed")),
        Some(want) if *want != got => {
            return Err(format!(
                "crash image at txid {txid} holds {} but that commit holds {}",
                got.summary(),
                want.summary()
            ))
        }
        Some(_) => {}
    }
    // The database must be writable after the crash (freelist sane, pages reusable).
    db.update(|tx| {
        let b = tx.create_bucket_if_not_exists(b"after-crash")?;
        for i in 0..20u32 {
            b.put(&i.to_be_bytes(), &[7u8; 300])?;
        }
        tx.delete_bucket(b"after-crash")
    })
    .map_err(|e| format!("write after crash failed: {e}"))?;
    let problems = db.check().unwrap();
    if !problems.is_empty() {
        return Err(format!("check after post-crash write: {problems:?}"));
    }
    Ok(Outcome { txid })
}

/// Saves a failing image for inspection and panics with the details.
fn report_failure(image: &[u8], cfg: &SimCfg, msg: &str, what: &str) -> ! {
    let keep = std::env::temp_dir().join(format!(
        "rivet-crash-sim-failure-seed{}-{}.db",
        cfg.seed,
        std::process::id()
    ));
    std::fs::write(&keep, image).unwrap();
    panic!(
        "{msg}\n  workload {cfg:?}\n  crash point: {what}\n  image saved to {}",
        keep.display()
    );
}

fn hash_image(image: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    image.hash(&mut h);
    h.finish()
}

/// Builds one image: `durable` plus the chosen sectors of the pending writes.
fn build_image(
    durable: &[u8],
    durable_len: u64,
    pending_len: Option<u64>,
    apply_len: bool,
    sectors: &[(u64, &[u8])],
    chosen: &mut dyn FnMut(usize) -> bool,
) -> Vec<u8> {
    let mut img = durable.to_vec();
    let len = if apply_len {
        pending_len.unwrap_or(durable_len)
    } else {
        durable_len
    };
    img.resize(len as usize, 0);
    for (i, (off, data)) in sectors.iter().enumerate() {
        if chosen(i) {
            let end = *off as usize + data.len();
            if img.len() < end {
                img.resize(end, 0);
            }
            img[*off as usize..end].copy_from_slice(data);
        }
    }
    img
}

/// Walks the log, and at every crash point checks the images a power cut could leave.
///
/// With `lying_disk`, a sync that covers only data pages is ignored (a disk that acknowledges
/// `fdatasync` without persisting): then the harness must find broken images, which proves
/// it can detect a broken commit protocol. Violations are counted instead of panicking.
fn simulate(cfg: &SimCfg, dir: &Path, stats: &mut SimStats, lying_disk: bool) {
    let (log, states) = record_workload(cfg, dir);
    let scratch = dir.join(format!("image-{}.db", cfg.seed));
    let thorough = thorough();
    let mut rng = Rng::new(cfg.seed ^ 0xC4A5);
    let mut durable: Vec<u8> = Vec::new();
    let mut pending: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut pending_len: Option<u64> = None;
    let mut last_ack: Option<u64> = None;
    let mut in_flight: Option<u64> = None;
    let mut seen: HashMap<u64, Outcome> = HashMap::new();
    for (k, ev) in log.iter().enumerate() {
        match ev {
            Ev::Write { off, data } => pending.push((*off, data.clone())),
            Ev::SyncData | Ev::SyncAll
                if lying_disk
                    && !pending.is_empty()
                    && pending
                        .iter()
                        .all(|(off, _)| *off >= 2 * cfg.page_size as u64) => {}
            Ev::SyncData | Ev::SyncAll => {
                if let Some(l) = pending_len.take() {
                    durable.resize(l as usize, 0);
                }
                for (off, data) in pending.drain(..) {
                    let end = off as usize + data.len();
                    if durable.len() < end {
                        durable.resize(end, 0);
                    }
                    durable[off as usize..end].copy_from_slice(&data);
                }
            }
            Ev::SetLen(l) => {
                if *l < pending_len.unwrap_or(durable.len() as u64) {
                    stats.shrinks += 1;
                }
                pending_len = Some(*l);
            }
            Ev::Begin(t) => in_flight = Some(*t),
            Ev::Ack(t) => {
                last_ack = Some(*t);
                in_flight = None;
            }
        }
        let Some(acked) = last_ack else {
            // Still creating the file: the database was never opened successfully.
            continue;
        };
        stats.crash_points += 1;
        let mut allowed = vec![acked];
        if let Some(t) = in_flight {
            allowed.push(t);
        }
        // Sectors of the unsynced writes, in write order.
        let sectors: Vec<(u64, &[u8])> = pending
            .iter()
            .flat_map(|(off, data)| {
                data.chunks(SECTOR)
                    .enumerate()
                    .map(move |(i, c)| (off + (i * SECTOR) as u64, c))
            })
            .collect();
        let n = sectors.len();
        let durable_len = durable.len() as u64;
        let len_choices: &[bool] = if pending_len.is_some_and(|l| l != durable_len) {
            &[false, true]
        } else {
            &[false]
        };
        let mut images: Vec<(String, Vec<u8>)> = Vec::new();
        for &apply_len in len_choices {
            let mut mk = |label: String, chosen: &mut dyn FnMut(usize) -> bool| {
                images.push((
                    format!("{label}, set_len applied: {apply_len}"),
                    build_image(
                        &durable,
                        durable_len,
                        pending_len,
                        apply_len,
                        &sectors,
                        chosen,
                    ),
                ));
            };
            mk("unsynced writes dropped".into(), &mut |_| false);
            if n == 0 {
                continue;
            }
            mk("unsynced writes all applied".into(), &mut |_| true);
            if n <= 8 && thorough {
                // Few sectors (a meta page): every subset.
                for mask in 1..(1u32 << n) - 1 {
                    mk(format!("sector subset {mask:#b}"), &mut |i| {
                        mask & (1 << i) != 0
                    });
                }
                continue;
            }
            let (subsets, prefixes) = if thorough { (6, 3) } else { (2, 1) };
            for s in 0..subsets {
                let bits: Vec<bool> = (0..n).map(|_| rng.chance(1, 2)).collect();
                mk(format!("random sector subset #{s}"), &mut |i| bits[i]);
            }
            for _ in 0..prefixes {
                let cut = rng.below(n);
                mk(format!("torn after {cut} of {n} sectors"), &mut |i| i < cut);
            }
            // Reordering at write granularity: whole writes, any subset.
            let mut starts = Vec::new();
            let mut idx = 0;
            for (_, data) in &pending {
                starts.push(idx);
                idx += data.len().div_ceil(SECTOR);
            }
            let keep: Vec<bool> = pending.iter().map(|_| rng.chance(1, 2)).collect();
            mk("random subset of whole writes".into(), &mut |i| {
                let w = starts.partition_point(|&s| s <= i) - 1;
                keep[w]
            });
        }
        for (label, image) in images {
            stats.images += 1;
            let h = hash_image(&image);
            let outcome = match seen.get(&h) {
                Some(o) => *o,
                None => {
                    stats.distinct_images += 1;
                    match verify_image(&image, cfg, &states, &scratch) {
                        Ok(o) => {
                            seen.insert(h, o);
                            o
                        }
                        Err(msg) if lying_disk => {
                            stats.violations += 1;
                            let _ = msg;
                            continue;
                        }
                        Err(msg) => {
                            let what = format!(
                                "after event {k} of {} ({ev:?}), last acknowledged txid \
                                 {acked}, in flight {in_flight:?}, image: {label}",
                                log.len()
                            );
                            report_failure(&image, cfg, &msg, &what)
                        }
                    }
                }
            };
            if lying_disk && !allowed.contains(&outcome.txid) {
                stats.violations += 1;
                continue;
            }
            assert!(
                allowed.contains(&outcome.txid),
                "workload {cfg:?}: crash after event {k} ({ev:?}), image '{label}': opened at \
                 txid {} but the last acknowledged commit is {acked} and the one in flight \
                 {in_flight:?}",
                outcome.txid
            );
            if Some(outcome.txid) == in_flight {
                stats.in_flight_survived += 1;
            }
        }
    }
}

fn sim_configs() -> Vec<SimCfg> {
    let seed = base_seed(0x5EED_0001);
    // Fast mode: 8 workloads; thorough: 40 more (longer), and one with a > 32 MiB commit.
    let n = if thorough() { 48 } else { 8 };
    let mut out: Vec<SimCfg> = (0..n)
        .map(|i| SimCfg {
            seed: seed + i,
            page_size: [4096, 1024, 4096, 2048][i as usize % 4],
            commits: if i < 8 {
                30
            } else {
                40 + (i as usize % 3) * 20
            },
            no_freelist_sync: i % 4 == 2,
            huge: false,
        })
        .collect();
    if thorough() {
        out.push(SimCfg {
            seed: seed + 1000,
            page_size: 4096,
            commits: 7,
            no_freelist_sync: false,
            huge: true,
        });
    }
    out
}

#[test]
fn power_loss_at_every_crash_point() {
    let dir = tempfile::tempdir().unwrap();
    let cfgs = sim_configs();
    let start = std::time::Instant::now();
    let total = Mutex::new(SimStats::default());
    let next = Mutex::new(0usize);
    let workers = if thorough() { 2 } else { 1 };
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap();
                    *n += 1;
                    *n - 1
                };
                let Some(cfg) = cfgs.get(i) else { break };
                let mut st = SimStats::default();
                simulate(cfg, dir.path(), &mut st, false);
                let mut t = total.lock().unwrap();
                t.crash_points += st.crash_points;
                t.images += st.images;
                t.distinct_images += st.distinct_images;
                t.in_flight_survived += st.in_flight_survived;
                t.shrinks += st.shrinks;
            });
        }
    });
    let t = total.into_inner().unwrap();
    println!(
        "crash_sim: {} workloads, {} crash points, {} crash images checked ({} distinct images \
         opened), {} images where the in-flight commit survived, {} file truncations, {:.1}s",
        cfgs.len(),
        t.crash_points,
        t.images,
        t.distinct_images,
        t.in_flight_survived,
        t.shrinks,
        start.elapsed().as_secs_f64()
    );
    assert!(
        t.in_flight_survived > 0,
        "some crash images must hold the in-flight commit"
    );
    assert!(t.shrinks > 0, "the workloads must give disk space back");
    let compactions = COMPACTIONS.load(std::sync::atomic::Ordering::Relaxed);
    println!("crash_sim: {compactions} online compactions in the workloads");
    assert!(compactions > 0, "the workloads must run online compactions");
    if thorough() {
        assert!(
            t.images >= 10_000,
            "thorough mode must try ≥ 10,000 crash images"
        );
    }
}

#[test]
fn harness_detects_a_disk_that_ignores_the_data_sync() {
    // If data pages may still be missing when the meta page is durable, some crash images
    // must fail: otherwise the simulator could not tell a broken protocol from a sound one.
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimCfg {
        seed: 77,
        page_size: 4096,
        commits: 12,
        no_freelist_sync: false,
        huge: false,
    };
    let mut st = SimStats::default();
    simulate(&cfg, dir.path(), &mut st, true);
    println!(
        "lying-disk self-test: {} of {} crash images rejected",
        st.violations, st.images
    );
    assert!(st.violations > 0, "the simulator found no broken image");
}

// ---------------------------------------------------------------------------------------
// Fault injection at every call on the commit path
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    Write,
    SyncData,
    SyncAll,
    SetLen,
    Map,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// EIO, nothing written.
    Eio,
    /// ENOSPC, nothing written.
    Enospc,
    /// Half of the bytes written, then ENOSPC.
    PartialEnospc,
    /// ENOMEM (for `map`).
    Enomem,
}

impl Fault {
    fn for_call(c: Call) -> &'static [Fault] {
        match c {
            Call::Write => &[Fault::Eio, Fault::Enospc, Fault::PartialEnospc],
            Call::SyncData | Call::SyncAll => &[Fault::Eio],
            Call::SetLen => &[Fault::Eio, Fault::Enospc],
            Call::Map => &[Fault::Enomem],
        }
    }

    fn error(self) -> io::Error {
        match self {
            Fault::Eio => io::Error::other("injected EIO"),
            Fault::Enospc | Fault::PartialEnospc => io::Error::from_raw_os_error(28),
            Fault::Enomem => io::Error::from_raw_os_error(12),
        }
    }

    /// Text the error the user sees must contain.
    fn cause(self) -> &'static str {
        match self {
            Fault::Eio => "injected EIO",
            Fault::Enospc | Fault::PartialEnospc => "No space left on device",
            Fault::Enomem => "Cannot allocate memory",
        }
    }
}

#[derive(Default)]
struct Plan {
    counting: bool,
    trace: Vec<Call>,
    fire_at: Option<(usize, Fault)>,
    /// Fail the first call of this kind (instead of `fire_at`).
    fire_first: Option<(Call, Fault)>,
    fired: Option<(Call, Fault)>,
}

struct Faulty {
    inner: FileStorage,
    plan: Arc<Mutex<Plan>>,
}

impl Faulty {
    fn hit(&self, c: Call) -> Option<Fault> {
        let mut p = self.plan.lock().unwrap();
        if !p.counting {
            return None;
        }
        let idx = p.trace.len();
        p.trace.push(c);
        if let Some((want, f)) = p.fire_first {
            if want == c {
                p.fire_first = None;
                p.fired = Some((c, f));
                return Some(f);
            }
        }
        match p.fire_at {
            Some((at, f)) if at == idx => {
                p.fired = Some((c, f));
                Some(f)
            }
            _ => None,
        }
    }
}

impl Storage for Faulty {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn write_all_vectored_at(&self, bufs: &[&[u8]], offset: u64) -> io::Result<()> {
        match self.hit(Call::Write) {
            None => self.inner.write_all_vectored_at(bufs, offset),
            Some(Fault::PartialEnospc) => {
                let all = bufs.concat();
                self.inner
                    .write_all_vectored_at(&[&all[..all.len() / 2]], offset)?;
                Err(Fault::PartialEnospc.error())
            }
            Some(f) => Err(f.error()),
        }
    }
    fn sync_data(&self) -> io::Result<()> {
        match self.hit(Call::SyncData) {
            None => self.inner.sync_data(),
            Some(f) => Err(f.error()),
        }
    }
    fn sync_all(&self) -> io::Result<()> {
        match self.hit(Call::SyncAll) {
            None => self.inner.sync_all(),
            Some(f) => Err(f.error()),
        }
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        match self.hit(Call::SetLen) {
            None => self.inner.set_len(len),
            Some(f) => Err(f.error()),
        }
    }
    fn map(&self, len: usize) -> io::Result<Arc<Mapping>> {
        match self.hit(Call::Map) {
            None => self.inner.map(len),
            Some(f) => Err(f.error()),
        }
    }
}

/// A workload for the sweep: setup commits, then the commit under test.
struct FaultWorkload {
    name: String,
    page_size: usize,
    setup: Vec<Vec<Op>>,
    commit: Vec<Op>,
    after: MBucket,
}

fn fault_workloads() -> Vec<FaultWorkload> {
    let mut out = Vec::new();
    let mut specs: Vec<(String, u64, usize, Vec<TxSize>, TxSize)> = vec![
        // A tiny commit: no growth, two writes and two syncs.
        (
            "tiny".into(),
            11,
            4096,
            vec![TxSize::Small; 3],
            TxSize::Tiny,
        ),
        // A large first commit: file growth (set_len + fsync), many runs, a remap.
        ("grow+remap".into(), 12, 4096, vec![], TxSize::Large),
        // Medium commit on a 1 KiB-page file with overflow values.
        (
            "medium-1k".into(),
            13,
            1024,
            vec![TxSize::Medium; 4],
            TxSize::Medium,
        ),
        // An empty commit: only the freelist and the meta page.
        (
            "empty".into(),
            14,
            4096,
            vec![TxSize::Medium; 2],
            TxSize::Empty,
        ),
    ];
    if thorough() {
        for i in 0..40u64 {
            specs.push((
                format!("random-{i}"),
                100 + i,
                [1024, 2048, 4096][i as usize % 3],
                vec![TxSize::Medium; i as usize % 4],
                [TxSize::Small, TxSize::Medium, TxSize::Large][i as usize % 3],
            ));
        }
    }
    for (name, seed, ps, setup_sizes, size) in specs {
        let mut rng = Rng::new(seed);
        let gen = GenCfg::new(ps);
        let mut model = MBucket::default();
        let mut setup = Vec::new();
        for s in setup_sizes {
            let (ops, next) = gen_ops(&mut rng, &model, gen, s);
            setup.push(ops);
            model = next;
        }
        let (commit, after) = gen_ops(&mut rng, &model, gen, size);
        out.push(FaultWorkload {
            name,
            page_size: ps,
            setup,
            commit,
            after,
        });
    }
    // A commit that deletes a whole bucket.
    {
        let ps = 4096;
        let mut rng = Rng::new(15);
        let gen = GenCfg::new(ps);
        let mut model = MBucket::default();
        let mut setup = Vec::new();
        for _ in 0..3 {
            let (ops, next) = gen_ops(&mut rng, &model, gen, TxSize::Medium);
            setup.push(ops);
            model = next;
        }
        let victim = model.bucket_paths()[0].clone();
        let op = Op::DeleteBucket {
            path: Vec::new(),
            name: victim[0].clone(),
        };
        let mut after = model.clone();
        reliability_support::apply_model(&mut after, &op);
        out.push(FaultWorkload {
            name: "delete-bucket".into(),
            page_size: ps,
            setup,
            commit: vec![op],
            after,
        });
    }
    out
}

fn open_faulty(path: &Path, ps: usize, plan: &Arc<Mutex<Plan>>) -> Db {
    Db::open_storage(
        path.to_path_buf(),
        Box::new(Faulty {
            inner: open_file_storage(path),
            plan: plan.clone(),
        }),
        Options {
            page_size: Some(ps),
            ..Options::default()
        },
    )
    .unwrap()
}

/// Builds the state before the commit under test; returns the path and the model state.
fn setup_file(w: &FaultWorkload, dir: &Path) -> (PathBuf, MBucket) {
    let path = dir.join(format!("template-{}.db", w.name));
    let db = Db::open(
        &path,
        Options {
            page_size: Some(w.page_size),
            no_sync: true,
            ..Options::default()
        },
    )
    .unwrap();
    for ops in &w.setup {
        db.update(|tx| apply_all(tx, ops)).unwrap();
    }
    db.sync().unwrap();
    let (_, m) = dump_db(&db).unwrap();
    (path, m)
}

fn run_commit(db: &Db, ops: &[Op]) -> Result<(), Error> {
    let tx = db.begin_write()?;
    apply_all(&tx, ops)?;
    tx.commit()
}

/// The phrase the error must contain for a failure of `c`.
fn op_phrase(c: Call, index_is_meta_write: bool) -> &'static str {
    match c {
        Call::Write if index_is_meta_write => "write of meta page",
        Call::Write => "write pages",
        Call::SyncData => "fdatasync",
        Call::SyncAll => "fsync after growing",
        Call::SetLen => "grow",
        Call::Map => "mmap",
    }
}

#[derive(Default, Debug)]
struct FaultStats {
    injected: u64,
    poisoned: u64,
    usable_after: u64,
}

fn sweep(w: &FaultWorkload, dir: &Path, stats: &mut FaultStats) {
    let (template, before) = setup_file(w, dir);
    let template_bytes = std::fs::read(&template).unwrap();
    // Baseline: which calls does the commit make?
    let trace = {
        let path = dir.join(format!("baseline-{}.db", w.name));
        std::fs::write(&path, &template_bytes).unwrap();
        let plan = Arc::new(Mutex::new(Plan::default()));
        let db = open_faulty(&path, w.page_size, &plan);
        plan.lock().unwrap().counting = true;
        run_commit(&db, &w.commit).unwrap();
        let trace = std::mem::take(&mut plan.lock().unwrap().trace);
        assert_eq!(dump_db(&db).unwrap().1, w.after);
        trace
    };
    // The meta write is the last write of the commit.
    let meta_write = trace.iter().rposition(|c| *c == Call::Write).unwrap();
    let meta_sync = trace.iter().rposition(|c| *c == Call::SyncData).unwrap();
    for (idx, &call) in trace.iter().enumerate() {
        for &fault in Fault::for_call(call) {
            let ctx = format!(
                "workload {}: call #{idx} ({call:?}) of {trace:?} fails with {fault:?}",
                w.name
            );
            let path = dir.join(format!("case-{}-{idx}-{fault:?}.db", w.name));
            std::fs::write(&path, &template_bytes).unwrap();
            let plan = Arc::new(Mutex::new(Plan::default()));
            let db = open_faulty(&path, w.page_size, &plan);
            {
                let mut p = plan.lock().unwrap();
                p.counting = true;
                p.fire_at = Some((idx, fault));
            }
            let r = run_commit(&db, &w.commit);
            assert_eq!(
                plan.lock().unwrap().fired,
                Some((call, fault)),
                "{ctx}: the fault must be reached (deterministic call sequence)"
            );
            plan.lock().unwrap().counting = false;
            stats.injected += 1;
            let err = match r {
                Ok(()) => panic!("{ctx}: the commit reported success"),
                Err(e) => e,
            };
            let msg = err.to_string();
            assert!(
                msg.contains(fault.cause()),
                "{ctx}: error must carry the cause: {msg}"
            );
            assert!(
                msg.contains(op_phrase(call, idx == meta_write)),
                "{ctx}: error must name the operation: {msg}"
            );
            // Once the meta page may have been written (meta write, its sync, a remap
            // afterwards), the commit may be durable; before that it must not be.
            let maybe_durable = idx >= meta_write;
            // A failed sync (or meta write, or remap) must poison the database.
            // (A remap after the meta page is durable cannot be undone either.)
            let must_poison = matches!(call, Call::SyncData | Call::SyncAll)
                || idx == meta_write
                || (call == Call::Map && idx > meta_write);
            let again = run_commit(&db, &w.commit);
            if must_poison {
                match again {
                    Err(Error::Poisoned(why)) => {
                        assert!(
                            why.contains(fault.cause()),
                            "{ctx}: poison reason must say why: {why}"
                        );
                        stats.poisoned += 1;
                    }
                    other => panic!("{ctx}: writes must be refused after this failure: {other:?}"),
                }
                assert!(
                    matches!(err, Error::Poisoned(_) | Error::Io { .. }),
                    "{ctx}"
                );
            } else {
                assert!(matches!(err, Error::Io { .. }), "{ctx}: {err:?}");
                if let Err(e) = again {
                    panic!("{ctx}: the database must stay usable: {e}");
                }
                stats.usable_after += 1;
            }
            // In memory: readers see a committed state, and it is consistent.
            {
                let tx = db.begin_read().unwrap();
                let problems = tx.check();
                assert!(problems.is_empty(), "{ctx}: in-memory check: {problems:?}");
                let got = dump(&tx).unwrap_or_else(|e| panic!("{ctx}: read after failure: {e}"));
                if must_poison {
                    assert!(
                        got == before || (maybe_durable && got == w.after),
                        "{ctx}: readers see {} (before {}, after {})",
                        got.summary(),
                        before.summary(),
                        w.after.summary()
                    );
                } else {
                    assert_eq!(got, w.after, "{ctx}: retried commit must be visible");
                }
            }
            drop(db);
            // On disk: consistent, and holding an acknowledged state.
            let db = Db::open(&path, Options::default())
                .unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
            let problems = db.check().unwrap();
            assert!(
                problems.is_empty(),
                "{ctx}: check after reopen: {problems:?}"
            );
            let got = dump_db(&db).unwrap().1;
            if must_poison {
                assert!(
                    got == before || (maybe_durable && got == w.after),
                    "{ctx}: after reopen the file holds {} (before {}, after {}); \
                     the meta sync is #{meta_sync}",
                    got.summary(),
                    before.summary(),
                    w.after.summary()
                );
            } else {
                assert_eq!(got, w.after, "{ctx}: after reopen");
            }
            // And it is writable again.
            db.update(|tx| tx.create_bucket_if_not_exists(b"z").map(|_| ()))
                .unwrap();
            assert!(db.check().unwrap().is_empty(), "{ctx}");
        }
    }
}

#[test]
fn fault_at_every_call_of_the_commit_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut stats = FaultStats::default();
    let workloads = fault_workloads();
    for w in &workloads {
        sweep(w, dir.path(), &mut stats);
    }
    println!(
        "fault sweep: {} workloads, {} faults injected ({} left the database usable, {} \
         poisoned it as required)",
        workloads.len(),
        stats.injected,
        stats.usable_after,
        stats.poisoned
    );
}

#[test]
fn map_failure_at_open_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    Db::open(&path, Options::default()).unwrap();
    let plan = Arc::new(Mutex::new(Plan {
        counting: true,
        fire_at: Some((0, Fault::Enomem)),
        ..Plan::default()
    }));
    let r = Db::open_storage(
        path.clone(),
        Box::new(Faulty {
            inner: open_file_storage(&path),
            plan: plan.clone(),
        }),
        Options::default(),
    );
    let err = r.expect_err("open must fail when the map fails");
    assert!(err.to_string().contains("mmap"), "{err}");
    assert!(Db::open(&path, Options::default())
        .unwrap()
        .check()
        .unwrap()
        .is_empty());
}

/// Regression test for an engine bug this sweep found (fixed in ee85f26): the remap after a
/// commit used to happen after the meta page was durable, in `finish_write`; when
/// `Storage::map` failed, the new meta was published with the old, smaller mapping, so every
/// later read transaction saw pages "beyond the mapped file" and `check` reported the
/// database as corrupt although the file was fine. Now the grown file is mapped before the
/// meta write, so a failed map is an ordinary rolled-back error.
#[test]
fn remap_failure_keeps_readers_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let plan = Arc::new(Mutex::new(Plan::default()));
    let db = open_faulty(&path, 4096, &plan);
    {
        // The commit below grows the file past the 32 KiB map: fail the remap.
        let mut p = plan.lock().unwrap();
        p.counting = true;
        p.fire_first = Some((Call::Map, Fault::Enomem));
    }
    let r = db.update(|tx| {
        let b = tx.create_bucket(b"b")?;
        for i in 0..300u32 {
            b.put(&i.to_be_bytes(), &[1u8; 200])?;
        }
        Ok::<_, Error>(())
    });
    assert_eq!(plan.lock().unwrap().fired, Some((Call::Map, Fault::Enomem)));
    assert!(r.unwrap_err().to_string().contains("mmap"));
    let tx = db.begin_read().unwrap();
    let problems = tx.check();
    assert!(
        problems.is_empty(),
        "readers after a failed remap: {problems:?}"
    );
    let n = match tx.bucket(b"b") {
        Ok(Some(b)) => b.iter().count(),
        Ok(None) => 0,
        Err(e) => panic!("read after a failed remap: {e}"),
    };
    assert!(n == 0 || n == 300);
}
