//! The subcommands of `strand`, one module each.

pub mod config;
pub mod consume;
pub mod group;
pub mod produce;
pub mod serve;
pub mod topic;
pub mod tune;

use strand_client::{Client, ClientError};

/// Where client commands find the broker.
pub const BOOTSTRAP_DEFAULT: &str = "127.0.0.1:9400";

/// Connects to `bootstrap`, with an error that says what to check.
pub fn connect(bootstrap: &str) -> anyhow::Result<Client> {
    Client::connect(bootstrap).map_err(|error| match error {
        ClientError::Connect { .. } => {
            anyhow::anyhow!("{error} (is `strand serve` running there? set the address with --bootstrap HOST:PORT)")
        }
        other => anyhow::anyhow!(other),
    })
}
