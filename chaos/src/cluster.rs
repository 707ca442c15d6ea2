//! A replicated Kafka cluster for the cluster scenarios: `deploy/local/kafka.sh`
//! with `KAFKA_NODES=3`, each node in a network namespace of its own, so that a
//! scenario can cut one node off or make its link slow and lossy without
//! touching the machine's own network.
//!
//! The layout: a namespace holding only a bridge (the switch), one namespace
//! per node with its end of a veth pair on the switch (`10.219.<subnet>.<node>`),
//! and one veth pair from the caller's namespace to the switch
//! (`10.219.<subnet>.254`), so ingest, the correlator and loadtest run as usual
//! and reach the nodes over it. Every namespace is named `rwk-<pid>-...` after
//! the process that made it; they are all removed when the [`Network`] is
//! dropped, and those of processes that no longer exist when the next one is
//! made.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::processes::repository_root;

/// Every namespace and link this module makes starts with this.
const PREFIX: &str = "rwk-";
/// The project's own addresses: 10.219.0.0/16, one /24 per network.
const ADDRESS_PREFIX: &str = "10.219";
/// Last octet of the caller's end on the switch.
const HOST_OCTET: u8 = 254;
/// nftables table a fault puts in a node's namespace (removed on heal).
const FAULT_TABLE: &str = "rwk_fault";

/// The namespaces and links of one cluster.
pub struct Network {
    /// `rwk-<pid>`: the caller's end of the switch link, and the prefix of
    /// every namespace.
    name: String,
    subnet: u8,
    nodes: usize,
}

impl Network {
    /// Makes the switch, a namespace per node and the caller's link to the
    /// switch. Removes first what processes that have exited left behind.
    pub fn create(nodes: usize) -> anyhow::Result<Network> {
        remove_stale()?;
        let pid = std::process::id();
        let used = run_output("ip", &["-o", "-4", "addr", "show"])?;
        let mut subnet = (pid % 250 + 1) as u8;
        while used.contains(&format!("{ADDRESS_PREFIX}.{subnet}.")) {
            subnet = subnet % 250 + 1;
        }
        // Made before the first namespace exists, so a failure half-way is
        // cleaned up by its drop.
        let network = Network {
            name: format!("{PREFIX}{pid}"),
            subnet,
            nodes,
        };
        let switch = network.switch();
        ip(&["netns", "add", &switch])?;
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &switch, "link", "set", "br0", "up"])?;
        for node in 1..=nodes {
            let namespace = network.namespace(node);
            let port = format!("n{node}");
            ip(&["netns", "add", &namespace])?;
            ip(&[
                "-n", &switch, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", &namespace,
            ])?;
            ip(&["-n", &switch, "link", "set", &port, "master", "br0", "up"])?;
            ip(&[
                "-n",
                &namespace,
                "addr",
                "add",
                &format!("{}/24", network.address(node)),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &namespace, "link", "set", "eth0", "up"])?;
            ip(&["-n", &namespace, "link", "set", "lo", "up"])?;
        }
        ip(&[
            "link",
            "add",
            &network.name,
            "type",
            "veth",
            "peer",
            "name",
            "host",
            "netns",
            &switch,
        ])?;
        ip(&["-n", &switch, "link", "set", "host", "master", "br0", "up"])?;
        ip(&[
            "addr",
            "add",
            &format!("{ADDRESS_PREFIX}.{subnet}.{HOST_OCTET}/24"),
            "dev",
            &network.name,
        ])?;
        ip(&["link", "set", &network.name, "up"])?;
        Ok(network)
    }

    fn switch(&self) -> String {
        format!("{}-sw", self.name)
    }

    /// The network namespace node `node` (1-based) runs in.
    pub fn namespace(&self, node: usize) -> String {
        format!("{}-n{node}", self.name)
    }

    /// Node `node`'s address.
    pub fn address(&self, node: usize) -> String {
        format!("{ADDRESS_PREFIX}.{}.{node}", self.subnet)
    }

    /// Cuts node `node` off from everything, the other nodes and the clients:
    /// its namespace drops every packet in and out but its own loopback's, as
    /// a dead switch port would, without the link going down.
    pub fn isolate(&self, node: usize) -> anyhow::Result<()> {
        self.fault_rules(node, "drop")
    }

    /// Makes node `node`'s link slow and lossy: `loss_percent` of its packets
    /// dropped at random either way (nftables), and what it sends and receives
    /// held to `rate` (tbf, e.g. "4mbit"), queued up to `delay` (e.g. "200ms")
    /// and dropped past that. (This kernel has no netem.)
    pub fn degrade(
        &self,
        node: usize,
        loss_percent: u32,
        rate: &str,
        delay: &str,
    ) -> anyhow::Result<()> {
        self.fault_rules(
            node,
            &format!("numgen random mod 100 < {loss_percent} drop"),
        )?;
        for (namespace, device) in [
            (self.namespace(node), "eth0".to_string()),
            (self.switch(), format!("n{node}")),
        ] {
            run(
                "tc",
                &[
                    "-n", &namespace, "qdisc", "add", "dev", &device, "root", "tbf", "rate", rate,
                    "burst", "32kbit", "latency", delay,
                ],
            )?;
        }
        Ok(())
    }

    /// Undoes [`Self::isolate`] and [`Self::degrade`].
    pub fn heal(&self, node: usize) -> anyhow::Result<()> {
        let namespace = self.namespace(node);
        // Each may not be there; what matters is that none is afterwards.
        let _ = ip(&[
            "netns",
            "exec",
            &namespace,
            "nft",
            "delete",
            "table",
            "inet",
            FAULT_TABLE,
        ]);
        let _ = run(
            "tc",
            &["-n", &namespace, "qdisc", "del", "dev", "eth0", "root"],
        );
        let _ = run(
            "tc",
            &[
                "-n",
                &self.switch(),
                "qdisc",
                "del",
                "dev",
                &format!("n{node}"),
                "root",
            ],
        );
        let rules = run_output(
            "ip",
            &["netns", "exec", &namespace, "nft", "list", "ruleset"],
        )?;
        if rules.contains(FAULT_TABLE) {
            bail!("the fault rules of node {node} are still in place");
        }
        Ok(())
    }

    /// An nftables table in node `node`'s namespace applying `verdict` to
    /// every packet in and out but the loopback's.
    fn fault_rules(&self, node: usize, verdict: &str) -> anyhow::Result<()> {
        let rules = format!(
            "table inet {FAULT_TABLE} {{\n\
             chain input {{ type filter hook input priority 0; policy accept; iif \"lo\" accept; {verdict}; }}\n\
             chain output {{ type filter hook output priority 0; policy accept; oif \"lo\" accept; {verdict}; }}\n\
             }}\n"
        );
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.namespace(node), "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running nft (install nftables)")?;
        child
            .stdin
            .take()
            .context("nft's stdin")?
            .write_all(rules.as_bytes())?;
        let output = child.wait_with_output()?;
        if !output.status.success() {
            bail!(
                "nft in {} failed: {}",
                self.namespace(node),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    fn remove(&self) {
        for node in 1..=self.nodes {
            let _ = ip(&["netns", "del", &self.namespace(node)]);
        }
        let _ = ip(&["netns", "del", &self.switch()]);
        // Its peer's namespace is gone, so the link normally is too.
        let _ = run_quiet("ip", &["link", "del", &self.name]);
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Removes the namespaces and links named after processes that have exited.
fn remove_stale() -> anyhow::Result<()> {
    let dead = |name: &str| -> bool {
        name.strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| !PathBuf::from(format!("/proc/{pid}")).exists())
    };
    for line in run_output("ip", &["netns", "list"])?.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        if dead(name) {
            eprintln!("chaos: removing network namespace {name} left by an exited run");
            ip(&["netns", "del", name])?;
        }
    }
    for line in run_output("ip", &["-o", "link", "show"])?.lines() {
        // "7: rwk-1234@if6: <...>"
        let Some(name) = line.split(": ").nth(1) else {
            continue;
        };
        let name = name.split('@').next().unwrap_or_default();
        if dead(name) {
            ip(&["link", "del", name])?;
        }
    }
    Ok(())
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    run("ip", args)
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    run_output(program, args).map(|_| ())
}

fn run_quiet(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("{program} {} failed", args.join(" "));
    }
    Ok(())
}

