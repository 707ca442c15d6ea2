//! A real Prometheus 3 writing to the `ingest` binary for about a minute:
//! remote-write 2.0 with the `sts-api-key` header as tenant alpha, 1.0 with
//! basic auth as tenant beta, scraping a client_golang target with native and
//! classic histograms, exemplars, help and units (`prometheus3-target/`).
//! Then what Prometheus's own counters say it sent, with nothing failed,
//! retried or dropped, is what each tenant's records in Kafka hold: samples,
//! histograms, exemplars and metadata, exactly.
//!
//! Prometheus and the target come from `scripts/prometheus3.sh` (built once
//! from the Go module proxy into a cache, then reused).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{IngestProcess, TempDir};
use proto::prometheus::WriteRequest;
use proto::{Message, v2};

/// How long Prometheus scrapes and writes before the counts are compared.
const WRITE_SECONDS: u64 = 60;

/// A child process killed when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Prometheus binary and the scrape target, installed or built if missing.
fn tools() -> (PathBuf, PathBuf) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/prometheus3.sh");
    let output = Command::new("bash")
        .arg(script)
        .stderr(Stdio::inherit())
        .output()
        .expect("running scripts/prometheus3.sh");
    assert!(output.status.success(), "scripts/prometheus3.sh failed");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let mut lines = stdout.lines().map(PathBuf::from);
    (lines.next().unwrap(), lines.next().unwrap())
}

