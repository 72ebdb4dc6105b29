//! What every native message depends on: the api keys and versions served, the
//! decoding limits and the decoding errors.

use thiserror::Error;

/// The magic number of every native frame.
pub const MAGIC: u16 = 0x5354;
/// The frame format version this crate speaks.
pub const FRAME_VERSION: u8 = 1;

/// Bounds a decoder applies to what a peer sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame accepted, header included.
    pub frame_bytes_max: usize,
    /// Largest count of any array.
    pub array_count_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // Kafka's socket.request.max.bytes is 100 MiB.
        Limits { frame_bytes_max: 100 << 20, array_count_max: 100_000 }
    }
}

/// Why bytes from a peer are not a valid frame or message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("bad magic {found:#06x}, expected {:#06x}", MAGIC)]
    BadMagic { found: u16 },
    #[error("frame version {found} is not supported (this side speaks {})", FRAME_VERSION)]
    UnsupportedFrameVersion { found: u8 },
    #[error("frame length {length} is shorter than its own header")]
    FrameTooShort { length: u32 },
    #[error("frame of {bytes} bytes exceeds the limit of {max}")]
    FrameTooLarge { bytes: usize, max: usize },
    #[error("unknown api key {key}")]
    UnknownApi { key: u16 },
    #[error("api key {key} has no version {version}")]
    UnsupportedVersion { key: u16, version: u16 },
    #[error("{field} needs {needed} bytes, {available} left in the frame")]
    Truncated { field: &'static str, needed: usize, available: usize },
    #[error("array of {count} elements exceeds the limit of {max}")]
    CountTooLarge { count: usize, max: usize },
    #[error("a string is not UTF-8")]
    BadUtf8,
    #[error("{bytes} bytes left after the message")]
    TrailingBytes { bytes: usize },
    #[error("flags {flags:#04x}: a request has every flag bit 0")]
    RequestFlags { flags: u8 },
}

/// The requests, by api key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKey {
    ApiVersions = 0,
    Metadata = 1,
    CreateTopics = 2,
    DeleteTopics = 3,
    Produce = 4,
    Fetch = 5,
    ListOffsets = 6,
    JoinGroup = 7,
    Heartbeat = 8,
    LeaveGroup = 9,
    OffsetCommit = 10,
    OffsetFetch = 11,
    ListGroups = 12,
    DescribeGroup = 13,
    AlterTopicConfigs = 14,
    DescribeTopicConfigs = 15,
    CreatePartitions = 16,
    InitProducerId = 17,
    Authenticate = 18,
    DescribeCluster = 19,
    ReplicaFetch = 20,
}

impl ApiKey {
    /// Every api, in key order.
    pub const ALL: [ApiKey; 21] = [
        ApiKey::ApiVersions,
        ApiKey::Metadata,
        ApiKey::CreateTopics,
        ApiKey::DeleteTopics,
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::ListOffsets,
        ApiKey::JoinGroup,
        ApiKey::Heartbeat,
        ApiKey::LeaveGroup,
        ApiKey::OffsetCommit,
        ApiKey::OffsetFetch,
        ApiKey::ListGroups,
        ApiKey::DescribeGroup,
        ApiKey::AlterTopicConfigs,
        ApiKey::DescribeTopicConfigs,
        ApiKey::CreatePartitions,
        ApiKey::InitProducerId,
        ApiKey::Authenticate,
        ApiKey::DescribeCluster,
        ApiKey::ReplicaFetch,
    ];

    /// The api with this key.
    pub fn from_key(key: u16) -> Result<ApiKey, DecodeError> {
        ApiKey::ALL.get(key as usize).copied().ok_or(DecodeError::UnknownApi { key })
    }
}

/// Highest version of each request this crate speaks (all start at 0).
pub const API_VERSION_MAX: u16 = 0;

/// Whether this crate speaks `version` of the requests.
#[allow(clippy::absurd_extreme_comparisons)] // true for 0 only, until a version 1 exists
pub fn version_supported(version: u16) -> bool {
    version <= API_VERSION_MAX
}
