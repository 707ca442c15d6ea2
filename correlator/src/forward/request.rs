//! Request bodies from the series of bound and unbound records: a
//! remote-write 2.0 request with one symbol table for all of them, or its
//! 1.0 form for receivers that speak only 1.0.
//!
//! Both are written from the records' own bytes ([`Record`]): a 2.0 series
//! keeps its samples, histograms and start timestamp as they are, its
//! symbol refs mapped to the request's table; a 1.0 series gets its labels
//! straight from the record's symbols. The buffers are kept from one
//! request to the next ([`Encoder`]).
//!
//! The 1.0 form carries the same samples, native histograms (fields 1 to 16
//! are the same in both versions) and exemplars; 2.0's start timestamps have
//! no place in it. Metadata, per series in 2.0, becomes one entry per metric
//! family in the same request.

use std::collections::{BTreeMap, HashMap};

use proto::wire::{self, Field};
use proto::{Message, v2};

use crate::batch::field;
use crate::forward::batch::Batch;
use crate::forward::config::Protocol;
use crate::forward::record::{Record, Span, checked_fields, checked_refs, is_plain_sample};
use crate::output::BatchSeries;
use proto::fields::prometheus as v1_field;

/// Metric types whose series carry suffixes of their family's name.
const HISTOGRAM: i32 = 3;
const GAUGE_HISTOGRAM: i32 = 4;
const SUMMARY: i32 = 5;

/// The last `Histogram` field both versions have.
const LAST_SHARED_HISTOGRAM_FIELD: u32 = v1_field::HISTOGRAM_CUSTOM_VALUES;

/// The family a series of metadata type `kind` belongs to, by its name.
fn family_name(name: &[u8], kind: i32) -> &[u8] {
    let suffixes: &[&str] = match kind {
        HISTOGRAM | SUMMARY => &["_bucket", "_sum", "_count", "_created"],
        GAUGE_HISTOGRAM => &["_bucket", "_gsum", "_gcount"],
        _ => &[],
    };
    suffixes
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix.as_bytes()))
        .unwrap_or(name)
}

/// Symbols of a 2.0 request built from owned series, each once ("" first, as 2.0 requires).
struct Symbols<'s> {
    table: Vec<String>,
    refs: HashMap<&'s str, u32, foldhash::fast::RandomState>,
}

impl<'s> Symbols<'s> {
    fn new() -> Symbols<'s> {
        let mut symbols = Symbols {
            table: Vec::new(),
            refs: HashMap::default(),
        };
        symbols.reference("");
        symbols
    }

    fn reference(&mut self, text: &'s str) -> u32 {
        if let Some(reference) = self.refs.get(text) {
            return *reference;
        }
        let reference = self.table.len() as u32;
        self.table.push(text.to_string());
        self.refs.insert(text, reference);
        reference
    }

    fn pairs(&mut self, labels: &'s [(String, String)]) -> Vec<u32> {
        let mut refs = Vec::with_capacity(labels.len() * 2);
        for (name, value) in labels {
            refs.push(self.reference(name));
            refs.push(self.reference(value));
        }
        refs
    }
}

/// An uncompressed `io.prometheus.write.v2.Request` of owned `series` (a
/// JSON record's, to be read as [`Record`]).
pub fn encode_series_v2(series: &[BatchSeries]) -> Vec<u8> {
    let mut symbols = Symbols::new();
    let mut timeseries = Vec::with_capacity(series.len());
    for one in series {
        let exemplars = one
            .exemplars
            .iter()
            .map(|(labels, value, timestamp)| v2::Exemplar {
                labels_refs: symbols.pairs(labels),
                value: *value,
                timestamp: *timestamp,
            })
            .collect();
        let metadata = one
            .metadata
            .as_ref()
            .map(|(kind, help, unit)| v2::Metadata {
                r#type: *kind,
                help_ref: symbols.reference(help),
                unit_ref: symbols.reference(unit),
            });
        timeseries.push(v2::TimeSeries {
            labels_refs: symbols.pairs(&one.labels),
            samples: one.samples.clone(),
            histograms: one.histograms.clone(),
            exemplars,
            metadata,
            created_timestamp: one.created_timestamp,
        });
    }
    v2::Request {
        symbols: symbols.table,
        timeseries,
    }
    .encode_to_vec()
}

/// A series' metadata as read, its strings as refs of its record.
#[derive(Default, Clone, Copy)]
struct MetadataRefs {
    kind: i32,
    help: u32,
    unit: u32,
}