fn get(url: &str) -> Option<String> {
    let output = Command::new("curl")
        .args(["-fsS", "--max-time", "10", url])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

fn wait_for(url: &str, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(url).is_none() {
        assert!(
            Instant::now() < deadline,
            "{what} not up within 60 s:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn log_file(dir: &TempDir, name: &str) -> (PathBuf, std::fs::File) {
    let path = dir.0.join(name);
    let file = std::fs::File::create(&path).unwrap();
    (path, file)
}

/// The configuration: the two remote writes, and the scrape job while `scraping`.
fn prometheus_config(ingest_url: &str, target: Option<&str>) -> String {
    let scrape = match target {
        // Protobuf scraping (which scrape_native_histograms selects) is what
        // carries native histograms; classic ones are kept beside them.
        Some(target) => format!(
            "scrape_configs:\n  - job_name: demo\n    scrape_native_histograms: true\n    \
             always_scrape_classic_histograms: true\n    static_configs:\n      - targets: ['{target}']\n"
        ),
        None => String::new(),
    };
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n{scrape}\
         remote_write:\n\
         \x20 - name: v2\n    url: {ingest_url}\n    protobuf_message: io.prometheus.write.v2.Request\n\
         \x20   headers:\n      sts-api-key: {key_a}\n    send_exemplars: true\n    send_native_histograms: true\n\
         \x20   queue_config:\n      batch_send_deadline: 1s\n\
         \x20 - name: v1\n    url: {ingest_url}\n    basic_auth:\n      username: apikey\n      password: {key_b}\n\
         \x20   send_exemplars: true\n    send_native_histograms: true\n\
         \x20   queue_config:\n      batch_send_deadline: 1s\n    metadata_config:\n      send_interval: 5s\n",
        key_a = common::KEY_A,
        key_b = common::KEY_B,
    )
}

/// Prometheus's `prometheus_remote_storage_*` counters of one remote write,
/// by the metric's name without that prefix.
fn remote_storage_counters(metrics: &str, remote_name: &str) -> BTreeMap<String, f64> {
    let wanted = format!("remote_name=\"{remote_name}\"");
    let mut counters = BTreeMap::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("prometheus_remote_storage_") else {
            continue;
        };
        let Some((series, value)) = rest.rsplit_once(' ') else {
            continue;
        };
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        // Counters labelled by reason besides (the dropped ones) are added up.
        if labels.contains(&wanted) {
            *counters.entry(name.to_string()).or_default() += value.parse::<f64>().unwrap();
        }
    }
    counters
}

const SENT: [&str; 4] = [
    "samples_total",
    "histograms_total",
    "exemplars_total",
    "metadata_total",
];

/// Waits until both queues have sent everything and their counters stand
/// still (longer than the metadata send interval), and returns them.
fn settled_counters(prometheus: &str) -> [BTreeMap<String, f64>; 2] {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut previous: Option<[BTreeMap<String, f64>; 2]> = None;
    let mut still_since = Instant::now();
    loop {
        let metrics = get(&format!("{prometheus}/metrics")).unwrap_or_default();
        let current = [
            remote_storage_counters(&metrics, "v2"),
            remote_storage_counters(&metrics, "v1"),
        ];
        let pending: f64 = current
            .iter()
            .flat_map(|counters| {
                ["samples_pending", "histograms_pending", "exemplars_pending"]
                    .map(|name| counters.get(name).copied().unwrap_or(0.0))
            })
            .sum();
        let sent = |counters: &[BTreeMap<String, f64>; 2]| {
            counters
                .iter()
                .map(|c| SENT.map(|name| c.get(name).copied()))
                .collect::<Vec<_>>()
        };
        if previous.as_ref().map(sent) != Some(sent(&current)) || pending > 0.0 {
            still_since = Instant::now();
        } else if still_since.elapsed() > Duration::from_secs(8) {
            return current;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus's queues did not settle: {current:?}"
        );
        previous = Some(current);
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// What one tenant's records hold.
#[derive(Debug, Default)]
struct Stored {
    samples: usize,
    histograms: usize,
    exemplars: usize,
    /// Exemplars in series that carry nothing else (as Prometheus 3 sends them).
    exemplars_alone: usize,
    /// 1.0: metadata entries (each request's go to every partition).
    metadata_entries: usize,
    /// 1.0: distinct (family, type, help, unit).
    metadata_v1: BTreeSet<(String, String, String, String)>,
    /// 2.0: per series name, its distinct (type, help, unit).
    metadata_v2: BTreeMap<String, BTreeSet<(String, String, String)>>,
}

/// A metric type as `/api/v1/metadata` names it (`counter`, ...; 0 is
/// `unknown` in 1.0 and `unspecified` in 2.0).
fn type_name(protocol_name: Option<&str>) -> String {
    protocol_name
        .unwrap_or("invalid")
        .trim_start_matches("METRIC_TYPE_")
        .to_ascii_lowercase()
}

impl Stored {
    fn add_series(&mut self, samples: usize, histograms: usize, exemplars: usize) {
        self.samples += samples;
        self.histograms += histograms;
        self.exemplars += exemplars;
        if samples == 0 && histograms == 0 {
            self.exemplars_alone += exemplars;
        }
    }
}

fn read_stored(topic: &str) -> BTreeMap<String, Stored> {
    let mut stored: BTreeMap<String, Stored> = BTreeMap::new();
    for record in common::read_all(topic) {
        let tenant = stored.entry(record.headers["tenant"].clone()).or_default();
        if record.headers["content-type"] == proto::CONTENT_TYPE_V2 {
            let request = v2::Request::decode(record.payload.as_slice()).unwrap();
            let symbol = |reference: u32| request.symbols[reference as usize].clone();
            for series in &request.timeseries {
                let (samples, histograms) = (series.samples.len(), series.histograms.len());
                tenant.add_series(samples, histograms, series.exemplars.len());
                let name = series
                    .labels_refs
                    .chunks(2)
                    .find(|pair| request.symbols[pair[0] as usize] == "__name__")
                    .map(|pair| symbol(pair[1]))
                    .unwrap_or_default();
                let metadata = series.metadata.unwrap_or_default();
                tenant.metadata_v2.entry(name).or_default().insert((
                    type_name(
                        v2::metadata::MetricType::try_from(metadata.r#type)
                            .ok()
                            .map(|kind| kind.as_str_name()),
                    ),
                    symbol(metadata.help_ref),
                    symbol(metadata.unit_ref),
                ));
            }
        } else {
            let request = WriteRequest::decode(record.payload.as_slice()).unwrap();
            for series in &request.timeseries {
                let (samples, histograms) = (series.samples.len(), series.histograms.len());
                tenant.add_series(samples, histograms, series.exemplars.len());
            }
            tenant.metadata_entries += request.metadata.len();
            for entry in request.metadata {
                tenant.metadata_v1.insert((
                    entry.metric_family_name,
                    type_name(
                        proto::prometheus::metric_metadata::MetricType::try_from(entry.r#type)
                            .ok()
                            .map(|kind| kind.as_str_name()),
                    ),
                    entry.help,
                    entry.unit,
                ));
            }
        }
    }
    stored
}

/// `/api/v1/metadata`: per metric family, its (type, help, unit) as Prometheus holds them.
fn prometheus_metadata(prometheus: &str) -> BTreeMap<String, (String, String, String)> {
    let body = get(&format!("{prometheus}/api/v1/metadata")).expect("metadata API");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut families = BTreeMap::new();
    for (family, entries) in answer["data"].as_object().expect("metadata data") {
        let entries = entries.as_array().unwrap();
        assert_eq!(entries.len(), 1, "one metadata of {family}: {entries:?}");
        let field = |name: &str| entries[0][name].as_str().unwrap_or_default().to_string();
        families.insert(
            family.clone(),
            (field("type"), field("help"), field("unit")),
        );
    }
    families
}

/// The family a series of a scraped family is named after.
fn family_of<'a, V>(name: &'a str, families: &BTreeMap<String, V>) -> Option<&'a str> {
    if families.contains_key(name) {
        return Some(name);
    }
    ["_bucket", "_sum", "_count", "_total"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .filter(|family| families.contains_key(*family))
}

#[test]
fn prometheus_3_loses_nothing_it_sends_over_either_protocol() {
    let (prometheus_bin, target_bin) = tools();
    let dir = TempDir::new();
    let ingest = IngestProcess::start_for_two_tenants(env!("CARGO_BIN_EXE_ingest"), &dir, &[]);
    let ingest_url = ingest.url("/receiver/prometheus/api/v1/write");

    let target_address = format!("127.0.0.1:{}", common::free_port());
    let (target_log, target_log_file) = log_file(&dir, "target.log");
    let _target = Running(
        Command::new(&target_bin)
            .args(["-listen", &target_address])
            .stdout(Stdio::null())
            .stderr(target_log_file)
            .spawn()
            .expect("starting the scrape target"),
    );
    wait_for(
        &format!("http://{target_address}/metrics"),
        "the target",
        &target_log,
    );

    let config = dir.write(
        "prometheus.yml",
        &prometheus_config(&ingest_url, Some(&target_address)),
    );
    let prometheus_port = common::free_port();
    let prometheus = format!("http://127.0.0.1:{prometheus_port}");
    let (prometheus_log, prometheus_log_file) = log_file(&dir, "prometheus.log");
    let _prometheus = Running(
        common::prometheus_command(&prometheus_bin, &dir, &config, prometheus_port) // Exemplars are kept (and so sent) only with exemplar storage; 2.0
            // carries metadata only from metadata records in the WAL.
            .arg("--enable-feature=exemplar-storage,metadata-wal-records")
            .arg("--web.enable-lifecycle")
            .stdout(Stdio::null())
            .stderr(prometheus_log_file)
            .spawn()
            .expect("starting prometheus"),
    );
    wait_for(
        &format!("{prometheus}/-/ready"),
        "prometheus",
        &prometheus_log,
    );
    let logs = || {
        format!(
            "prometheus log:\n{}\ningest log:\n{}",
            std::fs::read_to_string(&prometheus_log).unwrap_or_default(),
            ingest.log_text()
        )
    };

    std::thread::sleep(Duration::from_secs(WRITE_SECONDS));
    let families = prometheus_metadata(&prometheus);
    assert!(
        families.contains_key("demo_request_duration_seconds"),
        "{families:?}"
    );

    // No more scraping: the target's series go stale (stale markers are
    // samples too), then nothing new is written and the queues drain.
    std::fs::write(&config, prometheus_config(&ingest_url, None)).unwrap();
    let reload = Command::new("curl")
        .args(["-fsS", "-X", "POST", &format!("{prometheus}/-/reload")])
        .status()
        .unwrap();
    assert!(reload.success(), "reload failed\n{}", logs());
    let [sent_v2, sent_v1] = settled_counters(&prometheus);
    let counter = |counters: &BTreeMap<String, f64>, name: &str| -> usize {
        counters.get(name).copied().unwrap_or(0.0) as usize
    };
    for (remote, counters) in [("v2", &sent_v2), ("v1", &sent_v1)] {
        for (name, value) in counters {
            let lost = name.contains("_failed_")
                || name.contains("_retried_")
                || name.contains("_dropped_")
                || name == "enqueue_retries_total";
            assert!(
                !lost || *value == 0.0,
                "{remote}: {name} = {value}\n{}",
                logs()
            );
        }
    }

    let partitions = common::partition_count(&ingest.topic) as usize;
    let stored = read_stored(&ingest.topic);
    let alpha = &stored["alpha"];
    let beta = &stored["beta"];
    eprintln!(
        "prometheus 3 sent, 2.0: {sent_v2:?}\n1.0: {sent_v1:?}\nkafka holds: alpha {:?} {:?} {:?} {:?}, beta {:?} {:?} {:?} {:?} metadata entries {}",
        alpha.samples,
        alpha.histograms,
        alpha.exemplars,
        alpha.exemplars_alone,
        beta.samples,
        beta.histograms,
        beta.exemplars,
        beta.exemplars_alone,
        beta.metadata_entries
    );

    // 2.0 (alpha): every sample, histogram and exemplar sent, once.
    assert_eq!(alpha.samples, counter(&sent_v2, "samples_total"));
    assert_eq!(alpha.histograms, counter(&sent_v2, "histograms_total"));
    assert_eq!(alpha.exemplars, counter(&sent_v2, "exemplars_total"));
    assert!(alpha.histograms > 0 && alpha.exemplars > 0);
    assert!(
        alpha.exemplars_alone > 0,
        "Prometheus sent no exemplar in a series of its own: the case is not covered"
    );
    // 1.0 (beta): the same, and every metadata entry (in every partition).
    assert_eq!(beta.samples, counter(&sent_v1, "samples_total"));
    assert_eq!(beta.histograms, counter(&sent_v1, "histograms_total"));
    assert_eq!(beta.exemplars, counter(&sent_v1, "exemplars_total"));
    assert!(beta.histograms > 0 && beta.exemplars > 0);
    assert_eq!(
        beta.metadata_entries,
        counter(&sent_v1, "metadata_total") * partitions
    );

    // Metadata as Prometheus holds it: 1.0's entries are the scraped families'
    // (with help and unit); each 2.0 series of a scraped family carries its
    // family's (Prometheus counts no 2.0 metadata, so it is compared here).
    let scraped: BTreeSet<(String, String, String, String)> = families
        .iter()
        .filter(|(family, _)| family.starts_with("demo_"))
        .map(|(family, (kind, help, unit))| {
            (family.clone(), kind.clone(), help.clone(), unit.clone())
        })
        .collect();
    let beta_demo: BTreeSet<_> = beta
        .metadata_v1
        .iter()
        .filter(|entry| entry.0.starts_with("demo_"))
        .cloned()
        .collect();
    assert_eq!(beta_demo, scraped);
    assert!(
        scraped.iter().any(|entry| entry.3 == "seconds"),
        "units: {scraped:?}"
    );
    let mut checked = 0;
    for (name, metadata) in &alpha.metadata_v2 {
        if !name.starts_with("demo_") {
            continue;
        }
        let family = family_of(name, &families)
            .unwrap_or_else(|| panic!("{name} is of no family Prometheus knows"));
        let expected = BTreeSet::from([families[family].clone()]);
        assert_eq!(metadata, &expected, "metadata of {name}");
        checked += 1;
    }
    assert!(checked >= 5, "{:?}", alpha.metadata_v2.keys());

    // ingest refused nothing.
    let ingest_metrics = get(&ingest.url("/metrics")).unwrap();
    assert!(
        !ingest_metrics.contains("ingest_refused_total{"),
        "{ingest_metrics}"
    );
}
