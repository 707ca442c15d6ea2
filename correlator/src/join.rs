//! The join's pure core: a `metrics.samples` record in, `metrics.bound` and
//! `metrics.unbound` records out, each a remote-write 2.0 request
//! ([`crate::batch`]): one per component that some of the record's series
//! bind to, and one per unbound reason.
//!
//! Each series' labels are rendered through the binding rules once and cached
//! (rules depend on labels only, so topology changes never stale the cache);
//! the rendered identifiers are resolved against the topology index as of each
//! sample's timestamp, on every sample. A sample whose identifiers resolve to
//! nothing yet waits in a bounded pending buffer until a component arrives or
//! its grace runs out.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Arc;

use hashbrown::HashTable;
use proto::fields::{prometheus as v1, v2};
use proto::records::UnboundReason;
use proto::wire::{self, Field, Fields, Value, WireError, read_varint};
use thiserror::Error;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::batch::{ExemplarRef, Interner, PointBytes, Remap, RequestWriter, SeriesMetadata};
use crate::bindings::{Bindings, Rendered};
use crate::index::{AsOf, IndexedComponent, TopologyIndex, Versions};
use crate::output::{self, OutputEncoding};

pub use proto::OutputLabels;

#[derive(Debug, Clone)]
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
    /// Most remote-write 1.0 metric families whose metadata is remembered.
    pub metadata_families_max: usize,
    pub encoding: OutputEncoding,
    pub labels: OutputLabels,
}

impl Default for JoinSettings {
    /// The service's defaults (`correlator --help` lists them).
    fn default() -> JoinSettings {
        JoinSettings {
            as_of: AsOf {
                skew_ms: 60_000,
                delete_grace_ms: 120_000,
            },
            history_ms: 1_800_000,
            pending_grace_ms: 120_000,
            pending_max_samples: 1_000_000,
            series_cache_max: 2_000_000,
            metadata_families_max: 100_000,
            encoding: OutputEncoding::Protobuf,
            labels: OutputLabels::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    Bound,
    Unbound,
}

/// The component a bound record is for, also sent as its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentHeaders {
    pub external_id: Arc<str>,
    pub type_name: Arc<str>,
    pub rule: Arc<str>,
}

/// One record to produce: a remote-write 2.0 request (or its JSON form).
#[derive(Debug, Clone)]
pub struct Output {
    pub destination: Destination,
    /// The tenant, also sent as the record's `tenant` header.
    pub tenant: Arc<str>,
    pub key: Arc<str>,
    pub payload: Vec<u8>,
    /// Samples and histograms it carries, for metrics.
    pub points: usize,
    /// Series it carries.
    pub series: usize,
    pub reason: Option<UnboundReason>,
    pub component: Option<ComponentHeaders>,
    /// For samples that waited: where they were read, so their offsets are
    /// held back until this output is acknowledged.
    pub origins: Vec<Origin>,
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
    #[error("unknown content type {0:?}")]
    ContentType(String),
    #[error("symbol reference {0} out of range")]
    Symbol(u64),
    #[error("the first symbol of a remote-write 2.0 record is not empty")]
    FirstSymbol,
    #[error("record is not a remote-write message: {0}")]
    Wire(#[from] WireError),
    #[error("label or symbol is not UTF-8")]
    Utf8,
    #[error("a label name without a value")]
    OddLabels,
}

type Identifiers = Arc<Vec<(usize, String)>>;

#[derive(Clone)]
enum CachedRender {
    Identifiers(Identifiers),
    Unbound(UnboundReason, Arc<str>),
}

/// A component a series binds to, as resolved at one index generation.
struct Target {
    /// The `metrics.bound` record key, `tenant/externalId`.
    key: Arc<str>,
    /// The index's versions of the component: the same allocation for every
    /// series of a record, so it tells the record's components apart cheaply.
    versions: Versions,
    /// When a sample binds to it: the `[from, to)` timestamps of the versions
    /// carrying the identifier, skew and delete grace applied, so the per-sample
    /// check compares numbers only.
    binds_during: Vec<(i64, i64)>,
    /// The rule that reached it (an index of the bindings' rules).
    rule: usize,
    component: ComponentHeaders,
    name: Arc<str>,
}

impl Target {
    fn binds_at(&self, timestamp_ms: i64) -> bool {
        self.binds_during
            .iter()
            .any(|(from, to)| timestamp_ms >= *from && timestamp_ms < *to)
    }
}

/// A remote-write 1.0 metric family's metadata, from a metadata entry.
#[derive(Debug, PartialEq, Eq)]
struct FamilyMetadata {
    kind: i32,
    help: Box<str>,
    unit: Box<str>,
}

/// What the join keeps per series: its rendered rules (labels only, never
/// stale), their resolution (stale once the index changes) and, for 1.0,
/// its family's metadata (stale once any metadata changes).
struct SeriesEntry {
    render: CachedRender,
    generation: u64,
    targets: Arc<Vec<Target>>,
    /// Its labels as interner ids, sorted by name, and its name's id.
    labels: Arc<[(u32, u32)]>,
    name: u32,
    family: Option<Arc<FamilyMetadata>>,
    family_generation: u64,
}

/// The series cache, every tenant's in one table, keyed by the tenant and the
/// exact bytes of a series' labels as remote-write 1.0 encodes them (each
/// label a `TimeSeries.labels` field). Exact keys mean no hash collision can
/// hand a series another's binding. A series encoded two ways gets two
/// entries, both right.
///
/// The table holds only indices; the series and their keys are kept in the
/// order they were first seen. A lookup so touches a table small enough for
/// the CPU caches, then memory laid out as a record's series arrive, rather
/// than a wide bucket anywhere in a table of tens of megabytes.
#[derive(Default)]
struct SeriesCache {
    table: HashTable<u32>,
    series: Vec<CachedSeries>,
    /// The keys of `series`, one after the other.
    keys: Vec<u8>,
    seed: Seed,
}

struct CachedSeries {
    hash: u64,
    tenant: Arc<str>,
    key: Range<usize>,
    entry: SeriesEntry,
}

impl SeriesCache {
    fn hash(&self, tenant: &str, key: &[u8]) -> u64 {
        xxh3_64_with_seed(key, xxh3_64_with_seed(tenant.as_bytes(), self.seed.0))
    }

    fn find(&self, hash: u64, tenant: &str, key: &[u8]) -> Option<usize> {
        let SeriesCache {
            table,
            series,
            keys,
            ..
        } = self;
        let found = table.find(hash, |&index| {
            let cached = &series[index as usize];
            cached.hash == hash && keys[cached.key.clone()] == *key && *cached.tenant == *tenant
        });
        found.map(|index| *index as usize)
    }

    fn entries(&self) -> usize {
        self.series.len()
    }

    fn clear(&mut self) {
        self.table.clear();
        self.series.clear();
        self.keys.clear();
    }

    /// The hash of a series, for [`Self::insert_new`], and where it is
    /// cached, if it is.
    fn lookup(&self, tenant: &str, key: &[u8]) -> (u64, Option<usize>) {
        let hash = self.hash(tenant, key);
        (hash, self.find(hash, tenant, key))
    }

    fn entry_mut(&mut self, index: usize) -> &mut SeriesEntry {
        &mut self.series[index].entry
    }

    /// Caches a series that [`Self::lookup`] did not find, `hash` its hash there.
    fn insert_new(
        &mut self,
        hash: u64,
        tenant: &Arc<str>,
        key: &[u8],
        entry: SeriesEntry,
        max_entries: usize,
    ) {
        if self.series.len() >= max_entries.max(1) {
            // Cheap and bounded: start over rather than track recency per series.
            self.clear();
        }
        let start = self.keys.len();
        self.keys.extend_from_slice(key);
        let index = self.series.len() as u32;
        self.series.push(CachedSeries {
            hash,
            tenant: tenant.clone(),
            key: start..self.keys.len(),
            entry,
        });
        let series = &self.series;
        self.table
            .insert_unique(hash, index, |&index| series[index as usize].hash);
    }
}

/// The per-process seed of the series cache's hash.
#[derive(Clone, Copy)]
struct Seed(u64);

impl Default for Seed {
    fn default() -> Seed {
        Seed(crate::index::random_seed())
    }
}

/// The metadata of remote-write 1.0 metric families, per tenant: 1.0 senders
/// send it in requests of their own, so the join remembers it.
#[derive(Default)]
struct MetadataCache {
    by_tenant: HashMap<Arc<str>, HashMap<Box<str>, Arc<FamilyMetadata>>>,
    entries: usize,
    /// Bumped on every change, so cached series look theirs up again.
    generation: u64,
}

/// Suffixes of series names whose family is named without them.
const FAMILY_SUFFIXES: [&str; 8] = [
    "_bucket", "_sum", "_count", "_total", "_created", "_info", "_gsum", "_gcount",
];

impl MetadataCache {
    fn remember(&mut self, tenant: &Arc<str>, family: &str, metadata: FamilyMetadata, max: usize) {
        if let Some(known) = self.by_tenant.get(tenant).and_then(|f| f.get(family))
            && **known == metadata
        {
            return;
        }
        if self.entries >= max.max(1) {
            self.by_tenant.clear();
            self.entries = 0;
        }
        let families = self.by_tenant.entry(tenant.clone()).or_default();
        if families.insert(family.into(), Arc::new(metadata)).is_none() {
            self.entries += 1;
        }
        self.generation += 1;
    }

