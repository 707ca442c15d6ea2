//! `correlator tail --web ADDR`: the binding view. A consumer of its own
//! (assigned every partition of both output topics, committing nothing)
//! feeds the bounded memory of [`state`]; a small HTTP server renders it as
//! pages ([`page`], charts in [`chart`]) and as JSON under `/api/`.

pub mod chart;
pub mod page;
pub mod state;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use rdkafka::Message as _;
use rdkafka::consumer::BaseConsumer;
use tracing::{info, warn};

use crate::config::Settings;
use crate::output;
use crate::tail::{assign_every_partition, record_headers};
use crate::view::state::{BindingView, LabelQuery, Limits, RecordBinding, RecordIn};

/// Seconds between the page's reloads [default of `--view-refresh-seconds`].
pub fn default_refresh_seconds() -> u32 {
    5
}

/// The binding view's settings, from `correlator tail`'s flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ViewOptions {
    /// Serve the binding view (both output topics, fleet-wide) on this address instead of printing lines, e.g. 127.0.0.1:8090
    #[arg(long, env = "TAIL_WEB")]
    pub web: Option<SocketAddr>,
    /// Series the view keeps at most, bound and unbound; past it the least recently written is forgotten
    #[arg(long, env = "VIEW_SERIES_MAX", default_value_t = state::default_series_max())]
    pub view_series_max: usize,
    /// Latest points kept per series
    #[arg(long, env = "VIEW_POINTS_PER_SERIES", default_value_t = state::default_points_per_series())]
    pub view_points_per_series: usize,
    /// Minutes of history in the per-tenant chart
    #[arg(long, env = "VIEW_MINUTES", default_value_t = state::default_minutes())]
    pub view_minutes: usize,
    /// Seconds between the page's reloads
    #[arg(long, env = "VIEW_REFRESH_SECONDS", default_value_t = default_refresh_seconds())]
    pub view_refresh_seconds: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewSettings {
    pub listen: SocketAddr,
    pub limits: Limits,
    pub refresh_seconds: u32,
}

impl ViewSettings {
    /// The view's settings if `--web` was given.
    pub fn resolve(options: ViewOptions) -> anyhow::Result<Option<ViewSettings>> {
        let Some(listen) = options.web else {
            return Ok(None);
        };
        let limits = Limits {
            series_max: options.view_series_max,
            points_per_series: options.view_points_per_series,
            minutes: options.view_minutes,
        };
        anyhow::ensure!(limits.series_max > 0, "VIEW_SERIES_MAX must be at least 1");
        anyhow::ensure!(limits.minutes > 0, "VIEW_MINUTES must be at least 1");
        Ok(Some(ViewSettings {
            listen,
            limits,
            refresh_seconds: options.view_refresh_seconds.max(1),
        }))
    }
}

struct Shared {
    view: Mutex<BindingView>,
    refresh_seconds: u32,
}

impl Shared {
    fn view(&self) -> std::sync::MutexGuard<'_, BindingView> {
        // A panic while holding it leaves counts, not broken invariants.
        self.view
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The routes: pages, their JSON and health.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/", web::get().to(summary_page))
        .route("/component", web::get().to(component_page))
        .route("/search", web::get().to(search_page))
        .route("/api/summary", web::get().to(summary_json))
        .route("/api/component", web::get().to(component_json))
        .route("/api/search", web::get().to(search_json))
        .route(
            "/healthz",
            web::get().to(|| async { HttpResponse::Ok().body("ok\n") }),
        );
}

type Params = web::Query<HashMap<String, String>>;

fn param<'a>(params: &'a Params, name: &str) -> &'a str {
    params.get(name).map_or("", String::as_str)
}

fn reload(shared: &Shared, params: &Params) -> page::Reload {
    page::Reload {
        seconds: shared.refresh_seconds,
        paused: !param(params, "pause").is_empty(),
    }
}

fn html(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(body)
}

async fn summary_page(shared: web::Data<Shared>, params: Params) -> HttpResponse {
    let summary = shared.view().summary(now_ms());
    html(page::summary_page(&summary, reload(&shared, &params)))
}

async fn summary_json(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(shared.view().summary(now_ms()))
}

