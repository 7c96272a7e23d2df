//! Measures online compaction (`Db::compact_in_place`) against copy-compaction on a file
//! with most of its keys deleted, while a writer commits durably the whole time.
//!
//! ```text
//! cargo run --release -p rivet --example compact_in_place -- DIR [KEYS] [VALUE_BYTES] [ROUND_LEAVES]
//! ```
//!
//! Loads KEYS random-order keys (default 4,000,000) with values of about VALUE_BYTES (default
//! 230: about 1 GB of file), deletes 80% of them at random, copy-compacts the file into a
//! second one (the size to compare with), then compacts the first one in place with rounds of
//! ROUND_LEAVES leaves (default 32) while a second thread commits one durable put after
//! another, and copy-compacts the result again (same content, the writer's keys included)
//! for the comparison. Prints the sizes, the time taken, and the writer's commit latency
//! (p50, p99, max) for 10 s before the compaction and during it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rivet::{Db, Error, Options};

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
}

fn arg(i: usize, default: u64) -> u64 {
    std::env::args()
        .nth(i)
        .map(|s| s.parse().expect("a number"))
        .unwrap_or(default)
}

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

/// Commits one durable put after another until `stop`; returns each commit's start and
/// latency.
fn writer(db: &Db, stop: &AtomicBool) -> Vec<(Instant, Duration)> {
    let mut lat = Vec::new();
    let mut rng = Rng(99);
    while !stop.load(Ordering::Relaxed) {
        let k = rng.next().to_be_bytes();
        let t = Instant::now();
        db.update(|tx| {
            tx.create_bucket_if_not_exists(b"writer")?
                .put(&k, &[1u8; 100])
        })
        .expect("writer commit");
        lat.push((t, t.elapsed()));
    }
    lat
}

fn summary(lat: &[(Instant, Duration)]) -> String {
    let mut lat: Vec<Duration> = lat.iter().map(|l| l.1).collect();
    lat.sort();
    let q = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    format!(
        "{} commits, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        q(0.5),
        q(0.99),
        q(1.0)
    )
}

/// Copy-compacts `db` into a new file at `path` (synced once at the end); returns its size.
fn copy_compact(db: &Db, path: &std::path::Path) -> Result<u64, Error> {
    let dst = Db::open(
        path,
        Options {
            no_sync: true,
            ..Options::default()
        },
    )?;
    rivet::compact(&dst, db, 0)?;
    dst.sync()?;
    drop(dst);
    Ok(std::fs::metadata(path).expect("stat").len())
}

