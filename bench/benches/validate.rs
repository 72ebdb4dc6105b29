//! Criterion micro-benchmarks of batch validation on produce, per codec: what the
//! broker spends checking one 512 KiB batch of 1 KiB records (values half random,
//! half zeros), decompression and the record walk included, in bytes of records per
//! second on one core. The bound is memory and the codec's decompression speed.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use strand_protocol::batch::{self, BatchLimits, Compression};
use strand_protocol::BatchBuilder;

const RECORDS: usize = 512;
const RECORD_BYTES: usize = 1024;

fn batch_of(codec: Compression) -> Vec<u8> {
    let mut builder = BatchBuilder::with_compression(codec);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..RECORDS {
        let mut value = vec![0u8; RECORD_BYTES];
        for byte in &mut value[..RECORD_BYTES / 2] {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = state as u8;
        }
        builder.push(Some(format!("key-{i}").as_bytes()), Some(&value), &[], 1_700_000_000_000);
    }
    builder.build()
}

fn validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate");
    group.throughput(Throughput::Bytes((RECORDS * RECORD_BYTES) as u64));
    let limits = BatchLimits::default();
    for codec in Compression::ALL {
        let batch = batch_of(codec);
        let mut scratch = Vec::new();
        group.bench_function(codec.name(), |b| {
            b.iter(|| batch::validate_with(&batch, limits, &mut scratch).unwrap());
        });
    }
    group.finish();
}

criterion_group!(benches, validate);
criterion_main!(benches);
