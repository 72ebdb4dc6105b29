//! One client message of a SASL exchange, for either listener (Kafka's
//! SaslAuthenticate, the native Authenticate): the exchange's step (`auth::sasl`), and
//! what follows from it for the connection's session, the address's failure delay,
//! the metrics and the log.
//!
//! A success makes the connection the user's for `sasl.session_lifetime_ms` (or its
//! life); re-authenticating on the same connection must be as the same user. A
//! failure is answered after the delay the address has earned (`auth::failures`), is
//! counted and logged rate-limited with principal, host and mechanism, and the
//! connection is then closed: the client is told only that it failed.

use super::{Listener, Operation};
use crate::auth::sasl::{Exchange, Failure, Mechanism, Step};
use crate::auth::{Authenticated, Principal, Session};
use crate::metrics::ShardMetrics;
use crate::shard::Shard;
use std::cell::RefCell;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// What the client's message led to.
pub enum Outcome {
    /// Send this challenge; the exchange waits for the client's next message (kept in
    /// the session).
    Challenge(Vec<u8>),
    /// The connection is now the user's: send `answer`; the session holds for
    /// `lifetime` (`None`: the connection's life).
    Authenticated { answer: Vec<u8>, lifetime: Option<Duration> },
    /// Tell the client `message`, then close the connection, logging `reason`.
    Refused { message: String, reason: String },
}

/// Takes the client's next message of `exchange` on a connection from `peer`.
pub async fn step(
    shard: &Shard,
    listener: Listener,
    session: &RefCell<Session>,
    peer: Option<IpAddr>,
    exchange: Exchange,
    message: &[u8],
) -> Outcome {
    let mechanism = exchange.mechanism();
    let metadata = shard.metadata();
    match exchange.step(message, &metadata, &shard.sasl).await {
        Ok(Step::Continue(next, challenge)) => {
            session.borrow_mut().exchange = Some(next);
            Outcome::Challenge(challenge)
        }
        Ok(Step::Authenticated { user, answer }) => succeeded(shard, session, peer, mechanism, user, answer),
        Err(failure) => {
            let (message, reason) = failed(shard, listener, peer, mechanism, failure).await;
            Outcome::Refused { message, reason }
        }
    }
}

fn succeeded(
    shard: &Shard,
    session: &RefCell<Session>,
    peer: Option<IpAddr>,
    mechanism: Mechanism,
    user: String,
    answer: Vec<u8>,
) -> Outcome {
    let mut session = session.borrow_mut();
    if let Some(previous) = session.authenticated.as_ref().filter(|previous| previous.user != user) {
        return Outcome::Refused {
            message: "re-authentication must be as the same user".into(),
            reason: format!("re-authentication as {user:?} on a connection of {:?}", previous.user),
        };
    }
    let lifetime = shard.sasl.session_lifetime;
    session.principal = Principal::User(user.clone());
    session.authenticated = Some(Authenticated { user, mechanism, expires: lifetime.map(|l| Instant::now() + l) });
    shard.sasl.failures.succeeded(peer);
    ShardMetrics::count(&shard.metrics.authentications, 1);
    Outcome::Authenticated { answer, lifetime }
}

/// A failed authentication (also one a listener finds itself, such as a mechanism
/// changed mid-exchange): counted, logged, and returned after the address's delay as
/// what the client is told and why the connection closes.
pub async fn failed(
    shard: &Shard,
    listener: Listener,
    peer: Option<IpAddr>,
    mechanism: Mechanism,
    failure: Failure,
) -> (String, String) {
    let delay = shard.sasl.failures.failed(peer);
    ShardMetrics::count(&shard.metrics.authentication_failures, 1);
    shard.metrics.error(listener, Operation::Authenticate);
    let user = failure.user.as_deref().unwrap_or("");
    let host = peer.map(|ip| ip.to_string()).unwrap_or_default();
    if shard.warnings.auth_failures.allow() {
        tracing::warn!(
            shard = shard.id,
            listener = listener.name(),
            principal = %format!("User:{user}"),
            %host,
            mechanism = mechanism.name(),
            reason = %failure.reason,
            delay_ms = delay.as_millis() as u64,
            "SASL authentication failed"
        );
    }
    glommio::timer::sleep(delay).await;
    (
        format!(
            "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
            mechanism.name()
        ),
        format!("SASL authentication failed for User:{user} from {host}: {}", failure.reason),
    )
}
