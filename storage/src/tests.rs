//! Tests of the partition log as a whole, on real files with direct I/O.

use super::segment::SegmentPaths;
use super::*;
use bytes::BytesMut;
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::rc::Rc;
use strand_format::batch::{self as wire, BatchHeader};
use strand_format::{BatchBuilder, RecordIter};

/// A batch of `records` records whose values carry `tag`, all at `timestamp`.
fn batch(records: usize, value_bytes: usize, timestamp: i64, tag: u64) -> BytesMut {
    let mut builder = BatchBuilder::new();
    for i in 0..records {
        let mut value = vec![(tag % 251) as u8; value_bytes.max(16)];
        value[..8].copy_from_slice(&tag.to_le_bytes());
        value[8..16].copy_from_slice(&(i as u64).to_le_bytes());
        builder.push(Some(format!("k{tag}").as_bytes()), Some(&value), &[], timestamp);
    }
    BytesMut::from(&builder.build()[..])
}

fn config() -> TopicConfig {
    TopicConfig {
        fsync: FsyncPolicy::Never,
        segment_bytes: 64 * 1024,
        index_interval_bytes: 256,
        retention_ms: None,
        ..TopicConfig::default()
    }
}

fn io() -> IoOptions {
    IoOptions { write_buffer_bytes: 16 * 1024, read_bytes: 8 * 1024, index_buffer_bytes: 4096, ..IoOptions::default() }
}

async fn open(dir: &Path, config: TopicConfig, cache_bytes: usize) -> (Rc<Log>, Recovery) {
    Log::open(dir, "test-0", config, io(), Rc::new(BatchCache::new(cache_bytes))).await.expect("open")
}

/// Every visible batch from `from`, split out of the chunks reads return.
async fn read_batches(log: &Rc<Log>, mut from: u64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let read = log.read(from, 4096).await.expect("read");
        if read.chunks.is_empty() {
            assert_eq!(from, read.high_watermark);
            return out;
        }
        for chunk in &read.chunks {
            let mut at = 0;
            while at < chunk.len() {
                let len = wire::batch_bytes(&chunk[at..]).expect("whole batches only");
                out.push(chunk[at..at + len].to_vec());
                at += len;
            }
        }
        assert!(read.next_offset > from);
        from = read.next_offset;
    }
}

/// The batches as the log should hold them: stamped with contiguous offsets.
fn stamped(batches: &[BytesMut]) -> Vec<Vec<u8>> {
    let mut next = 0i64;
    batches
        .iter()
        .map(|b| {
            let mut b = b.to_vec();
            wire::stamp_base_offset(&mut b, next);
            wire::stamp_leader_epoch(&mut b, LEADER_EPOCH);
            next = BatchHeader::parse(&b).unwrap().next_offset();
            b
        })
        .collect()
}

#[test]
fn append_read_round_trip_from_cache_and_disk() {
    run_local("test", || async {
        let dir = tempfile::tempdir().unwrap();
        let input: Vec<BytesMut> =
            (0..200).map(|i| batch(1 + i % 5, 100 + i * 7, 1_000 + i as i64, i as u64)).collect();
        let (log, _) = open(dir.path(), config(), 64 * 1024 * 1024).await;
        let mut expected_offset = 0;
        for b in &input {
            let appended = log.append(b.clone()).await.unwrap();
            assert_eq!(appended.base_offset, expected_offset);
            expected_offset = appended.last_offset + 1;
        }
        assert!(log.segment_count() > 1, "small segments must have rolled");
        let expected = stamped(&input);
        assert_eq!(read_batches(&log, 0).await, expected, "from the cache");
        log.close().await.unwrap();

        // Reopened with no cache: every read is a direct read.
        let (log, recovery) = open(dir.path(), config(), 0).await;
        assert_eq!(recovery.truncation, None);
        assert_eq!(recovery.next_offset, expected_offset);
        assert_eq!(read_batches(&log, 0).await, expected, "from disk");
        // A reader that jumps back while bytes are held or read ahead for where it was
        // gets what it asks for: what was ahead is dropped, not served.
        let mut from = 0;
        for _ in 0..5 {
            from = log.read(from, 4096).await.unwrap().next_offset;
        }
        assert!(from > 0);
        assert_eq!(read_batches(&log, 0).await, expected, "from disk again, after a jump back");
        // A read from the middle of a batch starts with that batch.
        let second = BatchHeader::parse(&expected[1]).unwrap();
        let read = log.read(second.last_offset() as u64, 1).await.unwrap();
        assert_eq!(&read.chunks[0][..], &expected[1][..], "at least one whole batch even past max_bytes");
        // Records decode with their offsets.
        let records: Vec<_> = RecordIter::new(&expected[1]).unwrap().map(|record| record.unwrap()).collect();
        assert_eq!(records[0].offset, second.base_offset);
        assert!(matches!(log.read(expected_offset + 1, 100).await, Err(StorageError::OffsetOutOfRange { .. })));
        assert!(log.read(expected_offset, 100).await.unwrap().chunks.is_empty());
        log.close().await.unwrap();
    });
}

#[test]
fn a_batch_larger_than_the_read_size_is_returned_whole() {
    run_local("test", || async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), config(), 0).await;
        let big = batch(4, 10_000, 1, 1);
        log.append(batch(1, 10, 1, 0)).await.unwrap();
        log.append(big.clone()).await.unwrap();
        let read = log.read(1, 100).await.unwrap();
        assert_eq!(read.bytes, big.len());
        assert_eq!(read.next_offset, 5);
        log.close().await.unwrap();
    });
}

