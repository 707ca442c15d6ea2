//! A 1M-component topology loaded by one correlator process, in-process and
//! without the network: each `topology.raw` part (JSON, as ingest writes it)
//! is parsed and applied by the materializer's core, each change is encoded
//! as its `topology.components` record, read back as the topology feed does,
//! restored into the materializer (its own echo) and indexed by the join.
//! Prints the time per stage and the process's peak RSS.
//!
//! Run: `cargo bench -p correlator --bench topology_load` (COMPONENTS=1000000,
//! PER_PART=2000 by default).

use std::time::{Duration, Instant};

use correlator::bindings::Bindings;
use correlator::join::Joiner;
use correlator::snapshot::{SnapshotAssembler, TopologyChange, TopologyPart};
use proto::Message;
use proto::records::Component;
use serde_json::json;

mod support;

// As in the correlator binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// One part of a snapshot of `total` pods, as JSON: pods with the data the
/// StackState agent sends (name, tags, labels, identifiers).
fn part_json(index: usize, per_part: usize, total: usize) -> Vec<u8> {
    let first = index * per_part;
    let last = (first + per_part).min(total);
    let components: Vec<serde_json::Value> = (first..last)
        .map(|pod| {
            let namespace = format!("team-{}", pod % 50);
            let name = format!("app-{:x}-{pod:07}", pod % 4096);
            let external_id = format!("urn:kubernetes:/prod:{namespace}:pod/{name}");
            json!({
                "externalId": external_id,
                "type": {"name": "pod"},
                "data": {
                    "name": name,
                    "layer": "Containers",
                    "domain": "Kubernetes",
                    "environment": "Production",
                    "identifiers": [format!("urn:ip:/prod:10.{}.{}.{}", pod >> 16 & 255, pod >> 8 & 255, pod & 255)],
                    "tags": {
                        "cluster-name": "prod",
                        "namespace": namespace,
                        "pod-phase": "Running",
                        "app": format!("app-{:x}", pod % 4096),
                    },
                    "labels": [format!("namespace:{namespace}"), "cluster-name:prod".to_string()],
                },
            })
        })
        .collect();
    serde_json::to_vec(&json!({
        "tenant": "acme",
        "instance": {"type": "kubernetes", "url": "prod"},
        "start_snapshot": index == 0,
        "stop_snapshot": last == total,
        "delete_ids": [],
        "components": components,
        "collection_timestamp": 1_700_000_000.0,
    }))
    .expect("json")
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that does not name this bench skips it.
    let filter = std::env::args().skip(1).find(|arg| !arg.starts_with('-'));
    if filter.is_some_and(|filter| !"topology_load".contains(filter.as_str())) {
        return;
    }
    let total = env_number("COMPONENTS", 1_000_000);
    let per_part = env_number("PER_PART", 2_000).max(1);
    let parts = total.div_ceil(per_part);
    let baseline_rss = peak_rss_mib();

    let mut assembler = SnapshotAssembler::default();
    let mut joiner = Joiner::new(Bindings::kubernetes_defaults(), support::default_settings());
    let (mut making, mut parsing, mut applying, mut encoding, mut feeding) = (
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
    );
    let (mut upserts, mut record_bytes) = (0usize, 0usize);
    let started = Instant::now();
    for index in 0..parts {
        let clock = Instant::now();
        let json = part_json(index, per_part, total);
        making += clock.elapsed();

        let clock = Instant::now();
        let part: TopologyPart = serde_json::from_slice(&json).expect("part");
        drop(json);
        parsing += clock.elapsed();

        let clock = Instant::now();
        let changes = assembler.apply(&part, (0, index as i64), 0);
        drop(part);
        applying += clock.elapsed();

        let clock = Instant::now();
        let records: Vec<(String, Vec<u8>)> = changes
            .into_iter()
            .filter_map(|change| match change {
                TopologyChange::Upsert { key, component } => Some((key, component.encode_to_vec())),
                TopologyChange::Delete { .. } => None,
            })
            .collect();
        encoding += clock.elapsed();

        let clock = Instant::now();
        for (key, record) in records {
            record_bytes += record.len();
            let component = Component::decode(record.as_slice()).expect("component");
            assembler.restore(&key, &component);
            joiner.upsert_component(&key, &component);
            upserts += 1;
        }
        joiner.release_pending();
        feeding += clock.elapsed();
    }
    let took = started.elapsed() - making;
    assert_eq!(upserts, total, "every component is new");
    assert_eq!(joiner.index().current_components(), total);
    assert_eq!(assembler.live_components(), total);
    let seconds = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    println!("topology_load: {total} components in {parts} parts of {per_part}");
    println!(
        "  parse topology.raw parts (serde_json)        {}",
        seconds(parsing)
    );
    println!(
        "  materializer: apply the parts                {}",
        seconds(applying)
    );
    println!(
        "  encode the topology.components records       {}",
        seconds(encoding)
    );
    println!(
        "  feed: decode, materializer restore, join index {}",
        seconds(feeding)
    );
    println!(
        "  total (without making the JSON)              {} ({:.0} k components/s)",
        seconds(took),
        total as f64 / took.as_secs_f64() / 1e3
    );
    println!(
        "  peak RSS {:.0} MiB (at start {:.0} MiB); records {:.0} B on average",
        peak_rss_mib(),
        baseline_rss,
        record_bytes as f64 / total as f64
    );
}
