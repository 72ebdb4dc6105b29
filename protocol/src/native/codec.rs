//! Payload encoding: little-endian integers; `string` = u16 length + UTF-8; `bytes` =
//! u32 length + bytes; `array<T>` = u32 count + elements. Every length and count is
//! checked against the bytes left in the frame and against `Limits` before anything is
//! allocated, so no frame can make the decoder allocate more than it holds.

use super::api::{DecodeError, Limits};
use bytes::Bytes;

/// Reads one payload. Byte fields are returned as slices of the payload (no copy).
pub struct Reader<'a> {
    payload: &'a Bytes,
    pos: usize,
    limits: &'a Limits,
}

impl<'a> Reader<'a> {
    /// A reader over one frame's payload.
    pub fn new(payload: &'a Bytes, limits: &'a Limits) -> Reader<'a> {
        Reader { payload, pos: 0, limits }
    }

    fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let available = self.payload.len() - self.pos;
        if len > available {
            return Err(DecodeError::Truncated { field, needed: len, available });
        }
        let start = self.pos;
        self.pos += len;
        Ok(&self.payload[start..start + len])
    }

    /// Fails unless every byte of the payload was read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        let left = self.payload.len() - self.pos;
        if left > 0 {
            return Err(DecodeError::TrailingBytes { bytes: left });
        }
        Ok(())
    }
}

/// A value with a wire encoding.
pub trait Wire: Sized {
    /// Appends the encoding of `self`.
    fn encode(&self, out: &mut Vec<u8>);
    /// Reads one value.
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

macro_rules! wire_int {
    ($($ty:ty),*) => {$(
        impl Wire for $ty {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
                let bytes = reader.take(std::mem::size_of::<$ty>(), stringify!($ty))?;
                Ok(<$ty>::from_le_bytes(bytes.try_into().expect("exact size")))
            }
        }
    )*};
}
wire_int!(u8, u16, u32, u64, i32, i64);

impl Wire for String {
    /// A string longer than 65,535 bytes (an error message echoing a client's value,
    /// say) is cut at the last character boundary that fits rather than refused.
    fn encode(&self, out: &mut Vec<u8>) {
        let mut len = self.len().min(u16::MAX as usize);
        while !self.is_char_boundary(len) {
            len -= 1;
        }
        (len as u16).encode(out);
        out.extend_from_slice(&self.as_bytes()[..len]);
    }
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let len = u16::decode(reader)? as usize;
        let bytes = reader.take(len, "string")?;
        std::str::from_utf8(bytes).map(str::to_owned).map_err(|_| DecodeError::BadUtf8)
    }
}

impl Wire for Bytes {
    fn encode(&self, out: &mut Vec<u8>) {
        (self.len() as u32).encode(out);
        out.extend_from_slice(self);
    }
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let len = u32::decode(reader)? as usize;
        reader.take(len, "bytes")?;
        Ok(reader.payload.slice(reader.pos - len..reader.pos))
    }
}

impl<T: Wire> Wire for Vec<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        (self.len() as u32).encode(out);
        for item in self {
            item.encode(out);
        }
    }
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let count = u32::decode(reader)? as usize;
        if count > reader.limits.array_count_max {
            return Err(DecodeError::CountTooLarge { count, max: reader.limits.array_count_max });
        }
        // Every element takes at least one byte: a count beyond the bytes left is a lie.
        let left = reader.payload.len() - reader.pos;
        if count > left {
            return Err(DecodeError::Truncated { field: "array", needed: count, available: left });
        }
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(T::decode(reader)?);
        }
        Ok(items)
    }
}

/// Declares a struct whose wire encoding is its fields in order.
macro_rules! wire_struct {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name { $($(#[$fmeta])* pub $field: $ty),* }

        impl $crate::native::codec::Wire for $name {
            #[allow(unused_variables)]
            fn encode(&self, out: &mut Vec<u8>) {
                $( $crate::native::codec::Wire::encode(&self.$field, out); )*
            }
            #[allow(unused_variables)]
            fn decode(reader: &mut $crate::native::codec::Reader<'_>) -> Result<Self, $crate::native::api::DecodeError> {
                Ok($name { $( $field: <$ty as $crate::native::codec::Wire>::decode(reader)? ),* })
            }
        }
    };
}
pub(crate) use wire_struct;
