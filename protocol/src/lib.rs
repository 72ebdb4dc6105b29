//! `strand-protocol`: the byte formats Strand shares between broker, client and bench.
//!
//! This crate does no I/O and knows no runtime. It owns the Kafka RecordBatch v2 format
//! (`batch`), which Strand uses byte for byte on both wire protocols and on disk, the
//! record encoding inside it (`record`), the four codecs of compressed batches
//! (`compression`), and Strand's native protocol (`native`:
//! frames, requests, responses, error codes; `protocol/SPEC.md` specifies it).

pub mod batch;
pub mod compression;
pub mod native;
pub mod record;
pub mod varint;

pub use batch::{BatchError, BatchHeader, BatchLimits, Compression, TimestampType};
pub use record::{BatchBuilder, Header, Record, RecordError, RecordIter};
