//! `kubernetes.timeouts`: deadlines for each kind of Kubernetes operation.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::check::{join, Checker};
use crate::duration;

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
    pub(super) fn check(&self, check: &mut Checker<'_>, key: &str) {
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
