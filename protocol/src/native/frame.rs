//! The native frame: a fixed 16-byte little-endian header, read in place, then the
//! payload of one request or response.
//!
//! ```text
//! offset size field
//!      0    4 length          bytes after this field: 12 + payload length
//!      4    2 magic           0x5354 ("ST" in little-endian order: 0x54 0x53)
//!      6    1 version         frame format version, 1
//!      7    1 flags           bit 0: response; bit 1: error frame
//!      8    2 api_key         which request (see `ApiKey`)
//!     10    2 api_version     version of that request's layout
//!     12    4 correlation_id  chosen by the client, echoed in the response
//!     16    - payload
//! ```

use super::api::{DecodeError, Limits};
pub use super::api::{FRAME_VERSION, MAGIC};
use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Bytes of the frame header.
pub const HEADER_BYTES: usize = 16;
/// Flag bit: the frame is a response.
pub const FLAG_RESPONSE: u8 = 0x01;
/// Flag bit (with `FLAG_RESPONSE`): the payload is an error frame (`error: u16`,
/// `message: string`) instead of the api's response, for a request that could not
/// be decoded.
pub const FLAG_ERROR: u8 = 0x02;

/// The frame header as it lies on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct FrameHeader {
    pub length: U32,
    pub magic: U16,
    pub version: u8,
    pub flags: u8,
    pub api_key: U16,
    pub api_version: U16,
    pub correlation_id: U32,
}

impl FrameHeader {
    /// A header for a payload of `payload_bytes`.
    pub fn new(
        api_key: u16,
        api_version: u16,
        correlation_id: u32,
        response: bool,
        payload_bytes: usize,
    ) -> FrameHeader {
        FrameHeader {
            length: U32::new((HEADER_BYTES - 4 + payload_bytes) as u32),
            magic: U16::new(MAGIC),
            version: FRAME_VERSION,
            flags: if response { FLAG_RESPONSE } else { 0 },
            api_key: U16::new(api_key),
            api_version: U16::new(api_version),
            correlation_id: U32::new(correlation_id),
        }
    }

    /// Reads the header at the start of `buf` in place and checks it: magic, version,
    /// and a length within `limits.frame_bytes_max`. `Ok(None)` when fewer than
    /// `HEADER_BYTES` bytes have arrived.
    pub fn parse<'a>(buf: &'a [u8], limits: &Limits) -> Result<Option<&'a FrameHeader>, DecodeError> {
        let Ok((header, _)) = FrameHeader::ref_from_prefix(buf) else { return Ok(None) };
        if header.magic.get() != MAGIC {
            return Err(DecodeError::BadMagic { found: header.magic.get() });
        }
        if header.version != FRAME_VERSION {
            return Err(DecodeError::UnsupportedFrameVersion { found: header.version });
        }
        let frame = header.frame_bytes();
        if frame < HEADER_BYTES {
            return Err(DecodeError::FrameTooShort { length: header.length.get() });
        }
        if frame > limits.frame_bytes_max {
            return Err(DecodeError::FrameTooLarge { bytes: frame, max: limits.frame_bytes_max });
        }
        Ok(Some(header))
    }

    /// Bytes of the whole frame, header included.
    pub fn frame_bytes(&self) -> usize {
        4 + self.length.get() as usize
    }

    /// Bytes of the payload.
    pub fn payload_bytes(&self) -> usize {
        self.frame_bytes() - HEADER_BYTES
    }

    /// Whether the frame is a response.
    pub fn is_response(&self) -> bool {
        self.flags & FLAG_RESPONSE != 0
    }

    /// Whether the frame is an error frame (a response whose payload is `ErrorFrame`).
    pub fn is_error(&self) -> bool {
        self.flags & FLAG_ERROR != 0
    }
}
