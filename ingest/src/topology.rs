//! `POST /receiver/stsAgent/intake`: the StackState Agent's topology payload.
//! Each part of its `topologies` array is checked against the shape the
//! correlator reads, then becomes one `topology.raw` record, keyed
//! `tenant/instance.type/instance.url` (segments escaped) so every part of one
//! instance stays in order on one partition; the answer waits for every ack.

use std::fmt;
use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use proto::keys::record_key;
use serde_json::{Map, Value};
use tracing::debug;

use crate::error::IngestError;
use crate::refusals::RefusedRequest;
use crate::state::AppState;
use crate::write::{authenticate, header_str, read_body, record_request, remaining};

/// The content type of `topology.raw` records.
pub const CONTENT_TYPE_TOPOLOGY: &str = "application/json";

#[derive(serde::Deserialize)]
struct IntakeQuery {
    api_key: Option<String>,
}

pub async fn intake(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let started = Instant::now();
    let mut tenant = None;
    let response = match handle(&request, payload, &state, &mut tenant, started).await {
        Ok(parts) => HttpResponse::Ok().json(serde_json::json!({ "parts": parts })),
        Err(error) => {
            match &tenant {
                // At most a line a second per tenant and reason, as for writes.
                Some(tenant) if error.status_code().is_server_error() => {
                    let refused = RefusedRequest {
                        endpoint: "intake",
                        tenant,
                        status: error.status_code(),
                        reason: error.reason(),
                        first_series: None,
                        message: &error,
                    };
                    state.refusal_logs.refused(&refused, Instant::now());
                }
                _ => debug!(error = %error, "topology intake refused"),
            }
            error.error_response()
        }
    };
    record_request(&state, "intake", response.status(), started);
    response
}

async fn handle(
    request: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    tenant_name: &mut Option<Arc<str>>,
    started: Instant,
) -> Result<usize, IngestError> {
    let headers = request.headers();
    let query = web::Query::<IntakeQuery>::from_query(request.query_string())
        .map(web::Query::into_inner)
        .ok();
    let query_key = query.as_ref().and_then(|q| q.api_key.as_deref());
    let tenant = authenticate(request, "intake", query_key, state)?;
    *tenant_name = Some(tenant.name.clone());
    if let Some(content_type) = header_str(headers, header::CONTENT_TYPE.as_str()) {
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        if !media_type.eq_ignore_ascii_case("application/json") {
            return Err(IngestError::UnsupportedMediaType(format!(
                "unsupported content type {content_type:?}: the intake takes application/json"
            )));
        }
    }
    let encoding = header_str(headers, header::CONTENT_ENCODING.as_str())
        .map(|e| e.trim().to_ascii_lowercase());
    let (body, mut held) = read_body(headers, payload, state, remaining(state, started)).await?;
    let limit = state.settings.max_decoded_bytes;
    if !held.try_resize(body.len() + body.len().saturating_mul(2).min(limit)) {
        return Err(IngestError::overloaded());
    }
    let json = decompress(encoding.as_deref(), &body, limit)?;
    let tenant_name = tenant.name.clone();
    let records = web::block(move || parts_to_records(&json, &tenant_name))
        .await
        .map_err(|_| IngestError::unavailable("decoder pool is shutting down"))??;
    if records.is_empty() {
        return Ok(0);
    }
    let topic = state.settings.topic_topology_raw.clone();
    // Parts of one request may belong to several instances: publish per key, all awaited together.
    let publishes = records.iter().map(|(key, value)| {
        let one = [(None, value.as_slice())];
        let topic = topic.clone();
        let tenant = &tenant;
        async move {
            state
                .publisher
                .publish(
                    &topic,
                    key,
                    CONTENT_TYPE_TOPOLOGY,
                    &tenant.name,
                    &one,
                    remaining(state, started),
                )
                .await
        }
    });
    for result in futures::future::join_all(publishes).await {
        result.map_err(|error| IngestError::unavailable(error.to_string()))?;
    }
    state.metrics.topology_parts.inc_by(records.len() as u64);
    Ok(records.len())
}

