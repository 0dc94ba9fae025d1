//! One SSH connection: its state, its phases, and the task that drives it from handshake to
//! teardown. The container is provisioned once and torn down once, whatever way the
//! connection ends.

mod phase;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use russh::ChannelId;
use sshpod_core::{
    Backend, BackendError, Closed, ConnectionContext, ConnectionId, Container, Ender, EventKind,
};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

pub(crate) use phase::Login;
use phase::Phase;

use crate::server::admission::penalties::{Ending, Penalties};
use crate::server::admission::startups::Startup;
use crate::server::auth::LoginState;
use crate::server::channel::controls::{self, CallSlots};
use crate::server::events::ConnectionEvents;
use crate::server::handler::ConnectionHandler;
use crate::server::io::flow::FlowGate;
use crate::server::limits::{self, Channels};
use crate::server::revocations::Revocations;
use crate::server::transport::client_version::VersionSniffer;
use crate::server::transport::killable::KillableStream;
use crate::server::Shared;

/// Why a channel cannot have the connection's container.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum NoContainer {
    /// Starting it failed; the error is what the user is shown.
    #[error(transparent)]
    Failed(Arc<BackendError>),
    /// The connection is ending.
    #[error("the connection is closing")]
    Closing,
    /// Nobody has logged in (the handler refuses channels before that; kept for safety).
    #[error("not authenticated")]
    NotAuthenticated,
}

/// State shared by the handler and the tasks of one connection.
pub(crate) struct ConnectionState<B: Backend> {
    pub(crate) shared: Arc<Shared<B>>,
    pub(crate) id: ConnectionId,
    /// The client's address: the socket's, or a trusted proxy's PROXY header's.
    pub(crate) peer: SocketAddr,
    /// The address the client connected to (likewise), for `SSH_CONNECTION`.
    pub(crate) local: SocketAddr,
    /// Where the connection is in its life; every change goes through `phase.rs`.
    phase: watch::Sender<Phase<B::Container>>,
    /// Login attempts refused so far (for the source's penalty if it never logs in).
    failed_attempts: AtomicU32,
    /// Channel and forwarding tasks; cancelled when the connection ends.
    tasks: TaskTracker,
    pub(crate) token: CancellationToken,
    /// The connection's span (id, peer, user), for work that runs outside its task.
    pub(crate) span: tracing::Span,
    /// What happens on the connection, for the subscribers (the log among them).
    pub(crate) events: ConnectionEvents,
    /// Bounds the client data the connection holds (see `io::flow`).
    pub(crate) gate: Arc<FlowGate>,
    /// Bounds the engine calls (resize, signal) the connection makes at once.
    pub(crate) calls: CallSlots,
    /// Channels whose work has ended, for the handler to forget (the SSH library does not
    /// report the client's answer to a close that sshpod started).
    finished_channels: Mutex<Vec<ChannelId>>,
    /// The MaxStartups slot, held until the login is accepted.
    startup_permit: Mutex<Option<Startup>>,
    /// The client's version line, recorded as it arrives (webhooks are told it).
    pub(crate) client_version: Arc<OnceLock<String>>,
    /// The SSH session's handle, to disconnect with a reason.
    handle: OnceLock<russh::server::Handle>,
    /// Why the connection was ended from inside (a required recording that failed, a limit),
    /// once it has.
    ended: OnceLock<String>,
    /// The open channels, for the idle and session limits.
    pub(crate) channels: Channels,
    /// A keyboard-interactive conversation in progress.
    pub(crate) login: LoginState,
    /// The server's revocation list, which ends the connection if it revokes the login's key.
    pub(crate) revocations: Revocations,
    /// What the container's start is waiting for, as the backend reports it.
    pub(crate) progress: sshpod_core::Progress,
}

