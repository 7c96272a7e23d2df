//! Input decoding and checks shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`, which
//! include this file with `#[path]`) and their replay in `tests/fuzz_replay.rs`. Depends only
//! on `rivet` and `std`.
//!
//! * `open_file`: an input is either a raw file (first byte with the high bit clear) or a
//!   list of mutations applied to one of the valid seed databases built by [`build_seeds`]
//!   (high bit set). The file is opened read-only, then read-write, and every read API,
//!   `check`, backup and export run on it, then a small write transaction: any outcome but a
//!   panic, a hang or an out-of-bounds access is fine.
//! * `ops_model`: an input is decoded into a sequence of operations (puts, deletes, bucket
//!   creation and deletion, sequences, cursor seeks, commits, rollbacks, reopens) run against
//!   Rivet and a `BTreeMap` model; any divergence or error panics.

use std::collections::BTreeMap;
use std::path::Path;

use rivet::{Bucket, Db, Options, Tx};

/// Builds small valid databases of different shapes in `dir` and returns their bytes:
/// 1 KiB, 2 KiB and 4 KiB pages, inline and nested buckets, overflow values, a non-empty
/// freelist, and a file written without a freelist (`no_freelist_sync`).
pub fn build_seeds(dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for i in 0..5usize {
        let path = dir.join(format!("seed-{i}-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let ps = [1024, 4096, 1024, 2048, 4096][i];
        let db = Db::open(
            &path,
            Options {
                page_size: Some(ps),
                no_sync: true,
                no_freelist_sync: i == 2,
                ..Options::default()
            },
        )
        .expect("seed: open");
        let r: rivet::Result<()> = (|| {
            match i {
                0 => {
                    db.update(|tx| {
                        let a = tx.create_bucket(b"a")?;
                        for k in 0..60u32 {
                            a.put(format!("key{k:03}").as_bytes(), &[k as u8; 20])?;
                        }
                        let n = a.create_bucket(b"inline")?;
                        n.put(b"x", b"1")?;
                        n.put(b"y", b"2")?;
                        tx.create_bucket(b"big")?.put(b"blob", &[0xAB; 3000])
                    })?;
                    db.update(|tx| {
                        let a = tx.bucket(b"a")?.unwrap();
                        for k in (0..60u32).step_by(3) {
                            a.delete(format!("key{k:03}").as_bytes())?;
                        }
                        a.next_sequence().map(|_| ())
                    })?;
                }
                1 => {
                    db.update(|tx| {
                        for b in 0..3u32 {
                            let bk = tx.create_bucket(format!("b{b}").as_bytes())?;
                            for k in 0..100u32 {
                                bk.put(format!("k{k:04}").as_bytes(), &[b as u8; 40])?;
                            }
                            let nested = bk.create_bucket(b"nested")?;
                            for k in 0..80u32 {
                                nested.put(&k.to_be_bytes(), &[9; 30])?;
                            }
                        }
                        Ok(())
                    })?;
                    db.update(|tx| tx.delete_bucket(b"b1"))?;
                }
                2 => {
                    db.update(|tx| {
                        let a = tx.create_bucket(b"nofreelist")?;
                        for k in 0..40u32 {
                            a.put(&k.to_le_bytes(), &vec![k as u8; (k as usize) * 10])?;
                        }
                        Ok(())
                    })?;
                    db.update(|tx| {
                        tx.bucket(b"nofreelist")?
                            .unwrap()
                            .delete(&3u32.to_le_bytes())
                            .map(|_| ())
                    })?;
                }
                3 => {
                    db.update(|tx| {
                        let a = tx.create_bucket(b"tiny")?;
                        a.put(b"only", b"entry")?;
                        a.set_sequence(42)
                    })?;
                }
                _ => {
                    db.update(|tx| {
                        let a = tx.create_bucket(b"s")?;
                        a.put(b"k1", b"v1")?;
                        a.put(b"k2", &[7; 5000])
                    })?;
                }
            }
            Ok(())
        })();
        r.expect("seed: write");
        drop(db);
        out.push(std::fs::read(&path).expect("seed: read"));
        let _ = std::fs::remove_file(&path);
    }
    out
}

/// The page size a file claims in meta page 0, if plausible.
fn claimed_page_size(file: &[u8]) -> Option<usize> {
    let ps = u32::from_le_bytes(file.get(24..28)?.try_into().ok()?) as usize;
    (ps.is_power_of_two() && (1024..=65536).contains(&ps)).then_some(ps)
}

/// Recomputes the checksums of both meta pages, so mutations of meta fields get past the
/// checksum and reach the code that validates the fields.
pub fn fix_meta_checksums(file: &mut [u8]) {
    let Some(ps) = claimed_page_size(file) else {
        return;
    };
    for m in 0..2 {
        let body = m * ps + rivet::format::META_OFFSET;
        if file.len() < body + rivet::format::META_SIZE {
            continue;
        }
        let sum = rivet::format::fnv1a64(&file[body..body + 56]);
        file[body + 56..body + 64].copy_from_slice(&sum.to_le_bytes());
    }
}

/// Applies mutation commands (6 bytes each) to `base`.
pub fn mutate(base: &[u8], cmds: &[u8]) -> Vec<u8> {
    let mut f = base.to_vec();
    let ps = claimed_page_size(base).unwrap_or(4096);
    for c in cmds.chunks_exact(6) {
        if f.is_empty() {
            break;
        }
        let raw = u32::from_le_bytes([c[1], c[2], c[3], 0]) as usize;
        // Half of the commands aim at page headers and the first elements of a page, where
        // the structure lives; the rest anywhere.
        let pos = if c[0] & 0x10 != 0 {
            let pages = f.len().div_ceil(ps);
            ((raw >> 8) % pages) * ps + (raw & 0x7F)
        } else {
            raw
        } % f.len();
        let v = u16::from_le_bytes([c[4], c[5]]);
        match c[0] % 8 {
            0 | 1 => f[pos] ^= c[4] | 1,
            2 => {
                let end = (pos + 2).min(f.len());
                f[pos..end].copy_from_slice(&v.to_le_bytes()[..end - pos]);
            }
            3 => {
                // An extreme value in a 16-, 32- or 64-bit field.
                let w = [2, 4, 8][c[5] as usize % 3];
                let end = (pos + w).min(f.len());
                let val: u64 = match c[4] % 4 {
                    0 => 0,
                    1 => u64::MAX,
                    2 => 1 << (c[4] % 63),
                    _ => u64::from(v),
                };
                f[pos..end].copy_from_slice(&val.to_le_bytes()[..end - pos]);
            }
            4 => f.truncate(pos.max(1)),
            5 => {
                // Copy a page over another.
                let pages = f.len() / ps;
                if pages > 1 {
                    let (a, b) = (raw % pages, usize::from(v) % pages);
                    let src = f[a * ps..(a + 1) * ps].to_vec();
                    f[b * ps..(b + 1) * ps].copy_from_slice(&src);
                }
            }
            6 => {
                let end = (pos + 64).min(f.len());
                f[pos..end].fill(c[4]);
            }
            _ => {
                // Grow the file with junk.
                let extra = usize::from(v) % (2 * ps);
                f.extend(std::iter::repeat_n(c[4], extra));
            }
        }
    }
    f
}

/// Decodes an `open_file` input into the bytes of a file.
pub fn decode_open_input(data: &[u8], seeds: &[Vec<u8>]) -> Vec<u8> {
    match data.split_first() {
        None => Vec::new(),
        Some((&b0, rest)) if b0 & 0x80 == 0 => rest.to_vec(),
        Some((&b0, rest)) => {
            let base = &seeds[usize::from(b0 & 0x0F) % seeds.len()];
            let mut f = mutate(base, rest);
            if b0 & 0x40 != 0 {
                fix_meta_checksums(&mut f);
            }
            f
        }
    }
}

/// Reads everything reachable in `b` with every read API, within a budget of entries.
fn walk_bucket(b: &Bucket<'_>, depth: usize, budget: &mut usize) {
    if depth > 8 || *budget == 0 {
        return;
    }
    let _ = b.stats();
    let _ = b.sequence();
    let _ = b.root_page();
    let mut keys = Vec::new();
    let mut subs = Vec::new();
    for e in b.iter() {
        let Ok(e) = e else { break };
        *budget = budget.saturating_sub(1);
        if *budget == 0 {
            return;
        }
        keys.push(e.key().to_vec());
        if e.is_bucket() {
            subs.push(e.key().to_vec());
        } else {
            let _ = e
                .value()
                .map(|v| v.iter().map(|&x| u64::from(x)).sum::<u64>());
        }
    }
    for e in b.iter().rev() {
        *budget = budget.saturating_sub(1);
        if e.is_err() || *budget == 0 {
            break;
        }
    }
    let mut c = b.cursor();
    let _ = c.first();
    for _ in 0..3 {
        let _ = c.next();
    }
    let _ = c.last();
    for _ in 0..3 {
        let _ = c.prev();
    }
    let _ = c.seek(b"");
    let _ = c.seek(&[0xFF; 40]);
    for k in keys.iter().step_by(keys.len() / 16 + 1) {
        let _ = b.get(k);
        let _ = b.contains_key(k);
        let _ = c.seek(k);
        let _ = c.next();
        let _ = c.prev();
        let _ = b.range(k.clone()..).next();
        let _ = b.range(..k.clone()).next_back();
        if let Some(p) = k.get(..1) {
            let _ = b.prefix(p).next_back();
        }
    }
    let _ = b.for_each(|_, _| Ok(()));
    for s in subs {
        if let Ok(Some(child)) = b.bucket(&s) {
            walk_bucket(&child, depth + 1, budget);
        }
    }
}

/// Runs every read API on a transaction.
pub fn exercise_tx(tx: &Tx) {
    let mut budget = 20_000;
    walk_bucket(&tx.root(), 0, &mut budget);
    let _ = tx.for_each_bucket(|_| Ok(()));
    let _ = tx.check();
    let _ = tx.size();
    let _ = tx.write_to(&mut std::io::sink());
    // The output is capped: on a file whose buckets form a cycle the export never ends
    // (engine bug, see `export_terminates_on_a_bucket_cycle` in tests/fuzz_replay.rs); the
    // cap turns that into an I/O error so the fuzzer can go on looking for other bugs.
    let _ = rivet::export::write_jsonl(tx, &mut Capped(0));
}

/// A sink that fails after 4 MiB.
struct Capped(usize);

impl std::io::Write for Capped {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len();
        if self.0 > 4 << 20 {
            return Err(std::io::Error::other("export output cap reached"));
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A small write transaction on whatever the file holds; errors are fine.
fn small_write(db: &Db) {
    let Ok(tx) = db.begin_write() else { return };
    let r: rivet::Result<()> = (|| {
        let mut names = Vec::new();
        for e in tx.root().iter().take(3) {
            let e = e?;
            if e.is_bucket() {
                names.push(e.key().to_vec());
            }
        }
        for n in names {
            if let Some(b) = tx.bucket(&n)? {
                let first = b.iter().next().transpose()?.map(|e| e.key().to_vec());
                if let Some(k) = first {
                    let _ = b.delete(&k);
                }
                b.put(b"fuzz-key", b"fuzz-value")?;
            }
        }
        let f = tx.create_bucket_if_not_exists(b"fuzz")?;
        f.put(b"k", &[1; 100])?;
        Ok(())
    })();
    if r.is_ok() {
        let _ = tx.commit();
    }
}

/// Opens the file at `path` read-only and then read-write and exercises everything.
pub fn exercise_file(path: &Path) {
    let ro = Options {
        read_only: true,
        ..Options::default()
    };
    if let Ok(db) = Db::open(path, ro) {
        if let Ok(tx) = db.begin_read() {
            exercise_tx(&tx);
        }
        let _ = db.check();
        let _ = db.stats();
    }
    let rw = Options {
        no_sync: true,
        ..Options::default()
    };
    if let Ok(db) = Db::open(path, rw) {
        if let Ok(tx) = db.begin_read() {
            exercise_tx(&tx);
        }
        small_write(&db);
        let _ = db.check();
    }
}

// ---------------------------------------------------------------------------------------
// ops_model
// ---------------------------------------------------------------------------------------

type Model = BTreeMap<u8, (u64, BTreeMap<Vec<u8>, Vec<u8>>)>;

fn bucket_name(b: u8) -> Vec<u8> {
    format!("bucket{b}").into_bytes()
}

fn compare(tx: &Tx, model: &Model, when: &str) {
    let mut names = Vec::new();
    for e in tx.root().iter() {
        let e = e.expect("iterate root");
        assert!(e.is_bucket(), "{when}: plain key at the top level");
        names.push(e.key().to_vec());
    }
    let want: Vec<Vec<u8>> = model.keys().map(|&b| bucket_name(b)).collect();
    assert_eq!(names, want, "{when}: bucket list");
    for (&b, (seq, kv)) in model {
        let bk = tx.bucket(&bucket_name(b)).expect("open").expect("exists");
        assert_eq!(bk.sequence(), *seq, "{when}: sequence of bucket {b}");
        let got: Vec<(Vec<u8>, Vec<u8>)> = bk
            .iter()
            .map(|e| {
                let e = e.expect("iterate");
                (e.key().to_vec(), e.value().expect("value").to_vec())
            })
            .collect();
        let want: Vec<(Vec<u8>, Vec<u8>)> =
            kv.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(got.len(), want.len(), "{when}: size of bucket {b}");
        assert!(got == want, "{when}: content of bucket {b}");
        let back: Vec<Vec<u8>> = bk
            .iter()
            .rev()
            .map(|e| e.expect("iterate back").key().to_vec())
            .collect();
        assert!(
            back.iter().rev().eq(kv.keys()),
            "{when}: reverse iteration of bucket {b}"
        );
    }
}

/// Runs the operations encoded in `data` on a fresh database at `path` and on a model.
pub fn run_ops_model(data: &[u8], path: &Path) {
    let _ = std::fs::remove_file(path);
    let opts = Options {
        no_sync: true,
        page_size: Some(1024),
        ..Options::default()
    };
    let mut db = Some(Db::open(path, opts.clone()).expect("open"));
    let mut committed: Model = BTreeMap::new();
    let mut pending = committed.clone();
    let mut tx: Option<Tx> = None;
    let mut it = data.iter().copied();
    let mut ops = 0;
    while let Some(op) = it.next() {
        ops += 1;
        if ops > 400 {
            break;
        }
        let mut arg = || it.next().unwrap_or(0);
        let d = db.as_ref().unwrap();
        match op % 11 {
            0..=2 => {
                let (b, k, l) = (arg() % 3, arg() % 64, arg());
                let Some((_, kv)) = pending.get_mut(&b) else {
                    continue;
                };
                let key = format!("k{k:02}").into_bytes();
                let len = match l {
                    250.. => 900 + usize::from(l) * 20,
                    _ => usize::from(l) % 100,
                };
                let value: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_add(l)).collect();
                let t = tx.get_or_insert_with(|| d.begin_write().expect("begin"));
                t.bucket(&bucket_name(b))
                    .expect("open")
                    .expect("exists")
                    .put(&key, &value)
                    .expect("put");
                kv.insert(key, value);
            }
            3 => {
                let (b, k) = (arg() % 3, arg() % 64);
                let Some((_, kv)) = pending.get_mut(&b) else {
                    continue;
                };
                let key = format!("k{k:02}").into_bytes();
                let t = tx.get_or_insert_with(|| d.begin_write().expect("begin"));
                t.bucket(&bucket_name(b))
                    .expect("open")
                    .expect("exists")
                    .delete(&key)
                    .expect("delete");
                kv.remove(&key);
            }
            4 => {
                let b = arg() % 3;
                if pending.contains_key(&b) {
                    continue;
                }
                let t = tx.get_or_insert_with(|| d.begin_write().expect("begin"));
                t.create_bucket(&bucket_name(b)).expect("create bucket");
                pending.insert(b, (0, BTreeMap::new()));
            }
            5 => {
                let b = arg() % 3;
                if !pending.contains_key(&b) {
                    continue;
                }
                let t = tx.get_or_insert_with(|| d.begin_write().expect("begin"));
                t.delete_bucket(&bucket_name(b)).expect("delete bucket");
                pending.remove(&b);
            }
            6 => {
                let b = arg() % 3;
                let Some((seq, _)) = pending.get_mut(&b) else {
                    continue;
                };
                let t = tx.get_or_insert_with(|| d.begin_write().expect("begin"));
                let got = t
                    .bucket(&bucket_name(b))
                    .expect("open")
                    .expect("exists")
                    .next_sequence()
                    .expect("next_sequence");
                *seq += 1;
                assert_eq!(got, *seq, "next_sequence");
            }
            7 => {
                if let Some(t) = tx.take() {
                    compare(&t, &pending, "before commit");
                    t.commit().expect("commit");
                    committed = pending.clone();
                    let r = d.begin_read().expect("read");
                    compare(&r, &committed, "after commit");
                    let problems = r.check();
                    assert!(problems.is_empty(), "check: {problems:?}");
                }
            }
            8 => {
                if let Some(t) = tx.take() {
                    t.rollback();
                }
                pending = committed.clone();
            }
            9 => {
                // Seek in a bucket, in the open write transaction or a new read one.
                let (b, k) = (arg() % 3, arg() % 64);
                let model = if tx.is_some() { &pending } else { &committed };
                let Some((_, kv)) = model.get(&b) else {
                    continue;
                };
                let key = format!("k{k:02}").into_bytes();
                let want = kv.range(key.clone()..).next().map(|(k, _)| k.clone());
                let check = |t: &Tx| {
                    let bk = t.bucket(&bucket_name(b)).expect("open").expect("exists");
                    let got = bk
                        .cursor()
                        .seek(&key)
                        .expect("seek")
                        .map(|e| e.key().to_vec());
                    assert_eq!(got, want, "seek");
                    assert_eq!(
                        bk.get(&key).expect("get").map(<[u8]>::to_vec),
                        kv.get(&key).cloned(),
                        "get"
                    );
                };
                match &tx {
                    Some(t) => check(t),
                    None => check(&d.begin_read().expect("read")),
                }
            }
            _ => {
                // Reopen: the open write transaction is rolled back.
                drop(tx.take());
                pending = committed.clone();
                drop(db.take());
                let d = Db::open(path, opts.clone()).expect("reopen");
                compare(&d.begin_read().expect("read"), &committed, "after reopen");
                db = Some(d);
            }
        }
    }
    if let Some(t) = tx.take() {
        t.commit().expect("final commit");
        committed = pending;
    }
    let d = db.unwrap();
    let r = d.begin_read().expect("read");
    compare(&r, &committed, "at the end");
    let problems = r.check();
    assert!(problems.is_empty(), "check at the end: {problems:?}");
}
