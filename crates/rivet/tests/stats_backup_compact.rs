//! Bucket statistics, hot backups and compaction, checked against the Go interop peer
//! (`tests/interop`) where it is available.
//!
//! Peer tests build `bboltpeer` with `tests/interop/build-peer.sh`. When the script exits 3
//! (no Go toolchain or bbolt sources) they are skipped with a message on stderr, unless the
//! `CI` environment variable is set, in which case they fail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use rivet::format::{Meta, PageHeader};
use rivet::{Bucket, Db, Error, Options, Tx};

// ---------------------------------------------------------------- helpers

fn opts(page_size: usize) -> Options {
    Options {
        page_size: Some(page_size),
        no_sync: true,
        ..Options::default()
    }
}

fn read_only() -> Options {
    Options {
        read_only: true,
        ..Options::default()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Every bucket (with its sequence) and every key/value, depth-first in key order.
fn scan(tx: &Tx) -> Vec<String> {
    fn walk(b: Bucket<'_>, path: &str, out: &mut Vec<String>) {
        for e in b.iter() {
            let e = e.unwrap();
            match e.value() {
                Some(v) => out.push(format!("{path} {}={}", hex(e.key()), hex(v))),
                None => {
                    let child = b.bucket(e.key()).unwrap().expect("bucket entry opens");
                    let p = format!("{path}/{}", hex(e.key()));
                    out.push(format!("{p} seq={}", child.sequence()));
                    walk(child, &p, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(tx.root(), "", &mut out);
    out
}

fn scan_db(db: &Db) -> Vec<String> {
    scan(&db.begin_read().unwrap())
}

/// bbolt's `BucketStats` line as the peer's `stats` prints it (without the name). A macro
/// so the tests do not depend on where the crate re-exports the stats type.
macro_rules! go_format {
    ($s:expr) => {{
        let s = $s;
        format!(
            "BranchPageN={} BranchOverflowN={} LeafPageN={} LeafOverflowN={} KeyN={} Depth={} \
             BranchAlloc={} BranchInuse={} LeafAlloc={} LeafInuse={} BucketN={} InlineBucketN={} \
             InlineBucketInuse={}",
            s.branch_page_n,
            s.branch_overflow_n,
            s.leaf_page_n,
            s.leaf_overflow_n,
            s.key_n,
            s.depth,
            s.branch_alloc,
            s.branch_inuse,
            s.leaf_alloc,
            s.leaf_inuse,
            s.bucket_n,
            s.inline_bucket_n,
            s.inline_bucket_inuse
        )
    }};
}

/// (name, stats) of every top-level bucket, in key order.
fn rivet_stats(tx: &Tx) -> Vec<(Vec<u8>, String)> {
    let mut out = Vec::new();
    for e in tx.root().iter() {
        let e = e.unwrap();
        if e.is_bucket() {
            let b = tx.bucket(e.key()).unwrap().unwrap();
            out.push((e.key().to_vec(), go_format!(b.stats().unwrap())));
        }
    }
    out
}

// ---------------------------------------------------------------- the Go peer

/// The peer binary, built once per test process; `None` (with a loud message) when Go or the
/// bbolt sources are missing and `CI` is unset.
fn peer() -> Option<&'static Path> {
    static PEER: OnceLock<Option<PathBuf>> = OnceLock::new();
    PEER.get_or_init(|| rivet_testkit::go_peer("stats-backup-compact"))
        .as_deref()
}

/// Runs the peer; panics unless it exits 0. Returns stdout.
fn run_peer(peer: &Path, args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    let mut cmd = Command::new(peer);
    for a in args {
        cmd.arg(a);
    }
    let out = cmd.output().expect("run bboltpeer");
    assert!(
        out.status.success(),
        "bboltpeer {:?} failed ({}):\nstdout: {}\nstderr: {}",
        cmd.get_args().collect::<Vec<_>>(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("peer output is UTF-8")
}

fn peer_check(peer: &Path, db: &Path) {
    assert_eq!(run_peer(peer, &[&"check", &db]).trim(), "OK");
}

/// The peer's `stats` output: (name as printed, stats) per top-level bucket.
fn peer_stats(peer: &Path, db: &Path) -> Vec<(String, String)> {
    run_peer(peer, &[&"stats", &db])
        .lines()
        .map(|l| {
            let (name, stats) = l.rsplit_once('\t').expect("NAME<TAB>stats");
            (name.to_string(), stats.to_string())
        })
        .collect()
}

/// Asserts Rivet's stats of every top-level bucket of `path` equal Go's.
fn assert_stats_match_go(peer: &Path, path: &Path) {
    let go = peer_stats(peer, path);
    let db = Db::open(path, read_only()).unwrap();
    let ours = rivet_stats(&db.begin_read().unwrap());
    assert_eq!(
        ours.len(),
        go.len(),
        "number of top-level buckets in {}",
        path.display()
    );
    for ((name, stats), (go_name, go_stats)) in ours.iter().zip(&go) {
        // The peer prints plain names raw and others in the dump encoding; compare the plain
        // ones (the order already pins the rest).
        if let Ok(s) = std::str::from_utf8(name) {
            if !s.chars().any(|c| c < ' ' || c == '\x7f') {
                assert_eq!(s, go_name, "bucket order in {}", path.display());
            }
        }
        assert_eq!(
            stats,
            go_stats,
            "stats of bucket {go_name:?} in {}",
            path.display()
        );
    }
}

fn gen(peer: &Path, dir: &Path, scenario: &str, page_size: usize) -> PathBuf {
    let path = dir.join(format!("{scenario}-{page_size}.db"));
    let ps = page_size.to_string();
    run_peer(peer, &[&"gen", &scenario, &path, &"-page-size", &ps]);
    path
}

/// A Rivet database exercising every stats case: deep nesting, inline and paged buckets,
/// overflow pages, branch levels, sequences, zero-length values, deletions.
fn build_varied(path: &Path, page_size: usize) -> Db {
    let db = Db::open(path, opts(page_size)).unwrap();
    db.update(|tx| {
        let w = tx.create_bucket(b"widgets")?;
        w.put(b"foo", b"bar")?;
        tx.create_bucket(b"empty")?;
        let many = tx.create_bucket(b"many")?;
        many.set_sequence(42)?;
        for i in 0..3000u32 {
            many.put(
                format!("key-{i:06}").as_bytes(),
                format!("value-{}", i * 7).as_bytes(),
            )?;
        }
        let big = tx.create_bucket(b"big")?;
        for i in 0..12u32 {
            big.put(
                format!("b{i:02}").as_bytes(),
                &vec![i as u8; 700 * (i as usize + 1)],
            )?;
        }
        big.put(b"huge", &vec![0xabu8; 70_000])?;
        big.put(b"zero", b"")?;
        // a/b/c/d: nesting with paged and inline levels.
        let a = tx.create_bucket(b"a")?;
        a.put(b"plain", b"x")?;
        let b = a.create_bucket(b"b")?;
        for i in 0..400u32 {
            b.put(format!("bk{i:04}").as_bytes(), &[b'y'; 40])?;
        }
        let c = b.create_bucket(b"c")?;
        c.set_sequence(u64::MAX)?;
        c.put(b"in", b"line")?;
        let d = c.create_bucket(b"d")?;
        d.put(b"deep", b"")?;
        for i in 0..30u32 {
            a.create_bucket(format!("inl-{i:02}").as_bytes())?
                .put(b"k", format!("{i}").as_bytes())?;
        }
        tx.create_bucket(b"\xff\x00bin")?.put(b"\x01", b"\x02")?;
        Ok::<_, Error>(())
    })
    .unwrap();
    // Deletions: merges, a paged bucket cut back to inline size, a removed bucket.
    db.update(|tx| {
        let many = tx.bucket(b"many")?.unwrap();
        for i in (0..3000u32).filter(|i| i % 5 != 0) {
            many.delete(format!("key-{i:06}").as_bytes())?;
        }
        let b = tx.bucket(b"a")?.unwrap().bucket(b"b")?.unwrap();
        for i in 3..400u32 {
            b.delete(format!("bk{i:04}").as_bytes())?;
        }
        tx.bucket(b"a")?.unwrap().delete_bucket(b"inl-07")?;
        Ok::<_, Error>(())
    })
    .unwrap();
    db
}

// ---------------------------------------------------------------- stats

#[test]
fn stats_of_inline_buckets_match_known_values() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("s.db"), opts(4096)).unwrap();
    db.update(|tx| {
        tx.create_bucket(b"widgets")?.put(b"foo", b"bar")?;
        tx.create_bucket(b"empty")?;
        Ok::<_, Error>(())
    })
    .unwrap();
    let tx = db.begin_read().unwrap();
    let got = rivet_stats(&tx);
    // Values printed by Go's peer for the same buckets (`gen basic`).
    assert_eq!(
        got[1].1,
        "BranchPageN=0 BranchOverflowN=0 LeafPageN=0 LeafOverflowN=0 KeyN=1 Depth=1 \
         BranchAlloc=0 BranchInuse=0 LeafAlloc=0 LeafInuse=0 BucketN=1 InlineBucketN=1 \
         InlineBucketInuse=38"
    );
    assert_eq!(
        got[0].1,
        "BranchPageN=0 BranchOverflowN=0 LeafPageN=0 LeafOverflowN=0 KeyN=0 Depth=1 \
         BranchAlloc=0 BranchInuse=0 LeafAlloc=0 LeafInuse=0 BucketN=1 InlineBucketN=1 \
         InlineBucketInuse=16"
    );
    // The root bucket: one paged leaf holding two bucket entries, plus both buckets.
    let root = tx.root().stats().unwrap();
    assert_eq!(root.bucket_n, 3);
    assert_eq!(root.inline_bucket_n, 2);
    assert_eq!(root.key_n, 3);
    assert_eq!(root.leaf_page_n, 1);
    assert_eq!(root.depth, 2);
    // add() sums counters and keeps the larger depth.
    let mut sum = root;
    sum.add(&tx.bucket(b"widgets").unwrap().unwrap().stats().unwrap());
    assert_eq!(sum.bucket_n, 4);
    assert_eq!(sum.key_n, 4);
    assert_eq!(sum.depth, 2);
}

#[test]
fn stats_of_deleted_bucket_and_closed_tx_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("s.db"), opts(4096)).unwrap();
    let tx = db.begin_write().unwrap();
    let b = tx.create_bucket(b"gone").unwrap();
    tx.delete_bucket(b"gone").unwrap();
    assert!(matches!(b.stats(), Err(Error::BucketNotFound)));
}

#[test]
fn stats_in_write_tx_equal_stats_after_commit() {
    let dir = tempfile::tempdir().unwrap();
    for ps in [1024, 4096] {
        let db = build_varied(&dir.path().join(format!("w{ps}.db")), ps);
        let tx = db.begin_write().unwrap();
        // Unchanged: the same as a read transaction sees.
        assert_eq!(rivet_stats(&tx), rivet_stats(&db.begin_read().unwrap()));
        let many = tx.bucket(b"many").unwrap().unwrap();
        for i in 0..2000u32 {
            many.put(format!("new-{i:05}").as_bytes(), &[b'n'; 30])
                .unwrap();
        }
        many.create_bucket(b"fresh")
            .unwrap()
            .put(b"k", b"v")
            .unwrap();
        let a = tx.bucket(b"a").unwrap().unwrap();
        let b = a.bucket(b"b").unwrap().unwrap();
        b.delete(b"bk0000").unwrap(); // small paged bucket becomes inline at commit
        a.bucket(b"inl-03")
            .unwrap()
            .unwrap()
            .put(&[b'g'; 600], &[b'h'; 600])
            .unwrap(); // grows out of inline
        tx.create_bucket(b"new-top")
            .unwrap()
            .put(b"x", &[1u8; 5000])
            .unwrap();
        tx.bucket(b"big").unwrap().unwrap().delete(b"huge").unwrap();
        let before = rivet_stats(&tx);
        let root_before = go_format!(tx.root().stats().unwrap());
        tx.commit().unwrap();
        let rtx = db.begin_read().unwrap();
        assert_eq!(rivet_stats(&rtx), before, "page size {ps}");
        assert_eq!(go_format!(rtx.root().stats().unwrap()), root_before);
        assert!(rtx.check().is_empty());
    }
}

#[test]
fn stats_on_corrupt_pages_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let ps = 4096usize;
    let (leaf_root, branch_root) = {
        let db = build_varied(&path, ps);
        let tx = db.begin_read().unwrap();
        let big = tx.bucket(b"big").unwrap().unwrap().root_page();
        let many = tx.bucket(b"many").unwrap().unwrap().root_page();
        (big, many)
    };
    let clean = std::fs::read(&path).unwrap();
    let stats_of = |bytes: &[u8], name: &[u8]| {
        std::fs::write(&path, bytes).unwrap();
        let db = Db::open(&path, read_only()).unwrap();
        let tx = db.begin_read().unwrap();
        let b = tx.bucket(name).unwrap().unwrap();
        b.stats().map(|_| ())
    };
    assert!(stats_of(&clean, b"many").is_ok());
    let page = |p: u64| p as usize * ps;
    assert_eq!(
        PageHeader::decode(&clean[page(branch_root)..], branch_root)
            .unwrap()
            .flags,
        1
    );

    // An element count far larger than the page.
    let mut bad = clean.clone();
    bad[page(branch_root) + 10..page(branch_root) + 12].copy_from_slice(&0xfff0u16.to_le_bytes());
    assert!(matches!(
        stats_of(&bad, b"many"),
        Err(Error::Corrupted { .. })
    ));

    // A branch child pointing back at the branch itself (a cycle).
    let mut bad = clean.clone();
    let e1 = page(branch_root) + 16 + 16 + 8;
    bad[e1..e1 + 8].copy_from_slice(&branch_root.to_le_bytes());
    assert!(matches!(
        stats_of(&bad, b"many"),
        Err(Error::Corrupted { .. })
    ));

    // A child page id beyond the high-water mark.
    let mut bad = clean.clone();
    bad[e1..e1 + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        stats_of(&bad, b"many"),
        Err(Error::Corrupted { .. })
    ));

    // A leaf element whose key/value runs past the page run.
    let mut bad = clean.clone();
    let last = page(leaf_root) + 16 + 16;
    bad[last + 12..last + 16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        stats_of(&bad, b"big"),
        Err(Error::Corrupted { .. })
    ));

    // A page with a meta flag inside the tree.
    let mut bad = clean.clone();
    bad[page(leaf_root) + 8..page(leaf_root) + 10].copy_from_slice(&4u16.to_le_bytes());
    assert!(matches!(
        stats_of(&bad, b"big"),
        Err(Error::Corrupted { .. })
    ));
}

#[test]
fn stats_match_go_on_go_files() {
    let Some(peer) = peer() else { return };
    let dir = tempfile::tempdir().unwrap();
    for (scenario, ps) in [
        ("nested", 4096),
        ("overflow", 4096),
        ("merge", 4096),
        ("nested", 1024),
        ("overflow", 1024),
        ("merge", 1024),
        ("all", 4096),
    ] {
        let path = gen(peer, dir.path(), scenario, ps);
        assert_stats_match_go(peer, &path);
    }
}

#[test]
fn stats_match_go_on_rivet_files() {
    let Some(peer) = peer() else { return };
    let dir = tempfile::tempdir().unwrap();
    for ps in [1024, 4096] {
        let path = dir.path().join(format!("r{ps}.db"));
        drop(build_varied(&path, ps));
        assert_stats_match_go(peer, &path);
    }
}

// ---------------------------------------------------------------- backup

/// Checks a backup's size and its two meta pages (ids 0/1, txids `txid`/`txid - 1`).
fn check_backup_metas(bytes: &[u8], ps: usize, txid: u64, hwm: u64) {
    assert_eq!(bytes.len() as u64, hwm * ps as u64);
    let m0 = Meta::decode(&bytes[..ps]).expect("meta 0 valid");
    let m1 = Meta::decode(&bytes[ps..2 * ps]).expect("meta 1 valid");
    assert_eq!(PageHeader::decode(&bytes[..ps], 0).unwrap().id, 0);
    assert_eq!(PageHeader::decode(&bytes[ps..], 1).unwrap().id, 1);
    assert_eq!(m0.txid, txid);
    assert_eq!(m1.txid, txid - 1);
    assert_eq!(m0.pgid, hwm);
    assert_eq!(Meta { txid, ..m1 }, m0);
}

#[test]
fn backup_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    for ps in [1024, 4096] {
        let db = build_varied(&dir.path().join(format!("src{ps}.db")), ps);
        let tx = db.begin_read().unwrap();
        let mut bytes = Vec::new();
        let n = tx.write_to(&mut bytes).unwrap();
        assert_eq!(n, tx.size());
        assert_eq!(n as usize, bytes.len());
        check_backup_metas(&bytes, ps, tx.id(), tx.meta().pgid);
        // Data pages are a verbatim copy of the source file.
        let src = std::fs::read(db.path()).unwrap();
        assert_eq!(&bytes[2 * ps..], &src[2 * ps..n as usize]);

        let out = dir.path().join(format!("copy{ps}.db"));
        assert_eq!(tx.copy_file(&out).unwrap(), n);
        assert_eq!(std::fs::read(&out).unwrap(), bytes);
        let copy = Db::open(&out, Options::default()).unwrap();
        assert!(copy.check().unwrap().is_empty());
        assert_eq!(scan_db(&copy), scan(&tx));
        // The copy accepts writes.
        copy.update(|t| t.create_bucket(b"after").map(|_| ()))
            .unwrap();
        assert!(copy.check().unwrap().is_empty());
    }
}

