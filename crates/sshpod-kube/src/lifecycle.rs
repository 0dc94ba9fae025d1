//! Creating a guest pod, waiting until it runs, and deleting it.

use std::time::Duration;

use futures_util::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, PostParams, WatchEvent, WatchParams};
use kube::Api;
use sshpod_config::KubernetesTimeouts;
use sshpod_core::BackendError;

use crate::pod::{progress, waiting_for, Progress};

/// Creates `pod` and waits, by watching it, until its console container runs, telling
/// `report` what it waits for. On failure or timeout the pod is deleted before the error is
/// returned.
pub(crate) async fn create_and_wait(
    pods: &Api<Pod>,
    pod: &Pod,
    (console, image): (&str, &str),
    timeouts: &KubernetesTimeouts,
    report: &sshpod_core::Progress,
) -> Result<String, BackendError> {
    let timeout = timeouts.pod_start;
    let created = pods
        .create(&PostParams::default(), pod)
        .await
        .map_err(|e| start_error(image, "the pod was refused", Some(Box::new(e))))?;
    let name = created.metadata.name.clone().unwrap_or_default();
    let waited = tokio::time::timeout(timeout, wait_running(pods, &created, console, report)).await;
    let failure = match waited {
        Ok(Ok(())) => return Ok(name),
        Ok(Err(NotRunning::Failed(reason))) => BackendError::StartContainer {
            image: image.to_owned(),
            reason,
            source: None,
        },
        Ok(Err(NotRunning::Deleted)) => start_error(image, "the pod was deleted", None),
        Ok(Err(NotRunning::Watch(e))) => {
            start_error(image, "watching the pod failed", Some(Box::new(e)))
        }
        Ok(Err(NotRunning::WatchEvent(e))) => {
            start_error(image, "watching the pod failed", Some(e))
        }
        Err(_) => BackendError::StartTimeout {
            image: image.to_owned(),
            seconds: timeout.as_secs(),
        },
    };
    delete(pods, &name, timeouts.pod_stop).await;
    Err(failure)
}

/// Why a pod that was created did not come to run (each becomes a
/// [`BackendError::StartContainer`], with the API server's answer as the cause).
#[derive(Debug)]
enum NotRunning {
    /// The pod's status says it cannot start (an image that cannot be pulled, say); the
    /// reason is the status's, fit for the user.
    Failed(String),
    /// Someone deleted the pod while it started.
    Deleted,
    /// The watch request failed.
    Watch(kube::Error),
    /// The watch reported an error event.
    WatchEvent(Box<dyn std::error::Error + Send + Sync>),
}

/// Watches one pod from the version `created` has until it runs or cannot start.
async fn wait_running(
    pods: &Api<Pod>,
    created: &Pod,
    console: &str,
    report: &sshpod_core::Progress,
) -> Result<(), NotRunning> {
    match progress(created, console) {
        Progress::Running => return Ok(()),
        Progress::Failed(reason) => return Err(NotRunning::Failed(reason)),
        Progress::Starting => report.report(waiting_for(created, console)),
    }
    let name = created.metadata.name.clone().unwrap_or_default();
    let mut version = created
        .metadata
        .resource_version
        .clone()
        .unwrap_or_else(|| "0".to_owned());
    loop {
        let params = WatchParams::default()
            .fields(&format!("metadata.name={name}"))
            .timeout(290);
        let stream = pods
            .watch(&params, &version)
            .await
            .map_err(NotRunning::Watch)?;
        let mut stream = stream.boxed();
        while let Some(event) = stream.try_next().await.map_err(NotRunning::Watch)? {
            match event {
                WatchEvent::Added(pod) | WatchEvent::Modified(pod) => {
                    if let Some(v) = &pod.metadata.resource_version {
                        version.clone_from(v);
                    }
                    match progress(&pod, console) {
                        Progress::Running => return Ok(()),
                        Progress::Failed(reason) => return Err(NotRunning::Failed(reason)),
                        Progress::Starting => report.report(waiting_for(&pod, console)),
                    }
                }
                WatchEvent::Deleted(_) => return Err(NotRunning::Deleted),
                WatchEvent::Bookmark(b) => version = b.metadata.resource_version,
                WatchEvent::Error(e) => return Err(NotRunning::WatchEvent(e.message.into())),
            }
        }
        // The server ended the watch (its timeout); go on from the last version seen.
    }
}

/// Runs `prepare` (the attach and file writes after a pod runs) within `limit`
/// (`timeouts.commandStart`): an API server that accepts them but never answers must not hold
/// a login or a session, and its pod, for ever.
pub(crate) async fn prepared_within<T>(
    limit: Duration,
    image: &str,
    prepare: impl std::future::Future<Output = Result<T, BackendError>>,
) -> Result<T, BackendError> {
    tokio::time::timeout(limit, prepare)
        .await
        .unwrap_or_else(|_| {
            Err(start_error(
                image,
                "the pod ran but could not be prepared in time",
                None,
            ))
        })
}

/// Deletes a pod, without waiting for it to go, and returns how many requests that took. A
/// pod that is already gone is no error. An API server that fails (unreachable, overloaded,
/// 5xx) is asked again with a growing pause, up to 10 s, for as long as `within`
/// (`timeouts.podStop`) allows; a refusal (403, ...) is final.
pub(crate) async fn delete(pods: &Api<Pod>, name: &str, within: Duration) -> usize {
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    let deadline = tokio::time::Instant::now() + within;
    let mut pause = Duration::from_millis(500);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let error = match pods.delete(name, &params).await {
            Ok(_) => {
                tracing::debug!(pod = name, "pod deleted");
                return attempts;
            }
            Err(kube::Error::Api(e)) if e.code == 404 => return attempts,
            Err(e) => e,
        };
        let retry = is_transient(&error) && tokio::time::Instant::now() + pause <= deadline;
        tracing::warn!(
            pod = name,
            error = &error as &dyn std::error::Error,
            retry,
            "could not delete the pod"
        );
        if !retry {
            return attempts;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

/// Failures worth another try: the API server was not reached, or was not able to answer.
fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        _ => true,
    }
}

/// A start failure: `reason` for the user, the API server's answer (if any) as the cause.
pub(crate) fn start_error(
    image: &str,
    reason: &str,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
) -> BackendError {
    BackendError::StartContainer {
        image: image.to_owned(),
        reason: reason.to_owned(),
        source,
    }
}

/// The API server's own message for an API error, else the error.
pub(crate) fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}
