//! `surgery`: meta validation, reverting the last commit, abandoning and rebuilding the
//! freelist, on copies (`--output`) and in place.

mod common;

use std::path::Path;

use common::*;
use rivet::{Db, Options};

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap()
}

fn info(db: &Path) -> serde_json::Value {
    json(&ok(&["info", "--json", p(db)]))
}

fn export(db: &Path) -> Vec<u8> {
    rivet(&["export", p(db)]).expect(0).stdout
}

/// A database with two commits; returns (dir, path, export after the first commit).
fn two_commits() -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Db::open(
        &path,
        Options {
            page_size: Some(4096),
            ..Options::default()
        },
    )
    .unwrap();
    db.update(|tx| {
        let b = tx.create_bucket(b"b")?;
        for i in 0..200u32 {
            b.put(format!("k{i:04}").as_bytes(), &[1u8; 50])?;
        }
        Ok::<_, rivet::Error>(())
    })
    .unwrap();
    drop(db);
    let first = export(&path);
    let db = Db::open(&path, Options::default()).unwrap();
    db.update(|tx| {
        let b = tx.bucket(b"b")?.unwrap();
        for i in 0..100u32 {
            b.delete(format!("k{i:04}").as_bytes())?;
        }
        tx.create_bucket(b"second")?.put(b"x", b"y")?;
        Ok::<_, rivet::Error>(())
    })
    .unwrap();
    (dir, path, first)
}

#[test]
fn meta_validate_reports_both_pages() {
    let (_d, db) = sample();
    let out = unchanged(&db, "validate", || {
        ok(&["surgery", "meta", "validate", p(&db)])
    });
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("meta page 0: valid (txid 2,"), "{out}");
    assert!(lines[1].starts_with("meta page 1: valid (txid 3,"), "{out}");
    assert_eq!(lines[2], "active: meta page 1 (txid 3)");
    // Break meta 1's checksum: exit 1, and meta 0 becomes the active one.
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[4096 + 16 + 56] ^= 0xff;
    std::fs::write(&db, &bytes).unwrap();
    let r = rivet(&["surgery", "meta", "validate", p(&db)]).expect(1);
    let out = r.out();
    assert!(
        out.contains("meta page 1: INVALID: meta checksum mismatch"),
        "{out}"
    );
    assert!(out.contains("active: meta page 0 (txid 2)"), "{out}");
    assert_eq!(info(&db)["txid"], 2);
    // Reverting needs two valid metas.
    let dir = tempfile::tempdir().unwrap();
    let outp = dir.path().join("out.db");
    rivet(&["surgery", "revert-meta", p(&db), "-o", p(&outp)]).expect_error("cannot revert");
    assert!(!outp.exists(), "a failed surgery left its copy");
}

#[test]
fn revert_meta_to_a_copy_and_in_place() {
    let (dir, db, first) = two_commits();
    let latest = export(&db);
    let out = dir.path().join("reverted.db");
    let r = unchanged(&db, "revert-meta --output", || {
        ok(&["surgery", "revert-meta", p(&db), "--output", p(&out)])
    });
    assert!(r.contains("the file now opens at txid 2"), "{r}");
    assert_eq!(info(&out)["txid"], 2);
    assert!(export(&out) == first);
    assert_eq!(ok(&["check", p(&out)]), "OK\n");
    // The reverted copy takes new writes.
    rivet(&["put", p(&out), "b", "new", "v"]).expect(0);
    assert_eq!(ok(&["check", p(&out)]), "OK\n");
    // Both metas now hold txid 2: nothing left to revert.
    let out2 = dir.path().join("again.db");
    let reverted_twice = dir.path().join("twice.db");
    std::fs::copy(&out, &out2).unwrap();
    ok(&["surgery", "revert-meta", p(&out2), "--in-place"]);
    rivet(&["surgery", "revert-meta", p(&out2), "-o", p(&reverted_twice)])
        .expect_error("no older commit");
    // In place.
    assert!(export(&db) == latest);
    ok(&["surgery", "revert-meta", p(&db), "--in-place"]);
    assert!(export(&db) == first);
    assert_eq!(ok(&["check", p(&db)]), "OK\n");
    // An existing --output is never overwritten.
    rivet(&["surgery", "revert-meta", p(&db), "-o", p(&out)]).expect_error("already exists");
}

