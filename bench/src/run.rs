//! `strand-bench run WORKLOAD`: one workload against a broker, end to end.
//!
//! In order: the machine's limits (unless `--no-limits`), the broker (spawned from the
//! same build with `--spawn-broker`, or the one at `--bootstrap`), the topics
//! (recreated, with the workload's `[topic]` settings), an optional prefill, then the
//! measured run on the generator's cores with a progress line each second. The result
//! is printed, each rate beside the limit that bounds it, and written as JSON with
//! `--json`. A run that fails part-way (a broker that stops, a request that times
//! out) still prints and writes what it measured, marked incomplete.

use crate::engine::{self, ConsumePartition, ConsumerPlan, PartitionTarget, ProducerPlan, Shared, Timing, WorkerPlan};
use crate::limits::{self, LimitRow};
use crate::recorder::{Percentiles, Recorder, SecondPoint};
use crate::spawn::SpawnedBroker;
use crate::workload::{Mode, Workload};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strand_client::{block_on, Client, OffsetSpec};

/// How a run is set up, from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub workload: Workload,
    /// The broker to measure, unless one is spawned.
    pub bootstrap: String,
    pub spawn_broker: bool,
    pub broker_binary: Option<PathBuf>,
    pub broker_cores: Vec<usize>,
    /// Cores of the generator's workers.
    pub cores: Vec<usize>,
    /// Where limits are measured and a spawned broker keeps its data.
    pub dir: PathBuf,
    pub limits: bool,
    pub limits_bytes: u64,
    pub dry_run: bool,
    pub request_timeout: Duration,
    /// Print a progress line each second (to stderr).
    pub progress: bool,
    /// The protocol the generator speaks.
    pub protocol: engine::Wire,
    /// The Kafka listener of a broker found at `bootstrap` (a spawned one says its
    /// own).
    pub kafka_bootstrap: String,
    /// TLS on a spawned broker's Kafka listener (`crate::tls`).
    pub tls: bool,
}

/// The machine a run ran on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub cpus: usize,
    pub memory_bytes: u64,
    pub kernel: String,
    pub hostname: String,
}

impl Machine {
    pub fn here() -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu = cpuinfo
            .lines()
            .find_map(|line| {
                line.strip_prefix("model name").and_then(|rest| rest.split_once(':')).map(|(_, v)| v.trim())
            })
            .unwrap_or("unknown")
            .to_string();
        let memory_kib: u64 = read("/proc/meminfo")
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        Machine {
            cpu,
            cpus: online_cpus(),
            memory_bytes: memory_kib * 1024,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            hostname: read("/proc/sys/kernel/hostname").trim().to_string(),
        }
    }
}

/// Cores online on this machine (not just those this thread may run on).
pub fn online_cpus() -> usize {
    // SAFETY: sysconf reads a system value.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n > 0 {
        n as usize
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// Where the run's load came from and went.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Setup {
    pub generator_cores: Vec<usize>,
    /// Cores of a spawned broker; `None` for a broker found at `bootstrap`.
    pub broker_cores: Option<Vec<usize>>,
    pub bootstrap: String,
    pub dry_run: bool,
    pub strand_bench_version: String,
    /// Unix time the run started, seconds.
    pub started_unix_s: u64,
    /// The core that takes most of the interrupts of the disk under `--dir`, if one
    /// does: the kernel completes the broker's writes there.
    #[serde(default)]
    pub disk_interrupt_core: Option<usize>,
    /// The protocol the load was sent in (results from before the Kafka mode: native).
    #[serde(default = "native")]
    pub protocol: engine::Wire,
}

fn native() -> engine::Wire {
    engine::Wire::Native
}

/// A rate as a share of the machine limit that bounds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Share {
    pub limit: String,
    pub limit_bytes_per_s: f64,
    pub share: f64,
}

/// What one side (producers or consumers) measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Side {
    pub records: u64,
    /// Value bytes.
    pub bytes: u64,
    pub seconds: f64,
    pub records_per_s: f64,
    pub bytes_per_s: f64,
    pub share: Option<Share>,
    /// From what to what latency is counted.
    pub latency_from: String,
    pub latency: Option<Percentiles>,
    /// (quantile, µs, count) at log-spaced quantiles.
    pub distribution: Vec<(f64, f64, u64)>,
    /// The whole latency histogram (ns), HdrHistogram V2 compressed, base64.
    #[serde(default)]
    pub histogram: String,
    /// One point per second since the run's origin (the warm-up included).
    pub series: Vec<SecondPoint>,
}

