//! Record batch validation from arbitrary bytes, decompression included: the first
//! byte picks the codec and the rest is the compressed body of a batch with a correct
//! CRC (so the fuzzer reaches the records, not just the checksum), then the raw bytes
//! as a batch of their own. Never a panic, never past the decompression bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strand_protocol::batch::{self, BatchLimits, Compression};
use strand_protocol::RecordIter;

const HEADER_BYTES: usize = 61;

/// A batch whose header agrees with itself around `body`, with a valid CRC.
fn sealed(codec: Compression, record_count: i32, body: &[u8]) -> Vec<u8> {
    let mut batch = vec![0u8; HEADER_BYTES];
    batch.extend_from_slice(body);
    let length = (batch.len() - 12) as u32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    batch[16] = 2;
    batch[21..23].copy_from_slice(&codec.attribute().to_be_bytes());
    batch[23..27].copy_from_slice(&(record_count - 1).to_be_bytes());
    batch[57..61].copy_from_slice(&record_count.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

fuzz_target!(|data: &[u8]| {
    let limits = BatchLimits::new(1 << 20, 8);
    if let Some((&selector, body)) = data.split_first() {
        let codec = Compression::ALL[usize::from(selector) % Compression::ALL.len()];
        let count = i32::from(selector >> 3) + 1;
        let forged = sealed(codec, count, body);
        if let Ok(header) = batch::validate(&forged, limits) {
            assert_eq!(header.record_count, count);
            let mut scratch = Vec::new();
            let records = RecordIter::read(&forged, &mut scratch, limits.records_bytes_max).expect("validated");
            assert_eq!(records.count(), count as usize);
        }
    }
    let _ = batch::validate(data, limits);
});
