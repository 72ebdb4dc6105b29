//! The requests and responses of the native protocol, version 0 of each. Fields are
//! encoded in the order declared; `protocol/SPEC.md` lists the same layouts.

use super::codec::wire_struct;
use super::error_code::ErrorCode;
use bytes::Bytes;

wire_struct! {
    /// ApiVersions request: no fields.
    pub struct ApiVersionsRequest {}
}

wire_struct! {
    /// One api the broker serves, with its version range.
    pub struct ApiVersion { pub api_key: u16, pub min_version: u16, pub max_version: u16 }
}

wire_struct! {
    /// ApiVersions response.
    pub struct ApiVersionsResponse { pub error: ErrorCode, pub apis: Vec<ApiVersion> }
}

wire_struct! {
    /// Metadata request: `all_topics` = 1 asks for every topic and ignores `topics`.
    pub struct MetadataRequest { pub all_topics: u8, pub topics: Vec<String> }
}

wire_struct! {
    /// A shard and the port that lands a connection on it.
    pub struct ShardPort { pub shard: u32, pub port: u16 }
}

wire_struct! {
    /// A partition and the shard that owns it.
    pub struct PartitionMetadata { pub partition: u32, pub shard: u32 }
}

wire_struct! {
    /// One topic in a Metadata response; `error` is `UnknownTopic` for a name asked
    /// for that does not exist.
    pub struct TopicMetadata { pub error: ErrorCode, pub name: String, pub partitions: Vec<PartitionMetadata> }
}

wire_struct! {
    /// Metadata response: the shards' ports (for shard-aware clients) and the topics.
    pub struct MetadataResponse { pub shards: Vec<ShardPort>, pub topics: Vec<TopicMetadata> }
}

wire_struct! {
    /// A topic configuration entry, as `strand topic create` and Kafka's CreateTopics
    /// take them: a key of the topic configuration and its value as text.
    pub struct ConfigEntry { pub key: String, pub value: String }
}

wire_struct! {
    /// One topic to create.
    pub struct CreatableTopic { pub name: String, pub partitions: u32, pub configs: Vec<ConfigEntry> }
}

wire_struct! {
    /// CreateTopics request.
    pub struct CreateTopicsRequest { pub topics: Vec<CreatableTopic> }
}

wire_struct! {
    /// The outcome for one topic; `message` explains a non-`None` error.
    pub struct TopicResult { pub name: String, pub error: ErrorCode, pub message: String }
}

wire_struct! {
    /// CreateTopics response, one result per topic asked for, in order.
    pub struct CreateTopicsResponse { pub results: Vec<TopicResult> }
}

wire_struct! {
    /// DeleteTopics request.
    pub struct DeleteTopicsRequest { pub names: Vec<String> }
}

wire_struct! {
    /// DeleteTopics response, one result per name, in order.
    pub struct DeleteTopicsResponse { pub results: Vec<TopicResult> }
}

wire_struct! {
    /// One topic whose configuration changes: each `set` entry takes its value, each
    /// `reset` key goes back to the broker's default; keys not named keep theirs.
    pub struct AlterableTopic { pub name: String, pub set: Vec<ConfigEntry>, pub reset: Vec<String> }
}

wire_struct! {
    /// AlterTopicConfigs request. A topic's changes apply whole or not at all.
    pub struct AlterTopicConfigsRequest { pub topics: Vec<AlterableTopic> }
}

wire_struct! {
    /// AlterTopicConfigs response, one result per topic asked for, in order.
    pub struct AlterTopicConfigsResponse { pub results: Vec<TopicResult> }
}

wire_struct! {
    /// DescribeTopicConfigs request.
    pub struct DescribeTopicConfigsRequest { pub names: Vec<String> }
}

wire_struct! {
    /// A topic's whole configuration, every key with its value as text (retention
    /// keys `-1` for "keep forever"); `error` is `UnknownTopic` for a name that does
    /// not exist, with no entries.
    pub struct TopicConfigs { pub name: String, pub error: ErrorCode, pub entries: Vec<ConfigEntry> }
}

wire_struct! {
    /// DescribeTopicConfigs response, one per name, in order.
    pub struct DescribeTopicConfigsResponse { pub topics: Vec<TopicConfigs> }
}

wire_struct! {
    /// A topic to grow to `count` partitions in all (never fewer than it has).
    pub struct PartitionsTopic { pub name: String, pub count: u32 }
}

wire_struct! {
    /// CreatePartitions request.
    pub struct CreatePartitionsRequest { pub topics: Vec<PartitionsTopic> }
}

wire_struct! {
    /// CreatePartitions response, one result per topic asked for, in order.
    pub struct CreatePartitionsResponse { pub results: Vec<TopicResult> }
}

