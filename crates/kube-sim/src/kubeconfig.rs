//! The kubeconfig kube-sim writes: one cluster (server URL and CA), an admin with a bearer
//! token (the current context), an admin with a client certificate, and a user restricted to
//! one namespace.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Everything the kubeconfig names.
pub struct KubeconfigData<'a> {
    pub server: &'a str,
    pub ca_pem: &'a str,
    pub admin_token: &'a str,
    pub cert_pem: &'a str,
    pub key_pem: &'a str,
    pub restricted_token: &'a str,
    pub restricted_namespace: &'a str,
}

/// The kubeconfig as YAML. Contexts: `kube-sim` (admin, token), `kube-sim-cert` (admin,
/// client certificate), `kube-sim-restricted` (namespace-restricted token).
pub fn render(d: &KubeconfigData<'_>) -> String {
    let ca = STANDARD.encode(d.ca_pem);
    let cert = STANDARD.encode(d.cert_pem);
    let key = STANDARD.encode(d.key_pem);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: kube-sim
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: admin
  user:
    token: {admin}
- name: admin-cert
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
- name: restricted
  user:
    token: {restricted}
contexts:
- name: kube-sim
  context:
    cluster: kube-sim
    user: admin
    namespace: default
- name: kube-sim-cert
  context:
    cluster: kube-sim
    user: admin-cert
    namespace: default
- name: kube-sim-restricted
  context:
    cluster: kube-sim
    user: restricted
    namespace: {ns}
current-context: kube-sim
preferences: {{}}
",
        server = d.server,
        admin = d.admin_token,
        restricted = d.restricted_token,
        ns = d.restricted_namespace,
    )
}
