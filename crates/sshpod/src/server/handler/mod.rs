//! The russh handler: turns SSH requests into work on the connection's container.
//!
//! Callbacks run on the connection's loop, so they never wait on the container: anything
//! slow (starting a process, dialling, resizing, signalling) runs as a task on the
//! connection's tracker, and client data is moved into per-channel queues at once.

mod remote;
mod requests;
mod x11;

use std::collections::HashMap;
use std::sync::Arc;

use russh::keys::ssh_key::Certificate;
use russh::server::{
    Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Response, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelId, ChannelWriteHalf, Pty, Sig};
use sshpod_auth::Restrictions;
use sshpod_core::{
    Backend, ChannelKind, ChannelRefusal, Command, EventKind, RequestRefusal, TapRecord,
    TerminalSize, TtySpec,
};
use tracing::Instrument;

use crate::server::auth::{self, Decided};
use crate::server::channel::env::{self, SessionEnv};
use crate::server::channel::remote_forward::{ForwardTarget, RemoteForwards};
use crate::server::channel::security::socket_path as socket_path_ok;
use crate::server::channel::security::SecurityPolicy;
use crate::server::channel::session::ControlSlot;
use crate::server::channel::{direct_tcpip, pty};
use crate::server::connection::ConnectionState;
use crate::server::events::{tap, Taps};
use crate::server::io::input::{self, InputReceiver, InputSender};
use crate::server::limits::{Activity, ChannelLimits};

/// Why a connection's handler gave up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandlerError {
    #[error(transparent)]
    Ssh(#[from] russh::Error),
}

/// A session channel before and after its process starts.
struct SessionChannel {
    writer: Option<ChannelWriteHalf<Msg>>,
    input: Option<InputSender>,
    pending_input: Option<InputReceiver>,
    tty: Option<TtySpec>,
    env: SessionEnv,
    control: ControlSlot,
    /// The subscribers' taps, if any wants this channel's bytes.
    taps: Option<Taps>,
    /// Its activity clock and closer, for the idle and session limits.
    limits: ChannelLimits,
    /// Whether the client forwarded its agent to this session (`SSH_AUTH_SOCK` is set).
    agent: bool,
    /// The session's X11 forwarding, if the client forwards X11 to it (`DISPLAY` is set).
    x11: Option<x11::SessionX11>,
}

/// A forwarding channel: its input queue (its taps are its relay's) and activity clock.
struct ForwardChannel {
    input: InputSender,
    activity: Arc<Activity>,
}

/// Per-connection handler state.
///
/// russh keeps the handler inline in its connection task, in more than one copy (the
/// task's start state and its running state, each twice over): large fields are boxed.
pub(crate) struct ConnectionHandler<B: Backend> {
    conn: Arc<ConnectionState<B>>,
    sessions: HashMap<ChannelId, SessionChannel>,
    /// Forwarding channels.
    forwards: HashMap<ChannelId, ForwardChannel>,
    /// What the login may do (key options, certificate options); nothing restricted until a
    /// key or certificate says otherwise.
    restrictions: Box<Restrictions>,
    /// What the login's configuration (`security`) allows its sessions.
    security: Box<SecurityPolicy>,
    /// The client's remote forwards (`ssh -R`); they stop when this is dropped.
    remote_forwards: RemoteForwards,
    /// The forwarded agent's socket inside the container, once a session asked for it.
    agent_socket: Option<String>,
    /// Whether the backend passes X11 forwarding on, and its listener for the X11 connections
    /// runs (from the connection's first `x11-req` the backend passed on).
    x11_passed_on: bool,
}

impl<B: Backend> ConnectionHandler<B> {
    pub(crate) fn new(conn: Arc<ConnectionState<B>>) -> Self {
        Self {
            conn,
            sessions: HashMap::new(),
            forwards: HashMap::new(),
            restrictions: Box::default(),
            security: Box::default(),
            remote_forwards: RemoteForwards::default(),
            agent_socket: None,
            x11_passed_on: false,
        }
    }

    /// Forgets channels whose work has ended.
    fn forget_finished(&mut self) {
        for channel in self.conn.take_finished_channels() {
            self.sessions.remove(&channel);
            self.forwards.remove(&channel);
        }
    }

    fn authenticated(&self) -> bool {
        self.conn.is_logged_in()
    }

