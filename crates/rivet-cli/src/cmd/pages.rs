//! `pages`, `page`, `dump`: looking at the file page by page.
//!
//! These read the file directly (see [`crate::raw`]) so they also work on files the engine
//! refuses to open; they take a shared lock and never write.

use std::collections::BTreeSet;
use std::time::Duration;

use rivet::format::{
    self, BucketHeader, NodePage, PageHeader, Pgid, BUCKET_HEADER_SIZE, FLAG_BRANCH, FLAG_FREELIST,
    FLAG_LEAF, FLAG_META, FREELIST_COUNT_OVERFLOW, LEAF_FLAG_BUCKET, PAGE_HEADER_SIZE,
    PGID_NO_FREELIST,
};

use crate::bytes::{preview, Show};
use crate::cli::{DumpArgs, JsonDbArgs, PageArgs};
use crate::error::{CliError, CliResult, EXIT_OK};
use serde_json::Value;

use crate::json;
use crate::output::Out;
use crate::raw::{Access, RawFile, RawMeta};
use crate::walk::free_pages;

/// One row of the page table.
struct Row {
    id: Pgid,
    kind: &'static str,
    items: Option<u64>,
    overflow: u32,
}

/// The number of items a page header announces (the real count for a large freelist).
fn item_count(raw: &RawFile, id: Pgid, h: &PageHeader) -> u64 {
    if h.flags == FLAG_FREELIST && h.count == FREELIST_COUNT_OVERFLOW {
        if let Ok(off) = raw.offset(id) {
            if let Ok(b) = raw.read_at(off + PAGE_HEADER_SIZE as u64, 8) {
                let mut a = [0u8; 8];
                a.copy_from_slice(&b);
                return u64::from_le_bytes(a);
            }
        }
    }
    u64::from(h.count)
}

/// Free pages of the latest commit, or an empty set (with a warning) when they cannot be read.
fn free_set(raw: &RawFile, meta: &format::Meta) -> BTreeSet<Pgid> {
    match free_pages(raw, meta) {
        Ok(f) => {
            if !f.problems.is_empty() {
                eprintln!(
                    "rivet: warning: {} problem(s) while walking the tree; free pages may be wrong",
                    f.problems.len()
                );
            }
            f.ids
        }
        Err(e) => {
            eprintln!("rivet: warning: cannot read the freelist: {e}");
            BTreeSet::new()
        }
    }
}

/// What the page views go by: the meta (and free set) of the latest commit, or for a damaged
/// file whatever can still be used.
struct View {
    /// The meta page the views go by (`None` for bytes without a usable meta page).
    meta: Option<format::Meta>,
    /// Pages to list: the high-water mark, capped at the whole pages the file holds.
    limit: Pgid,
    free: BTreeSet<Pgid>,
}

/// The active meta; else, for a truncated file, its newest intact meta page (with a warning);
/// else nothing (with a warning), so every whole page is shown by its header.
/// `listing` is true for `pages` (the warnings say what is listed instead).
fn view(raw: &RawFile, listing: bool) -> CliResult<View> {
    raw.warn_if_guessed();
    let whole = raw.page_count();
    let meta = match raw.active_meta() {
        Ok(m) => m,
        Err(e) => {
            return Ok(match raw.truncated_meta()? {
                Some(t) => {
                    let m = t.raw.to_meta();
                    let limit = m.pgid.min(whole);
                    if listing {
                        eprintln!(
                            "rivet: warning: {}; showing the {limit} whole page(s) it holds",
                            e.message
                        );
                    } else {
                        eprintln!("rivet: warning: {}", e.message);
                    }
                    // The freelist of a cut-off file is usually past its end: not shown.
                    View {
                        meta: Some(m),
                        limit,
                        free: BTreeSet::new(),
                    }
                }
                None => {
                    if listing {
                        eprintln!(
                            "rivet: warning: {}; showing each of its {whole} whole page(s) by its header",
                            e.message
                        );
                    } else {
                        eprintln!("rivet: warning: {}", e.message);
                    }
                    View {
                        meta: None,
                        limit: whole,
                        free: BTreeSet::new(),
                    }
                }
            });
        }
    };
    if let Some(w) = crate::raw::older_commit_warning(raw.path()) {
        eprintln!("rivet: warning: {w}");
    }
    Ok(View {
        meta: Some(meta),
        limit: meta.pgid.min(whole),
        free: free_set(raw, &meta),
    })
}

