//! ContainerSSH's audit log version 2, written one happening of a connection at a time: the
//! messages each happening maps to, with the request ids and channel states ContainerSSH
//! keeps. [`BinaryWriter`](super::BinaryWriter) drives it from a live connection's items, the
//! export ([`from_sshpod`](fn@super::from_sshpod)) from a recording's event log, so both write the same
//! messages for the same connection.
//!
//! Every message is followed by a gzip sync flush: a file cut short by a crash reads up to its
//! last message. As ContainerSSH does, the gzip stream is never given its trailer: ContainerSSH's
//! decoder reports an error after the last message of a stream that has one.

use std::collections::BTreeMap;
use std::io::{self, Write};

use ciborium::Value;
use flate2::write::DeflateEncoder;
use flate2::Compression;
use sshpod_core::{AuthMethod, ChannelKind, Command, TerminalSize};

use super::header;
use super::message::{text, type_id, Message};

/// A gzip member header as Go writes it: deflate, no name, no time, unknown OS.
pub(super) const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff];

/// What ContainerSSH writes for a country it could not look up.
const UNKNOWN_COUNTRY: &str = "XX";

/// What a login attempt presented, as the log may keep it: the password only when it was
/// intercepted (empty otherwise), the key as its fingerprint (ContainerSSH writes the key in
/// `authorized_keys` form; sshpod keeps only the fingerprint).
#[derive(Debug, Default)]
pub(super) struct Presented {
    /// The password, or nothing.
    pub(super) password: Vec<u8>,
    /// The key's SHA-256 fingerprint, or nothing.
    pub(super) key: String,
}

/// How a login attempt ended.
#[derive(Debug, Clone, Copy)]
pub(super) enum Outcome<'a> {
    /// Accepted, as this user.
    Accepted {
        /// The name the login was accepted as.
        authenticated: &'a str,
    },
    /// Refused.
    Refused,
    /// Could not be checked.
    Unavailable {
        /// Why.
        reason: &'a str,
    },
}

/// How a process ended, as the log says it.
#[derive(Debug, Clone, Copy)]
pub(super) enum Exit<'a> {
    /// With this exit code.
    Code(u32),
    /// Killed by the signal of this name (`TERM`).
    Signal(&'a str),
}

/// Writes a connection's messages, each flushed through to the output.
#[derive(Debug)]
pub(super) struct LogWriter<W: Write> {
    out: DeflateEncoder<W>,
    connection_id: String,
    channels: BTreeMap<u32, Channel>,
    disconnected: bool,
    /// A message's CBOR, reused.
    scratch: Vec<u8>,
}

/// What the writer keeps of a channel.
#[derive(Debug, Default)]
struct Channel {
    /// A `direct-tcpip` channel.
    forward: bool,
    /// The next request id.
    next_request: u64,
    /// The request id of the process's start.
    run_request: Option<u64>,
    /// A `pty` message was written.
    pty: bool,
    /// A `close` message was written.
    closed: bool,
}

impl Channel {
    fn request_id(&mut self) -> u64 {
        let id = self.next_request;
        self.next_request += 1;
        id
    }
}

impl<W: Write> LogWriter<W> {
    /// Starts the log of `connection_id`: writes the header and the gzip stream's start.
    pub(super) fn new(mut out: W, connection_id: &str) -> io::Result<Self> {
        out.write_all(&header::header(header::WRITTEN_VERSION))?;
        out.write_all(&GZIP_HEADER)?;
        out.flush()?;
        Ok(Self {
            out: DeflateEncoder::new(out, Compression::default()),
            connection_id: connection_id.to_owned(),
            channels: BTreeMap::new(),
            disconnected: false,
            scratch: Vec::new(),
        })
    }

    /// The output written so far (everything up to the last message, once flushed).
    pub(super) fn get_ref(&self) -> &W {
        self.out.get_ref()
    }

    /// Ends the compressed stream (without a trailer, as ContainerSSH does) and returns the
    /// output.
    pub(super) fn finish(self) -> io::Result<W> {
        let mut out = self.out.finish()?;
        out.flush()?;
        Ok(out)
    }

    /// Whether the `disconnect` message was written: nothing is written after it.
    pub(super) fn disconnected(&self) -> bool {
        self.disconnected
    }

    /// Whether `id` is a `direct-tcpip` channel.
    pub(super) fn is_forward(&self, id: u32) -> bool {
        self.channels.get(&id).is_some_and(|c| c.forward)
    }

    /// Says whether `id` is a `direct-tcpip` channel, before it is opened.
    pub(super) fn set_forward(&mut self, id: u32, forward: bool) {
        self.channel(id).forward = forward;
    }

