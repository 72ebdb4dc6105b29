//! Kafka's primitive types, read and written by hand where the crate's messages are
//! not used: the request header (so a short frame is an error, never a panic), the
//! Produce request's layout (so its record batches stay slices of the receive
//! buffer), and the Fetch response's fields (written around the stored batches).
//!
//! Flexible versions (KIP-482) use compact forms: lengths and counts as unsigned
//! varints of `n + 1` (0 meaning null), and tagged fields after each struct.

/// Why bytes could not be read: what was being read and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(pub String);

fn short(what: &str) -> WireError {
    WireError(format!("truncated at {what}"))
}

/// Reads Kafka primitives off a byte slice, tracking the position.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], WireError> {
        if self.remaining() < n {
            return Err(short(what));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn skip(&mut self, n: usize, what: &str) -> Result<(), WireError> {
        self.take(n, what).map(|_| ())
    }

    pub fn i16(&mut self, what: &str) -> Result<i16, WireError> {
        Ok(i16::from_be_bytes(self.take(2, what)?.try_into().expect("two bytes")))
    }

    pub fn i32(&mut self, what: &str) -> Result<i32, WireError> {
        Ok(i32::from_be_bytes(self.take(4, what)?.try_into().expect("four bytes")))
    }

    pub fn uvarint(&mut self, what: &str) -> Result<u32, WireError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let byte = self.take(1, what)?[0];
            value |= u32::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError(format!("{what}: a varint longer than 5 bytes")))
    }

    /// A length (`i16`, or compact) of a string or bytes: `None` for null. Checked
    /// against the bytes left.
    fn length(&mut self, flexible: bool, wide: bool, what: &str) -> Result<Option<usize>, WireError> {
        let length = if flexible {
            match self.uvarint(what)? {
                0 => return Ok(None),
                n => (n - 1) as usize,
            }
        } else {
            let n = if wide { i64::from(self.i32(what)?) } else { i64::from(self.i16(what)?) };
            if n < 0 {
                return Ok(None);
            }
            n as usize
        };
        if length > self.remaining() {
            return Err(WireError(format!("{what}: a length of {length} with {} bytes left", self.remaining())));
        }
        Ok(Some(length))
    }

    /// A nullable string, as a UTF-8 `&str`.
    pub fn string(&mut self, flexible: bool, what: &str) -> Result<Option<&'a str>, WireError> {
        let Some(length) = self.length(flexible, false, what)? else { return Ok(None) };
        let bytes = self.take(length, what)?;
        std::str::from_utf8(bytes).map(Some).map_err(|_| WireError(format!("{what}: not UTF-8")))
    }

    /// Nullable bytes: where they lie in the slice.
    pub fn bytes_range(&mut self, flexible: bool, what: &str) -> Result<Option<std::ops::Range<usize>>, WireError> {
        let Some(length) = self.length(flexible, true, what)? else { return Ok(None) };
        let start = self.pos;
        self.take(length, what)?;
        Ok(Some(start..start + length))
    }

    /// An array's count (`i32`, or compact): `None` for null. A count of more
    /// elements than the bytes left could hold (each at least `element_bytes_min`) is
    /// refused before anything is sized from it.
    pub fn count(&mut self, flexible: bool, element_bytes_min: usize, what: &str) -> Result<Option<usize>, WireError> {
        let count = if flexible {
            match self.uvarint(what)? {
                0 => return Ok(None),
                n => (n - 1) as usize,
            }
        } else {
            let n = self.i32(what)?;
            if n < 0 {
                return Ok(None);
            }
            n as usize
        };
        if count.saturating_mul(element_bytes_min.max(1)) > self.remaining() {
            return Err(WireError(format!("{what}: a count of {count} with {} bytes left", self.remaining())));
        }
        Ok(Some(count))
    }

    /// Skips a flexible struct's tagged fields (their sizes checked against the bytes
    /// left).
    pub fn skip_tagged_fields(&mut self, what: &str) -> Result<(), WireError> {
        let count = self.uvarint(what)?;
        if count as usize > self.remaining() {
            return Err(WireError(format!("{what}: {count} tagged fields with {} bytes left", self.remaining())));
        }
        for _ in 0..count {
            self.uvarint(what)?;
            let size = self.uvarint(what)? as usize;
            self.skip(size, what)?;
        }
        Ok(())
    }
}