impl MetadataRefs {
    /// Merges one `Metadata` field in (a later field's values win, as protobuf has it).
    fn merge(&mut self, bytes: &[u8]) {
        for found in checked_fields(bytes) {
            let value = || found.varint().expect("checked when read");
            match found.number {
                field::METADATA_TYPE => self.kind = value() as i32,
                field::METADATA_HELP_REF => self.help = value() as u32,
                field::METADATA_UNIT_REF => self.unit = value() as u32,
                _ => {}
            }
        }
    }
}

/// A 1.0 metric family's type, help and unit.
type FamilyMetadata<'b> = (i32, &'b [u8], &'b [u8]);

/// Writes requests of [`Batch`]es; one per shard, its buffers kept between requests.
pub struct Encoder {
    /// The request before compression.
    body: Vec<u8>,
    /// 2.0: the symbols written so far, then the series.
    symbols: Vec<u8>,
    /// One series being written, and the parts of it written apart.
    series: Vec<u8>,
    rest: Vec<u8>,
    nested: Vec<u8>,
    refs: Vec<u32>,
    exemplar_refs: Vec<u32>,
    /// 2.0: each record symbol's ref in the request (`UNMAPPED` until used), by record.
    remap: Vec<u32>,
    remap_start: Vec<usize>,
    compressed: Vec<u8>,
    snappy: snap::raw::Encoder,
}

const UNMAPPED: u32 = u32::MAX;

/// The 2.0 request's symbol table: each string once, by its bytes.
struct Table<'b, 'e> {
    ids: HashMap<&'b [u8], u32, foldhash::fast::RandomState>,
    encoded: &'e mut Vec<u8>,
    remap: &'e mut [u32],
}

impl<'b> Table<'b, '_> {
    /// The request's ref of symbol `reference` of `record`, whose refs start at `start` in `remap`.
    #[inline]
    fn map(&mut self, record: &'b Record, start: usize, reference: u32) -> u32 {
        let slot = &mut self.remap[start + reference as usize];
        if *slot != UNMAPPED {
            return *slot;
        }
        let text = record.symbol(reference);
        let next = self.ids.len() as u32;
        let mapped = *self.ids.entry(text).or_insert_with(|| {
            wire::put_len_field(self.encoded, field::REQUEST_SYMBOLS, text);
            next
        });
        *slot = mapped;
        mapped
    }

    /// Field `number` of `out`: a message of label refs of `record` (its
    /// first at `start` in `remap`) as one packed field of the request's refs,
    /// then `tail`. A name without a value gets "", as when read.
    fn put_message(
        &mut self,
        (out, number): (&mut Vec<u8>, u32),
        (refs_field, refs): (u32, &mut Vec<u32>),
        (record, start): (&'b Record, usize),
        tail: &[u8],
        message: &mut Vec<u8>,
    ) {
        if refs.len() % 2 == 1 {
            refs.push(0);
        }
        for reference in refs.iter_mut() {
            *reference = self.map(record, start, *reference);
        }
        message.clear();
        wire::put_packed_uint32(message, refs_field, refs);
        message.extend_from_slice(tail);
        wire::put_len_field(out, number, message);
    }
}

/// Walks a series of `record`: its label refs into `refs`, its metadata
/// merged, every other field to `each`.
fn walk_series<'r>(
    record: &'r Record,
    span: &Span,
    refs: &mut Vec<u32>,
    mut each: impl FnMut(Field<'r>),
) -> Option<MetadataRefs> {
    refs.clear();
    let mut metadata = None;
    for found in checked_fields(record.series(span)) {
        match found.number {
            field::TIME_SERIES_LABELS_REFS => checked_refs(&found, |r| refs.push(r)),
            field::TIME_SERIES_METADATA => metadata
                .get_or_insert_with(MetadataRefs::default)
                .merge(found.bytes().expect("checked when read")),
            _ => each(found),
        }
    }
    metadata
}

/// An exemplar's label refs into `refs`, its value and timestamp fields as they are into `rest`.
fn split_exemplar(found: &Field<'_>, refs: &mut Vec<u32>, rest: &mut Vec<u8>) {
    refs.clear();
    rest.clear();
    for part in checked_fields(found.bytes().expect("checked when read")) {
        match part.number {
            field::EXEMPLAR_LABELS_REFS => checked_refs(&part, |r| refs.push(r)),
            field::EXEMPLAR_VALUE | field::EXEMPLAR_TIMESTAMP => rest.extend_from_slice(part.raw),
            _ => {}
        }
    }
}

