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

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::StartContainerOptions;
use sshpod_config::{IdentityConfig, PoolConfig};
use sshpod_core::pool::{Demand, PoolStats};
use sshpod_core::{labels, BackendError, ConnectionContext, ConnectionId, Identity, Lifecycle};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::engine::Engine;
use crate::hijack::Hijacked;
use crate::local_streams::ConnectionDir;
use crate::settings::Settings;

/// How soon a refill that found no free start turn (or failed) tries again.
const RETRY: Duration = Duration::from_millis(200);

/// A started member, waiting for a login.
pub(crate) struct Member {
    pub(crate) id: String,
    /// Keeps the idle process (and so the container) alive.
    pub(crate) lifeline: Hijacked,
    /// Its stream directory, when streams bypass the engine.
    pub(crate) streams: Option<ConnectionDir>,
}

/// The pool of one backend. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Pool(Arc<Inner>);

struct Inner {
    engine: Engine,
    settings: Arc<Settings>,
    /// The members' create body (before the stream directory).
    body: ContainerCreateBody,
    ready: Mutex<VecDeque<Member>>,
    /// Members being started.
    starting: Mutex<usize>,
    demand: Mutex<Demand>,
    /// Wakes the refill loop: a claim, a member started, a start failed.
    wake: Notify,
    stats: Arc<PoolStats>,
}

impl Pool {
    /// Starts filling a pool of `config`'s size on `lifecycle`, which removes the members
    /// when cancelled. `identity` is the file's: members are prepared for its setup.
    pub(crate) fn spawn(
        engine: Engine,
        settings: Arc<Settings>,
        instance: &str,
        config: &PoolConfig,
        identity: &IdentityConfig,
        lifecycle: &Lifecycle,
    ) -> Self {
        let body = member_body(&settings, instance, identity);
        let pool = Self(Arc::new(Inner {
            engine,
            settings,
            body,
            ready: Mutex::new(VecDeque::new()),
            starting: Mutex::new(0),
            demand: Mutex::new(Demand::new(config)),
            wake: Notify::new(),
            stats: Arc::new(PoolStats::default()),
        }));
        let refill = pool.clone();
        let children = lifecycle.clone();
        lifecycle.spawn(async move { refill.run(children).await });
        pool
    }

    /// The pool's counts, for the metrics.
    pub(crate) fn stats(&self) -> Arc<PoolStats> {
        Arc::clone(&self.0.stats)
    }

    /// A started member for a login that may use the pool, or `None` when none is ready.
    /// Either way the login counts as demand.
    pub(crate) fn claim(&self) -> Option<Member> {
        lock(&self.0.demand).login(Instant::now());
        let member = lock(&self.0.ready).pop_front();
        match &member {
            Some(_) => self.0.stats.claimed(),
            None => self.0.stats.skipped(sshpod_core::pool::Skip::Empty),
        }
        self.0.wake.notify_one();
        member
    }

    /// Keeps the pool at its target until cancelled, then removes the members left.
    async fn run(self, lifecycle: Lifecycle) {
        let token = lifecycle.token().clone();
        loop {
            let now = Instant::now();
            let (target, next_change) = {
                let mut demand = lock(&self.0.demand);
                (demand.target(now), demand.next_change())
            };
            let ready = lock(&self.0.ready).len();
            let starting = *lock(&self.0.starting);
            self.0.stats.set_size(ready, target);
            let mut wait_until = next_change.map(|t| t.max(now + RETRY));
            if ready > target {
                // Too many for the demand now: the oldest go.
                let surplus = lock(&self.0.ready).pop_front();
                if let Some(member) = surplus {
                    self.remove(member).await;
                }
                continue;
            }
            if ready + starting < target {
                match self.0.engine.try_start_permit() {
                    Some(slot) => {
                        drop(slot);
                        *lock(&self.0.starting) += 1;
                        let pool = self.clone();
                        let own = lifecycle.clone();
                        lifecycle.spawn(async move { pool.start_member(own).await });
                        continue;
                    }
                    // Every turn is taken (logins first): look again soon.
                    None => wait_until = Some(now + RETRY),
                }
            }
            let until = wait_until.unwrap_or(now + Duration::from_secs(3600));
            tokio::select! {
                () = token.cancelled() => break,
                () = self.0.wake.notified() => {}
                () = tokio::time::sleep_until(until) => {}
            }
        }
        let left: Vec<Member> = lock(&self.0.ready).drain(..).collect();
        for member in left {
            self.remove(member).await;
        }
        self.0.stats.set_size(0, 0);
    }

    /// Starts one member and adds it to the pool (or removes it, once the pool is shutting
    /// down).
    async fn start_member(self, lifecycle: Lifecycle) {
        let token = lifecycle.token();
        let started = self.start_one().await;
        *lock(&self.0.starting) -= 1;
        match started {
            // A login took the turn first; the loop looks again.
            Ok(None) => {}
            Ok(Some(member)) if token.is_cancelled() => self.remove(member).await,
            Ok(Some(member)) => lock(&self.0.ready).push_back(member),
            Err(e) => {
                tracing::warn!(
                    error = &e as &dyn std::error::Error,
                    "starting a pooled container"
                );
                // Not at once again: an engine that refuses keeps refusing for a while.
                tokio::select! {
                    () = token.cancelled() => {}
                    () = tokio::time::sleep(RETRY * 5) => {}
                }
            }
        }
        self.0.wake.notify_one();
    }

    async fn start_one(&self) -> Result<Option<Member>, BackendError> {
        let engine = &self.0.engine;
        let settings = &self.0.settings;
        // A turn only if one is free now; a login waiting for one comes first.
        let Some(slot) = engine.try_start_permit() else {
            return Ok(None);
        };
        let key = ConnectionId::random().to_string();
        let mut body = self.0.body.clone();
        let streams = engine
            .local_streams()
            .and_then(|root| root.for_connection(&key));
        if let Some(dir) = &streams {
            dir.mount_into(&mut body);
        }
        let name = labels::container_name("sshpod-", "pool", key.get(..12).unwrap_or(&key));
        let crate::create::Created { id, slot } =
            crate::create::create_in_slot(engine, settings, (name, body), slot).await?;
        let started = async {
            let lifeline = engine
                .hijack(&format!("/containers/{id}/attach?stream=1&stdin=1"), "")
                .await
                .map_err(|e| settings.start_error("attaching to the container", e))?;
            engine
                .docker
                .start_container(&id, None::<StartContainerOptions>)
                .await
                .map_err(|e| settings.start_error_engine(e))?;
            Ok::<_, BackendError>(lifeline)
        }
        .await;
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

    async fn remove(&self, member: Member) {
        let Member { id, lifeline, .. } = member;
        drop(lifeline);
        crate::container::remove(&self.0.engine, &id).await;
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
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
