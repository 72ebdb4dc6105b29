//! The answer to a request outside the version firewall: an API this listener does not
//! serve, or a version of a served API that it does not advertise, whose request the
//! codec can still read. It is answered, on its connection, with UNSUPPORTED_VERSION
//! (35) in the error fields of that API's response at the version asked for: the
//! top-level error code where the response has one, else each entry's (every topic
//! and partition of a Produce, every group of a DescribeGroups, …), mirrored from the
//! request. The connection stays open, so a client that probed can go on at a version
//! it was told of.
//!
//! A request whose body does not decode, or whose response at that version has no
//! field to carry the error, cannot be answered: its connection is closed with the
//! reason, as an unknown api key or a version the codec does not know is.

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Request};
use kafka_protocol::ResponseError;

const UNSUPPORTED: i16 = 35;

/// The encoded body of the UNSUPPORTED_VERSION answer to `body`, a request of `api` at
/// `version` (a version the codec knows), or why there is none.
pub fn answer(api: ApiKey, version: i16, mut body: Bytes) -> Result<Vec<u8>, String> {
    debug_assert_eq!(ResponseError::UnsupportedVersion.code(), UNSUPPORTED);
    let mut out = Vec::with_capacity(64);
    // `$request` decoded from the body; `$response` made from it by `$make`, encoded.
    macro_rules! mirror {
        ($request:ty, $response:ty, |$decoded:ident| $make:expr) => {{
            let $decoded = <$request>::decode(&mut body, version)
                .map_err(|error| format!("malformed {api:?} v{version}: {error}"))?;
            let response: $response = $make;
            response.encode(&mut out, version).map_err(|error| {
                format!("{api:?} v{version} is not served and its response cannot carry the error: {error}")
            })?;
        }};
    }
    // The response's own top-level error code.
    macro_rules! top_level {
        ($($request:ty),* $(,)?) => {
            match api as i16 {
                $(<$request as Request>::KEY => {
                    mirror!($request, <$request as Request>::Response, |_request| {
                        let mut response = <<$request as Request>::Response>::default();
                        response.error_code = UNSUPPORTED;
                        response
                    });
                    // A field Kafka's schema calls ignorable is dropped, not refused, at
                    // a version without it: read the answer back to be sure it says so.
                    let echo = <<$request as Request>::Response>::decode(&mut Bytes::from(out.clone()), version);
                    if echo.map_or(true, |echo| echo.error_code != UNSUPPORTED) {
                        return Err(format!("{api:?} v{version} is not served and its response has no error code"));
                    }
                })*
                _ => return Err(format!("{api:?} v{version} is not served")),
            }
        };
    }
    // Each topic of `$topics` answered as a `$topic` carrying the fields named, its
    // partitions (`$from`) as `$partition`s in `$to`, each with its index and error 35.
    macro_rules! per_partition {
        ($topics:expr => $topic:ty { $($copied:ident),* }, $from:ident => $to:ident,
         |$p:ident| $partition:ty { $index:ident: $index_of:expr, $error:ident }) => {
            $topics
                .into_iter()
                .map(|topic| {
                    let mut answer = <$topic>::default();
                    $(answer.$copied = topic.$copied;)*
                    answer.$to = topic
                        .$from
                        .into_iter()
                        .map(|$p| {
                            let mut answer = <$partition>::default();
                            answer.$index = $index_of;
                            answer.$error = UNSUPPORTED;
                            answer
                        })
                        .collect();
                    answer
                })
                .collect()
        };
    }
    match api {
        ApiKey::Produce => mirror!(ProduceRequest, ProduceResponse, |request| {
            if request.acks == 0 {
                // A client expects no answer to acks=0: closing is how it learns.
                return Err(format!("Produce v{version} is not served (acks=0: no answer is expected)"));
            }
            let mut response = ProduceResponse::default();
            response.responses = per_partition!(
                request.topic_data => produce_response::TopicProduceResponse { name, topic_id },
                partition_data => partition_responses,
                |p| produce_response::PartitionProduceResponse { index: p.index, error_code }
            );
            response
        }),
        ApiKey::OffsetCommit => mirror!(OffsetCommitRequest, OffsetCommitResponse, |request| {
            let mut response = OffsetCommitResponse::default();
            response.topics = per_partition!(
                request.topics => offset_commit_response::OffsetCommitResponseTopic { name, topic_id },
                partitions => partitions,
                |p| offset_commit_response::OffsetCommitResponsePartition {
                    partition_index: p.partition_index,
                    error_code
                }
            );
            response
        }),
        ApiKey::OffsetFetch => mirror!(OffsetFetchRequest, OffsetFetchResponse, |request| {
            let mut response = OffsetFetchResponse::default();
            if version >= 8 {
                response.groups = request
                    .groups
                    .into_iter()
                    .map(|group| {
                        let mut answer = offset_fetch_response::OffsetFetchResponseGroup::default();
                        answer.group_id = group.group_id;
                        answer.error_code = UNSUPPORTED;
                        answer
                    })
                    .collect();
            } else {
                response.error_code = UNSUPPORTED;
            }
            response
        }),
        ApiKey::FindCoordinator => mirror!(FindCoordinatorRequest, FindCoordinatorResponse, |request| {
            let mut response = FindCoordinatorResponse::default();
            if version >= 4 {
                response.coordinators = request
                    .coordinator_keys
                    .into_iter()
                    .map(|key| {
                        let mut answer = find_coordinator_response::Coordinator::default();
                        answer.key = key;
                        answer.node_id = BrokerId(-1);
                        answer.port = -1;
                        answer.error_code = UNSUPPORTED;
                        answer
                    })
                    .collect();
            } else {
                response.error_code = UNSUPPORTED;
                response.node_id = BrokerId(-1);
                response.port = -1;
            }
            response
        }),
        ApiKey::DescribeGroups => mirror!(DescribeGroupsRequest, DescribeGroupsResponse, |request| {
            let mut response = DescribeGroupsResponse::default();
            response.groups = request
                .groups
                .into_iter()
                .map(|group_id| {
                    let mut answer = describe_groups_response::DescribedGroup::default();
                    answer.group_id = group_id;
                    answer.error_code = UNSUPPORTED;
                    answer.authorized_operations = i32::MIN;
                    answer
                })
                .collect();
            response
        }),
        ApiKey::AddPartitionsToTxn => mirror!(AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, |request| {
            let mut response = AddPartitionsToTxnResponse::default();
            if version >= 4 {
                response.error_code = UNSUPPORTED;
            } else {
                response.results_by_topic_v3_and_below = per_partition!(
                    request.v3_and_below_topics => add_partitions_to_txn_response::AddPartitionsToTxnTopicResult { name },
                    partitions => results_by_partition,
                    |p| add_partitions_to_txn_response::AddPartitionsToTxnPartitionResult {
                        partition_index: p,
                        partition_error_code
                    }
                );
            }
            response
        }),
        ApiKey::TxnOffsetCommit => mirror!(TxnOffsetCommitRequest, TxnOffsetCommitResponse, |request| {
            let mut response = TxnOffsetCommitResponse::default();
            response.topics = per_partition!(
                request.topics => txn_offset_commit_response::TxnOffsetCommitResponseTopic { name },
                partitions => partitions,
                |p| txn_offset_commit_response::TxnOffsetCommitResponsePartition {
                    partition_index: p.partition_index,
                    error_code
                }
            );
            response
        }),
        ApiKey::CreateAcls => mirror!(CreateAclsRequest, CreateAclsResponse, |request| {
            let mut response = CreateAclsResponse::default();
            response.results = (0..request.creations.len())
                .map(|_| {
                    let mut answer = create_acls_response::AclCreationResult::default();
                    answer.error_code = UNSUPPORTED;
                    answer
                })
                .collect();
            response
        }),
        ApiKey::DeleteAcls => mirror!(DeleteAclsRequest, DeleteAclsResponse, |request| {
            let mut response = DeleteAclsResponse::default();
            response.filter_results = (0..request.filters.len())
                .map(|_| {
                    let mut answer = delete_acls_response::DeleteAclsFilterResult::default();
                    answer.error_code = UNSUPPORTED;
                    answer
                })
                .collect();
            response
        }),
        _ => top_level!(
            MetadataRequest,
            FetchRequest,
            InitProducerIdRequest,
            DescribeClusterRequest,
            SaslHandshakeRequest,
            SaslAuthenticateRequest,
            AddOffsetsToTxnRequest,
            EndTxnRequest,
            DescribeAclsRequest,
            DescribeLogDirsRequest,
            ElectLeadersRequest,
            AlterPartitionReassignmentsRequest,
            ListPartitionReassignmentsRequest,
            DescribeClientQuotasRequest,
            DescribeUserScramCredentialsRequest,
            ListTransactionsRequest,
            CreateDelegationTokenRequest,
            RenewDelegationTokenRequest,
            ExpireDelegationTokenRequest,
            DescribeDelegationTokenRequest,
            UpdateFeaturesRequest,
            GetTelemetrySubscriptionsRequest,
            PushTelemetryRequest,
            ShareGroupHeartbeatRequest,
            ListConfigResourcesRequest,
            DescribeQuorumRequest,
            VoteRequest,
            BeginQuorumEpochRequest,
            EndQuorumEpochRequest,
            AlterPartitionRequest,
            EnvelopeRequest,
            FetchSnapshotRequest,
            BrokerRegistrationRequest,
            BrokerHeartbeatRequest,
            UnregisterBrokerRequest,
            AllocateProducerIdsRequest,
            ControllerRegistrationRequest,
            AssignReplicasToDirsRequest,
            AddRaftVoterRequest,
            RemoveRaftVoterRequest,
            UpdateRaftVoterRequest,
            AlterShareGroupOffsetsRequest,
            DeleteShareGroupOffsetsRequest,
        ),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::StrBytes;

    fn encoded<R: Encodable>(request: &R, version: i16) -> Bytes {
        let mut out = Vec::new();
        request.encode(&mut out, version).unwrap();
        Bytes::from(out)
    }

    #[test]
    fn a_produce_at_a_version_not_served_is_refused_partition_by_partition() {
        let mut partition = produce_request::PartitionProduceData::default();
        partition.index = 4;
        let mut topic = produce_request::TopicProduceData::default();
        topic.topic_id = uuid::Uuid::from_u128(7);
        topic.partition_data = vec![partition];
        let mut request = ProduceRequest::default();
        request.acks = -1;
        request.topic_data = vec![topic];
        let body = answer(ApiKey::Produce, 13, encoded(&request, 13)).unwrap();
        let response = ProduceResponse::decode(&mut Bytes::from(body), 13).unwrap();
        let topic = &response.responses[0];
        assert_eq!(topic.topic_id, uuid::Uuid::from_u128(7));
        assert_eq!((topic.partition_responses[0].index, topic.partition_responses[0].error_code), (4, 35));
    }

    #[test]
    fn find_coordinator_answers_each_key_from_v4_and_the_top_level_below() {
        let mut request = FindCoordinatorRequest::default();
        request.coordinator_keys = vec![StrBytes::from_static_str("g1"), StrBytes::from_static_str("g2")];
        let body = answer(ApiKey::FindCoordinator, 6, encoded(&request, 6)).unwrap();
        let response = FindCoordinatorResponse::decode(&mut Bytes::from(body), 6).unwrap();
        let keys: Vec<(&str, i16)> = response.coordinators.iter().map(|c| (&*c.key, c.error_code)).collect();
        assert_eq!(keys, vec![("g1", 35), ("g2", 35)]);
    }

    #[test]
    fn an_api_with_a_top_level_error_code_is_answered_there() {
        for (api, version, body) in [
            (ApiKey::Metadata, 13, encoded(&MetadataRequest::default(), 13)),
            (ApiKey::SaslHandshake, 1, encoded(&SaslHandshakeRequest::default(), 1)),
            (ApiKey::EndTxn, 5, encoded(&EndTxnRequest::default(), 5)),
        ] {
            let out = Bytes::from(answer(api, version, body).unwrap());
            let code = match api {
                ApiKey::Metadata => MetadataResponse::decode(&mut out.clone(), version).unwrap().error_code,
                ApiKey::SaslHandshake => SaslHandshakeResponse::decode(&mut out.clone(), version).unwrap().error_code,
                _ => EndTxnResponse::decode(&mut out.clone(), version).unwrap().error_code,
            };
            assert_eq!(code, 35, "{api:?} v{version}");
        }
    }

    #[test]
    fn no_answer_where_the_response_cannot_carry_the_error_or_the_body_does_not_decode() {
        // Metadata below v13 has no top-level error code.
        let error = answer(ApiKey::Metadata, 12, encoded(&MetadataRequest::default(), 12)).unwrap_err();
        assert!(error.contains("has no error code"), "{error}");
        // DescribeLogDirs gained its top-level error code in v3.
        let error = answer(ApiKey::DescribeLogDirs, 2, encoded(&DescribeLogDirsRequest::default(), 2)).unwrap_err();
        assert!(error.contains("has no error code"), "{error}");
        assert!(answer(ApiKey::DescribeLogDirs, 3, encoded(&DescribeLogDirsRequest::default(), 3)).is_ok());
        let mut request = ProduceRequest::default();
        request.acks = 0;
        let error = answer(ApiKey::Produce, 13, encoded(&request, 13)).unwrap_err();
        assert!(error.contains("acks=0"), "{error}");
        let error = answer(ApiKey::Produce, 13, Bytes::from_static(&[0, 0])).unwrap_err();
        assert!(error.starts_with("malformed Produce v13"), "{error}");
        let error = answer(ApiKey::DescribeTransactions, 0, Bytes::from_static(&[0])).unwrap_err();
        assert!(error.contains("not served"), "{error}");
    }
}