/// Everything a run measured: the `--json` file, and the input of `report` and
/// `compare`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub workload: Workload,
    pub setup: Setup,
    pub machine: Machine,
    pub limits: Vec<LimitRow>,
    /// Seconds of warm-up before the measured window, and of the window.
    pub warm_up_seconds: f64,
    pub duration_seconds: f64,
    /// The prefill's producers, when the workload has one.
    pub prefill: Option<Side>,
    pub produce: Option<Side>,
    pub consume: Option<Side>,
    /// Whether the run went to its end; if not, `errors` says why and the figures
    /// cover what was measured until then.
    pub complete: bool,
    pub errors: Vec<String>,
}

/// Runs the workload; the report is returned even when the run failed part-way
/// (`complete` false). Errors before anything was measured are `Err`.
pub fn run(options: &Options) -> anyhow::Result<Report> {
    let workload = &options.workload;
    anyhow::ensure!(!options.cores.is_empty(), "--cores: the generator needs at least one core");
    let started_unix_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    println!("strand-bench run: {}", describe(workload));
    if !workload.description.is_empty() {
        println!("  {}", workload.description);
    }
    let disk_interrupt_core = strand::host::disk_interrupt_core(&options.dir);
    if let Some(core) = disk_interrupt_core
        .filter(|core| options.spawn_broker && options.cores.contains(core) && !options.broker_cores.contains(core))
    {
        println!(
            "note: core {core} takes the interrupts of the disk under {}, and with them the kernel's work of \
             completing the broker's writes, on the generator's time; for latency, give that core to the broker \
             (--broker-cores {core})",
            options.dir.display()
        );
    }
    let limit_rows = if options.limits && !options.dry_run {
        let cpus = [options.broker_cores.first().copied().unwrap_or(0), options.cores[0]];
        println!("limits ({} MiB per measurement, in {}):", options.limits_bytes >> 20, options.dir.display());
        let rows = limits::measure(&options.dir, options.limits_bytes, cpus)?;
        limits::print(&rows);
        rows
    } else {
        Vec::new()
    };
    let mut broker = None;
    let mut tls_client = None;
    let mut kafka = options.kafka_bootstrap.clone();
    let bootstrap = if options.dry_run {
        "null sink".to_string()
    } else if options.spawn_broker {
        let binary = match &options.broker_binary {
            Some(path) => path.clone(),
            None => crate::spawn::default_binary()?,
        };
        let mut config = workload.broker.clone();
        if options.tls {
            anyhow::ensure!(options.protocol == engine::Wire::Kafka, "--tls needs --protocol kafka");
            tls_client = Some(crate::tls::secure(&options.dir.join("tls"), &mut config)?);
        }
        let spawned = SpawnedBroker::start(&binary, &options.dir.join("broker"), &options.broker_cores, &config)?;
        println!(
            "broker: {} serving on {}, cores {:?}, pid {}",
            binary.display(),
            spawned.bootstrap,
            spawned.cores,
            spawned.pid()
        );
        let address = spawned.bootstrap.clone();
        if let Some(address) = &spawned.kafka {
            kafka = address.clone();
        }
        broker = Some(spawned);
        address
    } else {
        options.bootstrap.clone()
    };
    let mut topics = if options.dry_run { dry_run_topics(workload) } else { prepare_topics(workload, &bootstrap)? };
    if options.protocol == engine::Wire::Kafka && !options.dry_run {
        // Kafka clients know one address: every partition is reached through it.
        let address: std::net::SocketAddr =
            kafka.parse().map_err(|_| anyhow::anyhow!("the Kafka listener {kafka:?} is not HOST:PORT"))?;
        for topic in &mut topics {
            for target in &mut topic.partitions {
                target.address = address;
            }
        }
        let over = if tls_client.is_some() { " over TLS" } else { "" };
        println!("protocol: kafka{over}, every partition through {address}");
    }
    let mut report = Report {
        workload: workload.clone(),
        setup: Setup {
            generator_cores: options.cores.clone(),
            broker_cores: options.spawn_broker.then(|| options.broker_cores.clone()),
            bootstrap: bootstrap.clone(),
            dry_run: options.dry_run,
            strand_bench_version: env!("CARGO_PKG_VERSION").to_string(),
            started_unix_s,
            disk_interrupt_core,
            protocol: options.protocol,
        },
        machine: Machine::here(),
        limits: limit_rows,
        warm_up_seconds: workload.warm_up_seconds,
        duration_seconds: workload.duration_seconds,
        prefill: None,
        produce: None,
        consume: None,
        complete: true,
        errors: Vec::new(),
    };
    if workload.prefill_bytes > 0 {
        let records = workload.prefill_bytes.div_ceil(u64::from(workload.record_bytes));
        println!("prefill: {} MiB ({records} records)", workload.prefill_bytes >> 20);
        let outcome = phase(options, &topics, Phase::Prefill { records }, &mut broker, &tls_client);
        let side = side(&outcome.produce, &report.limits, Mode::Produce, false, options.dry_run);
        print_side("prefill", &side);
        report.prefill = Some(side);
        if !outcome.errors.is_empty() {
            report.complete = false;
            report.errors = outcome.errors;
            return Ok(report);
        }
    }
    let starts = if options.dry_run { None } else { Some(start_offsets(workload, &bootstrap, &topics)?) };
    let outcome = phase(options, &topics, Phase::Measure { starts }, &mut broker, &tls_client);
    if workload.mode != Mode::Consume {
        let side = side(&outcome.produce, &report.limits, workload.mode, false, options.dry_run);
        report.produce = Some(side);
    }
    if workload.mode != Mode::Produce && !options.dry_run {
        let side = side(&outcome.consume, &report.limits, workload.mode, true, false);
        report.consume = Some(side);
    }
    report.complete = outcome.errors.is_empty();
    report.errors = outcome.errors;
    print_report(&report);
    Ok(report)
}

