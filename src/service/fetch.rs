//! Fetch: read stored batches from each partition's owning shard, long-polling until
//! `min_bytes` are there or `max_wait_ms` passes. The answer carries the stored bytes
//! as they are (`Chunk`s: cached batches or the direct-read buffer), for the listener
//! to send around its own encoded fields without re-encoding or copying them.
//!
//! A fetch whose partitions live on several shards runs one read per shard at once;
//! the first shard to find data cancels the others' waits, so the answer goes out as
//! soon as any data is there, as a fetch on one shard would.

use super::scatter::Slotted;
pub use super::types::{FetchAnswers, FetchFrom, FetchWait, SentFetched};
use super::{Error, RequestContext};
use crate::partition::TopicPartition;
use crate::shard::{Shard, ShardMessage};
use crate::storage::Chunk;
use bytes::Bytes;
use futures_channel::oneshot;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

/// The longest a fetch may wait, whatever it asks: bounds how long a request holds a
/// task and its connection's in-flight slot.
const MAX_WAIT_MS_MAX: u32 = 300_000;

/// The most one fetch returns, whatever it asks (Kafka's broker-side
/// `fetch.max.bytes` is 55 MiB). A listener holds this much (or the fetch's
/// `max_bytes`, if less) of its connection's response budget while the fetch runs.
pub const FETCH_BYTES_MAX: u32 = 64 << 20;

/// What a fetch read from one partition.
#[derive(Debug)]
pub struct Fetched {
    pub high_watermark: u64,
    pub log_start_offset: u64,
    /// The offset after the last batch returned (known on the owning shard only: 0
    /// once the answer crossed the mesh).
    pub next_offset: u64,
    pub chunks: Vec<Chunk>,
    pub bytes: usize,
}

/// Reads every partition of a fetch, waiting as `wait` allows; the answers in request
/// order.
pub async fn fetch(
    shard: &Rc<Shard>,
    ctx: &RequestContext,
    wait: FetchWait,
    items: Vec<(TopicPartition, FetchFrom)>,
) -> Vec<Result<Fetched, Error>> {
    let wait = FetchWait { max_bytes: wait.max_bytes.min(FETCH_BYTES_MAX), ..wait };
    let mut gate = super::authorize::TopicGate::new(shard, ctx, crate::metadata::acl::AclOperation::Read);
    let mut routed = super::scatter::route_checked(shard, items, |tp, _| gate.check(&tp.topic));
    let by_shard = std::mem::take(&mut routed.by_shard);
    for (slot, answer) in fetch_shards(shard, wait, by_shard).await {
        routed.answers.set(slot, answer);
    }
    routed.answers.into_answers()
}

