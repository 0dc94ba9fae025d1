//! The warm pool's bookkeeping: members ready for a login, members being started, and the
//! loop that keeps their number at [`Demand`]'s target until shutdown, then removes them.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sshpod_config::PoolConfig;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{Demand, PoolStats, Skip};
use crate::{BackendError, Lifecycle};

/// How soon a start that found no free turn is tried again.
const RETRY: Duration = Duration::from_millis(200);
/// How soon a start that failed is tried again: an engine that refuses keeps refusing for a
/// while, and each failure is logged.
const FAILED_RETRY: Duration = Duration::from_secs(10);

/// How a backend makes and removes pool members.
pub trait Starter: Send + Sync + 'static {
    /// A started member, waiting for a login.
    type Member: Send + 'static;

    /// Starts one member, or returns `None` at once when no start turn is free now: a
    /// login's own start must never wait for a refill.
    fn start(&self) -> impl Future<Output = Result<Option<Self::Member>, BackendError>> + Send;

    /// Removes a member nobody claimed.
    fn remove(&self, member: Self::Member) -> impl Future<Output = ()> + Send;
}

/// Members started ahead of logins, each handed to one login. Cheap to clone.
pub struct WarmPool<S: Starter>(Arc<Inner<S>>);

impl<S: Starter> Clone for WarmPool<S> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<S: Starter> std::fmt::Debug for WarmPool<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarmPool")
            .field("stats", &self.0.stats.snapshot())
            .finish_non_exhaustive()
    }
}

struct Inner<S: Starter> {
    starter: S,
    ready: Mutex<VecDeque<S::Member>>,
    /// Starts in flight (including those waiting to try again).
    starting: Mutex<usize>,
    demand: Mutex<Demand>,
    /// Wakes the loop: a claim, a start that ended.
    wake: Notify,
    stats: Arc<PoolStats>,
}

impl<S: Starter> WarmPool<S> {
    /// Starts keeping a pool of `config`'s size with `starter`, on `lifecycle`: when it is
    /// cancelled, the members left are removed (and [`Lifecycle::wait`] waits for that).
    pub fn spawn(starter: S, config: &PoolConfig, lifecycle: &Lifecycle) -> Self {
        let pool = Self(Arc::new(Inner {
            starter,
            ready: Mutex::new(VecDeque::new()),
            starting: Mutex::new(0),
            demand: Mutex::new(Demand::new(config)),
            wake: Notify::new(),
            stats: Arc::new(PoolStats::default()),
        }));
        let keeper = pool.clone();
        let own = lifecycle.clone();
        lifecycle.spawn(async move { keeper.keep(own).await });
        pool
    }

    /// The pool's counts, for the metrics.
    pub fn stats(&self) -> Arc<PoolStats> {
        Arc::clone(&self.0.stats)
    }

    /// A ready member for a login, the oldest, or `None` when none is ready. Either way the
    /// login counts as demand; the member is the login's for good.
    pub fn claim(&self) -> Option<S::Member> {
        lock(&self.0.demand).login(Instant::now());
        let member = lock(&self.0.ready).pop_front();
        match &member {
            Some(_) => self.0.stats.claimed(),
            None => self.0.stats.skipped(Skip::Empty),
        }
        self.0.wake.notify_one();
        member
    }

    /// Counts a login that may not use the pool.
    pub fn skipped(&self, why: Skip) {
        self.0.stats.skipped(why);
    }

    /// How many members are ready now.
    pub fn ready(&self) -> usize {
        lock(&self.0.ready).len()
    }

