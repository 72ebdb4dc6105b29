//! The Raft log and vote, in files of the quorum's directory:
//!
//! - `log`: records `[length u32][crc32c u32][JSON]`, little-endian, the CRC over the
//!   JSON: an entry, a truncation (entries from an index on are gone: a new leader
//!   overwrote them), or a purge (entries up to a log id are in the snapshot). Each
//!   append is fdatasynced before openraft is told it is durable. On open the records
//!   are replayed in order; a torn last record (a crash mid-write) is cut, as it was
//!   never acknowledged. When the file holds many more records than live entries it is
//!   rewritten (temporary file, fsync, rename).
//! - `vote`: the last vote, one record, written to `vote.tmp`, fsynced and renamed.
//!
//! The entries are also kept in memory (the metadata log is small: a thousand
//! commands between snapshots), so reads never touch the disk.

use super::types::Quorum;
use crate::metadata::frame;
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Largest record read back: bounds what a corrupt length can make us allocate.
const RECORD_BYTES_MAX: usize = 64 << 20;
/// The log file is rewritten when it holds this many records more than live entries.
const REWRITE_AFTER_RECORDS: usize = 4_096;

type NodeId = u64;

#[derive(Serialize, Deserialize)]
enum Record {
    Entry(Entry<Quorum>),
    /// Entries from this index on are gone.
    TruncateFrom(u64),
    /// Entries up to this log id are in the snapshot.
    PurgeUpTo(LogId<NodeId>),
}

struct Inner {
    dir: PathBuf,
    file: File,
    entries: BTreeMap<u64, Entry<Quorum>>,
    last_purged: Option<LogId<NodeId>>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    /// Records in the file.
    records: usize,
}

/// The quorum's log store; clones share it (openraft reads through one while it
/// appends through another).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

