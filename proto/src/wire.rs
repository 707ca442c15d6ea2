//! The one protobuf wire reader and writer of the pipeline, borrowing from the
//! input buffer.
//!
//! The ingest hot path walks remote-write messages field by field, validates
//! labels as `&[u8]` slices and copies whole series as byte ranges, so it never
//! allocates per label or per sample. What it reads is read again downstream
//! with prost, so the reader keeps prost's rules: 32-bit keys, varints of at
//! most 64 bits, groups (wire types 3 and 4) skipped as unknown fields to
//! prost's recursion limit, an end-group tag without its start refused.
//! Field numbers come from [`crate::fields`].

use std::fmt;

pub const WIRE_VARINT: u8 = 0;
pub const WIRE_FIXED64: u8 = 1;
pub const WIRE_LEN: u8 = 2;
pub const WIRE_START_GROUP: u8 = 3;
pub const WIRE_END_GROUP: u8 = 4;
pub const WIRE_FIXED32: u8 = 5;

/// prost's recursion budget at the fields of a top-level message; each nested
/// message, and each group, spends one.
pub const RECURSION_LIMIT: u32 = 100;

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
    /// An end-group tag without its start group, or ending another group.
    UnexpectedEndGroup,
    /// Messages and groups nested deeper than [`RECURSION_LIMIT`].
    RecursionLimit,
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
            WireError::UnexpectedEndGroup => write!(f, "end-group tag without its start group"),
            WireError::RecursionLimit => {
                write!(f, "nested deeper than {RECURSION_LIMIT} levels")
            }
        }
    }
}

impl std::error::Error for WireError {}

/// Reads fields off a slice, to prost's rules: the primitive under [`Fields`],
/// for readers that dispatch on the key before reading the value.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Whether bytes remain.
    #[inline]
    pub fn more(&self) -> bool {
        self.pos < self.buf.len()
    }

    /// The offset of the next byte in the buffer.
    #[inline]
    pub fn position(&self) -> usize {
        self.pos
    }

    /// A field key: (field number, wire type), checked as prost's `decode_key`
    /// (a key that fails two checks reports its zero field number).
    #[inline]
    pub fn key(&mut self) -> Result<(u32, u8), WireError> {
        let (number, wire_type) = self.key_of_any_type()?;
        if wire_type > WIRE_FIXED32 {
            return Err(WireError::BadWireType(wire_type));
        }
        Ok((number, wire_type))
    }

    /// [`Reader::key`] but for the wire type, which the caller matches on
    /// (one branch per field less in `Fields`).
    #[inline]
    fn key_of_any_type(&mut self) -> Result<(u32, u8), WireError> {
        let key = read_varint(self.buf, &mut self.pos)?;
        let key = u32::try_from(key).map_err(|_| WireError::KeyTooLarge(key))?;
        let number = key >> 3;
        if number == 0 {
            return Err(WireError::ZeroFieldNumber);
        }
        Ok((number, (key & 7) as u8))
    }

    #[inline]
    pub fn varint(&mut self) -> Result<u64, WireError> {
        read_varint(self.buf, &mut self.pos)
    }

    #[inline]
    pub fn take(&mut self, len: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(len).ok_or(WireError::Truncated)?;
        let bytes = self.buf.get(self.pos..end).ok_or(WireError::Truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    /// The payload of a length-delimited value.
    #[inline]
    pub fn len_delimited(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| WireError::Truncated)?;
        self.take(len)
    }

    #[inline]
    pub fn fixed64(&mut self) -> Result<u64, WireError> {
        let bytes = self.take(8)?;
        Ok(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }

    #[inline]
    pub fn fixed32(&mut self) -> Result<u32, WireError> {
        let bytes = self.take(4)?;
        Ok(u32::from_le_bytes(bytes.try_into().expect("4 bytes")))
    }

    /// Skips an unknown field as prost's `skip_field` does, groups included;
    /// `depth` is the recursion budget of the message holding the field.
    pub fn skip(&mut self, number: u32, wire_type: u8, depth: u32) -> Result<(), WireError> {
        if depth == 0 {
            return Err(WireError::RecursionLimit);
        }
        match wire_type {
            WIRE_VARINT => {
                self.varint()?;
            }
            WIRE_FIXED64 => {
                self.take(8)?;
            }
            WIRE_LEN => {
                self.len_delimited()?;
            }
            WIRE_START_GROUP => loop {
                let (inner, inner_type) = self.key()?;
                if inner_type == WIRE_END_GROUP {
                    if inner != number {
                        return Err(WireError::UnexpectedEndGroup);
                    }
                    break;
                }
                self.skip(inner, inner_type, depth - 1)?;
            },
            WIRE_END_GROUP => return Err(WireError::UnexpectedEndGroup),
            _ => {
                self.take(4)?;
            }
        }
        Ok(())
    }
}

/// Fails unless a field came with the wire type its schema gives it.
#[inline]
pub fn expect_wire_type(number: u32, wire_type: u8, expected: u8) -> Result<(), WireError> {
    if wire_type != expected {
        return Err(WireError::UnexpectedWireType {
            field: number,
            wire_type,
        });
    }
    Ok(())
}

/// The value of one field, borrowing length-delimited payloads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
    Fixed32(u32),
    /// A group, skipped as prost skips it (no schema here has one); its
    /// bytes, end tag included, are the field's `raw`.
    Group,
}

