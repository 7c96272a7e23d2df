//! Fuzz replay in `cargo test`: random mutations of several valid database files (1, 2 and
//! 4 KiB pages; inline, nested and deleted buckets; overflow values; with and without a
//! persisted freelist) are opened read-only and read-write; every read API, `check`, backup
//! and export run on them, and for read-write opens a small write transaction. Nothing may
//! panic. Mutations include byte flips, extreme values in header fields, pages copied over
//! other pages, truncation, trailing junk, and meta fields changed with a valid checksum.
//! Also replays every input in `fuzz/corpus/open_file` and `fuzz/corpus/ops_model` (the
//! cargo-fuzz corpora) through the same code the fuzz targets run.
//!
//! 1,000 cases by default (deterministic), 20,000 with `RIVET_THOROUGH=1`.

mod reliability_support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use reliability_support::fuzz_input::{
    build_seeds, decode_open_input, exercise_file, fix_meta_checksums, mutate, run_ops_model,
};
use reliability_support::thorough;

fn seeds() -> &'static Vec<Vec<u8>> {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        build_seeds(dir.path())
    })
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../fuzz/corpus/{target}"))
}

#[test]
fn mutated_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mutated.db");
    let seeds = seeds();
    let cases = if thorough() { 20_000 } else { 1000 };
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let strategy = (
        0..seeds.len(),
        proptest::collection::vec(any::<[u8; 6]>(), 1..12),
        any::<bool>(),
    );
    let opened = std::sync::atomic::AtomicU64::new(0);
    let start = std::time::Instant::now();
    runner
        .run(&strategy, |(seed, cmds, fix)| {
            let mut file = mutate(&seeds[seed], &cmds.concat());
            if fix {
                fix_meta_checksums(&mut file);
            }
            std::fs::write(&path, &file).unwrap();
            exercise_file(&path);
            if rivet::Db::open(
                &path,
                rivet::Options {
                    read_only: true,
                    ..rivet::Options::default()
                },
            )
            .is_ok()
            {
                opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    println!(
        "fuzz_replay: {cases} mutated files ({} still opened afterwards) in {:.1}s",
        opened.into_inner(),
        start.elapsed().as_secs_f64()
    );
}

#[test]
fn seeds_are_valid() {
    let dir = tempfile::tempdir().unwrap();
    for (i, s) in seeds().iter().enumerate() {
        let p = dir.path().join(format!("s{i}.db"));
        std::fs::write(&p, s).unwrap();
        let db = rivet::Db::open(&p, rivet::Options::default()).unwrap();
        assert!(db.check().unwrap().is_empty(), "seed {i}");
    }
}

#[test]
fn replay_fuzz_corpora() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corpus.db");
    let mut n = 0;
    for target in ["open_file", "ops_model"] {
        let Ok(entries) = std::fs::read_dir(corpus_dir(target)) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in files {
            let data = std::fs::read(&f).unwrap();
            let result = std::panic::catch_unwind(|| {
                if target == "open_file" {
                    std::fs::write(&path, decode_open_input(&data, seeds())).unwrap();
                    exercise_file(&path);
                } else {
                    run_ops_model(&data, &path);
                }
            });
            if result.is_err() {
                panic!("{target}: input {} panics", f.display());
            }
            n += 1;
        }
    }
    println!("fuzz_replay: {n} corpus inputs replayed");
}

/// Writes the seed files into `fuzz/corpus/open_file` as raw inputs (first byte 0), plus a
/// few mutation inputs. Run by hand: `cargo test -p rivet --test fuzz_replay -- --ignored`.
#[test]
#[ignore = "writes the fuzz seed corpus; run by hand"]
fn write_seed_corpus() {
    let dir = corpus_dir("open_file");
    std::fs::create_dir_all(&dir).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for (i, s) in seeds().iter().enumerate() {
        // Only the pages below the high-water mark: the rest is preallocated zeros.
        let p = tmp.path().join(format!("s{i}.db"));
        std::fs::write(&p, s).unwrap();
        let db = rivet::Db::open(
            &p,
            rivet::Options {
                read_only: true,
                ..rivet::Options::default()
            },
        )
        .unwrap();
        let hwm = db.begin_read().unwrap().size() as usize;
        let mut raw = vec![0u8];
        raw.extend_from_slice(&s[..hwm]);
        std::fs::write(dir.join(format!("seed-raw-{i}")), raw).unwrap();
        std::fs::write(
            dir.join(format!("seed-mut-{i}")),
            [0xC0 | i as u8, 0x13, 1, 0, 0, 0xFF, 0xFF],
        )
        .unwrap();
    }
    let dir = corpus_dir("ops_model");
    std::fs::create_dir_all(&dir).unwrap();
    let ops: Vec<u8> = vec![
        4, 0, 4, 1, 0, 0, 5, 10, 0, 0, 7, 0, 1, 9, 255, 3, 0, 5, 7, 6, 0, 9, 0, 5, 10, 8, 4, 2, 0,
        2, 33, 251, 7, 5, 1, 7,
    ];
    std::fs::write(dir.join("seed-0"), ops).unwrap();
}

/// A database whose buckets `cyclic` have their root page pointed at the root bucket's page,
/// so each of them contains itself (a corrupt file of the kind the `open_file` fuzzer made).
fn cyclic_file(dir: &Path, cyclic: &[&[u8]]) -> PathBuf {
    let path = dir.join("cyclic.db");
    let db = rivet::Db::open(
        &path,
        rivet::Options {
            page_size: Some(4096),
            ..rivet::Options::default()
        },
    )
    .unwrap();
    db.update(|tx| {
        for name in [&b"a"[..], b"b", b"c"] {
            let b = tx.create_bucket(name)?;
            for i in 0..100u32 {
                b.put(&i.to_be_bytes(), &[1; 64])?;
            }
        }
        Ok::<_, rivet::Error>(())
    })
    .unwrap();
    let root = db.begin_read().unwrap().meta().root;
    drop(db);
    let mut file = std::fs::read(&path).unwrap();
    let ps = 4096;
    let page = file[root as usize * ps..(root as usize + 1) * ps].to_vec();
    let node = rivet::format::NodePage::parse(&page, root).unwrap();
    assert!(node.is_leaf());
    for i in 0..node.count() {
        let (_, key, value) = node.leaf_elem(i).unwrap();
        if cyclic.contains(&key) {
            let off = root as usize * ps + (value.as_ptr() as usize - page.as_ptr() as usize);
            file[off..off + 8].copy_from_slice(&root.to_le_bytes());
        }
    }
    std::fs::write(&path, file).unwrap();
    path
}

/// Runs `f` on another thread; fails if it has not finished after `secs` seconds.
fn finishes_within(secs: u64, what: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    if rx
        .recv_timeout(std::time::Duration::from_secs(secs))
        .is_err()
    {
        panic!("{what} did not finish within {secs} s");
    }
}

/// Minimal reproduction of an engine bug found by the `open_file` fuzzer (a 10 s timeout):
/// `rivet::export::write_jsonl` walks nested buckets with an explicit stack but neither
/// limits the depth nor remembers visited root pages, so a file in which a bucket's root
/// page is the page of an ancestor (here: bucket `a` points at the root bucket's page, so it
/// contains `a`, which contains `a`, ...) makes it emit lines forever, with paths growing by
/// one level each time. `check` reports the damage ("page referenced more than once") and
/// returns; the export should return `Error::Corrupted` likewise.
#[test]
fn export_terminates_on_a_bucket_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let path = cyclic_file(dir.path(), &[b"a"]);
    let db = rivet::Db::open(&path, rivet::Options::default()).unwrap();
    assert!(!db.check().unwrap().is_empty(), "check sees the cycle");
    finishes_within(10, "write_jsonl on a bucket cycle", move || {
        let tx = db.begin_read().unwrap();
        let r = rivet::export::write_jsonl(&tx, &mut std::io::sink());
        assert!(r.is_err(), "a cyclic file must not export cleanly");
    });
}

