//! The topology as the join sees it: every component's versions over time
//! (from `topology.components`), and which components carry an identifier.
//! Lookups are as of a sample's timestamp.

use foldhash::HashMap;
use std::sync::Arc;

use proto::records::Component;

/// What the join keeps of a component: what binds it and what a bound record
/// names. Its data, labels and tags stay in `topology.components`; with a
/// million components they would be most of the join's memory, and so would
/// repeats: tenant and type are shared by the index, the externalId is not
/// kept twice.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedComponent {
    pub tenant: Arc<str>,
    pub external_id: Box<str>,
    pub type_name: Arc<str>,
    pub name: Box<str>,
    /// Whether a series may bind through the externalId (it is among the
    /// component's identifiers, as the materializer always puts it).
    binds_by_external_id: bool,
    /// The other identifiers a series may bind through.
    other_identifiers: Box<[Box<str>]>,
    pub first_seen_ms: i64,
}

impl IndexedComponent {
    /// Whether a series may bind to this component through `identifier`.
    pub fn carries(&self, identifier: &str) -> bool {
        (self.binds_by_external_id && *self.external_id == *identifier)
            || self.other_identifiers.iter().any(|i| **i == *identifier)
    }

    /// Every identifier a series may bind through.
    pub fn identifiers(&self) -> impl Iterator<Item = &str> {
        self.binds_by_external_id
            .then_some(&*self.external_id)
            .into_iter()
            .chain(self.other_identifiers.iter().map(|i| &**i))
    }
}

impl From<&Component> for IndexedComponent {
    fn from(component: &Component) -> IndexedComponent {
        let mut other_identifiers: Vec<Box<str>> = Vec::with_capacity(component.identifiers.len());
        let mut binds_by_external_id = false;
        for identifier in &component.identifiers {
            if *identifier == component.external_id {
                binds_by_external_id = true;
            } else if !other_identifiers.iter().any(|i| **i == **identifier) {
                other_identifiers.push(identifier.as_str().into());
            }
        }
        IndexedComponent {
            tenant: component.tenant.as_str().into(),
            external_id: component.external_id.as_str().into(),
            type_name: component.type_name.as_str().into(),
            name: component.name.as_str().into(),
            binds_by_external_id,
            other_identifiers: other_identifiers.into_boxed_slice(),
            first_seen_ms: component.first_seen_ms,
        }
    }
}

impl From<Component> for IndexedComponent {
    fn from(component: Component) -> IndexedComponent {
        IndexedComponent::from(&component)
    }
}

/// One lifetime of a component: from its first report to its tombstone.
#[derive(Debug, Clone)]
pub struct ComponentVersion {
    pub valid_from_ms: i64,
    pub valid_to_ms: Option<i64>,
    pub component: Arc<IndexedComponent>,
}

/// Tolerances of as-of lookups.
#[derive(Debug, Clone, Copy)]
pub struct AsOf {
    /// A sample may be this much older than its component's first report.
    pub skew_ms: i64,
    /// A deleted component still binds samples this long after its deletion.
    pub delete_grace_ms: i64,
}

impl ComponentVersion {
    fn covers(&self, timestamp_ms: i64, as_of: AsOf) -> bool {
        let after_start = timestamp_ms >= self.valid_from_ms.saturating_sub(as_of.skew_ms);
        let before_end = self
            .valid_to_ms
            .is_none_or(|end| timestamp_ms < end.saturating_add(as_of.delete_grace_ms));
        after_start && before_end
    }
}

/// A seed nobody outside this process knows (std's random hash keys), so
/// that keys cannot be made to collide on purpose.
pub(crate) fn random_seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(0u8)
}

/// Hashes `tenant` and `identifier` to the key of `by_identifier`, seeded per
/// process. A collision costs only a longer list: every lookup checks what
/// it finds.
#[derive(Clone, Copy)]
struct IdentifierHashing {
    seed: u64,
}

impl Default for IdentifierHashing {
    fn default() -> IdentifierHashing {
        IdentifierHashing {
            seed: random_seed(),
        }
    }
}

impl IdentifierHashing {
    /// In tests: every identifier hashes the same, to prove lookups exact.
    #[cfg(test)]
    const COLLIDING: IdentifierHashing = IdentifierHashing { seed: u64::MAX };

