//! Byte-level test vectors from the bbolt reference: files Rivet writes must be identical to
//! the ones Go bbolt 1.3.6 writes for the same operations.

use rivet::{Db, Options};
use sha2::{Digest, Sha256};

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn opts_4k() -> Options {
    Options {
        page_size: Some(4096),
        ..Options::default()
    }
}

#[test]
fn empty_database_matches_go() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.db");
    drop(Db::open(&path, opts_4k()).unwrap());
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 16384);
    assert_eq!(
        sha256_hex(&bytes),
        "f80ea184425737cdc7de57b1c8d4797e8a57ccee797991395e3800cd4ed0ac1e"
    );
}

#[test]
fn widgets_file_matches_go_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("widgets.db");
    {
        let db = Db::open(&path, opts_4k()).unwrap();
        db.update(|tx| {
            let b = tx.create_bucket_if_not_exists(b"widgets")?;
            b.put(b"foo", b"bar")
        })
        .unwrap();
    }
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 32768);
    assert_eq!(
        sha256_hex(&bytes),
        "9daf3d3ff9f8579599326957e6d8b7fb5551ebaccb3ce8fa74742f33e06462f5"
    );
    let db = Db::open(
        &path,
        Options {
            read_only: true,
            ..Options::default()
        },
    )
    .unwrap();
    db.view(|tx| {
        assert_eq!(
            tx.bucket(b"widgets")?.unwrap().get(b"foo")?,
            Some(&b"bar"[..])
        );
        assert!(tx.check().is_empty(), "{:?}", tx.check());
        Ok::<_, rivet::Error>(())
    })
    .unwrap();
}
