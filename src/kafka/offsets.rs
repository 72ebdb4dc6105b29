//! ListOffsets (v1 to v10) and OffsetForLeaderEpoch (v2 to v4): earliest (-2), latest
//! (-1, the high watermark), the first record at or after a timestamp, the record with
//! the newest timestamp (-3, KIP-734), the earliest local offset (-4, KIP-1005: the
//! earliest, as every record is local) and the latest tiered offset (-5: none, as
//! nothing is tiered), each answered by the partition's owning shard. The leader
//! epoch is the partition's (0 on one broker).

use super::errors::kafka_error;
use crate::partition::TopicPartition;
use crate::service::offsets::{list_offsets, ListedOffset, OffsetSpec};
use crate::service::{Error, Operation, RequestContext};
use crate::shard::Shard;
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{
    ListOffsetsRequest, ListOffsetsResponse, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};
use kafka_protocol::ResponseError;
use std::rc::Rc;

/// Kafka's special timestamps.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

/// What a partition is asked for: a lookup, or the answer known without one.
enum Asked {
    Lookup(OffsetSpec),
    /// The latest tiered offset: nothing is tiered.
    NoTiered,
}

fn spec(timestamp: i64) -> Result<Asked, Error> {
    match timestamp {
        EARLIEST | EARLIEST_LOCAL => Ok(Asked::Lookup(OffsetSpec::Earliest)),
        LATEST => Ok(Asked::Lookup(OffsetSpec::Latest)),
        MAX_TIMESTAMP => Ok(Asked::Lookup(OffsetSpec::MaxTimestamp)),
        LATEST_TIERED => Ok(Asked::NoTiered),
        t if t >= 0 => Ok(Asked::Lookup(OffsetSpec::Timestamp(t))),
        other => Err(Error::InvalidRequest(format!(
            "timestamp {other} is not a time, nor -1 (latest), -2 (earliest), -3 (max timestamp), -4 (earliest local) or -5 (latest tiered)"
        ))),
    }
}

pub async fn handle(
    shard: &Rc<Shard>,
    ctx: &RequestContext,
    version: i16,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let mut asked: Vec<(usize, usize, Result<bool, Error>)> = Vec::new();
    let mut items = Vec::new();
    for (t, topic) in request.topics.iter().enumerate() {
        for (p, part) in topic.partitions.iter().enumerate() {
            let found = match (u32::try_from(part.partition_index), spec(part.timestamp)) {
                (Ok(index), Ok(Asked::Lookup(spec))) => {
                    items.push((TopicPartition::new(topic.name.0.to_string(), index), spec));
                    Ok(true)
                }
                (Ok(_), Ok(Asked::NoTiered)) => Ok(false),
                (Err(_), _) => Err(Error::UnknownPartition),
                (_, Err(error)) => Err(error),
            };
            asked.push((t, p, found));
        }
    }
    let mut answers = list_offsets(shard, ctx, items).await.into_iter();
    let mut response = ListOffsetsResponse::default();
    response.topics = request
        .topics
        .iter()
        .map(|topic| {
            let mut answer = ListOffsetsTopicResponse::default();
            answer.name = topic.name.clone();
            answer
        })
        .collect();
    for (t, p, found) in asked {
        let part = &request.topics[t].partitions[p];
        let outcome: Result<ListedOffset, Error> = found.and_then(|looked_up| match looked_up {
            true => answers.next().expect("one answer per partition listed"),
            false => Ok(ListedOffset { offset: -1, timestamp: -1, leader_epoch: -1 }),
        });
        let mut answer = ListOffsetsPartitionResponse::default();
        answer.partition_index = part.partition_index;
        match outcome {
            Ok(listed) => {
                answer.offset = listed.offset;
                answer.timestamp = listed.timestamp;
                if version >= 4 {
                    answer.leader_epoch = listed.leader_epoch;
                }
            }
            Err(error) => {
                shard.metrics.error(ctx.listener, Operation::ListOffsets);
                answer.error_code = kafka_error(&error).code();
                answer.offset = -1;
                answer.timestamp = -1;
            }
        }
        response.topics[t].partitions.push(answer);
    }
    response
}

/// OffsetForLeaderEpoch (KIP-101, KIP-279, KIP-320): where the epoch asked for ends,
/// from the partition's leader epochs: the largest epoch at or below it and the offset
/// the next one starts at (the log end for the latest); (-1, -1) when every epoch is
/// later. A client that claims a current epoch other than the partition's is told
/// FENCED_LEADER_EPOCH (older) or UNKNOWN_LEADER_EPOCH (newer), as Kafka tells it.
pub async fn leader_epochs(
    kafka: &super::Kafka,
    ctx: &RequestContext,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let shard = &kafka.shard;
    let mut items = Vec::new();
    let mut checks = Vec::new();
    for topic in &request.topics {
        for part in &topic.partitions {
            let check = match u32::try_from(part.partition) {
                Ok(index) => {
                    let name = topic.topic.0.to_string();
                    let fenced = super::brokers::check_epoch(kafka, &name, index, part.current_leader_epoch);
                    if fenced.is_ok() {
                        items.push((TopicPartition::new(name, index), OffsetSpec::EpochEnd(part.leader_epoch)));
                    }
                    Some(fenced)
                }
                Err(_) => None,
            };
            checks.push(check);
        }
    }
    let mut ends = list_offsets(shard, ctx, items).await.into_iter();
    let mut checks = checks.into_iter();
    let mut response = OffsetForLeaderEpochResponse::default();
    response.topics = request
        .topics
        .iter()
        .map(|topic| {
            let mut out = OffsetForLeaderTopicResult::default();
            out.topic = topic.topic.clone();
            out.partitions = topic
                .partitions
                .iter()
                .map(|part| {
                    let mut answer = EpochEndOffset::default();
                    answer.partition = part.partition;
                    answer.leader_epoch = -1;
                    answer.end_offset = -1;
                    match checks.next().flatten() {
                        None => answer.error_code = ResponseError::UnknownTopicOrPartition.code(),
                        Some(Err(error)) => answer.error_code = kafka_error(&error).code(),
                        Some(Ok(())) => match ends.next() {
                            None => answer.error_code = ResponseError::UnknownTopicOrPartition.code(),
                            Some(Err(error)) => answer.error_code = kafka_error(&error).code(),
                            Some(Ok(end)) => {
                                answer.leader_epoch = end.leader_epoch;
                                answer.end_offset = end.offset;
                            }
                        },
                    }
                    if answer.error_code != 0 {
                        shard.metrics.error(ctx.listener, Operation::ListOffsets);
                    }
                    answer
                })
                .collect();
            out
        })
        .collect();
    response
}