/// `acks` of a Produce request: answer without waiting (no response is sent).
pub const ACKS_NONE: u8 = 0;
/// `acks`: answer once appended to the partition's log.
pub const ACKS_LEADER: u8 = 1;
/// `acks`: answer once the topic's fsync policy is met.
pub const ACKS_DURABLE: u8 = 2;

wire_struct! {
    /// Record batches for one partition: one or more Kafka RecordBatch v2, back to back.
    pub struct ProducePartition { pub partition: u32, pub records: Bytes }
}

wire_struct! {
    /// The partitions of one topic to produce to.
    pub struct ProduceTopic { pub name: String, pub partitions: Vec<ProducePartition> }
}

wire_struct! {
    /// Produce request.
    pub struct ProduceRequest { pub acks: u8, pub timeout_ms: u32, pub topics: Vec<ProduceTopic> }
}

wire_struct! {
    /// Where a partition's batches landed: the base offset of the first, and the
    /// broker's timestamp for log-append-time topics (-1 otherwise).
    pub struct ProducePartitionResponse {
        pub partition: u32,
        pub error: ErrorCode,
        pub base_offset: i64,
        pub log_append_time_ms: i64,
    }
}

wire_struct! {
    /// One topic of a Produce response.
    pub struct ProduceTopicResponse { pub name: String, pub partitions: Vec<ProducePartitionResponse> }
}

wire_struct! {
    /// Produce response.
    pub struct ProduceResponse { pub topics: Vec<ProduceTopicResponse> }
}

wire_struct! {
    /// One partition to fetch from.
    pub struct FetchPartition { pub partition: u32, pub offset: u64, pub max_bytes: u32 }
}

wire_struct! {
    /// The partitions of one topic to fetch from.
    pub struct FetchTopic { pub name: String, pub partitions: Vec<FetchPartition> }
}

wire_struct! {
    /// Fetch request: wait up to `max_wait_ms` for `min_bytes`, return at most
    /// `max_bytes` in all (but always at least one whole batch when one is there).
    pub struct FetchRequest { pub max_wait_ms: u32, pub min_bytes: u32, pub max_bytes: u32, pub topics: Vec<FetchTopic> }
}

wire_struct! {
    /// Stored batches of one partition, byte for byte as the log holds them.
    pub struct FetchPartitionResponse {
        pub partition: u32,
        pub error: ErrorCode,
        pub high_watermark: u64,
        pub log_start_offset: u64,
        pub records: Bytes,
    }
}

wire_struct! {
    /// One topic of a Fetch response.
    pub struct FetchTopicResponse { pub name: String, pub partitions: Vec<FetchPartitionResponse> }
}

wire_struct! {
    /// Fetch response.
    pub struct FetchResponse { pub topics: Vec<FetchTopicResponse> }
}

/// ListOffsets `spec`: the high watermark, the offset after the last readable record.
pub const LIST_LATEST: i64 = -1;
/// ListOffsets `spec`: the earliest offset stored.
pub const LIST_EARLIEST: i64 = -2;

wire_struct! {
    /// One partition to look up: `spec` is `LIST_LATEST`, `LIST_EARLIEST`, or a
    /// timestamp in ms (the first batch whose max timestamp is at least that).
    pub struct ListOffsetsPartition { pub partition: u32, pub spec: i64 }
}

wire_struct! {
    /// The partitions of one topic to look up.
    pub struct ListOffsetsTopic { pub name: String, pub partitions: Vec<ListOffsetsPartition> }
}

wire_struct! {
    /// ListOffsets request.
    pub struct ListOffsetsRequest { pub topics: Vec<ListOffsetsTopic> }
}

wire_struct! {
    /// The offset found (-1 when no batch is that recent) and, for a timestamp
    /// lookup, that batch's max timestamp (-1 otherwise).
    pub struct ListOffsetsPartitionResponse { pub partition: u32, pub error: ErrorCode, pub offset: i64, pub timestamp: i64 }
}

wire_struct! {
    /// One topic of a ListOffsets response.
    pub struct ListOffsetsTopicResponse { pub name: String, pub partitions: Vec<ListOffsetsPartitionResponse> }
}

wire_struct! {
    /// ListOffsets response.
    pub struct ListOffsetsResponse { pub topics: Vec<ListOffsetsTopicResponse> }
}

wire_struct! {
    /// Partitions of one topic.
    pub struct TopicPartitions { pub topic: String, pub partitions: Vec<u32> }
}

wire_struct! {
    /// JoinGroup: become a member of `group` (a new one with an empty `member_id`, or
    /// again with the id the broker gave), subscribed to `topics`. `strategy` is
    /// `sticky` (also when empty), `range` or `round-robin`.
    pub struct JoinGroupRequest {
        pub group: String,
        pub member_id: String,
        pub topics: Vec<String>,
        pub session_timeout_ms: u32,
        pub strategy: String,
    }
}

