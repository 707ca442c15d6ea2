//! Command-line options of `loadtest`.

use std::path::PathBuf;

use clap::{ArgGroup, Parser};

use crate::payload::Protocol;
use crate::send::AuthStyle;
use crate::synthetic::{MAX_LABELS_PER_SERIES, MIN_LABELS_PER_SERIES};

/// Load generator for ingest: sends remote_write requests, pre-encoded before
/// the run, at a fixed sample rate (open loop: latency counts from each
/// request's due time, queueing included) or flat out, and optionally reads
/// the samples topic back to check that every acknowledged sample arrived.
#[derive(Debug, Clone, Parser)]
#[command(name = "loadtest", version)]
#[command(group(ArgGroup::new("load").required(true).args(["rate", "max"])))]
pub struct Options {
    /// Remote-write endpoint of ingest.
    #[arg(
        long,
        default_value = "http://127.0.0.1:8080/receiver/prometheus/api/v1/write"
    )]
    pub url: String,

    /// API key of the tenant to write as.
    #[arg(long, env = "LOADTEST_API_KEY", hide_env_values = true)]
    pub api_key: String,

    /// How the key is sent: `sts-api-key` header or basic auth with user `apikey`.
    #[arg(long, value_enum, default_value_t = AuthStyle::Header)]
    pub auth: AuthStyle,

    /// Synthetic: distinct series per pass (one sample each).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub series: u64,

    /// Synthetic: labels per series, `__name__`, namespace, pod, container, node,
    /// cluster_name, job, instance and `loadtest_run` included; more are filler.
    #[arg(long, default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(MIN_LABELS_PER_SERIES as u64..=MAX_LABELS_PER_SERIES as u64))]
    pub labels_per_series: u64,

    /// Synthetic: samples (= series) per request.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    pub samples_per_request: u64,

    /// Synthetic: fraction of the series replaced by new ones (new pod names) each pass.
    #[arg(long, default_value_t = 0.0)]
    pub churn: f64,

    /// Synthetic: passes pre-encoded, each one scrape interval later than the
    /// previous; the ring repeats them (default 1, or 10 with --churn).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub passes: Option<u64>,

    /// Replay the captured `*.bin` bodies (snappy, remote-write 1.0) of this
    /// directory instead of synthetic series. They go out byte for byte,
    /// except with --verify, which adds the `loadtest_run` label to each series.
    #[arg(long, value_name = "DIR")]
    pub replay: Option<PathBuf>,

    /// Remote-write protocol of synthetic requests (replay is always v1).
    #[arg(long, value_enum, default_value_t = Protocol::V1)]
    pub protocol: Protocol,

    /// Open loop: send this many samples per second, on a fixed timetable.
    #[arg(long, value_name = "SAMPLES_PER_SECOND")]
    pub rate: Option<f64>,

    /// Closed loop: send as fast as the connections allow.
    #[arg(long)]
    pub max: bool,

    /// Concurrent keep-alive HTTP/1.1 connections (one sender each).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub connections: u64,

    /// Seconds during which requests are sent.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub duration: u64,

    /// Per-attempt HTTP timeout, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,

    /// Re-send a request on 5xx, 429, timeouts and connection errors, with
    /// backoff (Retry-After honoured), as Prometheus does.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub retry: bool,

    /// Seconds after --duration to finish requests behind schedule and retries.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub drain_timeout: u64,

    /// After the run, read the samples topic back and count missing and
    /// duplicated samples of this run; exit 1 if any acknowledged sample is missing.
    #[arg(long)]
    pub verify: bool,

    /// With --verify, also wait for the correlator to catch up and check that
    /// every sample of this run in the samples topic came out of the join, in
    /// the bound or the unbound topic; exit 1 if any did not.
    #[arg(long, requires = "verify")]
    pub verify_outputs: bool,

    /// Consumer group of the correlator's join, for --verify-outputs.
    #[arg(long, default_value = "correlator")]
    pub correlator_group: String,

    /// Bound topic for --verify-outputs.
    #[arg(long, default_value = "metrics.bound")]
    pub bound_topic: String,

    /// Unbound topic for --verify-outputs.
    #[arg(long, default_value = "metrics.unbound")]
    pub unbound_topic: String,

    /// Seconds --verify-outputs waits for the correlator to commit past the
    /// end of the samples topic.
    #[arg(long, value_name = "SECS", default_value_t = 180)]
    pub settle_timeout: u64,

    /// Before sending, post a snapshot of the synthetic series' nodes, pods and
    /// containers to the topology intake, so the correlator can bind them.
    #[arg(long)]
    pub topology: bool,

    /// Topology intake endpoint for --topology (default: --url's host).
    #[arg(long)]
    pub intake_url: Option<String>,

    /// Kafka bootstrap servers for --verify.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub brokers: String,

    /// Samples topic for --verify.
    #[arg(long, default_value = "metrics.samples")]
    pub topic: String,

    /// Also write the summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Value of the `loadtest_run` label (default: random).
    #[arg(long)]
    pub run_id: Option<String>,

    /// Value of the `cluster_name` label of synthetic series.
    #[arg(long, default_value = "loadtest-cluster")]
    pub cluster_name: String,
}