    fn lookup(&self, tenant: &str, name: &str) -> Option<Arc<FamilyMetadata>> {
        let families = self.by_tenant.get(tenant)?;
        if let Some(found) = families.get(name) {
            return Some(found.clone());
        }
        FAMILY_SUFFIXES
            .iter()
            .filter_map(|suffix| name.strip_suffix(suffix))
            .find_map(|family| families.get(family).cloned())
    }
}

/// A series of a record as the join resolved it: its rendering, its
/// components and its 1.0 family's metadata.
type Resolution = (CachedRender, Arc<Vec<Target>>, Option<Arc<FamilyMetadata>>);

/// A series as the cache knows it: rendering, components, labels (interner
/// ids, sorted by name) and the id of its name.
type KnownSeries = (
    CachedRender,
    Arc<Vec<Target>>,
    Arc<[(u32, u32)]>,
    Option<Arc<FamilyMetadata>>,
);

/// A component a waiting sample binds to, with the rule that reached it.
type Reached = (Arc<IndexedComponent>, usize);

/// (series, point) pairs of a record being written.
type Entries = Vec<(u32, u32)>;

/// A series of a waiting sample, shared by the samples of one record.
struct OwnedSeries {
    labels: Vec<(String, String)>,
    metadata: Option<(i32, String, String)>,
    created_timestamp: i64,
}

/// A waiting sample's point, owned.
type OwnedPoint = Point<Box<[u8]>, Vec<(String, String)>>;

struct PendingSample {
    tenant: Arc<str>,
    series: Arc<OwnedSeries>,
    identifiers: Identifiers,
    point: OwnedPoint,
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
    format!("{}/{external_id}", proto::keys::key_segment(tenant))
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

/// A point of a series: an encoded sample or histogram (bytes `B`), or an
/// exemplar (labels `L`).
#[derive(Debug, Clone)]
enum Point<B, L> {
    Sample {
        bytes: B,
        timestamp: i64,
    },
    Histogram {
        bytes: B,
        timestamp: i64,
    },
    Exemplar {
        labels: L,
        value: f64,
        timestamp: i64,
    },
}

impl<B, L> Point<B, L> {
    fn timestamp(&self) -> i64 {
        match self {
            Point::Sample { timestamp, .. }
            | Point::Histogram { timestamp, .. }
            | Point::Exemplar { timestamp, .. } => *timestamp,
        }
    }

    fn is_exemplar(&self) -> bool {
        matches!(self, Point::Exemplar { .. })
    }
}

/// A point of a decoded record, its bytes borrowed from the record and its
/// exemplar labels a range of the record's.
type InputPoint<'a> = Point<&'a [u8], Range<usize>>;

/// A series of a decoded record.
#[derive(Debug, Clone)]
struct InputSeries {
    /// Its (name, value) interner ids, a range of the record's label pairs, sorted by name.
    labels: Range<usize>,
    points: Range<usize>,
    /// Remote-write 2.0 metadata: type, help and unit as interner ids.
    metadata: Option<(i32, u32, u32)>,
    created_timestamp: i64,
}

/// A record's series and points, labels as interner ids, the rest borrowed
/// from the record (or, for waiting samples, from them).
struct RecordView<'a> {
    labels: Vec<(u32, u32)>,
    series: Vec<InputSeries>,
    points: Vec<InputPoint<'a>>,
    exemplar_labels: Vec<(&'a str, &'a str)>,
}

impl<'a> RecordView<'a> {
    fn new() -> RecordView<'a> {
        RecordView {
            labels: Vec::with_capacity(1024),
            series: Vec::with_capacity(256),
            points: Vec::with_capacity(256),
            exemplar_labels: Vec::new(),
        }
    }

    fn point_bytes(&self, index: usize) -> PointBytes<'_> {
        match &self.points[index] {
            Point::Sample { bytes, .. } => PointBytes::Sample(bytes),
            Point::Histogram { bytes, .. } => PointBytes::Histogram(bytes),
            Point::Exemplar {
                labels,
                value,
                timestamp,
            } => PointBytes::Exemplar(ExemplarRef {
                labels: &self.exemplar_labels[labels.clone()],
                value: *value,
                timestamp: *timestamp,
            }),
        }
    }

    /// A series' points, as the writer takes them.
    fn series_points<'s>(
        &'s self,
        entries: &'s [(u32, u32)],
    ) -> impl Iterator<Item = PointBytes<'s>> + 's {
        entries
            .iter()
            .map(move |(_, point)| self.point_bytes(*point as usize))
    }
}

/// `labels` sorted by name (senders and ingest sort them; others may not).
fn sort_labels(labels: &mut [(u32, u32)], interner: &Interner) {
    let sorted = labels
        .windows(2)
        .all(|pair| interner.get(pair[0].0) <= interner.get(pair[1].0));
    if !sorted {
        labels.sort_by(|a, b| interner.get(a.0).cmp(interner.get(b.0)));
    }
}

/// Appends a label's key bytes: a `TimeSeries.labels` field holding a `Label`.
fn put_key_label(keys: &mut Vec<u8>, name: &str, value: &str, scratch: &mut Vec<u8>) {
    scratch.clear();
    wire::put_len_field(scratch, v1::LABEL_NAME, name.as_bytes());
    wire::put_len_field(scratch, v1::LABEL_VALUE, value.as_bytes());
    wire::put_len_field(keys, v1::TIME_SERIES_LABELS, scratch);
}

/// A 1.0 exemplar: its labels (each a `Label`), value and timestamp.
fn read_v1_exemplar<'a>(
    exemplar: &'a [u8],
    labels: &mut Vec<(&'a str, &'a str)>,
) -> Result<(f64, i64), JoinError> {
    let (mut value, mut timestamp) = (0.0, 0);
    for part in Fields::new(exemplar) {
        let part = part?;
        match part.number {
            v1::EXEMPLAR_LABELS => labels.push(read_label(part.bytes()?)?),
            v1::EXEMPLAR_VALUE => value = f64::from_bits(part.fixed64()?),
            v1::EXEMPLAR_TIMESTAMP => timestamp = part.varint()? as i64,
            _ => {}
        }
    }
    Ok((value, timestamp))
}

/// Packed (as every sender writes them) or one unpacked reference per field.
fn read_refs(
    field: &Field<'_>,
    out: &mut Vec<u32>,
    reference: &dyn Fn(u64) -> Result<u32, JoinError>,
) -> Result<(), JoinError> {
    match &field.value {
        Value::Len(packed) => {
            let mut position = 0;
            while position < packed.len() {
                out.push(reference(read_varint(packed, &mut position)?)?);
            }
        }
        Value::Varint(single) => out.push(reference(*single)?),
        other => {
            return Err(JoinError::Wire(WireError::UnexpectedWireType {
                field: field.number,
                wire_type: other.wire_type(),
            }));
        }
    }
    Ok(())
}

/// A 2.0 record's symbols as the interner's ids, interned as first used.
struct SymbolIds<'a> {
    symbols: Vec<&'a str>,
    ids: Vec<u32>,
}

impl<'a> SymbolIds<'a> {
    fn id(&mut self, reference: u32, interner: &mut Interner) -> u32 {
        let slot = &mut self.ids[reference as usize];
        if *slot == u32::MAX {
            *slot = interner.intern(self.symbols[reference as usize]);
        }
        *slot
    }
}

/// A bound record being gathered: the target and the (series, point) pairs.
struct BoundGroup<'t> {
    target: &'t Target,
    entries: Vec<(u32, u32)>,
}

/// The unbound reasons, in the order their records are written.
const REASONS: [UnboundReason; 4] = [
    UnboundReason::NoRule,
    UnboundReason::MissingLabel,
    UnboundReason::NoComponent,
    UnboundReason::Late,
];

fn reason_slot(reason: UnboundReason) -> usize {
    REASONS.iter().position(|r| *r == reason).unwrap_or(2)
}

/// A series' metadata for the writer: 2.0's own, or its 1.0 family's.
fn metadata_of<'m>(
    series: &InputSeries,
    family: Option<&'m FamilyMetadata>,
) -> Option<SeriesMetadata<'m>> {
    if let Some((kind, help, unit)) = series.metadata {
        return Some(SeriesMetadata::Ids { kind, help, unit });
    }
    family.map(|family| SeriesMetadata::Text {
        kind: family.kind,
        help: &family.help,
        unit: &family.unit,
    })
}

/// Runs of equal series in `entries` (sorted by series).
fn series_runs(entries: &[(u32, u32)]) -> impl Iterator<Item = &[(u32, u32)]> {
    entries.chunk_by(|a, b| a.0 == b.0)
}

/// Samples and histograms among `entries`.
fn counted_points(record: &RecordView<'_>, entries: &[(u32, u32)]) -> usize {
    entries
        .iter()
        .filter(|(_, point)| !record.points[*point as usize].is_exemplar())
        .count()
}

/// The writer's added labels for a component.
fn component_labels<'l>(labels: &'l OutputLabels, target: &'l Target) -> [(&'l str, &'l str); 3] {
    [
        (labels.external_id.as_str(), &*target.component.external_id),
        (labels.component_type.as_str(), &*target.component.type_name),
        (labels.component_name.as_str(), &*target.name),
    ]
}

pub struct Joiner {
    bindings: Bindings,
    rule_names: Vec<Arc<str>>,
    index: TopologyIndex,
    series_cache: SeriesCache,
    /// The strings of the cached series' labels (and 2.0 metadata).
    interner: Interner,
    remap: Remap,
    metadata: MetadataCache,
    pending: PendingBuffer,
    newest_sample_ms: i64,
    touched_identifiers: Vec<String>,
    late_detail: Arc<str>,
    settings: JoinSettings,
    pub stats: JoinStats,
}

