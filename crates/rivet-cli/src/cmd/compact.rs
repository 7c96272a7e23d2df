//! `rivet compact SRC DST`: copy-compaction into a new file.

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
    if same_file(&args.src, &args.dst) {
        return Err(CliError::new(format!(
            "{}: destination is the source file",
            args.dst.display()
        )));
    }
    let existed = match std::fs::metadata(&args.dst) {
        Ok(m) if m.is_file() && m.len() == 0 => true,
        Ok(_) => {
            return Err(CliError::new(format!(
                "{}: destination already exists (compact writes a new file)",
                args.dst.display()
            )))
        }
        Err(_) => false,
    };
    let src = open_read(&args.src, timeout)?;
    let src_size = file_size(&args.src)?;
    let staged = Staged::new(&args.dst)?;
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
    let dst_size = file_size(&args.dst)?;
    let mut out = Out::new();
    let gain = if dst_size > 0 {
        format!(" (gain {:.2}x)", src_size as f64 / dst_size as f64)
    } else {
        String::new()
    };
    out.line(format!("{} -> {}", args.src.display(), args.dst.display()))?;
    out.line(format!("  before: {src_size} bytes"))?;
    out.line(format!("  after:  {dst_size} bytes{gain}"))?;
    out.line(format!(
        "  copied {} buckets and {} keys in {} transaction(s)",
        stats.buckets, stats.keys, stats.commits
    ))?;
    out.flush()?;
    Ok(EXIT_OK)
}
