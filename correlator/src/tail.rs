//! `correlator tail`: bound (or unbound) batches as they arrive, a line
//! naming the component (or the reason), then one line per series. With
//! `--web` it serves the binding view instead ([`crate::view`]).

use std::time::Duration;

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Headers, Message as _};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::Settings;
use crate::join::OutputLabels;
use crate::kafka::consumer_config;
use crate::output::{self, BatchSeries};

/// A series' labels as PromQL writes them, without those in `hidden`.
pub fn describe_labels(labels: &[(String, String)], hidden: &[&str]) -> String {
    let name = labels
        .iter()
        .find(|(n, _)| n == "__name__")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let rest: Vec<String> = labels
        .iter()
        .filter(|(n, _)| n != "__name__" && !hidden.contains(&n.as_str()))
        .map(|(n, v)| format!("{n}={v:?}"))
        .collect();
    format!("{name}{{{}}}", rest.join(", "))
}

fn describe_points(series: &BatchSeries) -> String {
    let mut parts: Vec<String> = series
        .samples
        .iter()
        .map(|s| format!("{} @{}", output::json_value(s.value), s.timestamp))
        .collect();
    if !series.histograms.is_empty() {
        parts.push(format!("{} histogram(s)", series.histograms.len()));
    }
    if !series.exemplars.is_empty() {
        parts.push(format!("{} exemplar(s)", series.exemplars.len()));
    }
    parts.join(", ")
}

/// Readable lines for a record of either topic, whichever its encoding:
/// the component (or reason) first, then each series without the labels
/// that line already says.
pub fn describe(
    content_type: &str,
    payload: &[u8],
    headers: &[(&str, &str)],
    labels: &OutputLabels,
) -> String {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| *v)
    };
    let batch = match output::read_batch(content_type, payload) {
        Ok(batch) => batch,
        Err(error) => return format!("unreadable record: {error}"),
    };
    let mut lines = Vec::with_capacity(batch.len() + 1);
    let hidden: Vec<&str> = if header("reason").is_empty() {
        let name = batch
            .first()
            .and_then(|series| series.label(&labels.component_name))
            .unwrap_or("");
        lines.push(format!(
            "{} {} [{} {}] via {}: {} series",
            header("tenant"),
            header("component"),
            header("component-type"),
            name,
            header("rule"),
            batch.len()
        ));
        vec![
            &labels.external_id,
            &labels.component_type,
            &labels.component_name,
        ]
    } else {
        lines.push(format!(
            "{} UNBOUND {}: {} series",
            header("tenant"),
            header("reason"),
            batch.len()
        ));
        vec![&labels.unbound_reason, &labels.unbound_detail]
    };
    for series in &batch {
        let mut line = format!(
            "  {} = {}",
            describe_labels(&series.labels, &hidden),
            describe_points(series)
        );
        if let Some(detail) = series.label(&labels.unbound_detail)
            && !header("reason").is_empty()
        {
            line.push_str(&format!(" ({detail})"));
        }
        lines.push(line);
    }
    lines.join("\n")
}

/// Assigns every partition of `topics` to `consumer`, from their beginning
/// or their end: no group membership, nothing committed.
pub fn assign_every_partition(
    consumer: &BaseConsumer,
    topics: &[&str],
    from_beginning: bool,
) -> anyhow::Result<()> {
    let start = if from_beginning {
        Offset::Beginning
    } else {
        Offset::End
    };
    let mut assignment = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        let partitions = metadata
            .topics()
            .first()
            .map(|t| t.partitions().len())
            .unwrap_or(0);
        anyhow::ensure!(
            partitions > 0,
            "topic {topic} has no partitions (does it exist?)"
        );
        for partition in 0..partitions as i32 {
            assignment.add_partition_offset(topic, partition, start)?;
        }
    }
    consumer.assign(&assignment)?;
    Ok(())
}

/// A record's headers as text (a value that is not UTF-8 reads as empty).
pub fn record_headers<'m>(message: &'m BorrowedMessage<'_>) -> Vec<(&'m str, &'m str)> {
    message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| {
                    let value = std::str::from_utf8(h.value.unwrap_or_default()).unwrap_or("");
                    (h.key, value)
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn run(settings: &Settings, unbound: bool, from_beginning: bool) -> anyhow::Result<()> {
    let topic = if unbound {
        &settings.topics.unbound
    } else {
        &settings.topics.bound
    };
    let consumer: BaseConsumer = consumer_config(settings)
        .set("group.id", "correlator-tail")
        .set("enable.auto.commit", "false")
        .create()
        .context("creating the consumer")?;
    assign_every_partition(&consumer, &[topic], from_beginning)?;
    eprintln!("tailing {topic} (Ctrl-C to stop)");
    loop {
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message?;
        let headers = record_headers(&message);
        let content_type = headers
            .iter()
            .find(|(name, _)| *name == proto::keys::HEADER_CONTENT_TYPE)
            .map_or(proto::CONTENT_TYPE_V2, |(_, value)| *value);
        println!(
            "{}",
            describe(
                content_type,
                message.payload().unwrap_or_default(),
                &headers,
                &settings.join.labels
            )
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::{Message, v2};

    #[test]
    fn a_batch_is_a_line_for_its_component_then_one_per_series() {
        let symbols = [
            "",
            "__name__",
            "up",
            "component_external_id",
            "urn:p1",
            "component_name",
            "p1",
            "pod",
        ];
        let request = v2::Request {
            symbols: symbols.map(String::from).to_vec(),
            timeseries: vec![v2::TimeSeries {
                labels_refs: vec![1, 2, 3, 4, 5, 6, 7, 6],
                samples: vec![v2::Sample {
                    value: 1.0,
                    timestamp: 5,
                    start_timestamp: 0,
                }],
                ..Default::default()
            }],
        };
        let headers = [
            ("tenant", "acme"),
            ("component", "urn:p1"),
            ("component-type", "pod"),
            ("rule", "k8s-pod"),
        ];
        let text = describe(
            proto::CONTENT_TYPE_V2,
            &request.encode_to_vec(),
            &headers,
            &OutputLabels::default(),
        );
        assert_eq!(
            text,
            "acme urn:p1 [pod p1] via k8s-pod: 1 series\n  up{pod=\"p1\"} = 1.0 @5"
        );
        assert!(
            describe(
                proto::CONTENT_TYPE_V2,
                b"\xff",
                &headers,
                &OutputLabels::default()
            )
            .starts_with("unreadable record")
        );
    }
}
