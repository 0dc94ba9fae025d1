//! When a channel last carried data, noted where its bytes flow: one relaxed atomic store of a
//! coarse timestamp per chunk, no lock and no allocation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// A channel's last traffic, in milliseconds since the channel opened.
#[derive(Debug)]
pub(crate) struct Activity {
    opened: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    /// A clock for a channel opening now (which counts as traffic).
    pub(crate) fn new() -> Self {
        Self {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    /// Notes traffic now.
    pub(crate) fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// When the channel last carried data (or opened).
    pub(crate) fn last(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn traffic_moves_the_clock_on() {
        let activity = Activity::new();
        let opened = Instant::now();
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(activity.last(), opened, "nothing since the opening");
        activity.touch();
        assert_eq!(activity.last(), opened + Duration::from_secs(30));
    }
}
