//! The `docker` section: how to reach the Docker daemon and how to run a session's container.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::check::Checker;
use crate::container::{ContainerConfig, HostConfig, NetworkConfig, PlatformConfig, RegistryAuth};
use crate::duration;
use crate::secret::Secret;
use crate::Backend;

/// Default `docker.execution.idleCommand`: keeps the container alive while sshpod lives.
pub const DEFAULT_IDLE_COMMAND: &[&str] = &[
    "/bin/sh",
    "-c",
    // A dead man's switch that needs nothing but a shell: sshpod holds this process's stdin
    // open for as long as it lives; when sshpod goes away, stdin closes and the container
    // ends (and the engine removes it).
    "while read -r _; do :; done",
];

/// Default `docker.execution.shellCommand`: a login shell, bash when the image has it.
pub const DEFAULT_SHELL_COMMAND: &[&str] = &[
    "/bin/sh",
    "-c",
    "if [ -x /bin/bash ]; then exec /bin/bash -l; fi; exec /bin/sh -l",
];

/// Default `docker.connection.host`.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// Default `docker.connection.maxParallelStarts`.
pub const DEFAULT_MAX_PARALLEL_STARTS: u32 = 8;

/// Default `docker.connection.streamDirectory`.
pub const DEFAULT_STREAM_DIRECTORY: &str = "/run/sshpod/streams";

/// Default `docker.execution.agentPath` (ContainerSSH's agent; sshpod does not use it).
pub const DEFAULT_AGENT_PATH: &str = "/usr/bin/containerssh-agent";

/// `docker.connection`: the Docker daemon endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerConnection {
    /// `unix://`, `tcp://`, `http://` or `https://` URL (default `unix:///var/run/docker.sock`).
    pub host: String,
    /// CA certificate (inline PEM or file path). TLS is used when `cacert`, `cert` and `key`
    /// are all set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cacert: Option<String>,
    /// Client certificate (inline PEM or file path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    /// Client private key (inline PEM or file path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Secret<String>>,
    /// Container starts (create, attach, start) sshpod asks of the engine at once; further
    /// logins wait their turn within `timeouts.containerStart` (sshpod extension, default 8).
    /// An engine handed hundreds of starts at once answers each of them late, so a burst
    /// of logins finishes sooner queued than all at once.
    #[serde(rename = "maxParallelStarts")]
    pub max_parallel_starts: u32,
    /// With an engine on a `unix://` socket, the stdin and stdout of processes without a
    /// terminal pass through FIFOs in this directory, bind-mounted read-only into each
    /// connection container, instead of through the engine (sshpod extension, default
    /// `/run/sshpod/streams`; `""` turns it off). The engine must see the directory at the
    /// same path; when it does not, sshpod notices on the first process and goes through
    /// the engine instead.
    #[serde(rename = "streamDirectory")]
    pub stream_directory: String,
}

impl Default for DockerConnection {
    fn default() -> Self {
        Self {
            host: DEFAULT_DOCKER_HOST.to_string(),
            cacert: None,
            cert: None,
            key: None,
            max_parallel_starts: DEFAULT_MAX_PARALLEL_STARTS,
            stream_directory: DEFAULT_STREAM_DIRECTORY.to_owned(),
        }
    }
}

impl DockerConnection {
    /// True when TLS client settings are complete.
    pub fn uses_tls(&self) -> bool {
        self.cacert.is_some() && self.cert.is_some() && self.key.is_some()
    }

    fn check(&self, check: &mut Checker<'_>) {
        const SCHEMES: &[&str] = &["unix://", "tcp://", "http://", "https://"];
        match SCHEMES.iter().find(|scheme| self.host.starts_with(*scheme)) {
            Some(scheme) if self.host.len() > scheme.len() => {}
            Some(_) => check.error("docker.connection.host", "has no address after the scheme"),
            None => check.error(
                "docker.connection.host",
                format!(
                    "`{}` must start with unix://, tcp://, http:// or https://",
                    self.host
                ),
            ),
        }
        if self.max_parallel_starts == 0 {
            check.error("docker.connection.maxParallelStarts", "must be at least 1");
        }
        if !self.stream_directory.is_empty() && !self.stream_directory.starts_with('/') {
            check.error(
                "docker.connection.streamDirectory",
                "must be an absolute path (the engine sees it at the same path), or \"\" to turn it off",
            );
        }
        let given = [
            ("cacert", self.cacert.is_some()),
            ("cert", self.cert.is_some()),
            ("key", self.key.is_some()),
        ];
        if given.iter().any(|(_, set)| *set) && !self.uses_tls() {
            for (name, _) in given.iter().filter(|(_, set)| !*set) {
                check.error(
                    &format!("docker.connection.{name}"),
                    "is required for TLS: set `cacert`, `cert` and `key` together, or none",
                );
            }
        }
    }
}

