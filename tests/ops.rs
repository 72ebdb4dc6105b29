//! Operations: `strand tune --check --json`, the broker's start-up checks (one clear
//! line and a non-zero exit), and SIGTERM during durable produce.

mod common;

use common::{get, http, strand, Broker};
use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use strand_client::{block_on, Acks, Client, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, Seek};

#[test]
fn tune_check_json_reports_every_check() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_strand"))
        .args(["tune", "--check", "--json", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)));
    let checks = report["checks"].as_array().unwrap();
    let names: BTreeSet<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    for expected in [
        "kernel.io_uring_disabled",
        "io_uring",
        "seccomp",
        "memlock",
        "nofile",
        "cpu governor",
        "clocksource",
        "transparent hugepages",
        "vm.swappiness",
        "fs.aio-max-nr",
        "io scheduler",
        "data filesystem",
        "irqbalance",
        "irq placement",
    ] {
        assert!(names.contains(expected), "no {expected:?} check in {names:?}");
    }
    let mut failed = false;
    for c in checks {
        let status = c["status"].as_str().unwrap();
        assert!(["ok", "warn", "fail", "unknown"].contains(&status), "{c}");
        assert!(!c["reason"].as_str().unwrap().is_empty(), "every check says why: {c}");
        if status == "warn" || status == "fail" {
            assert!(!c["fix"].as_str().unwrap().is_empty(), "a problem comes with its fix: {c}");
        }
        failed |= status == "fail";
    }
    // Exit 0 unless the broker could not run here at all.
    assert_eq!(output.status.success(), !failed, "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(report["applied"].as_array().unwrap().len(), 0, "--check changes nothing");
}

fn serve_fails(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_strand"))
        .arg("serve")
        .args(args)
        .stdin(Stdio::null())
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(!output.status.success(), "serve {args:?} started");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    stderr
}

#[test]
fn serve_refuses_an_unusable_data_directory_or_a_port_in_use_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let below = file.join("data");
    let stderr = serve_fails(&["--data-dir", below.to_str().unwrap(), "--port", "0"]);
    assert!(stderr.contains("cannot create the data directory") && stderr.contains("fix:"), "{stderr}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let data = dir.path().join("data");
    let stderr = serve_fails(&["--data-dir", data.to_str().unwrap(), "--port", &port]);
    assert!(stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{stderr}");

    let missing = dir.path().join("missing.toml");
    let stderr = serve_fails(&["--config", missing.to_str().unwrap(), "--data-dir", data.to_str().unwrap()]);
    assert!(stderr.contains("cannot read") && stderr.contains("missing.toml"), "{stderr}");

    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[groups]\nmembers_max = 0\n").unwrap();
    let stderr = serve_fails(&["--config", config.to_str().unwrap(), "--data-dir", data.to_str().unwrap()]);
    assert!(stderr.contains("groups.members_max = 0: must be at least 1"), "{stderr}");
}

#[test]
fn sigterm_during_durable_produce_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut broker = Broker::start(&data, &[]);
    let bootstrap = broker.bootstrap();
    block_on(Client::connect(&bootstrap).unwrap().create_topic("payments", 4, &[("fsync", "always")])).unwrap();
    let producing = {
        let bootstrap = bootstrap.clone();
        std::thread::spawn(move || {
            let config = ProducerConfig { acks: Acks::Durable, retries: 0, ..ProducerConfig::default() };
            let producer = Producer::new(Client::connect(&bootstrap).unwrap(), config);
            let mut acked = BTreeSet::new();
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut i = 0u64;
            'run: while Instant::now() < deadline {
                // 64 records in flight at a time, each waited for.
                let mut pending = Vec::new();
                for _ in 0..64 {
                    let value = format!("p{i}");
                    match producer.send(ProducerRecord::new("payments", value.as_bytes()).key(&i.to_le_bytes())) {
                        Ok(delivery) => pending.push((value, delivery)),
                        Err(_) => break 'run,
                    }
                    i += 1;
                }
                for (value, delivery) in pending {
                    match delivery.wait() {
                        Ok(_) => {
                            acked.insert(value);
                        }
                        Err(_) => break 'run,
                    }
                }
            }
            acked
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    assert!(broker.stop(), "SIGTERM: a clean exit while producers wait for acks");
    let acked = producing.join().unwrap();
    assert!(acked.len() > 100, "{} records acknowledged before the stop", acked.len());
    let broker = Broker::start(&data, &[]);
    let mut consumer = Consumer::new(Client::connect(&broker.bootstrap()).unwrap(), ConsumerConfig::default());
    block_on(consumer.assign("payments", None, Seek::Earliest)).unwrap();
    let mut stored = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !acked.is_subset(&stored) && Instant::now() < deadline {
        for record in consumer.poll(Duration::from_millis(200)).unwrap() {
            stored.insert(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
        }
    }
    let missing: Vec<&String> = acked.difference(&stored).take(5).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?} of {}", acked.len());
    let (ok, _, _) = strand(&["topic", "describe", "payments", "--bootstrap", &broker.bootstrap()], "");
    assert!(ok);
}

/// Parses Prometheus text: every sample line is `name{labels} value`, after a TYPE
/// line for its family. Returns (name, labels, value).
fn parse_prometheus(text: &str) -> Vec<(String, String, f64)> {
    let mut typed = BTreeSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            typed.insert(parts.next().unwrap().to_string());
            assert!(["counter", "gauge", "histogram"].contains(&parts.next().unwrap()), "{line}");
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("not a number: {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => {
                assert!(labels.ends_with('}'), "{line}");
                (name, labels.trim_end_matches('}'))
            }
            None => (series, ""),
        };
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'), "{line}");
        let family = ["_bucket", "_sum", "_count"].iter().fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
        assert!(typed.contains(name) || typed.contains(family), "no TYPE before {line}");
        samples.push((name.to_string(), labels.to_string(), value));
    }
    samples
}

