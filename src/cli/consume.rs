//! `strand consume TOPIC`: print records, to the end of what is stored (or `--count`),
//! or without end with `--follow`.

use super::connect;
use clap::{Args, ValueEnum};
use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;
use strand_client::{block_on, Consumer, ConsumerConfig, ConsumerRecord, OffsetSpec, Seek};

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// The value of each record, one per line.
    Text,
    /// One JSON object per record: partition, offset, timestamp, key, value, headers.
    Json,
}

#[derive(Args)]
pub struct ConsumeArgs {
    /// The topic to read.
    topic: String,
    /// Read only this partition (default: every partition).
    #[arg(long, allow_negative_numbers = true, value_parser = super::parse_u32)]
    partition: Option<u32>,
    /// Where to start: earliest, latest, an offset, or @MS (a timestamp in ms).
    #[arg(long, default_value = "earliest")]
    from: String,
    /// Stop after this many records (0: print none).
    #[arg(long, allow_negative_numbers = true, value_parser = super::parse_u64)]
    count: Option<u64>,
    /// Keep waiting for new records instead of stopping at the end.
    #[arg(long)]
    follow: bool,
    /// How each record is printed.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Consume as a member of this group: the broker shares the topic's partitions
    /// among the group's members, and positions are committed (every second and on
    /// exit). Runs until --count records or SIGINT/SIGTERM; --from then applies only
    /// to partitions the group has no committed offset for (earliest or latest).
    #[arg(long)]
    group: Option<String>,
    /// With --group: how long the broker waits for a silent member before giving its
    /// partitions to the others.
    #[arg(long, default_value_t = 10_000)]
    session_timeout_ms: u64,
    /// With --group: sticky (the default), range or round-robin.
    #[arg(long, default_value = "sticky")]
    strategy: String,
    /// With --follow or --group: give up once the broker has been unreachable this
    /// long (default: keep retrying until it is back).
    #[arg(long, allow_negative_numbers = true, value_parser = super::parse_u64)]
    timeout_ms: Option<u64>,
    #[command(flatten)]
    broker: super::BrokerArgs,
}

/// Set by SIGINT/SIGTERM: a group member commits and leaves before exiting.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, std::sync::atomic::Ordering::Relaxed);
}

fn run_group(args: &ConsumeArgs, group: &str) -> anyhow::Result<()> {
    let reset = match args.from.as_str() {
        "earliest" => strand_client::Reset::Earliest,
        "latest" => strand_client::Reset::Latest,
        other => anyhow::bail!(
            "--from {other:?}: with --group, earliest or latest (for partitions without a committed offset)"
        ),
    };
    if args.partition.is_some() {
        anyhow::bail!("--partition and --group: the group assigns partitions; use one or the other");
    }
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let client = connect(&args.broker)?;
    let mut consumer = Consumer::new(client.clone(), ConsumerConfig { reset, ..ConsumerConfig::default() });
    let config = strand_client::GroupConfig {
        session_timeout: Duration::from_millis(args.session_timeout_ms),
        strategy: args.strategy.clone(),
        auto_commit: true,
        auto_commit_interval: Duration::from_secs(1),
    };
    if args.count == Some(0) {
        // Nothing to print: do not join (and so rebalance) the group for nothing.
        block_on(client.partition_count(&args.topic))?;
        return Ok(());
    }
    block_on(consumer.subscribe(group, &[&args.topic], config))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut printed = 0u64;
    let mut retry = Retry::new(&args.broker.bootstrap, args.timeout_ms);
    while !STOP.load(std::sync::atomic::Ordering::Relaxed) {
        let records = match consumer.poll(Duration::from_millis(200)) {
            Ok(records) => retry.succeeded(records),
            Err(error) => {
                retry.failed(error)?;
                continue;
            }
        };
        for event in consumer.events() {
            eprintln!("strand: {}", describe_event(&event));
        }
        for record in records {
            print_record(&mut out, &record, args.format)?;
            printed += 1;
            if args.count.is_some_and(|count| printed >= count) {
                out.flush()?;
                block_on(consumer.close())?;
                return Ok(());
            }
        }
        out.flush()?;
    }
    block_on(consumer.close())?;
    Ok(())
}

/// Waiting for a broker that stopped: like a Kafka consumer, a following or group
/// consumer keeps its position and retries with backoff (saying so on stderr once)
/// until the broker answers again or `timeout_ms` passes.
struct Retry<'a> {
    bootstrap: &'a str,
    timeout: Option<Duration>,
    /// When the current run of failures began.
    since: Option<std::time::Instant>,
    backoff: Duration,
}

const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(100);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(5);

