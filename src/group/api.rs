//! The group coordinator's requests and answers, in the broker's own terms: what the
//! service layer routes to a group's coordinating shard and each listener translates
//! from and to its protocol. An answer's `error` is `None` on success.

use crate::service::error::Error;

/// Partitions of one topic.
#[derive(Debug, Clone, Default)]
pub struct TopicPartitions {
    pub topic: String,
    pub partitions: Vec<u32>,
}

/// JoinGroup: become a member of `group` (a new one with an empty `member_id`, or
/// again with the id the broker gave), subscribed to `topics`. `strategy` is
/// `sticky` (also when empty), `range` or `round-robin`.
#[derive(Debug, Clone, Default)]
pub struct JoinGroupRequest {
    pub group: String,
    pub member_id: String,
    pub topics: Vec<String>,
    pub session_timeout_ms: u32,
    pub strategy: String,
    /// A new member that chose its own id (KIP-848 v1: a UUID the client makes), to be
    /// admitted under it rather than refused as unknown.
    pub chosen_id: bool,
    /// What describing the group shows of the member: the client's own name for
    /// itself, and its host as Kafka shows it (`/127.0.0.1`); empty when unknown.
    pub client_id: String,
    pub client_host: String,
}

/// Heartbeat: the member is alive and consumes `owned`, which tells the
/// coordinator which revoked partitions it has let go of.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatRequest {
    pub group: String,
    pub member_id: String,
    /// `None`: what it owned at its last heartbeat (KIP-848 sends the owned
    /// partitions only when they changed).
    pub owned: Option<Vec<TopicPartitions>>,
}

/// LeaveGroup: the member is done; its partitions go to the others at once.
#[derive(Debug, Clone, Default)]
pub struct LeaveGroupRequest {
    pub group: String,
    pub member_id: String,
}

/// One committed position: `offset` is the next offset to consume.
#[derive(Debug, Clone, Default)]
pub struct CommitPartition {
    pub partition: u32,
    pub offset: u64,
    pub metadata: String,
}

/// Positions of one topic's partitions.
#[derive(Debug, Clone, Default)]
pub struct CommitTopic {
    pub topic: String,
    pub partitions: Vec<CommitPartition>,
}

/// OffsetCommit: store positions for `group`. A member commits partitions it owns,
/// with the group's current `generation`; an empty `member_id` with generation 0
/// is an administrative commit, accepted only while the group has no members.
#[derive(Debug, Clone, Default)]
pub struct OffsetCommitRequest {
    pub group: String,
    pub member_id: String,
    pub generation: u32,
    pub topics: Vec<CommitTopic>,
}

/// OffsetFetch: the committed positions of `group` for `topics` (every committed
/// partition when `topics` is empty).
#[derive(Debug, Clone, Default)]
pub struct OffsetFetchRequest {
    pub group: String,
    pub topics: Vec<TopicPartitions>,
}

/// DescribeGroup request.
#[derive(Debug, Clone, Default)]
pub struct DescribeGroupRequest {
    pub group: String,
}

/// The member's id, the group's generation, how often to heartbeat, and the
/// partitions the member may consume now.
#[derive(Debug, Clone, Default)]
pub struct JoinGroupResponse {
    pub error: Option<Error>,
    pub member_id: String,
    pub generation: u32,
    pub heartbeat_interval_ms: u32,
    pub assigned: Vec<TopicPartitions>,
}

/// The group's generation and the partitions the member may consume now: it stops
/// consuming any it owns that are not listed (revoked), and starts on new ones.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatResponse {
    pub error: Option<Error>,
    pub generation: u32,
    pub assigned: Vec<TopicPartitions>,
}

/// LeaveGroup response.
#[derive(Debug, Clone, Default)]
pub struct LeaveGroupResponse {
    pub error: Option<Error>,
}

/// The outcome for one partition.
#[derive(Debug, Clone, Default)]
pub struct CommitPartitionResult {
    pub partition: u32,
    pub error: Option<Error>,
}

