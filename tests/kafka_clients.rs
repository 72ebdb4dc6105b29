//! Real Kafka clients, unchanged, against the real binary: confluent-kafka
//! (librdkafka inside) producing with every codec and consuming in groups of the
//! classic protocol, a member killed and its partitions taken over, committed offsets
//! surviving a broker restart. The clients run from the virtual environment
//! `scripts/test` creates (`target/py-venv`, or `STRAND_TEST_VENV`); the scripts are
//! in `tests/kafka_clients/`.

mod common;

use common::clients::*;
use common::{wait_for, Broker};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::{Command, Stdio};
use std::time::Duration;
use strand_client::{block_on, partition_for_key, Client};

/// confluent-kafka's producer with every codec it has, and a group member reading
/// all 10,000 records back: each once, in order per key, each key in the partition
/// Kafka's partitioner chooses.
#[test]
fn confluent_kafka_produces_with_every_codec_and_a_group_reads_every_record_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]);
    block_on(Client::connect(&broker.bootstrap()).unwrap().create_topic("orders", 12, &[])).unwrap();
    let bootstrap = broker.kafka_bootstrap();
    for (i, codec) in ["none", "gzip", "snappy", "lz4", "zstd"].into_iter().enumerate() {
        produce(&bootstrap, "orders", i as u64 * 2000, 2000, codec);
    }
    // A group id as Kafka users write them (a colon, a slash, a space).
    let group = "orders:readers/eu v2";
    let mut member = Member::start(&bootstrap, group, "orders", "range");
    wait_for("all 10,000 records", Duration::from_secs(120), || distinct(&[&member]).len() == 10_000);
    member.stop();
    let ends = consumed_ends(&[&member]);
    assert_eq!(committed(broker.kafka_port.unwrap(), group, "orders", 12), ends, "committed at every end");
    let records = distinct(&[&member]);
    let mut last: HashMap<String, u64> = HashMap::new();
    for record in records.values() {
        assert_eq!(record.partition, partition_for_key(record.key.as_bytes(), 12), "{record:?}");
        let seq: u64 = record.value.trim_start_matches("value-").parse().unwrap();
        if let Some(previous) = last.insert(record.key.clone(), seq) {
            assert!(previous < seq, "{}: {previous} before {seq}", record.key);
        }
    }
    assert_eq!(member.records().len(), 10_000, "none read twice");
}

