//! `kubernetes.pod`: the pod a login runs in, as written and as resolved, and the checks that
//! only make sense once `mode` and the typed spec are known.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::object::typed;
use super::secure_defaults::apply_secure_defaults;
use crate::check::{join, Checker};
use crate::container::DEFAULT_IMAGE;
use crate::docker::{DEFAULT_IDLE_COMMAND, DEFAULT_SHELL_COMMAND};

/// Default namespace of guest pods.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Default `generateName` of guest pods.
pub const DEFAULT_GENERATE_NAME: &str = "sshpod-";
/// Name of the container in the default pod spec.
pub const DEFAULT_CONTAINER_NAME: &str = "shell";

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
    /// A pod per user, shared by all their connections and kept for `homes.gracePeriod`
    /// after the last one ends (sshpod extension).
    User,
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
    pub(super) fn resolve(self, check: &mut Checker<'_>, key: &str, spec_key: &str) -> PodConfig {
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
        // ContainerSSH fills in its defaults before it reads the file, so what the file gives is
        // merged over the default metadata and the default pod spec: a spec with only
        // `securityContext` or `nodeName` keeps the default console container.
        let metadata = match self.metadata {
            Some(value) => typed::<ObjectMeta>(
                check,
                &at("metadata"),
                over_defaults(default_metadata(), value),
            )
            .unwrap_or_default(),
            None => serde_json::from_value(default_metadata()).unwrap_or_default(),
        };
        let mut spec_is_valid = true;
        let mut spec = match self.spec {
            Some(value) => {
                typed::<PodSpec>(check, &at(spec_key), over_defaults(default_spec(), value))
                    .unwrap_or_else(|| {
                        // Reported already; checking the placeholder would only add noise.
                        spec_is_valid = false;
                        PodSpec::default()
                    })
            }
            None => serde_json::from_value(default_spec()).unwrap_or_default(),
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

/// ContainerSSH's default `pod.metadata`, with sshpod's name prefix.
fn default_metadata() -> Value {
    json!({"namespace": DEFAULT_NAMESPACE, "generateName": DEFAULT_GENERATE_NAME})
}

/// ContainerSSH's default `pod.spec`, with sshpod's guest image: one console container.
fn default_spec() -> Value {
    json!({"containers": [{"name": DEFAULT_CONTAINER_NAME, "image": DEFAULT_IMAGE}]})
}

/// `written` decoded over `defaults` the way Go's JSON decoder (which ContainerSSH's
/// Kubernetes YAML reader uses) fills an already initialised struct: objects merge field by
/// field, the items of a list are decoded over the default items at the same index and the
/// list takes the written length, anything else replaces. `null` empties a list and leaves
/// anything else as it was.
fn over_defaults(defaults: Value, written: Value) -> Value {
    match (defaults, written) {
        (Value::Object(mut defaults), Value::Object(written)) => {
            for (name, value) in written {
                let default = defaults.remove(&name).unwrap_or(Value::Null);
                defaults.insert(name, over_defaults(default, value));
            }
            Value::Object(defaults)
        }
        (Value::Array(defaults), Value::Array(written)) => {
            let mut defaults = defaults.into_iter();
            Value::Array(
                written
                    .into_iter()
                    .map(|item| match defaults.next() {
                        Some(default) => over_defaults(default, item),
                        None => item,
                    })
                    .collect(),
            )
        }
        (Value::Array(_), Value::Null) => Value::Null,
        (defaults, Value::Null) => defaults,
        (_, written) => written,
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
            PodMode::Connection | PodMode::User => true,
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
            PodMode::Connection | PodMode::User => {}
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
