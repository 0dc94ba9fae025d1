//! Homes and extra mounts on Kubernetes: a PersistentVolumeClaim per user (and per-user extra
//! mount), one per shared mount, created on first login (an existing one is kept as it is)
//! and never deleted by the server; the guest pod mounts them into its console container.
//!
//! Claims carry the pod metadata's labels of the configuration, `sshpod.home` (which volume:
//! `home` or the extra mount's name) and `sshpod.user` (the login as a label value), plus the
//! exact login in the annotation `sshpod.user`; shared claims carry `sshpod.mount` instead.
//! Size and storage class come from `homes.size`/`storageClassName` (the seed's `homeSize`,
//! `homeStorageClassName`) and each extra mount's own.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::PostParams;
use kube::Api;
use serde_json::json;
use sshpod_config::PodConfig;
use sshpod_core::homes::{HomeVolume, Planned};
use sshpod_core::{labels, BackendError};

/// On shared claims: the extra mount's name.
const MOUNT_LABEL: &str = "sshpod.mount";

/// The claim for one planned volume.
pub(crate) fn claim(
    planned: &Planned,
    config: &PodConfig,
    user: &str,
) -> Result<PersistentVolumeClaim, BackendError> {
    let (size, class) = (planned.size.as_str(), planned.storage_class_name.as_str());
    let mut claim_labels: BTreeMap<String, String> =
        config.metadata.labels.clone().unwrap_or_default();
    let mut annotations = BTreeMap::new();
    if planned.per_user {
        claim_labels.insert(labels::HOME.to_owned(), planned.kind.clone());
        claim_labels.insert(labels::USER.to_owned(), labels::label_value(user));
        annotations.insert(labels::USER.to_owned(), user.to_owned());
    } else {
        claim_labels.insert(MOUNT_LABEL.to_owned(), planned.kind.clone());
    }
    let access = match (planned.per_user, planned.read_only) {
        (true, _) => "ReadWriteOnce",
        (false, true) => "ReadOnlyMany",
        (false, false) => "ReadWriteMany",
    };
    let mut spec = json!({
        "accessModes": [access],
        "resources": {"requests": {"storage": size}},
    });
    if !class.is_empty() {
        spec["storageClassName"] = json!(class);
    }
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": planned.volume,
            "labels": claim_labels,
            "annotations": annotations,
        },
        "spec": spec,
    }))
    .map_err(|e| BackendError::Settings {
        setting: "homes",
        reason: format!("cannot describe the claim: {e}"),
    })
}

/// Creates the claims that do not exist yet.
pub(crate) async fn ensure(
    claims: &Api<PersistentVolumeClaim>,
    planned: &[Planned],
    config: &PodConfig,
    user: &str,
) -> Result<(), BackendError> {
    for volume in planned {
        let wanted = claim(volume, config, user)?;
        match claims.create(&PostParams::default(), &wanted).await {
            Ok(_) => tracing::info!(claim = %volume.volume, "created a home claim"),
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => {
                return Err(BackendError::Refused {
                    what: "creating your home volume claim",
                    source: Box::new(e),
                })
            }
        }
    }
    Ok(())
}

/// Mounts the planned claims into the pod's console container.
pub(crate) fn mount_into(pod: &mut Pod, planned: &[Planned], console: usize) {
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    for (index, volume) in planned.iter().enumerate() {
        let name = format!("sshpod-volume-{index}");
        volumes.push(k8s_openapi::api::core::v1::Volume {
            name: name.clone(),
            persistent_volume_claim: Some(
                k8s_openapi::api::core::v1::PersistentVolumeClaimVolumeSource {
                    claim_name: volume.volume.clone(),
                    read_only: Some(volume.read_only),
                },
            ),
            ..Default::default()
        });
        mounts.push(k8s_openapi::api::core::v1::VolumeMount {
            name,
            mount_path: volume.target.clone(),
            read_only: Some(volume.read_only),
            ..Default::default()
        });
    }
    if let Some(container) = spec.containers.get_mut(console) {
        container
            .volume_mounts
            .get_or_insert_with(Vec::new)
            .extend(mounts);
        spec.volumes.get_or_insert_with(Vec::new).extend(volumes);
    }
}

/// The operator's view of the homes in the pod namespace (`sshpod homes`), without taking an
/// instance Lease or sweeping anything.
pub struct KubeHomes {
    claims: Api<PersistentVolumeClaim>,
    pods: Api<Pod>,
}

impl KubeHomes {
    /// Connects as the configuration says, to the namespace of `kubernetes.pod`.
    pub async fn connect(config: &sshpod_config::KubernetesConfig) -> Result<Self, BackendError> {
        let clients = crate::client::build(&config.connection, config.timeouts.http).await?;
        let namespace = config.pod.namespace();
        Ok(Self {
            claims: Api::namespaced(clients.connections.clone(), namespace),
            pods: Api::namespaced(clients.connections, namespace),
        })
    }

