//! `make k6`: one k6 scenario of `loadtest/k6` against ingest
//! (loadtest/k6/README.md). It runs `$K6 run -e INGEST_URL=... -e
//! API_KEY=... [args] SCRIPT` on k6 built with the project's k6/x/remotewrite
//! extension (`loadtest/k6/build-k6.sh`), or on `K6`. Without `--local` it
//! writes to `INGEST_URL` with `API_KEY` (and `API_KEYS` for many-tenants);
//! with `--local` it starts a private pipeline first (Kafka and ingest on
//! free ports, state under `target/k6`) and stops it again on the way out.
//! The exit code is k6's.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::Args;

use super::{metrics, say};
use crate::processes::{Broker, Service, repository_root};

const NAME: &str = "bench k6";
const MAIN_KEY: &str = "k6-local-main-key-0123456789";
const LIMITED_KEY: &str = "k6-local-limited-key-0123456789";
/// The settings the scripts read that are passed on as `-e`.
const PASSED_ON: [&str; 5] = [
    "INGEST_URL",
    "API_KEY",
    "API_KEYS",
    "LIMITED_TENANTS",
    "AUTH",
];

/// The scenario, where it runs, and k6's own arguments.
#[derive(Debug, Args)]
pub struct Options {
    /// A private Kafka and ingest to run against, stopped again afterwards.
    #[arg(long, env = "LOCAL", value_parser = clap::builder::FalseyValueParser::new())]
    local: bool,
    /// Samples/s of the tenant k6-limited of the local ingest (burst twice that).
    #[arg(long, env = "LIMITED_SAMPLES_PER_SECOND", default_value_t = 1000)]
    limited_samples_per_second: u64,
    /// Port of the local Kafka (default: random free ports in 20000-31999);
    /// its controller and ingest take the first free ports above it.
    #[arg(long, env = "K6_KAFKA_PORT")]
    kafka_port: Option<u16>,
    /// Stop the local Kafka without deleting its data.
    #[arg(long, env = "KEEP_KAFKA_DATA", value_parser = clap::builder::FalseyValueParser::new())]
    keep_kafka_data: bool,
    /// The local pipeline's state (Kafka, keys, ingest's log).
    #[arg(long, env = "K6_WORK_DIR")]
    work_dir: Option<PathBuf>,
    /// Where the ingest binary is (default: target/release, built first).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// constant-rate (default), ramp, spike, many-tenants, or a path to a
    /// script; then any `k6 run` argument (-e NAME=VALUE, --summary-export FILE, ...).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// The script of `scenario`: one of loadtest/k6's, or a path.
fn scenario_script(directory: &Path, scenario: &str) -> Option<PathBuf> {
    let named = directory.join(format!("{scenario}.js"));
    if scenario != "lib" && named.is_file() {
        return Some(named);
    }
    Path::new(scenario)
        .is_file()
        .then(|| PathBuf::from(scenario))
}

/// The scenarios of loadtest/k6, by name.
fn scenarios(directory: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(directory)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|entry| {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let stem = name.strip_suffix(".js")?.to_string();
                    (stem != "lib").then_some(stem)
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The scenario (the first argument not starting with `-`), whether
/// `--local` is among the arguments, and k6's arguments: the rest.
fn split_arguments(args: &[String]) -> (String, bool, Vec<String>) {
    let local = args.iter().any(|arg| arg == "--local");
    let mut rest: Vec<String> = args
        .iter()
        .filter(|arg| *arg != "--local")
        .cloned()
        .collect();
    let scenario = match rest.first() {
        Some(first) if !first.starts_with('-') => rest.remove(0),
        _ => "constant-rate".to_string(),
    };
    (scenario, local, rest)
}

/// k6's arguments before the caller's: the settings as `-e` (the caller's
/// own `-e` come later and win), and p(99) in the summary, the percentile
/// the thresholds use, unless the caller chose the columns.
fn k6_arguments(settings: &[(&str, String)], args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for (name, value) in settings {
        if !value.is_empty() {
            out.push("-e".to_string());
            out.push(format!("{name}={value}"));
        }
    }
    if !args
        .iter()
        .any(|arg| arg.starts_with("--summary-trend-stats"))
    {
        out.push("--summary-trend-stats".to_string());
        out.push("avg,min,med,max,p(90),p(95),p(99)".to_string());
    }
    out
}

/// The k6 to run: `K6` (a path, or a name on PATH), or the one build-k6.sh builds.
fn k6_binary(directory: &Path) -> anyhow::Result<PathBuf> {
    if let Some(given) = std::env::var("K6").ok().filter(|k6| !k6.is_empty()) {
        let Some(path) = super::which(&given) else {
            bail!("K6={given}: not an executable k6 binary");
        };
        // Another k6; it must have a k6/x/remotewrite module.
        let version = Command::new(&path)
            .arg("version")
            .output()
            .map(|output| String::from_utf8_lossy(&output.stdout).to_lowercase())
            .unwrap_or_default();
        if !version.contains("prometheus-remote") && !version.contains("remotewrite") {
            say(
                NAME,
                &format!(
                    "warning: '{} version' lists no remote-write extension; the scripts need k6/x/remotewrite",
                    path.display()
                ),
            );
        }
        return Ok(path);
    }
    let output = Command::new("bash")
        .arg(directory.join("build-k6.sh"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running loadtest/k6/build-k6.sh")?;
    if !output.status.success() {
        bail!("building k6 failed (loadtest/k6/build-k6.sh)");
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim().to_string(),
    ))
}

/// A random port in 20000–31999 (below the kernel's ephemeral range) that
/// nothing answers on and that is not in `taken`.
fn random_free_port(taken: &[u16]) -> u16 {
    let random = RandomState::new();
    let mut attempt = 0u64;
    loop {
        attempt += 1;
        let port = 20000 + (random.hash_one(attempt) % 12000) as u16;
        if !taken.contains(&port) && super::free_port_from(port) == port {
            return port;
        }
    }
}

/// The private Kafka and ingest of `--local`, stopped on every way out.
struct Local {
    broker: Broker,
    keep_data: bool,
    ingest: Option<Service>,
}

impl Drop for Local {
    fn drop(&mut self) {
        if let Some(mut ingest) = self.ingest.take() {
            let _ = ingest.terminate();
        }
        // reset = stop and delete the data: each run starts with empty topics.
        let stopped = if self.keep_data {
            self.broker.stop()
        } else {
            self.broker.reset()
        };
        if let Err(error) = stopped {
            say(NAME, &format!("stopping Kafka: {error:#}"));
        }
        super::interrupt::unregister(&self.broker);
    }
}

fn start_local(
    options: &Options,
    work: &Path,
) -> anyhow::Result<(Local, [(&'static str, String); 4])> {
    std::fs::create_dir_all(work)?;
    let (kafka_port, controller_port, ingest_port) = match options.kafka_port {
        Some(port) => {
            let controller = super::free_port_from(port + 1);
            (port, controller, super::free_port_from(controller + 1))
        }
        None => {
            let kafka = random_free_port(&[]);
            let controller = random_free_port(&[kafka]);
            (kafka, controller, random_free_port(&[kafka, controller]))
        }
    };
    let mut broker = Broker::with_default_heap(kafka_port, controller_port, work.join("kafka"));
    if std::env::var_os("KAFKA_HEAP_OPTS").is_none() {
        broker = broker.with_heap("-Xms128m -Xmx512m");
    }
    // A broker left behind by an interrupted run with this state dir.
    broker.stop().context("stopping a broker left behind")?;
    let mut local = Local {
        broker,
        keep_data: options.keep_kafka_data,
        ingest: None,
    };
    super::interrupt::register(&local.broker, local.keep_data);
    local.broker.start().context("starting Kafka")?;

    // One tenant without a quota, one limited tenant for many-tenants (its
    // burst must hold one request: more samples than the burst is a 413).
    let limited = options.limited_samples_per_second;
    let keys = work.join("keys.toml");
    std::fs::write(
        &keys,
        format!(
            "[[keys]]\ntenant = \"k6-main\"\nkey = \"{MAIN_KEY}\"\n\n[[keys]]\ntenant = \"k6-limited\"\nkey = \"{LIMITED_KEY}\"\nsamples_per_second = {limited}\nburst_samples = {}\n",
            limited * 2
        ),
    )?;
    let bin_dir = match &options.bin_dir {
        Some(directory) => directory.clone(),
        None => {
            say(
                NAME,
                "building ingest (cargo build --release --bin ingest) ...",
            );
            let built = Command::new("cargo")
                .args(["build", "--release", "--bin", "ingest"])
                .current_dir(repository_root())
                .stdout(std::process::Stdio::null())
                .status()
                .context("running cargo build")?;
            if !built.success() {
                bail!("cargo build --release --bin ingest failed");
            }
            repository_root().join("target/release")
        }
    };
    let log = work.join("ingest.log");
    let binary = bin_dir.join("ingest");
    let ingest = super::start_ingest(NAME, binary, &local.broker, ingest_port, &keys, None, log)?;
    local.ingest = Some(ingest);
    let settings = [
        (
            "INGEST_URL",
            format!("http://127.0.0.1:{ingest_port}/receiver/prometheus/api/v1/write"),
        ),
        ("API_KEY", MAIN_KEY.to_string()),
        (
            "API_KEYS",
            format!("k6-main={MAIN_KEY},k6-limited={LIMITED_KEY}"),
        ),
        ("LIMITED_TENANTS", "k6-limited".to_string()),
    ];
    Ok((local, settings))
}

/// Runs the scenario; k6's exit code.
pub fn run(options: &Options) -> anyhow::Result<i32> {
    let repository = repository_root();
    let directory = repository.join("loadtest/k6");
    let (scenario, local_in_args, args) = split_arguments(&options.args);
    let Some(script) = scenario_script(&directory, &scenario) else {
        bail!(
            "no scenario '{scenario}' (scenarios: {})",
            scenarios(&directory).join(", ")
        );
    };
    let k6 = k6_binary(&directory)?;
    let work = options
        .work_dir
        .clone()
        .unwrap_or_else(|| repository.join("target/k6"));
    let local = if options.local || local_in_args {
        Some(start_local(options, &work)?)
    } else {
        None
    };
    let mut settings: Vec<(&str, String)> = PASSED_ON
        .iter()
        .map(|name| (*name, std::env::var(name).unwrap_or_default()))
        .collect();
    if let Some((_, local_settings)) = &local {
        for (name, value) in local_settings {
            if let Some(setting) = settings.iter_mut().find(|(n, _)| n == name) {
                setting.1 = value.clone();
            }
        }
    }
    let url = settings[0].1.clone();
    say(
        NAME,
        &format!(
            "running {} against {} with {}",
            script.file_name().unwrap_or_default().to_string_lossy(),
            if url.is_empty() {
                "http://127.0.0.1:8080/receiver/prometheus/api/v1/write"
            } else {
                &url
            },
            k6.display()
        ),
    );
    let mut command = Command::new(&k6);
    command
        .arg("run")
        .args(k6_arguments(&settings, &args))
        .args(&args)
        .arg(&script);
    // No anonymous usage report to k6.io at the end of a run, and no download
    // of a k6 with other extensions (k6 v1's automatic extension resolution)
    // if a script imports one this k6 lacks: load stays between here and ingest.
    for (name, value) in [
        ("K6_NO_USAGE_REPORT", "true"),
        ("K6_AUTO_EXTENSION_RESOLUTION", "false"),
    ] {
        if std::env::var_os(name).is_none() {
            command.env(name, value);
        }
    }
    let status = command
        .status()
        .with_context(|| format!("running {}", k6.display()))?;
    if let Some((local, _)) = &local
        && let Some(ingest) = &local.ingest
    {
        // What ingest itself counted, next to k6's samples_written.
        let accepted: Vec<String> = metrics::fetch(ingest.health_port)
            .unwrap_or_default()
            .lines()
            .filter(|line| {
                line.starts_with("ingest_samples_accepted_total")
                    || line.starts_with("ingest_samples_accepted{")
                    || line.starts_with("ingest_samples_accepted ")
            })
            .map(str::to_string)
            .collect();
        if !accepted.is_empty() {
            say(
                NAME,
                &format!("ingest's own count: {}", accepted.join("; ")),
            );
        }
    }
    drop(local);
    Ok(super::shell_exit_code(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_plain_argument_is_the_scenario() {
        let args = |list: &[&str]| list.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert_eq!(
            split_arguments(&args(&["spike", "--local", "-e", "RATE=5"])),
            ("spike".to_string(), true, args(&["-e", "RATE=5"]))
        );
        assert_eq!(
            split_arguments(&args(&["-e", "RATE=5"])),
            ("constant-rate".to_string(), false, args(&["-e", "RATE=5"]))
        );
    }

    #[test]
    fn the_scenarios_are_the_scripts_but_the_library() {
        let directory = repository_root().join("loadtest/k6");
        assert_eq!(
            scenarios(&directory),
            ["constant-rate", "many-tenants", "ramp", "spike"]
        );
        assert!(scenario_script(&directory, "lib").is_none());
        assert!(scenario_script(&directory, "ramp").is_some());
    }

    #[test]
    fn settings_are_passed_on_before_the_caller_s_arguments() {
        let settings = [
            ("INGEST_URL", "http://x".to_string()),
            ("AUTH", String::new()),
        ];
        assert_eq!(
            k6_arguments(&settings, &[]),
            [
                "-e",
                "INGEST_URL=http://x",
                "--summary-trend-stats",
                "avg,min,med,max,p(90),p(95),p(99)"
            ]
        );
        let own = ["--summary-trend-stats=avg".to_string()];
        assert_eq!(k6_arguments(&settings, &own), ["-e", "INGEST_URL=http://x"]);
    }
}
