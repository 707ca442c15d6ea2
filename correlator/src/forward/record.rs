//! A bound or unbound record as the forwarder holds it: the payload it was
//! read with, where its symbols are, and one [`Span`] per series. Nothing of
//! it is copied into owned labels: requests are written from the record's
//! own bytes ([`request`](super::request)), the record shared by the shards
//! its series go to until the last of them is sent.
//!
//! Every series is checked here, once, as `read_batch` would (framing, wire
//! types, symbol references in range, UTF-8 symbols, histograms), so a
//! record that does not read is skipped whole and what reaches the shards
//! needs no checks again.

use proto::wire::{self, Field, Fields, Value};
use proto::{Message, v2};
use xxhash_rust::xxh3::xxh3_64;

use crate::batch::field;
use crate::forward::batch::PointCounts;
use crate::output::{self, CONTENT_TYPE_JSON};

/// One series of a record: where it is in the payload, the hash its shard
/// is chosen by, and its points and size as the batching limits count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub(crate) start: u32,
    pub(crate) end: u32,
    pub(crate) hash: u64,
    pub(crate) points: PointCounts,
    pub(crate) bytes: usize,
}

impl Span {
    pub fn points(&self) -> PointCounts {
        self.points
    }

    /// A series' size in a request before compression, near enough to bound it.
    pub fn estimated_bytes(&self) -> usize {
        self.bytes
    }

    /// The shard out of `shards` the series goes to: by its labels, so a
    /// series always takes the same one.
    pub fn shard(&self, shards: usize) -> usize {
        (self.hash % shards as u64) as usize
    }
}

/// A record's payload (an `io.prometheus.write.v2.Request`) and its symbols.
#[derive(Debug, Default)]
pub struct Record {
    payload: Vec<u8>,
    /// Start and end of each symbol in `payload`.
    symbols: Vec<(u32, u32)>,
}

/// The labels of a series or exemplar as read: their hash (series only:
/// by the hashes of the record's symbols) and the bytes the size estimate
/// counts.
#[derive(Default)]
struct LabelWalk<'h> {
    symbol_hashes: Option<&'h [u64]>,
    hash: u64,
    bytes: usize,
    pending_name: Option<u32>,
}

/// One step of a series' hash: order matters, so a name and a value never
/// trade places unnoticed.
#[inline]
fn mix(hash: u64, part: u64) -> u64 {
    (hash ^ part)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .rotate_left(29)
}