fn main() -> Result<(), Error> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("usage: compact_in_place DIR ..."),
    );
    let keys = arg(2, 4_000_000);
    let value = arg(3, 230) as usize;
    let round = arg(4, 32) as usize;
    std::fs::create_dir_all(&dir).expect("create DIR");
    let path = dir.join("in-place.db");
    let copy = dir.join("copy.db");
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&copy);

    let t = Instant::now();
    {
        let fast = Db::open(
            &path,
            Options {
                no_sync: true,
                ..Options::default()
            },
        )?;
        let mut order: Vec<u64> = (0..keys).collect();
        let mut rng = Rng(1);
        for i in (1..order.len()).rev() {
            order.swap(i, (rng.next() % (i as u64 + 1)) as usize);
        }
        for chunk in order.chunks(200_000) {
            fast.update(|tx| {
                let b = tx.create_bucket_if_not_exists(b"data")?;
                for &k in chunk {
                    let v = vec![(k % 251) as u8; value / 2 + (k as usize * 7) % value];
                    b.put(&k.to_be_bytes(), &v)?;
                }
                Ok::<_, Error>(())
            })?;
        }
        let loaded = std::fs::metadata(&path).expect("stat").len();
        eprintln!(
            "loaded {keys} keys: {:.1} MB in {:.1?}",
            mb(loaded),
            t.elapsed()
        );
        for chunk in order.chunks(200_000) {
            fast.update(|tx| {
                let b = tx.bucket(b"data")?.expect("data");
                for &k in chunk {
                    if rng.next() % 10 < 8 {
                        b.delete(&k.to_be_bytes())?;
                    }
                }
                Ok::<_, Error>(())
            })?;
        }
        fast.sync()?;
    }
    let db = Db::open(&path, Options::default())?;
    let start = std::fs::metadata(&path).expect("stat").len();
    eprintln!("deleted 80%: file {:.1} MB", mb(start));

    let t = Instant::now();
    let offline = copy_compact(&db, &copy)?;
    let copy_time = t.elapsed();

    let stop = AtomicBool::new(false);
    let t_start = Instant::now();
    let mut events: Vec<(Instant, String)> = Vec::new();
    let (baseline, during, done, took) = std::thread::scope(|s| {
        let w = s.spawn(|| writer(&db, &stop));
        std::thread::sleep(Duration::from_secs(10));
        stop.store(true, Ordering::Relaxed);
        let baseline = w.join().expect("writer");
        stop.store(false, Ordering::Relaxed);
        let w = s.spawn(|| writer(&db, &stop));
        let t = Instant::now();
        let mut last = Instant::now();
        let done = db.compact_in_place(round, |p| {
            events.push((
                Instant::now(),
                format!(
                    "round {} pass {} file {:.1} MB",
                    p.rounds,
                    p.passes,
                    mb(p.file_bytes)
                ),
            ));
            if last.elapsed() > Duration::from_secs(5) {
                eprintln!(
                    "  round {}, pass {}: {} leaves moved, {} merged, file {:.1} MB",
                    p.rounds,
                    p.passes,
                    p.leaves_moved,
                    p.nodes_merged,
                    mb(p.file_bytes)
                );
                last = Instant::now();
            }
        });
        let took = t.elapsed();
        stop.store(true, Ordering::Relaxed);
        let during = w.join().expect("writer");
        (baseline, during, done, took)
    });
    let done = done?;
    // Copy-compaction of the same content (the writer's keys included) for the comparison.
    let copy_after = dir.join("copy-after.db");
    let _ = std::fs::remove_file(&copy_after);
    let offline_after = copy_compact(&db, &copy_after)?;
    println!(
        "file after deleting 80% of {keys} keys: {:.1} MB",
        mb(start)
    );
    println!(
        "copy-compaction (offline, second file): {:.1} MB in {:.1?}",
        mb(offline),
        copy_time
    );
    println!(
        "in-place compaction: {:.1} MB in {:.1?} ({:.3}x copy-compaction of the same content, {:.1} MB; {} rounds of <= {round} leaves, {} passes, {} leaves moved, {} merged)",
        mb(done.file_bytes),
        took,
        done.file_bytes as f64 / offline_after as f64,
        mb(offline_after),
        done.rounds,
        done.passes,
        done.leaves_moved,
        done.nodes_merged
    );
    println!("writer before (10 s): {}", summary(&baseline));
    println!("writer during compaction: {}", summary(&during));
    let mut gaps: Vec<(f64, String)> = events
        .windows(2)
        .map(|w| (w[1].0.duration_since(w[0].0).as_secs_f64(), w[1].1.clone()))
        .collect();
    gaps.sort_by(|a, b| b.0.total_cmp(&a.0));
    for g in gaps.iter().take(3) {
        eprintln!("longest round: {:.2} s ending {}", g.0, g.1);
    }
    // The slowest commits during the compaction, and the round that ended next.
    let mut slow = during.clone();
    slow.sort_by_key(|l| std::cmp::Reverse(l.1));
    for (at, d) in slow.iter().take(3) {
        let next = events.iter().find(|e| e.0 >= *at + *d);
        eprintln!(
            "slow commit: {:.1} ms at {:.1} s; next round end: {:?}",
            d.as_secs_f64() * 1e3,
            at.duration_since(t_start).as_secs_f64(),
            next.map(|e| (e.0.duration_since(t_start).as_secs_f64(), e.1.clone()))
        );
    }
    assert!(db.check()?.is_empty(), "check after in-place compaction");
    Ok(())
}
