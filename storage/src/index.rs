//! Sparse offset and time indexes of one segment.
//!
//! Both are rebuildable from the log alone, so they are written without fdatasync and
//! checked when loaded. The offset index holds `(relative offset, position)` every
//! `index_interval_bytes` of log; the time index holds `(max timestamp so far, relative
//! offset, position)` at the same points whenever the max timestamp grew, plus one
//! entry for the last batch when the segment is sealed, so a sealed segment's newest
//! timestamp is its last time entry. Files are little-endian arrays of fixed-size
//! entries; loading stops at the first entry that is not strictly after the one before
//! it (zero padding or a torn tail ends there).

use super::appender::{Appender, AppenderSizing};
use std::path::Path;
use std::rc::Rc;

/// Bytes of one offset index entry on disk.
pub(crate) const OFFSET_ENTRY_BYTES: usize = 8;
/// Bytes of one time index entry on disk.
pub(crate) const TIME_ENTRY_BYTES: usize = 16;

/// One offset index entry: the batch starting at `relative_offset` sits at `position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// One time index entry: batches up to and including the one at `position` have max
/// timestamps of at most `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
    pub position: u32,
}

impl OffsetEntry {
    pub(crate) fn encode(&self) -> [u8; OFFSET_ENTRY_BYTES] {
        let mut out = [0u8; OFFSET_ENTRY_BYTES];
        out[0..4].copy_from_slice(&self.relative_offset.to_le_bytes());
        out[4..8].copy_from_slice(&self.position.to_le_bytes());
        out
    }
    fn decode(bytes: &[u8]) -> OffsetEntry {
        OffsetEntry {
            relative_offset: u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")),
            position: u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")),
        }
    }
}

impl TimeEntry {
    pub(crate) fn encode(&self) -> [u8; TIME_ENTRY_BYTES] {
        let mut out = [0u8; TIME_ENTRY_BYTES];
        out[0..8].copy_from_slice(&self.timestamp.to_le_bytes());
        out[8..12].copy_from_slice(&self.relative_offset.to_le_bytes());
        out[12..16].copy_from_slice(&self.position.to_le_bytes());
        out
    }
    fn decode(bytes: &[u8]) -> TimeEntry {
        TimeEntry {
            timestamp: i64::from_le_bytes(bytes[0..8].try_into().expect("8 bytes")),
            relative_offset: u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")),
            position: u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")),
        }
    }
}

/// Decodes offset entries, stopping at the first that does not strictly follow the
/// one before it or that points at or past `log_bytes`.
pub(crate) fn decode_offset_entries(bytes: &[u8], log_bytes: u64) -> Vec<OffsetEntry> {
    let mut entries: Vec<OffsetEntry> = Vec::with_capacity(bytes.len() / OFFSET_ENTRY_BYTES);
    for chunk in bytes.chunks_exact(OFFSET_ENTRY_BYTES) {
        let entry = OffsetEntry::decode(chunk);
        let follows = match entries.last() {
            None => entry.relative_offset == 0 && entry.position == 0,
            Some(last) => entry.relative_offset > last.relative_offset && entry.position > last.position,
        };
        if !follows || u64::from(entry.position) >= log_bytes {
            break;
        }
        entries.push(entry);
    }
    entries
}

/// Decodes time entries with the same rule as [`decode_offset_entries`]; timestamps
/// may repeat but never go back.
pub(crate) fn decode_time_entries(bytes: &[u8], log_bytes: u64) -> Vec<TimeEntry> {
    let mut entries: Vec<TimeEntry> = Vec::with_capacity(bytes.len() / TIME_ENTRY_BYTES);
    for chunk in bytes.chunks_exact(TIME_ENTRY_BYTES) {
        let entry = TimeEntry::decode(chunk);
        let follows = match entries.last() {
            None => entry.relative_offset == 0 && entry.position == 0,
            Some(last) => {
                entry.relative_offset > last.relative_offset
                    && entry.position > last.position
                    && entry.timestamp >= last.timestamp
            }
        };
        if !follows || u64::from(entry.position) >= log_bytes {
            break;
        }
        entries.push(entry);
    }
    entries
}

/// The open index files of the active segment.
pub(crate) struct IndexWriters {
    pub offsets: Appender,
    pub times: Appender,
}

impl IndexWriters {
    /// Writers continuing files that hold `offset_count` and `time_count` valid entries;
    /// `offset_tail`/`time_tail` are the partial last blocks of those files.
    pub fn new(
        offsets: (Rc<glommio::io::DmaFile>, &Path, &[u8]),
        times: (Rc<glommio::io::DmaFile>, &Path, &[u8]),
        offset_count: usize,
        time_count: usize,
        sizing: AppenderSizing,
    ) -> IndexWriters {
        IndexWriters {
            offsets: Appender::new(offsets.0, offsets.1, (offset_count * OFFSET_ENTRY_BYTES) as u64, offsets.2, sizing),
            times: Appender::new(times.0, times.1, (time_count * TIME_ENTRY_BYTES) as u64, times.2, sizing),
        }
    }
}

