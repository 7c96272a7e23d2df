//! Concurrency stress with history checkers.
//!
//! * Many readers, one writer, for a bounded time (2 s by default, 30 s with
//!   `RIVET_THOROUGH=1`): the writer commits random workloads (growth, remaps, overflow
//!   values, bucket deletes, rollbacks) and records the digest of every committed state by
//!   txid; every read transaction must see exactly the state of its txid (also when read a
//!   second time later: repeatable reads, including long-lived readers that span many
//!   commits), txids are monotonic per reader thread, and a read started after a commit was
//!   acknowledged sees at least that commit.
//! * `Db::batch` under contention: threads issue calls that each take a fresh bucket sequence
//!   number and store it under their own key; some calls fail on purpose. Every acknowledged
//!   call must be applied exactly once, every failed call not at all, and the calls must
//!   have been coalesced into fewer transactions.

mod reliability_support;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use reliability_support::{apply_all, dump, gen_ops, thorough, GenCfg, MBucket, Rng, TxSize};
use rivet::{Db, Error, Options};

fn duration() -> Duration {
    if thorough() {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(2)
    }
}

#[test]
fn readers_see_exactly_one_committed_state() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path().join("stress.db"),
        Options {
            no_sync: true,
            page_size: Some(4096),
            ..Options::default()
        },
    )
    .unwrap();
    let history: Arc<RwLock<HashMap<u64, String>>> = Arc::default();
    {
        let tx = db.begin_read().unwrap();
        history
            .write()
            .unwrap()
            .insert(tx.id(), dump(&tx).unwrap().digest());
    }
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + duration();
    let writer = {
        let (db, history, acked, stop) = (db.clone(), history.clone(), acked.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut rng = Rng::new(7);
            let cfg = GenCfg {
                key_space: 300,
                ..GenCfg::new(4096)
            };
            let mut model = MBucket::default();
            let (mut commits, mut rollbacks) = (0u64, 0u64);
            while Instant::now() < deadline {
                let size = TxSize::random(&mut rng);
                let (ops, next) = gen_ops(&mut rng, &model, cfg, size);
                let tx = db.begin_write().unwrap();
                let txid = tx.id();
                apply_all(&tx, &ops).unwrap();
                if rng.chance(1, 15) {
                    tx.rollback();
                    rollbacks += 1;
                    continue;
                }
                // Recorded before the commit: a reader may see the state as soon as the
                // commit publishes it.
                history.write().unwrap().insert(txid, next.digest());
                tx.commit().unwrap();
                acked.store(txid, Ordering::SeqCst);
                model = next;
                commits += 1;
            }
            stop.store(true, Ordering::SeqCst);
            (commits, rollbacks)
        })
    };
    let readers: Vec<_> = (0..4)
        .map(|r| {
            let (db, history, acked, stop) =
                (db.clone(), history.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut rng = Rng::new(100 + r);
                let mut last = 0u64;
                let (mut reads, mut rereads, mut long_lived) = (0u64, 0u64, 0u64);
                while !stop.load(Ordering::SeqCst) {
                    let floor = acked.load(Ordering::SeqCst);
                    let tx = db.begin_read().unwrap();
                    let txid = tx.id();
                    assert!(
                        txid >= last,
                        "reader {r}: txid went back from {last} to {txid}"
                    );
                    assert!(
                        txid >= floor,
                        "reader {r}: started after commit {floor} was acknowledged but sees {txid}"
                    );
                    last = txid;
                    let want = history.read().unwrap().get(&txid).cloned();
                    let want = want.unwrap_or_else(|| panic!("reader {r}: unknown txid {txid}"));
                    let got = dump(&tx).unwrap();
                    assert_eq!(
                        got.digest(),
                        want,
                        "reader {r}: torn or wrong state at {txid}"
                    );
                    reads += 1;
                    if rng.chance(1, 4) {
                        // Keep the snapshot while the writer commits, then read it again.
                        let hold = if rng.chance(1, 10) {
                            long_lived += 1;
                            Duration::from_millis(50)
                        } else {
                            Duration::from_micros(500)
                        };
                        std::thread::sleep(hold);
                        let again = dump(&tx).unwrap();
                        assert_eq!(again, got, "reader {r}: repeatable read broken at {txid}");
                        // Backward iteration agrees with forward iteration.
                        for e in tx.root().iter() {
                            let e = e.unwrap();
                            let b = tx.bucket(e.key()).unwrap().unwrap();
                            let fwd: Vec<Vec<u8>> =
                                b.iter().map(|e| e.unwrap().key().to_vec()).collect();
                            let mut bwd: Vec<Vec<u8>> =
                                b.iter().rev().map(|e| e.unwrap().key().to_vec()).collect();
                            bwd.reverse();
                            assert_eq!(fwd, bwd, "reader {r}: reverse scan differs at {txid}");
                        }
                        rereads += 1;
                    }
                }
                (reads, rereads, long_lived)
            })
        })
        .collect();
    let (commits, rollbacks) = writer.join().unwrap();
    let (mut reads, mut rereads, mut long_lived) = (0, 0, 0);
    for r in readers {
        let (a, b, c) = r.join().unwrap();
        reads += a;
        rereads += b;
        long_lived += c;
    }
    let size = std::fs::metadata(db.path()).unwrap().len();
    println!(
        "stress: {commits} commits, {rollbacks} rollbacks, {reads} read transactions checked \
         ({rereads} re-read after a pause, {long_lived} long-lived), file {size} bytes"
    );
    assert!(db.check().unwrap().is_empty());
    assert!(commits > 10 && reads > 10);
}

