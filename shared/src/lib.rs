//! What both services share and the wire formats do not hold: how a Kafka
//! client is configured (brokers, a client's defaults, then the operator's
//! `[kafka.properties]`), how topics are created, the consumer helpers
//! (rebalance commits, offset storing), logging, the `/metrics` text, and
//! reading and layering the settings.
//!
//! A crate of its own rather than a part of `proto`: this is I/O (rdkafka,
//! tracing, files), and `proto` stays pure so that the fuzz targets, the load
//! generator and the seed generator build it without librdkafka. The record
//! keys and headers, pure contract, are in `proto::keys`. Nor a part of
//! ingest: the correlator would link the HTTP receiver to consume Kafka.

pub mod config;
pub mod kafka;
pub mod logging;
pub mod metrics;
pub mod settings;
