//! Loads N random 24-byte keys with 150-byte values in one transaction and reports the time
//! per phase: `cargo run --release --example bulk_load -- [N] [PATH] [sorted]`. With `sorted`
//! the keys are inserted in ascending order at fill percent 1.0 (the bulk-load path).

use std::time::Instant;

use rivet::{Db, Options};

/// The deterministic xorshift stream the keys are drawn from; every phase replays it.
fn key_stream() -> impl FnMut() -> u64 {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let path = args.next().unwrap_or_else(|| "bulk_load.db".into());
    let sorted = args.next().as_deref() == Some("sorted");
    let _ = std::fs::remove_file(&path);
    let db = Db::open(&path, Options::default())?;
    let mut next = key_stream();
    let start = Instant::now();
    let tx = db.begin_write()?;
    let b = tx.create_bucket(b"bench")?;
    let mut key = [0u8; 24];
    let value = [7u8; 150];
    if sorted {
        b.set_fill_percent(1.0);
    }
    for i in 0..n {
        if sorted {
            key[..8].copy_from_slice(&i.to_be_bytes());
            key[8..16].copy_from_slice(&next().to_le_bytes());
            b.append(&key, &value)?;
        } else {
            for chunk in key.chunks_mut(8) {
                chunk.copy_from_slice(&next().to_le_bytes());
            }
            b.put(&key, &value)?;
        }
    }
    let inserted = start.elapsed();
    tx.commit()?;
    let total = start.elapsed();
    println!(
        "{n} {} inserts in one transaction: insert {:.2}s, commit {:.2}s, total {:.2}s ({:.0} ns/key), file {} MiB",
        if sorted { "sorted (append)" } else { "random" },
        inserted.as_secs_f64(),
        (total - inserted).as_secs_f64(),
        total.as_secs_f64(),
        total.as_nanos() as f64 / n as f64,
        std::fs::metadata(&path)?.len() >> 20
    );
    // Random reads: replay the key sequence in one read transaction.
    if !sorted {
        let mut next = key_stream();
        let tx = db.begin_read()?;
        let b = tx.bucket(b"bench")?.ok_or("bucket missing")?;
        let start = Instant::now();
        let mut found = 0u64;
        for _ in 0..n {
            for chunk in key.chunks_mut(8) {
                chunk.copy_from_slice(&next().to_le_bytes());
            }
            if let Some(v) = b.get(&key)? {
                found += u64::from(v[0] == 7);
            }
        }
        let el = start.elapsed();
        println!(
            "{n} random gets: {:.2}s ({:.0} ns/get), {found} found",
            el.as_secs_f64(),
            el.as_nanos() as f64 / n as f64
        );
    }
    // Removals: delete every other key of the sequence in one transaction.
    if !sorted {
        let mut next = key_stream();
        let start = Instant::now();
        let tx = db.begin_write()?;
        let b = tx.bucket(b"bench")?.ok_or("bucket missing")?;
        for i in 0..n {
            for chunk in key.chunks_mut(8) {
                chunk.copy_from_slice(&next().to_le_bytes());
            }
            if i % 2 == 0 {
                b.delete(&key)?;
            }
        }
        tx.commit()?;
        let el = start.elapsed();
        println!(
            "{} removals in one transaction: {:.2}s",
            n / 2,
            el.as_secs_f64()
        );
    }
    let start = Instant::now();
    let problems = db.check()?;
    println!(
        "check: {} problems in {:.2}s",
        problems.len(),
        start.elapsed().as_secs_f64()
    );
    std::fs::remove_file(&path)?;
    Ok(())
}
