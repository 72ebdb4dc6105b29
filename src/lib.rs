//! Strand: a thread-per-core event streaming broker for Linux bare metal.
//!
//! See `docs/ARCHITECTURE.md` for the map of this crate.

pub mod admin;
pub mod auth;
pub mod boot;
pub mod cluster;
pub mod config;
pub mod group;
pub mod host;
pub mod kafka;
pub mod lock;
pub mod metadata;
pub mod metrics;
pub mod native;
pub mod net;
pub mod partition;
pub mod runtime;
pub mod service;
pub mod shard;
pub use strand_storage as storage;
pub mod systemd;
