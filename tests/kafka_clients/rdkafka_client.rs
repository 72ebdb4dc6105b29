//! The `rdkafka` crate (librdkafka built from source), unchanged, driven by
//! tests/kafka_matrix.rs as the other clients' scripts are: the test binary runs itself
//! again as `--exact rdkafka_client::child --ignored` with `STRAND_RDKAFKA_ARGS` (a
//! JSON array: the mode and its arguments), and the child prints one JSON object a
//! line, as `with_kafka_python.py` does:
//!
//! - `member BOOTSTRAP GROUP TOPIC`: one group member (round robin) printing
//!   {"assigned": [...]}, {"record": [partition, offset, key, value]} before each
//!   synchronous commit, {"error": text}, and {"closed": true} after SIGTERM;
//! - `idempotent BOOTSTRAP TOPIC COUNT`: an idempotent producer sending COUNT records to
//!   partition 0 at about 2,500 a second; prints {"delivered": n, "errors": [...]};
//! - `admin BOOTSTRAP TOPIC GROUP`: the admin API over a topic's life; prints what the
//!   broker answered, errors as Kafka's codes;
//! - `cross BOOTSTRAP IN OUT COUNT`: reads COUNT records of IN partition 0 and writes them
//!   again to OUT partition 0; prints the records read, bytes in hex.

use rdkafka::admin::TopicReplication;
use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use strand_client::block_on;

/// The variable that makes `child` a client, and names its mode and arguments.
pub const ARGS: &str = "STRAND_RDKAFKA_ARGS";

/// The command that runs this file's client with `mode` and `args`.
pub fn command(mode: &str, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command.args(["--exact", "rdkafka_client::child", "--ignored", "--nocapture", "--test-threads", "1"]);
    let words: Vec<&str> = std::iter::once(mode).chain(args.iter().copied()).collect();
    command.env(ARGS, serde_json::to_string(&words).unwrap());
    command
}

#[test]
#[ignore = "a client run by tests/kafka_matrix.rs in a process of its own"]
fn child() {
    let Ok(words) = std::env::var(ARGS) else {
        eprintln!("rdkafka_client::child only runs as a client of tests/kafka_matrix.rs");
        return;
    };
    let words: Vec<String> = serde_json::from_str(&words).unwrap();
    // The harness has printed the test's name without a line end: the client's lines
    // start on a line of their own.
    println!();
    let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    match (words[0].as_str(), args.as_slice()) {
        ("member", [bootstrap, group, topic]) => member(bootstrap, group, topic),
        ("idempotent", [bootstrap, topic, count]) => idempotent(bootstrap, topic, count.parse().unwrap()),
        ("admin", [bootstrap, topic, group]) => admin(bootstrap, topic, group),
        ("cross", [bootstrap, source, target, count]) => cross(bootstrap, source, target, count.parse().unwrap()),
        (mode, _) => panic!("unknown mode {mode} or its arguments {args:?}"),
    }
}

fn say(what: Value) {
    println!("{what}");
}

fn config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config
}

static STOPPING: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigterm(_: libc::c_int) {
    STOPPING.store(true, Ordering::SeqCst);
}

fn member(bootstrap: &str, group: &str, topic: &str) {
    // SAFETY: the handler only stores to an atomic.
    unsafe { libc::signal(libc::SIGTERM, on_sigterm as extern "C" fn(libc::c_int) as libc::sighandler_t) };
    let consumer: BaseConsumer = config(bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("partition.assignment.strategy", "roundrobin")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut reported: Option<Vec<i32>> = None;
    while !STOPPING.load(Ordering::SeqCst) {
        let polled = consumer.poll(Duration::from_millis(200));
        let mut assigned: Vec<i32> = consumer.assignment().unwrap().elements().iter().map(|e| e.partition()).collect();
        assigned.sort_unstable();
        if reported.as_ref() != Some(&assigned) {
            say(json!({ "assigned": assigned }));
            reported = Some(assigned);
        }
        let message = match polled {
            None => continue,
            Some(Err(error)) => {
                say(json!({ "error": error.to_string() }));
                continue;
            }
            Some(Ok(message)) => message,
        };
        let text = |bytes: Option<&[u8]>| String::from_utf8_lossy(bytes.unwrap_or_default()).into_owned();
        let (partition, offset) = (message.partition(), message.offset());
        say(json!({ "record": [partition, offset, text(message.key()), text(message.payload())] }));
        let mut commit = TopicPartitionList::new();
        commit.add_partition_offset(topic, partition, Offset::Offset(offset + 1)).unwrap();
        if let Err(error) = consumer.commit(&commit, CommitMode::Sync) {
            // Read again from here, or by the partition's next owner.
            say(json!({ "error": error.to_string() }));
            let _ = consumer.seek(topic, partition, Offset::Offset(offset), Duration::from_secs(5));
        }
    }
    // Dropping the consumer closes it: it leaves the group.
    drop(consumer);
    say(json!({ "closed": true }));
}

/// Counts deliveries and keeps the first errors.
#[derive(Default)]
struct Deliveries {
    delivered: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::SeqCst);
            }
            Err((error, _)) => {
                let mut errors = self.errors.lock().unwrap();
                if errors.len() < 10 {
                    errors.push(error.to_string());
                }
            }
        }
    }
}

