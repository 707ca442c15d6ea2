//! The whole pipeline against the real broker: ingest (in-process), the
//! correlator (its own process), real Prometheus traffic and an agent snapshot.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::kafka::TempDir;
use support::{CONTAINER, Correlator, POD, eventually, ingest_app};

/// The Java clients' murmur2 (Kafka's `Utils.murmur2`).
fn java_murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes(chunk.try_into().unwrap());
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= (rest[2] as u32) << 16;
    }
    if rest.len() >= 2 {
        h ^= (rest[1] as u32) << 8;
    }
    if !rest.is_empty() {
        h ^= rest[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition the Java clients' default partitioner gives `key`.
fn java_partition(key: &[u8], partitions: i32) -> i32 {
    (java_murmur2(key) & 0x7fff_ffff) % partitions
}

#[test]
fn java_murmur2_matches_kafkas_own_cases() {
    // From Kafka's UtilsTest.testMurmur2.
    for (key, hash) in [
        (&b"21"[..], -973_932_308),
        (b"foobar", -790_332_482),
        (b"a-little-bit-long-string", -985_981_536),
        (b"a-little-bit-longer-string", -1_486_304_829),
        (
            b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58_897_971,
        ),
        (b"abc", 479_470_107),
    ] {
        assert_eq!(java_murmur2(key), hash, "{}", String::from_utf8_lossy(key));
    }
}

#[actix_web::test]
async fn fixtures_bind_to_the_pod_and_container_and_the_rest_says_why_not() {
    let dir = TempDir::new();
    let topics = support::fresh_topics();
    let (correlator, per_job) = support::fixtures_posted(&dir, &topics).await;

    let node_samples = per_job["node"];
    let prometheus_samples = per_job["prometheus"];
    assert_eq!(
        node_samples + prometheus_samples,
        20_000,
        "jobs in the fixtures: {per_job:?}"
    );
    let (bound, unbound) = (topics.bound.clone(), topics.unbound.clone());
    let bound_partitions = support::kafka::partition_count(&bound);
    let (per_component, per_reason) =
        eventually(Duration::from_secs(90), "every sample joined", move || {
            let mut per_component: BTreeMap<String, usize> = BTreeMap::new();
            for record in support::read_all(&bound) {
                let key = record.key.as_deref().unwrap();
                let component = record.headers["component"].clone();
                assert_eq!(String::from_utf8_lossy(key), format!("alpha/{component}"));
                assert_eq!(record.headers["tenant"], "alpha");
                assert_eq!(record.headers["content-type"], proto::CONTENT_TYPE_V2);
                assert!(["pod", "container"].contains(&record.headers["component-type"].as_str()));
                assert!(record.headers["rule"].starts_with("k8s-"));
                // Where a Java producer would have put the component's key.
                assert_eq!(record.partition, java_partition(key, bound_partitions));
                let batch = support::batch_of(&record);
                for series in &batch {
                    assert_eq!(series.label("job"), Some("node"));
                    assert_eq!(
                        series.label("component_external_id"),
                        Some(component.as_str())
                    );
                }
                *per_component.entry(component).or_default() += support::points_of(&batch);
            }
            let mut per_reason: BTreeMap<String, usize> = BTreeMap::new();
            for record in support::read_all(&unbound) {
                assert_eq!(record.headers["tenant"], "alpha");
                let batch = support::batch_of(&record);
                for series in &batch {
                    assert_eq!(
                        series.label("unbound_reason"),
                        Some(record.headers["reason"].as_str())
                    );
                    assert!(
                        series
                            .label("unbound_detail")
                            .is_some_and(|d| !d.is_empty())
                    );
                }
                *per_reason
                    .entry(record.headers["reason"].clone())
                    .or_default() += support::points_of(&batch);
            }
            let bound_total: usize = per_component.values().sum();
            let unbound_total: usize = per_reason.values().sum();
            (bound_total >= 2 * node_samples && unbound_total >= prometheus_samples)
                .then_some((per_component, per_reason))
        })
        .await;
    assert_eq!(
        per_component,
        BTreeMap::from([
            (CONTAINER.to_string(), node_samples),
            (POD.to_string(), node_samples)
        ])
    );
    assert_eq!(
        per_reason,
        BTreeMap::from([("missing_label".to_string(), prometheus_samples)])
    );
    // Every consumed samples record's lag is observed once its outputs are acknowledged.
    eventually(Duration::from_secs(30), "end-to-end lag observed", {
        let url = correlator.url("/metrics");
        move || {
            let text = support::curl_get(&url);
            let value = |name: &str| {
                text.lines()
                    .find_map(|line| line.strip_prefix(name))
                    .and_then(|rest| rest.trim().parse::<f64>().ok())
            };
            let consumed = value("correlator_records_consumed_total{kind=\"samples\"}")?;
            let observed = value("correlator_end_to_end_lag_seconds_count")?;
            (consumed > 0.0 && observed == consumed).then_some(())
        }
    })
    .await;
    drop(correlator);
}

#[actix_web::test]
async fn a_custom_bindings_file_replaces_the_defaults_and_a_broken_one_stops_the_start() {
    let (dir, topics, state) = support::fresh_ingest(2).await;
    let app = ingest_app!(state);
    let bindings = dir.write(
        "bindings.toml",
        "[[rules]]\nname = \"checkout-service\"\ntemplate = \"urn:service:/${service_name}:${env|environment}\"\n",
    );
    let _correlator = Correlator::start_alone(
        &dir,
        &topics,
        &[
            ("BINDINGS_FILE", bindings.to_str().unwrap()),
            ("OUTPUT_ENCODING", "json"),
        ],
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let snapshot = serde_json::json!({"collection_timestamp": now / 1000 - 60, "topologies": [{
        "start_snapshot": true, "stop_snapshot": true, "instance": {"type": "services", "url": "shop"},
        "components": [{"externalId": "checkout", "type": {"name": "service"},
                        "data": {"name": "checkout", "identifiers": ["urn:service:/checkout:prod"]}}]}]});
    support::post_topology(&app, &snapshot).await;
    let topology = topics.topology.clone();
    eventually(
        Duration::from_secs(60),
        "component materialized",
        move || (support::compacted_view(&topology).len() == 1).then_some(()),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let body = support::kafka::v1_request_with(
        &[
            ("__name__", "http_requests_total"),
            ("service_name", "checkout"),
            ("env", "prod"),
        ],
        now,
    );
    support::post_samples(&app, body).await;
    let bound = topics.bound.clone();
    let record = eventually(Duration::from_secs(60), "a bound record", move || {
        support::read_all(&bound).into_iter().next()
    })
    .await;
    let json: serde_json::Value = serde_json::from_slice(&record.payload).unwrap();
    assert_eq!(json["component"]["externalId"], "checkout");
    assert_eq!(json["component"]["rule"], "checkout-service");
    assert_eq!(record.headers["content-type"], "application/json");
    assert_eq!(record.headers["rule"], "checkout-service");
    let series = &json["timeseries"][0];
    assert_eq!(series["labels"]["component_external_id"], "checkout");
    assert_eq!(series["labels"]["service_name"], "checkout");
    assert_eq!(series["samples"][0]["timestamp"], now);

    // A Kubernetes series finds no rule now: the defaults are gone.
    let broken = dir.write(
        "broken.toml",
        "[[rules]]\nname = \"bad-rule\"\ntemplate = \"urn:x:/${unclosed\"\n",
    );
    let mut failing = Correlator::spawn(
        &dir,
        &support::fresh_topics(),
        "g",
        &[("BINDINGS_FILE", broken.to_str().unwrap())],
    );
    let status = failing.child.wait().unwrap();
    assert!(!status.success());
    let log = failing.log_text();
    assert!(log.contains("bad-rule"), "the error names the rule: {log}");
    failing.kill();
}
