//! Helpers for tests against the real broker started by `deploy/local/kafka.sh`
//! (`KAFKA_BROKERS`, default 127.0.0.1:9092). Every test uses topics of its own.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use actix_web::web;
use base64::Engine as _;
use ingest::config::{Options, Settings};
use ingest::state::AppState;
use rand::Rng;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

pub const KEY_A: &str = "test-api-key-0123456789";
pub const KEY_B: &str = "second-tenant-key-9876543210";

pub fn brokers() -> String {
    std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

pub fn unique(prefix: &str) -> String {
    let suffix: u64 = rand::rng().random();
    format!("{prefix}-{suffix:016x}")
}

/// A scratch directory removed at the end of the test.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let path = std::env::temp_dir().join(unique("ingest-test"));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Two tenants, `alpha` (KEY_A) and `beta` (KEY_B), plus whatever `extra` adds.
pub fn keys_file(dir: &TempDir, extra: &str) -> PathBuf {
    dir.write(
        "keys.toml",
        &format!("[[keys]]\ntenant = \"alpha\"\nkey = \"{KEY_A}\"\n\n[[keys]]\ntenant = \"beta\"\nkey = \"{KEY_B}\"\n\n{extra}"),
    )
}

/// Settings with fresh topics and the given keys file.
pub fn settings(keys: PathBuf, tweak: impl FnOnce(&mut Options)) -> Settings {
    let mut options = Options {
        kafka_brokers: brokers(),
        api_keys_file: Some(keys),
        topic_samples: unique("samples"),
        topic_topology_raw: unique("topology-raw"),
        topic_partitions: 4,
        request_timeout_ms: 5000,
        ..shared::settings::defaults::<Options>()
    };
    tweak(&mut options);
    Settings::resolve(options).unwrap()
}

/// Shared state with topics created and metadata in, as the server has it once ready.
pub async fn ready_state(settings: Settings) -> web::Data<AppState> {
    let state = web::Data::new(ingest::server::build_state(settings).unwrap());
    ingest::server::spawn_upkeep(state.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !state.is_ready() {
        assert!(
            Instant::now() < deadline,
            "ingest not ready within 60 s (is kafka running?)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    state
}

pub fn basic_auth(key: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("apikey:{key}"))
    )
}

/// One record as read back.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub headers: BTreeMap<String, String>,
    pub payload: Vec<u8>,
}

/// Reads every record of `topic` from the beginning to the end offsets it has now.
pub fn read_all(topic: &str) -> Vec<Record> {
    read_all_from(&brokers(), topic)
}

/// The partitions `topic` has (on `KAFKA_BROKERS`).
pub fn partition_count(topic: &str) -> i32 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    partitions_of(&consumer, topic)
}

fn partitions_of(consumer: &BaseConsumer, topic: &str) -> i32 {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    metadata.topics()[0].partitions().len() as i32
}

/// [`read_all`] from another cluster than `KAFKA_BROKERS`. Reads committed
/// records only; transaction markers and aborted records count towards the end
/// offsets but are never delivered, so progress is judged by position.
pub fn read_all_from(brokers: &str, topic: &str) -> Vec<Record> {
    let mut records = Vec::new();
    visit_all_from(brokers, topic, |message| {
        let mut headers = BTreeMap::new();
        if let Some(list) = message.headers() {
            for header in list.iter() {
                headers.insert(
                    header.key.to_string(),
                    String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned(),
                );
            }
        }
        records.push(Record {
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            headers,
            payload: message.payload().unwrap_or_default().to_vec(),
        });
    });
    records
}

/// Hands every record of `topic`, from the beginning to the end offsets it
/// has now, to `visit` without keeping it: for topics too large to hold.
pub fn visit_all_from(brokers: &str, topic: &str, mut visit: impl FnMut(&BorrowedMessage<'_>)) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let partitions = partitions_of(&consumer, topic);
    let mut assignment = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for partition in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .unwrap();
        assignment
            .add_partition_offset(topic, partition, Offset::Offset(low))
            .unwrap();
        if high > low {
            ends.insert(partition, high);
        }
    }
    consumer.assign(&assignment).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ends.is_empty() {
        assert!(
            Instant::now() < deadline,
            "reading {topic}: partitions {ends:?} not read to their end"
        );
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.unwrap();
            if ends
                .get(&message.partition())
                .is_some_and(|end| message.offset() < *end)
            {
                visit(&message);
            }
        }
        let positions = consumer.position().unwrap();
        for element in positions.elements() {
            if let Offset::Offset(position) = element.offset() {
                if ends
                    .get(&element.partition())
                    .is_some_and(|end| position >= *end)
                {
                    ends.remove(&element.partition());
                }
            }
        }
    }
}

