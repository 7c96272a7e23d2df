//! The workloads, written once against [`Engine`] (and once more in Go in the peer's
//! `bench.go`, phase for phase).
//!
//! * [`Workload::Kv`] — workload 1, redb's `lmdb_benchmark` definition (anchors.md §1.4) with
//!   `N` as a parameter: bulk load of `N` random 24-byte keys with 150-byte values in one
//!   transaction; 1,000 individual durable commits; 100 commits of 1,000 keys; `len`; 2 rounds
//!   of `N` random gets; 2 rounds of `N/2` range reads of 10 entries; random gets of every key
//!   on 4 threads; removal of half the keys in one transaction; file size; compaction; file
//!   size again.
//! * [`Workload::Records`] — workload 2, the BoltDB record-layout study (anchors.md §5).
//! * [`Workload::Sorted`] — bulk load of `N` keys in ascending order in one transaction through
//!   each engine's sorted path ([`WriteTx::put_sorted`]).
//! * [`Workload::Scale`] — the bulk load alone (workload 3 runs it at several `N`).

use std::sync::Barrier;
use std::time::Instant;

use crate::engine::{self, dir_size, Engine, OpenConfig, ReadTx, Result, WriteTx};
use crate::events::{Event, Reporter};
use crate::gen::{self, Seq, KEY_LEN, VALUE_LEN};
use crate::record::{record_key, Encoding, User};

/// Which workload a child runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Workload 1 (redb's benchmark).
    Kv,
    /// Workload 2 (record-layout study).
    Records,
    /// Sorted bulk load.
    Sorted,
    /// Workload 3 (bulk load at scale).
    Scale,
}

impl Workload {
    /// Every workload, in report order.
    pub const ALL: [Workload; 4] = [
        Workload::Kv,
        Workload::Records,
        Workload::Sorted,
        Workload::Scale,
    ];

    /// Command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Kv => "kv",
            Workload::Records => "records",
            Workload::Sorted => "sorted",
            Workload::Scale => "scale",
        }
    }

    /// Parses a command-line name.
    pub fn parse(s: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == s)
    }
}

/// Parameters of one child run (all have command-line flags; see `main.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// `N`: keys (kv, sorted, scale) or records (records).
    pub n: u64,
    /// Individual durable commits of one key (kv).
    pub individual_writes: u64,
    /// Batch commits (kv).
    pub batch_commits: u64,
    /// Keys per batch commit (kv).
    pub batch_size: u64,
    /// Reader threads (kv).
    pub threads: usize,
    /// Durable one-record-per-transaction phases run this many transactions (records).
    pub sample: u64,
    /// Bulk load in transactions of this many keys; 0 = one transaction (the definition).
    /// Only used as the driver's fallback when an engine's one-transaction load times out.
    pub load_batch: u64,
    /// Seed of the random choices (which ids are read).
    pub seed: u64,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            n: 1_000_000,
            individual_writes: 1000,
            batch_commits: 100,
            batch_size: 1000,
            threads: 4,
            sample: 1000,
            load_batch: 0,
            seed: 3,
        }
    }
}

impl Params {
    /// Entries in the kv table after the write phases.
    pub fn kv_total(&self) -> u64 {
        self.n + self.individual_writes + self.batch_commits * self.batch_size
    }
}

/// Phases a complete run of `w` reports, in order (the smoke test checks them).
pub fn expected_phases(w: Workload, p: &Params) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    match w {
        Workload::Kv => {
            for s in [
                "bulk_load",
                "individual_writes",
                "batch_writes",
                "len",
                "random_reads_1",
                "random_reads_2",
                "range_reads_1",
                "range_reads_2",
            ] {
                v.push(s.into());
            }
            v.push(format!("random_reads_{}t", p.threads.max(1)));
            v.push("removals".into());
            v.push("compaction".into());
        }
        Workload::Sorted => v.push("sorted_load".into()),
        Workload::Scale => v.push("bulk_load".into()),
        Workload::Records => {
            for enc in Encoding::ALL {
                for mode in ["single", "bulk"] {
                    let prefix = format!("{}_{mode}", enc.name());
                    for t in ["write", "read", "read_many", "field_sum", "update"] {
                        v.push(format!("{prefix}_{t}"));
                    }
                }
            }
        }
    }
    v
}

