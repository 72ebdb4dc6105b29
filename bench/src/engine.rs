//! The load generator: shard-per-core, like the broker it measures.
//!
//! Each generator core runs one pinned glommio executor (a *worker*); producers and
//! consumers are tasks on those executors, dealt round-robin, and speak the native
//! protocol directly over their own sockets: no thread hand-offs, no locks on the data
//! path, so the generator's own latency is one core's scheduling and a socket.
//!
//! - A producer builds Kafka RecordBatch v2 batches per partition (`batch_bytes`,
//!   `linger`), partitions records as the workload says (sticky, or murmur2 of the
//!   key), and pipelines up to `in_flight` Produce requests per broker shard. At a
//!   fixed rate it follows an open-loop [`Schedule`]: each record carries its intended
//!   send time in its first 8 value bytes, and every latency is counted from that time.
//! - A consumer long-polls Fetch requests on each shard holding its partitions,
//!   sending the next fetch before it decodes the records of the last one.
//! - With the null sink (`--dry-run`) producers build and encode every request the
//!   same way and hand it to nothing: the rate they reach is the generator's ceiling.
//!
//! Every wait is bounded: a request without a response for `request_timeout`, a
//! connection refused or closed, or a bad response ends the run with its message, and
//! the caller reports what was measured until then.

use crate::recorder::{Recorder, Schedule};
use crate::workload::{Acks, Keys, Mode};
use bytes::{Bytes, BytesMut};
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strand::net::transport::{Tcp, Transport, TransportRead};
use strand_protocol::native::messages::{
    FetchPartition, FetchRequest, FetchTopic, ProducePartition, ProduceRequest, ProduceTopic, ACKS_DURABLE,
    ACKS_LEADER, ACKS_NONE,
};
use strand_protocol::native::{split_frame, ErrorCode, ErrorFrame, FrameHeader, Limits, Request, Response};
use strand_protocol::{BatchBuilder, BatchHeader, Compression, RecordIter};

/// A partition and the address of the shard that owns it.
#[derive(Debug, Clone)]
pub struct PartitionTarget {
    pub partition: u32,
    pub address: SocketAddr,
}

/// One producer: the partitions of its topic and its share of the target rate.
#[derive(Debug, Clone)]
pub struct ProducerPlan {
    pub id: u32,
    pub topic: String,
    pub partitions: Vec<PartitionTarget>,
    /// 0: as fast as the window allows.
    pub records_per_second: f64,
    /// Stop after this many records (a prefill).
    pub record_limit: Option<u64>,
}

/// One partition a consumer reads, from `start` to `end` (exclusive; `None`: tail it).
#[derive(Debug, Clone)]
pub struct ConsumePartition {
    pub target: PartitionTarget,
    pub start: u64,
    pub end: Option<u64>,
}

/// One consumer: its partitions of one topic.
#[derive(Debug, Clone)]
pub struct ConsumerPlan {
    pub id: u32,
    pub topic: String,
    pub partitions: Vec<ConsumePartition>,
}

/// What one worker (one generator core) runs.
#[derive(Debug, Clone, Default)]
pub struct WorkerPlan {
    pub core: Option<usize>,
    pub producers: Vec<ProducerPlan>,
    pub consumers: Vec<ConsumerPlan>,
}

/// The settings every producer and consumer of a run shares.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: Mode,
    pub record_bytes: usize,
    pub keys: Keys,
    pub key_count: u32,
    pub payload_random: f64,
    pub acks: Acks,
    pub batch_bytes: usize,
    pub linger: Duration,
    pub in_flight: usize,
    pub fetch_max_bytes: u32,
    /// Codec of every producer batch.
    pub compression: Compression,
    /// Hand requests to nothing instead of a broker (`--dry-run`).
    pub null_sink: bool,
    /// The longest any request waits for its response.
    pub request_timeout: Duration,
    /// The protocol producers and consumers speak.
    pub protocol: Wire,
    /// TLS to the broker (`--tls`): the client settings, trusting the run's own CA.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// The protocol the generator speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Wire {
    /// The native protocol, shard-aware (each partition's own shard port).
    Native,
    /// The Kafka protocol (`kafka_wire`), on the one Kafka port.
    Kafka,
}

/// When a run measures, in ns since `origin`.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub origin: Instant,
    /// The warm-up ends and measuring starts.
    pub measure_from_ns: u64,
    /// Producers stop; measuring ends.
    pub measure_until_ns: u64,
    /// Consumers that have not caught up by then stop anyway.
    pub drain_until_ns: u64,
}

impl Timing {
    pub fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }
}

/// State every worker of a run shares: progress counters for the terminal, the stop
/// flag, and the first errors.
#[derive(Debug, Default)]
pub struct Shared {
    stop: AtomicBool,
    pub acked_records: AtomicU64,
    pub acked_bytes: AtomicU64,
    pub consumed_records: AtomicU64,
    pub consumed_bytes: AtomicU64,
    pub producers_running: AtomicUsize,
    errors: Mutex<Vec<String>>,
}

