//! Homes and extra mounts on Docker: named volumes, created on a user's first login (creating
//! a volume that exists is a no-op for the engine), mounted into every container of theirs,
//! and never removed by the server: only `sshpod homes rm` removes a home.
//!
//! Every volume carries the container labels of the configuration (so an operator's own
//! labels, a test run's label among them, mark them too) plus sshpod's: `sshpod.home` (which
//! volume of the user: `home`, or an extra mount's name) and `sshpod.user` (the exact login).
//! Shared extra mounts carry `sshpod.mount` instead and are not homes.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, VolumeCreateRequest};
use bollard::query_parameters::{
    ListContainersOptions, ListVolumesOptions, LogsOptions, RemoveVolumeOptions,
    StartContainerOptions, WaitContainerOptions,
};
use futures_util::StreamExt;
use sshpod_core::homes::{HomeVolume, Planned};
use sshpod_core::{labels, BackendError};

use crate::engine::Engine;

/// On shared extra mounts: the mount's name.
const MOUNT_LABEL: &str = "sshpod.mount";

/// The name of `user`'s home volume.
pub fn home_volume(user: &str) -> String {
    labels::volume_name("sshpod-home-", user)
}

/// Creates the planned volumes that do not exist yet and returns their mounts.
pub(crate) async fn ensure(
    engine: &Engine,
    planned: &[Planned],
    base_labels: &HashMap<String, String>,
    user: &str,
) -> Result<Vec<Mount>, BackendError> {
    let mut mounts = Vec::with_capacity(planned.len());
    for volume in planned {
        let mut labels = base_labels.clone();
        if volume.per_user {
            labels.insert(labels::HOME.to_owned(), volume.kind.clone());
            labels.insert(labels::USER.to_owned(), user.to_owned());
        } else {
            labels.insert(MOUNT_LABEL.to_owned(), volume.kind.clone());
        }
        engine
            .docker
            .create_volume(VolumeCreateRequest {
                name: Some(volume.volume.clone()),
                labels: Some(labels),
                ..Default::default()
            })
            .await
            .map_err(|e| BackendError::Refused {
                what: "creating your home volume",
                source: Box::new(e),
            })?;
        mounts.push(Mount {
            target: Some(volume.target.clone()),
            source: Some(volume.volume.clone()),
            typ: Some(MountType::VOLUME),
            read_only: Some(volume.read_only),
            ..Default::default()
        });
    }
    Ok(mounts)
}

/// Every user volume on the engine, `user` only when given, sorted by login and kind.
pub(crate) async fn list(
    engine: &Engine,
    user: Option<&str>,
) -> Result<Vec<HomeVolume>, BackendError> {
    let mut filter = vec![labels::HOME.to_owned()];
    if let Some(user) = user {
        filter.push(format!("{}={user}", labels::USER));
    }
    let options = ListVolumesOptions {
        filters: Some(HashMap::from([("label".to_owned(), filter)])),
    };
    let listed = engine
        .docker
        .list_volumes(Some(options))
        .await
        .map_err(|e| BackendError::Engine(Box::new(e)))?;
    let mut homes: Vec<HomeVolume> = listed
        .volumes
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| {
            let labels = v.labels;
            Some(HomeVolume {
                user: labels.get(labels::USER)?.clone(),
                kind: labels.get(labels::HOME)?.clone(),
                volume: v.name,
                created: v.created_at.map(|d| d.to_string()),
            })
        })
        .collect();
    homes.sort_by(|a, b| (&a.user, &a.kind).cmp(&(&b.user, &b.kind)));
    Ok(homes)
}

/// Whether `user` has a container running (a connection, or a user container in its grace
/// period), on this engine, of any sshpod instance.
pub(crate) async fn in_use(engine: &Engine, user: &str) -> Result<bool, BackendError> {
    let options = ListContainersOptions {
        all: false,
        filters: Some(HashMap::from([(
            "label".to_owned(),
            vec![
                labels::INSTANCE.to_owned(),
                format!("{}={user}", labels::USER),
            ],
        )])),
        ..Default::default()
    };
    let running = engine
        .docker
        .list_containers(Some(options))
        .await
        .map_err(|e| BackendError::Engine(Box::new(e)))?;
    Ok(!running.is_empty())
}

/// Removes a volume (its data is gone).
pub(crate) async fn remove(engine: &Engine, volume: &str) -> Result<(), BackendError> {
    engine
        .docker
        .remove_volume(volume, Some(RemoveVolumeOptions { force: false }))
        .await
        .map_err(|e| BackendError::Engine(Box::new(e)))
}

