//! One event as a line of the event log: the common members, `kind`, then the kind's own
//! fields in camelCase (see the crate's format description in `sshpod_format`).
//!
//! Passwords appear only when the recording intercepts them; nothing else a login presented
//! is secret (a key's fingerprint, a certificate's id).

use std::time::SystemTime;

use serde_json::{json, Map, Value};
use sshpod_core::{
    AuthMethod, ChannelKind, ChannelRefusal, Command, Credential, Event, EventKind, ExitStatus,
    RequestRefusal,
};

/// RFC 3339 UTC with nanoseconds, as every `at` in a recording.
pub fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_nanos(at).to_string()
}

/// The members every line starts with.
pub fn head(
    seq: u64,
    at: SystemTime,
    event: &Event,
    channel: Option<u32>,
    kind: &str,
) -> Map<String, Value> {
    let mut line = Map::new();
    line.insert("seq".into(), json!(seq));
    line.insert("at".into(), json!(timestamp(at)));
    line.insert("connection".into(), json!(event.connection.to_string()));
    line.insert("remote".into(), json!(event.remote.to_string()));
    line.insert("user".into(), json!(event.user.as_deref()));
    line.insert("channel".into(), json!(channel));
    line.insert("kind".into(), json!(kind));
    line
}

/// The event's kind name and its own fields.
pub fn kind(kind: &EventKind, passwords: bool) -> (&'static str, Map<String, Value>) {
    let mut fields = Map::new();
    let mut put = |name: &str, value: Value| {
        fields.insert(name.to_owned(), value);
    };
    let name = match kind {
        EventKind::Connected => "connected",
        EventKind::HandshakeTimedOut => "handshake-timed-out",
        EventKind::LoginGraceOver => "login-grace-over",
        EventKind::LoginRefused {
            user,
            method,
            credential,
            reason,
        } => {
            put("user", json!(user));
            attempt(&mut put, *method, credential, passwords);
            put("reason", json!(reason.as_str()));
            "login-refused"
        }
        EventKind::LoginUnavailable {
            user,
            method,
            cause,
        } => {
            put("user", json!(user));
            put("method", json!(method.as_str()));
            put("error", json!(cause.to_string()));
            "login-unavailable"
        }
        EventKind::ConfigAnswerRejected {
            user,
            method,
            reason,
        } => {
            put("user", json!(user));
            put("method", json!(method.as_str()));
            put("reason", json!(reason));
            "config-answer-rejected"
        }
        EventKind::ConfigApplied { sections } => {
            put("sections", json!(sections));
            "config-applied"
        }
        EventKind::ConfigSectionsIgnored { sections } => {
            put("sections", json!(sections));
            "config-sections-ignored"
        }
        EventKind::CertificateAccepted {
            key_id,
            serial,
            ca,
            via,
        } => {
            put("keyId", json!(key_id));
            put("serial", json!(serial));
            put("ca", json!(ca));
            put("via", json!(via));
            "certificate-accepted"
        }
        EventKind::LoginRestricted { restrictions } => {
            put("restrictions", json!(restrictions));
            "login-restricted"
        }
        EventKind::LoginAccepted {
            user,
            method,
            credential,
            authenticated,
            metadata,
        } => {
            put("user", json!(user));
            attempt(&mut put, *method, credential, passwords);
            put("authenticated", json!(authenticated));
            put("metadata", json!(metadata));
            "login-accepted"
        }
        EventKind::RecordingSettings {
            enable,
            required,
            intercept,
        } => {
            put("enable", json!(enable));
            put("required", json!(required));
            put("intercept", json!(intercept));
            "recording-settings"
        }
        EventKind::ContainerReady { container } => {
            put("id", json!(container.id));
            put("image", json!(container.image));
            "container-ready"
        }
        EventKind::ContainerFailed { error } => {
            put("error", json!(error.to_string()));
            "container-failed"
        }
        EventKind::ContainerRemoved => "container-removed",
        EventKind::ContainerKept => "container-kept",
        EventKind::ContainerRemovalFailed { error } => {
            put("error", json!(error.to_string()));
            "container-removal-failed"
        }
        EventKind::ChannelOpened { kind } => {
            channel_kind(&mut put, kind);
            "channel-opened"
        }
        EventKind::ChannelRefused { kind, reason } => {
            channel_kind(&mut put, kind);
            put(
                "reason",
                json!(match reason {
                    ChannelRefusal::MaxSessions(max) => format!("ssh.maxSessions ({max}) are open"),
                    ChannelRefusal::NotPermitted => "not permitted for this login".to_owned(),
                    ChannelRefusal::Policy(rule) => format!("refused by {rule}"),
                }),
            );
            "channel-refused"
        }
        EventKind::RequestRefused { reason } => {
            put("reason", json!(request_refusal(reason)));
            "request-refused"
        }
        EventKind::PtyGranted { term, size } => {
            put("term", json!(term));
            put("cols", json!(size.cols));
            put("rows", json!(size.rows));
            "pty"
        }
        EventKind::EnvAccepted { name, value } => {
            put("name", json!(name));
            put("value", json!(value));
            "env"
        }
        EventKind::ProcessStarting { command, tty } => {
            put("command", command_json(command));
            put("tty", json!(tty));
            "process-starting"
        }
        EventKind::ProcessFailed { error } => {
            put("error", json!(error.to_string()));
            "process-failed"
        }
        EventKind::ProcessExited { status } => {
            exit_status(&mut put, *status);
            "process-exited"
        }
        EventKind::ExitStatusUnknown { error } => {
            put("error", json!(error.to_string()));
            "exit-status-unknown"
        }
        EventKind::ForwardFailed { host, port, error } => {
            put("host", json!(host));
            put("port", json!(port));
            put("error", json!(error.to_string()));
            "forward-failed"
        }
        EventKind::ListenerOpened { address, port } => {
            put("address", json!(address));
            put("port", json!(port));
            "listener-opened"
        }
        EventKind::ListenerClosed { address, port } => {
            put("address", json!(address));
            put("port", json!(port));
            "listener-closed"
        }
        EventKind::ListenFailed {
            address,
            port,
            error,
        } => {
            put("address", json!(address));
            put("port", json!(port));
            put("error", json!(error.to_string()));
            "listen-failed"
        }
        EventKind::SessionEnded { reason } => {
            put("reason", json!(reason));
            "session-ended"
        }
        EventKind::LimitReached { rule, message } => {
            put("rule", json!(rule));
            put("reason", json!(message));
            "limit-reached"
        }
        EventKind::Closed => "closed",
        // A kind this version does not know yet keeps its debug form rather than vanishing.
        #[allow(unreachable_patterns)]
        other => {
            put("detail", json!(format!("{other:?}")));
            "other"
        }
    };
    (name, fields)
}

