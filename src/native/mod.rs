//! The native protocol server (`protocol/SPEC.md`): accepting connections on a shard,
//! reading frames, routing each request to its handler, and serving what other shards
//! forward here.
//!
//! Budget, per shard core, against this machine's limits (loopback TCP 2.4 GB/s
//! between cores, direct write 1.6 GB/s, memcpy 6-10 GB/s): a produced byte is
//! received once (kernel copy), copied once into an owned batch (where the offset is
//! stamped), CRC-checked once, and copied once into the direct-I/O buffer: target
//! 75% of the lower of the network and disk limits. A fetched byte is sent straight
//! from the batch cache or the direct-read buffer: no copy in user space.
//!
//! Code map: `connection` (one client: read loop and bounds), `out` (responses and
//! the writer), `route` (request → handler), `produce`, `fetch`, `offsets`, `admin`
//! (topic changes through shard 0, DescribeTopicConfigs), `info` (ApiVersions,
//! Metadata).

mod admin;
mod connection;
mod errors;
mod fetch;
mod groups;
mod info;
mod offsets;
mod out;
mod produce;
mod route;

pub use offsets::handle as list_offsets;
pub use out::ReceiveBudget;

use crate::shard::{Shard, ShardMessage};
use glommio::net::TcpListener;
use std::future::Future;
use std::rc::Rc;

/// First and longest pause after a failed accept. An accept fails when the process
/// is out of descriptors (EMFILE) and keeps failing until some close: retrying at once
/// would spin the shard, so each failure in a row doubles the pause.
const ACCEPT_BACKOFF_MIN: std::time::Duration = std::time::Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(1);

/// Accepts connections on `listener` until the shard stops, each served by its own
/// task. Past `limits.connections_max` open connections, new ones are closed at once.
pub async fn accept_loop(shard: Rc<Shard>, listener: TcpListener) {
    let open = Rc::new(std::cell::Cell::new(0u64));
    let max = u64::from(shard.config.limits.connections_max);
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(error) => {
                if shard.warnings.accept_failed.allow() {
                    tracing::warn!(shard = shard.id, %error, pause_ms = backoff.as_millis() as u64, "accept failed");
                }
                glommio::timer::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        backoff = ACCEPT_BACKOFF_MIN;
        let full = open.get() >= max;
        if full || !shard.may_accept() {
            shard.stats.connections_refused.set(shard.stats.connections_refused.get() + 1);
            crate::metrics::ShardMetrics::count(&shard.metrics.connections_refused, 1);
            if shard.warnings.connections_refused.allow() {
                if full {
                    tracing::warn!(shard = shard.id, max, "refusing a connection: limits.connections_max reached");
                } else {
                    let (in_use, limit) = (shard.descriptors_in_use(), shard.descriptors_max);
                    tracing::warn!(shard = shard.id, in_use, limit, reserved = shard.config.limits.descriptors_reserved, "refusing a connection: the last descriptors are kept for the logs (limits.descriptors_reserved)");
                }
            }
            drop(stream);
            continue;
        }
        open.set(open.get() + 1);
        shard.stats.connections.set(shard.stats.connections.get() + 1);
        crate::metrics::ShardMetrics::set(&shard.metrics.connections, open.get());
        let (shard, open) = (shard.clone(), open.clone());
        glommio::spawn_local(async move {
            connection::serve(shard.clone(), stream).await;
            open.set(open.get() - 1);
            crate::metrics::ShardMetrics::set(&shard.metrics.connections, open.get());
        })
        .detach();
    }
}

/// Serves a request another shard forwarded here. Produce appends happen before this
/// returns (the mesh receiver handles messages one at a time, which keeps each
/// sender's appends in order); anything that waits is spawned.
pub async fn handle_forwarded(shard: &Rc<Shard>, message: ShardMessage) {
    shard.stats.forwards_in.set(shard.stats.forwards_in.get() + 1);
    crate::metrics::ShardMetrics::count(&shard.metrics.forwards_in, 1);
    match message {
        ShardMessage::Produce { acks, deadline, items, reply } => {
            let appending = produce::append_items(shard, items).await;
            glommio::spawn_local(async move {
                let results = produce::settle(appending, acks, deadline).await;
                let _ = reply.send(results);
            })
            .detach();
        }
        ShardMessage::Fetch { wait, items, cancel, reply } => {
            let shard = shard.clone();
            spawn_reply(reply, async move {
                let fetched = fetch::fetch_local(&shard, wait, &items, Some(cancel)).await;
                fetch::into_sendable(fetched)
            });
        }
        ShardMessage::ListOffsets { items, reply } => {
            let shard = shard.clone();
            spawn_reply(reply, async move { offsets::list_local(&shard, items).await });
        }
        ShardMessage::Admin { request, reply } => {
            let shard = shard.clone();
            spawn_reply(reply, async move { admin::handle(&shard, request).await });
        }
        ShardMessage::Group { request, reply } => {
            let shard = shard.clone();
            spawn_reply(reply, async move { shard.groups.handle(&shard, request).await });
        }
        ShardMessage::Apply { state, reply } => {
            let _ = reply.send(shard.apply(state).await);
        }
    }
}

/// Runs `work` as a task of its own and sends its result to `reply` (dropped
/// silently if the asking shard stopped waiting).
fn spawn_reply<T: Send + 'static>(reply: futures_channel::oneshot::Sender<T>, work: impl Future<Output = T> + 'static) {
    glommio::spawn_local(async move {
        let _ = reply.send(work.await);
    })
    .detach();
}
