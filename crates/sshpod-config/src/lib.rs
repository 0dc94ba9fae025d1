//! sshpod's configuration: the file schema, its defaults, loading and validation.
//!
//! The file format is ContainerSSH's (YAML or JSON, camelCase keys, unknown keys are errors),
//! restricted to what sshpod implements and extended with a few OpenSSH-style limits.
//! [`load`] reads a file and returns the validated [`Config`] plus warnings, or every problem it
//! found with file, line, column and dotted key ([`ConfigErrors`]).
//!
//! This crate is the bottom of the dependency graph: it must not depend on SSH, container or
//! HTTP libraries (russh, bollard, kube, axum, reqwest), only on serde, small helpers and
//! k8s-openapi's plain data types (for `kubernetes.pod`).

mod algorithms;
mod audit;
mod auth;
mod check;
mod container;
mod docker;
mod docker_api;
mod duration;
mod error;
mod geoip;
mod health;
mod homes;
mod http;
mod http_server;
mod identity;
mod inert;
mod key_trust;
mod kubernetes;
mod kuberun;
mod load;
mod log;
mod merge;
mod metrics;
mod nulls;
mod pool;
mod proxy_protocol;
mod secret;
mod security;
mod session_limits;
mod ssh;
mod sshproxy;
mod webhook_auth;

use serde::Serialize;

pub use crate::algorithms::{Cipher, Kex, Mac};
pub use crate::audit::{
    AuditConfig, AuditFileConfig, AuditFormat, AuditIntercept, AuditS3Config, AuditS3Metadata,
    AuditStorage, AuditWebConfig, DEFAULT_AUDIT_DIRECTORY, DEFAULT_AUDIT_SPOOL,
    DEFAULT_MAX_SPOOL_SIZE, DEFAULT_PARALLEL_UPLOADS, DEFAULT_PLAYER_ASSETS, MIN_UPLOAD_PART_SIZE,
};
pub use crate::auth::{
    AuthConfig, FileSource, PasswordAuth, PasswordMethod, PublicKeyAuth, PublicKeyMethod,
};
pub use crate::container::{
    ContainerConfig, HostConfig, NetworkConfig, PlatformConfig, RegistryAuth, Resources,
    DEFAULT_IMAGE, DEFAULT_MEMORY, DEFAULT_NANO_CPUS, DEFAULT_PIDS_LIMIT, DEFAULT_SECURITY_OPT,
};
pub use crate::docker::{
    DockerConfig, DockerConnection, DockerTimeouts, ExecutionConfig, ExecutionMode,
    ImagePullPolicy, DEFAULT_AGENT_PATH, DEFAULT_DOCKER_HOST, DEFAULT_IDLE_COMMAND,
    DEFAULT_SHELL_COMMAND,
};
pub use crate::error::{ConfigError, ConfigErrors};
pub use crate::geoip::{GeoIpConfig, GeoIpProvider, DEFAULT_GEOIP2_FILE};
pub use crate::health::{HealthConfig, DEFAULT_HEALTH_LISTEN};
pub use crate::homes::{
    ExtraMount, HomesConfig, MountScope, DEFAULT_GRACE_PERIOD, DEFAULT_HOME_PATH, DEFAULT_HOME_SIZE,
};
pub use crate::http::{ConfigServerConfig, HttpClientConfig, TlsVersion, WebhookConfig};
pub use crate::http_server::HttpServerConfig;
pub use crate::identity::{
    expand, is_dns_label, IdentityConfig, UidRange, DEFAULT_HOME, DEFAULT_UID_MAX, DEFAULT_UID_MIN,
    MAX_ID,
};
pub use crate::key_trust::KeyTrust;
pub use crate::kubernetes::{
    KubernetesConfig, KubernetesConnection, KubernetesTimeouts, PodConfig, PodMode,
    DEFAULT_CONTAINER_NAME, DEFAULT_GENERATE_NAME, DEFAULT_KUBERNETES_HOST, DEFAULT_NAMESPACE,
    DEFAULT_POD_CPU, DEFAULT_POD_MEMORY, DEFAULT_RUN_AS_USER,
};
pub use crate::load::{load, parse_str, Format, Loaded};
pub use crate::log::{
    LogConfig, LogDestination, LogFormat, LogLevel, SyslogConfig, SyslogTarget, DEFAULT_LOG_FILE,
};
pub use crate::merge::{merge_answer, MergeError};
pub use crate::metrics::{MetricsConfig, DEFAULT_METRICS_LISTEN, DEFAULT_METRICS_PATH};
pub use crate::pool::{PoolConfig, DEFAULT_DEMAND_WINDOW, MAX_POOL};
pub use crate::proxy_protocol::{Network, ProxyProtocolConfig, DEFAULT_HEADER_TIMEOUT};
pub use crate::secret::{redact_url, Secret, ServiceUrl, REDACTED};
pub use crate::security::{
    CommandPolicy, ForwardingPolicy, GatewayPorts, ListPolicy, ModePolicy, SecurityConfig,
    SecurityMode,
};
pub use crate::session_limits::{
    ChannelTimeouts, SessionLimits, DEFAULT_DRAIN_TIMEOUT, DEFAULT_LIMIT_WARNING,
};
pub use crate::ssh::{
    MaxStartups, NetBlockSize, Penalties, RekeyLimit, SshConfig, DEFAULT_ACCEPT_ENV,
    DEFAULT_LISTEN, DEFAULT_PER_SOURCE_MAX_STARTUPS, DEFAULT_SERVER_VERSION,
};
pub use crate::sshproxy::{
    Fingerprint, HostKeyAlgo, SshProxyConfig, DEFAULT_SSHPROXY_CLIENT_VERSION,
    DEFAULT_SSHPROXY_PORT, DEFAULT_SSHPROXY_TIMEOUT,
};
pub use crate::webhook_auth::{WebhookAuth, WebhookMethod};

