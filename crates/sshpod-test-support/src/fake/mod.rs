//! A [`Backend`] whose containers exist only in memory, so the SSH server can be tested
//! without a container engine.
//!
//! # The command language
//!
//! A process is a tokio task on in-memory pipes. `Command::Exec(line)` runs the program named
//! by the line's first word; words are split on whitespace, with no quoting.
//!
//! | Command line    | What it does                                                           |
//! |-----------------|------------------------------------------------------------------------|
//! | `echo ARGS...`  | prints the arguments (joined by one space) and a newline; exits 0      |
//! | `stderr TEXT`   | prints the text and a newline on stderr; exits 0                       |
//! | `exit N`        | exits with code N modulo 256 (no argument: 0)                          |
//! | `cat`           | copies stdin to stdout until EOF; exits 0                              |
//! | `count`         | reads stdin to EOF, prints the number of bytes; exits 0                |
//! | `yes-bytes N`   | writes N bytes of `y` to stdout; exits 0                               |
//! | `env`           | prints `NAME=value` lines, sorted: the connection's environment, then the client's (`SetEnv`), then `TERM` with a tty; later ones win |
//! | `tty`           | without a tty prints `no tty` and exits 0; with one prints `term=T cols=C rows=R`, then `resize CxR` after each resize, until stdin ends (exit 0) |
//! | `wait`          | runs until any signal, then ends with `ExitStatus::Signal(sig)`        |
//! | `sleep-forever` | runs until KILL, TERM, INT or HUP                                      |
//! | (empty)         | exits 0                                                                |
//! | anything else   | `sh: NAME: not found` on stderr; exits 127                             |
//!
//! `Command::Shell` is `cat`. `Command::Subsystem(name)` is `cat` for the names given to
//! [`FakeBackendBuilder::subsystem`] and fails with `BackendError::Exec` otherwise.
//!
//! Every program except `wait` ends with `ExitStatus::Signal` on KILL, TERM, INT or HUP and
//! ignores other signals; a signal to an ended process is ignored. A program whose output
//! reader is gone ends with SIGPIPE. With a tty, stderr is merged into stdout and
//! `Process::stderr` is `None`. Closing the container kills its processes (SIGKILL).
//!
//! `dial` answers every port with an echo server, except ports given to
//! [`FakeBackendBuilder::closed_port`], which fail with `BackendError::Dial`.
//!
//! # Scripting `connect`
//!
//! [`OnConnect`] says what a `connect` does: succeed, fail with an error, or hold until the
//! test calls [`FakeBackend::release`]. Set the default with [`FakeBackendBuilder::on_connect`]
//! or [`FakeBackend::set_on_connect`], and one-shot behaviours for the next connects with
//! [`FakeBackend::push_on_connect`].
//!
//! # Waiting
//!
//! The [`Record`] lives in a `watch` channel; the `wait_*` methods wait for a condition on it
//! with a timeout, never by sleeping or polling.

mod container;
mod process;
mod programs;
mod record;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sshpod_core::{Backend, BackendError, ConnectionContext, ConnectionId};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use container::FakeContainer;
pub use record::{DialRecord, ExecRecord, Record, WaitTimedOut};

use record::StateCell;

/// What one `connect` does.
#[derive(Clone)]
pub enum OnConnect {
    /// Makes a container at once.
    Succeed,
    /// Fails with the error this makes from the connection's context; makes nothing.
    Fail(Arc<dyn Fn(&ConnectionContext) -> BackendError + Send + Sync>),
    /// Waits until [`FakeBackend::release`], then makes a container. Dropping the future
    /// before that counts in [`Record::abandoned_connects`] and makes nothing.
    Hold,
}

impl OnConnect {
    /// Fails with the error `make` returns.
    pub fn fail(make: impl Fn(&ConnectionContext) -> BackendError + Send + Sync + 'static) -> Self {
        OnConnect::Fail(Arc::new(make))
    }

    /// Fails as a container that could not be started: `BackendError::StartContainer` for
    /// image `fake`.
    pub fn start_failure(reason: &str) -> Self {
        let reason = reason.to_owned();
        Self::fail(move |_| BackendError::StartContainer {
            image: "fake".to_owned(),
            reason: reason.clone(),
            source: None,
        })
    }

