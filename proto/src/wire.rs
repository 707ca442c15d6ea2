//! A minimal protobuf wire reader and writer that borrow from the input buffer.
//!
//! The ingest hot path walks remote-write messages field by field, validates
//! labels as `&[u8]` slices and copies whole series as byte ranges, so it never
//! allocates per label or per sample.

use std::fmt;

pub const WIRE_VARINT: u8 = 0;
pub const WIRE_FIXED64: u8 = 1;
pub const WIRE_LEN: u8 = 2;
pub const WIRE_FIXED32: u8 = 5;

/// Why a buffer is not a well-formed protobuf message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    Truncated,
    /// Longer than 10 bytes, or a 10th byte that overflows 64 bits.
    VarintTooLong,
    /// A field key over 32 bits (a field number of 2^29 or more).
    KeyTooLarge(u64),
    BadWireType(u8),
    ZeroFieldNumber,
    /// A field carried another wire type than its schema says.
    UnexpectedWireType {
        field: u32,
        wire_type: u8,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => write!(f, "message is truncated"),
            WireError::VarintTooLong => {
                write!(f, "varint is longer than 10 bytes or overflows 64 bits")
            }
            WireError::KeyTooLarge(key) => write!(f, "field key {key} is over 32 bits"),
            WireError::BadWireType(wire_type) => write!(f, "unknown wire type {wire_type}"),
            WireError::ZeroFieldNumber => write!(f, "field number 0"),
            WireError::UnexpectedWireType { field, wire_type } => {
                write!(f, "field {field} has unexpected wire type {wire_type}")
            }
        }
    }
}

impl std::error::Error for WireError {}

/// The value of one field, borrowing length-delimited payloads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
    Fixed32(u32),
}

impl<'a> Value<'a> {
    pub fn wire_type(&self) -> u8 {
        match self {
            Value::Varint(_) => WIRE_VARINT,
            Value::Fixed64(_) => WIRE_FIXED64,
            Value::Len(_) => WIRE_LEN,
            Value::Fixed32(_) => WIRE_FIXED32,
        }
    }
}

/// One field as found on the wire: its number, value, and the byte range it
/// occupies in the parent buffer (tag included), for copying it verbatim.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Field<'a> {
    pub number: u32,
    pub value: Value<'a>,
    pub raw: &'a [u8],
}

impl<'a> Field<'a> {
    /// The payload of a length-delimited field, or an error naming the field.
    pub fn bytes(&self) -> Result<&'a [u8], WireError> {
        match self.value {
            Value::Len(bytes) => Ok(bytes),
            other => Err(self.unexpected(other)),
        }
    }

    pub fn varint(&self) -> Result<u64, WireError> {
        match self.value {
            Value::Varint(v) => Ok(v),
            other => Err(self.unexpected(other)),
        }
    }

    pub fn fixed64(&self) -> Result<u64, WireError> {
        match self.value {
            Value::Fixed64(v) => Ok(v),
            other => Err(self.unexpected(other)),
        }
    }

    fn unexpected(&self, value: Value<'a>) -> WireError {
        WireError::UnexpectedWireType {
            field: self.number,
            wire_type: value.wire_type(),
        }
    }
}

/// Iterates the fields of one message.
pub struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Fields { buf, pos: 0 }
    }

    #[inline]
    fn next_field(&mut self) -> Result<Field<'a>, WireError> {
        let start = self.pos;
        let key = read_varint(self.buf, &mut self.pos)?;
        // As prost (and every protobuf decoder) has it: a key is 32 bits. The
        // records ingest writes are read with prost, so what it refuses must
        // not get through here.
        let key = u32::try_from(key).map_err(|_| WireError::KeyTooLarge(key))?;
        let number = key >> 3;
        if number == 0 {
            return Err(WireError::ZeroFieldNumber);
        }
        let value = match (key & 7) as u8 {
            WIRE_VARINT => Value::Varint(read_varint(self.buf, &mut self.pos)?),
            WIRE_FIXED64 => {
                let bytes = self.take(8)?;
                Value::Fixed64(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
            }
            WIRE_LEN => {
                let len = read_varint(self.buf, &mut self.pos)?;
                let len = usize::try_from(len).map_err(|_| WireError::Truncated)?;
                Value::Len(self.take(len)?)
            }
            WIRE_FIXED32 => {
                let bytes = self.take(4)?;
                Value::Fixed32(u32::from_le_bytes(bytes.try_into().expect("4 bytes")))
            }
            other => return Err(WireError::BadWireType(other)),
        };
        Ok(Field {
            number,
            value,
            raw: &self.buf[start..self.pos],
        })
    }

    #[inline]
    fn take(&mut self, len: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(len).ok_or(WireError::Truncated)?;
        if end > self.buf.len() {
            return Err(WireError::Truncated);
        }
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<Field<'a>, WireError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let field = self.next_field();
        if field.is_err() {
            // Stop after the first error: the rest of the buffer is not framed.
            self.pos = self.buf.len();
        }
        Some(field)
    }
}

