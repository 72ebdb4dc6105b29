//! Routes one decoded native request to the service layer and encodes its answer.
//! Requests that only read this shard's state are answered at once; the rest run as
//! their own tasks so that a slow one (a long-poll fetch, an admin command) never
//! holds up the connection.

use super::group_wire::Convert;
use super::{admin, authenticate, fetch, groups, info, offsets, produce};
use crate::group::api::GroupRequest;
use crate::net::{ConnectionState, Outgoing, Piece, RequestSlot};
use crate::service::{Listener, Operation, RequestContext};
use crate::shard::Shard;
use bytes::BytesMut;
use std::rc::Rc;
use strand_protocol::native::{
    version_supported, ApiKey, DecodeError, ErrorCode, ErrorFrame, FrameHeader, ProduceLayout, Request, Response,
};

/// The operation a native api key asks for.
pub fn operation(api: ApiKey) -> Operation {
    match api {
        ApiKey::ApiVersions => Operation::ApiVersions,
        ApiKey::Metadata => Operation::Metadata,
        ApiKey::CreateTopics => Operation::CreateTopics,
        ApiKey::DeleteTopics => Operation::DeleteTopics,
        ApiKey::Produce => Operation::Produce,
        ApiKey::Fetch => Operation::Fetch,
        ApiKey::ListOffsets => Operation::ListOffsets,
        ApiKey::JoinGroup => Operation::JoinGroup,
        ApiKey::Heartbeat => Operation::Heartbeat,
        ApiKey::LeaveGroup => Operation::LeaveGroup,
        ApiKey::OffsetCommit => Operation::OffsetCommit,
        ApiKey::OffsetFetch => Operation::OffsetFetch,
        ApiKey::ListGroups => Operation::ListGroups,
        ApiKey::DescribeGroup => Operation::DescribeGroup,
        ApiKey::AlterTopicConfigs => Operation::AlterTopicConfigs,
        ApiKey::DescribeTopicConfigs => Operation::DescribeTopicConfigs,
        ApiKey::CreatePartitions => Operation::CreatePartitions,
        ApiKey::InitProducerId => Operation::Produce,
        ApiKey::Authenticate => Operation::Authenticate,
        ApiKey::DescribeCluster => Operation::Metadata,
        ApiKey::ReplicaFetch => Operation::Fetch,
    }
}

/// Decodes and dispatches one frame. `Err` closes the connection, with the reason.
pub async fn dispatch(
    native: &super::Native,
    state: &Rc<ConnectionState>,
    header: FrameHeader,
    payload: BytesMut,
) -> Result<(), String> {
    let (shard, limits) = (&native.shard, &native.limits);
    let correlation = header.correlation_id.get();
    let api = ApiKey::from_key(header.api_key.get()).ok();
    if let Some(api) = api {
        shard.metrics.request(Listener::Native, operation(api));
    }
    if header.flags != 0 {
        // SPEC.md: a request's flags are 0; a response or error frame from a client
        // means it is not speaking this protocol (or is confused about direction).
        return Err(refuse(shard, state, &header, DecodeError::RequestFlags { flags: header.flags }));
    }
    if let Some(reason) = authenticate::refusal(native.security, state, api) {
        return Err(refuse_with(shard, state, &header, ErrorCode::AuthenticationRequired, reason));
    }
    let ctx = RequestContext {
        host: state.peer,
        principal: state.session.borrow().principal.clone(),
        ..RequestContext::anonymous(Listener::Native)
    };
    let request_bytes = header.frame_bytes();
    // Produce keeps its payload owned: the batches are split off it, not copied.
    if api == Some(ApiKey::Produce) && version_supported(header.api_version.get()) {
        let layout = match ProduceLayout::decode(&payload, limits) {
            Ok(layout) => layout,
            Err(error) => return Err(refuse(shard, state, &header, error)),
        };
        state.wait_for_request_slot().await;
        let slot = state.start_request(request_bytes);
        produce::handle(shard, ctx, state, correlation, slot, layout, payload).await;
        return Ok(());
    }
    let payload = payload.freeze();
    let request = match Request::decode(&header, &payload, limits) {
        Ok(request) => request,
        Err(error) => return Err(refuse(shard, state, &header, error)),
    };
    drop(payload);
    state.wait_for_request_slot().await;
    let slot = state.start_request(request_bytes);
    if let Request::Authenticate(request) = request {
        // Answered before the next frame is read: what follows it runs as the user.
        return authenticate::handle(shard, native.security, state, correlation, slot, request).await;
    }
    route(shard, native, ctx, state, correlation, slot, request)
}

