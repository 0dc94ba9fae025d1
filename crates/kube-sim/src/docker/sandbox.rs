//! The pod sandbox: a "pause" container that holds the pod's network namespace (app
//! containers join it with `container:<id>`). Its image is built at start-up from the static
//! helper embedded by build.rs, because no registry is reachable.

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, StartContainerOptions,
};
use futures_util::StreamExt;

use super::{Engine, CONTAINER_LABEL, POD_LABEL};

static PAUSE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/kube-sim-pause"));

/// The path of the helper inside the sandbox.
pub const PAUSE_PATH: &str = "/pause";

/// FNV-1a, to tag the image by the helper's content.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The pause image's reference for this build.
pub fn image() -> String {
    format!("kube-sim-pause:{:016x}", fnv(PAUSE))
}

fn rootfs_tar() -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(PAUSE.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    builder.append_data(&mut header, "pause", PAUSE)?;
    builder.into_inner()
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("building the pause image")]
    Tar(#[source] std::io::Error),
    #[error("importing the pause image: {0}")]
    Import(String),
    #[error("creating the pod sandbox: {0}")]
    Create(String),
}

/// Imports the pause image unless this build's is already there.
pub async fn ensure_image(engine: &Engine) -> Result<(), SandboxError> {
    let reference = image();
    if engine.docker.inspect_image(&reference).await.is_ok() {
        return Ok(());
    }
    let (repo, tag) = reference
        .split_once(':')
        .unwrap_or((reference.as_str(), "latest"));
    let options = CreateImageOptions {
        from_src: Some("-".to_owned()),
        repo: Some(repo.to_owned()),
        tag: Some(tag.to_owned()),
        changes: vec![format!("CMD [\"{PAUSE_PATH}\"]")],
        ..Default::default()
    };
    let tar = rootfs_tar().map_err(SandboxError::Tar)?;
    let mut progress =
        engine
            .docker
            .create_image(Some(options), Some(bollard::body_full(tar.into())), None);
    while let Some(item) = progress.next().await {
        match item {
            Ok(info) => {
                if let Some(e) = info.error_detail.and_then(|d| d.message) {
                    return Err(SandboxError::Import(e));
                }
            }
            Err(e) => return Err(SandboxError::Import(super::message_of(&e))),
        }
    }
    Ok(())
}

/// Creates and starts a pod's sandbox; returns its container id.
pub async fn start(
    engine: &Engine,
    name: &str,
    pod: &str,
    hostname: &str,
) -> Result<String, SandboxError> {
    let body = ContainerCreateBody {
        image: Some(image()),
        cmd: Some(vec![PAUSE_PATH.to_owned()]),
        hostname: Some(hostname.to_owned()),
        labels: Some(engine.labels(&[(POD_LABEL, pod), (CONTAINER_LABEL, "POD")])),
        host_config: Some(HostConfig {
            init: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = CreateContainerOptions {
        name: Some(name.to_owned()),
        ..Default::default()
    };
    let created = engine
        .docker
        .create_container(Some(options), body)
        .await
        .map_err(|e| SandboxError::Create(super::message_of(&e)))?;
    if let Err(e) = engine
        .docker
        .start_container(&created.id, None::<StartContainerOptions>)
        .await
    {
        // Nobody else knows its id yet: remove it here or it stays behind.
        engine.remove_container(&created.id).await;
        return Err(SandboxError::Create(super::message_of(&e)));
    }
    Ok(created.id)
}
