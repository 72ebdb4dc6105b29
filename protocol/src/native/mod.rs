//! Strand's native protocol: framing, messages and error codes. `protocol/SPEC.md` is
//! its byte-level specification.
//!
//! Decoding never panics and never allocates more than the frame holds: every length
//! and count is checked against the bytes present and against `Limits` first.

pub mod api;
pub mod codec;
mod error_code;
pub mod frame;
mod layout;
pub mod messages;

pub use api::{version_supported, ApiKey, DecodeError, Limits, API_VERSION_MAX};
use bytes::Bytes;
use codec::{Reader, Wire};
pub use error_code::ErrorCode;
pub use frame::{FrameHeader, HEADER_BYTES};
pub use layout::{PartitionRecords, ProduceLayout, TopicRecords};
use messages::*;

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
    InitProducerId => InitProducerIdRequest, InitProducerIdResponse;
    Authenticate => AuthenticateRequest, AuthenticateResponse;
    DescribeCluster => DescribeClusterRequest, DescribeClusterResponse;
    ReplicaFetch => ReplicaFetchRequest, ReplicaFetchResponse;
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