impl Joiner {
    pub fn new(bindings: Bindings, settings: JoinSettings) -> Joiner {
        let rule_names = bindings
            .rules()
            .iter()
            .map(|rule| Arc::from(rule.name()))
            .collect();
        Joiner {
            bindings,
            rule_names,
            index: TopologyIndex::default(),
            series_cache: SeriesCache::default(),
            interner: Interner::new(),
            remap: Remap::default(),
            metadata: MetadataCache::default(),
            pending: PendingBuffer::default(),
            newest_sample_ms: i64::MIN,
            touched_identifiers: Vec::new(),
            late_detail: Arc::from(format!("older than the {} ms history", settings.history_ms)),
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
        self.series_cache.entries()
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
        let tenant: Arc<str> = Arc::from(tenant);
        if self.interner.len() > self.settings.series_cache_max.max(1 << 16) * 4 {
            // Cached series hold interner ids: both start over together.
            self.interner.clear();
            self.series_cache.clear();
        }
        let mut record = RecordView::new();
        // Each series' rendering, its components and its family's metadata.
        let mut resolved: Vec<Resolution> = Vec::with_capacity(256);
        if content_type == proto::CONTENT_TYPE_V2 {
            self.decode_v2(&tenant, payload, &mut record, &mut resolved)?;
        } else if content_type == proto::CONTENT_TYPE_V1 || content_type == "application/x-protobuf"
        {
            self.decode_v1(&tenant, payload, &mut record, &mut resolved)?;
        } else {
            return Err(JoinError::ContentType(content_type.to_string()));
        }

        // Every point to its components, its reason, or the pending buffer.
        let mut groups: Vec<BoundGroup<'_>> = Vec::new();
        let mut group_of: HashMap<(usize, usize), usize, foldhash::fast::RandomState> =
            HashMap::default();
        let mut unbound: [Entries; 4] = Default::default();
        let mut held: Entries = Vec::new();
        for (index, series) in record.series.iter().enumerate() {
            let (render, targets, _) = &resolved[index];
            let series_index = index as u32;
            if let CachedRender::Unbound(reason, _) = render {
                let slot = reason_slot(*reason);
                for point in series.points.clone() {
                    unbound[slot].push((series_index, point as u32));
                }
                continue;
            }
            for point in series.points.clone() {
                let input = &record.points[point];
                let timestamp = input.timestamp();
                if self.newest_sample_ms != i64::MIN
                    && timestamp < self.newest_sample_ms - self.settings.history_ms
                {
                    unbound[reason_slot(UnboundReason::Late)].push((series_index, point as u32));
                    continue;
                }
                if !input.is_exemplar() {
                    self.newest_sample_ms = self.newest_sample_ms.max(timestamp);
                }
                let mut bound = false;
                for target in targets.iter() {
                    if !target.binds_at(timestamp) {
                        continue;
                    }
                    bound = true;
                    let identity = (
                        Arc::as_ptr(&target.versions) as *const () as usize,
                        target.rule,
                    );
                    let group = *group_of.entry(identity).or_insert_with(|| {
                        groups.push(BoundGroup {
                            target,
                            entries: Vec::with_capacity(4),
                        });
                        groups.len() - 1
                    });
                    groups[group].entries.push((series_index, point as u32));
                }
                if bound {
                    if !input.is_exemplar() {
                        self.stats.bound_points += 1;
                    }
                } else {
                    held.push((series_index, point as u32));
                }
            }
        }

        let mut outputs = Vec::with_capacity(groups.len() + 2);
        let families: Vec<Option<&FamilyMetadata>> = resolved
            .iter()
            .map(|(_, _, family)| family.as_deref())
            .collect();
        let mut writer = RequestWriter::new(&self.interner, &mut self.remap);
        for group in &groups {
            writer.begin(&component_labels(&self.settings.labels, group.target));
            for run in series_runs(&group.entries) {
                let series = &record.series[run[0].0 as usize];
                writer.series(
                    &record.labels[series.labels.clone()],
                    None,
                    record.series_points(run),
                    metadata_of(series, families[run[0].0 as usize]),
                    series.created_timestamp,
                );
            }
            outputs.push(Output {
                destination: Destination::Bound,
                tenant: tenant.clone(),
                key: group.target.key.clone(),
                payload: writer.finish(),
                points: counted_points(&record, &group.entries),
                series: writer.series_written,
                reason: None,
                component: Some(group.target.component.clone()),
                origins: Vec::new(),
            });
        }
        let late_detail = self.late_detail.clone();
        for (slot, entries) in unbound.iter().enumerate() {
            if entries.is_empty() {
                continue;
            }
            let reason = REASONS[slot];
            let detail_of = |series: u32| -> &str {
                match &resolved[series as usize].0 {
                    CachedRender::Unbound(_, detail) if reason != UnboundReason::Late => detail,
                    _ => &late_detail,
                }
            };
            let labels = &self.settings.labels;
            writer.begin(&[(labels.unbound_reason.as_str(), output::reason_name(reason))]);
            for run in series_runs(entries) {
                let series = &record.series[run[0].0 as usize];
                writer.series(
                    &record.labels[series.labels.clone()],
                    Some((labels.unbound_detail.as_str(), detail_of(run[0].0))),
                    record.series_points(run),
                    metadata_of(series, families[run[0].0 as usize]),
                    series.created_timestamp,
                );
            }
            let points = counted_points(&record, entries);
            *self
                .stats
                .unbound_points
                .entry(output::reason_name(reason))
                .or_default() += points as u64;
            outputs.push(Output {
                destination: Destination::Unbound,
                tenant: tenant.clone(),
                key: tenant.clone(),
                payload: writer.finish(),
                points,
                series: writer.series_written,
                reason: Some(reason),
                component: None,
                origins: Vec::new(),
            });
        }
        drop(writer);

        // Points that bind to nothing yet wait; the buffer may overflow.
        let mut evicted = Vec::new();
        let mut owned_series: HashMap<u32, Arc<OwnedSeries>> = HashMap::new();
        for (series_index, point) in held {
            let series = &record.series[series_index as usize];
            let (render, _, family) = &resolved[series_index as usize];
            let CachedRender::Identifiers(identifiers) = render else {
                continue;
            };
            let owned = owned_series
                .entry(series_index)
                .or_insert_with(|| {
                    Arc::new(owned_series_of(
                        &record,
                        &self.interner,
                        series,
                        family.as_deref(),
                    ))
                })
                .clone();
            let pending = PendingSample {
                tenant: tenant.clone(),
                series: owned,
                identifiers: identifiers.clone(),
                point: owned_point_of(&record, point as usize),
                origin,
                deadline_ms: now_ms + self.settings.pending_grace_ms,
            };
            self.hold(pending, &mut evicted);
        }
        self.apply_encoding(&mut outputs);
        if !evicted.is_empty() {
            let evicted = evicted
                .into_iter()
                .map(|sample| (sample, Arc::<str>::from("pending buffer full")))
                .collect();
            outputs.extend(self.unbound_of_waiting(evicted, UnboundReason::NoComponent));
        }
        Ok(outputs)
    }

    /// Decodes a remote-write 1.0 record in place, resolving each series as
    /// it goes: a series the cache knows costs a walk over its fields and one
    /// hash of its label bytes; its labels' strings are not looked at.
    fn decode_v1<'a>(
        &mut self,
        tenant: &Arc<str>,
        payload: &'a [u8],
        record: &mut RecordView<'a>,
        resolved: &mut Vec<Resolution>,
    ) -> Result<(), JoinError> {
        // Metadata entries first, whatever their place: the series use them.
        for field in Fields::new(payload) {
            let field = field?;
            if field.number == v1::WRITE_REQUEST_METADATA {
                self.remember_v1_metadata(tenant, field.bytes()?)?;
            }
        }
        let generation = self.index.generation_of(tenant);
        let mut label_fields: Vec<&[u8]> = Vec::with_capacity(32);
        let mut scattered_key: Vec<u8> = Vec::new();
        for field in Fields::new(payload) {
            let field = field?;
            if field.number != v1::WRITE_REQUEST_TIMESERIES {
                continue;
            }
            let series = field.bytes()?;
            let points_start = record.points.len();
            label_fields.clear();
            // The label fields' bytes, tags included: the cache key.
            let leading = leading_v1_labels(series, &mut label_fields);
            let mut key_range: Option<(usize, usize)> = (leading > 0).then_some((0, leading));
            let mut key_is_one_run = true;
            for inner in Fields::new(&series[leading..]) {
                let inner = inner?;
                match inner.number {
                    v1::TIME_SERIES_LABELS => {
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
                    v1::TIME_SERIES_SAMPLES => {
                        let bytes = inner.bytes()?;
                        let timestamp = sample_timestamp(bytes)?;
                        record.points.push(Point::Sample { bytes, timestamp });
                    }
                    v1::TIME_SERIES_EXEMPLARS => {
                        let start = record.exemplar_labels.len();
                        let (value, timestamp) =
                            read_v1_exemplar(inner.bytes()?, &mut record.exemplar_labels)?;
                        record.points.push(Point::Exemplar {
                            labels: start..record.exemplar_labels.len(),
                            value,
                            timestamp,
                        });
                    }
                    v1::TIME_SERIES_HISTOGRAMS => {
                        let bytes = inner.bytes()?;
                        let timestamp = varint_field(bytes, v1::HISTOGRAM_TIMESTAMP)?;
                        record.points.push(Point::Histogram { bytes, timestamp });
                    }
                    _ => {}
                }
            }
            let key: &[u8] = match key_range {
                Some((start, end)) if key_is_one_run => &series[start..end],
                _ => {
                    scattered_key.clear();
                    for label in &label_fields {
                        wire::put_len_field(&mut scattered_key, v1::TIME_SERIES_LABELS, label);
                    }
                    &scattered_key
                }
            };
            let (render, targets, labels, family) =
                self.resolve_series(tenant, key, generation, true, |interner| {
                    label_fields
                        .iter()
                        .map(|label| {
                            let (name, value) = read_label(label)?;
                            Ok((interner.intern(name), interner.intern(value)))
                        })
                        .collect()
                })?;
            let labels_start = record.labels.len();
            record.labels.extend_from_slice(&labels);
            record.series.push(InputSeries {
                labels: labels_start..record.labels.len(),
                points: points_start..record.points.len(),
                metadata: None,
                created_timestamp: 0,
            });
            resolved.push((render, targets, family));
        }
        Ok(())
    }

    fn remember_v1_metadata(&mut self, tenant: &Arc<str>, entry: &[u8]) -> Result<(), JoinError> {
        let (mut kind, mut family, mut help, mut unit) = (0, "", "", "");
        for part in Fields::new(entry) {
            let part = part?;
            match part.number {
                v1::METRIC_METADATA_TYPE => kind = part.varint()? as i32,
                v1::METRIC_METADATA_METRIC_FAMILY_NAME => family = utf8(part.bytes()?)?,
                v1::METRIC_METADATA_HELP => help = utf8(part.bytes()?)?,
                v1::METRIC_METADATA_UNIT => unit = utf8(part.bytes()?)?,
                _ => {}
            }
        }
        if !family.is_empty() {
            let metadata = FamilyMetadata {
                kind,
                help: help.into(),
                unit: unit.into(),
            };
            let max = self.settings.metadata_families_max;
            self.metadata.remember(tenant, family, metadata, max);
        }
        Ok(())
    }

    /// Decodes a remote-write 2.0 record in place, resolving each series.
    fn decode_v2<'a>(
        &mut self,
        tenant: &Arc<str>,
        payload: &'a [u8],
        record: &mut RecordView<'a>,
        resolved: &mut Vec<Resolution>,
    ) -> Result<(), JoinError> {
        // Symbols first: they may come after the series on the wire.
        let mut symbols = Vec::with_capacity(256);
        for field in Fields::new(payload) {
            let field = field?;
            if field.number == v2::REQUEST_SYMBOLS {
                symbols.push(utf8(field.bytes()?)?);
            }
        }
        match symbols.first() {
            None => symbols.push(""),
            Some(first) if !first.is_empty() => return Err(JoinError::FirstSymbol),
            Some(_) => {}
        }
        let symbol_count = symbols.len() as u64;
        let mut ids = SymbolIds {
            ids: vec![u32::MAX; symbols.len()],
            symbols,
        };
        let reference = |value: u64| -> Result<u32, JoinError> {
            if value < symbol_count {
                Ok(value as u32)
            } else {
                Err(JoinError::Symbol(value))
            }
        };
        let generation = self.index.generation_of(tenant);
        let mut key = Vec::with_capacity(512);
        let mut label_scratch = Vec::with_capacity(128);
        let mut refs: Vec<u32> = Vec::with_capacity(64);
        let mut exemplar_refs: Vec<u32> = Vec::new();
        for field in Fields::new(payload) {
            let field = field?;
            if field.number != v2::REQUEST_TIMESERIES {
                continue;
            }
            let points_start = record.points.len();
            let mut metadata = None;
            let mut created_timestamp = 0;
            refs.clear();
            for inner in Fields::new(field.bytes()?) {
                let inner = inner?;
                match inner.number {
                    v2::TIME_SERIES_LABELS_REFS => read_refs(&inner, &mut refs, &reference)?,
                    v2::TIME_SERIES_SAMPLES => {
                        let bytes = inner.bytes()?;
                        let timestamp = sample_timestamp(bytes)?;
                        record.points.push(Point::Sample { bytes, timestamp });
                    }
                    v2::TIME_SERIES_HISTOGRAMS => {
                        let bytes = inner.bytes()?;
                        let timestamp = varint_field(bytes, v2::HISTOGRAM_TIMESTAMP)?;
                        record.points.push(Point::Histogram { bytes, timestamp });
                    }
                    v2::TIME_SERIES_EXEMPLARS => {
                        let (mut value, mut timestamp) = (0.0, 0);
                        exemplar_refs.clear();
                        for part in Fields::new(inner.bytes()?) {
                            let part = part?;
                            match part.number {
                                v2::EXEMPLAR_LABELS_REFS => {
                                    read_refs(&part, &mut exemplar_refs, &reference)?
                                }
                                v2::EXEMPLAR_VALUE => value = f64::from_bits(part.fixed64()?),
                                v2::EXEMPLAR_TIMESTAMP => timestamp = part.varint()? as i64,
                                _ => {}
                            }
                        }
                        if exemplar_refs.len() % 2 != 0 {
                            return Err(JoinError::OddLabels);
                        }
                        let start = record.exemplar_labels.len();
                        record.exemplar_labels.extend(
                            exemplar_refs
                                .chunks_exact(2)
                                .map(|p| (ids.symbols[p[0] as usize], ids.symbols[p[1] as usize])),
                        );
                        record.points.push(Point::Exemplar {
                            labels: start..record.exemplar_labels.len(),
                            value,
                            timestamp,
                        });
                    }
                    v2::TIME_SERIES_METADATA => {
                        let (mut kind, mut help, mut unit) = (0, 0, 0);
                        for part in Fields::new(inner.bytes()?) {
                            let part = part?;
                            match part.number {
                                v2::METADATA_TYPE => kind = part.varint()? as i32,
                                v2::METADATA_HELP_REF => help = reference(part.varint()?)?,
                                v2::METADATA_UNIT_REF => unit = reference(part.varint()?)?,
                                _ => {}
                            }
                        }
                        metadata = Some((kind, help, unit));
                    }
                    v2::TIME_SERIES_CREATED_TIMESTAMP => created_timestamp = inner.varint()? as i64,
                    _ => {}
                }
            }
            if refs.len() % 2 != 0 {
                return Err(JoinError::OddLabels);
            }
            // The cache key as 1.0 would encode the labels, in name order.
            let mut pairs: Vec<(&str, &str)> = refs
                .chunks_exact(2)
                .map(|p| (ids.symbols[p[0] as usize], ids.symbols[p[1] as usize]))
                .collect();
            if !pairs.windows(2).all(|pair| pair[0].0 <= pair[1].0) {
                pairs.sort_by(|a, b| a.0.cmp(b.0));
            }
            key.clear();
            for (name, value) in &pairs {
                put_key_label(&mut key, name, value, &mut label_scratch);
            }
            let (render, targets, labels, family) =
                self.resolve_series(tenant, &key, generation, metadata.is_none(), |interner| {
                    Ok(pairs
                        .iter()
                        .map(|(name, value)| (interner.intern(name), interner.intern(value)))
                        .collect())
                })?;
            let metadata = metadata.map(|(kind, help, unit)| {
                let help = if help == 0 {
                    0
                } else {
                    ids.id(help, &mut self.interner)
                };
                let unit = if unit == 0 {
                    0
                } else {
                    ids.id(unit, &mut self.interner)
                };
                (kind, help, unit)
            });
            let labels_start = record.labels.len();
            record.labels.extend_from_slice(&labels);
            record.series.push(InputSeries {
                labels: labels_start..record.labels.len(),
                points: points_start..record.points.len(),
                metadata,
                created_timestamp,
            });
            resolved.push((render, targets, family));
        }
        Ok(())
    }

