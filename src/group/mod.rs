//! Consumer groups: members sharing a topic's partitions, and their committed
//! offsets. Each group is coordinated by one shard: the owner of its partition of
//! `__consumer_offsets` (`offsets_partition`), where its commits are stored.
//!
//! Code map: `api` (its requests and answers), `assign` (sticky, range and
//! round-robin assignment, pure), `coordinator` (members, generations, incremental
//! rebalances, commits and their replay), `host` (what it needs of its shard), `naming` (group ids and where a group's
//! offsets live).

pub mod api;
pub mod assign;
pub mod classic;
mod coordinator;
pub mod host;
mod naming;

pub use coordinator::{GroupCoordinator, COMMIT_METADATA_BYTES_MAX};

pub use naming::{check_group_id, offsets_partition, GROUP_ID_BYTES_MAX, OFFSETS_TOPIC};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::error::Error;

    #[test]
    fn group_ids_and_partitions() {
        assert!(check_group_id("billing-v2.eu_1").is_ok());
        assert!(matches!(check_group_id(""), Err(Error::InvalidGroupId)));
        assert!(matches!(check_group_id("a\tb"), Err(Error::InvalidGroupId)));
        assert!(matches!(check_group_id("line\nbreak"), Err(Error::InvalidGroupId)));
        for free in ["a b", "billing:eu", "team/app", "größe", "connect-orders.v2"] {
            assert!(check_group_id(free).is_ok(), "{free:?}");
        }
        assert!(matches!(check_group_id(&"g".repeat(250)), Err(Error::InvalidGroupId)));
        assert_eq!(offsets_partition("billing", 4), offsets_partition("billing", 4));
        let spread: std::collections::BTreeSet<u32> =
            (0..64).map(|i| offsets_partition(&format!("group-{i}"), 4)).collect();
        assert_eq!(spread.len(), 4, "ids spread over every partition");
    }
}
