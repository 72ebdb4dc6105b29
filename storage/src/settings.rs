//! A topic's settings as text: what CreateTopics and AlterTopicConfigs carry and
//! DescribeTopicConfigs returns, on either protocol. Keys are those of
//! `[topic_defaults]` in the broker configuration; retention keys take `-1` or `none`
//! for "keep forever", as Kafka's `retention.ms = -1`.

use crate::config::TopicConfig;

/// One setting: its key and its value as text.
pub type Setting = (String, String);

/// A topic's configuration: the broker's `topic_defaults` with `entries` applied.
/// Keys are those of `[topic_defaults]` in the broker configuration; retention keys
/// take `-1` or `none` for "keep forever", as Kafka's `retention.ms = -1`.
pub fn topic_config(defaults: &TopicConfig, entries: &[Setting]) -> Result<TopicConfig, String> {
    let serde_json::Value::Object(mut map) = serde_json::to_value(defaults).expect("topic config serializes") else {
        unreachable!("a struct serializes to an object")
    };
    for (key, value) in entries {
        let key = key.as_str();
        if !map.contains_key(key) {
            let known: Vec<&str> = map.keys().map(String::as_str).collect();
            return Err(format!("unknown topic setting {key:?}; known settings: {}", known.join(", ")));
        }
        let value = value.trim();
        let optional = key.starts_with("retention_");
        let numeric = optional || map[key].is_number();
        let parsed = if optional && (value == "-1" || value.eq_ignore_ascii_case("none")) {
            serde_json::Value::Null
        } else if let Ok(number) = value.parse::<u64>() {
            serde_json::Value::from(number)
        } else if numeric {
            let range = if optional { "-1 (no limit) or a whole number from 0" } else { "a whole number from 0" };
            return Err(format!("{key} = {value:?}: must be {range}"));
        } else {
            serde_json::Value::from(value)
        };
        map.insert(key.to_string(), parsed);
        // Each entry on its own, so that an error names its key.
        serde_json::from_value::<TopicConfig>(serde_json::Value::Object(map.clone()))
            .map_err(|error| format!("{key} = {value:?}: {error}"))?;
    }
    let config: TopicConfig = serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|error| format!("bad topic setting: {error}"))?;
    config.validate()?;
    Ok(config)
}

/// Every key of `config` with its value as text, as [`topic_config`] reads it back
/// (retention keys `-1` for "keep forever"), in key order.
pub fn config_entries(config: &TopicConfig) -> Vec<Setting> {
    let serde_json::Value::Object(map) = serde_json::to_value(config).expect("topic config serializes") else {
        unreachable!("a struct serializes to an object")
    };
    let mut entries: Vec<Setting> = map
        .into_iter()
        .map(|(key, value)| {
            let value = match value {
                serde_json::Value::Null => "-1".to_string(),
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            };
            (key, value)
        })
        .collect();
    entries.sort();
    entries
}

