//! TLS for a spawned broker (`strand-bench run --tls`): a CA made for the run (rcgen),
//! a certificate for `localhost` and 127.0.0.1 it signs, the broker's configuration
//! given a Kafka listener with `security = "tls"` (the native listener stays plaintext,
//! for the run's setup), and the client settings that trust the CA.

use std::path::Path;
use std::sync::Arc;

/// Writes the run's certificates under `dir`, points `config` (the broker's
/// `strand.toml`) at them, and returns the clients' TLS settings.
pub fn secure(dir: &Path, config: &mut toml::Table) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    std::fs::create_dir_all(dir)?;
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "strand-bench CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca_certificate = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    params.distinguished_name.push(DnType::CommonName, "localhost");
    let certificate = params.signed_by(&key, &issuer)?;
    let (cert_file, key_file) = (dir.join("broker.pem"), dir.join("broker.key"));
    std::fs::write(&cert_file, certificate.pem())?;
    std::fs::write(&key_file, key.serialize_pem())?;

    let listener = |name: &str, protocol: &str, security: &str| {
        let mut table = toml::Table::new();
        table.insert("name".into(), name.into());
        table.insert("protocol".into(), protocol.into());
        table.insert("port".into(), toml::Value::Integer(0));
        table.insert("security".into(), security.into());
        toml::Value::Table(table)
    };
    config.insert(
        "listeners".into(),
        toml::Value::Array(vec![listener("native", "native", "plaintext"), listener("kafka", "kafka", "tls")]),
    );
    let mut tls = toml::Table::new();
    tls.insert("cert_file".into(), cert_file.display().to_string().into());
    tls.insert("key_file".into(), key_file.display().to_string().into());
    config.insert("tls".into(), toml::Value::Table(tls));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_certificate.der().clone())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(client))
}
