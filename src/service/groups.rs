//! Consumer-group requests: each goes to the shard coordinating its group (the owner
//! of the group's `__consumer_offsets` partition), over the mesh when that is another
//! shard. Listing groups asks every shard and merges.

use super::{Error, RequestContext};
use crate::group::api::*;
use crate::group::{check_group_id, offsets_partition, OFFSETS_TOPIC};
use crate::shard::{Shard, ShardMessage};
use futures_channel::oneshot;
use std::rc::Rc;

/// Answers a group request from any shard.
pub async fn handle(shard: &Rc<Shard>, ctx: &RequestContext, request: GroupRequest) -> GroupResponse {
    use super::authorize;
    use crate::metadata::acl::{AclOperation, ResourceType};
    if let GroupRequest::List = request {
        // The groups the principal may describe.
        return match list_everywhere(shard).await {
            GroupResponse::List(mut listed) if shard.config.authorization.enabled => {
                listed
                    .groups
                    .retain(|g| authorize::allowed(shard, ctx, ResourceType::Group, &g.group, AclOperation::Describe));
                GroupResponse::List(listed)
            }
            other => other,
        };
    }
    let group = group_of(&request).to_string();
    if let Err(error) = check_group_id(&group) {
        return refusal(&request, error);
    }
    // Kafka's rules: a member reads its group; describing and fetching offsets
    // describe it; deleting it or its offsets deletes.
    let operation = match &request {
        GroupRequest::FetchOffsets(_) | GroupRequest::Describe(_) | GroupRequest::Summarize(_) => {
            AclOperation::Describe
        }
        GroupRequest::Delete(_) | GroupRequest::DeleteOffsets { .. } => AclOperation::Delete,
        _ => AclOperation::Read,
    };
    if let Err(error) = authorize::check(shard, ctx, ResourceType::Group, &group, operation) {
        return refusal(&request, error);
    }
    if !shard.config.authorization.enabled {
        return at_coordinator(shard, request).await;
    }
    // And on the topics, as Kafka checks them: a commit reads each topic, an offset
    // fetch describes it.
    let topic_allowed = |topic: &str, operation| authorize::allowed(shard, ctx, ResourceType::Topic, topic, operation);
    match request {
        GroupRequest::Commit(mut commit) => {
            let denied = take_denied(&mut commit.topics, |t| !topic_allowed(&t.topic, AclOperation::Read));
            let answer = commit_past(shard, GroupRequest::Commit(commit), denied.is_empty()).await;
            with_denied(answer, denied)
        }
        GroupRequest::ClassicCommit(mut commit) => {
            let denied = take_denied(&mut commit.topics, |t| !topic_allowed(&t.topic, AclOperation::Read));
            let answer = commit_past(shard, GroupRequest::ClassicCommit(commit), denied.is_empty()).await;
            with_denied(answer, denied)
        }
        GroupRequest::FetchOffsets(fetch) => {
            let named = !fetch.topics.is_empty();
            let mut answer = at_coordinator(shard, GroupRequest::FetchOffsets(fetch)).await;
            if let GroupResponse::FetchOffsets(offsets) = &mut answer {
                if named {
                    // Named: answered, without the position.
                    for topic in offsets.topics.iter_mut().filter(|t| !topic_allowed(&t.topic, AclOperation::Describe))
                    {
                        for partition in &mut topic.partitions {
                            (partition.offset, partition.metadata) = (-1, String::new());
                            partition.error = Some(Error::TopicAuthorizationFailed);
                        }
                    }
                } else {
                    // All of them: those it may not describe are not listed.
                    offsets.topics.retain(|t| topic_allowed(&t.topic, AclOperation::Describe));
                }
            }
            answer
        }
        request => at_coordinator(shard, request).await,
    }
}

/// The topics of a commit the principal may not read, taken out of it.
fn take_denied(topics: &mut Vec<CommitTopic>, denied: impl Fn(&CommitTopic) -> bool) -> Vec<CommitTopic> {
    let (refused, kept): (Vec<CommitTopic>, Vec<CommitTopic>) = std::mem::take(topics).into_iter().partition(denied);
    *topics = kept;
    refused
}

/// A commit with what is left of it; one left empty by its refused topics is not sent
/// (Kafka answers it with the refusals alone).
async fn commit_past(shard: &Rc<Shard>, request: GroupRequest, whole: bool) -> GroupResponse {
    let empty = match &request {
        GroupRequest::Commit(commit) => commit.topics.is_empty(),
        GroupRequest::ClassicCommit(commit) => commit.topics.is_empty(),
        _ => false,
    };
    if empty && !whole {
        return GroupResponse::Commit(OffsetCommitResponse::default());
    }
    at_coordinator(shard, request).await
}

