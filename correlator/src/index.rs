//! The topology as the join sees it: every component's versions over time
//! (from `topology.components`), and which components carry an identifier.
//! Lookups are as of a sample's timestamp.

use foldhash::HashMap;
use std::sync::Arc;

use proto::records::Component;

/// What the join keeps of a component: what binds it and what a bound record
/// names. Its data, labels and tags stay in `topology.components`; with a
/// million components they would be most of the join's memory.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedComponent {
    pub tenant: Box<str>,
    pub external_id: Box<str>,
    pub type_name: Box<str>,
    pub name: Box<str>,
    /// Identifiers a series may bind through (the externalId among them).
    pub identifiers: Box<[Box<str>]>,
    pub first_seen_ms: i64,
}

impl From<&Component> for IndexedComponent {
    fn from(component: &Component) -> IndexedComponent {
        IndexedComponent {
            tenant: component.tenant.as_str().into(),
            external_id: component.external_id.as_str().into(),
            type_name: component.type_name.as_str().into(),
            name: component.name.as_str().into(),
            identifiers: component
                .identifiers
                .iter()
                .map(|identifier| identifier.as_str().into())
                .collect(),
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

fn identifier_key(tenant: &str, identifier: &str) -> String {
    let mut key = String::with_capacity(tenant.len() + identifier.len() + 1);
    key.push_str(tenant);
    key.push('\n');
    key.push_str(identifier);
    key
}

/// A component's versions, oldest first; shared with the join's per-series
/// cache, which keeps them until the index changes.
pub type Versions = Arc<Vec<ComponentVersion>>;

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
        .find(|v| {
            v.covers(timestamp_ms, as_of)
                && v.component.identifiers.iter().any(|i| **i == *identifier)
        })
        .map(|v| &v.component)
}

#[derive(Default)]
pub struct TopologyIndex {
    /// `topology.components` key → versions, oldest first.
    versions: HashMap<Arc<str>, Versions>,
    /// `tenant\nidentifier` → keys of components that carry (or carried) it
    /// (the same allocations as the keys of `versions`).
    by_identifier: HashMap<String, Vec<Arc<str>>>,
    /// Bumped on every change, so cached resolutions know they are stale.
    generation: u64,
}

impl TopologyIndex {
    /// A component reported (new or changed); returns the identifiers it carries.
    pub fn upsert(&mut self, key: &str, component: impl Into<IndexedComponent>) -> Vec<String> {
        let component = Arc::new(component.into());
        let shared_key: Arc<str> = match self.versions.get_key_value(key) {
            Some((known, _)) => known.clone(),
            None => Arc::from(key),
        };
        for identifier in &component.identifiers {
            let keys = self
                .by_identifier
                .entry(identifier_key(&component.tenant, identifier))
                .or_insert_with(|| Vec::with_capacity(1));
            if !keys.iter().any(|k| **k == *key) {
                keys.push(shared_key.clone());
            }
        }
        let identifiers = component
            .identifiers
            .iter()
            .map(|i| i.to_string())
            .collect();
        self.generation += 1;
        let versions = Arc::make_mut(
            self.versions
                .entry(shared_key)
                .or_insert_with(|| Arc::new(Vec::with_capacity(1))),
        );
        match versions.last_mut() {
            Some(current) if current.valid_to_ms.is_none() => {
                current.component = component;
            }
            _ => versions.push(ComponentVersion {
                valid_from_ms: component.first_seen_ms,
                valid_to_ms: None,
                component,
            }),
        }
        identifiers
    }

    /// A tombstone: the component's current version ends at `deleted_ms`.
    pub fn delete(&mut self, key: &str, deleted_ms: i64) {
        let Some(versions) = self.versions.get_mut(key) else {
            return;
        };
        if versions
            .last()
            .is_some_and(|current| current.valid_to_ms.is_none())
        {
            self.generation += 1;
            if let Some(current) = Arc::make_mut(versions).last_mut() {
                current.valid_to_ms = Some(deleted_ms);
            }
        }
    }

    /// Changes so far: a resolution made at another generation may be stale.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Every component that carries or carried `identifier` for `tenant`, with
    /// its versions, whatever the time: the caller picks the version as of a sample.
    pub fn candidates<'a>(
        &'a self,
        tenant: &str,
        identifier: &str,
    ) -> impl Iterator<Item = (&'a str, &'a Versions)> + 'a {
        self.by_identifier
            .get(&identifier_key(tenant, identifier))
            .into_iter()
            .flatten()
            .filter_map(move |key| Some((&**key, self.versions.get(key)?)))
    }

    /// Components carrying `identifier` for `tenant` at `timestamp_ms`.
    pub fn resolve<'a>(
        &'a self,
        tenant: &str,
        identifier: &str,
        timestamp_ms: i64,
        as_of: AsOf,
    ) -> impl Iterator<Item = (&'a str, &'a Arc<IndexedComponent>)> + 'a {
        let identifier = identifier.to_string();
        self.by_identifier
            .get(&identifier_key(tenant, &identifier))
            .into_iter()
            .flatten()
            .filter_map(move |key| {
                let versions = self.versions.get(key)?;
                let component = version_at(versions, &identifier, timestamp_ms, as_of)?;
                Some((&**key, component))
            })
    }

    /// Forgets versions deleted before `cutoff_ms` (the history kept for late samples).
    pub fn purge(&mut self, cutoff_ms: i64) {
        let expired = |v: &ComponentVersion| v.valid_to_ms.is_some_and(|end| end < cutoff_ms);
        let mut changed = false;
        self.versions.retain(|_, versions| {
            if versions.iter().any(expired) {
                Arc::make_mut(versions).retain(|v| !expired(v));
                changed = true;
            }
            !versions.is_empty()
        });
        if changed {
            self.generation += 1;
        }
        let versions = &self.versions;
        self.by_identifier.retain(|_, keys| {
            keys.retain(|key| versions.contains_key(key));
            !keys.is_empty()
        });
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

    #[test]
    fn lookups_are_as_of_the_sample_timestamp() {
        let mut index = TopologyIndex::default();
        index.upsert("k", pod(10_000));
        assert_eq!(
            found(&index, "acme", "urn:pod", 9_500),
            1,
            "within the skew"
        );
        assert_eq!(
            found(&index, "acme", "urn:pod", 8_000),
            0,
            "before the component existed"
        );
        assert_eq!(found(&index, "acme", "urn:ip:10.0.0.1", 20_000), 1);
        assert_eq!(
            found(&index, "globex", "urn:pod", 20_000),
            0,
            "tenants are apart"
        );
        index.delete("k", 30_000);
        assert_eq!(
            found(&index, "acme", "urn:pod", 34_000),
            1,
            "within the delete grace"
        );
        assert_eq!(
            found(&index, "acme", "urn:pod", 36_000),
            0,
            "after the grace"
        );
        assert_eq!(
            found(&index, "acme", "urn:pod", 20_000),
            1,
            "history still binds earlier samples"
        );
        index.upsert("k", pod(50_000));
        assert_eq!(
            found(&index, "acme", "urn:pod", 40_000),
            0,
            "a gap between two lifetimes"
        );
        assert_eq!(found(&index, "acme", "urn:pod", 50_000), 1);
        index.purge(40_000);
        assert_eq!(
            found(&index, "acme", "urn:pod", 20_000),
            0,
            "purged history"
        );
        assert_eq!(index.current_components(), 1);
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
