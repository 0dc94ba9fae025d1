//! The state every handler shares.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::docker::Engine;
use crate::kubelet::Kubelet;
use crate::store::Store;
use crate::tasks::Tasks;

#[derive(Clone)]
pub struct App {
    pub store: Store,
    pub kubelet: Arc<Kubelet>,
    pub engine: Arc<Engine>,
    pub tracker: TaskTracker,
    pub shutdown: CancellationToken,
    /// How often a watch that allows bookmarks gets one.
    pub bookmark_interval: Duration,
}

impl App {
    /// Where a request's streaming helpers run: tracked, and dropped at shutdown.
    pub fn tasks(&self) -> Tasks {
        Tasks::new(self.tracker.clone(), self.shutdown.clone())
    }
}
