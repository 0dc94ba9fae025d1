//! The guest pod: how it is described for a connection, and how its status reads. Pure
//! functions, no I/O.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use sshpod_config::PodConfig;
use sshpod_core::{ConnectionContext, Step};

pub(crate) use sshpod_core::labels::{
    label_value, CONNECTION as LABEL_CONNECTION, INSTANCE as LABEL_INSTANCE, USER as LABEL_USER,
};

/// Label: the Lease that tells whether the instance that made the pod still lives.
pub(crate) const LABEL_LEASE: &str = "sshpod.lease";

/// Who makes pods: an sshpod instance, and the Lease that tells others it lives (None when
/// it holds none and ties each pod to itself with a lifeline instead).
#[derive(Debug, Clone)]
pub(crate) struct Owner {
    pub(crate) instance: String,
    pub(crate) lease: Option<String>,
}

/// The pod to create for one connection: the configured metadata and spec, with sshpod's
/// labels, a name of its own, and the console container running the idle command; with a
/// `lifeline`, its stdin is what sshpod holds open (see the crate docs).
pub(crate) fn connection_pod(
    config: &PodConfig,
    ctx: &ConnectionContext,
    owner: &Owner,
    lifeline: bool,
) -> Pod {
    let idle = if lifeline {
        config.idle_command.clone()
    } else {
        idle_command_without_lifeline(&config.idle_command)
    };
    guest_pod(config, ctx, owner, None, idle, false)
}

/// The main process of a pod nobody holds a lifeline to (a persistent pod, or a connection
/// pod that its instance's Lease vouches for). The default idle command ends when its stdin
/// closes, so it is replaced by a loop that waits for ever and ends at once on SIGTERM; a
/// configured one is kept as it is.
pub(crate) fn idle_command_without_lifeline(configured: &[String]) -> Vec<String> {
    if configured == sshpod_config::DEFAULT_IDLE_COMMAND {
        vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done".to_owned(),
        ]
    } else {
        configured.to_vec()
    }
}

/// The pod for session `number` of a connection in `session` mode: `command` is the console
/// container's main process.
pub(crate) fn session_pod(
    config: &PodConfig,
    ctx: &ConnectionContext,
    owner: &Owner,
    number: usize,
    command: Vec<String>,
    tty: bool,
) -> Pod {
    guest_pod(config, ctx, owner, Some(number), command, tty)
}

fn guest_pod(
    config: &PodConfig,
    ctx: &ConnectionContext,
    owner: &Owner,
    session: Option<usize>,
    command: Vec<String>,
    tty: bool,
) -> Pod {
    let mut metadata = config.metadata.clone();
    let connection = ctx.connection_id.to_string();
    let prefix = metadata
        .generate_name
        .take()
        .unwrap_or_else(|| sshpod_config::DEFAULT_GENERATE_NAME.to_owned());
    // A name of our own (not generateName) lets a timed-out start be cleaned up by name.
    let short = &connection[..connection.len().min(12)];
    let id = match session {
        Some(n) => format!("{short}-{n}"),
        None => short.to_owned(),
    };
    metadata.name = Some(sshpod_core::labels::container_name(&prefix, &ctx.user, &id));
    let labels = metadata.labels.get_or_insert_with(BTreeMap::new);
    for (key, value) in &ctx.labels {
        labels.insert(key.clone(), label_value(value));
    }
    labels.insert(LABEL_INSTANCE.to_owned(), owner.instance.clone());
    if let Some(lease) = &owner.lease {
        labels.insert(LABEL_LEASE.to_owned(), lease.clone());
    }
    labels.insert(LABEL_CONNECTION.to_owned(), connection);
    if !ctx.annotations.is_empty() {
        metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .extend(ctx.annotations.clone());
    }
    labels.insert(LABEL_USER.to_owned(), label_value(&ctx.user));
    let mut spec = config.spec.clone();
    spec.restart_policy
        .get_or_insert_with(|| "Never".to_owned());
    if let Some(hostname) = &ctx.hostname {
        spec.hostname = Some(hostname.clone());
    }
    if let Some(identity) = &ctx.identity {
        start_as_root_to_switch(&mut spec, config.console_container_number, identity);
    }
    if let Some(console) = spec.containers.get_mut(config.console_container_number) {
        console.command = Some(command);
        console.args = None;
        console.stdin = Some(true);
        console.stdin_once = Some(true);
        console.tty = Some(tty);
        if !ctx.environment.is_empty() {
            let env = console.env.get_or_insert_with(Vec::new);
            for (name, value) in &ctx.environment {
                env.retain(|e| &e.name != name);
                env.push(EnvVar {
                    name: name.clone(),
                    value: Some(value.clone()),
                    value_from: None,
                });
            }
        }
    }
    Pod {
        metadata,
        spec: Some(spec),
        status: None,
    }
}