/// The page runs below `v.limit`: free pages one by one, other pages with their overflow. A
/// page of unknown type is shown alone (its overflow count means nothing).
fn scan(raw: &RawFile, v: &View) -> CliResult<Vec<Row>> {
    let mut rows = Vec::new();
    let mut id = 0;
    while id < v.limit {
        if v.free.contains(&id) {
            rows.push(Row {
                id,
                kind: "free",
                items: None,
                overflow: 0,
            });
            id += 1;
            continue;
        }
        let h = raw.header(id)?;
        let kind = format::page_type_name(h.flags);
        if !matches!(h.flags, FLAG_META | FLAG_LEAF | FLAG_BRANCH | FLAG_FREELIST) {
            rows.push(Row {
                id,
                kind,
                items: None,
                overflow: 0,
            });
            id += 1;
            continue;
        }
        rows.push(Row {
            id,
            kind,
            items: Some(item_count(raw, id, &h)),
            overflow: h.overflow,
        });
        // A damaged overflow count must not skip past the end.
        id = id.saturating_add(1 + u64::from(h.overflow)).min(v.limit);
    }
    Ok(rows)
}

/// `rivet pages DB`: one row per page run below the high-water mark (every whole page of a
/// file without a usable meta page).
pub fn pages(args: &JsonDbArgs, timeout: Duration) -> CliResult<u8> {
    let raw = RawFile::open(&args.db, Access::Read, timeout)?;
    let v = view(&raw, true)?;
    let rows = scan(&raw, &v)?;
    let mut out = Out::new();
    if args.json {
        let list = rows
            .iter()
            .map(|r| {
                let mut f = vec![("id", Value::from(r.id)), ("type", Value::from(r.kind))];
                if let Some(n) = r.items {
                    f.push(("items", Value::from(n)));
                    f.push(("overflow", Value::from(u64::from(r.overflow))));
                }
                json::object(f)
            })
            .collect();
        out.line(
            json::object(vec![
                ("page_size", Value::from(raw.page_size() as u64)),
                (
                    "high_water_mark",
                    v.meta.map(|m| Value::from(m.pgid)).unwrap_or(Value::Null),
                ),
                ("pages", Value::Array(list)),
            ])
            .to_string(),
        )?;
    } else {
        out.line("ID       TYPE       ITEMS  OVRFLW")?;
        out.line("======== ========== ====== ======")?;
        for r in &rows {
            let items = r.items.map(|n| n.to_string()).unwrap_or_default();
            let overflow = if r.overflow > 0 {
                r.overflow.to_string()
            } else {
                String::new()
            };
            out.line(
                format!("{:<8} {:<10} {:<6} {:<6}", r.id, r.kind, items, overflow).trim_end(),
            )?;
        }
    }
    out.flush()?;
    Ok(EXIT_OK)
}

