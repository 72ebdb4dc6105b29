//! The Kafka APIs on a partition's records and a group's offsets, against the real
//! binary over the wire: DeleteRecords (durable across a kill), ListOffsets by
//! timestamp, newest timestamp (KIP-734), earliest local and latest tiered
//! (KIP-1005), DescribeProducers, OffsetDelete and ConsumerGroupDescribe (KIP-848).

mod common;

use bytes::Bytes;
use common::kafka::{fetch_request, latest_offset, metadata, name, produce, KafkaConnection};
use common::Broker;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strand_protocol::BatchBuilder;

/// One batch whose records carry `timestamps`, of producer `idempotent` (id, first
/// sequence) when given.
fn timed_batch(timestamps: &[i64], idempotent: Option<(i64, i32)>) -> Bytes {
    let mut builder = match idempotent {
        Some((producer_id, sequence)) => BatchBuilder::new().idempotent(producer_id, 0, sequence),
        None => BatchBuilder::new(),
    };
    for (i, &timestamp) in timestamps.iter().enumerate() {
        builder.push(Some(format!("k{i}").as_bytes()), Some(b"value"), &[], timestamp);
    }
    Bytes::from(builder.finish())
}

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

/// ListOffsets of partition 0 of `topic` at `timestamp`: (error, offset, timestamp).
fn list_offset(conn: &mut KafkaConnection, version: i16, topic: &str, timestamp: i64) -> (i16, i64, i64) {
    let mut partition = list_offsets_request::ListOffsetsPartition::default();
    partition.partition_index = 0;
    partition.timestamp = timestamp;
    let mut asked = list_offsets_request::ListOffsetsTopic::default();
    asked.name = name(topic);
    asked.partitions = vec![partition];
    let mut request = ListOffsetsRequest::default();
    request.replica_id = BrokerId(-1);
    request.topics = vec![asked];
    let response: ListOffsetsResponse = conn.call(ApiKey::ListOffsets, version, &request);
    let part = &response.topics[0].partitions[0];
    (part.error_code, part.offset, part.timestamp)
}

/// DeleteRecords of partition 0 of each topic, each before its offset: (error, low
/// watermark) per topic.
fn delete_records(conn: &mut KafkaConnection, asked: &[(&str, i64)]) -> Vec<(i16, i64)> {
    let mut request = DeleteRecordsRequest::default();
    request.timeout_ms = 10_000;
    request.topics = asked
        .iter()
        .map(|(topic, offset)| {
            let mut partition = delete_records_request::DeleteRecordsPartition::default();
            partition.partition_index = 0;
            partition.offset = *offset;
            let mut out = delete_records_request::DeleteRecordsTopic::default();
            out.name = name(topic);
            out.partitions = vec![partition];
            out
        })
        .collect();
    let response: DeleteRecordsResponse = conn.call(ApiKey::DeleteRecords, 2, &request);
    response.topics.iter().map(|t| (t.partitions[0].error_code, t.partitions[0].low_watermark)).collect()
}

/// DescribeProducers of partition 0: (id, epoch, last sequence, last timestamp) each.
fn producers(conn: &mut KafkaConnection, topic: &str) -> Vec<(i64, i32, i32, i64)> {
    let mut asked = describe_producers_request::TopicRequest::default();
    asked.name = name(topic);
    asked.partition_indexes = vec![0];
    let mut request = DescribeProducersRequest::default();
    request.topics = vec![asked];
    let response: DescribeProducersResponse = conn.call(ApiKey::DescribeProducers, 0, &request);
    let part = &response.topics[0].partitions[0];
    assert_eq!(part.error_code, 0);
    part.active_producers
        .iter()
        .map(|p| (p.producer_id.0, p.producer_epoch, p.last_sequence, p.last_timestamp))
        .collect()
}

