//! The service's own metrics, served on `/metrics`. Label values come from
//! closed sets (endpoints, statuses, reasons) or from the keys file (tenants),
//! never from request content.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
pub use shared::metrics::KindLabels;
pub use shared::metrics::{ReasonLabels, ResultLabels};

shared::label_sets! {
    pub struct RequestLabels {
        pub endpoint: &'static str,
        pub status: u16,
    }

    pub struct TenantLabels {
        pub tenant: String,
    }

    /// What a tenant had refused: `kind` is sample, histogram, exemplar or metadata.
    pub struct RefusedLabels {
        pub tenant: String,
        pub reason: &'static str,
        pub kind: &'static str,
    }

    /// A 401: the credential form tried and what was wrong with it.
    pub struct UnauthorizedLabels {
        pub form: &'static str,
        pub reason: &'static str,
    }
}

/// 100 µs to about 3.3 s.
fn latency_histogram() -> Histogram {
    shared::metrics::duration_histogram(0.0001)
}

shared::service_metrics! {
    pub struct Metrics in "ingest" {
        /// HTTP requests by endpoint and status
        requests as "http_requests": Family<RequestLabels, Counter>,
        /// Time from request start to answer, by endpoint kind
        request_duration as "http_request_duration_seconds": Family<KindLabels, Histogram, fn() -> Histogram> = Family::new_with_constructor(latency_histogram),
        /// Samples, histograms, exemplars and metadata entries acknowledged to senders
        accepted as "samples_accepted": Family<KindLabels, Counter>,
        /// Samples refused, by reason (invalid series, rate limit, size, Kafka unavailable)
        rejected_samples as "samples_rejected": Family<ReasonLabels, Counter>,
        /// Series left out of a request as invalid, by reason
        rejected_series as "series_rejected": Family<ReasonLabels, Counter>,
        /// Samples, histograms, exemplars and metadata entries refused, by tenant, reason and kind
        refused: Family<RefusedLabels, Counter>,
        /// Requests refused with 401, by credential form tried and reason
        unauthorized as "unauthorized_requests": Family<UnauthorizedLabels, Counter>,
        /// Request bytes, compressed and decompressed
        received_bytes: Family<KindLabels, Counter>,
        /// Time to decompress, validate and partition a write
        decode_duration as "decode_duration_seconds": Histogram = latency_histogram(),
        /// Time from sending a request's records to their last ack
        kafka_publish_duration as "kafka_publish_duration_seconds": Histogram = latency_histogram(),
        /// Records sent to Kafka, by result
        kafka_records: Family<ResultLabels, Counter>,
        /// Messages in the producer's queue, waiting to be sent or acked
        kafka_queue_messages as "kafka_producer_queue_messages": Gauge,
        /// Requests refused with 429, by tenant
        rate_limited as "rate_limited_requests": Family<TenantLabels, Counter>,
        /// Reloads of the API keys file, by result
        api_key_reloads as "api_keys_reloads": Family<ResultLabels, Counter>,
        /// API keys in force
        api_keys: Gauge,
        /// Reloads of the TLS certificate and key after they changed, by result
        tls_certificate_reloads: Family<ResultLabels, Counter>,
        /// Decompressed request bytes held in memory now
        inflight_bytes: Gauge,
        /// Topology snapshot parts published
        topology_parts: Counter,
    }
}
