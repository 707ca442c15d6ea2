//! The shape of a topology part, checked before anything is published: the
//! part as its record must read as the materializer's [`TopologyPart`], and
//! keep the few rules ingest adds ([`IntakeRules`]). An error names the path
//! of what is wrong, then what serde says of it:
//! ``topologies[2].components[0].externalId: invalid type: integer `7`, expected a string``.

use std::fmt::{self, Write};
use std::marker::PhantomData;

use proto::topology::TopologyPart;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Unexpected, Visitor};
use serde_json::Value;
use serde_path_to_error::{Path, Segment};

/// A part that is refused, where and why.
#[derive(Debug, PartialEq, Eq)]
pub struct ShapeError {
    /// From the payload's root: `topologies[2].components[0].externalId`.
    pub path: String,
    pub problem: String,
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.problem)
    }
}

impl ShapeError {
    fn at(index: usize, error: serde_path_to_error::Error<serde_json::Error>) -> ShapeError {
        ShapeError {
            path: payload_path(index, error.path()),
            problem: error.into_inner().to_string(),
        }
    }
}

/// `topologies[index]` then the path inside the part.
fn payload_path(index: usize, inside: &Path) -> String {
    let mut path = format!("topologies[{index}]");
    for segment in inside {
        if !matches!(segment, Segment::Seq { .. }) {
            path.push('.');
        }
        write!(path, "{segment}").expect("writing to a String");
    }
    path
}

/// Checks `topologies[index]` as the record ingest would write of it (the
/// part with `tenant` and `collection_timestamp` stamped in) and returns it
/// as the materializer will read it.
pub fn check_part(index: usize, record: &Value) -> Result<TopologyPart, ShapeError> {
    let part = serde_path_to_error::deserialize(record).map_err(|e| ShapeError::at(index, e))?;
    serde_path_to_error::deserialize::<_, Object<IntakeRules>>(record)
        .map_err(|e| ShapeError::at(index, e))?;
    Ok(part)
}

/// What ingest asks of a part beyond what [`TopologyPart`] says: an object
/// wherever serde would also read a struct from an array; non-empty instance
/// `type` and `url` and component `externalId`; a component `type` with its
/// `name`; `data` an object whose `identifiers` are strings; and `relations`,
/// which the materializer does not read, objects.
#[derive(serde::Deserialize)]
struct IntakeRules {
    #[serde(rename = "instance")]
    _instance: Object<InstanceRules>,
    #[serde(rename = "components", default)]
    _components: Vec<Object<ComponentRules>>,
    #[serde(rename = "relations", default)]
    _relations: Option<Vec<Object<IgnoredAny>>>,
}

#[derive(serde::Deserialize)]
struct InstanceRules {
    #[serde(rename = "type")]
    _kind: Text<true>,
    #[serde(rename = "url")]
    _url: Text<true>,
}

#[derive(serde::Deserialize)]
struct ComponentRules {
    #[serde(rename = "externalId")]
    _external_id: Text<true>,
    #[serde(rename = "type", default)]
    _kind: Option<Object<TypeRules>>,
    #[serde(rename = "data", default)]
    _data: Option<Object<DataRules>>,
}

/// The name's type is [`proto::topology::TypeName`]'s to say.
#[derive(serde::Deserialize)]
struct TypeRules {
    #[serde(rename = "name")]
    _name: IgnoredAny,
}

/// The rest of `data` is kept as sent, whatever it holds.
#[derive(serde::Deserialize)]
struct DataRules {
    #[serde(rename = "identifiers", default)]
    _identifiers: Option<Vec<Text<false>>>,
}

/// `T`, read only from a JSON object (serde reads a struct from an array too).
struct Object<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Object<T>, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = Object<T>;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Object<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))?;
                Ok(Object(PhantomData))
            }
        }
        deserializer.deserialize_map(ObjectVisitor(PhantomData))
    }
}

/// A string, checked and dropped; with `NON_EMPTY`, never "".
struct Text<const NON_EMPTY: bool>;

impl<'de, const NON_EMPTY: bool> Deserialize<'de> for Text<NON_EMPTY> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Text<NON_EMPTY>, D::Error> {
        struct TextVisitor<const NON_EMPTY: bool>;
        impl<const NON_EMPTY: bool> Visitor<'_> for TextVisitor<NON_EMPTY> {
            type Value = Text<NON_EMPTY>;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(if NON_EMPTY {
                    "a non-empty string"
                } else {
                    "a string"
                })
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Text<NON_EMPTY>, E> {
                if NON_EMPTY && text.is_empty() {
                    return Err(E::invalid_value(Unexpected::Str(text), &self));
                }
                Ok(Text)
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}
