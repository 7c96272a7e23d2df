//! Real process kills: a child process commits a deterministic workload in a loop and prints
//! one line per acknowledged commit; the parent SIGKILLs it at a random moment, reopens the
//! file, checks it, and verifies that it holds every acknowledged commit and exactly the
//! state after the last acknowledged commit or after the one in flight. The same file is
//! reused across all kills, so every child also starts on a file left by a killed process.
//! Every 16th commit the child also runs an online compaction (`Db::compact_in_place`),
//! whose commits keep the content, and gives back free pages at the end of the file as soon
//! as there are two, so kills land in both.
//!
//! The child is this test binary re-run with `RIVET_CHILD_ROLE=crash ...` (see
//! `reliability_support::child`); `examples/crash_child.rs` runs the same code by hand.
//! 20 kills by default, 200 with `RIVET_THOROUGH=1`.

mod reliability_support;

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reliability_support::child::{commit_count, role, run_crash_child, self_command, Replayer};
use reliability_support::{base_seed, dump_db, thorough, Rng};
use rivet::{Db, Options};

/// Child role: runs the crash workload when started by the parent test.
#[test]
fn crash_child_role() {
    let Some(role) = role() else { return };
    let mut parts = role.splitn(3, ' ');
    if parts.next() != Some("crash") {
        return;
    }
    let seed: u64 = parts.next().unwrap().parse().unwrap();
    let path = parts.next().unwrap();
    run_crash_child(std::path::Path::new(path), seed, None);
}

struct Ack {
    n: u64,
    txid: u64,
    digest: String,
}

#[test]
fn sigkill_at_random_moments() {
    if role().is_some() {
        return;
    }
    let kills = if thorough() { 200 } else { 20 };
    let seed = base_seed(42);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("killed.db");
    let mut rng = Rng::new(seed);
    let mut rep = Replayer::new(seed);
    let mut digests = vec![rep.model.digest()];
    let mut digest_at = |n: u64, rep: &mut Replayer| -> String {
        while rep.n < n {
            rep.advance();
            digests.push(rep.model.digest());
        }
        digests[n as usize].clone()
    };
    let (mut committed_n, mut committed_txid) = (0u64, 0u64);
    let (mut acks_total, mut in_flight_present, mut before_ready) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    for k in 0..kills {
        let mut child = self_command(
            "crash_child_role",
            &format!("crash {seed} {}", path.display()),
        )
        .spawn()
        .expect("spawn child");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        if rng.chance(3, 4) {
            // Wait until the child has opened the file, then kill it mid-workload.
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let l = rx
                    .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                    .unwrap_or_else(|_| panic!("kill {k}: the child never became ready"));
                let ready = l.starts_with("READY");
                lines.push(l);
                if ready {
                    break;
                }
            }
            std::thread::sleep(Duration::from_micros(rng.below(60_000) as u64));
        } else {
            // Kill at any moment, possibly while the child is still opening the file.
            before_ready += 1;
            std::thread::sleep(Duration::from_micros(rng.below(30_000) as u64));
        }
        child.kill().expect("SIGKILL the child");
        let status = child.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        if status.success() {
            panic!("kill {k}: the child exited by itself: {lines:?}");
        }
        let acks: Vec<Ack> = lines
            .iter()
            .filter_map(|l| {
                let mut f = l.strip_prefix("ACK ")?.split(' ');
                Some(Ack {
                    n: f.next()?.parse().ok()?,
                    txid: f.next()?.parse().ok()?,
                    digest: f.next()?.to_string(),
                })
            })
            .collect();
        for a in &acks {
            assert_eq!(
                a.digest,
                digest_at(a.n, &mut rep),
                "kill {k}: the child's state after commit {} differs from the model",
                a.n
            );
        }
        acks_total += acks.len() as u64;
        let (acked_n, acked_txid) = acks
            .last()
            .map_or((committed_n, committed_txid), |a| (a.n, a.txid));
        // After the kill: the file opens, checks clean, holds every acknowledged commit.
        let db = Db::open(&path, Options::default())
            .unwrap_or_else(|e| panic!("kill {k}: reopen after SIGKILL: {e}"));
        let problems = db.check().unwrap();
        assert!(
            problems.is_empty(),
            "kill {k}: check after SIGKILL: {problems:?}"
        );
        let (txid, state) = dump_db(&db).unwrap();
        drop(db);
        let n = commit_count(&state);
        assert!(
            n == acked_n || n == acked_n + 1,
            "kill {k}: the file holds commit {n}, but commit {acked_n} was the last \
             acknowledged (only the one in flight may be added)"
        );
        assert!(
            txid >= acked_txid,
            "kill {k}: txid {txid} < acknowledged {acked_txid}"
        );
        assert_eq!(
            state.digest(),
            digest_at(n, &mut rep),
            "kill {k}: the file's content is not the state after commit {n}"
        );
        if n == acked_n + 1 {
            in_flight_present += 1;
        }
        committed_n = n;
        committed_txid = txid;
    }
    println!(
        "crash_kill: {kills} SIGKILLs survived ({before_ready} at a random moment from spawn), \
         {acks_total} commits acknowledged, {committed_n} commits in the file, in-flight commit \
         found durable after {in_flight_present} kills, {:.1}s",
        start.elapsed().as_secs_f64()
    );
    assert!(committed_n > 0, "the children never committed");
}

/// Minimal reproduction of an engine bug found while writing this test (the child first
/// kept its commit count in the root bucket's sequence): `Tx::root()` returns a bucket whose
/// `set_sequence`/`next_sequence` succeed and are visible inside the transaction, but the
/// commit never copies the root bucket's sequence into the meta page (`meta.root_sequence`
/// is only ever read, in `Tx::new`), so the value is silently lost on commit, even for the
/// same `Db` handle. Either persist it (bbolt's meta holds the root bucket header
/// `{root, sequence}`) or refuse sequence changes on the root bucket.
#[test]
fn root_bucket_sequence_survives_commit() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("s.db"), Options::default()).unwrap();
    db.update(|tx| tx.root().set_sequence(7)).unwrap();
    let seq = db
        .view(|tx| Ok::<_, rivet::Error>(tx.root().sequence()))
        .unwrap();
    assert_eq!(
        seq, 7,
        "an acknowledged set_sequence on the root bucket was lost"
    );
}