    /// `connect`, from the client's address without its port (`country` is `XX`: sshpod does
    /// no GeoIP lookup).
    pub(super) fn connected(&mut self, at: i64, remote_ip: &str) -> io::Result<()> {
        let payload = map([
            ("remoteAddr", text(remote_ip)),
            ("country", text(UNKNOWN_COUNTRY)),
        ]);
        self.emit(at, type_id::CONNECT, None, payload)
    }

    /// An authentication attempt and its outcome, as ContainerSSH logs them; an accepted login
    /// is followed by handshake successful.
    pub(super) fn login(
        &mut self,
        at: i64,
        user: &str,
        method: AuthMethod,
        presented: &Presented,
        outcome: Outcome<'_>,
    ) -> io::Result<()> {
        let username = ("username", text(user));
        match method {
            AuthMethod::Password => {
                let credential = ("password", Value::Bytes(presented.password.clone()));
                let attempt = map([username.clone(), credential.clone()]);
                self.emit(at, type_id::AUTH_PASSWORD, None, attempt)?;
                let (type_id, payload) = match outcome {
                    Outcome::Accepted { .. } => (
                        type_id::AUTH_PASSWORD_SUCCESSFUL,
                        map([username, credential]),
                    ),
                    Outcome::Refused => {
                        (type_id::AUTH_PASSWORD_FAILED, map([username, credential]))
                    }
                    Outcome::Unavailable { reason } => (
                        type_id::AUTH_PASSWORD_BACKEND_ERROR,
                        map([username, credential, ("reason", text(reason))]),
                    ),
                };
                self.emit(at, type_id, None, payload)?;
            }
            AuthMethod::PublicKey | AuthMethod::Certificate => {
                let credential = ("key", text(&presented.key));
                let attempt = map([username.clone(), credential.clone()]);
                self.emit(at, type_id::AUTH_PUBKEY, None, attempt)?;
                let (type_id, payload) = match outcome {
                    Outcome::Accepted { .. } => {
                        (type_id::AUTH_PUBKEY_SUCCESSFUL, map([username, credential]))
                    }
                    Outcome::Refused => (type_id::AUTH_PUBKEY_FAILED, map([username, credential])),
                    Outcome::Unavailable { reason } => (
                        type_id::AUTH_PUBKEY_BACKEND_ERROR,
                        map([username, credential, ("reason", text(reason))]),
                    ),
                };
                self.emit(at, type_id, None, payload)?;
            }
            // ContainerSSH logs no keyboard-interactive success of its own: the handshake
            // message that follows says it.
            AuthMethod::KeyboardInteractive => match outcome {
                Outcome::Accepted { .. } => {}
                // ContainerSSH's payload has no JSON name here, so its key is the Go field's.
                Outcome::Refused => {
                    let payload = map([("Username", text(user))]);
                    self.emit(at, type_id::AUTH_KEYBOARD_INTERACTIVE_FAILED, None, payload)?;
                }
                Outcome::Unavailable { reason } => {
                    let payload = map([username, ("reason", text(reason))]);
                    self.emit(
                        at,
                        type_id::AUTH_KEYBOARD_INTERACTIVE_BACKEND_ERROR,
                        None,
                        payload,
                    )?;
                }
            },
        }
        match outcome {
            Outcome::Accepted { authenticated } => {
                let username = map([("username", text(authenticated))]);
                self.emit(at, type_id::HANDSHAKE_SUCCESSFUL, None, username)
            }
            Outcome::Refused | Outcome::Unavailable { .. } => Ok(()),
        }
    }

    /// Handshake failed: the handshake took too long.
    pub(super) fn handshake_timed_out(&mut self, at: i64) -> io::Result<()> {
        self.handshake_failed(at, "handshake timed out")
    }

    /// Handshake failed: no login within the grace time.
    pub(super) fn login_grace_over(&mut self, at: i64) -> io::Result<()> {
        self.handshake_failed(at, "login grace time over")
    }

    fn handshake_failed(&mut self, at: i64, reason: &str) -> io::Result<()> {
        let payload = map([("reason", text(reason))]);
        self.emit(at, type_id::HANDSHAKE_FAILED, None, payload)
    }

