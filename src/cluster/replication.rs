//! Partition data replicated as Kafka replicates it: a follower fetches from its
//! partition's leader (ReplicaFetch, native api 20, on the shard port of the leader's
//! replica), stores the batches as they are (`Log::append_replica`), meets its own
//! fsync policy, and fetches again saying how far it holds them; the leader counts
//! each in-sync follower's acknowledged offset into the high watermark
//! (`partition::replica`), which consumers read below and `acks = all` waits for. A
//! follower whose log diverged from the leader's (it led, or followed a leader, at an
//! epoch whose tail the new leader never had) is told where the leader's epoch ends
//! and truncates there (KIP-101, KIP-279, KIP-595's diverging epoch in the fetch
//! answer), never at the high watermark.
//!
//! Each shard runs `tick` every `TICK`: it starts a fetcher for each partition it
//! follows (one task and one connection each), moves its led partitions' high
//! watermarks with their own durability, and proposes in-sync set changes
//! (`Command::AlterIsr`, Kafka's AlterPartition, at the epochs it leads at) through
//! shard 0: a follower not caught up to the leader's end within
//! `cluster.replica_lag_ms` leaves the set, one caught up to the high watermark joins.

use crate::metadata::cluster::BrokerId;
use crate::metadata::Command;
use crate::partition::replica::{Placement, Role};
use crate::partition::Partition;
use crate::service::RequestContext;
use crate::shard::{Shard, ShardMessage};
use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use std::rc::Rc;
use std::time::Duration;
use strand_protocol::native::messages::*;
use strand_protocol::native::{split_frame, ErrorCode, Limits, Request, Response};

/// How often each shard starts fetchers and checks its led partitions.
pub const TICK: Duration = Duration::from_millis(100);

/// How long a follower's fetch waits at the leader for data.
const FETCH_WAIT_MS: u32 = 500;

/// Bytes a follower asks for per fetch.
const FETCH_BYTES: u32 = 8 << 20;

/// A follower's pause after a failed fetch (the leader moving, a broken connection).
const RETRY: Duration = Duration::from_millis(100);

/// The leader's side of a follower's fetch.
pub async fn replica_fetch(
    shard: &Rc<Shard>,
    ctx: &RequestContext,
    request: ReplicaFetchRequest,
) -> ReplicaFetchResponse {
    use crate::metadata::acl::AclOperation;
    let refused = |request: &ReplicaFetchRequest, error: ErrorCode| ReplicaFetchResponse {
        partitions: request.partitions.iter().map(|p| answer(p, error)).collect(),
    };
    if crate::service::authorize::check_cluster(shard, ctx, AclOperation::ClusterAction).is_err() {
        return refused(&request, ErrorCode::ClusterAuthorizationFailed);
    }
    // Only a broker at its registered incarnation: a stale one is fenced.
    let registered = shard.metadata().brokers.get(&request.broker).map(|b| b.epoch);
    if registered != Some(request.broker_epoch) {
        return refused(&request, ErrorCode::StaleEpoch);
    }
    let wait = Duration::from_millis(u64::from(request.max_wait_ms.min(10_000)));
    // A follower's ask is bounded by what the broker would take in one frame.
    let max_bytes = (request.max_bytes as usize).min(shard.config.limits.frame_bytes_max as usize);
    let mut partitions = Vec::with_capacity(request.partitions.len());
    for asked in &request.partitions {
        partitions.push(fetch_one(shard, request.broker, asked, wait, max_bytes).await);
    }
    ReplicaFetchResponse { partitions }
}

fn answer(asked: &ReplicaFetchPartition, error: ErrorCode) -> ReplicaFetchPartitionResponse {
    ReplicaFetchPartitionResponse {
        topic: asked.topic.clone(),
        partition: asked.partition,
        error,
        high_watermark: 0,
        log_start: 0,
        diverging_epoch: -1,
        diverging_end: 0,
        records: Bytes::new(),
    }
}

