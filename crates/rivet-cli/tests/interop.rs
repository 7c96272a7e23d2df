//! Every subcommand on files written by Go bbolt 1.3.6 (the interop peer's `gen` scenarios),
//! and Go reading what the CLI writes.
//!
//! For each scenario: the export equals the peer's `dump` byte for byte; `check` is clean;
//! `info`, `stats`, `buckets`, `keys`, `get`, `pages`, `page`, `dump` and `surgery meta
//! validate` agree with the peer and change no byte of the file (NoFreelistSync files
//! included); `compact`, `import`, `put`/`delete` and the surgeries produce files that Go checks
//! clean and dumps as expected. Without Go the tests print `SKIPPED` and pass, unless `CI` is
//! set.

mod common;

use std::path::Path;

use common::*;

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("invalid JSON ({e}): {s}"))
}

fn decode_base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    } as u32;
    let mut out = Vec::new();
    for q in s.as_bytes().chunks(4) {
        let pad = q.iter().filter(|&&c| c == b'=').count();
        let n = q.iter().take(4 - pad).fold(0u32, |n, &c| n << 6 | val(c)) << (6 * pad);
        out.extend_from_slice(&n.to_be_bytes()[1..4 - pad]);
    }
    out
}

fn bytes_of(v: &serde_json::Value) -> Vec<u8> {
    match v {
        serde_json::Value::String(s) => s.as_bytes().to_vec(),
        serde_json::Value::Object(o) => decode_base64(o["base64"].as_str().expect("base64")),
        other => panic!("not a byte string: {other}"),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A bucket's entries in order: key, and value or `None` for a sub-bucket.
type Entries = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// The logical content of a dump: bucket paths in order, with their entries.
struct Content {
    buckets: Vec<(Vec<Vec<u8>>, Entries)>,
}

fn parse_dump(dump: &[u8]) -> Content {
    let mut buckets: Vec<(Vec<Vec<u8>>, Entries)> = Vec::new();
    for line in String::from_utf8(dump.to_vec())
        .expect("utf-8 dump")
        .lines()
    {
        let v = json(line);
        let path: Vec<Vec<u8>> = v["bucket"]
            .as_array()
            .unwrap()
            .iter()
            .map(bytes_of)
            .collect();
        match v.get("key") {
            None => {
                if let Some((parent, name)) =
                    path.split_last().map(|(n, p)| (p.to_vec(), n.clone()))
                {
                    if let Some(b) = buckets.iter_mut().find(|b| b.0 == parent) {
                        b.1.push((name, None));
                    }
                }
                buckets.push((path, Vec::new()));
            }
            Some(k) => {
                let b = buckets.iter_mut().find(|b| b.0 == path).expect("declared");
                b.1.push((bytes_of(k), Some(bytes_of(&v["value"]))));
            }
        }
    }
    Content { buckets }
}

/// Maps the peer's stats field names to the CLI's JSON keys.
fn snake(field: &str) -> String {
    let mut s = String::new();
    for (i, c) in field.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            s.push('_');
        }
        s.push(c.to_ascii_lowercase());
    }
    s
}

