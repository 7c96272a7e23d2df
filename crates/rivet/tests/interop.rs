//! Interoperability with Go bbolt 1.3.6 through the `bboltpeer` program
//! (tests/interop/README.md).
//!
//! * Go → Rust: the peer generates every scenario at several page sizes and freelist modes;
//!   Rivet opens the file read-only, its `check` must be clean and its export must equal the
//!   peer's dump byte for byte.
//! * Rust → Go: Rivet writes files (nested, inline and paged buckets, overflow values, merges,
//!   sequences, several commits); the peer checks and dumps them, modifies them, and Rivet
//!   reads (and writes) them again.
//! * Rivet modifies files Go generated, and the peer checks and dumps the result.
//!
//! Every Rivet write goes through a model of the logical content as well, so each export is
//! also compared with an independent expectation.
//!
//! The peer is built once per test process. Without Go the tests print `SKIPPED: ...` and
//! pass, unless the `CI` environment variable is set, in which case they fail.

#[macro_use]
mod interop_support;

use std::path::Path;

use interop_support::*;
use rivet::Db;

const PAGE_SIZES: [usize; 3] = [1024, 4096, 16384];

// ------------------------------------------------------------------------------------------
// Go -> Rust

/// Files up to this size are compared before and after Rivet's read-only open.
const COMPARE_BYTES_LIMIT: u64 = 16 << 20;

fn go_to_rust(peer: &Peer, scenario: &str, page_size: usize, mode: FreelistMode) {
    let ctx = format!("Go->Rust {scenario} page-size={page_size} {}", mode.name());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{scenario}.db"));
    let summary = peer.gen(scenario, &path, page_size, mode);
    if page_size == 1024 && mode != FreelistMode::NoSync && matches!(scenario, "bigfree" | "all") {
        // The peer already fails otherwise; make the intent visible here too.
        assert!(
            summary.contains("freelist-header-count=0xffff"),
            "{ctx}: expected an overflowing freelist count: {summary}"
        );
    }
    let want = peer.dump(&path);
    let size = std::fs::metadata(&path).unwrap().len();
    let before = (size <= COMPARE_BYTES_LIMIT).then(|| std::fs::read(&path).unwrap());
    {
        let db = open(&path, true, false);
        assert_eq!(db.page_size(), page_size, "{ctx}: page size");
        let tx = db.begin_read().unwrap();
        let problems = tx.check();
        assert!(
            problems.is_empty(),
            "{ctx}: Rivet check reported {} problem(s): {:?}",
            problems.len(),
            problems
                .iter()
                .take(20)
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
        );
        let got = export_tx(&tx);
        assert_same_dump(&ctx, "Go dump", &want, "Rivet export", &got);
        // A second read transaction sees the same thing.
        drop(tx);
        assert_same_dump(
            &ctx,
            "Go dump",
            &want,
            "Rivet export (2nd tx)",
            &export_db(&db),
        );
    }
    if let Some(before) = before {
        assert!(
            std::fs::read(&path).unwrap() == before,
            "{ctx}: a read-only open changed the file"
        );
    }
}

fn go_to_rust_matrix(scenario: &str) {
    let peer = require_peer!();
    for page_size in PAGE_SIZES {
        for mode in FreelistMode::ALL {
            go_to_rust(&peer, scenario, page_size, mode);
        }
    }
}

#[test]
fn go_to_rust_basic() {
    go_to_rust_matrix("basic");
}

#[test]
fn go_to_rust_nested() {
    go_to_rust_matrix("nested");
}

#[test]
fn go_to_rust_overflow() {
    go_to_rust_matrix("overflow");
}

#[test]
fn go_to_rust_merge() {
    go_to_rust_matrix("merge");
}

#[test]
fn go_to_rust_sequences() {
    go_to_rust_matrix("sequences");
}

/// bigfree writes ~80-120 MB per file (about 0.6 s in Go); with 1024-byte pages and a synced
/// freelist it exercises the 0xFFFF freelist count rule (asserted in `go_to_rust`).
#[test]
fn go_to_rust_bigfree() {
    go_to_rust_matrix("bigfree");
}

#[test]
fn go_to_rust_all() {
    go_to_rust_matrix("all");
}

