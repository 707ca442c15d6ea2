//! What an endpoint's answer means for a request, and how long to wait
//! before trying it again: as Prometheus's own sender, 5xx, 429 and
//! connection errors are retried with a capped exponential backoff (or after
//! the Retry-After the endpoint asked for), every other answer is final.

use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: the endpoint has the series.
    Sent,
    /// 5xx or 429: try again later.
    Retry,
    /// Any other status: the endpoint will never take them; dropped and counted.
    Rejected,
}

pub fn verdict(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Sent,
        429 | 500..=599 => Verdict::Retry,
        _ => Verdict::Rejected,
    }
}

/// How long a `Retry-After` value (seconds, or an HTTP date) asks to wait.
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or_default())
}

/// Doubling waits from `min` to `max`, started over after each success.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            next: min,
        }
    }

    /// The wait before the next try: what the endpoint asked for if it did
    /// (even past `max`: it knows when it will take requests again), else
    /// the next step of the backoff.
    pub fn wait(&mut self, asked: Option<Duration>) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(self.max);
        asked.unwrap_or(step)
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_what_prometheus_does_with_them() {
        assert_eq!(verdict(204), Verdict::Sent);
        assert_eq!(verdict(200), Verdict::Sent);
        assert_eq!(verdict(500), Verdict::Retry);
        assert_eq!(verdict(503), Verdict::Retry);
        assert_eq!(verdict(429), Verdict::Retry);
        assert_eq!(verdict(400), Verdict::Rejected);
        assert_eq!(verdict(401), Verdict::Rejected);
        assert_eq!(verdict(413), Verdict::Rejected);
    }

    #[test]
    fn the_backoff_doubles_up_to_its_cap_and_starts_over() {
        let mut backoff = Backoff::new(Duration::from_millis(30), Duration::from_millis(100));
        let waits: Vec<u128> = (0..4).map(|_| backoff.wait(None).as_millis()).collect();
        assert_eq!(waits, vec![30, 60, 100, 100]);
        backoff.reset();
        assert_eq!(backoff.wait(None), Duration::from_millis(30));
        assert_eq!(
            backoff.wait(Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
    }
}
