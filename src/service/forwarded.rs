//! Serving what other shards forward here: the receiving end of the mesh. Produce
//! appends happen before `handle` returns (a shard's receiver handles messages one at
//! a time, which keeps each sender's appends in order); anything that waits runs as a
//! task of its own and answers through the message's reply channel.

use super::{admin, fetch, offsets, produce, producer_ids, records};
use crate::shard::{Shard, ShardMessage};
use std::future::Future;
use std::rc::Rc;

/// Serves one message another shard sent.
pub async fn handle(shard: &Rc<Shard>, message: ShardMessage) {
    crate::metrics::ShardMetrics::count(&shard.metrics.forwards_in, 1);
    match message {
        ShardMessage::Produce { acks, deadline, items, reply } => {
            let appending = produce::append_local(shard, items, acks).await;
            glommio::spawn_local(async move {
                let _ = reply.send(produce::settle_local(appending, acks, deadline).await);
            })
            .detach();
        }
        ShardMessage::Fetch { wait, items, cancel, reply } => {
            let shard = shard.clone();
            spawn_reply(
                reply,
                async move { fetch::sendable(fetch::fetch_local(&shard, wait, &items, Some(cancel)).await) },
            );
        }
        ShardMessage::ListOffsets { items, reply } => {
            let shard = shard.clone();
            spawn_reply(reply, async move { offsets::list_local(&shard, items).await });
        }
        ShardMessage::Partitions { items, reply } => {
            let shard = shard.clone();
            spawn_reply(reply, async move { records::run_local(&shard, items).await });
        }
        ShardMessage::Admin { request, reply } => {
            let shard = shard.clone();
            spawn_reply(reply, async move { admin::run_here(&shard, request).await });
        }
        ShardMessage::ProducerId { reply } => {
            let shard = shard.clone();
            spawn_reply(reply, async move { producer_ids::allocate_here(&shard).await });
        }
        ShardMessage::Group { request, reply } => {
            let shard = shard.clone();
            spawn_reply(reply, async move { shard.groups.handle(&shard, request).await });
        }
        ShardMessage::Apply { state, reply } => {
            let _ = reply.send(shard.apply(state).await);
        }
        ShardMessage::Propose { command, reply } => {
            let shard = shard.clone();
            spawn_reply(reply, async move { admin::propose(&shard, command).await });
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
