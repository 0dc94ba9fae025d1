//! `persistent` mode: one named pod shared by every connection and never deleted by sshpod;
//! made (once) when `createMissingPods` allows.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use sshpod_config::KubernetesConfig;
use sshpod_core::{BackendError, ConnectionContext};

use crate::handle::{Ownership, PodHandle};
use crate::requests::PodsApi;
use crate::{files, lifecycle, pod};

/// Finds the configured pod (creating it if allowed and missing) and writes the login's
/// files into it.
pub(crate) async fn claim(
    pods: PodsApi,
    config: Arc<KubernetesConfig>,
    ctx: &ConnectionContext,
) -> Result<PodHandle, BackendError> {
    let (console, image) = pod::console_of(&config.pod);
    let name = config.pod.metadata.name.clone().unwrap_or_default();
    let found = pods
        .pods()
        .get_opt(&name)
        .await
        .map_err(|e| BackendError::Engine(Box::new(e)))?;
    match found {
        Some(existing) => {
            if let pod::Progress::Failed(reason) = pod::progress(&existing, &console) {
                return Err(BackendError::StartContainer {
                    image,
                    reason,
                    source: None,
                });
            }
        }
        None if config.pod.create_missing_pods => {
            let mut spec = Pod {
                metadata: config.pod.metadata.clone(),
                spec: Some(config.pod.spec.clone()),
                status: None,
            };
            if let Some(console) = spec
                .spec
                .as_mut()
                .and_then(|s| s.containers.get_mut(config.pod.console_container_number))
            {
                console.command =
                    Some(pod::idle_command_without_lifeline(&config.pod.idle_command));
                console.args = None;
            }
            lifecycle::create_and_wait(
                &pods.pods(),
                &spec,
                (&console, &image),
                &config.timeouts,
                &ctx.progress,
            )
            .await?;
        }
        None => {
            return Err(BackendError::StartContainer {
                image,
                reason: format!("the pod `{name}` does not exist"),
                source: None,
            })
        }
    }
    let handle = PodHandle::new(
        pods,
        name,
        console,
        config,
        ctx.environment.clone(),
        Ownership::Borrowed,
    );
    files::write_all(&handle.target(), &ctx.files).await?;
    Ok(handle)
}