/// Three members share 12 partitions (cooperative-sticky, incremental rebalances);
/// one is killed and the two others take its partitions over once its session ends;
/// every record is consumed. The commits survive a broker restart: two new members
/// (range) resume from them and read only what came after.
#[test]
fn a_group_of_three_survives_a_killed_member_and_resumes_from_its_commits_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (port, kafka_port) = common::free_ports_with_kafka();
    let mut broker = Broker::start_on_port(&data, port, &["--kafka-port", &kafka_port]);
    block_on(Client::connect(&broker.bootstrap()).unwrap().create_topic("work", 12, &[])).unwrap();
    let bootstrap = broker.kafka_bootstrap();
    produce(&bootstrap, "work", 0, 6000, "lz4");

    let mut members: Vec<Member> =
        (0..3).map(|_| Member::start(&bootstrap, "workers", "work", "cooperative-sticky")).collect();
    wait_for("three members with four partitions each", Duration::from_secs(60), || {
        members.iter().all(|m| m.assigned().len() == 4) && union(&members.iter().collect::<Vec<_>>()).len() == 12
    });
    wait_for("each member to consume", Duration::from_secs(60), || members.iter().all(|m| !m.records().is_empty()));
    // The group as Kafka's admin API shows it: three members, four partitions each.
    let groups = admin(&bootstrap, "groups", "workers");
    assert_eq!(groups["state"], "STABLE", "{groups}");
    assert!(groups["listed"].as_array().unwrap().iter().any(|g| g == "workers"), "{groups}");
    let shares: Vec<usize> =
        groups["members"].as_array().unwrap().iter().map(|m| m.as_array().unwrap().len()).collect();
    assert_eq!(shares, vec![4, 4, 4], "{groups}");
    // Each member's client id and host, as Kafka shows them.
    assert_eq!(groups["hosts"], serde_json::json!(["/127.0.0.1", "/127.0.0.1", "/127.0.0.1"]), "{groups}");
    assert_eq!(groups["client_ids"], serde_json::json!(["rdkafka", "rdkafka", "rdkafka"]), "{groups}");
    kill_first_and_take_over(&mut members, 12);
    wait_for_every_record(&members.iter().collect::<Vec<_>>(), 6000, || {
        format!("committed {:?}", committed(broker.kafka_port.unwrap(), "workers", "work", 12))
    });
    members[1].stop();
    members[2].stop();
    let before = committed(broker.kafka_port.unwrap(), "workers", "work", 12);
    let ends = consumed_ends(&members.iter().collect::<Vec<_>>());
    assert_eq!(before, ends, "every partition committed up to its end");

    assert!(broker.stop(), "the broker stops cleanly");
    let broker = Broker::start_on_port(&data, port, &["--kafka-port", &kafka_port]);
    assert_eq!(committed(broker.kafka_port.unwrap(), "workers", "work", 12), before, "commits survive the restart");
    produce(&bootstrap, "work", 6000, 1200, "zstd");
    let mut resumed: Vec<Member> = (0..2).map(|_| Member::start(&bootstrap, "workers", "work", "range")).collect();
    let resumed_refs: Vec<&Member> = resumed.iter().collect();
    wait_for("the 1,200 new records", Duration::from_secs(120), || distinct(&resumed_refs).len() == 1200);
    for record in distinct(&resumed_refs).values() {
        assert!(record.offset >= before[&record.partition], "{record:?} was read again although committed");
        let seq: u64 = value_seq(record);
        assert!(seq >= 6000, "{record:?}");
    }
    // DeleteGroups: refused while the group has members; then its commits are gone,
    // also after a crash and restart (the tombstones are replayed).
    assert_eq!(admin(&bootstrap, "delete-group", "workers")["deleted"], "NON_EMPTY_GROUP");
    resumed.iter_mut().for_each(Member::stop);
    wait_for("the group to empty", Duration::from_secs(30), || {
        admin(&bootstrap, "delete-group", "workers")["deleted"] == "ok"
    });
    let forgotten: BTreeMap<u32, i64> = (0..12).map(|p| (p, -1)).collect();
    assert_eq!(committed(broker.kafka_port.unwrap(), "workers", "work", 12), forgotten);
    let mut broker = broker;
    broker.kill();
    let broker = Broker::start_on_port(&data, port, &["--kafka-port", &kafka_port]);
    assert_eq!(committed(broker.kafka_port.unwrap(), "workers", "work", 12), forgotten, "after a restart too");
}

/// confluent-kafka's AdminClient creates, describes, alters, grows and deletes a
/// topic with Kafka's config names; the native CLI sees the same topic under
/// Strand's names; what cannot be done is refused with Kafka's error for it.
#[test]
fn confluent_kafka_admin_creates_alters_and_deletes_topics_the_native_side_sees() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let bootstrap = broker.kafka_bootstrap();
    let created = admin(&bootstrap, "create", "ledger");
    assert_eq!(created["created"], "ok", "{created}");
    assert_eq!(created["again"], "TOPIC_ALREADY_EXISTS");
    assert_eq!(created["replicated"], "INVALID_REPLICATION_FACTOR");
    assert_eq!(created["unknown_config"], "INVALID_CONFIG");
    assert_eq!(
        (created["partitions"].as_u64(), created["configs"]["retention.ms"].as_str()),
        (Some(3), Some("3600000"))
    );
    assert_eq!(created["configs"]["cleanup.policy"], "delete");
    let altered = admin(&bootstrap, "alter", "ledger");
    assert_eq!((altered["altered"].as_str(), altered["grown"].as_str()), (Some("ok"), Some("ok")), "{altered}");
    assert_eq!(altered["shrunk"], "INVALID_PARTITIONS");
    assert_eq!(altered["configs"]["max.message.bytes"], "2097152");
    assert_eq!(altered["partitions"], 6);
    let (ok, described, _) = common::strand(&["topic", "describe", "ledger", "--bootstrap", &broker.bootstrap()], "");
    assert!(ok);
    assert!(described.contains("topic ledger: 6 partitions"), "{described}");
    assert!(
        described.contains("retention_ms = 7200000") && described.contains("batch_bytes_max = 2097152"),
        "{described}"
    );
    let records = admin(&bootstrap, "records", "ledger");
    assert_eq!(records["max_timestamp"], serde_json::json!([7, 1009]), "ListOffsets v7+: {records}");
    assert_eq!(records["at_1008"], serde_json::json!([4, 1008]), "the record, inside its batch: {records}");
    assert_eq!((records["low_watermark"].as_i64(), records["earliest"].as_i64()), (Some(4), Some(4)), "{records}");
    assert_eq!(records["beyond"], "OFFSET_OUT_OF_RANGE");
    let deleted = admin(&bootstrap, "delete", "ledger");
    assert_eq!((deleted["deleted"].as_str(), deleted["again"].as_str()), (Some("ok"), Some("UNKNOWN_TOPIC_OR_PART")));
    assert_eq!(deleted["listed"], false);
    let (_, _, stderr) = common::strand(&["topic", "describe", "ledger", "--bootstrap", &broker.bootstrap()], "");
    assert!(stderr.contains("unknown topic"), "{stderr}");
}