fn total(samples: &[(String, String, f64)], name: &str, label: &str) -> f64 {
    samples.iter().filter(|(n, l, _)| n == name && l.contains(label)).map(|(_, _, v)| v).sum()
}

#[test]
fn metrics_parse_as_prometheus_text_and_count_the_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let admin = broker.admin.clone().expect("the ready line names the admin endpoint");
    assert_eq!(get(&admin, "/readyz"), (200, "ready\n".to_string()));
    assert_eq!(get(&admin, "/healthz").0, 200);
    let bootstrap = broker.bootstrap();
    let client = Client::connect(&bootstrap).unwrap();
    block_on(client.create_topic("m", 2, &[("fsync", "never")])).unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    for i in 0..1000u32 {
        producer.send(ProducerRecord::new("m", &[7u8; 100]).key(&i.to_le_bytes())).unwrap();
    }
    producer.flush();
    let mut consumer = Consumer::new(client, ConsumerConfig::default());
    block_on(consumer.assign("m", None, Seek::Earliest)).unwrap();
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while read < 1000 && Instant::now() < deadline {
        read += consumer.poll(Duration::from_millis(200)).unwrap().len();
    }
    assert_eq!(read, 1000);
    // Gauges refresh every 100 ms.
    std::thread::sleep(Duration::from_millis(300));
    let (status, body) = get(&admin, "/metrics");
    assert_eq!(status, 200);
    let samples = parse_prometheus(&body);
    assert_eq!(total(&samples, "strand_records_in_total", ""), 1000.0, "records in");
    assert_eq!(total(&samples, "strand_records_out_total", ""), 1000.0, "records out");
    assert!(total(&samples, "strand_bytes_in_total", "") >= 100_000.0);
    assert!(total(&samples, "strand_bytes_out_total", "") >= 100_000.0);
    assert!(total(&samples, "strand_requests_total", "api=\"Produce\"") >= 1.0);
    assert!(total(&samples, "strand_requests_total", "api=\"Fetch\"") >= 1.0);
    assert!(total(&samples, "strand_produce_latency_seconds_count", "") >= 1.0);
    assert!(total(&samples, "strand_partitions", "") >= 2.0);
    assert!(total(&samples, "strand_segments", "") >= 2.0);
    assert!(total(&samples, "strand_connections", "") >= 1.0);
    assert!(total(&samples, "strand_disk_free_bytes", "") > 0.0);
    assert_eq!(total(&samples, "strand_ready", ""), 1.0);
    // Histogram buckets are cumulative.
    let buckets: Vec<f64> = samples
        .iter()
        .filter(|(n, l, _)| n == "strand_produce_latency_seconds_bucket" && l.contains("shard=\"0\""))
        .map(|(_, _, v)| *v)
        .collect();
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    // A malformed request gets a 400 and the endpoint keeps serving.
    assert_eq!(http(&admin, "NONSENSE\r\n\r\n").0, 400);
    assert_eq!(http(&admin, "POST /metrics HTTP/1.1\r\nConnection: close\r\n\r\n").0, 405);
    assert_eq!(get(&admin, "/nowhere").0, 404);
    assert_eq!(get(&admin, "/healthz").0, 200);
}

