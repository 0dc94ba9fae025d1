//! sshpod's Docker backend: one container per SSH connection (or per session) on a Docker
//! engine, reached through its API over a Unix socket or TCP.
//!
//! Implements `sshpod_core::Backend`. Depends on bollard and the core contracts; must not
//! depend on SSH libraries or on other backends. Its background work (closing a container
//! that started too late, answering late opens of a FIFO) runs on a child of the process's
//! [`Lifecycle`], which [`Backend::shutdown`] waits for.

mod agent;
mod container;
mod create;
mod customize;
mod demux;
mod engine;
mod exec;
mod files;
mod hijack;
mod homes;
mod identity;
mod image;
mod listener;
mod local_streams;
mod orphans;
mod pool;
mod requests;
mod session;
mod settings;
mod stream;
mod tls;

use std::sync::Arc;

use bollard::models::{ContainerCreateBody, HostConfig, Mount};
use bollard::Docker;
use sshpod_config::{DockerConfig, ExecutionMode, HomesConfig, IdentityConfig};
use sshpod_core::per_user::{Claim, PerUser};
use sshpod_core::{
    Backend, BackendError, ConnectionContext, Container, Lifecycle, NotPossible, Process,
    ProcessSpec,
};

pub use homes::home_volume;
pub use requests::{EngineRequests, ENGINE_REQUEST_KINDS};
use sshpod_core::homes::HomeVolume;
pub use stream::ExecStream;

use container::ConnectionContainer;
use session::SessionContainers;

use engine::Engine;
use hijack::EngineAddress;
use settings::Settings;

/// The Docker backend. One value serves the whole process.
pub struct DockerBackend {
    engine: Engine,
    settings: Arc<Settings>,
    /// This process's identity on the engine (the `sshpod.instance` label).
    instance: String,
    /// The engine requests made so far, by kind.
    requests: Arc<EngineRequests>,
    /// Where the backend's background work runs (a child of the process's).
    lifecycle: Lifecycle,
    /// Homes, extra mounts and `mode: user`'s grace period (`homes`).
    homes: Arc<HomesConfig>,
    /// `mode: user`: each user's container, shared by their connections.
    users: PerUser<ConnectionContainer>,
    /// Containers started ahead of logins (`pool`), when configured and usable.
    pool: Option<pool::Pool>,
}

