//! Authenticate (18): SASL on a native listener whose security is `sasl_plaintext` or
//! `sasl_tls`, with the Kafka listener's mechanisms and credential store
//! (`service::authenticate`). Until a connection has authenticated, and again once its
//! session has run out, only ApiVersions and Authenticate are served: anything else
//! is answered with an AuthenticationRequired error frame and the connection closed.

use super::route::respond;
use crate::auth::sasl::{Exchange, Mechanism};
use crate::config::Security;
use crate::net::ConnectionState;
use crate::service::authenticate::{self, Outcome};
use crate::service::Listener;
use crate::shard::Shard;
use bytes::Bytes;
use std::time::Instant;
use strand_protocol::native::messages::{AuthenticateRequest, AuthenticateResponse};
use strand_protocol::native::{ApiKey, ErrorCode, Response};

/// Why a request of `api` may not go ahead on this connection, if it may not.
pub fn refusal(security: Security, state: &ConnectionState, api: Option<ApiKey>) -> Option<String> {
    if !security.is_sasl() || matches!(api, Some(ApiKey::ApiVersions | ApiKey::Authenticate) | None) {
        return None;
    }
    let session = state.session.borrow();
    if session.is_authenticated(Instant::now()) {
        return None;
    }
    let api = api.map_or("a request".to_string(), |api| format!("{api:?}"));
    Some(match session.authenticated {
        Some(_) => format!("{api} after the session ran out (sasl.session_lifetime_ms): authenticate again"),
        None => {
            format!("{api} before authentication: this listener serves only ApiVersions and Authenticate until then")
        }
    })
}

/// One message of the exchange; `Err` closes the connection (after the answer).
pub async fn handle(
    shard: &Shard,
    security: Security,
    state: &ConnectionState,
    correlation: u32,
    slot: crate::net::RequestSlot,
    request: AuthenticateRequest,
) -> Result<(), String> {
    let answer = |error: ErrorCode, message: String| AuthenticateResponse {
        error,
        message,
        token: Bytes::new(),
        authenticated: 0,
        session_lifetime_ms: 0,
    };
    let shared = &shard.sasl;
    if !security.is_sasl() {
        let message =
            "this listener does not authenticate with SASL (its security is neither sasl_plaintext nor sasl_tls)";
        respond(
            state,
            correlation,
            slot,
            Response::Authenticate(answer(ErrorCode::UnsupportedMechanism, message.into())),
        );
        return Ok(());
    }
    let offered = Mechanism::parse(&request.mechanism).filter(|m| shared.mechanisms.contains(m));
    let under_way = state.session.borrow_mut().exchange.take();
    let exchange = match (under_way, offered) {
        (Some(exchange), Some(mechanism)) if exchange.mechanism() == mechanism => exchange,
        (Some(exchange), _) => {
            let mechanism = exchange.mechanism();
            let reason =
                format!("Authenticate named {:?} in the middle of a {} exchange", request.mechanism, mechanism.name());
            let failure = crate::auth::sasl::Failure { user: None, reason };
            let (message, reason) = authenticate::failed(shard, Listener::Native, state.peer, mechanism, failure).await;
            respond(state, correlation, slot, Response::Authenticate(answer(ErrorCode::AuthenticationFailed, message)));
            return Err(reason);
        }
        (None, Some(mechanism)) => Exchange::Start(mechanism),
        (None, None) => {
            // Nothing was begun: the client may try another mechanism on this connection.
            let message = format!(
                "{:?} is not offered here; this listener offers {}",
                request.mechanism,
                shared.mechanism_names().join(", ")
            );
            respond(state, correlation, slot, Response::Authenticate(answer(ErrorCode::UnsupportedMechanism, message)));
            return Ok(());
        }
    };
    let outcome =
        authenticate::step(shard, Listener::Native, &state.session, state.peer, exchange, &request.token).await;
    let (response, close) = match outcome {
        Outcome::Challenge(challenge) => {
            (AuthenticateResponse { token: Bytes::from(challenge), ..answer(ErrorCode::None, String::new()) }, None)
        }
        Outcome::Authenticated { answer: last, lifetime } => (
            AuthenticateResponse {
                error: ErrorCode::None,
                message: String::new(),
                token: Bytes::from(last),
                authenticated: 1,
                session_lifetime_ms: lifetime.map_or(0, |lifetime| lifetime.as_millis() as u64),
            },
            None,
        ),
        Outcome::Refused { message, reason } => (answer(ErrorCode::AuthenticationFailed, message), Some(reason)),
    };
    respond(state, correlation, slot, Response::Authenticate(response));
    close.map_or(Ok(()), Err)
}
