//! Sequences of topology parts, stale-snapshot sweeps, rebalances and restarts
//! applied to the correlator's `SnapshotAssembler`, checked against a model:
//!
//! - every change the assembler emits is the one the model expects, in order;
//! - a completed snapshot leaves the instance with exactly the components the
//!   snapshot mentioned minus those it deleted;
//! - an incomplete snapshot (abandoned, restarted, still open) deletes nothing:
//!   only `delete_ids` and a completing stop delete;
//! - `live_components()`, `open_snapshots()` and `open_snapshot_starts()` match;
//! - a restart that restores from the change log (as `topology.components`
//!   holds it) continues exactly like the assembler it replaces.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use arbitrary::Arbitrary;
use correlator::snapshot::{
    Instance, Position, RawComponent, SnapshotAssembler, TopologyChange, TopologyPart,
    component_key,
};
use libfuzzer_sys::fuzz_target;
use proto::records::Component;

const TENANTS: [&str; 2] = ["acme", "globex"];
/// Instance urls may hold '/', kinds may not: `tenant/kind/url` keys stay unambiguous.
const INSTANCES: [(&str, &str); 3] = [
    ("kubernetes", "demo"),
    ("kubernetes", "demo/x"),
    ("aws", "eu-west-1"),
];
/// Component ids, '/' included. None starts with "x/", so no component key of
/// instance `demo` equals one of instance `demo/x`. The empty id is ignored.
const IDS: [&str; 6] = ["a", "b", "c/d", "urn:e", "f", ""];
/// The partitions parts come from.
const PARTITIONS: i32 = 2;

#[derive(Debug, Arbitrary)]
struct Part {
    tenant: u8,
    instance: u8,
    start_snapshot: bool,
    stop_snapshot: bool,
    /// (id, content variant)
    components: Vec<(u8, u8)>,
    delete_ids: Vec<u8>,
    /// Epoch seconds; 0 means "not sent" (the time of arrival counts).
    collection_timestamp: u16,
    partition: u8,
}

#[derive(Debug, Arbitrary)]
enum Op {
    Part(Part),
    /// The clock moves (possibly backwards a little), then stale snapshots are abandoned.
    AbandonStale {
        advance_ms: i16,
        timeout_ms: u16,
    },
    /// A partition moved to another member.
    Forget {
        partition: u8,
    },
    /// A new assembler restored from the change log.
    Restart,
}

#[derive(Debug, Arbitrary)]
struct Input {
    ops: Vec<Op>,
}

struct OpenModel {
    started_ms: i64,
    position: Position,
    /// Mentioned since the start, minus what was deleted after.
    seen: BTreeSet<String>,
}

#[derive(Default)]
struct InstanceModel {
    /// external id -> (content variant, first seen ms)
    live: BTreeMap<String, (u8, i64)>,
    open: Option<OpenModel>,
}

#[derive(Debug, PartialEq)]
enum Expected {
    Upsert { key: String, first_seen_ms: i64 },
    Delete { key: String },
}

fn component_variant(id: &str, variant: u8) -> RawComponent {
    RawComponent::new(
        id,
        &format!("type-{}", variant % 2),
        &serde_json::json!({
            "name": format!("{id}-{}", variant % 4),
            "identifiers": [format!("urn:extra:{id}")],
            "tags": {"v": variant % 4},
        }),
    )
}

/// The content variant as the model counts it: variants equal modulo 4 render
/// the same component.
fn variant_of(variant: u8) -> u8 {
    variant % 4
}

fn observed(changes: &[TopologyChange]) -> Vec<Expected> {
    changes
        .iter()
        .map(|change| match change {
            TopologyChange::Upsert { key, component } => Expected::Upsert {
                key: key.clone(),
                first_seen_ms: component.first_seen_ms,
            },
            TopologyChange::Delete { key } => Expected::Delete { key: key.clone() },
        })
        .collect()
}

struct Harness {
    assembler: SnapshotAssembler,
    model: BTreeMap<(usize, usize), InstanceModel>,
    /// The change log as `topology.components` receives it.
    log: Vec<TopologyChange>,
    /// What the compacted topic holds: key -> component.
    compacted: BTreeMap<String, Component>,
    now_ms: i64,
    offset: i64,
}

