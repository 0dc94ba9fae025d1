//! The warm pool (`pool`): connection containers made from the configured template and started
//! ahead of logins, so a login claims one that already runs.
//!
//! A member is a connection container without a login: created with the instance label, the
//! [`labels::POOL`] label and the idle command, and kept alive by its lifeline attach like any
//! connection container, so a `kill -9` of sshpod ends it too and the start-up sweep knows it.
//! A claim hands the member (its id, lifeline and stream directory) to one login, which never
//! gives it back: it is removed when that connection ends. Refills take a start turn only when
//! one is free (`docker.connection.maxParallelStarts`), so logins start first. At shutdown the
//! members left are removed.

use std::sync::Arc;

use bollard::models::ContainerCreateBody;
use sshpod_config::{IdentityConfig, PoolConfig};
use sshpod_core::pool::{Starter, WarmPool};
use sshpod_core::{labels, BackendError, ConnectionContext, ConnectionId, Identity, Lifecycle};

use crate::engine::Engine;
use crate::hijack::Hijacked;
use crate::local_streams::ConnectionDir;
use crate::settings::Settings;

/// A started member, waiting for a login.
pub(crate) struct Member {
    pub(crate) id: String,
    /// Keeps the idle process (and so the container) alive.
    pub(crate) lifeline: Hijacked,
    /// Its stream directory, when streams bypass the engine.
    pub(crate) streams: Option<ConnectionDir>,
}

/// The Docker backend's pool.
pub(crate) type Pool = WarmPool<Members>;

/// Starts a pool of `config`'s size on `lifecycle`, which removes the members when
/// cancelled. `identity` is the file's: members are prepared for its setup.
pub(crate) fn spawn(
    engine: Engine,
    settings: Arc<Settings>,
    instance: &str,
    config: &PoolConfig,
    identity: &IdentityConfig,
    lifecycle: &Lifecycle,
) -> Pool {
    let body = member_body(&settings, instance, identity);
    WarmPool::spawn(
        Members {
            engine,
            settings,
            body,
        },
        config,
        lifecycle,
    )
}

/// How members are made: connection containers from the template, without a login.
pub(crate) struct Members {
    engine: Engine,
    settings: Arc<Settings>,
    /// The members' create body (before the stream directory).
    body: ContainerCreateBody,
}

impl Starter for Members {
    type Member = Member;

    async fn start(&self) -> Result<Option<Member>, BackendError> {
        self.start_one().await
    }

    async fn remove(&self, member: Member) {
        let Member { id, lifeline, .. } = member;
        drop(lifeline);
        crate::container::remove(&self.engine, &id).await;
    }
}

impl Members {
    async fn start_one(&self) -> Result<Option<Member>, BackendError> {
        let engine = &self.engine;
        let settings = &self.settings;
        // A turn only if one is free now; a login waiting for one comes first.
        let Some(slot) = engine.try_start_permit() else {
            return Ok(None);
        };
        let key = ConnectionId::random().to_string();
        let mut body = self.body.clone();
        let streams = engine
            .local_streams()
            .and_then(|root| root.for_connection(&key));
        if let Some(dir) = &streams {
            dir.mount_into(&mut body);
        }
        let name = labels::container_name("sshpod-", "pool", key.get(..12).unwrap_or(&key));
        let created = crate::create::create_in_slot(engine, settings, (name, body), slot).await?;
        let Some(crate::create::Created { id, slot }) = created else {
            // The image was pulled: the next turn creates the member.
            return Ok(None);
        };
        let started = crate::container::attach_and_start(engine, settings, &id).await;
        drop(slot);
        match started {
            Ok(lifeline) => Ok(Some(Member {
                id,
                lifeline,
                streams,
            })),
            Err(e) => {
                crate::container::remove(engine, &id).await;
                Err(e)
            }
        }
    }
}

/// The create body of a member: the connection container of a login not known yet. It
/// carries the instance and pool labels but no connection or user, and is prepared for the
/// file's `identity` setup (started as root, with what the setup needs).
fn member_body(
    settings: &Settings,
    instance: &str,
    identity: &IdentityConfig,
) -> ContainerCreateBody {
    let mut stand_in = ConnectionContext::new(
        ConnectionId::random(),
        "pool".to_owned(),
        std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
    );
    // Only whether there is an identity, and whether it may `sudo`, shape the body.
    stand_in.identity = Identity::resolve(identity, "pool").ok().flatten();
    let mut body =
        settings.container_body(&stand_in, instance, settings.idle_command.clone(), None);
    if let Some(labels) = body.labels.as_mut() {
        labels.remove(labels::CONNECTION);
        labels.remove(labels::USER);
        labels.insert(labels::POOL.to_owned(), "true".to_owned());
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        let text = "auth: {password: {method: htpasswd, htpasswd: {file: /x}}}\n\
                    docker: {execution: {container: {labels: {team: a}}}}\n";
        let config = sshpod_config::parse_str(text, sshpod_config::Format::Yaml, "t.yaml")
            .unwrap_or_else(|e| panic!("{e}"))
            .config;
        Settings::from_config(&config.docker).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn members_belong_to_the_instance_and_say_they_are_pooled() {
        let body = member_body(&settings(), "inst", &IdentityConfig::default());
        let labels = body.labels.unwrap_or_default();
        assert_eq!(
            labels.get(labels::INSTANCE).map(String::as_str),
            Some("inst")
        );
        assert_eq!(labels.get(labels::POOL).map(String::as_str), Some("true"));
        assert_eq!(labels.get("team").map(String::as_str), Some("a"));
        assert!(!labels.contains_key(labels::CONNECTION));
        assert!(!labels.contains_key(labels::USER));
        assert_eq!(body.open_stdin, Some(true), "kept alive by its lifeline");
        let host = body.host_config.unwrap_or_default();
        assert_eq!(host.auto_remove, Some(true));
        assert_eq!(body.user, None, "the image's user without `identity`");
    }

    #[test]
    fn with_identity_members_start_as_root_for_the_setup() {
        let identity = IdentityConfig {
            enable: true,
            ..IdentityConfig::default()
        };
        let body = member_body(&settings(), "inst", &identity);
        assert_eq!(body.user.as_deref(), Some("0:0"));
    }
}
