//! Turns [`Results`] into the Markdown report (medians of the runs, ratios to LMDB, the
//! targets table) and the SVG charts.

use std::fmt::Write;

use crate::driver::{Results, RunResult};
use crate::svg::{self, Group};

/// A median over runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell {
    /// No run measured it.
    Missing,
    /// Killed at the time limit.
    OverLimit,
    /// Median seconds (or value) and the operations of one run.
    Val(f64, u64),
}

impl Cell {
    /// The value, if measured.
    pub fn val(self) -> Option<f64> {
        match self {
            Cell::Val(v, _) => Some(v),
            _ => None,
        }
    }

    /// Value for charts: over-limit becomes infinity.
    fn chart(self) -> Option<f64> {
        match self {
            Cell::Val(v, _) => Some(v),
            Cell::OverLimit => Some(f64::INFINITY),
            Cell::Missing => None,
        }
    }
}

/// Median of a non-empty list.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Queries over the results.
pub struct View<'a> {
    /// The results.
    pub r: &'a Results,
}

impl<'a> View<'a> {
    fn runs(&self, workload: &str, n: u64, engine: &str) -> impl Iterator<Item = &'a RunResult> {
        let (workload, engine) = (workload.to_string(), engine.to_string());
        self.r
            .runs
            .iter()
            .filter(move |r| r.workload == workload && r.n == n && r.engine == engine)
    }

    /// Median seconds of a phase.
    pub fn phase(&self, workload: &str, n: u64, engine: &str, phase: &str) -> Cell {
        let (mut ok, mut over, mut ops) = (Vec::new(), 0, 0);
        for r in self.runs(workload, n, engine) {
            if let Some(p) = r.phase(phase) {
                match p.secs {
                    Some(s) => {
                        ok.push(s);
                        ops = p.ops;
                    }
                    None => over += 1,
                }
            }
        }
        if over > 0 && over >= ok.len() {
            Cell::OverLimit
        } else if ok.is_empty() {
            Cell::Missing
        } else {
            Cell::Val(median(ok), ops)
        }
    }

    /// Median of a reported value.
    pub fn value(&self, workload: &str, n: u64, engine: &str, name: &str) -> Cell {
        let v: Vec<f64> = self
            .runs(workload, n, engine)
            .filter_map(|r| r.values.get(name).copied())
            .collect();
        if v.is_empty() {
            Cell::Missing
        } else {
            Cell::Val(median(v), 1)
        }
    }

    /// Median peak RSS in bytes of the complete runs.
    pub fn rss(&self, workload: &str, n: u64, engine: &str) -> Cell {
        let v: Vec<f64> = self
            .runs(workload, n, engine)
            .filter(|r| r.peak_rss_kib > 0 && r.error.is_none() && r.timed_out.is_none())
            .map(|r| r.peak_rss_kib as f64 * 1024.0)
            .collect();
        if v.is_empty() {
            Cell::Missing
        } else {
            Cell::Val(median(v), 1)
        }
    }

    /// Engines in column order (first appearance).
    pub fn engines(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for r in &self.r.runs {
            if !v.contains(&r.engine) {
                v.push(r.engine.clone());
            }
        }
        v
    }

    /// The N values a workload ran at.
    pub fn ns(&self, workload: &str) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .r
            .runs
            .iter()
            .filter(|r| r.workload == workload)
            .map(|r| r.n)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

