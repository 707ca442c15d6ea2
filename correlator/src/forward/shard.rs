//! One sender: the pieces of the series hashed to it, in the order they were
//! read, gathered into requests and sent one at a time, each retried until
//! the endpoint takes it or refuses it for good. Sending one request at a
//! time keeps every series in order; parallelism comes from the shards.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::warn;

use crate::forward::batch::{Batch, Batcher, Piece};
use crate::forward::config::ForwardSettings;
use crate::forward::endpoint::{Answer, Endpoint};
use crate::forward::metrics::{ForwardMetrics, OutcomeLabels, TopicLabels};
use crate::forward::offsets::Ticket;
use crate::forward::request::Encoder;
use crate::forward::retry::{Backoff, Verdict, verdict};

/// What every shard of a topic shares.
pub struct ShardContext {
    pub settings: ForwardSettings,
    pub endpoint: Arc<Endpoint>,
    pub metrics: Arc<ForwardMetrics>,
    /// `bound` or `unbound`, for the metrics.
    pub topic: &'static str,
}

/// Runs until `pieces` closes, then sends what it holds and returns.
pub async fn run(
    context: Arc<ShardContext>,
    mut pieces: mpsc::Receiver<Piece>,
    answered: mpsc::UnboundedSender<Vec<Ticket>>,
) {
    let mut batcher = Batcher::new(context.settings.limits);
    let mut encoder = Encoder::new();
    let mut backoff = Backoff::new(context.settings.min_backoff, context.settings.max_backoff);
    // When the oldest series of the batch being filled arrived.
    let mut filling_since: Option<Instant> = None;
    loop {
        let next = match filling_since {
            None => pieces.recv().await,
            Some(since) => {
                match tokio::time::timeout_at(
                    since + context.settings.batch_deadline,
                    pieces.recv(),
                )
                .await
                {
                    Ok(next) => next,
                    Err(_deadline) => {
                        while let Some(batch) = batcher.take_any() {
                            send(&context, &mut encoder, &mut backoff, batch, &answered).await;
                        }
                        filling_since = None;
                        continue;
                    }
                }
            }
        };
        let Some(piece) = next else {
            while let Some(batch) = batcher.take_any() {
                send(&context, &mut encoder, &mut backoff, batch, &answered).await;
            }
            return;
        };
        batcher.push(piece);
        let mut sent_full = false;
        while let Some(batch) = batcher.take_ready() {
            send(&context, &mut encoder, &mut backoff, batch, &answered).await;
            sent_full = true;
        }
        // What is left started filling now if a full batch just left.
        filling_since = match (batcher.is_empty(), filling_since) {
            (true, _) => None,
            (false, Some(since)) if !sent_full => Some(since),
            (false, _) => Some(Instant::now()),
        };
    }
}

/// Sends `batch` until it is answered for good, then hands its tickets back.
async fn send(
    context: &ShardContext,
    encoder: &mut Encoder,
    backoff: &mut Backoff,
    batch: Batch,
    answered: &mpsc::UnboundedSender<Vec<Ticket>>,
) {
    if !batch.series.is_empty() {
        let body = encoder.body(context.settings.protocol, &batch);
        send_until_answered(context, backoff, &batch, body).await;
    }
    // The receiving end is gone only when the topic loop stopped: nothing to store then.
    let _ = answered.send(batch.tickets);
}

async fn send_until_answered(
    context: &ShardContext,
    backoff: &mut Backoff,
    batch: &Batch,
    body: bytes::Bytes,
) {
    let metrics = &context.metrics;
    let topic = context.topic;
    let outcome = |outcome: &'static str| {
        metrics
            .requests
            .get_or_create(&OutcomeLabels { topic, outcome })
            .inc();
    };
    loop {
        let started = std::time::Instant::now();
        let answer = context.endpoint.send(body.clone()).await;
        metrics
            .request_duration
            .get_or_create(&TopicLabels { topic })
            .observe(started.elapsed().as_secs_f64());
        let (asked, why) = match answer {
            Answer::Status {
                status,
                retry_after,
                message,
            } => match verdict(status) {
                Verdict::Sent => {
                    outcome("sent");
                    ForwardMetrics::count(&metrics.sent, topic, batch.points);
                    backoff.reset();
                    return;
                }
                Verdict::Rejected => {
                    outcome("rejected");
                    ForwardMetrics::count(&metrics.failed, topic, batch.points);
                    warn!(
                        status,
                        %message,
                        series = batch.series.len(),
                        points = batch.points.total(),
                        "the endpoint refused a request: dropped"
                    );
                    backoff.reset();
                    return;
                }
                Verdict::Retry => {
                    outcome("retried");
                    (retry_after, format!("status {status}: {message}"))
                }
            },
            Answer::Unreachable(error) => {
                outcome("connection_error");
                (None, error)
            }
        };
        ForwardMetrics::count(&metrics.retried, topic, batch.points);
        let wait: Duration = backoff.wait(asked);
        warn!(reason = %why, wait_ms = wait.as_millis() as u64, "sending again later");
        tokio::time::sleep(wait).await;
    }
}
