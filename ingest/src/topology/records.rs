//! A payload's parts as `topology.raw` records: one per part, keyed by tenant
//! and instance, the tenant stamped in.

use proto::keys::record_key;
use serde_json::{Map, Value};

use super::shape::check_part;
use crate::error::IngestError;

/// One (key, value) per `topologies[]` part. The tenant comes from the API key
/// only: a `tenant` field in the payload is overwritten, never trusted. Every
/// part is checked (see [`check_part`]) before anything is published, so a
/// request is published whole or refused whole, and nothing reaches
/// `topology.raw` that the correlator's materializer cannot read.
pub fn parts_to_records(json: &[u8], tenant: &str) -> Result<Vec<(String, Vec<u8>)>, IngestError> {
    let payload: Value = serde_json::from_slice(json)
        .map_err(|e| IngestError::BadRequest(format!("invalid JSON: {e}")))?;
    let Value::Object(mut payload) = payload else {
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
    let parts = match payload.remove("topologies") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(parts)) => parts,
        Some(_) => {
            return Err(IngestError::BadRequest(
                "topologies must be an array".into(),
            ));
        }
    };
    let mut records = Vec::with_capacity(parts.len());
    for (index, part) in parts.into_iter().enumerate() {
        let record = match part {
            Value::Object(fields) => stamped(fields, tenant, collection_timestamp),
            // Not a part: the check refuses it, saying what it is.
            other => other,
        };
        let checked = check_part(index, &record)
            .map_err(|problem| IngestError::BadRequest(problem.to_string()))?;
        let key = record_key(tenant, &checked.instance.kind, &checked.instance.url);
        let encoded = serde_json::to_vec(&record).expect("JSON values encode");
        records.push((key, encoded));
    }
    Ok(records)
}

