//! The HTML report of a demo or an experiment: one self-contained file (inline CSS and SVG, no script,
//! nothing fetched), written to `target/reports/<scenario>-<time>/index.html` or `--report DIR`.
//!
//! It shows what the terminal table shows, as pictures: where each phase's RPCs landed (a bar per server
//! pod, and per proxy where there are proxies), a timeline of the traffic split with a marker wherever a
//! phase changed something (a scale step, new weights, the mesh), and latency percentiles per phase.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    path::{Path, PathBuf},
};

use anyhow::Context as _;

use crate::{
    harness::measure::{PhaseResult, Report},
    harness::scenario::Scenario,
};

/// Colours of the series, in order; the palette repeats after the last.
const PALETTE: [&str; 10] = [
    "#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951", "#ff8ab7", "#a463f2", "#97bbf5",
    "#9c6b4e", "#9498a0",
];

/// Where the report goes when `--report` is not given: `target/reports/<name>-<UTC time>`.
pub fn default_dir(name: &str) -> PathBuf {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace([':', '-'], "");
    crate::project::root()
        .join("target/reports")
        .join(format!("{name}-{stamp}"))
}

/// Writes `index.html` into `dir` (created if needed), and beside it `report.json`, the document
/// `--json` prints; returns the page's path.
pub fn write(report: &Report, scenario: &Scenario, dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the report directory {}", dir.display()))?;
    let json = dir.join("report.json");
    std::fs::write(&json, serde_json::to_string_pretty(report)? + "\n")
        .with_context(|| format!("cannot write {}", json.display()))?;
    let path = dir.join("index.html");
    std::fs::write(&path, render(report, scenario))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// The whole page.
pub fn render(report: &Report, scenario: &Scenario) -> String {
    let mut html = String::new();
    let title = format!("{}: {}", report.scenario, scenario.title);
    writeln!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>",
        esc(&title)
    )
    .unwrap();
    writeln!(
        html,
        "<h1>{}</h1>\n<p class=\"meta\">backend: {} · client reports every {} ms · {} phase(s)</p>",
        esc(&title),
        esc(report.backend),
        report.interval_ms,
        report.phases.len()
    )
    .unwrap();
    if !scenario.lesson.is_empty() {
        writeln!(html, "<p class=\"lesson\">{}</p>", esc(scenario.lesson)).unwrap();
    }
    html.push_str("<h2>Traffic split over time</h2>\n");
    html.push_str(&timeline(report));
    html.push_str("<h2>Where each phase's RPCs landed</h2>\n<div class=\"phases\">\n");
    for (i, phase) in report.phases.iter().enumerate() {
        html.push_str(&phase_card(i, phase));
    }
    html.push_str("</div>\n<h2>Latency per phase</h2>\n");
    html.push_str(&latency_chart(&report.phases));
    html.push_str("</body>\n</html>\n");
    html
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}\
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}.meta{color:#666}\
.lesson{background:#f4f6fb;border-left:4px solid #4269d0;padding:.6em 1em}\
.phases{display:flex;flex-wrap:wrap;gap:1em}\
.phase{border:1px solid #ddd;border-radius:6px;padding:.8em;flex:1 1 460px}\
.phase h3{margin:0 0 .4em 0;font-size:1em}.stats{color:#444;font-size:.9em;margin:.3em 0}\
.errors{color:#b00020}.warning{color:#8a5a00}svg text{font-family:system-ui,sans-serif;font-size:11px;fill:#333}";

/// One phase: a bar per server pod (its share of the phase's RPCs), a bar per proxy where there are
/// proxies, and the phase's numbers.
fn phase_card(index: usize, phase: &PhaseResult) -> String {
    let mut html = format!(
        "<div class=\"phase\" id=\"phase-{}\">\n<h3>Phase {}: {} ({})</h3>\n",
        index + 1,
        index + 1,
        esc(&phase.name),
        esc(&phase.arrangement())
    );
    if !phase.changes.is_empty() {
        writeln!(
            html,
            "<p class=\"stats\">changes: {}</p>",
            esc(&phase.changes.join("; "))
        )
        .unwrap();
    }
    let total: u64 = phase.by_server.values().sum();
    html.push_str(&bars("phase-chart", &phase.by_server, total));
    if let Some(proxies) = &phase.by_proxy {
        html.push_str("<p class=\"stats\">RPCs by proxy</p>\n");
        let total = proxies.values().sum();
        html.push_str(&bars("proxy-chart", proxies, total));
    }
    writeln!(
        html,
        "<p class=\"stats\">{} RPCs · Jain index {:.2} · p50 {:.2} ms · p90 {:.2} ms · p99 {:.2} ms{}</p>",
        phase.rpcs,
        phase.jain,
        phase.latency_ms.p50,
        phase.latency_ms.p90,
        phase.latency_ms.p99,
        phase.weights.as_ref().map_or_else(String::new, |w| {
            let parts: Vec<String> = w.iter().map(|(v, n)| format!("{v}={n}")).collect();
            format!(" · weights {}", parts.join(" "))
        })
    )
    .unwrap();
    for warning in &phase.warnings {
        writeln!(
            html,
            "<p class=\"stats warning\">warning: {}</p>",
            esc(warning)
        )
        .unwrap();
    }
    if phase.errors > 0 {
        let codes: Vec<String> = phase
            .errors_by_code
            .iter()
            .map(|(code, n)| format!("{code}: {n}"))
            .collect();
        writeln!(
            html,
            "<p class=\"stats errors\">{} failed RPCs ({})</p>",
            phase.errors,
            esc(&codes.join(", "))
        )
        .unwrap();
    }
    html.push_str("</div>\n");
    html
}

/// Horizontal bars, one per entry, as a share of `total`.
fn bars(class: &str, counts: &BTreeMap<String, u64>, total: u64) -> String {
    const LABEL: f64 = 150.0;
    const WIDTH: f64 = 260.0;
    const ROW: f64 = 20.0;
    let height = ROW * counts.len().max(1) as f64 + 4.0;
    let mut svg = format!(
        "<svg class=\"{class}\" width=\"{}\" height=\"{height}\" viewBox=\"0 0 {} {height}\" role=\"img\">\n",
        LABEL + WIDTH + 60.0,
        LABEL + WIDTH + 60.0
    );
    for (i, (name, n)) in counts.iter().enumerate() {
        let share = share(*n, total);
        let y = i as f64 * ROW + 2.0;
        writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{LABEL}\" y=\"{y}\" width=\"{WIDTH}\" height=\"{}\" fill=\"#eee\"/>\
             <rect class=\"bar\" x=\"{LABEL}\" y=\"{y}\" width=\"{:.1}\" height=\"{}\" fill=\"{}\"><title>{}: {n} RPCs</title></rect>\
             <text x=\"{}\" y=\"{}\">{:.1}%</text>",
            LABEL - 6.0,
            y + ROW * 0.7,
            esc(name),
            ROW - 6.0,
            WIDTH * share,
            ROW - 6.0,
            PALETTE[i % PALETTE.len()],
            esc(name),
            LABEL + WIDTH + 6.0,
            y + ROW * 0.7,
            share * 100.0
        )
        .unwrap();
    }
    svg.push_str("</svg>\n");
    svg
}

fn share(n: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        n as f64 / total as f64
    }
}

/// The series of the timeline: per version when there are several, else per server pod (where a
/// scale-up shows as new lines rising, or not).
fn series_of(report: &Report) -> (&'static str, Vec<String>) {
    let versions: BTreeSet<&String> = report
        .phases
        .iter()
        .flat_map(|p| p.by_version.keys())
        .collect();
    if versions.len() > 1 {
        ("version", versions.into_iter().cloned().collect())
    } else {
        let servers: BTreeSet<&String> = report
            .phases
            .iter()
            .flat_map(|p| p.by_server.keys())
            .collect();
        ("server", servers.into_iter().cloned().collect())
    }
}

/// The share of each series in every client report, phase after phase, with a marker at the start of
/// every phase naming what changed there.
fn timeline(report: &Report) -> String {
    const LEFT: f64 = 48.0;
    const TOP: f64 = 34.0;
    const WIDTH: f64 = 880.0;
    const HEIGHT: f64 = 220.0;
    let (by, names) = series_of(report);
    let points: usize = report.phases.iter().map(|p| p.intervals.len()).sum();
    let step = report.interval_ms as f64 / 1000.0;
    let span = (points.max(1) as f64) * step;
    let x = |i: f64| LEFT + WIDTH * i * step / span;
    let y = |share: f64| TOP + HEIGHT * (1.0 - share);
    let legend_rows = names.len().div_ceil(6);
    let total_height = TOP + HEIGHT + 40.0 + 16.0 * legend_rows as f64;
    let mut svg = format!(
        "<svg class=\"timeline\" width=\"{}\" height=\"{total_height}\" viewBox=\"0 0 {} {total_height}\" role=\"img\">\n",
        LEFT + WIDTH + 20.0,
        LEFT + WIDTH + 20.0
    );
    for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
        writeln!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}%</text>",
            LEFT + WIDTH,
            LEFT - 4.0,
            y(tick) + 4.0,
            (tick * 100.0) as u32,
            y = y(tick)
        )
        .unwrap();
    }
    writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">seconds of measurement ({} reports)</text>",
        LEFT + WIDTH,
        TOP + HEIGHT + 28.0,
        points
    )
    .unwrap();
    // Phase markers.
    let mut start = 0usize;
    for (i, phase) in report.phases.iter().enumerate() {
        let x0 = x(start as f64);
        let label = if phase.changes.is_empty() {
            phase.name.clone()
        } else {
            let changes = phase
                .changes
                .join(", ")
                .replace("setting weights ", "weights ")
                .replace("server-", "");
            format!("{}: {changes}", phase.name)
        };
        writeln!(
            svg,
            "<line class=\"marker\" x1=\"{x0:.1}\" x2=\"{x0:.1}\" y1=\"{}\" y2=\"{}\" stroke=\"#888\" stroke-dasharray=\"4 3\"/>\
             <text x=\"{:.1}\" y=\"{}\"><title>{}</title>{}</text>",
            TOP - 4.0,
            TOP + HEIGHT,
            x0 + 3.0,
            if i % 2 == 0 { TOP - 20.0 } else { TOP - 8.0 },
            esc(&label),
            esc(&truncate(&label, 40))
        )
        .unwrap();
        start += phase.intervals.len();
    }
    writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}s</text>",
        LEFT + WIDTH,
        TOP + HEIGHT + 14.0,
        round1(span)
    )
    .unwrap();
    // One line per series.
    for (s, name) in names.iter().enumerate() {
        let mut path = String::new();
        let mut i = 0usize;
        for phase in &report.phases {
            for summary in &phase.intervals {
                let counts = if by == "version" {
                    &summary.by_version
                } else {
                    &summary.by_server
                };
                let total: u64 = counts.values().sum();
                if total > 0 {
                    let v = share(counts.get(name).copied().unwrap_or(0), total);
                    let command = if path.is_empty() { 'M' } else { 'L' };
                    write!(path, "{command}{:.1},{:.1} ", x(i as f64 + 0.5), y(v)).unwrap();
                }
                i += 1;
            }
        }
        let color = PALETTE[s % PALETTE.len()];
        writeln!(
            svg,
            "<path class=\"series\" d=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"><title>{} {}</title></path>",
            path.trim_end(),
            by,
            esc(name)
        )
        .unwrap();
        let (row, col) = (s / 6, s % 6);
        let lx = LEFT + col as f64 * 145.0;
        let ly = TOP + HEIGHT + 44.0 + row as f64 * 16.0;
        writeln!(
            svg,
            "<rect x=\"{lx}\" y=\"{}\" width=\"12\" height=\"4\" fill=\"{color}\"/><text x=\"{}\" y=\"{ly}\">{} {}</text>",
            ly - 6.0,
            lx + 16.0,
            by,
            esc(&truncate(name, 20))
        )
        .unwrap();
    }
    svg.push_str("</svg>\n");
    svg
}

