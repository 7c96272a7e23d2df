//! `rivet compact SRC DST`: copy-compaction into a new file; `rivet compact --in-place DB`:
//! online compaction of the file itself.

use std::path::Path;
use std::time::Duration;

use crate::cli::CompactArgs;
use crate::cmd::export::same_file;
use crate::error::{db_error, io_error, CliError, CliResult, EXIT_OK};
use crate::files::Staged;
use crate::open::{open_read, open_write, WriteOptions};
use crate::output::Out;
use crate::progress::Progress;

fn file_size(path: &Path) -> CliResult<u64> {
    Ok(std::fs::metadata(path)
        .map_err(|e| io_error(path, "stat", &e))?
        .len())
}

/// Which file an engine error during the copy is about: the source for damage read from it
/// (and I/O on it), the destination for everything else.
fn blame(args: &CompactArgs, staged: &Staged, e: rivet::Error) -> CliError {
    let about_src = match &e {
        rivet::Error::Corrupted { .. } => true,
        rivet::Error::Io { op, .. } => {
            let src = args.src.display().to_string();
            op.contains(&src) && !op.contains(&staged.path().display().to_string())
        }
        _ => false,
    };
    if about_src {
        db_error(&args.src, e)
    } else {
        staged.blame_dest(db_error(staged.path(), e))
    }
}

/// Copies every bucket and key of SRC (opened read-only) into DST with full pages, then prints
/// both sizes. DST must not exist (or be empty); it gets SRC's page size. The copy is written
/// beside DST and renamed into place once complete, so DST is never left half-written.
pub fn run(args: &CompactArgs, timeout: Duration) -> CliResult<u8> {
    let Some(dst) = &args.dst else {
        return in_place(args, timeout);
    };
    copy(args, dst, timeout)
}

/// Compacts the file itself (`Db::compact_in_place`), with a spinner that shows the rounds,
/// then prints both sizes.
fn in_place(args: &CompactArgs, timeout: Duration) -> CliResult<u8> {
    crate::open::require_file(&args.src)?;
    let db = open_write(
        &args.src,
        WriteOptions {
            timeout,
            create: false,
            page_size: None,
            no_sync: args.no_sync,
        },
    )?;
    let done = {
        let spinner = Progress::spinner("compacting in place", "");
        db.compact_in_place(args.round_leaves, |p| {
            spinner.message(format!(
                "compacting in place: {} leaves moved, {} bytes returned",
                p.leaves_moved,
                p.bytes_returned()
            ))
        })
        .map_err(|e| db_error(&args.src, e))?
    };
    if args.no_sync {
        db.sync().map_err(|e| db_error(&args.src, e))?;
    }
    let mut out = Out::new();
    let gain = if done.file_bytes > 0 {
        format!(
            " (gain {:.2}x)",
            done.start_bytes as f64 / done.file_bytes as f64
        )
    } else {
        String::new()
    };
    out.line(format!("{} (in place)", args.src.display()))?;
    out.line(format!("  before: {} bytes", done.start_bytes))?;
    out.line(format!("  after:  {} bytes{gain}", done.file_bytes))?;
    out.line(format!(
        "  moved {} leaves and merged {} pages in {} transaction(s)",
        done.leaves_moved, done.nodes_merged, done.rounds
    ))?;
    out.flush()?;
    Ok(EXIT_OK)
}

/// Copy-compaction of SRC into the new file `dst`.
fn copy(args: &CompactArgs, dst_path: &Path, timeout: Duration) -> CliResult<u8> {
    if same_file(&args.src, dst_path) {
        return Err(CliError::new(format!(
            "{}: destination is the source file",
            dst_path.display()
        )));
    }
    let existed = match std::fs::metadata(dst_path) {
        Ok(m) if m.is_file() && m.len() == 0 => true,
        Ok(_) => {
            return Err(CliError::new(format!(
                "{}: destination already exists (compact writes a new file)",
                dst_path.display()
            )))
        }
        Err(_) => false,
    };
    let src = open_read(&args.src, timeout)?;
    let src_size = file_size(&args.src)?;
    let staged = Staged::new(dst_path)?;
    let stats = {
        let dst = open_write(
            staged.path(),
            WriteOptions {
                timeout,
                create: true,
                page_size: Some(src.page_size()),
                no_sync: args.no_sync,
            },
        )
        .map_err(|e| staged.blame_dest(e))?;
        let stats = {
            let _spinner = Progress::spinner("compacting", "");
            rivet::compact(&dst, &src, args.tx_max_size).map_err(|e| blame(args, &staged, e))?
        };
        if args.no_sync {
            dst.sync().map_err(|e| blame(args, &staged, e))?;
        }
        stats
    };
    // An empty DST that existed may be replaced; one that appeared meanwhile may not.
    staged.commit(!existed)?;
    let dst_size = file_size(dst_path)?;
    let mut out = Out::new();
    let gain = if dst_size > 0 {
        format!(" (gain {:.2}x)", src_size as f64 / dst_size as f64)
    } else {
        String::new()
    };
    out.line(format!("{} -> {}", args.src.display(), dst_path.display()))?;
    out.line(format!("  before: {src_size} bytes"))?;
    out.line(format!("  after:  {dst_size} bytes{gain}"))?;
    out.line(format!(
        "  copied {} buckets and {} keys in {} transaction(s)",
        stats.buckets, stats.keys, stats.commits
    ))?;
    out.flush()?;
    Ok(EXIT_OK)
}
