//! `rivet stats DB [PREFIX]`: bbolt's bucket statistics, aggregated.

use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use rivet::BucketStats;

use crate::bytes::escape;
use crate::cli::StatsArgs;
use crate::error::{db_error, CliResult, EXIT_OK};
use serde_json::Value;

use crate::json;
use crate::open::open_read;
use crate::output::Out;
use crate::progress::Progress;

/// Adds up `Bucket::stats` over the top-level buckets whose name starts with the prefix (as
/// `bbolt stats` does) and prints a table, or JSON.
pub fn run(args: &StatsArgs, timeout: Duration) -> CliResult<u8> {
    let path = &args.db;
    let prefix = args.prefix.as_deref().map(|p| p.as_bytes()).unwrap_or(b"");
    let db = open_read(path, timeout)?;
    let tx = db.begin_read().map_err(|e| db_error(path, e))?;
    let err = |e| db_error(path, e);
    let mut total = BucketStats::default();
    let (mut matched, mut all) = (0u64, 0u64);
    {
        let progress = Progress::spinner("collecting statistics", "buckets");
        for entry in tx.root().iter() {
            let entry = entry.map_err(err)?;
            if !entry.is_bucket() {
                continue;
            }
            all += 1;
            if !entry.key().starts_with(prefix) {
                continue;
            }
            if let Some(b) = tx.bucket(entry.key()).map_err(err)? {
                total.add(&b.stats().map_err(err)?);
                matched += 1;
                progress.inc(1);
            }
        }
    }
    let ps = tx.page_size() as u64;
    let mut out = Out::new();
    if args.json {
        out.line(to_json(prefix, matched, ps, &total).to_string())?;
    } else {
        for line in table(prefix, matched, all, &total) {
            out.line(line)?;
        }
    }
    out.flush()?;
    Ok(EXIT_OK)
}

/// `part` as a percentage of `whole`, or `None` when `whole` is 0.
fn percent(part: u64, whole: u64) -> Option<f64> {
    (whole != 0).then(|| part as f64 * 100.0 / whole as f64)
}

fn show_percent(p: Option<f64>) -> String {
    p.map(|p| format!("{p:.1}%")).unwrap_or_else(|| "-".into())
}

/// The text table.
fn table(prefix: &[u8], matched: u64, all: u64, s: &BucketStats) -> Vec<String> {
    let which = if prefix.is_empty() {
        String::new()
    } else {
        format!(" (prefix \"{}\")", escape(prefix))
    };
    let row = |label: &str, a: String, b: String| format!("  {label:<22}{a:>14}{b:>14}");
    let one = |label: &str, v: String| format!("  {label:<36}{v:>14}");
    vec![
        format!("Aggregate statistics for {matched} of {all} top-level buckets{which}"),
        String::new(),
        format!("  {:<22}{:>14}{:>14}", "Pages", "branch", "leaf"),
        row(
            "logical pages",
            s.branch_page_n.to_string(),
            s.leaf_page_n.to_string(),
        ),
        row(
            "overflow pages",
            s.branch_overflow_n.to_string(),
            s.leaf_overflow_n.to_string(),
        ),
        row(
            "bytes allocated",
            s.branch_alloc.to_string(),
            s.leaf_alloc.to_string(),
        ),
        row(
            "bytes in use",
            s.branch_inuse.to_string(),
            s.leaf_inuse.to_string(),
        ),
        row(
            "fill",
            show_percent(percent(s.branch_inuse, s.branch_alloc)),
            show_percent(percent(s.leaf_inuse, s.leaf_alloc)),
        ),
        String::new(),
        "  Tree".to_string(),
        one("keys (incl. sub-bucket entries)", s.key_n.to_string()),
        one("depth (levels incl. nesting)", s.depth.to_string()),
        String::new(),
        "  Buckets".to_string(),
        one("buckets (incl. nested)", s.bucket_n.to_string()),
        one(
            "inline buckets",
            format!(
                "{} ({})",
                s.inline_bucket_n,
                show_percent(percent(s.inline_bucket_n, s.bucket_n))
            ),
        ),
        one(
            "bytes in inline buckets",
            format!(
                "{} ({} of leaf bytes in use)",
                s.inline_bucket_inuse,
                show_percent(percent(s.inline_bucket_inuse, s.leaf_inuse))
            ),
        ),
    ]
}

/// The JSON object: bbolt's field names in snake case, plus fill percentages.
fn to_json(prefix: &[u8], matched: u64, page_size: u64, s: &BucketStats) -> Value {
    let pct = |p: Option<f64>| p.map(json::percent).unwrap_or(Value::Null);
    json::object(vec![
        ("prefix", json::bytes(prefix)),
        ("top_level_buckets", Value::from(matched)),
        ("page_size", Value::from(page_size)),
        ("branch_page_n", Value::from(s.branch_page_n)),
        ("branch_overflow_n", Value::from(s.branch_overflow_n)),
        ("leaf_page_n", Value::from(s.leaf_page_n)),
        ("leaf_overflow_n", Value::from(s.leaf_overflow_n)),
        ("key_n", Value::from(s.key_n)),
        ("depth", Value::from(s.depth)),
        ("branch_alloc", Value::from(s.branch_alloc)),
        ("branch_inuse", Value::from(s.branch_inuse)),
        ("leaf_alloc", Value::from(s.leaf_alloc)),
        ("leaf_inuse", Value::from(s.leaf_inuse)),
        ("bucket_n", Value::from(s.bucket_n)),
        ("inline_bucket_n", Value::from(s.inline_bucket_n)),
        ("inline_bucket_inuse", Value::from(s.inline_bucket_inuse)),
        (
            "branch_fill_percent",
            pct(percent(s.branch_inuse, s.branch_alloc)),
        ),
        (
            "leaf_fill_percent",
            pct(percent(s.leaf_inuse, s.leaf_alloc)),
        ),
    ])
}
