//! Pod status from what the engine reports: container states, phase by restartPolicy, and the
//! conditions clients wait on (Ready, ContainersReady, ...). Pure functions, no I/O.

use serde_json::{json, Value};

/// What kube-sim knows about one container.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// Not created yet.
    Creating,
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        started_at: String,
    },
    Terminated {
        exit_code: i64,
        reason: String,
        started_at: String,
        finished_at: String,
    },
}

/// One container of the pod, as the status reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerView {
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub container_id: Option<String>,
    pub restarts: i64,
    pub observed: Observed,
}

/// Everything a pod status is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct PodView<'a> {
    pub containers: &'a [ContainerView],
    pub restart_policy: &'a str,
    pub created: &'a str,
    pub host_ip: &'a str,
    pub pod_ip: Option<&'a str>,
}

/// Converts an engine timestamp (`2024-01-01T10:00:00.123456789Z`) to the apiserver's
/// second-precision RFC 3339; None for the engine's zero time.
pub fn api_time(engine_time: &str) -> Option<String> {
    let parsed = chrono::DateTime::parse_from_rfc3339(engine_time).ok()?;
    let utc = parsed.with_timezone(&chrono::Utc);
    if chrono::Datelike::year(&utc) < 1970 {
        return None;
    }
    Some(utc.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// The current time in the apiserver's format.
pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Pending, Running, Succeeded or Failed.
pub fn phase(containers: &[ContainerView], restart_policy: &str) -> &'static str {
    let waiting = containers
        .iter()
        .any(|c| matches!(c.observed, Observed::Creating | Observed::Waiting { .. }));
    let started_ever = containers.iter().any(|c| c.restarts > 0);
    if waiting && !started_ever {
        return "Pending";
    }
    let exits: Option<Vec<i64>> = containers
        .iter()
        .map(|c| match c.observed {
            Observed::Terminated { exit_code, .. } => Some(exit_code),
            _ => None,
        })
        .collect();
    match (exits, restart_policy) {
        (Some(_), "Always") => "Running",
        (Some(codes), "OnFailure") if codes.iter().any(|c| *c != 0) => "Running",
        (Some(codes), _) if codes.iter().all(|c| *c == 0) => "Succeeded",
        (Some(_), _) => "Failed",
        (None, _) => "Running",
    }
}

fn container_status(c: &ContainerView) -> Value {
    let running = matches!(c.observed, Observed::Running { .. });
    let state = match &c.observed {
        Observed::Creating => json!({"waiting": {"reason": "ContainerCreating"}}),
        Observed::Waiting { reason, message } if message.is_empty() => {
            json!({"waiting": {"reason": reason}})
        }
        Observed::Waiting { reason, message } => {
            json!({"waiting": {"reason": reason, "message": message}})
        }
        Observed::Running { started_at } => json!({"running": {"startedAt": started_at}}),
        Observed::Terminated {
            exit_code,
            reason,
            started_at,
            finished_at,
        } => {
            let mut t = json!({
                "exitCode": exit_code,
                "reason": reason,
                "startedAt": started_at,
                "finishedAt": finished_at,
            });
            if let Some(id) = &c.container_id {
                t["containerID"] = json!(format!("docker://{id}"));
            }
            json!({ "terminated": t })
        }
    };
    let mut status = json!({
        "name": c.name,
        "image": c.image,
        "imageID": c.image_id,
        "ready": running,
        "started": running,
        "restartCount": c.restarts,
        "state": state,
        "lastState": {},
    });
    if let Some(id) = &c.container_id {
        status["containerID"] = json!(format!("docker://{id}"));
    }
    status
}

fn condition(kind: &str, ok: bool, reason: Option<&str>, at: &str) -> Value {
    let mut c = json!({
        "type": kind,
        "status": if ok { "True" } else { "False" },
        "lastProbeTime": null,
        "lastTransitionTime": at,
    });
    if let (false, Some(r)) = (ok, reason) {
        c["reason"] = json!(r);
    }
    c
}

/// The whole `status` object of a pod.
pub fn pod_status(view: &PodView<'_>) -> Value {
    let phase = phase(view.containers, view.restart_policy);
    let all_running = view
        .containers
        .iter()
        .all(|c| matches!(c.observed, Observed::Running { .. }));
    let not_ready = if phase == "Succeeded" || phase == "Failed" {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    let latest_start = view
        .containers
        .iter()
        .filter_map(|c| match &c.observed {
            Observed::Running { started_at } => Some(started_at.as_str()),
            _ => None,
        })
        .max()
        .unwrap_or(view.created);
    let ready_at = if all_running {
        latest_start
    } else {
        view.created
    };
    let mut status = json!({
        "phase": phase,
        "conditions": [
            condition("PodReadyToStartContainers", view.pod_ip.is_some(), None, view.created),
            condition("Initialized", true, None, view.created),
            condition("Ready", all_running, Some(not_ready), ready_at),
            condition("ContainersReady", all_running, Some(not_ready), ready_at),
            condition("PodScheduled", true, None, view.created),
        ],
        "hostIP": view.host_ip,
        "hostIPs": [{"ip": view.host_ip}],
        "startTime": view.created,
        "qosClass": "BestEffort",
        "containerStatuses": view.containers.iter().map(container_status).collect::<Vec<_>>(),
    });
    if let Some(ip) = view.pod_ip {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{ "ip": ip }]);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(observed: Observed) -> ContainerView {
        ContainerView {
            name: "c".into(),
            image: "img".into(),
            image_id: String::new(),
            container_id: Some("abc".into()),
            restarts: 0,
            observed,
        }
    }

    fn done(code: i64) -> Observed {
        Observed::Terminated {
            exit_code: code,
            reason: "Completed".into(),
            started_at: "t".into(),
            finished_at: "t".into(),
        }
    }

    #[test]
    fn phases_follow_restart_policy() {
        let running = view(Observed::Running {
            started_at: "t".into(),
        });
        assert_eq!(phase(&[view(Observed::Creating)], "Always"), "Pending");
        assert_eq!(
            phase(&[running.clone(), view(Observed::Creating)], "Always"),
            "Pending"
        );
        assert_eq!(phase(std::slice::from_ref(&running), "Never"), "Running");
        assert_eq!(phase(&[view(done(0))], "Never"), "Succeeded");
        assert_eq!(phase(&[view(done(3))], "Never"), "Failed");
        assert_eq!(phase(&[view(done(3))], "OnFailure"), "Running");
        assert_eq!(phase(&[view(done(0))], "OnFailure"), "Succeeded");
        assert_eq!(phase(&[view(done(0))], "Always"), "Running");
        assert_eq!(phase(&[running, view(done(1))], "Never"), "Running");
    }

    #[test]
    fn ready_condition_and_ips() {
        let c = [view(Observed::Running {
            started_at: "2024-01-01T00:00:01Z".into(),
        })];
        let s = pod_status(&PodView {
            containers: &c,
            restart_policy: "Always",
            created: "2024-01-01T00:00:00Z",
            host_ip: "172.17.0.1",
            pod_ip: Some("172.17.0.2"),
        });
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["conditions"][2]["type"], "Ready");
        assert_eq!(s["conditions"][2]["status"], "True");
        assert_eq!(s["podIPs"][0]["ip"], "172.17.0.2");
        assert_eq!(s["containerStatuses"][0]["containerID"], "docker://abc");
        assert_eq!(s["containerStatuses"][0]["ready"], true);
    }

    #[test]
    fn image_pull_errors_wait() {
        let c = [view(Observed::Waiting {
            reason: "ErrImagePull".into(),
            message: "m".into(),
        })];
        let s = pod_status(&PodView {
            containers: &c,
            restart_policy: "Always",
            created: "t",
            host_ip: "h",
            pod_ip: None,
        });
        assert_eq!(s["phase"], "Pending");
        assert_eq!(
            s["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ErrImagePull"
        );
        assert_eq!(s["conditions"][2]["status"], "False");
        assert!(s.get("podIP").is_none());
    }

    #[test]
    fn engine_times_become_seconds() {
        assert_eq!(
            api_time("2024-05-06T07:08:09.123456789Z").as_deref(),
            Some("2024-05-06T07:08:09Z")
        );
        assert_eq!(api_time("0001-01-01T00:00:00Z"), None);
    }
}