impl<'a> Value<'a> {
    pub fn wire_type(&self) -> u8 {
        match self {
            Value::Varint(_) => WIRE_VARINT,
            Value::Fixed64(_) => WIRE_FIXED64,
            Value::Len(_) => WIRE_LEN,
            Value::Fixed32(_) => WIRE_FIXED32,
            Value::Group => WIRE_START_GROUP,
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
    reader: Reader<'a>,
    depth: u32,
}

impl<'a> Fields<'a> {
    /// The fields of a top-level message.
    pub fn new(buf: &'a [u8]) -> Self {
        Fields::nested(buf, RECURSION_LIMIT)
    }

    /// The fields of a message with recursion budget `depth` (a top-level
    /// message has [`RECURSION_LIMIT`], each level of nesting one less).
    pub fn nested(buf: &'a [u8], depth: u32) -> Self {
        Fields {
            reader: Reader::new(buf),
            depth,
        }
    }

    #[inline]
    fn next_field(&mut self) -> Result<Field<'a>, WireError> {
        let reader = &mut self.reader;
        let start = reader.pos;
        let (number, wire_type) = reader.key_of_any_type()?;
        let value = match wire_type {
            WIRE_VARINT => Value::Varint(reader.varint()?),
            WIRE_FIXED64 => Value::Fixed64(reader.fixed64()?),
            WIRE_LEN => Value::Len(reader.len_delimited()?),
            WIRE_FIXED32 => Value::Fixed32(reader.fixed32()?),
            WIRE_START_GROUP | WIRE_END_GROUP => {
                // Refuses an end group, skips a whole group.
                reader.skip(number, wire_type, self.depth)?;
                Value::Group
            }
            other => return Err(WireError::BadWireType(other)),
        };
        Ok(Field {
            number,
            value,
            raw: &reader.buf[start..reader.pos],
        })
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<Field<'a>, WireError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if !self.reader.more() {
            return None;
        }
        let field = self.next_field();
        if field.is_err() {
            // Stop after the first error: the rest of the buffer is not framed.
            self.reader.pos = self.reader.buf.len();
        }
        Some(field)
    }
}

/// A remote-write 1.0 `Label`'s name and value bytes (empty when absent,
/// the last one when repeated, as prost reads them).
pub fn read_v1_label(label: &[u8]) -> Result<(&[u8], &[u8]), WireError> {
    use crate::fields::prometheus::{LABEL_NAME, LABEL_VALUE};
    let (mut name, mut value): (&[u8], &[u8]) = (&[], &[]);
    for field in Fields::new(label) {
        let field = field?;
        match field.number {
            LABEL_NAME => name = field.bytes()?,
            LABEL_VALUE => value = field.bytes()?,
            _ => {}
        }
    }
    Ok((name, value))
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
    put_len_prefix(out, number, payload.len());
    out.extend_from_slice(payload);
}