impl DockerBackend {
    /// Connects to the engine named in the configuration and negotiates the API version.
    /// Background work runs on a child of `lifecycle`.
    ///
    /// `seat` names where this process serves from (its host and listening address), the same
    /// across restarts: containers that an earlier process of the same seat left, and that are
    /// not running, are known as orphans at once (see `orphans.rs`).
    pub async fn connect(
        config: &DockerConfig,
        seat: Option<&str>,
        lifecycle: &Lifecycle,
    ) -> Result<Self, BackendError> {
        let lifecycle = lifecycle.child();
        let host = config.connection.host.as_str();
        // One timeout covers every request of the client, container creation included. An
        // engine busy starting many containers answers a create slowly, and that must not fail
        // a login that is still within `containerStart` (which bounds the whole start).
        let timeout = config
            .timeouts
            .http
            .max(config.timeouts.container_start)
            .as_secs()
            .max(1);
        let address = EngineAddress::parse(host).ok_or_else(|| BackendError::Settings {
            setting: "docker.connection.host",
            reason: format!("unsupported Docker host `{host}`"),
        })?;
        let address = match address {
            EngineAddress::Tcp(authority) if config.connection.uses_tls() => {
                let tls = tls::EngineTls::new(&config.connection, &authority)?;
                EngineAddress::Tls(authority, tls)
            }
            EngineAddress::Tcp(_) if host.starts_with("https://") => {
                return Err(BackendError::Settings {
                    setting: "docker.connection.host",
                    reason: "https:// needs `cacert`, `cert` and `key`".to_owned(),
                })
            }
            other => other,
        };
        let docker = match &address {
            EngineAddress::Unix(path) => Docker::connect_with_unix(
                &path.to_string_lossy(),
                timeout,
                bollard::API_DEFAULT_VERSION,
            ),
            EngineAddress::Tcp(addr) => Docker::connect_with_http(
                &format!("http://{addr}"),
                timeout,
                bollard::API_DEFAULT_VERSION,
            ),
            EngineAddress::Tls(authority, tls) => tls.docker_client(authority, timeout),
        }
        .map_err(|e| BackendError::Engine(Box::new(e)))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| BackendError::Engine(Box::new(e)))?;
        let requests = Arc::new(EngineRequests::default());
        let counted = Arc::clone(&requests);
        let docker = docker.with_request_modifier(move |request| {
            counted.count(request.method(), request.uri().path());
            request
        });
        let instance = sshpod_core::instance_id(seat);
        let local_streams = match &address {
            EngineAddress::Unix(_) => local_streams(
                &config.connection.stream_directory,
                &instance,
                lifecycle.clone(),
            ),
            EngineAddress::Tcp(_) | EngineAddress::Tls(..) => None,
        };
        Ok(Self {
            engine: Engine::new(
                docker,
                address,
                config.connection.max_parallel_starts,
                local_streams,
            ),
            settings: Arc::new(Settings::from_config(config)?),
            instance,
            homes: Arc::new(HomesConfig::default()),
            users: PerUser::new(HomesConfig::default().grace_period, lifecycle.clone()),
            requests,
            lifecycle,
            pool: None,
        })
        .inspect(Self::sweep_now_and_then)
    }

    /// Sweeps for orphans every twice `timeouts.containerStart`, besides the sweep at start:
    /// a container another instance created and never started is an orphan only once it is
    /// that old, which may be long after this process started.
    fn sweep_now_and_then(&self) {
        let engine = self.engine.clone();
        let instance = self.instance.clone();
        let settle = self.settings.timeouts.container_start * 2;
        let token = self.lifecycle.token().clone();
        self.lifecycle.spawn(async move {
            loop {
                tokio::select! {
                    () = token.cancelled() => return,
                    () = tokio::time::sleep(settle) => {}
                }
                match orphans::remove_orphans(&engine, &instance, settle).await {
                    Ok(0) => {}
                    Ok(removed) => tracing::info!(removed, "removed containers of dead instances"),
                    Err(e) => tracing::debug!(error = %e, "sweeping for orphans"),
                }
            }
        });
    }

    /// Gives every user a home and the extra mounts of `homes`, and keeps user containers
    /// (`mode: user`) for its grace period.
    pub fn with_homes(mut self, homes: HomesConfig) -> Self {
        self.users = PerUser::new(homes.grace_period, self.lifecycle.clone());
        self.homes = Arc::new(homes);
        self
    }

    /// Keeps the warm pool of `config` (`pool`), when on, for logins that may claim from it
    /// (see [`sshpod_core::pool::Skip`]). Call after [`DockerBackend::with_homes`]: with homes
    /// or extra mounts, a fixed container name, a hostname for every login or a mode other than
    /// `connection`, no login could use it, and there is none (a warning says why).
    /// `identity` is the file's: members are prepared for its setup.
    pub fn with_pool(
        mut self,
        config: &sshpod_config::PoolConfig,
        identity: &IdentityConfig,
    ) -> Self {
        if !config.enabled() {
            return self;
        }
        let unusable = if self.settings.mode != ExecutionMode::Connection {
            Some("`docker.execution.mode` is not `connection`")
        } else if !self.settings.has_generated_names() {
            Some("`docker.execution.containername` names every container alike")
        } else if self.homes.enable || !self.homes.extra_mounts.is_empty() {
            Some("`homes` mounts volumes per user")
        } else if !identity.hostname.is_empty() {
            Some("`identity.hostname` names every container after its login")
        } else {
            None
        };
        if let Some(reason) = unusable {
            tracing::warn!(reason, "the warm pool is off: no login could use it");
            return self;
        }
        self.pool = Some(pool::spawn(
            self.engine.clone(),
            Arc::clone(&self.settings),
            &self.instance,
            config,
            identity,
            &self.lifecycle,
        ));
        self
    }

    /// The warm pool's counts (shared; read at each scrape), when there is a pool.
    pub fn pool_stats(&self) -> Option<Arc<sshpod_core::pool::PoolStats>> {
        self.pool.as_ref().map(pool::Pool::stats)
    }

    /// The users' volumes (homes and per-user extra mounts) on the engine, of `user` only when
    /// given, sorted by login (for `sshpod homes ls`).
    pub async fn list_homes(&self, user: Option<&str>) -> Result<Vec<HomeVolume>, BackendError> {
        homes::list(&self.engine, user).await
    }

    /// The bytes a volume holds (for `sshpod homes du`), measured in a short-lived container
    /// of the configured image.
    pub async fn volume_usage(&self, volume: &str) -> Result<u64, BackendError> {
        let labels = self.settings.base_labels();
        homes::usage(&self.engine, &self.settings.image, volume, &labels).await
    }

    /// Whether `user` has a running container of any sshpod instance on this engine: logged
    /// in, or their user container is in its grace period.
    pub async fn user_has_containers(&self, user: &str) -> Result<bool, BackendError> {
        homes::in_use(&self.engine, user).await
    }

    /// Removes a volume and its data (for `sshpod homes rm`).
    pub async fn remove_volume(&self, volume: &str) -> Result<(), BackendError> {
        homes::remove(&self.engine, volume).await
    }

    /// This process's instance id, as put on its containers.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The engine requests this process made, by kind (shared; read at each scrape).
    pub fn engine_requests(&self) -> Arc<EngineRequests> {
        Arc::clone(&self.requests)
    }
}

