//! The fault scenarios. Each one runs a fresh ingest and correlator against
//! fresh topics, puts `loadtest` load on them (synthetic Kubernetes series at a
//! fixed rate, retried on 5xx as Prometheus does), injects its fault a third of
//! the way in, and ends with `loadtest --verify --verify-outputs`: every
//! acknowledged sample must be in `metrics.samples`, and every sample there
//! must come out of the join, bound or unbound.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use loadtest::synthetic::SeriesUniverse;
use loadtest::topology::{SyntheticComponent, components, intake_request, snapshot_requests};
use loadtest::verify::read_topic;
use serde::Serialize;
use serde_json::Value;

use crate::processes::{Broker, Service, free_port};

/// Samples per request the generator sends.
const SAMPLES_PER_REQUEST: u64 = 500;
/// Labels per synthetic series (loadtest's default).
const LABELS_PER_SERIES: usize = 10;
/// ingest answers 503 after this when Kafka does not acknowledge (unless
/// the settings say otherwise).
pub const REQUEST_TIMEOUT_MS: u64 = 5_000;
/// How long a stopped component stays stopped.
const DOWNTIME: Duration = Duration::from_secs(3);
/// How long the broker is frozen: past its 9 s session timeout
/// (`broker.session.timeout.ms`), so its controller may fence it.
const FREEZE: Duration = Duration::from_secs(12);
/// Freezes at most, until the broker has been fenced once.
const FREEZE_ATTEMPTS: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// The broker stopped and started again mid-load; senders retry on 503.
    BrokerRestart,
    /// The broker frozen (SIGSTOP) past its session timeout and let go again
    /// (SIGCONT): its controller fences it for a moment, with no restart.
    BrokerFreeze,
    /// ingest killed with SIGKILL mid-load and restarted.
    IngestKill,
    /// The correlator killed with SIGKILL mid-load and restarted (at-least-once).
    CorrelatorKill,
    /// The same with exactly-once output: no sample may come out twice.
    CorrelatorKillExactlyOnce,
    /// A second correlator joins the group and leaves it again (two rebalances).
    CorrelatorJoinLeave,
    /// The correlator killed while a snapshot is half received; the rest
    /// arrives while it is down.
    MaterializerKill,
}

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Scenario::BrokerRestart,
        Scenario::BrokerFreeze,
        Scenario::IngestKill,
        Scenario::CorrelatorKill,
        Scenario::CorrelatorKillExactlyOnce,
        Scenario::CorrelatorJoinLeave,
        Scenario::MaterializerKill,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::BrokerRestart => "broker-restart",
            Scenario::BrokerFreeze => "broker-freeze",
            Scenario::IngestKill => "ingest-kill",
            Scenario::CorrelatorKill => "correlator-kill",
            Scenario::CorrelatorKillExactlyOnce => "correlator-kill-exactly-once",
            Scenario::CorrelatorJoinLeave => "correlator-join-leave",
            Scenario::MaterializerKill => "materializer-kill",
        }
    }

    fn exactly_once(self) -> bool {
        self == Scenario::CorrelatorKillExactlyOnce
    }
}

/// What every scenario shares.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the ingest, correlator and loadtest binaries are.
    pub bin_dir: PathBuf,
    /// Logs, key files and summaries, one directory per scenario.
    pub work_dir: PathBuf,
    /// Seconds of load per scenario.
    pub seconds: u64,
    /// Samples per second of load.
    pub rate: u64,
    /// Distinct series (the ring holds enough passes that no sample repeats).
    pub series: u64,
    /// ingest's `REQUEST_TIMEOUT_MS`: how long a write may wait for Kafka.
    pub request_timeout_ms: u64,
}

/// What one scenario did and found.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The scenario's name.
    pub scenario: String,
    /// The fault as it happened, with its timings.
    pub fault: Vec<String>,
    pub samples_sent: u64,
    pub samples_acknowledged: u64,
    pub requests_acknowledged: u64,
    pub retries: u64,
    pub responses_by_status: BTreeMap<String, u64>,
    pub latency_p99_ms: f64,
    /// In `metrics.samples`: acknowledged copies found, missing, duplicated.
    pub found: u64,
    pub missing: u64,
    pub duplicated: u64,
    pub found_unacknowledged: u64,
    /// Out of the join: distinct samples bound, unbound, missing; copies repeated.
    pub outputs_expected: u64,
    pub outputs_bound: u64,
    pub outputs_unbound: u64,
    pub outputs_missing: u64,
    pub outputs_duplicated: u64,
    pub correlator_settle_seconds: f64,
    pub ingest_peak_rss_bytes: Option<u64>,
    /// Every check with its verdict.
    pub checks: Vec<(String, bool)>,
    pub passed: bool,
    pub directory: PathBuf,
}

