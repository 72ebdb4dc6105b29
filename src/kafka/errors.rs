//! How the broker's errors appear to Kafka clients: each `service::Error` as the Kafka
//! error a client handles correctly (retriable where a retry can succeed, and making
//! the client refresh its metadata where the partition may have moved or reopened).

use crate::metadata::MetadataError;
use crate::partition::producers::ProducerError;
use crate::partition::OpenFailureCause;
use crate::service::Error;
use crate::shard::capacity::CapacityError;
use crate::storage::StorageError;
use kafka_protocol::ResponseError;
use strand_protocol::BatchError;

/// The Kafka error for `error`.
pub fn kafka_error(error: &Error) -> ResponseError {
    match error {
        Error::UnknownTopic | Error::UnknownPartition => ResponseError::UnknownTopicOrPartition,
        Error::TopicAuthorizationFailed => ResponseError::TopicAuthorizationFailed,
        Error::GroupAuthorizationFailed => ResponseError::GroupAuthorizationFailed,
        Error::ClusterAuthorizationFailed => ResponseError::ClusterAuthorizationFailed,
        Error::TransactionalIdAuthorizationFailed => ResponseError::TransactionalIdAuthorizationFailed,
        // Placed but not open (failed to open, or being deleted): the client refreshes
        // its metadata and retries.
        Error::NotReady => ResponseError::KafkaStorageError,
        Error::ShuttingDown | Error::NotLeader => ResponseError::NotLeaderOrFollower,
        Error::NotCoordinator => ResponseError::NotCoordinator,
        Error::FencedLeaderEpoch => ResponseError::FencedLeaderEpoch,
        Error::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
        Error::UnknownLeaderEpoch => ResponseError::UnknownLeaderEpoch,
        Error::Storage(error) => storage_error(error),
        Error::Metadata(error) => metadata_error(error),
        Error::Capacity(error) => capacity_error(error),
        Error::NotOpened { cause, .. } => match cause {
            OpenFailureCause::DiskFull | OpenFailureCause::Storage => ResponseError::KafkaStorageError,
            OpenFailureCause::Descriptors => ResponseError::UnknownServerError,
        },
        Error::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        Error::StorageFailed(_) => ResponseError::KafkaStorageError,
        Error::Timeout => ResponseError::RequestTimedOut,
        Error::InvalidAcks => ResponseError::InvalidRequiredAcks,
        Error::InvalidRequest(_) => ResponseError::InvalidRequest,
        Error::InvalidConfig(_) => ResponseError::InvalidConfig,
        Error::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        Error::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
        Error::InvalidTopicName(_) => ResponseError::InvalidTopicException,
        Error::InvalidGroupId => ResponseError::InvalidGroupId,
        Error::InvalidSessionTimeout => ResponseError::InvalidSessionTimeout,
        Error::TooManyGroups => ResponseError::UnknownServerError,
        Error::GroupFull => ResponseError::GroupMaxSizeReached,
        Error::UnknownGroup => ResponseError::GroupIdNotFound,
        Error::UnknownMember => ResponseError::UnknownMemberId,
        Error::GroupNotEmpty => ResponseError::NonEmptyGroup,
        Error::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic,
        Error::StaleGeneration | Error::NotAssigned => ResponseError::IllegalGeneration,
        Error::RebalanceInProgress => ResponseError::RebalanceInProgress,
        Error::StaleMemberEpoch => ResponseError::StaleMemberEpoch,
        Error::MemberIdRequired => ResponseError::MemberIdRequired,
        Error::InconsistentGroupProtocol(_) => ResponseError::InconsistentGroupProtocol,
        Error::UnsupportedSaslMechanism(_) => ResponseError::UnsupportedSaslMechanism,
        Error::UnacceptableCredential(_) => ResponseError::UnacceptableCredential,
        Error::ResourceNotFound(_) => ResponseError::ResourceNotFound,
        Error::DuplicateResource(_) => ResponseError::DuplicateResource,
        Error::Producer(ProducerError::OutOfOrder { .. }) => ResponseError::OutOfOrderSequenceNumber,
        Error::Producer(ProducerError::Fenced { .. }) => ResponseError::InvalidProducerEpoch,
    }
}

/// What a client is told of an error: its message, except where it names files and
/// directories of this host, which are not the client's business.
pub fn client_message(error: &Error) -> Option<String> {
    match error {
        Error::Storage(storage) if !matches!(**storage, StorageError::InvalidBatch(_)) => None,
        Error::Metadata(metadata) if matches!(**metadata, MetadataError::Io { .. } | MetadataError::Corrupt { .. }) => {
            None
        }
        Error::StorageFailed(_) | Error::NotOpened { .. } => None,
        other => Some(other.to_string()),
    }
}

