//! sshpod's Kubernetes backend: a pod per SSH connection, every session an exec into it,
//! port forwarding through the API, the pod deleted on logout.
//!
//! Implements `sshpod_core::Backend` on kube-rs. Depends on the core contracts and the
//! configuration; must not depend on SSH libraries or on other backends.
//!
//! A login costs these API requests: create, watch (until the pod runs), one exec per
//! session, delete. Each connection's client counts them (see `requests`); the count is
//! logged at debug level when the connection ends.
//!
//! Modules: `connection`, `persistent` and `session` are the three pod modes; `handle` is
//! the pod sessions exec into; `lease` and `orphans` keep pods from outliving their
//! instance; `client` builds the process's clients.
//!
//! What happens to pods when sshpod is killed: every instance holds a Lease (see `lease`)
//! and labels its pods with it; the other instances, and the next start, delete the pods of
//! an instance whose Lease is no longer renewed (see `orphans`). An instance that cannot hold
//! a Lease (no rights on leases), or a connection configured with `pod.lifeline`, ties each
//! pod to itself instead: the console container runs the idle command (which reads its
//! stdin) and sshpod keeps an attach to that stdin open for as long as the connection lives,
//! one API request more. If sshpod dies, the attach closes, the idle command sees end of
//! input and the pod ends by itself. Running pods of live instances are never touched.

mod client;
mod connection;
mod customize;
mod exec;
mod files;
mod forward;
mod handle;
mod helper;
mod homes;
mod identity;
mod lease;
mod lifecycle;
mod limiter;
mod listener;
mod orphans;
mod persistent;
mod pod;
mod pool;
mod remote;
mod requests;
mod session;
mod token_file;

use std::sync::Arc;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};
use sshpod_config::{HomesConfig, KubernetesConfig, PodMode};
use sshpod_core::per_user::{Claim, PerUser};
use sshpod_core::{
    Backend, BackendError, ConnectionContext, Container, Lifecycle, NotPossible, Process,
    ProcessSpec,
};

pub use forward::ForwardStream;
use handle::PodHandle;
pub use homes::KubeHomes;
use lease::HeldLease;
use orphans::Sweeper;
use pod::Owner;
pub use requests::{ApiRequests, API_REQUEST_KINDS};
use requests::{PodsApi, Requests};
use session::SessionPods;

/// The Kubernetes backend. One value serves the whole process.
pub struct KubeBackend {
    client: Client,
    config: Arc<KubernetesConfig>,
    instance: String,
    sweeper: Sweeper,
    /// None when the instance could not create its Lease: every pod then gets a lifeline.
    lease: Option<HeldLease>,
    /// Every connection's API requests, by kind.
    api_requests: Arc<ApiRequests>,
    /// Homes, extra mounts and `mode: user`'s grace period (`homes`).
    homes: Arc<HomesConfig>,
    /// `mode: user`: each user's pod, shared by their connections.
    users: PerUser<PodHandle>,
    /// Where the user pods' grace timers run; stopped (pods deleted) at shutdown.
    users_lifecycle: Lifecycle,
    /// Pods started ahead of logins (`pool`), when configured and usable; kept on a child of
    /// `users_lifecycle`, so they are deleted at shutdown before the Lease is released.
    pool: Option<pool::Pool>,
}

impl KubeBackend {
    /// Builds the shared client, checks that the credentials work in the namespace and takes
    /// this instance's Lease there. The Lease's renewals and sweeps run on a child of
    /// `lifecycle`.
    ///
    /// `seat` names where this process serves from (its host and listening address), the same
    /// across restarts: pods that an earlier process of the same seat left, and that are not
    /// running, are known as orphans at once (see `orphans.rs`).
    pub async fn connect(
        config: &KubernetesConfig,
        seat: Option<&str>,
        lifecycle: &Lifecycle,
    ) -> Result<Self, BackendError> {
        let timeouts = &config.timeouts;
        let clients = client::build(&config.connection, timeouts.http).await?;
        let client = clients.connections;
        let namespace = config.pod.namespace();
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        // `/version` answers anyone; listing pods proves the credentials and the rights.
        pods.list_metadata(&kube::api::ListParams::default().limit(1))
            .await
            .map_err(|e| BackendError::Engine(Box::new(e)))?;
        let instance = sshpod_core::instance_id(seat);
        let leases: Api<Lease> = Api::namespaced(clients.lease, namespace);
        let sweeper = Sweeper::new(
            pods,
            leases.clone(),
            &instance,
            timeouts.pod_start * 2,
            timeouts.pod_stop,
        );
        let lease = match HeldLease::acquire(
            leases,
            &instance,
            timeouts.instance_lease,
            sweeper.clone(),
            lifecycle,
        )
        .await
        {
            Ok(lease) => Some(lease),
            Err(e) => {
                tracing::warn!(
                    namespace,
                    error = %lifecycle::api_message(&e),
                    "cannot hold an instance lease (sshpod needs create, get, update, list \
                     and delete on leases.coordination.k8s.io); every pod is tied to this \
                     instance with a lifeline attach instead, one API request more per login"
                );
                None
            }
        };
        let users_lifecycle = lifecycle.child();
        Ok(Self {
            client,
            config: Arc::new(config.clone()),
            instance,
            sweeper,
            lease,
            api_requests: Arc::default(),
            homes: Arc::new(HomesConfig::default()),
            users: PerUser::new(HomesConfig::default().grace_period, users_lifecycle.clone()),
            users_lifecycle,
            pool: None,
        })
    }

