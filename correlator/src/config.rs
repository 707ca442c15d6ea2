//! Settings of the correlator: command line, environment and an optional TOML
//! file, in that order of precedence (a variable overrides the file).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;
use clap::{Parser, Subcommand};
use serde::Deserialize;
use shared::config::{KafkaSection, read_toml};
use shared::logging::LogFormat;

use crate::forward::config::{ForwardOptions, ForwardSettings};
use crate::index::AsOf;
use crate::join::{JoinSettings, OutputLabels};
use crate::output::OutputEncoding;
use crate::view::{ViewOptions, ViewSettings};

#[derive(Debug, Parser)]
#[command(
    name = "correlator",
    version,
    about = "Binds Prometheus samples in Kafka to topology components"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub options: Options,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Prints bound (or unbound) series as they arrive, one line each, readable in a terminal; or, with --web, serves the binding view.
    Tail {
        /// Read metrics.unbound instead of metrics.bound.
        #[arg(long)]
        unbound: bool,
        /// Start from the beginning of the topic instead of its end.
        #[arg(long)]
        from_beginning: bool,
        #[command(flatten)]
        view: ViewOptions,
    },
    /// Sends bound (and optionally unbound) series to a remote-write endpoint: Prometheus, Mimir, VictoriaMetrics, ...
    Forward(Box<ForwardOptions>),
}

/// What to run, with its settings resolved.
#[derive(Debug)]
pub enum Run {
    Correlator,
    Tail {
        unbound: bool,
        from_beginning: bool,
        /// The binding view's settings when `--web` is given.
        web: Option<ViewSettings>,
    },
    Forward(Box<ForwardSettings>),
}

