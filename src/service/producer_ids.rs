//! Producer ids for the idempotent producer, the same for both protocols. Every
//! InitProducerId without a transactional id gets an id no earlier request to this
//! broker was given, at epoch 0, whatever id and epoch it names. That is Kafka's rule
//! for producers that are not transactional: a producer that lost its sequence (KIP-360)
//! starts again under a new id, and no client can fence another by naming its id. (A
//! client may still bump its own epoch itself, as Kafka's Java client does; the
//! partitions accept a higher epoch that starts at sequence 0.)
//!
//! Shard 0 gives the ids out, as Kafka's controller does: 0, 1, 2, … from blocks of
//! `PRODUCER_ID_BLOCK` it reserves in the metadata store (`Command::ReserveProducerIds`) before it
//! hands out the first id of a block. After a restart it starts after the last block
//! reserved, so no id is given twice whatever the clock does; the rest of a block in
//! use when the broker stopped is skipped. Other shards forward the request to shard 0
//! (one message per producer start).

use super::error::Error;
pub use super::types::{ProducerIds, PRODUCER_ID_BLOCK};
use crate::shard::{Shard, ShardMessage};
use futures_channel::oneshot;
use std::rc::Rc;

/// The id and epoch a producer that is not transactional is to use: a fresh id at
/// epoch 0, from shard 0.
pub async fn init_producer_id(shard: &Rc<Shard>, ctx: &super::RequestContext) -> Result<(i64, i16), Error> {
    super::authorize::check_idempotent_producer(shard, ctx)?;
    if shard.id != 0 {
        let (reply, receiver) = oneshot::channel();
        shard.forward(0, ShardMessage::ProducerId { reply }).await;
        return receiver.await.unwrap_or(Err(Error::ShuttingDown)).map(|id| (id, 0));
    }
    allocate_here(shard).await.map(|id| (id, 0))
}

/// On shard 0: the next id, reserving a block first when the one in use is spent.
pub async fn allocate_here(shard: &Rc<Shard>) -> Result<i64, Error> {
    loop {
        if let Some(id) = shard.producer_ids.take() {
            return Ok(id);
        }
        super::admin::reserve_producer_ids(shard).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_gives_each_id_once_and_the_next_block_starts_after_every_reserved_one() {
        let ids = ProducerIds::default();
        assert_eq!(ids.take(), None, "nothing before the first reservation");
        assert_eq!(ids.next_block_start(0), 0);
        ids.adopt(0, 3);
        assert_eq!((ids.take(), ids.take(), ids.take(), ids.take()), (Some(0), Some(1), Some(2), None));
        assert_eq!(ids.next_block_start(0), 3, "after the block in use");
        assert_eq!(ids.next_block_start(5000), 5000, "after a block the store has (an earlier start's)");
    }
}
