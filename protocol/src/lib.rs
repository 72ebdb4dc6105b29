//! `strand-protocol`: the byte formats Strand shares between broker, client and bench.
//!
//! This crate does no I/O and knows no runtime. It owns Strand's native protocol
//! (`native`: frames, requests, responses, error codes; `protocol/SPEC.md` specifies
//! it), both sides of SCRAM (`scram`: what the native Authenticate and Kafka's
//! SaslAuthenticate carry), and re-exports the RecordBatch v2 format of `strand-format`.

pub mod native;
pub mod scram;

// The batch format lives in `strand-format` (which storage depends on without any wire
// protocol); re-exported here for the client and the bench, which speak both.
pub use strand_format::{batch, compression, encoding, record, varint};
pub use strand_format::{
    BatchBuilder, BatchError, BatchHeader, BatchLimits, Compression, Header, Record, RecordError, RecordIter,
    TimestampType,
};
