//! A fake container: runs programs of the command language and answers dials with an echo.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sshpod_core::{BackendError, Command, ConnectionContext, Container, Process, ProcessSpec};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio_util::sync::CancellationToken;

use super::process::{self, Launch};
use super::programs::{Program, ProgramContext};
use super::record::{DialRecord, ExecRecord};
use super::Inner;

/// Bytes an echo connection holds in each direction.
const ECHO_BYTES: usize = 64 * 1024;

/// The container of one connection. Closing it kills its processes and echo connections.
pub struct FakeContainer {
    inner: Arc<Inner>,
    ctx: ConnectionContext,
    /// Cancelled on close.
    gone: CancellationToken,
    closed: AtomicBool,
}

impl std::fmt::Debug for FakeContainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeContainer")
            .field("connection_id", &self.ctx.connection_id)
            .field("closed", &self.closed.load(Ordering::SeqCst))
            .finish()
    }
}

impl FakeContainer {
    pub(crate) fn new(inner: Arc<Inner>, ctx: ConnectionContext) -> Self {
        let gone = inner.stop.child_token();
        Self {
            inner,
            ctx,
            gone,
            closed: AtomicBool::new(false),
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// The program for `command`; unknown subsystems cannot start, as with a real backend.
    fn program(&self, command: &Command) -> Result<(Program, String), BackendError> {
        match command {
            Command::Shell => Ok((Program::Cat, "your shell".to_owned())),
            Command::Exec(line) => Ok((Program::parse(line), line.clone())),
            Command::Subsystem(name) if self.inner.subsystems.contains(name) => {
                Ok((Program::Cat, format!("the {name} subsystem")))
            }
            Command::Subsystem(name) => Err(BackendError::Exec {
                program: format!("the {name} subsystem"),
                source: format!("the fake has no subsystem `{name}`").into(),
            }),
        }
    }

    /// The process's environment: the connection's, then the client's, then `TERM`, so later
    /// entries win, as with the real backends.
    fn environment(&self, spec: &ProcessSpec) -> Vec<(String, String)> {
        let mut env = self.ctx.environment.clone();
        env.extend(spec.env.iter().cloned());
        if let Some(tty) = &spec.tty {
            env.push(("TERM".to_owned(), tty.term.clone()));
        }
        env
    }
}

impl Container for FakeContainer {
    type Stream = DuplexStream;

    async fn exec(&self, spec: ProcessSpec) -> Result<Process, BackendError> {
        self.inner.state.update(|r| {
            r.execs.push(ExecRecord {
                connection_id: self.ctx.connection_id,
                spec: spec.clone(),
            });
        });
        let (program, name) = self.program(&spec.command)?;
        if self.is_closed() {
            return Err(BackendError::Exec {
                program: name,
                source: "the fake container is closed".into(),
            });
        }
        let ctx = ProgramContext {
            env: self.environment(&spec),
            tty: spec.tty,
        };
        Ok(process::start(
            program,
            Launch {
                name,
                ctx,
                tasks: &self.inner.tasks,
                container_gone: self.gone.clone(),
                state: self.inner.state.clone(),
            },
        ))
    }

    async fn dial(&self, host: &str, port: u16) -> Result<DuplexStream, BackendError> {
        self.inner.state.update(|r| {
            r.dials.push(DialRecord {
                connection_id: self.ctx.connection_id,
                host: host.to_owned(),
                port,
            });
        });
        if self.is_closed() || self.inner.closed_ports.contains(&port) {
            return Err(BackendError::Dial {
                host: host.to_owned(),
                port,
                source: Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
            });
        }
        let (ours, theirs) = tokio::io::duplex(ECHO_BYTES);
        self.inner.tasks.spawn(echo(theirs, self.gone.clone()));
        Ok(ours)
    }

    /// Counts every call; only the first one tears down. Never fails.
    fn info(&self) -> sshpod_core::ContainerInfo {
        sshpod_core::ContainerInfo {
            id: Some(format!("fake-{}", self.ctx.connection_id)),
            image: "fake".to_owned(),
        }
    }

    async fn close(&self) -> Result<sshpod_core::Closed, BackendError> {
        let first = !self.closed.swap(true, Ordering::SeqCst);
        self.gone.cancel();
        self.inner.state.update(|r| {
            *r.closes.entry(self.ctx.connection_id).or_default() += 1;
            if first {
                r.containers_alive -= 1;
            }
        });
        Ok(sshpod_core::Closed::Removed)
    }
}

/// Sends back what it reads until EOF (then closes its side) or the container goes.
async fn echo(stream: DuplexStream, gone: CancellationToken) {
    let (mut reader, mut writer) = tokio::io::split(stream);
    tokio::select! {
        copied = tokio::io::copy(&mut reader, &mut writer) => {
            if copied.is_ok() {
                let _ = writer.shutdown().await;
            }
        }
        () = gone.cancelled() => {}
    }
}