    /// Fails as a container that did not start in time: `BackendError::StartTimeout` for
    /// image `fake`.
    pub fn start_timeout(seconds: u64) -> Self {
        Self::fail(move |_| BackendError::StartTimeout {
            image: "fake".to_owned(),
            seconds,
        })
    }
}

impl fmt::Debug for OnConnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OnConnect::Succeed => "Succeed",
            OnConnect::Fail(_) => "Fail(..)",
            OnConnect::Hold => "Hold",
        })
    }
}

/// Options of a [`FakeBackend`].
#[derive(Debug)]
pub struct FakeBackendBuilder {
    subsystems: BTreeSet<String>,
    closed_ports: BTreeSet<u16>,
    on_connect: OnConnect,
}

impl FakeBackendBuilder {
    /// Makes `Command::Subsystem(name)` run `cat`.
    pub fn subsystem(mut self, name: &str) -> Self {
        self.subsystems.insert(name.to_owned());
        self
    }

    /// Makes `dial` to `port` fail with `BackendError::Dial`.
    pub fn closed_port(mut self, port: u16) -> Self {
        self.closed_ports.insert(port);
        self
    }

    /// What `connect` does unless a one-shot behaviour was pushed (default: succeed).
    pub fn on_connect(mut self, on_connect: OnConnect) -> Self {
        self.on_connect = on_connect;
        self
    }

    /// The backend.
    pub fn build(self) -> FakeBackend {
        FakeBackend {
            inner: Arc::new(Inner {
                state: StateCell::new(self.on_connect),
                subsystems: self.subsystems,
                closed_ports: self.closed_ports,
                tasks: TaskTracker::new(),
                stop: CancellationToken::new(),
            }),
        }
    }
}

/// A backend whose containers and processes live in memory. Cloning gives another handle to
/// the same fake: give one to the server and keep one to script and inspect it.
#[derive(Clone)]
pub struct FakeBackend {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    state: StateCell,
    subsystems: BTreeSet<String>,
    closed_ports: BTreeSet<u16>,
    /// Every process and echo task.
    tasks: TaskTracker,
    /// Cancelled on shutdown or when the last handle goes: every process is killed.
    stop: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
        self.tasks.close();
    }
}

impl fmt::Debug for FakeBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeBackend")
            .field("record", &self.record())
            .finish_non_exhaustive()
    }
}

impl Default for FakeBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeBackend {
    /// A fake whose connects succeed, with no subsystems and every port open.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Options.
    pub fn builder() -> FakeBackendBuilder {
        FakeBackendBuilder {
            subsystems: BTreeSet::new(),
            closed_ports: BTreeSet::new(),
            on_connect: OnConnect::Succeed,
        }
    }

    /// Changes what `connect` does from now on (one-shot behaviours still go first).
    pub fn set_on_connect(&self, on_connect: OnConnect) {
        self.inner.state.modify(|s| s.default = on_connect);
    }

    /// Makes the next `connect` (after those already pushed) behave as `on_connect`.
    pub fn push_on_connect(&self, on_connect: OnConnect) {
        self.inner.state.modify(|s| s.next.push_back(on_connect));
    }

    /// Lets every connect held now go on to make its container.
    pub fn release(&self) {
        self.inner.state.modify(|s| s.releases += 1);
    }

    /// A snapshot of what the fake saw.
    pub fn record(&self) -> Record {
        self.inner.state.snapshot()
    }

    /// Every context passed to `connect` so far.
    pub fn connects(&self) -> Vec<ConnectionContext> {
        self.record().connects
    }

    /// Every process spec executed so far.
    pub fn execs(&self) -> Vec<sshpod_core::ProcessSpec> {
        self.record().execs.into_iter().map(|e| e.spec).collect()
    }

    /// `close` calls for the container of connection `id`.
    pub fn closes(&self, id: ConnectionId) -> usize {
        self.record().closes_of(id)
    }

    /// Containers made and not yet closed.
    pub fn containers_alive(&self) -> usize {
        self.record().containers_alive
    }

