//! The russh handler: turns SSH requests into work on the connection's container.
//!
//! Callbacks run on the connection's loop, so they never wait on the container: anything
//! slow (starting a process, dialling, resizing, signalling) runs as a task on the
//! connection's tracker, and client data is moved into per-channel queues at once.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use russh::keys::ssh_key::Certificate;
use russh::server::{
    Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Response, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelId, ChannelWriteHalf, Pty, Sig};
use sshpod_auth::{Grant, Restrictions};
use sshpod_core::{Backend, Command, ProcessSpec, TerminalSize, TtySpec};
use tracing::Instrument;

use crate::server::auth::{self as login, Step};
use crate::server::channel::env::{Refused, SessionEnv};
use crate::server::channel::session::{from_ssh_signal, ControlSlot, SessionTask};
use crate::server::channel::{direct_tcpip as forward, pty, restrict};
use crate::server::connection::ConnectionState;
use crate::server::io::input::{self, InputReceiver, InputSender};

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
}

/// Per-connection handler state.
pub(crate) struct ConnectionHandler<B: Backend> {
    conn: Arc<ConnectionState<B>>,
    sessions: HashMap<ChannelId, SessionChannel>,
    /// Input queues of forwarding channels.
    forwards: HashMap<ChannelId, InputSender>,
    /// What the login may do (key options, certificate options); nothing restricted until a
    /// key or certificate says otherwise.
    restrictions: Restrictions,
}

