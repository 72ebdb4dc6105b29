//! The leader epochs of one partition's log (Kafka's `leader-epoch-checkpoint`,
//! KIP-101 and KIP-279): for each epoch a leader wrote at, the first offset it wrote.
//! A follower that was out of date asks the leader where its own latest epoch ends
//! (OffsetForLeaderEpoch) and truncates there, never by the high watermark, so it
//! keeps no record the leader does not have and loses none the leader does.
//!
//! On disk: `leader-epochs` in the partition's directory, Kafka's text checkpoint
//! format (a version line `0`, a count line, then one `epoch offset` line each),
//! written to `leader-epochs.tmp`, fsynced and renamed; a file that does not read is
//! refused, not guessed at.

use std::io::Write;
use std::path::Path;

/// Why an epoch change was refused, or the file could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EpochError {
    #[error("leader epoch {epoch} at offset {offset} goes back: the latest is epoch {latest} from offset {from}")]
    Backwards { epoch: i32, offset: u64, latest: i32, from: u64 },
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
}

/// The epochs, in order: both epoch and start offset ascending.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochs {
    entries: Vec<(i32, u64)>,
}

impl LeaderEpochs {
    /// The latest epoch and the offset it starts at.
    pub fn latest(&self) -> Option<(i32, u64)> {
        self.entries.last().copied()
    }

    /// Every epoch and its start offset, oldest first.
    pub fn entries(&self) -> &[(i32, u64)] {
        &self.entries
    }

    /// Records that the leader of `epoch` writes from `start_offset` on (its first
    /// batch). The same epoch again is nothing new. A later epoch starting at or before
    /// an earlier one's start replaces those (their batches were truncated); an older
    /// epoch than the latest is refused.
    pub fn assign(&mut self, epoch: i32, start_offset: u64) -> Result<(), EpochError> {
        if let Some((latest, from)) = self.latest() {
            if epoch == latest {
                return Ok(());
            }
            if epoch < latest {
                return Err(EpochError::Backwards { epoch, offset: start_offset, latest, from });
            }
        }
        self.entries.retain(|&(_, start)| start < start_offset);
        self.entries.push((epoch, start_offset));
        Ok(())
    }

    /// KIP-279's answer to a follower whose latest epoch is `epoch`: the largest epoch
    /// at or below it, and where that epoch ends (the next epoch's start, or `log_end`
    /// for the latest). `None` when every epoch here is later (Kafka's
    /// UNDEFINED_EPOCH_OFFSET: the follower truncates to its log start).
    pub fn end_offset_for(&self, epoch: i32, log_end: u64) -> Option<(i32, u64)> {
        let at = self.entries.partition_point(|&(e, _)| e <= epoch);
        if at == 0 {
            return None;
        }
        let found = self.entries[at - 1].0;
        let end = self.entries.get(at).map_or(log_end, |&(_, start)| start);
        Some((found, end))
    }

    /// Where a follower must truncate its log (ending at `log_end`) after the leader
    /// answered `leader` for the follower's latest epoch: the leader's end for that
    /// epoch, or the follower's own end of it when that comes first (the follower's
    /// end offset of the epoch the leader names). `None`: nothing to keep (the leader
    /// has no epoch at or below the follower's).
    pub fn truncation_point(&self, leader: Option<(i32, u64)>, log_end: u64) -> Option<u64> {
        let (epoch, leader_end) = leader?;
        match self.end_offset_for(epoch, log_end) {
            Some((mine, my_end)) if mine == epoch => Some(leader_end.min(my_end)),
            // Not an epoch of ours: keep what came before it.
            Some(_) | None => Some(leader_end.min(self.start_of_next_after(epoch).unwrap_or(log_end))),
        }
    }

    fn start_of_next_after(&self, epoch: i32) -> Option<u64> {
        self.entries.iter().find(|&&(e, _)| e > epoch).map(|&(_, start)| start)
    }

