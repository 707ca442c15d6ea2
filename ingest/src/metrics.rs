//! The service's own metrics, served on `/metrics`. Label values come from
//! closed sets (endpoints, statuses, reasons) or from the keys file (tenants),
//! never from request content.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub endpoint: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    pub tenant: String,
}

/// What a tenant had refused: `kind` is sample, histogram, exemplar or metadata.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    pub tenant: String,
    pub reason: &'static str,
    pub kind: &'static str,
}

/// A 401: the credential form tried and what was wrong with it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UnauthorizedLabels {
    pub form: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

fn latency_histogram() -> Histogram {
    // 100 µs to about 3.3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Family<KindLabels, Histogram, fn() -> Histogram>,
    pub accepted: Family<KindLabels, Counter>,
    pub rejected_samples: Family<ReasonLabels, Counter>,
    pub rejected_series: Family<ReasonLabels, Counter>,
    pub refused: Family<RefusedLabels, Counter>,
    pub unauthorized: Family<UnauthorizedLabels, Counter>,
    pub received_bytes: Family<KindLabels, Counter>,
    pub decode_duration: Histogram,
    pub kafka_publish_duration: Histogram,
    pub kafka_records: Family<ResultLabels, Counter>,
    pub kafka_queue_messages: Gauge,
    pub rate_limited: Family<TenantLabels, Counter>,
    pub api_key_reloads: Family<ResultLabels, Counter>,
    pub api_keys: Gauge,
    pub tls_certificate_reloads: Family<ResultLabels, Counter>,
    pub inflight_bytes: Gauge,
    pub topology_parts: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("ingest");
        let metrics = Metrics {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(latency_histogram),
            accepted: Family::default(),
            rejected_samples: Family::default(),
            rejected_series: Family::default(),
            refused: Family::default(),
            unauthorized: Family::default(),
            received_bytes: Family::default(),
            decode_duration: latency_histogram(),
            kafka_publish_duration: latency_histogram(),
            kafka_records: Family::default(),
            kafka_queue_messages: Gauge::default(),
            rate_limited: Family::default(),
            api_key_reloads: Family::default(),
            api_keys: Gauge::default(),
            tls_certificate_reloads: Family::default(),
            inflight_bytes: Gauge::default(),
            topology_parts: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests by endpoint and status",
            metrics.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from request start to answer, by endpoint kind",
            metrics.request_duration.clone(),
        );
        registry.register(
            "samples_accepted",
            "Samples, histograms, exemplars and metadata entries acknowledged to senders",
            metrics.accepted.clone(),
        );
        registry.register(
            "samples_rejected",
            "Samples refused, by reason (invalid series, rate limit, size, Kafka unavailable)",
            metrics.rejected_samples.clone(),
        );
        registry.register(
            "series_rejected",
            "Series left out of a request as invalid, by reason",
            metrics.rejected_series.clone(),
        );
        registry.register(
            "refused",
            "Samples, histograms, exemplars and metadata entries refused, by tenant, reason and kind",
            metrics.refused.clone(),
        );
        registry.register(
            "unauthorized_requests",
            "Requests refused with 401, by credential form tried and reason",
            metrics.unauthorized.clone(),
        );
        registry.register(
            "received_bytes",
            "Request bytes, compressed and decompressed",
            metrics.received_bytes.clone(),
        );
        registry.register(
            "decode_duration_seconds",
            "Time to decompress, validate and partition a write",
            metrics.decode_duration.clone(),
        );
        registry.register(
            "kafka_publish_duration_seconds",
            "Time from sending a request's records to their last ack",
            metrics.kafka_publish_duration.clone(),
        );
        registry.register(
            "kafka_records",
            "Records sent to Kafka, by result",
            metrics.kafka_records.clone(),
        );
        registry.register(
            "kafka_producer_queue_messages",
            "Messages in the producer's queue, waiting to be sent or acked",
            metrics.kafka_queue_messages.clone(),
        );
        registry.register(
            "rate_limited_requests",
            "Requests refused with 429, by tenant",
            metrics.rate_limited.clone(),
        );
        registry.register(
            "api_keys_reloads",
            "Reloads of the API keys file, by result",
            metrics.api_key_reloads.clone(),
        );
        registry.register("api_keys", "API keys in force", metrics.api_keys.clone());
        registry.register(
            "tls_certificate_reloads",
            "Reloads of the TLS certificate and key after they changed, by result",
            metrics.tls_certificate_reloads.clone(),
        );
        registry.register(
            "inflight_bytes",
            "Decompressed request bytes held in memory now",
            metrics.inflight_bytes.clone(),
        );
        registry.register(
            "topology_parts",
            "Topology snapshot parts published",
            metrics.topology_parts.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// The text exposition (OpenMetrics) of every metric.
    pub fn render(&self) -> String {
        shared::metrics::render(&self.registry)
    }
}
