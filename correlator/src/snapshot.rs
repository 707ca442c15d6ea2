//! Snapshot semantics, the topology materializer's pure core.
//!
//! Parts of `topology.raw` come in per instance (`tenant/type/url`). A snapshot
//! runs from a part with `start_snapshot` to one with `stop_snapshot`, possibly
//! over many parts and requests; when it completes, components of the instance
//! that it did not mention are deleted. A snapshot that never completes deletes
//! nothing and is abandoned after a timeout. Outside a snapshot, `delete_ids`
//! delete. Components are upserted as soon as they arrive (only when changed).

use std::collections::BTreeMap;

use foldhash::HashMap;

use proto::records::Component;
pub use proto::topology::{Instance, RawComponent, TopologyPart, TypeName};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use xxhash_rust::xxh3::Xxh3Default;

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
/// '%' and '/' in tenant, type and url are escaped ("%25", "%2F"), so the first
/// three '/' separate the segments and distinct components never share a key;
/// the externalId, last, is kept as it is.
pub fn component_key(tenant: &str, instance: &Instance, external_id: &str) -> String {
    format!("{}/{external_id}", instance_key(tenant, instance))
}

/// The escaped `tenant/instance.type/instance.url`, as ingest keys `topology.raw`.
pub fn instance_key(tenant: &str, instance: &Instance) -> String {
    proto::keys::record_key(tenant, &instance.kind, &instance.url)
}

/// The ways `key` may split into an instance key (escaped) and an externalId:
/// first at the third '/', as keys are written now; then, for keys written
/// before the segments were escaped (a '/' possibly inside type or url), at
/// every pair of '/' after the tenant, re-escaped. The caller checks which fits.
fn key_splits(key: &str) -> impl Iterator<Item = (String, &str)> + '_ {
    let escaped = key
        .match_indices('/')
        .nth(2)
        .map(|(third, _)| (key[..third].to_string(), &key[third + 1..]));
    let legacy = key.split_once('/').into_iter().flat_map(|(tenant, rest)| {
        let slashes: Vec<usize> = rest.match_indices('/').map(|(at, _)| at).collect();
        let mut splits = Vec::new();
        for (position, first) in slashes.iter().enumerate() {
            for second in &slashes[position + 1..] {
                let instance = Instance {
                    kind: rest[..*first].to_string(),
                    url: rest[first + 1..*second].to_string(),
                };
                splits.push((instance_key(tenant, &instance), &rest[second + 1..]));
            }
        }
        splits
    });
    escaped.into_iter().chain(legacy)
}

struct LiveComponent {
    /// Its `topology.components` key when that is not the instance key, '/'
    /// and the externalId (a key written before segments were escaped); the
    /// usual key is not kept, it is most of this struct's memory.
    legacy_key: Option<Box<str>>,
    first_seen_ms: i64,
    content_hash: u64,
    /// The number of the last snapshot of its instance that reported it
    /// (0: none since this materializer started); cheaper than a set of the
    /// externalIds each open snapshot has seen.
    seen_in: u64,
}

struct OpenSnapshot {
    started_ms: i64,
    position: Position,
    /// Counts the instance's snapshots; components it reports get it as `seen_in`.
    number: u64,
}

#[derive(Default)]
struct InstanceState {
    live: HashMap<String, LiveComponent>,
    open: Option<OpenSnapshot>,
    snapshots_started: u64,
}

/// The per-instance state of every instance this materializer has seen.
#[derive(Default)]
pub struct SnapshotAssembler {
    instances: HashMap<String, InstanceState>,
    /// Tenant, type and url of the last component restored, and their
    /// instance key: restoring reads an instance's components in a row.
    last_restored: Option<(String, String, String, String)>,
}

impl LiveComponent {
    fn key(&self, instance_key: &str, external_id: &str) -> String {
        match &self.legacy_key {
            Some(key) => key.to_string(),
            None => format!("{instance_key}/{external_id}"),
        }
    }
}

