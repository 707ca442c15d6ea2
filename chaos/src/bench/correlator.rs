//! `make bench-correlator`: the correlator's Kafka-to-Kafka throughput,
//! measured on a backlog so that the correlator has the machine (and the
//! broker) to itself. On a private broker (its own ports and state dir under
//! `target/bench-correlator`, deleted again at the end):
//!
//! 1. Topology. An ingest (whose samples go to a throwaway topic) and a setup
//!    correlator; `loadtest --topology` posts the nodes, pods and containers
//!    of the synthetic series, and the bench waits until the setup
//!    correlator's join index holds all of them, i.e. until the materializer
//!    has written them to the compacted components topic. Both stop.
//! 2. Backlog. A fresh ingest writes `loadtest --max` into the backlog topic,
//!    no correlator running; `--verify` reads it back, so the number of
//!    samples in the topic is known exactly. Ingest stops.
//! 3. Measured runs, one per entry of `BENCH_CONFIGS`, each a fresh
//!    correlator with a fresh consumer group (so it reads the backlog from the
//!    start), output topics of its own, and an empty topology-raw topic of its
//!    own (so its materializer has nothing to redo): `3` the built-in
//!    Kubernetes rules (3 bound records per sample), `1` a `BINDINGS_FILE`
//!    with only the pod rule; `3b` and `1b` the same with the
//!    `BENCH_BASELINE_CORRELATOR` binary; `p` no correlator but the Kafka
//!    write ceiling (the `produce_ceiling` example). The clock starts when the
//!    correlator is ready and stops when its /metrics say every record of the
//!    backlog was consumed and every sample bound (or unbound); then the bench
//!    waits until the output topics hold every record produced, stops the
//!    correlator (SIGTERM), and starts it once more on the same group to check
//!    that it committed past the end (it must consume nothing).
//!
//! The report (loadtest/README.md) goes to stdout and
//! `target/bench-correlator/report.md`; the run fails when a run did not
//! finish, left samples unbound, bound other than samples × bindings, or had
//! not committed past the end.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

use super::metrics::{CorrelatorCounters, correlator_counters};
use super::proc_stat::{self, ThreadTicks};
use super::services::{Services, locked_work_dir};
use super::{Private, say, strings};
use crate::processes::repository_root;

const NAME: &str = "bench-correlator";
/// Only the pod rule of the built-in Kubernetes rules: one binding per sample.
const POD_RULE: &str = r#"[[rules]]
name = "k8s-pod"
template = "urn:kubernetes:/${cluster_name|kube_cluster_name|k8s_cluster_name}:${namespace|kube_namespace|k8s_namespace_name}:pod/${pod|pod_name|kube_pod_name|k8s_pod_name}"
"#;

/// The settings, each also its `BENCH_*` environment variable.
#[derive(Debug, Args)]
pub struct Options {
    /// Synthetic series (loadtest --series).
    #[arg(long, env = "BENCH_SERIES", default_value_t = 100_000)]
    series: u64,
    /// Seconds of `loadtest --max` filling the backlog.
    #[arg(long, env = "BENCH_SECONDS", default_value_t = 10)]
    seconds: u64,
    /// loadtest --passes: the ring of the fill, in passes of 15 s of samples time.
    #[arg(long, env = "BENCH_PASSES", default_value_t = 100)]
    passes: u64,
    /// loadtest --connections for the fill.
    #[arg(long, env = "BENCH_CONNECTIONS", default_value_t = 16)]
    connections: u64,
    /// loadtest --samples-per-request.
    #[arg(long, env = "BENCH_SAMPLES_PER_REQUEST", default_value_t = 2000)]
    samples_per_request: u64,
    /// Measured runs, in order: 3 (default rules), 1 (pod rule), 3b, 1b (the
    /// same with the baseline binary), p (the Kafka write ceiling).
    #[arg(long, env = "BENCH_CONFIGS", default_value = "3 1")]
    configs: String,
    /// A correlator binary to compare with (another build).
    #[arg(long, env = "BENCH_BASELINE_CORRELATOR")]
    baseline_correlator: Option<String>,
    /// One --config TOML file per BENCH_CONFIGS entry, or "-" for none.
    #[arg(long, env = "BENCH_RUN_CONFIGS")]
    run_configs: Option<String>,
    /// Partitions of every topic.
    #[arg(long, env = "BENCH_PARTITIONS", default_value_t = 8)]
    partitions: u32,
    /// Seconds a measured run may take.
    #[arg(long, env = "BENCH_TIMEOUT", default_value_t = 900)]
    timeout: u64,
    /// Restart each run's correlator to check its commits (1) or not (0).
    #[arg(long, env = "BENCH_COMMIT_CHECK", default_value_t = 1)]
    commit_check: u8,
    /// Port of the private broker; the services listen on the first free
    /// ports from this plus 2 up.
    #[arg(long, env = "KAFKA_PORT", default_value_t = 39892)]
    kafka_port: u16,
    /// Port of the private broker's controller.
    #[arg(long, env = "KAFKA_CONTROLLER_PORT", default_value_t = 39893)]
    kafka_controller_port: u16,
    /// Where the release ingest, correlator, loadtest and
    /// examples/produce_ceiling are (default: beside this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

/// One measured run of `BENCH_CONFIGS`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Config {
    /// A correlator with 3 or 1 bindings per sample, this build's or the baseline's.
    Join { bindings: u64, baseline: bool },
    /// The Kafka write ceiling.
    Ceiling,
}

