//! The Docker container description under `docker.execution` (`container`, `host`, `network`,
//! `platform`, `auth`).
//!
//! ContainerSSH embeds Docker SDK types here, so YAML files use the Go field names lower-cased
//! (`image`, `workingdir`) while JSON files use the Docker API names (`Image`, `WorkingDir`).
//! Every field of Docker's API is accepted in any case ([`crate::docker_api`] checks them).
//! The fields sshpod itself reads or gives a default get a typed field here; every other one is
//! kept in `other` under its API name and handed to the engine as written. Printed, the typed
//! fields use the lower-cased spelling and `other` the lower-cased API name.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::check::{join, Checker};
use crate::docker_api::{
    normalise, CONTAINER_CONFIG, HOST_CONFIG, NETWORKING_CONFIG, PLATFORM, RESOURCES,
};
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

/// Prints `other` flat into the enclosing map, keys lower-cased like the typed fields.
fn lower_keys<S: Serializer>(
    other: &BTreeMap<String, Value>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(
        other
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value)),
    )
}

/// A checked API object at `key`, from which the typed fields are taken one by one; what is
/// left over is `other`.
struct Fields<'k> {
    key: &'k str,
    api: Map<String, Value>,
}

impl Fields<'_> {
    /// Takes the field `name` (an API name) as a `T`.
    fn take<T: DeserializeOwned>(&mut self, check: &mut Checker<'_>, name: &str) -> Option<T> {
        let value = self.api.remove(name)?;
        match serde_json::from_value(value) {
            Ok(typed) => Some(typed),
            Err(error) => {
                check.shape_error(&join(self.key, name), error.to_string());
                None
            }
        }
    }

    fn rest(self) -> BTreeMap<String, Value> {
        self.api.into_iter().collect()
    }
}

/// Puts `value` into `api` as `name`, unless it is `None`.
fn put<T: Serialize>(api: &mut Map<String, Value>, name: &str, value: T) {
    match serde_json::to_value(value) {
        Ok(Value::Null) | Err(_) => {}
        Ok(value) => {
            api.insert(name.to_owned(), value);
        }
    }
}

/// The container create body (`docker.execution.container`, Docker's `ContainerConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerConfig {
    /// Image to run (default `sshpod-guest:latest`); required.
    pub image: String,
    /// Environment, as `KEY=value` entries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Command (overridden by sshpod in connection mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Entrypoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// User inside the container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Working directory.
    #[serde(rename = "workingdir", skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Host name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Domain name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    /// Labels (sshpod adds its own on top).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Disable networking.
    #[serde(rename = "networkdisabled")]
    pub network_disabled: bool,
    /// Signal used to stop the container.
    #[serde(rename = "stopsignal", skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Seconds to wait after the stop signal before killing.
    #[serde(rename = "stoptimeout", skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    /// Allocate a TTY (accepted; the backend decides per session).
    pub tty: bool,
    /// Keep stdin open (accepted; the backend decides per session).
    #[serde(rename = "openstdin")]
    pub open_stdin: bool,
    /// Attach stdin (accepted; the backend decides).
    #[serde(rename = "attachstdin")]
    pub attach_stdin: bool,
    /// Attach stdout (accepted; the backend decides).
    #[serde(rename = "attachstdout")]
    pub attach_stdout: bool,
    /// Attach stderr (accepted; the backend decides).
    #[serde(rename = "attachstderr")]
    pub attach_stderr: bool,
    /// Close stdin after the first client detaches (accepted; the backend decides).
    #[serde(rename = "stdinonce")]
    pub stdin_once: bool,
    /// Every other field of Docker's `ContainerConfig` that was given (`Healthcheck`,
    /// `ExposedPorts`, `Shell`…), under its API name and in the API's form, for the engine.
    #[serde(flatten, serialize_with = "lower_keys")]
    pub other: BTreeMap<String, Value>,
}

impl Default for ContainerConfig {
    fn default() -> Self {
        Self {
            image: DEFAULT_IMAGE.to_owned(),
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
            other: BTreeMap::new(),
        }
    }
}

