//! Requests for tests, benchmarks and the fuzz seeds: the captured Prometheus
//! traffic in `testdata/`, a hand-made remote-write 2.0 request with every
//! kind of field, and 1.0 requests put into 2.0 form.

use std::path::PathBuf;

use crate::prometheus::WriteRequest;
use crate::{Message, STALE_NAN_BITS, v2};

/// Real remote-write 1.0 requests from Prometheus 2.42 (see `testdata/README.md`).
pub fn prometheus_2_42_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/remote-write/prometheus-2.42")
}

/// Every request body of `prometheus_2_42_dir()` (snappy-compressed), in file order.
pub fn prometheus_2_42_bodies() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut bodies = Vec::new();
    for entry in std::fs::read_dir(prometheus_2_42_dir())? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "bin") {
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            bodies.push((name, std::fs::read(&path)?));
        }
    }
    bodies.sort();
    Ok(bodies)
}

/// The bodies of `prometheus_2_42_bodies()` decompressed: the raw
/// `prometheus.WriteRequest`s, as `metrics.samples` and the decoders see them.
pub fn prometheus_2_42_raw() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut decoder = snap::raw::Decoder::new();
    let mut raw = Vec::new();
    for (name, body) in prometheus_2_42_bodies()? {
        let request = decoder
            .decompress_vec(&body)
            .map_err(std::io::Error::other)?;
        raw.push((name, request));
    }
    Ok(raw)
}

/// The requests of `prometheus_2_42_raw()`, decoded.
pub fn prometheus_2_42_requests() -> std::io::Result<Vec<(String, WriteRequest)>> {
    let mut requests = Vec::new();
    for (name, raw) in prometheus_2_42_raw()? {
        let request = WriteRequest::decode(raw.as_slice()).map_err(std::io::Error::other)?;
        requests.push((name, request));
    }
    Ok(requests)
}

/// A valid remote-write 2.0 request with every kind of field: 5 samples
/// (NaN, the stale marker and both infinities among them), 2 native
/// histograms, 2 exemplars (one without labels) and metadata, labels unsorted
/// in the first series. Tests index into it: change it only with them.
pub fn v2_request() -> v2::Request {
    let symbols = [
        "",
        "__name__",
        "rpc_latency_seconds",
        "job",
        "api",
        "instance",
        "a:9090",
        "trace_id",
        "abc",
        "RPC latency.",
        "seconds",
        "requests_total",
        "code",
        "200",
        "500",
        "Requests.",
        "temperature",
        "room",
    ];
    let histogram = v2::Histogram {
        count: Some(v2::histogram::Count::CountInt(7)),
        sum: 3.5,
        schema: 1,
        zero_count: Some(v2::histogram::ZeroCount::ZeroCountInt(1)),
        zero_threshold: 0.001,
        positive_spans: vec![v2::BucketSpan {
            offset: 0,
            length: 3,
        }],
        positive_deltas: vec![2, 1, -2], // 2, 3, 1
        timestamp: 1_700_000_000_000,
        start_timestamp: 1_699_000_000_000,
        ..Default::default()
    };
    v2::Request {
        symbols: symbols.map(String::from).to_vec(),
        timeseries: vec![
            v2::TimeSeries {
                // Unsorted on purpose: job before __name__.
                labels_refs: vec![3, 4, 1, 2, 5, 6],
                histograms: vec![
                    histogram.clone(),
                    v2::Histogram {
                        timestamp: 1_700_000_015_000,
                        ..histogram
                    },
                ],
                exemplars: vec![v2::Exemplar {
                    labels_refs: vec![7, 8],
                    value: 0.3,
                    timestamp: 1_700_000_000_001,
                }],
                metadata: Some(v2_metadata(v2::metadata::MetricType::Histogram, 9, 10)),
                ..Default::default()
            },
            v2::TimeSeries {
                labels_refs: vec![1, 11, 12, 13, 3, 4],
                samples: vec![
                    v2_sample(10.0, 1_700_000_000_000),
                    v2_sample(f64::from_bits(STALE_NAN_BITS), 1_700_000_015_000),
                ],
                metadata: Some(v2_metadata(v2::metadata::MetricType::Counter, 15, 0)),
                ..Default::default()
            },
            v2::TimeSeries {
                labels_refs: vec![1, 11, 12, 14, 3, 4],
                samples: vec![
                    v2_sample(f64::NAN, 1_700_000_000_000),
                    v2_sample(f64::INFINITY, 1_700_000_015_000),
                ],
                exemplars: vec![v2::Exemplar {
                    labels_refs: vec![],
                    value: 1.0,
                    timestamp: 1_700_000_000_002,
                }],
                ..Default::default()
            },
            v2::TimeSeries {
                labels_refs: vec![1, 16, 17, 4],
                samples: vec![v2_sample(f64::NEG_INFINITY, 1_700_000_000_000)],
                ..Default::default()
            },
        ],
    }
}