impl Config {
    fn parse(entry: &str) -> anyhow::Result<Config> {
        Ok(match entry {
            "3" | "1" | "3b" | "1b" => Config::Join {
                bindings: if entry.starts_with('3') { 3 } else { 1 },
                baseline: entry.ends_with('b'),
            },
            "p" => Config::Ceiling,
            _ => bail!("BENCH_CONFIGS entries are 1, 3, 1b, 3b or p, not {entry}"),
        })
    }
}

/// What one correlator run measured.
#[derive(Debug, Clone, PartialEq)]
struct JoinRun {
    name: String,
    bindings: u64,
    baseline: bool,
    /// Samples in the backlog, and its records.
    expected: u64,
    records: u64,
    ready_seconds: f64,
    /// From ready to the first record consumed, and from it to done.
    first_seconds: f64,
    done_seconds: f64,
    /// Counters when done.
    counters: CorrelatorCounters,
    written_bound: u64,
    written_unbound: u64,
    correlator_cpu: f64,
    broker_cpu: f64,
    machine_cpu: f64,
    peak_rss_mib: u64,
    load: String,
    done: bool,
    exit_code: i32,
    /// Records the restart consumed; `None` when not checked.
    replayed: Option<i64>,
    warnings: usize,
    /// Samples in the bound records (bound records when the binary does not count them).
    points: u64,
    bound_bytes: u64,
    /// CPU seconds per busy thread, "name (tid)", busiest first.
    threads: Vec<(String, f64)>,
}

/// What one run of the Kafka write ceiling measured.
#[derive(Debug, Clone, PartialEq)]
struct CeilingRun {
    name: String,
    records: f64,
    seconds: f64,
    producer_cpu: f64,
    broker_cpu: f64,
    machine_cpu: f64,
    written: u64,
    load: String,
}

/// What the fill made and the topology took, for the report's heading.
#[derive(Debug, Clone, PartialEq)]
struct Backlog {
    seconds: u64,
    connections: u64,
    series: u64,
    samples_per_request: u64,
    passes: u64,
    partitions: u32,
    /// `BENCH_PARTITION_BY_LABELS`, `None` when unset.
    partition_by_labels: Option<String>,
    samples: u64,
    records: u64,
    fill_rate: f64,
    wrapped: bool,
    bytes: u64,
    components: u64,
    materialized_seconds: f64,
    revision: String,
    baseline: Option<String>,
    cpus: usize,
    memory_gib: u64,
}

fn seconds_since(instant: Instant) -> f64 {
    instant.elapsed().as_secs_f64()
}