/// Writes Kafka primitives onto an owned buffer.
pub trait Writer {
    fn put_i16(&mut self, value: i16);
    fn put_i32(&mut self, value: i32);
    fn put_i64(&mut self, value: i64);
    fn put_uvarint(&mut self, value: u32);
    /// A string: `i16` length, or compact when `flexible`.
    fn put_string(&mut self, value: &str, flexible: bool);
    /// An array count, or a bytes length (`i32`, or compact when `flexible`).
    fn put_length(&mut self, value: usize, flexible: bool);
}

impl Writer for Vec<u8> {
    fn put_i16(&mut self, value: i16) {
        self.extend_from_slice(&value.to_be_bytes());
    }

    fn put_i32(&mut self, value: i32) {
        self.extend_from_slice(&value.to_be_bytes());
    }

    fn put_i64(&mut self, value: i64) {
        self.extend_from_slice(&value.to_be_bytes());
    }

    fn put_uvarint(&mut self, mut value: u32) {
        while value >= 0x80 {
            self.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.push(value as u8);
    }

    fn put_string(&mut self, value: &str, flexible: bool) {
        if flexible {
            self.put_uvarint(value.len() as u32 + 1);
        } else {
            self.put_i16(value.len() as i16);
        }
        self.extend_from_slice(value.as_bytes());
    }

    fn put_length(&mut self, value: usize, flexible: bool) {
        if flexible {
            self.put_uvarint(value as u32 + 1);
        } else {
            self.put_i32(value as i32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_overlong_ones_are_refused() {
        for value in [0u32, 1, 127, 128, 300, 16_383, 16_384, u32::MAX] {
            let mut out = Vec::new();
            out.put_uvarint(value);
            assert_eq!(Reader::new(&out).uvarint("v").unwrap(), value);
        }
        assert!(Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]).uvarint("v").is_err());
        assert!(Reader::new(&[0x80]).uvarint("v").is_err());
    }

    #[test]
    fn lengths_and_counts_beyond_the_bytes_left_are_refused() {
        // A string of 5 bytes with 2 behind it.
        assert!(Reader::new(&[0, 5, b'a', b'b']).string(false, "s").is_err());
        // Compact bytes of 10 with none behind.
        assert!(Reader::new(&[11]).bytes_range(true, "b").is_err());
        // A count of 2^31 - 1.
        assert!(Reader::new(&[0x7f, 0xff, 0xff, 0xff]).count(false, 1, "a").is_err());
        assert_eq!(Reader::new(&[0xff, 0xff, 0xff, 0xff]).count(false, 1, "a").unwrap(), None);
        assert_eq!(Reader::new(&[0]).count(true, 1, "a").unwrap(), None);
        let mut reader = Reader::new(&[0, 2, b'o', b'k', 0, 0, 0, 1, 7]);
        assert_eq!(reader.string(false, "s").unwrap(), Some("ok"));
        assert_eq!(reader.bytes_range(false, "b").unwrap(), Some(8..9));
    }

    #[test]
    fn tagged_fields_are_skipped_within_the_bytes_left() {
        // Two fields: tag 0 of 1 byte, tag 5 of 2 bytes, then one byte more.
        let mut reader = Reader::new(&[2, 0, 1, 9, 5, 2, 9, 9, 42]);
        reader.skip_tagged_fields("t").unwrap();
        assert_eq!(reader.remaining(), 1);
        assert!(Reader::new(&[1, 0, 100, 1]).skip_tagged_fields("t").is_err());
        assert!(Reader::new(&[200, 1]).skip_tagged_fields("t").is_err());
    }
}
