//! `strand-client`: the library services use to produce to and consume from Strand.
//!
//! It depends on `strand-protocol` and never on glommio: connections are plain
//! sockets with a reader thread each, and every async call returns a future that any
//! executor can drive (tokio, async-std, or `block_on` in synchronous code).
//!
//! - `Client`: metadata, shard-aware connections, admin (create, delete, list topics,
//!   list offsets).
//! - `Producer`: batching per partition, Kafka's default partitioner, pipelined sends,
//!   retries; `send` returns a `DeliveryFuture` with the record's offset.
//! - `Consumer`: assigned partitions, seeks, long-poll `poll` with prefetch.
//! - `TlsConfig`, `Credentials`: TLS (rustls) and SCRAM for secured listeners.

mod client;
mod connection;
mod consumer;
mod error;
mod group;
pub mod partitioner;
mod producer;
mod security;
mod timer;

pub use client::{
    BrokerDescription, Client, ClientConfig, ClusterDescription, OffsetSpec, PartitionLayout, TopicDescription,
    TopicLayout,
};
pub use connection::ResponseFuture;
pub use consumer::{Consumer, ConsumerConfig, ConsumerRecord, Reset, Seek};
pub use error::{ClientError, Result};
pub use futures_executor::block_on;
pub use group::{GroupConfig, GroupEvent, TopicPartition};
pub use partitioner::{murmur2, partition_for_key, StickyPartitioner};
pub use producer::{Acks, DeliveryFuture, Producer, ProducerConfig, ProducerRecord, RecordMetadata};
pub use security::{Credentials, ScramMechanism, TlsConfig};
pub use strand_protocol::native::ErrorCode;
pub use strand_protocol::{BatchBuilder, BatchHeader, Compression, Header, Record, RecordIter};
