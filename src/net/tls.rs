//! TLS (rustls, TLS 1.2 and 1.3 only) as a `Transport`: the handshake, bounded in
//! time, right after the accept; then the reading and writing halves share one
//! `rustls::ServerConnection`, each over its own descriptor of the socket, as `Tcp`'s
//! halves do. The connection is borrowed only between awaits, never across one, so
//! the halves proceed independently on the shard's thread.
//!
//! Bounds: rustls holds at most one record (16 KiB) of ciphertext being assembled and
//! the plaintext of what it decrypted, which the reader drains before it reads more
//! from the socket; the writer encrypts a response in records of `RECORD_BYTES` and
//! sends them in batches of at most `SEND_BYTES_MAX`. A handshake that does not finish
//! within `tls.handshake_timeout_ms` (a client that connects and sends nothing, or
//! garbage, or a plaintext request) closes the connection with the reason logged.
//!
//! What TLS costs: every byte is copied once more (rustls's plaintext into the receive
//! buffer on the way in; the response into records on the way out) and encrypted with
//! AES-GCM or ChaCha20-Poly1305, a few GB/s per core with AES-NI. A fetch's stored
//! chunks are encrypted from the cache or the direct-read buffer where they lie, but
//! are no longer sent without a copy (`bench/RESULTS.md` measures both).
//!
//! Post-handshake messages that ask for an answer (a TLS 1.3 KeyUpdate asking for
//! ours) queue it in the connection; the writer sends it with its next response.
//!
//! The certificate and key are read at start and again on SIGHUP (`TlsAcceptor::reload`):
//! handshakes from then on use the new ones; connections already open keep theirs.

use super::transport::{Transport, TransportRead, TransportWrite};
use crate::auth::principal::MappingRules;
use crate::config::{ClientAuth, TlsConfig};
use bytes::BytesMut;
use futures_lite::io::AsyncWriteExt;
use glommio::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConnection;
use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::rc::Rc;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Plaintext encrypted per record (TLS's largest).
const RECORD_BYTES: usize = 16 * 1024;
/// Ciphertext gathered before one send.
const SEND_BYTES_MAX: usize = 256 * 1024;

/// The TLS settings every shard's TLS listeners use, replaced on SIGHUP: one rustls
/// configuration for each way of asking for client certificates (a listener may set
/// its own over `tls.client_auth`); those that check them only when
/// `tls.client_ca_file` is set.
pub struct TlsAcceptor {
    settings: TlsConfig,
    configs: RwLock<Configs>,
    mapping: MappingRules,
}

/// The configurations, by `ClientAuth`.
struct Configs {
    none: Arc<rustls::ServerConfig>,
    requested: Option<Arc<rustls::ServerConfig>>,
    required: Option<Arc<rustls::ServerConfig>>,
}

impl Configs {
    fn read(settings: &TlsConfig) -> Result<Configs, String> {
        let with = |client_auth| server_config(&TlsConfig { client_auth, ..settings.clone() }).map(Arc::new);
        let checks = !settings.client_ca_file.is_empty();
        Ok(Configs {
            none: with(ClientAuth::None)?,
            requested: checks.then(|| with(ClientAuth::Requested)).transpose()?,
            required: checks.then(|| with(ClientAuth::Required)).transpose()?,
        })
    }
}

impl TlsAcceptor {
    /// Reads the certificate, the key and the client CAs that `settings` names.
    pub fn new(settings: &TlsConfig) -> Result<TlsAcceptor, String> {
        let mapping = MappingRules::parse(&settings.principal_mapping_rules)?;
        let configs = RwLock::new(Configs::read(settings)?);
        Ok(TlsAcceptor { settings: settings.clone(), configs, mapping })
    }

    /// Reads the files again (SIGHUP): new handshakes use them. A file that cannot be
    /// read, or a key that does not fit the certificate, keeps the running ones.
    pub fn reload(&self) -> Result<(), String> {
        let fresh = Configs::read(&self.settings)?;
        *self.configs.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    /// The current configuration for a listener that asks `client_auth` of clients.
    /// Configuration checks make sure one that checks certificates has its CAs.
    fn current(&self, client_auth: ClientAuth) -> Result<Arc<rustls::ServerConfig>, String> {
        let configs = self.configs.read().unwrap_or_else(|p| p.into_inner());
        let config = match client_auth {
            ClientAuth::None => Some(&configs.none),
            ClientAuth::Requested => configs.requested.as_ref(),
            ClientAuth::Required => configs.required.as_ref(),
        };
        config.cloned().ok_or_else(|| "client certificates are asked for, but tls.client_ca_file is empty".into())
    }

    /// The current settings without client certificates (the admin endpoint's).
    pub fn current_without_client_auth(&self) -> Arc<rustls::ServerConfig> {
        self.configs.read().unwrap_or_else(|p| p.into_inner()).none.clone()
    }

    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.handshake_timeout_ms)
    }
}

