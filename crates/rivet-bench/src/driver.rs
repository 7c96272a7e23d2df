//! The driver: runs every (workload, N, run, engine) combination in its own child process,
//! enforces a time limit per phase, measures each child's peak RSS with `wait4`, and saves
//! everything to `results.json`.
//!
//! A child is `rivet-bench run …` for the Rust engines and the Go peer's `bench …` for Go
//! bbolt; both stream [`Event`]s. The gap between two events is bounded by the phase limit:
//! when it runs out the child is killed with `SIGKILL`, the phase is reported as
//! "> limit" and the phases after it as not run. For workload 1, an engine whose
//! one-transaction bulk load exceeds the limit (Go bbolt's is quadratic) is then run again
//! with the load split into 100,000-key transactions so that its other phases are still
//! measured; later runs skip the doomed attempt.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::events::Event;
use crate::sysinfo::Meta;
use crate::workload::{Params, Workload};

/// Name of the Go bbolt backend.
pub const GO_ENGINE: &str = "bbolt";

/// Transactions of this many keys in the fallback bulk load.
pub const FALLBACK_LOAD_BATCH: u64 = 100_000;

/// One timed phase of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseResult {
    /// Phase name.
    pub name: String,
    /// Seconds; `None` when the phase was killed at the time limit.
    pub secs: Option<f64>,
    /// Operations timed.
    pub ops: u64,
}

/// Everything one child reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Engine.
    pub engine: String,
    /// Workload name.
    pub workload: String,
    /// N.
    pub n: u64,
    /// Run index (0-based).
    pub run: usize,
    /// Phases in order.
    pub phases: Vec<PhaseResult>,
    /// Values (sizes).
    pub values: BTreeMap<String, f64>,
    /// Notes the child printed.
    pub notes: Vec<String>,
    /// The phase killed at the time limit, if any.
    pub timed_out: Option<String>,
    /// Failure (non-zero exit, crash, bad output), if any.
    pub error: Option<String>,
    /// Peak resident set size of the child in KiB (`ru_maxrss` from `wait4`).
    pub peak_rss_kib: u64,
    /// Wall-clock seconds of the whole child.
    pub wall_secs: f64,
    /// The bulk load ran in 100,000-key transactions because the one-transaction load
    /// exceeded the time limit (its row is reported as "> limit").
    pub fallback_load: bool,
}

impl RunResult {
    /// The phase named `name`.
    pub fn phase(&self, name: &str) -> Option<&PhaseResult> {
        self.phases.iter().find(|p| p.name == name)
    }
}

/// Everything a driver run produced.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Results {
    /// Machine, disk, command and so on.
    pub meta: Meta,
    /// Every child run.
    pub runs: Vec<RunResult>,
    /// Engines that were requested but could not run, with the reason.
    pub skipped: BTreeMap<String, String>,
}

/// How to start a child for one engine.
#[derive(Debug, Clone)]
pub enum Launcher {
    /// `rivet-bench run --engine NAME …` with this executable.
    Rust(PathBuf),
    /// The Go peer binary (`bboltpeer bench …`).
    Go(PathBuf),
}

/// Settings of a driver run.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// Engines in column order, each with how to launch it.
    pub engines: Vec<(String, Launcher)>,
    /// Workloads to run.
    pub workloads: Vec<Workload>,
    /// N for workloads 1 and 2 and the sorted load.
    pub params: Params,
    /// The N values of workload 3.
    pub scale_ns: Vec<u64>,
    /// Runs per combination (medians are reported).
    pub runs: usize,
    /// Runs per N of workload 3 (its 10M loads are long).
    pub scale_runs: usize,
    /// Where the databases go (the disk under test).
    pub bench_dir: PathBuf,
    /// Time limit per phase.
    pub phase_limit: Duration,
    /// Keep database directories after each run.
    pub keep: bool,
    /// Called after each child with the results so far (to save them incrementally).
    pub verbose: bool,
}

/// Builds the argument list shared by both kinds of child.
fn child_args(workload: Workload, dir: &Path, p: &Params) -> Vec<String> {
    vec![
        "--workload".into(),
        workload.name().into(),
        "--dir".into(),
        dir.display().to_string(),
        "--n".into(),
        p.n.to_string(),
        "--individual-writes".into(),
        p.individual_writes.to_string(),
        "--batch-commits".into(),
        p.batch_commits.to_string(),
        "--batch-size".into(),
        p.batch_size.to_string(),
        "--threads".into(),
        p.threads.to_string(),
        "--sample".into(),
        p.sample.to_string(),
        "--load-batch".into(),
        p.load_batch.to_string(),
        "--seed".into(),
        p.seed.to_string(),
    ]
}