/// `rivet page DB ID...`: a decoded view of each page.
pub fn page(args: &PageArgs, timeout: Duration) -> CliResult<u8> {
    let raw = RawFile::open(&args.db, Access::Read, timeout)?;
    let v = view(&raw, false)?;
    let runs = scan(&raw, &v)?;
    let show = if args.hex { Show::Hex } else { Show::Escaped };
    let mut out = Out::new();
    for (n, &id) in args.ids.iter().enumerate() {
        let offset = raw.offset(id)?;
        if id >= raw.page_count() && offset >= raw.len() {
            return Err(CliError::new(format!(
                "{}: page {id} is beyond the end of the file ({} bytes, {} whole pages)",
                args.db.display(),
                raw.len(),
                raw.page_count()
            )));
        }
        if n > 0 {
            out.line("")?;
        }
        if id >= raw.page_count() {
            partial_page(&raw, id, offset, &mut out)?;
            continue;
        }
        let run = run_holding(&runs, id);
        let lines = match run {
            Some(r) => continuation(&args.db, id, r),
            None => describe(
                &raw,
                id,
                v.meta.map(|m| m.pgid),
                &v.free,
                show,
                args.max_bytes,
            )?,
        };
        for l in lines {
            out.line(l)?;
        }
    }
    out.flush()?;
    Ok(EXIT_OK)
}

/// Prints the bytes a file that ends inside page `id` (at `offset`) still holds.
fn partial_page(raw: &RawFile, id: u64, offset: u64, out: &mut Out) -> CliResult<()> {
    let data = raw.read_at(offset, (raw.len() - offset) as usize)?;
    out.line(format!(
        "Page {id} (partial: the file ends {} bytes into it, offset {offset:#x})",
        data.len()
    ))?;
    for line in hexdump(&data, offset) {
        out.line(line)?;
    }
    Ok(())
}

/// The overflow run page `id` lies inside (not its first page), if any.
fn run_holding(runs: &[Row], id: u64) -> Option<&Row> {
    runs.iter()
        .find(|r| r.id < id && id <= r.id + u64::from(r.overflow))
}

/// Page `id` inside the overflow run starting at `run.id`: it has no header of its own.
fn continuation(db: &std::path::Path, id: Pgid, run: &Row) -> Vec<String> {
    vec![
        format!("Page ID:       {id}"),
        format!(
            "Page type:     overflow (page {} of {} in the run of {} page {}; no header of its own)",
            id - run.id + 1,
            u64::from(run.overflow) + 1,
            run.kind,
            run.id
        ),
        format!(
            "See:           rivet page {} {} (decoded) or rivet dump {} {} (bytes)",
            db.display(),
            run.id,
            db.display(),
            run.id
        ),
    ]
}

/// The decoded view of page `id`.
fn describe(
    raw: &RawFile,
    id: Pgid,
    hwm: Option<Pgid>,
    free: &BTreeSet<Pgid>,
    show: Show,
    max: usize,
) -> CliResult<Vec<String>> {
    let h = raw.header(id)?;
    let mut l = vec![format!("Page ID:       {id}")];
    if h.id != id {
        l.push(format!(
            "Stored ID:     {} (differs from the page's position)",
            h.id
        ));
    }
    l.push(format!(
        "Page type:     {} (flags {:#06x})",
        format::page_type_name(h.flags),
        h.flags
    ));
    l.push(format!("Overflow:      {}", h.overflow));
    if free.contains(&id) {
        l.push("Status:        free (listed in the freelist; its contents are stale)".into());
    } else if hwm.is_some_and(|hwm| id >= hwm) {
        l.push(
            "Status:        beyond the high-water mark (never used by the latest commit)".into(),
        );
    }
    let limit = raw.page_count();
    match h.flags {
        // Pages 0 and 1 are meta pages whatever their header says (a zeroed file).
        _ if id < 2 => describe_meta(raw, id, &mut l)?,
        FLAG_META => describe_meta(raw, id, &mut l)?,
        FLAG_LEAF | FLAG_BRANCH => {
            let (_, data) = raw.run(id, limit)?;
            let node = NodePage::parse(&data, id).map_err(|e| raw.corrupted(id, e))?;
            describe_node(node, show, max, &mut l);
        }
        FLAG_FREELIST => {
            let (_, data) = raw.run(id, limit)?;
            let ids = format::read_freelist(&data, id).map_err(|e| raw.corrupted(id, e))?;
            l.push(format!("Free page ids: {}", ids.len()));
            for chunk in ids.chunks(10) {
                let s: Vec<String> = chunk.iter().map(|p| p.to_string()).collect();
                l.push(format!("  {}", s.join(" ")));
            }
        }
        _ => l.push("(no decoder for this page type; see `rivet dump`)".into()),
    }
    Ok(l)
}