/// SCRAM credentials through confluent-kafka's AdminClient (KIP-554): two mechanisms
/// for one user, described with their iterations; Kafka's errors for too few
/// iterations, a credential that does not exist and an unknown user; the credentials
/// surviving a broker restart; a deletion that leaves the other mechanism.
#[test]
fn scram_credentials_are_altered_described_and_kept_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (port, kafka_port) = common::free_ports_with_kafka();
    let mut broker = Broker::start_on_port(&data, port, &["--kafka-port", &kafka_port]);
    let bootstrap = broker.kafka_bootstrap();
    let both = serde_json::json!([["SCRAM_SHA_256", 4096], ["SCRAM_SHA_512", 8192]]);
    let users = admin(&bootstrap, "users", "alice");
    assert_eq!(users["created"], serde_json::json!({"alice": "ok", "other": "ok"}), "{users}");
    assert_eq!(users["too_few"]["weak"], "UNACCEPTABLE_CREDENTIAL", "{users}");
    assert_eq!(users["missing"]["nobody"], "RESOURCE_NOT_FOUND", "{users}");
    assert_eq!(users["unknown"]["nobody"], "RESOURCE_NOT_FOUND", "{users}");
    assert_eq!(users["named"]["alice"], both, "{users}");
    assert_eq!(users["all"]["other"], serde_json::json!([["SCRAM_SHA_256", 4096]]), "{users}");
    assert!(users["all"].get("weak").is_none(), "a refused credential is not kept: {users}");

    broker.kill();
    let broker = Broker::start_on_port(&data, port, &["--kafka-port", &kafka_port]);
    let again = admin(&broker.kafka_bootstrap(), "users-again", "alice");
    assert_eq!(again["named"]["alice"], both, "credentials survive a restart: {again}");
    let deleted = admin(&broker.kafka_bootstrap(), "users-delete", "alice");
    assert_eq!(deleted["deleted"]["alice"], "ok", "{deleted}");
    assert_eq!(deleted["named"]["alice"], serde_json::json!([["SCRAM_SHA_256", 4096]]), "{deleted}");
}