#[test]
fn freelist_abandon_then_rebuild() {
    let (dir, db) = sample();
    let content = export(&db);
    let before = info(&db);
    let abandoned = dir.path().join("abandoned.db");
    let out = unchanged(&db, "abandon --output", || {
        ok(&[
            "surgery",
            "freelist",
            "abandon",
            p(&db),
            "--output",
            p(&abandoned),
        ])
    });
    assert!(out.contains("meta page 0 (txid 2): freelist page"), "{out}");
    assert!(out.contains("-> none"), "{out}");
    let i = info(&abandoned);
    assert_eq!(i["freelist"], "not-synced");
    assert_eq!(i["txid"], before["txid"]);
    assert_eq!(ok(&["check", p(&abandoned)]), "OK\n");
    assert!(export(&abandoned) == content);
    assert!(ok(&["page", p(&abandoned), "0"]).contains("Freelist:      none"));
    assert_eq!(
        ok(&["surgery", "meta", "validate", p(&abandoned)])
            .matches(": valid")
            .count(),
        2
    );

    let rebuilt = dir.path().join("rebuilt.db");
    let out = unchanged(&abandoned, "rebuild --output", || {
        ok(&[
            "surgery",
            "freelist",
            "rebuild",
            p(&abandoned),
            "--output",
            p(&rebuilt),
        ])
    });
    assert!(out.contains("freelist rebuilt from the tree"), "{out}");
    let i = info(&rebuilt);
    assert_eq!(i["freelist"], "synced");
    assert_eq!(ok(&["check", p(&rebuilt)]), "OK\n");
    assert!(export(&rebuilt) == content);

    // In place, on a synced file.
    ok(&["surgery", "freelist", "abandon", p(&db), "--in-place"]);
    assert_eq!(info(&db)["freelist"], "not-synced");
    ok(&["surgery", "freelist", "rebuild", p(&db), "--in-place"]);
    assert_eq!(info(&db)["freelist"], "synced");
    assert_eq!(ok(&["check", p(&db)]), "OK\n");
    assert!(export(&db) == content);
}

#[test]
fn freelist_rebuild_repairs_a_damaged_freelist() {
    let (dir, db) = sample();
    let content = export(&db);
    let i = info(&db);
    let fl = i["freelist_page"].as_u64().unwrap() as usize;
    let root = i["root_page"].as_u64().unwrap();
    // List the root page (in use) as free.
    let mut bytes = std::fs::read(&db).unwrap();
    let off = fl * 4096 + 16;
    bytes[off..off + 8].copy_from_slice(&root.to_le_bytes());
    std::fs::write(&db, &bytes).unwrap();
    let r = rivet(&["check", p(&db)]).expect(1);
    assert!(
        r.out().contains(&format!(
            "page {root}: page is reachable but listed in the freelist"
        )),
        "{}",
        r.out()
    );
    let fixed = dir.path().join("fixed.db");
    ok(&["surgery", "freelist", "rebuild", p(&db), "-o", p(&fixed)]);
    assert_eq!(ok(&["check", p(&fixed)]), "OK\n");
    assert!(export(&fixed) == content);
}

#[test]
fn freelist_rebuild_refuses_a_damaged_tree() {
    let (dir, db) = sample();
    let root = info(&db)["root_page"].as_u64().unwrap() as usize;
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[root * 4096 + 8] = 0x40;
    std::fs::write(&db, &bytes).unwrap();
    let out = dir.path().join("out.db");
    unchanged(&db, "refused rebuild", || {
        rivet(&["surgery", "freelist", "rebuild", p(&db), "--in-place"])
            .expect_error("the tree is damaged")
    });
    rivet(&["surgery", "freelist", "rebuild", p(&db), "-o", p(&out)])
        .expect_error("the tree is damaged");
    assert!(!out.exists());
}
