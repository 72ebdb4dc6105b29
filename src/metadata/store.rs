//! `MetadataStore`: the command log and snapshot on disk.
//!
//! Files in the metadata directory:
//! - `commands.log`: frames `[length u32][crc32c u32][index u64][command JSON]`, all
//!   little-endian; the CRC covers index and JSON. A command is acknowledged after its
//!   frame is fdatasynced.
//! - `snapshot`: one frame `[length u32][crc32c u32][state JSON]`, written to
//!   `snapshot.tmp`, fsynced and renamed over the old one; then the command log is
//!   emptied. A crash between the two leaves commands the snapshot already holds, and
//!   replay skips them by index.
//!
//! On open, replay stops at the first torn or corrupt frame and the log is cut there:
//! that frame was never acknowledged.

use super::command::Command;
use super::error::MetadataError;
use super::state::MetadataState;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Commands between two snapshots.
const SNAPSHOT_EVERY_COMMANDS: u64 = 1_000;
/// Largest frame accepted when reading: bounds what a corrupt length can make us do.
const FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;

/// What opening the store found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreRecovery {
    pub snapshot_index: u64,
    pub commands_replayed: u64,
    /// Bytes cut from the end of the command log (a torn last frame).
    pub bytes_cut: u64,
}

/// The metadata store. Owned by one thread; every call is blocking.
pub struct MetadataStore {
    dir: PathBuf,
    state: MetadataState,
    log: File,
    commands_since_snapshot: u64,
}

impl MetadataStore {
    /// Opens (creating if needed) the store in `dir` and replays it.
    pub fn open(dir: &Path) -> Result<(MetadataStore, StoreRecovery), MetadataError> {
        std::fs::create_dir_all(dir).map_err(|e| io("creating", dir, e))?;
        let snapshot_path = dir.join("snapshot");
        let mut state = match read_file(&snapshot_path)? {
            None => MetadataState::default(),
            Some(bytes) => {
                let (payload, _) = parse_frame(&bytes, false).map_err(|reason| corrupt(&snapshot_path, reason))?;
                serde_json::from_slice(payload).map_err(|e| corrupt(&snapshot_path, e.to_string()))?
            }
        };
        let mut recovery = StoreRecovery { snapshot_index: state.applied_index, ..StoreRecovery::default() };
        let log_path = dir.join("commands.log");
        let bytes = read_file(&log_path)?.unwrap_or_default();
        let mut at = 0usize;
        while at < bytes.len() {
            let Ok((payload, len)) = parse_frame(&bytes[at..], true) else { break };
            let index = u64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
            // A whole frame (its CRC checks) that does not read as a command is no torn
            // write: it is a command this build does not know (a newer one wrote it).
            // Cutting it would drop it and every command after it, so opening fails.
            let command = serde_json::from_slice::<Command>(&payload[8..]).map_err(|e| {
                corrupt(
                    &log_path,
                    format!("command {index} cannot be read ({e}); was it written by a newer version of Strand?"),
                )
            })?;
            if index > state.applied_index {
                if index != state.applied_index + 1 {
                    return Err(corrupt(&log_path, format!("command {index} follows command {}", state.applied_index)));
                }
                state
                    .check(&command)
                    .map_err(|e| corrupt(&log_path, format!("command {index} does not apply: {e}")))?;
                state.apply(&command);
                recovery.commands_replayed += 1;
            }
            at += len;
        }
        let log =
            OpenOptions::new().create(true).append(true).open(&log_path).map_err(|e| io("opening", &log_path, e))?;
        if at < bytes.len() {
            recovery.bytes_cut = (bytes.len() - at) as u64;
            tracing::warn!(path = %log_path.display(), bytes = recovery.bytes_cut, "cut a torn command at the end of the metadata log");
            log.set_len(at as u64).map_err(|e| io("truncating", &log_path, e))?;
            log.sync_data().map_err(|e| io("syncing", &log_path, e))?;
        }
        let store =
            MetadataStore { dir: dir.to_path_buf(), state, log, commands_since_snapshot: recovery.commands_replayed };
        Ok((store, recovery))
    }

    /// The current state.
    pub fn state(&self) -> &MetadataState {
        &self.state
    }

    /// Checks, persists (fdatasync) and applies one command.
    pub fn submit(&mut self, command: Command) -> Result<&MetadataState, MetadataError> {
        self.state.check(&command)?;
        let index = self.state.applied_index + 1;
        let mut payload = index.to_le_bytes().to_vec();
        payload.extend(serde_json::to_vec(&command).expect("commands always serialize"));
        let path = self.dir.join("commands.log");
        self.log.write_all(&frame(&payload)).map_err(|e| io("writing", &path, e))?;
        self.log.sync_data().map_err(|e| io("syncing", &path, e))?;
        self.state.apply(&command);
        self.commands_since_snapshot += 1;
        if self.commands_since_snapshot >= SNAPSHOT_EVERY_COMMANDS {
            self.snapshot()?;
        }
        Ok(&self.state)
    }