/// The in-memory indexes of one segment, and what is needed to extend them.
pub(crate) struct SegmentIndex {
    pub offsets: Vec<OffsetEntry>,
    pub times: Vec<TimeEntry>,
    interval_bytes: u64,
    bytes_since_entry: u64,
    /// Newest max timestamp of any batch in the segment (`i64::MIN` when empty).
    pub max_timestamp: i64,
    /// The last batch appended: relative offset and position.
    pub last_batch: Option<(u32, u32)>,
    /// Present while the segment is active: entries are also appended to the files.
    pub writers: Option<IndexWriters>,
}

impl SegmentIndex {
    /// An empty index.
    pub fn new(interval_bytes: u32) -> SegmentIndex {
        SegmentIndex {
            offsets: Vec::new(),
            times: Vec::new(),
            interval_bytes: u64::from(interval_bytes),
            bytes_since_entry: 0,
            max_timestamp: i64::MIN,
            last_batch: None,
            writers: None,
        }
    }

    /// Records a batch appended at `position`; adds entries when due.
    pub fn on_append(&mut self, relative_offset: u32, position: u32, batch_bytes: u32, max_timestamp: i64) {
        self.max_timestamp = self.max_timestamp.max(max_timestamp);
        self.last_batch = Some((relative_offset, position));
        if self.offsets.is_empty() || self.bytes_since_entry >= self.interval_bytes {
            let entry = OffsetEntry { relative_offset, position };
            self.offsets.push(entry);
            if let Some(writers) = self.writers.as_mut() {
                writers.offsets.append(&entry.encode());
            }
            if self.times.last().is_none_or(|last| self.max_timestamp > last.timestamp) {
                self.push_time(TimeEntry { timestamp: self.max_timestamp, relative_offset, position });
            }
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += u64::from(batch_bytes);
    }

    fn push_time(&mut self, entry: TimeEntry) {
        self.times.push(entry);
        if let Some(writers) = self.writers.as_mut() {
            writers.times.append(&entry.encode());
        }
    }

    /// Adds the final time entry for the last batch, so that the last time entry
    /// carries the segment's newest timestamp. Called when the segment is sealed.
    pub fn seal(&mut self) {
        let Some((relative_offset, position)) = self.last_batch else { return };
        if self.times.last().is_some_and(|last| last.relative_offset == relative_offset) {
            return;
        }
        self.push_time(TimeEntry { timestamp: self.max_timestamp, relative_offset, position });
    }

    /// Position of the last indexed batch at or before `relative_offset`.
    pub fn position_for_offset(&self, relative_offset: u32) -> u32 {
        let at = self.offsets.partition_point(|entry| entry.relative_offset <= relative_offset);
        at.checked_sub(1).map_or(0, |i| self.offsets[i].position)
    }

    /// Position from which to scan for the first batch whose max timestamp is at
    /// least `timestamp`: every batch before it is older.
    pub fn position_for_timestamp(&self, timestamp: i64) -> u32 {
        let at = self.times.partition_point(|entry| entry.timestamp < timestamp);
        at.checked_sub(1).map_or(0, |i| self.times[i].position)
    }

    /// Drops every entry at or after `position` (used before rescanning from there).
    pub fn truncate_from(&mut self, position: u32) {
        self.offsets.retain(|entry| entry.position < position);
        self.times.retain(|entry| entry.position < position);
        self.max_timestamp = self.times.last().map_or(i64::MIN, |entry| entry.timestamp);
        // The next batch gets an entry straight away: rescanning resumes at an entry.
        self.bytes_since_entry = self.interval_bytes;
        self.last_batch = None;
    }

    /// Bytes of the offset index and time index files.
    pub fn file_bytes(&self) -> (u64, u64) {
        ((self.offsets.len() * OFFSET_ENTRY_BYTES) as u64, (self.times.len() * TIME_ENTRY_BYTES) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_floor_to_entries() {
        let mut index = SegmentIndex::new(100);
        // Batches of 60 bytes, two records each.
        for i in 0..10u32 {
            index.on_append(i * 2, i * 60, 60, 1000 + i64::from(i));
        }
        // An entry for batch 0, then whenever 100 bytes accumulated: batches 2, 4, 6, 8.
        let positions: Vec<u32> = index.offsets.iter().map(|e| e.position).collect();
        assert_eq!(positions, vec![0, 120, 240, 360, 480]);
        assert_eq!(index.position_for_offset(0), 0);
        assert_eq!(index.position_for_offset(5), 120);
        assert_eq!(index.position_for_offset(100), 480);
        assert_eq!(index.position_for_timestamp(999), 0);
        assert_eq!(index.position_for_timestamp(1005), 240);
        index.seal();
        assert_eq!(index.times.last().unwrap().timestamp, 1009);
        assert_eq!(index.times.last().unwrap().position, 540);
    }

    #[test]
    fn decoding_stops_at_padding_and_disorder() {
        let entries =
            [OffsetEntry { relative_offset: 0, position: 0 }, OffsetEntry { relative_offset: 5, position: 700 }];
        let mut bytes: Vec<u8> = entries.iter().flat_map(|e| e.encode()).collect();
        bytes.extend_from_slice(&[0u8; 64]);
        assert_eq!(decode_offset_entries(&bytes, 10_000), entries.to_vec());
        // An entry pointing past the log ends the index there.
        assert_eq!(decode_offset_entries(&bytes, 700), entries[..1].to_vec());
    }
}
