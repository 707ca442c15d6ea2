//! Settings of the ingest service: command line, environment and an optional
//! TOML file, in that order of precedence (a variable overrides the file).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::{ArgAction, CommandFactory, Parser};
use serde::{Deserialize, Serialize};
use shared::config::{KafkaSection, read_toml};
use shared::logging::LogFormat;

/// Every setting, each declared once: its doc is the `--help` text, its
/// `env` the variable, its `default_value` the default (for the file's
/// missing keys too, see [`Default`]); its name in lowercase is the file's key.
/// [`Settings::resolve`] checks and converts the layered options.
#[derive(Debug, Clone, Parser, Deserialize, Serialize)]
#[command(
    name = "ingest",
    version,
    about = "Prometheus remote_write and topology intake into Kafka"
)]
#[serde(default = "shared::settings::defaults", deny_unknown_fields)]
pub struct Options {
    /// TOML file with any of the settings below (keys are the variable names in lowercase) and a `[kafka.properties]` table
    #[arg(long, env = "INGEST_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Kafka bootstrap servers, comma separated
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub kafka_brokers: String,

    /// Address the HTTP listener binds
    #[arg(long, env = "INGEST_LISTEN", default_value = "0.0.0.0:8080")]
    pub ingest_listen: SocketAddr,

    /// The API keys file (TOML, `[[keys]]` with tenant, key or sha256, optional quotas and limits); re-read when it changes
    #[arg(long, env = "API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,

    /// PEM certificate chain (end-entity first); with TLS_KEY_FILE, INGEST_LISTEN serves HTTPS only. Re-read when it changes
    #[arg(long, env = "TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key of TLS_CERT_FILE's certificate (PKCS#8, PKCS#1 or SEC1); re-read when it changes
    #[arg(long, env = "TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,

    /// Topic for remote-write records
    #[arg(long, env = "TOPIC_SAMPLES", default_value = "metrics.samples")]
    pub topic_samples: String,

    /// Topic for topology snapshot parts
    #[arg(long, env = "TOPIC_TOPOLOGY_RAW", default_value = "topology.raw")]
    pub topic_topology_raw: String,

    /// Create missing topics at start
    #[arg(long, env = "CREATE_TOPICS", action = ArgAction::Set, default_value_t = true)]
    pub create_topics: bool,

    /// Partitions of topics this service creates
    #[arg(long, env = "TOPIC_PARTITIONS", default_value_t = 8)]
    pub topic_partitions: i32,

    /// Label names, comma separated: a series carrying all of them goes to the partition of their values alone, so a pod's series share one; empty spreads every series by all its labels
    #[arg(
        long,
        env = "PARTITION_BY_LABELS",
        value_delimiter = ',',
        default_value = "namespace,pod"
    )]
    pub partition_by_labels: Vec<String>,

    /// Replication factor of topics this service creates; -1 takes the broker's default
    #[arg(long, env = "TOPIC_REPLICATION_FACTOR", default_value_t = -1)]
    pub topic_replication_factor: i32,

    /// Largest request body accepted, in bytes, before decompression
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 16 << 20)]
    pub max_body_bytes: usize,

    /// Largest decompressed remote-write body, in bytes; checked against the snappy header before allocating
    #[arg(long, env = "MAX_DECODED_BYTES", default_value_t = 32 << 20)]
    pub max_decoded_bytes: usize,

    /// Most request bytes (decompressed) held in memory at once across all requests; past it requests get 503
    #[arg(long, env = "MAX_INFLIGHT_BYTES", default_value_t = 256 << 20)]
    pub max_inflight_bytes: usize,

    /// Default most labels per series (a tenant's keys entry may override it)
    #[arg(long, env = "MAX_LABELS_PER_SERIES", default_value_t = SeriesLimits::default().max_labels_per_series)]
    pub max_labels_per_series: usize,

    /// Default longest label name in bytes
    #[arg(long, env = "MAX_LABEL_NAME_LENGTH", default_value_t = SeriesLimits::default().max_label_name_length)]
    pub max_label_name_length: usize,

    /// Default longest label value in bytes
    #[arg(long, env = "MAX_LABEL_VALUE_LENGTH", default_value_t = SeriesLimits::default().max_label_value_length)]
    pub max_label_value_length: usize,

    /// Time a request may take end to end, Kafka acks included, in milliseconds
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    pub request_timeout_ms: u64,

    /// On SIGTERM, how long /readyz answers 503 before the listener closes, in milliseconds
    #[arg(long, env = "SHUTDOWN_DELAY_MS", default_value_t = 0)]
    pub shutdown_delay_ms: u64,

    /// On SIGTERM, how long in-flight requests and the producer flush may take, in milliseconds
    #[arg(long, env = "SHUTDOWN_TIMEOUT_MS", default_value_t = 30_000)]
    pub shutdown_timeout_ms: u64,

    /// HTTP worker threads; 0 means one per core
    #[arg(long, env = "INGEST_WORKERS", default_value_t = 0)]
    pub ingest_workers: usize,

    /// Producer compression
    #[arg(long, env = "KAFKA_COMPRESSION", value_enum, default_value_t = Compression::Lz4)]
    pub kafka_compression: Compression,

    /// Log format
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Extra librdkafka properties, applied last (TOML `[kafka.properties]` only).
    #[arg(skip)]
    pub kafka: KafkaSection,
}

