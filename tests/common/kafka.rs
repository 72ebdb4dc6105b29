//! A Kafka wire client for tests: requests encoded with the `kafka-protocol` crate (so
//! the broker is checked against an encoder it did not write), frames written and
//! read on a plain socket, and raw frames for hostile input.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use strand_protocol::BatchBuilder;

/// How long a test waits for one answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

pub struct KafkaConnection {
    pub stream: TcpStream,
    next_correlation: i32,
    /// The client id every request names.
    client_id: &'static str,
}

impl KafkaConnection {
    pub fn connect(port: u16) -> KafkaConnection {
        KafkaConnection::connect_as(port, "strand-test")
    }

    /// A connection whose requests name `client_id`.
    pub fn connect_as(port: u16, client_id: &'static str) -> KafkaConnection {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(ANSWER_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        KafkaConnection { stream, next_correlation: 1, client_id }
    }

    /// The frame of `request` (size prefix included), with a fresh correlation id.
    pub fn frame<R: Encodable>(&mut self, api: ApiKey, version: i16, request: &R) -> (i32, Vec<u8>) {
        let correlation = self.next_correlation;
        self.next_correlation += 1;
        let mut header = RequestHeader::default();
        header.request_api_key = api as i16;
        header.request_api_version = version;
        header.correlation_id = correlation;
        header.client_id = Some(StrBytes::from_static_str(self.client_id));
        let mut body = Vec::new();
        header.encode(&mut body, api.request_header_version(version)).unwrap();
        request.encode(&mut body, version).unwrap();
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        (correlation, frame)
    }

    /// Sends `request`; returns its correlation id.
    pub fn send<R: Encodable>(&mut self, api: ApiKey, version: i16, request: &R) -> i32 {
        let (correlation, frame) = self.frame(api, version, request);
        self.stream.write_all(&frame).unwrap();
        correlation
    }

    /// Reads one response frame: its correlation id and the body after the header.
    pub fn receive_raw(&mut self, api: ApiKey, version: i16) -> (i32, Bytes) {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).expect("a response");
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut body).unwrap();
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, api.response_header_version(version)).unwrap();
        (header.correlation_id, body)
    }

    pub fn receive<T: Decodable>(&mut self, api: ApiKey, version: i16) -> (i32, T) {
        let (correlation, mut body) = self.receive_raw(api, version);
        let response = T::decode(&mut body, version).unwrap();
        assert!(!body.has_remaining(), "{api:?} v{version}: {} bytes after the response", body.remaining());
        (correlation, response)
    }

    /// Sends `request` and reads its answer.
    pub fn call<R: Encodable, T: Decodable>(&mut self, api: ApiKey, version: i16, request: &R) -> T {
        let correlation = self.send(api, version, request);
        let (answered, response) = self.receive(api, version);
        assert_eq!(answered, correlation);
        response
    }

    /// Whether the broker closes the connection (rather than answering) within the
    /// answer timeout.
    pub fn is_closed_by_broker(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(error) => error.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

// Requests the tests send often.

pub fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_string()))
}

pub fn batch(records: &[(&str, &str)]) -> Bytes {
    let mut builder = BatchBuilder::new();
    for (key, value) in records {
        builder.push(Some(key.as_bytes()), Some(value.as_bytes()), &[], 1_700_000_000_000);
    }
    Bytes::from(builder.finish())
}

pub fn produce_request(topic: &str, partition: i32, acks: i16, records: Bytes) -> ProduceRequest {
    let mut data = PartitionProduceData::default();
    data.index = partition;
    data.records = Some(records);
    let mut topic_data = TopicProduceData::default();
    topic_data.name = name(topic);
    topic_data.partition_data = vec![data];
    let mut request = ProduceRequest::default();
    request.acks = acks;
    request.timeout_ms = 10_000;
    request.topic_data = vec![topic_data];
    request
}

pub fn produce(conn: &mut KafkaConnection, topic: &str, records: Bytes) -> (i16, i64, Option<String>) {
    let response: ProduceResponse = conn.call(ApiKey::Produce, 9, &produce_request(topic, 0, -1, records));
    let part = &response.responses[0].partition_responses[0];
    (part.error_code, part.base_offset, part.error_message.as_ref().map(|m| m.to_string()))
}

pub fn latest_offset(conn: &mut KafkaConnection, topic: &str) -> i64 {
    let mut partition = ListOffsetsPartition::default();
    partition.partition_index = 0;
    partition.timestamp = -1;
    let mut asked = ListOffsetsTopic::default();
    asked.name = name(topic);
    asked.partitions = vec![partition];
    let mut request = ListOffsetsRequest::default();
    request.topics = vec![asked];
    let response: ListOffsetsResponse = conn.call(ApiKey::ListOffsets, 6, &request);
    let part = &response.topics[0].partitions[0];
    assert_eq!(part.error_code, 0);
    part.offset
}

pub fn metadata(conn: &mut KafkaConnection, version: i16, topics: &[&str], auto_create: bool) -> MetadataResponse {
    let mut request = MetadataRequest::default();
    request.topics = Some(
        topics
            .iter()
            .map(|topic| {
                let mut asked = MetadataRequestTopic::default();
                asked.name = Some(name(topic));
                asked
            })
            .collect(),
    );
    request.allow_auto_topic_creation = auto_create;
    conn.call(ApiKey::Metadata, version, &request)
}

pub fn fetch_request(topic: &str, topic_id: uuid::Uuid, offset: i64, max_wait_ms: i32) -> FetchRequest {
    let mut partition = FetchPartition::default();
    partition.partition = 0;
    partition.fetch_offset = offset;
    partition.partition_max_bytes = 1 << 20;
    let mut asked = FetchTopic::default();
    asked.topic = name(topic);
    asked.topic_id = topic_id;
    asked.partitions = vec![partition];
    let mut request = FetchRequest::default();
    request.max_wait_ms = max_wait_ms;
    request.min_bytes = 1;
    request.max_bytes = 50 << 20;
    request.topics = vec![asked];
    request
}
