//! Getting the configured image onto the engine, as `imagePullPolicy` says.
//!
//! With `IfNotPresent` (the default) the image is not looked up before each login: the
//! create request itself says whether it is missing, which saves an engine round trip on
//! every login, and only then is it pulled.

use bollard::query_parameters::CreateImageOptions;
use futures_util::TryStreamExt;
use sshpod_core::BackendError;

use crate::engine::Engine;
use crate::settings::Settings;

/// True for the engine's answer to creating a container from an image it does not have
/// ("No such image: ..."); other 404s of a create (a missing network, say) are not.
pub(crate) fn is_missing_image(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            message,
        } if message.to_ascii_lowercase().contains("no such image")
    )
}

/// The error for an image that is missing and may not be pulled.
pub(crate) fn missing_and_not_pulled(settings: &Settings) -> BackendError {
    BackendError::ImageUnavailable {
        image: settings.image.clone(),
        source: "the image is not on the engine and imagePullPolicy is Never".into(),
    }
}

/// Pulls the image; bounded by `timeouts.containerStart`.
pub(crate) async fn pull(engine: &Engine, settings: &Settings) -> Result<(), BackendError> {
    let image = settings.image.as_str();
    let unavailable =
        |source: Box<dyn std::error::Error + Send + Sync>| BackendError::ImageUnavailable {
            image: image.to_owned(),
            source,
        };
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
