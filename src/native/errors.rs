//! How storage and metadata errors appear on the wire.

use crate::metadata::MetadataError;
use crate::storage::StorageError;
use strand_protocol::native::ErrorCode;
use strand_protocol::BatchError;

/// The protocol error for a failed log operation.
pub fn storage_code(error: &StorageError) -> ErrorCode {
    match error {
        StorageError::InvalidBatch(BatchError::TooLarge { .. }) => ErrorCode::BatchTooLarge,
        StorageError::InvalidBatch(_) => ErrorCode::InvalidBatch,
        StorageError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        StorageError::DiskFull { .. } => ErrorCode::DiskFull,
        StorageError::Closed { .. } => ErrorCode::NotReady,
        StorageError::Io { .. } | StorageError::Failed { .. } | StorageError::Corrupt { .. } => {
            ErrorCode::StorageFailed
        }
    }
}

/// The protocol error for a refused metadata command.
pub fn metadata_code(error: &MetadataError) -> ErrorCode {
    match error {
        MetadataError::InvalidName { .. } | MetadataError::TopicCollides { .. } => ErrorCode::InvalidTopicName,
        MetadataError::TopicExists(_) => ErrorCode::TopicExists,
        MetadataError::UnknownTopic(_) => ErrorCode::UnknownTopic,
        MetadataError::InvalidPartitions { .. } | MetadataError::PartitionsShrink { .. } => {
            ErrorCode::InvalidPartitions
        }
        MetadataError::InvalidConfig(_) => ErrorCode::InvalidConfig,
        MetadataError::Io { .. } | MetadataError::Corrupt { .. } => ErrorCode::StorageFailed,
    }
}