impl DockerBackend {
    /// The container of one connection: its own, or in `mode: user` its user's.
    async fn connect_now(&self, ctx: &ConnectionContext) -> Result<DockerContainer, BackendError> {
        // A config server may have chosen other settings for this connection.
        let settings = match &ctx.config {
            Some(config) => Arc::new(Settings::from_config(&config.docker)?),
            None => Arc::clone(&self.settings),
        };
        let homes = match &ctx.config {
            Some(config) => Arc::new(config.homes.clone()),
            None => Arc::clone(&self.homes),
        };
        if settings.mode == ExecutionMode::User {
            let claim = self
                .users
                .claim(&ctx.user, || async {
                    match self.start(settings, homes, ctx).await?.0 {
                        Mode::Connection(c) => Ok(c),
                        Mode::Session(_) | Mode::User { .. } => Err(BackendError::Settings {
                            setting: "docker.execution.mode",
                            reason: "a user container must run an idle command".to_owned(),
                        }),
                    }
                })
                .await?;
            return Ok(DockerContainer(Mode::User {
                container: Arc::clone(claim.value()),
                claim: tokio::sync::Mutex::new(Some(claim)),
            }));
        }
        if let Some(member) = self.claim_from_pool(ctx) {
            let claimed = ConnectionContainer::claimed(
                self.engine.clone(),
                Arc::clone(&self.settings),
                member,
                ctx,
            )
            .await;
            match claimed {
                Ok(container) => return Ok(DockerContainer(Mode::Connection(container))),
                // The member died or its setup failed: the login starts its own.
                Err(e) => tracing::warn!(
                    error = &e as &dyn std::error::Error,
                    "a pooled container could not be used"
                ),
            }
        }
        self.start(settings, homes, ctx).await
    }

    /// A pooled member for this login, unless there is no pool, the login must skip it (see
    /// [`sshpod_core::pool::Skip`]) or none is ready.
    fn claim_from_pool(&self, ctx: &ConnectionContext) -> Option<pool::Member> {
        let pool = self.pool.as_ref()?;
        if let Some(skip) = sshpod_core::pool::Skip::for_login(ctx) {
            pool.skipped(skip);
            return None;
        }
        pool.claim()
    }

    /// Starts the container(s) of one connection (or the user container its claim starts)
    /// within `timeouts.containerStart`.
    async fn start(
        &self,
        settings: Arc<Settings>,
        homes: Arc<HomesConfig>,
        ctx: &ConnectionContext,
    ) -> Result<DockerContainer, BackendError> {
        let limit = settings.timeouts.container_start;
        // On a task of its own, so that giving up on it here does not drop an engine request
        // half-way: a create the engine completes after we stopped waiting would leave a
        // container nobody knows about.
        let mut work = self.lifecycle.spawn(start_within(
            limit * 2,
            self.engine.clone(),
            Arc::clone(&settings),
            ctx.clone(),
            self.instance.clone(),
            homes,
        ));
        match tokio::time::timeout(limit, &mut work).await {
            Ok(joined) => joined.map_err(|e| BackendError::Engine(Box::new(e)))?,
            Err(_) => {
                // Failed work cleans up after itself; work that succeeds late is closed.
                // Not cancelled at shutdown, which waits for it: the container must go.
                self.lifecycle.spawn(async move {
                    if let Ok(Ok(late)) = work.await {
                        let _ = late.close().await;
                    }
                });
                Err(settings.start_timeout())
            }
        }
    }
}

impl Backend for DockerBackend {
    type Container = DockerContainer;

    async fn check(&self) -> Result<(), BackendError> {
        self.engine
            .docker
            .ping()
            .await
            .map(drop)
            .map_err(|e| BackendError::Engine(Box::new(e)))
    }

