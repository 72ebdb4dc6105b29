//! Reading: whole stored batches from the cache or with one direct read, the
//! read-ahead that keeps a catching-up consumer's next chunk in memory, and lookups
//! by timestamp.

use super::*;

impl Log {
    /// Whole batches from the one holding `offset`, up to `max_bytes` but always at
    /// least one batch, and never past the high watermark or the end of a segment.
    pub async fn read(self: &Rc<Self>, offset: u64, max_bytes: usize) -> Result<Batches> {
        self.read_up_to(offset, max_bytes, u64::MAX).await
    }

    /// `read`, never past `limit` either (a replicated partition's high watermark,
    /// which its followers set): the batches returned end at or before it, and the
    /// answer's high watermark is the lower of the two.
    pub async fn read_up_to(self: &Rc<Self>, offset: u64, max_bytes: usize, limit: u64) -> Result<Batches> {
        let (start, end) = {
            let state = self.state.borrow();
            (state.start_offset, state.next_offset)
        };
        let high_watermark = self.visible_end(end).min(limit);
        if offset < start || offset > end {
            return Err(StorageError::OffsetOutOfRange { offset, start, end });
        }
        let mut batches = Batches { next_offset: offset, high_watermark, start_offset: start, ..Batches::default() };
        if offset >= high_watermark {
            return Ok(batches);
        }
        if let Some(read) = self.cache.read(self.cache_key, offset, max_bytes, high_watermark) {
            batches.bytes = read.bytes;
            batches.next_offset = read.next_offset;
            batches.chunks = read.batches.into_iter().map(Chunk::Cached).collect();
            check_read(&batches, offset);
            return Ok(batches);
        }
        let segment = {
            let state = self.state.borrow();
            state.segments.range(..=offset).next_back().map(|(_, segment)| segment.clone())
        };
        let Some(segment) = segment else {
            return Err(StorageError::OffsetOutOfRange { offset, start, end });
        };
        self.read_segment(&segment, offset, max_bytes, high_watermark, &mut batches).await?;
        check_read(&batches, offset);
        Ok(batches)
    }

    pub(super) async fn read_segment(
        &self,
        segment: &Rc<Segment>,
        offset: u64,
        max_bytes: usize,
        high_watermark: u64,
        out: &mut Batches,
    ) -> Result<()> {
        let segment_end = segment.size.get();
        self.ensure_written(segment, segment_end).await?;
        // The reader's limit sizes a read that finds nothing ahead, between
        // `read_bytes` and COLD_READ_BYTES_MAX; reads ahead are larger, since large
        // reads move more (on this virtio disk one 32 MiB read moves 1.33 GB/s where
        // back-to-back 8 MiB reads move 0.9 and 2 MiB reads 0.66), and the readers that
        // follow take their share from memory.
        let want = max_bytes.min(COLD_READ_BYTES_MAX).max(self.io.read_bytes);
        let ahead_bytes = (want * READ_AHEAD_FACTOR).clamp(self.io.read_bytes, COLD_READ_BYTES_MAX);
        let (mut start, mut buf) = self.first_read(segment, offset, want, segment_end).await?;
        let (mut from, mut to) = (None, 0usize);
        let mut at = 0usize;
        let mut expected_base = None;
        while at < buf.len() {
            let header = match BatchHeader::parse(&buf[at..]) {
                Ok(header) => header,
                Err(BatchError::Truncated { .. }) if at > 0 => break,
                Err(error) => return Err(self.corrupt(segment, start + at as u64, &error.to_string())),
            };
            if expected_base.is_some_and(|base| base != header.base_offset as u64) {
                return Err(self.corrupt(segment, start + at as u64, "batch offsets are not contiguous"));
            }
            expected_base = Some(header.next_offset() as u64);
            let total = header.total_bytes();
            let batch_next = header.next_offset() as u64;
            if batch_next <= offset {
                at += total;
                continue;
            }
            if batch_next > high_watermark {
                break;
            }
            if from.is_some_and(|from| to - from + total > max_bytes) {
                break;
            }
            if at + total > buf.len() {
                if from.is_some() {
                    break;
                }
                // The first wanted batch is larger than this read: read it whole.
                start += at as u64;
                buf = segment.read_at(start, total).await?;
                if buf.len() < total {
                    return Err(self.corrupt(segment, start, "segment ends inside a batch"));
                }
                from = Some(0);
                to = total;
                out.next_offset = batch_next;
                break;
            }
            if cfg!(debug_assertions) {
                if let Err(error) = batch::validate(&buf[at..at + total], BatchLimits::stored()) {
                    return Err(self.corrupt(segment, start + at as u64, &error.to_string()));
                }
            }
            from.get_or_insert(at);
            to = at + total;
            out.next_offset = batch_next;
            at += total;
        }
        if let Some(from) = from {
            let slice = ReadResult::slice(&buf, from, to - from).expect("range inside the read");
            out.bytes = to - from;
            out.chunks.push(Chunk::Disk(slice));
            self.read_on(segment, start, &buf, to, segment_end, ahead_bytes, out.next_offset);
        }
        Ok(())
    }

