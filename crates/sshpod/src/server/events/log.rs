//! The log, as a subscriber: one line per event that operators read, with the wording and
//! levels the log has always had, each kind with its message code (`log_codes`). Runs inside
//! the connection's span (id, peer, user).

use sshpod_core::{ChannelKind, ChannelRefusal, Event, EventKind, EventSink, RequestRefusal};

use crate::log_codes as codes;
use crate::server::limits;

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
        EventKind::Connected => tracing::debug!(code = codes::SSH_CONNECTED, "connection accepted"),
        EventKind::HandshakeTimedOut => {
            tracing::info!(
                code = codes::HANDSHAKE_TIMEOUT,
                "no key exchange and login request in ssh.handshakeTimeout"
            )
        }
        EventKind::LoginGraceOver => {
            tracing::info!(code = codes::LOGIN_GRACE_OVER, "login grace time over")
        }
        EventKind::LoginRefused {
            user,
            method,
            credential,
            reason,
        } => tracing::info!(
            code = codes::AUTH_FAILED,
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
            code = codes::AUTH_BACKEND_ERROR,
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
            code = codes::CONFIG_BACKEND_ERROR,
            user,
            method = method.as_str(),
            reason,
            "login refused: the config server's answer is not valid"
        ),
        EventKind::ConfigApplied { sections } => tracing::debug!(
            code = codes::CONFIG_RESPONSE,
            sections = sections.join(", "),
            "config server answer applied"
        ),
        EventKind::ConfigSectionsIgnored { sections } => tracing::info!(
            code = codes::CONFIG_SECTIONS_IGNORED,
            sections = sections.join(", "),
            "config server answer: sections that do not apply per connection are ignored"
        ),
        EventKind::CertificateAccepted {
            key_id,
            serial,
            ca,
            via,
        } => tracing::info!(
            code = codes::CERTIFICATE_ACCEPTED,
            key_id,
            serial,
            ca,
            via,
            "certificate accepted"
        ),
        EventKind::LoginRestricted { restrictions } => {
            tracing::info!(
                code = codes::LOGIN_RESTRICTED,
                restrictions,
                "login restricted"
            )
        }
        EventKind::LoginAccepted {
            user,
            method,
            credential,
            authenticated,
            metadata,
        } => tracing::info!(code = codes::AUTH_SUCCESSFUL,
            user,
            method = method.as_str(),
            key = credential.key.as_deref(),
            authenticated,
            metadata = ?metadata,
            "login accepted"
        ),
        EventKind::ContainerReady { container } => tracing::info!(
            code = codes::CONTAINER_READY,
            container = container.id.as_deref(),
            image = container.image,
            "container ready"
        ),
        EventKind::ContainerFailed { error } => tracing::warn!(
            code = codes::CONTAINER_FAILED,
            error = &**error as &dyn std::error::Error,
            "container failed to start"
        ),
        EventKind::ContainerRemoved => {
            tracing::info!(code = codes::CONTAINER_REMOVED, "container removed")
        }
        EventKind::ContainerKept => tracing::info!(
            code = codes::CONTAINER_KEPT,
            "container kept for the user's other connections or grace period"
        ),
        EventKind::ContainerRemovalFailed { error } => tracing::warn!(
            code = codes::CONTAINER_REMOVAL_FAILED,
            error = &**error as &dyn std::error::Error,
            "removing the container"
        ),
        EventKind::ChannelOpened { kind } => match kind {
            ChannelKind::Session => {
                tracing::debug!(code = codes::SSH_NEW_CHANNEL, "session opened")
            }
            ChannelKind::DirectTcpip { host, port } => {
                tracing::debug!(
                    code = codes::SSH_NEW_CHANNEL,
                    host,
                    port,
                    "forwarding requested"
                )
            }
            ChannelKind::ForwardedTcpip {
                address,
                port,
                originator,
                originator_port,
            } => {
                tracing::debug!(
                    code = codes::SSH_NEW_CHANNEL,
                    address,
                    port,
                    originator,
                    originator_port,
                    "remote forward connection passed to the client"
                )
            }
            ChannelKind::DirectStreamlocal { path } => {
                tracing::debug!(
                    code = codes::SSH_NEW_CHANNEL,
                    path,
                    "socket forwarding requested"
                )
            }
            ChannelKind::AuthAgent => tracing::debug!(
                code = codes::SSH_NEW_CHANNEL,
                "agent connection passed to the client"
            ),
            ChannelKind::X11 {
                display: number,
                originator,
                originator_port,
            } => tracing::debug!(
                code = codes::SSH_NEW_CHANNEL,
                display = *number,
                originator,
                originator_port,
                "X11 connection passed to the client"
            ),
            ChannelKind::ForwardedStreamlocal { path } => {
                tracing::debug!(
                    code = codes::SSH_NEW_CHANNEL,
                    path,
                    "remote socket forward connection passed to the client"
                )
            }
        },
        EventKind::ChannelRefused { kind, reason } => match (kind, reason) {
            (_, ChannelRefusal::MaxSessions(max_sessions)) => {
                tracing::info!(
                    code = codes::SECURITY_MAX_SESSIONS,
                    max_sessions,
                    "session refused: ssh.maxSessions are open"
                )
            }
            (ChannelKind::DirectTcpip { host, port }, ChannelRefusal::NotPermitted) => {
                tracing::info!(
                    code = codes::SSH_NEW_CHANNEL_REJECTED,
                    host,
                    port,
                    "forwarding refused: not permitted for this login"
                )
            }
            (ChannelKind::Session, ChannelRefusal::NotPermitted) => {
                tracing::info!(
                    code = codes::SSH_NEW_CHANNEL_REJECTED,
                    "session refused: not permitted for this login"
                )
            }
            (ChannelKind::Session, ChannelRefusal::Policy(rule)) => {
                tracing::info!(
                    code = codes::SSH_NEW_CHANNEL_REJECTED,
                    rule,
                    "session refused by the security policy"
                )
            }
            (ChannelKind::DirectTcpip { host, port }, ChannelRefusal::Policy(rule)) => {
                tracing::info!(
                    code = codes::SSH_NEW_CHANNEL_REJECTED,
                    host,
                    port,
                    rule,
                    "forwarding refused by the security policy"
                )
            }
            (
                ChannelKind::DirectStreamlocal { path }
                | ChannelKind::ForwardedStreamlocal { path },
                reason,
            ) => {
                tracing::info!(
                    code = codes::SSH_NEW_CHANNEL_REJECTED,
                    path,
                    ?reason,
                    "socket forwarding refused"
                )
            }
            (ChannelKind::AuthAgent, reason) => tracing::info!(
                code = codes::SSH_NEW_CHANNEL_REJECTED,
                ?reason,
                "agent connection refused"
            ),
            (
                ChannelKind::X11 {
                    display: number, ..
                },
                reason,
            ) => tracing::info!(
                code = codes::SSH_NEW_CHANNEL_REJECTED,
                display = *number,
                ?reason,
                "X11 connection refused"
            ),
            (ChannelKind::ForwardedTcpip { address, port, .. }, _) => {
                tracing::info!(
                    code = codes::SSH_NEW_CHANNEL_REJECTED,
                    address,
                    port,
                    "remote forward connection refused"
                )
            }
        },
        EventKind::RequestRefused { reason } => match reason {
            RequestRefusal::PtyNotPermitted => {
                tracing::info!(
                    code = codes::SECURITY_TTY_REJECTED,
                    "pty refused: not permitted for this login"
                )
            }
            RequestRefusal::X11NotOffered => tracing::info!(
                code = codes::SSH_CHANNEL_REQUEST_FAILED,
                "X11 forwarding refused: not offered"
            ),
            RequestRefusal::AgentNotOffered => {
                tracing::info!(
                    code = codes::SSH_CHANNEL_REQUEST_FAILED,
                    "agent forwarding refused: not offered"
                )
            }
            RequestRefusal::UnknownSubsystem(subsystem) => {
                tracing::info!(
                    code = codes::SSH_CHANNEL_REQUEST_FAILED,
                    subsystem,
                    "unknown subsystem requested"
                )
            }
            RequestRefusal::UnknownSignal(signal) => {
                tracing::debug!(
                    code = codes::SSH_CHANNEL_REQUEST_FAILED,
                    signal,
                    "unknown signal ignored"
                )
            }
            RequestRefusal::EnvNotAccepted(name) => {
                tracing::debug!(
                    code = codes::SECURITY_ENV_REJECTED,
                    name,
                    "environment variable refused: not in ssh.acceptEnv"
                )
            }
            RequestRefusal::EnvTooMany(name) => tracing::info!(
                code = codes::SECURITY_ENV_REJECTED,
                name,
                "environment variable refused: the session has as many as it may"
            ),
            // Variables and signals get no answer and a client may send them without end: like
            // the other refusals of those, they are logged at debug, so they cannot flood the log.
            RequestRefusal::Policy { rule, message }
                if rule.starts_with("security.env.") || rule.starts_with("security.signal.") =>
            {
                tracing::debug!(
                    code = policy_code(rule),
                    rule,
                    message,
                    "request refused by the security policy"
                )
            }
            RequestRefusal::Policy { rule, message } => {
                tracing::info!(
                    code = policy_code(rule),
                    rule,
                    message,
                    "request refused by the security policy"
                )
            }
            RequestRefusal::RemoteForward {
                address,
                port,
                rule,
                message,
            } => tracing::info!(
                code = codes::SSH_CHANNEL_REQUEST_FAILED,
                address,
                port,
                rule,
                message,
                "remote forward refused"
            ),
            other => tracing::info!(
                code = codes::SSH_CHANNEL_REQUEST_FAILED,
                ?other,
                "request refused"
            ),
        },
        EventKind::PtyGranted { term, size } => {
            tracing::debug!(
                code = codes::SSH_CHANNEL_REQUEST_SUCCESSFUL,
                term,
                cols = size.cols,
                rows = size.rows,
                "terminal granted"
            )
        }
        // The value may be a credential a client passes along: it is for the recording only.
        EventKind::EnvAccepted { name, value: _ } => {
            tracing::debug!(
                code = codes::SSH_CHANNEL_REQUEST_SUCCESSFUL,
                name,
                "environment variable accepted"
            )
        }
        EventKind::ProcessStarting { command, tty } => {
            tracing::debug!(
                code = codes::PROCESS_STARTING,
                ?command,
                tty,
                "starting process"
            )
        }
        EventKind::ProcessFailed { error } => {
            tracing::warn!(
                code = codes::PROCESS_FAILED,
                error = &**error as &dyn std::error::Error,
                "starting a process"
            )
        }
        EventKind::ProcessExited { status } => {
            tracing::debug!(code = codes::SSH_EXIT, ?status, "process ended")
        }
        EventKind::ExitStatusUnknown { error } => tracing::warn!(
            code = codes::SSH_EXIT_CODE_FAILED,
            error = &**error as &dyn std::error::Error,
            "reading the exit status"
        ),
        EventKind::ForwardFailed { host, port, error } => tracing::info!(
            code = codes::FORWARD_FAILED,
            host,
            port,
            error = &**error as &dyn std::error::Error,
            "forwarding refused"
        ),
        EventKind::ListenerOpened { address, port } => tracing::info!(
            code = codes::SSH_CHANNEL_REQUEST_SUCCESSFUL,
            address,
            port,
            "remote forward listening inside the container"
        ),
        EventKind::ListenerClosed { address, port } => tracing::info!(
            code = codes::SSH_CHANNEL_REQUEST_SUCCESSFUL,
            address,
            port,
            "remote forward stopped listening"
        ),
        EventKind::ListenFailed {
            address,
            port,
            error,
        } => tracing::info!(
            code = codes::SSH_CHANNEL_REQUEST_FAILED,
            address,
            port,
            error = &**error as &dyn std::error::Error,
            "remote forward could not listen"
        ),
        EventKind::SessionEnded { reason: None } => {
            tracing::debug!(code = codes::SESSION_ENDED, "session ended")
        }
        EventKind::SessionEnded {
            reason: Some(reason),
        } => tracing::info!(code = codes::SESSION_ENDED, reason, "session ended"),
        EventKind::LimitReached { rule, message } if *rule == limits::CERTIFICATE_EXPIRED => {
            tracing::info!(
                code = codes::CERTIFICATE_EXPIRED,
                rule,
                reason = message,
                "ended: the login's certificate expired"
            )
        }
        EventKind::LimitReached { rule, message } if *rule == limits::KEY_REVOKED => {
            tracing::info!(
                code = codes::KEY_REVOKED,
                rule,
                reason = message,
                "ended: the login's key or certificate is revoked"
            )
        }
        EventKind::LimitReached { rule, message } => tracing::info!(
            code = codes::LIMIT_REACHED,
            rule,
            reason = message,
            "ended by a limit"
        ),
        EventKind::Closed => tracing::info!(code = codes::SSH_DISCONNECTED, "connection closed"),
        other => {
            tracing::debug!(code = codes::CONNECTION_EVENT, event = ?other, "connection event")
        }
    }
}