impl Shared {
    /// Records `message` and stops the run.
    pub fn fail(&self, message: String) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if errors.len() < 16 && !errors.contains(&message) {
            errors.push(message);
        }
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Asks every task to stop (the run's deadline passed).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What one worker measured.
#[derive(Debug, Clone)]
pub struct WorkerResult {
    /// Producers: acknowledgements, latency from intended send to ack.
    pub produce: Recorder,
    /// Consumers: records received, latency from intended send to receipt.
    pub consume: Recorder,
}

/// Everything a task of one worker needs.
struct Context {
    settings: Arc<Settings>,
    timing: Timing,
    shared: Arc<Shared>,
    produce: RefCell<Recorder>,
    consume: RefCell<Recorder>,
    limits: Limits,
}

/// Runs `plan` on the calling thread's executor until its producers and consumers
/// finish; returns what it measured.
pub async fn run_worker(
    plan: WorkerPlan,
    settings: Arc<Settings>,
    timing: Timing,
    shared: Arc<Shared>,
) -> WorkerResult {
    let limits = Limits { frame_bytes_max: settings.fetch_max_bytes as usize + (16 << 20), array_count_max: 1 << 20 };
    let context = Rc::new(Context {
        settings,
        timing,
        produce: RefCell::new(Recorder::new(timing.measure_from_ns, timing.measure_until_ns)),
        consume: RefCell::new(Recorder::new(timing.measure_from_ns, timing.measure_until_ns)),
        shared,
        limits,
    });
    let mut tasks = Vec::new();
    for producer in plan.producers {
        let context = context.clone();
        tasks.push(glommio::spawn_local(async move {
            let result = produce(&producer, &context).await;
            context.shared.producers_running.fetch_sub(1, Ordering::Relaxed);
            if let Err(message) = result {
                context.shared.fail(format!("producer {} of {}: {message}", producer.id, producer.topic));
            }
        }));
    }
    for consumer in plan.consumers {
        let mut by_address: Vec<(SocketAddr, Vec<ConsumePartition>)> = Vec::new();
        for partition in consumer.partitions {
            match by_address.iter_mut().find(|(address, _)| *address == partition.target.address) {
                Some((_, partitions)) => partitions.push(partition),
                None => by_address.push((partition.target.address, vec![partition])),
            }
        }
        for (address, partitions) in by_address {
            let context = context.clone();
            let (id, topic) = (consumer.id, consumer.topic.clone());
            tasks.push(glommio::spawn_local(async move {
                if let Err(message) = fetch_loop(address, &topic, partitions, &context).await {
                    context.shared.fail(format!("consumer {id} of {topic}: {message}"));
                }
            }));
        }
    }
    for task in tasks {
        task.await;
    }
    let produce = context.produce.borrow().clone();
    let consume = context.consume.borrow().clone();
    WorkerResult { produce, consume }
}

/// Connects to `address` within `wait`, with Nagle off.
async fn connect(address: SocketAddr, wait: Duration) -> Result<TcpStream, String> {
    let stream = glommio::timer::timeout(wait, async {
        TcpStream::connect(address).await.map_err(|e| glommio::GlommioError::IoError(std::io::Error::from(e)))
    })
    .await
    .map_err(|error| match error {
        glommio::GlommioError::TimedOut(_) => format!("cannot connect to {address}: no answer in {wait:?}"),
        other => format!("cannot connect to {address}: {}", std::io::Error::from(other)),
    })?;
    stream.set_nodelay(true).map_err(|e| format!("{address}: {e}"))?;
    Ok(stream)
}

/// A connection's reading half: plain, or TLS (the broker's own transports).
enum Reader {
    Plain(TcpStream),
    Tls(strand::net::tls::TlsRead),
}

/// A connection's writing half.
enum Writer {
    Plain(TcpStream),
    Tls(strand::net::tls::TlsWrite),
}

impl Reader {
    async fn read_into(&mut self, buf: &mut BytesMut, want: usize, wait: Duration) -> std::io::Result<usize> {
        match self {
            Reader::Plain(stream) => stream.read_into(buf, want, wait).await,
            Reader::Tls(stream) => stream.read_into(buf, want, wait).await,
        }
    }
}

impl Writer {
    async fn write_pieces(&mut self, pieces: &[Bytes]) -> std::io::Result<()> {
        match self {
            Writer::Plain(stream) => write_pieces(stream, pieces).await,
            Writer::Tls(stream) => {
                let slices: Vec<&[u8]> = pieces.iter().map(|p| &p[..]).collect();
                stream.write_pieces(&slices).await
            }
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Writer::Plain(stream) => stream.write_all(bytes).await,
            Writer::Tls(stream) => strand::net::transport::TransportWrite::write_all(stream, bytes).await,
        }
    }

    async fn close(&mut self) {
        match self {
            Writer::Plain(stream) => {
                let _ = stream.close().await;
            }
            Writer::Tls(stream) => strand::net::transport::TransportWrite::shutdown(stream, false).await,
        }
    }
}

/// Connects (over TLS with `settings.tls`) and splits the connection into a reading
/// and a writing half, so one task writes while another reads.
async fn open(address: SocketAddr, settings: &Settings) -> Result<(Reader, Writer), String> {
    let stream = connect(address, Duration::from_secs(5)).await?;
    match &settings.tls {
        None => {
            let (reader, writer) = Tcp(stream).split().map_err(|error| format!("dup: {error}"))?;
            Ok((Reader::Plain(reader), Writer::Plain(writer)))
        }
        Some(config) => {
            let name = rustls::pki_types::ServerName::try_from("localhost").expect("a valid name");
            let tls = strand::net::tls::connect(stream, config.clone(), name, Duration::from_secs(5))
                .await
                .map_err(|error| format!("{address}: {error}"))?;
            let (reader, writer) = tls.split().map_err(|error| format!("dup: {error}"))?;
            Ok((Reader::Tls(reader), Writer::Tls(writer)))
        }
    }
}

/// Writes `pieces` back to back: one `sendmsg` when the socket has room (no copy of
/// the batches), the rest through the ring when it does not.
async fn write_pieces(stream: &mut TcpStream, pieces: &[Bytes]) -> std::io::Result<()> {
    let iov: Vec<libc::iovec> =
        pieces.iter().map(|p| libc::iovec { iov_base: p.as_ptr() as *mut _, iov_len: p.len() }).collect();
    // SAFETY: msghdr is plain data; the iovecs point into `pieces`, alive for the call.
    let sent = unsafe {
        let mut message: libc::msghdr = std::mem::zeroed();
        message.msg_iov = iov.as_ptr() as *mut _;
        message.msg_iovlen = iov.len() as _;
        libc::sendmsg(stream.as_raw_fd(), &message, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
    };
    let mut skip = if sent >= 0 {
        sent as usize
    } else {
        let error = std::io::Error::last_os_error();
        if !matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted) {
            return Err(error);
        }
        0
    };
    for piece in pieces {
        if skip >= piece.len() {
            skip -= piece.len();
            continue;
        }
        stream.write_all(&piece[skip..]).await?;
        skip = 0;
    }
    Ok(())
}

/// Reads response frames from one socket.
struct FrameReader {
    stream: Reader,
    buf: BytesMut,
}

/// Bytes asked of one receive.
const READ_BYTES: usize = 1 << 20;

impl FrameReader {
    fn new(stream: Reader) -> FrameReader {
        FrameReader { stream, buf: BytesMut::with_capacity(READ_BYTES) }
    }

    /// The next frame; `Ok(None)` when none arrived within `wait`.
    async fn next(&mut self, wait: Duration, limits: &Limits) -> Result<Option<(FrameHeader, Bytes)>, String> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(frame) = split_frame(&mut self.buf, limits).map_err(|e| format!("bad response frame: {e}"))? {
                return Ok(Some(frame));
            }
            let rest = FrameHeader::parse(&self.buf, limits)
                .ok()
                .flatten()
                .map_or(0, |header| header.frame_bytes().saturating_sub(self.buf.len()));
            if !self.read_more(rest, deadline).await? {
                return Ok(None);
            }
        }
    }