/// One line on what the workload runs.
pub fn describe(workload: &Workload) -> String {
    let rate = workload.target_records_per_second();
    let rate = if rate > 0.0 {
        format!("{:.0} records/s ({:.0} MB/s)", rate, rate * f64::from(workload.record_bytes) / 1e6)
    } else {
        "max rate".to_string()
    };
    format!(
        "{}: {:?} mode, {} topic(s) x {} partition(s), {} producer(s) and {} consumer(s) per topic, {} B records, {rate}, acks {:?}, {} s warm-up + {} s",
        workload.name,
        workload.mode,
        workload.topics,
        workload.partitions,
        workload.producers,
        workload.consumers,
        workload.record_bytes,
        workload.acks,
        workload.warm_up_seconds,
        workload.duration_seconds
    )
}

/// A topic's partitions and the address of each one's shard.
#[derive(Debug, Clone)]
struct TopicTargets {
    name: String,
    partitions: Vec<PartitionTarget>,
}

fn dry_run_topics(workload: &Workload) -> Vec<TopicTargets> {
    let address: std::net::SocketAddr = "127.0.0.1:9".parse().expect("an address");
    workload
        .topic_names()
        .into_iter()
        .map(|name| TopicTargets {
            name,
            partitions: (0..workload.partitions).map(|partition| PartitionTarget { partition, address }).collect(),
        })
        .collect()
}

/// Recreates the workload's topics (or checks they exist, for a consume-only run of
/// stored data) and finds each partition's shard.
fn prepare_topics(workload: &Workload, bootstrap: &str) -> anyhow::Result<Vec<TopicTargets>> {
    let client = Client::connect(bootstrap).map_err(|error| anyhow::anyhow!("broker at {bootstrap}: {error}"))?;
    let entries = workload.topic_entries().map_err(anyhow::Error::msg)?;
    let configs: Vec<(&str, &str)> = entries.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let existing: Vec<String> = block_on(client.topics())?.into_iter().map(|t| t.name).collect();
    let mut targets = Vec::new();
    for name in workload.topic_names() {
        if workload.recreates_topics() {
            if existing.contains(&name) {
                block_on(client.delete_topic(&name)).map_err(|e| anyhow::anyhow!("deleting topic {name}: {e}"))?;
            }
            block_on(client.create_topic(&name, workload.partitions, &configs))
                .map_err(|e| anyhow::anyhow!("creating topic {name}: {e}"))?;
        } else {
            anyhow::ensure!(
                existing.contains(&name),
                "topic {name} does not exist: a consume workload without prefill_bytes reads a stored topic"
            );
        }
        block_on(client.refresh_metadata())?;
        let count = block_on(client.partition_count(&name))?;
        anyhow::ensure!(
            count >= workload.partitions,
            "topic {name} has {count} partitions; the workload reads {}",
            workload.partitions
        );
        let partitions = (0..workload.partitions)
            .map(|partition| Ok(PartitionTarget { partition, address: client.address_for(&name, partition)? }))
            .collect::<anyhow::Result<_>>()?;
        targets.push(TopicTargets { name, partitions });
    }
    Ok(targets)
}

