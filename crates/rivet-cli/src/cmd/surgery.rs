//! `rivet surgery ...`: repairs that edit meta pages or rebuild the freelist.
//!
//! Each repair works on a copy written to `--output FILE` (the original is only read, under a
//! shared lock; the copy is repaired beside FILE and renamed into place when done) unless
//! `--in-place` is given, in which case the file is modified under an
//! exclusive lock. Meta pages are patched field by field and resealed with a fresh checksum;
//! everything else in them is kept as stored.

use std::path::Path;
use std::time::Duration;

use rivet::format::PGID_NO_FREELIST;
use rivet::{Db, Options};

use crate::cli::{DbArg, Target};
use crate::error::{db_error, io_error, CliError, CliResult, EXIT_OK, EXIT_PROBLEMS};
use crate::files::Staged;
use crate::open::require_file;
use crate::output::Out;
use crate::raw::{reseal_meta, Access, MetaSlot, RawFile, META_FREELIST_OFFSET};
use crate::walk::reachable;

/// Runs `repair` on DB itself (`--in-place`) or on a fresh copy of it that becomes `--output`
/// only once repaired and synced (so `--output` is complete or absent), and prints the report.
fn with_target(
    t: &Target,
    timeout: Duration,
    repair: impl FnOnce(&Path) -> CliResult<Vec<String>>,
) -> CliResult<u8> {
    require_file(&t.db)?;
    let (lines, written) = match &t.output {
        None => (repair(&t.db)?, t.db.clone()),
        Some(out) => {
            if out.exists() {
                return Err(CliError::new(format!(
                    "{}: already exists (--output writes a new file)",
                    out.display()
                )));
            }
            let staged = Staged::new(out)?;
            {
                // Hold a shared lock on the source while copying, so no writer is mid-commit.
                let _src = RawFile::open(&t.db, Access::Read, timeout)?;
                std::fs::copy(&t.db, staged.path())
                    .map_err(|e| io_error(out, &format!("copy from {}", t.db.display()), &e))?;
            }
            // The copy holds the source's bytes: what is wrong with its contents is wrong
            // with the source; a failed read or write is the copy's.
            let lines = repair(staged.path()).map_err(|e| {
                if e.io {
                    staged.blame_dest(e)
                } else {
                    staged.blame(e, &t.db)
                }
            })?;
            staged.commit(true)?;
            (lines, out.clone())
        }
    };
    let mut out = Out::new();
    for l in lines {
        out.line(l)?;
    }
    out.line(format!("written to {}", written.display()))?;
    out.flush()?;
    Ok(EXIT_OK)
}

/// One line describing a meta page.
fn describe(s: &MetaSlot) -> String {
    let m = &s.raw;
    let freelist = if m.freelist == PGID_NO_FREELIST {
        "none".to_string()
    } else {
        m.freelist.to_string()
    };
    let fields = format!(
        "txid {}, root {}, freelist {freelist}, hwm {}, page size {}",
        m.txid, m.root, m.pgid, m.page_size
    );
    match &s.problem {
        None => format!("meta page {}: valid ({fields})", s.index),
        Some(p) => format!("meta page {}: INVALID: {p} (stored: {fields})", s.index),
    }
}

/// `surgery revert-meta`: copies the older valid meta page over the newer one, undoing the
/// last commit.
pub fn revert_meta(t: &Target, timeout: Duration) -> CliResult<u8> {
    with_target(t, timeout, |path| {
        let raw = RawFile::open(path, Access::Write, timeout)?;
        let slots = raw.metas()?;
        if slots.iter().all(|s| s.problem.is_some()) {
            return Err(CliError::new(raw.why_unusable(&slots)));
        }
        if let Some(bad) = slots.iter().find(|s| s.problem.is_some()) {
            return Err(CliError::new(format!(
                "{}: cannot revert: {}",
                path.display(),
                describe(bad)
            )));
        }
        let (newer, older) = if slots[0].raw.txid > slots[1].raw.txid {
            (&slots[0], &slots[1])
        } else {
            (&slots[1], &slots[0])
        };
        if newer.raw.txid == older.raw.txid {
            return Err(CliError::new(format!(
                "{}: both meta pages hold txid {}; there is no older commit to revert to",
                path.display(),
                newer.raw.txid
            )));
        }
        let mut page = raw.page(older.index)?;
        page[..8].copy_from_slice(&newer.index.to_le_bytes());
        raw.write_at(raw.offset(newer.index)?, &page)?;
        raw.sync()?;
        Ok(vec![format!(
            "meta page {} (txid {}) replaced by meta page {} (txid {}): the file now opens at txid {}",
            newer.index, newer.raw.txid, older.index, older.raw.txid, older.raw.txid
        )])
    })
}

