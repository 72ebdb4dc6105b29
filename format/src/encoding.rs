//! One record's encoding inside a RecordBatch v2, walked without allocating: what
//! batch validation checks and `RecordIter` decodes. A leaf below `batch` and
//! `record`, so neither has to import the other to read a record.

use crate::varint::{read_varint, read_varlong, VarintError};
use thiserror::Error;

/// A record that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    #[error("bad varint: {0}")]
    Varint(#[from] VarintError),
    #[error("negative record length {0}")]
    NegativeLength(i32),
    #[error("a field runs past the end of its record")]
    Overrun,
    #[error("record length says {declared} bytes but its fields take {used}")]
    LengthMismatch { declared: usize, used: usize },
    #[error("offset delta {found}, expected {expected}")]
    OffsetDelta { expected: i32, found: i32 },
}

/// The offsets of one record's fields, found without allocating.
pub(crate) struct RecordView {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<(usize, usize)>,
    pub value: Option<(usize, usize)>,
    pub headers_at: usize,
    pub header_count: i32,
    pub end: usize,
}

/// Walks the record at `*pos`, checking every length against the record's own length
/// and the buffer's end. Advances `*pos` past the record.
pub(crate) fn walk_record(buf: &[u8], pos: &mut usize) -> Result<RecordView, RecordError> {
    let length = read_varint(buf, pos)?;
    if length < 0 {
        return Err(RecordError::NegativeLength(length));
    }
    let start = *pos;
    let end = start.checked_add(length as usize).ok_or(RecordError::Overrun)?;
    if end > buf.len() {
        return Err(RecordError::Overrun);
    }
    let record = &buf[..end];
    let mut at = start;
    at += 1; // attributes
    if at > end {
        return Err(RecordError::Overrun);
    }
    let timestamp_delta = read_varlong(record, &mut at)?;
    let offset_delta = read_varint(record, &mut at)?;
    let key = read_bytes(record, &mut at)?;
    let value = read_bytes(record, &mut at)?;
    let header_count = read_varint(record, &mut at)?;
    if header_count < 0 {
        return Err(RecordError::NegativeLength(header_count));
    }
    let headers_at = at;
    for _ in 0..header_count {
        match read_bytes(record, &mut at)? {
            Some(_) => {}
            None => return Err(RecordError::NegativeLength(-1)),
        }
        read_bytes(record, &mut at)?;
    }
    if at != end {
        return Err(RecordError::LengthMismatch { declared: length as usize, used: at - start });
    }
    *pos = end;
    Ok(RecordView { offset_delta, timestamp_delta, key, value, headers_at, header_count, end })
}

pub(crate) fn read_bytes(buf: &[u8], pos: &mut usize) -> Result<Option<(usize, usize)>, RecordError> {
    let len = read_varint(buf, pos)?;
    if len < 0 {
        return Ok(None);
    }
    let start = *pos;
    let end = start.checked_add(len as usize).ok_or(RecordError::Overrun)?;
    if end > buf.len() {
        return Err(RecordError::Overrun);
    }
    *pos = end;
    Ok(Some((start, end)))
}
