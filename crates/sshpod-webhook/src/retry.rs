//! When to try a webhook call again, and how long to wait first.
//!
//! Only failures that another attempt may fix are retried: the server could not be reached, the
//! request timed out, or it answered 5xx. A definite answer (200 with JSON, a 4xx, a malformed
//! body) is final. Waits grow exponentially and never run past the call's deadline.

use std::time::Duration;

/// Exponential backoff: `first`, then doubling, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure.
    pub first: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(200),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// The wait before attempt `attempt + 1`, after `attempt` failures (1-based), or `None` when
    /// less than that is left before the deadline (`remaining`) for a useful attempt.
    pub fn wait(&self, attempt: u32, remaining: Duration) -> Option<Duration> {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        let wait = self.first.saturating_mul(factor).min(self.max);
        (wait < remaining).then_some(wait)
    }
}

/// Whether an HTTP status is worth another attempt.
pub fn retry_status(status: u16) -> bool {
    (500..600).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let backoff = Backoff::default();
        let plenty = Duration::from_secs(60);
        let waits: Vec<u128> = (1..=7)
            .map(|n| backoff.wait(n, plenty).unwrap().as_millis())
            .collect();
        assert_eq!(waits, [200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(
            backoff.wait(200, plenty),
            Some(Duration::from_secs(5)),
            "no overflow"
        );
    }

    #[test]
    fn never_waits_past_the_deadline() {
        let backoff = Backoff::default();
        assert_eq!(backoff.wait(1, Duration::from_millis(150)), None);
        assert_eq!(
            backoff.wait(1, Duration::from_millis(250)),
            Some(Duration::from_millis(200))
        );
        assert_eq!(backoff.wait(3, Duration::from_millis(500)), None);
    }

    #[test]
    fn only_server_errors_are_retried() {
        assert!(retry_status(500));
        assert!(retry_status(503));
        for status in [200, 204, 301, 400, 401, 404, 429] {
            assert!(!retry_status(status), "{status}");
        }
    }
}
