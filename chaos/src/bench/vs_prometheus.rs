//! `make bench-vs-prometheus`: ingest against Prometheus' own remote-write
//! receiver, side by side in one run with the same load. A private broker
//! (state under `target/bench-vs-prometheus`), ingest against it, and
//! Prometheus (`--web.enable-remote-write-receiver`, no scrape jobs, its own
//! TSDB dir on the same disk as Kafka's). The same `loadtest --max` load goes
//! to each in the order ingest, Prometheus, Prometheus, ingest (A-B-B-A, so a
//! drift of the shared machine's load does not favour either), after an
//! unrecorded warm-up of ingest and the broker.
//!
//! What Prometheus' TSDB imposes on the load (loadtest/README.md): a run must
//! never repeat a pass (it answers 400 to a sample older than its series'
//! last), a pass must span at least 5× as many requests as there are
//! connections (or a slow request is overtaken by the next pass of its
//! series), and `BENCH_PASSES` stays at most 200 (50 min ahead of the clock,
//! within the head's 1 h). Each run's series are created beforehand by one
//! unrecorded pass, so the measured run only appends, and each Prometheus run
//! gets a fresh Prometheus with an empty TSDB, whose head holds the active
//! series only, as a long-running receiver's does.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

use super::{Load, Private, proc_stat, say, strings};
use crate::processes::{Service, repository_root};

const NAME: &str = "compare-prometheus";
const API_KEY: &str = "bench-vs-prometheus-key-0123456789";

/// The settings, each also its `BENCH_*` environment variable.
#[derive(Debug, Args)]
pub struct Options {
    /// Seconds of load per run.
    #[arg(long, env = "BENCH_DURATION", default_value_t = 20)]
    duration: u64,
    #[command(flatten)]
    load: Load,
    /// loadtest --passes (the ring's size).
    #[arg(long, env = "BENCH_PASSES", default_value_t = 30)]
    passes: u64,
    /// Seconds of unrecorded load on ingest first.
    #[arg(long, env = "BENCH_WARMUP", default_value_t = 5)]
    warmup: u64,
    /// Seconds of rest before each run.
    #[arg(long, env = "BENCH_PAUSE", default_value_t = 5)]
    pause: u64,
    /// The Prometheus binary.
    #[arg(long, env = "PROMETHEUS", default_value = "prometheus")]
    prometheus: String,
    /// Port of the private broker; the services listen on the first free
    /// ports from this plus 2 up.
    #[arg(long, env = "KAFKA_PORT", default_value_t = 39792)]
    kafka_port: u16,
    /// Port of the private broker's controller.
    #[arg(long, env = "KAFKA_CONTROLLER_PORT", default_value_t = 39793)]
    kafka_controller_port: u16,
    /// Where the release ingest and loadtest are (default: beside this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Receiver {
    Ingest,
    Prometheus,
}

impl Receiver {
    fn name(self) -> &'static str {
        match self {
            Receiver::Ingest => "ingest",
            Receiver::Prometheus => "prometheus",
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone, PartialEq)]
struct Run {
    name: String,
    receiver: Receiver,
    samples_per_second: f64,
    acknowledged: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Answers other than 2xx.
    non_2xx: u64,
    failed: u64,
    unsent: u64,
    /// The run sent more requests than its ring holds.
    wrapped: bool,
    receiver_cpu: f64,
    /// 0 for a Prometheus run: it does not load the broker.
    broker_cpu: f64,
    machine_cpu: f64,
    load: String,
    generator_cpu: f64,
}

impl Run {
    fn is_valid(&self) -> bool {
        self.non_2xx + self.failed + self.unsent == 0
    }
}

/// The highest peak RSS and head series count of the Prometheus processes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct PrometheusPeaks {
    rss_mib: u64,
    head_series: u64,
}

struct Bench<'a> {
    options: &'a Options,
    work: PathBuf,
    loadtest: PathBuf,
    stamp: String,
    kafka_pid: u32,
}

