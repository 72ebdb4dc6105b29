//! Metrics: what `/metrics` renders (Prometheus text format), and the checks behind
//! `/healthz` (every shard's event loop is turning) and `/readyz` (recovered and
//! serving); `admin` serves them over HTTP.
//!
//! Each shard writes its own `ShardMetrics` (relaxed atomics, one writer each); the
//! admin thread only reads them, so scraping never touches a shard's thread. Gauges
//! that need a shard's own state (segments, cache) are refreshed by the shard's
//! periodic tick.

use crate::service::operation::{Listener, Operation};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Upper bounds of the latency histograms' buckets, in seconds.
const BUCKETS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A latency histogram one shard writes.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

fn add(counter: &AtomicU64, n: u64) {
    // One writer per counter (its shard): a plain load and store, no locked add.
    counter.store(counter.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&bound| seconds <= bound) {
            add(&self.buckets[i], 1);
        }
        add(&self.count, 1);
        add(&self.sum_micros, elapsed.as_micros() as u64);
    }
}

/// What one shard counts.
#[derive(Debug, Default)]
pub struct ShardMetrics {
    /// Requests and errors by listener and operation.
    pub requests: [[AtomicU64; Operation::ALL.len()]; Listener::CLIENT.len()],
    pub errors: [[AtomicU64; Operation::ALL.len()]; Listener::CLIENT.len()],
    pub bytes_in: AtomicU64,
    pub records_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub records_out: AtomicU64,
    pub produce_latency: Histogram,
    pub fetch_latency: Histogram,
    pub forwards_out: AtomicU64,
    pub forwards_in: AtomicU64,
    pub connections: AtomicU64,
    pub connections_refused: AtomicU64,
    pub tls_handshake_failures: AtomicU64,
    pub authentications: AtomicU64,
    pub authentication_failures: AtomicU64,
    pub authorization_denials: AtomicU64,
    pub throttled: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub cache_bytes: AtomicU64,
    pub read_ahead_bytes: AtomicU64,
    pub partitions: AtomicU64,
    pub segments: AtomicU64,
    pub log_bytes: AtomicU64,
}

impl ShardMetrics {
    pub fn request(&self, listener: Listener, operation: Operation) {
        if let Some(listener) = listener.index() {
            add(&self.requests[listener][operation.index()], 1);
        }
    }

    /// A request, or one partition of it, answered with an error.
    pub fn error(&self, listener: Listener, operation: Operation) {
        if let Some(listener) = listener.index() {
            add(&self.errors[listener][operation.index()], 1);
        }
    }

    pub fn produced(&self, bytes: u64, records: u64) {
        add(&self.bytes_in, bytes);
        add(&self.records_in, records);
    }

    pub fn fetched(&self, bytes: u64, records: u64) {
        add(&self.bytes_out, bytes);
        add(&self.records_out, records);
    }

    pub fn count(counter: &AtomicU64, n: u64) {
        add(counter, n);
    }

    pub fn set(gauge: &AtomicU64, value: u64) {
        gauge.store(value, Ordering::Relaxed);
    }
}

/// Everything the admin endpoint reports.
pub struct Registry {
    pub shards: Vec<Arc<ShardMetrics>>,
    pub data_dir: PathBuf,
    /// Recovered and serving (set once every shard reported ready; cleared on stop).
    pub ready: AtomicBool,
    /// Each shard's last tick, ms since the epoch.
    pub alive: Arc<Vec<AtomicU64>>,
    /// In a cluster: this broker's id and its quorum member, for the cluster's gauges.
    pub cluster: Option<(u32, Arc<crate::cluster::MetadataLog>)>,
}

/// One per-shard series: its field.
type Field = fn(&ShardMetrics) -> &AtomicU64;

