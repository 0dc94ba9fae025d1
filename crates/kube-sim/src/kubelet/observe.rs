//! What the engine's container inspection means for Kubernetes: running, waiting (with the
//! reason a kubelet would give), or terminated with its exit code.

use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum as S};

use super::status::{api_time, now, Observed};

/// The observed state and restart count of an inspected container.
pub fn observe(inspect: &ContainerInspectResponse) -> (Observed, i64) {
    let restarts = inspect.restart_count.unwrap_or(0);
    let Some(state) = &inspect.state else {
        return (Observed::Creating, restarts);
    };
    let time = |t: &Option<String>| t.as_deref().and_then(api_time).unwrap_or_else(now);
    let observed = match state.status {
        Some(S::RUNNING | S::PAUSED) => Observed::Running {
            started_at: time(&state.started_at),
        },
        Some(S::RESTARTING) => Observed::Waiting {
            reason: "CrashLoopBackOff".to_owned(),
            message: "back-off restarting failed container".to_owned(),
        },
        Some(S::EXITED | S::DEAD) => {
            let exit_code = state.exit_code.unwrap_or(0);
            let reason = if state.oom_killed == Some(true) {
                "OOMKilled"
            } else if exit_code == 0 {
                "Completed"
            } else {
                "Error"
            };
            Observed::Terminated {
                exit_code,
                reason: reason.to_owned(),
                started_at: time(&state.started_at),
                finished_at: time(&state.finished_at),
            }
        }
        _ => match state.error.as_deref() {
            Some(error) if !error.is_empty() => Observed::Waiting {
                reason: "RunContainerError".to_owned(),
                message: error.to_owned(),
            },
            _ => Observed::Creating,
        },
    };
    (observed, restarts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::ContainerState;

    fn inspect(state: ContainerState) -> ContainerInspectResponse {
        ContainerInspectResponse {
            state: Some(state),
            restart_count: Some(2),
            ..Default::default()
        }
    }

    #[test]
    fn maps_engine_states() {
        let (o, restarts) = observe(&inspect(ContainerState {
            status: Some(S::RUNNING),
            started_at: Some("2024-01-01T00:00:00.5Z".into()),
            ..Default::default()
        }));
        assert_eq!(
            o,
            Observed::Running {
                started_at: "2024-01-01T00:00:00Z".into()
            }
        );
        assert_eq!(restarts, 2);
        let (o, _) = observe(&inspect(ContainerState {
            status: Some(S::EXITED),
            exit_code: Some(3),
            started_at: Some("2024-01-01T00:00:00Z".into()),
            finished_at: Some("2024-01-01T00:00:01Z".into()),
            ..Default::default()
        }));
        assert!(
            matches!(o, Observed::Terminated { exit_code: 3, ref reason, .. } if reason == "Error")
        );
        let (o, _) = observe(&inspect(ContainerState {
            status: Some(S::CREATED),
            error: Some("exec: \"nope\": executable file not found".into()),
            ..Default::default()
        }));
        assert!(matches!(o, Observed::Waiting { ref reason, .. } if reason == "RunContainerError"));
    }
}
