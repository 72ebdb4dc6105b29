//! The subcommands of `strand`, one module each.

pub mod acl;
pub mod cluster;
pub mod config;
pub mod consume;
pub mod group;
pub mod kafka_admin;
pub mod produce;
pub mod serve;
pub mod topic;
pub mod tune;
pub mod user;

use strand_client::{Client, ClientConfig, ClientError, Credentials, TlsConfig};

/// Where client commands find the broker.
pub const BOOTSTRAP_DEFAULT: &str = "127.0.0.1:9400";

/// How client commands reach a native listener: its address, and for a secured one
/// the TLS trust and the user's credentials (the password from `STRAND_PASSWORD` or a
/// file, never from the command line).
#[derive(clap::Args, Debug, Clone)]
pub struct BrokerArgs {
    /// The broker to connect to, as HOST:PORT.
    #[arg(long, default_value = BOOTSTRAP_DEFAULT, value_parser = parse_bootstrap)]
    pub bootstrap: String,
    /// Authenticate as this user (SCRAM, for a listener with security sasl_plaintext or
    /// sasl_tls); the password comes from STRAND_PASSWORD or --password-file.
    #[arg(long)]
    pub user: Option<String>,
    /// A file whose first line is the password.
    #[arg(long)]
    pub password_file: Option<std::path::PathBuf>,
    /// SCRAM-SHA-256 or SCRAM-SHA-512.
    #[arg(long, default_value = "SCRAM-SHA-512")]
    pub mechanism: String,
    /// Connect with TLS, trusting the certificate authorities in this PEM file.
    #[arg(long)]
    pub tls_ca: Option<std::path::PathBuf>,
    /// With --tls-ca: present this client certificate (PEM), for a listener that asks
    /// for one.
    #[arg(long, requires = "tls_key", requires = "tls_ca")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
}

/// Connects as `broker` says, with an error that says what to check.
pub fn connect(broker: &BrokerArgs) -> anyhow::Result<Client> {
    let mut config = ClientConfig::default();
    if let Some(ca) = &broker.tls_ca {
        config.tls = Some(TlsConfig {
            ca_file: ca.clone(),
            cert_file: broker.tls_cert.clone(),
            key_file: broker.tls_key.clone(),
            server_name: None,
        });
    }
    if let Some(user) = &broker.user {
        let password = kafka_admin::password(broker.password_file.as_ref(), "--user")?;
        let mechanism = kafka_admin::mechanism(&broker.mechanism)?;
        config.credentials = Some(Credentials { user: user.clone(), password, mechanism });
    }
    Client::connect_with(&broker.bootstrap, config).map_err(|error| match error {
        ClientError::Connect { .. } => anyhow::anyhow!(
            "{error} (is `strand serve` running there? set the address with --bootstrap HOST:PORT)"
        ),
        ClientError::Broker { code: strand_client::ErrorCode::AuthenticationRequired, .. } => anyhow::anyhow!(
            "{error} (this listener authenticates with SASL: give --user, and the password in STRAND_PASSWORD or --password-file)"
        ),
        ClientError::Disconnected { .. } if broker.tls_ca.is_none() => anyhow::anyhow!(
            "{error} (if this listener uses TLS, give --tls-ca with its certificate authority)"
        ),
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

/// A count or number given on the command line (`--count`, `--partition`): a whole
/// number from 0, with an error that says so for a negative one (instead of clap's
/// "unexpected argument").
pub fn parse_u64(value: &str) -> Result<u64, String> {
    match value.parse::<i128>() {
        Ok(n) if n < 0 => Err(format!("{value} is negative: must be at least 0")),
        Ok(n) => u64::try_from(n).map_err(|_| format!("{value} is too large: at most {}", u64::MAX)),
        Err(_) => Err(format!("{value:?} is not a whole number")),
    }
}

/// As [`parse_u64`], for a 32-bit number (a partition).
pub fn parse_u32(value: &str) -> Result<u32, String> {
    let n = parse_u64(value)?;
    u32::try_from(n).map_err(|_| format!("{value} is too large: at most {}", u32::MAX))
}

/// A partition count: 1 to 100,000 (what the broker accepts).
pub fn parse_partitions(value: &str) -> Result<u32, String> {
    match parse_u64(value)? {
        n @ 1..=100_000 => Ok(n as u32),
        _ => Err(format!("{value}: a partition count is 1 to 100000")),
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
    fn numbers_name_their_range() {
        assert_eq!(parse_u64("0"), Ok(0));
        assert_eq!(parse_u64("-1"), Err("-1 is negative: must be at least 0".into()));
        assert!(parse_u64("x").is_err());
        assert!(parse_u32("4294967296").is_err());
        assert_eq!(parse_partitions("3"), Ok(3));
        assert!(parse_partitions("0").is_err());
        assert!(parse_partitions("-2").unwrap_err().contains("negative"));
        assert!(parse_partitions("100001").is_err());
    }

    #[test]
    fn plurals() {
        assert_eq!(plural(1, "partition"), "1 partition");
        assert_eq!(plural(0, "partition"), "0 partitions");
        assert_eq!(plural(3, "record"), "3 records");
    }
}
