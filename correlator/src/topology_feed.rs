//! Reads `topology.components` from the beginning on every partition (no
//! consumer group, no commits: the compacted topic is the state) and hands
//! every change to the join and the materializer. `Loaded` marks the end
//! offsets captured at start: nothing joins before it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use proto::Message;
use proto::records::Component;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{info, warn};

use crate::config::Settings;
use crate::kafka::consumer_config;

#[derive(Debug)]
pub enum FeedEvent {
    Upsert {
        key: String,
        component: Box<Component>,
    },
    Delete {
        key: String,
        deleted_ms: i64,
    },
    /// Everything up to the end offsets at start has been sent.
    Loaded {
        components: usize,
        took: Duration,
    },
}

/// Runs on a blocking thread until `stop` is set.
pub fn run(
    settings: Settings,
    subscribers: Vec<UnboundedSender<Arc<FeedEvent>>>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let topic = settings.topics.topology.clone();
    let consumer: BaseConsumer = consumer_config(&settings)
        .set("group.id", format!("{}-topology-reader", settings.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .create()
        .context("creating the topology consumer")?;

    let started = Instant::now();
    let partitions = loop {
        match consumer.fetch_metadata(Some(&topic), Duration::from_secs(5)) {
            Ok(metadata) => {
                let found = metadata
                    .topics()
                    .iter()
                    .find(|t| t.name() == topic && t.error().is_none());
                if let Some(found) = found.filter(|t| !t.partitions().is_empty()) {
                    break found
                        .partitions()
                        .iter()
                        .map(|p| p.id())
                        .collect::<Vec<i32>>();
                }
            }
            Err(error) => warn!(%error, "topology topic metadata unavailable"),
        }
        if started.elapsed() > settings.topology_load_timeout {
            bail!(
                "topic {topic} not available within {:?}",
                settings.topology_load_timeout
            );
        }
        if stop.load(Ordering::Acquire) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    };

    let mut assignment = TopicPartitionList::new();
    let mut remaining: Vec<(i32, i64)> = Vec::new();
    for partition in &partitions {
        // A topic created a moment ago may not have a leader yet: retry until the load timeout.
        let (low, high) = loop {
            match consumer.fetch_watermarks(&topic, *partition, Duration::from_secs(10)) {
                Ok(watermarks) => break watermarks,
                Err(error) if started.elapsed() < settings.topology_load_timeout => {
                    warn!(%error, partition, "end offsets of the topology topic unavailable, retrying");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(error) => return Err(error).with_context(|| format!("end offsets of {topic}")),
            }
        };
        assignment.add_partition_offset(&topic, *partition, Offset::Beginning)?;
        if high > low {
            remaining.push((*partition, high));
        }
    }
    consumer.assign(&assignment)?;

    let send = |event: FeedEvent| {
        let event = Arc::new(event);
        for subscriber in &subscribers {
            let _ = subscriber.send(event.clone());
        }
    };
    let mut loaded = remaining.is_empty();
    let mut components = 0usize;
    if loaded {
        send(FeedEvent::Loaded {
            components,
            took: started.elapsed(),
        });
    }
    while !stop.load(Ordering::Acquire) {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            if !loaded && started.elapsed() > settings.topology_load_timeout {
                bail!(
                    "loading {topic} took longer than {:?}",
                    settings.topology_load_timeout
                );
            }
            continue;
        };
        let message = match message {
            Ok(message) => message,
            Err(error) => {
                warn!(%error, "reading topology.components");
                continue;
            }
        };
        let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
        match message.payload() {
            None => {
                let deleted_ms = message.timestamp().to_millis().unwrap_or_default();
                send(FeedEvent::Delete { key, deleted_ms });
            }
            Some(payload) => match Component::decode(payload) {
                Ok(component) => {
                    components += 1;
                    send(FeedEvent::Upsert {
                        key,
                        component: Box::new(component),
                    });
                }
                Err(error) => warn!(%error, %key, "skipping an unreadable component record"),
            },
        }
        if !loaded {
            let (partition, offset) = (message.partition(), message.offset());
            remaining.retain(|(p, high)| !(*p == partition && offset + 1 >= *high));
            if remaining.is_empty() {
                loaded = true;
                info!(components, took = ?started.elapsed(), "topology loaded");
                send(FeedEvent::Loaded {
                    components,
                    took: started.elapsed(),
                });
            }
        }
    }
    Ok(())
}