/// The topics of one scenario, fresh each time.
pub(crate) struct Topics {
    pub(crate) samples: String,
    topology_raw: String,
    pub(crate) topology: String,
    pub(crate) bound: String,
    pub(crate) unbound: String,
}

impl Topics {
    fn new(prefix: &str) -> Topics {
        Topics {
            samples: format!("{prefix}.samples"),
            topology_raw: format!("{prefix}.topology-raw"),
            topology: format!("{prefix}.topology-components"),
            bound: format!("{prefix}.bound"),
            unbound: format!("{prefix}.unbound"),
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        [
            ("TOPIC_SAMPLES", &self.samples),
            ("TOPIC_TOPOLOGY_RAW", &self.topology_raw),
            ("TOPIC_TOPOLOGY", &self.topology),
            ("TOPIC_BOUND", &self.bound),
            ("TOPIC_UNBOUND", &self.unbound),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value.clone()))
        .chain([("TOPIC_PARTITIONS".to_string(), "4".to_string())])
        .collect()
    }
}

/// The pipeline of one scenario.
pub(crate) struct Pipeline {
    name: String,
    exactly_once: bool,
    pub(crate) ingest: Service,
    pub(crate) correlator: Service,
    api_key: String,
    pub(crate) ingest_port: u16,
    pub(crate) topics: Topics,
    group: String,
    cluster: String,
    directory: PathBuf,
    brokers: String,
    correlator_env: Vec<(String, String)>,
    bin_dir: PathBuf,
}

impl Pipeline {
    /// ingest and a correlator (exactly-once or not) for scenario `name`,
    /// on fresh topics of the cluster at `brokers`.
    pub(crate) fn new(
        name: &str,
        exactly_once: bool,
        settings: &Settings,
        brokers: String,
    ) -> anyhow::Result<Pipeline> {
        let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
        let id = format!("{name}-{stamp}");
        let directory = settings.work_dir.join(&id);
        std::fs::create_dir_all(&directory)?;
        let api_key = format!("chaos-key-{stamp:x}-{}", std::process::id());
        let keys = directory.join("keys.toml");
        std::fs::write(
            &keys,
            format!("[[keys]]\ntenant = \"chaos\"\nkey = \"{api_key}\"\n"),
        )?;
        // Short sessions, so a killed member's partitions move on in seconds.
        let correlator_config = directory.join("correlator.toml");
        std::fs::write(
            &correlator_config,
            "[kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"1000\"\n",
        )?;
        let topics = Topics::new(&format!("chaos.{id}"));

        let ingest_port = free_port()?;
        let mut ingest_env = vec![
            ("KAFKA_BROKERS".to_string(), brokers.clone()),
            ("API_KEYS_FILE".to_string(), keys.display().to_string()),
            (
                "INGEST_LISTEN".to_string(),
                format!("127.0.0.1:{ingest_port}"),
            ),
            (
                "REQUEST_TIMEOUT_MS".to_string(),
                settings.request_timeout_ms.to_string(),
            ),
            ("INGEST_WORKERS".to_string(), "2".to_string()),
            ("RUST_LOG".to_string(), "info,librdkafka=warn".to_string()),
        ];
        ingest_env.extend(topics.env());
        let ingest = Service::new(
            "ingest",
            settings.bin_dir.join("ingest"),
            ingest_env,
            directory.join("ingest.log"),
            ingest_port,
        );

        let group = format!("chaos-{id}");
        let mut correlator_env = vec![
            ("KAFKA_BROKERS".to_string(), brokers.clone()),
            ("KAFKA_GROUP_ID".to_string(), group.clone()),
            (
                "CORRELATOR_CONFIG".to_string(),
                correlator_config.display().to_string(),
            ),
            ("PENDING_GRACE_MS".to_string(), "30000".to_string()),
            ("RUST_LOG".to_string(), "info,librdkafka=warn".to_string()),
        ];
        if exactly_once {
            correlator_env.push(("EXACTLY_ONCE".to_string(), "true".to_string()));
        }
        correlator_env.extend(topics.env());
        let mut pipeline = Pipeline {
            name: name.to_string(),
            exactly_once,
            ingest,
            correlator: Service::new("correlator", PathBuf::new(), vec![], PathBuf::new(), 0),
            api_key,
            ingest_port,
            topics,
            group,
            cluster: format!("chaos-{stamp}"),
            directory,
            brokers,
            correlator_env,
            bin_dir: settings.bin_dir.clone(),
        };
        pipeline.correlator = pipeline.correlator_instance("a")?;
        Ok(pipeline)
    }

