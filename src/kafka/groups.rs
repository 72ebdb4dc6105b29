//! Consumer groups on the Kafka listener: FindCoordinator (this broker, for every
//! group), the classic protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, where
//! the group's leader member assigns), and OffsetCommit and OffsetFetch on the same
//! committed offsets the native protocol's groups use. Each request becomes the
//! coordinator's own (`group::api`) and goes to the shard coordinating its group.

use super::errors::{client_message, kafka_error};
use super::Kafka;
use crate::group::api::{
    self as group_api, ClassicCommitRequest, ClassicHeartbeatRequest, ClassicJoinRequest, ClassicJoinResponse,
    ClassicLeaveRequest, ClassicLeaveResponse, ClassicSyncRequest, ClassicSyncResponse, CommitPartition, CommitTopic,
    GroupRequest, GroupResponse, TopicPartitions,
};
use crate::service::{groups, Error, RequestContext};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

pub(super) fn code(error: &Option<Error>) -> i16 {
    error.as_ref().map_or(0, |error| kafka_error(error).code())
}

pub(super) fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

/// Kafka's key type of a consumer group (1 is a transactional id).
const KEY_GROUP: i8 = 0;

/// FindCoordinator. A broker alone coordinates every group. In a cluster, a group's
/// coordinator is the leader of its `__consumer_offsets` partition, which the first
/// FindCoordinator creates when missing; a partition without a leader answers
/// COORDINATOR_NOT_AVAILABLE (retriable). Transactions are not served yet.
pub async fn find_coordinator(
    kafka: &Kafka,
    ctx: &RequestContext,
    version: i16,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    use crate::group::{offsets_partition, OFFSETS_TOPIC};
    let keys: Vec<StrBytes> = if version >= 4 { request.coordinator_keys.clone() } else { vec![request.key.clone()] };
    let groups = request.key_type == KEY_GROUP;
    if groups && kafka.shard.broker.is_some() && !kafka.shard.metadata().topics.contains_key(OFFSETS_TOPIC) {
        let request = crate::service::admin::AdminRequest::EnsureOffsetsTopic;
        for (_, outcome) in crate::service::admin::run(&kafka.shard, ctx, request).await {
            if let Err(error) = outcome {
                tracing::warn!(%error, "could not create {OFFSETS_TOPIC}");
            }
        }
    }
    let state = kafka.shard.metadata();
    let locate = |key: &str| -> Result<super::brokers::Node, (ResponseError, &'static str)> {
        if !groups {
            return Err((ResponseError::CoordinatorNotAvailable, "transactions are not served yet"));
        }
        let nodes = super::brokers::nodes(kafka, &state);
        if kafka.shard.broker.is_none() {
            return Ok(nodes.into_iter().next().expect("this broker"));
        }
        let unavailable = (ResponseError::CoordinatorNotAvailable, "the group's coordinator is not available yet");
        let meta = state.topics.get(OFFSETS_TOPIC).ok_or(unavailable)?;
        let (leader, _, _) = super::brokers::partition(kafka, meta, offsets_partition(key, meta.partitions()));
        let leader = leader.ok_or(unavailable)?;
        nodes.into_iter().find(|node| node.id == leader).ok_or(unavailable)
    };
    let mut response = FindCoordinatorResponse::default();
    if version >= 4 {
        response.coordinators = keys
            .into_iter()
            .map(|key| {
                let mut coordinator = Coordinator::default();
                match locate(&key) {
                    Ok(node) => {
                        coordinator.node_id = BrokerId(node.id);
                        coordinator.host = text(&node.host);
                        coordinator.port = i32::from(node.port);
                    }
                    Err((error, message)) => {
                        coordinator.node_id = BrokerId(-1);
                        coordinator.port = -1;
                        coordinator.error_code = error.code();
                        coordinator.error_message = Some(text(message));
                    }
                }
                coordinator.key = key;
                coordinator
            })
            .collect();
        return response;
    }
    match locate(&keys[0]) {
        Ok(node) => {
            response.node_id = BrokerId(node.id);
            response.host = text(&node.host);
            response.port = i32::from(node.port);
        }
        Err((error, message)) => {
            response.node_id = BrokerId(-1);
            response.port = -1;
            response.error_code = error.code();
            if version >= 1 {
                response.error_message = Some(text(message));
            }
        }
    }
    response
}