/// Values a complete run of `w` reports.
pub fn expected_values(w: Workload) -> Vec<String> {
    match w {
        Workload::Kv => vec![
            "fsync_floor_us".into(),
            "size_uncompacted".into(),
            "size_compacted".into(),
        ],
        Workload::Sorted => vec!["size_sorted".into()],
        Workload::Scale => vec!["size_bulk".into()],
        Workload::Records => Encoding::ALL
            .iter()
            .flat_map(|e| ["single", "bulk"].map(|m| format!("{}_{m}_storage", e.name())))
            .collect(),
    }
}

fn put_item(w: &mut dyn WriteTx, i: u64) -> Result<()> {
    let mut k = [0u8; KEY_LEN];
    let mut v = [0u8; VALUE_LEN];
    gen::key(i, &mut k);
    gen::value(i, &mut v);
    w.put(&k, &v)
}

/// Loads items `lo..hi` in one transaction, or in transactions of `batch` if `batch > 0`.
fn load_items(e: &dyn Engine, lo: u64, hi: u64, batch: u64) -> Result<()> {
    let step = if batch == 0 { (hi - lo).max(1) } else { batch };
    let mut start = lo;
    loop {
        let end = (start + step).min(hi);
        e.write(&mut |w| {
            for i in start..end {
                put_item(w, i)?;
            }
            Ok(())
        })?;
        if end >= hi {
            return Ok(());
        }
        start = end;
    }
}

/// Gets items `lo..hi` in one read transaction and checks each value's first byte.
fn get_items(r: &dyn ReadTx, lo: u64, hi: u64) -> Result<()> {
    let mut k = [0u8; KEY_LEN];
    for i in lo..hi {
        gen::key(i, &mut k);
        let mut first = None;
        if !r.get(&k, &mut |v| first = v.first().copied())? {
            return Err(format!("item {i} missing").into());
        }
        if first != Some(gen::value_check_byte(i)) {
            return Err(format!("item {i}: wrong value").into());
        }
    }
    Ok(())
}

fn open_engine(
    name: &str,
    dir: &std::path::Path,
    entries: u64,
    bytes: u64,
) -> Result<Box<dyn Engine>> {
    engine::open(
        name,
        dir,
        &OpenConfig {
            expected_entries: entries,
            entry_bytes: bytes,
        },
    )
}

/// Runs `workload` on engine `name` in the empty directory `dir`, reporting to `rep`.
pub fn run(
    name: &str,
    workload: Workload,
    dir: &std::path::Path,
    p: &Params,
    rep: &Reporter,
) -> Result<()> {
    match workload {
        Workload::Kv => kv(name, dir, p, rep)?,
        Workload::Records => records(name, dir, p, rep)?,
        Workload::Sorted => sorted(name, dir, p, rep)?,
        Workload::Scale => scale(name, dir, p, rep)?,
    }
    rep.emit(&Event::Done);
    Ok(())
}

