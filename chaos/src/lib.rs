//! `make chaos`: the pipeline's fault tests. Real processes (a private Kafka
//! broker, ingest, the correlator, the loadtest generator) are started, put
//! under load, hurt, and then every acknowledged sample is looked for:
//! `processes` runs the parts, `scenarios` the faults, `report` the figures;
//! `cluster` and `cluster_scenarios` do the same on a replicated cluster;
//! `bench` runs the benchmarks on a private broker.

pub mod bench;
pub mod cluster;
pub mod cluster_scenarios;
pub mod processes;
pub mod report;
pub mod scenarios;

use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::cluster::Cluster;
use crate::cluster_scenarios::ClusterScenario;
use crate::processes::Broker;
use crate::scenarios::{Outcome, Scenario, Settings};

/// Nodes of the cluster the cluster scenarios run on.
pub const CLUSTER_NODES: usize = 3;

/// Runs `scenarios` one after another on a fresh private broker on `kafka_port`.
/// A scenario that cannot run at all is an error; one whose checks fail is an
/// outcome that did not pass.
pub fn run_all(
    settings: &Settings,
    scenarios: &[Scenario],
    kafka_port: u16,
    mut on_outcome: impl FnMut(&Outcome),
) -> anyhow::Result<Vec<Outcome>> {
    check_binaries(settings)?;
    let broker = Broker::new(kafka_port, settings.work_dir.join("kafka"));
    broker.reset().context("resetting the private broker")?;
    broker.start().context("starting the private broker")?;
    let mut outcomes = Vec::new();
    let mut result = Ok(());
    for scenario in scenarios {
        eprintln!("chaos: {} ...", scenario.name());
        match scenarios::run(*scenario, settings, &broker) {
            Ok(outcome) => {
                on_outcome(&outcome);
                outcomes.push(outcome);
            }
            Err(error) => {
                result = Err(error.context(format!("scenario {}", scenario.name())));
                break;
            }
        }
        // A scenario may leave the broker stopped if it failed half-way.
        broker.start()?;
    }
    let stopped = broker.stop();
    result?;
    stopped?;
    Ok(outcomes)
}

/// Runs the cluster `scenarios` one after another on a fresh private cluster
/// of three nodes, each in its own network namespace (which needs root). Each
/// scenario starts with every node up, healed and every replica in sync.
/// `outage` is how long a node stays cut off or slowed, and two nodes stay down.
pub fn run_cluster(
    settings: &Settings,
    scenarios: &[ClusterScenario],
    kafka_port: u16,
    outage: std::time::Duration,
    mut on_outcome: impl FnMut(&Outcome),
) -> anyhow::Result<Vec<Outcome>> {
    check_binaries(settings)?;
    let cluster = Cluster::new(
        CLUSTER_NODES,
        kafka_port,
        settings.work_dir.join("kafka-cluster"),
    )
    .context("making the cluster's network namespaces")?;
    cluster.reset().context("resetting the private cluster")?;
    cluster.start().context("starting the private cluster")?;
    let mut outcomes = Vec::new();
    for scenario in scenarios {
        // A scenario may leave a node down or cut off if it failed half-way.
        for node in 1..=CLUSTER_NODES {
            cluster.network().heal(node)?;
        }
        cluster.start()?;
        cluster.wait_full_isr(std::time::Duration::from_secs(180))?;
        eprintln!("chaos: {} ...", scenario.name());
        let outcome = cluster_scenarios::run(*scenario, settings, &cluster, outage)
            .with_context(|| format!("scenario {}", scenario.name()))?;
        on_outcome(&outcome);
        outcomes.push(outcome);
    }
    // Dropping the cluster stops its nodes and removes its network.
    drop(cluster);
    Ok(outcomes)
}

fn check_binaries(settings: &Settings) -> anyhow::Result<()> {
    for binary in ["ingest", "correlator", "loadtest"] {
        let path = settings.bin_dir.join(binary);
        if !path.is_file() {
            bail!(
                "{} not found: build it first (cargo build --bin ingest --bin correlator --bin loadtest)",
                path.display()
            );
        }
    }
    std::fs::create_dir_all(&settings.work_dir)?;
    Ok(())
}

/// The settings of the short forms in `make test`: debug binaries beside the
/// test's, logs in `target/<work_dir>`, a low rate over few series.
pub fn short_settings(work_dir: &str, seconds: u64) -> anyhow::Result<Settings> {
    Ok(Settings {
        bin_dir: binaries_beside_this_one()?,
        work_dir: processes::repository_root().join("target").join(work_dir),
        seconds,
        rate: 2_000,
        series: 1_000,
        request_timeout_ms: scenarios::REQUEST_TIMEOUT_MS,
    })
}

/// The names of the outcomes that did not pass.
pub fn failed(outcomes: &[Outcome]) -> Vec<&str> {
    outcomes
        .iter()
        .filter(|outcome| !outcome.passed)
        .map(|outcome| outcome.scenario.as_str())
        .collect()
}

/// The directory of the running executable, where cargo also puts the
/// services' binaries (`target/<profile>/`, or its parent for test binaries in `deps/`).
pub fn binaries_beside_this_one() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let mut directory = exe
        .parent()
        .context("executable has a directory")?
        .to_path_buf();
    if directory.file_name().is_some_and(|name| name == "deps") {
        directory.pop();
    }
    Ok(directory)
}
