//! `BrokerConfig`: the broker's settings, from one TOML file or the embedded defaults.
//!
//! Every key has a default; a file names only what it changes. Unknown keys and values
//! out of range are refused when the file is read, with the key's full name, the bad
//! value and what is allowed. `config/strand.toml` lists every key with its default
//! and is tested to parse to exactly `BrokerConfig::default()`.

mod cluster;
mod listeners;

pub use cluster::ClusterConfig;

pub use listeners::{
    default_listeners, security_name, AuthorizationConfig, ClientAuth, ListenerConfig, ListenerProtocol, SaslConfig,
    Security, TlsConfig, SASL_MECHANISMS,
};

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

/// How the Kafka listeners behave (where they listen is `[[listeners]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Create a topic when a Kafka client asks for it by name in Metadata or
    /// produces to it (Kafka's `auto.create.topics.enable`, on by default there too).
    pub auto_create_topics: bool,
    /// Partitions of an automatically created topic (Kafka's `num.partitions`).
    pub auto_create_partitions: u32,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig { auto_create_topics: true, auto_create_partitions: 1 }
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
    /// HTTPS with the `[tls]` certificate.
    pub tls: bool,
    /// A file whose first line is the bearer token `/metrics` needs; empty: none.
    pub token_file: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig { enabled: true, address: "127.0.0.1".into(), port: 9644, tls: false, token_file: String::new() }
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
    /// Every socket clients connect to; the default is the native protocol on
    /// 127.0.0.1:9400 and Kafka on 127.0.0.1:9092, both plaintext.
    pub listeners: Vec<ListenerConfig>,
    pub kafka: KafkaConfig,
    pub tls: TlsConfig,
    pub sasl: SaslConfig,
    pub authorization: AuthorizationConfig,
    pub limits: LimitsConfig,
    pub storage: StorageConfig,
    pub groups: GroupsConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
    /// Policy of topics created without their own.
    pub topic_defaults: TopicConfig,
    /// This broker as one of a cluster; absent: a cluster of one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterConfig>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            data_dir: PathBuf::from("strand-data"),
            cores: Cores::All,
            listeners: default_listeners(),
            kafka: KafkaConfig::default(),
            tls: TlsConfig::default(),
            sasl: SaslConfig::default(),
            authorization: AuthorizationConfig::default(),
            limits: LimitsConfig::default(),
            storage: StorageConfig::default(),
            groups: GroupsConfig::default(),
            admin: AdminConfig::default(),
            log: LogConfig::default(),
            topic_defaults: TopicConfig::default(),
            cluster: None,
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
        if let Some(message) = moved_keys(text) {
            return Err(ConfigError::Invalid { path: path.to_path_buf(), message });
        }
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
        listeners::validate(&self.listeners, &self.tls, &self.sasl, &self.authorization, self.shard_count_hint())?;
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
        if self.admin.tls && (self.tls.cert_file.is_empty() || self.tls.key_file.is_empty()) {
            return Err("admin.tls = true: needs tls.cert_file and tls.key_file".into());
        }
        self.storage.io.validate().map_err(|message| format!("storage.{message}"))?;
        self.topic_defaults.validate().map_err(|message| format!("topic_defaults.{message}"))?;
        if let Some(cluster) = &self.cluster {
            cluster.validate()?;
        }
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

/// Keys of earlier versions that `[[listeners]]` replaced: what to write instead.
fn moved_keys(text: &str) -> Option<String> {
    let table: toml::Table = toml::from_str(text).ok()?;
    if table.contains_key("listen") {
        return Some("[listen]: replaced by [[listeners]] (name, protocol, address, port, security); the default is [[listeners]] name = \"native\", protocol = \"native\", address = \"127.0.0.1\", port = 9400 (docs/CONFIGURATION.md)".into());
    }
    let kafka = table.get("kafka").and_then(toml::Value::as_table)?;
    let moved = ["enabled", "address", "port", "advertised_host", "advertised_port"];
    let key = moved.iter().find(|key| kafka.contains_key(**key))?;
    Some(format!("kafka.{key}: moved to [[listeners]] (a listener with protocol = \"kafka\" has address, port, advertised_host and advertised_port; leaving it out turns the Kafka protocol off) (docs/CONFIGURATION.md)"))
}

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