#[test]
fn invalid_batches_are_refused_and_leave_the_log_unchanged() {
    run_local("test", || async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), config(), 1 << 20).await;
        log.append(batch(3, 50, 1, 0)).await.unwrap();
        let before = log.offsets();

        let mut bad_crc = batch(2, 50, 1, 1);
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 1;
        let mut bad_magic = batch(2, 50, 1, 1);
        bad_magic[16] = 1;
        let good = batch(2, 50, 1, 1);
        let truncated = BytesMut::from(&good[..good.len() - 3]);
        let mut trailing = good.clone();
        trailing.extend_from_slice(&[0, 0]);
        for (what, input) in [("crc", bad_crc), ("magic", bad_magic), ("truncated", truncated), ("trailing", trailing)]
        {
            let error = log.append(input).await.expect_err(what);
            assert!(matches!(error, StorageError::InvalidBatch(_)), "{what}: {error}");
            assert_eq!(log.offsets(), before, "{what}");
        }
        assert_eq!(log.append(good).await.unwrap().base_offset, 3);
        log.close().await.unwrap();
    });
}

/// Writes a log of `count` small batches in one segment and closes it.
async fn write_small_log(dir: &Path, count: usize) -> Vec<BytesMut> {
    let input: Vec<BytesMut> = (0..count).map(|i| batch(3, 40, 10 + i as i64, i as u64)).collect();
    let (log, _) = open(dir, config(), 1 << 20).await;
    for b in &input {
        log.append(b.clone()).await.unwrap();
    }
    log.close().await.unwrap();
    input
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Recovers a damaged copy, checks it holds exactly `expected`, appends one more
/// batch and checks that a second reopen holds exactly that too.
async fn check_recovers_to(dir: &Path, expected: &[Vec<u8>], what: &str) -> Recovery {
    let (log, recovery) = open(dir, config(), 0).await;
    assert_eq!(read_batches(&log, 0).await, expected, "{what}");
    let next = batch(2, 30, 99, 999);
    let appended = log.append(next.clone()).await.unwrap();
    let next_offset = expected.last().map_or(0, |b| BatchHeader::parse(b).unwrap().next_offset() as u64);
    assert_eq!(appended.base_offset, next_offset, "{what}");
    log.close().await.unwrap();
    let (log, again) = open(dir, config(), 0).await;
    assert_eq!(again.truncation, None, "{what}: nothing left to cut after recovery");
    let after = read_batches(&log, 0).await;
    assert_eq!(&after[..expected.len()], expected, "{what}");
    assert_eq!(after.len(), expected.len() + 1, "{what}: no stale batch after the new one");
    log.close().await.unwrap();
    recovery
}

fn last_batch_range(log_file: &Path) -> (u64, u64) {
    let bytes = std::fs::read(log_file).unwrap();
    let mut at = 0usize;
    let mut last = (0, 0);
    while let Ok(header) = BatchHeader::parse(&bytes[at..]) {
        last = (at as u64, (at + header.total_bytes()) as u64);
        at += header.total_bytes();
    }
    last
}

#[test]
fn recovery_cuts_a_torn_last_batch_at_every_byte() {
    run_local("test", || async {
        let pristine = tempfile::tempdir().unwrap();
        let input = write_small_log(pristine.path(), 6).await;
        let expected = stamped(&input);
        let log_file = pristine.path().join("00000000000000000000.log");
        let (start, end) = last_batch_range(&log_file);
        assert!(end - start > 100);
        let original = std::fs::read(&log_file).unwrap();
        for cut in start..end {
            let work = tempfile::tempdir().unwrap();
            copy_dir(pristine.path(), work.path());
            let file =
                std::fs::OpenOptions::new().write(true).open(work.path().join("00000000000000000000.log")).unwrap();
            file.set_len(cut).unwrap();
            let what = format!("cut at {cut}");
            let recovery = check_recovers_to(work.path(), &expected[..5], &what).await;
            // What was cut is reported up to its last non-zero byte (a cut inside the
            // high, zero bytes of the base offset leaves nothing to report).
            let nonzero = original[start as usize..cut as usize].iter().rposition(|&b| b != 0).map(|i| i as u64 + 1);
            match nonzero {
                Some(bytes) => {
                    let truncation = recovery.truncation.expect("a cut is reported");
                    assert_eq!(
                        (truncation.position, truncation.offset, truncation.bytes),
                        (start, 15, bytes),
                        "{what}"
                    );
                }
                None => assert_eq!(recovery.truncation, None, "{what}"),
            }
        }
    });
}

#[test]
fn recovery_cuts_a_last_batch_with_overwritten_bytes() {
    run_local("test", || async {
        let pristine = tempfile::tempdir().unwrap();
        let input = write_small_log(pristine.path(), 6).await;
        let expected = stamped(&input);
        let log_file = pristine.path().join("00000000000000000000.log");
        let (start, end) = last_batch_range(&log_file);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        // Every byte of the header once, then random bursts anywhere in the batch.
        let mut damage: Vec<(u64, usize)> = (start..start + 61).map(|at| (at, 1)).collect();
        damage.extend((0..150).map(|_| (rng.gen_range(start..end), rng.gen_range(1..=4))));
        for (at, len) in damage {
            let work = tempfile::tempdir().unwrap();
            copy_dir(pristine.path(), work.path());
            let path = work.path().join("00000000000000000000.log");
            let mut bytes = std::fs::read(&path).unwrap();
            for i in 0..len {
                let i = (at as usize + i).min(end as usize - 1);
                bytes[i] ^= rng.gen_range(1..=255u8);
            }
            std::fs::write(&path, &bytes).unwrap();
            let what = format!("{len} bytes damaged at {at}");
            let recovery = check_recovers_to(work.path(), &expected[..5], &what).await;
            assert_eq!(recovery.truncation.map(|t| t.position), Some(start), "{what}");
        }
    });
}

#[test]
fn indexes_are_rebuilt_when_deleted_or_garbage() {
    run_local("test", || async {
        let dir = tempfile::tempdir().unwrap();
        let input: Vec<BytesMut> = (0..300).map(|i| batch(2, 200, 5_000 + 3 * i as i64, i as u64)).collect();
        let (log, _) = open(dir.path(), config(), 0).await;
        for b in &input {
            log.append(b.clone()).await.unwrap();
        }
        let segments = log.segment_count();
        assert!(segments >= 3);
        let mut lookups = Vec::new();
        for ts in [0, 5_000, 5_001, 5_450, 5_897, 6_000] {
            lookups.push(log.offset_for_timestamp(ts).await.unwrap());
        }
        log.close().await.unwrap();
        let index_files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "index" || e == "timeindex"))
            .collect();
        assert_eq!(index_files.len(), 2 * segments);
        for path in &index_files {
            std::fs::remove_file(path).unwrap();
        }
        let (log, recovery) = open(dir.path(), config(), 0).await;
        assert_eq!(recovery.indexes_rebuilt, segments - 1, "every sealed segment");
        assert_eq!(read_batches(&log, 0).await, stamped(&input));
        for (ts, expected) in [0, 5_000, 5_001, 5_450, 5_897, 6_000].into_iter().zip(&lookups) {
            assert_eq!(&log.offset_for_timestamp(ts).await.unwrap(), expected, "timestamp {ts}");
        }
        log.close().await.unwrap();
        for path in &index_files {
            assert!(path.exists(), "{} written again", path.display());
            std::fs::write(path, vec![0xA5u8; 4096]).unwrap();
        }
        let (log, recovery) = open(dir.path(), config(), 0).await;
        assert_eq!(recovery.indexes_rebuilt, segments - 1);
        assert_eq!(read_batches(&log, 0).await, stamped(&input));
        log.close().await.unwrap();
    });
}

