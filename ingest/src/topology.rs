//! `POST /receiver/stsAgent/intake`: the StackState Agent's topology payload.
//! Each part of its `topologies` array becomes one `topology.raw` record, keyed
//! `tenant/instance.type/instance.url` so every part of one instance stays in
//! order on one partition; the answer waits for every ack.

use std::io::Read;
use std::time::Instant;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde_json::{Map, Value};
use tracing::{debug, warn};

use crate::error::IngestError;
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
    let response = match handle(&request, payload, &state, started).await {
        Ok(parts) => HttpResponse::Ok().json(serde_json::json!({ "parts": parts })),
        Err(error) => {
            if error.status_code().is_server_error() {
                warn!(error = %error, "topology intake failed");
            } else {
                debug!(error = %error, "topology intake refused");
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
    started: Instant,
) -> Result<usize, IngestError> {
    let headers = request.headers();
    let query = web::Query::<IntakeQuery>::from_query(request.query_string())
        .map(web::Query::into_inner)
        .ok();
    let query_key = query.as_ref().and_then(|q| q.api_key.as_deref());
    let tenant = authenticate(headers, query_key, state)?;
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
    let body = read_body(headers, payload, state, remaining(state, started)).await?;
    let limit = state.settings.max_decoded_bytes;
    let Some(_held) = state
        .inflight
        .try_reserve(body.len().saturating_mul(2).min(limit))
    else {
        return Err(IngestError::unavailable(
            "ingest holds as many request bytes as it may; retry later",
        ));
    };
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
/// only: a `tenant` field in the payload is overwritten, never trusted.
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
        let Value::Object(part) = part else {
            return Err(IngestError::BadRequest(format!(
                "topologies[{index}] is not an object"
            )));
        };
        let instance = part.get("instance").and_then(Value::as_object);
        let instance_field = |name: &str| {
            instance
                .and_then(|i| i.get(name))
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
        };
        let (Some(instance_type), Some(instance_url)) =
            (instance_field("type"), instance_field("url"))
        else {
            return Err(IngestError::BadRequest(format!(
                "topologies[{index}] has no instance with a type and a url"
            )));
        };
        if let Some(components) = part.get("components") {
            let Some(components) = components.as_array() else {
                return Err(IngestError::BadRequest(format!(
                    "topologies[{index}].components must be an array"
                )));
            };
            for (component_index, component) in components.iter().enumerate() {
                let has_id = component
                    .get("externalId")
                    .and_then(Value::as_str)
                    .is_some_and(|id| !id.is_empty());
                if !has_id {
                    return Err(IngestError::BadRequest(format!(
                        "topologies[{index}].components[{component_index}] has no externalId"
                    )));
                }
            }
        }
        let key = format!("{tenant}/{instance_type}/{instance_url}");
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
    fn a_part_without_instance_or_invalid_json_is_refused_by_name() {
        let missing =
            parts_to_records(br#"{"topologies": [{"instance": {"type": "k"}}]}"#, "a").unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("topologies[0] has no instance"),
            "{missing}"
        );
        let invalid = parts_to_records(b"{not json", "a").unwrap_err();
        assert!(invalid.to_string().starts_with("invalid JSON"), "{invalid}");
        let no_id = parts_to_records(
            br#"{"topologies": [{"instance": {"type": "k", "url": "u"}, "components": [{}]}]}"#,
            "a",
        )
        .unwrap_err();
        assert!(
            no_id
                .to_string()
                .contains("components[0] has no externalId"),
            "{no_id}"
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