/// The peer's `widgets` file (the reference test vector) reads back in Rivet.
#[test]
fn go_widgets_vector_reads_in_rivet() {
    let peer = require_peer!();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("widgets.db");
    peer.run_ok(&["widgets", path_str(&path)]);
    let db = open(&path, true, false);
    assert_rivet_clean(&db, "widgets");
    assert_eq!(
        export_db(&db),
        b"{\"bucket\":[\"widgets\"]}\n{\"bucket\":[\"widgets\"],\"key\":\"foo\",\"value\":\"bar\"}\n"
    );
}

// ------------------------------------------------------------------------------------------
// Rust -> Go

/// Keys and values that exercise the dump encoding.
fn awkward_strings() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = vec![
        vec![0x00],
        vec![0x01],
        vec![0x7f],
        vec![0x80],
        vec![0xff],
        b"\xed\xa0\x80".to_vec(), // a surrogate
        b"\xc0\xaf".to_vec(),     // overlong
        b"quote\"back\\slash".to_vec(),
        b"ctl\x08\x0c\n\r\t\x0b\x1b\x1f end".to_vec(),
        "h\u{e9}llo \u{2028} \u{1f600} <&>".as_bytes().to_vec(),
        vec![b'L'; 1000],
        vec![0xfe; 1200],
        vec![b'x'; 4000],
    ];
    v.push((0u8..0x20).collect());
    v
}

