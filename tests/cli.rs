//! The `strand` CLI against the real broker: the README's quick start, and one clear
//! line on stderr with a non-zero exit for an unknown topic, an unreachable broker
//! and a bad argument.

mod common;

use common::{strand, Broker};
use std::time::{Duration, Instant};
use strand_client::{block_on, Acks, Client, ClientError, OffsetSpec, Producer, ProducerConfig, ProducerRecord};
use strand_protocol::native::ErrorCode;

#[test]
fn quick_start_creates_produces_and_consumes() {
    // As in the README: the data directory is the relative default, `strand-data`.
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start_in(dir.path(), std::path::Path::new("strand-data"), &[]);
    let bootstrap = broker.bootstrap();
    let b = ["--bootstrap", bootstrap.as_str()];

    let (ok, out, err) = strand(&[&["topic", "create", "orders", "--partitions", "3"][..], &b].concat(), "");
    assert!(ok, "{err}");
    assert!(out.contains("created topic orders"), "{out}");

    let (ok, out, err) = strand(&[&["topic", "list"][..], &b].concat(), "");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "orders\t3 partitions");

    let input = "alice:order 1\ndave:order 2\ncarol:order 3\nalice:order 4\n";
    let (ok, _, err) = strand(&[&["produce", "orders", "--key-separator", ":"][..], &b].concat(), input);
    assert!(ok, "{err}");
    assert!(err.contains("produced 4 records"), "{err}");

    let (ok, out, err) = strand(&[&["consume", "orders", "--from", "earliest"][..], &b].concat(), "");
    assert!(ok, "{err}");
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(lines, ["order 1", "order 2", "order 3", "order 4"]);

    // alice's records share a partition, in order; the README's keys show the split.
    let (ok, out, err) = strand(&[&["consume", "orders", "--format", "json"][..], &b].concat(), "");
    assert!(ok, "{err}");
    let records: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let alice: Vec<&serde_json::Value> = records.iter().filter(|r| r["key"] == "alice").collect();
    assert_eq!(alice.len(), 2);
    assert_eq!(alice[0]["partition"], alice[1]["partition"]);
    assert_eq!(alice[0]["value"], "order 1");
    assert_eq!(alice[1]["value"], "order 4");
    let partition_of = |key: &str| records.iter().find(|r| r["key"] == key).unwrap()["partition"].as_u64().unwrap();
    assert_eq!([partition_of("alice"), partition_of("dave"), partition_of("carol")], [0, 1, 2]);

    let (ok, out, err) = strand(&[&["consume", "orders", "--count", "1"][..], &b].concat(), "");
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 1);

    let (ok, out, err) = strand(&[&["topic", "describe", "orders"][..], &b].concat(), "");
    assert!(ok, "{err}");
    assert!(out.contains("3 partitions"), "{out}");
    assert!(out.contains("partition\tleader\treplicas\tisr\tshard\tearliest\tlatest"), "{out}");
    let rows: Vec<&str> = out.lines().skip(2).take_while(|l| *l != "config:").collect();
    // A broker alone is broker 0: leader, the one replica, in sync.
    assert!(
        rows.iter().all(|row| row.starts_with(|c: char| c.is_ascii_digit()) && row.contains("\t0\t0\t0\t")),
        "{out}"
    );
    let total: i64 = rows.iter().map(|l| l.split('\t').nth(6).unwrap().parse::<i64>().unwrap()).sum();
    assert_eq!(total, 4, "{out}");

    let (ok, _, err) = strand(&[&["topic", "delete", "orders"][..], &b].concat(), "");
    assert!(ok, "{err}");
    let (ok, out, _) = strand(&[&["topic", "list"][..], &b].concat(), "");
    assert!(ok);
    assert_eq!(out.trim(), "");
}

fn assert_one_line_failure(args: &[&str], expect: &str) {
    let (ok, _, err) = strand(args, "");
    assert!(!ok, "{args:?} should fail");
    assert_eq!(err.trim().lines().count(), 1, "one line for {args:?}: {err}");
    assert!(err.contains(expect), "{args:?}: {err:?} does not say {expect:?}");
}