/// Sends `record` as `make` makes it, waiting while the local queue is full.
fn send(producer: &ThreadedProducer<Deliveries>, mut record: BaseRecord<'_, [u8], [u8], ()>) {
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err((error, _)) => panic!("cannot queue a record: {error}"),
        }
    }
}

fn idempotent(bootstrap: &str, topic: &str, count: u64) {
    let producer: ThreadedProducer<Deliveries> = config(bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "120000")
        .set("reconnect.backoff.max.ms", "500")
        .create_with_context(Deliveries::default())
        .unwrap();
    for i in 0..count {
        let value = format!("value-{i}");
        send(&producer, BaseRecord::to(topic).payload(value.as_bytes()).partition(0));
        if i % 50 == 49 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    producer.flush(Duration::from_secs(120)).unwrap();
    let context = producer.context();
    say(json!({
        "delivered": context.delivered.load(Ordering::SeqCst),
        "errors": *context.errors.lock().unwrap(),
    }));
}

/// The Kafka error code of a topic's result (0 on success).
fn code<T>(result: &[Result<T, (T, rdkafka::types::RDKafkaErrorCode)>]) -> i32 {
    match &result[0] {
        Ok(_) => 0,
        Err((_, code)) => *code as i32,
    }
}

fn configs(admin: &AdminClient<DefaultClientContext>, topic: &str) -> BTreeMap<String, Option<String>> {
    let described = block_on(admin.describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new())).unwrap();
    let resource = described.into_iter().next().unwrap().unwrap();
    resource.entries.into_iter().map(|entry| (entry.name, entry.value)).collect()
}

