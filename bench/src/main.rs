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

#[derive(clap::Args)]
struct RunArgs {
    /// The workload file.
    workload: PathBuf,
    /// The broker to measure (ignored with --spawn-broker).
    #[arg(long, default_value = "127.0.0.1:9400")]
    bootstrap: String,
    /// The protocol producers and consumers speak: `native` (shard-aware, each
    /// partition's shard port) or `kafka` (every partition through the Kafka listener,
    /// as a Kafka client reaches it).
    #[arg(long, default_value = "native", value_parser = ["native", "kafka"])]
    protocol: String,
    /// The Kafka listener of the broker at `--bootstrap` (a spawned broker's is read
    /// from its ready line).
    #[arg(long, default_value = "127.0.0.1:9092")]
    kafka_bootstrap: String,
    /// TLS on the Kafka listener (with --spawn-broker and --protocol kafka): the run
    /// makes a CA and a certificate for the broker it starts, and connects with TLS
    /// 1.3 trusting that CA.
    #[arg(long)]
    tls: bool,
    /// Start a broker from the same build for this run, on --broker-cores, with a
    /// temporary data directory under --dir; stop it after.
    #[arg(long)]
    spawn_broker: bool,
    /// The `strand` binary --spawn-broker starts (default: next to this one).
    #[arg(long)]
    broker_binary: Option<PathBuf>,
    /// Cores of a spawned broker, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    broker_cores: Vec<usize>,
    /// Cores of the generator (one worker each), comma-separated; default: every
    /// core not given to the spawned broker.
    #[arg(long, value_delimiter = ',')]
    cores: Option<Vec<usize>>,
    /// Directory on the disk to measure (limits, and a spawned broker's data).
    #[arg(long, default_value = "strand-bench-data")]
    dir: PathBuf,
    /// Skip measuring the machine's limits (results then carry no shares).
    #[arg(long)]
    no_limits: bool,
    /// Bytes each limit measurement moves.
    #[arg(long, default_value_t = 1 << 30)]
    limits_bytes: u64,
    /// Generate against a null sink, no broker: the generator's own ceiling.
    #[arg(long)]
    dry_run: bool,
    /// Override the workload's mode: produce, consume or end-to-end.
    #[arg(long, value_parser = ["produce", "consume", "end-to-end"])]
    mode: Option<String>,
    /// Override the workload's duration_seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Override the workload's warm_up_seconds.
    #[arg(long)]
    warm_up: Option<f64>,
    /// Override the workload's compression: none, gzip, snappy, lz4 or zstd.
    #[arg(long)]
    compression: Option<String>,
    /// Override the workload's payload_random (0 to 1; below 1 the values compress).
    #[arg(long)]
    payload_random: Option<f64>,
    /// The longest a request waits for its response, in ms.
    #[arg(long, default_value_t = 10_000)]
    request_timeout_ms: u64,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
    /// Write the full results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a workload (a TOML file, see bench/workloads/) against a broker.
    Run(RunArgs),
    /// Write a self-contained HTML or SVG page (by the output's extension) with the
    /// throughput and latency charts of one or more `run --json` results.
    Report {
        /// Result files from `strand-bench run --json`.
        #[arg(required = true)]
        results: Vec<PathBuf>,
        /// The page to write: `.html` or `.svg`.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Print two `run --json` results side by side, with the ratio of each figure.
    Compare {
        /// The baseline.
        a: PathBuf,
        /// The result compared with it.
        b: PathBuf,
    },
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
        /// The producer's idempotence (on by default, as in strand-client): batches
        /// numbered per partition, at most 5 unanswered per partition.
        #[arg(long, default_value = "on", value_parser = ["on", "off"])]
        idempotence: String,
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
    /// A cluster of brokers from this build on this machine: produce throughput
    /// (durable acks) at replication factor 1 and 3 in alternating rounds, then the
    /// time from a leader's SIGKILL to the first acknowledged produce on the new one,
    /// beside the limits of the same run.
    Cluster {
        /// Directory on the disk to measure (not tmpfs); the brokers' data.
        #[arg(long, default_value = "strand-bench-data")]
        dir: PathBuf,
        /// Brokers (every one a voter): 3 or 5.
        #[arg(long, default_value_t = 3, value_parser = parse_brokers)]
        brokers: usize,
        /// Record size.
        #[arg(long, default_value_t = 1024)]
        record_bytes: usize,
        /// Bytes produced per round at each replication factor.
        #[arg(long, default_value_t = 256 << 20)]
        bytes: u64,
        /// Throughput rounds (each factor once per round).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Leader kills measured.
        #[arg(long, default_value_t = 20)]
        failovers: usize,
        /// The topics' fsync policy: always, interval or never.
        #[arg(long, default_value = "always", value_parser = ["always", "interval", "never"])]
        fsync: String,
        /// Core of the load generator.
        #[arg(long, default_value_t = 1)]
        load_cpu: usize,
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

/// A cluster's broker count: 3 or 5 (every broker is a voter of the quorum).
fn parse_brokers(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(count @ (3 | 5)) => Ok(count),
        _ => Err(format!("{value:?}: 3 or 5 (every broker is a voter)")),
    }
}

fn main() {
    strand::runtime::keep_large_allocations();
    strand::runtime::init_logging("warn");
    if let Err(error) = run(Cli::parse().command) {
        eprintln!("strand-bench: {error:#}");
        std::process::exit(1);
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => {
            let RunArgs {
                workload,
                mode,
                duration,
                warm_up,
                compression,
                payload_random,
                cores,
                broker_cores,
                spawn_broker,
                json,
                ..
            } = &args;
            let mut loaded = strand_bench::workload::Workload::load(workload).map_err(anyhow::Error::msg)?;
            if let Some(mode) = mode.clone() {
                loaded.mode = serde_json::from_value(serde_json::Value::String(mode))?;
            }
            if let Some(duration) = *duration {
                loaded.duration_seconds = duration;
            }
            if let Some(warm_up) = *warm_up {
                loaded.warm_up_seconds = warm_up;
            }
            if let Some(compression) = compression {
                loaded.compression = compression.clone();
            }
            if let Some(payload_random) = *payload_random {
                loaded.payload_random = payload_random;
            }
            loaded.validate().map_err(|message| anyhow::anyhow!("{}: {message}", workload.display()))?;
            let cores = cores.clone().unwrap_or_else(|| {
                let all: Vec<usize> = (0..strand_bench::run::online_cpus()).collect();
                let rest: Vec<usize> =
                    all.iter().copied().filter(|c| !(*spawn_broker && broker_cores.contains(c))).collect();
                if rest.is_empty() {
                    all
                } else {
                    rest
                }
            });
            let options = strand_bench::run::Options {
                workload: loaded,
                bootstrap: args.bootstrap.clone(),
                spawn_broker: args.spawn_broker,
                broker_binary: args.broker_binary.clone(),
                broker_cores: args.broker_cores.clone(),
                cores,
                dir: args.dir.clone(),
                limits: !args.no_limits,
                limits_bytes: args.limits_bytes,
                dry_run: args.dry_run,
                request_timeout: std::time::Duration::from_millis(args.request_timeout_ms),
                progress: !args.quiet,
                protocol: if args.protocol == "kafka" {
                    strand_bench::engine::Wire::Kafka
                } else {
                    strand_bench::engine::Wire::Native
                },
                kafka_bootstrap: args.kafka_bootstrap.clone(),
                tls: args.tls,
            };
            let report = strand_bench::run::run(&options)?;
            if let Some(path) = json {
                std::fs::write(path, serde_json::to_vec_pretty(&report)?)
                    .map_err(|error| anyhow::anyhow!("writing {}: {error}", path.display()))?;
            }
            if !report.complete {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Report { results, out } => strand_bench::report::write(&results, &out),
        Command::Compare { a, b } => strand_bench::compare::print(&a, &b),
        Command::Broker {
            dir,
            broker_cpu,
            load_cpu,
            record_bytes,
            bytes,
            acks,
            batch_bytes,
            in_flight,
            idempotence,
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
            let tuning = strand_bench::broker_bench::Tuning {
                acks,
                batch_bytes,
                in_flight_max: in_flight,
                idempotent: idempotence == "on",
            };
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
        Command::Cluster { dir, brokers, record_bytes, bytes, rounds, failovers, fsync, load_cpu, json } => {
            use strand_bench::cluster_bench;
            let settings = cluster_bench::Settings {
                dir: cluster_bench::default_dir(&dir),
                brokers,
                record_bytes,
                bytes,
                rounds,
                failovers,
                fsync,
                load_cpu,
            };
            limits(dir, 1 << 30, vec![0, 1], None)?;
            let (rows, failovers) = cluster_bench::run(&settings)?;
            let of = |factor: u32| -> Vec<f64> {
                rows.iter().filter(|r| r.replication_factor == factor).map(|r| r.rate.bytes_per_s()).collect()
            };
            let (rf1, _) = cluster_bench::median_and_worst(&of(1));
            let (rf3, _) = cluster_bench::median_and_worst(&of(3));
            println!(
                "median: replication factor 1 {:.1} MB/s, 3 {:.1} MB/s: {:.2} of it",
                rf1 / 1e6,
                rf3 / 1e6,
                rf3 / rf1
            );
            if !failovers.is_empty() {
                let times: Vec<f64> = failovers.iter().map(|f| f.seconds).collect();
                let (median, worst) = cluster_bench::median_and_worst(&times);
                println!("failover over {} kills: median {median:.3} s, worst {worst:.3} s", times.len());
            }
            if let Some(path) = json {
                let report = serde_json::json!({ "settings": settings, "throughput": rows, "failovers": failovers });
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
    let rows = strand_bench::limits::measure(&dir, bytes, [tcp_cpus[0], tcp_cpus[1]])?;
    println!("strand-bench limits: {} MiB per measurement, in {}", bytes >> 20, dir.display());
    strand_bench::limits::print(&rows);
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_vec_pretty(&rows)?)?;
    }
    Ok(())
}
