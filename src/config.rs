//! `BrokerConfig`: the broker's settings, from one TOML file or the embedded defaults.
//!
//! Every key has a default; a file names only what it changes. Unknown keys and values
//! out of range are refused when the file is read, with the key's full name, the bad
//! value and what is allowed. `config/strand.toml` lists every key with its default
//! and is tested to parse to exactly `BrokerConfig::default()`.

use crate::storage::{IoOptions, TopicConfig};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why a configuration was refused.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The cores to run shards on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cores {
    /// One shard per core the process may run on.
    All,
    /// One shard per listed core, in order: shard `i` runs on `cores[i]`.
    List(Vec<usize>),
}

impl Serialize for Cores {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Cores::All => serializer.serialize_str("all"),
            Cores::List(cores) => cores.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Cores {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Cores, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Cores;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"all\" or a list of core numbers such as [0, 1]")
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Cores, E> {
                match value {
                    "all" => Ok(Cores::All),
                    other => Err(E::invalid_value(serde::de::Unexpected::Str(other), &self)),
                }
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Cores, A::Error> {
                let mut cores = Vec::new();
                while let Some(core) = seq.next_element::<usize>()? {
                    cores.push(core);
                }
                Ok(Cores::List(cores))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Where the native protocol listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenConfig {
    /// Address to bind; the default serves this host only.
    pub address: String,
    /// The main port, shared by every shard (SO_REUSEPORT). Shard `s` also listens on
    /// `port + 1 + s`. 0: the kernel chooses every port (the ready line names them).
    pub port: u16,
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig { address: "127.0.0.1".into(), port: 9400 }
    }
}

/// Where the Kafka protocol listens, and what it tells clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Serve the Kafka protocol.
    pub enabled: bool,
    /// Address to bind; the default serves this host only.
    pub address: String,
    /// The port every shard accepts on (SO_REUSEPORT). 0: the kernel chooses (the
    /// ready line names it).
    pub port: u16,
    /// The host clients are told to connect to (Kafka's `advertised.listeners`);
    /// empty: `address`.
    pub advertised_host: String,
    /// The port clients are told to connect to; 0: the port bound.
    pub advertised_port: u16,
    /// Create a topic when a Kafka client asks for it by name in Metadata or
    /// produces to it (Kafka's `auto.create.topics.enable`, on by default there too).
    pub auto_create_topics: bool,
    /// Partitions of an automatically created topic (Kafka's `num.partitions`).
    pub auto_create_partitions: u32,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            enabled: true,
            address: "127.0.0.1".into(),
            port: 9092,
            advertised_host: String::new(),
            advertised_port: 0,
            auto_create_topics: true,
            auto_create_partitions: 1,
        }
    }
}

/// Bounds on what clients may make the broker hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request frame, header included (Kafka's `socket.request.max.bytes`).
    pub frame_bytes_max: u32,
    /// Largest count of any array in a request.
    pub array_count_max: u32,
    /// Open client connections per shard; more are refused.
    pub connections_max: u32,
    /// Request bytes one connection may have in flight; past it the shard stops
    /// reading that socket until responses go out.
    pub in_flight_bytes_max: u64,
    /// A connection silent this long is closed.
    pub idle_timeout_ms: u64,
    /// Partitions the broker may hold over all its topics (`__consumer_offsets`
    /// included); CreateTopics and CreatePartitions past it are refused.
    pub partitions_max: u32,
    /// Partitions one topic may have.
    pub topic_partitions_max: u32,
    /// Descriptors kept for the logs: connections are refused once the broker's
    /// descriptors in use come this close to RLIMIT_NOFILE.
    pub descriptors_reserved: u32,
    /// Bytes one shard's connections may hold received and not yet answered, over all
    /// of them: partial frames and in-flight requests.
    pub receive_bytes_max: u64,
    /// A frame must arrive whole within this long of its first byte.
    pub frame_timeout_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            frame_bytes_max: 100 << 20,
            array_count_max: 100_000,
            connections_max: 10_000,
            in_flight_bytes_max: 64 << 20,
            idle_timeout_ms: 600_000,
            partitions_max: 20_000,
            topic_partitions_max: 10_000,
            descriptors_reserved: 1_024,
            receive_bytes_max: 256 << 20,
            frame_timeout_ms: 60_000,
        }
    }
}

