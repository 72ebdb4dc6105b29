//! Produce: the batches of a native Produce request, split off its payload without a
//! copy, handed to the service layer; the answer encoded once every partition is
//! settled.

use super::errors::code;
use super::route::respond;
use crate::net::{ConnectionState, RequestSlot};
use crate::partition::{Acks, TopicPartition};
use crate::service::produce::produce;
use crate::service::{Operation, RequestContext};
use crate::shard::Shard;
use bytes::{Buf, BytesMut};
use std::rc::Rc;
use std::time::{Duration, Instant};
use strand_protocol::native::messages::*;
use strand_protocol::native::{ErrorCode, ProduceLayout, Response};

/// `acks` on the wire, or `None` outside 0 to 2.
fn acks(value: u8) -> Option<Acks> {
    match value {
        ACKS_NONE => Some(Acks::None),
        ACKS_LEADER => Some(Acks::Leader),
        ACKS_DURABLE => Some(Acks::Durable),
        _ => None,
    }
}

/// When a produce request with `timeout_ms` stops waiting (0: never).
pub fn deadline(timeout_ms: u32) -> Option<Instant> {
    (timeout_ms > 0).then(|| Instant::now() + Duration::from_millis(u64::from(timeout_ms)))
}

/// Answers every partition of `layout` with `error`, nothing appended.
fn refuse_all(layout: ProduceLayout, error: ErrorCode) -> Response {
    let topics = layout
        .topics
        .into_iter()
        .map(|topic| ProduceTopicResponse {
            name: topic.name,
            partitions: topic
                .partitions
                .iter()
                .map(|part| ProducePartitionResponse {
                    partition: part.partition,
                    error,
                    base_offset: -1,
                    log_append_time_ms: -1,
                })
                .collect(),
        })
        .collect();
    Response::Produce(ProduceResponse { topics })
}

/// Handles a Produce request read by a connection on this shard: `layout` says where
/// each partition's batches lie in `payload`. Returns once every batch is sequenced.
pub async fn handle(
    shard: &Rc<Shard>,
    ctx: RequestContext,
    state: &Rc<ConnectionState>,
    correlation: u32,
    slot: RequestSlot,
    layout: ProduceLayout,
    mut payload: BytesMut,
) {
    let Some(acks) = acks(layout.acks) else {
        shard.metrics.error(ctx.listener, Operation::Produce);
        respond(state, correlation, slot, refuse_all(layout, ErrorCode::InvalidAcks));
        return;
    };
    let ctx = RequestContext { deadline: deadline(layout.timeout_ms), ..ctx };
    let started = Instant::now();
    // The shape of the answer, and each partition's batches split off the payload.
    let mut shape: Vec<(String, Vec<u32>)> = Vec::with_capacity(layout.topics.len());
    let mut items = Vec::new();
    let mut consumed = 0;
    for topic in layout.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for part in topic.partitions {
            // Ranges are in payload order: skip to this one and split it off.
            payload.advance(part.records.start - consumed);
            let records = payload.split_to(part.records.len());
            consumed = part.records.end;
            items.push((TopicPartition::new(topic.name.clone(), part.partition), records));
            partitions.push(part.partition);
        }
        shape.push((topic.name, partitions));
    }
    // The producer's quotas (bytes, and the shard's time on the appends): the
    // connection rests before its next request is read.
    let bytes: u64 = items.iter().map(|(_, batches)| batches.len() as u64).sum();
    let quota = crate::metadata::quota::QuotaKey::ProducerByteRate;
    state.mute_for(crate::service::quotas::record(shard, &ctx, quota, bytes));
    let (pending, spent) = crate::service::quotas::timed(produce(shard, &ctx, acks, items)).await;
    state.mute_for(crate::service::quotas::record_time(shard, &ctx, spent));
    if acks == Acks::None {
        shard.metrics.produce_latency.observe(started.elapsed());
        state.finish_request(slot);
        return;
    }
    let (state, metrics, listener) = (state.clone(), shard.metrics.clone(), ctx.listener);
    glommio::spawn_local(async move {
        let mut answers = pending.settle().await.into_iter();
        let topics = shape
            .into_iter()
            .map(|(name, partitions)| ProduceTopicResponse {
                name,
                partitions: partitions
                    .into_iter()
                    .map(|partition| match answers.next().expect("one answer per partition") {
                        Ok(produced) => ProducePartitionResponse {
                            partition,
                            error: ErrorCode::None,
                            base_offset: produced.base_offset,
                            log_append_time_ms: produced.log_append_time_ms,
                        },
                        Err(error) => {
                            metrics.error(listener, Operation::Produce);
                            ProducePartitionResponse {
                                partition,
                                error: code(&error),
                                base_offset: -1,
                                log_append_time_ms: -1,
                            }
                        }
                    })
                    .collect(),
            })
            .collect();
        metrics.produce_latency.observe(started.elapsed());
        respond(&state, correlation, slot, Response::Produce(ProduceResponse { topics }));
    })
    .detach();
}
