//! The join's pure core: a `metrics.samples` record in, `metrics.bound` and
//! `metrics.unbound` records out.
//!
//! Each series' labels are rendered through the binding rules once and cached
//! (rules depend on labels only, so topology changes never stale the cache);
//! the rendered identifiers are resolved against the topology index as of each
//! sample's timestamp, on every sample. A sample whose identifiers resolve to
//! nothing yet waits in a bounded pending buffer until a component arrives or
//! its grace runs out.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use proto::prometheus::{Histogram, Label, Sample, WriteRequest};
use proto::records::{BoundComponent, BoundSeries, UnboundReason, UnboundSeries};
use proto::wire::{self, Fields, WireError};
use proto::{Message, v2};
use thiserror::Error;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::bindings::{Bindings, Rendered};
use crate::index::{AsOf, IndexedComponent, TopologyIndex, Versions, version_at};
use crate::output::{self, OutputEncoding};

#[derive(Debug, Clone, Copy)]
pub struct JoinSettings {
    pub as_of: AsOf,
    /// Samples older than the newest seen minus this are `late`.
    pub history_ms: i64,
    /// How long a sample waits for its component before it is `no_component`.
    pub pending_grace_ms: i64,
    /// Most samples waiting at once; past it the oldest leave as `no_component`.
    pub pending_max_samples: usize,
    /// Most series whose rendered identifiers are cached.
    pub series_cache_max: usize,
    pub encoding: OutputEncoding,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    Bound,
    Unbound,
}

/// One record to produce.
#[derive(Debug, Clone)]
pub struct Output {
    pub destination: Destination,
    /// The tenant, also sent as the record's `tenant` header.
    pub tenant: Arc<str>,
    pub key: Arc<str>,
    pub payload: Vec<u8>,
    /// Samples and histograms it carries, for metrics.
    pub points: usize,
    pub reason: Option<UnboundReason>,
    /// For samples that waited: where they were read, so their offset is held
    /// back until this output is acknowledged.
    pub origin: Option<Origin>,
}

/// Where a sample was read from: offsets may be committed only past it once
/// its outputs are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Origin {
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug, Error)]
pub enum JoinError {
    #[error("record is not a remote-write message: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("unknown content type {0:?}")]
    ContentType(String),
    #[error("symbol reference {0} out of range")]
    Symbol(u32),
    #[error("record is not a remote-write message: {0}")]
    Wire(#[from] WireError),
    #[error("label is not UTF-8")]
    Utf8,
}

#[derive(Debug, Clone)]
enum Point {
    Sample(Sample),
    Histogram(Box<Histogram>),
}

impl Point {
    fn timestamp(&self) -> i64 {
        match self {
            Point::Sample(sample) => sample.timestamp,
            Point::Histogram(histogram) => histogram.timestamp,
        }
    }
}

type Identifiers = Arc<Vec<(usize, String)>>;

#[derive(Clone)]
enum CachedRender {
    Identifiers(Identifiers),
    Unbound(UnboundReason, Arc<str>),
}

/// A component a series binds to, as resolved at one index generation; which
/// of its versions a sample binds to is decided per sample, as of its time.
struct Target {
    /// The `metrics.bound` record key, `tenant/externalId`.
    key: Arc<str>,
    /// The rendered identifier it carries, and the rule that rendered it.
    identifier: String,
    rule: usize,
    versions: Versions,
    /// When a sample binds to it: the `[from, to)` timestamps of the versions
    /// carrying the identifier, skew and delete grace applied, so the per-sample
    /// check compares numbers only.
    binds_during: Vec<(i64, i64)>,
    /// The `component` field of its `BoundSeries`, encoded once.
    component_field: Vec<u8>,
}

impl Target {
    fn binds_at(&self, timestamp_ms: i64) -> bool {
        self.binds_during
            .iter()
            .any(|(from, to)| timestamp_ms >= *from && timestamp_ms < *to)
    }
}

/// What the join keeps per series: its rendered rules (labels only, never
/// stale) and their resolution (stale once the index changes).
struct SeriesEntry {
    render: CachedRender,
    generation: u64,
    targets: Arc<Vec<Target>>,
}

/// The series cache, per tenant, keyed by the exact bytes of a series' labels
/// as remote-write 1.0 encodes them (each label a `TimeSeries` field 1). Exact
/// keys mean no hash collision can hand a series another's binding, and a hit
/// needs neither UTF-8 checks nor label parsing: the bytes were checked when
/// the entry was made. A series encoded two ways gets two entries, both right.
/// One tenant's cached series, by label bytes.
type TenantSeries = HashMap<Box<[u8]>, SeriesEntry, KeyHashing>;

#[derive(Default)]
struct SeriesCache {
    by_tenant: HashMap<Arc<str>, TenantSeries>,
    entries: usize,
    hashing: KeyHashing,
}

impl SeriesCache {
    fn get(&self, tenant: &str, key: &[u8]) -> Option<&SeriesEntry> {
        self.by_tenant.get(tenant)?.get(key)
    }

    fn insert(&mut self, tenant: &Arc<str>, key: &[u8], entry: SeriesEntry, max_entries: usize) {
        let known = self.get(tenant, key).is_some();
        if !known && self.entries >= max_entries.max(1) {
            // Cheap and bounded: start over rather than track recency per series.
            self.by_tenant.clear();
            self.entries = 0;
        }
        let hashing = self.hashing;
        let series = self
            .by_tenant
            .entry(tenant.clone())
            .or_insert_with(|| HashMap::with_hasher(hashing));
        if series.insert(key.into(), entry).is_none() {
            self.entries += 1;
        }
    }
}

/// Hashes a byte-string key with one xxh3 call (std hashes a `[u8]` key as its
/// length, then its bytes), seeded per process.
#[derive(Clone, Copy)]
struct KeyHashing {
    seed: u64,
}

impl Default for KeyHashing {
    fn default() -> KeyHashing {
        KeyHashing {
            seed: crate::index::random_seed(),
        }
    }
}

impl BuildHasher for KeyHashing {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher { state: self.seed }
    }
}

