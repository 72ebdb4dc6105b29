//! SASL on a Kafka listener (KIP-43, KIP-152, KIP-368): SaslHandshake names the
//! mechanism, then SaslAuthenticate carries the exchange's messages (`auth::sasl`).
//!
//! On a listener whose security is `sasl_plaintext` or `sasl_tls`, a connection may
//! send only ApiVersions, SaslHandshake and SaslAuthenticate until it has
//! authenticated; anything else closes it with the reason logged, as Kafka's broker
//! does. A failed authentication is answered SASL_AUTHENTICATION_FAILED after a delay
//! that grows with the failures from the same address (`auth::failures`), and the
//! connection closed. With `sasl.session_lifetime_ms`, SaslAuthenticate v1+ tells the
//! client how long its session holds; a client that has not authenticated again by
//! then (a new SaslHandshake and exchange on the same connection, as the same user)
//! has its connection closed at its next request.
//!
//! On a listener without SASL, both requests are answered ILLEGAL_SASL_STATE and the
//! connection stays open, as Kafka answers them there.

use super::Kafka;
use crate::auth::sasl::{Exchange, Failure, Mechanism, Step};
use crate::auth::{Authenticated, Principal};
use crate::net::ConnectionState;
use crate::service::{Listener, Operation};
use bytes::Bytes;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::time::Instant;

/// An answer, and whether the connection closes after it (the reason, to log).
pub(super) type Answer<M> = (M, Option<String>);

/// Whether a request of `api` may go ahead on this connection: `Err` is why not (the
/// connection then closes).
pub(super) fn admit(
    kafka: &Kafka,
    state: &ConnectionState,
    api: kafka_protocol::messages::ApiKey,
) -> Result<(), String> {
    use kafka_protocol::messages::ApiKey;
    if !kafka.security.is_sasl()
        || matches!(api, ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate)
    {
        return Ok(());
    }
    let session = state.session.borrow();
    if session.is_authenticated(Instant::now()) {
        return Ok(());
    }
    Err(match session.authenticated {
        Some(_) => format!("{api:?} after the SASL session expired (sasl.session_lifetime_ms) without re-authentication (KIP-368)"),
        None => format!("{api:?} before SASL authentication (only ApiVersions, SaslHandshake and SaslAuthenticate are answered until then)"),
    })
}

/// SaslHandshake: the mechanism the exchange will use.
pub(super) fn handshake(
    kafka: &Kafka,
    state: &ConnectionState,
    version: i16,
    request: SaslHandshakeRequest,
) -> Answer<SaslHandshakeResponse> {
    let shared = &kafka.shard.sasl;
    let mut response = SaslHandshakeResponse::default();
    response.mechanisms = shared.mechanism_names().into_iter().map(StrBytes::from_string).collect();
    if !kafka.security.is_sasl() {
        response.error_code = ResponseError::IllegalSaslState.code();
        return (response, None);
    }
    let mut session = state.session.borrow_mut();
    if session.exchange.is_some() {
        response.error_code = ResponseError::IllegalSaslState.code();
        return (response, Some("a second SaslHandshake during a SASL exchange".into()));
    }
    let offered = Mechanism::parse(&request.mechanism).filter(|m| shared.mechanisms.contains(m));
    match offered {
        Some(mechanism) => {
            session.exchange = Some(Exchange::Start(mechanism));
            session.raw_tokens = version == 0;
            (response, None)
        }
        None => {
            response.error_code = ResponseError::UnsupportedSaslMechanism.code();
            let reason = format!(
                "SaslHandshake asked for {:?}, which is not offered (sasl.mechanisms)",
                request.mechanism.as_str()
            );
            (response, Some(reason))
        }
    }
}

/// After a SaslHandshake v0, one message of the exchange as a raw frame (no request
/// header): answered with a raw frame, or, on a failure, the connection closed (v0 has
/// no way to carry an error).
pub(super) async fn raw_token(kafka: &Kafka, state: &ConnectionState, token: bytes::BytesMut) -> Result<(), String> {
    let Some(exchange) = state.session.borrow_mut().exchange.take() else {
        return Err("a raw SASL token without an exchange".into());
    };
    let mechanism = mechanism_of(&exchange);
    let slot = state.start_request(4 + token.len());
    let metadata = kafka.shard.metadata();
    let (answer, close) = match exchange.step(&token, &metadata, &kafka.shard.sasl).await {
        Ok(Step::Continue(next, challenge)) => {
            state.session.borrow_mut().exchange = Some(next);
            (challenge, None)
        }
        Ok(Step::Authenticated { user, answer }) => {
            let response = SaslAuthenticateResponse::default();
            let (response, close) = succeeded(kafka, state, 0, mechanism, user, answer, response);
            state.session.borrow_mut().raw_tokens = false;
            (response.auth_bytes.to_vec(), close)
        }
        Err(failure) => {
            let (_, close) = failed(kafka, state, mechanism, failure, SaslAuthenticateResponse::default()).await;
            state.finish_request(slot);
            return Err(close.unwrap_or_default());
        }
    };
    if let Some(reason) = close {
        state.finish_request(slot);
        return Err(reason);
    }
    let mut out = (answer.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&answer);
    state.send(crate::net::Outgoing { pieces: vec![crate::net::Piece::Owned(out)], slot, budget: None });
    Ok(())
}

