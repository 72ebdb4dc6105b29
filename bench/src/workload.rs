//! Workloads: what a `strand-bench run` does, read from a TOML file.
//!
//! Every key has a default; a file names what it changes. Unknown keys and values out
//! of range are refused with the key's name, the value and what is allowed, before
//! anything connects. `bench/workloads/` holds the shipped workloads and
//! `bench/README.md` documents every key.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// What a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Producers only; latency is from a record's intended send time to its ack.
    Produce,
    /// Consumers only, reading what the topics store from the earliest offset to the
    /// end they had when the run began (a catch-up read).
    Consume,
    /// Producers and consumers at once; latency is from a record's intended send time
    /// to the moment a consumer receives it.
    EndToEnd,
}

/// How records are keyed, which decides their partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Keys {
    /// No key: each batch fills one partition, then the next (Kafka's sticky
    /// partitioner).
    None,
    /// A key drawn uniformly from `key_count` keys, partitioned by murmur2 as Kafka's
    /// default partitioner does.
    Random,
    /// Keys `0, 1, …, key_count - 1` in turn, partitioned by murmur2.
    Sequential,
}

/// Producer acknowledgement, as in the native protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Acks {
    None,
    Leader,
    Durable,
}

/// One workload. Field docs are the reference `bench/README.md` repeats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Workload {
    /// A title for reports; the file name when absent.
    pub name: String,
    /// One sentence on what the workload shows.
    pub description: String,
    /// `produce`, `consume` or `end-to-end`.
    pub mode: Mode,
    /// Topics, named `<topic_prefix>-<i>`.
    pub topics: u32,
    /// Partitions of each topic.
    pub partitions: u32,
    /// Prefix of the topics' names; the run deletes and recreates them unless the
    /// mode is `consume` without `prefill_bytes`.
    pub topic_prefix: String,
    /// Producers per topic.
    pub producers: u32,
    /// Consumers per topic; they split its partitions.
    pub consumers: u32,
    /// Bytes of each record's value (at least 8: it carries its intended send time).
    pub record_bytes: u32,
    /// `none`, `random` or `sequential`.
    pub keys: Keys,
    /// Distinct keys with `random` and `sequential`.
    pub key_count: u32,
    /// Share of each value that is random bytes (the rest is zeros), 0 to 1.
    pub payload_random: f64,
    /// Target rate of all producers together, records per second; 0: as fast as
    /// they can. At most one of the two rates is set.
    pub records_per_second: u64,
    /// Target rate of all producers together, value bytes per second.
    pub bytes_per_second: u64,
    /// Seconds run before measuring; their latencies and rates are left out.
    pub warm_up_seconds: f64,
    /// Seconds measured after the warm-up. In `consume` mode, the longest the
    /// catch-up may take.
    pub duration_seconds: f64,
    /// Bytes produced, as fast as possible, before the run starts (the data a
    /// `consume` workload reads back).
    pub prefill_bytes: u64,
    /// `none`, `leader` or `durable`.
    pub acks: Acks,
    /// Most bytes of one producer batch (one partition's RecordBatch).
    pub batch_bytes: u32,
    /// Longest a record waits for its batch to fill, milliseconds.
    pub linger_ms: f64,
    /// Produce requests in flight per producer connection.
    pub in_flight: u32,
    /// Codec of every producer batch: `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    pub compression: String,
    /// Most bytes one fetch returns.
    pub fetch_max_bytes: u32,
    /// Topic settings, as `strand topic create` takes them: `fsync`,
    /// `fsync_interval_ms`, `retention_ms`, `segment_bytes`…
    pub topic: BTreeMap<String, toml::Value>,
    /// Settings of a broker started with `--spawn-broker`, in `strand.toml` form.
    pub broker: toml::Table,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            name: String::new(),
            description: String::new(),
            mode: Mode::Produce,
            topics: 1,
            partitions: 1,
            topic_prefix: "bench".into(),
            producers: 1,
            consumers: 0,
            record_bytes: 1024,
            keys: Keys::None,
            key_count: 1000,
            payload_random: 1.0,
            records_per_second: 0,
            bytes_per_second: 0,
            warm_up_seconds: 2.0,
            duration_seconds: 10.0,
            prefill_bytes: 0,
            acks: Acks::Leader,
            batch_bytes: 512 * 1024,
            linger_ms: 2.0,
            in_flight: 16,
            compression: "none".into(),
            fetch_max_bytes: 8 << 20,
            topic: BTreeMap::new(),
            broker: toml::Table::new(),
        }
    }
}

