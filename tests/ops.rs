//! Operations: `strand tune --check --json`, the broker's start-up checks (one clear
//! line and a non-zero exit), and SIGTERM during durable produce.

mod common;

use common::{strand, Broker};
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
