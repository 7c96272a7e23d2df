//! Model-based property tests: random sequences of bucket and key operations, commits,
//! rollbacks and reopens run against Rivet and against an in-memory model. After every commit
//! the consistency check must be clean and a full scan (forward and backward, recursively)
//! must equal the model.

use std::collections::BTreeMap;

use proptest::prelude::*;
use rivet::{Bucket, Db, Options, Tx};

#[derive(Clone, Debug, PartialEq, Eq)]
enum MEntry {
    Value(Vec<u8>),
    Bucket(MBucket),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct MBucket {
    seq: u64,
    entries: BTreeMap<Vec<u8>, MEntry>,
}

impl MBucket {
    fn at(&mut self, path: &[Vec<u8>]) -> Option<&mut MBucket> {
        let mut b = self;
        for p in path {
            match b.entries.get_mut(p) {
                Some(MEntry::Bucket(c)) => b = c,
                _ => return None,
            }
        }
        Some(b)
    }

    fn bucket_paths(&self, prefix: &mut Vec<Vec<u8>>, out: &mut Vec<Vec<Vec<u8>>>) {
        out.push(prefix.clone());
        for (k, e) in &self.entries {
            if let MEntry::Bucket(c) = e {
                prefix.push(k.clone());
                c.bucket_paths(prefix, out);
                prefix.pop();
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Put {
        bucket: usize,
        key: Vec<u8>,
        len: usize,
        fill: u8,
    },
    Delete {
        bucket: usize,
        key: Vec<u8>,
    },
    CreateBucket {
        bucket: usize,
        name: Vec<u8>,
    },
    DeleteBucket {
        bucket: usize,
        name: Vec<u8>,
    },
    NextSequence {
        bucket: usize,
    },
    SetSequence {
        bucket: usize,
        value: u64,
    },
    /// Delete every `step`-th entry from `from` on with a cursor while iterating.
    CursorDelete {
        bucket: usize,
        from: Vec<u8>,
        step: usize,
    },
    MoveBucket {
        src: usize,
        name: Vec<u8>,
        dst: usize,
    },
    Commit,
    Rollback,
    Reopen,
}

fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => (0u16..300).prop_map(|i| format!("k{i:03}").into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 1..8),
        1 => (0u16..20, 100usize..2000).prop_map(|(i, n)| {
            let mut k = format!("long{i:02}").into_bytes();
            k.resize(n, b'x');
            k
        }),
    ]
}

fn name_strategy() -> impl Strategy<Value = Vec<u8>> {
    (0u8..6).prop_map(|i| format!("b{i}").into_bytes())
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        40 => (any::<usize>(), key_strategy(), prop_oneof![9 => 0usize..200, 1 => 1000usize..20000], any::<u8>())
            .prop_map(|(bucket, key, len, fill)| Op::Put { bucket, key, len, fill }),
        12 => (any::<usize>(), key_strategy()).prop_map(|(bucket, key)| Op::Delete { bucket, key }),
        6 => (any::<usize>(), name_strategy()).prop_map(|(bucket, name)| Op::CreateBucket { bucket, name }),
        2 => (any::<usize>(), name_strategy()).prop_map(|(bucket, name)| Op::DeleteBucket { bucket, name }),
        2 => any::<usize>().prop_map(|bucket| Op::NextSequence { bucket }),
        1 => (any::<usize>(), any::<u64>()).prop_map(|(bucket, value)| Op::SetSequence { bucket, value }),
        2 => (any::<usize>(), key_strategy(), 1usize..4).prop_map(|(bucket, from, step)| Op::CursorDelete { bucket, from, step }),
        1 => (any::<usize>(), name_strategy(), any::<usize>()).prop_map(|(src, name, dst)| Op::MoveBucket { src, name, dst }),
        5 => Just(Op::Commit),
        2 => Just(Op::Rollback),
        1 => Just(Op::Reopen),
    ]
}

/// Opens the bucket at `path` (empty = root).
fn open<'tx>(tx: &'tx Tx, path: &[Vec<u8>]) -> Bucket<'tx> {
    let mut b = tx.root();
    for p in path {
        b = b
            .bucket(p)
            .unwrap()
            .unwrap_or_else(|| panic!("bucket {path:?} missing"));
    }
    b
}

fn value_of(len: usize, fill: u8) -> Vec<u8> {
    (0..len).map(|i| fill.wrapping_add(i as u8)).collect()
}

