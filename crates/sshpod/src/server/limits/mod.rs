//! Idle and session limits of a logged-in connection, the drain notice, and the end of its
//! credentials: one task per connection watches its channels' activity clocks and the
//! deadlines, warns terminal sessions before a limit ends them, closes idle channels and ends
//! the connection.
//!
//! The limits (`ssh.unusedConnectionTimeout`, `ssh.channelTimeout`, `ssh.idleTimeout`,
//! `ssh.maxSessionDuration`, warned `ssh.limitWarning` ahead) come from the login's
//! configuration, so a config server may set them per user. They count from the moment the
//! connection's container is ready. Traffic is noted where bytes already flow ([`Activity`]);
//! this task only reads the clocks when a deadline is due.
//!
//! The same task ends the connection when the certificate it logged in with expires
//! (`auth.publicKey.disconnectExpiredCert`, warned likewise) and when the revocation list, once
//! changed, revokes its key or certificate (`auth.publicKey.revokedKeys`, see
//! `server::revocations`). The expiry is read off the wall clock once, when the watch starts.

mod activity;
mod review;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use russh::ChannelId;
use sshpod_auth::Revocation;
use sshpod_core::{Backend, EventKind};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub(crate) use activity::Activity;
pub(crate) use review::CERTIFICATE_EXPIRED;
use review::{review, Action, Limit, Snapshot, WatchedChannel};

use crate::server::connection::{ConnectionState, Login, NoContainer};
use crate::server::revocations::RevocationList;

/// The configuration key that ends a connection whose key or certificate is revoked.
pub(crate) const KEY_REVOKED: &str = "auth.publicKey.revokedKeys";

/// The open channels of a connection, as the limits see them.
#[derive(Debug, Default)]
pub(crate) struct Channels {
    state: Mutex<State>,
    changed: Notify,
}

#[derive(Debug, Default)]
struct State {
    open: HashMap<ChannelId, Watched>,
    /// When a channel last opened or closed.
    last_change: Option<Instant>,
}

#[derive(Debug)]
struct Watched {
    kind: &'static str,
    activity: Arc<Activity>,
    terminal: bool,
    closer: CancellationToken,
}

/// What a channel's task needs from the limits: its activity clock and the token that closes
/// it (a child of the connection's).
pub(crate) struct ChannelLimits {
    pub(crate) activity: Arc<Activity>,
    pub(crate) closer: CancellationToken,
}

impl Channels {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A channel of OpenSSH's type `kind` (`session`, `direct-tcpip`) opened.
    pub(crate) fn opened(
        &self,
        id: ChannelId,
        kind: &'static str,
        connection: &CancellationToken,
    ) -> ChannelLimits {
        let limits = ChannelLimits {
            activity: Arc::new(Activity::new()),
            closer: connection.child_token(),
        };
        let mut state = self.lock();
        state.open.insert(
            id,
            Watched {
                kind,
                activity: Arc::clone(&limits.activity),
                terminal: false,
                closer: limits.closer.clone(),
            },
        );
        state.last_change = Some(Instant::now());
        drop(state);
        self.changed.notify_one();
        limits
    }

    /// The channel's process runs with a terminal: warnings are written to it.
    pub(crate) fn has_terminal(&self, id: ChannelId) {
        if let Some(watched) = self.lock().open.get_mut(&id) {
            watched.terminal = true;
        }
    }

    /// The channel closed (or its work ended); a second call changes nothing.
    pub(crate) fn closed(&self, id: ChannelId) {
        let mut state = self.lock();
        if state.open.remove(&id).is_some() {
            state.last_change = Some(Instant::now());
            drop(state);
            self.changed.notify_one();
        }
    }

    fn snapshot(&self) -> Snapshot<ChannelId> {
        let state = self.lock();
        Snapshot {
            last_change: state.last_change,
            channels: state
                .open
                .iter()
                .map(|(id, w)| WatchedChannel {
                    id: *id,
                    kind: w.kind,
                    last: w.activity.last(),
                    terminal: w.terminal,
                })
                .collect(),
        }
    }

