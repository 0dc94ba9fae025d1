//! Starting what keeps recordings: the recorder (a subscriber of the server's events) and, for
//! S3 storage, the uploader that empties the spool.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use sshpod_audit::recorder::Audit;
use sshpod_audit::store::{DirStore, Store};
use sshpod_core::{EventSink, Lifecycle};

/// How long shutdown waits for the last recordings to be written.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What keeps the recordings while the server runs.
pub(crate) struct Recording {
    audit: Arc<Audit>,
}

impl Recording {
    /// The server's subscriber.
    pub(crate) fn sink(&self) -> Arc<dyn EventSink> {
        Arc::clone(&self.audit) as Arc<dyn EventSink>
    }

    /// After the server stopped: waits until the last connections' recordings are written.
    pub(crate) async fn finish(self) {
        let audit = self.audit;
        let drained = tokio::task::spawn_blocking(move || audit.drain(DRAIN_TIMEOUT)).await;
        if !matches!(drained, Ok(true)) {
            tracing::error!("the last recordings were not written within {DRAIN_TIMEOUT:?}");
        }
    }
}

/// The recorder for `config.audit`, if anything is to be recorded.
pub(crate) async fn start(
    config: &sshpod_config::Config,
    lifecycle: &Lifecycle,
) -> Result<Option<Recording>> {
    // The page shows what is kept, whether or not this instance records.
    if !config.audit.web.listen.is_empty() {
        let page = sshpod::web::serve(&config.audit.web, store(config)?, lifecycle)
            .await
            .context("starting the recordings page")?;
        tracing::info!(url = page.url(), "recordings page");
    }
    let per_user = config.configserver.is_some();
    let Some(audit) =
        Audit::start(&config.audit, per_user, None).context("starting the session recorder")?
    else {
        return Ok(None);
    };
    tracing::info!(
        format = ?config.audit.format,
        storage = ?config.audit.storage,
        directory = %sshpod_audit::recorder::root(&config.audit).display(),
        "recording sessions"
    );
    Ok(Some(Recording {
        audit: Arc::new(audit),
    }))
}

/// Where the recordings page reads recordings.
fn store(config: &sshpod_config::Config) -> Result<Arc<dyn Store>> {
    Ok(Arc::new(DirStore::new(sshpod_audit::recorder::root(
        &config.audit,
    ))))
}