#[test]
fn timestamp_lookup_finds_the_first_batch_at_or_after() {
    run_local("test", || async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), config(), 1 << 20).await;
        // Batch i holds offsets 2i and 2i+1 with max timestamp 1000 + 10i; batch 50
        // goes back in time, as producers' clocks can.
        for i in 0..400i64 {
            let timestamp = if i == 50 { 900 } else { 1_000 + 10 * i };
            log.append(batch(2, 100, timestamp, i as u64)).await.unwrap();
        }
        assert!(log.segment_count() > 1);
        assert_eq!(log.offset_for_timestamp(0).await.unwrap(), Some((0, 1_000)));
        assert_eq!(log.offset_for_timestamp(1_000).await.unwrap(), Some((0, 1_000)));
        assert_eq!(log.offset_for_timestamp(1_001).await.unwrap(), Some((2, 1_010)));
        assert_eq!(log.offset_for_timestamp(1_505).await.unwrap(), Some((102, 1_510)));
        assert_eq!(log.offset_for_timestamp(4_990).await.unwrap(), Some((798, 4_990)));
        assert_eq!(log.offset_for_timestamp(4_991).await.unwrap(), None);
        log.close().await.unwrap();
        let (log, _) = open(dir.path(), config(), 0).await;
        assert_eq!(log.offset_for_timestamp(1_505).await.unwrap(), Some((102, 1_510)));
        assert_eq!(log.offset_for_timestamp(3_333).await.unwrap(), Some((468, 3_340)));
        log.close().await.unwrap();
    });
}

/// A batch of `records` records whose timestamps are `timestamps[i]`, compressed
/// with `codec`.
fn timed_batch(timestamps: &[i64], codec: wire::Compression) -> BytesMut {
    let mut builder = BatchBuilder::with_compression(codec);
    for (i, &timestamp) in timestamps.iter().enumerate() {
        builder.push(Some(format!("k{i}").as_bytes()), Some(&[7u8; 64]), &[], timestamp);
    }
    BytesMut::from(&builder.build()[..])
}

#[test]
fn timestamp_lookups_answer_the_exact_record_in_a_batch() {
    run_local("test", || async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), config(), 1 << 20).await;
        // Offsets 0-3 (uncompressed), 4-7 (lz4), 8-11 (zstd); the newest record, 9_000,
        // sits inside the second batch, and 9_000 comes again in the third.
        log.append(timed_batch(&[1_000, 1_100, 1_200, 1_300], wire::Compression::None)).await.unwrap();
        log.append(timed_batch(&[2_000, 9_000, 2_200, 2_300], wire::Compression::Lz4)).await.unwrap();
        log.append(timed_batch(&[3_000, 3_100, 9_000, 3_300], wire::Compression::Zstd)).await.unwrap();
        for (timestamp, expected) in
            [(0, Some((0, 1_000))), (1_150, Some((2, 1_200))), (1_301, Some((4, 2_000))), (2_150, Some((5, 9_000)))]
        {
            assert_eq!(log.offset_for_timestamp(timestamp).await.unwrap(), expected, "timestamp {timestamp}");
        }
        assert_eq!(log.offset_for_timestamp(9_001).await.unwrap(), None);
        assert_eq!(log.offset_of_max_timestamp().await.unwrap(), Some((5, 9_000)), "the first of the newest");
        log.close().await.unwrap();
        let (log, _) = open(dir.path(), config(), 0).await;
        assert_eq!(log.offset_of_max_timestamp().await.unwrap(), Some((5, 9_000)), "from disk after reopening");
        assert_eq!(log.offset_for_timestamp(3_050).await.unwrap(), Some((5, 9_000)));
        assert_eq!(log.offset_for_timestamp(3_001).await.unwrap(), Some((5, 9_000)), "9,000 comes before 3,100");
        log.close().await.unwrap();
        let empty = tempfile::tempdir().unwrap();
        let (log, _) = open(empty.path(), config(), 0).await;
        assert_eq!(log.offset_of_max_timestamp().await.unwrap(), None);
        log.close().await.unwrap();
    });
}

