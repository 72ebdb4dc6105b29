//! Metadata: topics, their configuration and the partition-to-shard placement, users'
//! SCRAM credentials, the access control entries (`acl`), client quotas (`quota`) and
//! the producer id blocks given out, kept as
//! a state machine changed only by commands applied in order (`command`, `state`) and
//! persisted as a CRC-framed command log plus snapshot (`store`). Shard 0 owns the
//! store and broadcasts the state. In a cluster the same commands are the log of the
//! metadata quorum (`cluster::quorum`), and `cluster` holds what a cluster adds: its
//! brokers, and each partition's replicas, leader and in-sync replicas.
//!
//! Admin commands are rare (topic creation, deletion, configuration), so the store uses
//! blocking file I/O with fdatasync per command; the server runs it off the shard's
//! event loop.

pub mod acl;
pub mod cluster;
mod command;
mod error;
mod name;
pub mod quota;
mod scram;
mod state;
mod store;
mod uuid;

pub use command::Command;
pub use error::{MetadataError, PARTITIONS_MAX};
pub use name::{validate_topic_name, TOPIC_NAME_BYTES_MAX};
pub use scram::{ScramCredential, ScramMechanism};
pub use state::{place_partitions, MetadataState, TopicMeta};
pub(crate) use store::frame;
pub use store::{MetadataStore, StoreRecovery};
pub use uuid::TopicUuid;
