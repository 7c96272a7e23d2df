//! `rivet info DB`: the file's vital numbers.

use std::time::Duration;

use crate::cli::JsonDbArgs;
use crate::error::{db_error, CliResult, EXIT_OK};
use serde_json::Value;

use crate::json;
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
            FreeSource::Synced(p) => ("synced", Value::from(p)),
            FreeSource::NotSynced => ("not-synced", Value::Null),
            FreeSource::Unusable(p) => ("unusable", Value::from(p)),
        };
        let passed = match &db.meta_choice().passed_over {
            Some(p) => json::object(vec![
                ("page", Value::from(p.page)),
                ("txid", Value::from(p.txid)),
                ("reason", Value::from(p.reason.clone())),
                ("damaged_commit", Value::Bool(p.damaged_commit)),
            ]),
            None => Value::Null,
        };
        let obj = json::object(vec![
            ("path", json::bytes(path.as_os_str().as_encoded_bytes())),
            ("page_size", Value::from(ps)),
            ("txid", Value::from(meta.txid)),
            ("high_water_mark", Value::from(meta.pgid)),
            ("file_size", Value::from(file_size)),
            ("free_pages", Value::from(free.ids.len() as u64)),
            ("pending_pages", Value::from(0)),
            ("freelist", Value::from(mode)),
            ("freelist_page", page),
            ("root_page", Value::from(meta.root)),
            ("meta_page", active.map(Value::from).unwrap_or(Value::Null)),
            ("meta_passed_over", passed),
        ]);
        out.line(obj.to_string())?;
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
