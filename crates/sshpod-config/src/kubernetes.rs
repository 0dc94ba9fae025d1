//! The `kubernetes` section: how to reach the cluster and what pod to run for a login.
//!
//! Keys and defaults are ContainerSSH's (0.5/0.6). `pod.metadata` and `pod.spec` are standard
//! Kubernetes objects in camelCase; they are typed with k8s-openapi, whose deserialisers skip
//! unknown fields, so [`unknown_fields`] finds those by comparing what was written with what
//! survived a round trip.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, PodSecurityContext, PodSpec, ResourceRequirements, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::check::{join, Checker};
use crate::container::DEFAULT_IMAGE;
use crate::docker::{DEFAULT_IDLE_COMMAND, DEFAULT_SHELL_COMMAND};
use crate::duration;
use crate::secret::Secret;

/// Default `kubernetes.connection.host`: the API server as seen from inside a cluster.
pub const DEFAULT_KUBERNETES_HOST: &str = "kubernetes.default.svc";
/// Default namespace of guest pods.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Default `generateName` of guest pods.
pub const DEFAULT_GENERATE_NAME: &str = "sshpod-";
/// Name of the container in the default pod spec.
pub const DEFAULT_CONTAINER_NAME: &str = "shell";
/// Default memory limit of a guest container that sets none.
pub const DEFAULT_POD_MEMORY: &str = "512Mi";
/// Default CPU limit of a guest container that sets none.
pub const DEFAULT_POD_CPU: &str = "1";
/// User and group id guest pods run as when the spec sets no pod security context.
pub const DEFAULT_RUN_AS_USER: i64 = 1000;

/// `kubernetes.connection`: how to reach and authenticate to the API server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct KubernetesConnection {
    /// API server: `host`, `host:port` or an `https://` URL (default `kubernetes.default.svc`).
    pub host: String,
    /// API path prefix (default `/api`, as in ContainerSSH; sshpod addresses the core API
    /// under it).
    pub path: String,
    /// Basic-auth user name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Basic-auth password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret<String>>,
    /// Name to expect in the server certificate (and send as SNI) instead of the host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Skip verification of the server certificate. Never do this outside a lab.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// Client certificate file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    /// Client key file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    /// CA certificate file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cacert_file: Option<String>,
    /// Client certificate, inline PEM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    /// Client key, inline PEM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Secret<String>>,
    /// CA certificate, inline PEM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cacert: Option<String>,
    /// Bearer token, inline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<Secret<String>>,
    /// Bearer token file, re-read when it changes (projected service account tokens rotate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<String>,
    /// Sustained API requests per second for the whole sshpod process (default 5).
    pub qps: f32,
    /// Requests allowed in a burst above `qps` (default 10).
    pub burst: u32,
    /// A kubeconfig file to take the cluster, user and CA from instead (sshpod extension).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,
    /// The kubeconfig context to use; default is the file's current context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

impl Default for KubernetesConnection {
    fn default() -> Self {
        Self {
            host: DEFAULT_KUBERNETES_HOST.to_owned(),
            path: "/api".to_owned(),
            username: None,
            password: None,
            server_name: None,
            insecure: false,
            cert_file: None,
            key_file: None,
            cacert_file: None,
            cert: None,
            key: None,
            cacert: None,
            bearer_token: None,
            bearer_token_file: None,
            qps: 5.0,
            burst: 10,
            kubeconfig: None,
            context: None,
        }
    }
}

