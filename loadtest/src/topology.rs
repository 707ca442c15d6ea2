//! The topology of the synthetic series, in the StackState Agent's intake
//! format: one node, pod and container component for each that the run's
//! series name, with the URNs the correlator's default Kubernetes rules render,
//! so the run's samples are bound rather than left unbound.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::synthetic::{SeriesUniverse, generation};

/// Components per intake part: keeps each request far below ingest's body limit.
pub const COMPONENTS_PER_PART: usize = 2_000;

/// A component of the snapshot: its externalId, type and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SyntheticComponent {
    pub external_id: String,
    pub type_name: &'static str,
    pub name: String,
}

/// Every node, pod and container the series of `passes` passes name, sorted and
/// without repeats (nodes first, then pods, then their containers).
pub fn components(
    universe: &SeriesUniverse,
    passes: u64,
    replaced_per_pass: usize,
) -> Vec<SyntheticComponent> {
    let cluster = &universe.cluster_name;
    let mut nodes = BTreeSet::new();
    let mut pods = BTreeSet::new();
    let mut containers = BTreeSet::new();
    let mut seen_generations = BTreeSet::new();
    for pass in 0..passes.max(1) {
        for slot in 0..universe.series {
            let slot_generation = generation(slot, pass, replaced_per_pass, universe.series);
            // Without churn every pass names the same series: look at each once.
            if !seen_generations.insert((slot, slot_generation)) {
                continue;
            }
            let labels = universe.labels(slot, slot_generation);
            let value = |name: &str| {
                labels
                    .iter()
                    .find(|(label, _)| label == name)
                    .map(|(_, value)| value.clone())
                    .unwrap_or_default()
            };
            let (namespace, pod, container, node) = (
                value("namespace"),
                value("pod"),
                value("container"),
                value("node"),
            );
            let pod_urn = format!("urn:kubernetes:/{cluster}:{namespace}:pod/{pod}");
            containers.insert(SyntheticComponent {
                external_id: format!("{pod_urn}:container/{container}"),
                type_name: "container",
                name: container,
            });
            pods.insert(SyntheticComponent {
                external_id: pod_urn,
                type_name: "pod",
                name: pod,
            });
            nodes.insert(SyntheticComponent {
                external_id: format!("urn:kubernetes:/{cluster}:node/{node}"),
                type_name: "node",
                name: node,
            });
        }
    }
    nodes.into_iter().chain(pods).chain(containers).collect()
}

/// One intake request per part: `components` as one snapshot of the instance
/// `kubernetes`/`cluster_name`, opened by the first part and closed by the last.
pub fn snapshot_requests(
    cluster_name: &str,
    components: &[SyntheticComponent],
    collection_timestamp_s: f64,
) -> Vec<Value> {
    let chunks: Vec<&[SyntheticComponent]> = if components.is_empty() {
        vec![&[]]
    } else {
        components.chunks(COMPONENTS_PER_PART).collect()
    };
    let last = chunks.len() - 1;
    chunks
        .into_iter()
        .enumerate()
        .map(|(index, chunk)| {
            intake_request(
                cluster_name,
                chunk,
                index == 0,
                index == last,
                collection_timestamp_s,
            )
        })
        .collect()
}

/// One intake request holding one part of a snapshot of `kubernetes`/`cluster_name`.
pub fn intake_request(
    cluster_name: &str,
    components: &[SyntheticComponent],
    start_snapshot: bool,
    stop_snapshot: bool,
    collection_timestamp_s: f64,
) -> Value {
    let components: Vec<Value> = components
        .iter()
        .map(|component| {
            json!({
                "externalId": component.external_id,
                "type": { "name": component.type_name },
                "data": {
                    "name": component.name,
                    "layer": "Loadtest",
                    "domain": "loadtest",
                    "tags": { "cluster-name": cluster_name },
                },
            })
        })
        .collect();
    json!({
        "collection_timestamp": collection_timestamp_s,
        "internalHostname": "loadtest",
        "events": {},
        "metrics": [],
        "service_checks": [],
        "health": [],
        "topologies": [{
            "start_snapshot": start_snapshot,
            "stop_snapshot": stop_snapshot,
            "instance": { "type": "kubernetes", "url": cluster_name },
            "components": components,
            "relations": [],
        }],
    })
}

/// The intake endpoint on the same host as the remote-write `url`.
pub fn intake_url(remote_write_url: &str) -> Result<String, String> {
    let mut url = reqwest::Url::parse(remote_write_url)
        .map_err(|error| format!("--url {remote_write_url:?}: {error}"))?;
    url.set_path("/receiver/stsAgent/intake");
    url.set_query(None);
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn universe(series: usize) -> SeriesUniverse {
        SeriesUniverse {
            series,
            labels_per_series: 10,
            run_id: "run-1".into(),
            cluster_name: "c1".into(),
        }
    }

    #[test]
    fn every_series_names_components_of_the_snapshot() {
        let universe = universe(200);
        let components = components(&universe, 1, 0);
        let ids: BTreeSet<&str> = components.iter().map(|c| c.external_id.as_str()).collect();
        assert_eq!(ids.len(), components.len(), "no repeats");
        for slot in 0..universe.series {
            let labels = universe.labels(slot, 0);
            let value = |name: &str| &labels.iter().find(|(n, _)| n == name).unwrap().1;
            let pod = format!(
                "urn:kubernetes:/c1:{}:pod/{}",
                value("namespace"),
                value("pod")
            );
            assert!(ids.contains(pod.as_str()));
            assert!(ids.contains(format!("{pod}:container/{}", value("container")).as_str()));
            assert!(ids.contains(format!("urn:kubernetes:/c1:node/{}", value("node")).as_str()));
        }
    }

    #[test]
    fn churn_adds_the_new_pods() {
        let universe = universe(160);
        let steady = components(&universe, 4, 0).len();
        let churned = components(&universe, 4, 32).len();
        assert!(churned > steady, "{churned} > {steady}");
    }

    #[test]
    fn a_snapshot_spans_parts_opened_first_and_closed_last() {
        let many: Vec<SyntheticComponent> = (0..COMPONENTS_PER_PART * 2 + 1)
            .map(|index| SyntheticComponent {
                external_id: format!("urn:x:{index}"),
                type_name: "pod",
                name: index.to_string(),
            })
            .collect();
        let requests = snapshot_requests("c1", &many, 1.0);
        assert_eq!(requests.len(), 3);
        let flag = |request: &Value, name: &str| request["topologies"][0][name].as_bool().unwrap();
        assert!(flag(&requests[0], "start_snapshot") && !flag(&requests[0], "stop_snapshot"));
        assert!(!flag(&requests[1], "start_snapshot") && !flag(&requests[1], "stop_snapshot"));
        assert!(!flag(&requests[2], "start_snapshot") && flag(&requests[2], "stop_snapshot"));
        let empty = snapshot_requests("c1", &[], 1.0);
        assert!(flag(&empty[0], "start_snapshot") && flag(&empty[0], "stop_snapshot"));
    }

    #[test]
    fn intake_url_keeps_the_host() {
        assert_eq!(
            intake_url("https://ingest.example:8443/receiver/prometheus/api/v1/write?x=1").unwrap(),
            "https://ingest.example:8443/receiver/stsAgent/intake"
        );
        assert!(intake_url("not a url").is_err());
    }
}