impl Bench<'_> {
    fn loadtest(
        &self,
        name: &str,
        log: &str,
        url: &str,
        args: &[String],
    ) -> anyhow::Result<Command> {
        let o = self.options;
        let mut command = Command::new(&self.loadtest);
        command
            .args(["--url", url, "--api-key", API_KEY])
            .args(o.load.args())
            .args(["--run-id", &format!("{name}-{}", self.stamp)])
            .args(["--cluster-name", &format!("bench-{name}")])
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.work.join("runs").join(log))?);
        Ok(command)
    }

    /// Sends the first pass of run `name`'s series to `url`, unrecorded: open
    /// loop at BENCH_SERIES / 2 samples/s for 2 s, one sample per series. The
    /// measured run's ring starts at a later timestamp, so it appends.
    fn create_series(&self, name: &str, url: &str) -> anyhow::Result<()> {
        let json = self.work.join(format!("runs/{name}-series.json"));
        let args = [
            strings(&["--rate"]),
            vec![(self.options.load.series / 2).to_string()],
            strings(&["--duration", "2", "--passes", "1", "--json"]),
            vec![json.display().to_string()],
        ]
        .concat();
        let _ = self
            .loadtest(name, &format!("{name}-series.log"), url, &args)?
            .status()?;
        let answers = read_json(&json)
            .ok()
            .and_then(|summary| summary.pointer("/totals/responses_by_status").cloned())
            .map_or_else(|| "?".to_string(), |answers| answers.to_string());
        say(
            NAME,
            &format!("{name}: created its series, answers {answers}"),
        );
        Ok(())
    }

    /// One measured run. The CPU counters are read when loadtest starts
    /// sending (it says "pre-encoded" then) and when it exits, so the
    /// encoding of the ring, which loads only the generator, stays out of the
    /// receivers' window.
    fn run_load(
        &self,
        name: &str,
        receiver: Receiver,
        receiver_pid: u32,
        url: &str,
        seconds: u64,
        passes: u64,
    ) -> anyhow::Result<Run> {
        let json = self.work.join(format!("runs/{name}.json"));
        let log = self.work.join(format!("runs/{name}.log"));
        let (_, loads) = proc_stat::load_average();
        say(
            NAME,
            &format!(
                "{name}: {}, {seconds} s (load average {loads})",
                receiver.name()
            ),
        );
        let args = [
            strings(&["--max", "--duration"]),
            vec![seconds.to_string(), "--passes".into(), passes.to_string()],
            vec!["--json".into(), json.display().to_string()],
        ]
        .concat();
        let mut generator = self
            .loadtest(name, &format!("{name}.log"), url, &args)?
            .spawn()?;
        while matches!(generator.try_wait(), Ok(None))
            && !std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("pre-encoded")
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let (load, _) = proc_stat::load_average();
        let ticks = |pid| proc_stat::process_ticks(pid).unwrap_or(0);
        let receiver_before = ticks(receiver_pid);
        let broker_before = ticks(self.kafka_pid);
        let machine_before = proc_stat::machine_ticks();
        let generator_before = ticks(generator.id());
        // The generator's own CPU: its last reading before it exits (to 0.1 s);
        // an exited child not yet reaped reads as gone.
        let mut generator_last = generator_before;
        while let Some(reading) = proc_stat::process_ticks(generator.id()) {
            generator_last = reading;
            std::thread::sleep(Duration::from_millis(100));
        }
        let status = generator.wait()?;
        let hz = proc_stat::clock_ticks() as f64;
        let receiver_cpu = ticks(receiver_pid).saturating_sub(receiver_before) as f64 / hz;
        let broker_cpu = match receiver {
            Receiver::Ingest => ticks(self.kafka_pid).saturating_sub(broker_before) as f64 / hz,
            Receiver::Prometheus => 0.0,
        };
        let machine_cpu = (proc_stat::machine_ticks() - machine_before) as f64 / hz;
        let generator_cpu = generator_last.saturating_sub(generator_before) as f64 / hz;
        let summary = read_json(&json).map_err(|_| {
            eprintln!("{}", super::tail(&log, 20));
            anyhow::anyhow!(
                "{name}: loadtest exited with {} and wrote no summary; see {}",
                super::shell_exit_code(status),
                log.display()
            )
        })?;
        let run = run_of(
            &summary,
            name,
            receiver,
            [receiver_cpu, broker_cpu, machine_cpu, generator_cpu],
            load,
        );
        say(
            NAME,
            &format!(
                "{name}: {} samples/s, answers {}",
                run.samples_per_second.floor(),
                summary
                    .pointer("/totals/responses_by_status")
                    .map_or_else(|| "null".to_string(), Value::to_string)
            ),
        );
        Ok(run)
    }
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)?;
    Ok(serde_json::from_str(&text)?)
}

