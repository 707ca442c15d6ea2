//! `make bench-sustained`: ingest held at a constant rate for a minute, then
//! every acknowledged sample checked in Kafka. A private broker (its own
//! ports and state dir under `target/bench-sustained`) and ingest against
//! it; `BENCH_WARMUP` seconds of unrecorded load, then `loadtest --rate
//! BENCH_RATE --duration BENCH_DURATION --verify` (open loop: latency counts
//! from each request's due time, so falling behind shows as latency). The
//! report (loadtest/README.md) goes to stdout and
//! `target/bench-sustained/report.md`; the loadtest summary is in
//! `runs/run.json`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

use super::{Load, Private, proc_stat, say};
use crate::processes::repository_root;

const NAME: &str = "bench-sustained";
const API_KEY: &str = "bench-sustained-key-0123456789";

/// The settings, each also its `BENCH_*` environment variable.
#[derive(Debug, Args)]
pub struct Options {
    /// Samples per second.
    #[arg(long, env = "BENCH_RATE", default_value_t = 1_000_000)]
    rate: u64,
    /// Seconds of the measured run.
    #[arg(long, env = "BENCH_DURATION", default_value_t = 60)]
    duration: u64,
    /// Seconds of unrecorded load first.
    #[arg(long, env = "BENCH_WARMUP", default_value_t = 10)]
    warmup: u64,
    #[command(flatten)]
    load: Load,
    /// Remote-write protocol: v1 or v2.
    #[arg(long, env = "BENCH_PROTOCOL", default_value = "v1")]
    protocol: String,
    /// Passes over the series in the ring of pre-encoded requests (it repeats
    /// when used up; --verify counts a repeat as a copy, not a duplicate).
    #[arg(long, env = "BENCH_PASSES", default_value_t = 20)]
    passes: u64,
    /// An ingest binary to run instead of this tree's (another revision's build, to compare).
    #[arg(long, env = "BENCH_INGEST")]
    ingest: Option<PathBuf>,
    /// Port of the private broker; the services listen on the first free
    /// ports from this plus 2 up.
    #[arg(long, env = "KAFKA_PORT", default_value_t = 39692)]
    kafka_port: u16,
    /// Port of the private broker's controller.
    #[arg(long, env = "KAFKA_CONTROLLER_PORT", default_value_t = 39693)]
    kafka_controller_port: u16,
    /// Where the release ingest and loadtest are (default: beside this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

/// CPU time over the measured load, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cpu {
    ingest: u64,
    broker: u64,
    generator: u64,
    machine: u64,
}

/// What the report says besides loadtest's summary.
#[derive(Debug, Clone, PartialEq)]
struct Run {
    rate: u64,
    duration: u64,
    stamp: String,
    cpus: usize,
    cpu_model: String,
    load: String,
    series: u64,
    samples_per_request: u64,
    protocol: String,
    connections: u64,
    cpu: Cpu,
    clock_ticks: u64,
    ingest_rss_mib: u64,
    broker_rss_mib: u64,
}

