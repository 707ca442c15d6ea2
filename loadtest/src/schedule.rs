//! The open-loop timetable: request `k` is due at a fixed offset from the start
//! whatever happened to earlier requests, so a slow server shows up as latency
//! (measured from the due time) instead of as fewer requests (coordinated omission).

use std::time::Duration;

/// When each request of the repeating ring is due at a constant sample rate.
#[derive(Debug, Clone)]
pub struct Timetable {
    /// Samples in the ring before each of its requests.
    samples_before: Vec<u64>,
    ring_samples: u64,
    samples_per_second: f64,
}

impl Timetable {
    /// `None` when the ring holds no samples or the rate is not positive: no timetable exists.
    pub fn new(samples_per_request: &[u64], samples_per_second: f64) -> Option<Timetable> {
        let mut samples_before = Vec::with_capacity(samples_per_request.len());
        let mut running = 0u64;
        for samples in samples_per_request {
            samples_before.push(running);
            running += samples;
        }
        let rate_is_usable = samples_per_second.is_finite() && samples_per_second > 0.0;
        if running == 0 || !rate_is_usable {
            return None;
        }
        Some(Timetable {
            samples_before,
            ring_samples: running,
            samples_per_second,
        })
    }

    /// When request `k` (counting over all laps of the ring) is due, from the start.
    pub fn due(&self, k: u64) -> Duration {
        let ring_len = self.samples_before.len() as u64;
        let lap = k / ring_len;
        let position = (k % ring_len) as usize;
        let samples = lap as f64 * self.ring_samples as f64 + self.samples_before[position] as f64;
        Duration::from_secs_f64(samples / self.samples_per_second)
    }

    /// How many requests are due strictly before `elapsed`.
    pub fn due_before(&self, elapsed: Duration) -> u64 {
        // `due` is monotonic, so a binary search over k finds the boundary.
        let mut low = 0u64;
        let mut high = 1u64;
        while self.due(high) < elapsed {
            low = high;
            high *= 2;
        }
        while low < high {
            let middle = low + (high - low) / 2;
            if self.due(middle) < elapsed {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_spaced_by_their_samples() {
        // 1000 samples/s: a 500-sample request takes 0.5 s of the budget.
        let timetable = Timetable::new(&[500, 250, 250], 1000.0).unwrap();
        assert_eq!(timetable.due(0), Duration::ZERO);
        assert_eq!(timetable.due(1), Duration::from_millis(500));
        assert_eq!(timetable.due(2), Duration::from_millis(750));
        assert_eq!(timetable.due(3), Duration::from_secs(1));
        assert_eq!(timetable.due(7), Duration::from_millis(2500));
        assert_eq!(timetable.due(8), Duration::from_millis(2750));
    }

    #[test]
    fn counts_requests_due_within_a_duration() {
        let timetable = Timetable::new(&[100], 1000.0).unwrap();
        assert_eq!(timetable.due_before(Duration::ZERO), 0);
        assert_eq!(timetable.due_before(Duration::from_millis(1)), 1);
        assert_eq!(timetable.due_before(Duration::from_secs(1)), 10);
        assert_eq!(timetable.due_before(Duration::from_millis(1001)), 11);
    }

    #[test]
    fn no_timetable_without_samples_or_rate() {
        assert!(Timetable::new(&[0, 0], 1000.0).is_none());
        assert!(Timetable::new(&[10], 0.0).is_none());
        assert!(Timetable::new(&[], 10.0).is_none());
    }
}