impl Harness {
    fn record(&mut self, changes: &[TopologyChange]) {
        for change in changes {
            match change {
                TopologyChange::Upsert { key, component } => {
                    self.compacted.insert(key.clone(), (**component).clone());
                }
                TopologyChange::Delete { key } => {
                    assert!(
                        self.compacted.remove(key).is_some(),
                        "delete of {key}, which is not live"
                    );
                }
            }
        }
        self.log.extend_from_slice(changes);
    }

    fn apply_part(&mut self, op: &Part) {
        let tenant_index = usize::from(op.tenant) % TENANTS.len();
        let instance_index = usize::from(op.instance) % INSTANCES.len();
        let (kind, url) = INSTANCES[instance_index];
        let instance = Instance {
            kind: kind.to_string(),
            url: url.to_string(),
        };
        let tenant = TENANTS[tenant_index];
        let part = TopologyPart {
            tenant: tenant.to_string(),
            instance: instance.clone(),
            start_snapshot: op.start_snapshot,
            stop_snapshot: op.stop_snapshot,
            delete_ids: op
                .delete_ids
                .iter()
                .map(|id| IDS[usize::from(*id) % IDS.len()].to_string())
                .collect(),
            components: op
                .components
                .iter()
                .map(|(id, variant)| component_variant(IDS[usize::from(*id) % IDS.len()], *variant))
                .collect(),
            collection_timestamp: f64::from(op.collection_timestamp),
        };
        self.offset += 1;
        let position = (i32::from(op.partition) % PARTITIONS, self.offset);
        let collected_ms = if op.collection_timestamp > 0 {
            i64::from(op.collection_timestamp) * 1000
        } else {
            self.now_ms
        };

        // The model.
        let model = self
            .model
            .entry((tenant_index, instance_index))
            .or_default();
        let key = |id: &str| component_key(tenant, &instance, id);
        let mut expected = Vec::new();
        if op.start_snapshot {
            model.open = Some(OpenModel {
                started_ms: self.now_ms,
                position,
                seen: BTreeSet::new(),
            });
        }
        for (id, variant) in &op.components {
            let id = IDS[usize::from(*id) % IDS.len()];
            if id.is_empty() {
                continue;
            }
            if let Some(open) = &mut model.open {
                open.seen.insert(id.to_string());
            }
            let variant = variant_of(*variant);
            match model.live.get_mut(id) {
                Some((live_variant, _)) if *live_variant == variant => {}
                Some((live_variant, first_seen_ms)) => {
                    *live_variant = variant;
                    expected.push(Expected::Upsert {
                        key: key(id),
                        first_seen_ms: *first_seen_ms,
                    });
                }
                None => {
                    model.live.insert(id.to_string(), (variant, collected_ms));
                    expected.push(Expected::Upsert {
                        key: key(id),
                        first_seen_ms: collected_ms,
                    });
                }
            }
        }
        let mut deleted_by_id = BTreeSet::new();
        for id in &part.delete_ids {
            if let Some(open) = &mut model.open {
                open.seen.remove(id);
            }
            if model.live.remove(id).is_some() {
                expected.push(Expected::Delete { key: key(id) });
            }
            deleted_by_id.insert(key(id));
        }
        let mut completed = None;
        if op.stop_snapshot {
            if let Some(open) = model.open.take() {
                let gone: Vec<String> = model
                    .live
                    .keys()
                    .filter(|id| !open.seen.contains(*id))
                    .cloned()
                    .collect();
                for id in gone {
                    model.live.remove(&id);
                    expected.push(Expected::Delete { key: key(&id) });
                }
                completed = Some(open.seen);
            }
        }

        // The real thing.
        let changes = self.assembler.apply(&part, position, self.now_ms);
        let actual = observed(&changes);
        assert_eq!(actual, expected, "changes of {op:?}");
        if completed.is_none() {
            for change in &actual {
                if let Expected::Delete { key } = change {
                    assert!(
                        deleted_by_id.contains(key),
                        "{key} deleted by a part that completes no snapshot"
                    );
                }
            }
        }
        for change in &changes {
            if let TopologyChange::Upsert { key, component } = change {
                assert_eq!(component.tenant, tenant);
                assert_eq!(component.instance_type, kind);
                assert_eq!(component.instance_url, url);
                assert_eq!(*key, key_of(component));
                assert_eq!(component.last_seen_ms, collected_ms);
            }
        }
        self.record(&changes);
        if let Some(seen) = completed {
            // The instance holds what the snapshot mentioned, minus its deletes.
            let prefix = format!("{tenant}/{kind}/{url}/");
            let live: BTreeSet<String> = self
                .compacted
                .values()
                .filter(|component| {
                    component.tenant == tenant
                        && component.instance_type == kind
                        && component.instance_url == url
                })
                .map(|component| component.external_id.clone())
                .collect();
            assert_eq!(live, seen, "after the snapshot completed in {prefix}");
        }
    }

