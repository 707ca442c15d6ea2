//! The parts under test, as real processes: a private Kafka broker run by
//! `deploy/local/kafka.sh`, and the ingest, correlator and loadtest binaries.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The repository's root, where `deploy/local/kafka.sh` lives.
pub fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("chaos/ has a parent")
        .to_path_buf()
}

/// A single-node KRaft broker of its own, on its own ports and data directory,
/// so stopping it touches nothing else on the machine.
#[derive(Clone)]
pub struct Broker {
    pub port: u16,
    controller_port: u16,
    pub state_dir: PathBuf,
    /// `KAFKA_HEAP_OPTS` for kafka.sh; `None` leaves the caller's or kafka.sh's own.
    heap_opts: Option<&'static str>,
}

impl Broker {
    pub fn new(port: u16, state_dir: PathBuf) -> Broker {
        Broker {
            port,
            controller_port: port + 1,
            state_dir,
            heap_opts: Some("-Xms256m -Xmx768m"),
        }
    }

    /// A broker with kafka.sh's own heap (or the caller's `KAFKA_HEAP_OPTS`),
    /// as the benchmarks run it.
    pub fn with_default_heap(port: u16, controller_port: u16, state_dir: PathBuf) -> Broker {
        Broker {
            port,
            controller_port,
            state_dir,
            heap_opts: None,
        }
    }

    /// `KAFKA_HEAP_OPTS` for kafka.sh.
    pub fn with_heap(mut self, heap_opts: &'static str) -> Broker {
        self.heap_opts = Some(heap_opts);
        self
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn script(&self, action: &str) -> anyhow::Result<()> {
        let log = self.state_dir.with_extension("script.log");
        std::fs::create_dir_all(&self.state_dir)?;
        let mut command = Command::new("bash");
        command
            .arg(repository_root().join("deploy/local/kafka.sh"))
            .arg(action)
            .env("KAFKA_PORT", self.port.to_string())
            .env("KAFKA_CONTROLLER_PORT", self.controller_port.to_string())
            .env("KAFKA_STATE_DIR", &self.state_dir);
        if let Some(heap_opts) = self.heap_opts {
            command.env("KAFKA_HEAP_OPTS", heap_opts);
        }
        let status = command
            .stdout(File::options().create(true).append(true).open(&log)?)
            .stderr(File::options().create(true).append(true).open(&log)?)
            .status()
            .with_context(|| format!("running kafka.sh {action}"))?;
        if !status.success() {
            bail!("kafka.sh {action} failed ({status}); see {}", log.display());
        }
        Ok(())
    }

    pub fn start(&self) -> anyhow::Result<()> {
        self.script("start")
    }

    /// SIGTERM, as an orderly broker shutdown (kafka.sh escalates to SIGKILL after 30 s).
    pub fn stop(&self) -> anyhow::Result<()> {
        self.script("stop")
    }

    /// The broker's process id, from kafka.sh's pid file.
    pub fn pid(&self) -> anyhow::Result<u32> {
        let file = self.state_dir.join("kafka.pid");
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        text.trim()
            .parse()
            .with_context(|| format!("{} holds no pid", file.display()))
    }

    /// Stops the broker's process dead (SIGSTOP) for `pause`, then lets it go
    /// on (SIGCONT): as a machine that stalls, the broker misses its own
    /// heartbeats and its controller fences it for a moment, with no restart.
    pub fn freeze(&self, pause: Duration) -> anyhow::Result<()> {
        let pid = self.pid()?;
        signal(pid, "STOP")?;
        std::thread::sleep(pause);
        signal(pid, "CONT")
    }

    /// How often the broker's controller has fenced it so far (its log).
    pub fn times_fenced(&self) -> usize {
        std::fs::read_to_string(self.state_dir.join("kafka.log"))
            .unwrap_or_default()
            .matches("Fencing broker")
            .count()
    }

    /// Stops the broker and deletes its data: every run starts empty.
    pub fn reset(&self) -> anyhow::Result<()> {
        self.script("reset")
    }
}

/// One of the pipeline's services as a child process, restartable with the
/// same settings, its output appended to one log file across restarts.
pub struct Service {
    pub name: String,
    binary: PathBuf,
    env: Vec<(String, String)>,
    pub log: PathBuf,
    pub health_port: u16,
    args: Vec<String>,
    /// The path that answers 200 once the service is ready.
    ready_path: &'static str,
    /// Whether the child sees this process's environment (under `env`), or only `PATH`.
    inherit_env: bool,
    child: Option<Child>,
}

impl Service {
    pub fn new(
        name: &str,
        binary: PathBuf,
        env: Vec<(String, String)>,
        log: PathBuf,
        health_port: u16,
    ) -> Service {
        Service {
            name: name.to_string(),
            binary,
            env,
            log,
            health_port,
            args: Vec::new(),
            ready_path: "/readyz",
            inherit_env: false,
            child: None,
        }
    }

    /// Command-line arguments for every start.
    pub fn with_args(mut self, args: Vec<String>) -> Service {
        self.args = args;
        self
    }

    /// Readiness at `path` rather than `/readyz`.
    pub fn with_ready_path(mut self, path: &'static str) -> Service {
        self.ready_path = path;
        self
    }

    /// The child inherits this process's environment, `env` on top.
    pub fn inheriting_env(mut self) -> Service {
        self.inherit_env = true;
        self
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process was started and has not exited.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    pub fn start(&mut self) -> anyhow::Result<()> {
        let log = File::options().create(true).append(true).open(&self.log)?;
        let mut command = Command::new(&self.binary);
        if !self.inherit_env {
            command
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default());
        }
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for (name, value) in &self.env {
            command.env(name, value);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits for `/readyz` (or the ready path) to answer 200; fails early if the process exits.
    pub fn wait_ready(&mut self, within: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let url = format!("http://127.0.0.1:{}{}", self.health_port, self.ready_path);
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        loop {
            if let Ok(response) = client.get(&url).send()
                && response.status().is_success()
            {
                return Ok(started.elapsed());
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "{} exited ({status}) before it was ready; see {}",
                    self.name,
                    self.log.display()
                );
            }
            if started.elapsed() > within {
                bail!(
                    "{} not ready within {within:?}; see {}",
                    self.name,
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGKILL: no drain, no final commit, nothing flushed.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        signal(child.id(), "TERM")?;
        // Bounded: a process that does not exit in time is killed and
        // reported as not having exited cleanly.
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait()? {
                return Ok(Some(status));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        Ok(None)
    }

    /// Peak resident memory of the running process so far, from /proc.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        let child = self.child.as_ref()?;
        peak_rss_of(child.id())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()?;
    if !status.success() {
        bail!("kill -{signal} {pid} failed");
    }
    Ok(())
}

/// `VmHWM` of a process: its peak resident set.
pub fn peak_rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
