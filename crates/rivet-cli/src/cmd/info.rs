//! `rivet info DB`: the file's vital numbers.

use std::time::Duration;

use crate::cli::JsonDbArgs;
use crate::error::{db_error, CliResult, EXIT_OK};
use crate::json::Out as J;
use crate::open::open_read;
use crate::output::Out;
use crate::raw::{Access, RawFile};
use crate::walk::{free_pages, FreeSource};

/// Prints page size, txid, high-water mark, file size, free and pending pages and the freelist
/// mode of the database's latest commit.
pub fn run(args: &JsonDbArgs, timeout: Duration) -> CliResult<u8> {
    let path = &args.db;
    // The engine validates the file and picks the meta; the free pages are read from the file
    // directly, since a read-only engine handle does not load the freelist.
    let db = open_read(path, timeout)?;
    let tx = db.begin_read().map_err(|e| db_error(path, e))?;
    let meta = tx.meta();
    let raw = RawFile::open(path, Access::Read, timeout)?;
    let file_size = raw.len();
    let active = raw
        .metas()?
        .iter()
        .find(|s| s.problem.is_none() && s.raw.txid == meta.txid)
        .map(|s| s.index);
    let free = free_pages(&raw, &meta)?;
    let ps = u64::from(meta.page_size);

    let mut out = Out::new();
    if args.json {
        let (mode, page) = match free.source {
            FreeSource::Synced(p) => ("synced", J::U64(p)),
            FreeSource::NotSynced => ("not-synced", J::Null),
            FreeSource::Unusable(p) => ("unusable", J::U64(p)),
        };
        let passed = match &db.meta_choice().passed_over {
            Some(p) => J::Object(vec![
                ("page", J::U64(p.page)),
                ("txid", J::U64(p.txid)),
                ("reason", J::str(p.reason.clone())),
                ("damaged_commit", J::Bool(p.damaged_commit)),
            ]),
            None => J::Null,
        };
        let obj = J::Object(vec![
            (
                "path",
                J::Bytes(path.as_os_str().as_encoded_bytes().to_vec()),
            ),
            ("page_size", J::U64(ps)),
            ("txid", J::U64(meta.txid)),
            ("high_water_mark", J::U64(meta.pgid)),
            ("file_size", J::U64(file_size)),
            ("free_pages", J::U64(free.ids.len() as u64)),
            ("pending_pages", J::U64(0)),
            ("freelist", J::str(mode)),
            ("freelist_page", page),
            ("root_page", J::U64(meta.root)),
            ("meta_page", active.map(J::U64).unwrap_or(J::Null)),
            ("meta_passed_over", passed),
        ]);
        out.line(obj.to_json())?;
    } else {
        out.line(format!("Page size:        {ps}"))?;
        out.line(format!("Txid:             {}", meta.txid))?;
        out.line(format!(
            "High-water mark:  {} pages ({} bytes)",
            meta.pgid,
            meta.pgid * ps
        ))?;
        out.line(format!("File size:        {file_size} bytes"))?;
        out.line(format!(
            "Free pages:       {} ({} bytes)",
            free.ids.len(),
            free.ids.len() as u64 * ps
        ))?;
        out.line("Pending pages:    0")?;
        match free.source {
            FreeSource::Synced(p) => out.line(format!("Freelist:         synced (page {p})"))?,
            FreeSource::NotSynced => out.line(
                "Freelist:         not synced (NoFreelistSync; free pages found by walking the tree)",
            )?,
            FreeSource::Unusable(p) => out.line(format!(
                "Freelist:         unusable (page {p}; free pages found by walking the tree): {}",
                free.problems.first().map(String::as_str).unwrap_or("")
            ))?,
        }
        out.line(format!("Root page:        {}", meta.root))?;
        if let Some(i) = active {
            out.line(format!("Active meta page: {i}"))?;
        }
        if let Some(p) = &db.meta_choice().passed_over {
            let kind = if p.damaged_commit { "Problem" } else { "Note" };
            out.line(format!("{kind}:{:w$}{p}", "", w = 17 - kind.len()))?;
        }
        if !free.problems.is_empty() {
            out.line(format!(
                "Warning:          {} problem(s) while walking the tree; run `rivet check`",
                free.problems.len()
            ))?;
        }
    }
    out.flush()?;
    Ok(EXIT_OK)
}
