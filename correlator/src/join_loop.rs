//! The join as a Kafka consumer of `metrics.samples` (consumer group
//! `KAFKA_GROUP_ID`), producing to `metrics.bound` and `metrics.unbound`.
//!
//! At-least-once (default): a record's offset is stored only after its outputs
//! are acknowledged, in consumption order, and never past a sample that still
//! waits for its component; stored offsets are committed every second and
//! before partitions move. Exactly-once (`EXACTLY_ONCE=true`): outputs and
//! offsets go in one Kafka transaction per batch.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message as _};
use rdkafka::producer::Producer;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::Settings;
use crate::delivery::{Acked, output_producer, send_outputs};
use crate::join::{Destination, Joiner, Origin, Output};
use crate::materializer::{
    OUTPUT_PARTITIONER, PRODUCER_DEFAULTS, RebalanceContext, now_ms, output_producer_config,
    store_next_offset,
};
use crate::metrics::{KindLabels, Metrics, ReasonLabels};
use crate::output;
use crate::topology_feed::{FeedEvent, kafka_config};

/// Most records whose outputs may be unacknowledged at once (back-pressure).
const MAX_IN_FLIGHT: usize = 10_000;

/// Fetch sizes of the samples consumer, unless `[kafka.properties]` sets
/// them. With librdkafka's (1 MiB per partition, 50 MiB per fetch) the join
/// waited for records a third of the time on a backlog: `make
/// bench-correlator` gave 244 k samples/s with them, 267-315 k with these
/// and 308-323 k with 16 MiB per partition, at 1.3 GiB peak RSS against
/// 1.0 GiB here and 0.55 GiB with the defaults (0.8-0.9 GiB here since
/// LZ4 frames carry their content size; BENCHMARKS.md).
const SAMPLES_FETCH: [(&str, &str); 2] = [
    ("max.partition.fetch.bytes", "4194304"),
    ("fetch.max.bytes", "33554432"),
];

/// An [`Acked`] with what it completes.
type Completion = Pin<Box<dyn Future<Output = (Result<(), KafkaError>, InFlight)> + Send>>;

/// Outputs sent for one consumed record, or for released waiting samples.
struct InFlight {
    /// The consumed record this completes, if any.
    consumed: Option<Origin>,
    /// Waiting samples these outputs released: they hold their offsets back until acked.
    released: Vec<Origin>,
}

/// Books the acknowledgement of `entry`'s outputs: the released samples it
/// carried stop holding their offsets back, and for a consumed record, the
/// partition and the next offset that is safe to store: past the record, but
/// never past a sample still waiting for its component or released with
/// outputs not yet acknowledged.
fn acknowledged(
    entry: &InFlight,
    joiner: &Joiner,
    released_floor: &mut BTreeMap<Origin, usize>,
) -> Option<(i32, i64)> {
    for origin in &entry.released {
        if let Some(count) = released_floor.get_mut(origin) {
            *count -= 1;
            if *count == 0 {
                released_floor.remove(origin);
            }
        }
    }
    let origin = entry.consumed?;
    let mut safe = origin.offset + 1;
    if let Some(pending) = joiner.pending_floor().get(&origin.partition) {
        safe = safe.min(*pending);
    }
    if let Some((held, _)) = released_floor
        .iter()
        .find(|(o, _)| o.partition == origin.partition)
    {
        safe = safe.min(held.offset);
    }
    Some((origin.partition, safe))
}

/// Applies one topology change to the join's index.
fn apply_feed(joiner: &mut Joiner, event: &FeedEvent) {
    match event {
        FeedEvent::Upsert { key, component } => joiner.upsert_component(key, &**component),
        FeedEvent::Delete { key, deleted_ms } => joiner.delete_component(key, *deleted_ms),
        FeedEvent::Loaded { .. } => {}
    }
}

