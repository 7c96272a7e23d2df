//! Damaged files never hang or lock users out (issue 12): each test builds its input with a few
//! byte patches of a fresh file and checks that every traversal ends with
//! `Error::Corrupted` (never a hang, never a panic) and that a damaged freelist never makes the
//! tree unreachable.
//!
//! Every traversal runs on a watchdog thread with a deadline, so a regression fails the test
//! instead of hanging CI.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use rivet::{Db, Error, Options};

const PS: usize = 4096;

fn tmp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.db");
    (dir, p)
}

fn opts() -> Options {
    Options {
        page_size: Some(PS),
        no_sync: true,
        ..Options::default()
    }
}

fn ro() -> Options {
    Options {
        read_only: true,
        ..opts()
    }
}

/// Runs `f` on its own thread; fails the test if it takes longer than 60 s (a hang).
fn within_deadline<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(v) => v,
        Err(_) => panic!("{what} did not finish within 60 s (endless traversal)"),
    }
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// Offset of the child pgid of branch element `i` of page `pg`.
fn branch_child_off(pg: u64, i: usize) -> usize {
    pg as usize * PS + 16 + i * 16 + 8
}

fn count(b: &[u8], pg: u64) -> usize {
    let o = pg as usize * PS;
    u16::from_le_bytes([b[o + 10], b[o + 11]]) as usize
}

fn is_branch(b: &[u8], pg: u64) -> bool {
    b[pg as usize * PS + 8] == 1
}

