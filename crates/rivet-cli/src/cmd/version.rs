//! `rivet version`.

use crate::error::{CliResult, EXIT_OK};
use crate::output::Out;

/// Prints the tool's version, the file format it speaks and the platform.
pub fn run() -> CliResult<u8> {
    let mut out = Out::new();
    out.line(format!(
        "rivet {} (bbolt file format v{}, {}/{})",
        env!("CARGO_PKG_VERSION"),
        rivet::format::VERSION,
        std::env::consts::OS,
        std::env::consts::ARCH
    ))?;
    out.flush()?;
    Ok(EXIT_OK)
}