/// `docker.execution.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionMode {
    /// One container per SSH connection, kept alive by `idleCommand`; each session execs in it.
    #[default]
    Connection,
    /// One container per SSH session, running the session's command directly.
    Session,
    /// One container per user, shared by all their connections and kept for
    /// `homes.gracePeriod` after the last one ends (sshpod extension).
    User,
}

/// `docker.execution.imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ImagePullPolicy {
    /// Pull before every container start.
    Always,
    /// Pull only when the image is missing (the default).
    #[default]
    IfNotPresent,
    /// Never pull; fail when the image is missing.
    Never,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

fn default_subsystems() -> BTreeMap<String, String> {
    BTreeMap::from([(
        "sftp".to_string(),
        "/usr/lib/openssh/sftp-server".to_string(),
    )])
}

/// `docker.execution` as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub(crate) struct RawExecution {
    // Docker's own types, checked against Docker's API in `resolve` (see `docker_api`);
    // `null` is the same as leaving them out.
    container: Option<serde_json::Value>,
    host: Option<serde_json::Value>,
    network: Option<serde_json::Value>,
    platform: Option<serde_json::Value>,
    containername: String,
    auth: Option<RegistryAuth>,
    mode: ExecutionMode,
    idle_command: Vec<String>,
    shell_command: Vec<String>,
    agent_path: Option<String>,
    disable_agent: Option<bool>,
    subsystems: BTreeMap<String, String>,
    image_pull_policy: ImagePullPolicy,
    expose_auth_metadata_as_env: bool,
    expose_auth_metadata_as_labels: BTreeMap<String, String>,
}

impl Default for RawExecution {
    fn default() -> Self {
        Self {
            container: None,
            host: None,
            network: None,
            platform: None,
            containername: String::new(),
            auth: None,
            mode: ExecutionMode::default(),
            idle_command: strings(DEFAULT_IDLE_COMMAND),
            shell_command: strings(DEFAULT_SHELL_COMMAND),
            agent_path: None,
            disable_agent: None,
            subsystems: default_subsystems(),
            image_pull_policy: ImagePullPolicy::default(),
            expose_auth_metadata_as_env: false,
            expose_auth_metadata_as_labels: BTreeMap::new(),
        }
    }
}

fn is_default_agent_path(path: &String) -> bool {
    path == DEFAULT_AGENT_PATH
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// How to run a session's container (`docker.execution`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionConfig {
    /// The container create body.
    pub container: ContainerConfig,
    /// Host settings and resource limits.
    pub host: HostConfig,
    /// Network attachments.
    pub network: NetworkConfig,
    /// Image platform.
    pub platform: PlatformConfig,
    /// Container name; empty lets Docker choose.
    pub containername: String,
    /// Registry credentials for pulling the image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<RegistryAuth>,
    /// Container per connection or per session.
    pub mode: ExecutionMode,
    /// Command that keeps a connection-mode container alive.
    pub idle_command: Vec<String>,
    /// Command run for a shell request.
    pub shell_command: Vec<String>,
    /// Accepted for ContainerSSH compatibility and ignored.
    #[serde(skip_serializing_if = "is_default_agent_path")]
    pub agent_path: String,
    /// Accepted for ContainerSSH compatibility and ignored.
    #[serde(skip_serializing_if = "is_false")]
    pub disable_agent: bool,
    /// Subsystem name to the program that serves it (default `sftp`).
    pub subsystems: BTreeMap<String, String>,
    /// When to pull the image.
    pub image_pull_policy: ImagePullPolicy,
    /// Expose authentication metadata as environment variables.
    pub expose_auth_metadata_as_env: bool,
    /// Metadata key to container label name (sshpod extension, like ContainerSSH's Kubernetes
    /// `exposeAuthMetadataAsLabels`); sensitive metadata never becomes a label.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub expose_auth_metadata_as_labels: BTreeMap<String, String>,
}

