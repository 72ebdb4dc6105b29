//! Consumer-group requests: the native messages to and from the coordinator's types
//! (`group::api`, through `group_wire`), routed by the service layer.

use super::group_wire::Convert;
use crate::group::api::{GroupRequest, GroupResponse};
use crate::service::{groups, RequestContext};
use crate::shard::Shard;
use std::rc::Rc;
use strand_protocol::native::{Request, Response};

/// Answers a group request; the second value says whether it failed as a whole.
pub async fn handle(shard: &Rc<Shard>, ctx: &RequestContext, request: Request) -> (Response, bool) {
    let request = match request {
        Request::JoinGroup(r) => GroupRequest::Join(r.convert()),
        Request::Heartbeat(r) => GroupRequest::Heartbeat(r.convert()),
        Request::LeaveGroup(r) => GroupRequest::Leave(r.convert()),
        Request::OffsetCommit(r) => GroupRequest::Commit(r.convert()),
        Request::OffsetFetch(r) => GroupRequest::FetchOffsets(r.convert()),
        Request::DescribeGroup(r) => GroupRequest::Describe(r.convert()),
        Request::ListGroups(_) => GroupRequest::List,
        other => unreachable!("routed here only for group requests, not {:?}", other.api_key()),
    };
    let response = groups::handle(shard, ctx, request).await;
    let failed = groups::error_of(&response).is_some();
    let response = match response {
        GroupResponse::Join(r) => Response::JoinGroup(r.convert()),
        GroupResponse::Heartbeat(r) => Response::Heartbeat(r.convert()),
        GroupResponse::Leave(r) => Response::LeaveGroup(r.convert()),
        GroupResponse::Commit(r) => Response::OffsetCommit(r.convert()),
        GroupResponse::FetchOffsets(r) => Response::OffsetFetch(r.convert()),
        GroupResponse::Describe(r) => Response::DescribeGroup(r.convert()),
        GroupResponse::List(r) => Response::ListGroups(r.convert()),
    };
    (response, failed)
}