const LABEL_NAME_KEY: u8 = wire::key_byte(v1_field::LABEL_NAME, wire::WIRE_LEN);
const LABEL_VALUE_KEY: u8 = wire::key_byte(v1_field::LABEL_VALUE, wire::WIRE_LEN);

/// A `Label` as field `number`, empty strings left out as protobuf does.
fn put_label(out: &mut Vec<u8>, number: u32, name: &[u8], value: &[u8]) {
    // Nearly every label: both strings set, and every length fits one byte.
    let label_len = 4 + name.len() + value.len();
    if !name.is_empty() && !value.is_empty() && label_len < 0x80 && number < 16 {
        let tag = wire::key_byte(number, wire::WIRE_LEN);
        out.reserve(2 + label_len);
        out.extend_from_slice(&[tag, label_len as u8, LABEL_NAME_KEY, name.len() as u8]);
        out.extend_from_slice(name);
        out.extend_from_slice(&[LABEL_VALUE_KEY, value.len() as u8]);
        out.extend_from_slice(value);
        return;
    }
    let string_len = |text: &[u8]| {
        if text.is_empty() {
            0
        } else {
            1 + wire::varint_len(text.len() as u64) + text.len()
        }
    };
    wire::put_len_prefix(out, number, string_len(name) + string_len(value));
    for (number, text) in [(v1_field::LABEL_NAME, name), (v1_field::LABEL_VALUE, value)] {
        if !text.is_empty() {
            wire::put_len_field(out, number, text);
        }
    }
}

/// Label refs as (name, value) pairs; a name without a value gets ref 0, as when read.
fn label_pairs(refs: &[u32]) -> impl Iterator<Item = (u32, u32)> + '_ {
    refs.chunks(2)
        .map(|pair| (pair[0], pair.get(1).copied().unwrap_or(0)))
}

impl Default for Encoder {
    fn default() -> Encoder {
        Encoder {
            body: Vec::new(),
            symbols: Vec::new(),
            series: Vec::new(),
            rest: Vec::new(),
            nested: Vec::new(),
            refs: Vec::new(),
            exemplar_refs: Vec::new(),
            remap: Vec::new(),
            remap_start: Vec::new(),
            compressed: Vec::new(),
            snappy: snap::raw::Encoder::new(),
        }
    }
}

impl Encoder {
    pub fn new() -> Encoder {
        Encoder::default()
    }

    /// The snappy-compressed request of `batch` in `protocol`.
    pub fn body(&mut self, protocol: Protocol, batch: &Batch) -> bytes::Bytes {
        match protocol {
            Protocol::V1 => self.encode_v1(batch),
            Protocol::V2 => self.encode_v2(batch),
        };
        // Grown only: shrinking and growing it again would zero it for every request.
        let room = snap::raw::max_compress_len(self.body.len());
        if self.compressed.len() < room {
            self.compressed.resize(room, 0);
        }
        let written = self
            .snappy
            .compress(&self.body, &mut self.compressed)
            .expect("snappy compresses any buffer");
        bytes::Bytes::copy_from_slice(&self.compressed[..written])
    }

