//! Topic changes: CreateTopics, DeleteTopics, AlterTopicConfigs, CreatePartitions.
//! Shard 0 owns the metadata store: other shards forward the request there. Shard 0
//! runs one admin request at a time (`Session`), writes each command to the store
//! (blocking I/O, off the event loop), applies the new state to itself and then to
//! every other shard, and answers only once every shard has opened or closed its
//! partitions.

pub use super::types::{AdminRequest, NewPartitions, NewTopic, TopicAlteration, TopicOutcomes};
use super::{Error, RequestContext};
use crate::metadata::{place_partitions, Command, MetadataError, MetadataState, TopicUuid, PARTITIONS_MAX};
use crate::partition::OpenFailure;
use crate::shard::{Shard, ShardMessage};
use crate::storage::{altered_config, topic_config};
use futures_channel::oneshot;
use std::rc::Rc;
use std::sync::Arc;

/// Runs `request` on shard 0: here when this is shard 0, else forwarded there. What
/// the principal may not do is answered here, with the rest run as one request; the
/// outcomes come back in request order.
pub async fn run(shard: &Rc<Shard>, ctx: &RequestContext, request: AdminRequest) -> TopicOutcomes {
    let names = request.names();
    let (request, denied) = authorized(shard, ctx, request);
    let mut outcomes = if request.names().is_empty() {
        Vec::new()
    } else if shard.id == 0 {
        run_here(shard, request).await
    } else {
        let asked = request.names();
        let (reply, receiver) = oneshot::channel();
        shard.forward(0, ShardMessage::Admin { request, reply }).await;
        receiver.await.unwrap_or_else(|_| asked.into_iter().map(|name| (name, Err(Error::ShuttingDown))).collect())
    };
    if denied.is_empty() {
        return outcomes;
    }
    outcomes.extend(denied);
    names
        .into_iter()
        .filter_map(|name| outcomes.iter().position(|(n, _)| *n == name).map(|at| outcomes.swap_remove(at)))
        .collect()
}

/// Splits off what `ctx`'s principal may not do (Kafka's rules: create on the cluster
/// or the topic; delete, alter-configs or alter on the topic; alter on the cluster for
/// credentials), answered with the denial.
fn authorized(shard: &Shard, ctx: &RequestContext, request: AdminRequest) -> (AdminRequest, TopicOutcomes) {
    use super::authorize::{self, TopicGate};
    use crate::metadata::acl::AclOperation;
    let mut denied = Vec::new();
    let mut keep = |name: &str, ok: bool| {
        if !ok {
            denied.push((name.to_string(), Err(Error::TopicAuthorizationFailed)));
        }
        ok
    };
    let request = match request {
        AdminRequest::CreateTopics(mut topics) => {
            topics.retain(|t| keep(&t.name, authorize::may_create_topic(shard, ctx, &t.name)));
            AdminRequest::CreateTopics(topics)
        }
        AdminRequest::DeleteTopics(mut names) => {
            let mut gate = TopicGate::new(shard, ctx, AclOperation::Delete);
            names.retain(|name| keep(name, gate.check(name).is_ok()));
            AdminRequest::DeleteTopics(names)
        }
        AdminRequest::AlterTopicConfigs(mut topics) => {
            let mut gate = TopicGate::new(shard, ctx, AclOperation::AlterConfigs);
            topics.retain(|t| keep(&t.name, gate.check(&t.name).is_ok()));
            AdminRequest::AlterTopicConfigs(topics)
        }
        AdminRequest::CreatePartitions(mut topics) => {
            let mut gate = TopicGate::new(shard, ctx, AclOperation::Alter);
            topics.retain(|t| keep(&t.name, gate.check(&t.name).is_ok()));
            AdminRequest::CreatePartitions(topics)
        }
        // Quotas: checked by `quotas::alter` (alter-configs on the cluster).
        AdminRequest::AlterClientQuotas(entries) => AdminRequest::AlterClientQuotas(entries),
        AdminRequest::EnsureOffsetsTopic => AdminRequest::EnsureOffsetsTopic,
        // Users and ACLs: alter on the cluster, for the whole request.
        other
        @ (AdminRequest::AlterScramCredentials(_) | AdminRequest::CreateAcls(_) | AdminRequest::DeleteAcls(_)) => {
            if let Err(error) = authorize::check_cluster(shard, ctx, AclOperation::Alter) {
                denied.extend(other.names().into_iter().map(|name| (name, Err(error.clone()))));
                match other {
                    AdminRequest::AlterScramCredentials(_) => AdminRequest::AlterScramCredentials(Vec::new()),
                    AdminRequest::CreateAcls(_) => AdminRequest::CreateAcls(Vec::new()),
                    _ => AdminRequest::DeleteAcls(Vec::new()),
                }
            } else {
                other
            }
        }
    };
    (request, denied)
}

