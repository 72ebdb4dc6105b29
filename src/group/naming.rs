//! Group ids, and the partition of `__consumer_offsets` that holds a group's
//! commits (and so the shard that coordinates it).

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

/// A group id is 1 to 249 bytes of UTF-8 text without control characters. Kafka
/// takes any non-empty string, and its users name groups freely (`billing:eu`,
/// `team/app`, `orders v2`); only control characters, which no client means and which
/// would garble logs, are refused, and the length is the topic names' bound.
pub fn check_group_id(group: &str) -> Result<(), Error> {
    let valid = !group.is_empty() && group.len() <= GROUP_ID_BYTES_MAX && !group.chars().any(char::is_control);
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidGroupId)
    }
}
