//! What one shard asks of another over the channel mesh, in the service layer's
//! types (never a wire type). Every message carries its own reply channel; a request
//! for several partitions of the same shard travels as one message (forwarding is
//! batched per request, not per partition).

use crate::group::api::{GroupRequest, GroupResponse};
use crate::metadata::MetadataState;
use crate::partition::{Acks, OpenFailure};
use crate::service::error::Error;
use crate::service::types::{
    AdminRequest, FetchAnswers, FetchFrom, FetchWait, ListedOffset, OffsetSpec, PartitionAnswers, PartitionOp,
    ProduceAnswers, Slotted, TopicOutcomes,
};
use bytes::BytesMut;
use futures_channel::oneshot;
use std::sync::Arc;

/// A request from one shard to another.
pub enum ShardMessage {
    /// Append to partitions the receiver owns, in message order; each partition's
    /// records are an owned part of the sender's receive buffer (no copy). A durable
    /// wait ends at `deadline`.
    Produce {
        acks: Acks,
        deadline: Option<std::time::Instant>,
        items: Vec<Slotted<BytesMut>>,
        reply: oneshot::Sender<ProduceAnswers>,
    },
    /// Read from partitions the receiver owns, waiting as `wait` allows.
    Fetch {
        wait: FetchWait,
        items: Vec<Slotted<FetchFrom>>,
        /// Resolves (or is dropped) when the fetch should stop waiting and answer.
        cancel: oneshot::Receiver<()>,
        reply: oneshot::Sender<FetchAnswers>,
    },
    /// Look up offsets in partitions the receiver owns.
    ListOffsets { items: Vec<Slotted<OffsetSpec>>, reply: oneshot::Sender<Vec<(usize, Result<ListedOffset, Error>)>> },
    /// Delete records from, or describe, partitions the receiver owns.
    Partitions { items: Vec<Slotted<PartitionOp>>, reply: oneshot::Sender<PartitionAnswers> },
    /// Admin requests go to shard 0, which owns the metadata store.
    Admin { request: AdminRequest, reply: oneshot::Sender<TopicOutcomes> },
    /// A fresh producer id, from shard 0 (`service::producer_ids`).
    ProducerId { reply: oneshot::Sender<Result<i64, Error>> },
    /// A consumer-group request for a group this shard coordinates.
    Group { request: GroupRequest, reply: oneshot::Sender<GroupResponse> },
    /// From shard 0: adopt this metadata (open and close partitions), then reply.
    Apply { state: Arc<MetadataState>, reply: oneshot::Sender<Vec<OpenFailure>> },
    /// To shard 0: write a command a partition's leader decided (an in-sync replica
    /// change) to the metadata log.
    Propose { command: crate::metadata::Command, reply: oneshot::Sender<Result<(), String>> },
}