struct KeyHasher {
    state: u64,
}

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.state = xxh3_64_with_seed(bytes, self.state);
    }
    fn write_usize(&mut self, length: usize) {
        self.state ^= (length as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn finish(&self) -> u64 {
        self.state
    }
}

/// A series' labels encoded as the cache keys them: each label a field 1.
fn series_key_of(labels: &[(&str, &str)], key: &mut Vec<u8>) {
    key.clear();
    let mut label = Vec::with_capacity(64);
    for (name, value) in labels {
        label.clear();
        wire::put_len_field(&mut label, 1, name.as_bytes());
        wire::put_len_field(&mut label, 2, value.as_bytes());
        wire::put_len_field(key, 1, &label);
    }
}

/// What the cache says of a series.
enum Cached {
    Fresh(CachedRender, Arc<Vec<Target>>),
    /// Rendered, but resolved at an older index generation.
    Stale(CachedRender),
    Missing,
}

struct PendingSample {
    tenant: Arc<str>,
    labels: Arc<Vec<Label>>,
    identifiers: Identifiers,
    point: Point,
    origin: Origin,
    deadline_ms: i64,
}

#[derive(Default)]
struct PendingBuffer {
    entries: BTreeMap<u64, PendingSample>,
    by_identifier: HashMap<String, Vec<u64>>,
    origins: BTreeMap<Origin, usize>,
    next_sequence: u64,
}

impl PendingBuffer {
    fn push(&mut self, sample: PendingSample) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        for (_, identifier) in sample.identifiers.iter() {
            self.by_identifier
                .entry(identifier_key(&sample.tenant, identifier))
                .or_default()
                .push(sequence);
        }
        *self.origins.entry(sample.origin).or_default() += 1;
        self.entries.insert(sequence, sample);
    }

    fn remove(&mut self, sequence: u64) -> Option<PendingSample> {
        let sample = self.entries.remove(&sequence)?;
        if let Some(count) = self.origins.get_mut(&sample.origin) {
            *count -= 1;
            if *count == 0 {
                self.origins.remove(&sample.origin);
            }
        }
        // by_identifier is cleaned lazily: stale sequences are skipped on lookup.
        Some(sample)
    }

    fn oldest(&self) -> Option<u64> {
        self.entries.keys().next().copied()
    }
}

fn identifier_key(tenant: &str, identifier: &str) -> String {
    format!("{tenant}\n{identifier}")
}

/// `tenant/<externalId>`, the key of `metrics.bound`; the tenant is escaped as
/// in `topology.components` keys ('%' and '/' as "%25" and "%2F").
pub fn bound_key(tenant: &str, external_id: &str) -> String {
    format!("{}/{external_id}", ingest::topology::key_segment(tenant))
}

/// Counters the service turns into metrics.
#[derive(Debug, Default, Clone)]
pub struct JoinStats {
    pub bound_points: u64,
    pub released_points: u64,
    pub unbound_points: BTreeMap<&'static str, u64>,
    pub series_cache_misses: u64,
    /// Series resolved against the index (cache misses, and hits made stale
    /// by a change to their tenant's topology).
    pub series_resolved: u64,
}

pub struct Joiner {
    bindings: Bindings,
    index: TopologyIndex,
    series_cache: SeriesCache,
    pending: PendingBuffer,
    newest_sample_ms: i64,
    touched_identifiers: Vec<String>,
    settings: JoinSettings,
    pub stats: JoinStats,
}

/// Points bound to one component, on their way into one `BoundSeries`.
struct BoundGroup {
    component: Arc<IndexedComponent>,
    identifier: String,
    rule: usize,
    samples: Vec<Sample>,
    histograms: Vec<Histogram>,
}

impl Joiner {
    pub fn new(bindings: Bindings, settings: JoinSettings) -> Joiner {
        Joiner {
            bindings,
            index: TopologyIndex::default(),
            series_cache: SeriesCache::default(),
            pending: PendingBuffer::default(),
            newest_sample_ms: i64::MIN,
            touched_identifiers: Vec::new(),
            settings,
            stats: JoinStats::default(),
        }
    }

    pub fn index(&self) -> &TopologyIndex {
        &self.index
    }

    pub fn pending_samples(&self) -> usize {
        self.pending.entries.len()
    }

    pub fn cached_series(&self) -> usize {
        self.series_cache.entries
    }

    /// A component reported: index it. Samples waiting for it are released by
    /// [`Joiner::release_pending`], called once a batch of topology changes is
    /// in, so a sample waiting for a pod and its container binds to both when
    /// they arrive together.
    pub fn upsert_component(&mut self, key: &str, component: impl Into<IndexedComponent>) {
        let component: IndexedComponent = component.into();
        // Only samples waiting now can be released by it: later ones resolve
        // against the index (loading a topology, nothing waits).
        if !self.pending.entries.is_empty() {
            for identifier in component.identifiers() {
                self.touched_identifiers
                    .push(identifier_key(&component.tenant, identifier));
            }
        }
        self.index.upsert(key, component);
    }

    /// Binds the waiting samples whose identifiers gained a component.
    pub fn release_pending(&mut self) -> Vec<Output> {
        let mut outputs = Vec::new();
        let touched = std::mem::take(&mut self.touched_identifiers);
        for identifier_key in touched {
            let Some(sequences) = self.pending.by_identifier.remove(&identifier_key) else {
                continue;
            };
            let mut still_waiting = Vec::new();
            for sequence in sequences {
                let Some(entry) = self.pending.entries.get(&sequence) else {
                    continue;
                };
                let groups = self.bind_point(&entry.tenant, &entry.identifiers, &entry.point);
                if groups.is_empty() {
                    still_waiting.push(sequence);
                    continue;
                }
                let entry = self.pending.remove(sequence).expect("present");
                self.stats.released_points += 1;
                self.emit_bound(
                    &entry.tenant,
                    &entry.labels,
                    groups,
                    Some(entry.origin),
                    &mut outputs,
                );
            }
            if !still_waiting.is_empty() {
                self.pending
                    .by_identifier
                    .insert(identifier_key, still_waiting);
            }
        }
        outputs
    }

    /// A tombstone in `topology.components`.
    pub fn delete_component(&mut self, key: &str, deleted_ms: i64) {
        self.index.delete(key, deleted_ms);
    }

    /// Forgets topology history older than the history window of the newest sample.
    pub fn purge_history(&mut self) {
        if self.newest_sample_ms != i64::MIN {
            let cutoff = self.newest_sample_ms
                - self.settings.history_ms
                - self.settings.as_of.delete_grace_ms;
            self.index.purge(cutoff);
        }
    }

