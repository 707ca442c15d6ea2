//! `correlator forward`: reads `metrics.bound` (and `metrics.unbound` if
//! asked) in a consumer group of its own and writes every series to a
//! remote-write endpoint, as Prometheus's own sender does: series hashed to
//! shards ([`shard`]), gathered into requests ([`batch`]) of 2.0 or 1.0
//! ([`request`]), snappy, retried on 5xx, 429 and connection errors
//! ([`retry`]). A record's offset is committed only once the endpoint has
//! answered for it and every record before it ([`offsets`]).

pub mod batch;
pub mod config;
pub mod endpoint;
pub mod metrics;
pub mod offsets;
pub mod record;
pub mod request;
pub mod retry;
pub mod shard;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::config::Settings;
use crate::forward::batch::Piece;
use crate::forward::config::ForwardSettings;
use crate::forward::endpoint::Endpoint;
use crate::forward::metrics::{ForwardMetrics, SkippedLabels, TopicLabels};
use crate::forward::offsets::{OffsetTracker, Ticket};
use crate::forward::record::{Record, Span};
use crate::forward::shard::ShardContext;
use crate::samples_source::{SampleRecord, SamplesSource, SourceEvent};

/// Pieces queued for each shard before the topic loop waits for it.
const SHARD_QUEUE_PIECES: usize = 64;

/// How often the lag is measured.
const LAG_EVERY: Duration = Duration::from_secs(5);

/// A record's series, split by shard (shards that get none are left out).
pub fn split_by_shard(series: Vec<Span>, shards: usize) -> Vec<(usize, Vec<Span>)> {
    // An even share and a quarter more: hashing spreads series unevenly.
    let room = series.len() / shards + series.len() / (4 * shards) + 1;
    let mut by_shard: Vec<Vec<Span>> = (0..shards).map(|_| Vec::with_capacity(room)).collect();
    for one in series {
        by_shard[one.shard(shards)].push(one);
    }
    by_shard
        .into_iter()
        .enumerate()
        .filter(|(_, series)| !series.is_empty())
        .collect()
}

/// One topic's forwarding: its consumer, its shards and its offsets.
struct TopicLoop {
    topic: &'static str,
    source: SamplesSource,
    tracker: OffsetTracker,
    shards: Vec<mpsc::Sender<Piece>>,
    metrics: Arc<ForwardMetrics>,
}

impl TopicLoop {
    /// A record read: its series go to their shards, in the order read.
    async fn on_record(&mut self, record: SampleRecord) -> anyhow::Result<()> {
        for partition in self.source.take_revoked() {
            self.tracker.revoke(partition);
        }
        let labels = TopicLabels { topic: self.topic };
        self.metrics.records_consumed.get_or_create(&labels).inc();
        let origin = record.origin;
        let content_type = if record.content_type.is_empty() {
            proto::CONTENT_TYPE_V2
        } else {
            record.content_type.as_str()
        };
        let (read, pieces) = match Record::read(content_type, record.payload) {
            Ok((record, series)) => (Arc::new(record), split_by_shard(series, self.shards.len())),
            Err(error) => {
                // Only another writer could put such a record there: count it, and move on.
                warn!(%error, partition = origin.partition, offset = origin.offset, "skipping an unreadable record");
                self.metrics
                    .records_skipped
                    .get_or_create(&SkippedLabels {
                        topic: self.topic,
                        reason: "unreadable_record",
                    })
                    .inc();
                (Arc::default(), Vec::new())
            }
        };
        let (ticket, safe) = self
            .tracker
            .read(origin.partition, origin.offset, pieces.len());
        if let Some(next) = safe {
            self.source.store_next_offset(origin.partition, next);
        }
        for (shard, series) in pieces {
            self.shards[shard]
                .send(Piece {
                    ticket,
                    record: read.clone(),
                    series,
                })
                .await
                .context("a shard stopped")?;
        }
        Ok(())
    }

