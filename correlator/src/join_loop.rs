//! The join as a Kafka consumer of `metrics.samples` ([`SamplesSource`]),
//! producing to `metrics.bound` and `metrics.unbound`: one [`JoinLoop`] with a
//! handler per event (a record, a topology change, a tick, an
//! acknowledgement), driven by one of two loops that only dispatch.
//!
//! At-least-once (default): a record's offset is stored only after its outputs
//! are acknowledged, in consumption order, and never past a sample that still
//! waits for its component; stored offsets are committed every second and
//! before partitions move. Exactly-once (`EXACTLY_ONCE=true`): outputs and
//! offsets go in one Kafka transaction per batch.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::Settings;
use crate::delivery::{Acked, OutputProducer, output_producer, send_outputs};
use crate::join::{Destination, Joiner, Origin, Output};
use crate::kafka::{now_ms, output_producer_config, transactional_producer_config};
use crate::metrics::{KindLabels, Metrics, ReasonLabels};
use crate::output;
use crate::samples_source::{SampleRecord, SamplesSource, SourceEvent};
use crate::topology_feed::FeedEvent;

/// Most records whose outputs may be unacknowledged at once (back-pressure).
const MAX_IN_FLIGHT: usize = 10_000;

/// How often waiting samples are expired and gauges updated.
const TICK: Duration = Duration::from_millis(200);

/// How often topology history past the window is forgotten.
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// An [`Acked`] with what it completes.
type Completion = Pin<Box<dyn Future<Output = (Result<(), KafkaError>, InFlight)> + Send>>;

/// Outputs sent for one consumed record, or for released waiting samples.
#[derive(Debug, Default)]
struct InFlight {
    /// The consumed record this completes, if any.
    consumed: Option<Origin>,
    /// Waiting samples these outputs released: they hold their offsets back until acked.
    released: Vec<Origin>,
    /// The consumed record's Kafka timestamp, for the end-to-end lag.
    written_ms: Option<i64>,
}

/// The join's state between events, for both delivery modes.
struct JoinLoop {
    settings: Settings,
    joiner: Joiner,
    metrics: Arc<Metrics>,
    producer: OutputProducer,
    source: SamplesSource,
    /// Released samples whose outputs are not acknowledged yet.
    released_floor: BTreeMap<Origin, usize>,
    /// Partitions the last record found taken away.
    revoked: Vec<i32>,
    last_purge: Instant,
}

impl JoinLoop {
    fn new(
        settings: Settings,
        joiner: Joiner,
        metrics: Arc<Metrics>,
        producer: OutputProducer,
    ) -> anyhow::Result<JoinLoop> {
        let source = SamplesSource::start(&settings)?;
        Ok(JoinLoop {
            settings,
            joiner,
            metrics,
            producer,
            source,
            released_floor: BTreeMap::new(),
            revoked: Vec::new(),
            last_purge: Instant::now(),
        })
    }

    /// A consumed record: its outputs, and what their acknowledgement completes.
    /// Partitions taken away since the last call: the join forgets their
    /// waiting samples, and `revoked` names them.
    fn forget_revoked(&mut self) {
        self.revoked = self.source.take_revoked();
        if !self.revoked.is_empty() {
            self.joiner.forget_partitions(&self.revoked);
        }
    }

    fn on_record(&mut self, record: SampleRecord) -> (Vec<Output>, InFlight) {
        self.forget_revoked();
        self.metrics
            .records_consumed
            .get_or_create(&KindLabels { kind: "samples" })
            .inc();
        let origin = record.origin;
        let written_ms = record.written_ms;
        let outputs = match self.joiner.process(
            &record.tenant,
            &record.content_type,
            &record.payload,
            origin,
            now_ms(),
        ) {
            Ok(outputs) => outputs,
            Err(error) => {
                // A record we cannot read must not stop the partition: count it and move on.
                warn!(%error, partition = origin.partition, offset = origin.offset, "skipping an unreadable samples record");
                self.metrics
                    .records_skipped
                    .get_or_create(&ReasonLabels {
                        reason: "invalid_samples_record",
                    })
                    .inc();
                Vec::new()
            }
        };
        // Samples evicted from the pending buffer ride along: hold their offsets too.
        let (outputs, mut entry) = self.sending(outputs, Some(origin));
        entry.written_ms = written_ms;
        (outputs, entry)
    }

