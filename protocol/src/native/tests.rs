use super::*;
use bytes::BytesMut;
use codec::Wire;
use proptest::prelude::*;

fn samples() -> (Vec<Request>, Vec<Response>) {
    let batch = Bytes::from(crate::BatchBuilder::new().tap_build());
    let requests = vec![
        Request::ApiVersions(ApiVersionsRequest {}),
        Request::Metadata(MetadataRequest { all_topics: 0, topics: vec!["orders".into(), "audit".into()] }),
        Request::CreateTopics(CreateTopicsRequest {
            topics: vec![CreatableTopic {
                name: "orders".into(),
                partitions: 8,
                configs: vec![ConfigEntry { key: "fsync".into(), value: "always".into() }],
            }],
        }),
        Request::DeleteTopics(DeleteTopicsRequest { names: vec!["orders".into()] }),
        Request::Produce(ProduceRequest {
            acks: ACKS_DURABLE,
            timeout_ms: 30_000,
            topics: vec![ProduceTopic {
                name: "orders".into(),
                partitions: vec![ProducePartition { partition: 3, records: batch.clone() }],
            }],
        }),
        Request::Fetch(FetchRequest {
            max_wait_ms: 500,
            min_bytes: 1,
            max_bytes: 1 << 20,
            topics: vec![FetchTopic {
                name: "orders".into(),
                partitions: vec![FetchPartition { partition: 3, offset: 42, max_bytes: 1 << 20 }],
            }],
        }),
        Request::ListOffsets(ListOffsetsRequest {
            topics: vec![ListOffsetsTopic {
                name: "orders".into(),
                partitions: vec![
                    ListOffsetsPartition { partition: 0, spec: LIST_EARLIEST },
                    ListOffsetsPartition { partition: 1, spec: 1_700_000_000_000 },
                ],
            }],
        }),
        Request::JoinGroup(JoinGroupRequest {
            group: "billing".into(),
            member_id: String::new(),
            topics: vec!["orders".into()],
            session_timeout_ms: 10_000,
            strategy: "sticky".into(),
        }),
        Request::Heartbeat(HeartbeatRequest {
            group: "billing".into(),
            member_id: "m-1".into(),
            owned: vec![TopicPartitions { topic: "orders".into(), partitions: vec![0, 3] }],
        }),
        Request::LeaveGroup(LeaveGroupRequest { group: "billing".into(), member_id: "m-1".into() }),
        Request::OffsetCommit(OffsetCommitRequest {
            group: "billing".into(),
            member_id: "m-1".into(),
            generation: 4,
            topics: vec![CommitTopic {
                topic: "orders".into(),
                partitions: vec![CommitPartition { partition: 3, offset: 42, metadata: "host-a".into() }],
            }],
        }),
        Request::OffsetFetch(OffsetFetchRequest {
            group: "billing".into(),
            topics: vec![TopicPartitions { topic: "orders".into(), partitions: vec![3] }],
        }),
        Request::ListGroups(ListGroupsRequest {}),
        Request::DescribeGroup(DescribeGroupRequest { group: "billing".into() }),
        Request::AlterTopicConfigs(AlterTopicConfigsRequest {
            topics: vec![AlterableTopic {
                name: "orders".into(),
                set: vec![ConfigEntry { key: "retention_ms".into(), value: "-1".into() }],
                reset: vec!["fsync".into()],
            }],
        }),
        Request::DescribeTopicConfigs(DescribeTopicConfigsRequest { names: vec!["orders".into(), "audit".into()] }),
        Request::CreatePartitions(CreatePartitionsRequest {
            topics: vec![PartitionsTopic { name: "orders".into(), count: 12 }],
        }),
        Request::InitProducerId(InitProducerIdRequest { producer_id: -1, epoch: -1 }),
        Request::Authenticate(AuthenticateRequest {
            mechanism: "SCRAM-SHA-512".into(),
            token: Bytes::from_static(b"n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL"),
        }),
        Request::DescribeCluster(DescribeClusterRequest {}),
        Request::ReplicaFetch(ReplicaFetchRequest {
            broker: 2,
            broker_epoch: 1_796_411_494_551_488,
            max_wait_ms: 500,
            max_bytes: 1 << 20,
            partitions: vec![ReplicaFetchPartition {
                topic: "orders".into(),
                partition: 3,
                leader_epoch: 4,
                fetch_offset: 1000,
                last_fetched_epoch: 3,
                acked_offset: 990,
            }],
        }),
    ];
    let responses = vec![
        Response::ApiVersions(ApiVersionsResponse {
            error: ErrorCode::None,
            apis: ApiKey::ALL
                .iter()
                .map(|&api| ApiVersion { api_key: api as u16, min_version: 0, max_version: 0 })
                .collect(),
        }),
        Response::Metadata(MetadataResponse {
            shards: vec![ShardPort { shard: 0, port: 9401 }, ShardPort { shard: 1, port: 9402 }],
            topics: vec![TopicMetadata {
                error: ErrorCode::None,
                name: "orders".into(),
                partitions: vec![PartitionMetadata { partition: 0, shard: 1 }],
            }],
        }),
        Response::CreateTopics(CreateTopicsResponse {
            results: vec![TopicResult {
                name: "orders".into(),
                error: ErrorCode::TopicExists,
                message: "exists".into(),
            }],
        }),
        Response::DeleteTopics(DeleteTopicsResponse {
            results: vec![TopicResult { name: "x".into(), error: ErrorCode::UnknownTopic, message: String::new() }],
        }),
        Response::Produce(ProduceResponse {
            topics: vec![ProduceTopicResponse {
                name: "orders".into(),
                partitions: vec![ProducePartitionResponse {
                    partition: 3,
                    error: ErrorCode::None,
                    base_offset: 1000,
                    log_append_time_ms: -1,
                }],
            }],
        }),
        Response::Fetch(FetchResponse {
            topics: vec![FetchTopicResponse {
                name: "orders".into(),
                partitions: vec![FetchPartitionResponse {
                    partition: 3,
                    error: ErrorCode::None,
                    high_watermark: 43,
                    log_start_offset: 0,
                    records: batch,
                }],
            }],
        }),
        Response::ListOffsets(ListOffsetsResponse {
            topics: vec![ListOffsetsTopic {
                name: "orders".into(),
                partitions: vec![ListOffsetsPartition { partition: 0, spec: 0 }],
            }]
            .into_iter()
            .map(|t| ListOffsetsTopicResponse {
                name: t.name,
                partitions: vec![ListOffsetsPartitionResponse {
                    partition: 0,
                    error: ErrorCode::OffsetOutOfRange,
                    offset: -1,
                    timestamp: -1,
                }],
            })
            .collect(),
        }),
        Response::JoinGroup(JoinGroupResponse {
            error: ErrorCode::None,
            member_id: "m-1".into(),
            generation: 4,
            heartbeat_interval_ms: 3000,
            assigned: vec![TopicPartitions { topic: "orders".into(), partitions: vec![0, 3] }],
        }),
        Response::Heartbeat(HeartbeatResponse { error: ErrorCode::StaleGeneration, generation: 5, assigned: vec![] }),
        Response::LeaveGroup(LeaveGroupResponse { error: ErrorCode::UnknownMember }),
        Response::OffsetCommit(OffsetCommitResponse {
            error: ErrorCode::None,
            topics: vec![CommitTopicResult {
                topic: "orders".into(),
                partitions: vec![CommitPartitionResult { partition: 3, error: ErrorCode::NotAssigned }],
            }],
        }),
        Response::OffsetFetch(OffsetFetchResponse {
            error: ErrorCode::None,
            topics: vec![CommittedTopic {
                topic: "orders".into(),
                partitions: vec![CommittedPartition { partition: 3, offset: -1, metadata: String::new() }],
            }],
        }),
        Response::ListGroups(ListGroupsResponse {
            groups: vec![GroupListing { group: "billing".into(), members: 3, generation: 4 }],
        }),
        Response::DescribeGroup(DescribeGroupResponse {
            error: ErrorCode::None,
            group: "billing".into(),
            generation: 4,
            strategy: "sticky".into(),
            members: vec![GroupMemberDescription {
                member_id: "m-1".into(),
                topics: vec!["orders".into()],
                session_timeout_ms: 10_000,
                owned: vec![TopicPartitions { topic: "orders".into(), partitions: vec![0] }],
                target: vec![TopicPartitions { topic: "orders".into(), partitions: vec![0, 3] }],
            }],
        }),
        Response::AlterTopicConfigs(AlterTopicConfigsResponse {
            results: vec![TopicResult {
                name: "orders".into(),
                error: ErrorCode::InvalidConfig,
                message: "unknown topic setting".into(),
            }],
        }),
        Response::DescribeTopicConfigs(DescribeTopicConfigsResponse {
            topics: vec![
                TopicConfigs {
                    name: "orders".into(),
                    error: ErrorCode::None,
                    entries: vec![ConfigEntry { key: "fsync".into(), value: "always".into() }],
                },
                TopicConfigs { name: "audit".into(), error: ErrorCode::UnknownTopic, entries: vec![] },
            ],
        }),
        Response::CreatePartitions(CreatePartitionsResponse {
            results: vec![TopicResult { name: "orders".into(), error: ErrorCode::None, message: String::new() }],
        }),
        Response::InitProducerId(InitProducerIdResponse { error: ErrorCode::None, producer_id: 1000, epoch: 0 }),
        Response::Authenticate(AuthenticateResponse {
            error: ErrorCode::None,
            message: String::new(),
            token: Bytes::from_static(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="),
            authenticated: 1,
            session_lifetime_ms: 3_600_000,
        }),
        Response::DescribeCluster(DescribeClusterResponse {
            error: ErrorCode::None,
            cluster_id: "orders-cluster".into(),
            node_id: 2,
            controller: 1,
            brokers: vec![ClusterBroker {
                id: 2,
                epoch: 1_796_411_494_551_488,
                fenced: 0,
                rack: "a".into(),
                host: "10.0.0.2".into(),
                port: 9400,
                shard_ports: vec![ShardPort { shard: 0, port: 9401 }],
            }],
            topics: vec![TopicLayout {
                name: "orders".into(),
                partitions: vec![PartitionLayout {
                    partition: 0,
                    leader: -1,
                    leader_epoch: 3,
                    replicas: vec![ReplicaPlace { broker: 2, shard: 0 }, ReplicaPlace { broker: 3, shard: 1 }],
                    isr: vec![2],
                }],
            }],
        }),
        Response::ReplicaFetch(ReplicaFetchResponse {
            partitions: vec![ReplicaFetchPartitionResponse {
                topic: "orders".into(),
                partition: 3,
                error: ErrorCode::None,
                high_watermark: 995,
                log_start: 0,
                diverging_epoch: -1,
                diverging_end: 0,
                records: Bytes::from(crate::BatchBuilder::new().tap_build()),
            }],
        }),
    ];
    (requests, responses)
}

trait TapBuild {
    fn tap_build(self) -> Vec<u8>;
}

impl TapBuild for crate::BatchBuilder {
    fn tap_build(mut self) -> Vec<u8> {
        self.push(Some(b"k"), Some(b"v"), &[], 1);
        self.build()
    }
}

/// The one whole frame in `bytes`: its header and payload.
fn split_one(bytes: &[u8], limits: &Limits) -> (FrameHeader, Bytes) {
    let mut buf = BytesMut::from(bytes);
    let frame = split_frame(&mut buf, limits).unwrap().expect("a whole frame");
    assert!(buf.is_empty(), "exactly one frame");
    frame
}

#[test]
fn every_message_round_trips_through_a_frame() {
    let limits = Limits::default();
    let (requests, responses) = samples();
    for (i, request) in requests.iter().enumerate() {
        let mut out = Vec::new();
        request.encode(i as u32, &mut out);
        let (header, payload) = split_one(&out, &limits);
        assert_eq!(header.correlation_id.get(), i as u32);
        assert!(!header.is_response());
        assert_eq!(&Request::decode(&header, &payload, &limits).unwrap(), request);
    }
    for (i, response) in responses.iter().enumerate() {
        let mut out = Vec::new();
        response.encode(i as u32, &mut out);
        let (header, payload) = split_one(&out, &limits);
        assert!(header.is_response());
        assert_eq!(&Response::decode(&header, &payload, &limits).unwrap(), response);
    }
}

#[test]
fn partial_frames_wait_and_bad_ones_are_refused() {
    let limits = Limits { frame_bytes_max: 1024, array_count_max: 10 };
    let mut out = Vec::new();
    Request::ApiVersions(ApiVersionsRequest {}).encode(7, &mut out);
    for cut in 0..out.len() {
        let mut partial = BytesMut::from(&out[..cut]);
        assert_eq!(split_frame(&mut partial, &limits), Ok(None), "cut at {cut}");
    }
    let mut bad_magic = out.clone();
    bad_magic[4] ^= 0xff;
    assert!(matches!(split_frame(&mut BytesMut::from(&bad_magic[..]), &limits), Err(DecodeError::BadMagic { .. })));
    let mut huge = out.clone();
    huge[0..4].copy_from_slice(&(1u32 << 30).to_le_bytes());
    assert!(matches!(split_frame(&mut BytesMut::from(&huge[..]), &limits), Err(DecodeError::FrameTooLarge { .. })));
    let mut short = out.clone();
    short[0..4].copy_from_slice(&3u32.to_le_bytes());
    assert!(matches!(split_frame(&mut BytesMut::from(&short[..]), &limits), Err(DecodeError::FrameTooShort { .. })));

    // A count larger than the limit is refused before anything is allocated.
    let mut request = Vec::new();
    Request::DeleteTopics(DeleteTopicsRequest { names: vec!["a".into(); 11] }).encode(1, &mut request);
    let (header, payload) = split_one(&request, &limits);
    assert_eq!(Request::decode(&header, &payload, &limits), Err(DecodeError::CountTooLarge { count: 11, max: 10 }));

    // A count larger than the bytes present is refused the same way.
    let mut lying = Vec::new();
    Request::DeleteTopics(DeleteTopicsRequest { names: vec![] }).encode(1, &mut lying);
    let at = HEADER_BYTES;
    lying[at..at + 4].copy_from_slice(&5u32.to_le_bytes());
    let (header, payload) = split_one(&lying, &limits);
    assert!(matches!(Request::decode(&header, &payload, &limits), Err(DecodeError::Truncated { .. })));

    let mut unknown = out.clone();
    unknown[8..10].copy_from_slice(&99u16.to_le_bytes());
    let (header, payload) = split_one(&unknown, &limits);
    assert_eq!(Request::decode(&header, &payload, &limits), Err(DecodeError::UnknownApi { key: 99 }));
}

#[test]
fn fetched_records_are_slices_of_the_frame() {
    let limits = Limits::default();
    let (_, responses) = samples();
    let mut out = Vec::new();
    responses[5].encode(1, &mut out);
    let (header, payload) = split_one(&out, &limits);
    let Response::Fetch(fetch) = Response::decode(&header, &payload, &limits).unwrap() else { panic!("a fetch") };
    let records = &fetch.topics[0].partitions[0].records;
    let inside = payload.as_ptr() as usize..payload.as_ptr() as usize + payload.len();
    assert!(inside.contains(&(records.as_ptr() as usize)), "records point into the received payload");
    crate::batch::validate(records, Default::default()).unwrap();
}

#[test]
fn an_over_long_string_is_cut_at_a_character_boundary() {
    let message = "é".repeat(40_000); // 80,000 bytes
    let mut out = Vec::new();
    message.encode(&mut out);
    let payload = Bytes::from(out);
    let limits = Limits::default();
    let decoded = String::decode(&mut codec::Reader::new(&payload, &limits)).unwrap();
    assert_eq!(decoded.len(), 65_534, "the last whole character within 65,535 bytes");
    assert!(message.starts_with(&decoded));
}

fn decode_anything(bytes: &[u8]) {
    let limits = Limits { frame_bytes_max: 1 << 16, array_count_max: 1000 };
    let mut buf = BytesMut::from(bytes);
    while let Ok(Some((header, payload))) = split_frame(&mut buf, &limits) {
        let request = Request::decode(&header, &payload, &limits);
        let _ = Response::decode(&header, &payload, &limits);
        let layout = ProduceLayout::decode(&payload, &limits);
        if let Ok(Request::Produce(produce)) = request {
            assert_layout_agrees(&produce, &layout.expect("a decodable Produce has a layout"), &payload);
        }
    }
}

/// The layout finds exactly the fields and record bytes the full decoder finds.
fn assert_layout_agrees(produce: &messages::ProduceRequest, layout: &ProduceLayout, payload: &[u8]) {
    assert_eq!((layout.acks, layout.timeout_ms), (produce.acks, produce.timeout_ms));
    assert_eq!(layout.topics.len(), produce.topics.len());
    for (topic, laid) in produce.topics.iter().zip(&layout.topics) {
        assert_eq!(topic.name, laid.name);
        assert_eq!(topic.partitions.len(), laid.partitions.len());
        for (part, laid) in topic.partitions.iter().zip(&laid.partitions) {
            assert_eq!(part.partition, laid.partition);
            assert_eq!(&part.records[..], &payload[laid.records.clone()]);
        }
    }
}

#[test]
fn produce_pieces_concatenate_to_the_frame() {
    let (requests, _) = samples();
    for request in &requests {
        let Request::Produce(produce) = request else { continue };
        let mut frame = Vec::new();
        request.encode(42, &mut frame);
        let pieces: Vec<u8> = produce.encode_pieces(42).iter().flat_map(|p| p.iter().copied()).collect();
        assert_eq!(pieces, frame);
    }
    let empty = messages::ProduceRequest { acks: 1, timeout_ms: 5, topics: Vec::new() };
    let mut frame = Vec::new();
    Request::Produce(empty.clone()).encode(1, &mut frame);
    assert_eq!(empty.encode_pieces(1).concat(), frame);
}

#[test]
fn produce_layout_agrees_with_the_decoder() {
    let (requests, _) = samples();
    let limits = Limits::default();
    let produce = requests.iter().find(|r| matches!(r, Request::Produce(_))).expect("a sample produce");
    let mut frame = Vec::new();
    produce.encode(9, &mut frame);
    let (_, payload) = split_one(&frame, &limits);
    let Request::Produce(decoded) = produce else { unreachable!() };
    assert_layout_agrees(decoded, &ProduceLayout::decode(&payload, &limits).unwrap(), &payload);
    let mut buf = BytesMut::from(&frame[..]);
    let (_, owned) = split_frame_mut(&mut buf, &limits).unwrap().unwrap();
    assert_eq!(&owned[..], &payload[..]);
    assert!(buf.is_empty());
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        decode_anything(&bytes);
    }

    #[test]
    fn random_payloads_behind_a_valid_header_never_panic(
        api in 0u16..20, payload in proptest::collection::vec(any::<u8>(), 0..256)
    ) {
        let header = FrameHeader::new(api, 0, 1, false, payload.len());
        let mut frame = zerocopy::IntoBytes::as_bytes(&header).to_vec();
        frame.extend_from_slice(&payload);
        decode_anything(&frame);
    }

    #[test]
    fn mutated_frames_never_panic(which in any::<usize>(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        let (requests, responses) = samples();
        let which = which % (requests.len() + responses.len());
        let mut frame = Vec::new();
        if which < requests.len() {
            requests[which].encode(1, &mut frame)
        } else {
            responses[which - requests.len()].encode(1, &mut frame)
        }
        for (at, value) in flips {
            let len = frame.len();
            frame[at % len] = value;
        }
        decode_anything(&frame);
    }
}
