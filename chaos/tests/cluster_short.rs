//! The cluster scenarios in their short form, as part of `make test`: the
//! leader kill and the partition of a node, at a low rate, on three nodes each
//! in its own network namespace (so the test needs root, as CI has), every
//! check as in `make chaos-cluster`.

use std::time::Duration;

use chaos::cluster_scenarios::ClusterScenario;
use chaos::report::{details, markdown_table};

#[test]
fn a_leader_killed_or_cut_off_loses_nothing_acknowledged() {
    let settings = chaos::short_settings("chaos-cluster-short", 30).unwrap();
    let outcomes = chaos::run_cluster(
        &settings,
        &[ClusterScenario::LeaderKill, ClusterScenario::NodePartition],
        9_092,
        Duration::from_secs(15),
        |outcome| eprint!("{}", details(outcome)),
    )
    .unwrap();
    eprint!("{}", markdown_table(&outcomes));
    let failed = chaos::failed(&outcomes);
    assert!(failed.is_empty(), "scenarios failed: {failed:?}");
}