    /// Refuses a client's forwarding channel (`ssh -L`, a socket) and says why.
    async fn refuse_forward(
        &self,
        channel: ChannelId,
        kind: ChannelKind,
        reason: ChannelRefusal,
        reply: ChannelOpenHandle,
    ) {
        self.conn
            .events
            .emit_on(Some(channel), EventKind::ChannelRefused { kind, reason });
        reply
            .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
            .await;
    }

    /// Takes on a client's forwarding channel that passed every check: it is announced and
    /// tapped, its input queued under the connection's budget and its limits started. Returns
    /// what the relay needs.
    fn open_forward(
        &mut self,
        channel: Channel<Msg>,
        kind: ChannelKind,
        name: &'static str,
    ) -> (
        ChannelWriteHalf<Msg>,
        InputReceiver,
        Option<Taps>,
        ChannelLimits,
    ) {
        self.forget_finished();
        let id = channel.id();
        let taps = self.conn.events.taps(id, &kind);
        self.conn
            .events
            .emit_on(Some(id), EventKind::ChannelOpened { kind });
        let (_, writer) = channel.split();
        let (sender, receiver) = input::queue(&self.conn.gate);
        let limits = self.conn.channels.opened(id, name, &self.conn.token);
        self.forwards.insert(
            id,
            ForwardChannel {
                input: sender,
                activity: Arc::clone(&limits.activity),
            },
        );
        (writer, receiver, taps, limits)
    }

    /// Takes an authentication answer; an accepted login keeps its key's restrictions.
    fn decided(&mut self, decided: Decided) -> Auth {
        if matches!(decided.auth, Auth::Accept) {
            *self.restrictions = decided.restrictions.unwrap_or_default();
            if let Some(login) = self.conn.login() {
                *self.security = login.security.clone();
            }
        }
        decided.auth
    }
}