    /// Receives more, room made for the `rest` of the frame being read; `false` once
    /// `deadline` passed with nothing received.
    async fn read_more(&mut self, rest: usize, deadline: Instant) -> Result<bool, String> {
        self.buf.reserve(rest.clamp(READ_BYTES / 4, READ_BYTES));
        let want = self.buf.capacity() - self.buf.len();
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        match self.stream.read_into(&mut self.buf, want, left).await {
            Ok(0) => Err("the broker closed the connection".into()),
            Ok(_) => Ok(true),
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => Ok(false),
            Err(error) => Err(format!("receive failed: {error}")),
        }
    }
}

impl FrameReader {
    /// The next Kafka response frame (correlation id and the rest); `Ok(None)` when
    /// none arrived within `wait`.
    async fn next_kafka(&mut self, wait: Duration, frame_bytes_max: usize) -> Result<Option<(i32, Bytes)>, String> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(frame) = crate::kafka_wire::split_response(&mut self.buf, frame_bytes_max)? {
                return Ok(Some(frame));
            }
            if !self.read_more(crate::kafka_wire::frame_rest(&self.buf), deadline).await? {
                return Ok(None);
            }
        }
    }
}

/// Decodes a response frame, turning an error frame into its message.
fn decode_response(header: &FrameHeader, payload: &Bytes, limits: &Limits) -> Result<Response, String> {
    if header.is_error() {
        let frame = ErrorFrame::decode(payload, limits).map_err(|e| format!("undecodable error frame: {e}"))?;
        return Err(format!("the broker refused a request: {:?}: {}", frame.error, frame.message));
    }
    Response::decode(header, payload, limits).map_err(|e| format!("undecodable response: {e}"))
}