    fn of(self, tenant: &str, identifier: &str) -> u64 {
        #[cfg(test)]
        if self.seed == u64::MAX {
            return 0;
        }
        let mut hasher = xxhash_rust::xxh3::Xxh3::with_seed(self.seed);
        hasher.update(&(tenant.len() as u64).to_le_bytes());
        hasher.update(tenant.as_bytes());
        hasher.update(identifier.as_bytes());
        hasher.digest()
    }
}

/// A component's versions, oldest first; shared with the join's per-series
/// cache, which keeps them until the index changes. One allocation: a change
/// (rare) makes a new slice.
pub type Versions = Arc<[ComponentVersion]>;

/// The keys of the components that carry one identifier: nearly always one,
/// kept without an allocation of its own.
#[derive(Debug)]
enum Keys {
    One(Arc<str>),
    Many(Vec<Arc<str>>),
}

impl Keys {
    fn as_slice(&self) -> &[Arc<str>] {
        match self {
            Keys::One(key) => std::slice::from_ref(key),
            Keys::Many(keys) => keys,
        }
    }

    fn add(&mut self, key: &Arc<str>) {
        if self.as_slice().iter().any(|known| **known == **key) {
            return;
        }
        match self {
            Keys::One(first) => *self = Keys::Many(vec![first.clone(), key.clone()]),
            Keys::Many(keys) => keys.push(key.clone()),
        }
    }

    /// Keeps the keys `keep` accepts; false when none is left.
    fn retain(&mut self, keep: impl Fn(&Arc<str>) -> bool) -> bool {
        match self {
            Keys::One(key) => keep(key),
            Keys::Many(keys) => {
                keys.retain(|key| keep(key));
                !keys.is_empty()
            }
        }
    }
}

/// The version of `versions` that carries `identifier` at `timestamp_ms`.
pub fn version_at<'a>(
    versions: &'a [ComponentVersion],
    identifier: &str,
    timestamp_ms: i64,
    as_of: AsOf,
) -> Option<&'a Arc<IndexedComponent>> {
    versions
        .iter()
        .rev()
        .find(|v| v.covers(timestamp_ms, as_of) && v.component.carries(identifier))
        .map(|v| &v.component)
}

#[derive(Default)]
pub struct TopologyIndex {
    /// `topology.components` key → versions, oldest first.
    versions: HashMap<Arc<str>, Versions>,
    /// Hash of tenant and identifier → keys of components that carry (or
    /// carried) it (the same allocations as the keys of `versions`). Keyed by
    /// the hash, not the text: two million identifiers' text would be a fifth
    /// of the index.
    by_identifier: HashMap<u64, Keys>,
    identifier_hashing: IdentifierHashing,
    /// Tenants and type names, one allocation each however many components share them.
    shared_names: foldhash::HashSet<Arc<str>>,
    /// Bumped on every change.
    generation: u64,
    /// Per tenant, the generation of its last change: a series resolves only
    /// against its own tenant's components, so other tenants' changes leave
    /// its cached resolution fresh.
    tenant_generations: HashMap<Arc<str>, u64>,
}

impl TopologyIndex {
    fn changed(&mut self, tenant: &Arc<str>) {
        self.generation += 1;
        self.tenant_generations
            .insert(tenant.clone(), self.generation);
    }

    fn shared(&mut self, name: &Arc<str>) -> Arc<str> {
        match self.shared_names.get(name) {
            Some(known) => known.clone(),
            None => {
                self.shared_names.insert(name.clone());
                name.clone()
            }
        }
    }

