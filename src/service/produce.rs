//! Produce: append each partition's batches on the shard that owns it, in the order
//! requests arrive, and answer once `acks` is met.
//!
//! Order: `produce` returns once every local partition is appended and every remote
//! one handed to the mesh, and the listener awaits it before it reads the next frame;
//! a shard's mesh receiver appends forwarded batches one message at a time. Appends
//! resolve once sequenced (offsets assigned), so a pipelined producer's batches keep
//! their order per partition without waiting for any fdatasync; `Pending::settle`
//! then waits for `acks`.

use super::scatter::{Gathered, Slotted};
pub use super::types::{ProduceAnswers, Produced};
use super::{Error, RequestContext};
use crate::partition::{Acks, Partition, TopicPartition};
use crate::shard::{Shard, ShardMessage};
use crate::storage::Appended;
use bytes::BytesMut;
use futures_channel::oneshot;
use std::rc::Rc;
use std::time::Instant;
use strand_protocol::batch;

/// A partition appended (or refused) on this shard, and what remains to wait for.
pub enum Appending {
    Done(usize, Result<Produced, Error>),
    Appended { slot: usize, produced: Produced, partition: Rc<Partition>, last: Appended },
}

/// A produce whose batches are all sequenced; `settle` waits for its acks.
pub struct Pending {
    acks: Acks,
    deadline: Option<Instant>,
    local: Vec<Appending>,
    remote: Vec<(Vec<usize>, oneshot::Receiver<ProduceAnswers>)>,
    answers: Gathered<Produced>,
}

/// Appends `items` (each a partition and its batches, which must tile the bytes
/// exactly) on their owning shards. Returns once all are sequenced.
pub async fn produce(
    shard: &Rc<Shard>,
    ctx: &RequestContext,
    acks: Acks,
    items: Vec<(TopicPartition, BytesMut)>,
) -> Pending {
    let mut gate = super::authorize::TopicGate::new(shard, ctx, crate::metadata::acl::AclOperation::Write);
    let mut routed = super::scatter::route_checked(shard, items, |tp, _| gate.check(&tp.topic));
    let local_items = routed.by_shard.remove(&shard.id).unwrap_or_default();
    let mut remote = Vec::with_capacity(routed.by_shard.len());
    for (owner, items) in routed.by_shard {
        let slots: Vec<usize> = items.iter().map(|item| item.slot).collect();
        let (reply, receiver) = oneshot::channel();
        shard.forward(owner, ShardMessage::Produce { acks, deadline: ctx.deadline, items, reply }).await;
        remote.push((slots, receiver));
    }
    let local = append_local(shard, local_items, acks).await;
    Pending { acks, deadline: ctx.deadline, local, remote, answers: routed.answers }
}

impl Pending {
    /// Waits for `acks` on every partition; the answers in request order.
    pub async fn settle(self) -> Vec<Result<Produced, Error>> {
        let Pending { acks, deadline, local, remote, mut answers } = self;
        for (slot, answer) in settle_local(local, acks, deadline).await {
            answers.set(slot, answer);
        }
        for (slots, receiver) in remote {
            match receiver.await {
                Ok(found) => found.into_iter().for_each(|(slot, answer)| answers.set(slot, answer)),
                Err(_) => answers.fail(slots, Error::NotReady),
            }
        }
        answers.into_answers()
    }
}

/// Appends every item, in order, on this shard. Resolves when all are sequenced.
pub async fn append_local(shard: &Shard, items: Vec<Slotted<BytesMut>>, acks: Acks) -> Vec<Appending> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        out.push(append_item(shard, item, acks).await);
    }
    out
}

