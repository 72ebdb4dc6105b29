//! ListOffsets: earliest, latest (the high watermark: what a consumer can read up to)
//! and by timestamp, each answered by the partition's owning shard.

use super::errors::storage_code;
use crate::shard::{ListItem, OwnerError, Shard, ShardMessage};
use futures_channel::oneshot;
use std::collections::BTreeMap;
use std::rc::Rc;
use strand_protocol::native::messages::*;
use strand_protocol::native::{ErrorCode, Response};

fn answer(partition: u32, error: ErrorCode, offset: i64, timestamp: i64) -> ListOffsetsPartitionResponse {
    ListOffsetsPartitionResponse { partition, error, offset, timestamp }
}

/// Looks up every item in this shard's logs.
pub async fn list_local(shard: &Shard, items: Vec<ListItem>) -> Vec<(usize, ListOffsetsPartitionResponse)> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Some(log) = shard.log(&item.topic, item.partition) else {
            out.push((item.slot, answer(item.partition, ErrorCode::NotReady, -1, -1)));
            continue;
        };
        let offsets = log.offsets();
        let response = match item.spec {
            LIST_LATEST => answer(item.partition, ErrorCode::None, offsets.high_watermark as i64, -1),
            LIST_EARLIEST => answer(item.partition, ErrorCode::None, offsets.start as i64, -1),
            timestamp if timestamp >= 0 => match log.offset_for_timestamp(timestamp).await {
                Ok(Some((offset, max_timestamp))) => {
                    answer(item.partition, ErrorCode::None, offset as i64, max_timestamp)
                }
                Ok(None) => answer(item.partition, ErrorCode::None, -1, -1),
                Err(error) => answer(item.partition, storage_code(&error), -1, -1),
            },
            _ => answer(item.partition, ErrorCode::MalformedRequest, -1, -1),
        };
        out.push((item.slot, response));
    }
    out
}

/// Handles a ListOffsets request.
pub async fn handle(shard: &Rc<Shard>, request: ListOffsetsRequest) -> Response {
    let mut response = ListOffsetsResponse { topics: Vec::with_capacity(request.topics.len()) };
    let mut slots = Vec::new();
    let mut groups: BTreeMap<u32, Vec<ListItem>> = BTreeMap::new();
    for (t, topic) in request.topics.into_iter().enumerate() {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for (p, part) in topic.partitions.into_iter().enumerate() {
            let slot = slots.len();
            slots.push((t, p));
            let mut entry = answer(part.partition, ErrorCode::None, -1, -1);
            match shard.owner(&topic.name, part.partition) {
                Ok(owner) => groups.entry(owner).or_default().push(ListItem {
                    slot,
                    topic: topic.name.clone(),
                    partition: part.partition,
                    spec: part.spec,
                }),
                Err(OwnerError::UnknownTopic) => entry.error = ErrorCode::UnknownTopic,
                Err(OwnerError::UnknownPartition) => entry.error = ErrorCode::UnknownPartition,
            }
            partitions.push(entry);
        }
        response.topics.push(ListOffsetsTopicResponse { name: topic.name, partitions });
    }
    let mut found = Vec::new();
    for (owner, items) in groups {
        if owner == shard.id {
            found.extend(list_local(shard, items).await);
            continue;
        }
        let slots_here: Vec<(usize, u32)> = items.iter().map(|i| (i.slot, i.partition)).collect();
        let (reply, receiver) = oneshot::channel();
        shard.forward(owner, ShardMessage::ListOffsets { items, reply }).await;
        match receiver.await {
            Ok(results) => found.extend(results),
            Err(_) => found.extend(slots_here.into_iter().map(|(s, p)| (s, answer(p, ErrorCode::NotReady, -1, -1)))),
        }
    }
    for (slot, entry) in found {
        let (t, p) = slots[slot];
        response.topics[t].partitions[p] = entry;
    }
    Response::ListOffsets(response)
}