/// Identity, gzip or deflate (zlib, or raw deflate as some clients send), bounded.
fn decompress(encoding: Option<&str>, body: &[u8], limit: usize) -> Result<Vec<u8>, IngestError> {
    let reader: Box<dyn Read + '_> = match encoding {
        None | Some("") | Some("identity") => return Ok(body.to_vec()),
        Some("gzip") | Some("x-gzip") => Box::new(flate2::read::MultiGzDecoder::new(body)),
        Some("deflate") => {
            // RFC 9110's deflate is zlib-wrapped; raw deflate is common enough to accept.
            let zlib_header = body.len() >= 2
                && (u16::from(body[0]) << 8 | u16::from(body[1])) % 31 == 0
                && body[0] & 0x0f == 8;
            if zlib_header {
                Box::new(flate2::read::ZlibDecoder::new(body))
            } else {
                Box::new(flate2::read::DeflateDecoder::new(body))
            }
        }
        Some(other) => {
            return Err(IngestError::UnsupportedMediaType(format!(
                "unsupported content encoding {other:?}: the intake takes identity, gzip or deflate"
            )));
        }
    };
    let mut json = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut json)
        .map_err(|e| {
            IngestError::BadRequest(format!(
                "corrupt {} body: {e}",
                encoding.unwrap_or_default()
            ))
        })?;
    if json.len() > limit {
        return Err(IngestError::PayloadTooLarge(format!(
            "decompressed body is over the limit of {limit} bytes"
        )));
    }
    Ok(json)
}

/// One (key, value) per `topologies[]` part. The tenant comes from the API key
/// only: a `tenant` field in the payload is overwritten, never trusted. Every
/// part is checked (see [`check_part`]) before anything is published, so a
/// request is published whole or refused whole, and nothing reaches
/// `topology.raw` that the correlator's materializer cannot read.
pub fn parts_to_records(json: &[u8], tenant: &str) -> Result<Vec<(String, Vec<u8>)>, IngestError> {
    let payload: Value = serde_json::from_slice(json)
        .map_err(|e| IngestError::BadRequest(format!("invalid JSON: {e}")))?;
    let Value::Object(payload) = payload else {
        return Err(IngestError::BadRequest(
            "intake payload must be a JSON object".into(),
        ));
    };
    let collection_timestamp = payload
        .get("collection_timestamp")
        .and_then(Value::as_f64)
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64()
        });
    let parts = match payload.get("topologies") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(parts)) => parts,
        Some(_) => {
            return Err(IngestError::BadRequest(
                "topologies must be an array".into(),
            ));
        }
    };
    let mut records = Vec::with_capacity(parts.len());
    for (index, part) in parts.iter().enumerate() {
        check_part(&format!("topologies[{index}]"), part)
            .map_err(|problem| IngestError::BadRequest(problem.to_string()))?;
        let Value::Object(part) = part else {
            continue; // check_part refuses anything else
        };
        let instance = &part["instance"];
        let key = record_key(
            tenant,
            instance["type"].as_str().unwrap_or_default(),
            instance["url"].as_str().unwrap_or_default(),
        );
        let mut value: Map<String, Value> = part.clone();
        value.insert("tenant".into(), Value::String(tenant.to_string()));
        value.insert(
            "collection_timestamp".into(),
            serde_json::json!(collection_timestamp),
        );
        let encoded = serde_json::to_vec(&Value::Object(value)).expect("JSON values encode");
        records.push((key, encoded));
    }
    Ok(records)
}

/// A part the correlator could not read, and where: the message reads
/// `topologies[2].components[5].type: expected an object with "name"`.
#[derive(Debug, PartialEq, Eq)]
pub struct ShapeError {
    pub path: String,
    pub expected: &'static str,
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: expected {}", self.path, self.expected)
    }
}

fn shape(path: String, expected: &'static str) -> ShapeError {
    ShapeError { path, expected }
}

