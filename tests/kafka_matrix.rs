//! The same checks for every Kafka client the suite drives besides confluent-kafka
//! (tests/kafka_clients.rs): kafka-python, aiokafka and kafkajs, each unchanged, from
//! the scripts `tests/kafka_clients/with_*`, and the `rdkafka` crate, from
//! `tests/kafka_clients/rdkafka_client.rs` run in a process of its own (this test
//! binary run again). For each client:
//!
//! - a group of three members splitting 12 partitions, one killed and its partitions
//!   taken over, the commits surviving a broker restart and new members resuming from
//!   them;
//! - a topic's life through the client's admin API (create, describe, alter, grow,
//!   delete records, delete), the native CLI seeing the result;
//! - an idempotent producer across a broker killed and started again in the middle of
//!   sending: no duplicate and no gap;
//! - records crossing from the native protocol to the client and back, byte for byte
//!   (keys, values, headers, timestamps).
//!
//! kcat runs the group check here (its balanced consumer); the rest of its share
//! (codecs, partitioner, cross-protocol) is in tests/kafka.rs. It has no admin API. Its producer exits by design once every broker is down, so its
//! library's idempotent producer across a restart is shown through confluent-kafka
//! (tests/kafka_clients.rs) and the rdkafka crate (here).

mod common;
#[path = "kafka_clients/rdkafka_client.rs"]
mod rdkafka_client;

use common::clients::*;
use common::{wait_for, Broker};
use std::process::{Command, Stdio};
use std::time::Duration;
use strand_client::{block_on, Client, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, Seek};

/// A client and how to run its script.
#[derive(Clone, Copy, Debug)]
enum Kind {
    KafkaPython,
    Aiokafka,
    Kafkajs,
    Rdkafka,
    /// Its group member only: kcat has no admin API, and its producer exits by design
    /// once every broker is down.
    Kcat,
}

impl Kind {
    fn command(self, mode: &str, args: &[&str]) -> Command {
        let mut command = match self {
            Kind::KafkaPython | Kind::Aiokafka => {
                let name = if matches!(self, Kind::KafkaPython) { "with_kafka_python.py" } else { "with_aiokafka.py" };
                let mut command = Command::new(python());
                command.arg(script(name));
                command
            }
            Kind::Kafkajs => {
                let mut command = Command::new("node");
                command.arg(script("with_kafkajs.js")).env("NODE_PATH", node_modules());
                command
            }
            Kind::Rdkafka => return rdkafka_client::command(mode, args),
            Kind::Kcat => unreachable!("kcat runs no script: {mode}"),
        };
        command.arg(mode).args(args);
        command
    }

    /// A group member; kafkajs and the rdkafka client use round robin of their own
    /// accord, the Python clients are asked for it.
    fn member(self, bootstrap: &str, group: &str, topic: &str) -> Member {
        match self {
            Kind::Kafkajs | Kind::Rdkafka => Member::spawn(self.command("member", &[bootstrap, group, topic])),
            Kind::Kcat => Member::kcat(bootstrap, group, topic),
            _ => Member::spawn(self.command("member", &[bootstrap, group, topic, "roundrobin"])),
        }
    }

    /// Runs `mode` to its end; its last JSON line of output.
    fn run(self, mode: &str, args: &[&str]) -> serde_json::Value {
        let output = self.command(mode, args).stdin(Stdio::null()).output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{self:?} {mode}: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));
        last_json(&stdout)
    }
}

/// The last line of `stdout` that is a JSON object (the rdkafka client's test harness
/// prints lines of its own around the client's).
fn last_json(stdout: &str) -> serde_json::Value {
    let line = stdout.lines().rev().find(|line| line.starts_with('{'));
    serde_json::from_str(line.unwrap_or_else(|| panic!("no JSON line in {stdout}"))).unwrap()
}

