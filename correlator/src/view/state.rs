//! The binding view's memory: what the output topics said, per tenant and
//! minute, per component and per series, within fixed bounds. Records go in,
//! summaries come out; nothing here touches Kafka or HTTP.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::join::OutputLabels;
use crate::output::{BatchSeries, Labels};
use crate::tail::describe_labels;

/// Series kept at most, bound and unbound together [default of `--view-series-max`].
pub fn default_series_max() -> usize {
    10_000
}

/// Latest points kept per series [default of `--view-points-per-series`].
pub fn default_points_per_series() -> usize {
    30
}

/// Minutes of history in the per-tenant chart [default of `--view-minutes`].
pub fn default_minutes() -> usize {
    15
}

/// Example series shown per unbound reason.
pub const EXAMPLES_PER_REASON: usize = 5;

/// Components listed on the summary page.
pub const TOP_COMPONENTS: usize = 20;

/// Series a search returns at most.
pub const SEARCH_HITS_MAX: usize = 100;

const MINUTE_MS: i64 = 60_000;

/// The bounds of the view's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub series_max: usize,
    pub points_per_series: usize,
    pub minutes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            series_max: default_series_max(),
            points_per_series: default_points_per_series(),
            minutes: default_minutes(),
        }
    }
}

/// What a record's headers say it holds.
#[derive(Debug, Clone, Copy)]
pub enum RecordBinding<'a> {
    Bound {
        component: &'a str,
        component_type: &'a str,
        rule: &'a str,
    },
    Unbound {
        reason: &'a str,
    },
}

/// A record of either output topic, its batch read.
#[derive(Debug, Clone, Copy)]
pub struct RecordIn<'a> {
    pub tenant: &'a str,
    /// The record's Kafka timestamp: the minute it is counted in.
    pub timestamp_ms: i64,
    pub binding: RecordBinding<'a>,
    pub batch: &'a [BatchSeries],
}

/// Samples of one minute (or since the start), bound and unbound by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub bound: u64,
    pub unbound: BTreeMap<String, u64>,
}

impl Counts {
    fn add(&mut self, binding: &RecordBinding, samples: u64) {
        match binding {
            RecordBinding::Bound { .. } => self.bound += samples,
            RecordBinding::Unbound { reason } => {
                *self.unbound.entry(reason.to_string()).or_default() += samples
            }
        }
    }

    pub fn unbound_total(&self) -> u64 {
        self.unbound.values().sum()
    }
}

