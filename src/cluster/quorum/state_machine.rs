//! The quorum's state machine: committed commands applied in log order to a
//! `MetadataState`, each checked first (a command that no longer checks, because
//! another was committed before it, is applied as a refusal, on every voter alike).
//!
//! The state lives in memory and is made durable by snapshots: `snapshot` in the
//! quorum's directory (one record: the state, the last applied log id and the
//! membership; `snapshot.tmp`, fsynced, renamed), written every thousand entries. At
//! start the state is the snapshot's, and openraft applies the committed entries after
//! it again from the log.

use super::types::{Applied, Proposal, Quorum};
use crate::metadata::MetadataState;
use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, StorageError, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

type NodeId = u64;

/// The applied state, as the rest of the broker sees it.
#[derive(Debug, Clone)]
pub struct Published {
    pub state: Arc<MetadataState>,
    /// The Raft index of the last entry applied.
    pub last_applied: u64,
}

/// What a snapshot holds.
#[derive(Serialize, Deserialize)]
struct Image {
    state: MetadataState,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
}

struct Inner {
    dir: PathBuf,
    image: Image,
    /// The last snapshot: its meta and bytes.
    snapshot: Option<(SnapshotMeta<NodeId, BasicNode>, Vec<u8>)>,
    snapshots_made: u64,
}

/// The state machine; clones share it (the snapshot builder is one).
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Mutex<Inner>>,
    published: Arc<watch::Sender<Published>>,
}

fn lock(inner: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn meta_of(image: &Image, id: String) -> SnapshotMeta<NodeId, BasicNode> {
    SnapshotMeta { last_log_id: image.last_applied, last_membership: image.membership.clone(), snapshot_id: id }
}

impl StateMachine {
    /// Opens the state machine in `dir`: the last snapshot's state, or an empty one.
    pub fn open(dir: &Path) -> anyhow::Result<(StateMachine, watch::Receiver<Published>)> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("snapshot");
        let (image, snapshot) = match std::fs::read(&path) {
            Ok(bytes) => {
                let image: Image = serde_json::from_slice(&bytes)
                    .map_err(|e| anyhow::anyhow!("{}: cannot be read ({e})", path.display()))?;
                let meta = meta_of(&image, "on-disk".into());
                (image, Some((meta, bytes)))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let image = Image {
                    state: MetadataState::default(),
                    last_applied: None,
                    membership: StoredMembership::default(),
                };
                (image, None)
            }
            Err(error) => return Err(error.into()),
        };
        let published = Published {
            state: Arc::new(image.state.clone()),
            last_applied: image.last_applied.map_or(0, |id| id.index),
        };
        let (sender, receiver) = watch::channel(published);
        let inner = Inner { dir: dir.to_path_buf(), image, snapshot, snapshots_made: 0 };
        Ok((StateMachine { inner: Arc::new(Mutex::new(inner)), published: Arc::new(sender) }, receiver))
    }

    fn publish(&self, inner: &Inner) {
        self.published.send_replace(Published {
            state: Arc::new(inner.image.state.clone()),
            last_applied: inner.image.last_applied.map_or(0, |id| id.index),
        });
    }
}

impl Inner {
    /// Writes the current image as the snapshot, durably.
    fn save(&mut self) -> std::io::Result<SnapshotMeta<NodeId, BasicNode>> {
        self.snapshots_made += 1;
        let id = match self.image.last_applied {
            Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, self.snapshots_made),
            None => format!("empty-{}", self.snapshots_made),
        };
        let bytes = serde_json::to_vec(&self.image).map_err(std::io::Error::other)?;
        let (tmp, path) = (self.dir.join("snapshot.tmp"), self.dir.join("snapshot"));
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        let meta = meta_of(&self.image, id);
        self.snapshot = Some((meta.clone(), bytes));
        Ok(meta)
    }
}

impl RaftSnapshotBuilder<Quorum> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<Quorum>, StorageError<NodeId>> {
        let mut inner = lock(&self.inner);
        let meta = inner.save().map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        let bytes = inner.snapshot.as_ref().map(|(_, bytes)| bytes.clone()).unwrap_or_default();
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(bytes)) })
    }
}

impl RaftStateMachine<Quorum> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>> {
        let inner = lock(&self.inner);
        Ok((inner.image.last_applied, inner.image.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<Quorum>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = lock(&self.inner);
        let mut answers = Vec::new();
        for entry in entries {
            inner.image.last_applied = Some(entry.log_id);
            let state = &mut inner.image.state;
            answers.push(match entry.payload {
                EntryPayload::Blank => Applied(Ok(state.applied_index)),
                EntryPayload::Normal(Proposal(command)) => match state.check(&command) {
                    Ok(()) => {
                        state.apply(&command);
                        Applied(Ok(state.applied_index))
                    }
                    Err(error) => Applied(Err(error.to_string())),
                },
                EntryPayload::Membership(membership) => {
                    inner.image.membership = StoredMembership::new(Some(entry.log_id), membership);
                    Applied(Ok(inner.image.state.applied_index))
                }
            });
        }
        self.publish(&inner);
        Ok(answers)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let image: Image = serde_json::from_slice(snapshot.get_ref())
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let mut inner = lock(&self.inner);
        inner.image = image;
        inner.save().map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        self.publish(&inner);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<Quorum>>, StorageError<NodeId>> {
        let inner = lock(&self.inner);
        Ok(inner
            .snapshot
            .as_ref()
            .map(|(meta, bytes)| Snapshot { meta: meta.clone(), snapshot: Box::new(Cursor::new(bytes.clone())) }))
    }
}
