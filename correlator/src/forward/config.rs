//! Settings of `correlator forward`: command line, environment, then the
//! TOML file's `[forward]` table, then the defaults, as the correlator's own.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::ArgAction;
use serde::{Deserialize, Serialize};

/// Remote-write protocol of the forwarded requests (`FORWARD_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize, Serialize)]
pub enum Protocol {
    // `prometheus.WriteRequest`, for receivers that speak only 1.0. (Plain
    // comments: a variant's doc would make `--help` print the long form.)
    #[value(name = "1.0", alias = "1")]
    #[serde(rename = "1.0", alias = "1")]
    V1,
    // `io.prometheus.write.v2.Request`, as the records hold it.
    #[value(name = "2.0", alias = "2")]
    #[serde(rename = "2.0", alias = "2")]
    V2,
}

pub const DEFAULT_GROUP: &str = "forward";
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8082";
pub const DEFAULT_SHARDS: usize = 4;
pub const DEFAULT_MAX_POINTS_PER_REQUEST: usize = 2000;
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 4 << 20;
pub const DEFAULT_BATCH_DEADLINE_MS: u64 = 1000;
pub const DEFAULT_MIN_BACKOFF_MS: u64 = 30;
pub const DEFAULT_MAX_BACKOFF_MS: u64 = 5000;
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;

/// Every setting, declared as the correlator's are (see [`crate::config::Options`]);
/// [`ForwardSettings::resolve`] checks and converts the layered options.
#[derive(Debug, Clone, clap::Args, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardOptions {
    /// Remote-write endpoint, e.g. http://prometheus:9090/api/v1/write (required)
    #[arg(long, env = "FORWARD_URL")]
    pub url: Option<String>,
    /// Protocol of the requests: 2.0 (the records as they are) or 1.0
    #[arg(long, env = "FORWARD_PROTOCOL", value_enum, default_value_t = Protocol::V2)]
    pub protocol: Protocol,
    /// Consumer group of the forwarder
    #[arg(long, env = "FORWARD_GROUP", default_value = DEFAULT_GROUP)]
    pub group: String,
    /// Forward metrics.unbound too
    #[arg(long, env = "FORWARD_UNBOUND", action = ArgAction::Set, default_value_t = false)]
    pub unbound: bool,
    /// Address of the metrics and health listener
    #[arg(long, env = "FORWARD_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Parallel senders per topic; a series always goes through the same one
    #[arg(long, env = "FORWARD_SHARDS", default_value_t = DEFAULT_SHARDS)]
    pub shards: usize,
    /// Most samples, histograms and exemplars in one request
    #[arg(long, env = "FORWARD_MAX_POINTS_PER_REQUEST", default_value_t = DEFAULT_MAX_POINTS_PER_REQUEST)]
    pub max_points_per_request: usize,
    /// Most bytes of one request before compression (estimated)
    #[arg(long, env = "FORWARD_MAX_REQUEST_BYTES", default_value_t = DEFAULT_MAX_REQUEST_BYTES)]
    pub max_request_bytes: usize,
    /// How long a request that is not full waits for more series, in ms
    #[arg(long, env = "FORWARD_BATCH_DEADLINE_MS", default_value_t = DEFAULT_BATCH_DEADLINE_MS)]
    pub batch_deadline_ms: u64,
    /// First wait before a retry, in ms; it doubles on each retry
    #[arg(long, env = "FORWARD_MIN_BACKOFF_MS", default_value_t = DEFAULT_MIN_BACKOFF_MS)]
    pub min_backoff_ms: u64,
    /// Longest wait between retries, in ms (a Retry-After header may ask for longer)
    #[arg(long, env = "FORWARD_MAX_BACKOFF_MS", default_value_t = DEFAULT_MAX_BACKOFF_MS)]
    pub max_backoff_ms: u64,
    /// Timeout of one request, in ms
    #[arg(long, env = "FORWARD_TIMEOUT_MS", default_value_t = DEFAULT_TIMEOUT_MS)]
    pub timeout_ms: u64,
    /// Headers sent with every request, "Name: value", comma-separated (e.g. X-Scope-OrgID: acme)
    #[arg(
        long = "header",
        env = "FORWARD_HEADERS",
        value_delimiter = ',',
        value_name = "NAME: VALUE",
        hide_env_values = true
    )]
    pub headers: Option<Vec<String>>,
    /// Basic auth user name
    #[arg(long, env = "FORWARD_BASIC_AUTH_USERNAME")]
    pub basic_auth_username: Option<String>,
    /// Basic auth password
    #[arg(long, env = "FORWARD_BASIC_AUTH_PASSWORD", hide_env_values = true)]
    pub basic_auth_password: Option<String>,
    /// Bearer token sent as `Authorization: Bearer <token>`
    #[arg(long, env = "FORWARD_BEARER_TOKEN", hide_env_values = true)]
    pub bearer_token: Option<String>,
    /// File holding the bearer token (read at start)
    #[arg(long, env = "FORWARD_BEARER_TOKEN_FILE")]
    pub bearer_token_file: Option<PathBuf>,
    /// PEM file of the CA certificates that sign the endpoint's (besides the system's)
    #[arg(long, env = "FORWARD_TLS_CA_FILE")]
    pub tls_ca_file: Option<PathBuf>,
}

