//! Settings of the correlator: command line, environment and an optional TOML
//! file, in that order of precedence (a variable overrides the file).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::{ArgAction, CommandFactory, FromArgMatches, Parser, Subcommand};
use serde::{Deserialize, Serialize};
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

/// Every setting, each declared once: its doc is the `--help` text, its
/// `env` the variable, its `default_value` the default (for the file's
/// missing keys too, through `shared::settings::defaults`); its name in lowercase is the file's key.
/// [`Settings::resolve`] checks and converts the layered options.
#[derive(Debug, Clone, clap::Args, Deserialize, Serialize)]
#[serde(default = "shared::settings::defaults", deny_unknown_fields)]
pub struct Options {
    /// TOML file with any of the settings below (keys are the variable names in lowercase) and a `[kafka.properties]` table
    #[arg(long, env = "CORRELATOR_CONFIG", global = true)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Kafka bootstrap servers
    #[arg(
        long,
        env = "KAFKA_BROKERS",
        global = true,
        default_value = "127.0.0.1:9092"
    )]
    pub kafka_brokers: String,
    /// Address of the metrics and health listener
    #[arg(long, env = "CORRELATOR_LISTEN", default_value = "0.0.0.0:8081")]
    pub correlator_listen: SocketAddr,
    /// TOML file of binding rules that replaces the built-in Kubernetes rules
    #[arg(long, env = "BINDINGS_FILE")]
    pub bindings_file: Option<PathBuf>,
    /// Consumer group of the join; the materializer uses `<group>-topology`
    #[arg(long, env = "KAFKA_GROUP_ID", default_value = "correlator")]
    pub kafka_group_id: String,
    /// Encoding of bound and unbound records
    #[arg(long, env = "OUTPUT_ENCODING", global = true, value_enum, default_value_t = JoinSettings::default().encoding)]
    pub output_encoding: OutputEncoding,
    /// Label of bound series holding their component's externalId
    #[arg(long, env = "COMPONENT_LABEL_EXTERNAL_ID", global = true, default_value_t = OutputLabels::default().external_id)]
    pub component_label_external_id: String,
    /// Label of bound series holding their component's type; empty: none
    #[arg(long, env = "COMPONENT_LABEL_TYPE", global = true, default_value_t = OutputLabels::default().component_type)]
    pub component_label_type: String,
    /// Label of bound series holding their component's name; empty: none
    #[arg(long, env = "COMPONENT_LABEL_NAME", global = true, default_value_t = OutputLabels::default().component_name)]
    pub component_label_name: String,
    /// Label of unbound series holding the reason
    #[arg(long, env = "UNBOUND_LABEL_REASON", global = true, default_value_t = OutputLabels::default().unbound_reason)]
    pub unbound_label_reason: String,
    /// Label of unbound series holding the detail of the reason
    #[arg(long, env = "UNBOUND_LABEL_DETAIL", global = true, default_value_t = OutputLabels::default().unbound_detail)]
    pub unbound_label_detail: String,
    /// Most remote-write 1.0 metric families whose metadata the join remembers; past it, it starts over
    #[arg(long, env = "METADATA_FAMILIES_MAX", default_value_t = JoinSettings::default().metadata_families_max)]
    pub metadata_families_max: usize,
    /// Topic the join reads remote-write records from
    #[arg(long, env = "TOPIC_SAMPLES", default_value = "metrics.samples")]
    pub topic_samples: String,
    /// Topic the materializer reads topology snapshot parts from
    #[arg(long, env = "TOPIC_TOPOLOGY_RAW", default_value = "topology.raw")]
    pub topic_topology_raw: String,
    /// Compacted topic of the current components, one record each
    #[arg(long, env = "TOPIC_TOPOLOGY", default_value = "topology.components")]
    pub topic_topology: String,
    /// Topic of the series bound to a component
    #[arg(
        long,
        env = "TOPIC_BOUND",
        global = true,
        default_value = "metrics.bound"
    )]
    pub topic_bound: String,
    /// Topic of the series bound to none, with the reason
    #[arg(
        long,
        env = "TOPIC_UNBOUND",
        global = true,
        default_value = "metrics.unbound"
    )]
    pub topic_unbound: String,
    /// Create missing topics at start
    #[arg(long, env = "CREATE_TOPICS", action = ArgAction::Set, default_value_t = true)]
    pub create_topics: bool,
    /// Partitions of topics this service creates
    #[arg(long, env = "TOPIC_PARTITIONS", default_value_t = 8)]
    pub topic_partitions: i32,
    /// Replication factor of topics this service creates; -1 takes the broker's default
    #[arg(long, env = "TOPIC_REPLICATION_FACTOR", default_value_t = -1)]
    pub topic_replication_factor: i32,
    /// A sample may be this much older than its component's first report, in ms
    #[arg(long, env = "JOIN_SKEW_MS", default_value_t = JoinSettings::default().as_of.skew_ms)]
    pub join_skew_ms: i64,
    /// A deleted component still binds samples this long after its deletion, in ms
    #[arg(long, env = "DELETE_GRACE_MS", default_value_t = JoinSettings::default().as_of.delete_grace_ms)]
    pub delete_grace_ms: i64,
    /// Samples older than the newest seen minus this go to metrics.unbound as late, in ms
    #[arg(long, env = "HISTORY_MS", default_value_t = JoinSettings::default().history_ms)]
    pub history_ms: i64,
    /// How long a sample waits for its component before it is unbound as no_component, in ms
    #[arg(long, env = "PENDING_GRACE_MS", default_value_t = JoinSettings::default().pending_grace_ms)]
    pub pending_grace_ms: i64,
    /// Most samples waiting for their component at once
    #[arg(long, env = "PENDING_MAX_SAMPLES", default_value_t = JoinSettings::default().pending_max_samples)]
    pub pending_max_samples: usize,
    /// Most series whose rendered identifiers are cached
    #[arg(long, env = "SERIES_CACHE_MAX", default_value_t = JoinSettings::default().series_cache_max)]
    pub series_cache_max: usize,
    /// A snapshot not completed within this is abandoned (deleting nothing), in ms
    #[arg(long, env = "SNAPSHOT_TIMEOUT_MS", default_value_t = 600_000)]
    pub snapshot_timeout_ms: u64,
    /// Exactly-once output with Kafka transactions
    #[arg(long, env = "EXACTLY_ONCE", action = ArgAction::Set, default_value_t = false)]
    pub exactly_once: bool,
    /// Prefix of the transactional.id in exactly-once mode; each instance adds its own suffix
    #[arg(long, env = "TRANSACTIONAL_ID_PREFIX", default_value = "correlator")]
    pub transactional_id_prefix: String,
    /// How long loading topology.components at start may take, in ms
    #[arg(long, env = "TOPOLOGY_LOAD_TIMEOUT_MS", default_value_t = 300_000)]
    pub topology_load_timeout_ms: u64,
    /// On SIGTERM, how long finishing in-flight work may take, in ms
    #[arg(long, env = "SHUTDOWN_TIMEOUT_MS", default_value_t = 30_000)]
    pub shutdown_timeout_ms: u64,
    /// Log format
    #[arg(long, env = "LOG_FORMAT", global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
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
    /// Checks the layered `options` and gives them their types.
    pub fn resolve(options: Options) -> anyhow::Result<Settings> {
        let label = |name: &str, value: String, may_be_empty: bool| -> anyhow::Result<String> {
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
                options.component_label_external_id,
                false,
            )?,
            component_type: label("COMPONENT_LABEL_TYPE", options.component_label_type, true)?,
            component_name: label("COMPONENT_LABEL_NAME", options.component_label_name, true)?,
            unbound_reason: label("UNBOUND_LABEL_REASON", options.unbound_label_reason, false)?,
            unbound_detail: label("UNBOUND_LABEL_DETAIL", options.unbound_label_detail, false)?,
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
            kafka_brokers: options.kafka_brokers,
            listen: options.correlator_listen,
            bindings_file: options.bindings_file,
            group_id: options.kafka_group_id,
            topics: Topics {
                samples: options.topic_samples,
                topology_raw: options.topic_topology_raw,
                topology: options.topic_topology,
                bound: options.topic_bound,
                unbound: options.topic_unbound,
            },
            create_topics: options.create_topics,
            topic_partitions: options.topic_partitions,
            topic_replication_factor: options.topic_replication_factor,
            join: JoinSettings {
                as_of: AsOf {
                    skew_ms: positive("JOIN_SKEW_MS", options.join_skew_ms)?,
                    delete_grace_ms: positive("DELETE_GRACE_MS", options.delete_grace_ms)?,
                },
                history_ms: positive("HISTORY_MS", options.history_ms)?,
                pending_grace_ms: positive("PENDING_GRACE_MS", options.pending_grace_ms)?,
                pending_max_samples: options.pending_max_samples,
                series_cache_max: options.series_cache_max,
                metadata_families_max: options.metadata_families_max,
                encoding: options.output_encoding,
                labels,
            },
            snapshot_timeout: Duration::from_millis(options.snapshot_timeout_ms),
            exactly_once: options.exactly_once,
            transactional_id_prefix: options.transactional_id_prefix,
            topology_load_timeout: Duration::from_millis(options.topology_load_timeout_ms),
            shutdown_timeout: Duration::from_millis(options.shutdown_timeout_ms),
            log_format: options.log_format,
            kafka_properties: options.kafka.properties,
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
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    let file = match &cli.options.config {
        Some(path) => read_toml(path)?,
        None => shared::settings::defaults::<Options>(),
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
        Some(Command::Forward(_)) => {
            let forward = matches
                .subcommand_matches("forward")
                .expect("the forward command");
            let options = shared::settings::layer(forward, file.forward.clone())?;
            Run::Forward(Box::new(ForwardSettings::resolve(options)?))
        }
    };
    let options = shared::settings::layer(&matches, file)?;
    Ok((run, Settings::resolve(options)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `args` (without the program's name) over `file`, as [`load`] layers them.
    fn layered(args: &[&str], file: &str) -> anyhow::Result<Settings> {
        Settings::resolve(shared::settings::layer_args(Cli::command(), args, file)?)
    }

    #[test]
    fn defaults_and_overrides() {
        let file = "output_encoding = \"json\"\nkafka_group_id = \"g\"\ntopic_bound = \"b\"\n";
        let settings = layered(&["--kafka-group-id", "from-cli"], file).unwrap();
        assert_eq!(settings.group_id, "from-cli");
        assert_eq!(settings.join.encoding, OutputEncoding::Json);
        assert_eq!(settings.topics.topology, "topology.components");
        assert_eq!(settings.listen.port(), 8081);
        // A global option after the subcommand is the correlator's too.
        let tail = layered(&["tail", "--topic-bound", "from-tail"], file).unwrap();
        assert_eq!(tail.topics.bound, "from-tail");
        let defaults = Settings::resolve(shared::settings::defaults::<Options>()).unwrap();
        assert_eq!(defaults.join.history_ms, JoinSettings::default().history_ms);
        assert_eq!(defaults.join.labels, OutputLabels::default());
        assert_eq!(defaults.join.encoding, OutputEncoding::Protobuf);
        assert_eq!(defaults.log_format, LogFormat::Text);
        let error_of = |args: &[&str], file: &str| layered(args, file).unwrap_err().to_string();
        let bad = error_of(&["--output-encoding", "xml"], "");
        assert!(
            bad.contains("OUTPUT_ENCODING") && bad.contains("protobuf, json"),
            "{bad}"
        );
        let bad = error_of(&[], "output_encoding = \"xml\"");
        assert!(
            bad.contains("output_encoding") && bad.contains("json"),
            "{bad}"
        );
    }
}
