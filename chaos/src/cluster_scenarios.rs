//! The fault scenarios of a replicated cluster (`make chaos-cluster`): three
//! combined KRaft nodes, topics on three replicas with `min.insync.replicas=2`,
//! each node in its network namespace ([`crate::cluster`]). The pipeline and
//! the verification are those of [`crate::scenarios`]; the faults are the ones
//! production clusters have: a partition leader or the active controller
//! killed, a node cut off by the network, a rolling restart, too few in-sync
//! replicas, a slow and lossy link.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::cluster::Cluster;
use crate::scenarios::{Outcome, Pipeline, Record, Settings, conclude, seconds, start_load};

/// How long a SIGKILLed node stays down before it is started again.
const KILLED_FOR: Duration = Duration::from_secs(10);
/// How long the cluster may take to have every replica in sync again.
const ISR_RECOVERY: Duration = Duration::from_secs(180);
/// The slow link: packets dropped at random, bandwidth, and the most a
/// packet waits in its queue.
const LINK_LOSS_PERCENT: u32 = 5;
const LINK_RATE: &str = "4mbit";
const LINK_DELAY: &str = "200ms";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterScenario {
    /// The node leading the most `metrics.samples` partitions killed with
    /// SIGKILL, started again 10 s later.
    LeaderKill,
    /// The same with exactly-once output: no sample may come out twice.
    LeaderKillExactlyOnce,
    /// The node leading the most `metrics.samples` partitions cut off from the
    /// other nodes and from the clients, then healed.
    NodePartition,
    /// The same with exactly-once output.
    NodePartitionExactlyOnce,
    /// The active KRaft controller killed with SIGKILL, started again 10 s later.
    ControllerKill,
    /// Every node stopped (SIGTERM) and started again in turn, each waiting
    /// for every replica to be in sync again, as Strimzi rolls a cluster.
    RollingRestart,
    /// Two of three nodes stopped: fewer in-sync replicas than
    /// `min.insync.replicas`, so nothing may be acknowledged until one is back.
    TwoNodesDown,
    /// The link of the node leading the most `metrics.samples` partitions made
    /// slow and lossy, then healed.
    SlowLossyLink,
}

impl ClusterScenario {
    pub const ALL: [ClusterScenario; 8] = [
        ClusterScenario::LeaderKill,
        ClusterScenario::NodePartition,
        ClusterScenario::LeaderKillExactlyOnce,
        ClusterScenario::NodePartitionExactlyOnce,
        ClusterScenario::ControllerKill,
        ClusterScenario::RollingRestart,
        ClusterScenario::TwoNodesDown,
        ClusterScenario::SlowLossyLink,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ClusterScenario::LeaderKill => "leader-kill",
            ClusterScenario::LeaderKillExactlyOnce => "leader-kill-exactly-once",
            ClusterScenario::NodePartition => "node-partition",
            ClusterScenario::NodePartitionExactlyOnce => "node-partition-exactly-once",
            ClusterScenario::ControllerKill => "controller-kill",
            ClusterScenario::RollingRestart => "rolling-restart",
            ClusterScenario::TwoNodesDown => "two-nodes-down",
            ClusterScenario::SlowLossyLink => "slow-lossy-link",
        }
    }

    fn exactly_once(self) -> bool {
        matches!(
            self,
            ClusterScenario::LeaderKillExactlyOnce | ClusterScenario::NodePartitionExactlyOnce
        )
    }
}