    /// Gives every user a home and the extra mounts of `homes` (PersistentVolumeClaims), and
    /// keeps user pods (`mode: user`) for its grace period.
    pub fn with_homes(mut self, homes: HomesConfig) -> Self {
        self.users = PerUser::new(homes.grace_period, self.users_lifecycle.clone());
        self.homes = Arc::new(homes);
        self
    }

    /// Keeps the warm pool of `config` (`pool`), when on, for logins that may claim from it
    /// (see [`sshpod_core::pool::Skip`]). Call after [`KubeBackend::with_homes`]: with homes
    /// or extra mounts, `identity` (which shapes the pod's security context per user) or a
    /// mode other than `connection`, no login could use it, and there is none (a warning says
    /// why).
    pub fn with_pool(
        mut self,
        config: &sshpod_config::PoolConfig,
        identity: &sshpod_config::IdentityConfig,
    ) -> Self {
        if !config.enabled() {
            return self;
        }
        let unusable = if self.config.pod.mode != PodMode::Connection {
            Some("`kubernetes.pod.mode` is not `connection`")
        } else if self.homes.enable || !self.homes.extra_mounts.is_empty() {
            Some("`homes` mounts volumes per user")
        } else if identity.enable || !identity.hostname.is_empty() {
            Some("`identity` shapes each pod for its user")
        } else {
            None
        };
        if let Some(reason) = unusable {
            tracing::warn!(reason, "the warm pool is off: no login could use it");
            return self;
        }
        let pods = PodsApi::shared(&self.client, self.config.pod.namespace());
        let owner = self.owner_for(&self.config);
        self.pool = Some(pool::spawn(
            pods,
            Arc::clone(&self.config),
            owner,
            config,
            &self.users_lifecycle.child(),
        ));
        self
    }

    /// The warm pool's counts (shared; read at each scrape), when there is a pool.
    pub fn pool_stats(&self) -> Option<Arc<sshpod_core::pool::PoolStats>> {
        self.pool.as_ref().map(pool::Pool::stats)
    }

    /// A pooled pod for this login, unless there is no pool, the login must skip it or none is
    /// ready.
    fn claim_from_pool(&self, ctx: &ConnectionContext) -> Option<PodHandle> {
        let pool = self.pool.as_ref()?;
        if let Some(skip) = sshpod_core::pool::Skip::for_login(ctx) {
            pool.skipped(skip);
            return None;
        }
        pool.claim()
    }

    /// The connections' API requests by kind so far, for the whole process (the metrics read
    /// it at each scrape).
    pub fn api_requests(&self) -> Arc<ApiRequests> {
        Arc::clone(&self.api_requests)
    }

    /// This process's instance id, as put on its pods.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Who makes one connection's pods. The Lease vouches only for pods in its own namespace
    /// (in another one, a config server's choice, other deployments sweep by their own
    /// Leases) and only while it is renewed; other pods get a lifeline instead.
    fn owner_for(&self, config: &KubernetesConfig) -> Owner {
        let home = config.pod.namespace() == self.config.pod.namespace();
        Owner {
            instance: self.instance.clone(),
            lease: self
                .lease
                .as_ref()
                .and_then(HeldLease::vouching_name)
                .filter(|_| home)
                .map(str::to_owned),
        }
    }

    /// The settings for one connection: the file's, or what a config server chose.
    fn config_for(&self, ctx: &ConnectionContext) -> Arc<KubernetesConfig> {
        match &ctx.config {
            Some(config) => Arc::new(config.kubernetes.clone()),
            None => Arc::clone(&self.config),
        }
    }
}

