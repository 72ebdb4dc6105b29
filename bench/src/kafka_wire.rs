//! The generator's Kafka protocol (`--protocol kafka`): Produce v9 written as pieces
//! around the batches (no copy of records, as the native producer does), Fetch v12,
//! and their responses, decoded with the `kafka-protocol` crate. Kafka clients are not
//! shard-aware: every producer and consumer talks to the one Kafka port, and the
//! broker forwards what another shard owns.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// Versions the generator speaks (what librdkafka sends to a broker that serves them).
pub const PRODUCE_VERSION: i16 = 9;
pub const FETCH_VERSION: i16 = 12;

const CLIENT_ID: &str = "strand-bench";

fn uvarint(out: &mut Vec<u8>, mut value: u32) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A request header (v2: the client id, then no tagged fields).
fn header(out: &mut Vec<u8>, api: ApiKey, version: i16, correlation: i32) {
    out.extend_from_slice(&(api as i16).to_be_bytes());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&correlation.to_be_bytes());
    out.extend_from_slice(&(CLIENT_ID.len() as i16).to_be_bytes());
    out.extend_from_slice(CLIENT_ID.as_bytes());
    out.push(0);
}

/// A Produce v9 request as pieces: the size, header and fields in owned pieces, each
/// partition's batches as their own.
pub fn produce_pieces(
    correlation: i32,
    topic: &str,
    acks: i16,
    timeout_ms: i32,
    partitions: Vec<(u32, Bytes)>,
) -> Vec<Bytes> {
    let mut pieces = Vec::with_capacity(2 * partitions.len() + 2);
    let mut head = Vec::with_capacity(64 + topic.len());
    head.extend_from_slice(&[0; 4]);
    header(&mut head, ApiKey::Produce, PRODUCE_VERSION, correlation);
    head.push(0); // transactional_id: null
    head.extend_from_slice(&acks.to_be_bytes());
    head.extend_from_slice(&timeout_ms.to_be_bytes());
    uvarint(&mut head, 2); // one topic
    uvarint(&mut head, topic.len() as u32 + 1);
    head.extend_from_slice(topic.as_bytes());
    uvarint(&mut head, partitions.len() as u32 + 1);
    let mut total = 0usize;
    let mut part = head;
    for (partition, records) in partitions {
        part.extend_from_slice(&(partition as i32).to_be_bytes());
        uvarint(&mut part, records.len() as u32 + 1);
        total += part.len() + records.len();
        pieces.push(Bytes::from(std::mem::take(&mut part)));
        pieces.push(records);
        part.push(0); // partition tagged fields
    }
    part.push(0); // topic tagged fields
    part.push(0); // request tagged fields
    total += part.len();
    pieces.push(Bytes::from(part));
    let size = (total - 4) as i32;
    let mut first = BytesMut::from(&pieces[0][..]);
    first[..4].copy_from_slice(&size.to_be_bytes());
    pieces[0] = first.freeze();
    pieces
}

/// A Fetch v12 request frame for `partitions` (index, offset, per-partition bytes).
pub fn fetch_frame(
    correlation: i32,
    topic: &str,
    partitions: &[(u32, u64, u32)],
    max_wait_ms: u32,
    max_bytes: u32,
) -> Vec<u8> {
    let mut request = FetchRequest::default();
    request.max_wait_ms = max_wait_ms as i32;
    request.min_bytes = 1;
    request.max_bytes = max_bytes as i32;
    let mut asked = FetchTopic::default();
    asked.topic = TopicName(StrBytes::from_string(topic.to_string()));
    asked.partitions = partitions
        .iter()
        .map(|&(partition, offset, bytes)| {
            let mut part = FetchPartition::default();
            part.partition = partition as i32;
            part.fetch_offset = offset as i64;
            part.partition_max_bytes = bytes as i32;
            part
        })
        .collect();
    request.topics = vec![asked];
    let mut out = vec![0; 4];
    let mut request_header = RequestHeader::default();
    request_header.request_api_key = ApiKey::Fetch as i16;
    request_header.request_api_version = FETCH_VERSION;
    request_header.correlation_id = correlation;
    request_header.client_id = Some(StrBytes::from_static_str(CLIENT_ID));
    request_header.encode(&mut out, ApiKey::Fetch.request_header_version(FETCH_VERSION)).expect("a header encodes");
    request.encode(&mut out, FETCH_VERSION).expect("a fetch request encodes");
    let size = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&size.to_be_bytes());
    out
}

