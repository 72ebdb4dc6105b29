//! `strand produce TOPIC`: one record per line of standard input.
//!
//! Records are bytes: a line is sent as it is (any bytes, not only UTF-8), without its
//! line feed.

use super::connect;
use clap::{Args, ValueEnum};
use std::io::BufRead;
use strand_client::{Acks, BatchBuilder, Compression, Producer, ProducerConfig, ProducerRecord};

/// When the broker acknowledges a record.
#[derive(Clone, Copy, ValueEnum)]
pub enum AcksArg {
    /// Not at all: the producer does not wait (Kafka's acks=0).
    None,
    /// Once the record is in the partition's log, before it is durable (acks=1).
    Leader,
    /// Once the topic's durability policy is met: after fdatasync for fsync = always
    /// (acks=all).
    Durable,
}

/// A codec for the batches sent.
#[derive(Clone, Copy, ValueEnum)]
pub enum CompressionArg {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl From<CompressionArg> for Compression {
    fn from(arg: CompressionArg) -> Compression {
        match arg {
            CompressionArg::None => Compression::None,
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Snappy => Compression::Snappy,
            CompressionArg::Lz4 => Compression::Lz4,
            CompressionArg::Zstd => Compression::Zstd,
        }
    }
}

#[derive(Args)]
pub struct ProduceArgs {
    /// The topic to append to (it must exist).
    topic: String,
    /// Split each line at the first occurrence of this string: key before, value after.
    #[arg(long)]
    key_separator: Option<String>,
    /// When a record counts as sent.
    #[arg(long, value_enum, default_value = "durable")]
    acks: AcksArg,
    /// Compress each batch with this codec (the broker checks and stores it compressed).
    #[arg(long, value_enum, default_value = "none")]
    compression: CompressionArg,
    /// Send every record to this partition instead of the partitioner's choice.
    #[arg(long)]
    partition: Option<u32>,
    #[command(flatten)]
    broker: super::BrokerArgs,
}

pub fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let client = connect(&args.broker)?;
    // Refuse an unknown topic before reading any input, and learn its batch limit so
    // that a line too large for it is named before anything of it is sent.
    strand_client::block_on(client.partition_count(&args.topic))?;
    let batch_bytes_max = strand_client::block_on(client.describe_topic_config(&args.topic))?
        .into_iter()
        .find(|(key, _)| key == "batch_bytes_max")
        .and_then(|(_, value)| value.parse::<usize>().ok());
    let acks = match args.acks {
        AcksArg::None => Acks::None,
        AcksArg::Leader => Acks::Leader,
        AcksArg::Durable => Acks::Durable,
    };
    let config = ProducerConfig { acks, compression: args.compression.into(), ..ProducerConfig::default() };
    let producer = Producer::new(client, config);
    let mut deliveries = Vec::new();
    let mut input = std::io::stdin().lock();
    let mut line = Vec::new();
    for number in 1.. {
        line.clear();
        let read = input.read_until(b'\n', &mut line).map_err(|e| anyhow::anyhow!("reading standard input: {e}"))?;
        if read == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        let (key, value) = match &args.key_separator {
            Some(separator) => match split_once(&line, separator.as_bytes()) {
                Some((key, value)) => (Some(key), value),
                None => {
                    // Records already sent stay sent: say how many before failing.
                    producer.flush();
                    anyhow::bail!(
                        "line {number}: no key separator {separator:?}; the {} lines before it were sent",
                        number - 1
                    )
                }
            },
            None => (None, &line[..]),
        };
        let size = strand_protocol::batch::HEADER_BYTES + BatchBuilder::record_size(key, Some(value), &[]);
        if let Some(max) = batch_bytes_max.filter(|&max| size > max && matches!(args.compression, CompressionArg::None))
        {
            producer.flush();
            anyhow::bail!(
                "line {number}: a record of {size} bytes (with its batch header) is larger than the topic's batch_bytes_max ({max} bytes); the {} lines before it were sent. Raise the limit with `strand topic alter {} --config batch_bytes_max=N`, or send it compressed",
                number - 1,
                args.topic
            );
        }
        let mut record = ProducerRecord::new(&args.topic, value);
        record.key = key;
        record.partition = args.partition;
        deliveries.push(producer.send(record)?);
    }
    producer.flush();
    let total = deliveries.len();
    let mut failed = 0;
    let mut first_error = None;
    for delivery in deliveries {
        if let Err(error) = delivery.wait() {
            failed += 1;
            first_error.get_or_insert(error);
        }
    }
    if let Some(error) = first_error {
        anyhow::bail!("{failed} of {total} records failed: {error}");
    }
    eprintln!("produced {} to {}", super::plural(total as u64, "record"), args.topic);
    Ok(())
}

fn split_once<'a>(line: &'a [u8], separator: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    if separator.is_empty() {
        return None;
    }
    let at = line.windows(separator.len()).position(|window| window == separator)?;
    Some((&line[..at], &line[at + separator.len()..]))
}
