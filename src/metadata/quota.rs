//! Client quotas as Kafka keeps them: a value per key (`producer_byte_rate`,
//! `consumer_byte_rate`, `request_percentage`) on an entity, a user, a client id, or
//! both, each named or the default. Stored in the metadata command log.

use serde::{Deserialize, Serialize};

/// One component of an entity: a name, or the default for every name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EntityName {
    Default,
    Named(String),
}

/// Who a quota is for: a user, a client id, or a user's client id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuotaEntity {
    pub user: Option<EntityName>,
    pub client_id: Option<EntityName>,
}

/// What a quota bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum QuotaKey {
    /// Produced record bytes per second.
    ProducerByteRate,
    /// Fetched record bytes per second.
    ConsumerByteRate,
    /// Percent of one shard's time spent on the client's requests.
    RequestPercentage,
}

impl QuotaKey {
    pub const EVERY: [QuotaKey; 3] =
        [QuotaKey::ProducerByteRate, QuotaKey::ConsumerByteRate, QuotaKey::RequestPercentage];

    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            QuotaKey::ProducerByteRate => "producer_byte_rate",
            QuotaKey::ConsumerByteRate => "consumer_byte_rate",
            QuotaKey::RequestPercentage => "request_percentage",
        }
    }

    pub fn parse(name: &str) -> Option<QuotaKey> {
        QuotaKey::EVERY.into_iter().find(|key| key.name() == name)
    }
}

/// A quota's value: a finite, positive number (Kafka's are doubles).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
pub struct QuotaValue(pub f64);

// Values are checked finite when set (`QuotaValue::checked`), so equality is total.
impl Eq for QuotaValue {}

impl QuotaValue {
    /// The value of `key`, if it is one a quota may have.
    pub fn checked(key: QuotaKey, value: f64) -> Result<QuotaValue, String> {
        if !value.is_finite() || value <= 0.0 {
            return Err(format!("{} = {value}: must be a positive number", key.name()));
        }
        if key != QuotaKey::RequestPercentage && value < 1.0 {
            return Err(format!("{} = {value}: at least 1 byte per second", key.name()));
        }
        Ok(QuotaValue(value))
    }
}

/// Longest name of a quota entity's component.
pub const ENTITY_NAME_BYTES_MAX: usize = 1024;

impl QuotaEntity {
    pub fn validate(&self) -> Result<(), String> {
        if self.user.is_none() && self.client_id.is_none() {
            return Err("a quota entity names a user, a client id, or both".into());
        }
        for name in [&self.user, &self.client_id].into_iter().flatten() {
            if let EntityName::Named(name) = name {
                if name.len() > ENTITY_NAME_BYTES_MAX {
                    return Err(format!("an entity name is at most {ENTITY_NAME_BYTES_MAX} bytes"));
                }
            }
        }
        Ok(())
    }

    /// The entities that could set a quota for `user` and `client_id`, most specific
    /// first (Kafka's order of precedence).
    pub fn precedence(user: &str, client_id: &str) -> [QuotaEntity; 8] {
        use EntityName::{Default, Named};
        let (u, c) = (|| Some(Named(user.to_string())), || Some(Named(client_id.to_string())));
        [
            QuotaEntity { user: u(), client_id: c() },
            QuotaEntity { user: u(), client_id: Some(Default) },
            QuotaEntity { user: u(), client_id: None },
            QuotaEntity { user: Some(Default), client_id: c() },
            QuotaEntity { user: Some(Default), client_id: Some(Default) },
            QuotaEntity { user: Some(Default), client_id: None },
            QuotaEntity { user: None, client_id: c() },
            QuotaEntity { user: None, client_id: Some(Default) },
        ]
    }
}