impl Workload {
    /// Reads and checks the workload file at `path`.
    pub fn load(path: &Path) -> Result<Workload, String> {
        let text = std::fs::read_to_string(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        let mut workload = Workload::parse(&text).map_err(|message| format!("{}:{message}", path.display()))?;
        if workload.name.is_empty() {
            workload.name = path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
        }
        Ok(workload)
    }

    /// Parses and checks a workload; errors are one line naming the key.
    pub fn parse(text: &str) -> Result<Workload, String> {
        let workload: Workload = toml::from_str(text).map_err(|error| strand::config::toml_error_line(text, &error))?;
        workload.validate().map_err(|message| format!(" {message}"))?;
        Ok(workload)
    }

    /// Checks every value against its range.
    pub fn validate(&self) -> Result<(), String> {
        fn range<T: PartialOrd + std::fmt::Display>(key: &str, value: T, min: T, max: T) -> Result<(), String> {
            if value < min || value > max {
                return Err(format!("{key} = {value}: must be between {min} and {max}"));
            }
            Ok(())
        }
        range("topics", self.topics, 1, 1000)?;
        range("partitions", self.partitions, 1, 10_000)?;
        range("producers", self.producers, 0, 1000)?;
        range("consumers", self.consumers, 0, 1000)?;
        range("record_bytes", self.record_bytes, 8, 1 << 20)?;
        range("key_count", self.key_count, 1, u32::MAX)?;
        range("payload_random", self.payload_random, 0.0, 1.0)?;
        range("warm_up_seconds", self.warm_up_seconds, 0.0, 600.0)?;
        range("duration_seconds", self.duration_seconds, 0.1, 3600.0)?;
        range("prefill_bytes", self.prefill_bytes, 0, 1 << 40)?;
        range("batch_bytes", self.batch_bytes, 1024, 16 << 20)?;
        range("linger_ms", self.linger_ms, 0.0, 10_000.0)?;
        range("in_flight", self.in_flight, 1, 1024)?;
        range("fetch_max_bytes", self.fetch_max_bytes, 1024, 64 << 20)?;
        if self.topic_prefix.is_empty()
            || self.topic_prefix.len() > 200
            || !self.topic_prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(format!(
                "topic_prefix = {:?}: 1 to 200 of the characters a-z A-Z 0-9 . _ -",
                self.topic_prefix
            ));
        }
        if strand_protocol::Compression::from_name(&self.compression).is_none() {
            return Err(format!("compression = {:?}: one of none, gzip, snappy, lz4, zstd", self.compression));
        }
        if self.records_per_second > 0 && self.bytes_per_second > 0 {
            return Err("records_per_second and bytes_per_second are both set: set at most one".into());
        }
        if (self.batch_bytes as u64) < self.record_bytes as u64 + 128 {
            return Err(format!(
                "batch_bytes = {}: must hold one record of record_bytes = {} with its overhead",
                self.batch_bytes, self.record_bytes
            ));
        }
        match self.mode {
            Mode::Produce if self.producers == 0 => return Err("mode = \"produce\" needs producers >= 1".into()),
            Mode::Consume if self.consumers == 0 => return Err("mode = \"consume\" needs consumers >= 1".into()),
            Mode::EndToEnd if self.producers == 0 || self.consumers == 0 => {
                return Err("mode = \"end-to-end\" needs producers >= 1 and consumers >= 1".into())
            }
            _ => {}
        }
        if self.consumers > self.partitions {
            return Err(format!(
                "consumers = {}: more than partitions = {}; a consumer would have nothing to read",
                self.consumers, self.partitions
            ));
        }
        strand::storage::topic_config(&strand::storage::TopicConfig::default(), &self.topic_entries()?)
            .map_err(|message| format!("[topic]: {message}"))?;
        let broker = toml::to_string(&self.broker).map_err(|error| format!("[broker]: {error}"))?;
        toml::from_str::<strand::config::BrokerConfig>(&broker)
            .map_err(|error| format!("[broker]: {}", error.message().replace('\n', " ")))?
            .validate()
            .map_err(|message| format!("[broker]: {message}"))?;
        Ok(())
    }

