//! Creating a container from the prepared body, with errors a user can read.

use bollard::models::{ContainerCreateBody, ContainerCreateResponse};
use bollard::query_parameters::CreateContainerOptions;
use sshpod_core::{BackendError, ConnectionContext};

use crate::engine::Engine;
use crate::image;
use crate::settings::{PullPolicy, Settings};

/// Creates the container and returns its id, pulling the image first or on demand as the
/// pull policy says. Nothing exists on error.
pub(crate) async fn create(
    engine: &Engine,
    settings: &Settings,
    ctx: &ConnectionContext,
    body: ContainerCreateBody,
) -> Result<String, BackendError> {
    let name = settings.container_name(ctx);
    if settings.pull_policy == PullPolicy::Always {
        image::pull(engine, settings).await?;
    }
    let created = match create_once(engine, &name, body.clone()).await {
        Err(e) if image::is_missing_image(&e) => match settings.pull_policy {
            PullPolicy::Never => return Err(image::missing_and_not_pulled(settings)),
            PullPolicy::IfNotPresent | PullPolicy::Always => {
                image::pull(engine, settings).await?;
                create_once(engine, &name, body).await
            }
        },
        other => other,
    }
    .map_err(|e| settings.start_error_engine(e))?;
    for warning in created.warnings {
        tracing::warn!(container = %created.id, warning, "engine warning");
    }
    Ok(created.id)
}

async fn create_once(
    engine: &Engine,
    name: &str,
    body: ContainerCreateBody,
) -> Result<ContainerCreateResponse, bollard::errors::Error> {
    let options = CreateContainerOptions {
        name: Some(name.to_owned()),
        ..Default::default()
    };
    engine.docker.create_container(Some(options), body).await
}
