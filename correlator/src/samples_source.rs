//! The join's consumer of `metrics.samples` (consumer group `KAFKA_GROUP_ID`),
//! also the forwarder's of the output topics, polled on a thread of its own:
//! librdkafka runs rebalance callbacks (and the commit before partitions
//! move) inside `poll`, which must not block the async runtime. Records come
//! out of a bounded channel, so a join that falls behind stops the polling,
//! and the backlog stays in Kafka.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use proto::keys::{HEADER_CONTENT_TYPE, HEADER_TENANT};
use rdkafka::Offset;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerGroupMetadata};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use tokio::sync::mpsc;
use tracing::warn;

use crate::config::Settings;
use crate::join::Origin;
use crate::kafka::{RebalanceContext, SAMPLES_FETCH, kafka_config, store_next_offset};

/// Records read ahead of the join.
const READ_AHEAD_RECORDS: usize = 256;

/// One `metrics.samples` record, copied out of librdkafka's buffers.
pub struct SampleRecord {
    pub origin: Origin,
    pub tenant: String,
    pub content_type: String,
    pub payload: Vec<u8>,
    /// The record's Kafka timestamp (when ingest wrote it, or when the broker
    /// appended it), in ms since the epoch.
    pub written_ms: Option<i64>,
}

pub enum SourceEvent {
    Record(SampleRecord),
    /// Every record after this was read from the committed offsets again.
    Rewound,
}

enum Command {
    RewindToCommitted,
}

pub struct SamplesSource {
    consumer: Arc<BaseConsumer<RebalanceContext>>,
    events: mpsc::Receiver<SourceEvent>,
    commands: std_mpsc::Sender<Command>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    revoked: Arc<Mutex<Vec<i32>>>,
    topic: String,
}

impl SamplesSource {
    /// Subscribes the join's group to `metrics.samples` and starts polling.
    pub fn start(settings: &Settings) -> anyhow::Result<SamplesSource> {
        SamplesSource::subscribe(
            settings,
            &settings.topics.samples,
            &settings.group_id,
            settings.exactly_once,
        )
    }

    /// Subscribes `group` to `topic` (the forwarder reads the output topics
    /// so) and starts polling; `transactional`: offsets go with a producer's
    /// transaction instead of being committed every second.
    pub fn subscribe(
        settings: &Settings,
        topic: &str,
        group: &str,
        transactional: bool,
    ) -> anyhow::Result<SamplesSource> {
        let mut config = kafka_config(settings, &SAMPLES_FETCH);
        config
            .set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.offset.store", "false");
        if transactional {
            config
                .set("enable.auto.commit", "false")
                .set("isolation.level", "read_committed");
        } else {
            config
                .set("enable.auto.commit", "true")
                .set("auto.commit.interval.ms", "1000");
        }
        let revoked = Arc::new(Mutex::new(Vec::new()));
        let consumer: BaseConsumer<RebalanceContext> = config
            .create_with_context(RebalanceContext {
                revoked: revoked.clone(),
            })
            .with_context(|| format!("creating the consumer of {topic}"))?;
        consumer.subscribe(&[topic])?;
        let consumer = Arc::new(consumer);
        let (sender, events) = mpsc::channel(READ_AHEAD_RECORDS);
        let (commands, command_receiver) = std_mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("samples-source".into())
            .spawn({
                let consumer = consumer.clone();
                let stop = stop.clone();
                let topic = topic.to_string();
                move || poll_until_stopped(&consumer, &topic, &sender, &command_receiver, &stop)
            })
            .with_context(|| format!("starting the thread of the consumer of {topic}"))?;
        Ok(SamplesSource {
            consumer,
            events,
            commands,
            stop,
            thread: Some(thread),
            revoked,
            topic: topic.to_string(),
        })
    }

    /// The next record or marker; `None` once the polling thread is gone.
    pub async fn next(&mut self) -> Option<SourceEvent> {
        self.events.recv().await
    }

    /// Partitions taken away since the last call.
    pub fn take_revoked(&self) -> Vec<i32> {
        std::mem::take(&mut *self.revoked.lock().expect("revoked lock"))
    }

