//! Every subcommand on Rivet-written files, driven through the real binary: output, exit
//! status, `--json`, `--hex`/`--raw`, help texts, and that read commands change no byte.

mod common;

use common::*;
use rivet::{Db, Options};

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("invalid JSON ({e}): {s}"))
}

#[test]
fn help_of_every_subcommand_has_an_example() {
    let cmds: &[&[&str]] = &[
        &[],
        &["info"],
        &["check"],
        &["stats"],
        &["buckets"],
        &["keys"],
        &["get"],
        &["put"],
        &["delete"],
        &["pages"],
        &["page"],
        &["dump"],
        &["export"],
        &["import"],
        &["compact"],
        &["bench"],
        &["surgery"],
        &["surgery", "revert-meta"],
        &["surgery", "freelist"],
        &["surgery", "freelist", "rebuild"],
        &["surgery", "freelist", "abandon"],
        &["surgery", "meta"],
        &["surgery", "meta", "validate"],
        &["version"],
    ];
    for c in cmds {
        let mut args: Vec<&str> = c.to_vec();
        args.push("--help");
        let out = ok(&args);
        assert!(
            out.contains("Example"),
            "rivet {} --help has no example:\n{out}",
            c.join(" ")
        );
    }
}

#[test]
fn version() {
    let out = ok(&["version"]);
    assert!(out.starts_with("rivet 0."), "{out}");
    assert!(out.contains("bbolt file format v2"), "{out}");
    // The conventional flags too (issue 13, kind 5).
    for flag in ["--version", "-V"] {
        let v = ok(&[flag]);
        assert!(v.starts_with("rivet 0."), "{flag}: {v}");
    }
}

#[test]
fn info_text_and_json() {
    let (_d, db) = sample();
    let out = unchanged(&db, "info", || ok(&["info", p(&db)]));
    assert!(out.contains("Page size:        4096"), "{out}");
    assert!(out.contains("Txid:             3"), "{out}");
    assert!(out.contains("Freelist:         synced (page"), "{out}");
    let j = json(&unchanged(&db, "info --json", || {
        ok(&["info", "--json", p(&db)])
    }));
    assert_eq!(j["page_size"], 4096);
    assert_eq!(j["txid"], 3);
    assert_eq!(j["freelist"], "synced");
    assert_eq!(j["pending_pages"], 0);
    let size = std::fs::metadata(&db).unwrap().len();
    assert_eq!(j["file_size"], size);
    let tx_db = Db::open(
        &db,
        Options {
            read_only: true,
            ..Options::default()
        },
    )
    .unwrap();
    let meta = tx_db.begin_read().unwrap().meta();
    assert_eq!(j["high_water_mark"], meta.pgid);
    assert_eq!(j["root_page"], meta.root);
    assert!(j["free_pages"].as_u64().unwrap() > 0, "{j}");
}

#[test]
fn check_ok_and_json() {
    let (_d, db) = sample();
    assert_eq!(unchanged(&db, "check", || ok(&["check", p(&db)])), "OK\n");
    let j = json(&ok(&["check", "--json", p(&db)]));
    assert_eq!(j["ok"], true);
    assert_eq!(j["problems"].as_array().unwrap().len(), 0);
}

#[test]
fn check_reports_every_problem_with_page_ids() {
    let (_d, db) = sample();
    // Damage the root page's type flags.
    let root = {
        let d = Db::open(
            &db,
            Options {
                read_only: true,
                ..Options::default()
            },
        )
        .unwrap();
        let m = d.begin_read().unwrap().meta();
        m.root
    };
    let mut bytes = std::fs::read(&db).unwrap();
    let off = root as usize * 4096 + 8;
    bytes[off..off + 2].copy_from_slice(&0x55u16.to_le_bytes());
    std::fs::write(&db, &bytes).unwrap();
    let r = rivet(&["check", p(&db)]).expect(1);
    let out = r.out();
    assert!(out.contains(&format!("page {root}: ")), "{out}");
    assert!(out.trim_end().ends_with("problem(s) found"), "{out}");
    let j = json(&rivet(&["check", "--json", p(&db)]).expect(1).out());
    assert_eq!(j["ok"], false);
    assert!(j["problems"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["page"] == root));
    // Reading through the damaged root is an error naming the page.
    rivet(&["get", p(&db), "widgets", "foo"]).expect_error(&format!("corrupted page {root}"));
    rivet(&["export", p(&db)]).expect_error(&format!("corrupted page {root}"));
}

