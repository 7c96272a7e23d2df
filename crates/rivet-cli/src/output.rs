//! Buffered standard output for command results.
//!
//! Every command writes its result through [`Out`], which buffers, and turns write errors into
//! [`CliError`]s: a closed pipe (`rivet keys db b | head`) ends the command quietly.

use std::fmt::Display;
use std::io::{BufWriter, StdoutLock, Write};

use crate::error::{CliError, CliResult};

/// Buffered, locked stdout.
pub struct Out {
    w: BufWriter<StdoutLock<'static>>,
}

impl Out {
    /// Locks stdout.
    pub fn new() -> Out {
        Out {
            w: BufWriter::with_capacity(64 * 1024, std::io::stdout().lock()),
        }
    }

    /// Writes `s` and a newline.
    pub fn line(&mut self, s: impl Display) -> CliResult<()> {
        writeln!(self.w, "{s}").map_err(|e| CliError::write("stdout", e))
    }

    /// Writes raw bytes.
    pub fn bytes(&mut self, b: &[u8]) -> CliResult<()> {
        self.w
            .write_all(b)
            .map_err(|e| CliError::write("stdout", e))
    }

    /// Flushes the buffer.
    pub fn flush(&mut self) -> CliResult<()> {
        self.w.flush().map_err(|e| CliError::write("stdout", e))
    }
}