/// The shape of one `topologies[]` part, as the agent sends it and the
/// correlator's materializer reads it (`correlator::snapshot::TopologyPart`):
///
/// - `instance`: an object with non-empty string `type` and `url`;
/// - `start_snapshot`, `stop_snapshot`: booleans, or absent;
/// - `delete_ids`: an array of strings, or absent;
/// - `components`: an array, or absent, of objects with a non-empty string
///   `externalId`; `type` absent, null or `{"name": string}`; `data` absent,
///   null or an object whose `identifiers`, if any, are an array of strings;
/// - `relations`: an array of objects, absent or null (not read downstream).
///
/// Other fields are kept and ignored. Where the correlator would accept more
/// (a `type` without `name`, a non-object `data`), ingest is the stricter one.
pub fn check_part(path: &str, part: &Value) -> Result<(), ShapeError> {
    let Value::Object(part) = part else {
        return Err(shape(path.to_string(), "an object"));
    };
    let Some(Value::Object(instance)) = part.get("instance") else {
        return Err(shape(
            format!("{path}.instance"),
            r#"an object with "type" and "url""#,
        ));
    };
    for field in ["type", "url"] {
        let present = instance
            .get(field)
            .and_then(Value::as_str)
            .is_some_and(|value| !value.is_empty());
        if !present {
            return Err(shape(
                format!("{path}.instance.{field}"),
                "a non-empty string",
            ));
        }
    }
    for flag in ["start_snapshot", "stop_snapshot"] {
        if part.get(flag).is_some_and(|value| !value.is_boolean()) {
            return Err(shape(format!("{path}.{flag}"), "true or false"));
        }
    }
    if let Some(delete_ids) = part.get("delete_ids") {
        let Value::Array(delete_ids) = delete_ids else {
            return Err(shape(format!("{path}.delete_ids"), "an array of strings"));
        };
        for (index, id) in delete_ids.iter().enumerate() {
            if !id.is_string() {
                return Err(shape(format!("{path}.delete_ids[{index}]"), "a string"));
            }
        }
    }
    if let Some(components) = part.get("components") {
        let Value::Array(components) = components else {
            return Err(shape(
                format!("{path}.components"),
                "an array of components",
            ));
        };
        for (index, component) in components.iter().enumerate() {
            check_component(&format!("{path}.components[{index}]"), component)?;
        }
    }
    match part.get("relations") {
        None | Some(Value::Null) => {}
        Some(Value::Array(relations)) => {
            for (index, relation) in relations.iter().enumerate() {
                if !relation.is_object() {
                    return Err(shape(format!("{path}.relations[{index}]"), "an object"));
                }
            }
        }
        Some(_) => {
            return Err(shape(format!("{path}.relations"), "an array of relations"));
        }
    }
    Ok(())
}

