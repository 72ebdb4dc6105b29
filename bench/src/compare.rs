//! `strand-bench compare A.json B.json`: two run results side by side, each figure
//! with its ratio B / A. Shares of the machine's limits are compared too, since on a
//! shared machine the limits themselves move between runs.

use crate::recorder::Percentiles;
use crate::report::load;
use crate::run::{us, Report, Side};
use std::path::Path;

/// One compared figure: its name, A, B, and whether higher is better.
struct Row {
    name: String,
    a: Option<f64>,
    b: Option<f64>,
    unit: Unit,
}

#[derive(Clone, Copy)]
enum Unit {
    GigabytesPerSecond,
    RecordsPerSecond,
    Share,
    Micros,
}

fn format(value: Option<f64>, unit: Unit) -> String {
    match value {
        None => "-".into(),
        Some(v) => match unit {
            Unit::GigabytesPerSecond => format!("{:.3} GB/s", v / 1e9),
            Unit::RecordsPerSecond => format!("{v:.0}/s"),
            Unit::Share => format!("{:.0}%", v * 100.0),
            Unit::Micros => us(v),
        },
    }
}

/// Picks one percentile.
type Pick = fn(&Percentiles) -> f64;

fn side_rows(name: &str, a: Option<&Side>, b: Option<&Side>, rows: &mut Vec<Row>) {
    if a.is_none() && b.is_none() {
        return;
    }
    let pick = |side: Option<&Side>, f: fn(&Side) -> Option<f64>| side.and_then(f);
    rows.push(Row {
        name: format!("{name} throughput"),
        a: pick(a, |s| Some(s.bytes_per_s)),
        b: pick(b, |s| Some(s.bytes_per_s)),
        unit: Unit::GigabytesPerSecond,
    });
    rows.push(Row {
        name: format!("{name} records"),
        a: pick(a, |s| Some(s.records_per_s)),
        b: pick(b, |s| Some(s.records_per_s)),
        unit: Unit::RecordsPerSecond,
    });
    rows.push(Row {
        name: format!("{name} share of limit"),
        a: pick(a, |s| s.share.as_ref().map(|s| s.share)),
        b: pick(b, |s| s.share.as_ref().map(|s| s.share)),
        unit: Unit::Share,
    });
    let percentiles: [(&str, Pick); 6] = [
        ("p50", |p| p.p50_us),
        ("p90", |p| p.p90_us),
        ("p99", |p| p.p99_us),
        ("p99.9", |p| p.p999_us),
        ("p99.99", |p| p.p9999_us),
        ("max", |p| p.max_us),
    ];
    let (la, lb) = (a.and_then(|s| s.latency), b.and_then(|s| s.latency));
    if la.is_some() || lb.is_some() {
        for (label, f) in percentiles {
            rows.push(Row {
                name: format!("{name} latency {label}"),
                a: la.as_ref().map(f),
                b: lb.as_ref().map(f),
                unit: Unit::Micros,
            });
        }
    }
}

/// The rows compared for two results.
fn rows(a: &Report, b: &Report) -> Vec<Row> {
    let mut rows = Vec::new();
    side_rows("produce", a.produce.as_ref(), b.produce.as_ref(), &mut rows);
    side_rows("consume", a.consume.as_ref(), b.consume.as_ref(), &mut rows);
    rows
}

/// Prints the comparison of the results at `a` and `b`.
pub fn print(a: &Path, b: &Path) -> anyhow::Result<()> {
    let (ra, rb) = (load(a)?, load(b)?);
    println!(
        "A: {} ({}){}",
        a.display(),
        crate::run::describe(&ra.workload),
        if ra.complete { "" } else { " INCOMPLETE" }
    );
    println!(
        "B: {} ({}){}",
        b.display(),
        crate::run::describe(&rb.workload),
        if rb.complete { "" } else { " INCOMPLETE" }
    );
    if ra.workload.name != rb.workload.name || ra.workload.mode != rb.workload.mode {
        println!("note: the two results ran different workloads");
    }
    println!("{:<28} {:>16} {:>16} {:>8}", "figure", "A", "B", "B / A");
    for row in rows(&ra, &rb) {
        let ratio = match (row.a, row.b) {
            (Some(a), Some(b)) if a > 0.0 => format!("{:.2}", b / a),
            _ => "-".into(),
        };
        println!("{:<28} {:>16} {:>16} {:>8}", row.name, format(row.a, row.unit), format(row.b, row.unit), ratio);
    }
    Ok(())
}
