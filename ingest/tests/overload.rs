//! The `ingest` binary flooded flat out with valid remote-write requests, far
//! more than it can take: its peak RSS stays within the documented bound
//! (`MAX_INFLIGHT_BYTES` plus a constant, README "Sizing"), it stays ready,
//! every request it answered 204 is in Kafka, and its log holds a few lines a
//! second however many requests it refuses.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{IngestProcess, TempDir};
use proto::Message;
use proto::prometheus::TimeSeries;
use rdkafka::message::Message as _;

/// The default `MAX_INFLIGHT_BYTES`.
const MAX_INFLIGHT_BYTES: u64 = 256 << 20;
/// What ingest needs beside the requests' bytes (README "Sizing"), with the
/// debug build's larger code and the connections of this test.
const CONSTANT_BYTES: u64 = 128 << 20;
const LOAD: Duration = Duration::from_secs(10);

/// One flat-out phase: `connections` senders, each sending the next of
/// `bodies` as soon as the previous one is answered, whatever the answer.
struct Phase {
    connections: usize,
    series_per_request: usize,
    bodies: usize,
}

/// What a phase's senders saw.
#[derive(Default)]
struct Answers {
    by_status: BTreeMap<String, usize>,
    /// 204s per body.
    acknowledged: HashMap<String, usize>,
}

/// A remote-write 1.0 request of `series` Kubernetes-like series of one
/// sample each, every one labelled `request=<id>`.
fn request_body(id: &str, series: usize) -> Bytes {
    const NAMES: [&str; 4] = [
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
        "kube_pod_container_status_restarts_total",
        "http_server_requests_seconds_count",
    ];
    Bytes::from(common::v1_request_of(series, |index| {
        vec![
            ("__name__", NAMES[index % NAMES.len()].into()),
            ("container", format!("app-{}", index % 7)),
            (
                "instance",
                format!(
                    "10.{}.{}.{}:9100",
                    index % 3,
                    index / 250 % 250,
                    index % 250
                ),
            ),
            ("job", "kubernetes-pods".into()),
            ("namespace", format!("team-{}", index % 13)),
            ("node", format!("node-{:03}", index % 50)),
            ("pod", format!("web-7d4b9c{:04x}-{}", index / 8, index % 8)),
            ("request", id.to_string()),
            ("series", index.to_string()),
        ]
    }))
}

async fn flood(ingest: &IngestProcess, phase: &Phase) -> Answers {
    let bodies: Arc<Vec<(String, Bytes)>> = Arc::new(
        (0..phase.bodies)
            .map(|index| {
                let id = format!("{}-{index}", phase.series_per_request);
                let body = request_body(&id, phase.series_per_request);
                (id, body)
            })
            .collect(),
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = ingest.url("/api/v1/write");
    let until = Instant::now() + LOAD;
    let senders: Vec<_> = (0..phase.connections)
        .map(|sender| {
            let (client, url, bodies) = (client.clone(), url.clone(), bodies.clone());
            tokio::spawn(async move {
                let mut answers = Answers::default();
                let mut next = sender;
                while Instant::now() < until {
                    let (id, body) = &bodies[next % bodies.len()];
                    next += 1;
                    let response = client
                        .post(&url)
                        .header("sts-api-key", common::KEY_A)
                        .header("content-type", "application/x-protobuf")
                        .header("content-encoding", "snappy")
                        .body(body.clone())
                        .send()
                        .await;
                    let status = match response {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            // Read the answer so the connection is reused.
                            let _ = response.bytes().await;
                            status.to_string()
                        }
                        Err(error) if error.is_timeout() => "timeout".into(),
                        Err(_) => "connection error".into(),
                    };
                    if status == "204" {
                        *answers.acknowledged.entry(id.clone()).or_default() += 1;
                    }
                    *answers.by_status.entry(status).or_default() += 1;
                }
                answers
            })
        })
        .collect();
    let mut answers = Answers::default();
    for sender in senders {
        let one = sender.await.unwrap();
        for (status, count) in one.by_status {
            *answers.by_status.entry(status).or_default() += count;
        }
        for (id, count) in one.acknowledged {
            *answers.acknowledged.entry(id).or_default() += count;
        }
    }
    answers
}

/// `/proc/<pid>/status` fields in bytes.
fn memory_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Resets the process's peak RSS (VmHWM) to its current RSS.
fn reset_peak(pid: u32) {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
}

/// Per request id: records per partition and the series each holds.
#[derive(Default)]
struct Found {
    records: BTreeMap<i32, usize>,
    series: BTreeMap<i32, usize>,
}