impl ContainerConfig {
    /// Resolves `container` as written at `key` (absent or `null`: the defaults).
    pub(crate) fn resolve(check: &mut Checker<'_>, key: &str, written: Option<Value>) -> Self {
        let api = normalise(
            check,
            key,
            &CONTAINER_CONFIG,
            written.unwrap_or(Value::Null),
        );
        let mut f = Fields { key, api };
        let c = check;
        let config = Self {
            image: f
                .take(c, "Image")
                .unwrap_or_else(|| DEFAULT_IMAGE.to_owned()),
            env: f.take(c, "Env").unwrap_or_default(),
            cmd: f.take(c, "Cmd"),
            entrypoint: f.take(c, "Entrypoint"),
            user: f.take(c, "User"),
            working_dir: f.take(c, "WorkingDir"),
            hostname: f.take(c, "Hostname"),
            domainname: f.take(c, "Domainname"),
            labels: f.take(c, "Labels").unwrap_or_default(),
            network_disabled: f.take(c, "NetworkDisabled").unwrap_or_default(),
            stop_signal: f.take(c, "StopSignal"),
            stop_timeout: f.take(c, "StopTimeout"),
            tty: f.take(c, "Tty").unwrap_or_default(),
            open_stdin: f.take(c, "OpenStdin").unwrap_or_default(),
            attach_stdin: f.take(c, "AttachStdin").unwrap_or_default(),
            attach_stdout: f.take(c, "AttachStdout").unwrap_or_default(),
            attach_stderr: f.take(c, "AttachStderr").unwrap_or_default(),
            stdin_once: f.take(c, "StdinOnce").unwrap_or_default(),
            other: BTreeMap::new(),
        };
        let config = Self {
            other: f.rest(),
            ..config
        };
        config.check(c, key);
        config
    }

    fn check(&self, check: &mut Checker<'_>, key: &str) {
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

    /// The whole `ContainerConfig` as Docker's API spells it (JSON, API names), for the engine.
    pub fn to_api(&self) -> Map<String, Value> {
        let mut api: Map<String, Value> = self.other.clone().into_iter().collect();
        put(&mut api, "Image", &self.image);
        if !self.env.is_empty() {
            put(&mut api, "Env", &self.env);
        }
        put(&mut api, "Cmd", &self.cmd);
        put(&mut api, "Entrypoint", &self.entrypoint);
        put(&mut api, "User", &self.user);
        put(&mut api, "WorkingDir", &self.working_dir);
        put(&mut api, "Hostname", &self.hostname);
        put(&mut api, "Domainname", &self.domainname);
        put(&mut api, "Labels", &self.labels);
        put(&mut api, "NetworkDisabled", self.network_disabled);
        put(&mut api, "StopSignal", &self.stop_signal);
        put(&mut api, "StopTimeout", self.stop_timeout);
        put(&mut api, "Tty", self.tty);
        put(&mut api, "OpenStdin", self.open_stdin);
        put(&mut api, "AttachStdin", self.attach_stdin);
        put(&mut api, "AttachStdout", self.attach_stdout);
        put(&mut api, "AttachStderr", self.attach_stderr);
        put(&mut api, "StdinOnce", self.stdin_once);
        api
    }
}

/// The resource limits sshpod gives a default or checks (`host.resources`, or flat on `host`
/// as in Docker's API). The other resource fields (`memoryreservation`, `blkioweight`…) are
/// in [`HostConfig::other`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Resources {
    /// Memory limit in bytes; default 512 MiB; 0 means unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<i64>,
    /// Memory plus swap in bytes; -1 means unlimited swap.
    #[serde(rename = "memoryswap", skip_serializing_if = "Option::is_none")]
    pub memory_swap: Option<i64>,
    /// CPU limit in 1e-9 CPUs; default one CPU unless `cpuquota`/`cpuperiod` is given.
    #[serde(rename = "nanocpus", skip_serializing_if = "Option::is_none")]
    pub nano_cpus: Option<i64>,
    /// Relative CPU weight.
    #[serde(rename = "cpushares", skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<i64>,
    /// CFS quota in microseconds.
    #[serde(rename = "cpuquota", skip_serializing_if = "Option::is_none")]
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds.
    #[serde(rename = "cpuperiod", skip_serializing_if = "Option::is_none")]
    pub cpu_period: Option<i64>,
    /// CPUs the container may run on, e.g. `0-3`.
    #[serde(rename = "cpusetcpus", skip_serializing_if = "Option::is_none")]
    pub cpuset_cpus: Option<String>,
    /// Maximum number of processes; default 1024; 0 or -1 means unlimited.
    #[serde(rename = "pidslimit", skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
}

