//! Opening databases through the engine, and parsing the `--timeout` option.
//!
//! Every read-only command goes through [`open_read`], which opens the file read-only (a shared
//! lock, no write transaction, not a byte changed, even for files written without a freelist).
//! Only the writing commands use [`open_write`].

use std::path::Path;
use std::time::Duration;

use rivet::{Db, Options};

use crate::error::{db_error, io_error, CliError, CliResult};

/// Fails with a one-line message unless `path` exists and is a regular file (or a link to one).
pub fn require_file(path: &Path) -> CliResult<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(CliError::new(format!(
            "{}: is a directory, not a database file",
            path.display()
        ))),
        Ok(_) => Ok(()),
        Err(e) => Err(io_error(path, "", &e)),
    }
}

/// Opens an existing database read-only, waiting at most `timeout` for the file lock.
pub fn open_read(path: &Path, timeout: Duration) -> CliResult<Db> {
    require_file(path)?;
    let db = Db::open(
        path,
        Options {
            read_only: true,
            timeout: Some(timeout),
            ..Options::default()
        },
    )
    .map_err(|e| db_error(path, e))?;
    warn_if_older_commit(path);
    Ok(db)
}

/// Warns on stderr when the engine fell back to the older meta page of a truncated file.
fn warn_if_older_commit(path: &Path) {
    if let Some(w) = crate::raw::older_commit_warning(path) {
        eprintln!("rivet: warning: {w}");
    }
}

/// How a writing command opens its database.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    /// How long to wait for the file lock.
    pub timeout: Duration,
    /// Create the file when it is missing.
    pub create: bool,
    /// Page size for a new file (`None`: the OS page size).
    pub page_size: Option<usize>,
    /// Skip `fdatasync` at each commit.
    pub no_sync: bool,
}

/// Opens a database read-write (creating it if allowed and missing).
pub fn open_write(path: &Path, o: WriteOptions) -> CliResult<Db> {
    if o.create {
        if path.is_dir() {
            return Err(CliError::new(format!(
                "{}: is a directory, not a database file",
                path.display()
            )));
        }
    } else {
        require_file(path)?;
    }
    let db = Db::open(
        path,
        Options {
            timeout: Some(o.timeout),
            page_size: o.page_size,
            no_sync: o.no_sync,
            ..Options::default()
        },
    )
    .map_err(|e| db_error(path, e))?;
    warn_if_older_commit(path);
    Ok(db)
}

/// Parses a duration such as `1s`, `250ms`, `1.5s`, `2m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (examples: 1s, 250ms, 0)"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "us" | "µs" => n / 1_000_000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} (use ms, s, m or h)"
            ))
        }
    };
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("duration {s:?} out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("1 fortnight").is_err());
        assert!(parse_duration("").is_err());
    }
}
