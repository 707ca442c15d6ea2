//! Synthetic Kubernetes-like series: what a cluster's kubelet (cAdvisor) and
//! kube-state-metrics scrapes look like to remote_write. Pure functions of a
//! series slot and its generation, so the payload builder and the tests agree.

/// Label names of the Kubernetes part of every series, besides `loadtest_run`.
const KUBERNETES_LABELS: usize = 8;

/// The label that tells this run's samples apart from everything else in the topic.
pub const RUN_LABEL: &str = "loadtest_run";

/// Fewest labels a series can have: the Kubernetes ones plus [`RUN_LABEL`].
pub const MIN_LABELS_PER_SERIES: usize = KUBERNETES_LABELS + 1;

/// Most labels a series can have: ingest's default per-tenant limit.
pub const MAX_LABELS_PER_SERIES: usize = 40;

/// Metric families a container is scraped for; a series slot picks one.
const METRIC_NAMES: [&str; 16] = [
    "container_cpu_usage_seconds_total",
    "container_cpu_cfs_throttled_periods_total",
    "container_memory_working_set_bytes",
    "container_memory_rss",
    "container_memory_cache",
    "container_spec_memory_limit_bytes",
    "container_network_receive_bytes_total",
    "container_network_transmit_bytes_total",
    "container_fs_reads_bytes_total",
    "container_fs_writes_bytes_total",
    "container_threads",
    "container_processes",
    "kube_pod_container_status_restarts_total",
    "kube_pod_container_resource_requests",
    "kube_pod_container_resource_limits",
    "kube_pod_container_status_ready",
];

/// Filler label names, used in this order past the Kubernetes ones.
const FILLER_LABELS: [&str; 6] = [
    "image",
    "uid",
    "service",
    "endpoint",
    "prometheus",
    "metrics_path",
];

const CONTAINERS_PER_POD: usize = 2;
const CONTAINER_NAMES: [&str; CONTAINERS_PER_POD] = ["server", "istio-proxy"];
const REPLICAS_PER_WORKLOAD: usize = 3;
const NAMESPACES: usize = 40;
const NODES: usize = 200;
const WORKLOAD_WORDS: [&str; 12] = [
    "checkout",
    "cart",
    "payments",
    "search",
    "catalog",
    "frontend",
    "auth",
    "orders",
    "shipping",
    "billing",
    "recommend",
    "inventory",
];

/// One label as `(name, value)`.
pub type LabelPair = (String, String);

/// The series of one load test: `series` slots, each holding one series at a
/// time; churn bumps a slot's generation, which gives its pod a new name (a
/// rolling update) and so the slot a new series.
#[derive(Debug, Clone)]
pub struct SeriesUniverse {
    pub series: usize,
    pub labels_per_series: usize,
    pub run_id: String,
    pub cluster_name: String,
}

impl SeriesUniverse {
    /// The labels of `slot` at `generation`, sorted by name as Prometheus sends them.
    pub fn labels(&self, slot: usize, generation: u64) -> Vec<LabelPair> {
        let metric = METRIC_NAMES[slot % METRIC_NAMES.len()];
        let container_index = slot / METRIC_NAMES.len();
        let pod_index = container_index / CONTAINERS_PER_POD;
        let workload_index = pod_index / REPLICAS_PER_WORKLOAD;
        let workload = format!(
            "{}-{}",
            WORKLOAD_WORDS[workload_index % WORKLOAD_WORDS.len()],
            workload_index
        );
        // The replica-set hash changes with the generation, as in a rolling
        // update; its low half is the generation itself so names never collide.
        let revision_hash = format!(
            "{:05x}{:05x}",
            mix(workload_index as u64 ^ (generation << 32)) & 0xf_ffff,
            generation & 0xf_ffff
        );
        let pod = format!("{workload}-{revision_hash}-{}", base36(pod_index, 5));
        let node_index = pod_index % NODES;
        let node = format!(
            "ip-10-0-{}-{}.eu-west-1.compute.internal",
            node_index / 250,
            node_index % 250 + 4
        );
        let from_kube_state_metrics = metric.starts_with("kube_");
        let (job, instance) = if from_kube_state_metrics {
            (
                "kube-state-metrics".to_string(),
                "10.0.200.5:8080".to_string(),
            )
        } else {
            (
                "kubelet".to_string(),
                format!("10.0.{}.{}:10250", node_index / 250, node_index % 250 + 4),
            )
        };

        let mut labels: Vec<LabelPair> = vec![
            ("__name__".into(), metric.into()),
            (
                "namespace".into(),
                format!("team-{}", workload_index % NAMESPACES),
            ),
            ("pod".into(), pod),
            (
                "container".into(),
                CONTAINER_NAMES[container_index % CONTAINERS_PER_POD].into(),
            ),
            ("node".into(), node),
            ("cluster_name".into(), self.cluster_name.clone()),
            ("job".into(), job),
            ("instance".into(), instance),
            (RUN_LABEL.into(), self.run_id.clone()),
        ];
        let fillers = self.labels_per_series.saturating_sub(labels.len());
        for filler in 0..fillers {
            let name = FILLER_LABELS
                .get(filler)
                .map(|name| (*name).to_string())
                .unwrap_or_else(|| format!("label_extra_{filler:02}"));
            let value = match name.as_str() {
                "image" => format!(
                    "registry.example.com/{}:1.{}.0",
                    WORKLOAD_WORDS[workload_index % WORKLOAD_WORDS.len()],
                    generation % 10
                ),
                "uid" => uuid_like(mix(pod_index as u64) ^ mix(generation.wrapping_add(1))),
                "service" => workload.clone(),
                "endpoint" if from_kube_state_metrics => "http".into(),
                "endpoint" => "https-metrics".into(),
                "prometheus" => "monitoring/k8s".into(),
                "metrics_path" if from_kube_state_metrics => "/metrics".into(),
                "metrics_path" => "/metrics/cadvisor".into(),
                _ => format!("value-{filler:02}-{}", container_index % 10),
            };
            labels.push((name, value));
        }
        labels.sort_unstable_by(|left, right| left.0.cmp(&right.0));
        labels
    }
}