fn read_only_commands_agree(peer: &Peer, db: &Path, summary: &str, ctx: &str) {
    let want = peer.dump(db);
    let content = parse_dump(&want);
    let field = |name: &str| -> String {
        summary
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} missing from {summary}"))
            .to_string()
    };
    let same = |what: &str, f: &dyn Fn() -> Run| unchanged(db, &format!("{ctx}: {what}"), f);

    let exported = same("export", &|| rivet(&["export", p(db)]).expect(0)).stdout;
    assert!(exported == want, "{ctx}: export differs from the Go dump");
    assert_eq!(
        same("check", &|| rivet(&["check", p(db)]).expect(0)).out(),
        "OK\n",
        "{ctx}"
    );
    let c = json(
        &same("check --json", &|| {
            rivet(&["check", "--json", p(db)]).expect(0)
        })
        .out(),
    );
    assert_eq!(c["ok"], true, "{ctx}");

    let info = json(
        &same("info --json", &|| {
            rivet(&["info", "--json", p(db)]).expect(0)
        })
        .out(),
    );
    same("info", &|| rivet(&["info", p(db)]).expect(0));
    assert_eq!(info["page_size"].to_string(), field("page-size"), "{ctx}");
    assert_eq!(info["txid"].to_string(), field("txid"), "{ctx}");
    assert_eq!(info["high_water_mark"].to_string(), field("hwm"), "{ctx}");
    assert_eq!(info["file_size"].to_string(), field("file-size"), "{ctx}");
    if field("no-freelist-sync") == "true" {
        assert_eq!(info["freelist"], "not-synced", "{ctx}");
    } else {
        assert_eq!(info["freelist"], "synced", "{ctx}");
        assert_eq!(
            info["freelist_page"].to_string(),
            field("freelist-page"),
            "{ctx}"
        );
        assert_eq!(
            info["free_pages"].to_string(),
            field("freelist-count"),
            "{ctx}"
        );
    }

    // Stats: the aggregate over all buckets, and each bucket whose name no other extends.
    let go = peer.stats(db);
    let mut sum: std::collections::BTreeMap<String, u64> = Default::default();
    for (_, fields) in &go {
        for (k, v) in fields {
            let e = sum.entry(snake(k)).or_insert(0);
            *e = if k == "Depth" { (*e).max(*v) } else { *e + v };
        }
    }
    let all = json(
        &same("stats --json", &|| {
            rivet(&["stats", "--json", p(db)]).expect(0)
        })
        .out(),
    );
    same("stats", &|| rivet(&["stats", p(db)]).expect(0));
    assert_eq!(all["top_level_buckets"], go.len(), "{ctx}");
    for (k, v) in &sum {
        assert_eq!(all[k.as_str()], *v, "{ctx}: stats field {k}");
    }
    for (name, fields) in &go {
        let plain = !name.starts_with('"') && !name.starts_with('{');
        if !plain
            || go
                .iter()
                .any(|(o, _)| o != name && o.starts_with(name.as_str()))
        {
            continue;
        }
        let one = json(&rivet(&["stats", "--json", p(db), name]).expect(0).out());
        for (k, v) in fields {
            assert_eq!(one[snake(k).as_str()], *v, "{ctx}: stats of {name}: {k}");
        }
    }

    // Buckets, keys and values, in hex.
    let top: Vec<String> = content
        .buckets
        .iter()
        .filter(|b| b.0.len() == 1)
        .map(|b| hex(&b.0[0]) + "\n")
        .collect();
    let out = same("buckets", &|| rivet(&["buckets", "--hex", p(db)]).expect(0)).out();
    assert_eq!(out, top.concat(), "{ctx}: buckets");
    for (path, entries) in content.buckets.iter().take(12) {
        let mut args = vec!["keys".to_string(), "--hex".into(), p(db).into()];
        args.extend(path.iter().map(|x| hex(x)));
        let want_keys: String = entries.iter().map(|(k, _)| hex(k) + "\n").collect();
        assert_eq!(
            rivet(&args).expect(0).out(),
            want_keys,
            "{ctx}: keys of {args:?}"
        );
        args[0] = "buckets".into();
        let want_subs: String = entries
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| hex(k) + "\n")
            .collect();
        assert_eq!(
            rivet(&args).expect(0).out(),
            want_subs,
            "{ctx}: buckets of {args:?}"
        );
        for (k, v) in entries.iter().filter(|e| e.1.is_some()).take(3) {
            let mut get = vec!["get".to_string(), "--hex".into(), p(db).into()];
            get.extend(path.iter().map(|x| hex(x)));
            get.push(hex(k));
            let got = rivet(&get).expect(0).out();
            assert_eq!(got, hex(v.as_ref().unwrap()) + "\n", "{ctx}: {get:?}");
        }
    }

    // Pages.
    let pages = json(
        &same("pages --json", &|| {
            rivet(&["pages", "--json", p(db)]).expect(0)
        })
        .out(),
    );
    same("pages", &|| rivet(&["pages", p(db)]).expect(0));
    let list = pages["pages"].as_array().unwrap();
    let free = list.iter().filter(|pg| pg["type"] == "free").count();
    assert_eq!(info["free_pages"], free, "{ctx}: free pages in the table");
    let mut next = 0;
    for pg in list {
        assert_eq!(pg["id"], next, "{ctx}");
        assert_ne!(pg["type"], "unknown", "{ctx}: page {next}");
        next += 1 + pg["overflow"].as_u64().unwrap_or(0);
    }
    assert_eq!(pages["high_water_mark"], next, "{ctx}");
    let ids: Vec<String> = list
        .iter()
        .filter(|pg| pg["type"] != "free")
        .map(|pg| pg["id"].to_string())
        .collect();
    let mut args = vec!["page", p(db)];
    args.extend(ids.iter().map(|s| s.as_str()));
    same("page", &|| rivet(&args).expect(0));
    same("dump", &|| rivet(&["dump", p(db), "0", "1", "2"]).expect(0));
    same("meta validate", &|| {
        rivet(&["surgery", "meta", "validate", p(db)]).expect(0)
    });
}

