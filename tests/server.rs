//! The broker end to end, against the real binary: keyed records from concurrent
//! producers read back in order and exactly once, across a restart; acknowledged
//! durable records survive kill -9; a client sending garbage cannot disturb another.

mod common;

use common::{frame, rss_bytes, send_raw, Broker};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};
use strand_client::{
    block_on, partition_for_key, Acks, Client, Consumer, ConsumerConfig, ConsumerRecord, OffsetSpec, Producer,
    ProducerConfig, ProducerRecord, Seek,
};

const PARTITIONS: u32 = 8;
const PRODUCERS: u64 = 4;
const RECORDS: u64 = 200_000;
const KEYS: u64 = 1_000;

/// Reads every partition of `topic` from the start up to its current end.
fn read_all(bootstrap: &str, topic: &str) -> Vec<ConsumerRecord> {
    let client = Client::connect(bootstrap).unwrap();
    let mut ends = HashMap::new();
    for partition in 0..block_on(client.partition_count(topic)).unwrap() {
        let end = block_on(client.list_offset(topic, partition, OffsetSpec::Latest)).unwrap();
        ends.insert(partition, end as u64);
    }
    let mut consumer = Consumer::new(client, ConsumerConfig::default());
    block_on(consumer.assign(topic, None, Seek::Earliest)).unwrap();
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while consumer.assignment().iter().any(|(_, p, position)| *position < ends[p]) {
        assert!(Instant::now() < deadline, "reading back did not finish in time");
        records.extend(consumer.poll(Duration::from_millis(200)).unwrap());
    }
    records
}

fn value_of(record: &ConsumerRecord) -> (u64, u64) {
    let text = std::str::from_utf8(record.value.as_deref().unwrap()).unwrap();
    let (producer, seq) = text.split_once('-').unwrap();
    (producer.parse().unwrap(), seq.parse().unwrap())
}

/// Every record exactly once, each key in one partition (Kafka's), and each
/// producer's records in the order it sent them within every partition.
fn check(records: &[ConsumerRecord], acked: &HashMap<(u64, u64), (u32, i64)>) {
    assert_eq!(records.len() as u64, RECORDS, "every record read back, none twice");
    let mut seen = HashSet::new();
    let mut key_partition: HashMap<Vec<u8>, u32> = HashMap::new();
    let mut last: BTreeMap<(u32, u64), u64> = BTreeMap::new();
    let mut offsets: BTreeMap<u32, u64> = BTreeMap::new();
    for record in records {
        let (producer, seq) = value_of(record);
        assert!(seen.insert((producer, seq)), "record {producer}-{seq} read twice");
        let key = record.key.as_deref().unwrap().to_vec();
        assert_eq!(record.partition, partition_for_key(&key, PARTITIONS), "Kafka's partitioner");
        let first = *key_partition.entry(key).or_insert(record.partition);
        assert_eq!(first, record.partition, "a key is always in one partition");
        if let Some(previous) = last.insert((record.partition, producer), seq) {
            assert!(previous < seq, "producer {producer}: {seq} after {previous} in partition {}", record.partition);
        }
        if let Some(previous) = offsets.insert(record.partition, record.offset) {
            assert_eq!(record.offset, previous + 1, "offsets are contiguous in partition {}", record.partition);
        }
        let (partition, offset) = acked[&(producer, seq)];
        assert_eq!((record.partition, record.offset as i64), (partition, offset), "where the ack said");
    }
}

/// A broker on a fresh directory with one topic; returns what the test needs.
fn broker_with_topic(topic: &str, partitions: u32, fsync: &str) -> (tempfile::TempDir, Broker, String) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let bootstrap = broker.bootstrap();
    let client = Client::connect(&bootstrap).unwrap();
    block_on(client.create_topic(topic, partitions, &[("fsync", fsync)])).unwrap();
    (dir, broker, bootstrap)
}

