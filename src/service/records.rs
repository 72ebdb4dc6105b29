//! Work on partitions' records and state beyond reading and writing them: moving a
//! partition's start forward (Kafka's DeleteRecords) and describing the idempotent
//! producers a partition remembers (DescribeProducers), each done by the shard that
//! owns the partition.

use super::scatter::Slotted;
pub use super::types::{PartitionAnswer, PartitionOp};
use super::{Error, RequestContext};
use crate::group::OFFSETS_TOPIC;
use crate::partition::TopicPartition;
use crate::shard::{Shard, ShardMessage};
use futures_channel::oneshot;
use std::rc::Rc;

/// Runs each partition's operation on the shard that owns it; answers in request order.
pub async fn run(
    shard: &Rc<Shard>,
    ctx: &RequestContext,
    items: Vec<(TopicPartition, PartitionOp)>,
) -> Vec<Result<PartitionAnswer, Error>> {
    use crate::metadata::acl::AclOperation;
    let (mut deletes, mut reads) = (
        super::authorize::TopicGate::new(shard, ctx, AclOperation::Delete),
        super::authorize::TopicGate::new(shard, ctx, AclOperation::Read),
    );
    // Kafka's rules: DeleteRecords needs delete on the topic, DescribeProducers read.
    let mut routed = super::scatter::route_checked(shard, items, |tp, op| match op {
        PartitionOp::DeleteBefore(_) => deletes.check(&tp.topic),
        _ => reads.check(&tp.topic),
    });
    for (owner, items) in routed.by_shard {
        if owner == shard.id {
            for (slot, answer) in run_local(shard, items).await {
                routed.answers.set(slot, answer);
            }
            continue;
        }
        let slots: Vec<usize> = items.iter().map(|item| item.slot).collect();
        let (reply, receiver) = oneshot::channel();
        shard.forward(owner, ShardMessage::Partitions { items, reply }).await;
        match receiver.await {
            Ok(found) => found.into_iter().for_each(|(slot, answer)| routed.answers.set(slot, answer)),
            Err(_) => routed.answers.fail(slots, Error::ShuttingDown),
        }
    }
    routed.answers.into_answers()
}

/// Runs every item on this shard's partitions, one after another.
pub async fn run_local(
    shard: &Shard,
    items: Vec<Slotted<PartitionOp>>,
) -> Vec<(usize, Result<PartitionAnswer, Error>)> {
    let mut out = Vec::with_capacity(items.len());
    for Slotted { slot, tp, item } in items {
        let Some(partition) = shard.logs.get(&tp) else {
            out.push((slot, Err(Error::NotReady)));
            continue;
        };
        let answer = match item {
            // The group coordinator's own log keeps the groups' offsets: deleting its
            // records would lose them.
            PartitionOp::DeleteBefore(_) if tp.topic == OFFSETS_TOPIC => {
                Err(Error::InvalidTopicName(format!("the records of {OFFSETS_TOPIC} cannot be deleted")))
            }
            PartitionOp::DeleteBefore(offset) => {
                let offset = offset.unwrap_or_else(|| partition.high_watermark());
                match partition.delete_records_before(offset).await {
                    Ok(start) => {
                        tracing::info!(partition = %tp, start, "records deleted: the partition starts at a new offset");
                        Ok(PartitionAnswer::Start(start))
                    }
                    Err(error) => Err(Error::from(error)),
                }
            }
            PartitionOp::DescribeProducers => Ok(PartitionAnswer::Producers(partition.producers())),
        };
        out.push((slot, answer));
    }
    out
}