#[test]
fn stats_table_and_json() {
    let (_d, db) = sample();
    let out = unchanged(&db, "stats", || ok(&["stats", p(&db)]));
    assert!(
        out.contains("Aggregate statistics for 4 of 4 top-level buckets"),
        "{out}"
    );
    assert!(out.contains("fill"), "{out}");
    assert!(out.contains("inline buckets"), "{out}");
    let all = json(&ok(&["stats", "--json", p(&db)]));
    assert_eq!(all["top_level_buckets"], 4);
    // 4 top-level + parts.
    assert_eq!(all["bucket_n"], 5);
    let w = json(&ok(&["stats", p(&db), "wid", "--json"]));
    assert_eq!(w["top_level_buckets"], 1);
    assert_eq!(w["prefix"], "wid");
    // widgets: foo, tab, parts + parts' two keys.
    assert_eq!(w["key_n"], 5);
    assert_eq!(w["bucket_n"], 2);
    // parts is inline; widgets holds a sub-bucket, so it is not.
    assert_eq!(w["inline_bucket_n"], 1);
    let m = json(&ok(&["stats", p(&db), "many", "--json"]));
    assert_eq!(m["key_n"], 400);
    assert!(m["leaf_page_n"].as_u64().unwrap() > 1);
    assert!(m["depth"].as_u64().unwrap() >= 2);
    let fill = m["leaf_fill_percent"].as_f64().unwrap();
    assert!(fill > 0.0 && fill <= 100.0, "{fill}");
    let none = json(&ok(&["stats", p(&db), "zzz", "--json"]));
    assert_eq!(none["top_level_buckets"], 0);
    assert_eq!(none["key_n"], 0);
}

#[test]
fn buckets_keys_get() {
    let (_d, db) = sample();
    let out = unchanged(&db, "buckets", || ok(&["buckets", p(&db)]));
    assert_eq!(out, "big\nempty\nmany\nwidgets\n");
    assert_eq!(ok(&["buckets", p(&db), "widgets"]), "parts\n");
    assert_eq!(ok(&["buckets", p(&db), "empty"]), "");
    let keys = unchanged(&db, "keys", || ok(&["keys", p(&db), "widgets"]));
    assert_eq!(keys, "foo\nparts\ntab\n");
    // Binary keys are escaped, or hex, or raw.
    assert_eq!(
        ok(&["keys", p(&db), "widgets", "parts"]),
        "bolt\n\\xff\\x00bin\n"
    );
    assert_eq!(
        ok(&["keys", "--hex", p(&db), "77696467657473", "7061727473"]),
        "626f6c74\nff0062696e\n"
    );
    let raw = rivet(&["keys", "--raw", p(&db), "widgets", "parts"]).expect(0);
    assert_eq!(raw.stdout, b"bolt\n\xff\x00bin\n");
    assert_eq!(
        unchanged(&db, "get", || ok(&["get", p(&db), "widgets", "foo"])),
        "bar\n"
    );
    assert_eq!(ok(&["get", p(&db), "widgets", "tab"]), "a\\tb\\nc\n");
    let raw = rivet(&["get", "--raw", p(&db), "widgets", "tab"]).expect(0);
    assert_eq!(raw.stdout, b"a\tb\nc");
    assert_eq!(ok(&["get", p(&db), "widgets", "parts", "bolt"]), "m6\n");
    assert_eq!(
        ok(&[
            "get",
            "--hex",
            p(&db),
            "77696467657473",
            "7061727473",
            "ff0062696e"
        ]),
        "0102fe\n"
    );
    let v = ok(&["get", p(&db), "big", "blob"]);
    assert_eq!(v.len(), 10_001);
    // Not found: exit 1 with a message.
    let r = rivet(&["get", p(&db), "widgets", "nope"]).expect(1);
    assert!(
        r.stderr.contains("key nope in bucket widgets not found"),
        "{}",
        r.stderr
    );
    let r = rivet(&["get", p(&db), "nope", "foo"]).expect(1);
    assert!(r.stderr.contains("bucket nope not found"), "{}", r.stderr);
    // The wrong kind (a bucket where a key is expected, or the reverse) is a usage error:
    // exit 2 in every command (issue 13, kind 5), unlike a missing one (exit 1).
    rivet(&["get", p(&db), "widgets", "parts"]).expect_error("is a bucket, not a key");
    rivet(&["keys", p(&db), "widgets", "foo"]).expect_error("is a key, not a bucket");
    rivet(&["buckets", p(&db), "widgets", "foo"]).expect_error("is a key, not a bucket");
    rivet(&["get", p(&db), "widgets", "foo", "x"]).expect_error("is a key, not a bucket");
    rivet(&["get", "--hex", p(&db), "zz", "00"]).expect_error("invalid hex");
    rivet(&["get", p(&db), "foo"]).expect_error("at least one bucket");
}