/// Every setting is optional here so that the file, the environment and the
/// defaults can be layered; [`Settings::resolve`] applies the defaults.
#[derive(Debug, Default, Clone, clap::Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    /// TOML file with any of the settings below (keys are the variable names in lowercase) and a `[kafka.properties]` table.
    #[arg(long, env = "CORRELATOR_CONFIG", global = true)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Kafka bootstrap servers [default: 127.0.0.1:9092]
    #[arg(long, env = "KAFKA_BROKERS", global = true)]
    pub kafka_brokers: Option<String>,
    /// Address of the metrics and health listener [default: 0.0.0.0:8081]
    #[arg(long, env = "CORRELATOR_LISTEN")]
    pub correlator_listen: Option<SocketAddr>,
    /// TOML file of binding rules that replaces the built-in Kubernetes rules
    #[arg(long, env = "BINDINGS_FILE")]
    pub bindings_file: Option<PathBuf>,
    /// Consumer group of the join; the materializer uses `<group>-topology` [default: correlator]
    #[arg(long, env = "KAFKA_GROUP_ID")]
    pub kafka_group_id: Option<String>,
    /// Encoding of bound and unbound records: protobuf or json [default: protobuf]
    #[arg(long, env = "OUTPUT_ENCODING", global = true)]
    pub output_encoding: Option<String>,
    /// Label of bound series holding their component's externalId [default: component_external_id]
    #[arg(long, env = "COMPONENT_LABEL_EXTERNAL_ID", global = true)]
    pub component_label_external_id: Option<String>,
    /// Label of bound series holding their component's type; empty: none [default: component_type]
    #[arg(long, env = "COMPONENT_LABEL_TYPE", global = true)]
    pub component_label_type: Option<String>,
    /// Label of bound series holding their component's name; empty: none [default: component_name]
    #[arg(long, env = "COMPONENT_LABEL_NAME", global = true)]
    pub component_label_name: Option<String>,
    /// Label of unbound series holding the reason [default: unbound_reason]
    #[arg(long, env = "UNBOUND_LABEL_REASON", global = true)]
    pub unbound_label_reason: Option<String>,
    /// Label of unbound series holding the detail of the reason [default: unbound_detail]
    #[arg(long, env = "UNBOUND_LABEL_DETAIL", global = true)]
    pub unbound_label_detail: Option<String>,
    /// Most remote-write 1.0 metric families whose metadata the join remembers; past it, it starts over [default: 100000]
    #[arg(long, env = "METADATA_FAMILIES_MAX")]
    pub metadata_families_max: Option<usize>,
    /// [default: metrics.samples]
    #[arg(long, env = "TOPIC_SAMPLES")]
    pub topic_samples: Option<String>,
    /// [default: topology.raw]
    #[arg(long, env = "TOPIC_TOPOLOGY_RAW")]
    pub topic_topology_raw: Option<String>,
    /// [default: topology.components]
    #[arg(long, env = "TOPIC_TOPOLOGY")]
    pub topic_topology: Option<String>,
    /// [default: metrics.bound]
    #[arg(long, env = "TOPIC_BOUND", global = true)]
    pub topic_bound: Option<String>,
    /// [default: metrics.unbound]
    #[arg(long, env = "TOPIC_UNBOUND", global = true)]
    pub topic_unbound: Option<String>,
    /// Create missing topics at start [default: true]
    #[arg(long, env = "CREATE_TOPICS")]
    pub create_topics: Option<bool>,
    /// Partitions of topics this service creates [default: 8]
    #[arg(long, env = "TOPIC_PARTITIONS")]
    pub topic_partitions: Option<i32>,
    /// Replication factor of topics this service creates; -1 takes the broker's default [default: -1]
    #[arg(long, env = "TOPIC_REPLICATION_FACTOR")]
    pub topic_replication_factor: Option<i32>,
    /// A sample may be this much older than its component's first report, in ms [default: 60000]
    #[arg(long, env = "JOIN_SKEW_MS")]
    pub join_skew_ms: Option<i64>,
    /// A deleted component still binds samples this long after its deletion, in ms [default: 120000]
    #[arg(long, env = "DELETE_GRACE_MS")]
    pub delete_grace_ms: Option<i64>,
    /// Samples older than the newest seen minus this go to metrics.unbound as late, in ms [default: 1800000]
    #[arg(long, env = "HISTORY_MS")]
    pub history_ms: Option<i64>,
    /// How long a sample waits for its component before it is unbound as no_component, in ms [default: 120000]
    #[arg(long, env = "PENDING_GRACE_MS")]
    pub pending_grace_ms: Option<i64>,
    /// Most samples waiting for their component at once [default: 1000000]
    #[arg(long, env = "PENDING_MAX_SAMPLES")]
    pub pending_max_samples: Option<usize>,
    /// Most series whose rendered identifiers are cached [default: 2000000]
    #[arg(long, env = "SERIES_CACHE_MAX")]
    pub series_cache_max: Option<usize>,
    /// A snapshot not completed within this is abandoned (deleting nothing), in ms [default: 600000]
    #[arg(long, env = "SNAPSHOT_TIMEOUT_MS")]
    pub snapshot_timeout_ms: Option<u64>,
    /// Exactly-once output with Kafka transactions [default: false]
    #[arg(long, env = "EXACTLY_ONCE")]
    pub exactly_once: Option<bool>,
    /// Prefix of the transactional.id in exactly-once mode; each instance adds its own suffix [default: correlator]
    #[arg(long, env = "TRANSACTIONAL_ID_PREFIX")]
    pub transactional_id_prefix: Option<String>,
    /// How long loading topology.components at start may take, in ms [default: 300000]
    #[arg(long, env = "TOPOLOGY_LOAD_TIMEOUT_MS")]
    pub topology_load_timeout_ms: Option<u64>,
    /// On SIGTERM, how long finishing in-flight work may take, in ms [default: 30000]
    #[arg(long, env = "SHUTDOWN_TIMEOUT_MS")]
    pub shutdown_timeout_ms: Option<u64>,
    /// Log format: text or json [default: text]
    #[arg(long, env = "LOG_FORMAT", global = true)]
    pub log_format: Option<String>,
    /// Extra librdkafka properties, applied last (TOML `[kafka.properties]` only).
    #[arg(skip)]
    pub kafka: KafkaSection,
    /// Settings of `correlator forward` (TOML `[forward]`, keys as its options' names with `_`).
    #[arg(skip)]
    pub forward: ForwardOptions,
}

#[derive(Debug, Clone)]
pub struct Topics {
    pub samples: String,
    pub topology_raw: String,
    pub topology: String,
    pub bound: String,
    pub unbound: String,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub kafka_brokers: String,
    pub listen: SocketAddr,
    pub bindings_file: Option<PathBuf>,
    pub group_id: String,
    pub topics: Topics,
    pub create_topics: bool,
    pub topic_partitions: i32,
    pub topic_replication_factor: i32,
    pub join: JoinSettings,
    pub snapshot_timeout: Duration,
    pub exactly_once: bool,
    pub transactional_id_prefix: String,
    pub topology_load_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub log_format: LogFormat,
    pub kafka_properties: BTreeMap<String, String>,
}

