//! Strand's native protocol: framing, messages and error codes. `protocol/SPEC.md` is
//! its byte-level specification.
//!
//! Decoding never panics and never allocates more than the frame holds: every length
//! and count is checked against the bytes present and against `Limits` first.

pub mod codec;
mod error_code;
pub mod frame;
mod layout;
pub mod messages;

use bytes::Bytes;
use codec::{Reader, Wire};
pub use error_code::ErrorCode;
pub use frame::{FrameHeader, HEADER_BYTES};
pub use layout::{PartitionRecords, ProduceLayout, TopicRecords};
use messages::*;
use thiserror::Error;

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
    #[error("bad magic {found:#06x}, expected {:#06x}", frame::MAGIC)]
    BadMagic { found: u16 },
    #[error("frame version {found} is not supported (this side speaks {})", frame::FRAME_VERSION)]
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
}

impl ApiKey {
    /// Every api, in key order.
    pub const ALL: [ApiKey; 17] = [
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

macro_rules! messages {
    ($($api:ident => $request:ident, $response:ident;)*) => {
        /// A request, decoded.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Request { $($api($request)),* }

        /// A response, decoded.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Response { $($api($response)),* }

        impl Request {
            /// The request's api key.
            pub fn api_key(&self) -> ApiKey {
                match self { $(Request::$api(_) => ApiKey::$api),* }
            }
            fn encode_payload(&self, out: &mut Vec<u8>) {
                match self { $(Request::$api(message) => message.encode(out)),* }
            }
            fn decode_payload(api: ApiKey, reader: &mut Reader<'_>) -> Result<Request, DecodeError> {
                Ok(match api { $(ApiKey::$api => Request::$api($request::decode(reader)?)),* })
            }
        }

        impl Response {
            /// The response's api key.
            pub fn api_key(&self) -> ApiKey {
                match self { $(Response::$api(_) => ApiKey::$api),* }
            }
            fn encode_payload(&self, out: &mut Vec<u8>) {
                match self { $(Response::$api(message) => message.encode(out)),* }
            }
            fn decode_payload(api: ApiKey, reader: &mut Reader<'_>) -> Result<Response, DecodeError> {
                Ok(match api { $(ApiKey::$api => Response::$api($response::decode(reader)?)),* })
            }
        }
    };
}

messages! {
    ApiVersions => ApiVersionsRequest, ApiVersionsResponse;
    Metadata => MetadataRequest, MetadataResponse;
    CreateTopics => CreateTopicsRequest, CreateTopicsResponse;
    DeleteTopics => DeleteTopicsRequest, DeleteTopicsResponse;
    Produce => ProduceRequest, ProduceResponse;
    Fetch => FetchRequest, FetchResponse;
    ListOffsets => ListOffsetsRequest, ListOffsetsResponse;
    JoinGroup => JoinGroupRequest, JoinGroupResponse;
    Heartbeat => HeartbeatRequest, HeartbeatResponse;
    LeaveGroup => LeaveGroupRequest, LeaveGroupResponse;
    OffsetCommit => OffsetCommitRequest, OffsetCommitResponse;
    OffsetFetch => OffsetFetchRequest, OffsetFetchResponse;
    ListGroups => ListGroupsRequest, ListGroupsResponse;
    DescribeGroup => DescribeGroupRequest, DescribeGroupResponse;
    AlterTopicConfigs => AlterTopicConfigsRequest, AlterTopicConfigsResponse;
    DescribeTopicConfigs => DescribeTopicConfigsRequest, DescribeTopicConfigsResponse;
    CreatePartitions => CreatePartitionsRequest, CreatePartitionsResponse;
}

/// Encodes a whole frame (header and payload) into `out`.
fn encode_frame(
    out: &mut Vec<u8>,
    api: ApiKey,
    correlation_id: u32,
    response: bool,
    payload: impl FnOnce(&mut Vec<u8>),
) {
    let start = out.len();
    out.resize(start + HEADER_BYTES, 0);
    payload(out);
    let header =
        FrameHeader::new(api as u16, API_VERSION_MAX, correlation_id, response, out.len() - start - HEADER_BYTES);
    out[start..start + HEADER_BYTES].copy_from_slice(zerocopy::IntoBytes::as_bytes(&header));
}

impl Request {
    /// Appends this request as one frame to `out`.
    pub fn encode(&self, correlation_id: u32, out: &mut Vec<u8>) {
        encode_frame(out, self.api_key(), correlation_id, false, |out| self.encode_payload(out));
    }

    /// Decodes the payload of a request frame whose header was checked.
    pub fn decode(header: &FrameHeader, payload: &Bytes, limits: &Limits) -> Result<Request, DecodeError> {
        decode_message(header, payload, limits, Request::decode_payload)
    }
}

impl Response {
    /// Appends this response as one frame to `out`.
    pub fn encode(&self, correlation_id: u32, out: &mut Vec<u8>) {
        encode_frame(out, self.api_key(), correlation_id, true, |out| self.encode_payload(out));
    }

    /// Decodes the payload of a response frame whose header was checked.
    pub fn decode(header: &FrameHeader, payload: &Bytes, limits: &Limits) -> Result<Response, DecodeError> {
        decode_message(header, payload, limits, Response::decode_payload)
    }
}

/// The payload of an error frame: a request that could not be decoded, answered
/// before the broker closes the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorFrame {
    pub error: ErrorCode,
    pub message: String,
}

impl ErrorFrame {
    /// Appends an error frame answering request `correlation_id` of api `api_key`.
    pub fn encode(&self, api_key: u16, correlation_id: u32, out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + HEADER_BYTES, 0);
        self.error.encode(out);
        self.message.encode(out);
        let mut header =
            FrameHeader::new(api_key, API_VERSION_MAX, correlation_id, true, out.len() - start - HEADER_BYTES);
        header.flags |= frame::FLAG_ERROR;
        out[start..start + HEADER_BYTES].copy_from_slice(zerocopy::IntoBytes::as_bytes(&header));
    }

