//! A pod's spec turned into Docker container settings: command/args/env/workingDir,
//! stdin/tty, resources limits, securityContext and volume mounts. Pure functions, no I/O.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, HealthConfig, HostConfig, Mount, MountType, RestartPolicy,
    RestartPolicyNameEnum,
};
use serde_json::Value;

use crate::quantity;

/// Where a pod volume comes from on the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum VolumeSource {
    /// A Docker named volume (emptyDir: made for the pod; PVC: the claim's volume).
    Named(String),
    Bind(String),
    /// An emptyDir with `medium: Memory`: a tmpfs of the pod's container, `sizeLimit` bytes at
    /// most (None: the engine's default size).
    Tmpfs(Option<i64>),
    /// A host directory of files kube-sim wrote (configMap, secret, projected): always
    /// mounted read-only.
    Files(String),
}

/// The engine-side source of each pod volume, by volume name.
pub type Volumes = HashMap<String, VolumeSource>;

/// A pod volume's engine source; `empty_dir_name` names a pod-owned volume, `claim_name` the
/// PVC's. Err for a volume type kube-sim does not support.
pub fn volume_source(
    volume: &Value,
    empty_dir_name: impl Fn(&str) -> String,
    claim_name: impl Fn(&str) -> String,
) -> Result<VolumeSource, String> {
    let name = volume["name"].as_str().unwrap_or_default();
    if let Some(empty_dir) = volume.get("emptyDir") {
        if empty_dir["medium"] == "Memory" {
            let size = match empty_dir["sizeLimit"].as_str() {
                Some(q) => Some(
                    quantity::memory_bytes(q)
                        .ok_or_else(|| format!("volume {name}: invalid sizeLimit {q}"))?,
                ),
                None => None,
            };
            return Ok(VolumeSource::Tmpfs(size));
        }
        Ok(VolumeSource::Named(empty_dir_name(name)))
    } else if let Some(path) = volume["hostPath"]["path"].as_str() {
        Ok(VolumeSource::Bind(path.to_owned()))
    } else if let Some(claim) = volume["persistentVolumeClaim"]["claimName"].as_str() {
        Ok(VolumeSource::Named(claim_name(claim)))
    } else {
        Err(format!(
            "volume {name}: only emptyDir, hostPath and persistentVolumeClaim are supported"
        ))
    }
}

fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array().map(|a| {
        a.iter()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    })
}

/// Docker's restart policy for a pod's restartPolicy.
pub fn restart_policy(policy: &str) -> RestartPolicy {
    let name = match policy {
        "Never" => RestartPolicyNameEnum::NO,
        "OnFailure" => RestartPolicyNameEnum::ON_FAILURE,
        _ => RestartPolicyNameEnum::ALWAYS,
    };
    RestartPolicy {
        name: Some(name),
        maximum_retry_count: None,
    }
}

/// The merged security context of a container (container fields win over pod fields).
fn security(pod: &Value, container: &Value, field: &str) -> Value {
    let c = &container["securityContext"][field];
    if c.is_null() {
        pod["spec"]["securityContext"][field].clone()
    } else {
        c.clone()
    }
}

/// The user the container runs as, from runAsUser/runAsGroup.
pub fn run_as(pod: &Value, container: &Value) -> Option<String> {
    let user = security(pod, container, "runAsUser").as_i64()?;
    Some(match security(pod, container, "runAsGroup").as_i64() {
        Some(group) => format!("{user}:{group}"),
        None => user.to_string(),
    })
}

/// Why runAsNonRoot forbids starting the container, given the image's configured user.
pub fn non_root_violation(pod: &Value, container: &Value, image_user: &str) -> Option<String> {
    if security(pod, container, "runAsNonRoot").as_bool() != Some(true) {
        return None;
    }
    match security(pod, container, "runAsUser").as_i64() {
        Some(0) => Some("container's runAsUser breaks non-root policy".to_owned()),
        Some(_) => None,
        None => {
            let user = image_user.split(':').next().unwrap_or("");
            if user.is_empty() || user == "root" || user == "0" {
                Some("container has runAsNonRoot and image will run as root".to_owned())
            } else if user.parse::<u32>().is_err() {
                Some(format!(
                    "container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root"
                ))
            } else {
                None
            }
        }
    }
}

