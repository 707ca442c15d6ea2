//! The senders: one task per connection, each taking the next request of the
//! ring (at its due time with `--rate`, at once with `--max`), sending it over
//! a keep-alive HTTP/1.1 connection and retrying it the way Prometheus does.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use rand::Rng as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::time::Instant;

use crate::payload::PreparedRequest;
use crate::schedule::Timetable;
use crate::stats::{AttemptOutcome, Recorder};

/// How the API key is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthStyle {
    /// `sts-api-key: KEY`
    Header,
    /// `Authorization: Basic base64("apikey:KEY")`
    Basic,
}

/// The header carrying the API key in the chosen style.
pub fn auth_header(style: AuthStyle, api_key: &str) -> (HeaderName, String) {
    match style {
        AuthStyle::Header => (HeaderName::from_static("sts-api-key"), api_key.to_string()),
        AuthStyle::Basic => (
            reqwest::header::AUTHORIZATION,
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("apikey:{api_key}"))
            ),
        ),
    }
}

/// When requests leave.
#[derive(Debug, Clone)]
pub enum LoadShape {
    /// As fast as the connections allow.
    Max,
    /// On a fixed timetable (open loop).
    Rate(Timetable),
}

/// The retry policy: what is retried and how long to wait.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub enabled: bool,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// 5xx, 429, timeouts and connection errors are worth another try; the rest never succeed.
    pub fn is_retryable(outcome: AttemptOutcome) -> bool {
        match outcome {
            AttemptOutcome::Status(status) => status == 429 || (500..600).contains(&status),
            AttemptOutcome::Timeout | AttemptOutcome::ConnectionError => true,
        }
    }

    /// The wait before retry number `retry` (0-based): the server's `Retry-After`
    /// when it gave one (capped), else exponential backoff with jitter.
    pub fn backoff(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(retry_after) = retry_after {
            return retry_after.min(self.max_backoff);
        }
        let exponential = self
            .first_backoff
            .saturating_mul(1u32 << retry.min(16))
            .min(self.max_backoff);
        // Jitter between half and all of it, so connections do not retry in lockstep.
        let half = exponential / 2;
        half + half.mul_f64(rand::rng().random::<f64>())
    }
}

/// Parses `Retry-After` given in seconds (ingest never sends an HTTP date).
pub fn parse_retry_after(value: Option<&HeaderValue>) -> Option<Duration> {
    let seconds: u64 = value?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds))
}

/// Everything the sender tasks share.
pub struct SendPlan {
    pub client: reqwest::Client,
    pub url: String,
    pub headers: HeaderMap,
    pub ring: Arc<Vec<PreparedRequest>>,
    /// How many times each ring entry was answered 204, for verification.
    pub acknowledgements: Arc<Vec<AtomicU32>>,
    pub shape: LoadShape,
    pub retry: RetryPolicy,
    pub recorder: Arc<Recorder>,
    pub start: Instant,
    /// No request is due at or after this.
    pub end: Instant,
    /// Past this, nothing more is taken or retried: the run is over.
    pub give_up: Instant,
    /// Set on Ctrl-C: finish what is in flight and stop.
    pub stop: Arc<AtomicBool>,
    /// Index of the next request to take, over all laps of the ring.
    pub next_request: AtomicU64,
}

impl SendPlan {
    /// Requests that were due by now but not yet taken by a sender.
    pub fn behind_schedule(&self) -> Option<u64> {
        let LoadShape::Rate(timetable) = &self.shape else {
            return None;
        };
        let now = Instant::now().min(self.end);
        let due = timetable.due_before(now.saturating_duration_since(self.start));
        Some(due.saturating_sub(self.next_request.load(Ordering::Relaxed)))
    }

    /// `--rate`: requests due within the duration that no sender took.
    pub fn unsent(&self) -> u64 {
        let LoadShape::Rate(timetable) = &self.shape else {
            return 0;
        };
        let due = timetable.due_before(self.end.saturating_duration_since(self.start));
        due.saturating_sub(self.next_request.load(Ordering::Relaxed).min(due))
    }
}