#[test]
fn backup_reflects_the_snapshot_while_a_writer_commits() {
    let dir = tempfile::tempdir().unwrap();
    let db = build_varied(&dir.path().join("live.db"), 1024);
    let tx = db.begin_read().unwrap();
    let snapshot = scan(&tx);
    let churn = |db: &Db, round: u32| {
        db.update(|w| {
            let many = w.bucket(b"many")?.unwrap();
            for i in 0..200u32 {
                let k = format!("key-{:06}", (i * 13 + round * 7) % 3000);
                if (i + round).is_multiple_of(3) {
                    many.delete(k.as_bytes())?;
                } else {
                    many.put(k.as_bytes(), &[round as u8; 90])?;
                }
            }
            w.bucket(b"a")?
                .unwrap()
                .bucket(b"b")?
                .unwrap()
                .put(b"r", &round.to_le_bytes())?;
            if round.is_multiple_of(4) {
                w.delete_bucket(b"big")?;
                w.create_bucket(b"big")?
                    .put(b"again", &vec![round as u8; 9000])?;
            }
            Ok::<_, Error>(())
        })
        .unwrap();
    };
    // Commits after the snapshot free and reuse pages (only pages the snapshot does not see).
    for round in 0..20 {
        churn(&db, round);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut round = 20;
            while !stop.load(Ordering::Relaxed) || round < 40 {
                churn(&db, round);
                round += 1;
            }
        })
    };
    let out = dir.path().join("backup.db");
    let mut sizes = Vec::new();
    for _ in 0..5 {
        sizes.push(tx.copy_file(&out).unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(sizes.iter().all(|&s| s == tx.size()));
    let bytes = std::fs::read(&out).unwrap();
    check_backup_metas(&bytes, 1024, tx.id(), tx.meta().pgid);
    let copy = Db::open(&out, read_only()).unwrap();
    assert!(copy.check().unwrap().is_empty());
    assert_eq!(scan_db(&copy), snapshot);
    assert_ne!(scan_db(&db), snapshot, "the writer did change the source");
}

#[test]
fn backup_in_write_tx_is_the_starting_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let db = build_varied(&dir.path().join("w.db"), 4096);
    let committed = scan_db(&db);
    let start = db.begin_read().unwrap().meta();
    let tx = db.begin_write().unwrap();
    tx.create_bucket(b"uncommitted")
        .unwrap()
        .put(b"k", b"v")
        .unwrap();
    tx.delete_bucket(b"many").unwrap();
    let mut bytes = Vec::new();
    let n = tx.write_to(&mut bytes).unwrap();
    assert_eq!(n, start.pgid * 4096);
    check_backup_metas(&bytes, 4096, start.txid, start.pgid);
    tx.commit().unwrap();
    let out = dir.path().join("w-backup.db");
    std::fs::write(&out, &bytes).unwrap();
    let copy = Db::open(&out, read_only()).unwrap();
    assert!(copy.check().unwrap().is_empty());
    assert_eq!(scan_db(&copy), committed);
}

