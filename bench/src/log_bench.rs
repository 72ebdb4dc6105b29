//! `strand-bench log`: the partition log's throughput beside the raw limits of the
//! same disk, measured by the same program in the same run.
//!
//! Phases, each on fresh files in `--dir`:
//! 1. raw direct sequential write (1 MiB writes, 4 in flight) and raw direct read
//!    (1 MiB reads, 1 and 4 in flight) of `--bytes`;
//! 2. log appends of `--bytes` with `fsync = "never"`, then `"interval"` at 1 ms,
//!    timed until the data is on the device (close included);
//! 3. a cold read of the `never` log, reopened with no cache;
//! 4. one 64 KiB write + fdatasync per append, and `fsync = "always"` with 1, 8 and 64
//!    concurrent appenders, each for `--always-seconds`.
//!
//! Batches are 64 KiB of 1 KiB records with random values, built before timing starts.
//! Each append also copies its batch out of that set (the log keeps what it is given,
//! as the server hands it a network buffer), and that copy is counted against the log.

use crate::limits::{direct_read, direct_write, fdatasync_per_write, Rate};
use bytes::{Bytes, BytesMut};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};
use strand::storage::{BatchCache, FsyncPolicy, IoOptions, Log, TopicConfig};
use strand_protocol::BatchBuilder;

/// Rounds of raw measurement then log measurement in the append and read phases.
const ROUNDS: usize = 3;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Settings of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub dir: PathBuf,
    pub bytes: u64,
    pub batch_bytes: usize,
    pub record_bytes: usize,
    pub always_seconds: f64,
    /// Which groups of phases to run: `append` (raw write, never, interval), `read`
    /// (raw read, cold read; writes what it reads first), `always`.
    pub phases: Vec<String>,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    pub rate: Rate,
    /// The limit this row is compared with, and the ratio.
    pub compared_with: Option<String>,
    pub ratio: Option<f64>,
}

/// Builds `count` distinct batches of about `batch_bytes`, records of `record_bytes`.
pub fn make_batches(count: usize, batch_bytes: usize, record_bytes: usize, seed: u64) -> Vec<Bytes> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let records = (batch_bytes / (record_bytes + 32)).max(1);
    (0..count)
        .map(|_| {
            let mut builder = BatchBuilder::new();
            let mut value = vec![0u8; record_bytes];
            for i in 0..records {
                rng.fill(&mut value[..]);
                builder.push(Some(format!("key-{i:06}").as_bytes()), Some(&value), &[], 1_700_000_000_000);
            }
            Bytes::from(builder.build())
        })
        .collect()
}

fn topic(fsync: FsyncPolicy) -> TopicConfig {
    TopicConfig { fsync, fsync_interval_ms: 1, retention_ms: None, ..TopicConfig::default() }
}

async fn open_log(dir: &Path, config: TopicConfig, cache_bytes: usize) -> anyhow::Result<Rc<Log>> {
    let cache = Rc::new(BatchCache::new(cache_bytes));
    let (log, _) = Log::open(dir, "bench-0", config, IoOptions::default(), cache).await?;
    Ok(log)
}

/// Appends `bytes` of batches one after another and closes the log. The batches are
/// copied out of the set before the clock starts, as a server receives them.
async fn append_sequential(dir: &Path, fsync: FsyncPolicy, bytes: u64, batches: &[Bytes]) -> anyhow::Result<Rate> {
    let log = open_log(dir, topic(fsync), 64 << 20).await?;
    let count = bytes.div_ceil(batches[0].len() as u64) as usize;
    let inputs: Vec<BytesMut> = (0..count).map(|i| BytesMut::from(&batches[i % batches.len()][..])).collect();
    let started = Instant::now();
    let mut written = 0u64;
    let mut operations = 0u64;
    for batch in inputs {
        written += batch.len() as u64;
        log.append(batch).await?;
        operations += 1;
    }
    log.close().await?;
    Ok(Rate { bytes: written, operations, seconds: started.elapsed().as_secs_f64() })
}

/// Reads a whole log from its start with 1 MiB reads, no cache.
async fn read_cold(dir: &Path) -> anyhow::Result<Rate> {
    let log = open_log(dir, topic(FsyncPolicy::Never), 0).await?;
    let end = log.offsets().end;
    let started = Instant::now();
    let (mut next, mut bytes, mut operations) = (0u64, 0u64, 0u64);
    while next < end {
        let read = log.read(next, 1 << 20).await?;
        bytes += read.bytes as u64;
        operations += 1;
        next = read.next_offset;
    }
    let seconds = started.elapsed().as_secs_f64();
    log.close().await?;
    Ok(Rate { bytes, operations, seconds })
}