fn kv(name: &str, dir: &std::path::Path, p: &Params, rep: &Reporter) -> Result<()> {
    let n = p.n;
    let total = p.kv_total();
    let mut e = open_engine(name, dir, total, (KEY_LEN + VALUE_LEN) as u64)?;
    if p.load_batch > 0 {
        rep.note(format!(
            "bulk load split into transactions of {} keys (fallback: the one-transaction load exceeded the time limit)",
            p.load_batch
        ));
    }
    rep.phase("bulk_load", n, || load_items(&*e, 0, n, p.load_batch))?;
    // The disk's flush cost right now, next to the phase it bounds (it drifts a lot on
    // shared machines): 50 × 4 KiB pwrite + fdatasync in this directory.
    rep.value("fsync_floor_us", fsync_floor_us(dir, 50)?, "us");
    let mut next = n;
    rep.phase("individual_writes", p.individual_writes, || {
        for i in next..next + p.individual_writes {
            e.write(&mut |w| put_item(w, i))?;
        }
        Ok(())
    })?;
    next += p.individual_writes;
    rep.phase("batch_writes", p.batch_commits, || {
        for b in 0..p.batch_commits {
            let lo = next + b * p.batch_size;
            load_items(&*e, lo, lo + p.batch_size, 0)?;
        }
        Ok(())
    })?;
    rep.phase("len", 1, || {
        e.read(&mut |r| {
            let len = r.count()?;
            if len != total {
                return Err(format!("len() = {len}, expected {total}").into());
            }
            Ok(())
        })
    })?;
    let reads = n.min(total);
    for round in 1..=2 {
        rep.phase(&format!("random_reads_{round}"), reads, || {
            e.read(&mut |r| get_items(r, 0, reads))
        })?;
    }
    let scans = (n / 2).max(1);
    for round in 1..=2 {
        rep.phase(&format!("range_reads_{round}"), scans, || {
            e.read(&mut |r| {
                let mut k = [0u8; KEY_LEN];
                let mut sum = 0u64;
                let mut entries = 0;
                for i in 0..scans {
                    gen::key(i, &mut k);
                    entries += r.scan_from(&k, 10, &mut |_, v| sum += u64::from(v[0]))?;
                }
                if entries < scans as usize {
                    return Err("range reads returned too few entries".into());
                }
                std::hint::black_box(sum);
                Ok(())
            })
        })?;
    }
    let threads = p.threads.max(1);
    rep.phase(&format!("random_reads_{threads}t"), total, || {
        let barrier = Barrier::new(threads + 1);
        let engine: &dyn Engine = &*e;
        std::thread::scope(|s| -> Result<()> {
            let handles: Vec<_> = (0..threads as u64)
                .map(|t| {
                    let barrier = &barrier;
                    s.spawn(move || -> Result<()> {
                        let lo = total * t / threads as u64;
                        let hi = total * (t + 1) / threads as u64;
                        barrier.wait();
                        engine.read(&mut |r| get_items(r, lo, hi))
                    })
                })
                .collect();
            barrier.wait();
            for h in handles {
                h.join().map_err(|_| "reader thread panicked")??;
            }
            Ok(())
        })
    })?;
    let removed = total / 2;
    rep.phase("removals", removed, || {
        e.write(&mut |w| {
            let mut k = [0u8; KEY_LEN];
            for i in 0..removed {
                gen::key(i, &mut k);
                w.delete(&k)?;
            }
            Ok(())
        })
    })?;
    rep.value("size_uncompacted", dir_size(e.dir()) as f64, "bytes");
    rep.phase("compaction", 1, || e.compact())?;
    rep.value("size_compacted", dir_size(e.dir()) as f64, "bytes");
    e.read(&mut |r| {
        let len = r.count()?;
        if len != total - removed {
            return Err(format!(
                "after compaction len() = {len}, expected {}",
                total - removed
            )
            .into());
        }
        get_items(r, removed, (removed + 1000).min(total))
    })?;
    Ok(())
}

fn sorted(name: &str, dir: &std::path::Path, p: &Params, rep: &Reporter) -> Result<()> {
    let n = p.n;
    let e = open_engine(name, dir, n, (KEY_LEN + VALUE_LEN) as u64)?;
    rep.phase("sorted_load", n, || {
        e.write(&mut |w| {
            let mut k = [0u8; KEY_LEN];
            let mut v = [0u8; VALUE_LEN];
            for i in 0..n {
                gen::sorted_key(i, &mut k);
                gen::value(i, &mut v);
                w.put_sorted(&k, &v)?;
            }
            Ok(())
        })
    })?;
    rep.value("size_sorted", dir_size(e.dir()) as f64, "bytes");
    e.read(&mut |r| {
        let len = r.count()?;
        if len != n {
            return Err(format!("len() = {len}, expected {n}").into());
        }
        Ok(())
    })
}

