//! The sweep: removes containers that sshpod instances which died left behind, at start and
//! now and then after.
//!
//! A container's owner is the instance in its `sshpod.instance` label; whether that instance
//! is alive is known, from surest to weakest:
//! - on this machine, by its stream directory's lock (`local_streams.rs`): an instance whose
//!   directory is found unlocked is dead, since the kernel drops the lock with the process.
//!   Every container of a dead instance is an orphan at once, whatever its state: one created
//!   and never started has no process that would ever end, and nobody is left to start it;
//! - by its seat (host and listening address, in the instance id): an instance of this
//!   process's seat was an earlier process in this same place, which no longer listens there
//!   and starts nothing more, so a container of it that is not running is an orphan at once.
//!   (A running one may still serve a session of a process that is shutting down.);
//! - otherwise by the container: with the default idle command it exits as soon as its
//!   instance's attach stream closes, so one of another instance that stopped is an orphan, and
//!   a running one is left alone. One created and never started may be about to be started by
//!   a live instance elsewhere: it is an orphan only once older than a start can take.
//!
//! A live instance's containers are never removed: its lock is held, its seat is not ours, and
//! its containers run or are younger than a start.

use std::collections::{HashMap, HashSet};

use bollard::models::ContainerSummaryStateEnum as State;
use bollard::query_parameters::ListContainersOptions;
use sshpod_core::{same_seat, BackendError};

use crate::container::remove;
use crate::engine::Engine;
use sshpod_core::labels;

/// Removes the orphans and returns how many there were.
///
/// `settle` is how long another instance may take to start a container it just created; a
/// container still in the created state younger than that, of an instance not known dead, is
/// left alone.
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
    let owner_of = |c: &bollard::models::ContainerSummary| {
        c.labels
            .as_ref()
            .and_then(|l| l.get(labels::INSTANCE))
            .cloned()
    };
    let owners: Vec<Option<String>> = containers.iter().map(owner_of).collect();
    let dead = match engine.instance_liveness() {
        Some(liveness) => {
            liveness.dead_among(&owners.iter().flatten().map(String::as_str).collect())
        }
        None => HashSet::new(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut removed = 0;
    for (c, owner) in containers.iter().zip(owners) {
        let Some(owner) = owner else {
            continue;
        };
        let liveness = if owner == instance {
            Liveness::This
        } else if dead.contains(&owner) {
            Liveness::Dead
        } else if same_seat(&owner, instance) {
            Liveness::EarlierLife
        } else {
            Liveness::Unknown
        };
        let age = now - c.created.unwrap_or(now);
        if !is_orphan(liveness, c.state, age, settle) {
            continue;
        }
        if let Some(id) = c.id.as_deref() {
            tracing::info!(
                container = id,
                instance = owner,
                state = c.state.map(|s| s.to_string()),
                "removing container of a dead instance"
            );
            remove(engine, id).await;
            removed += 1;
        }
    }
    Ok(removed)
}

/// What is known of a container's instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Liveness {
    /// This process.
    This,
    /// Its lock on this machine is gone: the process ended.
    Dead,
    /// An earlier process of this process's seat.
    EarlierLife,
    /// Another instance, maybe alive, maybe on another machine.
    Unknown,
}

/// Whether a container is an orphan, given what is known of its instance, its state and its
/// age (`settle`: how long a start may take, in seconds).
fn is_orphan(owner: Liveness, state: Option<State>, age_seconds: i64, settle: i64) -> bool {
    match owner {
        Liveness::This => false,
        // Already on its way out, whoever asked.
        Liveness::Dead => state != Some(State::REMOVING),
        Liveness::EarlierLife => !matches!(state, Some(State::RUNNING | State::REMOVING)),
        Liveness::Unknown => match state {
            Some(State::CREATED) => age_seconds > settle,
            Some(State::EXITED | State::DEAD) => true,
            // Running, paused, restarting: something keeps it; its instance may be alive.
            _ => false,
        },
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
    fn containers_of_an_instance_not_known_dead_are_orphans_once_stopped_or_abandoned() {
        let unknown = Liveness::Unknown;
        assert!(!is_orphan(unknown, Some(State::RUNNING), 1000, 60));
        assert!(!is_orphan(unknown, Some(State::RESTARTING), 1000, 60));
        assert!(!is_orphan(unknown, Some(State::PAUSED), 1000, 60));
        assert!(is_orphan(unknown, Some(State::EXITED), 0, 60));
        assert!(is_orphan(unknown, Some(State::DEAD), 0, 60));
        assert!(
            !is_orphan(unknown, Some(State::CREATED), 5, 60),
            "another instance is starting it"
        );
        assert!(is_orphan(unknown, Some(State::CREATED), 120, 60));
    }

    #[test]
    fn every_container_of_a_dead_instance_is_an_orphan_at_once() {
        for state in [
            State::CREATED,
            State::RUNNING,
            State::PAUSED,
            State::RESTARTING,
            State::EXITED,
            State::DEAD,
        ] {
            assert!(is_orphan(Liveness::Dead, Some(state), 0, 60), "{state}");
            assert!(!is_orphan(Liveness::This, Some(state), 1000, 60), "{state}");
        }
        assert!(!is_orphan(Liveness::Dead, Some(State::REMOVING), 0, 60));
    }

    #[test]
    fn an_earlier_lifes_containers_are_orphans_at_once_unless_running() {
        assert!(is_orphan(
            Liveness::EarlierLife,
            Some(State::CREATED),
            0,
            60
        ));
        assert!(is_orphan(Liveness::EarlierLife, Some(State::EXITED), 0, 60));
        assert!(!is_orphan(
            Liveness::EarlierLife,
            Some(State::RUNNING),
            1000,
            60
        ));
    }
}
