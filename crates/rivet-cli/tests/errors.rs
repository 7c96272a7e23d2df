//! Error paths: missing, empty, garbage, truncated, damaged and locked files, and bad usage.
//! Each must end with status 2 and one line naming the file and the cause; never a panic.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rivet::{Db, Options};

/// Every command that reads a database, as argument lists with `DB` standing for the path.
const READERS: &[&[&str]] = &[
    &["info", "DB"],
    &["info", "--json", "DB"],
    &["check", "DB"],
    &["check", "--json", "DB"],
    &["stats", "DB"],
    &["stats", "--json", "DB"],
    &["buckets", "DB"],
    &["keys", "DB", "widgets"],
    &["get", "DB", "widgets", "foo"],
    &["pages", "DB"],
    &["pages", "--json", "DB"],
    &["page", "DB", "0"],
    &["dump", "DB", "0"],
    &["export", "DB"],
    &["surgery", "meta", "validate", "DB"],
];

fn with_db<'a>(args: &[&'a str], db: &'a str) -> Vec<&'a str> {
    args.iter()
        .map(|a| if *a == "DB" { db } else { a })
        .collect()
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("missing.db");
    for args in READERS {
        rivet(&with_db(args, p(&db))).expect_error(&format!("{}: no such file", p(&db)));
    }
    // No command creates it by accident.
    let out = dir.path().join("out.db");
    for args in [
        vec!["delete", p(&db), "b", "k"],
        vec!["compact", p(&db), p(&out)],
        vec!["surgery", "revert-meta", p(&db), "--in-place"],
        vec![
            "surgery",
            "freelist",
            "rebuild",
            p(&db),
            "--output",
            p(&out),
        ],
        vec!["surgery", "freelist", "abandon", p(&db), "--in-place"],
    ] {
        rivet(&args).expect_error("no such file");
    }
    assert!(!db.exists() && !out.exists());
    rivet(&["import", p(&db), p(&dir.path().join("missing.jsonl"))])
        .expect_error("missing.jsonl: no such file");
}

#[test]
fn garbage_empty_truncated_and_directory() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.db");
    let mut x: u64 = 0x1234_5678;
    let bytes: Vec<u8> = (0..20_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&garbage, &bytes).unwrap();
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let tiny = dir.path().join("tiny.db");
    std::fs::write(&tiny, b"hello").unwrap();
    let (_d, sample) = sample();
    let truncated = dir.path().join("truncated.db");
    std::fs::write(&truncated, &std::fs::read(&sample).unwrap()[..6000]).unwrap();
    for (file, want) in [
        (&garbage, "not a bbolt file"),
        (&empty, "not a bbolt file: file is empty"),
        (&tiny, "not a bbolt file"),
        (&truncated, "truncated"),
    ] {
        for args in READERS {
            // The raw views work on any non-empty bytes (tests/raw.rs).
            let raw_view = matches!(args[0], "pages" | "page" | "dump" | "surgery");
            if raw_view && file != &empty {
                continue;
            }
            let r = unchanged(file, "a failed read", || rivet(&with_db(args, p(file))));
            r.expect_error(&format!("{}: {want}", p(file)));
        }
    }
    for args in READERS {
        rivet(&with_db(args, p(dir.path()))).expect_error("is a directory");
    }
    // Writers refuse garbage without touching it.
    let before = std::fs::read(&garbage).unwrap();
    rivet(&["put", p(&garbage), "b", "k", "v"]).expect_error("not a bbolt file");
    rivet(&["surgery", "freelist", "abandon", p(&garbage), "--in-place"])
        .expect_error("not a bbolt file");
    assert!(std::fs::read(&garbage).unwrap() == before);
}

#[test]
fn locked_file_fails_fast_with_timeout() {
    let (dir, db) = sample();
    // Hold the exclusive lock from this process, as a writer would.
    let holder = Db::open(&db, Options::default()).unwrap();
    let out = dir.path().join("out.db");
    let jsonl = dir.path().join("in.jsonl");
    std::fs::write(&jsonl, "{\"bucket\":[\"x\"]}\n").unwrap();
    let mut cmds: Vec<Vec<&str>> = READERS.iter().map(|a| with_db(a, p(&db))).collect();
    cmds.extend([
        vec!["put", p(&db), "b", "k", "v"],
        vec!["delete", p(&db), "widgets", "foo"],
        vec!["import", p(&db), p(&jsonl)],
        vec!["compact", p(&db), p(&out)],
        vec!["surgery", "revert-meta", p(&db), "--in-place"],
        vec![
            "surgery",
            "freelist",
            "abandon",
            p(&db),
            "--output",
            p(&out),
        ],
        vec!["surgery", "freelist", "rebuild", p(&db), "--in-place"],
    ]);
    for c in cmds {
        let mut args = c;
        args.extend(["--timeout", "100ms"]);
        let start = Instant::now();
        rivet(&args).expect_error(&format!("{}: locked by another process", p(&db)));
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "rivet {args:?} hung"
        );
        assert!(!out.exists(), "rivet {args:?} left {}", out.display());
    }
    // The default timeout (1 s) also fails rather than hangs.
    let start = Instant::now();
    rivet(&["info", p(&db)]).expect_error("locked by another process");
    assert!(start.elapsed() < Duration::from_secs(5));
    drop(holder);
    assert_eq!(ok(&["check", p(&db)]), "OK\n");
}

#[test]
fn usage_errors_exit_2() {
    let (_d, db) = sample();
    for args in [
        vec!["frobnicate"],
        vec!["info"],
        vec!["get", p(&db)],
        vec!["page", p(&db), "notanumber"],
        vec!["info", "--timeout", "soon", p(&db)],
        // `--timeout` belongs to the commands that open a database file (issue 13, kind 5).
        vec!["version", "--timeout", "1s"],
        vec!["bench", "--timeout", "1s"],
        vec!["import", p(&db), "--batch", "0"],
        vec!["surgery", "revert-meta", p(&db)],
        vec![
            "surgery",
            "revert-meta",
            p(&db),
            "--in-place",
            "--output",
            "x",
        ],
        vec!["keys", "--hex", "--raw", p(&db), "77"],
    ] {
        let r = rivet(&args).expect(2);
        assert!(
            r.stderr.contains("error:") || r.stderr.starts_with("rivet: "),
            "{}",
            r.stderr
        );
    }
}

/// Deterministic damage at many places of a file; every read command must exit 0, 1 or 2,
/// with a one-line message on failure, and never panic.
#[test]
fn damaged_files_never_panic() {
    let (dir, db) = sample();
    let original = std::fs::read(&db).unwrap();
    let pages = original.len() / 4096;
    let mut x: u64 = 42;
    let mut rnd = move || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        x >> 33
    };
    for round in 0..12 {
        let mut bytes = original.clone();
        // Damage a page header or element area of a random page (meta pages only now and then).
        let page = 2 + (rnd() as usize % (pages - 2));
        let target = if round % 6 == 5 { round % 2 } else { page };
        for _ in 0..6 {
            let off = target * 4096 + (rnd() as usize % 64);
            bytes[off] = rnd() as u8;
        }
        let file = dir.path().join(format!("damaged{round}.db"));
        std::fs::write(&file, &bytes).unwrap();
        for args in READERS {
            let r = rivet(&with_db(args, p(&file)));
            assert!(
                matches!(r.code, 0..=2),
                "rivet {:?} exited {} on damaged page {target}: {}",
                args,
                r.code,
                r.stderr
            );
            let code = r.code;
            if code == 2 {
                r.expect_error(p(&file));
            } else {
                r.expect(code);
            }
        }
    }
}