    /// The `[topic]` settings as the text pairs CreateTopics takes.
    pub fn topic_entries(&self) -> Result<Vec<(String, String)>, String> {
        self.topic
            .iter()
            .map(|(key, value)| {
                let text = match value {
                    toml::Value::String(text) => text.clone(),
                    toml::Value::Integer(number) => number.to_string(),
                    other => return Err(format!("[topic] {key} = {other}: a string or an integer")),
                };
                Ok((key.clone(), text))
            })
            .collect()
    }

    /// The target rate in records per second of all producers together (0: max).
    pub fn target_records_per_second(&self) -> f64 {
        if self.records_per_second > 0 {
            self.records_per_second as f64
        } else {
            self.bytes_per_second as f64 / self.record_bytes as f64
        }
    }

    /// The topics' names.
    pub fn topic_names(&self) -> Vec<String> {
        (0..self.topics).map(|i| format!("{}-{i}", self.topic_prefix)).collect()
    }

    /// Whether the run recreates its topics (it does unless it only reads what is
    /// already stored).
    pub fn recreates_topics(&self) -> bool {
        !(self.mode == Mode::Consume && self.prefill_bytes == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_the_defaults() {
        assert_eq!(Workload::parse("").unwrap(), Workload::default());
    }

    #[test]
    fn a_full_workload_parses() {
        let workload = Workload::parse(
            r#"
            mode = "end-to-end"
            topics = 2
            partitions = 16
            producers = 4
            consumers = 4
            record_bytes = 100
            keys = "random"
            key_count = 50
            payload_random = 0.5
            bytes_per_second = 200_000_000
            acks = "durable"
            linger_ms = 0.1
            [topic]
            fsync = "always"
            segment_bytes = 67108864
            [broker.storage]
            batch_cache_bytes = 67108864
            "#,
        )
        .unwrap();
        assert_eq!(workload.mode, Mode::EndToEnd);
        assert_eq!(workload.keys, Keys::Random);
        assert_eq!(workload.acks, Acks::Durable);
        assert_eq!(workload.target_records_per_second(), 2e6);
        assert_eq!(workload.topic_names(), ["bench-0", "bench-1"]);
        let entries = workload.topic_entries().unwrap();
        assert_eq!(entries[0], ("fsync".to_string(), "always".to_string()));
        assert_eq!(entries[1], ("segment_bytes".to_string(), "67108864".to_string()));
    }

    fn refused(text: &str) -> String {
        Workload::parse(text).expect_err(text)
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let message = refused("partitons = 4\n");
        assert!(message.starts_with("1:1: partitons: unknown field `partitons`"), "{message}");
        assert!(message.contains("expected one of"), "{message}");
        let message = refused("[topic]\nfsnyc = \"always\"\n");
        assert!(message.contains("[topic]: unknown topic setting \"fsnyc\""), "{message}");
        let message = refused("[broker.storage]\nbatch_cache = 1\n");
        assert!(message.contains("[broker]") && message.contains("batch_cache"), "{message}");
    }

    #[test]
    fn bad_values_are_refused_with_what_is_allowed() {
        let message = refused("mode = \"both\"\n");
        assert!(message.starts_with("1:8: mode: unknown variant `both`"), "{message}");
        assert!(message.contains("produce") && message.contains("end-to-end"), "{message}");
        assert_eq!(refused("record_bytes = 4\n"), " record_bytes = 4: must be between 8 and 1048576");
        assert_eq!(refused("payload_random = 1.5\n"), " payload_random = 1.5: must be between 0 and 1");
        assert!(refused("partitions = -1\n").contains("partitions"));
        assert!(refused("records_per_second = 10\nbytes_per_second = 10\n").contains("both set"));
        assert!(refused("mode = \"consume\"\n").contains("needs consumers >= 1"));
        assert!(refused("consumers = 2\n").contains("more than partitions"));
        assert!(refused("topic_prefix = \"a b\"\n").contains("topic_prefix"));
        assert!(refused("[topic]\nfsync = \"sometimes\"\n").contains("[topic]"));
        assert!(refused("batch_bytes = 1024\nrecord_bytes = 4096\n").contains("batch_bytes"));
    }

    #[test]
    fn the_shipped_workloads_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|ext| ext == "toml") {
                let workload = Workload::load(&path).unwrap_or_else(|message| panic!("{message}"));
                assert!(!workload.description.is_empty(), "{} has no description", path.display());
                count += 1;
            }
        }
        assert!(count >= 6, "{count} workloads in {}", dir.display());
    }
}
