//! The Kafka listener against the real binary: a real Kafka client (`kcat`, librdkafka
//! inside) producing with every codec and consuming back; records crossing between
//! the two protocols byte for byte; and the wire itself, spoken with requests the
//! `kafka-protocol` crate encodes: the version firewall, hostile frames, refused
//! batches, fetch semantics and answers in request order.

mod common;

use bytes::Bytes;
use common::kafka::{batch, fetch_request, latest_offset, metadata, name, produce, produce_request, KafkaConnection};
use common::{rss_bytes, run_tool, Broker};
use kafka_protocol::messages::*;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::Duration;
use strand_client::{
    block_on, partition_for_key, Client, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, Seek,
};
use strand_protocol::BatchBuilder;

fn kcat(args: &[&str], stdin: &str) -> String {
    let (ok, stdout, stderr) = run_tool("kcat", args, stdin);
    assert!(ok, "kcat {args:?} failed: {stderr}");
    stdout
}

/// What kcat (librdkafka) produces it reads back: 10,000 keyed records, 2,000 with
/// each codec, every one once, in order per key, each key in the partition Kafka's
/// partitioner (murmur2) chooses.
#[test]
fn kcat_produces_with_every_codec_and_reads_every_record_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]);
    block_on(Client::connect(&broker.bootstrap()).unwrap().create_topic("orders", 4, &[])).unwrap();
    let bootstrap = broker.kafka_bootstrap();
    let mut sent = 0;
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let lines: String = (0..2000).map(|i| format!("key-{}:{codec}-{:05}\n", i % 97, sent + i)).collect();
        sent += 2000;
        kcat(&["-P", "-b", &bootstrap, "-t", "orders", "-K:", "-z", codec, "-X", "partitioner=murmur2_random"], &lines);
    }
    let out =
        kcat(&["-C", "-b", &bootstrap, "-t", "orders", "-o", "beginning", "-e", "-q", "-f", "%p\t%o\t%k\t%s\n"], "");
    let mut by_key: HashMap<String, Vec<u64>> = HashMap::new();
    let mut last_offset: BTreeMap<u32, i64> = BTreeMap::new();
    let mut count = 0;
    for line in out.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let (partition, offset, key, value) =
            (fields[0].parse::<u32>().unwrap(), fields[1].parse::<i64>().unwrap(), fields[2], fields[3]);
        assert_eq!(partition, partition_for_key(key.as_bytes(), 4), "{key} is in Kafka's partition for it");
        assert!(offset > *last_offset.get(&partition).unwrap_or(&-1), "offsets rise within partition {partition}");
        last_offset.insert(partition, offset);
        let seq: u64 = value.rsplit('-').next().unwrap().parse().unwrap();
        by_key.entry(key.to_string()).or_default().push(seq);
        count += 1;
    }
    assert_eq!(count, 10_000, "every record once");
    for (key, seqs) in by_key {
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{key}: in the order sent");
    }
}

/// One broker, two protocols: what the native client writes a Kafka client reads
/// with the same key, value, headers and timestamp, and back.
#[test]
fn records_cross_between_the_native_and_the_kafka_protocol_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let client = Client::connect(&broker.bootstrap()).unwrap();
    block_on(client.create_topic("bridge", 1, &[])).unwrap();
    let producer = Producer::new(client, ProducerConfig::default());
    let headers: [(&[u8], Option<&[u8]>); 2] = [(b"trace", Some(b"abc-1")), (b"origin", Some(b"native"))];
    for i in 0..3 {
        let value = format!("native-{i}");
        let record = ProducerRecord::new("bridge", value.as_bytes())
            .key(b"acct-7")
            .headers(&headers)
            .timestamp_ms(1_700_000_000_000 + i);
        producer.send(record).unwrap().wait().unwrap();
    }
    drop(producer);
    let bootstrap = broker.kafka_bootstrap();
    let out = kcat(&["-C", "-b", &bootstrap, "-t", "bridge", "-o", "beginning", "-e", "-q", "-f", "%k|%s|%T|%h\n"], "");
    let expected: Vec<String> =
        (0..3i64).map(|i| format!("acct-7|native-{i}|{}|trace=abc-1,origin=native", 1_700_000_000_000 + i)).collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), expected);

    kcat(
        &["-P", "-b", &bootstrap, "-t", "bridge", "-K:", "-H", "trace=k-9", "-H", "origin=kafka"],
        "acct-8:from-kafka\n",
    );
    let mut consumer = Consumer::new(Client::connect(&broker.bootstrap()).unwrap(), ConsumerConfig::default());
    block_on(consumer.assign("bridge", Some(&[0]), Seek::Offset(3))).unwrap();
    let mut records = Vec::new();
    common::wait_for("the Kafka client's record", Duration::from_secs(20), || {
        records.extend(consumer.poll(Duration::from_millis(200)).unwrap());
        !records.is_empty()
    });
    let record = &records[0];
    assert_eq!(
        (record.offset, record.key.as_deref(), record.value.as_deref()),
        (3, Some(&b"acct-8"[..]), Some(&b"from-kafka"[..]))
    );
    let headers: Vec<(&[u8], Option<&[u8]>)> = record.headers.iter().map(|(k, v)| (&k[..], v.as_deref())).collect();
    assert_eq!(headers, vec![(&b"trace"[..], Some(&b"k-9"[..])), (&b"origin"[..], Some(&b"kafka"[..]))]);
}