/// Waits until `topic` holds at least `count` records in all, then reads them.
pub fn read_at_least(topic: &str, count: usize, within: Duration) -> Vec<Record> {
    let deadline = Instant::now() + within;
    loop {
        let records = read_all(topic);
        if records.len() >= count || Instant::now() > deadline {
            return records;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Polls a `/readyz` URL until it answers 200, or fails with the service's log.
pub fn wait_until_ready(url: &str, within: Duration, log: impl Fn() -> String) {
    let deadline = Instant::now() + within;
    loop {
        let ready = std::process::Command::new("curl")
            .args(["-fs", "-o", "/dev/null", url])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} not ready; log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `ingest` binary running as its own process, stopped on drop.
pub struct IngestProcess {
    pub child: std::process::Child,
    pub port: u16,
    pub topic: String,
    pub log: PathBuf,
}

impl IngestProcess {
    /// Starts the binary against `brokers` with a fresh samples topic and waits for `/readyz`.
    /// `binary` is `env!("CARGO_BIN_EXE_ingest")`, known only to ingest's own tests.
    pub fn start(
        binary: &str,
        dir: &TempDir,
        keys: &PathBuf,
        brokers: &str,
        extra_env: &[(&str, &str)],
    ) -> IngestProcess {
        let port = free_port();
        let topic = unique("samples");
        let log = dir.0.join(format!("ingest-{port}.log"));
        let mut command = std::process::Command::new(binary);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KAFKA_BROKERS", brokers)
            .env("API_KEYS_FILE", keys)
            .env("INGEST_LISTEN", format!("127.0.0.1:{port}"))
            .env("TOPIC_SAMPLES", &topic)
            .env("TOPIC_TOPOLOGY_RAW", unique("topology-raw"))
            .env("TOPIC_PARTITIONS", "4")
            .env("INGEST_WORKERS", "2")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::options().append(true).open(&log).unwrap());
        for (name, value) in extra_env {
            command.env(name, value);
        }
        let child = command.spawn().unwrap();
        let process = IngestProcess {
            child,
            port,
            topic,
            log,
        };
        process.wait_ready(Duration::from_secs(60));
        process
    }

    /// [`Self::start`] on `KAFKA_BROKERS` with the keys of [`keys_file`] (two
    /// tenants) written in `dir`.
    pub fn start_for_two_tenants(
        binary: &str,
        dir: &TempDir,
        extra_env: &[(&str, &str)],
    ) -> IngestProcess {
        let keys = keys_file(dir, "");
        IngestProcess::start(binary, dir, &keys, &brokers(), extra_env)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn wait_ready(&self, within: Duration) {
        wait_until_ready(&self.url("/readyz"), within, || self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for IngestProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A snappy v1 body with `series` series of one sample each, labelled `request=<id>`.
pub fn v1_request(id: &str, series: usize) -> Vec<u8> {
    v1_request_of(series, |index| {
        vec![
            ("__name__", "load_test_metric".into()),
            ("request", id.to_string()),
            ("series", index.to_string()),
        ]
    })
}

/// A snappy v1 body of `series` series, each with the labels `labels_of`
/// gives its index and one sample whose value is the index.
pub fn v1_request_of(
    series: usize,
    labels_of: impl Fn(usize) -> Vec<(&'static str, String)>,
) -> Vec<u8> {
    use proto::prometheus::{Label, Sample, TimeSeries};
    let timeseries = (0..series)
        .map(|index| TimeSeries {
            labels: labels_of(index)
                .into_iter()
                .map(|(name, value)| Label {
                    name: name.into(),
                    value,
                })
                .collect(),
            samples: vec![Sample {
                value: index as f64,
                timestamp: 1_700_000_000_000,
            }],
            ..Default::default()
        })
        .collect();
    snappy_v1(timeseries)
}

/// Prometheus `binary` with `config`, its TSDB in `dir`, listening on `port`:
/// the caller adds its own flags and where the output goes.
pub fn prometheus_command(
    binary: impl AsRef<std::ffi::OsStr>,
    dir: &TempDir,
    config: &std::path::Path,
    port: u16,
) -> std::process::Command {
    let mut command = std::process::Command::new(binary);
    command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.0.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"));
    command
}

/// The body of a GET of `url`, which must answer.
pub async fn get_text(client: &reqwest::Client, url: &str) -> String {
    let response = client.get(url).send().await.unwrap();
    response.text().await.unwrap()
}

/// The value of a v1 series' label `name`; empty if it has none.
pub fn label_value(series: &proto::prometheus::TimeSeries, name: &str) -> String {
    let label = series.labels.iter().find(|label| label.name == name);
    label.map(|label| label.value.clone()).unwrap_or_default()
}

/// Samples per `request` label value found in `records` (v1 payloads).
pub fn samples_per_request(records: &[Record]) -> BTreeMap<String, usize> {
    use proto::Message;
    let mut counts = BTreeMap::new();
    for record in records {
        let request = proto::prometheus::WriteRequest::decode(record.payload.as_slice()).unwrap();
        for series in request.timeseries {
            if let Some(label) = series.labels.iter().find(|l| l.name == "request") {
                *counts.entry(label.value.clone()).or_insert(0) += series.samples.len();
            }
        }
    }
    counts
}

/// A snappy v1 body holding one series with `labels` and one sample at `timestamp`.
pub fn v1_request_with(labels: &[(&str, &str)], timestamp: i64) -> Vec<u8> {
    use proto::prometheus::{Label, Sample, TimeSeries};
    let mut labels: Vec<Label> = labels
        .iter()
        .map(|(n, v)| Label {
            name: n.to_string(),
            value: v.to_string(),
        })
        .collect();
    labels.sort_by(|a, b| a.name.cmp(&b.name));
    let series = TimeSeries {
        labels,
        samples: vec![Sample {
            value: 1.0,
            timestamp,
        }],
        ..Default::default()
    };
    snappy_v1(vec![series])
}

/// A snappy v1 body of `timeseries`, without metadata.
pub fn snappy_v1(timeseries: Vec<proto::prometheus::TimeSeries>) -> Vec<u8> {
    use proto::Message;
    let raw = proto::prometheus::WriteRequest {
        timeseries,
        metadata: vec![],
    }
    .encode_to_vec();
    snap::raw::Encoder::new().compress_vec(&raw).unwrap()
}
