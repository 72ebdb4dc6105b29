//! Routes one decoded request to its handler. Requests that only read this shard's
//! state are answered at once; the rest run as their own tasks so that a slow one
//! (a long-poll fetch, an admin command) never holds up the connection.

use super::out::{ConnectionState, Outgoing, Piece};
use super::{admin, fetch, info, offsets, produce};
use crate::shard::Shard;
use bytes::Bytes;
use std::rc::Rc;
use strand_protocol::native::{DecodeError, ErrorCode, ErrorFrame, FrameHeader, Request, Response};

/// Requests one connection may have in flight before the shard stops reading it
/// (each in-flight request holds a task; this bounds tasks as in-flight bytes bound
/// memory).
pub const IN_FLIGHT_REQUESTS_MAX: usize = 4096;

/// Decodes and dispatches one frame. `Err` closes the connection, with the reason.
pub async fn dispatch(
    shard: &Rc<Shard>,
    state: &Rc<ConnectionState>,
    header: FrameHeader,
    payload: Bytes,
) -> Result<(), String> {
    let correlation = header.correlation_id.get();
    if header.is_response() {
        return Err("the client sent a response frame".into());
    }
    let request = match Request::decode(&header, &payload, &shard.limits) {
        Ok(request) => request,
        Err(error) => {
            let code = match error {
                DecodeError::UnknownApi { .. } => ErrorCode::UnknownApi,
                DecodeError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
                _ => ErrorCode::MalformedRequest,
            };
            let mut out = Vec::new();
            ErrorFrame { error: code, message: error.to_string() }.encode(header.api_key.get(), correlation, &mut out);
            state.start_request(0);
            state.send(Outgoing { pieces: vec![Piece::Owned(out)], request_bytes: 0 });
            tracing::debug!(shard = shard.id, %error, "closing a connection that sent an undecodable request");
            return Err(format!("undecodable request: {error}"));
        }
    };
    drop(payload);
    let request_bytes = header.frame_bytes();
    if state.in_flight_requests.get() >= IN_FLIGHT_REQUESTS_MAX {
        state.space.wait_until(|| state.in_flight_requests.get() < IN_FLIGHT_REQUESTS_MAX || state.closed.get()).await;
    }
    state.start_request(request_bytes);
    match request {
        Request::ApiVersions(_) => respond(state, correlation, request_bytes, info::api_versions()),
        Request::Metadata(request) => respond(state, correlation, request_bytes, info::metadata(shard, request)),
        Request::Produce(request) => produce::handle(shard, state, correlation, request_bytes, request).await,
        request => {
            let (shard, state) = (shard.clone(), state.clone());
            glommio::spawn_local(async move {
                match request {
                    Request::Fetch(request) => {
                        let pieces = fetch::handle(&shard, correlation, request).await;
                        state.send(Outgoing { pieces, request_bytes });
                    }
                    Request::ListOffsets(request) => {
                        let response = offsets::handle(&shard, request).await;
                        respond(&state, correlation, request_bytes, response);
                    }
                    Request::CreateTopics(request) => {
                        let response = admin::create_topics_anywhere(&shard, request).await;
                        respond(&state, correlation, request_bytes, response);
                    }
                    Request::DeleteTopics(request) => {
                        let response = admin::delete_topics_anywhere(&shard, request).await;
                        respond(&state, correlation, request_bytes, response);
                    }
                    Request::ApiVersions(_) | Request::Metadata(_) | Request::Produce(_) => unreachable!(),
                }
            })
            .detach();
        }
    }
    Ok(())
}

/// Queues an encoded response.
pub fn respond(state: &ConnectionState, correlation: u32, request_bytes: usize, response: Response) {
    let mut out = Vec::new();
    response.encode(correlation, &mut out);
    state.send(Outgoing { pieces: vec![Piece::Owned(out)], request_bytes });
}
