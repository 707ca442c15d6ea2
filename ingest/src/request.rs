//! What every endpoint does with a request before and after its own work:
//! authenticate it, read its body within the limits, the time it has left,
//! and count it when answered. Shared by the write handler ([`crate::write`])
//! and the topology intake ([`crate::topology`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{HttpRequest, web};
use bytes::BytesMut;
use futures::StreamExt;

use crate::auth::{Tenant, credential_form};
use crate::error::IngestError;
use crate::refusals;
use crate::state::{AppState, InflightGuard};

/// Counts an answered request and its duration, by endpoint and status.
pub fn record_request(
    state: &AppState,
    endpoint: &'static str,
    status: StatusCode,
    started: Instant,
) {
    let metrics = &state.metrics;
    metrics
        .requests
        .get_or_create(&crate::metrics::RequestLabels {
            endpoint,
            status: status.as_u16(),
        })
        .inc();
    metrics
        .request_duration
        .get_or_create(&crate::metrics::KindLabels { kind: endpoint })
        .observe(started.elapsed().as_secs_f64());
}

/// Time to write the answer after the last wait.
const ANSWER_MARGIN: Duration = Duration::from_millis(100);

/// What is left of the request timeout for the next wait: every answer,
/// 503 included, goes out within `REQUEST_TIMEOUT_MS` of the request's arrival.
pub fn remaining(state: &AppState, started: Instant) -> Duration {
    (started + state.settings.request_timeout)
        .saturating_duration_since(Instant::now())
        .saturating_sub(ANSWER_MARGIN)
}

pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// The tenant of a request's credentials; a 401 is counted and logged here,
/// with where the request came from and the credential form it tried.
pub fn authenticate(
    request: &HttpRequest,
    endpoint: &'static str,
    query_key: Option<&str>,
    state: &AppState,
) -> Result<Arc<Tenant>, IngestError> {
    let headers = request.headers();
    let api_key = headers.get("sts-api-key").map(|value| value.as_bytes());
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|value| value.as_bytes());
    match state.keys.authenticate(api_key, authorization, query_key) {
        Ok(tenant) => Ok(tenant),
        Err(error) => {
            let form = credential_form(api_key, authorization, query_key);
            refusals::count_unauthorized(&state.metrics, form, &error);
            state.refusal_logs.unauthorized(
                endpoint,
                request.peer_addr(),
                header_str(headers, "x-forwarded-for"),
                form,
                &error,
                Instant::now(),
            );
            Err(error.into())
        }
    }
}

/// Reads the body, refusing it as soon as it is over the limit, and giving up
/// on senders that trickle it slower than `timeout` allows.
/// Its bytes are held against `MAX_INFLIGHT_BYTES` before they are read: all
/// at once where the length is declared (a request that cannot hold them is
/// refused before its body is read), else chunk by chunk. The guard returned
/// holds them, for the caller to resize as the request goes on.
pub async fn read_body(
    headers: &HeaderMap,
    mut payload: web::Payload,
    state: &AppState,
    timeout: Duration,
) -> Result<(BytesMut, InflightGuard), IngestError> {
    let mut held = state.inflight.empty();
    let limit = state.settings.max_body_bytes;
    let too_large = |size: usize| {
        IngestError::PayloadTooLarge(format!(
            "request body of {size} bytes is over the limit of {limit}"
        ))
    };
    let declared = header_str(headers, header::CONTENT_LENGTH.as_str())
        .and_then(|v| v.trim().parse::<usize>().ok());
    if let Some(length) = declared {
        if length > limit {
            return Err(too_large(length));
        }
        if !held.try_resize(length) {
            return Err(IngestError::overloaded());
        }
    }
    let read = async {
        let mut body = BytesMut::with_capacity(declared.unwrap_or(0));
        while let Some(chunk) = payload.next().await {
            let chunk =
                chunk.map_err(|e| IngestError::BadRequest(format!("reading request body: {e}")))?;
            let length = body.len() + chunk.len();
            if length > limit {
                return Err(too_large(length));
            }
            if length > held.bytes() && !held.try_resize(length) {
                return Err(IngestError::overloaded());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    let body = tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| IngestError::BodyTimeout(timeout))??;
    Ok((body, held))
}