/// `put` takes its value from stdin (`-`) or a file (`--file`), byte for byte, says when it
/// created the file, and warns when `--page-size` cannot apply (issue 13, kind 5).
#[test]
fn put_reads_stdin_and_files_and_says_what_it_did() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("new.db");
    let r = rivet(&["put", "--page-size", "8192", p(&db), "b", "k", "v"]).expect(0);
    assert_eq!(
        r.stderr,
        format!("rivet: created {} (page size 8192)\n", p(&db))
    );
    let bin: &[u8] = b"line one\n\x00\xffline two";
    let r = rivet_stdin(&["put", p(&db), "b", "from-stdin", "-"], Some(bin)).expect(0);
    assert_eq!(r.stderr, "", "no notice for an existing file");
    assert_eq!(
        rivet(&["get", "--raw", p(&db), "b", "from-stdin"])
            .expect(0)
            .stdout,
        bin
    );
    let file = dir.path().join("value.bin");
    std::fs::write(&file, bin).unwrap();
    ok(&["put", "--file", p(&file), p(&db), "b", "from-file"]);
    assert_eq!(
        rivet(&["get", "--raw", p(&db), "b", "from-file"])
            .expect(0)
            .stdout,
        bin
    );
    let r = rivet(&["put", "--page-size", "4096", p(&db), "b", "k", "v2"]).expect(0);
    assert!(
        r.stderr.contains("--page-size 4096 ignored"),
        "{}",
        r.stderr
    );
    let missing = dir.path().join("missing.bin");
    rivet(&["put", "--file", p(&missing), p(&db), "b", "k"]).expect_error("no such file");
    assert_eq!(ok(&["get", p(&db), "b", "k"]), "v2\n");
}

#[test]
fn put_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("new.db");
    // put creates the file and the buckets along the path.
    rivet(&["put", p(&db), "a", "b", "key", "value"]).expect(0);
    assert_eq!(ok(&["get", p(&db), "a", "b", "key"]), "value\n");
    rivet(&["put", "--hex", p(&db), "61", "00ff", "0102"]).expect(0);
    assert_eq!(ok(&["get", "--hex", p(&db), "61", "00ff"]), "0102\n");
    assert_eq!(ok(&["keys", p(&db), "a"]), "\\x00\\xff\nb\n");
    // A key where a bucket is expected, and the reverse.
    rivet(&["put", p(&db), "a", "b", "key", "x", "y"]).expect_error("is a key, not a bucket");
    rivet(&["put", p(&db), "a", "b", "v"]).expect_error("is a bucket, not a key");
    rivet(&["put", p(&db), "a", "", "v"]).expect_error("key required");
    rivet(&["put", p(&db), "", "k", "v"]).expect_error("must not be empty");
    // delete: keys, missing keys (exit 1, nothing written), buckets only with --bucket.
    let before = std::fs::read(&db).unwrap();
    let r = rivet(&["delete", p(&db), "a", "b", "missing"]).expect(1);
    assert!(r.stderr.contains("not found"), "{}", r.stderr);
    rivet(&["delete", p(&db), "a", "b"]).expect_error("pass --bucket");
    assert!(
        std::fs::read(&db).unwrap() == before,
        "a failed delete wrote"
    );
    rivet(&["delete", p(&db), "a", "b", "key"]).expect(0);
    rivet(&["get", p(&db), "a", "b", "key"]).expect(1);
    rivet(&["delete", "--bucket", p(&db), "a", "b"]).expect(0);
    assert_eq!(ok(&["buckets", p(&db), "a"]), "");
    rivet(&["delete", "--bucket", "--hex", p(&db), "61", "00"]).expect(1);
    assert_eq!(ok(&["check", p(&db)]), "OK\n");
    // delete never creates a file.
    let missing = dir.path().join("missing.db");
    rivet(&["delete", p(&missing), "a", "k"]).expect_error("no such file");
    assert!(!missing.exists());
}