impl SnapshotAssembler {
    /// Rebuilds the live components from `topology.components` (after a restart).
    pub fn restore(&mut self, key: &str, component: &Component) {
        let known = self
            .last_restored
            .as_ref()
            .is_some_and(|(tenant, kind, url, _)| {
                *tenant == component.tenant
                    && *kind == component.instance_type
                    && *url == component.instance_url
            });
        if !known {
            let instance = Instance {
                kind: component.instance_type.clone(),
                url: component.instance_url.clone(),
            };
            let instance_key = instance_key(&component.tenant, &instance);
            self.last_restored = Some((
                component.tenant.clone(),
                instance.kind,
                instance.url,
                instance_key,
            ));
        }
        let instance_key = &self.last_restored.as_ref().expect("set above").3;
        let legacy_key = (key.len() != instance_key.len() + 1 + component.external_id.len()
            || !key.starts_with(instance_key.as_str())
            || !key.ends_with(component.external_id.as_str()))
        .then(|| Box::from(key));
        let state = match self.instances.get_mut(instance_key.as_str()) {
            Some(state) => state,
            None => self.instances.entry(instance_key.clone()).or_default(),
        };
        let content_hash = content_hash(component);
        // An open snapshot keeps what it has seen: the echo of our own write
        // (or another member's) must not make it look unreported.
        let seen_in = state
            .live
            .get(&component.external_id)
            .map_or(0, |live| live.seen_in);
        state.live.insert(
            component.external_id.clone(),
            LiveComponent {
                legacy_key,
                first_seen_ms: component.first_seen_ms,
                content_hash,
                seen_in,
            },
        );
    }