fn thousands(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Milliseconds with three significant digits.
pub fn fmt_ms(secs: f64) -> String {
    let ms = secs * 1e3;
    if ms >= 100.0 {
        format!("{} ms", thousands(ms.round() as u64))
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

fn fmt_us(us: f64) -> String {
    if us >= 100.0 {
        format!("{us:.0} µs")
    } else if us >= 10.0 {
        format!("{us:.1} µs")
    } else {
        format!("{us:.2} µs")
    }
}

fn mib(b: f64) -> String {
    format!("{:.1} MiB", b / (1024.0 * 1024.0))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn cell_text(
    c: Cell,
    base: Cell,
    fmt: &dyn Fn(f64) -> String,
    limit: u64,
    show_ratio: bool,
) -> String {
    match c {
        Cell::Missing => "–".into(),
        Cell::OverLimit => format!("> {limit} s"),
        Cell::Val(v, _) => match ratio(Some(v), base.val()) {
            Some(r) if show_ratio => format!("{} ({r:.2}×)", fmt(v)),
            _ => fmt(v),
        },
    }
}

const KV_ROWS: [(&str, &str); 11] = [
    ("bulk_load", "bulk load: N random keys, one txn"),
    ("individual_writes", "1,000 durable commits × 1 key"),
    ("batch_writes", "100 durable commits × 1,000 keys"),
    ("len", "len()"),
    ("random_reads_1", "random gets, round 1 (N gets)"),
    ("random_reads_2", "random gets, round 2"),
    ("range_reads_1", "range reads of 10, round 1 (N/2)"),
    ("range_reads_2", "range reads of 10, round 2"),
    ("random_reads_4t", "random gets on 4 threads (all keys)"),
    ("removals", "removals: half the keys, one txn"),
    ("compaction", "compaction"),
];

/// The rendered report: Markdown plus named SVG files.
pub struct Rendered {
    /// Markdown.
    pub markdown: String,
    /// `(file name, SVG text)`.
    pub charts: Vec<(String, String)>,
}

/// Renders the report. `chart_prefix` is prepended to chart file names in image links.
pub fn render(r: &Results, chart_prefix: &str) -> Rendered {
    let v = View { r };
    let m = &r.meta;
    let engines = v.engines();
    let limit = m.phase_limit_secs;
    let mut md = String::new();
    let mut charts = Vec::new();
    let _ = writeln!(md, "## Run of {}\n", m.date);
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(
        md,
        "| machine | {} — {} logical CPUs, {:.1} GiB RAM, Linux {}{} |",
        m.cpu,
        m.nproc,
        m.ram_bytes as f64 / (1u64 << 30) as f64,
        m.kernel,
        if m.virtualized {
            " (virtual machine)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        md,
        "| disk / file system | `{}` (databases in `{}`) |",
        m.findmnt
            .lines()
            .last()
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        m.bench_dir
    );
    let _ = writeln!(
        md,
        "| fdatasync floor | **{:.0} µs** at the start, {:.0} µs at the end (median of {} × 4 KiB pwrite + fdatasync in the database directory) |",
        m.fsync_floor_us, m.fsync_floor_after_us, m.fsync_floor_samples
    );
    let _ = writeln!(
        md,
        "| date (UTC) | {} (total {:.0} s) |",
        m.date, m.total_secs
    );
    let _ = writeln!(md, "| git commit | `{}` |", m.git_commit);
    let _ = writeln!(md, "| command | `{}` |", m.command);
    let _ = writeln!(
        md,
        "| load average (1/5/15 min) | before: `{}`; after: `{}` |",
        m.load_before, m.load_after
    );
    let _ = writeln!(
        md,
        "| other busy processes at start | {} |",
        if m.busy_before.is_empty() {
            "none above 5% CPU".to_string()
        } else {
            m.busy_before.join("; ")
        }
    );
    let _ = writeln!(md, "| versions | {} |", m.versions.join("; "));
    let _ = writeln!(
        md,
        "| method | each engine × workload × run in its own process; medians of {} run(s); per-phase time limit {limit} s; {} |",
        m.runs,
        m.params.join(", ")
    );
    let _ = writeln!(md, "\n`df -T`:\n\n```\n{}\n```\n", m.df);
    if !r.skipped.is_empty() {
        let _ = writeln!(md, "**Skipped engines:**\n");
        for (e, why) in &r.skipped {
            let _ = writeln!(md, "- `{e}`: {why}");
        }
        md.push('\n');
    }

    // Targets.
    if let Some(n) = v.ns("kv").last().copied() {
        targets(&mut md, &v, n);
    }

    // Workload 1.
    for n in v.ns("kv") {
        let _ = writeln!(
            md,
            "### Workload 1: redb's benchmark definition, N = {}\n",
            thousands(n)
        );
        let _ = writeln!(
            md,
            "Wall-clock time per phase (median), in parentheses the ratio to LMDB (lower is better).\n"
        );
        let _ = write!(md, "| phase |");
        for e in &engines {
            let _ = write!(md, " {e} |");
        }
        let _ = write!(md, "\n|---|");
        for _ in &engines {
            md.push_str("---:|");
        }
        md.push('\n');
        let mut groups: Vec<Group> = Vec::new();
        for (phase, label) in KV_ROWS {
            let phase_name = if phase == "random_reads_4t" {
                r.runs
                    .iter()
                    .find_map(|x| {
                        x.phases
                            .iter()
                            .find(|p| p.name.starts_with("random_reads_") && p.name.ends_with('t'))
                            .map(|p| p.name.clone())
                    })
                    .unwrap_or_else(|| phase.to_string())
            } else {
                phase.to_string()
            };
            let base = v.phase("kv", n, "lmdb", &phase_name);
            let _ = write!(md, "| {label} |");
            let mut vals = Vec::new();
            for e in &engines {
                let c = v.phase("kv", n, e, &phase_name);
                let _ = write!(md, " {} |", cell_text(c, base, &fmt_ms, limit, e != "lmdb"));
                vals.push(match c {
                    Cell::OverLimit => Some(f64::INFINITY),
                    _ => ratio(c.val(), base.val()),
                });
            }
            md.push('\n');
            if phase != "len" && phase != "compaction" {
                groups.push((label.to_string(), vals));
            }
        }
        let mut size_groups: Vec<Group> = Vec::new();
        for (name, label) in [
            ("size_uncompacted", "file size before compaction"),
            ("size_compacted", "file size after compaction"),
        ] {
            let base = v.value("kv", n, "lmdb", name);
            let _ = write!(md, "| {label} |");
            let mut vals = Vec::new();
            for e in &engines {
                let c = v.value("kv", n, e, name);
                let _ = write!(md, " {} |", cell_text(c, base, &mib, limit, e != "lmdb"));
                vals.push(c.val().map(|b| b / 1048576.0));
            }
            md.push('\n');
            size_groups.push((label.to_string(), vals));
        }
        let base = v.rss("kv", n, "lmdb");
        let _ = write!(md, "| peak RSS of the process |");
        let mut vals = Vec::new();
        for e in &engines {
            let c = v.rss("kv", n, e);
            let _ = write!(md, " {} |", cell_text(c, base, &mib, limit, e != "lmdb"));
            vals.push(c.val().map(|b| b / 1048576.0));
        }
        md.push('\n');
        size_groups.push(("peak RSS".into(), vals));
        let fallback: Vec<&str> = engines
            .iter()
            .filter(|e| v.runs("kv", n, e).any(|x| x.fallback_load))
            .map(|e| e.as_str())
            .collect();
        if !fallback.is_empty() {
            let _ = writeln!(
                md,
                "\n`> {limit} s`: the one-transaction bulk load of {} was killed at the time limit; its other phases come from a run whose load used 100,000-key transactions.",
                fallback.join(", ")
            );
        }
        let file = format!("kv-{n}.svg");
        charts.push((
            file.clone(),
            svg::ratio_chart(
                &format!("Workload 1 (N = {}): time relative to LMDB", thousands(n)),
                "log scale; left of the black line = faster than LMDB; median of runs",
                &engines,
                &groups,
            ),
        ));
        let file2 = format!("kv-{n}-space.svg");
        charts.push((
            file2.clone(),
            svg::value_chart(
                &format!("Workload 1 (N = {}): space", thousands(n)),
                "file sizes and peak resident memory, MiB",
                "MiB",
                &engines,
                &size_groups,
            ),
        ));
        let _ = writeln!(md, "\n![workload 1 ratios]({chart_prefix}{file})\n\n![workload 1 space]({chart_prefix}{file2})\n");
    }

    // Sorted load.
    for n in v.ns("sorted") {
        let _ = writeln!(
            md,
            "### Bulk load from sorted input, N = {}\n\nOne transaction, keys ascending; each engine's sorted path (Rivet: `Bucket::append`, or fill percent 1.0 plus `put` with `RIVET_BENCH_SORTED=fill`; LMDB: `MDB_APPEND`; Go bbolt: `FillPercent = 1.0`; redb and fjall: plain inserts). Ratio to LMDB's sorted load.\n",
            thousands(n)
        );
        let _ = writeln!(md, "| | time | per key | file size |\n|---|---:|---:|---:|");
        let base = v.phase("sorted", n, "lmdb", "sorted_load");
        for e in &engines {
            let c = v.phase("sorted", n, e, "sorted_load");
            let per = c
                .val()
                .map(|s| fmt_us(s * 1e6 / n as f64))
                .unwrap_or("–".into());
            let size = v
                .value("sorted", n, e, "size_sorted")
                .val()
                .map(mib)
                .unwrap_or("–".into());
            let _ = writeln!(
                md,
                "| {e} | {} | {per} | {size} |",
                cell_text(c, base, &fmt_ms, limit, e != "lmdb")
            );
        }
        md.push('\n');
    }

    // Scale.
    let scale_ns = v.ns("scale");
    if !scale_ns.is_empty() {
        let _ = writeln!(
            md,
            "### Workload 3: bulk load at scale (random keys, one transaction)\n\nCost per key (median); the last column is the per-key cost at the largest N over that at the smallest.\n"
        );
        let _ = write!(md, "| engine |");
        for n in &scale_ns {
            let _ = write!(md, " N = {} |", thousands(*n));
        }
        md.push_str(" growth |\n|---|");
        for _ in &scale_ns {
            md.push_str("---:|");
        }
        md.push_str("---:|\n");
        for e in &engines {
            let _ = write!(md, "| {e} |");
            let mut per = Vec::new();
            for n in &scale_ns {
                let c = v.phase("scale", *n, e, "bulk_load");
                let p = c.val().map(|s| s * 1e6 / *n as f64);
                per.push(p);
                let _ = write!(
                    md,
                    " {} |",
                    match c {
                        Cell::OverLimit => format!("> {limit} s total"),
                        Cell::Missing => "–".into(),
                        Cell::Val(s, _) => format!("{} ({:.1} s)", fmt_us(s * 1e6 / *n as f64), s),
                    }
                );
            }
            let growth = match (
                per.first().copied().flatten(),
                per.last().copied().flatten(),
            ) {
                (Some(a), Some(b)) if scale_ns.len() > 1 => format!("{:.2}×", b / a),
                _ => "–".into(),
            };
            let _ = writeln!(md, " {growth} |");
        }
        md.push('\n');
    }

    // Records.
    for n in v.ns("records") {
        records_table(&mut md, &v, n, &engines, limit, &mut charts, chart_prefix);
    }

    // Notes.
    let mut notes: Vec<String> = Vec::new();
    for x in &r.runs {
        for t in &x.notes {
            let s = format!("{}: {t}", x.engine);
            if !notes.contains(&s) {
                notes.push(s);
            }
        }
        if let Some(err) = &x.error {
            notes.push(format!(
                "ERROR {} {} N={} run {}: {err}",
                x.engine, x.workload, x.n, x.run
            ));
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(md, "### Notes from the runs\n");
        for t in notes {
            let _ = writeln!(md, "- {t}");
        }
        md.push('\n');
    }
    Rendered {
        markdown: md,
        charts,
    }
}

fn met(r: Option<f64>, target: f64) -> &'static str {
    match r {
        Some(r) if r <= target => "**met**",
        Some(_) => "**missed**",
        None => "not measured",
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map(|r| format!("{r:.2}×")).unwrap_or("–".into())
}

fn targets(md: &mut String, v: &View<'_>, n: u64) {
    let ph = |e: &str, p: &str| v.phase("kv", n, e, p).val();
    let sum = |e: &str, a: &str, b: &str| Some(ph(e, a)? + ph(e, b)?);
    let four =
        v.r.runs
            .iter()
            .find_map(|x| {
                x.phases
                    .iter()
                    .find(|p| p.name.starts_with("random_reads_") && p.name.ends_with('t'))
                    .map(|p| p.name.clone())
            })
            .unwrap_or_else(|| "random_reads_4t".into());
    let floor_ms = v.r.meta.fsync_floor_us / 1e3;
    let _ = writeln!(
        md,
        "### Targets (issue #4): Rivet's ratio to LMDB, N = {}\n",
        thousands(n)
    );
    let _ = writeln!(
        md,
        "| target | Rivet | LMDB | ratio | goal | status |\n|---|---:|---:|---:|---:|---|"
    );
    fn row(
        md: &mut String,
        name: &str,
        rv: Option<f64>,
        lv: Option<f64>,
        fmt: &dyn Fn(f64) -> String,
        goal: f64,
    ) {
        let r = ratio(rv, lv);
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | ≤ {goal:.1}× | {} |",
            rv.map(fmt).unwrap_or("–".into()),
            lv.map(fmt).unwrap_or("–".into()),
            fmt_ratio(r),
            met(r, goal)
        );
    }
    row(
        md,
        "bulk load, random",
        ph("rivet", "bulk_load"),
        ph("lmdb", "bulk_load"),
        &fmt_ms,
        1.0,
    );
    row(
        md,
        "bulk load, sorted (vs LMDB's random bulk load)",
        v.phase("sorted", n, "rivet", "sorted_load").val(),
        ph("lmdb", "bulk_load"),
        &fmt_ms,
        0.5,
    );
    row(
        md,
        "random reads, 1 thread (both rounds)",
        sum("rivet", "random_reads_1", "random_reads_2"),
        sum("lmdb", "random_reads_1", "random_reads_2"),
        &fmt_ms,
        1.1,
    );
    row(
        md,
        "range reads (both rounds)",
        sum("rivet", "range_reads_1", "range_reads_2"),
        sum("lmdb", "range_reads_1", "range_reads_2"),
        &fmt_ms,
        1.0,
    );
    row(
        md,
        "random reads, 4 threads",
        ph("rivet", &four),
        ph("lmdb", &four),
        &fmt_ms,
        1.1,
    );
    row(
        md,
        "1,000 durable commits",
        ph("rivet", "individual_writes"),
        ph("lmdb", "individual_writes"),
        &fmt_ms,
        1.0,
    );
    let per_commit = match v.phase("kv", n, "rivet", "individual_writes") {
        Cell::Val(s, ops) if ops > 0 => Some(s * 1e3 / ops as f64),
        _ => None,
    };
    // Prefer the floor each Rivet child measured right before its commits; older results
    // only have the driver's start and end probes, of which the lower (stricter) one is used.
    let (floor, floor_note) = match v.value("kv", n, "rivet", "fsync_floor_us").val() {
        Some(us) => (
            us / 1e3,
            "floor measured by the same process just before".to_string(),
        ),
        None => {
            let end_ms = v.r.meta.fsync_floor_after_us / 1e3;
            let lo = if end_ms > 0.0 {
                floor_ms.min(end_ms)
            } else {
                floor_ms
            };
            (
                lo,
                format!("lower of the run's start/end floors ({floor_ms:.2} / {end_ms:.2} ms)"),
            )
        }
    };
    let floors = per_commit.map(|c| c / floor);
    let _ = writeln!(
        md,
        "| 1,000 durable commits, per commit in fdatasync floors | {} | floor {floor:.2} ms ({floor_note}) | {} floors | ≤ 2.2 | {} |",
        per_commit.map(|c| format!("{c:.2} ms")).unwrap_or("–".into()),
        floors.map(|f| format!("{f:.2}")).unwrap_or("–".into()),
        met(floors, 2.2)
    );
    row(
        md,
        "100 × 1,000-key commits",
        ph("rivet", "batch_writes"),
        ph("lmdb", "batch_writes"),
        &fmt_ms,
        0.8,
    );
    row(
        md,
        "removals",
        ph("rivet", "removals"),
        ph("lmdb", "removals"),
        &fmt_ms,
        1.0,
    );
    let rs = v.value("kv", n, "rivet", "size_compacted").val();
    let bs = v.value("kv", n, "bbolt", "size_compacted").val();
    let r = ratio(rs, bs);
    let _ = writeln!(
        md,
        "| size after compaction (vs **Go bbolt**) | {} | bbolt {} | {} | ≤ 1.0× | {} |",
        rs.map(mib).unwrap_or("–".into()),
        bs.map(mib).unwrap_or("–".into()),
        fmt_ratio(r),
        met(r, 1.0)
    );
    row(
        md,
        "peak RSS (workload 1 process)",
        v.rss("kv", n, "rivet").val(),
        v.rss("kv", n, "lmdb").val(),
        &mib,
        1.0,
    );
    let scale = v.ns("scale");
    let (small, large) = (scale.first().copied(), scale.last().copied());
    let growth = match (small, large) {
        (Some(a), Some(b)) if b > a => {
            let pa = v
                .phase("scale", a, "rivet", "bulk_load")
                .val()
                .map(|s| s / a as f64);
            let pb = v
                .phase("scale", b, "rivet", "bulk_load")
                .val()
                .map(|s| s / b as f64);
            ratio(pb, pa).map(|g| (g, a, b))
        }
        _ => None,
    };
    match growth {
        Some((g, a, b)) => {
            let _ = writeln!(
                md,
                "| bulk load per key at {} vs {} | | | {g:.2}× | ≤ 1.5× | {} |",
                thousands(b),
                thousands(a),
                met(Some(g), 1.5)
            );
        }
        None => {
            let _ = writeln!(
                md,
                "| bulk load per key at 10M vs 1M | | | – | ≤ 1.5× | not measured in this run |"
            );
        }
    }
    // Record study: every read and insert row.
    if let Some(rn) = v.ns("records").last().copied() {
        let mut total = 0;
        let mut ok = 0;
        let mut worst: Option<(f64, String)> = None;
        for (phase, label) in record_rows() {
            if phase.ends_with("_update") {
                continue;
            }
            let a = v.phase("records", rn, "rivet", &phase).val();
            let b = v.phase("records", rn, "lmdb", &phase).val();
            if let Some(r) = ratio(a, b) {
                total += 1;
                if r <= 1.0 {
                    ok += 1;
                }
                if worst.as_ref().is_none_or(|(w, _)| r > *w) {
                    worst = Some((r, label));
                }
            }
        }
        let _ = writeln!(
            md,
            "| record study (N = {}): every read/insert row | {ok} of {total} rows met | | worst {} | ≤ 1.0× | {} |",
            thousands(rn),
            worst
                .as_ref()
                .map(|(r, l)| format!("{r:.2}× ({l})"))
                .unwrap_or("–".into()),
            if total == 0 {
                "not measured"
            } else if ok == total {
                "**met**"
            } else {
                "**missed**"
            }
        );
    }
    md.push('\n');
}

/// `(phase name, label)` of every record-study row.
fn record_rows() -> Vec<(String, String)> {
    let mut v = Vec::new();
    for enc in ["binary", "json"] {
        v.push((
            format!("{enc}_single_write"),
            format!("{enc}: insert, one record per txn (sampled)"),
        ));
        v.push((
            format!("{enc}_bulk_write"),
            format!("{enc}: insert, all in one txn"),
        ));
        for mode in ["single", "bulk"] {
            for (t, l) in [
                ("read", "Read (1 txn per record)"),
                ("read_many", "ReadMany (cursor)"),
                ("field_sum", "FieldSum (full scan)"),
                ("update", "Update (1 durable txn each, sampled)"),
            ] {
                v.push((format!("{enc}_{mode}_{t}"), format!("{enc}/{mode}: {l}")));
            }
        }
    }
    v
}

fn records_table(
    md: &mut String,
    v: &View<'_>,
    n: u64,
    engines: &[String],
    limit: u64,
    charts: &mut Vec<(String, String)>,
    chart_prefix: &str,
) {
    let _ = writeln!(
        md,
        "### Workload 2: record-layout study (anchors.md §5), N = {} records\n",
        thousands(n)
    );
    let _ = writeln!(
        md,
        "µs per record (median), in parentheses the ratio to LMDB. `single`/`bulk` is how the file was loaded (one record per durable transaction, sampled; or all in one transaction); the reads then run on that file. Go bbolt encodes JSON with `encoding/json`, the Rust engines with `serde_json`.\n"
    );
    let _ = write!(md, "| row |");
    for e in engines {
        let _ = write!(md, " {e} |");
    }
    let _ = write!(md, "\n|---|");
    for _ in engines {
        md.push_str("---:|");
    }
    md.push('\n');
    let mut groups: Vec<Group> = Vec::new();
    let per_record = |c: Cell| match c {
        Cell::Val(s, ops) if ops > 0 => Cell::Val(s * 1e6 / ops as f64, ops),
        other => other,
    };
    for (phase, label) in record_rows() {
        let base = per_record(v.phase("records", n, "lmdb", &phase));
        let _ = write!(md, "| {label} |");
        let mut vals = Vec::new();
        for e in engines {
            let c = per_record(v.phase("records", n, e, &phase));
            let _ = write!(md, " {} |", cell_text(c, base, &fmt_us, limit, e != "lmdb"));
            vals.push(ratio(c.val(), base.val()).or(c.chart().filter(|x| x.is_infinite())));
        }
        md.push('\n');
        groups.push((label, vals));
    }
    for enc in ["binary", "json"] {
        for mode in ["single", "bulk"] {
            let name = format!("{enc}_{mode}_storage");
            let base = v.value("records", n, "lmdb", &name);
            let _ = write!(md, "| {enc}/{mode}: Storage (file size) |");
            for e in engines {
                let c = v.value("records", n, e, &name);
                let _ = write!(md, " {} |", cell_text(c, base, &mib, limit, e != "lmdb"));
            }
            md.push('\n');
        }
    }
    let file = format!("records-{n}.svg");
    charts.push((
        file.clone(),
        svg::ratio_chart(
            &format!(
                "Workload 2 (N = {} records): time per record relative to LMDB",
                thousands(n)
            ),
            "log scale; left of the black line = faster than LMDB; median of runs",
            engines,
            &groups,
        ),
    ));
    let _ = writeln!(md, "\n![workload 2 ratios]({chart_prefix}{file})\n");
}