/// A produce request awaiting its response.
struct InFlight {
    correlation_id: u32,
    /// Intended send time of each record it carries.
    intended: Vec<u64>,
    value_bytes: u64,
    /// Released with the response, opening the window for the next request.
    _permit: Option<glommio::sync::StaticPermit>,
}

/// The producer's side of one broker shard (or of the null sink).
struct ProduceConn {
    address: SocketAddr,
    writer: Option<Writer>,
    pending: Rc<RefCell<VecDeque<InFlight>>>,
    window: Rc<glommio::sync::Semaphore>,
    failed: Rc<RefCell<Option<String>>>,
    closing: Rc<Cell<bool>>,
    reader: Option<glommio::task::JoinHandle<()>>,
    next_correlation: u32,
}

impl ProduceConn {
    async fn open(address: SocketAddr, context: &Rc<Context>) -> Result<ProduceConn, String> {
        let settings = &context.settings;
        let mut conn = ProduceConn {
            address,
            writer: None,
            pending: Rc::default(),
            window: Rc::new(glommio::sync::Semaphore::new(settings.in_flight as u64)),
            failed: Rc::default(),
            closing: Rc::default(),
            reader: None,
            next_correlation: 1,
        };
        if settings.null_sink {
            return Ok(conn);
        }
        let (stream, writer) = open(address, settings).await?;
        conn.writer = Some(writer);
        if settings.acks != Acks::None {
            let (pending, failed, closing) = (conn.pending.clone(), conn.failed.clone(), conn.closing.clone());
            let context = context.clone();
            conn.reader = Some(
                glommio::spawn_local(async move {
                    let mut reader = FrameReader::new(stream);
                    if let Err(message) = read_acks(&mut reader, &pending, &closing, &context).await {
                        *failed.borrow_mut() = Some(message);
                        // Let a sender waiting for the window see the failure.
                        pending.borrow_mut().clear();
                    }
                })
                .detach(),
            );
        }
        Ok(conn)
    }

    /// Sends one Produce request with `batches` of `topic`; waits for room in the
    /// window first.
    async fn send(
        &mut self,
        topic: &str,
        batches: Vec<(u32, Vec<u8>, Vec<u64>, u64)>,
        context: &Context,
    ) -> Result<(), String> {
        let settings = &context.settings;
        let permit = match glommio::timer::timeout(settings.request_timeout, async {
            self.window.acquire_static_permit(1).await
        })
        .await
        {
            Ok(permit) => permit,
            Err(glommio::GlommioError::TimedOut(_)) => {
                return Err(self.failed.borrow().clone().unwrap_or_else(|| {
                    format!("no produce response from {} in {:?}", self.address, settings.request_timeout)
                }))
            }
            Err(error) => return Err(format!("produce window: {error}")),
        };
        if let Some(message) = self.failed.borrow().clone() {
            return Err(message);
        }
        let correlation_id = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let mut intended_all = Vec::new();
        let mut value_bytes = 0;
        let mut partitions = Vec::with_capacity(batches.len());
        for (partition, batch, intended, bytes) in batches {
            if intended_all.is_empty() {
                intended_all = intended;
            } else {
                intended_all.extend_from_slice(&intended);
            }
            value_bytes += bytes;
            partitions.push(ProducePartition { partition, records: Bytes::from(batch) });
        }
        let acks = match settings.acks {
            Acks::None => ACKS_NONE,
            Acks::Leader => ACKS_LEADER,
            Acks::Durable => ACKS_DURABLE,
        };
        let timeout_ms = settings.request_timeout.as_millis() as u32;
        let pieces = match settings.protocol {
            Wire::Native => {
                let topics = vec![ProduceTopic { name: topic.to_string(), partitions }];
                ProduceRequest { acks, timeout_ms, topics }.encode_pieces(correlation_id)
            }
            Wire::Kafka => {
                let acks = match settings.acks {
                    Acks::None => 0,
                    Acks::Leader => 1,
                    Acks::Durable => -1,
                };
                let partitions = partitions.into_iter().map(|p| (p.partition, p.records)).collect();
                crate::kafka_wire::produce_pieces(correlation_id as i32, topic, acks, timeout_ms as i32, partitions)
            }
        };
        let Some(writer) = self.writer.as_mut() else {
            // The null sink: the request is built and encoded, then acknowledged.
            let done = context.timing.now_ns();
            acknowledge(context, &intended_all, value_bytes, done);
            std::hint::black_box(&pieces);
            return Ok(());
        };
        let acked_on_send = settings.acks == Acks::None;
        if !acked_on_send {
            self.pending.borrow_mut().push_back(InFlight {
                correlation_id,
                intended: std::mem::take(&mut intended_all),
                value_bytes,
                _permit: Some(permit),
            });
        }
        writer.write_pieces(&pieces).await.map_err(|e| format!("sending to {}: {e}", self.address))?;
        if acked_on_send {
            // acks none: no response comes; the record counts once on the socket.
            let done = context.timing.now_ns();
            context.produce.borrow_mut().completed(done, intended_all.len() as u64, value_bytes);
            context.shared.acked_records.fetch_add(intended_all.len() as u64, Ordering::Relaxed);
            context.shared.acked_bytes.fetch_add(value_bytes, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Waits for every response (bounded), then closes.
    async fn close(mut self, context: &Context) -> Result<(), String> {
        let deadline = Instant::now() + context.settings.request_timeout;
        while !self.pending.borrow().is_empty() && self.failed.borrow().is_none() {
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} produce requests to {} unanswered after {:?}",
                    self.pending.borrow().len(),
                    self.address,
                    context.settings.request_timeout
                ));
            }
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        // The reader stops at its next tick once nothing is pending; the socket is
        // closed after, so it never reads the close as a broker failure.
        self.closing.set(true);
        if let Some(reader) = self.reader.take() {
            reader.await;
        }
        if let Some(writer) = self.writer.as_mut() {
            writer.close().await;
        }
        match self.failed.borrow().clone() {
            Some(message) => Err(message),
            None => Ok(()),
        }
    }
}

