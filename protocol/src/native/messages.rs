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