/// Compares the bucket with the model, forward and backward, recursively.
fn compare(b: &Bucket<'_>, m: &MBucket, path: &str) {
    assert_eq!(b.sequence(), m.seq, "sequence of {path}");
    let fwd: Vec<(Vec<u8>, Option<Vec<u8>>)> = b
        .iter()
        .map(|e| {
            let e = e.unwrap();
            (e.key().to_vec(), e.value().map(|v| v.to_vec()))
        })
        .collect();
    let want: Vec<(Vec<u8>, Option<Vec<u8>>)> = m
        .entries
        .iter()
        .map(|(k, e)| match e {
            MEntry::Value(v) => (k.clone(), Some(v.clone())),
            MEntry::Bucket(_) => (k.clone(), None),
        })
        .collect();
    assert_eq!(fwd.len(), want.len(), "entry count of {path}");
    assert!(fwd == want, "forward scan of {path} differs from the model");
    let mut back: Vec<Vec<u8>> = b.iter().rev().map(|e| e.unwrap().key().to_vec()).collect();
    back.reverse();
    let keys: Vec<Vec<u8>> = want.iter().map(|w| w.0.clone()).collect();
    assert!(back == keys, "backward scan of {path} differs");
    for (k, e) in &m.entries {
        match e {
            MEntry::Value(v) => assert_eq!(b.get(k).unwrap(), Some(v.as_slice()), "get in {path}"),
            MEntry::Bucket(c) => {
                assert_eq!(b.get(k).unwrap(), None);
                let cb = b.bucket(k).unwrap().expect("sub-bucket");
                compare(&cb, c, &format!("{path}/{}", String::from_utf8_lossy(k)));
            }
        }
    }
}

fn verify(db: &Db, model: &MBucket) {
    let tx = db.begin_read().unwrap();
    let problems = tx.check();
    assert!(problems.is_empty(), "check found problems: {problems:?}");
    compare(&tx.root(), model, "");
}