#[test]
fn deleted_records_stay_deleted_across_a_restart() {
    run_local("test", || async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), config(), 1 << 20).await;
        for i in 0..400 {
            log.append(batch(2, 500, now_ms(), i)).await.unwrap();
        }
        let segments = log.segment_count();
        assert!(segments > 4);
        assert!(matches!(log.delete_records_before(801).await, Err(StorageError::OffsetOutOfRange { .. })));
        assert_eq!(log.delete_records_before(0).await.unwrap(), 0, "nothing to delete");
        // Inside a batch, inside a sealed segment past the first.
        assert_eq!(log.delete_records_before(301).await.unwrap(), 301);
        assert_eq!(log.offsets().start, 301);
        assert!(log.segment_count() < segments, "segments wholly below the start are deleted");
        assert!(matches!(log.read(300, 1 << 20).await, Err(StorageError::OffsetOutOfRange { .. })));
        let from = log.read(301, 1 << 20).await.unwrap();
        assert_eq!(from.start_offset, 301);
        assert!(!from.chunks.is_empty(), "the batch holding 301 is served whole");
        assert_eq!(log.delete_records_before(100).await.unwrap(), 301, "a start never moves back");
        assert_eq!(log.offset_for_timestamp(0).await.unwrap().map(|(offset, _)| offset), Some(301));
        log.close().await.unwrap();
        let (log, _) = open(dir.path(), config(), 0).await;
        assert_eq!(log.offsets().start, 301, "the start survives a restart");
        assert!(matches!(log.read(300, 1 << 20).await, Err(StorageError::OffsetOutOfRange { .. })));
        // Up to the end: the log is empty and appends go on from there.
        assert_eq!(log.delete_records_before(800).await.unwrap(), 800);
        let appended = log.append(batch(1, 100, now_ms(), 9)).await.unwrap();
        assert_eq!(appended.base_offset, 800);
        log.close().await.unwrap();
        std::fs::write(dir.path().join("log-start-offset"), b"garbage").unwrap();
        let reopened = Log::open(dir.path(), "test-0", config(), io(), Rc::new(BatchCache::new(0))).await;
        assert!(matches!(reopened, Err(StorageError::Corrupt { .. })), "a garbled start is reported, not guessed");
    });
}

#[test]
fn retention_by_bytes_deletes_oldest_sealed_segments() {
    run_local("test", || async {
        let dir = tempfile::tempdir().unwrap();
        let retention = TopicConfig { retention_bytes: Some(150 * 1024), ..config() };
        let (log, _) = open(dir.path(), retention, 1 << 20).await;
        for i in 0..400 {
            log.append(batch(2, 500, now_ms(), i)).await.unwrap();
        }
        let before = log.size_bytes();
        assert!(before > 300 * 1024);
        let retained = log.enforce_retention(now_ms()).await.unwrap();
        assert!(retained.segments_deleted > 0);
        assert_eq!(log.size_bytes(), before - retained.bytes_deleted);
        assert!(log.size_bytes() < 150 * 1024 + 64 * 1024, "within one segment of the limit");
        assert!(log.size_bytes() >= 150 * 1024, "never below the limit");
        let start = log.offsets().start;
        assert!(start > 0);
        assert!(matches!(log.read(0, 100).await, Err(StorageError::OffsetOutOfRange { .. })));
        assert_eq!(read_batches(&log, start).await.len() as u64 * 2, log.offsets().end - start);
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, 3 * log.segment_count(), "deleted segments' files are gone");
        log.close().await.unwrap();
        let (log, _) = open(dir.path(), config(), 0).await;
        assert_eq!(log.offsets().start, start, "the start offset survives a restart");
        log.close().await.unwrap();
    });
}

#[test]
fn retention_by_age_keeps_recent_segments_and_the_active_one() {
    run_local("test", || async {
        let dir = tempfile::tempdir().unwrap();
        let hour_ms = 3_600_000;
        let retention = TopicConfig { retention_ms: Some(hour_ms as u64), ..config() };
        let (log, _) = open(dir.path(), retention, 1 << 20).await;
        let now = now_ms();
        for i in 0..150 {
            log.append(batch(2, 500, now - 2 * hour_ms, i)).await.unwrap();
        }
        let old_end = log.offsets().end;
        for i in 0..150 {
            log.append(batch(2, 500, now, 1000 + i)).await.unwrap();
        }
        let retained = log.enforce_retention(now).await.unwrap();
        assert!(retained.segments_deleted >= 1);
        let start = log.offsets().start;
        assert!(start <= old_end, "the segment holding both old and new records stays");
        assert!(log.offset_for_timestamp(now).await.unwrap().is_some());
        // Everything old: all sealed segments go, the active one stays.
        let retained = log.enforce_retention(now + 3 * hour_ms).await.unwrap();
        assert!(retained.segments_deleted >= 1);
        assert_eq!(log.segment_count(), 1);
        assert!(log.append(batch(1, 10, now, 7)).await.is_ok());
        log.close().await.unwrap();
    });
}