#[test]
fn bad_requests_fail_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let bootstrap = broker.bootstrap();
    let b = ["--bootstrap", bootstrap.as_str()];
    assert_one_line_failure(&[&["consume", "nope"][..], &b].concat(), "unknown topic \"nope\"");
    assert_one_line_failure(&[&["produce", "nope"][..], &b].concat(), "unknown topic \"nope\"");
    assert_one_line_failure(&[&["topic", "delete", "nope"][..], &b].concat(), "unknown topic \"nope\"");
    assert_one_line_failure(&[&["topic", "create", "x!", "--partitions", "1"][..], &b].concat(), "invalid topic name");
    assert_one_line_failure(
        &[&["topic", "create", "t", "--partitions", "0"][..], &b].concat(),
        "--partitions <PARTITIONS>': 0: a partition count is 1 to 100000",
    );
    assert_one_line_failure(
        &[&["topic", "create", "t", "--partitions", "1", "--config", "fsync=maybe"][..], &b].concat(),
        "maybe",
    );
    assert_one_line_failure(&["topic", "list", "--bootstrap", "127.0.0.1:1"], "cannot reach the broker at 127.0.0.1:1");
    assert_one_line_failure(&[&["consume", "t", "--from", "yesterday"][..], &b].concat(), "--from \"yesterday\"");
    let (ok, _, err) = strand(&["topic", "create", "t"], "");
    assert!(!ok && err.contains("--partitions"), "{err}");
}

/// `strand topic describe`'s configuration lines, as (key, value).
fn described_config(bootstrap: &str, topic: &str) -> Vec<(String, String)> {
    let (ok, out, err) = strand(&["topic", "describe", topic, "--bootstrap", bootstrap], "");
    assert!(ok, "{err}");
    out.lines()
        .skip_while(|l| *l != "config:")
        .skip(1)
        .map(|l| {
            let (key, value) = l.trim().split_once(" = ").unwrap_or_else(|| panic!("a config line: {l:?}"));
            (key.to_string(), value.to_string())
        })
        .collect()
}

fn setting(config: &[(String, String)], key: &str) -> String {
    config.iter().find(|(k, _)| k == key).unwrap_or_else(|| panic!("{key} in {config:?}")).1.clone()
}

/// 600 records of 1 KiB into each of `partitions` partitions, in batches of at most
/// 16 KiB (so that 64 KiB segments hold several).
fn fill(bootstrap: &str, topic: &str, partitions: u32, acks: Acks) {
    let config = ProducerConfig { acks, batch_bytes: 16 * 1024, ..Default::default() };
    let producer = Producer::new(Client::connect(bootstrap).unwrap(), config);
    let value = vec![b'v'; 1024];
    let deliveries: Vec<_> = (0..600)
        .flat_map(|_| (0..partitions).map(|p| producer.send(ProducerRecord::new(topic, &value).partition(p)).unwrap()))
        .collect::<Vec<_>>();
    producer.flush();
    for delivery in deliveries {
        block_on(delivery).unwrap();
    }
}