#[derive(Debug, Default)]
struct Tenant {
    total: Counts,
    /// By the minute's start (ms), the newest `Limits::minutes` of them.
    minutes: BTreeMap<i64, Counts>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SeriesKey {
    tenant: String,
    /// As the record holds them, the added labels included.
    labels: Labels,
}

#[derive(Debug, Clone, PartialEq)]
enum SeriesBinding {
    Bound { component: String },
    Unbound { reason: String, detail: String },
}

#[derive(Debug)]
struct Series {
    binding: SeriesBinding,
    /// Timestamp and value, oldest first.
    points: VecDeque<(i64, f64)>,
    histograms: u64,
    /// When it was last written to, in the view's own order.
    touched: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct ComponentKey {
    tenant: String,
    external_id: String,
}

#[derive(Debug)]
struct Component {
    kind: String,
    name: String,
    rule: String,
    /// Series of it the view keeps.
    series: usize,
    samples: u64,
}

/// Everything the page shows, within [`Limits`].
#[derive(Debug)]
pub struct BindingView {
    limits: Limits,
    labels: OutputLabels,
    tenants: BTreeMap<String, Tenant>,
    series: HashMap<SeriesKey, Series>,
    /// Series by when they were last written to: the first is evicted first.
    by_touch: BTreeMap<u64, SeriesKey>,
    components: HashMap<ComponentKey, Component>,
    clock: u64,
    records: u64,
    unreadable_records: u64,
    series_evicted: u64,
    points_dropped: u64,
}

/// A series as the pages show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesSummary {
    pub tenant: String,
    /// PromQL form, without the labels the correlator added.
    pub labels: String,
    /// The component it is bound to, if bound.
    pub component: Option<String>,
    /// The reason and its detail, if unbound.
    pub reason: Option<String>,
    pub detail: Option<String>,
    /// Timestamp (ms) and value, oldest first; non-finite values are null.
    pub points: Vec<(i64, Option<f64>)>,
    pub histograms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantSummary {
    pub tenant: String,
    /// Since the view started reading.
    pub total: Counts,
    /// The last `Limits::minutes` minutes up to now, oldest first, empty ones included.
    pub minutes: Vec<MinuteSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinuteSummary {
    pub start_ms: i64,
    pub counts: Counts,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentSummary {
    pub tenant: String,
    pub external_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub rule: String,
    /// Bound series the view keeps.
    pub series: usize,
    /// Bound samples since the view started (or since the component was
    /// forgotten with its last series).
    pub samples: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReasonExamples {
    pub tenant: String,
    pub reason: String,
    pub samples: u64,
    /// The most recently written series of the reason.
    pub examples: Vec<SeriesSummary>,
}

/// The view's bounds and how often they were reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    pub limits: Limits,
    pub series: usize,
    pub components: usize,
    /// Series forgotten to make room for a new one (`series_max`).
    pub series_evicted: u64,
    /// Points pushed out of a series' window (`points_per_series`).
    pub points_dropped: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub tenants: Vec<TenantSummary>,
    /// By bound series kept, most first.
    pub top_components: Vec<ComponentSummary>,
    pub unbound: Vec<ReasonExamples>,
    pub records: u64,
    pub unreadable_records: u64,
    pub memory: Memory,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentPage {
    pub component: ComponentSummary,
    /// Sorted by their labels.
    pub series: Vec<SeriesSummary>,
}

/// A search: `name=value` (exact), `name=~text` (value contains), or text
/// that any label value contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelQuery {
    Equals(String, String),
    Contains(String, String),
    AnyContains(String),
}

impl LabelQuery {
    pub fn parse(query: &str) -> Option<LabelQuery> {
        let query = query.trim();
        if query.is_empty() {
            return None;
        }
        if let Some((name, text)) = query.split_once("=~") {
            return Some(LabelQuery::Contains(
                name.trim().to_string(),
                unquoted(text).to_string(),
            ));
        }
        if let Some((name, value)) = query.split_once('=') {
            return Some(LabelQuery::Equals(
                name.trim().to_string(),
                unquoted(value).to_string(),
            ));
        }
        Some(LabelQuery::AnyContains(query.to_string()))
    }

    fn matches(&self, labels: &Labels) -> bool {
        match self {
            LabelQuery::Equals(name, value) => labels.iter().any(|(n, v)| n == name && v == value),
            LabelQuery::Contains(name, text) => labels
                .iter()
                .any(|(n, v)| n == name && v.contains(text.as_str())),
            LabelQuery::AnyContains(text) => labels.iter().any(|(_, v)| v.contains(text.as_str())),
        }
    }
}

fn unquoted(text: &str) -> &str {
    let text = text.trim();
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text)
}

fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

fn minute_of(timestamp_ms: i64) -> i64 {
    timestamp_ms.div_euclid(MINUTE_MS) * MINUTE_MS
}

impl BindingView {
    pub fn new(limits: Limits, labels: OutputLabels) -> BindingView {
        BindingView {
            limits,
            labels,
            tenants: BTreeMap::new(),
            series: HashMap::new(),
            by_touch: BTreeMap::new(),
            components: HashMap::new(),
            clock: 0,
            records: 0,
            unreadable_records: 0,
            series_evicted: 0,
            points_dropped: 0,
        }
    }

    /// A record that could not be read: counted, nothing else.
    pub fn add_unreadable(&mut self) {
        self.unreadable_records += 1;
    }

    pub fn add(&mut self, record: RecordIn) {
        self.records += 1;
        let samples: u64 = record
            .batch
            .iter()
            .map(|series| (series.samples.len() + series.histograms.len()) as u64)
            .sum();
        let minutes = self.limits.minutes;
        let tenant = self.tenants.entry(record.tenant.to_string()).or_default();
        tenant.total.add(&record.binding, samples);
        let minute = minute_of(record.timestamp_ms);
        tenant
            .minutes
            .entry(minute)
            .or_default()
            .add(&record.binding, samples);
        while tenant.minutes.len() > minutes {
            tenant.minutes.pop_first();
        }
        for series in record.batch {
            self.add_series(record.tenant, &record.binding, series);
        }
    }

    fn add_series(&mut self, tenant: &str, binding: &RecordBinding, incoming: &BatchSeries) {
        self.clock += 1;
        let touched = self.clock;
        let key = SeriesKey {
            tenant: tenant.to_string(),
            labels: incoming.labels.clone(),
        };
        let is_new = match self.series.get(&key) {
            Some(series) => {
                self.by_touch.remove(&series.touched);
                false
            }
            None => {
                // Before its component is looked up: the evicted series may
                // have been that component's last.
                if self.series.len() >= self.limits.series_max {
                    self.evict_oldest();
                }
                true
            }
        };
        let series_binding = match binding {
            RecordBinding::Bound {
                component,
                component_type,
                rule,
            } => {
                let entry = self
                    .components
                    .entry(ComponentKey {
                        tenant: tenant.to_string(),
                        external_id: component.to_string(),
                    })
                    .or_insert_with(|| Component {
                        kind: component_type.to_string(),
                        name: incoming
                            .label(&self.labels.component_name)
                            .unwrap_or("")
                            .to_string(),
                        rule: rule.to_string(),
                        series: 0,
                        samples: 0,
                    });
                entry.samples += (incoming.samples.len() + incoming.histograms.len()) as u64;
                entry.series += usize::from(is_new);
                SeriesBinding::Bound {
                    component: component.to_string(),
                }
            }
            RecordBinding::Unbound { reason } => SeriesBinding::Unbound {
                reason: reason.to_string(),
                detail: incoming
                    .label(&self.labels.unbound_detail)
                    .unwrap_or("")
                    .to_string(),
            },
        };
        let points_per_series = self.limits.points_per_series;
        let series = self.series.entry(key.clone()).or_insert_with(|| Series {
            binding: series_binding,
            points: VecDeque::with_capacity(points_per_series),
            histograms: 0,
            touched,
        });
        series.touched = touched;
        series.histograms += incoming.histograms.len() as u64;
        for sample in &incoming.samples {
            if series.points.len() >= points_per_series {
                series.points.pop_front();
                self.points_dropped += 1;
            }
            if points_per_series > 0 {
                series.points.push_back((sample.timestamp, sample.value));
            }
        }
        self.by_touch.insert(touched, key);
    }

    fn evict_oldest(&mut self) {
        let Some((_, key)) = self.by_touch.pop_first() else {
            return;
        };
        let Some(series) = self.series.remove(&key) else {
            return;
        };
        self.series_evicted += 1;
        if let SeriesBinding::Bound { component } = series.binding {
            let component_key = ComponentKey {
                tenant: key.tenant,
                external_id: component,
            };
            if let Some(entry) = self.components.get_mut(&component_key) {
                entry.series = entry.series.saturating_sub(1);
                if entry.series == 0 {
                    self.components.remove(&component_key);
                }
            }
        }
    }

    /// The labels a page shows: the series' own, without the added ones.
    fn shown_labels(&self, labels: &Labels) -> String {
        let hidden = [
            self.labels.external_id.as_str(),
            self.labels.component_type.as_str(),
            self.labels.component_name.as_str(),
            self.labels.unbound_reason.as_str(),
            self.labels.unbound_detail.as_str(),
        ];
        describe_labels(labels, &hidden)
    }

    fn series_summary(&self, key: &SeriesKey, series: &Series) -> SeriesSummary {
        let (component, reason, detail) = match &series.binding {
            SeriesBinding::Bound { component } => (Some(component.clone()), None, None),
            SeriesBinding::Unbound { reason, detail } => {
                (None, Some(reason.clone()), Some(detail.clone()))
            }
        };
        SeriesSummary {
            tenant: key.tenant.clone(),
            labels: self.shown_labels(&key.labels),
            component,
            reason,
            detail,
            points: series
                .points
                .iter()
                .map(|(timestamp, value)| (*timestamp, finite(*value)))
                .collect(),
            histograms: series.histograms,
        }
    }

    fn component_summary(&self, key: &ComponentKey, component: &Component) -> ComponentSummary {
        ComponentSummary {
            tenant: key.tenant.clone(),
            external_id: key.external_id.clone(),
            kind: component.kind.clone(),
            name: component.name.clone(),
            rule: component.rule.clone(),
            series: component.series,
            samples: component.samples,
        }
    }

    pub fn memory(&self) -> Memory {
        Memory {
            limits: self.limits,
            series: self.series.len(),
            components: self.components.len(),
            series_evicted: self.series_evicted,
            points_dropped: self.points_dropped,
        }
    }

    /// The summary page's numbers as of `now_ms`.
    pub fn summary(&self, now_ms: i64) -> Summary {
        let newest_minute = minute_of(now_ms);
        let tenants = self
            .tenants
            .iter()
            .map(|(name, tenant)| TenantSummary {
                tenant: name.clone(),
                total: tenant.total.clone(),
                minutes: (0..self.limits.minutes as i64)
                    .rev()
                    .map(|back| {
                        let start_ms = newest_minute - back * MINUTE_MS;
                        MinuteSummary {
                            start_ms,
                            counts: tenant.minutes.get(&start_ms).cloned().unwrap_or_default(),
                        }
                    })
                    .collect(),
            })
            .collect();
        let mut components: Vec<(&ComponentKey, &Component)> = self.components.iter().collect();
        components.sort_by(|(a_key, a), (b_key, b)| {
            b.series
                .cmp(&a.series)
                .then(b.samples.cmp(&a.samples))
                .then(a_key.cmp(b_key))
        });
        let top_components = components
            .into_iter()
            .take(TOP_COMPONENTS)
            .map(|(key, component)| self.component_summary(key, component))
            .collect();
        Summary {
            tenants,
            top_components,
            unbound: self.unbound_examples(),
            records: self.records,
            unreadable_records: self.unreadable_records,
            memory: self.memory(),
        }
    }

    fn unbound_examples(&self) -> Vec<ReasonExamples> {
        let mut by_reason: BTreeMap<(&str, &str), Vec<(&SeriesKey, &Series)>> = BTreeMap::new();
        for (key, series) in &self.series {
            if let SeriesBinding::Unbound { reason, .. } = &series.binding {
                by_reason
                    .entry((key.tenant.as_str(), reason.as_str()))
                    .or_default()
                    .push((key, series));
            }
        }
        let mut examples = Vec::new();
        for (tenant_name, tenant) in &self.tenants {
            for (reason, samples) in &tenant.total.unbound {
                let mut series = by_reason
                    .remove(&(tenant_name.as_str(), reason.as_str()))
                    .unwrap_or_default();
                series.sort_by_key(|(_, series)| std::cmp::Reverse(series.touched));
                examples.push(ReasonExamples {
                    tenant: tenant_name.clone(),
                    reason: reason.clone(),
                    samples: *samples,
                    examples: series
                        .into_iter()
                        .take(EXAMPLES_PER_REASON)
                        .map(|(key, series)| self.series_summary(key, series))
                        .collect(),
                });
            }
        }
        examples
    }

    /// A component and every bound series of it the view keeps.
    pub fn component(&self, tenant: &str, external_id: &str) -> Option<ComponentPage> {
        let key = ComponentKey {
            tenant: tenant.to_string(),
            external_id: external_id.to_string(),
        };
        let component = self.components.get(&key)?;
        let mut series: Vec<SeriesSummary> = self
            .series
            .iter()
            .filter(|(series_key, series)| {
                series_key.tenant == tenant
                    && matches!(&series.binding, SeriesBinding::Bound { component } if component == external_id)
            })
            .map(|(series_key, series)| self.series_summary(series_key, series))
            .collect();
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        Some(ComponentPage {
            component: self.component_summary(&key, component),
            series,
        })
    }

    /// Series whose labels (the added ones included) match, at most
    /// [`SEARCH_HITS_MAX`], sorted by tenant and labels.
    pub fn search(&self, query: &LabelQuery) -> Vec<SeriesSummary> {
        let mut hits: Vec<SeriesSummary> = self
            .series
            .iter()
            .filter(|(key, _)| query.matches(&key.labels))
            .map(|(key, series)| self.series_summary(key, series))
            .collect();
        hits.sort_by(|a, b| (&a.tenant, &a.labels).cmp(&(&b.tenant, &b.labels)));
        hits.truncate(SEARCH_HITS_MAX);
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::v2;

    fn series(labels: &[(&str, &str)], values: &[(i64, f64)]) -> BatchSeries {
        let mut labels: Labels = labels
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        labels.sort();
        BatchSeries {
            labels,
            samples: values
                .iter()
                .map(|(timestamp, value)| v2::Sample {
                    value: *value,
                    timestamp: *timestamp,
                    start_timestamp: 0,
                })
                .collect(),
            ..Default::default()
        }
    }

    fn bound_to<'a>(component: &'a str) -> RecordBinding<'a> {
        RecordBinding::Bound {
            component,
            component_type: "pod",
            rule: "k8s-pod",
        }
    }

    fn record<'a>(
        tenant: &'a str,
        timestamp_ms: i64,
        binding: RecordBinding<'a>,
        batch: &'a [BatchSeries],
    ) -> RecordIn<'a> {
        RecordIn {
            tenant,
            timestamp_ms,
            binding,
            batch,
        }
    }

