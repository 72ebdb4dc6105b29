//! Fetch: read stored batches from each partition's owning shard, long-polling until
//! `min_bytes` are there or `max_wait_ms` passes, and answer with the stored bytes
//! as pieces of the response (no re-encoding, no copy on the owning shard).
//!
//! A fetch whose partitions live on several shards runs one read per shard at once;
//! the first shard to find data cancels the others' waits, so the response goes out
//! as soon as any data is there, as a fetch on one shard would.

use super::errors::storage_code;
use super::out::Piece;
use crate::shard::{FetchItem, FetchItemResult, FetchWait, OwnerError, Shard, ShardMessage};
use crate::storage::Chunk;
use futures_channel::oneshot;
use std::collections::BTreeMap;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};
use strand_protocol::native::codec::Wire;
use strand_protocol::native::messages::*;
use strand_protocol::native::{ApiKey, ErrorCode, FrameHeader, API_VERSION_MAX, HEADER_BYTES};

/// The longest a fetch may wait, whatever it asks: bounds how long a request holds a
/// task and its connection's in-flight slot.
const MAX_WAIT_MS_MAX: u32 = 300_000;

/// The most one fetch returns, whatever it asks (Kafka's broker-side
/// `fetch.max.bytes` is 55 MiB). A fetch takes this much (or its `max_bytes`, if less)
/// of its connection's response budget while it runs.
pub const FETCH_BYTES_MAX: u32 = 64 << 20;

/// Bytes of response budget a fetch takes.
pub fn response_reservation(request: &FetchRequest) -> usize {
    request.max_bytes.min(FETCH_BYTES_MAX) as usize
}

/// What a fetch read from one partition.
pub struct Fetched {
    pub slot: usize,
    pub error: ErrorCode,
    pub high_watermark: u64,
    pub log_start_offset: u64,
    /// The offset after the last batch returned.
    pub next_offset: u64,
    pub chunks: Vec<Chunk>,
    pub bytes: usize,
}

impl Fetched {
    fn empty(slot: usize, error: ErrorCode) -> Fetched {
        Fetched { slot, error, high_watermark: 0, log_start_offset: 0, next_offset: 0, chunks: Vec::new(), bytes: 0 }
    }
}

/// Reads `items` from this shard's logs, waiting as `wait` allows; `cancel` (from a
/// fetch spanning shards) ends the wait early.
pub async fn fetch_local(
    shard: &Shard,
    wait: FetchWait,
    items: &[FetchItem],
    mut cancel: Option<oneshot::Receiver<()>>,
) -> Vec<Fetched> {
    let max_wait = Duration::from_millis(u64::from(wait.max_wait_ms.min(MAX_WAIT_MS_MAX)));
    let deadline = Instant::now() + max_wait;
    let mut cancelled = false;
    loop {
        let fetched = read_all(shard, wait.max_bytes, items).await;
        let bytes: usize = fetched.iter().map(|f| f.bytes).sum();
        let errored = fetched.iter().any(|f| f.error != ErrorCode::None);
        let now = Instant::now();
        if cancelled || bytes >= wait.min_bytes as usize || errored || now >= deadline {
            for (item, got) in items.iter().zip(&fetched) {
                if got.error != ErrorCode::None {
                    shard.metrics.error(strand_protocol::native::ApiKey::Fetch);
                } else if got.bytes > 0 {
                    shard.metrics.fetched(got.bytes as u64, got.next_offset.saturating_sub(item.offset));
                }
            }
            return fetched;
        }
        let cancel_index = if cancel.is_some() { Some(1) } else { None };
        let mut waits: Vec<Pin<Box<dyn Future<Output = ()> + '_>>> = Vec::with_capacity(items.len() + 2);
        waits.push(Box::pin(glommio::timer::sleep(deadline - now)));
        if let Some(cancel) = cancel.as_mut() {
            waits.push(Box::pin(async move {
                let _ = cancel.await;
            }));
        }
        for (item, got) in items.iter().zip(&fetched) {
            if let Some(log) = shard.log(&item.topic, item.partition) {
                let next = got.next_offset.max(item.offset);
                waits.push(Box::pin(async move { log.wait_visible(next).await }));
            }
        }
        let fired = any_of(&mut waits).await;
        drop(waits);
        if Some(fired) == cancel_index {
            cancelled = true;
            cancel = None;
        }
    }
}

