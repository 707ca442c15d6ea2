//! Splits a decoded write by Kafka partition, validating each series on the way.
//!
//! A series goes to partition `xxh3_64(series key) % partitions`, where the
//! series key is the tenant, a 0xff byte, then for each label in name order
//! its name, a 0xfe byte, its value and a 0xff byte. A series that carries
//! every label of [`Partitioning::by_labels`] (`PARTITION_BY_LABELS`, by
//! default `namespace` and `pod`) is keyed by those labels only, so a pod's
//! series share a partition and the join writes one batch per pod and record
//! rather than a few series each. One series therefore always lands in one
//! partition. v1 metadata entries go to every partition, so that whichever
//! consumer joins a family's series also has its metadata.
//!
//! A tenant with a shard ([`Partitioning::with_shard`], `shard_size` in the
//! keys file) writes only to the partitions of its shard (`proto::shard`): a
//! series goes to `shard[xxh3_64(series key) % shard size]`, and v1 metadata
//! to every partition of the shard. The shard of every partition is the
//! plain modulo above.
//!
//! Remote-write 1.0 series are copied as the byte ranges they had on the wire
//! (re-encoded only when their labels arrive unsorted), so values stay
//! bit-exact and nothing is allocated per label or sample. Remote-write 2.0
//! series get a symbol table of their own partition's, built from byte ranges
//! of the request's ([`split_v2`]).

mod split_v2;

pub use split_v2::{V2DecodeError, carries_metadata, split_v2};

use std::sync::Arc;

use proto::fields::prometheus as field;
use proto::shard::TenantShard;
use proto::wire::{self, Fields, WIRE_LEN, WireError, key_byte};
use proto::{Message, v2};
use xxhash_rust::xxh3::xxh3_64;

use crate::config::SeriesLimits;
use crate::validate::{self, Items, Rejection, RejectionReport};

/// What a request writes: exact counts for the v2 `Written` headers and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub series: usize,
    pub samples: usize,
    pub histograms: usize,
    pub exemplars: usize,
    /// v1: metadata entries; v2: series that carry metadata (a type, help or unit).
    pub metadata: usize,
}

impl Written {
    pub fn items(&self) -> Items {
        Items {
            samples: self.samples,
            histograms: self.histograms,
            exemplars: self.exemplars,
            metadata: self.metadata,
        }
    }
}

/// One request split into one uncompressed remote-write message per partition.
#[derive(Debug, Default)]
pub struct PartitionedBatch {
    /// (partition, message), only for partitions that received something.
    pub records: Vec<(i32, Vec<u8>)>,
    /// What the records hold.
    pub written: Written,
    /// Series in the request, valid or not.
    pub total_series: usize,
    pub rejected: RejectionReport,
}

/// How series are spread over the partitions of the samples topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Partitioning {
    pub partitions: u32,
    /// Label names, sorted: a series that carries all of them is keyed by
    /// them alone; empty keys every series by all its labels.
    by_labels: Arc<[String]>,
    /// The tenant's shard when it is not every partition.
    shard: Option<Arc<TenantShard>>,
}

impl Partitioning {
    /// `partitions`, keyed by `by_labels` where a series has them all.
    pub fn new(partitions: u32, by_labels: &[String]) -> Partitioning {
        let mut by_labels = by_labels.to_vec();
        by_labels.sort();
        by_labels.dedup();
        Partitioning::of_sorted(partitions, by_labels.into())
    }

    /// [`Partitioning::new`] for names already sorted and without repeats
    /// (as the settings hold them): no copy per request.
    pub fn of_sorted(partitions: u32, by_labels: Arc<[String]>) -> Partitioning {
        debug_assert!(by_labels.windows(2).all(|pair| pair[0] < pair[1]));
        Partitioning {
            partitions,
            by_labels,
            shard: None,
        }
    }

    /// Only the partitions of the tenant's shard of `shard_size` (0, or the
    /// partition count or more: every partition, as without).
    pub fn with_shard(self, tenant: &str, shard_size: u32) -> Partitioning {
        let shard = (shard_size != 0 && shard_size < self.partitions)
            .then(|| Arc::new(TenantShard::new(tenant, shard_size, self.partitions)));
        Partitioning { shard, ..self }
    }

    /// Whether the tenant writes to `partition`.
    pub fn writes_to(&self, partition: i32) -> bool {
        self.shard
            .as_ref()
            .is_none_or(|shard| shard.contains(partition))
    }

    /// How many partitions the tenant writes to.
    pub fn partitions_written(&self) -> u32 {
        self.shard
            .as_ref()
            .map_or(self.partitions.max(1), |shard| shard.len() as u32)
    }

    /// The partition of a series whose labels are sorted by name.
    pub fn partition_of(&self, tenant: &str, sorted_labels: &[(&[u8], &[u8])]) -> i32 {
        SeriesHasher::new(tenant.as_bytes(), self).partition(sorted_labels, &[])
    }
}

/// Every series keyed by all its labels.
impl From<u32> for Partitioning {
    fn from(partitions: u32) -> Partitioning {
        Partitioning {
            partitions,
            by_labels: Arc::from([]),
            shard: None,
        }
    }
}

/// The partition of a series whose labels are sorted by name, keyed by all
/// its labels.
pub fn partition_of_series(tenant: &str, sorted_labels: &[(&[u8], &[u8])], partitions: u32) -> i32 {
    Partitioning::from(partitions).partition_of(tenant, sorted_labels)
}

/// How many bytes past the start of a label name or value the series key
/// builder copies at once (see [`SeriesHasher::partition`]).
const KEY_WINDOW: usize = 32;

/// Computes the partitions of one tenant's series, keeping the series key's
/// buffer (and its tenant prefix) from series to series.
pub(crate) struct SeriesHasher {
    key: Vec<u8>,
    prefix: usize,
    partitions: u32,
    by_labels: Arc<[String]>,
    shard: Option<Arc<TenantShard>>,
}

