//! `Producer`: batches records per partition and sends them to each partition's
//! owning shard, pipelined, retrying what the broker calls retriable.
//!
//! A record is encoded into its partition's open batch as `send` is called (one copy
//! of key and value); a batch is sealed when it reaches `batch_bytes` or has been
//! open `linger`. A sender thread ships sealed batches, grouped by connection, up
//! to `in_flight_max` requests per connection; responses are handled on the
//! connection's reader thread, which completes every record's `DeliveryFuture`.
//!
//! Ordering: batches of one partition are sent in order on one connection and the
//! broker appends a connection's requests in order.
//!
//! Idempotence (on by default, as in Kafka's clients since 3.0): the producer takes an
//! id from InitProducerId at its first record and numbers each partition's batches as
//! it seals them. A retry (after a lost connection, say) that the broker already stored
//! is answered with its original offsets and not stored twice; a batch sent while one
//! before it is still being retried is refused as out of sequence and goes back into
//! the queue behind it, so each partition's records land once each and in order, also
//! across a broker restart. Without idempotence a retried batch may land after a later
//! one (as with Kafka's non-idempotent producer).

use crate::client::{unexpected, Client};
use crate::error::{ClientError, Result};
use crate::partitioner::{partition_for_key, StickyPartitioner};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use strand_protocol::native::messages::*;
use strand_protocol::native::{ErrorCode, Response};
use strand_protocol::{BatchBuilder, Compression};

/// When the broker acknowledges a produce request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// Never: no response, offsets unknown (-1).
    None,
    /// Once appended to the partition's log.
    Leader,
    /// Once the topic's fsync policy is met (`always`: after fdatasync).
    Durable,
}

impl Acks {
    fn wire(self) -> u8 {
        match self {
            Acks::None => ACKS_NONE,
            Acks::Leader => ACKS_LEADER,
            Acks::Durable => ACKS_DURABLE,
        }
    }
}

/// Settings of a `Producer`.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Longest a record waits for its batch to fill before the batch is sent. With 0,
    /// the sender sends whatever has gathered as soon as it can (records batch up only
    /// while `in_flight_max` requests are outstanding), for the lowest latency.
    pub linger: Duration,
    /// A batch is sent once it holds this many bytes.
    pub batch_bytes: usize,
    pub acks: Acks,
    /// Times a batch is resent after a retriable error.
    pub retries: u32,
    pub retry_backoff_ms: u64,
    /// Bytes of records buffered (unsent or unacknowledged) before `send` blocks.
    pub buffer_bytes_max: usize,
    /// Longest `send` blocks for buffer space before it fails.
    pub max_block_ms: u64,
    /// Produce requests in flight per connection.
    pub in_flight_max: usize,
    /// Largest produce request: ready batches for one connection are sent together up
    /// to this size (a single larger batch goes alone). Stay below the broker's
    /// `limits.frame_bytes_max`.
    pub request_bytes_max: usize,
    /// How often the producer asks the broker for metadata again, to learn of
    /// partitions added to its topics (Kafka's `metadata.max.age.ms`).
    pub metadata_max_age: Duration,
    /// Codec each batch is compressed with (Kafka's `compression.type`). `batch_bytes`
    /// counts records before compression.
    pub compression: Compression,
    /// Numbers batches so that retries are stored once and in order (Kafka's
    /// `enable.idempotence`). A broker without InitProducerId turns it off.
    pub idempotent: bool,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            linger: Duration::from_millis(5),
            batch_bytes: 256 * 1024,
            acks: Acks::Durable,
            retries: 5,
            retry_backoff_ms: 100,
            buffer_bytes_max: 64 << 20,
            max_block_ms: 60_000,
            in_flight_max: 8,
            request_bytes_max: 4 << 20,
            metadata_max_age: Duration::from_secs(300),
            compression: Compression::None,
            idempotent: true,
        }
    }
}