/// Reads every segment file in `dir` with the raw reader, in order, only as far as the
/// log's data goes: the active segment's preallocated tail holds no data, and the
/// kernel returns its zeros without reading the device.
async fn raw_read_dir(dir: &Path, log_bytes: u64, in_flight: usize) -> anyhow::Result<Rate> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir)?.map(|entry| entry.map(|e| e.path())).collect::<Result<_, _>>()?;
    files.retain(|path| path.extension().is_some_and(|ext| ext == "log"));
    files.sort();
    let mut total = Rate { bytes: 0, operations: 0, seconds: 0.0 };
    for file in files {
        let len = log_bytes - total.bytes;
        let rate = direct_read(&file, Some(len), 1 << 20, in_flight).await?;
        total.bytes += rate.bytes;
        total.operations += rate.operations;
        total.seconds += rate.seconds;
    }
    Ok(total)
}

/// `appenders` tasks append in a loop to one `always` log for `duration`.
async fn append_always(dir: &Path, appenders: usize, duration: Duration, batches: &[Bytes]) -> anyhow::Result<Rate> {
    let log = open_log(dir, topic(FsyncPolicy::Always), 64 << 20).await?;
    let started = Instant::now();
    let tasks: Vec<_> = (0..appenders)
        .map(|i| {
            let log = log.clone();
            let batches = batches.to_vec();
            glommio::spawn_local(async move {
                let (mut bytes, mut operations) = (0u64, 0u64);
                let mut next = BytesMut::from(&batches[i % batches.len()][..]);
                while started.elapsed() < duration {
                    let batch = std::mem::take(&mut next);
                    bytes += batch.len() as u64;
                    let mut append = std::pin::pin!(log.append(batch));
                    // Run the append up to its wait for durability, then take in the
                    // next batch while the fdatasync runs, as a connection receives
                    // its next request while it waits for an ack.
                    let first = futures_lite::future::poll_once(&mut append).await;
                    next = BytesMut::from(&batches[(i + operations as usize + 1) % batches.len()][..]);
                    match first {
                        Some(result) => result?,
                        None => append.await?,
                    };
                    operations += 1;
                }
                anyhow::Ok((bytes, operations))
            })
        })
        .collect();
    let (mut bytes, mut operations) = (0, 0);
    for task in tasks {
        let (b, o) = task.await?;
        bytes += b;
        operations += o;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "  {appenders} appenders: {:.1} batches per fdatasync",
        operations as f64 / log.fdatasync_count().max(1) as f64
    );
    log.close().await?;
    Ok(Rate { bytes, operations, seconds })
}

fn row(name: &str, rate: Rate, limit: Option<(&str, f64, f64)>) -> Row {
    match limit {
        Some((limit_name, limit_value, value)) => {
            Row { name: name.into(), rate, compared_with: Some(limit_name.into()), ratio: Some(value / limit_value) }
        }
        None => Row { name: name.into(), rate, compared_with: None, ratio: None },
    }
}