/// Hands one decoded request to its operation: answered at once when it only reads
/// this shard's state, else in a task of its own. `Err` closes the connection.
fn route(
    shard: &Rc<Shard>,
    native: &super::Native,
    ctx: RequestContext,
    state: &Rc<ConnectionState>,
    correlation: u32,
    slot: RequestSlot,
    request: Request,
) -> Result<(), String> {
    let (shard, state) = (shard.clone(), state.clone());
    // Runs a request's work in a task of its own, its time on the shard counted (the
    // clones taken only for the requests that go this way).
    macro_rules! spawn {
        ($work:expr $(,)?) => {
            spawn_timed((shard.clone(), ctx.clone(), state.clone()), $work)
        };
    }
    match request {
        Request::ApiVersions(_) => respond(&state, correlation, slot, info::api_versions()),
        Request::InitProducerId(_) => spawn!(async move {
            // A fresh id whatever id and epoch the request names (SPEC.md).
            let response = match crate::service::producer_ids::init_producer_id(&shard, &ctx).await {
                Ok((producer_id, epoch)) => strand_protocol::native::messages::InitProducerIdResponse {
                    error: ErrorCode::None,
                    producer_id,
                    epoch: i32::from(epoch),
                },
                Err(error) => strand_protocol::native::messages::InitProducerIdResponse {
                    error: super::errors::code(&error),
                    producer_id: -1,
                    epoch: -1,
                },
            };
            respond(&state, correlation, slot, Response::InitProducerId(response))
        }),
        Request::Metadata(request) => {
            let shard_ports = &native.shard_ports;
            let response = inline(&shard, &ctx, &state, || info::metadata(&shard, shard_ports, &ctx, request));
            respond(&state, correlation, slot, response)
        }
        Request::ReplicaFetch(request) => spawn!(async move {
            let response = crate::cluster::replication::replica_fetch(&shard, &ctx, request).await;
            respond(&state, correlation, slot, Response::ReplicaFetch(response))
        }),
        Request::DescribeCluster(_) => {
            let listener = (native.listener.as_str(), &native.address, native.shard_ports.as_slice());
            let response = inline(&shard, &ctx, &state, || info::describe_cluster(&shard, listener, &ctx));
            respond(&state, correlation, slot, response)
        }
        Request::DescribeTopicConfigs(request) => {
            let response = inline(&shard, &ctx, &state, || admin::describe_topic_configs(&shard, &ctx, request));
            respond(&state, correlation, slot, response)
        }
        Request::Fetch(request) => {
            // Timed inside, where the fetch's own wait is left out.
            glommio::spawn_local(serve_fetch(shard, ctx, state, correlation, slot, request)).detach();
        }
        Request::ListOffsets(request) => spawn!(async move {
            let (response, errors) = offsets::handle(&shard, &ctx, request).await;
            (0..errors).for_each(|_| shard.metrics.error(ctx.listener, Operation::ListOffsets));
            respond(&state, correlation, slot, response);
        }),
        Request::CreateTopics(request) => {
            spawn!(async move { respond(&state, correlation, slot, admin::create_topics(&shard, &ctx, request).await) })
        }
        Request::DeleteTopics(request) => {
            spawn!(async move { respond(&state, correlation, slot, admin::delete_topics(&shard, &ctx, request).await) })
        }
        Request::AlterTopicConfigs(request) => {
            spawn!(async move {
                respond(&state, correlation, slot, admin::alter_topic_configs(&shard, &ctx, request).await)
            },)
        }
        Request::CreatePartitions(request) => {
            spawn!(
                async move { respond(&state, correlation, slot, admin::create_partitions(&shard, &ctx, request).await) },
            )
        }
        Request::JoinGroup(r) => {
            let join = crate::group::api::JoinGroupRequest { client_host: ctx.client_host(), ..r.convert() };
            spawn!(serve_group(shard, ctx, state, correlation, slot, GroupRequest::Join(join)))
        }
        Request::Heartbeat(r) => {
            spawn!(serve_group(shard, ctx, state, correlation, slot, GroupRequest::Heartbeat(r.convert())))
        }
        Request::LeaveGroup(r) => {
            spawn!(serve_group(shard, ctx, state, correlation, slot, GroupRequest::Leave(r.convert())))
        }
        Request::OffsetCommit(r) => {
            spawn!(serve_group(shard, ctx, state, correlation, slot, GroupRequest::Commit(r.convert())))
        }
        Request::OffsetFetch(r) => {
            spawn!(serve_group(shard, ctx, state, correlation, slot, GroupRequest::FetchOffsets(r.convert())))
        }
        Request::DescribeGroup(r) => {
            spawn!(serve_group(shard, ctx, state, correlation, slot, GroupRequest::Describe(r.convert())))
        }
        Request::ListGroups(_) => spawn!(serve_group(shard, ctx, state, correlation, slot, GroupRequest::List)),
        Request::Authenticate(_) => {
            // Taken by `dispatch` before routing, in order.
            state.finish_request(slot);
            return Err("internal error: Authenticate routed".into());
        }
        Request::Produce(_) => {
            // Produce requests of a supported version take the layout path above, and
            // others fail to decode; a whole decoded one is a bug, not a client's fault.
            tracing::error!("a produce request was decoded whole instead of by its layout");
            state.finish_request(slot);
            return Err("internal error: produce request decoded whole".into());
        }
    }
    Ok(())
}