/// Runs the bench; the report is written whatever the verification found.
pub fn run(options: &Options) -> anyhow::Result<bool> {
    let repository = repository_root();
    let work = repository.join("target").join(NAME);
    let runs = work.join("runs");
    if runs.exists() {
        std::fs::remove_dir_all(&runs)?;
    }
    std::fs::create_dir_all(&runs)?;
    let bin_dir = super::bin_dir(&options.bin_dir)?;
    let loadtest = bin_dir.join("loadtest");
    let ingest = options
        .ingest
        .clone()
        .filter(|path| !path.as_os_str().is_empty())
        .unwrap_or_else(|| bin_dir.join("ingest"));
    if !super::is_executable(&ingest) {
        bail!("BENCH_INGEST ({}) is not an executable", ingest.display());
    }
    say(NAME, &format!("ingest: {}", ingest.display()));

    let ports = [options.kafka_port, options.kafka_controller_port];
    let mut private = Private::start(NAME, ports, &work)?;
    let kafka_pid = private.broker.pid()?;
    let brokers = private.broker.bootstrap();
    let stamp = super::stamp()?;
    let topic = format!("bench.samples.{stamp}");

    let (ingest_port, ingest_pid) = private.start_ingest(ingest, &work, API_KEY, &stamp)?;
    let common: Vec<String> = [
        "--url",
        &format!("http://127.0.0.1:{ingest_port}/receiver/prometheus/api/v1/write"),
        "--api-key",
        API_KEY,
        "--protocol",
        &options.protocol,
        "--rate",
        &options.rate.to_string(),
    ]
    .map(str::to_string)
    .into_iter()
    .chain(options.load.args())
    .collect();

    say(
        NAME,
        &format!(
            "warm-up: {} s at {} samples/s (not recorded)",
            options.warmup, options.rate
        ),
    );
    let warmup_log = runs.join("warmup.log");
    let warmup = Command::new(&loadtest)
        .args(&common)
        .args(["--passes", "2", "--duration", &options.warmup.to_string()])
        .args(["--run-id", &format!("warmup-{stamp}")])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&warmup_log)?)
        .status()?;
    if !warmup.success() {
        say(
            NAME,
            &format!(
                "warning: the warm-up's loadtest failed (see {})",
                warmup_log.display()
            ),
        );
    }

    let run_log = runs.join("run.log");
    say(
        NAME,
        &format!(
            "run: {} s at {} samples/s, then --verify (log {})",
            options.duration,
            options.rate,
            run_log.display()
        ),
    );
    let mut generator = Command::new(&loadtest)
        .args(&common)
        .args(["--passes", &options.passes.to_string()])
        .args(["--duration", &options.duration.to_string()])
        .args(["--run-id", &format!("run-{stamp}"), "--verify"])
        .args(["--brokers", &brokers, "--topic", &topic])
        .arg("--json")
        .arg(runs.join("run.json"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&run_log)?)
        .spawn()
        .with_context(|| format!("running {}", loadtest.display()))?;
    // CPU is counted from the end of pre-encoding (loadtest says "pre-encoded")
    // to the end of the load (the duration, plus a second for the last
    // answers), before the generator reads the topic back for --verify.
    while !std::fs::read_to_string(&run_log)
        .unwrap_or_default()
        .contains("pre-encoded")
    {
        if generator.try_wait()?.is_some() {
            bail!(
                "loadtest stopped before its load; see {}",
                run_log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let machine_before = proc_stat::machine_ticks();
    let ingest_before = proc_stat::process_ticks(ingest_pid).unwrap_or(0);
    let kafka_before = proc_stat::process_ticks(kafka_pid).unwrap_or(0);
    let generator_before = proc_stat::process_ticks(generator.id()).unwrap_or(0);
    let (load, _) = proc_stat::load_average();
    std::thread::sleep(Duration::from_secs(options.duration + 1));
    let cpu = Cpu {
        generator: proc_stat::process_ticks(generator.id()).unwrap_or(generator_before)
            - generator_before,
        ingest: proc_stat::process_ticks(ingest_pid).unwrap_or(ingest_before) - ingest_before,
        broker: proc_stat::process_ticks(kafka_pid).unwrap_or(kafka_before) - kafka_before,
        machine: proc_stat::machine_ticks() - machine_before,
    };
    let ingest_rss_mib = proc_stat::peak_rss_mib(ingest_pid).unwrap_or(0);
    let broker_rss_mib = proc_stat::peak_rss_mib(kafka_pid).unwrap_or(0);
    let status = generator.wait()?;
    if !status.success() {
        say(
            NAME,
            &format!(
                "warning: the run's loadtest exited {} (see {})",
                super::shell_exit_code(status),
                run_log.display()
            ),
        );
    }
    let summary: Value = read_json(&runs.join("run.json"))?;
    let run = Run {
        rate: options.rate,
        duration: options.duration,
        stamp,
        cpus: proc_stat::cpus(),
        cpu_model: proc_stat::cpu_model(),
        load,
        series: options.load.series,
        samples_per_request: options.load.samples_per_request,
        protocol: options.protocol.clone(),
        connections: options.load.connections,
        cpu,
        clock_ticks: proc_stat::clock_ticks(),
        ingest_rss_mib,
        broker_rss_mib,
    };
    let report = report(&run, &summary);
    print!("{report}");
    std::fs::write(work.join("report.md"), &report)?;
    Ok(true)
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// A JSON value as jq's raw output prints it (`?` when absent): a whole
/// number without a fraction, whether the file wrote `12` or `12.0`.
fn jq(summary: &Value, pointer: &str) -> String {
    match summary.pointer(pointer) {
        None | Some(Value::Null) => "?".to_string(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number))
            if number
                .as_f64()
                .is_some_and(|x| x.fract() == 0.0 && x.abs() < 1e15) =>
        {
            format!("{}", number.as_f64().unwrap_or_default() as i64)
        }
        Some(value) => value.to_string(),
    }
}

fn report(run: &Run, summary: &Value) -> String {
    let seconds = |ticks: i64| format!("{:.1}", ticks as f64 / run.clock_ticks as f64);
    let share = |ticks: i64| {
        format!(
            "{:.0} %",
            100.0 * ticks as f64 / run.clock_ticks as f64 / (run.duration + 1) as f64
        )
    };
    let cpu = run.cpu;
    let others = cpu.machine as i64 - cpu.ingest as i64 - cpu.broker as i64 - cpu.generator as i64;
    let rate = summary
        .pointer("/totals/samples_per_second")
        .and_then(Value::as_f64)
        .map_or_else(|| "?".to_string(), |rate| format!("{}", rate.floor()));
    let totals = |name: &str| jq(summary, &format!("/totals/{name}"));
    let mut out = format!(
        "## bench-sustained: {} samples/s for {} s ({})\n\n",
        run.rate, run.duration, run.stamp
    );
    out.push_str(&format!(
        "Machine: {} cores ({}), load average {} when the load began.\n",
        run.cpus, run.cpu_model, run.load
    ));
    out.push_str(&format!(
        "Load: {} series, {} samples per request, remote-write {}, {} connections, open loop.\n\n",
        run.series, run.samples_per_request, run.protocol, run.connections
    ));
    out.push_str("| acknowledged samples/s | p50 / p99 / p99.9 / max ms | answers by status | failed / unsent requests | sent / acknowledged / found / missing / duplicated |\n");
    out.push_str("|---|---|---|---|---|\n");
    out.push_str(&format!(
        "| {rate} | {} / {} / {} / {} | {} | {} / {} | {} / {} / {} / {} / {} |\n\n",
        totals("latency_ms/p50"),
        totals("latency_ms/p99"),
        totals("latency_ms/p999"),
        totals("latency_ms/max"),
        totals("responses_by_status"),
        totals("requests_failed"),
        totals("requests_unsent"),
        totals("samples_sent"),
        totals("samples_acknowledged"),
        jq(summary, "/verify/counts/found"),
        jq(summary, "/verify/counts/missing"),
        jq(summary, "/verify/counts/duplicated"),
    ));
    out.push_str("| CPU over the run | seconds | % of one core |\n|---|---|---|\n");
    for (name, ticks) in [
        ("ingest", cpu.ingest as i64),
        ("broker", cpu.broker as i64),
        ("generator", cpu.generator as i64),
        ("everything else", others),
    ] {
        out.push_str(&format!(
            "| {name} | {} | {} |\n",
            seconds(ticks),
            share(ticks)
        ));
    }
    out.push_str(&format!(
        "\nPeak RSS: ingest {} MiB, broker {} MiB.\n",
        run.ingest_rss_mib, run.broker_rss_mib
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_has_the_summary_and_the_cpu_of_each_process() {
        let summary: Value = serde_json::from_str(
            r#"{"totals": {"samples_per_second": 999123.7, "latency_ms": {"p50": 1.5, "p99": 12.0, "p999": 20.25, "max": 31},
                "responses_by_status": {"204": 500, "503": 2}, "requests_failed": 2, "requests_unsent": 0,
                "samples_sent": 1000000, "samples_acknowledged": 996000},
               "verify": {"counts": {"found": 996000, "missing": 0, "duplicated": 0}}}"#,
        )
        .unwrap();
        let run = Run {
            rate: 1_000_000,
            duration: 9,
            stamp: "20261204180000".into(),
            cpus: 2,
            cpu_model: "Some CPU".into(),
            load: "1.25".into(),
            series: 200_000,
            samples_per_request: 2000,
            protocol: "v1".into(),
            connections: 16,
            cpu: Cpu {
                ingest: 500,
                broker: 300,
                generator: 100,
                machine: 850,
            },
            clock_ticks: 100,
            ingest_rss_mib: 210,
            broker_rss_mib: 900,
        };
        assert_eq!(
            report(&run, &summary),
            "## bench-sustained: 1000000 samples/s for 9 s (20261204180000)\n\n\
             Machine: 2 cores (Some CPU), load average 1.25 when the load began.\n\
             Load: 200000 series, 2000 samples per request, remote-write v1, 16 connections, open loop.\n\n\
             | acknowledged samples/s | p50 / p99 / p99.9 / max ms | answers by status | failed / unsent requests | sent / acknowledged / found / missing / duplicated |\n\
             |---|---|---|---|---|\n\
             | 999123 | 1.5 / 12 / 20.25 / 31 | {\"204\":500,\"503\":2} | 2 / 0 | 1000000 / 996000 / 996000 / 0 / 0 |\n\n\
             | CPU over the run | seconds | % of one core |\n|---|---|---|\n\
             | ingest | 5.0 | 50 % |\n\
             | broker | 3.0 | 30 % |\n\
             | generator | 1.0 | 10 % |\n\
             | everything else | -0.5 | -5 % |\n\n\
             Peak RSS: ingest 210 MiB, broker 900 MiB.\n"
        );
        let unverified: Value = serde_json::from_str(r#"{"totals": {}}"#).unwrap();
        assert!(report(&run, &unverified).contains("| ? | ? / ? / ? / ? |"));
    }
}