    /// Topology changes: applied, with whatever else is queued, then the
    /// waiting samples they complete are released in one go.
    fn on_topology(
        &mut self,
        event: &FeedEvent,
        feed: &mut UnboundedReceiver<Arc<FeedEvent>>,
    ) -> (Vec<Output>, InFlight) {
        apply_feed(&mut self.joiner, event);
        while let Ok(more) = feed.try_recv() {
            apply_feed(&mut self.joiner, &more);
        }
        let released = self.joiner.release_pending();
        self.sending(released, None)
    }

    /// The clock: waiting samples past their grace leave as unbound, old
    /// topology history is forgotten, gauges are updated.
    fn on_tick(&mut self) -> (Vec<Output>, InFlight) {
        let expired = self.joiner.expire_pending(now_ms());
        if self.last_purge.elapsed() > PURGE_EVERY {
            self.joiner.purge_history();
            self.last_purge = Instant::now();
        }
        update_gauges(&self.metrics, &self.joiner);
        self.sending(expired, None)
    }

    /// Outputs acknowledged: the samples they released stop holding their
    /// offsets back, and a consumed record's offset is stored where safe.
    fn on_acknowledged(&mut self, entry: &InFlight) {
        if let Some(written_ms) = entry.written_ms {
            observe_lag(&self.metrics, now_ms(), written_ms);
        }
        if let Some((partition, next)) = acknowledged(entry, &self.joiner, &mut self.released_floor)
        {
            self.source.store_next_offset(partition, next);
        }
    }

    /// Counts `outputs` and books the waiting samples they carry, whose
    /// offsets stay held back until they are acknowledged.
    fn sending(
        &mut self,
        outputs: Vec<Output>,
        consumed: Option<Origin>,
    ) -> (Vec<Output>, InFlight) {
        record_outputs(&self.metrics, &outputs);
        let released: Vec<Origin> = outputs
            .iter()
            .flat_map(|output| output.origins.iter().copied())
            .collect();
        for origin in &released {
            *self.released_floor.entry(*origin).or_default() += 1;
        }
        let entry = InFlight {
            consumed,
            released,
            written_ms: None,
        };
        (outputs, entry)
    }

    async fn send(&self, outputs: Vec<Output>, shutdown: &watch::Receiver<bool>) -> Acked {
        send_outputs(
            &self.producer,
            &self.settings,
            outputs,
            shutdown,
            &self.metrics.output_queue_full,
        )
        .await
    }
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

/// One consumed record's end-to-end lag, from its Kafka timestamp to now.
fn observe_lag(metrics: &Metrics, now_ms: i64, written_ms: i64) {
    let lag_ms = now_ms.saturating_sub(written_ms).max(0);
    metrics.end_to_end_lag.observe(lag_ms as f64 / 1000.0);
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

/// At-least-once join loop. Returns on shutdown after in-flight outputs are acknowledged.
pub async fn run_at_least_once(
    settings: Settings,
    joiner: Joiner,
    mut feed: UnboundedReceiver<Arc<FeedEvent>>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let producer = output_producer(&output_producer_config(&settings), &settings.topics)
        .context("creating the producer")?;
    let mut join = JoinLoop::new(settings, joiner, metrics, producer)?;
    let mut in_flight: FuturesOrdered<Completion> = FuturesOrdered::new();
    let mut tick = tokio::time::interval(TICK);
    let queue = |in_flight: &mut FuturesOrdered<_>, acked: Acked, entry: InFlight| {
        in_flight.push_back(Box::pin(async move { (acked.await, entry) }) as Completion);
    };

    loop {
        let saturated = in_flight.len() >= MAX_IN_FLIGHT;
        let (outputs, entry) = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            Some((result, entry)) = in_flight.next(), if !in_flight.is_empty() => {
                result.context("producing join outputs")?;
                join.on_acknowledged(&entry);
                continue;
            }
            event = feed.recv() => {
                let Some(event) = event else {
                    anyhow::bail!("the topology feed stopped");
                };
                join.on_topology(&event, &mut feed)
            }
            _ = tick.tick() => join.on_tick(),
            event = join.source.next(), if !saturated => match event {
                Some(SourceEvent::Record(record)) => join.on_record(record),
                Some(SourceEvent::Rewound) => continue,
                None => anyhow::bail!("the samples consumer stopped"),
            },
        };
        if outputs.is_empty() && entry.consumed.is_none() {
            continue;
        }
        let acked = join.send(outputs, &shutdown).await;
        queue(&mut in_flight, acked, entry);
    }

    info!(in_flight = in_flight.len(), "join draining");
    let deadline = tokio::time::sleep(join.settings.shutdown_timeout);
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
                join.on_acknowledged(&entry);
            }
        }
    }
    join.source.commit();
    let _ = join.producer.flush(Duration::from_secs(5));
    Ok(())
}

