//! Records inside a RecordBatch v2: decoding, and a builder for clients and tests.
//! In a compressed batch the same encoding is the compressed stream's content.
//!
//! ```text
//! length          varint   bytes after this field
//! attributes      int8     unused, 0
//! timestamp_delta varlong  from the batch's base timestamp
//! offset_delta    varint   from the batch's base offset
//! key_length      varint   -1 for a null key
//! key             bytes
//! value_length    varint   -1 for a null value
//! value           bytes
//! header_count    varint
//!   header_key_length varint, header_key, header_value_length varint, header_value
//! ```

use crate::batch::{self, BatchHeader, HEADER_BYTES, LOG_OVERHEAD, MAGIC};
pub use crate::encoding::RecordError;
use crate::encoding::{read_bytes, walk_record};
use crate::varint::{varint_len, varlong_len, write_varint, write_varlong};

/// One record header (a key and an optional value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
}

/// One decoded record, borrowing from its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Vec<Header<'a>>,
}

/// Iterates the records of one batch: in place for an uncompressed batch, or over
/// the records a compressed batch decompresses to.
pub struct RecordIter<'a> {
    batch: &'a [u8],
    header: BatchHeader,
    pos: usize,
    index: i32,
}

impl<'a> RecordIter<'a> {
    /// Starts iterating `batch`, which must hold one whole uncompressed batch (see
    /// [`batch::validate`]); a compressed one is an error naming its codec (use
    /// [`RecordIter::read`]).
    pub fn new(batch: &'a [u8]) -> Result<RecordIter<'a>, batch::BatchError> {
        let header = BatchHeader::parse(batch)?;
        if batch.len() < header.total_bytes() {
            return Err(batch::BatchError::Truncated { needed: header.total_bytes(), available: batch.len() });
        }
        match header.compression()? {
            batch::Compression::None => {}
            codec => return Err(batch::BatchError::Unsupported { what: codec.name() }),
        }
        Ok(RecordIter { batch: &batch[..header.total_bytes()], header, pos: HEADER_BYTES, index: 0 })
    }

    /// Iterates the records of `batch`, compressed or not. A compressed batch's
    /// records are decompressed into `scratch` (at most `records_bytes_max` bytes) and
    /// read from there.
    pub fn read(
        batch: &'a [u8],
        scratch: &'a mut Vec<u8>,
        records_bytes_max: usize,
    ) -> Result<RecordIter<'a>, batch::BatchError> {
        let header = BatchHeader::parse(batch)?;
        let total = header.total_bytes();
        if batch.len() < total {
            return Err(batch::BatchError::Truncated { needed: total, available: batch.len() });
        }
        match header.compression()? {
            batch::Compression::None => RecordIter::new(batch),
            codec => {
                batch::decompress_records(codec, &batch[HEADER_BYTES..total], records_bytes_max, scratch)?;
                Ok(RecordIter::decompressed(header, scratch))
            }
        }
    }

    /// Iterates records already decompressed from the batch with `header`.
    pub fn decompressed(header: BatchHeader, records: &'a [u8]) -> RecordIter<'a> {
        RecordIter { batch: records, header, pos: 0, index: 0 }
    }

    /// The batch header the records belong to.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<Record<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.index >= self.header.record_count {
            return None;
        }
        self.index += 1;
        let batch = self.batch;
        let view = match walk_record(batch, &mut self.pos) {
            Ok(view) => view,
            Err(error) => {
                self.index = self.header.record_count;
                return Some(Err(error));
            }
        };
        let slice = |range: Option<(usize, usize)>| range.map(|(start, end)| &batch[start..end]);
        let mut headers = Vec::with_capacity(view.header_count as usize);
        let mut at = view.headers_at;
        for _ in 0..view.header_count {
            // walk_record already checked every header field.
            let key = read_bytes(&batch[..view.end], &mut at).ok().flatten();
            let value = read_bytes(&batch[..view.end], &mut at).ok().flatten();
            let key = key.map(|(start, end)| &batch[start..end]).unwrap_or_default();
            headers.push(Header { key, value: value.map(|(start, end)| &batch[start..end]) });
        }
        let timestamp = match self.header.timestamp_type() {
            batch::TimestampType::LogAppendTime => self.header.max_timestamp,
            // Wrapping, as Kafka's Java arithmetic does: the fields of an unchecked
            // batch (one replayed from disk or fetched) may be anything.
            batch::TimestampType::CreateTime => self.header.base_timestamp.wrapping_add(view.timestamp_delta),
        };
        Some(Ok(Record {
            offset: self.header.base_offset.wrapping_add(i64::from(view.offset_delta)),
            timestamp,
            key: slice(view.key),
            value: slice(view.value),
            headers,
        }))
    }
}