/// On shard 0: runs one admin request, one topic after another.
pub async fn run_here(shard: &Rc<Shard>, request: AdminRequest) -> TopicOutcomes {
    let mut session = Session::begin(shard).await;
    let mut outcomes = Vec::new();
    match request {
        AdminRequest::CreateTopics(topics) => {
            for topic in topics {
                let name = topic.name.clone();
                outcomes.push((name, create_topic(&mut session, topic).await));
            }
        }
        AdminRequest::DeleteTopics(names) => {
            for name in names {
                let outcome = delete_topic(&mut session, &name).await;
                outcomes.push((name, outcome));
            }
        }
        AdminRequest::AlterTopicConfigs(topics) => {
            for topic in topics {
                let name = topic.name.clone();
                outcomes.push((name, alter_topic(&mut session, topic).await));
            }
        }
        AdminRequest::CreatePartitions(topics) => {
            for topic in topics {
                let name = topic.name.clone();
                outcomes.push((name, create_partitions(&mut session, topic).await));
            }
        }
        AdminRequest::EnsureOffsetsTopic => {
            let outcome = ensure_offsets_topic(&mut session).await;
            outcomes.push((crate::group::OFFSETS_TOPIC.to_string(), outcome));
        }
        AdminRequest::AlterScramCredentials(alterations) => {
            // Each user's changes apply together or not at all, as Kafka's do.
            for (user, planned) in super::users::plan(&session.state(), alterations) {
                let outcome = match planned {
                    Ok(commands) => submit_all(&mut session, commands).await,
                    Err(error) => Err(error),
                };
                if outcome.is_ok() {
                    tracing::info!(%user, "SCRAM credentials altered");
                }
                outcomes.push((user, outcome));
            }
        }
        AdminRequest::CreateAcls(entries) => {
            for (i, binding) in entries.into_iter().enumerate() {
                let outcome = session.submit(Command::CreateAcl { binding }).await.map(|_| ()).map_err(Error::from);
                outcomes.push((i.to_string(), outcome));
            }
        }
        AdminRequest::AlterClientQuotas(entries) => {
            // Each entity's changes one command per key, applied in order.
            for (i, (entity, changes)) in entries.into_iter().enumerate() {
                let commands = changes
                    .into_iter()
                    .map(|(key, value)| Command::AlterClientQuota { entity: entity.clone(), key, value })
                    .collect();
                outcomes.push((i.to_string(), submit_all(&mut session, commands).await));
            }
        }
        AdminRequest::DeleteAcls(entries) => {
            for (i, binding) in entries.into_iter().enumerate() {
                let outcome = session.submit(Command::DeleteAcl { binding }).await.map(|_| ()).map_err(Error::from);
                outcomes.push((i.to_string(), outcome));
            }
        }
    }
    session.finish().await;
    outcomes
}

/// One admin request on shard 0: holds the admin lock, writes commands, and keeps the
/// latest state not yet applied everywhere (deletions and alterations are applied
/// once, at the end; creations each at once, since they must know what opened).
struct Session<'a> {
    shard: &'a Rc<Shard>,
    _permit: glommio::sync::Permit<'a>,
    unapplied: Option<Arc<MetadataState>>,
}

