//! The Kafka protocol listener: a second `net::Protocol` beside the native one, on the
//! same service layer, so that a record produced by either protocol is the same
//! record on the same log for both.
//!
//! A frame is a 4-byte big-endian size and that many bytes, checked against
//! `limits.frame_bytes_max` before its payload is buffered; the header is read by hand
//! (`codec`), the version checked against what is served (`versions`, the version
//! firewall), and the body decoded with the vendored `kafka-protocol` crate, whose
//! decoders never allocate from a count the frame cannot hold. Produce is the
//! exception on the way in: its layout is read by hand (`produce`) so the record
//! batches stay slices of the receive buffer; Fetch is the exception on the way out:
//! its answer is written by hand around the stored batches (`fetch`). Answers go out
//! in request order on each connection, as Kafka requires.
//!
//! A frame that cannot be read (a size over the limit, a truncated or malformed
//! header or body, an unknown api key, a version not served) closes the connection
//! with the reason logged, as Kafka's broker does; an ApiVersions request of a
//! version not served is answered in v0 (KIP-511).
//!
//! Code map: `codec` (frames and headers), `wire` (primitives by hand), `versions`
//! (what is served; ApiVersions), `errors` (service errors as Kafka codes),
//! `metadata`, `produce`, `fetch`, `offsets`, `groups` (FindCoordinator, the classic
//! group protocol, committed offsets), `admin` (topics and their configs, with
//! `configs`, Kafka's config names mapped to Strand's), `producer_ids`
//! (InitProducerId; the sequence checks are the partition layer's).

mod acls;
mod admin;
mod brokers;
pub mod codec;
pub mod configs;
pub mod errors;
mod fetch;
mod group_admin;
mod groups;
mod metadata;
mod offsets;
pub mod produce;
mod producer_ids;
mod quotas;
mod records;
mod sasl;
pub mod unsupported;
mod users;
pub mod versions;
pub mod wire;

use crate::metadata::{MetadataState, TopicMeta};
use crate::net::{ConnectionState, Outgoing, Piece, Protocol, RequestSlot, ResponseOrder};
use crate::service::{Listener, Operation, RequestContext};
use crate::shard::Shard;
use bytes::{Buf, Bytes, BytesMut};
use codec::{CodecError, Header};
use kafka_protocol::messages::{
    AlterConfigsRequest, ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, CreatePartitionsRequest,
    CreateTopicsRequest, DeleteGroupsRequest, DeleteRecordsRequest, DeleteTopicsRequest, DescribeClusterRequest,
    DescribeConfigsRequest, DescribeGroupsRequest, DescribeProducersRequest, FetchRequest, FindCoordinatorRequest,
    HeartbeatRequest, IncrementalAlterConfigsRequest, InitProducerIdRequest, JoinGroupRequest, LeaveGroupRequest,
    ListGroupsRequest, ListOffsetsRequest, MetadataRequest, OffsetCommitRequest, OffsetDeleteRequest,
    OffsetFetchRequest, OffsetForLeaderEpochRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use kafka_protocol::ResponseError;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

/// The Kafka protocol on one shard (a handle; clones share it).
#[derive(Clone)]
pub struct Kafka {
    shared: Rc<Shared>,
}

/// What every Kafka connection of a shard shares.
pub struct Shared {
    shard: Rc<Shard>,
    frame_bytes_max: u64,
    /// Where clients are told to connect: this listener's advertised host and port.
    advertised: (String, u16),
    /// This listener's name: in a cluster, clients are told of every broker's listener
    /// of the same name.
    listener: String,
    /// Whether clients must authenticate with SASL first.
    security: crate::config::Security,
    /// Topic ids to names, for the metadata state it was built from (rebuilt when
    /// the shard's state changes).
    topic_ids: RefCell<Option<TopicIds>>,
}

/// Topic ids to names, and the metadata state they were read from.
type TopicIds = (Arc<MetadataState>, HashMap<uuid::Uuid, String>);

impl std::ops::Deref for Kafka {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl Kafka {
    /// The Kafka protocol on a listener that tells clients to connect to
    /// `advertised`, with `security`.
    pub fn new(
        shard: Rc<Shard>,
        listener: String,
        advertised: (String, u16),
        security: crate::config::Security,
    ) -> Kafka {
        let frame_bytes_max = u64::from(shard.config.limits.frame_bytes_max);
        let topic_ids = RefCell::new(None);
        let shared = Shared { shard, frame_bytes_max, advertised, listener, security, topic_ids };
        Kafka { shared: Rc::new(shared) }
    }
}

impl Shared {
    /// Where clients are told to connect.
    fn advertised(&self) -> (String, u16) {
        self.advertised.clone()
    }

    /// The topic whose id is `id` in `state`.
    fn topic_by_id<'a>(&self, state: &'a Arc<MetadataState>, id: uuid::Uuid) -> Option<&'a TopicMeta> {
        let mut index = self.topic_ids.borrow_mut();
        if !matches!(&*index, Some((built, _)) if Arc::ptr_eq(built, state)) {
            let ids = state.topics.values().map(|meta| (uuid::Uuid::from_bytes(meta.uuid().0), meta.name.clone()));
            *index = Some((state.clone(), ids.collect()));
        }
        let (_, ids) = index.as_ref().expect("built above");
        ids.get(&id).and_then(|name| state.topics.get(name))
    }
}

