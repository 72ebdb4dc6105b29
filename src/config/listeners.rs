//! `[[listeners]]`: every socket the broker accepts clients on, each with its protocol
//! and its security, as Kafka's `listeners` and `listener.security.protocol.map` name
//! them; `[tls]` and `[sasl]`, the settings the secured listeners share; and
//! `[authorization]`, whether ACLs are enforced.

use serde::{Deserialize, Serialize};

/// The protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListenerProtocol {
    /// Strand's own protocol (`protocol/SPEC.md`): `strand-client`, the CLI, the bench.
    Native,
    /// The Kafka protocol, for every Kafka client, tool and connector.
    Kafka,
}

/// How a listener protects its connections: Kafka's `security.protocol` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    /// Neither encrypted nor authenticated (Kafka's PLAINTEXT).
    Plaintext,
    /// TLS; clients are authenticated only by a client certificate, when
    /// `tls.client_auth` asks for one (Kafka's SSL).
    Tls,
    /// SASL authentication without encryption (Kafka's SASL_PLAINTEXT).
    SaslPlaintext,
    /// SASL authentication over TLS (Kafka's SASL_SSL).
    SaslTls,
}

impl Security {
    /// Whether connections are TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, Security::Tls | Security::SaslTls)
    }

    /// Whether a client must authenticate with SASL before anything else.
    pub fn is_sasl(self) -> bool {
        matches!(self, Security::SaslPlaintext | Security::SaslTls)
    }

    /// Kafka's name for it.
    pub fn kafka_name(self) -> &'static str {
        match self {
            Security::Plaintext => "PLAINTEXT",
            Security::Tls => "SSL",
            Security::SaslPlaintext => "SASL_PLAINTEXT",
            Security::SaslTls => "SASL_SSL",
        }
    }
}

/// One listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Its name, in logs, metrics and the ready line: letters, digits, `-` and `_`.
    pub name: String,
    pub protocol: ListenerProtocol,
    /// Address to bind; 127.0.0.1 serves this host only.
    #[serde(default = "loopback")]
    pub address: String,
    /// The port every shard accepts on (SO_REUSEPORT). A native listener's shard `s`
    /// also listens on `port + 1 + s`. 0: the kernel chooses (the ready line names it).
    pub port: u16,
    #[serde(default = "plaintext")]
    pub security: Security,
    /// The host clients are told to connect to (Kafka's `advertised.listeners`); empty:
    /// `address`. Kafka listeners only.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub advertised_host: String,
    /// The port clients are told to connect to; 0: the port bound. Kafka listeners only.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub advertised_port: u16,
    /// This listener's client certificates, over `tls.client_auth` (Kafka's
    /// `listener.name.NAME.ssl.client.auth`): `"none"`, `"requested"` or `"required"`.
    /// TLS listeners only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_auth: Option<ClientAuth>,
}

fn loopback() -> String {
    "127.0.0.1".into()
}

fn plaintext() -> Security {
    Security::Plaintext
}

fn is_zero(port: &u16) -> bool {
    *port == 0
}

impl ListenerConfig {
    /// A plaintext listener of `protocol` on 127.0.0.1:`port`.
    pub fn loopback(name: &str, protocol: ListenerProtocol, port: u16) -> ListenerConfig {
        ListenerConfig {
            name: name.into(),
            protocol,
            address: loopback(),
            port,
            security: Security::Plaintext,
            advertised_host: String::new(),
            advertised_port: 0,
            client_auth: None,
        }
    }

    /// What it asks of client certificates: its own setting, else `tls.client_auth`.
    pub fn client_auth(&self, tls: &TlsConfig) -> ClientAuth {
        self.client_auth.unwrap_or(tls.client_auth)
    }

    /// Whether it accepts clients that have not proven who they are: no SASL, and no
    /// client certificate required.
    pub fn is_open(&self, tls: &TlsConfig) -> bool {
        match self.security {
            Security::Plaintext => true,
            Security::Tls => self.client_auth(tls) != ClientAuth::Required,
            Security::SaslPlaintext | Security::SaslTls => false,
        }
    }
}

