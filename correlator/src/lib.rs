//! The correlator: topology snapshots in `topology.raw` become current
//! components in the compacted `topology.components` ([`materializer`], with
//! the semantics in [`snapshot`]), and the sample stream of `metrics.samples`
//! is joined against them ([`join_loop`], with the core in [`join`], rules in
//! [`bindings`], the index in [`index`], records read by
//! [`samples_source`]) into `metrics.bound` and `metrics.unbound` (batches
//! written by [`batch`] in the encodings of [`output`], produced by
//! [`delivery`]). [`topology_feed`] loads the topology first; the Kafka
//! clients' shared settings are in [`kafka`]. [`forward`] sends the bound
//! series on to a remote-write endpoint; [`view`] serves the binding view in
//! a browser.

pub mod allocator;
pub mod batch;
pub mod bindings;
pub mod config;
pub mod delivery;
pub mod forward;
pub mod index;
pub mod join;
pub mod join_loop;
pub mod kafka;
pub mod materializer;
pub mod metrics;
pub mod output;
pub mod samples_source;
pub mod server;
pub mod snapshot;
pub mod tail;
pub mod topology_feed;
pub mod view;
