//! `mode: user`: one container per user, shared by all their connections and kept for a grace
//! period after the last one ends, so that a reconnect finds it with its processes still
//! running. Backend-neutral: a backend gives what it shares ([`Shared`]) and claims it per
//! connection through [`PerUser`].
//!
//! The rules, per login:
//! - the first claim starts the value; claims made while it starts wait for it (one start per
//!   user, never two containers racing for one home);
//! - later claims share it, unless it died (then it is retired and a new one started);
//! - when the last claim is released, a timer of `grace` starts; a claim before it fires keeps
//!   the value, otherwise the value is retired (its container removed; volumes stay);
//! - when the lifecycle is cancelled (shutdown), values no longer claimed are retired at once
//!   and the backend's `shutdown` waits for it.

use std::collections::HashMap;
use std::future::Future;
use std::ops::Deref;
use std::sync::{Arc, Mutex as SyncMutex, PoisonError};
use std::time::Duration;

use tokio::sync::Mutex;

use crate::Lifecycle;

/// What a backend shares among one user's connections (its container).
pub trait Shared: Send + Sync + 'static {
    /// Whether it still works (its container still runs), checked before it is shared again.
    fn is_alive(&self) -> impl Future<Output = bool> + Send;
    /// Gives it up for good (removes the container). Called once.
    fn retire(&self) -> impl Future<Output = ()> + Send;
}

/// The shared values of every user, with their grace timers. Cheap to clone.
pub struct PerUser<T> {
    slots: Arc<SyncMutex<HashMap<String, Arc<Slot<T>>>>>,
    grace: Duration,
    lifecycle: Lifecycle,
}

impl<T> Clone for PerUser<T> {
    fn clone(&self) -> Self {
        Self {
            slots: Arc::clone(&self.slots),
            grace: self.grace,
            lifecycle: self.lifecycle.clone(),
        }
    }
}

impl<T> std::fmt::Debug for PerUser<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerUser")
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

/// One user's place: their value, if any, and who holds it.
struct Slot<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    value: Option<Arc<T>>,
    /// Claims of the current value not yet released.
    holders: usize,
    /// Counts values started here, so that a claim of a value since replaced releases nothing.
    epoch: u64,
    /// Changes whenever the value is claimed or released: a grace timer retires the value
    /// only if nothing happened since it was set.
    generation: u64,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                value: None,
                holders: 0,
                epoch: 0,
                generation: 0,
            }),
        }
    }
}

/// One connection's share of its user's value; give it back with [`Claim::release`].
pub struct Claim<T> {
    value: Arc<T>,
    user: String,
    epoch: u64,
    slot: Arc<Slot<T>>,
    owner: PerUser<T>,
}

impl<T> Deref for Claim<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: Shared> PerUser<T> {
    /// A registry whose values outlive their last claim by `grace`; timers and retirements
    /// run on `lifecycle`.
    pub fn new(grace: Duration, lifecycle: Lifecycle) -> Self {
        Self {
            slots: Arc::default(),
            grace,
            lifecycle,
        }
    }

    /// The value of `user`, shared, or started by `start` when there is none (or it died).
    /// An error of `start` is returned and leaves nothing behind here.
    pub async fn claim<F, Fut, E>(&self, user: &str, start: F) -> Result<Claim<T>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let slot = Arc::clone(
            self.slots
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(user.to_owned())
                .or_default(),
        );
        // Held while starting: a second connection of the user waits for the first's start.
        let mut state = slot.state.lock().await;
        state.generation += 1;
        if let Some(value) = state.value.clone() {
            if value.is_alive().await {
                state.holders += 1;
                return Ok(self.claim_of(user, value, state.epoch, &slot));
            }
            state.value = None;
            state.holders = 0;
            value.retire().await;
        }
        let value = Arc::new(start().await?);
        state.epoch += 1;
        state.value = Some(Arc::clone(&value));
        state.holders = 1;
        Ok(self.claim_of(user, value, state.epoch, &slot))
    }

    fn claim_of(&self, user: &str, value: Arc<T>, epoch: u64, slot: &Arc<Slot<T>>) -> Claim<T> {
        Claim {
            value,
            user: user.to_owned(),
            epoch,
            slot: Arc::clone(slot),
            owner: self.clone(),
        }
    }

    /// How many users have a value now (running or in their grace period).
    pub async fn len(&self) -> usize {
        let slots: Vec<_> = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        let mut count = 0;
        for slot in slots {
            count += usize::from(slot.state.lock().await.value.is_some());
        }
        count
    }

    /// True when no user has a value.
    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }
}

impl<T> Claim<T> {
    /// The shared value.
    pub fn value(&self) -> &Arc<T> {
        &self.value
    }
}

impl<T: Shared> Claim<T> {
    /// Gives the share back; the last one starts the grace timer.
    pub async fn release(self) {
        let mut state = self.slot.state.lock().await;
        if state.epoch != self.epoch || state.value.is_none() {
            return;
        }
        state.holders = state.holders.saturating_sub(1);
        if state.holders > 0 {
            return;
        }
        state.generation += 1;
        let generation = state.generation;
        drop(state);
        let Claim {
            user, slot, owner, ..
        } = self;
        let token = owner.lifecycle.token().clone();
        // From now, not from when the task first runs.
        let deadline = tokio::time::Instant::now() + owner.grace;
        let grace = owner.grace;
        owner.lifecycle.clone().spawn(async move {
            if !grace.is_zero() {
                tokio::select! {
                    () = token.cancelled() => {}
                    () = tokio::time::sleep_until(deadline) => {}
                }
            }
            let mut state = slot.state.lock().await;
            if state.generation != generation || state.holders > 0 {
                return;
            }
            // Retired with the slot locked: a new claim waits until the old container is
            // gone (its volumes are free again).
            if let Some(value) = state.value.take() {
                value.retire().await;
            }
            drop(state);
            owner.forget(&user, &slot);
        });
    }
}