/// The number of bytes `put_varint` writes for `value`.
#[inline]
pub fn varint_len(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

// The writer: fields encoded as prost encodes them, for the hand-written
// encoders that must produce prost's bytes without building prost's messages.

/// Appends a field key.
#[inline]
pub fn put_key(out: &mut Vec<u8>, number: u32, wire_type: u8) {
    put_varint(out, (u64::from(number) << 3) | u64::from(wire_type));
}

/// The one-byte key of a field numbered below 16, for fast paths that match
/// the bytes senders write.
pub const fn key_byte(number: u32, wire_type: u8) -> u8 {
    assert!(number < 16, "a key of one byte");
    ((number << 3) as u8) | wire_type
}

/// The keys of a `Sample`'s value and timestamp, as senders write them.
pub const SAMPLE_VALUE_KEY: u8 = key_byte(crate::fields::prometheus::SAMPLE_VALUE, WIRE_FIXED64);
pub const SAMPLE_TIMESTAMP_KEY: u8 =
    key_byte(crate::fields::prometheus::SAMPLE_TIMESTAMP, WIRE_VARINT);
// 2.0's `Sample` numbers its value and timestamp as 1.0's does.
const _: () = assert!(
    crate::fields::prometheus::SAMPLE_VALUE == crate::fields::v2::SAMPLE_VALUE
        && crate::fields::prometheus::SAMPLE_TIMESTAMP == crate::fields::v2::SAMPLE_TIMESTAMP
);

/// A `Sample` (1.0 or 2.0) as senders write it: its value (key and 8
/// bytes), then its timestamp (key and a varint to the end), and nothing
/// else; its timestamp's varint starts at byte 10. False for any other shape
/// (a value or timestamp of 0 left out, a start timestamp, a truncated or
/// overlong varint): the field walker reads those. Recognised without
/// decoding a field.
#[inline]
pub fn is_plain_sample(sample: &[u8]) -> bool {
    let Some((last, varint)) = sample.get(10..).and_then(|tail| tail.split_last()) else {
        return false;
    };
    sample[0] == SAMPLE_VALUE_KEY
        && sample[9] == SAMPLE_TIMESTAMP_KEY
        && *last < 0x80
        && varint.len() < 10
        && (varint.len() < 9 || *last <= 1)
        && varint.iter().all(|byte| *byte >= 0x80)
}

/// The number of bytes of a field key.
#[inline]
pub fn key_len(number: u32) -> usize {
    varint_len(u64::from(number) << 3)
}

/// Appends the key and the length of a length-delimited field whose `len`
/// bytes of payload the caller writes next.
#[inline]
pub fn put_len_prefix(out: &mut Vec<u8>, number: u32, len: usize) {
    put_key(out, number, WIRE_LEN);
    put_varint(out, len as u64);
}

/// Appends a packed repeated `uint32` as prost writes it (nothing when empty).
#[inline]
pub fn put_packed_uint32(out: &mut Vec<u8>, number: u32, values: &[u32]) {
    if values.is_empty() {
        return;
    }
    // Symbol refs are mostly under 128: one byte each, no sizing pass.
    if values.iter().fold(0, |any, value| any | value) < 0x80 {
        put_len_prefix(out, number, values.len());
        out.extend(values.iter().map(|value| *value as u8));
        return;
    }
    let len: usize = values.iter().map(|v| varint_len(u64::from(*v))).sum();
    put_len_prefix(out, number, len);
    for value in values {
        put_varint(out, u64::from(*value));
    }
}

/// The number of bytes `put_packed_uint32` writes.
#[inline]
pub fn packed_uint32_len(number: u32, values: &[u32]) -> usize {
    if values.is_empty() {
        return 0;
    }
    let len: usize = values.iter().map(|v| varint_len(u64::from(*v))).sum();
    key_len(number) + varint_len(len as u64) + len
}

/// Appends a proto3 `int64` (or `uint32`, enum) field; nothing when 0.
#[inline]
pub fn put_int64(out: &mut Vec<u8>, number: u32, value: i64) {
    if value != 0 {
        put_key(out, number, WIRE_VARINT);
        put_varint(out, value as u64);
    }
}

/// The number of bytes `put_int64` writes.
#[inline]
pub fn int64_len(number: u32, value: i64) -> usize {
    if value == 0 {
        0
    } else {
        key_len(number) + varint_len(value as u64)
    }
}

/// Appends a proto3 `double` field: nothing when it compares equal to 0
/// (so -0.0 too, as prost has it).
#[inline]
pub fn put_double(out: &mut Vec<u8>, number: u32, value: f64) {
    if value != 0.0 {
        put_key(out, number, WIRE_FIXED64);
        out.extend_from_slice(&value.to_bits().to_le_bytes());
    }
}

/// Appends a `fixed64` (or `double`, as its bits) field even at 0, for a
/// value whose bits must survive (-0.0 too).
#[inline]
pub fn put_fixed64(out: &mut Vec<u8>, number: u32, bits: u64) {
    put_key(out, number, WIRE_FIXED64);
    out.extend_from_slice(&bits.to_le_bytes());
}

/// The number of bytes `put_double` writes.
#[inline]
pub fn double_len(number: u32, value: f64) -> usize {
    if value != 0.0 { key_len(number) + 8 } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v1_label_reads_as_prost_reads_it() {
        use crate::Message;
        use crate::prometheus::Label;
        let label = Label {
            name: "job".into(),
            value: "node".into(),
        }
        .encode_to_vec();
        assert_eq!(read_v1_label(&label).unwrap(), (&b"job"[..], &b"node"[..]));
        // A repeated name: the last one, as prost keeps it; an absent value: empty.
        let mut twice = label.clone();
        twice.extend(
            Label {
                name: "env".into(),
                value: String::new(),
            }
            .encode_to_vec(),
        );
        let decoded = Label::decode(&twice[..]).unwrap();
        assert_eq!(
            read_v1_label(&twice).unwrap(),
            (decoded.name.as_bytes(), decoded.value.as_bytes())
        );
        assert!(read_v1_label(&label[..label.len() - 1]).is_err());
    }

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

    /// Groups nested `depth` deep in field 5 of a message, empty inside.
    fn nested_groups(depth: usize) -> Vec<u8> {
        let mut buf = Vec::new();
        for _ in 0..depth {
            put_key(&mut buf, 5, WIRE_START_GROUP);
        }
        for _ in 0..depth {
            put_key(&mut buf, 5, WIRE_END_GROUP);
        }
        buf
    }

    /// Groups are skipped as prost skips unknown fields, to the same depth;
    /// a stray or mismatched end-group tag fails here as there.
    #[test]
    fn groups_follow_prosts_rules() {
        use crate::Message;
        use crate::prometheus::Sample;

        let mut sample = Vec::new();
        put_key(&mut sample, 7, WIRE_START_GROUP);
        put_key(&mut sample, 1, WIRE_VARINT);
        put_varint(&mut sample, 3);
        put_key(&mut sample, 7, WIRE_END_GROUP);
        put_double(&mut sample, crate::fields::prometheus::SAMPLE_VALUE, 2.5);
        let fields: Vec<_> = Fields::new(&sample).map(Result::unwrap).collect();
        assert_eq!(fields[0].value, Value::Group);
        assert_eq!(fields[0].raw.len(), 4);
        assert_eq!(fields[1].fixed64(), Ok(2.5f64.to_bits()));
        assert_eq!(Sample::decode(&sample[..]).unwrap().value, 2.5);

        let mut stray = Vec::new();
        put_key(&mut stray, 7, WIRE_END_GROUP);
        let mut mismatched = Vec::new();
        put_key(&mut mismatched, 7, WIRE_START_GROUP);
        put_key(&mut mismatched, 8, WIRE_END_GROUP);
        let mut unterminated = Vec::new();
        put_key(&mut unterminated, 7, WIRE_START_GROUP);
        for (input, error) in [
            (stray, WireError::UnexpectedEndGroup),
            (mismatched, WireError::UnexpectedEndGroup),
            (unterminated, WireError::Truncated),
        ] {
            let results: Vec<_> = Fields::new(&input).collect();
            assert_eq!(results, vec![Err(error)], "{input:02x?}");
            assert!(
                Sample::decode(&input[..]).is_err(),
                "prost reads {input:02x?}"
            );
        }

        let deepest = (1..200)
            .take_while(|depth| Sample::decode(&nested_groups(*depth)[..]).is_ok())
            .last()
            .unwrap();
        assert!(deepest < 199);
        assert_eq!(Fields::new(&nested_groups(deepest)).count(), 1);
        assert!(Fields::new(&nested_groups(deepest)).all(|f| f.is_ok()));
        let too_deep = nested_groups(deepest + 1);
        let results: Vec<_> = Fields::new(&too_deep).collect();
        assert_eq!(results, vec![Err(WireError::RecursionLimit)]);
        // One level down, one group less.
        let deepest_groups = nested_groups(deepest);
        let results: Vec<_> = Fields::nested(&deepest_groups, RECURSION_LIMIT - 1).collect();
        assert_eq!(results, vec![Err(WireError::RecursionLimit)]);
    }

    /// The writer's fields are prost's bytes.
    #[test]
    fn writer_encodes_as_prost() {
        use crate::Message;
        use crate::fields::v2::{EXEMPLAR_LABELS_REFS, EXEMPLAR_TIMESTAMP, EXEMPLAR_VALUE};
        use crate::v2::Exemplar;

        for (refs, value, timestamp) in [
            (vec![], 0.0, 0),
            (vec![3, 0, 127], 2.0, 5),
            (vec![1, 2, 300, 70_000], 1.5, -1),
            (vec![0, u32::MAX], -0.0, 1 << 40),
        ] {
            let exemplar = Exemplar {
                labels_refs: refs.clone(),
                value,
                timestamp,
            };
            let mut out = Vec::new();
            put_packed_uint32(&mut out, EXEMPLAR_LABELS_REFS, &refs);
            put_double(&mut out, EXEMPLAR_VALUE, value);
            put_int64(&mut out, EXEMPLAR_TIMESTAMP, timestamp);
            assert_eq!(out, exemplar.encode_to_vec());
            assert_eq!(
                out.len(),
                packed_uint32_len(EXEMPLAR_LABELS_REFS, &refs)
                    + double_len(EXEMPLAR_VALUE, value)
                    + int64_len(EXEMPLAR_TIMESTAMP, timestamp)
            );
            let mut field = Vec::new();
            put_len_prefix(&mut field, 4, out.len());
            field.extend_from_slice(&out);
            let mut expected = Vec::new();
            prost::encoding::message::encode(4, &exemplar, &mut expected);
            assert_eq!(field, expected);
        }
        assert_eq!(key_byte(2, WIRE_LEN), 0x12);
    }

    /// A `fixed64` is prost's `double` where prost writes one, and reads
    /// back to its bits at zero too.
    #[test]
    fn fixed64_is_a_double_kept_to_its_bits() {
        use crate::Message;
        use crate::fields::v2::EXEMPLAR_VALUE;
        use crate::v2::Exemplar;

        for value in [1.5, -2.0, f64::from_bits(crate::STALE_NAN_BITS), 0.0, -0.0] {
            let mut ours = Vec::new();
            put_fixed64(&mut ours, EXEMPLAR_VALUE, value.to_bits());
            if value != 0.0 {
                let mut double = Vec::new();
                put_double(&mut double, EXEMPLAR_VALUE, value);
                assert_eq!(ours, double);
            }
            let read = Exemplar::decode(&ours[..]).unwrap().value;
            assert_eq!(read.to_bits(), value.to_bits());
        }
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
