//! `strand-bench`'s measuring code, shared by the `strand-bench` binary and the
//! criterion benches in `benches/`.

pub mod broker_bench;
pub mod cluster_bench;
pub mod compare;
pub mod engine;
pub mod kafka_wire;
pub mod limits;
pub mod log_bench;
pub mod recorder;
pub mod report;
pub mod run;
pub mod spawn;
pub mod tls;
pub mod workload;