fn join(client: &Client, member: u32) -> strand_protocol::native::ErrorCode {
    use strand_protocol::native::messages::JoinGroupRequest;
    use strand_protocol::native::{Request, Response};
    let request = Request::JoinGroup(JoinGroupRequest {
        group: "reloaded".into(),
        member_id: String::new(),
        topics: vec![format!("t{member}")],
        session_timeout_ms: 30_000,
        strategy: String::new(),
    });
    match block_on(client.request(request)).unwrap() {
        Response::JoinGroup(joined) => joined.error,
        other => panic!("{other:?}"),
    }
}

#[test]
fn sighup_applies_live_settings_and_refuses_a_bad_file() {
    use strand_protocol::native::ErrorCode;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("strand.toml");
    std::fs::write(&config, "[log]\nlevel = \"warn\"\n[groups]\nmembers_max = 1\n").unwrap();
    let mut broker = Broker::start_with_env(
        dir.path(),
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
        &[("RUST_LOG", "")],
    );
    let client = Client::connect(&broker.bootstrap()).unwrap();
    assert_eq!(join(&client, 1), ErrorCode::None);
    assert_eq!(join(&client, 2), ErrorCode::GroupFull);
    let hup = |broker: &Broker| unsafe { libc::kill(broker.pid() as i32, libc::SIGHUP) };
    let wait_for = |broker: &Broker, text: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !broker.stderr().contains(text) {
            assert!(Instant::now() < deadline, "no {text:?} in:\n{}", broker.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    std::fs::write(&config, "[log]\nlevel = \"info\"\n[groups]\nmembers_max = 2\n[limits]\nidle_timeout_ms = 5000\n")
        .unwrap();
    hup(&broker);
    wait_for(&broker, "SIGHUP: configuration reloaded");
    let stderr = broker.stderr();
    let line = stderr.lines().find(|l| l.contains("configuration reloaded")).unwrap();
    // Without the terminal colours.
    let mut plain = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().take_while(|c| *c != 'm').for_each(drop);
        } else {
            plain.push(c);
        }
    }
    let line = plain;
    assert!(line.contains(r#"applied=["groups.members_max", "log.level"]"#), "{line}");
    assert!(line.contains(r#"at_restart=["limits.idle_timeout_ms"]"#), "{line}");
    // Both took effect: the line itself is at info, and the group takes a second member.
    assert_eq!(join(&client, 2), ErrorCode::None);
    assert_eq!(join(&client, 3), ErrorCode::GroupFull);
    // A file with a typo changes nothing and the broker keeps serving.
    std::fs::write(&config, "[groups]\nmembers_mx = 9\n").unwrap();
    hup(&broker);
    wait_for(&broker, "configuration refused");
    assert!(broker.stderr().contains("members_mx"), "{}", broker.stderr());
    assert!(broker.is_running());
    assert_eq!(join(&client, 3), ErrorCode::GroupFull);
    assert!(broker.stop());
}

#[test]
fn the_admin_endpoint_answers_while_hundreds_of_slow_clients_hold_connections() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--cores", "0"]);
    let admin = broker.admin.clone().expect("an admin endpoint");
    // 500 connections that each sent part of a request line and then went quiet.
    let held: Vec<std::net::TcpStream> = (0..500)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(&admin).unwrap();
            std::io::Write::write_all(&mut stream, b"GET /he").unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut slowest = Duration::ZERO;
    for path in ["/healthz", "/metrics", "/readyz", "/healthz", "/metrics"] {
        let started = std::time::Instant::now();
        let (status, body) = get(&admin, path);
        slowest = slowest.max(started.elapsed());
        assert_eq!(status, 200, "{path}: {body}");
    }
    eprintln!("slowest admin answer with 500 slow connections held: {slowest:?}");
    // A liveness bound, not a speed target: one held connection used to delay
    // /healthz by 5.2 s and five made it time out.
    assert!(slowest < Duration::from_secs(2), "{slowest:?}");
    // The slow clients are closed after the header timeout (5 s), not held forever.
    let mut first = held.into_iter().next().unwrap();
    first.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut rest = Vec::new();
    let read = std::io::Read::read_to_end(&mut first, &mut rest);
    assert!(read.is_ok(), "closed by the endpoint: {read:?}");
}
