//! Session mode: every SSH session gets a container of its own, whose main process is the
//! requested program, connected through an attach stream.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bollard::query_parameters::{
    KillContainerOptions, ResizeContainerTTYOptions, StartContainerOptions, WaitContainerOptions,
};
use futures_util::StreamExt;
use sshpod_core::{
    BackendError, BoxFuture, ConnectionContext, ExitStatus, Process, ProcessControl, ProcessSpec,
    Signal, TerminalSize,
};
use tokio::sync::Mutex;

use crate::container::remove;
use crate::engine::Engine;
use crate::exec::{assemble, AbortOnDrop, DemuxOwner};
use crate::settings::Settings;
use sshpod_core::wrapper::DeliveredSignal;

/// The per-session containers of one connection.
pub struct SessionContainers {
    engine: Engine,
    settings: Arc<Settings>,
    ctx: ConnectionContext,
    instance: String,
    /// Containers still running, removed on close if their session did not end cleanly.
    live: Arc<Mutex<HashSet<String>>>,
    /// Numbers the sessions, so that sessions open at the same time get distinct names.
    next: AtomicUsize,
    /// The home and extra mounts of every session's container.
    mounts: Vec<bollard::models::Mount>,
}

impl SessionContainers {
    /// The image of every session's container (each has its own id).
    pub(crate) fn info(&self) -> sshpod_core::ContainerInfo {
        sshpod_core::ContainerInfo {
            id: None,
            image: self.settings.image.clone(),
        }
    }

    pub(crate) async fn new(
        engine: Engine,
        settings: Arc<Settings>,
        ctx: &ConnectionContext,
        instance: &str,
        mounts: Vec<bollard::models::Mount>,
    ) -> Result<Self, BackendError> {
        Ok(Self {
            mounts,
            engine,
            settings,
            ctx: ctx.clone(),
            instance: instance.to_owned(),
            live: Arc::new(Mutex::new(HashSet::new())),
            next: AtomicUsize::new(0),
        })
    }

    pub(crate) async fn exec(&self, spec: ProcessSpec) -> Result<Process, BackendError> {
        let argv = self.settings.argv(&spec.command)?;
        let tty = spec.tty.as_ref();
        let mut body = self
            .settings
            .container_body(&self.ctx, &self.instance, argv, tty);
        crate::add_mounts(&mut body, self.mounts.clone());
        let mut env = body.env.take().unwrap_or_default();
        env.extend(self.settings.process_env(&spec.env));
        if let Some(t) = tty {
            env.push(format!("TERM={}", t.term));
        }
        body.env = Some(env);
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}-{number}", self.settings.container_name(&self.ctx));
        let crate::create::Created { id, slot } = crate::create::create(
            &self.engine,
            &self.settings,
            (name, body),
            &self.ctx.progress,
        )
        .await?;
        self.live.lock().await.insert(id.clone());
        let started = self.attach_and_start(&id, &spec).await;
        drop(slot);
        match started {
            Ok(p) => Ok(p),
            Err(e) => {
                self.live.lock().await.remove(&id);
                remove(&self.engine, &id).await;
                Err(e)
            }
        }
    }

    async fn attach_and_start(
        &self,
        id: &str,
        spec: &ProcessSpec,
    ) -> Result<Process, BackendError> {
        let hijacked = self
            .engine
            .hijack(
                &format!("/containers/{id}/attach?stream=1&stdin=1&stdout=1&stderr=1"),
                "",
            )
            .await
            .map_err(|e| self.settings.start_error("attaching to the container", e))?;
        crate::files::upload_before_start(&self.engine, id, &self.ctx.files).await?;
        self.engine
            .docker
            .start_container(id, None::<StartContainerOptions>)
            .await
            .map_err(|e| self.settings.start_error_engine(e))?;
        let control = SessionControl {
            engine: self.engine.clone(),
            id: id.to_owned(),
            live: Arc::clone(&self.live),
            delivered: DeliveredSignal::default(),
            demux_task: None,
        };
        if let Some(t) = &spec.tty {
            // A program that already ended has no terminal left to size; that is no error.
            if let Err(e) = control.resize_now(t.size).await {
                tracing::debug!(
                    error = &e as &dyn std::error::Error,
                    "initial terminal size"
                );
            }
        }
        Ok(assemble(
            hijacked.reader,
            hijacked.writer,
            spec.tty.is_some(),
            control,
        ))
    }

    pub(crate) async fn close(&self) -> Result<(), BackendError> {
        let ids: Vec<String> = self.live.lock().await.drain().collect();
        for id in ids {
            remove(&self.engine, &id).await;
        }
        // A session cancelled while its container was being created (the client left) never
        // learnt the id: sweep by the connection's label too.
        crate::orphans::remove_connection(&self.engine, &self.ctx.connection_id.to_string()).await;
        Ok(())
    }
}

struct SessionControl {
    engine: Engine,
    id: String,
    live: Arc<Mutex<HashSet<String>>>,
    delivered: DeliveredSignal,
    demux_task: Option<AbortOnDrop>,
}

impl DemuxOwner for SessionControl {
    fn set_demux_task(&mut self, task: AbortOnDrop) {
        self.demux_task = Some(task);
    }
}

impl SessionControl {
    async fn resize_now(&self, size: TerminalSize) -> Result<(), BackendError> {
        let options = ResizeContainerTTYOptions {
            h: i32::from(size.rows),
            w: i32::from(size.cols),
        };
        self.engine
            .docker
            .resize_container_tty(&self.id, options)
            .await
            .map_err(|e| BackendError::Engine(Box::new(e)))
    }

    async fn deliver(&self, signal: Signal) -> Result<(), BackendError> {
        let options = KillContainerOptions {
            signal: signal.name().to_owned(),
        };
        let sending = self.delivered.sending(signal);
        self.engine
            .docker
            .kill_container(&self.id, Some(options))
            .await
            .map_err(|e| BackendError::Engine(Box::new(e)))?;
        sending.sent();
        Ok(())
    }

    async fn wait_exit(&self) -> Result<ExitStatus, BackendError> {
        let options = WaitContainerOptions {
            condition: "not-running".to_owned(),
        };
        let code = match self
            .engine
            .docker
            .wait_container(&self.id, Some(options))
            .next()
            .await
        {
            Some(Ok(r)) => r.status_code,
            // bollard reports a non-zero exit as an error carrying the code.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
            Some(Err(e)) => return Err(BackendError::Engine(Box::new(e))),
            None => 255,
        };
        self.live.lock().await.remove(&self.id);
        remove(&self.engine, &self.id).await;
        Ok(self.delivered.exit_status(code))
    }
}

impl ProcessControl for SessionControl {
    fn resize(&self, size: TerminalSize) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(self.resize_now(size))
    }

    fn signal(&self, signal: Signal) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(self.deliver(signal))
    }

    fn wait(&self) -> BoxFuture<'_, Result<ExitStatus, BackendError>> {
        Box::pin(self.wait_exit())
    }
}
