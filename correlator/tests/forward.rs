//! `correlator forward` against a real Prometheus 2.42 receiver: the
//! fixtures bound (and unbound) through the whole pipeline (real broker,
//! ingest, the correlator's own process) arrive sample for sample, through
//! an endpoint that first answers 500; an endpoint that answers 400 has them dropped,
//! counted, and their offsets committed. Remote-write 2.0 over TLS with
//! basic auth and a custom header, into a receiver of the test's own,
//! carries every sample, histogram, exemplar and metadata bit for bit. A
//! forwarder killed with SIGKILL mid-stream and restarted leaves nothing out,
//! in that receiver or in Prometheus.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use correlator::output::{BatchSeries, read_batch};
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
        // At-least-once replays (a rebalance of the correlator or of the
        // forwarder under load) resend older samples after newer ones: with
        // an out-of-order window Prometheus drops them as duplicates instead
        // of refusing the request, as a receiver of such streams should be set.
        let config = dir.write(
            "prometheus.yml",
            "global:\n  scrape_interval: 1m\nstorage:\n  tsdb:\n    out_of_order_time_window: 1h\n",
        );
        let child = support::kafka::prometheus_command("prometheus", dir, &config, port)
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

    /// Per value of `label`, the samples of its series in the `window_s`
    /// seconds up to `time_ms`.
    fn samples_by(
        &self,
        label: &str,
        values: &[&str],
        window_s: i64,
        time_ms: i64,
    ) -> BTreeMap<String, usize> {
        values
            .iter()
            .map(|value| {
                let selector = format!("{{{label}=\"{value}\"}}[{window_s}s]");
                (value.to_string(), self.samples_in(&selector, time_ms))
            })
            .collect()
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
/// on to `upstream` after `delay` (or answers 204 itself when there is none).
struct FaultyEndpoint {
    failures: usize,
    status: u16,
    upstream: Option<String>,
    delay: Duration,
    requests: AtomicUsize,
    /// Requests `upstream` answered with a success, and their samples.
    passed: AtomicUsize,
    passed_samples: AtomicUsize,
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
    actix_web::rt::time::sleep(endpoint.delay).await;
    let mut forwarded = endpoint.client.post(upstream).body(body.clone());
    for (name, value) in request.headers() {
        if name.as_str().starts_with("content-") || name.as_str().starts_with("x-prometheus") {
            forwarded = forwarded.header(name.as_str(), value.as_bytes());
        }
    }
    match forwarded.send().await {
        Ok(answer) => {
            if answer.status().is_success() {
                endpoint.passed.fetch_add(1, Ordering::SeqCst);
                endpoint
                    .passed_samples
                    .fetch_add(samples_in_v1(&body), Ordering::SeqCst);
            }
            let status = actix_web::http::StatusCode::from_u16(answer.status().as_u16()).unwrap();
            HttpResponse::build(status).body(answer.bytes().await.unwrap_or_default())
        }
        Err(error) => HttpResponse::BadGateway().body(error.to_string()),
    }
}

/// The samples of a snappy-compressed remote-write 1.0 request.
fn samples_in_v1(body: &[u8]) -> usize {
    use proto::Message;
    let raw = snap::raw::Decoder::new().decompress_vec(body).unwrap();
    let request = proto::prometheus::WriteRequest::decode(&raw[..]).unwrap();
    request.timeseries.iter().map(|s| s.samples.len()).sum()
}

/// Starts a [`FaultyEndpoint`] on the test's runtime; returns its URL and state.
fn start_faulty_endpoint(
    failures: usize,
    status: u16,
    upstream: Option<String>,
    delay: Duration,
) -> (String, web::Data<FaultyEndpoint>) {
    let state = web::Data::new(FaultyEndpoint {
        failures,
        status,
        upstream,
        delay,
        requests: AtomicUsize::new(0),
        passed: AtomicUsize::new(0),
        passed_samples: AtomicUsize::new(0),
        client: reqwest::Client::new(),
    });
    let url = serve_write(state.clone(), faulty_endpoint, None);
    (url, state)
}

/// An endpoint of its own on a free port: `handler` answering POSTs to
/// `/api/v1/write` with `state` at hand, over TLS when `tls` is given. Its URL.
fn serve_write<T, H, Args>(
    state: web::Data<T>,
    handler: H,
    tls: Option<rustls::ServerConfig>,
) -> String
where
    T: Send + Sync + 'static,
    H: actix_web::Handler<Args> + Clone + Send + 'static,
    Args: actix_web::FromRequest + 'static,
    H::Output: actix_web::Responder + 'static,
{
    let port = support::kafka::free_port();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(state.clone())
            .route("/api/v1/write", web::post().to(handler.clone()))
    })
    .workers(1)
    .disable_signals();
    let address = ("127.0.0.1", port);
    let server = match tls {
        Some(config) => server.bind_rustls_0_23(address, config),
        None => server.bind(address),
    };
    actix_web::rt::spawn(server.unwrap().run());
    format!("{scheme}://127.0.0.1:{port}/api/v1/write")
}

