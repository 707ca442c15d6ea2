//! Settings of `correlator forward`: command line, environment, then the
//! TOML file's `[forward]` table, then the defaults, as the correlator's own.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// Remote-write protocol of the forwarded requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `prometheus.WriteRequest`, for receivers that speak only 1.0.
    V1,
    /// `io.prometheus.write.v2.Request`, as the records hold it.
    V2,
}

impl Protocol {
    fn parse(text: &str) -> anyhow::Result<Protocol> {
        match text {
            "1.0" | "1" => Ok(Protocol::V1),
            "2.0" | "2" => Ok(Protocol::V2),
            other => bail!("FORWARD_PROTOCOL must be 1.0 or 2.0, not {other:?}"),
        }
    }
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

/// Every setting is optional here so that the command line, the environment
/// and the file can be layered; [`ForwardSettings::resolve`] applies the defaults.
#[derive(Debug, Default, Clone, clap::Args, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardOptions {
    /// Remote-write endpoint, e.g. http://prometheus:9090/api/v1/write (required)
    #[arg(long, env = "FORWARD_URL")]
    pub url: Option<String>,
    /// Protocol of the requests: 2.0 (the records as they are) or 1.0 [default: 2.0]
    #[arg(long, env = "FORWARD_PROTOCOL")]
    pub protocol: Option<String>,
    /// Consumer group of the forwarder [default: forward]
    #[arg(long, env = "FORWARD_GROUP")]
    pub group: Option<String>,
    /// Forward metrics.unbound too [default: false]
    #[arg(long, env = "FORWARD_UNBOUND")]
    pub unbound: Option<bool>,
    /// Address of the metrics and health listener [default: 0.0.0.0:8082]
    #[arg(long, env = "FORWARD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Parallel senders per topic; a series always goes through the same one [default: 4]
    #[arg(long, env = "FORWARD_SHARDS")]
    pub shards: Option<usize>,
    /// Most samples, histograms and exemplars in one request [default: 2000]
    #[arg(long, env = "FORWARD_MAX_POINTS_PER_REQUEST")]
    pub max_points_per_request: Option<usize>,
    /// Most bytes of one request before compression (estimated) [default: 4194304]
    #[arg(long, env = "FORWARD_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<usize>,
    /// How long a request that is not full waits for more series, in ms [default: 1000]
    #[arg(long, env = "FORWARD_BATCH_DEADLINE_MS")]
    pub batch_deadline_ms: Option<u64>,
    /// First wait before a retry, in ms; it doubles on each retry [default: 30]
    #[arg(long, env = "FORWARD_MIN_BACKOFF_MS")]
    pub min_backoff_ms: Option<u64>,
    /// Longest wait between retries, in ms (a Retry-After header may ask for longer) [default: 5000]
    #[arg(long, env = "FORWARD_MAX_BACKOFF_MS")]
    pub max_backoff_ms: Option<u64>,
    /// Timeout of one request, in ms [default: 30000]
    #[arg(long, env = "FORWARD_TIMEOUT_MS")]
    pub timeout_ms: Option<u64>,
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
    pub fn resolve(cli: ForwardOptions, file: ForwardOptions) -> anyhow::Result<ForwardSettings> {
        let Some(url) = cli.url.or(file.url) else {
            bail!("FORWARD_URL (--url) is required: the remote-write endpoint to send to");
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("FORWARD_URL must start with http:// or https://, not {url:?}");
        }
        let protocol = Protocol::parse(cli.protocol.or(file.protocol).as_deref().unwrap_or("2.0"))?;
        let at_least_one = |name: &str, value: usize| -> anyhow::Result<usize> {
            if value == 0 {
                bail!("{name} must be at least 1");
            }
            Ok(value)
        };
        let mut headers = Vec::new();
        for header in cli.headers.or(file.headers).unwrap_or_default() {
            let Some((name, value)) = header.split_once(':') else {
                bail!("FORWARD_HEADERS: {header:?} is not \"Name: value\"");
            };
            headers.push((name.trim().to_string(), Secret(value.trim().to_string())));
        }
        let username = cli.basic_auth_username.or(file.basic_auth_username);
        let password = cli.basic_auth_password.or(file.basic_auth_password);
        let token = match (
            cli.bearer_token.or(file.bearer_token),
            cli.bearer_token_file.or(file.bearer_token_file),
        ) {
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
        let auth = match (username, password, token) {
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
        let min_backoff = cli
            .min_backoff_ms
            .or(file.min_backoff_ms)
            .unwrap_or(DEFAULT_MIN_BACKOFF_MS);
        let max_backoff = cli
            .max_backoff_ms
            .or(file.max_backoff_ms)
            .unwrap_or(DEFAULT_MAX_BACKOFF_MS);
        if min_backoff == 0 || max_backoff < min_backoff {
            bail!("FORWARD_MIN_BACKOFF_MS must be at least 1 and at most FORWARD_MAX_BACKOFF_MS");
        }
        Ok(ForwardSettings {
            url,
            protocol,
            group: cli
                .group
                .or(file.group)
                .unwrap_or_else(|| DEFAULT_GROUP.into()),
            unbound: cli.unbound.or(file.unbound).unwrap_or(false),
            listen: cli
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default")),
            shards: at_least_one(
                "FORWARD_SHARDS",
                cli.shards.or(file.shards).unwrap_or(DEFAULT_SHARDS),
            )?,
            limits: BatchLimits {
                max_points: at_least_one(
                    "FORWARD_MAX_POINTS_PER_REQUEST",
                    cli.max_points_per_request
                        .or(file.max_points_per_request)
                        .unwrap_or(DEFAULT_MAX_POINTS_PER_REQUEST),
                )?,
                max_bytes: at_least_one(
                    "FORWARD_MAX_REQUEST_BYTES",
                    cli.max_request_bytes
                        .or(file.max_request_bytes)
                        .unwrap_or(DEFAULT_MAX_REQUEST_BYTES),
                )?,
            },
            batch_deadline: Duration::from_millis(
                cli.batch_deadline_ms
                    .or(file.batch_deadline_ms)
                    .unwrap_or(DEFAULT_BATCH_DEADLINE_MS),
            ),
            min_backoff: Duration::from_millis(min_backoff),
            max_backoff: Duration::from_millis(max_backoff),
            timeout: Duration::from_millis(
                cli.timeout_ms
                    .or(file.timeout_ms)
                    .unwrap_or(DEFAULT_TIMEOUT_MS),
            ),
            headers,
            auth,
            tls_ca_file: cli.tls_ca_file.or(file.tls_ca_file),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_url() -> ForwardOptions {
        ForwardOptions {
            url: Some("http://127.0.0.1:9090/api/v1/write".into()),
            ..ForwardOptions::default()
        }
    }

    #[test]
    fn defaults_fill_what_neither_the_command_line_nor_the_file_sets() {
        let file: ForwardOptions =
            toml::from_str("protocol = \"1.0\"\nshards = 8\nheaders = [\"X-Scope-OrgID: acme\"]\n")
                .unwrap();
        let cli = ForwardOptions {
            shards: Some(2),
            ..with_url()
        };
        let settings = ForwardSettings::resolve(cli, file).unwrap();
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
        let settings = ForwardSettings::resolve(ForwardOptions::default(), file.forward).unwrap();
        assert_eq!(settings.url, "https://m/api/v1/push");
        assert_eq!(settings.limits.max_points, 500);
        assert!(toml::from_str::<crate::config::Options>("[forward]\nshard = 2\n").is_err());
    }

    #[test]
    fn invalid_settings_say_which() {
        let error = |options: ForwardOptions| {
            ForwardSettings::resolve(options, ForwardOptions::default())
                .unwrap_err()
                .to_string()
        };
        assert!(error(ForwardOptions::default()).contains("FORWARD_URL"));
        assert!(
            error(ForwardOptions {
                protocol: Some("3".into()),
                ..with_url()
            })
            .contains("FORWARD_PROTOCOL")
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
        let settings = ForwardSettings::resolve(
            ForwardOptions {
                basic_auth_username: Some("user".into()),
                basic_auth_password: Some("hunter2".into()),
                ..with_url()
            },
            ForwardOptions::default(),
        )
        .unwrap();
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}
