//! `POST /receiver/prometheus/api/v1/write`: authenticate, negotiate, read the
//! body within limits, decode and split by partition (off the reactor when the
//! body is large), charge the tenant's rate limit, publish, answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

use crate::auth::Tenant;
use crate::decode::{self, Protocol};
use crate::error::IngestError;
use crate::partition::{self, PartitionedBatch, Partitioning, Written};
use crate::rate_limit::Limited;
use crate::refusals::{self, RefusedRequest};
use crate::request::{authenticate, header_str, read_body, record_request, remaining};
use crate::state::{AppState, InflightGuard};
use crate::validate::{Items, Rejection};

/// Bodies above this are decoded on the blocking pool, so one large request
/// never stalls the other connections of its worker.
const INLINE_DECODE_MAX_BYTES: usize = 64 * 1024;

const WRITTEN_SAMPLES: &str = "x-prometheus-remote-write-samples-written";
const WRITTEN_HISTOGRAMS: &str = "x-prometheus-remote-write-histograms-written";
const WRITTEN_EXEMPLARS: &str = "x-prometheus-remote-write-exemplars-written";

pub async fn write(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let started = Instant::now();
    let mut outcome = WriteOutcome::default();
    let result = handle(&request, payload, &state, &mut outcome, started).await;
    let mut response = match result {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(error) => {
            let refused = outcome.decoded;
            state
                .metrics
                .rejected_samples
                .get_or_create(&reason_labels(error.reason()))
                .inc_by((refused.samples + refused.histograms) as u64);
            // A 401 is logged where it is known (no tenant then).
            if let Some(tenant) = &outcome.tenant {
                refusals::count_refused(&state.metrics, tenant, error.reason(), refused);
                let (reason, first_series) = match &outcome.first_rejection {
                    Some((reason, first)) => (reason.as_str(), Some(first.as_str())),
                    None => (error.reason(), None),
                };
                let refused_request = RefusedRequest {
                    endpoint: "write",
                    tenant,
                    status: error.status_code(),
                    reason,
                    first_series,
                    message: &error,
                };
                state.refusal_logs.refused(&refused_request, Instant::now());
            }
            error.error_response()
        }
    };
    // v2 senders read these on every answer; v1 senders must not get them.
    if outcome.protocol == Some(Protocol::V2) {
        let headers = response.headers_mut();
        for (name, count) in [
            (WRITTEN_SAMPLES, outcome.written.samples),
            (WRITTEN_HISTOGRAMS, outcome.written.histograms),
            (WRITTEN_EXEMPLARS, outcome.written.exemplars),
        ] {
            headers.insert(
                header::HeaderName::from_static(name),
                header::HeaderValue::from(count),
            );
        }
    }
    let status = response.status();
    record_request(&state, "write", status, started);
    response
}

fn reason_labels(reason: &'static str) -> crate::metrics::ReasonLabels {
    crate::metrics::ReasonLabels { reason }
}

/// What the answer needs to know however the request ended.
#[derive(Default)]
struct WriteOutcome {
    protocol: Option<Protocol>,
    tenant: Option<Arc<str>>,
    /// Acknowledged counts (zero unless Kafka took the records).
    written: Written,
    /// What was decoded, counted as refused if the request fails after decoding.
    decoded: Items,
    /// The first reason a series was rejected for, and that series.
    first_rejection: Option<(Rejection, String)>,
}