wire_struct! {
    /// The member's id, the group's generation, how often to heartbeat, and the
    /// partitions the member may consume now.
    pub struct JoinGroupResponse {
        pub error: ErrorCode,
        pub member_id: String,
        pub generation: u32,
        pub heartbeat_interval_ms: u32,
        pub assigned: Vec<TopicPartitions>,
    }
}

wire_struct! {
    /// Heartbeat: the member is alive and consumes `owned`, which tells the
    /// coordinator which revoked partitions it has let go of.
    pub struct HeartbeatRequest { pub group: String, pub member_id: String, pub owned: Vec<TopicPartitions> }
}

wire_struct! {
    /// The group's generation and the partitions the member may consume now: it stops
    /// consuming any it owns that are not listed (revoked), and starts on new ones.
    pub struct HeartbeatResponse { pub error: ErrorCode, pub generation: u32, pub assigned: Vec<TopicPartitions> }
}

wire_struct! {
    /// LeaveGroup: the member is done; its partitions go to the others at once.
    pub struct LeaveGroupRequest { pub group: String, pub member_id: String }
}

wire_struct! {
    /// LeaveGroup response.
    pub struct LeaveGroupResponse { pub error: ErrorCode }
}

wire_struct! {
    /// One committed position: `offset` is the next offset to consume.
    pub struct CommitPartition { pub partition: u32, pub offset: u64, pub metadata: String }
}

wire_struct! {
    /// Positions of one topic's partitions.
    pub struct CommitTopic { pub topic: String, pub partitions: Vec<CommitPartition> }
}

wire_struct! {
    /// OffsetCommit: store positions for `group`. A member commits partitions it owns,
    /// with the group's current `generation`; an empty `member_id` with generation 0
    /// is an administrative commit, accepted only while the group has no members.
    pub struct OffsetCommitRequest {
        pub group: String,
        pub member_id: String,
        pub generation: u32,
        pub topics: Vec<CommitTopic>,
    }
}

wire_struct! {
    /// The outcome for one partition.
    pub struct CommitPartitionResult { pub partition: u32, pub error: ErrorCode }
}

wire_struct! {
    /// Outcomes for one topic.
    pub struct CommitTopicResult { pub topic: String, pub partitions: Vec<CommitPartitionResult> }
}

wire_struct! {
    /// OffsetCommit response: `error` for the whole request (unknown member, stale
    /// generation…), else one result per partition.
    pub struct OffsetCommitResponse { pub error: ErrorCode, pub topics: Vec<CommitTopicResult> }
}

wire_struct! {
    /// OffsetFetch: the committed positions of `group` for `topics` (every committed
    /// partition when `topics` is empty).
    pub struct OffsetFetchRequest { pub group: String, pub topics: Vec<TopicPartitions> }
}

wire_struct! {
    /// A committed position; `offset` is -1 when none was committed.
    pub struct CommittedPartition { pub partition: u32, pub offset: i64, pub metadata: String }
}

wire_struct! {
    /// Committed positions of one topic.
    pub struct CommittedTopic { pub topic: String, pub partitions: Vec<CommittedPartition> }
}

wire_struct! {
    /// OffsetFetch response.
    pub struct OffsetFetchResponse { pub error: ErrorCode, pub topics: Vec<CommittedTopic> }
}

wire_struct! {
    /// ListGroups request: no fields.
    pub struct ListGroupsRequest {}
}

wire_struct! {
    /// A group the broker knows: with members, or with committed offsets.
    pub struct GroupListing { pub group: String, pub members: u32, pub generation: u32 }
}

wire_struct! {
    /// ListGroups response.
    pub struct ListGroupsResponse { pub groups: Vec<GroupListing> }
}

wire_struct! {
    /// DescribeGroup request.
    pub struct DescribeGroupRequest { pub group: String }
}

wire_struct! {
    /// One member: what it subscribes to, what it owns now, and what it is to own
    /// once the partitions moving to it are released.
    pub struct GroupMemberDescription {
        pub member_id: String,
        pub topics: Vec<String>,
        pub session_timeout_ms: u32,
        pub owned: Vec<TopicPartitions>,
        pub target: Vec<TopicPartitions>,
    }
}

wire_struct! {
    /// DescribeGroup response.
    pub struct DescribeGroupResponse {
        pub error: ErrorCode,
        pub group: String,
        pub generation: u32,
        pub strategy: String,
        pub members: Vec<GroupMemberDescription>,
    }
}

wire_struct! {
    /// InitProducerId: an id and epoch for an idempotent producer. A new producer
    /// sends -1 and -1; one that lost its sequence (KIP-360) sends its id and epoch and
    /// gets the same id at the next epoch, which fences its older batches.
    pub struct InitProducerIdRequest { pub producer_id: i64, pub epoch: i32 }
}