#[test]
fn pages_page_dump() {
    let (_d, db) = sample();
    let out = unchanged(&db, "pages", || ok(&["pages", p(&db)]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "ID       TYPE       ITEMS  OVRFLW");
    assert!(lines[2].starts_with("0        meta"), "{out}");
    assert!(lines[3].starts_with("1        meta"), "{out}");
    assert!(out.contains(" free"), "{out}");
    assert!(out.contains(" freelist "), "{out}");
    // The 10 000-byte value lives in a leaf with overflow pages.
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" leaf ") && l.trim_end().ends_with(" 2")),
        "{out}"
    );
    let j = json(&unchanged(&db, "pages --json", || {
        ok(&["pages", "--json", p(&db)])
    }));
    let pages = j["pages"].as_array().unwrap();
    assert_eq!(pages[0]["type"], "meta");
    let hwm = j["high_water_mark"].as_u64().unwrap();
    // Every page below the high-water mark is covered exactly once.
    let mut next = 0;
    for pg in pages {
        assert_eq!(pg["id"], next, "{j}");
        next += 1 + pg["overflow"].as_u64().unwrap_or(0);
    }
    assert_eq!(next, hwm);

    let out = unchanged(&db, "page", || ok(&["page", p(&db), "0", "1"]));
    assert!(out.contains("Page type:     meta"), "{out}");
    assert!(out.contains("Checksum:") && out.contains("(ok)"), "{out}");
    assert!(out.contains("Valid:         yes"), "{out}");
    let info = json(&ok(&["info", "--json", p(&db)]));
    let root = info["root_page"].as_u64().unwrap().to_string();
    let out = ok(&["page", p(&db), &root]);
    assert!(out.contains("bucket \"widgets\""), "{out}");
    assert!(out.contains("bucket \"empty\" (inline, 0 items"), "{out}");
    let fl = info["freelist_page"].as_u64().unwrap().to_string();
    let out = ok(&["page", p(&db), &fl]);
    assert!(out.contains("Free page ids:"), "{out}");
    rivet(&["page", p(&db), "999999"]).expect_error("beyond the end of the file");

    let out = unchanged(&db, "dump", || ok(&["dump", p(&db), "0"]));
    assert!(
        out.starts_with("Page 0 (meta, 1 page(s), offset 0x0, 4096 bytes)"),
        "{out}"
    );
    assert!(out.contains("00000010  ed da 0c ed 02 00 00 00"), "{out}");
    assert!(out.contains("\n*\n"), "{out}");
    assert!(out.trim_end().ends_with("00001000"), "{out}");
}

#[test]
fn export_import_round_trip() {
    let (dir, db) = sample();
    let exported = unchanged(&db, "export", || {
        rivet(&["export", p(&db)]).expect(0).stdout
    });
    // Same bytes as the engine's own exporter.
    let want = {
        let d = Db::open(
            &db,
            Options {
                read_only: true,
                ..Options::default()
            },
        )
        .unwrap();
        let tx = d.begin_read().unwrap();
        let mut v = Vec::new();
        rivet::export::write_jsonl(&tx, &mut v).unwrap();
        v
    };
    assert!(
        exported == want,
        "export differs from rivet::export::write_jsonl"
    );
    let text = String::from_utf8(exported.clone()).unwrap();
    assert!(
        text.starts_with("{\"bucket\":[\"big\"]}\n"),
        "{}",
        truncate(&text, 300)
    );
    assert!(text.contains("{\"bucket\":[\"widgets\"],\"sequence\":7}\n"));
    assert!(text.contains("{\"bucket\":[\"widgets\",\"parts\"],\"key\":{\"base64\":\"/wBiaW4=\"},\"value\":{\"base64\":\"AQL+\"}}\n"));

    // -o FILE, and import from a file and from stdin, in small batches.
    let file = dir.path().join("out.jsonl");
    let r = rivet(&["export", p(&db), "-o", p(&file)]).expect(0);
    assert!(r.stdout.is_empty());
    assert!(std::fs::read(&file).unwrap() == exported);
    let copy = dir.path().join("copy.db");
    let out = ok(&["import", p(&copy), p(&file), "--batch", "7"]);
    assert!(out.contains("imported"), "{out}");
    assert!(rivet(&["export", p(&copy)]).expect(0).stdout == exported);
    assert_eq!(ok(&["check", p(&copy)]), "OK\n");
    let copy2 = dir.path().join("copy2.db");
    let r = rivet_stdin(&["import", p(&copy2)], Some(&exported)).expect(0);
    assert!(
        r.stderr.is_empty(),
        "quiet when stderr is not a terminal: {}",
        r.stderr
    );
    assert!(rivet(&["export", p(&copy2)]).expect(0).stdout == exported);
    // Exporting over the database itself is refused.
    rivet(&["export", p(&db), "-o", p(&db)]).expect_error("over itself");
}