/// Answers at once; the time it took counts against the client's request_percentage.
fn inline(shard: &Shard, ctx: &RequestContext, state: &ConnectionState, answer: impl FnOnce() -> Response) -> Response {
    let started = std::time::Instant::now();
    let response = answer();
    state.mute_for(crate::service::quotas::record_time(shard, ctx, started.elapsed()));
    response
}

/// Runs `work` in a task of its own; the shard's time on it counts against the
/// client's request_percentage (the connection rests after it, if over).
fn spawn_timed(
    (shard, ctx, state): (Rc<Shard>, RequestContext, Rc<ConnectionState>),
    work: impl std::future::Future<Output = ()> + 'static,
) {
    glommio::spawn_local(async move {
        let ((), spent) = crate::service::quotas::timed(work).await;
        state.mute_for(crate::service::quotas::record_time(&shard, &ctx, spent));
    })
    .detach();
}

/// Serves a Fetch: holds its share of the connection's response budget until its
/// answer is sent.
async fn serve_fetch(
    shard: Rc<Shard>,
    ctx: RequestContext,
    state: Rc<ConnectionState>,
    correlation: u32,
    slot: RequestSlot,
    request: strand_protocol::native::messages::FetchRequest,
) {
    let units = fetch::response_reservation(&request).min(state.response_budget_bytes);
    let Ok(budget) = state.response_budget.acquire_static_permit(units as u64).await else {
        state.finish_request(slot); // the connection closed
        return;
    };
    let started = std::time::Instant::now();
    let (pieces, spent) = crate::service::quotas::timed(fetch::handle(&shard, &ctx, correlation, request)).await;
    state.mute_for(crate::service::quotas::record_time(&shard, &ctx, spent));
    // The consumer's quota: the native protocol has no throttle field, so the
    // connection rests before its next request is read.
    let bytes: u64 = pieces.iter().map(|piece| piece.len() as u64).sum();
    let quota = crate::metadata::quota::QuotaKey::ConsumerByteRate;
    state.mute_for(crate::service::quotas::record(&shard, &ctx, quota, bytes));
    shard.metrics.fetch_latency.observe(started.elapsed());
    state.send(Outgoing { pieces, slot, budget: Some(budget) });
}

/// Serves a consumer-group request through its coordinator.
async fn serve_group(
    shard: Rc<Shard>,
    ctx: RequestContext,
    state: Rc<ConnectionState>,
    correlation: u32,
    slot: RequestSlot,
    request: GroupRequest,
) {
    let operation = crate::service::groups::operation_of(&request);
    let (response, failed) = groups::handle(&shard, &ctx, request).await;
    if failed {
        shard.metrics.error(ctx.listener, operation);
    }
    respond(&state, correlation, slot, response);
}

/// Answers an undecodable request with an error frame; returns why the connection
/// closes.
fn refuse(shard: &Shard, state: &ConnectionState, header: &FrameHeader, error: DecodeError) -> String {
    let code = match error {
        DecodeError::UnknownApi { .. } => ErrorCode::UnknownApi,
        DecodeError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
        _ => ErrorCode::MalformedRequest,
    };
    if shard.warnings.bad_clients.allow() {
        tracing::warn!(shard = shard.id, %error, "closing a connection that sent an undecodable request");
    }
    format!("undecodable request: {}", refuse_with(shard, state, header, code, error.to_string()))
}

/// Answers a request with an error frame of `code` saying `reason`; returns the
/// reason, for the connection's close.
fn refuse_with(
    shard: &Shard,
    state: &ConnectionState,
    header: &FrameHeader,
    code: ErrorCode,
    reason: String,
) -> String {
    if let Ok(api) = ApiKey::from_key(header.api_key.get()) {
        shard.metrics.error(Listener::Native, operation(api));
    }
    let mut out = Vec::new();
    let frame = ErrorFrame { error: code, message: reason.clone() };
    frame.encode(header.api_key.get(), header.correlation_id.get(), &mut out);
    let slot = state.start_request(0);
    state.send(Outgoing { pieces: vec![Piece::Owned(out)], slot, budget: None });
    reason
}

/// Queues an encoded response.
pub fn respond(state: &ConnectionState, correlation: u32, slot: RequestSlot, response: Response) {
    let mut out = Vec::new();
    response.encode(correlation, &mut out);
    state.send(Outgoing { pieces: vec![Piece::Owned(out)], slot, budget: None });
}