    /// The log was cut at `end_offset` (a follower's truncation): epochs starting at or
    /// after it are gone.
    pub fn truncate_from_end(&mut self, end_offset: u64) {
        self.entries.retain(|&(_, start)| start < end_offset);
    }

    /// The log now starts at `start_offset` (retention, DeleteRecords): epochs that
    /// ended before it are gone, and the one it falls in starts there.
    pub fn truncate_from_start(&mut self, start_offset: u64) {
        let keep_from = self.entries.partition_point(|&(_, start)| start <= start_offset).saturating_sub(1);
        self.entries.drain(..keep_from);
        if let Some(first) = self.entries.first_mut() {
            first.1 = first.1.max(start_offset);
        }
    }

    /// Kafka's checkpoint text.
    pub fn encode(&self) -> String {
        let mut out = format!("0\n{}\n", self.entries.len());
        for (epoch, start) in &self.entries {
            out.push_str(&format!("{epoch} {start}\n"));
        }
        out
    }

    /// Reads Kafka's checkpoint text; `what` names it in errors.
    pub fn decode(text: &str, what: &str) -> Result<LeaderEpochs, EpochError> {
        let bad = |reason: String| EpochError::File { path: what.to_string(), reason };
        let mut lines = text.lines();
        if lines.next() != Some("0") {
            return Err(bad("not a version 0 leader epoch checkpoint".into()));
        }
        let count: usize =
            lines.next().and_then(|l| l.trim().parse().ok()).ok_or_else(|| bad("no entry count".into()))?;
        let mut epochs = LeaderEpochs::default();
        for index in 0..count {
            let line = lines.next().ok_or_else(|| bad(format!("{count} entries announced, {index} found")))?;
            let mut fields = line.split_whitespace();
            let (Some(epoch), Some(start), None) = (fields.next(), fields.next(), fields.next()) else {
                return Err(bad(format!("entry {index}: {line:?} is not \"epoch offset\"")));
            };
            let (epoch, start) = match (epoch.parse::<i32>(), start.parse::<u64>()) {
                (Ok(epoch), Ok(start)) if epoch >= 0 => (epoch, start),
                _ => return Err(bad(format!("entry {index}: {line:?} is not \"epoch offset\""))),
            };
            if let Some((last, from)) = epochs.latest() {
                if epoch <= last || start < from {
                    return Err(bad(format!(
                        "entry {index}: epoch {epoch} from {start} after epoch {last} from {from}"
                    )));
                }
            }
            epochs.entries.push((epoch, start));
        }
        if lines.any(|line| !line.trim().is_empty()) {
            return Err(bad("lines after the entries".into()));
        }
        Ok(epochs)
    }