/// The operation a Kafka api counts as, where it is served.
fn operation(api: ApiKey) -> Option<Operation> {
    Some(match api {
        ApiKey::Produce => Operation::Produce,
        ApiKey::Fetch => Operation::Fetch,
        ApiKey::ListOffsets => Operation::ListOffsets,
        ApiKey::Metadata => Operation::Metadata,
        ApiKey::ApiVersions => Operation::ApiVersions,
        ApiKey::FindCoordinator => Operation::FindCoordinator,
        ApiKey::JoinGroup => Operation::JoinGroup,
        ApiKey::SyncGroup => Operation::SyncGroup,
        ApiKey::Heartbeat => Operation::Heartbeat,
        ApiKey::LeaveGroup => Operation::LeaveGroup,
        ApiKey::OffsetCommit => Operation::OffsetCommit,
        ApiKey::OffsetFetch => Operation::OffsetFetch,
        ApiKey::CreateTopics => Operation::CreateTopics,
        ApiKey::DeleteTopics => Operation::DeleteTopics,
        ApiKey::CreatePartitions => Operation::CreatePartitions,
        ApiKey::DescribeConfigs => Operation::DescribeTopicConfigs,
        ApiKey::AlterConfigs | ApiKey::IncrementalAlterConfigs => Operation::AlterTopicConfigs,
        ApiKey::DescribeCluster => Operation::Metadata,
        ApiKey::DescribeUserScramCredentials => Operation::DescribeUsers,
        ApiKey::AlterUserScramCredentials => Operation::AlterUsers,
        ApiKey::InitProducerId => Operation::Produce,
        ApiKey::ListGroups => Operation::ListGroups,
        ApiKey::OffsetForLeaderEpoch => Operation::ListOffsets,
        ApiKey::DeleteGroups => Operation::DeleteGroups,
        ApiKey::ConsumerGroupHeartbeat => Operation::Heartbeat,
        ApiKey::DescribeGroups | ApiKey::ConsumerGroupDescribe => Operation::DescribeGroup,
        ApiKey::OffsetDelete => Operation::OffsetDelete,
        ApiKey::DeleteRecords => Operation::DeleteRecords,
        ApiKey::DescribeProducers => Operation::DescribeProducers,
        ApiKey::SaslHandshake | ApiKey::SaslAuthenticate => Operation::Authenticate,
        ApiKey::DescribeAcls => Operation::DescribeAcls,
        ApiKey::CreateAcls | ApiKey::DeleteAcls => Operation::AlterAcls,
        ApiKey::DescribeClientQuotas => Operation::DescribeQuotas,
        ApiKey::AlterClientQuotas => Operation::AlterQuotas,
        _ => return None,
    })
}

impl Protocol for Kafka {
    type Frame = BytesMut;

    fn order(&self) -> ResponseOrder {
        ResponseOrder::RequestOrder
    }

    fn split_frame(&self, buf: &mut BytesMut) -> Result<Option<BytesMut>, String> {
        let Some(size) = codec::split_size(buf, self.frame_bytes_max).map_err(|error| error.to_string())? else {
            return Ok(None);
        };
        if buf.len() < 4 + size {
            return Ok(None);
        }
        let mut frame = buf.split_to(4 + size);
        frame.advance(4);
        Ok(Some(frame))
    }