impl Settings {
    pub fn resolve(cli: Options, file: Options) -> anyhow::Result<Settings> {
        let encoding = match cli
            .output_encoding
            .or(file.output_encoding)
            .as_deref()
            .unwrap_or("protobuf")
        {
            "protobuf" => OutputEncoding::Protobuf,
            "json" => OutputEncoding::Json,
            other => bail!("OUTPUT_ENCODING must be protobuf or json, not {other:?}"),
        };
        let log_format = LogFormat::parse(cli.log_format.or(file.log_format).as_deref())?;
        let join_defaults = JoinSettings::default();
        let defaults = &join_defaults.labels;
        let label = |name: &str,
                     cli: Option<String>,
                     file: Option<String>,
                     default: &str,
                     may_be_empty: bool|
         -> anyhow::Result<String> {
            let value = cli.or(file).unwrap_or_else(|| default.to_string());
            if value.is_empty() && may_be_empty {
                return Ok(value);
            }
            let mut chars = value.chars();
            let valid = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !value.starts_with("__");
            if !valid {
                bail!(
                    "{name} must be a label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __), not {value:?}"
                );
            }
            Ok(value)
        };
        let labels = OutputLabels {
            external_id: label(
                "COMPONENT_LABEL_EXTERNAL_ID",
                cli.component_label_external_id,
                file.component_label_external_id,
                &defaults.external_id,
                false,
            )?,
            component_type: label(
                "COMPONENT_LABEL_TYPE",
                cli.component_label_type,
                file.component_label_type,
                &defaults.component_type,
                true,
            )?,
            component_name: label(
                "COMPONENT_LABEL_NAME",
                cli.component_label_name,
                file.component_label_name,
                &defaults.component_name,
                true,
            )?,
            unbound_reason: label(
                "UNBOUND_LABEL_REASON",
                cli.unbound_label_reason,
                file.unbound_label_reason,
                &defaults.unbound_reason,
                false,
            )?,
            unbound_detail: label(
                "UNBOUND_LABEL_DETAIL",
                cli.unbound_label_detail,
                file.unbound_label_detail,
                &defaults.unbound_detail,
                false,
            )?,
        };
        let added = [
            &labels.external_id,
            &labels.component_type,
            &labels.component_name,
        ];
        if added
            .iter()
            .enumerate()
            .any(|(i, a)| !a.is_empty() && added[..i].contains(a))
        {
            bail!(
                "COMPONENT_LABEL_EXTERNAL_ID, COMPONENT_LABEL_TYPE and COMPONENT_LABEL_NAME must differ"
            );
        }
        if labels.unbound_reason == labels.unbound_detail {
            bail!("UNBOUND_LABEL_REASON and UNBOUND_LABEL_DETAIL must differ");
        }
        let positive = |name: &str, value: i64| -> anyhow::Result<i64> {
            if value < 0 {
                bail!("{name} must not be negative");
            }
            Ok(value)
        };
        let settings = Settings {
            kafka_brokers: cli
                .kafka_brokers
                .or(file.kafka_brokers)
                .unwrap_or_else(|| "127.0.0.1:9092".into()),
            listen: cli
                .correlator_listen
                .or(file.correlator_listen)
                .unwrap_or_else(|| "0.0.0.0:8081".parse().expect("valid default")),
            bindings_file: cli.bindings_file.or(file.bindings_file),
            group_id: cli
                .kafka_group_id
                .or(file.kafka_group_id)
                .unwrap_or_else(|| "correlator".into()),
            topics: Topics {
                samples: cli
                    .topic_samples
                    .or(file.topic_samples)
                    .unwrap_or_else(|| "metrics.samples".into()),
                topology_raw: cli
                    .topic_topology_raw
                    .or(file.topic_topology_raw)
                    .unwrap_or_else(|| "topology.raw".into()),
                topology: cli
                    .topic_topology
                    .or(file.topic_topology)
                    .unwrap_or_else(|| "topology.components".into()),
                bound: cli
                    .topic_bound
                    .or(file.topic_bound)
                    .unwrap_or_else(|| "metrics.bound".into()),
                unbound: cli
                    .topic_unbound
                    .or(file.topic_unbound)
                    .unwrap_or_else(|| "metrics.unbound".into()),
            },
            create_topics: cli.create_topics.or(file.create_topics).unwrap_or(true),
            topic_partitions: cli.topic_partitions.or(file.topic_partitions).unwrap_or(8),
            topic_replication_factor: cli
                .topic_replication_factor
                .or(file.topic_replication_factor)
                .unwrap_or(-1),
            join: JoinSettings {
                as_of: AsOf {
                    skew_ms: positive(
                        "JOIN_SKEW_MS",
                        cli.join_skew_ms
                            .or(file.join_skew_ms)
                            .unwrap_or(join_defaults.as_of.skew_ms),
                    )?,
                    delete_grace_ms: positive(
                        "DELETE_GRACE_MS",
                        cli.delete_grace_ms
                            .or(file.delete_grace_ms)
                            .unwrap_or(join_defaults.as_of.delete_grace_ms),
                    )?,
                },
                history_ms: positive(
                    "HISTORY_MS",
                    cli.history_ms
                        .or(file.history_ms)
                        .unwrap_or(join_defaults.history_ms),
                )?,
                pending_grace_ms: positive(
                    "PENDING_GRACE_MS",
                    cli.pending_grace_ms
                        .or(file.pending_grace_ms)
                        .unwrap_or(join_defaults.pending_grace_ms),
                )?,
                pending_max_samples: cli
                    .pending_max_samples
                    .or(file.pending_max_samples)
                    .unwrap_or(join_defaults.pending_max_samples),
                series_cache_max: cli
                    .series_cache_max
                    .or(file.series_cache_max)
                    .unwrap_or(join_defaults.series_cache_max),
                metadata_families_max: cli
                    .metadata_families_max
                    .or(file.metadata_families_max)
                    .unwrap_or(join_defaults.metadata_families_max),
                encoding,
                labels,
            },
            snapshot_timeout: Duration::from_millis(
                cli.snapshot_timeout_ms
                    .or(file.snapshot_timeout_ms)
                    .unwrap_or(600_000),
            ),
            exactly_once: cli.exactly_once.or(file.exactly_once).unwrap_or(false),
            transactional_id_prefix: cli
                .transactional_id_prefix
                .or(file.transactional_id_prefix)
                .unwrap_or_else(|| "correlator".into()),
            topology_load_timeout: Duration::from_millis(
                cli.topology_load_timeout_ms
                    .or(file.topology_load_timeout_ms)
                    .unwrap_or(300_000),
            ),
            shutdown_timeout: Duration::from_millis(
                cli.shutdown_timeout_ms
                    .or(file.shutdown_timeout_ms)
                    .unwrap_or(30_000),
            ),
            log_format,
            kafka_properties: file.kafka.properties,
        };
        if settings.topic_partitions < 1 {
            bail!("TOPIC_PARTITIONS must be at least 1");
        }
        if settings.history_ms_too_short() {
            bail!("HISTORY_MS must be at least PENDING_GRACE_MS");
        }
        Ok(settings)
    }