/// Splits the first whole response frame off `buf`: its correlation id and body.
pub fn split_response(buf: &mut BytesMut, frame_bytes_max: usize) -> Result<Option<(i32, Bytes)>, String> {
    let Some(size) = buf.get(..4) else { return Ok(None) };
    let size = i32::from_be_bytes(size.try_into().expect("four bytes"));
    if size < 4 || size as usize > frame_bytes_max {
        return Err(format!("a response frame of {size} bytes"));
    }
    if buf.len() < 4 + size as usize {
        return Ok(None);
    }
    let mut frame = buf.split_to(4 + size as usize).freeze();
    let _ = frame.split_to(4);
    let correlation = i32::from_be_bytes(frame[..4].try_into().expect("four bytes"));
    Ok(Some((correlation, frame)))
}

/// Bytes still to come of the frame `buf` starts with.
pub fn frame_rest(buf: &[u8]) -> usize {
    buf.get(..4).map_or(0, |size| {
        (4 + i32::from_be_bytes(size.try_into().expect("four bytes")).max(0) as usize).saturating_sub(buf.len())
    })
}

fn body_after_header(mut frame: Bytes, api: ApiKey, version: i16) -> Result<Bytes, String> {
    ResponseHeader::decode(&mut frame, api.response_header_version(version))
        .map_err(|e| format!("response header: {e}"))?;
    Ok(frame)
}

/// The first partition error of a Produce response, if any.
pub fn produce_error(frame: Bytes) -> Result<Option<String>, String> {
    let mut body = body_after_header(frame, ApiKey::Produce, PRODUCE_VERSION)?;
    let response = ProduceResponse::decode(&mut body, PRODUCE_VERSION).map_err(|e| format!("produce response: {e}"))?;
    for topic in &response.responses {
        for part in &topic.partition_responses {
            if part.error_code != 0 {
                return Ok(Some(format!(
                    "produce to {} partition {}: error {}",
                    topic.name.0, part.index, part.error_code
                )));
            }
        }
    }
    Ok(None)
}

/// One partition of a Fetch response.
pub struct Fetched {
    pub partition: u32,
    pub error: i16,
    pub high_watermark: i64,
    pub records: Bytes,
}

pub fn fetch_response(frame: Bytes) -> Result<Vec<Fetched>, String> {
    let mut body = body_after_header(frame, ApiKey::Fetch, FETCH_VERSION)?;
    let response = FetchResponse::decode(&mut body, FETCH_VERSION).map_err(|e| format!("fetch response: {e}"))?;
    Ok(response
        .responses
        .into_iter()
        .flat_map(|topic| topic.partitions)
        .map(|part| Fetched {
            partition: part.partition_index as u32,
            error: part.error_code,
            high_watermark: part.high_watermark,
            records: part.records.unwrap_or_default(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ProduceRequest;

    /// The pieces are a Produce v9 request the crate decodes, batches intact.
    #[test]
    fn produce_pieces_decode_as_a_produce_request() {
        let pieces =
            produce_pieces(7, "t", -1, 3000, vec![(0, Bytes::from_static(b"one")), (3, Bytes::from_static(b"two!"))]);
        let whole: Vec<u8> = pieces.iter().flat_map(|p| p.iter().copied()).collect();
        let mut frame = BytesMut::from(&whole[..]);
        let (correlation, frame) = split_response(&mut frame, 1 << 20).unwrap().unwrap();
        assert_eq!(correlation, 0x0000_0009, "the api key and version come first in a request");
        let mut body = frame;
        let header = RequestHeader::decode(&mut body, 2).unwrap();
        assert_eq!((header.request_api_key, header.correlation_id), (0, 7));
        let request = ProduceRequest::decode(&mut body, PRODUCE_VERSION).unwrap();
        assert!(body.is_empty());
        assert_eq!((request.acks, request.timeout_ms), (-1, 3000));
        let parts = &request.topic_data[0].partition_data;
        assert_eq!((parts[1].index, parts[1].records.as_deref()), (3, Some(&b"two!"[..])));
    }
}
