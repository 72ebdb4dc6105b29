//! Where the record batches of a Produce request lie in its payload, found without
//! copying or sharing them. A broker that owns the payload buffer can then split it
//! into one owned, mutable buffer per batch (to stamp offsets in place and keep it in
//! its cache) instead of copying every produced byte once more.
//!
//! The layout is the same as `ProduceRequest` (`messages.rs`) and is checked the same
//! way: every length and count against the bytes present and `Limits`.

use super::api::{ApiKey, DecodeError, Limits, API_VERSION_MAX};
use super::codec::Wire;
use super::frame::{FrameHeader, HEADER_BYTES};
use super::messages::ProduceRequest;
use bytes::Bytes;
use std::ops::Range;

/// The records of one partition: where they lie in the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRecords {
    pub partition: u32,
    pub records: Range<usize>,
}

/// The partitions of one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRecords {
    pub name: String,
    pub partitions: Vec<PartitionRecords>,
}

/// A Produce request with its record batches as ranges of the payload, in payload
/// order (so the ranges are increasing and disjoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceLayout {
    pub acks: u8,
    pub timeout_ms: u32,
    pub topics: Vec<TopicRecords>,
}

struct Cursor<'a> {
    payload: &'a [u8],
    pos: usize,
    limits: &'a Limits,
}

impl Cursor<'_> {
    fn take(&mut self, len: usize, field: &'static str) -> Result<Range<usize>, DecodeError> {
        let available = self.payload.len() - self.pos;
        if len > available {
            return Err(DecodeError::Truncated { field, needed: len, available });
        }
        self.pos += len;
        Ok(self.pos - len..self.pos)
    }
    fn bytes<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let range = self.take(N, field)?;
        Ok(self.payload[range].try_into().expect("exact size"))
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.bytes::<1>("u8")?[0])
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.bytes("u32")?))
    }
    fn string(&mut self) -> Result<String, DecodeError> {
        let len = u16::from_le_bytes(self.bytes("u16")?) as usize;
        let range = self.take(len, "string")?;
        std::str::from_utf8(&self.payload[range]).map(str::to_owned).map_err(|_| DecodeError::BadUtf8)
    }
    fn count(&mut self) -> Result<usize, DecodeError> {
        let count = self.u32()? as usize;
        if count > self.limits.array_count_max {
            return Err(DecodeError::CountTooLarge { count, max: self.limits.array_count_max });
        }
        let left = self.payload.len() - self.pos;
        if count > left {
            return Err(DecodeError::Truncated { field: "array", needed: count, available: left });
        }
        Ok(count)
    }
}

impl ProduceLayout {
    /// Reads the layout of a Produce request payload.
    pub fn decode(payload: &[u8], limits: &Limits) -> Result<ProduceLayout, DecodeError> {
        let mut cursor = Cursor { payload, pos: 0, limits };
        let acks = cursor.u8()?;
        let timeout_ms = cursor.u32()?;
        let topic_count = cursor.count()?;
        let mut topics = Vec::with_capacity(topic_count);
        for _ in 0..topic_count {
            let name = cursor.string()?;
            let partition_count = cursor.count()?;
            let mut partitions = Vec::with_capacity(partition_count);
            for _ in 0..partition_count {
                let partition = cursor.u32()?;
                let len = cursor.u32()? as usize;
                let records = cursor.take(len, "bytes")?;
                partitions.push(PartitionRecords { partition, records });
            }
            topics.push(TopicRecords { name, partitions });
        }
        let left = payload.len() - cursor.pos;
        if left > 0 {
            return Err(DecodeError::TrailingBytes { bytes: left });
        }
        Ok(ProduceLayout { acks, timeout_ms, topics })
    }
}

impl ProduceRequest {
    /// Encodes this request as one frame in pieces: encoded fields, and each
    /// partition's records as the `Bytes` they already are (no copy). Written back to
    /// back (`write_vectored`), the pieces are the frame `Request::encode` produces.
    pub fn encode_pieces(&self, correlation_id: u32) -> Vec<Bytes> {
        let mut pieces = Vec::with_capacity(2 + 2 * self.topics.len());
        let mut head = vec![0u8; HEADER_BYTES];
        let mut payload_bytes = 0;
        self.acks.encode(&mut head);
        self.timeout_ms.encode(&mut head);
        (self.topics.len() as u32).encode(&mut head);
        for topic in &self.topics {
            topic.name.encode(&mut head);
            (topic.partitions.len() as u32).encode(&mut head);
            for part in &topic.partitions {
                part.partition.encode(&mut head);
                (part.records.len() as u32).encode(&mut head);
                payload_bytes += head.len() + part.records.len();
                pieces.push(Bytes::from(std::mem::take(&mut head)));
                pieces.push(part.records.clone());
            }
        }
        if !head.is_empty() {
            payload_bytes += head.len();
            pieces.push(Bytes::from(head));
        }
        let header = FrameHeader::new(
            ApiKey::Produce as u16,
            API_VERSION_MAX,
            correlation_id,
            false,
            payload_bytes - HEADER_BYTES,
        );
        let mut first = pieces[0].to_vec();
        first[..HEADER_BYTES].copy_from_slice(zerocopy::IntoBytes::as_bytes(&header));
        pieces[0] = Bytes::from(first);
        pieces
    }
}
