//! The pipeline around the correlator for tests: ingest in-process on the real
//! route table, the correlator as its own process, topics of the test's own.

#![allow(dead_code)]

#[path = "../../../ingest/tests/common/mod.rs"]
pub mod kafka;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{test, web};
use ingest::state::AppState;
use kafka::TempDir;

pub use correlator::config::Topics;
pub use kafka::{KEY_A, read_all, unique};

/// The five topics of one test, each of a name of its own.
pub fn fresh_topics() -> Topics {
    Topics {
        samples: unique("samples"),
        topology_raw: unique("topology-raw"),
        topology: unique("topology"),
        bound: unique("bound"),
        unbound: unique("unbound"),
    }
}

/// A temporary directory, fresh topics, and ingest's state writing to them.
pub async fn fresh_ingest(partitions: i32) -> (TempDir, Topics, web::Data<AppState>) {
    let dir = TempDir::new();
    let topics = fresh_topics();
    let state = ingest(&dir, &topics, partitions).await;
    (dir, topics, state)
}

/// Ingest's shared state writing to `topics`, ready.
pub async fn ingest(dir: &TempDir, topics: &Topics, partitions: i32) -> web::Data<AppState> {
    let keys = kafka::keys_file(dir, "");
    let samples = topics.samples.clone();
    let raw = topics.topology_raw.clone();
    kafka::ready_state(kafka::settings(keys, move |options| {
        options.topic_samples = samples;
        options.topic_topology_raw = raw;
        options.topic_partitions = partitions;
    }))
    .await
}

