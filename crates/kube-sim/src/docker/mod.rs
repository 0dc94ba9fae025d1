//! The Docker engine as kube-sim uses it: bollard for the REST calls, our own raw client for
//! hijacked stdio and streamed logs. Everything kube-sim creates carries the label
//! `kube-sim.instance=<id>`, so shutdown can remove exactly what this process made.

pub mod frames;
pub mod raw;
pub mod sandbox;
pub mod stdio;

use std::collections::HashMap;
use std::path::PathBuf;

use bollard::query_parameters::{
    ListContainersOptions, ListVolumesOptions, RemoveContainerOptions, RemoveVolumeOptions,
};
use bollard::Docker;

use crate::tasks::Tasks;

pub use raw::RawClient;

pub const INSTANCE_LABEL: &str = "kube-sim.instance";
pub const POD_LABEL: &str = "kube-sim.pod";
pub const CONTAINER_LABEL: &str = "kube-sim.container";

/// A connection to the engine, tagged with this process's instance id.
pub struct Engine {
    pub docker: Docker,
    pub raw: RawClient,
    pub instance: String,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("DOCKER_HOST {0} is not a unix socket; kube-sim only speaks to local engines")]
    NotUnix(String),
    #[error("connecting to the Docker engine")]
    Connect(#[source] bollard::errors::Error),
}

/// The engine's unix socket: `DOCKER_HOST=unix://...` or the default path.
fn socket_path() -> Result<PathBuf, EngineError> {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if !host.is_empty() => host
            .strip_prefix("unix://")
            .map(PathBuf::from)
            .ok_or(EngineError::NotUnix(host)),
        _ => Ok(PathBuf::from("/var/run/docker.sock")),
    }
}

impl Engine {
    /// `tasks` runs the connections of the raw client.
    pub async fn connect(instance: String, tasks: Tasks) -> Result<Self, EngineError> {
        let socket = socket_path()?;
        let docker =
            Docker::connect_with_unix(&socket.to_string_lossy(), 120, bollard::API_DEFAULT_VERSION)
                .map_err(EngineError::Connect)?
                .negotiate_version()
                .await
                .map_err(EngineError::Connect)?;
        let v = docker.client_version();
        let version = format!("{}.{}", v.major_version, v.minor_version);
        let raw = RawClient::new(&socket, &version, tasks);
        Ok(Self {
            docker,
            raw,
            instance,
        })
    }

    /// Labels for something this instance creates, plus `extra`.
    pub fn labels(&self, extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut labels = HashMap::from([(INSTANCE_LABEL.to_owned(), self.instance.clone())]);
        labels.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        labels
    }

    fn instance_filter(&self) -> HashMap<String, Vec<String>> {
        HashMap::from([(
            "label".to_owned(),
            vec![format!("{INSTANCE_LABEL}={}", self.instance)],
        )])
    }

    /// Force-removes a container and its anonymous volumes; a missing one is fine.
    pub async fn remove_container(&self, id: &str) {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        if let Err(e) = self.docker.remove_container(id, Some(options)).await {
            if !is_not_found(&e) {
                tracing::warn!(container = id, error = %e, "removing container");
            }
        }
    }

    /// Removes a named volume; Err when the engine refuses (for example, still in use).
    pub async fn remove_volume(&self, name: &str) -> Result<(), bollard::errors::Error> {
        match self
            .docker
            .remove_volume(name, Some(RemoveVolumeOptions { force: false }))
            .await
        {
            Err(e) if is_not_found(&e) => Ok(()),
            other => other,
        }
    }

    /// Removes every container and volume of this instance; returns how many were left.
    pub async fn remove_everything(&self) -> usize {
        let options = ListContainersOptions {
            all: true,
            filters: Some(self.instance_filter()),
            ..Default::default()
        };
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .unwrap_or_default();
        let removals = containers
            .iter()
            .filter_map(|c| c.id.as_deref())
            .map(|id| self.remove_container(id));
        futures_util::future::join_all(removals).await;
        let options = ListVolumesOptions {
            filters: Some(self.instance_filter()),
        };
        let volumes = match self.docker.list_volumes(Some(options)).await {
            Ok(v) => v.volumes.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let mut left = 0;
        for v in volumes {
            if let Err(e) = self.remove_volume(&v.name).await {
                tracing::warn!(volume = v.name, error = %e, "removing volume");
                left += 1;
            }
        }
        left
    }
}

/// Whether the engine answered 404.
pub fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// The engine's message for an error, without bollard's decoration.
pub fn message_of(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}
