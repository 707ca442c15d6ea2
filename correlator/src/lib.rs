//! The correlator: topology snapshots in `topology.raw` become current
//! components in the compacted `topology.components` ([`materializer`], with
//! the semantics in [`snapshot`]), and the sample stream of `metrics.samples`
//! is joined against them ([`join_loop`], with the core in [`join`], rules in
//! [`bindings`], the index in [`index`]) into `metrics.bound` and
//! `metrics.unbound` ([`output`], produced by [`delivery`]). [`topology_feed`] loads the topology first.

pub mod allocator;
pub mod batch;
pub mod bindings;
pub mod config;
pub mod delivery;
pub mod index;
pub mod join;
pub mod join_loop;
pub mod materializer;
pub mod metrics;
pub mod output;
pub mod server;
pub mod snapshot;
pub mod tail;
pub mod topology_feed;