pub(super) async fn ask(kafka: &Kafka, ctx: &RequestContext, request: GroupRequest) -> GroupResponse {
    let operation = groups::operation_of(&request);
    let response = groups::handle(&kafka.shard, ctx, request).await;
    if groups::error_of(&response).is_some() {
        kafka.shard.metrics.error(ctx.listener, operation);
    }
    response
}

pub async fn join(kafka: &Kafka, ctx: &RequestContext, version: i16, request: JoinGroupRequest) -> JoinGroupResponse {
    let session = request.session_timeout_ms.max(0) as u32;
    let asked = ClassicJoinRequest {
        group: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|id| id.to_string()),
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: ctx.client_host(),
        session_timeout_ms: session,
        // v0 has no rebalance timeout: the session timeout serves.
        rebalance_timeout_ms: if version >= 1 { request.rebalance_timeout_ms.max(0) as u32 } else { session },
        protocol_type: request.protocol_type.to_string(),
        protocols: request.protocols.into_iter().map(|p| (p.name.to_string(), p.metadata)).collect(),
        require_known_member: version >= 4,
    };
    let answer = match ask(kafka, ctx, GroupRequest::ClassicJoin(asked)).await {
        GroupResponse::ClassicJoin(answer) => answer,
        _ => ClassicJoinResponse { error: Some(Error::NotReady), generation: -1, ..Default::default() },
    };
    let mut response = JoinGroupResponse::default();
    response.error_code = code(&answer.error);
    response.generation_id = answer.generation;
    response.member_id = text(&answer.member_id);
    response.leader = text(&answer.leader);
    if version >= 7 {
        response.protocol_type = answer.protocol_type.map(|t| text(&t));
        response.protocol_name = answer.protocol.map(|p| text(&p));
    } else {
        response.protocol_name = Some(text(answer.protocol.as_deref().unwrap_or_default()));
    }
    response.members = answer
        .members
        .into_iter()
        .map(|member| {
            let mut out = JoinGroupResponseMember::default();
            out.member_id = text(&member.member_id);
            if version >= 5 {
                out.group_instance_id = member.group_instance_id.map(|id| text(&id));
            }
            out.metadata = member.metadata;
            out
        })
        .collect();
    response
}

pub async fn sync(kafka: &Kafka, ctx: &RequestContext, version: i16, request: SyncGroupRequest) -> SyncGroupResponse {
    let asked = ClassicSyncRequest {
        group: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        generation: request.generation_id,
        protocol_type: request.protocol_type.map(|t| t.to_string()),
        protocol: request.protocol_name.map(|p| p.to_string()),
        assignments: request.assignments.into_iter().map(|a| (a.member_id.to_string(), a.assignment)).collect(),
    };
    let answer = match ask(kafka, ctx, GroupRequest::ClassicSync(asked)).await {
        GroupResponse::ClassicSync(answer) => answer,
        _ => ClassicSyncResponse { error: Some(Error::NotReady), ..Default::default() },
    };
    let mut response = SyncGroupResponse::default();
    response.error_code = code(&answer.error);
    if version >= 5 {
        response.protocol_type = answer.protocol_type.map(|t| text(&t));
        response.protocol_name = answer.protocol.map(|p| text(&p));
    }
    response.assignment = answer.assignment;
    response
}

pub async fn heartbeat(kafka: &Kafka, ctx: &RequestContext, request: HeartbeatRequest) -> HeartbeatResponse {
    let asked = ClassicHeartbeatRequest {
        group: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        generation: request.generation_id,
    };
    let error = match ask(kafka, ctx, GroupRequest::ClassicHeartbeat(asked)).await {
        GroupResponse::ClassicHeartbeat(error) => error,
        _ => Some(Error::NotReady),
    };
    let mut response = HeartbeatResponse::default();
    response.error_code = code(&error);
    response
}

