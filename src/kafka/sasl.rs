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
use crate::auth::sasl::{Exchange, Mechanism};
use crate::net::ConnectionState;
use crate::service::authenticate::{self, Outcome};
use crate::service::Listener;
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
    let slot = state.start_request(4 + token.len());
    let answer =
        match authenticate::step(&kafka.shard, Listener::Kafka, &state.session, state.peer, exchange, &token).await {
            Outcome::Challenge(challenge) => challenge,
            Outcome::Authenticated { answer, .. } => {
                state.session.borrow_mut().raw_tokens = false;
                answer
            }
            Outcome::Refused { reason, .. } => {
                state.finish_request(slot);
                return Err(reason);
            }
        };
    let mut out = (answer.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&answer);
    state.send(crate::net::Outgoing { pieces: vec![crate::net::Piece::Owned(out)], slot, budget: None });
    Ok(())
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
    let outcome =
        authenticate::step(&kafka.shard, Listener::Kafka, &state.session, state.peer, exchange, &request.auth_bytes)
            .await;
    match outcome {
        Outcome::Challenge(challenge) => {
            response.auth_bytes = Bytes::from(challenge);
            (response, None)
        }
        Outcome::Authenticated { answer, lifetime } => {
            // A client that cannot re-authenticate (v0) is not told the lifetime; its
            // session still ends with it.
            if version >= 1 {
                response.session_lifetime_ms = lifetime.map_or(0, |lifetime| lifetime.as_millis() as i64);
            }
            response.auth_bytes = Bytes::from(answer);
            (response, None)
        }
        Outcome::Refused { message, reason } => {
            response.error_code = ResponseError::SaslAuthenticationFailed.code();
            response.error_message = Some(StrBytes::from_string(message));
            (response, Some(reason))
        }
    }
}
