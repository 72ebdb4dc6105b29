//! The version firewall: the APIs and versions this listener serves, exactly what
//! ApiVersions advertises. A request outside them is not served: it is answered
//! UNSUPPORTED_VERSION (`super::unsupported`) or its connection closed.
//!
//! An ApiVersions request of a version this broker does not know is answered in v0
//! with the supported ranges and UNSUPPORTED_VERSION (KIP-511), so a newer client
//! learns what to speak; its response header is v0 whatever the request's version.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use kafka_protocol::ResponseError;

/// Every API served, with its versions (inclusive).
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 16),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    // v0 carries the tokens as raw frames; Kafka 4 keeps it (KIP-896: kafka-python
    // uses it, and librdkafka looks for it before it will use SASL at all).
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    // v0 has no pattern type (literal only); Kafka 4 serves v1 and later (KIP-896).
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
];

/// The versions of `api` served, if it is.
pub fn supported(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED.iter().find(|(key, _, _)| *key == api).map(|&(_, min, max)| (min, max))
}

/// Whether `version` of `api` is served.
pub fn is_supported(api: ApiKey, version: i16) -> bool {
    supported(api).is_some_and(|(min, max)| (min..=max).contains(&version))
}

/// The ApiVersions answer: every supported range, and `error` (0, or
/// UNSUPPORTED_VERSION for a version this broker does not know).
pub fn api_versions(error: Option<ResponseError>) -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.error_code = error.map_or(0, |error| error.code());
    response.api_keys = SUPPORTED
        .iter()
        .map(|&(key, min, max)| {
            let mut api = ApiVersion::default();
            api.api_key = key as i16;
            api.min_version = min;
            api.max_version = max;
            api
        })
        .collect();
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nothing is advertised that the codec cannot decode.
    #[test]
    fn every_advertised_version_is_within_the_codecs_range() {
        for &(api, min, max) in SUPPORTED {
            let range = api.valid_versions();
            assert!(range.min <= min && max <= range.max, "{api:?} {min}..={max} outside {range:?}");
            assert!(min <= max);
        }
        assert!(is_supported(ApiKey::Produce, 9));
        assert!(!is_supported(ApiKey::Produce, 13), "Produce 13 names topics by id");
        assert!(!is_supported(ApiKey::SaslHandshake, 2));
    }

    #[test]
    fn the_answer_encodes_at_every_version() {
        use kafka_protocol::protocol::Encodable;
        for version in 0..=4 {
            let mut out = Vec::new();
            api_versions(Some(ResponseError::UnsupportedVersion)).encode(&mut out, version).unwrap();
        }
    }
}
