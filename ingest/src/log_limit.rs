//! At most one log line per key and interval, for events that can come by the
//! thousand (refused requests): the first of an interval is logged with how
//! many of the same key were held back since the last one logged, the rest
//! are only counted. Keys must come from bounded sets (tenants of the keys
//! file, closed sets of reasons), since each is remembered.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The interval the service's refusal logs use.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Whether to log an event now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogDecision {
    /// Log it, saying how many events of its key were suppressed before it.
    Log { suppressed: u64 },
    /// Another of its key was logged within the interval.
    Suppress,
}

#[derive(Debug)]
struct KeyState {
    last_logged: Instant,
    suppressed: u64,
}

/// One limiter for one kind of event; `now` is passed in, so its behaviour
/// is a function of its inputs.
#[derive(Debug)]
pub struct LogLimiter<K> {
    interval: Duration,
    keys: Mutex<HashMap<K, KeyState>>,
}

impl<K: Hash + Eq> LogLimiter<K> {
    pub fn new(interval: Duration) -> Self {
        LogLimiter {
            interval,
            keys: Mutex::new(HashMap::new()),
        }
    }

    pub fn decide(&self, key: K, now: Instant) -> LogDecision {
        let mut keys = self.keys.lock().expect("log limiter lock");
        match keys.get_mut(&key) {
            Some(state) if now.saturating_duration_since(state.last_logged) < self.interval => {
                state.suppressed += 1;
                LogDecision::Suppress
            }
            Some(state) => {
                let suppressed = std::mem::take(&mut state.suppressed);
                state.last_logged = now;
                LogDecision::Log { suppressed }
            }
            None => {
                keys.insert(
                    key,
                    KeyState {
                        last_logged: now,
                        suppressed: 0,
                    },
                );
                LogDecision::Log { suppressed: 0 }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn one_line_per_key_and_interval_then_the_count_of_what_was_held_back() {
        let limiter = LogLimiter::new(SECOND);
        let start = Instant::now();
        let at = |millis| start + Duration::from_millis(millis);
        assert_eq!(
            limiter.decide("a", at(0)),
            LogDecision::Log { suppressed: 0 }
        );
        assert_eq!(limiter.decide("a", at(1)), LogDecision::Suppress);
        assert_eq!(limiter.decide("a", at(999)), LogDecision::Suppress);
        assert_eq!(
            limiter.decide("a", at(1000)),
            LogDecision::Log { suppressed: 2 }
        );
        assert_eq!(limiter.decide("a", at(1500)), LogDecision::Suppress);
        // A quiet spell: the next one logs at once, with what was held back.
        assert_eq!(
            limiter.decide("a", at(60_000)),
            LogDecision::Log { suppressed: 1 }
        );
        assert_eq!(
            limiter.decide("a", at(61_000)),
            LogDecision::Log { suppressed: 0 }
        );
    }

    #[test]
    fn keys_are_limited_apart() {
        let limiter = LogLimiter::new(SECOND);
        let now = Instant::now();
        assert_eq!(
            limiter.decide(("acme", "rate_limited"), now),
            LogDecision::Log { suppressed: 0 }
        );
        assert_eq!(
            limiter.decide(("acme", "empty_series"), now),
            LogDecision::Log { suppressed: 0 }
        );
        assert_eq!(
            limiter.decide(("globex", "rate_limited"), now),
            LogDecision::Log { suppressed: 0 }
        );
        assert_eq!(
            limiter.decide(("acme", "rate_limited"), now),
            LogDecision::Suppress
        );
    }

    #[test]
    fn a_clock_that_steps_back_suppresses_instead_of_panicking() {
        let limiter = LogLimiter::new(SECOND);
        let now = Instant::now() + SECOND;
        limiter.decide("a", now);
        assert_eq!(limiter.decide("a", now - SECOND), LogDecision::Suppress);
    }
}