/// The command that runs one child.
pub fn child_command(
    engine: &str,
    launcher: &Launcher,
    workload: Workload,
    dir: &Path,
    p: &Params,
) -> Command {
    let mut c = match launcher {
        Launcher::Rust(exe) => {
            let mut c = Command::new(exe);
            c.args(["run", "--engine", engine]);
            c
        }
        Launcher::Go(peer) => {
            let mut c = Command::new(peer);
            c.args(["bench", "--engine", engine]);
            c
        }
    };
    c.args(child_args(workload, dir, p));
    c
}

enum Msg {
    Line(String),
    Eof,
}

/// Runs one child to completion or to the time limit. Returns the result (without the
/// identifying fields, which the caller fills in).
pub fn run_child(mut cmd: Command, phase_limit: Duration) -> RunResult {
    let mut res = RunResult {
        engine: String::new(),
        workload: String::new(),
        n: 0,
        run: 0,
        phases: Vec::new(),
        values: BTreeMap::new(),
        notes: Vec::new(),
        timed_out: None,
        error: None,
        peak_rss_kib: 0,
        wall_secs: 0.0,
        fallback_load: false,
    };
    let started = Instant::now();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            res.error = Some(format!("cannot start {cmd:?}: {e}"));
            return res;
        }
    };
    let pid = child.id() as libc::pid_t;
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    let out_thread = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(l) => {
                    if tx.send(Msg::Line(l)).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = tx.send(Msg::Eof);
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut current: Option<String> = None;
    let mut last_event = Instant::now();
    let mut done = false;
    loop {
        let deadline = last_event + phase_limit;
        let now = Instant::now();
        let msg = if now >= deadline {
            Err(mpsc::RecvTimeoutError::Timeout)
        } else {
            rx.recv_timeout(deadline - now)
        };
        match msg {
            Ok(Msg::Line(l)) => {
                last_event = Instant::now();
                match serde_json::from_str::<Event>(&l) {
                    Ok(Event::Start { phase }) => current = Some(phase),
                    Ok(Event::End { phase, secs, ops }) => {
                        current = None;
                        res.phases.push(PhaseResult {
                            name: phase,
                            secs: Some(secs),
                            ops,
                        });
                    }
                    Ok(Event::Value { name, value, .. }) => {
                        res.values.insert(name, value);
                    }
                    Ok(Event::Note { text }) => res.notes.push(text),
                    Ok(Event::Done) => done = true,
                    Err(_) => res.notes.push(format!("unparsed output: {l}")),
                }
            }
            Ok(Msg::Eof) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // SAFETY: plain syscall on our own, not yet reaped, child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                let phase = current.clone().unwrap_or_else(|| "(between phases)".into());
                res.phases.push(PhaseResult {
                    name: phase.clone(),
                    secs: None,
                    ops: 0,
                });
                res.timed_out = Some(phase);
                break;
            }
        }
    }
    let (status, rss) = wait4(pid);
    res.peak_rss_kib = rss;
    res.wall_secs = started.elapsed().as_secs_f64();
    let _ = out_thread.join();
    let stderr = err_thread.join().unwrap_or_default();
    drop(child); // already reaped by wait4
    if res.timed_out.is_none() {
        let failed = match status {
            Some(s) => !(libc::WIFEXITED(s) && libc::WEXITSTATUS(s) == 0),
            None => true,
        };
        if failed || !done {
            let tail: String = stderr
                .lines()
                .rev()
                .take(8)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            res.error = Some(format!(
                "child failed (status {status:?}, finished: {done}): {tail}"
            ));
        }
    }
    res
}

/// Waits for `pid`; returns its wait status and peak RSS in KiB.
fn wait4(pid: libc::pid_t) -> (Option<i32>, u64) {
    let mut status = 0;
    // SAFETY: rusage is plain old data; wait4 fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waiting for our own child with valid out-pointers.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            return (Some(status), ru.ru_maxrss.max(0) as u64);
        }
        if r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return (None, 0);
    }
}

