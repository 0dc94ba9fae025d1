//! The root of everything a process runs in the background: one cancellation token and one
//! task tracker, handed from `main` to the backends (and the server), so shutdown can cancel
//! all of it and wait for all of it. No task is spawned outside one.

use std::future::Future;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A cancellation token plus the tasks that should stop when it is cancelled. Cheap to
/// clone; clones share both.
///
/// A [`child`](Lifecycle::child) is cancelled with its parent (not the other way round) and
/// has a tracker of its own, whose tasks the parent's [`wait`](Lifecycle::wait) also waits
/// for: a part (a backend, the Lease) can stop and wait for its own work alone.
#[derive(Debug, Clone, Default)]
pub struct Lifecycle {
    token: CancellationToken,
    tracker: TaskTracker,
    /// The trackers of the ancestors, which count this one's tasks too.
    ancestors: Vec<TaskTracker>,
}

impl Lifecycle {
    /// A new root.
    pub fn new() -> Self {
        Self::default()
    }

    /// Spawns `future` on the current runtime, tracked here (and by every ancestor).
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let mut tokens = Vec::with_capacity(self.ancestors.len());
        for ancestor in &self.ancestors {
            tokens.push(ancestor.token());
        }
        self.tracker.spawn(async move {
            let output = future.await;
            drop(tokens);
            output
        })
    }

    /// The token that says "stop": cancelled by [`cancel`](Lifecycle::cancel) here or in an
    /// ancestor.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// A child: a child token, and a tracker of its own that this one also waits for.
    pub fn child(&self) -> Lifecycle {
        let mut ancestors = self.ancestors.clone();
        ancestors.push(self.tracker.clone());
        Lifecycle {
            token: self.token.child_token(),
            tracker: TaskTracker::new(),
            ancestors,
        }
    }

    /// How many tasks run here, counting each child's tasks too.
    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    /// True when no task runs here or in a child.
    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }

    /// Cancels the token (and so every child's).
    pub fn cancel(&self) {
        self.token.cancel();
    }

    /// True once cancelled, here or in an ancestor.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Takes no more tasks and waits until every task spawned here (and in children) ended.
    /// Does not cancel: call [`cancel`](Lifecycle::cancel) first for tasks that run until
    /// told to stop.
    pub async fn wait(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_parent_waits_for_its_childrens_tasks() {
        let root = Lifecycle::new();
        let child = root.child();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        child.spawn(async move {
            let _ = rx.await;
        });
        let waited = tokio::time::timeout(Duration::from_secs(1), root.wait()).await;
        assert!(waited.is_err(), "the child's task still runs");
        tx.send(()).unwrap();
        root.wait().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_child_waits_only_for_its_own_tasks() {
        let root = Lifecycle::new();
        let child = root.child();
        let token = root.token().clone();
        root.spawn(async move { token.cancelled().await });
        child.spawn(async {});
        child.wait().await;
        assert!(!root.is_cancelled());
        root.cancel();
        assert!(
            child.is_cancelled(),
            "cancelling the parent cancels the child"
        );
        root.wait().await;
    }

    #[tokio::test(start_paused = true)]
    async fn cancelling_a_child_leaves_the_parent() {
        let root = Lifecycle::new();
        let child = root.child();
        child.cancel();
        assert!(child.token().is_cancelled());
        assert!(!root.is_cancelled());
    }
}