/// A commit's answer with its refused topics' partitions added, each
/// TopicAuthorizationFailed.
fn with_denied(answer: GroupResponse, denied: Vec<CommitTopic>) -> GroupResponse {
    let GroupResponse::Commit(mut commit) = answer else { return answer };
    if commit.error.is_none() {
        commit.topics.extend(denied.into_iter().map(|topic| {
            CommitTopicResult {
                topic: topic.topic,
                partitions: topic
                    .partitions
                    .iter()
                    .map(|p| CommitPartitionResult {
                        partition: p.partition,
                        error: Some(Error::TopicAuthorizationFailed),
                    })
                    .collect(),
            }
        }));
    }
    GroupResponse::Commit(commit)
}

/// Hands a group request to its group's coordinator, on this shard or another.
async fn at_coordinator(shard: &Rc<Shard>, request: GroupRequest) -> GroupResponse {
    let Some(coordinator) = coordinator(shard, group_of(&request)) else {
        // In a cluster, another broker coordinates it (or none does for now).
        let error = if shard.broker.is_some() { Error::NotCoordinator } else { Error::NotReady };
        return refusal(&request, error);
    };
    if coordinator == shard.id {
        return shard.groups.handle(shard, request).await;
    }
    let (reply, receiver) = oneshot::channel();
    let fallback = refusal(&request, Error::NotReady);
    shard.forward(coordinator, ShardMessage::Group { request, reply }).await;
    receiver.await.unwrap_or(fallback)
}

/// The error an answer reports for the whole request, if any.
pub fn error_of(response: &GroupResponse) -> Option<&Error> {
    match response {
        GroupResponse::Join(r) => r.error.as_ref(),
        GroupResponse::Heartbeat(r) => r.error.as_ref(),
        GroupResponse::Leave(r) => r.error.as_ref(),
        GroupResponse::Commit(r) => r.error.as_ref(),
        GroupResponse::FetchOffsets(r) => r.error.as_ref(),
        GroupResponse::Describe(r) => r.error.as_ref(),
        GroupResponse::List(_) => None,
        GroupResponse::ClassicJoin(r) => r.error.as_ref(),
        GroupResponse::ClassicSync(r) => r.error.as_ref(),
        GroupResponse::ClassicHeartbeat(error) => error.as_ref(),
        GroupResponse::ClassicLeave(r) => r.error.as_ref(),
        GroupResponse::Summary(_) => None,
        GroupResponse::Deleted(error) => error.as_ref(),
        GroupResponse::OffsetsDeleted(r) => r.error.as_ref(),
    }
}

/// The operation a group request counts as.
pub fn operation_of(request: &GroupRequest) -> super::Operation {
    use super::Operation;
    match request {
        GroupRequest::Join(_) | GroupRequest::ClassicJoin(_) => Operation::JoinGroup,
        GroupRequest::Heartbeat(_) | GroupRequest::ClassicHeartbeat(_) => Operation::Heartbeat,
        GroupRequest::Leave(_) | GroupRequest::ClassicLeave(_) => Operation::LeaveGroup,
        GroupRequest::Commit(_) | GroupRequest::ClassicCommit(_) => Operation::OffsetCommit,
        GroupRequest::FetchOffsets(_) => Operation::OffsetFetch,
        GroupRequest::Describe(_) => Operation::DescribeGroup,
        GroupRequest::List => Operation::ListGroups,
        GroupRequest::ClassicSync(_) => Operation::SyncGroup,
        GroupRequest::Summarize(_) => Operation::DescribeGroup,
        GroupRequest::Delete(_) => Operation::DeleteGroups,
        GroupRequest::DeleteOffsets { .. } => Operation::OffsetDelete,
    }
}

/// The shard coordinating `group`: the owner of its offsets partition.
fn coordinator(shard: &Shard, group: &str) -> Option<u32> {
    let partitions = shard.metadata().topics.get(OFFSETS_TOPIC)?.partitions();
    shard.owner(OFFSETS_TOPIC, offsets_partition(group, partitions)).ok().filter(|&owner| owner < shard.count)
}

