//! Kafka RecordBatch v2 (magic 2): the one batch format Strand speaks and stores.
//!
//! Layout (big-endian, as Kafka defines it):
//!
//! ```text
//! offset  size  field
//!      0     8  base_offset            stamped by the broker, not covered by the CRC
//!      8     4  batch_length           bytes after this field
//!     12     4  partition_leader_epoch not covered by the CRC
//!     16     1  magic                  = 2
//!     17     4  crc                    CRC-32C of bytes 21..end
//!     21     2  attributes             compression (bits 0-2), timestamp type (bit 3), ...
//!     23     4  last_offset_delta
//!     27     8  base_timestamp
//!     35     8  max_timestamp
//!     43     8  producer_id
//!     51     2  producer_epoch
//!     53     4  base_sequence
//!     57     4  record_count
//!     61     -  records
//! ```
//!
//! The broker validates a batch once, on the way in, and then only stamps the base
//! offset into it: records are never re-encoded. Log-append time also rewrites the
//! attributes and max timestamp, which the CRC covers, so that path recomputes the CRC
//! as Kafka does (one CRC-32C pass, still no re-encoding).

pub use crate::compression::Compression;
use crate::compression::{self, CompressionError};
use crate::encoding::{walk_record, RecordError};
use thiserror::Error;

/// Bytes before `batch_length` counts: base offset (8) and the length itself (4).
pub const LOG_OVERHEAD: usize = 12;
/// Bytes of the fixed header, up to the first record.
pub const HEADER_BYTES: usize = 61;
/// The only magic byte Strand accepts.
pub const MAGIC: u8 = 2;
/// Smallest legal `batch_length`: a header with no records.
pub const BATCH_LENGTH_MIN: u32 = (HEADER_BYTES - LOG_OVERHEAD) as u32;

pub(crate) const OFFSET_BATCH_LENGTH: usize = 8;
pub(crate) const OFFSET_LEADER_EPOCH: usize = 12;
pub(crate) const OFFSET_MAGIC: usize = 16;
pub(crate) const OFFSET_CRC: usize = 17;
pub(crate) const OFFSET_ATTRIBUTES: usize = 21;
pub(crate) const OFFSET_LAST_OFFSET_DELTA: usize = 23;
pub(crate) const OFFSET_BASE_TIMESTAMP: usize = 27;
pub(crate) const OFFSET_MAX_TIMESTAMP: usize = 35;
pub(crate) const OFFSET_PRODUCER_ID: usize = 43;
pub(crate) const OFFSET_PRODUCER_EPOCH: usize = 51;
pub(crate) const OFFSET_BASE_SEQUENCE: usize = 53;
pub(crate) const OFFSET_RECORD_COUNT: usize = 57;

pub(crate) const ATTRIBUTE_COMPRESSION_MASK: u16 = 0x07;
pub(crate) const ATTRIBUTE_TIMESTAMP_TYPE: u16 = 0x08;
pub(crate) const ATTRIBUTE_TRANSACTIONAL: u16 = 0x10;
pub(crate) const ATTRIBUTE_CONTROL: u16 = 0x20;

/// Why a batch was refused. Every variant names the field that was wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BatchError {
    #[error("batch truncated: {needed} bytes needed, {available} available")]
    Truncated { needed: usize, available: usize },
    #[error("batch_length {batch_length} is below the minimum header length {BATCH_LENGTH_MIN}")]
    LengthTooSmall { batch_length: u32 },
    #[error("batch of {bytes} bytes exceeds the limit of {max} bytes")]
    TooLarge { bytes: usize, max: usize },
    #[error("magic byte is {magic}, only magic 2 (RecordBatch v2) is supported")]
    BadMagic { magic: u8 },
    #[error("CRC-32C mismatch: batch says {stored:#010x}, bytes give {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("record_count {record_count} disagrees with last_offset_delta {last_offset_delta}")]
    RecordCountMismatch { record_count: i32, last_offset_delta: i32 },
    #[error("batch holds no records")]
    Empty,
    #[error("unknown compression codec {codec}")]
    UnknownCompression { codec: u8 },
    #[error("record {index}: {source}")]
    BadRecord { index: u32, source: RecordError },
    #[error("records end at byte {records_end} but the batch is {batch_bytes} bytes long")]
    TrailingBytes { records_end: usize, batch_bytes: usize },
    #[error("compressed records: {0}")]
    Decompression(#[from] CompressionError),
    #[error("{what} batches are not supported: this broker has no transactions yet")]
    Unsupported { what: &'static str },
}

/// Which clock a batch's timestamps come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// Bounds applied while validating a batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Largest batch accepted, header included (Kafka's `max.message.bytes`).
    pub batch_bytes_max: usize,
    /// Largest size a compressed batch's records may decompress to. A batch that
    /// expands past it is refused after at most this many bytes of output.
    pub records_bytes_max: usize,
}