/// Builds one uncompressed RecordBatch v2 with base offset 0 and a valid CRC.
///
/// The broker stamps the real base offset on append; producers leave it at 0.
#[derive(Debug, Default, Clone)]
pub struct BatchBuilder {
    /// Once a record is pushed: `HEADER_BYTES` reserved for the header, then the
    /// encoded records, so `finish` can write the header in place without a copy.
    records: Vec<u8>,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    compression: Option<batch::Compression>,
}

impl BatchBuilder {
    /// An empty builder for a non-idempotent producer.
    pub fn new() -> BatchBuilder {
        BatchBuilder { producer_id: -1, producer_epoch: -1, base_sequence: -1, ..BatchBuilder::default() }
    }

    /// Marks the batches built as an idempotent producer's: its id and epoch, and the
    /// sequence number of the batch's first record (the broker stores a batch once
    /// however often it is sent).
    pub fn idempotent(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> BatchBuilder {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// An empty builder whose batches are compressed with `codec`.
    pub fn with_compression(codec: batch::Compression) -> BatchBuilder {
        BatchBuilder { compression: Some(codec), ..BatchBuilder::new() }
    }

    /// Number of records pushed so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether no record has been pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes the batch would take if built now.
    pub fn size_bytes(&self) -> usize {
        HEADER_BYTES + self.body().len()
    }

    /// Bytes one more record with these fields would add.
    pub fn record_size(key: Option<&[u8]>, value: Option<&[u8]>, headers: &[(&[u8], Option<&[u8]>)]) -> usize {
        let body = Self::body_len(0, 0, key, value, headers);
        varint_len(body as i32) + body
    }

    fn body_len(
        timestamp_delta: i64,
        offset_delta: i32,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&[u8], Option<&[u8]>)],
    ) -> usize {
        let bytes_len = |b: Option<&[u8]>| match b {
            Some(b) => varint_len(b.len() as i32) + b.len(),
            None => 1,
        };
        let mut len = 1 + varlong_len(timestamp_delta) + varint_len(offset_delta) + bytes_len(key) + bytes_len(value);
        len += varint_len(headers.len() as i32);
        for (hkey, hvalue) in headers {
            len += bytes_len(Some(hkey)) + bytes_len(*hvalue);
        }
        len
    }

    /// Appends a record. The first record's timestamp becomes the base timestamp.
    pub fn push(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&[u8], Option<&[u8]>)],
        timestamp_ms: i64,
    ) {
        if self.count == 0 {
            self.base_timestamp = timestamp_ms;
            self.max_timestamp = timestamp_ms;
        }
        self.max_timestamp = self.max_timestamp.max(timestamp_ms);
        let timestamp_delta = timestamp_ms - self.base_timestamp;
        let offset_delta = self.count;
        let body = Self::body_len(timestamp_delta, offset_delta, key, value, headers);
        if self.records.is_empty() {
            self.records.resize(HEADER_BYTES, 0);
        }
        let out = &mut self.records;
        write_varint(out, body as i32);
        out.push(0);
        write_varlong(out, timestamp_delta);
        write_varint(out, offset_delta);
        write_bytes(out, key);
        write_bytes(out, value);
        write_varint(out, headers.len() as i32);
        for (hkey, hvalue) in headers {
            write_bytes(out, Some(hkey));
            write_bytes(out, *hvalue);
        }
        self.count += 1;
    }

    /// Encodes the batch. Panics if no record was pushed: an empty batch is not legal.
    pub fn build(&self) -> Vec<u8> {
        let mut out = vec![0u8; HEADER_BYTES];
        self.build_into(&mut out);
        out
    }

    /// Encodes the batch without copying the records: the header is written into the
    /// space reserved in front of them (a compressed batch is a new buffer). Panics if
    /// no record was pushed.
    pub fn finish(mut self) -> Vec<u8> {
        assert!(self.count > 0, "a RecordBatch needs at least one record");
        if self.codec() != batch::Compression::None {
            return self.build();
        }
        let header = self.header(self.body().len());
        batch::write_header(&mut self.records, &header);
        self.records
    }

    fn codec(&self) -> batch::Compression {
        self.compression.unwrap_or(batch::Compression::None)
    }

    /// The encoded records, without the reserved header space.
    fn body(&self) -> &[u8] {
        self.records.get(HEADER_BYTES..).unwrap_or_default()
    }

    /// Encodes the batch at the end of `out`, which must already hold `HEADER_BYTES`
    /// bytes reserved at its end for the header.
    fn build_into(&self, out: &mut Vec<u8>) {
        assert!(self.count > 0, "a RecordBatch needs at least one record");
        let start = out.len() - HEADER_BYTES;
        match self.codec() {
            batch::Compression::None => out.extend_from_slice(self.body()),
            codec => out.extend_from_slice(&crate::compression::compress(codec, self.body())),
        }
        let header = self.header(out.len() - start - HEADER_BYTES);
        batch::write_header(&mut out[start..], &header);
    }

    fn header(&self, body_bytes: usize) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: (HEADER_BYTES - LOG_OVERHEAD + body_bytes) as u32,
            partition_leader_epoch: -1,
            magic: MAGIC,
            crc: 0,
            attributes: self.codec().attribute(),
            last_offset_delta: self.count - 1,
            base_timestamp: self.base_timestamp,
            max_timestamp: self.max_timestamp,
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: self.base_sequence,
            record_count: self.count,
        }
    }

    /// Empties the builder for reuse, keeping its allocation.
    pub fn clear(&mut self) {
        self.records.clear();
        self.count = 0;
    }
}