    /// Keeps the pool at its target until cancelled, then removes the members left.
    async fn keep(self, lifecycle: Lifecycle) {
        let token = lifecycle.token().clone();
        loop {
            let now = Instant::now();
            let (target, next_change) = {
                let mut demand = lock(&self.0.demand);
                (demand.target(now), demand.next_change())
            };
            let ready = self.ready();
            let starting = *lock(&self.0.starting);
            self.0.stats.set_size(ready, target);
            if ready > target {
                // More than the demand now asks for: the oldest goes.
                let surplus = lock(&self.0.ready).pop_front();
                if let Some(member) = surplus {
                    self.0.starter.remove(member).await;
                }
                continue;
            }
            if ready + starting < target {
                *lock(&self.0.starting) += 1;
                let pool = self.clone();
                let own = lifecycle.clone();
                lifecycle.spawn(async move { pool.start_one(own).await });
                continue;
            }
            let wait = async {
                match next_change {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = token.cancelled() => break,
                () = self.0.wake.notified() => {}
                () = wait => {}
            }
        }
        // All at once: shutdown waits for the slowest, not for the sum (pods take a while).
        let left: Vec<S::Member> = lock(&self.0.ready).drain(..).collect();
        for member in left {
            let pool = self.clone();
            lifecycle.spawn(async move { pool.0.starter.remove(member).await });
        }
        self.0.stats.set_size(0, 0);
    }

    /// One start: the member joins the pool (or is removed, once the pool is stopping); no
    /// free turn or a failure waits a little before the loop tries again.
    async fn start_one(self, lifecycle: Lifecycle) {
        let started = self.0.starter.start().await;
        let pause = match started {
            Ok(Some(member)) if lifecycle.is_cancelled() => {
                self.0.starter.remove(member).await;
                None
            }
            Ok(Some(member)) => {
                lock(&self.0.ready).push_back(member);
                None
            }
            // Every turn is taken (logins first): look again soon.
            Ok(None) => Some(RETRY),
            Err(e) => {
                tracing::warn!(
                    error = &e as &dyn std::error::Error,
                    "starting a pooled container"
                );
                Some(FAILED_RETRY)
            }
        };
        if let Some(pause) = pause {
            tokio::select! {
                () = lifecycle.token().cancelled() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
        *lock(&self.0.starting) -= 1;
        self.0.wake.notify_one();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Members are numbers; `turns` start turns are free at a time.
    #[derive(Default)]
    struct Counting {
        started: AtomicUsize,
        removed: AtomicUsize,
        turns_taken: AtomicUsize,
        turns: usize,
        /// Starts that fail before any succeeds.
        failures: AtomicUsize,
    }

    impl Starter for Arc<Counting> {
        type Member = usize;

        async fn start(&self) -> Result<Option<usize>, BackendError> {
            if self.turns_taken.fetch_add(1, Ordering::SeqCst) >= self.turns {
                self.turns_taken.fetch_sub(1, Ordering::SeqCst);
                return Ok(None);
            }
            // A start takes a second.
            tokio::time::sleep(Duration::from_secs(1)).await;
            self.turns_taken.fetch_sub(1, Ordering::SeqCst);
            let failing = self.failures.load(Ordering::SeqCst);
            if failing > 0 {
                self.failures.store(failing - 1, Ordering::SeqCst);
                return Err(BackendError::StartContainer {
                    image: "guest".to_owned(),
                    reason: "refused".to_owned(),
                    source: None,
                });
            }
            Ok(Some(self.started.fetch_add(1, Ordering::SeqCst)))
        }

        async fn remove(&self, _: usize) {
            self.removed.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn config(size: u32, max: u32) -> PoolConfig {
        PoolConfig {
            size,
            max,
            demand_window: Duration::from_secs(60),
        }
    }

    /// Lets the pool's tasks run for `secs` seconds of paused time.
    async fn run_for(secs: u64) {
        for _ in 0..secs * 10 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn fills_to_size_hands_each_member_out_once_and_refills() {
        let starter = Arc::new(Counting {
            turns: 2,
            ..Counting::default()
        });
        let lifecycle = Lifecycle::new();
        let pool = WarmPool::spawn(Arc::clone(&starter), &config(3, 3), &lifecycle);
        run_for(3).await;
        assert_eq!(pool.ready(), 3, "filled, two starts at a time");
        let (a, b) = (pool.claim(), pool.claim());
        assert!(a.is_some() && b.is_some() && a != b, "{a:?} {b:?}");
        run_for(2).await;
        assert_eq!(pool.ready(), 3, "refilled");
        assert_eq!(
            starter.started.load(Ordering::SeqCst),
            5,
            "claimed members are never back"
        );
        assert_eq!(pool.stats().snapshot().claims, 2);
        lifecycle.cancel();
        lifecycle.wait().await;
        assert_eq!(
            starter.removed.load(Ordering::SeqCst),
            3,
            "the rest removed at shutdown"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_grows_the_pool_to_max_and_quiet_shrinks_it_back() {
        let starter = Arc::new(Counting {
            turns: 4,
            ..Counting::default()
        });
        let lifecycle = Lifecycle::new();
        let pool = WarmPool::spawn(Arc::clone(&starter), &config(1, 6), &lifecycle);
        run_for(2).await;
        assert_eq!(pool.ready(), 1);
        // Ten logins at once: one finds a member, nine start their own.
        let claimed = (0..10).filter(|_| pool.claim().is_some()).count();
        assert_eq!(claimed, 1);
        assert_eq!(pool.stats().snapshot().skips[0], ("empty", 9));
        run_for(3).await;
        assert_eq!(pool.ready(), 6, "grown toward the burst, up to `max`");
        assert_eq!(pool.stats().snapshot().target, 6);
        // A minute without logins: the burst leaves the window.
        run_for(61).await;
        assert_eq!(pool.ready(), 1, "back to `size`");
        assert_eq!(starter.removed.load(Ordering::SeqCst), 5);
        lifecycle.cancel();
        lifecycle.wait().await;
    }

    #[tokio::test(start_paused = true)]
    async fn no_free_turn_means_no_start_until_one_is_free() {
        let starter = Arc::new(Counting {
            turns: 0,
            ..Counting::default()
        });
        let lifecycle = Lifecycle::new();
        let pool = WarmPool::spawn(Arc::clone(&starter), &config(2, 2), &lifecycle);
        run_for(5).await;
        assert_eq!(pool.ready(), 0);
        assert_eq!(starter.started.load(Ordering::SeqCst), 0);
        lifecycle.cancel();
        lifecycle.wait().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_start_is_tried_again_later_not_at_once() {
        let starter = Arc::new(Counting {
            turns: 1,
            failures: AtomicUsize::new(1),
            ..Counting::default()
        });
        let lifecycle = Lifecycle::new();
        let pool = WarmPool::spawn(Arc::clone(&starter), &config(1, 1), &lifecycle);
        run_for(5).await;
        assert_eq!(pool.ready(), 0, "waiting before trying again");
        assert_eq!(starter.failures.load(Ordering::SeqCst), 0);
        run_for(10).await;
        assert_eq!(pool.ready(), 1, "the next try succeeded");
        lifecycle.cancel();
        lifecycle.wait().await;
    }
}
