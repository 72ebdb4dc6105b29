//! `strand-bench broker`: a broker measured end to end through `strand-client`, beside
//! the machine's limits measured in the same run.
//!
//! Phases, each on a fresh single-partition topic with `fsync = "never"`:
//! - `produce`: one producer (acks `leader`) sends `bytes` of records as fast as it can;
//! - `read-cached`: one consumer reads those records back while the shard's batch
//!   cache still holds them;
//! - `catch-up`: the same on a broker whose cache is too small to hold them, so every
//!   byte comes from a direct read of the segment files.
//!
//! The broker runs on `broker_cpu`, the load on `load_cpu`: the whole broker has one
//! core, the load generator the other.
//!
//! Warm-up: before the cached phases, `warm-up` produces as many bytes as the cache
//! holds. A fresh broker's cache grows into memory the kernel has never handed out,
//! and on a VM every first touch of a page costs a fault and a zeroing (measured here:
//! produce at 0.35 GB/s while the cache grows, 1.2 GB/s once its memory is recycled).
//! A broker that has run a while is in the second state; `--no-warm-up` shows the first.

use crate::limits::{pin_to, Rate};
use crate::spawn::SpawnedBroker;
use rand::RngCore;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use strand_client::{block_on, Acks, Client, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, Seek};

/// Starts a one-shard broker from the same build on `cpu` with `cache_bytes` of
/// batch cache.
fn spawn(dir: &Path, cpu: usize, cache_bytes: u64) -> anyhow::Result<SpawnedBroker> {
    let mut storage = toml::Table::new();
    storage.insert("batch_cache_bytes".into(), toml::Value::Integer(cache_bytes as i64));
    let mut config = toml::Table::new();
    config.insert("storage".into(), toml::Value::Table(storage));
    SpawnedBroker::start(&crate::spawn::default_binary()?, dir, &[cpu], &config)
}

/// One measured phase.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub phase: String,
    pub record_bytes: usize,
    pub records: u64,
    pub rate: Rate,
}

impl Row {
    pub fn records_per_s(&self) -> f64 {
        self.records as f64 / self.rate.seconds
    }
}

/// Produces `bytes` of `record_bytes` records to a new one-partition topic; returns
/// the phase's figures.
pub fn produce(bootstrap: &str, topic: &str, record_bytes: usize, bytes: u64, tuning: &Tuning) -> anyhow::Result<Row> {
    let client = Client::connect(bootstrap)?;
    block_on(client.create_topic(topic, 1, &[("fsync", "never"), ("retention_ms", "-1")]))?;
    let config = ProducerConfig {
        acks: tuning.acks,
        batch_bytes: tuning.batch_bytes,
        linger: Duration::from_millis(2),
        in_flight_max: tuning.in_flight_max,
        idempotent: tuning.idempotent,
        buffer_bytes_max: 128 << 20,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(client, config);
    // Distinct random payloads, so neither side can profit from repetition.
    let mut payload = vec![0u8; 1 << 20];
    rand::thread_rng().fill_bytes(&mut payload);
    let records = bytes / record_bytes as u64;
    let started = Instant::now();
    let mut last = None;
    for i in 0..records {
        let at = (i as usize * 61) % (payload.len() - record_bytes);
        let record = ProducerRecord::new(topic, &payload[at..at + record_bytes]).partition(0);
        last = Some(producer.send(record)?);
    }
    producer.flush();
    let seconds = started.elapsed().as_secs_f64();
    if let Some(last) = last.filter(|_| tuning.acks != Acks::None) {
        let metadata = last.wait()?;
        anyhow::ensure!(metadata.offset as u64 == records - 1, "last offset {} for {records} records", metadata.offset);
    }
    let rate = Rate { bytes: records * record_bytes as u64, operations: records, seconds };
    Ok(Row { phase: "produce".into(), record_bytes, records, rate })
}

/// Reads every record of partition 0 of `topic` from the start.
pub fn consume(bootstrap: &str, topic: &str, phase: &str, record_bytes: usize, records: u64) -> anyhow::Result<Row> {
    let client = Client::connect(bootstrap)?;
    let config = ConsumerConfig::default();
    let mut consumer = Consumer::new(client, config);
    block_on(consumer.assign(topic, Some(&[0]), Seek::Earliest))?;
    let started = Instant::now();
    let (mut read, mut bytes) = (0u64, 0u64);
    let deadline = started + Duration::from_secs(600);
    while read < records {
        anyhow::ensure!(Instant::now() < deadline, "read {read} of {records} records in 10 minutes");
        for record in consumer.poll(Duration::from_secs(1))? {
            bytes += record.value.as_ref().map_or(0, |v| v.len() as u64);
            read += 1;
        }
    }
    let rate = Rate { bytes, operations: read, seconds: started.elapsed().as_secs_f64() };
    Ok(Row { phase: phase.into(), record_bytes, records: read, rate })
}

/// Producer settings of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Tuning {
    #[serde(skip)]
    pub acks: Acks,
    pub batch_bytes: usize,
    pub in_flight_max: usize,
    pub idempotent: bool,
}