impl<B: Backend> ConnectionState<B> {
    pub(crate) fn new(
        shared: Arc<Shared<B>>,
        (peer, local): (SocketAddr, SocketAddr),
        via: Option<SocketAddr>,
        permit: Startup,
        token: CancellationToken,
        revocations: Revocations,
    ) -> Self {
        let id = ConnectionId::random();
        let span = tracing::info_span!(
            "conn",
            id = %id,
            %peer,
            via = tracing::field::Empty,
            user = tracing::field::Empty
        );
        if let Some(proxy) = via {
            span.record("via", tracing::field::display(proxy));
        }
        let events = ConnectionEvents::new(shared.subscribers.clone(), id, peer, span.clone());
        Self {
            shared,
            id,
            peer,
            local,
            phase: watch::Sender::new(Phase::Authenticating {
                login_requested: false,
            }),
            failed_attempts: AtomicU32::new(0),
            tasks: TaskTracker::new(),
            token,
            span,
            events,
            gate: Arc::default(),
            calls: controls::call_slots(),
            finished_channels: Mutex::default(),
            startup_permit: Mutex::new(Some(permit)),
            client_version: Arc::default(),
            handle: OnceLock::new(),
            ended: OnceLock::new(),
            channels: Channels::default(),
            login: LoginState::default(),
            revocations,
            progress: sshpod_core::Progress::new(),
        }
    }

