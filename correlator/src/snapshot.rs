//! Snapshot semantics, the topology materializer's pure core.
//!
//! Parts of `topology.raw` come in per instance (`tenant/type/url`). A snapshot
//! runs from a part with `start_snapshot` to one with `stop_snapshot`, possibly
//! over many parts and requests; when it completes, components of the instance
//! that it did not mention are deleted. A snapshot that never completes deletes
//! nothing and is abandoned after a timeout. Outside a snapshot, `delete_ids`
//! delete. Components are upserted as soon as they arrive (only when changed).

use std::collections::{BTreeMap, HashMap, HashSet};

use proto::Message;
use proto::records::Component;
use serde::Deserialize;
use serde_json::Value;
use xxhash_rust::xxh3::xxh3_64;

/// One `topologies[]` part as ingest wrote it to `topology.raw`.
#[derive(Debug, Clone, Deserialize)]
pub struct TopologyPart {
    pub tenant: String,
    pub instance: Instance,
    #[serde(default)]
    pub start_snapshot: bool,
    #[serde(default)]
    pub stop_snapshot: bool,
    #[serde(default)]
    pub delete_ids: Vec<String>,
    #[serde(default)]
    pub components: Vec<RawComponent>,
    /// Epoch seconds.
    #[serde(default)]
    pub collection_timestamp: f64,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Hash)]
