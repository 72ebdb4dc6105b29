//! Routes one decoded request to its handler. Requests that only read this shard's
//! state are answered at once; the rest run as their own tasks so that a slow one
//! (a long-poll fetch, an admin command) never holds up the connection.

use super::out::{ConnectionState, Outgoing, Piece};
use super::{admin, fetch, groups, info, offsets, produce};
use crate::shard::Shard;
use bytes::BytesMut;
use std::rc::Rc;
use strand_protocol::native::{
    version_supported, ApiKey, DecodeError, ErrorCode, ErrorFrame, FrameHeader, ProduceLayout, Request, Response,
};

/// Requests one connection may have in flight before the shard stops reading it
/// (each in-flight request holds a task; this bounds tasks as in-flight bytes bound
/// memory).
pub const IN_FLIGHT_REQUESTS_MAX: usize = 4096;

/// Decodes and dispatches one frame. `Err` closes the connection, with the reason.
pub async fn dispatch(
    shard: &Rc<Shard>,
    state: &Rc<ConnectionState>,
    header: FrameHeader,
    payload: BytesMut,
) -> Result<(), String> {
    let correlation = header.correlation_id.get();
    shard.metrics.request(header.api_key.get());
    if header.flags != 0 {
        // SPEC.md: a request's flags are 0; a response or error frame from a client
        // means it is not speaking this protocol (or is confused about direction).
        return Err(refuse(shard, state, &header, DecodeError::RequestFlags { flags: header.flags }));
    }
    let request_bytes = header.frame_bytes();
    // Produce keeps its payload owned: the batches are split off it, not copied.
    if header.api_key.get() == ApiKey::Produce as u16 && version_supported(header.api_version.get()) {
        let layout = match ProduceLayout::decode(&payload, &shard.limits) {
            Ok(layout) => layout,
            Err(error) => return Err(refuse(shard, state, &header, error)),
        };
        wait_for_request_slot(state).await;
        state.start_request(request_bytes);
        produce::handle(shard, state, correlation, request_bytes, layout, payload).await;
        return Ok(());
    }
    let payload = payload.freeze();
    let request = match Request::decode(&header, &payload, &shard.limits) {
        Ok(request) => request,
        Err(error) => return Err(refuse(shard, state, &header, error)),
    };
    drop(payload);
    wait_for_request_slot(state).await;
    state.start_request(request_bytes);
    match request {
        Request::ApiVersions(_) => respond(state, correlation, request_bytes, info::api_versions()),
        Request::Metadata(request) => respond(state, correlation, request_bytes, info::metadata(shard, request)),
        Request::DescribeTopicConfigs(request) => {
            respond(state, correlation, request_bytes, admin::describe_topic_configs(shard, request))
        }
        request => {
            let (shard, state) = (shard.clone(), state.clone());
            glommio::spawn_local(async move {
                match request {
                    Request::Fetch(request) => {
                        let units = fetch::response_reservation(&request).min(state.response_budget_bytes);
                        let Ok(budget) = state.response_budget.acquire_static_permit(units as u64).await else {
                            state.finish_request(request_bytes); // the connection closed
                            return;
                        };
                        let started = std::time::Instant::now();
                        let pieces = fetch::handle(&shard, correlation, request).await;
                        shard.metrics.fetch_latency.observe(started.elapsed());
                        state.send(Outgoing { pieces, request_bytes, budget: Some(budget) });
                    }
                    Request::ListOffsets(request) => {
                        let response = offsets::handle(&shard, request).await;
                        respond(&state, correlation, request_bytes, response);
                    }
                    request @ (Request::CreateTopics(_)
                    | Request::DeleteTopics(_)
                    | Request::AlterTopicConfigs(_)
                    | Request::CreatePartitions(_)) => {
                        let response = admin::handle_anywhere(&shard, request).await;
                        respond(&state, correlation, request_bytes, response);
                    }
                    request @ (Request::JoinGroup(_)
                    | Request::Heartbeat(_)
                    | Request::LeaveGroup(_)
                    | Request::OffsetCommit(_)
                    | Request::OffsetFetch(_)
                    | Request::ListGroups(_)
                    | Request::DescribeGroup(_)) => {
                        let response = groups::handle(&shard, request).await;
                        if groups::is_error(&response) {
                            shard.metrics.error(response.api_key());
                        }
                        respond(&state, correlation, request_bytes, response);
                    }
                    Request::ApiVersions(_) | Request::Metadata(_) | Request::DescribeTopicConfigs(_) => {
                        unreachable!("answered inline")
                    }
                    Request::Produce(_) => unreachable!("decoded by its layout"),
                }
            })
            .detach();
        }
    }
    Ok(())
}

/// Waits while the connection has `IN_FLIGHT_REQUESTS_MAX` requests unanswered.
async fn wait_for_request_slot(state: &ConnectionState) {
    if state.in_flight_requests.get() >= IN_FLIGHT_REQUESTS_MAX {
        state.space.wait_until(|| state.in_flight_requests.get() < IN_FLIGHT_REQUESTS_MAX || state.closed.get()).await;
    }
}

/// Answers an undecodable request with an error frame; returns why the connection
/// closes.
fn refuse(shard: &Shard, state: &ConnectionState, header: &FrameHeader, error: DecodeError) -> String {
    let code = match error {
        DecodeError::UnknownApi { .. } => ErrorCode::UnknownApi,
        DecodeError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
        _ => ErrorCode::MalformedRequest,
    };
    if let Ok(api) = ApiKey::from_key(header.api_key.get()) {
        shard.metrics.error(api);
    }
    let mut out = Vec::new();
    let frame = ErrorFrame { error: code, message: error.to_string() };
    frame.encode(header.api_key.get(), header.correlation_id.get(), &mut out);
    state.start_request(0);
    state.send(Outgoing { pieces: vec![Piece::Owned(out)], request_bytes: 0, budget: None });
    if shard.warnings.bad_clients.allow() {
        tracing::warn!(shard = shard.id, %error, "closing a connection that sent an undecodable request");
    }
    format!("undecodable request: {error}")
}

/// Queues an encoded response.
pub fn respond(state: &ConnectionState, correlation: u32, request_bytes: usize, response: Response) {
    let mut out = Vec::new();
    response.encode(correlation, &mut out);
    state.send(Outgoing { pieces: vec![Piece::Owned(out)], request_bytes, budget: None });
}