    /// A correlator of the scenario's group; `instance` names its transactional id.
    fn correlator_instance(&self, instance: &str) -> anyhow::Result<Service> {
        let port = free_port()?;
        let mut env = self.correlator_env.clone();
        env.push(("CORRELATOR_LISTEN".to_string(), format!("127.0.0.1:{port}")));
        env.push(("HOSTNAME".to_string(), format!("chaos-{instance}")));
        Ok(Service::new(
            &format!("correlator-{instance}"),
            self.bin_dir.join("correlator"),
            env,
            self.directory.join(format!("correlator-{instance}.log")),
            port,
        ))
    }

    pub(crate) fn start(&mut self) -> anyhow::Result<()> {
        self.ingest.start()?;
        self.ingest.wait_ready(Duration::from_secs(60))?;
        self.correlator.start()?;
        self.correlator.wait_ready(Duration::from_secs(90))?;
        Ok(())
    }

    fn intake_url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/receiver/stsAgent/intake",
            self.ingest_port
        )
    }

    fn post_intake(&self, body: &Value) -> anyhow::Result<()> {
        let response = reqwest::blocking::Client::new()
            .post(self.intake_url())
            .header("sts-api-key", &self.api_key)
            .json(body)
            .timeout(Duration::from_secs(30))
            .send()
            .context("posting to the topology intake")?;
        let status = response.status();
        if !status.is_success() {
            bail!("topology intake answered {status}: {}", response.text()?);
        }
        Ok(())
    }
}

fn universe(settings: &Settings, cluster: &str) -> SeriesUniverse {
    SeriesUniverse {
        series: settings.series as usize,
        labels_per_series: LABELS_PER_SERIES,
        run_id: String::new(),
        cluster_name: cluster.to_string(),
    }
}

/// Passes the ring needs so that no sample is sent twice.
fn passes(settings: &Settings) -> u64 {
    (settings.rate * settings.seconds).div_ceil(settings.series) + 1
}

fn spawn_loadtest(
    settings: &Settings,
    pipeline: &Pipeline,
    post_topology: bool,
) -> anyhow::Result<(Child, PathBuf, PathBuf)> {
    let summary = pipeline.directory.join("loadtest.json");
    let log = pipeline.directory.join("loadtest.log");
    let mut command = Command::new(settings.bin_dir.join("loadtest"));
    command
        .args([
            "--url",
            &format!(
                "http://127.0.0.1:{}/receiver/prometheus/api/v1/write",
                pipeline.ingest_port
            ),
            "--rate",
            &settings.rate.to_string(),
            "--duration",
            &settings.seconds.to_string(),
            "--series",
            &settings.series.to_string(),
            "--passes",
            &passes(settings).to_string(),
            "--samples-per-request",
            &SAMPLES_PER_REQUEST.to_string(),
            "--connections",
            "8",
            "--timeout",
            "15",
            "--drain-timeout",
            "120",
            "--verify",
            "--verify-outputs",
            "--brokers",
            &pipeline.brokers,
            "--topic",
            &pipeline.topics.samples,
            "--bound-topic",
            &pipeline.topics.bound,
            "--unbound-topic",
            &pipeline.topics.unbound,
            "--correlator-group",
            &pipeline.group,
            "--settle-timeout",
            "180",
            "--cluster-name",
            &pipeline.cluster,
            "--json",
        ])
        .arg(&summary)
        .env("LOADTEST_API_KEY", &pipeline.api_key)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log)?)
        .stderr(std::fs::File::options().append(true).open(&log)?);
    if post_topology {
        command.arg("--topology");
    }
    let child = command.spawn().context("starting loadtest")?;
    Ok((child, summary, log))
}

/// Waits until `log` holds `needle` (the generator's "sending" point).
fn wait_for_line(log: &Path, needle: &str, within: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    while started.elapsed() < within {
        if std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains(needle)
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "{} did not print {needle:?} within {within:?}",
        log.display()
    )
}