impl Backend for KubeBackend {
    type Container = KubeContainer;

    async fn connect(&self, ctx: &ConnectionContext) -> Result<KubeContainer, BackendError> {
        let config = self.config_for(ctx);
        // What goes through it is this connection's count.
        let requests = Requests::sharing(&self.api_requests);
        let pods = PodsApi::counted(&self.client, requests.clone(), config.pod.namespace());
        let owner = self.owner_for(&config);
        if ctx.identity.is_some() && !matches!(config.pod.mode, PodMode::Connection | PodMode::User)
        {
            // A session pod's program is its main process and a persistent pod is shared:
            // neither has a moment to set a user up in.
            return Err(BackendError::SetUpUser {
                user: ctx.user.clone(),
                source: "`identity` needs the `connection` or `user` pod mode".into(),
            });
        }
        let homes = match &ctx.config {
            Some(c) => Arc::new(c.homes.clone()),
            None => Arc::clone(&self.homes),
        };
        let volumes = match config.pod.mode {
            PodMode::Connection | PodMode::User => sshpod_core::homes::plan(
                &homes,
                &ctx.user,
                ctx.identity.as_ref().map(|i| i.home.as_str()),
            )
            .map_err(|reason| BackendError::StartContainer {
                image: pod::console_of(&config.pod).1,
                reason,
                source: None,
            })?,
            // Session pods and persistent pods mount what their spec says.
            PodMode::Session | PodMode::Persistent => Vec::new(),
        };
        if !volumes.is_empty() {
            homes::ensure(&pods.claims(), &volumes, &config.pod, &ctx.user).await?;
        }
        let customize_line = volumes
            .iter()
            .find(|v| v.kind == sshpod_core::homes::HOME_KIND)
            .and_then(|home| sshpod_core::homes::customize_command_line(&homes, &home.target));
        let start_limit = config.timeouts.pod_start;
        let kind = match config.pod.mode {
            PodMode::Connection => {
                let claimed = match self.claim_from_pool(ctx) {
                    Some(member) => pool::adopt(member, requests.clone(), ctx)
                        .await
                        .inspect_err(|e| {
                            // The member died or its setup failed: the login starts its own.
                            tracing::warn!(
                                error = e as &dyn std::error::Error,
                                "a pooled pod could not be used"
                            );
                        })
                        .ok(),
                    None => None,
                };
                match claimed {
                    Some(handle) => Kind::Pod(handle),
                    None => {
                        Kind::Pod(connection::start(pods, config, &owner, ctx, &volumes).await?)
                    }
                }
            }
            PodMode::User => {
                let claim = self
                    .users
                    .claim(&ctx.user, || {
                        connection::start(pods, config, &owner, ctx, &volumes)
                    })
                    .await?;
                Kind::User {
                    pod: Arc::clone(claim.value()),
                    claim: tokio::sync::Mutex::new(Some(claim)),
                }
            }
            PodMode::Persistent => Kind::Pod(persistent::claim(pods, config, ctx).await?),
            PodMode::Session => Kind::Sessions(SessionPods::new(pods, config, ctx, &owner)),
        };
        // The step does nothing where the home's marker exists (every login but the first).
        let greeting = match (&kind, customize_line) {
            (Kind::Pod(pod), Some(line)) => customize::run(pod, line, start_limit).await,
            (Kind::User { pod, .. }, Some(line)) => customize::run(pod, line, start_limit).await,
            _ => Vec::new(),
        };
        Ok(KubeContainer {
            kind,
            requests,
            greeting: std::sync::Mutex::new((!greeting.is_empty()).then_some(greeting)),
        })
    }

    async fn remove_orphans(&self) -> Result<usize, BackendError> {
        self.sweeper.sweep().await
    }

    async fn check(&self) -> Result<(), BackendError> {
        self.client
            .apiserver_version()
            .await
            .map(drop)
            .map_err(|e| BackendError::Engine(Box::new(e)))
    }

    async fn shutdown(&self) {
        // User pods first, while the Lease still vouches for them.
        self.users_lifecycle.cancel();
        self.users_lifecycle.wait().await;
        if let Some(lease) = &self.lease {
            lease.release().await;
        }
    }
}

/// The pod(s) of one connection.
pub struct KubeContainer {
    kind: Kind,
    /// Every API request made for the connection.
    requests: Requests,
    /// What the first shell shows before its own output (the first-login customisation's).
    greeting: std::sync::Mutex<Option<Vec<u8>>>,
}