    /// Reads `leader-epochs` in `dir`: empty when there is none yet.
    pub fn read(dir: &Path) -> Result<LeaderEpochs, EpochError> {
        let path = dir.join("leader-epochs");
        match std::fs::read_to_string(&path) {
            Ok(text) => LeaderEpochs::decode(&text, &path.display().to_string()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(LeaderEpochs::default()),
            Err(error) => Err(EpochError::File { path: path.display().to_string(), reason: error.to_string() }),
        }
    }

    /// Writes `leader-epochs` in `dir` durably (temporary file, fsync, rename, the
    /// directory synced). Blocking: off the shard's event loop.
    pub fn write(&self, dir: &Path) -> Result<(), EpochError> {
        let (tmp, path) = (dir.join("leader-epochs.tmp"), dir.join("leader-epochs"));
        let fail =
            |error: std::io::Error| EpochError::File { path: path.display().to_string(), reason: error.to_string() };
        let mut file = std::fs::File::create(&tmp).map_err(fail)?;
        file.write_all(self.encode().as_bytes()).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        std::fs::rename(&tmp, &path).map_err(fail)?;
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epochs(entries: &[(i32, u64)]) -> LeaderEpochs {
        let mut out = LeaderEpochs::default();
        for &(epoch, start) in entries {
            out.assign(epoch, start).unwrap();
        }
        out
    }

    #[test]
    fn kip_279_answers_the_largest_epoch_at_or_below_and_where_it_ends() {
        let log = epochs(&[(0, 0), (2, 100), (5, 250)]);
        assert_eq!(log.end_offset_for(0, 400), Some((0, 100)));
        assert_eq!(log.end_offset_for(1, 400), Some((0, 100)), "an epoch this log never had: the one before it");
        assert_eq!(log.end_offset_for(2, 400), Some((2, 250)));
        assert_eq!(log.end_offset_for(4, 400), Some((2, 250)));
        assert_eq!(log.end_offset_for(5, 400), Some((5, 400)), "the latest ends at the log end");
        assert_eq!(log.end_offset_for(9, 400), Some((5, 400)));
        assert_eq!(epochs(&[(3, 10)]).end_offset_for(2, 50), None, "older than every epoch: undefined");
    }

    #[test]
    fn a_diverged_follower_truncates_where_the_leaders_epoch_ends() {
        // KIP-101's case: the follower wrote offsets 100..120 at epoch 1 that the new
        // leader (epoch 2 from offset 100) never had.
        let follower = epochs(&[(0, 0), (1, 100)]);
        let leader = epochs(&[(0, 0), (2, 100)]);
        let answer = leader.end_offset_for(1, 180);
        assert_eq!(answer, Some((0, 100)), "the leader never had epoch 1: epoch 0 ends at 100");
        assert_eq!(follower.truncation_point(answer, 120), Some(100));
        // A follower simply behind keeps everything.
        let behind = epochs(&[(0, 0), (2, 100)]);
        assert_eq!(behind.truncation_point(leader.end_offset_for(2, 180), 150), Some(150));
        // The leader's log is shorter in the shared epoch (it lost an unflushed tail).
        assert_eq!(behind.truncation_point(Some((2, 140)), 150), Some(140));
        assert_eq!(behind.truncation_point(None, 150), None);
    }

    #[test]
    fn epochs_only_move_forward_and_truncation_drops_what_was_cut() {
        let mut log = epochs(&[(0, 0), (1, 50), (3, 90)]);
        assert!(matches!(log.assign(2, 120), Err(EpochError::Backwards { .. })));
        log.assign(3, 200).unwrap();
        assert_eq!(log.latest(), Some((3, 90)), "the same epoch again is nothing new");
        log.truncate_from_end(60);
        assert_eq!(log.entries(), [(0, 0), (1, 50)]);
        log.assign(4, 55).unwrap();
        assert_eq!(log.entries(), [(0, 0), (1, 50), (4, 55)]);
        log.assign(5, 50).unwrap();
        assert_eq!(log.entries(), [(0, 0), (5, 50)], "a later epoch from the same start replaces the cut ones");
        log.truncate_from_start(70);
        assert_eq!(log.entries(), [(5, 70)]);
        let mut start = epochs(&[(0, 0), (1, 50)]);
        start.truncate_from_start(50);
        assert_eq!(start.entries(), [(1, 50)]);
    }

    #[test]
    fn the_checkpoint_round_trips_and_a_bad_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(LeaderEpochs::read(dir.path()).unwrap(), LeaderEpochs::default());
        let log = epochs(&[(0, 0), (2, 100), (7, 1_000_000)]);
        log.write(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("leader-epochs")).unwrap(), "0\n3\n0 0\n2 100\n7 1000000\n");
        assert_eq!(LeaderEpochs::read(dir.path()).unwrap(), log);
        for bad in ["1\n0\n", "0\n2\n0 0\n", "0\n1\n0\n", "0\n2\n3 10\n2 20\n", "0\n1\n-1 0\n", "0\n1\n0 0\nextra\n"] {
            assert!(LeaderEpochs::decode(bad, "x").is_err(), "{bad:?}");
        }
    }
}