pub async fn post(
    app: &impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
    uri: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, String) {
    let mut request = test::TestRequest::post().uri(uri);
    for (name, value) in headers {
        request = request.insert_header((*name, *value));
    }
    let response = test::call_service(app, request.set_payload(body).to_request()).await;
    let status = response.status();
    let body = test::read_body(response).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

macro_rules! ingest_app {
    ($state:expr) => {
        actix_web::test::init_service(
            actix_web::App::new()
                .app_data($state.clone())
                .configure(ingest::routes::configure),
        )
        .await
    };
}
#[allow(unused_imports)]
pub(crate) use ingest_app;

/// Posts a topology payload the way the agent does (api_key in the query).
pub async fn post_topology(
    app: &impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
    payload: &serde_json::Value,
) {
    let uri = format!("/receiver/stsAgent/intake?api_key={KEY_A}");
    let (status, body) = post(
        app,
        &uri,
        &[("content-type", "application/json")],
        payload.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Posts a snappy v1 body with the sts-api-key header.
pub async fn post_samples(
    app: &impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
    body: Vec<u8>,
) {
    let headers = [
        ("sts-api-key", KEY_A),
        ("content-type", "application/x-protobuf"),
    ];
    let (status, text) = post(app, "/api/v1/write", &headers, body).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");
}

/// The correlator binary running as its own process.
pub struct Correlator {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Correlator {
    /// A correlator in a consumer group of its own, started as `start` does.
    pub fn start_alone(dir: &TempDir, topics: &Topics, extra_env: &[(&str, &str)]) -> Correlator {
        Correlator::start(dir, topics, &unique("group"), extra_env)
    }

    pub fn start(
        dir: &TempDir,
        topics: &Topics,
        group: &str,
        extra_env: &[(&str, &str)],
    ) -> Correlator {
        let correlator = Correlator::spawn(dir, topics, group, extra_env);
        correlator.wait_ready(Duration::from_secs(90));
        correlator
    }

    pub fn spawn(
        dir: &TempDir,
        topics: &Topics,
        group: &str,
        extra_env: &[(&str, &str)],
    ) -> Correlator {
        Correlator::spawn_with(dir, topics, group, &[], extra_env)
    }

    /// The binary with `args` (a subcommand such as `forward`), listening on
    /// a port of its own, on the test's topics.
    pub fn spawn_with(
        dir: &TempDir,
        topics: &Topics,
        group: &str,
        args: &[&str],
        extra_env: &[(&str, &str)],
    ) -> Correlator {
        let port = kafka::free_port();
        let log = dir.0.join(format!("correlator-{port}.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_correlator"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KAFKA_BROKERS", kafka::brokers())
            .env("CORRELATOR_LISTEN", format!("127.0.0.1:{port}"))
            .env("FORWARD_LISTEN", format!("127.0.0.1:{port}"))
            .env("KAFKA_GROUP_ID", group)
            .env("TOPIC_SAMPLES", &topics.samples)
            .env("TOPIC_TOPOLOGY_RAW", &topics.topology_raw)
            .env("TOPIC_TOPOLOGY", &topics.topology)
            .env("TOPIC_BOUND", &topics.bound)
            .env("TOPIC_UNBOUND", &topics.unbound)
            .env("TOPIC_PARTITIONS", "4")
            .env(
                "RUST_LOG",
                "info,correlator=debug,librdkafka=warn,rdkafka=warn",
            )
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::options().append(true).open(&log).unwrap());
        for (name, value) in extra_env {
            command.env(name, value);
        }
        let child = command.spawn().unwrap();
        Correlator { child, port, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn wait_ready(&self, within: Duration) {
        kafka::wait_until_ready(&self.url("/readyz"), within, || self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A metric's value from `/metrics` (summed over its label sets matching `filter`).
    pub fn metric(&self, name: &str, filter: &str) -> f64 {
        let output = Command::new("curl")
            .args(["-fs", &self.url("/metrics")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|line| line.starts_with(name) && line.contains(filter))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().unwrap()
    }
}

impl Drop for Correlator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The pod and the container of the demo topology that the fixtures' node exporter binds to.
pub const POD: &str = "urn:kubernetes:/demo-cluster:monitoring:pod/node-exporter-x7k2p";
pub const CONTAINER: &str =
    "urn:kubernetes:/demo-cluster:monitoring:pod/node-exporter-x7k2p:container/node-exporter";

pub fn component(id: &str, kind: &str, name: &str) -> serde_json::Value {
    serde_json::json!({"externalId": id, "type": {"name": kind}, "data": {"name": name, "tags": {"cluster-name": "demo-cluster"}}})
}

/// The demo cluster's snapshot in three parts, as the agent splits one.
pub fn demo_snapshot(collection_timestamp: i64) -> serde_json::Value {
    let instance = serde_json::json!({"type": "kubernetes", "url": "demo-cluster"});
    serde_json::json!({
        "collection_timestamp": collection_timestamp,
        "internalHostname": "agent",
        "topologies": [
            {"start_snapshot": true, "stop_snapshot": false, "instance": instance,
             "components": [component("urn:cluster:/kubernetes:demo-cluster", "cluster", "demo-cluster"),
                            component("urn:kubernetes:/demo-cluster:node/demo-node-1", "node", "demo-node-1")]},
            {"start_snapshot": false, "stop_snapshot": false, "instance": instance,
             "components": [component(POD, "pod", "node-exporter-x7k2p")]},
            {"start_snapshot": false, "stop_snapshot": true, "instance": instance,
             "components": [component(CONTAINER, "container", "node-exporter")]}
        ]
    })
}

/// Samples per job in the fixtures, and the earliest timestamp.
pub fn fixture_facts() -> (BTreeMap<String, usize>, i64) {
    let mut per_job = BTreeMap::new();
    let mut earliest = i64::MAX;
    for (_, request) in proto::fixtures::prometheus_2_42_requests().unwrap() {
        for series in request.timeseries {
            let job = kafka::label_value(&series, "job");
            *per_job.entry(job).or_default() += series.samples.len();
            earliest = earliest.min(
                series
                    .samples
                    .iter()
                    .map(|s| s.timestamp)
                    .min()
                    .unwrap_or(i64::MAX),
            );
        }
    }
    (per_job, earliest)
}

/// Posts the demo snapshot (taken before `earliest`, the fixtures' first
/// sample) and waits until the correlator's join holds its four components.
pub async fn demo_topology_joined(
    app: &impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
    topics: &Topics,
    correlator: &Correlator,
    earliest: i64,
) {
    post_topology(app, &demo_snapshot(earliest / 1000 - 60)).await;
    let topology = topics.topology.clone();
    eventually(
        Duration::from_secs(60),
        "4 components materialized",
        move || (compacted_view(&topology).values().flatten().count() == 4).then_some(()),
    )
    .await;
    // The join has the components before the samples come.
    eventually(Duration::from_secs(30), "join index", {
        let url = correlator.url("/metrics");
        move || {
            curl_get(&url)
                .contains("correlator_topology_components 4")
                .then_some(())
        }
    })
    .await;
}

/// Ingest (in-process) and the correlator on `topics`, the demo topology
/// joined, then every fixture request posted: returns the correlator and
/// the fixtures' samples per job.
pub async fn fixtures_posted(
    dir: &TempDir,
    topics: &Topics,
) -> (Correlator, BTreeMap<String, usize>) {
    let state = ingest(dir, topics, 4).await;
    let app = ingest_app!(state);
    let correlator = Correlator::start(
        dir,
        topics,
        &unique("group"),
        &[("PENDING_GRACE_MS", "5000")],
    );
    let (per_job, earliest) = fixture_facts();
    demo_topology_joined(&app, topics, &correlator, earliest).await;
    for (_, body) in proto::fixtures::prometheus_2_42_bodies().unwrap() {
        post_samples(&app, body).await;
    }
    (correlator, per_job)
}

/// The latest value per key of a compacted topic (None for a tombstone).
pub fn compacted_view(topic: &str) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut records = read_all(topic);
    records.sort_by_key(|r| (r.partition, r.offset));
    let mut view = BTreeMap::new();
    for record in records {
        let key = String::from_utf8_lossy(record.key.as_deref().unwrap_or_default()).into_owned();
        let value = if record.payload.is_empty() {
            None
        } else {
            Some(record.payload)
        };
        view.insert(key, value);
    }
    view
}

/// Polls `check` on a blocking thread until it holds or `within` passes.
pub async fn eventually<T: Send + 'static>(
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T> + Send + 'static,
) -> T {
    let what = what.to_string();
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + within;
        loop {
            if let Some(value) = check() {
                return value;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(500));
        }
    })
    .await
    .unwrap()
}

/// The `ingest` binary beside the correlator's (built by `cargo test` of the
/// workspace or `make build`); built here when it is missing.
pub fn ingest_binary() -> PathBuf {
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_correlator")).with_file_name("ingest");
    if !binary.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "ingest", "--bin", "ingest"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success(), "building the ingest binary");
    }
    binary
}

/// POSTs `body` with curl and returns the status code.
pub fn curl_post(dir: &TempDir, url: &str, headers: &[(&str, &str)], body: &[u8]) -> u16 {
    let file = dir.write(&unique("body"), "");
    std::fs::write(&file, body).unwrap();
    let mut command = Command::new("curl");
    command.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"]);
    for (name, value) in headers {
        command.args(["-H", &format!("{name}: {value}")]);
    }
    command
        .arg("--data-binary")
        .arg(format!("@{}", file.display()));
    let output = command.arg(url).output().unwrap();
    let _ = std::fs::remove_file(&file);
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// The body of a GET with curl ("" when it fails).
pub fn curl_get(url: &str) -> String {
    let output = Command::new("curl").args(["-fs", url]).output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A snappy remote-write 2.0 body holding one series with `labels` and one sample.
pub fn v2_request_with(labels: &[(&str, &str)], timestamp: i64) -> Vec<u8> {
    use proto::Message;
    use proto::v2;
    let mut symbols = vec![String::new()];
    let mut labels_refs = Vec::new();
    let mut sorted = labels.to_vec();
    sorted.sort();
    for (name, value) in sorted {
        for text in [name, value] {
            labels_refs.push(symbols.len() as u32);
            symbols.push(text.to_string());
        }
    }
    let request = v2::Request {
        symbols,
        timeseries: vec![v2::TimeSeries {
            labels_refs,
            samples: vec![v2::Sample {
                value: 1.0,
                timestamp,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .unwrap()
}

/// The label sets of the series in a `metrics.samples` record (1.0 or 2.0, by its content-type header).
pub fn sample_record_series(record: &kafka::Record) -> Vec<BTreeMap<String, String>> {
    use proto::Message;
    let content_type = record
        .headers
        .get("content-type")
        .cloned()
        .unwrap_or_default();
    if content_type == proto::CONTENT_TYPE_V2 {
        let request = proto::v2::Request::decode(record.payload.as_slice()).unwrap();
        let symbol = |index: &u32| request.symbols[*index as usize].clone();
        return request
            .timeseries
            .iter()
            .map(|series| {
                series
                    .labels_refs
                    .chunks(2)
                    .map(|pair| (symbol(&pair[0]), symbol(&pair[1])))
                    .collect()
            })
            .collect();
    }
    let request = proto::prometheus::WriteRequest::decode(record.payload.as_slice()).unwrap();
    request
        .timeseries
        .iter()
        .map(|series| {
            series
                .labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect()
        })
        .collect()
}

/// The series of a `metrics.bound` or `metrics.unbound` record, whichever its
/// encoding (by its content-type header).
pub fn batch_of(record: &kafka::Record) -> Vec<correlator::output::BatchSeries> {
    let content_type = record
        .headers
        .get("content-type")
        .map_or(proto::CONTENT_TYPE_V2, String::as_str);
    correlator::output::read_batch(content_type, &record.payload).unwrap()
}

/// Samples and histograms of a batch.
pub fn points_of(batch: &[correlator::output::BatchSeries]) -> usize {
    batch
        .iter()
        .map(|series| series.samples.len() + series.histograms.len())
        .sum()
}
