//! Remote-write 2.0 split over the decompressed buffer: symbols, labels and
//! samples are read in place (symbols as slices of the buffer), and each
//! partition's record is written directly, its symbol table built by copying
//! byte ranges. Nothing is allocated per symbol, label or sample.
//!
//! The request is read with `proto::wire::Reader`, to prost's rules, since
//! prost is what read it before and what reads the records downstream: wire
//! types, varints (a `uint32` keeps the low 32 bits of its varint, as prost
//! has it), every symbol UTF-8, unknown fields and groups skipped, the
//! recursion limit of 100, the last occurrence of a scalar winning and a
//! repeated `metadata` merging. Records are encoded with `proto::wire`'s
//! writer as prost encodes the owned messages, so they are byte for byte what
//! the prost path produced (`tests/v2_differential.rs` holds the two against
//! each other). Native histograms, rare and nested, are still decoded and
//! re-encoded with prost; decoded on their own, their recursion budget is 100
//! where prost inside the request had 98 left (it takes groups nested 97 deep
//! in a histogram's unknown field to tell).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use proto::fields::v2 as field;
use proto::wire::{
    self, Reader, WIRE_FIXED64, WIRE_LEN, WIRE_VARINT, WireError, double_len, int64_len,
    put_double, put_int64, put_len_prefix, read_varint,
};
use proto::{Message, v2};
use thiserror::Error;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::{PartitionedBatch, Partitioning, SeriesHasher};
use crate::config::SeriesLimits;
use crate::validate::{self, Items, Rejection};

/// Why a buffer is not an `io.prometheus.write.v2.Request` (as prost reads it).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum V2DecodeError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("symbol {0} is not UTF-8")]
    SymbolNotUtf8(usize),
    #[error("native histogram: {0}")]
    Histogram(prost::DecodeError),
}

/// prost's recursion budget at the fields of a `Request`, a `TimeSeries` and
/// the messages in one.
const REQUEST_DEPTH: u32 = wire::RECURSION_LIMIT;
const SERIES_DEPTH: u32 = REQUEST_DEPTH - 1;
const SERIES_CHILD_DEPTH: u32 = REQUEST_DEPTH - 2;

#[inline]
fn expect(number: u32, wire_type: u8, expected: u8) -> Result<(), V2DecodeError> {
    Ok(wire::expect_wire_type(number, wire_type, expected)?)
}

/// A repeated `uint32`, packed or not; each varint truncated to 32 bits, as prost does.
#[inline]
fn read_refs(
    reader: &mut Reader<'_>,
    number: u32,
    wire_type: u8,
    out: &mut Vec<u32>,
) -> Result<(), V2DecodeError> {
    if wire_type == WIRE_LEN {
        let packed = reader.len_delimited()?;
        out.reserve(packed.len());
        let mut pos = 0;
        while pos < packed.len() {
            let byte = packed[pos];
            if byte < 0x80 {
                out.push(u32::from(byte));
                pos += 1;
            } else {
                out.push(read_varint(packed, &mut pos)? as u32);
            }
        }
    } else {
        expect(number, wire_type, WIRE_VARINT)?;
        out.push(reader.varint()? as u32);
    }
    Ok(())
}

#[derive(Debug, Default, Clone, Copy)]
struct SampleFields {
    value: f64,
    timestamp: i64,
    start_timestamp: i64,
}

#[derive(Debug, Default, Clone, Copy)]
struct ExemplarFields {
    /// Range of its references in `SeriesFields::exemplar_refs`.
    refs: (usize, usize),
    value: f64,
    timestamp: i64,
}

/// One `TimeSeries` as prost would have decoded it, references still the
/// request's; reused from series to series.
#[derive(Default)]
struct SeriesFields {
    labels_refs: Vec<u32>,
    samples: Vec<SampleFields>,
    histograms: Vec<v2::Histogram>,
    exemplars: Vec<ExemplarFields>,
    exemplar_refs: Vec<u32>,
    metadata: Option<v2::Metadata>,
    created_timestamp: i64,
}

