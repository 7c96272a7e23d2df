//! Arbitrary bytes decoded into a sequence of operations (puts, deletes, bucket creation and
//! deletion, sequences, seeks, commits, rollbacks, reopens) run against Rivet and a BTreeMap
//! model: any divergence, error or panic is a finding. See
//! `crates/rivet/tests/reliability_support/fuzz_input.rs` for the decoding.
#![no_main]

#[path = "../../crates/rivet/tests/reliability_support/fuzz_input.rs"]
#[allow(dead_code)]
mod fuzz_input;

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rivet-fuzz-ops-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("ops.db")
    })
}

fuzz_target!(|data: &[u8]| {
    fuzz_input::run_ops_model(data, path());
});