    fn history_ms_too_short(&self) -> bool {
        self.join.history_ms < self.join.pending_grace_ms
    }
}

/// Parses the command line and environment and reads `--config` if given.
pub fn load() -> anyhow::Result<(Run, Settings)> {
    let cli = Cli::parse();
    let file = match &cli.options.config {
        Some(path) => read_file(path)?,
        None => Options::default(),
    };
    let run = match cli.command {
        None => Run::Correlator,
        Some(Command::Tail {
            unbound,
            from_beginning,
            view,
        }) => Run::Tail {
            unbound,
            from_beginning,
            web: ViewSettings::resolve(view)?,
        },
        Some(Command::Forward(options)) => Run::Forward(Box::new(ForwardSettings::resolve(
            *options,
            file.forward.clone(),
        )?)),
    };
    Ok((run, Settings::resolve(cli.options, file)?))
}

fn read_file(path: &Path) -> anyhow::Result<Options> {
    read_toml(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let file: Options =
            toml::from_str("output_encoding = \"json\"\nkafka_group_id = \"g\"\n").unwrap();
        let cli = Options {
            kafka_group_id: Some("from-env".into()),
            ..Options::default()
        };
        let settings = Settings::resolve(cli, file).unwrap();
        assert_eq!(settings.group_id, "from-env");
        assert_eq!(settings.join.encoding, OutputEncoding::Json);
        assert_eq!(settings.topics.topology, "topology.components");
        assert_eq!(settings.listen.port(), 8081);
        let bad = Options {
            output_encoding: Some("xml".into()),
            ..Options::default()
        };
        assert!(
            Settings::resolve(bad, Options::default())
                .unwrap_err()
                .to_string()
                .contains("OUTPUT_ENCODING")
        );
    }
}