fn check_component(path: &str, component: &Value) -> Result<(), ShapeError> {
    let Value::Object(component) = component else {
        return Err(shape(path.to_string(), r#"an object with "externalId""#));
    };
    let has_id = component
        .get("externalId")
        .and_then(Value::as_str)
        .is_some_and(|id| !id.is_empty());
    if !has_id {
        return Err(shape(format!("{path}.externalId"), "a non-empty string"));
    }
    match component.get("type") {
        None | Some(Value::Null) => {}
        Some(Value::Object(kind)) => match kind.get("name") {
            Some(Value::String(_)) => {}
            Some(_) => return Err(shape(format!("{path}.type.name"), "a string")),
            None => {
                return Err(shape(format!("{path}.type"), r#"an object with "name""#));
            }
        },
        Some(_) => {
            return Err(shape(format!("{path}.type"), r#"an object with "name""#));
        }
    }
    match component.get("data") {
        None | Some(Value::Null) => {}
        Some(Value::Object(data)) => match data.get("identifiers") {
            None | Some(Value::Null) => {}
            Some(Value::Array(identifiers)) => {
                for (index, identifier) in identifiers.iter().enumerate() {
                    if !identifier.is_string() {
                        return Err(shape(
                            format!("{path}.data.identifiers[{index}]"),
                            "a string",
                        ));
                    }
                }
            }
            Some(_) => {
                return Err(shape(
                    format!("{path}.data.identifiers"),
                    "an array of strings",
                ));
            }
        },
        Some(_) => return Err(shape(format!("{path}.data"), "an object")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_part_becomes_a_record_keyed_by_tenant_and_instance() {
        let payload = br#"{
            "collection_timestamp": 1700000000,
            "internalHostname": "agent-1",
            "metrics": [],
            "topologies": [
                {"start_snapshot": true, "stop_snapshot": false, "instance": {"type": "kubernetes", "url": "demo-cluster"},
                 "components": [{"externalId": "urn:a", "type": {"name": "pod"}, "data": {}}], "relations": []},
                {"instance": {"type": "kubernetes", "url": "demo-cluster"}, "delete_ids": ["urn:b"], "tenant": "someone-else"}
            ]
        }"#;
        let records = parts_to_records(payload, "acme").unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].0, "acme/kubernetes/demo-cluster");
        let second: Value = serde_json::from_slice(&records[1].1).unwrap();
        assert_eq!(
            second["tenant"], "acme",
            "the tenant comes from the key, never from the payload"
        );
        assert_eq!(second["collection_timestamp"], 1_700_000_000.0);
        assert_eq!(second["delete_ids"][0], "urn:b");
    }

    #[test]
    fn invalid_json_and_non_array_topologies_are_refused() {
        let invalid = parts_to_records(b"{not json", "a").unwrap_err();
        assert!(invalid.to_string().starts_with("invalid JSON"), "{invalid}");
        let not_object = parts_to_records(b"[]", "a").unwrap_err();
        assert_eq!(
            not_object.to_string(),
            "intake payload must be a JSON object"
        );
        let not_array = parts_to_records(br#"{"topologies": {}}"#, "a").unwrap_err();
        assert_eq!(not_array.to_string(), "topologies must be an array");
        assert!(
            parts_to_records(br#"{"topologies": null}"#, "a")
                .unwrap()
                .is_empty()
        );
    }

    /// Three parts of which the last has two components: a mutation of the
    /// last part or its second component shows up as `topologies[2]...`.
    fn agent_payload() -> Value {
        let component = |id: &str, kind: &str| {
            serde_json::json!({"externalId": id, "type": {"name": kind},
                "data": {"name": id, "identifiers": [format!("urn:extra:{id}")], "labels": ["a:b"], "tags": {"t": "v"}}})
        };
        let instance = serde_json::json!({"type": "kubernetes", "url": "demo-cluster"});
        serde_json::json!({
            "collection_timestamp": 1_700_000_000,
            "topologies": [
                {"start_snapshot": true, "stop_snapshot": false, "instance": instance,
                 "components": [component("urn:a", "node")], "relations": []},
                {"instance": instance, "delete_ids": ["urn:gone"]},
                {"start_snapshot": false, "stop_snapshot": true, "instance": instance,
                 "delete_ids": ["urn:old"],
                 "components": [component("urn:b", "pod"), component("urn:c", "container")],
                 "relations": [{"externalId": "urn:b->urn:c", "type": {"name": "runs"},
                                "sourceId": "urn:b", "targetId": "urn:c", "data": {}}]}
            ]
        })
    }

    /// `agent_payload()` with the value at a JSON pointer replaced, or removed (None).
    fn mutated(pointer: &str, replacement: Option<Value>) -> Vec<u8> {
        let mut payload = agent_payload();
        let (parent, field) = pointer.rsplit_once('/').unwrap();
        let parent = payload.pointer_mut(parent).unwrap();
        match (parent, replacement) {
            (Value::Object(map), Some(value)) => {
                map.insert(field.to_string(), value);
            }
            (Value::Object(map), None) => {
                map.remove(field);
            }
            (Value::Array(items), Some(value)) => items[field.parse::<usize>().unwrap()] = value,
            (other, _) => panic!("cannot mutate {other}"),
        }
        serde_json::to_vec(&payload).unwrap()
    }

    /// Every malformed shape, answered 400 with where and what: (JSON pointer
    /// into `agent_payload()`, replacement or None to remove, message).
    const MALFORMED: &[(&str, Option<&str>, &str)] = &[
        (
            "/topologies/2",
            Some(r#""x""#),
            "topologies[2]: expected an object",
        ),
        (
            "/topologies/2",
            Some("[]"),
            "topologies[2]: expected an object",
        ),
        (
            "/topologies/2/instance",
            None,
            r#"topologies[2].instance: expected an object with "type" and "url""#,
        ),
        (
            "/topologies/2/instance",
            Some(r#""kubernetes""#),
            r#"topologies[2].instance: expected an object with "type" and "url""#,
        ),
        (
            "/topologies/2/instance",
            Some(r#"["kubernetes", "demo"]"#),
            r#"topologies[2].instance: expected an object with "type" and "url""#,
        ),
        (
            "/topologies/2/instance/type",
            None,
            "topologies[2].instance.type: expected a non-empty string",
        ),
        (
            "/topologies/2/instance/type",
            Some("{}"),
            "topologies[2].instance.type: expected a non-empty string",
        ),
        (
            "/topologies/2/instance/url",
            Some("5"),
            "topologies[2].instance.url: expected a non-empty string",
        ),
        (
            "/topologies/2/instance/url",
            Some(r#""""#),
            "topologies[2].instance.url: expected a non-empty string",
        ),
        (
            "/topologies/2/start_snapshot",
            Some(r#""yes""#),
            "topologies[2].start_snapshot: expected true or false",
        ),
        (
            "/topologies/2/start_snapshot",
            Some("1"),
            "topologies[2].start_snapshot: expected true or false",
        ),
        (
            "/topologies/2/stop_snapshot",
            Some("null"),
            "topologies[2].stop_snapshot: expected true or false",
        ),
        (
            "/topologies/2/delete_ids",
            Some(r#""x""#),
            "topologies[2].delete_ids: expected an array of strings",
        ),
        (
            "/topologies/2/delete_ids",
            Some("null"),
            "topologies[2].delete_ids: expected an array of strings",
        ),
        (
            "/topologies/2/delete_ids",
            Some(r#"{"0": "x"}"#),
            "topologies[2].delete_ids: expected an array of strings",
        ),
        (
            "/topologies/2/delete_ids",
            Some(r#"["x", 1]"#),
            "topologies[2].delete_ids[1]: expected a string",
        ),
        (
            "/topologies/2/delete_ids",
            Some(r#"[["x"]]"#),
            "topologies[2].delete_ids[0]: expected a string",
        ),
        (
            "/topologies/2/components",
            Some(r#""x""#),
            "topologies[2].components: expected an array of components",
        ),
        (
            "/topologies/2/components",
            Some("null"),
            "topologies[2].components: expected an array of components",
        ),
        (
            "/topologies/2/components",
            Some(r#"{"externalId": "urn:b"}"#),
            "topologies[2].components: expected an array of components",
        ),
        (
            "/topologies/2/components/1",
            Some(r#""urn:c""#),
            r#"topologies[2].components[1]: expected an object with "externalId""#,
        ),
        (
            "/topologies/2/components/1",
            Some(r#"["urn:c", {"name": "pod"}, {}]"#),
            r#"topologies[2].components[1]: expected an object with "externalId""#,
        ),
        (
            "/topologies/2/components/1/externalId",
            None,
            "topologies[2].components[1].externalId: expected a non-empty string",
        ),
        (
            "/topologies/2/components/1/externalId",
            Some("7"),
            "topologies[2].components[1].externalId: expected a non-empty string",
        ),
        (
            "/topologies/2/components/1/externalId",
            Some(r#""""#),
            "topologies[2].components[1].externalId: expected a non-empty string",
        ),
        (
            "/topologies/2/components/1/type",
            Some(r#""pod""#),
            r#"topologies[2].components[1].type: expected an object with "name""#,
        ),
        (
            "/topologies/2/components/1/type",
            Some("{}"),
            r#"topologies[2].components[1].type: expected an object with "name""#,
        ),
        (
            "/topologies/2/components/1/type",
            Some(r#"["pod"]"#),
            r#"topologies[2].components[1].type: expected an object with "name""#,
        ),
        (
            "/topologies/2/components/1/type/name",
            Some("null"),
            "topologies[2].components[1].type.name: expected a string",
        ),
        (
            "/topologies/2/components/1/type/name",
            Some("1"),
            "topologies[2].components[1].type.name: expected a string",
        ),
        (
            "/topologies/2/components/1/data",
            Some(r#""x""#),
            "topologies[2].components[1].data: expected an object",
        ),
        (
            "/topologies/2/components/1/data",
            Some("[]"),
            "topologies[2].components[1].data: expected an object",
        ),
        (
            "/topologies/2/components/1/data/identifiers",
            Some(r#""urn:x""#),
            "topologies[2].components[1].data.identifiers: expected an array of strings",
        ),
        (
            "/topologies/2/components/1/data/identifiers",
            Some(r#"["urn:x", 1]"#),
            "topologies[2].components[1].data.identifiers[1]: expected a string",
        ),
        (
            "/topologies/2/relations",
            Some("{}"),
            "topologies[2].relations: expected an array of relations",
        ),
        (
            "/topologies/2/relations",
            Some(r#"["x"]"#),
            "topologies[2].relations[0]: expected an object",
        ),
    ];

    #[test]
    fn every_malformed_shape_is_refused_naming_what_and_where() {
        for (pointer, replacement, message) in MALFORMED {
            let replacement = replacement.map(|text| serde_json::from_str(text).unwrap());
            let error = parts_to_records(&mutated(pointer, replacement), "acme").unwrap_err();
            assert!(
                matches!(error, IngestError::BadRequest(_)),
                "{pointer}: {error:?}"
            );
            assert_eq!(error.to_string(), *message, "{pointer}");
        }
        // The first bad part refuses the whole request, even after good ones.
        let error = parts_to_records(
            &mutated("/topologies/0/components/0/type", Some(Value::from("node"))),
            "acme",
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"topologies[0].components[0].type: expected an object with "name""#
        );
    }

    #[test]
    fn what_the_agent_sends_passes() {
        let sample: &[u8] = include_bytes!("../../deploy/local/sample-topology.json");
        assert_eq!(parts_to_records(sample, "acme").unwrap().len(), 3);
        assert_eq!(
            parts_to_records(&serde_json::to_vec(&agent_payload()).unwrap(), "acme")
                .unwrap()
                .len(),
            3
        );
        // Optional fields may be absent, and type, data and identifiers null.
        for (pointer, replacement) in [
            ("/topologies/2/start_snapshot", None),
            ("/topologies/2/delete_ids", None),
            ("/topologies/2/delete_ids", Some(serde_json::json!([]))),
            ("/topologies/2/components", None),
            ("/topologies/2/components", Some(serde_json::json!([]))),
            ("/topologies/2/relations", None),
            ("/topologies/2/relations", Some(Value::Null)),
            ("/topologies/2/components/1/type", None),
            ("/topologies/2/components/1/type", Some(Value::Null)),
            ("/topologies/2/components/1/data", None),
            ("/topologies/2/components/1/data", Some(Value::Null)),
            (
                "/topologies/2/components/1/data/identifiers",
                Some(Value::Null),
            ),
            (
                "/topologies/2/components/1/data/tags",
                Some(serde_json::json!(["a:b"])),
            ),
            (
                "/topologies/2/components/1/data/name",
                Some(serde_json::json!(5)),
            ),
            (
                "/topologies/2/extra",
                Some(serde_json::json!({"any": ["thing"]})),
            ),
            ("/topologies/2/tenant", Some(Value::from("someone-else"))),
        ] {
            let records = parts_to_records(&mutated(pointer, replacement.clone()), "acme");
            assert!(records.is_ok(), "{pointer} = {replacement:?}: {records:?}");
        }
    }

    #[test]
    fn instance_segments_of_the_key_are_escaped() {
        let payload = br#"{"topologies": [{"instance": {"type": "k8s/x", "url": "https://h/c"}}]}"#;
        let records = parts_to_records(payload, "acme").unwrap();
        assert_eq!(records[0].0, "acme/k8s%2Fx/https:%2F%2Fh%2Fc");
        let value: Value = serde_json::from_slice(&records[0].1).unwrap();
        assert_eq!(
            value["instance"]["url"], "https://h/c",
            "the value keeps the url as sent"
        );
    }

    #[test]
    fn gzip_and_deflate_bodies_are_read_within_the_limit() {
        use std::io::Write;
        let json = br#"{"topologies": []}"#;
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gzip.write_all(json).unwrap();
        assert_eq!(
            decompress(Some("gzip"), &gzip.finish().unwrap(), 1024).unwrap(),
            json
        );
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zlib.write_all(json).unwrap();
        assert_eq!(
            decompress(Some("deflate"), &zlib.finish().unwrap(), 1024).unwrap(),
            json
        );
        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(json).unwrap();
        assert_eq!(
            decompress(Some("deflate"), &raw.finish().unwrap(), 1024).unwrap(),
            json
        );
        let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        bomb.write_all(&vec![b' '; 1 << 20]).unwrap();
        assert!(matches!(
            decompress(Some("gzip"), &bomb.finish().unwrap(), 1024),
            Err(IngestError::PayloadTooLarge(_))
        ));
        assert!(matches!(
            decompress(Some("br"), json, 1024),
            Err(IngestError::UnsupportedMediaType(_))
        ));
    }
}