fn mechanism_of(exchange: &Exchange) -> Mechanism {
    match exchange {
        Exchange::Start(mechanism) => *mechanism,
        Exchange::ScramFinal(scram) => Mechanism::Scram(scram.mechanism()),
    }
}

/// SaslAuthenticate: one message of the exchange.
pub(super) async fn authenticate(
    kafka: &Kafka,
    state: &ConnectionState,
    version: i16,
    request: SaslAuthenticateRequest,
) -> Answer<SaslAuthenticateResponse> {
    let mut response = SaslAuthenticateResponse::default();
    if !kafka.security.is_sasl() {
        response.error_code = ResponseError::IllegalSaslState.code();
        response.error_message = Some(StrBytes::from_static_str("this listener does not use SASL"));
        return (response, None);
    }
    let exchange = state.session.borrow_mut().exchange.take();
    let Some(exchange) = exchange else {
        response.error_code = ResponseError::IllegalSaslState.code();
        response.error_message = Some(StrBytes::from_static_str("SaslAuthenticate before SaslHandshake"));
        return (response, Some("SaslAuthenticate before SaslHandshake".into()));
    };
    let mechanism = mechanism_of(&exchange);
    let metadata = kafka.shard.metadata();
    match exchange.step(&request.auth_bytes, &metadata, &kafka.shard.sasl).await {
        Ok(Step::Continue(next, challenge)) => {
            state.session.borrow_mut().exchange = Some(next);
            response.auth_bytes = Bytes::from(challenge);
            (response, None)
        }
        Ok(Step::Authenticated { user, answer }) => succeeded(kafka, state, version, mechanism, user, answer, response),
        Err(failure) => failed(kafka, state, mechanism, failure, response).await,
    }
}

fn succeeded(
    kafka: &Kafka,
    state: &ConnectionState,
    version: i16,
    mechanism: Mechanism,
    user: String,
    answer: Vec<u8>,
    mut response: SaslAuthenticateResponse,
) -> Answer<SaslAuthenticateResponse> {
    let shared = &kafka.shard.sasl;
    let mut session = state.session.borrow_mut();
    if let Some(previous) = session.authenticated.as_ref().filter(|previous| previous.user != user) {
        response.error_code = ResponseError::SaslAuthenticationFailed.code();
        response.error_message = Some(StrBytes::from_static_str("re-authentication must be as the same user"));
        let reason = format!("re-authentication as {user:?} on a connection of {:?}", previous.user);
        return (response, Some(reason));
    }
    // A client that cannot re-authenticate (SaslAuthenticate v0) keeps its session
    // until the connection ends, unless a lifetime is set: then it ends with it.
    let expires = shared.session_lifetime.map(|lifetime| Instant::now() + lifetime);
    session.principal = Principal::User(user.clone());
    session.authenticated = Some(Authenticated { user, mechanism, expires });
    if version >= 1 {
        response.session_lifetime_ms = shared.session_lifetime.map_or(0, |lifetime| lifetime.as_millis() as i64);
    }
    response.auth_bytes = Bytes::from(answer);
    shared.failures.succeeded(state.peer);
    crate::metrics::ShardMetrics::count(&kafka.shard.metrics.authentications, 1);
    (response, None)
}

/// A failed authentication: answered after the address's delay, then closed.
async fn failed(
    kafka: &Kafka,
    state: &ConnectionState,
    mechanism: Mechanism,
    failure: Failure,
    mut response: SaslAuthenticateResponse,
) -> Answer<SaslAuthenticateResponse> {
    let shard = &kafka.shard;
    let delay = shard.sasl.failures.failed(state.peer);
    crate::metrics::ShardMetrics::count(&shard.metrics.authentication_failures, 1);
    shard.metrics.error(Listener::Kafka, Operation::Authenticate);
    let user = failure.user.as_deref().unwrap_or("");
    let host = state.peer.map(|ip| ip.to_string()).unwrap_or_default();
    if shard.warnings.auth_failures.allow() {
        tracing::warn!(
            shard = shard.id,
            principal = %format!("User:{user}"),
            %host,
            mechanism = mechanism.name(),
            reason = %failure.reason,
            delay_ms = delay.as_millis() as u64,
            "SASL authentication failed"
        );
    }
    glommio::timer::sleep(delay).await;
    response.error_code = ResponseError::SaslAuthenticationFailed.code();
    response.error_message = Some(StrBytes::from_string(format!(
        "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
        mechanism.name()
    )));
    (response, Some(format!("SASL authentication failed for User:{user} from {host}: {}", failure.reason)))
}
