//! Online compaction (`Db::compact_in_place`, issue 12 item 7): the content never changes,
//! the file shrinks to near what copy-compaction gives, writers interleave with it, readers
//! keep their snapshots, and the result is a file that checks clean.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rivet::{Db, Error, InPlaceProgress, Options};

fn opts() -> Options {
    Options {
        no_sync: true,
        ..Options::default()
    }
}

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn export(db: &Db) -> Vec<u8> {
    let mut out = Vec::new();
    db.view(|tx| rivet::export::write_jsonl(tx, &mut out))
        .unwrap();
    out
}

/// A database with random-order keys in a big bucket, a nested paged bucket, overflow
/// values, an inline bucket, then 80% of the keys deleted at random.
fn build(path: &std::path::Path, seed: u64) -> Db {
    let db = Db::open(path, opts()).unwrap();
    let mut rng = Rng(seed);
    let mut keys: Vec<u32> = (0..30_000).collect();
    for i in (1..keys.len()).rev() {
        keys.swap(i, rng.below(i as u64 + 1) as usize);
    }
    for chunk in keys.chunks(5000) {
        db.update(|tx| {
            let a = tx.create_bucket_if_not_exists(b"a")?;
            let sub = a.create_bucket_if_not_exists(b"sub")?;
            for &k in chunk {
                let v = vec![(k % 251) as u8; 40 + (k as usize * 7) % 260];
                a.put(format!("key{k:08}").as_bytes(), &v)?;
                if k % 6 == 0 {
                    sub.put(&k.to_be_bytes(), &v)?;
                }
            }
            Ok::<_, Error>(())
        })
        .unwrap();
    }
    db.update(|tx| {
        let big = tx.create_bucket(b"big")?;
        for i in 0..40u32 {
            big.put(&i.to_be_bytes(), &vec![i as u8; 9000 + i as usize * 100])?;
        }
        tx.create_bucket(b"tiny")?.put(b"k", b"v")
    })
    .unwrap();
    for chunk in keys.chunks(3000) {
        db.update(|tx| {
            let a = tx.bucket(b"a")?.expect("a");
            let sub = a.bucket(b"sub")?.expect("sub");
            for &k in chunk {
                if rng.below(10) < 8 {
                    a.delete(format!("key{k:08}").as_bytes())?;
                    sub.delete(&k.to_be_bytes())?;
                }
            }
            let big = tx.bucket(b"big")?.expect("big");
            for i in 0..40u32 {
                if rng.below(10) < 3 {
                    big.delete(&i.to_be_bytes())?;
                }
            }
            Ok::<_, Error>(())
        })
        .unwrap();
    }
    db
}

fn len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

#[test]
fn in_place_compaction_keeps_content_and_nears_copy_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("src.db");
    // Keep every free page in the file until the compaction (the subject here).
    let db = build(&path, 1);
    let before = export(&db);
    let start = len(&path);

    // Copy-compaction of the same content, for comparison.
    let copy = dir.path().join("copy.db");
    {
        let dst = Db::open(&copy, opts()).unwrap();
        rivet::compact(&dst, &db, 0).unwrap();
    }
    let offline = len(&copy);

    let mut reports: Vec<InPlaceProgress> = Vec::new();
    let done = db.compact_in_place(256, |p| reports.push(*p)).unwrap();
    let after = len(&path);
    println!(
        "in-place: {start} -> {after} bytes ({} rounds, {} passes, {} leaves moved, {} merged); \
         copy-compaction: {offline} bytes",
        done.rounds, done.passes, done.leaves_moved, done.nodes_merged
    );
    assert_eq!(export(&db), before, "online compaction changed the content");
    assert!(db.check().unwrap().is_empty());
    assert!(reports.len() as u64 == done.rounds && done.rounds > 1);
    assert!(reports.windows(2).all(|w| w[0].rounds < w[1].rounds));
    assert_eq!(done.file_bytes, after);
    assert_eq!(done.bytes_returned(), start - after);
    assert!(
        after * 100 <= offline * 110,
        "in-place result {after} bytes is more than 10% above copy-compaction's {offline}"
    );
    drop(db);
    let db = Db::open(&path, opts()).unwrap();
    assert!(db.check().unwrap().is_empty());
    assert_eq!(export(&db), before);
    // Running it again finds (almost) nothing to do and changes nothing.
    let again = db.compact_in_place(256, |_| {}).unwrap();
    assert!(again.file_bytes <= after);
    assert_eq!(export(&db), before);
}

#[test]
fn writers_and_readers_go_on_during_in_place_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.db");
    let db = build(&path, 2);
    let before = export(&db);
    let start = len(&path);
    let stop = AtomicBool::new(false);
    let written = AtomicU64::new(0);
    std::thread::scope(|s| {
        // A reader holding the starting snapshot keeps seeing it for the first rounds (while
        // it lives, the pages it sees cannot be reused or cut off).
        let mut reader = Some(db.begin_read().unwrap());
        s.spawn(|| {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                db.update(|tx| {
                    tx.create_bucket_if_not_exists(b"live")?
                        .put(&i.to_be_bytes(), &[7u8; 300])
                })
                .unwrap();
                i += 1;
                written.store(i, Ordering::Relaxed);
            }
        });
        let mut rounds = 0;
        let done = db
            .compact_in_place(64, |_| {
                rounds += 1;
                if rounds == 5 {
                    let r = reader.take().expect("reader held until round 5");
                    let mut snap = Vec::new();
                    rivet::export::write_jsonl(&r, &mut snap).unwrap();
                    assert_eq!(snap, before, "the reader's snapshot changed");
                }
            })
            .unwrap();
        stop.store(true, Ordering::Relaxed);
        assert!(reader.is_none(), "only {rounds} rounds");
        println!(
            "busy in-place: {start} -> {} bytes in {rounds} rounds",
            done.file_bytes
        );
    });
    let n = written.load(Ordering::Relaxed);
    assert!(n > 0);
    db.view(|tx| {
        let live = tx.bucket(b"live")?.expect("live");
        for i in 0..n {
            assert_eq!(
                live.get(&i.to_be_bytes())?,
                Some(&[7u8; 300][..]),
                "write {i}"
            );
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    assert!(db.check().unwrap().is_empty());
    assert!(
        len(&path) * 3 < start,
        "little space came back: {} of {start}",
        len(&path)
    );
}
