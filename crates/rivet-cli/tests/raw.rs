//! Raw inspection works on any bytes (issue 13, kind 3): `pages`, `page`, `dump` and
//! `surgery meta validate` on truncated, zeroed and random files, overflow continuation
//! pages, and what the engine-backed commands say about such files.

mod common;

use common::{ok, p, rivet, sample};
use rivet::{Db, Options};

/// Deterministic pseudo-random bytes (xorshift).
fn random_bytes(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn truncated_file_is_reported_as_truncated_and_still_listed() {
    let (dir, db) = sample();
    let bytes = std::fs::read(&db).unwrap();
    let cut = dir.path().join("cut.db");
    // Meta page 0 and part of meta page 1: both describe more pages than remain.
    std::fs::write(&cut, &bytes[..6000]).unwrap();
    for cmd in ["info", "check", "keys"] {
        let mut args = vec![cmd, p(&cut)];
        if cmd == "keys" {
            args.push("widgets");
        }
        let r = rivet(&args).expect_error(&format!(
            "{}: truncated: the file holds 6000 bytes",
            p(&cut)
        ));
        assert!(!r.stderr.contains("not a bbolt file"), "{}", r.stderr);
    }
    let r = rivet(&["pages", p(&cut)]).expect(0);
    assert!(r.out().contains("0        meta"), "{}", r.out());
    assert!(r.stderr.contains("truncated"), "{}", r.stderr);
    let r = rivet(&["surgery", "meta", "validate", p(&cut)]).expect(1);
    assert!(
        r.out().contains("meta page 0: INVALID: truncated"),
        "{}",
        r.out()
    );
    assert!(
        r.out().contains("meta page 1: INVALID: truncated"),
        "{}",
        r.out()
    );

    // Cut off later: the page table stops at the last whole page.
    let cut2 = dir.path().join("cut2.db");
    let whole = bytes.len() / 4096;
    std::fs::write(&cut2, &bytes[..(whole - 2) * 4096 + 100]).unwrap();
    let r = rivet(&["pages", "--json", p(&cut2)]).expect(0);
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    let last = v["pages"].as_array().unwrap().last().unwrap()["id"]
        .as_u64()
        .unwrap();
    assert!(last < (whole - 2) as u64, "{}", r.out());
}

#[test]
fn zeroed_and_random_files_are_shown_page_by_page() {
    let dir = tempfile::tempdir().unwrap();
    let zero = dir.path().join("zero.db");
    std::fs::write(&zero, vec![0u8; 8192]).unwrap();
    let rnd = dir.path().join("random.db");
    std::fs::write(&rnd, random_bytes(20_000)).unwrap();

    let r = rivet(&["page", p(&zero), "0"]).expect(0);
    assert!(
        r.out().contains("Magic:         0x00000000 (wrong)"),
        "{}",
        r.out()
    );
    assert!(
        r.out().contains("Valid:         no: bad magic number"),
        "{}",
        r.out()
    );
    assert!(r.stderr.contains("assuming 4096 bytes"), "{}", r.stderr);

    let r = rivet(&["dump", p(&rnd), "0"]).expect(0);
    let out = r.out();
    assert!(
        out.starts_with("Page 0 (unknown, 1 page(s), offset 0x0, 4096 bytes)"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 2 + 4096 / 16, "one page of hex: {out}");

    let r = rivet(&["pages", p(&rnd)]).expect(0);
    assert_eq!(r.out().lines().count(), 2 + 4, "{}", r.out());

    // Each meta page is reported invalid; exit 1, not a failure to open.
    for f in [&zero, &rnd] {
        let r = rivet(&["surgery", "meta", "validate", p(f)]).expect(1);
        let out = r.out();
        assert!(
            out.contains("meta page 0: INVALID: bad magic number"),
            "{out}"
        );
        assert!(
            out.contains("meta page 1: INVALID: bad magic number"),
            "{out}"
        );
        assert!(out.contains("active: none"), "{out}");
    }
    // A file too short for the guessed page size still gets both meta pages reported.
    let tiny = dir.path().join("tiny.db");
    std::fs::write(&tiny, random_bytes(100)).unwrap();
    let out = ok(&["dump", p(&tiny), "0"]);
    assert!(
        out.starts_with("Page 0 (partial: the file ends 100 bytes into it, offset 0x0)"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 1 + 7 + 1, "{out}");
    // (After the warnings about the page size and the missing magic number.)
    let r = rivet(&["dump", p(&tiny), "1"]).expect(2);
    assert!(
        r.stderr
            .trim_end()
            .ends_with("page 1 is beyond the end of the file (100 bytes, 0 whole pages)"),
        "{}",
        r.stderr
    );
    let r = rivet(&["surgery", "meta", "validate", p(&tiny)]).expect(1);
    assert!(
        r.out()
            .contains("meta page 1: INVALID: the file ends at byte 100"),
        "{}",
        r.out()
    );

    // The engine's refusal says it once, without repeating itself.
    for f in [&zero, &rnd] {
        let r = rivet(&["info", p(f)]).expect_error(&format!(
            "{}: not a bbolt file: neither meta page has the bbolt magic number",
            p(f)
        ));
        assert_eq!(r.stderr.matches("bbolt").count(), 2, "{}", r.stderr);
    }
}

#[test]
fn overflow_continuation_page_names_its_run() {
    let (_dir, db) = sample();
    let r = rivet(&["pages", "--json", p(&db)]).expect(0);
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    let run = v["pages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["overflow"].as_u64().unwrap_or(0) >= 2)
        .expect("the sample holds an overflow run");
    let start = run["id"].as_u64().unwrap();
    let n = run["overflow"].as_u64().unwrap() + 1;
    let out = ok(&["page", p(&db), &(start + 2).to_string()]);
    assert!(
        out.contains(&format!(
            "Page type:     overflow (page 3 of {n} in the run of leaf page {start}; no header of its own)"
        )),
        "{out}"
    );
    assert!(!out.contains("Items:"), "{out}");
    let out = ok(&["dump", p(&db), &(start + 1).to_string()]);
    assert!(
        out.starts_with(&format!(
            "Page {} (overflow page 2 of {n} in the run of leaf page {start}, offset ",
            start + 1
        )),
        "{out}"
    );
}

#[test]
fn truncated_newer_commit_is_warned_about_when_the_older_one_opens() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("grown.db");
    {
        let d = Db::open(
            &db,
            Options {
                page_size: Some(4096),
                ..Options::default()
            },
        )
        .unwrap();
        d.update(|tx| tx.create_bucket(b"b").map(|_| ())).unwrap();
        d.update(|tx| {
            let b = tx.bucket(b"b")?.expect("b");
            for i in 0..2000u32 {
                b.put(format!("k{i:05}").as_bytes(), &[b'v'; 100])?;
            }
            Ok::<_, rivet::Error>(())
        })
        .unwrap();
    }
    // Keep the pages of the first commit only.
    let bytes = std::fs::read(&db).unwrap();
    std::fs::write(&db, &bytes[..8 * 4096]).unwrap();
    for cmd in ["info", "pages"] {
        let r = rivet(&[cmd, p(&db)]).expect(0);
        assert!(
            r.stderr.contains("truncated: the file holds 32768 bytes")
                && r.stderr.contains("using the older meta page"),
            "{cmd}: {}",
            r.stderr
        );
    }
}