/// The version firewall: ApiVersions lists exactly what is served; an ApiVersions
/// version the broker does not know is answered in v0 with UNSUPPORTED_VERSION and
/// the ranges (KIP-511); a request the codec can read, of an API or a version not
/// served, is answered with UNSUPPORTED_VERSION (35) in its response's error fields on
/// a connection that stays open; an unknown api key, a version the codec does not know,
/// a malformed body, or a response with no field for the error closes its connection,
/// and no other.
#[test]
fn api_versions_states_the_firewall_and_requests_outside_it_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let port = broker.kafka_port.unwrap();
    let mut healthy = KafkaConnection::connect(port);
    let response: ApiVersionsResponse = healthy.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(response.error_code, 0);
    let ranges: BTreeMap<i16, (i16, i16)> =
        response.api_keys.iter().map(|api| (api.api_key, (api.min_version, api.max_version))).collect();
    assert_eq!(ranges[&(ApiKey::Produce as i16)], (3, 12));
    assert_eq!(ranges[&(ApiKey::Fetch as i16)], (4, 16));
    assert_eq!(ranges[&(ApiKey::Metadata as i16)], (0, 12));

    // ApiVersions v99: the v0 answer (header v0, error 35, the ranges).
    let mut future = KafkaConnection::connect(port);
    let frame = [&[0, 0, 0, 10][..], &[0, 18, 0, 99, 0, 0, 0, 7, 0xff, 0xff]].concat();
    future.stream.write_all(&frame).unwrap();
    let (correlation, answer): (i32, ApiVersionsResponse) = future.receive(ApiKey::ApiVersions, 0);
    assert_eq!((correlation, answer.error_code), (7, 35));
    assert_eq!(answer.api_keys.len(), ranges.len());

    // Versions the codec knows and the broker does not serve, and APIs it does not
    // serve: each answered with 35, one after another on one connection.
    let mut probe = KafkaConnection::connect(port);
    let mut request = MetadataRequest::default();
    request.topics = None;
    let answer: MetadataResponse = probe.call(ApiKey::Metadata, 13, &request);
    assert_eq!((answer.error_code, answer.topics.len()), (35, 0), "Metadata v13");
    let mut request = produce_request("firewalled", 0, -1, batch(&[("k", "v")]));
    request.topic_data[0].topic_id = uuid::Uuid::from_u128(99);
    let answer: ProduceResponse = probe.call(ApiKey::Produce, 13, &request);
    let partitions: Vec<(i32, i16)> =
        answer.responses[0].partition_responses.iter().map(|p| (p.index, p.error_code)).collect();
    assert_eq!((answer.responses[0].topic_id, partitions), (uuid::Uuid::from_u128(99), vec![(0, 35)]));
    let mut request = FindCoordinatorRequest::default();
    request.coordinator_keys = vec!["g1".into(), "g2".into()];
    let answer: FindCoordinatorResponse = probe.call(ApiKey::FindCoordinator, 6, &request);
    let keys: Vec<(String, i16)> = answer.coordinators.iter().map(|c| (c.key.to_string(), c.error_code)).collect();
    assert_eq!(keys, vec![("g1".to_owned(), 35), ("g2".to_owned(), 35)], "FindCoordinator v6");
    let mut request = SaslHandshakeRequest::default();
    request.mechanism = "SCRAM-SHA-512".into();
    let answer: SaslHandshakeResponse = probe.call(ApiKey::SaslHandshake, 1, &request);
    assert_eq!(answer.error_code, 34, "SaslHandshake on a plaintext listener: ILLEGAL_SASL_STATE, as Kafka");
    let answer: EndTxnResponse = probe.call(ApiKey::EndTxn, 4, &EndTxnRequest::default());
    assert_eq!(answer.error_code, 35, "EndTxn (not served)");
    let mut request = AddPartitionsToTxnRequest::default();
    let mut topic = add_partitions_to_txn_request::AddPartitionsToTxnTopic::default();
    topic.name = name("t");
    topic.partitions = vec![3, 5];
    request.v3_and_below_topics = vec![topic];
    let answer: AddPartitionsToTxnResponse = probe.call(ApiKey::AddPartitionsToTxn, 3, &request);
    let results: Vec<(i32, i16)> = answer.results_by_topic_v3_and_below[0]
        .results_by_partition
        .iter()
        .map(|p| (p.partition_index, p.partition_error_code))
        .collect();
    assert_eq!(results, vec![(3, 35), (5, 35)], "AddPartitionsToTxn v3 (not served)");
    let still: ApiVersionsResponse = probe.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(still.error_code, 0, "the connection is served after its refusals");

    // What cannot be answered closes its connection: an unknown api key, versions the
    // codec does not know (Produce v2, ListOffsets v0), a truncated body (Heartbeat
    // v4), an acks=0 produce (no answer is expected), a response with no error code
    // (DescribeLogDirs v2, DescribeTransactions).
    let mut closing: Vec<(&str, Vec<u8>)> = Vec::new();
    for (key, version) in [(999i16, 0i16), (0, 2), (2, 0), (12, 4)] {
        let mut frame = vec![0, 0, 0, 10];
        frame.extend_from_slice(&key.to_be_bytes());
        frame.extend_from_slice(&version.to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0, 1, 0xff, 0xff]);
        closing.push(("raw", frame));
    }
    let mut conn = KafkaConnection::connect(port);
    closing.push((
        "acks=0 Produce v13",
        conn.frame(ApiKey::Produce, 13, &produce_request("t", 0, 0, batch(&[("k", "v")]))).1,
    ));
    closing.push(("DescribeLogDirs v2", conn.frame(ApiKey::DescribeLogDirs, 2, &DescribeLogDirsRequest::default()).1));
    let describe = DescribeTransactionsRequest::default();
    closing.push(("DescribeTransactions", conn.frame(ApiKey::DescribeTransactions, 0, &describe).1));
    for (what, frame) in closing {
        let mut conn = KafkaConnection::connect(port);
        conn.stream.write_all(&frame).unwrap();
        assert!(conn.is_closed_by_broker(), "{what} {:?} closes its connection", &frame[4..8]);
    }
    let response = metadata(&mut healthy, 12, &[], false);
    assert_eq!(response.brokers.len(), 1, "the other connection is served as before");
    assert_eq!(response.brokers[0].port as u16, port, "and advertises the Kafka port");
}