/// The code of an outcome: 0 on success.
pub fn code_of<T>(outcome: &Result<T, Error>) -> i16 {
    outcome.as_ref().err().map_or(0, |error| kafka_error(error).code())
}

fn storage_error(error: &StorageError) -> ResponseError {
    match error {
        StorageError::InvalidBatch(BatchError::TooLarge { .. }) => ResponseError::MessageTooLarge,
        StorageError::InvalidBatch(BatchError::Unsupported { .. }) => ResponseError::UnsupportedForMessageFormat,
        StorageError::InvalidBatch(_) => ResponseError::CorruptMessage,
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        // Closed while being deleted or reopened: the client refreshes and retries.
        StorageError::Closed { .. } => ResponseError::NotLeaderOrFollower,
        // A deposed leader's append: the client finds the new one.
        StorageError::StaleEpoch { .. } => ResponseError::NotLeaderOrFollower,
        StorageError::OffsetMismatch { .. } => ResponseError::UnknownServerError,
        StorageError::DiskFull { .. }
        | StorageError::Io { .. }
        | StorageError::Failed { .. }
        | StorageError::Corrupt { .. } => ResponseError::KafkaStorageError,
    }
}

fn metadata_error(error: &MetadataError) -> ResponseError {
    match error {
        MetadataError::InvalidName { .. } | MetadataError::TopicCollides { .. } => ResponseError::InvalidTopicException,
        MetadataError::TopicExists(_) => ResponseError::TopicAlreadyExists,
        MetadataError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition,
        MetadataError::InvalidPartitions { .. } | MetadataError::PartitionsShrink { .. } => {
            ResponseError::InvalidPartitions
        }
        MetadataError::InvalidConfig(_) => ResponseError::InvalidConfig,
        MetadataError::StaleEpoch(_) => ResponseError::FencedLeaderEpoch,
        MetadataError::Unavailable(_) => ResponseError::NotController,
        MetadataError::Io { .. } | MetadataError::Corrupt { .. } => ResponseError::UnknownServerError,
    }
}

fn capacity_error(error: &CapacityError) -> ResponseError {
    match error {
        CapacityError::TopicPartitions { .. } | CapacityError::BrokerPartitions { .. } => {
            ResponseError::InvalidPartitions
        }
        CapacityError::Disk { .. } => ResponseError::KafkaStorageError,
        CapacityError::Descriptors { .. } => ResponseError::UnknownServerError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::Arc;

    fn storage(error: StorageError) -> Error {
        Error::Storage(Arc::new(error))
    }

    /// A client retries what may succeed later, and gives up at once on what cannot.
    #[test]
    fn retriable_errors_are_the_ones_a_retry_can_fix() {
        let retriable = [
            Error::UnknownTopic,
            Error::NotReady,
            Error::ShuttingDown,
            Error::Timeout,
            storage(StorageError::DiskFull { op: "write", path: PathBuf::from("x") }),
            storage(StorageError::Closed { dir: PathBuf::from("x") }),
        ];
        for error in retriable {
            assert!(kafka_error(&error).is_retriable(), "{error:?} → {:?}", kafka_error(&error));
        }
        let final_ = [
            Error::InvalidAcks,
            Error::InvalidConfig("x".into()),
            Error::InvalidTopicName("x".into()),
            storage(StorageError::InvalidBatch(BatchError::TooLarge { bytes: 2, max: 1 })),
            Error::OffsetOutOfRange { offset: 9, end: 1 },
        ];
        for error in final_ {
            assert!(!kafka_error(&error).is_retriable(), "{error:?} → {:?}", kafka_error(&error));
        }
    }

    #[test]
    fn invalid_batches_are_corrupt_messages_and_oversized_ones_too_large() {
        let crc = storage(StorageError::InvalidBatch(BatchError::CrcMismatch { stored: 1, computed: 2 }));
        assert_eq!(kafka_error(&crc), ResponseError::CorruptMessage);
        let large = storage(StorageError::InvalidBatch(BatchError::TooLarge { bytes: 2, max: 1 }));
        assert_eq!(kafka_error(&large), ResponseError::MessageTooLarge);
        assert_eq!(code_of::<()>(&Ok(())), 0);
        assert_eq!(code_of::<()>(&Err(Error::UnknownTopic)), 3);
    }
}