/// Where each partition's consumer starts and, reading stored data, stops.
type Starts = Vec<Vec<(u64, Option<u64>)>>;

fn start_offsets(workload: &Workload, bootstrap: &str, topics: &[TopicTargets]) -> anyhow::Result<Starts> {
    if workload.consumers == 0 {
        return Ok(Vec::new());
    }
    let client = Client::connect(bootstrap)?;
    topics
        .iter()
        .map(|topic| {
            topic
                .partitions
                .iter()
                .map(|p| {
                    let latest =
                        block_on(client.list_offset(&topic.name, p.partition, OffsetSpec::Latest))?.max(0) as u64;
                    Ok(match workload.mode {
                        Mode::Consume => {
                            let earliest =
                                block_on(client.list_offset(&topic.name, p.partition, OffsetSpec::Earliest))?.max(0);
                            (earliest as u64, Some(latest))
                        }
                        _ => (latest, None),
                    })
                })
                .collect()
        })
        .collect()
}

enum Phase {
    /// Producers only, at max rate, until `records` in all.
    Prefill { records: u64 },
    /// The workload itself; consumers start at `starts` (none in a dry run).
    Measure { starts: Option<Starts> },
}

/// What a phase measured, merged over its workers.
struct Outcome {
    produce: Recorder,
    consume: Recorder,
    errors: Vec<String>,
}

/// The longest consumers keep reading after the producers stop.
const DRAIN: Duration = Duration::from_secs(30);