    /// Writes a snapshot of the current state and empties the command log.
    pub fn snapshot(&mut self) -> Result<(), MetadataError> {
        let tmp = self.dir.join("snapshot.tmp");
        let target = self.dir.join("snapshot");
        let bytes = frame(&serde_json::to_vec(&self.state).expect("state always serializes"));
        let mut file = File::create(&tmp).map_err(|e| io("creating", &tmp, e))?;
        file.write_all(&bytes).map_err(|e| io("writing", &tmp, e))?;
        file.sync_all().map_err(|e| io("syncing", &tmp, e))?;
        std::fs::rename(&tmp, &target).map_err(|e| io("renaming", &tmp, e))?;
        File::open(&self.dir).and_then(|dir| dir.sync_all()).map_err(|e| io("syncing", &self.dir, e))?;
        let log_path = self.dir.join("commands.log");
        self.log.set_len(0).map_err(|e| io("truncating", &log_path, e))?;
        self.log.sync_data().map_err(|e| io("syncing", &log_path, e))?;
        self.commands_since_snapshot = 0;
        Ok(())
    }
}

/// `[length u32][crc32c u32][payload]`, little-endian, the CRC over the payload: the
/// frame of every record the metadata keeps on disk (here, and the quorum's log).
pub(crate) fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The payload of the frame at the start of `bytes` and the frame's length.
fn parse_frame(bytes: &[u8], indexed: bool) -> Result<(&[u8], usize), String> {
    if bytes.len() < 8 {
        return Err(format!("frame header needs 8 bytes, {} left", bytes.len()));
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if len > FRAME_BYTES_MAX || (indexed && len < 8) {
        return Err(format!("frame length {len} out of range"));
    }
    let payload = bytes.get(8..8 + len).ok_or_else(|| format!("frame of {len} bytes is cut short"))?;
    if crc32c::crc32c(payload) != crc {
        return Err("frame CRC mismatch".into());
    }
    Ok((payload, 8 + len))
}

fn read_file(path: &Path) -> Result<Option<Vec<u8>>, MetadataError> {
    match File::open(path) {
        Ok(mut file) => {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).map_err(|e| io("reading", path, e))?;
            Ok(Some(bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("opening", path, e)),
    }
}

fn io(op: &'static str, path: &Path, source: std::io::Error) -> MetadataError {
    MetadataError::Io { op, path: path.to_path_buf(), source }
}

fn corrupt(path: &Path, reason: String) -> MetadataError {
    MetadataError::Corrupt { path: path.to_path_buf(), reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::place_partitions;
    use crate::storage::TopicConfig;

    fn create(store: &mut MetadataStore, name: &str, partitions: u32) -> Result<(), MetadataError> {
        let placement = place_partitions(store.state(), partitions, 2);
        store
            .submit(Command::CreateTopic {
                name: name.into(),
                config: TopicConfig::default(),
                placement,
                uuid: None,
                replicas: Vec::new(),
            })
            .map(|_| ())
    }

    /// Topic UUIDs are part of the metadata: the same after replaying the command log
    /// and after a snapshot; a topic whose command predates UUIDs gets the same derived
    /// one every time; a topic created again under a deleted one's name gets a new one.
    #[test]
    fn topic_uuids_survive_restarts_and_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let uuid = crate::metadata::TopicUuid::random();
        let (first, derived) = {
            let (mut store, _) = MetadataStore::open(dir.path()).unwrap();
            let placement = vec![0];
            let config = TopicConfig::default();
            store
                .submit(Command::CreateTopic {
                    name: "orders".into(),
                    config,
                    placement,
                    uuid: Some(uuid),
                    replicas: Vec::new(),
                })
                .unwrap();
            create(&mut store, "legacy", 1).unwrap();
            let twin = Command::CreateTopic {
                name: "twin".into(),
                config: TopicConfig::default(),
                placement: vec![0],
                uuid: Some(uuid),
                replicas: Vec::new(),
            };
            assert!(store.submit(twin).is_err(), "a UUID names one topic");
            (store.state().topics["orders"].uuid(), store.state().topics["legacy"].uuid())
        };
        assert_eq!(first, uuid);
        for round in 0..2 {
            let (mut store, _) = MetadataStore::open(dir.path()).unwrap();
            assert_eq!(store.state().topics["orders"].uuid(), uuid, "round {round}");
            assert_eq!(store.state().topics["legacy"].uuid(), derived, "round {round}");
            store.snapshot().unwrap();
        }
        let (mut store, _) = MetadataStore::open(dir.path()).unwrap();
        store.submit(Command::DeleteTopic { name: "legacy".into() }).unwrap();
        create(&mut store, "legacy", 1).unwrap();
        assert_ne!(store.state().topics["legacy"].uuid(), derived, "a new topic, a new id");
    }

    #[test]
    fn survives_restart_and_refuses_bad_commands() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut store, _) = MetadataStore::open(dir.path()).unwrap();
            create(&mut store, "orders", 3).unwrap();
            create(&mut store, "audit", 1).unwrap();
            assert!(matches!(create(&mut store, "orders", 1), Err(MetadataError::TopicExists(_))));
            assert!(matches!(create(&mut store, "bad name", 1), Err(MetadataError::InvalidName { .. })));
            assert!(matches!(create(&mut store, "or.ders", 1), Ok(())));
            assert!(matches!(create(&mut store, "or_ders", 1), Err(MetadataError::TopicCollides { .. })));
            assert!(matches!(create(&mut store, "empty", 0), Err(MetadataError::InvalidPartitions { count: 0 })));
            // Partitions are added on the least-loaded shards; a count never shrinks.
            let more = place_partitions(store.state(), 2, 2);
            assert_eq!(more, vec![1, 0]);
            store
                .submit(Command::AddPartitions { name: "orders".into(), placement: more, replicas: Vec::new() })
                .unwrap();
            assert!(matches!(
                store.submit(Command::AddPartitions { name: "orders".into(), placement: vec![], replicas: Vec::new() }),
                Err(MetadataError::PartitionsShrink { current: 5, .. })
            ));
            assert!(matches!(
                store.submit(Command::AddPartitions { name: "nope".into(), placement: vec![0], replicas: Vec::new() }),
                Err(MetadataError::UnknownTopic(_))
            ));
            assert!(matches!(
                store.submit(Command::AddPartitions {
                    name: "audit".into(),
                    placement: vec![0; 100_000],
                    replicas: Vec::new()
                }),
                Err(MetadataError::InvalidPartitions { count: 100_001 })
            ));
            store.submit(Command::DeleteTopic { name: "audit".into() }).unwrap();
            assert!(matches!(
                store.submit(Command::DeleteTopic { name: "audit".into() }),
                Err(MetadataError::UnknownTopic(_))
            ));
        }
        let (store, recovery) = MetadataStore::open(dir.path()).unwrap();
        assert_eq!(recovery.commands_replayed, 5);
        let orders = store.state().topic("orders").unwrap();
        // Placement is recorded, not recomputed: least-loaded shard first.
        assert_eq!(orders.placement, vec![0, 1, 0, 1, 0]);
        assert!(store.state().topic("audit").is_err());
        assert_eq!(store.state().next_topic_id, 3);
    }

    /// A command this build cannot read (a newer build's) fails the open and is left
    /// on disk with everything after it, rather than cut as a torn write.
    #[test]
    fn an_unknown_command_fails_the_open_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut store, _) = MetadataStore::open(dir.path()).unwrap();
            create(&mut store, "a", 1).unwrap();
        }
        let log_path = dir.path().join("commands.log");
        let mut bytes = std::fs::read(&log_path).unwrap();
        let mut payload = 2u64.to_le_bytes().to_vec();
        payload.extend_from_slice(br#"{"type":"from_the_future","x":1}"#);
        bytes.extend(frame(&payload));
        std::fs::write(&log_path, &bytes).unwrap();
        let error = MetadataStore::open(dir.path()).err().expect("the open fails");
        assert!(error.to_string().contains("command 2 cannot be read"), "{error}");
        assert_eq!(std::fs::read(&log_path).unwrap(), bytes, "nothing cut");
    }

    #[test]
    fn torn_tail_is_cut_and_snapshot_replays() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut store, _) = MetadataStore::open(dir.path()).unwrap();
            create(&mut store, "a", 1).unwrap();
            store.snapshot().unwrap();
            create(&mut store, "b", 2).unwrap();
        }
        // Append half a frame, as a crash during a write leaves it.
        let log_path = dir.path().join("commands.log");
        let mut bytes = std::fs::read(&log_path).unwrap();
        let whole = bytes.len();
        bytes.extend_from_slice(&bytes.clone()[..whole / 2]);
        std::fs::write(&log_path, &bytes).unwrap();
        let (mut store, recovery) = MetadataStore::open(dir.path()).unwrap();
        assert_eq!(recovery.snapshot_index, 1);
        assert_eq!(recovery.commands_replayed, 1);
        assert_eq!(recovery.bytes_cut, (whole / 2) as u64);
        assert_eq!(std::fs::metadata(&log_path).unwrap().len(), whole as u64);
        create(&mut store, "c", 1).unwrap();
        let (store, _) = MetadataStore::open(dir.path()).unwrap();
        assert_eq!(store.state().topics.keys().collect::<Vec<_>>(), vec!["a", "b", "c"]);
    }
}
