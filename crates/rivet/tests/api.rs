//! Behaviour of the public API: errors bbolt users rely on, cursor semantics, iterators,
//! rollback on error and panic, locking, and files that are not (valid) bbolt databases.

use std::time::Duration;

use rivet::{Db, Error, Options};

fn tmp() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.db");
    (dir, p)
}

/// 1 KiB pages (deep trees from little data), no fsync.
fn small_pages() -> Options {
    Options {
        page_size: Some(1024),
        ..fast()
    }
}

fn fast() -> Options {
    Options {
        no_sync: true,
        ..Options::default()
    }
}

#[test]
fn typed_errors_for_bad_input() {
    let (_d, p) = tmp();
    let db = Db::open(&p, fast()).unwrap();
    let tx = db.begin_write().unwrap();
    let b = tx.create_bucket(b"b").unwrap();
    assert!(matches!(b.put(b"", b"v"), Err(Error::KeyRequired)));
    assert!(matches!(
        b.put(&vec![1u8; 32769], b"v"),
        Err(Error::KeyTooLarge(32769))
    ));
    b.put(&vec![1u8; 32768], b"v").unwrap();
    assert!(matches!(
        tx.create_bucket(b""),
        Err(Error::BucketNameRequired)
    ));
    assert!(matches!(tx.create_bucket(b"b"), Err(Error::BucketExists)));
    b.put(b"plain", b"x").unwrap();
    assert!(matches!(
        b.create_bucket(b"plain"),
        Err(Error::IncompatibleValue)
    ));
    assert!(matches!(
        b.delete_bucket(b"plain"),
        Err(Error::IncompatibleValue)
    ));
    b.create_bucket(b"sub").unwrap();
    assert!(matches!(b.put(b"sub", b"x"), Err(Error::IncompatibleValue)));
    assert!(matches!(b.delete(b"sub"), Err(Error::IncompatibleValue)));
    assert_eq!(
        b.get(b"sub").unwrap(),
        None,
        "get on a bucket key returns None"
    );
    assert!(matches!(
        b.delete_bucket(b"missing"),
        Err(Error::BucketNotFound)
    ));
    b.delete(b"missing").unwrap();
    assert!(matches!(
        tx.delete_bucket(b"nope"),
        Err(Error::BucketNotFound)
    ));
    tx.commit().unwrap();

    let tx = db.begin_read().unwrap();
    let b = tx.bucket(b"b").unwrap().unwrap();
    assert!(matches!(b.put(b"k", b"v"), Err(Error::TxNotWritable)));
    assert!(matches!(tx.create_bucket(b"x"), Err(Error::TxNotWritable)));
    assert!(matches!(tx.commit(), Err(Error::TxNotWritable)));
}

