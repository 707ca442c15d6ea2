//! `correlator tail`: bound (or unbound) series as they arrive, one line each.

use std::time::Duration;

use anyhow::Context;
use proto::Message;
use proto::records::{BoundSeries, UnboundSeries};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message as _};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::Settings;
use crate::output;
use crate::topology_feed::consumer_config;

fn describe_labels(labels: &[proto::prometheus::Label]) -> String {
    let name = labels
        .iter()
        .find(|l| l.name == "__name__")
        .map(|l| l.value.as_str())
        .unwrap_or("");
    let rest: Vec<String> = labels
        .iter()
        .filter(|l| l.name != "__name__")
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    format!("{name}{{{}}}", rest.join(", "))
}

fn describe_samples(samples: &[proto::prometheus::Sample], histograms: usize) -> String {
    let mut parts: Vec<String> = samples
        .iter()
        .map(|s| format!("{} @{}", output::json_value(s.value), s.timestamp))
        .collect();
    if histograms > 0 {
        parts.push(format!("{histograms} histogram(s)"));
    }
    parts.join(", ")
}

/// One readable line for a record of either topic, whichever its encoding.
pub fn describe(payload: &[u8], json: bool, unbound: bool) -> String {
    if json {
        return String::from_utf8_lossy(payload).into_owned();
    }
    if unbound {
        return match UnboundSeries::decode(payload) {
            Ok(series) => format!(
                "{} UNBOUND {} ({}): {} = {}",
                series.tenant,
                output::reason_name(series.reason()),
                series.detail,
                describe_labels(&series.labels),
                describe_samples(&series.samples, series.histograms.len())
            ),
            Err(error) => format!("unreadable record: {error}"),
        };
    }
    match BoundSeries::decode(payload) {
        Ok(series) => {
            let component = series.component.unwrap_or_default();
            format!(
                "{} {} [{} {}] via {}: {} = {}",
                series.tenant,
                component.external_id,
                component.type_name,
                component.name,
                component.rule,
                describe_labels(&series.labels),
                describe_samples(&series.samples, series.histograms.len())
            )
        }
        Err(error) => format!("unreadable record: {error}"),
    }
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
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions as i32 {
        let start = if from_beginning {
            Offset::Beginning
        } else {
            Offset::End
        };
        assignment.add_partition_offset(topic, partition, start)?;
    }
    consumer.assign(&assignment)?;
    eprintln!("tailing {topic} (Ctrl-C to stop)");
    loop {
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message?;
        let json = message
            .headers()
            .and_then(|headers| {
                headers
                    .iter()
                    .find(|h| h.key == "content-type")
                    .and_then(|h| h.value)
            })
            .is_some_and(|value| value == b"application/json");
        println!(
            "{}",
            describe(message.payload().unwrap_or_default(), json, unbound)
        );
    }
}
