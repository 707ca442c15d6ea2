//! `bench`: the benchmarks on a private broker that `make bench-*` and
//! `make k6` run, one module each, on the processes of [`crate::processes`].
//! What they share is here: the broker and services stopped on every way
//! out, the run lock, the revision measured, the broker's topics read back,
//! the services' logs; `proc_stat` and `metrics` read /proc and /metrics,
//! `services` runs ingest and correlators on one broker.

pub mod correlator;
pub mod interrupt;
pub mod k6;
pub mod metrics;
pub mod pipeline;
pub mod proc_stat;
pub mod services;
pub mod sustained;
pub mod vs_prometheus;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use anyhow::{Context, bail};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::processes::{Broker, Service};

/// The services and the broker of a bench, stopped on every way out: the
/// services with SIGTERM, the broker reset (its data deleted: gigabytes of
/// records do not stay behind).
pub struct Private {
    name: &'static str,
    pub broker: Broker,
    pub services: Vec<Service>,
}

impl Private {
    /// A broker of its own on `[port, controller_port]` with its data in
    /// `work/kafka`, started afresh: one an interrupted run left behind
    /// stops, with its data.
    pub fn start(
        name: &'static str,
        [port, controller_port]: [u16; 2],
        work: &Path,
    ) -> anyhow::Result<Private> {
        let broker = Broker::with_default_heap(port, controller_port, work.join("kafka"));
        broker.reset().context("resetting the private broker")?;
        let private = Private {
            name,
            broker,
            services: Vec::new(),
        };
        interrupt::register(&private.broker, false);
        private
            .broker
            .start()
            .context("starting the private broker")?;
        Ok(private)
    }

    /// An ingest of `binary` on this broker, on the first free port from the
    /// broker's + 2, taking `api_key` and writing to the topics of `stamp`
    /// (see [`start_ingest`]), its log `work/ingest.log`; kept among the
    /// services, so it stops with them. Its port and pid.
    pub fn start_ingest(
        &mut self,
        binary: PathBuf,
        work: &Path,
        api_key: &str,
        stamp: &str,
    ) -> anyhow::Result<(u16, u32)> {
        let port = free_port_from(self.broker.port + 2);
        let keys = write_bench_keys(work, api_key)?;
        let log = work.join("ingest.log");
        let ingest = start_ingest(
            self.name,
            binary,
            &self.broker,
            port,
            &keys,
            Some(stamp),
            log,
        )?;
        let pid = ingest.pid().expect("started");
        self.services.push(ingest);
        Ok((port, pid))
    }

    /// SIGTERM to every service, waiting for each.
    pub fn stop_services(&mut self) {
        for mut service in self.services.drain(..) {
            let _ = service.terminate();
        }
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        self.stop_services();
        if let Err(error) = self.broker.reset() {
            say(self.name, &format!("resetting the broker: {error:#}"));
        }
        interrupt::unregister(&self.broker);
    }
}

/// The shape of ingest's load in `bench sustained` and `bench vs-prometheus`.
#[derive(Debug, clap::Args)]
pub struct Load {
    /// loadtest --connections: HTTP connections.
    #[arg(long, env = "BENCH_CONNECTIONS", default_value_t = 16)]
    pub connections: u64,
    /// loadtest --series: synthetic series.
    #[arg(long, env = "BENCH_SERIES", default_value_t = 200_000)]
    pub series: u64,
    /// loadtest --samples-per-request.
    #[arg(long, env = "BENCH_SAMPLES_PER_REQUEST", default_value_t = 2000)]
    pub samples_per_request: u64,
}

impl Load {
    /// The load as loadtest's arguments.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--connections".into(),
            self.connections.to_string(),
            "--series".into(),
            self.series.to_string(),
            "--samples-per-request".into(),
            self.samples_per_request.to_string(),
        ]
    }
}

/// Where the services' binaries are: `given`, or beside this binary.
pub fn bin_dir(given: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
        Some(directory) => Ok(directory.clone()),
        None => crate::binaries_beside_this_one(),
    }
}