wire_struct! {
    /// InitProducerId response: the id and epoch to stamp into the producer's batches.
    pub struct InitProducerIdResponse { pub error: ErrorCode, pub producer_id: i64, pub epoch: i32 }
}

wire_struct! {
    /// Authenticate: one client message of a SASL exchange (`mechanism` SCRAM-SHA-256,
    /// SCRAM-SHA-512 or PLAIN, named in every message of the exchange).
    pub struct AuthenticateRequest { pub mechanism: String, pub token: Bytes }
}

wire_struct! {
    /// Authenticate response: the server's next message; `authenticated` is 1 once the
    /// exchange is complete, and `session_lifetime_ms` how long the session then holds
    /// (0: as long as the connection).
    pub struct AuthenticateResponse {
        pub error: ErrorCode,
        pub message: String,
        pub token: Bytes,
        pub authenticated: u8,
        pub session_lifetime_ms: u64,
    }
}

wire_struct! {
    /// DescribeCluster request: no fields.
    pub struct DescribeClusterRequest {}
}

wire_struct! {
    /// A broker of the cluster: its id, incarnation and whether it is fenced, its rack
    /// (empty: none), and where its native listener of the name asked on is (`host`
    /// empty: it registered none), with each shard's port there.
    pub struct ClusterBroker {
        pub id: u32,
        pub epoch: u64,
        pub fenced: u8,
        pub rack: String,
        pub host: String,
        pub port: u16,
        pub shard_ports: Vec<ShardPort>,
    }
}

wire_struct! {
    /// One replica of a partition: the broker and its shard holding the log.
    pub struct ReplicaPlace { pub broker: u32, pub shard: u32 }
}

wire_struct! {
    /// A partition's leader (-1: none, the partition is offline), its leader epoch, its
    /// replicas (the first is the preferred leader) and its in-sync replicas.
    pub struct PartitionLayout {
        pub partition: u32,
        pub leader: i32,
        pub leader_epoch: u32,
        pub replicas: Vec<ReplicaPlace>,
        pub isr: Vec<u32>,
    }
}

wire_struct! {
    /// One topic's partitions, as the cluster places them.
    pub struct TopicLayout { pub name: String, pub partitions: Vec<PartitionLayout> }
}

wire_struct! {
    /// DescribeCluster response: the cluster's id, the broker answering, the metadata
    /// quorum's leader (-1: none known), every broker, and every topic the principal
    /// may describe with its partitions' replicas and leaders. A broker alone answers
    /// as broker 0 with an empty cluster id.
    pub struct DescribeClusterResponse {
        pub error: ErrorCode,
        pub cluster_id: String,
        pub node_id: u32,
        pub controller: i32,
        pub brokers: Vec<ClusterBroker>,
        pub topics: Vec<TopicLayout>,
    }
}

wire_struct! {
    /// One partition a follower fetches from its leader: the leader epoch it follows,
    /// where its log ends (`fetch_offset`), the epoch of its last batch
    /// (`last_fetched_epoch`, -1 when it has none), and how far its log meets the
    /// topic's durability policy (`acked_offset`: what the leader may count it for).
    pub struct ReplicaFetchPartition {
        pub topic: String,
        pub partition: u32,
        pub leader_epoch: i32,
        pub fetch_offset: u64,
        pub last_fetched_epoch: i32,
        pub acked_offset: u64,
    }
}

wire_struct! {
    /// ReplicaFetch: a follower broker (at its registered incarnation) fetching the
    /// partitions it follows from their leader, waiting up to `max_wait_ms` for data.
    pub struct ReplicaFetchRequest {
        pub broker: u32,
        pub broker_epoch: u64,
        pub max_wait_ms: u32,
        pub max_bytes: u32,
        pub partitions: Vec<ReplicaFetchPartition>,
    }
}

wire_struct! {
    /// One partition's answer: the leader's high watermark and log start, and either
    /// the batches from `fetch_offset` (as stored), or, when the follower's log has
    /// diverged, the leader's last epoch at or below the follower's and where it ends
    /// (`diverging_epoch` -1: no divergence), for the follower to truncate there.
    pub struct ReplicaFetchPartitionResponse {
        pub topic: String,
        pub partition: u32,
        pub error: ErrorCode,
        pub high_watermark: u64,
        pub log_start: u64,
        pub diverging_epoch: i32,
        pub diverging_end: u64,
        pub records: Bytes,
    }
}

wire_struct! {
    /// ReplicaFetch response.
    pub struct ReplicaFetchResponse { pub partitions: Vec<ReplicaFetchPartitionResponse> }
}