/// Settings of one `strand-bench broker` run.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub tuning: Tuning,
    pub dir: PathBuf,
    pub broker_cpu: usize,
    pub load_cpu: usize,
    pub record_bytes: Vec<usize>,
    pub bytes: u64,
    pub catch_up_bytes: u64,
    /// The batch cache of the broker that serves the cached phases.
    pub cache_bytes: u64,
    /// Fill that cache before measuring.
    pub warm_up: bool,
    /// Produce rate of the latency phase (0: skip it).
    pub latency_rate_bytes_per_s: u64,
    pub latency_seconds: f64,
}

/// Runs every phase; prints each row as it completes.
pub fn run(settings: &Settings) -> anyhow::Result<(Vec<Row>, Vec<LatencyRow>)> {
    pin_to(settings.load_cpu)?;
    let mut rows = Vec::new();
    let mut latencies = Vec::new();
    let print = |row: &Row| {
        println!(
            "{:<12} {:>5} B records {:>9.3} GB/s {:>11.0} records/s ({} records)",
            row.phase,
            row.record_bytes,
            row.rate.bytes_per_s() / 1e9,
            row.records_per_s(),
            row.records
        );
    };
    {
        // A cache that holds what each phase writes, so reads right after writes are
        // served from memory.
        let broker = spawn(&settings.dir.join("cached"), settings.broker_cpu, settings.cache_bytes)?;
        if settings.warm_up {
            // Fill the cache once, as a broker that has run a while has: the pages it
            // holds are then recycled, not faulted in fresh from the kernel.
            let mut row = produce(&broker.bootstrap, "warm-up", 1024, settings.cache_bytes, &settings.tuning)?;
            row.phase = "warm-up".into();
            print(&row);
            rows.push(row);
        }
        for (i, &record_bytes) in settings.record_bytes.iter().enumerate() {
            let topic = format!("bench-{i}-{record_bytes}");
            let row = produce(&broker.bootstrap, &topic, record_bytes, settings.bytes, &settings.tuning)?;
            print(&row);
            let records = row.records;
            rows.push(row);
            let row = consume(&broker.bootstrap, &topic, "read-cached", record_bytes, records)?;
            print(&row);
            rows.push(row);
        }
    }
    if settings.latency_rate_bytes_per_s > 0 {
        let broker = spawn(&settings.dir.join("latency"), settings.broker_cpu, 1 << 30)?;
        let row =
            latency(&broker.bootstrap, "latency", 1024, settings.latency_rate_bytes_per_s, settings.latency_seconds)?;
        println!(
            "latency      1024 B records at {:.0} MB/s: p50 {:.0} us, p90 {:.0} us, p99 {:.0} us, p99.9 {:.0} us, p99.99 {:.0} us, max {:.0} us ({} records)",
            row.rate_bytes_per_s as f64 / 1e6,
            row.latency.p50_us,
            row.latency.p90_us,
            row.latency.p99_us,
            row.latency.p999_us,
            row.latency.p9999_us,
            row.latency.max_us,
            row.records
        );
        latencies.push(row);
    }
    if settings.catch_up_bytes > 0 {
        // A cache far smaller than the data: the read comes from the segment files.
        let broker = spawn(&settings.dir.join("cold"), settings.broker_cpu, 64 << 20)?;
        let record_bytes = 1024;
        let row = produce(&broker.bootstrap, "catch-up", record_bytes, settings.catch_up_bytes, &settings.tuning)?;
        print(&row);
        let records = row.records;
        rows.push(row);
        let row = consume(&broker.bootstrap, "catch-up", "catch-up", record_bytes, records)?;
        print(&row);
        rows.push(row);
    }
    let _ = std::fs::remove_dir_all(&settings.dir);
    Ok((rows, latencies))
}