fn scale(name: &str, dir: &std::path::Path, p: &Params, rep: &Reporter) -> Result<()> {
    let n = p.n;
    let e = open_engine(name, dir, n, (KEY_LEN + VALUE_LEN) as u64)?;
    if p.load_batch > 0 {
        rep.note(format!(
            "bulk load split into transactions of {} keys",
            p.load_batch
        ));
    }
    rep.phase("bulk_load", n, || load_items(&*e, 0, n, p.load_batch))?;
    rep.value("size_bulk", dir_size(e.dir()) as f64, "bytes");
    Ok(())
}

/// Workload 2 for one engine: both encodings, both insert modes.
fn records(name: &str, dir: &std::path::Path, p: &Params, rep: &Reporter) -> Result<()> {
    let n = p.n.max(2);
    let s = p.sample.min(n).max(1);
    rep.note(format!(
        "records: durable one-record-per-transaction phases are sampled: `single` loads {} records in 10,000-record transactions (untimed) and then times the last {s} records one per transaction; `update` times {s} read-modify-write transactions",
        n - s
    ));
    for enc in Encoding::ALL {
        for mode in ["single", "bulk"] {
            let sub = dir.join(format!("{}-{mode}", enc.name()));
            let e = open_engine(name, &sub, n, 420)?;
            let prefix = format!("{}_{mode}", enc.name());
            if mode == "single" {
                rep.phase("prefill", n - s, || {
                    insert_records(&*e, enc, 0, n - s, 10_000)
                })?;
                rep.phase(&format!("{prefix}_write"), s, || {
                    insert_records(&*e, enc, n - s, n, 1)
                })?;
            } else {
                rep.phase(&format!("{prefix}_write"), n, || {
                    insert_records(&*e, enc, 0, n, 0)
                })?;
            }
            rep.value(
                &format!("{prefix}_storage"),
                dir_size(e.dir()) as f64,
                "bytes",
            );
            record_reads(&*e, enc, n, s, p.seed, &prefix, rep)?;
            drop(e);
            std::fs::remove_dir_all(&sub)?;
        }
    }
    Ok(())
}

/// Inserts records `lo..hi` in ascending id order, `per_tx` per transaction (0 = all in one).
fn insert_records(e: &dyn Engine, enc: Encoding, lo: u64, hi: u64, per_tx: u64) -> Result<()> {
    let per_tx = if per_tx == 0 {
        (hi - lo).max(1)
    } else {
        per_tx
    };
    let mut buf = Vec::with_capacity(512);
    let mut start = lo;
    while start < hi {
        let end = (start + per_tx).min(hi);
        e.write(&mut |w| {
            for id in start..end {
                enc.encode(&User::generate(id), &mut buf);
                w.put(&record_key(id), &buf)?;
            }
            Ok(())
        })?;
        start = end;
    }
    Ok(())
}

fn decode_checked(enc: Encoding, v: &[u8], id: u64) -> Result<User> {
    let u = enc
        .decode(v)
        .ok_or_else(|| format!("record {id}: cannot decode"))?;
    if u.id != id as i64 {
        return Err(format!("record {id}: holds id {}", u.id).into());
    }
    Ok(u)
}

