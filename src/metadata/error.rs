//! Why a metadata command is refused, or the store failed.

use std::path::PathBuf;
use thiserror::Error;

/// Most partitions one topic may have.
pub const PARTITIONS_MAX: u32 = 100_000;

/// Why a metadata command was refused or the store could not be used.
#[derive(Debug, Error)]
pub enum MetadataError {
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    #[error(
        "topic {name:?} collides with existing topic {existing:?}: '.' and '_' are interchangeable in metric names"
    )]
    TopicCollides { name: String, existing: String },
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    #[error("invalid partition count {count}: must be between 1 and {PARTITIONS_MAX}")]
    InvalidPartitions { count: u64 },
    #[error("topic {name:?} has {current} partitions: a topic's partition count can only grow")]
    PartitionsShrink { name: String, current: u32 },
    #[error("invalid topic configuration: {0}")]
    InvalidConfig(String),
    /// A partition change from a deposed leader, or made against an older state of the
    /// partition (Kafka's FENCED_LEADER_EPOCH, INVALID_UPDATE_VERSION).
    #[error("stale epoch: {0}")]
    StaleEpoch(String),
    /// The metadata quorum could not take the command (no leader, too few voters):
    /// retriable.
    #[error("the metadata quorum is unavailable: {0}")]
    Unavailable(String),
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}