    /// A series' rendering, components, labels (interner ids, by name) and,
    /// when `wants_family` (a series without metadata of its own), its
    /// family's metadata from the 1.0 metadata seen, from the cache when
    /// neither the index nor the metadata changed since; `labels_of` interns
    /// its labels when the cache does not know it.
    fn resolve_series(
        &mut self,
        tenant: &Arc<str>,
        key: &[u8],
        generation: u64,
        wants_family: bool,
        labels_of: impl FnOnce(&mut Interner) -> Result<Vec<(u32, u32)>, JoinError>,
    ) -> Result<KnownSeries, JoinError> {
        // One lookup of the series for its binding and its family alike.
        let family_generation = self.metadata.generation;
        let wants_family = wants_family && !self.metadata.by_tenant.is_empty();
        let (hash, cached) = self.series_cache.lookup(tenant, key);
        if let Some(index) = cached {
            let entry = self.series_cache.entry_mut(index);
            let family = if !wants_family || entry.name == 0 {
                None
            } else if entry.family_generation == family_generation {
                entry.family.clone()
            } else {
                let family = self.metadata.lookup(tenant, self.interner.get(entry.name));
                entry.family = family.clone();
                entry.family_generation = family_generation;
                family
            };
            let (render, labels) = (entry.render.clone(), entry.labels.clone());
            if entry.generation == generation {
                return Ok((render, entry.targets.clone(), labels, family));
            }
            let targets = Arc::new(self.targets_of(tenant, &render));
            self.stats.series_resolved += 1;
            let entry = self.series_cache.entry_mut(index);
            entry.generation = generation;
            entry.targets = targets.clone();
            return Ok((render, targets, labels, family));
        }
        self.stats.series_cache_misses += 1;
        let mut labels = labels_of(&mut self.interner)?;
        sort_labels(&mut labels, &self.interner);
        let name = labels
            .iter()
            .find(|(name, _)| self.interner.get(*name) == "__name__")
            .map_or(0, |(_, value)| *value);
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|(n, v)| (self.interner.get(*n), self.interner.get(*v)))
            .collect();
        let render = self.render_labels(&pairs);
        let targets = Arc::new(self.targets_of(tenant, &render));
        self.stats.series_resolved += 1;
        let family = if wants_family && name != 0 {
            self.metadata.lookup(tenant, self.interner.get(name))
        } else {
            None
        };
        let labels: Arc<[(u32, u32)]> = labels.into();
        let entry = SeriesEntry {
            render: render.clone(),
            generation,
            targets: targets.clone(),
            labels: labels.clone(),
            name,
            family: family.clone(),
            family_generation: if wants_family {
                family_generation
            } else {
                u64::MAX
            },
        };
        self.series_cache
            .insert_new(hash, tenant, key, entry, self.settings.series_cache_max);
        Ok((render, targets, labels, family))
    }

    fn targets_of(&self, tenant: &str, render: &CachedRender) -> Vec<Target> {
        match render {
            CachedRender::Identifiers(identifiers) => self.resolve_targets(tenant, identifiers),
            CachedRender::Unbound(..) => Vec::new(),
        }
    }

    /// Rewrites outputs in the JSON encoding when it is the one in force.
    fn apply_encoding(&self, outputs: &mut [Output]) {
        if self.settings.encoding == OutputEncoding::Json {
            for output in outputs {
                output.payload = output::batch_json(output);
            }
        }
    }

    /// Binds the waiting samples whose identifiers gained a component.
    pub fn release_pending(&mut self) -> Vec<Output> {
        let touched = std::mem::take(&mut self.touched_identifiers);
        let mut released: Vec<(PendingSample, Vec<Reached>)> = Vec::new();
        for identifier_key in touched {
            let Some(sequences) = self.pending.by_identifier.remove(&identifier_key) else {
                continue;
            };
            let mut still_waiting = Vec::new();
            for sequence in sequences {
                let Some(entry) = self.pending.entries.get(&sequence) else {
                    continue;
                };
                let components = self.bind_now(entry);
                if components.is_empty() {
                    still_waiting.push(sequence);
                    continue;
                }
                let entry = self.pending.remove(sequence).expect("present");
                if !entry.point.is_exemplar() {
                    self.stats.released_points += 1;
                }
                released.push((entry, components));
            }
            if !still_waiting.is_empty() {
                self.pending
                    .by_identifier
                    .insert(identifier_key, still_waiting);
            }
        }
        if released.is_empty() {
            return Vec::new();
        }
        self.bound_of_waiting(released)
    }

    /// The components a waiting sample binds to now, with the rule of each.
    fn bind_now(&self, sample: &PendingSample) -> Vec<Reached> {
        let mut components: Vec<Reached> = Vec::new();
        for (rule, identifier) in sample.identifiers.iter() {
            for (_, component) in self.index.resolve(
                &sample.tenant,
                identifier,
                sample.point.timestamp(),
                self.settings.as_of,
            ) {
                if components
                    .iter()
                    .any(|(c, _)| c.external_id == component.external_id)
                {
                    continue;
                }
                components.push((component.clone(), *rule));
            }
        }
        components
    }

    fn hold(&mut self, sample: PendingSample, evicted: &mut Vec<PendingSample>) {
        while self.pending.entries.len() >= self.settings.pending_max_samples.max(1) {
            let Some(oldest) = self.pending.oldest() else {
                break;
            };
            evicted.push(self.pending.remove(oldest).expect("present"));
        }
        self.pending.push(sample);
    }

    /// Samples whose grace ran out without a component go to `metrics.unbound`.
    pub fn expire_pending(&mut self, now_ms: i64) -> Vec<Output> {
        let mut expired = Vec::new();
        while let Some(oldest) = self.pending.oldest() {
            if self.pending.entries[&oldest].deadline_ms > now_ms {
                break;
            }
            let sample = self.pending.remove(oldest).expect("present");
            let detail = format!(
                "no component carries {}",
                sample
                    .identifiers
                    .iter()
                    .map(|(_, id)| id.as_str())
                    .collect::<Vec<_>>()
                    .join(" or ")
            );
            expired.push((sample, Arc::from(detail)));
        }
        if expired.is_empty() {
            return Vec::new();
        }
        self.unbound_of_waiting(expired, UnboundReason::NoComponent)
    }

    /// Bound records of released samples: one per component (and rule).
    fn bound_of_waiting(&mut self, released: Vec<(PendingSample, Vec<Reached>)>) -> Vec<Output> {
        let samples: Vec<&PendingSample> = released.iter().map(|(sample, _)| sample).collect();
        let record = waiting_view(&samples, &mut self.interner);
        // (tenant, externalId, rule) -> entries, in order of first appearance.
        let mut groups: Vec<(usize, &Arc<IndexedComponent>, usize, Entries)> = Vec::new();
        for (point, (sample, components)) in released.iter().enumerate() {
            let series = record.series_of[point];
            for (component, rule) in components {
                let found = groups.iter().position(|(owner, c, r, _)| {
                    *r == *rule
                        && c.external_id == component.external_id
                        && released[*owner].0.tenant == sample.tenant
                });
                let group = match found {
                    Some(group) => group,
                    None => {
                        groups.push((point, component, *rule, Vec::new()));
                        groups.len() - 1
                    }
                };
                groups[group].3.push((series, point as u32));
            }
        }
        let labels = &self.settings.labels;
        let mut outputs = Vec::with_capacity(groups.len());
        let mut writer = RequestWriter::new(&self.interner, &mut self.remap);
        for (owner, component, rule, mut entries) in groups {
            entries.sort_unstable();
            let tenant = released[owner].0.tenant.clone();
            let headers = ComponentHeaders {
                external_id: Arc::from(&*component.external_id),
                type_name: component.type_name.clone(),
                rule: self.rule_names[rule].clone(),
            };
            writer.begin(&[
                (labels.external_id.as_str(), &*component.external_id),
                (labels.component_type.as_str(), &*component.type_name),
                (labels.component_name.as_str(), &*component.name),
            ]);
            for run in series_runs(&entries) {
                let series = &record.view.series[run[0].0 as usize];
                writer.series(
                    &record.view.labels[series.labels.clone()],
                    None,
                    record.view.series_points(run),
                    metadata_of(series, None),
                    series.created_timestamp,
                );
            }
            let mut origins: Vec<Origin> = entries
                .iter()
                .map(|(_, point)| released[*point as usize].0.origin)
                .collect();
            origins.sort_unstable();
            origins.dedup();
            outputs.push(Output {
                destination: Destination::Bound,
                key: Arc::from(bound_key(&tenant, &component.external_id)),
                tenant,
                payload: writer.finish(),
                points: counted_points(&record.view, &entries),
                series: writer.series_written,
                reason: None,
                component: Some(headers),
                origins,
            });
        }
        drop(writer);
        self.apply_encoding(&mut outputs);
        outputs
    }

    /// Unbound records of samples that leave the pending buffer, each with
    /// its detail: one per tenant.
    fn unbound_of_waiting(
        &mut self,
        samples: Vec<(PendingSample, Arc<str>)>,
        reason: UnboundReason,
    ) -> Vec<Output> {
        let waiting: Vec<&PendingSample> = samples.iter().map(|(sample, _)| sample).collect();
        let record = waiting_view(&waiting, &mut self.interner);
        let mut tenants: Vec<(Arc<str>, Entries)> = Vec::new();
        for (point, (sample, _)) in samples.iter().enumerate() {
            let entry = (record.series_of[point], point as u32);
            match tenants
                .iter_mut()
                .find(|(tenant, _)| *tenant == sample.tenant)
            {
                Some((_, entries)) => entries.push(entry),
                None => tenants.push((sample.tenant.clone(), vec![entry])),
            }
        }
        let labels = &self.settings.labels;
        let mut outputs = Vec::with_capacity(tenants.len());
        let mut writer = RequestWriter::new(&self.interner, &mut self.remap);
        for (tenant, mut entries) in tenants {
            entries.sort_unstable();
            writer.begin(&[(labels.unbound_reason.as_str(), output::reason_name(reason))]);
            for run in series_runs(&entries) {
                let series = &record.view.series[run[0].0 as usize];
                // The detail of a series' first waiting sample.
                let detail = &samples[run[0].1 as usize].1;
                writer.series(
                    &record.view.labels[series.labels.clone()],
                    Some((labels.unbound_detail.as_str(), detail)),
                    record.view.series_points(run),
                    metadata_of(series, None),
                    series.created_timestamp,
                );
            }
            let points = counted_points(&record.view, &entries);
            *self
                .stats
                .unbound_points
                .entry(output::reason_name(reason))
                .or_default() += points as u64;
            let mut origins: Vec<Origin> = entries
                .iter()
                .map(|(_, point)| samples[*point as usize].0.origin)
                .collect();
            origins.sort_unstable();
            origins.dedup();
            outputs.push(Output {
                destination: Destination::Unbound,
                key: tenant.clone(),
                tenant,
                payload: writer.finish(),
                points,
                series: writer.series_written,
                reason: Some(reason),
                component: None,
                origins,
            });
        }
        drop(writer);
        self.apply_encoding(&mut outputs);
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
    /// for a component reached twice).
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
                targets.push(Target {
                    key: Arc::from(record_key),
                    versions: versions.clone(),
                    binds_during,
                    rule: *rule,
                    component: ComponentHeaders {
                        external_id: Arc::from(external_id),
                        type_name: latest.component.type_name.clone(),
                        rule: self.rule_names[*rule].clone(),
                    },
                    name: Arc::from(&*latest.component.name),
                });
            }
        }
        targets
    }
}

