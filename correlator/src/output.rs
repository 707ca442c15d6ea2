//! How bound and unbound batches are written and read back: remote-write 2.0
//! requests (`io.prometheus.write.v2.Request`) by default, or a readable JSON
//! form of the same batch. In JSON a finite value is a number; the others are
//! the strings "NaN", "+Inf", "-Inf" and "StaleNaN" (the stale marker's bit
//! pattern `0x7ff0000000000002`), so they stay apart.

use proto::records::UnboundReason;
use proto::{Message, v2};
use serde_json::{Map, Value, json};

use crate::join::{Destination, Output};

/// `OUTPUT_ENCODING`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum OutputEncoding {
    Protobuf,
    Json,
}

/// The content type of JSON batches.
pub const CONTENT_TYPE_JSON: &str = "application/json";

impl OutputEncoding {
    pub fn content_type(self) -> &'static str {
        match self {
            OutputEncoding::Protobuf => proto::CONTENT_TYPE_V2,
            OutputEncoding::Json => CONTENT_TYPE_JSON,
        }
    }
}

pub fn json_value(value: f64) -> Value {
    if value.to_bits() == proto::STALE_NAN_BITS {
        Value::from("StaleNaN")
    } else if value.is_nan() {
        Value::from("NaN")
    } else if value == f64::INFINITY {
        Value::from("+Inf")
    } else if value == f64::NEG_INFINITY {
        Value::from("-Inf")
    } else {
        json!(value)
    }
}

/// The value [`json_value`] wrote.
fn value_of_json(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => match text.as_str() {
            "StaleNaN" => Some(f64::from_bits(proto::STALE_NAN_BITS)),
            "NaN" => Some(f64::NAN),
            "+Inf" => Some(f64::INFINITY),
            "-Inf" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

pub fn reason_name(reason: UnboundReason) -> &'static str {
    match reason {
        UnboundReason::NoRule => "no_rule",
        UnboundReason::MissingLabel => "missing_label",
        UnboundReason::NoComponent => "no_component",
        UnboundReason::Late => "late",
        UnboundReason::Unspecified => "unspecified",
    }
}

/// Metric types as the JSON form names them, by their 2.0 enum value.
const METRIC_TYPES: [&str; 8] = [
    "unspecified",
    "counter",
    "gauge",
    "histogram",
    "gaugehistogram",
    "summary",
    "info",
    "stateset",
];

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn bytes_of_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Labels as (name, value) pairs.
pub type Labels = Vec<(String, String)>;

/// One series of a batch, read back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchSeries {
    /// Sorted by name, the added labels included.
    pub labels: Labels,
    pub samples: Vec<v2::Sample>,
    pub histograms: Vec<v2::Histogram>,
    /// Labels, value, timestamp.
    pub exemplars: Vec<(Labels, f64, i64)>,
    /// Type (2.0's enum value), help, unit.
    pub metadata: Option<(i32, String, String)>,
    pub created_timestamp: i64,
}