    /// Every user claim (homes and per-user extra mounts), `user`'s only when given, sorted by
    /// login and kind.
    pub async fn list(&self, user: Option<&str>) -> Result<Vec<HomeVolume>, BackendError> {
        let mut selector = labels::HOME.to_owned();
        if let Some(user) = user {
            selector.push_str(&format!(",{}={}", labels::USER, labels::label_value(user)));
        }
        let listed = self
            .claims
            .list(&kube::api::ListParams::default().labels(&selector))
            .await
            .map_err(|e| BackendError::Engine(Box::new(e)))?;
        let mut homes: Vec<HomeVolume> = listed
            .items
            .into_iter()
            .filter_map(|claim| {
                let meta = claim.metadata;
                let login = meta
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(labels::USER))
                    .cloned()?;
                Some(HomeVolume {
                    kind: meta.labels.as_ref()?.get(labels::HOME)?.clone(),
                    volume: meta.name?,
                    created: meta.creation_timestamp.map(|t| t.0.to_string()),
                    user: login,
                })
            })
            // The label is a sanitised login; the annotation is the exact one.
            .filter(|home| user.is_none_or(|u| home.user == u))
            .collect();
        homes.sort_by(|a, b| (&a.user, &a.kind).cmp(&(&b.user, &b.kind)));
        Ok(homes)
    }

    /// The storage a claim asked for (Kubernetes reports no usage without a pod reading it).
    pub async fn requested(&self, claim: &str) -> Result<String, BackendError> {
        let claim = self
            .claims
            .get(claim)
            .await
            .map_err(|e| BackendError::Engine(Box::new(e)))?;
        Ok(claim
            .spec
            .and_then(|s| s.resources)
            .and_then(|r| r.requests)
            .and_then(|r| r.get("storage").map(|q| q.0.clone()))
            .unwrap_or_default())
    }

    /// Whether `user` has a pod of sshpod that is not being deleted.
    pub async fn user_has_pods(&self, user: &str) -> Result<bool, BackendError> {
        let selector = format!(
            "{},{}={}",
            labels::INSTANCE,
            labels::USER,
            labels::label_value(user)
        );
        let listed = self
            .pods
            .list(&kube::api::ListParams::default().labels(&selector))
            .await
            .map_err(|e| BackendError::Engine(Box::new(e)))?;
        Ok(listed
            .items
            .iter()
            .any(|pod| pod.metadata.deletion_timestamp.is_none()))
    }

    /// Deletes a claim (and, with the usual reclaim policy, its data).
    pub async fn remove(&self, claim: &str) -> Result<(), BackendError> {
        self.claims
            .delete(claim, &kube::api::DeleteParams::default())
            .await
            .map(drop)
            .map_err(|e| BackendError::Engine(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sshpod_config::{ExtraMount, HomesConfig, MountScope};
    use sshpod_core::homes::plan;

    /// The default `kubernetes.pod`.
    fn pod_config() -> PodConfig {
        let yaml = "backend: kubernetes\nauth:\n  password:\n    method: htpasswd\n    htpasswd:\n      file: /etc/htpasswd\n";
        match sshpod_config::parse_str(yaml, sshpod_config::Format::Yaml, "test.yaml") {
            Ok(loaded) => loaded.config.kubernetes.pod,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn claims_say_whose_they_are_and_ask_for_the_configured_size_and_class() {
        let homes = HomesConfig {
            enable: true,
            size: "5Gi".to_owned(),
            storage_class_name: "fast".to_owned(),
            extra_mounts: vec![ExtraMount {
                name: "datasets".to_owned(),
                path: "/data".to_owned(),
                size: "10Gi".to_owned(),
                storage_class_name: String::new(),
                scope: MountScope::Shared,
                read_only: None,
            }],
            ..HomesConfig::default()
        };
        let planned = plan(&homes, "Alice@Lab", None).unwrap_or_else(|e| panic!("{e}"));
        let config = pod_config();
        let home = claim(&planned[0], &config, "Alice@Lab").unwrap_or_else(|e| panic!("{e}"));
        let value = serde_json::to_value(&home).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(value["metadata"]["labels"]["sshpod.home"], "home");
        assert_eq!(value["metadata"]["labels"]["sshpod.user"], "Alice_Lab");
        assert_eq!(value["metadata"]["annotations"]["sshpod.user"], "Alice@Lab");
        assert_eq!(value["spec"]["resources"]["requests"]["storage"], "5Gi");
        assert_eq!(value["spec"]["storageClassName"], "fast");
        assert_eq!(value["spec"]["accessModes"][0], "ReadWriteOnce");
        let shared = claim(&planned[1], &config, "Alice@Lab").unwrap_or_else(|e| panic!("{e}"));
        let value = serde_json::to_value(&shared).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(value["metadata"]["name"], "sshpod-mount-datasets");
        assert_eq!(value["spec"]["resources"]["requests"]["storage"], "10Gi");
        assert_eq!(value["spec"]["accessModes"][0], "ReadOnlyMany");
        assert!(value["spec"].get("storageClassName").is_none());
    }

    #[test]
    fn the_console_container_mounts_every_claim() {
        let homes = HomesConfig {
            enable: true,
            ..HomesConfig::default()
        };
        let planned = plan(&homes, "bob", None).unwrap_or_else(|e| panic!("{e}"));
        let config = pod_config();
        let mut pod = Pod {
            spec: Some(config.spec.clone()),
            ..Pod::default()
        };
        mount_into(&mut pod, &planned, config.console_container_number);
        let value = serde_json::to_value(&pod).unwrap_or_else(|e| panic!("{e}"));
        let volumes = value["spec"]["volumes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let claim = volumes
            .iter()
            .find(|v| v["persistentVolumeClaim"]["claimName"] == planned[0].volume.as_str());
        assert!(claim.is_some(), "{volumes:?}");
        let mounts = &value["spec"]["containers"][0]["volumeMounts"];
        assert!(
            mounts
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["mountPath"] == "/home/bob")),
            "{mounts}"
        );
    }
}