/// The per-shard counters and gauges: (type, name, help, field).
const PER_SHARD: [(&str, &str, &str, Field); 20] = [
    ("counter", "strand_bytes_in_total", "Record batch bytes appended to partitions this shard owns.", |m| &m.bytes_in),
    ("counter", "strand_records_in_total", "Records appended to partitions this shard owns.", |m| &m.records_in),
    ("counter", "strand_bytes_out_total", "Record batch bytes fetched from partitions this shard owns.", |m| {
        &m.bytes_out
    }),
    ("counter", "strand_records_out_total", "Records fetched from partitions this shard owns.", |m| &m.records_out),
    ("counter", "strand_forwards_out_total", "Requests this shard forwarded to another over the mesh.", |m| {
        &m.forwards_out
    }),
    ("counter", "strand_forwards_in_total", "Requests another shard forwarded to this one.", |m| &m.forwards_in),
    (
        "counter",
        "strand_connections_refused_total",
        "Connections closed at once: limits.connections_max reached.",
        |m| &m.connections_refused,
    ),
    ("gauge", "strand_connections", "Open client connections.", |m| &m.connections),
    (
        "counter",
        "strand_tls_handshake_failures_total",
        "Connections closed because their TLS handshake failed or did not finish in time.",
        |m| &m.tls_handshake_failures,
    ),
    ("counter", "strand_authentications_total", "SASL authentications that succeeded.", |m| &m.authentications),
    (
        "counter",
        "strand_authentication_failures_total",
        "SASL authentications that failed (a wrong password, an unknown user, a malformed exchange).",
        |m| &m.authentication_failures,
    ),
    (
        "counter",
        "strand_authorization_denials_total",
        "Operations an ACL denied (or none allowed), with authorization.enabled.",
        |m| &m.authorization_denials,
    ),
    (
        "counter",
        "strand_throttled_requests_total",
        "Requests of clients over a quota, answered with a throttle time and their connection rested.",
        |m| &m.throttled,
    ),
    ("counter", "strand_cache_hits_total", "Reads served from the batch cache.", |m| &m.cache_hits),
    ("counter", "strand_cache_misses_total", "Reads that went to disk.", |m| &m.cache_misses),
    ("gauge", "strand_cache_bytes", "Bytes held by the batch cache.", |m| &m.cache_bytes),
    (
        "gauge",
        "strand_read_ahead_bytes",
        "Bytes of cold reads held or under way ahead of consumers (bounded by storage.read_ahead_bytes).",
        |m| &m.read_ahead_bytes,
    ),
    ("gauge", "strand_partitions", "Partitions this shard owns.", |m| &m.partitions),
    ("gauge", "strand_segments", "Segment files of the partitions this shard owns.", |m| &m.segments),
    ("gauge", "strand_log_bytes", "Bytes stored by the partitions this shard owns.", |m| &m.log_bytes),
];