    /// Joins one `metrics.samples` record.
    pub fn process(
        &mut self,
        tenant: &str,
        content_type: &str,
        payload: &[u8],
        origin: Origin,
        now_ms: i64,
    ) -> Result<Vec<Output>, JoinError> {
        let is_v1 =
            content_type == proto::CONTENT_TYPE_V1 || content_type == "application/x-protobuf";
        if is_v1 && self.settings.encoding == OutputEncoding::Protobuf {
            return self.process_v1_protobuf(tenant, payload, origin, now_ms);
        }
        let series = decode_series(content_type, payload)?;
        let tenant: Arc<str> = Arc::from(tenant);
        let mut outputs = Vec::new();
        for (labels, samples, histograms) in series {
            self.join_owned(
                &tenant,
                labels,
                samples,
                histograms,
                origin,
                now_ms,
                &mut outputs,
            );
        }
        Ok(outputs)
    }

    /// Joins one series held as owned values (remote-write 2.0, JSON output,
    /// native histograms): the general path.
    #[allow(clippy::too_many_arguments)]
    fn join_owned(
        &mut self,
        tenant: &Arc<str>,
        labels: Vec<Label>,
        samples: Vec<Sample>,
        histograms: Vec<Histogram>,
        origin: Origin,
        now_ms: i64,
        outputs: &mut Vec<Output>,
    ) {
        let points: Vec<Point> = samples
            .into_iter()
            .map(Point::Sample)
            .chain(
                histograms
                    .into_iter()
                    .map(|h| Point::Histogram(Box::new(h))),
            )
            .collect();
        if points.is_empty() {
            return;
        }
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        let (render, targets) = self.lookup(tenant, &pairs);
        let labels = Arc::new(labels);
        match render {
            CachedRender::Unbound(reason, detail) => {
                self.emit_unbound(tenant, &labels, reason, &detail, points, None, outputs);
            }
            CachedRender::Identifiers(identifiers) => {
                self.join_points(
                    tenant,
                    &labels,
                    &identifiers,
                    &targets,
                    points,
                    origin,
                    now_ms,
                    outputs,
                );
            }
        }
    }

    /// The common case, without decoding into owned values: a remote-write 1.0
    /// record out to protobuf. Labels and samples are borrowed from the record
    /// and copied into the outputs as the bytes they were. A series already in
    /// the cache costs a walk over its fields, one hash of its label bytes, a
    /// few comparisons per sample and target, and one copy per output.
    fn process_v1_protobuf(
        &mut self,
        tenant: &str,
        payload: &[u8],
        origin: Origin,
        now_ms: i64,
    ) -> Result<Vec<Output>, JoinError> {
        let tenant_shared: Arc<str> = Arc::from(tenant);
        // Resolving does not change the index: one generation for the record.
        let generation = self.index.generation_of(tenant);
        let mut tenant_field = Vec::with_capacity(tenant.len() + 2);
        wire::put_len_field(&mut tenant_field, 1, tenant.as_bytes());
        let mut outputs = Vec::new();
        let mut label_fields: Vec<&[u8]> = Vec::with_capacity(16);
        let mut samples: Vec<(&[u8], i64)> = Vec::with_capacity(4);
        let mut buckets: Vec<Vec<&[u8]>> = Vec::new();
        let mut late: Vec<&[u8]> = Vec::new();
        // The labels as `BoundSeries` field 3, written once per series.
        let mut labels_encoded: Vec<u8> = Vec::with_capacity(512);
        // The series key when its label fields are not one run of bytes.
        let mut scattered_key: Vec<u8> = Vec::new();
        for field in Fields::new(payload) {
            let field = field?;
            if field.number != 1 {
                continue;
            }
            let series = field.bytes()?;
            label_fields.clear();
            samples.clear();
            let mut has_histograms = false;
            // The label fields' bytes, tags included: the cache key.
            let mut key_range: Option<(usize, usize)> = None;
            let mut key_is_one_run = true;
            for inner in Fields::new(series) {
                let inner = inner?;
                match inner.number {
                    1 => {
                        label_fields.push(inner.bytes()?);
                        let start = inner.raw.as_ptr() as usize - series.as_ptr() as usize;
                        let end = start + inner.raw.len();
                        key_range = match key_range {
                            None => Some((start, end)),
                            Some((first, last)) => {
                                key_is_one_run &= last == start;
                                Some((first, end))
                            }
                        };
                    }
                    2 => {
                        let sample = inner.bytes()?;
                        samples.push((sample, sample_timestamp(sample)?));
                    }
                    4 => has_histograms = true,
                    _ => {}
                }
            }
            if has_histograms {
                let owned = proto::prometheus::TimeSeries::decode(series)?;
                self.join_owned(
                    &tenant_shared,
                    owned.labels,
                    owned.samples,
                    owned.histograms,
                    origin,
                    now_ms,
                    &mut outputs,
                );
                continue;
            }
            if samples.is_empty() {
                continue;
            }
            let key: &[u8] = match key_range {
                Some((start, end)) if key_is_one_run => &series[start..end],
                _ => {
                    scattered_key.clear();
                    for label in &label_fields {
                        wire::put_len_field(&mut scattered_key, 1, label);
                    }
                    &scattered_key
                }
            };
            let (render, targets) = match self.cached(tenant, key, generation) {
                Cached::Fresh(render, targets) => (render, targets),
                Cached::Stale(render) => self.resolve_and_cache(&tenant_shared, key, render),
                Cached::Missing => {
                    self.stats.series_cache_misses += 1;
                    let labels = read_labels(&label_fields)?;
                    let render = self.render_labels(&labels);
                    self.resolve_and_cache(&tenant_shared, key, render)
                }
            };
            let identifiers = match render {
                CachedRender::Unbound(reason, detail) => {
                    let raw_samples: Vec<&[u8]> = samples.iter().map(|(raw, _)| *raw).collect();
                    self.emit_unbound_raw(
                        &tenant_field,
                        &tenant_shared,
                        (reason, &detail),
                        &label_fields,
                        &raw_samples,
                        &mut outputs,
                    );
                    continue;
                }
                CachedRender::Identifiers(identifiers) => identifiers,
            };
            buckets.iter_mut().for_each(Vec::clear);
            buckets.resize_with(targets.len().max(buckets.len()), Vec::new);
            late.clear();
            let mut owned_labels: Option<Arc<Vec<Label>>> = None;
            for (raw, timestamp) in &samples {
                if self.newest_sample_ms != i64::MIN
                    && *timestamp < self.newest_sample_ms - self.settings.history_ms
                {
                    late.push(raw);
                    continue;
                }
                self.newest_sample_ms = self.newest_sample_ms.max(*timestamp);
                let mut bound = false;
                for (index, target) in targets.iter().enumerate() {
                    if target.binds_at(*timestamp) {
                        buckets[index].push(raw);
                        bound = true;
                    }
                }
                if bound {
                    self.stats.bound_points += 1;
                    continue;
                }
                let labels_for_pending = match &owned_labels {
                    Some(labels) => labels.clone(),
                    None => {
                        let labels: Vec<Label> = read_labels(&label_fields)?
                            .into_iter()
                            .map(|(name, value)| Label {
                                name: name.to_string(),
                                value: value.to_string(),
                            })
                            .collect();
                        owned_labels.insert(Arc::new(labels)).clone()
                    }
                };
                let pending = PendingSample {
                    tenant: tenant_shared.clone(),
                    labels: labels_for_pending,
                    identifiers: identifiers.clone(),
                    point: Point::Sample(read_sample(raw)?),
                    origin,
                    deadline_ms: now_ms + self.settings.pending_grace_ms,
                };
                self.hold(pending, &mut outputs);
            }
            if !late.is_empty() {
                let detail = format!("older than the {} ms history", self.settings.history_ms);
                self.emit_unbound_raw(
                    &tenant_field,
                    &tenant_shared,
                    (UnboundReason::Late, &detail),
                    &label_fields,
                    &late,
                    &mut outputs,
                );
            }
            labels_encoded.clear();
            for (target, bucket) in targets.iter().zip(&buckets) {
                if bucket.is_empty() {
                    continue;
                }
                if labels_encoded.is_empty() {
                    for label in &label_fields {
                        wire::put_len_field(&mut labels_encoded, 3, label);
                    }
                }
                let samples_len: usize = bucket.iter().map(|s| s.len() + 2).sum();
                let mut payload = Vec::with_capacity(
                    tenant_field.len()
                        + target.component_field.len()
                        + labels_encoded.len()
                        + samples_len,
                );
                payload.extend_from_slice(&tenant_field);
                payload.extend_from_slice(&target.component_field);
                payload.extend_from_slice(&labels_encoded);
                for sample in bucket {
                    wire::put_len_field(&mut payload, 4, sample);
                }
                outputs.push(Output {
                    destination: Destination::Bound,
                    tenant: tenant_shared.clone(),
                    key: target.key.clone(),
                    payload,
                    points: bucket.len(),
                    reason: None,
                    origin: None,
                });
            }
        }
        Ok(outputs)
    }

