//! X11 forwarding requests (`x11-req`): checked against the policy and the login's key, then
//! given a display listening inside the container for as long as the session lasts, or, for a
//! backend that passes X11 forwarding on, sent on with the session's start.

use std::sync::Arc;

use russh::server::Session;
use russh::ChannelId;
use sshpod_core::{Backend, BackendError, Container, Listener, X11Forwarding, X11Request};
use tokio_util::sync::DropGuard;

use super::remote::Failed;
use super::ConnectionHandler;
use crate::server::channel::remote_forward::ForwardTarget;
use crate::server::channel::security::Refused;
use crate::server::channel::x11::{self, X11Auth, X11Setup, X11_BASE_PORT};

/// A session's X11 forwarding.
pub(super) enum SessionX11 {
    /// A display inside the container; dropping it stops the display's listener.
    Display {
        /// The display and the client's cookie, for the session's start.
        setup: X11Setup,
        _listening: DropGuard,
    },
    /// The request, for the backend to pass on with the session's start.
    PassedOn(X11Request),
}

impl SessionX11 {
    /// The display made inside the container, if sshpod made one.
    pub(super) fn display(&self) -> Option<&X11Setup> {
        match self {
            SessionX11::Display { setup, .. } => Some(setup),
            SessionX11::PassedOn(_) => None,
        }
    }
}

/// What the container answered a connection's X11 request with.
enum Listening {
    /// A display of the session's own.
    Display(Box<dyn Listener>),
    /// The backend's listener for the X11 connections of every session it passes X11 on for.
    PassedOn(Box<dyn Listener>),
}

impl<B: Backend> ConnectionHandler<B> {
    /// Forwards X11 for the session `channel`. Whether it is forwarded.
    pub(super) async fn forward_x11(
        &mut self,
        channel: ChannelId,
        single_connection: bool,
        request: (&str, &str, u32),
        session: &mut Session,
    ) -> bool {
        if !self.authenticated() {
            return false;
        }
        if let Err(refused) = self.security.x11_forwarding() {
            self.refused_by_policy(channel, refused);
            return false;
        }
        if !self.restrictions.x11_forwarding {
            self.refused_by_policy(
                channel,
                Refused {
                    rule: "no-X11-forwarding",
                    message: "the login's key or certificate does not permit X11 forwarding"
                        .to_owned(),
                },
            );
            return false;
        }
        let (protocol, cookie, screen) = request;
        let auth = match X11Auth::parse(protocol, cookie, screen) {
            Ok(auth) => auth,
            Err(message) => {
                self.refused_by_policy(
                    channel,
                    Refused {
                        rule: "x11-req",
                        message: message.to_owned(),
                    },
                );
                return false;
            }
        };
        // Once per session, and only before its program starts: its environment is still open.
        if self
            .sessions
            .get(&channel)
            .is_none_or(|s| s.writer.is_none() || s.x11.is_some())
        {
            return false;
        }
        // Checked, and as the client sent it: the client checks its cookie on every connection.
        let passed_on = X11Request {
            protocol: auth.protocol.clone(),
            cookie: cookie.to_owned(),
            screen,
            single_connection,
        };
        let granted = if self.x11_passed_on {
            SessionX11::PassedOn(passed_on)
        } else {
            match self.listen_x11().await {
                None => return false,
                Some(Listening::PassedOn(listener)) => {
                    // One listener for the connection's sessions: the server that makes their
                    // displays does not say which session a connection is for, and stops
                    // listening on each display itself.
                    let stop = self.conn.token.child_token();
                    self.serve_listener(ForwardTarget::X11PassedOn, listener, session, stop);
                    self.x11_passed_on = true;
                    SessionX11::PassedOn(passed_on)
                }
                Some(Listening::Display(listener)) => {
                    let Some(display) = listener.port().checked_sub(X11_BASE_PORT) else {
                        return false;
                    };
                    let stop = self.conn.token.child_token();
                    let target = ForwardTarget::X11 {
                        display,
                        once: single_connection,
                    };
                    self.serve_listener(target, listener, session, stop.clone());
                    SessionX11::Display {
                        setup: X11Setup { display, auth },
                        _listening: stop.drop_guard(),
                    }
                }
            }
        };
        match self.sessions.get_mut(&channel) {
            Some(state) => {
                state.x11 = Some(granted);
                true
            }
            // The session closed while the display was being made: it goes with `granted`.
            None => false,
        }
    }

    /// Asks the container how it forwards X11 and, where sshpod makes the displays, listens
    /// on the first free one.
    async fn listen_x11(&self) -> Option<Listening> {
        let held: Vec<u16> = self
            .sessions
            .values()
            .filter_map(|s| s.x11.as_ref().and_then(SessionX11::display))
            .map(|setup| setup.display)
            .collect();
        let conn = Arc::clone(&self.conn);
        let listening = async move {
            let container = conn.container().await?;
            if let X11Forwarding::PassedOn(listener) = container.forward_x11().await? {
                return Ok(Listening::PassedOn(listener));
            }
            let mut last = None;
            for display in x11::candidate_displays(&held) {
                match container.listen("127.0.0.1", X11_BASE_PORT + display).await {
                    Ok(listener) => return Ok(Listening::Display(listener)),
                    // Taken (by another connection's session, in a shared container): the next.
                    Err(error @ BackendError::Listen { .. }) => last = Some(error),
                    Err(error) => return Err(error.into()),
                }
            }
            Err(Failed::from(last.unwrap_or_else(|| {
                BackendError::Refused {
                    what: "finding a free X11 display",
                    source: "no display to try".into(),
                }
            })))
        };
        self.listening(
            "an X11 display",
            X11_BASE_PORT + x11::FIRST_DISPLAY,
            listening,
        )
        .await
    }
}
