//! The crash child of the reliability suite, runnable by hand:
//!
//! ```text
//! cargo run --example crash_child -- /tmp/crash.db 42 [LIMIT]
//! ```
//!
//! Opens (or creates) the database, verifies that it holds exactly the state after the commit
//! count stored in it (the root bucket's sequence), prints `READY <n>`, then commits a
//! deterministic workload derived from the seed forever (or LIMIT times), printing
//! `ACK <n> <txid> <digest>` after every acknowledged commit. Kill it with `kill -9` at any
//! moment and run it again: it must start cleanly and continue. `tests/crash_kill.rs` does the
//! same automatically (re-running its own test binary in this role).

#[path = "../tests/reliability_support/mod.rs"]
mod reliability_support;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(seed)) = (args.next(), args.next()) else {
        eprintln!("usage: crash_child DB_PATH SEED [LIMIT]");
        std::process::exit(2);
    };
    let seed: u64 = seed.parse().expect("SEED must be an integer");
    let limit = args
        .next()
        .map(|l| l.parse().expect("LIMIT must be an integer"));
    reliability_support::child::run_crash_child(std::path::Path::new(&path), seed, limit);
}