impl<'a> Retry<'a> {
    fn new(bootstrap: &'a str, timeout_ms: Option<u64>) -> Retry<'a> {
        Retry { bootstrap, timeout: timeout_ms.map(Duration::from_millis), since: None, backoff: RETRY_BACKOFF_MIN }
    }

    /// A call that succeeded: says the broker is back if it was away.
    fn succeeded<T>(&mut self, value: T) -> T {
        if let Some(since) = self.since.take() {
            eprintln!(
                "strand: the broker at {} is back after {:.1} s; resuming",
                self.bootstrap,
                since.elapsed().as_secs_f64()
            );
        }
        self.backoff = RETRY_BACKOFF_MIN;
        value
    }

    /// A call that failed: waits before the next try, or gives up (errors that
    /// retrying cannot mend, or the timeout).
    fn failed(&mut self, error: strand_client::ClientError) -> anyhow::Result<()> {
        if !error.is_retriable() {
            return Err(error.into());
        }
        let since = *self.since.get_or_insert_with(|| {
            eprintln!("strand: {error}; retrying until the broker at {} is back", self.bootstrap);
            std::time::Instant::now()
        });
        if let Some(timeout) = self.timeout.filter(|&timeout| since.elapsed() >= timeout) {
            anyhow::bail!(
                "the broker at {} was unreachable for {} ms (--timeout-ms): {error}",
                self.bootstrap,
                timeout.as_millis()
            );
        }
        std::thread::sleep(self.backoff);
        self.backoff = (self.backoff * 2).min(RETRY_BACKOFF_MAX);
        Ok(())
    }
}

fn describe_event(event: &strand_client::GroupEvent) -> String {
    let list = |tps: &[strand_client::TopicPartition]| {
        tps.iter().map(|(t, p)| format!("{t}-{p}")).collect::<Vec<_>>().join(", ")
    };
    match event {
        strand_client::GroupEvent::Assigned(tps) => format!("assigned {}", list(tps)),
        strand_client::GroupEvent::Revoked(tps) => format!("revoked {}", list(tps)),
        strand_client::GroupEvent::Lost(tps) => format!("lost {} (the session expired)", list(tps)),
    }
}

fn parse_from(from: &str) -> anyhow::Result<Seek> {
    Ok(match from {
        "earliest" => Seek::Earliest,
        "latest" => Seek::Latest,
        at if at.starts_with('@') => {
            Seek::Timestamp(at[1..].parse().map_err(|_| anyhow::anyhow!("--from {at:?}: expected @ and milliseconds"))?)
        }
        offset => Seek::Offset(
            offset
                .parse()
                .map_err(|_| anyhow::anyhow!("--from {offset:?}: expected earliest, latest, OFFSET or @MS"))?,
        ),
    })
}

pub fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    if let Some(group) = args.group.clone() {
        return run_group(&args, &group);
    }
    let from = parse_from(&args.from)?;
    let client = connect(&args.broker)?;
    let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default());
    let partitions = args.partition.map(|p| vec![p]);
    block_on(consumer.assign(&args.topic, partitions.as_deref(), from))?;
    if args.count == Some(0) {
        return Ok(());
    }
    // Without --follow, stop at the end of what each partition holds now.
    let mut ends: HashMap<u32, u64> = HashMap::new();
    if !args.follow {
        for (_, partition, _) in consumer.assignment() {
            let end = block_on(client.list_offset(&args.topic, partition, OffsetSpec::Latest))?;
            ends.insert(partition, end.max(0) as u64);
        }
    }
    let done = |consumer: &Consumer| {
        !args.follow && consumer.assignment().iter().all(|(_, partition, position)| *position >= ends[partition])
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut printed = 0u64;
    let mut retry = Retry::new(&args.broker.bootstrap, args.timeout_ms);
    while !done(&consumer) {
        let records = match consumer.poll(Duration::from_millis(500)) {
            Ok(records) => retry.succeeded(records),
            // Only a consumer that follows waits for the broker to come back; one that
            // reads to the end reports the failure.
            Err(error) if args.follow => {
                retry.failed(error)?;
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        for record in records {
            if !args.follow && record.offset >= ends[&record.partition] {
                continue;
            }
            print_record(&mut out, &record, args.format)?;
            printed += 1;
            if args.count.is_some_and(|count| printed >= count) {
                out.flush()?;
                return Ok(());
            }
        }
        out.flush()?;
    }
    Ok(())
}

fn text(bytes: &Option<bytes::Bytes>) -> serde_json::Value {
    bytes.as_ref().map_or(serde_json::Value::Null, |b| String::from_utf8_lossy(b).into_owned().into())
}

fn print_record(out: &mut impl Write, record: &ConsumerRecord, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Text => {
            out.write_all(record.value.as_deref().unwrap_or_default())?;
            out.write_all(b"\n")?;
        }
        Format::Json => {
            let headers: serde_json::Map<String, serde_json::Value> =
                record.headers.iter().map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), text(v))).collect();
            let json = serde_json::json!({
                "partition": record.partition,
                "offset": record.offset,
                "timestamp": record.timestamp_ms,
                "key": text(&record.key),
                "value": text(&record.value),
                "headers": headers,
            });
            writeln!(out, "{json}")?;
        }
    }
    Ok(())
}