/// Storage settings of every shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Bytes of recently appended batches each shard keeps in memory for tail reads;
    /// 0 means a quarter of the host's memory divided among the shards.
    pub batch_cache_bytes: u64,
    /// How often each shard runs retention (Kafka's `log.retention.check.interval.ms`).
    pub retention_check_interval_ms: u64,
    /// Bytes of cold reads each shard may hold or have under way ahead of their
    /// readers, over all its logs (0: no read-ahead).
    pub read_ahead_bytes: u64,
    /// Direct-I/O sizing of every log.
    #[serde(flatten)]
    pub io: IoOptions,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            batch_cache_bytes: 0,
            retention_check_interval_ms: 300_000,
            read_ahead_bytes: crate::storage::READ_AHEAD_BYTES_DEFAULT as u64,
            io: IoOptions::default(),
        }
    }
}

/// The admin HTTP endpoint: `/metrics`, `/healthz`, `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Serve the admin endpoint.
    pub enabled: bool,
    /// Address to bind; the default serves this host only.
    pub address: String,
    /// Port of the admin endpoint (Redpanda's is 9644 too). 0: the kernel chooses
    /// (the ready line names it).
    pub port: u16,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig { enabled: true, address: "127.0.0.1".into(), port: 9644 }
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// The log filter: a level (`error`, `warn`, `info`, `debug`, `trace`) or
    /// directives such as `info,strand::group=debug`. `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: "info".into() }
    }
}

/// Bounds on consumer groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupsConfig {
    /// Members one group may have; more joins are refused.
    pub members_max: u32,
    /// Groups one shard may coordinate; joins that would create more are refused.
    pub groups_max: u32,
    /// Shortest session timeout a member may ask for (Kafka's
    /// `group.min.session.timeout.ms`).
    pub session_timeout_min_ms: u32,
    /// Longest session timeout a member may ask for.
    pub session_timeout_max_ms: u32,
    /// Segment size of `__consumer_offsets`, applied when the broker creates it (its
    /// first start).
    pub offsets_segment_bytes: u64,
    /// When a partition of `__consumer_offsets` stores more than this, its shard
    /// writes the current committed offsets again at its end and deletes the older
    /// segments (compaction), so commits never fill the disk.
    pub offsets_compact_bytes: u64,
    /// How long a new group waits for more members before its first assignment
    /// (Kafka's `group.initial.rebalance.delay.ms`); each join in that time waits
    /// again, at most 3 times this after the first. 0: assign at once.
    pub initial_rebalance_delay_ms: u32,
}

impl Default for GroupsConfig {
    fn default() -> Self {
        GroupsConfig {
            members_max: 1000,
            groups_max: 100_000,
            session_timeout_min_ms: 1000,
            session_timeout_max_ms: 300_000,
            offsets_segment_bytes: 64 << 20,
            offsets_compact_bytes: 128 << 20,
            initial_rebalance_delay_ms: 3_000,
        }
    }
}

/// Every setting of the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Directory of the logs and the metadata.
    pub data_dir: PathBuf,
    /// Cores to run shards on.
    pub cores: Cores,
    pub listen: ListenConfig,
    pub kafka: KafkaConfig,
    pub limits: LimitsConfig,
    pub storage: StorageConfig,
    pub groups: GroupsConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
    /// Policy of topics created without their own.
    pub topic_defaults: TopicConfig,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            data_dir: PathBuf::from("strand-data"),
            cores: Cores::All,
            listen: ListenConfig::default(),
            kafka: KafkaConfig::default(),
            limits: LimitsConfig::default(),
            storage: StorageConfig::default(),
            groups: GroupsConfig::default(),
            admin: AdminConfig::default(),
            log: LogConfig::default(),
            topic_defaults: TopicConfig::default(),
        }
    }
}

/// Settings a running broker applies on SIGHUP; every other key takes effect at the
/// next start.
pub const LIVE_KEYS: [&str; 3] = ["log.", "topic_defaults.", "groups."];

