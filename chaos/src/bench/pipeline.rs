//! `make bench-pipeline`: the whole pipeline on this machine, loadtest →
//! ingest → Kafka → correlator (built-in Kubernetes rules) → Kafka, held at a
//! rate, then every acknowledged sample checked out of the join. On a private
//! broker (state under `target/bench-pipeline`, deleted at the end): the
//! topology of the synthetic series is materialized first; then, for each
//! rate of `BENCH_RATES` in turn (highest first), with topics and a consumer
//! group of its own, `BENCH_WARMUP` s of unrecorded load and `loadtest --rate
//! R --duration BENCH_DURATION --verify --verify-outputs`. A rate is
//! *sustained* when, once the load stops, the correlator has consumed
//! everything ingest wrote within `BENCH_CATCH_UP_LIMIT` s; the bench stops at
//! the first one. The report (loadtest/README.md) goes to stdout and
//! `target/bench-pipeline/report.md`.

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

use super::metrics::{self, correlator_counters};
use super::services::{Services, locked_work_dir};
use super::{Private, proc_stat, say, strings};
use crate::processes::repository_root;

const NAME: &str = "bench-pipeline";

/// The settings, each also its `BENCH_*` environment variable.
#[derive(Debug, Args)]
pub struct Options {
    /// Samples/s to try, highest first.
    #[arg(long, env = "BENCH_RATES", default_value = "400000 200000 100000")]
    rates: String,
    /// Seconds of the measured load.
    #[arg(long, env = "BENCH_DURATION", default_value_t = 60)]
    duration: u64,
    /// Seconds of unrecorded load first.
    #[arg(long, env = "BENCH_WARMUP", default_value_t = 10)]
    warmup: u64,
    /// Seconds after the load within which the correlator must have consumed
    /// everything for the rate to count as sustained.
    #[arg(long, env = "BENCH_CATCH_UP_LIMIT", default_value_t = 5.0)]
    catch_up_limit: f64,
    /// Synthetic series (and their topology).
    #[arg(long, env = "BENCH_SERIES", default_value_t = 100_000)]
    series: u64,
    /// HTTP connections.
    #[arg(long, env = "BENCH_CONNECTIONS", default_value_t = 16)]
    connections: u64,
    /// Samples per request.
    #[arg(long, env = "BENCH_SAMPLES_PER_REQUEST", default_value_t = 2000)]
    samples_per_request: u64,
    /// Partitions of every topic.
    #[arg(long, env = "BENCH_PARTITIONS", default_value_t = 8)]
    partitions: u32,
    /// Port of the private broker; the services listen on the first free
    /// ports from this plus 2 up.
    #[arg(long, env = "KAFKA_PORT", default_value_t = 39992)]
    kafka_port: u16,
    /// Port of the private broker's controller.
    #[arg(long, env = "KAFKA_CONTROLLER_PORT", default_value_t = 39993)]
    kafka_controller_port: u16,
    /// Where the release ingest, correlator and loadtest are (default: beside this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

/// The end-to-end lag histogram's cumulative buckets: upper bound (as
/// written, "+Inf" last) and count.
type Buckets = Vec<(String, f64)>;

/// `correlator_end_to_end_lag_seconds_bucket{le="..."}` of an exposition.
fn lag_buckets(text: &str) -> Buckets {
    metrics::samples(text)
        .filter(|sample| sample.name == "correlator_end_to_end_lag_seconds_bucket")
        .filter_map(|sample| {
            let le = sample.labels.strip_prefix("le=\"")?.strip_suffix('"')?;
            Some((le.to_string(), sample.value))
        })
        .collect()
}

/// Quantile `q` of the observations between two readings of the buckets,
/// interpolated linearly within its bucket: "-" without observations, "> B"
/// past the last finite bound B.
fn lag_quantile(before: &[(String, f64)], after: &[(String, f64)], q: f64) -> String {
    let counts: Vec<(&str, f64)> = after
        .iter()
        .map(|(le, count)| {
            let earlier = before
                .iter()
                .find(|(b, _)| b == le)
                .map_or(0.0, |(_, c)| *c);
            (le.as_str(), count - earlier)
        })
        .collect();
    let total = counts.last().map_or(0.0, |(_, count)| *count);
    if total <= 0.0 {
        return "-".to_string();
    }
    let target = q * total;
    let (mut low, mut below) = (0.0, 0.0);
    for (index, (le, count)) in counts.iter().enumerate() {
        if *count >= target {
            if *le == "+Inf" {
                let previous = index.checked_sub(1).map_or("", |i| counts[i].0);
                return format!("> {previous}");
            }
            let inside = count - below;
            let share = if inside > 0.0 {
                (target - below) / inside
            } else {
                1.0
            };
            let upper: f64 = le.parse().unwrap_or(low);
            return format!("{:.3}", low + share * (upper - low));
        }
        low = le.parse().unwrap_or(low);
        below = *count;
    }
    String::new()
}

/// CPU time over the load, in clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Cpu {
    ingest: u64,
    correlator: u64,
    broker: u64,
    generator: u64,
    machine: u64,
}

