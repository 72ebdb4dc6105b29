//! Group requests and answers between the native protocol's messages and the
//! coordinator's own types (`group::api`), field by field; errors through
//! `errors::code`.

use super::errors::code;
use crate::group::api;
use crate::service::Error;
use strand_protocol::native::messages as wire;
use strand_protocol::native::ErrorCode;

/// One value into its counterpart on the other side.
pub trait Convert<T> {
    fn convert(self) -> T;
}

macro_rules! same {
    ($($t:ty),*) => { $(impl Convert<$t> for $t { fn convert(self) -> $t { self } })* };
}
same!(String, u8, u32, u64, i64);

impl<A: Convert<B>, B> Convert<Vec<B>> for Vec<A> {
    fn convert(self) -> Vec<B> {
        self.into_iter().map(Convert::convert).collect()
    }
}

impl Convert<ErrorCode> for Option<Error> {
    fn convert(self) -> ErrorCode {
        self.as_ref().map_or(ErrorCode::None, code)
    }
}

impl Convert<api::TopicPartitions> for wire::TopicPartitions {
    fn convert(self) -> api::TopicPartitions {
        api::TopicPartitions { topic: self.topic.convert(), partitions: self.partitions.convert() }
    }
}

impl Convert<api::JoinGroupRequest> for wire::JoinGroupRequest {
    fn convert(self) -> api::JoinGroupRequest {
        api::JoinGroupRequest {
            group: self.group.convert(),
            member_id: self.member_id.convert(),
            topics: self.topics.convert(),
            session_timeout_ms: self.session_timeout_ms.convert(),
            strategy: self.strategy.convert(),
            chosen_id: false,
            // Filled in from the connection by the router.
            client_id: String::new(),
            client_host: String::new(),
        }
    }
}

impl Convert<api::HeartbeatRequest> for wire::HeartbeatRequest {
    fn convert(self) -> api::HeartbeatRequest {
        api::HeartbeatRequest {
            group: self.group.convert(),
            member_id: self.member_id.convert(),
            owned: Some(self.owned.convert()),
        }
    }
}

impl Convert<api::LeaveGroupRequest> for wire::LeaveGroupRequest {
    fn convert(self) -> api::LeaveGroupRequest {
        api::LeaveGroupRequest { group: self.group.convert(), member_id: self.member_id.convert() }
    }
}

impl Convert<api::CommitPartition> for wire::CommitPartition {
    fn convert(self) -> api::CommitPartition {
        api::CommitPartition {
            partition: self.partition.convert(),
            offset: self.offset.convert(),
            metadata: self.metadata.convert(),
        }
    }
}

impl Convert<api::CommitTopic> for wire::CommitTopic {
    fn convert(self) -> api::CommitTopic {
        api::CommitTopic { topic: self.topic.convert(), partitions: self.partitions.convert() }
    }
}

impl Convert<api::OffsetCommitRequest> for wire::OffsetCommitRequest {
    fn convert(self) -> api::OffsetCommitRequest {
        api::OffsetCommitRequest {
            group: self.group.convert(),
            member_id: self.member_id.convert(),
            generation: self.generation.convert(),
            topics: self.topics.convert(),
        }
    }
}

impl Convert<api::OffsetFetchRequest> for wire::OffsetFetchRequest {
    fn convert(self) -> api::OffsetFetchRequest {
        api::OffsetFetchRequest { group: self.group.convert(), topics: self.topics.convert() }
    }
}

impl Convert<api::DescribeGroupRequest> for wire::DescribeGroupRequest {
    fn convert(self) -> api::DescribeGroupRequest {
        api::DescribeGroupRequest { group: self.group.convert() }
    }
}

impl Convert<wire::JoinGroupResponse> for api::JoinGroupResponse {
    fn convert(self) -> wire::JoinGroupResponse {
        wire::JoinGroupResponse {
            error: self.error.convert(),
            member_id: self.member_id.convert(),
            generation: self.generation.convert(),
            heartbeat_interval_ms: self.heartbeat_interval_ms.convert(),
            assigned: self.assigned.convert(),
        }
    }
}

impl Convert<wire::HeartbeatResponse> for api::HeartbeatResponse {
    fn convert(self) -> wire::HeartbeatResponse {
        wire::HeartbeatResponse {
            error: self.error.convert(),
            generation: self.generation.convert(),
            assigned: self.assigned.convert(),
        }
    }
}

impl Convert<wire::LeaveGroupResponse> for api::LeaveGroupResponse {
    fn convert(self) -> wire::LeaveGroupResponse {
        wire::LeaveGroupResponse { error: self.error.convert() }
    }
}

impl Convert<wire::CommitPartitionResult> for api::CommitPartitionResult {
    fn convert(self) -> wire::CommitPartitionResult {
        wire::CommitPartitionResult { partition: self.partition.convert(), error: self.error.convert() }
    }
}

impl Convert<wire::CommitTopicResult> for api::CommitTopicResult {
    fn convert(self) -> wire::CommitTopicResult {
        wire::CommitTopicResult { topic: self.topic.convert(), partitions: self.partitions.convert() }
    }
}

impl Convert<wire::OffsetCommitResponse> for api::OffsetCommitResponse {
    fn convert(self) -> wire::OffsetCommitResponse {
        wire::OffsetCommitResponse { error: self.error.convert(), topics: self.topics.convert() }
    }
}

impl Convert<wire::CommittedPartition> for api::CommittedPartition {
    fn convert(self) -> wire::CommittedPartition {
        wire::CommittedPartition {
            partition: self.partition.convert(),
            offset: self.offset.convert(),
            metadata: self.metadata.convert(),
        }
    }
}

impl Convert<wire::CommittedTopic> for api::CommittedTopic {
    fn convert(self) -> wire::CommittedTopic {
        wire::CommittedTopic { topic: self.topic.convert(), partitions: self.partitions.convert() }
    }
}

impl Convert<wire::OffsetFetchResponse> for api::OffsetFetchResponse {
    fn convert(self) -> wire::OffsetFetchResponse {
        wire::OffsetFetchResponse { error: self.error.convert(), topics: self.topics.convert() }
    }
}

impl Convert<wire::GroupListing> for api::GroupListing {
    fn convert(self) -> wire::GroupListing {
        wire::GroupListing {
            group: self.group.convert(),
            members: self.members.convert(),
            generation: self.generation.convert(),
        }
    }
}

impl Convert<wire::ListGroupsResponse> for api::ListGroupsResponse {
    fn convert(self) -> wire::ListGroupsResponse {
        wire::ListGroupsResponse { groups: self.groups.convert() }
    }
}

impl Convert<wire::GroupMemberDescription> for api::GroupMemberDescription {
    fn convert(self) -> wire::GroupMemberDescription {
        wire::GroupMemberDescription {
            member_id: self.member_id.convert(),
            topics: self.topics.convert(),
            session_timeout_ms: self.session_timeout_ms.convert(),
            owned: self.owned.convert(),
            target: self.target.convert(),
        }
    }
}

impl Convert<wire::DescribeGroupResponse> for api::DescribeGroupResponse {
    fn convert(self) -> wire::DescribeGroupResponse {
        wire::DescribeGroupResponse {
            error: self.error.convert(),
            group: self.group.convert(),
            generation: self.generation.convert(),
            strategy: self.strategy.convert(),
            members: self.members.convert(),
        }
    }
}

impl Convert<wire::TopicPartitions> for api::TopicPartitions {
    fn convert(self) -> wire::TopicPartitions {
        wire::TopicPartitions { topic: self.topic.convert(), partitions: self.partitions.convert() }
    }
}
