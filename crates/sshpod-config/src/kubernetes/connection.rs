//! `kubernetes.connection`: where the API server is and how sshpod authenticates to it.

use serde::{Deserialize, Serialize};

use crate::check::{join, Checker};
use crate::secret::Secret;

/// Default `kubernetes.connection.host`: the API server as seen from inside a cluster.
pub const DEFAULT_KUBERNETES_HOST: &str = "kubernetes.default.svc";

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
    pub(super) fn check(&self, check: &mut Checker<'_>, key: &str) {
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
