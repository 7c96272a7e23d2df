//! Damaged files never hang or lock users out (issue 12), through the `rivet` tool: a page
//! cycle makes `keys`, `export` and `compact` fail with an error naming the page instead of
//! running for ever; a file whose freelist pointers are both 0 (Go bbolt reads it) is read,
//! checked and repaired; a passed-over meta page is named by `check` and `info`.

mod common;

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use common::{p, rivet, Run};
use rivet::format::Meta;
use rivet::{Db, Error, Options};

const PS: usize = 4096;

fn opts() -> Options {
    Options {
        page_size: Some(PS),
        no_sync: true,
        ..Options::default()
    }
}

/// Runs `rivet ARGS` on another thread; fails the test after 60 s (an endless traversal).
fn rivet_within(args: &[&str]) -> Run {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (tx, rx) = mpsc::channel();
    let what = args.join(" ");
    std::thread::spawn(move || {
        let _ = tx.send(rivet(&args));
    });
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("rivet {what} did not finish within 60 s"))
}

fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// Fault 1's input: bucket `b` of 20,000 keys whose root branch's last child points back at
/// the root.
fn cyclic(path: &Path) {
    let root = {
        let db = Db::open(path, opts()).unwrap();
        db.update(|tx| {
            let b = tx.create_bucket(b"b")?;
            for i in 0..20_000u32 {
                b.put(format!("key{i:08}").as_bytes(), &[7u8; 100])?;
            }
            Ok::<_, Error>(())
        })
        .unwrap();
        let tx = db.begin_read().unwrap();
        tx.bucket(b"b").unwrap().unwrap().root_page()
    };
    let mut bytes = std::fs::read(path).unwrap();
    let o = root as usize * PS;
    assert_eq!(bytes[o + 8], 1, "root is a branch");
    let n = u16::from_le_bytes([bytes[o + 10], bytes[o + 11]]) as usize;
    put_u64(&mut bytes, o + 16 + (n - 1) * 16 + 8, root);
    std::fs::write(path, &bytes).unwrap();
}

#[test]
fn page_cycle_ends_keys_export_and_compact_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cycle.db");
    cyclic(&db);
    let dst = dir.path().join("dst.db");
    for args in [
        vec!["keys", p(&db), "b"],
        vec!["export", p(&db)],
        vec!["compact", p(&db), p(&dst)],
        vec!["stats", p(&db)],
    ] {
        let r = rivet_within(&args);
        assert_ne!(r.code, 0, "rivet {}: {}", args.join(" "), r.stderr);
        assert!(
            r.stderr.contains("page") && !r.stderr.contains("panicked"),
            "rivet {}: {}",
            args.join(" "),
            r.stderr
        );
    }
    let r = rivet_within(&["check", p(&db)]);
    assert_eq!(r.code, 1, "{}", r.out());
}

/// Rewrites meta page `i` with `f` applied, checksum recomputed.
fn patch_meta(bytes: &mut [u8], i: usize, f: impl FnOnce(&mut Meta)) {
    let page = &mut bytes[i * PS..(i + 1) * PS];
    let mut m = Meta::decode(page).unwrap();
    f(&mut m);
    let enc = m.encode_page();
    page[16..80].copy_from_slice(&enc[16..80]);
}

fn two_commits(path: &Path) {
    let db = Db::open(path, opts()).unwrap();
    db.update(|tx| {
        let b = tx.create_bucket(b"b")?;
        for i in 0..50u32 {
            b.put(format!("k{i:03}").as_bytes(), b"v")?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    db.update(|tx| tx.bucket(b"b")?.unwrap().put(b"last", b"commit"))
        .unwrap();
}

/// Fault 2's input: two commits, then both metas' freelist field set to 0.
#[test]
fn freelist_zero_is_read_checked_and_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fl0.db");
    two_commits(&db);
    let want = rivet(&["export", p(&db)]).expect(0).stdout;
    let mut bytes = std::fs::read(&db).unwrap();
    patch_meta(&mut bytes, 0, |m| m.freelist = 0);
    patch_meta(&mut bytes, 1, |m| m.freelist = 0);
    std::fs::write(&db, &bytes).unwrap();

    // Go bbolt 1.3.6 reads it (read-only); so do we, byte for byte the same dump.
    if let Some(peer) = common::peer() {
        assert_eq!(peer.dump(&db), want, "Go reads the damaged file");
    }
    assert_eq!(rivet(&["export", p(&db)]).expect(0).stdout, want);
    assert!(rivet(&["keys", p(&db), "b"])
        .expect(0)
        .out()
        .contains("last"));
    let check = rivet(&["check", p(&db)]).expect(1).out();
    assert!(check.contains("freelist unusable"), "{check}");
    assert!(check.contains("1 problem(s)"), "{check}");
    let info = rivet(&["info", p(&db)]).expect(0).out();
    assert!(info.contains("unusable"), "{info}");

    // Both repairs accept it.
    let abandoned = dir.path().join("abandoned.db");
    rivet(&[
        "surgery",
        "freelist",
        "abandon",
        p(&db),
        "--output",
        p(&abandoned),
    ])
    .expect(0);
    assert_eq!(rivet(&["check", p(&abandoned)]).expect(0).out(), "OK\n");
    let out = rivet(&["surgery", "freelist", "rebuild", p(&db), "--in-place"])
        .expect(0)
        .out();
    assert!(out.contains("freelist rebuilt"), "{out}");
    assert_eq!(rivet(&["check", p(&db)]).expect(0).out(), "OK\n");
    assert_eq!(rivet(&["export", p(&db)]).expect(0).stdout, want);
    if let Some(peer) = common::peer() {
        peer.check(&db, "after surgery freelist rebuild");
    }
}

/// A torn newest meta (checksum fails) is a note; a newest meta with a valid checksum that
/// points past the file is a problem.
#[test]
fn check_and_info_name_a_passed_over_meta() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    two_commits(&db);
    let clean = std::fs::read(&db).unwrap();
    let newest = 1; // txid 3

    let mut torn = clean.clone();
    torn[newest * PS + 16 + 60] ^= 0xFF;
    std::fs::write(&db, &torn).unwrap();
    let out = rivet(&["check", p(&db)]).expect(0).out();
    assert!(
        out.starts_with("note: meta page 1 (txid 3) passed over: meta checksum mismatch"),
        "{out}"
    );
    assert!(out.ends_with("OK\n"), "{out}");
    let info = rivet(&["info", p(&db)]).expect(0).out();
    assert!(
        info.contains("Note:") && info.contains("meta page 1"),
        "{info}"
    );

    let mut damaged = clean.clone();
    patch_meta(&mut damaged, newest, |m| m.pgid = 1 << 30);
    std::fs::write(&db, &damaged).unwrap();
    let out = rivet(&["check", p(&db)]).expect(1).out();
    assert!(out.contains("acknowledged commit is damaged"), "{out}");
    let info = rivet(&["info", p(&db)]).expect(0).out();
    assert!(
        info.contains("Problem:") && info.contains("meta page 1"),
        "{info}"
    );
}
