//! Kafka's topic config names mapped to Strand's topic settings, both ways, so that
//! `retention.ms` set through a Kafka admin client is `retention_ms` in
//! `strand topic describe`, and back.
//!
//! Mapped: `retention.ms`, `retention.bytes` (-1: keep forever), `segment.bytes`,
//! `segment.ms`, `index.interval.bytes`, `max.message.bytes` (the largest batch),
//! `message.timestamp.type` (`CreateTime`, `LogAppendTime`), `min.insync.replicas`
//! (what acks=all needs in sync in a cluster). Strand's own settings
//! with no Kafka name (`fsync`, `fsync_interval_ms`) are accepted and described under
//! their own names. Read-only, described for clients that look: `cleanup.policy`
//! (`delete`; compaction is not served yet).
//! Any other name is refused with INVALID_CONFIG naming it.

use crate::storage::Setting;

/// Kafka's name, and Strand's setting it is.
const MAPPED: &[(&str, &str)] = &[
    ("retention.ms", "retention_ms"),
    ("retention.bytes", "retention_bytes"),
    ("segment.bytes", "segment_bytes"),
    ("segment.ms", "segment_ms"),
    ("index.interval.bytes", "index_interval_bytes"),
    ("max.message.bytes", "batch_bytes_max"),
    ("message.timestamp.type", "timestamp_source"),
    ("min.insync.replicas", "min_insync_replicas"),
];

/// Strand's settings described and set under their own names.
const OWN: &[&str] = &["fsync", "fsync_interval_ms"];

/// Described, never set (a value other than the one described is refused).
const FIXED: &[(&str, &str)] = &[("cleanup.policy", "delete")];

/// Strand's setting for a Kafka config entry (the value translated too).
pub fn to_strand(name: &str, value: &str) -> Result<Option<Setting>, String> {
    if let Some((_, strand)) = MAPPED.iter().find(|(kafka, _)| *kafka == name) {
        let value = match *strand {
            "timestamp_source" => match value {
                "CreateTime" => "create_time",
                "LogAppendTime" => "log_append_time",
                other => {
                    return Err(format!("message.timestamp.type = {other:?}: must be CreateTime or LogAppendTime"))
                }
            },
            _ => value,
        };
        return Ok(Some((strand.to_string(), value.to_string())));
    }
    if OWN.contains(&name) {
        return Ok(Some((name.to_string(), value.to_string())));
    }
    if let Some((_, fixed)) = FIXED.iter().find(|(kafka, _)| *kafka == name) {
        if value == *fixed {
            return Ok(None);
        }
        return Err(format!(
            "{name} = {value:?}: only {fixed:?} is served (log compaction and replication are not yet)"
        ));
    }
    Err(format!("unknown topic config {name:?}; served: {}", served_names().join(", ")))
}

/// The Strand setting a Kafka config name resets, if it names one.
pub fn strand_key(name: &str) -> Result<Option<String>, String> {
    to_strand(name, probe_value(name)).map(|setting| setting.map(|(key, _)| key))
}

/// A value `to_strand` accepts for `name`, to learn its key.
fn probe_value(name: &str) -> &'static str {
    match name {
        "message.timestamp.type" => "CreateTime",
        _ => FIXED.iter().find(|(kafka, _)| *kafka == name).map_or("0", |(_, value)| value),
    }
}

/// Every config name served.
fn served_names() -> Vec<&'static str> {
    MAPPED.iter().map(|(kafka, _)| *kafka).chain(OWN.iter().copied()).chain(FIXED.iter().map(|(k, _)| *k)).collect()
}

/// Kafka config entries for Strand settings: (name, value, read-only), in name order.
pub fn to_kafka(settings: &[Setting]) -> Vec<(String, String, bool)> {
    let mut out: Vec<(String, String, bool)> = settings
        .iter()
        .filter_map(|(key, value)| {
            if let Some((kafka, _)) = MAPPED.iter().find(|(_, strand)| strand == key) {
                let value = match value.as_str() {
                    "create_time" => "CreateTime",
                    "log_append_time" => "LogAppendTime",
                    other => other,
                };
                return Some((kafka.to_string(), value.to_string(), false));
            }
            OWN.contains(&key.as_str()).then(|| (key.clone(), value.clone(), false))
        })
        .chain(FIXED.iter().map(|(name, value)| (name.to_string(), value.to_string(), true)))
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{config_entries, topic_config, TopicConfig};

    /// Every setting Strand has is described under some name, and what is described
    /// can be set back to the same configuration.
    #[test]
    fn every_setting_round_trips_through_its_kafka_name() {
        let defaults = TopicConfig::default();
        let described = to_kafka(&config_entries(&defaults));
        let strand_keys = config_entries(&defaults).len();
        assert_eq!(described.iter().filter(|(_, _, read_only)| !read_only).count(), strand_keys);
        let settings: Vec<Setting> =
            described.iter().filter_map(|(name, value, _)| to_strand(name, value).unwrap()).collect();
        assert_eq!(topic_config(&defaults, &settings).unwrap(), defaults);
        assert_eq!(to_strand("retention.ms", "-1").unwrap(), Some(("retention_ms".into(), "-1".into())));
        assert_eq!(to_strand("message.timestamp.type", "LogAppendTime").unwrap().unwrap().1, "log_append_time");
        assert!(to_strand("cleanup.policy", "compact").unwrap_err().contains("compaction"));
        assert!(to_strand("compression.type", "zstd").unwrap_err().contains("unknown topic config"));
        assert_eq!(strand_key("max.message.bytes").unwrap().as_deref(), Some("batch_bytes_max"));
    }
}