/// A run from loadtest's summary and the CPU seconds of receiver, broker,
/// machine and generator.
fn run_of(summary: &Value, name: &str, receiver: Receiver, cpu: [f64; 4], load: String) -> Run {
    let number = |pointer: &str| {
        summary
            .pointer(pointer)
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
    };
    let non_2xx = summary
        .pointer("/totals/responses_by_status")
        .and_then(Value::as_object)
        .map_or(0, |answers| {
            answers
                .iter()
                .filter(|(status, _)| !status.starts_with('2'))
                .filter_map(|(_, count)| count.as_u64())
                .sum()
        });
    let [receiver_cpu, broker_cpu, machine_cpu, generator_cpu] = cpu;
    Run {
        name: name.to_string(),
        receiver,
        samples_per_second: number("/totals/samples_per_second"),
        acknowledged: number("/totals/samples_acknowledged"),
        p50_ms: number("/totals/latency_ms/p50"),
        p99_ms: number("/totals/latency_ms/p99"),
        non_2xx,
        failed: number("/totals/requests_failed") as u64,
        unsent: number("/totals/requests_unsent") as u64,
        wrapped: number("/totals/requests_sent") > number("/settings/ring_requests"),
        receiver_cpu,
        broker_cpu,
        machine_cpu,
        load,
        generator_cpu,
    }
}