/// One connection's worth of sending, until the run ends.
pub async fn sender(plan: Arc<SendPlan>) {
    loop {
        if plan.stop.load(Ordering::Relaxed) {
            return;
        }
        let now = Instant::now();
        if now >= plan.give_up {
            return;
        }
        // Claim the index only when it will be sent, so `unsent` stays exact.
        let (index, started) = match &plan.shape {
            LoadShape::Max => {
                if now >= plan.end {
                    return;
                }
                (plan.next_request.fetch_add(1, Ordering::Relaxed), now)
            }
            LoadShape::Rate(timetable) => {
                let Some(index) = claim_due(&plan, timetable) else {
                    return;
                };
                let due = plan.start + timetable.due(index);
                tokio::time::sleep_until(due).await;
                (index, due)
            }
        };
        let ring_index = (index % plan.ring.len() as u64) as usize;
        let request = &plan.ring[ring_index];
        plan.recorder.request_sent(request.samples);
        let acknowledged = send_with_retries(&plan, request).await;
        if acknowledged {
            plan.acknowledgements[ring_index].fetch_add(1, Ordering::Relaxed);
        }
        plan.recorder
            .request_done(acknowledged, request.samples, started.elapsed());
    }
}

/// The next request index if it is due before the end of the run.
fn claim_due(plan: &SendPlan, timetable: &Timetable) -> Option<u64> {
    let end = plan.end.saturating_duration_since(plan.start);
    let mut current = plan.next_request.load(Ordering::Relaxed);
    loop {
        if timetable.due(current) >= end {
            return None;
        }
        match plan.next_request.compare_exchange_weak(
            current,
            current + 1,
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => return Some(current),
            Err(actual) => current = actual,
        }
    }
}

/// Sends one request until it is acknowledged, fails for good, or the run gives up.
async fn send_with_retries(plan: &SendPlan, request: &PreparedRequest) -> bool {
    let mut retry = 0u32;
    loop {
        let (outcome, retry_after) = send_once(plan, request).await;
        plan.recorder.attempt(outcome);
        if outcome == AttemptOutcome::Status(204) {
            return true;
        }
        if !plan.retry.enabled || !RetryPolicy::is_retryable(outcome) {
            return false;
        }
        let wait = plan.retry.backoff(retry, retry_after);
        if Instant::now() + wait >= plan.give_up || plan.stop.load(Ordering::Relaxed) {
            return false;
        }
        plan.recorder.retry();
        tokio::time::sleep(wait).await;
        retry += 1;
    }
}

async fn send_once(
    plan: &SendPlan,
    request: &PreparedRequest,
) -> (AttemptOutcome, Option<Duration>) {
    let response = plan
        .client
        .post(&plan.url)
        .headers(plan.headers.clone())
        .header(
            reqwest::header::CONTENT_TYPE,
            request.protocol.content_type(),
        )
        .header(
            "x-prometheus-remote-write-version",
            request.protocol.version_header(),
        )
        .body(request.body.clone())
        .send()
        .await;
    match response {
        Ok(response) => {
            let status = response.status().as_u16();
            let retry_after =
                parse_retry_after(response.headers().get(reqwest::header::RETRY_AFTER));
            // Read the (small) body so the connection goes back to the pool.
            let _ = response.bytes().await;
            (AttemptOutcome::Status(status), retry_after)
        }
        Err(error) if error.is_timeout() => (AttemptOutcome::Timeout, None),
        Err(_) => (AttemptOutcome::ConnectionError, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_what_may_succeed_later() {
        for status in [429, 500, 502, 503, 504] {
            assert!(RetryPolicy::is_retryable(AttemptOutcome::Status(status)));
        }
        for status in [204, 400, 401, 413, 415] {
            assert!(!RetryPolicy::is_retryable(AttemptOutcome::Status(status)));
        }
        assert!(RetryPolicy::is_retryable(AttemptOutcome::Timeout));
        assert!(RetryPolicy::is_retryable(AttemptOutcome::ConnectionError));
    }

    #[test]
    fn backoff_honours_retry_after_and_grows_to_a_cap() {
        let policy = RetryPolicy {
            enabled: true,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        };
        assert_eq!(
            policy.backoff(0, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            policy.backoff(0, Some(Duration::from_secs(60))),
            Duration::from_secs(5)
        );
        let first = policy.backoff(0, None);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let fourth = policy.backoff(3, None);
        assert!(fourth >= Duration::from_millis(400) && fourth <= Duration::from_millis(800));
        assert!(policy.backoff(30, None) <= Duration::from_secs(5));
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        assert_eq!(
            parse_retry_after(Some(&HeaderValue::from_static("3"))),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            parse_retry_after(Some(&HeaderValue::from_static("soon"))),
            None
        );
        assert_eq!(parse_retry_after(None), None);
    }

    #[test]
    fn basic_auth_uses_the_apikey_user() {
        let (name, value) = auth_header(AuthStyle::Basic, "k");
        assert_eq!(name, reqwest::header::AUTHORIZATION);
        assert_eq!(value, "Basic YXBpa2V5Oms=");
        let (name, value) = auth_header(AuthStyle::Header, "k");
        assert_eq!(name.as_str(), "sts-api-key");
        assert_eq!(value, "k");
    }
}