/// Resolves with the index of the first of `futures` to complete.
async fn any_of(futures: &mut [Pin<Box<dyn Future<Output = ()> + '_>>]) -> usize {
    poll_fn(|cx| {
        for (index, future) in futures.iter_mut().enumerate() {
            if future.as_mut().poll(cx).is_ready() {
                return Poll::Ready(index);
            }
        }
        Poll::Pending
    })
    .await
}

/// One read of every item, sharing `max_bytes` among them in order.
async fn read_all(shard: &Shard, max_bytes: u32, items: &[FetchItem]) -> Vec<Fetched> {
    let mut remaining = max_bytes as usize;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Some(log) = shard.log(&item.topic, item.partition) else {
            out.push(Fetched::empty(item.slot, ErrorCode::NotReady));
            continue;
        };
        let offsets = log.offsets();
        let mut fetched = Fetched {
            slot: item.slot,
            error: ErrorCode::None,
            high_watermark: offsets.high_watermark,
            log_start_offset: offsets.start,
            next_offset: item.offset,
            chunks: Vec::new(),
            bytes: 0,
        };
        if remaining > 0 {
            // A read returns at least one whole batch even past the limit, so a batch
            // larger than max_bytes never blocks a consumer.
            let limit = (item.max_bytes as usize).min(remaining).max(1);
            match log.read(item.offset, limit).await {
                Ok(batches) => {
                    remaining = remaining.saturating_sub(batches.bytes);
                    fetched.high_watermark = batches.high_watermark;
                    fetched.log_start_offset = batches.start_offset;
                    fetched.next_offset = batches.next_offset;
                    fetched.bytes = batches.bytes;
                    fetched.chunks = batches.chunks;
                }
                Err(error) => fetched.error = storage_code(&error),
            }
        }
        out.push(fetched);
    }
    out
}

/// Results for another shard: cached batches are shared, disk reads copied once
/// (a direct-read buffer belongs to the shard that read it).
pub fn into_sendable(fetched: Vec<Fetched>) -> Vec<FetchItemResult> {
    fetched
        .into_iter()
        .map(|f| FetchItemResult {
            slot: f.slot,
            error: f.error,
            high_watermark: f.high_watermark,
            log_start_offset: f.log_start_offset,
            chunks: f
                .chunks
                .into_iter()
                .map(|chunk| match chunk {
                    Chunk::Cached(bytes) => bytes,
                    Chunk::Disk(read) => bytes::Bytes::copy_from_slice(&read),
                })
                .collect(),
        })
        .collect()
}

fn from_sendable(results: Vec<FetchItemResult>) -> Vec<Fetched> {
    results
        .into_iter()
        .map(|r| {
            let bytes = r.chunks.iter().map(|c| c.len()).sum();
            Fetched {
                slot: r.slot,
                error: r.error,
                high_watermark: r.high_watermark,
                log_start_offset: r.log_start_offset,
                next_offset: 0,
                chunks: r.chunks.into_iter().map(Chunk::Cached).collect(),
                bytes,
            }
        })
        .collect()
}