    fn close(&self, id: ChannelId) {
        if let Some(watched) = self.lock().open.get(&id) {
            watched.closer.cancel();
        }
    }
}

/// Watches the connection's limits from its login to its end. Runs on the connection's
/// tracker.
pub(crate) async fn watch<B: Backend>(conn: Arc<ConnectionState<B>>) {
    let token = conn.token.clone();
    // From the start: a revocation while the container is made is still news at the login.
    let revocations = conn.revocations.subscribe();
    tokio::select! {
        () = token.cancelled() => {}
        () = watch_logged_in(&conn, revocations) => {}
    }
}

async fn watch_logged_in<B: Backend>(
    conn: &ConnectionState<B>,
    mut revocations: watch::Receiver<RevocationList>,
) {
    let Some(login) = conn.logged_in().await else {
        return;
    };
    // The clocks start once the container is ready (or could not be made): the wait for it is
    // nobody's idle time.
    if let Err(NoContainer::Closing) = conn.container().await {
        return;
    }
    let limits = login.limits.clone();
    let logged_in_at = Instant::now();
    let certificate_expires = login
        .key
        .as_ref()
        .and_then(|key| key.expires())
        .map(|at| logged_in_at + at.duration_since(SystemTime::now()).unwrap_or_default());
    let mut drain = conn.shared.drain.subscribe();
    let mut warned: HashMap<Limit<ChannelId>, Instant> = HashMap::new();
    loop {
        let drain_at = *drain.borrow_and_update();
        let now = Instant::now();
        let snapshot = conn.channels.snapshot();
        let reviewed = review(
            &limits,
            logged_in_at,
            drain_at,
            certificate_expires,
            &snapshot,
            now,
            &mut warned,
        );
        for action in reviewed.actions {
            match action {
                Action::Warn { channels, text } => {
                    for channel in channels {
                        conn.write_to_terminal(channel, &text).await;
                    }
                }
                Action::CloseChannel {
                    channel,
                    rule,
                    message,
                } => {
                    conn.events.emit_on(
                        Some(channel),
                        EventKind::LimitReached {
                            rule,
                            message: message.clone(),
                        },
                    );
                    conn.channels.close(channel);
                }
                Action::End { rule, message } => {
                    conn.end_by_limit(rule, message);
                    return;
                }
            }
        }
        let sleep = async {
            match reviewed.wake {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => {}
            () = conn.channels.changed.notified() => {}
            changed = drain.changed() => {
                if changed.is_err() {
                    // The server is gone; the connection's token ends this task.
                    std::future::pending::<()>().await;
                }
            }
            changed = revocations.changed(), if login.key.is_some() => {
                if changed.is_err() {
                    std::future::pending::<()>().await;
                }
                let list = revocations.borrow_and_update().clone();
                if let Some((revocation, message)) = revoked(&login, list).await {
                    tracing::debug!(?revocation, "the login's key is revoked");
                    // Told in the disconnect message (see `review`).
                    conn.end_by_limit(KEY_REVOKED, message.to_owned());
                    return;
                }
            }
        }
    }
}

/// What `list` revokes of the login's key, and what the user is told; None when nothing is,
/// or when the list cannot be read (that refuses new logins, and ends no running session).
async fn revoked(login: &Arc<Login>, list: RevocationList) -> Option<(Revocation, &'static str)> {
    let keys = list.keys?;
    let checked = Arc::clone(login);
    let verdict = tokio::task::spawn_blocking(move || match &checked.key {
        Some(key) => key.revocation(&keys),
        None => Ok(None),
    })
    .await;
    match verdict {
        Ok(Ok(Some(revocation))) => {
            let message = login.key.as_ref()?.revoked_message(revocation);
            Some((revocation, message))
        }
        Ok(Ok(None)) | Err(_) => None,
        Ok(Err(e)) => {
            tracing::debug!(
                error = &e as &dyn std::error::Error,
                "the revoked keys cannot be read; the session goes on"
            );
            None
        }
    }
}