/// A bucket "b" of 20,000 keys (three levels: root branch, branches, leaves) plus a nested
/// bucket "b/sub" with a few keys. Returns the root page of "b".
fn build_big(p: &Path) -> u64 {
    let db = Db::open(p, opts()).unwrap();
    db.update(|tx| {
        let b = tx.create_bucket(b"b")?;
        for i in 0..20_000u32 {
            b.put(format!("key{i:08}").as_bytes(), &[7u8; 100])?;
        }
        let s = b.create_bucket(b"sub")?;
        for i in 0..500u32 {
            s.put(format!("s{i:05}").as_bytes(), &[1u8; 100])?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    let tx = db.begin_read().unwrap();
    tx.bucket(b"b").unwrap().unwrap().root_page()
}

fn is_corrupted<T: std::fmt::Debug>(what: &str, r: rivet::Result<T>) {
    match r {
        Err(Error::Corrupted { .. }) => {}
        other => panic!("{what}: expected Error::Corrupted, got {other:?}"),
    }
}

/// Every traversal of the damaged file at `p` ends with `Error::Corrupted`.
fn every_traversal_fails(p: &Path) {
    let path = p.to_path_buf();
    within_deadline("traversals", move || {
        let db = Db::open(&path, ro()).unwrap();
        let tx = db.begin_read().unwrap();
        let b = tx.bucket(b"b").unwrap().unwrap();
        is_corrupted(
            "iter",
            b.iter().collect::<rivet::Result<Vec<_>>>().map(|v| v.len()),
        );
        is_corrupted(
            "iter().rev()",
            b.iter()
                .rev()
                .collect::<rivet::Result<Vec<_>>>()
                .map(|v| v.len()),
        );
        let mut c = b.cursor();
        let walk = |c: &mut rivet::Cursor, fwd: bool| -> rivet::Result<usize> {
            let mut n = 0;
            let mut e = if fwd { c.first()? } else { c.last()? };
            while e.is_some() {
                n += 1;
                e = if fwd { c.next()? } else { c.prev()? };
            }
            Ok(n)
        };
        is_corrupted("cursor forward", walk(&mut c, true));
        is_corrupted("cursor backward", walk(&mut c, false));
        is_corrupted("stats", b.stats().map(|s| s.key_n));
        let mut out = Vec::new();
        is_corrupted("export", rivet::export::write_jsonl(&tx, &mut out));
        assert!(!tx.check().is_empty(), "check reports the damage");
        let dir = tempfile::tempdir().unwrap();
        let dst = Db::open(dir.path().join("dst.db"), opts()).unwrap();
        is_corrupted("compact", rivet::compact(&dst, &db, 0).map(|s| s.keys));
        is_corrupted("compact (small tx)", {
            let dst2 = Db::open(dir.path().join("dst2.db"), opts()).unwrap();
            rivet::compact(&dst2, &db, 4096).map(|s| s.keys)
        });
        drop(tx);
        drop(db);
        // A write transaction deleting the damaged bucket must end too.
        let db = Db::open(&path, opts()).unwrap();
        let tx = db.begin_write().unwrap();
        is_corrupted("delete_bucket", tx.delete_bucket(b"b"));
    });
}

/// Fault 1's input: the root branch's last child points back at the root.
#[test]
fn root_branch_last_child_points_to_root() {
    let (_d, p) = tmp();
    let root = build_big(&p);
    let mut bytes = std::fs::read(&p).unwrap();
    assert!(is_branch(&bytes, root));
    let n = count(&bytes, root);
    put_u64(&mut bytes, branch_child_off(root, n - 1), root);
    std::fs::write(&p, &bytes).unwrap();
    every_traversal_fails(&p);
}

/// A child branch whose last child points at its parent (the root).
#[test]
fn child_branch_points_to_parent() {
    let (_d, p) = tmp();
    let root = build_big(&p);
    let mut bytes = std::fs::read(&p).unwrap();
    let child = u64_at(&bytes, branch_child_off(root, 0));
    assert!(is_branch(&bytes, child), "the tree has three levels");
    let n = count(&bytes, child);
    put_u64(&mut bytes, branch_child_off(child, n - 1), root);
    std::fs::write(&p, &bytes).unwrap();
    every_traversal_fails(&p);
}

/// Every child of every branch points at the same branch: no cycle through an ancestor, but
/// a walk that does not notice shared pages takes (children)^(depth) steps.
#[test]
fn shared_children_are_refused() {
    let (_d, p) = tmp();
    let root = build_big(&p);
    let mut bytes = std::fs::read(&p).unwrap();
    let first = u64_at(&bytes, branch_child_off(root, 0));
    for i in 0..count(&bytes, root) {
        put_u64(&mut bytes, branch_child_off(root, i), first);
    }
    std::fs::write(&p, &bytes).unwrap();
    every_traversal_fails(&p);
}

/// A sub-bucket whose header names its parent bucket's root page: nesting without end.
#[test]
fn sub_bucket_pointing_at_its_parent() {
    let (_d, p) = tmp();
    let root = build_big(&p);
    let sub_root = {
        let db = Db::open(&p, ro()).unwrap();
        let tx = db.begin_read().unwrap();
        let b = tx.bucket(b"b").unwrap().unwrap();
        b.bucket(b"sub").unwrap().unwrap().root_page()
    };
    assert_ne!(sub_root, 0, "sub is not inline");
    let mut bytes = std::fs::read(&p).unwrap();
    // Find the bucket header (root pgid, sequence) naming sub_root inside a leaf of "b".
    let needle = sub_root.to_le_bytes();
    let hits: Vec<usize> = (0..bytes.len() - 8)
        .filter(|&i| bytes[i..i + 8] == needle && bytes[i + 8..i + 16] == [0u8; 8])
        .filter(|&i| i / PS != root as usize)
        .collect();
    assert!(!hits.is_empty());
    for h in hits {
        put_u64(&mut bytes, h, root);
    }
    std::fs::write(&p, &bytes).unwrap();
    let path = p.clone();
    within_deadline("nested traversals", move || {
        let db = Db::open(&path, ro()).unwrap();
        let tx = db.begin_read().unwrap();
        let mut out = Vec::new();
        is_corrupted("export", rivet::export::write_jsonl(&tx, &mut out));
        let b = tx.bucket(b"b").unwrap().unwrap();
        is_corrupted("stats", b.stats().map(|s| s.key_n));
        assert!(!tx.check().is_empty());
        let dir = tempfile::tempdir().unwrap();
        let dst = Db::open(dir.path().join("dst.db"), opts()).unwrap();
        is_corrupted("compact", rivet::compact(&dst, &db, 0).map(|s| s.keys));
        drop(tx);
        drop(db);
        let db = Db::open(&path, opts()).unwrap();
        let tx = db.begin_write().unwrap();
        is_corrupted("delete_bucket", tx.delete_bucket(b"b"));
    });
}

// ---------------------------------------------------------------------------------------
// Fault 2: a damaged freelist never makes the tree unreachable; passed-over metas are named.

use rivet::format::Meta;

/// Two commits of a few keys (txids 2 and 3: one in each meta page).
fn two_commits(p: &Path) {
    let db = Db::open(p, opts()).unwrap();
    db.update(|tx| {
        let b = tx.create_bucket(b"b")?;
        for i in 0..100u32 {
            b.put(format!("k{i:03}").as_bytes(), &[1u8; 200])?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    db.update(|tx| tx.bucket(b"b")?.unwrap().put(b"last", b"commit"))
        .unwrap();
}

/// Rewrites meta page `i` of `bytes` with `f` applied, checksum recomputed.
fn patch_meta(bytes: &mut [u8], i: usize, f: impl FnOnce(&mut Meta)) {
    let page = &mut bytes[i * PS..(i + 1) * PS];
    let mut m = Meta::decode(page).unwrap();
    f(&mut m);
    let enc = m.encode_page();
    page[16..16 + 64].copy_from_slice(&enc[16..16 + 64]);
}

fn newest_meta(bytes: &[u8]) -> usize {
    let t = |i: usize| Meta::decode(&bytes[i * PS..(i + 1) * PS]).unwrap().txid;
    if t(1) > t(0) {
        1
    } else {
        0
    }
}

fn read_all(db: &Db) -> Vec<(Vec<u8>, Vec<u8>)> {
    db.view(|tx| {
        let b = tx.bucket(b"b")?.expect("bucket b");
        b.iter()
            .map(|e| e.map(|e| (e.key().to_vec(), e.value().unwrap().to_vec())))
            .collect::<rivet::Result<Vec<_>>>()
    })
    .unwrap()
}

/// Fault 2's input: both metas' freelist field set to 0, checksums recomputed, tree intact.
#[test]
fn freelist_pointer_zero_in_both_metas() {
    let (_d, p) = tmp();
    two_commits(&p);
    let want = read_all(&Db::open(&p, ro()).unwrap());
    let mut bytes = std::fs::read(&p).unwrap();
    patch_meta(&mut bytes, 0, |m| m.freelist = 0);
    patch_meta(&mut bytes, 1, |m| m.freelist = 0);
    std::fs::write(&p, &bytes).unwrap();

    // Read-only: the data is there, and check names the damaged freelist (once).
    {
        let db = Db::open(&p, ro()).unwrap();
        assert_eq!(read_all(&db), want);
        assert_eq!(db.meta_choice().txid, 3, "the newest meta is used");
        assert!(db.meta_choice().passed_over.is_none());
        let problems = db.check().unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].page, Some(0));
        assert!(
            problems[0].message.contains("freelist unusable"),
            "{problems:?}"
        );
    }
    // Read-write: the freelist is rebuilt from the tree and stored again; nothing is lost.
    {
        let db = Db::open(&p, opts()).unwrap();
        let why = db
            .freelist_rebuilt()
            .expect("the open says the freelist was rebuilt");
        assert!(why.contains("page 0"), "{why}");
        assert_eq!(read_all(&db), want);
        assert!(db.check().unwrap().is_empty(), "{:?}", db.check());
        db.update(|tx| tx.bucket(b"b")?.unwrap().put(b"more", b"data"))
            .unwrap();
        assert!(db.check().unwrap().is_empty());
    }
    let db = Db::open(&p, opts()).unwrap();
    assert!(
        db.freelist_rebuilt().is_none(),
        "the stored freelist is good again"
    );
    assert!(db.check().unwrap().is_empty());
}

/// The kind: a freelist pointer past the file, a pointer at a leaf, and a freelist listing
/// pages outside the file or in use: the tree stays readable and writable.
#[test]
fn damaged_freelists_never_hide_the_tree() {
    let (_d, p) = tmp();
    two_commits(&p);
    let clean = std::fs::read(&p).unwrap();
    let want = read_all(&Db::open(&p, ro()).unwrap());
    let newest = newest_meta(&clean);
    let m = Meta::decode(&clean[newest * PS..]).unwrap();
    let leaf = {
        let db = Db::open(&p, ro()).unwrap();
        let tx = db.begin_read().unwrap();
        tx.bucket(b"b").unwrap().unwrap().root_page()
    };
    let fl = m.freelist as usize * PS;
    type Patch<'a> = Box<dyn Fn(&mut Vec<u8>) + 'a>;
    let cases: Vec<(&str, Patch)> = vec![
        (
            "pointer past the file",
            Box::new(move |b: &mut Vec<u8>| patch_meta(b, newest, |m| m.freelist = 1 << 40)),
        ),
        (
            "pointer at a tree page",
            Box::new(move |b: &mut Vec<u8>| patch_meta(b, newest, |m| m.freelist = leaf)),
        ),
        (
            "ids outside the file",
            Box::new(move |b: &mut Vec<u8>| {
                b[fl + 10..fl + 12].copy_from_slice(&1u16.to_le_bytes());
                b[fl + 16..fl + 24].copy_from_slice(&(1u64 << 33).to_le_bytes());
            }),
        ),
        (
            "ids naming the root page",
            Box::new(move |b: &mut Vec<u8>| {
                b[fl + 10..fl + 12].copy_from_slice(&1u16.to_le_bytes());
                b[fl + 16..fl + 24].copy_from_slice(&m.root.to_le_bytes());
            }),
        ),
    ];
    for (what, patch) in cases {
        let mut bytes = clean.clone();
        patch(&mut bytes);
        std::fs::write(&p, &bytes).unwrap();
        {
            let db = Db::open(&p, ro()).unwrap_or_else(|e| panic!("{what}: read-only open: {e}"));
            assert_eq!(read_all(&db), want, "{what}");
            assert!(!db.check().unwrap().is_empty(), "{what}: check reports it");
        }
        let db = Db::open(&p, opts()).unwrap_or_else(|e| panic!("{what}: open: {e}"));
        assert!(db.freelist_rebuilt().is_some(), "{what}");
        assert_eq!(read_all(&db), want, "{what}");
        db.update(|tx| tx.bucket(b"b")?.unwrap().put(b"zz", b"after"))
            .unwrap();
        assert!(db.check().unwrap().is_empty(), "{what}: {:?}", db.check());
    }
}

/// A newest meta whose checksum fails (a crash during its commit) is a note: the open uses
/// the older one, says why, and check finds nothing wrong.
#[test]
fn torn_newest_meta_is_a_note() {
    let (_d, p) = tmp();
    two_commits(&p);
    let mut bytes = std::fs::read(&p).unwrap();
    let newest = newest_meta(&bytes);
    bytes[newest * PS + 16 + 60] ^= 0xFF; // inside the checksum
    std::fs::write(&p, &bytes).unwrap();
    let db = Db::open(&p, ro()).unwrap();
    let c = db.meta_choice();
    assert_eq!(c.page, 1 - newest as u64);
    assert_eq!(c.txid, 2);
    let po = c
        .passed_over
        .as_ref()
        .expect("the newest meta was passed over");
    assert_eq!(po.page, newest as u64);
    assert!(!po.damaged_commit);
    assert!(po.reason.contains("checksum"), "{po}");
    assert!(db.check().unwrap().is_empty(), "{:?}", db.check());
}

/// A newest meta with a valid checksum that points past the file or past its own high-water
/// mark: an acknowledged commit is damaged, which check reports as a problem.
#[test]
fn unusable_newest_meta_with_valid_checksum_is_a_problem() {
    let (_d, p) = tmp();
    two_commits(&p);
    let clean = std::fs::read(&p).unwrap();
    let newest = newest_meta(&clean);
    for (what, f) in [
        (
            "hwm past the file",
            Box::new(|m: &mut Meta| m.pgid = 1 << 30) as Box<dyn Fn(&mut Meta)>,
        ),
        (
            "root past the high-water mark",
            Box::new(|m: &mut Meta| m.root = m.pgid + 1),
        ),
    ] {
        let mut bytes = clean.clone();
        patch_meta(&mut bytes, newest, f);
        std::fs::write(&p, &bytes).unwrap();
        let db = Db::open(&p, ro()).unwrap();
        let po = db.meta_choice().passed_over.clone().expect(what);
        assert!(po.damaged_commit, "{what}: {po}");
        let problems = db.check().unwrap();
        assert!(
            problems
                .iter()
                .any(|x| x.message.contains("acknowledged commit is damaged")),
            "{what}: {problems:?}"
        );
    }
}

/// An older meta with a valid checksum that cannot be used is named but is no problem: the
/// newest commit is intact.
#[test]
fn unusable_older_meta_is_a_note() {
    let (_d, p) = tmp();
    two_commits(&p);
    let mut bytes = std::fs::read(&p).unwrap();
    let older = 1 - newest_meta(&bytes);
    patch_meta(&mut bytes, older, |m| m.pgid = 1 << 30);
    std::fs::write(&p, &bytes).unwrap();
    let db = Db::open(&p, ro()).unwrap();
    let po = db.meta_choice().passed_over.clone().expect("named");
    assert_eq!(po.page, older as u64);
    assert!(po.checksum_valid && !po.damaged_commit, "{po}");
    assert!(po.to_string().contains("older commit"), "{po}");
    assert!(db.check().unwrap().is_empty());
    assert_eq!(db.meta_choice().txid, 3);
}

/// Many sub-bucket entries pointing at one page, level after level, would make a nested walk
/// take (entries)^(levels) steps without any cycle: the second bucket opened on a page that
/// is already a bucket's root is refused.
#[test]
fn buckets_sharing_a_root_page_are_refused() {
    let (_d, p) = tmp();
    let roots: Vec<u64> = {
        let db = Db::open(&p, opts()).unwrap();
        db.update(|tx| {
            let b = tx.create_bucket(b"b")?;
            for s in 0..20u32 {
                let sub = b.create_bucket(format!("s{s:02}").as_bytes())?;
                for i in 0..100u32 {
                    sub.put(&i.to_be_bytes(), &[3u8; 40])?;
                }
            }
            Ok::<_, Error>(())
        })
        .unwrap();
        let tx = db.begin_read().unwrap();
        let b = tx.bucket(b"b").unwrap().unwrap();
        (0..20u32)
            .map(|s| {
                b.bucket(format!("s{s:02}").as_bytes())
                    .unwrap()
                    .unwrap()
                    .root_page()
            })
            .collect()
    };
    assert!(roots.iter().all(|&r| r != 0), "sub-buckets have pages");
    let mut bytes = std::fs::read(&p).unwrap();
    for &r in &roots[1..] {
        let needle = r.to_le_bytes();
        let at: Vec<usize> = (0..bytes.len() - 16)
            .filter(|&i| bytes[i..i + 8] == needle && bytes[i + 8..i + 16] == [0u8; 8])
            .filter(|&i| i / PS != r as usize)
            .collect();
        assert_eq!(at.len(), 1, "one bucket header names page {r}");
        put_u64(&mut bytes, at[0], roots[0]);
    }
    std::fs::write(&p, &bytes).unwrap();
    let path = p.clone();
    within_deadline("shared bucket roots", move || {
        let db = Db::open(&path, ro()).unwrap();
        let tx = db.begin_read().unwrap();
        let b = tx.bucket(b"b").unwrap().unwrap();
        assert!(b.bucket(b"s00").unwrap().is_some());
        is_corrupted("second bucket on one page", b.bucket(b"s01"));
        drop(tx);
        let tx = db.begin_read().unwrap();
        let mut out = Vec::new();
        is_corrupted("export", rivet::export::write_jsonl(&tx, &mut out));
        assert!(!tx.check().is_empty());
    });
}