/// An idempotent producer (confluent-kafka, `enable.idempotence`) sending while the
/// broker is killed (SIGKILL) and started again: it resumes its sequence against the
/// state the broker rebuilt from the log, and the partition holds every record
/// exactly once, in the order sent. (That a retry of a stored batch is not stored
/// twice is shown deterministically on the wire, in tests/kafka.rs.)
#[test]
fn an_idempotent_producer_loses_and_doubles_nothing_across_a_broker_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (port, kafka_port) = common::free_ports_with_kafka();
    let mut broker = Broker::start_on_port(&data, port, &["--kafka-port", &kafka_port]);
    block_on(Client::connect(&broker.bootstrap()).unwrap().create_topic("payments", 1, &[])).unwrap();
    let bootstrap = broker.kafka_bootstrap();
    const COUNT: u64 = 20_000;
    let path = script("idempotent.py");
    let mut producer = Command::new(python())
        .args([path.to_str().unwrap(), &bootstrap, "payments", &COUNT.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Some records in, then a crash, then the broker back on the same ports.
    let client = Client::connect(&broker.bootstrap()).unwrap();
    wait_for("the first records", Duration::from_secs(30), || {
        block_on(client.list_offset("payments", 0, strand_client::OffsetSpec::Latest)).unwrap_or(0) > 2000
    });
    drop(client);
    broker.kill();
    std::thread::sleep(Duration::from_millis(500));
    let broker = Broker::start_on_port(&data, port, &["--kafka-port", &kafka_port]);
    let mut summary = String::new();
    std::io::Read::read_to_string(producer.stdout.as_mut().unwrap(), &mut summary).unwrap();
    assert!(producer.wait().unwrap().success());
    let summary: serde_json::Value = serde_json::from_str(summary.trim()).unwrap();
    assert_eq!(summary["delivered"], COUNT, "every record delivered: {summary}");

    let out = common::run_tool(
        "kcat",
        &["-C", "-b", &broker.kafka_bootstrap(), "-t", "payments", "-o", "beginning", "-e", "-q", "-f", "%s\n"],
        "",
    );
    assert!(out.0, "{}", out.2);
    let values: Vec<&str> = out.1.lines().collect();
    let expected: Vec<String> = (0..COUNT).map(|i| format!("value-{i}")).collect();
    let duplicates = values.len() as i64 - COUNT as i64;
    assert!(
        values.iter().copied().eq(expected.iter().map(String::as_str)),
        "{} records stored for {COUNT} sent ({duplicates:+}); the first out of place: {:?}",
        values.len(),
        values.iter().zip(&expected).find(|(v, e)| *v != e)
    );
}

/// The pure-Python clients: kafka-python (whose producer is idempotent by default)
/// and aiokafka each produce 10,000 keyed records, 2,000 with each codec, and read them
/// back in a group: every record once, in order per key, each key in Kafka's
/// partition for it, and the commits at each partition's end.
#[test]
fn kafka_python_and_aiokafka_produce_with_every_codec_and_consume_in_a_group() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let client = Client::connect(&broker.bootstrap()).unwrap();
    for name in ["kafka-python", "aiokafka"] {
        let topic = format!("roundtrip-{name}");
        block_on(client.create_topic(&topic, 4, &[])).unwrap();
        let path = script("roundtrip.py");
        let args = [path.to_str().unwrap(), name, &broker.kafka_bootstrap(), &topic, "roundtrip"];
        let (ok, stdout, stderr) = common::run_tool(python().to_str().unwrap(), &args, "");
        assert!(ok, "{name}: {stderr}");
        let result: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(result["produced"], 10_000, "{name}");
        let mut seen = BTreeSet::new();
        let mut last: HashMap<String, u64> = HashMap::new();
        let mut ends: BTreeMap<u32, i64> = BTreeMap::new();
        for record in result["consumed"].as_array().unwrap() {
            let (partition, offset) = (record[0].as_u64().unwrap() as u32, record[1].as_i64().unwrap());
            let (key, value) = (record[2].as_str().unwrap(), record[3].as_str().unwrap());
            assert!(seen.insert((partition, offset)), "{name}: {partition}/{offset} twice");
            assert_eq!(partition, partition_for_key(key.as_bytes(), 4), "{name}: {key}");
            let seq: u64 = value.trim_start_matches("value-").parse().unwrap();
            if let Some(previous) = last.insert(key.to_string(), seq) {
                assert!(previous < seq, "{name}: {key}: {previous} before {seq}");
            }
            let end = ends.entry(partition).or_insert(0);
            *end = (*end).max(offset + 1);
        }
        assert_eq!(seen.len(), 10_000, "{name}: every record");
        let committed: BTreeMap<u32, i64> = result["committed"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(p, o)| (p.parse().unwrap(), o.as_i64().unwrap()))
            .collect();
        assert_eq!(committed, ends, "{name}: committed at each partition's end");
    }
}