/// A rustls server configuration from the files `settings` names.
fn server_config(settings: &TlsConfig) -> Result<rustls::ServerConfig, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&settings.cert_file)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|error| format!("tls.cert_file {:?}: {error}", settings.cert_file))?;
    if chain.is_empty() {
        return Err(format!("tls.cert_file {:?}: no certificate in it", settings.cert_file));
    }
    let key = PrivateKeyDer::from_pem_file(&settings.key_file)
        .map_err(|error| format!("tls.key_file {:?}: {error}", settings.key_file))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|error| format!("tls: {error}"))?;
    let builder = match settings.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Requested | ClientAuth::Required => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in CertificateDer::pem_file_iter(&settings.client_ca_file)
                .map_err(|error| format!("tls.client_ca_file {:?}: {error}", settings.client_ca_file))?
            {
                let ca = ca.map_err(|error| format!("tls.client_ca_file {:?}: {error}", settings.client_ca_file))?;
                roots.add(ca).map_err(|error| format!("tls.client_ca_file {:?}: {error}", settings.client_ca_file))?;
            }
            if roots.is_empty() {
                return Err(format!("tls.client_ca_file {:?}: no certificate in it", settings.client_ca_file));
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier =
                if settings.client_auth == ClientAuth::Requested { verifier.allow_unauthenticated() } else { verifier };
            builder.with_client_cert_verifier(verifier.build().map_err(|error| format!("tls.client_ca_file: {error}"))?)
        }
    };
    builder.with_single_cert(chain, key).map_err(|error| {
        format!("tls.key_file {:?} with tls.cert_file {:?}: {error}", settings.key_file, settings.cert_file)
    })
}

/// A connection whose handshake finished.
pub struct Tls {
    stream: TcpStream,
    connection: rustls::Connection,
    /// The name the client certificate's subject maps to, when it sent one.
    principal: Option<String>,
}

impl Tls {
    /// The name the client's certificate maps to, when it presented one.
    pub fn principal(&self) -> Option<&str> {
        self.principal.as_deref()
    }
}

/// Runs the server's side of the handshake on `stream`, within the acceptor's
/// handshake timeout. `Err` is the reason, to log; the connection is then dropped.
pub async fn handshake(stream: TcpStream, acceptor: &TlsAcceptor, client_auth: ClientAuth) -> Result<Tls, String> {
    let server = ServerConnection::new(acceptor.current(client_auth)?).map_err(|error| format!("TLS: {error}"))?;
    let mut connection = rustls::Connection::Server(server);
    let mut stream = stream;
    drive_handshake(&mut connection, &mut stream, acceptor.handshake_timeout()).await?;
    let principal = match connection.peer_certificates().and_then(|chain| chain.first()) {
        None => None,
        Some(certificate) => {
            let subject = crate::auth::principal::subject_of(certificate)
                .ok_or("the client certificate's subject cannot be read")?;
            let name = acceptor.mapping.map(&subject).ok_or_else(|| {
                format!("no tls.principal_mapping_rules rule matches the client certificate's subject {subject:?}")
            })?;
            Some(name)
        }
    };
    Ok(Tls { stream, connection, principal })
}

/// A client's side of TLS on `stream` (the benchmark's, and tests'): the handshake
/// with `server_name`, within `timeout`.
pub async fn connect(
    stream: TcpStream,
    config: Arc<rustls::ClientConfig>,
    server_name: rustls::pki_types::ServerName<'static>,
    timeout: Duration,
) -> Result<Tls, String> {
    let client = rustls::ClientConnection::new(config, server_name).map_err(|error| format!("TLS: {error}"))?;
    let mut connection = rustls::Connection::Client(client);
    let mut stream = stream;
    drive_handshake(&mut connection, &mut stream, timeout).await?;
    Ok(Tls { stream, connection, principal: None })
}

/// Exchanges handshake messages until the handshake is done or `timeout` passes.
async fn drive_handshake(
    connection: &mut rustls::Connection,
    stream: &mut TcpStream,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let late = || format!("TLS handshake not finished within {} ms", timeout.as_millis());
    while connection.is_handshaking() {
        flush(connection, stream, &mut out).await.map_err(|error| format!("TLS handshake: {error}"))?;
        if !connection.wants_read() {
            continue;
        }
        let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|left| !left.is_zero()) else {
            return Err(late());
        };
        match read_tls(connection, stream, left).await {
            Ok(0) => return Err("the peer closed the connection during the TLS handshake".into()),
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => return Err(late()),
            Err(error) => return Err(format!("TLS handshake: {error}")),
        }
        if let Err(error) = connection.process_new_packets() {
            // The alert rustls queued tells the peer why.
            let _ = flush(connection, stream, &mut out).await;
            return Err(format!("TLS handshake failed: {error}"));
        }
    }
    // Session tickets and the like, queued as the handshake ended.
    flush(connection, stream, &mut out).await.map_err(|error| format!("TLS handshake: {error}"))
}

/// Sends what the connection has queued.
async fn flush(connection: &mut rustls::Connection, stream: &mut TcpStream, out: &mut Vec<u8>) -> std::io::Result<()> {
    while connection.wants_write() {
        connection.write_tls(out)?;
    }
    if !out.is_empty() {
        let result = AsyncWriteExt::write_all(stream, out).await;
        out.clear();
        result?;
    }
    Ok(())
}