    /// A component reported (new or changed).
    pub fn upsert(&mut self, key: &str, component: impl Into<IndexedComponent>) {
        let mut component = component.into();
        component.tenant = self.shared(&component.tenant);
        component.type_name = self.shared(&component.type_name);
        let component = Arc::new(component);
        let shared_key: Arc<str> = match self.versions.get_key_value(key) {
            Some((known, _)) => known.clone(),
            None => Arc::from(key),
        };
        for identifier in component.identifiers() {
            let by_identifier = self.identifier_hashing.of(&component.tenant, identifier);
            self.by_identifier
                .entry(by_identifier)
                .and_modify(|keys| keys.add(&shared_key))
                .or_insert_with(|| Keys::One(shared_key.clone()));
        }
        self.changed(&component.tenant);
        let current = ComponentVersion {
            valid_from_ms: component.first_seen_ms,
            valid_to_ms: None,
            component,
        };
        match self.versions.get_mut(key) {
            None => {
                self.versions.insert(shared_key, Arc::from([current]));
            }
            Some(versions) => {
                let mut changed = versions.to_vec();
                match changed.last_mut() {
                    Some(last) if last.valid_to_ms.is_none() => last.component = current.component,
                    _ => changed.push(current),
                }
                *versions = Arc::from(changed);
            }
        }
    }

    /// A tombstone: the component's current version ends at `deleted_ms`.
    pub fn delete(&mut self, key: &str, deleted_ms: i64) {
        let Some(versions) = self.versions.get_mut(key) else {
            return;
        };
        let Some(current) = versions.last() else {
            return;
        };
        if current.valid_to_ms.is_none() {
            let tenant = current.component.tenant.clone();
            let mut ended = versions.to_vec();
            if let Some(current) = ended.last_mut() {
                current.valid_to_ms = Some(deleted_ms);
            }
            *versions = Arc::from(ended);
            self.changed(&tenant);
        }
    }

    /// The generation of `tenant`'s last change: a resolution of one of its
    /// series made at another generation may be stale.
    pub fn generation_of(&self, tenant: &str) -> u64 {
        self.tenant_generations.get(tenant).copied().unwrap_or(0)
    }

