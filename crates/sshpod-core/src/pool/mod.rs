//! What every backend's warm pool shares: the pool itself ([`WarmPool`], which keeps members
//! started in the background and hands each to one login), how big it should be now
//! ([`Demand`], adaptive sizing), which logins may claim a member ([`Skip`]), and its counts
//! for the metrics ([`PoolStats`]). No engine I/O here: a backend's [`Starter`] starts and
//! removes its members.

mod warm;

pub use warm::{Starter, WarmPool};

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use sshpod_config::PoolConfig;
use tokio::time::Instant;

use crate::ConnectionContext;

/// The pool's size over time: at least `size`, and as many as there were logins in the last
/// `demandWindow`, at most `max`. A class logging in at nine makes the pool grow for the rest
/// of the class; a quiet night lets it shrink back to `size`.
#[derive(Debug)]
pub struct Demand {
    size: usize,
    max: usize,
    window: std::time::Duration,
    /// When recent logins happened, oldest first; never more than `max` are kept (more say
    /// nothing more about the size).
    logins: VecDeque<Instant>,
}

impl Demand {
    /// The sizing of `config`.
    pub fn new(config: &PoolConfig) -> Self {
        Self {
            size: config.size as usize,
            max: config.max as usize,
            window: config.demand_window,
            logins: VecDeque::new(),
        }
    }

    /// Counts a login (pooled or not) at `now`.
    pub fn login(&mut self, now: Instant) {
        self.logins.push_back(now);
        while self.logins.len() > self.max {
            self.logins.pop_front();
        }
    }

    /// How many members the pool should hold at `now`.
    pub fn target(&mut self, now: Instant) -> usize {
        while let Some(oldest) = self.logins.front() {
            if now.saturating_duration_since(*oldest) < self.window {
                break;
            }
            self.logins.pop_front();
        }
        self.logins.len().clamp(self.size, self.max.max(self.size))
    }

    /// When the target may next fall by itself (the oldest counted login leaves the window).
    pub fn next_change(&self) -> Option<Instant> {
        self.logins.front().map(|oldest| *oldest + self.window)
    }
}

/// Why a login did not get a pooled container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Skip {
    /// Every member was claimed (or none had started yet).
    Empty,
    /// A config server answered for the login: its container settings may differ.
    ConfigServer,
    /// The login's container gets a hostname (`identity.hostname`).
    Hostname,
    /// A webhook gave the login labels (or annotations), which are fixed at creation.
    Labels,
}

impl Skip {
    /// Every reason, in the order the metrics list them.
    pub const ALL: [Skip; 4] = [
        Skip::Empty,
        Skip::ConfigServer,
        Skip::Hostname,
        Skip::Labels,
    ];

    /// The reason as a metrics label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::Empty => "empty",
            Skip::ConfigServer => "config_server",
            Skip::Hostname => "hostname",
            Skip::Labels => "labels",
        }
    }

    /// Whether `ctx` must skip the pool for what it carries that is fixed when a container is
    /// created (what makes every login skip, such as homes, turns the pool off). Environment, files and the
    /// identity's user are applied after the claim, so they do not make a login skip.
    pub fn for_login(ctx: &ConnectionContext) -> Option<Skip> {
        if ctx.config.is_some() {
            Some(Skip::ConfigServer)
        } else if ctx.hostname.is_some() {
            Some(Skip::Hostname)
        } else if !ctx.labels.is_empty() || !ctx.annotations.is_empty() {
            Some(Skip::Labels)
        } else {
            None
        }
    }
}

/// The pool's counts, shared between a backend (which updates them) and the metrics (which
/// read them at each scrape).
#[derive(Debug, Default)]
pub struct PoolStats {
    ready: AtomicU64,
    target: AtomicU64,
    claims: AtomicU64,
    skips: [AtomicU64; Skip::ALL.len()],
}

/// [`PoolStats`] at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSnapshot {
    /// Members started and waiting for a login.
    pub ready: u64,
    /// How many members the pool aims for now.
    pub target: u64,
    /// Logins that got a pooled member, since start.
    pub claims: u64,
    /// Logins that did not, by reason, since start.
    pub skips: Vec<(&'static str, u64)>,
}

