use rivet::{Db, Options};

fn main() -> Result<(), rivet::Error> {
    let db = Db::open("my.db", Options::default())?;
    db.update(|tx| {
        let widgets = tx.create_bucket_if_not_exists(b"widgets")?;
        widgets.put(b"foo", b"bar")?;
        widgets
            .create_bucket_if_not_exists(b"parts")?
            .put(b"bolt", b"m6")?;
        Ok::<_, rivet::Error>(())
    })?;
    db.view(|tx| {
        let widgets = tx.bucket(b"widgets")?.expect("exists");
        assert_eq!(widgets.get(b"foo")?, Some(&b"bar"[..])); // zero-copy
        for entry in widgets.prefix(b"f") {
            // ranges, prefixes, .rev()
            let entry = entry?;
            println!("{:?} -> {:?}", entry.key(), entry.value()); // value() is None for sub-buckets
        }
        Ok::<_, rivet::Error>(())
    })?;
    Ok(())
}