/// Bench `name`'s ingest on `port` writing to `broker` with the keys of
/// `keys`, on top of this process's environment, started and ready within a
/// minute (the end of its log shown when not); with `stamp`, its topics are
/// `bench.samples.<stamp>` and `bench.topology.<stamp>`. Its output goes to
/// `log` (truncated first).
pub fn start_ingest(
    name: &str,
    binary: PathBuf,
    broker: &Broker,
    port: u16,
    keys: &Path,
    stamp: Option<&str>,
    log: PathBuf,
) -> anyhow::Result<Service> {
    say(
        name,
        &format!(
            "starting ingest on 127.0.0.1:{port} (Kafka {}; log {})",
            broker.bootstrap(),
            log.display()
        ),
    );
    let _ = std::fs::remove_file(&log);
    let mut env = vec![
        ("KAFKA_BROKERS", broker.bootstrap()),
        ("INGEST_LISTEN", format!("127.0.0.1:{port}")),
        ("API_KEYS_FILE", keys.display().to_string()),
    ];
    if let Some(stamp) = stamp {
        env.push(("TOPIC_SAMPLES", format!("bench.samples.{stamp}")));
        env.push(("TOPIC_TOPOLOGY_RAW", format!("bench.topology.{stamp}")));
    }
    let mut ingest = Service::new("ingest", binary, owned(env), log.clone(), port).inheriting_env();
    ingest.start()?;
    if let Err(error) = ingest.wait_ready(Duration::from_secs(60)) {
        eprintln!("{}", tail(&log, 20));
        return Err(error.context(format!(
            "ingest did not become ready; see {}",
            log.display()
        )));
    }
    Ok(ingest)
}

/// Environment variables as a [`Service`] takes them.
pub fn owned(env: Vec<(&str, String)>) -> Vec<(String, String)> {
    env.into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect()
}

pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|arg| arg.to_string()).collect()
}

/// `date +%Y%m%d%H%M%S`: the stamp in a run's topic names and report.
pub fn stamp() -> anyhow::Result<String> {
    let output = Command::new("date").arg("+%Y%m%d%H%M%S").output()?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// A message of the benchmark `name` on stderr.
pub fn say(name: &str, message: &str) {
    eprintln!("{name}: {message}");
}

/// One run of a benchmark at a time (a second would stop this one's broker
/// and clear its files): an exclusive lock on `target/<name>.lock`, held
/// until dropped. The file is opened close-on-exec, so a broker left behind
/// by a killed run does not hold it.
pub struct RunLock(#[allow(dead_code)] File);

impl RunLock {
    pub fn take(repository: &Path, name: &str) -> anyhow::Result<RunLock> {
        let path = repository.join("target").join(format!("{name}.lock"));
        std::fs::create_dir_all(path.parent().expect("target/ has a parent"))?;
        let file = File::create(&path).with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            bail!(
                "another {name} run holds {}; wait for it to finish",
                path.display()
            );
        }
        Ok(RunLock(file))
    }
}

/// The revision measured: HEAD's short hash, marked when the code differs from it.
pub fn code_revision(repository: &Path) -> String {
    let head = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(repository)
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .unwrap_or_default();
    let clean = Command::new("git")
        .args(["diff", "--quiet", "HEAD", "--"])
        .args(["correlator", "ingest", "proto", "loadtest"])
        .current_dir(repository)
        .status()
        .is_ok_and(|status| status.success());
    if clean {
        head
    } else {
        format!("{head}+uncommitted changes")
    }
}

/// `keys.toml` in `directory`: one tenant, "bench", whose key is `api_key`.
pub fn write_bench_keys(directory: &Path, api_key: &str) -> anyhow::Result<PathBuf> {
    let path = directory.join("keys.toml");
    std::fs::write(
        &path,
        format!("[[keys]]\ntenant = \"bench\"\nkey = \"{api_key}\"\n"),
    )?;
    Ok(path)
}

/// The first port from `port` up on which nothing listens on 127.0.0.1.
pub fn free_port_from(mut port: u16) -> u16 {
    let timeout = Duration::from_secs(2);
    while std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), timeout).is_ok() {
        port += 1;
    }
    port
}