/// Reads a base-128 varint at `*pos`, advancing it.
#[inline(always)]
pub fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, WireError> {
    // Keys, lengths of labels and most small values fit one byte: that case
    // is inlined at every call, the rest is a call.
    if let Some(&byte) = buf.get(*pos)
        && byte < 0x80
    {
        *pos += 1;
        return Ok(u64::from(byte));
    }
    read_varint_long(buf, pos)
}

#[inline(never)]
fn read_varint_long(buf: &[u8], pos: &mut usize) -> Result<u64, WireError> {
    let mut value: u64 = 0;
    for shift_index in 0..10 {
        let Some(&byte) = buf.get(*pos) else {
            return Err(WireError::Truncated);
        };
        *pos += 1;
        value |= u64::from(byte & 0x7f) << (7 * shift_index);
        if byte < 0x80 {
            // The 10th byte holds bit 63 only; more overflows, and prost refuses it.
            if shift_index == 9 && byte > 1 {
                return Err(WireError::VarintTooLong);
            }
            return Ok(value);
        }
    }
    Err(WireError::VarintTooLong)
}

/// Iterates a repeated `uint32`/`uint64` field given packed or as one unpacked value.
pub fn packed_varints(field: &Field<'_>) -> Result<Vec<u64>, WireError> {
    let mut out = Vec::new();
    match field.value {
        Value::Varint(v) => out.push(v),
        Value::Len(bytes) => {
            let mut pos = 0;
            while pos < bytes.len() {
                out.push(read_varint(bytes, &mut pos)?);
            }
        }
        other => {
            return Err(WireError::UnexpectedWireType {
                field: field.number,
                wire_type: other.wire_type(),
            });
        }
    }
    Ok(out)
}

/// Appends a base-128 varint.
#[inline]
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    if value < 0x80 {
        out.push(value as u8);
        return;
    }
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a length-delimited field (tag, length, payload).
#[inline]
pub fn put_len_field(out: &mut Vec<u8>, number: u32, payload: &[u8]) {
    put_varint(out, (u64::from(number) << 3) | u64::from(WIRE_LEN));
    put_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

/// The number of bytes `put_varint` writes for `value`.
#[inline]
pub fn varint_len(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for value in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, value);
            assert_eq!(buf.len(), varint_len(value));
            let mut pos = 0;
            assert_eq!(read_varint(&buf, &mut pos), Ok(value));
            assert_eq!(pos, buf.len());
        }
    }

    #[test]
    fn fields_report_truncation_once() {
        let mut buf = Vec::new();
        put_len_field(&mut buf, 1, b"hello");
        buf.truncate(4);
        let results: Vec<_> = Fields::new(&buf).collect();
        assert_eq!(results, vec![Err(WireError::Truncated)]);
    }

    /// Found by the `remote_write_v1` fuzz target: fields that this reader let
    /// through inside a series, which prost (reading the record downstream)
    /// refuses. Each must fail here as it fails there.
    #[test]
    fn fields_refuse_what_prost_refuses() {
        use crate::Message;
        use crate::prometheus::Sample;

        // A key of 2^32 (field number 2^29, varint): over 32 bits.
        let mut wide_key = Vec::new();
        put_varint(&mut wide_key, 1 << 32);
        put_varint(&mut wide_key, 7);
        // A 10-byte varint whose last byte overflows 64 bits: the key of
        // field 1 (fixed64) padded to 10 bytes, then a 2 in the 10th.
        let overflowing_key = [0x89, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02];
        // The same padding with a valid 10th byte decodes in both.
        let mut padded_key = vec![0x89, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00];
        padded_key.extend_from_slice(&1.5f64.to_le_bytes());

        for (input, error) in [
            (&wide_key[..], WireError::KeyTooLarge(1 << 32)),
            (&overflowing_key[..], WireError::VarintTooLong),
        ] {
            let results: Vec<_> = Fields::new(input).collect();
            assert_eq!(results, vec![Err(error)], "{input:02x?}");
            assert!(Sample::decode(input).is_err(), "prost reads {input:02x?}");
        }
        let mut pos = 0;
        assert_eq!(
            read_varint(
                &[0xff; 9].iter().chain(&[0x01]).copied().collect::<Vec<_>>(),
                &mut pos
            ),
            Ok(u64::MAX)
        );
        let fields: Vec<_> = Fields::new(&padded_key).collect();
        assert_eq!(fields.len(), 1);
        assert_eq!(fields[0].unwrap().fixed64(), Ok(1.5f64.to_bits()));
        assert_eq!(Sample::decode(&padded_key[..]).unwrap().value, 1.5);
    }

    #[test]
    fn raw_range_covers_tag_and_payload() {
        let mut buf = Vec::new();
        put_len_field(&mut buf, 3, b"abc");
        put_varint(&mut buf, 2 << 3);
        put_varint(&mut buf, 42);
        let fields: Vec<_> = Fields::new(&buf).map(Result::unwrap).collect();
        assert_eq!(fields[0].raw, &buf[..5]);
        assert_eq!(fields[0].bytes(), Ok(&b"abc"[..]));
        assert_eq!(fields[1].varint(), Ok(42));
    }
}