/// Capabilities the console keeps with `identity`: to write the user's entries and home
/// (`CHOWN`, `DAC_OVERRIDE`, `FOWNER`), to become the user (`SETUID`, `SETGID`) and to signal
/// the user's processes (`KILL`). The user's processes have none of them.
const IDENTITY_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "SETUID",
    "SETGID",
    "KILL",
];

/// With `identity`, the console starts as root, with only [`IDENTITY_CAPABILITIES`] (plus
/// `AUDIT_WRITE` and privilege escalation when `sudo` is on, which sudo needs), since the
/// exec API cannot choose a user: sshpod sets the user up as root and each process switches
/// to the user. The pod's `fsGroup` becomes the user's gid, so volumes are theirs to write.
fn start_as_root_to_switch(
    spec: &mut k8s_openapi::api::core::v1::PodSpec,
    console: usize,
    identity: &sshpod_core::Identity,
) {
    use k8s_openapi::api::core::v1::{Capabilities, PodSecurityContext, SecurityContext};
    let pod = spec
        .security_context
        .get_or_insert_with(PodSecurityContext::default);
    pod.run_as_user = Some(0);
    pod.run_as_group = Some(0);
    pod.run_as_non_root = Some(false);
    pod.fs_group = Some(i64::from(identity.gid));
    let Some(container) = spec.containers.get_mut(console) else {
        return;
    };
    let security = container
        .security_context
        .get_or_insert_with(SecurityContext::default);
    security.run_as_user = None;
    security.run_as_group = None;
    security.run_as_non_root = Some(false);
    security.privileged = Some(false);
    security.allow_privilege_escalation = Some(identity.sudo);
    let mut add: Vec<String> = IDENTITY_CAPABILITIES
        .iter()
        .map(|c| (*c).to_owned())
        .collect();
    if identity.sudo {
        add.push("AUDIT_WRITE".to_owned());
    }
    security.capabilities = Some(Capabilities {
        drop: Some(vec!["ALL".to_owned()]),
        add: Some(add),
    });
}

/// The console container's name and image.
pub(crate) fn console_of(config: &PodConfig) -> (String, String) {
    let container = config.spec.containers.get(config.console_container_number);
    (
        container.map(|c| c.name.clone()).unwrap_or_default(),
        container.and_then(|c| c.image.clone()).unwrap_or_default(),
    )
}

/// The console container's exit code, once it has terminated.
pub(crate) fn console_exit_code(pod: &Pod, console: &str) -> Option<i64> {
    let status = pod.status.as_ref()?;
    let container = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == console)?;
    let terminated = container.state.as_ref()?.terminated.as_ref()?;
    Some(i64::from(terminated.exit_code))
}

/// Whether `container` of `pod` is running: the pod is not being deleted, and the
/// container's state is `running`.
pub(crate) fn container_running(pod: &Pod, container: &str) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|all| all.iter().find(|c| c.name == container))
        .and_then(|c| c.state.as_ref())
        .is_some_and(|state| state.running.is_some())
}

/// What a starting pod waits for, as its user is told it: the scheduler's word while it has
/// no node, then its console container's waiting reason.
pub(crate) fn waiting_for(pod: &Pod, console: &str) -> Step {
    let Some(status) = &pod.status else {
        return Step::Starting;
    };
    let scheduled = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled");
    let placed = pod.spec.as_ref().is_some_and(|s| s.node_name.is_some())
        || scheduled.is_some_and(|c| c.status == "True");
    if !placed {
        let reason = scheduled
            .and_then(|c| c.message.clone().or_else(|| c.reason.clone()))
            .unwrap_or_default();
        return Step::Scheduling { reason };
    }
    let waiting = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == console)
        .and_then(|c| c.state.as_ref()?.waiting.as_ref());
    match waiting {
        Some(waiting) => {
            let reason = waiting.reason.as_deref().unwrap_or("").trim();
            let message = waiting.message.as_deref().unwrap_or("").trim();
            Step::WaitingForContainer {
                reason: match (reason.is_empty(), message.is_empty()) {
                    (_, true) => reason.to_owned(),
                    (true, false) => message.to_owned(),
                    (false, false) => format!("{reason}: {message}"),
                },
            }
        }
        None => Step::Starting,
    }
}

