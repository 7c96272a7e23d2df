//! `rivet import DB [FILE]`: loading JSON Lines written by `export`.
//!
//! Lines are applied in order inside a write transaction that is committed every `--batch`
//! lines, so memory stays bounded. A bucket must be declared (`{"bucket":[...]}`) on an earlier
//! line than its pairs and its sub-buckets. A malformed line, or one that cannot be applied,
//! stops the import: the current transaction is rolled back, so exactly the lines committed
//! before it stay in the file, and their count is printed. Ctrl-C does the same (a second
//! Ctrl-C exits at once). A database file this import created is removed again when the import
//! stops before its first commit.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rivet::{Bucket, Db, Tx};

use crate::bytes::{escape, show_path};
use crate::cli::ImportArgs;
use crate::error::{
    db_error, io_cause, io_error, CliError, CliResult, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK,
};
use crate::files::NewFile;
use crate::jsonl::{parse_line, Line};
use crate::open::{open_write, WriteOptions};
use crate::output::Out;
use crate::progress::Progress;

/// Where the import stands.
#[derive(Default)]
struct State {
    /// Bucket paths declared so far.
    declared: HashSet<Vec<Vec<u8>>>,
    /// Input lines read.
    line_no: u64,
    /// Input lines (and entries) covered by committed transactions.
    committed_lines: u64,
    committed_entries: u64,
    buckets: u64,
    pairs: u64,
    commits: u64,
}

/// The most recently used bucket of the current transaction.
type Cache<'tx> = Option<(Vec<Vec<u8>>, Bucket<'tx>)>;

/// Why an import stopped early: the exit code and the cause, without the count of committed
/// lines (added by [`run`]).
struct Stop {
    code: u8,
    why: String,
}

impl Stop {
    fn error(why: String) -> Stop {
        Stop {
            code: EXIT_ERROR,
            why,
        }
    }
}

/// Imports the input into the database.
pub fn run(args: &ImportArgs, timeout: Duration) -> CliResult<u8> {
    let (input, name, size): (Box<dyn Read>, String, Option<u64>) = match &args.file {
        None => (Box::new(std::io::stdin().lock()), "<stdin>".into(), None),
        Some(p) => {
            let f = File::open(p).map_err(|e| io_error(p, "", &e))?;
            let meta = f.metadata().map_err(|e| io_error(p, "stat", &e))?;
            if meta.is_dir() {
                return Err(CliError::new(format!(
                    "{}: is a directory, not a JSON Lines file",
                    p.display()
                )));
            }
            (Box::new(f), p.display().to_string(), Some(meta.len()))
        }
    };
    let mut reader = BufReader::with_capacity(1 << 20, input);
    // A database this import creates is removed again if nothing gets committed to it.
    let mut new_file = NewFile::track(&args.db);
    let db = open_write(
        &args.db,
        WriteOptions {
            timeout,
            create: true,
            page_size: args.page_size,
            no_sync: args.no_sync,
        },
    )?;
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while the flag is set exits at once; the first only sets the flag.
        let _ = signal_hook::flag::register_conditional_shutdown(
            sig,
            i32::from(EXIT_INTERRUPTED),
            Arc::clone(&interrupted),
        );
        let _ = signal_hook::flag::register(sig, Arc::clone(&interrupted));
    }
    let progress = match size {
        Some(n) => Progress::bytes("importing", n),
        None => Progress::spinner("importing", "lines"),
    };
    let mut st = State::default();
    let result = import(
        args,
        &db,
        &mut reader,
        &name,
        size,
        &progress,
        &interrupted,
        &mut st,
    );
    drop(progress);
    if let Err(stop) = result {
        drop(db);
        let shown = args.db.display();
        let tail = if st.commits == 0 && new_file.created() {
            format!("nothing was committed, so {shown}, which this import created, was removed")
        } else {
            new_file.keep();
            format!(
                "{} lines committed to {shown}; nothing after them was written",
                st.committed_lines
            )
        };
        return Err(CliError::with_code(
            stop.code,
            format!("{} ({tail})", stop.why),
        ));
    }
    new_file.keep();
    let mut out = Out::new();
    out.line(format!(
        "imported {} entries ({} buckets, {} keys) from {name} in {} transaction(s)",
        st.committed_entries, st.buckets, st.pairs, st.commits
    ))?;
    out.flush()?;
    Ok(EXIT_OK)
}

