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
use rdkafka::message::{Headers, Message};
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
        kafka_brokers: Some(brokers()),
        api_keys_file: Some(keys),
        topic_samples: Some(unique("samples")),
        topic_topology_raw: Some(unique("topology-raw")),
        topic_partitions: Some(4),
        request_timeout_ms: Some(5000),
        ..Options::default()
    };
    tweak(&mut options);
    Settings::resolve(options, Options::default()).unwrap()
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
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let partitions = metadata.topics()[0].partitions().len() as i32;
    let mut assignment = TopicPartitionList::new();
    let mut remaining = 0i64;
    let mut ends = BTreeMap::new();
    for partition in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .unwrap();
        assignment
            .add_partition_offset(topic, partition, Offset::Offset(low))
            .unwrap();
        ends.insert(partition, high);
        remaining += high - low;
    }
    consumer.assign(&assignment).unwrap();
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while records.len() < remaining as usize {
        assert!(
            Instant::now() < deadline,
            "read {} of {remaining} records",
            records.len()
        );
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.unwrap();
        if message.offset() >= ends[&message.partition()] {
            continue;
        }
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
    }
    records
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