impl SeriesHasher {
    pub(crate) fn new(tenant: &[u8], partitioning: &Partitioning) -> Self {
        let mut key = Vec::with_capacity(tenant.len() + 512);
        key.extend_from_slice(tenant);
        key.push(0xff);
        SeriesHasher {
            prefix: key.len(),
            key,
            partitions: partitioning.partitions.max(1),
            by_labels: partitioning.by_labels.clone(),
            shard: partitioning.shard.clone(),
        }
    }

    /// Whether the series carries every label of `by_labels` (none are set
    /// when it is empty): then only those make its key.
    #[inline]
    fn keyed_by_subset(&self, sorted_labels: &[(&[u8], &[u8])]) -> bool {
        if self.by_labels.is_empty() {
            return false;
        }
        // Both are sorted by name: one merge walk.
        let mut wanted = self.by_labels.iter().peekable();
        for (name, _) in sorted_labels {
            match wanted.peek() {
                None => return true,
                Some(next) if next.as_bytes() == *name => {
                    wanted.next();
                }
                Some(_) => {}
            }
        }
        wanted.peek().is_none()
    }

    /// [`partition_of_series`] for this hasher's tenant. The key is hashed in
    /// one call over one buffer, much cheaper than feeding the streaming
    /// hasher four small pieces per label. Names and values that lie in
    /// `source` (the request buffer) with [`KEY_WINDOW`] bytes after their
    /// start are copied as one fixed-size window, the next piece overwriting
    /// what the window brought past their end: no call to `memcpy` per piece.
    #[inline]
    pub(crate) fn partition(&mut self, sorted_labels: &[(&[u8], &[u8])], source: &[u8]) -> i32 {
        let subset = self.keyed_by_subset(sorted_labels);
        let total = self.prefix
            + sorted_labels
                .iter()
                .map(|(name, value)| name.len() + value.len() + 2)
                .sum::<usize>();
        if self.key.len() < total + KEY_WINDOW {
            self.key.resize(total + KEY_WINDOW, 0);
        }
        let by_labels = &self.by_labels;
        let key = self.key.as_mut_slice();
        let mut pos = self.prefix;
        for (name, value) in sorted_labels {
            if subset && !by_labels.iter().any(|wanted| wanted.as_bytes() == *name) {
                continue;
            }
            pos = put_key_piece(key, pos, name, source);
            key[pos] = 0xfe;
            pos = put_key_piece(key, pos + 1, value, source);
            key[pos] = 0xff;
            pos += 1;
        }
        let hash = xxh3_64(&key[..pos]);
        match &self.shard {
            None => (hash % u64::from(self.partitions)) as i32,
            Some(shard) => shard.partition_of(hash),
        }
    }
}

/// Writes `piece` at `key[pos..]` and returns where it ends; `key` has
/// [`KEY_WINDOW`] bytes to spare past the whole series key.
#[inline(always)]
fn put_key_piece(key: &mut [u8], pos: usize, piece: &[u8], source: &[u8]) -> usize {
    let offset = (piece.as_ptr() as usize).wrapping_sub(source.as_ptr() as usize);
    let window = offset
        .checked_add(KEY_WINDOW)
        .and_then(|end| source.get(offset..end));
    match window {
        // The window starts where `piece` does, inside `source`, so its
        // first `piece.len()` bytes are `piece`.
        Some(window) if piece.len() <= KEY_WINDOW => {
            key[pos..pos + KEY_WINDOW].copy_from_slice(window);
        }
        _ => key[pos..pos + piece.len()].copy_from_slice(piece),
    }
    pos + piece.len()
}

/// Splits a decompressed `prometheus.WriteRequest`. A framing error anywhere
/// fails the whole request: nothing of a corrupt message is trusted.
pub fn split_v1(
    raw: &[u8],
    tenant: &str,
    limits: &SeriesLimits,
    partitioning: impl Into<Partitioning>,
) -> Result<PartitionedBatch, WireError> {
    let partitioning = partitioning.into();
    let partitions = partitioning.partitions;
    // Each partition's record gets about its share of the request up front:
    // growing them by doubling would copy every byte again, and fault in pages.
    let share = raw.len() / partitioning.partitions_written() as usize;
    let mut buffers: Vec<Vec<u8>> = (0..partitions.max(1))
        .map(|partition| {
            if partitioning.writes_to(partition as i32) {
                Vec::with_capacity(share + share / 4 + 256)
            } else {
                Vec::new()
            }
        })
        .collect();
    let mut batch = PartitionedBatch::default();
    let mut labels: Vec<(&[u8], &[u8])> = Vec::with_capacity(16);
    let mut reencoded = Vec::new();
    let mut hasher = SeriesHasher::new(tenant.as_bytes(), &partitioning);
    for field in Fields::new(raw) {
        let field = field?;
        match field.number {
            field::WRITE_REQUEST_TIMESERIES => {
                batch.total_series += 1;
                let series = field.bytes()?;
                let contents = read_v1_series(series, &mut labels)?;
                let checked = validate::check_labels(&mut labels, limits, contents.labels_ascii);
                let sorted_on_wire = matches!(checked, Ok(true));
                let items = contents.items();
                let rejection = match (&contents.invalid_histogram, checked) {
                    (_, Err(reason)) => Some(reason),
                    (Some(_), Ok(_)) => Some(Rejection::InvalidHistogram),
                    (None, Ok(_)) if !contents.exemplar_labels_utf8 => Some(Rejection::InvalidUtf8),
                    // Exemplars alone are data (Prometheus sends each in a series of its own).
                    (None, Ok(_)) if items == Items::default() => Some(Rejection::Empty),
                    (None, Ok(_)) => None,
                };
                if let Some(reason) = rejection {
                    let detail = contents.invalid_histogram.clone();
                    batch.rejected.reject(reason, items, || {
                        let described = validate::describe_labels(&labels);
                        match detail {
                            Some(detail) => format!("{described}: {detail}"),
                            None => described,
                        }
                    });
                    continue;
                }
                let partition = hasher.partition(&labels, raw);
                let out = &mut buffers[partition as usize];
                if sorted_on_wire {
                    out.extend_from_slice(field.raw);
                } else {
                    reencode_v1_series_sorted(series, &labels, &mut reencoded)?;
                    wire::put_len_field(out, field::WRITE_REQUEST_TIMESERIES, &reencoded);
                }
                batch.written.series += 1;
                batch.written.samples += contents.samples;
                batch.written.histograms += contents.histograms;
                batch.written.exemplars += contents.exemplars;
            }
            field::WRITE_REQUEST_METADATA => {
                let (family, utf8) = read_metadata(field.bytes()?)?;
                if !utf8 {
                    batch
                        .rejected
                        .reject(Rejection::InvalidUtf8, Items::ONE_METADATA, || {
                            "metadata with a string that is not UTF-8".into()
                        });
                    continue;
                }
                if family.is_empty() {
                    batch.rejected.reject(
                        Rejection::MissingMetricName,
                        Items::ONE_METADATA,
                        || "metadata without metric_family_name".into(),
                    );
                    continue;
                }
                // Every partition's consumer needs its families' metadata.
                for (partition, buffer) in buffers.iter_mut().enumerate() {
                    if partitioning.writes_to(partition as i32) {
                        buffer.extend_from_slice(field.raw);
                    }
                }
                batch.written.metadata += 1;
            }
            // Field 2 is Cortex's "source"; nothing else is defined. Dropped.
            _ => {}
        }
    }
    batch.records = collect_records(buffers);
    Ok(batch)
}

