//! Topic ids as Kafka has them (KIP-516): a random UUID per topic, fixed when the
//! topic is created and never reused, so that a client holding a topic's id never
//! reads a topic deleted and created again under the same name. Fetch 13 and later
//! and Metadata 10 and later name topics by it.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A topic's UUID. Never all zeros (Kafka's "no id").
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicUuid(pub [u8; 16]);

impl TopicUuid {
    /// A new random (version 4) UUID, from the kernel's random source.
    pub fn random() -> TopicUuid {
        let mut bytes = [0u8; 16];
        let mut filled = 0;
        while filled < bytes.len() {
            // SAFETY: getrandom writes at most the given length into our buffer.
            let got = unsafe { libc::getrandom(bytes[filled..].as_mut_ptr().cast(), bytes.len() - filled, 0) };
            if got > 0 {
                filled += got as usize;
            } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                panic!("getrandom failed: {}", std::io::Error::last_os_error());
            }
        }
        TopicUuid::versioned(bytes)
    }

    /// The UUID of a topic recorded before topics had UUIDs: derived from its id and
    /// name, so every replay of the same metadata gives the same one.
    pub fn derived(id: u64, name: &str) -> TopicUuid {
        let mut state = id ^ 0x5354_524e_4455_4944; // "STRNDUID"
        let mut mix = |value: u64| {
            state = splitmix64(state ^ value);
            state
        };
        for chunk in name.as_bytes().chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            mix(u64::from_le_bytes(word));
        }
        let (high, low) = (mix(name.len() as u64), mix(id));
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&high.to_be_bytes());
        bytes[8..].copy_from_slice(&low.to_be_bytes());
        TopicUuid::versioned(bytes)
    }

    /// Sets the version (4) and variant (RFC 4122) bits, which also keeps it non-zero.
    fn versioned(mut bytes: [u8; 16]) -> TopicUuid {
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        TopicUuid(bytes)
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl std::fmt::Display for TopicUuid {
    /// The usual form, `8-4-4-4-12` hex digits.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        uuid::Uuid::from_bytes(self.0).hyphenated().fmt(f)
    }
}

impl std::fmt::Debug for TopicUuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TopicUuid({self})")
    }
}

impl std::str::FromStr for TopicUuid {
    type Err = String;

    fn from_str(text: &str) -> Result<TopicUuid, String> {
        let parsed = uuid::Uuid::parse_str(text).map_err(|error| format!("{text:?} is not a UUID: {error}"))?;
        if parsed.is_nil() {
            return Err("the all-zero UUID is not a topic id".into());
        }
        Ok(TopicUuid(parsed.into_bytes()))
    }
}

impl Serialize for TopicUuid {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TopicUuid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TopicUuid, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4_distinct_and_read_back() {
        let (a, b) = (TopicUuid::random(), TopicUuid::random());
        assert_ne!(a, b);
        for uuid in [a, b, TopicUuid::derived(3, "orders")] {
            assert_eq!(uuid.0[6] >> 4, 4, "version 4");
            assert_eq!(uuid.0[8] >> 6, 0b10, "RFC 4122 variant");
            assert_eq!(uuid.to_string().parse::<TopicUuid>(), Ok(uuid));
            assert_eq!(uuid.to_string().len(), 36);
        }
        assert!("00000000-0000-0000-0000-000000000000".parse::<TopicUuid>().is_err());
        assert!("not-a-uuid".parse::<TopicUuid>().is_err());
    }

    #[test]
    fn derived_uuids_are_stable_and_differ_by_id_and_name() {
        assert_eq!(TopicUuid::derived(7, "orders"), TopicUuid::derived(7, "orders"));
        assert_ne!(TopicUuid::derived(7, "orders"), TopicUuid::derived(8, "orders"));
        assert_ne!(TopicUuid::derived(7, "orders"), TopicUuid::derived(7, "orderz"));
        assert_ne!(TopicUuid::derived(7, "a"), TopicUuid::derived(7, "a\0"));
    }
}
