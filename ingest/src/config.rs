//! Settings of the ingest service: command line, environment and an optional
//! TOML file, in that order of precedence (a variable overrides the file).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;
use clap::Parser;
use serde::Deserialize;
use shared::config::{KafkaSection, read_toml};
use shared::logging::LogFormat;

/// Every setting is optional here so that the file, the environment and the
/// defaults can be layered; [`Settings::resolve`] turns it into [`Settings`].
#[derive(Debug, Default, Clone, Parser, Deserialize)]
#[command(
    name = "ingest",
    version,
    about = "Prometheus remote_write and topology intake into Kafka"
)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    /// TOML file with any of the settings below (keys are the variable names in lowercase) and a `[kafka.properties]` table.
    #[arg(long, env = "INGEST_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Kafka bootstrap servers, comma separated [default: 127.0.0.1:9092]
    #[arg(long, env = "KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,

    /// Address the HTTP listener binds [default: 0.0.0.0:8080]
    #[arg(long, env = "INGEST_LISTEN")]
    pub ingest_listen: Option<SocketAddr>,

    /// The API keys file (TOML, `[[keys]]` with tenant, key or sha256, optional quotas and limits); re-read when it changes
    #[arg(long, env = "API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,

    /// PEM certificate chain (end-entity first); with TLS_KEY_FILE, INGEST_LISTEN serves HTTPS only. Re-read when it changes
    #[arg(long, env = "TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key of TLS_CERT_FILE's certificate (PKCS#8, PKCS#1 or SEC1); re-read when it changes
    #[arg(long, env = "TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,

    /// Topic for remote-write records [default: metrics.samples]
    #[arg(long, env = "TOPIC_SAMPLES")]
    pub topic_samples: Option<String>,

    /// Topic for topology snapshot parts [default: topology.raw]
    #[arg(long, env = "TOPIC_TOPOLOGY_RAW")]
    pub topic_topology_raw: Option<String>,

    /// Create missing topics at start [default: true]
    #[arg(long, env = "CREATE_TOPICS")]
    pub create_topics: Option<bool>,

    /// Partitions of topics this service creates [default: 8]
    #[arg(long, env = "TOPIC_PARTITIONS")]
    pub topic_partitions: Option<i32>,

    /// Label names, comma separated: a series carrying all of them goes to the partition of their values alone, so a pod's series share one; empty spreads every series by all its labels [default: namespace,pod]
    #[arg(long, env = "PARTITION_BY_LABELS", value_delimiter = ',')]
    pub partition_by_labels: Option<Vec<String>>,

    /// Replication factor of topics this service creates; -1 takes the broker's default [default: -1]
    #[arg(long, env = "TOPIC_REPLICATION_FACTOR")]
    pub topic_replication_factor: Option<i32>,

    /// Largest request body accepted, in bytes, before decompression [default: 16777216]
    #[arg(long, env = "MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,

    /// Largest decompressed remote-write body, in bytes; checked against the snappy header before allocating [default: 33554432]
    #[arg(long, env = "MAX_DECODED_BYTES")]
    pub max_decoded_bytes: Option<usize>,

    /// Most request bytes (decompressed) held in memory at once across all requests; past it requests get 503 [default: 268435456]
    #[arg(long, env = "MAX_INFLIGHT_BYTES")]
    pub max_inflight_bytes: Option<usize>,

    /// Default most labels per series (a tenant's keys entry may override it) [default: 40]
    #[arg(long, env = "MAX_LABELS_PER_SERIES")]
    pub max_labels_per_series: Option<usize>,

    /// Default longest label name in bytes [default: 1024]
    #[arg(long, env = "MAX_LABEL_NAME_LENGTH")]
    pub max_label_name_length: Option<usize>,

    /// Default longest label value in bytes [default: 4096]
    #[arg(long, env = "MAX_LABEL_VALUE_LENGTH")]
    pub max_label_value_length: Option<usize>,

    /// Time a request may take end to end, Kafka acks included, in milliseconds [default: 10000]
    #[arg(long, env = "REQUEST_TIMEOUT_MS")]
    pub request_timeout_ms: Option<u64>,

    /// On SIGTERM, how long /readyz answers 503 before the listener closes, in milliseconds [default: 0]
    #[arg(long, env = "SHUTDOWN_DELAY_MS")]
    pub shutdown_delay_ms: Option<u64>,

    /// On SIGTERM, how long in-flight requests and the producer flush may take, in milliseconds [default: 30000]
    #[arg(long, env = "SHUTDOWN_TIMEOUT_MS")]
    pub shutdown_timeout_ms: Option<u64>,

    /// HTTP worker threads; 0 means one per core [default: 0]
    #[arg(long, env = "INGEST_WORKERS")]
    pub ingest_workers: Option<usize>,

    /// Producer compression: none, gzip, snappy, lz4 or zstd [default: lz4]
    #[arg(long, env = "KAFKA_COMPRESSION")]
    pub kafka_compression: Option<String>,

    /// Log format: text or json [default: text]
    #[arg(long, env = "LOG_FORMAT")]
    pub log_format: Option<String>,

    /// Extra librdkafka properties, applied last (TOML `[kafka.properties]` only).
    #[arg(skip)]
    pub kafka: KafkaSection,
}

