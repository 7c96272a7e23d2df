//! Child processes: a test binary re-runs itself (`std::env::current_exe()`) with one test
//! selected and an environment variable naming the role, and the deterministic committing
//! workload that `crash_kill.rs` SIGKILLs (also runnable as `examples/crash_child.rs`).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use super::{apply_all, apply_model, dump_db, gen_ops, GenCfg, MBucket, MEntry, Op, Rng, TxSize};
use rivet::{Db, Options};

/// Environment variable that switches a test binary into a child role.
pub const ROLE_ENV: &str = "RIVET_CHILD_ROLE";

/// The role this process was started with, if any.
pub fn role() -> Option<String> {
    std::env::var(ROLE_ENV).ok()
}

/// A command that re-runs the current test binary executing only `test` (which must check
/// [`role`] and act on it), with `role` in the environment. Stdout is piped.
pub fn self_command(test: &str, role: &str) -> Command {
    let exe = std::env::current_exe().expect("current_exe");
    let mut c = Command::new(exe);
    c.args([test, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE_ENV, role)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    c
}

/// Page size of the crash-child database.
pub const CHILD_PAGE_SIZE: usize = 4096;

/// Bucket and key holding the crash child's commit count.
pub const COUNTER_BUCKET: &[u8] = b"_meta";
pub const COUNTER_KEY: &[u8] = b"n";

/// The commit count recorded in a state (0 for the empty database).
pub fn commit_count(m: &MBucket) -> u64 {
    match m.entries.get(COUNTER_BUCKET) {
        Some(MEntry::Bucket(b)) => match b.entries.get(COUNTER_KEY) {
            Some(MEntry::Value(v)) => u64::from_be_bytes(v[..8].try_into().unwrap()),
            _ => 0,
        },
        _ => 0,
    }
}

/// Replays the crash child's deterministic sequence of commits into a model: commit `n`
/// (1-based) is a function of `(seed, n)` and the state after commit `n - 1`, and stores `n`
/// in `_meta/n` so the commit count can be read back from the file. (The root bucket's
/// sequence would be the natural place, but the engine does not persist it: see
/// `crash_kill.rs`, `root_bucket_sequence_survives_commit`.)
pub struct Replayer {
    seed: u64,
    pub n: u64,
    pub model: MBucket,
}

impl Replayer {
    pub fn new(seed: u64) -> Replayer {
        Replayer {
            seed,
            n: 0,
            model: MBucket::default(),
        }
    }

    fn cfg() -> GenCfg {
        GenCfg {
            key_space: 300,
            ..GenCfg::new(CHILD_PAGE_SIZE)
        }
    }

    /// The ops of commit `n + 1` (not applied yet) and the state after them.
    pub fn next_ops(&self) -> (Vec<Op>, MBucket) {
        let n = self.n + 1;
        let mut rng = Rng::new(self.seed.wrapping_mul(0x0100_0000_01B3) ^ n);
        let size = match TxSize::random(&mut rng) {
            // Large transactions only now and then, so the file stays small.
            TxSize::Large if !n.is_multiple_of(4) => TxSize::Medium,
            s => s,
        };
        let (mut ops, mut next) = gen_ops(&mut rng, &self.model, Self::cfg(), size);
        if n == 1 {
            let op = Op::CreateBucket {
                path: Vec::new(),
                name: COUNTER_BUCKET.to_vec(),
            };
            apply_model(&mut next, &op);
            ops.push(op);
        }
        let op = Op::Put {
            path: vec![COUNTER_BUCKET.to_vec()],
            key: COUNTER_KEY.to_vec(),
            value: n.to_be_bytes().to_vec(),
        };
        apply_model(&mut next, &op);
        ops.push(op);
        (ops, next)
    }

    /// Moves to the state after the next commit.
    pub fn advance(&mut self) {
        let (_, next) = self.next_ops();
        self.model = next;
        self.n += 1;
    }

    /// Advances until `n` commits are applied.
    pub fn advance_to(&mut self, n: u64) {
        while self.n < n {
            self.advance();
        }
    }
}

/// The crash child: opens (or creates) the database at `path`, checks that it holds exactly
/// the state after the commit count recorded in it, prints `READY <n>`, then commits forever
/// (or `limit` times), printing `ACK <n> <txid> <digest>` after each acknowledged commit and
/// flushing stdout, so a parent that kills it knows what was acknowledged.
pub fn run_crash_child(path: &Path, seed: u64, limit: Option<u64>) {
    let db = Db::open(
        path,
        Options {
            page_size: Some(CHILD_PAGE_SIZE),
            // Give back free pages at the end of the file as soon as there are two: kills
            // then also land around file truncations.
            shrink_threshold: 2 * CHILD_PAGE_SIZE as u64,
            ..Options::default()
        },
    )
    .expect("child: open");
    let (_, state) = dump_db(&db).expect("child: read");
    let mut rep = Replayer::new(seed);
    rep.advance_to(commit_count(&state));
    assert_eq!(
        state, rep.model,
        "child: database does not hold the state after commit {}",
        rep.n
    );
    let out = std::io::stdout();
    let mut out = out.lock();
    writeln!(out, "READY {}", rep.n).unwrap();
    out.flush().unwrap();
    let mut done = 0u64;
    while limit.is_none_or(|l| done < l) {
        let (ops, next) = rep.next_ops();
        let n = rep.n + 1;
        let txid = {
            let tx = db.begin_write().expect("child: begin");
            let txid = tx.id();
            apply_all(&tx, &ops).expect("child: apply");
            tx.commit().expect("child: commit");
            txid
        };
        rep.model = next;
        rep.n = n;
        done += 1;
        writeln!(out, "ACK {n} {txid} {}", rep.model.digest()).unwrap();
        out.flush().unwrap();
        // Every 16th commit is followed by an online compaction (commits that keep the
        // content), so kills also land in the middle of one.
        if n.is_multiple_of(16) {
            db.compact_in_place(4, |_| {})
                .expect("child: compact in place");
        }
    }
}