#[test]
fn always_group_commits_concurrent_appends() {
    run_local("test", || async {
        let dir = tempfile::tempdir().unwrap();
        let durable = TopicConfig { fsync: FsyncPolicy::Always, ..config() };
        let (log, _) = open(dir.path(), durable, 1 << 20).await;
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let log = log.clone();
                glommio::spawn_local(async move { log.append(batch(1, 100, 1, i)).await.unwrap() })
            })
            .collect();
        let mut offsets = Vec::new();
        for task in tasks {
            let appended = task.await;
            // Resolved only once durable.
            assert!(log.offsets().durable > appended.last_offset);
            offsets.push(appended.base_offset);
        }
        offsets.sort_unstable();
        assert_eq!(offsets, (0..64).collect::<Vec<_>>());
        assert_eq!(log.offsets().high_watermark, 64);
        log.close().await.unwrap();
    });
}

#[test]
fn interval_and_never_reach_the_device_without_close() {
    run_local("test", || async {
        for (fsync, what) in [(FsyncPolicy::Interval, "interval"), (FsyncPolicy::Never, "never")] {
            let dir = tempfile::tempdir().unwrap();
            let policy = TopicConfig { fsync, fsync_interval_ms: 5, ..config() };
            let (log, _) = open(dir.path(), policy, 1 << 20).await;
            log.append(batch(1, 100, 1, 1)).await.unwrap();
            glommio::timer::sleep(std::time::Duration::from_millis(100)).await;
            if fsync == FsyncPolicy::Interval {
                assert_eq!(log.offsets().durable, 1, "{what}: synced by the timer");
            }
            // Read the file behind the log's back: the batch must be there.
            let bytes = std::fs::read(dir.path().join("00000000000000000000.log")).unwrap();
            assert!(BatchHeader::parse(&bytes).is_ok(), "{what}: written by the timer");
            log.close().await.unwrap();
        }
    });
}

#[test]
fn a_switch_to_always_syncs_what_never_left_and_keeps_it_visible() {
    run_local("test", || async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), config(), 1 << 20).await;
        for i in 0..3 {
            log.append(batch(4, 100, 1, i)).await.unwrap();
        }
        let before = log.offsets();
        assert_eq!((before.end, before.high_watermark), (12, 12));
        let syncs = log.fdatasync_count();
        log.set_config(TopicConfig { fsync: FsyncPolicy::Always, ..config() });
        assert_eq!(log.offsets().high_watermark, 12, "what was visible stays visible");
        assert_eq!(read_batches(&log, 0).await.len(), 3);
        // The switch itself starts the fdatasync that covers the earlier appends.
        for _ in 0..200 {
            if log.offsets().durable == 12 {
                break;
            }
            glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(log.offsets().durable, 12);
        assert!(log.fdatasync_count() > syncs);
        // From now on an append is acknowledged once durable, and only then visible.
        let appended = log.append(batch(4, 100, 1, 3)).await.unwrap();
        assert_eq!(appended.last_offset, 15);
        assert_eq!((log.offsets().durable, log.offsets().high_watermark), (16, 16));
        log.close().await.unwrap();
    });
}

#[test]
fn read_ahead_of_every_log_on_a_shard_stays_within_one_budget() {
    run_local("test", || async {
        for budget in [64 * 1024, 0] {
            // No batch cache: every read goes to disk, as a consumer catching up.
            let cache = Rc::new(BatchCache::new(0));
            cache.set_read_ahead_bytes(budget);
            let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
            let mut logs = Vec::new();
            let mut written = Vec::new();
            for dir in &dirs {
                let (log, _) = Log::open(dir.path(), "test-0", config(), io(), cache.clone()).await.unwrap();
                let batches: Vec<BytesMut> = (0..120).map(|i| batch(1, 1000, 1, i)).collect();
                for b in &batches {
                    log.append(b.clone()).await.unwrap();
                }
                logs.push(log);
                written.push(stamped(&batches));
            }
            // Two consumers catching up at once, a read each in turn.
            let mut positions = [0u64, 0];
            let mut read: [Vec<Vec<u8>>; 2] = Default::default();
            let mut most_held = 0;
            while positions.iter().zip(&logs).any(|(&p, log)| p < log.offsets().end) {
                for (i, log) in logs.iter().enumerate() {
                    let got = log.read(positions[i], 4096).await.unwrap();
                    for chunk in &got.chunks {
                        let mut at = 0;
                        while at < chunk.len() {
                            let len = wire::batch_bytes(&chunk[at..]).unwrap();
                            read[i].push(chunk[at..at + len].to_vec());
                            at += len;
                        }
                    }
                    positions[i] = got.next_offset;
                    let held = cache.stats().read_ahead_bytes;
                    assert!(held <= budget, "{held} bytes read ahead, budget {budget}");
                    most_held = most_held.max(held);
                }
            }
            assert_eq!(read[0], written[0], "budget {budget}: every batch, in order");
            assert_eq!(read[1], written[1], "budget {budget}: every batch, in order");
            assert_eq!(most_held > 0, budget > 0, "budget {budget}: read-ahead used {most_held}");
            for log in logs {
                log.close().await.unwrap();
            }
            drop(dirs);
        }
    });
}

#[test]
fn log_append_time_is_stamped() {
    run_local("test", || async {
        let dir = tempfile::tempdir().unwrap();
        let config = TopicConfig { timestamp_source: TimestampSource::LogAppendTime, ..config() };
        let (log, _) = open(dir.path(), config, 1 << 20).await;
        let before = now_ms();
        let appended = log.append(batch(2, 10, 1, 1)).await.unwrap();
        let stamped_ms = appended.log_append_time_ms.unwrap();
        assert!(stamped_ms >= before);
        let stored = read_batches(&log, 0).await;
        let header = wire::validate(&stored[0], wire::BatchLimits::default()).unwrap();
        assert_eq!(header.max_timestamp, stamped_ms);
        let records: Vec<_> = RecordIter::new(&stored[0]).unwrap().map(|record| record.unwrap()).collect();
        assert!(records.iter().all(|r| r.timestamp == stamped_ms));
        log.close().await.unwrap();
    });
}