/// Every record of the topic, by the `request` label of its first series.
fn found_in_kafka(topic: &str) -> HashMap<String, Found> {
    let mut found: HashMap<String, Found> = HashMap::new();
    common::visit_all_from(&common::brokers(), topic, |message| {
        let payload = message.payload().unwrap_or_default();
        let mut series = 0;
        let mut request = None;
        for field in proto::wire::Fields::new(payload) {
            let field = field.unwrap();
            if field.number != proto::fields::prometheus::WRITE_REQUEST_TIMESERIES {
                continue;
            }
            series += 1;
            if request.is_none() {
                let first = TimeSeries::decode(field.bytes().unwrap()).unwrap();
                request = first
                    .labels
                    .into_iter()
                    .find(|label| label.name == "request")
                    .map(|label| label.value);
            }
        }
        let entry = found.entry(request.expect("a request label")).or_default();
        *entry.records.entry(message.partition()).or_default() += 1;
        let previous = entry.series.insert(message.partition(), series);
        assert!(
            previous.is_none_or(|previous| previous == series),
            "records of one body and partition hold the same series"
        );
    });
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_valid_requests_keeps_memory_bounded_readiness_and_quiet_logs() {
    let dir = TempDir::new();
    let ingest = IngestProcess::start_for_two_tenants(env!("CARGO_BIN_EXE_ingest"), &dir, &[]);
    let pid = ingest.child.id();

    // Readiness probed all along, as Kubernetes would (with a lenient timeout:
    // the machine running the test is loaded too).
    let probing = Arc::new(AtomicBool::new(true));
    let prober = {
        let probing = probing.clone();
        let url = ingest.url("/readyz");
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let mut failures = Vec::new();
            let mut probes = 0;
            while probing.load(Ordering::Relaxed) {
                probes += 1;
                match client.get(&url).send().await {
                    Ok(response) if response.status() == 200 => {}
                    Ok(response) => failures.push(response.status().to_string()),
                    Err(error) => failures.push(error.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            (probes, failures)
        })
    };

    let phases = [
        // Many senders catching up after an outage.
        Phase {
            connections: 512,
            series_per_request: 2_000,
            bodies: 64,
        },
        // Fewer, large requests.
        Phase {
            connections: 64,
            series_per_request: 20_000,
            bodies: 8,
        },
    ];
    let mut acknowledged: HashMap<String, usize> = HashMap::new();
    let mut series_of: HashMap<String, usize> = HashMap::new();
    let log_lines_before = ingest.log_text().lines().count();
    let load_started = Instant::now();
    for phase in &phases {
        reset_peak(pid);
        let answers = flood(&ingest, phase).await;
        let peak = memory_bytes(pid, "VmHWM:");
        tokio::time::sleep(Duration::from_secs(5)).await;
        let after = memory_bytes(pid, "VmRSS:");
        eprintln!(
            "{} connections x {} samples: {:?}; peak RSS {} MiB, {} MiB 5 s later",
            phase.connections,
            phase.series_per_request,
            answers.by_status,
            peak >> 20,
            after >> 20
        );
        assert!(
            answers.by_status.get("204").is_some_and(|count| *count > 0),
            "some requests are acknowledged: {:?}",
            answers.by_status
        );
        assert!(
            answers
                .by_status
                .keys()
                .all(|status| ["204", "503", "connection error"].contains(&status.as_str())),
            "only 204, or 503 for back-pressure: {:?}",
            answers.by_status
        );
        assert!(
            peak <= MAX_INFLIGHT_BYTES + CONSTANT_BYTES,
            "peak RSS {} MiB over the bound of {} MiB",
            peak >> 20,
            (MAX_INFLIGHT_BYTES + CONSTANT_BYTES) >> 20
        );
        for (id, count) in answers.acknowledged {
            series_of.insert(id.clone(), phase.series_per_request);
            *acknowledged.entry(id).or_default() += count;
        }
    }
    let load_seconds = load_started.elapsed().as_secs_f64();
    probing.store(false, Ordering::Relaxed);
    let (probes, failures) = prober.await.unwrap();
    assert!(
        failures.is_empty(),
        "{} of {probes} readiness probes failed: {failures:?}",
        failures.len()
    );

    // Refusals are logged at most once a second per tenant and reason.
    let log = ingest.log_text();
    let log_lines = log.lines().count() - log_lines_before;
    eprintln!(
        "{log_lines} log lines in {load_seconds:.0} s of load; {probes} readiness probes, all ready"
    );
    assert!(
        log_lines as f64 <= 3.0 * load_seconds,
        "{log_lines} log lines in {load_seconds:.0} s:\n{}",
        log.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );

    // Every 204 is in Kafka: each acknowledged send of a body put one record
    // in every partition its series go to, and those records hold them all.
    // (A 503 may have written some of its records, so there can be more.)
    let found = found_in_kafka(&ingest.topic);
    let mut verified = 0;
    for (id, count) in &acknowledged {
        let in_kafka = found
            .get(id)
            .unwrap_or_else(|| panic!("{id}: not in Kafka"));
        assert_eq!(
            in_kafka.series.values().sum::<usize>(),
            series_of[id],
            "{id}: its records hold every series"
        );
        for (partition, records) in &in_kafka.records {
            assert!(
                records >= count,
                "{id}: {count} acknowledged, {records} records in partition {partition}"
            );
        }
        verified += count * series_of[id];
    }
    let requests: usize = acknowledged.values().sum();
    eprintln!("{requests} acknowledged requests, all {verified} samples found in Kafka");
}