    fn check(&self) {
        let live: usize = self.model.values().map(|model| model.live.len()).sum();
        assert_eq!(self.assembler.live_components(), live, "live_components()");
        assert_eq!(self.compacted.len(), live, "compacted topic size");
        let open: Vec<&OpenModel> = self
            .model
            .values()
            .filter_map(|model| model.open.as_ref())
            .collect();
        assert_eq!(
            self.assembler.open_snapshots(),
            open.len(),
            "open_snapshots()"
        );
        let mut starts: BTreeMap<i32, i64> = BTreeMap::new();
        for snapshot in open {
            let entry = starts
                .entry(snapshot.position.0)
                .or_insert(snapshot.position.1);
            *entry = (*entry).min(snapshot.position.1);
        }
        assert_eq!(self.assembler.open_snapshot_starts(), starts);
    }

    fn run(&mut self, op: &Op) {
        match op {
            Op::Part(part) => self.apply_part(part),
            Op::AbandonStale {
                advance_ms,
                timeout_ms,
            } => {
                self.now_ms += i64::from(*advance_ms);
                let timeout_ms = i64::from(*timeout_ms);
                let mut expected = 0;
                for model in self.model.values_mut() {
                    if model
                        .open
                        .as_ref()
                        .is_some_and(|open| self.now_ms - open.started_ms > timeout_ms)
                    {
                        model.open = None;
                        expected += 1;
                    }
                }
                assert_eq!(
                    self.assembler.abandon_stale(self.now_ms, timeout_ms),
                    expected,
                    "abandon_stale"
                );
            }
            Op::Forget { partition } => {
                let partition = i32::from(*partition) % PARTITIONS;
                for model in self.model.values_mut() {
                    if model
                        .open
                        .as_ref()
                        .is_some_and(|open| open.position.0 == partition)
                    {
                        model.open = None;
                    }
                }
                self.assembler.forget_open_snapshots_in(&[partition]);
            }
            Op::Restart => {
                // Replayed from the log, uncompacted: upserts and tombstones in order.
                let mut restored = SnapshotAssembler::default();
                for change in &self.log {
                    match change {
                        TopologyChange::Upsert { key, component } => {
                            restored.restore(key, component)
                        }
                        TopologyChange::Delete { key } => restored.restore_deletion(key),
                    }
                }
                self.assembler = restored;
                for model in self.model.values_mut() {
                    model.open = None;
                }
            }
        }
        self.check();
    }
}

fn key_of(component: &Component) -> String {
    component_key(
        &component.tenant,
        &Instance {
            kind: component.instance_type.clone(),
            url: component.instance_url.clone(),
        },
        &component.external_id,
    )
}

fuzz_target!(|input: Input| {
    let mut harness = Harness {
        assembler: SnapshotAssembler::default(),
        model: BTreeMap::new(),
        log: Vec::new(),
        compacted: BTreeMap::new(),
        // Wall-clock milliseconds, as the materializer passes them.
        now_ms: 1_700_000_000_000,
        offset: 0,
    };
    for op in &input.ops {
        harness.run(op);
    }
});
