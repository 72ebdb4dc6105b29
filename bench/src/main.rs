//! `strand-bench`: Strand's load generator and measurement tool.

use strand_bench::log_bench;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "strand-bench", version, about = "Measure Strand and the machine it runs on")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The machine's own limits: direct write and read, fdatasync rate, loopback TCP.
    Limits {
        /// Directory on the disk to measure (not tmpfs).
        #[arg(long, default_value = "strand-bench-data")]
        dir: PathBuf,
        /// Bytes written, read and sent by each throughput measurement.
        #[arg(long, default_value_t = 2 << 30)]
        bytes: u64,
        /// Cores for the two ends of the loopback connection (sender, receiver).
        #[arg(long, num_args = 2, value_delimiter = ',', default_values_t = [0, 1])]
        tcp_cpus: Vec<usize>,
        /// Also write the results as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// A broker end to end: produce, read back from the cache, catch up from disk,
    /// beside the direct write, direct read and loopback TCP limits of the same run.
    Broker {
        /// Directory on the disk to measure (not tmpfs); the spawned brokers' data.
        #[arg(long, default_value = "strand-bench-data")]
        dir: PathBuf,
        /// Core of the spawned broker (all of its one shard).
        #[arg(long, default_value_t = 0)]
        broker_cpu: usize,
        /// Core of the load generator.
        #[arg(long, default_value_t = 1)]
        load_cpu: usize,
        /// Record sizes to produce and read back, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1024,100")]
        record_bytes: Vec<usize>,
        /// Bytes produced per record size.
        #[arg(long, default_value_t = 1 << 30)]
        bytes: u64,
        /// Producer acks: none, leader or durable.
        #[arg(long, default_value = "leader", value_parser = ["none", "leader", "durable"])]
        acks: String,
        /// Producer batch size.
        #[arg(long, default_value_t = 512 * 1024)]
        batch_bytes: usize,
        /// Produce requests in flight per connection.
        #[arg(long, default_value_t = 16)]
        in_flight: usize,
        /// Batch cache of the broker serving the cached phases; at least `--bytes`.
        #[arg(long, default_value_t = 2 << 30)]
        cache_bytes: u64,
        /// Measure a fresh broker whose cache has never been filled.
        #[arg(long)]
        no_warm_up: bool,
        /// Produce rate of the end-to-end latency phase, bytes per second (0: skip).
        #[arg(long, default_value_t = 200_000_000)]
        latency_rate: u64,
        /// Seconds the latency phase runs (the first is warm-up).
        #[arg(long, default_value_t = 10.0)]
        latency_seconds: f64,
        /// Bytes produced, then read back from disk with a small cache (0: skip).
        #[arg(long, default_value_t = 4 << 30)]
        catch_up_bytes: u64,
        /// Also write the results as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// The partition log's append and read throughput beside the disk's raw limits.
    Log {
        /// Directory on the disk to measure (not tmpfs); emptied of what the run writes.
        #[arg(long, default_value = "strand-bench-data")]
        dir: PathBuf,
        /// Bytes written by each throughput phase.
        #[arg(long, default_value_t = 2 << 30)]
        bytes: u64,
        /// Seconds each fdatasync phase runs.
        #[arg(long, default_value_t = 3.0)]
        always_seconds: f64,
        /// Core to pin the measuring shard to.
        #[arg(long)]
        cpu: Option<usize>,
        /// Phases to run, comma-separated: append, read, always.
        #[arg(long, value_delimiter = ',', default_value = "append,read,always", value_parser = ["append", "read", "always"])]
        phases: Vec<String>,
        /// Also write the results as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    strand::runtime::keep_large_allocations();
    strand::runtime::init_logging("warn");
    match Cli::parse().command {
        Command::Broker {
            dir,
            broker_cpu,
            load_cpu,
            record_bytes,
            bytes,
            acks,
            batch_bytes,
            in_flight,
            cache_bytes,
            no_warm_up,
            latency_rate,
            latency_seconds,
            catch_up_bytes,
            json,
        } => {
            anyhow::ensure!(cache_bytes >= bytes, "--cache-bytes must hold --bytes for reads to come from the cache");
            let acks = match acks.as_str() {
                "none" => strand_client::Acks::None,
                "durable" => strand_client::Acks::Durable,
                _ => strand_client::Acks::Leader,
            };
            let tuning = strand_bench::broker_bench::Tuning { acks, batch_bytes, in_flight_max: in_flight };
            let settings = strand_bench::broker_bench::Settings {
                tuning,
                dir: dir.join("broker"),
                broker_cpu,
                load_cpu,
                record_bytes,
                bytes,
                catch_up_bytes,
                cache_bytes,
                warm_up: !no_warm_up,
                latency_rate_bytes_per_s: latency_rate,
                latency_seconds,
            };
            limits(dir, 1 << 30, vec![broker_cpu, load_cpu], None)?;
            let (rows, latencies) = strand_bench::broker_bench::run(&settings)?;
            if let Some(path) = json {
                let report = serde_json::json!({ "settings": settings, "rows": rows, "latency": latencies });
                std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
            }
            Ok(())
        }
        Command::Limits { dir, bytes, tcp_cpus, json } => limits(dir, bytes, tcp_cpus, json),
        Command::Log { dir, bytes, always_seconds, cpu, phases, json } => {
            anyhow::ensure!(bytes >= 64 << 20, "--bytes {bytes}: at least 64 MiB, to measure more than caches");
            anyhow::ensure!(always_seconds > 0.0 && always_seconds <= 600.0, "--always-seconds: between 0 and 600");
            let settings =
                log_bench::Settings { dir, bytes, batch_bytes: 64 * 1024, record_bytes: 1024, always_seconds, phases };
            println!(
                "strand-bench log: {} MiB per phase, {} KiB batches of {} B records, in {}",
                settings.bytes >> 20,
                settings.batch_bytes >> 10,
                settings.record_bytes,
                settings.dir.display()
            );
            let io_memory = strand::runtime::io_memory_bytes(1, strand::runtime::IO_MEMORY_BYTES_DEFAULT);
            let run_settings = settings.clone();
            let rows = strand::runtime::executor("bench", cpu, io_memory)
                .spawn(move || log_bench::run(run_settings))
                .map_err(|e| anyhow::anyhow!("starting the bench shard: {e}"))?
                .join()
                .map_err(|e| anyhow::anyhow!("the bench shard failed: {e:?}"))??;
            if let Some(path) = json {
                let report = serde_json::json!({ "settings": settings, "rows": rows });
                std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
            }
            Ok(())
        }
    }
}

/// `strand-bench limits`: each of the machine's limits, measured here and now.
fn limits(dir: PathBuf, bytes: u64, tcp_cpus: Vec<usize>, json: Option<PathBuf>) -> anyhow::Result<()> {
    use strand_bench::limits::{direct_read, direct_write, fdatasync_per_write, loopback_tcp, Rate};
    anyhow::ensure!(bytes >= 64 << 20, "--bytes {bytes}: at least 64 MiB, to measure more than caches");
    std::fs::create_dir_all(&dir)?;
    let io_memory = strand::runtime::io_memory_bytes(1, strand::runtime::IO_MEMORY_BYTES_DEFAULT);
    let disk_dir = dir.clone();
    let disk: Vec<(String, Rate)> = strand::runtime::executor("limits", tcp_cpus.first().copied(), io_memory)
        .spawn(move || async move {
            strand::storage::probe_device(&disk_dir).await?;
            let path = disk_dir.join("limits.dat");
            let write = direct_write(&path, bytes, 1 << 20, 4).await?;
            let read_1 = direct_read(&path, None, 1 << 20, 1).await?;
            let read_4 = direct_read(&path, None, 1 << 20, 4).await?;
            let read_32 = direct_read(&path, None, 32 << 20, 1).await?;
            let sync = fdatasync_per_write(&path, 64 * 1024, std::time::Duration::from_secs(3)).await?;
            std::fs::remove_file(&path)?;
            anyhow::Ok(vec![
                ("direct sequential write, 1 MiB x 4 in flight".to_string(), write),
                ("direct sequential read, 1 MiB x 1 in flight".to_string(), read_1),
                ("direct sequential read, 1 MiB x 4 in flight".to_string(), read_4),
                ("direct sequential read, 32 MiB x 1 in flight".to_string(), read_32),
                ("64 KiB direct write + fdatasync, preallocated file".to_string(), sync),
            ])
        })
        .map_err(|e| anyhow::anyhow!("starting the measuring shard: {e}"))?
        .join()
        .map_err(|e| anyhow::anyhow!("the measuring shard failed: {e:?}"))??;
    let tcp = loopback_tcp(bytes, 1 << 20, tcp_cpus.first().copied(), tcp_cpus.get(1).copied())?;
    let mut rows = disk;
    rows.push((format!("loopback TCP, one connection, core {} to core {}", tcp_cpus[0], tcp_cpus[1]), tcp));
    println!("strand-bench limits: {} MiB per measurement, in {}", bytes >> 20, dir.display());
    for (name, rate) in &rows {
        println!("{name:<52} {:>8.3} GB/s {:>10.0} ops/s", rate.bytes_per_s() / 1e9, rate.ops_per_s());
    }
    if let Some(path) = json {
        let report: Vec<_> =
            rows.iter().map(|(name, rate)| serde_json::json!({ "name": name, "rate": rate })).collect();
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(())
}
