//! Arbitrary bytes, or mutations of valid seed databases, opened read-only and read-write:
//! every read API, `check`, backup, export and a small write transaction must return `Ok` or
//! an error, never panic, hang or read out of bounds. See
//! `crates/rivet/tests/reliability_support/fuzz_input.rs` for the input format.
#![no_main]

#[path = "../../crates/rivet/tests/reliability_support/fuzz_input.rs"]
#[allow(dead_code)]
mod fuzz_input;

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

struct Env {
    seeds: Vec<Vec<u8>>,
    path: PathBuf,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rivet-fuzz-open-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Env {
            seeds: fuzz_input::build_seeds(&dir),
            path: dir.join("input.db"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let env = env();
    let file = fuzz_input::decode_open_input(data, &env.seeds);
    std::fs::write(&env.path, &file).unwrap();
    fuzz_input::exercise_file(&env.path);
});