/// kafkajs (Node.js), idempotent, uncompressed and gzip: every record read back once
/// by a group, in order per key, each key in Kafka's partition for it.
#[test]
fn kafkajs_produces_idempotently_and_consumes_in_a_group() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]);
    block_on(Client::connect(&broker.bootstrap()).unwrap().create_topic("js", 4, &[])).unwrap();
    let output = Command::new("node")
        .arg(script("kafkajs.js"))
        .args([&broker.kafka_bootstrap(), "js", "js-readers"])
        .env("NODE_PATH", node_modules())
        .stdin(Stdio::null())
        .output()
        .expect("node (scripts/test installs it)");
    assert!(output.status.success(), "kafkajs: {}", String::from_utf8_lossy(&output.stderr));
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["produced"], 4000);
    let mut seen = BTreeSet::new();
    let mut last: HashMap<String, u64> = HashMap::new();
    for record in result["consumed"].as_array().unwrap() {
        let (partition, offset) = (record[0].as_u64().unwrap() as u32, record[1].as_i64().unwrap());
        let (key, value) = (record[2].as_str().unwrap(), record[3].as_str().unwrap());
        assert!(seen.insert((partition, offset)), "{partition}/{offset} twice");
        assert_eq!(partition, partition_for_key(key.as_bytes(), 4), "{key}");
        let seq: u64 = value.trim_start_matches("value-").parse().unwrap();
        if let Some(previous) = last.insert(key.to_string(), seq) {
            assert!(previous < seq, "{key}: {previous} before {seq}");
        }
    }
    assert_eq!(seen.len(), 4000);
}

/// KIP-848 (confluent-kafka with `group.protocol=consumer`) is served by the same
/// broker-assigned coordinator as the native protocol's groups: a KIP-848 member and
/// a native `strand consume --group` member split one group's partitions, and the
/// KIP-848 member takes them all once the native one leaves. A classic member cannot
/// join that group: INCONSISTENT_GROUP_PROTOCOL, as Kafka refuses a classic member of
/// a consumer group.
#[test]
fn kip848_and_native_members_share_one_group_which_a_classic_member_cannot_join() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]);
    block_on(Client::connect(&broker.bootstrap()).unwrap().create_topic("shared", 6, &[])).unwrap();
    let bootstrap = broker.kafka_bootstrap();
    produce(&bootstrap, "shared", 0, 600, "none");
    let mut kip848 = Member::start(&bootstrap, "mixed", "shared", "consumer-protocol");
    wait_for("the KIP-848 member to own every partition", Duration::from_secs(30), || kip848.assigned().len() == 6);
    let native_args = ["consume", "shared", "--group", "mixed", "--follow", "--bootstrap", &broker.bootstrap()];
    let mut native = common::Running::start(&native_args);
    wait_for("the partitions split between the protocols", Duration::from_secs(30), || kip848.assigned().len() == 3);
    // ConsumerGroupDescribe, as the AdminClient asks it of a KIP-848 group. A member's
    // assignment there is what it owns, so the native member shows its three once its
    // next heartbeat (within a second) has taken them.
    let shares_of = |described: &serde_json::Value| -> Vec<Vec<u64>> {
        described["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_array().unwrap().iter().map(|p| p.as_u64().unwrap()).collect())
            .collect()
    };
    let mut described = serde_json::Value::Null;
    wait_for("the AdminClient to describe three partitions owned by each", Duration::from_secs(30), || {
        described = admin(&bootstrap, "groups", "mixed");
        shares_of(&described).iter().map(Vec::len).collect::<Vec<_>>() == vec![3, 3]
    });
    assert_eq!(described["state"], "STABLE", "{described}");
    let shares = shares_of(&described);
    assert_eq!(shares.concat().into_iter().collect::<BTreeSet<_>>(), (0..6).collect(), "{described}");
    // The KIP-848 member's client id (librdkafka's default) and both hosts; the
    // native protocol carries no client id.
    assert_eq!(described["hosts"], serde_json::json!(["/127.0.0.1", "/127.0.0.1"]), "{described}");
    assert_eq!(described["client_ids"], serde_json::json!(["", "rdkafka"]), "{described}");
    let mut classic = Member::start(&bootstrap, "mixed", "shared", "range");
    wait_for("the classic member refused", Duration::from_secs(30), || {
        classic.errors().iter().any(|e| e.contains("Inconsistent group protocol"))
    });
    assert!(classic.assigned().is_empty(), "{:?}", classic.errors());
    classic.kill();
    native.stop();
    wait_for("the KIP-848 member to take every partition back", Duration::from_secs(30), || {
        kip848.assigned().len() == 6
    });
    wait_for_every_record(&[&kip848], 600 - native.lines.lock().unwrap().len(), String::new);
    kip848.stop();
    assert!(kip848.errors().is_empty(), "{:?}", kip848.errors());
}