impl BrokerConfig {
    /// Every key whose value differs between `self` and `other`, dotted.
    pub fn changed_keys(&self, other: &BrokerConfig) -> Vec<String> {
        fn flatten(prefix: &str, value: &toml::Value, out: &mut BTreeMap<String, String>) {
            match value {
                toml::Value::Table(table) => {
                    for (key, value) in table {
                        let name = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                        flatten(&name, value, out);
                    }
                }
                other => {
                    out.insert(prefix.to_string(), other.to_string());
                }
            }
        }
        let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
        flatten("", &toml::Value::try_from(self).expect("a config serializes"), &mut a);
        flatten("", &toml::Value::try_from(other).expect("a config serializes"), &mut b);
        let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        keys.into_iter().filter(|k| a.get(*k) != b.get(*k)).cloned().collect()
    }

    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<BrokerConfig, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        BrokerConfig::parse(&text, path)
    }

    /// Parses and checks `text`, naming `path` in errors.
    pub fn parse(text: &str, path: &Path) -> Result<BrokerConfig, ConfigError> {
        let config: BrokerConfig = toml::from_str(text)
            .map_err(|error| ConfigError::Parse { path: path.to_path_buf(), message: toml_error_line(text, &error) })?;
        config.validate().map_err(|message| ConfigError::Invalid { path: path.to_path_buf(), message })?;
        Ok(config)
    }

    /// Checks every value against its range; the message names the key in full.
    pub fn validate(&self) -> Result<(), String> {
        if let Cores::List(cores) = &self.cores {
            if cores.is_empty() {
                return Err("cores = []: list at least one core, or use \"all\"".into());
            }
            let mut sorted = cores.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if sorted.len() != cores.len() {
                return Err(format!("cores = {cores:?}: a core is listed twice"));
            }
        }
        if u32::from(self.listen.port) + 1 + self.shard_count_hint() > 65_535 {
            return Err(format!(
                "listen.port = {}: must be at most {} so that every shard's port (port + 1 + shard) fits",
                self.listen.port,
                65_534 - self.shard_count_hint()
            ));
        }
        if self.listen.address.parse::<std::net::IpAddr>().is_err() {
            return Err(format!(
                "listen.address = {:?}: must be an IP address such as \"127.0.0.1\"",
                self.listen.address
            ));
        }
        if self.kafka.address.parse::<std::net::IpAddr>().is_err() {
            return Err(format!(
                "kafka.address = {:?}: must be an IP address such as \"127.0.0.1\"",
                self.kafka.address
            ));
        }
        if self.kafka.auto_create_partitions == 0 {
            return Err("kafka.auto_create_partitions = 0: must be at least 1".into());
        }
        if let Err(error) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(format!("log.level = {:?}: {error}", self.log.level));
        }
        if self.admin.address.parse::<std::net::IpAddr>().is_err() {
            return Err(format!(
                "admin.address = {:?}: must be an IP address such as \"127.0.0.1\"",
                self.admin.address
            ));
        }
        let limits = &self.limits;
        for (key, value, min) in [
            ("limits.frame_bytes_max", u64::from(limits.frame_bytes_max), 64 * 1024),
            ("limits.array_count_max", u64::from(limits.array_count_max), 1),
            ("limits.connections_max", u64::from(limits.connections_max), 1),
            ("limits.in_flight_bytes_max", limits.in_flight_bytes_max, 64 * 1024),
            ("limits.idle_timeout_ms", limits.idle_timeout_ms, 1_000),
            ("limits.partitions_max", u64::from(limits.partitions_max), 1),
            ("limits.frame_timeout_ms", limits.frame_timeout_ms, 100),
            ("limits.topic_partitions_max", u64::from(limits.topic_partitions_max), 1),
            ("storage.retention_check_interval_ms", self.storage.retention_check_interval_ms, 10),
            ("groups.members_max", u64::from(self.groups.members_max), 1),
            ("groups.groups_max", u64::from(self.groups.groups_max), 1),
            ("groups.session_timeout_min_ms", u64::from(self.groups.session_timeout_min_ms), 100),
            ("groups.offsets_segment_bytes", self.groups.offsets_segment_bytes, 64 * 1024),
            ("groups.offsets_compact_bytes", self.groups.offsets_compact_bytes, 128 * 1024),
        ] {
            if value < min {
                return Err(format!("{key} = {value}: must be at least {min}"));
            }
        }
        if self.limits.receive_bytes_max < u64::from(self.limits.frame_bytes_max) {
            return Err(format!(
                "limits.receive_bytes_max = {}: must be at least limits.frame_bytes_max ({}), or a frame that large could never be received",
                self.limits.receive_bytes_max, self.limits.frame_bytes_max
            ));
        }
        if self.groups.initial_rebalance_delay_ms > 300_000 {
            return Err(format!(
                "groups.initial_rebalance_delay_ms = {}: must be at most 300000 (5 minutes)",
                self.groups.initial_rebalance_delay_ms
            ));
        }
        if self.groups.session_timeout_max_ms < self.groups.session_timeout_min_ms {
            return Err(format!(
                "groups.session_timeout_max_ms = {}: must be at least groups.session_timeout_min_ms ({})",
                self.groups.session_timeout_max_ms, self.groups.session_timeout_min_ms
            ));
        }
        self.storage.io.validate().map_err(|message| format!("storage.{message}"))?;
        self.topic_defaults.validate().map_err(|message| format!("topic_defaults.{message}"))?;
        Ok(())
    }

    /// Shards a listed-cores setting asks for (1 for "all" until the host is known).
    fn shard_count_hint(&self) -> u32 {
        match &self.cores {
            Cores::All => 1,
            Cores::List(cores) => cores.len() as u32,
        }
    }
}

