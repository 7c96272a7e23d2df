//! `rivet-bench` command line. See [`USAGE`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rivet_bench::driver::{self, DriverConfig, Launcher, Results, GO_ENGINE};
use rivet_bench::engine::{self, Result};
use rivet_bench::events::Reporter;
use rivet_bench::peer::{self, PeerError};
use rivet_bench::workload::{self, Params, Workload};
use rivet_bench::{gen, record, report, sysinfo};

const USAGE: &str = "usage: rivet-bench COMMAND [--flag value]...

commands:
  all        run the suite (every engine x workload x run in its own process) and write
             OUT/results.json, OUT/report.md and OUT/*.svg
               --n N                 keys / records for workloads 1, 2 and sorted [1000000]
               --runs R              runs per combination; medians are reported   [3]
               --engines LIST        rivet,lmdb,redb,fjall,bbolt                  [all available]
               --workloads LIST      kv,records,sorted,scale                      [all]
               --scale-ns LIST       N values of workload 3           [1000000,10000000]
               --scale-runs R        runs per N of workload 3                     [--runs]
               --dir DIR             where databases are written (the disk under test)
                                                                   [target/rivet-bench/db]
               --out DIR             results and charts            [target/rivet-bench/latest]
               --publish FILE        also write the report into FILE (between the markers
                                     <!-- BEGIN GENERATED --> / <!-- END GENERATED --> if present)
               --phase-limit SECS    per-phase time limit; the child is killed     [300]
               --fsync-samples K     repetitions of the fdatasync floor probe      [200]
               --peer PATH           prebuilt Go peer with the bench command [built from source]
               --keep                keep database directories
               --verbose             print every phase as it finishes
             plus the workload flags below
  run        one child: --engine E --workload W --dir DIR [workload flags]; prints JSON events
  report     re-render: --results FILE [--out DIR] [--publish FILE]
  profile    --engine E --phase P --dir DIR [--n N] [workload flags]: load N keys (untimed),
             then run only phase P inside `profiled_phase` (for callgrind --toggle-collect);
             P: bulk_load sorted_load individual_writes batch_writes len random_reads read_txns
                range_reads random_reads_mt removals compaction
  fsync-floor  [--dir DIR] [--fsync-samples K]: median 4 KiB pwrite+fdatasync in microseconds
  selftest   print the deterministic data the Go peer must reproduce
  engines    list the engines this binary can run

workload flags (defaults = the benchmark definitions):
  --individual-writes K [1000]  --batch-commits K [100]  --batch-size K [1000]
  --threads T [4]  --sample S [1000] (durable one-record-per-txn phases of workload 2)
  --load-batch K [0 = one transaction]  --seed S [3]
";

struct Args {
    flags: HashMap<String, String>,
    switches: Vec<String>,
}

impl Args {
    fn parse(args: &[String]) -> std::result::Result<Args, String> {
        let mut flags = HashMap::new();
        let mut switches = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            let Some(name) = a.strip_prefix("--") else {
                return Err(format!("unexpected argument {a:?}"));
            };
            if matches!(name, "keep" | "verbose") {
                switches.push(name.to_string());
                i += 1;
                continue;
            }
            let (k, v) = match name.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => {
                    let v = args
                        .get(i + 1)
                        .ok_or_else(|| format!("--{name} needs a value"))?;
                    i += 1;
                    (name.to_string(), v.clone())
                }
            };
            flags.insert(k, v);
            i += 1;
        }
        Ok(Args { flags, switches })
    }

    fn str(&self, k: &str) -> Option<&str> {
        self.flags.get(k).map(|s| s.as_str())
    }

    fn num<T: std::str::FromStr>(&self, k: &str, default: T) -> std::result::Result<T, String> {
        match self.flags.get(k) {
            None => Ok(default),
            Some(v) => v
                .replace('_', "")
                .parse()
                .map_err(|_| format!("--{k}: cannot parse {v:?}")),
        }
    }

    fn switch(&self, k: &str) -> bool {
        self.switches.iter().any(|s| s == k)
    }

    fn params(&self) -> std::result::Result<Params, String> {
        let d = Params::default();
        Ok(Params {
            n: self.num("n", d.n)?,
            individual_writes: self.num("individual-writes", d.individual_writes)?,
            batch_commits: self.num("batch-commits", d.batch_commits)?,
            batch_size: self.num("batch-size", d.batch_size)?,
            threads: self.num("threads", d.threads)?,
            sample: self.num("sample", d.sample)?,
            load_batch: self.num("load-batch", d.load_batch)?,
            seed: self.num("seed", d.seed)?,
        })
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = argv.first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let args = match Args::parse(&argv[1..]) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("rivet-bench: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let r = match cmd.as_str() {
        "all" => cmd_all(&args),
        "run" => cmd_run(&args),
        "report" => cmd_report(&args),
        "fsync-floor" => cmd_fsync_floor(&args),
        "profile" => cmd_profile(&args),
        "selftest" => {
            print!("{}", selftest());
            Ok(())
        }
        "engines" => {
            println!("{}", engine::compiled_engines().join("\n"));
            match peer::build(&peer::repo_root()) {
                Ok(p) => println!("{GO_ENGINE} ({})", p.display()),
                Err(e) => eprintln!("{GO_ENGINE}: {e}"),
            }
            Ok(())
        }
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command {other:?}\n\n{USAGE}").into()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rivet-bench {cmd}: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The data both languages must generate identically (compared by the smoke test).
fn selftest() -> String {
    let mut s = String::new();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    for i in [0u64, 7, 1_000_000] {
        let mut k = [0u8; gen::KEY_LEN];
        let mut v = [0u8; gen::VALUE_LEN];
        gen::key(i, &mut k);
        s += &format!("key {i} {}\n", hex(&k));
        gen::sorted_key(i, &mut k);
        s += &format!("sorted_key {i} {}\n", hex(&k));
        gen::value(i, &mut v);
        s += &format!("value {i} {}\n", hex(&v));
        let mut b = Vec::new();
        record::User::generate(i).encode_binary(&mut b);
        s += &format!("record_binary {i} {}\n", hex(&b));
    }
    let mut seq = gen::Seq::new(3);
    let picks: Vec<String> = (0..5).map(|_| seq.below(1_000_000).to_string()).collect();
    s += &format!("seq 3 {}\n", picks.join(" "));
    s
}

fn cmd_run(a: &Args) -> Result<()> {
    let engine = a.str("engine").ok_or("--engine is required")?;
    let w = a.str("workload").ok_or("--workload is required")?;
    let w = Workload::parse(w).ok_or_else(|| format!("unknown workload {w:?}"))?;
    let dir = PathBuf::from(a.str("dir").ok_or("--dir is required")?);
    let p = a.params()?;
    workload::run(engine, w, &dir, &p, &Reporter::stdout())
}

fn cmd_profile(a: &Args) -> Result<()> {
    let engine = a.str("engine").ok_or("--engine is required")?;
    let phase = a.str("phase").ok_or("--phase is required")?;
    let dir = PathBuf::from(a.str("dir").ok_or("--dir is required")?);
    let secs = workload::profile(engine, phase, &dir, &a.params()?)?;
    println!("{engine} {phase}: {:.1} ms", secs * 1e3);
    Ok(())
}

fn cmd_fsync_floor(a: &Args) -> Result<()> {
    let dir = PathBuf::from(a.str("dir").unwrap_or("target/rivet-bench/db"));
    let k = a.num("fsync-samples", 200usize)?;
    println!("{:.1}", workload::fsync_floor_us(&dir, k)?);
    Ok(())
}

fn list(a: &Args, k: &str) -> Option<Vec<String>> {
    a.str(k).map(|s| {
        s.split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect()
    })
}

fn cmd_all(a: &Args) -> Result<()> {
    let started = Instant::now();
    let repo = peer::repo_root();
    let params = a.params()?;
    let runs = a.num("runs", 3usize)?.max(1);
    let bench_dir = PathBuf::from(a.str("dir").unwrap_or("target/rivet-bench/db"));
    let out = PathBuf::from(a.str("out").unwrap_or("target/rivet-bench/latest"));
    std::fs::create_dir_all(&bench_dir)?;
    std::fs::create_dir_all(&out)?;
    let bench_dir = bench_dir.canonicalize()?;
    let phase_limit = a.num("phase-limit", 300u64)?;
    let workloads: Vec<Workload> = match list(a, "workloads") {
        None => Workload::ALL.to_vec(),
        Some(v) => v
            .iter()
            .map(|w| Workload::parse(w).ok_or_else(|| format!("unknown workload {w:?}")))
            .collect::<std::result::Result<_, _>>()?,
    };
    let scale_ns: Vec<u64> = match list(a, "scale-ns") {
        None => vec![1_000_000, 10_000_000],
        Some(v) => v
            .iter()
            .map(|x| x.replace('_', "").parse::<u64>())
            .collect::<std::result::Result<_, _>>()?,
    };
    let mut results = Results::default();
    let wanted: Vec<String> = list(a, "engines").unwrap_or_else(|| {
        let mut v: Vec<String> = engine::compiled_engines()
            .into_iter()
            .map(String::from)
            .collect();
        v.push(GO_ENGINE.into());
        v
    });
    let self_exe = std::env::current_exe()?;
    let mut engines = Vec::new();
    for e in &wanted {
        if e == GO_ENGINE {
            let built = match a.str("peer") {
                Some(p) => Ok(PathBuf::from(p)),
                None => peer::build(&repo),
            };
            match built {
                Ok(p) => engines.push((e.clone(), Launcher::Go(p))),
                Err(PeerError::Missing(why)) => {
                    eprintln!("rivet-bench: SKIPPED engine {GO_ENGINE}: {why}");
                    results.skipped.insert(e.clone(), why);
                }
                Err(err) => return Err(format!("Go peer: {err}").into()),
            }
        } else if engine::compiled_engines().contains(&e.as_str()) {
            engines.push((e.clone(), Launcher::Rust(self_exe.clone())));
        } else {
            let why = "not compiled into this binary (cargo feature disabled)".to_string();
            eprintln!("rivet-bench: SKIPPED engine {e}: {why}");
            results.skipped.insert(e.clone(), why);
        }
    }
    let mut meta = sysinfo::collect(&bench_dir, &repo);
    let samples = a.num("fsync-samples", 200usize)?.max(1);
    eprintln!(
        "rivet-bench: measuring the fdatasync floor in {}",
        bench_dir.display()
    );
    meta.fsync_floor_us = workload::fsync_floor_us(&bench_dir, samples)?;
    meta.fsync_floor_samples = samples;
    meta.phase_limit_secs = phase_limit;
    meta.runs = runs;
    meta.params = vec![
        format!("N={}", params.n),
        format!("individual writes={}", params.individual_writes),
        format!("batches={}×{}", params.batch_commits, params.batch_size),
        format!("reader threads={}", params.threads),
        format!("record-study sample={}", params.sample),
        format!("scale runs={}", a.num("scale-runs", runs)?),
        format!(
            "scale N={}",
            scale_ns
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join("/")
        ),
    ];
    eprintln!(
        "rivet-bench: fdatasync floor {:.0} µs; load {}; engines {}",
        meta.fsync_floor_us,
        meta.load_before,
        engines
            .iter()
            .map(|(e, _)| e.as_str())
            .collect::<Vec<_>>()
            .join(",")
    );
    results.meta = meta;
    let cfg = DriverConfig {
        engines,
        workloads,
        params,
        scale_ns,
        runs,
        scale_runs: a.num("scale-runs", runs)?,
        bench_dir,
        phase_limit: Duration::from_secs(phase_limit),
        keep: a.switch("keep"),
        verbose: a.switch("verbose"),
    };
    let results_path = out.join("results.json");
    driver::run_all(&cfg, &mut results, |r| {
        if let Ok(s) = serde_json::to_string_pretty(r) {
            let _ = std::fs::write(&results_path, s);
        }
    });
    results.meta.load_after = sysinfo::loadavg();
    results.meta.fsync_floor_after_us = workload::fsync_floor_us(&cfg.bench_dir, samples)?;
    results.meta.total_secs = started.elapsed().as_secs_f64();
    std::fs::write(&results_path, serde_json::to_string_pretty(&results)?)?;
    write_report(&results, &out, a.str("publish").map(Path::new))?;
    let failed: Vec<String> = results
        .runs
        .iter()
        .filter_map(|r| {
            r.error
                .as_ref()
                .map(|e| format!("{} {} n={}: {e}", r.engine, r.workload, r.n))
        })
        .collect();
    if !failed.is_empty() {
        return Err(format!("{} run(s) failed:\n{}", failed.len(), failed.join("\n")).into());
    }
    Ok(())
}

fn cmd_report(a: &Args) -> Result<()> {
    let path = PathBuf::from(a.str("results").ok_or("--results is required")?);
    let results: Results = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let out = a
        .str("out")
        .map(PathBuf::from)
        .unwrap_or_else(|| path.parent().unwrap_or(Path::new(".")).to_path_buf());
    write_report(&results, &out, a.str("publish").map(Path::new))
}

const BEGIN: &str = "<!-- BEGIN GENERATED -->";
const END: &str = "<!-- END GENERATED -->";

/// Writes OUT/report.md and the charts, and optionally the published Markdown file.
fn write_report(results: &Results, out: &Path, publish: Option<&Path>) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let local = report::render(results, "");
    for (name, svg) in &local.charts {
        std::fs::write(out.join(name), svg)?;
    }
    std::fs::write(out.join("report.md"), &local.markdown)?;
    eprintln!("rivet-bench: wrote {}", out.join("report.md").display());
    if let Some(publish) = publish {
        let prefix = relative_prefix(publish, out);
        let body = report::render(results, &prefix).markdown;
        let generated = format!("{BEGIN}\n{body}{END}\n");
        let text = match std::fs::read_to_string(publish) {
            Ok(old) if old.contains(BEGIN) && old.contains(END) => {
                let (head, rest) = old.split_once(BEGIN).expect("checked");
                let (_, tail) = rest.split_once(END).expect("checked");
                let tail = tail.trim_start_matches('\n');
                if tail.is_empty() {
                    format!("{head}{generated}")
                } else {
                    format!("{head}{generated}\n{tail}")
                }
            }
            _ => format!("# Benchmarks\n\n{generated}"),
        };
        std::fs::write(publish, text)?;
        eprintln!("rivet-bench: wrote {}", publish.display());
    }
    Ok(())
}

/// The path prefix that leads from `file`'s directory to `dir` (for image links).
fn relative_prefix(file: &Path, dir: &Path) -> String {
    let base = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let (Ok(base), Ok(dir)) = (base.canonicalize(), dir.canonicalize()) else {
        return format!("{}/", dir.display());
    };
    match dir.strip_prefix(&base) {
        Ok(rel) if rel.as_os_str().is_empty() => String::new(),
        Ok(rel) => format!("{}/", rel.display()),
        Err(_) => format!("{}/", dir.display()),
    }
}
