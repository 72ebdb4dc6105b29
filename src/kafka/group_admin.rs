//! Consumer groups as an administrator sees them on the Kafka listener: ListGroups,
//! DescribeGroups and ConsumerGroupDescribe (KIP-848), DeleteGroups, and OffsetDelete,
//! each asked of the shard coordinating the group.

use super::errors::{client_message, kafka_error};
use super::groups::{ask, code, text};
use super::Kafka;
use crate::group::api::{GroupRequest, GroupResponse, TopicPartitions};
use crate::service::{groups, Error, RequestContext};
use kafka_protocol::messages::consumer_group_describe_response as cgd;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;

/// ListGroups: every group any shard knows, with Kafka's state and type names (a
/// broker-assigned group is of type `consumer`, as a KIP-848 group is; a classic one
/// `classic`), filtered as asked.
pub async fn list(kafka: &Kafka, ctx: &RequestContext, request: ListGroupsRequest) -> ListGroupsResponse {
    let listed = match ask(kafka, ctx, GroupRequest::List).await {
        GroupResponse::List(listed) => listed.groups,
        _ => Vec::new(),
    };
    let states: Vec<String> = request.states_filter.iter().map(|s| s.to_string().to_ascii_lowercase()).collect();
    let types: Vec<String> = request.types_filter.iter().map(|t| t.to_string().to_ascii_lowercase()).collect();
    let mut response = ListGroupsResponse::default();
    response.groups = listed
        .into_iter()
        .filter(|group| states.is_empty() || states.contains(&group.state.to_ascii_lowercase()))
        .map(|group| {
            let kind = if group.classic { "classic" } else { "consumer" };
            (group, kind)
        })
        .filter(|(_, kind)| types.is_empty() || types.iter().any(|t| t == kind))
        .map(|(group, kind)| {
            let mut out = ListedGroup::default();
            out.group_id = GroupId(text(&group.group));
            out.protocol_type = text(&group.protocol_type);
            out.group_state = text(&group.state);
            out.group_type = text(kind);
            out
        })
        .collect();
    response
}

/// DescribeGroups: each group's state, protocol and members; a group the broker knows
/// nothing of is `Dead`, as Kafka answers.
pub async fn describe(
    kafka: &Kafka,
    ctx: &RequestContext,
    version: i16,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let mut response = DescribeGroupsResponse::default();
    for group_id in request.groups {
        let name = group_id.0.to_string();
        let mut out = DescribedGroup::default();
        out.group_id = group_id;
        out.authorized_operations = super::metadata::OPERATIONS_OMITTED;
        if let Err(error) = crate::group::check_group_id(&name) {
            out.error_code = kafka_error(&error).code();
            response.groups.push(out);
            continue;
        }
        match ask(kafka, ctx, GroupRequest::Summarize(name)).await {
            GroupResponse::Summary(Some(summary)) => {
                out.group_state = text(&summary.state);
                out.protocol_type = text(&summary.protocol_type);
                out.protocol_data = text(&summary.protocol);
                out.members = summary
                    .members
                    .into_iter()
                    .map(|member| {
                        let mut m = DescribedGroupMember::default();
                        m.member_id = text(&member.member_id);
                        if version >= 4 {
                            m.group_instance_id = member.group_instance_id.map(|id| text(&id));
                        }
                        m.client_id = text(&member.client_id);
                        m.client_host = text(&member.client_host);
                        m.member_metadata = member.metadata;
                        m.member_assignment = member.assignment;
                        m
                    })
                    .collect();
            }
            GroupResponse::Summary(None) => out.group_state = text("Dead"),
            other => {
                let error = groups::error_of(&other).cloned().unwrap_or(Error::NotReady);
                out.error_code = kafka_error(&error).code();
            }
        }
        response.groups.push(out);
    }
    response
}

/// DeleteGroups: each group's committed offsets forgotten, while it has no members
/// (NON_EMPTY_GROUP otherwise; GROUP_ID_NOT_FOUND for a group the broker does not know).
pub async fn delete(kafka: &Kafka, ctx: &RequestContext, request: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut response = DeleteGroupsResponse::default();
    for group_id in request.groups_names {
        let mut result = DeletableGroupResult::default();
        let error = match ask(kafka, ctx, GroupRequest::Delete(group_id.0.to_string())).await {
            GroupResponse::Deleted(error) => error,
            other => Some(groups::error_of(&other).cloned().unwrap_or(Error::NotReady)),
        };
        result.group_id = group_id;
        result.error_code = code(&error);
        response.results.push(result);
    }
    response
}

