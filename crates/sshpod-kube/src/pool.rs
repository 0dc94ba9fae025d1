//! The warm pool (`pool`): connection pods made from the configured pod and started ahead of
//! logins, so a login claims one that already runs.
//!
//! A member is a connection pod without a login: named `sshpod-pool-ID`, labelled with the
//! instance, its Lease and [`labels::POOL`] (but no connection or user: labels are fixed at
//! creation here too, and kube-sim, like a cluster that forbids it, need not allow a patch),
//! and owned as connection pods are: the Lease vouches for it (the sweep deletes it once the
//! Lease is no longer renewed), or, without one, it holds a lifeline. A claim hands the pod to
//! one login for good; the login's environment goes to each process and its files are written
//! after the claim. At shutdown the members left are deleted, before the Lease is released.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use sshpod_config::{KubernetesConfig, PoolConfig};
use sshpod_core::per_user::Shared as _;
use sshpod_core::pool::{Starter, WarmPool};
use sshpod_core::{labels, BackendError, ConnectionContext, ConnectionId, Lifecycle};
use tokio::sync::Semaphore;

use crate::handle::{Ownership, PodHandle};
use crate::pod::{self, Owner};
use crate::requests::{PodsApi, Requests};
use crate::{files, lifecycle};

/// Pods the pool starts at once: refills must leave the API server and the nodes to logins.
const PARALLEL_STARTS: usize = 4;

/// The Kubernetes backend's pool.
pub(crate) type Pool = WarmPool<Members>;

/// Starts a pool of `config`'s size on `lifecycle`, which deletes the members when cancelled.
pub(crate) fn spawn(
    pods: PodsApi,
    settings: Arc<KubernetesConfig>,
    owner: Owner,
    config: &PoolConfig,
    lifecycle: &Lifecycle,
) -> Pool {
    let lifeline = settings.pod.lifeline || owner.lease.is_none();
    WarmPool::spawn(
        Members {
            pods,
            settings,
            owner,
            lifeline,
            turns: Semaphore::new(PARALLEL_STARTS),
        },
        config,
        lifecycle,
    )
}

/// How members are made: connection pods of the file's settings, without a login.
pub(crate) struct Members {
    pods: PodsApi,
    settings: Arc<KubernetesConfig>,
    owner: Owner,
    /// Whether each member holds a lifeline (no Lease vouches for it, or `pod.lifeline`).
    lifeline: bool,
    turns: Semaphore,
}

impl Starter for Members {
    type Member = PodHandle;

    async fn start(&self) -> Result<Option<PodHandle>, BackendError> {
        let Ok(_turn) = self.turns.try_acquire() else {
            return Ok(None);
        };
        let (console, image) = pod::console_of(&self.settings.pod);
        let spec = member_pod(&self.settings, &self.owner, self.lifeline);
        let name = lifecycle::create_and_wait(
            &self.pods.pods(),
            &spec,
            (&console, &image),
            &self.settings.timeouts,
            &sshpod_core::Progress::new(),
        )
        .await?;
        let handle = PodHandle::new(
            self.pods.clone(),
            name,
            console,
            Arc::clone(&self.settings),
            Vec::new(),
            Ownership::Owned,
        );
        if self.lifeline {
            if let Err(e) = handle.hold_lifeline(&image).await {
                handle.close().await;
                return Err(e);
            }
        }
        Ok(Some(handle))
    }

    async fn remove(&self, member: PodHandle) {
        member.close().await;
    }
}

/// Makes a member this login's pod, its requests counted in the login's `requests`: the
/// login's environment for each process, its files written. A member that stopped running since it started (evicted, deleted by hand, its
/// idle process ended) is refused, so the login starts its own pod rather than failing at its
/// first command. On error the member is deleted.
pub(crate) async fn adopt(
    member: PodHandle,
    requests: Requests,
    ctx: &ConnectionContext,
) -> Result<PodHandle, BackendError> {
    let member = member.counting(requests);
    let image = pod::console_of(&member.config().pod).1;
    if !member.is_alive().await {
        member.close().await;
        return Err(BackendError::StartContainer {
            image,
            reason: "the pooled pod is no longer running".to_owned(),
            source: None,
        });
    }
    let handle = member.with_environment(ctx.environment.clone());
    let target = handle.target();
    let write = files::write_all_as(&target, &ctx.files, None);
    let written =
        lifecycle::prepared_within(handle.config().timeouts.command_start, &image, write).await;
    match written {
        Ok(()) => Ok(handle),
        Err(e) => {
            handle.close().await;
            Err(e)
        }
    }
}

/// The pod of a member: a connection pod of a login not known yet, with the instance, Lease
/// and pool labels but no connection or user.
fn member_pod(settings: &KubernetesConfig, owner: &Owner, lifeline: bool) -> Pod {
    let stand_in = ConnectionContext::new(
        ConnectionId::random(),
        "pool".to_owned(),
        std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
    );
    let mut spec = pod::connection_pod(&settings.pod, &stand_in, owner, lifeline);
    if let Some(labels) = spec.metadata.labels.as_mut() {
        labels.remove(labels::CONNECTION);
        labels.remove(labels::USER);
        labels.insert(labels::POOL.to_owned(), "true".to_owned());
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_belong_to_the_instance_and_its_lease_and_say_they_are_pooled() {
        let owner = Owner {
            instance: "inst".to_owned(),
            lease: Some("sshpod-inst".to_owned()),
        };
        let file = "auth:\n  password:\n    method: htpasswd\n    htpasswd:\n      file: /x\n";
        let settings = sshpod_config::parse_str(file, sshpod_config::Format::Yaml, "x.yaml")
            .unwrap_or_else(|e| panic!("{e}"))
            .config
            .kubernetes;
        let pod = member_pod(&settings, &owner, false);
        let labels = pod.metadata.labels.unwrap_or_default();
        assert_eq!(
            labels.get(labels::INSTANCE).map(String::as_str),
            Some("inst")
        );
        assert_eq!(
            labels.get(pod::LABEL_LEASE).map(String::as_str),
            Some("sshpod-inst")
        );
        assert_eq!(labels.get(labels::POOL).map(String::as_str), Some("true"));
        assert!(!labels.contains_key(labels::CONNECTION) && !labels.contains_key(labels::USER));
        let name = pod.metadata.name.unwrap_or_default();
        assert!(name.starts_with("sshpod-pool-"), "{name}");
    }
}
