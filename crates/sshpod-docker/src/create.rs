//! Creating a container from the prepared body, with errors a user can read, in turn with
//! the other starts (`docker.connection.maxParallelStarts`).

use bollard::models::{ContainerCreateBody, ContainerCreateResponse};
use bollard::query_parameters::CreateContainerOptions;
use sshpod_core::{BackendError, Progress, Step};
use tokio::sync::SemaphorePermit;

use crate::engine::Engine;
use crate::image;
use crate::local_streams;
use crate::settings::{PullPolicy, Settings};

/// A created container and the start slot it holds: keep the slot until the container runs.
pub(crate) struct Created<'a> {
    pub(crate) id: String,
    pub(crate) slot: SemaphorePermit<'a>,
}

/// Waits for a start slot and creates the container `name`, pulling the image first or on demand as
/// the pull policy says. Pulls happen without a slot: a slow registry must not hold up the
/// starts of images that are already there. An engine that does not see the stream directory
/// gets the container without it. Nothing exists on error.
pub(crate) async fn create<'a>(
    engine: &'a Engine,
    settings: &Settings,
    (name, body): (String, ContainerCreateBody),
    report: &Progress,
) -> Result<Created<'a>, BackendError> {
    let pulling = || Step::PullingImage {
        image: settings.image.clone(),
    };
    if settings.pull_policy == PullPolicy::Always {
        report.report(pulling());
        image::pull(engine, settings).await?;
    }
    let slot = start_slot(engine, settings, report).await?;
    let mut body = body;
    let (created, slot) = match create_once(engine, settings, &name, &mut body).await {
        Err(e) if image::is_missing_image(&e) => match settings.pull_policy {
            PullPolicy::Never => return Err(image::missing_and_not_pulled(settings)),
            PullPolicy::IfNotPresent | PullPolicy::Always => {
                drop(slot);
                report.report(pulling());
                image::pull(engine, settings).await?;
                let slot = start_slot(engine, settings, report).await?;
                (create_once(engine, settings, &name, &mut body).await, slot)
            }
        },
        other => (other, slot),
    };
    let created = created.map_err(|e| settings.start_error_engine(e))?;
    for warning in created.warnings {
        tracing::warn!(container = %created.id, warning, "engine warning");
    }
    Ok(Created {
        id: created.id,
        slot,
    })
}

/// Creates the container `name` in a start slot already held (the warm pool's). When the
/// image is missing and may be pulled, the slot is given back (a login may take it), the
/// image is pulled, and `None` says to try again. Nothing exists on error or `None`.
pub(crate) async fn create_in_slot<'a>(
    engine: &'a Engine,
    settings: &Settings,
    (name, mut body): (String, ContainerCreateBody),
    slot: SemaphorePermit<'a>,
) -> Result<Option<Created<'a>>, BackendError> {
    match create_once(engine, settings, &name, &mut body).await {
        Ok(created) => Ok(Some(Created {
            id: created.id,
            slot,
        })),
        Err(e) if image::is_missing_image(&e) => match settings.pull_policy {
            PullPolicy::Never => Err(image::missing_and_not_pulled(settings)),
            PullPolicy::IfNotPresent | PullPolicy::Always => {
                drop(slot);
                image::pull(engine, settings).await?;
                Ok(None)
            }
        },
        Err(e) => Err(settings.start_error_engine(e)),
    }
}

/// A start slot, waited for at most `containerStart` (in connection mode the whole start is
/// bounded by it too; in session mode this is what bounds the wait).
async fn start_slot<'a>(
    engine: &'a Engine,
    settings: &Settings,
    report: &Progress,
) -> Result<SemaphorePermit<'a>, BackendError> {
    report.report(Step::Queued);
    let slot = tokio::time::timeout(settings.timeouts.container_start, engine.start_permit())
        .await
        .unwrap_or_else(|_| Err(settings.start_timeout()))?;
    report.report(Step::Starting);
    Ok(slot)
}

/// One create request. An engine that does not see the stream directory refuses the
/// container; it is asked again without the directory, and local streams are off from then on.
async fn create_once(
    engine: &Engine,
    settings: &Settings,
    name: &str,
    body: &mut ContainerCreateBody,
) -> Result<ContainerCreateResponse, bollard::errors::Error> {
    let options = CreateContainerOptions {
        name: Some(name.to_owned()),
        platform: settings.platform.clone(),
    };
    match engine
        .docker
        .create_container(Some(options.clone()), body.clone())
        .await
    {
        Err(e) if local_streams::is_unseen_mount(&e, body) => {
            if let Some(root) = engine.local_streams() {
                root.mark_not_visible();
            }
            local_streams::unmount(body);
            engine
                .docker
                .create_container(Some(options), body.clone())
                .await
        }
        other => other,
    }
}