impl SeriesFields {
    fn read(&mut self, series: &[u8]) -> Result<(), V2DecodeError> {
        self.labels_refs.clear();
        self.samples.clear();
        self.histograms.clear();
        self.exemplars.clear();
        self.exemplar_refs.clear();
        self.metadata = None;
        self.created_timestamp = 0;
        let mut reader = Reader::new(series);
        while reader.more() {
            let (number, wire_type) = reader.key()?;
            match number {
                field::TIME_SERIES_LABELS_REFS => {
                    read_refs(&mut reader, number, wire_type, &mut self.labels_refs)?
                }
                field::TIME_SERIES_SAMPLES => {
                    expect(number, wire_type, WIRE_LEN)?;
                    self.samples.push(read_sample(reader.len_delimited()?)?);
                }
                field::TIME_SERIES_HISTOGRAMS => {
                    expect(number, wire_type, WIRE_LEN)?;
                    let histogram = v2::Histogram::decode(reader.len_delimited()?)
                        .map_err(V2DecodeError::Histogram)?;
                    self.histograms.push(histogram);
                }
                field::TIME_SERIES_EXEMPLARS => {
                    expect(number, wire_type, WIRE_LEN)?;
                    let exemplar = read_exemplar(reader.len_delimited()?, &mut self.exemplar_refs)?;
                    self.exemplars.push(exemplar);
                }
                field::TIME_SERIES_METADATA => {
                    expect(number, wire_type, WIRE_LEN)?;
                    let metadata = self.metadata.get_or_insert_default();
                    merge_metadata(reader.len_delimited()?, metadata)?;
                }
                field::TIME_SERIES_CREATED_TIMESTAMP => {
                    expect(number, wire_type, WIRE_VARINT)?;
                    self.created_timestamp = reader.varint()? as i64;
                }
                _ => reader.skip(number, wire_type, SERIES_DEPTH)?,
            }
        }
        Ok(())
    }
}

#[inline]
fn read_sample(sample: &[u8]) -> Result<SampleFields, V2DecodeError> {
    // What every sender sends: value, then timestamp, nothing else.
    const VALUE_KEY: u8 = wire::key_byte(field::SAMPLE_VALUE, WIRE_FIXED64);
    const TIMESTAMP_KEY: u8 = wire::key_byte(field::SAMPLE_TIMESTAMP, WIRE_VARINT);
    if sample.len() >= 11 && sample[0] == VALUE_KEY && sample[9] == TIMESTAMP_KEY {
        let mut pos = 10;
        if let Ok(timestamp) = read_varint(sample, &mut pos)
            && pos == sample.len()
        {
            let bits = u64::from_le_bytes(sample[1..9].try_into().expect("8 bytes"));
            return Ok(SampleFields {
                value: f64::from_bits(bits),
                timestamp: timestamp as i64,
                start_timestamp: 0,
            });
        }
    }
    let mut fields = SampleFields::default();
    let mut reader = Reader::new(sample);
    while reader.more() {
        let (number, wire_type) = reader.key()?;
        match number {
            field::SAMPLE_VALUE => {
                expect(number, wire_type, WIRE_FIXED64)?;
                fields.value = f64::from_bits(reader.fixed64()?);
            }
            field::SAMPLE_TIMESTAMP => {
                expect(number, wire_type, WIRE_VARINT)?;
                fields.timestamp = reader.varint()? as i64;
            }
            field::SAMPLE_START_TIMESTAMP => {
                expect(number, wire_type, WIRE_VARINT)?;
                fields.start_timestamp = reader.varint()? as i64;
            }
            _ => reader.skip(number, wire_type, SERIES_CHILD_DEPTH)?,
        }
    }
    Ok(fields)
}

fn read_exemplar(exemplar: &[u8], refs: &mut Vec<u32>) -> Result<ExemplarFields, V2DecodeError> {
    let mut fields = ExemplarFields {
        refs: (refs.len(), refs.len()),
        ..Default::default()
    };
    let mut reader = Reader::new(exemplar);
    while reader.more() {
        let (number, wire_type) = reader.key()?;
        match number {
            field::EXEMPLAR_LABELS_REFS => read_refs(&mut reader, number, wire_type, refs)?,
            field::EXEMPLAR_VALUE => {
                expect(number, wire_type, WIRE_FIXED64)?;
                fields.value = f64::from_bits(reader.fixed64()?);
            }
            field::EXEMPLAR_TIMESTAMP => {
                expect(number, wire_type, WIRE_VARINT)?;
                fields.timestamp = reader.varint()? as i64;
            }
            _ => reader.skip(number, wire_type, SERIES_CHILD_DEPTH)?,
        }
    }
    fields.refs.1 = refs.len();
    Ok(fields)
}