/// The embedded default: the native protocol on 127.0.0.1:9400 and Kafka on
/// 127.0.0.1:9092, both plaintext.
pub fn default_listeners() -> Vec<ListenerConfig> {
    vec![
        ListenerConfig::loopback("native", ListenerProtocol::Native, 9400),
        ListenerConfig::loopback("kafka", ListenerProtocol::Kafka, 9092),
    ]
}

/// Whether a TLS client must present a certificate (Kafka's `ssl.client.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// No certificate is asked for.
    None,
    /// One is asked for; a client without one still connects (its principal then
    /// comes from SASL, or it is anonymous).
    Requested,
    /// A client without a valid certificate is refused in the handshake.
    Required,
}

/// The certificate and key of every TLS listener, and how client certificates are
/// checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the broker's certificate chain, its own certificate first. Read at
    /// start and again on SIGHUP.
    pub cert_file: String,
    /// PEM file of the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// PEM file of the certificate authorities client certificates must chain to.
    pub client_ca_file: String,
    pub client_auth: ClientAuth,
    /// How a client certificate's subject (RFC 2253, `CN=app,OU=eng,O=Acme`) becomes a
    /// principal's name: Kafka's `ssl.principal.mapping.rules`, tried in order, the
    /// first that matches wins: `RULE:pattern/replacement/` (optionally `L` or `U`
    /// after the last `/`, to lower- or upper-case), or `DEFAULT` (the whole subject).
    pub principal_mapping_rules: Vec<String>,
    /// A TLS handshake must finish within this long of the connection's accept.
    pub handshake_timeout_ms: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert_file: String::new(),
            key_file: String::new(),
            client_ca_file: String::new(),
            client_auth: ClientAuth::None,
            principal_mapping_rules: vec!["DEFAULT".into()],
            handshake_timeout_ms: 10_000,
        }
    }
}

/// SASL on the listeners whose security is `sasl_plaintext` or `sasl_tls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SaslConfig {
    /// The mechanisms offered (Kafka's `sasl.enabled.mechanisms`): `SCRAM-SHA-256`,
    /// `SCRAM-SHA-512`, `PLAIN`. Every one checks the users' SCRAM credentials.
    pub mechanisms: Vec<String>,
    /// How long an authentication holds (Kafka's `connections.max.reauth.ms`): a
    /// client that does not authenticate again within it has its connection closed at
    /// its next request. 0: for the connection's life.
    pub session_lifetime_ms: u64,
    /// The first delay before a failed authentication is answered (Kafka's
    /// `connection.failed.authentication.delay.ms`); it doubles with each failure in a
    /// row from the same address, up to `failure_delay_max_ms`.
    pub failure_delay_ms: u64,
    pub failure_delay_max_ms: u64,
}

impl Default for SaslConfig {
    fn default() -> Self {
        SaslConfig {
            mechanisms: vec!["SCRAM-SHA-256".into(), "SCRAM-SHA-512".into(), "PLAIN".into()],
            session_lifetime_ms: 0,
            failure_delay_ms: 100,
            failure_delay_max_ms: 5_000,
        }
    }
}

/// ACLs (`strand acl`, Kafka's CreateAcls): enforced only when enabled, as Kafka
/// enforces them only with an authorizer configured.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthorizationConfig {
    /// Check every request against the ACLs (Kafka's `authorizer.class.name`).
    pub enabled: bool,
    /// Principals allowed everything (Kafka's `super.users`): `User:name`.
    pub super_users: Vec<String>,
    /// A resource without any ACL is open to everyone (Kafka's
    /// `allow.everyone.if.no.acl.found`).
    pub allow_everyone_if_no_acl_found: bool,
}

/// The SASL mechanisms the broker knows.
pub const SASL_MECHANISMS: [&str; 3] = ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"];

