//! The native load generator for ingest, one module per stage of a run:
//! `synthetic` series or replayed bodies become a `payload` ring, the `send`
//! tasks push it on a `schedule`, `stats` counts what happened, and `verify`
//! reads the samples topic back to check that nothing acknowledged was lost,
//! then the correlator's `outputs`. `topology` describes the synthetic
//! series' pods, containers and nodes so they can be bound.

pub mod cli;
pub mod outputs;
pub mod payload;
pub mod schedule;
pub mod send;
pub mod stats;
pub mod synthetic;
pub mod topology;
pub mod verify;