impl<B: Backend> ConnectionHandler<B> {
    pub(crate) fn new(conn: Arc<ConnectionState<B>>) -> Self {
        Self {
            conn,
            sessions: HashMap::new(),
            forwards: HashMap::new(),
            restrictions: Restrictions::default(),
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
        self.conn.user().is_some()
    }

    /// Starts the channel's process (shell, exec or subsystem) on a task.
    fn start(&mut self, channel: ChannelId, command: Command, session: &mut Session) {
        let Some(state) = self.sessions.get_mut(&channel) else {
            let _ = session.channel_failure(channel);
            return;
        };
        let (Some(writer), Some(input)) = (state.writer.take(), state.pending_input.take()) else {
            // A second shell/exec on the same channel.
            let _ = session.channel_failure(channel);
            return;
        };
        if let Command::Subsystem(name) = &command {
            if !self.conn.shared.subsystems.contains(name) {
                self.conn
                    .span
                    .in_scope(|| tracing::info!(subsystem = name, "unknown subsystem requested"));
                let _ = session.channel_failure(channel);
                return;
            }
        }
        let mut env =
            std::mem::take(&mut state.env).into_vars(self.restrictions.force_command.is_some());
        let command = restrict::command_for(
            &self.restrictions,
            command,
            &mut env,
            self.conn.shared.config.subsystems(),
        );
        self.conn
            .span
            .in_scope(|| tracing::debug!(?command, tty = state.tty.is_some(), "starting process"));
        let task = SessionTask {
            conn: Arc::clone(&self.conn),
            channel,
            writer,
            handle: session.handle(),
            spec: ProcessSpec {
                command,
                env,
                tty: state.tty.clone(),
            },
            input,
            control: Arc::clone(&state.control),
        };
        self.conn.spawn(task.run());
        let _ = session.channel_success(channel);
    }

    /// Records an authentication decision (logged before it takes effect) and acts on it;
    /// an accepted login still goes through the authorization webhook and the config server.
    async fn decide(&self, user: &str, method: &str, accepted: bool) -> Auth {
        let step = if accepted {
            Step::Accepted {
                username: user.to_owned(),
                metadata: Default::default(),
            }
        } else {
            Step::Rejected
        };
        login::finish(&self.conn, user, method, step).await
    }

    /// Accepts or refuses a key or certificate login; an accepted one brings its restrictions.
    async fn decide_key(&mut self, user: &str, method: &str, grant: Option<Grant>) -> Auth {
        let Some(grant) = grant else {
            return self.decide(user, method, false).await;
        };
        self.conn.span.in_scope(|| {
            if let Some(cert) = &grant.certificate {
                tracing::info!(
                    key_id = cert.key_id,
                    serial = cert.serial,
                    ca = %cert.ca_fingerprint,
                    via = %grant.via,
                    "certificate accepted"
                );
            }
            if !grant.restrictions.is_unrestricted() {
                tracing::info!(restrictions = %grant.restrictions, "login restricted");
            }
        });
        self.restrictions = grant.restrictions;
        self.decide(user, method, true).await
    }

    fn push_input(&self, channel: ChannelId, data: &[u8]) {
        let sender = self
            .sessions
            .get(&channel)
            .and_then(|s| s.input.as_ref())
            .or_else(|| self.forwards.get(&channel));
        if let Some(sender) = sender {
            sender.push(Bytes::copy_from_slice(data));
        }
    }
}

impl<B: Backend> russh::server::Handler for ConnectionHandler<B> {
    type Error = HandlerError;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        if self.conn.shared.webhooks.has_public_key() {
            // The webhook decides after the signature, when it can also be told whether the
            // key came in a certificate (an offer does not say).
            return Ok(Auth::Accept);
        }
        // Answer "this key would do" only for keys that would; the signature comes next.
        if self
            .conn
            .shared
            .auth
            .public_key_offered(user, offer.public_key, self.conn.peer.ip())
            .instrument(self.conn.span.clone())
            .await
        {
            Ok(Auth::Accept)
        } else {
            Ok(Auth::reject())
        }
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let grant = self
            .conn
            .shared
            .auth
            .public_key(user, key.public_key, self.conn.peer.ip())
            .instrument(self.conn.span.clone())
            .await;
        // Built-in keys first; a key they do not know goes to the webhook, if there is one.
        if grant.is_none() && self.conn.shared.webhooks.has_public_key() {
            let auth = &self.conn.shared.auth;
            if auth
                .is_revoked(key.public_key.key_data(), None)
                .instrument(self.conn.span.clone())
                .await
            {
                return Ok(self.decide(user, "publickey", false).await);
            }
            let step = login::public_key(&self.conn, user, key.public_key).await;
            return Ok(login::finish(&self.conn, user, "publickey", step).await);
        }
        Ok(self.decide_key(user, "publickey", grant).await)
    }

    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        certificate: &Certificate,
    ) -> Result<Auth, Self::Error> {
        let grant = self
            .conn
            .shared
            .auth
            .certificate(user, certificate, self.conn.peer.ip())
            .instrument(self.conn.span.clone())
            .await;
        // Trusted CAs first; a certificate they do not accept goes to the webhook, if any.
        if grant.is_none() && self.conn.shared.webhooks.has_public_key() {
            let auth = &self.conn.shared.auth;
            if auth
                .is_revoked(certificate.public_key(), Some(certificate))
                .instrument(self.conn.span.clone())
                .await
            {
                return Ok(self.decide(user, "certificate", false).await);
            }
            let step = login::certificate(&self.conn, user, certificate).await;
            return Ok(login::finish(&self.conn, user, "certificate", step).await);
        }
        Ok(self.decide_key(user, "certificate", grant).await)
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        let auth = if self.conn.shared.webhooks.has_password() {
            let step = login::password(&self.conn, user, password).await;
            login::finish(&self.conn, user, "password", step).await
        } else {
            let accepted = self.conn.shared.auth.password(user, password).await;
            self.decide(user, "password", accepted).await
        };
        // The library takes password off the methods after a refusal unless told otherwise;
        // a mistyped password may be typed again, up to ssh.maxAuthTries, as with OpenSSH.
        Ok(match auth {
            Auth::Reject {
                proceed_with_methods: None,
                partial_success,
            } => Auth::Reject {
                proceed_with_methods: Some(self.conn.shared.methods.clone()),
                partial_success,
            },
            other => other,
        })
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
        match login::keyboard_interactive(&self.conn, user, answers).await {
            Ok(prompts) => Ok(prompts),
            Err(step) => Ok(login::finish(&self.conn, user, "keyboard-interactive", step).await),
        }
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
        let max_sessions = self.conn.shared.config.ssh.max_sessions as usize;
        if self.sessions.len() >= max_sessions {
            self.conn.span.in_scope(|| {
                tracing::info!(max_sessions, "session refused: ssh.maxSessions are open")
            });
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        let id = channel.id();
        // The read half is dropped: russh then never queues data for it (see `input`).
        let (_, writer) = channel.split();
        let (sender, receiver) = input::queue(&self.conn.gate);
        self.sessions.insert(
            id,
            SessionChannel {
                writer: Some(writer),
                input: Some(sender),
                pending_input: Some(receiver),
                tty: None,
                env: SessionEnv::default(),
                control: ControlSlot::default(),
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
        if !self.restrictions.may_open(host_to_connect, port) {
            self.conn.span.in_scope(|| {
                tracing::info!(
                    host = host_to_connect,
                    port,
                    "forwarding refused: not permitted for this login"
                )
            });
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        self.conn
            .span
            .in_scope(|| tracing::debug!(host = host_to_connect, port, "forwarding requested"));
        self.forget_finished();
        let id = channel.id();
        let (_, writer) = channel.split();
        let (sender, receiver) = input::queue(&self.conn.gate);
        self.forwards.insert(id, sender);
        self.conn.spawn(forward::run(
            Arc::clone(&self.conn),
            reply,
            writer,
            receiver,
            host_to_connect.to_owned(),
            port,
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
            self.conn
                .span
                .in_scope(|| tracing::info!("pty refused: not permitted for this login"));
            session.channel_failure(channel)?;
            return Ok(());
        }
        match self.sessions.get_mut(&channel) {
            Some(s) if s.writer.is_some() => {
                s.tty = Some(TtySpec {
                    term: term.to_owned(),
                    size: terminal_size(col_width, row_height),
                    stty_modes: pty::stty_args(modes),
                });
                session.channel_success(channel)?;
            }
            _ => session.channel_failure(channel)?,
        }
        Ok(())
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // sshpod offers no X11 forwarding, whatever the key or certificate permits. The
        // answer must be sent: russh's default leaves the request unanswered.
        self.conn
            .span
            .in_scope(|| tracing::info!("X11 forwarding refused: not offered"));
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn agent_request(
        &mut self,
        _channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        // No agent forwarding either, whatever the key or certificate permits.
        self.conn
            .span
            .in_scope(|| tracing::info!("agent forwarding refused: not offered"));
        Ok(false)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        variable_name: &str,
        variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let accept = &self.conn.shared.config.ssh.accept_env;
        let taken = match self.sessions.get_mut(&channel) {
            Some(s) if s.writer.is_some() => s.env.offer(accept, variable_name, variable_value),
            _ => {
                session.channel_failure(channel)?;
                return Ok(());
            }
        };
        match taken {
            Ok(()) => session.channel_success(channel)?,
            Err(refused) => {
                self.conn.span.in_scope(|| match refused {
                    Refused::TooMany => tracing::info!(
                        name = variable_name,
                        "environment variable refused: the session has as many as it may"
                    ),
                    Refused::NotAccepted | Refused::BadName => tracing::debug!(
                        name = variable_name,
                        "environment variable refused: not in ssh.acceptEnv"
                    ),
                });
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
        if let Some(controls) = self.sessions.get(&channel).and_then(|s| s.control.get()) {
            controls.resize(terminal_size(col_width, row_height));
        }
        Ok(())
    }

    async fn signal(
        &mut self,
        channel: ChannelId,
        signal: Sig,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(signal) = from_ssh_signal(&signal) else {
            self.conn
                .span
                .in_scope(|| tracing::debug!(?signal, "unknown signal ignored"));
            return Ok(());
        };
        if let Some(controls) = self.sessions.get(&channel).and_then(|s| s.control.get()) {
            controls.signal(signal);
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