/// Exactly-once join loop: batches of records, their outputs and their offsets in one transaction.
pub async fn run_exactly_once(
    settings: Settings,
    joiner: Joiner,
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
    let topic = settings.topics.samples.clone();
    let mut join = JoinLoop::new(settings, joiner, metrics, producer)?;

    while !*shutdown.borrow() {
        tokio::task::block_in_place(|| join.producer.begin_transaction())
            .context("begin_transaction")?;
        let mut batch: VecDeque<Acked> = VecDeque::new();
        let mut next_offsets: BTreeMap<i32, i64> = BTreeMap::new();
        let batch_end = Instant::now() + Duration::from_millis(100);
        let mut records = 0usize;
        let mut written: Vec<i64> = Vec::new();
        // A partition of this batch taken away (revoked, or lost with the
        // group session): the outputs of its records must not commit, or its
        // new owner, reading from the committed offsets, joins them again.
        let mut revoked_in_batch: Vec<i32> = Vec::new();
        while Instant::now() < batch_end && records < 5_000 {
            // The transaction covers the outputs: what the handlers book for
            // at-least-once acknowledgements is not needed here.
            let (outputs, _) = tokio::select! {
                _ = shutdown.changed() => break,
                _ = tokio::time::sleep_until(batch_end.into()) => break,
                event = feed.recv() => {
                    let Some(event) = event else {
                        anyhow::bail!("the topology feed stopped");
                    };
                    join.on_topology(&event, &mut feed)
                }
                event = join.source.next() => match event {
                    Some(SourceEvent::Record(record)) => {
                        records += 1;
                        let origin = record.origin;
                        written.extend(record.written_ms);
                        let handled = join.on_record(record);
                        revoked_in_batch.extend_from_slice(&join.revoked);
                        next_offsets.insert(origin.partition, origin.offset + 1);
                        handled
                    }
                    Some(SourceEvent::Rewound) => continue,
                    None => anyhow::bail!("the samples consumer stopped"),
                },
            };
            batch.push_back(join.send(outputs, &shutdown).await);
        }
        let (expired, _) = join.on_tick();
        batch.push_back(join.send(expired, &shutdown).await);
        join.released_floor.clear();
        let mut failed = None;
        for acked in batch {
            if let Err(error) = acked.await {
                failed = Some(error);
            }
        }
        join.forget_revoked();
        revoked_in_batch.extend_from_slice(&join.revoked);
        let lost_partition = holds_any(&next_offsets, &revoked_in_batch);
        let mut offsets = TopicPartitionList::new();
        let floor = join.joiner.pending_floor();
        for (partition, next) in &next_offsets {
            let safe = floor
                .get(partition)
                .map_or(*next, |pending| (*pending).min(*next));
            offsets.add_partition_offset(&topic, *partition, Offset::Offset(safe))?;
        }
        let committed = match failed {
            Some(error) => Err(error),
            None if lost_partition => Err(KafkaError::Canceled),
            None => tokio::task::block_in_place(|| {
                if offsets.count() > 0 {
                    let group = join.source.group_metadata().ok_or(KafkaError::Canceled)?;
                    resume_while_retriable(TRANSACTION_ATTEMPTS, retriable, || {
                        join.producer
                            .send_offsets_to_transaction(&offsets, &group, txn_timeout)
                    })?;
                }
                resume_while_retriable(TRANSACTION_ATTEMPTS, retriable, || {
                    join.producer.commit_transaction(txn_timeout)
                })
            }),
        };
        if committed.is_ok() {
            let now = now_ms();
            for written_ms in written {
                observe_lag(&join.metrics, now, written_ms);
            }
        }
        if let Err(error) = committed {
            if lost_partition {
                warn!(
                    "partitions of this batch were taken away before its commit: aborting it; their new owner joins their records from the committed offsets"
                );
            } else {
                warn!(%error, "transaction failed, aborting and reading the batch again");
            }
            join.metrics.transactions_aborted.inc();
            tokio::task::block_in_place(|| join.producer.abort_transaction(txn_timeout))
                .context("abort_transaction")?;
            // Waiting samples of the aborted batch will be read again: drop ours.
            let partitions: Vec<i32> = next_offsets.keys().copied().collect();
            join.joiner.forget_partitions(&partitions);
            join.source.rewind_to_committed().await?;
        }
    }
    Ok(())
}