/// Meta page fields, with the checksum verdict.
fn describe_meta(raw: &RawFile, id: Pgid, l: &mut Vec<String>) -> CliResult<()> {
    let page = raw.page(id)?;
    let m = RawMeta::decode(&page, id);
    l.push(format!(
        "Magic:         {:#010x}{}",
        m.magic,
        if m.magic == format::MAGIC {
            ""
        } else {
            " (wrong)"
        }
    ));
    l.push(format!("Version:       {}", m.version));
    l.push(format!("Page size:     {}", m.page_size));
    l.push(format!("Flags:         {:#010x}", m.flags));
    l.push(format!("Root:          page {}", m.root));
    l.push(format!("Root sequence: {}", m.root_sequence));
    if m.freelist == PGID_NO_FREELIST {
        l.push("Freelist:      none (NoFreelistSync)".into());
    } else {
        l.push(format!("Freelist:      page {}", m.freelist));
    }
    l.push(format!("HWM:           page {}", m.pgid));
    l.push(format!("Txid:          {}", m.txid));
    let verdict = if m.checksum == m.computed_checksum {
        "ok".to_string()
    } else {
        format!("mismatch, computed {:016x}", m.computed_checksum)
    };
    l.push(format!("Checksum:      {:016x} ({verdict})", m.checksum));
    if id < 2 {
        let slot = &raw.metas()?[id as usize];
        match &slot.problem {
            None => l.push("Valid:         yes".into()),
            Some(p) => l.push(format!("Valid:         no: {p}")),
        }
    }
    Ok(())
}

/// Branch or leaf elements.
fn describe_node(node: NodePage<'_>, show: Show, max: usize, l: &mut Vec<String>) {
    l.push(format!("Items:         {}", node.count()));
    let q = |b: &[u8]| match show {
        Show::Hex => preview(b, show, max),
        _ => format!("\"{}\"", preview(b, show, max)),
    };
    for i in 0..node.count() {
        if !node.is_leaf() {
            match node.branch_elem(i) {
                Ok((k, child)) => l.push(format!("  [{i}] {} -> page {child}", q(k))),
                Err(e) => l.push(format!("  [{i}] damaged: {e}")),
            }
            continue;
        }
        match node.leaf_elem(i) {
            Ok((flags, k, v)) if flags & LEAF_FLAG_BUCKET != 0 => {
                l.push(format!(
                    "  [{i}] bucket {} {}",
                    q(k),
                    bucket_value(v, node.pgid())
                ));
            }
            Ok((_, k, v)) => l.push(format!("  [{i}] {} = {}", q(k), q(v))),
            Err(e) => l.push(format!("  [{i}] damaged: {e}")),
        }
    }
}

/// A bucket entry's value: root page and sequence, or the inline page's size.
fn bucket_value(v: &[u8], pgid: Pgid) -> String {
    match BucketHeader::decode(v, pgid) {
        Ok(h) if h.root == 0 => {
            let items = v
                .get(BUCKET_HEADER_SIZE..)
                .and_then(|img| NodePage::parse(img, pgid).ok())
                .map(|p| p.count().to_string())
                .unwrap_or_else(|| "?".into());
            format!("(inline, {items} items, sequence {})", h.sequence)
        }
        Ok(h) => format!("(root page {}, sequence {})", h.root, h.sequence),
        Err(_) => "(damaged bucket header)".into(),
    }
}

