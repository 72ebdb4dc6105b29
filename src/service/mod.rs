//! The service layer: every operation a client can ask of the broker, as a function
//! over the broker's own types, whatever protocol the request came in. A listener
//! decodes its protocol's request, calls one of these, and encodes the answer; the
//! native listener (`native`) does so today, and a Kafka listener will call the same
//! functions. Authorization and quotas belong here, checked once for every listener.
//!
//! Each operation works on `TopicPartition`s, answers per partition with a
//! `Result<_, Error>`, and takes a `RequestContext` (who asks, on which listener,
//! until when). Partitions live on the shard that owns them: `scatter` groups a
//! request's partitions by owning shard and gathers the answers back into request
//! order; the work for another shard travels as a `ShardMessage` of these same types,
//! and `forwarded` serves what other shards send here.
//!
//! Code map: `error` (what can go wrong), `operation` (what requests are counted by),
//! `scatter` (group by owner, gather by slot), `produce`, `fetch`, `offsets` (list
//! offsets, end offsets), `records` (deleting records, describing producers), `producer_ids` (InitProducerId for both protocols), `authenticate` (a SASL
//! message's consequences for the session, for both protocols), `admin` (topic changes through shard 0), `metadata` (topics
//! and their settings, from the shard's copy), `groups` (routing to a group's
//! coordinator), `forwarded` (the mesh receiver), `types` (what crosses the mesh).

pub mod acls;
pub mod admin;
pub mod authenticate;
pub mod authorize;
pub mod error;
pub mod fetch;
pub mod forwarded;
pub mod groups;
pub mod metadata;
pub mod offsets;
pub mod operation;
pub mod produce;
pub mod producer_ids;
pub mod quota_meter;
pub mod quotas;
pub mod records;
pub mod scatter;
pub mod types;
pub mod users;

pub use error::Error;
pub use operation::{Listener, Operation};

use std::time::Instant;

pub use crate::auth::Principal;

/// What every operation is told about the request it serves.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub listener: Listener,
    pub principal: Principal,
    /// The client's own name for itself, when its protocol carries one.
    pub client_id: Option<String>,
    /// When the client stops waiting for an answer, if it said.
    pub deadline: Option<Instant>,
    /// The client's IP address, when its transport knows it.
    pub host: Option<std::net::IpAddr>,
}

impl RequestContext {
    /// The client's host as Kafka shows it (`/127.0.0.1`), or empty when unknown.
    pub fn client_host(&self) -> String {
        self.host.map(|host| format!("/{host}")).unwrap_or_default()
    }

    /// A request from a client on `listener` that has not authenticated.
    pub fn anonymous(listener: Listener) -> RequestContext {
        RequestContext { listener, principal: Principal::Anonymous, client_id: None, deadline: None, host: None }
    }

    /// A request the broker makes of itself.
    pub fn broker() -> RequestContext {
        RequestContext {
            listener: Listener::Internal,
            principal: Principal::Broker,
            client_id: None,
            deadline: None,
            host: None,
        }
    }
}
