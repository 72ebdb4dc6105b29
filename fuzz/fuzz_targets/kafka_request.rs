//! Kafka request frames: the header read by `strand::kafka::codec`, then the body
//! decoded as the request its api key names, with the patched `kafka-protocol`
//! (`vendor/kafka-protocol`), and the UNSUPPORTED_VERSION answer the listener makes of
//! it for an API or version it does not serve (`strand::kafka::unsupported`), whose
//! decoding reaches every API the codec knows. Nothing may panic, and no input may allocate from a
//! count the frame cannot hold (libFuzzer's `-rss_limit_mb` and `-malloc_limit_mb`
//! catch one that does).
#![no_main]

use bytes::Bytes;
use kafka_protocol::messages::*;
use libfuzzer_sys::fuzz_target;
use strand::kafka::codec::RequestFrame;

macro_rules! decode_as {
    ($frame:expr, $($key:ident => $request:ident),* $(,)?) => {
        match $frame.api_key {
            $( ApiKey::$key => { let _ = $frame.decode::<$request>(); } )*
            _ => {}
        }
    };
}

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = RequestFrame::parse(Bytes::copy_from_slice(data)) else { return };
    decode_as!(frame,
        Produce => ProduceRequest, Fetch => FetchRequest, ListOffsets => ListOffsetsRequest,
        Metadata => MetadataRequest, OffsetCommit => OffsetCommitRequest, OffsetFetch => OffsetFetchRequest,
        FindCoordinator => FindCoordinatorRequest, JoinGroup => JoinGroupRequest, Heartbeat => HeartbeatRequest,
        LeaveGroup => LeaveGroupRequest, SyncGroup => SyncGroupRequest, DescribeGroups => DescribeGroupsRequest,
        ListGroups => ListGroupsRequest, ApiVersions => ApiVersionsRequest, CreateTopics => CreateTopicsRequest,
        DeleteTopics => DeleteTopicsRequest, DeleteRecords => DeleteRecordsRequest,
        InitProducerId => InitProducerIdRequest, OffsetForLeaderEpoch => OffsetForLeaderEpochRequest,
        DescribeConfigs => DescribeConfigsRequest, AlterConfigs => AlterConfigsRequest,
        CreatePartitions => CreatePartitionsRequest, DeleteGroups => DeleteGroupsRequest,
        IncrementalAlterConfigs => IncrementalAlterConfigsRequest, OffsetDelete => OffsetDeleteRequest,
        DescribeCluster => DescribeClusterRequest, DescribeProducers => DescribeProducersRequest,
        ConsumerGroupHeartbeat => ConsumerGroupHeartbeatRequest,
        ConsumerGroupDescribe => ConsumerGroupDescribeRequest,
    );
    let _ = strand::kafka::unsupported::answer(frame.api_key, frame.version, frame.body.clone());
});
