//! Real Memcached clients against rivet-server's Memcached port, with Debian's memcached
//! 1.6.18 as the reference where one is needed:
//!
//! - `memccapable -a` (libmemcached-tools): every ASCII test that passes against memcached
//!   must pass against rivet-server.
//! - pymemcache (PyPI): `tests/py/pymemcache_check.py` (our checks: storage, CAS, counters,
//!   noreply, binary values, sizes, key limits, PooledClient threads, HashClient over two
//!   servers), and pymemcache's own integration suite (`pymemcache/test/test_integration.py`,
//!   shipped in the wheel) run against memcached and rivet-server: every test that passes
//!   against memcached must pass against rivet-server, except the known gaps listed in
//!   [`PYMEMCACHE_KNOWN_GAPS`].
//!
//! Peers: memcached and memccapable are looked up at their Debian paths; the Python
//! interpreter is `$RIVET_PYTHON`, else `python3` when it can `import pymemcache` (the suite
//! also needs pytest). A missing peer makes the test print a loud SKIPPED line and pass,
//! unless the environment variable `CI` is set, where it fails. Local setup:
//!
//! ```text
//! apt-get install -y memcached libmemcached-tools
//! python3 -m venv /tmp/mcvenv && /tmp/mcvenv/bin/pip install pymemcache pytest
//! RIVET_PYTHON=/tmp/mcvenv/bin/python cargo test -p rivet-server --test memcached_clients
//! ```

mod common;
mod mc_support;

use std::collections::BTreeSet;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{skip, RivetServer};
use mc_support::{Memcached, MEMCACHED_BIN};

/// Debian's memcached.
/// libmemcached-tools' protocol conformance tester.
const MEMCCAPABLE_BIN: &str = "/usr/bin/memccapable";

/// pymemcache integration tests that fail against rivet-server because of known, reported
/// differences from memcached (test name prefix, reason). They are still run; a known gap
/// that starts passing is reported, not failed.
/// (None today: `stats cachedump` and `cache_memlimit`, which made `test_misc` fail, are
/// answered as memcached answers them.)
const PYMEMCACHE_KNOWN_GAPS: &[(&str, &str)] = &[];

/// Sends `request` on a new connection and reads until `lines` reply lines arrived.
fn exchange(port: u16, request: &[u8], lines: usize) -> io::Result<Vec<String>> {
    let s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    (&s).write_all(request)?;
    let mut r = BufReader::new(s);
    let mut out = Vec::new();
    while out.len() < lines {
        let mut l = String::new();
        if r.read_line(&mut l)? == 0 {
            break;
        }
        out.push(l.trim_end_matches("\r\n").to_string());
    }
    Ok(out)
}

/// Sends `request` on a new connection and reads reply lines up to and including `last`.
fn exchange_until(port: u16, request: &[u8], last: &str) -> io::Result<Vec<String>> {
    let s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    (&s).write_all(request)?;
    let mut r = BufReader::new(s);
    let mut out = Vec::new();
    loop {
        let mut l = String::new();
        if r.read_line(&mut l)? == 0 {
            return Ok(out);
        }
        let l = l.trim_end_matches("\r\n").to_string();
        let done = l == last;
        out.push(l);
        if done {
            return Ok(out);
        }
    }
}

fn output_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs a command with a deadline; kills it (and fails) when it hangs.
fn run_with_timeout(mut cmd: Command, limit: Duration) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let mut so = child.stdout.take().expect("stdout pipe");
    let mut se = child.stderr.take().expect("stderr pipe");
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = so.read_to_end(&mut b);
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = se.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for the child") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let out = t_out.join().unwrap_or_default();
            let err = t_err.join().unwrap_or_default();
            panic!(
                "{what} still running after {limit:?} (killed)\n{}{}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    }
}

/// memccapable's verdicts by test name (`ascii set` -> `pass` / `FAIL` / `skip`).
fn memccapable(port: u16) -> (Vec<(String, String)>, String) {
    let mut cmd = Command::new(MEMCCAPABLE_BIN);
    cmd.args(["-a", "-t", "10", "-h", "127.0.0.1", "-p", &port.to_string()]);
    let out = run_with_timeout(cmd, Duration::from_secs(120));
    let text = output_text(&out);
    let mut verdicts = Vec::new();
    for line in text.lines() {
        let line = line.trim_end();
        for v in ["pass", "FAIL", "skip"] {
            if let Some(name) = line.strip_suffix(&format!("[{v}]")) {
                verdicts.push((name.trim().to_string(), v.to_string()));
            }
        }
    }
    (verdicts, text)
}