/// How many times `batch_bytes_max` the records of a compressed batch may take by
/// default once decompressed: well above what real data compresses by (2 to 10 times
/// for logs and JSON), far below what a decompression bomb reaches.
pub const DECOMPRESSION_RATIO_MAX_DEFAULT: usize = 32;

impl BatchLimits {
    /// Limits for a batch of at most `batch_bytes_max` bytes whose records may expand
    /// `ratio_max` times that.
    pub fn new(batch_bytes_max: usize, ratio_max: usize) -> BatchLimits {
        BatchLimits { batch_bytes_max, records_bytes_max: batch_bytes_max.saturating_mul(ratio_max) }
    }

    /// No size bound: for batches the broker validated once already (stored ones).
    pub fn stored() -> BatchLimits {
        BatchLimits { batch_bytes_max: usize::MAX, records_bytes_max: usize::MAX }
    }
}

impl Default for BatchLimits {
    fn default() -> Self {
        // Kafka's default max.message.bytes (1 MiB plus the batch overhead).
        BatchLimits::new(1_048_588, DECOMPRESSION_RATIO_MAX_DEFAULT)
    }
}

/// The fixed header of one batch, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: u32,
    pub partition_leader_epoch: i32,
    pub magic: u8,
    pub crc: u32,
    pub attributes: u16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Decodes the header at the start of `buf`, checking only what the header alone can
    /// tell: enough bytes for the header, magic 2 and a sane `batch_length`. It does not
    /// require the whole batch to be present (see [`BatchHeader::total_bytes`]).
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < HEADER_BYTES {
            return Err(BatchError::Truncated { needed: HEADER_BYTES, available: buf.len() });
        }
        let header = BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length: be_u32(buf, OFFSET_BATCH_LENGTH),
            partition_leader_epoch: be_i32(buf, OFFSET_LEADER_EPOCH),
            magic: buf[OFFSET_MAGIC],
            crc: be_u32(buf, OFFSET_CRC),
            attributes: be_u16(buf, OFFSET_ATTRIBUTES),
            last_offset_delta: be_i32(buf, OFFSET_LAST_OFFSET_DELTA),
            base_timestamp: be_i64(buf, OFFSET_BASE_TIMESTAMP),
            max_timestamp: be_i64(buf, OFFSET_MAX_TIMESTAMP),
            producer_id: be_i64(buf, OFFSET_PRODUCER_ID),
            producer_epoch: be_i16(buf, OFFSET_PRODUCER_EPOCH),
            base_sequence: be_i32(buf, OFFSET_BASE_SEQUENCE),
            record_count: be_i32(buf, OFFSET_RECORD_COUNT),
        };
        if header.magic != MAGIC {
            return Err(BatchError::BadMagic { magic: header.magic });
        }
        if header.batch_length < BATCH_LENGTH_MIN {
            return Err(BatchError::LengthTooSmall { batch_length: header.batch_length });
        }
        Ok(header)
    }

    /// Bytes the whole batch takes, from its base offset to its last record.
    pub fn total_bytes(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    /// Offset of the last record: base offset plus last offset delta.
    pub fn last_offset(&self) -> i64 {
        // Wrapping: a header read from the wire or disk may hold any value.
        self.base_offset.wrapping_add(i64::from(self.last_offset_delta))
    }

    /// The offset after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().wrapping_add(1)
    }

    /// The compression codec, or an error for codec numbers Kafka does not define.
    pub fn compression(&self) -> Result<Compression, BatchError> {
        match (self.attributes & ATTRIBUTE_COMPRESSION_MASK) as u8 {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            codec => Err(BatchError::UnknownCompression { codec }),
        }
    }

    /// Whether record timestamps are the producer's or the broker's.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & ATTRIBUTE_TIMESTAMP_TYPE != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Whether the batch belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTRIBUTE_TRANSACTIONAL != 0
    }

    /// Whether the batch is a control batch (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & ATTRIBUTE_CONTROL != 0
    }
}

