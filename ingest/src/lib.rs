//! The ingest service: Prometheus remote_write (1.0 and 2.0) over HTTP in,
//! one Kafka record per request and partition out, acknowledged only once
//! Kafka holds it.
//!
//! A write flows through the modules in this order:
//! [`auth`] → [`decode`] → [`validate`] and [`partition`] → [`rate_limit`] → [`publish`],
//! driven by the handler in [`write`], which counts and logs what it refuses
//! through [`refusals`]; [`request`] holds what every endpoint does with a
//! request (authentication, reading the body, its time left, counting it),
//! which the topology intake ([`topology`]) shares; [`routes`] is the route
//! table, served over plain HTTP or, with a certificate, over HTTPS ([`tls`]).

pub mod allocator;
pub mod auth;
pub mod config;
pub mod decode;
pub mod error;
pub mod log_limit;
pub mod metrics;
pub mod partition;
pub mod publish;
pub mod rate_limit;
pub mod refusals;
pub mod request;
pub mod routes;
pub mod server;
pub mod state;
pub mod tls;
pub mod topology;
pub mod validate;
pub mod write;
