//! The agent intake into the real broker: one `topology.raw` record per part,
//! in order on one partition per instance, the tenant taken from the key.

mod common;

use std::io::Write;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{App, test};
use ingest::routes;

/// Posts `payload` to the intake with tenant alpha's key: the status and the
/// answer's text.
async fn post_intake(
    app: &impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
    payload: String,
) -> (StatusCode, String) {
    let request = test::TestRequest::post()
        .uri("/receiver/stsAgent/intake")
        .insert_header(("sts-api-key", common::KEY_A))
        .set_payload(payload)
        .to_request();
    let response = test::call_service(app, request).await;
    let status = response.status();
    let body = test::read_body(response).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn snapshot_parts() -> serde_json::Value {
    let component = |id: &str, kind: &str| serde_json::json!({"externalId": id, "type": {"name": kind}, "data": {"name": id.rsplit('/').next().unwrap(), "identifiers": []}});
    serde_json::json!({
        "apiKey": "ignored",
        "collection_timestamp": 1_700_000_000,
        "internalHostname": "agent-1",
        "events": {}, "metrics": [], "service_checks": [], "health": [],
        "topologies": [
            {"start_snapshot": true, "stop_snapshot": false, "instance": {"type": "kubernetes", "url": "demo-cluster"},
             "components": [component("urn:kubernetes:/demo-cluster:node/node-1", "node")], "relations": []},
            {"start_snapshot": false, "stop_snapshot": false, "instance": {"type": "kubernetes", "url": "demo-cluster"},
             "components": [component("urn:kubernetes:/demo-cluster:monitoring:pod/node-exporter-x7k2p", "pod")], "relations": []},
            {"start_snapshot": false, "stop_snapshot": true, "instance": {"type": "kubernetes", "url": "demo-cluster"},
             "tenant": "beta",
             "components": [component("urn:kubernetes:/demo-cluster:monitoring:pod/node-exporter-x7k2p:container/node-exporter", "container")],
             "relations": []}
        ]
    })
}

#[actix_web::test]
async fn snapshot_parts_arrive_in_order_on_one_partition_for_the_keys_tenant() {
    let dir = common::TempDir::new();
    let state = common::ready_state(common::settings(common::keys_file(&dir, ""), |_| {})).await;
    let app = test::init_service(
        App::new()
            .app_data(state.clone())
            .configure(routes::configure),
    )
    .await;

    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(snapshot_parts().to_string().as_bytes())
        .unwrap();
    let request = test::TestRequest::post()
        .uri(&format!(
            "/receiver/stsAgent/intake?api_key={}",
            common::KEY_A
        ))
        .insert_header(("content-type", "application/json"))
        .insert_header(("content-encoding", "gzip"))
        .set_payload(gzip.finish().unwrap())
        .to_request();
    let response = test::call_service(&app, request).await;
    assert_eq!(response.status(), StatusCode::OK);

    let records = common::read_all(&state.settings.topic_topology_raw);
    assert_eq!(records.len(), 3);
    assert!(records.iter().all(|r| r.partition == records[0].partition));
    let mut records = records;
    records.sort_by_key(|r| r.offset);
    let kinds: Vec<String> = records
        .iter()
        .map(|r| {
            assert_eq!(
                r.key.as_deref(),
                Some(&b"alpha/kubernetes/demo-cluster"[..])
            );
            let part: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
            assert_eq!(part["tenant"], "alpha");
            part["components"][0]["type"]["name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(kinds, ["node", "pod", "container"]);

    // A part without an instance: 400, naming it; no key: 401.
    let bad = test::TestRequest::post()
        .uri("/receiver/stsAgent/intake")
        .insert_header(("sts-api-key", common::KEY_A))
        .set_payload(r#"{"topologies": [{"components": []}]}"#)
        .to_request();
    let response = test::call_service(&app, bad).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = test::read_body(response).await;
    assert_eq!(
        String::from_utf8_lossy(&body).trim(),
        "topologies[0]: missing field `instance`"
    );

    // Good parts before a malformed one: 400 naming it, and none of them published.
    let mut payload = snapshot_parts();
    payload["topologies"][2]["components"][0]["type"] = serde_json::json!("container");
    let (status, body) = post_intake(&app, payload.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body.trim(),
        r#"topologies[2].components[0].type: invalid type: string "container", expected an object with "name""#
    );
    let mut payload = snapshot_parts();
    payload["topologies"][1]["delete_ids"] = serde_json::json!("x");
    let (status, body) = post_intake(&app, payload.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body.trim(),
        r#"topologies[1].delete_ids: invalid type: string "x", expected a sequence"#
    );
    assert_eq!(
        common::read_all(&state.settings.topic_topology_raw).len(),
        3,
        "nothing of the refused requests was published"
    );

    // An instance url with '/' is escaped in the key, kept in the value.
    let mut payload = snapshot_parts();
    payload["topologies"] =
        serde_json::json!([{"instance": {"type": "kubernetes", "url": "https://api:6443"}}]);
    let slashes = test::TestRequest::post()
        .uri("/receiver/stsAgent/intake")
        .insert_header(("sts-api-key", common::KEY_A))
        .set_payload(payload.to_string())
        .to_request();
    assert_eq!(
        test::call_service(&app, slashes).await.status(),
        StatusCode::OK
    );
    let records = common::read_all(&state.settings.topic_topology_raw);
    let escaped = records
        .iter()
        .find(|r| r.key.as_deref() == Some(&b"alpha/kubernetes/https:%2F%2Fapi:6443"[..]))
        .expect("a record keyed with the url escaped");
    let part: serde_json::Value = serde_json::from_slice(&escaped.payload).unwrap();
    assert_eq!(part["instance"]["url"], "https://api:6443");
    assert_eq!(
        escaped.headers.get("tenant").map(String::as_str),
        Some("alpha")
    );
    let anonymous = test::TestRequest::post()
        .uri("/receiver/stsAgent/intake")
        .set_payload("{}")
        .to_request();
    assert_eq!(
        test::call_service(&app, anonymous).await.status(),
        StatusCode::UNAUTHORIZED
    );
}
