//! Consumer-group requests: the native messages to and from the coordinator's types
//! (`group::api`, through `group_wire`), routed by the service layer.

use super::group_wire::Convert;
use crate::group::api::{GroupRequest, GroupResponse};
use crate::service::{groups, RequestContext};
use crate::shard::Shard;
use std::rc::Rc;
use strand_protocol::native::messages::HeartbeatResponse;
use strand_protocol::native::{ErrorCode, Response};

/// Answers a group request; the second value says whether it failed as a whole.
pub async fn handle(shard: &Rc<Shard>, ctx: &RequestContext, request: GroupRequest) -> (Response, bool) {
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
        // The coordinator answers a request with a response of its kind, and the
        // native listener asks nothing of Kafka's classic protocol.
        other @ (GroupResponse::ClassicJoin(_)
        | GroupResponse::ClassicSync(_)
        | GroupResponse::ClassicHeartbeat(_)
        | GroupResponse::ClassicLeave(_)
        | GroupResponse::Summary(_)
        | GroupResponse::Deleted(_)
        | GroupResponse::OffsetsDeleted(_)) => {
            tracing::error!(?other, "a classic-protocol answer reached the native listener");
            return (Response::Heartbeat(HeartbeatResponse { error: ErrorCode::Internal, ..Default::default() }), true);
        }
    };
    (response, failed)
}