/// Counts records as acknowledged at `done`, with their latencies.
fn acknowledge(context: &Context, intended: &[u64], value_bytes: u64, done: u64) {
    let mut recorder = context.produce.borrow_mut();
    for &at in intended {
        recorder.latency(at, done);
    }
    recorder.completed(done, intended.len() as u64, value_bytes);
    context.shared.acked_records.fetch_add(intended.len() as u64, Ordering::Relaxed);
    context.shared.acked_bytes.fetch_add(value_bytes, Ordering::Relaxed);
}

/// How long an ack reader waits for a frame before it looks at its state again.
const ACK_TICK: Duration = Duration::from_millis(100);

/// How long produce requests have waited for any response.
struct Silence {
    waited: Duration,
    timeout: Duration,
}

impl Silence {
    fn new(timeout: Duration) -> Silence {
        Silence { waited: Duration::ZERO, timeout }
    }

    /// An `ACK_TICK` passed with no response: an error once requests have waited
    /// `timeout` (silence with none pending does not count).
    fn passed(&mut self, nothing_pending: bool) -> Result<(), String> {
        if nothing_pending {
            self.waited = Duration::ZERO;
            return Ok(());
        }
        self.waited += ACK_TICK;
        if self.waited >= self.timeout {
            return Err(format!("no produce response in {:?}", self.timeout));
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.waited = Duration::ZERO;
    }
}

/// Matches produce responses to their requests until the producer closes.
async fn read_acks(
    reader: &mut FrameReader,
    pending: &RefCell<VecDeque<InFlight>>,
    closing: &Cell<bool>,
    context: &Context,
) -> Result<(), String> {
    if context.settings.protocol == Wire::Kafka {
        return read_kafka_acks(reader, pending, closing, context).await;
    }
    let mut silence = Silence::new(context.settings.request_timeout);
    loop {
        if pending.borrow().is_empty() && closing.get() {
            return Ok(());
        }
        let Some((header, payload)) = reader.next(ACK_TICK, &context.limits).await? else {
            silence.passed(pending.borrow().is_empty())?;
            continue;
        };
        silence.reset();
        let done = context.timing.now_ns();
        let response = decode_response(&header, &payload, &context.limits)?;
        let Response::Produce(response) = response else {
            return Err(format!("expected a produce response, got {:?}", response.api_key()));
        };
        let entry = {
            let mut pending = pending.borrow_mut();
            let at = pending.iter().position(|entry| entry.correlation_id == header.correlation_id.get());
            let Some(at) = at else {
                return Err(format!("a response to unknown request {}", header.correlation_id.get()));
            };
            pending.remove(at).expect("position is in range")
        };
        for topic in &response.topics {
            for partition in &topic.partitions {
                if partition.error != ErrorCode::None {
                    return Err(format!(
                        "produce to {} partition {}: {:?}",
                        topic.name, partition.partition, partition.error
                    ));
                }
            }
        }
        acknowledge(context, &entry.intended, entry.value_bytes, done);
    }
}

/// `read_acks` for the Kafka protocol: answers come in request order.
async fn read_kafka_acks(
    reader: &mut FrameReader,
    pending: &RefCell<VecDeque<InFlight>>,
    closing: &Cell<bool>,
    context: &Context,
) -> Result<(), String> {
    let mut silence = Silence::new(context.settings.request_timeout);
    loop {
        if pending.borrow().is_empty() && closing.get() {
            return Ok(());
        }
        let Some((correlation, frame)) = reader.next_kafka(ACK_TICK, context.limits.frame_bytes_max).await? else {
            silence.passed(pending.borrow().is_empty())?;
            continue;
        };
        silence.reset();
        let done = context.timing.now_ns();
        let entry = pending.borrow_mut().pop_front();
        let Some(entry) = entry.filter(|entry| entry.correlation_id as i32 == correlation) else {
            return Err(format!("a response to request {correlation}, out of request order"));
        };
        if let Some(error) = crate::kafka_wire::produce_error(frame)? {
            return Err(error);
        }
        acknowledge(context, &entry.intended, entry.value_bytes, done);
    }
}

/// A partition's batch being filled.
struct OpenBatch {
    partition: u32,
    conn: usize,
    builder: BatchBuilder,
    intended: Vec<u64>,
    value_bytes: u64,
    opened_ns: u64,
}

/// Values: the first 8 bytes are the intended send time, the rest a window into a
/// pool whose windows are `payload_random` random bytes then zeros.
struct Payloads {
    pool: Vec<u8>,
    len: usize,
    windows: usize,
}

impl Payloads {
    fn new(record_bytes: usize, random: f64, seed: u64) -> Payloads {
        use rand::{RngCore, SeedableRng};
        let len = record_bytes - 8;
        let windows = (4 << 20) / (len + 1) + 1;
        let windows = windows.min(1024);
        let mut pool = vec![0u8; len * windows];
        let random_len = (len as f64 * random).round() as usize;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for window in pool.chunks_mut(len.max(1)) {
            let random = random_len.min(window.len());
            rng.fill_bytes(&mut window[..random]);
        }
        Payloads { pool, len, windows }
    }

