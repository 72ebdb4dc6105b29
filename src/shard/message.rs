//! What one shard asks of another over the channel mesh. Every message carries its
//! own reply channel; a request for several partitions of the same shard travels as
//! one message (forwarding is batched per request, not per partition).

use crate::metadata::MetadataState;
use bytes::{Bytes, BytesMut};
use futures_channel::oneshot;
use std::sync::Arc;
use strand_protocol::native::messages::ListOffsetsPartitionResponse;
use strand_protocol::native::ErrorCode;

/// Batches for one partition, and where its answer goes in the response. The
/// records are an owned part of the receive buffer: each batch is split off it,
/// stamped in place and kept by the log's cache without a copy.
#[derive(Debug)]
pub struct ProduceItem {
    pub slot: usize,
    pub topic: String,
    pub partition: u32,
    pub records: BytesMut,
}

/// The outcome of one `ProduceItem`.
#[derive(Debug, Clone, Copy)]
pub struct ProduceItemResult {
    pub slot: usize,
    pub error: ErrorCode,
    pub base_offset: i64,
    pub log_append_time_ms: i64,
}

/// One partition to read from.
#[derive(Debug, Clone)]
pub struct FetchItem {
    pub slot: usize,
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub max_bytes: u32,
}

/// What one `FetchItem` read. Across shards the stored bytes travel as `Bytes`
/// (cached batches are shared, disk reads copied once).
#[derive(Debug, Clone)]
pub struct FetchItemResult {
    pub slot: usize,
    pub error: ErrorCode,
    pub high_watermark: u64,
    pub log_start_offset: u64,
    pub chunks: Vec<Bytes>,
}

/// How long a fetch may wait and how much it may return, in all.
#[derive(Debug, Clone, Copy)]
pub struct FetchWait {
    pub max_wait_ms: u32,
    pub min_bytes: u32,
    pub max_bytes: u32,
}

/// One partition to look up an offset in.
#[derive(Debug, Clone)]
pub struct ListItem {
    pub slot: usize,
    pub topic: String,
    pub partition: u32,
    pub spec: i64,
}

/// A request from one shard to another.
pub enum ShardMessage {
    /// Append to partitions the receiver owns, in message order; a durable wait ends
    /// at `deadline`.
    Produce {
        acks: u8,
        deadline: Option<std::time::Instant>,
        items: Vec<ProduceItem>,
        reply: oneshot::Sender<Vec<ProduceItemResult>>,
    },
    /// Read from partitions the receiver owns, waiting as `wait` allows.
    Fetch {
        wait: FetchWait,
        items: Vec<FetchItem>,
        /// Resolves (or is dropped) when the fetch should stop waiting and answer.
        cancel: oneshot::Receiver<()>,
        reply: oneshot::Sender<Vec<FetchItemResult>>,
    },
    /// Look up offsets in partitions the receiver owns.
    ListOffsets { items: Vec<ListItem>, reply: oneshot::Sender<Vec<(usize, ListOffsetsPartitionResponse)>> },
    /// Admin requests go to shard 0, which owns the metadata store.
    Admin { request: strand_protocol::native::Request, reply: oneshot::Sender<strand_protocol::native::Response> },
    /// A consumer-group request for a group this shard coordinates.
    Group { request: strand_protocol::native::Request, reply: oneshot::Sender<strand_protocol::native::Response> },
    /// From shard 0: adopt this metadata (open and close logs), then reply.
    Apply { state: Arc<MetadataState>, reply: oneshot::Sender<Vec<super::apply::OpenFailure>> },
}
