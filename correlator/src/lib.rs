//! The correlator: topology snapshots in `topology.raw` become current
//! components in the compacted `topology.components`, and the sample stream of
//! `metrics.samples` is joined against them into `metrics.bound` and
//! `metrics.unbound`.

pub mod bindings;
pub mod index;
pub mod join;
pub mod output;
pub mod snapshot;