/// `KAFKA_COMPRESSION`: the producer's `compression.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// librdkafka's name of it.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// `PARTITION_BY_LABELS`: sorted, empty names
/// dropped (so an empty value keys every series by all its labels), each a
/// legacy Prometheus label name.
fn partition_by_labels(value: Vec<String>) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = value
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
    pub kafka_compression: Compression,
    pub log_format: LogFormat,
    pub kafka_properties: BTreeMap<String, String>,
}

impl Settings {
    /// Parses the command line and environment, reads `--config` if given,
    /// layers them, and validates.
    pub fn load() -> anyhow::Result<Settings> {
        let matches = Options::command().get_matches();
        let file = match matches.get_one::<PathBuf>("config") {
            Some(path) => read_toml(path)?,
            None => shared::settings::defaults::<Options>(),
        };
        Settings::resolve(shared::settings::layer(&matches, file)?)
    }

    /// Checks the layered `options` and gives them their types.
    pub fn resolve(options: Options) -> anyhow::Result<Settings> {
        let Some(api_keys_file) = options.api_keys_file else {
            bail!("API_KEYS_FILE is required: the TOML file of API keys and tenants");
        };
        // Half a pair is a mistake, never a silent fallback to plain HTTP.
        let tls = match (options.tls_cert_file, options.tls_key_file) {
            (Some(cert_file), Some(key_file)) => Some(TlsFiles {
                cert_file,
                key_file,
            }),
            (None, None) => None,
            (Some(_), None) => bail!("TLS_KEY_FILE is required when TLS_CERT_FILE is set"),
            (None, Some(_)) => bail!("TLS_CERT_FILE is required when TLS_KEY_FILE is set"),
        };
        let settings = Settings {
            kafka_brokers: options.kafka_brokers,
            listen: options.ingest_listen,
            api_keys_file,
            tls,
            topic_samples: options.topic_samples,
            topic_topology_raw: options.topic_topology_raw,
            create_topics: options.create_topics,
            topic_partitions: options.topic_partitions,
            partition_by_labels: partition_by_labels(options.partition_by_labels)?.into(),
            topic_replication_factor: options.topic_replication_factor,
            max_body_bytes: options.max_body_bytes,
            max_decoded_bytes: options.max_decoded_bytes,
            max_inflight_bytes: options.max_inflight_bytes,
            series_limits: SeriesLimits {
                max_labels_per_series: options.max_labels_per_series,
                max_label_name_length: options.max_label_name_length,
                max_label_value_length: options.max_label_value_length,
            },
            request_timeout: Duration::from_millis(options.request_timeout_ms),
            shutdown_delay: Duration::from_millis(options.shutdown_delay_ms),
            shutdown_timeout: Duration::from_millis(options.shutdown_timeout_ms),
            workers: options.ingest_workers,
            kafka_compression: options.kafka_compression,
            log_format: options.log_format,
            kafka_properties: options.kafka.properties,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `args` (without the program's name) over `file`, as [`Settings::load`] layers them.
    fn layered(args: &[&str], file: &str) -> anyhow::Result<Settings> {
        Settings::resolve(shared::settings::layer_args(
            Options::command(),
            args,
            file,
        )?)
    }

    #[test]
    fn the_command_line_overrides_the_file_and_defaults_fill_the_rest() {
        let file = r#"
            api_keys_file = "/etc/keys.toml"
            kafka_brokers = "file:9092"
            topic_samples = "from-file"
            topic_partitions = 3
            [kafka.properties]
            "security.protocol" = "SASL_SSL"
            "#;
        let settings = layered(
            &["--kafka-brokers", "cli:9092", "--topic-partitions", "8"],
            file,
        )
        .unwrap();
        assert_eq!(settings.kafka_brokers, "cli:9092");
        assert_eq!(
            settings.topic_partitions, 8,
            "a value given equal to the default still overrides the file"
        );
        assert_eq!(settings.topic_samples, "from-file");
        assert_eq!(settings.api_keys_file, PathBuf::from("/etc/keys.toml"));
        assert_eq!(settings.kafka_properties["security.protocol"], "SASL_SSL");
        let defaults = Settings::resolve(Options {
            api_keys_file: Some("k.toml".into()),
            ..shared::settings::defaults::<Options>()
        })
        .unwrap();
        assert_eq!(defaults.topic_topology_raw, "topology.raw");
        assert_eq!(defaults.listen.port(), 8080);
        assert_eq!(&*defaults.partition_by_labels, &["namespace", "pod"]);
        assert_eq!(defaults.kafka_compression, Compression::Lz4);
        assert_eq!(defaults.max_body_bytes, 16 << 20);
        assert_eq!(defaults.series_limits, SeriesLimits::default());
        assert_eq!(defaults.log_format, LogFormat::Text);
    }

    #[test]
    fn partition_labels_are_sorted_may_be_none_and_must_be_label_names() {
        let with = |value: &str| {
            layered(
                &["--partition-by-labels", value],
                "api_keys_file = \"k.toml\"",
            )
            .map(|settings| settings.partition_by_labels.to_vec())
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

        let missing = Settings::resolve(shared::settings::defaults::<Options>()).unwrap_err();
        assert!(missing.to_string().contains("API_KEYS_FILE"));

        let bad_format = layered(&["--log-format", "xml"], "")
            .unwrap_err()
            .to_string();
        assert!(
            bad_format.contains("LOG_FORMAT") && bad_format.contains("text, json"),
            "{bad_format}"
        );
        let bad_compression = toml::from_str::<Options>("kafka_compression = \"brotli\"")
            .unwrap_err()
            .to_string();
        assert!(
            bad_compression.contains("kafka_compression") && bad_compression.contains("zstd"),
            "{bad_compression}"
        );
    }

    #[test]
    fn tls_needs_both_files_and_layers_like_the_rest() {
        let keys = "api_keys_file = \"k.toml\"\n";
        assert_eq!(layered(&[], keys).unwrap().tls, None);

        let error = layered(&["--tls-cert-file", "cert.pem"], keys).unwrap_err();
        assert!(
            error.to_string().contains("TLS_KEY_FILE is required"),
            "{error}"
        );
        let error = layered(&["--tls-key-file", "key.pem"], keys).unwrap_err();
        assert!(
            error.to_string().contains("TLS_CERT_FILE is required"),
            "{error}"
        );

        // The command line's certificate with the file's key makes a pair.
        let file =
            format!("{keys}tls_cert_file = \"/file/cert.pem\"\ntls_key_file = \"/file/key.pem\"\n");
        let settings = layered(&["--tls-cert-file", "/env/cert.pem"], &file).unwrap();
        assert_eq!(
            settings.tls,
            Some(TlsFiles {
                cert_file: "/env/cert.pem".into(),
                key_file: "/file/key.pem".into(),
            })
        );
    }
}
