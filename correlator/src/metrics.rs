//! The correlator's own metrics, served on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::delivery::QueueFullSeconds;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub bound_points: Counter,
    pub released_points: Counter,
    pub unbound_points: Family<ReasonLabels, Counter>,
    pub records_consumed: Family<KindLabels, Counter>,
    pub records_skipped: Family<ReasonLabels, Counter>,
    pub records_produced: Family<KindLabels, Counter>,
    pub points_produced: Family<KindLabels, Counter>,
    pub series_produced: Family<KindLabels, Counter>,
    pub topology_changes: Family<KindLabels, Counter>,
    pub snapshots_abandoned: Counter,
    pub topology_components: Gauge,
    pub topology_identifiers: Gauge,
    pub pending_samples: Gauge,
    pub series_cache: Gauge,
    pub open_snapshots: Gauge,
    pub transactions_aborted: Counter,
    pub output_queue_full: QueueFullSeconds,
    pub end_to_end_lag: Histogram,
}

/// Buckets of `correlator_end_to_end_lag_seconds`: 1-2-5 steps from 1 ms to 5 min.
fn lag_buckets() -> Vec<f64> {
    let mut buckets = Vec::new();
    let mut decade = 0.001;
    while decade < 1000.0 {
        for step in [1.0, 2.0, 5.0] {
            let bucket: f64 = decade * step;
            if bucket <= 300.0 {
                buckets.push((bucket * 1e6).round() / 1e6);
            }
        }
        decade *= 10.0;
    }
    buckets
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("correlator");
        let metrics = Metrics {
            registry: Registry::default(),
            bound_points: Counter::default(),
            released_points: Counter::default(),
            unbound_points: Family::default(),
            records_consumed: Family::default(),
            records_skipped: Family::default(),
            records_produced: Family::default(),
            points_produced: Family::default(),
            series_produced: Family::default(),
            topology_changes: Family::default(),
            snapshots_abandoned: Counter::default(),
            topology_components: Gauge::default(),
            topology_identifiers: Gauge::default(),
            pending_samples: Gauge::default(),
            series_cache: Gauge::default(),
            open_snapshots: Gauge::default(),
            transactions_aborted: Counter::default(),
            output_queue_full: QueueFullSeconds::default(),
            end_to_end_lag: Histogram::new(lag_buckets()),
        };
        registry.register(
            "bound_points",
            "Samples and histograms bound to a component on arrival",
            metrics.bound_points.clone(),
        );
        registry.register(
            "released_points",
            "Samples bound after waiting for their component",
            metrics.released_points.clone(),
        );
        registry.register(
            "unbound_points",
            "Samples sent to metrics.unbound, by reason",
            metrics.unbound_points.clone(),
        );
        registry.register(
            "records_consumed",
            "Records consumed, by topic kind",
            metrics.records_consumed.clone(),
        );
        registry.register(
            "records_skipped",
            "Records that could not be read, by reason",
            metrics.records_skipped.clone(),
        );
        registry.register(
            "records_produced",
            "Records produced, by topic kind",
            metrics.records_produced.clone(),
        );
        registry.register(
            "points_produced",
            "Samples and histograms in the records produced, by topic kind (a sample bound to three components counts three times)",
            metrics.points_produced.clone(),
        );
        registry.register(
            "series_produced",
            "Series in the records produced, by topic kind",
            metrics.series_produced.clone(),
        );
        registry.register(
            "topology_changes",
            "Upserts and deletions written to topology.components",
            metrics.topology_changes.clone(),
        );
        registry.register(
            "snapshots_abandoned",
            "Snapshots that never completed and were dropped",
            metrics.snapshots_abandoned.clone(),
        );
        registry.register(
            "topology_components",
            "Current components in the join's index",
            metrics.topology_components.clone(),
        );
        registry.register(
            "topology_identifiers",
            "Identifiers in the join's index",
            metrics.topology_identifiers.clone(),
        );
        registry.register(
            "pending_samples",
            "Samples waiting for their component",
            metrics.pending_samples.clone(),
        );
        registry.register(
            "series_cache",
            "Series whose rendered identifiers are cached",
            metrics.series_cache.clone(),
        );
        registry.register(
            "open_snapshots",
            "Snapshots started and not yet completed",
            metrics.open_snapshots.clone(),
        );
        registry.register(
            "transactions_aborted",
            "Aborted transactions (exactly-once mode)",
            metrics.transactions_aborted.clone(),
        );
        registry.register(
            "output_queue_full_seconds",
            "Seconds the join waited for room in the producer's queue: back-pressure from Kafka, while the backlog waits in metrics.samples",
            metrics.output_queue_full.clone(),
        );
        registry.register(
            "end_to_end_lag_seconds",
            "Seconds from a samples record's Kafka timestamp (its write by ingest) to the acknowledgement of the outputs of its arrival (at-least-once) or the commit of their transaction (exactly-once)",
            metrics.end_to_end_lag.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    pub fn render(&self) -> String {
        shared::metrics::render(&self.registry)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