    fn frame_bytes(&self, buf: &[u8]) -> Option<usize> {
        codec::split_size(buf, self.frame_bytes_max).ok().flatten().map(|size| 4 + size)
    }

    async fn dispatch(&self, connection: &Rc<ConnectionState>, frame: BytesMut) -> Result<(), String> {
        dispatch(self, connection, frame).await
    }
}

/// Reads one request and hands it to its operation. `Err` closes the connection,
/// with the reason.
async fn dispatch(kafka: &Kafka, state: &Rc<ConnectionState>, mut frame: BytesMut) -> Result<(), String> {
    let request_bytes = 4 + frame.len();
    let raw_token = state.session.borrow().raw_tokens;
    if raw_token {
        return sasl::raw_token(kafka, state, frame).await;
    }
    let header = match Header::parse(&frame) {
        Ok(header) => header,
        Err(CodecError::UnsupportedVersion { api: ApiKey::ApiVersions, .. }) => {
            return answer_unsupported_api_versions(kafka, state, &frame, request_bytes).await;
        }
        Err(error) => return Err(refuse(kafka, codec::peek(&frame).map(|(key, _, _)| key), &error.to_string())),
    };
    let (api, version, correlation) = (header.api_key, header.version, header.correlation_id);
    if let Some(operation) = operation(api) {
        kafka.shard.metrics.request(Listener::Kafka, operation);
    }
    if let Err(reason) = sasl::admit(kafka, state, api) {
        return Err(refuse(kafka, Some(api as i16), &reason));
    }
    if !versions::is_supported(api, version) {
        if api == ApiKey::ApiVersions {
            return answer_unsupported_api_versions(kafka, state, &frame, request_bytes).await;
        }
        return answer_unsupported(kafka, state, &header, frame.freeze(), request_bytes).await;
    }
    let ctx = RequestContext {
        listener: Listener::Kafka,
        principal: state.session.borrow().principal.clone(),
        client_id: header.client_id.clone(),
        deadline: None,
        host: state.peer,
    };
    if api == ApiKey::Produce {
        // The batches stay slices of this frame: the layout is read in place.
        let layout = produce::ProduceLayout::decode(&frame[header.bytes..], version)
            .map_err(|error| refuse(kafka, Some(api as i16), &format!("malformed Produce v{version}: {error}")))?;
        frame.advance(header.bytes);
        state.wait_for_request_slot().await;
        let slot = state.start_request(request_bytes);
        produce::handle(kafka, ctx, state, (correlation, version), slot, layout, frame).await;
        return Ok(());
    }
    let mut body = frame.freeze().slice(header.bytes..);
    let malformed =
        |error: anyhow::Error| refuse(kafka, Some(api as i16), &format!("malformed {api:?} v{version}: {error}"));
    let (kafka, state) = (kafka.clone(), state.clone());
    // Decodes the body as `$request`, takes the request's slot, and answers with
    // what `$answer` makes of it, in a task of its own. The shard's time on it counts
    // against the client's request_percentage: a throttle is told in the answer and
    // rests the connection (KIP-219).
    macro_rules! serve {
        ($request:ty, |$kafka:ident, $ctx:ident, $decoded:ident| $answer:expr) => {{
            let $decoded = <$request>::decode(&mut body, version).map_err(malformed)?;
            state.wait_for_request_slot().await;
            let slot = state.start_request(request_bytes);
            spawn(async move {
                let ($kafka, $ctx) = (&kafka, &ctx);
                let (mut answer, spent) = crate::service::quotas::timed(async {
                    let answer = $answer;
                    answer
                })
                .await;
                let throttle = crate::service::quotas::record_time(&$kafka.shard, $ctx, spent);
                if !throttle.is_zero() {
                    state.mute_for(throttle);
                    answer.throttle_time_ms = answer.throttle_time_ms.max(throttle_ms(throttle));
                }
                respond(&state, slot, api, version, correlation, &answer);
            });
        }};
    }
    match api {
        ApiKey::SaslHandshake => {
            let request =
                kafka_protocol::messages::SaslHandshakeRequest::decode(&mut body, version).map_err(malformed)?;
            state.wait_for_request_slot().await;
            let slot = state.start_request(request_bytes);
            let (answer, close) = sasl::handshake(&kafka, &state, version, request);
            respond(&state, slot, api, version, correlation, &answer);
            if let Some(reason) = close {
                return Err(refuse(&kafka, Some(api as i16), &reason));
            }
        }
        ApiKey::SaslAuthenticate => {
            // Answered before the next request is read: an exchange is one message at
            // a time, and a failure's delay holds this connection only.
            let request =
                kafka_protocol::messages::SaslAuthenticateRequest::decode(&mut body, version).map_err(malformed)?;
            state.wait_for_request_slot().await;
            let slot = state.start_request(request_bytes);
            let (answer, close) = sasl::authenticate(&kafka, &state, version, request).await;
            respond(&state, slot, api, version, correlation, &answer);
            if let Some(reason) = close {
                return Err(reason);
            }
        }
        ApiKey::ApiVersions => {
            // Its fields (the client's software name and version) are checked, not used.
            kafka_protocol::messages::ApiVersionsRequest::decode(&mut body, version).map_err(malformed)?;
            state.wait_for_request_slot().await;
            let slot = state.start_request(request_bytes);
            respond(&state, slot, api, version, correlation, &versions::api_versions(None));
        }
        ApiKey::Metadata => {
            serve!(MetadataRequest, |kafka, ctx, request| { metadata::handle(kafka, ctx, version, request).await })
        }
        ApiKey::ListOffsets => serve!(ListOffsetsRequest, |kafka, ctx, request| {
            offsets::handle(&kafka.shard, ctx, version, request).await
        }),
        ApiKey::FindCoordinator => {
            serve!(FindCoordinatorRequest, |kafka, ctx, request| {
                groups::find_coordinator(kafka, ctx, version, request).await
            })
        }
        ApiKey::JoinGroup => {
            serve!(JoinGroupRequest, |kafka, ctx, request| { groups::join(kafka, ctx, version, request).await })
        }
        ApiKey::SyncGroup => {
            serve!(SyncGroupRequest, |kafka, ctx, request| { groups::sync(kafka, ctx, version, request).await })
        }
        ApiKey::Heartbeat => {
            serve!(HeartbeatRequest, |kafka, ctx, request| { groups::heartbeat(kafka, ctx, request).await })
        }
        ApiKey::LeaveGroup => {
            serve!(LeaveGroupRequest, |kafka, ctx, request| { groups::leave(kafka, ctx, version, request).await })
        }
        ApiKey::OffsetCommit => {
            serve!(OffsetCommitRequest, |kafka, ctx, request| { groups::commit(kafka, ctx, request).await })
        }
        ApiKey::OffsetFetch => serve!(OffsetFetchRequest, |kafka, ctx, request| {
            groups::fetch_offsets(kafka, ctx, version, request).await
        }),
        ApiKey::ListGroups => {
            serve!(ListGroupsRequest, |kafka, ctx, request| { group_admin::list(kafka, ctx, request).await })
        }
        ApiKey::DescribeGroups => serve!(DescribeGroupsRequest, |kafka, ctx, request| {
            group_admin::describe(kafka, ctx, version, request).await
        }),
        ApiKey::ConsumerGroupDescribe => serve!(ConsumerGroupDescribeRequest, |kafka, ctx, request| {
            group_admin::consumer_group_describe(kafka, ctx, request).await
        }),
        ApiKey::OffsetDelete => serve!(OffsetDeleteRequest, |kafka, ctx, request| {
            group_admin::delete_offsets(kafka, ctx, request).await
        }),
        ApiKey::DeleteRecords => {
            serve!(DeleteRecordsRequest, |kafka, ctx, request| { records::delete_records(kafka, ctx, request).await })
        }
        ApiKey::DescribeProducers => serve!(DescribeProducersRequest, |kafka, ctx, request| {
            records::describe_producers(kafka, ctx, request).await
        }),
        ApiKey::ConsumerGroupHeartbeat => serve!(ConsumerGroupHeartbeatRequest, |kafka, ctx, request| {
            groups::consumer_heartbeat(kafka, ctx, version, request).await
        }),
        ApiKey::DeleteGroups => {
            serve!(DeleteGroupsRequest, |kafka, ctx, request| { group_admin::delete(kafka, ctx, request).await })
        }
        ApiKey::OffsetForLeaderEpoch => serve!(OffsetForLeaderEpochRequest, |kafka, ctx, request| {
            offsets::leader_epochs(kafka, ctx, request).await
        }),
        ApiKey::InitProducerId => serve!(InitProducerIdRequest, |kafka, ctx, request| {
            producer_ids::init_producer_id(&kafka.shard, ctx, &request).await
        }),
        ApiKey::CreateTopics => serve!(CreateTopicsRequest, |kafka, ctx, request| {
            admin::create_topics(kafka, ctx, version, request).await
        }),
        ApiKey::DeleteTopics => serve!(DeleteTopicsRequest, |kafka, ctx, request| {
            admin::delete_topics(kafka, ctx, version, request).await
        }),
        ApiKey::CreatePartitions => serve!(CreatePartitionsRequest, |kafka, ctx, request| {
            admin::create_partitions(kafka, ctx, request).await
        }),
        ApiKey::DescribeConfigs => serve!(DescribeConfigsRequest, |kafka, ctx, request| {
            admin::describe_configs(kafka, ctx, version, request)
        }),
        ApiKey::AlterConfigs => {
            serve!(AlterConfigsRequest, |kafka, ctx, request| { admin::alter_configs(kafka, ctx, request).await })
        }
        ApiKey::IncrementalAlterConfigs => serve!(IncrementalAlterConfigsRequest, |kafka, ctx, request| {
            admin::incremental_alter_configs(kafka, ctx, request).await
        }),
        ApiKey::DescribeCluster => {
            serve!(DescribeClusterRequest, |kafka, ctx, _request| { admin::describe_cluster(kafka, ctx) })
        }
        ApiKey::DescribeUserScramCredentials => {
            serve!(kafka_protocol::messages::DescribeUserScramCredentialsRequest, |kafka, ctx, request| {
                users::describe(kafka, ctx, request)
            })
        }
        ApiKey::AlterUserScramCredentials => {
            serve!(kafka_protocol::messages::AlterUserScramCredentialsRequest, |kafka, ctx, request| {
                users::alter(kafka, ctx, request).await
            })
        }
        ApiKey::CreateAcls => serve!(kafka_protocol::messages::CreateAclsRequest, |kafka, ctx, request| {
            acls::create(kafka, ctx, request).await
        }),
        ApiKey::DescribeAcls => {
            serve!(kafka_protocol::messages::DescribeAclsRequest, |kafka, ctx, request| {
                acls::describe(kafka, ctx, request)
            })
        }
        ApiKey::DeleteAcls => serve!(kafka_protocol::messages::DeleteAclsRequest, |kafka, ctx, request| {
            acls::delete(kafka, ctx, request).await
        }),
        ApiKey::DescribeClientQuotas => {
            serve!(kafka_protocol::messages::DescribeClientQuotasRequest, |kafka, ctx, request| {
                quotas::describe(kafka, ctx, request)
            })
        }
        ApiKey::AlterClientQuotas => {
            serve!(kafka_protocol::messages::AlterClientQuotasRequest, |kafka, ctx, request| {
                quotas::alter(kafka, ctx, request).await
            })
        }
        ApiKey::Fetch => {
            let request = FetchRequest::decode(&mut body, version).map_err(malformed)?;
            state.wait_for_request_slot().await;
            let slot = state.start_request(request_bytes);
            let units = fetch::response_reservation(&request).min(state.response_budget_bytes);
            spawn(async move {
                let Ok(budget) = state.response_budget.acquire_static_permit(units as u64).await else {
                    state.finish_request(slot); // the connection closed
                    return;
                };
                let started = std::time::Instant::now();
                let (pieces, throttle) = fetch::handle(&kafka, &ctx, version, correlation, request).await;
                state.mute_for(throttle);
                kafka.shard.metrics.fetch_latency.observe(started.elapsed());
                state.send(Outgoing { pieces, slot, budget: Some(budget) });
            });
        }
        other => {
            // `versions::SUPPORTED` lists only the APIs routed above.
            tracing::error!(api = ?other, "an api is advertised but not routed");
            return Err(format!("internal error: {other:?} is advertised but not routed"));
        }
    }
    Ok(())
}