pub struct Instance {
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RawComponent {
    #[serde(rename = "externalId")]
    pub external_id: String,
    #[serde(rename = "type", default)]
    pub kind: Option<TypeName>,
    #[serde(default)]
    pub data: Value,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TypeName {
    #[serde(default)]
    pub name: String,
}

/// A change to `topology.components`.
#[derive(Debug, Clone, PartialEq)]
pub enum TopologyChange {
    Upsert {
        key: String,
        component: Box<Component>,
    },
    Delete {
        key: String,
    },
}

impl TopologyChange {
    pub fn key(&self) -> &str {
        match self {
            TopologyChange::Upsert { key, .. } | TopologyChange::Delete { key } => key,
        }
    }
}

/// Where a part was read from, so a restart can resume before open snapshots.
pub type Position = (i32, i64);

/// `tenant/instance.type/instance.url/externalId`, the key of `topology.components`.
pub fn component_key(tenant: &str, instance: &Instance, external_id: &str) -> String {
    format!("{tenant}/{}/{}/{external_id}", instance.kind, instance.url)
}

fn instance_key(tenant: &str, instance: &Instance) -> String {
    format!("{tenant}/{}/{}", instance.kind, instance.url)
}

struct LiveComponent {
    key: String,
    first_seen_ms: i64,
    content_hash: u64,
}

struct OpenSnapshot {
    started_ms: i64,
    position: Position,
    seen: HashSet<String>,
}

#[derive(Default)]
struct InstanceState {
    live: HashMap<String, LiveComponent>,
    open: Option<OpenSnapshot>,
}

/// The per-instance state of every instance this materializer has seen.
#[derive(Default)]
pub struct SnapshotAssembler {
    instances: HashMap<String, InstanceState>,
}

impl SnapshotAssembler {
    /// Rebuilds the live components from `topology.components` (after a restart).
    pub fn restore(&mut self, key: &str, component: &Component) {
        let instance = Instance {
            kind: component.instance_type.clone(),
            url: component.instance_url.clone(),
        };
        let state = self
            .instances
            .entry(instance_key(&component.tenant, &instance))
            .or_default();
        state.live.insert(
            component.external_id.clone(),
            LiveComponent {
                key: key.to_string(),
                first_seen_ms: component.first_seen_ms,
                content_hash: content_hash(component),
            },
        );
    }

    /// Forgets a component deleted in `topology.components` (a tombstone read
    /// while restoring). The key is `instance key/externalId` and both halves
    /// may hold '/', so each split point is tried against the known instances.
    pub fn restore_deletion(&mut self, key: &str) {
        for (split, _) in key.match_indices('/') {
            let (instance, external_id) = (&key[..split], &key[split + 1..]);
            if let Some(state) = self.instances.get_mut(instance) {
                if state
                    .live
                    .get(external_id)
                    .is_some_and(|live| live.key == key)
                {
                    state.live.remove(external_id);
                    return;
                }
            }
        }
    }

    /// Applies one part, returning what changes in `topology.components`.
    pub fn apply(
        &mut self,
        part: &TopologyPart,
        position: Position,
        now_ms: i64,
    ) -> Vec<TopologyChange> {
        let collected_ms = if part.collection_timestamp > 0.0 {
            (part.collection_timestamp * 1000.0) as i64
        } else {
            now_ms
        };
        let state = self
            .instances
            .entry(instance_key(&part.tenant, &part.instance))
            .or_default();
        let mut changes = Vec::new();
        if part.start_snapshot {
            // A new start abandons an unfinished snapshot: it deletes nothing.
            state.open = Some(OpenSnapshot {
                started_ms: now_ms,
                position,
                seen: HashSet::new(),
            });
        }
        for raw in &part.components {
            if raw.external_id.is_empty() {
                continue;
            }
            let key = component_key(&part.tenant, &part.instance, &raw.external_id);
            let mut component = to_component(part, raw, collected_ms);
            let hash = content_hash(&component);
            if let Some(open) = &mut state.open {
                open.seen.insert(raw.external_id.clone());
            }
            match state.live.get_mut(&raw.external_id) {
                Some(live) if live.content_hash == hash => {}
                Some(live) => {
                    live.content_hash = hash;
                    component.first_seen_ms = live.first_seen_ms;
                    changes.push(TopologyChange::Upsert {
                        key,
                        component: Box::new(component),
                    });
                }
                None => {
                    state.live.insert(
                        raw.external_id.clone(),
                        LiveComponent {
                            key: key.clone(),
                            first_seen_ms: collected_ms,
                            content_hash: hash,
                        },
                    );
                    changes.push(TopologyChange::Upsert {
                        key,
                        component: Box::new(component),
                    });
                }
            }
        }
        for external_id in &part.delete_ids {
            if let Some(open) = &mut state.open {
                open.seen.remove(external_id);
            }
            if let Some(live) = state.live.remove(external_id) {
                changes.push(TopologyChange::Delete { key: live.key });
            }
        }
        if part.stop_snapshot {
            if let Some(open) = state.open.take() {
                let mut gone: Vec<String> = state
                    .live
                    .keys()
                    .filter(|id| !open.seen.contains(*id))
                    .cloned()
                    .collect();
                gone.sort();
                for external_id in gone {
                    if let Some(live) = state.live.remove(&external_id) {
                        changes.push(TopologyChange::Delete { key: live.key });
                    }
                }
            }
        }
        changes
    }

    /// Abandons snapshots open for longer than `timeout_ms`; returns how many.
    pub fn abandon_stale(&mut self, now_ms: i64, timeout_ms: i64) -> usize {
        let mut abandoned = 0;
        for state in self.instances.values_mut() {
            if state
                .open
                .as_ref()
                .is_some_and(|open| now_ms - open.started_ms > timeout_ms)
            {
                state.open = None;
                abandoned += 1;
            }
        }
        abandoned
    }

    /// Per partition, the position of the oldest part of a still-open snapshot:
    /// offsets may be committed only up to it, so a restart replays the snapshot.
    pub fn open_snapshot_starts(&self) -> BTreeMap<i32, i64> {
        let mut starts: BTreeMap<i32, i64> = BTreeMap::new();
        for open in self
            .instances
            .values()
            .filter_map(|state| state.open.as_ref())
        {
            let (partition, offset) = open.position;
            let entry = starts.entry(partition).or_insert(offset);
            *entry = (*entry).min(offset);
        }
        starts
    }

    /// Live components in all instances.
    pub fn live_components(&self) -> usize {
        self.instances.values().map(|state| state.live.len()).sum()
    }

    pub fn open_snapshots(&self) -> usize {
        self.instances
            .values()
            .filter(|state| state.open.is_some())
            .count()
    }

    /// Drops the instances whose parts live in `partitions` (they moved to another member).
    pub fn forget_open_snapshots_in(&mut self, partitions: &[i32]) {
        for state in self.instances.values_mut() {
            if state
                .open
                .as_ref()
                .is_some_and(|open| partitions.contains(&open.position.0))
            {
                state.open = None;
            }
        }
    }
}

/// What makes two reports of a component different (timestamps aside).
fn content_hash(component: &Component) -> u64 {
    let mut stripped = component.clone();
    stripped.first_seen_ms = 0;
    stripped.last_seen_ms = 0;
    xxh3_64(&stripped.encode_to_vec())
}

fn to_component(part: &TopologyPart, raw: &RawComponent, collected_ms: i64) -> Component {
    let data = &raw.data;
    let text = |name: &str| {
        data.get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut identifiers: Vec<String> = data
        .get("identifiers")
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    // The externalId identifies the component too, as StackState's default extractor has it.
    if !identifiers.contains(&raw.external_id) {
        identifiers.insert(0, raw.external_id.clone());
    }
    // The agent sends `labels` as "key:value" strings; Kubernetes collectors send `tags` as a map.
    let tags: Vec<String> = data
        .get("labels")
        .and_then(Value::as_array)
        .map(|labels| {
            labels
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let labels = data
        .get("tags")
        .and_then(Value::as_object)
        .map(|tags| {
            tags.iter()
                .map(|(name, value)| {
                    (
                        name.clone(),
                        value
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| value.to_string()),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Component {
        tenant: part.tenant.clone(),
        instance_type: part.instance.kind.clone(),
        instance_url: part.instance.url.clone(),
        external_id: raw.external_id.clone(),
        type_name: raw
            .kind
            .as_ref()
            .map(|kind| kind.name.clone())
            .unwrap_or_default(),
        name: text("name"),
        identifiers,
        labels,
        tags,
        layer: text("layer"),
        domain: text("domain"),
        environment: text("environment"),
        data_json: if data.is_null() {
            String::new()
        } else {
            data.to_string()
        },
        first_seen_ms: collected_ms,
        last_seen_ms: collected_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(
        flags: (bool, bool),
        components: &[&str],
        delete_ids: &[&str],
        at: f64,
    ) -> TopologyPart {
        TopologyPart {
            tenant: "acme".into(),
            instance: Instance { kind: "kubernetes".into(), url: "demo".into() },
            start_snapshot: flags.0,
            stop_snapshot: flags.1,
            delete_ids: delete_ids.iter().map(|s| s.to_string()).collect(),
            components: components
                .iter()
                .map(|id| RawComponent {
                    external_id: id.to_string(),
                    kind: Some(TypeName { name: "pod".into() }),
                    data: serde_json::json!({"name": id, "identifiers": [format!("urn:extra:{id}")]}),
                })
                .collect(),
            collection_timestamp: at,
        }
    }

    fn deleted(changes: &[TopologyChange]) -> Vec<&str> {
        changes
            .iter()
            .filter(|c| matches!(c, TopologyChange::Delete { .. }))
            .map(TopologyChange::key)
            .collect()
    }

    fn upserted(changes: &[TopologyChange]) -> Vec<&str> {
        changes
            .iter()
            .filter(|c| matches!(c, TopologyChange::Upsert { .. }))
            .map(TopologyChange::key)
            .collect()
    }

    #[test]
    fn a_completed_snapshot_over_several_parts_replaces_the_instance() {
        let mut assembler = SnapshotAssembler::default();
        let first = assembler.apply(&part((true, true), &["a", "b", "c"], &[], 100.0), (0, 1), 0);
        assert_eq!(upserted(&first).len(), 3);
        let Some(TopologyChange::Upsert { component, .. }) = first.first() else {
            panic!()
        };
        assert_eq!(component.identifiers, ["a", "urn:extra:a"]);
        assert_eq!(component.first_seen_ms, 100_000);

        assert!(
            assembler
                .apply(&part((true, false), &["a"], &[], 200.0), (0, 2), 0)
                .is_empty(),
            "unchanged"
        );
        assert_eq!(assembler.open_snapshot_starts(), BTreeMap::from([(0, 2)]));
        assert!(
            assembler
                .apply(&part((false, false), &["b"], &[], 200.0), (0, 3), 0)
                .is_empty()
        );
        let stop = assembler.apply(&part((false, true), &["d"], &[], 200.0), (0, 4), 0);
        assert_eq!(upserted(&stop), ["acme/kubernetes/demo/d"]);
        assert_eq!(deleted(&stop), ["acme/kubernetes/demo/c"]);
        assert!(assembler.open_snapshot_starts().is_empty());
        assert_eq!(assembler.live_components(), 3);
    }

    #[test]
    fn an_incomplete_snapshot_deletes_nothing_and_is_abandoned() {
        let mut assembler = SnapshotAssembler::default();
        assembler.apply(&part((true, true), &["a", "b"], &[], 1.0), (0, 1), 0);
        assembler.apply(&part((true, false), &["a"], &[], 2.0), (0, 2), 1_000);
        assert_eq!(assembler.abandon_stale(5_000, 10_000), 0);
        assert_eq!(assembler.abandon_stale(20_000, 10_000), 1);
        // A stop without a start (its start was abandoned) deletes nothing either.
        let stop = assembler.apply(&part((false, true), &[], &[], 3.0), (0, 3), 21_000);
        assert!(deleted(&stop).is_empty());
        assert_eq!(assembler.live_components(), 2);
    }

    #[test]
    fn delete_ids_delete_outside_snapshots_and_restore_rebuilds_state() {
        let mut assembler = SnapshotAssembler::default();
        let created = assembler.apply(&part((false, false), &["a", "b"], &[], 1.0), (0, 1), 0);
        let gone = assembler.apply(
            &part((false, false), &[], &["a", "unknown"], 2.0),
            (0, 2),
            0,
        );
        assert_eq!(deleted(&gone), ["acme/kubernetes/demo/a"]);

        // A fresh assembler restored from the compacted topic acts the same.
        let mut restored = SnapshotAssembler::default();
        for change in &created {
            if let TopologyChange::Upsert { key, component } = change {
                restored.restore(key, component);
            }
        }
        restored.restore_deletion("acme/kubernetes/demo/a");
        assert_eq!(restored.live_components(), 1);
        let stop = restored.apply(&part((true, true), &["c"], &[], 3.0), (0, 3), 0);
        assert_eq!(deleted(&stop), ["acme/kubernetes/demo/b"]);
        assert_eq!(upserted(&stop), ["acme/kubernetes/demo/c"]);
    }

    #[test]
    fn instances_and_tenants_are_apart() {
        let mut assembler = SnapshotAssembler::default();
        assembler.apply(&part((true, true), &["a"], &[], 1.0), (0, 1), 0);
        let mut other = part((true, true), &["x"], &[], 1.0);
        other.tenant = "globex".into();
        let changes = assembler.apply(&other, (1, 1), 0);
        assert!(
            deleted(&changes).is_empty(),
            "another tenant's snapshot deletes nothing of acme"
        );
        assert_eq!(upserted(&changes), ["globex/kubernetes/demo/x"]);
    }
}