fn run(ops: Vec<Op>, page_size: usize, no_freelist_sync: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.db");
    let opts = Options {
        page_size: Some(page_size),
        no_freelist_sync,
        no_sync: true,
        ..Options::default()
    };
    let mut db = Db::open(&path, opts.clone()).unwrap();
    let mut committed = MBucket::default();
    let mut work = committed.clone();
    let mut tx = Some(db.begin_write().unwrap());
    for op in ops {
        let mut paths = Vec::new();
        work.bucket_paths(&mut Vec::new(), &mut paths);
        let pick = |i: usize| paths[i % paths.len()].clone();
        let t = tx.as_ref().unwrap();
        match op {
            Op::Put {
                bucket,
                key,
                len,
                fill,
            } => {
                let p = pick(bucket);
                let v = value_of(len, fill);
                // Even fills use the append path (which falls back to put for keys that do
                // not sort last): both must behave identically.
                let r = if fill % 2 == 0 {
                    open(t, &p).append(&key, &v)
                } else {
                    open(t, &p).put(&key, &v)
                };
                let mb = work.at(&p).unwrap();
                match mb.entries.get(&key) {
                    Some(MEntry::Bucket(_)) => {
                        assert!(matches!(r, Err(rivet::Error::IncompatibleValue)))
                    }
                    _ => {
                        r.unwrap();
                        mb.entries.insert(key, MEntry::Value(v));
                    }
                }
            }
            Op::Delete { bucket, key } => {
                let p = pick(bucket);
                let r = open(t, &p).delete(&key);
                let mb = work.at(&p).unwrap();
                match mb.entries.get(&key) {
                    Some(MEntry::Bucket(_)) => {
                        assert!(matches!(r, Err(rivet::Error::IncompatibleValue)))
                    }
                    _ => {
                        // `delete` says whether the key existed (issue 12 item 8).
                        let existed = mb.entries.remove(&key).is_some();
                        assert_eq!(r.unwrap(), existed, "delete's answer");
                    }
                }
            }
            Op::CreateBucket { bucket, name } => {
                let p = pick(bucket);
                let r = open(t, &p).create_bucket(&name);
                let mb = work.at(&p).unwrap();
                match mb.entries.get(&name) {
                    Some(MEntry::Bucket(_)) => {
                        assert!(matches!(r, Err(rivet::Error::BucketExists)))
                    }
                    Some(MEntry::Value(_)) => {
                        assert!(matches!(r, Err(rivet::Error::IncompatibleValue)))
                    }
                    None => {
                        r.unwrap();
                        mb.entries.insert(name, MEntry::Bucket(MBucket::default()));
                    }
                }
            }
            Op::DeleteBucket { bucket, name } => {
                let p = pick(bucket);
                let r = open(t, &p).delete_bucket(&name);
                let mb = work.at(&p).unwrap();
                match mb.entries.get(&name) {
                    Some(MEntry::Bucket(_)) => {
                        r.unwrap();
                        mb.entries.remove(&name);
                    }
                    Some(MEntry::Value(_)) => {
                        assert!(matches!(r, Err(rivet::Error::IncompatibleValue)))
                    }
                    None => assert!(matches!(r, Err(rivet::Error::BucketNotFound))),
                }
            }
            Op::NextSequence { bucket } => {
                let p = pick(bucket);
                if p.is_empty() {
                    continue;
                }
                let got = open(t, &p).next_sequence().unwrap();
                let mb = work.at(&p).unwrap();
                mb.seq = mb.seq.wrapping_add(1);
                assert_eq!(got, mb.seq);
            }
            Op::SetSequence { bucket, value } => {
                let p = pick(bucket);
                if p.is_empty() {
                    continue;
                }
                open(t, &p).set_sequence(value).unwrap();
                work.at(&p).unwrap().seq = value;
            }
            Op::CursorDelete { bucket, from, step } => {
                let p = pick(bucket);
                let b = open(t, &p);
                let mb = work.at(&p).unwrap();
                let mut c = b.cursor();
                let mut e = c.seek(&from).unwrap();
                let mut i = 0usize;
                let mut seen = Vec::new();
                while let Some(en) = e {
                    seen.push(en.key().to_vec());
                    if i.is_multiple_of(step) && !en.is_bucket() {
                        let k = en.key().to_vec();
                        c.delete().unwrap();
                        mb.entries.remove(&k);
                    }
                    i += 1;
                    e = c.next().unwrap();
                }
                // Iteration with deletes must visit every key >= from exactly once, in order.
                let mut expect: Vec<Vec<u8>> = seen.clone();
                expect.sort();
                expect.dedup();
                assert_eq!(seen, expect, "cursor visited keys out of order or twice");
                let remaining_after: Vec<Vec<u8>> = mb
                    .entries
                    .range(from.clone()..)
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in remaining_after {
                    assert!(seen.contains(&k), "cursor skipped {k:?}");
                }
            }
            Op::MoveBucket { src, name, dst } => {
                let (ps, pd) = (pick(src), pick(dst));
                let (sb, db_) = (open(t, &ps), open(t, &pd));
                let r = sb.move_bucket(&name, &db_);
                let is_bucket = matches!(
                    work.at(&ps).unwrap().entries.get(&name),
                    Some(MEntry::Bucket(_))
                );
                let into_self =
                    pd.len() > ps.len() && pd[..ps.len()] == ps[..] && pd[ps.len()] == name;
                let dst_has = work.at(&pd).unwrap().entries.contains_key(&name);
                if ps == pd || !is_bucket || into_self || dst_has {
                    assert!(
                        r.is_err(),
                        "move into itself or onto an existing key must fail"
                    );
                } else {
                    r.unwrap();
                    let moved = work.at(&ps).unwrap().entries.remove(&name).unwrap();
                    work.at(&pd).unwrap().entries.insert(name, moved);
                }
            }
            Op::Commit => {
                tx.take().unwrap().commit().unwrap();
                committed = work.clone();
                verify(&db, &committed);
                tx = Some(db.begin_write().unwrap());
            }
            Op::Rollback => {
                tx.take().unwrap().rollback();
                work = committed.clone();
                verify(&db, &committed);
                tx = Some(db.begin_write().unwrap());
            }
            Op::Reopen => {
                tx.take().unwrap().commit().unwrap();
                committed = work.clone();
                drop(db);
                db = Db::open(&path, opts.clone()).unwrap();
                verify(&db, &committed);
                tx = Some(db.begin_write().unwrap());
            }
        }
    }
    tx.take().unwrap().commit().unwrap();
    verify(&db, &work);
    drop(db);
    let db = Db::open(&path, opts).unwrap();
    verify(&db, &work);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn model_4k(ops in proptest::collection::vec(op_strategy(), 1..300)) {
        run(ops, 4096, false);
    }

    #[test]
    fn model_1k_no_freelist_sync(ops in proptest::collection::vec(op_strategy(), 1..300)) {
        run(ops, 1024, true);
    }
}

/// Many keys in one transaction exercise splits several levels deep, then deletes in random
/// order exercise merges; the model is a sorted set.
#[test]
fn large_transaction_split_and_merge() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path().join("big.db"),
        Options {
            page_size: Some(1024),
            no_sync: true,
            ..Options::default()
        },
    )
    .unwrap();
    let mut model = MBucket::default();
    let mut inner = MBucket::default();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let tx = db.begin_write().unwrap();
    let b = tx.create_bucket(b"data").unwrap();
    for _ in 0..30_000 {
        let k = format!("{:016x}", next() % 50_000).into_bytes();
        let v = value_of((next() % 60) as usize, 7);
        b.put(&k, &v).unwrap();
        inner.entries.insert(k, MEntry::Value(v));
    }
    let keys: Vec<Vec<u8>> = inner.entries.keys().cloned().collect();
    for k in keys.iter().filter(|_| next() % 4 != 0) {
        b.delete(k).unwrap();
        inner.entries.remove(k);
    }
    tx.commit().unwrap();
    model
        .entries
        .insert(b"data".to_vec(), MEntry::Bucket(inner));
    verify(&db, &model);
}
