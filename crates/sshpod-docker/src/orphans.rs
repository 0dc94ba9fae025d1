//! Start-up sweep: removes containers that sshpod instances which died left behind.
//!
//! A container belongs to a live instance while its main process runs: with the default idle
//! command it exits as soon as its instance's attach stream closes. So a container of another
//! instance that is no longer running is an orphan, and a running one is left alone, whichever
//! host its instance runs on.

use std::collections::HashMap;

use bollard::query_parameters::ListContainersOptions;
use sshpod_core::BackendError;

use crate::container::remove;
use crate::engine::Engine;
use crate::labels;

/// Removes the orphans and returns how many there were.
pub(crate) async fn remove_orphans(engine: &Engine, instance: &str) -> Result<usize, BackendError> {
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([(
            "label".to_owned(),
            vec![labels::INSTANCE.to_owned()],
        )])),
        ..Default::default()
    };
    let containers = engine
        .docker
        .list_containers(Some(options))
        .await
        .map_err(|e| BackendError::Engine(Box::new(e)))?;
    let mut removed = 0;
    for c in containers {
        let owner = c
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::INSTANCE))
            .map(String::as_str);
        let running = c.state.as_ref().map(|s| s.to_string()) == Some("running".to_owned());
        if owner == Some(instance) || running {
            continue;
        }
        if let Some(id) = c.id.as_deref() {
            tracing::info!(
                container = id,
                instance = owner,
                "removing container of a dead instance"
            );
            remove(engine, id).await;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Removes every container of one connection (used when starting it was abandoned midway).
pub(crate) async fn remove_connection(engine: &Engine, connection_id: &str) {
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([(
            "label".to_owned(),
            vec![format!("{}={connection_id}", labels::CONNECTION)],
        )])),
        ..Default::default()
    };
    if let Ok(containers) = engine.docker.list_containers(Some(options)).await {
        for id in containers.iter().filter_map(|c| c.id.as_deref()) {
            remove(engine, id).await;
        }
    }
}
