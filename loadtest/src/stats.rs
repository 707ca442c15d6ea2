//! Counting what the senders did: responses by status, samples sent and
//! acknowledged, latency histograms (HdrHistogram), the live progress line
//! and the end-of-run summary.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::verify::VerifyReport;

/// Up to an hour, at three significant digits, in microseconds.
const LATENCY_HIGHEST_MICROS: u64 = 3_600_000_000;

/// How one attempt at a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Status(u16),
    Timeout,
    ConnectionError,
}

impl AttemptOutcome {
    /// The key this outcome is counted under: the status code, or what failed.
    pub fn label(self) -> String {
        match self {
            AttemptOutcome::Status(status) => status.to_string(),
            AttemptOutcome::Timeout => "timeout".into(),
            AttemptOutcome::ConnectionError => "connection_error".into(),
        }
    }
}

#[derive(Debug)]
struct Counters {
    requests_sent: u64,
    requests_acknowledged: u64,
    requests_failed: u64,
    retries: u64,
    samples_sent: u64,
    samples_acknowledged: u64,
    responses_by_status: BTreeMap<String, u64>,
}

impl Counters {
    fn new() -> Counters {
        Counters {
            requests_sent: 0,
            requests_acknowledged: 0,
            requests_failed: 0,
            retries: 0,
            samples_sent: 0,
            samples_acknowledged: 0,
            responses_by_status: BTreeMap::new(),
        }
    }
}

#[derive(Debug)]
struct Windows {
    total: Counters,
    since_last_progress: Counters,
    latency_total: Histogram<u64>,
    latency_since_last_progress: Histogram<u64>,
}

/// Shared by every sender; a mutex is plenty at a few thousand requests per second.
#[derive(Debug)]
pub struct Recorder {
    windows: Mutex<Windows>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_HIGHEST_MICROS, 3).expect("valid histogram bounds")
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            windows: Mutex::new(Windows {
                total: Counters::new(),
                since_last_progress: Counters::new(),
                latency_total: latency_histogram(),
                latency_since_last_progress: latency_histogram(),
            }),
        }
    }

    fn update(&self, change: impl Fn(&mut Counters)) {
        let mut windows = self.windows.lock().expect("recorder lock");
        change(&mut windows.total);
        change(&mut windows.since_last_progress);
    }

    /// A request leaves for the first time (retries are not counted here).
    pub fn request_sent(&self, samples: u64) {
        self.update(|counters| {
            counters.requests_sent += 1;
            counters.samples_sent += samples;
        });
    }

    /// Every attempt's answer, retried or not.
    pub fn attempt(&self, outcome: AttemptOutcome) {
        let label = outcome.label();
        self.update(|counters| {
            *counters
                .responses_by_status
                .entry(label.clone())
                .or_insert(0) += 1;
        });
    }

    pub fn retry(&self) {
        self.update(|counters| counters.retries += 1);
    }

    /// The final outcome of a request and its latency (due time or first send to final answer).
    pub fn request_done(&self, acknowledged: bool, samples: u64, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let mut guard = self.windows.lock().expect("recorder lock");
        let windows = &mut *guard;
        for counters in [&mut windows.total, &mut windows.since_last_progress] {
            if acknowledged {
                counters.requests_acknowledged += 1;
                counters.samples_acknowledged += samples;
            } else {
                counters.requests_failed += 1;
            }
        }
        windows.latency_total.saturating_record(micros.max(1));
        windows
            .latency_since_last_progress
            .saturating_record(micros.max(1));
    }

    /// One progress line for the window since the previous call, which it resets.
    pub fn progress_line(
        &self,
        elapsed: Duration,
        window: Duration,
        backlog: Option<u64>,
    ) -> String {
        let mut windows = self.windows.lock().expect("recorder lock");
        let seconds = window.as_secs_f64().max(1e-9);
        let counters = &windows.since_last_progress;
        let latency = &windows.latency_since_last_progress;
        let errors: Vec<String> = counters
            .responses_by_status
            .iter()
            .filter(|(status, _)| status.as_str() != "204")
            .map(|(status, count)| format!("{status}:{count}"))
            .collect();
        let mut line = format!(
            "[{:>4.0}s] {:>10.0} samples/s acked {:>7.1} req/s  p50 {:>7.1} ms  p99 {:>7.1} ms  retries {}  errors {}",
            elapsed.as_secs_f64(),
            counters.samples_acknowledged as f64 / seconds,
            (counters.requests_acknowledged + counters.requests_failed) as f64 / seconds,
            millis(latency.value_at_quantile(0.50)),
            millis(latency.value_at_quantile(0.99)),
            counters.retries,
            if errors.is_empty() {
                "none".to_string()
            } else {
                errors.join(" ")
            },
        );
        if let Some(backlog) = backlog {
            line.push_str(&format!("  behind schedule {backlog} req"));
        }
        windows.since_last_progress = Counters::new();
        windows.latency_since_last_progress.reset();
        line
    }

    /// Totals for the summary.
    pub fn totals(&self, elapsed: Duration, requests_unsent: u64) -> RunTotals {
        let windows = self.windows.lock().expect("recorder lock");
        let counters = &windows.total;
        let latency = &windows.latency_total;
        let seconds = elapsed.as_secs_f64().max(1e-9);
        RunTotals {
            duration_seconds: elapsed.as_secs_f64(),
            samples_sent: counters.samples_sent,
            samples_acknowledged: counters.samples_acknowledged,
            samples_per_second: counters.samples_acknowledged as f64 / seconds,
            requests_sent: counters.requests_sent,
            requests_acknowledged: counters.requests_acknowledged,
            requests_failed: counters.requests_failed,
            requests_unsent,
            retries: counters.retries,
            responses_by_status: counters.responses_by_status.clone(),
            latency_ms: LatencySummary {
                p50: millis(latency.value_at_quantile(0.50)),
                p90: millis(latency.value_at_quantile(0.90)),
                p99: millis(latency.value_at_quantile(0.99)),
                p999: millis(latency.value_at_quantile(0.999)),
                max: millis(latency.max()),
                mean: latency.mean() / 1000.0,
            },
        }
    }
}