// The callbacks that wait (authentication, and forwards that wait for the container to
// listen) box their work: the SSH library keeps the connection's loop, with room for its
// largest callback inline, for the connection's whole life, and a login's webhook calls or a
// forward's engine requests would otherwise size every idle connection.
impl<B: Backend> russh::server::Handler for ConnectionHandler<B> {
    type Error = HandlerError;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        // Answer "this key would do" only for keys that would; the signature comes next.
        let would = Box::pin(
            auth::public_key_offered(&self.conn, user, offer.public_key)
                .instrument(self.conn.span.clone()),
        )
        .await;
        Ok(if would { Auth::Accept } else { Auth::reject() })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let decided = Box::pin(
            auth::public_key(&self.conn, user, key.public_key).instrument(self.conn.span.clone()),
        )
        .await;
        Ok(self.decided(decided))
    }

    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        certificate: &Certificate,
    ) -> Result<Auth, Self::Error> {
        let decided = Box::pin(
            auth::certificate(&self.conn, user, certificate).instrument(self.conn.span.clone()),
        )
        .await;
        Ok(self.decided(decided))
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        let auth =
            Box::pin(auth::password(&self.conn, user, password).instrument(self.conn.span.clone()))
                .await;
        Ok(self.decided(auth.into()))
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        let answers = response.map(|r| {
            r.map(|b| String::from_utf8_lossy(&b).into_owned())
                .collect::<Vec<_>>()
        });
        let auth = Box::pin(
            auth::keyboard_interactive(&self.conn, user, answers)
                .instrument(self.conn.span.clone()),
        )
        .await;
        Ok(self.decided(auth.into()))
    }

    async fn authentication_banner(&mut self) -> Result<Option<String>, Self::Error> {
        // Asked once, when the client requests the login service: the key exchange is done.
        self.conn.on_login_request();
        let banner = &self.conn.shared.config.ssh.banner;
        Ok((!banner.is_empty()).then(|| banner.clone()))
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if !self.authenticated() {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        self.forget_finished();
        // Both caps apply: the server's (ssh.maxSessions) and the login's policy's.
        let server_cap = self.conn.shared.config.ssh.max_sessions;
        let refusal = if self.sessions.len() >= server_cap as usize {
            Some(ChannelRefusal::MaxSessions(server_cap))
        } else {
            self.security
                .max_sessions()
                .filter(|cap| self.sessions.len() >= *cap as usize)
                .map(|_| ChannelRefusal::Policy("security.maxSessions"))
        };
        if let Some(reason) = refusal {
            self.conn.events.emit_on(
                Some(channel.id()),
                EventKind::ChannelRefused {
                    kind: ChannelKind::Session,
                    reason,
                },
            );
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        let id = channel.id();
        // The read half is dropped: russh then never queues data for it (see `input`).
        let (_, writer) = channel.split();
        let (sender, receiver) = input::queue(&self.conn.gate);
        let kind = ChannelKind::Session;
        let taps = self.conn.events.taps(id, &kind);
        self.conn
            .events
            .emit_on(Some(id), EventKind::ChannelOpened { kind });
        let limits = self.conn.channels.opened(id, "session", &self.conn.token);
        self.sessions.insert(
            id,
            SessionChannel {
                writer: Some(writer),
                input: Some(sender),
                pending_input: Some(receiver),
                tty: None,
                env: SessionEnv::default(),
                control: ControlSlot::default(),
                taps,
                limits,
                agent: false,
                x11: None,
            },
        );
        reply.accept().await;
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Ok(port) = u16::try_from(port_to_connect) else {
            reply.reject(russh::ChannelOpenFailure::ConnectFailed).await;
            return Ok(());
        };
        if !self.authenticated() {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        let kind = ChannelKind::DirectTcpip {
            host: host_to_connect.to_owned(),
            port,
        };
        let refusal = match self.security.forwarding() {
            Err(refused) => Some(ChannelRefusal::Policy(refused.rule)),
            Ok(()) if !self.restrictions.may_open(host_to_connect, port) => {
                Some(ChannelRefusal::NotPermitted)
            }
            Ok(()) => None,
        };
        if let Some(reason) = refusal {
            self.refuse_forward(channel.id(), kind, reason, reply).await;
            return Ok(());
        }
        let (writer, receiver, taps, limits) = self.open_forward(channel, kind, "direct-tcpip");
        self.conn.spawn(direct_tcpip::run(
            Arc::clone(&self.conn),
            reply,
            writer,
            receiver,
            taps,
            limits,
            (host_to_connect.to_owned(), port),
        ));
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(Box::pin(self.remote_forward(address, port, session)).await)
    }

    async fn cancel_tcpip_forward(
        &mut self,
        address: &str,
        port: u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(self.authenticated() && self.remote_forwards.cancel_tcp(address, port))
    }

    async fn streamlocal_forward(
        &mut self,
        socket_path: &str,
        session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(Box::pin(self.remote_socket_forward(socket_path, session)).await)
    }

    async fn cancel_streamlocal_forward(
        &mut self,
        socket_path: &str,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        let target = ForwardTarget::Unix {
            path: socket_path.to_owned(),
        };
        Ok(self.authenticated() && self.remote_forwards.cancel(&target))
    }

    async fn channel_open_direct_streamlocal(
        &mut self,
        channel: Channel<Msg>,
        socket_path: &str,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if !self.authenticated() {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        let kind = ChannelKind::DirectStreamlocal {
            path: socket_path.to_owned(),
        };
        let refusal = match self
            .security
            .socket_forwarding()
            .and(socket_path_ok(socket_path))
        {
            Err(refused) => Some(ChannelRefusal::Policy(refused.rule)),
            Ok(()) if !self.restrictions.port_forwarding => Some(ChannelRefusal::NotPermitted),
            Ok(()) => None,
        };
        if let Some(reason) = refusal {
            self.refuse_forward(channel.id(), kind, reason, reply).await;
            return Ok(());
        }
        let (writer, receiver, taps, limits) =
            self.open_forward(channel, kind, "direct-streamlocal");
        self.conn.spawn(direct_tcpip::run_unix(
            Arc::clone(&self.conn),
            reply,
            writer,
            receiver,
            taps,
            limits,
            socket_path.to_owned(),
        ));
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.push_input(channel, data);
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Dropping the sender is EOF for the pump, which passes it on to the process.
        if let Some(s) = self.sessions.get_mut(&channel) {
            s.input = None;
        }
        self.forwards.remove(&channel);
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.sessions.remove(&channel);
        self.forwards.remove(&channel);
        self.conn.channels.closed(channel);
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        modes: &[(Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if !self.restrictions.pty {
            self.refused(channel, RequestRefusal::PtyNotPermitted);
            session.channel_failure(channel)?;
            return Ok(());
        }
        if let Err(refused) = self.security.tty() {
            self.refuse_with_message(channel, refused, session);
            return Ok(());
        }
        match self.sessions.get_mut(&channel) {
            Some(s) if s.writer.is_some() => {
                let size = terminal_size(col_width, row_height);
                s.tty = Some(TtySpec {
                    term: term.to_owned(),
                    size,
                    stty_modes: pty::stty_args(modes),
                });
                session.channel_success(channel)?;
                self.conn.events.emit_on(
                    Some(channel),
                    EventKind::PtyGranted {
                        term: term.to_owned(),
                        size,
                    },
                );
            }
            _ => session.channel_failure(channel)?,
        }
        Ok(())
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        single_connection: bool,
        x11_auth_protocol: &str,
        x11_auth_cookie: &str,
        x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let request = (x11_auth_protocol, x11_auth_cookie, x11_screen_number);
        // The answer must be sent: russh's default leaves the request unanswered.
        let forwarded = Box::pin(self.forward_x11(channel, single_connection, request, session));
        if forwarded.await {
            session.channel_success(channel)?;
        } else {
            session.channel_failure(channel)?;
        }
        Ok(())
    }

    async fn agent_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(Box::pin(self.forward_agent(channel, session)).await)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        variable_name: &str,
        variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Err(refused) = self.security.env(variable_name) {
            // Clients do not show an answer to an environment request: the log says why.
            session.channel_failure(channel)?;
            self.refused_by_policy(channel, refused);
            return Ok(());
        }
        let accept = &self.conn.shared.config.ssh.accept_env;
        let taken = match self.sessions.get_mut(&channel) {
            Some(s) if s.writer.is_some() => s.env.offer(accept, variable_name, variable_value),
            _ => {
                session.channel_failure(channel)?;
                return Ok(());
            }
        };
        match taken {
            Ok(()) => {
                session.channel_success(channel)?;
                self.conn.events.emit_on(
                    Some(channel),
                    EventKind::EnvAccepted {
                        name: variable_name.to_owned(),
                        value: variable_value.to_owned(),
                    },
                );
            }
            Err(refused) => {
                let name = variable_name.to_owned();
                self.refused(
                    channel,
                    match refused {
                        env::Refused::TooMany => RequestRefusal::EnvTooMany(name),
                        env::Refused::NotAccepted | env::Refused::BadName => {
                            RequestRefusal::EnvNotAccepted(name)
                        }
                    },
                );
                session.channel_failure(channel)?;
            }
        }
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(channel, Command::Shell, session);
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let line = String::from_utf8_lossy(data).into_owned();
        self.start(channel, Command::Exec(line), session);
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(channel, Command::Subsystem(name.to_owned()), session);
        Ok(())
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(state) = self.sessions.get(&channel) {
            let size = terminal_size(col_width, row_height);
            tap(state.taps.as_ref(), TapRecord::Resize(size));
            if let Some(controls) = state.control.get() {
                controls.resize(size);
            }
        }
        Ok(())
    }

    async fn signal(
        &mut self,
        channel: ChannelId,
        signal: Sig,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(signal) = sshpod_russh::signals::from_sig(&signal) else {
            self.refused(
                channel,
                RequestRefusal::UnknownSignal(format!("{signal:?}")),
            );
            return Ok(());
        };
        if let Err(refused) = self.security.signal(signal) {
            // A signal request has no answer; the log says why it was dropped.
            self.refused_by_policy(channel, refused);
            return Ok(());
        }
        if let Some(state) = self.sessions.get(&channel) {
            tap(state.taps.as_ref(), TapRecord::Signal(signal));
            if let Some(controls) = state.control.get() {
                controls.signal(signal);
            }
        }
        Ok(())
    }
}

fn terminal_size(cols: u32, rows: u32) -> TerminalSize {
    TerminalSize {
        cols: u16::try_from(cols).unwrap_or(u16::MAX),
        rows: u16::try_from(rows).unwrap_or(u16::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_sizes_are_clamped() {
        assert_eq!(
            terminal_size(100_000, 50),
            TerminalSize {
                cols: u16::MAX,
                rows: 50
            }
        );
    }
}