/// Runs the bench; `Ok(false)` when a run had non-2xx answers or failed requests.
pub fn run(options: &Options) -> anyhow::Result<bool> {
    let prometheus = super::which(&options.prometheus).with_context(|| {
        format!(
            "{} not found (apt-get install prometheus)",
            options.prometheus
        )
    })?;
    if options.load.series / options.load.samples_per_request < 5 * options.load.connections {
        bail!(
            "BENCH_SERIES / BENCH_SAMPLES_PER_REQUEST must be at least 5 × BENCH_CONNECTIONS, else a series' samples can overtake each other in flight and Prometheus answers 400"
        );
    }
    if options.passes > 200 {
        bail!(
            "BENCH_PASSES over 200 puts samples more than 50 min ahead of the clock; later runs would be out of bounds in Prometheus' head"
        );
    }
    let repository = repository_root();
    let work = repository.join("target").join("bench-vs-prometheus");
    let runs_dir = work.join("runs");
    if runs_dir.exists() {
        std::fs::remove_dir_all(&runs_dir)?;
    }
    std::fs::create_dir_all(&runs_dir)?;
    let _ = std::fs::remove_file(work.join("prometheus.log"));
    let bin_dir = super::bin_dir(&options.bin_dir)?;

    let ports = [options.kafka_port, options.kafka_controller_port];
    let mut private = Private::start(NAME, ports, &work)?;
    let stamp = super::stamp()?;
    let (ingest_port, ingest_pid) =
        private.start_ingest(bin_dir.join("ingest"), &work, API_KEY, &stamp)?;

    // No scrape jobs: everything Prometheus stores comes through the receiver.
    std::fs::write(
        work.join("prometheus.yml"),
        "global:\n  scrape_interval: 15s\n",
    )?;
    let prometheus_port = super::free_port_from(ingest_port + 1);
    let version = Command::new(&prometheus)
        .arg("--version")
        .output()
        .map(|output| {
            let text = [output.stdout, output.stderr].concat();
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_default();
    let data = work.join("prometheus-data");
    let prometheus_service = Service::new(
        "Prometheus",
        prometheus,
        Vec::new(),
        work.join("prometheus.log"),
        prometheus_port,
    )
    .with_args(vec![
        format!("--config.file={}", work.join("prometheus.yml").display()),
        format!("--storage.tsdb.path={}", data.display()),
        format!("--web.listen-address=127.0.0.1:{prometheus_port}"),
        "--web.enable-remote-write-receiver".into(),
    ])
    .with_ready_path("/-/ready")
    .inheriting_env();
    let ingest_url = format!("http://127.0.0.1:{ingest_port}/receiver/prometheus/api/v1/write");
    let prometheus_url = format!("http://127.0.0.1:{prometheus_port}/api/v1/write");
    let bench = Bench {
        options,
        work: work.clone(),
        loadtest: bin_dir.join("loadtest"),
        stamp,
        kafka_pid: private.broker.pid()?,
    };

    // The warm-up is for the broker's JVM (JIT, heap): it is not recorded.
    // Prometheus is compiled ahead of time and starts afresh for each run;
    // the pass that creates its series warms it.
    if options.warmup > 0 {
        bench.run_load(
            "warmup-ingest",
            Receiver::Ingest,
            ingest_pid,
            &ingest_url,
            options.warmup,
            5,
        )?;
    }
    let mut peaks = PrometheusPeaks::default();
    let mut runs = Vec::new();
    // Stopped (SIGKILL) when dropped, on an early return.
    let mut prometheus = prometheus_service;
    let order = [
        Receiver::Ingest,
        Receiver::Prometheus,
        Receiver::Prometheus,
        Receiver::Ingest,
    ];
    for (index, receiver) in order.into_iter().enumerate() {
        let name = format!("run{}", index + 1);
        let (url, pid) = match receiver {
            Receiver::Ingest => (&ingest_url, ingest_pid),
            Receiver::Prometheus => {
                say(
                    NAME,
                    &format!(
                        "{name}: starting a fresh Prometheus on 127.0.0.1:{prometheus_port} (log {})",
                        prometheus.log.display()
                    ),
                );
                // A fresh Prometheus with an empty TSDB (on the same disk as Kafka's data).
                let _ = std::fs::remove_dir_all(&data);
                prometheus.start()?;
                prometheus.wait_ready(Duration::from_secs(60))?;
                (&prometheus_url, prometheus.pid().expect("started"))
            }
        };
        bench.create_series(&name, url)?;
        std::thread::sleep(Duration::from_secs(options.pause));
        runs.push(bench.run_load(&name, receiver, pid, url, options.duration, options.passes)?);
        if receiver == Receiver::Prometheus {
            // Keeps the highest peak RSS and head series count seen.
            peaks.rss_mib = peaks.rss_mib.max(proc_stat::peak_rss_mib(pid).unwrap_or(0));
            peaks.head_series = peaks.head_series.max(head_series(prometheus_port));
            prometheus.terminate()?;
        }
    }
    let _ = std::fs::remove_dir_all(&data);
    let ingest_rss = proc_stat::peak_rss_mib(ingest_pid).unwrap_or(0);
    let broker_rss = proc_stat::peak_rss_mib(bench.kafka_pid).unwrap_or(0);

    let heading = format!(
        "Load: `loadtest --max --connections {} --duration {} --series {} --samples-per-request {} --passes {}` \
         (remote-write 1.0, 10 labels per series), order ingest, Prometheus, Prometheus, ingest, each run's series \
         created beforehand by one unrecorded pass; {} CPUs, {} GiB; {version}. CPU seconds over the run; \"others\": \
         the rest of the machine's busy CPU (other jobs, hypervisor steal); load average at the start of each run.\n\n",
        options.load.connections,
        options.duration,
        options.load.series,
        options.load.samples_per_request,
        options.passes,
        proc_stat::cpus(),
        proc_stat::memory_gib(),
    );
    let report = report(
        &heading,
        &runs,
        options.duration,
        [ingest_rss, broker_rss],
        peaks,
    );
    print!("{report}");
    std::fs::write(work.join("report.md"), &report)?;
    drop(private);
    if !runs.iter().all(Run::is_valid) {
        say(
            NAME,
            &format!(
                "some runs had non-2xx answers or failed requests; see {}/*.json",
                runs_dir.display()
            ),
        );
        return Ok(false);
    }
    if report.contains("ring wrapped") {
        say(
            NAME,
            "note: a run sent more than the ring holds (BENCH_PASSES); for Prometheus that means repeated samples",
        );
    }
    say(
        NAME,
        &format!("report: {}", work.join("report.md").display()),
    );
    Ok(true)
}

/// Series in the head of the Prometheus on `port` (0 when it does not say).
fn head_series(port: u16) -> u64 {
    let status = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()
        .and_then(|client| {
            client
                .get(format!("http://127.0.0.1:{port}/api/v1/status/tsdb"))
                .send()
                .ok()?
                .json::<Value>()
                .ok()
        });
    status
        .and_then(|status| status.pointer("/data/headStats/numSeries")?.as_u64())
        .unwrap_or(0)
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "n/a".to_string()
    }
}

fn report(
    heading: &str,
    runs: &[Run],
    duration: u64,
    [ingest_rss, broker_rss]: [u64; 2],
    prometheus: PrometheusPeaks,
) -> String {
    let mut out = heading.to_string();
    out.push_str("| run | receiver | samples/s | p50 / p99 ms | non-2xx / failed | receiver CPU s (% of a core) | broker CPU s | generator CPU s | others CPU s | load avg |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for run in runs {
        let others = run.machine_cpu - run.receiver_cpu - run.broker_cpu - run.generator_cpu;
        out.push_str(&format!(
            "| {} | {} | {:.0} k | {:.1} / {:.1} | {} / {}{} | {:.1} ({:.0} %) | {} | {:.1} | {:.1} | {} |\n",
            run.name,
            run.receiver.name(),
            run.samples_per_second / 1000.0,
            run.p50_ms,
            run.p99_ms,
            run.non_2xx,
            run.failed,
            if run.wrapped && run.receiver == Receiver::Prometheus {
                " (ring wrapped)"
            } else {
                ""
            },
            run.receiver_cpu,
            100.0 * run.receiver_cpu / duration as f64,
            match run.receiver {
                Receiver::Ingest => format!("{:.1}", run.broker_cpu),
                Receiver::Prometheus => "–".to_string(),
            },
            run.generator_cpu,
            others.max(0.0),
            run.load,
        ));
    }
    out.push('\n');
    // Sums over the two runs of each receiver: acknowledged samples / CPU
    // seconds, and the mean of the samples/s. A run with any non-2xx answer,
    // failed or unsent request does not count.
    let valid = |receiver: Receiver| -> Vec<&Run> {
        runs.iter()
            .filter(|run| run.receiver == receiver && run.is_valid())
            .collect()
    };
    for receiver in [Receiver::Ingest, Receiver::Prometheus] {
        let invalid = runs
            .iter()
            .filter(|run| run.receiver == receiver && !run.is_valid())
            .count();
        if invalid > 0 {
            out.push_str(&format!(
                "**{invalid} {} run(s) had errors and are left out.**\n\n",
                receiver.name()
            ));
        }
    }
    let (ingest, prometheus_runs) = (valid(Receiver::Ingest), valid(Receiver::Prometheus));
    if ingest.is_empty() || prometheus_runs.is_empty() {
        out.push_str("No valid run of one receiver: no ratio.\n");
    } else {
        let sum =
            |runs: &[&Run], field: fn(&Run) -> f64| runs.iter().map(|run| field(run)).sum::<f64>();
        let ingest_rate = sum(&ingest, |r| r.samples_per_second) / ingest.len() as f64;
        let prometheus_rate =
            sum(&prometheus_runs, |r| r.samples_per_second) / prometheus_runs.len() as f64;
        let ingest_per_cpu = sum(&ingest, |r| r.acknowledged) / sum(&ingest, |r| r.receiver_cpu);
        let prometheus_per_cpu =
            sum(&prometheus_runs, |r| r.acknowledged) / sum(&prometheus_runs, |r| r.receiver_cpu);
        let pipeline_per_cpu = sum(&ingest, |r| r.acknowledged)
            / (sum(&ingest, |r| r.receiver_cpu) + sum(&ingest, |r| r.broker_cpu));
        out.push_str("| | ingest | Prometheus | ratio ingest / Prometheus |\n|---|---|---|---|\n");
        out.push_str(&format!(
            "| acknowledged samples/s (mean of {} and {} runs) | {:.0} k | {:.0} k | **{}** |\n",
            ingest.len(),
            prometheus_runs.len(),
            ingest_rate / 1000.0,
            prometheus_rate / 1000.0,
            ratio(ingest_rate, prometheus_rate)
        ));
        out.push_str(&format!(
            "| samples per receiver CPU-second | {:.0} k | {:.0} k | **{}** |\n",
            ingest_per_cpu / 1000.0,
            prometheus_per_cpu / 1000.0,
            ratio(ingest_per_cpu, prometheus_per_cpu)
        ));
        out.push_str(&format!(
            "| samples per CPU-second, ingest + broker vs Prometheus | {:.0} k | {:.0} k | {} |\n",
            pipeline_per_cpu / 1000.0,
            prometheus_per_cpu / 1000.0,
            ratio(pipeline_per_cpu, prometheus_per_cpu)
        ));
        out.push_str(&format!(
            "| peak RSS (VmHWM) | {ingest_rss} MiB (broker {broker_rss} MiB) | {} MiB | |\n",
            prometheus.rss_mib
        ));
    }
    out.push_str(&format!(
        "\nPrometheus: a fresh process and TSDB per run; at most {} series in its head.\n",
        prometheus.head_series
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(rate: f64, answers: &str) -> Value {
        serde_json::from_str(&format!(
            r#"{{"totals": {{"samples_per_second": {rate}, "samples_acknowledged": {}, "latency_ms": {{"p50": 2.25, "p99": 30.0}},
                 "responses_by_status": {answers}, "requests_failed": 0, "requests_unsent": 0, "requests_sent": 100}},
                "settings": {{"ring_requests": 50}}}}"#,
            rate * 10.0
        ))
        .unwrap()
    }

    #[test]
    fn a_run_counts_the_answers_other_than_2xx() {
        let run = run_of(
            &summary(500_000.0, r#"{"204": 90, "400": 3, "503": 1}"#),
            "run2",
            Receiver::Prometheus,
            [4.0, 0.0, 9.0, 1.0],
            "2.00".into(),
        );
        assert_eq!(run.non_2xx, 4);
        assert!(run.wrapped);
        assert!(!run.is_valid());
    }

    #[test]
    fn the_report_has_a_row_per_run_and_the_ratios() {
        let run = |name: &str, receiver, rate, cpu, load: &str| {
            run_of(
                &summary(rate, r#"{"204": 100}"#),
                name,
                receiver,
                cpu,
                load.into(),
            )
        };
        let ingest = |name| run(name, Receiver::Ingest, 1e6, [5.0, 3.0, 10.0, 1.0], "1.00");
        let prometheus = |name| {
            run(
                name,
                Receiver::Prometheus,
                5e5,
                [8.0, 0.0, 9.5, 1.0],
                "1.50",
            )
        };
        let runs = [
            ingest("run1"),
            prometheus("run2"),
            prometheus("run3"),
            ingest("run4"),
        ];
        let report = report(
            "Load: ...\n\n",
            &runs,
            10,
            [300, 1000],
            PrometheusPeaks {
                rss_mib: 2000,
                head_series: 200_000,
            },
        );
        assert!(report.contains("| run1 | ingest | 1000 k | 2.2 / 30.0 | 0 / 0 | 5.0 (50 %) | 3.0 | 1.0 | 1.0 | 1.00 |\n"), "{report}");
        assert!(report.contains("| run2 | prometheus | 500 k | 2.2 / 30.0 | 0 / 0 (ring wrapped) | 8.0 (80 %) | – | 1.0 | 0.5 | 1.50 |\n"), "{report}");
        assert!(
            report.contains(
                "| acknowledged samples/s (mean of 2 and 2 runs) | 1000 k | 500 k | **2.00** |\n"
            ),
            "{report}"
        );
        // 10 M samples per 5 CPU-s against 5 M per 8.
        assert!(
            report.contains("| samples per receiver CPU-second | 2000 k | 625 k | **3.20** |\n"),
            "{report}"
        );
        assert!(report.contains("| samples per CPU-second, ingest + broker vs Prometheus | 1250 k | 625 k | 2.00 |\n"), "{report}");
        assert!(report.contains("| peak RSS (VmHWM) | 300 MiB (broker 1000 MiB) | 2000 MiB | |\n"));
        assert!(report.ends_with("at most 200000 series in its head.\n"));
        let only_ingest = super::report("", &runs[..1], 10, [0, 0], PrometheusPeaks::default());
        assert!(only_ingest.contains("No valid run of one receiver: no ratio.\n"));
    }
}