/// Where a starting pod stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Still being scheduled, pulled or started.
    Starting,
    /// The console container runs.
    Running,
    /// It will not start; the reason is for the user.
    Failed(String),
}

/// Reads a pod's status. Waiting reasons that do not resolve by themselves end the wait at
/// once, with Kubernetes' own words.
pub(crate) fn progress(pod: &Pod, console: &str) -> Progress {
    let Some(status) = &pod.status else {
        return Progress::Starting;
    };
    if pod.metadata.deletion_timestamp.is_some() {
        return Progress::Failed("the pod is being deleted".to_owned());
    }
    for condition in status.conditions.iter().flatten() {
        if condition.type_ == "PodScheduled"
            && condition.status == "False"
            && condition.reason.as_deref() == Some("Unschedulable")
        {
            return Progress::Failed(format!(
                "the pod cannot be scheduled: {}",
                condition.message.as_deref().unwrap_or("no node fits")
            ));
        }
    }
    let statuses = status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten());
    for container in statuses {
        let Some(state) = &container.state else {
            continue;
        };
        if let Some(waiting) = &state.waiting {
            let reason = waiting.reason.as_deref().unwrap_or("");
            if matches!(
                reason,
                "ErrImagePull"
                    | "ImagePullBackOff"
                    | "InvalidImageName"
                    | "ErrImageNeverPull"
                    | "CreateContainerConfigError"
                    | "CreateContainerError"
                    | "CrashLoopBackOff"
                    | "RunContainerError"
            ) {
                let message = waiting.message.as_deref().unwrap_or("").trim();
                return Progress::Failed(if message.is_empty() {
                    format!("container `{}`: {reason}", container.name)
                } else {
                    format!("container `{}`: {reason}: {message}", container.name)
                });
            }
        }
        if let Some(terminated) = &state.terminated {
            if container.name == console {
                return Progress::Failed(format!(
                    "container `{}` exited with code {}{}",
                    container.name,
                    terminated.exit_code,
                    terminated
                        .reason
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                ));
            }
        }
        if container.name == console && state.running.is_some() {
            return Progress::Running;
        }
    }
    match status.phase.as_deref() {
        Some("Failed") | Some("Succeeded") => Progress::Failed(format!(
            "the pod ended ({}){}",
            status.phase.as_deref().unwrap_or(""),
            status
                .message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        )),
        _ => Progress::Starting,
    }
}

