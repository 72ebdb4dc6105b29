//! Fetch: a native Fetch request handed to the service layer, and its answer written
//! as pieces: fields encoded once into owned pieces, the stored batches as pieces of
//! their own between them (no re-encoding, no copy of stored bytes).

use super::errors::code;
use crate::net::Piece;
use crate::partition::TopicPartition;
use crate::service::fetch::{fetch, FetchFrom, FetchWait, Fetched, FETCH_BYTES_MAX};
use crate::service::{Error, Operation, RequestContext};
use crate::shard::Shard;
use std::rc::Rc;
use strand_protocol::native::codec::Wire;
use strand_protocol::native::messages::*;
use strand_protocol::native::{ApiKey, ErrorCode, FrameHeader, API_VERSION_MAX, HEADER_BYTES};

/// Bytes of response budget a fetch takes.
pub fn response_reservation(request: &FetchRequest) -> usize {
    request.max_bytes.min(FETCH_BYTES_MAX) as usize
}

/// Handles a Fetch request; returns the response as pieces.
pub async fn handle(shard: &Rc<Shard>, ctx: &RequestContext, correlation: u32, request: FetchRequest) -> Vec<Piece> {
    let wait =
        FetchWait { max_wait_ms: request.max_wait_ms, min_bytes: request.min_bytes, max_bytes: request.max_bytes };
    let items = request
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(|part| {
                let tp = TopicPartition::new(topic.name.clone(), part.partition);
                (tp, FetchFrom { offset: part.offset, max_bytes: part.max_bytes })
            })
        })
        .collect();
    let answers = fetch(shard, ctx, wait, items).await;
    for answer in &answers {
        if answer.is_err() {
            shard.metrics.error(ctx.listener, Operation::Fetch);
        }
    }
    encode(&request, correlation, answers)
}

/// Encodes the response: fields encoded once into owned pieces, stored batches as
/// their own pieces between them.
fn encode(request: &FetchRequest, correlation: u32, answers: Vec<Result<Fetched, Error>>) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut head = vec![0u8; HEADER_BYTES];
    let mut payload_bytes = 0usize;
    let mut answers = answers.into_iter();
    (request.topics.len() as u32).encode(&mut head);
    for topic in &request.topics {
        topic.name.encode(&mut head);
        (topic.partitions.len() as u32).encode(&mut head);
        for part in &topic.partitions {
            part.partition.encode(&mut head);
            let fetched = match answers.next().expect("one answer per partition") {
                Ok(fetched) => fetched,
                Err(error) => {
                    // No high watermark, log start or bytes to tell.
                    code(&error).encode(&mut head);
                    0u64.encode(&mut head);
                    0u64.encode(&mut head);
                    0u32.encode(&mut head);
                    continue;
                }
            };
            ErrorCode::None.encode(&mut head);
            fetched.high_watermark.encode(&mut head);
            fetched.log_start_offset.encode(&mut head);
            (fetched.bytes as u32).encode(&mut head);
            if fetched.chunks.is_empty() {
                continue;
            }
            payload_bytes += head.len();
            pieces.push(Piece::Owned(std::mem::take(&mut head)));
            for chunk in fetched.chunks {
                payload_bytes += chunk.len();
                pieces.push(Piece::Stored(chunk));
            }
        }
    }
    payload_bytes += head.len();
    if !head.is_empty() {
        pieces.push(Piece::Owned(head));
    }
    let header =
        FrameHeader::new(ApiKey::Fetch as u16, API_VERSION_MAX, correlation, true, payload_bytes - HEADER_BYTES);
    match &mut pieces[0] {
        Piece::Owned(first) => first[..HEADER_BYTES].copy_from_slice(zerocopy::IntoBytes::as_bytes(&header)),
        Piece::Stored(_) => unreachable!("the first piece is always the owned header"),
    }
    pieces
}