#[test]
fn memccapable_ascii_passes_what_memcached_passes() {
    const T: &str = "memccapable_ascii_passes_what_memcached_passes";
    if !Path::new(MEMCCAPABLE_BIN).exists() {
        return skip(
            T,
            &format!("{MEMCCAPABLE_BIN} not installed"),
            "apt-get install -y libmemcached-tools",
        );
    }
    let Some(reference) = Memcached::start(&[]) else {
        return skip(
            T,
            &format!("{MEMCACHED_BIN} not installed"),
            "apt-get install -y memcached",
        );
    };
    let (want, want_text) = memccapable(reference.port());
    drop(reference);
    let passed_ref: Vec<&String> = want
        .iter()
        .filter(|(_, v)| v == "pass")
        .map(|(n, _)| n)
        .collect();
    assert!(
        !passed_ref.is_empty(),
        "memccapable passed no test against memcached, nothing to compare:\n{want_text}"
    );

    let server = RivetServer::start(&["--memcached-port", "0"]);
    let (got, got_text) = memccapable(server.memcached_port());
    let mut missing = Vec::new();
    for name in &passed_ref {
        match got.iter().find(|(n, _)| n == *name) {
            Some((_, v)) if v == "pass" => {}
            Some((_, v)) => missing.push(format!("{name}: [{v}]")),
            None => missing.push(format!("{name}: not run")),
        }
    }
    assert!(
        missing.is_empty(),
        "memccapable tests that pass against memcached but not against rivet-server:\n{}\n\
         --- memccapable output against rivet-server:\n{got_text}\n--- server log:\n{}",
        missing.join("\n"),
        server.log()
    );
    println!(
        "memccapable -a: {} tests pass against memcached and rivet-server",
        passed_ref.len()
    );
}

/// The interpreter to run pymemcache with, or None (after the SKIPPED banner).
fn python_with_pymemcache(test: &str) -> Option<PathBuf> {
    common::python_with(test, "pymemcache", "pymemcache pytest")
}

fn script_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/pymemcache_check.py")
}

#[test]
fn pymemcache_check_script() {
    const T: &str = "pymemcache_check_script";
    let Some(py) = python_with_pymemcache(T) else {
        return;
    };
    let server = RivetServer::start(&["--memcached-port", "0"]);
    // The second server of the HashClient: another rivet-server on its own file.
    let other = RivetServer::start(&["--memcached-port", "0"]);
    let mut cmd = Command::new(&py);
    cmd.arg(script_path())
        .arg("--server")
        .arg(format!("127.0.0.1:{}", server.memcached_port()))
        .arg("--other")
        .arg(format!("127.0.0.1:{}", other.memcached_port()))
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let out = run_with_timeout(cmd, Duration::from_secs(300));
    let text = output_text(&out);
    assert!(
        out.status.success(),
        "pymemcache_check.py failed ({}):\n{text}\n--- server log:\n{}",
        out.status,
        server.log()
    );
    print!("{text}");
}

/// pytest's verdict per test id (`-rA` summary lines: `PASSED id`, `FAILED id - ...`).
fn pytest_verdicts(text: &str) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for line in text.lines() {
        for verdict in ["PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS"] {
            if let Some(rest) = line.strip_prefix(&format!("{verdict} ")) {
                let id = rest.split(" - ").next().unwrap_or(rest).trim();
                // Keep only the test part (`test_x[params]`) of `path::test_x[params]`.
                let id = id.rsplit("::").next().unwrap_or(id).to_string();
                v.push((id, verdict.to_string()));
            }
        }
    }
    v
}

/// Runs pymemcache's shipped integration tests against `port`; returns the verdicts and the
/// output.
fn pymemcache_suite(py: &Path, suite: &Path, port: u16) -> (Vec<(String, String)>, String) {
    let work = tempfile::tempdir().expect("temporary directory for pytest");
    let mut cmd = Command::new(py);
    cmd.current_dir(work.path())
        .args(["-m", "pytest", "-rA", "-q", "-p", "no:cacheprovider"])
        .args(["-W", "ignore::pytest.PytestUnknownMarkWarning"])
        .arg(suite)
        .args(["--server", "127.0.0.1", "--port", &port.to_string()])
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let out = run_with_timeout(cmd, Duration::from_secs(300));
    let text = output_text(&out);
    (pytest_verdicts(&text), text)
}