pub(crate) fn seconds(since: Instant) -> String {
    format!("{:.1} s", since.elapsed().as_secs_f64())
}

/// Kills `service` (SIGKILL), leaves it down for [`DOWNTIME`], starts it
/// again and waits until it is ready: how long it was gone, as [`seconds`].
fn kill_and_restart(service: &mut Service, ready_within: Duration) -> anyhow::Result<String> {
    let killed = Instant::now();
    service.kill();
    std::thread::sleep(DOWNTIME);
    service.start()?;
    service.wait_ready(ready_within)?;
    Ok(seconds(killed))
}

/// The load of one scenario: the generator running, until it has verified.
pub(crate) struct Load {
    child: Child,
    summary: PathBuf,
    log: PathBuf,
    started: Instant,
}

/// Starts `loadtest` on `pipeline` and returns once it sends (and, with
/// `post_topology`, once it has posted the topology the series bind to).
pub(crate) fn start_load(
    settings: &Settings,
    pipeline: &Pipeline,
    post_topology: bool,
) -> anyhow::Result<Load> {
    let (child, summary, log) = spawn_loadtest(settings, pipeline, post_topology)?;
    wait_for_line(&log, "pre-encoded", Duration::from_secs(300))?;
    if post_topology {
        wait_for_line(&log, "posted", Duration::from_secs(120))?;
    }
    Ok(Load {
        child,
        summary,
        log,
        started: Instant::now(),
    })
}

/// What a scenario did to the pipeline and what it checked on the way.
#[derive(Default)]
pub(crate) struct Record {
    pub(crate) fault: Vec<String>,
    pub(crate) checks: Vec<(String, bool)>,
}

impl Record {
    pub(crate) fn step(&mut self, step: impl Into<String>) {
        let step = step.into();
        eprintln!("chaos:   {step}");
        self.fault.push(step);
    }

    pub(crate) fn check(&mut self, check: impl Into<String>, ok: bool) {
        self.checks.push((check.into(), ok));
    }
}

