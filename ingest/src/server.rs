//! Wires the service together: state, background upkeep, the HTTP(S) server,
//! and the SIGTERM drain (not ready, finish in-flight requests, flush, exit 0).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use anyhow::Context;
use shared::kafka::{NO_DEFAULTS, TopicSpec, client_config, create_topics};
use tracing::{error, info, warn};

use crate::allocator;
use crate::auth::{ApiKeys, Reload};
use crate::config::Settings;
use crate::metrics::{Metrics, ResultLabels};
use crate::publish::{Publisher, PublisherSettings};
use crate::rate_limit::RateLimiters;
use crate::routes;
use crate::state::{AppState, InflightBytes};
use crate::tls::{self, CertificateResolver};

const KEYS_RELOAD_INTERVAL: Duration = Duration::from_secs(2);
const CERTIFICATE_RELOAD_INTERVAL: Duration = Duration::from_secs(2);
const LIMITER_RECLAIM_INTERVAL: Duration = Duration::from_secs(60);

/// Builds the shared state from settings (reads the keys file, creates the producer).
pub fn build_state(settings: Settings) -> anyhow::Result<AppState> {
    let keys = ApiKeys::load(
        &settings.api_keys_file,
        settings.series_limits,
        RateLimiters::default(),
    )
    .context("loading API_KEYS_FILE")?;
    let publisher = Publisher::new(
        publisher_settings(&settings),
        settings.topic_samples.clone(),
    )
    .context("creating the kafka producer")?;
    let metrics = Metrics::new();
    metrics.api_keys.set(keys.current().len() as i64);
    Ok(AppState {
        inflight: InflightBytes::new(settings.max_inflight_bytes),
        settings,
        keys,
        publisher,
        metrics,
        refusal_logs: Default::default(),
        draining: Default::default(),
    })
}

pub fn publisher_settings(settings: &Settings) -> PublisherSettings {
    PublisherSettings {
        brokers: settings.kafka_brokers.clone(),
        compression: settings.kafka_compression.as_str().into(),
        // Deliveries resolve before the request's own deadline, so no answer waits past it.
        delivery_timeout: settings
            .request_timeout
            .saturating_sub(Duration::from_millis(500)),
        max_record_bytes: settings.max_decoded_bytes + (1 << 20),
        properties: producer_properties(settings),
    }
}

/// `[kafka.properties]`, with librdkafka's queue bounded by the in-flight
/// budget that also counts every record it holds (its default, 1 GiB, would
/// let the queue alone outgrow the budget); the table may set another.
fn producer_properties(settings: &Settings) -> std::collections::BTreeMap<String, String> {
    let mut properties = settings.kafka_properties.clone();
    properties
        .entry("queue.buffering.max.kbytes".into())
        .or_insert_with(|| (settings.max_inflight_bytes / 1024).max(1).to_string());
    properties
}

/// Settings of the admin client that creates the topics: the brokers and the
/// producer's properties.
fn admin_config(settings: &Settings) -> rdkafka::ClientConfig {
    client_config(
        &settings.kafka_brokers,
        NO_DEFAULTS,
        &producer_properties(settings),
    )
}

/// Threads each worker decodes large bodies on: together about one per core.
/// Decoding is CPU-bound, so more only compete with the workers reading
/// bodies (under overload, actix's default of 512 in all starved them into
/// answering 408), and each keeps allocator memory of its own.
fn decode_threads_per_worker(workers: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.div_ceil(workers.max(1))
}

/// The topics ingest writes, as it creates them when they are missing.
pub fn topics(settings: &Settings) -> Vec<TopicSpec> {
    let delete = |name: &str| TopicSpec {
        name: name.to_string(),
        partitions: settings.topic_partitions,
        replication_factor: settings.topic_replication_factor,
        config: vec![
            ("cleanup.policy", "delete".into()),
            ("max.message.bytes", (16 << 20).to_string()),
        ],
    };
    vec![
        delete(&settings.topic_samples),
        delete(&settings.topic_topology_raw),
    ]
}

