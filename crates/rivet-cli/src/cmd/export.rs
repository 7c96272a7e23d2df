//! `rivet export DB [-o FILE]`: the canonical JSON Lines dump.
//!
//! `-o FILE` is complete or absent: the export is written beside it and renamed into place
//! (see [`crate::files::Staged`]).
//!
//! The format is [`rivet::export::write_jsonl`]'s, byte for byte (and so the Go interop peer's
//! `dump`); `import` reads it back.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use crate::cli::ExportArgs;
use crate::error::{db_error, CliError, CliResult, EXIT_OK};
use crate::files::Staged;
use crate::open::open_read;
use crate::progress::Progress;

/// Counts the lines going through (the exporter writes one line per call) for the progress
/// spinner.
struct Counting<'a, W> {
    inner: W,
    progress: &'a Progress,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.progress.inc(1);
        self.inner.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Whether `a` and `b` name the same existing file.
pub fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Writes the export of the latest commit to stdout or `-o FILE`.
pub fn run(args: &ExportArgs, timeout: Duration) -> CliResult<u8> {
    let db = open_read(&args.db, timeout)?;
    let tx = db.begin_read().map_err(|e| db_error(&args.db, e))?;
    let progress = Progress::spinner("exporting", "lines");
    let mut staged = None;
    let (sink, name): (Box<dyn Write>, String) = match &args.output {
        None => (Box::new(std::io::stdout().lock()), "stdout".into()),
        Some(path) => {
            if same_file(path, &args.db) {
                return Err(CliError::new(format!(
                    "{}: refusing to export a database over itself",
                    path.display()
                )));
            }
            // Written beside the destination and renamed into place once complete.
            let s = Staged::new(path)?;
            let f = s.open()?;
            staged = Some(s);
            (Box::new(f), path.display().to_string())
        }
    };
    let mut w = Counting {
        inner: BufWriter::with_capacity(256 * 1024, sink),
        progress: &progress,
    };
    let lines = rivet::export::write_jsonl(&tx, &mut w).map_err(|e| match e {
        rivet::Error::Io { source, .. } => CliError::write(&name, source),
        e => db_error(&args.db, e),
    })?;
    w.flush().map_err(|e| CliError::write(&name, e))?;
    drop(w);
    drop(progress);
    if let Some(s) = staged {
        s.commit(false)?;
    }
    if let Some(path) = &args.output {
        eprintln!("exported {lines} lines to {}", path.display());
    }
    Ok(EXIT_OK)
}