/// What one rate measured besides loadtest's summary.
#[derive(Debug, Clone, PartialEq)]
struct RateRun {
    rate: u64,
    summary: Value,
    behind_records: i64,
    catch_up_seconds: f64,
    sustained: bool,
    lag_p50: String,
    lag_p99: String,
    cpu: Cpu,
    ingest_rss_mib: u64,
    correlator_rss_mib: u64,
    load: String,
    exit_code: i32,
}

impl RateRun {
    fn number(&self, pointer: &str) -> Option<f64> {
        self.summary.pointer(pointer).and_then(Value::as_f64)
    }

    /// A run that lost an acknowledged sample, or a sample out of the join, or
    /// whose loadtest failed.
    fn failed(&self) -> bool {
        self.number("/verify/counts/missing") != Some(0.0)
            || self.number("/verify/outputs/counts/missing") != Some(0.0)
            || self.exit_code != 0
    }
}

/// Runs the bench; `Ok(false)` when a run lost samples or its loadtest failed.
pub fn run(options: &Options) -> anyhow::Result<bool> {
    let rates = options
        .rates
        .split_whitespace()
        .map(|rate| {
            rate.parse::<u64>()
                .with_context(|| format!("BENCH_RATES: {rate} is not a rate"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (work, _lock) = locked_work_dir(NAME)?;
    let bin_dir = super::bin_dir(&options.bin_dir)?;
    let revision = super::code_revision(&repository_root());

    let ports = [options.kafka_port, options.kafka_controller_port];
    let mut private = Private::start(NAME, ports, &work)?;
    let bench = Services::new(NAME, &work, &private, options.partitions, &bin_dir)?;

    say(
        NAME,
        &format!(
            "topology: {} series' nodes, pods and containers",
            options.series
        ),
    );
    let (components, _) = bench.materialize_topology(
        &mut private,
        options.series,
        options.samples_per_request,
        false,
    )?;

    let mut runs = Vec::new();
    for (index, &rate) in rates.iter().enumerate() {
        let run = measure_rate(
            &bench,
            options,
            &mut private,
            &format!("run{}", index + 1),
            rate,
        )?;
        let sustained = run.sustained;
        runs.push(run);
        if sustained {
            break;
        }
    }

    let sustained_rate = runs.iter().find(|run| run.sustained).map(|run| run.rate);
    let report = report(
        &Heading {
            stamp: bench.stamp.clone(),
            revision,
            options,
            components,
            sustained_rate,
        },
        &runs,
    );
    print!("{report}");
    std::fs::write(work.join("report.md"), &report)?;
    drop(private);
    if runs.iter().any(RateRun::failed) {
        say(
            NAME,
            &format!(
                "a run lost samples or its loadtest failed; see {}",
                work.join("runs").display()
            ),
        );
        return Ok(false);
    }
    say(
        NAME,
        &format!("report: {}", work.join("report.md").display()),
    );
    Ok(true)
}

fn lag_buckets_of(port: u16) -> Buckets {
    metrics::fetch(port)
        .map(|text| lag_buckets(&text))
        .unwrap_or_default()
}

fn measure_rate(
    bench: &Services,
    options: &Options,
    private: &mut Private,
    name: &str,
    rate: u64,
) -> anyhow::Result<RateRun> {
    let samples_topic = bench.topic(&format!("{name}.samples"));
    let raw_topic = bench.topic(&format!("{name}.topology-raw"));
    say(
        NAME,
        &format!(
            "{name}: {rate} samples/s for {} s (after {} s of warm-up)",
            options.duration, options.warmup
        ),
    );
    bench.start_pair(
        private,
        name,
        &samples_topic,
        &raw_topic,
        &format!("ingest-{name}.log"),
    )?;
    let pid = |index: usize| private.services[index].pid().expect("started");
    let (ingest_pid, correlator_pid) = (pid(0), pid(1));
    let common = [
        strings(&["--connections"]),
        vec![options.connections.to_string(), "--series".into()],
        vec![options.series.to_string(), "--samples-per-request".into()],
        vec![options.samples_per_request.to_string()],
        strings(&["--cluster-name", &bench.cluster, "--rate"]),
        vec![rate.to_string()],
    ]
    .concat();
    let warmup = [
        common.clone(),
        strings(&["--passes", "2", "--duration"]),
        vec![options.warmup.to_string(), "--run-id".into()],
        vec![format!("{}-{name}-warmup", bench.prefix)],
    ]
    .concat();
    if bench.run_loadtest(&format!("{name}-warmup"), &warmup)? != 0 {
        say(NAME, "warning: the warm-up's loadtest failed");
    }
    let log = bench.work.join(format!("runs/{name}.log"));
    let measured = [
        common,
        strings(&["--passes", "100", "--duration"]),
        vec![options.duration.to_string(), "--run-id".into()],
        vec![format!("{}-{name}", bench.prefix)],
        strings(&["--verify", "--verify-outputs", "--brokers"]),
        vec![
            bench.brokers.clone(),
            "--topic".into(),
            samples_topic.clone(),
        ],
        vec![
            "--correlator-group".into(),
            format!("{}-{name}", bench.prefix),
        ],
        vec![
            "--bound-topic".into(),
            bench.topic(&format!("{name}.bound")),
        ],
        vec![
            "--unbound-topic".into(),
            bench.topic(&format!("{name}.unbound")),
        ],
        strings(&["--settle-timeout", "900", "--json"]),
        vec![
            bench
                .work
                .join(format!("runs/{name}.json"))
                .display()
                .to_string(),
        ],
    ]
    .concat();
    // Killed when dropped, on an early return.
    let mut generator = Generator(bench.loadtest(name, &measured)?.spawn()?);
    // CPU is counted from the end of pre-encoding to the end of the load.
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("pre-encoded")
    {
        if generator.0.try_wait()?.is_some() {
            bail!("loadtest stopped before its load; see {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let lag_before = lag_buckets_of(bench.correlator_port);
    let (load, _) = proc_stat::load_average();
    let machine_before = proc_stat::machine_ticks();
    let ticks = |pid| proc_stat::process_ticks(pid).unwrap_or(0);
    let before = Cpu {
        ingest: ticks(ingest_pid),
        correlator: ticks(correlator_pid),
        broker: ticks(bench.kafka_pid),
        generator: ticks(generator.0.id()),
        machine: machine_before,
    };
    std::thread::sleep(Duration::from_secs(options.duration + 1));
    let cpu = Cpu {
        ingest: ticks(ingest_pid).saturating_sub(before.ingest),
        correlator: ticks(correlator_pid).saturating_sub(before.correlator),
        broker: ticks(bench.kafka_pid).saturating_sub(before.broker),
        generator: proc_stat::process_ticks(generator.0.id())
            .unwrap_or(before.generator)
            .saturating_sub(before.generator),
        machine: proc_stat::machine_ticks() - before.machine,
    };
    // Catch-up: until the correlator has consumed every record ingest wrote.
    let load_end = Instant::now();
    let end = |topic: &str| {
        bench
            .offsets
            .end(topic, bench.partitions)
            .with_context(|| format!("cannot read the end offsets of {topic}"))
    };
    let mut written = end(&samples_topic)?;
    let mut consumed = correlator_counters(bench.correlator_port).consumed;
    let behind_records = written as i64 - consumed as i64;
    while consumed < written {
        if !private.services[1].is_running() {
            bail!(
                "the correlator exited; see {}",
                private.services[1].log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
        consumed = correlator_counters(bench.correlator_port).consumed;
        written = end(&samples_topic)?;
    }
    let catch_up_seconds = (load_end.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    let exit_code = super::shell_exit_code(generator.0.wait()?);
    let lag_after = lag_buckets_of(bench.correlator_port);
    let ingest_rss_mib = proc_stat::peak_rss_mib(ingest_pid).unwrap_or(0);
    let correlator_rss_mib = proc_stat::peak_rss_mib(correlator_pid).unwrap_or(0);
    // The correlator stops first, as it consumes what ingest writes.
    private.services.reverse();
    private.stop_services();
    let json = bench.work.join(format!("runs/{name}.json"));
    let summary: Value = std::fs::read_to_string(&json)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .with_context(|| format!("loadtest wrote no summary; see {}", log.display()))?;
    let run = RateRun {
        rate,
        summary,
        behind_records,
        catch_up_seconds,
        sustained: catch_up_seconds <= options.catch_up_limit,
        lag_p50: lag_quantile(&lag_before, &lag_after, 0.5),
        lag_p99: lag_quantile(&lag_before, &lag_after, 0.99),
        cpu,
        ingest_rss_mib,
        correlator_rss_mib,
        load,
        exit_code,
    };
    say(NAME, &format!("{name}: {}", rate_row(&run).trim_end()));
    Ok(run)
}

/// The generator of a measured run, killed if the bench stops early.
struct Generator(Child);

impl Drop for Generator {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// What the report's heading says.
struct Heading<'a> {
    stamp: String,
    revision: String,
    options: &'a Options,
    components: u64,
    sustained_rate: Option<u64>,
}

/// A value of loadtest's summary as jq's @tsv writes it: empty when absent.
fn tsv(summary: &Value, pointer: &str) -> String {
    match summary.pointer(pointer) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) => match number.as_f64() {
            Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{}", x as i64),
            _ => number.to_string(),
        },
        Some(value) => value.to_string(),
    }
}

fn rate_row(run: &RateRun) -> String {
    let s = &run.summary;
    let field = |pointer: &str| tsv(s, pointer);
    format!(
        "| {} | {} | {} / {} | {} | {} / {} | {} / {} / {} / {} / {} | {} | {:.1} | {} | {} / {} |\n",
        run.rate,
        run.number("/totals/samples_per_second")
            .map_or(0, |rate| rate.floor() as i64),
        field("/totals/latency_ms/p50"),
        field("/totals/latency_ms/p99"),
        field("/totals/responses_by_status"),
        field("/verify/counts/missing"),
        field("/verify/counts/duplicated"),
        field("/verify/outputs/counts/expected"),
        field("/verify/outputs/counts/bound"),
        field("/verify/outputs/counts/unbound"),
        field("/verify/outputs/counts/missing"),
        field("/verify/outputs/counts/duplicated"),
        run.behind_records,
        run.catch_up_seconds,
        if run.sustained { "yes" } else { "no" },
        run.lag_p50,
        run.lag_p99,
    )
}

fn report(heading: &Heading, runs: &[RateRun]) -> String {
    let o = heading.options;
    let mut out = format!("## bench-pipeline ({})\n\n", heading.stamp);
    out.push_str(&format!(
        "loadtest → ingest → Kafka → correlator (built-in Kubernetes rules: container, pod, node) → Kafka, all on one machine: \
         {} CPUs ({}), {} GiB; code {}. \
         Load: {} series of 10 labels, {} samples per request, remote-write 1.0, {} connections, open loop, {} s after {} s of warm-up; \
         {} components; {} partitions. Sustained: the correlator had consumed everything within {} s of the end of the load. {}\n\n",
        proc_stat::cpus(),
        proc_stat::cpu_model(),
        proc_stat::memory_gib(),
        heading.revision,
        o.series,
        o.samples_per_request,
        o.connections,
        o.duration,
        o.warmup,
        heading.components,
        o.partitions,
        o.catch_up_limit,
        heading
            .sustained_rate
            .map(|rate| format!("Highest sustained rate tried: {rate} samples/s."))
            .unwrap_or_default(),
    ));
    out.push_str("| rate | acknowledged samples/s | p50 / p99 ms | answers | missing / duplicated in metrics.samples | out of the join: expected / bound / unbound / missing / repeated | records behind at the end of the load | catch-up s | sustained | end-to-end lag p50 / p99 s |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for run in runs {
        out.push_str(&rate_row(run));
    }
    out.push('\n');
    out.push_str("| rate | CPU s over the load: ingest | correlator | broker | generator | others | peak RSS MiB: ingest / correlator | load avg |\n");
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    let hz = proc_stat::clock_ticks() as f64;
    for run in runs {
        out.push_str(&cpu_row(run, hz));
    }
    out
}

fn cpu_row(run: &RateRun, hz: f64) -> String {
    let c = run.cpu;
    let others = c.machine as f64
        - c.ingest as f64
        - c.correlator as f64
        - c.broker as f64
        - c.generator as f64;
    format!(
        "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} / {} | {} |\n",
        run.rate,
        c.ingest as f64 / hz,
        c.correlator as f64 / hz,
        c.broker as f64 / hz,
        c.generator as f64 / hz,
        others.max(0.0) / hz,
        run.ingest_rss_mib,
        run.correlator_rss_mib,
        run.load,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buckets(pairs: &[(&str, f64)]) -> Buckets {
        pairs.iter().map(|(le, c)| (le.to_string(), *c)).collect()
    }

    #[test]
    fn lag_buckets_are_read_from_the_exposition() {
        let text = "# TYPE correlator_end_to_end_lag_seconds histogram\n\
            correlator_end_to_end_lag_seconds_bucket{le=\"0.1\"} 3\n\
            correlator_end_to_end_lag_seconds_bucket{le=\"+Inf\"} 5\n\
            correlator_end_to_end_lag_seconds_sum 1.5\n";
        assert_eq!(lag_buckets(text), buckets(&[("0.1", 3.0), ("+Inf", 5.0)]));
    }

    #[test]
    fn lag_quantiles_interpolate_within_the_bucket_of_the_run() {
        let before = buckets(&[("0.1", 10.0), ("0.5", 10.0), ("1", 10.0), ("+Inf", 10.0)]);
        // 100 observations in the run: 20 up to 0.1 s, 60 in (0.1, 0.5], 20 in (0.5, 1].
        let after = buckets(&[("0.1", 30.0), ("0.5", 90.0), ("1", 110.0), ("+Inf", 110.0)]);
        assert_eq!(lag_quantile(&before, &after, 0.5), "0.300");
        assert_eq!(lag_quantile(&before, &after, 0.99), "0.975");
        assert_eq!(lag_quantile(&after, &after, 0.5), "-");
        let late = buckets(&[("0.1", 0.0), ("1", 1.0), ("+Inf", 100.0)]);
        assert_eq!(lag_quantile(&[], &late, 0.99), "> 1");
    }

    #[test]
    fn a_row_per_rate_and_its_cpu() {
        let summary: Value = serde_json::from_str(
            r#"{"totals": {"samples_per_second": 199876.4, "latency_ms": {"p50": 2.5, "p99": 40.0},
                "responses_by_status": {"204": 6000}},
               "verify": {"counts": {"missing": 0, "duplicated": 0},
                "outputs": {"counts": {"expected": 12000000, "bound": 12000000, "unbound": 0, "missing": 0, "duplicated": 3}}}}"#,
        )
        .unwrap();
        let run = RateRun {
            rate: 200_000,
            summary,
            behind_records: 12,
            catch_up_seconds: 1.25,
            sustained: true,
            lag_p50: "0.300".into(),
            lag_p99: "0.975".into(),
            cpu: Cpu {
                ingest: 1000,
                correlator: 2000,
                broker: 1500,
                generator: 500,
                machine: 5200,
            },
            ingest_rss_mib: 200,
            correlator_rss_mib: 900,
            load: "3.10".into(),
            exit_code: 0,
        };
        assert_eq!(
            rate_row(&run),
            "| 200000 | 199876 | 2.5 / 40 | {\"204\":6000} | 0 / 0 | 12000000 / 12000000 / 0 / 0 / 3 | 12 | 1.2 | yes | 0.300 / 0.975 |\n"
        );
        assert_eq!(
            cpu_row(&run, 100.0),
            "| 200000 | 10.0 | 20.0 | 15.0 | 5.0 | 2.0 | 200 / 900 | 3.10 |\n"
        );
        assert!(!run.failed());
        let mut lost = run.clone();
        lost.summary["verify"]["outputs"]["counts"]["missing"] = 1.into();
        assert!(lost.failed());
    }
}