impl KubernetesConnection {
    fn check(&self, check: &mut Checker<'_>, key: &str) {
        let at = |name: &str| join(key, name);
        if self.host.trim().is_empty() && self.kubeconfig.is_none() {
            check.error(&at("host"), "is required");
        }
        if !(self.qps > 0.0 && self.qps.is_finite()) {
            check.error(&at("qps"), "must be a number greater than 0");
        }
        if self.burst == 0 {
            check.error(&at("burst"), "must be at least 1");
        }
        for (a, b) in [
            ("cert", "certFile"),
            ("key", "keyFile"),
            ("cacert", "cacertFile"),
            ("bearerToken", "bearerTokenFile"),
        ] {
            let given = |name: &str| match name {
                "cert" => self.cert.is_some(),
                "certFile" => self.cert_file.is_some(),
                "key" => self.key.is_some(),
                "keyFile" => self.key_file.is_some(),
                "cacert" => self.cacert.is_some(),
                "cacertFile" => self.cacert_file.is_some(),
                "bearerToken" => self.bearer_token.is_some(),
                _ => self.bearer_token_file.is_some(),
            };
            if given(a) && given(b) {
                check.error(&at(b), format!("set either `{a}` or `{b}`, not both"));
            }
        }
        let has_cert = self.cert.is_some() || self.cert_file.is_some();
        let has_key = self.key.is_some() || self.key_file.is_some();
        if has_cert != has_key {
            let missing = if has_cert { "key" } else { "cert" };
            check.error(
                &at(missing),
                "a client certificate needs both `cert` (or `certFile`) and `key` (or `keyFile`)",
            );
        }
        if self.username.is_some() != self.password.is_some() {
            let missing = if self.username.is_some() {
                "password"
            } else {
                "username"
            };
            check.error(
                &at(missing),
                "basic authentication needs `username` and `password`",
            );
        }
        if let Some(file) = &self.bearer_token_file {
            if !std::path::Path::new(file).is_file() {
                check.error(&at("bearerTokenFile"), format!("`{file}` does not exist"));
            }
        }
        if self.context.is_some() && self.kubeconfig.is_none() {
            check.error(&at("context"), "needs `kubeconfig`");
        }
        if self.insecure {
            check.warn(
                &at("insecure"),
                format_args!(
                    "`{}` is set: the API server's certificate is NOT verified; anyone on the \
                     path can read and change sshpod's traffic with the cluster",
                    at("insecure")
                ),
            );
        }
    }
}

/// `kubernetes.pod.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PodMode {
    /// A pod per SSH connection, kept alive by `idleCommand`; each session is an exec.
    #[default]
    Connection,
    /// A pod per SSH session, running the session's command; reached by attach.
    Session,
    /// Exec into an existing pod named by `pod.metadata.name`, never deleted.
    Persistent,
}

/// `kubernetes.pod` as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub(crate) struct RawPod {
    pub(crate) metadata: Option<serde_json::Value>,
    pub(crate) spec: Option<serde_json::Value>,
    pub(crate) console_container_number: usize,
    pub(crate) mode: PodMode,
    pub(crate) create_missing_pods: bool,
    pub(crate) lifeline: bool,
    pub(crate) idle_command: Vec<String>,
    pub(crate) shell_command: Vec<String>,
    pub(crate) agent_path: Option<String>,
    pub(crate) disable_agent: Option<bool>,
    pub(crate) subsystems: BTreeMap<String, String>,
    #[serde(skip)]
    pub(crate) disable_command: bool,
    pub(crate) expose_auth_metadata_as_env: BTreeMap<String, String>,
    pub(crate) expose_auth_metadata_as_labels: BTreeMap<String, String>,
    pub(crate) expose_auth_metadata_as_annotations: BTreeMap<String, String>,
}