#[test]
fn keyed_records_from_four_producers_read_back_in_order_and_survive_a_restart() {
    let (dir, mut broker, bootstrap) = broker_with_topic("events", PARTITIONS, "never");

    let per_producer = RECORDS / PRODUCERS;
    let threads: Vec<_> = (0..PRODUCERS)
        .map(|producer| {
            let bootstrap = bootstrap.clone();
            std::thread::spawn(move || {
                let client = Client::connect(&bootstrap).unwrap();
                let config = ProducerConfig { acks: Acks::Leader, batch_bytes: 16 * 1024, ..ProducerConfig::default() };
                let producer_handle = Producer::new(client, config);
                let mut deliveries = Vec::with_capacity(per_producer as usize);
                for seq in 0..per_producer {
                    let key = format!("key-{}", (seq * 7 + producer) % KEYS);
                    let value = format!("{producer}-{seq}");
                    let record = ProducerRecord::new("events", value.as_bytes()).key(key.as_bytes());
                    deliveries.push(((producer, seq), producer_handle.send(record).unwrap()));
                }
                producer_handle.flush();
                deliveries
                    .into_iter()
                    .map(|(id, delivery)| {
                        let metadata = delivery.wait().unwrap();
                        (id, (metadata.partition, metadata.offset))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let acked: HashMap<(u64, u64), (u32, i64)> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert_eq!(acked.len() as u64, RECORDS);

    check(&read_all(&bootstrap, "events"), &acked);

    assert!(broker.stop(), "a clean stop exits 0: {}", broker.stderr());
    let broker = Broker::start(dir.path(), &[]);
    check(&read_all(&broker.bootstrap(), "events"), &acked);
}

/// The server's part of durability: a `durable` ack is sent only after the log says the
/// topic's policy is met, and restart recovery keeps what was acknowledged. (Whether
/// fdatasync itself happened before the ack is a property of the log, checked by
/// `tests/crash.rs`; a SIGKILL cannot tell it apart, since the kernel keeps the
/// process's submitted writes.)
#[test]
fn acknowledged_durable_records_survive_kill_9() {
    let (dir, mut broker, bootstrap) = broker_with_topic("ledger", 4, "always");

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer_stop = stop.clone();
    let producer_bootstrap = bootstrap.clone();
    let producing = std::thread::spawn(move || {
        let client = Client::connect(&producer_bootstrap).unwrap();
        let config = ProducerConfig {
            acks: Acks::Durable,
            linger: Duration::from_millis(1),
            retries: 0,
            ..ProducerConfig::default()
        };
        let producer = Producer::new(client, config);
        let mut pending = std::collections::VecDeque::new();
        let mut acked = Vec::new();
        let mut seq = 0u64;
        while !producer_stop.load(std::sync::atomic::Ordering::Relaxed) {
            let value = format!("0-{seq}");
            let key = format!("k{seq}");
            match producer.send(ProducerRecord::new("ledger", value.as_bytes()).key(key.as_bytes())) {
                Ok(delivery) => pending.push_back((seq, delivery)),
                Err(_) => break,
            }
            seq += 1;
            while pending.len() > 2_000 {
                let (seq, delivery) = pending.pop_front().unwrap();
                if let Ok(metadata) = delivery.wait() {
                    acked.push((seq, metadata.partition, metadata.offset));
                }
            }
        }
        // The broker is gone: whatever was acknowledged before is what counts.
        for (seq, delivery) in pending {
            if let Ok(metadata) = delivery.wait() {
                acked.push((seq, metadata.partition, metadata.offset));
            }
        }
        std::mem::forget(producer); // its flush would wait on a dead broker
        acked
    });
    std::thread::sleep(Duration::from_millis(1500));
    broker.kill();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked = producing.join().unwrap();
    assert!(acked.len() > 100, "the producer got acknowledgements before the kill ({})", acked.len());

    let broker = Broker::start(dir.path(), &[]);
    let records = read_all(&broker.bootstrap(), "ledger");
    let stored: HashMap<(u32, u64), u64> = records.iter().map(|r| ((r.partition, r.offset), value_of(r).1)).collect();
    for (seq, partition, offset) in &acked {
        assert_eq!(
            stored.get(&(*partition, *offset as u64)),
            Some(seq),
            "acknowledged record {seq} is at {partition}/{offset}"
        );
    }
}

/// A well-behaved client on the same shard as the misbehaving ones: produces and
/// reads back one record.
fn round_trip(client: &Client, producer: &Producer, n: u64) {
    let value = format!("ok-{n}");
    let metadata = producer.send(ProducerRecord::new("calm", value.as_bytes()).partition(0)).unwrap().wait().unwrap();
    let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default());
    block_on(consumer.assign("calm", Some(&[0]), Seek::Offset(metadata.offset as u64))).unwrap();
    let records = consumer.poll(Duration::from_secs(5)).unwrap();
    assert_eq!(records.first().and_then(|r| r.value.as_deref()), Some(value.as_bytes()));
}

/// Sends `bytes` on a fresh connection to `port`; returns what came back before the
/// broker closed the connection (or `None` if it stayed open for 5 s).
#[test]
fn garbage_oversize_and_truncated_frames_do_not_disturb_a_good_client() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("strand.toml");
    std::fs::write(&config, "[limits]\nframe_bytes_max = 1048576\nidle_timeout_ms = 2000\n").unwrap();
    let data = dir.path().join("data");
    let broker = Broker::start(&data, &["--config", config.to_str().unwrap()]);
    let client = Client::connect(&broker.bootstrap()).unwrap();
    block_on(client.create_topic("calm", 1, &[("fsync", "never")])).unwrap();
    let shard = client.shard_of("calm", 0).unwrap();
    let port = broker.shard_ports[shard as usize];
    let producer = Producer::new(client.clone(), ProducerConfig { acks: Acks::Leader, ..ProducerConfig::default() });
    round_trip(&client, &producer, 0);

    // Random bytes: a bad magic, the connection is closed with nothing sent back.
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    assert_eq!(send_raw(port, &garbage, false), Some(Vec::new()), "garbage: closed");
    round_trip(&client, &producer, 1);

    // A header announcing a 1 GiB frame: refused before any payload is read.
    let mut oversize = frame(4, 0, &[]);
    oversize[..4].copy_from_slice(&(1u32 << 30).to_le_bytes());
    assert_eq!(send_raw(port, &oversize, false), Some(Vec::new()), "oversize: closed");
    round_trip(&client, &producer, 2);

    // Half a frame, then the client goes quiet: closed at the idle timeout.
    let mut truncated = frame(1, 0, &[1, 0, 0, 0, 0]);
    truncated.truncate(10);
    let started = Instant::now();
    assert_eq!(send_raw(port, &truncated, false), Some(Vec::new()), "truncated: closed after the idle timeout");
    assert!(started.elapsed() >= Duration::from_secs(1));
    // Half a frame, then the client closes: nothing to answer.
    assert_eq!(send_raw(port, &truncated, true), Some(Vec::new()));
    round_trip(&client, &producer, 3);

    // A well-framed request whose payload does not decode: an error frame, then closed.
    let answer = send_raw(port, &frame(5, 0, &[0xff; 7]), false).expect("answered and closed");
    assert!(answer.len() >= 18, "an error frame: {answer:?}");
    assert_eq!(answer[7], 0x03, "flags: response | error");
    assert_eq!(u32::from_le_bytes(answer[12..16].try_into().unwrap()), 77, "correlation id echoed");
    assert_eq!(u16::from_le_bytes(answer[16..18].try_into().unwrap()), 1, "MalformedRequest");
    // An api the broker does not serve: UnknownApi.
    let answer = send_raw(port, &frame(999, 0, &[]), false).expect("answered and closed");
    assert_eq!(u16::from_le_bytes(answer[16..18].try_into().unwrap()), 2, "UnknownApi");
    // A client that sends a response frame: MalformedRequest, then closed.
    let answer = send_raw(port, &frame(0, 1, &[]), false).expect("answered and closed");
    assert_eq!(u16::from_le_bytes(answer[16..18].try_into().unwrap()), 1, "MalformedRequest");
    round_trip(&client, &producer, 4);

    // A batch with a bad CRC is refused with InvalidBatch; the partition is unchanged.
    let before = block_on(client.list_offset("calm", 0, OffsetSpec::Latest)).unwrap();
    let mut builder = strand_client::BatchBuilder::new();
    builder.push(None, Some(b"x"), &[], 0);
    let mut batch = builder.build();
    let last = batch.len() - 1;
    batch[last] ^= 0xff;
    let request = strand_protocol::native::Request::Produce(strand_protocol::native::messages::ProduceRequest {
        acks: 1,
        timeout_ms: 1000,
        topics: vec![strand_protocol::native::messages::ProduceTopic {
            name: "calm".into(),
            partitions: vec![strand_protocol::native::messages::ProducePartition {
                partition: 0,
                records: batch.into(),
            }],
        }],
    });
    let strand_protocol::native::Response::Produce(response) = block_on(client.request(request)).unwrap() else {
        panic!("a produce response")
    };
    assert_eq!(response.topics[0].partitions[0].error, strand_client::ErrorCode::InvalidBatch);
    assert_eq!(block_on(client.list_offset("calm", 0, OffsetSpec::Latest)).unwrap(), before);
    round_trip(&client, &producer, 5);
}

/// The client inside a tokio runtime (current-thread, so a blocking call would hang
/// it): admin, produce and consume all awaited, nothing blocking the runtime's thread.
#[test]
fn the_client_runs_inside_tokio() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let bootstrap = broker.bootstrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    runtime.block_on(async move {
        let client = Client::connect(&bootstrap).unwrap();
        client.create_topic("async", 2, &[("fsync", "never")]).await.unwrap();
        let producer =
            Producer::new(client.clone(), ProducerConfig { acks: Acks::Leader, ..ProducerConfig::default() });
        let deliveries: Vec<_> = (0..100u32)
            .map(|i| producer.send(ProducerRecord::new("async", &i.to_le_bytes()).partition(i % 2)).unwrap())
            .collect();
        let mut offsets = Vec::new();
        for delivery in deliveries {
            offsets.push(delivery.await.unwrap());
        }
        assert_eq!(offsets.iter().filter(|m| m.partition == 0).count(), 50);
        // A consumer polled while a tokio timer runs beside it on the same thread.
        let mut consumer = Consumer::new(client, ConsumerConfig::default());
        consumer.assign("async", None, Seek::Earliest).await.unwrap();
        let ticker = tokio::spawn(async {
            tokio::time::sleep(Duration::from_millis(10)).await;
        });
        let mut seen = 0;
        while seen < 100 {
            seen += consumer.poll_async(Duration::from_millis(500)).await.unwrap().len();
        }
        ticker.await.unwrap();
        // An empty poll returns at its timeout without blocking the runtime.
        let started = Instant::now();
        assert!(consumer.poll_async(Duration::from_millis(50)).await.unwrap().is_empty());
        assert!(started.elapsed() < Duration::from_secs(5));
    });
}

/// The broker's resident memory, from /proc.
/// A client that pipelines many large fetches of cold data and never reads the
/// answers cannot make the broker hold more than its per-connection budget.
#[test]
fn a_client_that_never_reads_its_fetches_cannot_grow_the_broker() {
    let (dir, mut broker, bootstrap) = broker_with_topic("cold", 1, "never");
    let client = Client::connect(&bootstrap).unwrap();
    let producer = Producer::new(client, ProducerConfig { acks: Acks::Leader, ..ProducerConfig::default() });
    let value = vec![7u8; 64 * 1024];
    for _ in 0..2048 {
        producer.send(ProducerRecord::new("cold", &value).partition(0)).unwrap();
    }
    producer.flush();
    drop(producer);
    // Restart: the 128 MiB are on disk only, so every fetch is a direct read.
    assert!(broker.stop());
    let broker = Broker::start(dir.path(), &[]);
    let client = Client::connect(&broker.bootstrap()).unwrap();
    let port = broker.shard_ports[client.shard_of("cold", 0).unwrap() as usize];
    let before = rss_bytes(broker.pid());

    let request = strand_protocol::native::Request::Fetch(strand_protocol::native::messages::FetchRequest {
        max_wait_ms: 0,
        min_bytes: 0,
        max_bytes: 64 << 20,
        topics: vec![strand_protocol::native::messages::FetchTopic {
            name: "cold".into(),
            partitions: vec![strand_protocol::native::messages::FetchPartition {
                partition: 0,
                offset: 0,
                max_bytes: 64 << 20,
            }],
        }],
    });
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut frames = Vec::new();
    for id in 0..200 {
        request.encode(id, &mut frames);
    }
    stream.write_all(&frames).unwrap();
    // 200 answers of 32 MiB each would be 6.4 GB; the budget allows one or two.
    std::thread::sleep(Duration::from_secs(3));
    let grown = rss_bytes(broker.pid()).saturating_sub(before);
    assert!(grown < 512 << 20, "the broker grew by {} MiB for a client that never reads", grown >> 20);
    // Another client is served meanwhile.
    assert!(block_on(client.list_offset("cold", 0, OffsetSpec::Latest)).unwrap() >= 2048);
    drop(stream);
}

/// The native producer is idempotent: it sends 20,000 records to one partition while
/// the broker is killed (SIGKILL) and started again on its ports, retrying what the
/// kill cut off. Every record is delivered, and the partition holds each once, in the
/// order sent: the retries of batches the broker had stored before it died are
/// answered with their offsets, not stored again.
#[test]
fn the_native_producer_stores_each_record_once_and_in_order_across_a_broker_kill() {
    const COUNT: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (port, kafka_port) = common::free_ports_with_kafka();
    let mut broker = Broker::start_on_port(&data, port, &["--kafka-port", &kafka_port]);
    let bootstrap = broker.bootstrap();
    block_on(Client::connect(&bootstrap).unwrap().create_topic("ledger", 1, &[])).unwrap();
    let config = ProducerConfig { retries: 200, retry_backoff_ms: 100, ..ProducerConfig::default() };
    let sender_bootstrap = bootstrap.clone();
    let sender = std::thread::spawn(move || {
        let producer = Producer::new(Client::connect(&sender_bootstrap).unwrap(), config);
        let mut deliveries = Vec::new();
        for i in 0..COUNT {
            let value = format!("value-{i}");
            deliveries.push(producer.send(ProducerRecord::new("ledger", value.as_bytes()).partition(0)).unwrap());
            if i % 100 == 99 {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        producer.flush();
        deliveries.into_iter().filter_map(|d| d.wait().err()).map(|e| e.to_string()).collect::<Vec<_>>()
    });
    let client = Client::connect(&bootstrap).unwrap();
    common::wait_for("the first records", Duration::from_secs(60), || {
        block_on(client.list_offset("ledger", 0, OffsetSpec::Latest)).unwrap_or(0) > 3000
    });
    drop(client);
    broker.kill();
    std::thread::sleep(Duration::from_millis(300));
    let broker = Broker::start_on_port(&data, port, &["--kafka-port", &kafka_port]);
    let failed = sender.join().unwrap();
    assert!(failed.is_empty(), "every record delivered; {} failed, the first: {:?}", failed.len(), failed.first());
    let values: Vec<String> = read_all(&broker.bootstrap(), "ledger")
        .iter()
        .map(|r| String::from_utf8(r.value.as_deref().unwrap().to_vec()).unwrap())
        .collect();
    let expected: Vec<String> = (0..COUNT).map(|i| format!("value-{i}")).collect();
    assert!(
        values == expected,
        "{} records stored for {COUNT} sent; the first out of place: {:?}",
        values.len(),
        values.iter().zip(&expected).find(|(v, e)| v != e)
    );
}

/// A batch refused for good (larger than the topic allows) leaves a gap in the
/// idempotent producer's sequence on its partition; the producer moves to its next
/// epoch and numbers what follows from 0 again, so later records are stored, in order.
#[test]
fn a_refused_batch_does_not_stop_the_idempotent_producers_partition() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let client = Client::connect(&broker.bootstrap()).unwrap();
    block_on(client.create_topic("small", 1, &[("batch_bytes_max", "4096")])).unwrap();
    let config = ProducerConfig { linger: Duration::from_millis(20), retries: 3, ..ProducerConfig::default() };
    let producer = Producer::new(client, config);
    let first = producer.send(ProducerRecord::new("small", b"before").partition(0)).unwrap();
    producer.flush();
    assert_eq!(first.wait().unwrap().offset, 0);
    let big = vec![7u8; 8192];
    let refused = producer.send(ProducerRecord::new("small", &big).partition(0)).unwrap();
    producer.flush();
    let error = refused.wait().unwrap_err();
    assert!(error.to_string().contains("large") || error.to_string().contains("Large"), "{error}");
    let after: Vec<_> = (0..50)
        .map(|i| producer.send(ProducerRecord::new("small", format!("after-{i}").as_bytes()).partition(0)).unwrap())
        .collect();
    producer.flush();
    let offsets: Vec<i64> = after.into_iter().map(|d| d.wait().unwrap().offset).collect();
    assert_eq!(offsets, (1..=50).collect::<Vec<i64>>(), "stored after the refused batch, in order");
}