    fn view(series_max: usize, points_per_series: usize, minutes: usize) -> BindingView {
        BindingView::new(
            Limits {
                series_max,
                points_per_series,
                minutes,
            },
            OutputLabels::default(),
        )
    }

    #[test]
    fn samples_are_counted_per_tenant_minute_and_reason() {
        let mut view = view(100, 10, 3);
        let bound = [
            series(
                &[
                    ("__name__", "up"),
                    ("pod", "p1"),
                    ("component_external_id", "urn:p1"),
                    ("component_name", "p1"),
                ],
                &[(1, 1.0), (2, 1.0)],
            ),
            series(
                &[
                    ("__name__", "mem"),
                    ("pod", "p1"),
                    ("component_external_id", "urn:p1"),
                ],
                &[(1, 5.0)],
            ),
        ];
        let unbound = [series(
            &[
                ("__name__", "up"),
                ("job", "x"),
                ("unbound_reason", "missing_label"),
                ("unbound_detail", "rule k8s-pod needs label pod"),
            ],
            &[(1, 0.0)],
        )];
        view.add(record("acme", 120_000, bound_to("urn:p1"), &bound));
        view.add(record(
            "acme",
            185_000,
            RecordBinding::Unbound {
                reason: "missing_label",
            },
            &unbound,
        ));
        view.add(record("beta", 185_000, bound_to("urn:p1"), &bound[1..]));
        let summary = view.summary(200_000);
        assert_eq!(summary.records, 3);
        let acme = &summary.tenants[0];
        assert_eq!(acme.tenant, "acme");
        assert_eq!(acme.total.bound, 3);
        assert_eq!(acme.total.unbound_total(), 1);
        let minutes: Vec<(i64, u64, u64)> = acme
            .minutes
            .iter()
            .map(|m| (m.start_ms, m.counts.bound, m.counts.unbound_total()))
            .collect();
        assert_eq!(
            minutes,
            [(60_000, 0, 0), (120_000, 3, 0), (180_000, 0, 1)],
            "the last three minutes up to now, empty ones too"
        );
        assert_eq!(summary.tenants[1].total.bound, 1);
        // A component per tenant: acme's has both series.
        let top: Vec<(&str, usize, u64)> = summary
            .top_components
            .iter()
            .map(|c| (c.tenant.as_str(), c.series, c.samples))
            .collect();
        assert_eq!(top, [("acme", 2, 3), ("beta", 1, 1)]);
        assert_eq!(summary.top_components[0].name, "p1");
        let reasons = &summary.unbound[0];
        assert_eq!(
            (reasons.reason.as_str(), reasons.samples),
            ("missing_label", 1)
        );
        assert_eq!(reasons.examples[0].labels, "up{job=\"x\"}");
        assert_eq!(
            reasons.examples[0].detail.as_deref(),
            Some("rule k8s-pod needs label pod")
        );
    }

