//! The four codecs of a compressed RecordBatch v2: gzip, snappy, lz4 and zstd.
//!
//! In a compressed batch everything after the 61-byte header is one compressed stream
//! of the records, encoded as in an uncompressed batch. The broker stores those bytes
//! as they came; it decompresses them only to check the records inside (count, offset
//! deltas, lengths), with a bound on the decompressed size so that a small batch that
//! expands without end (a decompression bomb) is refused after at most `max` bytes of
//! output, never expanded. Clients decompress to read the records.
//!
//! The formats are the ones Kafka's clients write and read:
//! - gzip: RFC 1952, one or more members;
//! - snappy: the xerial framing the Java client writes (`\x82SNAPPY\0`, two versions,
//!   then length-prefixed raw blocks), or one raw snappy block as librdkafka writes;
//!   Strand writes the xerial framing, which every client reads;
//! - lz4: the LZ4 frame format (Kafka's `KafkaLZ4BlockOutputStream` for magic 2);
//! - zstd: one or more zstd frames.

use std::io::Read;
use thiserror::Error;

/// Compression codec named in a batch's attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// Every codec, `None` first.
    pub const ALL: [Compression; 5] =
        [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

    /// The codec's name as Kafka's `compression.type` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// The codec named `name` (`none`, `gzip`, `snappy`, `lz4`, `zstd`).
    pub fn from_name(name: &str) -> Option<Compression> {
        Compression::ALL.into_iter().find(|codec| codec.name() == name)
    }

    /// The codec's bits in a batch's attributes.
    pub fn attribute(self) -> u16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }
}

/// Why a compressed stream could not be decompressed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CompressionError {
    /// The stream expands past the bound.
    #[error("records decompress to more than {max} bytes (the limit)")]
    TooLarge { max: usize },
    /// The stream is not valid for its codec.
    #[error("{codec:?} data does not decompress: {reason}")]
    Corrupt { codec: Compression, reason: String },
}

/// The xerial snappy framing's magic, followed by two big-endian i32 versions.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_BYTES: usize = 16;
/// Uncompressed bytes per xerial block, as the Java client writes them.
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;
/// zstd's own default limit on a decoder's window (128 MiB), and its minimum.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;
const ZSTD_WINDOW_LOG_MIN: u32 = 10;
/// zstd level: the library's default, a good ratio at about 300 MB/s per core.
const ZSTD_LEVEL: i32 = 3;

/// Decompresses `input` (the records of a batch compressed with `codec`) into `out`,
/// which is cleared first. Fails once the output would pass `max` bytes.
/// `Compression::None` copies the input (bounded the same way).
pub fn decompress_into(
    codec: Compression,
    input: &[u8],
    max: usize,
    out: &mut Vec<u8>,
) -> Result<(), CompressionError> {
    out.clear();
    let corrupt = |reason: String| CompressionError::Corrupt { codec, reason };
    match codec {
        Compression::None => {
            if input.len() > max {
                return Err(CompressionError::TooLarge { max });
            }
            out.extend_from_slice(input);
            Ok(())
        }
        Compression::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(input), max, out, codec),
        Compression::Snappy if input.starts_with(&XERIAL_MAGIC) => xerial_decompress(input, max, out),
        Compression::Snappy => snappy_block(input, max, out).map_err(corrupt),
        Compression::Lz4 => lz4_frames(input, max, out),
        Compression::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(input).map_err(|e| corrupt(e.to_string()))?;
            // The window is memory the decoder allocates from the frame header's claim:
            // never more than the output may hold.
            let window_log = usize::BITS - max.max(1).leading_zeros();
            let window_log = window_log.clamp(ZSTD_WINDOW_LOG_MIN, ZSTD_WINDOW_LOG_MAX);
            decoder.window_log_max(window_log).map_err(|e| corrupt(e.to_string()))?;
            read_bounded(decoder, max, out, codec)
        }
    }
}

/// Compresses `input` with `codec` in the format Kafka's clients read.
pub fn compress(codec: Compression, input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    match codec {
        Compression::None => input.to_vec(),
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(input).expect("writing to a Vec cannot fail");
            encoder.finish().expect("writing to a Vec cannot fail")
        }
        Compression::Snappy => xerial_compress(input),
        Compression::Lz4 => {
            let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
            encoder.write_all(input).expect("writing to a Vec cannot fail");
            encoder.finish().expect("writing to a Vec cannot fail")
        }
        Compression::Zstd => zstd::bulk::compress(input, ZSTD_LEVEL).expect("zstd compresses any input"),
    }
}

