//! Authentication, whatever the protocol: who a connection is (`Principal`), the SASL
//! mechanisms that prove it against the users' stored SCRAM credentials (`sasl`,
//! `scram`), the principal a client certificate maps to (`principal`), and the delay
//! that slows down an address that keeps failing (`failures`).
//!
//! The listeners carry the exchanges (Kafka's SaslHandshake and SaslAuthenticate);
//! what a principal may do is the service layer's to check.
//!
//! Code map: `authorizer` (Kafka's ACL rules: who may do what on which resource),
//! `sasl` (a mechanism's exchange, one message at a time), `scram` (SCRAM's
//! server and client sides), `principal` (certificate subjects and Kafka's mapping
//! rules), `failures` (the growing delay per address).

pub mod authorizer;
pub mod failures;
pub mod principal;
pub mod sasl;
pub mod scram;

/// Who a request is from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A client on a listener without authentication (Kafka's `User:ANONYMOUS`).
    #[default]
    Anonymous,
    /// A user proven by SASL or named by a client certificate.
    User(String),
    /// The broker itself (the group coordinator asking for end offsets).
    Broker,
}

impl Principal {
    /// Kafka's form: `User:name`.
    pub fn kafka_name(&self) -> String {
        match self {
            Principal::Anonymous => "User:ANONYMOUS".into(),
            Principal::User(name) => format!("User:{name}"),
            Principal::Broker => "User:strand-broker".into(),
        }
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.kafka_name())
    }
}

/// What a connection has proven about itself, and the SASL exchange under way.
#[derive(Default)]
pub struct Session {
    /// Who the connection's requests are from: the SASL user once authenticated, else
    /// the client certificate's principal, else anonymous.
    pub principal: Principal,
    /// Set by a successful SASL authentication.
    pub authenticated: Option<Authenticated>,
    /// The exchange a SaslHandshake began, until its last SaslAuthenticate.
    pub exchange: Option<sasl::Exchange>,
    /// After a Kafka SaslHandshake v0: the exchange's messages come as raw frames,
    /// not in SaslAuthenticate requests.
    pub raw_tokens: bool,
}

/// A SASL authentication that succeeded.
pub struct Authenticated {
    pub user: String,
    pub mechanism: sasl::Mechanism,
    /// When it runs out (`sasl.session_lifetime_ms`), if it does.
    pub expires: Option<std::time::Instant>,
}

impl Session {
    /// Whether a SASL authentication holds now.
    pub fn is_authenticated(&self, now: std::time::Instant) -> bool {
        self.authenticated.as_ref().is_some_and(|a| a.expires.is_none_or(|expires| now < expires))
    }
}
