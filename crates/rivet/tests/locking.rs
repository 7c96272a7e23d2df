//! Locking between processes, as bbolt does it with `flock`: a read-write open takes an
//! exclusive lock, a read-only open a shared one. A second read-write open (from another
//! process) waits, or fails with `Error::Timeout` when its timeout expires; several read-only
//! opens coexist; a read-write open waits for them; a killed holder releases its lock.
//!
//! The other process is this test binary re-run with `RIVET_CHILD_ROLE=lock ...`.

mod reliability_support;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use reliability_support::child::{role, self_command};
use rivet::{Db, Error, Options};

/// Child role: opens the database (`rw` or `ro`), prints `LOCKED`, holds it until stdin
/// closes.
#[test]
fn lock_child_role() {
    let Some(role) = role() else { return };
    let mut parts = role.splitn(3, ' ');
    if parts.next() != Some("lock") {
        return;
    }
    let read_only = parts.next() == Some("ro");
    let path = parts.next().unwrap();
    let db = Db::open(
        path,
        Options {
            read_only,
            timeout: Some(Duration::from_secs(30)),
            ..Options::default()
        },
    )
    .expect("child: open");
    println!("LOCKED");
    let mut line = String::new();
    while std::io::stdin()
        .read_line(&mut line)
        .map(|n| n > 0)
        .unwrap_or(false)
    {}
    drop(db);
}

/// A child process holding the database open.
struct Holder {
    child: Child,
    /// Kept open (and drained on release) so the child never writes into a closed pipe.
    out: BufReader<ChildStdout>,
}

impl Holder {
    fn start(path: &Path, read_only: bool) -> Holder {
        let mode = if read_only { "ro" } else { "rw" };
        let mut child = self_command(
            "lock_child_role",
            &format!("lock {mode} {}", path.display()),
        )
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn child");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while out.read_line(&mut line).unwrap_or(0) > 0 {
            if line.trim_end() == "LOCKED" {
                return Holder { child, out };
            }
            line.clear();
        }
        let status = child.wait();
        panic!("the child exited without taking the lock: {status:?}");
    }

    /// Closes the child's stdin so it drops the database and exits.
    fn release(mut self) {
        drop(self.child.stdin.take());
        let mut rest = String::new();
        let _ = self.out.read_to_string(&mut rest);
        assert!(self.child.wait().unwrap().success(), "child failed: {rest}");
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn opts(read_only: bool, timeout_ms: u64) -> Options {
    Options {
        read_only,
        timeout: Some(Duration::from_millis(timeout_ms)),
        ..Options::default()
    }
}

fn new_db(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("locked.db");
    let db = Db::open(&path, Options::default()).unwrap();
    db.update(|tx| tx.create_bucket(b"b")?.put(b"k", b"v"))
        .unwrap();
    path
}

fn expect_timeout(path: &Path, read_only: bool, timeout_ms: u64) {
    let start = Instant::now();
    match Db::open(path, opts(read_only, timeout_ms)) {
        Err(Error::Timeout(p)) => assert_eq!(p, path),
        Err(e) => panic!("expected Error::Timeout, got {e}"),
        Ok(_) => panic!("open (read_only={read_only}) must not get the lock"),
    }
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(timeout_ms),
        "gave up after {waited:?}, before the {timeout_ms} ms timeout"
    );
    assert!(
        waited < Duration::from_millis(timeout_ms + 2000),
        "waited {waited:?}"
    );
}

#[test]
fn second_writer_process_times_out() {
    if role().is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = new_db(dir.path());
    let holder = Holder::start(&path, false);
    expect_timeout(&path, false, 250);
    // A read-only open needs the shared lock, which the exclusive holder excludes too.
    expect_timeout(&path, true, 250);
    holder.release();
    let db = Db::open(&path, opts(false, 1000)).unwrap();
    assert!(db.check().unwrap().is_empty());
}

#[test]
fn writer_waits_until_the_other_process_closes() {
    if role().is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = new_db(dir.path());
    let holder = Holder::start(&path, false);
    let p = path.clone();
    let start = Instant::now();
    let waiter = std::thread::spawn(move || {
        let db = Db::open(&p, opts(false, 20_000)).expect("open after the holder left");
        db.update(|tx| tx.bucket(b"b")?.unwrap().put(b"k2", b"v2"))
            .unwrap();
        Instant::now()
    });
    std::thread::sleep(Duration::from_millis(400));
    assert!(!waiter.is_finished(), "the second writer did not wait");
    holder.release();
    let got_it = waiter.join().unwrap();
    assert!(got_it.duration_since(start) >= Duration::from_millis(400));
}

#[test]
fn readers_share_and_writers_wait_for_them() {
    if role().is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = new_db(dir.path());
    let r1 = Holder::start(&path, true);
    let r2 = Holder::start(&path, true);
    // Several read-only opens coexist, across processes and within this one.
    let start = Instant::now();
    let a = Db::open(&path, opts(true, 2000)).expect("read-only open beside readers");
    let b = Db::open(&path, opts(true, 2000)).expect("second read-only open");
    assert!(start.elapsed() < Duration::from_millis(1000));
    let v = a
        .view(|tx| Ok::<_, Error>(tx.bucket(b"b")?.unwrap().get(b"k")?.map(<[u8]>::to_vec)))
        .unwrap();
    assert_eq!(v.as_deref(), Some(&b"v"[..]));
    assert!(b.check().unwrap().is_empty());
    assert!(matches!(a.begin_write(), Err(Error::DatabaseReadOnly)));
    drop((a, b));
    // A writer waits for the readers (here: until its timeout).
    expect_timeout(&path, false, 250);
    r1.release();
    expect_timeout(&path, false, 250);
    r2.release();
    let db = Db::open(&path, opts(false, 1000)).expect("writer after the readers left");
    db.update(|tx| tx.bucket(b"b")?.unwrap().put(b"k", b"v3"))
        .unwrap();
}

#[test]
fn killed_holder_releases_the_lock() {
    if role().is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = new_db(dir.path());
    let mut holder = Holder::start(&path, false);
    expect_timeout(&path, false, 200);
    holder.child.kill().unwrap();
    holder.child.wait().unwrap();
    let db = Db::open(&path, opts(false, 2000)).expect("the kernel drops a killed holder's lock");
    assert!(db.check().unwrap().is_empty());
}
