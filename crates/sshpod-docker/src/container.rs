//! Connection mode: one container per SSH connection, every session an exec into it.
//!
//! The container's main process is the idle command. With the default idle command it is a
//! dead man's switch: it reads its stdin, which sshpod holds open through an attach stream for
//! as long as it lives. If sshpod dies, the engine closes that stdin, the idle process exits
//! and the engine removes the container (it is created with auto-remove). Graceful
//! disconnects remove the container explicitly.

use std::sync::Arc;

use std::sync::PoisonError;

use bollard::models::Mount;
use bollard::query_parameters::{
    InspectContainerOptions, RemoveContainerOptions, StartContainerOptions,
};
use sshpod_core::{BackendError, Command, ConnectionContext, Identity, Process, ProcessSpec};
use tokio::io::AsyncReadExt;
use tokio::sync::{Mutex, OnceCell};

use crate::agent;
use crate::engine::Engine;
use crate::exec::{self, ExecRequest};
use crate::hijack::Hijacked;
use crate::local_streams::ConnectionDir;
use crate::settings::Settings;
use crate::stream::ExecStream;

/// A running container of one connection.
pub struct ConnectionContainer {
    engine: Engine,
    settings: Arc<Settings>,
    id: String,
    /// The attach stream that keeps the idle process alive; dropped on close.
    lifeline: Mutex<Option<Hijacked>>,
    /// Whether the port-forwarding helper has been copied in (done once, on first use).
    agent_installed: OnceCell<()>,
    /// The FIFO directory mounted into the container, when streams bypass the engine.
    /// Declared after `lifeline` so that it is removed after the container is let go.
    streams: Option<ConnectionDir>,
    /// What the first shell shows before its own output (the first-login customisation's).
    greeting: std::sync::Mutex<Option<Vec<u8>>>,
    /// The user processes run as (`identity`), set up when the container started.
    identity: Option<Identity>,
    /// A webhook's environment for the login, given to each process: a pooled container was
    /// created before the login, so its own environment lacks it.
    login_env: Vec<(String, String)>,
}

impl ConnectionContainer {
    /// Its id and image.
    pub(crate) fn info(&self) -> sshpod_core::ContainerInfo {
        sshpod_core::ContainerInfo {
            id: Some(self.id.clone()),
            image: self.settings.image.clone(),
        }
    }

    /// Creates and starts the container; removes it again if anything fails.
    pub(crate) async fn start(
        engine: Engine,
        settings: Arc<Settings>,
        ctx: &ConnectionContext,
        instance: &str,
        mounts: Vec<Mount>,
    ) -> Result<Self, BackendError> {
        let mut body = settings.container_body(ctx, instance, settings.idle_command.clone(), None);
        crate::add_mounts(&mut body, mounts);
        let streams = engine
            .local_streams()
            .and_then(|root| root.for_connection(&ctx.connection_id.to_string()));
        if let Some(dir) = &streams {
            dir.mount_into(&mut body);
        }
        let crate::create::Created { id, slot } = crate::create::create(
            &engine,
            &settings,
            (settings.container_name(ctx), body),
            &ctx.progress,
        )
        .await?;
        let started = attach_and_start(&engine, &settings, &id).await;
        drop(slot);
        let started = match started {
            Ok(lifeline) => {
                ctx.progress.report(sshpod_core::Step::SettingUp);
                set_up_login(&engine, &settings, &id, ctx)
                    .await
                    .map(|()| lifeline)
            }
            Err(e) => Err(e),
        };
        match started {
            Ok(lifeline) => Ok(Self {
                engine,
                settings,
                id,
                lifeline: Mutex::new(Some(lifeline)),
                agent_installed: OnceCell::new(),
                streams,
                greeting: std::sync::Mutex::new(None),
                identity: ctx.identity.clone(),
                login_env: Vec::new(),
            }),
            Err(e) => {
                remove(&engine, &id).await;
                Err(e)
            }
        }
    }

