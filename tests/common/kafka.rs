//! A Kafka wire client for tests: requests encoded with the `kafka-protocol` crate (so
//! the broker is checked against an encoder it did not write), frames written and
//! read on a plain socket, and raw frames for hostile input.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long a test waits for one answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

pub struct KafkaConnection {
    pub stream: TcpStream,
    next_correlation: i32,
}

impl KafkaConnection {
    pub fn connect(port: u16) -> KafkaConnection {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(ANSWER_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        KafkaConnection { stream, next_correlation: 1 }
    }

    /// The frame of `request` (size prefix included), with a fresh correlation id.
    pub fn frame<R: Encodable>(&mut self, api: ApiKey, version: i16, request: &R) -> (i32, Vec<u8>) {
        let correlation = self.next_correlation;
        self.next_correlation += 1;
        let mut header = RequestHeader::default();
        header.request_api_key = api as i16;
        header.request_api_version = version;
        header.correlation_id = correlation;
        header.client_id = Some(StrBytes::from_static_str("strand-test"));
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
