//! The state every handler shares.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::docker::Engine;
use crate::kubelet::Kubelet;
use crate::store::Store;

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
