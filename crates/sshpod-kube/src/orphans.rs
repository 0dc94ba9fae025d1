//! Removing pods that dead sshpod instances left behind, safely when several instances
//! share a namespace: only pods that ended (their lifeline closed when their instance died)
//! and pods stuck before running for longer than any start could take.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::Api;
use sshpod_core::BackendError;

use crate::lifecycle::delete;
use crate::pod::LABEL_INSTANCE;

pub(crate) async fn remove_orphans(
    pods: &Api<Pod>,
    instance: &str,
    stuck_after: Duration,
    stop: Duration,
) -> Result<usize, BackendError> {
    let params =
        ListParams::default().labels(&format!("{LABEL_INSTANCE},{LABEL_INSTANCE}!={instance}"));
    let list = pods
        .list(&params)
        .await
        .map_err(|e| BackendError::Engine(Box::new(e)))?;
    let now = k8s_openapi::jiff::Timestamp::now();
    let mut removed = 0;
    for pod in list.items {
        let Some(name) = pod.metadata.name.as_deref() else {
            continue;
        };
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let ended = matches!(phase, Some("Succeeded") | Some("Failed"));
        let stuck =
            phase == Some("Pending")
                && pod.metadata.creation_timestamp.as_ref().is_some_and(|t| {
                    now.duration_since(t.0).as_secs_f64() > stuck_after.as_secs_f64()
                });
        if ended || stuck {
            delete(pods, name, stop).await;
            removed += 1;
        }
    }
    Ok(removed)
}