/// Outcomes for one topic.
#[derive(Debug, Clone, Default)]
pub struct CommitTopicResult {
    pub topic: String,
    pub partitions: Vec<CommitPartitionResult>,
}

/// OffsetCommit response: `error` for the whole request (unknown member, stale
/// generation…), else one result per partition.
#[derive(Debug, Clone, Default)]
pub struct OffsetCommitResponse {
    pub error: Option<Error>,
    pub topics: Vec<CommitTopicResult>,
}

/// A committed position; `offset` is -1 when none was committed.
#[derive(Debug, Clone, Default)]
pub struct CommittedPartition {
    pub partition: u32,
    pub offset: i64,
    pub metadata: String,
    /// Why this partition's position is not given (its topic may not be described).
    pub error: Option<Error>,
}

/// Committed positions of one topic.
#[derive(Debug, Clone, Default)]
pub struct CommittedTopic {
    pub topic: String,
    pub partitions: Vec<CommittedPartition>,
}

/// OffsetFetch response.
#[derive(Debug, Clone, Default)]
pub struct OffsetFetchResponse {
    pub error: Option<Error>,
    pub topics: Vec<CommittedTopic>,
}

/// A group the broker knows: with members, or with committed offsets.
#[derive(Debug, Clone, Default)]
pub struct GroupListing {
    pub group: String,
    pub members: u32,
    pub generation: u32,
    /// Kafka's state name (`Stable`, `PreparingRebalance`, `CompletingRebalance`,
    /// `Empty`) and protocol type (`consumer`; empty for a group with only offsets).
    pub state: String,
    pub protocol_type: String,
    /// Whether it is a Kafka classic group (its leader member assigns).
    pub classic: bool,
}

/// A group as Kafka's DescribeGroups shows it: members with their metadata and
/// assignment in the group protocol's own bytes (for a broker-assigned group, Kafka's
/// consumer protocol, as a Kafka tool reads it).
#[derive(Debug, Clone, Default)]
pub struct GroupSummary {
    pub group: String,
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberSummary>,
    /// A Kafka classic group (its leader member assigns), not one the broker assigns.
    pub classic: bool,
}

#[derive(Debug, Clone, Default)]
pub struct MemberSummary {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: bytes::Bytes,
    pub assignment: bytes::Bytes,
}

/// ListGroups response.
#[derive(Debug, Clone, Default)]
pub struct ListGroupsResponse {
    pub groups: Vec<GroupListing>,
}

/// One member: what it subscribes to, what it owns now, and what it is to own
/// once the partitions moving to it are released.
#[derive(Debug, Clone, Default)]
pub struct GroupMemberDescription {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    pub topics: Vec<String>,
    pub session_timeout_ms: u32,
    pub owned: Vec<TopicPartitions>,
    pub target: Vec<TopicPartitions>,
}

/// DescribeGroup response.
#[derive(Debug, Clone, Default)]
pub struct DescribeGroupResponse {
    pub error: Option<Error>,
    pub group: String,
    pub generation: u32,
    pub strategy: String,
    pub members: Vec<GroupMemberDescription>,
}

/// A request for a group's coordinator.
#[derive(Debug)]
pub enum GroupRequest {
    Join(JoinGroupRequest),
    Heartbeat(HeartbeatRequest),
    Leave(LeaveGroupRequest),
    Commit(OffsetCommitRequest),
    FetchOffsets(OffsetFetchRequest),
    Describe(DescribeGroupRequest),
    /// Every group this shard coordinates.
    List,
    ClassicJoin(ClassicJoinRequest),
    ClassicSync(ClassicSyncRequest),
    ClassicHeartbeat(ClassicHeartbeatRequest),
    ClassicLeave(ClassicLeaveRequest),
    ClassicCommit(ClassicCommitRequest),
    /// Kafka's DescribeGroups of one group.
    Summarize(String),
    /// Kafka's DeleteGroups of one group: its committed offsets forgotten, only while
    /// it has no members.
    Delete(String),
    /// Kafka's OffsetDelete: the group's committed offsets of these partitions
    /// forgotten, except for topics its members subscribe to.
    DeleteOffsets {
        group: String,
        topics: Vec<TopicPartitions>,
    },
}

