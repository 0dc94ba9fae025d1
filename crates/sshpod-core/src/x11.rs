//! X11 forwarding (`ssh -X`, `ssh -Y`) in the backend contract: how a container's sessions get
//! their displays. Most backends leave it to the server, which makes a display inside the
//! container ([`X11Forwarding::Display`]); a backend whose sessions run on another SSH server
//! passes each session's request on to it instead ([`X11Forwarding::PassedOn`]).

use std::fmt;

use crate::Listener;

/// A session's `x11-req`, checked by the server, for a backend that passes it on.
#[derive(Clone, PartialEq, Eq)]
pub struct X11Request {
    /// The authorization protocol's name (`MIT-MAGIC-COOKIE-1`).
    pub protocol: String,
    /// The cookie in hex, exactly as the client sent it: the client checks it on every X11
    /// connection, so it must come back unchanged.
    pub cookie: String,
    /// The screen number.
    pub screen: u32,
    /// Whether the display takes one connection only.
    pub single_connection: bool,
}

impl fmt::Debug for X11Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X11Request")
            .field("protocol", &self.protocol)
            .field("cookie", &"<secret>")
            .field("screen", &self.screen)
            .field("single_connection", &self.single_connection)
            .finish()
    }
}

/// How a container's sessions get X11 forwarding.
pub enum X11Forwarding {
    /// The server makes each session a display inside the container, as sshd does: it listens
    /// on `127.0.0.1:6000+N` with [`Container::listen`](crate::Container::listen), sets
    /// `DISPLAY` and writes the client's cookie into the user's Xauthority file.
    Display,
    /// The backend passes each session's request on ([`ProcessSpec::x11`](crate::ProcessSpec))
    /// to a server that makes the display, sets `DISPLAY` and writes the cookie itself. The X11
    /// connections that server reports, for any of the connection's sessions, come from this
    /// listener; the server passes each to the client as an `x11` channel.
    PassedOn(Box<dyn Listener>),
}

impl fmt::Debug for X11Forwarding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            X11Forwarding::Display => f.write_str("Display"),
            X11Forwarding::PassedOn(_) => f.write_str("PassedOn"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_stays_out_of_debug_output() {
        let request = X11Request {
            protocol: "MIT-MAGIC-COOKIE-1".to_owned(),
            cookie: "5ec7e7c0ffee".to_owned(),
            screen: 0,
            single_connection: false,
        };
        let shown = format!("{request:?}");
        assert!(shown.contains("MIT-MAGIC-COOKIE-1"), "{shown}");
        assert!(!shown.contains("5ec7e7c0ffee"), "{shown}");
    }
}