impl Default for RawPod {
    fn default() -> Self {
        Self {
            metadata: None,
            spec: None,
            console_container_number: 0,
            mode: PodMode::default(),
            create_missing_pods: false,
            lifeline: false,
            idle_command: strings(DEFAULT_IDLE_COMMAND),
            shell_command: strings(DEFAULT_SHELL_COMMAND),
            agent_path: None,
            disable_agent: None,
            subsystems: BTreeMap::from([(
                "sftp".to_owned(),
                "/usr/lib/openssh/sftp-server".to_owned(),
            )]),
            disable_command: false,
            expose_auth_metadata_as_env: BTreeMap::new(),
            expose_auth_metadata_as_labels: BTreeMap::new(),
            expose_auth_metadata_as_annotations: BTreeMap::new(),
        }
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

/// The pod to run (`kubernetes.pod`), defaults and secure defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodConfig {
    /// Pod metadata (namespace, generateName or name, labels, annotations).
    pub metadata: ObjectMeta,
    /// The pod spec.
    pub spec: PodSpec,
    /// Which container of the spec sessions run in.
    pub console_container_number: usize,
    /// Pod per connection, per session, or one persistent pod.
    pub mode: PodMode,
    /// Persistent mode: create the pod when it does not exist.
    pub create_missing_pods: bool,
    /// Connection mode: hold an attach to the idle command's stdin for as long as the
    /// connection lives, so the pod ends by itself if sshpod is killed, even when no sshpod
    /// runs any more (sshpod extension, default false: the instance Lease covers a killed
    /// sshpod). It costs one API request and one open stream per connection.
    pub lifeline: bool,
    /// Command that keeps a connection-mode pod alive.
    pub idle_command: Vec<String>,
    /// Command run for a shell request.
    pub shell_command: Vec<String>,
    /// Subsystem name to the program that serves it.
    pub subsystems: BTreeMap<String, String>,
    /// Refuse `exec` requests (commands); shells and subsystems still work. Legacy `kuberun`
    /// only.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub disable_command: bool,
    /// Authentication metadata key to environment variable name.
    pub expose_auth_metadata_as_env: BTreeMap<String, String>,
    /// Authentication metadata key to pod label name.
    pub expose_auth_metadata_as_labels: BTreeMap<String, String>,
    /// Authentication metadata key to pod annotation name.
    pub expose_auth_metadata_as_annotations: BTreeMap<String, String>,
}

impl PodConfig {
    /// The namespace pods are created in.
    pub fn namespace(&self) -> &str {
        self.metadata
            .namespace
            .as_deref()
            .unwrap_or(DEFAULT_NAMESPACE)
    }
}

impl RawPod {
    /// `key` is where the pod section is (`kubernetes.pod`), `spec_key` the name of its spec
    /// key (`spec`, or `podSpec` in the legacy `kuberun` section).
    fn resolve(self, check: &mut Checker<'_>, key: &str, spec_key: &str) -> PodConfig {
        let at = |name: &str| join(key, name);
        const NO_AGENT: &str = "is ignored: sshpod needs no agent in the image";
        if self.agent_path.is_some() {
            check.warn(
                &at("agentPath"),
                format_args!("`{}` {NO_AGENT}", at("agentPath")),
            );
        }
        if self.disable_agent.is_some() {
            check.warn(
                &at("disableAgent"),
                format_args!("`{}` {NO_AGENT}", at("disableAgent")),
            );
        }
        let metadata = match self.metadata {
            Some(value) => typed::<ObjectMeta>(check, &at("metadata"), value).unwrap_or_default(),
            None => ObjectMeta {
                namespace: Some(DEFAULT_NAMESPACE.to_owned()),
                generate_name: Some(DEFAULT_GENERATE_NAME.to_owned()),
                ..ObjectMeta::default()
            },
        };
        let mut spec_is_valid = true;
        let mut spec = match self.spec {
            Some(value) => typed::<PodSpec>(check, &at(spec_key), value).unwrap_or_else(|| {
                // Reported already; checking the placeholder would only add noise.
                spec_is_valid = false;
                PodSpec::default()
            }),
            None => PodSpec {
                containers: vec![Container {
                    name: DEFAULT_CONTAINER_NAME.to_owned(),
                    image: Some(DEFAULT_IMAGE.to_owned()),
                    ..Container::default()
                }],
                ..PodSpec::default()
            },
        };
        apply_secure_defaults(&mut spec);
        let pod = PodConfig {
            metadata,
            spec,
            console_container_number: self.console_container_number,
            mode: self.mode,
            create_missing_pods: self.create_missing_pods,
            lifeline: self.lifeline,
            idle_command: self.idle_command,
            shell_command: self.shell_command,
            subsystems: self.subsystems,
            disable_command: self.disable_command,
            expose_auth_metadata_as_env: self.expose_auth_metadata_as_env,
            expose_auth_metadata_as_labels: self.expose_auth_metadata_as_labels,
            expose_auth_metadata_as_annotations: self.expose_auth_metadata_as_annotations,
        };
        if spec_is_valid {
            pod.check(check, key);
        }
        pod
    }
}

impl PodConfig {
    fn check(&self, check: &mut Checker<'_>, key: &str) {
        let at = |name: &str| join(key, name);
        if self
            .metadata
            .namespace
            .as_deref()
            .is_some_and(str::is_empty)
        {
            check.error(&at("metadata.namespace"), "must not be empty");
        }
        if self.spec.containers.is_empty() {
            check.error(&at("spec.containers"), "needs at least one container");
        } else if self.console_container_number >= self.spec.containers.len() {
            check.error(
                &at("consoleContainerNumber"),
                format!(
                    "is {} but the pod has {} container(s)",
                    self.console_container_number,
                    self.spec.containers.len()
                ),
            );
        }
        for (index, container) in self.spec.containers.iter().enumerate() {
            if container
                .image
                .as_deref()
                .is_none_or(|i| i.trim().is_empty())
            {
                check.error(
                    &at(&format!("spec.containers[{index}].image")),
                    "is required",
                );
            }
            if container.name.trim().is_empty() {
                check.error(
                    &at(&format!("spec.containers[{index}].name")),
                    "is required",
                );
            }
        }
        let needs_commands = match self.mode {
            PodMode::Connection => true,
            PodMode::Persistent => self.create_missing_pods,
            PodMode::Session => false,
        };
        if needs_commands {
            for (name, command) in [
                ("idleCommand", &self.idle_command),
                ("shellCommand", &self.shell_command),
            ] {
                if command.is_empty() {
                    check.error(&at(name), "must not be empty in this mode");
                }
            }
        }
        match self.mode {
            PodMode::Session => {
                if self
                    .spec
                    .restart_policy
                    .as_deref()
                    .is_some_and(|p| p != "Never")
                {
                    check.error(
                        &at("spec.restartPolicy"),
                        "must be `Never` (or unset) in `session` mode",
                    );
                }
            }
            PodMode::Persistent => {
                if self.metadata.name.as_deref().is_none_or(str::is_empty) {
                    check.error(
                        &at("metadata.name"),
                        "is required in `persistent` mode: it names the pod to exec into",
                    );
                }
            }
            PodMode::Connection => {}
        }
        if self.create_missing_pods && self.mode != PodMode::Persistent {
            check.warn(
                &at("createMissingPods"),
                format_args!(
                    "`{}` only applies to `persistent` mode",
                    at("createMissingPods")
                ),
            );
        }
        for (name, path) in &self.subsystems {
            if path.trim().is_empty() {
                check.error(
                    &at(&format!("subsystems.{name}")),
                    "must name the program that serves the subsystem",
                );
            }
        }
    }
}

/// Non-root and resource limits, unless the spec says otherwise: a pod without a pod-level
/// security context runs as user and group 1000 with `runAsNonRoot`; a container without
/// limits gets 512Mi of memory and one CPU; a container without a security context may not
/// escalate privileges and drops every capability.
fn apply_secure_defaults(spec: &mut PodSpec) {
    if spec.security_context.is_none() {
        spec.security_context = Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(DEFAULT_RUN_AS_USER),
            run_as_group: Some(DEFAULT_RUN_AS_USER),
            fs_group: Some(DEFAULT_RUN_AS_USER),
            ..PodSecurityContext::default()
        });
    }
    for container in &mut spec.containers {
        let resources = container
            .resources
            .get_or_insert_with(ResourceRequirements::default);
        let limits = resources.limits.get_or_insert_with(BTreeMap::new);
        limits
            .entry("memory".to_owned())
            .or_insert_with(|| Quantity(DEFAULT_POD_MEMORY.to_owned()));
        limits
            .entry("cpu".to_owned())
            .or_insert_with(|| Quantity(DEFAULT_POD_CPU.to_owned()));
        if container.security_context.is_none() {
            container.security_context = Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                capabilities: Some(k8s_openapi::api::core::v1::Capabilities {
                    drop: Some(vec!["ALL".to_owned()]),
                    add: None,
                }),
                ..SecurityContext::default()
            });
        }
    }
}