#[test]
fn compact_prints_sizes_and_copies_everything() {
    let (dir, db) = sample();
    let dst = dir.path().join("compacted.db");
    let out = unchanged(&db, "compact (source)", || {
        ok(&["compact", p(&db), p(&dst), "--tx-max-size", "1000"])
    });
    let src_size = std::fs::metadata(&db).unwrap().len();
    let dst_size = std::fs::metadata(&dst).unwrap().len();
    assert!(out.contains(&format!("before: {src_size} bytes")), "{out}");
    assert!(out.contains(&format!("after:  {dst_size} bytes")), "{out}");
    assert!(
        rivet(&["export", p(&dst)]).expect(0).stdout == rivet(&["export", p(&db)]).expect(0).stdout
    );
    assert_eq!(ok(&["check", p(&dst)]), "OK\n");
    rivet(&["compact", p(&db), p(&dst)]).expect_error("already exists");
    rivet(&["compact", p(&db), p(&db)]).expect_error("destination");
    let missing = dir.path().join("missing.db");
    let dst2 = dir.path().join("dst2.db");
    rivet(&["compact", p(&missing), p(&dst2)]).expect_error("no such file");
    assert!(!dst2.exists());
}

/// `compact --in-place` (online compaction) keeps the content, shrinks a file whose data was
/// mostly deleted, reports sizes and moves, and refuses a destination or a missing file.
#[test]
fn compact_in_place_shrinks_the_file_and_keeps_the_content() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("logs.db");
    let mut lines = String::from("{\"bucket\":[\"old\"]}\n{\"bucket\":[\"new\"]}\n");
    for i in 0..20_000u32 {
        let b = if i % 5 == 0 { "new" } else { "old" };
        lines.push_str(&format!(
            "{{\"bucket\":[\"{b}\"],\"key\":\"k{i:06}\",\"value\":\"{i:0100}\"}}\n"
        ));
    }
    rivet_stdin(
        &["import", "--batch", "1000", p(&db)],
        Some(lines.as_bytes()),
    )
    .expect(0);
    ok(&["delete", "--bucket", p(&db), "old"]);
    let before = std::fs::metadata(&db).unwrap().len();
    let content = rivet(&["export", p(&db)]).expect(0).stdout;
    let out = ok(&["compact", "--in-place", p(&db), "--round-leaves", "16"]);
    let after = std::fs::metadata(&db).unwrap().len();
    assert!(after * 4 < before, "{before} -> {after}: {out}");
    assert!(out.contains(&format!("before: {before} bytes")), "{out}");
    assert!(out.contains(&format!("after:  {after} bytes")), "{out}");
    assert!(out.contains("moved "), "{out}");
    assert_eq!(rivet(&["export", p(&db)]).expect(0).stdout, content);
    assert_eq!(ok(&["check", p(&db)]), "OK\n");
    let dst = dir.path().join("dst.db");
    let r = rivet(&["compact", "--in-place", p(&db), p(&dst)]).expect(2);
    assert!(r.stderr.contains("cannot be used with"), "{}", r.stderr);
    assert!(!dst.exists());
    let missing = dir.path().join("missing.db");
    rivet(&["compact", "--in-place", p(&missing)]).expect_error("no such file");
    assert!(!missing.exists());
}

