//! The legacy `kuberun` section (ContainerSSH 0.3's KubeRun backend), mapped onto the
//! `kubernetes` model. ContainerSSH itself dropped this format in 0.5; sshpod still reads it,
//! with a one-line deprecation notice.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::check::Checker;
use crate::duration;
use crate::kubernetes::{
    KubernetesConfig, KubernetesConnection, KubernetesTimeouts, PodMode, RawKubernetes, RawPod,
};
use crate::secret::Secret;

/// `kuberun.connection`, exactly the keys of the KubeRun manual.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub(crate) struct RawKuberunConnection {
    host: String,
    path: String,
    cacert_file: Option<String>,
    cacert: Option<String>,
    server_name: Option<String>,
    insecure: bool,
    qps: f32,
    burst: u32,
    /// Timeout for pod operations (default 60s).
    #[serde(with = "duration")]
    timeout: Duration,
    username: Option<String>,
    password: Option<Secret<String>>,
    cert_file: Option<String>,
    cert: Option<String>,
    key_file: Option<String>,
    key: Option<Secret<String>>,
    bearer_token_file: Option<String>,
    bearer_token: Option<Secret<String>>,
}

impl Default for RawKuberunConnection {
    fn default() -> Self {
        let defaults = KubernetesConnection::default();
        Self {
            host: defaults.host,
            path: defaults.path,
            cacert_file: None,
            cacert: None,
            server_name: None,
            insecure: false,
            qps: defaults.qps,
            burst: defaults.burst,
            timeout: KubernetesTimeouts::default().pod_start,
            username: None,
            password: None,
            cert_file: None,
            cert: None,
            key_file: None,
            key: None,
            bearer_token_file: None,
            bearer_token: None,
        }
    }
}

/// `kuberun.pod`, exactly the keys of the KubeRun manual.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub(crate) struct RawKuberunPod {
    namespace: Option<String>,
    pod_spec: Option<serde_json::Value>,
    console_container_number: usize,
    mode: PodMode,
    idle_command: Option<Vec<String>>,
    shell_command: Option<Vec<String>>,
    agent_path: Option<String>,
    enable_agent: Option<bool>,
    subsystems: Option<BTreeMap<String, String>>,
    disable_command: bool,
}

impl Default for RawKuberunPod {
    fn default() -> Self {
        Self {
            namespace: None,
            pod_spec: None,
            console_container_number: 0,
            mode: PodMode::Connection,
            idle_command: None,
            shell_command: None,
            agent_path: None,
            enable_agent: None,
            subsystems: None,
            disable_command: false,
        }
    }
}

/// The `kuberun` section as written in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawKuberun {
    connection: RawKuberunConnection,
    pod: RawKuberunPod,
}

impl RawKuberun {
    /// The same settings in the `kubernetes` model; problems are reported at `kuberun.*` keys.
    pub(crate) fn resolve(self, check: &mut Checker<'_>) -> KubernetesConfig {
        check.warn(
            "kuberun",
            "`kuberun` is deprecated (ContainerSSH 0.3's format); sshpod reads it as \
             `kubernetes`, see the README to move over",
        );
        let c = self.connection;
        let connection = KubernetesConnection {
            host: c.host,
            path: c.path,
            username: c.username,
            password: c.password,
            server_name: c.server_name,
            insecure: c.insecure,
            cert_file: c.cert_file,
            key_file: c.key_file,
            cacert_file: c.cacert_file,
            cert: c.cert,
            key: c.key,
            cacert: c.cacert,
            bearer_token: c.bearer_token,
            bearer_token_file: c.bearer_token_file,
            qps: c.qps,
            burst: c.burst,
            kubeconfig: None,
            context: None,
        };
        // "Timeout for pod operations".
        let timeouts = KubernetesTimeouts {
            pod_start: c.timeout,
            pod_stop: c.timeout,
            ..KubernetesTimeouts::default()
        };
        let p = self.pod;
        let defaults = RawPod::default();
        let metadata = serde_json::json!({
            "namespace": p.namespace.unwrap_or_else(|| crate::DEFAULT_NAMESPACE.to_owned()),
            "generateName": crate::DEFAULT_GENERATE_NAME,
        });
        let pod = RawPod {
            metadata: Some(metadata),
            spec: p.pod_spec,
            console_container_number: p.console_container_number,
            mode: p.mode,
            create_missing_pods: false,
            lifeline: defaults.lifeline,
            idle_command: p.idle_command.unwrap_or(defaults.idle_command),
            shell_command: p.shell_command.unwrap_or(defaults.shell_command),
            agent_path: p.agent_path,
            // `enableAgent` is the opposite of `disableAgent`; both are ignored with a warning.
            disable_agent: p.enable_agent.map(|enabled| !enabled),
            subsystems: p.subsystems.unwrap_or(defaults.subsystems),
            disable_command: p.disable_command,
            expose_auth_metadata_as_env: BTreeMap::new(),
            expose_auth_metadata_as_labels: BTreeMap::new(),
            expose_auth_metadata_as_annotations: BTreeMap::new(),
        };
        RawKubernetes {
            connection,
            pod,
            timeouts,
        }
        .resolve_at(check, "kuberun", "podSpec")
    }
}