/// Deserialises a Kubernetes object, reporting type errors and keys it does not know.
fn typed<T>(check: &mut Checker<'_>, key: &str, value: serde_json::Value) -> Option<T>
where
    T: serde::de::DeserializeOwned + Serialize,
{
    let parsed: T = match serde_path_to_error::deserialize(&value) {
        Ok(parsed) => parsed,
        Err(error) => {
            let path = error.path().to_string();
            let inner = error.into_inner();
            let at = if path == "." {
                key.to_owned()
            } else {
                join(key, &path)
            };
            check.error(&at, inner.to_string());
            return None;
        }
    };
    let kept = serde_json::to_value(&parsed).unwrap_or(serde_json::Value::Null);
    for unknown in unknown_fields(&value, &kept, "") {
        check.error_at_key(
            &join(key, &unknown),
            format!(
                "unknown key `{}` in a Kubernetes object",
                last_segment(&unknown)
            ),
        );
    }
    Some(parsed)
}

fn last_segment(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// Paths (dotted, `[i]` for list items) of object keys in `written` that are absent from `kept`.
/// Keys whose value was null or empty may be dropped by serialisation; those are not reported.
pub(crate) fn unknown_fields(
    written: &serde_json::Value,
    kept: &serde_json::Value,
    path: &str,
) -> Vec<String> {
    use serde_json::Value;
    let mut out = Vec::new();
    match (written, kept) {
        (Value::Object(w), Value::Object(k)) => {
            for (name, value) in w {
                let child = join(path, name);
                match k.get(name) {
                    Some(kept_value) => out.extend(unknown_fields(value, kept_value, &child)),
                    None if is_empty(value) => {}
                    None => out.push(child),
                }
            }
        }
        (Value::Array(w), Value::Array(k)) => {
            for (index, (value, kept_value)) in w.iter().zip(k).enumerate() {
                out.extend(unknown_fields(
                    value,
                    kept_value,
                    &format!("{path}[{index}]"),
                ));
            }
        }
        _ => {}
    }
    out
}

fn is_empty(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => true,
        serde_json::Value::Object(m) => m.is_empty(),
        serde_json::Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// `kubernetes.timeouts`. Each accepts a duration string or integer nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct KubernetesTimeouts {
    /// Creating the pod until it is ready (default 60s).
    #[serde(with = "duration")]
    pub pod_start: Duration,
    /// Deleting the pod (default 60s).
    #[serde(with = "duration")]
    pub pod_stop: Duration,
    /// Starting a command in the pod (default 60s).
    #[serde(with = "duration")]
    pub command_start: Duration,
    /// Delivering a signal (default 60s).
    #[serde(with = "duration")]
    pub signal: Duration,
    /// Changing the terminal size (default 60s).
    #[serde(with = "duration")]
    pub window: Duration,
    /// Any other API request (default 15s).
    #[serde(with = "duration")]
    pub http: Duration,
    /// How long this instance's Lease lasts without renewal before other instances treat
    /// the instance as dead and delete its pods (sshpod extension, default 60s). It is
    /// renewed every third of that.
    #[serde(with = "duration")]
    pub instance_lease: Duration,
}

impl Default for KubernetesTimeouts {
    fn default() -> Self {
        let minute = Duration::from_secs(60);
        Self {
            pod_start: minute,
            pod_stop: minute,
            command_start: minute,
            signal: minute,
            window: minute,
            http: Duration::from_secs(15),
            instance_lease: minute,
        }
    }
}

impl KubernetesTimeouts {
    fn check(&self, check: &mut Checker<'_>, key: &str) {
        for (name, value) in [
            ("podStart", self.pod_start),
            ("podStop", self.pod_stop),
            ("commandStart", self.command_start),
            ("signal", self.signal),
            ("window", self.window),
            ("http", self.http),
        ] {
            if value.is_zero() {
                check.error(&join(key, name), "must be greater than 0");
            }
        }
        // A Lease counts in whole seconds, and a renewal every third of it must fit.
        if self.instance_lease < Duration::from_secs(3) {
            check.error(
                &join(key, "instanceLease"),
                "must be at least 3s (the Lease is renewed every third of it)",
            );
        }
    }
}

/// The `kubernetes` section as written in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawKubernetes {
    pub(crate) connection: KubernetesConnection,
    pub(crate) pod: RawPod,
    pub(crate) timeouts: KubernetesTimeouts,
}

/// Kubernetes backend settings (`kubernetes`, or the legacy `kuberun`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KubernetesConfig {
    /// The API server and credentials.
    pub connection: KubernetesConnection,
    /// The pod to run.
    pub pod: PodConfig,
    /// Deadlines for Kubernetes operations.
    pub timeouts: KubernetesTimeouts,
}