#[test]
fn backup_of_fresh_database_and_failing_writer() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("fresh.db"), opts(4096)).unwrap();
    let tx = db.begin_read().unwrap();
    let mut bytes = Vec::new();
    assert_eq!(tx.write_to(&mut bytes).unwrap(), 4 * 4096);
    check_backup_metas(&bytes, 4096, 1, 4);

    struct Failing(usize);
    impl std::io::Write for Failing {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if self.0 < b.len() {
                return Err(std::io::Error::other("disk full"));
            }
            self.0 -= b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    for budget in [0, 4096, 8192] {
        assert!(matches!(
            tx.write_to(&mut Failing(budget)),
            Err(Error::Io { .. })
        ));
    }
}

#[test]
fn copy_file_refuses_the_database_itself() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("self.db");
    let db = build_varied(&path, 4096);
    let before = scan_db(&db);
    let tx = db.begin_read().unwrap();
    assert!(matches!(tx.copy_file(&path), Err(Error::InvalidOption(_))));
    let link = dir.path().join("link.db");
    std::fs::hard_link(&path, &link).unwrap();
    assert!(matches!(tx.copy_file(&link), Err(Error::InvalidOption(_))));
    drop(tx);
    assert_eq!(scan_db(&db), before);
    assert!(db.check().unwrap().is_empty());
}