async fn fetch_one(
    shard: &Rc<Shard>,
    broker: BrokerId,
    asked: &ReplicaFetchPartition,
    wait: Duration,
    max_bytes: usize,
) -> ReplicaFetchPartitionResponse {
    let Some(partition) = shard.logs.partition(&asked.topic, asked.partition) else {
        return answer(asked, ErrorCode::NotLeader);
    };
    let Some(replication) = partition.replication() else { return answer(asked, ErrorCode::NotLeader) };
    let placement = replication.placement();
    if placement.role != Role::Leader || !placement.replicas.contains(&broker) {
        return answer(asked, ErrorCode::NotLeader);
    }
    if asked.leader_epoch < placement.leader_epoch {
        return answer(asked, ErrorCode::StaleEpoch);
    }
    if asked.leader_epoch > placement.leader_epoch {
        // The follower knows of a later leader: this one is deposed.
        return answer(asked, ErrorCode::NotLeader);
    }
    let log = partition.log();
    let offsets = log.offsets();
    let mut response = answer(asked, ErrorCode::None);
    response.log_start = offsets.start;
    // Has the follower's log diverged? The leader's end of the follower's last epoch.
    if asked.last_fetched_epoch >= 0 {
        let epochs = log.leader_epochs();
        let end_of = if epochs.latest().is_none() {
            Some((crate::storage::LEADER_EPOCH, offsets.end))
        } else {
            epochs.end_offset_for(asked.last_fetched_epoch, offsets.end)
        };
        let (epoch, end) = end_of.unwrap_or((crate::storage::LEADER_EPOCH, offsets.start));
        if epoch != asked.last_fetched_epoch || end < asked.fetch_offset {
            response.diverging_epoch = epoch;
            response.diverging_end = end;
            response.high_watermark = replication.high_watermark();
            return response;
        }
    }
    if asked.fetch_offset > offsets.end || asked.fetch_offset < offsets.start {
        response.error = ErrorCode::OffsetOutOfRange;
        return response;
    }
    replication.follower_fetched(broker, asked.fetch_offset, asked.acked_offset, offsets.end, offsets.high_watermark);
    if asked.fetch_offset >= log.offsets().high_watermark {
        // Nothing new yet: wait for an append (or the wait to run out).
        let appended = log.wait_visible(asked.fetch_offset);
        futures_lite::future::or(appended, glommio::timer::sleep(wait)).await;
    }
    match partition.read_for_follower(asked.fetch_offset, max_bytes.max(1)).await {
        Ok(batches) => {
            let mut records = BytesMut::with_capacity(batches.bytes);
            for chunk in &batches.chunks {
                records.extend_from_slice(chunk);
            }
            response.records = records.freeze();
        }
        Err(crate::storage::StorageError::OffsetOutOfRange { .. }) => response.error = ErrorCode::OffsetOutOfRange,
        Err(error) => response.error = crate::native::errors::code(&crate::service::Error::from(error)),
    }
    response.high_watermark = replication.high_watermark();
    response
}

/// One shard's replication duties, every `TICK`: fetchers started for what it follows,
/// led partitions' high watermarks moved and their in-sync sets kept.
pub async fn tick(shard: &Rc<Shard>) {
    let Some(me) = shard.broker else { return };
    let lag = Duration::from_millis(shard.config.cluster.as_ref().map_or(10_000, |c| c.replica_lag_ms));
    for partition in shard.logs.all() {
        let Some(replication) = partition.replication() else { continue };
        let placement = replication.placement();
        match placement.role {
            Role::Leader => {
                replication.update_high_watermark(partition.log().offsets().high_watermark);
                if let Some(isr) = replication.wanted_isr(lag) {
                    replication.isr_pending.set(true);
                    propose_isr(shard, &partition, &placement, me, isr);
                }
            }
            Role::Follower(Some(_)) if partition.fetching.get() != Some(placement.leader_epoch) => {
                partition.fetching.set(Some(placement.leader_epoch));
                glommio::spawn_local(follow(shard.clone(), partition.clone(), placement)).detach();
            }
            Role::Follower(_) => {}
        }
    }
}