async fn handle(
    request: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    outcome: &mut WriteOutcome,
    started: Instant,
) -> Result<(), IngestError> {
    let headers = request.headers();
    let tenant = authenticate(request, "write", None, state)?;
    outcome.tenant = Some(tenant.name.clone());
    let protocol = decode::protocol_of(header_str(headers, header::CONTENT_TYPE.as_str()))?;
    outcome.protocol = Some(protocol);
    decode::check_content_encoding(header_str(headers, header::CONTENT_ENCODING.as_str()))?;

    // Held from the first body byte to the last record's acknowledgement.
    let (body, mut held) = read_body(headers, payload, state, remaining(state, started)).await?;
    state
        .metrics
        .received_bytes
        .get_or_create(&kind_labels("compressed"))
        .inc_by(body.len() as u64);
    let declared = decode::declared_length(&body, state.settings.max_decoded_bytes)?;
    if !held.try_resize(body.capacity() + decoding_bytes(declared)) {
        return Err(IngestError::overloaded());
    }
    let Some(partitions) = state.publisher.samples_partitions() else {
        return Err(IngestError::unavailable(format!(
            "kafka topic {} is not available yet",
            state.publisher.samples_topic()
        )));
    };

    let decode_started = Instant::now();
    let limits = tenant.limits;
    let tenant_name = tenant.name.clone();
    let partitioning =
        Partitioning::of_sorted(partitions, state.settings.partition_by_labels.clone())
            .with_shard(&tenant.name, tenant.shard_size);
    let split = move || {
        split(
            protocol,
            &body,
            declared,
            &tenant_name,
            &limits,
            partitioning,
        )
    };
    let mut batch = if declared <= INLINE_DECODE_MAX_BYTES {
        split()?
    } else {
        web::block(split)
            .await
            .map_err(|_| IngestError::unavailable("decoder pool is shutting down"))??
    };
    state
        .metrics
        .decode_duration
        .observe(decode_started.elapsed().as_secs_f64());
    state
        .metrics
        .received_bytes
        .get_or_create(&kind_labels("decompressed"))
        .inc_by(declared as u64);
    for (reason, series, items) in batch.rejected.counts() {
        state
            .metrics
            .rejected_series
            .get_or_create(&reason_labels(reason.as_str()))
            .inc_by(series as u64);
        state
            .metrics
            .rejected_samples
            .get_or_create(&reason_labels(reason.as_str()))
            .inc_by((items.samples + items.histograms) as u64);
        refusals::count_refused(&state.metrics, &tenant.name, reason.as_str(), items);
    }
    let charged = batch.written.samples + batch.written.histograms;
    outcome.decoded = batch.written.items();

    if let Some(limiter) = &tenant.limiter {
        match limiter.charge(charged) {
            Ok(()) => {}
            Err(Limited::RetryAfter(wait)) => {
                state
                    .metrics
                    .rate_limited
                    .get_or_create(&crate::metrics::TenantLabels {
                        tenant: tenant.name.to_string(),
                    })
                    .inc();
                return Err(IngestError::RateLimited {
                    message: format!(
                        "tenant {} is over its rate of {} samples/s",
                        tenant.name,
                        limiter.quota().per_second
                    ),
                    retry_after: wait,
                });
            }
            Err(Limited::OverBurst { burst }) => {
                return Err(IngestError::PayloadTooLarge(format!(
                    "request holds {charged} samples, more than tenant {}'s burst of {burst}; send smaller requests",
                    tenant.name
                )));
            }
        }
    }

    let records = std::mem::take(&mut batch.records);
    publish(
        state,
        protocol,
        &tenant,
        records,
        held,
        remaining(state, started),
    )
    .await?;
    outcome.written = batch.written;
    outcome.decoded = Items::default();
    let written = batch.written;
    for (kind, count) in [
        ("sample", written.samples),
        ("histogram", written.histograms),
        ("exemplar", written.exemplars),
        ("metadata", written.metadata),
    ] {
        state
            .metrics
            .accepted
            .get_or_create(&kind_labels(kind))
            .inc_by(count as u64);
    }

    if let Some((reason, first)) = batch.rejected.first() {
        outcome.first_rejection = Some((reason, first.to_string()));
        return Err(IngestError::BadRequest(
            batch.rejected.message(batch.total_series),
        ));
    }
    Ok(())
}

fn kind_labels(kind: &'static str) -> crate::metrics::KindLabels {
    crate::metrics::KindLabels { kind }
}

fn split(
    protocol: Protocol,
    body: &[u8],
    declared: usize,
    tenant: &str,
    limits: &crate::config::SeriesLimits,
    partitioning: Partitioning,
) -> Result<PartitionedBatch, IngestError> {
    let raw = decode::decompress(body, declared)?;
    match protocol {
        Protocol::V1 => partition::split_v1(&raw, tenant, limits, partitioning).map_err(|e| {
            IngestError::BadRequest(format!("corrupt remote-write 1.0 protobuf: {e}"))
        }),
        Protocol::V2 => partition::split_v2(&raw, tenant, limits, partitioning).map_err(|e| {
            IngestError::BadRequest(format!("corrupt remote-write 2.0 protobuf: {e}"))
        }),
    }
}

/// What decoding a request holds beside its body: the decompressed bytes and
/// the partition records built from them (each sized a quarter over its
/// share up front, see `partition::split_v1`).
fn decoding_bytes(declared: usize) -> usize {
    declared + declared + declared / 4
}

/// What a record costs while librdkafka holds it: its copy, and the produce
/// request built from it (compressed, or a copy for small records).
fn kafka_bytes(record_bytes: usize) -> usize {
    record_bytes.saturating_mul(2)
}

/// Hands the records to the producer, dropping each once copied, and waits
/// for their acks. `held` follows them: the records and their copies while
/// they are handed over, then the copies until acknowledged (past the answer,
/// if the request times out first).
async fn publish(
    state: &AppState,
    protocol: Protocol,
    tenant: &Tenant,
    records: Vec<(i32, Vec<u8>)>,
    mut held: InflightGuard,
    timeout: Duration,
) -> Result<(), IngestError> {
    if records.is_empty() {
        return Ok(());
    }
    let record_count = records.len();
    let record_bytes: usize = records.iter().map(|(_, record)| record.len()).sum();
    let record_capacity: usize = records.iter().map(|(_, record)| record.capacity()).sum();
    if !held.try_resize(record_capacity + kafka_bytes(record_bytes)) {
        return Err(IngestError::overloaded());
    }
    let started = Instant::now();
    let enqueued = state.publisher.enqueue_owned(
        state.publisher.samples_topic(),
        &tenant.name,
        protocol.content_type(),
        &tenant.name,
        records,
    );
    let result = match enqueued {
        Ok(deliveries) => {
            held.try_resize(kafka_bytes(record_bytes));
            state
                .publisher
                .await_deliveries(deliveries, timeout, held)
                .await
        }
        Err(error) => Err(error),
    };
    state
        .metrics
        .kafka_publish_duration
        .observe(started.elapsed().as_secs_f64());
    let result_label = if result.is_ok() { "acked" } else { "failed" };
    state
        .metrics
        .kafka_records
        .get_or_create(&crate::metrics::ResultLabels {
            result: result_label,
        })
        .inc_by(record_count as u64);
    result.map_err(|error| IngestError::unavailable(error.to_string()))
}
