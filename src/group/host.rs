//! What a group coordinator needs of the shard it runs on, as a trait: the shard
//! holds its coordinator, so the coordinator cannot import the shard without an
//! import circle. The service layer implements it for `Rc<Shard>`.

use crate::config::BrokerConfig;
use crate::metadata::MetadataState;
use crate::partition::{Partition, TopicPartition};
use crate::service::error::Error;
use std::rc::Rc;
use std::sync::Arc;

/// The shard a coordinator runs on.
#[allow(async_fn_in_trait)]
pub trait GroupHost {
    /// The shard's id, for logs and member ids.
    fn shard_id(&self) -> u32;
    /// The settings SIGHUP can change (`[groups]` among them).
    fn live_config(&self) -> Arc<BrokerConfig>;
    /// The shard's copy of the metadata.
    fn metadata(&self) -> Arc<MetadataState>;
    /// A partition open on this shard (the coordinator's `__consumer_offsets` ones).
    fn partition(&self, topic: &str, partition: u32) -> Option<Rc<Partition>>;
    /// The high watermark of each partition, wherever it lives.
    async fn end_offsets(&self, tps: Vec<TopicPartition>) -> Vec<Result<u64, Error>>;
}
