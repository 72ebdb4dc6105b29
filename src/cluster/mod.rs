//! The cluster: brokers that share one metadata log and replicate partitions.
//!
//! Built so far: the metadata quorum (`quorum`), the broker's metadata commands as the
//! log of a Raft group on openraft, replicated on the controller voters, with its own
//! log store, state machine and network; `MetadataLog`, where shard 0 writes commands
//! (its own log, or the quorum); and the controller's decisions (`controller`:
//! placement, elections) over the cluster metadata (`metadata::cluster`). Next (docs/ARCHITECTURE.md, "How the next
//! pieces plug in"): shard 0's admin path proposing through it when `[cluster]` is
//! configured, then replicated partitions.

pub mod controller;
pub mod metadata_log;
pub mod quorum;
pub mod replication;

pub use metadata_log::MetadataLog;
