//! A failed fsync: the commands of that commit fail, nothing of them is acknowledged, and the
//! server refuses every later write (reads go on) until it is restarted, because the engine
//! cannot safely retry a failed fsync. Runs the server in-process on storage that injects
//! the failure.

mod common;

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{Conn, Frame};
use rivet::storage::{FileStorage, LockMode, Mapping, Storage};
use rivet_server::config::Config;
use rivet_server::listener::{self, Options};

/// File storage whose `fdatasync`/`fsync` fail while `fail` is set.
struct FailingSync {
    inner: FileStorage,
    fail: Arc<AtomicBool>,
}

impl FailingSync {
    fn check(&self) -> io::Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected fdatasync failure"));
        }
        Ok(())
    }
}

impl Storage for FailingSync {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn write_all_vectored_at(&self, bufs: &[&[u8]], offset: u64) -> io::Result<()> {
        self.inner.write_all_vectored_at(bufs, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.check()?;
        self.inner.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.check()?;
        self.inner.sync_all()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn map(&self, len: usize) -> io::Result<Arc<Mapping>> {
        self.inner.map(len)
    }
}

fn open(path: &Path, fail: Arc<AtomicBool>, opts: &Options) -> rivet::Db {
    let inner = FileStorage::open(
        path,
        false,
        true,
        LockMode {
            shared: false,
            timeout: Some(Duration::from_secs(1)),
        },
    )
    .expect("open the data file");
    rivet::Db::open_storage(
        path.to_path_buf(),
        Box::new(FailingSync { inner, fail }),
        listener::engine_options(opts),
    )
    .expect("open the engine")
}

fn info_persistence(c: &mut Conn) -> String {
    match c.cmd(&["INFO", "persistence"]) {
        Frame::Bulk(Some(b)) | Frame::Verbatim(_, b) => String::from_utf8_lossy(&b).to_string(),
        other => panic!("INFO answered {other}"),
    }
}

#[test]
fn a_failed_fsync_fails_its_commit_and_refuses_writes_until_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data.db");
    let opts = Options {
        bind: "127.0.0.1".into(),
        port: 0,
        db: path.clone(),
        no_sync: false,
        databases: 16,
        lock_timeout: Duration::from_secs(1),
        max_file_size: 0,
        no_freelist_sync: false,
        memcached_port: None,
        max_item_size: 1 << 20,
    };
    let fail = Arc::new(AtomicBool::new(false));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let db = open(&path, fail.clone(), &opts);
    let server = rt
        .block_on(listener::start_on(db, opts.clone(), Config::default()))
        .expect("server starts");
    let mut c = Conn::connect(server.addr().port());
    assert_eq!(c.cmd(&["SET", "a", "1"]), Frame::Simple("OK".into()));

    fail.store(true, Ordering::SeqCst);
    let e = c.cmd(&["SET", "b", "2"]);
    assert!(
        matches!(&e, Frame::Error(m) if m.starts_with("MISCONF")),
        "the write whose fsync failed must fail: {e}"
    );
    fail.store(false, Ordering::SeqCst);
    // Writes stay refused even though the disk "recovered"; reads go on.
    let e = c.cmd(&["SET", "c", "3"]);
    assert!(
        matches!(&e, Frame::Error(m) if m.starts_with("MISCONF")),
        "{e}"
    );
    let e = c.cmd(&["MULTI"]);
    assert_eq!(e, Frame::Simple("OK".into()));
    assert_eq!(c.cmd(&["INCR", "a"]), Frame::Simple("QUEUED".into()));
    let e = c.cmd(&["EXEC"]);
    assert!(
        matches!(&e, Frame::Error(m) if m.starts_with("MISCONF")),
        "{e}"
    );
    assert_eq!(c.cmd(&["GET", "a"]), Frame::bulk("1"));
    assert!(info_persistence(&mut c).contains("writes_refused:1"));
    drop(c);
    rt.block_on(server.shutdown(Duration::from_secs(5)));

    // After a restart the acknowledged write is there and the failed one is not.
    let db = open(&path, Arc::new(AtomicBool::new(false)), &opts);
    let server = rt
        .block_on(listener::start_on(db, opts, Config::default()))
        .expect("server restarts");
    let mut c = Conn::connect(server.addr().port());
    assert_eq!(c.cmd(&["GET", "a"]), Frame::bulk("1"));
    assert_eq!(c.cmd(&["EXISTS", "b", "c"]), Frame::Integer(0));
    assert_eq!(c.cmd(&["SET", "d", "4"]), Frame::Simple("OK".into()));
    drop(c);
    rt.block_on(server.shutdown(Duration::from_secs(5)));
}