    /// Forgets a component deleted in `topology.components` (a tombstone read
    /// while restoring): only the key is left, so its instance and externalId
    /// are found by splitting it (see `key_splits`) against the known instances.
    pub fn restore_deletion(&mut self, key: &str) {
        for (instance, external_id) in key_splits(key) {
            if let Some(state) = self.instances.get_mut(&instance) {
                if state
                    .live
                    .get(external_id)
                    .is_some_and(|live| live.key(&instance, external_id) == key)
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
        let instance = instance_key(&part.tenant, &part.instance);
        // Every key of the part shares its instance prefix: escape it once.
        let key_prefix = format!("{instance}/");
        let state = self.instances.entry(instance.clone()).or_default();
        let mut changes = Vec::new();
        if part.start_snapshot {
            // A new start abandons an unfinished snapshot: it deletes nothing.
            state.snapshots_started += 1;
            state.open = Some(OpenSnapshot {
                started_ms: now_ms,
                position,
                number: state.snapshots_started,
            });
        }
        for raw in &part.components {
            if raw.external_id.is_empty() {
                continue;
            }
            let key = format!("{key_prefix}{}", raw.external_id);
            let mut component = to_component(part, raw, collected_ms);
            let hash = content_hash(&component);
            let seen_in = state.open.as_ref().map_or(0, |open| open.number);
            match state.live.get_mut(&raw.external_id) {
                Some(live) if live.content_hash == hash => {
                    live.seen_in = live.seen_in.max(seen_in);
                }
                Some(live) => {
                    live.seen_in = live.seen_in.max(seen_in);
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
                            legacy_key: None,
                            first_seen_ms: collected_ms,
                            content_hash: hash,
                            seen_in,
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
            if let Some(live) = state.live.remove(external_id) {
                changes.push(TopologyChange::Delete {
                    key: live.key(&instance, external_id),
                });
            }
        }
        if part.stop_snapshot {
            if let Some(open) = state.open.take() {
                let mut gone: Vec<String> = state
                    .live
                    .iter()
                    .filter(|(_, live)| live.seen_in != open.number)
                    .map(|(id, _)| id.clone())
                    .collect();
                gone.sort();
                for external_id in gone {
                    if let Some(live) = state.live.remove(&external_id) {
                        changes.push(TopologyChange::Delete {
                            key: live.key(&instance, &external_id),
                        });
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
/// `labels` is a protobuf map, a `HashMap` iterated in random order: it is
/// hashed sorted, so equal components hash equal.
fn content_hash(component: &Component) -> u64 {
    // Every field but the timestamps, each with its length, hashed in place
    // (no copy, no encoding). The destructuring fails to compile when a field
    // is added, so none is forgotten.
    let Component {
        tenant,
        instance_type,
        instance_url,
        external_id,
        type_name,
        name,
        identifiers,
        labels,
        tags,
        layer,
        domain,
        environment,
        data_json,
        first_seen_ms: _,
        last_seen_ms: _,
    } = component;
    fn put(hasher: &mut Xxh3Default, text: &str) {
        hasher.update(&(text.len() as u64).to_le_bytes());
        hasher.update(text.as_bytes());
    }
    fn count(hasher: &mut Xxh3Default, items: usize) {
        hasher.update(&(items as u64).to_le_bytes());
    }
    let mut hasher = Xxh3Default::new();
    for text in [
        tenant,
        instance_type,
        instance_url,
        external_id,
        type_name,
        name,
    ] {
        put(&mut hasher, text);
    }
    count(&mut hasher, identifiers.len());
    for identifier in identifiers {
        put(&mut hasher, identifier);
    }
    let mut sorted: Vec<(&String, &String)> = labels.iter().collect();
    sorted.sort();
    count(&mut hasher, sorted.len());
    for (label, value) in sorted {
        put(&mut hasher, label);
        put(&mut hasher, value);
    }
    count(&mut hasher, tags.len());
    for tag in tags {
        put(&mut hasher, tag);
    }
    for text in [layer, domain, environment, data_json] {
        put(&mut hasher, text);
    }
    hasher.digest()
}

/// The fields of `data` a component is made of, read without building a
/// `Value` tree. Any other field is skipped; a field of an unexpected type
/// fails the read, and [`DataFields::lenient`] takes over.
#[derive(Default, Deserialize)]
struct DataFields {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    layer: Option<String>,
    #[serde(default)]
    domain: Option<String>,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    identifiers: Option<Vec<String>>,
    /// The agent sends `labels` as "key:value" strings: they are the component's tags.
    #[serde(default)]
    labels: Option<Vec<String>>,
    /// Kubernetes collectors send `tags` as a map: they are the component's labels.
    #[serde(default)]
    tags: Option<TagMap>,
}

/// `tags` as the component's label map; a value that is not a string is kept
/// as its JSON text.
#[derive(Default)]
struct TagMap(std::collections::HashMap<String, String>);

/// A tag's value as a label value: a string as it is, anything else as its JSON text.
fn tag_text(value: Value) -> String {
    match value {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

impl<'de> Deserialize<'de> for TagMap {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<TagMap, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = TagMap;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<TagMap, A::Error> {
                let mut tags =
                    std::collections::HashMap::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((name, value)) = map.next_entry::<String, Value>()? {
                    tags.insert(name, tag_text(value));
                }
                Ok(TagMap(tags))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

impl DataFields {
    fn read(data: Option<&RawValue>) -> DataFields {
        let Some(data) = data else {
            return DataFields::default();
        };
        // Only an object has fields (serde would also read a struct from an array).
        if !data.get().trim_start().starts_with('{') {
            return DataFields::default();
        }
        serde_json::from_str(data.get()).unwrap_or_else(|_| DataFields::lenient(data))
    }

    /// What an agent sent with odd types: fields of the wrong type count as
    /// absent, non-strings in the string lists are left out.
    fn lenient(data: &RawValue) -> DataFields {
        let mut data: Value = serde_json::from_str(data.get()).unwrap_or_default();
        let tags = match data.get_mut("tags").map(Value::take) {
            Some(Value::Object(tags)) => Some(TagMap(
                tags.into_iter()
                    .map(|(name, value)| (name, tag_text(value)))
                    .collect(),
            )),
            _ => None,
        };
        let text = |name: &str| data.get(name).and_then(Value::as_str).map(str::to_string);
        let strings = |name: &str| {
            data.get(name).and_then(Value::as_array).map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
        };
        DataFields {
            name: text("name"),
            layer: text("layer"),
            domain: text("domain"),
            environment: text("environment"),
            identifiers: strings("identifiers"),
            labels: strings("labels"),
            tags,
        }
    }
}

fn to_component(part: &TopologyPart, raw: &RawComponent, collected_ms: i64) -> Component {
    let fields = DataFields::read(raw.data.as_deref());
    assemble(part, raw, fields, collected_ms)
}

fn assemble(
    part: &TopologyPart,
    raw: &RawComponent,
    fields: DataFields,
    collected_ms: i64,
) -> Component {
    let data = raw.data.as_deref();
    let mut identifiers = fields.identifiers.unwrap_or_default();
    // The externalId identifies the component too, as StackState's default extractor has it.
    if !identifiers.contains(&raw.external_id) {
        identifiers.insert(0, raw.external_id.clone());
    }
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
        name: fields.name.unwrap_or_default(),
        identifiers,
        labels: fields.tags.map(|tags| tags.0).unwrap_or_default(),
        tags: fields.labels.unwrap_or_default(),
        layer: fields.layer.unwrap_or_default(),
        domain: fields.domain.unwrap_or_default(),
        environment: fields.environment.unwrap_or_default(),
        // As ingest wrote it: compact JSON, keys in order.
        data_json: data.map(|data| data.get().to_string()).unwrap_or_default(),
        first_seen_ms: collected_ms,
        last_seen_ms: collected_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

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
                .map(|id| {
                    RawComponent::new(
                        *id,
                        "pod",
                        &serde_json::json!({"name": id, "identifiers": [format!("urn:extra:{id}")]}),
                    )
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
    fn the_echo_of_written_components_keeps_what_an_open_snapshot_has_seen() {
        let mut assembler = SnapshotAssembler::default();
        let first = assembler.apply(&part((true, true), &["a", "b", "c"], &[], 100.0), (0, 1), 0);
        let Some(TopologyChange::Upsert { key, component }) = first.first() else {
            panic!()
        };
        assert!(
            assembler
                .apply(&part((true, false), &["a", "b"], &[], 100.0), (0, 2), 0)
                .is_empty(),
            "unchanged"
        );
        // a's record comes back through the feed while the snapshot is open.
        assembler.restore(key, component);
        let stop = assembler.apply(&part((false, true), &[], &[], 100.0), (0, 3), 0);
        assert_eq!(deleted(&stop), ["acme/kubernetes/demo/c"]);
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
    fn keys_with_slashes_stay_distinct_and_plain_keys_are_unchanged() {
        let instance = |kind: &str, url: &str| Instance {
            kind: kind.into(),
            url: url.into(),
        };
        assert_eq!(
            component_key("acme", &instance("kubernetes", "demo"), "urn:k:/demo:pod/p"),
            "acme/kubernetes/demo/urn:k:/demo:pod/p",
            "the contract's format where no segment holds '/' or '%'"
        );
        // Unescaped, every one of these would be "a/b/c/d/e".
        let tuples = [
            ("a", "b", "c", "d/e"),
            ("a", "b", "c/d", "e"),
            ("a", "b/c", "d", "e"),
            ("a/b", "c", "d", "e"),
            ("a", "b%2Fc", "d", "e"),
            ("a", "b", "c%2Fd", "e"),
        ];
        let keys: HashSet<String> = tuples
            .iter()
            .map(|(tenant, kind, url, id)| component_key(tenant, &instance(kind, url), id))
            .collect();
        assert_eq!(keys.len(), tuples.len(), "{keys:?}");
        assert_eq!(
            component_key("acme", &instance("k8s/x", "https://h:6443"), "urn:a/b"),
            "acme/k8s%2Fx/https:%2F%2Fh:6443/urn:a/b"
        );
        // The instance key of a component key is the topology.raw key of its parts.
        assert_eq!(
            instance_key("acme", &instance("k8s/x", "https://h:6443")),
            proto::keys::record_key("acme", "k8s/x", "https://h:6443")
        );
    }

    #[test]
    fn instances_whose_type_and_url_share_a_joined_form_are_apart() {
        let mut assembler = SnapshotAssembler::default();
        let mut first = part((true, true), &["x"], &[], 1.0);
        first.instance = Instance {
            kind: "k/a".into(),
            url: "b".into(),
        };
        let mut second = part((true, true), &["x"], &[], 1.0);
        second.instance = Instance {
            kind: "k".into(),
            url: "a/b".into(),
        };
        let created = assembler.apply(&first, (0, 1), 0);
        let changes = assembler.apply(&second, (0, 2), 0);
        assert!(
            deleted(&changes).is_empty(),
            "the second instance's snapshot deletes nothing of the first"
        );
        assert_eq!(upserted(&created), ["acme/k%2Fa/b/x"]);
        assert_eq!(upserted(&changes), ["acme/k/a%2Fb/x"]);
        assert_eq!(assembler.live_components(), 2);

        // A restart restores both and a tombstone removes exactly its own.
        let mut restored = SnapshotAssembler::default();
        for change in created.iter().chain(&changes) {
            if let TopologyChange::Upsert { key, component } = change {
                restored.restore(key, component);
            }
        }
        restored.restore_deletion("acme/k/a%2Fb/x");
        assert_eq!(restored.live_components(), 1);
        let stop = restored.apply(&part((true, true), &[], &[], 2.0), (0, 3), 0);
        assert!(
            deleted(&stop).is_empty(),
            "instance kubernetes/demo had nothing"
        );
        let mut again = first.clone();
        again.components.clear();
        assert_eq!(
            deleted(&restored.apply(&again, (0, 4), 0)),
            ["acme/k%2Fa/b/x"]
        );
    }

    #[test]
    fn tombstones_of_keys_written_before_escaping_are_still_recognized() {
        // Before segments were escaped, "acme/k8s/https://h/urn:a" was written
        // for url "https://h" and externalId "urn:a"; and "%" stayed as it was.
        for (url, old_key) in [
            ("https://h", "acme/k8s/https://h/urn:a"),
            ("50%", "acme/k8s/50%/urn:a"),
            ("a%2Fb/c", "acme/k8s/a%2Fb/c/urn:a"),
        ] {
            let mut assembler = SnapshotAssembler::default();
            let component = Component {
                tenant: "acme".into(),
                instance_type: "k8s".into(),
                instance_url: url.into(),
                external_id: "urn:a".into(),
                ..Default::default()
            };
            assembler.restore(old_key, &component);
            assert_eq!(assembler.live_components(), 1);
            assembler.restore_deletion("acme/k8s/elsewhere/urn:a");
            assert_eq!(assembler.live_components(), 1, "another key: kept");
            assembler.restore_deletion(old_key);
            assert_eq!(assembler.live_components(), 0, "{old_key}");
        }
    }

    /// Ingest refuses every part the materializer could not read: each field of
    /// an agent part is replaced by each kind of JSON value (or removed), and
    /// whatever ingest accepts must parse as a `TopologyPart` here.
    #[test]
    fn whatever_ingest_accepts_the_materializer_reads() {
        let base = serde_json::json!({
            "start_snapshot": true, "stop_snapshot": false, "delete_ids": ["urn:old"],
            "instance": {"type": "kubernetes", "url": "demo"},
            "components": [{"externalId": "urn:a", "type": {"name": "pod"},
                            "data": {"name": "a", "identifiers": ["urn:x"], "tags": {"t": "v"}, "labels": ["l:v"]}}],
            "relations": [{"externalId": "r", "sourceId": "urn:a", "targetId": "urn:b", "type": {"name": "r"}}]
        });
        let pointers = [
            "/instance",
            "/instance/type",
            "/instance/url",
            "/start_snapshot",
            "/stop_snapshot",
            "/delete_ids",
            "/delete_ids/0",
            "/components",
            "/components/0",
            "/components/0/externalId",
            "/components/0/type",
            "/components/0/type/name",
            "/components/0/data",
            "/components/0/data/identifiers",
            "/components/0/data/identifiers/0",
            "/components/0/data/name",
            "/components/0/data/tags",
            "/relations",
            "/relations/0",
            "/tenant",
            "/collection_timestamp",
        ];
        let replacements: Vec<Option<Value>> = [
            "null",
            "true",
            "0",
            "-1.5",
            r#""""#,
            r#""x""#,
            "[]",
            r#"["x"]"#,
            "[1]",
            "[null]",
            "{}",
            r#"{"name": "x"}"#,
            r#"{"name": null}"#,
            r#"{"type": "k", "url": "u"}"#,
            r#"["k", "u"]"#,
            r#"{"externalId": "urn:z"}"#,
        ]
        .iter()
        .map(|text| Some(serde_json::from_str(text).unwrap()))
        .chain([None])
        .collect();
        let (mut accepted, mut refused) = (0, 0);
        for pointer in pointers {
            for replacement in &replacements {
                let mut part = base.clone();
                let (parent, field) = pointer.rsplit_once('/').unwrap();
                match (part.pointer_mut(parent).unwrap(), replacement) {
                    (Value::Object(map), Some(value)) => {
                        map.insert(field.to_string(), value.clone());
                    }
                    (Value::Object(map), None) => {
                        map.remove(field);
                    }
                    (Value::Array(items), Some(value)) => {
                        items[field.parse::<usize>().unwrap()] = value.clone();
                    }
                    (Value::Array(items), None) => {
                        items.remove(field.parse::<usize>().unwrap());
                    }
                    _ => unreachable!("the base part has these fields"),
                }
                let payload = serde_json::json!({"topologies": [part]}).to_string();
                let Ok(records) = ingest::topology::parts_to_records(payload.as_bytes(), "acme")
                else {
                    refused += 1;
                    continue;
                };
                accepted += 1;
                let parsed = serde_json::from_slice::<TopologyPart>(&records[0].1);
                let parsed = parsed.unwrap_or_else(|error| {
                    panic!("ingest accepted {pointer} = {replacement:?}, unreadable here: {error}")
                });
                assert_eq!(parsed.tenant, "acme");
                assert!(parsed.components.iter().all(|c| !c.external_id.is_empty()));
                assert_eq!(
                    records[0].0,
                    instance_key(&parsed.tenant, &parsed.instance),
                    "ingest's key is the materializer's instance key"
                );
            }
        }
        eprintln!("mutated parts: {accepted} accepted, {refused} refused");
        assert!(
            accepted > 50 && refused > 100,
            "{accepted} accepted, {refused} refused"
        );
    }

    /// The component as read through a `serde_json::Value` of the whole `data`
    /// (as it was read before): the reference the borrowing read must match.
    fn component_via_value(
        part: &TopologyPart,
        raw: &RawComponent,
        collected_ms: i64,
    ) -> Component {
        let fields = raw
            .data
            .as_deref()
            .map(DataFields::lenient)
            .unwrap_or_default();
        let mut component = assemble(part, raw, fields, collected_ms);
        // `data_json` was the `Value` written back: ingest's text is the same.
        component.data_json = raw
            .data
            .as_deref()
            .map(|data| {
                serde_json::from_str::<Value>(data.get())
                    .unwrap()
                    .to_string()
            })
            .unwrap_or_default();
        component
    }

    #[test]
    fn data_is_read_as_the_value_tree_read_it_whatever_its_shape() {
        use rand::{Rng, SeedableRng};
        let mut random = rand::rngs::StdRng::seed_from_u64(5);
        // Values of each shape, for any field: strings (escaped too), the wrong types, nulls.
        let anything = |random: &mut rand::rngs::StdRng| -> Value {
            match random.random_range(0..9) {
                0 => Value::Null,
                1 => Value::from(random.random_range(-5i64..5)),
                2 => Value::from(0.5),
                3 => Value::Bool(true),
                4 => Value::from("pl\u{e4}in \"quoted\" \\ tab\t"),
                5 => serde_json::json!(["a", 1, null, "b"]),
                6 => serde_json::json!(["x", "y"]),
                7 => serde_json::json!({"k": "v", "n": 2, "o": {"deep": [1]}}),
                _ => Value::from(format!("v-{}", random.random_range(0..100))),
            }
        };
        let fields = [
            "name",
            "layer",
            "domain",
            "environment",
            "identifiers",
            "labels",
            "tags",
            "other",
        ];
        let part = part((true, true), &[], &[], 1.0);
        let mut compared = 0;
        for round in 0..5_000 {
            let data = match round % 10 {
                // Not an object at all.
                0 => anything(&mut random),
                _ => {
                    let mut object = serde_json::Map::new();
                    for field in fields {
                        if random.random_bool(0.6) {
                            object.insert(field.to_string(), anything(&mut random));
                        }
                    }
                    if random.random_bool(0.5) {
                        object.insert(
                            "identifiers".into(),
                            serde_json::json!(["urn:a", format!("urn:{round}")]),
                        );
                        object.insert(
                            "tags".into(),
                            serde_json::json!({"app": "web", "replicas": 3, "none": null}),
                        );
                    }
                    Value::Object(object)
                }
            };
            let raw = RawComponent::new(if round % 7 == 0 { "" } else { "urn:a" }, "pod", &data);
            assert_eq!(
                to_component(&part, &raw, 7),
                component_via_value(&part, &raw, 7),
                "data {data}"
            );
            compared += 1;
        }
        // Read from a whole part as ingest writes it.
        let text = br#"{"tenant":"acme","instance":{"type":"k","url":"u"},"components":[
            {"externalId":"urn:a","data":{"name":"a","tags":{"t":"1"}}},
            {"externalId":"urn:b","data":null},
            {"externalId":"urn:c"}]}"#;
        let parsed: TopologyPart = serde_json::from_slice(text).unwrap();
        for raw in &parsed.components {
            assert_eq!(
                to_component(&parsed, raw, 7),
                component_via_value(&parsed, raw, 7)
            );
            compared += 1;
        }
        // A field given twice: the last one wins, as in a `Value`.
        let twice: TopologyPart = serde_json::from_slice(
            br#"{"tenant":"a","instance":{"type":"k","url":"u"},"components":[
                {"externalId":"urn:a","data":{"name":"first","name":"second","tags":{"t":"1","t":"2"}}}]}"#,
        )
        .unwrap();
        let component = to_component(&twice, &twice.components[0], 7);
        assert_eq!(component.name, "second");
        assert_eq!(component.labels["t"], "2");
        assert_eq!(compared, 5_003);
    }

    #[test]
    fn a_component_reported_again_unchanged_is_not_rewritten_whatever_its_tags() {
        let mut assembler = SnapshotAssembler::default();
        let mut report = part((true, true), &["a"], &[], 1.0);
        let tags: serde_json::Map<String, Value> = (0..16)
            .map(|i| (format!("tag-{i}"), Value::from(format!("value-{i}"))))
            .collect();
        report.components[0] = RawComponent::new("a", "pod", &serde_json::json!({"tags": tags}));
        assert_eq!(upserted(&assembler.apply(&report, (0, 1), 0)).len(), 1);
        for offset in 2..10 {
            let changes = assembler.apply(&report, (0, offset), 0);
            assert!(changes.is_empty(), "report {offset}: {changes:?}");
        }
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
