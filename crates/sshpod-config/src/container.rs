//! The Docker container description under `docker.execution` (`container`, `host`, `network`,
//! `platform`, `auth`).
//!
//! ContainerSSH embeds Docker SDK types here, so YAML files use the Go field names lower-cased
//! (`image`, `workingdir`) while JSON files use the Docker API names (`Image`, `WorkingDir`).
//! Every field accepts both spellings and prints the lower-cased one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::check::Checker;
use crate::secret::Secret;

/// Default `docker.execution.container.image`.
pub const DEFAULT_IMAGE: &str = "sshpod-guest:latest";
/// Default memory limit when none is configured: 512 MiB.
pub const DEFAULT_MEMORY: i64 = 512 * 1024 * 1024;
/// Default process limit when none is configured.
pub const DEFAULT_PIDS_LIMIT: i64 = 1024;
/// Default CPU limit (in units of 1e-9 CPUs) when no CPU limit is configured: one CPU.
pub const DEFAULT_NANO_CPUS: i64 = 1_000_000_000;
/// Security option added when `securityopt` is not given.
pub const DEFAULT_SECURITY_OPT: &str = "no-new-privileges";

fn default_image() -> String {
    DEFAULT_IMAGE.to_string()
}

/// The container create body (`docker.execution.container`, Docker's `container.Config`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerConfig {
    /// Image to run (default `sshpod-guest:latest`); required.
    #[serde(rename = "image", alias = "Image", default = "default_image")]
    pub image: String,
    /// Environment, as `KEY=value` entries.
    #[serde(
        rename = "env",
        alias = "Env",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env: Vec<String>,
    /// Command (overridden by sshpod in connection mode).
    #[serde(
        rename = "cmd",
        alias = "Cmd",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cmd: Option<Vec<String>>,
    /// Entrypoint.
    #[serde(
        rename = "entrypoint",
        alias = "Entrypoint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub entrypoint: Option<Vec<String>>,
    /// User inside the container.
    #[serde(
        rename = "user",
        alias = "User",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub user: Option<String>,
    /// Working directory.
    #[serde(
        rename = "workingdir",
        alias = "WorkingDir",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub working_dir: Option<String>,
    /// Host name.
    #[serde(
        rename = "hostname",
        alias = "Hostname",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub hostname: Option<String>,
    /// Domain name.
    #[serde(
        rename = "domainname",
        alias = "Domainname",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub domainname: Option<String>,
    /// Labels (sshpod adds its own on top).
    #[serde(
        rename = "labels",
        alias = "Labels",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    /// Disable networking.
    #[serde(rename = "networkdisabled", alias = "NetworkDisabled", default)]
    pub network_disabled: bool,
    /// Signal used to stop the container.
    #[serde(
        rename = "stopsignal",
        alias = "StopSignal",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_signal: Option<String>,
    /// Seconds to wait after the stop signal before killing.
    #[serde(
        rename = "stoptimeout",
        alias = "StopTimeout",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_timeout: Option<i64>,
    /// Allocate a TTY (accepted; the backend decides per session).
    #[serde(rename = "tty", alias = "Tty", default)]
    pub tty: bool,
    /// Keep stdin open (accepted; the backend decides per session).
    #[serde(rename = "openstdin", alias = "OpenStdin", default)]
    pub open_stdin: bool,
    /// Attach stdin (accepted, ignored by the backend).
    #[serde(rename = "attachstdin", alias = "AttachStdin", default)]
    pub attach_stdin: bool,
    /// Attach stdout (accepted, ignored by the backend).
    #[serde(rename = "attachstdout", alias = "AttachStdout", default)]
    pub attach_stdout: bool,
    /// Attach stderr (accepted, ignored by the backend).
    #[serde(rename = "attachstderr", alias = "AttachStderr", default)]
    pub attach_stderr: bool,
    /// Close stdin after the first client detaches (accepted, ignored by the backend).
    #[serde(rename = "stdinonce", alias = "StdinOnce", default)]
    pub stdin_once: bool,
}

impl Default for ContainerConfig {
    fn default() -> Self {
        Self {
            image: default_image(),
            env: Vec::new(),
            cmd: None,
            entrypoint: None,
            user: None,
            working_dir: None,
            hostname: None,
            domainname: None,
            labels: BTreeMap::new(),
            network_disabled: false,
            stop_signal: None,
            stop_timeout: None,
            tty: false,
            open_stdin: false,
            attach_stdin: false,
            attach_stdout: false,
            attach_stderr: false,
            stdin_once: false,
        }
    }
}

impl ContainerConfig {
    pub(crate) fn check(&self, check: &mut Checker<'_>, key: &str) {
        if self.image.trim().is_empty() {
            check.error(&format!("{key}.image"), "is required");
        }
        for (index, entry) in self.env.iter().enumerate() {
            if entry
                .split_once('=')
                .is_none_or(|(name, _)| name.is_empty())
            {
                check.error(
                    &format!("{key}.env[{index}]"),
                    format!("`{entry}` is not of the form KEY=value"),
                );
            }
        }
    }
}