/// An owned copy of an input series, for its samples that wait.
fn owned_series_of(
    record: &RecordView<'_>,
    interner: &Interner,
    series: &InputSeries,
    family: Option<&FamilyMetadata>,
) -> OwnedSeries {
    let text = |id: u32| interner.get(id).to_string();
    let metadata = match (series.metadata, family) {
        (Some((kind, help, unit)), _) => Some((kind, text(help), text(unit))),
        (None, Some(family)) => Some((
            family.kind,
            family.help.to_string(),
            family.unit.to_string(),
        )),
        (None, None) => None,
    };
    OwnedSeries {
        labels: record.labels[series.labels.clone()]
            .iter()
            .map(|(name, value)| (text(*name), text(*value)))
            .collect(),
        metadata,
        created_timestamp: series.created_timestamp,
    }
}

fn owned_point_of(record: &RecordView<'_>, point: usize) -> OwnedPoint {
    match &record.points[point] {
        Point::Sample { bytes, timestamp } => Point::Sample {
            bytes: (*bytes).into(),
            timestamp: *timestamp,
        },
        Point::Histogram { bytes, timestamp } => Point::Histogram {
            bytes: (*bytes).into(),
            timestamp: *timestamp,
        },
        Point::Exemplar {
            labels,
            value,
            timestamp,
        } => Point::Exemplar {
            labels: record.exemplar_labels[labels.clone()]
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            value: *value,
            timestamp: *timestamp,
        },
    }
}