fn record_outputs(metrics: &Metrics, outputs: &[Output]) {
    // One counter update per kind and batch: a batch holds hundreds of records.
    // (records, series, points) per kind.
    let mut bound = (0u64, 0u64, 0u64);
    let mut unbound = (0u64, 0u64, 0u64);
    for output in outputs {
        let tally = match output.destination {
            Destination::Bound => &mut bound,
            Destination::Unbound => {
                if let Some(reason) = output.reason {
                    metrics
                        .unbound_points
                        .get_or_create(&ReasonLabels {
                            reason: output::reason_name(reason),
                        })
                        .inc_by(output.points as u64);
                }
                &mut unbound
            }
        };
        tally.0 += 1;
        tally.1 += output.series as u64;
        tally.2 += output.points as u64;
    }
    for (kind, (records, series, points)) in [("bound", bound), ("unbound", unbound)] {
        if records > 0 {
            let labels = KindLabels { kind };
            metrics
                .records_produced
                .get_or_create(&labels)
                .inc_by(records);
            metrics
                .series_produced
                .get_or_create(&labels)
                .inc_by(series);
            metrics
                .points_produced
                .get_or_create(&labels)
                .inc_by(points);
        }
    }
}

fn tenant_and_type(message: &BorrowedMessage<'_>) -> (String, String) {
    let mut tenant = String::new();
    let mut content_type = String::new();
    if let Some(headers) = message.headers() {
        for header in headers.iter() {
            let value = String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned();
            match header.key {
                "tenant" => tenant = value,
                "content-type" => content_type = value,
                _ => {}
            }
        }
    }
    if tenant.is_empty() {
        tenant = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
    }
    (tenant, content_type)
}

/// Waits for the topology to be loaded into the joiner.
pub async fn load_topology(
    joiner: &mut Joiner,
    feed: &mut UnboundedReceiver<Arc<FeedEvent>>,
) -> Option<usize> {
    loop {
        let event = feed.recv().await?;
        if let FeedEvent::Loaded { components, took } = &*event {
            info!(components, took = ?took, "join index loaded");
            return Some(*components);
        }
        apply_feed(joiner, &event);
    }
}

fn update_gauges(metrics: &Metrics, joiner: &Joiner) {
    metrics
        .topology_components
        .set(joiner.index().current_components() as i64);
    metrics
        .topology_identifiers
        .set(joiner.index().identifiers() as i64);
    metrics.pending_samples.set(joiner.pending_samples() as i64);
    metrics.series_cache.set(joiner.cached_series() as i64);
    metrics.bound_points.inner().store(
        joiner.stats.bound_points,
        std::sync::atomic::Ordering::Relaxed,
    );
    metrics.released_points.inner().store(
        joiner.stats.released_points,
        std::sync::atomic::Ordering::Relaxed,
    );
}

fn samples_consumer(
    settings: &Settings,
    revoked: Arc<Mutex<Vec<i32>>>,
) -> anyhow::Result<StreamConsumer<RebalanceContext>> {
    let mut config = kafka_config(settings, &SAMPLES_FETCH);
    config
        .set("group.id", &settings.group_id)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.offset.store", "false");
    if settings.exactly_once {
        config
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed");
    } else {
        config
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000");
    }
    let consumer: StreamConsumer<RebalanceContext> = config
        .create_with_context(RebalanceContext { revoked })
        .context("creating the samples consumer")?;
    consumer.subscribe(&[&settings.topics.samples])?;
    Ok(consumer)
}

