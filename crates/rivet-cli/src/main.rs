//! `rivet`: the command-line tool for Rivet and bbolt database files.
//!
//! This file parses the command line (the grammar lives in [`cli`]), runs the command, prints
//! an error as one line (`rivet: FILE: cause`) and exits with the command's status: 0 success,
//! 1 problems found, 2 usage or I/O error. See `docs/cli.md` for a tour.

mod bytes;
mod cli;
mod cmd;
mod error;
mod files;
mod json;
mod jsonl;
mod open;
mod output;
mod progress;
mod raw;
mod walk;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, FreelistCommand, MetaCommand, SurgeryCommand};
use error::{CliResult, EXIT_ERROR};

fn main() -> ExitCode {
    install_panic_hook();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if !e.quiet {
                let _ = std::io::stdout().flush();
                let _ = writeln!(std::io::stderr(), "rivet: {e}");
            }
            ExitCode::from(e.code)
        }
    }
}

/// Runs one command and returns its exit status.
fn run(cli: Cli) -> CliResult<u8> {
    match cli.command {
        Command::Info(a) => cmd::info::run(&a, a.lock.timeout),
        Command::Check(a) => cmd::check::run(&a, a.lock.timeout),
        Command::Stats(a) => cmd::stats::run(&a, a.lock.timeout),
        Command::Buckets(a) => cmd::data::buckets(&a, a.lock.timeout),
        Command::Keys(a) => cmd::data::keys(&a, a.lock.timeout),
        Command::Get(a) => cmd::data::get(&a, a.lock.timeout),
        Command::Put(a) => cmd::data::put(&a, a.lock.timeout),
        Command::Delete(a) => cmd::data::delete(&a, a.lock.timeout),
        Command::Pages(a) => cmd::pages::pages(&a, a.lock.timeout),
        Command::Page(a) => cmd::pages::page(&a, a.lock.timeout),
        Command::Dump(a) => cmd::pages::dump(&a, a.lock.timeout),
        Command::Export(a) => cmd::export::run(&a, a.lock.timeout),
        Command::Import(a) => cmd::import::run(&a, a.lock.timeout),
        Command::Compact(a) => cmd::compact::run(&a, a.lock.timeout),
        Command::Bench(a) => cmd::bench::run(&a),
        Command::Surgery(SurgeryCommand::RevertMeta(a)) => {
            cmd::surgery::revert_meta(&a, a.lock.timeout)
        }
        Command::Surgery(SurgeryCommand::Freelist(FreelistCommand::Rebuild(a))) => {
            cmd::surgery::freelist_rebuild(&a, a.lock.timeout)
        }
        Command::Surgery(SurgeryCommand::Freelist(FreelistCommand::Abandon(a))) => {
            cmd::surgery::freelist_abandon(&a, a.lock.timeout)
        }
        Command::Surgery(SurgeryCommand::Meta(MetaCommand::Validate(a))) => {
            cmd::surgery::meta_validate(&a, a.lock.timeout)
        }
        Command::Version => cmd::version::run(),
    }
}

/// A panic is a bug in rivet, never the user's fault: report it on one line, without a
/// backtrace, and exit with status 2 like any other error.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let _ = writeln!(
            std::io::stderr(),
            "rivet: internal error (a bug, please report it): {}{at}",
            what.replace('\n', " ")
        );
        std::process::exit(i32::from(EXIT_ERROR));
    }));
}