/// `rivet dump DB ID...`: hex dump of each page and its overflow pages.
pub fn dump(args: &DumpArgs, timeout: Duration) -> CliResult<u8> {
    let raw = RawFile::open(&args.db, Access::Read, timeout)?;
    let v = view(&raw, false)?;
    let runs = scan(&raw, &v)?;
    let mut out = Out::new();
    for (n, &id) in args.ids.iter().enumerate() {
        let offset = raw.offset(id)?;
        if id >= raw.page_count() && offset >= raw.len() {
            return Err(CliError::new(format!(
                "{}: page {id} is beyond the end of the file ({} bytes, {} whole pages)",
                args.db.display(),
                raw.len(),
                raw.page_count()
            )));
        }
        if n > 0 {
            out.line("")?;
        }
        if id >= raw.page_count() {
            partial_page(&raw, id, offset, &mut out)?;
            continue;
        }
        let run = run_holding(&runs, id);
        if let Some(r) = run {
            // Inside an overflow run: this page alone, named by its run (it has no header).
            let data = raw.page(id)?;
            out.line(format!(
                "Page {id} (overflow page {} of {} in the run of {} page {}, offset {offset:#x}, {} bytes)",
                id - r.id + 1,
                u64::from(r.overflow) + 1,
                r.kind,
                r.id,
                data.len()
            ))?;
            for line in hexdump(&data, offset) {
                out.line(line)?;
            }
            continue;
        }
        let h = raw.header(id)?;
        // The overflow count of a page of unknown type means nothing: show that page alone.
        let known = matches!(h.flags, FLAG_META | FLAG_LEAF | FLAG_BRANCH | FLAG_FREELIST);
        let wanted = if known { 1 + u64::from(h.overflow) } else { 1 };
        let pages = wanted.min(raw.page_count() - id);
        let ps = raw.page_size() as u64;
        let data = raw.read_at(offset, (pages * ps) as usize)?;
        let mut title = format!(
            "Page {id} ({}, {pages} page(s), offset {offset:#x}, {} bytes)",
            format::page_type_name(h.flags),
            data.len()
        );
        if pages < wanted {
            title.push_str(&format!(
                "; header claims {} overflow pages, past the end of the file",
                h.overflow
            ));
        }
        out.line(title)?;
        for line in hexdump(&data, offset) {
            out.line(line)?;
        }
    }
    out.flush()?;
    Ok(EXIT_OK)
}

/// `hexdump -C`-style lines; runs of identical lines collapse into `*`.
fn hexdump(data: &[u8], base: u64) -> Vec<String> {
    let mut lines = Vec::new();
    let mut prev: Option<&[u8]> = None;
    let mut starred = false;
    for (i, chunk) in data.chunks(16).enumerate() {
        if prev == Some(chunk) {
            if !starred {
                lines.push("*".to_string());
                starred = true;
            }
            continue;
        }
        starred = false;
        prev = Some(chunk);
        let mut hex = String::with_capacity(50);
        for (j, b) in chunk.iter().enumerate() {
            if j == 8 {
                hex.push(' ');
            }
            hex.push_str(&format!("{b:02x} "));
        }
        let ascii: String = chunk
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    char::from(b)
                } else {
                    '.'
                }
            })
            .collect();
        lines.push(format!(
            "{:08x}  {hex:<49} |{ascii}|",
            base + (i * 16) as u64
        ));
    }
    lines.push(format!("{:08x}", base + data.len() as u64));
    lines
}

#[cfg(test)]
mod tests {
    use super::hexdump;

    #[test]
    fn hexdump_collapses_repeats() {
        let mut data = b"0123456789abcdefXY".to_vec();
        data.resize(80, 0);
        let lines = hexdump(&data, 0x1000);
        assert_eq!(
            lines[0],
            "00001000  30 31 32 33 34 35 36 37  38 39 61 62 63 64 65 66  |0123456789abcdef|"
        );
        assert!(lines[1].starts_with("00001010  58 59 00"));
        assert_eq!(
            lines[2],
            "00001020  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|"
        );
        assert_eq!(lines[3], "*");
        assert_eq!(lines[4], "00001050");
    }
}