/// Runs everything in `cfg`, calling `save` with the results after every child.
pub fn run_all(cfg: &DriverConfig, results: &mut Results, mut save: impl FnMut(&Results)) {
    let mut over_limit: BTreeMap<(String, String, u64), ()> = BTreeMap::new();
    for &workload in &cfg.workloads {
        let ns: Vec<u64> = if workload == Workload::Scale {
            cfg.scale_ns.clone()
        } else {
            vec![cfg.params.n]
        };
        let runs = if workload == Workload::Scale {
            cfg.scale_runs.max(1)
        } else {
            cfg.runs
        };
        for n in ns {
            for run in 0..runs {
                for (engine, launcher) in &cfg.engines {
                    let key = (engine.clone(), workload.name().to_string(), n);
                    let mut p = cfg.params.clone();
                    p.n = n;
                    // A load that exceeded the limit at a smaller N will at a larger one too.
                    let smaller_over = workload == Workload::Scale
                        && over_limit
                            .keys()
                            .any(|(e, w, m)| e == engine && w == workload.name() && *m < n);
                    if smaller_over {
                        over_limit.insert(key.clone(), ());
                    }
                    let known_over = over_limit.contains_key(&key);
                    let mut res = if known_over && workload == Workload::Scale {
                        // The only phase is the load that is known to exceed the limit.
                        skipped_over_limit(&key)
                    } else {
                        if known_over {
                            p.load_batch = FALLBACK_LOAD_BATCH;
                        }
                        let r = one(cfg, engine, launcher, workload, n, run, &p);
                        if r.timed_out.as_deref() == Some("bulk_load") && p.load_batch == 0 {
                            over_limit.insert(key.clone(), ());
                            if workload == Workload::Kv {
                                p.load_batch = FALLBACK_LOAD_BATCH;
                                eprintln!(
                                    "    {engine}: one-transaction bulk load exceeded {}s; rerunning with {FALLBACK_LOAD_BATCH}-key load transactions",
                                    cfg.phase_limit.as_secs()
                                );
                                one(cfg, engine, launcher, workload, n, run, &p)
                            } else {
                                r
                            }
                        } else {
                            r
                        }
                    };
                    if p.load_batch > 0 && workload == Workload::Kv {
                        res.fallback_load = true;
                        if let Some(ph) = res.phases.iter_mut().find(|ph| ph.name == "bulk_load") {
                            ph.secs = None;
                        }
                    }
                    res.engine = engine.clone();
                    res.workload = workload.name().to_string();
                    res.n = n;
                    res.run = run;
                    results.runs.push(res);
                    save(results);
                }
            }
        }
    }
}

fn skipped_over_limit(key: &(String, String, u64)) -> RunResult {
    RunResult {
        engine: key.0.clone(),
        workload: key.1.clone(),
        n: key.2,
        run: 0,
        phases: vec![PhaseResult {
            name: "bulk_load".into(),
            secs: None,
            ops: 0,
        }],
        values: BTreeMap::new(),
        notes: vec![
            "not run: an earlier run of this load (same or smaller N) exceeded the time limit"
                .into(),
        ],
        timed_out: Some("bulk_load".into()),
        error: None,
        peak_rss_kib: 0,
        wall_secs: 0.0,
        fallback_load: false,
    }
}

fn one(
    cfg: &DriverConfig,
    engine: &str,
    launcher: &Launcher,
    workload: Workload,
    n: u64,
    run: usize,
    p: &Params,
) -> RunResult {
    let dir = cfg
        .bench_dir
        .join(format!("{engine}-{}-{n}-{run}", workload.name()));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        let mut r = skipped_over_limit(&(engine.into(), workload.name().into(), n));
        r.phases.clear();
        r.timed_out = None;
        r.notes.clear();
        r.error = Some(format!("cannot create {}: {e}", dir.display()));
        return r;
    }
    let t = Instant::now();
    let r = run_child(
        child_command(engine, launcher, workload, &dir, p),
        cfg.phase_limit,
    );
    eprintln!(
        "  [{} n={n} run {}/{}] {engine:<6} {:>8.1}s  rss {:>6} MiB{}{}",
        workload.name(),
        run + 1,
        if workload == Workload::Scale {
            cfg.scale_runs.max(1)
        } else {
            cfg.runs
        },
        t.elapsed().as_secs_f64(),
        r.peak_rss_kib / 1024,
        r.timed_out
            .as_ref()
            .map(|p| format!("  TIME LIMIT in {p}"))
            .unwrap_or_default(),
        r.error
            .as_ref()
            .map(|e| format!("  ERROR {e}"))
            .unwrap_or_default(),
    );
    if cfg.verbose {
        for ph in &r.phases {
            eprintln!(
                "      {:<28} {}",
                ph.name,
                ph.secs
                    .map(|s| format!("{:.1} ms", s * 1e3))
                    .unwrap_or_else(|| "> limit".into())
            );
        }
    }
    if !cfg.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    r
}
