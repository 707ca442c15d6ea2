//! The topology intake's CPU work on a large agent snapshot: parse the
//! payload, check every part, write the `topology.raw` records. Throughput is
//! in payload bytes. Run: `cargo bench -p ingest --bench topology`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ingest::topology::parts_to_records;
use serde_json::json;

/// `parts` parts of `components` components each, shaped like what a
/// Kubernetes collector sends (data with name, layer, tags, identifiers).
fn agent_snapshot(parts: usize, components: usize) -> Vec<u8> {
    let part = |part: usize| {
        let pods: Vec<_> = (0..components)
            .map(|index| {
                let id = format!("urn:kubernetes:/demo:pod/pod-{part}-{index}");
                json!({"externalId": id, "type": {"name": "pod"},
                    "data": {"name": format!("pod-{index}"), "layer": "Pods", "domain": "demo",
                        "tags": {"cluster-name": "demo", "namespace": "monitoring"},
                        "labels": ["app:demo"], "identifiers": [format!("urn:container:/{index}")]}})
            })
            .collect();
        let relations: Vec<_> = (1..components)
            .map(|index| {
                json!({"externalId": format!("rel-{index}"), "type": {"name": "runs_on"},
                    "sourceId": format!("urn:kubernetes:/demo:pod/pod-{part}-{index}"),
                    "targetId": format!("urn:kubernetes:/demo:pod/pod-{part}-0"), "data": {}})
            })
            .collect();
        json!({"start_snapshot": part == 0, "stop_snapshot": part + 1 == parts,
            "instance": {"type": "kubernetes", "url": "demo"},
            "components": pods, "relations": relations})
    };
    let topologies: Vec<_> = (0..parts).map(part).collect();
    serde_json::to_vec(&json!({"collection_timestamp": 1_700_000_000, "topologies": topologies}))
        .expect("a JSON value encodes")
}

fn bench(c: &mut Criterion) {
    let payload = agent_snapshot(4, 5_000);
    let mut group = c.benchmark_group("topology_intake");
    group.throughput(Throughput::Bytes(payload.len() as u64));
    group.bench_function("parts_to_records", |b| {
        b.iter(|| parts_to_records(&payload, "acme").expect("a valid snapshot"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