/// prost's recursion budget at the fields of a `TimeSeries` or a
/// `MetricMetadata`, and at those of the messages in a series (one less again
/// in an exemplar's labels).
const SERIES_DEPTH: u32 = wire::RECURSION_LIMIT - 1;
const SERIES_CHILD_DEPTH: u32 = wire::RECURSION_LIMIT - 2;

/// The keys of the fields the fast paths match as senders write them.
const LABEL_KEY: u8 = key_byte(field::TIME_SERIES_LABELS, WIRE_LEN);
const SAMPLE_KEY: u8 = key_byte(field::TIME_SERIES_SAMPLES, WIRE_LEN);
const NAME_KEY: u8 = key_byte(field::LABEL_NAME, WIRE_LEN);
const VALUE_KEY: u8 = key_byte(field::LABEL_VALUE, WIRE_LEN);

struct V1SeriesContents {
    samples: usize,
    histograms: usize,
    exemplars: usize,
    /// Every label field lies in one run of bytes that is all ASCII, so every
    /// name and value is valid UTF-8 without a check of its own.
    labels_ascii: bool,
    invalid_histogram: Option<String>,
    /// Whether every exemplar label name and value is UTF-8.
    exemplar_labels_utf8: bool,
}

impl V1SeriesContents {
    fn items(&self) -> Items {
        Items {
            samples: self.samples,
            histograms: self.histograms,
            exemplars: self.exemplars,
            metadata: 0,
        }
    }
}

/// Reads a v1 `TimeSeries`: its labels into `labels` (borrowed), the rest counted.
///
/// A series is forwarded as the bytes it came in, and the correlator reads the
/// record with prost, which refuses a whole record for one bad field. So
/// everything forwarded is checked to prost's rules here: samples and
/// exemplars field by field (a wrong wire type is a framing error and fails
/// the request), and every string for UTF-8 (the series is rejected).
fn read_v1_series<'a>(
    series: &'a [u8],
    labels: &mut Vec<(&'a [u8], &'a [u8])>,
) -> Result<V1SeriesContents, WireError> {
    labels.clear();
    let mut contents = V1SeriesContents {
        samples: 0,
        histograms: 0,
        exemplars: 0,
        labels_ascii: false,
        invalid_histogram: None,
        exemplar_labels_utf8: true,
    };
    // The span from the first label field to the end of the last, and the
    // bytes of label fields in it: equal when the labels are contiguous.
    let mut label_span: Option<(usize, usize)> = None;
    let mut label_bytes = 0;
    let mut pos = 0;
    while pos < series.len() {
        // What senders send, label by label and sample by sample, read in
        // place; anything else takes the general way below, one field.
        match series[pos] {
            LABEL_KEY => {
                if let Some((name, value, end)) = short_label(series, pos) {
                    labels.push((name, value));
                    label_span = Some((label_span.map_or(pos, |(first, _)| first), end));
                    label_bytes += end - pos;
                    pos = end;
                    continue;
                }
            }
            SAMPLE_KEY => {
                if let Some(end) = short_sample(series, pos) {
                    contents.samples += 1;
                    pos = end;
                    continue;
                }
            }
            _ => {}
        }
        let field = Fields::nested(&series[pos..], SERIES_DEPTH)
            .next()
            .expect("bytes remain")?;
        let start = pos;
        pos += field.raw.len();
        match field.number {
            field::TIME_SERIES_LABELS => {
                labels.push(read_label(field.bytes()?)?);
                label_span = Some((label_span.map_or(start, |(first, _)| first), pos));
                label_bytes += field.raw.len();
            }
            field::TIME_SERIES_SAMPLES => {
                check_v1_sample(field.bytes()?)?;
                contents.samples += 1;
            }
            field::TIME_SERIES_EXEMPLARS => {
                contents.exemplar_labels_utf8 &= check_v1_exemplar(field.bytes()?)?;
                contents.exemplars += 1;
            }
            field::TIME_SERIES_HISTOGRAMS => {
                let bytes = field.bytes()?;
                contents.histograms += 1;
                if contents.invalid_histogram.is_none() {
                    let checked = v2::Histogram::decode(bytes)
                        .map_err(|e| e.to_string())
                        .and_then(|histogram| validate::check_histogram(&histogram));
                    contents.invalid_histogram = checked.err();
                }
            }
            _ => {}
        }
    }
    // One ASCII scan of the labels' bytes (keys, lengths and strings alike)
    // replaces a UTF-8 check per name and value. Any byte over 0x7f, even in
    // a length, falls back to the exact per-string check.
    if let Some((start, end)) = label_span {
        contents.labels_ascii = end - start == label_bytes && series[start..end].is_ascii();
    }
    Ok(contents)
}

