//! `buckets`, `keys`, `get`, `put`, `delete`: reading and writing keys along nested paths.
//!
//! Paths are given outermost bucket first; names, keys and values are the arguments' bytes, or
//! hex with `--hex` (see [`crate::bytes`]).

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use rivet::{Bucket, Tx};

use crate::bytes::{decode_arg, show_path, Show};
use crate::cli::{DeleteArgs, GetArgs, PathArgs, PutArgs};
use crate::error::{db_error, CliError, CliResult, EXIT_OK};
use crate::files::NewFile;
use crate::open::{open_read, open_write, WriteOptions};
use crate::output::Out;

/// A bucket path, outermost bucket first.
type BucketPath = Vec<Vec<u8>>;

/// Decodes the arguments as a bucket path (of at least `min_path` buckets) followed by `tail`
/// trailing byte strings (key, value).
fn split_args(
    args: &[OsString],
    hex: bool,
    min_path: usize,
    tail: &[&str],
) -> CliResult<(BucketPath, Vec<Vec<u8>>)> {
    if args.len() < tail.len() + min_path {
        let want: Vec<String> = tail.iter().map(|t| t.to_uppercase()).collect();
        return Err(CliError::new(format!(
            "expected BUCKET... {} (at least one bucket, outermost first), got {} argument(s)",
            want.join(" "),
            args.len()
        )));
    }
    let n = args.len() - tail.len();
    let mut path = Vec::with_capacity(n);
    for a in &args[..n] {
        let name = decode_arg(a, hex, "bucket name")?;
        if name.is_empty() {
            return Err(CliError::new("bucket names must not be empty"));
        }
        path.push(name);
    }
    let mut rest = Vec::with_capacity(tail.len());
    for (a, what) in args[n..].iter().zip(tail) {
        rest.push(decode_arg(a, hex, what)?);
    }
    Ok((path, rest))
}

/// A path that names a bucket where a key is expected, or a key where a bucket is: a usage
/// error (exit 2) in every command, unlike a missing key or bucket (exit 1).
fn wrong_kind(message: String) -> CliError {
    CliError::new(message)
}

/// Opens the bucket at `path` (the root when empty); a missing bucket is a "not found" error.
fn open_bucket<'tx>(tx: &'tx Tx, db: &Path, path: &[Vec<u8>]) -> CliResult<Bucket<'tx>> {
    let mut b = tx.root();
    for (i, name) in path.iter().enumerate() {
        b = match b.bucket(name).map_err(|e| db_error(db, e))? {
            Some(sub) => sub,
            None => {
                let here = show_path(&path[..=i]);
                // The wrong kind of entry is a usage error (exit 2), absence is "not found"
                // (exit 1): the same rule in every command.
                if b.get(name).map_err(|e| db_error(db, e))?.is_some() {
                    return Err(wrong_kind(format!(
                        "{}: bucket {here} is a key, not a bucket",
                        db.display()
                    )));
                }
                return Err(CliError::not_found(format!(
                    "{}: bucket {here} not found",
                    db.display()
                )));
            }
        };
    }
    Ok(b)
}

/// Lists sub-bucket names (or all keys) of the bucket at the path.
fn list(args: &PathArgs, timeout: Duration, buckets_only: bool) -> CliResult<u8> {
    let (path, _) = split_args(&args.path, args.enc.hex, 0, &[])?;
    if !buckets_only && path.is_empty() {
        return Err(CliError::new("keys needs a bucket path"));
    }
    let show = Show::from_flags(args.enc.hex, args.enc.raw);
    let db = open_read(&args.db, timeout)?;
    let tx = db.begin_read().map_err(|e| db_error(&args.db, e))?;
    let bucket = open_bucket(&tx, &args.db, &path)?;
    let mut out = Out::new();
    for entry in bucket.iter() {
        let entry = entry.map_err(|e| db_error(&args.db, e))?;
        if buckets_only && !entry.is_bucket() {
            continue;
        }
        out.bytes(&show.render(entry.key()))?;
        out.bytes(b"\n")?;
    }
    out.flush()?;
    Ok(EXIT_OK)
}

/// `rivet buckets DB [BUCKET...]`.
pub fn buckets(args: &PathArgs, timeout: Duration) -> CliResult<u8> {
    list(args, timeout, true)
}

/// `rivet keys DB BUCKET...`.
pub fn keys(args: &PathArgs, timeout: Duration) -> CliResult<u8> {
    list(args, timeout, false)
}

/// `rivet get DB BUCKET... KEY`.
pub fn get(args: &GetArgs, timeout: Duration) -> CliResult<u8> {
    let (path, rest) = split_args(&args.args, args.enc.hex, 1, &["key"])?;
    let key = &rest[0];
    let db = open_read(&args.db, timeout)?;
    let tx = db.begin_read().map_err(|e| db_error(&args.db, e))?;
    let bucket = open_bucket(&tx, &args.db, &path)?;
    let err = |e| db_error(&args.db, e);
    let Some(value) = bucket.get(key).map_err(err)? else {
        let what = format!(
            "{}: key {} in bucket {}",
            args.db.display(),
            crate::bytes::escape(key),
            show_path(&path)
        );
        if bucket.bucket(key).map_err(err)?.is_some() {
            return Err(wrong_kind(format!("{what} is a bucket, not a key")));
        }
        return Err(CliError::not_found(format!("{what} not found")));
    };
    let show = Show::from_flags(args.enc.hex, args.enc.raw);
    let mut out = Out::new();
    out.bytes(&show.render(value))?;
    if show != Show::Raw {
        out.bytes(b"\n")?;
    }
    out.flush()?;
    Ok(EXIT_OK)
}