#[test]
fn a_partition_that_cannot_be_opened_is_reported_and_the_others_open() {
    run_local("test", || async {
        let root = tempfile::tempdir().unwrap();
        let specs: Vec<LogSpec> = (0..3)
            .map(|p| LogSpec {
                name: format!("orders-{p}"),
                dir: root.path().join(format!("orders-{p}")),
                config: config(),
            })
            .collect();
        // Three segments in each, then a hole in the middle of orders-1's offsets.
        for spec in &specs {
            let (log, _) = open(&spec.dir, spec.config.clone(), 1 << 20).await;
            for i in 0..300 {
                log.append(batch(2, 200, 1, i)).await.unwrap();
            }
            assert!(log.segment_count() >= 3);
            log.close().await.unwrap();
        }
        let mut segments: Vec<_> = std::fs::read_dir(&specs[1].dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        segments.sort();
        std::fs::remove_file(&segments[1]).unwrap();

        let cache = Rc::new(BatchCache::new(1 << 20));
        let (opened, failures) = open_logs(specs, &io(), &cache).await;
        let names: Vec<_> = opened.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["orders-0", "orders-2"]);
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].name, "orders-1");
        assert!(matches!(failures[0].error, StorageError::Corrupt { .. }), "{}", failures[0].error);
        assert!(failures[0].error.to_string().contains("ends at"), "{}", failures[0].error);
        for o in &opened {
            assert_eq!(o.log.offsets().end, 600);
            o.log.close().await.unwrap();
        }
    });
}