    /// The uncompressed `io.prometheus.write.v2.Request` of `batch`.
    pub fn encode_v2(&mut self, batch: &Batch) -> &[u8] {
        self.remap_start.clear();
        let mut symbol_refs = 0;
        for record in &batch.records {
            self.remap_start.push(symbol_refs);
            symbol_refs += record.symbol_count();
        }
        self.remap.clear();
        self.remap.resize(symbol_refs, UNMAPPED);
        self.symbols.clear();
        self.body.clear();
        let mut table = Table {
            ids: HashMap::with_capacity_and_hasher(symbol_refs.min(1 << 16), Default::default()),
            encoded: &mut self.symbols,
            remap: &mut self.remap,
        };
        table.ids.insert(b"", 0);
        wire::put_len_field(table.encoded, field::REQUEST_SYMBOLS, b"");
        for (index, span) in &batch.series {
            let record: &Record = &batch.records[*index as usize];
            let start = self.remap_start[*index as usize];
            self.rest.clear();
            let metadata = walk_series(record, span, &mut self.refs, |found| match found.number {
                field::TIME_SERIES_SAMPLES
                | field::TIME_SERIES_HISTOGRAMS
                | field::TIME_SERIES_CREATED_TIMESTAMP => self.rest.extend_from_slice(found.raw),
                field::TIME_SERIES_EXEMPLARS => {
                    split_exemplar(&found, &mut self.exemplar_refs, &mut self.nested);
                    table.put_message(
                        (&mut self.rest, field::TIME_SERIES_EXEMPLARS),
                        (field::EXEMPLAR_LABELS_REFS, &mut self.exemplar_refs),
                        (record, start),
                        &self.nested,
                        &mut self.series,
                    );
                }
                _ => {}
            });
            if let Some(metadata) = metadata {
                self.nested.clear();
                let help = table.map(record, start, metadata.help);
                let unit = table.map(record, start, metadata.unit);
                wire::put_int64(&mut self.nested, field::METADATA_TYPE, metadata.kind.into());
                wire::put_int64(&mut self.nested, field::METADATA_HELP_REF, help.into());
                wire::put_int64(&mut self.nested, field::METADATA_UNIT_REF, unit.into());
                wire::put_len_field(&mut self.rest, field::TIME_SERIES_METADATA, &self.nested);
            }
            table.put_message(
                (&mut self.body, field::REQUEST_TIMESERIES),
                (field::TIME_SERIES_LABELS_REFS, &mut self.refs),
                (record, start),
                &self.rest,
                &mut self.series,
            );
        }
        drop(table);
        // The symbols first, as senders put them.
        self.symbols.extend_from_slice(&self.body);
        std::mem::swap(&mut self.symbols, &mut self.body);
        &self.body
    }

    /// The uncompressed `prometheus.WriteRequest` of `batch`.
    pub fn encode_v1(&mut self, batch: &Batch) -> &[u8] {
        self.body.clear();
        let mut families: BTreeMap<&[u8], FamilyMetadata<'_>> = BTreeMap::new();
        for (index, span) in &batch.series {
            let record: &Record = &batch.records[*index as usize];
            self.rest.clear();
            let metadata = walk_series(record, span, &mut self.refs, |found| match found.number {
                // 1.0's `Sample` is 2.0's without the start timestamp (the
                // fields after its timestamp), in the same field of the series.
                field::TIME_SERIES_SAMPLES if is_plain_sample(found.bytes().expect("checked")) => {
                    self.rest.extend_from_slice(found.raw)
                }
                // A histogram has 1.0's fields and 2.0's start timestamp after them.
                field::TIME_SERIES_SAMPLES | field::TIME_SERIES_HISTOGRAMS => {
                    let (into, last_field) = if found.number == field::TIME_SERIES_SAMPLES {
                        (v1_field::TIME_SERIES_SAMPLES, v1_field::SAMPLE_TIMESTAMP)
                    } else {
                        (
                            v1_field::TIME_SERIES_HISTOGRAMS,
                            LAST_SHARED_HISTOGRAM_FIELD,
                        )
                    };
                    self.nested.clear();
                    copy_fields(&mut self.nested, &found, |number| number <= last_field);
                    wire::put_len_field(&mut self.rest, into, &self.nested);
                }
                field::TIME_SERIES_EXEMPLARS => {
                    split_exemplar(&found, &mut self.exemplar_refs, &mut self.nested);
                    self.series.clear();
                    for (name, value) in label_pairs(&self.exemplar_refs) {
                        put_label(
                            &mut self.series,
                            v1_field::EXEMPLAR_LABELS,
                            record.symbol(name),
                            record.symbol(value),
                        );
                    }
                    self.series.extend_from_slice(&self.nested);
                    wire::put_len_field(
                        &mut self.rest,
                        v1_field::TIME_SERIES_EXEMPLARS,
                        &self.series,
                    );
                }
                _ => {}
            });
            self.series.clear();
            let mut metric_name = None;
            for (name, value) in label_pairs(&self.refs) {
                let (name, value) = (record.symbol(name), record.symbol(value));
                if metric_name.is_none() && name == b"__name__" {
                    metric_name = Some(value);
                }
                put_label(&mut self.series, v1_field::TIME_SERIES_LABELS, name, value);
            }
            self.series.extend_from_slice(&self.rest);
            wire::put_len_field(
                &mut self.body,
                v1_field::WRITE_REQUEST_TIMESERIES,
                &self.series,
            );
            if let (Some(metadata), Some(name)) = (metadata, metric_name) {
                families
                    .entry(family_name(name, metadata.kind))
                    .or_insert_with(|| {
                        (
                            metadata.kind,
                            record.symbol(metadata.help),
                            record.symbol(metadata.unit),
                        )
                    });
            }
        }
        for (family, (kind, help, unit)) in families {
            self.nested.clear();
            wire::put_int64(
                &mut self.nested,
                v1_field::METRIC_METADATA_TYPE,
                kind.into(),
            );
            for (number, text) in [
                (v1_field::METRIC_METADATA_METRIC_FAMILY_NAME, family),
                (v1_field::METRIC_METADATA_HELP, help),
                (v1_field::METRIC_METADATA_UNIT, unit),
            ] {
                if !text.is_empty() {
                    wire::put_len_field(&mut self.nested, number, text);
                }
            }
            wire::put_len_field(
                &mut self.body,
                v1_field::WRITE_REQUEST_METADATA,
                &self.nested,
            );
        }
        &self.body
    }
}

