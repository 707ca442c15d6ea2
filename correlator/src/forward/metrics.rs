//! The forwarder's metrics, served on its `/metrics`: what was sent, dropped
//! and retried, by kind of point and topic, the requests by outcome, their
//! duration, and how far behind the topics it is.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

use crate::forward::batch::PointCounts;

shared::label_sets! {
    pub struct PointLabels {
        /// `bound` or `unbound`.
        pub topic: &'static str,
        /// `sample`, `histogram` or `exemplar`.
        pub kind: &'static str,
    }

    pub struct TopicLabels {
        pub topic: &'static str,
    }

    pub struct OutcomeLabels {
        pub topic: &'static str,
        /// `sent`, `rejected`, `retried`, `connection_error`.
        pub outcome: &'static str,
    }

    pub struct SkippedLabels {
        pub topic: &'static str,
        pub reason: &'static str,
    }
}

shared::service_metrics! {
    pub struct ForwardMetrics in "correlator_forward" {
        /// Samples, histograms and exemplars the endpoint took (2xx), by topic and kind
        sent: Family<PointLabels, Counter>,
        /// Samples, histograms and exemplars dropped because the endpoint refused them (4xx other than 429), by topic and kind
        failed: Family<PointLabels, Counter>,
        /// Samples, histograms and exemplars sent again after a 5xx, a 429 or a connection error, by topic and kind
        retried: Family<PointLabels, Counter>,
        /// Requests by outcome: sent, rejected, retried (5xx or 429), connection_error
        requests: Family<OutcomeLabels, Counter>,
        // Buckets from 1 ms to about 33 s.
        /// Time from sending a request to its answer
        request_duration as "request_duration_seconds": Family<TopicLabels, Histogram, fn() -> Histogram> = Family::new_with_constructor(|| shared::metrics::duration_histogram(0.001)),
        /// Records read from the topic
        records_consumed: Family<TopicLabels, Counter>,
        /// Records that could not be read and were not forwarded, by reason
        records_skipped: Family<SkippedLabels, Counter>,
        /// Records in the topic not yet answered for by the endpoint (end offsets minus the offsets a restart would read from)
        lag as "lag_records": Family<TopicLabels, Gauge>,
    }
}

impl ForwardMetrics {
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
}