/// Reads `reader` to its end into `out`, failing past `max` bytes.
fn read_bounded(reader: impl Read, max: usize, out: &mut Vec<u8>, codec: Compression) -> Result<(), CompressionError> {
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    match reader.take(limit).read_to_end(out) {
        Ok(_) if out.len() > max => Err(CompressionError::TooLarge { max }),
        Ok(_) => Ok(()),
        Err(error) => Err(CompressionError::Corrupt { codec, reason: error.to_string() }),
    }
}

/// The LZ4 frame's magic number, little-endian.
const LZ4_MAGIC: u32 = 0x184D_2204;
/// A linked block may refer this far back into what came before it.
const LZ4_WINDOW_BYTES: usize = 64 * 1024;

/// One or more LZ4 frames, read block by block straight into `out`. (lz4_flex's
/// `FrameDecoder` allocates and zeroes its buffers for every frame: measured at a
/// third of a shard's time under lz4 produce load.) The header checksum is not
/// checked (Kafka's oldest clients wrote it wrong; the batch's CRC-32C covers these
/// bytes anyway); block and content checksums are skipped for the same reason.
fn lz4_frames(input: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), CompressionError> {
    let corrupt = |reason: &str| CompressionError::Corrupt { codec: Compression::Lz4, reason: reason.to_string() };
    let u32_at = |at: usize| input.get(at..at + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
    let mut at = 0;
    while at < input.len() {
        if u32_at(at) != Some(LZ4_MAGIC) {
            return Err(corrupt("not an LZ4 frame (bad magic)"));
        }
        let (Some(&flg), Some(&bd)) = (input.get(at + 4), input.get(at + 5)) else {
            return Err(corrupt("the frame descriptor is truncated"));
        };
        if flg >> 6 != 1 {
            return Err(corrupt("unsupported LZ4 frame version"));
        }
        let linked = flg & 0x20 == 0;
        let block_checksum = flg & 0x10 != 0;
        let content_size = flg & 0x08 != 0;
        let content_checksum = flg & 0x04 != 0;
        let dict_id = flg & 0x01 != 0;
        let block_max = match (bd >> 4) & 0x07 {
            size @ 4..=7 => 1usize << (2 * size + 8),
            _ => return Err(corrupt("bad block maximum size")),
        };
        at += 7 + if content_size { 8 } else { 0 } + if dict_id { 4 } else { 0 };
        loop {
            let Some(size) = u32_at(at) else { return Err(corrupt("a block size is truncated")) };
            at += 4;
            if size == 0 {
                at += if content_checksum { 4 } else { 0 };
                break;
            }
            let len = (size & 0x7fff_ffff) as usize;
            let Some(block) = input.get(at..).and_then(|rest| rest.get(..len)) else {
                return Err(corrupt("a block runs past the end of the data"));
            };
            if len > block_max {
                return Err(corrupt("a block is larger than the frame's maximum"));
            }
            if size & 0x8000_0000 != 0 {
                // Stored uncompressed.
                if out.len() + len > max {
                    return Err(CompressionError::TooLarge { max });
                }
                out.extend_from_slice(block);
            } else {
                let start = out.len();
                let room = block_max.min(max - start);
                out.resize(start + room, 0);
                let (before, tail) = out.split_at_mut(start);
                let written = if linked {
                    let dict = &before[before.len().saturating_sub(LZ4_WINDOW_BYTES)..];
                    lz4_flex::block::decompress_into_with_dict(block, tail, dict)
                } else {
                    lz4_flex::block::decompress_into(block, tail)
                };
                match written {
                    Ok(written) => out.truncate(start + written),
                    // The block would not fit what is left of the bound.
                    Err(_) if room < block_max => return Err(CompressionError::TooLarge { max }),
                    Err(error) => return Err(corrupt(&error.to_string())),
                }
            }
            at += len + if block_checksum { 4 } else { 0 };
        }
    }
    Ok(())
}

/// One raw snappy block, its declared length checked before anything is allocated.
fn snappy_block(input: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), String> {
    let len = snap::raw::decompress_len(input).map_err(|e| e.to_string())?;
    if out.len() + len > max {
        return Err(format!("a block declares {len} bytes, past the limit of {max}"));
    }
    let start = out.len();
    out.resize(start + len, 0);
    let written = snap::raw::Decoder::new().decompress(input, &mut out[start..]).map_err(|e| e.to_string())?;
    out.truncate(start + written);
    Ok(())
}

fn xerial_decompress(input: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), CompressionError> {
    let corrupt = |reason: String| CompressionError::Corrupt { codec: Compression::Snappy, reason };
    if input.len() < XERIAL_HEADER_BYTES {
        return Err(corrupt("the xerial header is truncated".into()));
    }
    let mut at = XERIAL_HEADER_BYTES;
    while at < input.len() {
        let Some(len) = input.get(at..at + 4) else {
            return Err(corrupt(format!("a block length is truncated at byte {at}")));
        };
        let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
        at += 4;
        let Some(block) = input.get(at..).and_then(|rest| rest.get(..len)) else {
            return Err(corrupt(format!("a block of {len} bytes runs past the end at byte {at}")));
        };
        let declared = snap::raw::decompress_len(block).map_err(|e| corrupt(e.to_string()))?;
        if out.len() + declared > max {
            return Err(CompressionError::TooLarge { max });
        }
        snappy_block(block, max, out).map_err(corrupt)?;
        at += len;
    }
    Ok(())
}

fn xerial_compress(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(XERIAL_HEADER_BYTES + input.len() / 2 + 64);
    out.extend_from_slice(&XERIAL_MAGIC);
    out.extend_from_slice(&1i32.to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
    let mut encoder = snap::raw::Encoder::new();
    for block in input.chunks(XERIAL_BLOCK_BYTES) {
        let compressed = encoder.compress_vec(block).expect("snappy compresses any block under 4 GiB");
        out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
        out.extend_from_slice(&compressed);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODECS: [Compression; 4] = [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

    fn sample() -> Vec<u8> {
        (0..100_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect()
    }

    #[test]
    fn every_codec_round_trips() {
        let input = sample();
        for codec in CODECS {
            let compressed = compress(codec, &input);
            assert!(compressed.len() < input.len(), "{codec:?} compresses");
            let mut out = Vec::new();
            decompress_into(codec, &compressed, input.len(), &mut out).unwrap();
            assert_eq!(out, input, "{codec:?}");
        }
    }

    #[test]
    fn output_past_the_bound_is_refused() {
        let input = vec![0u8; 1 << 20];
        for codec in CODECS {
            let compressed = compress(codec, &input);
            let mut out = Vec::new();
            let error = decompress_into(codec, &compressed, 4096, &mut out).unwrap_err();
            assert!(
                matches!(error, CompressionError::TooLarge { max: 4096 } | CompressionError::Corrupt { .. }),
                "{codec:?}: {error}"
            );
            assert!(out.len() <= 4097, "{codec:?} wrote {} bytes", out.len());
        }
    }

    #[test]
    fn lz4_frames_of_every_kind_are_read() {
        use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
        use std::io::Write;
        let input = sample();
        for (mode, block_size, checksums) in [
            (BlockMode::Linked, BlockSize::Max64KB, true),
            (BlockMode::Independent, BlockSize::Max256KB, false),
            (BlockMode::Linked, BlockSize::Max4MB, false),
        ] {
            let mut info = FrameInfo::new().block_mode(mode).block_size(block_size).content_checksum(checksums);
            info.block_checksums = checksums;
            info.content_size = checksums.then_some(input.len() as u64);
            let mut encoder = FrameEncoder::with_frame_info(info, Vec::new());
            encoder.write_all(&input).unwrap();
            let mut frames = encoder.finish().unwrap();
            // Two frames back to back read as one stream.
            frames.extend_from_within(..);
            let mut out = Vec::new();
            decompress_into(Compression::Lz4, &frames, 2 * input.len(), &mut out).unwrap();
            assert_eq!(out.len(), 2 * input.len(), "{mode:?} {block_size:?}");
            assert_eq!(&out[..input.len()], &input[..]);
            assert_eq!(&out[input.len()..], &input[..]);
        }
    }

    #[test]
    fn raw_snappy_as_librdkafka_writes_it_is_read() {
        let input = sample();
        let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
        let mut out = Vec::new();
        decompress_into(Compression::Snappy, &raw, input.len(), &mut out).unwrap();
        assert_eq!(out, input);
    }

    #[test]
    fn garbage_is_an_error_for_every_codec() {
        let garbage: Vec<u8> = (0..512u32).map(|i| (i * 7919 % 256) as u8).collect();
        for codec in CODECS {
            let mut out = Vec::new();
            assert!(decompress_into(codec, &garbage, 1 << 20, &mut out).is_err(), "{codec:?}");
        }
    }
}