/// Several commits of Rivet writes covering the interesting layouts.
fn rivet_workload(db: &Db, model: &mut Model) {
    let mut rng = Rng::new(0x5eed);
    // 1: three levels, keys at every level, inline and paged buckets, awkward bytes.
    update(db, model, |o| {
        o.create_bucket(p!["l1"]);
        o.create_bucket(p!["l1", "l2"]);
        o.create_bucket(p!["l1", "l2", "l3"]);
        for i in 0..10 {
            o.put(
                p!["l1"],
                format!("k1-{i}").as_bytes(),
                format!("v1-{i}").as_bytes(),
            );
            o.put(
                p!["l1", "l2"],
                format!("k2-{i}").as_bytes(),
                &pattern_bytes(&format!("l2{i}"), 30),
            );
        }
        o.put(p!["l1", "l2", "l3"], b"x", b"1");
        o.put(p!["l1", "l2", "l3"], b"zero", b"");
        o.create_bucket(p!["inline"]);
        for (k, v) in [("i1", "one"), ("i2", "two"), ("i3", "")] {
            o.put(p!["inline"], k.as_bytes(), v.as_bytes());
        }
        o.create_bucket(p!["paged"]);
        for i in 0..400 {
            o.put(
                p!["paged"],
                format!("p{i:04}").as_bytes(),
                &pattern_bytes(&format!("p{i}"), 64),
            );
        }
        o.create_bucket(p!["paged", "inline-child"]);
        o.put(p!["paged", "inline-child"], b"k", b"v");
        o.create_bucket(p!["binary"]);
        let awkward = awkward_strings();
        for (i, k) in awkward.iter().enumerate() {
            let v = &awkward[(i + 3) % awkward.len()];
            o.put(p!["binary"], k, v);
        }
        o.create_bucket(p!["binary", b"\xff\x00name"]);
        o.put(p!["binary", b"\xff\x00name"], b"\x80", b"");
        o.set_sequence(p!["l1"], 7);
        o.set_sequence(p!["l1", "l2"], u64::MAX);
        for _ in 0..3 {
            o.next_sequence(p!["inline"]);
        }
        o.set_sequence(p!["paged"], (1 << 63) + 5);
        // Many sibling buckets whose sizes sweep across the inline threshold (page size / 4)
        // of every page size.
        o.create_bucket(p!["many"]);
        for i in 0..150usize {
            let name = format!("b{i:03}");
            o.create_bucket(p!["many", name]);
            if i % 7 != 0 {
                o.put(p!["many", name], b"v", &pattern_bytes(&name, i * 30));
            }
        }
    });
    // 2: overflow values.
    update(db, model, |o| {
        o.create_bucket(p!["overflow"]);
        for n in [5_000usize, 100_000, 1_000_000] {
            o.put(
                p!["overflow"],
                format!("big-{n:07}").as_bytes(),
                &rng.bytes(n),
            );
        }
        for i in 0..50 {
            o.put(
                p!["overflow"],
                format!("small-{i:03}").as_bytes(),
                &rng.bytes(20 + i),
            );
        }
        o.create_bucket(p!["overflow", "sub"]);
        o.put(p!["overflow", "sub"], b"big", &rng.bytes(20_000));
    });
    // 3-4: 20 000 random keys in two commits.
    let mut keys: Vec<Vec<u8>> = (0..20_000)
        .map(|_| format!("m{:016x}", rng.next_u64()).into_bytes())
        .collect();
    keys.sort();
    keys.dedup();
    rng.shuffle(&mut keys);
    for half in keys.chunks(keys.len() / 2 + 1) {
        update(db, model, |o| {
            o.create_bucket_if_not_exists(p!["merge"]);
            for k in half {
                let n = 8 + (k[5] as usize % 60);
                o.put(
                    p!["merge"],
                    k,
                    &pattern_bytes(&String::from_utf8_lossy(k), n),
                );
            }
        });
    }
    // 5: delete most of them, so pages merge.
    update(db, model, |o| {
        for (i, k) in keys.iter().enumerate() {
            if i % 17 != 0 {
                o.delete(p!["merge"], k);
            }
        }
    });
    // 6: a rolled-back transaction changes nothing.
    let before = model.dump();
    let r = db.update(|tx| {
        tx.delete_bucket(b"merge")?;
        tx.create_bucket(b"never")?.put(b"k", b"v")?;
        Err::<(), _>(rivet::Error::Callback("roll back".into()))
    });
    assert!(r.is_err());
    assert_same_dump("after rollback", "model", &before, "Rivet", &export_db(db));
    // 7: more puts, overwrites, deletes, bucket deletes, shrinking a paged bucket to inline.
    update(db, model, |o| {
        for _ in 0..40 {
            let k = keys[rng.below(keys.len() as u64) as usize].clone();
            o.put(p!["merge"], &k, &[b"after-merge-".as_slice(), &k].concat());
        }
        o.put(p!["overflow"], b"big-1000000", &rng.bytes(3_000));
        o.delete(p!["overflow"], b"big-0005000");
        o.put(p!["overflow"], b"big-0100000", &rng.bytes(200_000));
        o.delete_bucket(p!["l1", "l2"]);
        o.create_bucket(p!["l1", "l2"]);
        o.put(p!["l1", "l2"], b"again", b"recreated");
        for i in 4..400 {
            o.delete(p!["paged"], format!("p{i:04}").as_bytes());
        }
        o.set_sequence(p!["l1"], 0);
        o.next_sequence(p!["paged", "inline-child"]);
        // Grow small buckets past the inline threshold and shrink big ones below it.
        for i in 0..150usize {
            let name = format!("b{i:03}");
            match i % 3 {
                0 => o.put(
                    p!["many", name],
                    b"v",
                    &pattern_bytes(&name, (150 - i) * 30),
                ),
                1 => o.put(p!["many", name], b"w", b"small"),
                _ => o.delete(p!["many", name], b"v"),
            }
        }
        o.delete_bucket(p!["many", "b042"]);
    });
    // 8: an empty commit.
    update(db, model, |_| {});
}

/// A few Rivet changes on top of whatever the file holds.
fn rivet_touch(db: &Db, model: &mut Model, tag: &str) {
    update(db, model, |o| {
        let name = format!("rivet-{tag}");
        o.create_bucket_if_not_exists(p![name]);
        for i in 0..200 {
            o.put(
                p![name],
                format!("t{i:04}").as_bytes(),
                &pattern_bytes(&format!("{tag}{i}"), 50),
            );
        }
        o.put(p![name], b"overflow", &vec![0xab; 9_000]);
        o.next_sequence(p![name]);
        if model_has(o.model, &[b"go-added".to_vec()]) {
            for i in (0..500).step_by(4) {
                o.delete(p!["go-added"], format!("k{i:05}").as_bytes());
            }
            o.cursor_delete(p!["go-added"], |i| i % 2 == 0);
        }
    });
}

