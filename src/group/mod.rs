//! Consumer groups: members sharing a topic's partitions, and their committed
//! offsets. Each group is coordinated by one shard: the owner of its partition of
//! `__consumer_offsets` (`offsets_partition`), where its commits are stored.
//!
//! Code map: `assign` (sticky, range and round-robin assignment, pure), `coordinator`
//! (members, generations, incremental rebalances, commits and their replay).

pub mod api;
pub mod assign;
mod coordinator;

pub use coordinator::{GroupCoordinator, COMMIT_METADATA_BYTES_MAX};

use crate::service::error::Error;

/// The internal topic holding committed offsets, one partition per shard at creation.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Longest group id.
pub const GROUP_ID_BYTES_MAX: usize = 249;

/// The partition of `OFFSETS_TOPIC` that holds `group`'s offsets (FNV-1a of its id):
/// stable across restarts, so a group keeps its coordinator.
pub fn offsets_partition(group: &str, partitions: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in group.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % partitions.max(1)
}

/// Group ids follow the topic-name rule: 1 to 249 of `[a-zA-Z0-9._-]`.
pub fn check_group_id(group: &str) -> Result<(), Error> {
    let valid = !group.is_empty()
        && group.len() <= GROUP_ID_BYTES_MAX
        && group.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidGroupId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ids_and_partitions() {
        assert!(check_group_id("billing-v2.eu_1").is_ok());
        assert!(matches!(check_group_id(""), Err(Error::InvalidGroupId)));
        assert!(matches!(check_group_id("a b"), Err(Error::InvalidGroupId)));
        assert!(matches!(check_group_id(&"g".repeat(250)), Err(Error::InvalidGroupId)));
        assert_eq!(offsets_partition("billing", 4), offsets_partition("billing", 4));
        let spread: std::collections::BTreeSet<u32> =
            (0..64).map(|i| offsets_partition(&format!("group-{i}"), 4)).collect();
        assert_eq!(spread.len(), 4, "ids spread over every partition");
    }
}