    /// Connects waiting for [`release`](Self::release) now.
    pub fn held_connects(&self) -> usize {
        self.record().held_connects
    }

    /// Waits until `holds` is true of the record, for at most `timeout`, and returns the
    /// record that satisfied it. `what` describes the condition in the error.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        holds: impl FnMut(&Record) -> bool,
    ) -> Result<Record, WaitTimedOut> {
        self.inner.state.wait_until(timeout, what, holds).await
    }

    /// Waits until every container made has been closed.
    pub async fn wait_until_no_containers(&self, timeout: Duration) -> Result<(), WaitTimedOut> {
        self.wait_until(timeout, "no containers alive", |r| r.containers_alive == 0)
            .await
            .map(drop)
    }

    /// Waits until no process runs.
    pub async fn wait_until_no_processes(&self, timeout: Duration) -> Result<(), WaitTimedOut> {
        self.wait_until(timeout, "no processes running", |r| {
            r.processes_running == 0
        })
        .await
        .map(drop)
    }

    /// Waits until at least `n` connects are held, for a test that cancels a login while its
    /// container is being made.
    pub async fn wait_for_held_connects(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<(), WaitTimedOut> {
        self.wait_until(timeout, &format!("{n} held connects"), |r| {
            r.held_connects >= n
        })
        .await
        .map(drop)
    }

    /// Waits until at least `n` connects have been asked for.
    pub async fn wait_for_connects(&self, n: usize, timeout: Duration) -> Result<(), WaitTimedOut> {
        self.wait_until(timeout, &format!("{n} connects"), |r| r.connects.len() >= n)
            .await
            .map(drop)
    }

    /// Waits until connection `id`'s container has been closed at least once.
    pub async fn wait_for_close(
        &self,
        id: ConnectionId,
        timeout: Duration,
    ) -> Result<(), WaitTimedOut> {
        self.wait_until(timeout, &format!("a close of {id}"), |r| {
            r.closes_of(id) > 0
        })
        .await
        .map(drop)
    }

    /// Waits for a release, counting the wait as held; a drop before release counts as
    /// abandoned.
    async fn hold(&self) -> Result<(), BackendError> {
        let mut rx = self.inner.state.subscribe();
        let seen = self.inner.state.modify(|s| {
            s.record.held_connects += 1;
            s.releases
        });
        let mut guard = HeldGuard {
            state: &self.inner.state,
            released: false,
        };
        let released = rx.wait_for(|s| s.releases > seen).await.is_ok();
        guard.released = released;
        drop(guard);
        if released {
            Ok(())
        } else {
            Err(BackendError::Engine("the fake backend went away".into()))
        }
    }
}

/// Keeps [`Record::held_connects`] and [`Record::abandoned_connects`] right however a held
/// connect ends.
struct HeldGuard<'a> {
    state: &'a StateCell,
    released: bool,
}

impl Drop for HeldGuard<'_> {
    fn drop(&mut self) {
        let released = self.released;
        self.state.update(|r| {
            r.held_connects -= 1;
            if !released {
                r.abandoned_connects += 1;
            }
        });
    }
}

impl Backend for FakeBackend {
    type Container = FakeContainer;

    async fn connect(&self, ctx: &ConnectionContext) -> Result<FakeContainer, BackendError> {
        let on_connect = self.inner.state.modify(|s| {
            s.record.connects.push(ctx.clone());
            s.next.pop_front().unwrap_or_else(|| s.default.clone())
        });
        match on_connect {
            OnConnect::Succeed => {}
            OnConnect::Fail(make) => return Err(make(ctx)),
            OnConnect::Hold => self.hold().await?,
        }
        self.inner.state.update(|r| r.containers_alive += 1);
        Ok(FakeContainer::new(Arc::clone(&self.inner), ctx.clone()))
    }

    async fn remove_orphans(&self) -> Result<usize, BackendError> {
        self.inner.state.update(|r| r.orphan_sweeps += 1);
        Ok(0)
    }

    /// Kills every process; containers still count as alive until closed.
    async fn shutdown(&self) {
        self.inner.state.update(|r| r.shutdowns += 1);
        self.inner.stop.cancel();
    }
}