#[test]
fn bench_reports_ops_and_keeps_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.db");
    let out = ok(&[
        "bench",
        "--count",
        "3000",
        "--batch-size",
        "1000",
        "--write-mode",
        "rnd",
        "--read-mode",
        "rnd",
        "--read-time",
        "0",
        "--no-sync",
        "--path",
        p(&path),
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("# Write\t3000 ops\t"), "{out}");
    assert!(
        lines[0].contains("/op)") && lines[0].ends_with("op/sec)"),
        "{out}"
    );
    assert!(lines[1].starts_with("# Read\t3000 ops\t"), "{out}");
    assert_eq!(ok(&["check", p(&path)]), "OK\n");
    let j = json(&ok(&["stats", "--json", p(&path)]));
    assert_eq!(j["key_n"], 3000);
    assert_eq!(ok(&["keys", p(&path), "bench"]).lines().count(), 3000);
    // Without --path the temporary file is removed; seq mode; a read time.
    let out = ok(&[
        "bench",
        "--count",
        "500",
        "--key-size",
        "4",
        "--value-size",
        "100",
        "--read-time",
        "50ms",
    ]);
    assert!(out.contains("# Read\t"), "{out}");
    rivet(&["bench", "--count", "10", "--path", p(&path)]).expect_error("already exists");
    rivet(&["bench", "--key-size", "2"]).expect_error("--key-size");
}

#[test]
fn read_commands_on_a_no_freelist_sync_file_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nofl.db");
    {
        let d = Db::open(
            &db,
            Options {
                page_size: Some(4096),
                no_freelist_sync: true,
                ..Options::default()
            },
        )
        .unwrap();
        d.update(|tx| {
            let b = tx.create_bucket(b"b")?;
            for i in 0..300u32 {
                b.put(&i.to_be_bytes(), &[7u8; 40])?;
            }
            Ok::<_, rivet::Error>(())
        })
        .unwrap();
        d.update(|tx| {
            let b = tx.bucket(b"b")?.unwrap();
            for i in 0..100u32 {
                b.delete(&i.to_be_bytes())?;
            }
            Ok::<_, rivet::Error>(())
        })
        .unwrap();
    }
    let cmds: Vec<Vec<&str>> = vec![
        vec!["info", p(&db)],
        vec!["info", "--json", p(&db)],
        vec!["check", p(&db)],
        vec!["check", "--json", p(&db)],
        vec!["stats", p(&db)],
        vec!["stats", "--json", p(&db)],
        vec!["buckets", p(&db)],
        vec!["keys", p(&db), "b"],
        vec!["get", "--hex", p(&db), "62", "00000064"],
        vec!["pages", p(&db)],
        vec!["pages", "--json", p(&db)],
        vec!["page", p(&db), "0", "1", "2", "3"],
        vec!["dump", p(&db), "0", "1"],
        vec!["export", p(&db)],
        vec!["surgery", "meta", "validate", p(&db)],
    ];
    for c in &cmds {
        unchanged(&db, &c.join(" "), || rivet(c).expect(0));
    }
    let out = ok(&["info", p(&db)]);
    assert!(out.contains("not synced (NoFreelistSync"), "{out}");
    let j = json(&ok(&["info", "--json", p(&db)]));
    assert_eq!(j["freelist"], "not-synced");
    assert!(j["free_pages"].as_u64().unwrap() > 0);
    assert!(ok(&["pages", p(&db)]).contains(" free"));
}

/// `keys` requires a bucket path, and its usage line says so (issue 13, kind 5).
#[test]
fn keys_usage_shows_the_bucket_as_required() {
    let help = ok(&["keys", "--help"]);
    assert!(
        help.contains("Usage: rivet keys [OPTIONS] <DB> <BUCKET>..."),
        "{help}"
    );
}

/// `bench` says what it measured (on stderr; stdout keeps bbolt's two lines) (issue 13,
/// kind 7).
#[test]
fn bench_says_what_it_measures() {
    let r = rivet(&["bench", "--count", "200", "--read-time", "0", "--no-sync"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("rivet bench: write 200 keys (8 B) with 32 B values in sequential order, 1 transaction(s), no fsync"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("(deleted afterwards)"), "{}", r.stderr);
    assert!(r.out().starts_with("# Write\t200 ops\t"), "{}", r.out());
}