/// Records before a DeleteRecords offset are gone for good: not fetched (OFFSET_OUT_OF_RANGE
/// with the new log start), not found by timestamp, and still gone after the broker is
/// killed and started again. Lookups by timestamp answer the exact record inside a
/// batch; DescribeProducers shows the idempotent producer, rebuilt after the restart.
#[test]
fn deleted_records_stay_deleted_across_a_kill_and_lookups_find_the_exact_record() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (port, kafka_port) = common::free_ports_with_kafka();
    let mut broker = Broker::start_on_port(&data, port, &["--kafka-port", &kafka_port]);
    let mut conn = KafkaConnection::connect(broker.kafka_port.unwrap());
    metadata(&mut conn, 12, &["history"], true);
    let producer_id = 4_242;
    for (batch, base) in [
        (timed_batch(&[1_000, 1_100, 1_200], None), 0),
        (timed_batch(&[5_000, 9_000, 2_000], None), 3),
        (timed_batch(&[3_000], None), 6),
        (timed_batch(&[4_000, 4_100], Some((producer_id, 0))), 7),
    ] {
        assert_eq!(produce(&mut conn, "history", batch).1, base);
    }
    assert_eq!(list_offset(&mut conn, 7, "history", -3), (0, 4, 9_000), "MAX_TIMESTAMP: the record, not its batch");
    assert_eq!(list_offset(&mut conn, 8, "history", -4), (0, 0, -1), "EARLIEST_LOCAL is the earliest");
    assert_eq!(list_offset(&mut conn, 9, "history", -5), (0, -1, -1), "LATEST_TIERED: nothing is tiered");
    assert_eq!(list_offset(&mut conn, 10, "history", 1_150).1, 2, "the first record at or after");
    assert_eq!(list_offset(&mut conn, 6, "history", 6_000).1, 4);
    assert_eq!(list_offset(&mut conn, 6, "history", 9_001).1, -1, "none that recent");
    assert_eq!(producers(&mut conn, "history"), vec![(producer_id, 0, 1, 4_100)]);

    let refused = delete_records(&mut conn, &[("history", 100), ("__consumer_offsets", -1), ("nowhere", 0)]);
    assert_eq!(refused, vec![(1, -1), (17, -1), (3, -1)], "past the end, internal, unknown");
    assert_eq!(delete_records(&mut conn, &[("history", 4)]), vec![(0, 4)]);
    assert_eq!(delete_records(&mut conn, &[("history", 2)]), vec![(0, 4)], "a start never moves back");
    assert_eq!(list_offset(&mut conn, 6, "history", -2).1, 4);
    assert_eq!(list_offset(&mut conn, 6, "history", 0).1, 4, "a lookup by time starts at the log start");
    let response: FetchResponse = conn.call(ApiKey::Fetch, 12, &fetch_request("history", uuid::Uuid::nil(), 2, 0));
    let part = &response.responses[0].partitions[0];
    assert_eq!(part.error_code, 1, "OFFSET_OUT_OF_RANGE below the start");
    let response: FetchResponse = conn.call(ApiKey::Fetch, 12, &fetch_request("history", uuid::Uuid::nil(), 4, 0));
    let part = &response.responses[0].partitions[0];
    assert_eq!((part.error_code, part.log_start_offset), (0, 4));
    let header = strand_protocol::batch::BatchHeader::parse(part.records.as_ref().unwrap()).unwrap();
    assert_eq!(header.base_offset, 3, "the batch holding the start is served whole");

    broker.kill();
    let broker = Broker::start_on_port(&data, port, &["--kafka-port", &kafka_port]);
    let mut conn = KafkaConnection::connect(broker.kafka_port.unwrap());
    assert_eq!(list_offset(&mut conn, 6, "history", -2).1, 4, "the start survives a kill");
    assert_eq!(producers(&mut conn, "history"), vec![(producer_id, 0, 1, 4_100)], "rebuilt from the log");
    assert_eq!(delete_records(&mut conn, &[("history", -1)]), vec![(0, 9)], "-1: up to the high watermark");
    assert_eq!(list_offset(&mut conn, 6, "history", -2).1, 9);
    assert_eq!(list_offset(&mut conn, 7, "history", -3).1, -1, "no record left to be the newest");
    assert_eq!(produce(&mut conn, "history", timed_batch(&[10_000], None)).1, 9, "appends go on from the end");
    assert_eq!(latest_offset(&mut conn, "history"), 10);
}