fn model_has(m: &Model, path: &[Vec<u8>]) -> bool {
    let mut b = &m.root;
    for p in path {
        match b.entries.get(p) {
            Some(MEntry::Bucket(sub)) => b = sub,
            _ => return false,
        }
    }
    true
}

struct RoundTrip {
    page_size: usize,
    /// Rivet writes with `no_freelist_sync`.
    no_freelist_sync: bool,
    /// Flags for the peer's `modify`.
    modify_flags: &'static [&'static str],
    /// Rivet reopens the Go-modified file read-write with `no_freelist_sync`.
    reopen_no_freelist_sync: bool,
}

fn rust_to_go(rt: RoundTrip) {
    let peer = require_peer!();
    let ctx = format!(
        "Rust->Go page-size={} no_freelist_sync={} modify{:?} reopen no_freelist_sync={}",
        rt.page_size, rt.no_freelist_sync, rt.modify_flags, rt.reopen_no_freelist_sync
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rivet.db");
    let mut model = Model::default();
    {
        let db = create(&path, rt.page_size, rt.no_freelist_sync);
        assert_eq!(db.page_size(), rt.page_size);
        rivet_workload(&db, &mut model);
        assert_rivet_clean(&db, &ctx);
        assert_same_dump(
            &ctx,
            "model",
            &model.dump(),
            "Rivet export",
            &export_db(&db),
        );
    }
    check_with_go(&peer, &path, &model, &format!("{ctx}: after Rivet wrote"));

    // Go modifies the file; Rivet reads it.
    peer.modify(&path, rt.modify_flags);
    model.apply_go_modify();
    check_with_go(&peer, &path, &model, &format!("{ctx}: after Go modify"));
    {
        let db = open(&path, true, false);
        assert_rivet_clean(&db, &format!("{ctx}: Rivet read-only after Go modify"));
        assert_same_dump(
            &ctx,
            "Go dump",
            &peer.dump(&path),
            "Rivet export",
            &export_db(&db),
        );
    }
    // Rivet writes again.
    {
        let db = open(&path, false, rt.reopen_no_freelist_sync);
        assert_rivet_clean(&db, &format!("{ctx}: Rivet read-write after Go modify"));
        assert_same_dump(
            &ctx,
            "model",
            &model.dump(),
            "Rivet export",
            &export_db(&db),
        );
        rivet_touch(&db, &mut model, "again");
        assert_rivet_clean(&db, &format!("{ctx}: after Rivet's second write"));
        assert_same_dump(
            &ctx,
            "model",
            &model.dump(),
            "Rivet export",
            &export_db(&db),
        );
    }
    check_with_go(
        &peer,
        &path,
        &model,
        &format!("{ctx}: after Rivet's second write"),
    );
}

/// Go's check must print OK and Go's dump must equal the model (and Rivet's export).
fn check_with_go(peer: &Peer, path: &Path, model: &Model, ctx: &str) {
    peer.check(path, ctx);
    let go = peer.dump(path);
    assert_same_dump(ctx, "model", &model.dump(), "Go dump", &go);
    let db = open(path, true, false);
    assert_same_dump(ctx, "Go dump", &go, "Rivet export", &export_db(&db));
}

#[test]
fn rust_to_go_1024() {
    rust_to_go(RoundTrip {
        page_size: 1024,
        no_freelist_sync: false,
        modify_flags: &[],
        reopen_no_freelist_sync: true,
    });
}

#[test]
fn rust_to_go_4096() {
    rust_to_go(RoundTrip {
        page_size: 4096,
        no_freelist_sync: false,
        modify_flags: &[],
        reopen_no_freelist_sync: false,
    });
}

#[test]
fn rust_to_go_16384() {
    rust_to_go(RoundTrip {
        page_size: 16384,
        no_freelist_sync: false,
        modify_flags: &["-freelist", "hashmap"],
        reopen_no_freelist_sync: false,
    });
}

/// Rivet leaves the freelist unsynced and Go keeps it that way.
#[test]
fn rust_to_go_no_freelist_sync_4096() {
    rust_to_go(RoundTrip {
        page_size: 4096,
        no_freelist_sync: true,
        modify_flags: &["-no-freelist-sync"],
        reopen_no_freelist_sync: true,
    });
}

/// Rivet leaves the freelist unsynced; Go's read-write open writes one first, and Rivet
/// continues with a synced freelist.
#[test]
fn rust_to_go_no_freelist_sync_1024() {
    rust_to_go(RoundTrip {
        page_size: 1024,
        no_freelist_sync: true,
        modify_flags: &[],
        reopen_no_freelist_sync: false,
    });
}

#[test]
fn rust_to_go_no_freelist_sync_16384() {
    rust_to_go(RoundTrip {
        page_size: 16384,
        no_freelist_sync: true,
        modify_flags: &["-no-freelist-sync", "-freelist", "hashmap"],
        reopen_no_freelist_sync: true,
    });
}

/// Rivet frees more than 65 535 pages at 1024-byte pages, so the freelist page header count
/// must be 0xFFFF with the real count in the first element; Go must read it, modify the file,
/// and Rivet must continue from Go's freelist.
#[test]
fn rust_to_go_bigfree_1024() {
    let peer = require_peer!();
    let ctx = "Rust->Go bigfree page-size=1024";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bigfree.db");
    let mut model = Model::default();
    {
        let db = create(&path, 1024, false);
        update(&db, &mut model, |o| {
            o.create_bucket(p!["bigfree"]);
            o.put(p!["bigfree"], b"survivor", b"still here");
        });
        // The doomed data bypasses the model (it is deleted again).
        let mut rng = Rng::new(6);
        for part in 0..10 {
            db.update(|tx| {
                let b = tx
                    .create_bucket_if_not_exists(b"bigfree-doomed")?
                    .create_bucket(format!("part-{part:02}").as_bytes())?;
                for i in 0..5000 {
                    b.put(format!("v{i:06}").as_bytes(), &rng.bytes(1000))?;
                }
                Ok::<_, rivet::Error>(())
            })
            .unwrap();
        }
        db.update(|tx| tx.delete_bucket(b"bigfree-doomed")).unwrap();
        assert_rivet_clean(&db, ctx);
    }
    let h = read_freelist_header(&path);
    assert_eq!(h.header_count, 0xffff, "{ctx}: freelist header {h:?}");
    assert!(h.count > 0xffff, "{ctx}: freelist header {h:?}");
    check_with_go(&peer, &path, &model, &format!("{ctx}: after Rivet wrote"));

    peer.modify(&path, &[]);
    model.apply_go_modify();
    let h = read_freelist_header(&path);
    assert_eq!(
        h.header_count, 0xffff,
        "{ctx}: freelist header after Go modify {h:?}"
    );
    check_with_go(&peer, &path, &model, &format!("{ctx}: after Go modify"));
    {
        let db = open(&path, false, false);
        assert_rivet_clean(&db, &format!("{ctx}: Rivet read-write after Go modify"));
        rivet_touch(&db, &mut model, "again");
        assert_rivet_clean(&db, &format!("{ctx}: after Rivet's second write"));
    }
    check_with_go(
        &peer,
        &path,
        &model,
        &format!("{ctx}: after Rivet's second write"),
    );
}

/// A file Rivet shrank (free pages at its end given back after a big delete) is a valid
/// bbolt file: Go checks it clean, dumps the same content, writes to it (growing it again),
/// and Rivet reads Go's result.
#[test]
fn shrunk_file_checks_clean_in_go() {
    let peer = require_peer!();
    let ctx = "Rust->Go shrunk file page-size=4096";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shrunk.db");
    let mut model = Model::default();
    {
        let db = create(&path, 4096, false);
        update(&db, &mut model, |o| {
            o.create_bucket(p!["kept"]);
            o.put(p!["kept"], b"survivor", b"still here");
        });
        let mut rng = Rng::new(12);
        db.update(|tx| {
            let b = tx.create_bucket(b"doomed")?;
            for i in 0..3000 {
                b.put(format!("v{i:06}").as_bytes(), &rng.bytes(6000))?;
            }
            Ok::<_, rivet::Error>(())
        })
        .unwrap();
        let full = std::fs::metadata(&path).unwrap().len();
        db.update(|tx| tx.delete_bucket(b"doomed")).unwrap();
        rivet_touch(&db, &mut model, "after-delete");
        rivet_touch(&db, &mut model, "after-delete-2");
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(len < full / 10, "{ctx}: not shrunk: {len} of {full} bytes");
        assert_rivet_clean(&db, ctx);
    }
    check_with_go(
        &peer,
        &path,
        &model,
        &format!("{ctx}: after Rivet shrank it"),
    );
    peer.modify(&path, &[]);
    model.apply_go_modify();
    check_with_go(&peer, &path, &model, &format!("{ctx}: after Go modify"));
}

/// A file compacted in place (`Db::compact_in_place`: leaves moved and packed, the file cut)
/// is a valid bbolt file: Go checks it clean, dumps the same content and writes to it.
#[test]
fn file_compacted_in_place_checks_clean_in_go() {
    let peer = require_peer!();
    let ctx = "Rust->Go compacted in place page-size=4096";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in-place.db");
    let mut model = Model::default();
    {
        let db = create(&path, 4096, false);
        let mut rng = Rng::new(21);
        update(&db, &mut model, |o| {
            o.create_bucket(p!["data"]);
            o.create_bucket(p!["data", "nested"]);
            for i in 0..6000u32 {
                let v = rng.bytes(20 + (i as usize * 13) % 400);
                o.put(
                    p!["data"],
                    format!("k{:07}", (i * 7919) % 6000).as_bytes(),
                    &v,
                );
                if i % 5 == 0 {
                    o.put(p!["data", "nested"], &i.to_be_bytes(), &v);
                }
            }
        });
        update(&db, &mut model, |o| {
            for i in 0..6000u32 {
                if rng.below(10) < 8 {
                    o.delete(p!["data"], format!("k{i:07}").as_bytes());
                    if i % 5 == 0 {
                        o.delete(p!["data", "nested"], &i.to_be_bytes());
                    }
                }
            }
        });
        let before = std::fs::metadata(&path).unwrap().len();
        let done = db.compact_in_place(64, |_| {}).unwrap();
        assert!(
            done.file_bytes < before / 2,
            "{ctx}: {before} -> {} bytes",
            done.file_bytes
        );
        assert_rivet_clean(&db, ctx);
    }
    check_with_go(&peer, &path, &model, &format!("{ctx}: after compaction"));
    peer.modify(&path, &[]);
    model.apply_go_modify();
    check_with_go(&peer, &path, &model, &format!("{ctx}: after Go modify"));
}

// ------------------------------------------------------------------------------------------
// Rivet modifies Go files

/// Several Rivet commits of puts, deletes and bucket deletes on a Go-generated file.
fn rivet_modifies_go(scenario: &str, page_size: usize, mode: FreelistMode, no_freelist_sync: bool) {
    let peer = require_peer!();
    let ctx = format!(
        "Rivet modifies Go {scenario} page-size={page_size} {} (Rivet no_freelist_sync={no_freelist_sync})",
        mode.name()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{scenario}.db"));
    peer.gen(scenario, &path, page_size, mode);
    let go = peer.dump(&path);
    let mut rng = Rng::new(page_size as u64);
    let mut model;
    {
        let db = open(&path, false, no_freelist_sync);
        assert_rivet_clean(&db, &ctx);
        model = Model::load(&db.begin_read().unwrap());
        assert_same_dump(&ctx, "Go dump", &go, "model loaded by Rivet", &model.dump());

        // 1: in every bucket delete every 4th plain key, add a key, bump the sequence.
        update(&db, &mut model, |o| {
            for path in o.model.bucket_paths() {
                let keys = o.model.bucket_ref(&path).plain_keys();
                for k in keys.iter().skip(1).step_by(4) {
                    o.delete(&path, k);
                }
                o.put(&path, b"rivet-mod", b"value from rivet");
                o.next_sequence(&path);
            }
        });
        assert_rivet_clean(&db, &format!("{ctx}: commit 1"));
        // 2: delete the last sub-bucket of every top-level bucket; add nested buckets with
        // overflow values.
        update(&db, &mut model, |o| {
            for top in o.model.root.bucket_names() {
                let top_path = vec![top];
                if let Some(last) = o.model.bucket_ref(&top_path).bucket_names().pop() {
                    let mut sub = top_path.clone();
                    sub.push(last);
                    o.delete_bucket(&sub);
                }
            }
            o.create_bucket(p!["rivet-added"]);
            o.create_bucket(p!["rivet-added", "a"]);
            o.create_bucket(p!["rivet-added", "a", "b"]);
            o.put(p!["rivet-added", "a"], b"5k", &rng.bytes(5_000));
            o.put(p!["rivet-added", "a"], b"100k", &rng.bytes(100_000));
            o.put(p!["rivet-added", "a", "b"], b"1m", &rng.bytes(1_000_000));
            o.create_bucket(p!["rivet-shrink"]);
            for i in 0..500 {
                o.put(
                    p!["rivet-shrink"],
                    format!("s{i:04}").as_bytes(),
                    &rng.bytes(40),
                );
            }
        });
        assert_rivet_clean(&db, &format!("{ctx}: commit 2"));
        // 3: many random keys.
        let keys: Vec<Vec<u8>> = (0..3000).map(|_| rng.bytes(12)).collect();
        update(&db, &mut model, |o| {
            for k in &keys {
                let n = 10 + rng.below(190) as usize;
                o.put(p!["rivet-added"], k, &rng.bytes(n));
            }
        });
        // 4: delete most of them; shrink values; a paged bucket becomes inline again.
        update(&db, &mut model, |o| {
            for (i, k) in keys.iter().enumerate() {
                if i % 3 != 0 {
                    o.delete(p!["rivet-added"], k);
                }
            }
            // And thin out every original bucket through a cursor.
            for path in o.model.bucket_paths() {
                if path[0] != b"rivet-added" && path[0] != b"rivet-shrink" {
                    o.cursor_delete(&path, |i| i % 5 == 3);
                }
            }
            o.put(p!["rivet-added", "a"], b"100k", b"small now");
            o.delete(p!["rivet-added", "a", "b"], b"1m");
            for i in 3..500 {
                o.delete(p!["rivet-shrink"], format!("s{i:04}").as_bytes());
            }
            o.set_sequence(p!["rivet-added"], u64::MAX);
        });
        assert_rivet_clean(&db, &format!("{ctx}: commit 4"));
        assert_same_dump(
            &ctx,
            "model",
            &model.dump(),
            "Rivet export",
            &export_db(&db),
        );
    }
    let h = read_freelist_header(&path);
    if no_freelist_sync {
        assert_eq!(
            h.pgid, None,
            "{ctx}: Rivet should not have synced the freelist: {h:?}"
        );
    } else {
        assert!(
            h.pgid.is_some(),
            "{ctx}: Rivet should have synced the freelist: {h:?}"
        );
        if scenario == "bigfree" && page_size == 1024 {
            assert_eq!(h.header_count, 0xffff, "{ctx}: freelist header {h:?}");
        }
    }
    check_with_go(&peer, &path, &model, &ctx);
}

#[test]
fn rivet_modifies_go_nested_1024() {
    rivet_modifies_go("nested", 1024, FreelistMode::Array, false);
}

#[test]
fn rivet_modifies_go_overflow_4096_hashmap() {
    rivet_modifies_go("overflow", 4096, FreelistMode::Hashmap, false);
}

/// Go left the freelist unsynced; Rivet writes one.
#[test]
fn rivet_modifies_go_merge_16384_unsynced() {
    rivet_modifies_go("merge", 16384, FreelistMode::NoSync, false);
}

/// Go synced the freelist; Rivet stops syncing it.
#[test]
fn rivet_modifies_go_sequences_4096_rivet_unsynced() {
    rivet_modifies_go("sequences", 4096, FreelistMode::Array, true);
}

/// The freelist count overflows the page header (0xFFFF); Rivet reads and rewrites it.
#[test]
fn rivet_modifies_go_bigfree_1024() {
    rivet_modifies_go("bigfree", 1024, FreelistMode::Array, false);
}

#[test]
fn rivet_modifies_go_all_4096() {
    rivet_modifies_go("all", 4096, FreelistMode::Array, false);
}
