//! The Docker backend's view of the configuration: what every container of this process is
//! made from, resolved once at start-up.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bollard::models::{ContainerCreateBody, EndpointSettings, HostConfig, NetworkingConfig};
use sshpod_config::{DockerConfig, ExecutionMode, ImagePullPolicy};
use sshpod_core::{
    labels, BackendError, Command, CommandPolicy, CommandTable, ConnectionContext, TtySpec,
};

pub(crate) use sshpod_config::ImagePullPolicy as PullPolicy;

/// Timeouts that bound engine operations.
#[derive(Debug, Clone)]
pub(crate) struct Timeouts {
    pub(crate) container_start: Duration,
    /// Bounds helper commands (signals) and reading an exit status.
    pub(crate) command_start: Duration,
}

/// Resolved Docker settings.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) image: String,
    pub(crate) pull_policy: ImagePullPolicy,
    pub(crate) mode: ExecutionMode,
    pub(crate) idle_command: Vec<String>,
    pub(crate) shell_command: Vec<String>,
    pub(crate) subsystems: BTreeMap<String, String>,
    pub(crate) timeouts: Timeouts,
    container_name: String,
    /// The create body before per-connection parts (command, labels, I/O flags).
    template: ContainerCreateBody,
}

impl Settings {
    pub(crate) fn from_config(config: &DockerConfig) -> Self {
        let exec = &config.execution;
        let c = &exec.container;
        let h = &exec.host;
        let r = &h.resources;
        let host_config = HostConfig {
            binds: non_empty(&h.binds),
            network_mode: h.network_mode.clone(),
            privileged: Some(h.privileged),
            readonly_rootfs: Some(h.readonly_rootfs),
            cap_add: non_empty(&h.cap_add),
            cap_drop: non_empty(&h.cap_drop),
            security_opt: non_empty(&h.security_opt),
            tmpfs: (!h.tmpfs.is_empty()).then(|| {
                h.tmpfs
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            }),
            dns: non_empty(&h.dns),
            extra_hosts: non_empty(&h.extra_hosts),
            init: h.init,
            shm_size: h.shm_size,
            userns_mode: h.userns_mode.clone(),
            runtime: h.runtime.clone(),
            memory: r.memory,
            memory_swap: r.memory_swap,
            nano_cpus: r.nano_cpus,
            cpu_shares: r.cpu_shares,
            cpu_quota: r.cpu_quota,
            cpu_period: r.cpu_period,
            cpuset_cpus: r.cpuset_cpus.clone(),
            pids_limit: r.pids_limit,
            ..Default::default()
        };
        let networking = (!exec.network.endpoints_config.is_empty()).then(|| NetworkingConfig {
            endpoints_config: Some(
                exec.network
                    .endpoints_config
                    .iter()
                    .filter_map(|(name, v)| {
                        serde_json::from_value::<EndpointSettings>(v.clone())
                            .ok()
                            .map(|s| (name.clone(), s))
                    })
                    .collect::<HashMap<_, _>>(),
            ),
        });
        let template = ContainerCreateBody {
            image: Some(c.image.clone()),
            env: non_empty(&c.env),
            entrypoint: c.entrypoint.clone(),
            user: c.user.clone(),
            working_dir: c.working_dir.clone(),
            hostname: c.hostname.clone(),
            domainname: c.domainname.clone(),
            network_disabled: Some(c.network_disabled),
            stop_signal: c.stop_signal.clone(),
            stop_timeout: c.stop_timeout,
            labels: Some(
                c.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            host_config: Some(host_config),
            networking_config: networking,
            ..Default::default()
        };
        Self {
            image: c.image.clone(),
            pull_policy: exec.image_pull_policy,
            mode: exec.mode,
            idle_command: exec.idle_command.clone(),
            shell_command: exec.shell_command.clone(),
            subsystems: exec.subsystems.clone(),
            timeouts: Timeouts {
                container_start: config.timeouts.container_start,
                command_start: config.timeouts.command_start,
            },
            container_name: exec.containername.clone(),
            template,
        }
    }

    /// The create body for one container. `tty` is set in session mode, where the session's
    /// program is the main process; `None` means a connection container running `cmd` idle.
    pub(crate) fn container_body(
        &self,
        ctx: &ConnectionContext,
        instance: &str,
        cmd: Vec<String>,
        tty: Option<&TtySpec>,
    ) -> ContainerCreateBody {
        let mut body = self.template.clone();
        let labels = body.labels.get_or_insert_with(HashMap::new);
        labels.insert(labels::INSTANCE.to_owned(), instance.to_owned());
        labels.insert(labels::CONNECTION.to_owned(), ctx.connection_id.to_string());
        labels.insert(labels::USER.to_owned(), ctx.user.clone());
        for (key, value) in &ctx.labels {
            labels.entry(key.clone()).or_insert_with(|| value.clone());
        }
        if !ctx.environment.is_empty() {
            let env = body.env.get_or_insert_with(Vec::new);
            env.extend(ctx.environment.iter().map(|(k, v)| format!("{k}={v}")));
        }
        body.cmd = Some(cmd);
        body.open_stdin = Some(true);
        body.stdin_once = Some(true);
        body.attach_stdin = Some(true);
        let host = body.host_config.get_or_insert_with(HostConfig::default);
        match self.mode {
            ExecutionMode::Connection => {
                body.tty = Some(false);
                // The idle process exits when sshpod's attach stream closes; the engine then
                // removes the container even if sshpod is gone.
                host.auto_remove = Some(true);
            }
            ExecutionMode::Session => {
                body.tty = Some(tty.is_some());
                body.attach_stdout = Some(true);
                body.attach_stderr = Some(true);
                // An init process forwards signals: the program as PID 1 would ignore most.
                host.init = Some(host.init.unwrap_or(true));
            }
        }
        body
    }

    /// The container name: the configured one, or one that says whose it is.
    pub(crate) fn container_name(&self, ctx: &ConnectionContext) -> String {
        if self.container_name.is_empty() {
            let id = ctx.connection_id.to_string();
            let short = id.get(..12).unwrap_or(&id);
            labels::container_name("sshpod-", &ctx.user, short)
        } else {
            self.container_name.clone()
        }
    }

    /// The program and arguments for a session's command.
    pub(crate) fn argv(&self, command: &Command) -> Result<Vec<String>, BackendError> {
        CommandTable {
            shell: &self.shell_command,
            subsystems: &self.subsystems,
            policy: CommandPolicy::Any,
        }
        .argv(command)
    }

    /// The `K=V` environment of a process from the client's env requests.
    pub(crate) fn process_env(&self, env: &[(String, String)]) -> Vec<String> {
        env.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    /// A start failure with a reason fit for the user; the cause goes to the log.
    pub(crate) fn start_error(
        &self,
        what: &str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> BackendError {
        BackendError::StartContainer {
            image: self.image.clone(),
            reason: what.to_owned(),
            source: Some(Box::new(source)),
        }
    }

    /// The container did not start within `timeouts.containerStart`.
    pub(crate) fn start_timeout(&self) -> BackendError {
        BackendError::StartTimeout {
            image: self.image.clone(),
            seconds: self.timeouts.container_start.as_secs(),
        }
    }

    /// A start failure reported by the engine: its message is the reason.
    pub(crate) fn start_error_engine(&self, e: bollard::errors::Error) -> BackendError {
        match e {
            bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                message,
            } if message.contains("image") => BackendError::ImageUnavailable {
                image: self.image.clone(),
                source: message.into(),
            },
            bollard::errors::Error::DockerResponseServerError { message, .. } => {
                BackendError::StartContainer {
                    image: self.image.clone(),
                    reason: short_reason(&message),
                    source: None,
                }
            }
            other => BackendError::Engine(Box::new(other)),
        }
    }
}

fn non_empty(items: &[String]) -> Option<Vec<String>> {
    (!items.is_empty()).then(|| items.to_vec())
}

/// The engine's message, trimmed of the runtime's long preamble so the user sees the point.
fn short_reason(message: &str) -> String {
    let tail = message.rsplit(": ").next().unwrap_or(message).trim();
    let reason = if tail.len() >= 8 {
        tail
    } else {
        message.trim()
    };
    reason.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sshpod_core::ConnectionId;

    fn ctx() -> ConnectionContext {
        ConnectionContext::new(
            ConnectionId::random(),
            "al/ice".into(),
            "127.0.0.1:1".parse().unwrap(),
        )
    }

    fn settings(mode: ExecutionMode) -> Settings {
        let text = "auth: {password: {method: htpasswd, htpasswd: {file: /x}}}\n\
                    docker: {execution: {container: {labels: {team: a}}}}\n";
        let mut config = sshpod_config::parse_str(text, sshpod_config::Format::Yaml, "t.yaml")
            .unwrap()
            .config
            .docker;
        config.execution.mode = mode;
        Settings::from_config(&config)
    }

    #[test]
    fn webhook_environment_and_labels_reach_the_container() {
        let s = settings(ExecutionMode::Connection);
        let mut ctx = ctx();
        ctx.environment.push(("COURSE".into(), "os".into()));
        ctx.labels.insert("team".into(), "overridden?".into());
        ctx.labels.insert("course".into(), "os".into());
        ctx.labels.insert(labels::USER.into(), "mallory".into());
        let body = s.container_body(&ctx, "inst", vec!["idle".into()], None);
        assert!(body.env.unwrap().contains(&"COURSE=os".to_owned()));
        let labels = body.labels.unwrap();
        assert_eq!(labels["course"], "os");
        assert_eq!(labels["team"], "a", "configured labels win");
        assert_eq!(labels[labels::USER], "al/ice", "sshpod's labels win");
    }

    #[test]
    fn connection_containers_are_labelled_idle_and_auto_removed() {
        let s = settings(ExecutionMode::Connection);
        let ctx = ctx();
        let body = s.container_body(&ctx, "inst", vec!["idle".into()], None);
        let labels = body.labels.unwrap();
        assert_eq!(labels[labels::INSTANCE], "inst");
        assert_eq!(labels[labels::CONNECTION], ctx.connection_id.to_string());
        assert_eq!(labels[labels::USER], "al/ice");
        assert_eq!(labels["team"], "a");
        assert_eq!(body.cmd.unwrap(), ["idle"]);
        assert_eq!(body.open_stdin, Some(true));
        assert_eq!(body.stdin_once, Some(true));
        let host = body.host_config.unwrap();
        assert_eq!(host.auto_remove, Some(true));
        assert_eq!(host.privileged, Some(false));
        assert!(host.memory.unwrap_or(0) > 0, "a memory limit by default");
        assert!(host.pids_limit.unwrap_or(0) > 0, "a PID limit by default");
    }

    #[test]
    fn session_containers_get_an_init_and_the_tty() {
        let s = settings(ExecutionMode::Session);
        let tty = TtySpec {
            term: "xterm".into(),
            size: sshpod_core::TerminalSize { cols: 80, rows: 24 },
            stty_modes: vec![],
        };
        let body = s.container_body(&ctx(), "inst", vec!["sh".into()], Some(&tty));
        assert_eq!(body.tty, Some(true));
        assert_eq!(body.host_config.unwrap().init, Some(true));
    }

    #[test]
    fn names_say_whose_container_it_is_and_stay_valid() {
        let s = settings(ExecutionMode::Connection);
        let name = s.container_name(&ctx());
        assert!(name.starts_with("sshpod-al-ice-"), "{name}");
        assert_eq!(name.len(), "sshpod-al-ice-".len() + 12);
    }

    #[test]
    fn commands_map_to_programs() {
        let s = settings(ExecutionMode::Connection);
        assert_eq!(
            s.argv(&Command::Exec("echo hi".into())).unwrap(),
            ["/bin/sh", "-c", "echo hi"]
        );
        assert_eq!(
            s.argv(&Command::Subsystem("sftp".into())).unwrap(),
            ["/usr/lib/openssh/sftp-server"]
        );
        assert!(s.argv(&Command::Subsystem("nope".into())).is_err());
        assert_eq!(s.argv(&Command::Shell).unwrap(), s.shell_command);
    }

    #[test]
    fn engine_messages_are_shortened() {
        assert_eq!(
            short_reason("failed to create shim task: OCI runtime create failed: exec: \"/nope\": stat /nope: no such file or directory"),
            "no such file or directory"
        );
    }
}