/// Checks the listeners against each other and the TLS and SASL settings; the message
/// names the key in full.
pub fn validate(
    listeners: &[ListenerConfig],
    tls: &TlsConfig,
    sasl: &SaslConfig,
    authorization: &AuthorizationConfig,
    shards: u32,
) -> Result<(), String> {
    if !listeners.iter().any(|l| l.protocol == ListenerProtocol::Native) {
        return Err("listeners: at least one listener must have protocol = \"native\" (the strand CLI administers the broker through it; bind it to 127.0.0.1 to keep it on this host)".into());
    }
    for (i, listener) in listeners.iter().enumerate() {
        let key = format!("listeners[{i}]");
        let name = &listener.name;
        if name.is_empty()
            || name.len() > 64
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!("{key}.name = {name:?}: 1 to 64 letters, digits, '-' or '_'"));
        }
        if listeners[..i].iter().any(|other| &other.name == name) {
            return Err(format!("{key}.name = {name:?}: another listener has this name"));
        }
        if listener.address.parse::<std::net::IpAddr>().is_err() {
            return Err(format!("{key}.address = {:?}: must be an IP address such as \"127.0.0.1\"", listener.address));
        }
        if listener.protocol == ListenerProtocol::Native {
            if u32::from(listener.port) + 1 + shards > 65_535 {
                return Err(format!(
                    "{key}.port = {}: must be at most {} so that every shard's port (port + 1 + shard) fits",
                    listener.port,
                    65_534 - shards
                ));
            }
            if !listener.advertised_host.is_empty() || listener.advertised_port != 0 {
                return Err(format!("{key}: advertised_host and advertised_port are for Kafka listeners (native clients are told each shard's port on the address they connected to)"));
            }
        }
        if listener.client_auth.is_some() && !listener.security.is_tls() {
            return Err(format!(
                "{key}.client_auth: client certificates need TLS, and this listener's security is \"{}\"",
                security_name(listener.security)
            ));
        }
        if listener.security.is_tls() && listener.client_auth(tls) != ClientAuth::None && tls.client_ca_file.is_empty()
        {
            return Err(format!("{key}: client certificates are checked against tls.client_ca_file, which is empty"));
        }
        if listener.security.is_tls() && (tls.cert_file.is_empty() || tls.key_file.is_empty()) {
            return Err(format!(
                "{key}.security = \"{}\": needs tls.cert_file and tls.key_file",
                security_name(listener.security)
            ));
        }
    }
    if tls.client_auth != ClientAuth::None && tls.client_ca_file.is_empty() {
        return Err(
            "tls.client_auth: client certificates are checked against tls.client_ca_file, which is empty".into()
        );
    }
    if tls.handshake_timeout_ms < 100 {
        return Err(format!("tls.handshake_timeout_ms = {}: must be at least 100", tls.handshake_timeout_ms));
    }
    if let Err(message) = crate::auth::principal::MappingRules::parse(&tls.principal_mapping_rules) {
        return Err(format!("tls.principal_mapping_rules: {message}"));
    }
    if sasl.mechanisms.is_empty() && listeners.iter().any(|l| l.security.is_sasl()) {
        return Err("sasl.mechanisms = []: a SASL listener needs at least one mechanism".into());
    }
    for mechanism in &sasl.mechanisms {
        if !SASL_MECHANISMS.contains(&mechanism.as_str()) {
            return Err(format!("sasl.mechanisms: {mechanism:?} is not one of {SASL_MECHANISMS:?}"));
        }
    }
    if sasl.session_lifetime_ms != 0 && sasl.session_lifetime_ms < 1_000 {
        return Err(format!("sasl.session_lifetime_ms = {}: must be 0 or at least 1000", sasl.session_lifetime_ms));
    }
    if let Some(bad) =
        authorization.super_users.iter().find(|user| user.strip_prefix("User:").is_none_or(str::is_empty))
    {
        return Err(format!("authorization.super_users: {bad:?} is not User:name"));
    }
    if sasl.failure_delay_max_ms < sasl.failure_delay_ms || sasl.failure_delay_max_ms > 60_000 {
        return Err(format!(
            "sasl.failure_delay_max_ms = {}: must be at least sasl.failure_delay_ms ({}) and at most 60000",
            sasl.failure_delay_max_ms, sasl.failure_delay_ms
        ));
    }
    Ok(())
}

/// A security setting as the file spells it.
pub fn security_name(security: Security) -> &'static str {
    match security {
        Security::Plaintext => "plaintext",
        Security::Tls => "tls",
        Security::SaslPlaintext => "sasl_plaintext",
        Security::SaslTls => "sasl_tls",
    }
}