#[test]
fn go_checks_rivet_backups_and_rivet_reads_go_backups() {
    let Some(peer) = peer() else { return };
    let dir = tempfile::tempdir().unwrap();

    // Rivet backup (taken while the source stays open read-write) -> Go check and dump.
    let src = dir.path().join("rivet-src.db");
    let db = build_varied(&src, 4096);
    let backup = dir.path().join("rivet-backup.db");
    db.begin_read().unwrap().copy_file(&backup).unwrap();
    let backup_in_tx = dir.path().join("rivet-backup-wtx.db");
    {
        let tx = db.begin_write().unwrap();
        tx.create_bucket(b"not-in-backup").unwrap();
        tx.copy_file(&backup_in_tx).unwrap();
    }
    drop(db);
    peer_check(peer, &backup);
    peer_check(peer, &backup_in_tx);
    let want = run_peer(peer, &[&"dump", &src]);
    assert_eq!(run_peer(peer, &[&"dump", &backup]), want);
    assert_eq!(run_peer(peer, &[&"dump", &backup_in_tx]), want);

    // Go backup -> Rivet; and Rivet's backup of the same file is byte-identical to Go's.
    let go_src = gen(peer, dir.path(), "all", 4096);
    let go_backup = dir.path().join("go-backup.db");
    run_peer(peer, &[&"backup", &go_src, &go_backup]);
    let src_db = Db::open(&go_src, read_only()).unwrap();
    let copy = Db::open(&go_backup, Options::default()).unwrap();
    assert!(copy.check().unwrap().is_empty());
    assert_eq!(scan_db(&copy), scan_db(&src_db));
    let mut ours = Vec::new();
    src_db.begin_read().unwrap().write_to(&mut ours).unwrap();
    let theirs = std::fs::read(&go_backup).unwrap();
    assert_eq!(ours.len(), theirs.len());
    assert!(
        ours == theirs,
        "Rivet's backup of a Go file differs from Go's backup"
    );
}

