//! The CLI's error type and exit codes.
//!
//! Every command returns `Result<Outcome, CliError>`. A [`CliError`] carries the exit code and a
//! one-line message that names the file and the cause; `main` prints it as `rivet: MESSAGE` and
//! exits with the code. Engine errors are turned into such messages by [`db_error`].

use std::fmt;
use std::path::Path;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the command ran and found problems (check, meta validate) or found nothing
/// (get/keys/buckets/delete on a missing key or bucket).
pub const EXIT_PROBLEMS: u8 = 1;
/// Exit code: usage error, I/O error, unreadable or locked file.
pub const EXIT_ERROR: u8 = 2;
/// Exit code: interrupted by SIGINT (import).
pub const EXIT_INTERRUPTED: u8 = 130;

/// An error ending the command, with its exit code.
#[derive(Debug)]
pub struct CliError {
    /// Process exit code.
    pub code: u8,
    /// One-line message (without the `rivet: ` prefix).
    pub message: String,
    /// Whether to exit without printing anything (the reader of stdout went away).
    pub quiet: bool,
    /// Whether an I/O operation failed (rather than the file's contents being wrong): with a
    /// source and a destination, tells which file a problem belongs to.
    pub io: bool,
}

impl CliError {
    /// A usage or I/O error (exit 2).
    pub fn new(message: impl Into<String>) -> CliError {
        CliError {
            code: EXIT_ERROR,
            message: one_line(message.into()),
            quiet: false,
            io: false,
        }
    }

    /// A "not found" result (exit 1).
    pub fn not_found(message: impl Into<String>) -> CliError {
        CliError {
            code: EXIT_PROBLEMS,
            message: one_line(message.into()),
            quiet: false,
            io: false,
        }
    }

    /// An error with an explicit exit code.
    pub fn with_code(code: u8, message: impl Into<String>) -> CliError {
        CliError {
            code,
            message: one_line(message.into()),
            quiet: false,
            io: false,
        }
    }

    /// An I/O error while writing to stdout or a file named `what`. A closed pipe (`rivet
    /// export db | head`) ends the command quietly with status 0.
    pub fn write(what: &str, e: std::io::Error) -> CliError {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return CliError {
                code: EXIT_OK,
                message: String::new(),
                quiet: true,
                io: true,
            };
        }
        CliError::new(format!("{what}: write failed: {}", io_cause(&e))).io_failure()
    }

    /// Marks the error as a failed I/O operation.
    pub fn io_failure(mut self) -> CliError {
        self.io = true;
        self
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Result alias for commands.
pub type CliResult<T> = Result<T, CliError>;

/// Replaces line breaks so a message always prints as one line, and drops every
/// `(os error N)` suffix of an I/O error (it adds nothing for a user, and messages never show
/// it, whichever path they took).
fn one_line(s: String) -> String {
    let mut s = if s.contains(['\n', '\r']) {
        s.replace(['\n', '\r'], " ")
    } else {
        s
    };
    while let Some(i) = s.find(" (os error ") {
        let Some(len) = s[i..].find(')') else { break };
        s.replace_range(i..i + len + 1, "");
    }
    s
}

/// Turns an engine error about the database at `path` into a one-line message naming the file.
pub fn db_error(path: &Path, e: rivet::Error) -> CliError {
    let shown = path.display();
    let msg = match e {
        rivet::Error::Invalid { reason, .. } => match crate::raw::why_not_bbolt(path) {
            // The raw reader tells a truncated file from random bytes.
            Some(m) => m,
            None => format!("{shown}: not a bbolt file: {reason}"),
        },
        rivet::Error::Timeout(_) => {
            format!("{shown}: locked by another process (timed out waiting for the file lock; see --timeout)")
        }
        rivet::Error::Corrupted { page, reason } => {
            format!("{shown}: corrupted page {page}: {reason}")
        }
        rivet::Error::Io { op, source } => {
            if source.kind() == std::io::ErrorKind::BrokenPipe {
                return CliError::write("stdout", source);
            }
            // The engine's operations name the file ("write pages 4..9 of PATH", "open PATH");
            // the message already starts with it.
            let name = shown.to_string();
            let op = op
                .replace(&format!(" of {name}"), "")
                .replace(&name, "")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            let msg = if op.is_empty() || op == "open" {
                format!("{shown}: {}", io_cause(&source))
            } else {
                format!("{shown}: {op}: {}", io_cause(&source))
            };
            return CliError::new(msg).io_failure();
        }
        rivet::Error::BigEndian(_)
        | rivet::Error::VersionMismatch { .. }
        | rivet::Error::Checksum(_) => e.to_string(),
        other => format!("{shown}: {other}"),
    };
    CliError::new(msg)
}

/// A short description of an I/O error ("no such file", "permission denied", ...).
pub fn io_cause(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::NotFound => "no such file".into(),
        ErrorKind::PermissionDenied => "permission denied".into(),
        _ => {
            // Drop the "(os error N)" suffix (it adds nothing for a user) and start in lower
            // case like the other causes ("no space left on device").
            let s = e.to_string();
            let s = match s.find(" (os error") {
                Some(i) => &s[..i],
                None => &s[..],
            };
            let mut c = s.chars();
            match c.next() {
                Some(first)
                    if first.is_uppercase() && !c.next().is_some_and(char::is_uppercase) =>
                {
                    first
                        .to_lowercase()
                        .chain(s[first.len_utf8()..].chars())
                        .collect()
                }
                _ => s.to_string(),
            }
        }
    }
}

/// An I/O error about `path`.
pub fn io_error(path: &Path, what: &str, e: &std::io::Error) -> CliError {
    let msg = if what.is_empty() {
        format!("{}: {}", path.display(), io_cause(e))
    } else {
        format!("{}: {what}: {}", path.display(), io_cause(e))
    };
    CliError::new(msg).io_failure()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_never_show_os_error_numbers() {
        let e =
            CliError::new("a: write failed: No space left on device (os error 28); b (os error 5)");
        assert_eq!(e.message, "a: write failed: No space left on device; b");
        let io = std::io::Error::from_raw_os_error(28);
        assert_eq!(io_cause(&io), "no space left on device");
    }

    #[test]
    fn io_operations_do_not_repeat_or_lose_the_file_name() {
        let e = rivet::Error::io(
            "write pages 4..2205 of dir/full.db",
            std::io::Error::from_raw_os_error(28),
        );
        assert_eq!(
            db_error(Path::new("dir/full.db"), e).message,
            "dir/full.db: write pages 4..2205: no space left on device"
        );
    }
}