fn attempt(
    put: &mut impl FnMut(&str, Value),
    method: AuthMethod,
    credential: &Credential,
    passwords: bool,
) {
    put("method", json!(method.as_str()));
    if let Some(key) = &credential.key {
        put("key", json!(key));
    }
    if let Some((key_id, serial)) = &credential.certificate {
        put("certificate", json!({"keyId": key_id, "serial": serial}));
    }
    if let (true, Some(password)) = (passwords, &credential.password) {
        put("password", json!(password.expose_secret()));
    }
}

fn channel_kind(put: &mut impl FnMut(&str, Value), kind: &ChannelKind) {
    match kind {
        ChannelKind::Session => put("channelKind", json!("session")),
        ChannelKind::DirectTcpip { host, port } => {
            put("channelKind", json!("direct-tcpip"));
            put("host", json!(host));
            put("port", json!(port));
        }
        ChannelKind::ForwardedTcpip {
            address,
            port,
            originator,
            originator_port,
        } => {
            put("channelKind", json!("forwarded-tcpip"));
            put("address", json!(address));
            put("port", json!(port));
            put("originator", json!(originator));
            put("originatorPort", json!(originator_port));
        }
        ChannelKind::DirectStreamlocal { path } => {
            put("channelKind", json!("direct-streamlocal"));
            put("path", json!(path));
        }
        ChannelKind::ForwardedStreamlocal { path } => {
            put("channelKind", json!("forwarded-streamlocal"));
            put("path", json!(path));
        }
        ChannelKind::AuthAgent => put("channelKind", json!("auth-agent")),
        ChannelKind::X11 {
            display,
            originator,
            originator_port,
        } => {
            put("channelKind", json!("x11"));
            // A display another SSH server made (a proxied login's) has no number here.
            if let Some(display) = display {
                put("display", json!(display));
            }
            put("originator", json!(originator));
            put("originatorPort", json!(originator_port));
        }
    }
}

