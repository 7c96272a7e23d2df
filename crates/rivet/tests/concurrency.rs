//! Concurrency: readers keep their snapshots while a writer commits and the file grows through
//! several remaps; a thread holding a read transaction can write; group commit coalesces
//! callers and isolates a failing one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use rivet::{Db, Error, Options};

fn snapshot(tx: &rivet::Tx) -> Vec<(Vec<u8>, Vec<u8>)> {
    let Some(b) = tx.bucket(b"data").unwrap() else {
        return Vec::new();
    };
    b.iter()
        .map(|e| {
            let e = e.unwrap();
            (e.key().to_vec(), e.value().unwrap().to_vec())
        })
        .collect()
}

#[test]
fn readers_keep_snapshots_through_commits_and_remaps() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path().join("c.db"),
        Options {
            no_sync: true,
            page_size: Some(4096),
            ..Options::default()
        },
    )
    .unwrap();
    db.update(|tx| {
        tx.create_bucket(b"data")?
            .put(b"counter", &0u64.to_be_bytes())
    })
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(5));
    let mut readers = Vec::new();
    for r in 0..4 {
        let (db, stop, start) = (db.clone(), stop.clone(), start.clone());
        readers.push(std::thread::spawn(move || {
            start.wait();
            let mut checks = 0u64;
            let mut last_txid = 0;
            while !stop.load(Ordering::Relaxed) || checks < 3 {
                let tx = db.begin_read().unwrap();
                assert!(tx.id() >= last_txid, "txids must be monotonic");
                last_txid = tx.id();
                let before = snapshot(&tx);
                // Every committed state has counter == number of "blob" keys.
                let counter = before.iter().find(|(k, _)| k == b"counter").unwrap();
                let counter = u64::from_be_bytes(counter.1[..8].try_into().unwrap());
                assert_eq!(
                    counter as usize,
                    before.len() - 1,
                    "reader {r} saw a torn state"
                );
                std::thread::yield_now();
                std::thread::sleep(std::time::Duration::from_millis(1 + r as u64));
                assert_eq!(
                    snapshot(&tx),
                    before,
                    "reader {r}'s snapshot changed under it"
                );
                checks += 1;
            }
            checks
        }));
    }
    start.wait();
    let mut grew = 0;
    let mut last_size = 0;
    for i in 1..=150u64 {
        db.update(|tx| {
            let b = tx.bucket(b"data")?.unwrap();
            b.put(
                format!("blob{i:04}").as_bytes(),
                &vec![i as u8; 20_000 + (i as usize * 997) % 30_000],
            )?;
            b.put(b"counter", &i.to_be_bytes())
        })
        .unwrap();
        let size = std::fs::metadata(db.path()).unwrap().len();
        if size != last_size {
            grew += 1;
            last_size = size;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() >= 3);
    }
    assert!(
        grew >= 4,
        "the file should grow through several remaps (grew {grew} times)"
    );
    assert!(db.check().unwrap().is_empty());
    db.view(|tx| {
        assert_eq!(snapshot(tx).len(), 151);
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn long_reader_pins_pages_but_writer_never_waits() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path().join("c.db"),
        Options {
            no_sync: true,
            ..Options::default()
        },
    )
    .unwrap();
    db.update(|tx| {
        let b = tx.create_bucket(b"data")?;
        for i in 0..2000u32 {
            b.put(format!("{i:05}").as_bytes(), &[1u8; 100])?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    // The same thread holds a read transaction and then writes (bbolt can deadlock here).
    let reader = db.begin_read().unwrap();
    let before = snapshot(&reader);
    for round in 0..20u8 {
        db.update(|tx| {
            let b = tx.bucket(b"data")?.unwrap();
            for i in 0..2000u32 {
                b.put(format!("{i:05}").as_bytes(), &[round; 100])?;
            }
            Ok::<_, Error>(())
        })
        .unwrap();
    }
    assert_eq!(
        snapshot(&reader),
        before,
        "old snapshot intact after 20 rewrites"
    );
    assert!(reader.check().is_empty());
    drop(reader);
    // Once the reader is gone the pinned pages are reused instead of growing the file.
    let size = std::fs::metadata(db.path()).unwrap().len();
    for _ in 0..20 {
        db.update(|tx| tx.bucket(b"data")?.unwrap().put(b"00001", &[9u8; 100]))
            .unwrap();
    }
    assert_eq!(std::fs::metadata(db.path()).unwrap().len(), size);
    assert!(db.check().unwrap().is_empty());
}

#[test]
fn batch_coalesces_and_isolates_failures() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path().join("b.db"),
        Options {
            no_sync: true,
            max_batch_delay: std::time::Duration::from_millis(5),
            ..Options::default()
        },
    )
    .unwrap();
    db.update(|tx| tx.create_bucket(b"b").map(|_| ())).unwrap();
    let commits_before = db.stats().commit_n;
    let mut handles = Vec::new();
    for t in 0..8u32 {
        let db = db.clone();
        handles.push(std::thread::spawn(move || {
            let mut failures = 0;
            for i in 0..25u32 {
                let fail = t == 3 && i % 5 == 0;
                let r = db.batch(move |tx| {
                    if fail {
                        return Err(Error::Callback(format!("caller {t}/{i} fails")));
                    }
                    tx.bucket(b"b")?
                        .unwrap()
                        .put(format!("{t}-{i}").as_bytes(), b"v")
                });
                if fail {
                    let e = r.unwrap_err();
                    assert!(
                        e.to_string().contains(&format!("caller {t}/{i} fails")),
                        "{e}"
                    );
                    failures += 1;
                } else {
                    r.unwrap();
                }
            }
            failures
        }));
    }
    let failures: u32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(failures, 5);
    let commits = db.stats().commit_n - commits_before;
    assert!(
        commits < 200,
        "200 batch calls should share transactions (got {commits} commits)"
    );
    db.view(|tx| {
        let b = tx.bucket(b"b")?.unwrap();
        assert_eq!(b.iter().count(), 195);
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// A lone `batch` caller does not wait out `max_batch_delay` (bbolt's leader always does):
/// the leader stops waiting once every caller inside `batch` has joined (issue 13, kind 6).
#[test]
fn a_lone_batch_caller_does_not_wait_for_the_delay() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path().join("lone.db"),
        Options {
            no_sync: true,
            max_batch_delay: std::time::Duration::from_secs(10),
            ..Options::default()
        },
    )
    .unwrap();
    db.update(|tx| tx.create_bucket(b"b").map(|_| ())).unwrap();
    let t0 = std::time::Instant::now();
    for i in 0..5u32 {
        db.batch(move |tx| tx.bucket(b"b")?.unwrap().put(&i.to_be_bytes(), b"v"))
            .unwrap();
    }
    // Five waits of the 10 s delay would take 50 s; none is a few milliseconds.
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(5),
        "lone callers waited: {:?}",
        t0.elapsed()
    );
    db.view(|tx| {
        assert_eq!(tx.bucket(b"b")?.unwrap().iter().count(), 5);
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// `batch` functions may borrow from their caller and return a value (issue 13, kind 6):
/// four scoped threads share batches, each function reads a borrowed table, returns the
/// bucket's sequence it took, and a function whose first run fails is retried alone (bbolt's
/// rule) and still gets its own value back.
#[test]
fn batch_functions_borrow_and_return_values() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path().join("borrow.db"),
        Options {
            no_sync: true,
            ..Options::default()
        },
    )
    .unwrap();
    db.update(|tx| tx.create_bucket(b"b").map(|_| ())).unwrap();
    // Borrowed, not moved: lives on this stack frame.
    let names: Vec<Vec<u8>> = (0..200u32)
        .map(|i| format!("k{i:03}").into_bytes())
        .collect();
    let failures = std::sync::atomic::AtomicUsize::new(0);
    let barrier = Barrier::new(4);
    let taken: Vec<Vec<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4usize)
            .map(|t| {
                let (db, names, failures, barrier) = (&db, &names, &failures, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let mut mine = Vec::new();
                    for name in names.iter().skip(t).step_by(4) {
                        // Borrowed by the function: its first run fails for one name in ten.
                        let failed_once = AtomicBool::new(false);
                        let seq = db
                            .batch(|tx| {
                                let b = tx.bucket(b"b")?.expect("bucket b");
                                if name.ends_with(b"7") && !failed_once.swap(true, Ordering::SeqCst)
                                {
                                    failures.fetch_add(1, Ordering::SeqCst);
                                    return Err(Error::Callback("first run fails".into()));
                                }
                                let seq = b.next_sequence()?;
                                b.put(name, &seq.to_be_bytes())?;
                                Ok(seq)
                            })
                            .unwrap();
                        mine.push(seq);
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        failures.load(Ordering::SeqCst),
        20,
        "first runs that failed"
    );
    // Every function got the sequence number its committed run stored.
    let mut all: Vec<u64> = taken.iter().flatten().copied().collect();
    all.sort_unstable();
    assert_eq!(all.len(), 200);
    all.dedup();
    assert_eq!(all.len(), 200, "two callers got the same sequence number");
    db.view(|tx| {
        let b = tx.bucket(b"b")?.unwrap();
        for (t, mine) in taken.iter().enumerate() {
            for (name, seq) in names.iter().skip(t).step_by(4).zip(mine) {
                assert_eq!(b.get(name)?, Some(&seq.to_be_bytes()[..]), "{name:?}");
            }
        }
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// Writers queue for the write transaction: every waiting writer is woken in turn (the wake
/// is skipped only when nobody waits), so concurrent updates all apply and nobody hangs.
#[test]
fn concurrent_writers_all_get_their_turn() {
    let dir = tempfile::tempdir().unwrap();
    let db = std::sync::Arc::new(
        Db::open(
            dir.path().join("w.db"),
            Options {
                no_sync: true,
                ..Options::default()
            },
        )
        .unwrap(),
    );
    db.update(|tx| tx.create_bucket(b"c").map(|_| ())).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let db = db.clone();
            std::thread::spawn(move || {
                for _ in 0..200 {
                    db.update(|tx| {
                        let b = tx.bucket(b"c")?.unwrap();
                        let n = b.get(b"n")?.map_or(0, |v| {
                            u64::from_be_bytes(v.try_into().expect("8-byte counter"))
                        });
                        // Hold the writer a moment so the others queue up behind it.
                        std::thread::yield_now();
                        b.put(b"n", &(n + 1).to_be_bytes())
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let n = db
        .view(|tx| Ok::<_, rivet::Error>(tx.bucket(b"c")?.unwrap().get(b"n")?.map(<[u8]>::to_vec)))
        .unwrap();
    assert_eq!(n, Some(800u64.to_be_bytes().to_vec()));
}