/// What an output topic holds: per value of a label (the component, the
/// unbound reason), the samples a store keeps (PromQL counts no stale
/// markers), and the first and last timestamps.
struct TopicFacts {
    samples: usize,
    countable: BTreeMap<String, usize>,
    latest_ms: i64,
    earliest_ms: i64,
}

fn topic_facts(topic: &str, by_label: &str) -> TopicFacts {
    let mut facts = TopicFacts {
        samples: 0,
        countable: BTreeMap::new(),
        latest_ms: i64::MIN,
        earliest_ms: i64::MAX,
    };
    let mut points = BTreeSet::new();
    for record in support::read_all(topic) {
        for series in support::batch_of(&record) {
            let key = series.label(by_label).unwrap().to_string();
            for sample in &series.samples {
                facts.samples += 1;
                facts.latest_ms = facts.latest_ms.max(sample.timestamp);
                facts.earliest_ms = facts.earliest_ms.min(sample.timestamp);
                if sample.value.to_bits() == proto::STALE_NAN_BITS {
                    continue;
                }
                // A store keeps one sample per series and timestamp.
                if points.insert((series.labels.clone(), sample.timestamp)) {
                    *facts.countable.entry(key.clone()).or_default() += 1;
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

fn forwarder(
    dir: &TempDir,
    topics: &Topics,
    group: &str,
    url: &str,
    extra_env: &[(&str, &str)],
) -> Correlator {
    let mut env = vec![
        ("FORWARD_URL", url),
        ("FORWARD_PROTOCOL", "1.0"),
        ("FORWARD_GROUP", group),
        ("FORWARD_MIN_BACKOFF_MS", "50"),
        ("FORWARD_MAX_BACKOFF_MS", "400"),
        ("FORWARD_BATCH_DEADLINE_MS", "200"),
        ("FORWARD_MAX_POINTS_PER_REQUEST", "500"),
    ];
    // Last, so that they override the defaults above.
    env.extend_from_slice(extra_env);
    Correlator::spawn_with(dir, topics, group, &["forward"], &env)
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
    let topics = support::fresh_topics();
    let (correlator, per_job) = support::fixtures_posted(&dir, &topics).await;
    let node_samples = per_job["node"];
    let bound = topics.bound.clone();
    let facts = eventually(
        Duration::from_secs(90),
        "every node sample bound twice",
        move || {
            let facts = topic_facts(&bound, "component_external_id");
            (facts.samples >= 2 * node_samples).then_some(facts)
        },
    )
    .await;
    assert_eq!(facts.samples, 2 * node_samples);
    assert_eq!(facts.countable.len(), 2, "{:?}", facts.countable.keys());
    let unbound = topics.unbound.clone();
    let prometheus_samples = per_job["prometheus"];
    let unbound_facts = eventually(
        Duration::from_secs(30),
        "every other sample unbound",
        move || {
            let facts = topic_facts(&unbound, "unbound_reason");
            (facts.samples >= prometheus_samples).then_some(facts)
        },
    )
    .await;

    // Into a real Prometheus, through an endpoint that answers 500 six times.
    let prometheus = Prometheus::start(&dir);
    let (url, endpoint) = start_faulty_endpoint(
        6,
        500,
        Some(prometheus.url("/api/v1/write")),
        Duration::ZERO,
    );
    let group = support::unique("forward");
    let mut forwarding = forwarder(&dir, &topics, &group, &url, &[("FORWARD_UNBOUND", "true")]);
    forwarding.wait_ready(Duration::from_secs(30));
    let samples = facts.samples as f64;
    metric_reaches(
        &forwarding,
        "correlator_forward_sent_total",
        "topic=\"bound\",kind=\"sample\"",
        samples,
    )
    .await;
    metric_reaches(
        &forwarding,
        "correlator_forward_sent_total",
        "topic=\"unbound\",kind=\"sample\"",
        unbound_facts.samples as f64,
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
    let latest_ms = facts.latest_ms.max(unbound_facts.latest_ms);
    let earliest_ms = facts.earliest_ms.min(unbound_facts.earliest_ms);
    let window_s = (latest_ms - earliest_ms) / 1000 + 60;
    let per_component = prometheus.samples_by(
        "component_external_id",
        &[POD, CONTAINER],
        window_s,
        latest_ms,
    );
    assert_eq!(per_component, facts.countable);
    // The unbound series too, by their reason.
    let unbound_selector = format!("{{unbound_reason=\"missing_label\"}}[{window_s}s]");
    assert_eq!(
        prometheus.samples_in(&unbound_selector, latest_ms),
        unbound_facts.countable["missing_label"]
    );
    eprintln!(
        "{} bound and {} unbound samples in {} requests (6 answered 500), in Prometheus per component: {per_component:?}",
        facts.samples,
        unbound_facts.samples,
        endpoint.requests.load(Ordering::SeqCst)
    );
    // The component's type and name are labels to query by too.
    let by_name =
        format!("{{component_type=\"pod\", component_name=\"node-exporter-x7k2p\"}}[{window_s}s]");
    assert_eq!(
        prometheus.samples_in(&by_name, latest_ms),
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
    let (refusing_url, refusing) = start_faulty_endpoint(usize::MAX, 400, None, Duration::ZERO);
    let refused_group = support::unique("forward");
    let mut refused = forwarder(&dir, &topics, &refused_group, &refusing_url, &[]);
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

/// A request as the receiver got it: its headers and series.
type ReceivedRequest = (BTreeMap<String, String>, Vec<BatchSeries>);

/// What the HTTPS receiver got.
#[derive(Default)]
struct Received {
    /// How long each answer takes, as a store under load.
    delay: Duration,
    requests: std::sync::Mutex<Vec<ReceivedRequest>>,
    answered: AtomicUsize,
}

async fn receive_v2(
    received: web::Data<Received>,
    request: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    // The first request is turned away with a 429, as a rate-limited store does.
    if received.answered.fetch_add(1, Ordering::SeqCst) == 0 {
        return HttpResponse::TooManyRequests()
            .insert_header(("retry-after", "0"))
            .finish();
    }
    let headers = request
        .headers()
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_string(), value)
        })
        .collect();
    actix_web::rt::time::sleep(received.delay).await;
    let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
    let series = read_batch(proto::CONTENT_TYPE_V2, &raw).unwrap();
    received.requests.lock().unwrap().push((headers, series));
    HttpResponse::NoContent().finish()
}

/// The points of each series, in the order they came: what must arrive as it was.
type PointsBySeries = BTreeMap<Vec<(String, String)>, Vec<String>>;

fn points_by_series<'s>(batches: impl IntoIterator<Item = &'s BatchSeries>) -> PointsBySeries {
    let mut points = PointsBySeries::new();
    for series in batches {
        let entry = points.entry(series.labels.clone()).or_default();
        for sample in &series.samples {
            entry.push(format!(
                "sample {:x} @{} from {}",
                sample.value.to_bits(),
                sample.timestamp,
                sample.start_timestamp
            ));
        }
        for histogram in &series.histograms {
            entry.push(format!("histogram {histogram:?}"));
        }
        for exemplar in &series.exemplars {
            entry.push(format!("exemplar {exemplar:?}"));
        }
        entry.push(format!("metadata {:?}", series.metadata));
    }
    points
}

/// A bound record's batch: `series_count` series of component `component`,
/// with samples (a stale marker among them), a native histogram (if
/// `histograms`), an exemplar and metadata.
fn bound_request(
    component: usize,
    record: usize,
    series_count: usize,
    histograms: bool,
) -> Vec<u8> {
    use proto::{Message, v2};
    let mut symbols: Vec<String> = [
        "",
        "__name__",
        "rpc_seconds",
        "component_external_id",
        "pod",
        "trace_id",
        "Latency.",
        "seconds",
    ]
    .map(String::from)
    .to_vec();
    let mut symbol = |text: String| {
        symbols.push(text);
        (symbols.len() - 1) as u32
    };
    let component_ref = symbol(format!("urn:pod/p{component}"));
    let mut timeseries = Vec::new();
    for index in 0..series_count {
        let pod_ref = symbol(format!("p{component}-{index}"));
        let trace_ref = symbol(format!("{record:x}{index:x}"));
        let timestamp = 1_700_000_000_000 + record as i64 * 1000;
        let value = if index == 0 && record % 5 == 4 {
            f64::from_bits(proto::STALE_NAN_BITS)
        } else {
            (record * 10 + index) as f64 / 3.0
        };
        timeseries.push(v2::TimeSeries {
            labels_refs: vec![1, 2, 3, component_ref, 4, pod_ref],
            samples: vec![v2::Sample {
                value,
                timestamp,
                start_timestamp: 1_699_999_000_000,
            }],
            histograms: if histograms {
                vec![v2::Histogram {
                    count: Some(v2::histogram::Count::CountInt(record as u64 + 2)),
                    sum: record as f64 * 0.25,
                    schema: 3,
                    positive_spans: vec![v2::BucketSpan {
                        offset: 0,
                        length: 2,
                    }],
                    positive_deltas: vec![1, record as i64],
                    timestamp: timestamp + 1,
                    ..v2::Histogram::default()
                }]
            } else {
                Vec::new()
            },
            exemplars: vec![v2::Exemplar {
                labels_refs: vec![5, trace_ref],
                value: 0.5,
                timestamp,
            }],
            metadata: Some(v2::Metadata {
                r#type: 3,
                help_ref: 6,
                unit_ref: 7,
            }),
            created_timestamp: 0,
        });
    }
    v2::Request {
        symbols,
        timeseries,
    }
    .encode_to_vec()
}

/// Writes `records` bound records (of four components, one to seven series
/// each, with native histograms or without) to `topics.bound` as the
/// correlator does; returns their series.
fn write_bound_records(topics: &Topics, records: usize, histograms: bool) -> Vec<BatchSeries> {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", support::kafka::brokers())
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let mut written = Vec::new();
    for record in 0..records {
        let component = record % 4;
        let payload = bound_request(component, record, 1 + record % 7, histograms);
        written.extend(read_batch(proto::CONTENT_TYPE_V2, &payload).unwrap());
        let key = format!("alpha/urn:pod/p{component}");
        let headers = OwnedHeaders::new().insert(Header {
            key: "content-type",
            value: Some(proto::CONTENT_TYPE_V2),
        });
        producer
            .send(
                BaseRecord::to(&topics.bound)
                    .key(&key)
                    .payload(&payload)
                    .headers(headers),
            )
            .unwrap();
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    written
}

/// An HTTPS receiver of remote-write 2.0 on the test's runtime, its
/// self-signed certificate the CA the forwarder is given: its URL, that
/// certificate's file, and what it receives.
fn start_https_receiver(
    dir: &TempDir,
    delay: Duration,
) -> (String, std::path::PathBuf, web::Data<Received>) {
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "receiver");
    let key = rcgen::KeyPair::generate().unwrap();
    let certificate = params.self_signed(&key).unwrap();
    let cert_file = dir.write("receiver.pem", &certificate.pem());
    let key_file = dir.write("receiver.key", &key.serialize_pem());
    let resolver = Arc::new(
        ingest::tls::CertificateResolver::load(ingest::config::TlsFiles {
            cert_file: cert_file.clone(),
            key_file,
        })
        .unwrap(),
    );
    let received = web::Data::new(Received {
        delay,
        ..Received::default()
    });
    let url = serve_write(
        received.clone(),
        receive_v2,
        Some(resolver.server_config().unwrap()),
    );
    (url, cert_file, received)
}

/// `correlator forward` in 2.0 to the HTTPS receiver, with basic auth and a header.
fn forward_v2(setup: &V2Setup, extra_env: &[(&str, &str)]) -> Correlator {
    let ca_file = setup.ca_file.to_str().unwrap();
    let mut env = extra_env.to_vec();
    env.extend([
        ("FORWARD_URL", setup.url.as_str()),
        ("FORWARD_GROUP", setup.group.as_str()),
        ("FORWARD_TLS_CA_FILE", ca_file),
        ("FORWARD_BASIC_AUTH_USERNAME", "forwarder"),
        ("FORWARD_BASIC_AUTH_PASSWORD", "s3cret"),
        ("FORWARD_HEADERS", "X-Scope-OrgID: acme"),
        ("FORWARD_MAX_POINTS_PER_REQUEST", "20"),
        ("FORWARD_BATCH_DEADLINE_MS", "200"),
    ]);
    let forwarding =
        Correlator::spawn_with(&setup.dir, &setup.topics, &setup.group, &["forward"], &env);
    forwarding.wait_ready(Duration::from_secs(30));
    forwarding
}

/// Fresh topics (created by a correlator, stopped once they are) and
/// `records` bound records written to them: the directory, the topics and
/// the records' series.
fn bound_topics(records: usize, histograms: bool) -> (TempDir, Topics, Vec<BatchSeries>) {
    let dir = TempDir::new();
    let topics = support::fresh_topics();
    drop(Correlator::start_alone(&dir, &topics, &[]));
    let written = write_bound_records(&topics, records, histograms);
    (dir, topics, written)
}

/// A config file with the shortest consumer session the broker allows (6 s),
/// so that a killed forwarder's partitions move to its successor soon.
fn short_session_config(dir: &TempDir) -> std::path::PathBuf {
    dir.write(
        "forward.toml",
        "[kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n",
    )
}

/// [`bound_topics`] with native histograms, and an HTTPS receiver answering after `delay`.
struct V2Setup {
    dir: TempDir,
    topics: Topics,
    written: Vec<BatchSeries>,
    url: String,
    ca_file: std::path::PathBuf,
    received: web::Data<Received>,
    group: String,
}

fn v2_setup(records: usize, delay: Duration) -> V2Setup {
    let (dir, topics, written) = bound_topics(records, true);
    let (url, ca_file, received) = start_https_receiver(&dir, delay);
    V2Setup {
        dir,
        topics,
        written,
        url,
        ca_file,
        received,
        group: support::unique("forward"),
    }
}

#[actix_web::test]
async fn remote_write_2_0_over_tls_with_basic_auth_and_a_header_carries_every_point_bit_for_bit() {
    let setup = v2_setup(40, Duration::ZERO);
    let mut forwarding = forward_v2(&setup, &[]);
    let histograms = setup
        .written
        .iter()
        .map(|s| s.histograms.len())
        .sum::<usize>() as f64;
    metric_reaches(
        &forwarding,
        "correlator_forward_sent_total",
        "kind=\"histogram\"",
        histograms,
    )
    .await;
    let samples = setup.written.iter().map(|s| s.samples.len()).sum::<usize>() as f64;
    assert_eq!(
        forwarding.metric("correlator_forward_sent_total", "kind=\"sample\""),
        samples
    );
    assert_eq!(
        forwarding.metric("correlator_forward_sent_total", "kind=\"exemplar\""),
        samples
    );
    assert_eq!(
        forwarding.metric("correlator_forward_requests_total", "outcome=\"retried\""),
        1.0,
        "the 429"
    );
    assert!(
        forwarding.terminate().success(),
        "{}",
        forwarding.log_text()
    );
    let (committed, ends) = committed_and_end(&setup.group, &setup.topics.bound);
    assert_eq!(committed, ends);

    let requests = setup.received.requests.lock().unwrap();
    use base64::Engine as _;
    let credentials = base64::engine::general_purpose::STANDARD.encode("forwarder:s3cret");
    for (headers, series) in requests.iter() {
        assert_eq!(headers["content-type"], proto::CONTENT_TYPE_V2);
        assert_eq!(headers["content-encoding"], "snappy");
        assert_eq!(headers["x-prometheus-remote-write-version"], "2.0.0");
        assert_eq!(headers["authorization"], format!("Basic {credentials}"));
        assert_eq!(headers["x-scope-orgid"], "acme");
        let points: usize = series
            .iter()
            .map(|s| s.samples.len() + s.histograms.len() + s.exemplars.len())
            .sum();
        assert!(points <= 20, "{points} points in one request");
    }
    assert!(requests.len() > 10, "{} requests", requests.len());
    // Every series' points as they were setup.written, in the order they were setup.written.
    let arrived = points_by_series(requests.iter().flat_map(|(_, series)| series));
    assert_eq!(arrived, points_by_series(&setup.written));
}

#[actix_web::test]
async fn a_forwarder_killed_mid_stream_and_restarted_leaves_nothing_out() {
    let setup = v2_setup(3000, Duration::from_millis(5));
    let config = short_session_config(&setup.dir);
    let short_session = [("CORRELATOR_CONFIG", config.to_str().unwrap())];
    let mut first = forward_v2(&setup, &short_session);
    let seen = setup.received.clone();
    eventually(
        Duration::from_secs(60),
        "100 requests received",
        move || (seen.requests.lock().unwrap().len() >= 100).then_some(()),
    )
    .await;
    first.kill();
    let before_restart = setup.received.requests.lock().unwrap().len();
    let mut second = forward_v2(&setup, &short_session);
    let wanted = points_by_series(&setup.written);
    let arrived_all = setup.received.clone();
    let duplicated = eventually(
        Duration::from_secs(120),
        "every point after the restart",
        move || {
            let requests = arrived_all.requests.lock().unwrap();
            let arrived = points_by_series(requests.iter().flat_map(|(_, series)| series));
            let mut duplicated = 0;
            for (labels, points) in &wanted {
                let got = arrived.get(labels)?;
                let distinct: BTreeSet<&String> = got.iter().collect();
                if distinct != points.iter().collect::<BTreeSet<_>>() {
                    return None;
                }
                duplicated += got.len() - points.len();
            }
            (arrived.len() == wanted.len()).then_some(duplicated)
        },
    )
    .await;
    assert!(second.terminate().success(), "{}", second.log_text());
    let (committed, ends) = committed_and_end(&setup.group, &setup.topics.bound);
    assert_eq!(committed, ends);
    let total: usize = points_by_series(&setup.written)
        .values()
        .map(Vec::len)
        .sum();
    eprintln!(
        "killed after {before_restart} requests; after the restart every one of {total} samples, histograms, exemplars and metadata entries arrived, {duplicated} twice"
    );
}

#[actix_web::test]
async fn a_forwarder_killed_mid_stream_and_restarted_leaves_every_bound_sample_in_prometheus() {
    // Without native histograms: Prometheus 2.42 takes them only behind a
    // feature flag, and its out-of-order window is for floats alone, so a
    // replayed histogram would fail its whole request.
    let (dir, topics, _) = bound_topics(3000, false);
    let facts = topic_facts(&topics.bound, "component_external_id");
    let prometheus = Arc::new(Prometheus::start(&dir));
    // Each answer 25 ms late, so that the kill lands mid-stream.
    let (url, proxy) = start_faulty_endpoint(
        0,
        500,
        Some(prometheus.url("/api/v1/write")),
        Duration::from_millis(25),
    );
    let config = short_session_config(&dir);
    let env = [
        ("CORRELATOR_CONFIG", config.to_str().unwrap()),
        ("FORWARD_MAX_POINTS_PER_REQUEST", "50"),
    ];
    let group = support::unique("forward");
    let mut first = forwarder(&dir, &topics, &group, &url, &env);
    first.wait_ready(Duration::from_secs(30));
    let answered = proxy.clone();
    eventually(
        Duration::from_secs(60),
        "100 requests answered by Prometheus",
        move || (answered.passed.load(Ordering::SeqCst) >= 100).then_some(()),
    )
    .await;
    first.kill();
    let before_kill = proxy.passed.load(Ordering::SeqCst);
    let mut second = forwarder(&dir, &topics, &group, &url, &env);
    second.wait_ready(Duration::from_secs(30));
    let latest_ms = facts.latest_ms;
    let window_s = (latest_ms - facts.earliest_ms) / 1000 + 60;
    let components: Vec<String> = facts.countable.keys().cloned().collect();
    let (store, wanted) = (prometheus.clone(), facts.countable.clone());
    let per_component = eventually(
        Duration::from_secs(90),
        "every bound sample in Prometheus",
        move || {
            let components: Vec<&str> = components.iter().map(String::as_str).collect();
            let held = store.samples_by("component_external_id", &components, window_s, latest_ms);
            (held == wanted).then_some(held)
        },
    )
    .await;
    // The restarted member sent what the killed one had left.
    let sent_after_restart = second.metric("correlator_forward_sent_total", "kind=\"sample\"");
    assert!(
        sent_after_restart > 0.0,
        "the first forwarder had sent everything"
    );
    assert_eq!(
        second.metric("correlator_forward_failed_total", "kind=\"sample\""),
        0.0
    );
    assert!(second.terminate().success(), "{}", second.log_text());
    let (committed, ends) = committed_and_end(&group, &topics.bound);
    assert_eq!(committed, ends);
    let passed = proxy.passed_samples.load(Ordering::SeqCst);
    eprintln!(
        "killed after {before_kill} requests answered; after the restart Prometheus holds every one of the {} samples but the {} stale markers, per component: {per_component:?}; {} samples sent twice ({} requests in all)",
        facts.samples,
        facts.samples - facts.countable.values().sum::<usize>(),
        passed.saturating_sub(facts.samples),
        proxy.passed.load(Ordering::SeqCst),
    );
}
