//! `connection` mode: a pod of its own for each SSH connection, deleted at logout. `user`
//! mode starts its pods here too, and shares them (see `sshpod_core::per_user`).

use std::sync::Arc;

use sshpod_config::{KubernetesConfig, PodMode};
use sshpod_core::homes::Planned;
use sshpod_core::{BackendError, ConnectionContext};

use crate::handle::{Ownership, PodHandle};
use crate::pod::{self, Owner};
use crate::requests::PodsApi;
use crate::{files, identity, lifecycle};

/// Creates the connection's pod, waits until it runs, holds its lifeline where it needs one
/// and writes the login's files. On error the pod is deleted again.
pub(crate) async fn start(
    pods: PodsApi,
    config: Arc<KubernetesConfig>,
    owner: &Owner,
    ctx: &ConnectionContext,
    volumes: &[Planned],
) -> Result<PodHandle, BackendError> {
    let (console, image) = pod::console_of(&config.pod);
    let lifeline = config.pod.lifeline || owner.lease.is_none();
    let mut spec = pod::connection_pod(&config.pod, ctx, owner, lifeline);
    crate::homes::mount_into(&mut spec, volumes, config.pod.console_container_number);
    if config.pod.mode == PodMode::User {
        spec.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(
                sshpod_core::labels::USER_CONTAINER.to_owned(),
                sshpod_core::labels::label_value(&ctx.user),
            );
    }
    let name = lifecycle::create_and_wait(
        &pods.pods(),
        &spec,
        (&console, &image),
        &config.timeouts,
        &ctx.progress,
    )
    .await?;
    let handle = PodHandle::new(
        pods,
        name,
        console,
        config,
        ctx.environment.clone(),
        Ownership::Owned,
    )
    .running_as(ctx.identity.clone());
    ctx.progress.report(sshpod_core::Step::SettingUp);
    let ready = async {
        if lifeline {
            handle.hold_lifeline(&image).await?;
        }
        // The user first, so that the login's files are theirs.
        if let Some(identity) = &ctx.identity {
            identity::set_up(&handle.target(), identity).await?;
        }
        files::write_all_as(&handle.target(), &ctx.files, ctx.identity.as_ref()).await
    };
    let ready =
        lifecycle::prepared_within(handle.config().timeouts.command_start, &image, ready).await;
    if let Err(e) = ready {
        handle.close().await;
        return Err(e);
    }
    tracing::debug!(pod = %handle.name(), "pod running");
    Ok(handle)
}