/// Merges one occurrence of `metadata` into what earlier ones set, as prost does.
fn merge_metadata(bytes: &[u8], metadata: &mut v2::Metadata) -> Result<(), V2DecodeError> {
    let mut reader = Reader::new(bytes);
    while reader.more() {
        let (number, wire_type) = reader.key()?;
        match number {
            field::METADATA_TYPE => {
                expect(number, wire_type, WIRE_VARINT)?;
                metadata.r#type = reader.varint()? as i32;
            }
            field::METADATA_HELP_REF => {
                expect(number, wire_type, WIRE_VARINT)?;
                metadata.help_ref = reader.varint()? as u32;
            }
            field::METADATA_UNIT_REF => {
                expect(number, wire_type, WIRE_VARINT)?;
                metadata.unit_ref = reader.varint()? as u32;
            }
            _ => reader.skip(number, wire_type, SERIES_CHILD_DEPTH)?,
        }
    }
    Ok(())
}

/// Hashes a symbol reference: one multiplication, enough for dense integers.
#[derive(Default)]
struct RefHasher(u64);

impl Hasher for RefHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64(u64::from(*byte));
        }
    }

    fn write_u32(&mut self, value: u32) {
        self.write_u64(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        let product = u128::from(self.0 ^ value) * 0x9e37_79b9_7f4a_7c15;
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }
}

/// Hashes a symbol's bytes with one call of XXH3 (the streaming hasher a
/// `BuildHasher` would use costs several times more on short strings).
#[derive(Default)]
struct ContentHasher(u64);

impl Hasher for ContentHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxh3_64_with_seed(bytes, self.0);
    }

    fn write_usize(&mut self, value: usize) {
        self.0 ^= (value as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

const UNSET: u32 = u32::MAX;
/// The canonical index of every empty symbol: always reference 0 in a record.
const EMPTY: u32 = u32::MAX - 1;

/// Tables of request references up to this many entries (over all partitions)
/// are arrays; larger ones hash, so a request of millions of symbols cannot
/// make each partition allocate an entry per symbol.
const DENSE_ENTRIES: usize = 1 << 20;

/// The request's symbols, deduplicated by content as they are first used: a
/// record's symbol table holds each string once, whatever the request did.
struct RequestSymbols<'a> {
    symbols: Vec<&'a [u8]>,
    /// Per request reference: UNSET, EMPTY, or the first reference of equal content.
    canonical: Vec<u32>,
    by_content: HashMap<&'a [u8], u32, BuildHasherDefault<ContentHasher>>,
}

impl<'a> RequestSymbols<'a> {
    #[inline]
    fn get(&self, reference: u32) -> Option<&'a [u8]> {
        self.symbols.get(reference as usize).copied()
    }

    #[inline]
    fn canonical(&mut self, reference: u32) -> u32 {
        let canonical = self.canonical[reference as usize];
        if canonical != UNSET {
            return canonical;
        }
        self.canonical_slow(reference)
    }

    #[inline(never)]
    fn canonical_slow(&mut self, reference: u32) -> u32 {
        let symbol = self.symbols[reference as usize];
        let canonical = if symbol.is_empty() {
            EMPTY
        } else {
            *self.by_content.entry(symbol).or_insert(reference)
        };
        self.canonical[reference as usize] = canonical;
        canonical
    }
}

enum RefMap {
    Dense(Vec<u32>),
    Sparse(HashMap<u32, u32, BuildHasherDefault<RefHasher>>),
}

/// One partition's record under construction.
struct PartitionRecord {
    /// Encoded `symbols` fields, "" first.
    symbols: Vec<u8>,
    symbol_count: u32,
    /// Encoded `timeseries` fields.
    series: Vec<u8>,
    /// Request reference → this record's reference.
    local: RefMap,
}

impl PartitionRecord {
    fn new(request_symbols: usize, dense: bool, series_capacity: usize) -> Self {
        let mut symbols = Vec::with_capacity(64);
        wire::put_len_field(&mut symbols, field::REQUEST_SYMBOLS, b"");
        let local = if dense {
            RefMap::Dense(vec![UNSET; request_symbols])
        } else {
            RefMap::Sparse(HashMap::default())
        };
        PartitionRecord {
            symbols,
            symbol_count: 1,
            series: Vec::with_capacity(series_capacity),
            local,
        }
    }