/// The records topics hold: the sum of their partitions' end offsets.
pub struct Offsets(BaseConsumer);

impl Offsets {
    pub fn new(brokers: &str) -> anyhow::Result<Offsets> {
        let consumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "bench-offsets")
            .set("log_level", "3")
            .create()
            .context("creating a Kafka client to read end offsets")?;
        Ok(Offsets(consumer))
    }

    /// The end offsets of the `partitions` partitions of `topic`, summed.
    pub fn end(&self, topic: &str, partitions: u32) -> anyhow::Result<u64> {
        let mut sum = 0;
        for partition in 0..partitions {
            let (_, high) = self
                .0
                .fetch_watermarks(topic, partition as i32, Duration::from_secs(10))
                .with_context(|| format!("end offset of {topic}/{partition}"))?;
            sum += high.max(0) as u64;
        }
        Ok(sum)
    }
}

/// Bytes the broker with data in `state_dir` stores for `topic`: its
/// partitions' directories and their log segments, as compressed (`du -b`).
pub fn topic_bytes(state_dir: &Path, topic: &str) -> u64 {
    fn size(path: &Path) -> u64 {
        let Ok(metadata) = std::fs::symlink_metadata(path) else {
            return 0;
        };
        let mut bytes = metadata.len();
        if metadata.is_dir()
            && let Ok(entries) = std::fs::read_dir(path)
        {
            bytes += entries
                .flatten()
                .map(|entry| size(&entry.path()))
                .sum::<u64>();
        }
        bytes
    }
    let prefix = format!("{topic}-");
    let Ok(entries) = std::fs::read_dir(state_dir.join("data")) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|entry| {
            entry.file_name().to_str().is_some_and(|name| {
                name.strip_prefix(&prefix)
                    .is_some_and(|partition| partition.parse::<u32>().is_ok())
            })
        })
        .map(|entry| size(&entry.path()))
        .sum()
}

/// The last `lines` lines of a log, for an error message.
pub fn tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Lines of a log with WARN or ERROR in them, other than those holding `except`.
pub fn warnings_in(log: &Path, except: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| (line.contains("WARN") || line.contains("ERROR")) && !line.contains(except))
        .count()
}

/// An exit status as the shell gives it: the code, or 128 + the signal.
pub fn shell_exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(-1)
}

pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `command -v`: a path as given, or the first executable of that name on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return is_executable(Path::new(program)).then(|| PathBuf::from(program));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|directory| directory.join(program))
        .find(|path| is_executable(path))
}

/// Copies `binary` into `bin_dir` as `name`: a build by someone else in the
/// same tree must not swap a binary between runs.
pub fn copy_binary(binary: &Path, bin_dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(bin_dir)?;
    let copy = bin_dir.join(name);
    std::fs::copy(binary, &copy).with_context(|| {
        format!(
            "copying {} (build it first: cargo build --release)",
            binary.display()
        )
    })?;
    Ok(copy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_stores_the_bytes_of_its_partitions_only() {
        let state = std::env::temp_dir().join(format!("bench-topic-bytes-{}", std::process::id()));
        let data = state.join("data");
        for (directory, bytes) in [("t-0", 10), ("t-1", 20), ("t-other-0", 400), ("tt-0", 800)] {
            std::fs::create_dir_all(data.join(directory)).unwrap();
            std::fs::write(data.join(directory).join("0.log"), vec![0u8; bytes]).unwrap();
        }
        let directory_size = std::fs::metadata(data.join("t-0")).unwrap().len();
        assert_eq!(topic_bytes(&state, "t"), 30 + 2 * directory_size);
        assert_eq!(topic_bytes(&state, "absent"), 0);
        std::fs::remove_dir_all(&state).unwrap();
    }

    #[test]
    fn a_signal_exit_is_128_plus_the_signal() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(shell_exit_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(shell_exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(shell_exit_code(ExitStatus::from_raw(15)), 143);
    }
}