/// Validates one complete batch at the start of `buf` and returns its header.
///
/// Checks, in order: header, size limit, that the whole batch is present, record count
/// against last offset delta, CRC-32C, and that the records (decompressed first for a
/// compressed batch, within `limits.records_bytes_max`) fill the batch exactly, number
/// `record_count` and carry offset deltas 0, 1, 2, … Bytes after the batch are
/// ignored; use [`batch_bytes`] to walk several batches.
pub fn validate(buf: &[u8], limits: BatchLimits) -> Result<BatchHeader, BatchError> {
    validate_with(buf, limits, &mut Vec::new())
}

/// [`validate`] with a caller's buffer for decompressed records, so a caller that
/// validates many compressed batches reuses one allocation.
pub fn validate_with(buf: &[u8], limits: BatchLimits, scratch: &mut Vec<u8>) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(buf)?;
    let total = header.total_bytes();
    if total > limits.batch_bytes_max {
        return Err(BatchError::TooLarge { bytes: total, max: limits.batch_bytes_max });
    }
    if buf.len() < total {
        return Err(BatchError::Truncated { needed: total, available: buf.len() });
    }
    if header.record_count <= 0 {
        return Err(BatchError::Empty);
    }
    if header.last_offset_delta < 0 || i64::from(header.last_offset_delta) + 1 != i64::from(header.record_count) {
        return Err(BatchError::RecordCountMismatch {
            record_count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    let computed = crc32c::crc32c(&buf[OFFSET_ATTRIBUTES..total]);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch { stored: header.crc, computed });
    }
    match header.compression()? {
        Compression::None => validate_records(&buf[..total], HEADER_BYTES, &header)?,
        codec => {
            let result = decompress_records(codec, &buf[HEADER_BYTES..total], limits.records_bytes_max, scratch)
                .and_then(|()| validate_records(scratch, 0, &header));
            // Bound what a reused buffer keeps between batches.
            if scratch.capacity() > SCRATCH_BYTES_KEPT {
                *scratch = Vec::new();
            }
            result?;
        }
    }
    Ok(header)
}

/// Largest decompression buffer `validate_with` leaves with its caller.
const SCRATCH_BYTES_KEPT: usize = 4 << 20;

/// Decompresses a compressed batch's records (everything after the header) into
/// `out`, within `max` bytes.
pub fn decompress_records(codec: Compression, records: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), BatchError> {
    Ok(compression::decompress_into(codec, records, max, out)?)
}

/// Walks `header.record_count` records in `records` from `pos`, which must end
/// exactly at the end of `records`.
pub(crate) fn validate_records(records: &[u8], mut pos: usize, header: &BatchHeader) -> Result<(), BatchError> {
    for index in 0..header.record_count as u32 {
        let view = walk_record(records, &mut pos).map_err(|source| BatchError::BadRecord { index, source })?;
        if view.offset_delta != index as i32 {
            return Err(BatchError::BadRecord {
                index,
                source: RecordError::OffsetDelta { expected: index as i32, found: view.offset_delta },
            });
        }
    }
    if pos != records.len() {
        return Err(BatchError::TrailingBytes { records_end: pos, batch_bytes: records.len() });
    }
    Ok(())
}

/// Length of the batch at the start of `buf` from its header alone, or `None` if the
/// header is incomplete or invalid. Used to split a buffer holding several batches.
pub fn batch_bytes(buf: &[u8]) -> Option<usize> {
    BatchHeader::parse(buf).ok().map(|header| header.total_bytes())
}

