//! How long the uploader waits after the store failed: exponential, capped, jittered so that
//! many gateways sharing a store do not retry in step. Pure arithmetic, so the schedule is
//! tested without a clock.

use std::time::Duration;

/// A retry schedule: `first` after the first failure, doubling up to `max`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    first: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max: max.max(first),
        }
    }

    /// The wait after `failures` failures in a row (at least 1), with `jitter` in `[0, 1)`
    /// choosing a point between half the nominal delay and all of it.
    pub(crate) fn delay(&self, failures: u32, jitter: f64) -> Duration {
        let doublings = failures.saturating_sub(1).min(32);
        let nominal = self
            .first
            .checked_mul(1u32 << doublings.min(31))
            .unwrap_or(self.max)
            .min(self.max);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        nominal.mul_f64(0.5 + 0.5 * jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Backoff {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(60))
    }

    #[test]
    fn doubles_from_one_second_to_a_minute() {
        let nominal: Vec<u64> = (1..=9)
            .map(|n| schedule().delay(n, 1.0).as_secs())
            .collect();
        assert_eq!(nominal, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn jitter_keeps_between_half_and_all_of_the_delay() {
        assert_eq!(schedule().delay(3, 0.0), Duration::from_secs(2));
        assert_eq!(schedule().delay(3, 0.5), Duration::from_secs(3));
        assert_eq!(schedule().delay(7, 0.0), Duration::from_secs(30));
        // Out-of-range jitter is clamped, not trusted.
        assert_eq!(schedule().delay(1, 7.0), Duration::from_secs(1));
        assert_eq!(schedule().delay(1, f64::NAN), Duration::from_millis(500));
    }

    #[test]
    fn endless_failures_neither_overflow_nor_pass_the_cap() {
        for failures in [0, 1, 31, 32, 33, 1000, u32::MAX] {
            assert!(schedule().delay(failures, 1.0) <= Duration::from_secs(60));
        }
        assert_eq!(schedule().delay(0, 1.0), Duration::from_secs(1));
        assert_eq!(schedule().delay(u32::MAX, 1.0), Duration::from_secs(60));
    }
}