async fn component_page(shared: web::Data<Shared>, params: Params) -> HttpResponse {
    let (tenant, id) = (param(&params, "tenant"), param(&params, "id"));
    let found = shared.view().component(tenant, id);
    match found {
        Some(component) => html(page::component_page(&component, reload(&shared, &params))),
        None => HttpResponse::NotFound()
            .content_type("text/html; charset=utf-8")
            .body(page::missing_component_page(
                tenant,
                id,
                reload(&shared, &params),
            )),
    }
}

async fn component_json(shared: web::Data<Shared>, params: Params) -> HttpResponse {
    match shared
        .view()
        .component(param(&params, "tenant"), param(&params, "id"))
    {
        Some(component) => HttpResponse::Ok().json(component),
        None => HttpResponse::NotFound().json(serde_json::json!({"error": "no such component"})),
    }
}

fn search(shared: &Shared, query: &str) -> Vec<state::SeriesSummary> {
    match LabelQuery::parse(query) {
        Some(parsed) => shared.view().search(&parsed),
        None => Vec::new(),
    }
}

async fn search_page(shared: web::Data<Shared>, params: Params) -> HttpResponse {
    let query = param(&params, "q");
    let hits = search(&shared, query);
    html(page::search_page(query, &hits, reload(&shared, &params)))
}

async fn search_json(shared: web::Data<Shared>, params: Params) -> HttpResponse {
    HttpResponse::Ok().json(search(&shared, param(&params, "q")))
}

/// Reads both output topics into the view until the process ends.
fn consume(settings: &Settings, from_beginning: bool, shared: &Shared) -> anyhow::Result<()> {
    let consumer: BaseConsumer = crate::kafka::consumer_config(settings)
        .set("group.id", "correlator-tail-web")
        .set("enable.auto.commit", "false")
        .create()
        .context("creating the consumer")?;
    let bound = settings.topics.bound.as_str();
    let unbound = settings.topics.unbound.as_str();
    assign_every_partition(&consumer, &[bound, unbound], from_beginning)?;
    info!(bound, unbound, from_beginning, "binding view reading");
    loop {
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = match message {
            Ok(message) => message,
            Err(error) => {
                warn!(%error, "reading the output topics");
                continue;
            }
        };
        let headers = record_headers(&message);
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map_or("", |(_, v)| *v)
        };
        let content_type = match header(proto::keys::HEADER_CONTENT_TYPE) {
            "" => proto::CONTENT_TYPE_V2,
            given => given,
        };
        let Ok(batch) = output::read_batch(content_type, message.payload().unwrap_or_default())
        else {
            shared.view().add_unreadable();
            continue;
        };
        let binding = if message.topic() == unbound {
            RecordBinding::Unbound {
                reason: header("reason"),
            }
        } else {
            RecordBinding::Bound {
                component: header("component"),
                component_type: header("component-type"),
                rule: header("rule"),
            }
        };
        let record = RecordIn {
            tenant: header("tenant"),
            timestamp_ms: message.timestamp().to_millis().unwrap_or_else(now_ms),
            binding,
            batch: &batch,
        };
        shared.view().add(record);
    }
}

/// Serves the view until SIGTERM or SIGINT.
pub async fn run(
    settings: Settings,
    view: ViewSettings,
    from_beginning: bool,
) -> anyhow::Result<()> {
    let shared = web::Data::new(Shared {
        view: Mutex::new(BindingView::new(view.limits, settings.join.labels.clone())),
        refresh_seconds: view.refresh_seconds,
    });
    let reader = shared.clone();
    let consumer = std::thread::Builder::new()
        .name("view-consumer".into())
        .spawn(move || consume(&settings, from_beginning, &reader))
        .context("starting the consumer thread")?;
    let server = HttpServer::new(move || App::new().app_data(shared.clone()).configure(configure))
        .workers(1)
        .bind(view.listen)
        .with_context(|| format!("binding TAIL_WEB {}", view.listen))?
        .run();
    eprintln!("binding view on http://{} (Ctrl-C to stop)", view.listen);
    tokio::select! {
        served = server => served.context("serving the binding view"),
        () = wait_for_thread(consumer) => anyhow::bail!("the consumer stopped"),
    }
}

/// Resolves when `thread` has ended, with its error logged.
async fn wait_for_thread(thread: std::thread::JoinHandle<anyhow::Result<()>>) {
    while !thread.is_finished() {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    match thread.join() {
        Ok(Err(error)) => warn!(error = format!("{error:#}"), "binding view consumer"),
        Ok(Ok(())) => {}
        Err(_) => warn!("binding view consumer panicked"),
    }
}