/// The code of a refusal by the security policy, by the rule that refused.
fn policy_code(rule: &str) -> &'static str {
    let section = rule.strip_prefix("security.").unwrap_or(rule);
    match section.split('.').next() {
        Some("env") => codes::SECURITY_ENV_REJECTED,
        Some("signal") => codes::SECURITY_SIGNAL_REJECTED,
        Some("tty") => codes::SECURITY_TTY_REJECTED,
        Some("shell") => codes::SECURITY_SHELL_REJECTED,
        Some("subsystem") => codes::SECURITY_SUBSYSTEM_REJECTED,
        _ => codes::SECURITY_EXEC_REJECTED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_refusals_get_the_code_of_their_section() {
        assert_eq!(
            policy_code("security.env.allow"),
            codes::SECURITY_ENV_REJECTED
        );
        assert_eq!(
            policy_code("security.signal.deny"),
            codes::SECURITY_SIGNAL_REJECTED
        );
        assert_eq!(
            policy_code("security.tty.mode"),
            codes::SECURITY_TTY_REJECTED
        );
        assert_eq!(
            policy_code("security.shell.mode"),
            codes::SECURITY_SHELL_REJECTED
        );
        assert_eq!(
            policy_code("security.command.mode"),
            codes::SECURITY_EXEC_REJECTED
        );
    }
}