/// Hostile frames (sizes over the limit, truncated headers, counts and lengths far
/// beyond the frame, absurd tagged fields) close their own connection; the broker's
/// memory stays put and another connection is served throughout.
#[test]
fn hostile_frames_close_their_connection_without_memory_growth_or_harm_to_others() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let port = broker.kafka_port.unwrap();
    let mut healthy = KafkaConnection::connect(port);
    metadata(&mut healthy, 12, &["victim"], true);
    let before = rss_bytes(broker.pid());
    let header = |key: i16, version: i16| -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&key.to_be_bytes());
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(&1i32.to_be_bytes());
        out
    };
    let sized = |body: Vec<u8>| -> Vec<u8> { [(body.len() as i32).to_be_bytes().to_vec(), body].concat() };
    let mut hostile: Vec<(&str, Vec<u8>)> = vec![
        ("a size over the frame limit", vec![0x7f, 0xff, 0xff, 0xff, 0, 3]),
        ("a negative size", vec![0xff, 0xff, 0xff, 0xfe]),
        ("a truncated header", sized(vec![0, 3, 0])),
        ("a client id longer than the frame", sized([header(3, 1), vec![0x7f, 0xff, b'x']].concat())),
        ("a topic count of 2^31 - 1", sized([header(3, 1), vec![0, 0, 0x7f, 0xff, 0xff, 0xff]].concat())),
        // Header v2 with a tagged field claiming 2^28 bytes.
        ("an absurd tagged field", sized([header(3, 12), vec![0, 0, 1, 0, 0x80, 0x80, 0x80, 0x80, 0x01]].concat())),
    ];
    // Produce v9: null transactional id, acks, timeout, then a topic count of 2^31.
    let mut produce = [header(0, 9), vec![0, 0, 0]].concat();
    produce.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x07]);
    hostile.push(("a Produce topic count of 2^31", sized(produce)));
    // Produce v3 whose records claim 1 GB.
    let mut big = [header(0, 3), vec![0, 0], vec![0xff, 0xff, 0, 1, 0, 0, 0x27, 0x10]].concat();
    big.extend_from_slice(&[
        0, 0, 0, 1, 0, 6, b'v', b'i', b'c', b't', b'i', b'm', 0, 0, 0, 1, 0, 0, 0, 0, 0x40, 0, 0, 0,
    ]);
    hostile.push(("records longer than the frame", sized(big)));
    for (what, frame) in hostile {
        for _ in 0..20 {
            let mut conn = KafkaConnection::connect(port);
            conn.stream.write_all(&frame).unwrap();
            assert!(conn.is_closed_by_broker(), "{what}: the connection is closed");
        }
        assert_eq!(metadata(&mut healthy, 12, &["victim"], false).topics[0].error_code, 0, "after {what}");
    }
    let after = rss_bytes(broker.pid());
    assert!(after < before + (64 << 20), "memory grew from {before} to {after} bytes");
    assert_eq!(latest_offset(&mut healthy, "victim"), 0, "nothing was appended");
}