/// Runs one scenario from start to verdict.
pub fn run(scenario: Scenario, settings: &Settings, broker: &Broker) -> anyhow::Result<Outcome> {
    let mut pipeline = Pipeline::new(
        scenario.name(),
        scenario.exactly_once(),
        settings,
        broker.bootstrap(),
    )?;
    pipeline.start()?;
    let mut record = Record::default();

    // The materializer scenario posts the topology itself, as two snapshots:
    // the first with a decoy component the second leaves out.
    let universe = universe(settings, &pipeline.cluster);
    let all_components = components(&universe, passes(settings), 0);
    let decoy = SyntheticComponent {
        external_id: format!("urn:kubernetes:/{}:chaos:pod/decoy-0", pipeline.cluster),
        type_name: "pod",
        name: "decoy-0".into(),
    };
    let materializer = scenario == Scenario::MaterializerKill;
    if materializer {
        let mut first = all_components.clone();
        first.push(decoy.clone());
        for body in snapshot_requests(&pipeline.cluster, &first, now_seconds()) {
            pipeline.post_intake(&body)?;
        }
    }

    let load = start_load(settings, &pipeline, !materializer)?;
    std::thread::sleep(Duration::from_secs(settings.seconds / 3));
    let fault = &mut record.fault;
    let checks = &mut record.checks;

    match scenario {
        Scenario::BrokerRestart => {
            let stopping = Instant::now();
            broker.stop()?;
            fault.push(format!("broker stopped (SIGTERM) in {}", seconds(stopping)));
            std::thread::sleep(DOWNTIME);
            let starting = Instant::now();
            broker.start()?;
            fault.push(format!(
                "broker started again in {}; down {}",
                seconds(starting),
                seconds(stopping)
            ));
        }
        Scenario::BrokerFreeze => {
            // Whether the controller fences the broker when it wakes is a race
            // with the broker's first heartbeat (won about 3 times in 4): freeze
            // again until it has been fenced.
            let before = broker.times_fenced();
            let mut fenced = false;
            for attempt in 1..=FREEZE_ATTEMPTS {
                let frozen = Instant::now();
                broker.freeze(FREEZE)?;
                let frozen_for = seconds(frozen);
                // The fence, if any, comes within moments of waking.
                std::thread::sleep(Duration::from_secs(2));
                fenced = broker.times_fenced() > before;
                fault.push(format!(
                    "broker frozen (SIGSTOP) and let go (SIGCONT) after {frozen_for} (attempt {attempt}): {}",
                    if fenced { "fenced by its controller" } else { "not fenced" }
                ));
                if fenced {
                    break;
                }
            }
            checks.push((
                "the broker's controller fenced it (its log says so)".to_string(),
                fenced,
            ));
        }
        Scenario::IngestKill => {
            let back = kill_and_restart(&mut pipeline.ingest, Duration::from_secs(60))?;
            fault.push("ingest killed (SIGKILL)".into());
            fault.push(format!("ingest serving again after {back}"));
        }
        Scenario::CorrelatorKill | Scenario::CorrelatorKillExactlyOnce => {
            let back = kill_and_restart(&mut pipeline.correlator, Duration::from_secs(120))?;
            fault.push("correlator killed (SIGKILL)".into());
            fault.push(format!("correlator ready again after {back}"));
        }
        Scenario::CorrelatorJoinLeave => {
            let mut second = pipeline.correlator_instance("b")?;
            let joining = Instant::now();
            second.start()?;
            second.wait_ready(Duration::from_secs(120))?;
            fault.push(format!(
                "second correlator joined, ready in {}",
                seconds(joining)
            ));
            std::thread::sleep(Duration::from_secs(settings.seconds / 3));
            let leaving = Instant::now();
            let status = second.terminate()?;
            let clean = status.is_some_and(|status| status.success());
            fault.push(format!(
                "second correlator left (SIGTERM): {} after {}",
                status.map(|s| s.to_string()).unwrap_or_default(),
                seconds(leaving)
            ));
            checks.push(("the leaving correlator exited 0".to_string(), clean));
        }
        Scenario::MaterializerKill => {
            let half = all_components.len() / 2;
            let collected = now_seconds();
            pipeline.post_intake(&intake_request(
                &pipeline.cluster,
                &all_components[..half],
                true,
                false,
                collected,
            ))?;
            // Give the materializer the open snapshot's first part, then kill it.
            std::thread::sleep(Duration::from_secs(1));
            let killed = Instant::now();
            pipeline.correlator.kill();
            fault.push(format!(
                "correlator killed (SIGKILL) with a snapshot open: {half} of {} components received",
                all_components.len()
            ));
            pipeline.post_intake(&intake_request(
                &pipeline.cluster,
                &all_components[half..],
                false,
                true,
                collected,
            ))?;
            fault.push("the snapshot's last part posted while the correlator was down".into());
            std::thread::sleep(DOWNTIME);
            pipeline.correlator.start()?;
            pipeline.correlator.wait_ready(Duration::from_secs(120))?;
            fault.push(format!("correlator ready again after {}", seconds(killed)));
        }
    }

    conclude(settings, pipeline, load, record, |pipeline, record| {
        if materializer {
            let (present, decoy_deleted) =
                wait_for_snapshot(pipeline, &all_components, &decoy.external_id)?;
            record.check(
                format!(
                    "every component of the completed snapshot is in {} ({present} of {})",
                    pipeline.topics.topology,
                    all_components.len()
                ),
                present == all_components.len(),
            );
            record.check(
                "the component the snapshot left out is deleted",
                decoy_deleted,
            );
        }
        Ok(())
    })
}

