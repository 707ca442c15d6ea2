//! `chaos`: runs the fault scenarios and prints their figures.

use std::path::PathBuf;
use std::process::ExitCode;

use chaos::cluster_scenarios::ClusterScenario;
use chaos::report::{details, markdown_table};
use chaos::scenarios::{Scenario, Settings};
use clap::Parser;

/// Fault tests of the whole pipeline under load, each ending with loadtest's
/// read-back verification of `metrics.samples`, `metrics.bound` and `metrics.unbound`.
#[derive(Debug, Parser)]
#[command(name = "chaos", version)]
struct Options {
    /// Scenarios to run (repeatable; default all, in the documented order).
    #[arg(long, value_enum, conflicts_with = "cluster")]
    scenario: Vec<Scenario>,
    /// Run the cluster scenarios instead, on three nodes each in a network
    /// namespace of its own (needs root).
    #[arg(long)]
    cluster: bool,
    /// Cluster scenarios to run (repeatable; default all, in the documented order).
    #[arg(long, value_enum, requires = "cluster")]
    cluster_scenario: Vec<ClusterScenario>,
    /// Seconds a node stays cut off or slowed, and two nodes stay down.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    outage_seconds: u64,
    /// Seconds of load per scenario; the fault comes a third of the way in.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(6..))]
    seconds: u64,
    /// Samples per second of load.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    rate: u64,
    /// ingest's REQUEST_TIMEOUT_MS: how long a write may wait for Kafka's acks.
    #[arg(long, default_value_t = chaos::scenarios::REQUEST_TIMEOUT_MS)]
    request_timeout_ms: u64,
    /// Distinct series of the load.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    series: u64,
    /// Port of the private Kafka broker (the next port is its controller's);
    /// a cluster's node N uses this plus 2*(N-1), in its own namespace.
    #[arg(long, env = "CHAOS_KAFKA_PORT", default_value_t = 39592)]
    kafka_port: u16,
    /// Logs, summaries and the broker's data.
    #[arg(long, default_value = "target/chaos")]
    work_dir: PathBuf,
    /// Where the ingest, correlator and loadtest binaries are (default: beside this one).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Also write the outcomes as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> ExitCode {
    let options = Options::parse();
    match run(options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: Options) -> anyhow::Result<bool> {
    let bin_dir = match options.bin_dir {
        Some(directory) => directory,
        None => chaos::binaries_beside_this_one()?,
    };
    let settings = Settings {
        bin_dir,
        work_dir: std::path::absolute(&options.work_dir)?,
        seconds: options.seconds,
        rate: options.rate,
        series: options.series,
        request_timeout_ms: options.request_timeout_ms,
    };
    let print = |outcome: &chaos::scenarios::Outcome| eprint!("{}", details(outcome));
    let outcomes = if options.cluster {
        let scenarios = if options.cluster_scenario.is_empty() {
            ClusterScenario::ALL.to_vec()
        } else {
            options.cluster_scenario
        };
        let outage = std::time::Duration::from_secs(options.outage_seconds);
        chaos::run_cluster(&settings, &scenarios, options.kafka_port, outage, print)?
    } else {
        let scenarios = if options.scenario.is_empty() {
            Scenario::ALL.to_vec()
        } else {
            options.scenario
        };
        chaos::run_all(&settings, &scenarios, options.kafka_port, print)?
    };
    println!(
        "\n{} s of load at {} samples/s over {} series per scenario\n",
        settings.seconds, settings.rate, settings.series
    );
    print!("{}", markdown_table(&outcomes));
    println!();
    for outcome in &outcomes {
        print!("{}", details(outcome));
    }
    if let Some(path) = &options.json {
        std::fs::write(path, serde_json::to_string_pretty(&outcomes)? + "\n")?;
    }
    Ok(outcomes.iter().all(|outcome| outcome.passed))
}
