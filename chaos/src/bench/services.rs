//! The services of a bench with a correlator (`correlator`, `pipeline`):
//! ingest and correlators on one private broker, topics named after the run,
//! loadtest against that ingest, and the topology they share materialized.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::metrics::correlator_counters;
use super::{Offsets, Private, RunLock, owned, say, strings};
use crate::processes::Service;

/// A bench's fixed parts: paths, binaries, topics and ports.
pub struct Services {
    /// The bench's name, for messages.
    pub name: &'static str,
    pub work: PathBuf,
    pub brokers: String,
    pub partitions: u32,
    /// When the run began (`date +%Y%m%d%H%M%S`).
    pub stamp: String,
    /// Of every topic and consumer group: `<bench>.<stamp>`.
    pub prefix: String,
    /// The key of the one tenant: `<bench>-key-0123456789`.
    pub api_key: String,
    /// loadtest's `--cluster-name`: `<bench>-cluster`.
    pub cluster: String,
    pub ingest: PathBuf,
    pub correlator: PathBuf,
    pub loadtest: PathBuf,
    pub keys: PathBuf,
    pub ingest_port: u16,
    pub correlator_port: u16,
    /// ingest's `PARTITION_BY_LABELS`: unset, its own default; set (even empty), passed on.
    pub partition_by_labels: Option<String>,
    pub kafka_pid: u32,
    pub kafka_state_dir: PathBuf,
    pub offsets: Offsets,
}

impl Services {
    /// The services of bench `name` on `private`'s broker: its keys file
    /// (one tenant) in `work`, copies of ingest, the correlator and loadtest
    /// from `bin_dir` in `work/bin` (a build by someone else in the same tree
    /// must not swap a binary between runs), ingest and the correlator on the
    /// first free ports from the broker's plus 2, every topic with
    /// `partitions` partitions.
    pub fn new(
        name: &'static str,
        work: &Path,
        private: &Private,
        partitions: u32,
        bin_dir: &Path,
    ) -> anyhow::Result<Services> {
        let copy = |name: &str| super::copy_binary(&bin_dir.join(name), &work.join("bin"), name);
        let ingest_port = super::free_port_from(private.broker.port + 2);
        let stamp = super::stamp()?;
        let api_key = format!("{name}-key-0123456789");
        Ok(Services {
            name,
            work: work.to_path_buf(),
            brokers: private.broker.bootstrap(),
            partitions,
            prefix: format!("{name}.{stamp}"),
            stamp,
            keys: super::write_bench_keys(work, &api_key)?,
            api_key,
            cluster: format!("{name}-cluster"),
            ingest: copy("ingest")?,
            correlator: copy("correlator")?,
            loadtest: copy("loadtest")?,
            ingest_port,
            correlator_port: super::free_port_from(ingest_port + 1),
            partition_by_labels: None,
            kafka_pid: private.broker.pid()?,
            kafka_state_dir: private.broker.state_dir.clone(),
            offsets: Offsets::new(&private.broker.bootstrap())?,
        })
    }