/// Resource limits as written in `host.resources` (YAML form) or flat on `host` (API form).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Memory limit in bytes; default 512 MiB; 0 means unlimited.
    #[serde(
        rename = "memory",
        alias = "Memory",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub memory: Option<i64>,
    /// Memory plus swap in bytes; -1 means unlimited swap.
    #[serde(
        rename = "memoryswap",
        alias = "MemorySwap",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_swap: Option<i64>,
    /// CPU limit in 1e-9 CPUs; default one CPU unless `cpuquota`/`cpuperiod` is given.
    #[serde(
        rename = "nanocpus",
        alias = "NanoCpus",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub nano_cpus: Option<i64>,
    /// Relative CPU weight.
    #[serde(
        rename = "cpushares",
        alias = "CpuShares",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cpu_shares: Option<i64>,
    /// CFS quota in microseconds.
    #[serde(
        rename = "cpuquota",
        alias = "CpuQuota",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds.
    #[serde(
        rename = "cpuperiod",
        alias = "CpuPeriod",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cpu_period: Option<i64>,
    /// CPUs the container may run on, e.g. `0-3`.
    #[serde(
        rename = "cpusetcpus",
        alias = "CpusetCpus",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cpuset_cpus: Option<String>,
    /// Maximum number of processes; default 1024; 0 or -1 means unlimited.
    #[serde(
        rename = "pidslimit",
        alias = "PidsLimit",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pids_limit: Option<i64>,
}

/// `docker.execution.host` as written in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHostConfig {
    #[serde(rename = "binds", alias = "Binds", default)]
    binds: Vec<String>,
    #[serde(rename = "networkmode", alias = "NetworkMode", default)]
    network_mode: Option<String>,
    #[serde(rename = "privileged", alias = "Privileged", default)]
    privileged: bool,
    #[serde(rename = "readonlyrootfs", alias = "ReadonlyRootfs", default)]
    readonly_rootfs: bool,
    #[serde(rename = "capadd", alias = "CapAdd", default)]
    cap_add: Vec<String>,
    #[serde(rename = "capdrop", alias = "CapDrop", default)]
    cap_drop: Vec<String>,
    #[serde(rename = "securityopt", alias = "SecurityOpt", default)]
    security_opt: Option<Vec<String>>,
    #[serde(rename = "tmpfs", alias = "Tmpfs", default)]
    tmpfs: BTreeMap<String, String>,
    #[serde(rename = "dns", alias = "Dns", default)]
    dns: Vec<String>,
    #[serde(rename = "extrahosts", alias = "ExtraHosts", default)]
    extra_hosts: Vec<String>,
    #[serde(rename = "init", alias = "Init", default)]
    init: Option<bool>,
    #[serde(rename = "shmsize", alias = "ShmSize", default)]
    shm_size: Option<i64>,
    #[serde(rename = "usernsmode", alias = "UsernsMode", default)]
    userns_mode: Option<String>,
    #[serde(rename = "autoremove", alias = "AutoRemove", default)]
    auto_remove: bool,
    #[serde(rename = "runtime", alias = "Runtime", default)]
    runtime: Option<String>,
    #[serde(default)]
    resources: Resources,
    #[serde(rename = "Memory", default)]
    memory: Option<i64>,
    #[serde(rename = "MemorySwap", default)]
    memory_swap: Option<i64>,
    #[serde(rename = "NanoCpus", default)]
    nano_cpus: Option<i64>,
    #[serde(rename = "CpuShares", default)]
    cpu_shares: Option<i64>,
    #[serde(rename = "CpuQuota", default)]
    cpu_quota: Option<i64>,
    #[serde(rename = "CpuPeriod", default)]
    cpu_period: Option<i64>,
    #[serde(rename = "CpusetCpus", default)]
    cpuset_cpus: Option<String>,
    #[serde(rename = "PidsLimit", default)]
    pids_limit: Option<i64>,
}