fn writers_produce_files_go_accepts(peer: &Peer, db: &Path, ctx: &str) {
    let dir = tempfile::tempdir().unwrap();
    let want = peer.dump(db);
    let out = |n: &str| dir.path().join(n);

    let compacted = out("compacted.db");
    unchanged(db, "compact", || ok(&["compact", p(db), p(&compacted)]));
    peer.check(&compacted, &format!("{ctx}: compact"));
    assert!(peer.dump(&compacted) == want, "{ctx}: compacted dump");

    let imported = out("imported.db");
    let exported = rivet(&["export", p(db)]).expect(0).stdout;
    rivet_stdin(&["import", p(&imported), "--batch", "333"], Some(&exported)).expect(0);
    peer.check(&imported, &format!("{ctx}: import"));
    assert!(peer.dump(&imported) == want, "{ctx}: imported dump");

    for (name, args) in [
        ("rebuilt.db", vec!["surgery", "freelist", "rebuild"]),
        ("abandoned.db", vec!["surgery", "freelist", "abandon"]),
    ] {
        let o = out(name);
        let mut a = args.clone();
        a.extend([p(db), "--output", p(&o)]);
        unchanged(db, name, || ok(&a));
        peer.check(&o, &format!("{ctx}: {name}"));
        assert!(peer.dump(&o) == want, "{ctx}: {name} dump");
    }
    let reverted = out("reverted.db");
    unchanged(db, "revert-meta", || {
        ok(&["surgery", "revert-meta", p(db), "--output", p(&reverted)])
    });
    peer.check(&reverted, &format!("{ctx}: revert-meta"));
    assert_eq!(ok(&["check", p(&reverted)]), "OK\n");

    let edited = out("edited.db");
    std::fs::copy(db, &edited).unwrap();
    ok(&[
        "put",
        p(&edited),
        "cli-added",
        "inner",
        "key",
        "value from the CLI",
    ]);
    let top = ok(&["buckets", p(&edited)]);
    let first = top.lines().next().unwrap().to_string();
    peer.check(&edited, &format!("{ctx}: put"));
    let dump = String::from_utf8(peer.dump(&edited)).unwrap();
    assert!(dump.contains(
        "{\"bucket\":[\"cli-added\",\"inner\"],\"key\":\"key\",\"value\":\"value from the CLI\"}\n"
    ));
    ok(&["delete", "--bucket", p(&edited), "cli-added", "inner"]);
    if !first.contains('\\') {
        ok(&["delete", "--bucket", p(&edited), &first]);
    }
    peer.check(&edited, &format!("{ctx}: delete"));
    assert_eq!(ok(&["check", p(&edited)]), "OK\n");
}

fn scenario(name: &str, page_size: usize, flags: &[&str], writers: bool) {
    let peer = require_peer!();
    let ctx = format!("{name} page-size={page_size} {}", flags.join(" "));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(format!("{name}.db"));
    let summary = peer.gen(name, &db, page_size, flags);
    read_only_commands_agree(&peer, &db, &summary, &ctx);
    if writers {
        writers_produce_files_go_accepts(&peer, &db, &ctx);
    }
}

#[test]
fn go_basic() {
    scenario("basic", 4096, &[], true);
}

#[test]
fn go_nested() {
    scenario("nested", 4096, &["-freelist", "array"], true);
}

#[test]
fn go_nested_no_freelist_sync() {
    scenario("nested", 4096, &["-no-freelist-sync"], true);
}

#[test]
fn go_nested_1k_hashmap() {
    scenario("nested", 1024, &["-freelist", "hashmap"], false);
}

#[test]
fn go_overflow() {
    scenario("overflow", 4096, &[], true);
}

#[test]
fn go_overflow_1k_no_freelist_sync() {
    scenario("overflow", 1024, &["-no-freelist-sync"], false);
}

#[test]
fn go_merge() {
    scenario("merge", 4096, &[], true);
}

#[test]
fn go_merge_no_freelist_sync() {
    scenario("merge", 4096, &["-no-freelist-sync"], false);
}

#[test]
fn go_sequences() {
    scenario("sequences", 4096, &[], true);
}

#[test]
fn go_sequences_16k() {
    scenario("sequences", 16384, &["-no-freelist-sync"], false);
}

/// Go modifies a file the CLI wrote (by import), and the CLI reads Go's result.
#[test]
fn go_modifies_a_cli_written_file() {
    let peer = require_peer!();
    let (dir, sample) = sample();
    let db = dir.path().join("cli.db");
    let exported = rivet(&["export", p(&sample)]).expect(0).stdout;
    rivet_stdin(&["import", p(&db)], Some(&exported)).expect(0);
    peer.check(&db, "CLI import");
    assert!(peer.dump(&db) == exported);
    peer.modify(&db);
    assert_eq!(ok(&["check", p(&db)]), "OK\n");
    assert!(rivet(&["export", p(&db)]).expect(0).stdout == peer.dump(&db));
    assert_eq!(ok(&["get", p(&db), "go-added", "inner", "x"]), "y\n");
}