/// A batch that fails validation is refused with CORRUPT_MESSAGE and one over the
/// topic's limit with MESSAGE_TOO_LARGE, naming no file of the broker's; the log is
/// unchanged by either, and a good batch after them lands at offset 0.
#[test]
fn refused_batches_answer_kafka_errors_and_leave_the_log_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let mut conn = KafkaConnection::connect(broker.kafka_port.unwrap());
    metadata(&mut conn, 12, &["strict"], true);
    let mut corrupt = batch(&[("k", "value")]).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let (error, offset, message) = produce(&mut conn, "strict", Bytes::from(corrupt));
    assert_eq!((error, offset), (2, -1), "CORRUPT_MESSAGE: {message:?}");
    let large = "x".repeat(2 << 20);
    let (error, _, message) = produce(&mut conn, "strict", batch(&[("k", &large)]));
    assert_eq!(error, 10, "MESSAGE_TOO_LARGE");
    let message = message.unwrap();
    assert!(message.contains("exceeds the limit") && !message.contains('/'), "{message}");
    assert_eq!(latest_offset(&mut conn, "strict"), 0, "the log is unchanged");
    assert_eq!(produce(&mut conn, "strict", batch(&[("k", "good")])).0, 0);
    assert_eq!(latest_offset(&mut conn, "strict"), 1);
    // acks outside 0, 1 and -1.
    let response: ProduceResponse =
        conn.call(ApiKey::Produce, 9, &produce_request("strict", 0, 2, batch(&[("k", "v")])));
    assert_eq!(response.responses[0].partition_responses[0].error_code, 21, "INVALID_REQUIRED_ACKS");
    assert_eq!(latest_offset(&mut conn, "strict"), 1);
}

/// Metadata creates a topic a client names when it allows it, not otherwise, and
/// says why an invalid name cannot be.
#[test]
fn metadata_creates_topics_clients_ask_for_only_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let mut conn = KafkaConnection::connect(broker.kafka_port.unwrap());
    let response = metadata(&mut conn, 12, &["wanted", "bad name!"], true);
    let wanted = &response.topics[0];
    assert_eq!((wanted.error_code, wanted.partitions.len()), (0, 1));
    assert!(!wanted.topic_id.is_nil());
    assert_eq!(response.topics[1].error_code, 17, "INVALID_TOPIC_EXCEPTION");
    let response = metadata(&mut conn, 12, &["unwanted"], false);
    assert_eq!(response.topics[0].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION, not created");
    // Every topic, v0 (an empty list) and v1 (null): the internal one marked.
    let mut v1 = MetadataRequest::default();
    v1.topics = None;
    let all: MetadataResponse = conn.call(ApiKey::Metadata, 1, &v1);
    let names: Vec<(String, bool)> =
        all.topics.iter().map(|t| (t.name.as_ref().unwrap().to_string(), t.is_internal)).collect();
    assert_eq!(names, vec![("__consumer_offsets".to_string(), true), ("wanted".to_string(), false)]);
    let mut v0 = MetadataRequest::default();
    v0.topics = Some(Vec::new());
    let all: MetadataResponse = conn.call(ApiKey::Metadata, 0, &v0);
    assert_eq!(all.topics.len(), 2);
}