/// The fields `docker.execution` accepts for the Docker API object `type_name` (`HostConfig`,
/// `Mount`, `EndpointSettings`…), under their API names; `None` for a type it does not
/// describe. `HostConfig` lists its resource limits flat, as Docker's API does, plus
/// `Resources`, the nested form ContainerSSH's YAML files use. The Docker backend's tests
/// compare these lists with the types it sends to the engine.
pub fn docker_api_fields(type_name: &str) -> Option<Vec<&'static str>> {
    crate::docker_api::ALL
        .iter()
        .find(|object| object.name == type_name)
        .map(|object| object.fields().map(|field| field.name).collect())
}

/// Which backend runs the containers (`backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Backend {
    /// Docker (or a Docker-compatible daemon such as Podman).
    #[default]
    Docker,
    /// Kubernetes: a pod per login.
    Kubernetes,
    /// No container: each login is passed on to another SSH server (ContainerSSH's
    /// `sshproxy`).
    SshProxy,
}

/// The validated configuration, all defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    /// SSH server settings.
    pub ssh: SshConfig,
    /// The backend in use.
    pub backend: Backend,
    /// Docker backend settings.
    pub docker: DockerConfig,
    /// Kubernetes backend settings.
    pub kubernetes: KubernetesConfig,
    /// The SSH server logins are passed on to (`backend: sshproxy`).
    pub sshproxy: SshProxyConfig,
    /// Authentication.
    pub auth: AuthConfig,
    /// sshpod's own log.
    pub log: LogConfig,
    /// The configuration webhook, when `configserver.url` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configserver: Option<ConfigServerConfig>,
    /// What clients may request (ContainerSSH's `security`); per connection, so a config
    /// server's answer can change it.
    pub security: SecurityConfig,
    /// What is recorded of every connection and where (ContainerSSH's `audit`); per connection,
    /// so a config server's answer can turn recording on or make it required.
    pub audit: AuditConfig,
    /// The Prometheus endpoint (ContainerSSH's `metrics`).
    pub metrics: MetricsConfig,
    /// The health endpoint and how `sshpod healthcheck` reaches it (ContainerSSH's `health`).
    pub health: HealthConfig,
    /// Where the metrics' `country` label comes from (ContainerSSH's `geoip`).
    pub geoip: GeoIpConfig,
    /// Persistent homes, extra mounts and `mode: user`'s grace period (sshpod extension).
    pub homes: HomesConfig,
    /// Who a login runs as in its container, and the container's hostname (sshpod's own
    /// `identity`); per connection, so a config server's answer can set a user's uid.
    pub identity: IdentityConfig,
    /// Containers started ahead of logins (sshpod's own `pool`); the file's only.
    pub pool: PoolConfig,
}

impl Config {
    /// Subsystem name to program, for the backend in use.
    pub fn subsystems(&self) -> &std::collections::BTreeMap<String, String> {
        match self.backend {
            Backend::Kubernetes => &self.kubernetes.pod.subsystems,
            Backend::Docker => &self.docker.execution.subsystems,
            Backend::SshProxy => &crate::sshproxy::PROXIED_SUBSYSTEMS,
        }
    }

    /// The effective configuration as YAML with every secret (keys, passwords, tokens) shown
    /// as `<secret>`: what `sshpod check-config` prints unless asked otherwise.
    pub fn to_yaml_redacted(&self) -> String {
        crate::secret::redacted(|| self.to_yaml())
    }

    /// The effective configuration as YAML (for `sshpod check-config`). Loading the result
    /// gives the same `Config`. Secrets are printed as configured: treat the output as
    /// sensitive.
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self)
            .unwrap_or_else(|error| format!("# the configuration cannot be printed: {error}\n"))
    }
}
