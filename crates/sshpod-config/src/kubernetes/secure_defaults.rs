//! What a guest pod gets when its spec leaves security and resources open: kept apart so the
//! whole hardening policy can be read (and reviewed) in one place.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, PodSecurityContext, PodSpec, ResourceRequirements, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Default memory limit of a guest container that sets none.
pub const DEFAULT_POD_MEMORY: &str = "512Mi";
/// Default CPU limit of a guest container that sets none.
pub const DEFAULT_POD_CPU: &str = "1";
/// User and group id guest pods run as when the spec sets no pod security context.
pub const DEFAULT_RUN_AS_USER: i64 = 1000;

/// Non-root and resource limits, unless the spec says otherwise: a pod without a pod-level
/// security context runs as user and group 1000 with `runAsNonRoot`; a container without
/// limits gets 512Mi of memory and one CPU; a container without a security context may not
/// escalate privileges and drops every capability.
pub(super) fn apply_secure_defaults(spec: &mut PodSpec) {
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
                capabilities: Some(Capabilities {
                    drop: Some(vec!["ALL".to_owned()]),
                    add: None,
                }),
                ..SecurityContext::default()
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Container;

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