/// Compaction of the same kind of file, with two cyclic buckets, fails cleanly.
#[test]
fn compact_terminates_on_bucket_cycles() {
    let dir = tempfile::tempdir().unwrap();
    let path = cyclic_file(dir.path(), &[b"a", b"b"]);
    let dst = dir.path().join("compacted.db");
    finishes_within(10, "compact on bucket cycles", move || {
        let src = rivet::Db::open(
            &path,
            rivet::Options {
                read_only: true,
                ..rivet::Options::default()
            },
        )
        .unwrap();
        let dst = rivet::Db::open(&dst, rivet::Options::default()).unwrap();
        assert!(rivet::compact(&dst, &src, 0).is_err());
    });
}

/// The other walkers terminate on the same files.
#[test]
fn check_stats_and_backup_terminate_on_bucket_cycles() {
    let dir = tempfile::tempdir().unwrap();
    let path = cyclic_file(dir.path(), &[b"a", b"b"]);
    finishes_within(20, "check/stats/backup on bucket cycles", move || {
        let db = rivet::Db::open(&path, rivet::Options::default()).unwrap();
        let tx = db.begin_read().unwrap();
        assert!(!tx.check().is_empty());
        let _ = tx.root().stats();
        // Opening a bucket whose root is an ancestor's root is refused (issue 12).
        match tx.bucket(b"a") {
            Ok(Some(a)) => drop(a.stats()),
            Ok(None) => panic!("bucket a exists"),
            Err(e) => assert!(matches!(e, rivet::Error::Corrupted { .. }), "{e}"),
        }
        tx.write_to(&mut std::io::sink()).unwrap();
    });
}