/// Runs every phase and returns the rows, printing each as it completes.
pub async fn run(settings: Settings) -> anyhow::Result<Vec<Row>> {
    let dir = &settings.dir;
    std::fs::create_dir_all(dir)?;
    strand::storage::probe_device(dir).await?;
    let batches = make_batches(32, settings.batch_bytes, settings.record_bytes, 1);
    let mut rows = Vec::new();
    let mut emit = |row: Row| {
        print_row(&row);
        rows.push(row);
    };

    let wants = |phase: &str| settings.phases.iter().any(|p| p == phase);
    let raw_path = dir.join("raw.dat");
    let never_dir = dir.join("log-never");
    if wants("append") {
        // Alternate the raw writer and the log, and compare each with the raw write
        // measured just before it: the disk drifts between minutes on shared machines.
        let (mut never_ratios, mut interval_ratios) = (Vec::new(), Vec::new());
        for round in 1..=ROUNDS {
            let raw = direct_write(&raw_path, settings.bytes, 1 << 20, 4).await?;
            emit(row(&format!("raw direct write (1 MiB x 4 in flight), round {round}"), raw, None));
            if never_dir.exists() {
                std::fs::remove_dir_all(&never_dir)?;
            }
            let never = append_sequential(&never_dir, FsyncPolicy::Never, settings.bytes, &batches).await?;
            let compared = Some(("raw direct write just before", raw.bytes_per_s(), never.bytes_per_s()));
            emit(row(&format!("log append, fsync never, round {round}"), never, compared));
            never_ratios.push(never.bytes_per_s() / raw.bytes_per_s());
            let interval_dir = dir.join("log-interval");
            let interval = append_sequential(&interval_dir, FsyncPolicy::Interval, settings.bytes, &batches).await?;
            let compared = Some(("raw direct write just before", raw.bytes_per_s(), interval.bytes_per_s()));
            emit(row(&format!("log append, fsync interval 1 ms, round {round}"), interval, compared));
            interval_ratios.push(interval.bytes_per_s() / raw.bytes_per_s());
            std::fs::remove_dir_all(&interval_dir)?;
        }
        println!("log append, fsync never: median {:.1}% of the raw direct write", median(&mut never_ratios) * 100.0);
        println!(
            "log append, fsync interval 1 ms: median {:.1}% of the raw direct write",
            median(&mut interval_ratios) * 100.0
        );
    } else {
        direct_write(&raw_path, 64 << 20, 1 << 20, 4).await?;
    }
    if wants("read") {
        if !never_dir.exists() {
            append_sequential(&never_dir, FsyncPolicy::Never, settings.bytes, &batches).await?;
        }
        let log = open_log(&never_dir, topic(FsyncPolicy::Never), 0).await?;
        let log_bytes = log.size_bytes();
        log.close().await?;
        // The disk's speed drifts from second to second on shared machines: alternate
        // the raw reader and the log over the same segment files and compare each pair.
        let mut ratios = Vec::new();
        for round in 1..=ROUNDS {
            let raw_1 = raw_read_dir(&never_dir, log_bytes, 1).await?;
            emit(row(&format!("raw direct read of the segments, 1 MiB x 1, round {round}"), raw_1, None));
            let raw_4 = raw_read_dir(&never_dir, log_bytes, 4).await?;
            emit(row(&format!("raw direct read of the segments, 1 MiB x 4, round {round}"), raw_4, None));
            let limit = raw_1.bytes_per_s().max(raw_4.bytes_per_s());
            let cold = read_cold(&never_dir).await?;
            let compared = Some(("the faster raw read just before", limit, cold.bytes_per_s()));
            emit(row(&format!("log cold read (1 MiB reads), round {round}"), cold, compared));
            ratios.push(cold.bytes_per_s() / limit);
        }
        println!("log cold read: median {:.1}% of the raw direct read", median(&mut ratios) * 100.0);
    }
    std::fs::remove_file(&raw_path)?;
    if never_dir.exists() {
        std::fs::remove_dir_all(&never_dir)?;
    }
    if wants("always") {
        // Each appender count is compared with one write + fdatasync per append
        // measured just before it, on the same kind of preallocated file.
        let duration = Duration::from_secs_f64(settings.always_seconds);
        let sync_path = dir.join("sync.dat");
        for appenders in [1, 8, 64] {
            let per_append = fdatasync_per_write(&sync_path, settings.batch_bytes, duration).await?;
            emit(row("64 KiB write + fdatasync per append", per_append, None));
            let always_dir = dir.join(format!("log-always-{appenders}"));
            let always = append_always(&always_dir, appenders, duration, &batches).await?;
            let name = format!("log append, fsync always, {appenders} appenders");
            let compared = Some(("write + fdatasync per append", per_append.ops_per_s(), always.ops_per_s()));
            emit(row(&name, always, compared));
            std::fs::remove_dir_all(&always_dir)?;
        }
        std::fs::remove_file(&sync_path)?;
    }
    Ok(rows)
}

fn print_row(row: &Row) {
    let ratio = match (&row.compared_with, row.ratio) {
        (Some(with), Some(ratio)) if with.contains("fdatasync") => format!("{ratio:>6.1}x  {with}"),
        (Some(with), Some(ratio)) => format!("{:>6.1}%  of {with}", ratio * 100.0),
        _ => String::new(),
    };
    println!(
        "{:<44} {:>8.3} GB/s {:>10.0} ops/s  {ratio}",
        row.name,
        row.rate.bytes_per_s() / 1e9,
        row.rate.ops_per_s()
    );
}
