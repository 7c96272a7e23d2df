//! Process helpers for crash.rs and limits.rs that the shared `common` module does not offer:
//! the pid of a running `rivet-server` (found through /proc by its `--db` argument), its
//! resident memory, SIGKILL by pid, and `rivet check` on a data file.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The pid of the live (non-zombie) rivet-server process started with `--db <db>`.
pub fn server_pid(db: &Path) -> u32 {
    let want = db.as_os_str().as_encoded_bytes();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut found = Vec::new();
        let entries = std::fs::read_dir("/proc").expect("read /proc");
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let argv: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            let is_server = argv.first().is_some_and(|a0| a0.ends_with(b"rivet-server"));
            let has_db = argv.windows(2).any(|w| w[0] == b"--db" && w[1] == want);
            if is_server && has_db && !is_zombie(pid) {
                found.push(pid);
            }
        }
        match found.len() {
            1 => return found[0],
            0 if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => panic!(
                "expected exactly one rivet-server process with --db {}, found {found:?}",
                db.display()
            ),
        }
    }
}

/// Whether `pid` is gone or a zombie.
pub fn is_zombie(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

/// Resident set size of `pid` in KiB (`VmRSS` of /proc/<pid>/status).
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS")
}

/// Anonymous resident memory of `pid` in KiB (`RssAnon`: heap, without the mapped data file).
pub fn rss_anon_kib(pid: u32) -> u64 {
    status_kib(pid, "RssAnon")
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    let line = status
        .lines()
        .find(|l| l.split(':').next() == Some(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    line.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad VmRSS line {line:?}"))
}

/// Sends SIGKILL to `pid` and waits until it is dead (a zombie or reaped).
pub fn kill9(pid: u32) {
    let st = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("run kill -KILL");
    assert!(st.success(), "kill -KILL {pid} failed: {st}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !is_zombie(pid) {
        assert!(Instant::now() < deadline, "pid {pid} survived SIGKILL");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The `rivet` CLI: `$RIVET_CLI`, else `rivet` next to the rivet-server binary
/// (`cargo build -p rivet-cli` puts it there).
pub fn rivet_cli() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RIVET_CLI") {
        return Some(PathBuf::from(p));
    }
    let server = Path::new(env!("CARGO_BIN_EXE_rivet-server"));
    let cli = server.with_file_name("rivet");
    cli.exists().then_some(cli)
}

/// Checks the data file's consistency: `rivet check FILE` (exit 0 and `OK`) when the CLI is
/// built, otherwise the same check through the engine library (read-only open). Panics with
/// the findings. Returns which checker ran.
pub fn rivet_check(db: &Path) -> &'static str {
    if let Some(cli) = rivet_cli() {
        let out = Command::new(&cli)
            .arg("check")
            .arg(db)
            .output()
            .unwrap_or_else(|e| panic!("run {} check: {e}", cli.display()));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("OK"),
            "`rivet check {}` failed ({}):\n{stdout}\n{stderr}",
            db.display(),
            out.status
        );
        return "rivet check (CLI)";
    }
    let opts = rivet::Options {
        read_only: true,
        timeout: Some(Duration::from_secs(5)),
        ..rivet::Options::default()
    };
    let db_handle = rivet::Db::open(db, opts)
        .unwrap_or_else(|e| panic!("open {} read-only: {e}", db.display()));
    let problems = db_handle
        .check()
        .unwrap_or_else(|e| panic!("check {}: {e}", db.display()));
    assert!(
        problems.is_empty(),
        "check of {} found problems:\n{}",
        db.display(),
        problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    "engine check (library; build rivet-cli to use the CLI)"
}
