//! Snapshot and time semantics, end to end through Kafka.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use proto::records::UnboundReason;
use support::{Correlator, Topics, eventually, ingest_app};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn pod(name: &str) -> serde_json::Value {
    serde_json::json!({"externalId": format!("urn:kubernetes:/c1:ns:pod/{name}"), "type": {"name": "pod"}, "data": {"name": name}})
}

fn part(
    start: bool,
    stop: bool,
    pods: &[&str],
    delete: &[&str],
    collected_s: i64,
) -> serde_json::Value {
    let delete: Vec<String> = delete
        .iter()
        .map(|p| format!("urn:kubernetes:/c1:ns:pod/{p}"))
        .collect();
    serde_json::json!({"collection_timestamp": collected_s, "topologies": [{
        "start_snapshot": start, "stop_snapshot": stop, "instance": {"type": "kubernetes", "url": "c1"},
        "components": pods.iter().map(|p| pod(p)).collect::<Vec<_>>(), "delete_ids": delete}]})
}

/// Pod name → live (true) or tombstoned (false), as topology.components has it.
fn live_pods(topic: &str) -> BTreeMap<String, bool> {
    support::compacted_view(topic)
        .into_iter()
        .map(|(key, value)| (key.rsplit('/').next().unwrap().to_string(), value.is_some()))
        .collect()
}

async fn wait_for_pods(topic: &str, expected: &[(&str, bool)]) {
    let topic = topic.to_string();
    let expected: BTreeMap<String, bool> =
        expected.iter().map(|(p, l)| (p.to_string(), *l)).collect();
    let what = format!("topology {expected:?}");
    eventually(Duration::from_secs(60), &what, move || {
        (live_pods(&topic) == expected).then_some(())
    })
    .await;
}

#[actix_web::test]
async fn snapshots_replace_incomplete_ones_delete_nothing_and_a_restart_continues() {
    let (dir, topics, state) = support::fresh_ingest(2).await;
    let app = ingest_app!(state);
    let group = support::unique("group");
    let mut correlator = Correlator::start(&dir, &topics, &group, &[]);
    let t = now_ms() / 1000;

    support::post_topology(&app, &part(true, true, &["a", "b", "c", "x"], &[], t)).await;
    wait_for_pods(
        &topics.topology,
        &[("a", true), ("b", true), ("c", true), ("x", true)],
    )
    .await;

    // A second completed snapshot without b deletes it.
    support::post_topology(&app, &part(true, false, &["a", "x"], &[], t)).await;
    support::post_topology(&app, &part(false, true, &["c"], &[], t)).await;
    wait_for_pods(
        &topics.topology,
        &[("a", true), ("b", false), ("c", true), ("x", true)],
    )
    .await;

    // delete_ids outside a snapshot deletes.
    support::post_topology(&app, &part(false, false, &[], &["c"], t)).await;
    wait_for_pods(
        &topics.topology,
        &[("a", true), ("b", false), ("c", false), ("x", true)],
    )
    .await;

    // An incomplete snapshot deletes nothing.
    support::post_topology(&app, &part(true, false, &["a"], &[], t)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(live_pods(&topics.topology)["x"], "x is still live");
    let records_before = support::read_all(&topics.topology).len();

    // Restarted from Kafka alone: same components, nothing rewritten...
    assert!(
        correlator.terminate().success(),
        "clean exit on SIGTERM:\n{}",
        correlator.log_text()
    );
    let restarted = Correlator::start(&dir, &topics, &group, &[]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        restarted.metric("correlator_topology_components", ""),
        2.0,
        "{}",
        restarted.log_text()
    );
    assert_eq!(support::read_all(&topics.topology).len(), records_before);

    // ...and the snapshot left open before the restart still completes: x was not in it.
    support::post_topology(&app, &part(false, true, &[], &[], t)).await;
    let expected: BTreeMap<String, bool> = BTreeMap::from([
        ("a".into(), true),
        ("b".into(), false),
        ("c".into(), false),
        ("x".into(), false),
    ]);
    let topic = topics.topology.clone();
    let pods = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let pods = live_pods(&topic);
            if pods == expected || std::time::Instant::now() > deadline {
                return pods;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    })
    .await
    .unwrap();
    assert_eq!(
        pods.get("x"),
        Some(&false),
        "x deleted by the snapshot completed after the restart; log:\n{}",
        restarted.log_text()
    );
}