/// A throttle as Kafka's `throttle_time_ms`.
pub(super) fn throttle_ms(throttle: std::time::Duration) -> i32 {
    throttle.as_millis().min(i32::MAX as u128) as i32
}

fn spawn(work: impl std::future::Future<Output = ()> + 'static) {
    glommio::spawn_local(work).detach();
}

/// KIP-511: an ApiVersions request of a version not served gets the v0 answer, with
/// UNSUPPORTED_VERSION and every supported range, so the client can pick one.
async fn answer_unsupported_api_versions(
    kafka: &Kafka,
    state: &Rc<ConnectionState>,
    frame: &[u8],
    request_bytes: usize,
) -> Result<(), String> {
    let Some((_, version, correlation)) = codec::peek(frame) else {
        return Err(refuse(kafka, Some(ApiKey::ApiVersions as i16), "truncated header"));
    };
    kafka.shard.metrics.request(Listener::Kafka, Operation::ApiVersions);
    kafka.shard.metrics.error(Listener::Kafka, Operation::ApiVersions);
    tracing::debug!(version, "answering an ApiVersions request of a version not served in v0");
    state.wait_for_request_slot().await;
    let slot = state.start_request(request_bytes);
    let answer = versions::api_versions(Some(ResponseError::UnsupportedVersion));
    respond(state, slot, ApiKey::ApiVersions, 0, correlation, &answer);
    Ok(())
}