/// Waiting samples as a record: one series per distinct series, one point per sample.
struct WaitingView<'a> {
    view: RecordView<'a>,
    /// The series of each sample.
    series_of: Vec<u32>,
}

/// `samples` as a record, their series' strings interned.
fn waiting_view<'a>(samples: &[&'a PendingSample], interner: &mut Interner) -> WaitingView<'a> {
    let mut view = RecordView::new();
    let mut series_of = Vec::with_capacity(samples.len());
    let mut known: HashMap<*const OwnedSeries, u32> = HashMap::new();
    for sample in samples {
        let series = &*sample.series;
        let index = *known.entry(Arc::as_ptr(&sample.series)).or_insert_with(|| {
            let labels_start = view.labels.len();
            for (name, value) in &series.labels {
                let pair = (interner.intern(name), interner.intern(value));
                view.labels.push(pair);
            }
            let metadata = series
                .metadata
                .as_ref()
                .map(|(kind, help, unit)| (*kind, interner.intern(help), interner.intern(unit)));
            view.series.push(InputSeries {
                labels: labels_start..view.labels.len(),
                points: 0..0,
                metadata,
                created_timestamp: series.created_timestamp,
            });
            view.series.len() as u32 - 1
        });
        series_of.push(index);
        let point: InputPoint<'a> = match &sample.point {
            Point::Sample { bytes, timestamp } => Point::Sample {
                bytes,
                timestamp: *timestamp,
            },
            Point::Histogram { bytes, timestamp } => Point::Histogram {
                bytes,
                timestamp: *timestamp,
            },
            Point::Exemplar {
                labels,
                value,
                timestamp,
            } => {
                let start = view.exemplar_labels.len();
                view.exemplar_labels
                    .extend(labels.iter().map(|(n, v)| (n.as_str(), v.as_str())));
                Point::Exemplar {
                    labels: start..view.exemplar_labels.len(),
                    value: *value,
                    timestamp: *timestamp,
                }
            }
        };
        view.points.push(point);
    }
    WaitingView { view, series_of }
}

fn utf8(bytes: &[u8]) -> Result<&str, JoinError> {
    std::str::from_utf8(bytes).map_err(|_| JoinError::Utf8)
}

fn read_label(label: &[u8]) -> Result<(&str, &str), JoinError> {
    let (name, value) = wire::read_v1_label(label)?;
    Ok((utf8(name)?, utf8(value)?))
}

/// The varint field `number` of an encoded message (a sample's or a
/// histogram's timestamp), 0 when absent.
/// The key byte of a 1.0 series' label field.
const V1_LABEL_KEY: u8 = wire::key_byte(v1::TIME_SERIES_LABELS, wire::WIRE_LEN);

/// The label fields at the start of a 1.0 series, as Prometheus writes them
/// (each under 128 bytes), appended to `labels` without the field walker;
/// returns the bytes they take. What follows, or anything of another shape,
/// is for [`Fields`] to read.
fn leading_v1_labels<'a>(series: &'a [u8], labels: &mut Vec<&'a [u8]>) -> usize {
    let mut pos = 0;
    while let [V1_LABEL_KEY, len, ..] = series[pos..]
        && len < 0x80
        && pos + 2 + usize::from(len) <= series.len()
    {
        let start = pos + 2;
        pos = start + usize::from(len);
        labels.push(&series[start..pos]);
    }
    pos
}

/// A sample's timestamp: one as Prometheus writes it is read in place
/// ([`wire::is_plain_sample`]), any other is walked.
fn sample_timestamp(sample: &[u8]) -> Result<i64, JoinError> {
    if wire::is_plain_sample(sample) {
        let mut at = 10;
        return Ok(read_varint(sample, &mut at)? as i64);
    }
    varint_field(sample, v1::SAMPLE_TIMESTAMP)
}