/// A command as the event log writes it: `"shell"`, `{"exec": line}` or
/// `{"subsystem": name}`.
pub fn command_json(command: &Command) -> Value {
    match command {
        Command::Shell => json!("shell"),
        Command::Exec(line) => json!({ "exec": line }),
        Command::Subsystem(name) => json!({ "subsystem": name }),
    }
}

/// `exitStatus` or `signal`.
pub fn exit_status(put: &mut impl FnMut(&str, Value), status: ExitStatus) {
    match status {
        ExitStatus::Code(code) => put("exitStatus", json!(code)),
        ExitStatus::Signal(signal) => put("signal", json!(signal.name())),
    }
}

fn request_refusal(reason: &RequestRefusal) -> String {
    match reason {
        RequestRefusal::PtyNotPermitted => "pty: not permitted for this login".to_owned(),
        RequestRefusal::X11NotOffered => "x11: not offered".to_owned(),
        RequestRefusal::AgentNotOffered => "agent forwarding: not offered".to_owned(),
        RequestRefusal::UnknownSubsystem(name) => format!("unknown subsystem {name:?}"),
        RequestRefusal::UnknownSignal(name) => format!("unknown signal {name:?}"),
        RequestRefusal::EnvNotAccepted(name) => format!("env {name:?}: not in ssh.acceptEnv"),
        RequestRefusal::EnvTooMany(name) => format!("env {name:?}: too many"),
        RequestRefusal::Policy { rule, message } => format!("{rule}: {message}"),
        RequestRefusal::RemoteForward {
            address,
            port,
            rule,
            message,
        } => format!("remote forward {address}:{port}: {rule}: {message}"),
        #[allow(unreachable_patterns)]
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc_with_nanoseconds() {
        let at = SystemTime::UNIX_EPOCH + Duration::new(1_796_616_000, 123_456_789);
        assert_eq!(timestamp(at), "2026-12-07T04:00:00.123456789Z");
        assert_eq!(
            timestamp(SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000000000Z"
        );
    }

    #[test]
    fn a_password_is_written_only_when_intercepted() {
        let kind_of = EventKind::LoginRefused {
            user: "alice".into(),
            method: AuthMethod::Password,
            credential: Credential {
                password: Some(sshpod_config::Secret::new("hunter2".to_owned())),
                ..Credential::default()
            },
            reason: sshpod_core::LoginRefusal::NotAccepted,
        };
        let (_, fields) = kind(&kind_of, false);
        assert!(!Value::Object(fields).to_string().contains("hunter2"));
        let (name, fields) = kind(&kind_of, true);
        assert_eq!(name, "login-refused");
        assert_eq!(fields["password"], "hunter2");
    }

    #[test]
    fn an_x11_channel_names_its_display_only_when_sshpod_made_it() {
        let opened = |display| EventKind::ChannelOpened {
            kind: ChannelKind::X11 {
                display,
                originator: "127.0.0.1".to_owned(),
                originator_port: 40_000,
            },
        };
        let (_, own) = kind(&opened(Some(10)), false);
        assert_eq!(own["channelKind"], "x11");
        assert_eq!(own["display"], 10);
        // A proxied login's display is the upstream server's: no number is made up for it.
        let (_, passed_on) = kind(&opened(None), false);
        assert_eq!(passed_on["channelKind"], "x11");
        assert_eq!(passed_on["originator"], "127.0.0.1");
        assert!(!passed_on.contains_key("display"), "{passed_on:?}");
    }
}