    /// New channel successful; a `direct-tcpip` channel is preceded by its target (the
    /// originator is not known).
    pub(super) fn channel_opened(
        &mut self,
        at: i64,
        id: u32,
        kind: &ChannelKind,
    ) -> io::Result<()> {
        self.set_forward(
            id,
            matches!(
                kind,
                ChannelKind::DirectTcpip { .. }
                    | ChannelKind::ForwardedTcpip { .. }
                    | ChannelKind::DirectStreamlocal { .. }
                    | ChannelKind::ForwardedStreamlocal { .. }
                    | ChannelKind::AuthAgent
                    | ChannelKind::X11 { .. }
            ),
        );
        if let ChannelKind::DirectTcpip { host, port } = kind {
            let target = map([
                ("HostToConnect", text(host)),
                ("PortToConnect", Value::Integer(u32::from(*port).into())),
                ("OriginatorHost", text("")),
                ("OriginatorPort", Value::Integer(0.into())),
            ]);
            self.emit(at, type_id::NEW_FORWARD_CHANNEL, Some(id), target)?;
        }
        let kind = map([("channelType", text(channel_type(kind)))]);
        self.emit(at, type_id::NEW_CHANNEL_SUCCESSFUL, Some(id), kind)
    }

    /// New channel failed.
    pub(super) fn channel_refused(
        &mut self,
        at: i64,
        id: Option<u32>,
        kind: &ChannelKind,
        reason: &str,
    ) -> io::Result<()> {
        let payload = map([
            ("channelType", text(channel_type(kind))),
            ("reason", text(reason)),
        ]);
        self.emit(at, type_id::NEW_CHANNEL_FAILED, id, payload)
    }

    /// Request failed, for a request of its own.
    pub(super) fn request_refused(&mut self, at: i64, id: u32, reason: &str) -> io::Result<()> {
        let request = self.channel(id).request_id();
        self.request_failed(at, id, request, reason)
    }

    /// A `pty` request; `size` `None` when it is not known.
    pub(super) fn pty(
        &mut self,
        at: i64,
        id: u32,
        term: &str,
        size: Option<TerminalSize>,
    ) -> io::Result<()> {
        let state = self.channel(id);
        state.pty = true;
        let request = state.request_id();
        let (cols, rows) = size.map_or((0, 0), |s| (s.cols, s.rows));
        let payload = map([
            ("requestId", Value::Integer(request.into())),
            ("term", text(term)),
            ("columns", Value::Integer(u32::from(cols).into())),
            ("rows", Value::Integer(u32::from(rows).into())),
            ("width", Value::Integer(0.into())),
            ("height", Value::Integer(0.into())),
            ("modelist", Value::Bytes(Vec::new())),
        ]);
        self.emit(at, type_id::CHANNEL_REQUEST_PTY, Some(id), payload)
    }

    /// A `setenv` request.
    pub(super) fn env(&mut self, at: i64, id: u32, name: &str, value: &str) -> io::Result<()> {
        let request = self.channel(id).request_id();
        let payload = map([
            ("requestId", Value::Integer(request.into())),
            ("name", text(name)),
            ("value", text(value)),
        ]);
        self.emit(at, type_id::CHANNEL_REQUEST_SET_ENV, Some(id), payload)
    }

    /// The `shell`, `exec` or `subsystem` request that starts a channel's process, preceded by
    /// a `pty` request on a terminal that none said.
    pub(super) fn process_starting(
        &mut self,
        at: i64,
        id: u32,
        command: &Command,
        tty: bool,
    ) -> io::Result<()> {
        if tty && !self.channel(id).pty {
            self.pty(at, id, "", None)?;
        }
        let state = self.channel(id);
        let request = state.request_id();
        state.run_request = Some(request);
        let request_id = ("requestId", Value::Integer(request.into()));
        let (type_id, payload) = match command {
            Command::Shell => (type_id::CHANNEL_REQUEST_SHELL, map([request_id])),
            Command::Exec(line) => (
                type_id::CHANNEL_REQUEST_EXEC,
                map([request_id, ("program", text(line))]),
            ),
            Command::Subsystem(name) => (
                type_id::CHANNEL_REQUEST_SUBSYSTEM,
                map([request_id, ("subsystem", text(name))]),
            ),
        };
        self.emit(at, type_id, Some(id), payload)
    }

    /// Request failed, for the request that started the process (or one of its own).
    pub(super) fn process_failed(&mut self, at: i64, id: u32, error: &str) -> io::Result<()> {
        let state = self.channel(id);
        let request = match state.run_request {
            Some(request) => request,
            None => state.request_id(),
        };
        self.request_failed(at, id, request, error)
    }

    fn request_failed(&mut self, at: i64, id: u32, request: u64, reason: &str) -> io::Result<()> {
        let payload = map([
            ("requestId", Value::Integer(request.into())),
            ("reason", text(reason)),
        ]);
        self.emit(at, type_id::REQUEST_FAILED, Some(id), payload)
    }