fn lock(inner: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The records in `bytes`, and how many bytes they take (a torn tail is not counted).
fn records_in(bytes: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= 8 {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        if len > RECORD_BYTES_MAX || bytes.len() - at - 8 < len {
            break;
        }
        let json = &bytes[at + 8..at + 8 + len];
        if crc32c::crc32c(json) != crc {
            break;
        }
        out.push(json);
        at += 8 + len;
    }
    (out, at)
}

impl LogStore {
    /// Opens (creating) the log in `dir` and replays it.
    pub fn open(dir: &Path) -> anyhow::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("log");
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(error) => return Err(anyhow::anyhow!("cannot read {}: {error}", path.display())),
        };
        let (found, whole) = records_in(&bytes);
        let mut entries = BTreeMap::new();
        let mut last_purged = None;
        for json in &found {
            let record: Record = serde_json::from_slice(json)
                .map_err(|e| anyhow::anyhow!("{}: a record that does not read ({e})", path.display()))?;
            match record {
                Record::Entry(entry) => {
                    entries.insert(entry.log_id.index, entry);
                }
                Record::TruncateFrom(index) => {
                    entries.split_off(&index);
                }
                Record::PurgeUpTo(log_id) => {
                    entries = entries.split_off(&(log_id.index + 1));
                    last_purged = Some(log_id);
                }
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if whole < bytes.len() {
            tracing::warn!(path = %path.display(), bytes = bytes.len() - whole, "cut a torn record at the end of the quorum log");
            file.set_len(whole as u64)?;
            file.sync_data()?;
        }
        let vote = match std::fs::read(dir.join("vote")) {
            Ok(bytes) => match records_in(&bytes).0.first() {
                Some(json) => Some(serde_json::from_slice(json)?),
                None => return Err(anyhow::anyhow!("{}: torn or corrupt", dir.join("vote").display())),
            },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => return Err(error.into()),
        };
        let committed = std::fs::read(dir.join("committed"))
            .ok()
            .and_then(|bytes| records_in(&bytes).0.first().and_then(|json| serde_json::from_slice(json).ok()));
        let inner = Inner { dir: dir.to_path_buf(), file, entries, last_purged, vote, committed, records: found.len() };
        Ok(LogStore { inner: Arc::new(Mutex::new(inner)) })
    }

    /// Whether nothing was ever written: the first start of this voter.
    pub fn is_empty(&self) -> bool {
        let inner = lock(&self.inner);
        inner.entries.is_empty() && inner.last_purged.is_none() && inner.vote.is_none()
    }
}

impl Inner {
    /// Appends `records` and makes them durable.
    fn write(&mut self, records: &[Record]) -> std::io::Result<()> {
        let mut bytes = Vec::new();
        for record in records {
            bytes.extend(frame(&serde_json::to_vec(record).map_err(std::io::Error::other)?));
        }
        self.file.write_all(&bytes)?;
        self.file.sync_data()?;
        self.records += records.len();
        Ok(())
    }

    /// Rewrites the file once it holds many more records than live entries (after the
    /// entries in memory are up to date).
    fn compact(&mut self) -> std::io::Result<()> {
        if self.records > self.entries.len() + REWRITE_AFTER_RECORDS {
            self.rewrite()?;
        }
        Ok(())
    }

    /// Writes the live entries (and the purge point) to a new file and puts it in place.
    fn rewrite(&mut self) -> std::io::Result<()> {
        let mut records: Vec<Record> = self.last_purged.iter().map(|&id| Record::PurgeUpTo(id)).collect();
        records.extend(self.entries.values().cloned().map(Record::Entry));
        let mut bytes = Vec::new();
        for record in &records {
            bytes.extend(frame(&serde_json::to_vec(record).map_err(std::io::Error::other)?));
        }
        let (tmp, path) = (self.dir.join("log.tmp"), self.dir.join("log"));
        let mut file = File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        File::open(&self.dir)?.sync_all()?;
        self.file = OpenOptions::new().append(true).open(&path)?;
        self.records = records.len();
        Ok(())
    }

    /// Writes `value` as the one record of `name`, durably.
    fn write_small<T: Serialize>(&self, name: &str, value: &T, sync: bool) -> std::io::Result<()> {
        let bytes = frame(&serde_json::to_vec(value).map_err(std::io::Error::other)?);
        let (tmp, path) = (self.dir.join(format!("{name}.tmp")), self.dir.join(name));
        let mut file = File::create(&tmp)?;
        file.write_all(&bytes)?;
        if sync {
            file.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        if sync {
            File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }
}

impl RaftLogReader<Quorum> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<Quorum>>, StorageError<NodeId>> {
        Ok(lock(&self.inner).entries.range(range).map(|(_, entry)| entry.clone()).collect())
    }
}

impl RaftLogStorage<Quorum> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<Quorum>, StorageError<NodeId>> {
        let inner = lock(&self.inner);
        let last_log_id = inner.entries.values().next_back().map(|entry| entry.log_id).or(inner.last_purged);
        Ok(LogState { last_purged_log_id: inner.last_purged, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = lock(&self.inner);
        inner.write_small("vote", vote, true).map_err(|e| StorageIOError::write_vote(&e))?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(lock(&self.inner).vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StorageError<NodeId>> {
        // A hint for a faster restart, not needed for safety: not synced.
        let mut inner = lock(&self.inner);
        inner.write_small("committed", &committed, false).map_err(|e| StorageIOError::write(&e))?;
        inner.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(lock(&self.inner).committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<Quorum>) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<Quorum>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<Quorum>> = entries.into_iter().collect();
        let mut inner = lock(&self.inner);
        let records: Vec<Record> = entries.iter().cloned().map(Record::Entry).collect();
        let result = inner.write(&records);
        let result = result.and_then(|()| {
            for entry in entries {
                inner.entries.insert(entry.log_id.index, entry);
            }
            inner.compact()
        });
        let error = result.as_ref().err().map(StorageIOError::write_logs);
        callback.log_io_completed(result);
        match error {
            None => Ok(()),
            Some(error) => Err(error.into()),
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = lock(&self.inner);
        inner.write(&[Record::TruncateFrom(log_id.index)]).map_err(|e| StorageIOError::write_logs(&e))?;
        inner.entries.split_off(&log_id.index);
        inner.compact().map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = lock(&self.inner);
        inner.write(&[Record::PurgeUpTo(log_id)]).map_err(|e| StorageIOError::write_logs(&e))?;
        inner.entries = inner.entries.split_off(&(log_id.index + 1));
        inner.last_purged = Some(log_id);
        inner.compact().map_err(|e| StorageIOError::write_logs(&e).into())
    }
}