/// Runs one cluster scenario from start to verdict. `outage` is how long a
/// node stays cut off or slowed, and two nodes stay down.
pub fn run(
    scenario: ClusterScenario,
    settings: &Settings,
    cluster: &Cluster,
    outage: Duration,
) -> anyhow::Result<Outcome> {
    let mut pipeline = Pipeline::new(
        scenario.name(),
        scenario.exactly_once(),
        settings,
        cluster.bootstrap(),
    )?;
    pipeline.start()?;
    let load = start_load(settings, &pipeline, true)?;
    std::thread::sleep(Duration::from_secs(settings.seconds / 3));
    let mut record = Record::default();
    let samples = pipeline.topics.samples.clone();
    match scenario {
        ClusterScenario::LeaderKill | ClusterScenario::LeaderKillExactlyOnce => {
            let leader = cluster.busiest_leader(&samples)?;
            let killed = Instant::now();
            cluster.kill_node(leader)?;
            record.step(format!(
                "node {leader}, leading the most partitions of the samples topic, killed (SIGKILL)"
            ));
            note_leaders_moved(cluster, &samples, leader, killed, KILLED_FOR, &mut record);
            std::thread::sleep(KILLED_FOR.saturating_sub(killed.elapsed()));
            cluster.start_node(leader)?;
            record.step(format!(
                "node {leader} started again, up {} after the kill",
                seconds(killed)
            ));
        }
        ClusterScenario::NodePartition | ClusterScenario::NodePartitionExactlyOnce => {
            let leader = cluster.busiest_leader(&samples)?;
            let cut = Instant::now();
            cluster.network().isolate(leader)?;
            record.step(format!(
                "node {leader}, leading the most partitions of the samples topic, cut off from the other nodes and the clients"
            ));
            note_leaders_moved(cluster, &samples, leader, cut, outage, &mut record);
            std::thread::sleep(outage.saturating_sub(cut.elapsed()));
            cluster.network().heal(leader)?;
            record.step(format!(
                "node {leader} reachable again after {}",
                seconds(cut)
            ));
        }
        ClusterScenario::ControllerKill => {
            let controller = cluster.active_controller()?;
            let killed = Instant::now();
            cluster.kill_node(controller)?;
            record.step(format!(
                "node {controller}, the active controller, killed (SIGKILL)"
            ));
            let elected = poll(KILLED_FOR.saturating_sub(killed.elapsed()), || {
                cluster
                    .active_controller()
                    .ok()
                    .filter(|now| *now != controller)
            });
            if let Some(now) = elected {
                record.step(format!(
                    "node {now} elected controller {} after the kill",
                    seconds(killed)
                ));
            }
            record.check(
                format!("another controller was elected within {KILLED_FOR:?}"),
                elected.is_some(),
            );
            std::thread::sleep(KILLED_FOR.saturating_sub(killed.elapsed()));
            cluster.start_node(controller)?;
            record.step(format!(
                "node {controller} started again, up {} after the kill",
                seconds(killed)
            ));
        }
        ClusterScenario::RollingRestart => {
            for node in 1..=cluster.nodes {
                let rolling = Instant::now();
                cluster.stop_node(node)?;
                let stopped = seconds(rolling);
                cluster.start_node(node)?;
                let isr = cluster.wait_full_isr(ISR_RECOVERY)?;
                record.step(format!(
                    "node {node} stopped (SIGTERM) in {stopped}, started, every replica in sync {:.1} s later ({} in all)",
                    isr.as_secs_f64(),
                    seconds(rolling)
                ));
            }
        }
        ClusterScenario::TwoNodesDown => {
            two_nodes_down(cluster, &pipeline, settings, outage, &mut record)?
        }
        ClusterScenario::SlowLossyLink => {
            let leader = cluster.busiest_leader(&samples)?;
            let slowed = Instant::now();
            cluster
                .network()
                .degrade(leader, LINK_LOSS_PERCENT, LINK_RATE, LINK_DELAY)?;
            record.step(format!(
                "link of node {leader}, leading the most partitions of the samples topic, held to {LINK_RATE} with up to {LINK_DELAY} queued and {LINK_LOSS_PERCENT} % of packets lost"
            ));
            std::thread::sleep(outage);
            cluster.network().heal(leader)?;
            record.step(format!(
                "link of node {leader} healed after {}",
                seconds(slowed)
            ));
        }
    }
    let isr = cluster.wait_full_isr(ISR_RECOVERY);
    record.check(
        "every replica of every partition in sync again",
        isr.is_ok(),
    );
    if let Ok(isr) = isr {
        record.step(format!(
            "every replica in sync again {:.1} s after the fault ended",
            isr.as_secs_f64()
        ));
    }
    conclude(settings, pipeline, load, record, |_, _| Ok(()))
}