pub async fn leave(
    kafka: &Kafka,
    ctx: &RequestContext,
    version: i16,
    request: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let members: Vec<String> = if version >= 3 {
        request.members.iter().map(|m| m.member_id.to_string()).collect()
    } else {
        vec![request.member_id.to_string()]
    };
    let asked = ClassicLeaveRequest { group: request.group_id.0.to_string(), members };
    let answer = match ask(kafka, ctx, GroupRequest::ClassicLeave(asked)).await {
        GroupResponse::ClassicLeave(answer) => answer,
        _ => ClassicLeaveResponse { error: Some(Error::NotReady), members: Vec::new() },
    };
    let mut response = LeaveGroupResponse::default();
    if version >= 3 {
        response.error_code = code(&answer.error);
        response.members = answer
            .members
            .into_iter()
            .zip(request.members)
            .map(|((id, error), asked)| {
                let mut out = MemberResponse::default();
                out.member_id = text(&id);
                out.group_instance_id = asked.group_instance_id;
                out.error_code = code(&error);
                out
            })
            .collect();
    } else {
        // One member: its outcome is the request's.
        let first = answer.members.into_iter().next().and_then(|(_, error)| error);
        response.error_code = code(&answer.error.or(first));
    }
    response
}

pub async fn commit(kafka: &Kafka, ctx: &RequestContext, request: OffsetCommitRequest) -> OffsetCommitResponse {
    let mut refused: Vec<(usize, usize, Error)> = Vec::new();
    let topics: Vec<CommitTopic> = request
        .topics
        .iter()
        .enumerate()
        .map(|(t, topic)| CommitTopic {
            topic: topic.name.0.to_string(),
            partitions: topic
                .partitions
                .iter()
                .enumerate()
                .filter_map(|(p, part)| {
                    match (u32::try_from(part.partition_index), u64::try_from(part.committed_offset)) {
                        (Ok(partition), Ok(offset)) => Some(CommitPartition {
                            partition,
                            offset,
                            metadata: part.committed_metadata.as_ref().map(|m| m.to_string()).unwrap_or_default(),
                        }),
                        (Err(_), _) => {
                            refused.push((t, p, Error::UnknownPartition));
                            None
                        }
                        (_, Err(_)) => {
                            refused.push((t, p, Error::InvalidRequest("a negative offset".into())));
                            None
                        }
                    }
                })
                .collect(),
        })
        .collect();
    let asked = ClassicCommitRequest {
        group: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        generation: request.generation_id_or_member_epoch,
        topics,
    };
    let answer = match ask(kafka, ctx, GroupRequest::ClassicCommit(asked)).await {
        GroupResponse::Commit(answer) => answer,
        _ => group_api::OffsetCommitResponse { error: Some(Error::NotReady), topics: Vec::new() },
    };
    // Each partition's outcome by (topic, partition); a request-wide error is every
    // partition's.
    let mut outcomes = std::collections::HashMap::new();
    for topic in &answer.topics {
        for part in &topic.partitions {
            outcomes.insert((topic.topic.clone(), part.partition as i32), code(&part.error));
        }
    }
    let whole = code(&answer.error);
    let mut response = OffsetCommitResponse::default();
    response.topics = request
        .topics
        .iter()
        .enumerate()
        .map(|(t, topic)| {
            let mut out = OffsetCommitResponseTopic::default();
            out.name = topic.name.clone();
            out.partitions = topic
                .partitions
                .iter()
                .enumerate()
                .map(|(p, part)| {
                    let mut result = OffsetCommitResponsePartition::default();
                    result.partition_index = part.partition_index;
                    result.error_code = match refused.iter().find(|(rt, rp, _)| (*rt, *rp) == (t, p)) {
                        Some((_, _, error)) => kafka_error(error).code(),
                        None if whole != 0 => whole,
                        None => outcomes.get(&(topic.name.0.to_string(), part.partition_index)).copied().unwrap_or(0),
                    };
                    result
                })
                .collect();
            out
        })
        .collect();
    response
}

/// A partition's committed offset, its metadata, and its error code.
type Committed = (i32, i64, String, i16);