/// Runs the bench; `Ok(false)` when some run is not a valid measurement.
pub fn run(options: &Options) -> anyhow::Result<bool> {
    let configs = options
        .configs
        .split_whitespace()
        .map(Config::parse)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let baseline = options
        .baseline_correlator
        .clone()
        .filter(|path| !path.is_empty());
    let run_configs: Vec<String> = options
        .run_configs
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    for file in &run_configs {
        if file != "-" && std::fs::File::open(file).is_err() {
            bail!("BENCH_RUN_CONFIGS: {file} is not a readable file");
        }
    }
    for config in &configs {
        if let Config::Join { baseline: true, .. } = config
            && !baseline
                .as_deref()
                .is_some_and(|path| super::is_executable(Path::new(path)))
        {
            bail!(
                "BENCH_CONFIGS has a baseline run but BENCH_BASELINE_CORRELATOR ({}) is not an executable",
                baseline.as_deref().unwrap_or("unset")
            );
        }
    }
    if options.passes * 15 >= 1800 {
        bail!(
            "BENCH_PASSES × 15 s must stay under the correlator's 30 min history, or repeated passes are late"
        );
    }

    let (work, _lock) = locked_work_dir(NAME)?;
    let bin_dir = super::bin_dir(&options.bin_dir)?;
    let copies = work.join("bin");
    let copy = |binary: &Path, name: &str| super::copy_binary(binary, &copies, name);
    let ceiling = copy(
        &bin_dir.join("examples").join("produce_ceiling"),
        "produce_ceiling",
    )?;
    let baseline_copy = match &baseline {
        Some(path) => Some(copy(Path::new(path), "correlator-baseline")?),
        None => None,
    };
    let revision = super::code_revision(&repository_root());

    let ports = [options.kafka_port, options.kafka_controller_port];
    let mut private = Private::start(NAME, ports, &work)?;
    let mut bench = Services::new(NAME, &work, &private, options.partitions, &bin_dir)?;
    bench.partition_by_labels = std::env::var("BENCH_PARTITION_BY_LABELS").ok();
    let (ingest_port, correlator_port) = (bench.ingest_port, bench.correlator_port);
    let pod_rule = work.join("bindings-pod.toml");
    std::fs::write(&pod_rule, POD_RULE)?;

    // ------------------------------------------------------------ 1. topology
    say(
        NAME,
        &format!(
            "1. topology: ingest on 127.0.0.1:{ingest_port}, setup correlator on 127.0.0.1:{correlator_port}"
        ),
    );
    let (components, materialized_seconds) = bench.materialize_topology(
        &mut private,
        options.series,
        options.samples_per_request,
        true,
    )?;

    // ------------------------------------------------------------ 2. backlog
    let backlog_topic = bench.topic("samples");
    say(
        NAME,
        &format!(
            "2. backlog: loadtest --max for {} s into {backlog_topic}, no correlator running",
            options.seconds
        ),
    );
    private.services.push(bench.ingest(
        &backlog_topic,
        &bench.topic("topology-raw"),
        "ingest-fill.log",
    ));
    let fill_ingest = private.services.last_mut().expect("just pushed");
    fill_ingest.start()?;
    fill_ingest.wait_ready(Duration::from_secs(150))?;
    let fill_started = Instant::now();
    let fill_rc = bench.run_loadtest(
        "fill",
        &[
            strings(&["--max", "--duration"]),
            vec![options.seconds.to_string()],
            strings(&["--connections"]),
            vec![options.connections.to_string()],
            strings(&["--series"]),
            vec![options.series.to_string()],
            strings(&["--samples-per-request"]),
            vec![options.samples_per_request.to_string()],
            strings(&["--passes"]),
            vec![options.passes.to_string()],
            strings(&["--cluster-name", &bench.cluster, "--run-id"]),
            vec![format!("{}-fill", bench.prefix)],
            strings(&["--verify", "--brokers"]),
            vec![
                bench.brokers.clone(),
                "--topic".into(),
                backlog_topic.clone(),
            ],
            vec![
                "--json".into(),
                work.join("runs/fill.json").display().to_string(),
            ],
        ]
        .concat(),
    )?;
    private.stop_services();
    let fill = read_fill(&work.join("runs/fill.json")).with_context(|| {
        format!(
            "the fill wrote no summary; see {}",
            work.join("runs/fill.log").display()
        )
    })?;
    if fill_rc != 0 {
        say(
            NAME,
            &format!(
                "warning: the fill's loadtest exited {fill_rc} (see {})",
                work.join("runs/fill.log").display()
            ),
        );
    }
    let backlog_records = bench
        .offsets
        .end(&backlog_topic, options.partitions)
        .with_context(|| format!("cannot read the end offsets of {backlog_topic}"))?;
    let expected = fill.found;
    let backlog_bytes = super::topic_bytes(&bench.kafka_state_dir, &backlog_topic);
    say(
        NAME,
        &format!(
            "backlog: {expected} samples in {backlog_records} records (fill: {:.0} samples/s, {} acknowledged, missing {}, duplicated {}, ring wrapped: {}; {:.0} s with the read-back)",
            fill.rate,
            fill.acknowledged,
            fill.missing,
            fill.duplicated,
            u8::from(fill.wrapped),
            seconds_since(fill_started)
        ),
    );
    if expected == 0 {
        bail!("the backlog is empty");
    }

    // ------------------------------------------------------------ 3. measured runs
    let mut joins = Vec::new();
    let mut ceilings = Vec::new();
    for (index, config) in configs.iter().enumerate() {
        let name = format!("run{}", index + 1);
        let args = match run_configs.get(index).map(String::as_str) {
            None | Some("-") => Vec::new(),
            Some(file) => {
                say(NAME, &format!("{name}: --config {file}"));
                vec!["--config".to_string(), file.to_string()]
            }
        };
        match *config {
            Config::Ceiling => {
                let run =
                    measure_ceiling(&bench, &name, &ceiling, &args, expected, backlog_records)?;
                ceilings.push(run);
            }
            Config::Join {
                bindings,
                baseline: is_baseline,
            } => {
                let binary = if is_baseline {
                    baseline_copy.clone().expect("checked above")
                } else {
                    bench.correlator.clone()
                };
                let run = measure_join(
                    &bench,
                    options,
                    JoinSetup {
                        name: &name,
                        bindings,
                        baseline: is_baseline,
                        binary: &binary,
                        args: &args,
                        pod_rule: &pod_rule,
                        backlog_topic: &backlog_topic,
                        expected,
                        records: backlog_records,
                    },
                )?;
                say(NAME, &format!("{name}: {}", run_summary(&run)));
                joins.push(run);
            }
        }
    }

    let backlog = Backlog {
        seconds: options.seconds,
        connections: options.connections,
        series: options.series,
        samples_per_request: options.samples_per_request,
        passes: options.passes,
        partitions: options.partitions,
        partition_by_labels: bench.partition_by_labels.clone(),
        samples: expected,
        records: backlog_records,
        fill_rate: fill.rate,
        wrapped: fill.wrapped,
        bytes: backlog_bytes,
        components,
        materialized_seconds,
        revision,
        baseline,
        cpus: proc_stat::cpus(),
        memory_gib: proc_stat::memory_gib(),
    };
    let report = report(&backlog, &joins, &ceilings);
    print!("{report}");
    std::fs::write(work.join("report.md"), &report)?;
    drop(private);
    if !joins.iter().all(JoinRun::is_valid)
        || !ceilings.iter().all(|c| c.written as f64 == c.records)
    {
        say(
            NAME,
            &format!(
                "some runs are not valid (not done, unbound samples, bound samples != samples × bindings, or not committed); see {} and {}/run*.log",
                work.join("report.md").display(),
                work.display()
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

/// The fill's figures, from loadtest's JSON summary.
#[derive(Debug, Clone, PartialEq)]
struct Fill {
    rate: f64,
    acknowledged: u64,
    found: u64,
    missing: u64,
    duplicated: u64,
    /// Whether the fill sent more requests than its ring holds.
    wrapped: bool,
}

fn read_fill(path: &Path) -> anyhow::Result<Fill> {
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let number = |pointer: &str| {
        json.pointer(pointer)
            .and_then(serde_json::Value::as_f64)
            .with_context(|| format!("{}: no {pointer}", path.display()))
    };
    Ok(Fill {
        rate: number("/totals/samples_per_second")?,
        acknowledged: number("/totals/samples_acknowledged")? as u64,
        found: number("/verify/counts/found")? as u64,
        missing: number("/verify/counts/missing")? as u64,
        duplicated: number("/verify/counts/duplicated")? as u64,
        wrapped: number("/totals/requests_sent")? > number("/settings/ring_requests")?,
    })
}

/// Waits 3 s for the machine to settle; the 1-minute load average then, and all three.
fn settle() -> (String, String) {
    std::thread::sleep(Duration::from_secs(3));
    proc_stat::load_average()
}

fn measure_ceiling(
    bench: &Services,
    name: &str,
    binary: &Path,
    args: &[String],
    expected: u64,
    backlog_records: u64,
) -> anyhow::Result<CeilingRun> {
    let kafka_pid = bench.kafka_pid;
    let (load, loads) = settle();
    say(
        NAME,
        &format!(
            "3. {name}: Kafka write ceiling, {expected} bound records through the join's producer path (load average {loads})"
        ),
    );
    let broker_before = proc_stat::process_ticks(kafka_pid).unwrap_or(0);
    let machine_before = proc_stat::machine_ticks();
    let ticks = proc_stat::clock_ticks();
    let topic = bench.topic(&format!("{name}.bound"));
    let log = bench.work.join(format!("{name}.log"));
    let output = Command::new(binary)
        .args(args)
        .env("KAFKA_BROKERS", &bench.brokers)
        .env("TOPIC_PARTITIONS", bench.partitions.to_string())
        .env("TOPIC_BOUND", &topic)
        .env("CEILING_RECORDS", expected.to_string())
        .env(
            "CEILING_BATCH",
            (expected / backlog_records.max(1)).to_string(),
        )
        .env("CEILING_CLOCK_TICKS", ticks.to_string())
        .env("RUST_LOG", "warn,librdkafka=warn")
        .stderr(std::fs::File::create(&log)?)
        .output()?;
    let line = String::from_utf8_lossy(&output.stdout).into_owned();
    std::fs::write(bench.work.join(format!("runs/{name}.txt")), &line)?;
    if !output.status.success() {
        bail!("produce_ceiling failed; see {}", log.display());
    }
    let broker_ticks = proc_stat::process_ticks(kafka_pid).unwrap_or(0) - broker_before;
    let machine_busy = proc_stat::machine_ticks() - machine_before;
    let written = bench.offsets.end(&topic, bench.partitions).unwrap_or(0);
    let field = |index: usize| -> anyhow::Result<f64> {
        line.split_whitespace()
            .nth(index)
            .and_then(|value| value.parse().ok())
            .with_context(|| format!("produce_ceiling printed '{}'", line.trim()))
    };
    say(
        NAME,
        &format!("{name}: {}; topic holds {written} records", line.trim()),
    );
    Ok(CeilingRun {
        name: name.to_string(),
        records: field(1)?,
        seconds: field(3)?,
        producer_cpu: field(7)?,
        broker_cpu: broker_ticks as f64 / ticks as f64,
        machine_cpu: machine_busy as f64 / ticks as f64,
        written,
        load,
    })
}

/// One correlator run's configuration.
struct JoinSetup<'a> {
    name: &'a str,
    bindings: u64,
    baseline: bool,
    binary: &'a Path,
    args: &'a [String],
    pod_rule: &'a Path,
    backlog_topic: &'a str,
    expected: u64,
    records: u64,
}

fn measure_join(bench: &Services, options: &Options, setup: JoinSetup) -> anyhow::Result<JoinRun> {
    let JoinSetup {
        name,
        bindings,
        baseline,
        binary,
        args,
        pod_rule,
        backlog_topic,
        expected,
        records,
    } = setup;
    let kafka_pid = bench.kafka_pid;
    let mut rules = if bindings == 1 {
        "pod rule only".to_string()
    } else {
        "built-in Kubernetes rules".to_string()
    };
    if baseline {
        rules.push_str(", baseline binary");
    }
    let group = format!("{}-{name}", bench.prefix);
    let raw_idle = bench.topic(&format!("{name}.topology-raw-idle"));
    let (load, loads) = settle();
    say(
        NAME,
        &format!(
            "3. {name}: {rules} ({bindings} binding(s) per sample), group {group} (load average {loads})"
        ),
    );
    let ticks = proc_stat::clock_ticks();
    // Killed when dropped, on an early return.
    let mut correlator = bench.correlator(
        name,
        backlog_topic,
        &raw_idle,
        (bindings == 1).then_some(pod_rule),
        binary,
        args,
    );
    let started = Instant::now();
    correlator.start()?;
    correlator.wait_ready(Duration::from_secs(300))?;
    let ready_seconds = seconds_since(started);
    let ready = Instant::now();
    let pid = correlator.pid().expect("started");
    let correlator_before = proc_stat::process_ticks(pid).unwrap_or(0);
    let threads_ready: Vec<ThreadTicks> = proc_stat::thread_ticks(pid);
    let broker_before = proc_stat::process_ticks(kafka_pid).unwrap_or(0);
    let machine_before = proc_stat::machine_ticks();
    let mut first: Option<Instant> = None;
    let mut done = false;
    let deadline = Instant::now() + Duration::from_secs(options.timeout);
    while Instant::now() < deadline {
        if !correlator.is_running() {
            break;
        }
        let counters = correlator_counters(bench.correlator_port);
        if first.is_none() && counters.consumed > 0 {
            first = Some(Instant::now());
        }
        if counters.consumed >= records
            && counters.bound + counters.released + counters.unbound >= expected
        {
            done = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let done_at = Instant::now();
    let first = first.unwrap_or(done_at);
    let correlator_ticks =
        proc_stat::process_ticks(pid).unwrap_or(correlator_before) - correlator_before;
    let threads =
        proc_stat::thread_seconds(&threads_ready, &proc_stat::thread_ticks(pid), ticks, 0.05);
    let broker_ticks = proc_stat::process_ticks(kafka_pid).unwrap_or(0) - broker_before;
    let machine_busy = proc_stat::machine_ticks() - machine_before;
    let counters = correlator_counters(bench.correlator_port);
    let peak_rss_mib = proc_stat::peak_rss_mib(pid).unwrap_or(0);
    if !done {
        say(
            NAME,
            &format!(
                "{name}: NOT DONE after {} s: consumed {} of {records} records, {} of {expected} samples",
                options.timeout,
                counters.consumed,
                counters.bound + counters.released + counters.unbound
            ),
        );
    }
    // Every record produced must be in the output topics (acknowledged) before we stop it.
    let bound_topic = bench.topic(&format!("{name}.bound"));
    let unbound_topic = bench.topic(&format!("{name}.unbound"));
    let (mut written_bound, mut written_unbound) = (0, 0);
    let written_deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < written_deadline {
        written_bound = bench
            .offsets
            .end(&bound_topic, bench.partitions)
            .unwrap_or(0);
        written_unbound = bench
            .offsets
            .end(&unbound_topic, bench.partitions)
            .unwrap_or(0);
        if written_bound >= counters.produced_bound && written_unbound >= counters.produced_unbound
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Offsets are committed every second: give it two, then stop it (it commits again on the way out).
    std::thread::sleep(Duration::from_secs(2));
    let last = correlator_counters(bench.correlator_port);
    let bound_bytes = super::topic_bytes(&bench.kafka_state_dir, &bound_topic);
    let exit_code = match correlator.terminate()? {
        Some(status) => super::shell_exit_code(status),
        None => 128 + libc::SIGKILL,
    };
    let mut replayed = None;
    if options.commit_check == 1 && done {
        correlator.start()?;
        correlator.wait_ready(Duration::from_secs(300))?;
        std::thread::sleep(Duration::from_secs(5));
        replayed = Some(match super::metrics::fetch(bench.correlator_port) {
            Ok(text) => CorrelatorCounters::parse(&text).consumed as i64,
            Err(_) => -1,
        });
        correlator.terminate()?;
    }
    // "No offset stored": a commit with nothing new to commit (the restart, the idle materializer).
    let warnings = super::warnings_in(&correlator.log, "No offset stored");
    let points = if last.points_bound > 0 {
        last.points_bound
    } else {
        last.produced_bound
    };
    Ok(JoinRun {
        name: name.to_string(),
        bindings,
        baseline,
        expected,
        records,
        ready_seconds,
        first_seconds: (first - ready).as_secs_f64(),
        done_seconds: (done_at - first).as_secs_f64(),
        counters,
        written_bound,
        written_unbound,
        correlator_cpu: correlator_ticks as f64 / ticks as f64,
        broker_cpu: broker_ticks as f64 / ticks as f64,
        machine_cpu: machine_busy as f64 / ticks as f64,
        peak_rss_mib,
        load,
        done,
        exit_code,
        replayed,
        warnings,
        points,
        bound_bytes,
        threads,
    })
}

impl JoinRun {
    /// A run that did not finish, left samples unbound, bound a sample other
    /// than `bindings` times, lost records or did not commit past the end is
    /// not a measurement.
    fn is_valid(&self) -> bool {
        self.done
            && self.counters.unbound == 0
            && self.points == self.bindings * self.expected
            && self.written_bound == self.counters.produced_bound
            && self.replayed.is_none_or(|replayed| replayed == 0)
    }

    fn replayed_text(&self) -> String {
        self.replayed
            .map_or_else(|| "-".to_string(), |replayed| replayed.to_string())
    }
}

fn run_summary(run: &JoinRun) -> String {
    format!(
        "{:.0} samples/s, {:.0} bound records/s over {:.1} s; correlator {:.1} CPU s; {} bound + {} unbound of {} samples; restart consumed {} records",
        run.expected as f64 / run.done_seconds,
        run.counters.produced_bound as f64 / run.done_seconds,
        run.done_seconds,
        run.correlator_cpu,
        run.counters.bound + run.counters.released,
        run.counters.unbound,
        run.expected,
        run.replayed_text(),
    )
}

/// A divisor that is never 0 (the report's ratios of an empty run stay finite).
fn or_one(value: f64) -> f64 {
    if value > 0.0 { value } else { 1.0 }
}

/// The Markdown report: the backlog, a row per correlator run, the write
/// ceiling's runs, the CPU per thread, and what went wrong.
fn report(backlog: &Backlog, joins: &[JoinRun], ceilings: &[CeilingRun]) -> String {
    let b = backlog;
    let partitioning = b
        .partition_by_labels
        .clone()
        .unwrap_or_else(|| "the default".to_string());
    let baseline = b
        .baseline
        .as_ref()
        .map(|path| format!("; baseline binary: BENCH_BASELINE_CORRELATOR={path}"))
        .unwrap_or_default();
    let mut out = format!(
        "Backlog: `loadtest --max --duration {} --connections {} --series {} --samples-per-request {} --passes {}` \
         (remote-write 1.0, 10 labels per series) through ingest into {} partitions (PARTITION_BY_LABELS: \"{partitioning}\") \
         with no correlator running: {} samples in {} records (fill at {:.0} samples/s; ring wrapped: {}), \
         stored as {} bytes ({:.1} bytes per sample, lz4). \
         Topology: {} components (nodes, pods, containers), materialized in {:.1} s. \
         Code: {}{baseline}. {} CPUs, {} GiB. \
         Each run: a fresh correlator and consumer group reading the whole backlog (at-least-once, protobuf output). \
         Rates over the time from the first consumed record to the last sample joined; CPU from ready (topology loaded) to that moment; \
         \"others\": the rest of the machine's busy CPU (other jobs, the bench's polling, hypervisor steal).\n\n",
        b.seconds,
        b.connections,
        b.series,
        b.samples_per_request,
        b.passes,
        b.partitions,
        b.samples,
        b.records,
        b.fill_rate,
        if b.wrapped { "yes" } else { "no" },
        b.bytes,
        b.bytes as f64 / b.samples as f64,
        b.components,
        b.materialized_seconds,
        b.revision,
        b.cpus,
        b.memory_gib,
    );
    out.push_str("| run | bindings | samples | start to ready s | join s | input samples/s | × fill rate | bound records/s | bound records / input record | bound samples / s | stored bytes / bound sample | correlator CPU s (% of a core) | samples per CPU-s | broker CPU s | others CPU s | peak RSS MiB | unbound | committed | load avg |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for run in joins {
        out.push_str(&join_row(run, b.fill_rate));
    }
    out.push('\n');
    if !ceilings.is_empty() {
        out.push_str("Kafka write ceiling (`p`: the produce_ceiling example, bound records of the same shape through the join's producer path, nothing consumed or joined):\n\n");
        out.push_str("| run | records | seconds | records/s | producer CPU s (% of a core) | records per producer CPU-s | broker CPU s | others CPU s | in the topic | load avg |\n");
        out.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
        for run in ceilings {
            let others = (run.machine_cpu - run.producer_cpu - run.broker_cpu).max(0.0);
            out.push_str(&format!(
                "| {} | {:.2} M | {:.1} | {:.0} k | {:.1} ({:.0} %) | {:.0} k | {:.1} | {:.1} | {} | {} |\n",
                run.name,
                run.records / 1e6,
                run.seconds,
                run.records / run.seconds / 1000.0,
                run.producer_cpu,
                100.0 * run.producer_cpu / run.seconds,
                run.records / or_one(run.producer_cpu) / 1000.0,
                run.broker_cpu,
                others,
                run.written,
                run.load,
            ));
        }
        out.push('\n');
    }
    if joins.iter().any(|run| !run.threads.is_empty()) {
        out.push_str("CPU per thread of each run's correlator, from ready to done (threads of librdkafka: rdk:main, rdk:broker<N> for each client's connection, the consumer's and the producer's alike; \"producer pollin\" serves the delivery reports; the join runs on \"correlator\"), and per input sample:\n\n");
        out.push_str("| run | thread (tid) | CPU s | µs per sample |\n|---|---|---|---|\n");
        for run in joins {
            for (thread, seconds) in &run.threads {
                out.push_str(&format!(
                    "| {} | {thread} | {seconds:.1} | {:.2} |\n",
                    run.name,
                    1e6 * seconds / or_one(run.expected as f64)
                ));
            }
        }
        out.push('\n');
        for run in joins {
            out.push_str(&format!(
                "- {}: the join waited {:.1} s of its {:.1} s for room in the producer's queue (`correlator_output_queue_full_seconds_total`).\n",
                run.name, run.counters.queue_full_seconds, run.done_seconds
            ));
        }
        out.push('\n');
    }
    for run in joins {
        let c = &run.counters;
        if run.written_bound != c.produced_bound || run.written_unbound != c.produced_unbound {
            out.push_str(&format!(
                "- {}: output topics hold {} bound and {} unbound records, the correlator produced {} and {}.\n",
                run.name, run.written_bound, run.written_unbound, c.produced_bound, c.produced_unbound
            ));
        }
        if run.exit_code != 0 {
            out.push_str(&format!(
                "- {}: the correlator exited {} on SIGTERM.\n",
                run.name, run.exit_code
            ));
        }
        if run.warnings > 0 {
            out.push_str(&format!(
                "- {}: {} WARN/ERROR lines in its log (other than \"No offset stored\").\n",
                run.name, run.warnings
            ));
        }
    }
    out
}

fn join_row(run: &JoinRun, fill_rate: f64) -> String {
    let c = &run.counters;
    let window = run.first_seconds + run.done_seconds;
    let others = (run.machine_cpu - run.correlator_cpu - run.broker_cpu).max(0.0);
    let committed = match run.replayed {
        None => "not checked".to_string(),
        Some(0) => "yes".to_string(),
        Some(replayed) => format!("no ({replayed} records again)"),
    };
    let expected = run.expected as f64;
    format!(
        "| {} | {}{} | {:.2} M | {:.1} | {:.1}{} | {:.0} k | {:.2} | {:.0} k | {:.2} | {:.0} k | {:.1} | {:.1} ({:.0} %) | {:.0} k | {:.1} | {:.1} | {} | {} | {} | {} |\n",
        run.name,
        if run.bindings == 3 {
            "container, pod, node"
        } else {
            "pod"
        },
        if run.baseline {
            " (baseline binary)"
        } else {
            ""
        },
        expected / 1e6,
        run.ready_seconds,
        run.done_seconds,
        if run.done { "" } else { " (not done)" },
        expected / run.done_seconds / 1000.0,
        expected / run.done_seconds / or_one(fill_rate),
        c.produced_bound as f64 / run.done_seconds / 1000.0,
        c.produced_bound as f64 / or_one(run.records as f64),
        run.points as f64 / run.done_seconds / 1000.0,
        run.bound_bytes as f64 / or_one(run.points as f64),
        run.correlator_cpu,
        100.0 * run.correlator_cpu / or_one(window),
        expected / or_one(run.correlator_cpu) / 1000.0,
        run.broker_cpu,
        others,
        run.peak_rss_mib,
        c.unbound,
        committed,
        run.load,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join_run() -> JoinRun {
        JoinRun {
            name: "run1".into(),
            bindings: 3,
            baseline: false,
            expected: 2_000_000,
            records: 1_000,
            ready_seconds: 1.25,
            first_seconds: 0.5,
            done_seconds: 4.0,
            counters: CorrelatorCounters {
                consumed: 1_000,
                bound: 2_000_000,
                released: 0,
                unbound: 0,
                produced_bound: 30_000,
                produced_unbound: 0,
                components: 5_000,
                points_bound: 6_000_000,
                queue_full_seconds: 0.0,
            },
            written_bound: 30_000,
            written_unbound: 0,
            correlator_cpu: 3.0,
            broker_cpu: 1.0,
            machine_cpu: 5.5,
            peak_rss_mib: 321,
            load: "1.50".into(),
            done: true,
            exit_code: 0,
            replayed: Some(0),
            warnings: 0,
            points: 6_000_000,
            bound_bytes: 12_000_000,
            threads: vec![("correlator (17)".into(), 2.0)],
        }
    }

    #[test]
    fn configs_are_the_documented_entries() {
        assert_eq!(
            Config::parse("3b").unwrap(),
            Config::Join {
                bindings: 3,
                baseline: true
            }
        );
        assert_eq!(
            Config::parse("1").unwrap(),
            Config::Join {
                bindings: 1,
                baseline: false
            }
        );
        assert_eq!(Config::parse("p").unwrap(), Config::Ceiling);
        assert!(Config::parse("2").is_err());
    }

    #[test]
    fn a_run_row_has_the_rates_ratios_and_cpu() {
        assert_eq!(
            join_row(&join_run(), 1_000_000.0),
            "| run1 | container, pod, node | 2.00 M | 1.2 | 4.0 | 500 k | 0.50 | 8 k | 30.00 | 1500 k | 2.0 | 3.0 (67 %) | 667 k | 1.0 | 1.5 | 321 | 0 | yes | 1.50 |\n"
        );
        let mut not_done = join_run();
        not_done.done = false;
        not_done.bindings = 1;
        not_done.baseline = true;
        not_done.replayed = Some(12);
        let row = join_row(&not_done, 0.0);
        assert!(row.starts_with("| run1 | pod (baseline binary) | 2.00 M | 1.2 | 4.0 (not done) | 500 k | 500000.00 |"), "{row}");
        assert!(row.ends_with("| no (12 records again) | 1.50 |\n"), "{row}");
    }

    #[test]
    fn a_valid_run_bound_every_sample_bindings_times() {
        assert!(join_run().is_valid());
        let mut short = join_run();
        short.points -= 1;
        assert!(!short.is_valid());
        let mut replayed = join_run();
        replayed.replayed = Some(5);
        assert!(!replayed.is_valid());
        let mut unchecked = join_run();
        unchecked.replayed = None;
        assert!(unchecked.is_valid());
    }

    #[test]
    fn the_report_has_every_table_and_the_problems() {
        let backlog = Backlog {
            seconds: 2,
            connections: 4,
            series: 1000,
            samples_per_request: 500,
            passes: 10,
            partitions: 8,
            partition_by_labels: Some(String::new()),
            samples: 2_000_000,
            records: 1_000,
            fill_rate: 1_000_000.0,
            wrapped: false,
            bytes: 4_000_000,
            components: 5_000,
            materialized_seconds: 1.5,
            revision: "abc1234".into(),
            baseline: None,
            cpus: 2,
            memory_gib: 24,
        };
        let mut run = join_run();
        run.exit_code = 143;
        run.warnings = 2;
        let ceiling = CeilingRun {
            name: "run2".into(),
            records: 2_000_000.0,
            seconds: 2.0,
            producer_cpu: 1.0,
            broker_cpu: 0.5,
            machine_cpu: 2.0,
            written: 2_000_000,
            load: "0.90".into(),
        };
        let report = report(&backlog, &[run], &[ceiling]);
        assert!(report.starts_with("Backlog: `loadtest --max --duration 2 --connections 4 --series 1000 --samples-per-request 500 --passes 10` (remote-write 1.0, 10 labels per series) through ingest into 8 partitions (PARTITION_BY_LABELS: \"\") with no correlator running: 2000000 samples in 1000 records (fill at 1000000 samples/s; ring wrapped: no), stored as 4000000 bytes (2.0 bytes per sample, lz4)."), "{report}");
        assert!(report.contains("| run2 | 2.00 M | 2.0 | 1000 k | 1.0 (50 %) | 2000 k | 0.5 | 0.5 | 2000000 | 0.90 |\n"), "{report}");
        assert!(
            report.contains("| run1 | correlator (17) | 2.0 | 1.00 |\n"),
            "{report}"
        );
        assert!(report.contains("- run1: the correlator exited 143 on SIGTERM.\n"));
        assert!(report.contains(
            "- run1: 2 WARN/ERROR lines in its log (other than \"No offset stored\").\n"
        ));
        assert!(!report.contains("output topics hold"));
    }
}
