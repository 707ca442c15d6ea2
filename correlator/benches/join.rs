//! The join's per-sample path with a warm series cache, and applying large
//! snapshots. Run: `cargo bench -p correlator --bench join`.

use correlator::bindings::Bindings;
use correlator::join::{Joiner, Origin};
use correlator::snapshot::{Instance, RawComponent, SnapshotAssembler, TopologyPart};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use proto::Message;
use proto::prometheus::{Label, Sample, TimeSeries, WriteRequest};
use proto::records::Component;

mod support;

// As in the correlator binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PODS: usize = 10_000;
const NODES: usize = 64;

fn component(id: String, type_name: &str, name: String) -> (String, Component) {
    let component = Component {
        tenant: "acme".into(),
        external_id: id.clone(),
        type_name: type_name.into(),
        name,
        identifiers: vec![id.clone()],
        first_seen_ms: 0,
        ..Default::default()
    };
    (format!("acme/kubernetes/prod/{id}"), component)
}

fn pod_id(pod: usize) -> String {
    format!("urn:kubernetes:/prod:team-{}:pod/app-{pod:05}", pod % 20)
}

/// 2,000 series of 10 labels (11 with `container`), one sample each, spread
/// over the pods.
fn record(offset: usize, with_container: bool) -> Vec<u8> {
    let timeseries = (0..2000)
        .map(|i| {
            let pod = (i + offset) % PODS;
            let label = |name: &str, value: String| Label {
                name: name.into(),
                value,
            };
            let mut labels = vec![
                label("__name__", format!("container_metric_{}", i % 50)),
                label("cluster_name", "prod".into()),
            ];
            if with_container {
                labels.push(label("container", "app".into()));
            }
            labels.extend([
                label("endpoint", "http-metrics".into()),
                label("instance", format!("10.0.{}.{}:9100", i % 200, i % 250)),
                label("job", "kubernetes-pods".into()),
                label("namespace", format!("team-{}", pod % 20)),
                label("node", format!("node-{}", pod % NODES)),
                label("pod", format!("app-{pod:05}")),
                label("service", format!("svc-{}", i % 30)),
                label("zone", "eu-1a".into()),
            ]);
            TimeSeries {
                labels,
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

/// 256 series as ingest writes them with `PARTITION_BY_LABELS=namespace,pod`
/// and loadtest's synthetic universe: 8 pods of 2 containers, 16 families
/// each, 10 labels, one sample each. Each record binds to 8 pods, 16
/// containers and up to 8 nodes.
fn record_by_pod(first_pod: usize) -> Vec<u8> {
    let mut timeseries = Vec::new();
    for pod in first_pod..first_pod + 8 {
        for container in ["server", "istio-proxy"] {
            for family in 0..16 {
                let label = |name: &str, value: String| Label {
                    name: name.into(),
                    value,
                };
                let node = pod % NODES;
                timeseries.push(TimeSeries {
                    labels: vec![
                        label("__name__", format!("container_metric_{family}")),
                        label("cluster_name", "prod".into()),
                        label("container", container.into()),
                        label(
                            "image",
                            format!("registry.example.com/app:1.{}.0", pod % 10),
                        ),
                        label("instance", format!("10.0.0.{node}:10250")),
                        label("job", "kubelet".into()),
                        label("loadtest_run", "bench-0123456789".into()),
                        label("namespace", format!("team-{}", pod % 20)),
                        label("node", format!("node-{node}")),
                        label("pod", format!("app-{pod:05}")),
                    ],
                    samples: vec![Sample {
                        value: family as f64,
                        timestamp: 1_700_000_000_000,
                    }],
                    ..Default::default()
                });
            }
        }
    }
    WriteRequest {
        timeseries,
        metadata: vec![],
    }
    .encode_to_vec()
}

/// The joiner with every pod known, and with `default_rules` their
/// containers and nodes too: each sample then binds three times.
fn warm_joiner(default_rules: bool, payload: &[u8]) -> Joiner {
    let mut joiner = Joiner::new(Bindings::kubernetes_defaults(), support::default_settings());
    for pod in 0..PODS {
        let (key, pod_component) = component(pod_id(pod), "pod", format!("app-{pod:05}"));
        joiner.upsert_component(&key, pod_component);
        if default_rules {
            let (key, container) = component(
                format!("{}:container/app", pod_id(pod)),
                "container",
                "app".into(),
            );
            joiner.upsert_component(&key, container);
        }
    }
    if default_rules {
        for node in 0..NODES {
            let (key, node_component) = component(
                format!("urn:kubernetes:/prod:node/node-{node}"),
                "node",
                format!("node-{node}"),
            );
            joiner.upsert_component(&key, node_component);
        }
    }
    joiner.release_pending();
    // Warm the series cache.
    joiner
        .process("acme", proto::CONTENT_TYPE_V1, payload, ORIGIN, 0)
        .unwrap();
    joiner
}

const ORIGIN: Origin = Origin {
    partition: 0,
    offset: 0,
};

fn join(c: &mut Criterion) {
    let mut group = c.benchmark_group("join");
    // Throughput in input samples: 2,000 per record.
    group.throughput(Throughput::Elements(2000));
    for (name, default_rules) in [
        ("warm_2000_samples_one_binding_each", false),
        ("warm_2000_samples_container_pod_node", true),
    ] {
        let payload = record(0, default_rules);
        let mut joiner = warm_joiner(default_rules, &payload);
        let bound: usize = joiner
            .process("acme", proto::CONTENT_TYPE_V1, &payload, ORIGIN, 0)
            .unwrap()
            .iter()
            .map(|output| output.points)
            .sum();
        assert_eq!(bound, if default_rules { 6000 } else { 2000 }, "{name}");
        group.bench_function(name, |b| {
            b.iter(|| {
                joiner
                    .process("acme", proto::CONTENT_TYPE_V1, &payload, ORIGIN, 0)
                    .unwrap()
                    .len()
            })
        });
    }
    let container_pod_node = |pod: usize| {
        let mut joiner = warm_joiner(true, &record(0, true));
        for pod in pod..pod + 8 {
            for container in ["server", "istio-proxy"] {
                let id = format!("{}:container/{container}", pod_id(pod));
                let (key, component) = component(id, "container", container.into());
                joiner.upsert_component(&key, component);
            }
        }
        joiner.release_pending();
        let _ = joiner.process(
            "acme",
            proto::CONTENT_TYPE_V1,
            &record_by_pod(pod),
            ORIGIN,
            0,
        );
        joiner
    };
    group.throughput(Throughput::Elements(256));
    let payload = record_by_pod(0);
    let mut joiner = container_pod_node(0);
    let outputs = joiner
        .process("acme", proto::CONTENT_TYPE_V1, &payload, ORIGIN, 0)
        .unwrap();
    let bound: usize = outputs.iter().map(|output| output.points).sum();
    assert_eq!((bound, outputs.len()), (768, 32), "by pod");
    group.bench_function("warm_256_samples_by_pod_container_pod_node", |b| {
        b.iter(|| {
            joiner
                .process("acme", proto::CONTENT_TYPE_V1, &payload, ORIGIN, 0)
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
            .map(|index| {
                RawComponent::new(
                    format!("urn:kubernetes:/prod:team-{}:pod/app-{index:07}", index % 20),
                    "pod",
                    &serde_json::json!({"name": format!("app-{index:07}"), "tags": {"cluster-name": "prod"}}),
                )
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