/// A coordinator's answer, of the request's kind.
#[derive(Debug)]
pub enum GroupResponse {
    Join(JoinGroupResponse),
    Heartbeat(HeartbeatResponse),
    Leave(LeaveGroupResponse),
    Commit(OffsetCommitResponse),
    FetchOffsets(OffsetFetchResponse),
    Describe(DescribeGroupResponse),
    List(ListGroupsResponse),
    ClassicJoin(ClassicJoinResponse),
    ClassicSync(ClassicSyncResponse),
    ClassicHeartbeat(Option<Error>),
    ClassicLeave(ClassicLeaveResponse),
    /// `None`: the broker knows no such group (Kafka's `Dead`).
    Summary(Option<GroupSummary>),
    Deleted(Option<Error>),
    /// Per partition, or `error` for the whole group.
    OffsetsDeleted(OffsetCommitResponse),
}

/// Kafka's classic group protocol, where the group's leader member assigns: a member
/// joins with the protocols it supports (each a name and opaque metadata, for
/// consumers the subscription), the coordinator waits until every known member has
/// joined, elects a leader and a protocol and answers every join at once (the leader's
/// answer lists the members), then the leader's SyncGroup carries every member's
/// assignment, which each member's SyncGroup receives.
#[derive(Debug, Clone, Default)]
pub struct ClassicJoinRequest {
    pub group: String,
    /// Empty for a new member.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: u32,
    pub rebalance_timeout_ms: u32,
    pub protocol_type: String,
    pub protocols: Vec<(String, bytes::Bytes)>,
    /// KIP-394 (JoinGroup v4 and later): a new member is first given its id, and
    /// joins again with it.
    pub require_known_member: bool,
}

/// A member of a classic group, as the leader sees it: its id and its metadata for
/// the protocol chosen.
#[derive(Debug, Clone, Default)]
pub struct ClassicMemberMetadata {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: bytes::Bytes,
}

#[derive(Debug, Clone, Default)]
pub struct ClassicJoinResponse {
    pub error: Option<Error>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Every member, for the leader; empty for the others.
    pub members: Vec<ClassicMemberMetadata>,
}

#[derive(Debug, Clone, Default)]
pub struct ClassicSyncRequest {
    pub group: String,
    pub member_id: String,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    /// The leader's assignment of every member; empty from the others.
    pub assignments: Vec<(String, bytes::Bytes)>,
}

#[derive(Debug, Clone, Default)]
pub struct ClassicSyncResponse {
    pub error: Option<Error>,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub assignment: bytes::Bytes,
}

#[derive(Debug, Clone, Default)]
pub struct ClassicHeartbeatRequest {
    pub group: String,
    pub member_id: String,
    pub generation: i32,
}

#[derive(Debug, Clone, Default)]
pub struct ClassicLeaveRequest {
    pub group: String,
    pub members: Vec<String>,
}

/// Each member's outcome, in request order.
#[derive(Debug, Clone, Default)]
pub struct ClassicLeaveResponse {
    pub error: Option<Error>,
    pub members: Vec<(String, Option<Error>)>,
}

/// A Kafka client's OffsetCommit: by a member of a classic group at its generation, by
/// a KIP-848 member at its member epoch, or with generation -1 and no member id by a
/// client outside any group (then only while the group has no members).
#[derive(Debug, Clone, Default)]
pub struct ClassicCommitRequest {
    pub group: String,
    pub member_id: String,
    pub generation: i32,
    pub topics: Vec<CommitTopic>,
}