impl Registry {
    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        for (kind, name, help, field) in PER_SHARD {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (shard, m) in self.shards.iter().enumerate() {
                let _ = writeln!(out, "{name}{{shard=\"{shard}\"}} {}", get(field(m)));
            }
        }
        for (name, help, pick) in [
            ("strand_requests_total", "Requests received, by listener and operation (api).", 0),
            (
                "strand_request_errors_total",
                "Requests or partitions answered with an error, by listener and operation (api).",
                1,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (shard, m) in self.shards.iter().enumerate() {
                for listener in Listener::CLIENT {
                    let index = listener.index().expect("a client listener");
                    for operation in Operation::ALL {
                        let series = if pick == 0 { &m.requests } else { &m.errors };
                        let _ = writeln!(
                            out,
                            "{name}{{shard=\"{shard}\",listener=\"{}\",api=\"{}\"}} {}",
                            listener.name(),
                            operation.name(),
                            get(&series[index][operation.index()])
                        );
                    }
                }
            }
        }
        for (name, help, pick) in [
            ("strand_produce_latency_seconds", "Produce requests, from arrival to response (acks included).", 0),
            (
                "strand_fetch_latency_seconds",
                "Fetch requests, from arrival to response (the long-poll wait included).",
                1,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            for (shard, m) in self.shards.iter().enumerate() {
                let h = if pick == 0 { &m.produce_latency } else { &m.fetch_latency };
                let mut cumulative = 0;
                for (bound, bucket) in BUCKETS.iter().zip(&h.buckets) {
                    cumulative += get(bucket);
                    let _ = writeln!(out, "{name}_bucket{{shard=\"{shard}\",le=\"{bound}\"}} {cumulative}");
                }
                let _ = writeln!(out, "{name}_bucket{{shard=\"{shard}\",le=\"+Inf\"}} {}", get(&h.count));
                let _ = writeln!(out, "{name}_sum{{shard=\"{shard}\"}} {}", get(&h.sum_micros) as f64 / 1e6);
                let _ = writeln!(out, "{name}_count{{shard=\"{shard}\"}} {}", get(&h.count));
            }
        }
        if let Some(space) = crate::host::disk_space(&self.data_dir) {
            let _ = writeln!(out, "# HELP strand_disk_free_bytes Free bytes on the data directory's filesystem.");
            let _ = writeln!(out, "# TYPE strand_disk_free_bytes gauge");
            let _ = writeln!(out, "strand_disk_free_bytes {}", space.free_bytes);
        }
        if let Some((id, log)) = &self.cluster {
            render_cluster(&mut out, *id, log);
        }
        let _ = writeln!(out, "# HELP strand_ready 1 once every partition is recovered and the broker serves.");
        let _ =
            writeln!(out, "# TYPE strand_ready gauge\nstrand_ready {}", u8::from(self.ready.load(Ordering::Relaxed)));
        out
    }

    /// Whether every shard's periodic tick ran within the last 5 s.
    pub fn healthy(&self) -> bool {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        self.alive.iter().all(|a| now.saturating_sub(a.load(Ordering::Relaxed)) < 5_000)
    }
}

/// The cluster's gauges, as this broker's copy of the metadata has them.
fn render_cluster(out: &mut String, id: u32, log: &crate::cluster::MetadataLog) {
    let state = log.state();
    let quorum = log.quorum();
    let gauge = |out: &mut String, name: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
    };
    let fenced = state.brokers.values().filter(|b| b.fenced).count() as u64;
    let _ = writeln!(out, "# HELP strand_cluster_brokers Registered brokers, alive or fenced.");
    let _ = writeln!(out, "# TYPE strand_cluster_brokers gauge");
    let _ = writeln!(out, "strand_cluster_brokers{{state=\"alive\"}} {}", state.brokers.len() as u64 - fenced);
    let _ = writeln!(out, "strand_cluster_brokers{{state=\"fenced\"}} {fenced}");
    let partitions = || state.topics.values().flat_map(|topic| &topic.replicas);
    let offline = partitions().filter(|p| p.leader.is_none()).count() as u64;
    let under = partitions().filter(|p| p.leader.is_some() && p.isr.len() < p.replicas.len()).count() as u64;
    let led = partitions().filter(|p| p.leader == Some(id)).count() as u64;
    gauge(
        out,
        "strand_cluster_partitions_offline",
        "Partitions without a leader (every in-sync replica down).",
        offline,
    );
    gauge(
        out,
        "strand_cluster_partitions_under_replicated",
        "Partitions with fewer replicas in sync than they have.",
        under,
    );
    gauge(out, "strand_cluster_partitions_led", "Partitions this broker leads.", led);
    let leader = quorum.and_then(|q| q.leader());
    gauge(
        out,
        "strand_cluster_controller_active",
        "1 while this broker leads the metadata quorum (and so is the controller).",
        u64::from(leader == Some(u64::from(id))),
    );
    gauge(out, "strand_cluster_controller_id", "The metadata quorum's leader (0: none known).", leader.unwrap_or(0));
    gauge(out, "strand_cluster_metadata_applied", "Metadata commands applied on this broker.", state.applied_index);
}