fn run_output(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program} (install iproute2 and nftables)"))?;
    if !output.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A partition as the cluster's metadata describes it.
#[derive(Debug, Clone)]
pub struct PartitionState {
    pub topic: String,
    pub partition: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// Three (or `nodes`) KRaft nodes run by `kafka.sh`, in their namespaces.
/// Dropping it stops every node, then removes the network.
pub struct Cluster {
    pub nodes: usize,
    port: u16,
    state_dir: PathBuf,
    network: Network,
}

impl Cluster {
    /// Makes the network; the nodes start with [`Self::start`].
    pub fn new(nodes: usize, port: u16, state_dir: PathBuf) -> anyhow::Result<Cluster> {
        Ok(Cluster {
            nodes,
            port,
            state_dir,
            network: Network::create(nodes)?,
        })
    }

    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Every node's address and port: the clients' `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        (1..=self.nodes)
            .map(|node| format!("{}:{}", self.network.address(node), self.node_port(node)))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn node_port(&self, node: usize) -> u16 {
        self.port + 2 * (node as u16 - 1)
    }

    fn script(&self, args: &[&str]) -> anyhow::Result<()> {
        let log = self.state_dir.with_extension("script.log");
        std::fs::create_dir_all(&self.state_dir)?;
        let join = |values: Vec<String>| values.join(" ");
        let status = Command::new("bash")
            .arg(repository_root().join("deploy/local/kafka.sh"))
            .args(args)
            .env("KAFKA_NODES", self.nodes.to_string())
            .env("KAFKA_PORT", self.port.to_string())
            .env("KAFKA_CONTROLLER_PORT", (self.port + 1).to_string())
            .env(
                "KAFKA_HOSTS",
                join((1..=self.nodes).map(|n| self.network.address(n)).collect()),
            )
            .env(
                "KAFKA_NETNS",
                join(
                    (1..=self.nodes)
                        .map(|n| self.network.namespace(n))
                        .collect(),
                ),
            )
            .env("KAFKA_STATE_DIR", &self.state_dir)
            .stdout(File::options().create(true).append(true).open(&log)?)
            .stderr(File::options().create(true).append(true).open(&log)?)
            .status()
            .with_context(|| format!("running kafka.sh {}", args.join(" ")))?;
        if !status.success() {
            bail!(
                "kafka.sh {} failed ({status}); see {}",
                args.join(" "),
                log.display()
            );
        }
        Ok(())
    }

    pub fn start(&self) -> anyhow::Result<()> {
        self.script(&["start"])
    }

    pub fn stop(&self) -> anyhow::Result<()> {
        self.script(&["stop"])
    }

    /// Stops every node and deletes their data.
    pub fn reset(&self) -> anyhow::Result<()> {
        self.script(&["reset"])
    }

    /// Starts node `node` (1-based) and waits until it answers.
    pub fn start_node(&self, node: usize) -> anyhow::Result<()> {
        self.script(&["start-node", &node.to_string()])
    }

    /// SIGTERM: a controlled shutdown, leadership handed over first.
    pub fn stop_node(&self, node: usize) -> anyhow::Result<()> {
        self.script(&["stop-node", &node.to_string()])
    }

    /// SIGKILL: no controlled shutdown, nothing flushed.
    pub fn kill_node(&self, node: usize) -> anyhow::Result<()> {
        self.script(&["kill-node", &node.to_string()])
    }

    /// The partitions of `topic`, or of every topic (internal ones included) when None.
    pub fn partitions(&self, topic: Option<&str>) -> anyhow::Result<Vec<PartitionState>> {
        let client: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("log_level", "3")
            .create()?;
        let metadata = client.fetch_metadata(topic, Duration::from_secs(10))?;
        let mut partitions = Vec::new();
        for topic in metadata.topics() {
            if topic.error().is_some() {
                bail!("metadata of topic {}: {:?}", topic.name(), topic.error());
            }
            for partition in topic.partitions() {
                partitions.push(PartitionState {
                    topic: topic.name().to_string(),
                    partition: partition.id(),
                    leader: partition.leader(),
                    replicas: partition.replicas().to_vec(),
                    isr: partition.isr().to_vec(),
                });
            }
        }
        Ok(partitions)
    }

    /// The node leading the most partitions of `topic`.
    pub fn busiest_leader(&self, topic: &str) -> anyhow::Result<usize> {
        let mut led: BTreeMap<i32, usize> = BTreeMap::new();
        for partition in self.partitions(Some(topic))? {
            *led.entry(partition.leader).or_default() += 1;
        }
        led.into_iter()
            .filter(|(leader, _)| *leader >= 1)
            .max_by_key(|(_, count)| *count)
            .map(|(leader, _)| leader as usize)
            .with_context(|| format!("no partition of {topic} has a leader"))
    }

    /// Waits until every partition of every topic has a leader and all its
    /// replicas in sync; returns how long that took.
    pub fn wait_full_isr(&self, within: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let mut last = String::new();
        while started.elapsed() < within {
            match self.partitions(None) {
                Ok(partitions) => {
                    let short: Vec<String> = partitions
                        .iter()
                        .filter(|p| p.leader < 0 || p.isr.len() < p.replicas.len())
                        .map(|p| format!("{}-{} isr {:?}", p.topic, p.partition, p.isr))
                        .collect();
                    if short.is_empty() {
                        return Ok(started.elapsed());
                    }
                    last = short.join(", ");
                }
                Err(error) => last = format!("{error:#}"),
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        bail!("the ISR is not full after {within:?}: {last}")
    }

    /// The node that is the active KRaft controller, from the nodes' logs:
    /// each logs "In the new epoch N, the leader is L." when the quorum
    /// elects; the highest epoch is the current one.
    pub fn active_controller(&self) -> anyhow::Result<usize> {
        let marker = "In the new epoch ";
        let mut latest: Option<(u64, usize)> = None;
        for node in 1..=self.nodes {
            let log = self.state_dir.join(format!("node{node}/kafka.log"));
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            for line in text.lines() {
                let Some(rest) = line.split(marker).nth(1) else {
                    continue;
                };
                let Some((epoch, leader)) = rest.split_once(", the leader is ") else {
                    continue;
                };
                let leader = leader.trim_end_matches(|c: char| !c.is_ascii_digit());
                let leader = leader.split('.').next().unwrap_or_default();
                if let (Ok(epoch), Ok(leader)) = (epoch.parse::<u64>(), leader.parse::<usize>())
                    && latest.is_none_or(|(best, _)| epoch > best)
                {
                    latest = Some((epoch, leader));
                }
            }
        }
        latest
            .map(|(_, leader)| leader)
            .context("no node has logged an elected controller")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The nodes must be gone before their namespaces are.
        if let Err(error) = self.stop() {
            eprintln!("chaos: stopping the cluster: {error:#}");
        }
    }
}
