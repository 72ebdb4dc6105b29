//! `strand-bench report`: charts of one or more run results, as one self-contained
//! SVG or HTML page (no scripts, no external files).
//!
//! Three charts, every result a colour of its own: throughput per second (produced
//! and consumed, MB/s), latency per second (p50 and p99, log scale), and latency by
//! percentile (the whole distribution on a "nines" axis, log scale). The HTML page adds
//! a table of each result's figures.

use crate::run::{us, Report, Side};
use std::fmt::Write;
use std::path::{Path, PathBuf};

const COLORS: [&str; 8] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const WIDTH: f64 = 1100.0;
const HEIGHT: f64 = 340.0;
/// Plot area margins: left, right, top, bottom.
const MARGIN: (f64, f64, f64, f64) = (80.0, 290.0, 40.0, 56.0);

/// Reads a result written by `strand-bench run --json`.
pub fn load(path: &Path) -> anyhow::Result<Report> {
    let text = std::fs::read(path).map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?;
    serde_json::from_slice(&text)
        .map_err(|error| anyhow::anyhow!("{}: not a strand-bench run result: {error}", path.display()))
}

/// Writes the page for `results` to `out` (`.html` or `.svg`).
pub fn write(results: &[PathBuf], out: &Path) -> anyhow::Result<()> {
    let reports: Vec<(String, Report)> = results
        .iter()
        .map(|path| {
            let report = load(path)?;
            // The workload's name, and the file's when it says more (two runs of one
            // workload).
            let stem = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
            let label = if results.len() == 1 || stem == report.workload.name {
                report.workload.name.clone()
            } else {
                format!("{} ({stem})", report.workload.name)
            };
            Ok((label, report))
        })
        .collect::<anyhow::Result<_>>()?;
    let charts = charts(&reports);
    let page = match out.extension().and_then(|e| e.to_str()) {
        Some("svg") => svg_page(&reports, &charts),
        Some("html") | Some("htm") => html_page(&reports, &charts),
        _ => anyhow::bail!("{}: the output must end in .html or .svg", out.display()),
    };
    std::fs::write(out, page).map_err(|error| anyhow::anyhow!("writing {}: {error}", out.display()))?;
    println!("wrote {}", out.display());
    Ok(())
}

/// One line of a chart.
struct Line {
    label: String,
    color: &'static str,
    dashed: bool,
    points: Vec<(f64, f64)>,
}

/// A chart's axes.
struct Chart {
    title: String,
    x_title: String,
    y_title: String,
    x_scale: Scale,
    y_scale: Scale,
    lines: Vec<Line>,
    /// A shaded x range (the warm-up), with its label.
    shade: Option<(f64, f64, String)>,
}

#[derive(Clone, Copy)]
enum Scale {
    Linear,
    Log10,
    /// Quantile q plotted at -log10(1 - q): 0 → 0, 0.9 → 1, 0.99 → 2…
    Nines,
}

/// The side whose latency a result reports: the consumers' in end-to-end runs, the
/// producers' acks otherwise.
fn latency_side(report: &Report) -> Option<(&Side, &'static str)> {
    match (&report.consume, &report.produce) {
        (Some(consume), _) if consume.latency.is_some() => Some((consume, "end to end")),
        (_, Some(produce)) if produce.latency.is_some() => Some((produce, "ack")),
        _ => None,
    }
}

/// The series without its last second, in which the run ended part-way (plotted,
/// it would read as a drop in throughput).
fn complete_seconds(series: &[crate::recorder::SecondPoint]) -> &[crate::recorder::SecondPoint] {
    match series.len() {
        0 | 1 => series,
        n => &series[..n - 1],
    }
}

