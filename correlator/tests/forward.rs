//! `correlator forward` against a real Prometheus 2.42 receiver: the
//! fixtures bound through the whole pipeline (real broker, ingest, the
//! correlator's own process) arrive sample for sample, through an endpoint
//! that first answers 500; an endpoint that answers 400 has them dropped,
//! counted, and their offsets committed.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use support::kafka::TempDir;
use support::{CONTAINER, Correlator, POD, Topics, eventually};

/// Prometheus with its remote-write receiver, on a port and a store of its own.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Prometheus {
    fn start(dir: &TempDir) -> Prometheus {
        let port = support::kafka::free_port();
        let config = dir.write("prometheus.yml", "global:\n  scrape_interval: 1m\n");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.0.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            .stdout(std::fs::File::create(dir.0.join("prometheus.log")).unwrap())
            .stderr(std::fs::File::create(dir.0.join("prometheus.err")).unwrap())
            .spawn()
            .expect("Debian's prometheus is installed (make deps)");
        let prometheus = Prometheus { child, port };
        support::kafka::wait_until_ready(
            &prometheus.url("/-/ready"),
            Duration::from_secs(60),
            || std::fs::read_to_string(dir.0.join("prometheus.err")).unwrap_or_default(),
        );
        prometheus
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// An instant query's result series.
    fn query(&self, query: &str, time_ms: i64) -> Vec<serde_json::Value> {
        let output = Command::new("curl")
            .args(["-sG", &self.url("/api/v1/query")])
            .arg("--data-urlencode")
            .arg(format!("query={query}"))
            .arg("--data-urlencode")
            .arg(format!("time={}", time_ms as f64 / 1000.0))
            .output()
            .unwrap();
        let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(answer["status"], "success", "query {query}: {answer}");
        answer["data"]["result"].as_array().unwrap().clone()
    }

    /// The samples a range selector returns, all series together.
    fn samples_in(&self, range_selector: &str, time_ms: i64) -> usize {
        self.query(range_selector, time_ms)
            .iter()
            .map(|series| series["values"].as_array().unwrap().len())
            .sum()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An endpoint in front of Prometheus that answers `status` to its first
/// `failures` requests (the first with a Retry-After), then passes the rest
/// on to `upstream` (or answers 204 itself when there is none).
struct FaultyEndpoint {
    failures: usize,
    status: u16,
    upstream: Option<String>,
    requests: AtomicUsize,
    client: reqwest::Client,
}

async fn faulty_endpoint(
    endpoint: web::Data<FaultyEndpoint>,
    request: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let seen = endpoint.requests.fetch_add(1, Ordering::SeqCst);
    let status = actix_web::http::StatusCode::from_u16(endpoint.status).unwrap();
    if seen < endpoint.failures {
        let mut response = HttpResponse::build(status);
        if seen == 0 {
            response.insert_header(("retry-after", "1"));
        }
        return response.body("refused by the test\n");
    }
    let Some(upstream) = &endpoint.upstream else {
        return HttpResponse::NoContent().finish();
    };
    let mut forwarded = endpoint.client.post(upstream).body(body);
    for (name, value) in request.headers() {
        if name.as_str().starts_with("content-") || name.as_str().starts_with("x-prometheus") {
            forwarded = forwarded.header(name.as_str(), value.as_bytes());
        }
    }
    match forwarded.send().await {
        Ok(answer) => {
            let status = actix_web::http::StatusCode::from_u16(answer.status().as_u16()).unwrap();
            HttpResponse::build(status).body(answer.bytes().await.unwrap_or_default())
        }
        Err(error) => HttpResponse::BadGateway().body(error.to_string()),
    }
}

/// Starts a [`FaultyEndpoint`] on the test's runtime; returns its URL and state.
fn start_faulty_endpoint(
    failures: usize,
    status: u16,
    upstream: Option<String>,
) -> (String, web::Data<FaultyEndpoint>) {
    let state = web::Data::new(FaultyEndpoint {
        failures,
        status,
        upstream,
        requests: AtomicUsize::new(0),
        client: reqwest::Client::new(),
    });
    let port = support::kafka::free_port();
    let app_state = state.clone();
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(app_state.clone())
            .route("/api/v1/write", web::post().to(faulty_endpoint))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", port))
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    (format!("http://127.0.0.1:{port}/api/v1/write"), state)
}

/// What the bound topic holds: per component, the samples a store keeps
/// (stale markers are not counted by PromQL), and the latest timestamp.
struct BoundFacts {
    samples: usize,
    countable: BTreeMap<String, usize>,
    latest_ms: i64,
    earliest_ms: i64,
}

fn bound_facts(topic: &str) -> BoundFacts {
    let mut facts = BoundFacts {
        samples: 0,
        countable: BTreeMap::new(),
        latest_ms: i64::MIN,
        earliest_ms: i64::MAX,
    };
    let mut points = BTreeSet::new();
    for record in support::read_all(topic) {
        for series in support::batch_of(&record) {
            let component = series.label("component_external_id").unwrap().to_string();
            for sample in &series.samples {
                facts.samples += 1;
                facts.latest_ms = facts.latest_ms.max(sample.timestamp);
                facts.earliest_ms = facts.earliest_ms.min(sample.timestamp);
                if sample.value.to_bits() == proto::STALE_NAN_BITS {
                    continue;
                }
                // A store keeps one sample per series and timestamp.
                if points.insert((series.labels.clone(), sample.timestamp)) {
                    *facts.countable.entry(component.clone()).or_default() += 1;
                }
            }
        }
    }
    facts
}

/// The offsets `group` committed on `topic`, and the topic's end offsets.
fn committed_and_end(group: &str, topic: &str) -> (Vec<i64>, Vec<i64>) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", support::kafka::brokers())
        .set("group.id", group)
        .create()
        .unwrap();
    let partitions = support::kafka::partition_count(topic);
    let mut wanted = TopicPartitionList::new();
    let mut ends = Vec::new();
    for partition in 0..partitions {
        wanted.add_partition(topic, partition);
        let (_, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .unwrap();
        ends.push(high);
    }
    let committed = consumer
        .committed_offsets(wanted, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .map(|element| match element.offset() {
            Offset::Offset(offset) => offset,
            _ => 0,
        })
        .collect();
    (committed, ends)
}

/// A log as text, without the terminal colour codes of its fields.
fn without_colours(log: &str) -> String {
    let mut text = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ digits and semicolons, then a letter.
            for skipped in chars.by_ref() {
                if skipped.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        text.push(c);
    }
    text
}

fn forwarder(dir: &TempDir, topics: &Topics, group: &str, url: &str) -> Correlator {
    Correlator::spawn_with(
        dir,
        topics,
        group,
        &["forward"],
        &[
            ("FORWARD_URL", url),
            ("FORWARD_PROTOCOL", "1.0"),
            ("FORWARD_GROUP", group),
            ("FORWARD_MIN_BACKOFF_MS", "50"),
            ("FORWARD_MAX_BACKOFF_MS", "400"),
            ("FORWARD_BATCH_DEADLINE_MS", "200"),
            ("FORWARD_MAX_POINTS_PER_REQUEST", "500"),
        ],
    )
}

/// A forwarder metric once it reaches `wanted`, polled for up to a minute.
async fn metric_reaches(forwarder: &Correlator, name: &str, filter: &str, wanted: f64) {
    let url = forwarder.url("/metrics");
    let (name, filter) = (name.to_string(), filter.to_string());
    let what = format!("{name}{{{filter}}} = {wanted}");
    eventually(Duration::from_secs(60), &what, move || {
        let text = support::curl_get(&url);
        let value: f64 = text
            .lines()
            .filter(|line| line.starts_with(&name) && line.contains(&filter))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        (value == wanted).then_some(())
    })
    .await;
}

#[actix_web::test]
async fn bound_fixtures_reach_prometheus_sample_for_sample_through_500s_and_a_400_is_dropped_and_counted()
 {
    let dir = TempDir::new();
    let topics = Topics::fresh();
    let (correlator, per_job) = support::fixtures_posted(&dir, &topics).await;
    let node_samples = per_job["node"];
    let bound = topics.bound.clone();
    let facts = eventually(
        Duration::from_secs(90),
        "every node sample bound twice",
        move || {
            let facts = bound_facts(&bound);
            (facts.samples >= 2 * node_samples).then_some(facts)
        },
    )
    .await;
    assert_eq!(facts.samples, 2 * node_samples);
    assert_eq!(facts.countable.len(), 2, "{:?}", facts.countable.keys());

    // Into a real Prometheus, through an endpoint that answers 500 six times.
    let prometheus = Prometheus::start(&dir);
    let (url, endpoint) = start_faulty_endpoint(6, 500, Some(prometheus.url("/api/v1/write")));
    let group = support::unique("forward");
    let mut forwarding = forwarder(&dir, &topics, &group, &url);
    forwarding.wait_ready(Duration::from_secs(30));
    let samples = facts.samples as f64;
    metric_reaches(
        &forwarding,
        "correlator_forward_sent_total",
        "kind=\"sample\"",
        samples,
    )
    .await;
    assert_eq!(
        forwarding.metric("correlator_forward_failed_total", "kind=\"sample\""),
        0.0
    );
    assert!(forwarding.metric("correlator_forward_retried_total", "kind=\"sample\"") > 0.0);
    assert_eq!(
        forwarding.metric("correlator_forward_requests_total", "outcome=\"retried\""),
        6.0
    );
    assert!(endpoint.requests.load(Ordering::SeqCst) > 6);
    // The first 500 asked for a second: the forwarder waited that, not its backoff.
    let log = without_colours(&forwarding.log_text());
    assert!(log.contains("wait_ms=1000"), "{log}");
    metric_reaches(
        &forwarding,
        "correlator_forward_lag_records",
        "topic=\"bound\"",
        0.0,
    )
    .await;
    let window_s = (facts.latest_ms - facts.earliest_ms) / 1000 + 60;
    let mut per_component = BTreeMap::new();
    for component in [POD, CONTAINER] {
        let selector = format!("{{component_external_id=\"{component}\"}}[{window_s}s]");
        per_component.insert(
            component.to_string(),
            prometheus.samples_in(&selector, facts.latest_ms),
        );
    }
    assert_eq!(per_component, facts.countable);
    eprintln!(
        "{} bound samples in {} requests (6 answered 500), in Prometheus per component: {per_component:?}",
        facts.samples,
        endpoint.requests.load(Ordering::SeqCst)
    );
    // The component's type and name are labels to query by too.
    let by_name =
        format!("{{component_type=\"pod\", component_name=\"node-exporter-x7k2p\"}}[{window_s}s]");
    assert_eq!(
        prometheus.samples_in(&by_name, facts.latest_ms),
        facts.countable[POD]
    );
    // Offsets committed once everything was answered (on SIGTERM at the latest).
    assert!(
        forwarding.terminate().success(),
        "{}",
        forwarding.log_text()
    );
    let (committed, ends) = committed_and_end(&group, &topics.bound);
    assert_eq!(committed, ends);

    // An endpoint that refuses every request with 400: dropped, counted, committed past.
    let (refusing_url, refusing) = start_faulty_endpoint(usize::MAX, 400, None);
    let refused_group = support::unique("forward");
    let mut refused = forwarder(&dir, &topics, &refused_group, &refusing_url);
    refused.wait_ready(Duration::from_secs(30));
    metric_reaches(
        &refused,
        "correlator_forward_failed_total",
        "kind=\"sample\"",
        samples,
    )
    .await;
    assert_eq!(
        refused.metric("correlator_forward_sent_total", "kind=\"sample\""),
        0.0
    );
    assert_eq!(
        refused.metric("correlator_forward_retried_total", "kind=\"sample\""),
        0.0
    );
    let requests = refusing.requests.load(Ordering::SeqCst) as f64;
    assert_eq!(
        refused.metric("correlator_forward_requests_total", "outcome=\"rejected\""),
        requests
    );
    assert!(
        refused.log_text().contains("refused by the test"),
        "the refusal is logged with its message"
    );
    metric_reaches(
        &refused,
        "correlator_forward_lag_records",
        "topic=\"bound\"",
        0.0,
    )
    .await;
    assert!(refused.terminate().success());
    let (committed, ends) = committed_and_end(&refused_group, &topics.bound);
    assert_eq!(committed, ends);
    drop(correlator);
}