/// Writes `base_offset` into the batch header. Not covered by the CRC.
pub fn stamp_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Writes the partition leader epoch into the batch header. Not covered by the CRC.
pub fn stamp_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[OFFSET_LEADER_EPOCH..OFFSET_LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Marks the batch as log-append time with `now_ms` as its max timestamp, and
/// recomputes the CRC, which covers both fields. Kafka does the same.
pub fn stamp_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attributes = be_u16(batch, OFFSET_ATTRIBUTES) | ATTRIBUTE_TIMESTAMP_TYPE;
    batch[OFFSET_ATTRIBUTES..OFFSET_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[OFFSET_MAX_TIMESTAMP..OFFSET_MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
    let total = LOG_OVERHEAD + be_u32(batch, OFFSET_BATCH_LENGTH) as usize;
    let crc = crc32c::crc32c(&batch[OFFSET_ATTRIBUTES..total]);
    batch[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Writes an idempotent producer's id, epoch and first sequence into the batch header
/// and recomputes the CRC, which covers them (a producer numbering a batch again after
/// its epoch was bumped).
pub fn stamp_producer(batch: &mut [u8], producer_id: i64, producer_epoch: i16, base_sequence: i32) {
    batch[OFFSET_PRODUCER_ID..OFFSET_PRODUCER_ID + 8].copy_from_slice(&producer_id.to_be_bytes());
    batch[OFFSET_PRODUCER_EPOCH..OFFSET_PRODUCER_EPOCH + 2].copy_from_slice(&producer_epoch.to_be_bytes());
    batch[OFFSET_BASE_SEQUENCE..OFFSET_BASE_SEQUENCE + 4].copy_from_slice(&base_sequence.to_be_bytes());
    let total = LOG_OVERHEAD + be_u32(batch, OFFSET_BATCH_LENGTH) as usize;
    let crc = crc32c::crc32c(&batch[OFFSET_ATTRIBUTES..total]);
    batch[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Writes a complete header in front of `records` (already encoded). Used by the
/// builder; exposed so tests can forge batches with chosen fields.
pub(crate) fn write_header(out: &mut [u8], header: &BatchHeader) {
    out[0..8].copy_from_slice(&header.base_offset.to_be_bytes());
    out[OFFSET_BATCH_LENGTH..OFFSET_BATCH_LENGTH + 4].copy_from_slice(&header.batch_length.to_be_bytes());
    out[OFFSET_LEADER_EPOCH..OFFSET_LEADER_EPOCH + 4].copy_from_slice(&header.partition_leader_epoch.to_be_bytes());
    out[OFFSET_MAGIC] = header.magic;
    out[OFFSET_ATTRIBUTES..OFFSET_ATTRIBUTES + 2].copy_from_slice(&header.attributes.to_be_bytes());
    out[OFFSET_LAST_OFFSET_DELTA..OFFSET_LAST_OFFSET_DELTA + 4]
        .copy_from_slice(&header.last_offset_delta.to_be_bytes());
    out[OFFSET_BASE_TIMESTAMP..OFFSET_BASE_TIMESTAMP + 8].copy_from_slice(&header.base_timestamp.to_be_bytes());
    out[OFFSET_MAX_TIMESTAMP..OFFSET_MAX_TIMESTAMP + 8].copy_from_slice(&header.max_timestamp.to_be_bytes());
    out[OFFSET_PRODUCER_ID..OFFSET_PRODUCER_ID + 8].copy_from_slice(&header.producer_id.to_be_bytes());
    out[OFFSET_PRODUCER_EPOCH..OFFSET_PRODUCER_EPOCH + 2].copy_from_slice(&header.producer_epoch.to_be_bytes());
    out[OFFSET_BASE_SEQUENCE..OFFSET_BASE_SEQUENCE + 4].copy_from_slice(&header.base_sequence.to_be_bytes());
    out[OFFSET_RECORD_COUNT..OFFSET_RECORD_COUNT + 4].copy_from_slice(&header.record_count.to_be_bytes());
    let total = LOG_OVERHEAD + header.batch_length as usize;
    let crc = crc32c::crc32c(&out[OFFSET_ATTRIBUTES..total]);
    out[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

pub(crate) fn be_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}
pub(crate) fn be_i16(buf: &[u8], at: usize) -> i16 {
    be_u16(buf, at) as i16
}
pub(crate) fn be_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}
pub(crate) fn be_i32(buf: &[u8], at: usize) -> i32 {
    be_u32(buf, at) as i32
}
pub(crate) fn be_i64(buf: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(buf[at..at + 8].try_into().expect("8 bytes"))
}
