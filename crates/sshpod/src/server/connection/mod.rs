//! One SSH connection's shared state and its lifetime: provisioning the container once,
//! and tearing it down once, whatever way the connection ends.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use russh::ChannelId;
use sshpod_core::{Backend, ConnectionContext, ConnectionId, Container};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::server::admission::startups::Startup;
use crate::server::auth::LoginState;
use crate::server::channel::controls::{self, CallSlots};
use crate::server::io::flow::FlowGate;
use crate::server::Shared;

/// The outcome of provisioning: the container, or the message to show the user.
pub(crate) type Provisioned<C> = Result<Arc<C>, String>;

/// State shared by the handler and the tasks of one connection.
pub(crate) struct ConnectionState<B: Backend> {
    pub(crate) shared: Arc<Shared<B>>,
    pub(crate) id: ConnectionId,
    pub(crate) peer: SocketAddr,
    user: OnceLock<String>,
    /// Flips to true once authenticated (ends the login grace timer).
    authenticated: watch::Sender<bool>,
    /// Login attempts refused so far (for the source's penalty if it never logs in).
    failed_attempts: std::sync::atomic::AtomicU32,
    /// Flips to true when the client asks to log in: the key exchange is done (ends the
    /// handshake timer).
    handshaken: watch::Sender<bool>,
    /// Set once, by the provisioning task started at authentication.
    container: watch::Sender<Option<Provisioned<B::Container>>>,
    /// Channel and forwarding tasks; cancelled when the connection ends.
    tasks: TaskTracker,
    pub(crate) token: CancellationToken,
    /// The connection's span (id, peer, user), for work that runs outside its task.
    pub(crate) span: tracing::Span,
    /// Bounds the client data the connection holds (see `flow`).
    pub(crate) gate: Arc<FlowGate>,
    /// Bounds the engine calls (resize, signal) the connection makes at once.
    pub(crate) calls: CallSlots,
    /// Channels whose work has ended, for the handler to forget (the SSH library does not
    /// report the client's answer to a close that sshpod started).
    finished_channels: Mutex<Vec<ChannelId>>,
    /// The MaxStartups slot, held until authentication succeeds.
    startup_permit: Mutex<Option<Startup>>,
    /// Webhook state: client version, answers so far, what the login brought.
    pub(crate) login: LoginState,
}

impl<B: Backend> ConnectionState<B> {
    pub(crate) fn new(
        shared: Arc<Shared<B>>,
        peer: SocketAddr,
        permit: Startup,
        token: CancellationToken,
    ) -> Self {
        let id = ConnectionId::random();
        let span = tracing::info_span!("conn", id = %id, %peer, user = tracing::field::Empty);
        Self {
            shared,
            id,
            peer,
            user: OnceLock::new(),
            authenticated: watch::Sender::new(false),
            handshaken: watch::Sender::new(false),
            failed_attempts: std::sync::atomic::AtomicU32::new(0),
            container: watch::Sender::new(None),
            tasks: TaskTracker::new(),
            token,
            span,
            gate: Arc::default(),
            calls: controls::call_slots(),
            finished_channels: Mutex::default(),
            startup_permit: Mutex::new(Some(permit)),
            login: LoginState::default(),
        }
    }

    /// Records that `channel`'s task has ended.
    pub(crate) fn channel_finished(&self, channel: ChannelId) {
        lock(&self.finished_channels).push(channel);
    }

    /// The channels that ended since the last call.
    pub(crate) fn take_finished_channels(&self) -> Vec<ChannelId> {
        std::mem::take(&mut *lock(&self.finished_channels))
    }

    /// The authenticated user, once there is one.
    pub(crate) fn user(&self) -> Option<&str> {
        self.user.get().map(String::as_str)
    }

    /// A receiver that turns true once the client asks to log in.
    pub(crate) fn watch_handshake(&self) -> watch::Receiver<bool> {
        self.handshaken.subscribe()
    }

    /// The client has asked for the login service, so the key exchange is done.
    pub(crate) fn on_login_request(&self) {
        self.handshaken
            .send_if_modified(|done| !std::mem::replace(done, true));
    }

    /// A login attempt was refused.
    pub(crate) fn on_login_refused(&self) {
        self.failed_attempts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether any login attempt was refused.
    pub(crate) fn had_refused_login(&self) -> bool {
        self.failed_attempts
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    }

    /// A receiver that turns true on authentication.
    pub(crate) fn watch_authenticated(&self) -> watch::Receiver<bool> {
        self.authenticated.subscribe()
    }

    /// Records the login, frees the MaxStartups slot and starts provisioning the container in
    /// the background, so it is usually ready by the time the first session asks.
    pub(crate) fn on_authenticated(self: &Arc<Self>, user: &str) {
        if self.user.set(user.to_owned()).is_err() {
            return; // provisioning has started already
        }
        self.span.record("user", user);
        self.authenticated.send_replace(true);
        if let Ok(mut permit) = self.startup_permit.lock() {
            permit.take();
        }
        let me = Arc::clone(self);
        // The one place a container is made, in a task nothing cancels: a creation in flight
        // always finishes, so teardown knows what to remove. (Provisioning inside a session's
        // task would be dropped with the session, abandoning a half-made container.)
        self.spawn(async move {
            let outcome = me.provision().await;
            me.container.send_replace(Some(outcome));
        });
    }

    /// Runs `work` as part of this connection: in its span, awaited by its teardown.
    pub(crate) fn spawn<F>(&self, work: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(work.instrument(self.span.clone()));
    }

    /// The connection's container, once provisioning (started at authentication) is done.
    pub(crate) async fn container(&self) -> Provisioned<B::Container> {
        if self.user().is_none() {
            return Err("not authenticated".to_owned());
        }
        let mut ready = self.container.subscribe();
        let outcome = match ready.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone(),
            Err(_) => None,
        };
        outcome.unwrap_or_else(|| Err("the connection is closing".to_owned()))
    }

    async fn provision(&self) -> Provisioned<B::Container> {
        let Some(user) = self.user() else {
            return Err("not authenticated".to_owned());
        };
        let mut ctx = ConnectionContext::new(self.id, user.to_owned(), self.peer);
        if let Some(outcome) = self.login.outcome() {
            outcome.apply(&mut ctx);
        }
        match self.shared.backend.connect(&ctx).await {
            Ok(c) => {
                tracing::info!("container ready");
                Ok(Arc::new(c))
            }
            Err(e) => {
                tracing::warn!(
                    error = &e as &dyn std::error::Error,
                    "container failed to start"
                );
                Err(e.to_string())
            }
        }
    }

    /// Ends everything the connection started: stops its channel tasks, waits for a
    /// provisioning in flight, and removes the container.
    pub(crate) async fn teardown(&self) {
        self.token.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        let provisioned = self.container.borrow().clone();
        if let Some(Ok(container)) = provisioned {
            match container.close().await {
                Ok(()) => tracing::info!("container removed"),
                Err(e) => tracing::warn!(
                    error = &e as &dyn std::error::Error,
                    "removing the container"
                ),
            }
        }
    }
}

/// A lock whose data stays consistent even if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