/// The fields of message `found` whose numbers `keep` takes, as they were.
fn copy_fields(out: &mut Vec<u8>, found: &Field<'_>, keep: impl Fn(u32) -> bool) {
    for part in checked_fields(found.bytes().expect("checked when read")) {
        if keep(part.number) {
            out.extend_from_slice(part.raw);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use proto::prometheus::{self as v1, WriteRequest};

    use crate::output::read_batch;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn sample(value: f64, timestamp: i64) -> v2::Sample {
        v2::Sample {
            value,
            timestamp,
            start_timestamp: 0,
        }
    }

    fn batch() -> Vec<BatchSeries> {
        vec![
            BatchSeries {
                labels: labels(&[
                    ("__name__", "http_seconds_bucket"),
                    ("le", "1"),
                    ("pod", "p1"),
                ]),
                samples: vec![
                    sample(3.0, 10),
                    sample(f64::from_bits(proto::STALE_NAN_BITS), 20),
                ],
                metadata: Some((HISTOGRAM, "Latency.".into(), "seconds".into())),
                ..BatchSeries::default()
            },
            BatchSeries {
                labels: labels(&[("__name__", "http_seconds_sum"), ("pod", "p1")]),
                samples: vec![sample(1.5, 10)],
                exemplars: vec![(labels(&[("trace_id", "abc")]), 0.2, 10)],
                metadata: Some((HISTOGRAM, "Latency.".into(), "seconds".into())),
                ..BatchSeries::default()
            },
            BatchSeries {
                labels: labels(&[("__name__", "rpc"), ("pod", "p1")]),
                histograms: vec![v2::Histogram {
                    count: Some(v2::histogram::Count::CountInt(4)),
                    sum: 2.5,
                    schema: 3,
                    positive_spans: vec![v2::BucketSpan {
                        offset: 1,
                        length: 2,
                    }],
                    positive_deltas: vec![1, 2],
                    timestamp: 30,
                    start_timestamp: 5,
                    ..v2::Histogram::default()
                }],
                ..BatchSeries::default()
            },
        ]
    }

    /// A batch of every series of `payloads`, each read as a record.
    fn batch_of(payloads: Vec<Vec<u8>>) -> Batch {
        let mut batch = Batch::default();
        for payload in payloads {
            let (record, spans) = Record::parse(payload).unwrap();
            batch.records.push(Arc::new(record));
            let index = batch.records.len() as u32 - 1;
            batch
                .series
                .extend(spans.into_iter().map(|span| (index, span)));
        }
        batch
    }

    /// The same series in another order, and so another symbol table.
    fn reversed() -> Vec<BatchSeries> {
        let mut series = batch();
        series.reverse();
        series[0].labels.push(("zone".into(), "b".into()));
        series
    }

    fn encode_v2(batch: &Batch) -> Vec<u8> {
        Encoder::new().encode_v2(batch).to_vec()
    }

    fn encode_v1(batch: &Batch) -> Vec<u8> {
        Encoder::new().encode_v1(batch).to_vec()
    }

    #[test]
    fn a_v2_request_reads_back_as_the_series_it_was_built_from() {
        let series = batch();
        let body = encode_v2(&batch_of(vec![encode_series_v2(&series)]));
        let read = read_batch(proto::CONTENT_TYPE_V2, &body).unwrap();
        assert_eq!(read.len(), series.len());
        // The stale marker's bits survive; NaN != NaN, so compare them apart.
        assert_eq!(read[0].samples[1].value.to_bits(), proto::STALE_NAN_BITS);
        assert_eq!(read[1..], series[1..]);
        let request = v2::Request::decode(body.as_slice()).unwrap();
        assert_eq!(request.symbols[0], "");
        let distinct: std::collections::HashSet<&String> = request.symbols.iter().collect();
        assert_eq!(distinct.len(), request.symbols.len(), "each symbol once");
    }

    #[test]
    fn series_of_records_with_their_own_symbols_share_one_table() {
        let payloads = vec![encode_series_v2(&batch()), encode_series_v2(&reversed())];
        let mut written: Vec<BatchSeries> = batch();
        written.extend(reversed());
        let mut encoder = Encoder::new();
        // Twice with one encoder: nothing of the first request stays in the second.
        for _ in 0..2 {
            let body = encoder.encode_v2(&batch_of(payloads.clone())).to_vec();
            let read = read_batch(proto::CONTENT_TYPE_V2, &body).unwrap();
            assert_eq!(read.len(), written.len());
            for (read, written) in read.iter().zip(&written) {
                assert_eq!(read.labels, written.labels);
                assert_eq!(read.exemplars, written.exemplars);
                assert_eq!(read.histograms, written.histograms);
                assert_eq!(read.metadata, written.metadata);
            }
            let request = v2::Request::decode(body.as_slice()).unwrap();
            let distinct: std::collections::HashSet<&String> = request.symbols.iter().collect();
            assert_eq!(distinct.len(), request.symbols.len(), "each symbol once");
            let v1 = WriteRequest::decode(encoder.encode_v1(&batch_of(payloads.clone()))).unwrap();
            let names: Vec<Vec<(String, String)>> = v1
                .timeseries
                .iter()
                .map(|s| {
                    s.labels
                        .iter()
                        .map(|l| (l.name.clone(), l.value.clone()))
                        .collect()
                })
                .collect();
            let wanted: Vec<Vec<(String, String)>> =
                written.iter().map(|s| s.labels.clone()).collect();
            assert_eq!(names, wanted);
        }
    }

    #[test]
    fn the_v1_form_keeps_samples_histograms_exemplars_and_names_families() {
        let batch = batch_of(vec![encode_series_v2(&batch())]);
        let request = WriteRequest::decode(encode_v1(&batch).as_slice()).unwrap();
        assert_eq!(request.timeseries.len(), 3);
        let bucket = &request.timeseries[0];
        assert_eq!(bucket.labels[0].name, "__name__");
        assert_eq!(bucket.labels[0].value, "http_seconds_bucket");
        assert_eq!(bucket.samples[0].value, 3.0);
        assert_eq!(bucket.samples[1].value.to_bits(), proto::STALE_NAN_BITS);
        assert_eq!(request.timeseries[1].exemplars[0].labels[0].value, "abc");
        let histogram = &request.timeseries[2].histograms[0];
        assert_eq!(histogram.count, Some(v1::histogram::Count::CountInt(4)));
        assert_eq!(histogram.positive_deltas, vec![1, 2]);
        assert_eq!(histogram.schema, 3);
        assert_eq!(histogram.timestamp, 30);
        // Two series of one family: one metadata entry, named after the family.
        assert_eq!(
            request.metadata,
            vec![v1::MetricMetadata {
                r#type: HISTOGRAM,
                metric_family_name: "http_seconds".into(),
                help: "Latency.".into(),
                unit: "seconds".into(),
            }]
        );
    }

    #[test]
    fn labels_are_written_as_prost_writes_them() {
        let long = "x".repeat(200);
        for (name, value) in [("job", "node"), ("", "v"), ("n", ""), ("le", long.as_str())] {
            let mut ours = Vec::new();
            put_label(&mut ours, 1, name.as_bytes(), value.as_bytes());
            let series = v1::TimeSeries {
                labels: vec![v1::Label {
                    name: name.into(),
                    value: value.into(),
                }],
                ..v1::TimeSeries::default()
            };
            assert_eq!(ours, series.encode_to_vec(), "{name:?} = {value:?}");
        }
    }

    #[test]
    fn family_names_drop_only_the_suffixes_of_their_type() {
        assert_eq!(family_name(b"x_bucket", HISTOGRAM), b"x");
        assert_eq!(family_name(b"x_gsum", GAUGE_HISTOGRAM), b"x");
        assert_eq!(family_name(b"x_count", SUMMARY), b"x");
        assert_eq!(family_name(b"requests_total", 1), b"requests_total");
        assert_eq!(family_name(b"x_count", 2), b"x_count");
    }
}