/// At-least-once join loop. Returns on shutdown after in-flight outputs are acknowledged.
pub async fn run_at_least_once(
    settings: Settings,
    mut joiner: Joiner,
    mut feed: UnboundedReceiver<Arc<FeedEvent>>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let producer = output_producer(&output_producer_config(&settings), &settings.topics)
        .context("creating the producer")?;
    let revoked = Arc::new(Mutex::new(Vec::new()));
    let consumer = samples_consumer(&settings, revoked.clone())?;
    let topic = settings.topics.samples.clone();
    let mut in_flight: FuturesOrdered<Completion> = FuturesOrdered::new();
    // Released samples whose outputs are not acknowledged yet.
    let mut released_floor: BTreeMap<Origin, usize> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut last_purge = Instant::now();

    let queue = |in_flight: &mut FuturesOrdered<_>, acked: Acked, entry: InFlight| {
        in_flight.push_back(Box::pin(async move { (acked.await, entry) }) as Completion);
    };

    loop {
        let saturated = in_flight.len() >= MAX_IN_FLIGHT;
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            Some((result, entry)) = in_flight.next(), if !in_flight.is_empty() => {
                result.context("producing join outputs")?;
                if let Some((partition, next)) = acknowledged(&entry, &joiner, &mut released_floor) {
                    store_next_offset(&consumer, &topic, partition, next);
                }
            }
            event = feed.recv() => {
                let Some(event) = event else {
                    anyhow::bail!("the topology feed stopped");
                };
                apply_feed(&mut joiner, &event);
                // Apply whatever else is queued, then release in one go.
                while let Ok(more) = feed.try_recv() {
                    apply_feed(&mut joiner, &more);
                }
                let released = joiner.release_pending();
                if !released.is_empty() {
                    let origins: Vec<Origin> = released.iter().flat_map(|o| o.origins.iter().copied()).collect();
                    for origin in &origins {
                        *released_floor.entry(*origin).or_default() += 1;
                    }
                    record_outputs(&metrics, &released);
                    let acked = send_outputs(&producer, &settings, released, &shutdown).await;
                    queue(&mut in_flight, acked, InFlight { consumed: None, released: origins });
                }
            }
            _ = tick.tick() => {
                let expired = joiner.expire_pending(now_ms());
                if !expired.is_empty() {
                    let origins: Vec<Origin> = expired.iter().flat_map(|o| o.origins.iter().copied()).collect();
                    for origin in &origins {
                        *released_floor.entry(*origin).or_default() += 1;
                    }
                    record_outputs(&metrics, &expired);
                    let acked = send_outputs(&producer, &settings, expired, &shutdown).await;
                    queue(&mut in_flight, acked, InFlight { consumed: None, released: origins });
                }
                if last_purge.elapsed() > Duration::from_secs(60) {
                    joiner.purge_history();
                    last_purge = Instant::now();
                }
                update_gauges(&metrics, &joiner);
            }
            message = consumer.recv(), if !saturated => {
                let message = match message {
                    Ok(message) => message,
                    Err(error) => {
                        warn!(%error, "reading metrics.samples");
                        continue;
                    }
                };
                let gone: Vec<i32> = std::mem::take(&mut *revoked.lock().expect("revoked lock"));
                if !gone.is_empty() {
                    joiner.forget_partitions(&gone);
                }
                metrics.records_consumed.get_or_create(&KindLabels { kind: "samples" }).inc();
                let origin = Origin { partition: message.partition(), offset: message.offset() };
                let (tenant, content_type) = tenant_and_type(&message);
                let outputs = match joiner.process(&tenant, &content_type, message.payload().unwrap_or_default(), origin, now_ms()) {
                    Ok(outputs) => outputs,
                    Err(error) => {
                        // A record we cannot read must not stop the partition: count it and move on.
                        warn!(%error, partition = origin.partition, offset = origin.offset, "skipping an unreadable samples record");
                        metrics.records_skipped.get_or_create(&ReasonLabels { reason: "invalid_samples_record" }).inc();
                        Vec::new()
                    }
                };
                record_outputs(&metrics, &outputs);
                // Samples evicted from the pending buffer ride along: hold their offsets too.
                let evicted: Vec<Origin> = outputs.iter().flat_map(|o| o.origins.iter().copied()).collect();
                for held in &evicted {
                    *released_floor.entry(*held).or_default() += 1;
                }
                let acked = send_outputs(&producer, &settings, outputs, &shutdown).await;
                queue(&mut in_flight, acked, InFlight { consumed: Some(origin), released: evicted });
            }
        }
    }

    info!(in_flight = in_flight.len(), "join draining");
    let deadline = tokio::time::sleep(settings.shutdown_timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => {
                warn!("shutdown timeout: outputs still unacknowledged; their records will be read again");
                break;
            }
            next = in_flight.next() => {
                let Some((result, entry)) = next else { break };
                if result.is_err() {
                    break;
                }
                if let Some((partition, next)) = acknowledged(&entry, &joiner, &mut released_floor) {
                    store_next_offset(&consumer, &topic, partition, next);
                }
            }
        }
    }
    if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
        warn!(%error, "final commit");
    }
    let _ = producer.flush(Duration::from_secs(5));
    Ok(())
}

