//! `strand-client`: the library services use to produce to and consume from Strand.
//!
//! It depends on `strand-protocol` and never on glommio, so it runs in a tokio
//! application or in plain synchronous code. Today it offers the record batch codec
//! (build batches to produce, iterate the records of fetched batches) and Kafka's
//! default partitioner (`partitioner`); the network producer and consumer come next.

pub mod partitioner;

pub use partitioner::{murmur2, partition_for_key, StickyPartitioner};
pub use strand_protocol::{BatchBuilder, BatchHeader, Header, Record, RecordIter};
