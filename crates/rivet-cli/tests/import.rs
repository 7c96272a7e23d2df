//! `import`: the JSON Lines reader, batching, rejected lines and interruption.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

fn export(db: &Path) -> String {
    ok(&["export", p(db)])
}

/// Lines of a canonical export with `n` keys in bucket `b` (declared first).
fn lines(n: usize) -> Vec<String> {
    let mut v = vec!["{\"bucket\":[\"b\"]}".to_string()];
    v.extend(
        (1..n).map(|i| format!("{{\"bucket\":[\"b\"],\"key\":\"k{i:05}\",\"value\":\"v{i}\"}}")),
    );
    v
}

fn joined(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[test]
fn accepts_any_json_spacing_order_and_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let input = concat!(
        " { \"sequence\" : 5 , \"bucket\" : [ \"w\\u0069dgets\" ] }\r\n",
        "{\"value\":\"bar\",\"key\":\"foo\",\"bucket\":[\"widgets\"]}\n",
        "\n",
        "{\"bucket\":[\"widgets\", {\"base64\" : \"/w==\"}]}\n",
        "{\"bucket\":[\"widgets\",{\"base64\":\"/w==\"}],\"key\":\"\\ud83d\\ude00\",\"value\":{\"base64\":\"/wA=\"}}\n",
        "{\"bucket\":[\"widgets\"],\"key\":\"b64\",\"value\":{\"base64\":\"AAE=\"}}\n",
        "{\"bucket\":[\"widgets\"],\"key\":\"esc\",\"value\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u001f\"}\n",
        "{\"bucket\":[\"widgets\"],\"key\":\"seq0\",\"value\":\"\"}\n",
        "{\"bucket\":[\"zero\"],\"sequence\":0}",
    );
    let out = rivet_stdin(&["import", p(&db)], Some(input.as_bytes()))
        .expect(0)
        .out();
    assert!(
        out.contains("imported 8 entries (3 buckets, 5 keys)"),
        "{out}"
    );
    // The export is canonical: base64 only where the bytes are not UTF-8.
    let want = concat!(
        "{\"bucket\":[\"widgets\"],\"sequence\":5}\n",
        "{\"bucket\":[\"widgets\"],\"key\":\"b64\",\"value\":\"\\u0000\\u0001\"}\n",
        "{\"bucket\":[\"widgets\"],\"key\":\"esc\",\"value\":\"\\\"\\\\/\\b\\f\\n\\r\\t\\u001f\"}\n",
        "{\"bucket\":[\"widgets\"],\"key\":\"foo\",\"value\":\"bar\"}\n",
        "{\"bucket\":[\"widgets\"],\"key\":\"seq0\",\"value\":\"\"}\n",
        "{\"bucket\":[\"widgets\",{\"base64\":\"/w==\"}]}\n",
        "{\"bucket\":[\"widgets\",{\"base64\":\"/w==\"}],\"key\":\"😀\",\"value\":{\"base64\":\"/wA=\"}}\n",
        "{\"bucket\":[\"zero\"]}\n",
    );
    assert_eq!(export(&db), want);
    assert_eq!(ok(&["check", p(&db)]), "OK\n");
}

