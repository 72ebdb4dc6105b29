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
    strand::runtime::init_logging("warn");
    match Cli::parse().command {
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