    fn on_answered(&mut self, tickets: Vec<Ticket>) {
        for ticket in tickets {
            if let Some((partition, next)) = self.tracker.answered(ticket) {
                self.source.store_next_offset(partition, next);
            }
        }
    }

    async fn on_lag_tick(&self) {
        let resume: BTreeMap<i32, i64> = self.tracker.resume_offsets().collect();
        let ends = self
            .source
            .end_offsets(resume.keys().copied().collect())
            .await;
        let mut lag = 0;
        for (partition, end) in ends {
            lag += (end - resume[&partition]).max(0);
        }
        self.metrics
            .lag
            .get_or_create(&TopicLabels { topic: self.topic })
            .set(lag);
    }
}

/// Forwards one topic until `shutdown`, then lets the shards send what they
/// hold (for up to `SHUTDOWN_TIMEOUT_MS`) and commits what was answered.
async fn forward_topic(
    settings: Settings,
    context: Arc<ShardContext>,
    topic_name: String,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let source = SamplesSource::subscribe(&settings, &topic_name, &context.settings.group, false)?;
    let (answered_tx, mut answered) = mpsc::unbounded_channel();
    let mut shard_tasks = JoinSet::new();
    let mut shards = Vec::with_capacity(context.settings.shards);
    for _ in 0..context.settings.shards {
        let (sender, receiver) = mpsc::channel(SHARD_QUEUE_PIECES);
        shard_tasks.spawn(shard::run(context.clone(), receiver, answered_tx.clone()));
        shards.push(sender);
    }
    drop(answered_tx);
    // Every counter shows from the start, refusals at 0 too.
    let nothing = batch::PointCounts::default();
    for family in [
        &context.metrics.sent,
        &context.metrics.failed,
        &context.metrics.retried,
    ] {
        ForwardMetrics::count(family, context.topic, nothing);
    }
    let mut state = TopicLoop {
        topic: context.topic,
        source,
        tracker: OffsetTracker::new(),
        shards,
        metrics: context.metrics.clone(),
    };
    info!(topic = %topic_name, url = %context.settings.url, "forwarding");
    let mut lag_tick = tokio::time::interval(LAG_EVERY);
    let result = loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => break Ok(()),
            Some(tickets) = answered.recv() => state.on_answered(tickets),
            event = state.source.next() => match event {
                Some(SourceEvent::Record(record)) => {
                    if let Err(error) = state.on_record(record).await {
                        break Err(error);
                    }
                }
                Some(SourceEvent::Rewound) => {}
                None => break Err(anyhow::anyhow!("the consumer of {topic_name} stopped")),
            },
            _ = lag_tick.tick() => state.on_lag_tick().await,
        }
    };
    // Closing the queues makes each shard send what it holds and stop.
    state.shards.clear();
    let drained = tokio::time::timeout(settings.shutdown_timeout, async {
        loop {
            tokio::select! {
                Some(tickets) = answered.recv() => state.on_answered(tickets),
                finished = shard_tasks.join_next() => if finished.is_none() { break },
            }
        }
        while let Ok(tickets) = answered.try_recv() {
            state.on_answered(tickets);
        }
    })
    .await;
    if drained.is_err() {
        warn!(topic = %topic_name, "shards did not finish within SHUTDOWN_TIMEOUT_MS: their records are read again on restart");
        shard_tasks.abort_all();
    }
    state.source.commit();
    result
}

fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/metrics", web::get().to(render_metrics))
        .route(
            "/healthz",
            web::get().to(|| async { HttpResponse::Ok().body("ok\n") }),
        )
        // Ready once listening: the consumers are created just after.
        .route(
            "/readyz",
            web::get().to(|| async { HttpResponse::Ok().body("ready\n") }),
        );
}

async fn render_metrics(metrics: web::Data<ForwardMetrics>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(metrics.render())
}