fn charts(reports: &[(String, Report)]) -> Vec<Chart> {
    let mut throughput = Vec::new();
    let mut latency_time = Vec::new();
    let mut latency_pct = Vec::new();
    let mut warm_up = None;
    for (i, (label, report)) in reports.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let per_second = |side: &Side| -> Vec<(f64, f64)> {
            complete_seconds(&side.series).iter().map(|p| (p.second as f64 + 0.5, p.bytes as f64 / 1e6)).collect()
        };
        if let Some(side) = &report.produce {
            throughput.push(Line {
                label: format!("{label}: produced"),
                color,
                dashed: false,
                points: per_second(side),
            });
        }
        if let Some(side) = &report.consume {
            throughput.push(Line {
                label: format!("{label}: consumed"),
                color,
                dashed: true,
                points: per_second(side),
            });
        }
        if let Some((side, what)) = latency_side(report) {
            let series = |pick: fn(&crate::recorder::Percentiles) -> f64| -> Vec<(f64, f64)> {
                complete_seconds(&side.series)
                    .iter()
                    .filter_map(|p| p.latency.as_ref().map(|l| (p.second as f64 + 0.5, pick(l) / 1e3)))
                    .collect()
            };
            latency_time.push(Line {
                label: format!("{label}: p50 {what}"),
                color,
                dashed: false,
                points: series(|l| l.p50_us),
            });
            latency_time.push(Line {
                label: format!("{label}: p99 {what}"),
                color,
                dashed: true,
                points: series(|l| l.p99_us),
            });
            let points = side
                .distribution
                .iter()
                .filter(|(q, _, _)| *q < 1.0)
                .map(|&(q, value_us, _)| (q, value_us / 1e3))
                .collect();
            latency_pct.push(Line { label: format!("{label}: {what}"), color, dashed: false, points });
        }
        if report.warm_up_seconds > 0.0 {
            warm_up = Some(report.warm_up_seconds);
        }
    }
    let shade = warm_up.map(|w| (0.0, w, "warm-up".to_string()));
    vec![
        Chart {
            title: "Throughput per second".into(),
            x_title: "time since start (s)".into(),
            y_title: "value bytes (MB/s)".into(),
            x_scale: Scale::Linear,
            y_scale: Scale::Linear,
            lines: throughput,
            shade: shade.clone(),
        },
        Chart {
            title: "Latency per second: p50 (solid) and p99 (dashed)".into(),
            x_title: "time since start (s)".into(),
            y_title: "latency (ms, log scale)".into(),
            x_scale: Scale::Linear,
            y_scale: Scale::Log10,
            lines: latency_time,
            shade,
        },
        Chart {
            title: "Latency by percentile (measured window)".into(),
            x_title: "percentile".into(),
            y_title: "latency (ms, log scale)".into(),
            x_scale: Scale::Nines,
            y_scale: Scale::Log10,
            lines: latency_pct,
            shade: None,
        },
    ]
}

fn transform(scale: Scale, v: f64) -> f64 {
    match scale {
        Scale::Linear => v,
        Scale::Log10 => v.max(1e-6).log10(),
        Scale::Nines => -(1.0 - v).max(1e-9).log10(),
    }
}