/// Three members of `kind` share 12 partitions; one is killed (no LeaveGroup) and the
/// two others take its partitions once its session ends; every record is consumed
/// and committed. The commits survive a broker restart, and two new members resume
/// from them, reading only what came after.
fn group_of_three(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (port, kafka_port) = common::free_ports_with_kafka();
    let mut broker = Broker::start_on_port(&data, port, &["--kafka-port", &kafka_port]);
    block_on(Client::connect(&broker.bootstrap()).unwrap().create_topic("work", 12, &[])).unwrap();
    let bootstrap = broker.kafka_bootstrap();
    // gzip and none: the codecs kafkajs reads without a plugin.
    produce(&bootstrap, "work", 0, 3000, "gzip");
    let mut members: Vec<Member> = (0..3).map(|_| kind.member(&bootstrap, "workers", "work")).collect();
    wait_for("three members with four partitions each", Duration::from_secs(90), || {
        members.iter().all(|m| m.assigned().len() == 4) && union(&members.iter().collect::<Vec<_>>()).len() == 12
    });
    wait_for("each member to consume", Duration::from_secs(60), || members.iter().all(|m| !m.records().is_empty()));
    kill_first_and_take_over(&mut members, 12);
    wait_for_every_record(&members.iter().collect::<Vec<_>>(), 3000, || {
        format!("committed {:?}", committed(broker.kafka_port.unwrap(), "workers", "work", 12))
    });
    let ends = consumed_ends(&members.iter().collect::<Vec<_>>());
    // The last commits may trail the last records by a moment.
    wait_for("every partition committed to its end", Duration::from_secs(30), || {
        committed(broker.kafka_port.unwrap(), "workers", "work", 12) == ends
    });
    members[1].stop();
    members[2].stop();

    assert!(broker.stop(), "the broker stops cleanly");
    let broker = Broker::start_on_port(&data, port, &["--kafka-port", &kafka_port]);
    assert_eq!(committed(broker.kafka_port.unwrap(), "workers", "work", 12), ends, "commits survive the restart");
    produce(&bootstrap, "work", 3000, 600, "none");
    let mut resumed: Vec<Member> = (0..2).map(|_| kind.member(&bootstrap, "workers", "work")).collect();
    let resumed_refs: Vec<&Member> = resumed.iter().collect();
    wait_for_every_record(&resumed_refs, 600, String::new);
    for record in distinct(&resumed_refs).values() {
        assert!(record.offset >= ends[&record.partition], "{kind:?}: {record:?} read again although committed");
        assert!(value_seq(record) >= 3000, "{kind:?}: {record:?}");
    }
    resumed.iter_mut().for_each(Member::stop);
}

/// A topic's life through the client's admin API: Kafka's codes for what cannot be
/// done, Kafka's config names, records deleted before an offset and found by time,
/// a group's offsets set and deleted, and the native CLI seeing the topic gone.
fn admin(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let out = kind.run("admin", &[&broker.kafka_bootstrap(), "ledger", "auditors"]);
    let codes = ["created", "again", "replicated", "altered", "grown", "shrunk", "deleted", "deleted_again"]
        .map(|step| out[step].as_i64().unwrap_or_else(|| panic!("{kind:?}: no {step} in {out}")));
    // TOPIC_ALREADY_EXISTS, INVALID_REPLICATION_FACTOR, INVALID_PARTITIONS, UNKNOWN_TOPIC_OR_PARTITION.
    assert_eq!(codes, [0, 36, 38, 0, 0, 37, 0, 3], "{kind:?}: {out}");
    assert_eq!(out["created_configs"]["retention.ms"], "3600000", "{kind:?}: {out}");
    assert_eq!(out["created_configs"]["cleanup.policy"], "delete", "{kind:?}");
    assert_eq!(out["configs"]["retention.ms"], "7200000", "{kind:?}: {out}");
    assert_eq!(out["partitions"], 6, "{kind:?}");
    assert_eq!(out["earliest"], 4, "{kind:?}: records before 4 deleted: {out}");
    assert_eq!(out["listed"], false, "{kind:?}");
    match kind {
        Kind::KafkaPython => {
            assert_eq!(out["low_watermark"], 4);
            assert_eq!(out["max_timestamp"], serde_json::json!([7, 1009]), "the newest record: {out}");
            assert_eq!(out["producers"], serde_json::json!([[0, 9]]), "one idempotent producer: {out}");
            assert_eq!(out["offset_deleted"], 0);
            assert_eq!(out["offsets_left"], serde_json::json!({"1": 0}), "only partition 0's offset deleted: {out}");
        }
        Kind::Aiokafka => {
            assert_eq!(out["low_watermark"], 4);
            assert_eq!(out["at_1008"], serde_json::json!([4, 1008]), "{out}");
        }
        Kind::Kafkajs => {
            assert_eq!(out["at_1008"], 4, "{out}");
            assert_eq!((out["committed"].as_i64(), out["group_deleted"].as_i64()), (Some(6), Some(0)), "{out}");
        }
        Kind::Kcat => unreachable!("kcat has no admin API"),
        Kind::Rdkafka => {
            assert_eq!((out["low_watermark"].as_i64(), out["at_1008"].as_i64()), (Some(4), Some(4)), "{out}");
            assert_eq!((out["committed"].as_i64(), out["group_deleted"].as_i64()), (Some(6), Some(0)), "{out}");
        }
    }
    let (_, _, stderr) = common::strand(&["topic", "describe", "ledger", "--bootstrap", &broker.bootstrap()], "");
    assert!(stderr.contains("unknown topic"), "{kind:?}: the native side sees the topic gone: {stderr}");
}