/// The socket as a non-blocking `Read` for rustls: `WouldBlock` when nothing is there.
struct Socket(RawFd);

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // SAFETY: recv writes at most `buf.len()` bytes into `buf`, which is ours.
        let received = unsafe { libc::recv(self.0, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if received < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(received as usize)
    }
}

/// Reads ciphertext into the connection, waiting at most `wait` for some: the bytes
/// read, 0 when the peer closed.
async fn read_tls(connection: &mut rustls::Connection, stream: &TcpStream, wait: Duration) -> std::io::Result<usize> {
    loop {
        match connection.read_tls(&mut Socket(stream.as_raw_fd())) {
            Ok(read) => return Ok(read),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                super::transport::wait_readable(stream, wait).await?;
            }
            Err(error) => return Err(error),
        }
    }
}

impl Transport for Tls {
    type Read = TlsRead;
    type Write = TlsWrite;

    fn peer(&self) -> String {
        self.stream.peer_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into())
    }

    fn peer_ip(&self) -> Option<std::net::IpAddr> {
        self.stream.peer_addr().ok().map(|a| a.ip().to_canonical())
    }

    fn certificate_principal(&self) -> Option<String> {
        self.principal.clone()
    }

    fn split(self) -> std::io::Result<(TlsRead, TlsWrite)> {
        let _ = self.stream.set_nodelay(true);
        // SAFETY: as in `Tcp::split`: a second descriptor of the same socket, owned
        // and closed by the writer's TcpStream.
        let write_fd = unsafe { libc::dup(self.stream.as_raw_fd()) };
        if write_fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let writer = unsafe { TcpStream::from_raw_fd(write_fd) };
        let connection = Rc::new(RefCell::new(self.connection));
        Ok((
            TlsRead { stream: self.stream, connection: connection.clone() },
            TlsWrite { stream: writer, connection, out: Vec::with_capacity(SEND_BYTES_MAX + RECORD_BYTES) },
        ))
    }
}

/// The reading half: decrypted bytes into the receive buffer.
pub struct TlsRead {
    stream: TcpStream,
    connection: Rc<RefCell<rustls::Connection>>,
}

/// The writing half: responses encrypted into records and sent.
pub struct TlsWrite {
    stream: TcpStream,
    connection: Rc<RefCell<rustls::Connection>>,
    out: Vec<u8>,
}

impl TransportRead for TlsRead {
    async fn read_into(&mut self, buf: &mut BytesMut, want: usize, wait: Duration) -> std::io::Result<usize> {
        loop {
            {
                let mut connection = self.connection.borrow_mut();
                let state = connection
                    .process_new_packets()
                    .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("TLS: {error}")))?;
                let available = state.plaintext_bytes_to_read().min(want);
                if available > 0 {
                    let filled = buf.len();
                    buf.resize(filled + available, 0);
                    let read = connection.reader().read(&mut buf[filled..])?;
                    buf.truncate(filled + read);
                    return Ok(read);
                }
                if state.peer_has_closed() {
                    return Ok(0);
                }
                match connection.read_tls(&mut Socket(self.stream.as_raw_fd())) {
                    Ok(0) => return Ok(0),
                    Ok(_) => continue,
                    Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(error) => return Err(error),
                }
            }
            super::transport::wait_readable(&self.stream, wait).await?;
        }
    }
}

impl TlsWrite {
    /// Sends the ciphertext gathered.
    async fn send(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let result = AsyncWriteExt::write_all(&mut self.stream, &self.out).await;
        self.out.clear();
        result
    }

    /// Moves what the connection has encrypted into `out`.
    fn gather(&mut self) -> std::io::Result<()> {
        let mut connection = self.connection.borrow_mut();
        while connection.wants_write() {
            connection.write_tls(&mut self.out)?;
        }
        Ok(())
    }
}

impl TlsWrite {
    /// Encrypts and sends `pieces` back to back, in as few sends as their size allows.
    pub async fn write_pieces(&mut self, pieces: &[&[u8]]) -> std::io::Result<()> {
        for piece in pieces {
            self.encrypt(piece).await?;
        }
        self.send().await
    }

    async fn encrypt(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        for record in bytes.chunks(RECORD_BYTES) {
            self.connection.borrow_mut().writer().write_all(record)?;
            self.gather()?;
            if self.out.len() >= SEND_BYTES_MAX {
                self.send().await?;
            }
        }
        Ok(())
    }
}

impl TransportWrite for TlsWrite {
    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.encrypt(bytes).await?;
        self.send().await
    }

    async fn shutdown(&mut self, both: bool) {
        self.connection.borrow_mut().send_close_notify();
        if self.gather().is_ok() {
            let _ = self.send().await;
        }
        let how = if both { std::net::Shutdown::Both } else { std::net::Shutdown::Write };
        let _ = TcpStream::shutdown(&self.stream, how).await;
    }
}
