//! `rivet bench`: a quick synthetic benchmark, modelled on `bbolt bench`.
//!
//! The write phase puts `--count` keys (the key number big-endian at the start of a
//! `--key-size` buffer, zero values of `--value-size` bytes) into bucket `bench`, in ascending
//! or shuffled order, `--batch-size` keys per transaction. The read phase then scans the bucket
//! with a cursor (seq) or looks every key up in shuffled order (rnd), repeatedly until
//! `--read-time` has passed. Each phase prints its ops, duration, time per op and ops per
//! second. Shuffles use a fixed seed, so runs are repeatable.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::cli::{BenchArgs, Order};
use crate::error::{db_error, CliError, CliResult, EXIT_OK};
use crate::files::NewFile;
use crate::open::{open_write, WriteOptions};
use crate::output::Out;
use crate::progress::Progress;

/// Name of the benchmark's bucket.
const BUCKET: &[u8] = b"bench";

/// Removes the temporary database when the benchmark ends, however it ends.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// splitmix64: a tiny deterministic generator for the shuffles.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn shuffle(&mut self, v: &mut [u64]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// Key numbers in the order of `order`.
fn key_order(count: u64, order: Order, seed: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (0..count).collect();
    if order == Order::Rnd {
        Rng(seed).shuffle(&mut v);
    }
    v
}

/// Writes key number `n` into `key` (big-endian, u64 when the key has room, else u32).
fn fill_key(key: &mut [u8], n: u64) {
    if key.len() >= 8 {
        key[..8].copy_from_slice(&n.to_be_bytes());
    } else {
        key[..4].copy_from_slice(&(n as u32).to_be_bytes());
    }
}

fn check_args(a: &BenchArgs) -> CliResult<()> {
    if a.count == 0 {
        return Err(CliError::new("--count must be at least 1"));
    }
    if !(4..=rivet::format::MAX_KEY_SIZE).contains(&a.key_size) {
        return Err(CliError::new("--key-size must be between 4 and 32768"));
    }
    if a.key_size < 8 && a.count > u64::from(u32::MAX) + 1 {
        return Err(CliError::new(
            "--count above 2^32 needs --key-size 8 or more",
        ));
    }
    if a.value_size > rivet::format::MAX_VALUE_SIZE {
        return Err(CliError::new("--value-size is larger than bbolt allows"));
    }
    Ok(())
}

/// One result line, like `bbolt bench`'s.
fn report(phase: &str, ops: u64, d: Duration) -> String {
    let per_op = d / u32::try_from(ops.max(1)).unwrap_or(u32::MAX);
    let rate = if d.as_secs_f64() > 0.0 {
        (ops as f64 / d.as_secs_f64()) as u64
    } else {
        0
    };
    format!(
        "# {phase}\t{ops} ops\t{}\t({}/op)\t({rate} op/sec)",
        show(d),
        show(per_op)
    )
}

/// A duration with three significant decimals, or whole nanoseconds below a microsecond.
fn show(d: Duration) -> String {
    if d < Duration::from_micros(1) {
        format!("{}ns", d.as_nanos())
    } else {
        format!("{d:.3?}")
    }
}

fn order_name(o: Order) -> &'static str {
    match o {
        Order::Seq => "sequential",
        Order::Rnd => "random",
    }
}