// ---------------------------------------------------------------- compact

/// A source whose file is much larger than its content: most keys deleted.
fn build_sparse(path: &Path) -> Db {
    let db = build_varied(path, 4096);
    db.update(|tx| {
        let bulk = tx.create_bucket(b"bulk")?;
        bulk.set_sequence(7)?;
        for i in 0..20_000u32 {
            bulk.put(format!("bulk-{i:07}").as_bytes(), &[b'v'; 100])?;
        }
        let nested = bulk.create_bucket(b"nested")?;
        nested.set_sequence(u64::MAX)?;
        for i in 0..2_000u32 {
            nested.put(&i.to_be_bytes(), &vec![i as u8; (i % 50) as usize])?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    db.update(|tx| {
        let bulk = tx.bucket(b"bulk")?.unwrap();
        for i in (0..20_000u32).filter(|i| i % 40 != 0) {
            bulk.delete(format!("bulk-{i:07}").as_bytes())?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    db
}

#[test]
fn compact_preserves_content_and_shrinks_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = build_sparse(&dir.path().join("src.db"));
    let want = scan_db(&src);
    let src_size = std::fs::metadata(src.path()).unwrap().len();
    let src_hwm = src.begin_read().unwrap().size();
    for max in [0u64, 1, 4096, 100_000] {
        let path = dir.path().join(format!("dst-{max}.db"));
        let dst = Db::open(&path, opts(4096)).unwrap();
        let stats = src.compact_into(&dst, max).unwrap();
        assert!(dst.check().unwrap().is_empty(), "tx_max_size {max}");
        assert_eq!(scan_db(&dst), want, "tx_max_size {max}");
        let n_keys = want
            .iter()
            .filter(|l| l.contains('=') && !l.contains(" seq="))
            .count();
        let n_buckets = want.iter().filter(|l| l.contains(" seq=")).count();
        assert_eq!(stats.keys as usize, n_keys);
        assert_eq!(stats.buckets as usize, n_buckets);
        match max {
            0 => assert_eq!(stats.commits, 1),
            1 => assert!(stats.commits as usize >= n_keys, "{stats:?}"),
            _ => {
                assert!(stats.commits > 1, "{stats:?}");
                assert!(stats.commits <= stats.bytes / max + 2, "{stats:?}");
            }
        }
        let dst_hwm = dst.begin_read().unwrap().size();
        drop(dst);
        let dst_size = std::fs::metadata(&path).unwrap().len();
        assert!(dst_hwm * 3 < src_hwm, "hwm {dst_hwm} vs {src_hwm}");
        assert!(dst_size < src_size, "file {dst_size} vs {src_size}");
    }
}

#[test]
fn compact_packs_pages_full() {
    let dir = tempfile::tempdir().unwrap();
    let src = Db::open(dir.path().join("src.db"), opts(4096)).unwrap();
    src.update(|tx| {
        let b = tx.create_bucket(b"seq")?.create_bucket(b"inner")?;
        // Shuffled order (7919 is coprime with 20,000): splits leave pages about half full.
        // (Ascending puts would already pack pages full, like append.)
        for i in 0..20_000u32 {
            b.put(&((i * 7919) % 20_000).to_be_bytes(), &[b'p'; 20])?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    let dst = Db::open(dir.path().join("dst.db"), opts(4096)).unwrap();
    src.compact_into(&dst, 64 * 1024).unwrap();
    let fill = |db: &Db| {
        let tx = db.begin_read().unwrap();
        let s = tx.bucket(b"seq").unwrap().unwrap().stats().unwrap();
        s.leaf_inuse as f64 / s.leaf_alloc as f64
    };
    let (before, after) = (fill(&src), fill(&dst));
    assert!(
        after > 0.95,
        "compacted leaves {after:.3} full (source {before:.3})"
    );
    assert!(after > before);
}

#[test]
fn compact_into_non_empty_destination_fails() {
    let dir = tempfile::tempdir().unwrap();
    let src = build_varied(&dir.path().join("src.db"), 4096);
    let dst = Db::open(dir.path().join("dst.db"), opts(4096)).unwrap();
    dst.update(|tx| tx.create_bucket(b"many").map(|_| ()))
        .unwrap();
    assert!(matches!(
        src.compact_into(&dst, 0),
        Err(Error::BucketExists)
    ));
    // Nothing of the failed transaction was committed.
    let tx = dst.begin_read().unwrap();
    assert!(tx.bucket(b"a").unwrap().is_none());
}

#[test]
fn go_checks_compacted_files() {
    let Some(peer) = peer() else { return };
    let dir = tempfile::tempdir().unwrap();
    // A Rivet source.
    let src_path = dir.path().join("src.db");
    let dst_path = dir.path().join("dst.db");
    {
        let src = build_sparse(&src_path);
        let dst = Db::open(&dst_path, opts(4096)).unwrap();
        src.compact_into(&dst, 50_000).unwrap();
    }
    peer_check(peer, &dst_path);
    assert_eq!(
        run_peer(peer, &[&"dump", &dst_path]),
        run_peer(peer, &[&"dump", &src_path])
    );
    assert_stats_match_go(peer, &dst_path);

    // A Go source (read-only), compacted with a 1 KiB page size.
    let go_src = gen(peer, dir.path(), "all", 4096);
    let go_dst = dir.path().join("go-dst.db");
    {
        let src = Db::open(&go_src, read_only()).unwrap();
        let dst = Db::open(&go_dst, opts(1024)).unwrap();
        src.compact_into(&dst, 0).unwrap();
    }
    peer_check(peer, &go_dst);
    assert_eq!(
        run_peer(peer, &[&"dump", &go_dst]),
        run_peer(peer, &[&"dump", &go_src])
    );
    assert!(
        std::fs::metadata(&go_dst).unwrap().len() * 10 < std::fs::metadata(&go_src).unwrap().len()
    );
}

// ---------------------------------------------------------------- compaction size (issue 12)

/// (high-water mark, file size, free pages) of the file at `path`.
fn size_of(path: &Path) -> (u64, u64, u64) {
    let db = Db::open(path, opts(4096)).unwrap();
    let hwm = db.begin_read().unwrap().meta().pgid;
    let s = db.stats();
    drop(db);
    (
        hwm,
        std::fs::metadata(path).unwrap().len(),
        s.free_page_n + s.pending_page_n,
    )
}

/// Issue 12 fault 4: a bucket holding one 8 MiB value followed by three 1-byte values,
/// compacted with the CLI's default `--tx-max-size` (64 KiB), doubled the file (high-water
/// mark 2055 -> 4109): the commit after the big value rewrote its leaf. The kind: a compacted
/// file is never larger than needed (no page rewritten by the copy's own transactions, no
/// growth padding past the high-water mark), whatever the commit size.
#[test]
fn compaction_never_doubles_or_pads_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let src_path = dir.path().join("src.db");
    let src = Db::open(&src_path, opts(4096)).unwrap();
    src.update(|tx| {
        let b = tx.create_bucket(b"b")?;
        b.put(b"a-big", &vec![0x5Au8; 8 << 20])?;
        for k in [&b"b"[..], b"c", b"d"] {
            b.put(k, b"x")?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    // A second shape: many small keys in nested buckets, cut by many commits.
    let src2_path = dir.path().join("src2.db");
    let src2 = Db::open(&src2_path, opts(4096)).unwrap();
    src2.update(|tx| {
        for t in 0..3u32 {
            let b = tx.create_bucket(format!("top{t}").as_bytes())?;
            for i in 0..30_000u32 {
                b.put(format!("key{i:08}").as_bytes(), &[t as u8; 40])?;
            }
            let n = b.create_bucket(b"nested")?;
            for i in 0..2000u32 {
                n.put(&i.to_be_bytes(), &vec![1u8; (i % 300) as usize])?;
            }
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    for (name, src) in [("big value", &src), ("many keys", &src2)] {
        for tx_max in [0u64, 4096, 65536, 1 << 20] {
            let dst_path = dir
                .path()
                .join(format!("dst-{}-{tx_max}.db", name.replace(' ', "-")));
            {
                let dst = Db::open(&dst_path, opts(4096)).unwrap();
                rivet::compact(&dst, src, tx_max).unwrap();
                assert!(dst.check().unwrap().is_empty());
            }
            let (hwm, len, free) = size_of(&dst_path);
            assert_eq!(len, hwm * 4096, "{name}, tx_max {tx_max}: no padding");
            // Free pages left: only what the last commit copied (the paths to the buckets it
            // touched, the previous freelist page); earlier copies are reused by later
            // commits. With one transaction: the first commit's freelist and root leaf.
            assert!(
                free <= 12,
                "{name}, tx_max {tx_max}: {free} free pages of {hwm}"
            );
            assert!(
                hwm <= src.begin_read().unwrap().meta().pgid + 12,
                "{name}, tx_max {tx_max}: hwm {hwm}"
            );
            if name == "big value" {
                // 2049 pages of value, the bucket's root, the root bucket, the freelist, metas.
                assert!(hwm <= 2049 + 10, "{name}, tx_max {tx_max}: hwm {hwm}");
            }
            if let Some(peer) = peer() {
                peer_check(peer, &dst_path);
            }
        }
    }
}

/// `Bucket::append` across many commits (what compaction does) leaves full clean pages alone
/// and starts new nodes beside them: the content matches a model, the file checks clean
/// (also in Go), and nothing but the last commit's copied path is left free.
#[test]
fn appends_across_commits_keep_full_pages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("append.db");
    let db = Db::open(&path, opts(1024)).unwrap();
    let mut model = std::collections::BTreeMap::new();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut rnd = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut next = 0u32;
    for _round in 0..300 {
        let tx = db.begin_write().unwrap();
        let b = tx.create_bucket_if_not_exists(b"b").unwrap();
        for _ in 0..1 + rnd(20) {
            next += 1 + rnd(3) as u32;
            let key = next.to_be_bytes();
            let len = match rnd(10) {
                0 => 1000 + rnd(5000) as usize, // overflow runs
                1 => 0,
                _ => rnd(200) as usize,
            };
            let value = vec![(next % 251) as u8; len];
            b.append(&key, &value).unwrap();
            model.insert(key.to_vec(), value);
        }
        tx.commit().unwrap();
    }
    db.view(|tx| {
        let b = tx.bucket(b"b")?.unwrap();
        let got: Vec<(Vec<u8>, Vec<u8>)> = b
            .iter()
            .map(|e| e.map(|e| (e.key().to_vec(), e.value().unwrap().to_vec())))
            .collect::<rivet::Result<_>>()?;
        let want: Vec<(Vec<u8>, Vec<u8>)> = model.clone().into_iter().collect();
        assert!(got == want, "content differs from the model");
        Ok::<_, Error>(())
    })
    .unwrap();
    assert!(db.check().unwrap().is_empty(), "{:?}", db.check());
    drop(db);
    if let Some(peer) = peer() {
        peer_check(peer, &path);
    }
}

/// `rivet::compact_file` (issue 12 item 8): compacts a file in place through
/// `FILE.compact-tmp`; a leftover temporary file from an earlier failed run is replaced; a
/// failed run leaves the original untouched and no temporary file; a file this process has
/// open is refused.
#[test]
fn compact_file_replaces_the_file_safely() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.db");
    {
        let db = Db::open(&path, opts(4096)).unwrap();
        db.update(|tx| {
            let b = tx.create_bucket(b"b")?;
            for i in 0..20_000u32 {
                b.put(&i.to_be_bytes(), &[9u8; 100])?;
            }
            b.set_sequence(77)?;
            Ok::<_, Error>(())
        })
        .unwrap();
        db.update(|tx| {
            let b = tx.bucket(b"b")?.unwrap();
            for i in 0..19_000u32 {
                assert!(b.delete(&i.to_be_bytes())?, "the key existed");
            }
            assert!(!b.delete(b"never there")?, "the key did not exist");
            Ok::<_, Error>(())
        })
        .unwrap();
    }
    let want = scan_db(&Db::open(&path, read_only()).unwrap());
    // A leftover from an earlier failed run is removed, not an error.
    let tmp = rivet::compact_tmp_path(&path);
    std::fs::write(&tmp, b"debris of an interrupted compaction").unwrap();
    let report = rivet::compact_file(&path, rivet::CompactOptions::default()).unwrap();
    assert!(!tmp.exists());
    assert!(
        report.after * 4 < report.before,
        "{} -> {}",
        report.before,
        report.after
    );
    assert_eq!(report.after, std::fs::metadata(&path).unwrap().len());
    assert_eq!(report.stats.keys, 1000);
    let db = Db::open(&path, read_only()).unwrap();
    assert_eq!(scan_db(&db), want);
    assert!(db.check().unwrap().is_empty());
    // Open in this process: refused, nothing touched.
    let before = std::fs::read(&path).unwrap();
    assert!(matches!(
        rivet::compact_file(&path, rivet::CompactOptions::default()),
        Err(Error::AlreadyOpen(_))
    ));
    drop(db);
    assert_eq!(std::fs::read(&path).unwrap(), before);
    if let Some(peer) = peer() {
        peer_check(peer, &path);
    }

    // A damaged source: the error comes back, the original stays, no temporary file.
    let root = {
        let db = Db::open(&path, read_only()).unwrap();
        let tx = db.begin_read().unwrap();
        tx.bucket(b"b").unwrap().unwrap().root_page()
    };
    let mut bytes = std::fs::read(&path).unwrap();
    let o = root as usize * 4096;
    assert_eq!(bytes[o + 8], 1, "root of b is a branch");
    let n = u16::from_le_bytes([bytes[o + 10], bytes[o + 11]]) as usize;
    bytes[o + 16 + (n - 1) * 16 + 8..o + 16 + (n - 1) * 16 + 16]
        .copy_from_slice(&root.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let r = rivet::compact_file(&path, rivet::CompactOptions::default());
    assert!(matches!(r, Err(Error::Corrupted { .. })), "{r:?}");
    assert!(!tmp.exists());
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}