/// `rivet put DB BUCKET... KEY VALUE`: creates the buckets along the path (and the file) when
/// missing. When the put fails, a file it created is removed again.
pub fn put(args: &PutArgs, timeout: Duration) -> CliResult<u8> {
    let (path, key, value) = put_operands(args)?;
    let (key, value) = (&key[..], &value[..]);
    let mut new_file = NewFile::track(&args.db);
    let db = open_write(
        &args.db,
        WriteOptions {
            timeout,
            create: true,
            page_size: args.page_size,
            no_sync: false,
        },
    )?;
    let err = |e| db_error(&args.db, e);
    let tx = db.begin_write().map_err(err)?;
    let mut b = tx.root();
    for (i, name) in path.iter().enumerate() {
        b = b.create_bucket_if_not_exists(name).map_err(|e| match e {
            rivet::Error::IncompatibleValue => CliError::new(format!(
                "{}: {} is a key, not a bucket",
                args.db.display(),
                show_path(&path[..=i])
            )),
            e => err(e),
        })?;
    }
    b.put(key, value).map_err(|e| match e {
        rivet::Error::IncompatibleValue => CliError::new(format!(
            "{}: key {} in bucket {} is a bucket, not a key",
            args.db.display(),
            crate::bytes::escape(key),
            show_path(&path)
        )),
        e => err(e),
    })?;
    tx.commit().map_err(err)?;
    if new_file.created() {
        // Said on stderr, so that a typo in the path does not pass unnoticed.
        eprintln!(
            "rivet: created {} (page size {})",
            args.db.display(),
            db.page_size()
        );
    } else if let Some(asked) = args.page_size.filter(|&ps| ps != db.page_size()) {
        eprintln!(
            "rivet: {}: --page-size {asked} ignored: the file exists with page size {}",
            args.db.display(),
            db.page_size()
        );
    }
    new_file.keep();
    Ok(EXIT_OK)
}

/// A bucket path (outermost first), a key and a value.
type PathKeyValue = (Vec<Vec<u8>>, Vec<u8>, Vec<u8>);

/// The bucket path, key and value of `put`: the value from the last argument, from stdin
/// (`-`), or from `--file`.
fn put_operands(args: &PutArgs) -> CliResult<PathKeyValue> {
    if let Some(file) = &args.file {
        let (path, mut rest) = split_args(&args.args, args.hex, 1, &["key"])?;
        let value = std::fs::read(file).map_err(|e| crate::error::io_error(file, "read", &e))?;
        return Ok((path, rest.remove(0), value));
    }
    let (path, mut rest) = split_args(&args.args, args.hex, 1, &["key", "value"])?;
    let key = rest.remove(0);
    let value = if args.args.last().is_some_and(|v| v == "-") {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)
            .map_err(|e| CliError::new(format!("reading the value from stdin: {e}")))?;
        v
    } else {
        rest.remove(0)
    };
    Ok((path, key, value))
}

/// `rivet delete DB BUCKET... KEY`: deletes a key, or a sub-bucket with `--bucket`; a missing
/// key is reported (exit 1) and nothing is written.
pub fn delete(args: &DeleteArgs, timeout: Duration) -> CliResult<u8> {
    // A top-level bucket can be deleted with `--bucket DB NAME`.
    let min_path = usize::from(!args.bucket);
    let (path, rest) = split_args(&args.args, args.hex, min_path, &["key"])?;
    let key = &rest[0];
    let db = open_write(
        &args.db,
        WriteOptions {
            timeout,
            create: false,
            page_size: None,
            no_sync: false,
        },
    )?;
    let err = |e| db_error(&args.db, e);
    let tx = db.begin_write().map_err(err)?;
    let bucket = open_bucket(&tx, &args.db, &path)?;
    let shown = || {
        format!(
            "{}: key {} in bucket {}",
            args.db.display(),
            crate::bytes::escape(key),
            show_path(&path)
        )
    };
    let is_bucket = bucket.bucket(key).map_err(err)?.is_some();
    let is_key = bucket.get(key).map_err(err)?.is_some();
    match (is_bucket, is_key, args.bucket) {
        (true, _, true) => bucket.delete_bucket(key).map_err(err)?,
        (true, _, false) => {
            return Err(CliError::new(format!(
                "{} is a bucket; pass --bucket to delete it with everything in it",
                shown()
            )))
        }
        (false, true, false) => {
            bucket.delete(key).map_err(err)?;
        }
        (false, true, true) => {
            return Err(CliError::new(format!("{} is a key, not a bucket", shown())))
        }
        (false, false, _) => return Err(CliError::not_found(format!("{} not found", shown()))),
    }
    tx.commit().map_err(err)?;
    Ok(EXIT_OK)
}