/// Docker `HostConfig` (`docker.execution.host`).
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
    /// Every other field of Docker's `HostConfig` that was given (`Mounts`, `OomScoreAdj`,
    /// `StorageOpt`, `RestartPolicy`…), resource limits included, under its API name and in
    /// the API's form (resource limits flat), for the engine.
    #[serde(flatten, serialize_with = "lower_keys")]
    pub other: BTreeMap<String, Value>,
}

impl HostConfig {
    /// Resolves `host` as written at `key` (absent or `null`: the secure defaults).
    pub(crate) fn resolve(check: &mut Checker<'_>, key: &str, written: Option<Value>) -> Self {
        let mut api = normalise(check, key, &HOST_CONFIG, written.unwrap_or(Value::Null));
        // `resources` (YAML, Go's embedded struct) and the flat API names are one set of fields.
        if let Some(nested) = api.remove("Resources") {
            let nested = normalise(check, &join(key, "resources"), &RESOURCES, nested);
            for (name, value) in nested {
                if api.contains_key(&name) {
                    check.error(
                        &join(key, &name),
                        format!("is also given in `{key}.resources`; set it only once"),
                    );
                }
                api.insert(name, value);
            }
        }
        let mut f = Fields { key, api };
        let c = check;
        let mut resources = Resources {
            memory: f.take(c, "Memory"),
            memory_swap: f.take(c, "MemorySwap"),
            nano_cpus: f.take(c, "NanoCpus"),
            cpu_shares: f.take(c, "CpuShares"),
            cpu_quota: f.take(c, "CpuQuota"),
            cpu_period: f.take(c, "CpuPeriod"),
            cpuset_cpus: f.take(c, "CpusetCpus"),
            pids_limit: f.take(c, "PidsLimit"),
        };
        let cfs_given = resources.cpu_quota.is_some() || resources.cpu_period.is_some();
        // 0 is Docker's "not set" (what a saved ContainerSSH file holds), not a limit.
        if cfs_given && resources.nano_cpus.is_some_and(|n| n != 0) {
            c.error(
                &join(key, "resources.nanocpus"),
                "cannot be combined with `cpuquota`/`cpuperiod` (Docker refuses both)",
            );
        }
        resources.memory.get_or_insert(DEFAULT_MEMORY);
        resources.pids_limit.get_or_insert(DEFAULT_PIDS_LIMIT);
        if !cfs_given {
            resources.nano_cpus.get_or_insert(DEFAULT_NANO_CPUS);
        }
        let host = Self {
            binds: f.take(c, "Binds").unwrap_or_default(),
            network_mode: f.take(c, "NetworkMode"),
            privileged: f.take(c, "Privileged").unwrap_or_default(),
            readonly_rootfs: f.take(c, "ReadonlyRootfs").unwrap_or_default(),
            cap_add: f.take(c, "CapAdd").unwrap_or_default(),
            cap_drop: f.take(c, "CapDrop").unwrap_or_default(),
            security_opt: f
                .take(c, "SecurityOpt")
                .unwrap_or_else(|| vec![DEFAULT_SECURITY_OPT.to_owned()]),
            tmpfs: f.take(c, "Tmpfs").unwrap_or_default(),
            dns: f.take(c, "Dns").unwrap_or_default(),
            extra_hosts: f.take(c, "ExtraHosts").unwrap_or_default(),
            init: f.take(c, "Init"),
            shm_size: f.take(c, "ShmSize"),
            userns_mode: f.take(c, "UsernsMode"),
            auto_remove: f.take(c, "AutoRemove").unwrap_or_default(),
            runtime: f.take(c, "Runtime"),
            resources,
            other: BTreeMap::new(),
        };
        Self {
            other: f.rest(),
            ..host
        }
    }