/// One group's committed offsets as the coordinator has them: `None` topics asks for
/// every committed partition.
async fn committed(
    kafka: &Kafka,
    ctx: &RequestContext,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> (i16, Vec<(String, Vec<Committed>)>) {
    if topics.as_ref().is_some_and(|topics| topics.is_empty()) {
        return (0, Vec::new());
    }
    let asked = group_api::OffsetFetchRequest {
        group: group.to_string(),
        topics: topics
            .unwrap_or_default()
            .into_iter()
            .map(|(topic, partitions)| TopicPartitions {
                topic,
                partitions: partitions.into_iter().filter_map(|p| u32::try_from(p).ok()).collect(),
            })
            .collect(),
    };
    let answer = match ask(kafka, ctx, GroupRequest::FetchOffsets(asked)).await {
        GroupResponse::FetchOffsets(answer) => answer,
        _ => group_api::OffsetFetchResponse { error: Some(Error::NotReady), topics: Vec::new() },
    };
    // A group nobody committed for has no offsets, which is not an error to Kafka.
    let error = match answer.error {
        Some(Error::UnknownGroup) | None => 0,
        Some(error) => kafka_error(&error).code(),
    };
    let topics = answer
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| (p.partition as i32, p.offset, p.metadata, p.error.map_or(0, |e| kafka_error(&e).code())))
                .collect();
            (topic.topic, partitions)
        })
        .collect();
    (error, topics)
}

pub async fn fetch_offsets(
    kafka: &Kafka,
    ctx: &RequestContext,
    version: i16,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let mut response = OffsetFetchResponse::default();
    if version >= 8 {
        for group in request.groups {
            let topics = group.topics.map(|topics| {
                topics.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect::<Vec<_>>()
            });
            let (error, found) = committed(kafka, ctx, group.group_id.0.as_str(), topics).await;
            let mut out = OffsetFetchResponseGroup::default();
            out.group_id = group.group_id;
            out.error_code = error;
            out.topics = found
                .into_iter()
                .map(|(topic, partitions)| {
                    let mut t = OffsetFetchResponseTopics::default();
                    t.name = TopicName(text(&topic));
                    t.partitions = partitions
                        .into_iter()
                        .map(|(partition, offset, metadata, error)| {
                            let mut p = OffsetFetchResponsePartitions::default();
                            p.partition_index = partition;
                            p.committed_offset = offset;
                            p.metadata = Some(text(&metadata));
                            p.error_code = error;
                            p
                        })
                        .collect();
                    t
                })
                .collect();
            response.groups.push(out);
        }
        return response;
    }
    let topics =
        request.topics.map(|topics| topics.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect());
    let (error, found) = committed(kafka, ctx, request.group_id.0.as_str(), topics).await;
    if version >= 2 {
        response.error_code = error;
    }
    response.topics = found
        .into_iter()
        .map(|(topic, partitions)| {
            let mut t = OffsetFetchResponseTopic::default();
            t.name = TopicName(text(&topic));
            t.partitions = partitions
                .into_iter()
                .map(|(partition, offset, metadata, partition_error)| {
                    let mut p = OffsetFetchResponsePartition::default();
                    p.partition_index = partition;
                    p.committed_offset = offset;
                    p.metadata = Some(text(&metadata));
                    p.error_code = if version < 2 && partition_error == 0 { error } else { partition_error };
                    p
                })
                .collect();
            t
        })
        .collect();
    response
}

/// The session of a KIP-848 member: the broker's, not the client's (Kafka's
/// `group.consumer.session.timeout.ms`).
const CONSUMER_SESSION_TIMEOUT_MS: u32 = 45_000;