/// The label field at `series[pos]` (tag already seen to be 1, LEN) when it
/// is what every sender writes: under 128 bytes, holding a name and a value
/// field in that order and nothing else. Returns name, value and the end of
/// the field; None leaves it to the general reader, which would read the
/// same name and value from such a field.
#[inline(always)]
fn short_label(series: &[u8], pos: usize) -> Option<(&[u8], &[u8], usize)> {
    let len = *series.get(pos + 1)? as usize;
    if len >= 0x80 {
        return None;
    }
    let end = pos + 2 + len;
    let label = series.get(pos + 2..end)?;
    if label.len() < 4 || label[0] != NAME_KEY {
        return None;
    }
    let name_len = label[1] as usize;
    if label.len() < name_len + 4 {
        return None;
    }
    let (name, rest) = label[2..].split_at(name_len);
    // The field is under 128 bytes, so a value length that fills it is one byte.
    if rest[0] != VALUE_KEY || rest[1] as usize != rest.len() - 2 {
        return None;
    }
    Some((name, &rest[2..], end))
}

/// The sample field at `series[pos]` (tag already seen to be 2, LEN) when it
/// is a value and a timestamp, in that order and nothing else: its end. Such
/// a sample is one `check_v1_sample` accepts; None leaves it to that.
#[inline(always)]
fn short_sample(series: &[u8], pos: usize) -> Option<usize> {
    let len = *series.get(pos + 1)? as usize;
    if len >= 0x80 {
        return None;
    }
    let end = pos + 2 + len;
    wire::is_plain_sample(series.get(pos + 2..end)?).then_some(end)
}

/// A label's name and value. Like prost, the last occurrence of a field wins;
/// unlike it, an earlier occurrence that is not UTF-8 is kept instead, so that
/// label validation rejects what prost would refuse.
fn read_label(label: &[u8]) -> Result<(&[u8], &[u8]), WireError> {
    let (mut name, mut value): (Option<&[u8]>, Option<&[u8]>) = (None, None);
    for field in Fields::nested(label, SERIES_CHILD_DEPTH) {
        let field = field?;
        match field.number {
            field::LABEL_NAME => name = Some(repeated_string(name, field.bytes()?)),
            field::LABEL_VALUE => value = Some(repeated_string(value, field.bytes()?)),
            _ => {}
        }
    }
    Ok((name.unwrap_or_default(), value.unwrap_or_default()))
}

/// The occurrence of a string field that counts: `next`, unless `previous` is
/// not UTF-8. Only repeated occurrences pay for the check.
fn repeated_string<'a>(previous: Option<&'a [u8]>, next: &'a [u8]) -> &'a [u8] {
    match previous {
        Some(previous) if std::str::from_utf8(previous).is_err() => previous,
        _ => next,
    }
}

