//! The forwarder's metrics, served on its `/metrics`: what was sent, dropped
//! and retried, by kind of point and topic, the requests by outcome, their
//! duration, and how far behind the topics it is.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::forward::batch::PointCounts;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PointLabels {
    /// `bound` or `unbound`.
    pub topic: &'static str,
    /// `sample`, `histogram` or `exemplar`.
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    pub topic: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub topic: &'static str,
    /// `sent`, `rejected`, `retried`, `connection_error`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SkippedLabels {
    pub topic: &'static str,
    pub reason: &'static str,
}

fn duration_histogram() -> Histogram {
    // 1 ms to about 33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

pub struct ForwardMetrics {
    registry: Registry,
    pub sent: Family<PointLabels, Counter>,
    pub failed: Family<PointLabels, Counter>,
    pub retried: Family<PointLabels, Counter>,
    pub requests: Family<OutcomeLabels, Counter>,
    pub request_duration: Family<TopicLabels, Histogram, fn() -> Histogram>,
    pub records_consumed: Family<TopicLabels, Counter>,
    pub records_skipped: Family<SkippedLabels, Counter>,
    pub lag: Family<TopicLabels, Gauge>,
}

impl ForwardMetrics {
    pub fn new() -> ForwardMetrics {
        let mut registry = Registry::with_prefix("correlator_forward");
        let metrics = ForwardMetrics {
            registry: Registry::default(),
            sent: Family::default(),
            failed: Family::default(),
            retried: Family::default(),
            requests: Family::default(),
            request_duration: Family::new_with_constructor(duration_histogram),
            records_consumed: Family::default(),
            records_skipped: Family::default(),
            lag: Family::default(),
        };
        registry.register(
            "sent",
            "Samples, histograms and exemplars the endpoint took (2xx), by topic and kind",
            metrics.sent.clone(),
        );
        registry.register(
            "failed",
            "Samples, histograms and exemplars dropped because the endpoint refused them (4xx other than 429), by topic and kind",
            metrics.failed.clone(),
        );
        registry.register(
            "retried",
            "Samples, histograms and exemplars sent again after a 5xx, a 429 or a connection error, by topic and kind",
            metrics.retried.clone(),
        );
        registry.register(
            "requests",
            "Requests by outcome: sent, rejected, retried (5xx or 429), connection_error",
            metrics.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from sending a request to its answer",
            metrics.request_duration.clone(),
        );
        registry.register(
            "records_consumed",
            "Records read from the topic",
            metrics.records_consumed.clone(),
        );
        registry.register(
            "records_skipped",
            "Records that could not be read and were not forwarded, by reason",
            metrics.records_skipped.clone(),
        );
        registry.register(
            "lag_records",
            "Records in the topic not yet answered for by the endpoint (end offsets minus the offsets a restart would read from)",
            metrics.lag.clone(),
        );
        ForwardMetrics {
            registry,
            ..metrics
        }
    }

    /// Adds `points` of `topic` to one of the point counters.
    pub fn count(family: &Family<PointLabels, Counter>, topic: &'static str, points: PointCounts) {
        for (kind, count) in [
            ("sample", points.samples),
            ("histogram", points.histograms),
            ("exemplar", points.exemplars),
        ] {
            family
                .get_or_create(&PointLabels { topic, kind })
                .inc_by(count);
        }
    }

    pub fn render(&self) -> String {
        shared::metrics::render(&self.registry)
    }
}

impl Default for ForwardMetrics {
    fn default() -> Self {
        ForwardMetrics::new()
    }
}