/// The exit code in the Status an exec ends with: `Success` is 0; `NonZeroExitCode` carries
/// the code as the `ExitCode` cause. Anything else (the exec failed as such) is `None`.
pub(crate) fn exit_code(status: &Status) -> Option<i64> {
    if status.status.as_deref() == Some("Success") {
        return Some(0);
    }
    if status.reason.as_deref() != Some("NonZeroExitCode") {
        return None;
    }
    status
        .details
        .as_ref()?
        .causes
        .iter()
        .flatten()
        .find(|c| c.reason.as_deref() == Some("ExitCode"))?
        .message
        .as_deref()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "status": status})).unwrap()
    }

    #[test]
    fn a_container_runs_only_while_its_state_is_running_and_the_pod_is_not_being_deleted() {
        let state = |state: serde_json::Value| {
            pod(json!({"phase": "Running", "containerStatuses": [
                {"name": "shell", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
                 "state": state}]}))
        };
        let running = state(json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}}));
        assert!(container_running(&running, "shell"));
        assert!(!container_running(&running, "sidecar"));
        let terminated = state(json!({"terminated": {"exitCode": 137, "reason": "Error"}}));
        assert!(!container_running(&terminated, "shell"));
        let mut deleting = running.clone();
        deleting.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default()),
        );
        assert!(!container_running(&deleting, "shell"));
        assert!(!container_running(
            &pod(json!({"phase": "Pending"})),
            "shell"
        ));
    }

    #[test]
    fn progress_reads_running_and_failures() {
        let running = pod(json!({"phase": "Running", "containerStatuses": [
            {"name": "shell", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
             "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}));
        assert_eq!(progress(&running, "shell"), Progress::Running);
        let pulling = pod(json!({"phase": "Pending", "containerStatuses": [
            {"name": "shell", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
             "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"nope\""}}}]}));
        assert_eq!(
            progress(&pulling, "shell"),
            Progress::Failed(
                "container `shell`: ImagePullBackOff: Back-off pulling image \"nope\"".into()
            )
        );
        let creating = pod(json!({"phase": "Pending", "containerStatuses": [
            {"name": "shell", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
             "state": {"waiting": {"reason": "ContainerCreating"}}}]}));
        assert_eq!(progress(&creating, "shell"), Progress::Starting);
        let unschedulable = pod(json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
             "message": "0/3 nodes are available"}]}));
        assert!(
            matches!(progress(&unschedulable, "shell"), Progress::Failed(m) if m.contains("0/3 nodes"))
        );
    }

    #[test]
    fn a_starting_pod_says_what_it_waits_for() {
        let unplaced = pod(json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "message": "waiting for a node"}]}));
        assert_eq!(
            waiting_for(&unplaced, "shell"),
            Step::Scheduling {
                reason: "waiting for a node".into()
            }
        );
        let mounting = pod(json!({"phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [
                {"name": "sidecar", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"waiting": {"reason": "Other"}}},
                {"name": "shell", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"waiting": {"reason": "ContainerCreating", "message": "mounting"}}}]}));
        assert_eq!(
            waiting_for(&mounting, "shell"),
            Step::WaitingForContainer {
                reason: "ContainerCreating: mounting".into()
            }
        );
        assert_eq!(waiting_for(&pod(json!(null)), "shell"), Step::Starting);
    }

    #[test]
    fn exit_codes_come_from_the_status() {
        let ok: Status = serde_json::from_value(json!({"status": "Success"})).unwrap();
        assert_eq!(exit_code(&ok), Some(0));
        let three: Status = serde_json::from_value(json!({
            "status": "Failure", "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}
        }))
        .unwrap();
        assert_eq!(exit_code(&three), Some(3));
        let other: Status =
            serde_json::from_value(json!({"status": "Failure", "reason": "InternalError"}))
                .unwrap();
        assert_eq!(exit_code(&other), None);
    }

    #[test]
    fn identity_starts_the_console_as_root_with_few_capabilities_and_names_the_pod() {
        let file = "auth:\n  password:\n    method: htpasswd\n    htpasswd:\n      file: /x\n";
        let config = sshpod_config::parse_str(file, sshpod_config::Format::Yaml, "x.yaml")
            .unwrap_or_else(|e| panic!("{e}"))
            .config
            .kubernetes
            .pod;
        let mut ctx = ConnectionContext::new(
            sshpod_core::ConnectionId::random(),
            "alice".into(),
            ([127, 0, 0, 1], 22).into(),
        );
        let owner = Owner {
            instance: "i".into(),
            lease: None,
        };
        let plain = connection_pod(&config, &ctx, &owner, true);
        let plain_spec = plain.spec.unwrap_or_default();
        assert_eq!(plain_spec.hostname, None);
        let secure = plain_spec.security_context.unwrap_or_default();
        assert_eq!(
            secure.run_as_non_root,
            Some(true),
            "unchanged without identity"
        );

        let on = sshpod_config::IdentityConfig {
            enable: true,
            sudo: true,
            ..Default::default()
        };
        ctx.identity = sshpod_core::Identity::resolve(&on, "alice").unwrap_or_default();
        ctx.hostname = Some("alice-lab".into());
        let gid = ctx.identity.as_ref().map_or(0, |i| i64::from(i.gid));
        let spec = connection_pod(&config, &ctx, &owner, true)
            .spec
            .unwrap_or_default();
        assert_eq!(spec.hostname.as_deref(), Some("alice-lab"));
        let pod = spec.security_context.unwrap_or_default();
        assert_eq!(
            (pod.run_as_user, pod.run_as_non_root),
            (Some(0), Some(false))
        );
        assert_eq!(pod.fs_group, Some(gid));
        let console = spec.containers[config.console_container_number]
            .security_context
            .clone()
            .unwrap_or_default();
        assert_eq!(console.allow_privilege_escalation, Some(true));
        assert_eq!(console.privileged, Some(false));
        let caps = console.capabilities.unwrap_or_default();
        assert_eq!(caps.drop, Some(vec!["ALL".to_owned()]));
        let added = caps.add.unwrap_or_default();
        assert!(added.iter().any(|c| c == "SETUID") && added.iter().any(|c| c == "AUDIT_WRITE"));
        assert!(!added.iter().any(|c| c == "SYS_ADMIN"));
    }
}