    /// Every component that carries or carried `identifier` for `tenant`, with
    /// its versions, whatever the time: the caller picks the version as of a sample.
    pub fn candidates<'a>(
        &'a self,
        tenant: &'a str,
        identifier: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Versions)> + 'a {
        self.by_identifier
            .get(&self.identifier_hashing.of(tenant, identifier))
            .into_iter()
            .flat_map(Keys::as_slice)
            .filter_map(move |key| {
                let versions = self.versions.get(key)?;
                // A hash collision brings other identifiers' components along.
                versions
                    .iter()
                    .any(|v| *v.component.tenant == *tenant && v.component.carries(identifier))
                    .then_some((&**key, versions))
            })
    }

    /// Components carrying `identifier` for `tenant` at `timestamp_ms`.
    pub fn resolve<'a>(
        &'a self,
        tenant: &'a str,
        identifier: &'a str,
        timestamp_ms: i64,
        as_of: AsOf,
    ) -> impl Iterator<Item = (&'a str, &'a Arc<IndexedComponent>)> + 'a {
        self.candidates(tenant, identifier)
            .filter_map(move |(key, versions)| {
                let component = version_at(versions, identifier, timestamp_ms, as_of)?;
                (*component.tenant == *tenant).then_some((key, component))
            })
    }

    /// Forgets versions deleted before `cutoff_ms` (the history kept for late samples).
    pub fn purge(&mut self, cutoff_ms: i64) {
        let expired = |v: &ComponentVersion| v.valid_to_ms.is_some_and(|end| end < cutoff_ms);
        let mut changed: Vec<Arc<str>> = Vec::new();
        self.versions.retain(|_, versions| {
            if versions.iter().any(expired) {
                if let Some(first) = versions.first() {
                    changed.push(first.component.tenant.clone());
                }
                let kept: Vec<ComponentVersion> =
                    versions.iter().filter(|v| !expired(v)).cloned().collect();
                *versions = Arc::from(kept);
            }
            !versions.is_empty()
        });
        changed.sort();
        changed.dedup();
        for tenant in &changed {
            self.changed(tenant);
        }
        let versions = &self.versions;
        self.by_identifier
            .retain(|_, keys| keys.retain(|key| versions.contains_key(key)));
    }

    /// Components with a current (not deleted) version.
    pub fn current_components(&self) -> usize {
        self.versions
            .values()
            .filter(|v| v.last().is_some_and(|v| v.valid_to_ms.is_none()))
            .count()
    }

    pub fn identifiers(&self) -> usize {
        self.by_identifier.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AS_OF: AsOf = AsOf {
        skew_ms: 1_000,
        delete_grace_ms: 5_000,
    };

    fn pod(first_seen_ms: i64) -> Component {
        Component {
            tenant: "acme".into(),
            external_id: "urn:pod".into(),
            identifiers: vec!["urn:pod".into(), "urn:ip:10.0.0.1".into()],
            first_seen_ms,
            ..Default::default()
        }
    }

    fn found(index: &TopologyIndex, tenant: &str, identifier: &str, at: i64) -> usize {
        index.resolve(tenant, identifier, at, AS_OF).count()
    }

    /// Asserts each (tenant, identifier, timestamp, components found, why).
    fn expect_found(index: &TopologyIndex, cases: &[(&str, &str, i64, usize, &str)]) {
        for &(tenant, identifier, at, expected, why) in cases {
            assert_eq!(
                found(index, tenant, identifier, at),
                expected,
                "{tenant} {identifier} at {at}: {why}"
            );
        }
    }

    #[test]
    fn lookups_are_as_of_the_sample_timestamp() {
        let mut index = TopologyIndex::default();
        index.upsert("k", pod(10_000));
        expect_found(
            &index,
            &[
                ("acme", "urn:pod", 9_500, 1, "within the skew"),
                ("acme", "urn:pod", 8_000, 0, "before the component existed"),
                ("acme", "urn:ip:10.0.0.1", 20_000, 1, ""),
                ("globex", "urn:pod", 20_000, 0, "tenants are apart"),
            ],
        );
        index.delete("k", 30_000);
        expect_found(
            &index,
            &[
                ("acme", "urn:pod", 34_000, 1, "within the delete grace"),
                ("acme", "urn:pod", 36_000, 0, "after the grace"),
                (
                    "acme",
                    "urn:pod",
                    20_000,
                    1,
                    "history still binds earlier samples",
                ),
            ],
        );
        index.upsert("k", pod(50_000));
        expect_found(
            &index,
            &[
                ("acme", "urn:pod", 40_000, 0, "a gap between two lifetimes"),
                ("acme", "urn:pod", 50_000, 1, ""),
            ],
        );
        index.purge(40_000);
        expect_found(&index, &[("acme", "urn:pod", 20_000, 0, "purged history")]);
        assert_eq!(index.current_components(), 1);
    }

    #[test]
    fn lookups_stay_exact_when_every_identifier_collides() {
        let mut index = TopologyIndex {
            identifier_hashing: IdentifierHashing::COLLIDING,
            ..TopologyIndex::default()
        };
        index.upsert("acme-pod", pod(0));
        let mut other_tenant = pod(0);
        other_tenant.tenant = "globex".into();
        index.upsert("globex-pod", other_tenant);
        let mut other_pod = pod(0);
        other_pod.external_id = "urn:other".into();
        other_pod.identifiers = vec!["urn:other".into(), "urn:ip:10.0.0.9".into()];
        index.upsert("acme-other", other_pod);
        let keys = |tenant: &str, identifier: &str| -> Vec<String> {
            index
                .candidates(tenant, identifier)
                .map(|(key, _)| key.to_string())
                .collect()
        };
        assert_eq!(keys("acme", "urn:pod"), ["acme-pod"]);
        assert_eq!(keys("globex", "urn:pod"), ["globex-pod"]);
        assert_eq!(keys("acme", "urn:ip:10.0.0.9"), ["acme-other"]);
        assert!(keys("acme", "urn:nothing").is_empty());
        assert_eq!(found(&index, "acme", "urn:ip:10.0.0.1", 1_000), 1);
        assert_eq!(found(&index, "globex", "urn:ip:10.0.0.9", 1_000), 0);
        assert_eq!(index.identifiers(), 1, "one hash for all");
    }

    #[test]
    fn a_changed_identifier_stops_matching() {
        let mut index = TopologyIndex::default();
        index.upsert("k", pod(0));
        let mut moved = pod(0);
        moved.identifiers = vec!["urn:pod".into(), "urn:ip:10.0.0.2".into()];
        index.upsert("k", moved);
        assert_eq!(found(&index, "acme", "urn:ip:10.0.0.1", 1_000), 0);
        assert_eq!(found(&index, "acme", "urn:ip:10.0.0.2", 1_000), 1);
    }
}
