//! Consumer-group requests: each goes to the shard coordinating its group (the owner
//! of the group's `__consumer_offsets` partition), over the mesh when that is another
//! shard. ListGroups asks every shard and merges.

use crate::group::{check_group_id, offsets_partition, OFFSETS_TOPIC};
use crate::shard::{Shard, ShardMessage};
use futures_channel::oneshot;
use std::rc::Rc;
use strand_protocol::native::messages::*;
use strand_protocol::native::{ErrorCode, Request, Response};

/// Answers a group request from any shard.
pub async fn handle(shard: &Rc<Shard>, request: Request) -> Response {
    if let Request::ListGroups(_) = request {
        return list_everywhere(shard).await;
    }
    let group = group_of(&request).to_string();
    if let Err(error) = check_group_id(&group) {
        return refusal(&request, error);
    }
    let Some(coordinator) = coordinator(shard, &group) else {
        return refusal(&request, ErrorCode::NotReady);
    };
    if coordinator == shard.id {
        return shard.groups.handle(shard, request).await;
    }
    let (reply, receiver) = oneshot::channel();
    let fallback = refusal(&request, ErrorCode::NotReady);
    shard.forward(coordinator, ShardMessage::Group { request, reply }).await;
    receiver.await.unwrap_or(fallback)
}

/// Whether a group response reports an error for the whole request.
pub fn is_error(response: &Response) -> bool {
    let error = match response {
        Response::JoinGroup(r) => r.error,
        Response::Heartbeat(r) => r.error,
        Response::LeaveGroup(r) => r.error,
        Response::OffsetCommit(r) => r.error,
        Response::OffsetFetch(r) => r.error,
        Response::DescribeGroup(r) => r.error,
        _ => ErrorCode::None,
    };
    error != ErrorCode::None
}

/// The shard coordinating `group`: the owner of its offsets partition.
fn coordinator(shard: &Shard, group: &str) -> Option<u32> {
    let partitions = shard.metadata().topics.get(OFFSETS_TOPIC)?.partitions();
    shard.owner(OFFSETS_TOPIC, offsets_partition(group, partitions)).ok().filter(|&owner| owner < shard.count)
}

fn group_of(request: &Request) -> &str {
    match request {
        Request::JoinGroup(r) => &r.group,
        Request::Heartbeat(r) => &r.group,
        Request::LeaveGroup(r) => &r.group,
        Request::OffsetCommit(r) => &r.group,
        Request::OffsetFetch(r) => &r.group,
        Request::DescribeGroup(r) => &r.group,
        _ => "",
    }
}

/// The response to `request` that carries only `error`.
fn refusal(request: &Request, error: ErrorCode) -> Response {
    match request {
        Request::JoinGroup(r) => Response::JoinGroup(JoinGroupResponse {
            error,
            member_id: r.member_id.clone(),
            generation: 0,
            heartbeat_interval_ms: 0,
            assigned: Vec::new(),
        }),
        Request::Heartbeat(_) => Response::Heartbeat(HeartbeatResponse { error, generation: 0, assigned: Vec::new() }),
        Request::LeaveGroup(_) => Response::LeaveGroup(LeaveGroupResponse { error }),
        Request::OffsetCommit(_) => Response::OffsetCommit(OffsetCommitResponse { error, topics: Vec::new() }),
        Request::OffsetFetch(_) => Response::OffsetFetch(OffsetFetchResponse { error, topics: Vec::new() }),
        Request::DescribeGroup(r) => Response::DescribeGroup(DescribeGroupResponse {
            error,
            group: r.group.clone(),
            generation: 0,
            strategy: String::new(),
            members: Vec::new(),
        }),
        _ => Response::ListGroups(ListGroupsResponse { groups: Vec::new() }),
    }
}

/// Every shard's groups, by name.
async fn list_everywhere(shard: &Rc<Shard>) -> Response {
    let mut groups = match shard.groups.handle(shard, Request::ListGroups(ListGroupsRequest {})).await {
        Response::ListGroups(response) => response.groups,
        _ => Vec::new(),
    };
    for other in (0..shard.count).filter(|&other| other != shard.id) {
        let (reply, receiver) = oneshot::channel();
        shard.forward(other, ShardMessage::Group { request: Request::ListGroups(ListGroupsRequest {}), reply }).await;
        if let Ok(Response::ListGroups(response)) = receiver.await {
            groups.extend(response.groups);
        }
    }
    groups.sort_by(|a, b| a.group.cmp(&b.group));
    Response::ListGroups(ListGroupsResponse { groups })
}
