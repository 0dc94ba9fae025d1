//! One handle to the Docker engine, shared by every connection: the bollard client for
//! ordinary API calls and the address for hijacked streams.

use std::sync::Arc;

use bollard::Docker;
use sshpod_core::BackendError;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::hijack::{self, EngineAddress, HijackError, Hijacked};
use crate::local_streams::StreamRoot;

/// A connected, version-negotiated engine handle. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Engine {
    pub(crate) docker: Docker,
    inner: Arc<EngineInner>,
}

struct EngineInner {
    address: EngineAddress,
    /// `/v1.41` and the like: the negotiated API version, for raw requests.
    api_prefix: String,
    /// Container starts in flight (`docker.connection.maxParallelStarts`). Waiters are served
    /// in arrival order.
    starts: Semaphore,
    /// Where process streams bypass the engine; `None` for an engine on another machine.
    local_streams: Option<StreamRoot>,
}

impl Engine {
    pub(crate) fn new(
        docker: Docker,
        address: EngineAddress,
        max_parallel_starts: u32,
        local_streams: Option<StreamRoot>,
    ) -> Self {
        let v = docker.client_version();
        let api_prefix = format!("/v{}.{}", v.major_version, v.minor_version);
        Self {
            docker,
            inner: Arc::new(EngineInner {
                address,
                api_prefix,
                starts: Semaphore::new(max_parallel_starts.max(1) as usize),
                local_streams,
            }),
        }
    }

    /// Waits for a turn to start a container; hold the permit until it runs.
    pub(crate) async fn start_permit(&self) -> Result<SemaphorePermit<'_>, BackendError> {
        // The semaphore is never closed, so this cannot fail in practice.
        self.inner
            .starts
            .acquire()
            .await
            .map_err(|e| BackendError::Engine(Box::new(e)))
    }

    /// A turn to start a container if one is free and no one waits for it: the warm pool's
    /// refills take turns only so, and never delay a login's own start.
    pub(crate) fn try_start_permit(&self) -> Option<SemaphorePermit<'_>> {
        self.inner.starts.try_acquire().ok()
    }

    /// The directory for process streams that bypass the engine, while the engine sees it.
    pub(crate) fn local_streams(&self) -> Option<&StreamRoot> {
        self.inner
            .local_streams
            .as_ref()
            .filter(|root| root.usable())
    }

    /// This machine's record of which sshpod instances live, whether or not the engine sees
    /// the directory it is kept in (see `orphans.rs`).
    pub(crate) fn instance_liveness(&self) -> Option<&StreamRoot> {
        self.inner.local_streams.as_ref()
    }

    /// `POST {api}/{path}` with an upgrade; the returned stream is the process's stdio.
    pub(crate) async fn hijack(&self, path: &str, body: &str) -> Result<Hijacked, HijackError> {
        let full = format!("{}{}", self.inner.api_prefix, path);
        hijack::post_upgrade(&self.inner.address, &full, body).await
    }
}