    /// This record's reference of a request reference (in range), interned
    /// by content the first time. The table is indexed by request reference
    /// (one load when the reference was seen in this partition before); the
    /// entry of a string's canonical reference is set whenever the string is
    /// in the record, so a duplicate reference finds it there.
    #[inline]
    fn intern(&mut self, symbols: &mut RequestSymbols<'_>, reference: u32) -> u32 {
        let known = match &self.local {
            RefMap::Dense(table) => table[reference as usize],
            RefMap::Sparse(table) => table.get(&reference).copied().unwrap_or(UNSET),
        };
        if known != UNSET {
            return known;
        }
        self.intern_slow(symbols, reference)
    }

    #[inline(never)]
    fn intern_slow(&mut self, symbols: &mut RequestSymbols<'_>, reference: u32) -> u32 {
        let canonical = symbols.canonical(reference);
        let local = if canonical == EMPTY {
            0
        } else {
            let known = match &self.local {
                RefMap::Dense(table) => table[canonical as usize],
                RefMap::Sparse(table) => table.get(&canonical).copied().unwrap_or(UNSET),
            };
            if known != UNSET {
                known
            } else {
                let local = self.symbol_count;
                self.symbol_count += 1;
                wire::put_len_field(
                    &mut self.symbols,
                    field::REQUEST_SYMBOLS,
                    symbols.symbols[canonical as usize],
                );
                self.set(canonical, local);
                local
            }
        };
        self.set(reference, local);
        local
    }