    #[test]
    fn minutes_older_than_the_window_leave_the_chart_but_stay_in_the_totals() {
        let mut view = view(100, 10, 2);
        let batch = [series(&[("__name__", "up")], &[(1, 1.0)])];
        for minute in 0..5 {
            view.add(record("acme", minute * 60_000, bound_to("urn:a"), &batch));
        }
        let summary = view.summary(4 * 60_000 + 1);
        assert_eq!(summary.tenants[0].total.bound, 5);
        let charted: u64 = summary.tenants[0]
            .minutes
            .iter()
            .map(|m| m.counts.bound)
            .sum();
        assert_eq!(charted, 2);
        assert_eq!(view.tenants["acme"].minutes.len(), 2, "memory is bounded");
    }

    #[test]
    fn a_series_keeps_its_latest_points_and_counts_those_it_drops() {
        let mut view = view(100, 3, 15);
        let values: Vec<(i64, f64)> = (0..5).map(|t| (t, t as f64)).collect();
        let batch = [series(
            &[("__name__", "up"), ("component_external_id", "urn:a")],
            &values,
        )];
        view.add(record("acme", 0, bound_to("urn:a"), &batch));
        let page = view.component("acme", "urn:a").unwrap();
        assert_eq!(
            page.series[0].points,
            [(2, Some(2.0)), (3, Some(3.0)), (4, Some(4.0))]
        );
        assert_eq!(view.memory().points_dropped, 2);
        // A stale marker is kept as a point without a value.
        let stale = [series(
            &[("__name__", "up"), ("component_external_id", "urn:a")],
            &[(5, f64::from_bits(proto::STALE_NAN_BITS))],
        )];
        view.add(record("acme", 0, bound_to("urn:a"), &stale));
        let page = view.component("acme", "urn:a").unwrap();
        assert_eq!(page.series[0].points.last(), Some(&(5, None)));
    }

