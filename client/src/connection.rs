//! One TCP connection to one broker port, shared by every caller: requests are
//! written under a lock, and a reader thread matches responses to callers by
//! correlation id, so any number of requests can be in flight at once. Over TLS when
//! the client has TLS settings, and authenticated (SCRAM, the Authenticate request)
//! before any other request when it has credentials.
//!
//! Callers get either a future (`ResponseFuture`, runtime-agnostic: it is woken from
//! the reader thread, so it works under tokio, any other executor, or `block_on`) or
//! a callback run on the reader thread (the producer's path, which needs no task per
//! request).

use crate::error::{ClientError, Result};
use crate::security::{Credentials, Tls, TlsClient};
use bytes::{Bytes, BytesMut};
use futures_channel::oneshot;
use std::collections::HashMap;
use std::future::Future;
use std::io::{IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use strand_protocol::native::messages::{AuthenticateRequest, AuthenticateResponse, ProduceRequest};
use strand_protocol::native::{split_frame, ErrorCode, ErrorFrame, Limits, Request, Response};
use strand_protocol::scram::ScramClient;

/// How often the reader thread looks for requests past their deadline.
const DEADLINE_TICK: Duration = Duration::from_millis(100);
/// Bytes asked of one read.
const READ_BYTES: usize = 256 * 1024;
/// Most the reader reserves ahead for one frame from its header alone.
const FRAME_RESERVE_BYTES_MAX: usize = 256 << 20;

/// Runs on the reader thread with a request's outcome.
pub type Callback = Box<dyn FnOnce(Result<Response>) + Send>;

enum Waiter {
    Future(oneshot::Sender<Result<Response>>),
    Callback(Callback),
}

impl Waiter {
    fn complete(self, result: Result<Response>) {
        match self {
            Waiter::Future(sender) => {
                let _ = sender.send(result);
            }
            Waiter::Callback(callback) => callback(result),
        }
    }
}

struct Pending {
    waiters: HashMap<u32, (Waiter, Instant, u64)>,
    /// Set once the connection is unusable; every later request fails with it.
    broken: Option<ClientError>,
}

/// How a client's connections are secured: TLS, SCRAM credentials, either or both.
#[derive(Clone, Default)]
pub(crate) struct Security {
    pub tls: Option<TlsClient>,
    pub credentials: Option<Credentials>,
    /// The salted password of the last exchange, so that each new connection does not
    /// pay the PBKDF2 again (shared by the client's connections).
    pub salted: Arc<Mutex<Option<strand_protocol::scram::SaltedPassword>>>,
}

/// A new connection is opened this long before the session of an authenticated one
/// runs out, at the least (and a tenth of the session at the most).
const RENEW_BEFORE_MAX: Duration = Duration::from_secs(30);

/// The writing side: the socket, and the TLS session writes are encrypted with.
struct Writer {
    socket: TcpStream,
    tls: Option<Tls>,
    /// Ciphertext on its way to the socket (TLS only), kept for its capacity.
    out: Vec<u8>,
}

/// A connection to one broker port.
pub struct Connection {
    address: SocketAddr,
    writer: Mutex<Writer>,
    pending: Arc<Mutex<Pending>>,
    next_id: AtomicU32,
    /// When requests should move to a new connection: before the SASL session ends.
    renew_at: Mutex<Option<Instant>>,
}

impl Connection {
    /// Connects, waiting at most `timeout` for the connection, the TLS handshake and
    /// the authentication each.
    pub(crate) fn connect(address: SocketAddr, timeout: Duration, security: &Security) -> Result<Arc<Connection>> {
        let failed = |reason: String| ClientError::Connect { address: address.to_string(), reason };
        let mut stream = TcpStream::connect_timeout(&address, timeout).map_err(|e| failed(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let tls = match &security.tls {
            Some(client) => Some(
                client
                    .handshake(&mut stream, timeout)
                    .map_err(|reason| ClientError::Tls { address: address.to_string(), reason })?,
            ),
            None => None,
        };
        let read_half = stream.try_clone().map_err(|e| failed(e.to_string()))?;
        let _ = read_half.set_read_timeout(Some(DEADLINE_TICK));
        let pending = Arc::new(Mutex::new(Pending { waiters: HashMap::new(), broken: None }));
        let (reader_pending, reader_tls) = (pending.clone(), tls.clone());
        std::thread::Builder::new()
            .name(format!("strand-conn-{address}"))
            .spawn(move || read_loop(read_half, reader_tls, address, reader_pending))
            .map_err(|e| failed(e.to_string()))?;
        let connection = Arc::new(Connection {
            address,
            writer: Mutex::new(Writer { socket: stream, tls, out: Vec::new() }),
            pending,
            next_id: AtomicU32::new(1),
            renew_at: Mutex::new(None),
        });
        if let Some(credentials) = &security.credentials {
            connection.authenticate(credentials, &security.salted, timeout)?;
        }
        Ok(connection)
    }

    /// SCRAM over Authenticate (`protocol/SPEC.md`): client-first, client-final, and the
    /// broker's signature checked, so that the broker is known to hold the credential.
    fn authenticate(
        &self,
        credentials: &Credentials,
        salted: &Mutex<Option<strand_protocol::scram::SaltedPassword>>,
        timeout: Duration,
    ) -> Result<()> {
        let refused = |reason: String| ClientError::Authentication { address: self.address.to_string(), reason };
        let mechanism = credentials.mechanism.name().to_string();
        let exchange = |token: Vec<u8>| -> Result<AuthenticateResponse> {
            let request =
                Request::Authenticate(AuthenticateRequest { mechanism: mechanism.clone(), token: Bytes::from(token) });
            match self.call(&request, timeout) {
                Ok(Response::Authenticate(response)) if response.error == ErrorCode::None => Ok(response),
                Ok(Response::Authenticate(response)) => {
                    Err(refused(format!("{:?}: {}", response.error, response.message)))
                }
                Ok(other) => Err(ClientError::Protocol(format!("unexpected {:?} response", other.api_key()))),
                Err(ClientError::Broker { code, message }) => Err(refused(format!("{code:?}: {message}"))),
                Err(error) => Err(error),
            }
        };
        let (client, first) = ScramClient::start(credentials.mechanism, &credentials.user, &credentials.password);
        let server_first = exchange(first)?;
        let mut kept = lock(salted).clone();
        let (last, signature) =
            client.respond_cached(&server_first.token, &mut kept).map_err(|e| refused(e.to_string()))?;
        let server_final = exchange(last)?;
        if server_final.authenticated != 1 {
            return Err(refused("the broker did not complete the exchange after the client's final message".into()));
        }
        ScramClient::verify(&server_final.token, &signature).map_err(|_| {
            refused("the broker's signature does not match: it does not hold this user's credential".into())
        })?;
        // Kept only once the broker has accepted it.
        *lock(salted) = kept;
        if server_final.session_lifetime_ms > 0 {
            let lifetime = Duration::from_millis(server_final.session_lifetime_ms);
            let ahead = (lifetime / 10).min(RENEW_BEFORE_MAX);
            *lock(&self.renew_at) = Some(Instant::now() + lifetime - ahead);
        }
        Ok(())
    }

    /// Sends `request` and blocks the calling thread for its response, without an
    /// executor (a connection may be opened from inside one, for a future's request).
    fn call(&self, request: &Request, timeout: Duration) -> Result<Response> {
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        self.send_with(
            request,
            timeout,
            Waiter::Callback(Box::new(move |result| {
                let _ = sender.send(result);
            })),
        );
        // The reader thread answers every waiter by its deadline, or fails it.
        receiver.recv().unwrap_or(Err(ClientError::Closed))
    }

    /// Whether the connection has failed (a new one is needed).
    pub fn is_broken(&self) -> bool {
        lock(&self.pending).broken.is_some()
    }

    /// Whether new requests may go on this connection: it has not failed, and its
    /// session (if it authenticated) is not about to run out. Requests in flight on a
    /// connection being renewed complete on it.
    pub(crate) fn is_usable(&self) -> bool {
        !self.is_broken() && lock(&self.renew_at).is_none_or(|at| Instant::now() < at)
    }

    /// Sends `request`; the future resolves with its response or an error within
    /// `timeout`.
    pub fn send(&self, request: &Request, timeout: Duration) -> ResponseFuture {
        let (sender, receiver) = oneshot::channel();
        self.send_with(request, timeout, Waiter::Future(sender));
        ResponseFuture { receiver }
    }

    /// Sends a produce request written from its pieces (records are not copied into a
    /// frame buffer); `callback` runs on the reader thread with the outcome, or never
    /// when `acks` is none (then the result of the write is returned).
    pub fn send_produce(&self, request: &ProduceRequest, timeout: Duration, callback: Option<Callback>) -> Result<()> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let pieces = request.encode_pieces(id);
        {
            let mut pending = lock(&self.pending);
            if let Some(error) = pending.broken.clone() {
                drop(pending);
                if let Some(callback) = callback {
                    callback(Err(error.clone()));
                }
                return Err(error);
            }
            if let Some(callback) = callback {
                pending
                    .waiters
                    .insert(id, (Waiter::Callback(callback), Instant::now() + timeout, timeout.as_millis() as u64));
            }
        }
        let result = self.write_pieces(&pieces);
        if let Err(error) = &result {
            fail_all(&self.pending, error.clone());
        }
        result
    }

    fn write_pieces(&self, pieces: &[bytes::Bytes]) -> Result<()> {
        let mut writer = lock(&self.writer);
        let writer = &mut *writer;
        if let Some(tls) = &writer.tls {
            let plain: Vec<&[u8]> = pieces.iter().map(|p| &p[..]).collect();
            let result = tls.encrypt(&plain, &mut writer.out).and_then(|()| writer.socket.write_all(&writer.out));
            writer.out.clear();
            if writer.out.capacity() > 4 * READ_BYTES {
                writer.out = Vec::new();
            }
            return result.map_err(|e| self.disconnected(&writer.socket, e.to_string()));
        }
        let mut slices: Vec<IoSlice<'_>> = pieces.iter().map(|p| IoSlice::new(p)).collect();
        let mut slices = &mut slices[..];
        while !slices.is_empty() {
            match writer.socket.write_vectored(slices) {
                Ok(0) => return Err(self.disconnected(&writer.socket, "the socket accepts no more bytes".into())),
                Ok(n) => IoSlice::advance_slices(&mut slices, n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.disconnected(&writer.socket, e.to_string())),
            }
        }
        Ok(())
    }

    fn disconnected(&self, socket: &TcpStream, reason: String) -> ClientError {
        let _ = socket.shutdown(Shutdown::Both);
        ClientError::Disconnected { address: self.address.to_string(), reason }
    }

    fn send_with(&self, request: &Request, timeout: Duration, waiter: Waiter) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut frame = Vec::new();
        request.encode(id, &mut frame);
        {
            let mut pending = lock(&self.pending);
            if let Some(error) = pending.broken.clone() {
                drop(pending);
                waiter.complete(Err(error));
                return;
            }
            pending.waiters.insert(id, (waiter, Instant::now() + timeout, timeout.as_millis() as u64));
        }
        if let Err(error) = self.write_pieces(&[Bytes::from(frame)]) {
            fail_all(&self.pending, error);
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // The reader thread sees the shutdown, fails what is pending and exits. It is
        // not joined: the last reference may be dropped on that very thread (by a
        // callback it runs).
        let _ = lock(&self.writer).socket.shutdown(Shutdown::Both);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Fails every waiting request, and every later one, with `error`.
fn fail_all(pending: &Mutex<Pending>, error: ClientError) {
    let waiters: Vec<Waiter> = {
        let mut pending = lock(pending);
        pending.broken.get_or_insert(error.clone());
        pending.waiters.drain().map(|(_, (waiter, _, _))| waiter).collect()
    };
    for waiter in waiters {
        waiter.complete(Err(error.clone()));
    }
}

fn read_loop(mut stream: TcpStream, tls: Option<Tls>, address: SocketAddr, pending: Arc<Mutex<Pending>>) {
    let limits = Limits { frame_bytes_max: usize::MAX / 2, array_count_max: usize::MAX / 2 };
    let mut buf = BytesMut::with_capacity(READ_BYTES);
    // Ciphertext as read, before it is decrypted into `buf` (TLS only).
    let mut ciphertext = if tls.is_some() { vec![0u8; READ_BYTES] } else { Vec::new() };
    let mut last_tick = Instant::now();
    let mut closed: Option<String> = None;
    let error = loop {
        if last_tick.elapsed() >= DEADLINE_TICK {
            expire(&pending);
            last_tick = Instant::now();
        }
        loop {
            match split_frame(&mut buf, &limits) {
                Ok(Some((header, payload))) => {
                    let id = header.correlation_id.get();
                    let result = if header.is_error() {
                        match ErrorFrame::decode(&payload, &limits) {
                            Ok(frame) => Err(ClientError::Broker { code: frame.error, message: frame.message }),
                            Err(error) => Err(error.into()),
                        }
                    } else {
                        Response::decode(&header, &payload, &limits).map_err(ClientError::from)
                    };
                    let waiter = lock(&pending).waiters.remove(&id).map(|(waiter, _, _)| waiter);
                    if let Some(waiter) = waiter {
                        waiter.complete(result);
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    let reason = format!("bad frame from the broker: {error}");
                    fail_all(&pending, ClientError::Disconnected { address: address.to_string(), reason });
                    return;
                }
            }
        }
        if let Some(reason) = closed.take() {
            break reason;
        }
        // Room for the rest of the frame being assembled, at once: growing a large
        // response read by read would copy it over and over.
        if let Ok(Some(header)) = strand_protocol::native::FrameHeader::parse(&buf, &limits) {
            let missing = header.frame_bytes().saturating_sub(buf.len());
            buf.reserve(missing.clamp(READ_BYTES, FRAME_RESERVE_BYTES_MAX));
        }
        if let Some(tls) = &tls {
            match stream.read(&mut ciphertext) {
                Ok(0) => break "closed by the broker".to_string(),
                Ok(read) => match tls.decrypt(&ciphertext[..read], &mut buf) {
                    Ok(true) => {}
                    // What came before the close is answered first.
                    Ok(false) => closed = Some("the broker closed the TLS session".to_string()),
                    Err(e) => break e.to_string(),
                },
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => break e.to_string(),
            }
            continue;
        }
        let filled = buf.len();
        buf.resize(filled + READ_BYTES, 0);
        match stream.read(&mut buf[filled..]) {
            Ok(0) => break "closed by the broker".to_string(),
            Ok(read) => buf.truncate(filled + read),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                buf.truncate(filled);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => buf.truncate(filled),
            Err(e) => break e.to_string(),
        }
    };
    fail_all(&pending, ClientError::Disconnected { address: address.to_string(), reason: error });
}

/// Fails requests past their deadline with `Timeout`.
fn expire(pending: &Mutex<Pending>) {
    let now = Instant::now();
    let expired: Vec<(Waiter, u64)> = {
        let mut pending = lock(pending);
        let ids: Vec<u32> =
            pending.waiters.iter().filter(|(_, (_, deadline, _))| *deadline <= now).map(|(&id, _)| id).collect();
        ids.into_iter()
            .filter_map(|id| pending.waiters.remove(&id))
            .map(|(waiter, _, timeout_ms)| (waiter, timeout_ms))
            .collect()
    };
    for (waiter, timeout_ms) in expired {
        waiter.complete(Err(ClientError::Timeout { timeout_ms }));
    }
}

/// A response on its way. Poll it from any executor, or call `wait`.
pub struct ResponseFuture {
    receiver: oneshot::Receiver<Result<Response>>,
}

impl ResponseFuture {
    /// Blocks the calling thread until the response arrives.
    pub fn wait(self) -> Result<Response> {
        futures_executor::block_on(self)
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Response>> {
        match Pin::new(&mut self.receiver).poll(cx) {
            Poll::Ready(Ok(result)) => Poll::Ready(result),
            Poll::Ready(Err(_)) => Poll::Ready(Err(ClientError::Closed)),
            Poll::Pending => Poll::Pending,
        }
    }
}
