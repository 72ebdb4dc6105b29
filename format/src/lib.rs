//! `strand-format`: the Kafka RecordBatch v2 format, which Strand stores byte for byte
//! and both wire protocols carry. No I/O, no runtime, no wire protocol.
//!
//! Modules, each importing only those before it: `varint` (zig-zag varints),
//! `compression` (the codec names and the four codecs), `encoding` (one record's
//! encoding, walked without allocating), `batch` (the batch header, validation and
//! stamping), `record` (`RecordIter` to decode, `BatchBuilder` to encode).

pub mod batch;
pub mod compression;
pub mod encoding;
pub mod record;
pub mod varint;

pub use batch::{BatchError, BatchHeader, BatchLimits, Compression, TimestampType};
pub use record::{BatchBuilder, Header, Record, RecordError, RecordIter};

#[cfg(test)]
mod batch_tests;
