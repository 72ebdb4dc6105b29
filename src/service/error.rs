//! What can go wrong for a partition or a request, in the broker's own terms. Each
//! listener maps these to its protocol's codes (`native::errors` for the native
//! protocol); a message, where a variant has one, is what the client is told.

use crate::metadata::MetadataError;
use crate::partition::OpenFailureCause;
use crate::shard::capacity_error::CapacityError;
use crate::storage::StorageError;
use std::sync::Arc;

/// Why a request, or one partition of it, failed. Cheap to clone: storage and
/// metadata errors are shared.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("unknown topic")]
    UnknownTopic,
    /// The principal may not do this to the topic (it may not learn whether it exists).
    #[error("not authorized for the topic")]
    TopicAuthorizationFailed,
    #[error("not authorized for the group")]
    GroupAuthorizationFailed,
    #[error("not authorized for the cluster")]
    ClusterAuthorizationFailed,
    #[error("not authorized for the transactional id")]
    TransactionalIdAuthorizationFailed,
    #[error("unknown partition")]
    UnknownPartition,
    /// In a cluster: another broker leads the partition, or none does for now.
    #[error("this broker does not lead the partition")]
    NotLeader,
    /// acks=all with fewer replicas in sync than the topic's `min_insync_replicas`.
    #[error("{in_sync} replicas are in sync; the topic's min_insync_replicas is {required}")]
    NotEnoughReplicas { in_sync: u32, required: u32 },
    /// A client's leader epoch is older than the partition's (KIP-320).
    #[error("the leader epoch given is older than the partition's")]
    FencedLeaderEpoch,
    /// A client's leader epoch is newer than this broker knows.
    #[error("the leader epoch given is newer than this broker knows")]
    UnknownLeaderEpoch,
    /// In a cluster: another broker coordinates the group, or none does for now.
    #[error("this broker does not coordinate the group")]
    NotCoordinator,
    /// Placed on its shard but not open there: it failed to open, or is being deleted.
    #[error("the partition is not open on its shard")]
    NotReady,
    /// The shard that was to answer stopped (the broker is shutting down).
    #[error("the broker is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Storage(Arc<StorageError>),
    #[error(transparent)]
    Metadata(Arc<MetadataError>),
    #[error(transparent)]
    Capacity(#[from] CapacityError),
    /// An offset past the partition's end.
    #[error("offset {offset} is past the partition's end {end}")]
    OffsetOutOfRange { offset: u64, end: u64 },
    /// Storage failed on the way (the message says where).
    #[error("{0}")]
    StorageFailed(String),
    /// A creation was undone because some of its partitions could not be opened.
    #[error("{reason}")]
    NotOpened { cause: OpenFailureCause, reason: String },
    /// A durable wait passed the request's deadline (the batch may still become
    /// durable).
    #[error("the request timed out")]
    Timeout,
    #[error("acks must be 0, 1 or 2")]
    InvalidAcks,
    /// A field of the request is out of its range.
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{0}")]
    InvalidPartitions(String),
    /// More replicas than live brokers, or a factor not served.
    #[error("{0}")]
    InvalidReplicationFactor(String),
    /// The topic's name may not be used for this (an internal topic).
    #[error("{0}")]
    InvalidTopicName(String),
    #[error("invalid group id")]
    InvalidGroupId,
    #[error("the session timeout is out of range")]
    InvalidSessionTimeout,
    #[error("the shard coordinates as many groups as it may")]
    TooManyGroups,
    #[error("the group has as many members as it may")]
    GroupFull,
    #[error("unknown group")]
    UnknownGroup,
    #[error("unknown member")]
    UnknownMember,
    #[error("the group has live members")]
    GroupNotEmpty,
    /// OffsetDelete of a partition of a topic the group's members subscribe to.
    #[error("the group's members subscribe to the topic")]
    GroupSubscribedToTopic,
    #[error("stale generation")]
    StaleGeneration,
    #[error("the member does not own the partition")]
    NotAssigned,
    /// A KIP-848 member committed with an epoch older than its group's.
    #[error("the member epoch is stale")]
    StaleMemberEpoch,
    /// A classic group is rebalancing: the member is to join again.
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    /// A new member of a classic group is given its id first and joins again with it
    /// (KIP-394).
    #[error("the member is to join again with the id it was given")]
    MemberIdRequired,
    /// The group exists with another protocol (a Kafka classic group and a group the
    /// broker assigns cannot share an id), or with protocols the member shares none of.
    #[error("{0}")]
    InconsistentGroupProtocol(String),
    /// A SCRAM mechanism this broker does not know.
    #[error("{0}")]
    UnsupportedSaslMechanism(String),
    /// A SCRAM credential that cannot be kept: an empty user name, too few or too many
    /// iterations, an empty salt or salted password.
    #[error("{0}")]
    UnacceptableCredential(String),
    /// A user, or a user's credential, that does not exist.
    #[error("{0}")]
    ResourceNotFound(String),
    /// The same resource named twice in one request.
    #[error("{0}")]
    DuplicateResource(String),
    /// An idempotent producer's batch that does not follow its last one, or of a
    /// fenced epoch.
    #[error(transparent)]
    Producer(#[from] crate::partition::producers::ProducerError),
}

impl From<crate::partition::AppendError> for Error {
    fn from(error: crate::partition::AppendError) -> Error {
        match error {
            crate::partition::AppendError::Storage(error) => Error::from(error),
            crate::partition::AppendError::Producer(error) => Error::Producer(error),
        }
    }
}

impl From<StorageError> for Error {
    fn from(error: StorageError) -> Error {
        Error::Storage(Arc::new(error))
    }
}

impl From<MetadataError> for Error {
    fn from(error: MetadataError) -> Error {
        Error::Metadata(Arc::new(error))
    }
}