    /// An `UnboundSeries` written from borrowed label and sample bytes.
    fn emit_unbound_raw(
        &mut self,
        tenant_field: &[u8],
        tenant: &Arc<str>,
        (reason, detail): (UnboundReason, &str),
        label_fields: &[&[u8]],
        samples: &[&[u8]],
        outputs: &mut Vec<Output>,
    ) {
        *self
            .stats
            .unbound_points
            .entry(output::reason_name(reason))
            .or_default() += samples.len() as u64;
        let mut payload = Vec::with_capacity(
            tenant_field.len() + detail.len() + 64 * (label_fields.len() + samples.len()),
        );
        payload.extend_from_slice(tenant_field);
        wire::put_varint(&mut payload, 2 << 3);
        wire::put_varint(&mut payload, reason as u64);
        wire::put_len_field(&mut payload, 3, detail.as_bytes());
        for label in label_fields {
            wire::put_len_field(&mut payload, 4, label);
        }
        for sample in samples {
            wire::put_len_field(&mut payload, 5, sample);
        }
        outputs.push(Output {
            destination: Destination::Unbound,
            tenant: tenant.clone(),
            key: tenant.clone(),
            payload,
            points: samples.len(),
            reason: Some(reason),
            origin: None,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn join_points(
        &mut self,
        tenant: &Arc<str>,
        labels: &Arc<Vec<Label>>,
        identifiers: &Identifiers,
        targets: &[Target],
        points: Vec<Point>,
        origin: Origin,
        now_ms: i64,
        outputs: &mut Vec<Output>,
    ) {
        let mut groups: Vec<BoundGroup> = Vec::new();
        let mut late = Vec::new();
        for point in points {
            let timestamp = point.timestamp();
            if self.newest_sample_ms != i64::MIN
                && timestamp < self.newest_sample_ms - self.settings.history_ms
            {
                late.push(point);
                continue;
            }
            self.newest_sample_ms = self.newest_sample_ms.max(timestamp);
            let bound = self.bind_to_targets(targets, &point);
            if bound.is_empty() {
                self.hold(
                    PendingSample {
                        tenant: tenant.clone(),
                        labels: labels.clone(),
                        identifiers: identifiers.clone(),
                        point,
                        origin,
                        deadline_ms: now_ms + self.settings.pending_grace_ms,
                    },
                    outputs,
                );
                continue;
            }
            self.stats.bound_points += 1;
            for group in bound {
                match groups
                    .iter_mut()
                    .find(|g| g.component.external_id == group.component.external_id)
                {
                    Some(existing) => {
                        existing.samples.extend(group.samples);
                        existing.histograms.extend(group.histograms);
                    }
                    None => groups.push(group),
                }
            }
        }
        if !late.is_empty() {
            let detail = format!("older than the {} ms history", self.settings.history_ms);
            self.emit_unbound(
                tenant,
                labels,
                UnboundReason::Late,
                &detail,
                late,
                None,
                outputs,
            );
        }
        self.emit_bound(tenant, labels, groups, None, outputs);
    }

    /// The resolved components `point` binds to, one group each (holding just this point).
    fn bind_to_targets(&self, targets: &[Target], point: &Point) -> Vec<BoundGroup> {
        let mut groups = Vec::new();
        for target in targets {
            let Some(component) = version_at(
                &target.versions,
                &target.identifier,
                point.timestamp(),
                self.settings.as_of,
            ) else {
                continue;
            };
            let (samples, histograms) = match point {
                Point::Sample(sample) => (vec![*sample], Vec::new()),
                Point::Histogram(histogram) => (Vec::new(), vec![(**histogram).clone()]),
            };
            groups.push(BoundGroup {
                component: component.clone(),
                identifier: target.identifier.clone(),
                rule: target.rule,
                samples,
                histograms,
            });
        }
        groups
    }

    /// The components `point` binds to now, one group each (holding just this point).
    fn bind_point(
        &self,
        tenant: &str,
        identifiers: &Identifiers,
        point: &Point,
    ) -> Vec<BoundGroup> {
        let mut groups: Vec<BoundGroup> = Vec::new();
        for (rule, identifier) in identifiers.iter() {
            for (_, component) in
                self.index
                    .resolve(tenant, identifier, point.timestamp(), self.settings.as_of)
            {
                if groups
                    .iter()
                    .any(|g| g.component.external_id == component.external_id)
                {
                    continue;
                }
                let (samples, histograms) = match point {
                    Point::Sample(sample) => (vec![*sample], Vec::new()),
                    Point::Histogram(histogram) => (Vec::new(), vec![(**histogram).clone()]),
                };
                groups.push(BoundGroup {
                    component: component.clone(),
                    identifier: identifier.clone(),
                    rule: *rule,
                    samples,
                    histograms,
                });
            }
        }
        groups
    }

    fn hold(&mut self, sample: PendingSample, outputs: &mut Vec<Output>) {
        while self.pending.entries.len() >= self.settings.pending_max_samples.max(1) {
            let Some(oldest) = self.pending.oldest() else {
                break;
            };
            let evicted = self.pending.remove(oldest).expect("present");
            let origin = Some(evicted.origin);
            self.emit_unbound(
                &evicted.tenant,
                &evicted.labels,
                UnboundReason::NoComponent,
                "pending buffer full",
                vec![evicted.point],
                origin,
                outputs,
            );
        }
        self.pending.push(sample);
    }

    /// Samples whose grace ran out without a component go to `metrics.unbound`.
    pub fn expire_pending(&mut self, now_ms: i64) -> Vec<Output> {
        let mut outputs = Vec::new();
        while let Some(oldest) = self.pending.oldest() {
            if self.pending.entries[&oldest].deadline_ms > now_ms {
                break;
            }
            let expired = self.pending.remove(oldest).expect("present");
            let detail = format!(
                "no component carries {}",
                expired
                    .identifiers
                    .iter()
                    .map(|(_, id)| id.as_str())
                    .collect::<Vec<_>>()
                    .join(" or ")
            );
            let origin = Some(expired.origin);
            self.emit_unbound(
                &expired.tenant,
                &expired.labels,
                UnboundReason::NoComponent,
                &detail,
                vec![expired.point],
                origin,
                &mut outputs,
            );
        }
        outputs
    }

    /// Per partition, the oldest offset with a sample still waiting.
    pub fn pending_floor(&self) -> BTreeMap<i32, i64> {
        let mut floor = BTreeMap::new();
        for origin in self.pending.origins.keys() {
            floor.entry(origin.partition).or_insert(origin.offset);
        }
        floor
    }

    /// Drops waiting samples of partitions this member no longer owns: the new
    /// owner reads them again from the committed offset.
    pub fn forget_partitions(&mut self, partitions: &[i32]) {
        let sequences: Vec<u64> = self
            .pending
            .entries
            .iter()
            .filter(|(_, e)| partitions.contains(&e.origin.partition))
            .map(|(s, _)| *s)
            .collect();
        for sequence in sequences {
            self.pending.remove(sequence);
        }
    }

    /// What the cache holds for the series whose labels encode as `key`.
    /// `generation`: the tenant's in the index (looked up once per record).
    fn cached(&self, tenant: &str, key: &[u8], generation: u64) -> Cached {
        match self.series_cache.get(tenant, key) {
            Some(entry) if entry.generation == generation => {
                Cached::Fresh(entry.render.clone(), entry.targets.clone())
            }
            Some(entry) => Cached::Stale(entry.render.clone()),
            None => Cached::Missing,
        }
    }

    /// Resolves a rendered series against the index now and caches it.
    fn resolve_and_cache(
        &mut self,
        tenant: &Arc<str>,
        key: &[u8],
        render: CachedRender,
    ) -> (CachedRender, Arc<Vec<Target>>) {
        let targets = Arc::new(match &render {
            CachedRender::Identifiers(identifiers) => self.resolve_targets(tenant, identifiers),
            CachedRender::Unbound(..) => Vec::new(),
        });
        self.stats.series_resolved += 1;
        let entry = SeriesEntry {
            render: render.clone(),
            generation: self.index.generation_of(tenant),
            targets: targets.clone(),
        };
        self.series_cache
            .insert(tenant, key, entry, self.settings.series_cache_max);
        (render, targets)
    }

    /// The series' rendered rules and the components they resolve to now,
    /// from the cache when the index has not changed since.
    fn lookup(
        &mut self,
        tenant: &Arc<str>,
        labels: &[(&str, &str)],
    ) -> (CachedRender, Arc<Vec<Target>>) {
        let mut key = Vec::new();
        series_key_of(labels, &mut key);
        let render = match self.cached(tenant, &key, self.index.generation_of(tenant)) {
            Cached::Fresh(render, targets) => return (render, targets),
            Cached::Stale(render) => render,
            Cached::Missing => {
                self.stats.series_cache_misses += 1;
                self.render_labels(labels)
            }
        };
        self.resolve_and_cache(tenant, &key, render)
    }

    fn render_labels(&self, labels: &[(&str, &str)]) -> CachedRender {
        match self.bindings.render(labels) {
            Rendered::Identifiers(identifiers) => CachedRender::Identifiers(Arc::new(identifiers)),
            Rendered::MissingLabel { rule, label } => {
                let detail = format!(
                    "rule {} needs label {label}",
                    self.bindings.rules()[rule].name()
                );
                CachedRender::Unbound(UnboundReason::MissingLabel, Arc::from(detail))
            }
            Rendered::NoRule => CachedRender::Unbound(
                UnboundReason::NoRule,
                Arc::from("no binding rule uses these labels"),
            ),
        }
    }

    /// Every component carrying one of the identifiers (first identifier wins
    /// for a component reached twice), with its `component` field encoded.
    fn resolve_targets(&self, tenant: &str, identifiers: &[(usize, String)]) -> Vec<Target> {
        let mut targets: Vec<Target> = Vec::new();
        for (rule, identifier) in identifiers {
            for (_, versions) in self.index.candidates(tenant, identifier) {
                let Some(latest) = versions.last() else {
                    continue;
                };
                let external_id = &*latest.component.external_id;
                let record_key = bound_key(tenant, external_id);
                if targets.iter().any(|t| *t.key == *record_key) {
                    continue;
                }
                let as_of = self.settings.as_of;
                let binds_during = versions
                    .iter()
                    .filter(|v| v.component.carries(identifier))
                    .map(|v| {
                        (
                            v.valid_from_ms.saturating_sub(as_of.skew_ms),
                            v.valid_to_ms
                                .map_or(i64::MAX, |end| end.saturating_add(as_of.delete_grace_ms)),
                        )
                    })
                    .collect();
                let component = BoundComponent {
                    external_id: external_id.to_string(),
                    type_name: latest.component.type_name.to_string(),
                    name: latest.component.name.to_string(),
                    identifier: identifier.clone(),
                    rule: self.bindings.rules()[*rule].name().to_string(),
                };
                let mut component_field = Vec::new();
                wire::put_len_field(&mut component_field, 2, &component.encode_to_vec());
                targets.push(Target {
                    key: Arc::from(record_key),
                    identifier: identifier.clone(),
                    rule: *rule,
                    versions: versions.clone(),
                    binds_during,
                    component_field,
                });
            }
        }
        targets
    }

    fn emit_bound(
        &mut self,
        tenant: &str,
        labels: &[Label],
        groups: Vec<BoundGroup>,
        origin: Option<Origin>,
        outputs: &mut Vec<Output>,
    ) {
        for group in groups {
            let points = group.samples.len() + group.histograms.len();
            let series = BoundSeries {
                tenant: tenant.to_string(),
                component: Some(BoundComponent {
                    external_id: group.component.external_id.to_string(),
                    type_name: group.component.type_name.to_string(),
                    name: group.component.name.to_string(),
                    identifier: group.identifier,
                    rule: self.bindings.rules()[group.rule].name().to_string(),
                }),
                labels: labels.to_vec(),
                samples: group.samples,
                histograms: group.histograms,
            };
            outputs.push(Output {
                destination: Destination::Bound,
                tenant: Arc::from(tenant),
                key: Arc::from(bound_key(tenant, &group.component.external_id)),
                payload: output::encode_bound(&series, self.settings.encoding),
                points,
                reason: None,
                origin,
            });
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn emit_unbound(
        &mut self,
        tenant: &str,
        labels: &[Label],
        reason: UnboundReason,
        detail: &str,
        points: Vec<Point>,
        origin: Option<Origin>,
        outputs: &mut Vec<Output>,
    ) {
        let mut samples = Vec::new();
        let mut histograms = Vec::new();
        for point in points {
            match point {
                Point::Sample(sample) => samples.push(sample),
                Point::Histogram(histogram) => histograms.push(*histogram),
            }
        }
        let count = samples.len() + histograms.len();
        *self
            .stats
            .unbound_points
            .entry(output::reason_name(reason))
            .or_default() += count as u64;
        let series = UnboundSeries {
            tenant: tenant.to_string(),
            reason: reason as i32,
            detail: detail.to_string(),
            labels: labels.to_vec(),
            samples,
            histograms,
        };
        outputs.push(Output {
            destination: Destination::Unbound,
            tenant: Arc::from(tenant),
            key: Arc::from(tenant),
            payload: output::encode_unbound(&series, self.settings.encoding),
            points: count,
            reason: Some(reason),
            origin,
        });
    }
}

fn read_label(label: &[u8]) -> Result<(&str, &str), JoinError> {
    let (mut name, mut value): (&[u8], &[u8]) = (&[], &[]);
    for field in Fields::new(label) {
        let field = field?;
        match field.number {
            1 => name = field.bytes()?,
            2 => value = field.bytes()?,
            _ => {}
        }
    }
    let name = std::str::from_utf8(name).map_err(|_| JoinError::Utf8)?;
    let value = std::str::from_utf8(value).map_err(|_| JoinError::Utf8)?;
    Ok((name, value))
}

fn read_labels<'a>(label_fields: &[&'a [u8]]) -> Result<Vec<(&'a str, &'a str)>, JoinError> {
    label_fields.iter().map(|label| read_label(label)).collect()
}

/// The timestamp of an encoded `Sample` (field 2), without the value.
fn sample_timestamp(sample: &[u8]) -> Result<i64, JoinError> {
    let mut timestamp = 0;
    for field in Fields::new(sample) {
        let field = field?;
        match field.number {
            1 => {
                field.fixed64()?;
            }
            2 => timestamp = field.varint()? as i64,
            _ => {}
        }
    }
    Ok(timestamp)
}

fn read_sample(sample: &[u8]) -> Result<Sample, JoinError> {
    let mut parsed = Sample::default();
    for field in Fields::new(sample) {
        let field = field?;
        match field.number {
            1 => parsed.value = f64::from_bits(field.fixed64()?),
            2 => parsed.timestamp = field.varint()? as i64,
            _ => {}
        }
    }
    Ok(parsed)
}

type DecodedSeries = (Vec<Label>, Vec<Sample>, Vec<Histogram>);

/// The series of a record, whichever remote-write version it holds.
fn decode_series(content_type: &str, payload: &[u8]) -> Result<Vec<DecodedSeries>, JoinError> {
    if content_type == proto::CONTENT_TYPE_V2 {
        let request = v2::Request::decode(payload)?;
        let symbol = |reference: u32| {
            request
                .symbols
                .get(reference as usize)
                .cloned()
                .ok_or(JoinError::Symbol(reference))
        };
        let mut out = Vec::with_capacity(request.timeseries.len());
        for series in &request.timeseries {
            let mut labels = Vec::with_capacity(series.labels_refs.len() / 2);
            for pair in series.labels_refs.chunks_exact(2) {
                labels.push(Label {
                    name: symbol(pair[0])?,
                    value: symbol(pair[1])?,
                });
            }
            let samples = series
                .samples
                .iter()
                .map(|s| Sample {
                    value: s.value,
                    timestamp: s.timestamp,
                })
                .collect();
            let mut histograms = Vec::with_capacity(series.histograms.len());
            for histogram in &series.histograms {
                // Fields 1 to 16 are the same in both versions.
                histograms.push(Histogram::decode(histogram.encode_to_vec().as_slice())?);
            }
            out.push((labels, samples, histograms));
        }
        return Ok(out);
    }
    if content_type == proto::CONTENT_TYPE_V1 || content_type == "application/x-protobuf" {
        let request = WriteRequest::decode(payload)?;
        return Ok(request
            .timeseries
            .into_iter()
            .map(|ts| (ts.labels, ts.samples, ts.histograms))
            .collect());
    }
    Err(JoinError::ContentType(content_type.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::prometheus::TimeSeries;
    use proto::records::Component;

    fn settings() -> JoinSettings {
        JoinSettings {
            as_of: AsOf {
                skew_ms: 1_000,
                delete_grace_ms: 2_000,
            },
            history_ms: 60_000,
            pending_grace_ms: 5_000,
            pending_max_samples: 100,
            series_cache_max: 1_000,
            encoding: OutputEncoding::Protobuf,
        }
    }

    fn label(name: &str, value: &str) -> Label {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }

    fn record(pod: &str, timestamp: i64) -> Vec<u8> {
        let labels = vec![
            label("__name__", "node_load1"),
            label("cluster_name", "demo"),
            label("container", "exporter"),
            label("namespace", "monitoring"),
            label("pod", pod),
        ];
        WriteRequest {
            timeseries: vec![TimeSeries {
                labels,
                samples: vec![Sample {
                    value: 1.0,
                    timestamp,
                }],
                ..Default::default()
            }],
            metadata: vec![],
        }
        .encode_to_vec()
    }

    fn component(external_id: &str, kind: &str, first_seen_ms: i64) -> Component {
        Component {
            tenant: "acme".into(),
            external_id: external_id.into(),
            type_name: kind.into(),
            identifiers: vec![external_id.into()],
            first_seen_ms,
            ..Default::default()
        }
    }

    const POD: &str = "urn:kubernetes:/demo:monitoring:pod/p1";
    const CONTAINER: &str = "urn:kubernetes:/demo:monitoring:pod/p1:container/exporter";
    const ORIGIN: Origin = Origin {
        partition: 0,
        offset: 7,
    };

    fn join(joiner: &mut Joiner, pod: &str, timestamp: i64, now: i64) -> Vec<Output> {
        joiner
            .process(
                "acme",
                proto::CONTENT_TYPE_V1,
                &record(pod, timestamp),
                ORIGIN,
                now,
            )
            .unwrap()
    }

    fn bound_ids(outputs: &[Output]) -> Vec<String> {
        outputs
            .iter()
            .filter(|o| o.destination == Destination::Bound)
            .map(|o| {
                BoundSeries::decode(o.payload.as_slice())
                    .unwrap()
                    .component
                    .unwrap()
                    .external_id
            })
            .collect()
    }

    #[test]
    fn a_series_binds_to_every_component_carrying_a_rendered_identifier() {
        let mut joiner = Joiner::new(Bindings::kubernetes_defaults(), settings());
        joiner.upsert_component(&format!("acme/k/demo/{POD}"), component(POD, "pod", 0));
        joiner.upsert_component(
            &format!("acme/k/demo/{CONTAINER}"),
            component(CONTAINER, "container", 0),
        );
        assert!(joiner.release_pending().is_empty());
        let outputs = join(&mut joiner, "p1", 10_000, 0);
        assert_eq!(bound_ids(&outputs), [CONTAINER, POD]);
        assert_eq!(&*outputs[0].key, format!("acme/{CONTAINER}"));
        let bound = BoundSeries::decode(outputs[1].payload.as_slice()).unwrap();
        assert_eq!(bound.component.unwrap().rule, "k8s-pod");
        assert_eq!(
            bound.samples,
            vec![Sample {
                value: 1.0,
                timestamp: 10_000
            }]
        );
    }

    #[test]
    fn the_series_cache_never_binds_across_tenants() {
        let mut joiner = Joiner::new(Bindings::kubernetes_defaults(), settings());
        joiner.upsert_component(&format!("acme/k/demo/{POD}"), component(POD, "pod", 0));
        joiner.release_pending();
        assert_eq!(bound_ids(&join(&mut joiner, "p1", 10_000, 0)), [POD]);
        // acme's resolution of these exact label bytes is cached; globex sends the same bytes.
        assert_eq!(joiner.cached_series(), 1);
        let outputs = joiner
            .process(
                "globex",
                proto::CONTENT_TYPE_V1,
                &record("p1", 10_000),
                ORIGIN,
                0,
            )
            .unwrap();
        assert!(
            outputs.is_empty(),
            "globex has no component: its sample waits, never binds to acme's"
        );
        let expired = joiner.expire_pending(6_000);
        assert_eq!(expired.len(), 1);
        let unbound = UnboundSeries::decode(expired[0].payload.as_slice()).unwrap();
        assert_eq!(unbound.tenant, "globex");
        assert_eq!(unbound.reason(), UnboundReason::NoComponent);
    }

    #[test]
    fn another_tenants_topology_change_leaves_cached_series_fresh() {
        let mut joiner = Joiner::new(Bindings::kubernetes_defaults(), settings());
        joiner.upsert_component(&format!("acme/k/demo/{POD}"), component(POD, "pod", 0));
        joiner.release_pending();
        assert_eq!(bound_ids(&join(&mut joiner, "p1", 10_000, 0)), [POD]);
        assert_eq!(joiner.stats.series_resolved, 1);
        let mut other = component(POD, "pod", 0);
        other.tenant = "globex".into();
        joiner.upsert_component(&format!("globex/k/demo/{POD}"), other);
        joiner.delete_component("globex/k/demo/gone", 0);
        joiner.release_pending();
        assert_eq!(bound_ids(&join(&mut joiner, "p1", 11_000, 0)), [POD]);
        assert_eq!(
            joiner.stats.series_resolved, 1,
            "globex's change: still fresh"
        );
        joiner.upsert_component(
            &format!("acme/k/demo/{CONTAINER}"),
            component(CONTAINER, "container", 0),
        );
        joiner.release_pending();
        assert_eq!(
            bound_ids(&join(&mut joiner, "p1", 12_000, 0)),
            [CONTAINER, POD]
        );
        assert_eq!(
            joiner.stats.series_resolved, 2,
            "acme's change: resolved again"
        );
        joiner.delete_component(&format!("acme/k/demo/{CONTAINER}"), 12_500);
        join(&mut joiner, "p1", 13_000, 0);
        assert_eq!(
            joiner.stats.series_resolved, 3,
            "acme's deletion: resolved again"
        );
    }

    #[test]
    fn bound_keys_escape_the_tenant_only() {
        assert_eq!(bound_key("acme", POD), format!("acme/{POD}"));
        assert_eq!(bound_key("a/b", "c"), "a%2Fb/c");
        assert_ne!(bound_key("a/b", "c"), bound_key("a", "b/c"));
    }

    #[test]
    fn early_samples_wait_for_their_component_or_leave_after_the_grace() {
        let mut joiner = Joiner::new(Bindings::kubernetes_defaults(), settings());
        assert!(join(&mut joiner, "p1", 10_000, 0).is_empty(), "held");
        assert_eq!(joiner.pending_floor(), BTreeMap::from([(0, 7)]));
        // Pod and container arrive in one batch: the waiting sample binds to both.
        joiner.upsert_component("key-pod", component(POD, "pod", 10_500));
        joiner.upsert_component("key-container", component(CONTAINER, "container", 10_500));
        assert_eq!(bound_ids(&joiner.release_pending()), [CONTAINER, POD]);
        assert!(joiner.pending_floor().is_empty());

        assert!(join(&mut joiner, "p2", 10_000, 0).is_empty(), "held");
        let expired = joiner.expire_pending(6_000);
        assert_eq!(expired.len(), 1);
        let unbound = UnboundSeries::decode(expired[0].payload.as_slice()).unwrap();
        assert_eq!(unbound.reason(), UnboundReason::NoComponent);
    }

    #[test]
    fn deleted_components_stop_binding_after_the_grace_and_old_samples_are_late() {
        let mut joiner = Joiner::new(Bindings::kubernetes_defaults(), settings());
        joiner.upsert_component("key-pod", component(POD, "pod", 0));
        joiner.release_pending();
        joiner.delete_component("key-pod", 20_000);
        assert_eq!(
            bound_ids(&join(&mut joiner, "p1", 21_000, 0)),
            [POD],
            "within the delete grace"
        );
        assert!(
            join(&mut joiner, "p1", 23_000, 0).is_empty(),
            "after it: waits, then no_component"
        );
        assert_eq!(joiner.expire_pending(10_000).len(), 1);
        let late = join(&mut joiner, "p1", 23_000 - 61_000, 0);
        let unbound = UnboundSeries::decode(late[0].payload.as_slice()).unwrap();
        assert_eq!(unbound.reason(), UnboundReason::Late);
    }

    #[test]
    fn series_without_the_labels_go_unbound_with_the_reason() {
        let mut joiner = Joiner::new(Bindings::kubernetes_defaults(), settings());
        let request = WriteRequest {
            timeseries: vec![
                TimeSeries {
                    labels: vec![label("__name__", "up"), label("cluster_name", "demo")],
                    samples: vec![Sample::default()],
                    ..Default::default()
                },
                TimeSeries {
                    labels: vec![label("__name__", "up"), label("job", "x")],
                    samples: vec![Sample::default()],
                    ..Default::default()
                },
            ],
            metadata: vec![],
        };
        let outputs = joiner
            .process(
                "acme",
                proto::CONTENT_TYPE_V1,
                &request.encode_to_vec(),
                ORIGIN,
                0,
            )
            .unwrap();
        let reasons: Vec<UnboundReason> = outputs
            .iter()
            .map(|o| {
                UnboundSeries::decode(o.payload.as_slice())
                    .unwrap()
                    .reason()
            })
            .collect();
        assert_eq!(
            reasons,
            [UnboundReason::MissingLabel, UnboundReason::NoRule]
        );
        assert!(
            joiner
                .process("acme", "text/plain", b"x", ORIGIN, 0)
                .is_err()
        );
    }

    #[test]
    fn the_borrowing_path_writes_what_the_general_path_writes() {
        let mut joiner = Joiner::new(Bindings::kubernetes_defaults(), settings());
        joiner.upsert_component("key-pod", component(POD, "pod", 0));
        joiner.upsert_component("key-container", component(CONTAINER, "container", 0));
        joiner.release_pending();
        // The same series as remote-write 1.0 (borrowing path) and 2.0 (general path).
        let v1 = record("p1", 10_000);
        let request = WriteRequest::decode(v1.as_slice()).unwrap();
        let mut symbols = vec![String::new()];
        let mut labels_refs = Vec::new();
        for label in &request.timeseries[0].labels {
            for text in [&label.name, &label.value] {
                symbols.push(text.clone());
                labels_refs.push(symbols.len() as u32 - 1);
            }
        }
        let v2_record = v2::Request {
            symbols,
            timeseries: vec![v2::TimeSeries {
                labels_refs,
                samples: vec![v2::Sample {
                    value: 1.0,
                    timestamp: 10_000,
                    start_timestamp: 0,
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec();
        let borrowed = joiner
            .process("acme", proto::CONTENT_TYPE_V1, &v1, ORIGIN, 0)
            .unwrap();
        let general = joiner
            .process("acme", proto::CONTENT_TYPE_V2, &v2_record, ORIGIN, 0)
            .unwrap();
        assert_eq!(borrowed.len(), 2);
        for (a, b) in borrowed.iter().zip(&general) {
            assert_eq!(a.key, b.key);
            assert_eq!(
                BoundSeries::decode(a.payload.as_slice()).unwrap(),
                BoundSeries::decode(b.payload.as_slice()).unwrap()
            );
        }
        // And for a series that does not bind.
        let unbound_v1 = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![label("__name__", "up"), label("cluster_name", "demo")],
                samples: vec![Sample {
                    value: 2.0,
                    timestamp: 10_000,
                }],
                ..Default::default()
            }],
            metadata: vec![],
        };
        let borrowed = joiner
            .process(
                "acme",
                proto::CONTENT_TYPE_V1,
                &unbound_v1.encode_to_vec(),
                ORIGIN,
                0,
            )
            .unwrap();
        let expected = UnboundSeries {
            tenant: "acme".into(),
            reason: UnboundReason::MissingLabel as i32,
            detail: "rule k8s-container needs label namespace".into(),
            labels: unbound_v1.timeseries[0].labels.clone(),
            samples: unbound_v1.timeseries[0].samples.clone(),
            histograms: vec![],
        };
        assert_eq!(
            UnboundSeries::decode(borrowed[0].payload.as_slice()).unwrap(),
            expected
        );
    }

    #[test]
    fn the_pending_buffer_is_bounded() {
        let mut joiner = Joiner::new(
            Bindings::kubernetes_defaults(),
            JoinSettings {
                pending_max_samples: 2,
                ..settings()
            },
        );
        join(&mut joiner, "a", 1_000, 0);
        join(&mut joiner, "b", 1_000, 0);
        let evicted = join(&mut joiner, "c", 1_000, 0);
        assert_eq!(
            evicted.len(),
            1,
            "the oldest waiting sample leaves as no_component"
        );
        assert!(joiner.pending_samples() <= 2);
    }
}