fn millis(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// Latency of requests from their due time (`--rate`) or first send (`--max`)
/// to their final answer, retries included, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct LatencySummary {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

/// What the senders did over the whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RunTotals {
    pub duration_seconds: f64,
    /// Samples in requests sent at least once (retries not counted again).
    pub samples_sent: u64,
    /// Samples in requests finally answered 204.
    pub samples_acknowledged: u64,
    /// Acknowledged samples per second of the run.
    pub samples_per_second: f64,
    pub requests_sent: u64,
    pub requests_acknowledged: u64,
    /// Requests whose final answer was not 204 (after retries, if on).
    pub requests_failed: u64,
    /// `--rate` only: requests due within the duration that were never sent
    /// because the senders fell too far behind.
    pub requests_unsent: u64,
    pub retries: u64,
    /// Every attempt's answer by status code, or `timeout` / `connection_error`.
    pub responses_by_status: BTreeMap<String, u64>,
    pub latency_ms: LatencySummary,
}

/// The settings the run was made with, echoed in the summary.
#[derive(Debug, Clone, Serialize)]
pub struct RunSettings {
    pub run_id: String,
    pub url: String,
    pub source: String,
    pub protocol: crate::payload::Protocol,
    /// `max` or `rate`.
    pub mode: String,
    pub target_samples_per_second: Option<f64>,
    pub connections: usize,
    pub requested_duration_seconds: u64,
    pub ring_requests: usize,
    pub ring_samples: u64,
    pub ring_bytes: u64,
}

/// Everything the run reports, on stdout as text and with `--json` as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub settings: RunSettings,
    pub totals: RunTotals,
    pub verify: Option<VerifyReport>,
}