impl<T> PerUser<T> {
    /// Drops an empty slot from the map unless someone else holds it, so the map holds only
    /// users with a value (or a claim under way).
    fn forget(&self, user: &str, slot: &Arc<Slot<T>>) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        // The map's reference plus the caller's: nobody else can be claiming through it, and
        // nobody can get it from the map while we hold the map's lock.
        let unused = Arc::strong_count(slot) == 2
            && slot
                .state
                .try_lock()
                .is_ok_and(|state| state.value.is_none());
        if unused && slots.get(user).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            slots.remove(user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    #[derive(Default)]
    struct Counters {
        started: AtomicUsize,
        retired: AtomicUsize,
    }

    struct Fake {
        number: usize,
        alive: AtomicBool,
        counters: Arc<Counters>,
    }

    impl Shared for Fake {
        async fn is_alive(&self) -> bool {
            self.alive.load(Ordering::SeqCst)
        }
        async fn retire(&self) {
            self.counters.retired.fetch_add(1, Ordering::SeqCst);
        }
    }

    const GRACE: Duration = Duration::from_secs(60);

    async fn claim(users: &PerUser<Fake>, counters: &Arc<Counters>) -> Claim<Fake> {
        let counters = Arc::clone(counters);
        let claimed = users
            .claim("alice", || async move {
                let number = counters.started.fetch_add(1, Ordering::SeqCst);
                Ok::<_, ()>(Fake {
                    number,
                    alive: AtomicBool::new(true),
                    counters,
                })
            })
            .await;
        claimed.unwrap_or_else(|()| panic!("start failed"))
    }

    fn retired(counters: &Counters) -> usize {
        counters.retired.load(Ordering::SeqCst)
    }

    /// Lets spawned timers run up to `by` of paused time.
    async fn advance(by: Duration) {
        tokio::time::advance(by).await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn connections_of_a_user_share_one_value_that_outlives_them_by_the_grace_period() {
        let counters = Arc::new(Counters::default());
        let users = PerUser::new(GRACE, Lifecycle::new());
        let first = claim(&users, &counters).await;
        let second = claim(&users, &counters).await;
        assert_eq!((first.number, second.number), (0, 0), "one value, shared");
        first.release().await;
        advance(GRACE * 2).await;
        assert_eq!(
            retired(&counters),
            0,
            "still claimed by the second connection"
        );
        second.release().await;
        advance(GRACE - Duration::from_secs(1)).await;
        assert_eq!(retired(&counters), 0, "within the grace period");
        assert_eq!(users.len().await, 1);
        advance(Duration::from_secs(2)).await;
        assert_eq!(
            retired(&counters),
            1,
            "retired once the grace period is over"
        );
        assert!(users.is_empty().await);
        let third = claim(&users, &counters).await;
        assert_eq!(third.number, 1, "a new value after retirement");
    }

    #[tokio::test(start_paused = true)]
    async fn a_reconnect_within_the_grace_period_keeps_the_value() {
        let counters = Arc::new(Counters::default());
        let users = PerUser::new(GRACE, Lifecycle::new());
        claim(&users, &counters).await.release().await;
        advance(GRACE / 2).await;
        let again = claim(&users, &counters).await;
        assert_eq!(again.number, 0, "the same value");
        advance(GRACE * 2).await;
        assert_eq!(
            retired(&counters),
            0,
            "the old timer does not retire a claimed value"
        );
        again.release().await;
        advance(GRACE + Duration::from_secs(1)).await;
        assert_eq!(retired(&counters), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dead_value_is_replaced_and_its_old_claims_release_nothing() {
        let counters = Arc::new(Counters::default());
        let users = PerUser::new(GRACE, Lifecycle::new());
        let old = claim(&users, &counters).await;
        old.alive.store(false, Ordering::SeqCst);
        let new = claim(&users, &counters).await;
        assert_eq!(new.number, 1);
        assert_eq!(retired(&counters), 1, "the dead one is cleaned up");
        old.release().await;
        advance(GRACE * 2).await;
        assert_eq!(retired(&counters), 1, "the new value is still claimed");
        new.release().await;
        advance(GRACE * 2).await;
        assert_eq!(retired(&counters), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_retires_unclaimed_values_at_once() {
        let counters = Arc::new(Counters::default());
        let lifecycle = Lifecycle::new();
        let users = PerUser::new(GRACE, lifecycle.clone());
        claim(&users, &counters).await.release().await;
        lifecycle.cancel();
        lifecycle.wait().await;
        assert_eq!(retired(&counters), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_start_leaves_nothing_and_the_next_claim_starts_again() {
        let counters = Arc::new(Counters::default());
        let users: PerUser<Fake> = PerUser::new(GRACE, Lifecycle::new());
        let failed = users
            .claim("alice", || async { Err::<Fake, _>("no engine") })
            .await;
        assert!(matches!(failed, Err("no engine")));
        assert!(users.is_empty().await);
        assert_eq!(claim(&users, &counters).await.number, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn without_grace_the_last_release_retires_at_once() {
        let counters = Arc::new(Counters::default());
        let lifecycle = Lifecycle::new();
        let users = PerUser::new(Duration::ZERO, lifecycle.clone());
        claim(&users, &counters).await.release().await;
        advance(Duration::ZERO).await;
        assert_eq!(retired(&counters), 1);
    }
}
