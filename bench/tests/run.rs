//! `strand-bench run`, `report` and `compare` against the real broker binary: a short
//! workload end to end, a broker that dies mid-run, an unreachable broker, a workload
//! with a typo, and the null sink. Every run is bounded in time; each broker a test
//! starts is stopped by its PID (a spawned one dies with its strand-bench).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn bench() -> &'static str {
    env!("CARGO_BIN_EXE_strand-bench")
}

/// The `strand` binary of the same build, built if this package's tests run alone.
fn strand() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let binary = Path::new(bench()).with_file_name("strand");
        if !binary.exists() {
            let status = Command::new(env!("CARGO"))
                .args(["build", "--bin", "strand", "-p", "strand"])
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building strand failed");
        }
        binary
    })
}

/// Runs strand-bench with `args`, killed if it takes longer than `limit`.
fn run_bench(args: &[&str], limit: Duration) -> Output {
    let child = Command::new(bench())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("strand-bench starts");
    wait_bounded(child, limit)
}

fn wait_bounded(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "strand-bench ran past {limit:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn workload(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, format!("description = \"a test workload\"\n{body}")).unwrap();
    path
}

const END_TO_END: &str = r#"
mode = "end-to-end"
partitions = 2
producers = 1
consumers = 1
record_bytes = 256
records_per_second = 20000
warm_up_seconds = 0.5
duration_seconds = 1.5
linger_ms = 1.0
batch_bytes = 65536
[topic]
fsync = "never"
[broker.storage]
batch_cache_bytes = 67108864
"#;

#[test]
fn a_short_workload_runs_end_to_end_against_a_spawned_broker() {
    let dir = tempfile::tempdir().unwrap();
    let path = workload(dir.path(), "e2e", END_TO_END);
    let json = dir.path().join("e2e.json");
    let data = dir.path().join("data");
    let output = run_bench(
        &[
            "run",
            path.to_str().unwrap(),
            "--spawn-broker",
            "--broker-binary",
            strand().to_str().unwrap(),
            "--broker-cores",
            "0",
            "--cores",
            "1",
            "--dir",
            data.to_str().unwrap(),
            "--no-limits",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(120),
    );
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "stdout:\n{stdout}\nstderr:\n{}", text(&output.stderr));
    assert!(stdout.contains("consume") && stdout.contains("p99"), "{stdout}");
    assert!(text(&output.stderr).contains("measuring"), "a progress line each second");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["complete"], true);
    // 20,000 records/s over the 1.5 s window, give or take the window's edges.
    let produced = report["produce"]["records"].as_u64().unwrap();
    let consumed = report["consume"]["records"].as_u64().unwrap();
    assert!((25_000..=35_000).contains(&produced), "{produced} records acknowledged in the window");
    assert!((25_000..=35_000).contains(&consumed), "{consumed} records consumed in the window");
    let latency = &report["consume"]["latency"];
    assert!(latency["p50_us"].as_f64().unwrap() > 0.0);
    assert!(latency["max_us"].as_f64().unwrap() >= latency["p99_us"].as_f64().unwrap());
    assert_eq!(report["consume"]["latency_from"], "intended send to consumer receipt");
    let series = report["consume"]["series"].as_array().unwrap();
    assert!(series.len() >= 2, "{series:?}");
    let in_series: u64 = series.iter().map(|p| p["records"].as_u64().unwrap()).sum();
    assert!(in_series >= consumed, "the series counts the warm-up too");
    assert!(!report["machine"]["cpu"].as_str().unwrap().is_empty());
    assert!(!data.join("broker").exists(), "the spawned broker's data is removed");

    // The report renders both ways, and compare reads the result back.
    let svg = dir.path().join("report.svg");
    let output =
        run_bench(&["report", json.to_str().unwrap(), "--out", svg.to_str().unwrap()], Duration::from_secs(30));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let page = std::fs::read_to_string(&svg).unwrap();
    for expected in
        ["<svg", "Throughput per second", "value bytes (MB/s)", "latency (ms, log scale)", "p99.9", "e2e: consumed"]
    {
        assert!(page.contains(expected), "the SVG lacks {expected:?}");
    }
    let html = dir.path().join("report.html");
    let output =
        run_bench(&["report", json.to_str().unwrap(), "--out", html.to_str().unwrap()], Duration::from_secs(30));
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(std::fs::read_to_string(&html).unwrap().contains("<table>"));
    let output = run_bench(&["compare", json.to_str().unwrap(), json.to_str().unwrap()], Duration::from_secs(30));
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(stdout.contains("consume latency p99") && stdout.contains("1.00"), "{stdout}");
}

/// A broker this test starts itself, stopped by its PID.
struct Broker {
    child: Child,
    address: String,
}

impl Broker {
    fn start(dir: &Path) -> Broker {
        let mut child = Command::new(strand())
            .args(["serve", "--port", "0", "--cores", "0", "--data-dir"])
            .arg(dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let address = line.split_whitespace().nth(3).expect("a ready line").to_string();
        Broker { child, address }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_broker_that_dies_mid_run_ends_it_with_a_partial_result() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(&dir.path().join("data"));
    let path = workload(
        dir.path(),
        "long",
        "records_per_second = 50000\nrecord_bytes = 512\nwarm_up_seconds = 0\nduration_seconds = 60\n[topic]\nfsync = \"never\"\n",
    );
    let json = dir.path().join("partial.json");
    let child = Command::new(bench())
        .args(["run", path.to_str().unwrap(), "--bootstrap", &broker.address, "--cores", "1", "--no-limits"])
        .args(["--request-timeout-ms", "3000", "--json", json.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    broker.child.kill().unwrap();
    broker.child.wait().unwrap();
    let started = Instant::now();
    let output = wait_bounded(child, Duration::from_secs(30));
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "stdout:\n{stdout}\nstderr:\n{}", text(&output.stderr));
    assert!(started.elapsed() < Duration::from_secs(15), "it ended {:?} after the broker died", started.elapsed());
    assert!(stdout.contains("INCOMPLETE") && stdout.contains("error: producer 0 of bench-0:"), "{stdout}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["complete"], false);
    assert!(report["produce"]["records"].as_u64().unwrap() > 10_000, "what was measured before is kept");
    assert!(!report["errors"].as_array().unwrap().is_empty());
}

#[test]
fn an_unreachable_broker_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = workload(dir.path(), "w", "");
    let output = run_bench(
        &["run", path.to_str().unwrap(), "--bootstrap", "127.0.0.1:1", "--no-limits"],
        Duration::from_secs(30),
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("strand-bench: broker at 127.0.0.1:1:"), "{stderr}");
}

#[test]
fn a_workload_with_a_typo_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = workload(dir.path(), "typo", "partitons = 4\n");
    let output = run_bench(&["run", path.to_str().unwrap(), "--no-limits"], Duration::from_secs(30));
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("typo.toml:2:1: partitons: unknown field `partitons`"), "{stderr}");
    assert!(output.stdout.is_empty(), "nothing ran");
}

#[test]
fn the_null_sink_measures_the_generator_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = workload(dir.path(), "dry", "warm_up_seconds = 0.2\nduration_seconds = 0.5\n");
    let json = dir.path().join("dry.json");
    let output = run_bench(
        &["run", path.to_str().unwrap(), "--dry-run", "--cores", "0", "--quiet", "--json", json.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["setup"]["dry_run"], true);
    assert!(report["produce"]["records"].as_u64().unwrap() > 1000);
    assert!(report["produce"]["share"].is_null(), "a dry run is not a share of any limit");
    assert!(report["consume"].is_null());
}
