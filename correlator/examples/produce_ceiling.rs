//! The Kafka write ceiling for join outputs on this machine: bound records of
//! the join's shape (remote-write 2.0 requests of `CEILING_SERIES_PER_RECORD`
//! series of 10 labels, the component's 3 and one sample each, keys
//! `tenant/<pod URN>` over a few thousand pods, the bound headers) produced through the join's own producer path
//! (`delivery::send_outputs`, in batches as one consumed record gives, as many
//! batches in flight as the join allows) with no consuming and no join work.
//! `make bench-correlator` runs it with `BENCH_CONFIGS` entry `p` and reports
//! the correlator's rate as a share of it.
//!
//! ```text
//! CEILING_RECORDS=7000000 KAFKA_BROKERS=127.0.0.1:9092 TOPIC_BOUND=ceiling.bound \
//!     cargo run --release -p correlator --example produce_ceiling
//! ```
//!
//! Settings as the correlator's (environment, `--config`); besides them
//! `CEILING_RECORDS` [1000000], `CEILING_BATCH` records per batch [250],
//! `CEILING_SERIES_PER_RECORD` [1],
//! `CEILING_CLOCK_TICKS` (`getconf CLK_TCK`) [100]. Prints one line:
//! `records N seconds S records_per_second R cpu_seconds C`, after every
//! record is acknowledged.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use correlator::delivery::{Acked, QueueFullSeconds, output_producer, send_outputs};
use correlator::join::{ComponentHeaders, Destination, Output};
use proto::{Message, v2};
use rdkafka::producer::Producer;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// As the join loop's bound on unacknowledged consumed records.
const MAX_IN_FLIGHT: usize = 10_000;
/// Distinct series (and payloads) cycled through.
const SERIES: usize = 10_000;
const PODS: usize = 3_000;

fn env_number(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .with_context(|| format!("{name} must be a number, not {value:?}")),
        Err(_) => Ok(default),
    }
}

/// One bound record of `series` series starting at `index`, as the join writes it.
fn bound_output(tenant: &Arc<str>, index: usize, series: usize) -> Output {
    let pod = index % PODS;
    let external_id = format!(
        "urn:kubernetes:/ceiling-cluster:ns-{}:pod/pod-{pod}",
        pod % 20
    );
    let mut symbols: Vec<String> = vec![String::new()];
    let mut symbol = |text: String| -> u32 {
        match symbols.iter().position(|s| *s == text) {
            Some(found) => found as u32,
            None => {
                symbols.push(text);
                symbols.len() as u32 - 1
            }
        }
    };
    let mut timeseries = Vec::with_capacity(series);
    for offset in 0..series {
        let index = index + offset;
        let labels = [
            ("__name__", format!("metric_{}", index / PODS)),
            ("cluster_name", "ceiling-cluster".into()),
            ("component_external_id", external_id.clone()),
            ("component_name", format!("pod-{pod}")),
            ("component_type", "pod".into()),
            ("container", format!("container-{}", index % 3)),
            ("instance", format!("10.0.{}.{}:9100", pod / 250, pod % 250)),
            ("job", "kubernetes-pods".into()),
            ("namespace", format!("ns-{}", pod % 20)),
            ("node", format!("node-{}", pod % 50)),
            ("pod", format!("pod-{pod}")),
            ("service", format!("service-{}", pod % 100)),
            ("zone", format!("zone-{}", pod % 3)),
        ];
        let labels_refs = labels
            .into_iter()
            .flat_map(|(name, value)| [symbol(name.to_string()), symbol(value)])
            .collect();
        timeseries.push(v2::TimeSeries {
            labels_refs,
            samples: vec![v2::Sample {
                value: index as f64 * 0.5,
                timestamp: 1_764_633_600_000 + index as i64,
                start_timestamp: 0,
            }],
            ..Default::default()
        });
    }
    let request = v2::Request {
        symbols,
        timeseries,
    };
    Output {
        destination: Destination::Bound,
        tenant: tenant.clone(),
        key: format!("{tenant}/{external_id}").into(),
        payload: request.encode_to_vec(),
        points: series,
        series,
        reason: None,
        component: Some(ComponentHeaders {
            external_id: external_id.into(),
            type_name: "pod".into(),
            rule: "k8s-pod".into(),
        }),
        origins: Vec::new(),
    }
}

fn cpu_seconds(clock_ticks: usize) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name (which is in parentheses): utime is the 12th, stime the 13th.
    let after_name = stat.rsplit_once(')').context("/proc/self/stat")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(ticks as f64 / clock_ticks as f64)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    correlator::allocator::keep_freed_memory_longer();
    let (_, settings) = correlator::config::load()?;
    let records = env_number("CEILING_RECORDS", 1_000_000)?;
    let batch = env_number("CEILING_BATCH", 250)?.max(1);
    let clock_ticks = env_number("CEILING_CLOCK_TICKS", 100)?;
    if settings.create_topics {
        correlator::server::create_missing_topics(&settings).await?;
    }
    let tenant: Arc<str> = Arc::from("ceiling");
    let series_per_record = env_number("CEILING_SERIES_PER_RECORD", 1)?.max(1);
    let outputs: Vec<Output> = (0..SERIES)
        .map(|i| bound_output(&tenant, i, series_per_record))
        .collect();
    let producer = output_producer(
        &correlator::kafka::output_producer_config(&settings),
        &settings.topics,
    )?;
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let queue_full = QueueFullSeconds::default();

    let cpu_before = cpu_seconds(clock_ticks)?;
    let started = Instant::now();
    let mut in_flight: VecDeque<Acked> = VecDeque::new();
    let mut sent = 0;
    while sent < records {
        let count = batch.min(records - sent);
        // Copies, as the join hands over buffers of its own.
        let chunk: Vec<Output> = (sent..sent + count)
            .map(|i| outputs[i % SERIES].clone())
            .collect();
        in_flight
            .push_back(send_outputs(&producer, &settings, chunk, &shutdown, &queue_full).await);
        sent += count;
        if in_flight.len() >= MAX_IN_FLIGHT {
            in_flight.pop_front().expect("in flight").await?;
        }
    }
    for acked in in_flight {
        acked.await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(clock_ticks)? - cpu_before;
    producer.flush(std::time::Duration::from_secs(10))?;
    println!(
        "records {records} seconds {seconds:.3} records_per_second {:.0} cpu_seconds {cpu:.2}",
        records as f64 / seconds
    );
    Ok(())
}