/// The full name (`table.key`) of the `key = value` line holding byte `offset`.
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
                    match value {
                        toml::Value::Table(_) => keys(&name, value, out),
                        // An array of tables ([[listeners]]): the keys of its entries.
                        toml::Value::Array(entries)
                            if entries.iter().all(toml::Value::is_table) && !entries.is_empty() =>
                        {
                            entries.iter().for_each(|entry| keys(&name, entry, out))
                        }
                        _ => out.push(name),
                    }
                }
            }
        }
        let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/CONFIGURATION.md")).unwrap();
        let mut all = Vec::new();
        keys("", &toml::Value::try_from(BrokerConfig::default()).unwrap(), &mut all);
        // Keys whose default is unset do not serialize; they are listed here.
        all.push("topic_defaults.retention_bytes".into());
        all.push("listeners.advertised_host".into());
        all.push("listeners.advertised_port".into());
        let cluster = toml::Value::try_from(ClusterConfig::default()).unwrap();
        keys("cluster", &cluster, &mut all);
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
        let config = parse("data_dir = \"/var/lib/strand\"\ncores = [2, 3]\n[[listeners]]\nname = \"local\"\nprotocol = \"native\"\nport = 19400\n[topic_defaults]\nfsync = \"never\"\n").unwrap();
        assert_eq!(config.data_dir, Path::new("/var/lib/strand"));
        assert_eq!(config.cores, Cores::List(vec![2, 3]));
        assert_eq!(config.listeners, vec![ListenerConfig::loopback("local", ListenerProtocol::Native, 19400)]);
        assert_eq!(config.topic_defaults.fsync, crate::storage::FsyncPolicy::Never);
        assert_eq!(config.storage, StorageConfig::default());
    }

    /// One listener: name "a", protocol "native", port 1, with `line` in place of the
    /// field it sets (or added).
    fn listener(line: &str) -> String {
        let key = line.split(" = ").next().unwrap_or_default();
        let mut fields: Vec<&str> = ["name = \"a\"", "protocol = \"native\"", "port = 1"]
            .into_iter()
            .filter(|field| key.is_empty() || !field.starts_with(&format!("{key} =")))
            .collect();
        if !line.is_empty() {
            fields.push(line);
        }
        format!("[[listeners]]\n{}\n", fields.join("\n"))
    }

    #[test]
    fn bad_files_are_refused_with_the_key_named() {
        let cases: Vec<(String, &str)> = vec![
            ("data_dri = \"x\"".into(), "data_dri"),
            (listener("prot = 1"), "prot"),
            ("[listen]\nport = 1".into(), "[[listeners]]"),
            ("[kafka]\nport = 1".into(), "kafka.port"),
            (listener("protocol = \"nats\""), "nats"),
            (listener("address = \"localhost\""), "listeners[0].address"),
            (listener("port = 65535"), "listeners[0].port"),
            (listener("security = \"tls\""), "tls.cert_file"),
            (listener("security = \"sasl_tls\""), "listeners[0].security"),
            (listener("name = \"a b\""), "listeners[0].name"),
            (format!("{}{}", listener(""), listener("")), "listeners[1].name"),
            (listener("protocol = \"kafka\""), "protocol = \"native\""),
            ("[tls]\nclient_auth = \"required\"".into(), "tls.client_ca_file"),
            (listener("client_auth = \"required\""), "listeners[0].client_auth"),
            (
                format!(
                    "{}[tls]\ncert_file = \"c\"\nkey_file = \"k\"",
                    listener("security = \"tls\"\nclient_auth = \"required\"")
                ),
                "tls.client_ca_file",
            ),
            ("[tls]\nprincipal_mapping_rules = [\"RULE:x\"]".into(), "tls.principal_mapping_rules"),
            ("[sasl]\nmechanisms = [\"GSSAPI\"]".into(), "GSSAPI"),
            ("[storage]\nwrite_buffer_bytes = 1000".into(), "storage.write_buffer_bytes"),
            ("[topic_defaults]\nfsync = \"sometimes\"".into(), "sometimes"),
            ("[topic_defaults]\nsegment_bytes = 10".into(), "topic_defaults.segment_bytes"),
            ("cores = \"some\"".into(), "cores"),
            ("cores = []".into(), "cores"),
            ("cores = [1, 1]".into(), "cores"),
            ("[limits]\nframe_bytes_max = 10".into(), "limits.frame_bytes_max"),
            ("[limits]\nframe_bytes_max = -1".into(), "frame_bytes_max"),
        ];
        for (text, key) in cases {
            let error = parse(&text).expect_err(&text);
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