#[test]
fn topic_settings_change_while_it_serves_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut broker = Broker::start(&data, &["--cores", "0,1"]);
    let bootstrap = broker.bootstrap();
    let b = ["--bootstrap", bootstrap.as_str()];
    let create = ["topic", "create", "events", "--partitions", "2", "--fsync", "never", "--retention-ms", "-1"];
    let (ok, _, err) = strand(&[&create[..], &["--config", "segment_bytes=65536"], &b].concat(), "");
    assert!(ok, "{err}");
    fill(&bootstrap, "events", 2, Acks::Leader);
    let client = Client::connect(&bootstrap).unwrap();
    let latest = |p| block_on(client.list_offset("events", p, OffsetSpec::Latest)).unwrap();
    let earliest = |p| block_on(client.list_offset("events", p, OffsetSpec::Earliest)).unwrap();
    assert_eq!((latest(0), latest(1), earliest(0), earliest(1)), (600, 600, 0, 0));
    let config = described_config(&bootstrap, "events");
    assert_eq!(setting(&config, "retention_bytes"), "-1");
    assert_eq!(setting(&config, "fsync"), "never");

    // Tighter retention applies at once, not at the next retention check (300 s by
    // default): each partition keeps 128 KiB of 1 KiB records and at most one more
    // segment (64 KiB and a batch), about 210 of its 600 records.
    let alter = ["topic", "alter", "events", "--retention-bytes", "131072"];
    let (ok, out, err) = strand(&[&alter[..], &b].concat(), "");
    assert!(ok, "{err}");
    assert!(out.contains("altered topic events: retention_bytes = 131072"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while earliest(0) < 360 || earliest(1) < 360 {
        assert!(
            Instant::now() < deadline,
            "retention did not run: {} {}\n{}",
            earliest(0),
            earliest(1),
            broker.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!((latest(0), latest(1)), (600, 600), "retention keeps the newest records");

    // Durability switches on a live topic: what `never` made visible stays visible,
    // and durable produce works at once.
    let (ok, _, err) = strand(&[&["topic", "alter", "events", "--fsync", "always"][..], &b].concat(), "");
    assert!(ok, "{err}");
    assert_eq!((latest(0), latest(1)), (600, 600));
    fill(&bootstrap, "events", 2, Acks::Durable);
    assert_eq!((latest(0), latest(1)), (1200, 1200));

    // Bad input changes nothing: an unknown key, a value out of range (with a good
    // one beside it), a key both set and reset, an unknown topic, the internal topic.
    let before = described_config(&bootstrap, "events");
    let refused = |set: &[(&str, &str)], reset: &[&str], topic: &str| match block_on(
        client.alter_topic_config(topic, set, reset),
    ) {
        Err(ClientError::Broker { code, message }) => (code, message),
        Err(ClientError::UnknownTopic(name)) => (ErrorCode::UnknownTopic, name),
        other => panic!("{set:?} {reset:?} on {topic}: {other:?}"),
    };
    let (code, message) = refused(&[("retention.ms", "1")], &[], "events");
    assert_eq!(code, ErrorCode::InvalidConfig);
    assert!(message.contains("unknown topic setting \"retention.ms\""), "{message}");
    let (code, message) = refused(&[("retention_ms", "1000"), ("segment_bytes", "10")], &[], "events");
    assert_eq!(code, ErrorCode::InvalidConfig);
    assert!(message.contains("segment_bytes"), "{message}");
    let (code, _) = refused(&[("fsync", "never")], &["fsync"], "events");
    assert_eq!(code, ErrorCode::InvalidConfig);
    let (code, _) = refused(&[], &["no_such_key"], "events");
    assert_eq!(code, ErrorCode::InvalidConfig);
    assert_eq!(refused(&[("retention_ms", "1")], &[], "nope").0, ErrorCode::UnknownTopic);
    assert_eq!(refused(&[("retention_ms", "1")], &[], "__consumer_offsets").0, ErrorCode::InvalidTopicName);
    assert_eq!(described_config(&bootstrap, "events"), before, "a refused change leaves every setting as it was");
    assert_one_line_failure(&[&["topic", "alter", "events"][..], &b].concat(), "nothing to change");
    assert_one_line_failure(
        &[&["topic", "alter", "nope", "--retention-ms", "1"][..], &b].concat(),
        "unknown topic \"nope\"",
    );

    // --reset puts a setting back to the broker's default; all of it survives a restart.
    let (ok, _, err) = strand(&[&["topic", "alter", "events", "--reset", "retention_ms"][..], &b].concat(), "");
    assert!(ok, "{err}");
    let altered = described_config(&bootstrap, "events");
    assert_eq!(setting(&altered, "retention_ms"), "604800000");
    assert!(broker.stop());
    let broker = Broker::start(&data, &["--cores", "0,1"]);
    let bootstrap = broker.bootstrap();
    assert_eq!(described_config(&bootstrap, "events"), altered);
    let client = Client::connect(&bootstrap).unwrap();
    for p in 0..2 {
        assert!(block_on(client.list_offset("events", p, OffsetSpec::Earliest)).unwrap() >= 360);
        assert_eq!(block_on(client.list_offset("events", p, OffsetSpec::Latest)).unwrap(), 1200);
    }
}

/// `strand args` with raw bytes on stdin; returns status, stdout bytes, stderr.
fn strand_bytes(args: &[&str], stdin: &[u8]) -> (bool, Vec<u8>, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_strand"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "strand {args:?} did not finish within a minute");
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().unwrap();
    (output.status.success(), output.stdout, String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn arguments_out_of_range_are_named_and_records_are_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--cores", "0"]);
    let bootstrap = broker.bootstrap();
    let b = ["--bootstrap", bootstrap.as_str()];

    let (ok, out, err) = strand(&[&["topic", "create", "one", "--partitions", "1"][..], &b].concat(), "");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "created topic one with 1 partition");

    // Records are bytes: a line that is not UTF-8 is sent as it is, with the rest.
    let input = b"plain\nnot \xff\xfe utf-8\nlast\n";
    let (ok, _, err) = strand_bytes(&[&["produce", "one"][..], &b].concat(), input);
    assert!(ok, "{err}");
    assert!(err.contains("produced 3 records"), "{err}");
    let (ok, out, err) = strand_bytes(&[&["consume", "one"][..], &b].concat(), b"");
    assert!(ok, "{err}");
    assert_eq!(out, input.to_vec());

    // --count 0 prints nothing.
    let (ok, out, err) = strand(&[&["consume", "one", "--count", "0"][..], &b].concat(), "");
    assert!(ok, "{err}");
    assert_eq!(out, "");

    // Negative numbers and a bootstrap without a port: a range error naming the flag.
    for (args, expected) in [
        (&["consume", "one", "--count", "-1"][..], "negative"),
        (&["consume", "one", "--partition", "-1"][..], "negative"),
        (&["topic", "create", "neg", "--partitions", "-3"][..], "negative"),
        (&["topic", "create", "neg", "--partitions", "1", "--retention-ms", "-5"][..], "-1 (no limit)"),
        (&["topic", "alter", "one", "--config", "retention_ms=-5"][..], "retention_ms = \"-5\": must be -1"),
    ] {
        let (ok, _, err) = strand(&[args, &b].concat(), "");
        assert!(!ok, "{args:?} succeeded");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(!err.contains("unexpected argument"), "{args:?}: {err}");
    }
    let (ok, _, err) = strand(&["topic", "list", "--bootstrap", "127.0.0.1"], "");
    assert!(!ok);
    assert!(err.contains("has no port"), "{err}");

    // A line larger than the topic's batch limit is named, with the key to raise.
    let big = format!("small\n{}\n", "x".repeat(2 << 20));
    let (ok, _, err) = strand(&[&["produce", "one"][..], &b].concat(), &big);
    assert!(!ok);
    assert!(err.contains("line 2") && err.contains("batch_bytes_max (1048588 bytes)"), "{err}");
    assert!(err.contains("the 1 lines before it were sent"), "{err}");

    // Help describes the positional topic and every flag.
    for command in ["produce", "consume"] {
        let (ok, out, _) = strand(&[command, "-h"], "");
        assert!(ok);
        let lines: Vec<&str> = out.lines().collect();
        let is_item = |line: &str| line.trim_start().starts_with('-') || line.trim_start().starts_with('<');
        for (i, line) in lines.iter().enumerate().filter(|(_, line)| is_item(line)) {
            // Described on the same line, or (when clap wraps) on the next.
            // A default or a list of values alone is no description.
            let text = |part: &str| !part.trim().is_empty() && !part.trim().starts_with('[');
            let same_line = line.trim().split("  ").skip(1).any(text);
            let next_line =
                lines.get(i + 1).is_some_and(|next| text(next) && !is_item(next) && next.starts_with("   "));
            assert!(same_line || next_line, "{command} -h leaves {:?} undescribed:\n{out}", line.trim());
        }
    }

    // A core the host does not have is named; --admin-port sets the admin port.
    let cores = std::thread::available_parallelism().unwrap().get();
    let missing = (cores + 5).to_string();
    let data = dir.path().join("other");
    let (ok, _, err) = strand(&["serve", "--data-dir", data.to_str().unwrap(), "--port", "0", "--cores", &missing], "");
    assert!(!ok);
    assert!(err.contains(&format!("core {missing}")) && err.contains("not available"), "{err}");
    assert!(!err.contains("memlock"), "{err}");
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let second = Broker::start(&data, &["--cores", "0", "--admin-port", &free.to_string()]);
    assert_eq!(second.admin.as_deref(), Some(format!("127.0.0.1:{free}").as_str()));
}
