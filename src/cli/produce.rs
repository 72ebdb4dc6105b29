//! `strand produce TOPIC`: one record per line of standard input.

use super::{connect, BOOTSTRAP_DEFAULT};
use clap::{Args, ValueEnum};
use std::io::BufRead;
use strand_client::{Acks, Producer, ProducerConfig, ProducerRecord};

#[derive(Clone, Copy, ValueEnum)]
pub enum AcksArg {
    None,
    Leader,
    Durable,
}

#[derive(Args)]
pub struct ProduceArgs {
    topic: String,
    /// Split each line at the first occurrence of this string: key before, value after.
    #[arg(long)]
    key_separator: Option<String>,
    #[arg(long, value_enum, default_value = "durable")]
    acks: AcksArg,
    /// Send every record to this partition instead of the partitioner's choice.
    #[arg(long)]
    partition: Option<u32>,
    #[arg(long, default_value = BOOTSTRAP_DEFAULT)]
    bootstrap: String,
}

pub fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let client = connect(&args.bootstrap)?;
    // Refuse an unknown topic before reading any input.
    strand_client::block_on(client.partition_count(&args.topic))?;
    let acks = match args.acks {
        AcksArg::None => Acks::None,
        AcksArg::Leader => Acks::Leader,
        AcksArg::Durable => Acks::Durable,
    };
    let producer = Producer::new(client, ProducerConfig { acks, ..ProducerConfig::default() });
    let mut deliveries = Vec::new();
    for (number, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.map_err(|e| anyhow::anyhow!("reading standard input: {e}"))?;
        let (key, value) = match &args.key_separator {
            Some(separator) => match line.split_once(separator.as_str()) {
                Some((key, value)) => (Some(key.as_bytes()), value.as_bytes()),
                None => anyhow::bail!("line {}: no key separator {separator:?}", number + 1),
            },
            None => (None, line.as_bytes()),
        };
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
    eprintln!("produced {total} records to {}", args.topic);
    Ok(())
}
