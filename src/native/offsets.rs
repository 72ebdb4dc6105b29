//! ListOffsets: the native message to and from the service's lookups.

use super::errors::code;
use crate::partition::TopicPartition;
use crate::service::offsets::{list_offsets, OffsetSpec};
use crate::service::{Error, RequestContext};
use crate::shard::Shard;
use std::rc::Rc;
use strand_protocol::native::messages::*;
use strand_protocol::native::{ErrorCode, Response};

/// Handles a ListOffsets request.
pub async fn handle(shard: &Rc<Shard>, ctx: &RequestContext, request: ListOffsetsRequest) -> (Response, usize) {
    let mut asked = Vec::new();
    let mut invalid = Vec::new();
    for topic in &request.topics {
        for part in &topic.partitions {
            let tp = TopicPartition::new(topic.name.clone(), part.partition);
            match part.spec {
                LIST_LATEST => asked.push((tp, OffsetSpec::Latest)),
                LIST_EARLIEST => asked.push((tp, OffsetSpec::Earliest)),
                timestamp if timestamp >= 0 => asked.push((tp, OffsetSpec::Timestamp(timestamp))),
                // Routed like the others (an unknown topic says so first), answered
                // as refused.
                _ => {
                    invalid.push(asked.len());
                    asked.push((tp, OffsetSpec::Latest));
                }
            }
        }
    }
    let mut answers = list_offsets(shard, ctx, asked).await;
    for slot in invalid {
        if answers[slot].is_ok() {
            answers[slot] = Err(Error::InvalidRequest("spec must be -1 (latest), -2 (earliest) or a timestamp".into()));
        }
    }
    let mut errors = 0;
    let mut answers = answers.into_iter();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| ListOffsetsTopicResponse {
            name: topic.name,
            partitions: topic
                .partitions
                .iter()
                .map(|part| match answers.next().expect("one answer per partition") {
                    Ok(listed) => ListOffsetsPartitionResponse {
                        partition: part.partition,
                        error: ErrorCode::None,
                        offset: listed.offset,
                        timestamp: listed.timestamp,
                    },
                    Err(error) => {
                        errors += 1;
                        ListOffsetsPartitionResponse {
                            partition: part.partition,
                            error: code(&error),
                            offset: -1,
                            timestamp: -1,
                        }
                    }
                })
                .collect(),
        })
        .collect();
    (Response::ListOffsets(ListOffsetsResponse { topics }), errors)
}
