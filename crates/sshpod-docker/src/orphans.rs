//! The sweep: removes containers that sshpod instances which died left behind, at start and
//! now and then after.
//!
//! A container belongs to a live instance while its main process runs: with the default idle
//! command it exits as soon as its instance's attach stream closes. So a container of another
//! instance that is no longer running is an orphan, and a running one is left alone, whichever
//! host its instance runs on. A container created and never started has no process to end:
//! another instance may be about to start it, so it is an orphan only once older than the
//! start timeout allows, unless it carries this process's seat (its host and listening
//! address, in the instance id): then the instance that made it was an earlier process in this
//! same place, which no longer listens there and starts nothing more, and a container of it
//! that is not running is an orphan at once. (A running one may still serve a session of a
//! process that is shutting down; it follows the rule above.)

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
        let earlier_life = owner.is_some_and(|owner| same_seat(owner, instance))
            && c.state != Some(State::RUNNING);
        if owner == Some(instance) || !(earlier_life || is_orphan(c.state, age, settle)) {
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

/// A new instance id: `SEAT-RANDOM`, or `RANDOM` without a seat (16 hex digits each).
pub(crate) fn instance_id(seat: Option<&str>) -> String {
    let random = hex::encode(rand::random::<[u8; 8]>());
    match seat {
        Some(seat) => format!("{seat}-{random}"),
        None => random,
    }
}

/// Whether two instance ids carry the same seat.
fn same_seat(one: &str, other: &str) -> bool {
    match (one.split_once('-'), other.split_once('-')) {
        (Some((a, _)), Some((b, _))) => a == b,
        _ => false,
    }
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
    fn only_instances_of_one_seat_share_it() {
        let earlier = instance_id(Some("0123456789abcdef"));
        let now = instance_id(Some("0123456789abcdef"));
        assert_ne!(earlier, now);
        assert!(same_seat(&earlier, &now));
        assert!(!same_seat(&instance_id(Some("fedcba9876543210")), &now));
        let unseated = instance_id(None);
        assert!(!same_seat(&unseated, &now) && !same_seat(&unseated, &instance_id(None)));
    }

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