/// pymemcache's shipped `test_integration.py`, when the wheel has it and pytest is there.
fn pymemcache_suite_path(py: &Path, test: &str) -> Option<PathBuf> {
    let out = Command::new(py)
        .args([
            "-c",
            "import os, pymemcache.test, pytest; \
             print(os.path.join(os.path.dirname(pymemcache.test.__file__), 'test_integration.py'))",
        ])
        .output()
        .expect("run the Python interpreter");
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if out.status.success() && path.exists() {
        return Some(path);
    }
    skip(
        test,
        &format!(
            "pytest or pymemcache's test_integration.py not available to {}: {}",
            py.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        "pip install pymemcache pytest",
    );
    None
}

#[test]
fn pymemcache_integration_suite_passes_what_memcached_passes() {
    const T: &str = "pymemcache_integration_suite_passes_what_memcached_passes";
    let Some(py) = python_with_pymemcache(T) else {
        return;
    };
    let Some(suite) = pymemcache_suite_path(&py, T) else {
        return;
    };
    let Some(reference) = Memcached::start(&[]) else {
        return skip(
            T,
            &format!("{MEMCACHED_BIN} not installed"),
            "apt-get install -y memcached",
        );
    };
    let (want, want_text) = pymemcache_suite(&py, &suite, reference.port());
    drop(reference);
    let passed_ref: BTreeSet<&String> = want
        .iter()
        .filter(|(_, v)| v == "PASSED")
        .map(|(n, _)| n)
        .collect();
    assert!(
        passed_ref.len() >= 50,
        "only {} pymemcache integration tests passed against memcached:\n{want_text}",
        passed_ref.len()
    );

    let server = RivetServer::start(&["--memcached-port", "0"]);
    let (got, got_text) = pymemcache_suite(&py, &suite, server.memcached_port());
    let mut unexpected = Vec::new();
    let mut known = Vec::new();
    let mut gap_fixed = Vec::new();
    for name in &passed_ref {
        let verdict = got
            .iter()
            .find(|(n, _)| n == *name)
            .map_or("not run", |(_, v)| v.as_str());
        let gap = PYMEMCACHE_KNOWN_GAPS
            .iter()
            .find(|(prefix, _)| name.starts_with(prefix));
        match (verdict, gap) {
            ("PASSED", None) => {}
            ("PASSED", Some(_)) => gap_fixed.push(name.to_string()),
            (v, Some((_, why))) => known.push(format!("{name}: {v} (known gap: {why})")),
            (v, None) => unexpected.push(format!("{name}: {v}")),
        }
    }
    assert!(
        unexpected.is_empty(),
        "pymemcache integration tests that pass against memcached but not rivet-server:\n{}\n\
         --- pytest output against rivet-server:\n{got_text}",
        unexpected.join("\n")
    );
    println!(
        "pymemcache test_integration.py: {} pass against memcached; against rivet-server all \
         of them pass except {} known-gap failure(s)",
        passed_ref.len(),
        known.len()
    );
    for k in &known {
        println!("  known gap: {k}");
    }
    if !gap_fixed.is_empty() {
        let _ = writeln!(
            io::stderr(),
            "NOTE: known gaps now pass against rivet-server, remove them from \
             PYMEMCACHE_KNOWN_GAPS: {gap_fixed:?}"
        );
    }
}

/// Sends `request` to rivet-server and memcached and returns both replies (first `lines`
/// lines each).
fn both(mc: &Memcached, rivet: &RivetServer, request: &[u8], lines: usize) -> [Vec<String>; 2] {
    [
        exchange(mc.port(), request, lines).expect("memcached exchange"),
        exchange(rivet.memcached_port(), request, lines).expect("rivet-server exchange"),
    ]
}

/// memcached 1.6.18 answers `stats cachedump 1 1` with ITEM lines (just END when empty)
/// and `cache_memlimit 50` with OK (pymemcache's `test_misc` uses both); rivet-server must
/// answer the same. (Once a known gap; regression test.)
#[test]
fn stats_cachedump_and_cache_memlimit() {
    let Some(mc) = Memcached::start(&[]) else {
        return skip(
            "stats_cachedump_and_cache_memlimit",
            "memcached not installed",
            "apt-get install -y memcached",
        );
    };
    let rivet = RivetServer::start(&["--memcached-port", "0"]);
    let [m, r] = both(&mc, &rivet, b"stats cachedump 1 1\r\n", 1);
    assert_eq!(r, m, "stats cachedump 1 1 on an empty cache");
    let [m, r] = both(&mc, &rivet, b"cache_memlimit 50\r\n", 1);
    assert_eq!(r, m, "cache_memlimit 50");
}

/// memcached's `stats` has `total_items` (items stored since start); so does rivet-server's.
/// (Once a known gap; regression test.)
#[test]
fn stats_total_items() {
    let rivet = RivetServer::start(&["--memcached-port", "0"]);
    let lines = exchange_until(
        rivet.memcached_port(),
        b"set a 0 0 1\r\nx\r\nstats\r\n",
        "END",
    )
    .expect("stats");
    let stats: Vec<&String> = lines.iter().take_while(|l| *l != "END").collect();
    assert!(
        stats.iter().any(|l| l.as_str() == "STAT total_items 1"),
        "no `STAT total_items 1` after one set:\n{stats:?}"
    );
}
