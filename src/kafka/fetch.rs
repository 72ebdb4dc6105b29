//! Fetch (v4 to v16): the request decoded by the crate, handed to the service layer
//! (long poll, `min_bytes`, `max_bytes`, per-partition `max_bytes`), and the answer
//! written by hand in pieces: each partition's fields encoded once into an owned
//! piece, its stored batches as pieces of their own (no re-encoding, no copy of
//! stored bytes). A fetch at an offset inside a batch returns that whole batch, as
//! Kafka does; the client skips the records before its offset.
//!
//! No fetch sessions (KIP-227): every answer carries session id 0, which tells the
//! client to send full fetches. No transactions yet: the last stable offset is the
//! high watermark and there are no aborted transactions.

use super::errors::kafka_error;
use super::wire::Writer;
use super::Kafka;
use crate::net::Piece;
use crate::partition::TopicPartition;
use crate::service::fetch::{fetch, FetchFrom, FetchWait, Fetched, FETCH_BYTES_MAX};
use crate::service::{Error, Operation, RequestContext};
use kafka_protocol::messages::{ApiKey, FetchRequest};
use kafka_protocol::ResponseError;

/// Bytes of response budget a fetch takes.
pub fn response_reservation(request: &FetchRequest) -> usize {
    (request.max_bytes.max(0) as u32).min(FETCH_BYTES_MAX) as usize
}

/// A partition asked for: its topic's name, unless its id (v13 and later) is unknown.
struct Asked {
    name: Option<String>,
    topic_id: uuid::Uuid,
    partitions: Vec<(i32, Result<FetchFrom, Error>)>,
}

/// Handles a Fetch request; returns the response as pieces, its size prefix first.
pub async fn handle(
    kafka: &Kafka,
    ctx: &RequestContext,
    version: i16,
    correlation: i32,
    request: FetchRequest,
) -> (Vec<Piece>, std::time::Duration) {
    let shard = &kafka.shard;
    let state = shard.metadata();
    let asked: Vec<Asked> = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = if version >= 13 {
                kafka.topic_by_id(&state, topic.topic_id).map(|meta| meta.name.clone())
            } else {
                Some(topic.topic.0.to_string())
            };
            let partitions = topic
                .partitions
                .into_iter()
                .map(|part| {
                    let from = match (u64::try_from(part.fetch_offset), u32::try_from(part.partition_max_bytes)) {
                        (Ok(offset), Ok(max_bytes)) => Ok(FetchFrom { offset, max_bytes }),
                        (Err(_), _) => Err(Error::OffsetOutOfRange { offset: 0, end: 0 }),
                        (_, Err(_)) => Err(Error::InvalidRequest("negative partition_max_bytes".into())),
                    };
                    // A client fetching at a stale leader epoch is fenced (KIP-320).
                    let epoch = match (&name, u32::try_from(part.partition)) {
                        (Some(name), Ok(index)) => {
                            super::brokers::check_epoch(kafka, name, index, part.current_leader_epoch)
                        }
                        _ => Ok(()),
                    };
                    (part.partition, epoch.and(from))
                })
                .collect();
            Asked { name, topic_id: topic.topic_id, partitions }
        })
        .collect();
    let mut items = Vec::new();
    for topic in &asked {
        let Some(name) = &topic.name else { continue };
        for (partition, from) in &topic.partitions {
            if let (Ok(from), Ok(index)) = (from, u32::try_from(*partition)) {
                items.push((TopicPartition::new(name.clone(), index), *from));
            }
        }
    }
    let wait = FetchWait {
        max_wait_ms: request.max_wait_ms.max(0) as u32,
        min_bytes: request.min_bytes.max(0) as u32,
        max_bytes: request.max_bytes.max(0) as u32,
    };
    let (answers, spent) = crate::service::quotas::timed(fetch(shard, ctx, wait, items)).await;
    let mut answers = answers.into_iter();
    let mut outcomes: Vec<Result<Fetched, ResponseError>> = Vec::new();
    for topic in &asked {
        for (partition, from) in &topic.partitions {
            let outcome = match (&topic.name, from, *partition >= 0) {
                (None, _, _) => Err(ResponseError::UnknownTopicId),
                (Some(_), Err(error), _) => Err(kafka_error(error)),
                (Some(_), Ok(_), false) => Err(ResponseError::UnknownTopicOrPartition),
                (Some(_), Ok(_), true) => {
                    answers.next().expect("one answer per partition fetched").map_err(|error| kafka_error(&error))
                }
            };
            if outcome.is_err() {
                shard.metrics.error(ctx.listener, Operation::Fetch);
            }
            outcomes.push(outcome);
        }
    }
    // The consumer's quotas (bytes, and the shard's time reading them): told in the
    // answer, and the connection rests (KIP-219).
    let bytes: u64 = outcomes.iter().filter_map(|o| o.as_ref().ok()).map(|f| f.bytes as u64).sum();
    let throttle =
        crate::service::quotas::record(shard, ctx, crate::metadata::quota::QuotaKey::ConsumerByteRate, bytes)
            .max(crate::service::quotas::record_time(shard, ctx, spent));
    (encode(version, correlation, &asked, outcomes, throttle), throttle)
}

