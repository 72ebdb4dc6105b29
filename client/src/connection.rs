//! One TCP connection to one broker port, shared by every caller: requests are
//! written under a lock, and a reader thread matches responses to callers by
//! correlation id, so any number of requests can be in flight at once.
//!
//! Callers get either a future (`ResponseFuture`, runtime-agnostic: it is woken from
//! the reader thread, so it works under tokio, any other executor, or `block_on`) or
//! a callback run on the reader thread (the producer's path, which needs no task per
//! request).

use crate::error::{ClientError, Result};
use bytes::BytesMut;
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
use strand_protocol::native::messages::ProduceRequest;
use strand_protocol::native::{split_frame, ErrorFrame, Limits, Request, Response};

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

/// A connection to one broker port.
pub struct Connection {
    address: SocketAddr,
    writer: Mutex<TcpStream>,
    pending: Arc<Mutex<Pending>>,
    next_id: AtomicU32,
}

impl Connection {
    /// Connects, waiting at most `timeout`.
    pub fn connect(address: SocketAddr, timeout: Duration) -> Result<Arc<Connection>> {
        let stream = TcpStream::connect_timeout(&address, timeout)
            .map_err(|e| ClientError::Connect { address: address.to_string(), reason: e.to_string() })?;
        let _ = stream.set_nodelay(true);
        let read_half = stream
            .try_clone()
            .map_err(|e| ClientError::Connect { address: address.to_string(), reason: e.to_string() })?;
        let _ = read_half.set_read_timeout(Some(DEADLINE_TICK));
        let pending = Arc::new(Mutex::new(Pending { waiters: HashMap::new(), broken: None }));
        let reader_pending = pending.clone();
        std::thread::Builder::new()
            .name(format!("strand-conn-{address}"))
            .spawn(move || read_loop(read_half, address, reader_pending))
            .map_err(|e| ClientError::Connect { address: address.to_string(), reason: e.to_string() })?;
        Ok(Arc::new(Connection { address, writer: Mutex::new(stream), pending, next_id: AtomicU32::new(1) }))
    }

    /// Whether the connection has failed (a new one is needed).
    pub fn is_broken(&self) -> bool {
        lock(&self.pending).broken.is_some()
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
        let mut slices: Vec<IoSlice<'_>> = pieces.iter().map(|p| IoSlice::new(p)).collect();
        let mut slices = &mut slices[..];
        let mut writer = lock(&self.writer);
        while !slices.is_empty() {
            match writer.write_vectored(slices) {
                Ok(0) => return Err(self.disconnected(&mut writer, "the socket accepts no more bytes".into())),
                Ok(n) => IoSlice::advance_slices(&mut slices, n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.disconnected(&mut writer, e.to_string())),
            }
        }
        Ok(())
    }

    fn disconnected(&self, writer: &mut TcpStream, reason: String) -> ClientError {
        let _ = writer.shutdown(Shutdown::Both);
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
        if let Err(error) = self.write(&frame) {
            fail_all(&self.pending, error);
        }
    }

    fn write(&self, frame: &[u8]) -> Result<()> {
        let mut writer = lock(&self.writer);
        writer.write_all(frame).map_err(|e| self.disconnected(&mut writer, e.to_string()))
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // The reader thread sees the shutdown, fails what is pending and exits. It is
        // not joined: the last reference may be dropped on that very thread (by a
        // callback it runs).
        let _ = lock(&self.writer).shutdown(Shutdown::Both);
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

fn read_loop(mut stream: TcpStream, address: SocketAddr, pending: Arc<Mutex<Pending>>) {
    let limits = Limits { frame_bytes_max: usize::MAX / 2, array_count_max: usize::MAX / 2 };
    let mut buf = BytesMut::with_capacity(READ_BYTES);
    let mut last_tick = Instant::now();
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
        // Room for the rest of the frame being assembled, at once: growing a large
        // response read by read would copy it over and over.
        if let Ok(Some(header)) = strand_protocol::native::FrameHeader::parse(&buf, &limits) {
            let missing = header.frame_bytes().saturating_sub(buf.len());
            buf.reserve(missing.clamp(READ_BYTES, FRAME_RESERVE_BYTES_MAX));
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
