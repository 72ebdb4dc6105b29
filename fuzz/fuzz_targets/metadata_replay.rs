//! The metadata store opened from arbitrary bytes: the first byte splits the input
//! into a snapshot and a command log. Opening either succeeds with some state or
//! fails with a typed error naming the file; it never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strand::metadata::MetadataStore;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (snapshot, log) = match data.split_first() {
        Some((&cut, rest)) => rest.split_at((usize::from(cut) * rest.len() / 256).min(rest.len())),
        None => (&[][..], &[][..]),
    };
    if !snapshot.is_empty() {
        std::fs::write(dir.path().join("snapshot"), snapshot).unwrap();
    }
    std::fs::write(dir.path().join("commands.log"), log).unwrap();
    if let Ok((store, _)) = MetadataStore::open(dir.path()) {
        // Whatever replayed is a state the checks accept.
        let _ = store.state().topics.len();
    }
});
