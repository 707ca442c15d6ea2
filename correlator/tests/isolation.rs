//! Tenant isolation through the whole pipeline against the real broker. Tenant
//! `alpha` (KEY_A) tries every way it has to make its data count as `beta`'s
//! (KEY_B): tenant labels, tenant headers and query parameters, basic auth with
//! beta's name, topology payloads naming beta anywhere, components carrying
//! beta's externalIds and identifiers, snapshots and deletes of beta's
//! instance. Every record of the five topics must carry the tenant of the key
//! that sent it, and no sample may bind to another tenant's component. A second
//! test runs ingest and the correlator as processes at debug level and looks
//! for either key in their logs and `/metrics`.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::http::StatusCode;
use base64::Engine as _;
use proto::Message;
use proto::records::Component;
use support::kafka::{KEY_A, KEY_B, Record, TempDir, basic_auth};
use support::{Correlator, eventually, ingest_app};

const ALPHA: &str = "alpha";
const BETA: &str = "beta";
/// Both tenants report a pod of this name; so do their samples.
const SHARED_POD: &str = "shared-pod";
const BETA_ONLY_POD: &str = "beta-only-pod";
const ALPHA_ONLY_POD: &str = "alpha-only-pod";

fn pod_urn(pod: &str) -> String {
    format!("urn:kubernetes:/demo-cluster:monitoring:pod/{pod}")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A pod component whose name starts with the tenant that posted it, so a bound
/// record shows whose component it was bound to.
fn pod(external_id: &str, owner_name: &str, extra_identifiers: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "externalId": external_id,
        "type": {"name": "pod"},
        "data": {"name": owner_name, "identifiers": extra_identifiers,
                 "tags": {"tenant": "beta", "cluster-name": "demo-cluster"}, "labels": ["tenant:beta"]}
    })
}

/// The key's tenant: what precedes the first '/' (tenant names hold none).
fn key_tenant(record: &Record) -> String {
    let key = String::from_utf8_lossy(record.key.as_deref().unwrap_or_default()).into_owned();
    key.split('/').next().unwrap_or_default().to_string()
}

/// The series labels of a v1 body, with `sender` and `attempt` added.
fn labels<'a>(sender: &'a str, attempt: &'a str, pod: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("__name__", "isolation_requests_total"),
        ("cluster_name", "demo-cluster"),
        ("namespace", "monitoring"),
        ("pod", pod),
        ("sender", sender),
        ("attempt", attempt),
    ]
}