fn group_of(request: &GroupRequest) -> &str {
    match request {
        GroupRequest::Join(r) => &r.group,
        GroupRequest::Heartbeat(r) => &r.group,
        GroupRequest::Leave(r) => &r.group,
        GroupRequest::Commit(r) => &r.group,
        GroupRequest::FetchOffsets(r) => &r.group,
        GroupRequest::Describe(r) => &r.group,
        GroupRequest::List => "",
        GroupRequest::ClassicJoin(r) => &r.group,
        GroupRequest::ClassicSync(r) => &r.group,
        GroupRequest::ClassicHeartbeat(r) => &r.group,
        GroupRequest::ClassicLeave(r) => &r.group,
        GroupRequest::ClassicCommit(r) => &r.group,
        GroupRequest::Summarize(group) | GroupRequest::Delete(group) => group,
        GroupRequest::DeleteOffsets { group, .. } => group,
    }
}

/// The answer to `request` that carries only `error`.
fn refusal(request: &GroupRequest, error: Error) -> GroupResponse {
    let error = Some(error);
    match request {
        GroupRequest::Join(r) => {
            GroupResponse::Join(JoinGroupResponse { error, member_id: r.member_id.clone(), ..Default::default() })
        }
        GroupRequest::Heartbeat(_) => GroupResponse::Heartbeat(HeartbeatResponse { error, ..Default::default() }),
        GroupRequest::Leave(_) => GroupResponse::Leave(LeaveGroupResponse { error }),
        GroupRequest::Commit(_) => GroupResponse::Commit(OffsetCommitResponse { error, topics: Vec::new() }),
        GroupRequest::FetchOffsets(_) => GroupResponse::FetchOffsets(OffsetFetchResponse { error, topics: Vec::new() }),
        GroupRequest::Describe(r) => {
            GroupResponse::Describe(DescribeGroupResponse { error, group: r.group.clone(), ..Default::default() })
        }
        GroupRequest::List => GroupResponse::List(ListGroupsResponse::default()),
        GroupRequest::ClassicJoin(r) => GroupResponse::ClassicJoin(ClassicJoinResponse {
            error,
            member_id: r.member_id.clone(),
            ..Default::default()
        }),
        GroupRequest::ClassicSync(_) => GroupResponse::ClassicSync(ClassicSyncResponse { error, ..Default::default() }),
        GroupRequest::ClassicHeartbeat(_) => GroupResponse::ClassicHeartbeat(error),
        GroupRequest::ClassicLeave(_) => {
            GroupResponse::ClassicLeave(ClassicLeaveResponse { error, members: Vec::new() })
        }
        GroupRequest::ClassicCommit(_) => GroupResponse::Commit(OffsetCommitResponse { error, topics: Vec::new() }),
        GroupRequest::Summarize(_) => GroupResponse::Summary(None),
        GroupRequest::Delete(_) => GroupResponse::Deleted(error),
        GroupRequest::DeleteOffsets { .. } => {
            GroupResponse::OffsetsDeleted(OffsetCommitResponse { error, topics: Vec::new() })
        }
    }
}

/// Every shard's groups, by name.
async fn list_everywhere(shard: &Rc<Shard>) -> GroupResponse {
    let mut groups = match shard.groups.handle(shard, GroupRequest::List).await {
        GroupResponse::List(response) => response.groups,
        _ => Vec::new(),
    };
    for other in (0..shard.count).filter(|&other| other != shard.id) {
        let (reply, receiver) = oneshot::channel();
        shard.forward(other, ShardMessage::Group { request: GroupRequest::List, reply }).await;
        if let Ok(GroupResponse::List(response)) = receiver.await {
            groups.extend(response.groups);
        }
    }
    groups.sort_by(|a, b| a.group.cmp(&b.group));
    GroupResponse::List(ListGroupsResponse { groups })
}

impl crate::group::host::GroupHost for Rc<Shard> {
    fn shard_id(&self) -> u32 {
        self.id
    }

    fn live_config(&self) -> std::sync::Arc<crate::config::BrokerConfig> {
        Shard::live_config(self)
    }

    fn metadata(&self) -> std::sync::Arc<crate::metadata::MetadataState> {
        Shard::metadata(self)
    }

    fn partition(&self, topic: &str, partition: u32) -> Option<Rc<crate::partition::Partition>> {
        self.logs.partition(topic, partition)
    }

    async fn end_offsets(&self, tps: Vec<crate::partition::TopicPartition>) -> Vec<Result<u64, Error>> {
        super::offsets::end_offsets(self, tps).await
    }
}
