//! ListOffsets: earliest, latest (the high watermark: what a consumer can read up to),
//! by timestamp and the newest timestamp, each answered by the partition's owning shard.

use super::scatter::Slotted;
pub use super::types::{ListedOffset, OffsetSpec};
use super::{Error, RequestContext};
use crate::partition::TopicPartition;
use crate::shard::{Shard, ShardMessage};
use futures_channel::oneshot;
use std::rc::Rc;

/// Looks up each partition's offset on the shard that owns it.
pub async fn list_offsets(
    shard: &Rc<Shard>,
    ctx: &RequestContext,
    items: Vec<(TopicPartition, OffsetSpec)>,
) -> Vec<Result<ListedOffset, Error>> {
    let mut gate = super::authorize::TopicGate::new(shard, ctx, crate::metadata::acl::AclOperation::Describe);
    let mut routed = super::scatter::route_checked(shard, items, |tp, _| gate.check(&tp.topic));
    for (owner, items) in routed.by_shard {
        if owner == shard.id {
            for (slot, answer) in list_local(shard, items).await {
                routed.answers.set(slot, answer);
            }
            continue;
        }
        let slots: Vec<usize> = items.iter().map(|item| item.slot).collect();
        let (reply, receiver) = oneshot::channel();
        shard.forward(owner, ShardMessage::ListOffsets { items, reply }).await;
        match receiver.await {
            Ok(found) => found.into_iter().for_each(|(slot, answer)| routed.answers.set(slot, answer)),
            Err(_) => routed.answers.fail(slots, Error::ShuttingDown),
        }
    }
    routed.answers.into_answers()
}

/// The high watermark of each partition, for checks that need a partition's end (an
/// offset commit may not pass it).
pub async fn end_offsets(shard: &Rc<Shard>, tps: Vec<TopicPartition>) -> Vec<Result<u64, Error>> {
    let items = tps.into_iter().map(|tp| (tp, OffsetSpec::Latest)).collect();
    list_offsets(shard, &RequestContext::broker(), items)
        .await
        .into_iter()
        .map(|answer| answer.map(|listed| listed.offset.max(0) as u64))
        .collect()
}

/// Looks up every item in this shard's partitions.
pub async fn list_local(shard: &Shard, items: Vec<Slotted<OffsetSpec>>) -> Vec<(usize, Result<ListedOffset, Error>)> {
    let mut out = Vec::with_capacity(items.len());
    for Slotted { slot, tp, item: spec } in items {
        let Some(partition) = shard.logs.get(&tp) else {
            out.push((slot, Err(Error::NotReady)));
            continue;
        };
        let offsets = partition.offsets();
        let epoch = partition.leader_epoch();
        let listed = |offset: i64, timestamp: i64| ListedOffset { offset, timestamp, leader_epoch: epoch };
        let answer = match spec {
            OffsetSpec::Latest => Ok(listed(offsets.high_watermark as i64, -1)),
            OffsetSpec::Earliest => Ok(listed(offsets.start as i64, -1)),
            OffsetSpec::Timestamp(timestamp) => match partition.offset_for_timestamp(timestamp).await {
                Ok(Some((offset, max_timestamp))) => Ok(listed(offset as i64, max_timestamp)),
                Ok(None) => Ok(listed(-1, -1)),
                Err(error) => Err(Error::from(error)),
            },
            OffsetSpec::MaxTimestamp => match partition.offset_of_max_timestamp().await {
                Ok(Some((offset, timestamp))) => Ok(listed(offset as i64, timestamp)),
                Ok(None) => Ok(listed(-1, -1)),
                Err(error) => Err(Error::from(error)),
            },
            OffsetSpec::EpochEnd(asked) => {
                let log = partition.log();
                let epochs = log.leader_epochs();
                // No epoch recorded: every batch is at epoch 0.
                let found = if epochs.latest().is_none() {
                    (asked >= crate::storage::LEADER_EPOCH).then_some((crate::storage::LEADER_EPOCH, offsets.end))
                } else {
                    epochs.end_offset_for(asked, offsets.end)
                };
                Ok(match found {
                    Some((found, end)) => ListedOffset { offset: end as i64, timestamp: -1, leader_epoch: found },
                    None => ListedOffset { offset: -1, timestamp: -1, leader_epoch: -1 },
                })
            }
        };
        out.push((slot, answer));
    }
    out
}
