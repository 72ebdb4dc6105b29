//! A partition of `__consumer_offsets` replayed from arbitrary bytes, as a
//! coordinator does on start: batches that do not decode are skipped, commits that
//! do are applied, nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strand::group::GroupCoordinator;

fuzz_target!(|data: &[u8]| {
    let coordinator = GroupCoordinator::default();
    let applied = coordinator.apply_batches(data);
    assert!(applied as usize <= data.len());
});