impl RawKubernetes {
    pub(crate) fn resolve(self, check: &mut Checker<'_>) -> KubernetesConfig {
        self.resolve_at(check, "kubernetes", "spec")
    }

    /// Resolves a section found at `key` (`kubernetes`, or `kuberun` mapped onto this shape).
    pub(crate) fn resolve_at(
        self,
        check: &mut Checker<'_>,
        key: &str,
        spec_key: &str,
    ) -> KubernetesConfig {
        self.connection.check(check, &join(key, "connection"));
        self.timeouts.check(check, &join(key, "timeouts"));
        KubernetesConfig {
            connection: self.connection,
            pod: self.pod.resolve(check, &join(key, "pod"), spec_key),
            timeouts: self.timeouts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_found_at_any_depth() {
        let written = json!({
            "containers": [{"name": "a", "imagee": "x", "env": []}],
            "hostNetwork": false,
            "nope": {"a": 1},
            "empty": null
        });
        let kept = json!({"containers": [{"name": "a"}], "hostNetwork": false});
        assert_eq!(
            unknown_fields(&written, &kept, ""),
            vec!["containers[0].imagee".to_owned(), "nope".to_owned()]
        );
    }

    #[test]
    fn secure_defaults_fill_only_what_is_missing() {
        let mut spec = PodSpec {
            containers: vec![
                Container {
                    name: "a".into(),
                    resources: Some(ResourceRequirements {
                        limits: Some(BTreeMap::from([("memory".into(), Quantity("2Gi".into()))])),
                        ..Default::default()
                    }),
                    security_context: Some(SecurityContext {
                        privileged: Some(true),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                Container {
                    name: "b".into(),
                    ..Default::default()
                },
            ],
            security_context: Some(PodSecurityContext::default()),
            ..Default::default()
        };
        apply_secure_defaults(&mut spec);
        // An explicit (even empty) pod security context is the operator's choice.
        assert_eq!(spec.security_context, Some(PodSecurityContext::default()));
        let a = &spec.containers[0];
        let limits = a.resources.as_ref().unwrap().limits.as_ref().unwrap();
        assert_eq!(limits["memory"], Quantity("2Gi".into()));
        assert_eq!(limits["cpu"], Quantity("1".into()));
        assert_eq!(a.security_context.as_ref().unwrap().privileged, Some(true));
        let b = &spec.containers[1];
        let context = b.security_context.as_ref().unwrap();
        assert_eq!(context.allow_privilege_escalation, Some(false));
    }
}
