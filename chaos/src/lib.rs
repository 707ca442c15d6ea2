//! `make chaos`: the pipeline's fault tests. Real processes (a private Kafka
//! broker, ingest, the correlator, the loadtest generator) are started, put
//! under load, hurt, and then every acknowledged sample is looked for:
//! `processes` runs the parts, `scenarios` the faults, `report` the figures.

pub mod processes;
pub mod report;
pub mod scenarios;

use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::processes::Broker;
use crate::scenarios::{Outcome, Scenario, Settings};

/// Runs `scenarios` one after another on a fresh private broker on `kafka_port`.
/// A scenario that cannot run at all is an error; one whose checks fail is an
/// outcome that did not pass.
pub fn run_all(
    settings: &Settings,
    scenarios: &[Scenario],
    kafka_port: u16,
    mut on_outcome: impl FnMut(&Outcome),
) -> anyhow::Result<Vec<Outcome>> {
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
