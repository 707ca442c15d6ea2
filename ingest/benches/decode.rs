//! Decode + validate + partition, single core, against the floor any receiver
//! pays: snappy decompression plus a bare protobuf field walk over the same
//! bytes. Throughput is in samples. Run: `cargo bench -p ingest --bench decode`.
//!
//! Each group also measures, in the same run, the code it replaced: the 1.0
//! split as it was before the hot path was reworked (`..._before`,
//! `tests/support/split_v1_before.rs`) and the 2.0 split that decoded with
//! prost (`..._prost`, `tests/support/split_v2_prost.rs`).
//!
//! With `BENCH_CPU_TIME=1` every figure is the bench thread's CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`) instead of wall time: on a shared machine the
//! time the thread spends preempted then counts for nothing, which makes
//! the figures (and their ratios) much steadier than wall time.

#[path = "../tests/support/split_v1_before.rs"]
mod split_v1_before;
#[path = "../tests/support/split_v2_prost.rs"]
mod split_v2_prost;
#[path = "../tests/support/synthetic.rs"]
mod synthetic;

use criterion::measurement::Measurement;
use criterion::{Criterion, Throughput};
use ingest::config::SeriesLimits;
use ingest::partition::{split_v1, split_v2};
use proto::Message;
use proto::prometheus::WriteRequest;

use proto::fields::{prometheus as v1, v2};
use proto::fixtures::v1_as_v2;
use proto::wire::Fields;
use split_v1_before::split_v1_before;
use split_v2_prost::split_v2_prost;
use synthetic::synthetic_v1;

const PARTITIONS: u32 = 8;

fn decompress(body: &[u8]) -> Vec<u8> {
    snap::raw::Decoder::new().decompress_vec(body).unwrap()
}

/// Visits every field of every series and label without allocating: the floor.
fn walk(raw: &[u8]) -> usize {
    let mut fields = 0;
    for field in Fields::new(raw) {
        let field = field.unwrap();
        if field.number == v1::WRITE_REQUEST_TIMESERIES {
            for inner in Fields::new(field.bytes().unwrap()) {
                let inner = inner.unwrap();
                if inner.number == v1::TIME_SERIES_LABELS {
                    fields += Fields::new(inner.bytes().unwrap()).count();
                }
                fields += 1;
            }
        }
        fields += 1;
    }
    fields
}

/// The same floor for a 2.0 request: every symbol, every series field and
/// every field of each sample.
fn walk_v2(raw: &[u8]) -> usize {
    let mut fields = 0;
    for field in Fields::new(raw) {
        let field = field.unwrap();
        if field.number == v2::REQUEST_TIMESERIES {
            for inner in Fields::new(field.bytes().unwrap()) {
                let inner = inner.unwrap();
                if inner.number == v2::TIME_SERIES_LABELS_REFS {
                    let refs = inner.bytes().unwrap();
                    let mut pos = 0;
                    while pos < refs.len() {
                        proto::wire::read_varint(refs, &mut pos).unwrap();
                        fields += 1;
                    }
                } else if inner.number == v2::TIME_SERIES_SAMPLES {
                    fields += Fields::new(inner.bytes().unwrap()).count();
                }
                fields += 1;
            }
        }
        fields += 1;
    }
    fields
}

fn bench<M: Measurement>(c: &mut Criterion<M>) {
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
    group.bench_function("decode_validate_partition_before", |b| {
        b.iter(|| {
            let mut records = 0;
            for body in &fixtures {
                records += split_v1_before(&decompress(body), "acme", &limits, PARTITIONS)
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

    // The captures as a 2.0 sender would have sent them.
    let fixtures_v2: Vec<Vec<u8>> = fixtures
        .iter()
        .map(|body| {
            let request = WriteRequest::decode(decompress(body).as_slice()).unwrap();
            snap::raw::Encoder::new()
                .compress_vec(&v1_as_v2(&request).encode_to_vec())
                .unwrap()
        })
        .collect();
    let mut group = c.benchmark_group("fixtures_v2");
    group.throughput(Throughput::Elements(fixture_samples));
    group.bench_function("floor_snappy_and_field_walk", |b| {
        b.iter(|| {
            fixtures_v2
                .iter()
                .map(|body| walk_v2(&decompress(body)))
                .sum::<usize>()
        })
    });
    group.bench_function("decode_validate_partition", |b| {
        b.iter(|| {
            let mut records = 0;
            for body in &fixtures_v2 {
                records += split_v2(&decompress(body), "acme", &limits, PARTITIONS)
                    .unwrap()
                    .records
                    .len();
            }
            records
        })
    });
    group.bench_function("decode_validate_partition_prost", |b| {
        b.iter(|| {
            let mut records = 0;
            for body in &fixtures_v2 {
                records += split_v2_prost(&decompress(body), "acme", &limits, PARTITIONS)
                    .unwrap()
                    .records
                    .len();
            }
            records
        })
    });
    group.finish();

    let synthetic = synthetic_v1(2000);
    let v1_body = snap::raw::Encoder::new()
        .compress_vec(&synthetic.encode_to_vec())
        .unwrap();
    let v2_body = snap::raw::Encoder::new()
        .compress_vec(&v1_as_v2(&synthetic).encode_to_vec())
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
    group.bench_function("v1_decode_validate_partition_before", |b| {
        b.iter(|| {
            split_v1_before(&decompress(&v1_body), "acme", &limits, PARTITIONS)
                .unwrap()
                .records
                .len()
        })
    });
    group.bench_function("v2_floor_snappy_and_field_walk", |b| {
        b.iter(|| walk_v2(&decompress(&v2_body)))
    });
    group.bench_function("v2_decode_validate_partition", |b| {
        b.iter(|| {
            split_v2(&decompress(&v2_body), "acme", &limits, PARTITIONS)
                .unwrap()
                .records
                .len()
        })
    });
    group.bench_function("v2_decode_validate_partition_prost", |b| {
        b.iter(|| {
            split_v2_prost(&decompress(&v2_body), "acme", &limits, PARTITIONS)
                .unwrap()
                .records
                .len()
        })
    });
    group.finish();
}

/// The calling thread's CPU time, in nanoseconds, formatted as wall time is.
struct ThreadCpuTime(criterion::measurement::WallTime);

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

unsafe extern "C" {
    fn clock_gettime(clock: i32, time: *mut Timespec) -> i32;
}

const CLOCK_THREAD_CPUTIME_ID: i32 = 3;

fn thread_cpu_ns() -> u64 {
    let mut time = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a pointer to a live timespec.
    let result = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut time) };
    assert_eq!(result, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    time.tv_sec as u64 * 1_000_000_000 + time.tv_nsec as u64
}

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }

    fn end(&self, started: u64) -> u64 {
        thread_cpu_ns() - started
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }

    fn formatter(&self) -> &dyn criterion::measurement::ValueFormatter {
        self.0.formatter()
    }
}

fn main() {
    if std::env::var_os("BENCH_CPU_TIME").is_some_and(|v| v != "0") {
        let mut criterion = Criterion::default()
            .with_measurement(ThreadCpuTime(criterion::measurement::WallTime))
            .configure_from_args();
        bench(&mut criterion);
        criterion.final_summary();
    } else {
        let mut criterion = Criterion::default().configure_from_args();
        bench(&mut criterion);
        criterion.final_summary();
    }
}
