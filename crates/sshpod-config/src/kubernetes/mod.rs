//! The `kubernetes` section: how to reach the cluster and what pod to run for a login.
//!
//! Keys and defaults are ContainerSSH's (0.5/0.6). One file per concern: [`connection`],
//! [`pod`] (with the [`secure_defaults`] it applies and the [`object`] typing of the standard
//! Kubernetes objects it embeds) and [`timeouts`]. This file only ties them together; the
//! submodules stay private and their types are re-exported here.

mod connection;
mod object;
mod pod;
mod secure_defaults;
mod timeouts;

use serde::{Deserialize, Serialize};

use crate::check::{join, Checker};
use crate::Backend;

pub use self::connection::{KubernetesConnection, DEFAULT_KUBERNETES_HOST};
pub(crate) use self::pod::RawPod;
pub use self::pod::{
    PodConfig, PodMode, DEFAULT_CONTAINER_NAME, DEFAULT_GENERATE_NAME, DEFAULT_NAMESPACE,
};
pub use self::secure_defaults::{DEFAULT_POD_CPU, DEFAULT_POD_MEMORY, DEFAULT_RUN_AS_USER};
pub use self::timeouts::KubernetesTimeouts;

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
        check.backend_section(Backend::Kubernetes, |check| {
            self.connection.check(check, &join(key, "connection"));
            self.timeouts.check(check, &join(key, "timeouts"));
            KubernetesConfig {
                connection: self.connection,
                pod: self.pod.resolve(check, &join(key, "pod"), spec_key),
                timeouts: self.timeouts,
            }
        })
    }
}