    /// The bytes a read at `offset` starts from: what the read ahead holds or is
    /// reading for it, else one direct read of `want` bytes from the index's position
    /// for the offset; with the file position they start at.
    async fn first_read(
        &self,
        segment: &Rc<Segment>,
        offset: u64,
        want: usize,
        segment_end: u64,
    ) -> Result<(u64, ReadResult)> {
        if let Some(ahead) = self.take_read_ahead(segment, offset).await {
            return Ok(ahead);
        }
        let relative = (offset - segment.base_offset) as u32;
        let start = u64::from(segment.index.borrow().position_for_offset(relative));
        let len = aligned_read_len(start, segment_end, want);
        Ok((start, segment.read_at(start, len).await?))
    }

    /// After a cold read that used `buf` (read at `start`) up to `to`: holds the whole
    /// batches left in it for the next reader, and makes sure the disk read after them
    /// is under way, so that a consumer reading on finds its next chunk in memory while
    /// the disk keeps working. Only bytes already on the device (below `written_end`)
    /// are read.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn read_on(
        &self,
        segment: &Rc<Segment>,
        start: u64,
        buf: &ReadResult,
        to: usize,
        written_end: u64,
        len: usize,
        offset: u64,
    ) {
        let (mut end, mut end_offset) = (to, offset);
        while let Ok(header) = BatchHeader::parse(&buf[end..]) {
            if end + header.total_bytes() > buf.len() {
                break;
            }
            end += header.total_bytes();
            end_offset = header.next_offset() as u64;
        }
        let mut queue = self.read_ahead.borrow_mut();
        if end > to {
            // A held slice keeps its whole read buffer alive: that is what it costs.
            // Without it held, a read after it would only be dropped unused.
            let Some(claim) = self.cache.claim_read_ahead(buf.len()) else { return };
            let held = ReadResult::slice(buf, to, end - to).expect("range inside the read");
            let ahead = ReadAhead {
                segment: segment.clone(),
                position: start + to as u64,
                offset,
                data: AheadData::Held(held),
                _claim: claim,
            };
            queue.push_front(ahead);
        }
        let reading = queue.iter().any(|ahead| matches!(ahead.data, AheadData::Reading(_)));
        let position = start + end as u64;
        if reading || position >= written_end {
            return;
        }
        let len = aligned_read_len(position, written_end, len);
        let Some(claim) = self.cache.claim_read_ahead(len) else { return };
        let reader = segment.clone();
        let task = glommio::spawn_local(async move { reader.read_at(position, len).await }).detach();
        let data = AheadData::Reading(task);
        queue.push_back(ReadAhead { segment: segment.clone(), position, offset: end_offset, data, _claim: claim });
    }

    /// The bytes held or read ahead for a read of `offset` in `segment`, if any. A
    /// read anywhere else drops what was ahead.
    pub(super) async fn take_read_ahead(&self, segment: &Rc<Segment>, offset: u64) -> Option<(u64, ReadResult)> {
        let ahead = {
            let mut queue = self.read_ahead.borrow_mut();
            let matches = queue.front().is_some_and(|a| Rc::ptr_eq(&a.segment, segment) && a.offset == offset);
            if !matches {
                queue.clear();
                return None;
            }
            queue.pop_front()?
        };
        let read = match ahead.data {
            AheadData::Held(read) => read,
            AheadData::Reading(task) => task.await?.ok()?,
        };
        Some((ahead.position, read))
    }

    pub(super) fn corrupt(&self, segment: &Segment, position: u64, reason: &str) -> StorageError {
        tracing::error!(log = %self.name, path = %segment.paths.log.display(), position, reason, "corrupt batch on read");
        StorageError::Corrupt { path: segment.paths.log.clone(), reason: format!("at byte {position}: {reason}") }
    }

    /// Makes sure the bytes of `segment` below `end` are on the device, writing out
    /// the active segment's buffer if a read needs it (a read that missed the cache
    /// near the tail; rare).
    pub(super) async fn ensure_written(&self, segment: &Segment, end: u64) -> Result<()> {
        if segment.sealed.get() {
            return Ok(());
        }
        let sealing = self
            .sealing
            .borrow()
            .as_ref()
            .filter(|s| std::ptr::eq(Rc::as_ptr(&s.segment), segment))
            .map(|s| s.tracker.clone());
        if let Some(tracker) = sealing {
            return wait_written(&tracker, end, &self.dir).await;
        }
        let tracker = {
            let mut state = self.state.borrow_mut();
            if !Rc::ptr_eq(state.appender.file(), &segment.file) {
                return Ok(());
            }
            if state.appender.tracker().written.get() < end {
                state.appender.flush();
            }
            state.appender.tracker().clone()
        };
        wait_written(&tracker, end, &self.dir).await
    }

    /// The first record whose timestamp is at least `timestamp`: its offset and
    /// timestamp (what Kafka's ListOffsets answers). `None` if every visible record is
    /// older.
    pub async fn offset_for_timestamp(self: &Rc<Self>, timestamp: i64) -> Result<Option<(u64, i64)>> {
        let segments: Vec<Rc<Segment>> = self.state.borrow().segments.values().cloned().collect();
        let (start_offset, high_watermark) = (self.offsets().start, self.offsets().high_watermark);
        for segment in segments {
            if segment.max_timestamp() < timestamp || segment.next_offset.get() <= start_offset {
                continue;
            }
            let end = segment.size.get();
            self.ensure_written(&segment, end).await?;
            let from = u64::from(segment.index.borrow().position_for_timestamp(timestamp));
            let mut found = None;
            segment
                .scan(from, end, self.io.read_bytes, false, |position, header| {
                    if header.max_timestamp >= timestamp && header.last_offset() as u64 >= start_offset {
                        found = Some((position, *header));
                        return false;
                    }
                    true
                })
                .await?;
            if let Some((position, header)) = found {
                let (offset, found) = self
                    .record_offset(&segment, position, &header, |record| {
                        record.offset as u64 >= start_offset && record.timestamp >= timestamp
                    })
                    .await?
                    .unwrap_or(((header.base_offset as u64).max(start_offset), header.max_timestamp));
                return Ok((offset < high_watermark).then_some((offset, found)));
            }
        }
        Ok(None)
    }

    /// The record with the largest timestamp among the visible ones (the first such
    /// record where several share it): its offset and timestamp, as Kafka's
    /// ListOffsets answers for MAX_TIMESTAMP (KIP-734). `None` for an empty log.
    pub async fn offset_of_max_timestamp(self: &Rc<Self>) -> Result<Option<(u64, i64)>> {
        let segments: Vec<Rc<Segment>> = self.state.borrow().segments.values().cloned().collect();
        let (start_offset, high_watermark) = (self.offsets().start, self.offsets().high_watermark);
        let mut newest: Option<Rc<Segment>> = None;
        for segment in segments {
            if segment.size.get() == 0 || segment.next_offset.get() <= start_offset {
                continue;
            }
            if newest.as_ref().is_none_or(|best| segment.max_timestamp() > best.max_timestamp()) {
                newest = Some(segment);
            }
        }
        let Some(segment) = newest else { return Ok(None) };
        let max_timestamp = segment.max_timestamp();
        let end = segment.size.get();
        self.ensure_written(&segment, end).await?;
        let mut found = None;
        segment
            .scan(0, end, self.io.read_bytes, false, |position, header| {
                if header.max_timestamp == max_timestamp && header.last_offset() as u64 >= start_offset {
                    found = Some((position, *header));
                    return false;
                }
                true
            })
            .await?;
        let Some((position, header)) = found else { return Ok(None) };
        let (offset, _) = self
            .record_offset(&segment, position, &header, |record| {
                record.offset as u64 >= start_offset && record.timestamp == max_timestamp
            })
            .await?
            .unwrap_or(((header.base_offset as u64).max(start_offset), max_timestamp));
        Ok((offset < high_watermark).then_some((offset, max_timestamp)))
    }

    /// The offset and timestamp of the first record of the batch at `position` that
    /// `wanted` accepts, decompressing the batch if it is compressed. `None` when none
    /// does or the records cannot be read (the caller falls back to the batch).
    async fn record_offset(
        &self,
        segment: &Segment,
        position: u64,
        header: &BatchHeader,
        wanted: impl Fn(&strand_format::record::Record<'_>) -> bool,
    ) -> Result<Option<(u64, i64)>> {
        let bytes = segment.read_at(position, header.total_bytes()).await?;
        let mut scratch = Vec::new();
        let Ok(records) = strand_format::record::RecordIter::read(&bytes, &mut scratch, RECORD_LOOKUP_BYTES_MAX) else {
            return Ok(None);
        };
        for record in records {
            match record {
                Ok(record) if wanted(&record) => return Ok(Some((record.offset as u64, record.timestamp))),
                Ok(_) => {}
                Err(_) => return Ok(None),
            }
        }
        Ok(None)
    }
}