fn admin(bootstrap: &str, topic: &str, group: &str) {
    let admin: AdminClient<DefaultClientContext> = config(bootstrap).create().unwrap();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let mut out = serde_json::Map::new();
    let create = |name: &str, partitions: i32, replication: i32, retention: Option<&str>| {
        let mut new = NewTopic::new(name, partitions, TopicReplication::Fixed(replication));
        if let Some(retention) = retention {
            new = new.set("retention.ms", retention);
        }
        code(&block_on(admin.create_topics([&new], &options)).unwrap())
    };
    out.insert("created".into(), json!(create(topic, 3, 1, Some("3600000"))));
    out.insert("again".into(), json!(create(topic, 3, 1, None)));
    out.insert("replicated".into(), json!(create(&format!("{topic}-replicated"), 1, 3, None)));
    out.insert("created_configs".into(), json!(configs(&admin, topic)));
    let alter = AlterConfig::new(ResourceSpecifier::Topic(topic)).set("retention.ms", "7200000");
    let altered = block_on(admin.alter_configs([&alter], &options)).unwrap();
    out.insert("altered".into(), json!(if altered[0].is_ok() { 0 } else { -1 }));
    let grow =
        |count: usize| code(&block_on(admin.create_partitions([&NewPartitions::new(topic, count)], &options)).unwrap());
    out.insert("grown".into(), json!(grow(6)));
    out.insert("shrunk".into(), json!(grow(2)));
    out.insert("configs".into(), json!(configs(&admin, topic)));
    let metadata = admin.inner().fetch_metadata(Some(topic), Duration::from_secs(30)).unwrap();
    out.insert("partitions".into(), json!(metadata.topics()[0].partitions().len()));

    // Records: ten at known times, by an idempotent producer, then the first four deleted.
    let producer: ThreadedProducer<Deliveries> =
        config(bootstrap).set("enable.idempotence", "true").create_with_context(Deliveries::default()).unwrap();
    for i in 0..10i64 {
        let value = format!("r{i}");
        let record = BaseRecord::to(topic).payload(value.as_bytes()).partition(0).timestamp(1_000 + (i * 7) % 10);
        send(&producer, record);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    assert_eq!(producer.context().delivered.load(Ordering::SeqCst), 10);
    drop(producer);
    let mut before = TopicPartitionList::new();
    before.add_partition_offset(topic, 0, Offset::Offset(4)).unwrap();
    let deleted = block_on(admin.delete_records(&before, &options)).unwrap();
    let low = deleted.find_partition(topic, 0).and_then(|e| e.offset().to_raw());
    out.insert("low_watermark".into(), json!(low));
    let consumer: BaseConsumer = config(bootstrap).set("group.id", group).create().unwrap();
    let (earliest, _) = consumer.fetch_watermarks(topic, 0, Duration::from_secs(30)).unwrap();
    out.insert("earliest".into(), json!(earliest));
    let mut at = TopicPartitionList::new();
    at.add_partition_offset(topic, 0, Offset::Offset(1008)).unwrap();
    let found = consumer.offsets_for_times(at, Duration::from_secs(30)).unwrap();
    out.insert("at_1008".into(), json!(found.find_partition(topic, 0).and_then(|e| e.offset().to_raw())));

    // A group's offset committed, read back, and the group deleted.
    let mut commit = TopicPartitionList::new();
    commit.add_partition_offset(topic, 0, Offset::Offset(6)).unwrap();
    consumer.commit(&commit, CommitMode::Sync).unwrap();
    let mut asked = TopicPartitionList::new();
    asked.add_partition(topic, 0);
    let committed = consumer.committed_offsets(asked, Duration::from_secs(30)).unwrap();
    out.insert("committed".into(), json!(committed.find_partition(topic, 0).and_then(|e| e.offset().to_raw())));
    drop(consumer);
    let groups = block_on(admin.delete_groups(&[group], &options)).unwrap();
    out.insert("group_deleted".into(), json!(code(&groups)));

    let delete = || code(&block_on(admin.delete_topics(&[topic], &options)).unwrap());
    out.insert("deleted".into(), json!(delete()));
    out.insert("deleted_again".into(), json!(delete()));
    let all = admin.inner().fetch_metadata(None, Duration::from_secs(30)).unwrap();
    out.insert("listed".into(), json!(all.topics().iter().any(|t| t.name() == topic)));
    say(Value::Object(out));
}

fn cross(bootstrap: &str, source: &str, target: &str, count: usize) {
    let consumer: BaseConsumer = config(bootstrap).set("group.id", "rdkafka-cross").create().unwrap();
    let mut assigned = TopicPartitionList::new();
    assigned.add_partition_offset(source, 0, Offset::Beginning).unwrap();
    consumer.assign(&assigned).unwrap();
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    type Read = (Option<Vec<u8>>, Option<Vec<u8>>, Vec<(String, Option<Vec<u8>>)>, i64);
    let mut read: Vec<Read> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while read.len() < count && std::time::Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else { continue };
        let message = message.unwrap();
        let headers = message.headers().map_or_else(Vec::new, |headers| {
            headers.iter().map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec))).collect()
        });
        let timestamp = message.timestamp().to_millis().unwrap();
        read.push((message.key().map(<[u8]>::to_vec), message.payload().map(<[u8]>::to_vec), headers, timestamp));
    }
    drop(consumer);
    let producer: ThreadedProducer<Deliveries> =
        config(bootstrap).set("acks", "all").create_with_context(Deliveries::default()).unwrap();
    for (key, value, headers, timestamp) in &read {
        let mut owned = OwnedHeaders::new();
        for (name, value) in headers {
            owned = owned.insert(Header { key: name, value: value.as_deref() });
        }
        let mut record = BaseRecord::to(target).partition(0).timestamp(*timestamp).headers(owned);
        if let Some(key) = key {
            record = record.key(key.as_slice());
        }
        if let Some(value) = value {
            record = record.payload(value.as_slice());
        }
        send(&producer, record);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    assert_eq!(producer.context().delivered.load(Ordering::SeqCst), read.len() as u64);
    let read: Vec<Value> = read
        .iter()
        .map(|(key, value, headers, timestamp)| {
            let headers: Vec<Value> = headers.iter().map(|(k, v)| json!([k, v.as_deref().map(hex)])).collect();
            json!([key.as_deref().map(hex), value.as_deref().map(hex), headers, timestamp])
        })
        .collect();
    say(json!({ "read": read }));
}