#[test]
fn retention_runs_in_the_background_while_appends_go_on() {
    run_local("test", || async {
        let dir = tempfile::tempdir().unwrap();
        let retention = TopicConfig { retention_bytes: Some(128 * 1024), ..config() };
        let (log, _) = open(dir.path(), retention, 1 << 20).await;
        log.start_retention(std::time::Duration::from_millis(5));
        for i in 0..600 {
            log.append(batch(2, 500, now_ms(), i)).await.unwrap();
            if i % 50 == 0 {
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
        glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
        assert!(log.offsets().start > 0, "the background task deleted old segments");
        assert!(log.size_bytes() < 128 * 1024 + 64 * 1024);
        assert_eq!(log.offsets().end, 1200, "every append went through");
        log.close().await.unwrap();
    });
}

#[test]
fn segments_roll_by_age() {
    run_local("test", || async {
        let dir = tempfile::tempdir().unwrap();
        let aging = TopicConfig { segment_ms: 50, ..config() };
        let (log, _) = open(dir.path(), aging, 1 << 20).await;
        log.append(batch(1, 10, 1, 0)).await.unwrap();
        log.append(batch(1, 10, 1, 1)).await.unwrap();
        assert_eq!(log.segment_count(), 1);
        glommio::timer::sleep(std::time::Duration::from_millis(80)).await;
        log.append(batch(1, 10, 1, 2)).await.unwrap();
        assert_eq!(log.segment_count(), 2, "the old segment was sealed by age");
        assert_eq!(read_batches(&log, 0).await.len(), 3);
        log.close().await.unwrap();
    });
}

/// An `always` log in `dir` holding five acknowledged batches, and those batches.
async fn always_log_with_five(dir: &Path) -> (Rc<Log>, Vec<BytesMut>) {
    let (log, _) = open(dir, TopicConfig { fsync: FsyncPolicy::Always, ..config() }, 1 << 20).await;
    let acknowledged: Vec<BytesMut> = (0..5).map(|i| batch(2, 100, 1, i)).collect();
    for b in &acknowledged {
        log.append(b.clone()).await.unwrap();
    }
    (log, acknowledged)
}

#[test]
fn an_fdatasync_failure_fails_waiting_appends_and_refuses_later_ones() {
    run_local("test", || async {
        let dir = tempfile::tempdir().unwrap();
        let durable = TopicConfig { fsync: FsyncPolicy::Always, ..config() };
        let (log, acknowledged) = always_log_with_five(dir.path()).await;
        probe::fail_syncs_after(Some(0));
        let waiting: Vec<_> = (0..4)
            .map(|i| {
                let log = log.clone();
                glommio::spawn_local(async move { log.append(batch(2, 100, 1, 100 + i)).await })
            })
            .collect();
        for task in waiting {
            let error = task.await.expect_err("no fdatasync covered it");
            assert!(matches!(error, StorageError::Failed { .. }), "{error}");
        }
        let refused = log.append(batch(2, 100, 1, 200)).await.expect_err("the log refuses writes");
        assert!(refused.to_string().contains("reopen"), "{refused}");
        assert_eq!(log.offsets().high_watermark, 10, "readers see only what was made durable");
        assert_eq!(read_batches(&log, 0).await.len(), 5);
        probe::fail_syncs_after(None);
        log.close().await.unwrap();

        let (log, _) = open(dir.path(), durable, 0).await;
        let stored = read_batches(&log, 0).await;
        assert!(stored.len() >= 5, "every acknowledged batch survives");
        assert_eq!(&stored[..5], &stamped(&acknowledged)[..]);
        assert!(log.append(batch(2, 100, 1, 300)).await.is_ok(), "a reopened log takes writes again");
        log.close().await.unwrap();
    });
}

#[test]
fn a_write_failure_refuses_appends_and_keeps_what_was_acknowledged() {
    run_local("test", || async {
        let dir = tempfile::tempdir().unwrap();
        let durable = TopicConfig { fsync: FsyncPolicy::Always, ..config() };
        let (log, acknowledged) = always_log_with_five(dir.path()).await;
        probe::fail_writes_after(Some(0));
        let error = log.append(batch(2, 100, 1, 9)).await.expect_err("its write failed");
        assert!(matches!(error, StorageError::Failed { .. }), "{error}");
        assert!(log.append(batch(2, 100, 1, 10)).await.is_err(), "refused until reopened");
        probe::fail_writes_after(None);
        assert!(log.close().await.is_err(), "close reports the failed write");

        let (log, _) = open(dir.path(), durable, 0).await;
        let stored = read_batches(&log, 0).await;
        assert_eq!(&stored[..5], &stamped(&acknowledged)[..], "every acknowledged batch survives, unchanged");
        log.close().await.unwrap();
    });
}

#[test]
fn rolls_take_a_standby_segment_and_leftover_standby_files_are_removed() {
    run_local("test", || async {
        let dir = tempfile::tempdir().unwrap();
        let standby = SegmentPaths::standby(dir.path());
        // No cache: every read below goes to the segments, the one still being sealed
        // after the last roll included.
        let (log, _) = open(dir.path(), config(), 0).await;
        let mut input = Vec::new();
        let mut saw_standby = false;
        for i in 0..400u64 {
            let b = batch(2, 300, 1_000 + i as i64, i);
            log.append(b.clone()).await.unwrap();
            input.push(b);
            if i % 20 == 0 {
                glommio::timer::sleep(std::time::Duration::from_millis(2)).await;
                saw_standby |= standby.log.exists();
            }
        }
        assert!(log.segment_count() > 4, "small segments must have rolled");
        assert!(saw_standby, "the next segment was prepared ahead of its roll");
        let expected = stamped(&input);
        assert_eq!(read_batches(&log, 0).await, expected, "read back right after the last roll");
        log.close().await.unwrap();
        for path in [&standby.log, &standby.offset_index, &standby.time_index] {
            assert!(!path.exists(), "{} is removed at close", path.display());
        }

        // A crash can leave standby files, with anything in them: they are never data.
        for path in [&standby.log, &standby.offset_index, &standby.time_index] {
            std::fs::write(path, vec![0xab; 10_000]).unwrap();
        }
        let (log, recovery) = open(dir.path(), config(), 0).await;
        assert_eq!(recovery.truncation, None);
        assert_eq!(recovery.next_offset, 800);
        assert!(!standby.log.exists(), "leftover standby files are removed at open");
        assert_eq!(read_batches(&log, 0).await, expected);
        log.close().await.unwrap();
    });
}

/// Runs `make`'s future on a fresh glommio executor in a thread of its own, with a
/// small registered-buffer pool so that tests running at once stay under the memlock
/// limit.
fn run_local<F, Fut, T>(name: &str, make: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
    T: Send + 'static,
{
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .name(name)
        .io_memory(1 << 20)
        .preempt_timer(crate::quota::TASK_QUOTA)
        .spawn(make)
        .expect("starting a glommio executor")
        .join()
        .expect("the executor thread panicked")
}

/// A batch as a leader stored it: `batch` stamped with its offset and epoch.
fn led(records: usize, tag: u64, base_offset: u64, epoch: i32) -> BytesMut {
    let mut b = batch(records, 100, now_ms(), tag);
    wire::stamp_base_offset(&mut b, base_offset as i64);
    wire::stamp_leader_epoch(&mut b, epoch);
    b
}

#[test]
fn leader_epochs_are_recorded_before_their_batches_and_checked_by_recovery() {
    run_local("test", || async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), config(), 1 << 20).await;
        // Epoch 0, as on a broker alone: nothing to record.
        for i in 0..3 {
            log.append_leader(batch(2, 100, now_ms(), i), 0).await.unwrap();
        }
        assert!(!dir.path().join("leader-epochs").exists());
        // A later epoch is recorded, with the batches so far at epoch 0, before its
        // first batch is appended.
        log.append_leader(batch(2, 100, now_ms(), 3), 2).await.unwrap();
        assert_eq!(log.leader_epochs().entries(), [(0, 0), (2, 6)]);
        assert_eq!(std::fs::read_to_string(dir.path().join("leader-epochs")).unwrap(), "0\n2\n0 0\n2 6\n");
        // A deposed leader's append (an older epoch) is refused, the log unchanged.
        let stale = log.append_leader(batch(1, 100, now_ms(), 4), 1).await;
        assert!(matches!(stale, Err(StorageError::StaleEpoch { epoch: 1, latest: 2 })), "{stale:?}");
        assert_eq!(log.offsets().end, 8);
        log.append_leader(batch(1, 100, now_ms(), 5), 5).await.unwrap();
        let before = read_batches(&log, 0).await;
        log.close().await.unwrap();
        // Recovery reads every batch back at the epoch recorded for its offset.
        let (log, recovery) = open(dir.path(), config(), 0).await;
        assert!(recovery.truncation.is_none(), "{recovery:?}");
        assert_eq!(read_batches(&log, 0).await, before);
        assert_eq!(log.latest_epoch(), 5);
        let epochs: Vec<i32> = before.iter().map(|b| BatchHeader::parse(b).unwrap().partition_leader_epoch).collect();
        assert_eq!(epochs, [0, 0, 0, 2, 5]);
        log.close().await.unwrap();
        // A batch whose epoch field was damaged (it is outside the CRC) is cut there.
        let (position, _) = last_batch_range(&SegmentPaths::new(dir.path(), 0).log);
        let path = SegmentPaths::new(dir.path(), 0).log;
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[position as usize + 12..position as usize + 16].copy_from_slice(&3i32.to_be_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let (log, recovery) = open(dir.path(), config(), 0).await;
        let cut = recovery.truncation.expect("the damaged batch is cut");
        assert!(cut.reason.contains("leader epoch 3") && cut.reason.contains("at epoch 5"), "{}", cut.reason);
        assert_eq!(log.offsets().end, 8);
        log.close().await.unwrap();
    });
}

#[test]
fn a_follower_stores_its_leaders_batches_as_they_are() {
    run_local("test", || async {
        let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (leader, _) = open(leader_dir.path(), config(), 1 << 20).await;
        for (i, epoch) in [0, 0, 1, 1, 4].into_iter().enumerate() {
            leader.append_leader(batch(3, 100, now_ms(), i as u64), epoch).await.unwrap();
        }
        let stored = read_batches(&leader, 0).await;
        let (follower, _) = open(follower_dir.path(), config(), 1 << 20).await;
        for b in &stored {
            follower.append_replica(BytesMut::from(&b[..])).await.unwrap();
        }
        assert_eq!(read_batches(&follower, 0).await, stored, "byte for byte, offsets and epochs kept");
        assert_eq!(follower.leader_epochs(), leader.leader_epochs());
        // A batch that does not start at the follower's end is refused.
        let gap = led(1, 9, 20, 4);
        let refused = follower.append_replica(gap).await;
        assert!(matches!(refused, Err(StorageError::OffsetMismatch { expected: 15, found: 20 })), "{refused:?}");
        // So is one of an epoch older than the follower's latest, and a damaged one.
        let old = follower.append_replica(led(1, 9, 15, 1)).await;
        assert!(matches!(old, Err(StorageError::StaleEpoch { epoch: 1, latest: 4 })), "{old:?}");
        let mut damaged = led(1, 9, 15, 4);
        let last = damaged.len() - 1;
        damaged[last] ^= 0xff;
        assert!(matches!(follower.append_replica(damaged).await, Err(StorageError::InvalidBatch(_))));
        follower.append_replica(led(2, 9, 15, 6)).await.unwrap();
        assert_eq!(follower.leader_epochs().entries(), [(0, 0), (1, 6), (4, 12), (6, 15)]);
        follower.close().await.unwrap();
        let (follower, recovery) = open(follower_dir.path(), config(), 0).await;
        assert!(recovery.truncation.is_none(), "{recovery:?}");
        assert_eq!(follower.offsets().end, 17);
        follower.close().await.unwrap();
        leader.close().await.unwrap();
    });
}

#[test]
fn a_follower_truncates_its_tail_across_segments_and_goes_on_from_there() {
    run_local("test", || async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), config(), 1 << 20).await;
        for i in 0..300u64 {
            let epoch = if i < 200 { 1 } else { 3 };
            log.append_leader(batch(2, 500, now_ms(), i), epoch).await.unwrap();
        }
        let all = read_batches(&log, 0).await;
        let segments = log.segment_count();
        assert!(segments > 4, "{segments} segments");
        assert_eq!(log.leader_epochs().entries(), [(1, 0), (3, 400)]);
        // At the end: nothing dropped.
        let (log, _) = log.truncate_to(600).await.unwrap();
        assert_eq!(read_batches(&log, 0).await, all);
        // In the active segment: its last batch goes, the epochs stay.
        let (log, _) = log.truncate_to(598).await.unwrap();
        assert_eq!(read_batches(&log, 0).await, all[..299].to_vec());
        assert_eq!(log.leader_epochs().entries(), [(1, 0), (3, 400)]);
        assert_eq!(log.segment_count(), segments);
        // Inside a batch of an earlier segment, at epoch 1: the batch holding it goes
        // too, every later segment with it, and epoch 3 (which began after).
        let (log, recovery) = log.truncate_to(151).await.unwrap();
        assert!(recovery.truncation.is_none(), "{recovery:?}");
        assert_eq!(log.offsets().end, 150);
        assert!(log.segment_count() < segments);
        assert_eq!(read_batches(&log, 0).await, all[..75].to_vec());
        assert_eq!(log.leader_epochs().entries(), [(1, 0)]);
        assert_eq!(log.latest_epoch(), 1);
        // Appends go on from the cut, at a new epoch.
        let appended = log.append_leader(batch(2, 500, now_ms(), 1000), 4).await.unwrap();
        assert_eq!(appended.base_offset, 150);
        assert_eq!(log.leader_epochs().entries(), [(1, 0), (4, 150)]);
        // Outside the log: refused, the log unchanged.
        let (start, end) = (log.offsets().start, log.offsets().end);
        assert_eq!((start, end), (0, 152));
        let refused = log.clone().truncate_to(153).await;
        assert!(matches!(refused, Err(StorageError::OffsetOutOfRange { offset: 153, .. })));
        log.close().await.unwrap();
        let (log, recovery) = open(dir.path(), config(), 0).await;
        assert!(recovery.truncation.is_none(), "{recovery:?}");
        assert_eq!(log.offsets().end, 152);
        let kept = read_batches(&log, 0).await;
        assert_eq!(kept[..75].to_vec(), all[..75].to_vec());
        // Down to nothing.
        let (log, _) = log.truncate_to(0).await.unwrap();
        assert_eq!(log.offsets().end, 0);
        assert!(read_batches(&log, 0).await.is_empty());
        log.close().await.unwrap();
    });
}