/// Proposes `isr` for the partition, at the epochs this broker leads it at, through
/// shard 0; the metadata it commits reaches every shard as any other.
fn propose_isr(shard: &Rc<Shard>, partition: &Rc<Partition>, placement: &Placement, me: BrokerId, isr: Vec<BrokerId>) {
    let command = Command::AlterIsr {
        name: partition.tp().topic.clone(),
        partition: partition.tp().partition,
        leader: me,
        leader_epoch: placement.leader_epoch as u32,
        partition_epoch: placement.partition_epoch,
        isr: isr.clone(),
    };
    tracing::info!(partition = %partition.tp(), from = ?placement.isr, to = ?isr, "proposing a new in-sync replica set");
    let (shard, partition) = (shard.clone(), partition.clone());
    glommio::spawn_local(async move {
        let outcome = if shard.id == 0 {
            crate::service::admin::propose(&shard, command).await
        } else {
            let (reply, answered) = futures_channel::oneshot::channel();
            shard.forward(0, ShardMessage::Propose { command, reply }).await;
            answered.await.unwrap_or_else(|_| Err("shard 0 stopped".into()))
        };
        if let Err(error) = outcome {
            tracing::warn!(partition = %partition.tp(), %error, "the in-sync replica change was not taken");
            glommio::timer::sleep(Duration::from_secs(1)).await;
            if let Some(replication) = partition.replication() {
                replication.isr_pending.set(false);
            }
        }
    })
    .detach();
}

/// A follower's fetcher: fetches from the leader the metadata names until the
/// placement changes (another leader, another epoch, this broker leading).
async fn follow(shard: Rc<Shard>, partition: Rc<Partition>, started: Placement) {
    if let Role::Follower(Some(leader)) = started.role {
        tracing::info!(partition = %partition.tp(), leader, epoch = started.leader_epoch, "following the partition's leader");
    }
    let mut connection: Option<(std::net::SocketAddr, glommio::net::TcpStream, BytesMut)> = None;
    let mut correlation = 0u32;
    let mut failures = 0u32;
    loop {
        let Some(replication) = partition.replication() else { break };
        let placement = replication.placement();
        if placement.leader_epoch != started.leader_epoch || placement.role != started.role {
            break;
        }
        if shard
            .logs
            .partition(&partition.tp().topic, partition.tp().partition)
            .is_none_or(|p| !Rc::ptr_eq(&p, &partition))
        {
            break; // closed: deleted, or moved off this shard
        }
        let Some(address) = leader_address(&shard, &placement) else {
            glommio::timer::sleep(RETRY).await;
            continue;
        };
        if connection.as_ref().is_none_or(|(at, ..)| *at != address) {
            connection = match glommio::net::TcpStream::connect_timeout(address, Duration::from_secs(2)).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    Some((address, stream, BytesMut::with_capacity(64 * 1024)))
                }
                Err(error) => {
                    failures += 1;
                    if failures == 1 || failures % 100 == 0 {
                        tracing::warn!(partition = %partition.tp(), %address, %error, "a follower cannot reach its leader");
                    }
                    glommio::timer::sleep(RETRY).await;
                    continue;
                }
            };
        }
        let (_, stream, buffer) = connection.as_mut().expect("connected above");
        correlation = correlation.wrapping_add(1);
        match fetch_once(&shard, &partition, &placement, stream, buffer, correlation).await {
            Ok(()) => failures = 0,
            Err(error) => {
                failures += 1;
                if failures == 1 || failures % 100 == 0 {
                    tracing::debug!(partition = %partition.tp(), %error, "a follower's fetch failed");
                }
                if error.starts_with("io:") {
                    connection = None;
                }
                glommio::timer::sleep(RETRY).await;
            }
        }
    }
    if partition.fetching.get() == Some(started.leader_epoch) {
        partition.fetching.set(None);
    }
}

/// The leader's native shard port for the partition, from the metadata: the leader
/// broker's plaintext native listener (replication between brokers does not use TLS
/// or SASL yet).
fn leader_address(shard: &Shard, placement: &Placement) -> Option<std::net::SocketAddr> {
    let Role::Follower(Some(leader)) = placement.role else { return None };
    let state = shard.metadata();
    let broker = state.brokers.get(&leader).filter(|b| !b.fenced)?;
    let names: Vec<&str> = shard
        .config
        .listeners
        .iter()
        .filter(|l| {
            l.protocol == crate::config::ListenerProtocol::Native && !l.security.is_tls() && !l.security.is_sasl()
        })
        .map(|l| l.name.as_str())
        .collect();
    let listener = broker.listeners.iter().find(|l| names.contains(&l.name.as_str()))?;
    let port = placement
        .leader_shard
        .and_then(|shard| listener.shard_ports.get(shard as usize).copied())
        .unwrap_or(listener.port);
    format!("{}:{port}", listener.host).parse().ok()
}

