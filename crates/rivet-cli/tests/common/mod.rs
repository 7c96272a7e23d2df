//! Helpers shared by the CLI integration tests: running the real `rivet` binary, building
//! sample databases with the engine, checking that read commands change no byte, and the Go
//! bbolt peer (skipped loudly when Go is missing, unless `CI` is set).

#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rivet::{Db, Options};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_rivet");

/// The result of one run of the binary.
pub struct Run {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub args: String,
}

impl Run {
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn describe(&self) -> String {
        format!(
            "rivet {}\n  exit: {}\n  stdout: {}\n  stderr: {}",
            self.args,
            self.code,
            truncate(&self.out(), 3000),
            truncate(&self.stderr, 3000)
        )
    }

    /// Panics unless the exit status is `code`; returns self.
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code,
            code,
            "unexpected exit status\n{}",
            self.describe()
        );
        assert_no_panic(&self);
        self
    }

    /// Panics unless the run failed with status 2 and a one-line message containing `want`.
    pub fn expect_error(self, want: &str) -> Run {
        let r = self.expect(2);
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one line on stderr\n{}",
            r.describe()
        );
        assert!(
            lines[0].starts_with("rivet: ") && lines[0].contains(want),
            "stderr lacks {want:?}\n{}",
            r.describe()
        );
        r
    }
}

fn assert_no_panic(r: &Run) {
    for bad in [
        "panicked",
        "RUST_BACKTRACE",
        "internal error",
        "stack backtrace",
    ] {
        assert!(!r.stderr.contains(bad), "{bad} on stderr\n{}", r.describe());
    }
}

pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &s[..end], s.len())
}

/// Runs `rivet ARGS` with no stdin.
pub fn rivet<S: AsRef<OsStr>>(args: &[S]) -> Run {
    rivet_stdin(args, None)
}

/// Runs `rivet ARGS` feeding `stdin`.
pub fn rivet_stdin<S: AsRef<OsStr>>(args: &[S], stdin: Option<&[u8]>) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("RUST_BACKTRACE")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn rivet");
    if let Some(data) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        let data = data.to_vec();
        // Write from another thread so a large input cannot deadlock against stdout.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    let out: Output = child.wait_with_output().expect("wait for rivet");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        args: args
            .iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// Runs `rivet ARGS`, expects exit 0 and returns stdout as a string.
pub fn ok<S: AsRef<OsStr>>(args: &[S]) -> String {
    rivet(args).expect(0).out()
}

pub fn p(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// Runs `f` and asserts the file's bytes did not change.
pub fn unchanged<R>(path: &Path, what: &str, f: impl FnOnce() -> R) -> R {
    let before = std::fs::read(path).expect("read db");
    let r = f();
    let after = std::fs::read(path).expect("read db");
    assert!(before == after, "{what} changed {}", path.display());
    r
}

/// A database written by Rivet with nested, inline and paged buckets, binary keys, sequences,
/// an overflow value and free pages (several commits, some deletes).
pub fn sample_db(path: &Path) {
    let db = Db::open(
        path,
        Options {
            page_size: Some(4096),
            ..Options::default()
        },
    )
    .expect("create sample db");
    db.update(|tx| {
        let w = tx.create_bucket(b"widgets")?;
        w.put(b"foo", b"bar")?;
        w.put(b"tab", b"a\tb\nc")?;
        w.set_sequence(7)?;
        let parts = w.create_bucket(b"parts")?;
        parts.put(b"bolt", b"m6")?;
        parts.put(b"\xff\x00bin", b"\x01\x02\xfe")?;
        let many = tx.create_bucket(b"many")?;
        for i in 0..600u32 {
            many.put(
                format!("key{i:04}").as_bytes(),
                format!("value {i}").as_bytes(),
            )?;
        }
        tx.create_bucket(b"empty")?;
        let big = tx.create_bucket(b"big")?;
        big.put(b"blob", &vec![b'x'; 10_000])?;
        Ok::<_, rivet::Error>(())
    })
    .expect("fill sample db");
    db.update(|tx| {
        let many = tx.bucket(b"many")?.expect("many");
        for i in (0..600u32).step_by(3) {
            many.delete(format!("key{i:04}").as_bytes())?;
        }
        Ok::<_, rivet::Error>(())
    })
    .expect("delete from sample db");
}

/// A temporary directory holding a fresh sample database; returns (dir, db path).
pub fn sample() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sample.db");
    sample_db(&path);
    (dir, path)
}

// ------------------------------------------------------------------------------------------
// The Go peer (see tests/interop/README.md)

/// The Go peer, built once per test process (see [`rivet_testkit::go_peer`]): `None` after
/// a loud message when Go is missing and `CI` is unset.
pub fn peer() -> Option<Peer> {
    rivet_testkit::go_peer("rivet-cli").map(|bin| Peer { bin })
}

/// Gets the peer or returns from the test.
#[macro_export]
macro_rules! require_peer {
    () => {
        match common::peer() {
            Some(p) => p,
            None => return,
        }
    };
}

/// A handle on the peer binary.
pub struct Peer {
    bin: PathBuf,
}

impl Peer {
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running bboltpeer: {e}"))
    }

    pub fn run_ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "bboltpeer {}: {}\n{}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// `gen SCENARIO DB -page-size N [flags]`; returns the summary line.
    pub fn gen(&self, scenario: &str, db: &Path, page_size: usize, flags: &[&str]) -> String {
        let ps = page_size.to_string();
        let mut args = vec!["gen", scenario, p(db), "-page-size", &ps];
        args.extend_from_slice(flags);
        String::from_utf8(self.run_ok(&args)).expect("utf-8 summary")
    }

    /// Panics unless Go's `Check` is clean.
    pub fn check(&self, db: &Path, context: &str) {
        let out = self.run(&["check", p(db)]);
        assert!(
            out.status.success() && out.stdout == b"OK\n",
            "{context}: Go check of {} failed: {}\n{}",
            db.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn dump(&self, db: &Path) -> Vec<u8> {
        self.run_ok(&["dump", p(db)])
    }

    /// `stats DB`: per top-level bucket, the `Field=N` pairs.
    pub fn stats(&self, db: &Path) -> Vec<(String, Vec<(String, u64)>)> {
        let out = String::from_utf8(self.run_ok(&["stats", p(db)])).expect("utf-8");
        out.lines()
            .map(|l| {
                let (name, rest) = l.split_once('\t').expect("NAME<TAB>fields");
                let fields = rest
                    .split(' ')
                    .map(|f| {
                        let (k, v) = f.split_once('=').expect("Field=N");
                        (k.to_string(), v.parse().expect("number"))
                    })
                    .collect();
                (name.to_string(), fields)
            })
            .collect()
    }

    pub fn modify(&self, db: &Path) {
        self.run_ok(&["modify", p(db)]);
    }
}
