//! Topic names, by Kafka's rule: `[a-zA-Z0-9._-]`, 1 to 249 characters, not `.` or `..`.

use super::error::MetadataError;

/// Longest topic name Kafka allows (so that `name-partition` fits a file name).
pub const TOPIC_NAME_BYTES_MAX: usize = 249;

/// Checks a topic name, naming what is wrong with it.
pub fn validate_topic_name(name: &str) -> Result<(), MetadataError> {
    let invalid = |reason: String| MetadataError::InvalidName { name: name.to_string(), reason };
    if name.is_empty() {
        return Err(invalid("a topic name cannot be empty".into()));
    }
    if name == "." || name == ".." {
        return Err(invalid("a topic name cannot be \".\" or \"..\"".into()));
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return Err(invalid(format!("{} characters, at most {TOPIC_NAME_BYTES_MAX} are allowed", name.len())));
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(invalid(format!("character {bad:?} is not allowed; use ASCII letters, digits, '.', '_' and '-'")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_rule() {
        for good in ["a", "orders", "orders.v2", "a_b-c", &"x".repeat(249)] {
            assert!(validate_topic_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a b", "a/b", "ü", &"x".repeat(250), "a\0"] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?}");
        }
    }
}