impl Summary {
    pub fn to_text(&self) -> String {
        let settings = &self.settings;
        let totals = &self.totals;
        let latency = &totals.latency_ms;
        let mut text = String::new();
        let mode = match settings.target_samples_per_second {
            Some(rate) => format!("rate {rate:.0} samples/s"),
            None => "max throughput".to_string(),
        };
        text.push_str(&format!(
            "run {} — {} ({}) to {}, {}, {} connections\n",
            settings.run_id,
            settings.source,
            settings.protocol.name(),
            settings.url,
            mode,
            settings.connections
        ));
        text.push_str(&format!(
            "ring: {} requests, {} samples, {} bytes compressed\n",
            settings.ring_requests, settings.ring_samples, settings.ring_bytes
        ));
        text.push_str(&format!(
            "duration:      {:.1} s\n",
            totals.duration_seconds
        ));
        text.push_str(&format!(
            "samples:       {} sent, {} acknowledged, {:.0} acknowledged/s\n",
            totals.samples_sent, totals.samples_acknowledged, totals.samples_per_second
        ));
        text.push_str(&format!(
            "requests:      {} sent, {} acknowledged, {} failed, {} unsent, {} retries ({:.1} req/s)\n",
            totals.requests_sent,
            totals.requests_acknowledged,
            totals.requests_failed,
            totals.requests_unsent,
            totals.retries,
            totals.requests_acknowledged as f64 / totals.duration_seconds.max(1e-9)
        ));
        let statuses: Vec<String> = totals
            .responses_by_status
            .iter()
            .map(|(status, count)| format!("{status}: {count}"))
            .collect();
        text.push_str(&format!("responses:     {}\n", statuses.join(", ")));
        text.push_str(&format!(
            "latency (ms):  p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  mean {:.2}\n",
            latency.p50, latency.p90, latency.p99, latency.p999, latency.max, latency.mean
        ));
        if let Some(verify) = &self.verify {
            text.push_str(&format!(
                "verify:        {} records read ({} undecodable) from {}; samples acknowledged {}, found {}, missing {}, duplicated {}, found though unacknowledged {}, unexpected {}\n",
                verify.records_read,
                verify.records_undecodable,
                verify.topic,
                verify.counts.acknowledged,
                verify.counts.found,
                verify.counts.missing,
                verify.counts.duplicated,
                verify.counts.found_unacknowledged,
                verify.counts.unexpected,
            ));
            text.push_str(if verify.counts.missing == 0 {
                "verify:        OK, nothing acknowledged is missing\n"
            } else {
                "verify:        FAILED, acknowledged samples are missing\n"
            });
            if let Some(outputs) = &verify.outputs {
                let counts = &outputs.counts;
                text.push_str(&format!(
                    "outputs:       group {} caught up in {:.1} s (lag {}); {} records read ({} undecodable) from {} and {}\n",
                    outputs.settled.group,
                    outputs.settled.seconds,
                    outputs.settled.lag,
                    outputs.records_read,
                    outputs.records_undecodable,
                    outputs.bound_topic,
                    outputs.unbound_topic,
                ));
                text.push_str(&format!(
                    "outputs:       samples expected {}, bound {}, unbound {}, missing {}, copies {}, duplicated {}, unexpected {}\n",
                    counts.expected,
                    counts.bound,
                    counts.unbound,
                    counts.missing,
                    counts.copies,
                    counts.duplicated,
                    counts.unexpected,
                ));
                text.push_str(if outputs.passed() {
                    "outputs:       OK, every sample of the samples topic came out of the join\n"
                } else {
                    "outputs:       FAILED, samples of the samples topic did not come out of the join\n"
                });
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_count_requests_samples_and_statuses() {
        let recorder = Recorder::new();
        recorder.request_sent(100);
        recorder.attempt(AttemptOutcome::Status(503));
        recorder.retry();
        recorder.attempt(AttemptOutcome::Status(204));
        recorder.request_done(true, 100, Duration::from_millis(20));
        recorder.request_sent(50);
        recorder.attempt(AttemptOutcome::ConnectionError);
        recorder.request_done(false, 50, Duration::from_millis(40));

        let totals = recorder.totals(Duration::from_secs(2), 0);
        assert_eq!(totals.samples_sent, 150);
        assert_eq!(totals.samples_acknowledged, 100);
        assert_eq!(totals.samples_per_second, 50.0);
        assert_eq!(totals.requests_acknowledged, 1);
        assert_eq!(totals.requests_failed, 1);
        assert_eq!(totals.retries, 1);
        assert_eq!(totals.responses_by_status["503"], 1);
        assert_eq!(totals.responses_by_status["204"], 1);
        assert_eq!(totals.responses_by_status["connection_error"], 1);
        assert!((totals.latency_ms.max - 40.0).abs() < 0.1);
    }

    #[test]
    fn progress_resets_its_window_only() {
        let recorder = Recorder::new();
        recorder.request_sent(10);
        recorder.attempt(AttemptOutcome::Status(429));
        recorder.request_done(false, 10, Duration::from_millis(5));
        let line = recorder.progress_line(Duration::from_secs(1), Duration::from_secs(1), None);
        assert!(line.contains("429:1"), "{line}");
        let line = recorder.progress_line(Duration::from_secs(2), Duration::from_secs(1), Some(3));
        assert!(line.contains("errors none"), "{line}");
        assert!(line.contains("behind schedule 3"), "{line}");
        assert_eq!(
            recorder.totals(Duration::from_secs(2), 0).requests_failed,
            1
        );
    }
}
