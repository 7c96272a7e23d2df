//! Replays the `resp_parse` fuzz corpus (fuzz/corpus/resp_parse/) through the fuzz target's
//! checks (tests/resp_support/mod.rs), plus a byte-at-a-time parse, so CI exercises the
//! corpus without cargo-fuzz or nightly. Fails naming every file that panics or disagrees.
//!
//! Fuzzing itself (nightly): `cd fuzz && cargo +nightly fuzz run resp_parse`.

mod resp_support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

#[test]
fn resp_parse_corpus_replays_cleanly() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/resp_parse");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("corpus directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        files.len() >= 12,
        "expected the seed corpus in {}, found {} files",
        dir.display(),
        files.len()
    );
    let mut failures = Vec::new();
    for f in &files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("read {}: {e}", f.display()));
        let name = f.file_name().map_or_else(
            || f.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        match catch_unwind(AssertUnwindSafe(|| resp_support::check(&data, true))) {
            Ok(Ok(())) => {}
            Ok(Err(why)) => failures.push(format!("{name}: {why}")),
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "(non-string panic)".into());
                failures.push(format!("{name}: panicked: {msg}"));
            }
        }
    }
    println!("resp_corpus: {} files replayed", files.len());
    assert!(
        failures.is_empty(),
        "{} of {} corpus files failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}
