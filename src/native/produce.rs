//! Produce: append each partition's batches on the shard that owns it, in the order
//! requests arrive, and answer once `acks` is met.
//!
//! Order: the connection's reader awaits the append of every local partition (and the
//! hand-off of every remote one to the mesh) before it reads the next frame, and a
//! shard's mesh receiver appends forwarded batches one message at a time. Appends
//! resolve once sequenced (offsets assigned), so a pipelined producer's batches keep
//! their order per partition without waiting for any fdatasync; `acks = durable`
//! waits for the topic's policy in a spawned task.

use super::errors::storage_code;
use super::out::ConnectionState;
use super::route::respond;
use crate::shard::{OwnerError, ProduceItem, ProduceItemResult, Shard, ShardMessage};
use crate::storage::{Appended, Log};
use bytes::{Buf, BytesMut};
use futures_channel::oneshot;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};
use strand_protocol::batch;
use strand_protocol::native::messages::*;
use strand_protocol::native::{ErrorCode, ProduceLayout, Response};

/// An item appended, or failed, and what remains to wait for.
pub enum Appending {
    Done(ProduceItemResult),
    Appended { result: ProduceItemResult, log: Rc<Log>, last: Appended },
}

fn failed(slot: usize, error: ErrorCode) -> ProduceItemResult {
    ProduceItemResult { slot, error, base_offset: -1, log_append_time_ms: -1 }
}

/// Appends every item, in order, on this shard. Resolves when all are sequenced.
pub async fn append_items(shard: &Shard, items: Vec<ProduceItem>) -> Vec<Appending> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        out.push(append_item(shard, item).await);
    }
    out
}

async fn append_item(shard: &Shard, item: ProduceItem) -> Appending {
    let Some(log) = shard.log(&item.topic, item.partition) else {
        // Owned here by metadata but not open: it failed to open, or is being deleted.
        return Appending::Done(failed(item.slot, ErrorCode::NotReady));
    };
    let Some(lengths) = batch_lengths(&item.records) else {
        return Appending::Done(failed(item.slot, ErrorCode::InvalidBatch));
    };
    let mut records = item.records;
    let bytes = records.len();
    let mut first: Option<Appended> = None;
    let mut last = None;
    for len in lengths {
        // No copy: the batch is an owned part of the receive buffer; the log stamps
        // its offset in place and its cache keeps it.
        let batch = records.split_to(len);
        match log.append_leader(batch, crate::storage::LEADER_EPOCH).await {
            Ok(appended) => {
                first.get_or_insert(appended);
                last = Some(appended);
            }
            Err(error) => {
                shard.metrics.error(strand_protocol::native::ApiKey::Produce);
                tracing::debug!(log = log.name(), %error, "produce refused");
                return Appending::Done(failed(item.slot, storage_code(&error)));
            }
        }
    }
    let (first, last) = (first.expect("at least one batch"), last.expect("at least one batch"));
    shard.metrics.produced(bytes as u64, last.last_offset + 1 - first.base_offset);
    let result = ProduceItemResult {
        slot: item.slot,
        error: ErrorCode::None,
        base_offset: first.base_offset as i64,
        log_append_time_ms: first.log_append_time_ms.unwrap_or(-1),
    };
    Appending::Appended { result, log, last }
}

/// The lengths of the batches in `records`, or `None` unless they tile it exactly
/// (each batch is fully validated by the log before it is stored).
fn batch_lengths(records: &[u8]) -> Option<Vec<usize>> {
    let mut lengths = Vec::new();
    let mut at = 0;
    while at < records.len() {
        let len = batch::batch_bytes(&records[at..])?;
        if len == 0 || at + len > records.len() {
            return None;
        }
        lengths.push(len);
        at += len;
    }
    (!lengths.is_empty()).then_some(lengths)
}

/// Waits for `acks` on every appended item and returns the results. A durable wait
/// past `deadline` answers `Timeout` (the batch may still become durable).
pub async fn settle(appending: Vec<Appending>, acks: u8, deadline: Option<Instant>) -> Vec<ProduceItemResult> {
    let mut results = Vec::with_capacity(appending.len());
    for item in appending {
        match item {
            Appending::Done(result) => results.push(result),
            Appending::Appended { result, log, last } => {
                if acks != ACKS_DURABLE {
                    results.push(result);
                    continue;
                }
                let waited = match deadline {
                    None => Some(log.wait_policy(&last).await),
                    Some(deadline) => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        glommio::timer::timeout(left, async { Ok(log.wait_policy(&last).await) }).await.ok()
                    }
                };
                results.push(match waited {
                    Some(Ok(())) => result,
                    Some(Err(error)) => failed(result.slot, storage_code(&error)),
                    None => failed(result.slot, ErrorCode::Timeout),
                });
            }
        }
    }
    results
}

/// When a produce request with `timeout_ms` stops waiting (0: never).
/// Answers a Produce whose `acks` is not 0, 1 or 2: InvalidAcks for every
/// partition, nothing appended.
fn refuse_acks(shard: &Shard, state: &ConnectionState, correlation: u32, request_bytes: usize, layout: ProduceLayout) {
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
                    error: ErrorCode::InvalidAcks,
                    base_offset: -1,
                    log_append_time_ms: -1,
                })
                .collect(),
        })
        .collect();
    shard.metrics.error(strand_protocol::native::ApiKey::Produce);
    super::route::respond(state, correlation, request_bytes, Response::Produce(ProduceResponse { topics }));
}

