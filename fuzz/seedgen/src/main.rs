//! Writes the generated seed corpora of the fuzz targets under the directory
//! given as the only argument (scripts/fuzz.sh passes fuzz/corpus):
//!
//! - `snappy_body/`: the captured Prometheus 2.42 request bodies, as sent;
//! - `remote_write_v1/`: the same bodies decompressed;
//! - `remote_write_v2/`: a hand-built v2 request (histograms, exemplars,
//!   metadata, unsorted labels, an out-of-range reference) and a few captured
//!   v1 bodies translated to v2.
//!
//! Seeds are named `seed-*` and rewritten on every run, so the corpus that the
//! fuzzer grows beside them is kept.

use std::path::Path;

use proto::prometheus::WriteRequest;
use proto::{Message, v2};

/// How many captured v1 bodies are also translated to v2 seeds.
const V2_TRANSLATED: usize = 4;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .ok_or("usage: fuzz-seedgen CORPUS_DIR")?;
    let out = Path::new(&out);
    let bodies = proto::fixtures::prometheus_2_42_bodies()?;
    if bodies.is_empty() {
        return Err("no captured bodies in testdata/remote-write/prometheus-2.42".into());
    }
    let mut decoder = snap::raw::Decoder::new();
    let mut written = [0usize; 3];
    for (index, (name, body)) in bodies.iter().enumerate() {
        let stem = name.trim_end_matches(".bin");
        write(out, "snappy_body", &format!("seed-{stem}.bin"), body)?;
        let raw = decoder.decompress_vec(body)?;
        write(out, "remote_write_v1", &format!("seed-{stem}.pb"), &raw)?;
        written[0] += 1;
        written[1] += 1;
        if index < V2_TRANSLATED {
            let v1 = WriteRequest::decode(raw.as_slice())?;
            let v2 = proto::fixtures::v1_as_v2(&v1).encode_to_vec();
            write(
                out,
                "remote_write_v2",
                &format!("seed-{stem}-as-v2.pb"),
                &v2,
            )?;
            written[2] += 1;
        }
    }
    // A small v1 request with every kind of field, as is and compressed: the
    // captured bodies are large, and small inputs mutate faster.
    let small_v1 = handmade_v1().encode_to_vec();
    write(out, "remote_write_v1", "seed-handmade.pb", &small_v1)?;
    let compressed = snap::raw::Encoder::new().compress_vec(&small_v1)?;
    write(out, "snappy_body", "seed-handmade.bin", &compressed)?;
    written[0] += 1;
    written[1] += 1;
    write(
        out,
        "remote_write_v2",
        "seed-handmade.pb",
        &handmade_v2().encode_to_vec(),
    )?;
    write(
        out,
        "remote_write_v2",
        "seed-empty.pb",
        &v2::Request::default().encode_to_vec(),
    )?;
    written[2] += 2;
    println!(
        "seedgen: {} snappy_body, {} remote_write_v1, {} remote_write_v2 seeds in {}",
        written[1],
        written[0],
        written[2],
        out.display()
    );
    Ok(())
}

fn write(out: &Path, target: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let dir = out.join(target);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(name), bytes)
}

/// Unsorted labels, a stale marker, an exemplar, a native histogram, metadata,
/// and a series rejected for its missing `__name__`.
fn handmade_v1() -> WriteRequest {
    use proto::prometheus::{
        BucketSpan, Exemplar, Histogram, Label, MetricMetadata, Sample, TimeSeries, histogram,
        metric_metadata,
    };
    let label = |name: &str, value: &str| Label {
        name: name.into(),
        value: value.into(),
    };
    WriteRequest {
        timeseries: vec![
            TimeSeries {
                labels: vec![label("job", "api"), label("__name__", "requests_total")],
                samples: vec![
                    Sample {
                        value: 1.0,
                        timestamp: 1_700_000_000_000,
                    },
                    Sample {
                        value: f64::from_bits(proto::STALE_NAN_BITS),
                        timestamp: 1_700_000_015_000,
                    },
                ],
                exemplars: vec![Exemplar {
                    labels: vec![label("trace_id", "abc")],
                    value: 0.5,
                    timestamp: 1_700_000_000_001,
                }],
                ..Default::default()
            },
            TimeSeries {
                labels: vec![label("__name__", "latency_seconds"), label("job", "api")],
                histograms: vec![Histogram {
                    count: Some(histogram::Count::CountInt(7)),
                    sum: 3.5,
                    schema: 1,
                    zero_count: Some(histogram::ZeroCount::ZeroCountInt(1)),
                    positive_spans: vec![BucketSpan {
                        offset: 0,
                        length: 3,
                    }],
                    positive_deltas: vec![2, 1, -2],
                    timestamp: 1_700_000_000_000,
                    ..Default::default()
                }],
                ..Default::default()
            },
            TimeSeries {
                labels: vec![label("job", "no-name")],
                samples: vec![Sample {
                    value: 2.0,
                    timestamp: 1_700_000_000_000,
                }],
                ..Default::default()
            },
        ],
        metadata: vec![MetricMetadata {
            r#type: metric_metadata::MetricType::Counter as i32,
            metric_family_name: "requests".into(),
            help: "Requests.".into(),
            unit: String::new(),
        }],
    }
}

/// The shared hand-made v2 request (proto::fixtures), plus a float histogram
/// with custom buckets, a created timestamp and a series rejected for a
/// reference past the symbols.
fn handmade_v2() -> v2::Request {
    let mut request = proto::fixtures::v2_request();
    request.timeseries[0]
        .histograms
        .push(proto::fixtures::custom_buckets_histogram());
    request.timeseries[3].created_timestamp = 1_699_000_000_000;
    request.timeseries.push(v2::TimeSeries {
        labels_refs: vec![1, 2, 3, 99],
        samples: vec![proto::fixtures::v2_sample(1.0, 1_700_000_000_000)],
        ..Default::default()
    });
    request
}