/// The records of partition 0 of `topic`, read with the native client from `from`.
fn native_records(broker: &Broker, topic: &str, count: usize) -> Vec<strand_client::ConsumerRecord> {
    let mut consumer = Consumer::new(Client::connect(&broker.bootstrap()).unwrap(), ConsumerConfig::default());
    block_on(consumer.assign(topic, Some(&[0]), Seek::Offset(0))).unwrap();
    let mut records = Vec::new();
    wait_for("the records", Duration::from_secs(30), || {
        records.extend(consumer.poll(Duration::from_millis(200)).unwrap());
        records.len() >= count
    });
    records
}

/// A record as the native producer writes it: key, value, headers, timestamp.
type Original = (Option<Vec<u8>>, Vec<u8>, Vec<(String, Vec<u8>)>, i64);

/// The records a native producer writes: binary values, UTF-8 header keys with binary
/// values, some without a key, each with its own timestamp.
fn native_originals(i: u64) -> Original {
    let key = (i % 5 != 0).then(|| format!("acct-{}", i % 7).into_bytes());
    let value: Vec<u8> = (0..32).map(|b| (b as u64 * 37 + i) as u8).collect();
    let headers = vec![("trace".to_string(), vec![0xff, 0x00, i as u8]), ("origin".to_string(), b"native".to_vec())];
    (key, value, headers, 1_700_000_000_000 + i as i64 * 1000)
}

/// Records produced natively are read by the client with their keys, values, headers
/// and timestamps; what the client writes back the native consumer reads identical.
fn cross_protocol(kind: Kind) {
    const COUNT: u64 = 50;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let client = Client::connect(&broker.bootstrap()).unwrap();
    for topic in ["from-native", "from-client"] {
        block_on(client.create_topic(topic, 1, &[])).unwrap();
    }
    let producer = Producer::new(client, ProducerConfig::default());
    let originals: Vec<_> = (0..COUNT).map(native_originals).collect();
    for (key, value, headers, timestamp) in &originals {
        let headers: Vec<(&[u8], Option<&[u8]>)> =
            headers.iter().map(|(k, v)| (k.as_bytes(), Some(v.as_slice()))).collect();
        let mut record = ProducerRecord::new("from-native", value).headers(&headers).timestamp_ms(*timestamp);
        if let Some(key) = key {
            record = record.key(key);
        }
        producer.send(record).unwrap().wait().unwrap();
    }
    drop(producer);
    let out = kind.run("cross", &[&broker.kafka_bootstrap(), "from-native", "from-client", &COUNT.to_string()]);
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let expected: Vec<serde_json::Value> = originals
        .iter()
        .map(|(key, value, headers, timestamp)| {
            let headers: Vec<serde_json::Value> = headers.iter().map(|(k, v)| serde_json::json!([k, hex(v)])).collect();
            serde_json::json!([key.as_deref().map(hex), hex(value), headers, timestamp])
        })
        .collect();
    assert_eq!(out["read"].as_array().unwrap(), &expected, "{kind:?} read what the native producer wrote");
    let back = native_records(&broker, "from-client", COUNT as usize);
    for (record, (key, value, headers, timestamp)) in back.iter().zip(&originals) {
        assert_eq!(record.key.as_deref(), key.as_deref(), "{kind:?}: {record:?}");
        assert_eq!(record.value.as_deref(), Some(value.as_slice()), "{kind:?}");
        assert_eq!(record.timestamp_ms, *timestamp, "{kind:?}");
        let got: Vec<(&[u8], Option<&[u8]>)> = record.headers.iter().map(|(k, v)| (&k[..], v.as_deref())).collect();
        let want: Vec<(&[u8], Option<&[u8]>)> =
            headers.iter().map(|(k, v)| (k.as_bytes(), Some(v.as_slice()))).collect();
        assert_eq!(got, want, "{kind:?}");
    }
    assert_eq!(back.len(), COUNT as usize, "{kind:?}: nothing more");
}