/// 2.0 metadata of `kind`, its help and unit given as symbol references.
fn v2_metadata(kind: v2::metadata::MetricType, help_ref: u32, unit_ref: u32) -> v2::Metadata {
    v2::Metadata {
        r#type: kind as i32,
        help_ref,
        unit_ref,
    }
}

/// A 2.0 sample without a start timestamp.
pub fn v2_sample(value: f64, timestamp: i64) -> v2::Sample {
    v2::Sample {
        value,
        timestamp,
        start_timestamp: 0,
    }
}

/// A float histogram with custom bucket bounds (schema -53, NHCB).
pub fn custom_buckets_histogram() -> v2::Histogram {
    v2::Histogram {
        count: Some(v2::histogram::Count::CountFloat(3.0)),
        sum: 4.0,
        schema: -53,
        positive_spans: vec![v2::BucketSpan {
            offset: 0,
            length: 2,
        }],
        positive_counts: vec![1.0, 2.0],
        custom_values: vec![0.5, 1.0],
        timestamp: 1_700_000_000_000,
        ..Default::default()
    }
}

/// A 1.0 series' labels as (name, value) bytes, in the order they came.
pub fn v1_label_bytes(series: &crate::prometheus::TimeSeries) -> Vec<(&[u8], &[u8])> {
    let labels = series.labels.iter();
    labels
        .map(|label| (label.name.as_bytes(), label.value.as_bytes()))
        .collect()
}

/// A 2.0 series' labels as (name, value) bytes, its references resolved in
/// the symbols of `request`, in the order they came.
pub fn v2_label_bytes<'a>(
    request: &'a v2::Request,
    series: &v2::TimeSeries,
) -> Vec<(&'a [u8], &'a [u8])> {
    let symbol = |reference: u32| request.symbols[reference as usize].as_bytes();
    let pairs = series.labels_refs.chunks_exact(2);
    pairs
        .map(|pair| (symbol(pair[0]), symbol(pair[1])))
        .collect()
}

/// A 1.0 request as a 2.0 one: one symbol table, symbols interned in
/// first-seen order, samples as they were (histograms, exemplars and
/// metadata are left out).
pub fn v1_as_v2(request: &WriteRequest) -> v2::Request {
    let mut symbols = vec![String::new()];
    let mut index = std::collections::HashMap::new();
    let mut intern = |symbol: &str| -> u32 {
        *index.entry(symbol.to_string()).or_insert_with(|| {
            symbols.push(symbol.to_string());
            (symbols.len() - 1) as u32
        })
    };
    let timeseries = request
        .timeseries
        .iter()
        .map(|series| v2::TimeSeries {
            labels_refs: series
                .labels
                .iter()
                .flat_map(|label| [intern(&label.name), intern(&label.value)])
                .collect(),
            samples: series
                .samples
                .iter()
                .map(|sample| v2_sample(sample.value, sample.timestamp))
                .collect(),
            ..Default::default()
        })
        .collect();
    v2::Request {
        symbols,
        timeseries,
    }
}