pub fn deadline(timeout_ms: u32) -> Option<Instant> {
    (timeout_ms > 0).then(|| Instant::now() + Duration::from_millis(u64::from(timeout_ms)))
}

/// Handles a Produce request read by a connection on this shard: `layout` says
/// where each partition's batches lie in `payload`.
pub async fn handle(
    shard: &Rc<Shard>,
    state: &Rc<ConnectionState>,
    correlation: u32,
    request_bytes: usize,
    layout: ProduceLayout,
    mut payload: BytesMut,
) {
    let acks = layout.acks;
    if acks > ACKS_DURABLE {
        refuse_acks(shard, state, correlation, request_bytes, layout);
        return;
    }
    let deadline = deadline(layout.timeout_ms);
    let started = Instant::now();
    let mut response = ProduceResponse { topics: Vec::with_capacity(layout.topics.len()) };
    let mut slots = Vec::new();
    let mut local = Vec::new();
    let mut remote: BTreeMap<u32, Vec<ProduceItem>> = BTreeMap::new();
    let mut consumed = 0;
    for (t, topic) in layout.topics.into_iter().enumerate() {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for (p, part) in topic.partitions.into_iter().enumerate() {
            // Ranges are in payload order: skip to this one and split it off.
            payload.advance(part.records.start - consumed);
            let records = payload.split_to(part.records.len());
            consumed = part.records.end;
            let slot = slots.len();
            slots.push((t, p));
            let mut entry = ProducePartitionResponse {
                partition: part.partition,
                error: ErrorCode::None,
                base_offset: -1,
                log_append_time_ms: -1,
            };
            let item = ProduceItem { slot, topic: topic.name.clone(), partition: part.partition, records };
            match shard.owner(&topic.name, part.partition) {
                Err(OwnerError::UnknownTopic) => entry.error = ErrorCode::UnknownTopic,
                Err(OwnerError::UnknownPartition) => entry.error = ErrorCode::UnknownPartition,
                Ok(owner) if owner == shard.id => local.push(item),
                Ok(owner) => remote.entry(owner).or_default().push(item),
            }
            partitions.push(entry);
        }
        response.topics.push(ProduceTopicResponse { name: topic.name, partitions });
    }
    let mut replies = Vec::with_capacity(remote.len());
    for (owner, items) in remote {
        let owned_slots: Vec<usize> = items.iter().map(|item| item.slot).collect();
        let (reply, receiver) = oneshot::channel();
        shard.forward(owner, ShardMessage::Produce { acks, deadline, items, reply }).await;
        replies.push((owned_slots, receiver));
    }
    let appending = append_items(shard, local).await;
    if acks == ACKS_NONE {
        shard.metrics.produce_latency.observe(started.elapsed());
        state.finish_request(request_bytes);
        return;
    }
    let state = state.clone();
    let metrics = shard.metrics.clone();
    glommio::spawn_local(async move {
        let mut results = settle(appending, acks, deadline).await;
        for (owned_slots, receiver) in replies {
            match receiver.await {
                Ok(remote_results) => results.extend(remote_results),
                Err(_) => results.extend(owned_slots.into_iter().map(|slot| failed(slot, ErrorCode::NotReady))),
            }
        }
        for result in results {
            let (t, p) = slots[result.slot];
            let entry = &mut response.topics[t].partitions[p];
            entry.error = result.error;
            entry.base_offset = result.base_offset;
            entry.log_append_time_ms = result.log_append_time_ms;
        }
        metrics.produce_latency.observe(started.elapsed());
        respond(&state, correlation, request_bytes, Response::Produce(response));
    })
    .detach();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{BatchCache, FsyncPolicy, IoOptions, TopicConfig};
    use strand_protocol::BatchBuilder;

    /// A durable wait past the request's deadline is answered `Timeout`; the batch
    /// stays appended and becomes durable all the same.
    #[test]
    fn a_durable_wait_past_the_deadline_answers_timeout() {
        crate::runtime::run_local("produce-timeout", || async {
            let dir = tempfile::tempdir().unwrap();
            let config = TopicConfig { fsync: FsyncPolicy::Always, ..TopicConfig::default() };
            let cache = Rc::new(BatchCache::new(1 << 20));
            let (log, _) = Log::open(dir.path(), "t-0", config, IoOptions::default(), cache).await.unwrap();
            let mut builder = BatchBuilder::new();
            builder.push(None, Some(b"late"), &[], 0);
            let append = |log: Rc<Log>| {
                let batch = BytesMut::from(&builder.build()[..]);
                async move {
                    let last = log.append_leader(batch, crate::storage::LEADER_EPOCH).await.unwrap();
                    let result =
                        ProduceItemResult { slot: 0, error: ErrorCode::None, base_offset: 0, log_append_time_ms: -1 };
                    Appending::Appended { result, log, last }
                }
            };
            // The fdatasync was only requested: a deadline already passed cannot be met.
            let late = settle(vec![append(log.clone()).await], ACKS_DURABLE, Some(Instant::now())).await;
            assert_eq!(late[0].error, ErrorCode::Timeout);
            // Without a deadline the same wait succeeds, and the first batch is durable too.
            let on_time = settle(vec![append(log.clone()).await], ACKS_DURABLE, deadline(0)).await;
            assert_eq!(on_time[0].error, ErrorCode::None);
            assert_eq!(log.offsets().durable, 2);
            log.close().await.unwrap();
        });
    }
}
