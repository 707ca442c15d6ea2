//! Remote-write 2.0 split over the decompressed buffer: symbols, labels and
//! samples are read in place (symbols as slices of the buffer), and each
//! partition's record is written directly, its symbol table built by copying
//! byte ranges. Nothing is allocated per symbol, label or sample.
//!
//! The request is read to prost's rules, since prost is what read it before
//! and what reads the records downstream: wire types, varints (a `uint32`
//! keeps the low 32 bits of its varint, as prost has it), every symbol UTF-8,
//! unknown fields and groups skipped, the recursion limit of 100, the last
//! occurrence of a scalar winning and a repeated `metadata` merging. Records
//! are encoded as prost encodes the owned messages, so they are byte for byte
//! what the prost path produced (`tests/v2_differential.rs` holds the two
//! against each other). Native histograms, rare and nested, are still decoded
//! and re-encoded with prost; decoded on their own, their recursion budget is
//! 100 where prost inside the request had 98 left (it takes groups nested
//! 97 deep in a histogram's unknown field to tell).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use proto::wire::{self, WIRE_FIXED64, WIRE_LEN, WIRE_VARINT, WireError, read_varint};
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
    #[error("end-group tag without its start group")]
    UnexpectedEndGroup,
    #[error("nested deeper than 100 levels")]
    RecursionLimit,
    #[error("native histogram: {0}")]
    Histogram(prost::DecodeError),
}

const WIRE_START_GROUP: u8 = 3;
const WIRE_END_GROUP: u8 = 4;
const WIRE_FIXED32: u8 = 5;

/// prost's recursion budget at the fields of a `Request`; each nested message
/// (and each group) spends one.
const RECURSION_LIMIT: u32 = 100;
const SERIES_DEPTH: u32 = RECURSION_LIMIT - 1;
const SERIES_CHILD_DEPTH: u32 = RECURSION_LIMIT - 2;

/// Reads fields off a slice, to prost's rules.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    #[inline]
    fn more(&self) -> bool {
        self.pos < self.buf.len()
    }

    /// A field key: (field number, wire type), checked as prost's `decode_key`.
    #[inline]
    fn key(&mut self) -> Result<(u32, u8), V2DecodeError> {
        let key = read_varint(self.buf, &mut self.pos)?;
        let key = u32::try_from(key).map_err(|_| WireError::KeyTooLarge(key))?;
        let wire_type = (key & 7) as u8;
        if wire_type > WIRE_FIXED32 {
            return Err(WireError::BadWireType(wire_type).into());
        }
        let number = key >> 3;
        if number == 0 {
            return Err(WireError::ZeroFieldNumber.into());
        }
        Ok((number, wire_type))
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, V2DecodeError> {
        Ok(read_varint(self.buf, &mut self.pos)?)
    }

    #[inline]
    fn take(&mut self, len: usize) -> Result<&'a [u8], V2DecodeError> {
        let end = self.pos.checked_add(len).ok_or(WireError::Truncated)?;
        let bytes = self.buf.get(self.pos..end).ok_or(WireError::Truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    #[inline]
    fn len_delimited(&mut self) -> Result<&'a [u8], V2DecodeError> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| WireError::Truncated)?;
        self.take(len)
    }

    #[inline]
    fn fixed64(&mut self) -> Result<u64, V2DecodeError> {
        let bytes = self.take(8)?;
        Ok(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }

    /// Skips an unknown field as prost's `skip_field` does, groups included.
    fn skip(&mut self, number: u32, wire_type: u8, depth: u32) -> Result<(), V2DecodeError> {
        if depth == 0 {
            return Err(V2DecodeError::RecursionLimit);
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
                        return Err(V2DecodeError::UnexpectedEndGroup);
                    }
                    break;
                }
                self.skip(inner, inner_type, depth - 1)?;
            },
            WIRE_END_GROUP => return Err(V2DecodeError::UnexpectedEndGroup),
            _ => {
                self.take(4)?;
            }
        }
        Ok(())
    }
}

