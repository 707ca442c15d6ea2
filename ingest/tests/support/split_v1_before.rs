//! The remote-write 1.0 split as it was before the hot path was reworked
//! (commit 57933ab): its walk over the request and its series (metadata
//! entries go to every partition, as they do since, and a series with
//! nothing in it is rejected, as it is since), for the v1 differential test
//! and the same-run comparison in `benches/decode.rs`. The label check and
//! the partition of a series are the library's: `validate`'s unit tests and
//! `tests/partition_golden.rs` hold those to their rules.

#![allow(dead_code)]

use ingest::config::SeriesLimits;
use ingest::partition::{PartitionedBatch, partition_of_series};
use ingest::validate::{self, Items, Rejection};
use proto::wire::{self, Fields, WireError};
use proto::{Message, v2};

/// Splits a decompressed `prometheus.WriteRequest`. A framing error anywhere
/// fails the whole request: nothing of a corrupt message is trusted.
pub fn split_v1_before(
    raw: &[u8],
    tenant: &str,
    limits: &SeriesLimits,
    partitions: u32,
) -> Result<PartitionedBatch, WireError> {
    // Each partition's record gets about its share of the request up front:
    // growing them by doubling would copy every byte again, and fault in pages.
    let share = raw.len() / partitions.max(1) as usize;
    let mut buffers: Vec<Vec<u8>> = (0..partitions.max(1))
        .map(|_| Vec::with_capacity(share + share / 4 + 256))
        .collect();
    let mut batch = PartitionedBatch::default();
    let mut labels: Vec<(&[u8], &[u8])> = Vec::with_capacity(16);
    let mut reencoded = Vec::new();
    for field in Fields::new(raw) {
        let field = field?;
        match field.number {
            1 => {
                batch.total_series += 1;
                let series = field.bytes()?;
                let contents = read_v1_series(series, &mut labels)?;
                let checked = validate::check_labels(&mut labels, limits, contents.labels_ascii);
                let sorted_on_wire = matches!(checked, Ok(true));
                let items = Items {
                    samples: contents.samples,
                    histograms: contents.histograms,
                    exemplars: contents.exemplars,
                    metadata: 0,
                };
                let rejection = match (&contents.invalid_histogram, checked) {
                    (_, Err(reason)) => Some(reason),
                    (Some(_), Ok(_)) => Some(Rejection::InvalidHistogram),
                    (None, Ok(_)) if !contents.exemplar_labels_utf8 => Some(Rejection::InvalidUtf8),
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
                let partition = partition_of_series(tenant, &labels, partitions);
                let out = &mut buffers[partition as usize];
                if sorted_on_wire {
                    out.extend_from_slice(field.raw);
                } else {
                    reencode_v1_series_sorted(series, &labels, &mut reencoded)?;
                    wire::put_len_field(out, 1, &reencoded);
                }
                batch.written.series += 1;
                batch.written.samples += contents.samples;
                batch.written.histograms += contents.histograms;
                batch.written.exemplars += contents.exemplars;
            }
            3 => {
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
                for buffer in &mut buffers {
                    buffer.extend_from_slice(field.raw);
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
    for field in Fields::new(series) {
        let field = field?;
        match field.number {
            1 => {
                labels.push(read_label(field.bytes()?)?);
                let start = field.raw.as_ptr() as usize - series.as_ptr() as usize;
                let end = start + field.raw.len();
                label_span = Some((label_span.map_or(start, |(first, _)| first), end));
                label_bytes += field.raw.len();
            }
            2 => {
                check_v1_sample(field.bytes()?)?;
                contents.samples += 1;
            }
            3 => {
                contents.exemplar_labels_utf8 &= check_v1_exemplar(field.bytes()?)?;
                contents.exemplars += 1;
            }
            4 => {
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

/// A label's name and value. Like prost, the last occurrence of a field wins;
/// unlike it, an earlier occurrence that is not UTF-8 is kept instead, so that
/// label validation rejects what prost would refuse.
fn read_label(label: &[u8]) -> Result<(&[u8], &[u8]), WireError> {
    let (mut name, mut value): (Option<&[u8]>, Option<&[u8]>) = (None, None);
    for field in Fields::new(label) {
        let field = field?;
        match field.number {
            1 => name = Some(repeated_string(name, field.bytes()?)),
            2 => value = Some(repeated_string(value, field.bytes()?)),
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
    for field in Fields::new(sample) {
        let field = field?;
        match field.number {
            1 => {
                field.fixed64()?;
            }
            2 => {
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
    for field in Fields::new(exemplar) {
        let field = field?;
        match field.number {
            1 => {
                for label_field in Fields::new(field.bytes()?) {
                    let label_field = label_field?;
                    if matches!(label_field.number, 1 | 2) {
                        utf8 &= std::str::from_utf8(label_field.bytes()?).is_ok();
                    }
                }
            }
            2 => {
                field.fixed64()?;
            }
            3 => {
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
    for field in Fields::new(metadata) {
        let field = field?;
        match field.number {
            1 => {
                field.varint()?;
            }
            2 | 4 | 5 => {
                let text = field.bytes()?;
                utf8 &= std::str::from_utf8(text).is_ok();
                if field.number == 2 {
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
        wire::put_len_field(&mut label, 1, name);
        wire::put_len_field(&mut label, 2, value);
        wire::put_len_field(out, 1, &label);
    }
    for field in Fields::new(series) {
        let field = field?;
        if field.number != 1 {
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