/// Settings of the exactly-once producer: the defaults of the other producers,
/// which `[kafka.properties]` may override, except what transactions need
/// (acks from all replicas, idempotence, the instance's transactional id). Not
/// their `message.timeout.ms`, which must stay under `transaction.timeout.ms`.
pub fn transactional_producer_config(settings: &Settings, instance_id: &str) -> ClientConfig {
    let defaults: Vec<(&str, &str)> = PRODUCER_DEFAULTS
        .into_iter()
        .chain([OUTPUT_PARTITIONER, ("transaction.timeout.ms", "60000")])
        .collect();
    let mut config = kafka_config(settings, &defaults);
    config
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set(
            "transactional.id",
            format!("{}-{instance_id}", settings.transactional_id_prefix),
        );
    config
}

/// Exactly-once join loop: batches of records, their outputs and their offsets in one transaction.
pub async fn run_exactly_once(
    settings: Settings,
    mut joiner: Joiner,
    mut feed: UnboundedReceiver<Arc<FeedEvent>>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
    instance_id: String,
) -> anyhow::Result<()> {
    let config = transactional_producer_config(&settings, &instance_id);
    let producer = output_producer(&config, &settings.topics)
        .context("creating the transactional producer")?;
    let txn_timeout = Duration::from_secs(30);
    tokio::task::block_in_place(|| producer.init_transactions(txn_timeout))
        .context("init_transactions")?;
    let revoked = Arc::new(Mutex::new(Vec::new()));
    let consumer = samples_consumer(&settings, revoked.clone())?;
    let topic = settings.topics.samples.clone();

    while !*shutdown.borrow() {
        tokio::task::block_in_place(|| producer.begin_transaction())
            .context("begin_transaction")?;
        let mut batch: VecDeque<Acked> = VecDeque::new();
        let mut next_offsets: BTreeMap<i32, i64> = BTreeMap::new();
        let batch_end = Instant::now() + Duration::from_millis(100);
        let mut records = 0usize;
        while Instant::now() < batch_end && records < 5_000 {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tokio::time::sleep_until(batch_end.into()) => break,
                event = feed.recv() => {
                    let Some(event) = event else {
                        anyhow::bail!("the topology feed stopped");
                    };
                    apply_feed(&mut joiner, &event);
                    let released = joiner.release_pending();
                    record_outputs(&metrics, &released);
                    batch.push_back(send_outputs(&producer, &settings, released, &shutdown).await);
                }
                message = consumer.recv() => {
                    let Ok(message) = message else { continue };
                    let gone: Vec<i32> = std::mem::take(&mut *revoked.lock().expect("revoked lock"));
                    if !gone.is_empty() {
                        joiner.forget_partitions(&gone);
                        next_offsets.retain(|p, _| !gone.contains(p));
                    }
                    records += 1;
                    metrics.records_consumed.get_or_create(&KindLabels { kind: "samples" }).inc();
                    let origin = Origin { partition: message.partition(), offset: message.offset() };
                    let (tenant, content_type) = tenant_and_type(&message);
                    let outputs = joiner
                        .process(&tenant, &content_type, message.payload().unwrap_or_default(), origin, now_ms())
                        .unwrap_or_else(|error| {
                            warn!(%error, "skipping an unreadable samples record");
                            metrics.records_skipped.get_or_create(&ReasonLabels { reason: "invalid_samples_record" }).inc();
                            Vec::new()
                        });
                    record_outputs(&metrics, &outputs);
                    batch.push_back(send_outputs(&producer, &settings, outputs, &shutdown).await);
                    next_offsets.insert(origin.partition, origin.offset + 1);
                }
            }
        }
        let expired = joiner.expire_pending(now_ms());
        record_outputs(&metrics, &expired);
        batch.push_back(send_outputs(&producer, &settings, expired, &shutdown).await);
        let mut failed = None;
        for acked in batch {
            if let Err(error) = acked.await {
                failed = Some(error);
            }
        }
        let mut offsets = TopicPartitionList::new();
        let floor = joiner.pending_floor();
        for (partition, next) in &next_offsets {
            let safe = floor
                .get(partition)
                .map_or(*next, |pending| (*pending).min(*next));
            offsets.add_partition_offset(&topic, *partition, Offset::Offset(safe))?;
        }
        let committed = match failed {
            Some(error) => Err(error),
            None => tokio::task::block_in_place(|| {
                if offsets.count() > 0 {
                    let group = consumer.group_metadata().ok_or(KafkaError::Canceled)?;
                    producer.send_offsets_to_transaction(&offsets, &group, txn_timeout)?;
                }
                producer.commit_transaction(txn_timeout)
            }),
        };
        if let Err(error) = committed {
            warn!(%error, "transaction failed, aborting and reading the batch again");
            metrics.transactions_aborted.inc();
            tokio::task::block_in_place(|| producer.abort_transaction(txn_timeout))
                .context("abort_transaction")?;
            // Waiting samples of the aborted batch will be read again: drop ours.
            let partitions: Vec<i32> = next_offsets.keys().copied().collect();
            joiner.forget_partitions(&partitions);
            let committed =
                tokio::task::block_in_place(|| consumer.committed(Duration::from_secs(10)))?;
            for element in committed.elements() {
                let offset = match element.offset() {
                    Offset::Invalid => Offset::Beginning,
                    other => other,
                };
                let _ = consumer.seek(
                    element.topic(),
                    element.partition(),
                    offset,
                    Duration::from_secs(10),
                );
            }
        }
        update_gauges(&metrics, &joiner);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::Bindings;
    use crate::config::Options;

    fn origin(partition: i32, offset: i64) -> Origin {
        Origin { partition, offset }
    }

    /// A consumed record's acknowledgement never stores an offset past a
    /// released sample of its partition whose outputs are still in flight,
    /// whichever loop (running or draining) books it.
    #[test]
    fn an_acknowledgement_stops_at_released_samples_still_in_flight() {
        let settings = Settings::resolve(Options::default(), Options::default()).unwrap();
        let joiner = Joiner::new(Bindings::kubernetes_defaults(), settings.join.clone());
        let mut released_floor = BTreeMap::from([(origin(0, 7), 1), (origin(1, 3), 1)]);
        let consumed = InFlight {
            consumed: Some(origin(0, 20)),
            released: Vec::new(),
        };
        assert_eq!(
            acknowledged(&consumed, &joiner, &mut released_floor),
            Some((0, 7))
        );
        // The released outputs are acknowledged: the record's offset is free.
        let release = InFlight {
            consumed: None,
            released: vec![origin(0, 7)],
        };
        assert_eq!(acknowledged(&release, &joiner, &mut released_floor), None);
        assert_eq!(
            acknowledged(&consumed, &joiner, &mut released_floor),
            Some((0, 21))
        );
        assert_eq!(released_floor, BTreeMap::from([(origin(1, 3), 1)]));
    }
}