/// A request the codec can read, of an API or version outside the firewall: answered
/// with UNSUPPORTED_VERSION in its response's error fields (`unsupported`), or, where
/// no response can carry it, its connection closed with the reason.
async fn answer_unsupported(
    kafka: &Kafka,
    state: &Rc<ConnectionState>,
    header: &Header,
    frame: Bytes,
    request_bytes: usize,
) -> Result<(), String> {
    let (api, version) = (header.api_key, header.version);
    let served = match versions::supported(api) {
        Some((min, max)) => format!("versions {min} to {max} are served"),
        None => "the api is not served".to_owned(),
    };
    let body = match unsupported::answer(api, version, frame.slice(header.bytes..)) {
        Ok(body) => body,
        Err(reason) => return Err(refuse(kafka, Some(api as i16), &format!("{reason} ({served})"))),
    };
    if let Some(operation) = operation(api) {
        kafka.shard.metrics.error(Listener::Kafka, operation);
    }
    tracing::debug!(?api, version, served, "answering a request outside the version firewall with UNSUPPORTED_VERSION");
    state.wait_for_request_slot().await;
    let slot = state.start_request(request_bytes);
    let mut out = response_header(api, version, header.correlation_id);
    out.extend_from_slice(&body);
    send_framed(state, slot, out);
    Ok(())
}

