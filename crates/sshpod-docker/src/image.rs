//! Making sure the configured image is on the engine, as `imagePullPolicy` says.

use bollard::query_parameters::CreateImageOptions;
use futures_util::TryStreamExt;
use sshpod_core::BackendError;

use crate::engine::Engine;
use crate::settings::{PullPolicy, Settings};

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Returns once the image is present, pulling it if the policy allows; the pull is bounded
/// by `timeouts.containerStart`.
pub(crate) async fn ensure(engine: &Engine, settings: &Settings) -> Result<(), BackendError> {
    let image = settings.image.as_str();
    let unavailable =
        |source: Box<dyn std::error::Error + Send + Sync>| BackendError::ImageUnavailable {
            image: image.to_owned(),
            source,
        };
    let present = match engine.docker.inspect_image(image).await {
        Ok(_) => true,
        Err(e) if is_not_found(&e) => false,
        Err(e) => return Err(BackendError::Engine(Box::new(e))),
    };
    let pull = match settings.pull_policy {
        PullPolicy::Always => true,
        PullPolicy::IfNotPresent => !present,
        PullPolicy::Never if present => false,
        PullPolicy::Never => {
            return Err(unavailable(
                "the image is not on the engine and imagePullPolicy is Never".into(),
            ))
        }
    };
    if !pull {
        return Ok(());
    }
    tracing::info!(image, "pulling image");
    let options = CreateImageOptions {
        from_image: Some(image.to_owned()),
        ..Default::default()
    };
    let pulling = engine
        .docker
        .create_image(Some(options), None, None)
        .try_for_each(|_| async { Ok(()) });
    match tokio::time::timeout(settings.timeouts.container_start, pulling).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(unavailable(Box::new(e))),
        Err(_) => Err(unavailable("pulling the image timed out".into())),
    }
}