impl<'a> Session<'a> {
    async fn begin(shard: &'a Rc<Shard>) -> Session<'a> {
        let permit = shard.admin.acquire_permit(1).await.expect("the admin semaphore is never closed");
        Session { shard, _permit: permit, unapplied: None }
    }

    /// The state the next command sees.
    fn state(&self) -> Arc<MetadataState> {
        self.unapplied.clone().unwrap_or_else(|| self.shard.metadata())
    }

    /// Writes one command to the store, off the event loop; returns the new state.
    async fn submit(&mut self, command: Command) -> Result<Arc<MetadataState>, MetadataError> {
        let log = self.shard.store.clone().expect("admin commands run on shard 0, which holds the metadata log");
        let state = glommio::executor().spawn_blocking(move || log.submit(command)).await?;
        self.unapplied = Some(state.clone());
        Ok(state)
    }

    /// Applies the latest state on every shard; returns what could not be opened.
    async fn apply(&mut self) -> Vec<OpenFailure> {
        match self.unapplied.take() {
            Some(state) => broadcast(self.shard, state).await,
            None => Vec::new(),
        }
    }

    async fn finish(mut self) {
        self.apply().await;
    }
}

/// On shard 0: writes `command` (a leader's in-sync replica change) and applies the
/// state it left everywhere.
pub async fn propose(shard: &Rc<Shard>, command: Command) -> Result<(), String> {
    let mut session = Session::begin(shard).await;
    let outcome = session.submit(command).await.map(|_| ()).map_err(|error| error.to_string());
    session.finish().await;
    outcome
}

/// In a cluster, on shard 0: applies on every shard a state the quorum committed
/// (whichever broker proposed it), unless a newer one is applied already. Takes the
/// admin lock, so an admin request here applies its own states in order first.
pub(crate) async fn apply_committed(shard: &Rc<Shard>, state: Arc<MetadataState>) {
    let _permit = shard.admin.acquire_permit(1).await.expect("the admin semaphore is never closed");
    if state.applied_index > shard.metadata().applied_index {
        let failures = broadcast(shard, state).await;
        for failure in failures {
            tracing::warn!(topic = %failure.topic, partition = failure.partition, reason = %failure.reason, "a replica placed here could not be opened");
        }
    }
}

/// Applies `state` here, then on every other shard, and waits for all of them;
/// returns the partitions any shard could not open.
async fn broadcast(shard: &Rc<Shard>, state: Arc<MetadataState>) -> Vec<OpenFailure> {
    let mut failures = shard.apply(state.clone()).await;
    let mut replies = Vec::new();
    for other in (0..shard.count).filter(|&other| other != shard.id) {
        let (reply, receiver) = oneshot::channel();
        shard.forward(other, ShardMessage::Apply { state: state.clone(), reply }).await;
        replies.push(receiver);
    }
    for receiver in replies {
        failures.extend(receiver.await.unwrap_or_default());
    }
    failures
}

/// Writes `commands` one after another.
async fn submit_all(session: &mut Session<'_>, commands: Vec<Command>) -> Result<(), Error> {
    for command in commands {
        session.submit(command).await?;
    }
    Ok(())
}

/// On shard 0: reserves the next block of producer ids in the store and makes it the
/// one in use (`service::producer_ids`), unless another task did so while this one
/// waited for the admin lock.
pub async fn reserve_producer_ids(shard: &Rc<Shard>) -> Result<(), Error> {
    let mut session = Session::begin(shard).await;
    let ids = &shard.producer_ids;
    if ids.has_room() {
        return Ok(());
    }
    let start = ids.next_block_start(session.state().producer_ids_end);
    let end = start + super::types::PRODUCER_ID_BLOCK;
    session.submit(Command::ReserveProducerIds { end }).await?;
    ids.adopt(start, end);
    tracing::debug!(start, end, "producer ids reserved");
    session.finish().await;
    Ok(())
}

/// Refuses changes to `__consumer_offsets`, saying why.
fn not_internal(name: &str, why: &str) -> Result<(), Error> {
    if name == crate::group::OFFSETS_TOPIC {
        return Err(Error::InvalidTopicName(format!("{name} is internal: {why}")));
    }
    Ok(())
}

fn check_count(count: u32) -> Result<(), Error> {
    if count == 0 || count > PARTITIONS_MAX {
        return Err(MetadataError::InvalidPartitions { count: u64::from(count) }.into());
    }
    Ok(())
}

/// Creates one topic. It is answered success only once every one of its partitions
/// is open on its shard; before anything is created its partitions are checked
/// against the limits and what the broker has room for (`shard::capacity`), and a
/// topic some of whose partitions still fail to open is deleted again, with the cause
/// in its error.
async fn create_topic(session: &mut Session<'_>, topic: NewTopic) -> Result<(), Error> {
    let shard = session.shard;
    let config = topic_config(&shard.live_config().topic_defaults, &topic.settings).map_err(Error::InvalidConfig)?;
    check_count(topic.partitions)?;
    let state = session.state();
    shard.check_new_partitions(&state, topic.partitions, topic.partitions, config.segment_bytes)?;
    let uuid = TopicUuid::random();
    let start = u32::from_le_bytes([uuid.0[0], uuid.0[1], uuid.0[2], uuid.0[3]]);
    let factor = topic.replication_factor.unwrap_or_else(|| default_replication_factor(shard));
    let (placement, replicas) = place(shard, &state, topic.partitions, factor, start)?;
    let create = Command::CreateTopic { name: topic.name.clone(), config, placement, uuid: Some(uuid), replicas };
    session.submit(create).await?;
    let mut failures = session.apply().await;
    failures.retain(|failure| failure.topic == topic.name);
    if failures.is_empty() {
        tracing::info!(topic = %topic.name, partitions = topic.partitions, "topic created");
        return Ok(());
    }
    // Nothing is created: the partitions that did open are deleted with the topic.
    if session.submit(Command::DeleteTopic { name: topic.name.clone() }).await.is_ok() {
        session.apply().await;
    }
    Err(not_opened(&topic.name, topic.partitions, &failures))
}

/// In a cluster: creates `__consumer_offsets` when it is missing, with one partition
/// for each shard of the live brokers (groups hash onto them, so the count stays),
/// each on a shard of its own where there are enough, every commit fdatasynced.
async fn ensure_offsets_topic(session: &mut Session<'_>) -> Result<(), Error> {
    use crate::group::OFFSETS_TOPIC;
    let state = session.state();
    if state.topics.contains_key(OFFSETS_TOPIC) || session.shard.broker.is_none() {
        return Ok(());
    }
    let shards: u32 = state.brokers.values().filter(|broker| !broker.fenced).map(|broker| broker.shards).sum();
    let config = crate::storage::TopicConfig {
        fsync: crate::storage::FsyncPolicy::Always,
        retention_ms: None,
        retention_bytes: None,
        segment_bytes: session.shard.config.groups.offsets_segment_bytes,
        ..crate::storage::TopicConfig::default()
    };
    let live = state.brokers.values().filter(|broker| !broker.fenced).count() as u32;
    let factor = default_replication_factor(session.shard).min(live.max(1)).max(1);
    let (placement, replicas) = place(session.shard, &state, shards.max(1), factor, 0)?;
    let uuid = Some(TopicUuid::random());
    let create = Command::CreateTopic { name: OFFSETS_TOPIC.to_string(), config, placement, uuid, replicas };
    match session.submit(create).await {
        // Another broker created it first.
        Ok(_) | Err(MetadataError::TopicExists(_)) => {}
        Err(error) => return Err(error.into()),
    }
    session.apply().await;
    tracing::info!(partitions = shards.max(1), "created {OFFSETS_TOPIC} for the cluster's consumer groups");
    Ok(())
}

/// The replication factor of a topic created without one.
fn default_replication_factor(shard: &Shard) -> u32 {
    shard.config.cluster.as_ref().map_or(1, |cluster| cluster.default_replication_factor)
}

/// Deletes one topic; its data goes once every shard closed it (in the background).
async fn delete_topic(session: &mut Session<'_>, name: &str) -> Result<(), Error> {
    not_internal(name, "it holds the consumer groups' committed offsets")?;
    session.submit(Command::DeleteTopic { name: name.to_string() }).await?;
    tracing::info!(topic = %name, "topic deleted");
    Ok(())
}

/// Alters one topic's settings, whole or not at all; open logs take the new policy
/// once every shard has the new metadata, and it survives restarts as any other
/// metadata command.
async fn alter_topic(session: &mut Session<'_>, topic: TopicAlteration) -> Result<(), Error> {
    not_internal(&topic.name, "its settings come from the broker's [groups] configuration")?;
    let current = session.state().topic(&topic.name)?.config.clone();
    let defaults = session.shard.live_config().topic_defaults.clone();
    let config = altered_config(&current, &defaults, &topic.set, &topic.reset).map_err(Error::InvalidConfig)?;
    if config == current {
        return Ok(());
    }
    session.submit(Command::AlterTopicConfig { name: topic.name.clone(), config }).await?;
    let changes: Vec<String> = topic
        .set
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .chain(topic.reset.iter().map(|key| format!("{key} reset")))
        .collect();
    tracing::info!(topic = %topic.name, changes = %changes.join(", "), "topic configuration altered");
    Ok(())
}

/// Grows one topic to its asked partition count, placing the new partitions on the
/// shards that own the fewest; they are open on every owning shard before the answer.
async fn create_partitions(session: &mut Session<'_>, topic: NewPartitions) -> Result<(), Error> {
    let shard = session.shard;
    let name = topic.name;
    not_internal(
        &name,
        "it has one partition per shard, fixed when the broker first started, and groups hash onto them",
    )?;
    let state = session.state();
    let meta = state.topic(&name)?;
    let (current, segment_bytes) = (meta.partitions(), meta.config.segment_bytes);
    if topic.count > PARTITIONS_MAX {
        return Err(MetadataError::InvalidPartitions { count: u64::from(topic.count) }.into());
    }
    let added = topic.count.saturating_sub(current);
    if added > 0 {
        shard.check_new_partitions(&state, added, topic.count, segment_bytes)?;
    }
    // New partitions have as many replicas as the topic's first.
    let factor = meta.replicas.first().map_or(1, |p| p.replicas.len() as u32);
    let (placement, replicas) = place(shard, &state, added, factor, current)?;
    match session.submit(Command::AddPartitions { name: name.clone(), placement, replicas }).await {
        Ok(_) => {}
        Err(error @ MetadataError::PartitionsShrink { .. }) => {
            // Said with the count asked for, which the store's error does not know.
            return Err(Error::InvalidPartitions(format!("{error}; asked for {}", topic.count)));
        }
        Err(error) => return Err(error.into()),
    }
    let mut failures = session.apply().await;
    failures.retain(|failure| failure.topic == name && failure.partition >= current);
    if failures.is_empty() {
        tracing::info!(topic = %name, from = current, to = topic.count, "partitions added");
        return Ok(());
    }
    if session.submit(Command::RemovePartitions { name: name.clone(), count: added }).await.is_ok() {
        session.apply().await;
    }
    Err(not_opened(&name, added, &failures))
}

/// Where `count` new partitions go: on a broker alone, the shards that own the fewest;
/// in a cluster, `factor` replicas each on the live brokers as the controller places
/// them, `placement` naming each first replica's shard.
fn place(
    shard: &Shard,
    state: &MetadataState,
    count: u32,
    factor: u32,
    start: u32,
) -> Result<(Vec<u32>, Vec<crate::metadata::cluster::PartitionState>), Error> {
    if shard.broker.is_none() {
        if factor != 1 {
            return Err(Error::InvalidReplicationFactor(format!(
                "replication factor {factor}: one broker holds one replica"
            )));
        }
        return Ok((place_partitions(state, count, shard.count), Vec::new()));
    }
    if count == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    let replicas =
        crate::cluster::controller::place(state, count, factor, start).map_err(Error::InvalidReplicationFactor)?;
    let placement = replicas.iter().map(|partition| partition.replicas[0].shard).collect();
    Ok((placement, replicas))
}

/// The error of a creation undone because `failures` (of `count` new partitions)
/// could not be opened: the cause and message of the first.
fn not_opened(name: &str, count: u32, failures: &[OpenFailure]) -> Error {
    let first = &failures[0];
    let reason = format!(
        "{} of {count} new partitions could not be opened (partition {}: {}); nothing was created",
        failures.len(),
        first.partition,
        first.reason
    );
    tracing::warn!(topic = %name, message = %reason, "creation undone");
    Error::NotOpened { cause: first.cause, reason }
}
