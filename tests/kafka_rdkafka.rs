//! The `rdkafka` crate (librdkafka built from source, `cmake-build`), as a Rust service
//! uses it, unchanged, against the real binary: its AdminClient creates, describes,
//! alters and deletes a topic; its idempotent producer sends 10,000 keyed records with
//! every codec librdkafka has; a group consumer reads them back, each once, in order per
//! key, in the partition Kafka's partitioner chooses, and commits at each partition's
//! end.

mod common;

use common::Broker;
use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};
use strand_client::{block_on, partition_for_key};

const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];
const PER_CODEC: usize = 2000;

fn config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config
}

fn topic_config(admin: &AdminClient<DefaultClientContext>, topic: &str, name: &str) -> Option<String> {
    let described = block_on(admin.describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new())).unwrap();
    let resource = described.into_iter().next().unwrap().unwrap();
    resource.get(name).and_then(|entry| entry.value.clone())
}

#[test]
fn rdkafka_administers_produces_with_every_codec_and_consumes_in_a_group() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let bootstrap = broker.kafka_bootstrap();
    // The producer's futures wait on tokio's timer when its queue is full.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let admin: AdminClient<DefaultClientContext> = config(&bootstrap).create().unwrap();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let new = NewTopic::new("services", 4, TopicReplication::Fixed(1)).set("retention.ms", "86400000");
    let created = block_on(admin.create_topics([&new], &options)).unwrap();
    assert_eq!(created, vec![Ok("services".to_string())]);
    assert_eq!(topic_config(&admin, "services", "retention.ms").as_deref(), Some("86400000"));
    let alter = AlterConfig::new(ResourceSpecifier::Topic("services")).set("retention.ms", "172800000");
    let altered = block_on(admin.alter_configs([&alter], &options)).unwrap();
    assert!(altered[0].is_ok(), "{altered:?}");
    assert_eq!(topic_config(&admin, "services", "retention.ms").as_deref(), Some("172800000"));

    for (c, codec) in CODECS.iter().enumerate() {
        let producer: FutureProducer = config(&bootstrap)
            .set("compression.codec", *codec)
            .set("partitioner", "murmur2_random")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create()
            .unwrap();
        let sends: Vec<_> = (c * PER_CODEC..(c + 1) * PER_CODEC)
            .map(|i| {
                let (key, value) = (format!("key-{}", i % 97), format!("value-{i}"));
                let headers = OwnedHeaders::new().insert(Header { key: "codec", value: Some(*codec) });
                let producer = producer.clone();
                async move {
                    let record = FutureRecord::to("services").key(&key).payload(&value).headers(headers);
                    producer.send(record, Duration::from_secs(30)).await
                }
            })
            .collect();
        // All in flight at once, as a service sends them; each delivery checked.
        let delivered = runtime.block_on(async {
            let tasks: Vec<_> = sends.into_iter().map(tokio::spawn).collect();
            let mut delivered = Vec::with_capacity(tasks.len());
            for task in tasks {
                delivered.push(task.await.unwrap());
            }
            delivered
        });
        for outcome in delivered {
            assert!(outcome.is_ok(), "{codec}: {:?}", outcome.err().map(|(error, _)| error));
        }
    }

    let consumer: BaseConsumer = config(&bootstrap)
        .set("group.id", "rust-services")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&["services"]).unwrap();
    let total = CODECS.len() * PER_CODEC;
    let mut seen = HashSet::new();
    let mut last: HashMap<String, u64> = HashMap::new();
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.len() < total {
        assert!(Instant::now() < deadline, "{} of {total} records within 120 s", seen.len());
        let Some(message) = consumer.poll(Duration::from_millis(200)) else { continue };
        let message = message.unwrap();
        let key = std::str::from_utf8(message.key().unwrap()).unwrap().to_string();
        let value = std::str::from_utf8(message.payload().unwrap()).unwrap();
        assert!(seen.insert((message.partition(), message.offset())), "{key} read twice");
        assert_eq!(message.partition() as u32, partition_for_key(key.as_bytes(), 4), "{key}");
        let seq: u64 = value.trim_start_matches("value-").parse().unwrap();
        let codec = CODECS[seq as usize / PER_CODEC];
        let header = message.headers().unwrap().get(0);
        assert_eq!((header.key, header.value), ("codec", Some(codec.as_bytes())), "{value}");
        if let Some(previous) = last.insert(key.clone(), seq) {
            assert!(previous < seq, "{key}: {previous} before {seq}");
        }
        let end = ends.entry(message.partition()).or_insert(0);
        *end = (*end).max(message.offset() + 1);
    }
    consumer.commit_consumer_state(CommitMode::Sync).unwrap();
    let mut asked = TopicPartitionList::new();
    for partition in 0..4 {
        asked.add_partition("services", partition);
    }
    let committed = consumer.committed_offsets(asked, Duration::from_secs(30)).unwrap();
    let committed: BTreeMap<i32, i64> = committed
        .elements()
        .iter()
        .map(|e| (e.partition(), if let Offset::Offset(o) = e.offset() { o } else { -1 }))
        .collect();
    assert_eq!(committed, ends, "committed at each partition's end");
    drop(consumer);

    let deleted = block_on(admin.delete_topics(&["services"], &options)).unwrap();
    assert_eq!(deleted, vec![Ok("services".to_string())]);
}