    async fn connect(&self, ctx: &ConnectionContext) -> Result<DockerContainer, BackendError> {
        self.connect_now(ctx).await
    }

    async fn remove_orphans(&self) -> Result<usize, BackendError> {
        orphans::remove_orphans(
            &self.engine,
            &self.instance,
            self.settings.timeouts.container_start * 2,
        )
        .await
    }

    /// Stops what waits on processes that have ended, then waits for every task of the
    /// backend: a late start's cleanup runs to its end (bounded by twice
    /// `timeouts.containerStart`), so no container is left behind.
    async fn shutdown(&self) {
        self.lifecycle.cancel();
        self.lifecycle.wait().await;
    }
}

/// The stream directory for an engine on this machine, unless turned off or unusable (then
/// streams go through the engine, as they do for a remote engine).
fn local_streams(
    directory: &str,
    instance: &str,
    lifecycle: Lifecycle,
) -> Option<local_streams::StreamRoot> {
    if directory.is_empty() {
        return None;
    }
    match local_streams::StreamRoot::prepare(std::path::Path::new(directory), instance, lifecycle) {
        Ok(root) => Some(root),
        Err(e) => {
            tracing::warn!(
                directory,
                error = &e as &dyn std::error::Error,
                "cannot use `docker.connection.streamDirectory`; process streams go through the engine"
            );
            None
        }
    }
}

/// Starts a connection's container(s), giving up after `deadline` (an engine that never
/// answers): then the work is dropped and the connection's containers are swept by label.
async fn start_within(
    deadline: std::time::Duration,
    engine: Engine,
    settings: Arc<Settings>,
    ctx: ConnectionContext,
    instance: String,
    homes: Arc<HomesConfig>,
) -> Result<DockerContainer, BackendError> {
    let start = async {
        let home = ctx.identity.as_ref().map(|i| i.home.as_str());
        let planned = sshpod_core::homes::plan(&homes, &ctx.user, home).map_err(|reason| {
            BackendError::StartContainer {
                image: settings.image.clone(),
                reason,
                source: None,
            }
        })?;
        let mounts = homes::ensure(&engine, &planned, &settings.base_labels(), &ctx.user).await?;
        Ok(DockerContainer(match settings.mode {
            // A user container is a connection container that its claim shares.
            ExecutionMode::Connection | ExecutionMode::User => {
                let container = ConnectionContainer::start(
                    engine.clone(),
                    Arc::clone(&settings),
                    &ctx,
                    &instance,
                    mounts,
                )
                .await?;
                // With an identity, the user's volumes are theirs; without, root's.
                let owner = ctx
                    .identity
                    .as_ref()
                    .map(|i| sshpod_core::homes::HomeOwner {
                        uid: i.uid,
                        gid: i.gid,
                    });
                if let Some(argv) = sshpod_core::homes::chown_argv(&planned, owner) {
                    let timeout = settings.timeouts.command_start;
                    let output = customize::run(&engine, container.id(), argv, None, timeout).await;
                    if !output.is_empty() {
                        tracing::warn!(
                            output = %String::from_utf8_lossy(&output),
                            "giving the home to its user"
                        );
                    }
                }
                let home = planned
                    .iter()
                    .find(|p| p.kind == sshpod_core::homes::HOME_KIND);
                if let Some(argv) =
                    home.and_then(|h| sshpod_core::homes::customize_argv(&homes, &h.target))
                {
                    let timeout = settings.timeouts.container_start;
                    let runs_as = ctx
                        .identity
                        .as_ref()
                        .map(|i| format!("{}:{}", i.uid, i.gid));
                    let output =
                        customize::run(&engine, container.id(), argv, runs_as, timeout).await;
                    container.greet_with(output);
                }
                Mode::Connection(container)
            }
            ExecutionMode::Session if ctx.identity.is_some() => {
                return Err(session_mode_has_no_identity(&ctx));
            }
            ExecutionMode::Session => Mode::Session(
                SessionContainers::new(
                    engine.clone(),
                    Arc::clone(&settings),
                    &ctx,
                    &instance,
                    mounts,
                )
                .await?,
            ),
        }))
    };
    match tokio::time::timeout(deadline, start).await {
        Ok(started) => started,
        Err(_) => {
            orphans::remove_connection(&engine, &ctx.connection_id.to_string()).await;
            Err(settings.start_timeout())
        }
    }
}