#[test]
fn rejects_malformed_lines_with_line_number_and_writes_nothing() {
    let good = "{\"bucket\":[\"b\"]}\n{\"bucket\":[\"b\"],\"key\":\"k\",\"value\":\"v\"}\n";
    let cases: &[(&[u8], &str)] = &[
        (
            b"{\"bucket\":[\"b\"],\"key\":\"k2\"}",
            "\"key\" without \"value\"",
        ),
        (
            b"{\"bucket\":[\"b\"],\"value\":\"v\"}",
            "\"value\" without \"key\"",
        ),
        (
            b"{\"bucket\":[\"b\"],\"key\":\"k\",\"value\":\"v\",\"x\":1}",
            "unknown field \"x\"",
        ),
        (
            b"{\"bucket\":[\"c\"],\"key\":\"k\",\"value\":\"v\"}",
            "bucket c was not declared",
        ),
        (
            b"{\"bucket\":[\"c\",\"d\"]}",
            "parent bucket c was not declared",
        ),
        (b"{\"bucket\":[\"b\"]}", "declared twice"),
        (
            b"{\"bucket\":[\"b\"],\"sequence\":1,\"key\":\"k\",\"value\":\"v\"}",
            "sequence",
        ),
        (b"{\"bucket\":[\"b\",\"k\"]}", "already exists as a key"),
        (
            b"{\"bucket\":[\"b\"],\"key\":\"k\",\"value\":\"v\"",
            "EOF while parsing an object at column 37",
        ),
        (b"[\"b\"]", "must be a JSON object"),
        (
            b"{\"bucket\":[\"b\"],\"key\":\"\xff\",\"value\":\"v\"}",
            "not valid UTF-8",
        ),
        (
            b"{\"bucket\":[\"b\"],\"key\":{\"base64\":\"!!\"},\"value\":\"v\"}",
            "base64",
        ),
        (b"{\"bucket\":[\"b\"],\"sequence\":-3}", "integer"),
        (b"not json", "expected ident at column 2"),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, (bad, why)) in cases.iter().enumerate() {
        let db = dir.path().join(format!("db{i}"));
        let file = dir.path().join(format!("in{i}.jsonl"));
        let mut input = good.as_bytes().to_vec();
        input.extend_from_slice(bad);
        input.extend_from_slice(b"\n{\"bucket\":[\"after\"]}\n");
        std::fs::write(&file, &input).unwrap();
        let r = rivet(&["import", p(&db), p(&file)]);
        let msg = format!("{}:3: ", p(&file));
        let r = r.expect_error(&msg);
        assert!(
            r.stderr.contains(why),
            "case {i}: {:?} lacks {why:?}",
            r.stderr
        );
        // Nothing was committed, so the database this import created is gone again.
        assert!(
            r.stderr.contains("nothing was committed, so"),
            "{}",
            r.stderr
        );
        assert!(!db.exists(), "case {i}: the failed import left {}", p(&db));
        // Same from stdin.
        let db2 = dir.path().join(format!("db{i}-stdin"));
        let r = rivet_stdin(&["import", p(&db2)], Some(&input)).expect_error("<stdin>:3: ");
        assert!(r.stderr.contains(why), "{}", r.stderr);
    }
}

#[test]
fn a_failure_keeps_exactly_the_committed_batches() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut input = lines(250);
    input.push("{\"bucket\":[\"b\"],\"key\":\"oops\"}".into());
    input.extend(lines(20).into_iter().skip(1));
    let r = rivet_stdin(
        &["import", p(&db), "--batch", "100"],
        Some(joined(&input).as_bytes()),
    )
    .expect_error("<stdin>:251: \"key\" without \"value\"");
    assert!(r.stderr.contains("(200 lines committed to"), "{}", r.stderr);
    assert_eq!(export(&db), joined(&input[..200]));
    assert_eq!(ok(&["check", p(&db)]), "OK\n");
}

#[test]
fn import_merges_into_an_existing_database() {
    let (_d, db) = sample();
    let input = "{\"bucket\":[\"widgets\"],\"sequence\":9}\n{\"bucket\":[\"widgets\"],\"key\":\"foo\",\"value\":\"new\"}\n{\"bucket\":[\"widgets\",\"parts\"]}\n{\"bucket\":[\"widgets\",\"parts\"],\"key\":\"nut\",\"value\":\"m6\"}\n";
    rivet_stdin(&["import", p(&db), "--no-sync"], Some(input.as_bytes())).expect(0);
    assert_eq!(ok(&["get", p(&db), "widgets", "foo"]), "new\n");
    assert_eq!(ok(&["get", p(&db), "widgets", "parts", "bolt"]), "m6\n");
    assert_eq!(ok(&["get", p(&db), "widgets", "parts", "nut"]), "m6\n");
    assert!(export(&db).contains("{\"bucket\":[\"widgets\"],\"sequence\":9}\n"));
    assert_eq!(ok(&["check", p(&db)]), "OK\n");
}

#[test]
fn interrupted_import_keeps_the_committed_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let input = lines(150);
    let mut child = Command::new(BIN)
        .args(["import", p(&db), "--batch", "100", "--verbose"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(joined(&input).as_bytes()).unwrap();
    stdin.flush().unwrap();
    // Wait until the first batch is committed (the other 50 lines are then read and pending).
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert_eq!(line, "committed 100 lines (100 entries)\n");
    let pid = child.id().to_string();
    let kill = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(kill.success());
    // Closing stdin lets a blocked read return.
    drop(stdin);
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert_eq!(status.code(), Some(130), "{rest}");
    assert!(
        rest.starts_with("rivet: import interrupted (100 lines committed to"),
        "{rest}"
    );
    assert_eq!(export(&db), joined(&input[..100]));
    assert_eq!(ok(&["check", p(&db)]), "OK\n");
}