    #[inline]
    fn set(&mut self, reference: u32, local: u32) {
        match &mut self.local {
            RefMap::Dense(table) => table[reference as usize] = local,
            RefMap::Sparse(table) => {
                table.insert(reference, local);
            }
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.symbols.reserve_exact(self.series.len());
        self.symbols.extend_from_slice(&self.series);
        self.symbols
    }
}

/// Splits a decompressed `io.prometheus.write.v2.Request`. A framing error
/// anywhere fails the whole request, as prost's decode of it did.
pub fn split_v2(
    raw: &[u8],
    tenant: &str,
    limits: &SeriesLimits,
    partitioning: impl Into<Partitioning>,
) -> Result<PartitionedBatch, V2DecodeError> {
    let partitioning = partitioning.into();
    let partitions = partitioning.partitions.max(1);
    // First the whole request, as prost read it: symbols may follow series,
    // and a corrupt byte anywhere fails everything.
    let mut symbols: Vec<&[u8]> = Vec::new();
    let mut all_series: Vec<&[u8]> = Vec::new();
    // The span of the symbol fields and their bytes: equal when contiguous,
    // and then one ASCII scan stands for a UTF-8 check of every symbol.
    let mut symbol_span: Option<(usize, usize)> = None;
    let mut symbol_bytes = 0;
    let mut reader = Reader::new(raw);
    while reader.more() {
        let start = reader.position();
        let (number, wire_type) = reader.key()?;
        match number {
            field::REQUEST_SYMBOLS => {
                expect(number, wire_type, WIRE_LEN)?;
                symbols.push(reader.len_delimited()?);
                symbol_span = Some((
                    symbol_span.map_or(start, |(first, _)| first),
                    reader.position(),
                ));
                symbol_bytes += reader.position() - start;
            }
            field::REQUEST_TIMESERIES => {
                expect(number, wire_type, WIRE_LEN)?;
                all_series.push(reader.len_delimited()?);
            }
            _ => reader.skip(number, wire_type, REQUEST_DEPTH)?,
        }
    }
    let all_ascii = symbol_span
        .is_none_or(|(start, end)| end - start == symbol_bytes && raw[start..end].is_ascii());
    if !all_ascii {
        if let Some(index) = symbols.iter().position(|s| std::str::from_utf8(s).is_err()) {
            return Err(V2DecodeError::SymbolNotUtf8(index));
        }
    }

    let symbol_count = symbols.len();
    let mut request_symbols = RequestSymbols {
        symbols,
        canonical: vec![UNSET; symbol_count],
        by_content: HashMap::with_capacity_and_hasher(symbol_count, Default::default()),
    };
    let dense = symbol_count.saturating_mul(partitions as usize) <= DENSE_ENTRIES;
    let series_capacity = raw.len() / partitioning.partitions_written() as usize + 64;
    let mut records: Vec<Option<PartitionRecord>> = (0..partitions).map(|_| None).collect();
    let mut batch = PartitionedBatch::default();
    let mut fields = SeriesFields::default();
    let mut labels: Vec<(&[u8], &[u8])> = Vec::with_capacity(16);
    let mut sorted_refs: Vec<(u32, u32)> = Vec::with_capacity(16);
    let mut packed_refs: Vec<u8> = Vec::with_capacity(64);
    let mut encoded = Vec::with_capacity(256);
    let mut hasher = SeriesHasher::new(tenant.as_bytes(), &partitioning);
    for series in all_series {
        batch.total_series += 1;
        fields.read(series)?;
        let items = Items {
            samples: fields.samples.len(),
            histograms: fields.histograms.len(),
            exemplars: fields.exemplars.len(),
            metadata: usize::from(carries_metadata(fields.metadata.as_ref())),
        };
        let sorted_on_wire = match check_series(&fields, &request_symbols, limits, &mut labels) {
            Ok(sorted) => sorted,
            Err((reason, detail)) => {
                batch.rejected.reject(reason, items, || {
                    let described = validate::describe_labels(&labels);
                    if detail.is_empty() {
                        described
                    } else {
                        format!("{described}: {detail}")
                    }
                });
                continue;
            }
        };
        let partition = hasher.partition(&labels, raw);
        let record = records[partition as usize]
            .get_or_insert_with(|| PartitionRecord::new(symbol_count, dense, series_capacity));

        // Labels go out sorted; every reference is remapped into this
        // partition's symbols, in the order the prost path interned them.
        sorted_refs.clear();
        sorted_refs.extend(
            fields
                .labels_refs
                .chunks_exact(2)
                .map(|pair| (pair[0], pair[1])),
        );
        if !sorted_on_wire {
            let symbols = &request_symbols.symbols;
            sorted_refs.sort_unstable_by(|a, b| symbols[a.0 as usize].cmp(symbols[b.0 as usize]));
        }
        // The packed labels_refs, encoded as they are interned.
        packed_refs.clear();
        for &(name, value) in &sorted_refs {
            put_ref(&mut packed_refs, record.intern(&mut request_symbols, name));
            put_ref(&mut packed_refs, record.intern(&mut request_symbols, value));
        }
        for reference in &mut fields.exemplar_refs {
            *reference = record.intern(&mut request_symbols, *reference);
        }
        if let Some(metadata) = &mut fields.metadata {
            metadata.help_ref = record.intern(&mut request_symbols, metadata.help_ref);
            metadata.unit_ref = record.intern(&mut request_symbols, metadata.unit_ref);
        }
        encoded.clear();
        encode_series(&fields, &packed_refs, &mut encoded);
        wire::put_len_field(&mut record.series, field::REQUEST_TIMESERIES, &encoded);

        batch.written.series += 1;
        batch.written.samples += items.samples;
        batch.written.histograms += items.histograms;
        batch.written.exemplars += items.exemplars;
        batch.written.metadata += items.metadata;
    }
    batch.records = records
        .into_iter()
        .enumerate()
        .filter_map(|(partition, record)| record.map(|record| (partition as i32, record.finish())))
        .collect();
    Ok(batch)
}

/// Checks one series as the prost path did, in the same order and with the
/// same details; on success `labels` holds its labels sorted by name, and the
/// answer says whether they came sorted.
fn check_series<'a>(
    series: &SeriesFields,
    symbols: &RequestSymbols<'a>,
    limits: &SeriesLimits,
    labels: &mut Vec<(&'a [u8], &'a [u8])>,
) -> Result<bool, (Rejection, String)> {
    labels.clear();
    if series.labels_refs.len() % 2 != 0 {
        return Err((
            Rejection::SymbolOutOfRange,
            format!(
                "odd number of label references ({})",
                series.labels_refs.len()
            ),
        ));
    }
    for pair in series.labels_refs.chunks_exact(2) {
        match (symbols.get(pair[0]), symbols.get(pair[1])) {
            (Some(name), Some(value)) => labels.push((name, value)),
            _ => {
                let detail = format!(
                    "label reference {} or {} not below {} symbols",
                    pair[0],
                    pair[1],
                    symbols.symbols.len()
                );
                return Err((Rejection::SymbolOutOfRange, detail));
            }
        }
    }
    for exemplar in &series.exemplars {
        let refs = &series.exemplar_refs[exemplar.refs.0..exemplar.refs.1];
        if refs.len() % 2 != 0 || refs.iter().any(|r| symbols.get(*r).is_none()) {
            return Err((
                Rejection::SymbolOutOfRange,
                "exemplar label reference out of range".into(),
            ));
        }
    }
    if let Some(metadata) = &series.metadata {
        if symbols.get(metadata.help_ref).is_none() || symbols.get(metadata.unit_ref).is_none() {
            return Err((
                Rejection::SymbolOutOfRange,
                "metadata help or unit reference out of range".into(),
            ));
        }
    }
    // Every symbol is UTF-8 (checked for the whole request), so the label
    // check need not look again.
    let sorted =
        validate::check_labels(labels, limits, true).map_err(|reason| (reason, String::new()))?;
    match (series.samples.is_empty(), series.histograms.is_empty()) {
        (false, false) => return Err((Rejection::SamplesAndHistograms, String::new())),
        // Exemplars alone are data: Prometheus 3 sends each exemplar in a
        // series of its own, without the sample it came with.
        (true, true) if series.exemplars.is_empty() => {
            return Err((Rejection::Empty, String::new()));
        }
        _ => {}
    }
    for histogram in &series.histograms {
        validate::check_histogram(histogram)
            .map_err(|detail| (Rejection::InvalidHistogram, detail))?;
    }
    Ok(sorted)
}

