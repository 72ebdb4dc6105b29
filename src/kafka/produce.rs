//! Produce (v3 to v12): the request's layout read by hand, so that each partition's
//! record batches are split off the receive buffer without a copy and handed to the
//! service layer as the native listener hands them; the answer encoded with the crate
//! once every partition has met `acks`.
//!
//! acks 0, 1 and -1 are the service's none, leader and durable: -1 (`all`) waits for
//! the topic's fsync policy, which on one broker is every replica there is.

use super::errors::{client_message, kafka_error};
use super::metadata::auto_create;
use super::wire::{Reader, WireError};
use super::{respond, Kafka};
use crate::net::{ConnectionState, RequestSlot};
use crate::partition::{Acks, TopicPartition};
use crate::service::produce::{produce, Produced};
use crate::service::{Error, Operation, RequestContext};
use bytes::{Buf, BytesMut};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::ops::Range;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Where one partition's records lie in the request body.
#[derive(Debug)]
pub struct PartitionLayout {
    pub partition: i32,
    /// `None` when the client sent null records.
    pub records: Option<Range<usize>>,
}

/// A Produce request's fields, and where its record batches lie.
#[derive(Debug)]
pub struct ProduceLayout {
    pub transactional_id: Option<String>,
    pub acks: i16,
    pub timeout_ms: i32,
    pub topics: Vec<(String, Vec<PartitionLayout>)>,
}

impl ProduceLayout {
    /// Reads the layout of a Produce body of `version` (3 to 12; flexible from 9).
    /// Counts are checked against the bytes left before anything is sized from them.
    pub fn decode(body: &[u8], version: i16) -> Result<ProduceLayout, WireError> {
        let flexible = version >= 9;
        let mut reader = Reader::new(body);
        let transactional_id = reader.string(flexible, "transactional_id")?.map(str::to_owned);
        let acks = reader.i16("acks")?;
        let timeout_ms = reader.i32("timeout_ms")?;
        // A topic is at least a name length and a partition count.
        let topic_count = reader.count(flexible, if flexible { 2 } else { 6 }, "topic_data")?.unwrap_or(0);
        let mut topics = Vec::with_capacity(topic_count);
        for _ in 0..topic_count {
            let name = reader.string(flexible, "topic name")?.unwrap_or_default().to_owned();
            // A partition is at least an index and a records length.
            let count = reader.count(flexible, if flexible { 5 } else { 8 }, "partition_data")?.unwrap_or(0);
            let mut partitions = Vec::with_capacity(count);
            for _ in 0..count {
                let partition = reader.i32("partition index")?;
                let records = reader.bytes_range(flexible, "records")?;
                if flexible {
                    reader.skip_tagged_fields("partition tagged fields")?;
                }
                partitions.push(PartitionLayout { partition, records });
            }
            if flexible {
                reader.skip_tagged_fields("topic tagged fields")?;
            }
            topics.push((name, partitions));
        }
        if flexible {
            reader.skip_tagged_fields("request tagged fields")?;
        }
        Ok(ProduceLayout { transactional_id, acks, timeout_ms, topics })
    }
}

fn acks(value: i16) -> Option<Acks> {
    match value {
        0 => Some(Acks::None),
        1 => Some(Acks::Leader),
        -1 => Some(Acks::Durable),
        _ => None,
    }
}

fn answer(version: i16, index: i32, outcome: Result<Produced, Error>) -> PartitionProduceResponse {
    let mut response = PartitionProduceResponse::default();
    response.index = index;
    response.log_start_offset = -1;
    match outcome {
        Ok(produced) => {
            response.base_offset = produced.base_offset;
            response.log_append_time_ms = produced.log_append_time_ms;
        }
        Err(error) => {
            response.error_code = kafka_error(&error).code();
            if version >= 8 {
                response.error_message = client_message(&error).map(StrBytes::from_string);
            }
            response.base_offset = -1;
            response.log_append_time_ms = -1;
        }
    }
    response
}

fn response(
    version: i16,
    shape: Vec<(String, Vec<i32>)>,
    mut outcomes: impl Iterator<Item = Result<Produced, Error>>,
) -> ProduceResponse {
    let mut response = ProduceResponse::default();
    response.responses = shape
        .into_iter()
        .map(|(name, partitions)| {
            let mut topic = TopicProduceResponse::default();
            topic.name = TopicName(StrBytes::from_string(name));
            topic.partition_responses = partitions
                .into_iter()
                .map(|index| answer(version, index, outcomes.next().expect("one outcome per partition")))
                .collect();
            topic
        })
        .collect();
    response
}

