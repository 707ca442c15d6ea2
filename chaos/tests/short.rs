//! The chaos scenarios in their short form, as part of `make test`: a few
//! seconds of load each at a low rate, every check as in `make chaos`.

use chaos::report::{details, markdown_table};
use chaos::scenarios::{Scenario, Settings};

#[test]
fn every_fault_loses_nothing_acknowledged() {
    let bin_dir = chaos::binaries_beside_this_one().unwrap();
    let work_dir = chaos::processes::repository_root().join("target/chaos-short");
    let settings = Settings {
        bin_dir,
        work_dir,
        seconds: 12,
        rate: 2_000,
        series: 1_000,
    };
    let port = std::env::var("CHAOS_KAFKA_PORT")
        .ok()
        .and_then(|port| port.parse().ok())
        .unwrap_or(39_692);
    let outcomes = chaos::run_all(&settings, &Scenario::ALL, port, |outcome| {
        eprint!("{}", details(outcome))
    })
    .unwrap();
    eprint!("{}", markdown_table(&outcomes));
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|outcome| !outcome.passed)
        .map(|outcome| outcome.scenario.name())
        .collect();
    assert!(failed.is_empty(), "scenarios failed: {failed:?}");
}