/// Starts the background upkeep: topic creation, metadata, keys reload, limiter reclaim.
pub fn spawn_upkeep(state: web::Data<AppState>) {
    let upkeep = state.clone();
    tokio::spawn(async move {
        if upkeep.settings.create_topics {
            let admin = admin_config(&upkeep.settings);
            let topics = topics(&upkeep.settings);
            while let Err(create_error) = create_topics(&admin, &topics).await {
                warn!(error = %create_error, "creating topics failed, retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
        loop {
            let refresh = upkeep.clone();
            let _ = tokio::task::spawn_blocking(move || refresh.publisher.refresh_metadata()).await;
            let pause = if upkeep.publisher.is_ready() { 5 } else { 1 };
            tokio::time::sleep(Duration::from_secs(pause)).await;
        }
    });

    let memory = state.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(allocator::COLLECT_INTERVAL).await;
            allocator::collect(memory.inflight.held() == 0);
        }
    });

    let keys = state.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(KEYS_RELOAD_INTERVAL).await;
            let reloader = keys.clone();
            let Ok(result) =
                tokio::task::spawn_blocking(move || reloader.keys.reload_if_changed()).await
            else {
                continue;
            };
            match result {
                Ok(Reload::Unchanged) => {}
                Ok(Reload::Reloaded { keys: count }) => {
                    info!(keys = count, "reloaded API keys");
                    keys.metrics
                        .api_key_reloads
                        .get_or_create(&ResultLabels { result: "ok" })
                        .inc();
                    keys.metrics.api_keys.set(count as i64);
                }
                Err(reload_error) => {
                    error!(error = %reload_error, "API keys file is broken, keeping the keys in force");
                    keys.metrics
                        .api_key_reloads
                        .get_or_create(&ResultLabels { result: "error" })
                        .inc();
                }
            }
        }
    });

    tokio::spawn(async move {
        loop {
            tokio::time::sleep(LIMITER_RECLAIM_INTERVAL).await;
            state.keys.limiters().reclaim_idle();
        }
    });
}

/// Checks the certificate files every few seconds and swaps in a changed,
/// valid pair; a broken one is logged and counted, and the old pair serves on.
pub fn spawn_certificate_reload(resolver: Arc<CertificateResolver>, state: web::Data<AppState>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(CERTIFICATE_RELOAD_INTERVAL).await;
            let reloader = resolver.clone();
            let Ok(result) =
                tokio::task::spawn_blocking(move || reloader.reload_if_changed()).await
            else {
                continue;
            };
            let outcome = match result {
                Ok(tls::Reload::Unchanged) => continue,
                Ok(tls::Reload::Reloaded) => {
                    info!("reloaded the TLS certificate and key");
                    "ok"
                }
                Err(reload_error) => {
                    warn!(error = %reload_error, "TLS certificate or key is broken, keeping the pair in force");
                    "error"
                }
            };
            state
                .metrics
                .tls_certificate_reloads
                .get_or_create(&ResultLabels { result: outcome })
                .inc();
        }
    });
}

/// Runs the service until SIGTERM or SIGINT, then drains and returns.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let listen = settings.listen;
    // Before Kafka, so that a bad certificate stops the service at once.
    let certificates = match &settings.tls {
        Some(files) => Some(Arc::new(
            CertificateResolver::load(files.clone())
                .context("loading TLS_CERT_FILE and TLS_KEY_FILE")?,
        )),
        None => None,
    };
    let workers = match settings.workers {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        n => n,
    };
    let shutdown_timeout = settings.shutdown_timeout;
    let shutdown_delay = settings.shutdown_delay;
    let state = web::Data::new(build_state(settings)?);
    spawn_upkeep(state.clone());
    if let Some(resolver) = &certificates {
        spawn_certificate_reload(resolver.clone(), state.clone());
    }

    let app_state = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(app_state.clone())
            .configure(routes::configure)
    })
    .workers(workers)
    .worker_max_blocking_threads(decode_threads_per_worker(workers))
    .disable_signals()
    .shutdown_timeout(shutdown_timeout.as_secs().max(1));
    let server = match &certificates {
        Some(resolver) => server.bind_rustls_0_23(listen, resolver.server_config()?),
        None => server.bind(listen),
    }
    .with_context(|| format!("binding INGEST_LISTEN {listen}"))?
    .run();
    info!(%listen, workers, tls = certificates.is_some(), "ingest listening");

    let handle = server.handle();
    let drain_state = state.clone();
    // Set when the graceful stop overruns: the exit must stay bounded in time.
    let overrun = Arc::new(tokio::sync::Notify::new());
    let overrun_signal = overrun.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutting down: not ready, finishing in-flight requests");
        drain_state.draining.store(true, Ordering::Release);
        tokio::time::sleep(shutdown_delay).await;
        let graceful = handle.stop(true);
        let limit = shutdown_timeout + std::time::Duration::from_secs(5);
        if tokio::time::timeout(limit, graceful).await.is_err() {
            // Nothing still open was answered, so nothing acknowledged is lost.
            warn!("connections still open after SHUTDOWN_TIMEOUT_MS; closing them");
            overrun_signal.notify_one();
        }
    });
    tokio::select! {
        result = server => result.context("http server")?,
        _ = overrun.notified() => {}
    }

    let flushing = state.clone();
    let flushed =
        tokio::task::spawn_blocking(move || flushing.publisher.flush(shutdown_timeout)).await?;
    if let Err(flush_error) = flushed {
        warn!(error = %flush_error, "producer flush incomplete at shutdown");
    }
    info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut interrupt = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
}
