//! `[cluster]`: this broker as one of a cluster (Kafka's `node.id`,
//! `controller.quorum.voters`, `broker.rack` and the KRaft timeouts). Without the
//! section the broker is a cluster of one, with its own metadata log, as fast as ever.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How this broker takes part in a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// This broker's id in the cluster (Kafka's `node.id`): unique, at least 1.
    pub node_id: u32,
    /// The cluster's name: every broker of it names the same; a broker of another
    /// cluster is refused by the quorum.
    pub cluster_id: String,
    /// The metadata quorum's voters, `"id@host:port"` (Kafka's
    /// `controller.quorum.voters`): 1, 3 or 5 of them, each serving the quorum's RPCs
    /// on its `host:port`. This broker must be one of them.
    pub voters: Vec<String>,
    /// The rack this broker is in (`broker.rack`): replicas of a partition go to
    /// different racks while there are racks to spare. Empty: none.
    pub rack: String,
    /// The quorum leader sends its heartbeat this often.
    pub quorum_heartbeat_ms: u64,
    /// A voter that hears no leader for between this and twice this stands for
    /// election (`controller.quorum.election.timeout.ms`).
    pub election_timeout_ms: u64,
    /// A broker tells the controller it is alive this often
    /// (`broker.heartbeat.interval.ms`).
    pub broker_heartbeat_ms: u64,
    /// A broker not heard from for this long is fenced and its leaderships move to
    /// in-sync replicas (`broker.session.timeout.ms`).
    pub broker_session_ms: u64,
    /// The quorum snapshots its state after this many commands.
    pub snapshot_every: u64,
    /// The replication factor of topics created without one
    /// (`default.replication.factor`).
    pub default_replication_factor: u32,
    /// A follower not caught up to its leader's end within this long leaves the
    /// in-sync replicas (`replica.lag.time.max.ms`).
    pub replica_lag_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node_id: 0,
            cluster_id: String::new(),
            voters: Vec::new(),
            rack: String::new(),
            quorum_heartbeat_ms: 100,
            election_timeout_ms: 1_000,
            broker_heartbeat_ms: 250,
            broker_session_ms: 1_500,
            snapshot_every: 10_000,
            default_replication_factor: 1,
            replica_lag_ms: 10_000,
        }
    }
}

impl ClusterConfig {
    /// The voters by node id, each with its `host:port`.
    pub fn voter_addresses(&self) -> Result<BTreeMap<u64, String>, String> {
        let mut voters = BTreeMap::new();
        for (i, voter) in self.voters.iter().enumerate() {
            let bad = |why: &str| format!("cluster.voters[{i}] = {voter:?}: {why} (write \"id@host:port\")");
            let (id, address) = voter.split_once('@').ok_or_else(|| bad("no '@'"))?;
            let id: u64 = id.parse().map_err(|_| bad("the id is not a number"))?;
            if id == 0 || id > u64::from(i32::MAX as u32) {
                return Err(bad("the id must be from 1 to 2147483647"));
            }
            let (host, port) = address.rsplit_once(':').ok_or_else(|| bad("no port"))?;
            if host.is_empty() || port.parse::<u16>().map_or(true, |port| port == 0) {
                return Err(bad("the host is empty or the port not from 1 to 65535"));
            }
            if voters.insert(id, address.to_string()).is_some() {
                return Err(bad("another voter has this id"));
            }
        }
        Ok(voters)
    }

