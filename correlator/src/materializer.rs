//! The topology materializer: `topology.raw` parts in (consumer group
//! `<group>-topology`), current components and tombstones out to the
//! compacted `topology.components`. Offsets are stored only after the changes
//! are acknowledged and never past the first part of a snapshot still open, so
//! a restart replays an unfinished snapshot instead of forgetting its start.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use futures::future::join_all;
use proto::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Message as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::config::Settings;
use crate::kafka::{RebalanceContext, consumer_config, now_ms, producer_config, store_next_offset};
use crate::metrics::{KindLabels, Metrics, ReasonLabels};
use crate::snapshot::{SnapshotAssembler, TopologyChange, TopologyPart};
use crate::topology_feed::FeedEvent;

pub async fn run(
    settings: Settings,
    mut feed: UnboundedReceiver<Arc<FeedEvent>>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut assembler = SnapshotAssembler::default();
    // Restore what topology.components says is live before reading any part.
    loop {
        let Some(event) = feed.recv().await else {
            return Ok(());
        };
        match &*event {
            FeedEvent::Upsert { key, component } => assembler.restore(key, component),
            FeedEvent::Delete { key, .. } => assembler.restore_deletion(key),
            FeedEvent::Loaded { .. } => break,
        }
    }
    info!(
        components = assembler.live_components(),
        "materializer restored"
    );

    let producer: FutureProducer = producer_config(&settings)
        .create()
        .context("creating the producer")?;
    let revoked = Arc::new(Mutex::new(Vec::new()));
    let consumer: StreamConsumer<RebalanceContext> = consumer_config(&settings)
        .set("group.id", format!("{}-topology", settings.group_id))
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .create_with_context(RebalanceContext {
            revoked: revoked.clone(),
        })
        .context("creating the topology.raw consumer")?;
    consumer.subscribe(&[&settings.topics.topology_raw])?;
    let topology_topic = settings.topics.topology.clone();
    let timeout_ms = settings.snapshot_timeout.as_millis() as i64;
    let mut upkeep = tokio::time::interval(Duration::from_secs(1));

    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            event = feed.recv() => match event.as_deref() {
                // Others' writes (or our own echo) keep the live set current for
                // instances this member may be assigned after a rebalance.
                Some(FeedEvent::Upsert { key, component }) => assembler.restore(key, component),
                Some(FeedEvent::Delete { key, .. }) => assembler.restore_deletion(key),
                Some(FeedEvent::Loaded { .. }) => {}
                None => break,
            },
            _ = upkeep.tick() => {
                let abandoned = assembler.abandon_stale(now_ms(), timeout_ms);
                if abandoned > 0 {
                    warn!(abandoned, "abandoned snapshots that did not complete in time");
                    metrics.snapshots_abandoned.inc_by(abandoned as u64);
                }
                metrics.open_snapshots.set(assembler.open_snapshots() as i64);
            },
            message = consumer.recv() => {
                let message = match message {
                    Ok(message) => message,
                    Err(error) => {
                        warn!(%error, "reading topology.raw");
                        continue;
                    }
                };
                let revoked_now: Vec<i32> = std::mem::take(&mut *revoked.lock().expect("revoked lock"));
                if !revoked_now.is_empty() {
                    assembler.forget_open_snapshots_in(&revoked_now);
                }
                metrics.records_consumed.get_or_create(&KindLabels { kind: "topology_raw" }).inc();
                let (partition, offset) = (message.partition(), message.offset());
                let mut tenant = None;
                let changes = match message.payload().map(serde_json::from_slice::<TopologyPart>) {
                    Some(Ok(part)) => {
                        let changes = assembler.apply(&part, (partition, offset), now_ms());
                        debug!(
                            tenant = %part.tenant, instance = %part.instance.url, partition, offset,
                            start = part.start_snapshot, stop = part.stop_snapshot, changes = changes.len(),
                            "topology part applied"
                        );
                        tenant = Some(part.tenant);
                        changes
                    }
                    Some(Err(error)) => {
                        warn!(%error, partition, offset, "skipping an unreadable topology part");
                        metrics.records_skipped.get_or_create(&ReasonLabels { reason: "invalid_topology_part" }).inc();
                        Vec::new()
                    }
                    None => Vec::new(),
                };
                let timestamp = message.timestamp().to_millis();
                publish_changes(&producer, &topology_topic, &changes, tenant.as_deref(), timestamp, &metrics).await?;
                let open_start = assembler.open_snapshot_starts().get(&partition).copied();
                let safe = open_start.map_or(offset + 1, |start| start.min(offset + 1));
                store_next_offset(&consumer, message.topic(), partition, safe);
            }
        }
    }
    let _ = consumer.commit_consumer_state(CommitMode::Sync);
    Ok(())
}

/// Every record carries a `tenant` header (the part's tenant), as ingest's do.
async fn publish_changes(
    producer: &FutureProducer,
    topic: &str,
    changes: &[TopologyChange],
    tenant: Option<&str>,
    timestamp: Option<i64>,
    metrics: &Metrics,
) -> anyhow::Result<()> {
    let encoded: Vec<(&String, Option<Vec<u8>>, &'static str)> = changes
        .iter()
        .map(|change| match change {
            TopologyChange::Upsert { key, component } => {
                (key, Some(component.encode_to_vec()), "upsert")
            }
            TopologyChange::Delete { key } => (key, None, "delete"),
        })
        .collect();
    let mut deliveries = Vec::with_capacity(changes.len());
    for (key, payload, kind) in &encoded {
        let mut record: FutureRecord<'_, String, Vec<u8>> = FutureRecord::to(topic).key(*key);
        if let Some(tenant) = tenant {
            record = record.headers(OwnedHeaders::new().insert(Header {
                key: proto::keys::HEADER_TENANT,
                value: Some(tenant),
            }));
        }
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        if let Some(timestamp) = timestamp {
            record = record.timestamp(timestamp);
        }
        metrics
            .topology_changes
            .get_or_create(&KindLabels { kind })
            .inc();
        deliveries.push(producer.send(record, rdkafka::util::Timeout::Never));
    }
    for result in join_all(deliveries).await {
        if let Err((error, _)) = result {
            anyhow::bail!("writing {topic}: {error}");
        }
    }
    Ok(())
}