/// The bytes a volume holds, measured by `du` in a short-lived container of `image` that
/// mounts it read-only (the engine's own accounting differs between API versions).
pub(crate) async fn usage(
    engine: &Engine,
    image: &str,
    volume: &str,
    base_labels: &HashMap<String, String>,
) -> Result<u64, BackendError> {
    let failed = |e: bollard::errors::Error| BackendError::Refused {
        what: "measuring the volume",
        source: Box::new(e),
    };
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        cmd: Some(vec![
            "du".to_owned(),
            "-sk".to_owned(),
            "/volume".to_owned(),
        ]),
        labels: Some(base_labels.clone()),
        network_disabled: Some(true),
        host_config: Some(HostConfig {
            mounts: Some(vec![Mount {
                target: Some("/volume".to_owned()),
                source: Some(volume.to_owned()),
                typ: Some(MountType::VOLUME),
                read_only: Some(true),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let created = engine
        .docker
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            body,
        )
        .await
        .map_err(failed)?;
    let id = created.id;
    let measured = async {
        engine
            .docker
            .start_container(&id, None::<StartContainerOptions>)
            .await
            .map_err(failed)?;
        let mut waiting = engine.docker.wait_container(
            &id,
            Some(WaitContainerOptions {
                condition: "not-running".to_owned(),
            }),
        );
        if let Some(Err(e)) = waiting.next().await {
            return Err(failed(e));
        }
        let mut output = String::new();
        let mut logs = engine.docker.logs(
            &id,
            Some(LogsOptions {
                stdout: true,
                ..Default::default()
            }),
        );
        while let Some(chunk) = logs.next().await {
            output.push_str(&chunk.map_err(failed)?.to_string());
            if output.len() > 4096 {
                break;
            }
        }
        parse_du(&output).ok_or_else(|| BackendError::Refused {
            what: "measuring the volume",
            source: format!("unexpected `du` output: {}", output.trim()).into(),
        })
    }
    .await;
    crate::container::remove(engine, &id).await;
    measured
}

/// The size in bytes from `du -sk`'s `KIB\tPATH`.
fn parse_du(output: &str) -> Option<u64> {
    let kib: u64 = output.split_whitespace().next()?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sshpod_config::{ExtraMount, HomesConfig, MountScope};
    use sshpod_core::homes::plan;

    fn mount(name: &str, path: &str, scope: MountScope) -> ExtraMount {
        ExtraMount {
            name: name.to_owned(),
            path: path.to_owned(),
            size: "1Gi".to_owned(),
            storage_class_name: String::new(),
            scope,
            read_only: None,
        }
    }

    #[test]
    fn a_user_gets_their_home_and_the_class_mounts() {
        let homes = HomesConfig {
            enable: true,
            extra_mounts: vec![
                mount("datasets", "/data", MountScope::Shared),
                mount("scratch", "/scratch", MountScope::PerUser),
            ],
            ..HomesConfig::default()
        };
        let alice = plan(&homes, "alice", None).unwrap_or_else(|e| panic!("{e}"));
        let hash = labels::login_hash("alice");
        let summary: Vec<_> = alice
            .iter()
            .map(|p| (p.volume.as_str(), p.target.as_str(), p.read_only))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    format!("sshpod-home-alice-{hash}").as_str(),
                    "/home/alice",
                    false
                ),
                ("sshpod-mount-datasets", "/data", true),
                (
                    format!("sshpod-scratch-alice-{hash}").as_str(),
                    "/scratch",
                    false
                ),
            ]
        );
        let bob = plan(&homes, "bob", None).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(bob[0].volume, alice[0].volume, "homes are per user");
        assert_eq!(bob[1].volume, alice[1].volume, "shared mounts are shared");
        assert!(
            plan(&homes, "../root", None).is_err(),
            "no home outside /home"
        );
    }

    #[test]
    fn without_homes_only_the_extra_mounts_are_mounted() {
        let homes = HomesConfig::default();
        assert_eq!(plan(&homes, "alice", None), Ok(Vec::new()));
    }

    #[test]
    fn du_output_is_read_in_kib() {
        assert_eq!(parse_du("12\t/volume\n"), Some(12 * 1024));
        assert_eq!(parse_du("du: cannot read"), None);
        assert_eq!(parse_du(""), None);
    }
}
