//! `bench`: the benchmarks on a private broker that `make bench-*` and
//! `make k6` run (loadtest/README.md, loadtest/k6/README.md); each setting
//! is also its `BENCH_*` environment variable.

use std::process::ExitCode;

use chaos::bench;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "bench", version)]
struct Options {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// The correlator's Kafka-to-Kafka throughput on a backlog (`make bench-correlator`).
    Correlator(bench::correlator::Options),
    /// ingest held at a rate, then every acknowledged sample checked in Kafka (`make bench-sustained`).
    Sustained(bench::sustained::Options),
    /// The whole pipeline held at a rate, every sample verified out of the join (`make bench-pipeline`).
    Pipeline(bench::pipeline::Options),
    /// ingest against Prometheus' own remote-write receiver, same load in one run (`make bench-vs-prometheus`).
    VsPrometheus(bench::vs_prometheus::Options),
    /// A k6 scenario of loadtest/k6 against ingest (`make k6`); the exit code is k6's.
    K6(bench::k6::Options),
}

/// A bench's verdict as an exit code: 0 when every run is a valid measurement.
fn verdict(valid: anyhow::Result<bool>) -> anyhow::Result<u8> {
    valid.map(|valid| if valid { 0 } else { 1 })
}

fn main() -> ExitCode {
    let options = Options::parse();
    bench::interrupt::stop_brokers_on_signal();
    let result = match options.bench {
        Bench::Correlator(options) => verdict(bench::correlator::run(&options)),
        Bench::Sustained(options) => verdict(bench::sustained::run(&options)),
        Bench::Pipeline(options) => verdict(bench::pipeline::run(&options)),
        Bench::VsPrometheus(options) => verdict(bench::vs_prometheus::run(&options)),
        Bench::K6(options) => bench::k6::run(&options).map(|code| u8::try_from(code).unwrap_or(1)),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