    /// Checks every value; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.node_id == 0 || self.node_id > i32::MAX as u32 {
            return Err(format!("cluster.node_id = {}: must be from 1 to 2147483647", self.node_id));
        }
        if self.cluster_id.is_empty()
            || self.cluster_id.len() > 64
            || !self.cluster_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!("cluster.cluster_id = {:?}: 1 to 64 letters, digits, '-' or '_'", self.cluster_id));
        }
        let voters = self.voter_addresses()?;
        if !matches!(voters.len(), 1 | 3 | 5) {
            return Err(format!(
                "cluster.voters: {} voters; a quorum has 1, 3 or 5 (a majority of them must be up)",
                voters.len()
            ));
        }
        if !voters.contains_key(&u64::from(self.node_id)) {
            return Err(format!(
                "cluster.node_id = {}: not one of cluster.voters ({}); every broker of a cluster is a voter",
                self.node_id,
                voters.keys().map(u64::to_string).collect::<Vec<_>>().join(", ")
            ));
        }
        if self.rack.len() > 64 {
            return Err(format!("cluster.rack = {:?}: at most 64 characters", self.rack));
        }
        for (key, value, min) in [
            ("cluster.quorum_heartbeat_ms", self.quorum_heartbeat_ms, 10),
            ("cluster.broker_heartbeat_ms", self.broker_heartbeat_ms, 10),
            ("cluster.snapshot_every", self.snapshot_every, 10),
            ("cluster.default_replication_factor", u64::from(self.default_replication_factor), 1),
            ("cluster.replica_lag_ms", self.replica_lag_ms, 100),
        ] {
            if value < min {
                return Err(format!("{key} = {value}: must be at least {min}"));
            }
        }
        if self.election_timeout_ms < 3 * self.quorum_heartbeat_ms {
            return Err(format!(
                "cluster.election_timeout_ms = {}: must be at least three quorum heartbeats ({} ms)",
                self.election_timeout_ms,
                3 * self.quorum_heartbeat_ms
            ));
        }
        if self.broker_session_ms < 3 * self.broker_heartbeat_ms {
            return Err(format!(
                "cluster.broker_session_ms = {}: must be at least three broker heartbeats ({} ms)",
                self.broker_session_ms,
                3 * self.broker_heartbeat_ms
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> ClusterConfig {
        ClusterConfig {
            node_id: 2,
            cluster_id: "orders".into(),
            voters: vec!["1@127.0.0.1:9501".into(), "2@127.0.0.2:9501".into(), "3@127.0.0.3:9501".into()],
            ..ClusterConfig::default()
        }
    }

    #[test]
    fn voters_are_read_and_checked() {
        let config = three();
        config.validate().unwrap();
        assert_eq!(config.voter_addresses().unwrap()[&2], "127.0.0.2:9501");
        for (voters, expected) in [
            (vec!["1@127.0.0.1:9501", "2@x:9501"], "a quorum has 1, 3 or 5"),
            (vec!["1-127.0.0.1:9501"], "no '@'"),
            (vec!["one@127.0.0.1:9501"], "not a number"),
            (vec!["1@127.0.0.1"], "no port"),
            (vec!["1@127.0.0.1:0"], "not from 1 to 65535"),
            (vec!["1@a:1", "1@b:1", "2@c:1"], "another voter has this id"),
            (vec!["1@a:1", "3@b:1", "4@c:1"], "not one of cluster.voters"),
        ] {
            let config = ClusterConfig { voters: voters.iter().map(|v| v.to_string()).collect(), ..three() };
            let error = config.validate().unwrap_err();
            assert!(error.contains(expected), "{voters:?}: {error}");
        }
    }

    #[test]
    fn ids_and_timeouts_are_checked() {
        for (config, expected) in [
            (ClusterConfig { node_id: 0, ..three() }, "cluster.node_id = 0"),
            (ClusterConfig { cluster_id: String::new(), ..three() }, "cluster.cluster_id"),
            (ClusterConfig { cluster_id: "a b".into(), ..three() }, "cluster.cluster_id"),
            (ClusterConfig { election_timeout_ms: 200, ..three() }, "cluster.election_timeout_ms"),
            (ClusterConfig { broker_session_ms: 500, ..three() }, "cluster.broker_session_ms"),
            (ClusterConfig { default_replication_factor: 0, ..three() }, "default_replication_factor"),
        ] {
            let error = config.validate().unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
    }
}
