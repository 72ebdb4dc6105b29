//! How the broker's errors appear on the native protocol's wire.

use crate::metadata::MetadataError;
use crate::partition::OpenFailureCause;
use crate::service::Error;
use crate::shard::capacity::CapacityError;
use crate::storage::StorageError;
use strand_protocol::native::ErrorCode;
use strand_protocol::BatchError;

/// The native code for `error`.
pub fn code(error: &Error) -> ErrorCode {
    match error {
        Error::UnknownTopic => ErrorCode::UnknownTopic,
        Error::TopicAuthorizationFailed => ErrorCode::TopicAuthorizationFailed,
        Error::GroupAuthorizationFailed => ErrorCode::GroupAuthorizationFailed,
        Error::ClusterAuthorizationFailed | Error::TransactionalIdAuthorizationFailed => {
            ErrorCode::ClusterAuthorizationFailed
        }
        Error::UnknownPartition => ErrorCode::UnknownPartition,
        Error::NotLeader | Error::NotCoordinator | Error::UnknownLeaderEpoch => ErrorCode::NotLeader,
        Error::FencedLeaderEpoch => ErrorCode::StaleEpoch,
        Error::NotEnoughReplicas { .. } => ErrorCode::NotEnoughReplicas,
        Error::NotReady | Error::ShuttingDown => ErrorCode::NotReady,
        Error::Storage(error) => storage_code(error),
        Error::Metadata(error) => metadata_code(error),
        Error::Capacity(error) => capacity_code(error),
        Error::NotOpened { cause, .. } => match cause {
            OpenFailureCause::DiskFull => ErrorCode::DiskFull,
            OpenFailureCause::Descriptors => ErrorCode::ResourceLimit,
            OpenFailureCause::Storage => ErrorCode::StorageFailed,
        },
        Error::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        Error::StorageFailed(_) => ErrorCode::StorageFailed,
        Error::Timeout => ErrorCode::Timeout,
        Error::InvalidAcks => ErrorCode::InvalidAcks,
        Error::InvalidRequest(_) => ErrorCode::MalformedRequest,
        Error::InvalidConfig(_) => ErrorCode::InvalidConfig,
        Error::InvalidPartitions(_) => ErrorCode::InvalidPartitions,
        Error::InvalidReplicationFactor(_) => ErrorCode::InvalidConfig,
        Error::InvalidTopicName(_) => ErrorCode::InvalidTopicName,
        Error::InvalidGroupId => ErrorCode::InvalidGroupId,
        Error::InvalidSessionTimeout => ErrorCode::InvalidSessionTimeout,
        Error::TooManyGroups => ErrorCode::TooManyGroups,
        Error::GroupFull => ErrorCode::GroupFull,
        Error::UnknownGroup => ErrorCode::UnknownGroup,
        Error::UnknownMember => ErrorCode::UnknownMember,
        Error::GroupNotEmpty | Error::GroupSubscribedToTopic => ErrorCode::GroupNotEmpty,
        Error::StaleGeneration => ErrorCode::StaleGeneration,
        Error::NotAssigned => ErrorCode::NotAssigned,
        // Kafka's classic groups only; a native client meets the first when it joins a
        // group id a Kafka classic group holds.
        Error::InconsistentGroupProtocol(_) => ErrorCode::InvalidConfig,
        Error::RebalanceInProgress | Error::StaleMemberEpoch => ErrorCode::StaleGeneration,
        Error::MemberIdRequired => ErrorCode::UnknownMember,
        // Credentials are managed through the Kafka listener (KIP-554) until the native
        // protocol has requests for them.
        Error::UnsupportedSaslMechanism(_) | Error::UnacceptableCredential(_) | Error::DuplicateResource(_) => {
            ErrorCode::InvalidConfig
        }
        Error::ResourceNotFound(_) => ErrorCode::MalformedRequest,
        Error::Producer(crate::partition::producers::ProducerError::OutOfOrder { .. }) => ErrorCode::OutOfOrderSequence,
        Error::Producer(crate::partition::producers::ProducerError::Fenced { .. }) => ErrorCode::ProducerFenced,
    }
}

/// The code and message of an outcome (`None` and no message on success).
pub fn code_and_message(outcome: &Result<(), Error>) -> (ErrorCode, String) {
    match outcome {
        Ok(()) => (ErrorCode::None, String::new()),
        Err(error) => (code(error), error.to_string()),
    }
}

fn storage_code(error: &StorageError) -> ErrorCode {
    match error {
        StorageError::InvalidBatch(BatchError::TooLarge { .. }) => ErrorCode::BatchTooLarge,
        StorageError::InvalidBatch(_) => ErrorCode::InvalidBatch,
        StorageError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        StorageError::DiskFull { .. } => ErrorCode::DiskFull,
        StorageError::Closed { .. } => ErrorCode::NotReady,
        StorageError::StaleEpoch { .. } => ErrorCode::NotLeader,
        StorageError::OffsetMismatch { .. } => ErrorCode::Internal,
        StorageError::Io { .. } | StorageError::Failed { .. } | StorageError::Corrupt { .. } => {
            ErrorCode::StorageFailed
        }
    }
}

fn metadata_code(error: &MetadataError) -> ErrorCode {
    match error {
        MetadataError::InvalidName { .. } | MetadataError::TopicCollides { .. } => ErrorCode::InvalidTopicName,
        MetadataError::TopicExists(_) => ErrorCode::TopicExists,
        MetadataError::UnknownTopic(_) => ErrorCode::UnknownTopic,
        MetadataError::InvalidPartitions { .. } | MetadataError::PartitionsShrink { .. } => {
            ErrorCode::InvalidPartitions
        }
        MetadataError::InvalidConfig(_) => ErrorCode::InvalidConfig,
        MetadataError::StaleEpoch(_) => ErrorCode::StaleEpoch,
        MetadataError::Unavailable(_) => ErrorCode::NotReady,
        MetadataError::Io { .. } | MetadataError::Corrupt { .. } => ErrorCode::StorageFailed,
    }
}

fn capacity_code(error: &CapacityError) -> ErrorCode {
    match error {
        CapacityError::TopicPartitions { .. } | CapacityError::BrokerPartitions { .. } => ErrorCode::InvalidPartitions,
        CapacityError::Disk { .. } => ErrorCode::DiskFull,
        CapacityError::Descriptors { .. } => ErrorCode::ResourceLimit,
    }
}