fn phase(
    options: &Options,
    topics: &[TopicTargets],
    phase: Phase,
    broker: &mut Option<SpawnedBroker>,
    tls: &Option<std::sync::Arc<rustls::ClientConfig>>,
) -> Outcome {
    let workload = &options.workload;
    let prefill = matches!(phase, Phase::Prefill { .. });
    let mut settings = engine::Settings {
        mode: if prefill { Mode::Produce } else { workload.mode },
        record_bytes: workload.record_bytes as usize,
        keys: workload.keys,
        key_count: workload.key_count,
        payload_random: workload.payload_random,
        acks: workload.acks,
        batch_bytes: workload.batch_bytes as usize,
        linger: Duration::from_secs_f64(workload.linger_ms / 1e3),
        in_flight: workload.in_flight as usize,
        fetch_max_bytes: workload.fetch_max_bytes,
        compression: strand_protocol::Compression::from_name(&workload.compression).expect("validated"),
        null_sink: options.dry_run,
        request_timeout: options.request_timeout,
        protocol: options.protocol,
        tls: tls.clone(),
    };
    let (warm_up, duration) = match phase {
        Phase::Prefill { .. } => {
            // As fast as possible, acknowledged, bounded by an hour.
            settings.acks = if workload.acks == crate::workload::Acks::None {
                crate::workload::Acks::Leader
            } else {
                workload.acks
            };
            (Duration::ZERO, Duration::from_secs(3600))
        }
        Phase::Measure { .. } => {
            (Duration::from_secs_f64(workload.warm_up_seconds), Duration::from_secs_f64(workload.duration_seconds))
        }
    };
    let warm_up = if workload.mode == Mode::Consume && !prefill { Duration::ZERO } else { warm_up };
    let origin = Instant::now();
    // A catch-up read ends with its window; a tail read may drain after it.
    let drain = if workload.mode == Mode::Consume && !prefill { Duration::ZERO } else { DRAIN };
    let timing = Timing {
        origin,
        measure_from_ns: warm_up.as_nanos() as u64,
        measure_until_ns: (warm_up + duration).as_nanos() as u64,
        drain_until_ns: (warm_up + duration + drain).as_nanos() as u64,
    };
    // Producers and consumers dealt round-robin over the workers.
    let mut workers: Vec<WorkerPlan> =
        options.cores.iter().map(|&core| WorkerPlan { core: Some(core), ..WorkerPlan::default() }).collect();
    let producers_per_topic = workload.producers.max(u32::from(prefill));
    let total_producers = producers_per_topic as u64 * topics.len() as u64;
    let run_producers = prefill || workload.mode != Mode::Consume;
    let worker_count = workers.len();
    let mut next = 0;
    if run_producers {
        let rate = if prefill { 0.0 } else { workload.target_records_per_second() / total_producers as f64 };
        let (records_total, per_producer) = match phase {
            Phase::Prefill { records } => (records, records.div_ceil(total_producers)),
            _ => (0, 0),
        };
        let mut assigned = 0;
        for topic in topics {
            for id in 0..producers_per_topic {
                let record_limit = prefill.then(|| {
                    let limit = per_producer.min(records_total - assigned);
                    assigned += limit;
                    limit
                });
                workers[next % worker_count].producers.push(ProducerPlan {
                    id,
                    topic: topic.name.clone(),
                    partitions: topic.partitions.clone(),
                    records_per_second: rate,
                    record_limit,
                });
                next += 1;
            }
        }
    }
    if let Phase::Measure { starts: Some(starts) } = &phase {
        for (topic, starts) in topics.iter().zip(starts) {
            for id in 0..workload.consumers {
                let partitions = topic
                    .partitions
                    .iter()
                    .zip(starts)
                    .enumerate()
                    .filter(|(i, _)| *i as u32 % workload.consumers == id)
                    .map(|(_, (target, &(start, end)))| ConsumePartition { target: target.clone(), start, end })
                    .collect();
                workers[next % worker_count].consumers.push(ConsumerPlan { id, topic: topic.name.clone(), partitions });
                next += 1;
            }
        }
    }
    let shared = Arc::new(Shared::default());
    let producer_count: usize = workers.iter().map(|w| w.producers.len()).sum();
    shared.producers_running.store(producer_count, Ordering::Relaxed);
    let settings = Arc::new(settings);
    let io_memory = strand::runtime::io_memory_bytes(workers.len(), 1 << 20);
    let (sender, receiver) = std::sync::mpsc::channel();
    let mut started = 0;
    let mut errors = Vec::new();
    for (index, plan) in workers.into_iter().enumerate() {
        if plan.producers.is_empty() && plan.consumers.is_empty() {
            continue;
        }
        let (settings, shared, sender) = (settings.clone(), shared.clone(), sender.clone());
        let spawned =
            strand::runtime::executor(&format!("bench-{index}"), plan.core, io_memory).spawn(move || async move {
                let result = engine::run_worker(plan, settings, timing, shared).await;
                let _ = sender.send(result);
            });
        match spawned {
            // Detached: a worker stuck past the deadline must not hold the report.
            Ok(handle) => {
                drop(handle);
                started += 1;
            }
            Err(error) => errors.push(format!("starting generator worker {index}: {error}")),
        }
    }
    drop(sender);
    let deadline = timing.drain_until_ns + options.request_timeout.as_nanos() as u64 * 2;
    let mut produce = Recorder::new(timing.measure_from_ns, timing.measure_until_ns);
    let mut consume = Recorder::new(timing.measure_from_ns, timing.measure_until_ns);
    let mut finished = 0;
    let mut last = (0u64, 0u64, Instant::now());
    let mut stopped_at = None;
    while finished < started {
        match receiver.recv_timeout(Duration::from_millis(1000)) {
            Ok(result) => {
                produce.merge(&result.produce);
                consume.merge(&result.consume);
                finished += 1;
                continue;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        let now = timing.now_ns();
        if options.progress {
            let (produced, consumed) =
                (shared.acked_bytes.load(Ordering::Relaxed), shared.consumed_bytes.load(Ordering::Relaxed));
            let seconds = last.2.elapsed().as_secs_f64();
            let label = if now < timing.measure_from_ns { "warm-up" } else { "measuring" };
            eprintln!(
                "  {:>5.1} s {label:<9} produce {:>7.3} GB/s  consume {:>7.3} GB/s  ({} records acked, {} consumed)",
                now as f64 / 1e9,
                (produced - last.0) as f64 / seconds / 1e9,
                (consumed - last.1) as f64 / seconds / 1e9,
                shared.acked_records.load(Ordering::Relaxed),
                shared.consumed_records.load(Ordering::Relaxed),
            );
            last = (produced, consumed, Instant::now());
        }
        if let Some(broker) = broker.as_mut() {
            if let Some(status) = broker.exited() {
                shared.fail(format!("the broker (pid {}) exited: {status}", broker.pid()));
            }
        }
        if now > deadline && stopped_at.is_none() {
            shared.fail(format!("the run passed its deadline of {:.0} s; stopping", deadline as f64 / 1e9));
            stopped_at = Some(Instant::now());
        }
        if stopped_at.is_some_and(|at| at.elapsed() > Duration::from_secs(10)) {
            errors.push(format!("{} generator worker(s) did not stop; their figures are missing", started - finished));
            break;
        }
    }
    errors.extend(shared.errors());
    if errors.is_empty() {
        if let Some(broker) = broker.as_mut() {
            if let Some(status) = broker.exited() {
                errors.push(format!("the broker (pid {}) exited: {status}", broker.pid()));
            }
        }
    }
    Outcome { produce, consume, errors }
}

/// A side's figures from its recorder. A catch-up read or a prefill counts from its
/// start to its last record; the others over the measured window.
fn side(recorder: &Recorder, limits: &[LimitRow], mode: Mode, consumers: bool, dry_run: bool) -> Side {
    let is_consume_side = consumers;
    // From the window's start to its last completion: the whole window for a run
    // that went to its end, less for a catch-up that finished early or a run that
    // stopped.
    let seconds = recorder.active_seconds();
    let bytes_per_s = if seconds > 0.0 { recorder.bytes as f64 / seconds } else { 0.0 };
    let share = if dry_run {
        None
    } else {
        // Producing is bound by the lower of the disk's write and the network; a
        // catch-up read by the disk's read; a tail read by what producing allows.
        let limit = match mode {
            Mode::Consume if is_consume_side => limits::best(limits, "read"),
            _ => {
                let write = limits::best(limits, "write");
                let tcp = limits::best(limits, "tcp");
                match (write, tcp) {
                    (Some(w), Some(t)) => Some(if w.1 <= t.1 { w } else { t }),
                    (a, b) => a.or(b),
                }
            }
        };
        limit.map(|(name, limit)| Share { limit: name, limit_bytes_per_s: limit, share: bytes_per_s / limit })
    };
    let latency_from = match (mode, is_consume_side) {
        (Mode::EndToEnd, true) => "intended send to consumer receipt",
        (_, true) => "none (a catch-up read of stored records)",
        (_, false) => "intended send to produce acknowledgement",
    };
    Side {
        records: recorder.records,
        bytes: recorder.bytes,
        seconds,
        records_per_s: if seconds > 0.0 { recorder.records as f64 / seconds } else { 0.0 },
        bytes_per_s,
        share,
        latency_from: latency_from.to_string(),
        latency: recorder.percentiles(),
        distribution: recorder.distribution(),
        histogram: recorder.encoded_histogram(),
        series: recorder.series(),
    }
}

fn print_side(label: &str, side: &Side) {
    let share = side
        .share
        .as_ref()
        .map(|s| format!("  {:.0}% of {} ({:.3} GB/s)", s.share * 100.0, s.limit, s.limit_bytes_per_s / 1e9))
        .unwrap_or_default();
    println!(
        "{label:<8} {:>8.3} GB/s {:>12.0} records/s  {} records in {:.2} s{share}",
        side.bytes_per_s / 1e9,
        side.records_per_s,
        side.records,
        side.seconds
    );
    if let Some(p) = &side.latency {
        println!(
            "         latency ({}): p50 {} p90 {} p99 {} p99.9 {} p99.99 {} max {}",
            side.latency_from,
            us(p.p50_us),
            us(p.p90_us),
            us(p.p99_us),
            us(p.p999_us),
            us(p.p9999_us),
            us(p.max_us)
        );
    }
}

/// A latency in µs, printed in the unit that reads best.
pub fn us(value: f64) -> String {
    if value >= 10_000.0 {
        format!("{:.1} ms", value / 1e3)
    } else if value >= 1_000.0 {
        format!("{:.2} ms", value / 1e3)
    } else {
        format!("{value:.0} us")
    }
}

fn print_report(report: &Report) {
    let title = if report.setup.dry_run { "result (dry run: null sink, no broker)" } else { "result" };
    let window = if report.workload.mode == Mode::Consume {
        format!("a catch-up read of what was stored, allowed {:.0} s", report.duration_seconds)
    } else {
        format!("{:.1} s measured after {:.1} s warm-up", report.duration_seconds, report.warm_up_seconds)
    };
    println!("{title}: {window}{}", if report.complete { "" } else { " (INCOMPLETE)" });
    if let Some(side) = &report.produce {
        print_side("produce", side);
    }
    if let Some(side) = &report.consume {
        print_side("consume", side);
    }
    for error in &report.errors {
        println!("error: {error}");
    }
}
