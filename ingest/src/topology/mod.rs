//! `POST /receiver/stsAgent/intake`: the StackState Agent's topology payload.
//! Each part of its `topologies` array is checked against the shape the
//! correlator reads, then becomes one `topology.raw` record, keyed
//! `tenant/instance.type/instance.url` (segments escaped) so every part of one
//! instance stays in order on one partition; the answer waits for every ack.
//!
//! [`decompress`] reads the body's encoding, [`records`] turns each part into
//! its record once [`shape`] has checked it.

mod decompress;
mod records;
mod shape;

pub use records::parts_to_records;
pub use shape::{ShapeError, check_part};

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use tracing::debug;

use crate::error::IngestError;
use crate::refusals::RefusedRequest;
use crate::request::{authenticate, header_str, read_body, record_request, remaining};
use crate::state::AppState;
use decompress::decompress;

/// The content type of `topology.raw` records.
pub const CONTENT_TYPE_TOPOLOGY: &str = "application/json";

#[derive(serde::Deserialize)]
struct IntakeQuery {
    api_key: Option<String>,
}

pub async fn intake(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let started = Instant::now();
    let mut tenant = None;
    let response = match handle(&request, payload, &state, &mut tenant, started).await {
        Ok(parts) => HttpResponse::Ok().json(serde_json::json!({ "parts": parts })),
        Err(error) => {
            match &tenant {
                // At most a line a second per tenant and reason, as for writes.
                Some(tenant) if error.status_code().is_server_error() => {
                    let refused = RefusedRequest {
                        endpoint: "intake",
                        tenant,
                        status: error.status_code(),
                        reason: error.reason(),
                        first_series: None,
                        message: &error,
                    };
                    state.refusal_logs.refused(&refused, Instant::now());
                }
                _ => debug!(error = %error, "topology intake refused"),
            }
            error.error_response()
        }
    };
    record_request(&state, "intake", response.status(), started);
    response
}

async fn handle(
    request: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    tenant_name: &mut Option<Arc<str>>,
    started: Instant,
) -> Result<usize, IngestError> {
    let headers = request.headers();
    let query = web::Query::<IntakeQuery>::from_query(request.query_string())
        .map(web::Query::into_inner)
        .ok();
    let query_key = query.as_ref().and_then(|q| q.api_key.as_deref());
    let tenant = authenticate(request, "intake", query_key, state)?;
    *tenant_name = Some(tenant.name.clone());
    if let Some(content_type) = header_str(headers, header::CONTENT_TYPE.as_str()) {
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        if !media_type.eq_ignore_ascii_case("application/json") {
            return Err(IngestError::UnsupportedMediaType(format!(
                "unsupported content type {content_type:?}: the intake takes application/json"
            )));
        }
    }
    let encoding = header_str(headers, header::CONTENT_ENCODING.as_str())
        .map(|e| e.trim().to_ascii_lowercase());
    let (body, mut held) = read_body(headers, payload, state, remaining(state, started)).await?;
    let limit = state.settings.max_decoded_bytes;
    if !held.try_resize(body.len() + body.len().saturating_mul(2).min(limit)) {
        return Err(IngestError::overloaded());
    }
    let json = decompress(encoding.as_deref(), &body, limit)?;
    let tenant_name = tenant.name.clone();
    let records = web::block(move || parts_to_records(&json, &tenant_name))
        .await
        .map_err(|_| IngestError::unavailable("decoder pool is shutting down"))??;
    if records.is_empty() {
        return Ok(0);
    }
    let topic = state.settings.topic_topology_raw.clone();
    // Parts of one request may belong to several instances: publish per key, all awaited together.
    let publishes = records.iter().map(|(key, value)| {
        let one = [(None, value.as_slice())];
        let topic = topic.clone();
        let tenant = &tenant;
        async move {
            state
                .publisher
                .publish(
                    &topic,
                    key,
                    CONTENT_TYPE_TOPOLOGY,
                    &tenant.name,
                    &one,
                    remaining(state, started),
                )
                .await
        }
    });
    for result in futures::future::join_all(publishes).await {
        result.map_err(|error| IngestError::unavailable(error.to_string()))?;
    }
    state.metrics.topology_parts.inc_by(records.len() as u64);
    Ok(records.len())
}
