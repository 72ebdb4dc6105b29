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

/// Checks a `--bootstrap` value: `HOST:PORT` with a port, so that an address without
/// one is refused rather than quietly taking a default.
pub fn parse_bootstrap(value: &str) -> Result<String, String> {
    let Some((host, port)) = value.rsplit_once(':') else {
        return Err(format!("{value:?} has no port: give HOST:PORT, for example 127.0.0.1:9400"));
    };
    if host.is_empty() {
        return Err(format!("{value:?} has no host: give HOST:PORT, for example 127.0.0.1:9400"));
    }
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok(value.to_string()),
        _ => Err(format!("{port:?} is not a port (1 to 65535): give HOST:PORT, for example 127.0.0.1:9400")),
    }
}

/// `n` with `word`, plural where `n` is not 1: "1 partition", "3 partitions".
pub fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_needs_a_host_and_a_port() {
        assert!(parse_bootstrap("127.0.0.1:9400").is_ok());
        assert!(parse_bootstrap("localhost:1").is_ok());
        assert!(parse_bootstrap("[::1]:9400").is_ok());
        for bad in ["127.0.0.1", ":9400", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:70000", "host:port"] {
            assert!(parse_bootstrap(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plurals() {
        assert_eq!(plural(1, "partition"), "1 partition");
        assert_eq!(plural(0, "partition"), "0 partitions");
        assert_eq!(plural(3, "record"), "3 records");
    }
}
