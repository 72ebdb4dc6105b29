//! How a client proves itself and protects its bytes: TLS (rustls, TLS 1.2 and 1.3,
//! the broker's certificate checked against the CA given, an optional client
//! certificate for a broker that asks for one) and SCRAM credentials for a listener
//! that authenticates with SASL (`protocol/SPEC.md`, Authenticate).
//!
//! A TLS connection is shared by the writers and the reader thread: rustls's state
//! sits behind a lock that is held only to encrypt or decrypt, never across a socket
//! write or read, so a writer blocked on a full socket never stops the reader from
//! draining responses.

use crate::error::{ClientError, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
pub use strand_protocol::scram::ScramMechanism;

/// TLS settings of a client.
#[derive(Debug, Clone, Default)]
pub struct TlsConfig {
    /// PEM file of the certificate authorities to trust for the broker's certificate.
    pub ca_file: PathBuf,
    /// The client's certificate chain and key (PEM), for a listener with
    /// `tls.client_auth = "required"` or `"requested"`.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// The name the broker's certificate must carry; by default the host of the
    /// bootstrap address (a DNS name or an IP address).
    pub server_name: Option<String>,
}

/// A user's SCRAM credentials, for a listener whose security is `sasl_plaintext` or
/// `sasl_tls`. The password is never printed.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    pub password: String,
    pub mechanism: ScramMechanism,
}

impl Credentials {
    /// SCRAM-SHA-512 credentials.
    pub fn scram_sha512(user: &str, password: &str) -> Credentials {
        Credentials { user: user.into(), password: password.into(), mechanism: ScramMechanism::Sha512 }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .field("mechanism", &self.mechanism.name())
            .finish()
    }
}

/// A client's TLS, ready for its connections: the rustls configuration and the name
/// checked.
#[derive(Clone)]
pub(crate) struct TlsClient {
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
}

impl TlsClient {
    /// Reads the files of `settings`; `host` is the bootstrap's host.
    pub(crate) fn new(settings: &TlsConfig, host: &str) -> Result<TlsClient> {
        let invalid = |what: String| ClientError::Invalid(format!("TLS: {what}"));
        let mut roots = rustls::RootCertStore::empty();
        let cas = CertificateDer::pem_file_iter(&settings.ca_file)
            .map_err(|e| invalid(format!("cannot read ca_file {}: {e}", settings.ca_file.display())))?;
        for ca in cas {
            let ca = ca.map_err(|e| invalid(format!("ca_file {}: {e}", settings.ca_file.display())))?;
            roots.add(ca).map_err(|e| invalid(format!("ca_file {}: {e}", settings.ca_file.display())))?;
        }
        if roots.is_empty() {
            return Err(invalid(format!("ca_file {} holds no certificate", settings.ca_file.display())));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| invalid(e.to_string()))?
            .with_root_certificates(roots);
        let config = match (&settings.cert_file, &settings.key_file) {
            (Some(cert), Some(key)) => {
                let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                    .and_then(|certs| certs.collect())
                    .map_err(|e| invalid(format!("cert_file {}: {e}", cert.display())))?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| invalid(format!("key_file {}: {e}", key.display())))?;
                builder.with_client_auth_cert(chain, key).map_err(|e| invalid(e.to_string()))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err(invalid("cert_file and key_file go together".into())),
        };
        let name = settings
            .server_name
            .clone()
            .unwrap_or_else(|| host.trim_start_matches('[').trim_end_matches(']').to_string());
        let server_name = ServerName::try_from(name.clone())
            .map_err(|_| invalid(format!("{name:?} is not a DNS name or an IP address")))?;
        Ok(TlsClient { config: Arc::new(config), server_name })
    }

    /// The handshake on `socket`, within `timeout`.
    pub(crate) fn handshake(&self, socket: &mut TcpStream, timeout: Duration) -> std::result::Result<Tls, String> {
        let mut connection = rustls::ClientConnection::new(self.config.clone(), self.server_name.clone())
            .map_err(|e| format!("TLS: {e}"))?;
        let deadline = Instant::now() + timeout;
        while connection.is_handshaking() {
            let left = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero());
            let left = left.ok_or_else(|| format!("TLS handshake not finished within {} ms", timeout.as_millis()))?;
            let _ = socket.set_read_timeout(Some(left));
            let _ = socket.set_write_timeout(Some(left));
            match connection.complete_io(socket) {
                Ok((0, 0)) if connection.is_handshaking() => {
                    return Err("the broker closed the connection during the TLS handshake".into())
                }
                Ok(_) => {}
                Err(e) => return Err(format!("TLS handshake: {e}")),
            }
        }
        let _ = socket.set_write_timeout(None);
        // Writes run whole under the writers' lock; no cap on what is queued.
        connection.set_buffer_limit(None);
        Ok(Tls { connection: Arc::new(Mutex::new(connection)) })
    }
}

/// An established TLS session, shared by a connection's writers and its reader.
#[derive(Clone)]
pub(crate) struct Tls {
    connection: Arc<Mutex<rustls::ClientConnection>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Tls {
    /// Encrypts `pieces` (and whatever rustls has queued, such as an answer to a key
    /// update) into `out`, to be written to the socket in that order. The caller holds
    /// the connection's write lock, so records reach the socket in the order made.
    pub(crate) fn encrypt(&self, pieces: &[&[u8]], out: &mut Vec<u8>) -> std::io::Result<()> {
        let mut connection = lock(&self.connection);
        for piece in pieces {
            connection.writer().write_all(piece)?;
        }
        while connection.wants_write() {
            connection.write_tls(out)?;
        }
        Ok(())
    }

    /// Takes ciphertext read from the socket and appends what it decrypts to into
    /// `plain`. `Ok(false)`: the broker closed the session.
    pub(crate) fn decrypt(&self, mut ciphertext: &[u8], plain: &mut bytes::BytesMut) -> std::io::Result<bool> {
        let mut connection = lock(&self.connection);
        loop {
            if !ciphertext.is_empty() {
                connection.read_tls(&mut ciphertext)?;
            }
            let state = connection
                .process_new_packets()
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("TLS: {e}")))?;
            let available = state.plaintext_bytes_to_read();
            if available > 0 {
                let filled = plain.len();
                plain.resize(filled + available, 0);
                let read = connection.reader().read(&mut plain[filled..])?;
                plain.truncate(filled + read);
            }
            if state.peer_has_closed() {
                return Ok(false);
            }
            if ciphertext.is_empty() {
                return Ok(true);
            }
        }
    }
}
