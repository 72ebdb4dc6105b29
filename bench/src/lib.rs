//! `strand-bench`'s measuring code, shared by the `strand-bench` binary and the
//! criterion benches in `benches/`.

pub mod broker_bench;
pub mod limits;
pub mod log_bench;
