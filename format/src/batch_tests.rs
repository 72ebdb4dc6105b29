//! Tests of batch validation, which build their batches with `record::BatchBuilder`
//! (kept apart so that `batch` itself never imports `record`).

use crate::batch::*;
use crate::record::BatchBuilder;
use proptest::prelude::*;

fn sample(records: usize) -> Vec<u8> {
    let mut builder = BatchBuilder::new();
    for i in 0..records {
        let key = format!("key-{i}");
        builder.push(Some(key.as_bytes()), Some(&[i as u8; 100]), &[], 1_700_000_000_000 + i as i64);
    }
    builder.build()
}

#[test]
fn builder_output_validates() {
    let batch = sample(10);
    let header = validate(&batch, BatchLimits::default()).unwrap();
    assert_eq!(header.record_count, 10);
    assert_eq!(header.last_offset_delta, 9);
    assert_eq!(header.total_bytes(), batch.len());
    assert_eq!(header.base_timestamp, 1_700_000_000_000);
    assert_eq!(header.max_timestamp, 1_700_000_000_009);
    assert_eq!(header.compression().unwrap(), Compression::None);
}

#[test]
fn known_crc32c_vector() {
    // RFC 3720's CRC-32C check value: "123456789" gives 0xE3069283. crc32fast's
    // IEEE CRC-32 would give 0xCBF43926, which Kafka clients reject.
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
}

#[test]
fn stamping_offset_keeps_crc_valid() {
    let mut batch = sample(3);
    stamp_base_offset(&mut batch, 123_456);
    let header = validate(&batch, BatchLimits::default()).unwrap();
    assert_eq!(header.base_offset, 123_456);
    assert_eq!(header.last_offset(), 123_458);
}

#[test]
fn log_append_time_rewrites_crc() {
    let mut batch = sample(3);
    stamp_log_append_time(&mut batch, 42);
    let header = validate(&batch, BatchLimits::default()).unwrap();
    assert_eq!(header.max_timestamp, 42);
    assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
}

#[test]
fn a_producer_stamp_rewrites_crc() {
    let mut batch = sample(3);
    stamp_producer(&mut batch, 77, 4, 1_000);
    let header = validate(&batch, BatchLimits::default()).unwrap();
    assert_eq!((header.producer_id, header.producer_epoch, header.base_sequence), (77, 4, 1_000));
}

#[test]
fn refuses_each_kind_of_damage() {
    let good = sample(4);
    let limits = BatchLimits::default();

    let mut bad_magic = good.clone();
    bad_magic[OFFSET_MAGIC] = 1;
    assert_eq!(validate(&bad_magic, limits), Err(BatchError::BadMagic { magic: 1 }));

    let mut bad_crc = good.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xff;
    assert!(matches!(validate(&bad_crc, limits), Err(BatchError::CrcMismatch { .. })));

    assert!(matches!(validate(&good[..good.len() - 1], limits), Err(BatchError::Truncated { .. })));

    let mut overrun = good.clone();
    overrun[OFFSET_BATCH_LENGTH..OFFSET_BATCH_LENGTH + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(validate(&overrun, BatchLimits::stored()), Err(BatchError::Truncated { .. })));
    assert!(matches!(validate(&overrun, limits), Err(BatchError::TooLarge { .. })));

    // A record count that disagrees with the header, with a CRC recomputed so that
    // only the count is wrong.
    let mut count = good.clone();
    count[OFFSET_RECORD_COUNT..OFFSET_RECORD_COUNT + 4].copy_from_slice(&5i32.to_be_bytes());
    reseal(&mut count);
    assert!(matches!(validate(&count, limits), Err(BatchError::RecordCountMismatch { .. })));

    // Header and count agree with each other but not with the records present.
    let mut both = good.clone();
    both[OFFSET_RECORD_COUNT..OFFSET_RECORD_COUNT + 4].copy_from_slice(&5i32.to_be_bytes());
    both[OFFSET_LAST_OFFSET_DELTA..OFFSET_LAST_OFFSET_DELTA + 4].copy_from_slice(&4i32.to_be_bytes());
    reseal(&mut both);
    assert!(matches!(validate(&both, limits), Err(BatchError::BadRecord { index: 4, .. })));

    let mut small = good.clone();
    small[OFFSET_BATCH_LENGTH..OFFSET_BATCH_LENGTH + 4].copy_from_slice(&10u32.to_be_bytes());
    assert_eq!(validate(&small, limits), Err(BatchError::LengthTooSmall { batch_length: 10 }));

    let mut codec = good.clone();
    codec[OFFSET_ATTRIBUTES + 1] |= 7;
    reseal(&mut codec);
    assert_eq!(validate(&codec, limits), Err(BatchError::UnknownCompression { codec: 7 }));
}

