//! `rivet check DB`: the engine's full consistency check.
//!
//! One damaged page can make hundreds of others unreachable, each reported by the engine. The
//! text output groups pages with the same problem into ranges (`pages 182..359 (178 pages):
//! ...`) and lists problems met on a single page, usually the root cause, first. `--json` keeps
//! every problem, one object per page, for scripts.

use std::time::Duration;

use rivet::Problem;

use crate::cli::JsonDbArgs;
use crate::error::{db_error, CliResult, EXIT_OK, EXIT_PROBLEMS};
use serde_json::Value;

use crate::json;
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
                json::object(vec![
                    ("page", p.page.map(Value::from).unwrap_or(Value::Null)),
                    ("message", Value::from(p.message.clone())),
                ])
            })
            .collect();
        out.line(
            json::object(vec![
                ("ok", Value::Bool(problems.is_empty())),
                ("txid", Value::from(tx.id())),
                ("meta_page", Value::from(db.meta_choice().page)),
                ("problems", Value::Array(list)),
                (
                    "notes",
                    Value::Array(note.iter().map(|n| Value::from(n.clone())).collect()),
                ),
            ])
            .to_string(),
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
        for line in grouped(&problems) {
            out.line(line)?;
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

/// At most this many ranges are spelled out on one line; `--json` has them all.
const MAX_RANGES: usize = 8;

/// The problems as lines: each message once, with the pages it was found on as ranges. Messages
/// found on one page come first, in the engine's order; messages shared by several pages (the
/// consequences, such as pages left unreachable) follow.
fn grouped(problems: &[Problem]) -> Vec<String> {
    let mut groups: Vec<(&str, Vec<u64>)> = Vec::new();
    let mut lines = Vec::new();
    for p in problems {
        let Some(page) = p.page else {
            continue;
        };
        match groups.iter_mut().find(|(m, _)| *m == p.message) {
            Some((_, pages)) => pages.push(page),
            None => groups.push((&p.message, vec![page])),
        }
    }
    // Problems without a page first (about the whole file), then single pages, then groups.
    for p in problems.iter().filter(|p| p.page.is_none()) {
        lines.push(p.message.clone());
    }
    for (message, pages) in groups.iter().filter(|(_, p)| p.len() == 1) {
        lines.push(format!("page {}: {message}", pages[0]));
    }
    for (message, pages) in groups.iter_mut().filter(|(_, p)| p.len() > 1) {
        pages.sort_unstable();
        pages.dedup();
        let ranges = ranges(pages);
        let mut shown: Vec<String> = ranges
            .iter()
            .take(MAX_RANGES)
            .map(|&(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}..{b}")
                }
            })
            .collect();
        if ranges.len() > MAX_RANGES {
            shown.push(format!(
                "and {} more ranges (see --json)",
                ranges.len() - MAX_RANGES
            ));
        }
        lines.push(format!(
            "pages {} ({} pages): {message}",
            shown.join(", "),
            pages.len()
        ));
    }
    lines
}

/// Runs of consecutive ids in sorted `ids`, as inclusive ranges.
fn ranges(ids: &[u64]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &id in ids {
        match out.last_mut() {
            Some((_, end)) if *end + 1 == id => *end = id,
            _ => out.push((id, id)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(page: u64, m: &str) -> Problem {
        Problem {
            page: Some(page),
            message: m.into(),
        }
    }

    #[test]
    fn groups_pages_with_the_same_problem_into_ranges() {
        let mut problems = vec![p(664, "referenced more than once")];
        for id in (182..=359).chain([400, 402, 403]) {
            problems.push(p(id, "unreachable"));
        }
        problems.push(p(7, "keys out of order"));
        assert_eq!(
            grouped(&problems),
            [
                "page 664: referenced more than once",
                "page 7: keys out of order",
                "pages 182..359, 400, 402..403 (181 pages): unreachable",
            ]
        );
        assert_eq!(ranges(&[1, 2, 3, 5, 7, 8]), [(1, 3), (5, 5), (7, 8)]);
    }
}