/// ConsumerGroupHeartbeat (KIP-848): the broker assigns, incrementally. A member joins
/// with epoch 0 and its subscription, heartbeats with its epoch and, when they
/// changed, the partitions it owns, and leaves with epoch -1 (or -2, a static member).
/// It is the same coordinator as the native protocol's groups: a partition moves only
/// once its owner reported it released, and the assignment answered is what the
/// member may consume now. Its member epoch is the group's generation it was last
/// told.
pub async fn consumer_heartbeat(
    kafka: &Kafka,
    ctx: &RequestContext,
    version: i16,
    request: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let group = request.group_id.0.to_string();
    let member_id = request.member_id.to_string();
    let state = kafka.shard.metadata();
    let mut response = ConsumerGroupHeartbeatResponse::default();
    response.member_id = Some(text(&member_id));
    let refuse = |mut response: ConsumerGroupHeartbeatResponse, error: Error| {
        response.error_code = kafka_error(&error).code();
        response.error_message = client_message(&error).map(|m| text(&m));
        response
    };
    if request.subscribed_topic_regex.as_ref().is_some_and(|regex| !regex.is_empty()) {
        return refuse(response, Error::InvalidRequest("subscription by regular expression is not served".into()));
    }
    let names = |partitions: &Vec<consumer_group_heartbeat_request::TopicPartitions>| -> Vec<TopicPartitions> {
        partitions
            .iter()
            .filter_map(|t| {
                let meta = kafka.topic_by_id(&state, t.topic_id)?;
                let partitions = t.partitions.iter().filter_map(|&p| u32::try_from(p).ok()).collect();
                Some(TopicPartitions { topic: meta.name.clone(), partitions })
            })
            .collect()
    };
    let answer = if request.member_epoch < 0 {
        let leave = group_api::LeaveGroupRequest { group, member_id };
        match ask(kafka, ctx, GroupRequest::Leave(leave)).await {
            GroupResponse::Leave(left) => match left.error {
                Some(error) => return refuse(response, error),
                None => {
                    response.member_epoch = request.member_epoch;
                    return response;
                }
            },
            _ => return refuse(response, Error::NotReady),
        }
    } else if request.member_epoch == 0 || request.subscribed_topic_names.is_some() {
        // Joining, or a changed subscription: the coordinator's join (the same member
        // again keeps what it has).
        let Some(topics) = request.subscribed_topic_names.as_ref() else {
            return refuse(response, Error::InvalidRequest("a joining member names its subscribed topics".into()));
        };
        let join = group_api::JoinGroupRequest {
            group: group.clone(),
            member_id: member_id.clone(),
            topics: topics.iter().map(|t| t.0.to_string()).collect(),
            session_timeout_ms: CONSUMER_SESSION_TIMEOUT_MS,
            strategy: match request.server_assignor.as_deref() {
                Some("range") => "range".into(),
                _ => "sticky".into(),
            },
            chosen_id: version >= 1 && !member_id.is_empty(),
            client_id: ctx.client_id.clone().unwrap_or_default(),
            client_host: ctx.client_host(),
        };
        match ask(kafka, ctx, GroupRequest::Join(join)).await {
            GroupResponse::Join(joined) => {
                if let Some(error) = joined.error {
                    return refuse(response, error);
                }
                response.member_id = Some(text(&joined.member_id));
                response.heartbeat_interval_ms = joined.heartbeat_interval_ms as i32;
                (joined.generation, joined.assigned)
            }
            _ => return refuse(response, Error::NotReady),
        }
    } else {
        let beat =
            group_api::HeartbeatRequest { group, member_id, owned: request.topic_partitions.as_ref().map(names) };
        match ask(kafka, ctx, GroupRequest::Heartbeat(beat)).await {
            GroupResponse::Heartbeat(beat) => {
                if let Some(error) = beat.error {
                    return refuse(response, error);
                }
                response.heartbeat_interval_ms = 1000;
                (beat.generation, beat.assigned)
            }
            _ => return refuse(response, Error::NotReady),
        }
    };
    let (generation, assigned) = answer;
    // KIP-848 keeps epoch 0 for joining: while a new group forms (its first
    // assignment waits out the initial delay) its members are told epoch 1, the
    // epoch of that first assignment, with nothing assigned yet.
    response.member_epoch = (generation as i32).max(1);
    let mut assignment = consumer_group_heartbeat_response::Assignment::default();
    assignment.topic_partitions = assigned
        .into_iter()
        .filter_map(|t| {
            let meta = state.topics.get(&t.topic)?;
            let mut out = consumer_group_heartbeat_response::TopicPartitions::default();
            out.topic_id = uuid::Uuid::from_bytes(meta.uuid().0);
            out.partitions = t.partitions.into_iter().map(|p| p as i32).collect();
            Some(out)
        })
        .collect();
    response.assignment = Some(assignment);
    response
}