    pub fn topic(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.prefix)
    }

    pub fn ingest_url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/receiver/prometheus/api/v1/write",
            self.ingest_port
        )
    }

    /// An ingest writing to `samples_topic` and `raw_topic`, its log `log` in the work dir.
    pub fn ingest(&self, samples_topic: &str, raw_topic: &str, log: &str) -> Service {
        let mut env = vec![
            ("KAFKA_BROKERS", self.brokers.clone()),
            ("INGEST_LISTEN", format!("127.0.0.1:{}", self.ingest_port)),
            ("API_KEYS_FILE", self.keys.display().to_string()),
            ("TOPIC_PARTITIONS", self.partitions.to_string()),
            ("TOPIC_SAMPLES", samples_topic.to_string()),
            ("TOPIC_TOPOLOGY_RAW", raw_topic.to_string()),
            ("RUST_LOG", "info,librdkafka=warn".to_string()),
        ];
        if let Some(labels) = &self.partition_by_labels {
            env.push(("PARTITION_BY_LABELS", labels.clone()));
        }
        Service::new(
            "ingest",
            self.ingest.clone(),
            owned(env),
            self.work.join(log),
            self.ingest_port,
        )
        .inheriting_env()
    }

    /// A correlator named `name`: its log, output topics and consumer group.
    pub fn correlator(
        &self,
        name: &str,
        samples_topic: &str,
        raw_topic: &str,
        bindings: Option<&Path>,
        binary: &Path,
        args: &[String],
    ) -> Service {
        let mut env = vec![
            ("KAFKA_BROKERS", self.brokers.clone()),
            (
                "CORRELATOR_LISTEN",
                format!("127.0.0.1:{}", self.correlator_port),
            ),
            ("KAFKA_GROUP_ID", format!("{}-{name}", self.prefix)),
            ("TOPIC_PARTITIONS", self.partitions.to_string()),
            ("TOPIC_SAMPLES", samples_topic.to_string()),
            ("TOPIC_TOPOLOGY_RAW", raw_topic.to_string()),
            ("TOPIC_TOPOLOGY", self.topic("topology-components")),
            ("TOPIC_BOUND", self.topic(&format!("{name}.bound"))),
            ("TOPIC_UNBOUND", self.topic(&format!("{name}.unbound"))),
            ("RUST_LOG", "info,librdkafka=warn".to_string()),
        ];
        if let Some(bindings) = bindings {
            env.push(("BINDINGS_FILE", bindings.display().to_string()));
        }
        Service::new(
            "correlator",
            binary.to_path_buf(),
            owned(env),
            self.work.join(format!("{name}.log")),
            self.correlator_port,
        )
        .with_args(args.to_vec())
        .inheriting_env()
    }

    /// An ingest and a correlator named `name` on `samples_topic` and
    /// `raw_topic`, started in that order and ready, in `private`'s services.
    pub fn start_pair(
        &self,
        private: &mut Private,
        name: &str,
        samples_topic: &str,
        raw_topic: &str,
        ingest_log: &str,
    ) -> anyhow::Result<()> {
        private
            .services
            .push(self.ingest(samples_topic, raw_topic, ingest_log));
        private.services.push(self.correlator(
            name,
            samples_topic,
            raw_topic,
            None,
            &self.correlator,
            &[],
        ));
        let [ingest, correlator] = &mut private.services[..] else {
            unreachable!("two services pushed");
        };
        ingest.start()?;
        ingest.wait_ready(Duration::from_secs(150))?;
        correlator.start()?;
        correlator.wait_ready(Duration::from_secs(300))?;
        Ok(())
    }

    /// loadtest against this ingest with `args`, its stderr in `runs/<log>.log`.
    pub fn loadtest(&self, log: &str, args: &[String]) -> anyhow::Result<Command> {
        let log = self.work.join("runs").join(format!("{log}.log"));
        let mut command = Command::new(&self.loadtest);
        command
            .args(["--url", &self.ingest_url(), "--api-key", &self.api_key])
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?);
        Ok(command)
    }

    /// Runs loadtest to its end; its exit code.
    pub fn run_loadtest(&self, log: &str, args: &[String]) -> anyhow::Result<i32> {
        let status = self
            .loadtest(log, args)?
            .status()
            .with_context(|| format!("running {}", self.loadtest.display()))?;
        Ok(super::shell_exit_code(status))
    }

    /// Posts the topology of `series` synthetic series through an ingest and
    /// waits until a setup correlator's join index holds it (its materializer
    /// wrote it to the compacted components topic); both stop again. The
    /// components posted, and the seconds the materializer took.
    pub fn materialize_topology(
        &self,
        private: &mut Private,
        series: u64,
        samples_per_request: u64,
        json: bool,
    ) -> anyhow::Result<(u64, f64)> {
        let setup_samples = self.topic("setup-samples");
        let raw = self.topic("topology-raw");
        self.start_pair(private, "setup", &setup_samples, &raw, "ingest-setup.log")?;
        // One request of samples goes to the throwaway topic; what matters is the snapshot.
        let log = self.work.join("runs/topology.log");
        let mut args = [
            strings(&["--rate", "1000", "--duration", "1", "--series"]),
            vec![series.to_string(), "--samples-per-request".into()],
            vec![samples_per_request.to_string()],
            strings(&["--cluster-name", &self.cluster, "--run-id"]),
            vec![format!("{}-topology", self.prefix), "--topology".into()],
        ]
        .concat();
        if json {
            args.push("--json".into());
            args.push(self.work.join("runs/topology.json").display().to_string());
        }
        if self.run_loadtest("topology", &args)? != 0 {
            eprintln!("{}", super::tail(&log, 20));
            bail!("posting the topology failed; see {}", log.display());
        }
        let components = posted_components(&std::fs::read_to_string(&log)?).with_context(|| {
            format!(
                "loadtest did not say how many components it posted; see {}",
                log.display()
            )
        })?;
        say(
            self.name,
            &format!("posted {components} components; waiting for the materializer"),
        );
        let started = Instant::now();
        let mut indexed = 0;
        for _ in 0..3000 {
            indexed = correlator_counters(self.correlator_port).components;
            if indexed >= components {
                break;
            }
            if !private.services[1].is_running() {
                bail!(
                    "the setup correlator exited; see {}",
                    private.services[1].log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if indexed < components {
            bail!(
                "the join index holds {indexed} of {components} components after 300 s; see {}",
                private.services[1].log.display()
            );
        }
        let materialized = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
        say(
            self.name,
            &format!(
                "all {components} components in topology.components after {materialized:.1} s"
            ),
        );
        private.stop_services();
        Ok((components, materialized))
    }
}

/// `target/<name>`, the work dir of a bench that runs alone (the run lock,
/// held until dropped) and starts clean.
pub fn locked_work_dir(name: &str) -> anyhow::Result<(PathBuf, RunLock)> {
    let repository = crate::processes::repository_root();
    let lock = RunLock::take(&repository, name)?;
    let work = repository.join("target").join(name);
    clear_work_dir(&work)?;
    Ok((work, lock))
}

/// The previous run's logs, summaries and report go.
fn clear_work_dir(work: &Path) -> anyhow::Result<()> {
    let runs = work.join("runs");
    if runs.exists() {
        std::fs::remove_dir_all(&runs)?;
    }
    std::fs::create_dir_all(&runs)?;
    for entry in std::fs::read_dir(work)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".log") || name.contains(".threads-") || name.ends_with(".tsv") {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// N of loadtest's "posted N components ..." line.
fn posted_components(log: &str) -> Option<u64> {
    log.lines().find_map(|line| {
        line.strip_prefix("posted ")?
            .split(' ')
            .next()?
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_components_posted_are_read_from_loadtest_s_log() {
        let log = "sending ...\nposted 5150 components in 3 parts to http://x\n";
        assert_eq!(posted_components(log), Some(5150));
        assert_eq!(posted_components("nothing"), None);
    }
}