/// Docker `HostConfig` subset (`docker.execution.host`).
///
/// Secure defaults apply when the file says nothing: `privileged` false, `securityopt`
/// `[no-new-privileges]` (only when no `securityopt` is given; `securityopt: []` opts out),
/// and the [`Resources`] defaults (memory 512 MiB, pidslimit 1024, nanocpus one CPU).
/// `capdrop` stays empty by default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostConfig {
    /// Bind mounts, `host:container[:options]`.
    pub binds: Vec<String>,
    /// Network mode (`bridge`, `none`, `host`, a network name…).
    #[serde(rename = "networkmode", skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    /// Run privileged.
    pub privileged: bool,
    /// Mount the root file system read-only.
    #[serde(rename = "readonlyrootfs")]
    pub readonly_rootfs: bool,
    /// Capabilities to add.
    #[serde(rename = "capadd")]
    pub cap_add: Vec<String>,
    /// Capabilities to drop.
    #[serde(rename = "capdrop")]
    pub cap_drop: Vec<String>,
    /// Security options (default `[no-new-privileges]`).
    #[serde(rename = "securityopt")]
    pub security_opt: Vec<String>,
    /// tmpfs mounts: path to mount options.
    pub tmpfs: BTreeMap<String, String>,
    /// DNS servers.
    pub dns: Vec<String>,
    /// Extra `/etc/hosts` entries, `name:ip`.
    #[serde(rename = "extrahosts")]
    pub extra_hosts: Vec<String>,
    /// Run an init process as PID 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    /// Size of `/dev/shm` in bytes.
    #[serde(rename = "shmsize", skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<i64>,
    /// User namespace mode.
    #[serde(rename = "usernsmode", skip_serializing_if = "Option::is_none")]
    pub userns_mode: Option<String>,
    /// Let Docker remove the container when it exits.
    #[serde(rename = "autoremove")]
    pub auto_remove: bool,
    /// OCI runtime (e.g. `runsc`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Resource limits, merged from `resources` and the flat API names, defaults applied.
    pub resources: Resources,
}

macro_rules! merge_resources {
    ($check:expr, $nested:expr, $raw:expr, $($field:ident => $flat:literal),+ $(,)?) => {
        Resources {
            $($field: match ($nested.$field, $raw.$field) {
                (Some(_), Some(flat)) => {
                    $check.error(
                        concat!("docker.execution.host.", $flat),
                        "is also given in `docker.execution.host.resources`; set it only once",
                    );
                    Some(flat)
                }
                (nested, flat) => nested.or(flat),
            },)+
        }
    };
}

impl RawHostConfig {
    pub(crate) fn resolve(self, check: &mut Checker<'_>) -> HostConfig {
        let mut resources = merge_resources!(check, self.resources, self,
            memory => "Memory",
            memory_swap => "MemorySwap",
            nano_cpus => "NanoCpus",
            cpu_shares => "CpuShares",
            cpu_quota => "CpuQuota",
            cpu_period => "CpuPeriod",
            cpuset_cpus => "CpusetCpus",
            pids_limit => "PidsLimit",
        );
        let cfs_given = resources.cpu_quota.is_some() || resources.cpu_period.is_some();
        if cfs_given && resources.nano_cpus.is_some() {
            check.error(
                "docker.execution.host.resources.nanocpus",
                "cannot be combined with `cpuquota`/`cpuperiod` (Docker refuses both)",
            );
        }
        resources.memory.get_or_insert(DEFAULT_MEMORY);
        resources.pids_limit.get_or_insert(DEFAULT_PIDS_LIMIT);
        if !cfs_given {
            resources.nano_cpus.get_or_insert(DEFAULT_NANO_CPUS);
        }
        HostConfig {
            binds: self.binds,
            network_mode: self.network_mode,
            privileged: self.privileged,
            readonly_rootfs: self.readonly_rootfs,
            cap_add: self.cap_add,
            cap_drop: self.cap_drop,
            security_opt: self
                .security_opt
                .unwrap_or_else(|| vec![DEFAULT_SECURITY_OPT.to_string()]),
            tmpfs: self.tmpfs,
            dns: self.dns,
            extra_hosts: self.extra_hosts,
            init: self.init,
            shm_size: self.shm_size,
            userns_mode: self.userns_mode,
            auto_remove: self.auto_remove,
            runtime: self.runtime,
            resources,
        }
    }
}

/// `docker.execution.network` (Docker `NetworkingConfig`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// Network name to endpoint settings, passed to Docker as given.
    #[serde(rename = "endpointsconfig", alias = "EndpointsConfig", default)]
    pub endpoints_config: BTreeMap<String, serde_json::Value>,
}

/// `docker.execution.platform` (OCI platform).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformConfig {
    /// CPU architecture, e.g. `amd64`.
    #[serde(
        rename = "architecture",
        alias = "Architecture",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub architecture: Option<String>,
    /// Operating system, e.g. `linux`.
    #[serde(
        rename = "os",
        alias = "OS",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os: Option<String>,
}

/// `docker.execution.auth`: registry credentials for pulling the image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryAuth {
    /// User name.
    #[serde(rename = "username", alias = "Username", default)]
    pub username: String,
    /// Password.
    #[serde(rename = "password", alias = "Password", default)]
    pub password: Secret<String>,
    /// Registry address, e.g. `registry.example.com`.
    #[serde(rename = "serveraddress", alias = "ServerAddress", default)]
    pub server_address: String,
    /// Identity token (instead of a password).
    #[serde(rename = "identitytoken", alias = "IdentityToken", default)]
    pub identity_token: Secret<String>,
}
