//! Helper tasks of streaming requests (WebSocket writers and readers, port-forward relays, the
//! connections of the raw engine client). They run on the process's [`TaskTracker`], so
//! shutdown can wait for them, and each is dropped when shutdown begins: a client that keeps a
//! stream open must not hold up the removal of containers and volumes.

use std::future::Future;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Where streaming helpers are spawned; cheap to clone.
#[derive(Debug, Clone)]
pub struct Tasks {
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Tasks {
    pub fn new(tracker: TaskTracker, shutdown: CancellationToken) -> Self {
        Self { tracker, shutdown }
    }

    /// Runs `task` on the tracker until it ends or shutdown begins, whichever is first.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let shutdown = self.shutdown.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = task => {}
                () = shutdown.cancelled() => {}
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shutdown_ends_tasks_and_the_tracker_sees_it() {
        let tracker = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let tasks = Tasks::new(tracker.clone(), shutdown.clone());
        let done = tasks.spawn(async {});
        done.await.unwrap();
        let _stuck = tasks.spawn(std::future::pending());
        tracker.close();
        assert_eq!(tracker.len(), 1);
        shutdown.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(5), tracker.wait())
            .await
            .unwrap();
    }
}