impl PoolStats {
    /// Sets the members ready and the size aimed for.
    pub fn set_size(&self, ready: usize, target: usize) {
        self.ready.store(ready as u64, Ordering::Relaxed);
        self.target.store(target as u64, Ordering::Relaxed);
    }

    /// Counts a claim.
    pub fn claimed(&self) {
        self.claims.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a login that did not get a member.
    pub fn skipped(&self, why: Skip) {
        if let Some(count) = Skip::ALL
            .iter()
            .position(|s| *s == why)
            .and_then(|i| self.skips.get(i))
        {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counts now.
    pub fn snapshot(&self) -> PoolSnapshot {
        PoolSnapshot {
            ready: self.ready.load(Ordering::Relaxed),
            target: self.target.load(Ordering::Relaxed),
            claims: self.claims.load(Ordering::Relaxed),
            skips: Skip::ALL
                .iter()
                .zip(&self.skips)
                .map(|(s, c)| (s.as_str(), c.load(Ordering::Relaxed)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn demand(size: u32, max: u32, window_secs: u64) -> Demand {
        Demand::new(&PoolConfig {
            size,
            max,
            demand_window: Duration::from_secs(window_secs),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_grows_the_pool_up_to_max_and_quiet_shrinks_it_to_size() {
        let mut d = demand(2, 10, 60);
        assert_eq!(d.target(Instant::now()), 2, "idle: `size`");
        for _ in 0..4 {
            d.login(Instant::now());
        }
        assert_eq!(d.target(Instant::now()), 4, "toward recent logins");
        for _ in 0..30 {
            d.login(Instant::now());
        }
        assert_eq!(d.target(Instant::now()), 10, "never beyond `max`");
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(d.target(Instant::now()), 10, "still within the window");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            d.target(Instant::now()),
            2,
            "the window passed: back to `size`"
        );
        assert_eq!(d.next_change(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn logins_leave_the_window_one_by_one() {
        let mut d = demand(1, 5, 60);
        for _ in 0..3 {
            d.login(Instant::now());
            tokio::time::advance(Duration::from_secs(20)).await;
        }
        // Logins at 0s, 20s, 40s; now 60s: the first has just left.
        assert_eq!(d.target(Instant::now()), 2);
        assert_eq!(
            d.next_change(),
            Some(Instant::now() + Duration::from_secs(20))
        );
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(d.target(Instant::now()), 1);
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(d.target(Instant::now()), 1, "never below `size`");
    }

    #[tokio::test(start_paused = true)]
    async fn without_growth_the_target_is_size() {
        let mut d = demand(3, 3, 60);
        for _ in 0..50 {
            d.login(Instant::now());
        }
        assert_eq!(d.target(Instant::now()), 3);
    }

    #[test]
    fn what_is_fixed_at_creation_makes_a_login_skip() {
        let mut ctx = ConnectionContext::new(
            crate::ConnectionId::random(),
            "alice".into(),
            "127.0.0.1:1".parse().unwrap_or_else(|e| panic!("{e}")),
        );
        ctx.environment.push(("COURSE".into(), "os".into()));
        assert_eq!(Skip::for_login(&ctx), None, "env is applied per process");
        ctx.labels.insert("course".into(), "os".into());
        assert_eq!(Skip::for_login(&ctx), Some(Skip::Labels));
        ctx.hostname = Some("alice-lab".into());
        assert_eq!(Skip::for_login(&ctx), Some(Skip::Hostname));
    }

    #[test]
    fn stats_count_claims_and_skips_by_reason() {
        let stats = PoolStats::default();
        stats.set_size(3, 5);
        stats.claimed();
        stats.skipped(Skip::Empty);
        stats.skipped(Skip::Empty);
        let s = stats.snapshot();
        assert_eq!((s.ready, s.target, s.claims), (3, 5, 1));
        assert!(s.skips.contains(&("empty", 2)));
        assert!(s.skips.contains(&("labels", 0)));
    }
}
