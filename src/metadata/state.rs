//! `MetadataState`: what the command log describes, and the rules each command must
//! pass before it is written.

use super::acl::AclBinding;
use super::cluster::{self, BrokerId, BrokerMeta, PartitionState};
use super::command::Command;
use super::error::{MetadataError, PARTITIONS_MAX};
use super::name::validate_topic_name;
use super::quota::{QuotaEntity, QuotaKey, QuotaValue};
use super::scram::{ScramCredential, ScramMechanism};
use super::uuid::TopicUuid;
use crate::storage::TopicConfig;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One topic as metadata records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    /// Unique for the life of the cluster; never reused after deletion.
    pub id: u64,
    pub name: String,
    pub config: TopicConfig,
    /// The shard that owns each partition, by partition index.
    pub placement: Vec<u32>,
    /// The topic's UUID (absent in snapshots written before topics had UUIDs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<TopicUuid>,
    /// In a cluster: each partition's replicas, leader and in-sync replicas, by
    /// partition index. Empty on a single broker.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<PartitionState>,
}

impl TopicMeta {
    /// The topic's UUID: the one it was created with, or for a topic created before
    /// topics had UUIDs, one derived from its id and name (the same at every start).
    pub fn uuid(&self) -> TopicUuid {
        self.uuid.unwrap_or_else(|| TopicUuid::derived(self.id, &self.name))
    }

    /// Number of partitions.
    pub fn partitions(&self) -> u32 {
        self.placement.len() as u32
    }

    /// The shard of this broker that holds partition `index`: on a single broker
    /// (`broker` is `None`), the one `placement` names; in a cluster, the shard of this
    /// broker's replica, if it holds one.
    pub fn local_shard(&self, index: u32, broker: Option<BrokerId>) -> Option<u32> {
        match broker {
            None => self.placement.get(index as usize).copied(),
            Some(broker) => self.replicas.get(index as usize)?.replica_on(broker).map(|replica| replica.shard),
        }
    }
}

/// Every topic, and how many commands built this state.
/// A snapshot with fields this build does not know (a newer one's) is refused rather
/// than read without them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataState {
    pub topics: BTreeMap<String, TopicMeta>,
    pub next_topic_id: u64,
    /// Index of the last command applied (commands are numbered from 1).
    pub applied_index: u64,
    /// Producer ids below this may have been given out.
    #[serde(default)]
    pub producer_ids_end: i64,
    /// Each user's SCRAM credentials, by mechanism.
    #[serde(default)]
    pub users: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
    /// The access control entries.
    #[serde(default)]
    pub acls: BTreeSet<AclBinding>,
    /// Client quotas, by entity and key.
    #[serde(default)]
    pub quotas: BTreeMap<QuotaEntity, BTreeMap<QuotaKey, QuotaValue>>,
    /// In a cluster: every broker that registered.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub brokers: BTreeMap<BrokerId, BrokerMeta>,
}