impl BatchSeries {
    /// The value of label `name`, if it has one.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A bound or unbound record's batch, whichever its encoding.
pub fn read_batch(content_type: &str, payload: &[u8]) -> Result<Vec<BatchSeries>, String> {
    if content_type.eq_ignore_ascii_case(CONTENT_TYPE_JSON) {
        return read_json_batch(payload);
    }
    let request = v2::Request::decode(payload).map_err(|error| error.to_string())?;
    let symbol = |reference: u32| -> Result<String, String> {
        request
            .symbols
            .get(reference as usize)
            .cloned()
            .ok_or_else(|| format!("symbol reference {reference} out of range"))
    };
    let pairs = |refs: &[u32]| -> Result<Vec<(String, String)>, String> {
        refs.chunks(2)
            .map(|pair| Ok((symbol(pair[0])?, symbol(*pair.get(1).unwrap_or(&0))?)))
            .collect()
    };
    let mut batch = Vec::with_capacity(request.timeseries.len());
    for series in &request.timeseries {
        let mut exemplars = Vec::with_capacity(series.exemplars.len());
        for exemplar in &series.exemplars {
            exemplars.push((
                pairs(&exemplar.labels_refs)?,
                exemplar.value,
                exemplar.timestamp,
            ));
        }
        let metadata = match &series.metadata {
            Some(m) => Some((m.r#type, symbol(m.help_ref)?, symbol(m.unit_ref)?)),
            None => None,
        };
        batch.push(BatchSeries {
            labels: pairs(&series.labels_refs)?,
            samples: series.samples.clone(),
            histograms: series.histograms.clone(),
            exemplars,
            metadata,
            created_timestamp: series.created_timestamp,
        });
    }
    Ok(batch)
}

fn labels_json(labels: &[(String, String)]) -> Value {
    let mut map = Map::new();
    for (name, value) in labels {
        map.insert(name.clone(), Value::from(value.clone()));
    }
    Value::Object(map)
}

fn labels_of_json(value: &Value) -> Result<Vec<(String, String)>, String> {
    let object = value.as_object().ok_or("labels are not an object")?;
    let mut labels = Vec::with_capacity(object.len());
    for (name, value) in object {
        let value = value.as_str().ok_or("a label value is not a string")?;
        labels.push((name.clone(), value.to_string()));
    }
    labels.sort();
    Ok(labels)
}

fn series_json(series: &BatchSeries) -> Value {
    let samples: Vec<Value> = series
        .samples
        .iter()
        .map(|s| {
            let mut sample = json!({"timestamp": s.timestamp, "value": json_value(s.value)});
            if s.start_timestamp != 0 {
                sample["start_timestamp"] = json!(s.start_timestamp);
            }
            sample
        })
        .collect();
    let histograms: Vec<Value> = series
        .histograms
        .iter()
        .map(|h| json!({"timestamp": h.timestamp, "protobuf_hex": hex_of(&h.encode_to_vec())}))
        .collect();
    let exemplars: Vec<Value> = series
        .exemplars
        .iter()
        .map(|(labels, value, timestamp)| {
            json!({"labels": labels_json(labels), "value": json_value(*value), "timestamp": timestamp})
        })
        .collect();
    let mut object = json!({
        "labels": labels_json(&series.labels),
        "samples": samples,
        "histograms": histograms,
        "exemplars": exemplars,
    });
    if let Some((kind, help, unit)) = &series.metadata {
        let kind = METRIC_TYPES
            .get(*kind as usize)
            .copied()
            .unwrap_or("unspecified");
        object["metadata"] = json!({"type": kind, "help": help, "unit": unit});
    }
    if series.created_timestamp != 0 {
        object["start_timestamp"] = json!(series.created_timestamp);
    }
    object
}

fn series_of_json(value: &Value) -> Result<BatchSeries, String> {
    let list = |name: &str| value[name].as_array().cloned().unwrap_or_default();
    let timestamp = |point: &Value| {
        point["timestamp"]
            .as_i64()
            .ok_or("a point without a timestamp")
    };
    let mut series = BatchSeries {
        labels: labels_of_json(&value["labels"])?,
        created_timestamp: value["start_timestamp"].as_i64().unwrap_or(0),
        ..BatchSeries::default()
    };
    for sample in list("samples") {
        series.samples.push(v2::Sample {
            value: value_of_json(&sample["value"]).ok_or("a sample without a value")?,
            timestamp: timestamp(&sample)?,
            start_timestamp: sample["start_timestamp"].as_i64().unwrap_or(0),
        });
    }
    for histogram in list("histograms") {
        let bytes = histogram["protobuf_hex"]
            .as_str()
            .and_then(bytes_of_hex)
            .ok_or("a histogram without protobuf_hex")?;
        series
            .histograms
            .push(v2::Histogram::decode(bytes.as_slice()).map_err(|e| e.to_string())?);
    }
    for exemplar in list("exemplars") {
        series.exemplars.push((
            labels_of_json(&exemplar["labels"])?,
            value_of_json(&exemplar["value"]).ok_or("an exemplar without a value")?,
            timestamp(&exemplar)?,
        ));
    }
    if let Some(metadata) = value["metadata"].as_object() {
        let kind = metadata["type"].as_str().unwrap_or("unspecified");
        let kind = METRIC_TYPES.iter().position(|t| *t == kind).unwrap_or(0) as i32;
        let text = |name: &str| {
            metadata
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        series.metadata = Some((kind, text("help"), text("unit")));
    }
    Ok(series)
}

fn read_json_batch(payload: &[u8]) -> Result<Vec<BatchSeries>, String> {
    let record: Value = serde_json::from_slice(payload).map_err(|error| error.to_string())?;
    let series = record["timeseries"]
        .as_array()
        .ok_or("a JSON batch without timeseries")?;
    series.iter().map(series_of_json).collect()
}

/// The JSON form of an output whose payload is its remote-write 2.0 request.
pub fn batch_json(output: &Output) -> Vec<u8> {
    let series = read_batch(proto::CONTENT_TYPE_V2, &output.payload).expect("the join's own batch");
    let mut record = json!({
        "tenant": &*output.tenant,
        "timeseries": series.iter().map(series_json).collect::<Vec<_>>(),
    });
    match (output.destination, &output.component, output.reason) {
        (Destination::Bound, Some(component), _) => {
            record["component"] = json!({
                "externalId": &*component.external_id,
                "type": &*component.type_name,
                "rule": &*component.rule,
            });
        }
        (_, _, Some(reason)) => record["reason"] = json!(reason_name(reason)),
        _ => {}
    }
    serde_json::to_vec(&record).expect("JSON encodes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn special_values_stay_apart_in_json() {
        assert_eq!(json_value(1.5), json!(1.5));
        assert_eq!(
            json_value(f64::from_bits(proto::STALE_NAN_BITS)),
            json!("StaleNaN")
        );
        assert_eq!(json_value(f64::NAN), json!("NaN"));
        assert_eq!(json_value(f64::INFINITY), json!("+Inf"));
        assert_eq!(json_value(f64::NEG_INFINITY), json!("-Inf"));
        for value in [1.5, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(value_of_json(&json_value(value)), Some(value));
        }
        let stale = value_of_json(&json_value(f64::from_bits(proto::STALE_NAN_BITS))).unwrap();
        assert_eq!(stale.to_bits(), proto::STALE_NAN_BITS);
    }

    #[test]
    fn the_json_form_reads_back_as_the_batch_it_was() {
        let request = v2::Request {
            symbols: ["", "__name__", "x_total", "Help.", "trace_id", "abc"]
                .map(String::from)
                .to_vec(),
            timeseries: vec![v2::TimeSeries {
                labels_refs: vec![1, 2],
                samples: vec![
                    v2::Sample {
                        value: f64::from_bits(proto::STALE_NAN_BITS),
                        timestamp: 5,
                        start_timestamp: 1,
                    },
                    v2::Sample {
                        value: 2.5,
                        timestamp: 6,
                        start_timestamp: 0,
                    },
                ],
                histograms: vec![v2::Histogram {
                    sum: 3.0,
                    timestamp: 7,
                    ..Default::default()
                }],
                exemplars: vec![v2::Exemplar {
                    labels_refs: vec![4, 5],
                    value: 1.0,
                    timestamp: 5,
                }],
                metadata: Some(v2::Metadata {
                    r#type: 1,
                    help_ref: 3,
                    unit_ref: 0,
                }),
                created_timestamp: 2,
            }],
        };
        let output = Output {
            destination: Destination::Unbound,
            tenant: Arc::from("acme"),
            key: Arc::from("acme"),
            payload: request.encode_to_vec(),
            points: 3,
            series: 1,
            reason: Some(UnboundReason::Late),
            component: None,
            origins: vec![],
        };
        let json = batch_json(&output);
        let record: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(record["reason"], "late");
        assert_eq!(record["timeseries"][0]["metadata"]["type"], "counter");
        let from_json = read_batch(CONTENT_TYPE_JSON, &json).unwrap();
        let from_protobuf = read_batch(proto::CONTENT_TYPE_V2, &output.payload).unwrap();
        assert_eq!(from_json.len(), 1);
        assert_eq!(
            from_json[0].samples[0].value.to_bits(),
            proto::STALE_NAN_BITS
        );
        // NaN != NaN: compare the rest with the stale sample set aside.
        let without_stale = |mut series: BatchSeries| {
            series.samples.remove(0);
            series
        };
        assert_eq!(
            without_stale(from_json[0].clone()),
            without_stale(from_protobuf[0].clone())
        );
    }
}