enum Kind {
    /// `connection` and `persistent` modes: one pod, sessions exec into it.
    Pod(PodHandle),
    /// `session` mode: a pod per session.
    Sessions(SessionPods),
    /// `user` mode: the user's pod, shared with their other connections.
    User {
        pod: Arc<PodHandle>,
        /// This connection's share, given back on close.
        claim: tokio::sync::Mutex<Option<Claim<PodHandle>>>,
    },
}

impl Container for KubeContainer {
    type Stream = ForwardStream;

    async fn exec(&self, spec: ProcessSpec) -> Result<Process, BackendError> {
        let greeting = match spec.command {
            sshpod_core::Command::Shell => self
                .greeting
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
            _ => None,
        };
        let terminal = spec.tty.is_some();
        let mut process = self.exec_now(spec).await?;
        if let Some(text) = greeting {
            let text = if terminal {
                sshpod_core::homes::for_terminal(&text)
            } else {
                text
            };
            process.stdout = Box::new(tokio::io::AsyncReadExt::chain(
                std::io::Cursor::new(text),
                process.stdout,
            ));
        }
        Ok(process)
    }

    async fn dial(&self, host: &str, port: u16) -> Result<ForwardStream, BackendError> {
        self.dial_now(host, port).await
    }

    async fn listen(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Box<dyn sshpod_core::Listener>, BackendError> {
        self.listen_now(listener::Bind::Tcp(host, port)).await
    }

    async fn listen_unix(
        &self,
        path: &str,
    ) -> Result<Box<dyn sshpod_core::Listener>, BackendError> {
        self.listen_now(listener::Bind::Unix(path)).await
    }

    async fn listen_agent(&self) -> Result<Box<dyn sshpod_core::Listener>, BackendError> {
        self.listen_now(listener::Bind::Agent).await
    }

    async fn dial_unix(
        &self,
        path: &str,
    ) -> Result<Box<dyn sshpod_core::ForwardedStream>, BackendError> {
        let stream = match &self.kind {
            Kind::Pod(pod) => pod.dial_unix(path).await?,
            Kind::User { pod, .. } => pod.dial_unix(path).await?,
            Kind::Sessions(_) => return Err(NotPossible::ForwardingInSessionMode.into()),
        };
        Ok(Box::new(stream))
    }

    fn info(&self) -> sshpod_core::ContainerInfo {
        self.info_now()
    }

    async fn close(&self) -> Result<sshpod_core::Closed, BackendError> {
        self.close_now().await
    }
}

impl KubeContainer {
    async fn exec_now(&self, spec: ProcessSpec) -> Result<Process, BackendError> {
        match &self.kind {
            Kind::Pod(pod) => pod.exec(spec).await,
            Kind::User { pod, .. } => pod.exec(spec).await,
            Kind::Sessions(sessions) => sessions.exec(spec).await,
        }
    }

    async fn dial_now(&self, host: &str, port: u16) -> Result<ForwardStream, BackendError> {
        match &self.kind {
            Kind::Pod(pod) => pod.dial(host, port).await,
            Kind::User { pod, .. } => pod.dial(host, port).await,
            Kind::Sessions(_) => Err(NotPossible::ForwardingInSessionMode.into()),
        }
    }

    async fn listen_now(
        &self,
        bind: listener::Bind<'_>,
    ) -> Result<Box<dyn sshpod_core::Listener>, BackendError> {
        let listener = match &self.kind {
            Kind::Pod(pod) => pod.listen(bind).await?,
            Kind::User { pod, .. } => pod.listen(bind).await?,
            Kind::Sessions(_) => return Err(NotPossible::ForwardingInSessionMode.into()),
        };
        Ok(Box::new(listener))
    }

    fn info_now(&self) -> sshpod_core::ContainerInfo {
        match &self.kind {
            Kind::Pod(pod) => pod.info(),
            Kind::User { pod, .. } => pod.info(),
            Kind::Sessions(pods) => pods.info(),
        }
    }

    async fn close_now(&self) -> Result<sshpod_core::Closed, BackendError> {
        let closed = match &self.kind {
            Kind::Pod(pod) => pod.close().await,
            Kind::User { claim, .. } => {
                if let Some(claim) = claim.lock().await.take() {
                    claim.release().await;
                }
                sshpod_core::Closed::Kept
            }
            Kind::Sessions(sessions) => {
                sessions.close().await;
                sshpod_core::Closed::Removed
            }
        };
        tracing::debug!(
            api_requests = self.requests.total(),
            "Kubernetes API requests for this connection"
        );
        Ok(closed)
    }
}
