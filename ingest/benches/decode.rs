//! Decode + validate + partition, single core, against the floor any receiver
//! pays: snappy decompression plus a bare protobuf field walk over the same
//! bytes. Throughput is in samples. Run: `cargo bench -p ingest --bench decode`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ingest::config::SeriesLimits;
use ingest::partition::{split_v1, split_v2};
use proto::Message;
use proto::prometheus::{Label, Sample, TimeSeries, WriteRequest};
use proto::v2;
use proto::wire::Fields;

const PARTITIONS: u32 = 8;

fn decompress(body: &[u8]) -> Vec<u8> {
    snap::raw::Decoder::new().decompress_vec(body).unwrap()
}

/// Visits every field of every series and label without allocating: the floor.
fn walk(raw: &[u8]) -> usize {
    let mut fields = 0;
    for field in Fields::new(raw) {
        let field = field.unwrap();
        if field.number == 1 {
            for inner in Fields::new(field.bytes().unwrap()) {
                let inner = inner.unwrap();
                if inner.number == 1 {
                    fields += Fields::new(inner.bytes().unwrap()).count();
                }
                fields += 1;
            }
        }
        fields += 1;
    }
    fields
}

/// Kubernetes-like series: 10 labels, one sample each, `count` per request.
fn synthetic_v1(count: usize) -> WriteRequest {
    let timeseries = (0..count)
        .map(|i| {
            let label = |name: &str, value: String| Label {
                name: name.into(),
                value,
            };
            TimeSeries {
                labels: vec![
                    label("__name__", format!("container_metric_{}", i % 50)),
                    label("cluster_name", "prod-eu-1".into()),
                    label("container", format!("app-{}", i % 7)),
                    label("endpoint", "http-metrics".into()),
                    label("instance", format!("10.0.{}.{}:9100", i % 200, i % 250)),
                    label("job", "kubernetes-pods".into()),
                    label("namespace", format!("team-{}", i % 20)),
                    label("node", format!("node-{}", i % 64)),
                    label("pod", format!("app-{}-7d9f8c6b5-{:05}", i % 7, i)),
                    label("service", format!("svc-{}", i % 30)),
                ],
                samples: vec![Sample {
                    value: i as f64 * 1.5,
                    timestamp: 1_700_000_000_000 + i as i64,
                }],
                ..Default::default()
            }
        })
        .collect();
    WriteRequest {
        timeseries,
        metadata: vec![],
    }
}

fn to_v2(request: &WriteRequest) -> v2::Request {
    let mut symbols = vec![String::new()];
    let mut index = std::collections::HashMap::new();
    let mut intern = |s: &str| -> u32 {
        *index.entry(s.to_string()).or_insert_with(|| {
            symbols.push(s.to_string());
            (symbols.len() - 1) as u32
        })
    };
    let timeseries = request
        .timeseries
        .iter()
        .map(|ts| v2::TimeSeries {
            labels_refs: ts
                .labels
                .iter()
                .flat_map(|l| [intern(&l.name), intern(&l.value)])
                .collect(),
            samples: ts
                .samples
                .iter()
                .map(|s| v2::Sample {
                    value: s.value,
                    timestamp: s.timestamp,
                    start_timestamp: 0,
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    v2::Request {
        symbols,
        timeseries,
    }
}

fn bench(c: &mut Criterion) {
    let limits = SeriesLimits::default();
    let fixtures: Vec<Vec<u8>> = proto::fixtures::prometheus_2_42_bodies()
        .unwrap()
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    let fixture_samples = 20_000u64;

    let mut group = c.benchmark_group("fixtures_v1");
    group.throughput(Throughput::Elements(fixture_samples));
    group.bench_function("floor_snappy_and_field_walk", |b| {
        b.iter(|| {
            fixtures
                .iter()
                .map(|body| walk(&decompress(body)))
                .sum::<usize>()
        })
    });
    group.bench_function("decode_validate_partition", |b| {
        b.iter(|| {
            let mut records = 0;
            for body in &fixtures {
                records += split_v1(&decompress(body), "acme", &limits, PARTITIONS)
                    .unwrap()
                    .records
                    .len();
            }
            records
        })
    });
    group.bench_function("prost_owned_decode", |b| {
        b.iter(|| {
            fixtures
                .iter()
                .map(|body| {
                    WriteRequest::decode(decompress(body).as_slice())
                        .unwrap()
                        .timeseries
                        .len()
                })
                .sum::<usize>()
        })
    });
    group.finish();

    let synthetic = synthetic_v1(2000);
    let v1_body = snap::raw::Encoder::new()
        .compress_vec(&synthetic.encode_to_vec())
        .unwrap();
    let v2_body = snap::raw::Encoder::new()
        .compress_vec(&to_v2(&synthetic).encode_to_vec())
        .unwrap();
    let mut group = c.benchmark_group("synthetic_2000");
    group.throughput(Throughput::Elements(2000));
    group.bench_function("v1_floor_snappy_and_field_walk", |b| {
        b.iter(|| walk(&decompress(&v1_body)))
    });
    group.bench_function("v1_decode_validate_partition", |b| {
        b.iter(|| {
            split_v1(&decompress(&v1_body), "acme", &limits, PARTITIONS)
                .unwrap()
                .records
                .len()
        })
    });
    group.bench_function("v2_decode_validate_partition", |b| {
        b.iter(|| {
            split_v2(&decompress(&v2_body), "acme", &limits, PARTITIONS)
                .unwrap()
                .records
                .len()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
