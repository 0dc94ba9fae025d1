//! Starting what keeps recordings: the recorder (a subscriber of the server's events) and, for
//! S3 storage, the uploader that empties the spool.

use std::sync::Arc;

use anyhow::{Context, Result};
use sshpod_audit::recorder::Audit;
use sshpod_core::{EventSink, Lifecycle};

/// The recorder for `config.audit`, if anything is to be recorded.
pub(crate) fn start(
    config: &sshpod_config::Config,
    lifecycle: &Lifecycle,
) -> Result<Option<Arc<dyn EventSink>>> {
    let _ = lifecycle;
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
    Ok(Some(Arc::new(audit)))
}