/// Whether the batch read records of any of `revoked`'s partitions.
fn holds_any(next_offsets: &BTreeMap<i32, i64>, revoked: &[i32]) -> bool {
    revoked
        .iter()
        .any(|partition| next_offsets.contains_key(partition))
}

/// Calls of a transaction step made at most, each waiting up to its timeout.
const TRANSACTION_ATTEMPTS: u32 = 5;

/// A transaction step that timed out (as while the transaction coordinator's
/// node is cut off and its partition gets a new leader) is still under way:
/// librdkafka resumes it when the same call is made again, and refuses to
/// abort meanwhile ("Conflicting commit_transaction API call is already in
/// progress"), which stopped the join.
fn retriable(error: &KafkaError) -> bool {
    matches!(error, KafkaError::Transaction(error) if error.is_retriable())
}

/// Runs `step` again while it fails with an error `is_retriable` accepts, at
/// most `attempts` times in all; returns the last outcome.
fn resume_while_retriable<T, E: std::fmt::Display>(
    attempts: u32,
    is_retriable: impl Fn(&E) -> bool,
    mut step: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    let mut attempt = 1;
    loop {
        match step() {
            Err(error) if attempt < attempts && is_retriable(&error) => {
                warn!(%error, attempt, "transaction step not finished, resuming it");
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step that times out is called again until it finishes; one that
    /// fails otherwise, or keeps timing out, is given up at once or after the
    /// attempts.
    /// A batch that read a partition taken away during it must not commit;
    /// one whose records are all of partitions still held may.
    #[test]
    fn a_batch_holding_a_revoked_partition_is_not_committed() {
        let batch = BTreeMap::from([(0, 10), (3, 7)]);
        assert!(holds_any(&batch, &[5, 3]));
        assert!(!holds_any(&batch, &[1, 2]));
        assert!(!holds_any(&batch, &[]));
    }

    #[test]
    fn a_timed_out_transaction_step_is_resumed_not_abandoned() {
        let timed_out = |error: &&str| *error == "timed out";
        let mut calls = 0;
        let outcome = resume_while_retriable(5, timed_out, || {
            calls += 1;
            if calls < 3 {
                Err("timed out")
            } else {
                Ok(calls)
            }
        });
        assert_eq!(outcome, Ok(3));

        let mut calls = 0;
        let outcome: Result<(), &str> = resume_while_retriable(5, timed_out, || {
            calls += 1;
            Err("fenced")
        });
        assert_eq!((outcome, calls), (Err("fenced"), 1));

        let mut calls = 0;
        let outcome: Result<(), &str> = resume_while_retriable(5, timed_out, || {
            calls += 1;
            Err("timed out")
        });
        assert_eq!((outcome, calls), (Err("timed out"), 5));
    }
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
        let settings = Settings::resolve(shared::settings::defaults::<Options>()).unwrap();
        let joiner = Joiner::new(Bindings::kubernetes_defaults(), settings.join.clone());
        let mut released_floor = BTreeMap::from([(origin(0, 7), 1), (origin(1, 3), 1)]);
        let consumed = InFlight {
            consumed: Some(origin(0, 20)),
            released: Vec::new(),
            written_ms: None,
        };
        assert_eq!(
            acknowledged(&consumed, &joiner, &mut released_floor),
            Some((0, 7))
        );
        // The released outputs are acknowledged: the record's offset is free.
        let release = InFlight {
            consumed: None,
            released: vec![origin(0, 7)],
            written_ms: None,
        };
        assert_eq!(acknowledged(&release, &joiner, &mut released_floor), None);
        assert_eq!(
            acknowledged(&consumed, &joiner, &mut released_floor),
            Some((0, 21))
        );
        assert_eq!(released_floor, BTreeMap::from([(origin(1, 3), 1)]));
    }
}