/// Waits for the load to end (its verification included), runs
/// `after_load`, stops the services with SIGTERM and gives the verdict.
pub(crate) fn conclude(
    settings: &Settings,
    mut pipeline: Pipeline,
    mut load: Load,
    mut record: Record,
    after_load: impl FnOnce(&Pipeline, &mut Record) -> anyhow::Result<()>,
) -> anyhow::Result<Outcome> {
    let deadline = Duration::from_secs(settings.seconds + 120 + 180 + 300);
    let status = wait_child(&mut load.child, deadline)?;
    record.fault.push(format!(
        "load ran {} in all (sending, draining, verifying)",
        seconds(load.started)
    ));
    let ingest_peak_rss_bytes = pipeline.ingest.peak_rss_bytes();
    let summary: Value = serde_json::from_slice(
        &std::fs::read(&load.summary)
            .with_context(|| format!("loadtest wrote no summary; see {}", load.log.display()))?,
    )?;
    record.check("loadtest's verification passed (exit 0)", status.success());
    after_load(&pipeline, &mut record)?;

    let correlator_exit = pipeline.correlator.terminate()?;
    record.check(
        "the correlator exits 0 on SIGTERM",
        correlator_exit.is_some_and(|status| status.success()),
    );
    let ingest_exit = pipeline.ingest.terminate()?;
    record.check(
        "ingest exits 0 on SIGTERM",
        ingest_exit.is_some_and(|status| status.success()),
    );

    let number = |path: &[&str]| -> u64 {
        let mut value = &summary;
        for key in path {
            value = &value[*key];
        }
        value.as_u64().unwrap_or(0)
    };
    let outcome_counts = |name: &str| number(&["verify", "counts", name]);
    let output_counts = |name: &str| number(&["verify", "outputs", "counts", name]);
    let missing = outcome_counts("missing");
    let outputs_missing = output_counts("missing");
    let outputs_duplicated = output_counts("duplicated");
    let acknowledged = number(&["totals", "samples_acknowledged"]);
    record.check("samples were acknowledged", acknowledged > 0);
    record.check(
        "no acknowledged sample is missing from the samples topic",
        summary["verify"]["counts"]["missing"].is_u64() && missing == 0,
    );
    record.check(
        "every sample of the samples topic came out of the join",
        summary["verify"]["outputs"]["counts"]["missing"].is_u64()
            && outputs_missing == 0
            && number(&["verify", "outputs", "settled", "lag"]) == 0,
    );
    if pipeline.exactly_once {
        record.check(
            "exactly-once: no sample came out of the join twice",
            outputs_duplicated == 0,
        );
    }
    let responses_by_status = summary["totals"]["responses_by_status"]
        .as_object()
        .map(|statuses| {
            statuses
                .iter()
                .map(|(status, count)| (status.clone(), count.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    let passed = record.checks.iter().all(|(_, ok)| *ok);
    Ok(Outcome {
        scenario: pipeline.name.clone(),
        fault: record.fault,
        samples_sent: number(&["totals", "samples_sent"]),
        samples_acknowledged: acknowledged,
        requests_acknowledged: number(&["totals", "requests_acknowledged"]),
        retries: number(&["totals", "retries"]),
        responses_by_status,
        latency_p99_ms: summary["totals"]["latency_ms"]["p99"]
            .as_f64()
            .unwrap_or(0.0),
        found: outcome_counts("found"),
        missing,
        duplicated: outcome_counts("duplicated"),
        found_unacknowledged: outcome_counts("found_unacknowledged"),
        outputs_expected: output_counts("expected"),
        outputs_bound: output_counts("bound"),
        outputs_unbound: output_counts("unbound"),
        outputs_missing,
        outputs_duplicated,
        correlator_settle_seconds: summary["verify"]["outputs"]["settled"]["seconds"]
            .as_f64()
            .unwrap_or(0.0),
        ingest_peak_rss_bytes,
        checks: record.checks,
        passed,
        directory: pipeline.directory.clone(),
    })
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs_f64())
        .unwrap_or(0.0)
}

fn wait_child(child: &mut Child, within: Duration) -> anyhow::Result<std::process::ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if started.elapsed() > within {
            let _ = child.kill();
            bail!("loadtest still running after {within:?}; killed");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Polls the compacted topology topic until the second snapshot has taken
/// effect (or 60 s pass): how many of `components` are present, and whether
/// `decoy` has been deleted.
fn wait_for_snapshot(
    pipeline: &Pipeline,
    components: &[SyntheticComponent],
    decoy: &str,
) -> anyhow::Result<(usize, bool)> {
    let started = Instant::now();
    loop {
        let mut latest: BTreeMap<Vec<u8>, bool> = BTreeMap::new();
        read_topic(
            &pipeline.brokers,
            &pipeline.topics.topology,
            Duration::from_secs(30),
            &mut |record| {
                if let Some(key) = record.key {
                    latest.insert(key.to_vec(), !record.payload.is_empty());
                }
            },
        )?;
        let live = |external_id: &str| {
            latest
                .iter()
                .any(|(key, live)| *live && key.ends_with(external_id.as_bytes()))
        };
        let present = components
            .iter()
            .filter(|component| live(&component.external_id))
            .count();
        let decoy_deleted = !live(decoy);
        if (present == components.len() && decoy_deleted) || started.elapsed().as_secs() > 60 {
            return Ok((present, decoy_deleted));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}