/// One fetch and what follows it: the batches stored and made to meet the policy,
/// or the log truncated where it diverged. `Err` says why (`io:` for a broken
/// connection).
async fn fetch_once(
    shard: &Rc<Shard>,
    partition: &Rc<Partition>,
    placement: &Placement,
    stream: &mut glommio::net::TcpStream,
    buffer: &mut BytesMut,
    correlation: u32,
) -> Result<(), String> {
    let me = placement.me;
    let broker_epoch = shard.metadata().brokers.get(&me).map_or(0, |b| b.epoch);
    let log = partition.log();
    let offsets = log.offsets();
    let last_fetched_epoch =
        if offsets.end > offsets.start || !log.leader_epochs().entries().is_empty() { log.latest_epoch() } else { -1 };
    let request = Request::ReplicaFetch(ReplicaFetchRequest {
        broker: me,
        broker_epoch,
        max_wait_ms: FETCH_WAIT_MS,
        max_bytes: FETCH_BYTES,
        partitions: vec![ReplicaFetchPartition {
            topic: partition.tp().topic.clone(),
            partition: partition.tp().partition,
            leader_epoch: placement.leader_epoch,
            fetch_offset: offsets.end,
            last_fetched_epoch,
            acked_offset: offsets.high_watermark,
        }],
    });
    let mut out = Vec::with_capacity(256);
    request.encode(correlation, &mut out);
    stream.write_all(&out).await.map_err(|e| format!("io: {e}"))?;
    let limits = Limits {
        frame_bytes_max: shard.config.limits.frame_bytes_max as usize + FETCH_BYTES as usize,
        array_count_max: shard.config.limits.array_count_max as usize,
    };
    let (header, payload) = loop {
        if let Some(frame) = split_frame(buffer, &limits).map_err(|e| format!("io: {e}"))? {
            break frame;
        }
        // Read straight into the buffer's free room.
        let filled = buffer.len();
        buffer.resize(filled + 64 * 1024, 0);
        let read = stream.read(&mut buffer[filled..]).await;
        buffer.truncate(filled + *read.as_ref().unwrap_or(&0));
        if read.map_err(|e| format!("io: {e}"))? == 0 {
            return Err("io: the leader closed the connection".into());
        }
    };
    let response = Response::decode(&header, &payload, &limits).map_err(|e| format!("io: {e}"))?;
    let Response::ReplicaFetch(answer) = response else {
        return Err(format!("io: unexpected {:?}", response.api_key()));
    };
    let Some(answer) = answer.partitions.into_iter().next() else { return Err("io: no partition answered".into()) };
    if answer.error != ErrorCode::None {
        return Err(format!("the leader answered {:?}", answer.error));
    }
    if answer.diverging_epoch >= 0 {
        let leader = Some((answer.diverging_epoch, answer.diverging_end));
        let end = log.offsets().end;
        let epochs = log.leader_epochs();
        let point = if epochs.latest().is_none() {
            Some(answer.diverging_end.min(end))
        } else {
            epochs.truncation_point(leader, end)
        };
        let point = point.unwrap_or(log.offsets().start).max(log.offsets().start);
        tracing::warn!(partition = %partition.tp(), epoch = answer.diverging_epoch, end = answer.diverging_end, truncate_to = point, "the follower's log diverged from its leader's");
        let retention = Duration::from_millis(shard.config.storage.retention_check_interval_ms);
        partition.truncate_to(point, retention).await.map_err(|e| e.to_string())?;
        return Ok(());
    }
    let mut last = None;
    let mut at = 0usize;
    let records = answer.records;
    while at < records.len() {
        let len = strand_protocol::batch::batch_bytes(&records[at..])
            .filter(|&len| at + len <= records.len())
            .ok_or_else(|| "io: the leader's records are not whole batches".to_string())?;
        let batch = BytesMut::from(&records[at..at + len]);
        last = Some(partition.append_replica(batch).await.map_err(|e| e.to_string())?);
        at += len;
    }
    if let Some(appended) = last {
        // What the leader may count: this replica's policy met.
        log.wait_policy(&appended).await.map_err(|e| e.to_string())?;
    }
    if let Some(replication) = partition.replication() {
        replication.follower_high_watermark(answer.high_watermark.min(log.offsets().end));
    }
    Ok(())
}