/// Fetch returns the whole batch an offset falls in, by name (v11) and by topic id
/// (v16); a fetch past the end is OFFSET_OUT_OF_RANGE; a long poll is woken by a
/// produce on another connection, and answers on one connection go in request order
/// even when a later one is ready first; an acks=0 produce gets no answer.
#[test]
fn fetch_returns_whole_batches_long_polls_and_answers_go_in_request_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let port = broker.kafka_port.unwrap();
    let mut conn = KafkaConnection::connect(port);
    let topic_id = metadata(&mut conn, 12, &["events"], true).topics[0].topic_id;
    let records: Vec<(String, String)> = (0..5).map(|i| (format!("k{i}"), format!("v{i}"))).collect();
    let pairs: Vec<(&str, &str)> = records.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(produce(&mut conn, "events", batch(&pairs)).1, 0);
    for (version, id) in [(11, uuid::Uuid::nil()), (16, topic_id)] {
        let response: FetchResponse = conn.call(ApiKey::Fetch, version, &fetch_request("events", id, 3, 0));
        let part = &response.responses[0].partitions[0];
        assert_eq!((part.error_code, part.high_watermark), (0, 5), "v{version}");
        let header = strand_protocol::batch::BatchHeader::parse(part.records.as_ref().unwrap()).unwrap();
        assert_eq!((header.base_offset, header.last_offset()), (0, 4), "v{version}: the whole batch offset 3 is in");
    }
    let response: FetchResponse = conn.call(ApiKey::Fetch, 11, &fetch_request("events", uuid::Uuid::nil(), 100, 0));
    assert_eq!(response.responses[0].partitions[0].error_code, 1, "OFFSET_OUT_OF_RANGE");
    // OffsetForLeaderEpoch: epoch 0 ends at the partition's end; for a later epoch
    // than any, the latest and where the log ends (as Kafka answers); a client ahead
    // of the partition's epoch is told UNKNOWN_LEADER_EPOCH.
    for (epoch, current, expected) in [(0, 0, (0, 0, 5)), (3, -1, (0, 0, 5)), (0, 1, (75, -1, -1))] {
        let mut asked = offset_for_leader_epoch_request::OffsetForLeaderPartition::default();
        asked.partition = 0;
        asked.leader_epoch = epoch;
        asked.current_leader_epoch = current;
        let mut topic = offset_for_leader_epoch_request::OffsetForLeaderTopic::default();
        topic.topic = name("events");
        topic.partitions = vec![asked];
        let mut request = OffsetForLeaderEpochRequest::default();
        request.replica_id = BrokerId(-1);
        request.topics = vec![topic];
        let response: OffsetForLeaderEpochResponse = conn.call(ApiKey::OffsetForLeaderEpoch, 4, &request);
        let part = &response.topics[0].partitions[0];
        assert_eq!(
            (part.error_code, part.leader_epoch, part.end_offset),
            (expected.0, expected.1, expected.2),
            "epoch {epoch}, current {current}"
        );
    }

    // A long poll at the end, then (pipelined) an acks=0 produce and ApiVersions.
    let polling = conn.send(ApiKey::Fetch, 11, &fetch_request("events", uuid::Uuid::nil(), 5, 15_000));
    conn.send(ApiKey::Produce, 9, &produce_request("events", 0, 0, batch(&[("k5", "v5")])));
    let versions = conn.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let (first, fetched): (i32, FetchResponse) = conn.receive(ApiKey::Fetch, 11);
    assert_eq!(first, polling, "the fetch is answered first although ApiVersions was ready before it");
    let part = &fetched.responses[0].partitions[0];
    let header = strand_protocol::batch::BatchHeader::parse(part.records.as_ref().unwrap()).unwrap();
    assert_eq!(header.base_offset, 5, "woken by the acks=0 produce behind it");
    let (second, _): (i32, ApiVersionsResponse) = conn.receive(ApiKey::ApiVersions, 3);
    assert_eq!(second, versions, "no answer for the acks=0 produce");
}

fn idempotent_batch(producer_id: i64, epoch: i16, sequence: i32, values: &[&str]) -> Bytes {
    let mut builder = BatchBuilder::new().idempotent(producer_id, epoch, sequence);
    for value in values {
        builder.push(None, Some(value.as_bytes()), &[], 1_700_000_000_000);
    }
    Bytes::from(builder.finish())
}