fn sample_body(pod: &str, timestamp: i64) -> Vec<u8> {
    support::kafka::v1_request_with(
        &[
            ("__name__", "cpu"),
            ("cluster_name", "c1"),
            ("namespace", "ns"),
            ("pod", pod),
        ],
        timestamp,
    )
}

/// A sample by its pod label and timestamp.
type SampleId = (String, i64);

fn reason_of(name: &str) -> UnboundReason {
    match name {
        "no_rule" => UnboundReason::NoRule,
        "missing_label" => UnboundReason::MissingLabel,
        "no_component" => UnboundReason::NoComponent,
        "late" => UnboundReason::Late,
        other => panic!("unknown reason header {other:?}"),
    }
}

/// The bound samples, and the reason of each unbound one.
fn outcomes(topics: &Topics) -> (Vec<SampleId>, BTreeMap<SampleId, UnboundReason>) {
    let mut bound = Vec::new();
    for record in support::read_all(&topics.bound) {
        for series in support::batch_of(&record) {
            let pod = series.label("pod").unwrap().to_string();
            bound.extend(series.samples.iter().map(|s| (pod.clone(), s.timestamp)));
        }
    }
    let mut unbound = BTreeMap::new();
    for record in support::read_all(&topics.unbound) {
        let reason = reason_of(&record.headers["reason"]);
        for series in support::batch_of(&record) {
            assert_eq!(
                series.label("unbound_reason"),
                Some(record.headers["reason"].as_str())
            );
            let pod = series.label("pod").unwrap().to_string();
            for sample in &series.samples {
                unbound.insert((pod.clone(), sample.timestamp), reason);
            }
        }
    }
    (bound, unbound)
}

#[actix_web::test]
async fn early_samples_wait_within_the_grace_and_late_or_orphaned_ones_say_why() {
    let (dir, topics, state) = support::fresh_ingest(2).await;
    let app = ingest_app!(state);
    let _correlator = Correlator::start_alone(
        &dir,
        &topics,
        &[
            ("PENDING_GRACE_MS", "4000"),
            ("DELETE_GRACE_MS", "2000"),
            ("HISTORY_MS", "600000"),
            ("JOIN_SKEW_MS", "1000"),
        ],
    );
    let start = now_ms();

    // Samples before their pod's snapshot, which comes within the grace: bound.
    support::post_samples(&app, sample_body("early", start)).await;
    support::post_samples(&app, sample_body("ghost", start)).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    support::post_topology(
        &app,
        &part(false, false, &["early"], &[], start / 1000 - 10),
    )
    .await;
    // Older than the history: late.
    support::post_samples(&app, sample_body("early", start - 700_000)).await;

    let bound_topics = topics.clone();
    eventually(
        Duration::from_secs(30),
        "early sample bound, ghost unbound",
        move || {
            let (bound, unbound) = outcomes(&bound_topics);
            (bound.contains(&("early".into(), start))
                && unbound.contains_key(&("ghost".into(), start)))
            .then_some(())
        },
    )
    .await;

    // Deleted: within the delete grace it still binds, after it the sample waits, then is unbound.
    support::post_topology(&app, &part(false, false, &[], &["early"], start / 1000)).await;
    wait_for_pods(&topics.topology, &[("early", false)]).await;
    let deleted_at = now_ms();
    support::post_samples(&app, sample_body("early", deleted_at - 500)).await;
    support::post_samples(&app, sample_body("early", deleted_at + 10_000)).await;

    let final_topics = topics.clone();
    let (bound, unbound) = eventually(Duration::from_secs(30), "all outcomes", move || {
        let (bound, unbound) = outcomes(&final_topics);
        unbound
            .contains_key(&("early".into(), deleted_at + 10_000))
            .then_some((bound, unbound))
    })
    .await;
    assert!(
        bound.contains(&("early".into(), start)),
        "released from the pending buffer"
    );
    assert!(
        bound.contains(&("early".into(), deleted_at - 500)),
        "within the delete grace"
    );
    assert_eq!(
        unbound[&("ghost".into(), start)],
        UnboundReason::NoComponent
    );
    assert_eq!(
        unbound[&("early".into(), start - 700_000)],
        UnboundReason::Late
    );
    assert_eq!(
        unbound[&("early".into(), deleted_at + 10_000)],
        UnboundReason::NoComponent
    );
    assert_eq!(bound.len(), 2, "{bound:?}");
}