    /// Decodes the payload of a frame whose header has the error flag.
    pub fn decode(payload: &Bytes, limits: &Limits) -> Result<ErrorFrame, DecodeError> {
        let mut reader = Reader::new(payload, limits);
        let error = ErrorCode::decode(&mut reader)?;
        let message = String::decode(&mut reader)?;
        reader.finish()?;
        Ok(ErrorFrame { error, message })
    }
}

/// Decodes a whole payload with `decode`, after checking the header's api and version.
fn decode_message<T>(
    header: &FrameHeader,
    payload: &Bytes,
    limits: &Limits,
    decode: fn(ApiKey, &mut Reader<'_>) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    let api = checked_api(header)?;
    let mut reader = Reader::new(payload, limits);
    let message = decode(api, &mut reader)?;
    reader.finish()?;
    Ok(message)
}

fn checked_api(header: &FrameHeader) -> Result<ApiKey, DecodeError> {
    let api = ApiKey::from_key(header.api_key.get())?;
    let version = header.api_version.get();
    if version > API_VERSION_MAX {
        return Err(DecodeError::UnsupportedVersion { key: api as u16, version });
    }
    Ok(api)
}

/// Splits one whole frame off the front of `buf` and keeps its payload owned and
/// mutable (a disjoint part of `buf`'s allocation, no copy). `Ok(None)` until the
/// whole frame has arrived.
pub fn split_frame_mut(
    buf: &mut bytes::BytesMut,
    limits: &Limits,
) -> Result<Option<(FrameHeader, bytes::BytesMut)>, DecodeError> {
    let Some(header) = FrameHeader::parse(buf, limits)? else { return Ok(None) };
    let header = *header;
    if buf.len() < header.frame_bytes() {
        return Ok(None);
    }
    let mut frame = buf.split_to(header.frame_bytes());
    Ok(Some((header, frame.split_off(HEADER_BYTES))))
}

/// Splits one whole frame off the front of `buf`: its header and its payload (a
/// slice of `buf`, no copy). `Ok(None)` until the whole frame has arrived.
pub fn split_frame(buf: &mut bytes::BytesMut, limits: &Limits) -> Result<Option<(FrameHeader, Bytes)>, DecodeError> {
    let Some(header) = FrameHeader::parse(buf, limits)? else { return Ok(None) };
    let header = *header;
    if buf.len() < header.frame_bytes() {
        return Ok(None);
    }
    let frame = buf.split_to(header.frame_bytes()).freeze();
    Ok(Some((header, frame.slice(HEADER_BYTES..))))
}

#[cfg(test)]
mod tests;
