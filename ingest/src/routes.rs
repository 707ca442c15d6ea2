//! The route table, shared by the binary and the tests.

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use crate::state::AppState;
use crate::{request, topology, write};

/// Registers every endpoint of the ingest service.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route(
            "/receiver/prometheus/api/v1/write",
            web::post().to(write::write),
        )
        .route("/api/v1/write", web::post().to(write::write))
        .route(
            "/receiver/stsAgent/intake",
            web::post().to(topology::intake),
        )
        .route("/metrics", web::get().to(metrics))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let started = Instant::now();
    state
        .metrics
        .kafka_queue_messages
        .set(i64::from(state.publisher.queue_depth()));
    state
        .metrics
        .inflight_bytes
        .set(state.inflight.held() as i64);
    state
        .metrics
        .api_keys
        .set(state.keys.current().len() as i64);
    let body = state.metrics.render();
    request::record_request(&state, "metrics", StatusCode::OK, started);
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(body)
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().body("ok\n")
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.draining.load(std::sync::atomic::Ordering::Acquire) {
        return HttpResponse::ServiceUnavailable().body("draining\n");
    }
    if !state.publisher.is_ready() {
        return HttpResponse::ServiceUnavailable().body(format!(
            "kafka not connected or topic {} unknown\n",
            state.publisher.samples_topic()
        ));
    }
    HttpResponse::Ok().body("ready\n")
}
