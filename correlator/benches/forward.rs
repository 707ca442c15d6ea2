//! The forwarder's CPU per sample: a bound record read (its series checked
//! and hashed to shards, as `correlator forward` does with the payload it
//! copies out of the consumer), gathered into requests, encoded
//! (remote-write 1.0 or 2.0) and snappy-compressed, on the batches the join
//! makes of the real Prometheus 2.42 traffic in `testdata/`; and, in the
//! same run, the join writing those batches, so the two rates compare in
//! one unit (bound samples). Run: `cargo bench -p correlator --bench forward`.

use correlator::bindings::Bindings;
use correlator::forward::batch::{Batcher, Piece};
use correlator::forward::config::{
    BatchLimits, DEFAULT_MAX_POINTS_PER_REQUEST, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_SHARDS,
    Protocol,
};
use correlator::forward::offsets::Ticket;
use correlator::forward::record::Record;
use correlator::forward::request::Encoder;
use correlator::forward::split_by_shard;
use correlator::join::{Destination, JoinSettings, Joiner, Origin};
use correlator::output::read_batch;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use proto::Message;
use proto::records::Component;

// As in the correlator binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const POD: &str = "urn:kubernetes:/demo-cluster:monitoring:pod/node-exporter-x7k2p";
const CONTAINER: &str =
    "urn:kubernetes:/demo-cluster:monitoring:pod/node-exporter-x7k2p:container/node-exporter";

/// A join holding the fixtures' pod and container.
fn joiner() -> Joiner {
    let settings = JoinSettings {
        // The captures are from 2023: nothing of them is late.
        history_ms: i64::MAX / 4,
        ..JoinSettings::default()
    };
    let mut joiner = Joiner::new(Bindings::kubernetes_defaults(), settings);
    for (id, kind) in [(POD, "pod"), (CONTAINER, "container")] {
        let component = Component {
            tenant: "alpha".into(),
            external_id: id.into(),
            type_name: kind.into(),
            name: id.rsplit('/').next().unwrap().into(),
            identifiers: vec![id.into()],
            ..Default::default()
        };
        joiner.upsert_component(&format!("alpha/kubernetes/demo-cluster/{id}"), component);
    }
    joiner
}

/// The fixtures as `metrics.samples` holds them: uncompressed 1.0 requests.
fn sample_records() -> Vec<Vec<u8>> {
    proto::fixtures::prometheus_2_42_requests()
        .unwrap()
        .iter()
        .map(|(_, request)| request.encode_to_vec())
        .collect()
}

/// The bound records `joiner` writes of `records`.
// Not inlined, so a profiler can count instructions per call.
#[inline(never)]
fn join_all(joiner: &mut Joiner, records: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut payloads = Vec::new();
    for (offset, request) in records.iter().enumerate() {
        let origin = Origin {
            partition: 0,
            offset: offset as i64,
        };
        for output in joiner
            .process("alpha", proto::CONTENT_TYPE_V1, request, origin, 0)
            .unwrap()
        {
            if output.destination == Destination::Bound {
                payloads.push(output.payload);
            }
        }
    }
    payloads
}

/// Everything a forwarder does with `payloads` short of the network, with
/// one encoder per shard (kept from pass to pass, as a shard keeps its own);
/// returns the bytes sent.
#[inline(never)]
fn forward_all(payloads: &[Vec<u8>], protocol: Protocol, encoders: &mut [Encoder]) -> usize {
    let limits = BatchLimits {
        max_points: DEFAULT_MAX_POINTS_PER_REQUEST,
        max_bytes: DEFAULT_MAX_REQUEST_BYTES,
    };
    let mut shards: Vec<(Batcher, &mut Encoder)> = encoders
        .iter_mut()
        .map(|encoder| (Batcher::new(limits), encoder))
        .collect();
    let mut sent = 0;
    for (offset, payload) in payloads.iter().enumerate() {
        let (record, series) = Record::parse(payload.clone()).unwrap();
        let record = std::sync::Arc::new(record);
        let ticket = Ticket {
            partition: 0,
            offset: offset as i64,
            generation: 0,
        };
        for (shard, series) in split_by_shard(series, DEFAULT_SHARDS) {
            let (batcher, encoder) = &mut shards[shard];
            batcher.push(Piece {
                ticket,
                record: record.clone(),
                series,
            });
            while let Some(batch) = batcher.take_ready() {
                sent += encoder.body(protocol, &batch).len();
            }
        }
    }
    for (batcher, encoder) in &mut shards {
        while let Some(batch) = batcher.take_any() {
            sent += encoder.body(protocol, &batch).len();
        }
    }
    sent
}

fn forward(c: &mut Criterion) {
    let records = sample_records();
    let mut join = joiner();
    let payloads = join_all(&mut join, &records);
    let samples: usize = payloads
        .iter()
        .flat_map(|payload| read_batch(proto::CONTENT_TYPE_V2, payload).unwrap())
        .map(|series| series.samples.len())
        .sum();
    let mut group = c.benchmark_group("forward");
    group.throughput(Throughput::Elements(samples as u64));
    for (name, protocol) in [
        ("bound_fixtures_to_1.0", Protocol::V1),
        ("bound_fixtures_to_2.0", Protocol::V2),
    ] {
        let mut encoders: Vec<Encoder> = (0..DEFAULT_SHARDS).map(|_| Encoder::new()).collect();
        group.bench_function(name, |b| {
            b.iter(|| forward_all(&payloads, protocol, &mut encoders))
        });
    }
    // The correlator's side of the same run: the join writing those bound
    // records (warm), in the same unit, bound samples out.
    group.bench_function("join_fixtures_to_bound", |b| {
        b.iter(|| join_all(&mut join, &records).len())
    });
    group.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
