//! Criterion micro-benchmarks of the partition log: append and read of 64 KiB batches
//! of 1 KiB records, on real files with direct I/O in a temporary directory (which
//! must be on a disk, not tmpfs). For regression tracking; `strand-bench log` is the
//! measurement that compares the log with the disk's limits.
//!
//! Each append bench copies its input batch inside the timed loop (the log keeps
//! what it is given), which a server does not; the figures understate the log a little.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};
use strand::runtime::run_local;
use strand::storage::{BatchCache, FsyncPolicy, IoOptions, Log, TopicConfig};
use strand_bench::log_bench::make_batches;

const BATCH_BYTES: usize = 64 * 1024;
const RECORD_BYTES: usize = 1024;
const READ_LOG_BYTES: u64 = 256 << 20;

fn topic(fsync: FsyncPolicy) -> TopicConfig {
    TopicConfig { fsync, retention_ms: None, ..TopicConfig::default() }
}

fn bench_dir() -> tempfile::TempDir {
    // The working directory is on the project's disk; /tmp may be tmpfs elsewhere.
    tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).expect("a temporary directory beside the bench")
}

/// Appends `iters` batches to a fresh log and returns the time, close included.
fn time_appends(fsync: FsyncPolicy, iters: u64, batches: Vec<Bytes>) -> Duration {
    let dir = bench_dir();
    let path = dir.path().to_path_buf();
    run_local("bench", move || async move {
        let cache = Rc::new(BatchCache::new(64 << 20));
        let (log, _) = Log::open(&path, "bench-0", topic(fsync), IoOptions::default(), cache).await.unwrap();
        let started = Instant::now();
        for i in 0..iters as usize {
            log.append(BytesMut::from(&batches[i % batches.len()][..])).await.unwrap();
        }
        log.close().await.unwrap();
        started.elapsed()
    })
}

fn append(c: &mut Criterion) {
    let batches = make_batches(32, BATCH_BYTES, RECORD_BYTES, 1);
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Bytes(batches[0].len() as u64));
    group.sample_size(10).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    for (name, fsync) in [("never", FsyncPolicy::Never), ("interval_1s", FsyncPolicy::Interval)] {
        group.bench_function(format!("64KiB_batch/{name}"), |b| {
            b.iter_custom(|iters| time_appends(fsync, iters, batches.clone()))
        });
    }
    group.finish();
}

/// Writes a log of `READ_LOG_BYTES` once, for the read benches.
fn prepare_read_log(batches: Vec<Bytes>) -> (tempfile::TempDir, usize) {
    let dir = bench_dir();
    let path = dir.path().to_path_buf();
    let read_bytes = run_local("bench", move || async move {
        let (log, _) = open(&path, 0).await;
        append_bytes(&log, &batches, READ_LOG_BYTES).await;
        let read_bytes = log.read(0, 1 << 20).await.unwrap().bytes;
        log.close().await.unwrap();
        read_bytes
    });
    (dir, read_bytes)
}

/// Appends copies of `batches`, in turn, until `bytes` were appended.
async fn append_bytes(log: &Rc<Log>, batches: &[Bytes], bytes: u64) {
    let mut written = 0;
    for batch in batches.iter().cycle() {
        if written >= bytes {
            break;
        }
        log.append(BytesMut::from(&batch[..])).await.unwrap();
        written += batch.len() as u64;
    }
}

async fn open(path: &Path, cache_bytes: usize) -> (Rc<Log>, strand::storage::Recovery) {
    let cache = Rc::new(BatchCache::new(cache_bytes));
    Log::open(path, "bench-0", topic(FsyncPolicy::Never), IoOptions::default(), cache).await.unwrap()
}

/// Reads 1 MiB at a time from the start, `iters` times, wrapping at the end. With
/// `warm`, every batch is appended again into a cache that holds them all first.
fn time_reads(path: PathBuf, iters: u64, warm: Option<Vec<Bytes>>) -> Duration {
    run_local("bench", move || async move {
        let cache_bytes = if warm.is_some() { 2 * READ_LOG_BYTES as usize } else { 0 };
        let (log, _) = open(&path, cache_bytes).await;
        let mut start = 0;
        if let Some(batches) = warm {
            // Cached reads: append another copy of the log so the cache holds it.
            start = log.offsets().end;
            append_bytes(&log, &batches, READ_LOG_BYTES).await;
        }
        let stop = log.offsets().end;
        let started = Instant::now();
        let mut next = start;
        for _ in 0..iters {
            let read = log.read(next, 1 << 20).await.unwrap();
            next = if read.next_offset >= stop { start } else { read.next_offset };
            criterion::black_box(read.chunks);
        }
        let elapsed = started.elapsed();
        log.close().await.unwrap();
        elapsed
    })
}

fn read(c: &mut Criterion) {
    let batches = make_batches(32, BATCH_BYTES, RECORD_BYTES, 2);
    let (dir, read_bytes) = prepare_read_log(batches.clone());
    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Bytes(read_bytes as u64));
    group.sample_size(10).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    group.bench_function("1MiB/cold", |b| b.iter_custom(|iters| time_reads(dir.path().to_path_buf(), iters, None)));
    group.bench_function("1MiB/cached", |b| {
        b.iter_custom(|iters| time_reads(dir.path().to_path_buf(), iters, Some(batches.clone())))
    });
    group.finish();
}

criterion_group!(benches, append, read);
criterion_main!(benches);