/// p50, p90 and p99 of each phase, side by side (mesh off and on, for `compare`).
fn latency_chart(phases: &[PhaseResult]) -> String {
    const LEFT: f64 = 70.0;
    const TOP: f64 = 16.0;
    const HEIGHT: f64 = 180.0;
    const BAR: f64 = 16.0;
    const GROUP: f64 = 3.0 * BAR + 40.0;
    let max = phases
        .iter()
        .map(|p| p.latency_ms.p99)
        .fold(0.0f64, f64::max)
        .max(0.001);
    let width = LEFT + GROUP * phases.len().max(1) as f64 + 20.0;
    let total_height = TOP + HEIGHT + 40.0;
    let mut svg = format!(
        "<svg class=\"latency\" width=\"{width}\" height=\"{total_height}\" viewBox=\"0 0 {width} {total_height}\" role=\"img\">\n"
    );
    writeln!(
        svg,
        "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#999\"/><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{:.2} ms</text>",
        width - 10.0,
        TOP + HEIGHT,
        TOP + HEIGHT,
        LEFT - 4.0,
        TOP + 4.0,
        max
    )
    .unwrap();
    for (i, phase) in phases.iter().enumerate() {
        let gx = LEFT + 10.0 + i as f64 * GROUP;
        let l = phase.latency_ms;
        for (j, (name, value)) in [("p50", l.p50), ("p90", l.p90), ("p99", l.p99)]
            .into_iter()
            .enumerate()
        {
            let h = HEIGHT * value / max;
            writeln!(
                svg,
                "<rect class=\"bar\" x=\"{:.1}\" y=\"{:.1}\" width=\"{}\" height=\"{h:.1}\" fill=\"{}\"><title>{} {name}: {value:.3} ms</title></rect>",
                gx + j as f64 * BAR,
                TOP + HEIGHT - h,
                BAR - 2.0,
                PALETTE[j],
                esc(&phase.name)
            )
            .unwrap();
        }
        writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text><text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            gx + 1.5 * BAR,
            TOP + HEIGHT + 14.0,
            esc(&truncate(&phase.name, 14)),
            gx + 1.5 * BAR,
            TOP + HEIGHT + 27.0,
            if phase.mesh {
                phase.dataplane
            } else {
                "mesh off"
            }
        )
        .unwrap();
    }
    for (j, name) in ["p50", "p90", "p99"].iter().enumerate() {
        let lx = width - 150.0 + j as f64 * 45.0;
        writeln!(
            svg,
            "<rect x=\"{lx}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{name}</text>",
            TOP - 14.0,
            PALETTE[j],
            lx + 13.0,
            TOP - 5.0
        )
        .unwrap();
    }
    svg.push_str("</svg>\n");
    svg
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// Text for HTML and SVG: `& < > " '` escaped.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