/// Runs the benchmark.
pub fn run(args: &BenchArgs) -> CliResult<u8> {
    check_args(args)?;
    let (path, _guard) = match &args.path {
        Some(p) => {
            if p.exists() {
                return Err(CliError::new(format!(
                    "{}: already exists (bench writes a new file)",
                    p.display()
                )));
            }
            (p.clone(), TempFile(None))
        }
        None => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let p =
                std::env::temp_dir().join(format!("rivet-bench-{}-{nanos}.db", std::process::id()));
            (p.clone(), TempFile(Some(p)))
        }
    };
    // A `--path` file is kept only when the benchmark completes.
    let mut new_file = NewFile::track(&path);
    let db = open_write(
        &path,
        WriteOptions {
            timeout: Duration::from_secs(1),
            create: true,
            page_size: args.page_size,
            no_sync: args.no_sync,
        },
    )?;
    let err = |e| db_error(&path, e);
    // What is measured, on stderr (stdout keeps bbolt bench's two lines for scripts).
    let txs = if args.batch_size == 0 {
        1
    } else {
        args.count.div_ceil(args.batch_size)
    };
    eprintln!(
        "rivet bench: write {} keys ({} B) with {} B values in {} order, {} transaction(s), {}; \
         then read them in {} order for at least {:?}; file {}{}",
        args.count,
        args.key_size,
        args.value_size,
        order_name(args.write_mode),
        txs,
        if args.no_sync {
            "no fsync"
        } else {
            "fsync at every commit"
        },
        order_name(args.read_mode),
        args.read_time,
        path.display(),
        if args.path.is_none() {
            " (deleted afterwards)"
        } else {
            ""
        },
    );

    // Write phase.
    let order = key_order(args.count, args.write_mode, 1);
    let batch = if args.batch_size == 0 {
        args.count
    } else {
        args.batch_size
    };
    let value = vec![0u8; args.value_size];
    let mut key = vec![0u8; args.key_size];
    let progress = Progress::items("writing", args.count);
    let start = Instant::now();
    for chunk in order.chunks(usize::try_from(batch).unwrap_or(usize::MAX)) {
        let tx = db.begin_write().map_err(err)?;
        let b = tx.create_bucket_if_not_exists(BUCKET).map_err(err)?;
        for &n in chunk {
            fill_key(&mut key, n);
            b.put(&key, &value).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        progress.inc(chunk.len() as u64);
    }
    let write_time = start.elapsed();
    drop(progress);

    // Read phase.
    let reads = key_order(args.count, args.read_mode, 2);
    let progress = Progress::spinner("reading", "ops");
    let start = Instant::now();
    let mut ops = 0u64;
    loop {
        let tx = db.begin_read().map_err(err)?;
        let b = tx
            .bucket(BUCKET)
            .map_err(err)?
            .ok_or_else(|| CliError::new("bench bucket vanished"))?;
        let mut seen = 0u64;
        match args.read_mode {
            Order::Seq => {
                for e in b.iter() {
                    black_box(e.map_err(err)?.value());
                    seen += 1;
                }
            }
            Order::Rnd => {
                for &n in &reads {
                    fill_key(&mut key, n);
                    if b.get(&key).map_err(err)?.is_some() {
                        seen += 1;
                    }
                }
            }
        }
        if seen != args.count {
            return Err(CliError::new(format!(
                "read {seen} keys, expected {}",
                args.count
            )));
        }
        ops += seen;
        progress.set(ops);
        if start.elapsed() >= args.read_time {
            break;
        }
    }
    let read_time = start.elapsed();
    drop(progress);
    new_file.keep();

    let mut out = Out::new();
    out.line(report("Write", args.count, write_time))?;
    out.line(report("Read", ops, read_time))?;
    if args.path.is_some() {
        out.line(format!("# Database kept at {}", path.display()))?;
    }
    out.flush()?;
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffled_orders_are_permutations() {
        let mut v = key_order(1000, Order::Rnd, 7);
        assert_ne!(v, key_order(1000, Order::Seq, 7));
        v.sort_unstable();
        assert_eq!(v, key_order(1000, Order::Seq, 7));
    }

    #[test]
    fn keys_are_big_endian() {
        let mut k = [0u8; 10];
        fill_key(&mut k, 0x0102);
        assert_eq!(k, [0, 0, 0, 0, 0, 0, 1, 2, 0, 0]);
        let mut k = [0u8; 4];
        fill_key(&mut k, 0x0102);
        assert_eq!(k, [0, 0, 1, 2]);
    }
}