/// The last step, so that every bit of the hash reaches the low ones the shard is taken by.
fn finish(mut hash: u64) -> u64 {
    // MurmurHash3's finalizer.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

impl Record {
    /// A record of `content_type` read: JSON batches are written as 2.0 first.
    pub fn read(content_type: &str, payload: Vec<u8>) -> Result<(Record, Vec<Span>), String> {
        if content_type.eq_ignore_ascii_case(CONTENT_TYPE_JSON) {
            let series = output::read_batch(content_type, &payload)?;
            return Record::parse(super::request::encode_series_v2(&series));
        }
        Record::parse(payload)
    }

    /// An uncompressed `io.prometheus.write.v2.Request` read, or why it does not read.
    pub fn parse(payload: Vec<u8>) -> Result<(Record, Vec<Span>), String> {
        if u32::try_from(payload.len()).is_err() {
            return Err("record over 4 GiB".to_string());
        }
        let mut symbols = Vec::new();
        let mut series = Vec::new();
        for found in Fields::new(&payload) {
            let found = found.map_err(|error| error.to_string())?;
            match found.number {
                field::REQUEST_SYMBOLS => {
                    let text = found.bytes().map_err(|error| error.to_string())?;
                    std::str::from_utf8(text).map_err(|error| format!("symbol: {error}"))?;
                    symbols.push(range_in(&payload, text));
                }
                field::REQUEST_TIMESERIES => {
                    let bytes = found.bytes().map_err(|error| error.to_string())?;
                    series.push(range_in(&payload, bytes));
                }
                _ => {}
            }
        }
        let record = Record { payload, symbols };
        // Each symbol hashed once: a series' hash is then one step per label string.
        let hashes: Vec<u64> = (0..record.symbols.len() as u32)
            .map(|reference| xxh3_64(record.symbol(reference)))
            .collect();
        let mut spans = Vec::with_capacity(series.len());
        for (start, end) in series {
            spans.push(record.measure(start, end, &hashes)?);
        }
        Ok((record, spans))
    }

    /// The bytes of symbol `reference` (checked in range when read).
    pub(crate) fn symbol(&self, reference: u32) -> &[u8] {
        let (start, end) = self.symbols[reference as usize];
        &self.payload[start as usize..end as usize]
    }

    pub(crate) fn symbol_count(&self) -> usize {
        self.symbols.len()
    }

    /// The encoded `TimeSeries` of `span`.
    pub(crate) fn series(&self, span: &Span) -> &[u8] {
        &self.payload[span.start as usize..span.end as usize]
    }

    fn check_ref(&self, reference: u64) -> Result<u32, String> {
        match u32::try_from(reference) {
            Ok(reference) if (reference as usize) < self.symbols.len() => Ok(reference),
            _ => Err(format!("symbol reference {reference} out of range")),
        }
    }

    /// The refs of a packed (or single) `repeated uint32` field, checked in range.
    fn each_ref(&self, found: &Field<'_>, mut each: impl FnMut(u32)) -> Result<(), String> {
        match found.value {
            Value::Varint(reference) => each(self.check_ref(reference)?),
            Value::Len(packed) => {
                let mut at = 0;
                while at < packed.len() {
                    let reference =
                        wire::read_varint(packed, &mut at).map_err(|error| error.to_string())?;
                    each(self.check_ref(reference)?);
                }
            }
            other => {
                return Err(format!(
                    "field {} has unexpected wire type {}",
                    found.number,
                    other.wire_type()
                ));
            }
        }
        Ok(())
    }

    /// One series checked, hashed and measured.
    fn measure(&self, start: u32, end: u32, symbol_hashes: &[u64]) -> Result<Span, String> {
        let bytes = &self.payload[start as usize..end as usize];
        let mut points = PointCounts::default();
        let mut size = 8;
        let mut walk = LabelWalk {
            symbol_hashes: Some(symbol_hashes),
            ..LabelWalk::default()
        };
        let fail = |error: wire::WireError| error.to_string();
        for found in Fields::new(bytes) {
            let found = found.map_err(fail)?;
            match found.number {
                field::TIME_SERIES_LABELS_REFS => {
                    self.each_ref(&found, |reference| self.label_ref(&mut walk, reference))?
                }
                field::TIME_SERIES_SAMPLES => {
                    check_sample(found.bytes().map_err(fail)?)?;
                    points.samples += 1;
                    size += 20;
                }
                field::TIME_SERIES_HISTOGRAMS => {
                    let histogram = v2::Histogram::decode(found.bytes().map_err(fail)?)
                        .map_err(|error| error.to_string())?;
                    points.histograms += 1;
                    size += 32
                        + 10 * (histogram.positive_deltas.len() + histogram.negative_deltas.len());
                }
                field::TIME_SERIES_EXEMPLARS => {
                    size += self.check_exemplar(found.bytes().map_err(fail)?)? + 20;
                    points.exemplars += 1;
                }
                field::TIME_SERIES_METADATA => self.check_metadata(found.bytes().map_err(fail)?)?,
                field::TIME_SERIES_CREATED_TIMESTAMP => {
                    found.varint().map_err(fail)?;
                }
                _ => {}
            }
        }
        self.end_labels(&mut walk)?;
        Ok(Span {
            start,
            end,
            hash: finish(walk.hash),
            points,
            bytes: size + walk.bytes,
        })
    }

    /// A label ref of a series or exemplar: refs pair up as name and value.
    #[inline]
    fn label_ref(&self, walk: &mut LabelWalk<'_>, reference: u32) {
        let Some(name) = walk.pending_name.take() else {
            walk.pending_name = Some(reference);
            return;
        };
        let length = |reference: u32| {
            let (start, end) = self.symbols[reference as usize];
            (end - start) as usize
        };
        walk.bytes += length(name) + length(reference) + 4;
        if let Some(hashes) = walk.symbol_hashes {
            walk.hash = mix(
                mix(walk.hash, hashes[name as usize]),
                hashes[reference as usize],
            );
        }
    }

    /// A name without a value is read with value "" (ref 0).
    fn end_labels(&self, walk: &mut LabelWalk<'_>) -> Result<(), String> {
        if walk.pending_name.is_some() {
            self.label_ref(walk, self.check_ref(0)?);
        }
        Ok(())
    }

    /// Checks an exemplar; returns its label bytes as the size estimate counts them.
    fn check_exemplar(&self, bytes: &[u8]) -> Result<usize, String> {
        let mut walk = LabelWalk::default();
        for found in Fields::new(bytes) {
            let found = found.map_err(|error| error.to_string())?;
            match found.number {
                field::EXEMPLAR_LABELS_REFS => {
                    self.each_ref(&found, |reference| self.label_ref(&mut walk, reference))?
                }
                field::EXEMPLAR_VALUE => {
                    found.fixed64().map_err(|error| error.to_string())?;
                }
                field::EXEMPLAR_TIMESTAMP => {
                    found.varint().map_err(|error| error.to_string())?;
                }
                _ => {}
            }
        }
        self.end_labels(&mut walk)?;
        Ok(walk.bytes)
    }

    fn check_metadata(&self, bytes: &[u8]) -> Result<(), String> {
        for found in Fields::new(bytes) {
            let found = found.map_err(|error| error.to_string())?;
            match found.number {
                field::METADATA_TYPE => {
                    found.varint().map_err(|error| error.to_string())?;
                }
                field::METADATA_HELP_REF | field::METADATA_UNIT_REF => {
                    self.check_ref(found.varint().map_err(|error| error.to_string())?)?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Where `part`, a slice of `payload`, starts and ends in it.
fn range_in(payload: &[u8], part: &[u8]) -> (u32, u32) {
    let start = part.as_ptr() as usize - payload.as_ptr() as usize;
    (start as u32, (start + part.len()) as u32)
}

/// A `Sample`'s fields have the wire types of their schema.
fn check_sample(bytes: &[u8]) -> Result<(), String> {
    if is_plain_sample(bytes) {
        return Ok(());
    }
    for found in Fields::new(bytes) {
        let found = found.map_err(|error| error.to_string())?;
        let checked = match found.number {
            field::SAMPLE_VALUE => found.fixed64().map(drop),
            field::SAMPLE_TIMESTAMP | field::SAMPLE_START_TIMESTAMP => found.varint().map(drop),
            _ => Ok(()),
        };
        checked.map_err(|error| error.to_string())?;
    }
    Ok(())
}

/// A `Sample` of a value and a timestamp only, as the join writes those of
/// 1.0 input.
pub(crate) use wire::is_plain_sample;

/// The fields of a message [`Record::parse`] has checked.
pub(crate) fn checked_fields(bytes: &[u8]) -> impl Iterator<Item = Field<'_>> {
    Fields::new(bytes).map(|found| found.expect("checked when the record was read"))
}

/// The refs of a `repeated uint32` field [`Record::parse`] has checked.
pub(crate) fn checked_refs(found: &Field<'_>, mut each: impl FnMut(u32)) {
    match found.value {
        Value::Varint(reference) => each(reference as u32),
        Value::Len(packed) => {
            let mut at = 0;
            while at < packed.len() {
                each(wire::read_varint(packed, &mut at).expect("checked when read") as u32);
            }
        }
        _ => unreachable!("checked when the record was read"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::read_batch;

    fn request(symbols: &[&str], timeseries: Vec<v2::TimeSeries>) -> Vec<u8> {
        v2::Request {
            symbols: symbols.iter().map(|s| s.to_string()).collect(),
            timeseries,
        }
        .encode_to_vec()
    }

    fn series(labels_refs: Vec<u32>) -> v2::TimeSeries {
        v2::TimeSeries {
            labels_refs,
            samples: vec![v2::Sample {
                value: 1.0,
                timestamp: 5,
                start_timestamp: 0,
            }],
            ..v2::TimeSeries::default()
        }
    }

    #[test]
    fn plain_samples_are_those_of_a_value_and_a_timestamp() {
        let encoded = |sample: v2::Sample| sample.encode_to_vec();
        let sample = |timestamp: i64, start_timestamp: i64| v2::Sample {
            value: 1.5,
            timestamp,
            start_timestamp,
        };
        assert!(is_plain_sample(&encoded(sample(1_700_000_000_000, 0))));
        assert!(is_plain_sample(&encoded(sample(1, 0))));
        assert!(is_plain_sample(&encoded(sample(-1, 0))), "ten bytes");
        assert!(!is_plain_sample(&encoded(sample(5, 3))));
        assert!(
            !is_plain_sample(&encoded(sample(0, 0))),
            "no timestamp field"
        );
        let mut truncated = encoded(sample(1_700_000_000_000, 0));
        *truncated.last_mut().unwrap() |= 0x80;
        assert!(!is_plain_sample(&truncated));
        let mut overflowing = encoded(sample(-1, 0));
        *overflowing.last_mut().unwrap() = 0x02;
        assert!(!is_plain_sample(&overflowing));
        assert!(check_sample(&overflowing).is_err());
    }

    #[test]
    fn a_record_reads_only_where_read_batch_does() {
        let good = request(&["", "__name__", "up"], vec![series(vec![1, 2])]);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("good", good.clone()),
            (
                "dangling name",
                request(&["", "__name__"], vec![series(vec![1])]),
            ),
            (
                "ref out of range",
                request(&["", "a"], vec![series(vec![1, 2])]),
            ),
            ("truncated", good[..good.len() - 1].to_vec()),
            ("metadata ref", {
                let mut one = series(vec![1, 2]);
                one.metadata = Some(v2::Metadata {
                    r#type: 2,
                    help_ref: 9,
                    unit_ref: 0,
                });
                request(&["", "__name__", "up"], vec![one])
            }),
            ("exemplar ref", {
                let mut one = series(vec![1, 2]);
                one.exemplars = vec![v2::Exemplar {
                    labels_refs: vec![1, 7],
                    value: 1.0,
                    timestamp: 1,
                }];
                request(&["", "__name__", "up"], vec![one])
            }),
            ("bad utf-8", {
                let mut bytes = Vec::new();
                wire::put_len_field(&mut bytes, field::REQUEST_SYMBOLS, b"");
                wire::put_len_field(&mut bytes, field::REQUEST_SYMBOLS, b"\xff");
                bytes
            }),
            ("wire type", {
                let mut bytes = Vec::new();
                wire::put_key(&mut bytes, field::REQUEST_TIMESERIES, wire::WIRE_VARINT);
                wire::put_varint(&mut bytes, 3);
                bytes
            }),
        ];
        for (name, payload) in cases {
            let ours = Record::parse(payload.clone());
            let theirs = read_batch(proto::CONTENT_TYPE_V2, &payload);
            assert_eq!(
                ours.is_ok(),
                theirs.is_ok(),
                "{name}: {ours:?} / {theirs:?}"
            );
            if let (Ok((_, spans)), Ok(batch)) = (ours, theirs) {
                assert_eq!(spans.len(), batch.len(), "{name}");
            }
        }
    }
}