/// How many times `slot` has been replaced by the start of `pass` when each
/// pass replaces the next `replaced_per_pass` slots, round-robin.
pub fn generation(slot: usize, pass: u64, replaced_per_pass: usize, series: usize) -> u64 {
    if series == 0 {
        return 0;
    }
    let replaced_total = pass * replaced_per_pass as u64;
    (replaced_total + series as u64 - 1 - slot as u64) / series as u64
}

/// splitmix64's finalizer: a cheap bijective scrambler for realistic-looking hashes.
fn mix(mut value: u64) -> u64 {
    value = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}

fn base36(mut value: usize, width: usize) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = vec![b'0'; width];
    for position in (0..width).rev() {
        out[position] = DIGITS[value % 36];
        value /= 36;
    }
    String::from_utf8(out).expect("ascii digits")
}

fn uuid_like(seed: u64) -> String {
    let high = mix(seed);
    let low = mix(seed ^ 0x5555_5555_5555_5555);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0xffff,
        low >> 48,
        low & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn universe(series: usize, labels_per_series: usize) -> SeriesUniverse {
        SeriesUniverse {
            series,
            labels_per_series,
            run_id: "run-1".into(),
            cluster_name: "test-cluster".into(),
        }
    }

    #[test]
    fn every_series_has_the_requested_labels_sorted_and_tagged() {
        for labels_per_series in [MIN_LABELS_PER_SERIES, 10, 15, MAX_LABELS_PER_SERIES] {
            let universe = universe(100, labels_per_series);
            for slot in 0..100 {
                let labels = universe.labels(slot, 0);
                assert_eq!(labels.len(), labels_per_series);
                assert!(labels.windows(2).all(|pair| pair[0].0 < pair[1].0));
                assert!(labels.contains(&(RUN_LABEL.into(), "run-1".into())));
                for name in [
                    "__name__",
                    "namespace",
                    "pod",
                    "container",
                    "node",
                    "cluster_name",
                    "job",
                    "instance",
                ] {
                    assert!(labels.iter().any(|(n, v)| n == name && !v.is_empty()));
                }
            }
        }
    }

    #[test]
    fn slots_and_generations_give_distinct_series() {
        let universe = universe(5000, 10);
        let mut seen = HashSet::new();
        for generation in 0..3 {
            for slot in 0..universe.series {
                assert!(seen.insert(universe.labels(slot, generation)));
            }
        }
    }

    #[test]
    fn generations_advance_round_robin() {
        // 10 slots, 3 replaced per pass: pass 1 replaces 0..3, pass 4 wraps to slot 9 and 0, 1.
        assert_eq!(generation(0, 0, 3, 10), 0);
        assert_eq!(generation(2, 1, 3, 10), 1);
        assert_eq!(generation(3, 1, 3, 10), 0);
        assert_eq!(generation(9, 4, 3, 10), 1);
        assert_eq!(generation(0, 4, 3, 10), 2);
        assert_eq!(generation(2, 4, 3, 10), 1);
        let replaced: u64 = (0..10).map(|slot| generation(slot, 4, 3, 10)).sum();
        assert_eq!(replaced, 12);
        assert_eq!(generation(5, 100, 0, 10), 0);
    }
}
