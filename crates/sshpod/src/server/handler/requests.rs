//! What the callbacks hand on to: starting a session's process once its request passed every
//! check, queueing client data, and refusing requests with the reason and the rule that
//! refused them.

use std::sync::Arc;

use bytes::Bytes;
use russh::server::Session;
use russh::ChannelId;
use sshpod_core::{Backend, Command, EventKind, ProcessSpec, RequestRefusal};

use super::x11::SessionX11;
use super::ConnectionHandler;
use crate::server::channel::restrict;
use crate::server::channel::security::Refused;
use crate::server::channel::session::SessionTask;
use crate::server::channel::x11;

impl<B: Backend> ConnectionHandler<B> {
    /// Starts the channel's process (shell, exec or subsystem) on a task.
    pub(super) fn start(&mut self, channel: ChannelId, command: Command, session: &mut Session) {
        if let Err(refused) = self.security.run(&command) {
            self.refuse_to_run(channel, refused, session);
            return;
        }
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
                self.conn.events.emit_on(
                    Some(channel),
                    EventKind::RequestRefused {
                        reason: RequestRefusal::UnknownSubsystem(name.clone()),
                    },
                );
                let _ = session.channel_failure(channel);
                return;
            }
        }
        let forced = self
            .security
            .force_command()
            .or(self.restrictions.force_command.as_deref());
        let mut env = std::mem::take(&mut state.env).into_vars(forced.is_some());
        // As OpenSSH sets them, with the client's address (a trusted proxy's header's, if any).
        let (peer, local) = (self.conn.peer, self.conn.local);
        env.retain(|(name, _)| {
            name != "SSH_CLIENT"
                && name != "SSH_CONNECTION"
                && name != "SSH_AUTH_SOCK"
                && (state.x11.is_none() || name != "DISPLAY")
        });
        if let (true, Some(socket)) = (state.agent, &self.agent_socket) {
            env.push(("SSH_AUTH_SOCK".to_owned(), socket.clone()));
        }
        let x11 = state.x11.as_ref().and_then(|x| x.display()).cloned();
        if let Some(setup) = &x11 {
            env.push((
                "DISPLAY".to_owned(),
                x11::display_variable(setup.display, setup.auth.screen),
            ));
        }
        env.push((
            "SSH_CLIENT".to_owned(),
            format!("{} {} {}", peer.ip(), peer.port(), local.port()),
        ));
        env.push((
            "SSH_CONNECTION".to_owned(),
            format!(
                "{} {} {} {}",
                peer.ip(),
                peer.port(),
                local.ip(),
                local.port()
            ),
        ));
        let command = restrict::command_for(
            forced,
            command,
            &mut env,
            self.conn.shared.config.subsystems(),
        );
        self.conn.events.emit_on(
            Some(channel),
            EventKind::ProcessStarting {
                command: command.clone(),
                tty: state.tty.is_some(),
            },
        );
        if state.tty.is_some() {
            self.conn.channels.has_terminal(channel);
        }
        let task = SessionTask {
            conn: Arc::clone(&self.conn),
            channel,
            writer,
            activity: Arc::clone(&state.limits.activity),
            closer: state.limits.closer.clone(),
            handle: session.handle(),
            spec: ProcessSpec {
                command,
                env,
                tty: state.tty.clone(),
                x11: match &state.x11 {
                    Some(SessionX11::PassedOn(request)) => Some(request.clone()),
                    _ => None,
                },
            },
            input,
            control: Arc::clone(&state.control),
            taps: state.taps.clone(),
            x11,
        };
        self.conn.spawn(task.run());
        let _ = session.channel_success(channel);
    }

    pub(super) fn push_input(&self, channel: ChannelId, data: &[u8]) {
        // Taps see input as it is delivered (`io::input::pump`), where they can hold it back.
        let target = match self.sessions.get(&channel) {
            Some(s) => {
                s.limits.activity.touch();
                s.input.as_ref()
            }
            None => self.forwards.get(&channel).map(|f| {
                f.activity.touch();
                &f.input
            }),
        };
        if let Some(input) = target {
            input.push(Bytes::copy_from_slice(data));
        }
    }

    /// Refuses a request the security policy does not allow: the client is told why on the
    /// channel's error stream, and the subscribers which rule refused it. A refused shell, exec
    /// or subsystem is answered like a command that failed at once (accepted, the message, exit
    /// status 1, close): clients exit on a failed request before they show the channel's error
    /// stream.
    pub(super) fn refuse_to_run(
        &mut self,
        channel: ChannelId,
        refused: Refused,
        session: &mut Session,
    ) {
        let _ = session.channel_success(channel);
        self.tell(channel, &refused, session);
        let _ = session.exit_status_request(channel, 1);
        let _ = session.eof(channel);
        let _ = session.close(channel);
        // Closed by sshpod: the library will not report the client's answer, so the session
        // no longer counts against the caps from here on.
        self.sessions.remove(&channel);
        self.conn.channels.closed(channel);
        self.refused_by_policy(channel, refused);
    }

    /// Refuses a request that leaves the session usable (a terminal): the request fails and
    /// the client is told why on the error stream.
    pub(super) fn refuse_with_message(
        &self,
        channel: ChannelId,
        refused: Refused,
        session: &mut Session,
    ) {
        self.tell(channel, &refused, session);
        let _ = session.channel_failure(channel);
        self.refused_by_policy(channel, refused);
    }

    pub(super) fn tell(&self, channel: ChannelId, refused: &Refused, session: &mut Session) {
        let _ = session.extended_data(
            channel,
            1,
            format!("sshpod: {}\r\n", refused.message).into_bytes(),
        );
    }

    pub(super) fn refused_by_policy(&self, channel: ChannelId, refused: Refused) {
        self.refused(
            channel,
            RequestRefusal::Policy {
                rule: refused.rule,
                message: refused.message,
            },
        );
    }

    /// Tells the subscribers about a refused request on `channel`.
    pub(super) fn refused(&self, channel: ChannelId, reason: RequestRefusal) {
        self.conn
            .events
            .emit_on(Some(channel), EventKind::RequestRefused { reason });
    }
}
