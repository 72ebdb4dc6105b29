//! The Kafka admin connection `strand user` and `strand acl` use: one blocking
//! connection to a Kafka listener, over TLS when asked (`--tls-ca`), authenticated with
//! SCRAM when a user is given (`--user`, the password from `STRAND_PASSWORD` or
//! `--password-file`, never from the command line), speaking Kafka's own admin APIs,
//! so that the same commands work against any listener a Kafka tool could use.

use anyhow::{bail, Context};
use kafka_protocol::messages::{
    ApiKey, RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse,
};
use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;
use strand::metadata::ScramMechanism;

/// The environment variable a password is read from.
pub const PASSWORD_ENV: &str = "STRAND_PASSWORD";
/// Largest response taken.
const RESPONSE_BYTES_MAX: usize = 64 << 20;

/// How to reach and authenticate to a Kafka listener.
#[derive(clap::Args, Debug, Clone)]
pub struct KafkaArgs {
    /// The Kafka listener, as HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:9092", value_parser = super::parse_bootstrap)]
    pub bootstrap: String,
    /// Authenticate as this user (SCRAM); the password comes from STRAND_PASSWORD or
    /// --password-file.
    #[arg(long)]
    pub user: Option<String>,
    /// A file whose first line is the password.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// SCRAM-SHA-256 or SCRAM-SHA-512.
    #[arg(long, default_value = "SCRAM-SHA-512")]
    pub mechanism: String,
    /// Connect with TLS, trusting the certificate authorities in this PEM file.
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
}

/// A byte stream to the broker: plain TCP or TLS.
trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

pub struct KafkaAdmin {
    stream: Box<dyn Stream>,
    next_correlation: i32,
}

/// A password: from `file` (its first line), else from `STRAND_PASSWORD`.
pub fn password(file: Option<&PathBuf>, what: &str) -> anyhow::Result<String> {
    if let Some(file) = file {
        let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        return Ok(text.lines().next().unwrap_or_default().to_string());
    }
    std::env::var(PASSWORD_ENV).map_err(|_| anyhow::anyhow!("{what}: set {PASSWORD_ENV} or give --password-file"))
}

pub fn mechanism(name: &str) -> anyhow::Result<ScramMechanism> {
    match name {
        "SCRAM-SHA-256" => Ok(ScramMechanism::Sha256),
        "SCRAM-SHA-512" => Ok(ScramMechanism::Sha512),
        other => bail!("mechanism {other:?}: SCRAM-SHA-256 or SCRAM-SHA-512"),
    }
}

impl KafkaAdmin {
    pub fn connect(args: &KafkaArgs) -> anyhow::Result<KafkaAdmin> {
        let tcp = TcpStream::connect(&args.bootstrap).with_context(|| {
            format!("cannot connect to {} (is it a Kafka listener? set --bootstrap HOST:PORT)", args.bootstrap)
        })?;
        tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = match &args.tls_ca {
            None => Box::new(tcp),
            Some(ca) => Box::new(tls(tcp, &args.bootstrap, ca)?),
        };
        let mut admin = KafkaAdmin { stream, next_correlation: 1 };
        if let Some(user) = &args.user {
            let password = password(args.password_file.as_ref(), "--user")?;
            admin.authenticate(mechanism(&args.mechanism)?, user, &password)?;
        }
        Ok(admin)
    }

    fn authenticate(&mut self, mechanism: ScramMechanism, user: &str, password: &str) -> anyhow::Result<()> {
        use strand::auth::scram::ScramClient;
        let mut handshake = SaslHandshakeRequest::default();
        handshake.mechanism = StrBytes::from_static_str(mechanism.name());
        let answer: SaslHandshakeResponse = self.call(ApiKey::SaslHandshake, 1, &handshake)?;
        if answer.error_code != 0 {
            bail!(
                "the listener does not take {} (error {}; is it a SASL listener?)",
                mechanism.name(),
                answer.error_code
            );
        }
        let (client, first) = ScramClient::start(mechanism, user, password);
        let challenge = self.sasl(first)?;
        let (last, signature) = client.respond(&challenge).map_err(|e| anyhow::anyhow!("SCRAM: {e}"))?;
        let verdict = self.sasl(last)?;
        ScramClient::verify(&verdict, &signature)
            .map_err(|_| anyhow::anyhow!("the broker did not prove it knows the credential"))
    }

    fn sasl(&mut self, message: Vec<u8>) -> anyhow::Result<Vec<u8>> {
        let mut request = SaslAuthenticateRequest::default();
        request.auth_bytes = message.into();
        let answer: SaslAuthenticateResponse = self.call(ApiKey::SaslAuthenticate, 2, &request)?;
        if answer.error_code != 0 {
            let message = answer.error_message.map(|m| m.to_string()).unwrap_or_default();
            bail!("authentication failed: {message}");
        }
        Ok(answer.auth_bytes.to_vec())
    }

    /// Sends `request` and reads its answer.
    pub fn call<R: Encodable, T: Decodable>(&mut self, api: ApiKey, version: i16, request: &R) -> anyhow::Result<T> {
        let correlation = self.next_correlation;
        self.next_correlation += 1;
        let mut header = RequestHeader::default();
        header.request_api_key = api as i16;
        header.request_api_version = version;
        header.correlation_id = correlation;
        header.client_id = Some(StrBytes::from_static_str("strand-cli"));
        let mut body = Vec::new();
        header.encode(&mut body, api.request_header_version(version))?;
        request.encode(&mut body, version)?;
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).context("the broker closed the connection")?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).context("the broker closed the connection (was the request refused?)")?;
        let size = i32::from_be_bytes(size);
        if size < 0 || size as usize > RESPONSE_BYTES_MAX {
            bail!("a response of {size} bytes");
        }
        let mut body = vec![0u8; size as usize];
        self.stream.read_exact(&mut body)?;
        let mut body = bytes::Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, api.response_header_version(version))?;
        if header.correlation_id != correlation {
            bail!("a response to request {} where {correlation} was awaited", header.correlation_id);
        }
        T::decode(&mut body, version)
    }
}

fn tls(
    tcp: TcpStream,
    bootstrap: &str,
    ca: &PathBuf,
) -> anyhow::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in
        rustls::pki_types::CertificateDer::pem_file_iter(ca).with_context(|| format!("--tls-ca {}", ca.display()))?
    {
        roots.add(certificate.with_context(|| format!("--tls-ca {}", ca.display()))?)?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let host = bootstrap.rsplit_once(':').map_or(bootstrap, |(host, _)| host).trim_matches(['[', ']']);
    let name = rustls::pki_types::ServerName::try_from(host.to_string())?;
    let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name)?;
    Ok(rustls::StreamOwned::new(connection, tcp))
}
