//! Request bodies from the series of bound and unbound records: a
//! remote-write 2.0 request with one symbol table for all of them, or its
//! 1.0 form for receivers that speak only 1.0.
//!
//! The 1.0 form carries the same samples, native histograms (fields 1 to 16
//! are the same in both versions) and exemplars; 2.0's start timestamps have
//! no place in it. Metadata, per series in 2.0, becomes one entry per metric
//! family in the same request.

use std::collections::{BTreeMap, HashMap};

use proto::prometheus::{self as v1, WriteRequest};
use proto::{Message, v2};

use crate::output::BatchSeries;

/// Metric types whose series carry suffixes of their family's name.
const HISTOGRAM: i32 = 3;
const GAUGE_HISTOGRAM: i32 = 4;
const SUMMARY: i32 = 5;

/// The family a series of metadata type `kind` belongs to, by its name.
fn family_name(name: &str, kind: i32) -> &str {
    let suffixes: &[&str] = match kind {
        HISTOGRAM | SUMMARY => &["_bucket", "_sum", "_count", "_created"],
        GAUGE_HISTOGRAM => &["_bucket", "_gsum", "_gcount"],
        _ => &[],
    };
    suffixes
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name)
}

/// Symbols of a 2.0 request, each once ("" first, as 2.0 requires).
#[derive(Default)]
struct Symbols<'s> {
    table: Vec<String>,
    refs: HashMap<&'s str, u32>,
}

impl<'s> Symbols<'s> {
    fn new() -> Symbols<'s> {
        let mut symbols = Symbols::default();
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

/// An uncompressed `io.prometheus.write.v2.Request` of `series`.
pub fn encode_v2(series: &[BatchSeries]) -> Vec<u8> {
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

fn v1_labels(labels: &[(String, String)]) -> Vec<v1::Label> {
    labels
        .iter()
        .map(|(name, value)| v1::Label {
            name: name.clone(),
            value: value.clone(),
        })
        .collect()
}

/// The same histogram as 1.0 has it: the fields both versions share, by number.
fn v1_histogram(histogram: &v2::Histogram) -> v1::Histogram {
    v1::Histogram::decode(histogram.encode_to_vec().as_slice())
        .expect("2.0's histogram fields 1 to 16 are 1.0's")
}

/// The `prometheus.WriteRequest` of the [`WriteRequest`] built by [`to_v1`].
pub fn encode_v1(series: &[BatchSeries]) -> Vec<u8> {
    to_v1(series).encode_to_vec()
}

/// `series` as a remote-write 1.0 request.
pub fn to_v1(series: &[BatchSeries]) -> WriteRequest {
    let mut families: BTreeMap<&str, v1::MetricMetadata> = BTreeMap::new();
    let mut timeseries = Vec::with_capacity(series.len());
    for one in series {
        if let (Some((kind, help, unit)), Some(name)) = (&one.metadata, one.label("__name__")) {
            let family = family_name(name, *kind);
            families
                .entry(family)
                .or_insert_with(|| v1::MetricMetadata {
                    r#type: *kind,
                    metric_family_name: family.to_string(),
                    help: help.clone(),
                    unit: unit.clone(),
                });
        }
        timeseries.push(v1::TimeSeries {
            labels: v1_labels(&one.labels),
            samples: one
                .samples
                .iter()
                .map(|sample| v1::Sample {
                    value: sample.value,
                    timestamp: sample.timestamp,
                })
                .collect(),
            exemplars: one
                .exemplars
                .iter()
                .map(|(labels, value, timestamp)| v1::Exemplar {
                    labels: v1_labels(labels),
                    value: *value,
                    timestamp: *timestamp,
                })
                .collect(),
            histograms: one.histograms.iter().map(v1_histogram).collect(),
        });
    }
    WriteRequest {
        timeseries,
        metadata: families.into_values().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn a_v2_request_reads_back_as_the_series_it_was_built_from() {
        let series = batch();
        let read = read_batch(proto::CONTENT_TYPE_V2, &encode_v2(&series)).unwrap();
        assert_eq!(read.len(), series.len());
        // The stale marker's bits survive; NaN != NaN, so compare them apart.
        assert_eq!(read[0].samples[1].value.to_bits(), proto::STALE_NAN_BITS);
        assert_eq!(read[1..], series[1..]);
        let request = v2::Request::decode(encode_v2(&series).as_slice()).unwrap();
        assert_eq!(request.symbols[0], "");
        let distinct: std::collections::HashSet<&String> = request.symbols.iter().collect();
        assert_eq!(distinct.len(), request.symbols.len(), "each symbol once");
    }

    #[test]
    fn the_v1_form_keeps_samples_histograms_exemplars_and_names_families() {
        let request = WriteRequest::decode(encode_v1(&batch()).as_slice()).unwrap();
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
    fn family_names_drop_only_the_suffixes_of_their_type() {
        assert_eq!(family_name("x_bucket", HISTOGRAM), "x");
        assert_eq!(family_name("x_gsum", GAUGE_HISTOGRAM), "x");
        assert_eq!(family_name("x_count", SUMMARY), "x");
        assert_eq!(family_name("requests_total", 1), "requests_total");
        assert_eq!(family_name("x_count", 2), "x_count");
    }
}