impl MetadataState {
    /// Checks that `command` may be applied to this state.
    pub fn check(&self, command: &Command) -> Result<(), MetadataError> {
        match command {
            Command::CreateTopic { name, config, placement, uuid, replicas } => {
                validate_topic_name(name)?;
                if let Some(uuid) = uuid {
                    if let Some(other) = self.topics.values().find(|topic| topic.uuid() == *uuid) {
                        return Err(MetadataError::InvalidConfig(format!(
                            "topic id {uuid} is already topic {:?}'s",
                            other.name
                        )));
                    }
                }
                if self.topics.contains_key(name) {
                    return Err(MetadataError::TopicExists(name.clone()));
                }
                let normalized = name.replace('.', "_");
                if let Some(existing) = self.topics.keys().find(|other| other.replace('.', "_") == normalized) {
                    return Err(MetadataError::TopicCollides { name: name.clone(), existing: existing.clone() });
                }
                if placement.is_empty() || placement.len() as u64 > u64::from(PARTITIONS_MAX) {
                    return Err(MetadataError::InvalidPartitions { count: placement.len() as u64 });
                }
                if !replicas.is_empty() {
                    cluster::check_replicas(&self.brokers, placement.len(), replicas)?;
                }
                config.validate().map_err(MetadataError::InvalidConfig)
            }
            Command::DeleteTopic { name } => self.topic(name).map(|_| ()),
            Command::AlterTopicConfig { name, config } => {
                self.topic(name)?;
                config.validate().map_err(MetadataError::InvalidConfig)
            }
            Command::RemovePartitions { name, count } => {
                let current = self.topic(name)?.partitions();
                if *count == 0 || *count >= current {
                    return Err(MetadataError::InvalidPartitions { count: u64::from(current.saturating_sub(*count)) });
                }
                Ok(())
            }
            Command::ReserveProducerIds { end } => {
                if *end <= self.producer_ids_end {
                    return Err(MetadataError::InvalidConfig(format!(
                        "producer ids up to {} are already reserved",
                        self.producer_ids_end
                    )));
                }
                Ok(())
            }
            Command::UpsertScramCredential { user, credential, .. } => {
                if user.is_empty() {
                    return Err(MetadataError::InvalidConfig("a user name is not empty".into()));
                }
                if !ScramMechanism::ITERATIONS.contains(&credential.iterations) {
                    return Err(MetadataError::InvalidConfig(format!(
                        "{} iterations: a credential takes 4096 to 16384",
                        credential.iterations
                    )));
                }
                Ok(())
            }
            Command::DeleteScramCredential { user, mechanism } => {
                if self.users.get(user).is_some_and(|credentials| credentials.contains_key(mechanism)) {
                    Ok(())
                } else {
                    Err(MetadataError::InvalidConfig(format!("user {user:?} has no {} credential", mechanism.name())))
                }
            }
            Command::CreateAcl { binding } => binding.validate().map_err(MetadataError::InvalidConfig),
            Command::AlterClientQuota { entity, key, value } => {
                entity.validate().map_err(MetadataError::InvalidConfig)?;
                match value {
                    Some(value) => QuotaValue::checked(*key, value.0).map(|_| ()).map_err(MetadataError::InvalidConfig),
                    None => Ok(()),
                }
            }
            Command::DeleteAcl { binding } => {
                if self.acls.contains(binding) {
                    Ok(())
                } else {
                    Err(MetadataError::InvalidConfig("no such access control entry".into()))
                }
            }
            Command::AddPartitions { name, placement, replicas } => {
                let topic = self.topic(name)?;
                let current = topic.partitions();
                if placement.is_empty() {
                    return Err(MetadataError::PartitionsShrink { name: name.clone(), current });
                }
                if !replicas.is_empty() || !topic.replicas.is_empty() {
                    cluster::check_replicas(&self.brokers, placement.len(), replicas)?;
                }
                let total = u64::from(current) + placement.len() as u64;
                if total > u64::from(PARTITIONS_MAX) {
                    return Err(MetadataError::InvalidPartitions { count: total });
                }
                Ok(())
            }
            Command::RegisterBroker { broker } => cluster::check_register(broker),
            Command::FenceBroker { id, epoch } | Command::UnfenceBroker { id, epoch } => {
                cluster::check_incarnation(&self.brokers, *id, *epoch)
            }
            Command::AssignReplicas { name, from, partitions } => {
                let topic = self.topic(name)?;
                if *from as usize != topic.replicas.len() {
                    return Err(MetadataError::InvalidConfig(format!(
                        "topic {name:?} has replicas for {} partitions, not {from}",
                        topic.replicas.len()
                    )));
                }
                let count = (topic.partitions() as usize).saturating_sub(*from as usize);
                cluster::check_replicas(&self.brokers, count, partitions)
            }
            Command::AlterIsr { name, partition, leader, leader_epoch, partition_epoch, isr } => {
                let state = self.partition_state(name, *partition)?;
                cluster::check_alter_isr(*partition as usize, state, *leader, *leader_epoch, *partition_epoch, isr)
            }
            Command::ChangePartition { name, partition, leader, isr } => {
                let state = self.partition_state(name, *partition)?;
                cluster::check_change(*partition as usize, state, *leader, isr)
            }
        }
    }

    /// A cluster topic's partition.
    pub fn partition_state(&self, name: &str, partition: u32) -> Result<&PartitionState, MetadataError> {
        self.topic(name)?.replicas.get(partition as usize).ok_or_else(|| {
            MetadataError::InvalidConfig(format!("topic {name:?} has no replicas for partition {partition}"))
        })
    }