#[actix_web::test]
async fn no_request_of_one_tenant_produces_a_record_of_another() {
    let (dir, topics, state) = support::fresh_ingest(4).await;
    let app = ingest_app!(state);
    let correlator = Correlator::start_alone(&dir, &topics, &[("PENDING_GRACE_MS", "3000")]);
    let collected = now_ms() / 1000 - 60;
    let json = "application/json";

    // beta's topology: its shared pod and a pod only beta has.
    let beta_topology = serde_json::json!({"collection_timestamp": collected, "topologies": [{
        "start_snapshot": true, "stop_snapshot": true, "posted_by": BETA,
        "instance": {"type": "kubernetes", "url": "demo-cluster"},
        "components": [pod(&pod_urn(SHARED_POD), "beta-shared", &[]),
                       pod(&pod_urn(BETA_ONLY_POD), "beta-only", &[])]}]});
    let (status, body) = support::post(
        &app,
        "/receiver/stsAgent/intake",
        &[("sts-api-key", KEY_B), ("content-type", json)],
        beta_topology.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // alpha, through the agent's query parameter: a completed empty snapshot of
    // beta's instance name, deleting beta's externalIds, naming beta everywhere.
    let hostile_snapshot = serde_json::json!({
        "collection_timestamp": collected, "tenant": BETA, "apiKey": BETA, "api_key": BETA,
        "internalHostname": BETA,
        "topologies": [{"start_snapshot": true, "stop_snapshot": true, "posted_by": ALPHA,
            "tenant": BETA, "apiKey": BETA,
            "instance": {"type": "kubernetes", "url": "demo-cluster", "tenant": BETA},
            "delete_ids": [pod_urn(SHARED_POD), pod_urn(BETA_ONLY_POD)], "components": []}]});
    let uri =
        format!("/receiver/stsAgent/intake?api_key={KEY_A}&tenant={BETA}&X-Scope-OrgID={BETA}");
    let (status, body) = support::post(
        &app,
        &uri,
        &[("content-type", json)],
        hostile_snapshot.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // alpha, by header, with tenant headers: an instance url that spells beta's
    // topology.raw key, a component whose externalId spells beta's component key.
    let beta_lookalike_key = format!("beta/kubernetes/demo-cluster/{}", pod_urn(SHARED_POD));
    let lookalikes = serde_json::json!({"collection_timestamp": collected, "tenant": BETA, "topologies": [{
        "start_snapshot": true, "stop_snapshot": true, "posted_by": ALPHA, "tenant": BETA,
        "instance": {"type": "kubernetes", "url": "beta/kubernetes/demo-cluster"},
        "components": [pod(&pod_urn(ALPHA_ONLY_POD), "alpha-only", &[]),
                       pod(&beta_lookalike_key, "alpha-lookalike", &[])]}]});
    let (status, body) = support::post(
        &app,
        "/receiver/stsAgent/intake",
        &[
            ("sts-api-key", KEY_A),
            ("x-scope-orgid", BETA),
            ("tenant", BETA),
            ("content-type", json),
        ],
        lookalikes.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // alpha, by basic auth: its own copy of beta's shared pod (same externalId,
    // same identifiers) in an instance named like beta's.
    let basic_a = basic_auth(KEY_A);
    let copy = serde_json::json!({"collection_timestamp": collected, "topologies": [{
        "posted_by": ALPHA, "tenant": BETA,
        "instance": {"type": "kubernetes", "url": "demo-cluster"},
        "components": [pod(&pod_urn(SHARED_POD), "alpha-shared", &[&pod_urn(BETA_ONLY_POD)])]}]});
    let (status, body) = support::post(
        &app,
        &format!("/receiver/stsAgent/intake?tenant={BETA}"),
        &[("authorization", &basic_a), ("content-type", json)],
        copy.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Basic auth with beta's name as the username is refused, not taken as beta.
    let beta_as_user = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{BETA}:{KEY_A}"))
    );
    let (status, _) = support::post(
        &app,
        "/receiver/stsAgent/intake",
        &[("authorization", &beta_as_user), ("content-type", json)],
        copy.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // beta's 2 pods, alpha's shared copy, alpha-only and the lookalike: 5 live, no tombstone.
    let topology = topics.topology.clone();
    eventually(Duration::from_secs(60), "5 components", move || {
        let view = support::compacted_view(&topology);
        (view.values().flatten().count() == 5).then_some(())
    })
    .await;
    eventually(Duration::from_secs(30), "the join's index", {
        let url = correlator.url("/metrics");
        move || {
            support::curl_get(&url)
                .contains("correlator_topology_components 5")
                .then_some(())
        }
    })
    .await;

    // Samples. Every alpha attempt names beta somewhere; none has beta's key.
    let at = now_ms();
    let v1 = "application/x-protobuf";
    let write = "/api/v1/write";
    let mut expected_bound = 0;
    // (what, uri, headers, body, expected status)
    type Attempt<'a> = (&'a str, String, Vec<(&'a str, String)>, Vec<u8>, StatusCode);
    let attempts: Vec<Attempt> = vec![
        (
            "tenant label",
            write.to_string(),
            vec![("sts-api-key", KEY_A.into())],
            support::kafka::v1_request_with(
                &[
                    labels(ALPHA, "tenant-label", SHARED_POD),
                    vec![("tenant", BETA)],
                ]
                .concat(),
                at,
            ),
            StatusCode::NO_CONTENT,
        ),
        (
            "X-Scope-OrgID",
            write.to_string(),
            vec![
                ("sts-api-key", KEY_A.into()),
                ("x-scope-orgid", BETA.into()),
            ],
            support::kafka::v1_request_with(&labels(ALPHA, "x-scope-orgid", SHARED_POD), at),
            StatusCode::NO_CONTENT,
        ),
        (
            "tenant header",
            write.to_string(),
            vec![("sts-api-key", KEY_A.into()), ("tenant", BETA.into())],
            support::kafka::v1_request_with(&labels(ALPHA, "tenant-header", SHARED_POD), at),
            StatusCode::NO_CONTENT,
        ),
        (
            "query parameters",
            format!(
                "/receiver/prometheus/api/v1/write?tenant={BETA}&X-Scope-OrgID={BETA}&api_key={BETA}&org_id={BETA}"
            ),
            vec![("authorization", basic_a.clone())],
            support::kafka::v1_request_with(&labels(ALPHA, "query", SHARED_POD), at),
            StatusCode::NO_CONTENT,
        ),
        (
            "sts-api-key with a second credential",
            write.to_string(),
            vec![
                ("sts-api-key", KEY_A.into()),
                ("authorization", basic_auth(BETA)),
            ],
            support::kafka::v1_request_with(&labels(ALPHA, "two-credentials", SHARED_POD), at),
            StatusCode::NO_CONTENT,
        ),
        (
            "basic auth as beta",
            write.to_string(),
            vec![("authorization", beta_as_user.clone())],
            support::kafka::v1_request_with(&labels(ALPHA, "basic-beta", SHARED_POD), at),
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (what, uri, headers, body, expected) in attempts {
        let mut headers: Vec<(&str, &str)> =
            headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        headers.push(("content-type", v1));
        let (status, text) = support::post(&app, &uri, &headers, body).await;
        assert_eq!(status, expected, "{what}: {text}");
        if status == StatusCode::NO_CONTENT {
            expected_bound += 1;
        }
    }
    // Remote-write 2.0 takes the join's general path: a tenant label there too.
    let v2_body = support::v2_request_with(
        &[
            labels(ALPHA, "v2-tenant-label", SHARED_POD),
            vec![("tenant", BETA)],
        ]
        .concat(),
        at,
    );
    let (status, text) = support::post(
        &app,
        write,
        &[
            ("sts-api-key", KEY_A),
            ("x-scope-orgid", BETA),
            ("content-type", proto::CONTENT_TYPE_V2),
        ],
        v2_body,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "v2: {text}");
    expected_bound += 1;
    // alpha's sample for the pod only beta has binds to alpha's own component
    // that claims its identifier; one for a pod nobody has stays unbound.
    for (attempt, pod) in [
        ("beta-only-pod", BETA_ONLY_POD),
        ("nobodys-pod", "nobodys-pod"),
    ] {
        support::post_samples(
            &app,
            support::kafka::v1_request_with(&labels(ALPHA, attempt, pod), at),
        )
        .await;
    }
    // beta: its pods bind to its own components, never to alpha's that carry
    // the same externalId or identifier; alpha's only pod is not beta's.
    for (attempt, pod) in [
        ("beta-shared", SHARED_POD),
        ("beta-only-pod", BETA_ONLY_POD),
        ("alpha-only-pod", ALPHA_ONLY_POD),
    ] {
        let (status, text) = support::post(
            &app,
            write,
            &[("sts-api-key", KEY_B), ("content-type", v1)],
            support::kafka::v1_request_with(&labels(BETA, attempt, pod), at),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{text}");
    }
    expected_bound += 3;
    let expected_unbound = 2;

    let (bound_topic, unbound_topic) = (topics.bound.clone(), topics.unbound.clone());
    eventually(
        Duration::from_secs(90),
        "every sample bound or unbound",
        move || {
            let bound = support::read_all(&bound_topic).len();
            let unbound = support::read_all(&unbound_topic).len();
            (bound >= expected_bound && unbound >= expected_unbound).then_some(())
        },
    )
    .await;
    // Anything late would show up now.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut checked: BTreeMap<&str, usize> = BTreeMap::new();

    // metrics.samples: header and key are the sender's tenant.
    for record in support::read_all(&topics.samples) {
        let tenant = record.headers.get("tenant").cloned().unwrap_or_default();
        assert_eq!(key_tenant(&record), tenant);
        for series in support::sample_record_series(&record) {
            assert_eq!(series["sender"], tenant, "{series:?}");
            assert_ne!(
                series["attempt"], "basic-beta",
                "a refused request was written"
            );
        }
        *checked.entry("metrics.samples").or_default() += 1;
    }

    // topology.raw: header, key prefix and value's tenant are the sender's.
    for record in support::read_all(&topics.topology_raw) {
        let value: serde_json::Value = serde_json::from_slice(&record.payload).unwrap();
        let tenant = value["tenant"].as_str().unwrap();
        assert_eq!(value["posted_by"], tenant, "{value}");
        assert_eq!(
            record.headers.get("tenant").map(String::as_str),
            Some(tenant)
        );
        assert_eq!(key_tenant(&record), tenant);
        *checked.entry("topology.raw").or_default() += 1;
    }

    // topology.components: no tombstone (alpha's snapshot and deletes touched
    // nothing of beta's); header, key prefix, value's tenant and owner agree.
    let mut live: BTreeMap<String, (String, String)> = BTreeMap::new();
    for record in support::read_all(&topics.topology) {
        assert!(!record.payload.is_empty(), "a tombstone: {record:?}");
        let component = Component::decode(record.payload.as_slice()).unwrap();
        assert_eq!(
            record.headers.get("tenant").map(String::as_str),
            Some(component.tenant.as_str())
        );
        assert_eq!(key_tenant(&record), component.tenant);
        assert!(
            component.name.starts_with(&component.tenant),
            "{component:?}"
        );
        let key = String::from_utf8(record.key.clone().unwrap()).unwrap();
        live.insert(key, (component.tenant.clone(), component.name.clone()));
        *checked.entry("topology.components").or_default() += 1;
    }
    let shared = pod_urn(SHARED_POD);
    assert_eq!(
        live.get(&format!("beta/kubernetes/demo-cluster/{shared}")),
        Some(&(BETA.to_string(), "beta-shared".to_string())),
        "{live:?}"
    );
    assert_eq!(
        live.get(&format!("alpha/kubernetes/demo-cluster/{shared}")),
        Some(&(ALPHA.to_string(), "alpha-shared".to_string())),
        "{live:?}"
    );
    assert_eq!(
        live.get(&format!(
            "alpha/kubernetes/beta%2Fkubernetes%2Fdemo-cluster/{beta_lookalike_key}"
        )),
        Some(&(ALPHA.to_string(), "alpha-lookalike".to_string())),
        "{live:?}"
    );

    // metrics.bound: the sample's tenant everywhere, and a component of its own.
    let mut bound_attempts = Vec::new();
    for record in support::read_all(&topics.bound) {
        let tenant = record.headers["tenant"].clone();
        assert_eq!(key_tenant(&record), tenant);
        for series in support::batch_of(&record) {
            let sender = series.label("sender").unwrap();
            let attempt = series.label("attempt").unwrap();
            assert_eq!(tenant, sender);
            let name = series.label("component_name").unwrap();
            assert!(name.starts_with(&tenant), "{attempt} bound to {name}");
            bound_attempts.push(format!("{tenant}:{attempt} -> {name}"));
            *checked.entry("metrics.bound").or_default() += 1;
        }
    }
    bound_attempts.sort();
    assert_eq!(
        bound_attempts,
        [
            "alpha:beta-only-pod -> alpha-shared",
            "alpha:query -> alpha-shared",
            "alpha:tenant-header -> alpha-shared",
            "alpha:tenant-label -> alpha-shared",
            "alpha:two-credentials -> alpha-shared",
            "alpha:v2-tenant-label -> alpha-shared",
            "alpha:x-scope-orgid -> alpha-shared",
            "beta:beta-only-pod -> beta-only",
            "beta:beta-shared -> beta-shared",
        ]
    );

    // metrics.unbound: the sample's tenant, and no component found for it.
    let mut unbound_attempts = Vec::new();
    for record in support::read_all(&topics.unbound) {
        let tenant = record.headers["tenant"].clone();
        assert_eq!(key_tenant(&record), tenant);
        assert_eq!(record.headers["reason"], "no_component");
        for series in support::batch_of(&record) {
            let sender = series.label("sender").unwrap();
            let attempt = series.label("attempt").unwrap();
            assert_eq!(tenant, sender);
            unbound_attempts.push(format!("{tenant}:{attempt}"));
            *checked.entry("metrics.unbound").or_default() += 1;
        }
    }
    unbound_attempts.sort();
    assert_eq!(
        unbound_attempts,
        ["alpha:nobodys-pod", "beta:alpha-only-pod"]
    );
    eprintln!("records checked per topic: {checked:?}");
    assert_eq!(checked.len(), 5, "every topic had records: {checked:?}");
    drop(correlator);
}

/// Both keys in every credential form, on good and refused requests, through
/// ingest and the correlator as processes at debug level: neither key, nor its
/// basic-auth form, in any log line of either process or in either `/metrics`.
#[test]
fn no_key_in_any_log_line_or_metrics_of_either_process() {
    let dir = TempDir::new();
    let topics = support::fresh_topics();
    let keys = support::kafka::keys_file(&dir, "");
    let binary = support::ingest_binary();
    // Ingest logs JSON, the correlator text: both formats are scanned.
    let debug = [
        ("RUST_LOG", "debug"),
        ("LOG_FORMAT", "json"),
        ("TOPIC_SAMPLES", topics.samples.as_str()),
        ("TOPIC_TOPOLOGY_RAW", topics.topology_raw.as_str()),
    ];
    let ingest = support::kafka::IngestProcess::start(
        binary.to_str().unwrap(),
        &dir,
        &keys,
        &support::kafka::brokers(),
        &debug,
    );
    let correlator = Correlator::start_alone(
        &dir,
        &topics,
        &[("RUST_LOG", "debug"), ("PENDING_GRACE_MS", "2000")],
    );

    let at = now_ms();
    let topology = |owner: &str| {
        serde_json::json!({"collection_timestamp": at / 1000 - 60, "topologies": [{
            "start_snapshot": true, "stop_snapshot": true,
            "instance": {"type": "kubernetes", "url": "demo-cluster"},
            "components": [pod(&pod_urn(SHARED_POD), &format!("{owner}-shared"), &[])]}]})
        .to_string()
        .into_bytes()
    };
    let intake = ingest.url("/receiver/stsAgent/intake");
    let write = ingest.url("/api/v1/write");
    let json = ("content-type", "application/json");
    let v1 = ("content-type", "application/x-protobuf");
    for (key, tenant) in [(KEY_A, ALPHA), (KEY_B, BETA)] {
        let basic = basic_auth(key);
        let query = format!("{intake}?api_key={key}");
        let sample = |attempt: &str| {
            support::kafka::v1_request_with(&labels(tenant, attempt, SHARED_POD), at)
        };
        let unknown_key = format!("{key}x");
        let wrong_user = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("admin:{key}"))
        );
        let key_in_query_only = format!("{write}?api_key={key}");
        type Attempt<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16);
        let attempts: Vec<Attempt<'_>> = vec![
            // Accepted: every credential form.
            (&query, vec![json], topology(tenant), 200),
            (
                &intake,
                vec![("sts-api-key", key), json],
                topology(tenant),
                200,
            ),
            (
                &intake,
                vec![("authorization", &basic), json],
                topology(tenant),
                200,
            ),
            (
                &write,
                vec![("sts-api-key", key), v1],
                sample("header"),
                204,
            ),
            (
                &write,
                vec![("authorization", &basic), v1],
                sample("basic"),
                204,
            ),
            // Refused, each after or instead of authentication: logged at debug.
            (
                &write,
                vec![("sts-api-key", key), v1],
                b"not snappy".to_vec(),
                400,
            ),
            (
                &write,
                vec![("sts-api-key", key), ("content-type", "text/plain")],
                sample("media-type"),
                415,
            ),
            (
                &query,
                vec![json],
                br#"{"topologies": [{"instance": {}}]}"#.to_vec(),
                400,
            ),
            (
                &write,
                vec![("sts-api-key", &unknown_key), v1],
                sample("unknown-key"),
                401,
            ),
            (
                &write,
                vec![("authorization", &wrong_user), v1],
                sample("wrong-user"),
                401,
            ),
            (&key_in_query_only, vec![v1], sample("query-only"), 401),
        ];
        for (url, headers, body, expected) in attempts {
            let status = support::curl_post(&dir, url, &headers, &body);
            assert_eq!(status, expected, "{tenant}: {url} with {headers:?}");
        }
    }

    // Both tenants' samples are joined (so the correlator logged its debug lines for them).
    let bound = topics.bound.clone();
    wait_for(Duration::from_secs(90), move || {
        let series: usize = support::read_all(&bound)
            .iter()
            .map(|record| support::batch_of(record).len())
            .sum();
        (series >= 4).then_some(())
    })
    .expect("both tenants' samples bound");

    let mut forms: Vec<(String, String)> = Vec::new();
    for (name, key) in [("KEY_A", KEY_A), ("KEY_B", KEY_B)] {
        forms.push((name.to_string(), key.to_string()));
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("apikey:{key}"));
        forms.push((format!("{name} as basic auth"), basic));
        let admin = base64::engine::general_purpose::STANDARD.encode(format!("admin:{key}"));
        forms.push((format!("{name} as basic auth with another user"), admin));
    }
    let scan = |what: &str, text: &str| {
        for (form, secret) in &forms {
            assert!(
                !text.contains(secret.as_str()),
                "{form} found in {what}:\n{}",
                text.lines()
                    .filter(|line| line.contains(secret.as_str()))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    };
    let ingest_metrics = support::curl_get(&ingest.url("/metrics"));
    let correlator_metrics = support::curl_get(&correlator.url("/metrics"));
    assert!(ingest_metrics.contains("# TYPE"), "{ingest_metrics}");
    assert!(
        correlator_metrics.contains("# TYPE"),
        "{correlator_metrics}"
    );
    scan("ingest /metrics", &ingest_metrics);
    scan("correlator /metrics", &correlator_metrics);

    // Shutdown logs count too.
    ingest.signal("-TERM");
    let mut correlator = correlator;
    correlator.terminate();
    let mut ingest = ingest;
    let _ = ingest.child.wait();
    let ingest_log = ingest.log_text();
    let correlator_log = correlator.log_text();
    // Refusals are logged at WARN (one line per tenant and reason a second),
    // so debug lines are fewer; the scan above must still have seen some.
    assert!(
        ingest_log.lines().any(|l| l.contains("DEBUG")) && ingest_log.lines().count() > 10,
        "ingest logged at debug:\n{ingest_log}"
    );
    assert!(
        correlator_log.contains("topology part applied"),
        "the correlator logged at debug:\n{correlator_log}"
    );
    scan("the ingest log", &ingest_log);
    scan("the correlator log", &correlator_log);
    eprintln!(
        "scanned {} ingest and {} correlator log lines, {} + {} bytes of /metrics",
        ingest_log.lines().count(),
        correlator_log.lines().count(),
        ingest_metrics.len(),
        correlator_metrics.len()
    );
}

/// Polls `check` until it holds or `within` passes (outside any runtime).
fn wait_for<T>(within: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
