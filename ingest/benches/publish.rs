//! The publish path without a network: from a request's partitioned batch
//! (2,000 samples of 10-label series, remote-write 1.0, 8 partitions) to its
//! records handed to the producer ingest uses (rdkafka's `FutureProducer`,
//! the settings of `Publisher::new`: acks=all, idempotence, lz4, linger 2 ms).
//! Throughput is in samples. Run: `cargo bench -p ingest --bench publish`.
//!
//! - `enqueue`: `Publisher::enqueue` with a broker that is not there
//!   (127.0.0.1:9 refuses), so every send only copies the record into
//!   librdkafka's queue; the queue is purged between batches of requests,
//!   outside the measured time.
//! - `split_and_enqueue`: the same after decompression and `split_v1`, i.e.
//!   everything ingest does to a request body short of HTTP and the acks.
//! - `publish_acked_by_mock_cluster`: `Publisher::publish` to librdkafka's
//!   in-process mock cluster (one broker, an 8-partition topic) until every
//!   record is acknowledged: batching, lz4 and the mock broker's work
//!   included, on the same two cores. One request at a time, so each waits
//!   out `linger.ms`; `..._16_in_flight` publishes 16 requests at once.
//! - `publish_records/enqueue_8_small_records`: 8 records of 100 bytes, for
//!   the fixed cost of a record (headers, the record, its delivery future),
//!   throughput in records.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ingest::config::SeriesLimits;
use ingest::partition::{PartitionedBatch, split_v1};
use ingest::publish::{Publisher, PublisherSettings};
use proto::Message;
use rdkafka::mocking::MockCluster;
use synthetic::synthetic_v1;

#[path = "../tests/support/synthetic.rs"]
mod synthetic;

const PARTITIONS: u32 = 8;
const SAMPLES: u64 = 2000;
const TOPIC: &str = "metrics.samples";

fn settings(brokers: String, properties: &[(&str, &str)]) -> PublisherSettings {
    PublisherSettings {
        brokers,
        compression: "lz4".into(),
        delivery_timeout: Duration::from_secs(300),
        max_record_bytes: 16 << 20,
        properties: properties
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn records(batch: &PartitionedBatch) -> Vec<(Option<i32>, &[u8])> {
    batch
        .records
        .iter()
        .map(|(partition, record)| (Some(*partition), record.as_slice()))
        .collect()
}

/// Times `requests` calls of `enqueue_one`, purging the producer's queue
/// every 64 requests outside the measured time.
fn timed_with_purges(
    publisher: &Publisher,
    requests: u64,
    mut enqueue_one: impl FnMut(),
) -> Duration {
    let mut measured = Duration::ZERO;
    let mut left = requests;
    while left > 0 {
        let chunk = left.min(64);
        let started = Instant::now();
        for _ in 0..chunk {
            enqueue_one();
        }
        measured += started.elapsed();
        left -= chunk;
        publisher.purge_queued();
        while publisher.queue_depth() > 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    measured
}

fn bench(c: &mut Criterion) {
    let limits = SeriesLimits::default();
    let raw = synthetic_v1(SAMPLES as usize).encode_to_vec();
    let body = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
    let batch = split_v1(&raw, "acme", &limits, PARTITIONS).unwrap();
    let record_bytes: usize = batch.records.iter().map(|(_, r)| r.len()).sum();
    eprintln!(
        "publish bench: one request = {SAMPLES} samples, {} records, {record_bytes} bytes",
        batch.records.len()
    );
    let content_type = proto::CONTENT_TYPE_V1;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();

    let offline = Publisher::new(
        settings(
            "127.0.0.1:9".into(),
            &[
                ("queue.buffering.max.messages", "1000000"),
                ("queue.buffering.max.kbytes", "4194304"),
                ("log_level", "0"),
            ],
        ),
        TOPIC.into(),
    )
    .unwrap();

    let mut group = c.benchmark_group("publish_2000");
    group.throughput(Throughput::Elements(SAMPLES));
    group.bench_function("enqueue", |b| {
        let records = records(&batch);
        b.iter_custom(|iters| {
            timed_with_purges(&offline, iters, || {
                let deliveries = offline
                    .enqueue(TOPIC, "acme", content_type, "acme", &records)
                    .unwrap();
                drop(deliveries);
            })
        })
    });
    group.bench_function("split_and_enqueue", |b| {
        b.iter_custom(|iters| {
            timed_with_purges(&offline, iters, || {
                let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
                let batch = split_v1(&raw, "acme", &limits, PARTITIONS).unwrap();
                let deliveries = offline
                    .enqueue(TOPIC, "acme", content_type, "acme", &records(&batch))
                    .unwrap();
                drop(deliveries);
            })
        })
    });

    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, PARTITIONS as i32, 1).unwrap();
    let acked = Publisher::new(settings(cluster.bootstrap_servers(), &[]), TOPIC.into()).unwrap();
    acked.refresh_metadata();
    assert_eq!(acked.samples_partitions(), Some(PARTITIONS));
    let batch_records = records(&batch);
    let publish_batch = || {
        acked.publish(
            TOPIC,
            "acme",
            content_type,
            "acme",
            &batch_records,
            Duration::from_secs(30),
        )
    };
    group.bench_function("publish_acked_by_mock_cluster", |b| {
        b.iter(|| runtime.block_on(publish_batch()).unwrap())
    });
    group.bench_function("publish_acked_by_mock_cluster_16_in_flight", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters.div_ceil(16) {
                let all = (0..16).map(|_| publish_batch());
                for result in runtime.block_on(futures::future::join_all(all)) {
                    result.unwrap();
                }
            }
            // Per request: 16 requests were timed for every 16 iterations.
            started
                .elapsed()
                .mul_f64(iters as f64 / (iters.div_ceil(16) * 16) as f64)
        })
    });
    group.finish();

    let mut group = c.benchmark_group("publish_records");
    let small = vec![0u8; 100];
    let small_records: Vec<(Option<i32>, &[u8])> = (0..PARTITIONS as i32)
        .map(|partition| (Some(partition), small.as_slice()))
        .collect();
    group.throughput(Throughput::Elements(small_records.len() as u64));
    group.bench_function("enqueue_8_small_records", |b| {
        b.iter_custom(|iters| {
            timed_with_purges(&offline, iters, || {
                let deliveries = offline
                    .enqueue(TOPIC, "acme", content_type, "acme", &small_records)
                    .unwrap();
                drop(deliveries);
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