fn varint_field(message: &[u8], number: u32) -> Result<i64, JoinError> {
    let mut found = 0;
    for field in Fields::new(message) {
        let field = field?;
        if field.number == number {
            found = field.varint()? as i64;
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{BatchSeries, read_batch};
    use proto::Message;
    use proto::prometheus::{Label, Sample, TimeSeries, WriteRequest};
    use proto::records::Component;
    use proto::v2;

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
            metadata_families_max: 1_000,
            encoding: OutputEncoding::Protobuf,
            labels: OutputLabels::default(),
        }
    }

    fn label(name: &str, value: &str) -> Label {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }

    fn pod_labels(name: &str, pod: &str) -> Vec<Label> {
        vec![
            label("__name__", name),
            label("cluster_name", "demo"),
            label("container", "exporter"),
            label("namespace", "monitoring"),
            label("pod", pod),
        ]
    }

    fn series(labels: Vec<Label>, timestamp: i64) -> TimeSeries {
        TimeSeries {
            labels,
            samples: vec![Sample {
                value: 1.0,
                timestamp,
            }],
            ..Default::default()
        }
    }

    fn record(pod: &str, timestamp: i64) -> Vec<u8> {
        WriteRequest {
            timeseries: vec![series(pod_labels("node_load1", pod), timestamp)],
            metadata: vec![],
        }
        .encode_to_vec()
    }

    fn component(external_id: &str, kind: &str, first_seen_ms: i64) -> Component {
        Component {
            tenant: "acme".into(),
            external_id: external_id.into(),
            type_name: kind.into(),
            name: external_id.rsplit('/').next().unwrap_or_default().into(),
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

    fn joiner_with_p1() -> Joiner {
        let mut joiner = Joiner::new(Bindings::kubernetes_defaults(), settings());
        joiner.upsert_component(&format!("acme/k/demo/{POD}"), component(POD, "pod", 0));
        joiner.upsert_component(
            &format!("acme/k/demo/{CONTAINER}"),
            component(CONTAINER, "container", 0),
        );
        assert!(joiner.release_pending().is_empty());
        joiner
    }

    /// Joins `request` as a record of `tenant`'s.
    fn send(
        joiner: &mut Joiner,
        tenant: &str,
        content_type: &str,
        request: &impl Message,
    ) -> Vec<Output> {
        joiner
            .process(tenant, content_type, &request.encode_to_vec(), ORIGIN, 0)
            .unwrap()
    }

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
            .map(|o| o.component.as_ref().unwrap().external_id.to_string())
            .collect()
    }

    fn batch(output: &Output) -> Vec<BatchSeries> {
        read_batch(proto::CONTENT_TYPE_V2, &output.payload).unwrap()
    }

    fn reasons(outputs: &[Output]) -> Vec<UnboundReason> {
        outputs.iter().filter_map(|o| o.reason).collect()
    }

    #[test]
    fn the_shortcuts_read_what_the_field_walker_reads() {
        let labels = |n: usize| -> Vec<Label> {
            (0..n)
                .map(|i| Label {
                    name: format!("l{i}"),
                    value: "v".repeat(i * 20),
                })
                .collect()
        };
        for (labels, samples) in [
            (
                labels(0),
                vec![Sample {
                    value: 1.5,
                    timestamp: 7,
                }],
            ),
            (
                labels(3),
                vec![Sample {
                    value: 1.5,
                    timestamp: 1_700_000_000_000,
                }],
            ),
            // A label of 128 bytes or more, a value of 0 (no field), a timestamp of 0.
            (
                labels(8),
                vec![
                    Sample {
                        value: 0.0,
                        timestamp: 3,
                    },
                    Sample {
                        value: 2.0,
                        timestamp: 0,
                    },
                ],
            ),
        ] {
            let series = TimeSeries {
                labels: labels.clone(),
                samples: samples.clone(),
                ..Default::default()
            }
            .encode_to_vec();
            let mut fast = Vec::new();
            let leading = leading_v1_labels(&series, &mut fast);
            let walked: Vec<&[u8]> = Fields::new(&series)
                .map(|field| field.unwrap())
                .filter(|field| field.number == v1::TIME_SERIES_LABELS)
                .map(|field| field.bytes().unwrap())
                .collect();
            assert_eq!(fast, walked[..fast.len()]);
            let short = labels.iter().take_while(|l| l.encoded_len() < 0x80).count();
            assert_eq!(fast.len(), short);
            assert!(Fields::new(&series[leading..]).all(|field| field.is_ok()));
            for sample in samples {
                let bytes = sample.encode_to_vec();
                assert_eq!(sample_timestamp(&bytes).unwrap(), sample.timestamp);
                assert_eq!(
                    sample_timestamp(&bytes).unwrap(),
                    varint_field(&bytes, v1::SAMPLE_TIMESTAMP).unwrap()
                );
            }
        }
        // A timestamp given twice: the last one counts, as prost reads it.
        let mut twice = Sample {
            value: 1.0,
            timestamp: 5,
        }
        .encode_to_vec();
        twice.extend(
            Sample {
                value: 0.0,
                timestamp: 9,
            }
            .encode_to_vec(),
        );
        assert_eq!(sample_timestamp(&twice).unwrap(), 9);
        // A truncated label or sample is left to the walker, which refuses it.
        let series = TimeSeries {
            labels: labels(2),
            ..Default::default()
        }
        .encode_to_vec();
        let mut fast = Vec::new();
        let cut = &series[..series.len() - 1];
        let leading = leading_v1_labels(cut, &mut fast);
        assert_eq!(fast.len(), 1);
        assert!(Fields::new(&cut[leading..]).any(|field| field.is_err()));
        let sample = Sample {
            value: 1.0,
            timestamp: 300,
        }
        .encode_to_vec();
        assert!(sample_timestamp(&sample[..sample.len() - 1]).is_err());
    }

    #[test]
    fn a_series_binds_to_every_component_carrying_a_rendered_identifier() {
        let mut joiner = joiner_with_p1();
        let outputs = join(&mut joiner, "p1", 10_000, 0);
        assert_eq!(bound_ids(&outputs), [CONTAINER, POD]);
        assert_eq!(&*outputs[0].key, format!("acme/{CONTAINER}"));
        let pod = &outputs[1];
        let headers = pod.component.as_ref().unwrap();
        assert_eq!((&*headers.type_name, &*headers.rule), ("pod", "k8s-pod"));
        let series = batch(pod);
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].label("component_external_id"), Some(POD));
        assert_eq!(series[0].label("component_type"), Some("pod"));
        assert_eq!(series[0].label("component_name"), Some("p1"));
        assert_eq!(series[0].label("pod"), Some("p1"));
        assert_eq!(series[0].samples.len(), 1);
        assert_eq!(series[0].samples[0].timestamp, 10_000);
        assert_eq!((pod.points, pod.series), (1, 1));
    }

    #[test]
    fn the_series_of_a_record_bound_to_one_component_share_one_record() {
        let mut joiner = joiner_with_p1();
        let mut own = pod_labels("up", "p1");
        own.insert(1, label("component_name", "mine"));
        let request = WriteRequest {
            timeseries: vec![
                series(pod_labels("a", "p1"), 10_000),
                series(pod_labels("b", "p1"), 10_000),
                series(own, 10_000),
            ],
            metadata: vec![],
        };
        let outputs = send(&mut joiner, "acme", proto::CONTENT_TYPE_V1, &request);
        assert_eq!(bound_ids(&outputs), [CONTAINER, POD], "one record each");
        let series = batch(&outputs[1]);
        assert_eq!(series.len(), 3);
        assert_eq!(outputs[1].points, 3);
        assert_eq!(series[2].label("component_name"), Some("p1"));
        assert_eq!(series[2].label("exported_component_name"), Some("mine"));
        let names: Vec<&str> = series[2].labels.iter().map(|(n, _)| n.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "labels stay sorted");
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
        assert_eq!(&*expired[0].tenant, "globex");
        assert_eq!(reasons(&expired), [UnboundReason::NoComponent]);
        assert_eq!(expired[0].origins, [ORIGIN]);
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
        let released = joiner.release_pending();
        let mut ids = bound_ids(&released);
        ids.sort();
        assert_eq!(ids, [POD, CONTAINER]);
        for output in &released {
            assert_eq!(output.origins, [ORIGIN]);
            let series = batch(output);
            assert_eq!(series[0].samples[0].timestamp, 10_000);
            assert_eq!(series[0].label("pod"), Some("p1"));
        }
        assert!(joiner.pending_floor().is_empty());

        assert!(join(&mut joiner, "p2", 10_000, 0).is_empty(), "held");
        let expired = joiner.expire_pending(6_000);
        assert_eq!(reasons(&expired), [UnboundReason::NoComponent]);
        let series = batch(&expired[0]);
        assert_eq!(series[0].label("unbound_reason"), Some("no_component"));
        assert!(
            series[0]
                .label("unbound_detail")
                .unwrap()
                .starts_with("no component carries urn:kubernetes:/demo:monitoring:pod/p2")
        );
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
        assert_eq!(reasons(&late), [UnboundReason::Late]);
        assert_eq!(
            batch(&late[0])[0].label("unbound_detail"),
            Some("older than the 60000 ms history")
        );
    }

    #[test]
    fn series_without_the_labels_go_unbound_one_record_per_reason() {
        let mut joiner = Joiner::new(Bindings::kubernetes_defaults(), settings());
        let request = WriteRequest {
            timeseries: vec![
                series(
                    vec![label("__name__", "up"), label("cluster_name", "demo")],
                    1,
                ),
                series(vec![label("__name__", "up"), label("job", "x")], 1),
                series(vec![label("__name__", "down"), label("job", "x")], 1),
            ],
            metadata: vec![],
        };
        let outputs = send(&mut joiner, "acme", proto::CONTENT_TYPE_V1, &request);
        assert_eq!(
            reasons(&outputs),
            [UnboundReason::NoRule, UnboundReason::MissingLabel]
        );
        assert_eq!(
            batch(&outputs[0]).len(),
            2,
            "both no_rule series in one record"
        );
        let missing = batch(&outputs[1]);
        assert_eq!(
            missing[0].label("unbound_detail"),
            Some("rule k8s-container needs label namespace")
        );
        assert_eq!(&*outputs[1].key, "acme");
        assert!(
            joiner
                .process("acme", "text/plain", b"x", ORIGIN, 0)
                .is_err()
        );
    }

    /// The same series as remote-write 1.0 and 2.0 come out alike.
    #[test]
    fn v1_and_v2_records_write_the_same_batches() {
        let mut joiner = joiner_with_p1();
        let v1 = record("p1", 10_000);
        let request = WriteRequest::decode(v1.as_slice()).unwrap();
        let v2_record = proto::fixtures::v1_as_v2(&request).encode_to_vec();
        let from_v1 = joiner
            .process("acme", proto::CONTENT_TYPE_V1, &v1, ORIGIN, 0)
            .unwrap();
        let from_v2 = joiner
            .process("acme", proto::CONTENT_TYPE_V2, &v2_record, ORIGIN, 0)
            .unwrap();
        assert_eq!(from_v1.len(), 2);
        for (a, b) in from_v1.iter().zip(&from_v2) {
            assert_eq!(a.key, b.key);
            assert_eq!(batch(a), batch(b));
        }
    }

    #[test]
    fn remote_write_2_keeps_histograms_exemplars_metadata_and_start_timestamps() {
        let mut joiner = joiner_with_p1();
        let labels = pod_labels("rpc_seconds", "p1");
        let mut symbols = vec![String::new()];
        let mut intern = |text: &str| -> u32 {
            match symbols.iter().position(|s| s == text) {
                Some(index) => index as u32,
                None => {
                    symbols.push(text.to_string());
                    symbols.len() as u32 - 1
                }
            }
        };
        let labels_refs: Vec<u32> = labels
            .iter()
            .flat_map(|l| [intern(&l.name), intern(&l.value)])
            .collect();
        let exemplar_refs = vec![intern("trace_id"), intern("4bf9")];
        let help = intern("RPC latency.");
        let unit = intern("seconds");
        let histogram = v2::Histogram {
            count: Some(v2::histogram::Count::CountInt(3)),
            sum: 1.5,
            schema: 3,
            positive_spans: vec![v2::BucketSpan {
                offset: 0,
                length: 2,
            }],
            positive_deltas: vec![1, 1],
            timestamp: 10_000,
            start_timestamp: 9_000,
            ..Default::default()
        };
        let request = v2::Request {
            symbols,
            timeseries: vec![v2::TimeSeries {
                labels_refs: labels_refs.clone(),
                histograms: vec![histogram.clone()],
                exemplars: vec![v2::Exemplar {
                    labels_refs: exemplar_refs,
                    value: 0.7,
                    timestamp: 10_000,
                }],
                metadata: Some(v2::Metadata {
                    r#type: 3,
                    help_ref: help,
                    unit_ref: unit,
                }),
                created_timestamp: 9_000,
                ..Default::default()
            }],
        };
        let outputs = send(&mut joiner, "acme", proto::CONTENT_TYPE_V2, &request);
        assert_eq!(bound_ids(&outputs), [CONTAINER, POD]);
        for output in &outputs {
            let series = &batch(output)[0];
            assert_eq!(
                series.histograms,
                std::slice::from_ref(&histogram),
                "bit for bit"
            );
            assert_eq!(
                series.exemplars,
                [(vec![("trace_id".into(), "4bf9".into())], 0.7, 10_000)]
            );
            assert_eq!(
                series.metadata,
                Some((3, "RPC latency.".into(), "seconds".into()))
            );
            assert_eq!(series.created_timestamp, 9_000);
            assert_eq!(output.points, 1, "the histogram; exemplars are not points");
        }
    }

    #[test]
    fn remote_write_1_metadata_is_remembered_by_family() {
        let mut joiner = joiner_with_p1();
        let metadata = WriteRequest {
            timeseries: vec![],
            metadata: vec![proto::prometheus::MetricMetadata {
                r#type: 3,
                metric_family_name: "rpc_seconds".into(),
                help: "RPC latency.".into(),
                unit: "seconds".into(),
            }],
        };
        let nothing = send(&mut joiner, "acme", proto::CONTENT_TYPE_V1, &metadata);
        assert!(nothing.is_empty());
        let mut exemplar_series = series(pod_labels("rpc_seconds_bucket", "p1"), 10_000);
        exemplar_series.exemplars = vec![proto::prometheus::Exemplar {
            labels: vec![label("trace_id", "abc")],
            value: 0.2,
            timestamp: 10_000,
        }];
        let request = WriteRequest {
            timeseries: vec![
                exemplar_series,
                series(pod_labels("rpc_seconds_count", "p1"), 10_000),
                series(pod_labels("other", "p1"), 10_000),
            ],
            metadata: vec![],
        };
        let outputs = send(&mut joiner, "acme", proto::CONTENT_TYPE_V1, &request);
        let series = batch(&outputs[1]);
        let family = Some((3, "RPC latency.".to_string(), "seconds".to_string()));
        assert_eq!(series[0].metadata, family);
        assert_eq!(series[1].metadata, family);
        assert_eq!(series[2].metadata, None, "a family without metadata");
        assert_eq!(series[0].exemplars.len(), 1);
        assert_eq!(series[0].label("pod"), Some("p1"), "own labels intact");
        assert_eq!(series[0].labels.len(), 8, "5 own, 3 added");
        // Another tenant's metadata does not apply.
        let other = send(&mut joiner, "globex", proto::CONTENT_TYPE_V1, &request);
        assert!(other.is_empty(), "globex has no components: all wait");
    }

    #[test]
    fn an_exemplar_only_series_binds_as_of_its_exemplar() {
        let mut joiner = joiner_with_p1();
        let mut only = TimeSeries {
            labels: pod_labels("rpc_seconds_bucket", "p1"),
            ..Default::default()
        };
        only.exemplars = vec![proto::prometheus::Exemplar {
            labels: vec![label("trace_id", "abc")],
            value: 0.2,
            timestamp: 10_000,
        }];
        let request = WriteRequest {
            timeseries: vec![only],
            metadata: vec![],
        };
        let outputs = send(&mut joiner, "acme", proto::CONTENT_TYPE_V1, &request);
        assert_eq!(bound_ids(&outputs), [CONTAINER, POD]);
        assert_eq!(batch(&outputs[0])[0].exemplars.len(), 1);
        assert_eq!(outputs[0].points, 0);
    }

    /// What Prometheus 3 sends over 2.0 with exemplars on: the exemplar in a
    /// series of its own, which ingest accepts.
    #[test]
    fn a_remote_write_2_exemplar_only_series_binds_as_of_its_exemplar() {
        let mut joiner = joiner_with_p1();
        let mut symbols = vec![String::new()];
        for label in pod_labels("rpc_seconds_bucket", "p1") {
            symbols.extend([label.name, label.value]);
        }
        let labels_refs = (1..symbols.len() as u32).collect();
        symbols.extend(["trace_id".to_string(), "abc".to_string()]);
        let trace_refs = vec![symbols.len() as u32 - 2, symbols.len() as u32 - 1];
        let request = v2::Request {
            symbols,
            timeseries: vec![v2::TimeSeries {
                labels_refs,
                exemplars: vec![v2::Exemplar {
                    labels_refs: trace_refs,
                    value: 0.2,
                    timestamp: 10_000,
                }],
                ..Default::default()
            }],
        };
        let outputs = send(&mut joiner, "acme", proto::CONTENT_TYPE_V2, &request);
        assert_eq!(bound_ids(&outputs), [CONTAINER, POD]);
        assert_eq!(
            batch(&outputs[0])[0].exemplars,
            [(vec![("trace_id".into(), "abc".into())], 0.2, 10_000)]
        );
        assert_eq!(outputs[0].points, 0);
    }

    #[test]
    fn json_batches_say_the_same() {
        let mut joiner = Joiner::new(
            Bindings::kubernetes_defaults(),
            JoinSettings {
                encoding: OutputEncoding::Json,
                ..settings()
            },
        );
        joiner.upsert_component("key-pod", component(POD, "pod", 0));
        joiner.release_pending();
        let outputs = join(&mut joiner, "p1", 10_000, 0);
        let record: serde_json::Value = serde_json::from_slice(&outputs[0].payload).unwrap();
        assert_eq!(record["component"]["externalId"], POD);
        assert_eq!(record["component"]["rule"], "k8s-pod");
        assert_eq!(
            record["timeseries"][0]["labels"]["component_external_id"],
            POD
        );
        assert_eq!(record["timeseries"][0]["samples"][0]["timestamp"], 10_000);
        let series = read_batch(output::CONTENT_TYPE_JSON, &outputs[0].payload).unwrap();
        assert_eq!(series[0].label("pod"), Some("p1"));
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
            reasons(&evicted),
            [UnboundReason::NoComponent],
            "the oldest waiting sample leaves as no_component"
        );
        assert_eq!(
            batch(&evicted[0])[0].label("unbound_detail"),
            Some("pending buffer full")
        );
        assert!(joiner.pending_samples() <= 2);
    }

    /// A group in an unknown field is skipped as prost skips it, in a 1.0
    /// series and in a 2.0 request; a stray end group is refused by both.
    #[test]
    fn groups_are_read_as_prost_reads_them() {
        use proto::fields::v2 as v2_field;
        use wire::{WIRE_END_GROUP, WIRE_START_GROUP};
        // A group holding one varint, or with `end_only` its end tag alone.
        let group = |out: &mut Vec<u8>, number: u32, end_only: bool| {
            if !end_only {
                wire::put_key(out, number, WIRE_START_GROUP);
                wire::put_int64(out, number, 3);
            }
            wire::put_key(out, number, WIRE_END_GROUP);
        };
        let v1_record = |end_only: Option<bool>| {
            let mut series = series(pod_labels("node_load1", "p1"), 10_000).encode_to_vec();
            if let Some(end_only) = end_only {
                group(&mut series, v1::TIME_SERIES_HISTOGRAMS + 1, end_only);
            }
            let mut request = Vec::new();
            wire::put_len_field(&mut request, v1::WRITE_REQUEST_TIMESERIES, &series);
            request
        };
        let v2_record = |end_only: Option<bool>| {
            let labels = pod_labels("node_load1", "p1").into_iter();
            let series = BatchSeries {
                labels: labels.map(|label| (label.name, label.value)).collect(),
                samples: vec![v2::Sample {
                    value: 1.0,
                    timestamp: 10_000,
                    start_timestamp: 0,
                }],
                ..Default::default()
            };
            let mut request = crate::forward::request::encode_series_v2(&[series]);
            if let Some(end_only) = end_only {
                group(&mut request, v2_field::REQUEST_TIMESERIES + 1, end_only);
            }
            request
        };
        let prost_reads = |content_type: &str, bytes: &[u8]| match content_type {
            proto::CONTENT_TYPE_V1 => WriteRequest::decode(bytes).is_ok(),
            _ => v2::Request::decode(bytes).is_ok(),
        };
        for (content_type, record) in [
            (
                proto::CONTENT_TYPE_V1,
                &v1_record as &dyn Fn(Option<bool>) -> Vec<u8>,
            ),
            (proto::CONTENT_TYPE_V2, &v2_record),
        ] {
            let process =
                |bytes: &[u8]| joiner_with_p1().process("acme", content_type, bytes, ORIGIN, 0);
            let plain = process(&record(None)).unwrap();
            let with_group = record(Some(false));
            assert!(prost_reads(content_type, &with_group), "{content_type}");
            let skipped = process(&with_group).unwrap();
            assert_eq!(bound_ids(&skipped), bound_ids(&plain), "{content_type}");
            assert!(!bound_ids(&plain).is_empty(), "{content_type}");
            for (a, b) in plain.iter().zip(&skipped) {
                assert_eq!(batch(a), batch(b), "{content_type}");
            }
            let stray = record(Some(true));
            assert!(!prost_reads(content_type, &stray), "{content_type}");
            assert!(
                matches!(
                    process(&stray),
                    Err(JoinError::Wire(WireError::UnexpectedEndGroup))
                ),
                "{content_type}"
            );
        }
    }

    #[test]
    fn corrupt_records_are_errors_not_panics() {
        use proto::fields::v2 as v2_field;
        use wire::{WIRE_LEN, WIRE_VARINT, key_byte};
        let mut joiner = joiner_with_p1();
        for payload in [
            // A series whose length is cut short.
            &[key_byte(v1::WRITE_REQUEST_TIMESERIES, WIRE_LEN), 0xff][..],
            // A series of one unpacked ref into a table without it.
            &[
                key_byte(v2_field::REQUEST_TIMESERIES, WIRE_LEN),
                2,
                key_byte(v2_field::TIME_SERIES_LABELS_REFS, WIRE_VARINT),
                9,
            ][..],
            // A table without "" first.
            &[key_byte(v2_field::REQUEST_SYMBOLS, WIRE_LEN), 1, b'x'][..],
        ] {
            for content_type in [proto::CONTENT_TYPE_V1, proto::CONTENT_TYPE_V2] {
                let _ = joiner.process("acme", content_type, payload, ORIGIN, 0);
            }
        }
        let out_of_range = v2::Request {
            symbols: vec![String::new()],
            timeseries: vec![v2::TimeSeries {
                labels_refs: vec![1, 2],
                ..Default::default()
            }],
        };
        assert!(matches!(
            joiner.process(
                "acme",
                proto::CONTENT_TYPE_V2,
                &out_of_range.encode_to_vec(),
                ORIGIN,
                0
            ),
            Err(JoinError::Symbol(1))
        ));
    }
}