    fn fill(&self, index: u64, value: &mut [u8]) {
        let at = (index as usize % self.windows) * self.len;
        value[8..].copy_from_slice(&self.pool[at..at + self.len]);
    }
}

/// Writes `n` in decimal into `out`; returns the digits.
fn decimal(mut n: u64, out: &mut [u8; 20]) -> &[u8] {
    let mut at = out.len();
    loop {
        at -= 1;
        out[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &out[at..];
        }
    }
}

/// The shortest sleep of a fixed-rate producer between two rounds of sending.
const WAKE_NS_MIN: u64 = 20_000;

/// One producer, until its end time or record limit.
async fn produce(plan: &ProducerPlan, context: &Rc<Context>) -> Result<(), String> {
    use rand::{Rng, SeedableRng};
    let settings = &context.settings;
    let timing = context.timing;
    let mut conns: Vec<ProduceConn> = Vec::new();
    let mut batches = Vec::with_capacity(plan.partitions.len());
    for target in &plan.partitions {
        let conn = match conns.iter().position(|conn| conn.address == target.address) {
            Some(index) => index,
            None => {
                conns.push(ProduceConn::open(target.address, context).await?);
                conns.len() - 1
            }
        };
        batches.push(OpenBatch {
            partition: target.partition,
            conn,
            builder: BatchBuilder::with_compression(settings.compression),
            intended: Vec::new(),
            value_bytes: 0,
            opened_ns: 0,
        });
    }
    let partitions = batches.len() as u32;
    let payloads = Payloads::new(settings.record_bytes, settings.payload_random, u64::from(plan.id));
    let mut value = vec![0u8; settings.record_bytes];
    let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(plan.id) ^ 0x5eed);
    let mut key_text = [0u8; 20];
    let record_size = BatchBuilder::record_size(Some(&[0; 12]), Some(&value), &[]);
    let per_batch = (settings.batch_bytes / record_size).max(1) as u64;
    let linger_ns = settings.linger.as_nanos() as u64;
    let schedule = (plan.records_per_second > 0.0).then(|| Schedule::new(timing.now_ns(), plan.records_per_second));
    let limit = plan.record_limit.unwrap_or(u64::MAX);
    let mut sticky = plan.id % partitions;
    let mut generated = 0u64;
    let mut result = Ok(());
    'run: loop {
        let now = timing.now_ns();
        if context.shared.stopping() || (plan.record_limit.is_none() && now >= timing.measure_until_ns) {
            break;
        }
        if generated >= limit {
            break;
        }
        let due = match &schedule {
            Some(schedule) => schedule.due_by(now),
            None => generated + per_batch,
        }
        .min(limit);
        let wall_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        while generated < due {
            let intended = schedule.as_ref().map_or(now, |schedule| schedule.intended_ns(generated));
            let key = match settings.keys {
                Keys::None => None,
                Keys::Random => Some(rng.gen_range(0..u64::from(settings.key_count))),
                Keys::Sequential => Some(generated % u64::from(settings.key_count)),
            };
            let key = key.map(|k| decimal(k, &mut key_text));
            let index = match key {
                Some(key) => strand_client::partition_for_key(key, partitions),
                None => sticky,
            } as usize;
            value[..8].copy_from_slice(&intended.to_le_bytes());
            payloads.fill(generated, &mut value);
            let batch = &mut batches[index];
            if batch.builder.is_empty() {
                batch.opened_ns = now;
            }
            batch.builder.push(key, Some(&value), &[], wall_ms);
            batch.intended.push(intended);
            batch.value_bytes += value.len() as u64;
            generated += 1;
            if batch.builder.size_bytes() + record_size > settings.batch_bytes {
                if let Err(message) = send_batches(&mut conns, &mut batches, &[index], &plan.topic, context).await {
                    result = Err(message);
                    break 'run;
                }
                if settings.keys == Keys::None {
                    sticky = (sticky + 1) % partitions;
                }
            }
            if generated % 256 == 0 {
                glommio::yield_if_needed().await;
            }
        }
        // Batches whose linger has passed go out, one request per shard.
        let now = timing.now_ns();
        let lingered: Vec<usize> = (0..batches.len())
            .filter(|&i| !batches[i].builder.is_empty() && batches[i].opened_ns + linger_ns <= now)
            .collect();
        if !lingered.is_empty() {
            if let Err(message) = send_batches(&mut conns, &mut batches, &lingered, &plan.topic, context).await {
                result = Err(message);
                break;
            }
            if settings.keys == Keys::None {
                sticky = (sticky + 1) % partitions;
            }
        }
        match &schedule {
            Some(schedule) => {
                // Sleep until the next record is due or a batch's linger ends.
                let next_record = schedule.intended_ns(generated);
                let next_linger = batches
                    .iter()
                    .filter(|b| !b.builder.is_empty())
                    .map(|b| b.opened_ns + linger_ns)
                    .min()
                    .unwrap_or(u64::MAX);
                // Records due meanwhile are generated together at the wake-up; their
                // latency still counts from their own intended times. The floor keeps
                // the wake-ups (each a trip through the reactor, which is what lets
                // acks and fetches in) to at most one per WAKE_NS_MIN.
                let wake = next_record.min(next_linger).min(timing.measure_until_ns);
                let now = timing.now_ns();
                glommio::timer::sleep(Duration::from_nanos(wake.saturating_sub(now).max(WAKE_NS_MIN))).await;
            }
            None => glommio::yield_if_needed().await,
        }
    }
    // What is built goes out (a prefill must deliver all of it); what is in flight is
    // waited for.
    if result.is_ok() && !context.shared.stopping() {
        let open: Vec<usize> = (0..batches.len()).filter(|&i| !batches[i].builder.is_empty()).collect();
        result = send_batches(&mut conns, &mut batches, &open, &plan.topic, context).await;
    }
    for conn in conns {
        let closed = conn.close(context).await;
        if result.is_ok() {
            result = closed;
        }
    }
    result
}