    /// Stores `next` as the offset to resume `partition` from.
    pub fn store_next_offset(&self, partition: i32, next: i64) {
        store_next_offset(&*self.consumer, &self.topic, partition, next);
    }

    /// The end offsets of `partitions`, asked of the brokers on a blocking
    /// thread; those that could not be had are left out.
    pub async fn end_offsets(&self, partitions: Vec<i32>) -> Vec<(i32, i64)> {
        let consumer = self.consumer.clone();
        let topic = self.topic.clone();
        let asked = tokio::task::spawn_blocking(move || {
            partitions
                .into_iter()
                .filter_map(|partition| {
                    let (_, high) = consumer
                        .fetch_watermarks(&topic, partition, Duration::from_secs(2))
                        .ok()?;
                    Some((partition, high))
                })
                .collect()
        });
        asked.await.unwrap_or_default()
    }

    /// Commits the stored offsets now.
    pub fn commit(&self) {
        if let Err(error) = self.consumer.commit_consumer_state(CommitMode::Sync) {
            warn!(%error, "final commit");
        }
    }

    pub fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        self.consumer.group_metadata()
    }

    /// Reads again from the committed offsets: the records already read
    /// ahead are dropped up to the polling thread's marker.
    pub async fn rewind_to_committed(&mut self) -> anyhow::Result<()> {
        self.commands
            .send(Command::RewindToCommitted)
            .context("the samples consumer's thread stopped")?;
        loop {
            match self.events.recv().await {
                Some(SourceEvent::Rewound) => return Ok(()),
                Some(SourceEvent::Record(_)) => {}
                None => anyhow::bail!("the samples consumer's thread stopped"),
            }
        }
    }
}

impl Drop for SamplesSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // A thread waiting for room in the channel sees it closed.
        self.events.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn poll_until_stopped(
    consumer: &BaseConsumer<RebalanceContext>,
    topic: &str,
    events: &mpsc::Sender<SourceEvent>,
    commands: &std_mpsc::Receiver<Command>,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Acquire) {
        while let Ok(command) = commands.try_recv() {
            match command {
                Command::RewindToCommitted => rewind(consumer),
            }
            if events.blocking_send(SourceEvent::Rewound).is_err() {
                return;
            }
        }
        let message = match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Err(error)) => {
                warn!(%error, topic, "reading");
                continue;
            }
            Some(Ok(message)) => message,
        };
        if events
            .blocking_send(SourceEvent::Record(record_of(&message)))
            .is_err()
        {
            return;
        }
    }
}

/// Seeks every assigned partition back to its committed offset (the start
/// where nothing was committed). librdkafka drops what it fetched before.
fn rewind(consumer: &BaseConsumer<RebalanceContext>) {
    let committed = match consumer.committed(Duration::from_secs(10)) {
        Ok(committed) => committed,
        Err(error) => {
            warn!(%error, "reading the committed offsets to rewind to");
            return;
        }
    };
    for element in committed.elements() {
        let offset = match element.offset() {
            Offset::Invalid => Offset::Beginning,
            other => other,
        };
        if let Err(error) = consumer.seek(
            element.topic(),
            element.partition(),
            offset,
            Duration::from_secs(10),
        ) {
            warn!(%error, partition = element.partition(), "rewinding");
        }
    }
}

fn record_of(message: &BorrowedMessage<'_>) -> SampleRecord {
    let mut tenant = String::new();
    let mut content_type = String::new();
    if let Some(headers) = message.headers() {
        for header in headers.iter() {
            let value = String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned();
            match header.key {
                HEADER_TENANT => tenant = value,
                HEADER_CONTENT_TYPE => content_type = value,
                _ => {}
            }
        }
    }
    if tenant.is_empty() {
        tenant = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
    }
    SampleRecord {
        origin: Origin {
            partition: message.partition(),
            offset: message.offset(),
        },
        tenant,
        content_type,
        payload: message.payload().unwrap_or_default().to_vec(),
        written_ms: message.timestamp().to_millis(),
    }
}
