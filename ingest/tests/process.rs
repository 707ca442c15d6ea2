//! The `ingest` binary as operators run it: fed by a real Prometheus, through
//! a Kafka outage, and stopped with SIGTERM under load.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{IngestProcess, TempDir};
use proto::Message;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(16)
        .build()
        .unwrap()
}

async fn send(
    client: &reqwest::Client,
    process: &IngestProcess,
    body: Vec<u8>,
) -> Result<u16, reqwest::Error> {
    let response = client
        .post(process.url("/api/v1/write"))
        .header("sts-api-key", common::KEY_A)
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .body(body)
        .send()
        .await?;
    Ok(response.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_real_prometheus_writes_with_basic_auth() {
    let dir = TempDir::new();
    let ingest = IngestProcess::start_for_two_tenants(
        env!("CARGO_BIN_EXE_ingest"),
        &dir,
        &[("RUST_LOG", "debug")],
    );
    let prometheus_port = common::free_port();
    let config = dir.write(
        "prometheus.yml",
        &format!(
            "global:\n  scrape_interval: 1s\n  external_labels:\n    cluster_name: demo-cluster\n\
             scrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{prometheus_port}']\n\
             remote_write:\n  - url: {}\n    basic_auth:\n      username: apikey\n      password: {}\n    queue_config:\n      batch_send_deadline: 1s\n",
            ingest.url("/receiver/prometheus/api/v1/write"),
            common::KEY_A
        ),
    );
    let mut prometheus = common::prometheus_command("prometheus", &dir, &config, prometheus_port)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.0.join("prometheus.log")).unwrap())
        .spawn()
        .expect("Debian's prometheus is installed (make deps)");

    let wanted = ["up", "prometheus_build_info"];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut found = BTreeMap::new();
    while found.len() < wanted.len() {
        assert!(
            Instant::now() < deadline,
            "within a minute only {found:?} arrived; ingest log:\n{}\nprometheus log:\n{}",
            ingest.log_text(),
            std::fs::read_to_string(dir.0.join("prometheus.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        let topic = ingest.topic.clone();
        let records = tokio::task::spawn_blocking(move || common::read_all(&topic))
            .await
            .unwrap();
        for record in records {
            let request =
                proto::prometheus::WriteRequest::decode(record.payload.as_slice()).unwrap();
            for series in request.timeseries {
                let name = common::label_value(&series, "__name__");
                if wanted.contains(&name.as_str()) {
                    assert_eq!(record.headers["tenant"], "alpha");
                    assert!(
                        series
                            .labels
                            .iter()
                            .any(|l| l.name == "cluster_name" && l.value == "demo-cluster")
                    );
                    found.insert(name, record.headers["tenant"].clone());
                }
            }
        }
    }
    let _ = prometheus.kill();
    let _ = prometheus.wait();

    // Keys never show: not in the log (at debug level, with refused requests in it), not in /metrics.
    let refused = client()
        .post(ingest.url("/api/v1/write"))
        .header("sts-api-key", "wrong-key-0000")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let empty = proto::prometheus::TimeSeries {
        labels: vec![proto::prometheus::Label {
            name: "__name__".into(),
            value: "nothing".into(),
        }],
        ..Default::default()
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(
            &proto::prometheus::WriteRequest {
                timeseries: vec![empty],
                metadata: vec![],
            }
            .encode_to_vec(),
        )
        .unwrap();
    assert_eq!(send(&client(), &ingest, body).await.unwrap(), 400);
    let metrics = common::get_text(&client(), &ingest.url("/metrics")).await;
    assert!(metrics.contains("ingest_samples_accepted_total"));
    let log = ingest.log_text();
    // Each refusal has its line: who, what and why (a 401: from where and how).
    let refusal = |needles: &[&str]| {
        log.lines().any(|line| {
            line.contains("request refused") && needles.iter().all(|n| line.contains(n))
        })
    };
    assert!(
        refusal(&["401", "unknown_key", "header", "127.0.0.1", "suppressed"]),
        "{log}"
    );
    assert!(
        refusal(&["alpha", "400", "empty_series", "nothing", "suppressed"]),
        "{log}"
    );
    for secret in [common::KEY_A, common::KEY_B, "wrong-key-0000"] {
        assert!(!log.contains(secret), "a key in the log");
        assert!(!metrics.contains(secret), "a key in the metrics");
    }
}

/// A broker of the test's own, so stopping it disturbs no other test.
struct PrivateBroker {
    env: Vec<(&'static str, String)>,
    port: u16,
}

impl PrivateBroker {
    fn start() -> PrivateBroker {
        let port = common::free_port();
        let controller = common::free_port();
        let state = std::env::temp_dir().join(common::unique("kafka-outage"));
        let broker = PrivateBroker {
            env: vec![
                ("KAFKA_PORT", port.to_string()),
                ("KAFKA_CONTROLLER_PORT", controller.to_string()),
                ("KAFKA_STATE_DIR", state.display().to_string()),
                ("KAFKA_HEAP_OPTS", "-Xms128m -Xmx512m".to_string()),
            ],
            port,
        };
        broker.script("start");
        broker
    }

    fn script(&self, action: &str) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/local/kafka.sh");
        let status = std::process::Command::new(script)
            .arg(action)
            .envs(self.env.iter().map(|(k, v)| (*k, v)))
            .status()
            .unwrap();
        assert!(status.success(), "kafka.sh {action}");
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.script("stop");
        let _ = std::fs::remove_dir_all(&self.env[2].1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kafka_down_means_503_in_time_and_retries_land_exactly_once() {
    let dir = TempDir::new();
    let keys = common::keys_file(&dir, "");
    let broker = PrivateBroker::start();
    let brokers = format!("127.0.0.1:{}", broker.port);
    let request_timeout = Duration::from_millis(3000);
    let ingest = IngestProcess::start(
        env!("CARGO_BIN_EXE_ingest"),
        &dir,
        &keys,
        &brokers,
        &[("REQUEST_TIMEOUT_MS", "3000")],
    );
    let client = client();

    assert_eq!(
        send(&client, &ingest, common::v1_request("before", 10))
            .await
            .unwrap(),
        204
    );

    broker.script("stop");
    let mut answers = Vec::new();
    for index in 0..6 {
        let started = Instant::now();
        let status = send(
            &client,
            &ingest,
            common::v1_request(&format!("outage-{index}"), 10),
        )
        .await
        .unwrap();
        let took = started.elapsed();
        assert_eq!(status, 503, "request {index} during the outage");
        // The deadline runs from the request's arrival; the client's clock
        // also counts sending and scheduling, which a loaded machine stretches.
        // What matters is that the answer comes near the timeout, not after
        // Kafka's delivery timeout.
        assert!(
            took < request_timeout + Duration::from_secs(2),
            "answer took {took:?}"
        );
        answers.push(took);
    }

    broker.script("start");
    let deadline = Instant::now() + Duration::from_secs(90);
    for index in 0..6 {
        loop {
            let status = send(
                &client,
                &ingest,
                common::v1_request(&format!("outage-{index}"), 10),
            )
            .await;
            if status.as_ref().ok() == Some(&204) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "request {index} not accepted after the broker came back: {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    let topic = ingest.topic.clone();
    let records = tokio::task::spawn_blocking(move || common::read_all_from(&brokers, &topic))
        .await
        .unwrap();
    let counts = common::samples_per_request(&records);
    assert_eq!(counts.get("before"), Some(&10));
    for index in 0..6 {
        assert_eq!(
            counts.get(&format!("outage-{index}")),
            Some(&10),
            "outage-{index}: every acknowledged sample once"
        );
    }
    eprintln!("answers during the outage took {answers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_answers_in_flight_requests_and_loses_nothing() {
    let dir = TempDir::new();
    let mut ingest = IngestProcess::start_for_two_tenants(
        env!("CARGO_BIN_EXE_ingest"),
        &dir,
        &[("SHUTDOWN_DELAY_MS", "500")],
    );
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop_at = Instant::now() + Duration::from_secs(30);
    let mut senders = Vec::new();
    for sender in 0..8 {
        let client = client();
        let url = ingest.url("/api/v1/write");
        let acknowledged = acknowledged.clone();
        senders.push(tokio::spawn(async move {
            let mut statuses = BTreeMap::<u16, usize>::new();
            for index in 0.. {
                if Instant::now() > stop_at {
                    break;
                }
                let id = format!("s{sender}-r{index}");
                let response = client
                    .post(&url)
                    .header("sts-api-key", common::KEY_A)
                    .header("content-type", "application/x-protobuf")
                    .body(common::v1_request(&id, 50))
                    .send()
                    .await;
                match response {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        *statuses.entry(status).or_default() += 1;
                        if status == 204 {
                            acknowledged.lock().unwrap().push(id);
                        }
                    }
                    // The listener is closed: the drain is over for new connections.
                    Err(_) => break,
                }
            }
            statuses
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    ingest.signal("-TERM");
    let exit = tokio::task::spawn_blocking(move || {
        let status = ingest.child.wait().unwrap();
        (status, ingest)
    })
    .await
    .unwrap();
    let (status, ingest) = exit;
    let mut statuses = BTreeMap::<u16, usize>::new();
    for sender in senders {
        for (status, count) in sender.await.unwrap() {
            *statuses.entry(status).or_default() += count;
        }
    }
    assert_eq!(
        status.code(),
        Some(0),
        "exit code; log:\n{}",
        ingest.log_text()
    );
    assert!(
        statuses.keys().all(|s| *s == 204),
        "only successes while draining: {statuses:?}"
    );

    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() > 20, "load was sent: {statuses:?}");
    let topic = ingest.topic.clone();
    let records = tokio::task::spawn_blocking(move || common::read_all(&topic))
        .await
        .unwrap();
    let counts = common::samples_per_request(&records);
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|id| counts.get(*id) != Some(&50))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not in kafka: {missing:?}"
    );
    eprintln!(
        "{} requests acknowledged during the SIGTERM test: {statuses:?}",
        acknowledged.len()
    );
}