/// OffsetCommit of partition 0 of each topic for `group`, as an administrator (no
/// member): the error of each.
fn admin_commit(conn: &mut KafkaConnection, group: &str, offsets: &[(&str, i64)]) -> Vec<i16> {
    let mut request = OffsetCommitRequest::default();
    request.group_id = GroupId(text(group));
    request.generation_id_or_member_epoch = -1;
    request.retention_time_ms = -1;
    request.topics = offsets
        .iter()
        .map(|(topic, offset)| {
            let mut partition = offset_commit_request::OffsetCommitRequestPartition::default();
            partition.partition_index = 0;
            partition.committed_offset = *offset;
            partition.committed_leader_epoch = -1;
            let mut out = offset_commit_request::OffsetCommitRequestTopic::default();
            out.name = name(topic);
            out.partitions = vec![partition];
            out
        })
        .collect();
    let response: OffsetCommitResponse = conn.call(ApiKey::OffsetCommit, 8, &request);
    response.topics.iter().map(|t| t.partitions[0].error_code).collect()
}

/// The committed offsets of partition 0 of `topics` for `group`.
fn committed(conn: &mut KafkaConnection, group: &str, topics: &[&str]) -> Vec<i64> {
    let mut request = OffsetFetchRequest::default();
    request.group_id = GroupId(text(group));
    request.topics = Some(
        topics
            .iter()
            .map(|topic| {
                let mut asked = offset_fetch_request::OffsetFetchRequestTopic::default();
                asked.name = name(topic);
                asked.partition_indexes = vec![0];
                asked
            })
            .collect(),
    );
    let response: OffsetFetchResponse = conn.call(ApiKey::OffsetFetch, 7, &request);
    assert_eq!(response.error_code, 0);
    topics
        .iter()
        .map(|topic| {
            let t = response.topics.iter().find(|t| t.name.0.as_str() == *topic).expect("every topic answered");
            t.partitions[0].committed_offset
        })
        .collect()
}

/// OffsetDelete of partition 0 of `topics`: (the group's error, each partition's).
fn delete_offsets(conn: &mut KafkaConnection, group: &str, topics: &[&str]) -> (i16, Vec<i16>) {
    let mut request = OffsetDeleteRequest::default();
    request.group_id = GroupId(text(group));
    request.topics = topics
        .iter()
        .map(|topic| {
            let mut partition = offset_delete_request::OffsetDeleteRequestPartition::default();
            partition.partition_index = 0;
            let mut out = offset_delete_request::OffsetDeleteRequestTopic::default();
            out.name = name(topic);
            out.partitions = vec![partition];
            out
        })
        .collect();
    let response: OffsetDeleteResponse = conn.call(ApiKey::OffsetDelete, 0, &request);
    (response.error_code, response.topics.iter().map(|t| t.partitions[0].error_code).collect())
}