/// Adds the home and extra mounts to a container's create body.
fn add_mounts(body: &mut ContainerCreateBody, mounts: Vec<Mount>) {
    if mounts.is_empty() {
        return;
    }
    let host = body.host_config.get_or_insert_with(HostConfig::default);
    host.mounts.get_or_insert_with(Vec::new).extend(mounts);
}

/// In session mode the session's program is the container's main process, so nothing can set
/// the user up before it runs.
fn session_mode_has_no_identity(ctx: &ConnectionContext) -> BackendError {
    BackendError::SetUpUser {
        user: ctx.user.clone(),
        source: "`identity` needs the `connection` or `user` execution mode".into(),
    }
}

/// The container(s) of one connection.
pub struct DockerContainer(Mode);

/// The container(s) of one connection, by execution mode.
enum Mode {
    /// Connection mode: one container, sessions exec into it.
    Connection(ConnectionContainer),
    /// Session mode: a container per session.
    Session(SessionContainers),
    /// User mode: the user's container, shared with their other connections.
    User {
        container: Arc<ConnectionContainer>,
        /// This connection's share, given back on close.
        claim: tokio::sync::Mutex<Option<Claim<ConnectionContainer>>>,
    },
}

impl Container for DockerContainer {
    type Stream = sshpod_core::ClosedOnDrop<ExecStream>;

    async fn exec(&self, spec: ProcessSpec) -> Result<Process, BackendError> {
        match &self.0 {
            Mode::Connection(c) => c.exec(spec).await,
            Mode::Session(s) => s.exec(spec).await,
            Mode::User { container, .. } => container.exec(spec).await,
        }
    }

    async fn dial(&self, host: &str, port: u16) -> Result<Self::Stream, BackendError> {
        match &self.0 {
            Mode::Connection(c) => c.dial(host, port).await,
            Mode::Session(_) => Err(NotPossible::ForwardingInSessionMode.into()),
            Mode::User { container, .. } => container.dial(host, port).await,
        }
    }

    async fn listen(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Box<dyn sshpod_core::Listener>, BackendError> {
        let bind = listener::Bind::Tcp(host, port);
        let listener = match &self.0 {
            Mode::Connection(c) => c.listen(bind).await?,
            Mode::Session(_) => return Err(NotPossible::ForwardingInSessionMode.into()),
            Mode::User { container, .. } => container.listen(bind).await?,
        };
        Ok(Box::new(listener))
    }

    async fn listen_unix(
        &self,
        path: &str,
    ) -> Result<Box<dyn sshpod_core::Listener>, BackendError> {
        let bind = listener::Bind::Unix(path);
        let listener = match &self.0 {
            Mode::Connection(c) => c.listen(bind).await?,
            Mode::Session(_) => return Err(NotPossible::ForwardingInSessionMode.into()),
            Mode::User { container, .. } => container.listen(bind).await?,
        };
        Ok(Box::new(listener))
    }

    async fn listen_agent(&self) -> Result<Box<dyn sshpod_core::Listener>, BackendError> {
        let bind = listener::Bind::Agent;
        let listener = match &self.0 {
            Mode::Connection(c) => c.listen(bind).await?,
            Mode::Session(_) => return Err(NotPossible::ForwardingInSessionMode.into()),
            Mode::User { container, .. } => container.listen(bind).await?,
        };
        Ok(Box::new(listener))
    }

    async fn dial_unix(
        &self,
        path: &str,
    ) -> Result<Box<dyn sshpod_core::ForwardedStream>, BackendError> {
        let stream = match &self.0 {
            Mode::Connection(c) => c.dial_unix(path).await?,
            Mode::Session(_) => return Err(NotPossible::ForwardingInSessionMode.into()),
            Mode::User { container, .. } => container.dial_unix(path).await?,
        };
        Ok(Box::new(stream))
    }

    fn info(&self) -> sshpod_core::ContainerInfo {
        match &self.0 {
            Mode::Connection(c) => c.info(),
            Mode::Session(s) => s.info(),
            Mode::User { container, .. } => container.info(),
        }
    }

    async fn close(&self) -> Result<sshpod_core::Closed, BackendError> {
        match &self.0 {
            Mode::Connection(c) => c.close().await?,
            Mode::Session(s) => s.close().await?,
            Mode::User { claim, .. } => {
                if let Some(claim) = claim.lock().await.take() {
                    claim.release().await;
                }
                return Ok(sshpod_core::Closed::Kept);
            }
        }
        Ok(sshpod_core::Closed::Removed)
    }
}