/// Read, ReadMany, FieldSum and Update of the record study.
fn record_reads(
    e: &dyn Engine,
    enc: Encoding,
    n: u64,
    s: u64,
    seed: u64,
    prefix: &str,
    rep: &Reporter,
) -> Result<()> {
    let half = (n / 2).max(1);
    rep.phase(&format!("{prefix}_read"), half, || {
        let mut seq = Seq::new(seed);
        for _ in 0..half {
            let id = seq.below(n);
            e.read(&mut |r| {
                let mut res = Ok(());
                let found = r.get(&record_key(id), &mut |v| {
                    res = decode_checked(enc, v, id).map(|u| {
                        std::hint::black_box(u);
                    })
                })?;
                if !found {
                    return Err(format!("record {id} missing").into());
                }
                res
            })?;
        }
        Ok(())
    })?;
    rep.phase_n(&format!("{prefix}_read_many"), || {
        let mut seq = Seq::new(seed ^ 1);
        let start = seq.below(n);
        let mut count = 0u64;
        e.read(&mut |r| {
            let mut res = Ok(());
            let mut id = start;
            r.scan_from(&record_key(start), half as usize, &mut |_, v| {
                if res.is_ok() {
                    res = decode_checked(enc, v, id).map(|u| {
                        std::hint::black_box(u);
                    });
                }
                id += 1;
                count += 1;
            })?;
            res
        })?;
        Ok(count.max(1))
    })?;
    rep.phase(&format!("{prefix}_field_sum"), n, || {
        let mut sum = 0.0f64;
        let mut count = 0u64;
        e.read(&mut |r| {
            let mut res = Ok(());
            r.scan_from(&[], usize::MAX, &mut |_, v| {
                match enc.decode(v) {
                    Some(u) => sum += u.balance,
                    None => res = Err("cannot decode".into()),
                }
                count += 1;
            })?;
            res
        })?;
        if count != n {
            return Err(format!("field sum saw {count} records, expected {n}").into());
        }
        std::hint::black_box(sum);
        Ok(())
    })?;
    rep.phase(&format!("{prefix}_update"), s, || {
        let mut seq = Seq::new(seed ^ 2);
        let mut buf = Vec::with_capacity(512);
        for _ in 0..s {
            let id = seq.below(n);
            e.write(&mut |w| {
                let mut user = None;
                w.get(&record_key(id), &mut |v| user = enc.decode(v))?;
                let mut u = user.ok_or_else(|| format!("record {id} missing"))?;
                u.balance += 1.0;
                u.updated_at += 1;
                enc.encode(&u, &mut buf);
                w.put(&record_key(id), &buf)
            })?;
        }
        Ok(())
    })?;
    Ok(())
}

/// Median of 4 KiB `pwrite` + `fdatasync` at offset 0 of a preallocated file in `dir`, in
/// microseconds (the disk's durable-commit floor), over `count` repetitions.
pub fn fsync_floor_us(dir: &std::path::Path, count: usize) -> Result<f64> {
    use std::os::unix::fs::FileExt;
    std::fs::create_dir_all(dir)?;
    let path = dir.join("fsync-floor.tmp");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    let block = [0x5au8; 4096];
    f.write_all_at(&block, 0)?;
    f.sync_all()?;
    let mut samples = Vec::with_capacity(count);
    for i in 0..count {
        let mut b = block;
        b[0] = i as u8;
        let t = Instant::now();
        f.write_all_at(&b, 0)?;
        f.sync_data()?;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(f);
    std::fs::remove_file(&path)?;
    samples.sort_by(f64::total_cmp);
    Ok(samples[samples.len() / 2])
}

/// Phases [`profile`] can isolate.
pub const PROFILE_PHASES: [&str; 11] = [
    "bulk_load",
    "sorted_load",
    "individual_writes",
    "batch_writes",
    "len",
    "random_reads",
    "read_txns",
    "range_reads",
    "random_reads_mt",
    "removals",
    "compaction",
];

/// Runs `f` and nothing else: the function a profiler is told to collect
/// (`valgrind --tool=callgrind --toggle-collect='*profiled_phase*'`).
#[inline(never)]
pub fn profiled_phase<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::hint::black_box(f())
}