    /// Applies a command that passed [`MetadataState::check`].
    pub fn apply(&mut self, command: &Command) {
        self.applied_index += 1;
        match command {
            Command::CreateTopic { name, config, placement, uuid, replicas } => {
                let id = self.next_topic_id;
                self.next_topic_id += 1;
                let uuid = Some(uuid.unwrap_or_else(|| TopicUuid::derived(id, name)));
                let topic = TopicMeta {
                    id,
                    name: name.clone(),
                    config: config.clone(),
                    placement: placement.clone(),
                    uuid,
                    replicas: replicas.clone(),
                };
                self.topics.insert(name.clone(), topic);
            }
            Command::DeleteTopic { name } => {
                self.topics.remove(name);
            }
            Command::AlterTopicConfig { name, config } => {
                if let Some(topic) = self.topics.get_mut(name) {
                    topic.config = config.clone();
                }
            }
            Command::AddPartitions { name, placement, replicas } => {
                if let Some(topic) = self.topics.get_mut(name) {
                    topic.placement.extend_from_slice(placement);
                    topic.replicas.extend_from_slice(replicas);
                }
            }
            Command::RemovePartitions { name, count } => {
                if let Some(topic) = self.topics.get_mut(name) {
                    let keep = topic.placement.len().saturating_sub(*count as usize);
                    topic.placement.truncate(keep);
                    topic.replicas.truncate(keep);
                }
            }
            Command::ReserveProducerIds { end } => {
                self.producer_ids_end = self.producer_ids_end.max(*end);
            }
            Command::UpsertScramCredential { user, mechanism, credential } => {
                self.users.entry(user.clone()).or_default().insert(*mechanism, credential.clone());
            }
            Command::CreateAcl { binding } => {
                self.acls.insert(binding.clone());
            }
            Command::AlterClientQuota { entity, key, value } => match value {
                Some(value) => {
                    self.quotas.entry(entity.clone()).or_default().insert(*key, *value);
                }
                None => {
                    if let Some(keys) = self.quotas.get_mut(entity) {
                        keys.remove(key);
                        if keys.is_empty() {
                            self.quotas.remove(entity);
                        }
                    }
                }
            },
            Command::DeleteAcl { binding } => {
                self.acls.remove(binding);
            }
            Command::DeleteScramCredential { user, mechanism } => {
                if let Some(credentials) = self.users.get_mut(user) {
                    credentials.remove(mechanism);
                    if credentials.is_empty() {
                        self.users.remove(user);
                    }
                }
            }
            Command::RegisterBroker { broker } => {
                self.brokers.insert(broker.id, BrokerMeta { fenced: true, ..broker.clone() });
            }
            Command::FenceBroker { id, .. } | Command::UnfenceBroker { id, .. } => {
                let fenced = matches!(command, Command::FenceBroker { .. });
                if let Some(broker) = self.brokers.get_mut(id) {
                    broker.fenced = fenced;
                }
            }
            Command::AssignReplicas { name, partitions, .. } => {
                if let Some(topic) = self.topics.get_mut(name) {
                    topic.replicas.extend_from_slice(partitions);
                }
            }
            Command::AlterIsr { name, partition, leader, isr, .. } => {
                if let Some(state) = self.partition_state_mut(name, *partition) {
                    cluster::apply_change(state, Some(*leader), isr);
                }
            }
            Command::ChangePartition { name, partition, leader, isr } => {
                if let Some(state) = self.partition_state_mut(name, *partition) {
                    cluster::apply_change(state, *leader, isr);
                }
            }
        }
    }

    fn partition_state_mut(&mut self, name: &str, partition: u32) -> Option<&mut PartitionState> {
        self.topics.get_mut(name).and_then(|topic| topic.replicas.get_mut(partition as usize))
    }

    /// The quota of `key` for `user` and `client_id`, and the entity that set it
    /// (Kafka's precedence: the most specific entity that has the key).
    pub fn quota_for(&self, key: QuotaKey, user: &str, client_id: &str) -> Option<(QuotaEntity, f64)> {
        if self.quotas.is_empty() {
            return None;
        }
        QuotaEntity::precedence(user, client_id)
            .into_iter()
            .find_map(|entity| self.quotas.get(&entity).and_then(|keys| keys.get(&key)).map(|v| (entity, v.0)))
    }

    /// The topic named `name`, or `UnknownTopic`.
    pub fn topic(&self, name: &str) -> Result<&TopicMeta, MetadataError> {
        self.topics.get(name).ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))
    }
}

/// Places `partitions` new partitions on `shards` shards: each on the shard that owns
/// the fewest partitions so far, lowest shard first on ties.
pub fn place_partitions(state: &MetadataState, partitions: u32, shards: u32) -> Vec<u32> {
    let shards = shards.max(1);
    let mut load = vec![0u64; shards as usize];
    for topic in state.topics.values() {
        for &shard in &topic.placement {
            if let Some(count) = load.get_mut(shard as usize) {
                *count += 1;
            }
        }
    }
    (0..partitions)
        .map(|_| {
            let (shard, _) =
                load.iter().enumerate().min_by_key(|&(shard, count)| (*count, shard)).expect("at least one shard");
            load[shard] += 1;
            shard as u32
        })
        .collect()
}