/// Handles a Produce request read by a connection on this shard: `layout` says where
/// each partition's batches lie in `body`. Returns once every batch is sequenced.
#[allow(clippy::too_many_arguments)]
pub async fn handle(
    kafka: &Kafka,
    ctx: RequestContext,
    state: &Rc<ConnectionState>,
    header: (i32, i16),
    slot: RequestSlot,
    layout: ProduceLayout,
    mut body: BytesMut,
) {
    let shard = &kafka.shard;
    let (correlation, version) = header;
    let shape: Vec<(String, Vec<i32>)> =
        layout.topics.iter().map(|(name, parts)| (name.clone(), parts.iter().map(|p| p.partition).collect())).collect();
    let Some(acks) = acks(layout.acks) else {
        shard.metrics.error(ctx.listener, Operation::Produce);
        let refused = std::iter::repeat_with(|| Err(Error::InvalidAcks));
        let answer = response(version, shape, refused);
        return respond(state, slot, ApiKey::Produce, version, correlation, &answer);
    };
    let deadline = (layout.timeout_ms > 0).then(|| Instant::now() + Duration::from_millis(layout.timeout_ms as u64));
    let ctx = RequestContext { deadline, ..ctx };
    let started = Instant::now();
    if shard.config.kafka.auto_create_topics {
        let state = shard.metadata();
        let mut missing: Vec<String> = layout
            .topics
            .iter()
            .map(|(name, _)| name.clone())
            .filter(|name| !state.topics.contains_key(name))
            .filter(|name| crate::service::authorize::may_create_topic(shard, &ctx, name))
            .collect();
        missing.dedup();
        if !missing.is_empty() {
            auto_create(kafka, &ctx, missing).await;
        }
    }
    // Each partition's batches split off the body, in body order; a partition
    // whose records cannot be appended at all is answered without the service.
    let mut outcomes: Vec<Option<Result<Produced, Error>>> = Vec::new();
    let mut items = Vec::new();
    let mut consumed = 0;
    for (name, partitions) in layout.topics {
        for part in partitions {
            let (Ok(index), Some(records)) = (u32::try_from(part.partition), part.records) else {
                outcomes.push(Some(Err(if part.partition < 0 {
                    Error::UnknownPartition
                } else {
                    Error::InvalidRequest("null records".into())
                })));
                continue;
            };
            body.advance(records.start - consumed);
            let batches = body.split_to(records.len());
            consumed = records.end;
            items.push((TopicPartition::new(name.clone(), index), batches));
            outcomes.push(None);
        }
    }
    // The producer's quotas (bytes, and the shard's time on the appends): told in the
    // answer, and the connection rests (KIP-219).
    let bytes: u64 = items.iter().map(|(_, batches)| batches.len() as u64).sum();
    let bytes_throttle =
        crate::service::quotas::record(shard, &ctx, crate::metadata::quota::QuotaKey::ProducerByteRate, bytes);
    let (pending, spent) = crate::service::quotas::timed(produce(shard, &ctx, acks, items)).await;
    let throttle = bytes_throttle.max(crate::service::quotas::record_time(shard, &ctx, spent));
    state.mute_for(throttle);
    if acks == Acks::None {
        shard.metrics.produce_latency.observe(started.elapsed());
        state.finish_request(slot);
        return;
    }
    let (state, metrics, listener) = (state.clone(), shard.metrics.clone(), ctx.listener);
    glommio::spawn_local(async move {
        let mut settled = pending.settle().await.into_iter();
        let outcomes = outcomes.into_iter().map(|outcome| {
            let outcome = outcome.unwrap_or_else(|| settled.next().expect("one answer per partition produced"));
            if outcome.is_err() {
                metrics.error(listener, Operation::Produce);
            }
            outcome
        });
        let mut answer = response(version, shape, outcomes);
        answer.throttle_time_ms = super::throttle_ms(throttle);
        metrics.produce_latency.observe(started.elapsed());
        respond(&state, slot, ApiKey::Produce, version, correlation, &answer);
    })
    .detach();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::wire::Writer;

    fn body(flexible: bool) -> Vec<u8> {
        let mut out = Vec::new();
        if flexible {
            out.put_uvarint(0); // null transactional id
        } else {
            out.put_i16(-1);
        }
        out.put_i16(-1);
        out.put_i32(5000);
        out.put_length(1, flexible);
        out.put_string("t", flexible);
        out.put_length(2, flexible);
        for (index, records) in [(0, &b"abc"[..]), (3, &b"de"[..])] {
            out.put_i32(index);
            out.put_length(records.len(), flexible);
            out.extend_from_slice(records);
            if flexible {
                out.put_uvarint(0);
            }
        }
        if flexible {
            out.put_uvarint(0);
            out.put_uvarint(0);
        }
        out
    }

    #[test]
    fn the_layout_locates_each_partitions_records_in_both_encodings() {
        for (version, flexible) in [(8, false), (9, true)] {
            let bytes = body(flexible);
            let layout = ProduceLayout::decode(&bytes, version).unwrap();
            assert_eq!((layout.acks, layout.timeout_ms, layout.transactional_id), (-1, 5000, None));
            let (name, parts) = &layout.topics[0];
            assert_eq!(name, "t");
            assert_eq!(&bytes[parts[0].records.clone().unwrap()], b"abc");
            assert_eq!(&bytes[parts[1].records.clone().unwrap()], b"de");
            assert_eq!(parts[1].partition, 3);
        }
    }

    #[test]
    fn answers_encode_at_every_version_served() {
        use kafka_protocol::protocol::Encodable;
        for version in 3..=12 {
            let shape = vec![("t".to_string(), vec![0, 1])];
            let produced = Produced { base_offset: 5, log_append_time_ms: -1 };
            let outcomes = vec![Ok(produced), Err(Error::InvalidAcks)].into_iter();
            let mut out = Vec::new();
            response(version, shape, outcomes).encode(&mut out, version).unwrap_or_else(|e| panic!("v{version}: {e}"));
        }
    }

    #[test]
    fn truncated_and_overcounted_layouts_are_refused() {
        let bytes = body(false);
        for cut in 0..bytes.len() {
            assert!(ProduceLayout::decode(&bytes[..cut], 8).is_err(), "cut at {cut}");
        }
        let mut huge = Vec::new();
        huge.put_i16(-1);
        huge.put_i16(1);
        huge.put_i32(0);
        huge.put_i32(i32::MAX);
        assert!(ProduceLayout::decode(&huge, 8).unwrap_err().0.contains("count"));
    }
}