/// Prepares engine `name` for one workload-1 phase (untimed: a bulk load of `p.n` keys when
/// the phase needs data), then runs just that phase inside [`profiled_phase`]. Returns its
/// wall-clock seconds.
pub fn profile(name: &str, phase: &str, dir: &std::path::Path, p: &Params) -> Result<f64> {
    if !PROFILE_PHASES.contains(&phase) {
        return Err(format!(
            "unknown phase {phase:?} (have: {})",
            PROFILE_PHASES.join(", ")
        )
        .into());
    }
    let n = p.n;
    let mut e = open_engine(name, dir, p.kv_total(), (KEY_LEN + VALUE_LEN) as u64)?;
    if phase != "bulk_load" && phase != "sorted_load" {
        load_items(&*e, 0, n, 0)?;
    }
    let perf = PerfControl::from_env()?;
    perf.send("enable")?;
    let t = Instant::now();
    let e2: &mut dyn Engine = &mut *e;
    let r = profiled_phase(|| match phase {
        "bulk_load" => load_items(e2, 0, n, 0),
        "sorted_load" => e2.write(&mut |w| {
            let mut k = [0u8; KEY_LEN];
            let mut v = [0u8; VALUE_LEN];
            for i in 0..n {
                gen::sorted_key(i, &mut k);
                gen::value(i, &mut v);
                w.put_sorted(&k, &v)?;
            }
            Ok(())
        }),
        "individual_writes" => {
            for i in n..n + p.individual_writes {
                e2.write(&mut |w| put_item(w, i))?;
            }
            Ok(())
        }
        "batch_writes" => {
            for b in 0..p.batch_commits {
                let lo = n + b * p.batch_size;
                load_items(e2, lo, lo + p.batch_size, 0)?;
            }
            Ok(())
        }
        "len" => e2.read(&mut |r| r.count().map(|_| ())),
        "random_reads" => e2.read(&mut |r| get_items(r, 0, n)),
        "read_txns" => {
            // Like the record study's Read: one read transaction per get.
            for i in 0..n / 2 {
                e2.read(&mut |r| get_items(r, i, i + 1))?;
            }
            Ok(())
        }
        "range_reads" => e2.read(&mut |r| {
            let mut k = [0u8; KEY_LEN];
            for i in 0..n / 2 {
                gen::key(i, &mut k);
                r.scan_from(&k, 10, &mut |_, v| {
                    std::hint::black_box(v[0]);
                })?;
            }
            Ok(())
        }),
        "random_reads_mt" => {
            let threads = p.threads.max(1) as u64;
            let engine: &dyn Engine = e2;
            std::thread::scope(|s| -> Result<()> {
                let hs: Vec<_> = (0..threads)
                    .map(|t| {
                        s.spawn(move || {
                            engine
                                .read(&mut |r| get_items(r, n * t / threads, n * (t + 1) / threads))
                        })
                    })
                    .collect();
                for h in hs {
                    h.join().map_err(|_| "reader thread panicked")??;
                }
                Ok(())
            })
        }
        "removals" => e2.write(&mut |w| {
            let mut k = [0u8; KEY_LEN];
            for i in 0..n / 2 {
                gen::key(i, &mut k);
                w.delete(&k)?;
            }
            Ok(())
        }),
        "compaction" => e2.compact(),
        _ => unreachable!("checked above"),
    });
    let secs = t.elapsed().as_secs_f64();
    perf.send("disable")?;
    r?;
    Ok(secs)
}

/// `perf record --control fifo:CTL,ACK -D -1` support: when `RIVET_BENCH_PERF_CTL` (and
/// optionally `RIVET_BENCH_PERF_ACK`) name perf's control FIFOs, [`profile`] enables sampling
/// for exactly the profiled phase.
struct PerfControl {
    ctl: Option<std::fs::File>,
    ack: Option<std::io::BufReader<std::fs::File>>,
}

impl PerfControl {
    fn from_env() -> Result<PerfControl> {
        let open = |var: &str, write: bool| -> Result<Option<std::fs::File>> {
            match std::env::var_os(var) {
                Some(p) => Ok(Some(
                    std::fs::OpenOptions::new()
                        .read(!write)
                        .write(write)
                        .open(p)?,
                )),
                None => Ok(None),
            }
        };
        Ok(PerfControl {
            ctl: open("RIVET_BENCH_PERF_CTL", true)?,
            ack: open("RIVET_BENCH_PERF_ACK", false)?.map(std::io::BufReader::new),
        })
    }

    fn send(&self, cmd: &str) -> Result<()> {
        use std::io::{BufRead, Write};
        if let Some(mut ctl) = self.ctl.as_ref() {
            ctl.write_all(format!("{cmd}\n").as_bytes())?;
            ctl.flush()?;
        }
        if let Some(ack) = &self.ack {
            // BufReader needs &mut; the FIFO is only read here, so a fresh reader on a
            // cloned handle is equivalent.
            let mut line = String::new();
            std::io::BufReader::new(ack.get_ref().try_clone()?).read_line(&mut line)?;
        }
        Ok(())
    }
}