/// `PARTITION_BY_LABELS`, default `namespace,pod`: sorted, empty names
/// dropped (so an empty value keys every series by all its labels), each a
/// legacy Prometheus label name.
fn partition_by_labels(value: Option<Vec<String>>) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = value
        .unwrap_or_else(|| vec!["namespace".into(), "pod".into()])
        .into_iter()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .collect();
    for name in &names {
        let mut chars = name.chars();
        let legal = chars
            .next()
            .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !legal {
            bail!("PARTITION_BY_LABELS: {name:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)");
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// Per-series limits; the keys file may override them per tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesLimits {
    pub max_labels_per_series: usize,
    pub max_label_name_length: usize,
    pub max_label_value_length: usize,
}

impl Default for SeriesLimits {
    fn default() -> Self {
        SeriesLimits {
            max_labels_per_series: 40,
            max_label_name_length: 1024,
            max_label_value_length: 4096,
        }
    }
}

/// The certificate and key files of the HTTPS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// The resolved settings, every default applied.
#[derive(Debug, Clone)]
pub struct Settings {
    pub kafka_brokers: String,
    pub listen: SocketAddr,
    pub api_keys_file: PathBuf,
    /// HTTPS when set, plain HTTP when not.
    pub tls: Option<TlsFiles>,
    pub topic_samples: String,
    pub topic_topology_raw: String,
    pub create_topics: bool,
    pub topic_partitions: i32,
    /// Sorted, without empty names or repeats; shared by every request.
    pub partition_by_labels: std::sync::Arc<[String]>,
    pub topic_replication_factor: i32,
    pub max_body_bytes: usize,
    pub max_decoded_bytes: usize,
    pub max_inflight_bytes: usize,
    pub series_limits: SeriesLimits,
    pub request_timeout: Duration,
    pub shutdown_delay: Duration,
    pub shutdown_timeout: Duration,
    pub workers: usize,
    pub kafka_compression: String,
    pub log_format: LogFormat,
    pub kafka_properties: BTreeMap<String, String>,
}

impl Settings {
    /// Parses the command line and environment, reads `--config` if given, and validates.
    pub fn load() -> anyhow::Result<Settings> {
        let cli = Options::parse();
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => Options::default(),
        };
        Settings::resolve(cli, file)
    }

    /// Layers `cli` (command line and environment) over `file` over the defaults.
    pub fn resolve(cli: Options, file: Options) -> anyhow::Result<Settings> {
        let defaults = SeriesLimits::default();
        let Some(api_keys_file) = cli.api_keys_file.or(file.api_keys_file) else {
            bail!("API_KEYS_FILE is required: the TOML file of API keys and tenants");
        };
        // Half a pair is a mistake, never a silent fallback to plain HTTP.
        let tls = match (
            cli.tls_cert_file.or(file.tls_cert_file),
            cli.tls_key_file.or(file.tls_key_file),
        ) {
            (Some(cert_file), Some(key_file)) => Some(TlsFiles {
                cert_file,
                key_file,
            }),
            (None, None) => None,
            (Some(_), None) => bail!("TLS_KEY_FILE is required when TLS_CERT_FILE is set"),
            (None, Some(_)) => bail!("TLS_CERT_FILE is required when TLS_KEY_FILE is set"),
        };
        let log_format = LogFormat::parse(cli.log_format.or(file.log_format).as_deref())?;
        let kafka_compression = cli
            .kafka_compression
            .or(file.kafka_compression)
            .unwrap_or_else(|| "lz4".into());
        if !["none", "gzip", "snappy", "lz4", "zstd"].contains(&kafka_compression.as_str()) {
            bail!(
                "KAFKA_COMPRESSION must be none, gzip, snappy, lz4 or zstd, not {kafka_compression:?}"
            );
        }
        let settings = Settings {
            kafka_brokers: cli
                .kafka_brokers
                .or(file.kafka_brokers)
                .unwrap_or_else(|| "127.0.0.1:9092".into()),
            listen: cli
                .ingest_listen
                .or(file.ingest_listen)
                .unwrap_or_else(|| "0.0.0.0:8080".parse().expect("valid default")),
            api_keys_file,
            tls,
            topic_samples: cli
                .topic_samples
                .or(file.topic_samples)
                .unwrap_or_else(|| "metrics.samples".into()),
            topic_topology_raw: cli
                .topic_topology_raw
                .or(file.topic_topology_raw)
                .unwrap_or_else(|| "topology.raw".into()),
            create_topics: cli.create_topics.or(file.create_topics).unwrap_or(true),
            topic_partitions: cli.topic_partitions.or(file.topic_partitions).unwrap_or(8),
            partition_by_labels: partition_by_labels(
                cli.partition_by_labels.or(file.partition_by_labels),
            )?
            .into(),
            topic_replication_factor: cli
                .topic_replication_factor
                .or(file.topic_replication_factor)
                .unwrap_or(-1),
            max_body_bytes: cli
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(16 << 20),
            max_decoded_bytes: cli
                .max_decoded_bytes
                .or(file.max_decoded_bytes)
                .unwrap_or(32 << 20),
            max_inflight_bytes: cli
                .max_inflight_bytes
                .or(file.max_inflight_bytes)
                .unwrap_or(256 << 20),
            series_limits: SeriesLimits {
                max_labels_per_series: cli
                    .max_labels_per_series
                    .or(file.max_labels_per_series)
                    .unwrap_or(defaults.max_labels_per_series),
                max_label_name_length: cli
                    .max_label_name_length
                    .or(file.max_label_name_length)
                    .unwrap_or(defaults.max_label_name_length),
                max_label_value_length: cli
                    .max_label_value_length
                    .or(file.max_label_value_length)
                    .unwrap_or(defaults.max_label_value_length),
            },
            request_timeout: Duration::from_millis(
                cli.request_timeout_ms
                    .or(file.request_timeout_ms)
                    .unwrap_or(10_000),
            ),
            shutdown_delay: Duration::from_millis(
                cli.shutdown_delay_ms
                    .or(file.shutdown_delay_ms)
                    .unwrap_or(0),
            ),
            shutdown_timeout: Duration::from_millis(
                cli.shutdown_timeout_ms
                    .or(file.shutdown_timeout_ms)
                    .unwrap_or(30_000),
            ),
            workers: cli.ingest_workers.or(file.ingest_workers).unwrap_or(0),
            kafka_compression,
            log_format,
            kafka_properties: file.kafka.properties,
        };
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.topic_partitions < 1 {
            bail!("TOPIC_PARTITIONS must be at least 1");
        }
        if self.max_body_bytes == 0 || self.max_decoded_bytes == 0 {
            bail!("MAX_BODY_BYTES and MAX_DECODED_BYTES must be positive");
        }
        if self.max_inflight_bytes < self.max_decoded_bytes {
            bail!(
                "MAX_INFLIGHT_BYTES must be at least MAX_DECODED_BYTES, or no large request could ever pass"
            );
        }
        if self.request_timeout < Duration::from_millis(1000) {
            bail!("REQUEST_TIMEOUT_MS must be at least 1000");
        }
        if self.kafka_brokers.trim().is_empty() {
            bail!("KAFKA_BROKERS must not be empty");
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> anyhow::Result<Options> {
    read_toml(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_file_and_defaults_fill_the_rest() {
        let file: Options = toml::from_str(
            r#"
            api_keys_file = "/etc/keys.toml"
            kafka_brokers = "file:9092"
            topic_samples = "from-file"
            [kafka.properties]
            "security.protocol" = "SASL_SSL"
            "#,
        )
        .unwrap();
        let cli = Options {
            kafka_brokers: Some("env:9092".into()),
            ..Options::default()
        };
        let settings = Settings::resolve(cli, file).unwrap();
        assert_eq!(settings.kafka_brokers, "env:9092");
        assert_eq!(settings.topic_samples, "from-file");
        assert_eq!(settings.topic_topology_raw, "topology.raw");
        assert_eq!(settings.kafka_properties["security.protocol"], "SASL_SSL");
        assert_eq!(settings.listen.port(), 8080);
        assert_eq!(&*settings.partition_by_labels, &["namespace", "pod"]);
    }

    #[test]
    fn partition_labels_are_sorted_may_be_none_and_must_be_label_names() {
        let with = |value: &str| {
            let cli = Options::try_parse_from(["ingest", "--partition-by-labels", value]).unwrap();
            let file = Options {
                api_keys_file: Some("k.toml".into()),
                ..Options::default()
            };
            Settings::resolve(cli, file).map(|settings| settings.partition_by_labels.to_vec())
        };
        assert_eq!(with("pod,namespace").unwrap(), ["namespace", "pod"]);
        assert!(with("").unwrap().is_empty());
        let error = with("pod,k8s.pod").unwrap_err().to_string();
        assert!(
            error.contains("PARTITION_BY_LABELS") && error.contains("k8s.pod"),
            "{error}"
        );
    }

    #[test]
    fn unknown_file_keys_and_bad_values_are_refused_by_name() {
        let unknown = toml::from_str::<Options>("kafka_brokerz = \"x\"").unwrap_err();
        assert!(unknown.to_string().contains("kafka_brokerz"), "{unknown}");

        let missing = Settings::resolve(Options::default(), Options::default()).unwrap_err();
        assert!(missing.to_string().contains("API_KEYS_FILE"));

        let bad_format = Options {
            api_keys_file: Some("k.toml".into()),
            log_format: Some("xml".into()),
            ..Options::default()
        };
        let error = Settings::resolve(bad_format, Options::default()).unwrap_err();
        assert!(error.to_string().contains("LOG_FORMAT"));
    }

    #[test]
    fn tls_needs_both_files_and_layers_like_the_rest() {
        let keys = || Options {
            api_keys_file: Some("k.toml".into()),
            ..Options::default()
        };
        let plain = Settings::resolve(keys(), Options::default()).unwrap();
        assert_eq!(plain.tls, None);

        let cert_only = Options {
            tls_cert_file: Some("cert.pem".into()),
            ..keys()
        };
        let error = Settings::resolve(cert_only, Options::default()).unwrap_err();
        assert!(
            error.to_string().contains("TLS_KEY_FILE is required"),
            "{error}"
        );

        let key_only = Options {
            tls_key_file: Some("key.pem".into()),
            ..keys()
        };
        let error = Settings::resolve(key_only, Options::default()).unwrap_err();
        assert!(
            error.to_string().contains("TLS_CERT_FILE is required"),
            "{error}"
        );

        // The environment's certificate with the file's key makes a pair.
        let file: Options = toml::from_str(
            r#"
            tls_cert_file = "/file/cert.pem"
            tls_key_file = "/file/key.pem"
            "#,
        )
        .unwrap();
        let cli = Options {
            tls_cert_file: Some("/env/cert.pem".into()),
            ..keys()
        };
        let settings = Settings::resolve(cli, file).unwrap();
        assert_eq!(
            settings.tls,
            Some(TlsFiles {
                cert_file: "/env/cert.pem".into(),
                key_file: "/file/key.pem".into(),
            })
        );
    }
}