/// Whether a series' metadata says anything: a type, a help or a unit
/// (Prometheus sends the field empty when it has no metadata to send).
pub fn carries_metadata(metadata: Option<&v2::Metadata>) -> bool {
    metadata.is_some_and(|metadata| {
        metadata.r#type != 0 || metadata.help_ref != 0 || metadata.unit_ref != 0
    })
}

/// A reference as a varint, one byte inline.
#[inline(always)]
fn put_ref(out: &mut Vec<u8>, reference: u32) {
    if reference < 0x80 {
        out.push(reference as u8);
    } else {
        wire::put_varint(out, u64::from(reference));
    }
}

/// A `TimeSeries` as prost encodes it: fields in number order, proto3
/// defaults left out, `metadata` present whenever it was. `packed_refs` is
/// the payload of its packed `labels_refs`.
fn encode_series(series: &SeriesFields, packed_refs: &[u8], out: &mut Vec<u8>) {
    if !packed_refs.is_empty() {
        wire::put_len_field(out, field::TIME_SERIES_LABELS_REFS, packed_refs);
    }
    for sample in &series.samples {
        let len = double_len(field::SAMPLE_VALUE, sample.value)
            + int64_len(field::SAMPLE_TIMESTAMP, sample.timestamp)
            + int64_len(field::SAMPLE_START_TIMESTAMP, sample.start_timestamp);
        put_len_prefix(out, field::TIME_SERIES_SAMPLES, len);
        put_double(out, field::SAMPLE_VALUE, sample.value);
        put_int64(out, field::SAMPLE_TIMESTAMP, sample.timestamp);
        put_int64(out, field::SAMPLE_START_TIMESTAMP, sample.start_timestamp);
    }
    for histogram in &series.histograms {
        prost::encoding::message::encode(field::TIME_SERIES_HISTOGRAMS, histogram, out);
    }
    for exemplar in &series.exemplars {
        let refs = &series.exemplar_refs[exemplar.refs.0..exemplar.refs.1];
        let len = wire::packed_uint32_len(field::EXEMPLAR_LABELS_REFS, refs)
            + double_len(field::EXEMPLAR_VALUE, exemplar.value)
            + int64_len(field::EXEMPLAR_TIMESTAMP, exemplar.timestamp);
        put_len_prefix(out, field::TIME_SERIES_EXEMPLARS, len);
        wire::put_packed_uint32(out, field::EXEMPLAR_LABELS_REFS, refs);
        put_double(out, field::EXEMPLAR_VALUE, exemplar.value);
        put_int64(out, field::EXEMPLAR_TIMESTAMP, exemplar.timestamp);
    }
    if let Some(metadata) = &series.metadata {
        let kind = i64::from(metadata.r#type);
        let help = i64::from(metadata.help_ref);
        let unit = i64::from(metadata.unit_ref);
        let len = int64_len(field::METADATA_TYPE, kind)
            + int64_len(field::METADATA_HELP_REF, help)
            + int64_len(field::METADATA_UNIT_REF, unit);
        put_len_prefix(out, field::TIME_SERIES_METADATA, len);
        put_int64(out, field::METADATA_TYPE, kind);
        put_int64(out, field::METADATA_HELP_REF, help);
        put_int64(out, field::METADATA_UNIT_REF, unit);
    }
    put_int64(
        out,
        field::TIME_SERIES_CREATED_TIMESTAMP,
        series.created_timestamp,
    );
}
