//! The log, as a subscriber: one line per event that operators read, with the wording and
//! levels the log has always had. Runs inside the connection's span (id, peer, user).

use sshpod_core::{ChannelKind, ChannelRefusal, Event, EventKind, EventSink, RequestRefusal};

/// Writes events to the `tracing` log.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogEvents;

impl EventSink for LogEvents {
    fn event(&self, event: &Event) {
        log(&event.kind);
    }
}

fn log(kind: &EventKind) {
    match kind {
        EventKind::Connected => tracing::debug!("connection accepted"),
        EventKind::HandshakeTimedOut => {
            tracing::info!("no key exchange and login request in ssh.handshakeTimeout")
        }
        EventKind::LoginGraceOver => tracing::info!("login grace time over"),
        EventKind::LoginRefused {
            user,
            method,
            credential,
            reason,
        } => tracing::info!(
            user,
            method = method.as_str(),
            key = credential.key.as_deref(),
            reason = reason.as_str(),
            "login refused"
        ),
        EventKind::LoginUnavailable {
            user,
            method,
            cause,
        } => tracing::warn!(
            user,
            method = method.as_str(),
            error = &**cause as &dyn std::error::Error,
            "login refused: authentication unavailable"
        ),
        EventKind::ConfigAnswerRejected {
            user,
            method,
            reason,
        } => tracing::warn!(
            user,
            method = method.as_str(),
            reason,
            "login refused: the config server's answer is not valid"
        ),
        EventKind::ConfigApplied { sections } => tracing::debug!(
            sections = sections.join(", "),
            "config server answer applied"
        ),
        EventKind::ConfigSectionsIgnored { sections } => tracing::info!(
            sections = sections.join(", "),
            "config server answer: sections that do not apply per connection are ignored"
        ),
        EventKind::CertificateAccepted {
            key_id,
            serial,
            ca,
            via,
        } => tracing::info!(key_id, serial, ca, via, "certificate accepted"),
        EventKind::LoginRestricted { restrictions } => {
            tracing::info!(restrictions, "login restricted")
        }
        EventKind::LoginAccepted {
            user,
            method,
            credential,
            authenticated,
            metadata,
        } => tracing::info!(
            user,
            method = method.as_str(),
            key = credential.key.as_deref(),
            authenticated,
            metadata = ?metadata,
            "login accepted"
        ),
        EventKind::ContainerReady { container } => tracing::info!(
            container = container.id.as_deref(),
            image = container.image,
            "container ready"
        ),
        EventKind::ContainerFailed { error } => tracing::warn!(
            error = &**error as &dyn std::error::Error,
            "container failed to start"
        ),
        EventKind::ContainerRemoved => tracing::info!("container removed"),
        EventKind::ContainerRemovalFailed { error } => tracing::warn!(
            error = &**error as &dyn std::error::Error,
            "removing the container"
        ),
        EventKind::ChannelOpened { kind } => match kind {
            ChannelKind::Session => tracing::debug!("session opened"),
            ChannelKind::DirectTcpip { host, port } => {
                tracing::debug!(host, port, "forwarding requested")
            }
        },
        EventKind::ChannelRefused { kind, reason } => match (kind, reason) {
            (_, ChannelRefusal::MaxSessions(max_sessions)) => {
                tracing::info!(max_sessions, "session refused: ssh.maxSessions are open")
            }
            (ChannelKind::DirectTcpip { host, port }, ChannelRefusal::NotPermitted) => {
                tracing::info!(
                    host,
                    port,
                    "forwarding refused: not permitted for this login"
                )
            }
            (ChannelKind::Session, ChannelRefusal::NotPermitted) => {
                tracing::info!("session refused: not permitted for this login")
            }
            (ChannelKind::Session, ChannelRefusal::Policy(rule)) => {
                tracing::info!(rule, "session refused by the security policy")
            }
            (ChannelKind::DirectTcpip { host, port }, ChannelRefusal::Policy(rule)) => {
                tracing::info!(
                    host,
                    port,
                    rule,
                    "forwarding refused by the security policy"
                )
            }
        },
        EventKind::RequestRefused { reason } => match reason {
            RequestRefusal::PtyNotPermitted => {
                tracing::info!("pty refused: not permitted for this login")
            }
            RequestRefusal::X11NotOffered => tracing::info!("X11 forwarding refused: not offered"),
            RequestRefusal::AgentNotOffered => {
                tracing::info!("agent forwarding refused: not offered")
            }
            RequestRefusal::UnknownSubsystem(subsystem) => {
                tracing::info!(subsystem, "unknown subsystem requested")
            }
            RequestRefusal::UnknownSignal(signal) => {
                tracing::debug!(signal, "unknown signal ignored")
            }
            RequestRefusal::EnvNotAccepted(name) => {
                tracing::debug!(name, "environment variable refused: not in ssh.acceptEnv")
            }
            RequestRefusal::EnvTooMany(name) => tracing::info!(
                name,
                "environment variable refused: the session has as many as it may"
            ),
            // Variables and signals get no answer and a client may send them without end: like
            // the other refusals of those, they are logged at debug, so they cannot flood the log.
            RequestRefusal::Policy { rule, message }
                if rule.starts_with("security.env.") || rule.starts_with("security.signal.") =>
            {
                tracing::debug!(rule, message, "request refused by the security policy")
            }
            RequestRefusal::Policy { rule, message } => {
                tracing::info!(rule, message, "request refused by the security policy")
            }
            other => tracing::info!(?other, "request refused"),
        },
        EventKind::PtyGranted { term, size } => {
            tracing::debug!(term, cols = size.cols, rows = size.rows, "terminal granted")
        }
        // The value may be a credential a client passes along: it is for the recording only.
        EventKind::EnvAccepted { name, value: _ } => {
            tracing::debug!(name, "environment variable accepted")
        }
        EventKind::ProcessStarting { command, tty } => {
            tracing::debug!(?command, tty, "starting process")
        }
        EventKind::ProcessFailed { error } => {
            tracing::warn!(
                error = &**error as &dyn std::error::Error,
                "starting a process"
            )
        }
        EventKind::ProcessExited { status } => tracing::debug!(?status, "process ended"),
        EventKind::ExitStatusUnknown { error } => tracing::warn!(
            error = &**error as &dyn std::error::Error,
            "reading the exit status"
        ),
        EventKind::ForwardFailed { host, port, error } => tracing::info!(
            host,
            port,
            error = &**error as &dyn std::error::Error,
            "forwarding refused"
        ),
        EventKind::SessionEnded { reason: None } => tracing::debug!("session ended"),
        EventKind::SessionEnded {
            reason: Some(reason),
        } => tracing::info!(reason, "session ended"),
        EventKind::LimitReached { rule, message } => {
            tracing::info!(rule, reason = message, "ended by a limit")
        }
        EventKind::Closed => tracing::info!("connection closed"),
        other => tracing::debug!(event = ?other, "connection event"),
    }
}
