//! ContainerSSH configuration files of the shapes ContainerSSH documents and writes, loaded
//! as a user moving over would load them: Kubernetes pod specs that leave the containers to
//! the defaults, and backend sections the file does not select.

#![allow(clippy::unwrap_used)]

mod common;

use sshpod_config::{parse_str, Backend, Format};

use common::{file, loads, refused, AUTH};

#[test]
fn a_docker_file_is_not_refused_for_its_unused_kubernetes_section() {
    let loaded = loads("containerssh-docker/unused-kubernetes.yaml");
    assert_eq!(loaded.config.backend, Backend::Docker);
    // The same section is refused once it is the selected backend's.
    let text = std::fs::read_to_string(file("containerssh-docker/unused-kubernetes.yaml"))
        .unwrap()
        .replace("backend: docker", "backend: kubernetes");
    let errors = refused(&text);
    for key in [
        "kubernetes.connection.host",
        "kubernetes.connection.qps",
        "kubernetes.connection.bearerTokenFile",
        "kubernetes.pod.spec.containers",
        "kubernetes.pod.idleCommand",
        "kubernetes.timeouts.podStart",
    ] {
        assert!(
            errors.iter().any(|e| e.contains(&format!("`{key}`"))),
            "{key}: {errors:#?}"
        );
    }
    // An unknown key stays an error in any section, as in ContainerSSH.
    let errors = refused(&format!(
        "{AUTH}kubernetes:\n  pod:\n    spec:\n      nodeNme: x\n"
    ));
    assert!(
        errors[0].contains("kubernetes.pod.spec.nodeNme"),
        "{errors:#?}"
    );
}

#[test]
fn a_kubernetes_file_is_not_refused_for_its_unused_docker_section() {
    let loaded = loads("containerssh-kubernetes/unused-docker.yaml");
    assert_eq!(loaded.config.backend, Backend::Kubernetes);
    let text = std::fs::read_to_string(file("containerssh-kubernetes/unused-docker.yaml"))
        .unwrap()
        .replace("backend: kubernetes", "backend: docker");
    let errors = refused(&text);
    assert_eq!(errors.len(), 4, "{errors:#?}");
}

#[test]
fn a_pod_spec_with_only_a_security_context_keeps_the_console_container() {
    let loaded = loads("containerssh-kubernetes/spec-security-context.yaml");
    let pod = &loaded.config.kubernetes.pod;
    assert_eq!(pod.spec.containers.len(), 1);
    assert_eq!(pod.spec.containers[0].name, "shell");
    assert_eq!(
        pod.spec.containers[0].image.as_deref(),
        Some("sshpod-guest:latest")
    );
    let security = pod.spec.security_context.as_ref().unwrap();
    assert_eq!(security.run_as_user, Some(1000));
    assert_eq!(
        security.run_as_group, None,
        "the file's context, not sshpod's default"
    );
    assert_eq!(pod.namespace(), "containerssh-guests");
    assert_eq!(pod.metadata.generate_name.as_deref(), Some("sshpod-"));
    // The console container still gets sshpod's limits.
    let limits = pod.spec.containers[0]
        .resources
        .as_ref()
        .unwrap()
        .limits
        .as_ref()
        .unwrap();
    assert_eq!(limits["memory"].0, "512Mi");
}

#[test]
fn a_pod_spec_with_only_placement_keeps_the_console_container() {
    let loaded = loads("containerssh-kubernetes/spec-node-placement.yaml");
    let pod = &loaded.config.kubernetes.pod;
    assert_eq!(pod.spec.node_name.as_deref(), Some("worker-1"));
    assert_eq!(pod.spec.runtime_class_name.as_deref(), Some("gvisor"));
    assert_eq!(pod.spec.tolerations.as_ref().map(Vec::len), Some(1));
    assert_eq!(pod.spec.containers[0].name, "shell");
    assert_eq!(pod.namespace(), "default");
    assert_eq!(pod.metadata.labels.as_ref().unwrap()["app"], "guests");
}

#[test]
fn written_containers_are_read_over_the_default_one_as_containerssh_does() {
    let loaded = parse_str(
        &format!(
            "{AUTH}backend: kubernetes\nkubernetes:\n  pod:\n    spec:\n      containers:\n        \
             - name: app\n        - name: sidecar\n          image: busybox\n"
        ),
        Format::Yaml,
        "t.yaml",
    )
    .unwrap_or_else(|errors| panic!("{errors}"));
    let containers = &loaded.config.kubernetes.pod.spec.containers;
    // The first container is decoded over the default one and keeps its image; the second
    // has no default under it.
    assert_eq!(containers[0].name, "app");
    assert_eq!(containers[0].image.as_deref(), Some("sshpod-guest:latest"));
    assert_eq!(containers[1].image.as_deref(), Some("busybox"));
    let errors = refused(&format!(
        "{AUTH}backend: kubernetes\nkubernetes:\n  pod:\n    spec:\n      containers:\n        \
         - name: app\n        - name: sidecar\n"
    ));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains("kubernetes.pod.spec.containers[1].image"),
        "{errors:#?}"
    );
}