impl Default for ForwardOptions {
    /// Every default: what the file's `[forward]` table does not set.
    fn default() -> ForwardOptions {
        shared::settings::defaults()
    }
}

/// A value kept out of logs and `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("<secret>")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    Basic { username: String, password: Secret },
    Bearer(Secret),
}

/// How a request is split and retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    pub max_points: usize,
    pub max_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct ForwardSettings {
    pub url: String,
    pub protocol: Protocol,
    pub group: String,
    pub unbound: bool,
    pub listen: SocketAddr,
    pub shards: usize,
    pub limits: BatchLimits,
    pub batch_deadline: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    pub timeout: Duration,
    /// Name and value of each custom header.
    pub headers: Vec<(String, Secret)>,
    pub auth: Auth,
    pub tls_ca_file: Option<PathBuf>,
}

impl ForwardSettings {
    /// Checks the layered `options` and gives them their types.
    pub fn resolve(options: ForwardOptions) -> anyhow::Result<ForwardSettings> {
        let Some(url) = options.url else {
            bail!("FORWARD_URL (--url) is required: the remote-write endpoint to send to");
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("FORWARD_URL must start with http:// or https://, not {url:?}");
        }
        let at_least_one = |name: &str, value: usize| -> anyhow::Result<usize> {
            if value == 0 {
                bail!("{name} must be at least 1");
            }
            Ok(value)
        };
        let mut headers = Vec::new();
        for header in options.headers.unwrap_or_default() {
            let Some((name, value)) = header.split_once(':') else {
                bail!("FORWARD_HEADERS: {header:?} is not \"Name: value\"");
            };
            headers.push((name.trim().to_string(), Secret(value.trim().to_string())));
        }
        let token = match (options.bearer_token, options.bearer_token_file) {
            (Some(token), None) => Some(token),
            (None, Some(path)) => Some(
                std::fs::read_to_string(&path)
                    .with_context(|| format!("FORWARD_BEARER_TOKEN_FILE {}", path.display()))?
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
            (Some(_), Some(_)) => {
                bail!("FORWARD_BEARER_TOKEN and FORWARD_BEARER_TOKEN_FILE exclude each other")
            }
        };
        let auth = match (
            options.basic_auth_username,
            options.basic_auth_password,
            token,
        ) {
            (None, None, None) => Auth::None,
            (Some(username), password, None) => Auth::Basic {
                username,
                password: Secret(password.unwrap_or_default()),
            },
            (None, None, Some(token)) => Auth::Bearer(Secret(token)),
            (None, Some(_), None) => {
                bail!("FORWARD_BASIC_AUTH_PASSWORD needs FORWARD_BASIC_AUTH_USERNAME")
            }
            (_, _, Some(_)) => bail!("basic auth and a bearer token exclude each other"),
        };
        let (min_backoff, max_backoff) = (options.min_backoff_ms, options.max_backoff_ms);
        if min_backoff == 0 || max_backoff < min_backoff {
            bail!("FORWARD_MIN_BACKOFF_MS must be at least 1 and at most FORWARD_MAX_BACKOFF_MS");
        }
        Ok(ForwardSettings {
            url,
            protocol: options.protocol,
            group: options.group,
            unbound: options.unbound,
            listen: options.listen,
            shards: at_least_one("FORWARD_SHARDS", options.shards)?,
            limits: BatchLimits {
                max_points: at_least_one(
                    "FORWARD_MAX_POINTS_PER_REQUEST",
                    options.max_points_per_request,
                )?,
                max_bytes: at_least_one("FORWARD_MAX_REQUEST_BYTES", options.max_request_bytes)?,
            },
            batch_deadline: Duration::from_millis(options.batch_deadline_ms),
            min_backoff: Duration::from_millis(min_backoff),
            max_backoff: Duration::from_millis(max_backoff),
            timeout: Duration::from_millis(options.timeout_ms),
            headers,
            auth,
            tls_ca_file: options.tls_ca_file,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn with_url() -> ForwardOptions {
        ForwardOptions {
            url: Some("http://127.0.0.1:9090/api/v1/write".into()),
            ..ForwardOptions::default()
        }
    }

    /// `correlator forward` with `args` over the `[forward]` table `file`, as
    /// [`crate::config::load`] layers them.
    fn layered(args: &[&str], file: &str) -> anyhow::Result<ForwardSettings> {
        let matches = crate::config::Cli::command().try_get_matches_from(
            ["correlator", "forward"]
                .into_iter()
                .chain(args.iter().copied()),
        )?;
        let forward = matches.subcommand_matches("forward").expect("forward");
        let file: ForwardOptions = toml::from_str(file)?;
        ForwardSettings::resolve(shared::settings::layer(forward, file)?)
    }

    #[test]
    fn defaults_fill_what_neither_the_command_line_nor_the_file_sets() {
        let file = "protocol = \"1\"\nshards = 8\nheaders = [\"X-Scope-OrgID: acme\"]\n";
        let args = [
            "--url",
            "http://127.0.0.1:9090/api/v1/write",
            "--shards",
            "2",
        ];
        let settings = layered(&args, file).unwrap();
        assert_eq!(settings.protocol, Protocol::V1);
        assert_eq!(settings.shards, 2);
        assert_eq!(settings.group, "forward");
        assert_eq!(settings.limits.max_points, DEFAULT_MAX_POINTS_PER_REQUEST);
        assert_eq!(
            settings.headers,
            vec![("X-Scope-OrgID".to_string(), Secret("acme".into()))]
        );
        assert_eq!(settings.auth, Auth::None);
    }

    #[test]
    fn the_correlator_file_holds_them_in_a_forward_table() {
        let file: crate::config::Options = toml::from_str(
            "kafka_brokers = \"k:9092\"\n[forward]\nurl = \"https://m/api/v1/push\"\nmax_points_per_request = 500\n",
        )
        .unwrap();
        let settings = ForwardSettings::resolve(file.forward).unwrap();
        assert_eq!(settings.url, "https://m/api/v1/push");
        assert_eq!(settings.limits.max_points, 500);
        assert!(toml::from_str::<crate::config::Options>("[forward]\nshard = 2\n").is_err());
    }

    #[test]
    fn invalid_settings_say_which() {
        let error =
            |options: ForwardOptions| ForwardSettings::resolve(options).unwrap_err().to_string();
        assert!(error(ForwardOptions::default()).contains("FORWARD_URL"));
        let protocol = layered(&["--protocol", "3"], "").unwrap_err().to_string();
        assert!(
            protocol.contains("--protocol") && protocol.contains("1.0, 2.0"),
            "{protocol}"
        );
        assert!(
            error(ForwardOptions {
                basic_auth_username: Some("u".into()),
                bearer_token: Some("t".into()),
                ..with_url()
            })
            .contains("exclude")
        );
        assert!(
            error(ForwardOptions {
                headers: Some(vec!["no colon".into()]),
                ..with_url()
            })
            .contains("FORWARD_HEADERS")
        );
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let settings = ForwardSettings::resolve(ForwardOptions {
            basic_auth_username: Some("user".into()),
            basic_auth_password: Some("hunter2".into()),
            ..with_url()
        })
        .unwrap();
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}
