//! Real Prometheus 2.42 traffic (`testdata/`) through the join, no broker:
//! series by series, the bound batches carry every sample bit for bit, the
//! metadata of its family (sent by Prometheus in a request of its own) and
//! the component's labels; the series that do not bind say why.

use std::collections::{BTreeMap, HashMap};

use correlator::bindings::Bindings;
use correlator::join::{Destination, JoinSettings, Joiner, Origin};
use correlator::output::{BatchSeries, read_batch};
use proto::Message;
use proto::prometheus::WriteRequest;
use proto::records::Component;

const POD: &str = "urn:kubernetes:/demo-cluster:monitoring:pod/node-exporter-x7k2p";
const CONTAINER: &str =
    "urn:kubernetes:/demo-cluster:monitoring:pod/node-exporter-x7k2p:container/node-exporter";

fn settings() -> JoinSettings {
    JoinSettings {
        // The captures span minutes of 2023; nothing is late among them.
        history_ms: i64::MAX / 4,
        ..JoinSettings::default()
    }
}

fn component(external_id: &str, kind: &str, name: &str) -> Component {
    Component {
        tenant: "alpha".into(),
        external_id: external_id.into(),
        type_name: kind.into(),
        name: name.into(),
        identifiers: vec![external_id.into()],
        first_seen_ms: 0,
        ..Default::default()
    }
}

/// What a series is known by: its own labels, sorted.
type SeriesLabels = Vec<(String, String)>;

/// The family metadata Prometheus sent, as (type, help, unit), by family name.
type Families = HashMap<String, (i32, String, String)>;

fn family_of<'f>(families: &'f Families, name: &str) -> Option<&'f (i32, String, String)> {
    families.get(name).or_else(|| {
        ["_bucket", "_sum", "_count", "_total", "_created", "_info"]
            .iter()
            .filter_map(|suffix| name.strip_suffix(suffix))
            .find_map(|family| families.get(family))
    })
}

/// The series' own labels: the batch's added ones taken off.
fn own_labels(series: &BatchSeries, added: &[&str]) -> SeriesLabels {
    series
        .labels
        .iter()
        .filter(|(name, _)| !added.contains(&name.as_str()))
        .cloned()
        .collect()
}

#[test]
fn captured_requests_come_out_bound_series_by_series_with_their_metadata() {
    let mut joiner = Joiner::new(Bindings::kubernetes_defaults(), settings());
    joiner.upsert_component(
        &format!("alpha/kubernetes/demo-cluster/{POD}"),
        component(POD, "pod", "node-exporter-x7k2p"),
    );
    joiner.upsert_component(
        &format!("alpha/kubernetes/demo-cluster/{CONTAINER}"),
        component(CONTAINER, "container", "node-exporter"),
    );
    assert!(joiner.release_pending().is_empty());

    let mut requests: Vec<WriteRequest> = proto::fixtures::prometheus_2_42_requests()
        .unwrap()
        .into_iter()
        .map(|(_, request)| request)
        .collect();
    let mut families = Families::new();
    for request in &requests {
        for entry in &request.metadata {
            families.insert(
                entry.metric_family_name.clone(),
                (entry.r#type, entry.help.clone(), entry.unit.clone()),
            );
        }
    }
    assert_eq!(families.len(), 449, "the capture's metadata entries");

    // The metadata request first, as Prometheus sends it before long.
    requests.sort_by_key(|request| request.timeseries.len());
    // Sent: every series' samples as (value bits, timestamp).
    let mut sent: BTreeMap<SeriesLabels, Vec<(u64, i64)>> = BTreeMap::new();
    let mut bound: BTreeMap<(&'static str, SeriesLabels), Vec<(u64, i64)>> = BTreeMap::new();
    let mut unbound: BTreeMap<SeriesLabels, Vec<(u64, i64)>> = BTreeMap::new();
    let mut with_metadata = 0;
    for (offset, request) in requests.iter().enumerate() {
        for series in &request.timeseries {
            let mut labels: SeriesLabels = series
                .labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            labels.sort();
            sent.entry(labels).or_default().extend(
                series
                    .samples
                    .iter()
                    .map(|s| (s.value.to_bits(), s.timestamp)),
            );
        }
        let origin = Origin {
            partition: 0,
            offset: offset as i64,
        };
        let outputs = joiner
            .process(
                "alpha",
                proto::CONTENT_TYPE_V1,
                &request.encode_to_vec(),
                origin,
                0,
            )
            .unwrap();
        for output in outputs {
            let batch = read_batch(proto::CONTENT_TYPE_V2, &output.payload).unwrap();
            assert_eq!(output.series, batch.len());
            for series in &batch {
                let name = series.label("__name__").unwrap();
                // The family's metadata, exactly as Prometheus sent it.
                let expected = family_of(&families, name).cloned();
                assert_eq!(series.metadata, expected, "{name}");
                with_metadata += usize::from(expected.is_some());
                let samples = series
                    .samples
                    .iter()
                    .map(|s| (s.value.to_bits(), s.timestamp));
                match output.destination {
                    Destination::Bound => {
                        let component = output.component.as_ref().unwrap();
                        let (id, kind, component_name) = if &*component.external_id == POD {
                            (POD, "pod", "node-exporter-x7k2p")
                        } else {
                            (CONTAINER, "container", "node-exporter")
                        };
                        assert_eq!(series.label("component_external_id"), Some(id));
                        assert_eq!(series.label("component_type"), Some(kind));
                        assert_eq!(series.label("component_name"), Some(component_name));
                        let own = own_labels(
                            series,
                            &["component_external_id", "component_type", "component_name"],
                        );
                        bound.entry((id, own)).or_default().extend(samples);
                    }
                    Destination::Unbound => {
                        assert_eq!(series.label("unbound_reason"), Some("missing_label"));
                        assert!(series.label("unbound_detail").unwrap().starts_with("rule "));
                        let own = own_labels(series, &["unbound_reason", "unbound_detail"]);
                        unbound.entry(own).or_default().extend(samples);
                    }
                }
            }
        }
    }
    assert_eq!(joiner.pending_samples(), 0);

    let node: BTreeMap<&SeriesLabels, &Vec<(u64, i64)>> = sent
        .iter()
        .filter(|(labels, _)| {
            labels
                .iter()
                .any(|(n, v)| n == "pod" && v == "node-exporter-x7k2p")
        })
        .collect();
    let node_samples: usize = node.values().map(|samples| samples.len()).sum();
    assert!(
        node_samples > 5_000,
        "node exporter samples: {node_samples}"
    );
    // Every node-exporter series bound to both, bit for bit, in order.
    for id in [POD, CONTAINER] {
        for (labels, samples) in &node {
            assert_eq!(
                bound.get(&(id, (*labels).clone())),
                Some(*samples),
                "{id}: {labels:?}"
            );
        }
    }
    assert_eq!(bound.len(), 2 * node.len(), "nothing else bound");
    // Every other series unbound, bit for bit.
    let others: BTreeMap<SeriesLabels, Vec<(u64, i64)>> = sent
        .iter()
        .filter(|(labels, _)| !node.contains_key(labels))
        .map(|(labels, samples)| (labels.clone(), samples.clone()))
        .collect();
    assert_eq!(unbound, others);
    let total: usize = sent.values().map(Vec::len).sum();
    assert_eq!(total, 20_000);
    assert!(with_metadata > 0);
    eprintln!(
        "{} series ({node_samples} node-exporter samples bound twice, {} unbound), {with_metadata} output series with their family's metadata",
        sent.len(),
        total - node_samples
    );
}