#[test]
fn empty_value_differs_from_missing_key() {
    let (_d, p) = tmp();
    let db = Db::open(&p, fast()).unwrap();
    db.update(|tx| tx.create_bucket(b"b")?.put(b"empty", b""))
        .unwrap();
    db.view(|tx| {
        let b = tx.bucket(b"b")?.unwrap();
        assert_eq!(b.get(b"empty")?, Some(&b""[..]));
        assert_eq!(b.get(b"missing")?, None);
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn update_rolls_back_on_error_and_panic() {
    let (_d, p) = tmp();
    let db = Db::open(&p, fast()).unwrap();
    db.update(|tx| tx.create_bucket(b"b").map(|_| ())).unwrap();
    let r: Result<(), Error> = db.update(|tx| {
        tx.bucket(b"b")?.unwrap().put(b"k", b"v")?;
        Err(Error::Callback("no".into()))
    });
    assert!(r.is_err());
    let db2 = db.clone();
    let panicked = std::panic::catch_unwind(move || {
        let _ = db2.update(|tx| -> Result<(), Error> {
            tx.bucket(b"b")?.unwrap().put(b"k2", b"v")?;
            panic!("boom");
        });
    });
    assert!(panicked.is_err());
    db.view(|tx| {
        let b = tx.bucket(b"b")?.unwrap();
        assert_eq!(b.get(b"k")?, None);
        assert_eq!(b.get(b"k2")?, None);
        Ok::<_, Error>(())
    })
    .unwrap();
    // The writer lock was released: another update works.
    db.update(|tx| tx.bucket(b"b")?.unwrap().put(b"k3", b"v"))
        .unwrap();
    assert!(db.check().unwrap().is_empty());
}

#[test]
fn explicit_rollback_and_drop_discard_changes() {
    let (_d, p) = tmp();
    let db = Db::open(&p, fast()).unwrap();
    let tx = db.begin_write().unwrap();
    tx.create_bucket(b"gone").unwrap();
    tx.rollback();
    {
        let tx = db.begin_write().unwrap();
        tx.create_bucket(b"gone2").unwrap();
    }
    db.view(|tx| {
        assert!(tx.bucket(b"gone")?.is_none());
        assert!(tx.bucket(b"gone2")?.is_none());
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn writer_is_exclusive_and_read_only_mode_refuses_writes() {
    let (_d, p) = tmp();
    let db = Db::open(&p, fast()).unwrap();
    let tx = db.begin_write().unwrap();
    assert!(matches!(db.try_begin_write(), Err(Error::WriterBusy)));
    tx.commit().unwrap();
    assert!(db.try_begin_write().is_ok());
    drop(db);
    let ro = Db::open(
        &p,
        Options {
            read_only: true,
            ..Options::default()
        },
    )
    .unwrap();
    let ro2 = Db::open(
        &p,
        Options {
            read_only: true,
            ..Options::default()
        },
    )
    .unwrap();
    assert!(matches!(ro.begin_write(), Err(Error::DatabaseReadOnly)));
    // A writer cannot open while readers hold the shared lock: in the same process that is
    // an immediate error (waiting would never end), whatever the timeout (none here).
    let t0 = std::time::Instant::now();
    let r = Db::open(&p, Options::default());
    assert!(matches!(r, Err(Error::AlreadyOpen(_))), "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(1), "no waiting");
    let e = r.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("already open in this process"), "{e}");
    drop((ro, ro2));
    let w = Db::open(&p, Options::default()).unwrap();
    for read_only in [true, false] {
        let r = Db::open(
            &p,
            Options {
                read_only,
                ..Options::default()
            },
        );
        assert!(matches!(r, Err(Error::AlreadyOpen(_))), "{r:?}");
    }
    // A clone shares the one open file; once every handle is gone the file opens again.
    let w2 = w.clone();
    drop(w);
    assert!(matches!(
        Db::open(&p, Options::default()),
        Err(Error::AlreadyOpen(_))
    ));
    drop(w2);
    drop(Db::open(&p, Options::default()).unwrap());
    // (Between processes the second open still waits, or times out: tests/locking.rs.)
}

#[test]
fn nested_buckets_sequences_and_large_values_survive_reopen() {
    let (_d, p) = tmp();
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    {
        let db = Db::open(
            &p,
            Options {
                page_size: Some(4096),
                ..Options::default()
            },
        )
        .unwrap();
        db.update(|tx| {
            let mut b = tx.create_bucket(b"l0")?;
            for d in 1..12 {
                b.put(b"depth", format!("{d}").as_bytes())?;
                b.set_sequence(d * 1000)?;
                b = b.create_bucket(format!("l{d}").as_bytes())?;
            }
            b.put(b"big", &big)?;
            Ok::<_, Error>(())
        })
        .unwrap();
    }
    let db = Db::open(&p, Options::default()).unwrap();
    db.view(|tx| {
        let mut b = tx.bucket(b"l0")?.unwrap();
        for d in 1..12u64 {
            assert_eq!(b.get(b"depth")?, Some(format!("{d}").as_bytes()));
            assert_eq!(b.sequence(), d * 1000);
            b = b.bucket(format!("l{d}").as_bytes())?.unwrap();
        }
        assert_eq!(b.get(b"big")?, Some(big.as_slice()));
        assert!(tx.check().is_empty());
        Ok::<_, Error>(())
    })
    .unwrap();
    // Shrink the big bucket back to inline form and check again.
    db.update(|tx| {
        let mut b = tx.bucket(b"l0")?.unwrap();
        for d in 1..12 {
            b = b.bucket(format!("l{d}").as_bytes())?.unwrap();
        }
        b.delete(b"big")?;
        b.put(b"small", b"1")
    })
    .unwrap();
    assert!(db.check().unwrap().is_empty());
}

#[test]
fn cursor_semantics_match_bbolt() {
    let (_d, p) = tmp();
    let db = Db::open(&p, fast()).unwrap();
    db.update(|tx| {
        let b = tx.create_bucket(b"b")?;
        for k in [b"b", b"d", b"f"] {
            b.put(k, b"v")?;
        }
        b.create_bucket(b"e")?;
        tx.create_bucket(b"empty")?;
        Ok::<_, Error>(())
    })
    .unwrap();
    let tx = db.begin_read().unwrap();
    let b = tx.bucket(b"b").unwrap().unwrap();
    let mut c = b.cursor();
    assert_eq!(c.first().unwrap().unwrap().key(), b"b");
    assert!(
        c.prev().unwrap().is_none(),
        "prev at the first item returns None"
    );
    assert!(
        c.next().unwrap().is_none(),
        "and leaves the cursor off the front, as Go bbolt 1.3.6 does (tests/cursor_diff.rs)"
    );
    assert_eq!(c.first().unwrap().unwrap().key(), b"b");
    assert_eq!(c.next().unwrap().unwrap().key(), b"d");
    let e = c.next().unwrap().unwrap();
    assert!(e.is_bucket() && e.value().is_none() && e.key() == b"e");
    assert_eq!(c.next().unwrap().unwrap().key(), b"f");
    assert!(c.next().unwrap().is_none());
    assert_eq!(c.prev().unwrap().unwrap().key(), b"e");
    assert_eq!(c.seek(b"c").unwrap().unwrap().key(), b"d");
    assert_eq!(c.seek(b"d").unwrap().unwrap().key(), b"d");
    assert!(c.seek(b"g").unwrap().is_none());
    assert_eq!(
        c.prev().unwrap().unwrap().key(),
        b"f",
        "prev after a seek past the end gives the last entry"
    );
    assert_eq!(c.last().unwrap().unwrap().key(), b"f");
    let empty = tx.bucket(b"empty").unwrap().unwrap();
    assert!(empty.cursor().first().unwrap().is_none());
    assert!(empty.cursor().last().unwrap().is_none());
    assert_eq!(empty.iter().count(), 0);
}

fn keys<'a>(it: impl Iterator<Item = rivet::Result<rivet::Entry<'a>>>) -> Vec<Vec<u8>> {
    it.map(|e| e.unwrap().key().to_vec()).collect()
}

#[test]
fn iterators_ranges_prefixes_and_both_ends() {
    let (_d, p) = tmp();
    let db = Db::open(&p, small_pages()).unwrap();
    db.update(|tx| {
        let b = tx.create_bucket(b"b")?;
        for i in 0..2000u32 {
            b.put(format!("{:02}/{i:05}", i % 7).as_bytes(), &i.to_be_bytes())?;
        }
        b.put(b"\xff\xff", b"end")?;
        Ok::<_, Error>(())
    })
    .unwrap();
    db.view(|tx| {
        let b = tx.bucket(b"b")?.unwrap();
        let all = keys(b.iter());
        assert_eq!(all.len(), 2001);
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        let mut rev = keys(b.iter().rev());
        rev.reverse();
        assert_eq!(rev, all);
        let p3 = keys(b.prefix(b"03/"));
        assert_eq!(p3.len(), 286);
        assert!(p3.iter().all(|k| k.starts_with(b"03/")));
        let mut p3r = keys(b.prefix(b"03/").rev());
        p3r.reverse();
        assert_eq!(p3r, p3);
        assert_eq!(keys(b.prefix(b"\xff")), vec![b"\xff\xff".to_vec()]);
        assert_eq!(keys(b.prefix(b"\xff").rev()), vec![b"\xff\xff".to_vec()]);
        let r = keys(b.range(&b"01/00100"[..]..&b"01/00200"[..]));
        let want: Vec<Vec<u8>> = all
            .iter()
            .filter(|k| k.as_slice() >= &b"01/00100"[..] && k.as_slice() < &b"01/00200"[..])
            .cloned()
            .collect();
        assert_eq!(r, want);
        let r2 = keys(b.range(&b"01/00100"[..]..=&b"01/00106"[..]));
        assert_eq!(r2.last().unwrap(), b"01/00106");
        // Meeting in the middle: alternate ends, every key exactly once.
        let mut it = b.iter();
        let mut seen = Vec::new();
        while let Some(e) = it.next() {
            seen.push(e?.key().to_vec());
            match it.next_back() {
                Some(e) => seen.push(e?.key().to_vec()),
                None => break,
            }
        }
        seen.sort();
        assert_eq!(seen, all);
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn deleting_while_iterating_does_not_skip() {
    let (_d, p) = tmp();
    let db = Db::open(&p, small_pages()).unwrap();
    db.update(|tx| {
        let b = tx.create_bucket(b"b")?;
        for i in 0..5000u32 {
            b.put(format!("{i:05}").as_bytes(), b"v")?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    db.update(|tx| {
        let b = tx.bucket(b"b")?.unwrap();
        let mut c = b.cursor();
        let mut e = c.first()?;
        let mut visited = 0;
        while e.is_some() {
            visited += 1;
            c.delete()?;
            e = c.next()?;
        }
        assert_eq!(visited, 5000);
        assert_eq!(b.iter().count(), 0);
        Ok::<_, Error>(())
    })
    .unwrap();
    assert!(db.check().unwrap().is_empty());
}

#[test]
fn move_bucket_between_parents() {
    let (_d, p) = tmp();
    let db = Db::open(&p, fast()).unwrap();
    db.update(|tx| {
        let a = tx.create_bucket(b"a")?;
        let child = a.create_bucket(b"child")?;
        child.put(b"k", b"v")?;
        child.set_sequence(9)?;
        let z = tx.create_bucket(b"z")?;
        assert!(matches!(
            a.move_bucket(b"child", &a),
            Err(Error::SameBuckets)
        ));
        a.move_bucket(b"child", &z)?;
        assert!(matches!(
            z.move_bucket(b"child", &child),
            Err(Error::IncompatibleValue)
        ));
        Ok::<_, Error>(())
    })
    .unwrap();
    db.view(|tx| {
        assert!(tx.bucket(b"a")?.unwrap().bucket(b"child")?.is_none());
        let c = tx.bucket(b"z")?.unwrap().bucket(b"child")?.unwrap();
        assert_eq!(c.get(b"k")?, Some(&b"v"[..]));
        assert_eq!(c.sequence(), 9);
        assert!(tx.check().is_empty());
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn not_a_database_is_a_clear_error() {
    let (_d, p) = tmp();
    std::fs::write(&p, vec![0x42u8; 10000]).unwrap();
    let e = Db::open(&p, Options::default()).unwrap_err();
    assert!(matches!(e, Error::Invalid { .. }), "{e}");
    assert!(e.to_string().contains("not a bbolt database"), "{e}");

    std::fs::write(&p, b"short").unwrap();
    assert!(Db::open(&p, Options::default()).is_err());

    // A big-endian bbolt file: magic byte-swapped.
    let mut page = vec![0u8; 4096];
    page[16..20].copy_from_slice(&0xED0C_DAEDu32.to_be_bytes());
    std::fs::write(&p, [page.clone(), page].concat()).unwrap();
    let e = Db::open(&p, Options::default()).unwrap_err();
    assert!(matches!(e, Error::BigEndian(_)), "{e}");

    let e = Db::open(
        dir_missing().join("x.db"),
        Options {
            read_only: true,
            ..Options::default()
        },
    )
    .unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
}

fn dir_missing() -> std::path::PathBuf {
    std::path::PathBuf::from("/nonexistent-rivet-test-dir")
}

#[test]
fn damaged_meta_zero_falls_back_to_meta_one() {
    let (_d, p) = tmp();
    {
        let db = Db::open(
            &p,
            Options {
                page_size: Some(4096),
                ..Options::default()
            },
        )
        .unwrap();
        db.update(|tx| tx.create_bucket(b"a").map(|_| ())).unwrap(); // txid 2 -> meta 0
        db.update(|tx| tx.create_bucket(b"b").map(|_| ())).unwrap(); // txid 3 -> meta 1
        db.update(|tx| tx.create_bucket(b"c").map(|_| ())).unwrap(); // txid 4 -> meta 0
    }
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[16..80].fill(0xAB); // destroy meta 0 (the newest)
    std::fs::write(&p, &bytes).unwrap();
    let db = Db::open(&p, Options::default()).unwrap();
    db.view(|tx| {
        assert_eq!(tx.id(), 3);
        assert!(tx.bucket(b"b")?.is_some());
        assert!(
            tx.bucket(b"c")?.is_none(),
            "the damaged newest commit is gone"
        );
        assert!(tx.check().is_empty(), "{:?}", tx.check());
        Ok::<_, Error>(())
    })
    .unwrap();
    // And the database keeps working.
    db.update(|tx| tx.create_bucket(b"d").map(|_| ())).unwrap();
    assert!(db.check().unwrap().is_empty());
}

/// Flips bytes all over a valid file: opening, reading and checking must return errors (or
/// succeed), never panic.
#[test]
fn corrupted_pages_are_errors_not_panics() {
    let (_d, p) = tmp();
    {
        let db = Db::open(&p, small_pages()).unwrap();
        db.update(|tx| {
            let b = tx.create_bucket(b"b")?;
            for i in 0..400u32 {
                b.put(
                    format!("key{i:04}").as_bytes(),
                    &vec![i as u8; (i % 50) as usize],
                )?;
            }
            let n = b.create_bucket(b"nested")?;
            n.put(b"x", &vec![1u8; 3000])?;
            b.create_bucket(b"inline")?.put(b"y", b"z")?;
            Ok::<_, Error>(())
        })
        .unwrap();
    }
    let original = std::fs::read(&p).unwrap();
    let mut seed = 12345u64;
    let mut rnd = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    let mut errors = 0;
    for _ in 0..300 {
        let mut bytes = original.clone();
        for _ in 0..1 + rnd() % 8 {
            let i = 2048 + rnd() % (bytes.len() - 2048);
            bytes[i] = rnd() as u8;
        }
        std::fs::write(&p, &bytes).unwrap();
        let Ok(db) = Db::open(
            &p,
            Options {
                read_only: true,
                ..Options::default()
            },
        ) else {
            errors += 1;
            continue;
        };
        let tx = db.begin_read().unwrap();
        let _ = tx.check();
        let walk = |name: &[u8]| -> Result<usize, Error> {
            let Some(b) = tx.bucket(name)? else {
                return Ok(0);
            };
            let mut n = 0;
            for e in b.iter() {
                let e = e?;
                n += 1;
                if e.is_bucket() {
                    if let Some(sb) = b.bucket(e.key())? {
                        n += sb.iter().count();
                    }
                }
            }
            for e in b.iter().rev() {
                e?;
            }
            let _ = b.get(b"key0100")?;
            Ok(n)
        };
        if walk(b"b").is_err() {
            errors += 1;
        }
    }
    assert!(errors > 0, "some mutations must be detected");
}

/// Freeing more than 65,535 pages makes the freelist page use bbolt's count-overflow rule
/// (count 0xFFFF in the header, the real count in the first slot); it must read back intact.
#[test]
fn huge_freelist_uses_the_count_overflow_rule() {
    let (_d, p) = tmp();
    // Keep the freed pages in the freelist (no shrinking): the subject is its format.
    let opts = Options {
        shrink_threshold: 0,
        ..small_pages()
    };
    {
        let db = Db::open(&p, opts.clone()).unwrap();
        db.update(|tx| {
            let b = tx.create_bucket(b"doomed")?;
            for i in 0..11_000u32 {
                b.put(&i.to_be_bytes(), &[7u8; 7000])?; // 7 pages each
            }
            Ok::<_, Error>(())
        })
        .unwrap();
        db.update(|tx| tx.delete_bucket(b"doomed")).unwrap();
        db.update(|tx| tx.create_bucket(b"after")?.put(b"k", b"v"))
            .unwrap();
        assert!(db.stats().free_page_n > 65_535, "{:?}", db.stats());
    }
    let bytes = std::fs::read(&p).unwrap();
    let meta = |i: usize| rivet::format::Meta::decode(&bytes[i * 1024..(i + 1) * 1024]).unwrap();
    let m = if meta(0).txid > meta(1).txid {
        meta(0)
    } else {
        meta(1)
    };
    let fl = m.freelist as usize * 1024;
    let h = rivet::format::PageHeader::decode(&bytes[fl..], m.freelist).unwrap();
    assert_eq!(h.count, 0xFFFF, "count overflow marker");
    let ids = rivet::format::read_freelist(
        &bytes[fl..fl + (h.overflow as usize + 1) * 1024],
        m.freelist,
    )
    .unwrap();
    assert!(ids.len() > 65_535);
    let db = Db::open(&p, opts).unwrap();
    assert!(db.check().unwrap().is_empty());
    assert!(db.stats().free_page_n > 65_535);
    // The freed space is reused instead of growing the file.
    let size = std::fs::metadata(&p).unwrap().len();
    db.update(|tx| {
        let b = tx.create_bucket(b"reuse")?;
        for i in 0..2000u32 {
            b.put(&i.to_be_bytes(), &[1u8; 3000])?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    assert_eq!(std::fs::metadata(&p).unwrap().len(), size);
    assert!(db.check().unwrap().is_empty());
}

#[test]
fn max_size_stops_growth_with_a_typed_error() {
    let (_d, p) = tmp();
    let db = Db::open(
        &p,
        Options {
            max_size: 1 << 20,
            no_sync: true,
            ..Options::default()
        },
    )
    .unwrap();
    db.update(|tx| tx.create_bucket(b"b")?.put(b"small", b"v"))
        .unwrap();
    let r = db.update(|tx| tx.bucket(b"b")?.unwrap().put(b"big", &vec![0u8; 2 << 20]));
    assert!(
        matches!(r, Err(Error::MaxSizeReached { limit: 1048576 })),
        "{r:?}"
    );
    assert!(std::fs::metadata(&p).unwrap().len() <= 1 << 20);
    // Still usable, and nothing of the failed transaction is visible.
    db.update(|tx| tx.bucket(b"b")?.unwrap().put(b"small2", b"v"))
        .unwrap();
    db.view(|tx| {
        let b = tx.bucket(b"b")?.unwrap();
        assert_eq!(b.get(b"big")?, None);
        assert_eq!(b.get(b"small2")?, Some(&b"v"[..]));
        Ok::<_, Error>(())
    })
    .unwrap();
    assert!(db.check().unwrap().is_empty());
}

/// Regression: the check (and the freelist rebuild that shares its walk) counted bucket
/// nesting against the 64-level tree-depth limit and called valid deep nests corrupt.
#[test]
fn deeply_nested_buckets_check_clean_and_reopen_without_freelist() {
    let (_d, p) = tmp();
    let opts = Options {
        no_freelist_sync: true,
        no_sync: true,
        ..Options::default()
    };
    {
        let db = Db::open(&p, opts.clone()).unwrap();
        db.update(|tx| {
            let mut b = tx.create_bucket(b"d")?;
            for i in 0..150 {
                b.put(b"k", b"v")?;
                b = b.create_bucket(format!("n{i}").as_bytes())?;
            }
            Ok::<_, Error>(())
        })
        .unwrap();
        assert_eq!(db.check().unwrap(), vec![]);
    }
    let db = Db::open(&p, opts).unwrap();
    assert_eq!(db.check().unwrap(), vec![]);
}

#[test]
fn append_fills_pages_and_falls_back_for_out_of_order_keys() {
    let (_d, p) = tmp();
    let db = Db::open(&p, small_pages()).unwrap();
    db.update(|tx| {
        let b = tx.create_bucket(b"b")?;
        for i in 0..20_000u32 {
            b.append(format!("{:08}", i * 2).as_bytes(), &[i as u8; 20])?;
        }
        // Out of order and duplicate keys still land correctly.
        b.append(b"00000001", b"odd")?;
        b.append(b"00000000", b"replaced")?;
        Ok::<_, Error>(())
    })
    .unwrap();
    db.view(|tx| {
        let b = tx.bucket(b"b")?.unwrap();
        assert_eq!(b.iter().count(), 20_001);
        assert_eq!(b.get(b"00000001")?, Some(&b"odd"[..]));
        assert_eq!(b.get(b"00000000")?, Some(&b"replaced"[..]));
        assert_eq!(b.get(b"00039998")?, Some(&[19_999u32 as u8; 20][..]));
        let s = b.stats()?;
        let fill = s.leaf_inuse as f64 / s.leaf_alloc as f64;
        assert!(fill > 0.9, "append leaves leaves full ({fill:.2})");
        assert!(tx.check().is_empty());
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn value_size_limit_is_bbolts() {
    let (_d, p) = tmp();
    let db = Db::open(&p, fast()).unwrap();
    // vec![0; n] is lazily zeroed by the OS: these pages are never touched.
    let too_big = vec![0u8; (1 << 31) - 1];
    let r = db.update(|tx| tx.create_bucket(b"b")?.put(b"k", &too_big));
    assert!(matches!(r, Err(Error::ValueTooLarge(2147483647))), "{r:?}");
    let r = db.update(|tx| tx.create_bucket(b"b")?.append(b"k", &too_big));
    assert!(matches!(r, Err(Error::ValueTooLarge(_))), "{r:?}");
}

#[test]
fn read_only_stats_report_the_persisted_freelist() {
    let (_d, p) = tmp();
    {
        let db = Db::open(&p, fast()).unwrap();
        db.update(|tx| {
            let b = tx.create_bucket(b"b")?;
            for i in 0..500u32 {
                b.put(&i.to_be_bytes(), &[0u8; 500])?;
            }
            Ok::<_, Error>(())
        })
        .unwrap();
        db.update(|tx| tx.delete_bucket(b"b")).unwrap();
    }
    let rw = Db::open(&p, fast()).unwrap().stats();
    let ro = Db::open(
        &p,
        Options {
            read_only: true,
            ..Options::default()
        },
    )
    .unwrap()
    .stats();
    assert!(rw.free_page_n > 50, "{rw:?}");
    assert_eq!(
        ro.free_page_n + ro.pending_page_n,
        rw.free_page_n + rw.pending_page_n
    );
}

#[test]
fn ascending_puts_leave_full_pages() {
    let (_d, p) = tmp();
    let db = Db::open(
        &p,
        Options {
            page_size: Some(4096),
            no_sync: true,
            ..Options::default()
        },
    )
    .unwrap();
    db.update(|tx| {
        let b = tx.create_bucket(b"b")?;
        for i in 0..50_000u64 {
            b.put(&i.to_be_bytes(), &[1u8; 50])?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    db.view(|tx| {
        let s = tx.bucket(b"b")?.unwrap().stats()?;
        let fill = s.leaf_inuse as f64 / s.leaf_alloc as f64;
        assert!(fill > 0.9, "sequential inserts pack leaves ({fill:.2})");
        assert!(tx.check().is_empty());
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// A small commit takes its pages from one free span when one fits, so they go out in one
/// write: here the root bucket's page, the bucket's page and the freelist come out adjacent
/// even though single free pages with lower ids exist.
#[test]
fn small_commit_pages_are_contiguous_when_a_span_fits() {
    let (_d, p) = tmp();
    let db = Db::open(&p, small_pages()).unwrap();
    db.update(|tx| {
        let big = tx.create_bucket(b"big")?;
        for i in 0..3000u32 {
            big.put(&i.to_be_bytes(), &[7u8; 100])?;
        }
        let small = tx.create_bucket(b"small")?;
        for i in 0..40u32 {
            small.put(&i.to_be_bytes(), &[1u8; 20])?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    // Scattered single free pages: the old paths of a few small commits.
    for i in 0..3u32 {
        db.update(|tx| tx.bucket(b"small")?.unwrap().put(&i.to_be_bytes(), b"x"))
            .unwrap();
    }
    db.update(|tx| tx.delete_bucket(b"big")).unwrap();
    // Releases the big bucket's pages (no reader holds them) into one large span.
    db.update(|tx| tx.bucket(b"small")?.unwrap().put(b"k", b"1"))
        .unwrap();
    db.update(|tx| tx.bucket(b"small")?.unwrap().put(b"k", b"2"))
        .unwrap();
    let tx = db.begin_read().unwrap();
    let meta = tx.meta();
    let small_root = tx.bucket(b"small").unwrap().unwrap().root_page();
    let mut written = [meta.root, small_root, meta.freelist];
    written.sort_unstable();
    assert!(small_root > 0, "the small bucket is paged, not inline");
    assert_eq!(
        written[2] - written[0],
        2,
        "pages of the last commit {written:?} are not one run"
    );
    drop(tx);
    assert!(db.check().unwrap().is_empty());
}

/// Many sibling buckets open in one transaction (past the point where the open-children
/// list switches to a hash index), then deleted, moved and reopened.
#[test]
fn many_open_sibling_buckets() {
    let (_d, p) = tmp();
    let db = Db::open(&p, fast()).unwrap();
    let name = |i: u32| format!("bucket-{i:03}").into_bytes();
    db.update(|tx| {
        let parent = tx.create_bucket(b"parent")?;
        for i in 0..40 {
            parent
                .create_bucket(&name(i))?
                .put(b"k", &i.to_be_bytes())?;
        }
        // Reopening returns the same (uncommitted) bucket.
        for i in 0..40 {
            let b = parent.bucket(&name(i))?.unwrap();
            assert_eq!(b.get(b"k")?, Some(&i.to_be_bytes()[..]));
        }
        for i in (0..40).step_by(3) {
            parent.delete_bucket(&name(i))?;
            assert!(parent.bucket(&name(i))?.is_none());
        }
        let other = tx.create_bucket(b"other")?;
        parent.move_bucket(&name(1), &other)?;
        assert!(parent.bucket(&name(1))?.is_none());
        assert_eq!(
            other.bucket(&name(1))?.unwrap().get(b"k")?,
            Some(&1u32.to_be_bytes()[..])
        );
        Ok::<_, Error>(())
    })
    .unwrap();
    db.view(|tx| {
        let parent = tx.bucket(b"parent")?.unwrap();
        for i in 0..40u32 {
            let b = parent.bucket(&name(i))?;
            if i % 3 == 0 || i == 1 {
                assert!(b.is_none(), "bucket {i} should be gone");
            } else {
                assert_eq!(b.unwrap().get(b"k")?, Some(&i.to_be_bytes()[..]));
            }
        }
        assert!(tx.bucket(b"other")?.unwrap().bucket(&name(1))?.is_some());
        Ok::<_, Error>(())
    })
    .unwrap();
    assert!(db.check().unwrap().is_empty());
}

/// Small commits with no free span large enough for all their pages put the hot pages (the
/// bucket's root, the root bucket's page, the freelist) in one run of their own, even when
/// scattered single free pages with lower ids exist. Those runs recycle each other, so a long
/// series of small commits does not grow the file.
#[test]
fn hot_pages_share_a_run_and_small_commits_do_not_grow_the_file() {
    let (_d, p) = tmp();
    let db = Db::open(&p, small_pages()).unwrap();
    let key = |i: u32| i.to_be_bytes();
    db.update(|tx| {
        let b = tx.create_bucket(b"b")?;
        for i in 0..6000u32 {
            b.put(&key(i), &[1u8; 40])?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    // Empty every other stretch of leaves: scattered free pages all over the file.
    db.update(|tx| {
        let b = tx.bucket(b"b")?.unwrap();
        for i in (0..6000u32).filter(|i| (i / 24) % 2 == 0) {
            b.delete(&key(i))?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    let hwm_before = db.begin_read().unwrap().meta().pgid;
    for i in 0..600u32 {
        db.update(|tx| {
            let k = key(24 + (i * 48 + i / 125) % 5976);
            tx.bucket(b"b")?.unwrap().put(&k, &[2u8; 40])
        })
        .unwrap();
    }
    let tx = db.begin_read().unwrap();
    let meta = tx.meta();
    let b = tx.bucket(b"b").unwrap().unwrap();
    let mut hot = [meta.root, b.root_page(), meta.freelist];
    hot.sort_unstable();
    assert_eq!(hot[2] - hot[0], 2, "hot pages {hot:?} are not one run");
    assert!(
        meta.pgid <= hwm_before + 8,
        "600 small commits grew the high-water mark from {hwm_before} to {}",
        meta.pgid
    );
    drop(tx);
    assert!(db.check().unwrap().is_empty());
}

/// Lookups on damaged pages fail with an error naming the page and the problem (the fast
/// lookup path hands over to the checked one), never a panic or a wrong answer.
#[test]
fn get_on_corrupt_pages_names_the_page() {
    let (_d, p) = tmp();
    let ps = 4096usize;
    let root = {
        let db = Db::open(&p, fast()).unwrap();
        db.update(|tx| {
            let b = tx.create_bucket(b"b")?;
            for i in 0..2000u32 {
                b.put(&i.to_be_bytes(), &[3u8; 100])?;
            }
            Ok::<_, Error>(())
        })
        .unwrap();
        let tx = db.begin_read().unwrap();
        tx.bucket(b"b").unwrap().unwrap().root_page()
    };
    let clean = std::fs::read(&p).unwrap();
    let at = |pg: u64| pg as usize * ps;
    assert_eq!(clean[at(root) + 8], 1, "the bucket's root is a branch");
    // Child of the root's first element: the leaf holding key 0.
    let e0 = at(root) + 16;
    let leaf = u64::from_le_bytes(clean[e0 + 8..e0 + 16].try_into().unwrap());
    assert_eq!(clean[at(leaf) + 8], 2, "page {leaf} is a leaf");
    let get0 = |bytes: &[u8]| {
        std::fs::write(&p, bytes).unwrap();
        let db = Db::open(
            &p,
            Options {
                read_only: true,
                ..fast()
            },
        )
        .unwrap();
        let tx = db.begin_read().unwrap();
        let b = tx.bucket(b"b").unwrap().unwrap();
        b.get(&0u32.to_be_bytes()).map(|v| v.map(<[u8]>::to_vec))
    };
    assert_eq!(get0(&clean).unwrap(), Some(vec![3u8; 100]));
    let expect_corrupt = |res: rivet::Result<Option<Vec<u8>>>, page: u64, what: &str| match res {
        Err(Error::Corrupted { page: p, reason }) => {
            assert_eq!(p, page, "{reason}");
            assert!(reason.contains(what), "{reason:?} should mention {what:?}");
        }
        other => panic!("expected corruption at page {page}, got {other:?}"),
    };

    // Every key of the leaf points past its page.
    let mut bad = clean.clone();
    let count = u16::from_le_bytes([clean[at(leaf) + 10], clean[at(leaf) + 11]]) as usize;
    for i in 0..count {
        let e = at(leaf) + 16 + i * 16;
        bad[e + 8..e + 12].copy_from_slice(&60_000u32.to_le_bytes());
    }
    expect_corrupt(get0(&bad), leaf, "outside");

    // The root's first child pointer leaves the file.
    let mut bad = clean.clone();
    bad[e0 + 8..e0 + 16].copy_from_slice(&(1u64 << 40).to_le_bytes());
    expect_corrupt(get0(&bad), 1 << 40, "out of bounds");

    // The leaf's header claims another page id.
    let mut bad = clean.clone();
    bad[at(leaf)..at(leaf) + 8].copy_from_slice(&(leaf + 1).to_le_bytes());
    expect_corrupt(get0(&bad), leaf, "header says id");
}

/// Sizes of the file and its high-water mark in pages.
fn file_pages(p: &std::path::Path, db: &Db) -> (u64, u64) {
    let len = std::fs::metadata(p).unwrap().len();
    let hwm = db.view(|tx| Ok::<_, Error>(tx.size())).unwrap() / db.page_size() as u64;
    (len / db.page_size() as u64, hwm)
}

/// Deleting data gives disk space back without compaction (issue 12, item 6): the free
/// pages at the end of the file are cut off once no reader can see them (two commits after
/// the delete when nobody reads: the delete's own freelist page is on top), the file stays
/// clean, survives reopening, and a reader that still sees the deleted data keeps reading
/// it until it closes (the space comes back after that).
#[test]
fn deleted_data_gives_disk_space_back() {
    let (_d, p) = tmp();
    let db = Db::open(&p, fast()).unwrap();
    db.update(|tx| tx.create_bucket(b"keep")?.put(b"k", b"v"))
        .unwrap();
    db.update(|tx| {
        let b = tx.create_bucket(b"big")?;
        for i in 0..4000u32 {
            b.put(&i.to_be_bytes(), &[9u8; 5000])?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    let (full, _) = file_pages(&p, &db);
    assert!(full > 4000, "{full} pages");

    // A reader on the full snapshot pins the pages: nothing is cut while it lives.
    let reader = db.begin_read().unwrap();
    db.update(|tx| tx.delete_bucket(b"big")).unwrap();
    for i in 0..3u8 {
        db.update(|tx| tx.bucket(b"keep")?.unwrap().put(b"n", &[i]))
            .unwrap();
    }
    let (pinned, _) = file_pages(&p, &db);
    assert!(
        pinned >= full,
        "cut while a reader could see the pages: {pinned} < {full}"
    );
    let big = reader
        .bucket(b"big")
        .unwrap()
        .expect("the reader still sees big");
    assert_eq!(big.iter().count(), 4000);
    assert_eq!(
        big.get(&3999u32.to_be_bytes()).unwrap(),
        Some(&[9u8; 5000][..])
    );
    drop(reader);

    // The next commit releases the pages; the pages at the very top (the freelist the
    // delete wrote) are released one commit later, and then the file is cut to its
    // high-water mark.
    for _ in 0..2 {
        db.update(|tx| tx.bucket(b"keep")?.unwrap().put(b"n", b"after"))
            .unwrap();
    }
    let (len, hwm) = file_pages(&p, &db);
    assert!(len < full / 10, "file not cut: {len} of {full} pages");
    assert_eq!(len, hwm, "file length is the high-water mark");
    assert!(db.check().unwrap().is_empty());
    drop(db);

    let db = Db::open(&p, fast()).unwrap();
    assert!(db.check().unwrap().is_empty());
    db.view(|tx| {
        let keep = tx.bucket(b"keep")?.unwrap();
        assert_eq!(keep.get(b"k")?, Some(&b"v"[..]));
        assert_eq!(keep.get(b"n")?, Some(&b"after"[..]));
        assert!(tx.bucket(b"big")?.is_none());
        Ok::<_, Error>(())
    })
    .unwrap();
    // It grows again when needed.
    db.update(|tx| {
        let b = tx.create_bucket(b"big2")?;
        for i in 0..1000u32 {
            b.put(&i.to_be_bytes(), &[3u8; 5000])?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    assert!(db.check().unwrap().is_empty());
}

/// `shrink_threshold: 0` keeps bbolt's behaviour (the file never shrinks), and free space
/// below the threshold is not given back.
#[test]
fn shrinking_follows_the_threshold() {
    for (threshold, shrinks) in [(0u64, false), (1 << 40, false), (1 << 20, true)] {
        let (_d, p) = tmp();
        let db = Db::open(
            &p,
            Options {
                shrink_threshold: threshold,
                ..fast()
            },
        )
        .unwrap();
        db.update(|tx| {
            let b = tx.create_bucket(b"big")?;
            for i in 0..2000u32 {
                b.put(&i.to_be_bytes(), &[9u8; 5000])?;
            }
            Ok::<_, Error>(())
        })
        .unwrap();
        let (full, _) = file_pages(&p, &db);
        db.update(|tx| tx.delete_bucket(b"big")).unwrap();
        db.update(|tx| tx.create_bucket(b"x").map(|_| ())).unwrap();
        db.update(|tx| tx.create_bucket(b"y").map(|_| ())).unwrap();
        let (len, _) = file_pages(&p, &db);
        assert_eq!(
            len < full / 10,
            shrinks,
            "threshold {threshold}: {len} of {full} pages"
        );
        assert!(db.check().unwrap().is_empty());
    }
}