/// The full name (`table.key`) of the `key = value` line holding byte `offset`.
/// A TOML error as one line, `line:column: key: message`, rather than toml's
/// multi-line snippet.
pub fn toml_error_line(text: &str, error: &toml::de::Error) -> String {
    let at = error.span().map_or(String::new(), |span| {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |newline| newline + 1) + 1;
        let key = key_at(text, span.start).map(|key| format!("{key}: ")).unwrap_or_default();
        format!("{line}:{column}: {key}")
    });
    format!("{at}{}", error.message().replace('\n', " "))
}

fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |newline| newline + 1);
    let line = text[line_start..].lines().next()?;
    let key = line.split_once('=')?.0.trim();
    let table = text[..line_start]
        .lines()
        .rev()
        .find_map(|line| line.trim().strip_prefix('[').and_then(|rest| rest.strip_suffix(']')))
        .map(str::trim);
    Some(match table {
        Some(table) => format!("{table}.{key}"),
        None => key.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<BrokerConfig, String> {
        BrokerConfig::parse(text, Path::new("strand.toml")).map_err(|error| error.to_string())
    }

    #[test]
    fn the_reference_documents_every_key() {
        fn keys(prefix: &str, value: &toml::Value, out: &mut Vec<String>) {
            if let toml::Value::Table(table) = value {
                for (key, value) in table {
                    let name = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                    if value.is_table() {
                        keys(&name, value, out);
                    } else {
                        out.push(name);
                    }
                }
            }
        }
        let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/CONFIGURATION.md")).unwrap();
        let mut all = Vec::new();
        keys("", &toml::Value::try_from(BrokerConfig::default()).unwrap(), &mut all);
        // Keys whose default is unset do not serialize; they are listed here.
        all.push("topic_defaults.retention_bytes".into());
        assert!(all.len() > 30, "{all:?}");
        for key in all {
            assert!(docs.contains(&format!("| `{key}` |")), "docs/CONFIGURATION.md does not document {key}");
        }
    }

    #[test]
    fn the_reference_file_is_exactly_the_defaults() {
        let reference = include_str!("../config/strand.toml");
        assert_eq!(parse(reference).unwrap(), BrokerConfig::default());
        assert_eq!(parse("").unwrap(), BrokerConfig::default());
    }

    #[test]
    fn a_file_names_only_what_it_changes() {
        let config = parse("data_dir = \"/var/lib/strand\"\ncores = [2, 3]\n[listen]\nport = 19400\n[topic_defaults]\nfsync = \"never\"\n").unwrap();
        assert_eq!(config.data_dir, Path::new("/var/lib/strand"));
        assert_eq!(config.cores, Cores::List(vec![2, 3]));
        assert_eq!(config.listen.port, 19400);
        assert_eq!(config.listen.address, "127.0.0.1");
        assert_eq!(config.topic_defaults.fsync, crate::storage::FsyncPolicy::Never);
        assert_eq!(config.storage, StorageConfig::default());
    }

    #[test]
    fn bad_files_are_refused_with_the_key_named() {
        let cases = [
            ("data_dri = \"x\"", "data_dri"),
            ("[listen]\nprot = 1", "prot"),
            ("[storage]\nwrite_buffer_bytes = 1000", "storage.write_buffer_bytes"),
            ("[topic_defaults]\nfsync = \"sometimes\"", "sometimes"),
            ("[topic_defaults]\nsegment_bytes = 10", "topic_defaults.segment_bytes"),
            ("cores = \"some\"", "cores"),
            ("cores = []", "cores"),
            ("cores = [1, 1]", "cores"),
            ("[listen]\naddress = \"localhost\"", "listen.address"),
            ("[listen]\nport = 65535", "listen.port"),
            ("[limits]\nframe_bytes_max = 10", "limits.frame_bytes_max"),
            ("[limits]\nframe_bytes_max = -1", "frame_bytes_max"),
        ];
        for (text, key) in cases {
            let error = parse(text).expect_err(text);
            assert!(error.contains(key), "{text:?} gave {error:?}, which does not name {key}");
            assert!(error.starts_with("strand.toml"), "{error}");
            assert_eq!(error.lines().count(), 1, "one line: {error}");
        }
    }

    #[test]
    fn a_missing_file_says_which() {
        let error = BrokerConfig::load(Path::new("/nonexistent/strand.toml")).unwrap_err().to_string();
        assert!(error.contains("/nonexistent/strand.toml"), "{error}");
    }
}