/// End-to-end latency of a tail consumer at a fixed produce rate.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyRow {
    pub record_bytes: usize,
    pub rate_bytes_per_s: u64,
    pub records: u64,
    #[serde(flatten)]
    pub latency: crate::recorder::Percentiles,
}

/// Produces at `rate_bytes_per_s` for `seconds` (open loop: each record has an
/// intended send time, and latency is counted from it, so a stalled sender cannot
/// hide its stall) while one consumer reads the tail; the first second is warm-up.
pub fn latency(
    bootstrap: &str,
    topic: &str,
    record_bytes: usize,
    rate_bytes_per_s: u64,
    seconds: f64,
) -> anyhow::Result<LatencyRow> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    anyhow::ensure!(record_bytes >= 8, "records carry their intended send time in 8 bytes");
    let client = Client::connect(bootstrap)?;
    block_on(client.create_topic(topic, 1, &[("fsync", "never")]))?;
    let interval_ns = (record_bytes as f64 * 1e9 / rate_bytes_per_s as f64) as u64;
    let records = (seconds * 1e9 / interval_ns as f64) as u64;
    let warm_up_ns = 1_000_000_000u64;
    let origin = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let consumer_done = done.clone();
    let consumer_client = client.clone();
    let topic_name = topic.to_string();
    let consuming = std::thread::spawn(move || -> anyhow::Result<hdrhistogram::Histogram<u64>> {
        let config = ConsumerConfig { fetch_max_wait_ms: 100, ..ConsumerConfig::default() };
        let mut consumer = Consumer::new(consumer_client, config);
        block_on(consumer.assign(&topic_name, Some(&[0]), Seek::Earliest))?;
        let mut histogram = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
        let mut seen = 0u64;
        while seen < records && !consumer_done.load(Ordering::Relaxed) {
            for record in consumer.poll(Duration::from_millis(100))? {
                let value = record.value.as_deref().unwrap_or_default();
                let intended = u64::from_le_bytes(value[..8].try_into()?);
                let now = origin.elapsed().as_nanos() as u64;
                if intended >= warm_up_ns {
                    histogram.record(now.saturating_sub(intended).max(1))?;
                }

                seen += 1;
            }
        }
        Ok(histogram)
    });
    let config = ProducerConfig { acks: Acks::Leader, linger: Duration::from_micros(100), ..ProducerConfig::default() };
    let producer = Producer::new(client, config);
    let mut value = vec![0u8; record_bytes];
    rand::thread_rng().fill_bytes(&mut value);
    let mut sent = 0u64;
    while sent < records {
        let now = origin.elapsed().as_nanos() as u64;
        // Send every record whose intended time has come, then sleep a little: a
        // spinning sender would take the core the consumer shares.
        while sent < records && sent * interval_ns <= now {
            value[..8].copy_from_slice(&(sent * interval_ns).to_le_bytes());
            producer.send(ProducerRecord::new(topic, &value).partition(0))?;
            sent += 1;
        }
        std::thread::sleep(Duration::from_micros(20));
    }
    producer.flush();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !consuming.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    done.store(true, Ordering::Relaxed);
    let histogram = consuming.join().map_err(|_| anyhow::anyhow!("the consumer thread panicked"))??;
    let latency = crate::recorder::Percentiles::of(&histogram)
        .ok_or_else(|| anyhow::anyhow!("no record reached the consumer after the warm-up"))?;
    Ok(LatencyRow { record_bytes, rate_bytes_per_s, records: histogram.len(), latency })
}
