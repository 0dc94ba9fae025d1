//! Starting what keeps recordings: the recorder (a subscriber of the server's events) and, for
//! S3 storage, the uploader that empties the spool.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use sshpod_audit::recorder::{Audit, Notify};
use sshpod_audit::s3::{S3Store, Uploader, UploaderHandle};
use sshpod_audit::store::{DirStore, Store};
use sshpod_config::AuditStorage;
use sshpod_core::{EventSink, Lifecycle};

/// How long shutdown waits for the last recordings to be written.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What keeps the recordings while the server runs.
pub(crate) struct Recording {
    audit: Arc<Audit>,
    uploader: Option<UploaderHandle>,
    /// The uploader's own root: it outlives the server's shutdown signal, to upload the
    /// recordings of the connections that close during shutdown.
    uploads: Lifecycle,
}

impl Recording {
    /// The server's subscriber.
    pub(crate) fn sink(&self) -> Arc<dyn EventSink> {
        Arc::clone(&self.audit) as Arc<dyn EventSink>
    }

    /// How much waits to be kept: bytes queued for the recorder's writer, and with S3 the
    /// entries still in the spool. Cheap; for the metrics.
    pub(crate) fn backlog(&self) -> impl Fn() -> (u64, Option<u64>) + Send + Sync + 'static {
        let audit = Arc::clone(&self.audit);
        let uploader = self.uploader.clone();
        move || {
            (
                audit.queued_bytes(),
                uploader.as_ref().map(UploaderHandle::pending_entries),
            )
        }
    }

    /// After the server stopped, before background work is stopped: waits until the last
    /// connections' recordings are written and, with S3, uploaded. What the store does not
    /// take in time stays in the spool for the next start.
    pub(crate) async fn finish(self) {
        let audit = self.audit;
        let drained = tokio::task::spawn_blocking(move || audit.drain(DRAIN_TIMEOUT)).await;
        if !matches!(drained, Ok(true)) {
            tracing::error!(
                code = sshpod::log_codes::RECORDING_DRAIN_LATE,
                "the last recordings were not written within {DRAIN_TIMEOUT:?}"
            );
        }
        let Some(uploader) = self.uploader else {
            return;
        };
        let uploads = self.uploads;
        let scanned = uploader.stats().scans;
        uploader.notify("shutdown");
        let uploaded = uploader.wait_for(|s| s.scans > scanned && s.pending_entries == 0);
        let done = tokio::time::timeout(DRAIN_TIMEOUT, uploaded).await;
        if !matches!(done, Ok(stats) if stats.pending_entries == 0) {
            tracing::warn!(
                code = sshpod::log_codes::RECORDING_UPLOAD_PENDING,
                pending = uploader.pending_entries(),
                "recordings not uploaded yet stay in the spool; the next start uploads them"
            );
        }
        uploads.cancel();
        uploads.wait().await;
    }
}

/// The recorder for `config.audit`, if anything is to be recorded.
pub(crate) async fn start(
    config: &sshpod_config::Config,
    lifecycle: &Lifecycle,
) -> Result<Option<Recording>> {
    // The page shows what is kept, whether or not this instance records.
    if !config.audit.web.listen.is_empty() {
        sshpod::web::serve(&config.audit.web, store(config)?, lifecycle)
            .await
            .context("starting the recordings page")?;
    }
    let per_user = config.configserver.is_some();
    if !Audit::records(&config.audit, per_user) {
        return Ok(None);
    }
    // With S3, recordings are spooled and uploaded as they are written (and what an earlier run
    // left in the spool is uploaded now).
    let uploads = Lifecycle::new();
    let uploader = match config.audit.storage {
        AuditStorage::S3 => Some(
            Uploader::start(&config.audit.s3, &uploads)
                .context("starting the recording uploader")?,
        ),
        _ => None,
    };
    let notify = uploader.clone().map(|uploader| -> Notify {
        Arc::new(move |connection: &str| uploader.notify(connection))
    });
    let budget = uploader.as_ref().map(|u| u.budget().clone());
    let Some(audit) = Audit::start(&config.audit, per_user, notify, budget)
        .context("starting the session recorder")?
    else {
        return Ok(None);
    };
    tracing::info!(
        code = sshpod::log_codes::RECORDING_STARTED,
        format = ?config.audit.format,
        storage = ?config.audit.storage,
        directory = %sshpod_audit::recorder::root(&config.audit).display(),
        "recording sessions"
    );
    Ok(Some(Recording {
        audit: Arc::new(audit),
        uploader,
        uploads,
    }))
}

/// Where the recordings page reads recordings: the directory, or the bucket.
fn store(config: &sshpod_config::Config) -> Result<Arc<dyn Store>> {
    Ok(match config.audit.storage {
        AuditStorage::S3 => Arc::new(
            S3Store::new(&config.audit.s3)
                .with_context(|| format!("reading the bucket `{}`", config.audit.s3.bucket))?,
        ),
        _ => Arc::new(DirStore::new(&config.audit.file.directory)),
    })
}
