//! DeleteRecords and DescribeProducers: a partition's start moved forward, and the
//! idempotent producers it remembers, each from the shard that owns the partition.

use super::errors::{client_message, kafka_error};
use super::Kafka;
use crate::partition::TopicPartition;
use crate::service::records::{self, PartitionAnswer, PartitionOp};
use crate::service::{Error, Operation, RequestContext};
use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::describe_producers_response::{PartitionResponse, ProducerState, TopicResponse};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

/// Kafka's "up to the high watermark" offset in DeleteRecords.
const HIGH_WATERMARK: i64 = -1;

/// DeleteRecords: each partition starts at the offset asked (-1: its high watermark)
/// and answers its new start (the low watermark). An offset past the high watermark,
/// or below -1, is OFFSET_OUT_OF_RANGE; the records of `__consumer_offsets` cannot be
/// deleted (INVALID_TOPIC_EXCEPTION).
pub async fn delete_records(
    kafka: &Kafka,
    ctx: &RequestContext,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let mut asked: Vec<Result<(), Error>> = Vec::new();
    let mut items = Vec::new();
    for topic in &request.topics {
        for part in &topic.partitions {
            let op = match part.offset {
                HIGH_WATERMARK => Ok(PartitionOp::DeleteBefore(None)),
                offset if offset >= 0 => Ok(PartitionOp::DeleteBefore(Some(offset as u64))),
                offset => Err(Error::OffsetOutOfRange { offset: offset as u64, end: 0 }),
            };
            let found = match (u32::try_from(part.partition_index), op) {
                (Ok(index), Ok(op)) => {
                    items.push((TopicPartition::new(topic.name.0.to_string(), index), op));
                    Ok(())
                }
                (Err(_), _) => Err(Error::UnknownPartition),
                (_, Err(error)) => Err(error),
            };
            asked.push(found);
        }
    }
    let mut answers = records::run(&kafka.shard, ctx, items).await.into_iter();
    let mut asked = asked.into_iter();
    let mut response = DeleteRecordsResponse::default();
    for topic in &request.topics {
        let mut out = DeleteRecordsTopicResult::default();
        out.name = topic.name.clone();
        for part in &topic.partitions {
            let outcome = asked.next().expect("one per partition").and_then(|()| {
                answers.next().expect("one answer per partition asked").and_then(|answer| match answer {
                    PartitionAnswer::Start(start) => Ok(start),
                    PartitionAnswer::Producers(_) => Err(Error::NotReady),
                })
            });
            let mut result = DeleteRecordsPartitionResult::default();
            result.partition_index = part.partition_index;
            match outcome {
                Ok(start) => result.low_watermark = start as i64,
                Err(error) => {
                    kafka.shard.metrics.error(ctx.listener, Operation::DeleteRecords);
                    result.low_watermark = -1;
                    result.error_code = kafka_error(&error).code();
                }
            }
            out.partitions.push(result);
        }
        response.topics.push(out);
    }
    response
}

/// DescribeProducers: per partition, the idempotent producers whose batches it
/// remembers, with their epoch, last sequence and last timestamp (no transactions:
/// coordinator epoch and transaction start are -1).
pub async fn describe_producers(
    kafka: &Kafka,
    ctx: &RequestContext,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let mut items = Vec::new();
    let mut asked = Vec::new();
    for topic in &request.topics {
        for &index in &topic.partition_indexes {
            let found = u32::try_from(index).map_err(|_| Error::UnknownPartition);
            if let Ok(index) = found {
                items.push((TopicPartition::new(topic.name.0.to_string(), index), PartitionOp::DescribeProducers));
            }
            asked.push(found.map(|_| ()));
        }
    }
    let mut answers = records::run(&kafka.shard, ctx, items).await.into_iter();
    let mut asked = asked.into_iter();
    let mut response = DescribeProducersResponse::default();
    for topic in &request.topics {
        let mut out = TopicResponse::default();
        out.name = topic.name.clone();
        for &index in &topic.partition_indexes {
            let outcome = asked.next().expect("one per partition").and_then(|()| {
                answers.next().expect("one answer per partition asked").and_then(|answer| match answer {
                    PartitionAnswer::Producers(producers) => Ok(producers),
                    PartitionAnswer::Start(_) => Err(Error::NotReady),
                })
            });
            let mut partition = PartitionResponse::default();
            partition.partition_index = index;
            match outcome {
                Ok(producers) => {
                    partition.active_producers = producers
                        .into_iter()
                        .map(|state| {
                            let mut producer = ProducerState::default();
                            producer.producer_id = state.producer_id.into();
                            producer.producer_epoch = i32::from(state.epoch);
                            producer.last_sequence = state.last_sequence;
                            producer.last_timestamp = state.last_timestamp;
                            producer.coordinator_epoch = -1;
                            producer.current_txn_start_offset = -1;
                            producer
                        })
                        .collect();
                }
                Err(error) => {
                    kafka.shard.metrics.error(ctx.listener, Operation::DescribeProducers);
                    partition.error_code = kafka_error(&error).code();
                    partition.error_message = client_message(&error).map(StrBytes::from_string);
                }
            }
            out.partitions.push(partition);
        }
        response.topics.push(out);
    }
    response
}
