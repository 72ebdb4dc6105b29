//! Kafka request frames: the header read and checked before anything is decoded, and
//! bodies decoded with the `kafka-protocol` crate, whose vendored copy
//! (`vendor/kafka-protocol/STRAND-PATCH.md`) never allocates from a count on the wire
//! that the frame cannot hold.
//!
//! A frame on the wire is a 4-byte big-endian size and that many bytes; `split_size`
//! reads the size, `RequestFrame::parse` the rest. The header is api key, api version
//! and correlation id (8 bytes, read by hand so a short frame is an error, not a
//! panic), then a client id and, for flexible versions, tagged fields.

use super::wire::{Reader, WireError};
use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Decodable;

/// Why a request frame could not be read. Every variant closes the connection or is
/// answered with an error, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("a frame of {bytes} bytes is over the limit of {limit}")]
    FrameTooLarge { bytes: u64, limit: u64 },
    #[error("a frame size of {0} is negative")]
    NegativeSize(i32),
    #[error("the request header is truncated")]
    Truncated,
    #[error("unknown api key {0}")]
    UnknownApi(i16),
    #[error("{api:?} version {version} is not supported (versions {min} to {max})")]
    UnsupportedVersion { api: ApiKey, version: i16, min: i16, max: i16 },
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed { api: ApiKey, version: i16, reason: String },
}

/// The size a frame's first four bytes announce (`None` until they have arrived),
/// checked against `frame_bytes_max` before a byte of the frame is buffered.
pub fn split_size(buf: &[u8], frame_bytes_max: u64) -> Result<Option<usize>, CodecError> {
    let Some(size) = buf.get(..4) else { return Ok(None) };
    let size = i32::from_be_bytes(size.try_into().expect("four bytes"));
    if size < 0 {
        return Err(CodecError::NegativeSize(size));
    }
    if size as u64 > frame_bytes_max {
        return Err(CodecError::FrameTooLarge { bytes: size as u64, limit: frame_bytes_max });
    }
    Ok(Some(size as usize))
}

/// A request's header, read by hand from the front of a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub api_key: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    /// The header's size: the body starts here.
    pub bytes: usize,
}

/// The first 8 bytes of a request: what an answer to it needs even when the rest
/// cannot be read.
pub fn peek(frame: &[u8]) -> Option<(i16, i16, i32)> {
    let head = frame.get(..8)?;
    Some((
        i16::from_be_bytes([head[0], head[1]]),
        i16::from_be_bytes([head[2], head[3]]),
        i32::from_be_bytes([head[4], head[5], head[6], head[7]]),
    ))
}

impl Header {
    /// Reads the header at the front of `frame` (the bytes after the size). An api
    /// key the crate does not know, or a version outside the crate's range for it, is
    /// refused here; which versions a listener serves is the listener's own narrower
    /// check.
    pub fn parse(frame: &[u8]) -> Result<Header, CodecError> {
        let (key, version, correlation_id) = peek(frame).ok_or(CodecError::Truncated)?;
        let api_key = ApiKey::try_from(key).map_err(|_| CodecError::UnknownApi(key))?;
        let range = api_key.valid_versions();
        if version < range.min || version > range.max {
            return Err(CodecError::UnsupportedVersion { api: api_key, version, min: range.min, max: range.max });
        }
        let malformed =
            |error: WireError| CodecError::Malformed { api: api_key, version, reason: format!("header: {error}") };
        let mut reader = Reader::new(&frame[8..]);
        // Header v1 and v2 carry a client id (an `i16`-length string even in v2);
        // v2 adds tagged fields. Every version the crate knows is v1 or later.
        let client_id = reader.string(false, "client id").map_err(malformed)?.map(str::to_owned);
        if api_key.request_header_version(version) >= 2 {
            reader.skip_tagged_fields("header tagged fields").map_err(malformed)?;
        }
        Ok(Header { api_key, version, correlation_id, client_id, bytes: 8 + reader.position() })
    }
}

/// One request: its header, and its body still encoded.
#[derive(Debug)]
pub struct RequestFrame {
    pub api_key: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    /// The bytes after the header (slices of the frame, not copies).
    pub body: Bytes,
}