/// Ticks for `[lo, hi]` in transformed units: (position, label).
fn ticks(scale: Scale, lo: f64, hi: f64) -> Vec<(f64, String)> {
    match scale {
        Scale::Linear => {
            let span = (hi - lo).max(1e-9);
            let raw = span / 6.0;
            let magnitude = 10f64.powf(raw.log10().floor());
            let step = [1.0, 2.0, 5.0, 10.0]
                .iter()
                .map(|m| m * magnitude)
                .find(|s| span / s <= 7.0)
                .unwrap_or(magnitude * 10.0);
            let mut out = Vec::new();
            let mut v = (lo / step).ceil() * step;
            while v <= hi + step * 1e-6 {
                let label = if step >= 1.0 { format!("{v:.0}") } else { format!("{v:.1}") };
                out.push((v, label));
                v += step;
            }
            out
        }
        Scale::Log10 => (lo.floor() as i32..=hi.ceil() as i32)
            .map(|e| {
                let v = 10f64.powi(e);
                let label = if v >= 1.0 { format!("{v:.0}") } else { format!("{v}") };
                (f64::from(e), label)
            })
            .collect(),
        Scale::Nines => (0..=hi.ceil() as i32)
            .map(|n| {
                let label = match n {
                    0 => "p0".to_string(),
                    1 => "p90".to_string(),
                    2 => "p99".to_string(),
                    n => format!("p99.{}", "9".repeat(n as usize - 2)),
                };
                (f64::from(n), label)
            })
            .collect(),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// One chart as an `<svg>` element, placed at `y` when `offset` is set.
fn chart_svg(chart: &Chart, y_offset: f64) -> String {
    let (left, right, top, bottom) = MARGIN;
    let (plot_w, plot_h) = (WIDTH - left - right, HEIGHT - top - bottom);
    let mut svg = String::new();
    let _ = writeln!(svg, r#"<g transform="translate(0,{y_offset})" font-family="sans-serif" font-size="12">"#);
    let _ = writeln!(svg, r#"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#);
    let _ =
        writeln!(svg, r#"<text x="{}" y="24" font-size="16" font-weight="bold">{}</text>"#, left, escape(&chart.title));
    let points: Vec<(f64, f64)> = chart
        .lines
        .iter()
        .flat_map(|l| l.points.iter().map(|&(x, y)| (transform(chart.x_scale, x), transform(chart.y_scale, y))))
        .collect();
    if points.is_empty() {
        let _ = writeln!(svg, r##"<text x="{}" y="{}" fill="#666">no data</text>"##, left + 20.0, top + plot_h / 2.0);
        svg.push_str("</g>\n");
        return svg;
    }
    let (mut x_lo, mut x_hi) = points.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| (lo.min(p.0), hi.max(p.0)));
    let (mut y_lo, mut y_hi) = points.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    match chart.x_scale {
        Scale::Linear => x_lo = x_lo.min(0.0).floor(),
        Scale::Nines => x_lo = 0.0,
        Scale::Log10 => {}
    }
    if let Some((_, to, _)) = &chart.shade {
        x_hi = x_hi.max(*to);
    }
    match chart.y_scale {
        Scale::Linear => {
            y_lo = 0.0;
            y_hi *= 1.1;
        }
        _ => {
            y_lo = y_lo.floor();
            y_hi = y_hi.ceil().max(y_lo + 1.0);
        }
    }
    if x_hi <= x_lo {
        x_hi = x_lo + 1.0;
    }
    if y_hi <= y_lo {
        y_hi = y_lo + 1.0;
    }
    let px = |x: f64| left + (x - x_lo) / (x_hi - x_lo) * plot_w;
    let py = |y: f64| top + plot_h - (y - y_lo) / (y_hi - y_lo) * plot_h;
    if let Some((from, to, label)) = &chart.shade {
        let (a, b) = (px(transform(chart.x_scale, *from)), px(transform(chart.x_scale, *to)));
        let _ =
            writeln!(svg, r##"<rect x="{a:.1}" y="{top}" width="{:.1}" height="{plot_h}" fill="#eeeeee"/>"##, b - a);
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" fill="#888" text-anchor="middle">{label}</text>"##,
            (a + b) / 2.0,
            top + 14.0
        );
    }
    for (v, label) in ticks(chart.y_scale, y_lo, y_hi) {
        let y = py(v);
        let _ =
            writeln!(svg, r##"<line x1="{left}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/>"##, left + plot_w);
        let _ = writeln!(svg, r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"#, left - 6.0, y + 4.0);
    }
    for (v, label) in ticks(chart.x_scale, x_lo, x_hi) {
        let x = px(v);
        let _ = writeln!(svg, r##"<line x1="{x:.1}" x2="{x:.1}" y1="{top}" y2="{:.1}" stroke="#ddd"/>"##, top + plot_h);
        let _ = writeln!(svg, r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"#, top + plot_h + 16.0);
    }
    let _ =
        writeln!(svg, r##"<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>"##);
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        left + plot_w / 2.0,
        HEIGHT - 14.0,
        escape(&chart.x_title)
    );
    let _ = writeln!(
        svg,
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">{}</text>"#,
        top + plot_h / 2.0,
        top + plot_h / 2.0,
        escape(&chart.y_title)
    );
    for (i, line) in chart.lines.iter().enumerate() {
        let path: Vec<String> = line
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(transform(chart.x_scale, x)), py(transform(chart.y_scale, y))))
            .collect();
        let dash = if line.dashed { r#" stroke-dasharray="6 4""# } else { "" };
        if path.len() == 1 {
            let (x, y) = path[0].split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(svg, r#"<circle cx="{x}" cy="{y}" r="3" fill="{}"/>"#, line.color);
        } else if !path.is_empty() {
            let _ = writeln!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
                path.join(" "),
                line.color
            );
        }
        // Legend, right of the plot.
        let ly = top + 8.0 + i as f64 * 20.0;
        let lx = left + plot_w + 14.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" x2="{:.1}" y1="{ly}" y2="{ly}" stroke="{}" stroke-width="2"{dash}/>"#,
            lx + 24.0,
            line.color
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
            lx + 30.0,
            ly + 4.0,
            escape(&line.label)
        );
    }
    svg.push_str("</g>\n");
    svg
}

/// One line of figures per result.
fn summary_lines(reports: &[(String, Report)]) -> Vec<String> {
    let mut lines = Vec::new();
    for (label, report) in reports {
        let mut line = format!("{label}:");
        for (name, side) in [("produce", &report.produce), ("consume", &report.consume)] {
            if let Some(side) = side {
                let share = side.share.as_ref().map(|s| format!(" ({:.0}%)", s.share * 100.0)).unwrap_or_default();
                let _ = write!(
                    line,
                    " {name} {:.3} GB/s, {:.2} M rec/s{share};",
                    side.bytes_per_s / 1e9,
                    side.records_per_s / 1e6
                );
            }
        }
        if let Some((side, what)) = latency_side(report) {
            if let Some(p) = &side.latency {
                let _ = write!(
                    line,
                    " {what} p50 {} p99 {} p99.9 {} max {}",
                    us(p.p50_us),
                    us(p.p99_us),
                    us(p.p999_us),
                    us(p.max_us)
                );
            }
        }
        if !report.complete {
            line.push_str(" INCOMPLETE");
        }
        lines.push(line);
    }
    lines
}

fn svg_page(reports: &[(String, Report)], charts: &[Chart]) -> String {
    let summary = summary_lines(reports);
    let header = 40.0 + 18.0 * summary.len() as f64;
    let height = header + HEIGHT * charts.len() as f64;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}">"#
    );
    svg.push('\n');
    let _ = writeln!(svg, r#"<rect width="{WIDTH}" height="{height}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="20" y="26" font-family="sans-serif" font-size="18" font-weight="bold">strand-bench results</text>"#
    );
    for (i, line) in summary.iter().enumerate() {
        let _ = writeln!(
            svg,
            r#"<text x="20" y="{}" font-family="sans-serif" font-size="12">{}</text>"#,
            48.0 + 18.0 * i as f64,
            escape(line)
        );
    }
    for (i, chart) in charts.iter().enumerate() {
        svg.push_str(&chart_svg(chart, header + HEIGHT * i as f64));
    }
    svg.push_str("</svg>\n");
    svg
}

fn html_page(reports: &[(String, Report)], charts: &[Chart]) -> String {
    let mut html = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>strand-bench results</title>\n<style>body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}</style></head><body>\n<h1>strand-bench results</h1>\n",
    );
    html.push_str("<table><tr><th>result</th><th>mode</th><th>machine</th><th>produce GB/s</th><th>records/s</th><th>share of limit</th><th>consume GB/s</th><th>latency</th><th>p50</th><th>p99</th><th>p99.9</th><th>p99.99</th><th>max</th></tr>\n");
    for (label, report) in reports {
        let rate =
            |side: &Option<Side>| side.as_ref().map_or("-".to_string(), |s| format!("{:.3}", s.bytes_per_s / 1e9));
        let records = report
            .produce
            .as_ref()
            .or(report.consume.as_ref())
            .map_or("-".into(), |s| format!("{:.0}", s.records_per_s));
        let share = report
            .produce
            .as_ref()
            .or(report.consume.as_ref())
            .and_then(|s| s.share.as_ref())
            .map_or("-".into(), |s| format!("{:.0}% of {}", s.share * 100.0, escape(&s.limit)));
        let (what, p) = match latency_side(report) {
            Some((side, what)) => (what, side.latency),
            None => ("-", None),
        };
        let cell = |v: Option<f64>| v.map_or("-".to_string(), us);
        let _ = writeln!(
            html,
            "<tr><td>{}{}</td><td>{:?}</td><td>{} x {}</td><td>{}</td><td>{records}</td><td>{share}</td><td>{}</td><td>{what}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(label),
            if report.complete { "" } else { " (incomplete)" },
            report.workload.mode,
            report.machine.cpus,
            escape(&report.machine.cpu),
            rate(&report.produce),
            rate(&report.consume),
            cell(p.map(|p| p.p50_us)),
            cell(p.map(|p| p.p99_us)),
            cell(p.map(|p| p.p999_us)),
            cell(p.map(|p| p.p9999_us)),
            cell(p.map(|p| p.max_us)),
        );
    }
    html.push_str("</table>\n");
    for chart in charts {
        let _ = writeln!(html, r#"<div><svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}">"#);
        html.push_str(&chart_svg(chart, 0.0));
        html.push_str("</svg></div>\n");
    }
    for (label, report) in reports {
        let _ = writeln!(html, "<p><b>{}</b>: {}</p>", escape(label), escape(&crate::run::describe(&report.workload)));
        for error in &report.errors {
            let _ = writeln!(html, "<p>error: {}</p>", escape(error));
        }
    }
    html.push_str("</body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_cover_the_range() {
        let linear = ticks(Scale::Linear, 0.0, 1234.0);
        assert_eq!(linear.first().unwrap().1, "0");
        assert!(linear.len() >= 3 && linear.len() <= 8, "{linear:?}");
        let log = ticks(Scale::Log10, -2.0, 1.0);
        assert_eq!(log.iter().map(|t| t.1.as_str()).collect::<Vec<_>>(), ["0.01", "0.1", "1", "10"]);
        let nines = ticks(Scale::Nines, 0.0, 4.0);
        assert_eq!(nines.iter().map(|t| t.1.as_str()).collect::<Vec<_>>(), ["p0", "p90", "p99", "p99.9", "p99.99"]);
    }
}
