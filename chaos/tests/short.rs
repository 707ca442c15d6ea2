//! The chaos scenarios in their short form, as part of `make test`: a few
//! seconds of load each at a low rate, every check as in `make chaos`.

use chaos::report::{details, markdown_table};
use chaos::scenarios::Scenario;

#[test]
fn every_fault_loses_nothing_acknowledged() {
    let settings = chaos::short_settings("chaos-short", 12).unwrap();
    let port = std::env::var("CHAOS_KAFKA_PORT")
        .ok()
        .and_then(|port| port.parse().ok())
        .unwrap_or(39_492);
    let outcomes = chaos::run_all(&settings, &Scenario::ALL, port, |outcome| {
        eprint!("{}", details(outcome))
    })
    .unwrap();
    eprint!("{}", markdown_table(&outcomes));
    let failed = chaos::failed(&outcomes);
    assert!(failed.is_empty(), "scenarios failed: {failed:?}");
}