/// OffsetDelete forgets a group's offsets of topics its members do not subscribe to
/// (GROUP_SUBSCRIBED_TO_TOPIC for those they do), durably: still forgotten after a
/// kill. ConsumerGroupDescribe shows a KIP-848 member with its subscription and
/// assignment, and GROUP_ID_NOT_FOUND for a group the broker does not know.
#[test]
fn offsets_of_unsubscribed_topics_can_be_deleted_and_kip848_groups_are_described() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (port, kafka_port) = common::free_ports_with_kafka();
    let mut broker = Broker::start_on_port(&data, port, &["--kafka-port", &kafka_port]);
    let mut conn = KafkaConnection::connect(broker.kafka_port.unwrap());
    let topics = metadata(&mut conn, 12, &["orders", "audit"], true);
    let orders_id = topics.topics.iter().find(|t| t.name.as_ref().unwrap().0.as_str() == "orders").unwrap().topic_id;
    for topic in ["orders", "audit"] {
        produce(&mut conn, topic, timed_batch(&[1, 2, 3, 4, 5], None));
    }
    assert_eq!(admin_commit(&mut conn, "billing", &[("orders", 3), ("audit", 5)]), vec![0, 0]);

    let member_id = uuid::Uuid::from_u128(0x5eed_0000_0000_4000_8000_0000_0000_0001).to_string();
    let mut join = ConsumerGroupHeartbeatRequest::default();
    join.group_id = GroupId(text("billing"));
    join.member_id = text(&member_id);
    join.member_epoch = 0;
    join.rebalance_timeout_ms = 30_000;
    join.subscribed_topic_names = Some(vec![name("orders")]);
    join.topic_partitions = Some(Vec::new());
    let mut joined: ConsumerGroupHeartbeatResponse = conn.call(ApiKey::ConsumerGroupHeartbeat, 1, &join);
    assert_eq!(joined.error_code, 0);
    assert!(joined.member_epoch > 0, "epoch 0 is a joining member's");
    // Heartbeats until the first assignment (after the group's initial delay).
    let started = std::time::Instant::now();
    while joined.assignment.as_ref().is_none_or(|a| a.topic_partitions.is_empty()) {
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "no assignment: {joined:?}");
        std::thread::sleep(std::time::Duration::from_millis(200));
        let mut beat = ConsumerGroupHeartbeatRequest::default();
        beat.group_id = GroupId(text("billing"));
        beat.member_id = text(&member_id);
        beat.member_epoch = joined.member_epoch;
        beat.rebalance_timeout_ms = 30_000;
        joined = conn.call(ApiKey::ConsumerGroupHeartbeat, 1, &beat);
        assert_eq!(joined.error_code, 0);
    }

    assert_eq!(delete_offsets(&mut conn, "billing", &["orders", "audit"]), (0, vec![86, 0]));
    assert_eq!(committed(&mut conn, "billing", &["orders", "audit"]), vec![3, -1]);
    assert_eq!(delete_offsets(&mut conn, "nobody", &["orders"]).0, 69, "GROUP_ID_NOT_FOUND");

    let mut describe = ConsumerGroupDescribeRequest::default();
    describe.group_ids = vec![GroupId(text("billing")), GroupId(text("nobody"))];
    let described: ConsumerGroupDescribeResponse = conn.call(ApiKey::ConsumerGroupDescribe, 1, &describe);
    let billing = &described.groups[0];
    assert_eq!((billing.error_code, billing.group_state.as_str()), (0, "Stable"));
    assert_eq!(billing.group_epoch, joined.member_epoch);
    assert_eq!(billing.members.len(), 1);
    let member = &billing.members[0];
    assert_eq!(member.member_id.as_str(), member_id);
    assert_eq!(member.subscribed_topic_names.iter().map(|t| t.0.as_str()).collect::<Vec<_>>(), vec!["orders"]);
    let target = &member.target_assignment.topic_partitions;
    assert_eq!(target.len(), 1);
    assert_eq!(
        (target[0].topic_id, target[0].topic_name.0.as_str(), &target[0].partitions[..]),
        (orders_id, "orders", &[0][..])
    );
    assert_eq!(described.groups[1].error_code, 69, "GROUP_ID_NOT_FOUND");

    broker.kill();
    let broker = Broker::start_on_port(&data, port, &["--kafka-port", &kafka_port]);
    let mut conn = KafkaConnection::connect(broker.kafka_port.unwrap());
    assert_eq!(committed(&mut conn, "billing", &["orders", "audit"]), vec![3, -1], "the deletion survives a kill");
    // With no members left, every topic's offsets may go.
    assert_eq!(delete_offsets(&mut conn, "billing", &["orders"]), (0, vec![0]));
    assert_eq!(committed(&mut conn, "billing", &["orders"]), vec![-1]);
}