impl Options {
    /// Checks what clap cannot express; the message names the option.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.churn) {
            return Err(format!(
                "--churn must be between 0 and 1, not {}",
                self.churn
            ));
        }
        if let Some(rate) = self.rate
            && !(rate > 0.0 && rate.is_finite())
        {
            return Err(format!("--rate must be a positive number, not {rate}"));
        }
        if self.replay.is_some() && self.topology {
            return Err(
                "--topology describes synthetic series; it does not apply to --replay".into(),
            );
        }
        if self.replay.is_some() && self.protocol == Protocol::V2 {
            return Err(
                "--protocol v2 applies to synthetic series only; --replay sends v1 bodies".into(),
            );
        }
        Ok(())
    }

    /// Passes in the synthetic ring.
    pub fn passes(&self) -> u64 {
        self.passes.unwrap_or(if self.churn > 0.0 { 10 } else { 1 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(arguments: &[&str]) -> Result<Options, clap::Error> {
        Options::try_parse_from(std::iter::once("loadtest").chain(arguments.iter().copied()))
    }

    #[test]
    fn defaults_match_the_documentation() {
        let options = parse(&["--api-key", "k", "--max"]).unwrap();
        assert_eq!(options.series, 100_000);
        assert_eq!(options.labels_per_series, 10);
        assert_eq!(options.samples_per_request, 2000);
        assert_eq!(options.connections, 16);
        assert_eq!(options.duration, 60);
        assert!(options.retry);
        assert_eq!(options.passes(), 1);
        assert_eq!(options.auth, AuthStyle::Header);
        assert!(options.validate().is_ok());
    }

    #[test]
    fn rejects_contradictions() {
        assert!(parse(&["--api-key", "k"]).is_err(), "needs --rate or --max");
        assert!(parse(&["--api-key", "k", "--max", "--rate", "10"]).is_err());
        assert!(parse(&["--api-key", "k", "--max", "--labels-per-series", "5"]).is_err());
        let churn = parse(&["--api-key", "k", "--max", "--churn", "2"]).unwrap();
        assert!(churn.validate().unwrap_err().contains("--churn"));
        let replay_v2 = parse(&[
            "--api-key",
            "k",
            "--max",
            "--replay",
            "x",
            "--protocol",
            "v2",
        ])
        .unwrap();
        assert!(replay_v2.validate().is_err());
        let no_retry = parse(&[
            "--api-key",
            "k",
            "--rate",
            "5",
            "--retry",
            "false",
            "--churn",
            "0.1",
        ])
        .unwrap();
        assert!(!no_retry.retry);
        assert_eq!(no_retry.passes(), 10);
    }
}