/// The part as its record: as sent, plus `tenant` and `collection_timestamp`.
fn stamped(mut record: Map<String, Value>, tenant: &str, collection_timestamp: f64) -> Value {
    record.insert("tenant".into(), Value::String(tenant.to_string()));
    record.insert(
        "collection_timestamp".into(),
        serde_json::json!(collection_timestamp),
    );
    Value::Object(record)
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
            r#"topologies[2]: invalid type: string "x", expected a topology part"#,
        ),
        (
            "/topologies/2",
            Some("[]"),
            "topologies[2]: invalid length 0, expected a topology part",
        ),
        (
            "/topologies/2/instance",
            None,
            "topologies[2]: missing field `instance`",
        ),
        (
            "/topologies/2/instance",
            Some(r#""kubernetes""#),
            r#"topologies[2].instance: invalid type: string "kubernetes", expected an object with "type" and "url""#,
        ),
        (
            "/topologies/2/instance",
            Some(r#"["kubernetes", "demo"]"#),
            "topologies[2].instance: invalid type: sequence, expected an object",
        ),
        (
            "/topologies/2/instance/type",
            None,
            "topologies[2].instance: missing field `type`",
        ),
        (
            "/topologies/2/instance/type",
            Some("{}"),
            "topologies[2].instance.type: invalid type: map, expected a string",
        ),
        (
            "/topologies/2/instance/url",
            Some("5"),
            "topologies[2].instance.url: invalid type: integer `5`, expected a string",
        ),
        (
            "/topologies/2/instance/url",
            Some(r#""""#),
            r#"topologies[2].instance.url: invalid value: string "", expected a non-empty string"#,
        ),
        (
            "/topologies/2/start_snapshot",
            Some(r#""yes""#),
            r#"topologies[2].start_snapshot: invalid type: string "yes", expected a boolean"#,
        ),
        (
            "/topologies/2/start_snapshot",
            Some("1"),
            "topologies[2].start_snapshot: invalid type: integer `1`, expected a boolean",
        ),
        (
            "/topologies/2/stop_snapshot",
            Some("null"),
            "topologies[2].stop_snapshot: invalid type: null, expected a boolean",
        ),
        (
            "/topologies/2/delete_ids",
            Some(r#""x""#),
            r#"topologies[2].delete_ids: invalid type: string "x", expected a sequence"#,
        ),
        (
            "/topologies/2/delete_ids",
            Some("null"),
            "topologies[2].delete_ids: invalid type: null, expected a sequence",
        ),
        (
            "/topologies/2/delete_ids",
            Some(r#"{"0": "x"}"#),
            "topologies[2].delete_ids: invalid type: map, expected a sequence",
        ),
        (
            "/topologies/2/delete_ids",
            Some(r#"["x", 1]"#),
            "topologies[2].delete_ids[1]: invalid type: integer `1`, expected a string",
        ),
        (
            "/topologies/2/delete_ids",
            Some(r#"[["x"]]"#),
            "topologies[2].delete_ids[0]: invalid type: sequence, expected a string",
        ),
        (
            "/topologies/2/components",
            Some(r#""x""#),
            r#"topologies[2].components: invalid type: string "x", expected a sequence"#,
        ),
        (
            "/topologies/2/components",
            Some("null"),
            "topologies[2].components: invalid type: null, expected a sequence",
        ),
        (
            "/topologies/2/components",
            Some(r#"{"externalId": "urn:b"}"#),
            "topologies[2].components: invalid type: map, expected a sequence",
        ),
        (
            "/topologies/2/components/1",
            Some(r#""urn:c""#),
            r#"topologies[2].components[1]: invalid type: string "urn:c", expected an object with "externalId""#,
        ),
        (
            "/topologies/2/components/1",
            Some(r#"["urn:c", {"name": "pod"}, {}]"#),
            "topologies[2].components[1]: invalid type: sequence, expected an object",
        ),
        (
            "/topologies/2/components/1/externalId",
            None,
            "topologies[2].components[1]: missing field `externalId`",
        ),
        (
            "/topologies/2/components/1/externalId",
            Some("7"),
            "topologies[2].components[1].externalId: invalid type: integer `7`, expected a string",
        ),
        (
            "/topologies/2/components/1/externalId",
            Some(r#""""#),
            r#"topologies[2].components[1].externalId: invalid value: string "", expected a non-empty string"#,
        ),
        (
            "/topologies/2/components/1/type",
            Some(r#""pod""#),
            r#"topologies[2].components[1].type: invalid type: string "pod", expected an object with "name""#,
        ),
        (
            "/topologies/2/components/1/type",
            Some("{}"),
            "topologies[2].components[1].type: missing field `name`",
        ),
        (
            "/topologies/2/components/1/type",
            Some(r#"["pod"]"#),
            "topologies[2].components[1].type: invalid type: sequence, expected an object",
        ),
        (
            "/topologies/2/components/1/type/name",
            Some("null"),
            "topologies[2].components[1].type.name: invalid type: null, expected a string",
        ),
        (
            "/topologies/2/components/1/type/name",
            Some("1"),
            "topologies[2].components[1].type.name: invalid type: integer `1`, expected a string",
        ),
        (
            "/topologies/2/components/1/data",
            Some(r#""x""#),
            r#"topologies[2].components[1].data: invalid type: string "x", expected an object"#,
        ),
        (
            "/topologies/2/components/1/data",
            Some("[]"),
            "topologies[2].components[1].data: invalid type: sequence, expected an object",
        ),
        (
            "/topologies/2/components/1/data/identifiers",
            Some(r#""urn:x""#),
            r#"topologies[2].components[1].data.identifiers: invalid type: string "urn:x", expected a sequence"#,
        ),
        (
            "/topologies/2/components/1/data/identifiers",
            Some(r#"["urn:x", 1]"#),
            "topologies[2].components[1].data.identifiers[1]: invalid type: integer `1`, expected a string",
        ),
        (
            "/topologies/2/relations",
            Some("{}"),
            "topologies[2].relations: invalid type: map, expected a sequence",
        ),
        (
            "/topologies/2/relations",
            Some(r#"["x"]"#),
            r#"topologies[2].relations[0]: invalid type: string "x", expected an object"#,
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
            r#"topologies[0].components[0].type: invalid type: string "node", expected an object with "name""#
        );
    }

    #[test]
    fn what_the_agent_sends_passes() {
        let sample: &[u8] = include_bytes!("../../../deploy/local/sample-topology.json");
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
}