/// A lookup by timestamp decompresses at most this much of a batch to find the exact
/// record; past it the answer is the batch's first offset.
const RECORD_LOOKUP_BYTES_MAX: usize = 64 << 20;

/// Bytes to read from `start` so that the aligned request the device sees is exactly
/// `want` bytes (a request of `want` plus one block can be split in two), and never
/// past `end`.
pub(super) fn aligned_read_len(start: u64, end: u64, want: usize) -> usize {
    let skew = start % crate::BLOCK_BYTES as u64;
    (end - start).min(want as u64 - skew) as usize
}

/// In debug builds, the read side of the offset invariant that append asserts: the
/// batches a read returns are whole, the first holds `offset`, each starts where the
/// one before it ended, and they end at `next_offset`, within the high watermark.
fn check_read(batches: &Batches, offset: u64) {
    if !cfg!(debug_assertions) || batches.chunks.is_empty() {
        return;
    }
    let mut expected: Option<u64> = None;
    for chunk in &batches.chunks {
        let mut rest: &[u8] = chunk;
        while !rest.is_empty() {
            let header = BatchHeader::parse(rest).expect("a read returns whole, valid batches");
            let (base, next) = (header.base_offset as u64, header.next_offset() as u64);
            match expected {
                None => {
                    assert!(base <= offset && offset < next, "the first batch [{base}, {next}) holds offset {offset}")
                }
                Some(expected) => assert_eq!(base, expected, "batches are contiguous"),
            }
            expected = Some(next);
            rest = &rest[header.total_bytes()..];
        }
    }
    assert_eq!(expected, Some(batches.next_offset), "next_offset follows the last batch");
    assert!(batches.next_offset <= batches.high_watermark, "never past the high watermark");
}