    /// Makes a started member of the warm pool this login's container: names it after the
    /// login, sets the user up and writes the login's files, as [`ConnectionContainer::start`]
    /// does after its start; the webhook's environment goes to each process. On error the
    /// member is removed.
    pub(crate) async fn claimed(
        engine: Engine,
        settings: Arc<Settings>,
        member: crate::pool::Member,
        ctx: &ConnectionContext,
    ) -> Result<Self, BackendError> {
        let crate::pool::Member {
            id,
            lifeline,
            streams,
        } = member;
        let rename = bollard::query_parameters::RenameContainerOptions {
            name: settings.container_name(ctx),
        };
        let unusable = |reason: &str, source: Option<String>| BackendError::StartContainer {
            image: settings.image.clone(),
            reason: reason.to_owned(),
            source: source.map(Into::into),
        };
        match engine.docker.rename_container(&id, rename).await {
            Ok(()) => {}
            // Gone since it started (the engine removed it): the login starts its own.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                message,
            }) => return Err(unusable("the pooled container is gone", Some(message))),
            // Only the name is off: the login still gets its fresh container.
            Err(e) => tracing::debug!(
                container = %id,
                error = &e as &dyn std::error::Error,
                "naming a pooled container"
            ),
        }
        // Stopped, paused or being removed behind our back since it started: a rename does
        // not tell, and such a member must not be handed to a login.
        if !runs(&engine, &id).await {
            drop(lifeline);
            remove(&engine, &id).await;
            return Err(unusable("the pooled container is no longer running", None));
        }
        match set_up_login(&engine, &settings, &id, ctx).await {
            Ok(()) => Ok(Self {
                engine,
                settings,
                id,
                lifeline: Mutex::new(Some(lifeline)),
                agent_installed: OnceCell::new(),
                streams,
                greeting: std::sync::Mutex::new(None),
                identity: ctx.identity.clone(),
                login_env: ctx.environment.clone(),
            }),
            Err(e) => {
                drop(lifeline);
                remove(&engine, &id).await;
                Err(e)
            }
        }
    }

    /// The container's id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Shows `output` at the top of the next shell session (not commands or subsystems,
    /// whose output is data).
    pub(crate) fn greet_with(&self, output: Vec<u8>) {
        if !output.is_empty() {
            *self.greeting.lock().unwrap_or_else(PoisonError::into_inner) = Some(output);
        }
    }

    pub(crate) async fn exec(&self, spec: ProcessSpec) -> Result<Process, BackendError> {
        let greeting = match spec.command {
            Command::Shell => self
                .greeting
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
            Command::Exec(_) | Command::Subsystem(_) => None,
        };
        let greeting = match (greeting, &spec.tty) {
            (Some(text), Some(_)) => Some(sshpod_core::homes::for_terminal(&text)),
            (greeting, _) => greeting,
        };
        let mut process = self.exec_now(spec).await?;
        if let Some(text) = greeting {
            process.stdout = Box::new(std::io::Cursor::new(text).chain(process.stdout));
        }
        Ok(process)
    }

    async fn exec_now(&self, spec: ProcessSpec) -> Result<Process, BackendError> {
        let mut argv = self.settings.argv(&spec.command)?;
        let program_for_errors = spec.command.describe();
        let mut env = spec.env;
        let (mut user, mut prelude) = (None, String::new());
        if let Some(identity) = &self.identity {
            // As sshd: the user's login shell, their environment (the client's may add to
            // it), their uid, their home.
            if spec.command == Command::Shell {
                argv = Identity::login_shell_argv();
            }
            env.splice(0..0, identity.env());
            user = Some(identity.user_spec());
            prelude = identity.prelude(spec.tty.is_some());
        }
        // Below the rest, as the container's own environment would be.
        env.splice(0..0, self.login_env.iter().cloned());
        exec::start(
            &self.engine,
            ExecRequest {
                container_id: &self.id,
                argv,
                env: self.settings.process_env(&env),
                tty: spec.tty.as_ref(),
                program_for_errors,
                exit_timeout: self.settings.timeouts.command_start,
                user,
                prelude,
            },
            self.streams.as_ref(),
        )
        .await
    }

    pub(crate) async fn dial(
        &self,
        host: &str,
        port: u16,
    ) -> Result<sshpod_core::ClosedOnDrop<ExecStream>, BackendError> {
        self.agent_installed
            .get_or_try_init(|| agent::install(&self.engine, &self.id))
            .await?;
        agent::dial(&self.engine, &self.id, host, port).await
    }

    pub(crate) async fn listen(
        &self,
        bind: crate::listener::Bind<'_>,
    ) -> Result<crate::listener::DockerListener, BackendError> {
        self.agent_installed
            .get_or_try_init(|| agent::install(&self.engine, &self.id))
            .await?;
        // As the login's user, as sshd listens: a socket it can reach, a directory it owns.
        let user = self.identity.as_ref().map(Identity::user_spec);
        crate::listener::listen(&self.engine, &self.id, bind, user.as_deref()).await
    }

    pub(crate) async fn dial_unix(
        &self,
        path: &str,
    ) -> Result<sshpod_core::ClosedOnDrop<ExecStream>, BackendError> {
        self.agent_installed
            .get_or_try_init(|| agent::install(&self.engine, &self.id))
            .await?;
        agent::dial_unix(&self.engine, &self.id, path).await
    }

    pub(crate) async fn close(&self) -> Result<(), BackendError> {
        self.lifeline.lock().await.take();
        remove(&self.engine, &self.id).await;
        Ok(())
    }
}