/// Runs until SIGTERM or SIGINT, or until a topic's forwarding fails.
pub async fn run(settings: Settings, forward: ForwardSettings) -> anyhow::Result<()> {
    let endpoint = Arc::new(Endpoint::new(&forward)?);
    let metrics = web::Data::new(ForwardMetrics::new());
    let server_metrics = metrics.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(server_metrics.clone())
            .configure(configure)
    })
    .workers(1)
    .disable_signals()
    .bind(forward.listen)
    .with_context(|| format!("binding FORWARD_LISTEN {}", forward.listen))?
    .run();
    let server_handle = server.handle();
    let server_task = tokio::spawn(server);
    info!(listen = %forward.listen, "forwarder listening");

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let shutdown_tx = Arc::new(shutdown_tx);
    let signal_stop = shutdown_tx.clone();
    tokio::spawn(async move {
        crate::server::wait_for_signal().await;
        info!("shutting down: sending what the shards hold");
        signal_stop.send_replace(true);
    });

    let mut topics = vec![("bound", settings.topics.bound.clone())];
    if forward.unbound {
        topics.push(("unbound", settings.topics.unbound.clone()));
    }
    let mut loops = JoinSet::new();
    for (topic, name) in topics {
        let context = Arc::new(ShardContext {
            settings: forward.clone(),
            endpoint: endpoint.clone(),
            metrics: metrics.clone().into_inner(),
            topic,
        });
        let stop = shutdown_tx.clone();
        let topic_loop = forward_topic(settings.clone(), context, name, shutdown_rx.clone());
        loops.spawn(async move {
            let result = topic_loop.await;
            // One topic failing stops the other: the forwarder exits, and is started again.
            stop.send_replace(true);
            result
        });
    }
    let mut result = Ok(());
    while let Some(finished) = loops.join_next().await {
        let outcome = finished
            .context("a topic's forwarding panicked")
            .and_then(|outcome| outcome);
        if let Err(error) = outcome {
            tracing::error!(error = %format!("{error:#}"), "forwarding stopped");
            result = Err(error);
        }
    }
    server_handle.stop(true).await;
    let _ = server_task.await;
    info!("stopped");
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::request::encode_series_v2;
    use crate::output::BatchSeries;

    fn series(pod: &str) -> BatchSeries {
        BatchSeries {
            labels: vec![("__name__".into(), "up".into()), ("pod".into(), pod.into())],
            ..BatchSeries::default()
        }
    }

    fn spans(series: &[BatchSeries]) -> Vec<Span> {
        Record::parse(encode_series_v2(series)).unwrap().1
    }

    #[test]
    fn a_series_always_goes_to_the_same_shard_and_shards_share_the_work() {
        let all: Vec<BatchSeries> = (0..400).map(|i| series(&format!("pod-{i}"))).collect();
        let split = split_by_shard(spans(&all), 4);
        assert_eq!(split.len(), 4, "400 series reach every shard");
        for (shard, series) in &split {
            assert!(series.len() > 50, "shard {shard}: {}", series.len());
            for one in series {
                assert_eq!(one.shard(4), *shard);
            }
        }
        // The same labels in another record, with another symbol table: the same shard.
        let mut reversed = all.clone();
        reversed.reverse();
        let forward = spans(&all);
        let backward = spans(&reversed);
        for (index, span) in forward.iter().enumerate() {
            assert_eq!(span.shard(4), backward[all.len() - 1 - index].shard(4));
        }
        let again = split_by_shard(spans(&[series("pod-7")]), 4);
        assert_eq!(again[0].0, forward[7].shard(4));
        assert!(split_by_shard(Vec::new(), 4).is_empty());
        // A label's name and value are not interchangeable.
        let swapped = BatchSeries {
            labels: vec![
                ("up".into(), "__name__".into()),
                ("pod-7".into(), "pod".into()),
            ],
            ..BatchSeries::default()
        };
        assert_ne!(spans(&[swapped])[0].hash, forward[7].hash);
    }
}