/// One record to send. Fields not set take defaults: no key, no headers, the
/// partitioner's choice of partition, the current time.
#[derive(Debug, Clone, Copy)]
pub struct ProducerRecord<'a> {
    pub topic: &'a str,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(&'a [u8], Option<&'a [u8]>)],
    pub partition: Option<u32>,
    pub timestamp_ms: Option<i64>,
}

impl<'a> ProducerRecord<'a> {
    /// A record with a value and nothing else.
    pub fn new(topic: &'a str, value: &'a [u8]) -> ProducerRecord<'a> {
        ProducerRecord { topic, key: None, value: Some(value), headers: &[], partition: None, timestamp_ms: None }
    }
    pub fn key(mut self, key: &'a [u8]) -> Self {
        self.key = Some(key);
        self
    }
    pub fn partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }
    pub fn headers(mut self, headers: &'a [(&'a [u8], Option<&'a [u8]>)]) -> Self {
        self.headers = headers;
        self
    }
    pub fn timestamp_ms(mut self, timestamp_ms: i64) -> Self {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }
}

/// Where a record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMetadata {
    pub partition: u32,
    /// The record's offset (-1 with `Acks::None`).
    pub offset: i64,
}

/// The outcome of one batch, shared by its records.
#[derive(Default)]
struct Delivery {
    state: Mutex<DeliveryState>,
    done: Condvar,
}

#[derive(Default)]
struct DeliveryState {
    outcome: Option<Result<i64>>,
    wakers: Vec<Waker>,
}

impl Delivery {
    fn complete(&self, outcome: Result<i64>) {
        let wakers = {
            let mut state = lock(&self.state);
            state.outcome = Some(outcome);
            std::mem::take(&mut state.wakers)
        };
        self.done.notify_all();
        for waker in wakers {
            waker.wake();
        }
    }
}

/// Resolves when a record is acknowledged (or has failed for good). Poll it from
/// any executor, call `wait`, or drop it.
pub struct DeliveryFuture {
    delivery: Arc<Delivery>,
    partition: u32,
    index: u32,
}

impl DeliveryFuture {
    fn metadata(&self, outcome: &Result<i64>) -> Result<RecordMetadata> {
        let base = outcome.clone()?;
        let offset = if base < 0 { -1 } else { base + i64::from(self.index) };
        Ok(RecordMetadata { partition: self.partition, offset })
    }