/// Handles a Fetch request; returns the response as pieces.
pub async fn handle(shard: &Rc<Shard>, correlation: u32, request: FetchRequest) -> Vec<Piece> {
    let max_bytes = request.max_bytes.min(FETCH_BYTES_MAX);
    let wait = FetchWait { max_wait_ms: request.max_wait_ms, min_bytes: request.min_bytes, max_bytes };
    let mut slots = Vec::new();
    let mut results: Vec<Option<Fetched>> = Vec::new();
    let mut groups: BTreeMap<u32, Vec<FetchItem>> = BTreeMap::new();
    for topic in &request.topics {
        for part in &topic.partitions {
            let slot = slots.len();
            slots.push((topic.name.as_str(), part.partition));
            let item = FetchItem {
                slot,
                topic: topic.name.clone(),
                partition: part.partition,
                offset: part.offset,
                max_bytes: part.max_bytes,
            };
            match shard.owner(&topic.name, part.partition) {
                Ok(owner) => {
                    groups.entry(owner).or_default().push(item);
                    results.push(None);
                }
                Err(OwnerError::UnknownTopic) => results.push(Some(Fetched::empty(slot, ErrorCode::UnknownTopic))),
                Err(OwnerError::UnknownPartition) => {
                    results.push(Some(Fetched::empty(slot, ErrorCode::UnknownPartition)))
                }
            }
        }
    }
    for fetched in fetch_groups(shard, wait, groups).await {
        let slot = fetched.slot;
        results[slot] = Some(fetched);
    }
    encode(&request, correlation, results)
}

/// Runs one read per owning shard at once; the first to return data cancels the rest.
async fn fetch_groups(shard: &Rc<Shard>, wait: FetchWait, groups: BTreeMap<u32, Vec<FetchItem>>) -> Vec<Fetched> {
    if groups.len() == 1 {
        if let Some(items) = groups.get(&shard.id) {
            return fetch_local(shard, wait, items, None).await;
        }
    }
    let mut cancels = Vec::with_capacity(groups.len());
    let mut pending: Vec<Pin<Box<dyn Future<Output = Vec<Fetched>> + '_>>> = Vec::with_capacity(groups.len());
    for (owner, items) in groups {
        let (cancel_tx, cancel_rx) = oneshot::channel();
        cancels.push(cancel_tx);
        if owner == shard.id {
            pending.push(Box::pin(async move { fetch_local(shard, wait, &items, Some(cancel_rx)).await }));
        } else {
            let slots: Vec<usize> = items.iter().map(|item| item.slot).collect();
            let (reply, receiver) = oneshot::channel();
            shard.forward(owner, ShardMessage::Fetch { wait, items, cancel: cancel_rx, reply }).await;
            pending.push(Box::pin(async move {
                match receiver.await {
                    Ok(results) => from_sendable(results),
                    Err(_) => slots.into_iter().map(|slot| Fetched::empty(slot, ErrorCode::NotReady)).collect(),
                }
            }));
        }
    }
    let mut done: Vec<Option<Vec<Fetched>>> = (0..pending.len()).map(|_| None).collect();
    poll_fn(|cx| {
        for (index, future) in pending.iter_mut().enumerate() {
            if done[index].is_some() {
                continue;
            }
            if let Poll::Ready(fetched) = future.as_mut().poll(cx) {
                if fetched.iter().any(|f| f.bytes > 0 || f.error != ErrorCode::None) {
                    for cancel in cancels.drain(..) {
                        let _ = cancel.send(());
                    }
                }
                done[index] = Some(fetched);
            }
        }
        if done.iter().all(Option::is_some) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    done.into_iter().flatten().flatten().collect()
}

/// Encodes the response: fields encoded once into owned pieces, stored batches as
/// their own pieces between them.
fn encode(request: &FetchRequest, correlation: u32, mut results: Vec<Option<Fetched>>) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut head = vec![0u8; HEADER_BYTES];
    let mut payload_bytes = 0usize;
    (request.topics.len() as u32).encode(&mut head);
    let mut slot = 0;
    for topic in &request.topics {
        topic.name.encode(&mut head);
        (topic.partitions.len() as u32).encode(&mut head);
        for part in &topic.partitions {
            let fetched = results[slot].take().unwrap_or_else(|| Fetched::empty(slot, ErrorCode::Internal));
            slot += 1;
            part.partition.encode(&mut head);
            fetched.error.encode(&mut head);
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