/// OffsetDelete: the group's committed offsets of the partitions named, forgotten
/// (tombstones in `__consumer_offsets`), except for topics the group's members
/// subscribe to (GROUP_SUBSCRIBED_TO_TOPIC per partition); GROUP_ID_NOT_FOUND for a
/// group the broker does not know.
pub async fn delete_offsets(kafka: &Kafka, ctx: &RequestContext, request: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let mut response = OffsetDeleteResponse::default();
    let mut topics = Vec::new();
    for topic in &request.topics {
        let partitions = topic.partitions.iter().filter_map(|p| u32::try_from(p.partition_index).ok()).collect();
        topics.push(TopicPartitions { topic: topic.name.0.to_string(), partitions });
    }
    let group = request.group_id.0.to_string();
    let answer = match ask(kafka, ctx, GroupRequest::DeleteOffsets { group, topics }).await {
        GroupResponse::OffsetsDeleted(answer) => answer,
        other => {
            response.error_code = code(&Some(groups::error_of(&other).cloned().unwrap_or(Error::NotReady)));
            return response;
        }
    };
    if let Some(error) = &answer.error {
        kafka.shard.metrics.error(ctx.listener, crate::service::Operation::OffsetDelete);
        response.error_code = kafka_error(error).code();
        return response;
    }
    let mut results = answer.topics.into_iter();
    for topic in request.topics {
        let result = results.next().filter(|r| r.topic == topic.name.0.as_str());
        let mut out = OffsetDeleteResponseTopic::default();
        out.name = topic.name.clone();
        for part in topic.partitions {
            let mut p = OffsetDeleteResponsePartition::default();
            p.partition_index = part.partition_index;
            let error = match u32::try_from(part.partition_index) {
                Err(_) => Some(Error::UnknownPartition),
                Ok(index) => result
                    .as_ref()
                    .and_then(|r| r.partitions.iter().find(|rp| rp.partition == index))
                    .map_or(Some(Error::NotReady), |rp| rp.error.clone()),
            };
            p.error_code = code(&error);
            out.partitions.push(p);
        }
        response.topics.push(out);
    }
    response
}

/// Kafka's member type of a KIP-848 member (KIP-1099): it speaks the consumer protocol.
const MEMBER_TYPE_CONSUMER: i8 = 1;

/// ConsumerGroupDescribe (KIP-848): a broker-assigned group's state, epoch, assignor
/// and members with their subscriptions, current and target assignments. A classic
/// group, or one the broker does not know, is GROUP_ID_NOT_FOUND, as Kafka answers.
pub async fn consumer_group_describe(
    kafka: &Kafka,
    ctx: &RequestContext,
    request: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let mut response = ConsumerGroupDescribeResponse::default();
    for group_id in request.group_ids {
        let name = group_id.0.to_string();
        let mut out = cgd::DescribedGroup::default();
        out.group_id = group_id;
        out.authorized_operations = super::metadata::OPERATIONS_OMITTED;
        let refuse = |mut out: cgd::DescribedGroup, error: Error| {
            out.error_code = kafka_error(&error).code();
            out.error_message = client_message(&error).map(|m| text(&m));
            out
        };
        if let Err(error) = crate::group::check_group_id(&name) {
            response.groups.push(refuse(out, error));
            continue;
        }
        let summary = match ask(kafka, ctx, GroupRequest::Summarize(name.clone())).await {
            GroupResponse::Summary(Some(summary)) if !summary.classic => summary,
            GroupResponse::Summary(Some(_)) => {
                out.error_code = ResponseError::GroupIdNotFound.code();
                out.error_message = Some(text(&format!("group {name} is not a consumer group")));
                response.groups.push(out);
                continue;
            }
            GroupResponse::Summary(None) => {
                out.error_code = ResponseError::GroupIdNotFound.code();
                out.error_message = Some(text(&format!("group {name} not found")));
                response.groups.push(out);
                continue;
            }
            other => {
                response.groups.push(refuse(out, groups::error_of(&other).cloned().unwrap_or(Error::NotReady)));
                continue;
            }
        };
        let described = match ask(
            kafka,
            ctx,
            GroupRequest::Describe(crate::group::api::DescribeGroupRequest { group: name }),
        )
        .await
        {
            GroupResponse::Describe(described) if described.error.is_none() => described,
            other => {
                response.groups.push(refuse(out, groups::error_of(&other).cloned().unwrap_or(Error::NotReady)));
                continue;
            }
        };
        let state = kafka.shard.metadata();
        let assignment = |owned: &[TopicPartitions]| {
            let mut assignment = cgd::Assignment::default();
            assignment.topic_partitions = owned
                .iter()
                .map(|t| {
                    let mut tp = cgd::TopicPartitions::default();
                    if let Some(meta) = state.topics.get(&t.topic) {
                        tp.topic_id = uuid::Uuid::from_bytes(meta.uuid().0);
                    }
                    tp.topic_name = text(&t.topic).into();
                    tp.partitions = t.partitions.iter().map(|&p| p as i32).collect();
                    tp
                })
                .collect();
            assignment
        };
        out.group_state = text(kip848_state(&summary.state));
        out.group_epoch = described.generation as i32;
        out.assignment_epoch = described.generation as i32;
        out.assignor_name = text(if described.strategy.is_empty() { "uniform" } else { &described.strategy });
        out.members = described
            .members
            .iter()
            .map(|member| {
                let mut m = cgd::Member::default();
                m.member_id = text(&member.member_id);
                m.client_id = text(&member.client_id);
                m.client_host = text(&member.client_host);
                m.member_epoch = described.generation as i32;
                m.subscribed_topic_names = member.topics.iter().map(|t| text(t).into()).collect();
                m.assignment = assignment(&member.owned);
                m.target_assignment = assignment(&member.target);
                m.member_type = MEMBER_TYPE_CONSUMER;
                m
            })
            .collect();
        response.groups.push(out);
    }
    response
}

/// A broker-assigned group's state in KIP-848's names: it reconciles incrementally,
/// with no join barrier.
fn kip848_state(state: &str) -> &'static str {
    match state {
        "Empty" => "Empty",
        "PreparingRebalance" => "Assigning",
        _ => "Stable",
    }
}