    /// Blocks until the record is acknowledged.
    pub fn wait(self) -> Result<RecordMetadata> {
        let mut state = lock(&self.delivery.state);
        while state.outcome.is_none() {
            state = self.delivery.done.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        self.metadata(state.outcome.as_ref().expect("checked"))
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = lock(&self.delivery.state);
        match &state.outcome {
            Some(outcome) => Poll::Ready(self.metadata(outcome)),
            None => {
                state.wakers.push(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

struct OpenBatch {
    builder: BatchBuilder,
    delivery: Arc<Delivery>,
    opened: Instant,
    buffered_bytes: usize,
}

struct ReadyBatch {
    topic: Arc<str>,
    partition: u32,
    records: Bytes,
    delivery: Arc<Delivery>,
    buffered_bytes: usize,
    attempts: u32,
    not_before: Instant,
    /// Its first sequence, for an idempotent producer.
    sequence: Option<i32>,
}

struct TopicState {
    name: Arc<str>,
    partitions: u32,
    sticky: StickyPartitioner,
    open: Vec<Option<OpenBatch>>,
    /// Each partition's next sequence, for an idempotent producer.
    sequences: Vec<i32>,
}

/// The idempotent producer's id and epoch, once known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Identity {
    /// Not asked for yet.
    #[default]
    Unknown,
    Known {
        producer_id: i64,
        epoch: i16,
    },
    /// Not idempotent (configured so, or the broker has no InitProducerId).
    None,
}

/// A fast hash for the producer's own map of topic names, looked up once per record
/// (SipHash took 4% of the sending thread; the names are the application's own).
#[derive(Default, Clone, Copy)]
struct NameHash;

struct NameHasher(u64);

impl std::hash::BuildHasher for NameHash {
    type Hasher = NameHasher;
    fn build_hasher(&self) -> NameHasher {
        NameHasher(0)
    }
}

impl std::hash::Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

#[derive(Default)]
struct State {
    topics: HashMap<Arc<str>, TopicState, NameHash>,
    ready: VecDeque<ReadyBatch>,
    buffered_bytes: usize,
    in_flight: HashMap<SocketAddr, usize>,
    requests_in_flight: usize,
    /// An idempotent producer's batches sent and not yet answered, per partition: at
    /// most `UNANSWERED_MAX`, so that a retry of a batch the broker stored reaches it
    /// while the broker still remembers that batch.
    unanswered: HashMap<(Arc<str>, u32), usize>,
    closed: bool,
    /// When the sender asked for metadata last.
    metadata_at: Option<Instant>,
    identity: Identity,
    /// An idempotent batch failed for good, leaving a gap in its partition's sequence:
    /// a new producer id (the broker gives a fresh one, epoch 0) is to be asked for once
    /// nothing is in flight (KIP-360), and the queued batches numbered again from 0.
    bump_needed: bool,
    /// When a bump the broker could not answer is tried again; sending goes on
    /// meanwhile, so that queued batches still complete (or fail) and `flush` returns.
    bump_retry_at: Option<Instant>,
}

impl State {
    fn open_batches(&self) -> usize {
        self.topics.values().map(|t| t.open.iter().filter(|b| b.is_some()).count()).sum()
    }

    /// Takes in partitions the client's metadata knows and this state does not yet
    /// (a topic grew); a partition count never shrinks.
    fn grow(&mut self, client: &Client) {
        for topic in self.topics.values_mut() {
            if let Some(count) = client.known_partitions(&topic.name).filter(|&count| count > topic.partitions) {
                topic.partitions = count;
                topic.open.resize_with(count as usize, || None);
                topic.sequences.resize(count as usize, 0);
            }
        }
    }
}

struct Shared {
    client: Client,
    config: ProducerConfig,
    state: Mutex<State>,
    /// Wakes the sender thread: a batch is ready, a response freed a slot, closing.
    work: Condvar,
    /// Wakes `send` and `flush`: buffer space freed, batches acknowledged.
    space: Condvar,
}

/// Sends records to a broker. Dropping it flushes what was sent.
pub struct Producer {
    shared: Arc<Shared>,
    sender: Option<std::thread::JoinHandle<()>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Producer {
    /// A producer on `client` with `config`.
    pub fn new(client: Client, config: ProducerConfig) -> Producer {
        let shared = Arc::new(Shared {
            client,
            config,
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            space: Condvar::new(),
        });
        let thread_shared = shared.clone();
        let sender = std::thread::Builder::new()
            .name("strand-producer".into())
            .spawn(move || send_loop(&thread_shared))
            .expect("spawning the producer's sender thread");
        Producer { shared, sender: Some(sender) }
    }

    /// Adds a record to its partition's batch and returns at once (unless the buffer
    /// is full, when it blocks up to `max_block_ms`). The future resolves with the
    /// record's partition and offset.
    pub fn send(&self, record: ProducerRecord<'_>) -> Result<DeliveryFuture> {
        let shared = &self.shared;
        let config = &shared.config;
        let mut state = lock(&shared.state);
        if state.closed {
            return Err(ClientError::Closed);
        }
        if state.identity == Identity::Unknown {
            drop(state);
            let identity = identify(&shared.client, config.idempotent);
            state = lock(&shared.state);
            if state.identity == Identity::Unknown {
                state.identity = identity;
            }
        }
        if !state.topics.contains_key(record.topic) {
            drop(state);
            let partitions = futures_executor::block_on(shared.client.partition_count(record.topic))?;
            state = lock(&shared.state);
            let name: Arc<str> = Arc::from(record.topic);
            state.topics.entry(name.clone()).or_insert_with(|| TopicState {
                name,
                partitions,
                sticky: StickyPartitioner::new(config.batch_bytes),
                open: (0..partitions).map(|_| None).collect(),
                sequences: vec![0; partitions as usize],
            });
        }
        if let Some(partition) = record.partition.filter(|&p| p >= state.topics[record.topic].partitions) {
            // The topic may have grown since the metadata this producer holds.
            drop(state);
            futures_executor::block_on(shared.client.ensure_partition(record.topic, partition))?;
            state = lock(&shared.state);
            state.grow(&shared.client);
        }
        let size = BatchBuilder::record_size(record.key, record.value, record.headers);
        let mut deadline = None;
        while state.buffered_bytes > 0 && state.buffered_bytes + size > config.buffer_bytes_max {
            let now = Instant::now();
            let deadline = *deadline.get_or_insert(now + Duration::from_millis(config.max_block_ms));
            if now >= deadline {
                return Err(ClientError::Timeout { timeout_ms: config.max_block_ms });
            }
            state = shared.space.wait_timeout(state, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
        let state = &mut *state;
        let identity = state.identity;
        let topic = state.topics.get_mut(record.topic).expect("inserted above");
        let topic_name = &topic.name;
        let partition = match (record.partition, record.key) {
            (Some(partition), _) if partition < topic.partitions => partition,
            (Some(partition), _) => {
                return Err(ClientError::UnknownPartition { topic: record.topic.to_string(), partition })
            }
            (None, Some(key)) => partition_for_key(key, topic.partitions),
            (None, None) => topic.sticky.partition(topic.partitions, size),
        };
        let slot = &mut topic.open[partition as usize];
        let sequence = &mut topic.sequences[partition as usize];
        if slot.as_ref().is_some_and(|b| !b.builder.is_empty() && b.builder.size_bytes() + size > config.batch_bytes) {
            let full = slot.take().expect("checked");
            state.ready.push_back(seal(topic_name.clone(), partition, full, identity, sequence));
            shared.work.notify_one();
        }
        // The sender learns of a new batch at once, to send it when its linger is up
        // (asleep, it would otherwise only wake for a full batch or its idle tick);
        // records joining an open batch need no wake-up.
        let opened = slot.is_none();
        let batch = slot.get_or_insert_with(|| OpenBatch {
            builder: BatchBuilder::with_compression(config.compression),
            delivery: Arc::new(Delivery::default()),
            opened: Instant::now(),
            buffered_bytes: 0,
        });
        let index = batch.builder.len() as u32;
        let timestamp = record.timestamp_ms.unwrap_or_else(now_ms);
        batch.builder.push(record.key, record.value, record.headers, timestamp);
        batch.buffered_bytes += size;
        state.buffered_bytes += size;
        let future = DeliveryFuture { delivery: batch.delivery.clone(), partition, index };
        if batch.builder.size_bytes() >= config.batch_bytes {
            let full = slot.take().expect("just filled");
            state.ready.push_back(seal(topic_name.clone(), partition, full, identity, sequence));
            shared.work.notify_one();
        } else if opened {
            shared.work.notify_one();
        }
        Ok(future)
    }

    /// Sends every buffered record now and blocks until all are acknowledged.
    pub fn flush(&self) {
        let shared = &self.shared;
        let mut state = lock(&shared.state);
        seal_all(&mut state, None);
        shared.work.notify_one();
        while !state.ready.is_empty() || state.requests_in_flight > 0 || state.open_batches() > 0 {
            seal_all(&mut state, None);
            state = shared.space.wait_timeout(state, Duration::from_millis(50)).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// The client the producer sends through.
    pub fn client(&self) -> &Client {
        &self.shared.client
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.flush();
        lock(&self.shared.state).closed = true;
        self.shared.work.notify_all();
        if let Some(sender) = self.sender.take() {
            let _ = sender.join();
        }
    }
}

/// The batches per partition an idempotent producer may have unanswered: the broker
/// remembers each producer's last 5 batches per partition (Kafka's bound on
/// `max.in.flight.requests.per.connection` with idempotence), and a retry of a stored
/// batch must reach it before 5 later ones are stored, or it reads as a gap.
const UNANSWERED_MAX: usize = 5;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The producer's identity: an id from the broker when `idempotent`, else none (also
/// when the broker has no InitProducerId, or cannot be asked now: the producer then
/// sends as a non-idempotent one would).
fn identify(client: &Client, idempotent: bool) -> Identity {
    if !idempotent {
        return Identity::None;
    }
    match futures_executor::block_on(client.init_producer_id(None)) {
        Ok((producer_id, epoch)) => Identity::Known { producer_id, epoch },
        Err(_) => Identity::None,
    }
}

/// The sequence after `records` records from `first` (Kafka's wrap from `i32::MAX` to 0).
fn sequence_after(first: i32, records: i64) -> i32 {
    ((i64::from(first) + records) % (i64::from(i32::MAX) + 1)) as i32
}

/// Seals `batch` of `partition`: an idempotent producer's batch takes the partition's
/// next sequence, and `sequence` moves past its records.
fn seal(topic: Arc<str>, partition: u32, batch: OpenBatch, identity: Identity, sequence: &mut i32) -> ReadyBatch {
    let (builder, first) = match identity {
        Identity::Known { producer_id, epoch } => {
            let first = *sequence;
            let records = batch.builder.len() as i64;
            *sequence = sequence_after(first, records);
            (batch.builder.idempotent(producer_id, epoch, first), Some(first))
        }
        Identity::Unknown | Identity::None => (batch.builder, None),
    };
    ReadyBatch {
        topic,
        partition,
        records: Bytes::from(builder.finish()),
        delivery: batch.delivery,
        buffered_bytes: batch.buffered_bytes,
        attempts: 0,
        not_before: Instant::now(),
        sequence: first,
    }
}

/// Seals open batches older than `linger` (every one when `None`). Returns when the
/// next open batch will be due.
fn seal_all(state: &mut State, linger: Option<Duration>) -> Option<Instant> {
    let now = Instant::now();
    let mut next_due: Option<Instant> = None;
    let mut sealed = Vec::new();
    let identity = state.identity;
    for (name, topic) in state.topics.iter_mut() {
        for (partition, slot) in topic.open.iter_mut().enumerate() {
            let Some(batch) = slot else { continue };
            let due = linger.map_or(now, |linger| batch.opened + linger);
            if due <= now {
                let sequence = &mut topic.sequences[partition];
                sealed.push(seal(name.clone(), partition as u32, slot.take().expect("checked"), identity, sequence));
            } else {
                next_due = Some(next_due.map_or(due, |next| next.min(due)));
            }
        }
    }
    state.ready.extend(sealed);
    next_due
}

/// The sender thread: ships ready batches, grouped per connection, until closed.
fn send_loop(shared: &Arc<Shared>) {
    let linger = shared.config.linger;
    let mut state = lock(&shared.state);
    loop {
        // Now and then, metadata again: partitions added to a topic join its
        // partitioning. Sending waits for that one round trip.
        if state.metadata_at.is_none_or(|at| at.elapsed() >= shared.config.metadata_max_age) {
            state.metadata_at = Some(Instant::now());
            if !state.topics.is_empty() {
                drop(state);
                let refreshed = futures_executor::block_on(shared.client.refresh_metadata());
                state = lock(&shared.state);
                if refreshed.is_ok() {
                    state.grow(&shared.client);
                }
            }
        }
        if state.bump_needed && state.bump_retry_at.is_none_or(|at| at <= Instant::now()) {
            state = bump_epoch(shared, state);
            if !state.bump_needed || state.requests_in_flight > 0 {
                continue;
            }
        }
        // Without lingering, batches keep filling while earlier ones wait to be sent.
        let backed_up = shared.config.linger.is_zero() && !state.ready.is_empty();
        let next_due = if backed_up { None } else { seal_all(&mut state, Some(linger)) };
        let now = Instant::now();
        // Requests to send, per connection, each at most `request_bytes_max`.
        let mut groups: HashMap<SocketAddr, Vec<Vec<ReadyBatch>>> = HashMap::new();
        let mut sizes: HashMap<SocketAddr, usize> = HashMap::new();
        let mut held = VecDeque::new();
        let mut retry_due: Option<Instant> = None;
        // Partitions one of whose batches waits: their later batches wait behind it,
        // so that each partition's batches go out in order, retries included.
        let mut waiting: std::collections::HashSet<(Arc<str>, u32)> = std::collections::HashSet::new();
        while let Some(batch) = state.ready.pop_front() {
            let key = (batch.topic.clone(), batch.partition);
            if waiting.contains(&key) {
                held.push_back(batch);
                continue;
            }
            let capped = batch.sequence.is_some() && state.unanswered.get(&key).copied().unwrap_or(0) >= UNANSWERED_MAX;
            let address = shared.client.address_for(&batch.topic, batch.partition);
            match address {
                Ok(_) if capped => {
                    // Sent when an answer comes back (the response wakes the sender).
                    waiting.insert(key);
                    held.push_back(batch);
                }
                Ok(address) if batch.not_before <= now => {
                    let busy = state.in_flight.get(&address).copied().unwrap_or(0);
                    let requests = groups.entry(address).or_default();
                    let size = sizes.entry(address).or_default();
                    let fits =
                        requests.last().is_some_and(|_| *size + batch.records.len() <= shared.config.request_bytes_max);
                    let unanswered = batch.sequence.is_some();
                    if fits {
                        *size += batch.records.len();
                        requests.last_mut().expect("checked").push(batch);
                    } else if busy + requests.len() < shared.config.in_flight_max {
                        *size = batch.records.len();
                        requests.push(vec![batch]);
                    } else {
                        waiting.insert(key);
                        held.push_back(batch);
                        continue;
                    }
                    if unanswered {
                        *state.unanswered.entry(key).or_default() += 1;
                    }
                }
                Ok(_) => {
                    retry_due = Some(retry_due.map_or(batch.not_before, |d| d.min(batch.not_before)));
                    waiting.insert(key);
                    held.push_back(batch);
                }
                Err(error) => finish(&mut state, shared, batch, Err(error)),
            }
        }
        state.ready = held;
        groups.retain(|_, requests| !requests.is_empty());
        if groups.is_empty() {
            if state.closed && state.ready.is_empty() && state.requests_in_flight == 0 && state.open_batches() == 0 {
                return;
            }
            let wake = [next_due, retry_due].into_iter().flatten().min();
            let timeout = wake.map_or(Duration::from_millis(100), |at| at.saturating_duration_since(now));
            state = shared.work.wait_timeout(state, timeout).unwrap_or_else(|p| p.into_inner()).0;
            continue;
        }
        for (address, requests) in &groups {
            *state.in_flight.entry(*address).or_default() += requests.len();
            state.requests_in_flight += requests.len();
        }
        drop(state);
        for (address, requests) in groups {
            for batches in requests {
                send_group(shared, address, batches);
            }
        }
        state = lock(&shared.state);
    }
}

/// Sends one produce request holding `batches`, all for the same connection.
fn send_group(shared: &Arc<Shared>, address: SocketAddr, batches: Vec<ReadyBatch>) {
    let acks = shared.config.acks;
    let mut topics: Vec<ProduceTopic> = Vec::new();
    for batch in &batches {
        let entry = ProducePartition { partition: batch.partition, records: batch.records.clone() };
        match topics.last_mut() {
            Some(topic) if *topic.name == *batch.topic => topic.partitions.push(entry),
            _ => topics.push(ProduceTopic { name: batch.topic.to_string(), partitions: vec![entry] }),
        }
    }
    let timeout = shared.client.timeout();
    let request = ProduceRequest { acks: acks.wire(), timeout_ms: timeout.as_millis() as u32, topics };
    let connection = match shared.client.connection(address) {
        Ok(connection) => connection,
        Err(error) => return on_response(shared, address, batches, Err(error)),
    };
    if acks == Acks::None {
        let result =
            connection.send_produce(&request, timeout, None).map(|()| Response::Produce(ProduceResponse::default()));
        return on_response(shared, address, batches, result);
    }
    let callback_shared = shared.clone();
    let callback: crate::connection::Callback =
        Box::new(move |result| on_response(&callback_shared, address, batches, result));
    // A failed write has already run the callback with the error.
    let _ = connection.send_produce(&request, timeout, Some(callback));
}

/// Completes or requeues each batch of a request from its response.
fn on_response(shared: &Arc<Shared>, address: SocketAddr, batches: Vec<ReadyBatch>, result: Result<Response>) {
    let mut state = lock(&shared.state);
    if let Some(count) = state.in_flight.get_mut(&address) {
        *count = count.saturating_sub(1);
    }
    state.requests_in_flight = state.requests_in_flight.saturating_sub(1);
    for batch in batches.iter().filter(|b| b.sequence.is_some()) {
        if let Some(count) = state.unanswered.get_mut(&(batch.topic.clone(), batch.partition)) {
            *count = count.saturating_sub(1);
        }
    }
    let outcomes: Vec<Result<i64>> =
        match &result {
            Ok(Response::Produce(_)) if shared.config.acks == Acks::None => batches.iter().map(|_| Ok(-1)).collect(),
            Ok(Response::Produce(response)) => {
                let entries: Vec<&ProducePartitionResponse> =
                    response.topics.iter().flat_map(|t| t.partitions.iter()).collect();
                if entries.len() != batches.len() {
                    let error = ClientError::Protocol("produce response does not match the request".into());
                    batches.iter().map(|_| Err(error.clone())).collect()
                } else {
                    entries
                        .into_iter()
                        .map(|e| {
                            if e.error == ErrorCode::None {
                                Ok(e.base_offset)
                            } else {
                                Err(ClientError::broker(e.error))
                            }
                        })
                        .collect()
                }
            }
            Ok(other) => batches.iter().map(|_| Err(unexpected(other))).collect(),
            Err(error) => batches.iter().map(|_| Err(error.clone())).collect(),
        };
    let mut retry = Vec::new();
    for (mut batch, outcome) in batches.into_iter().zip(outcomes) {
        match outcome {
            Err(error) if retriable(&error, &batch) && batch.attempts < shared.config.retries && !state.closed => {
                // The partition moved (a new leader, a stale epoch), or its broker is
                // gone: metadata again before the retry goes out.
                let moved = matches!(
                    error,
                    ClientError::Broker { code: ErrorCode::NotLeader | ErrorCode::StaleEpoch, .. }
                        | ClientError::Disconnected { .. }
                        | ClientError::Connect { .. }
                        | ClientError::Timeout { .. }
                );
                if moved {
                    state.metadata_at = None;
                }
                batch.attempts += 1;
                batch.not_before = Instant::now() + Duration::from_millis(shared.config.retry_backoff_ms);
                retry.push(batch);
            }
            outcome => finish(&mut state, shared, batch, outcome),
        }
    }
    for batch in retry.into_iter().rev() {
        requeue(&mut state.ready, batch);
    }
    drop(state);
    shared.work.notify_one();
    shared.space.notify_all();
}

/// Whether `batch` is to be sent again after `error`: what the broker calls
/// retriable, and for an idempotent batch also a gap in its sequence (a batch before
/// it is being retried).
fn retriable(error: &ClientError, batch: &ReadyBatch) -> bool {
    let out_of_order = matches!(error, ClientError::Broker { code: ErrorCode::OutOfOrderSequence, .. });
    error.is_retriable() || (out_of_order && batch.sequence.is_some())
}

/// Puts a batch to retry back at the front of the queue, behind any batch of its
/// partition with an earlier sequence and before the later ones, so that a partition's
/// retries go out in order.
fn requeue(ready: &mut VecDeque<ReadyBatch>, batch: ReadyBatch) {
    let Some(sequence) = batch.sequence else { return ready.push_front(batch) };
    let same = |other: &ReadyBatch| other.partition == batch.partition && other.topic == batch.topic;
    let earlier = ready
        .iter()
        .rposition(|other| same(other) && other.sequence.is_some_and(|s| s < sequence))
        .map_or(0, |at| at + 1);
    ready.insert(earlier, batch);
}

/// Moves the producer to a new id (InitProducerId naming the old one, KIP-360; the
/// broker answers with a fresh id at epoch 0) once its requests in flight are answered (each
/// answered, retried or failed), then numbers the queued batches again from sequence
/// 0 in queue order, so the partition whose batch failed accepts the rest. Nothing is
/// sent while requests are in flight; if the broker cannot answer the bump, it is tried
/// again after the retry backoff and sending goes on meanwhile. A broker without
/// InitProducerId leaves the producer without idempotence.
fn bump_epoch<'a>(shared: &'a Shared, state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
    if state.requests_in_flight > 0 {
        return shared.work.wait_timeout(state, Duration::from_millis(100)).unwrap_or_else(|p| p.into_inner()).0;
    }
    let Identity::Known { producer_id, epoch } = state.identity else {
        let mut state = state;
        state.bump_needed = false;
        return state;
    };
    drop(state);
    let bumped = futures_executor::block_on(shared.client.init_producer_id(Some((producer_id, epoch))));
    let mut state = lock(&shared.state);
    let (producer_id, epoch) = match bumped {
        Ok(bumped) => bumped,
        Err(ClientError::Broker { code: ErrorCode::UnknownApi, .. }) => {
            state.identity = Identity::None;
            state.bump_needed = false;
            return state;
        }
        Err(_) => {
            state.bump_retry_at = Some(Instant::now() + Duration::from_millis(shared.config.retry_backoff_ms));
            return state;
        }
    };
    state.identity = Identity::Known { producer_id, epoch };
    state.bump_retry_at = None;
    let State { topics, ready, .. } = &mut *state;
    for topic in topics.values_mut() {
        topic.sequences.iter_mut().for_each(|s| *s = 0);
    }
    for batch in ready.iter_mut().filter(|b| b.sequence.is_some()) {
        let Some(topic) = topics.get_mut(&batch.topic) else { continue };
        let sequence = &mut topic.sequences[batch.partition as usize];
        let mut bytes = batch.records.to_vec();
        let records =
            strand_protocol::batch::BatchHeader::parse(&bytes).map_or(1, |h| i64::from(h.last_offset_delta) + 1);
        strand_protocol::batch::stamp_producer(&mut bytes, producer_id, epoch, *sequence);
        batch.sequence = Some(*sequence);
        batch.records = Bytes::from(bytes);
        *sequence = sequence_after(*sequence, records);
    }
    state.bump_needed = false;
    state
}

fn finish(state: &mut State, shared: &Shared, batch: ReadyBatch, outcome: Result<i64>) {
    if outcome.is_err() && batch.sequence.is_some() {
        state.bump_needed = true;
    }
    state.buffered_bytes = state.buffered_bytes.saturating_sub(batch.buffered_bytes);
    batch.delivery.complete(outcome);
    shared.space.notify_all();
}
