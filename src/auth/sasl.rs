//! SASL exchanges, one client message at a time, for any listener: PLAIN (RFC 4616)
//! and SCRAM-SHA-256/512 (`scram`), all against the users' stored SCRAM credentials
//! (as Redpanda checks PLAIN; no password is ever stored).
//!
//! PLAIN costs the broker a PBKDF2 of the password (4,096 or more HMACs, about a
//! millisecond or several), so it runs on a blocking thread, off the shard's event
//! loop; SCRAM costs the broker four HMACs and a hash (the client does the PBKDF2).

use super::failures::FailureDelays;
use super::scram::ScramExchange;
use crate::config::SaslConfig;
use crate::metadata::MetadataState;
use crate::metadata::{ScramCredential, ScramMechanism};
use std::sync::Arc;
use std::time::Duration;

/// A SASL mechanism the broker serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Scram(ScramMechanism),
}

impl Mechanism {
    /// The mechanism of a SASL name, if served.
    pub fn parse(name: &str) -> Option<Mechanism> {
        match name {
            "PLAIN" => Some(Mechanism::Plain),
            "SCRAM-SHA-256" => Some(Mechanism::Scram(ScramMechanism::Sha256)),
            "SCRAM-SHA-512" => Some(Mechanism::Scram(ScramMechanism::Sha512)),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(scram) => scram.name(),
        }
    }
}

/// What every SASL listener of the process shares.
pub struct SaslShared {
    /// The mechanisms offered, in the configured order.
    pub mechanisms: Vec<Mechanism>,
    /// How long an authentication holds; `None`: the connection's life.
    pub session_lifetime: Option<Duration>,
    pub failures: FailureDelays,
    /// Made at start: what an unknown user's made-up salt is derived from.
    secret: [u8; 32],
}

impl SaslShared {
    pub fn new(config: &SaslConfig) -> SaslShared {
        let mut secret = [0u8; 32];
        rand::Rng::fill(&mut rand::thread_rng(), &mut secret[..]);
        SaslShared {
            mechanisms: config.mechanisms.iter().filter_map(|name| Mechanism::parse(name)).collect(),
            session_lifetime: (config.session_lifetime_ms > 0)
                .then(|| Duration::from_millis(config.session_lifetime_ms)),
            failures: FailureDelays::new(config.failure_delay_ms, config.failure_delay_max_ms),
            secret,
        }
    }

    /// The names offered, for a client that asked for another.
    pub fn mechanism_names(&self) -> Vec<String> {
        self.mechanisms.iter().map(|m| m.name().to_string()).collect()
    }
}

/// Where an exchange stands between client messages.
pub enum Exchange {
    /// A mechanism was chosen; its first message is awaited.
    Start(Mechanism),
    /// SCRAM's server-first message went out; the client's final one is awaited.
    ScramFinal(Box<ScramExchange>),
}

/// What a client message led to.
pub enum Step {
    /// Send this challenge and wait for the next message.
    Continue(Exchange, Vec<u8>),
    /// The client is `user`; send the last message (possibly empty).
    Authenticated { user: String, answer: Vec<u8> },
}

/// Why an authentication failed: `user` as the client claimed it, and the reason, for
/// the broker's log (the client is told only that it failed).
#[derive(Debug)]
pub struct Failure {
    pub user: Option<String>,
    pub reason: String,
}

/// PLAIN's fields at most this long each.
const PLAIN_FIELD_BYTES_MAX: usize = 1024;

impl Exchange {
    /// The mechanism the exchange runs.
    pub fn mechanism(&self) -> Mechanism {
        match self {
            Exchange::Start(mechanism) => *mechanism,
            Exchange::ScramFinal(scram) => Mechanism::Scram(scram.mechanism()),
        }
    }

    /// Takes the client's next message.
    pub async fn step(self, message: &[u8], state: &Arc<MetadataState>, shared: &SaslShared) -> Result<Step, Failure> {
        match self {
            Exchange::Start(Mechanism::Plain) => plain(message, state, &shared.secret).await,
            Exchange::Start(Mechanism::Scram(mechanism)) => {
                let lookup = |user: &str| credential(state, user, mechanism);
                match ScramExchange::start(mechanism, message, lookup, &shared.secret) {
                    Ok((exchange, answer)) => Ok(Step::Continue(Exchange::ScramFinal(Box::new(exchange)), answer)),
                    Err(error) => Err(Failure { user: None, reason: error.to_string() }),
                }
            }
            Exchange::ScramFinal(exchange) => {
                let user = exchange.user().to_string();
                match exchange.finish(message) {
                    Ok((user, answer)) => Ok(Step::Authenticated { user, answer }),
                    Err(error) => Err(Failure { user: Some(user), reason: error.to_string() }),
                }
            }
        }
    }
}

fn credential(state: &MetadataState, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
    state.users.get(user).and_then(|by| by.get(&mechanism)).cloned()
}

/// PLAIN: `authzid NUL user NUL password`, the password checked against the user's
/// SCRAM credential (SHA-512's when there is one), on a blocking thread.
async fn plain(message: &[u8], state: &Arc<MetadataState>, secret: &[u8; 32]) -> Result<Step, Failure> {
    let fields: Vec<&[u8]> = message.split(|&b| b == 0).collect();
    let malformed = |reason: &str| Failure { user: None, reason: format!("malformed PLAIN message: {reason}") };
    let [authzid, user, password] = fields[..] else {
        return Err(malformed("not three fields separated by NUL"));
    };
    if fields.iter().any(|f| f.len() > PLAIN_FIELD_BYTES_MAX) {
        return Err(malformed("a field is too long"));
    }
    let user = std::str::from_utf8(user).map_err(|_| malformed("the user name is not UTF-8"))?.to_string();
    if user.is_empty() {
        return Err(malformed("no user name"));
    }
    if !authzid.is_empty() && authzid != user.as_bytes() {
        return Err(Failure { user: Some(user), reason: "the authorization id is not the user name".into() });
    }
    let found = credential(state, &user, ScramMechanism::Sha512)
        .map(|c| (ScramMechanism::Sha512, c))
        .or_else(|| credential(state, &user, ScramMechanism::Sha256).map(|c| (ScramMechanism::Sha256, c)));
    let known = found.is_some();
    // An unknown user costs the same PBKDF2 as a known one, so timing does not tell.
    let (mechanism, stored) = found.unwrap_or_else(|| {
        let salt = ScramMechanism::Sha512.hmac(secret, user.as_bytes());
        (
            ScramMechanism::Sha512,
            ScramCredential { salt: salt[..16].to_vec(), stored_key: salt, server_key: Vec::new(), iterations: 4096 },
        )
    });
    let password = password.to_vec();
    let matches = glommio::executor()
        .spawn_blocking(move || {
            let salted = mechanism.salted_password(&password, &stored.salt, stored.iterations);
            let derived = ScramCredential::derive(mechanism, &salted, &stored.salt, stored.iterations);
            derived.stored_key.len() == stored.stored_key.len()
                && derived.stored_key.iter().zip(&stored.stored_key).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
        })
        .await;
    if matches && known {
        Ok(Step::Authenticated { user, answer: Vec::new() })
    } else {
        Err(Failure {
            user: Some(user),
            reason: "the password does not match the user's credential (a wrong password, or no such user)".into(),
        })
    }
}