async fn append_item(shard: &Shard, item: Slotted<BytesMut>, acks: Acks) -> Appending {
    let Slotted { slot, tp, item: mut records } = item;
    let Some(partition) = shard.logs.get(&tp) else {
        // Owned here by metadata but not open: it failed to open, or is being deleted.
        return Appending::Done(slot, Err(Error::NotReady));
    };
    // acks=all needs min.insync.replicas in sync, or nothing is appended.
    if acks == Acks::Durable {
        if let Some((in_sync, required)) = partition.short_of_min_isr() {
            return Appending::Done(slot, Err(Error::NotEnoughReplicas { in_sync, required }));
        }
    }
    let Some(lengths) = batch_lengths(&records) else {
        let error = crate::storage::StorageError::InvalidBatch(strand_protocol::BatchError::Empty);
        return Appending::Done(slot, Err(Error::from(error)));
    };
    let bytes = records.len();
    let mut first: Option<Appended> = None;
    let mut last = None;
    for len in lengths {
        // No copy: the batch is an owned part of the receive buffer; the log stamps
        // its offset in place and its cache keeps it.
        let batch = records.split_to(len);
        match partition.append_produced(batch).await {
            Ok(appended) => {
                first.get_or_insert(appended);
                last = Some(appended);
            }
            Err(error) => {
                tracing::debug!(log = partition.name(), %error, "produce refused");
                return Appending::Done(slot, Err(Error::from(error)));
            }
        }
    }
    let (first, last) = (first.expect("at least one batch"), last.expect("at least one batch"));
    shard.metrics.produced(bytes as u64, last.last_offset + 1 - first.base_offset);
    let produced =
        Produced { base_offset: first.base_offset as i64, log_append_time_ms: first.log_append_time_ms.unwrap_or(-1) };
    Appending::Appended { slot, produced, partition, last }
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

/// Waits for `acks` on every appended item. A durable wait past `deadline` answers
/// `Timeout` (the batch may still become durable).
pub async fn settle_local(
    appending: Vec<Appending>,
    acks: Acks,
    deadline: Option<Instant>,
) -> Vec<(usize, Result<Produced, Error>)> {
    let mut answers = Vec::with_capacity(appending.len());
    for item in appending {
        match item {
            Appending::Done(slot, answer) => answers.push((slot, answer)),
            Appending::Appended { slot, produced, .. } if acks != Acks::Durable => answers.push((slot, Ok(produced))),
            Appending::Appended { slot, produced, partition, last } => {
                let waited = match deadline {
                    None => Some(partition.wait_acked(&last, acks).await),
                    Some(deadline) => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        glommio::timer::timeout(left, async { Ok(partition.wait_acked(&last, acks).await) }).await.ok()
                    }
                };
                answers.push((
                    slot,
                    match waited {
                        Some(Ok(())) => Ok(produced),
                        Some(Err(error)) => Err(Error::from(error)),
                        None => Err(Error::Timeout),
                    },
                ));
            }
        }
    }
    answers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{BatchCache, FsyncPolicy, IoOptions, Log, TopicConfig};
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
            let partition = Rc::new(Partition::new(TopicPartition::new("t", 0), 1, log.clone()));
            let mut builder = BatchBuilder::new();
            builder.push(None, Some(b"late"), &[], 0);
            let append = |partition: Rc<Partition>| {
                let batch = BytesMut::from(&builder.build()[..]);
                async move {
                    let last = partition.append(batch).await.unwrap();
                    let produced = Produced { base_offset: last.base_offset as i64, log_append_time_ms: -1 };
                    Appending::Appended { slot: 0, produced, partition, last }
                }
            };
            // The fdatasync was only requested: a deadline already passed cannot be met.
            let late = settle_local(vec![append(partition.clone()).await], Acks::Durable, Some(Instant::now())).await;
            assert!(matches!(late[0].1, Err(Error::Timeout)), "{:?}", late[0].1);
            // Acks from the leader alone never wait, whatever the deadline.
            let leader = settle_local(vec![append(partition.clone()).await], Acks::Leader, Some(Instant::now())).await;
            assert_eq!(leader[0].1.as_ref().unwrap().base_offset, 1);
            // Without a deadline the durable wait succeeds, and the earlier batches are durable too.
            let on_time = settle_local(vec![append(partition.clone()).await], Acks::Durable, None).await;
            assert!(on_time[0].1.is_ok());
            assert_eq!(log.offsets().durable, 3);
            log.close().await.unwrap();
        });
    }
}