fn write_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => {
            write_varint(out, bytes.len() as i32);
            out.extend_from_slice(bytes);
        }
        None => write_varint(out, -1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_of_a_batch_at_the_top_of_the_offset_range_decode_without_overflow() {
        // Found by the offsets_replay fuzz target: a base offset near i64::MAX plus a
        // record's offset delta overflowed (a panic in debug builds).
        let mut builder = BatchBuilder::new();
        builder.push(None, Some(b"a"), &[], i64::MAX);
        builder.push(None, Some(b"b"), &[], i64::MAX);
        let mut batch = builder.build();
        batch::stamp_base_offset(&mut batch, i64::MAX);
        let records: Vec<_> = RecordIter::new(&batch).unwrap().map(|r| r.unwrap().offset).collect();
        assert_eq!(records, [i64::MAX, i64::MIN]);
        let header = batch::BatchHeader::parse(&batch).unwrap();
        assert_eq!(header.next_offset(), i64::MIN + 1);
    }

    #[test]
    fn records_round_trip() {
        let mut builder = BatchBuilder::new();
        builder.push(Some(b"k1"), Some(b"v1"), &[(b"h", Some(b"x"))], 1000);
        builder.push(None, Some(b"v2"), &[], 1005);
        builder.push(Some(b"k3"), None, &[(b"n", None)], 999);
        let size = builder.size_bytes();
        let mut batch = builder.build();
        assert_eq!(batch.len(), size);
        batch::stamp_base_offset(&mut batch, 40);
        let records: Vec<_> = RecordIter::new(&batch).unwrap().map(Result::unwrap).collect();
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].offset, 40);
        assert_eq!(records[0].key, Some(&b"k1"[..]));
        assert_eq!(records[0].headers, vec![Header { key: b"h", value: Some(b"x") }]);
        assert_eq!(records[1].key, None);
        assert_eq!(records[1].timestamp, 1005);
        assert_eq!(records[2].value, None);
        assert_eq!(records[2].timestamp, 999);
        assert_eq!(records[2].offset, 42);
        assert_eq!(records[2].headers, vec![Header { key: b"n", value: None }]);
    }

    #[test]
    fn record_size_matches_encoding() {
        let mut builder = BatchBuilder::new();
        let before = builder.size_bytes();
        let value = vec![7u8; 1000];
        builder.push(Some(b"key"), Some(&value), &[], 0);
        assert_eq!(builder.size_bytes() - before, BatchBuilder::record_size(Some(b"key"), Some(&value), &[]));
    }

    #[test]
    fn finish_encodes_what_build_does() {
        let mut builder = BatchBuilder::new();
        for i in 0..5u8 {
            builder.push(Some(&[i]), Some(&[i; 100]), &[(b"h", Some(b"v"))], 1_000 + i64::from(i));
        }
        let built = builder.build();
        assert_eq!(builder.size_bytes(), built.len());
        assert_eq!(builder.finish(), built);
    }
}
