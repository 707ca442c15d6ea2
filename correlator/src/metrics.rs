//! The correlator's own metrics, served on `/metrics`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
pub use shared::metrics::KindLabels;
pub use shared::metrics::ReasonLabels;

use crate::delivery::QueueFullSeconds;

shared::service_metrics! {
    pub struct Metrics in "correlator" {
        /// Samples and histograms bound to a component on arrival
        bound_points: Counter,
        /// Samples bound after waiting for their component
        released_points: Counter,
        /// Samples sent to metrics.unbound, by reason
        unbound_points: Family<ReasonLabels, Counter>,
        /// Records consumed, by topic kind
        records_consumed: Family<KindLabels, Counter>,
        /// Records that could not be read, by reason
        records_skipped: Family<ReasonLabels, Counter>,
        /// Records produced, by topic kind
        records_produced: Family<KindLabels, Counter>,
        /// Samples and histograms in the records produced, by topic kind (a sample bound to three components counts three times)
        points_produced: Family<KindLabels, Counter>,
        /// Series in the records produced, by topic kind
        series_produced: Family<KindLabels, Counter>,
        /// Upserts and deletions written to topology.components
        topology_changes: Family<KindLabels, Counter>,
        /// Snapshots that never completed and were dropped
        snapshots_abandoned: Counter,
        /// Current components in the join's index
        topology_components: Gauge,
        /// Identifiers in the join's index
        topology_identifiers: Gauge,
        /// Samples waiting for their component
        pending_samples: Gauge,
        /// Series whose rendered identifiers are cached
        series_cache: Gauge,
        /// Snapshots started and not yet completed
        open_snapshots: Gauge,
        /// Aborted transactions (exactly-once mode)
        transactions_aborted: Counter,
        /// Seconds the join waited for room in the producer's queue: back-pressure from Kafka, while the backlog waits in metrics.samples
        output_queue_full as "output_queue_full_seconds": QueueFullSeconds,
        /// Seconds from a samples record's Kafka timestamp (its write by ingest) to the acknowledgement of the outputs of its arrival (at-least-once) or the commit of their transaction (exactly-once)
        end_to_end_lag as "end_to_end_lag_seconds": Histogram = Histogram::new(lag_buckets()),
    }
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
