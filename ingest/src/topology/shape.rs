//! The shape of a topology part that the correlator's materializer reads,
//! checked before anything is published, with the path of what is wrong.

use std::fmt;

use serde_json::Value;

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