/// In `mode: user` a user's connections share the container, and it is removed once the last
/// of them is gone for the grace period.
impl sshpod_core::per_user::Shared for ConnectionContainer {
    async fn is_alive(&self) -> bool {
        runs(&self.engine, &self.id).await
    }

    async fn retire(&self) {
        tracing::debug!(container = %self.id, "user container's grace period is over");
        let _ = self.close().await;
    }
}

/// Whether a container runs and can take processes: not stopped, paused, restarting or dead
/// (a paused container still says `running`).
async fn runs(engine: &Engine, id: &str) -> bool {
    use bollard::models::ContainerStateStatusEnum as Status;
    match engine
        .docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
    {
        Ok(c) => c
            .state
            .is_some_and(|s| s.running == Some(true) && s.status == Some(Status::RUNNING)),
        Err(_) => false,
    }
}

/// Removes a container, whatever its state. "Already gone" (auto-remove won the race) is
/// success; anything else is logged, and the start-up sweep gets another chance at it.
pub(crate) async fn remove(engine: &Engine, id: &str) {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    match engine.docker.remove_container(id, Some(options)).await {
        Ok(()) => tracing::debug!(container = id, "container removed"),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404 | 409,
            ..
        }) => tracing::debug!(container = id, "container already gone"),
        Err(e) => tracing::warn!(
            container = id,
            error = &e as &dyn std::error::Error,
            "could not remove container"
        ),
    }
}

/// Attaches the lifeline (the idle command's stdin: when sshpod dies, it closes and the
/// container ends) and starts container `id`.
pub(crate) async fn attach_and_start(
    engine: &Engine,
    settings: &Settings,
    id: &str,
) -> Result<Hijacked, BackendError> {
    let lifeline = engine
        .hijack(&format!("/containers/{id}/attach?stream=1&stdin=1"), "")
        .await
        .map_err(|e| settings.start_error("attaching to the container", e))?;
    engine
        .docker
        .start_container(id, None::<StartContainerOptions>)
        .await
        .map_err(|e| settings.start_error_engine(e))?;
    Ok(lifeline)
}

/// Makes a running container the login's: its user first (so that the login's files are
/// theirs), then the files its webhooks sent.
async fn set_up_login(
    engine: &Engine,
    settings: &Settings,
    id: &str,
    ctx: &ConnectionContext,
) -> Result<(), BackendError> {
    let timeout = settings.timeouts.command_start;
    let user = match &ctx.identity {
        Some(identity) => {
            crate::identity::set_up(engine, id, identity, timeout).await?;
            Some(identity.user_spec())
        }
        None => None,
    };
    crate::files::write_all(engine, id, &ctx.files, user.as_deref(), timeout).await
}
