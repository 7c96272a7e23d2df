//! `rivet check DB`: the engine's full consistency check.

use std::time::Duration;

use crate::cli::JsonDbArgs;
use crate::error::{db_error, CliResult, EXIT_OK, EXIT_PROBLEMS};
use crate::json::Out as J;
use crate::open::open_read;
use crate::output::Out;
use crate::progress::Progress;

/// Runs the check on the latest commit; prints `OK` (exit 0) or every problem with its page id
/// and a count (exit 1).
pub fn run(args: &JsonDbArgs, timeout: Duration) -> CliResult<u8> {
    let db = open_read(&args.db, timeout)?;
    let tx = db.begin_read().map_err(|e| db_error(&args.db, e))?;
    let problems = {
        let _spinner = Progress::spinner("checking", "");
        // `Db::check` adds a damaged newest meta (an acknowledged commit lost) to the
        // snapshot's problems; a torn newest meta (a crash mid-commit) is only a note.
        db.check().map_err(|e| db_error(&args.db, e))?
    };
    let note = db
        .meta_choice()
        .passed_over
        .as_ref()
        .filter(|p| !p.damaged_commit)
        .map(|p| format!("note: {p}"));
    let mut out = Out::new();
    if args.json {
        let list = problems
            .iter()
            .map(|p| {
                J::Object(vec![
                    ("page", p.page.map(J::U64).unwrap_or(J::Null)),
                    ("message", J::str(p.message.clone())),
                ])
            })
            .collect();
        out.line(
            J::Object(vec![
                ("ok", J::Bool(problems.is_empty())),
                ("txid", J::U64(tx.id())),
                ("meta_page", J::U64(db.meta_choice().page)),
                ("problems", J::Array(list)),
                (
                    "notes",
                    J::Array(note.iter().map(|n| J::str(n.clone())).collect()),
                ),
            ])
            .to_json(),
        )?;
    } else if problems.is_empty() {
        if let Some(n) = &note {
            out.line(n)?;
        }
        out.line("OK")?;
    } else {
        if let Some(n) = &note {
            out.line(n)?;
        }
        for p in &problems {
            out.line(p)?;
        }
        out.line(format!("{} problem(s) found", problems.len()))?;
    }
    out.flush()?;
    Ok(if problems.is_empty() {
        EXIT_OK
    } else {
        EXIT_PROBLEMS
    })
}
