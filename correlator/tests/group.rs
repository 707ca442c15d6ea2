//! Two correlators in one group over 8 partitions, one killed with SIGKILL
//! mid-stream and restarted: nothing is lost; with exactly-once, nothing is doubled.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use proto::prometheus::{Label, Sample, TimeSeries};
use support::{Correlator, eventually, ingest_app};

const REQUESTS: usize = 120;
const SERIES_PER_REQUEST: usize = 20;
const PODS: usize = 10;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn request(index: usize, timestamp: i64) -> Vec<u8> {
    let timeseries = (0..SERIES_PER_REQUEST)
        .map(|j| {
            let sequence = index * SERIES_PER_REQUEST + j;
            let label = |name: &str, value: String| Label {
                name: name.into(),
                value,
            };
            TimeSeries {
                labels: vec![
                    label("__name__", "work".into()),
                    label("cluster_name", "c1".into()),
                    label("namespace", "ns".into()),
                    label("pod", format!("p{}", sequence % PODS)),
                    label("seq", sequence.to_string()),
                ],
                samples: vec![Sample {
                    value: sequence as f64,
                    timestamp,
                }],
                ..Default::default()
            }
        })
        .collect();
    support::kafka::snappy_v1(timeseries)
}

/// How many times each sequence number was bound.
fn bound_counts(topic: &str) -> BTreeMap<usize, usize> {
    let mut counts = BTreeMap::new();
    for record in support::read_all(topic) {
        for series in support::batch_of(&record) {
            let sequence: usize = series.label("seq").unwrap().parse().unwrap();
            *counts.entry(sequence).or_default() += series.samples.len();
        }
    }
    counts
}

async fn kill_one_mid_stream(exactly_once: bool) -> BTreeMap<usize, usize> {
    let (dir, topics, state) = support::fresh_ingest(8).await;
    let app = ingest_app!(state);
    // Short sessions so the killed member's partitions move on quickly.
    let config = dir.write(
        "correlator.toml",
        "[kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"1000\"\n",
    );
    let group = support::unique("group");
    let mode = if exactly_once { "true" } else { "false" };
    let config = config.to_str().unwrap().to_string();
    // HOSTNAME gives each member a stable transactional.id, so a restart fences its old self.
    let start = |host: &str| {
        let env = [
            ("CORRELATOR_CONFIG", config.as_str()),
            ("EXACTLY_ONCE", mode),
            ("HOSTNAME", host),
            ("TOPIC_PARTITIONS", "8"),
        ];
        Correlator::start(&dir, &topics, &group, &env)
    };

    let now = now_ms();
    let pods: Vec<serde_json::Value> = (0..PODS)
        .map(|p| serde_json::json!({"externalId": format!("urn:kubernetes:/c1:ns:pod/p{p}"), "type": {"name": "pod"}, "data": {"name": format!("p{p}")}}))
        .collect();
    let snapshot = serde_json::json!({"collection_timestamp": now / 1000 - 60, "topologies": [{
        "start_snapshot": true, "stop_snapshot": true, "instance": {"type": "kubernetes", "url": "c1"}, "components": pods}]});
    let mut first = start("correlator-1");
    let second = start("correlator-2");
    support::post_topology(&app, &snapshot).await;
    let topology = topics.topology.clone();
    eventually(Duration::from_secs(60), "pods materialized", move || {
        (support::compacted_view(&topology).len() == PODS).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    for index in 0..REQUESTS {
        if index == REQUESTS / 3 {
            first.kill();
        }
        if index == 2 * REQUESTS / 3 {
            first = start("correlator-1");
        }
        support::post_samples(&app, request(index, now)).await;
    }

    let expected = REQUESTS * SERIES_PER_REQUEST;
    let bound = topics.bound.clone();
    eventually(Duration::from_secs(120), "every sample bound", {
        let bound = bound.clone();
        move || (bound_counts(&bound).len() == expected).then_some(())
    })
    .await;
    // Give late duplicates a chance to show before judging.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let counts = tokio::task::spawn_blocking(move || bound_counts(&bound))
        .await
        .unwrap();
    drop((first, second));
    counts
}

#[actix_web::test]
async fn at_least_once_loses_nothing_when_a_member_is_killed() {
    let counts = kill_one_mid_stream(false).await;
    let duplicated = counts.values().filter(|c| **c > 1).count();
    assert_eq!(counts.len(), REQUESTS * SERIES_PER_REQUEST);
    assert!(counts.values().all(|c| *c >= 1));
    eprintln!(
        "at-least-once: {} samples, {duplicated} delivered more than once",
        counts.len()
    );
}

#[actix_web::test]
async fn exactly_once_delivers_each_sample_once_when_a_member_is_killed() {
    let counts = kill_one_mid_stream(true).await;
    let duplicated: Vec<(&usize, &usize)> = counts.iter().filter(|(_, c)| **c != 1).collect();
    assert!(
        duplicated.is_empty(),
        "read_committed sees each sample exactly once: {duplicated:?}"
    );
}