/// Watches for `for_at_most` whether the partitions of `topic` that `node`
/// led get other leaders, and records when they all have.
fn note_leaders_moved(
    cluster: &Cluster,
    topic: &str,
    node: usize,
    since: Instant,
    for_at_most: Duration,
    record: &mut Record,
) {
    let moved = poll(for_at_most.saturating_sub(since.elapsed()), || {
        let partitions = cluster.partitions(Some(topic)).ok()?;
        let moved = !partitions.is_empty()
            && partitions
                .iter()
                .all(|p| p.leader >= 1 && p.leader as usize != node);
        moved.then_some(())
    });
    if moved.is_some() {
        record.step(format!(
            "every partition of the samples topic led by another node {} after the fault",
            seconds(since)
        ));
        return;
    }
    record.step(format!(
        "node {node} still led a partition of the samples topic after {for_at_most:?}"
    ));
}

/// Two of the three nodes stopped for `outage`: ingest must answer 503 (with
/// `Retry-After`, as every 503 of ingest has) and acknowledge nothing, then
/// acknowledge again by itself once one node is back.
fn two_nodes_down(
    cluster: &Cluster,
    pipeline: &Pipeline,
    settings: &Settings,
    outage: Duration,
    record: &mut Record,
) -> anyhow::Result<()> {
    let samples = &pipeline.topics.samples;
    let first = cluster.busiest_leader(samples)?;
    let second = first % cluster.nodes + 1;
    let stopping = Instant::now();
    cluster.stop_node(first)?;
    cluster.stop_node(second)?;
    record.step(format!(
        "nodes {first} and {second} stopped (SIGTERM) in {}: one replica of three left, min.insync.replicas is 2",
        seconds(stopping)
    ));
    // Requests that were waiting on the last acks when the second node went
    // may still be answered 204; from a request timeout on, none may be.
    std::thread::sleep(Duration::from_millis(settings.request_timeout_ms + 1_000));
    let before = ingest_answers(pipeline)?;
    let window = Instant::now();
    // At least a few requests' worth, however long the stops took.
    std::thread::sleep(
        outage
            .saturating_sub(stopping.elapsed())
            .max(Duration::from_secs(10)),
    );
    let after = ingest_answers(pipeline)?;
    let acknowledged = after.acknowledged - before.acknowledged;
    let unavailable = after.unavailable - before.unavailable;
    record.step(format!(
        "in the {} after that: {acknowledged} requests answered 204, {unavailable} answered 503",
        seconds(window)
    ));
    record.check(
        "with one in-sync replica, ingest acknowledged nothing",
        acknowledged == 0,
    );
    record.check(
        "with one in-sync replica, ingest answered 503",
        unavailable > 0,
    );
    let restarting = Instant::now();
    cluster.start_node(first)?;
    record.step(format!(
        "node {first} started again in {}",
        seconds(restarting)
    ));
    let recovered = poll(ISR_RECOVERY, || {
        let answers = ingest_answers(pipeline).ok()?;
        (answers.acknowledged > after.acknowledged).then_some(())
    });
    if recovered.is_some() {
        record.step(format!(
            "ingest acknowledging again {} after node {first} was started",
            seconds(restarting)
        ));
    }
    record.check(
        "with two nodes again, ingest acknowledged by itself",
        recovered.is_some(),
    );
    cluster.start_node(second)?;
    record.step(format!(
        "node {second} started again, {} after the two stopped",
        seconds(stopping)
    ));
    Ok(())
}

/// Calls `probe` every 250 ms until it gives something or `within` has passed.
fn poll<T>(within: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let started = Instant::now();
    loop {
        if let Some(found) = probe() {
            return Some(found);
        }
        if started.elapsed() >= within {
            return None;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// ingest's answers so far, from its `/metrics`.
struct Answers {
    acknowledged: u64,
    unavailable: u64,
}

fn ingest_answers(pipeline: &Pipeline) -> anyhow::Result<Answers> {
    let text = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?
        .get(format!("http://127.0.0.1:{}/metrics", pipeline.ingest_port))
        .send()
        .and_then(|response| response.text())
        .context("reading ingest's /metrics")?;
    let count = |status: &str| -> u64 {
        text.lines()
            .filter(|line| {
                line.starts_with("ingest_http_requests_total{")
                    && line.contains(&format!("status=\"{status}\""))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    Ok(Answers {
        acknowledged: count("204"),
        unavailable: count("503"),
    })
}
