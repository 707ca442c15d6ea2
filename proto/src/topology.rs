//! A `topology.raw` record: one `topologies[]` part of the StackState Agent's
//! intake payload, with the `tenant` and `collection_timestamp` ingest stamps
//! in. The correlator's materializer reads records as these types, and ingest
//! refuses any part that would not read as them (naming the path of what is
//! wrong), so both services take the shape from this one place.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// One `topologies[]` part as ingest writes it to `topology.raw`. Fields the
/// materializer does not read (`relations`, anything else) are not here: a
/// record keeps them as sent, and they are ignored when read.
#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "a topology part")]
pub struct TopologyPart {
    pub tenant: String,
    pub instance: Instance,
    #[serde(default)]
    pub start_snapshot: bool,
    #[serde(default)]
    pub stop_snapshot: bool,
    #[serde(default)]
    pub delete_ids: Vec<String>,
    #[serde(default)]
    pub components: Vec<RawComponent>,
    /// Epoch seconds.
    #[serde(default)]
    pub collection_timestamp: f64,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Hash)]
#[serde(expecting = r#"an object with "type" and "url""#)]
pub struct Instance {
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = r#"an object with "externalId""#)]
pub struct RawComponent {
    #[serde(rename = "externalId")]
    pub external_id: String,
    #[serde(rename = "type", default)]
    pub kind: Option<TypeName>,
    /// Kept as its JSON text: it becomes `data_json` as it is, and only the
    /// fields the component needs are read out of it.
    #[serde(default)]
    pub data: Option<Box<RawValue>>,
}

impl RawComponent {
    /// A component as an agent reports it (tests and benchmarks build them so).
    pub fn new(external_id: impl Into<String>, type_name: &str, data: &Value) -> RawComponent {
        RawComponent {
            external_id: external_id.into(),
            kind: Some(TypeName {
                name: type_name.to_string(),
            }),
            data: (!data.is_null())
                .then(|| serde_json::value::to_raw_value(data).expect("a JSON value encodes")),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = r#"an object with "name""#)]
pub struct TypeName {
    #[serde(default)]
    pub name: String,
}