/// Logs and counts a request that closes its connection; returns the reason.
fn refuse(kafka: &Kafka, api: Option<i16>, reason: &str) -> String {
    let shard = &kafka.shard;
    if let Some(operation) = api.and_then(|key| ApiKey::try_from(key).ok()).and_then(operation) {
        shard.metrics.error(Listener::Kafka, operation);
    }
    if shard.warnings.bad_clients.allow() {
        tracing::warn!(
            shard = shard.id,
            reason,
            "closing a Kafka connection that sent a request it cannot be answered"
        );
    }
    format!("unanswerable Kafka request: {reason}")
}

/// Queues `message` as the answer to the request in `slot`: size, response header
/// (v0, or v1 with tagged fields for flexible versions; always v0 for ApiVersions),
/// body.
pub(crate) fn respond<M: Encodable>(
    state: &ConnectionState,
    slot: RequestSlot,
    api: ApiKey,
    version: i16,
    correlation: i32,
    message: &M,
) {
    let mut out = response_header(api, version, correlation);
    if let Err(error) = message.encode(&mut out, version) {
        // A response the crate cannot encode at the version asked for is a bug here.
        tracing::error!(?api, version, %error, "cannot encode a Kafka response");
        state.finish_request(slot);
        return;
    }
    send_framed(state, slot, out);
}

/// The start of an answer: room for its size, then the response header (v0, or v1
/// with tagged fields for flexible versions; always v0 for ApiVersions).
fn response_header(api: ApiKey, version: i16, correlation: i32) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(128);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&correlation.to_be_bytes());
    if api.response_header_version(version) >= 1 {
        out.push(0); // no tagged fields
    }
    out
}

/// Writes the size of `out` (a `response_header` and a body) at its front and queues it.
fn send_framed(state: &ConnectionState, slot: RequestSlot, mut out: Vec<u8>) {
    let size = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&size.to_be_bytes());
    state.send(Outgoing { pieces: vec![Piece::Owned(out)], slot, budget: None });
}
