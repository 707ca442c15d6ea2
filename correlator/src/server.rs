//! Wires the correlator together: topics, the topology feed, the materializer,
//! the join, the operations listener, and the SIGTERM drain.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use shared::kafka::{TopicSpec, create_topics};
use tokio::sync::{mpsc, watch};
use tracing::{error, info};

use crate::bindings::Bindings;
use crate::config::Settings;
use crate::join::Joiner;
use crate::metrics::Metrics;
use crate::{join_loop, materializer, topology_feed};

/// What the operations endpoints read.
pub struct Health {
    pub metrics: Arc<Metrics>,
    /// The topology is loaded and the join consumes.
    pub ready: AtomicBool,
    pub draining: AtomicBool,
}

/// Loads the binding rules: the file if given (an invalid one is an error naming the rule), else the defaults.
pub fn bindings(settings: &Settings) -> anyhow::Result<Bindings> {
    match &settings.bindings_file {
        Some(path) => Bindings::load(path).context("BINDINGS_FILE"),
        None => Ok(Bindings::kubernetes_defaults()),
    }
}

/// The topics the correlator reads and writes, as it creates them when missing.
pub fn topics(settings: &Settings) -> Vec<TopicSpec> {
    let spec = |name: &str, cleanup: &str| TopicSpec {
        name: name.to_string(),
        partitions: settings.topic_partitions,
        replication_factor: settings.topic_replication_factor,
        config: vec![("cleanup.policy", cleanup.to_string())],
    };
    let topics = &settings.topics;
    vec![
        spec(&topics.samples, "delete"),
        spec(&topics.topology_raw, "delete"),
        spec(&topics.topology, "compact"),
        spec(&topics.bound, "delete"),
        spec(&topics.unbound, "delete"),
    ]
}

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/metrics", web::get().to(metrics))
        .route(
            "/healthz",
            web::get().to(|| async { HttpResponse::Ok().body("ok\n") }),
        )
        .route("/readyz", web::get().to(readyz));
}

async fn metrics(health: web::Data<Health>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(health.metrics.render())
}

async fn readyz(health: web::Data<Health>) -> HttpResponse {
    if health.draining.load(Ordering::Acquire) {
        return HttpResponse::ServiceUnavailable().body("draining\n");
    }
    if !health.ready.load(Ordering::Acquire) {
        return HttpResponse::ServiceUnavailable().body("loading topology\n");
    }
    HttpResponse::Ok().body("ready\n")
}

/// Creates the topics of [`topics`] that are missing, trying again until
/// the topology load timeout (the broker may still be starting).
pub async fn create_missing_topics(settings: &Settings) -> anyhow::Result<()> {
    let admin = crate::kafka::kafka_config(settings, &[]);
    let specs = topics(settings);
    let deadline = tokio::time::Instant::now() + settings.topology_load_timeout;
    while let Err(create_error) = create_topics(&admin, &specs).await {
        if tokio::time::Instant::now() > deadline {
            return Err(create_error).context("creating topics");
        }
        tracing::warn!(error = %create_error, "creating topics failed, retrying");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(())
}

/// Runs until SIGTERM or SIGINT, then drains and returns.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let bindings = bindings(&settings)?;
    info!(rules = bindings.rules().len(), "binding rules loaded");
    if settings.create_topics {
        create_missing_topics(&settings).await?;
    }

    let metrics = Arc::new(Metrics::new());
    let health = web::Data::new(Health {
        metrics: metrics.clone(),
        ready: AtomicBool::new(false),
        draining: AtomicBool::new(false),
    });
    let app_health = health.clone();
    let server =
        HttpServer::new(move || App::new().app_data(app_health.clone()).configure(configure))
            .workers(1)
            .disable_signals()
            .bind(settings.listen)
            .with_context(|| format!("binding CORRELATOR_LISTEN {}", settings.listen))?
            .run();
    let server_handle = server.handle();
    let server_task = tokio::spawn(server);
    info!(listen = %settings.listen, "correlator listening");

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let stop_feed = Arc::new(AtomicBool::new(false));
    let (join_tx, mut join_rx) = mpsc::unbounded_channel();
    let (materializer_tx, materializer_rx) = mpsc::unbounded_channel();
    let feed_settings = settings.clone();
    let feed_stop = stop_feed.clone();
    let feed = tokio::task::spawn_blocking(move || {
        topology_feed::run(feed_settings, vec![join_tx, materializer_tx], feed_stop)
    });

    // Whichever half stops, for a signal or a failure, stops the other: a
    // correlator that no longer joins (or materializes) exits, and its
    // orchestrator starts it again from the committed offsets.
    let shutdown_tx = Arc::new(shutdown_tx);
    let materializer_stop = shutdown_tx.clone();
    let materializer_settings = settings.clone();
    let materializer_metrics = metrics.clone();
    let materializer_shutdown = shutdown_rx.clone();
    let materializer = tokio::spawn(async move {
        let result = materializer::run(
            materializer_settings,
            materializer_rx,
            materializer_metrics,
            materializer_shutdown,
        )
        .await;
        materializer_stop.send_replace(true);
        result
    });

    let signal_health = health.clone();
    let signal_stop = shutdown_tx.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutting down: finishing in-flight work");
        signal_health.draining.store(true, Ordering::Release);
        signal_stop.send_replace(true);
    });

    let mut joiner = Joiner::new(bindings, settings.join.clone());
    let mut loading_shutdown = shutdown_rx.clone();
    let loaded = tokio::select! {
        loaded = join_loop::load_topology(&mut joiner, &mut join_rx) => loaded,
        _ = loading_shutdown.changed() => None,
    };
    let result = match loaded {
        None if *shutdown_rx.borrow() => Ok(()),
        None => Err(anyhow::anyhow!(
            "the topology feed stopped before the topology was loaded"
        )),
        Some(_) => {
            health.ready.store(true, Ordering::Release);
            if settings.exactly_once {
                let instance = std::env::var("HOSTNAME")
                    .unwrap_or_else(|_| format!("pid{}", std::process::id()));
                join_loop::run_exactly_once(
                    settings.clone(),
                    joiner,
                    join_rx,
                    metrics.clone(),
                    shutdown_rx.clone(),
                    instance,
                )
                .await
            } else {
                join_loop::run_at_least_once(
                    settings.clone(),
                    joiner,
                    join_rx,
                    metrics.clone(),
                    shutdown_rx.clone(),
                )
                .await
            }
        }
    };
    health.ready.store(false, Ordering::Release);
    shutdown_tx.send_replace(true);
    if let Err(join_error) = &result {
        error!(error = %format!("{join_error:#}"), "join stopped");
    }
    let materializer_result = match materializer.await {
        Ok(Err(materializer_error)) => {
            error!(error = %format!("{materializer_error:#}"), "materializer stopped");
            Err(materializer_error.context("materializer"))
        }
        Err(panic) => {
            error!(error = %panic, "materializer panicked");
            Err(anyhow::anyhow!("materializer panicked: {panic}"))
        }
        Ok(Ok(())) => Ok(()),
    };
    stop_feed.store(true, Ordering::Release);
    let feed_result = feed.await.context("topology feed thread")?;
    if let Err(feed_error) = &feed_result {
        error!(error = %format!("{feed_error:#}"), "topology feed stopped");
    }
    server_handle.stop(true).await;
    let _ = server_task.await;
    info!("stopped");
    result.and(materializer_result).and(feed_result)
}

pub(crate) async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut interrupt = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
}
