//! Start-up sweep: removes containers that sshpod instances which died left behind.
//!
//! A container belongs to a live instance while its main process runs: with the default idle
//! command it exits as soon as its instance's attach stream closes. So a container of another
//! instance that is no longer running is an orphan, and a running one is left alone, whichever
//! host its instance runs on.

use std::collections::HashMap;

use bollard::models::ContainerSummaryStateEnum as State;
use bollard::query_parameters::ListContainersOptions;
use sshpod_core::BackendError;

use crate::container::remove;
use crate::engine::Engine;
use sshpod_core::labels;

/// Removes the orphans and returns how many there were.
///
/// `settle` is how long another instance may take to start a container it just created; a
/// container still in the created state younger than that is left alone.
pub(crate) async fn remove_orphans(
    engine: &Engine,
    instance: &str,
    settle: std::time::Duration,
) -> Result<usize, BackendError> {
    let settle = settle.as_secs() as i64;
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
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut removed = 0;
    for c in containers {
        let owner = c
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::INSTANCE))
            .map(String::as_str);
        let age = now - c.created.unwrap_or(now);
        if owner == Some(instance) || !is_orphan(c.state, age, settle) {
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

/// Whether a container of another instance is an orphan: it stopped, or it was created and
/// never started within `settle` seconds. Running containers belong to live instances.
fn is_orphan(state: Option<State>, age_seconds: i64, settle: i64) -> bool {
    match state {
        Some(State::CREATED) => age_seconds > settle,
        Some(State::EXITED | State::DEAD) => true,
        _ => false,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stopped_or_abandoned_containers_are_orphans() {
        assert!(!is_orphan(Some(State::RUNNING), 1000, 60));
        assert!(!is_orphan(Some(State::RESTARTING), 1000, 60));
        assert!(!is_orphan(Some(State::PAUSED), 1000, 60));
        assert!(is_orphan(Some(State::EXITED), 0, 60));
        assert!(is_orphan(Some(State::DEAD), 0, 60));
        assert!(
            !is_orphan(Some(State::CREATED), 5, 60),
            "another instance is starting it"
        );
        assert!(is_orphan(Some(State::CREATED), 120, 60));
    }
}
