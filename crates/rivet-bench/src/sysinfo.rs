//! What the report says about where and how it was measured: machine, disk and file system,
//! date, git commit, command line, load average before and after, and the disk's fdatasync
//! floor.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

/// Facts about a driver run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Meta {
    /// Start time, UTC, RFC 3339.
    pub date: String,
    /// `git describe`-style commit of the source tree (with `-dirty` if modified).
    pub git_commit: String,
    /// The exact command line.
    pub command: String,
    /// CPU model name.
    pub cpu: String,
    /// Logical CPUs (`nproc`).
    pub nproc: usize,
    /// Total memory in bytes.
    pub ram_bytes: u64,
    /// Kernel release.
    pub kernel: String,
    /// Whether the kernel reports running under a hypervisor.
    pub virtualized: bool,
    /// `df -T` of the benchmark directory.
    pub df: String,
    /// `findmnt -T` of the benchmark directory.
    pub findmnt: String,
    /// Directory the databases were written to.
    pub bench_dir: String,
    /// `/proc/loadavg` at the start.
    pub load_before: String,
    /// `/proc/loadavg` at the end.
    pub load_after: String,
    /// Processes using CPU at the start (top few by CPU), for the noise note.
    pub busy_before: Vec<String>,
    /// Median 4 KiB `pwrite` + `fdatasync`, µs.
    pub fsync_floor_us: f64,
    /// The same probe at the end of the run (the disk's noise shows in the difference).
    pub fsync_floor_after_us: f64,
    /// Repetitions behind [`Meta::fsync_floor_us`].
    pub fsync_floor_samples: usize,
    /// Versions of the engines and toolchains.
    pub versions: Vec<String>,
    /// Per-phase time limit, seconds.
    pub phase_limit_secs: u64,
    /// Runs per combination.
    pub runs: usize,
    /// Parameters as `name=value` pairs.
    pub params: Vec<String>,
    /// Wall-clock seconds of the whole driver run.
    pub total_secs: f64,
}

fn cmd_out(prog: &str, args: &[&str]) -> String {
    Command::new(prog)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Current `/proc/loadavg`.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The busiest processes right now (`ps` sorted by CPU), excluding this one.
pub fn busy_processes(limit: usize) -> Vec<String> {
    let out = cmd_out(
        "ps",
        &["-eo", "pcpu,rss,comm", "--sort=-pcpu", "--no-headers"],
    );
    out.lines()
        .filter(|l| !l.contains("rivet-bench") && !l.trim_end().ends_with(" ps"))
        .filter(|l| {
            l.split_whitespace()
                .next()
                .and_then(|c| c.parse::<f64>().ok())
                .is_some_and(|c| c >= 5.0)
        })
        .take(limit)
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// Fills in everything that does not need measuring.
pub fn collect(bench_dir: &Path, repo: &Path) -> Meta {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).trim().to_string())
        .unwrap_or_default();
    let virtualized = cpuinfo
        .lines()
        .any(|l| l.starts_with("flags") && l.contains(" hypervisor"));
    let ram_bytes = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .unwrap_or(0);
    let dir = bench_dir.display().to_string();
    let repo_s = repo.display().to_string();
    let mut git_commit = cmd_out("git", &["-C", &repo_s, "rev-parse", "--short=12", "HEAD"]);
    if !cmd_out(
        "git",
        &[
            "-C",
            &repo_s,
            "status",
            "--porcelain",
            "--untracked-files=no",
        ],
    )
    .is_empty()
    {
        git_commit.push_str("-dirty");
    }
    Meta {
        date: cmd_out("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        git_commit,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        cpu,
        nproc: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        ram_bytes,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        virtualized,
        df: cmd_out("df", &["-T", "-h", &dir]),
        findmnt: cmd_out("findmnt", &["-T", &dir]),
        bench_dir: dir,
        load_before: loadavg(),
        busy_before: busy_processes(6),
        versions: versions(repo),
        ..Meta::default()
    }
}

/// Engine versions from the workspace `Cargo.lock`, plus the Go toolchain.
fn versions(repo: &Path) -> Vec<String> {
    let lock = std::fs::read_to_string(repo.join("Cargo.lock")).unwrap_or_default();
    let mut v = Vec::new();
    let mut name = "";
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = n.trim_matches('"');
        } else if let Some(ver) = line.strip_prefix("version = ") {
            if ["heed", "lmdb-master-sys", "redb", "fjall"].contains(&name) {
                v.push(format!("{name} {}", ver.trim_matches('"')));
            }
        }
    }
    v.push(format!(
        "rivet (this tree) / rivet-bench {}",
        env!("CARGO_PKG_VERSION")
    ));
    let go = cmd_out("go", &["version"]);
    if !go.is_empty() {
        v.push(format!(
            "{go}; go.etcd.io/bbolt 1.3.6 (Debian golang-github-coreos-bbolt-dev)"
        ));
    }
    v
}