/// The values of partition 0 of `topic`, in order, read with kcat.
fn stored_values(bootstrap: &str, topic: &str) -> Vec<String> {
    let args = ["-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%s\n"];
    let (ok, stdout, stderr) = common::run_tool("kcat", &args, "");
    assert!(ok, "{stderr}");
    stdout.lines().map(str::to_string).collect()
}

/// Asserts the partition holds `value-0` to `value-{count-1}`, once each, in order.
fn assert_exactly_once(values: &[String], count: u64, who: &str) {
    let expected: Vec<String> = (0..count).map(|i| format!("value-{i}")).collect();
    assert!(
        values == expected.as_slice(),
        "{who}: {} records stored for {count} sent; the first out of place: {:?}",
        values.len(),
        values.iter().zip(&expected).find(|(v, e)| v != e)
    );
}

/// Starts the broker again on its ports once it has stored `at_least` records of
/// partition 0 of `topic`, killed (SIGKILL) in the middle of a producer's sending.
fn kill_and_restart_after(broker: &mut Broker, topic: &str, at_least: i64, port: u16, kafka_port: &str) -> Broker {
    let client = Client::connect(&broker.bootstrap()).unwrap();
    wait_for("the first records", Duration::from_secs(60), || {
        block_on(client.list_offset(topic, 0, strand_client::OffsetSpec::Latest)).unwrap_or(0) > at_least
    });
    drop(client);
    broker.kill();
    std::thread::sleep(Duration::from_millis(500));
    let data = broker.data_dir.clone();
    Broker::start_on_port(&data, port, &["--kafka-port", kafka_port])
}

/// The client's idempotent producer sends while the broker is killed and started
/// again, twice: every record is stored once, in the order sent.
fn idempotent_across_a_restart(kind: Kind) {
    const COUNT: u64 = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (port, kafka_port) = common::free_ports_with_kafka();
    let mut broker = Broker::start_on_port(&data, port, &["--kafka-port", &kafka_port]);
    block_on(Client::connect(&broker.bootstrap()).unwrap().create_topic("payments", 1, &[])).unwrap();
    let bootstrap = broker.kafka_bootstrap();
    let mut producer = kind
        .command("idempotent", &[&bootstrap, "payments", &COUNT.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // Killed twice: each kill is a chance to catch batches stored but not yet
    // acknowledged, which a producer without idempotence would store twice.
    let mut broker = kill_and_restart_after(&mut broker, "payments", 1000, port, &kafka_port);
    let broker = kill_and_restart_after(&mut broker, "payments", 5000, port, &kafka_port);
    let mut summary = String::new();
    std::io::Read::read_to_string(producer.stdout.as_mut().unwrap(), &mut summary).unwrap();
    assert!(producer.wait().unwrap().success(), "{kind:?}: {summary}");
    let summary = last_json(&summary);
    assert_eq!(summary["delivered"], COUNT, "{kind:?}: every record delivered: {summary}");
    assert_exactly_once(&stored_values(&broker.kafka_bootstrap(), "payments"), COUNT, &format!("{kind:?}"));
}

macro_rules! for_each_client {
    ($($name:ident: $kind:expr,)*) => {
        $(
            mod $name {
                use super::*;

                #[test]
                fn group_of_three_survives_a_killed_member_and_resumes_after_a_restart() {
                    group_of_three($kind);
                }

                #[test]
                fn admin_api_runs_a_topics_life() {
                    admin($kind);
                }

                #[test]
                fn idempotent_producer_stores_each_record_once_across_a_restart() {
                    idempotent_across_a_restart($kind);
                }

                #[test]
                fn records_cross_to_and_from_the_native_protocol_byte_for_byte() {
                    cross_protocol($kind);
                }
            }
        )*
    };
}

for_each_client! {
    kafka_python: Kind::KafkaPython,
    aiokafka: Kind::Aiokafka,
    kafkajs: Kind::Kafkajs,
    rdkafka: Kind::Rdkafka,
}

/// kcat's share: its balanced consumer (`kcat -G`) in the same group check; its codecs,
/// partitioner and cross-protocol records are in tests/kafka.rs.
#[test]
fn kcat_group_of_three_survives_a_killed_member_and_resumes_after_a_restart() {
    group_of_three(Kind::Kcat);
}