/// `current` with `reset` keys back at `defaults` and `set` entries
/// applied; a key named twice is refused, as Kafka's IncrementalAlterConfigs does.
pub fn altered_config(
    current: &TopicConfig,
    defaults: &TopicConfig,
    set: &[Setting],
    reset: &[String],
) -> Result<TopicConfig, String> {
    let mut seen = std::collections::HashSet::new();
    for key in set.iter().map(|(key, _)| key).chain(reset) {
        if !seen.insert(key.as_str()) {
            return Err(format!("topic setting {key:?} is named twice"));
        }
    }
    let default_entries = config_entries(defaults);
    let mut entries = Vec::with_capacity(reset.len() + set.len());
    for key in reset {
        match default_entries.iter().find(|(k, _)| k == key) {
            Some(entry) => entries.push(entry.clone()),
            None => {
                let known: Vec<&str> = default_entries.iter().map(|(k, _)| k.as_str()).collect();
                return Err(format!("unknown topic setting {key:?}; known settings: {}", known.join(", ")));
            }
        }
    }
    entries.extend(set.iter().cloned());
    topic_config(current, &entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FsyncPolicy, TimestampSource};

    fn entry(key: &str, value: &str) -> Setting {
        (key.into(), value.into())
    }

    #[test]
    fn bad_values_name_their_key_and_range() {
        let defaults = TopicConfig::default();
        let error = topic_config(&defaults, &[entry("retention_ms", "-5")]).unwrap_err();
        assert_eq!(error, "retention_ms = \"-5\": must be -1 (no limit) or a whole number from 0");
        let error = topic_config(&defaults, &[entry("segment_bytes", "big")]).unwrap_err();
        assert_eq!(error, "segment_bytes = \"big\": must be a whole number from 0");
        let error = topic_config(&defaults, &[entry("fsync", "sometimes")]).unwrap_err();
        assert!(error.starts_with("fsync = \"sometimes\": unknown variant"), "{error}");
    }

    #[test]
    fn topic_config_applies_entries_over_defaults() {
        let defaults = TopicConfig::default();
        let config = topic_config(
            &defaults,
            &[entry("fsync", "never"), entry("retention_ms", "-1"), entry("retention_bytes", "1048576")],
        )
        .unwrap();
        assert_eq!(config.fsync, FsyncPolicy::Never);
        assert_eq!(config.retention_ms, None);
        assert_eq!(config.retention_bytes, Some(1_048_576));
        assert_eq!(config.segment_bytes, defaults.segment_bytes);
    }

    #[test]
    fn config_entries_read_back_as_the_same_config() {
        let config = TopicConfig {
            fsync: FsyncPolicy::Interval,
            retention_ms: None,
            retention_bytes: Some(1 << 30),
            timestamp_source: TimestampSource::LogAppendTime,
            ..TopicConfig::default()
        };
        let entries = config_entries(&config);
        assert!(entries.windows(2).all(|w| w[0].0 < w[1].0), "in key order");
        assert!(entries.contains(&entry("retention_ms", "-1")));
        assert!(entries.contains(&entry("fsync", "interval")));
        assert_eq!(topic_config(&TopicConfig::default(), &entries).unwrap(), config);
    }

    #[test]
    fn altered_config_sets_resets_and_refuses_whole() {
        let defaults = TopicConfig::default();
        let current = topic_config(&defaults, &[entry("fsync", "never"), entry("retention_bytes", "4096")]).unwrap();
        let alter = |set: Vec<Setting>, reset: Vec<&str>| {
            let reset: Vec<String> = reset.into_iter().map(String::from).collect();
            altered_config(&current, &defaults, &set, &reset)
        };
        let altered = alter(vec![entry("retention_ms", "-1")], vec!["fsync"]).unwrap();
        assert_eq!(altered.fsync, defaults.fsync, "reset to the broker's default");
        assert_eq!(altered.retention_ms, None);
        assert_eq!(altered.retention_bytes, Some(4096), "keys not named keep their value");
        let twice = alter(vec![entry("fsync", "always")], vec!["fsync"]).unwrap_err();
        assert!(twice.contains("named twice"), "{twice}");
        let unknown = alter(vec![], vec!["retention.ms"]).unwrap_err();
        assert!(unknown.contains("unknown topic setting"), "{unknown}");
        let bad = alter(vec![entry("retention_ms", "1"), entry("segment_bytes", "10")], vec![]).unwrap_err();
        assert!(bad.contains("segment_bytes"), "{bad}");
    }

    #[test]
    fn topic_config_refuses_unknown_keys_and_bad_values() {
        let defaults = TopicConfig::default();
        let unknown = topic_config(&defaults, &[entry("retention.ms", "1")]).unwrap_err();
        assert!(unknown.contains("unknown topic setting \"retention.ms\""), "{unknown}");
        let bad = topic_config(&defaults, &[entry("fsync", "sometimes")]).unwrap_err();
        assert!(bad.contains("sometimes"), "{bad}");
        let range = topic_config(&defaults, &[entry("segment_bytes", "10")]).unwrap_err();
        assert!(range.contains("segment_bytes"), "{range}");
    }
}
