//! Creating a container from the prepared body, with errors a user can read.

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::CreateContainerOptions;
use sshpod_core::{BackendError, ConnectionContext};

use crate::engine::Engine;
use crate::settings::Settings;

/// Creates the container and returns its id. Nothing exists on error.
pub(crate) async fn create(
    engine: &Engine,
    settings: &Settings,
    ctx: &ConnectionContext,
    body: ContainerCreateBody,
) -> Result<String, BackendError> {
    let name = settings.container_name(ctx);
    let options = CreateContainerOptions {
        name: Some(name),
        ..Default::default()
    };
    let created = engine
        .docker
        .create_container(Some(options), body)
        .await
        .map_err(|e| settings.start_error_engine(e))?;
    for warning in created.warnings {
        tracing::warn!(container = %created.id, warning, "engine warning");
    }
    Ok(created.id)
}