/// Reads and applies the input batch by batch, keeping `st` up to date with what was
/// committed.
#[allow(clippy::too_many_arguments)]
fn import(
    args: &ImportArgs,
    db: &Db,
    reader: &mut impl BufRead,
    name: &str,
    size: Option<u64>,
    progress: &Progress,
    interrupted: &AtomicBool,
    st: &mut State,
) -> Result<(), Stop> {
    let mut buf = Vec::new();
    let mut bytes_read = 0u64;
    let db_err = |e| Stop::error(db_error(&args.db, e).message);
    loop {
        let tx = db.begin_write().map_err(db_err)?;
        let mut cache: Cache<'_> = None;
        let mut entries = 0u64;
        let mut eof = false;
        let (mut buckets, mut pairs) = (0u64, 0u64);
        while entries < args.batch {
            if interrupted.load(Ordering::Relaxed) {
                break;
            }
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .map_err(|e| Stop::error(format!("{name}: read failed: {}", io_cause(&e))))?;
            if n == 0 {
                eof = true;
                break;
            }
            bytes_read += n as u64;
            st.line_no += 1;
            let line_no = st.line_no;
            let at = |why: String| Stop::error(format!("{name}:{line_no}: {why}"));
            let text =
                std::str::from_utf8(&buf).map_err(|_| at("line is not valid UTF-8".into()))?;
            if text.trim().is_empty() {
                continue;
            }
            let line = parse_line(text.trim_end_matches(['\n', '\r'])).map_err(&at)?;
            match apply(&tx, &mut cache, &mut st.declared, line).map_err(&at)? {
                Applied::Bucket => buckets += 1,
                Applied::Pair => pairs += 1,
            }
            entries += 1;
            if size.is_some() {
                progress.set(bytes_read);
            } else {
                progress.inc(1);
            }
        }
        if interrupted.load(Ordering::Relaxed) {
            drop(cache);
            tx.rollback();
            return Err(Stop {
                code: EXIT_INTERRUPTED,
                why: "import interrupted".into(),
            });
        }
        drop(cache);
        if entries > 0 {
            tx.commit().map_err(db_err)?;
            st.commits += 1;
        } else {
            tx.rollback();
        }
        st.committed_lines = st.line_no;
        st.committed_entries += entries;
        st.buckets += buckets;
        st.pairs += pairs;
        if args.verbose {
            eprintln!(
                "committed {} lines ({} entries)",
                st.committed_lines, st.committed_entries
            );
        }
        if eof {
            break;
        }
    }
    if args.no_sync {
        db.sync().map_err(db_err)?;
    }
    Ok(())
}

/// What a line did.
enum Applied {
    Bucket,
    Pair,
}

/// Applies one parsed line to the transaction.
fn apply<'tx>(
    tx: &'tx Tx,
    cache: &mut Cache<'tx>,
    declared: &mut HashSet<Vec<Vec<u8>>>,
    line: Line,
) -> Result<Applied, String> {
    match line {
        Line::Bucket { path, sequence } => {
            if declared.contains(&path) {
                return Err(format!("bucket {} is declared twice", show_path(&path)));
            }
            let (name, parent_path) = path.split_last().ok_or("empty bucket path")?;
            if !parent_path.is_empty() && !declared.contains(parent_path) {
                return Err(format!(
                    "parent bucket {} was not declared on an earlier line",
                    show_path(parent_path)
                ));
            }
            let parent = bucket_at(tx, cache, parent_path)?;
            let child = parent
                .create_bucket_if_not_exists(name)
                .map_err(|e| match e {
                    rivet::Error::IncompatibleValue => {
                        format!("bucket {} already exists as a key", show_path(&path))
                    }
                    e => format!("creating bucket {}: {e}", show_path(&path)),
                })?;
            if let Some(seq) = sequence {
                child.set_sequence(seq).map_err(|e| e.to_string())?;
            }
            *cache = Some((path.clone(), child));
            declared.insert(path);
            Ok(Applied::Bucket)
        }
        Line::Pair { path, key, value } => {
            if !declared.contains(&path) {
                return Err(format!(
                    "bucket {} was not declared on an earlier line",
                    show_path(&path)
                ));
            }
            let b = bucket_at(tx, cache, &path)?;
            // Exports list keys in ascending order, so the append path fills pages completely;
            // out-of-order input still lands correctly (append falls back to put).
            b.append(&key, &value).map_err(|e| match e {
                rivet::Error::IncompatibleValue => format!(
                    "key {} in bucket {} is a sub-bucket",
                    escape(&key),
                    show_path(&path)
                ),
                e => format!("key {} in bucket {}: {e}", escape(&key), show_path(&path)),
            })?;
            Ok(Applied::Pair)
        }
    }
}

/// The bucket at `path` (the root when empty), through the one-entry cache.
fn bucket_at<'tx>(
    tx: &'tx Tx,
    cache: &mut Cache<'tx>,
    path: &[Vec<u8>],
) -> Result<Bucket<'tx>, String> {
    if let Some((p, b)) = cache {
        if p.as_slice() == path {
            return Ok(*b);
        }
    }
    let mut b = tx.root();
    for (i, name) in path.iter().enumerate() {
        b = b
            .bucket(name)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("bucket {} does not exist", show_path(&path[..=i])))?;
    }
    if !path.is_empty() {
        *cache = Some((path.to_vec(), b));
    }
    Ok(b)
}