impl RequestFrame {
    /// Reads the header of `frame` (the bytes after the size), as `Header::parse`.
    pub fn parse(frame: Bytes) -> Result<RequestFrame, CodecError> {
        let header = Header::parse(&frame)?;
        Ok(RequestFrame {
            api_key: header.api_key,
            version: header.version,
            correlation_id: header.correlation_id,
            client_id: header.client_id,
            body: frame.slice(header.bytes..),
        })
    }

    /// Decodes the body as `R` (whose api key the caller has matched). The body is a
    /// cheap clone: strings and byte fields in `R` are slices of the frame. Bytes
    /// after the request are ignored, as Kafka's own broker ignores them.
    pub fn decode<R: Decodable>(&self) -> Result<R, CodecError> {
        let mut body = self.body.clone();
        R::decode(&mut body, self.version).map_err(|error| CodecError::Malformed {
            api: self.api_key,
            version: self.version,
            reason: error.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::MetadataRequest;

    fn frame(key: i16, version: i16, rest: &[u8]) -> Bytes {
        let mut out = Vec::new();
        out.extend_from_slice(&key.to_be_bytes());
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(&7i32.to_be_bytes());
        out.extend_from_slice(rest);
        Bytes::from(out)
    }

    #[test]
    fn sizes_are_checked_before_the_frame_is_buffered() {
        assert_eq!(split_size(&[0, 0], 100), Ok(None));
        assert_eq!(split_size(&[0, 0, 0, 100], 100), Ok(Some(100)));
        assert_eq!(split_size(&[0, 0, 0, 101], 100), Err(CodecError::FrameTooLarge { bytes: 101, limit: 100 }));
        assert_eq!(split_size(&[0xff, 0xff, 0xff, 0xff], 100), Err(CodecError::NegativeSize(-1)));
    }

    #[test]
    fn headers_are_read_without_panicking_on_short_or_unknown_frames() {
        assert_eq!(RequestFrame::parse(Bytes::from_static(&[0, 3, 0])).unwrap_err(), CodecError::Truncated);
        assert_eq!(RequestFrame::parse(frame(12345, 0, &[])).unwrap_err(), CodecError::UnknownApi(12345));
        assert!(matches!(
            RequestFrame::parse(frame(3, 99, &[0xff, 0xff])).unwrap_err(),
            CodecError::UnsupportedVersion { version: 99, .. }
        ));
        // Metadata v1 (header v1): a client id of 3 bytes, then a null topic array.
        let request = RequestFrame::parse(frame(3, 1, &[0, 3, b'c', b'l', b'i', 0xff, 0xff, 0xff, 0xff])).unwrap();
        assert_eq!((request.api_key, request.version, request.correlation_id), (ApiKey::Metadata, 1, 7));
        assert_eq!(request.client_id.as_deref(), Some("cli"));
        let metadata: MetadataRequest = request.decode().unwrap();
        assert!(metadata.topics.is_none());
        // Header v2 (Metadata v9+): the client id, then tagged fields.
        let request = RequestFrame::parse(frame(3, 9, &[0, 1, b'c', 1, 0, 1, 5, 0x01, 0x01, 0x00])).unwrap();
        assert_eq!(request.client_id.as_deref(), Some("c"));
        assert_eq!(&request.body[..], &[0x01, 0x01, 0x00]);
        // A tagged field longer than the frame.
        assert!(matches!(
            RequestFrame::parse(frame(3, 9, &[0xff, 0xff, 1, 0, 100])).unwrap_err(),
            CodecError::Malformed { .. }
        ));
        // A client id longer than the frame.
        assert!(matches!(
            RequestFrame::parse(frame(3, 1, &[0x7f, 0xff, b'c'])).unwrap_err(),
            CodecError::Malformed { .. }
        ));
    }

    #[test]
    fn an_array_count_beyond_the_frame_is_refused_before_allocating() {
        // Metadata v1 with a topic count of 2^31 - 1 and no topics behind it.
        let request = RequestFrame::parse(frame(3, 1, &[0xff, 0xff, 0x7f, 0xff, 0xff, 0xff])).unwrap();
        let error = request.decode::<MetadataRequest>().unwrap_err();
        assert!(error.to_string().contains("more than the 0 bytes left"), "{error}");
    }
}