    /// `exit` or `exit_signal`, then `close` of the channel.
    pub(super) fn process_exited(&mut self, at: i64, id: u32, exit: Exit<'_>) -> io::Result<()> {
        match exit {
            Exit::Code(code) => {
                let payload = map([("exitStatus", Value::Integer(code.into()))]);
                self.emit(at, type_id::EXIT, Some(id), payload)?;
            }
            Exit::Signal(signal) => {
                let payload = map([
                    ("signal", text(signal)),
                    ("coreDumped", Value::Bool(false)),
                    ("errorMessage", text("")),
                    ("languageTag", text("")),
                ]);
                self.emit(at, type_id::EXIT_SIGNAL, Some(id), payload)?;
            }
        }
        self.close(at, id)
    }

    /// `io`: bytes of stream 0 (stdin), 1 (stdout) or 2 (stderr).
    pub(super) fn io(&mut self, at: i64, id: u32, stream: u8, data: &[u8]) -> io::Result<()> {
        let payload = map([
            ("stream", Value::Integer(stream.into())),
            ("data", Value::Bytes(data.to_vec())),
        ]);
        self.emit(at, type_id::IO, Some(id), payload)
    }

    /// A `window` request: the terminal's new size.
    pub(super) fn window(&mut self, at: i64, id: u32, size: TerminalSize) -> io::Result<()> {
        let request = self.channel(id).request_id();
        let payload = map([
            ("requestId", Value::Integer(request.into())),
            ("columns", Value::Integer(u32::from(size.cols).into())),
            ("rows", Value::Integer(u32::from(size.rows).into())),
            ("width", Value::Integer(0.into())),
            ("height", Value::Integer(0.into())),
        ]);
        self.emit(at, type_id::CHANNEL_REQUEST_WINDOW, Some(id), payload)
    }

    /// A `signal` request, by the signal's name (`INT`).
    pub(super) fn signal(&mut self, at: i64, id: u32, signal: &str) -> io::Result<()> {
        let request = self.channel(id).request_id();
        let payload = map([
            ("requestId", Value::Integer(request.into())),
            ("signal", text(signal)),
        ]);
        self.emit(at, type_id::CHANNEL_REQUEST_SIGNAL, Some(id), payload)
    }

    /// The connection ended: `close` of every channel still open, then `disconnect`; nothing
    /// is written after it.
    pub(super) fn closed(&mut self, at: i64) -> io::Result<()> {
        let open: Vec<u32> = self
            .channels
            .iter()
            .filter(|(_, c)| !c.closed)
            .map(|(id, _)| *id)
            .collect();
        for id in open {
            self.close(at, id)?;
        }
        self.emit(at, type_id::DISCONNECT, None, Value::Null)?;
        self.disconnected = true;
        Ok(())
    }

    fn close(&mut self, at: i64, id: u32) -> io::Result<()> {
        self.channel(id).closed = true;
        self.emit(at, type_id::CLOSE, Some(id), Value::Null)
    }

    fn channel(&mut self, id: u32) -> &mut Channel {
        self.channels.entry(id).or_default()
    }

    /// Writes one message and flushes it through to the output (nothing after the
    /// `disconnect`).
    fn emit(
        &mut self,
        at: i64,
        type_id: i32,
        channel: Option<u32>,
        payload: Value,
    ) -> io::Result<()> {
        if self.disconnected {
            return Ok(());
        }
        let message = Message {
            connection_id: self.connection_id.clone(),
            timestamp: at,
            type_id,
            channel_id: channel.map(u64::from),
            payload,
        };
        self.scratch.clear();
        ciborium::into_writer(&message.to_cbor(), &mut self.scratch)
            .map_err(|e| io::Error::other(format!("encoding an audit log message: {e}")))?;
        self.out.write_all(&self.scratch)?;
        self.out.flush()
    }
}

/// A payload map with `entries` in order.
fn map<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (text(k), v)).collect())
}

/// The SSH channel type.
fn channel_type(kind: &ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Session => "session",
        ChannelKind::DirectTcpip { .. } => "direct-tcpip",
        ChannelKind::ForwardedTcpip { .. } => "forwarded-tcpip",
        ChannelKind::DirectStreamlocal { .. } => "direct-streamlocal@openssh.com",
        ChannelKind::ForwardedStreamlocal { .. } => "forwarded-streamlocal@openssh.com",
        ChannelKind::AuthAgent => "auth-agent@openssh.com",
        ChannelKind::X11 { .. } => "x11",
    }
}