/// The pod-level `fsGroup`, the group file volumes belong to.
pub fn fs_group(pod: &Value) -> Option<u32> {
    pod["spec"]["securityContext"]["fsGroup"]
        .as_u64()
        .and_then(|g| u32::try_from(g).ok())
}

/// The container body for one app container. The caller adds name, labels and network mode.
pub fn container_body(
    pod: &Value,
    container: &Value,
    volumes: &Volumes,
) -> Result<ContainerCreateBody, String> {
    let name = container["name"].as_str().unwrap_or_default();
    let env = container["env"].as_array().map(|vars| {
        vars.iter()
            .filter_map(|v| {
                let key = v["name"].as_str()?;
                Some(format!("{key}={}", v["value"].as_str().unwrap_or("")))
            })
            .collect::<Vec<_>>()
    });
    let limits = &container["resources"]["limits"];
    let memory = match limits["memory"].as_str() {
        Some(q) => {
            Some(quantity::memory_bytes(q).ok_or_else(|| format!("invalid memory limit {q}"))?)
        }
        None => None,
    };
    let cpu = match &limits["cpu"] {
        Value::String(q) => {
            Some(quantity::nano_cpus(q).ok_or_else(|| format!("invalid cpu limit {q}"))?)
        }
        Value::Number(n) => n.as_f64().map(|f| (f * 1e9) as i64),
        _ => None,
    };
    let caps = &container["securityContext"]["capabilities"];
    let mut mounts = Vec::new();
    for m in container["volumeMounts"].as_array().into_iter().flatten() {
        let volume = m["name"].as_str().unwrap_or_default();
        let target = m["mountPath"].as_str().unwrap_or_default();
        let source = volumes
            .get(volume)
            .ok_or_else(|| format!("container {name}: volume {volume} not found"))?;
        if let VolumeSource::Tmpfs(size) = source {
            mounts.push(Mount {
                target: Some(target.to_owned()),
                typ: Some(MountType::TMPFS),
                read_only: m["readOnly"].as_bool(),
                tmpfs_options: Some(bollard::models::MountTmpfsOptions {
                    size_bytes: *size,
                    mode: Some(0o1777),
                    ..Default::default()
                }),
                ..Default::default()
            });
            continue;
        }
        let (typ, source, forced_read_only) = match source {
            VolumeSource::Tmpfs(_) => continue,
            VolumeSource::Named(n) => (MountType::VOLUME, n.clone(), false),
            VolumeSource::Bind(p) => (MountType::BIND, p.clone(), false),
            VolumeSource::Files(p) => (MountType::BIND, p.clone(), true),
        };
        mounts.push(Mount {
            target: Some(target.to_owned()),
            source: Some(source),
            typ: Some(typ),
            read_only: if forced_read_only {
                Some(true)
            } else {
                m["readOnly"].as_bool()
            },
            ..Default::default()
        });
    }
    let stdin = container["stdin"].as_bool().unwrap_or(false);
    let fs_group = pod["spec"]["securityContext"]["fsGroup"]
        .as_i64()
        .map(|g| vec![g.to_string()]);
    let no_new_privileges =
        container["securityContext"]["allowPrivilegeEscalation"].as_bool() == Some(false);
    let host_config = HostConfig {
        group_add: fs_group,
        security_opt: no_new_privileges.then(|| vec!["no-new-privileges".to_owned()]),
        memory,
        nano_cpus: cpu,
        cap_add: strings(&caps["add"]),
        cap_drop: strings(&caps["drop"]),
        privileged: security(pod, container, "privileged").as_bool(),
        readonly_rootfs: container["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        mounts: Some(mounts),
        restart_policy: Some(restart_policy(
            pod["spec"]["restartPolicy"].as_str().unwrap_or("Always"),
        )),
        ..Default::default()
    };
    Ok(ContainerCreateBody {
        image: container["image"].as_str().map(str::to_owned),
        entrypoint: strings(&container["command"]),
        cmd: strings(&container["args"]),
        env,
        working_dir: container["workingDir"].as_str().map(str::to_owned),
        user: run_as(pod, container),
        tty: container["tty"].as_bool(),
        open_stdin: Some(stdin),
        stdin_once: container["stdinOnce"].as_bool(),
        attach_stdin: Some(stdin),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        host_config: Some(host_config),
        // The kubelet runs probes, never an image's HEALTHCHECK (and kube-sim runs no probes).
        healthcheck: Some(HealthConfig {
            test: Some(vec!["NONE".to_owned()]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_the_container_spec() {
        let pod =
            json!({"spec": {"restartPolicy": "Never", "securityContext": {"runAsUser": 1000}}});
        let c = json!({
            "name": "main", "image": "img", "command": ["sh"], "args": ["-c", "true"],
            "env": [{"name": "A", "value": "1"}, {"name": "B"}], "workingDir": "/w",
            "stdin": true, "tty": true,
            "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}},
            "securityContext": {"readOnlyRootFilesystem": true, "runAsGroup": 5,
                                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}},
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        });
        let volumes = Volumes::from([("data".to_owned(), VolumeSource::Named("vol".to_owned()))]);
        let body = container_body(&pod, &c, &volumes).unwrap();
        assert_eq!(body.entrypoint, Some(vec!["sh".to_owned()]));
        assert_eq!(body.cmd, Some(vec!["-c".to_owned(), "true".to_owned()]));
        assert_eq!(body.env, Some(vec!["A=1".to_owned(), "B=".to_owned()]));
        assert_eq!(body.user.as_deref(), Some("1000:5"));
        assert_eq!(body.tty, Some(true));
        assert_eq!(body.open_stdin, Some(true));
        let host = body.host_config.unwrap();
        assert_eq!(host.memory, Some(64 * 1024 * 1024));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
        assert_eq!(host.mounts.unwrap()[0].source.as_deref(), Some("vol"));
        assert_eq!(
            host.restart_policy.unwrap().name,
            Some(RestartPolicyNameEnum::NO)
        );
    }

    #[test]
    fn unknown_mount_is_an_error() {
        let c =
            json!({"name": "c", "image": "i", "volumeMounts": [{"name": "x", "mountPath": "/x"}]});
        assert!(container_body(&json!({}), &c, &Volumes::new()).is_err());
    }

    #[test]
    fn run_as_non_root() {
        let pod = json!({"spec": {"securityContext": {"runAsNonRoot": true}}});
        let c = json!({"name": "c"});
        assert!(non_root_violation(&pod, &c, "").is_some());
        assert!(non_root_violation(&pod, &c, "1000").is_none());
        let c = json!({"name": "c", "securityContext": {"runAsUser": 0}});
        assert!(non_root_violation(&pod, &c, "1000").is_some());
        assert!(non_root_violation(&json!({}), &c, "").is_none());
    }

    #[test]
    fn volume_sources() {
        let named = |n: &str| format!("v-{n}");
        assert_eq!(
            volume_source(&json!({"name": "a", "emptyDir": {}}), named, named),
            Ok(VolumeSource::Named("v-a".into()))
        );
        assert_eq!(
            volume_source(
                &json!({"name": "a", "hostPath": {"path": "/tmp"}}),
                named,
                named
            ),
            Ok(VolumeSource::Bind("/tmp".into()))
        );
        assert_eq!(
            volume_source(
                &json!({"name": "a", "persistentVolumeClaim": {"claimName": "home"}}),
                named,
                named
            ),
            Ok(VolumeSource::Named("v-home".into()))
        );
        assert!(volume_source(&json!({"name": "a", "configMap": {}}), named, named).is_err());
        assert_eq!(
            volume_source(
                &json!({"name": "a", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}),
                named,
                named
            ),
            Ok(VolumeSource::Tmpfs(Some(64 << 20)))
        );
    }
}
