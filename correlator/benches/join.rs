//! The join's per-sample path with a warm series cache, and applying large
//! snapshots. Run: `cargo bench -p correlator --bench join`.

use correlator::bindings::Bindings;
use correlator::index::AsOf;
use correlator::join::{JoinSettings, Joiner, Origin};
use correlator::output::OutputEncoding;
use correlator::snapshot::{Instance, RawComponent, SnapshotAssembler, TopologyPart, TypeName};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use proto::Message;
use proto::prometheus::{Label, Sample, TimeSeries, WriteRequest};
use proto::records::Component;

const PODS: usize = 10_000;

fn settings() -> JoinSettings {
    JoinSettings {
        as_of: AsOf {
            skew_ms: 60_000,
            delete_grace_ms: 120_000,
        },
        history_ms: 1_800_000,
        pending_grace_ms: 120_000,
        pending_max_samples: 1_000_000,
        series_cache_max: 2_000_000,
        encoding: OutputEncoding::Protobuf,
    }
}

fn pod_component(index: usize) -> (String, Component) {
    let id = format!(
        "urn:kubernetes:/prod:team-{}:pod/app-{index:05}",
        index % 20
    );
    let component = Component {
        tenant: "acme".into(),
        external_id: id.clone(),
        type_name: "pod".into(),
        name: format!("app-{index:05}"),
        identifiers: vec![id.clone()],
        first_seen_ms: 0,
        ..Default::default()
    };
    (format!("acme/kubernetes/prod/{id}"), component)
}

/// 2,000 series of 10 labels, one sample each, spread over the pods.
fn record(offset: usize) -> Vec<u8> {
    let timeseries = (0..2000)
        .map(|i| {
            let pod = (i + offset) % PODS;
            let label = |name: &str, value: String| Label {
                name: name.into(),
                value,
            };
            TimeSeries {
                labels: vec![
                    label("__name__", format!("container_metric_{}", i % 50)),
                    label("cluster_name", "prod".into()),
                    label("endpoint", "http-metrics".into()),
                    label("instance", format!("10.0.{}.{}:9100", i % 200, i % 250)),
                    label("job", "kubernetes-pods".into()),
                    label("namespace", format!("team-{}", pod % 20)),
                    label("node", format!("node-{}", i % 64)),
                    label("pod", format!("app-{pod:05}")),
                    label("service", format!("svc-{}", i % 30)),
                    label("zone", "eu-1a".into()),
                ],
                samples: vec![Sample {
                    value: i as f64,
                    timestamp: 1_700_000_000_000,
                }],
                ..Default::default()
            }
        })
        .collect();
    WriteRequest {
        timeseries,
        metadata: vec![],
    }
    .encode_to_vec()
}

fn join(c: &mut Criterion) {
    let mut joiner = Joiner::new(Bindings::kubernetes_defaults(), settings());
    for index in 0..PODS {
        let (key, component) = pod_component(index);
        joiner.upsert_component(&key, component);
    }
    joiner.release_pending();
    let payload = record(0);
    let origin = Origin {
        partition: 0,
        offset: 0,
    };
    // Warm the series cache.
    joiner
        .process("acme", proto::CONTENT_TYPE_V1, &payload, origin, 0)
        .unwrap();
    let mut group = c.benchmark_group("join");
    group.throughput(Throughput::Elements(2000));
    group.bench_function("warm_2000_samples_to_bound_records", |b| {
        b.iter(|| {
            joiner
                .process("acme", proto::CONTENT_TYPE_V1, &payload, origin, 0)
                .unwrap()
                .len()
        })
    });
    group.finish();
}

fn snapshot_part(components: usize) -> TopologyPart {
    TopologyPart {
        tenant: "acme".into(),
        instance: Instance { kind: "kubernetes".into(), url: "prod".into() },
        start_snapshot: true,
        stop_snapshot: true,
        delete_ids: vec![],
        components: (0..components)
            .map(|index| RawComponent {
                external_id: format!("urn:kubernetes:/prod:team-{}:pod/app-{index:07}", index % 20),
                kind: Some(TypeName { name: "pod".into() }),
                data: serde_json::json!({"name": format!("app-{index:07}"), "tags": {"cluster-name": "prod"}}),
            })
            .collect(),
        collection_timestamp: 1_700_000_000.0,
    }
}

fn snapshots(c: &mut Criterion) {
    let mut group = c.benchmark_group("snapshot");
    group.sample_size(10);
    for components in [100_000usize, 1_000_000] {
        let part = snapshot_part(components);
        group.throughput(Throughput::Elements(components as u64));
        group.bench_function(format!("apply_{components}_components"), |b| {
            b.iter_batched(
                SnapshotAssembler::default,
                |mut assembler| assembler.apply(&part, (0, 0), 0).len(),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, join, snapshots);
criterion_main!(benches);