/// Sets `freelist = none` in every valid meta page and reseals them; returns one line per page.
fn abandon(raw: &RawFile) -> CliResult<Vec<String>> {
    let slots = raw.metas()?;
    if slots.iter().all(|s| s.problem.is_some()) {
        return Err(CliError::new(raw.why_unusable(&slots)));
    }
    let mut lines = Vec::new();
    for s in &slots {
        if s.problem.is_some() {
            lines.push(format!("{}; left unchanged", describe(s)));
            continue;
        }
        if s.raw.freelist == PGID_NO_FREELIST {
            lines.push(format!(
                "meta page {} (txid {}): no freelist already",
                s.index, s.raw.txid
            ));
            continue;
        }
        let mut page = raw.page(s.index)?;
        page[META_FREELIST_OFFSET..META_FREELIST_OFFSET + 8]
            .copy_from_slice(&PGID_NO_FREELIST.to_le_bytes());
        reseal_meta(&mut page);
        raw.write_at(raw.offset(s.index)?, &page)?;
        lines.push(format!(
            "meta page {} (txid {}): freelist page {} -> none",
            s.index, s.raw.txid, s.raw.freelist
        ));
    }
    raw.sync()?;
    Ok(lines)
}

/// `surgery freelist abandon`: both metas record "no freelist"; the next read-write open
/// rebuilds it by walking the tree.
pub fn freelist_abandon(t: &Target, timeout: Duration) -> CliResult<u8> {
    with_target(t, timeout, |path| {
        let raw = RawFile::open(path, Access::Write, timeout)?;
        abandon(&raw)
    })
}

/// `surgery freelist rebuild`: checks that the tree is intact, abandons the stored freelist,
/// then opens the file read-write with the engine, which rebuilds the freelist from the pages
/// the tree reaches and commits it.
pub fn freelist_rebuild(t: &Target, timeout: Duration) -> CliResult<u8> {
    with_target(t, timeout, |path| {
        let mut lines = {
            let raw = RawFile::open(path, Access::Write, timeout)?;
            let meta = raw.active_meta()?;
            let reach = reachable(&raw, &meta);
            if let Some(first) = reach.problems.first() {
                return Err(CliError::new(format!(
                    "{}: the tree is damaged ({} problem(s), first: {first}); a freelist rebuilt \
                     from it would hand out pages still in use. Run `rivet check`",
                    path.display(),
                    reach.problems.len()
                )));
            }
            abandon(&raw)?
        };
        let db = Db::open(
            path,
            Options {
                timeout: Some(timeout),
                ..Options::default()
            },
        )
        .map_err(|e| db_error(path, e))?;
        let stats = db.stats();
        let tx = db.begin_read().map_err(|e| db_error(path, e))?;
        let meta = tx.meta();
        if meta.freelist == PGID_NO_FREELIST {
            return Err(CliError::new(format!(
                "{}: the engine did not persist a freelist",
                path.display()
            )));
        }
        lines.push(format!(
            "freelist rebuilt from the tree: {} free page(s), stored in page {} (txid {})",
            stats.free_page_n + stats.pending_page_n,
            meta.freelist,
            meta.txid
        ));
        Ok(lines)
    })
}

/// `surgery meta validate`: reports both meta pages; exit 1 when either is invalid.
pub fn meta_validate(a: &DbArg, timeout: Duration) -> CliResult<u8> {
    let raw = RawFile::open(&a.db, Access::Read, timeout)?;
    let slots = raw.metas()?;
    let mut out = Out::new();
    for s in &slots {
        out.line(describe(s))?;
    }
    let active: Option<&MetaSlot> = slots
        .iter()
        .filter(|s| s.problem.is_none())
        .max_by_key(|s| s.raw.txid);
    match active {
        Some(s) => out.line(format!(
            "active: meta page {} (txid {})",
            s.index, s.raw.txid
        ))?,
        None => out.line("active: none (the file cannot be opened)")?,
    }
    out.flush()?;
    let all_valid = slots.iter().all(|s| s.problem.is_none());
    Ok(if all_valid { EXIT_OK } else { EXIT_PROBLEMS })
}