/// Runs one read per owning shard at once; the first to return data cancels the rest.
async fn fetch_shards(
    shard: &Rc<Shard>,
    wait: FetchWait,
    by_shard: std::collections::BTreeMap<u32, Vec<Slotted<FetchFrom>>>,
) -> Vec<(usize, Result<Fetched, Error>)> {
    if by_shard.len() == 1 {
        if let Some(items) = by_shard.get(&shard.id) {
            return fetch_local(shard, wait, items, None).await;
        }
    }
    let mut cancels = Vec::with_capacity(by_shard.len());
    type Answers = Vec<(usize, Result<Fetched, Error>)>;
    let mut pending: Vec<Pin<Box<dyn Future<Output = Answers> + '_>>> = Vec::with_capacity(by_shard.len());
    for (owner, items) in by_shard {
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
                    Ok(answers) => answers.into_iter().map(|(slot, answer)| (slot, answer.map(received))).collect(),
                    Err(_) => slots.into_iter().map(|slot| (slot, Err(Error::NotReady))).collect(),
                }
            }));
        }
    }
    let mut done: Vec<Option<Answers>> = (0..pending.len()).map(|_| None).collect();
    poll_fn(|cx| {
        for (index, future) in pending.iter_mut().enumerate() {
            if done[index].is_some() {
                continue;
            }
            if let Poll::Ready(answers) = future.as_mut().poll(cx) {
                if answers.iter().any(|(_, answer)| answer.as_ref().map_or(true, |f| f.bytes > 0)) {
                    for cancel in cancels.drain(..) {
                        let _ = cancel.send(());
                    }
                }
                done[index] = Some(answers);
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

/// Reads `items` from this shard's partitions, waiting as `wait` allows; `cancel`
/// (from a fetch spanning shards) ends the wait early.
pub async fn fetch_local(
    shard: &Shard,
    wait: FetchWait,
    items: &[Slotted<FetchFrom>],
    mut cancel: Option<oneshot::Receiver<()>>,
) -> Vec<(usize, Result<Fetched, Error>)> {
    let max_wait = Duration::from_millis(u64::from(wait.max_wait_ms.min(MAX_WAIT_MS_MAX)));
    let deadline = Instant::now() + max_wait;
    let mut cancelled = false;
    loop {
        let fetched = read_all(shard, wait.max_bytes, items).await;
        let bytes: usize = fetched.iter().map(|(_, f)| f.as_ref().map_or(0, |f| f.bytes)).sum();
        let errored = fetched.iter().any(|(_, f)| f.is_err());
        let now = Instant::now();
        if cancelled || bytes >= wait.min_bytes as usize || errored || now >= deadline {
            for (item, (_, got)) in items.iter().zip(&fetched) {
                if let Ok(got) = got {
                    if got.bytes > 0 {
                        shard.metrics.fetched(got.bytes as u64, got.next_offset.saturating_sub(item.item.offset));
                    }
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
        for (item, (_, got)) in items.iter().zip(&fetched) {
            if let Some(partition) = shard.logs.get(&item.tp) {
                let next = got.as_ref().map_or(0, |f| f.next_offset).max(item.item.offset);
                waits.push(Box::pin(async move { partition.wait_visible(next).await }));
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
async fn read_all(shard: &Shard, max_bytes: u32, items: &[Slotted<FetchFrom>]) -> Vec<(usize, Result<Fetched, Error>)> {
    let mut remaining = max_bytes as usize;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Some(partition) = shard.logs.get(&item.tp) else {
            out.push((item.slot, Err(Error::NotReady)));
            continue;
        };
        let offsets = partition.offsets();
        let mut fetched = Fetched {
            high_watermark: offsets.high_watermark,
            log_start_offset: offsets.start,
            next_offset: item.item.offset,
            chunks: Vec::new(),
            bytes: 0,
        };
        if remaining > 0 {
            // A read returns at least one whole batch even past the limit, so a batch
            // larger than max_bytes never blocks a consumer.
            let limit = (item.item.max_bytes as usize).min(remaining).max(1);
            match partition.read(item.item.offset, limit).await {
                Ok(batches) => {
                    remaining = remaining.saturating_sub(batches.bytes);
                    fetched.high_watermark = batches.high_watermark;
                    fetched.log_start_offset = batches.start_offset;
                    fetched.next_offset = batches.next_offset;
                    fetched.bytes = batches.bytes;
                    fetched.chunks = batches.chunks;
                }
                Err(error) => {
                    out.push((item.slot, Err(Error::from(error))));
                    continue;
                }
            }
        }
        out.push((item.slot, Ok(fetched)));
    }
    out
}

/// Answers for another shard: cached batches are shared, disk reads copied once (a
/// direct-read buffer belongs to the shard that read it).
pub fn sendable(answers: Vec<(usize, Result<Fetched, Error>)>) -> FetchAnswers {
    answers
        .into_iter()
        .map(|(slot, answer)| {
            let sent = answer.map(|f| SentFetched {
                high_watermark: f.high_watermark,
                log_start_offset: f.log_start_offset,
                chunks: f
                    .chunks
                    .into_iter()
                    .map(|chunk| match chunk {
                        Chunk::Cached(bytes) => bytes,
                        Chunk::Disk(read) => Bytes::copy_from_slice(&read),
                    })
                    .collect(),
            });
            (slot, sent)
        })
        .collect()
}

fn received(sent: SentFetched) -> Fetched {
    let bytes = sent.chunks.iter().map(|c| c.len()).sum();
    Fetched {
        high_watermark: sent.high_watermark,
        log_start_offset: sent.log_start_offset,
        next_offset: 0,
        chunks: sent.chunks.into_iter().map(Chunk::Cached).collect(),
        bytes,
    }
}