    #[test]
    fn past_the_cap_the_least_recently_written_series_is_evicted_and_counted() {
        let mut view = view(2, 5, 15);
        let one = |name: &str, component: &'static str| {
            [series(
                &[("__name__", name), ("component_external_id", component)],
                &[(1, 1.0)],
            )]
        };
        view.add(record("acme", 0, bound_to("urn:a"), &one("s1", "urn:a")));
        view.add(record("acme", 0, bound_to("urn:b"), &one("s2", "urn:b")));
        // s1 written again: s2 is now the oldest.
        view.add(record("acme", 0, bound_to("urn:a"), &one("s1", "urn:a")));
        view.add(record("acme", 0, bound_to("urn:a"), &one("s3", "urn:a")));
        let memory = view.memory();
        assert_eq!((memory.series, memory.series_evicted), (2, 1));
        // urn:b lost its only series, and with it its place in the view.
        assert!(view.component("acme", "urn:b").is_none());
        assert_eq!(memory.components, 1);
        let page = view.component("acme", "urn:a").unwrap();
        let labels: Vec<&str> = page.series.iter().map(|s| s.labels.as_str()).collect();
        assert_eq!(labels, ["s1{}", "s3{}"]);
        assert_eq!(page.component.series, 2);
        // The totals do not forget.
        assert_eq!(view.summary(0).tenants[0].total.bound, 4);
    }

    #[test]
    fn a_component_whose_last_series_is_evicted_for_its_own_new_one_stays() {
        let mut view = view(1, 5, 15);
        for name in ["s1", "s2"] {
            let batch = [series(
                &[("__name__", name), ("component_external_id", "urn:a")],
                &[(1, 1.0)],
            )];
            view.add(record("acme", 0, bound_to("urn:a"), &batch));
        }
        let page = view.component("acme", "urn:a").unwrap();
        assert_eq!(page.component.series, 1);
        assert_eq!(page.series[0].labels, "s2{}");
        assert_eq!(view.memory().series_evicted, 1);
    }

    #[test]
    fn the_examples_of_a_reason_are_its_most_recent_series() {
        let mut view = view(100, 5, 15);
        let reason = RecordBinding::Unbound { reason: "no_rule" };
        for index in 0..(EXAMPLES_PER_REASON + 2) {
            let name = format!("s{index}");
            let batch = [series(
                &[("__name__", name.as_str()), ("unbound_reason", "no_rule")],
                &[(1, 1.0)],
            )];
            view.add(record("acme", 0, reason, &batch));
        }
        let summary = view.summary(0);
        let examples: Vec<&str> = summary.unbound[0]
            .examples
            .iter()
            .map(|s| s.labels.as_str())
            .collect();
        assert_eq!(examples, ["s6{}", "s5{}", "s4{}", "s3{}", "s2{}"]);
        assert_eq!(summary.unbound[0].samples, 7);
    }

    #[test]
    fn a_search_matches_a_label_exactly_by_substring_or_any_value() {
        let mut view = view(100, 5, 15);
        let batch = [
            series(
                &[
                    ("__name__", "up"),
                    ("pod", "node-exporter-x7k2p"),
                    ("component_external_id", "urn:a"),
                ],
                &[(1, 1.0)],
            ),
            series(
                &[
                    ("__name__", "mem"),
                    ("pod", "other"),
                    ("component_external_id", "urn:a"),
                ],
                &[(1, 1.0)],
            ),
        ];
        view.add(record("acme", 0, bound_to("urn:a"), &batch));
        let found = |query: &str| -> Vec<String> {
            view.search(&LabelQuery::parse(query).unwrap())
                .into_iter()
                .map(|s| s.labels)
                .collect()
        };
        assert_eq!(
            found("pod=\"node-exporter-x7k2p\""),
            ["up{pod=\"node-exporter-x7k2p\"}"]
        );
        assert_eq!(found("pod=~exporter"), ["up{pod=\"node-exporter-x7k2p\"}"]);
        assert_eq!(found("other"), ["mem{pod=\"other\"}"]);
        assert_eq!(found("component_external_id=urn:a").len(), 2);
        assert!(found("pod=nothing").is_empty());
        assert_eq!(LabelQuery::parse("  "), None);
    }
}