/// Writes the response: fields into owned pieces, stored batches as their own pieces
/// between them; the 4-byte size prefix is filled in last.
fn encode(
    version: i16,
    correlation: i32,
    asked: &[Asked],
    outcomes: Vec<Result<Fetched, ResponseError>>,
    throttle: std::time::Duration,
) -> Vec<Piece> {
    let flexible = version >= 12;
    let mut pieces = Vec::new();
    let mut head: Vec<u8> = Vec::with_capacity(256);
    let mut total = 0usize;
    head.put_i32(0); // the size, filled in below
    head.put_i32(correlation);
    if ApiKey::Fetch.response_header_version(version) >= 1 {
        head.put_uvarint(0);
    }
    head.put_i32(super::throttle_ms(throttle)); // throttle_time_ms
    if version >= 7 {
        head.put_i16(0); // error_code
        head.put_i32(0); // session_id: no session
    }
    head.put_length(asked.len(), flexible);
    let mut outcomes = outcomes.into_iter();
    for topic in asked {
        if version >= 13 {
            head.extend_from_slice(topic.topic_id.as_bytes());
        } else {
            head.put_string(topic.name.as_deref().unwrap_or_default(), flexible);
        }
        head.put_length(topic.partitions.len(), flexible);
        for (partition, _) in &topic.partitions {
            head.put_i32(*partition);
            let outcome = outcomes.next().expect("one outcome per partition");
            let (error, high_watermark, log_start, fetched) = match outcome {
                Ok(fetched) => (0, fetched.high_watermark as i64, fetched.log_start_offset as i64, Some(fetched)),
                Err(error) => (error.code(), -1, -1, None),
            };
            head.put_i16(error);
            head.put_i64(high_watermark);
            head.put_i64(high_watermark); // last_stable_offset: no transactions
            if version >= 5 {
                head.put_i64(log_start);
            }
            // aborted_transactions: null
            if flexible {
                head.put_uvarint(0);
            } else {
                head.put_i32(-1);
            }
            if version >= 11 {
                head.put_i32(-1); // preferred_read_replica: none
            }
            let bytes = fetched.as_ref().map_or(0, |fetched| fetched.bytes);
            head.put_length(bytes, flexible);
            if let Some(fetched) = fetched.filter(|fetched| !fetched.chunks.is_empty()) {
                total += head.len();
                pieces.push(Piece::Owned(std::mem::take(&mut head)));
                for chunk in fetched.chunks {
                    total += chunk.len();
                    pieces.push(Piece::Stored(chunk));
                }
            }
            if flexible {
                head.put_uvarint(0); // partition tagged fields
            }
        }
        if flexible {
            head.put_uvarint(0); // topic tagged fields
        }
    }
    if flexible {
        head.put_uvarint(0); // response tagged fields
    }
    total += head.len();
    pieces.push(Piece::Owned(head));
    let size = (total - 4) as i32;
    match &mut pieces[0] {
        Piece::Owned(first) => first[..4].copy_from_slice(&size.to_be_bytes()),
        Piece::Stored(_) => unreachable!("the first piece is always the owned header"),
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Chunk;
    use bytes::{Buf, Bytes};
    use kafka_protocol::messages::FetchResponse;
    use kafka_protocol::protocol::Decodable;

    /// What the crate's own decoder reads back from the pieces, at every version served.
    #[test]
    fn the_pieces_decode_as_a_fetch_response_at_every_version() {
        let id = uuid::Uuid::from_bytes([7; 16]);
        for version in 4..=16 {
            let asked = vec![
                Asked {
                    name: Some("t".into()),
                    topic_id: id,
                    partitions: vec![(0, Ok(FetchFrom { offset: 0, max_bytes: 1 }))],
                },
                Asked { name: None, topic_id: id, partitions: vec![(2, Ok(FetchFrom { offset: 0, max_bytes: 1 }))] },
            ];
            let chunks =
                vec![Chunk::Cached(Bytes::from_static(b"batch-one")), Chunk::Cached(Bytes::from_static(b"-two"))];
            let fetched = Fetched { high_watermark: 9, log_start_offset: 1, next_offset: 9, chunks, bytes: 13 };
            let outcomes = vec![Ok(fetched), Err(ResponseError::UnknownTopicId)];
            let pieces = encode(version, 42, &asked, outcomes, std::time::Duration::ZERO);
            let mut bytes: Vec<u8> = Vec::new();
            for piece in &pieces {
                bytes.extend_from_slice(match piece {
                    Piece::Owned(owned) => owned,
                    Piece::Stored(chunk) => chunk,
                });
            }
            let mut buf = Bytes::from(bytes);
            assert_eq!(buf.get_i32() as usize, buf.len(), "v{version}: the size prefix");
            assert_eq!(buf.get_i32(), 42);
            if version >= 12 {
                assert_eq!(buf.get_u8(), 0, "v{version}: header tagged fields");
            }
            let response = FetchResponse::decode(&mut buf, version).unwrap();
            assert!(buf.is_empty(), "v{version}: {} bytes left over", buf.len());
            assert_eq!(response.session_id, 0);
            let first = &response.responses[0].partitions[0];
            assert_eq!((first.error_code, first.high_watermark), (0, 9));
            assert_eq!(first.records.as_deref(), Some(&b"batch-one-two"[..]));
            let second = &response.responses[1].partitions[0];
            assert_eq!((second.partition_index, second.error_code), (2, 100));
            if version >= 13 {
                assert_eq!(response.responses[0].topic_id, id);
            } else {
                assert_eq!(response.responses[0].topic.0.as_str(), "t");
            }
        }
    }
}
