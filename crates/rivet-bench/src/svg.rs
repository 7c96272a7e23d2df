//! Hand-written SVG bar charts (no dependencies): grouped horizontal bars, either on a log
//! scale around 1.0 (ratios to LMDB: bars to the left are faster) or on a linear scale.

use std::fmt::Write;

/// Fixed colour of an engine, so every chart agrees.
pub fn colour(engine: &str) -> &'static str {
    match engine {
        "rivet" => "#d62728",
        "lmdb" => "#1f77b4",
        "redb" => "#ff7f0e",
        "bbolt" => "#2ca02c",
        "fjall" => "#9467bd",
        _ => "#7f7f7f",
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One group of bars: a label and one optional value per series (`None` = not measured;
/// `Some(f64::INFINITY)` = over the time limit).
pub type Group = (String, Vec<Option<f64>>);

const LABEL_W: f64 = 260.0;
const PLOT_W: f64 = 560.0;
const BAR_H: f64 = 11.0;
const GROUP_PAD: f64 = 10.0;
const TOP: f64 = 64.0;

fn header(out: &mut String, width: f64, height: f64, title: &str, subtitle: &str) {
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="20" font-size="15" font-weight="bold">{}</text>
<text x="10" y="38" fill="#555">{}</text>
"##,
        esc(title),
        esc(subtitle)
    );
}

fn legend(out: &mut String, series: &[String], y: f64) {
    let mut x = LABEL_W;
    for s in series {
        let _ = writeln!(
            out,
            r#"<rect x="{x}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            y - 9.0,
            colour(s),
            x + 14.0,
            y,
            esc(s)
        );
        x += 24.0 + 7.0 * s.len() as f64 + 20.0;
    }
}

fn height_for(groups: &[Group], series: usize) -> f64 {
    TOP + groups.len() as f64 * (series as f64 * BAR_H + GROUP_PAD) + 40.0
}

/// Ratios on a log2 scale centred on 1.0, clamped to `[1/16, 16]`.
pub fn ratio_chart(title: &str, subtitle: &str, series: &[String], groups: &[Group]) -> String {
    let width = LABEL_W + PLOT_W + 90.0;
    let height = height_for(groups, series.len());
    let mut out = String::new();
    header(&mut out, width, height, title, subtitle);
    legend(&mut out, series, 56.0);
    let (lo, hi) = (-4.0f64, 4.0f64);
    let xpos = |r: f64| LABEL_W + (r.log2().clamp(lo, hi) - lo) / (hi - lo) * PLOT_W;
    let plot_bottom = height - 30.0;
    for t in [-4i32, -3, -2, -1, 0, 1, 2, 3, 4] {
        let r = 2f64.powi(t);
        let x = xpos(r);
        let label = if t < 0 {
            format!("1/{}", 1 << -t)
        } else {
            format!("{}×", 1 << t)
        };
        let _ = writeln!(
            out,
            r##"<line x1="{x}" y1="{TOP}" x2="{x}" y2="{plot_bottom}" stroke="{}" stroke-width="{}"/><text x="{x}" y="{}" text-anchor="middle" fill="#555">{label}</text>"##,
            if t == 0 { "#000" } else { "#ddd" },
            if t == 0 { 1.5 } else { 1.0 },
            plot_bottom + 14.0
        );
    }
    let mut y = TOP;
    for (label, vals) in groups {
        let gh = series.len() as f64 * BAR_H;
        group_label(&mut out, y, gh, label);
        for (i, v) in vals.iter().enumerate() {
            let by = y + i as f64 * BAR_H;
            let Some(v) = *v else { continue };
            let x1 = xpos(1.0);
            let (x2, text) = if v.is_infinite() {
                (xpos(16.0), "> limit".to_string())
            } else {
                (xpos(v), format!("{v:.2}×"))
            };
            let (x, w) = if x2 >= x1 {
                (x1, x2 - x1)
            } else {
                (x2, x1 - x2)
            };
            bar(&mut out, x, by, w, &series[i], &text);
        }
        y += gh + GROUP_PAD;
    }
    out.push_str("</svg>\n");
    out
}

/// Absolute values on a linear scale starting at 0.
pub fn value_chart(
    title: &str,
    subtitle: &str,
    unit: &str,
    series: &[String],
    groups: &[Group],
) -> String {
    let width = LABEL_W + PLOT_W + 110.0;
    let height = height_for(groups, series.len());
    let mut out = String::new();
    header(&mut out, width, height, title, subtitle);
    legend(&mut out, series, 56.0);
    let max = groups
        .iter()
        .flat_map(|(_, v)| v.iter().flatten())
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let plot_bottom = height - 30.0;
    for i in 0..=4 {
        let x = LABEL_W + PLOT_W * i as f64 / 4.0;
        let _ = writeln!(
            out,
            r##"<line x1="{x}" y1="{TOP}" x2="{x}" y2="{plot_bottom}" stroke="#ddd"/><text x="{x}" y="{}" text-anchor="middle" fill="#555">{:.0} {unit}</text>"##,
            plot_bottom + 14.0,
            max * i as f64 / 4.0
        );
    }
    let mut y = TOP;
    for (label, vals) in groups {
        let gh = series.len() as f64 * BAR_H;
        group_label(&mut out, y, gh, label);
        for (i, v) in vals.iter().enumerate() {
            let Some(v) = *v else { continue };
            let by = y + i as f64 * BAR_H;
            let w = if v.is_finite() {
                v / max * PLOT_W
            } else {
                PLOT_W
            };
            let text = if v.is_finite() {
                format!("{v:.0} {unit}")
            } else {
                "> limit".into()
            };
            bar(&mut out, LABEL_W, by, w, &series[i], &text);
        }
        y += gh + GROUP_PAD;
    }
    out.push_str("</svg>\n");
    out
}

/// The label of one group of bars, right-aligned left of the plot.
fn group_label(out: &mut String, y: f64, group_height: f64, label: &str) {
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
        LABEL_W - 8.0,
        y + group_height / 2.0 + 4.0,
        esc(label)
    );
}

/// One bar of `series` at `x`, `y` (`width` wide, at least 1), with `text` beside it and as
/// its tooltip.
fn bar(out: &mut String, x: f64, y: f64, width: f64, series: &str, text: &str) {
    let w = width.max(1.0);
    let _ = writeln!(
        out,
        r##"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{:.1}" fill="{}"><title>{}: {text}</title></rect><text x="{:.1}" y="{:.1}" font-size="9" fill="#333">{text}</text>"##,
        BAR_H - 2.0,
        colour(series),
        esc(series),
        x + w + 3.0,
        y + BAR_H - 3.0
    );
}