/// Sends the batches at `indices`, one request per connection.
async fn send_batches(
    conns: &mut [ProduceConn],
    batches: &mut [OpenBatch],
    indices: &[usize],
    topic: &str,
    context: &Context,
) -> Result<(), String> {
    for (conn, target) in conns.iter_mut().enumerate() {
        let mut request = Vec::new();
        for &index in indices {
            let batch = &mut batches[index];
            if batch.conn != conn || batch.builder.is_empty() {
                continue;
            }
            let builder = std::mem::take(&mut batch.builder);
            request.push((
                batch.partition,
                builder.finish(),
                std::mem::take(&mut batch.intended),
                std::mem::take(&mut batch.value_bytes),
            ));
            batch.builder = BatchBuilder::with_compression(context.settings.compression);
        }
        if !request.is_empty() {
            target.send(topic, request, context).await?;
        }
    }
    Ok(())
}

/// Reads `partitions` (all on the shard at `address`) until each reaches its end, or,
/// tailing, until the producers are done and it has caught up.
async fn fetch_loop(
    address: SocketAddr,
    topic: &str,
    partitions: Vec<ConsumePartition>,
    context: &Rc<Context>,
) -> Result<(), String> {
    let settings = &context.settings;
    let timing = context.timing;
    let (stream, mut writer) = open(address, settings).await?;
    let mut reader = FrameReader::new(stream);
    let max_wait_ms: u32 = if settings.mode == Mode::EndToEnd { 100 } else { 500 };
    let per_partition = (settings.fetch_max_bytes / partitions.len() as u32).max(64 * 1024);
    let mut offsets: Vec<u64> = partitions.iter().map(|p| p.start).collect();
    let mut correlation = 0u32;
    let tailing = partitions.iter().any(|p| p.end.is_none());
    let protocol = settings.protocol;
    let fetch = |offsets: &[u64], correlation: u32| -> Vec<u8> {
        let asked: Vec<(u32, u64, u32)> = partitions
            .iter()
            .zip(offsets)
            .filter(|(p, &offset)| p.end.is_none_or(|end| offset < end))
            .map(|(p, &offset)| (p.target.partition, offset, per_partition))
            .collect();
        if protocol == Wire::Kafka {
            return crate::kafka_wire::fetch_frame(
                correlation as i32,
                topic,
                &asked,
                max_wait_ms,
                settings.fetch_max_bytes,
            );
        }
        let request = Request::Fetch(FetchRequest {
            max_wait_ms,
            min_bytes: 1,
            max_bytes: settings.fetch_max_bytes,
            topics: vec![FetchTopic {
                name: topic.to_string(),
                partitions: asked
                    .into_iter()
                    .map(|(partition, offset, max_bytes)| FetchPartition { partition, offset, max_bytes })
                    .collect(),
            }],
        });
        let mut out = Vec::with_capacity(256);
        request.encode(correlation, &mut out);
        out
    };
    let done_reading =
        |offsets: &[u64]| partitions.iter().zip(offsets).all(|(p, &o)| p.end.is_some_and(|end| o >= end));
    if done_reading(&offsets) {
        return Ok(());
    }
    writer.write_all(&fetch(&offsets, correlation)).await.map_err(|e| format!("sending to {address}: {e}"))?;
    let wait = Duration::from_millis(u64::from(max_wait_ms)) + settings.request_timeout;
    loop {
        // Each partition answered: its index, error, high watermark and batches.
        let answered: Vec<(u32, Option<String>, u64, Bytes)> = match protocol {
            Wire::Native => {
                let Some((header, payload)) = reader.next(wait, &context.limits).await? else {
                    return Err(format!("no fetch response from {address} in {wait:?}"));
                };
                let Response::Fetch(response) = decode_response(&header, &payload, &context.limits)? else {
                    return Err("expected a fetch response".into());
                };
                response
                    .topics
                    .into_iter()
                    .flat_map(|t| t.partitions)
                    .map(|p| {
                        let error = (p.error != ErrorCode::None).then(|| format!("{:?}", p.error));
                        (p.partition, error, p.high_watermark, p.records)
                    })
                    .collect()
            }
            Wire::Kafka => {
                let Some((_, frame)) = reader.next_kafka(wait, context.limits.frame_bytes_max).await? else {
                    return Err(format!("no fetch response from {address} in {wait:?}"));
                };
                crate::kafka_wire::fetch_response(frame)?
                    .into_iter()
                    .map(|p| {
                        let error = (p.error != 0).then(|| format!("error {}", p.error));
                        (p.partition, error, p.high_watermark.max(0) as u64, p.records)
                    })
                    .collect()
            }
        };
        let done = timing.now_ns();
        // Next offsets from the batch headers alone, so the next fetch goes out
        // before these records are decoded.
        let mut caught_up = true;
        for (partition, error, high_watermark, records) in &answered {
            let Some(index) = partitions.iter().position(|p| p.target.partition == *partition) else {
                return Err(format!("a fetch response for partition {partition} not asked for"));
            };
            if let Some(error) = error {
                return Err(format!("fetch from {topic} partition {partition}: {error}"));
            }
            let mut at = 0;
            while at < records.len() {
                let header = BatchHeader::parse(&records[at..]).map_err(|e| format!("fetched batch: {e}"))?;
                offsets[index] = offsets[index].max(header.next_offset() as u64);
                at += header.total_bytes();
            }
            if offsets[index] < *high_watermark {
                caught_up = false;
            }
        }
        let producers_done = context.shared.producers_running.load(Ordering::Relaxed) == 0;
        let finished = context.shared.stopping()
            || done_reading(&offsets)
            || (tailing && producers_done && caught_up)
            || done >= timing.drain_until_ns;
        if !finished {
            correlation = correlation.wrapping_add(1);
            writer.write_all(&fetch(&offsets, correlation)).await.map_err(|e| format!("sending to {address}: {e}"))?;
        }
        let (mut records, mut bytes) = (0u64, 0u64);
        {
            let mut recorder = context.consume.borrow_mut();
            for (_, _, _, fetched) in &answered {
                let mut at = 0;
                while at < fetched.len() {
                    let batch = &fetched[at..];
                    let header = BatchHeader::parse(batch).map_err(|e| format!("fetched batch: {e}"))?;
                    let batch = &batch[..header.total_bytes()];
                    at += header.total_bytes();
                    for record in RecordIter::new(batch).map_err(|e| format!("fetched batch: {e}"))? {
                        let record = record.map_err(|e| format!("fetched record: {e}"))?;
                        let value = record.value.unwrap_or_default();
                        if tailing && value.len() >= 8 {
                            let intended = u64::from_le_bytes(value[..8].try_into().expect("8 bytes"));
                            recorder.latency(intended, done);
                        }
                        records += 1;
                        bytes += value.len() as u64;
                    }
                }
            }
            recorder.completed(done, records, bytes);
        }
        context.shared.consumed_records.fetch_add(records, Ordering::Relaxed);
        context.shared.consumed_bytes.fetch_add(bytes, Ordering::Relaxed);
        if finished {
            if !context.shared.stopping() && !done_reading(&offsets) {
                if !tailing {
                    return Err(format!(
                        "the catch-up read did not finish within duration_seconds ({:.0} s)",
                        timing.drain_until_ns as f64 / 1e9
                    ));
                }
                if !(producers_done && caught_up) {
                    return Err("did not catch up with the producers within 30 s of their end".into());
                }
            }
            writer.close().await;
            return Ok(());
        }
        glommio::yield_if_needed().await;
    }
}