#[inline]
fn expect(number: u32, wire_type: u8, expected: u8) -> Result<(), V2DecodeError> {
    if wire_type != expected {
        return Err(WireError::UnexpectedWireType {
            field: number,
            wire_type,
        }
        .into());
    }
    Ok(())
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
                1 => read_refs(&mut reader, number, wire_type, &mut self.labels_refs)?,
                2 => {
                    expect(number, wire_type, WIRE_LEN)?;
                    self.samples.push(read_sample(reader.len_delimited()?)?);
                }
                3 => {
                    expect(number, wire_type, WIRE_LEN)?;
                    let histogram = v2::Histogram::decode(reader.len_delimited()?)
                        .map_err(V2DecodeError::Histogram)?;
                    self.histograms.push(histogram);
                }
                4 => {
                    expect(number, wire_type, WIRE_LEN)?;
                    let exemplar = read_exemplar(reader.len_delimited()?, &mut self.exemplar_refs)?;
                    self.exemplars.push(exemplar);
                }
                5 => {
                    expect(number, wire_type, WIRE_LEN)?;
                    let metadata = self.metadata.get_or_insert_default();
                    merge_metadata(reader.len_delimited()?, metadata)?;
                }
                6 => {
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
    if sample.len() >= 11 && sample[0] == 0x09 && sample[9] == 0x10 {
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
            1 => {
                expect(number, wire_type, WIRE_FIXED64)?;
                fields.value = f64::from_bits(reader.fixed64()?);
            }
            2 => {
                expect(number, wire_type, WIRE_VARINT)?;
                fields.timestamp = reader.varint()? as i64;
            }
            3 => {
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
            1 => read_refs(&mut reader, number, wire_type, refs)?,
            2 => {
                expect(number, wire_type, WIRE_FIXED64)?;
                fields.value = f64::from_bits(reader.fixed64()?);
            }
            3 => {
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
            1 => {
                expect(number, wire_type, WIRE_VARINT)?;
                metadata.r#type = reader.varint()? as i32;
            }
            3 => {
                expect(number, wire_type, WIRE_VARINT)?;
                metadata.help_ref = reader.varint()? as u32;
            }
            4 => {
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
        wire::put_len_field(&mut symbols, 4, b"");
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
                wire::put_len_field(&mut self.symbols, 4, symbols.symbols[canonical as usize]);
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
        let start = reader.pos;
        let (number, wire_type) = reader.key()?;
        match number {
            4 => {
                expect(number, wire_type, WIRE_LEN)?;
                symbols.push(reader.len_delimited()?);
                symbol_span = Some((symbol_span.map_or(start, |(first, _)| first), reader.pos));
                symbol_bytes += reader.pos - start;
            }
            5 => {
                expect(number, wire_type, WIRE_LEN)?;
                all_series.push(reader.len_delimited()?);
            }
            _ => reader.skip(number, wire_type, RECURSION_LIMIT)?,
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
        wire::put_len_field(&mut record.series, 5, &encoded);

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

#[inline]
fn put_key(out: &mut Vec<u8>, number: u32, wire_type: u8) {
    wire::put_varint(out, (u64::from(number) << 3) | u64::from(wire_type));
}

/// The packed encoding of `refs` as prost writes it (nothing when empty).
#[inline]
fn put_packed(out: &mut Vec<u8>, number: u32, refs: &[u32]) {
    if refs.is_empty() {
        return;
    }
    let len: usize = refs.iter().map(|r| wire::varint_len(u64::from(*r))).sum();
    put_key(out, number, WIRE_LEN);
    wire::put_varint(out, len as u64);
    for reference in refs {
        wire::put_varint(out, u64::from(*reference));
    }
}

#[inline]
fn packed_len(number: u32, refs: &[u32]) -> usize {
    if refs.is_empty() {
        return 0;
    }
    let len: usize = refs.iter().map(|r| wire::varint_len(u64::from(*r))).sum();
    key_len(number) + wire::varint_len(len as u64) + len
}

#[inline]
fn key_len(number: u32) -> usize {
    wire::varint_len(u64::from(number) << 3)
}

/// Length of a proto3 `int64` field (absent when 0), key included.
#[inline]
fn int64_len(number: u32, value: i64) -> usize {
    if value == 0 {
        0
    } else {
        key_len(number) + wire::varint_len(value as u64)
    }
}

#[inline]
fn put_int64(out: &mut Vec<u8>, number: u32, value: i64) {
    if value != 0 {
        put_key(out, number, WIRE_VARINT);
        wire::put_varint(out, value as u64);
    }
}

/// Length of a proto3 `double` field: absent when it compares equal to 0
/// (so -0.0 too, as prost has it).
#[inline]
fn double_len(number: u32, value: f64) -> usize {
    if value != 0.0 { key_len(number) + 8 } else { 0 }
}

#[inline]
fn put_double(out: &mut Vec<u8>, number: u32, value: f64) {
    if value != 0.0 {
        put_key(out, number, WIRE_FIXED64);
        out.extend_from_slice(&value.to_bits().to_le_bytes());
    }
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
        wire::put_len_field(out, 1, packed_refs);
    }
    for sample in &series.samples {
        let len = double_len(1, sample.value)
            + int64_len(2, sample.timestamp)
            + int64_len(3, sample.start_timestamp);
        put_key(out, 2, WIRE_LEN);
        wire::put_varint(out, len as u64);
        put_double(out, 1, sample.value);
        put_int64(out, 2, sample.timestamp);
        put_int64(out, 3, sample.start_timestamp);
    }
    for histogram in &series.histograms {
        prost::encoding::message::encode(3, histogram, out);
    }
    for exemplar in &series.exemplars {
        let refs = &series.exemplar_refs[exemplar.refs.0..exemplar.refs.1];
        let len =
            packed_len(1, refs) + double_len(2, exemplar.value) + int64_len(3, exemplar.timestamp);
        put_key(out, 4, WIRE_LEN);
        wire::put_varint(out, len as u64);
        put_packed(out, 1, refs);
        put_double(out, 2, exemplar.value);
        put_int64(out, 3, exemplar.timestamp);
    }
    if let Some(metadata) = &series.metadata {
        let len = int64_len(1, i64::from(metadata.r#type))
            + int64_len(3, i64::from(metadata.help_ref))
            + int64_len(4, i64::from(metadata.unit_ref));
        put_key(out, 5, WIRE_LEN);
        wire::put_varint(out, len as u64);
        put_int64(out, 1, i64::from(metadata.r#type));
        put_int64(out, 3, i64::from(metadata.help_ref));
        put_int64(out, 4, i64::from(metadata.unit_ref));
    }
    put_int64(out, 6, series.created_timestamp);
}
