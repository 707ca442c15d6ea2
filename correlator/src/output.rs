//! How bound and unbound series are written: protobuf (`proto::records`) by
//! default, or JSON. In JSON a finite value is a number; the others are the
//! strings "NaN", "+Inf", "-Inf" and "StaleNaN" (the stale marker's bit
//! pattern `0x7ff0000000000002`), so they stay apart.

use proto::Message;
use proto::records::{BoundSeries, UnboundReason, UnboundSeries};
use serde_json::{Map, Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputEncoding {
    Protobuf,
    Json,
}

impl OutputEncoding {
    pub fn content_type(self) -> &'static str {
        match self {
            OutputEncoding::Protobuf => "application/x-protobuf",
            OutputEncoding::Json => "application/json",
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

fn labels_json(labels: &[proto::prometheus::Label]) -> Value {
    let mut map = Map::new();
    for label in labels {
        map.insert(label.name.clone(), Value::from(label.value.clone()));
    }
    Value::Object(map)
}

fn samples_json(samples: &[proto::prometheus::Sample]) -> Value {
    samples
        .iter()
        .map(|s| json!({"timestamp": s.timestamp, "value": json_value(s.value)}))
        .collect()
}

/// Native histograms in JSON keep their protobuf form, as hex,
/// with the timestamp beside it for readers that only need to know when.
fn histograms_json(histograms: &[proto::prometheus::Histogram]) -> Value {
    histograms
        .iter()
        .map(|h| json!({"timestamp": h.timestamp, "protobuf_hex": hex_of(&h.encode_to_vec())}))
        .collect()
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

pub fn encode_bound(series: &BoundSeries, encoding: OutputEncoding) -> Vec<u8> {
    match encoding {
        OutputEncoding::Protobuf => series.encode_to_vec(),
        OutputEncoding::Json => {
            let component = series.component.clone().unwrap_or_default();
            serde_json::to_vec(&json!({
                "tenant": series.tenant,
                "component": {
                    "externalId": component.external_id,
                    "type": component.type_name,
                    "name": component.name,
                    "identifier": component.identifier,
                    "rule": component.rule,
                },
                "labels": labels_json(&series.labels),
                "samples": samples_json(&series.samples),
                "histograms": histograms_json(&series.histograms),
            }))
            .expect("JSON encodes")
        }
    }
}

pub fn encode_unbound(series: &UnboundSeries, encoding: OutputEncoding) -> Vec<u8> {
    match encoding {
        OutputEncoding::Protobuf => series.encode_to_vec(),
        OutputEncoding::Json => serde_json::to_vec(&json!({
            "tenant": series.tenant,
            "reason": reason_name(series.reason()),
            "detail": series.detail,
            "labels": labels_json(&series.labels),
            "samples": samples_json(&series.samples),
            "histograms": histograms_json(&series.histograms),
        }))
        .expect("JSON encodes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