impl RawExecution {
    fn resolve(self, check: &mut Checker<'_>) -> ExecutionConfig {
        const NO_AGENT: &str = "is ignored: sshpod needs no agent in the image";
        // ContainerSSH writes both at their defaults into every file it saves: only a setting
        // that asks for something is worth a warning.
        if self
            .agent_path
            .as_deref()
            .is_some_and(|p| p != DEFAULT_AGENT_PATH)
        {
            check.warn(
                "docker.execution.agentPath",
                format_args!("`docker.execution.agentPath` {NO_AGENT}"),
            );
        }
        if self.disable_agent == Some(true) {
            check.warn(
                "docker.execution.disableAgent",
                format_args!("`docker.execution.disableAgent` {NO_AGENT}"),
            );
        }
        const AT: &str = "docker.execution";
        let container = ContainerConfig::resolve(check, &format!("{AT}.container"), self.container);
        let host = HostConfig::resolve(check, &format!("{AT}.host"), self.host);
        let network = NetworkConfig::resolve(check, &format!("{AT}.network"), self.network);
        let platform = PlatformConfig::resolve(check, &format!("{AT}.platform"), self.platform);
        if matches!(self.mode, ExecutionMode::Connection | ExecutionMode::User) {
            for (key, command) in [
                ("docker.execution.idleCommand", &self.idle_command),
                ("docker.execution.shellCommand", &self.shell_command),
            ] {
                if command.is_empty() {
                    check.error(key, "must not be empty in `connection` and `user` modes");
                }
            }
        }
        for (key, label) in &self.expose_auth_metadata_as_labels {
            if label.trim().is_empty() || label.starts_with("sshpod.") {
                check.error(
                    &format!("docker.execution.exposeAuthMetadataAsLabels.{key}"),
                    "must name a label (not empty, not starting with `sshpod.`)",
                );
            }
        }
        for (name, path) in &self.subsystems {
            if path.trim().is_empty() {
                check.error(
                    &format!("docker.execution.subsystems.{name}"),
                    "must name the program that serves the subsystem",
                );
            }
        }
        ExecutionConfig {
            container,
            host,
            network,
            platform,
            containername: self.containername,
            auth: self.auth,
            mode: self.mode,
            idle_command: self.idle_command,
            shell_command: self.shell_command,
            agent_path: self
                .agent_path
                .unwrap_or_else(|| DEFAULT_AGENT_PATH.to_string()),
            disable_agent: self.disable_agent.unwrap_or(false),
            subsystems: self.subsystems,
            image_pull_policy: self.image_pull_policy,
            expose_auth_metadata_as_env: self.expose_auth_metadata_as_env,
            expose_auth_metadata_as_labels: self.expose_auth_metadata_as_labels,
        }
    }
}

/// `docker.timeouts`. Each accepts a duration string or integer nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct DockerTimeouts {
    /// Creating and starting the container (default 60s).
    #[serde(with = "duration")]
    pub container_start: Duration,
    /// Stopping the container (default 60s).
    #[serde(with = "duration")]
    pub container_stop: Duration,
    /// Starting a command in the container (default 60s).
    #[serde(with = "duration")]
    pub command_start: Duration,
    /// Delivering a signal (default 60s).
    #[serde(with = "duration")]
    pub signal: Duration,
    /// Changing the terminal size (default 60s).
    #[serde(with = "duration")]
    pub window: Duration,
    /// Any other Docker API request (default 15s).
    #[serde(with = "duration")]
    pub http: Duration,
}

impl Default for DockerTimeouts {
    fn default() -> Self {
        let minute = Duration::from_secs(60);
        Self {
            container_start: minute,
            container_stop: minute,
            command_start: minute,
            signal: minute,
            window: minute,
            http: Duration::from_secs(15),
        }
    }
}

impl DockerTimeouts {
    fn check(&self, check: &mut Checker<'_>) {
        for (name, value) in [
            ("containerStart", self.container_start),
            ("containerStop", self.container_stop),
            ("commandStart", self.command_start),
            ("signal", self.signal),
            ("window", self.window),
            ("http", self.http),
        ] {
            if value.is_zero() {
                check.error(&format!("docker.timeouts.{name}"), "must be greater than 0");
            }
        }
    }
}

/// The `docker` section as written in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawDocker {
    connection: DockerConnection,
    execution: RawExecution,
    timeouts: DockerTimeouts,
}

/// Docker backend settings (`docker`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DockerConfig {
    /// The daemon endpoint.
    pub connection: DockerConnection,
    /// How containers are run.
    pub execution: ExecutionConfig,
    /// Deadlines for Docker operations.
    pub timeouts: DockerTimeouts,
}

impl RawDocker {
    pub(crate) fn resolve(self, check: &mut Checker<'_>) -> DockerConfig {
        check.backend_section(Backend::Docker, |check| {
            self.connection.check(check);
            self.timeouts.check(check);
            DockerConfig {
                connection: self.connection,
                execution: self.execution.resolve(check),
                timeouts: self.timeouts,
            }
        })
    }
}