#[test]
fn batch_calls_apply_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path().join("batch.db"),
        Options {
            page_size: Some(4096),
            ..Options::default()
        },
    )
    .unwrap();
    let deadline = Instant::now() + duration() / 2;
    let acked: Arc<Mutex<BTreeSet<Vec<u8>>>> = Arc::default();
    let failed: Arc<Mutex<BTreeSet<Vec<u8>>>> = Arc::default();
    let commits_before = db.stats().commit_n;
    let threads: Vec<_> = (0..8u32)
        .map(|t| {
            let (db, acked, failed) = (db.clone(), acked.clone(), failed.clone());
            std::thread::spawn(move || {
                let mut i = 0u32;
                while Instant::now() < deadline {
                    let key = format!("t{t}-{i:06}").into_bytes();
                    let fail = (t * 7 + i) % 11 == 3;
                    let k = key.clone();
                    let r = db.batch(move |tx| {
                        let b = tx.create_bucket_if_not_exists(b"batch")?;
                        let seq = b.next_sequence()?;
                        b.put(&k, &seq.to_be_bytes())?;
                        if fail {
                            return Err(Error::Callback("deliberate failure".into()));
                        }
                        Ok(())
                    });
                    match r {
                        Ok(()) => {
                            assert!(!fail, "a failing call was acknowledged");
                            acked.lock().unwrap().insert(key);
                        }
                        Err(e) => {
                            assert!(fail, "call {t}/{i} failed: {e}");
                            assert!(e.to_string().contains("deliberate"), "{e}");
                            failed.lock().unwrap().insert(key);
                        }
                    }
                    i += 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let failed = failed.lock().unwrap().clone();
    let commits = db.stats().commit_n - commits_before;
    db.view(|tx| {
        let b = tx.bucket(b"batch")?.expect("batch bucket");
        let mut keys = BTreeSet::new();
        let mut seqs = BTreeSet::new();
        for e in b.iter() {
            let e = e?;
            keys.insert(e.key().to_vec());
            let seq = u64::from_be_bytes(e.value().unwrap().try_into().unwrap());
            assert!(seqs.insert(seq), "sequence {seq} handed out twice");
        }
        assert_eq!(keys, acked, "stored calls differ from acknowledged calls");
        assert!(keys.is_disjoint(&failed));
        assert_eq!(
            b.sequence(),
            acked.len() as u64,
            "a committed call ran more than once (or a failed one left a trace)"
        );
        Ok::<_, Error>(())
    })
    .unwrap();
    println!(
        "batch: {} calls acknowledged, {} failed on purpose, {commits} transactions",
        acked.len(),
        failed.len()
    );
    assert!(
        (commits as usize) < acked.len(),
        "calls were not coalesced ({commits} transactions for {} calls)",
        acked.len()
    );
    assert!(db.check().unwrap().is_empty());
}