/// The idempotent producer on the wire: InitProducerId gives an id; a batch sent
/// twice is stored once and the retry answered with the original offset, also after
/// the broker was killed and started again (the state is rebuilt from the log); a gap
/// is OUT_OF_ORDER_SEQUENCE_NUMBER and an older epoch INVALID_PRODUCER_EPOCH, each
/// leaving the log unchanged.
#[test]
fn retried_batches_of_an_idempotent_producer_are_stored_once_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (port, kafka_port) = common::free_ports_with_kafka();
    let mut broker = Broker::start_on_port(&data, port, &["--kafka-port", &kafka_port]);
    let mut conn = KafkaConnection::connect(broker.kafka_port.unwrap());
    metadata(&mut conn, 12, &["once"], true);
    let mut init = InitProducerIdRequest::default();
    init.transactional_id = None;
    init.producer_id = ProducerId(-1);
    init.producer_epoch = -1;
    let given: InitProducerIdResponse = conn.call(ApiKey::InitProducerId, 4, &init);
    assert_eq!((given.error_code, given.producer_epoch), (0, 0));
    let id = given.producer_id.0;
    assert!(id >= 0);
    let again: InitProducerIdResponse = conn.call(ApiKey::InitProducerId, 4, &init);
    assert_ne!(again.producer_id.0, id, "every producer its own id");

    assert_eq!(produce(&mut conn, "once", idempotent_batch(id, 0, 0, &["a", "b"])).1, 0);
    assert_eq!(produce(&mut conn, "once", idempotent_batch(id, 0, 2, &["c"])).1, 2);
    let (error, offset, _) = produce(&mut conn, "once", idempotent_batch(id, 0, 0, &["a", "b"]));
    assert_eq!((error, offset), (0, 0), "a retry is answered with the original offset");
    assert_eq!(latest_offset(&mut conn, "once"), 3, "and not stored again");
    let (error, _, _) = produce(&mut conn, "once", idempotent_batch(id, 0, 7, &["gap"]));
    assert_eq!(error, 45, "OUT_OF_ORDER_SEQUENCE_NUMBER");
    assert_eq!(latest_offset(&mut conn, "once"), 3);

    broker.kill();
    let broker = Broker::start_on_port(&data, port, &["--kafka-port", &kafka_port]);
    let mut conn = KafkaConnection::connect(broker.kafka_port.unwrap());
    let (error, offset, _) = produce(&mut conn, "once", idempotent_batch(id, 0, 2, &["c"]));
    assert_eq!((error, offset), (0, 2), "after a restart, a retry is still known");
    assert_eq!(latest_offset(&mut conn, "once"), 3);
    assert_eq!(produce(&mut conn, "once", idempotent_batch(id, 0, 3, &["d"])).1, 3, "the sequence goes on");
    // Naming an id (KIP-360) gets a fresh one, as from Kafka: no client fences
    // another's id, and the named id goes on at its own epoch.
    init.producer_id = ProducerId(id);
    init.producer_epoch = 0;
    let renamed: InitProducerIdResponse = conn.call(ApiKey::InitProducerId, 4, &init);
    assert_eq!(renamed.producer_epoch, 0);
    // Ids come from blocks reserved in the metadata store: after a restart, the first
    // is past the block in use before it, whatever the clock says.
    assert!(renamed.producer_id.0 >= 1000 && id < 1000 && again.producer_id.0 < 1000, "{renamed:?}, {id}");
    // Connections land on either shard; shard 0 gives every id.
    let mut given = std::collections::BTreeSet::from([id, again.producer_id.0, renamed.producer_id.0]);
    init.producer_id = ProducerId(-1);
    init.producer_epoch = -1;
    for _ in 0..6 {
        let mut other = KafkaConnection::connect(broker.kafka_port.unwrap());
        let fresh: InitProducerIdResponse = other.call(ApiKey::InitProducerId, 4, &init);
        assert!(given.insert(fresh.producer_id.0), "{fresh:?} given twice");
    }
    assert_eq!(produce(&mut conn, "once", idempotent_batch(id, 0, 4, &["e"])).1, 4, "the named id is not fenced");
    // A producer that bumps its own epoch (the Java client does) starts it at 0, and
    // its older epoch is fenced from then on.
    assert_eq!(produce(&mut conn, "once", idempotent_batch(id, 1, 0, &["f"])).1, 5);
    let (error, _, _) = produce(&mut conn, "once", idempotent_batch(id, 0, 5, &["stale"]));
    assert_eq!(error, 47, "INVALID_PRODUCER_EPOCH");
    assert_eq!(latest_offset(&mut conn, "once"), 6);
}