    /// The whole `HostConfig` as Docker's API spells it (JSON, API names, resource limits
    /// flat), for the engine.
    pub fn to_api(&self) -> Map<String, Value> {
        let mut api: Map<String, Value> = self.other.clone().into_iter().collect();
        let non_empty = |items: &Vec<String>| (!items.is_empty()).then(|| items.clone());
        put(&mut api, "Binds", non_empty(&self.binds));
        put(&mut api, "NetworkMode", &self.network_mode);
        put(&mut api, "Privileged", self.privileged);
        put(&mut api, "ReadonlyRootfs", self.readonly_rootfs);
        put(&mut api, "CapAdd", non_empty(&self.cap_add));
        put(&mut api, "CapDrop", non_empty(&self.cap_drop));
        put(&mut api, "SecurityOpt", non_empty(&self.security_opt));
        put(
            &mut api,
            "Tmpfs",
            (!self.tmpfs.is_empty()).then_some(&self.tmpfs),
        );
        put(&mut api, "Dns", non_empty(&self.dns));
        put(&mut api, "ExtraHosts", non_empty(&self.extra_hosts));
        put(&mut api, "Init", self.init);
        put(&mut api, "ShmSize", self.shm_size);
        put(&mut api, "UsernsMode", &self.userns_mode);
        put(&mut api, "AutoRemove", self.auto_remove);
        put(&mut api, "Runtime", &self.runtime);
        let r = &self.resources;
        put(&mut api, "Memory", r.memory);
        put(&mut api, "MemorySwap", r.memory_swap);
        put(&mut api, "NanoCpus", r.nano_cpus);
        put(&mut api, "CpuShares", r.cpu_shares);
        put(&mut api, "CpuQuota", r.cpu_quota);
        put(&mut api, "CpuPeriod", r.cpu_period);
        put(&mut api, "CpusetCpus", &r.cpuset_cpus);
        put(&mut api, "PidsLimit", r.pids_limit);
        api
    }
}

/// `docker.execution.network` (Docker `NetworkingConfig`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NetworkConfig {
    /// Network name to endpoint settings (Docker's `EndpointSettings`, API names), passed
    /// to Docker as given.
    #[serde(rename = "endpointsconfig")]
    pub endpoints_config: BTreeMap<String, Value>,
}

impl NetworkConfig {
    /// Resolves `network` as written at `key`.
    pub(crate) fn resolve(check: &mut Checker<'_>, key: &str, written: Option<Value>) -> Self {
        let api = normalise(
            check,
            key,
            &NETWORKING_CONFIG,
            written.unwrap_or(Value::Null),
        );
        let mut f = Fields { key, api };
        Self {
            endpoints_config: f.take(check, "EndpointsConfig").unwrap_or_default(),
        }
    }

    /// The `NetworkingConfig` as Docker's API spells it.
    pub fn to_api(&self) -> Map<String, Value> {
        let mut api = Map::new();
        if !self.endpoints_config.is_empty() {
            put(&mut api, "EndpointsConfig", &self.endpoints_config);
        }
        api
    }
}

/// `docker.execution.platform` (OCI platform): the platform of the image to run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PlatformConfig {
    /// CPU architecture, e.g. `amd64`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// Operating system, e.g. `linux`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// CPU variant, e.g. `v8`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl PlatformConfig {
    /// Resolves `platform` as written at `key`. Docker's create call takes the platform as
    /// `os/architecture/variant`; `os.version` and `os.features` have no place in it and are
    /// dropped with a warning.
    pub(crate) fn resolve(check: &mut Checker<'_>, key: &str, written: Option<Value>) -> Self {
        let api = normalise(check, key, &PLATFORM, written.unwrap_or(Value::Null));
        let mut f = Fields { key, api };
        let platform = Self {
            architecture: f.take(check, "architecture"),
            os: f.take(check, "os"),
            variant: f.take(check, "variant"),
        };
        let set = |value: &Value| {
            !matches!(value, Value::String(s) if s.is_empty())
                && !matches!(value, Value::Array(items) if items.is_empty())
        };
        for (name, _) in f.rest().iter().filter(|(_, value)| set(value)) {
            let at = join(key, name);
            check.warn(
                &at,
                format_args!(
                    "`{at}` is ignored: Docker's create call takes only os, architecture and variant"
                ),
            );
        }
        platform
    }

    /// The platform as Docker's create call takes it (`linux/arm64/v8`); empty when none is
    /// set. An architecture without an operating system means Linux.
    pub fn to_api(&self) -> String {
        let given = |part: &Option<String>| part.clone().filter(|p| !p.is_empty());
        let (os, architecture, variant) = (
            given(&self.os),
            given(&self.architecture),
            given(&self.variant),
        );
        match (os, architecture) {
            (None, None) => String::new(),
            (Some(os), None) => os,
            (os, Some(architecture)) => {
                let os = os.unwrap_or_else(|| "linux".to_owned());
                match variant {
                    Some(variant) => format!("{os}/{architecture}/{variant}"),
                    None => format!("{os}/{architecture}"),
                }
            }
        }
    }
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