/// Checks a v1 `Sample` to prost's rules: value a fixed64, timestamp a varint.
fn check_v1_sample(sample: &[u8]) -> Result<(), WireError> {
    for field in Fields::nested(sample, SERIES_CHILD_DEPTH) {
        let field = field?;
        match field.number {
            field::SAMPLE_VALUE => {
                field.fixed64()?;
            }
            field::SAMPLE_TIMESTAMP => {
                field.varint()?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks a v1 `Exemplar` to prost's rules; false if a label is not UTF-8.
fn check_v1_exemplar(exemplar: &[u8]) -> Result<bool, WireError> {
    let mut utf8 = true;
    for field in Fields::nested(exemplar, SERIES_CHILD_DEPTH) {
        let field = field?;
        match field.number {
            field::EXEMPLAR_LABELS => {
                let label = field.bytes()?;
                for label_field in Fields::nested(label, SERIES_CHILD_DEPTH - 1) {
                    let label_field = label_field?;
                    if matches!(label_field.number, field::LABEL_NAME | field::LABEL_VALUE) {
                        utf8 &= std::str::from_utf8(label_field.bytes()?).is_ok();
                    }
                }
            }
            field::EXEMPLAR_VALUE => {
                field.fixed64()?;
            }
            field::EXEMPLAR_TIMESTAMP => {
                field.varint()?;
            }
            _ => {}
        }
    }
    Ok(utf8)
}

/// A v1 `MetricMetadata`'s family name, and whether its strings are all UTF-8;
/// the other fields checked to prost's rules.
fn read_metadata(metadata: &[u8]) -> Result<(&[u8], bool), WireError> {
    let mut family: &[u8] = &[];
    let mut utf8 = true;
    for field in Fields::nested(metadata, SERIES_DEPTH) {
        let field = field?;
        match field.number {
            field::METRIC_METADATA_TYPE => {
                field.varint()?;
            }
            field::METRIC_METADATA_METRIC_FAMILY_NAME
            | field::METRIC_METADATA_HELP
            | field::METRIC_METADATA_UNIT => {
                let text = field.bytes()?;
                utf8 &= std::str::from_utf8(text).is_ok();
                if field.number == field::METRIC_METADATA_METRIC_FAMILY_NAME {
                    family = text;
                }
            }
            _ => {}
        }
    }
    Ok((family, utf8))
}

/// Writes `series` with `sorted_labels` first and every other field as it was.
fn reencode_v1_series_sorted(
    series: &[u8],
    sorted_labels: &[(&[u8], &[u8])],
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    out.clear();
    let mut label = Vec::new();
    for (name, value) in sorted_labels {
        label.clear();
        wire::put_len_field(&mut label, field::LABEL_NAME, name);
        wire::put_len_field(&mut label, field::LABEL_VALUE, value);
        wire::put_len_field(out, field::TIME_SERIES_LABELS, &label);
    }
    for field in Fields::nested(series, SERIES_DEPTH) {
        let field = field?;
        if field.number != field::TIME_SERIES_LABELS {
            out.extend_from_slice(field.raw);
        }
    }
    Ok(())
}

fn collect_records(buffers: Vec<Vec<u8>>) -> Vec<(i32, Vec<u8>)> {
    buffers
        .into_iter()
        .enumerate()
        .filter(|(_, buffer)| !buffer.is_empty())
        .map(|(partition, buffer)| (partition as i32, buffer))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::prometheus::{Label, Sample, TimeSeries, WriteRequest};

    fn series(labels: &[(&str, &str)], value: f64) -> TimeSeries {
        TimeSeries {
            labels: labels
                .iter()
                .map(|(n, v)| Label {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            samples: vec![Sample {
                value,
                timestamp: 1000,
            }],
            ..Default::default()
        }
    }

    fn decode_all(batch: &PartitionedBatch) -> Vec<TimeSeries> {
        let mut all = Vec::new();
        for (_, record) in &batch.records {
            all.extend(WriteRequest::decode(record.as_slice()).unwrap().timeseries);
        }
        all
    }

    #[test]
    fn v1_series_are_split_validated_and_sorted() {
        let request = WriteRequest {
            timeseries: vec![
                series(&[("__name__", "up"), ("job", "a")], 1.0),
                series(
                    &[("job", "b"), ("__name__", "up")],
                    f64::from_bits(proto::STALE_NAN_BITS),
                ),
                series(&[("job", "c")], 3.0),
            ],
            ..Default::default()
        };
        let raw = request.encode_to_vec();
        let batch = split_v1(&raw, "acme", &SeriesLimits::default(), 4).unwrap();
        assert_eq!(batch.total_series, 3);
        assert_eq!(batch.written.samples, 2);
        assert_eq!(batch.rejected.series(), 1);
        let out = decode_all(&batch);
        assert_eq!(out.len(), 2);
        let resorted = out.iter().find(|s| s.labels[1].value == "b").unwrap();
        assert_eq!(resorted.labels[0].name, "__name__");
        assert_eq!(resorted.samples[0].value.to_bits(), proto::STALE_NAN_BITS);
    }

    /// A one-series request whose sample is not a well-formed `Sample`: split
    /// as valid before, its record then failed prost in the correlator, which
    /// skips the whole record (every series of the request in that partition).
    /// Both from the `remote_write_v1` fuzz target: a captured body with the
    /// sample bytes mutated (a 9-byte key over 32 bits; a truncated varint).
    #[test]
    fn fuzz_v1_sample_that_prost_refuses_fails_the_request() {
        const SAMPLE_KEY_OVER_32_BITS: &[u8] =
            b"\x0a\xd4\x01\x0a'\x0a\x08__name__\x12\x1bnode_context_switches_total\x0a\x1c\x0a\
            \x0ccluster_name\x12\x0cdemo-cluster\x0a\x1a\x0a\x09container\x12\x0dnode-export\
            er\x0a\x1b\x0a\x08instance\x12\x0f127.0.0.1:19100\x0a\x0b\x0a\x03job\x12\x04node\
            \x0a\x17\x0a\x09namespace\x12\x0amonitoring\x0a\x1a\x0a\x03pod\x12\x13node-expor\
            ter-x7k2p\x12\x10\xff\xff\xff\xff\xff\xff\xff\xffA\x10\xa7\xea\xb3\x99\xa14";
        const SAMPLE_TRUNCATED: &[u8] =
            b"\x0a\xd1\x01\x0a$\x0a\x08__name__\x12\x18node_memory_Active_bytes\x0a\x1c\x0a\
            \x0ccluster_name\x12\x0cdemo-cluster\x0a\x1a\x0a\x09container\x12\x0dnode-export\
            er\x0a\x1b\x0a\x08instance\x12\x0f127.0.0.1:19100\x0a\x0b\x0a\x03job\x12\x04node\
            \x0a\x17\x0a\x09namespace\x12\x0amonitoring\x0a\x1a\x0a\x03pod\x12\x13node-expor\
            ter-x7k2p\x12\x10\x09\x00\x00\x00\x00`\x82\xa5A\x10\xa7k2p\x12\x07";
        for crash in [SAMPLE_KEY_OVER_32_BITS, SAMPLE_TRUNCATED] {
            assert!(WriteRequest::decode(crash).is_err());
            let result = split_v1(crash, "tenant", &SeriesLimits::default(), 8);
            assert!(result.is_err(), "split: {:?}", result.map(|b| b.records));
        }
    }

    /// Whatever `split_v1` forwards, prost reads: the same series, built by
    /// hand, with each field prost checks made wrong in turn.
    #[test]
    fn fuzz_v1_fields_are_checked_to_prosts_rules() {
        // The fields of a series, as the cases below name them.
        use field::{
            TIME_SERIES_EXEMPLARS as EXEMPLARS, TIME_SERIES_LABELS as LABELS,
            TIME_SERIES_SAMPLES as SAMPLES,
        };
        fn label(name: &[u8], value: &[u8]) -> Vec<u8> {
            let mut label = Vec::new();
            wire::put_len_field(&mut label, field::LABEL_NAME, name);
            wire::put_len_field(&mut label, field::LABEL_VALUE, value);
            label
        }
        fn request(series_fields: &[(u32, Vec<u8>)], metadata: Option<Vec<u8>>) -> Vec<u8> {
            let mut series = Vec::new();
            wire::put_len_field(
                &mut series,
                field::TIME_SERIES_LABELS,
                &label(b"__name__", b"up"),
            );
            for (number, payload) in series_fields {
                wire::put_len_field(&mut series, *number, payload);
            }
            let mut request = Vec::new();
            wire::put_len_field(&mut request, field::WRITE_REQUEST_TIMESERIES, &series);
            if let Some(metadata) = metadata {
                wire::put_len_field(&mut request, field::WRITE_REQUEST_METADATA, &metadata);
            }
            request
        }
        let sample = |value: &[u8]| {
            let mut sample = value.to_vec();
            sample.extend_from_slice(&[wire::SAMPLE_TIMESTAMP_KEY, 0x01]); // timestamp 1
            sample
        };
        let good_sample = sample(&[wire::SAMPLE_VALUE_KEY, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f]); // value 1.0
        let split = |raw: &[u8]| split_v1(raw, "tenant", &SeriesLimits::default(), 8);
        // Nothing forwarded, and the one rejection's reason.
        let rejected_alone = |raw: &[u8]| {
            let batch = split(raw).unwrap();
            assert!(batch.records.is_empty());
            batch.rejected.counts().next().unwrap().0
        };

        // Well-formed: forwarded, and prost reads the record.
        let batch = split(&request(&[(SAMPLES, good_sample.clone())], None)).unwrap();
        assert_eq!(batch.written.samples, 1);
        WriteRequest::decode(batch.records[0].1.as_slice()).unwrap();

        // A sample value sent as a varint: prost refuses the wire type.
        let varint_value = sample(&[key_byte(field::SAMPLE_VALUE, wire::WIRE_VARINT), 0x01]);
        assert!(split(&request(&[(SAMPLES, varint_value)], None)).is_err());

        // An exemplar label that is not UTF-8: the series is rejected.
        let mut exemplar = Vec::new();
        wire::put_len_field(
            &mut exemplar,
            field::EXEMPLAR_LABELS,
            &label(b"trace_id", b"\xff"),
        );
        assert_eq!(
            rejected_alone(&request(
                &[(SAMPLES, good_sample.clone()), (EXEMPLARS, exemplar)],
                None
            )),
            Rejection::InvalidUtf8
        );

        // A label name sent twice, first not UTF-8: prost refuses the first.
        let mut twice = Vec::new();
        wire::put_len_field(&mut twice, field::LABEL_NAME, b"\xff");
        twice.extend_from_slice(&label(b"job", b"a"));
        assert_eq!(
            rejected_alone(&request(
                &[(LABELS, twice), (SAMPLES, good_sample.clone())],
                None
            )),
            Rejection::InvalidUtf8
        );

        // Metadata whose help is not UTF-8: the entry is rejected.
        let mut metadata = Vec::new();
        wire::put_len_field(
            &mut metadata,
            field::METRIC_METADATA_METRIC_FAMILY_NAME,
            b"up",
        );
        wire::put_len_field(&mut metadata, field::METRIC_METADATA_HELP, b"\xc3");
        let batch = split(&request(&[(SAMPLES, good_sample.clone())], Some(metadata))).unwrap();
        assert_eq!(batch.written.metadata, 0);
        assert_eq!(batch.written.series, 1);
        WriteRequest::decode(batch.records[0].1.as_slice()).unwrap();

        // Metadata whose type is length-delimited: prost refuses the wire type.
        let mut metadata = Vec::new();
        wire::put_len_field(&mut metadata, field::METRIC_METADATA_TYPE, b"x");
        wire::put_len_field(
            &mut metadata,
            field::METRIC_METADATA_METRIC_FAMILY_NAME,
            b"up",
        );
        assert!(split(&request(&[(SAMPLES, good_sample)], Some(metadata))).is_err());
    }

    /// Groups in an unknown field of a series are skipped as prost skips
    /// them, as deep as prost goes there; one level deeper both refuse.
    #[test]
    fn v1_groups_are_skipped_to_prosts_depth() {
        use proto::wire::{WIRE_END_GROUP, WIRE_START_GROUP};
        // No field of `TimeSeries`: one past its last.
        const UNKNOWN: u32 = field::TIME_SERIES_HISTOGRAMS + 1;
        let request = |depth: usize| {
            let mut series = series(&[("__name__", "up")], 1.0).encode_to_vec();
            for _ in 0..depth {
                wire::put_key(&mut series, UNKNOWN, WIRE_START_GROUP);
            }
            for _ in 0..depth {
                wire::put_key(&mut series, UNKNOWN, WIRE_END_GROUP);
            }
            let mut request = Vec::new();
            wire::put_len_field(&mut request, field::WRITE_REQUEST_TIMESERIES, &series);
            request
        };
        let deepest = (1..120)
            .take_while(|depth| WriteRequest::decode(&request(*depth)[..]).is_ok())
            .last()
            .unwrap();
        assert!(deepest < 119);
        let split = |raw: &[u8]| split_v1(raw, "tenant", &SeriesLimits::default(), 8);
        let batch = split(&request(deepest)).unwrap();
        assert_eq!(batch.written.samples, 1);
        WriteRequest::decode(batch.records[0].1.as_slice()).unwrap();
        assert_eq!(
            split(&request(deepest + 1)).map(|b| b.records),
            Err(WireError::RecursionLimit)
        );
    }

    fn exemplar(trace: &str) -> proto::prometheus::Exemplar {
        proto::prometheus::Exemplar {
            labels: vec![Label {
                name: "trace_id".into(),
                value: trace.into(),
            }],
            value: 0.5,
            timestamp: 1000,
        }
    }

    /// Prometheus sends each exemplar in a series of its own, with no sample:
    /// such a series is data; one with nothing in it is not.
    #[test]
    fn v1_exemplar_only_series_are_written_and_empty_ones_rejected() {
        let mut exemplar_only = series(&[("__name__", "rpc_seconds_bucket")], 0.0);
        exemplar_only.samples.clear();
        exemplar_only.exemplars = vec![exemplar("a"), exemplar("b")];
        let mut empty = series(&[("__name__", "up"), ("job", "empty")], 0.0);
        empty.samples.clear();
        let request = WriteRequest {
            timeseries: vec![exemplar_only, empty, series(&[("__name__", "up")], 1.0)],
            ..Default::default()
        };
        let limits = SeriesLimits::default();
        let batch = split_v1(&request.encode_to_vec(), "acme", &limits, 4).unwrap();
        assert_eq!(
            batch.written,
            Written {
                series: 2,
                samples: 1,
                exemplars: 2,
                ..Written::default()
            }
        );
        let out = decode_all(&batch);
        let written = out.iter().find(|s| s.samples.is_empty()).unwrap();
        assert_eq!(written.exemplars.len(), 2);
        let rejected: Vec<_> = batch.rejected.counts().collect();
        assert_eq!(rejected, [(Rejection::Empty, 1, Items::default())]);
        assert_eq!(
            batch.rejected.message(3),
            "1 of 3 series rejected; 1 with neither samples, histograms nor exemplars (first: {__name__=\"up\", job=\"empty\"})"
        );
    }

    #[test]
    fn v2_exemplar_only_series_are_written_and_empty_ones_rejected_with_what_they_carried() {
        let metadata = v2::Metadata {
            r#type: v2::metadata::MetricType::Histogram as i32,
            help_ref: 5,
            unit_ref: 6,
        };
        let request = v2::Request {
            symbols: [
                "",
                "__name__",
                "rpc_seconds_bucket",
                "trace_id",
                "abc",
                "RPC.",
                "seconds",
            ]
            .map(String::from)
            .to_vec(),
            timeseries: vec![
                v2::TimeSeries {
                    labels_refs: vec![1, 2],
                    exemplars: vec![
                        v2::Exemplar {
                            labels_refs: vec![3, 4],
                            value: 0.2,
                            timestamp: 1,
                        };
                        3
                    ],
                    metadata: Some(metadata),
                    ..Default::default()
                },
                // What Prometheus sends for a series without metadata: the field, empty.
                v2::TimeSeries {
                    labels_refs: vec![1, 2, 3, 4],
                    samples: vec![v2::Sample::default()],
                    metadata: Some(v2::Metadata::default()),
                    ..Default::default()
                },
                // Metadata alone is not data.
                v2::TimeSeries {
                    labels_refs: vec![1, 2, 3, 5],
                    metadata: Some(metadata),
                    ..Default::default()
                },
                v2::TimeSeries {
                    labels_refs: vec![1, 2, 3, 6],
                    ..Default::default()
                },
            ],
        };
        let limits = SeriesLimits::default();
        let batch = split_v2(&request.encode_to_vec(), "acme", &limits, 2).unwrap();
        // Metadata counts only on the series whose metadata says something.
        assert_eq!(
            batch.written,
            Written {
                series: 2,
                samples: 1,
                exemplars: 3,
                metadata: 1,
                ..Written::default()
            }
        );
        let rejected: Vec<_> = batch.rejected.counts().collect();
        assert_eq!(
            rejected,
            [(
                Rejection::Empty,
                2,
                Items {
                    metadata: 1,
                    ..Items::default()
                }
            )]
        );
        let mut exemplars = 0;
        for (_, record) in &batch.records {
            for series in v2::Request::decode(record.as_slice()).unwrap().timeseries {
                if series.samples.is_empty() {
                    exemplars += series.exemplars.len();
                    assert!(series.histograms.is_empty());
                }
            }
        }
        assert_eq!(exemplars, 3);
    }

    #[test]
    fn the_partition_hash_is_the_documented_one() {
        let labels: [(&[u8], &[u8]); 2] = [(b"__name__", b"up"), (b"job", b"a")];
        let key = b"acme\xff__name__\xfeup\xffjob\xfea\xff";
        assert_eq!(
            partition_of_series("acme", &labels, 1000),
            (xxh3_64(key) % 1000) as i32
        );
    }

    /// A tenant with a shard writes only there, each series to
    /// `shard[hash % size]`; v1 metadata to every partition of the shard.
    #[test]
    fn a_tenants_series_and_metadata_stay_in_its_shard() {
        let shard = TenantShard::new("acme", 3, 16);
        let partitioning = Partitioning::new(16, &[]).with_shard("acme", 3);
        assert_eq!(partitioning.partitions_written(), 3);
        let request = WriteRequest {
            timeseries: (0..200)
                .map(|i| series(&[("__name__", "up"), ("job", &format!("j{i}"))], 1.0))
                .collect(),
            metadata: vec![proto::prometheus::MetricMetadata {
                r#type: 1,
                metric_family_name: "up".into(),
                help: "Up.".into(),
                unit: String::new(),
            }],
        };
        let limits = SeriesLimits::default();
        let batch = split_v1(
            &request.encode_to_vec(),
            "acme",
            &limits,
            partitioning.clone(),
        )
        .unwrap();
        let written: Vec<i32> = batch.records.iter().map(|(p, _)| *p).collect();
        assert_eq!(written, shard.partitions());
        let mut series_seen = 0;
        for (partition, record) in &batch.records {
            let part = WriteRequest::decode(record.as_slice()).unwrap();
            assert_eq!(part.metadata.len(), 1, "metadata in partition {partition}");
            for ts in &part.timeseries {
                let labels = proto::fixtures::v1_label_bytes(ts);
                // The shard's partition at the index a plain modulo by its size gives.
                let index = Partitioning::new(3, &[]).partition_of("acme", &labels);
                assert_eq!(shard.partitions()[index as usize], *partition);
                assert_eq!(partitioning.partition_of("acme", &labels), *partition);
                series_seen += 1;
            }
        }
        assert_eq!(series_seen, 200);
        let v2 = v2::Request {
            symbols: ["", "__name__", "up", "job"].map(String::from).to_vec(),
            timeseries: (0..50)
                .map(|i| v2::TimeSeries {
                    labels_refs: vec![1, 2, 3, 2 + i % 2],
                    samples: vec![v2::Sample::default()],
                    ..Default::default()
                })
                .collect(),
        };
        let batch = split_v2(&v2.encode_to_vec(), "acme", &limits, partitioning).unwrap();
        assert_eq!(batch.written.series, 50);
        assert!(batch.records.iter().all(|(p, _)| shard.contains(*p)));
    }

    /// No shard size, or one at least the partition count: every partition,
    /// each series exactly where it went before.
    #[test]
    fn the_default_shard_is_every_partition_as_before() {
        let labels: [(&[u8], &[u8]); 2] = [(b"__name__", b"up"), (b"job", b"a")];
        for size in [0, 8, 9, 100] {
            let partitioning = Partitioning::new(8, &[]).with_shard("acme", size);
            assert_eq!(partitioning, Partitioning::new(8, &[]));
            assert_eq!(
                partitioning.partition_of("acme", &labels),
                partition_of_series("acme", &labels, 8)
            );
        }
    }

    #[test]
    fn one_series_always_lands_in_one_partition() {
        let labels: [(&[u8], &[u8]); 2] = [(b"__name__", b"up"), (b"job", b"a")];
        let first = partition_of_series("acme", &labels, 8);
        for _ in 0..10 {
            assert_eq!(partition_of_series("acme", &labels, 8), first);
        }
        // The tenant is part of the key.
        let spread: std::collections::HashSet<i32> = (0..64)
            .map(|i| partition_of_series(&format!("tenant-{i}"), &labels, 8))
            .collect();
        assert!(spread.len() > 4);
    }

    /// The series of a pod (or of whatever `by_labels` names) share a
    /// partition, keyed by those labels alone; a series without all of them
    /// is keyed by all its labels.
    #[test]
    fn series_carrying_the_partition_labels_are_keyed_by_them_alone() {
        let partitioning = Partitioning::new(1000, &["pod".into(), "namespace".into()]);
        let pod: [(&[u8], &[u8]); 2] = [(b"namespace", b"shop"), (b"pod", b"cart-1")];
        let pod_key = b"acme\xffnamespace\xfeshop\xffpod\xfecart-1\xff";
        let expected = (xxh3_64(pod_key) % 1000) as i32;
        for metric in [&b"up"[..], b"container_cpu_usage_seconds_total", b"x"] {
            let labels: [(&[u8], &[u8]); 4] = [
                (b"__name__", metric),
                (b"container", b"server"),
                (b"namespace", b"shop"),
                (b"pod", b"cart-1"),
            ];
            assert_eq!(partitioning.partition_of("acme", &labels), expected);
        }
        assert_eq!(partitioning.partition_of("acme", &pod), expected);
        // Only one of the two: the whole series is the key, as without the setting.
        let node: [(&[u8], &[u8]); 2] = [(b"__name__", b"up"), (b"pod", b"cart-1")];
        assert_eq!(
            partitioning.partition_of("acme", &node),
            partition_of_series("acme", &node, 1000)
        );
        // Pods still spread over the partitions.
        let spread: std::collections::HashSet<i32> = (0..64)
            .map(|i| {
                let name = format!("cart-{i}");
                let labels: [(&[u8], &[u8]); 2] =
                    [(b"namespace", b"shop"), (b"pod", name.as_bytes())];
                Partitioning::new(8, &["namespace".into(), "pod".into()])
                    .partition_of("acme", &labels)
            })
            .collect();
        assert_eq!(spread.len(), 8);
    }

    #[test]
    fn both_protocols_put_a_pods_series_in_one_partition() {
        let by_pod = || Partitioning::new(16, &["namespace".into(), "pod".into()]);
        let pod_series = |i: usize| {
            series(
                &[
                    ("__name__", &format!("metric_{i}")),
                    ("namespace", "shop"),
                    ("pod", "cart-1"),
                ],
                i as f64,
            )
        };
        let v1 = WriteRequest {
            timeseries: (0..50).map(pod_series).collect(),
            metadata: vec![],
        };
        let batch = split_v1(
            &v1.encode_to_vec(),
            "acme",
            &SeriesLimits::default(),
            by_pod(),
        )
        .unwrap();
        assert_eq!(batch.records.len(), 1);
        assert_eq!(batch.written.series, 50);
        let v1_partition = batch.records[0].0;

        let mut symbols = vec![
            "".to_string(),
            "namespace".into(),
            "shop".into(),
            "pod".into(),
            "cart-1".into(),
            "__name__".into(),
        ];
        let timeseries = (0..50)
            .map(|i| {
                symbols.push(format!("metric_{i}"));
                v2::TimeSeries {
                    labels_refs: vec![5, symbols.len() as u32 - 1, 1, 2, 3, 4],
                    samples: vec![proto::fixtures::v2_sample(i as f64, 1000)],
                    ..Default::default()
                }
            })
            .collect();
        let v2 = v2::Request {
            symbols,
            timeseries,
        };
        let batch = split_v2(
            &v2.encode_to_vec(),
            "acme",
            &SeriesLimits::default(),
            by_pod(),
        )
        .unwrap();
        assert_eq!(batch.written.series, 50);
        assert_eq!(
            batch.records.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
            vec![v1_partition]
        );
    }

    #[test]
    fn v2_series_get_their_own_partition_symbols() {
        let request = v2::Request {
            symbols: ["", "__name__", "up", "job", "a", "b", "zzz"]
                .map(String::from)
                .to_vec(),
            timeseries: vec![
                v2::TimeSeries {
                    labels_refs: vec![3, 4, 1, 2],
                    samples: vec![proto::fixtures::v2_sample(1.0, 1)],
                    ..Default::default()
                },
                v2::TimeSeries {
                    labels_refs: vec![1, 2, 3, 5],
                    samples: vec![proto::fixtures::v2_sample(2.0, 1)],
                    ..Default::default()
                },
                v2::TimeSeries {
                    labels_refs: vec![1, 2, 3, 99],
                    samples: vec![v2::Sample::default()],
                    ..Default::default()
                },
            ],
        };
        let batch = split_v2(
            &request.encode_to_vec(),
            "acme",
            &SeriesLimits::default(),
            3,
        )
        .unwrap();
        assert_eq!(batch.written.samples, 2);
        assert_eq!(
            batch.rejected.counts().next().unwrap().0,
            Rejection::SymbolOutOfRange
        );
        let mut seen = Vec::new();
        for (_, record) in &batch.records {
            let part = v2::Request::decode(record.as_slice()).unwrap();
            assert_eq!(part.symbols[0], "");
            for series in part.timeseries {
                let labels: Vec<&str> = series
                    .labels_refs
                    .iter()
                    .map(|r| part.symbols[*r as usize].as_str())
                    .collect();
                seen.push(labels.join(","));
            }
        }
        seen.sort();
        assert_eq!(seen, vec!["__name__,up,job,a", "__name__,up,job,b"]);
    }
}