    /// Runs the connection from handshake to teardown: the SSH session, the handshake and
    /// login deadlines, provisioning once logged in, then draining.
    pub(crate) async fn run(
        self: Arc<Self>,
        socket: TcpStream,
        russh: Arc<russh::server::Config>,
        penalties: Arc<Penalties>,
    ) {
        // A subscriber may end the connection from its own thread (a recorder's writer):
        // the runtime is entered there to reach the session.
        let weak = Arc::downgrade(&self);
        let runtime = tokio::runtime::Handle::current();
        let ender = Ender::new(move |message| {
            if let Some(conn) = weak.upgrade() {
                let _entered = runtime.enter();
                conn.end_with(message);
            }
        });
        if let Err(message) = self.events.attach(&ender) {
            self.end_with(message);
        }
        self.events.emit(EventKind::Connected);
        self.spawn(limits::watch(Arc::clone(&self)));
        let _ = socket.set_nodelay(true);
        let socket = VersionSniffer::new(socket, Arc::clone(&self.client_version));
        let kill = CancellationToken::new();
        let stream = KillableStream::new(socket, kill.clone(), Arc::clone(&self.gate));
        let handler = ConnectionHandler::new(Arc::clone(&self));

        // Boxed, as the other large futures here: the compiler gives every future a connection
        // awaits a slot of its own in the connection's task, moved-from ones included, and the
        // task lives as long as the connection.
        let session = Box::pin(async {
            match russh::server::run_stream(russh, stream, handler).await {
                Ok(running) => {
                    let handle = running.handle();
                    let _ = self.handle.set(handle.clone());
                    if let Some(message) = self.ended.get() {
                        self.send_disconnect(message.clone());
                    }
                    tokio::select! {
                        r = running => self.events.emit(EventKind::SessionEnded {
                            reason: r.err().map(|e| e.to_string()),
                        }),
                        () = self.token.cancelled() => {
                            let reason = "the server is shutting down";
                            let _ = handle
                                .disconnect(
                                    russh::Disconnect::ByApplication,
                                    reason.to_owned(),
                                    String::new(),
                                )
                                .await;
                            self.events.emit(EventKind::SessionEnded {
                                reason: Some(reason.to_owned()),
                            });
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "handshake failed"),
            }
        });
        let timed_out = self.alongside_the_session(session).await;
        if !self.phase.borrow().logged_in() {
            let ending = if self.had_refused_login() {
                Ending::AuthFailed
            } else if timed_out {
                Ending::GraceExceeded
            } else {
                Ending::NoAuth
            };
            penalties.penalise(self.peer.ip(), ending);
        }
        kill.cancel();
        Box::pin(self.teardown()).await;
        self.events.emit(EventKind::Closed);
    }

    /// Runs the deadlines and provisioning alongside the SSH session until the session ends or
    /// a deadline passes; true if a deadline passed. A container in the making is waited for,
    /// so that teardown removes it.
    async fn alongside_the_session(&self, session: impl std::future::Future<Output = ()>) -> bool {
        // Dropped once provisioning is over: nothing of it need stay for the connection's life.
        let mut lifecycle = Some(Box::pin(self.authenticate_then_provision()));
        tokio::pin!(session);
        loop {
            let Some(pending) = lifecycle.as_mut() else {
                session.await;
                return false;
            };
            tokio::select! {
                () = &mut session => {
                    if self.phase.borrow().login().is_some() {
                        if let Some(pending) = lifecycle.take() {
                            let _ = pending.await;
                        }
                    }
                    return false;
                }
                ended = pending => match ended {
                    Lifecycle::TimedOut => return true,
                    Lifecycle::Provisioned => lifecycle = None,
                },
            }
        }
    }

    /// Waits for the handshake and the login within their deadlines, then makes the
    /// container.
    async fn authenticate_then_provision(&self) -> Lifecycle {
        let config = &self.shared.config.ssh;
        // Both deadlines run from the connection's start, side by side.
        let started = tokio::time::Instant::now();
        let mut requested = self.phase.subscribe();
        let handshake = async {
            let done = requested.wait_for(|p| {
                !matches!(
                    p,
                    Phase::Authenticating {
                        login_requested: false
                    }
                )
            });
            if tokio::time::timeout_at(started + config.handshake_timeout, done)
                .await
                .is_err()
            {
                return EventKind::HandshakeTimedOut;
            }
            std::future::pending().await
        };
        let mut logged_in = self.phase.subscribe();
        let login = async {
            let done = logged_in.wait_for(|p| !matches!(p, Phase::Authenticating { .. }));
            match tokio::time::timeout_at(started + config.login_grace_time, done).await {
                Ok(Ok(p)) => Ok(p.login().cloned()),
                Ok(Err(_)) => Ok(None),
                Err(_) => Err(EventKind::LoginGraceOver),
            }
        };
        let login = tokio::select! {
            timed_out = handshake => Err(timed_out),
            login = login => login,
        };
        let login = match login {
            Ok(login) => login,
            Err(timed_out) => {
                self.events.emit(timed_out);
                return Lifecycle::TimedOut;
            }
        };
        if let Some(login) = login {
            // Boxed: a backend's connect future is large (an engine's create, start and
            // wait), and inline it would size the connection's task for its whole life.
            Box::pin(self.provision(&login)).await;
        }
        Lifecycle::Provisioned
    }

    /// Makes the container. Runs in the connection's task, which nothing cancels while a
    /// creation is in flight: it always finishes, so teardown knows what to remove.
    async fn provision(&self, login: &Login) {
        let mut ctx = ConnectionContext::new(self.id, login.user.to_string(), self.peer);
        ctx.progress = self.progress.clone();
        login.outcome.apply(&mut ctx);
        if ctx.config.is_none() {
            // After a reload, the backend is told the file's new settings.
            ctx.config = self.shared.reloaded.clone();
        }
        let connected = match identity_of(&mut ctx, &self.shared.config) {
            Ok(()) => self.shared.backend.connect(&ctx).await,
            Err(refused) => Err(refused),
        };
        let result = match connected {
            Ok(c) => {
                self.events.emit(EventKind::ContainerReady {
                    container: c.info(),
                });
                Ok(Arc::new(c))
            }
            Err(e) => {
                let error = Arc::new(e);
                self.events.emit(EventKind::ContainerFailed {
                    error: Arc::clone(&error),
                });
                Err(error)
            }
        };
        self.move_phase(|p| p.provisioned(result));
    }

    /// Ends everything the connection started: stops its channel tasks and removes the
    /// container.
    async fn teardown(&self) {
        self.token.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        let mut container = None;
        self.phase.send_modify(|p| container = p.drain());
        if let Some(container) = container {
            match container.close().await {
                Ok(Closed::Removed) => self.events.emit(EventKind::ContainerRemoved),
                Ok(Closed::Kept) => self.events.emit(EventKind::ContainerKept),
                Err(e) => self
                    .events
                    .emit(EventKind::ContainerRemovalFailed { error: Arc::new(e) }),
            }
        }
    }

    /// Applies a phase move; a move the phase refuses is a bug, logged and not acted on.
    fn move_phase<T>(
        &self,
        change: impl FnOnce(&mut Phase<B::Container>) -> Result<T, phase::InvalidMove>,
    ) -> Option<T> {
        let mut outcome = None;
        self.phase.send_if_modified(|p| match change(p) {
            Ok(value) => {
                outcome = Some(value);
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "connection phase");
                false
            }
        });
        outcome
    }

    /// The client asked for the login service, so the key exchange is done.
    pub(crate) fn on_login_request(&self) {
        self.phase.send_if_modified(Phase::login_requested);
    }

    /// A login attempt was refused.
    pub(crate) fn on_login_refused(&self) {
        self.failed_attempts.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether any login attempt was refused.
    fn had_refused_login(&self) -> bool {
        self.failed_attempts.load(Ordering::Relaxed) > 0
    }

    /// Accepts the login: records the user, frees the MaxStartups slot and moves to
    /// provisioning, which the connection's task starts at once, so the container is usually
    /// ready by the time the first session asks. False if the connection had logged in already
    /// or is ending.
    pub(crate) fn on_logged_in(&self, login: Login) -> bool {
        let user = Arc::clone(&login.user);
        if self.move_phase(|p| p.logged_in_as(login)).is_none() {
            return false;
        }
        self.span.record("user", &*user);
        self.events.set_user(user);
        if let Ok(mut permit) = self.startup_permit.lock() {
            permit.take();
        }
        true
    }

    /// The accepted login, while the connection is logged in.
    pub(crate) fn login(&self) -> Option<Arc<Login>> {
        self.phase.borrow().login().cloned()
    }

    /// Waits for the login; None if the connection ends without one.
    pub(crate) async fn logged_in(&self) -> Option<Arc<Login>> {
        let mut phase = self.phase.subscribe();
        let phase = phase
            .wait_for(|p| !matches!(p, Phase::Authenticating { .. }))
            .await
            .ok()?;
        phase.login().cloned()
    }

    /// Whether a login was accepted.
    pub(crate) fn is_logged_in(&self) -> bool {
        self.phase.borrow().logged_in()
    }

    /// Runs `work` as part of this connection: in its span, awaited by its teardown.
    pub(crate) fn spawn<F>(&self, work: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(work.instrument(self.span.clone()));
    }

    /// The connection's container, once provisioning is over.
    pub(crate) async fn container(&self) -> Result<Arc<B::Container>, NoContainer> {
        let mut phase = self.phase.subscribe();
        let Ok(phase) = phase
            .wait_for(|p| !matches!(p, Phase::Provisioning { .. }))
            .await
        else {
            return Err(NoContainer::Closing);
        };
        match &*phase {
            Phase::Ready { container, .. } => Ok(Arc::clone(container)),
            Phase::Failed { error, .. } => Err(NoContainer::Failed(Arc::clone(error))),
            Phase::Draining { .. } => Err(NoContainer::Closing),
            Phase::Authenticating { .. } | Phase::Provisioning { .. } => {
                Err(NoContainer::NotAuthenticated)
            }
        }
    }

    /// Ends the connection with `reason` shown to the client, after the current reply (russh
    /// handles the request once the authentication callback has returned).
    pub(crate) fn disconnect(&self, reason: &'static str) {
        if let Some(handle) = self.handle.get().cloned() {
            self.spawn(async move {
                let _ = handle
                    .disconnect(
                        russh::Disconnect::ServiceNotAvailable,
                        format!("sshpod: {reason}"),
                        String::new(),
                    )
                    .await;
            });
        }
    }

    /// Ends the connection because a subscriber it cannot do without failed; the user is told
    /// `message`. Before the session has a handle, it is told as soon as it has one.
    pub(crate) fn end_with(&self, message: String) {
        if self.ended.set(message.clone()).is_ok() {
            tracing::warn!(reason = message, "ending the connection");
            self.send_disconnect(message);
        }
    }

    /// Ends the connection because `rule` (a limit) ran out: the subscribers are told, the
    /// client is disconnected with `message`.
    pub(crate) fn end_by_limit(&self, rule: &'static str, message: String) {
        if self.ended.set(message.clone()).is_ok() {
            self.events.emit(EventKind::LimitReached {
                rule,
                message: message.clone(),
            });
            self.send_disconnect(message);
        }
    }

    /// Writes a notice into a terminal session's output.
    pub(crate) async fn write_to_terminal(&self, channel: ChannelId, text: &str) {
        if let Some(handle) = self.handle.get() {
            let _ = handle.data(channel, text.as_bytes().to_vec()).await;
        }
    }

    fn send_disconnect(&self, message: String) {
        if let Some(handle) = self.handle.get().cloned() {
            self.spawn(async move {
                let _ = handle
                    .disconnect(
                        russh::Disconnect::ByApplication,
                        format!("sshpod: {message}"),
                        String::new(),
                    )
                    .await;
            });
        }
    }

    /// Records that `channel`'s task has ended.
    pub(crate) fn channel_finished(&self, channel: ChannelId) {
        self.channels.closed(channel);
        lock(&self.finished_channels).push(channel);
    }

    /// The channels that ended since the last call.
    pub(crate) fn take_finished_channels(&self) -> Vec<ChannelId> {
        std::mem::take(&mut *lock(&self.finished_channels))
    }
}

/// How the authentication-and-provisioning part of a connection ended.
enum Lifecycle {
    /// The handshake or the login took too long.
    TimedOut,
    /// The login was accepted and provisioning is over (or the session ended first).
    Provisioned,
}

/// A lock whose data stays consistent even if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Puts the login's user and hostname (`identity`) into `ctx`, from the connection's own
/// configuration or else `file`'s. A login name that cannot be a user is refused here, before
/// any container is made.
fn identity_of(
    ctx: &mut ConnectionContext,
    file: &sshpod_config::Config,
) -> Result<(), sshpod_core::BackendError> {
    let identity = &ctx.config.as_deref().unwrap_or(file).identity;
    let refused = sshpod_core::BackendError::Identity;
    let hostname = sshpod_core::hostname_for(&identity.hostname, &ctx.user).map_err(refused)?;
    let user = sshpod_core::Identity::resolve(identity, &ctx.user).map_err(refused)?;
    if let Some(user) = &user {
        tracing::debug!(uid = user.uid, gid = user.gid, home = %user.home, "runs as its own user");
    }
    ctx.hostname = hostname;
    ctx.identity = user;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sshpod_core::{BackendError, ConnectionId, IdentityError};

    fn config(identity: &str) -> sshpod_config::Config {
        let text = format!(
            "auth: {{password: {{method: htpasswd, htpasswd: {{file: /x}}}}}}\nidentity: {identity}\n"
        );
        sshpod_config::parse_str(&text, sshpod_config::Format::Yaml, "t.yaml")
            .unwrap_or_else(|e| panic!("{e}"))
            .config
    }

    fn ctx(user: &str) -> ConnectionContext {
        ConnectionContext::new(
            ConnectionId::random(),
            user.into(),
            ([127, 0, 0, 1], 1).into(),
        )
    }

    #[test]
    fn off_leaves_the_image_user_and_hostname() {
        let mut c = ctx("alice");
        assert!(identity_of(&mut c, &config("{}")).is_ok());
        assert_eq!((c.identity, c.hostname), (None, None));
    }

    #[test]
    fn the_connections_own_configuration_wins_over_the_file() {
        let file = config("{enable: true, uid: 2000}");
        let mut c = ctx("alice");
        c.config = Some(Arc::new(config(
            "{enable: true, uid: 3001, hostname: '%u-x'}",
        )));
        assert!(identity_of(&mut c, &file).is_ok());
        assert_eq!(c.identity.as_ref().map(|i| i.uid), Some(3001));
        assert_eq!(c.hostname.as_deref(), Some("alice-x"));
    }

    #[test]
    fn names_that_cannot_be_users_are_refused_before_a_container_is_made() {
        let file = config("{enable: true, hostname: '%u-x'}");
        for hostile in ["eve:x", "a\nroot::0:0::/:/bin/sh", "12345"] {
            let mut c = ctx(hostile);
            match identity_of(&mut c, &file) {
                Err(BackendError::Identity(
                    IdentityError::BadUserName { .. } | IdentityError::BadHostname { .. },
                )) => {}
                other => panic!("{hostile:?}: {other:?}"),
            }
            assert_eq!(c.identity, None);
        }
    }
}
