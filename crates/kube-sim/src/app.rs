//! The state every handler shares.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::ServiceAccountTokens;
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
    /// The tokens of service accounts (issued on create, revoked on delete).
    pub accounts: Arc<ServiceAccountTokens>,
    /// The cluster CA, published in every namespace as `kube-root-ca.crt`.
    pub ca_pem: Arc<str>,
}

impl App {
    /// Where a request's streaming helpers run: tracked, and dropped at shutdown.
    pub fn tasks(&self) -> Tasks {
        Tasks::new(self.tracker.clone(), self.shutdown.clone())
    }
}