fn compressed_sample(codec: Compression, records: usize) -> Vec<u8> {
    let mut builder = BatchBuilder::with_compression(codec);
    for i in 0..records {
        builder.push(Some(format!("key-{i}").as_bytes()), Some(&[i as u8; 100]), &[], 1_700_000_000_000);
    }
    builder.build()
}

#[test]
fn compressed_batches_validate_and_read_back_for_every_codec() {
    for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
        let batch = compressed_sample(codec, 50);
        let header = validate(&batch, BatchLimits::default()).unwrap();
        assert_eq!(header.compression().unwrap(), codec);
        assert!(batch.len() < sample(50).len(), "{codec:?} is smaller");
        let mut scratch = Vec::new();
        let records: Vec<_> = crate::record::RecordIter::read(&batch, &mut scratch, 1 << 20)
            .unwrap()
            .map(|record| record.unwrap().value.unwrap().to_vec())
            .collect();
        assert_eq!(records.len(), 50);
        assert_eq!(records[49], vec![49u8; 100]);
        assert!(matches!(crate::record::RecordIter::new(&batch), Err(BatchError::Unsupported { .. })));
    }
}

/// A compressed batch whose header is consistent, with a CRC over whatever follows
/// it: only the records inside can tell it is wrong.
fn forge(codec: Compression, record_count: i32, body: &[u8]) -> Vec<u8> {
    let mut batch = sample(1)[..HEADER_BYTES].to_vec();
    batch.extend_from_slice(body);
    let length = (batch.len() - LOG_OVERHEAD) as u32;
    batch[OFFSET_BATCH_LENGTH..OFFSET_BATCH_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    batch[OFFSET_ATTRIBUTES..OFFSET_ATTRIBUTES + 2].copy_from_slice(&codec.attribute().to_be_bytes());
    batch[OFFSET_RECORD_COUNT..OFFSET_RECORD_COUNT + 4].copy_from_slice(&record_count.to_be_bytes());
    batch[OFFSET_LAST_OFFSET_DELTA..OFFSET_LAST_OFFSET_DELTA + 4].copy_from_slice(&(record_count - 1).to_be_bytes());
    reseal(&mut batch);
    batch
}

#[test]
fn compressed_batches_that_do_not_check_out_are_refused() {
    let limits = BatchLimits::default();
    for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
        let garbage = forge(codec, 1, &[0x5a; 300]);
        assert!(matches!(validate(&garbage, limits), Err(BatchError::Decompression(_))), "{codec:?}");

        // Valid compression, records that claim 2^31 - 1 of themselves.
        let good = compressed_sample(codec, 3);
        let claim = forge(codec, i32::MAX, &good[HEADER_BYTES..]);
        assert!(matches!(validate(&claim, limits), Err(BatchError::BadRecord { index: 3, .. })), "{codec:?}");

        // A bomb: 16 MiB of zeros in a batch under 1 MiB (snappy expands at most 21 times).
        let zeros = vec![0u8; 16 << 20];
        let bomb = forge(codec, 1, &crate::compression::compress(codec, &zeros));
        assert!(bomb.len() < limits.batch_bytes_max, "{codec:?}: {} bytes", bomb.len());
        let small = BatchLimits::new(limits.batch_bytes_max, 4);
        assert!(matches!(validate(&bomb, small), Err(BatchError::Decompression(_))), "{codec:?}");
    }
}

fn reseal(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[OFFSET_ATTRIBUTES..]);
    batch[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

proptest! {
    #[test]
    fn validate_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = validate(&bytes, BatchLimits::default());
    }

    #[test]
    fn mutated_batches_never_panic(flips in proptest::collection::vec((0usize..2000, any::<u8>()), 1..8)) {
        let mut batch = sample(8);
        for (at, value) in flips {
            let len = batch.len();
            batch[at % len] = value;
        }
        // A mutation inside the CRC-covered region must be caught; one outside it
        // (base offset, length, epoch, magic, crc) changes what is checked.
        let _ = validate(&batch, BatchLimits::default());
    }
}
