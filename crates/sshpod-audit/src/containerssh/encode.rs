//! Writing `format: binary`: ContainerSSH's audit log version 2, from a connection's events and
//! channel records as they happen, so ContainerSSH's decoder and tools read sshpod's logs.
//!
//! Which messages each item maps to is here; how they are written (request ids, channel
//! states, the flushed gzip stream) is [`LogWriter`]'s, which the export of sshpod's own
//! recordings shares. Where sshpod's events carry less than ContainerSSH's payloads, the
//! members are written with what is known (see [`BinaryWriter`]).

use std::io::{self, Write};
use std::time::SystemTime;

use sshpod_config::AuditIntercept;
use sshpod_core::{ChannelKind, ChannelRefusal, Event, EventKind, ExitStatus, RequestRefusal};

use super::log_writer::{Exit, LogWriter, Outcome, Presented};
use super::message::unix_nanos;
use crate::item::{Item, Record};

/// What a login attempt presented, as the log may keep it: the password only when
/// `intercept.passwords` says so, the key as its fingerprint.
fn presented(credential: &sshpod_core::Credential, intercept: &AuditIntercept) -> Presented {
    let password = match (&credential.password, intercept.passwords) {
        (Some(password), true) => password.expose_secret().as_bytes().to_vec(),
        _ => Vec::new(),
    };
    Presented {
        password,
        key: credential.key.clone().unwrap_or_default(),
    }
}

/// Writes one connection's ContainerSSH binary audit log (version 2).
///
/// Messages written, from sshpod's items:
/// - `Connected`: connect (`remoteAddr` is the address without its port, `country` is `XX`:
///   sshpod does no GeoIP lookup).
/// - `LoginRefused`, `LoginAccepted`, `LoginUnavailable`: the attempt (password or public key)
///   and its result (successful, failed, backend error; keyboard-interactive: failed or backend
///   error); an accepted login is followed by handshake successful. `password` holds the
///   password only with `intercept.passwords` (empty bytes otherwise); `key` holds the key's
///   SHA-256 fingerprint.
/// - `PtyGranted`: `pty` with the terminal's type and size; `EnvAccepted`: `env`.
/// - `HandshakeTimedOut`, `LoginGraceOver`: handshake failed.
/// - `ChannelOpened`: new channel successful (`session`, `direct-tcpip`); a `direct-tcpip`
///   channel is preceded by its target (`HostToConnect`, `PortToConnect`; the originator is
///   not known). `ChannelRefused`: new channel failed.
/// - `ProcessStarting`: `shell`, `exec` or `subsystem` (and `pty` if no `PtyGranted` said
///   it). Request ids count a channel's requests from 0.
/// - Records: `Resize` → `window`; `Signal` → `signal`; input, output and error output → `io`
///   (stream 0, 1, 2) when `intercept` names the stream (`stdin`, `stdout`, `stderr`; a
///   forwarded channel's bytes, as streams 0 and 1, only with `forwarding`). The recorder must
///   tap every channel for resizes and signals to appear.
/// - `RequestRefused`, `ProcessFailed`: request failed.
/// - `ProcessExited`: `exit` or `exit_signal`, then `close` of the channel.
/// - `Closed`: `close` of every channel still open, then `disconnect`; nothing follows it.
///
/// Not written, as ContainerSSH has no message for them: certificates and login restrictions,
/// the config server, the container's life, file transfers, `SessionEnded`. Not written yet,
/// as sshpod's events do not carry them: `env` requests, the terminal request's `term` and size
/// (`pty_request` takes them once an event does), `close_write`.
#[derive(Debug)]
pub struct BinaryWriter<W: Write> {
    log: LogWriter<W>,
}

impl<W: Write> BinaryWriter<W> {
    /// Starts the log of `connection_id`: writes the header and the gzip stream's start.
    pub fn new(out: W, connection_id: &str) -> io::Result<Self> {
        Ok(Self {
            log: LogWriter::new(out, connection_id)?,
        })
    }

    /// Writes what `item` maps to (see [`BinaryWriter`]), each message flushed.
    pub fn write(&mut self, item: &Item, intercept: &AuditIntercept) -> io::Result<()> {
        if self.log.disconnected() {
            return Ok(());
        }
        match item {
            Item::Event(event) => self.event(event, intercept),
            Item::Channel(info) => {
                let forward = matches!(
                    info.kind,
                    ChannelKind::DirectTcpip { .. }
                        | ChannelKind::ForwardedTcpip { .. }
                        | ChannelKind::DirectStreamlocal { .. }
                        | ChannelKind::ForwardedStreamlocal { .. }
                        | ChannelKind::AuthAgent
                        | ChannelKind::X11 { .. }
                );
                self.log.set_forward(info.channel, forward);
                Ok(())
            }
            Item::Record {
                channel,
                at,
                record,
            } => self.record(*channel, *at, record, intercept),
        }
    }

    /// The output written so far (everything up to the last message, once flushed).
    pub fn get_ref(&self) -> &W {
        self.log.get_ref()
    }

    /// Ends the compressed stream (without a trailer, as ContainerSSH does) and returns the
    /// output. A log without its `Closed` event stays truncated: readers see it ends early.
    pub fn finish(self) -> io::Result<W> {
        self.log.finish()
    }

    fn event(&mut self, event: &Event, intercept: &AuditIntercept) -> io::Result<()> {
        let at = unix_nanos(event.at);
        let channel = event.channel;
        let log = &mut self.log;
        match &event.kind {
            EventKind::Connected => log.connected(at, &event.remote.ip().to_string()),
            EventKind::LoginRefused {
                user,
                method,
                credential,
                ..
            } => {
                let credential = presented(credential, intercept);
                log.login(at, user, *method, &credential, Outcome::Refused)
            }
            EventKind::LoginUnavailable {
                user,
                method,
                cause,
            } => {
                let reason = cause.to_string();
                let outcome = Outcome::Unavailable { reason: &reason };
                log.login(at, user, *method, &Presented::default(), outcome)
            }
            EventKind::LoginAccepted {
                user,
                method,
                credential,
                authenticated,
                ..
            } => {
                let credential = presented(credential, intercept);
                let outcome = Outcome::Accepted { authenticated };
                log.login(at, user, *method, &credential, outcome)
            }
            EventKind::HandshakeTimedOut => log.handshake_timed_out(at),
            EventKind::LoginGraceOver => log.login_grace_over(at),
            EventKind::ChannelOpened { kind } => {
                let Some(id) = channel else { return Ok(()) };
                log.channel_opened(at, id, kind)
            }
            EventKind::ChannelRefused { kind, reason } => {
                log.channel_refused(at, channel, kind, &channel_refusal(reason))
            }
            EventKind::RequestRefused { reason } => {
                let Some(id) = channel else { return Ok(()) };
                log.request_refused(at, id, &request_refusal(reason))
            }
            EventKind::PtyGranted { term, size } => {
                let Some(id) = channel else { return Ok(()) };
                log.pty(at, id, term, Some(*size))
            }
            EventKind::EnvAccepted { name, value } => {
                let Some(id) = channel else { return Ok(()) };
                log.env(at, id, name, value)
            }
            EventKind::ProcessStarting { command, tty } => {
                let Some(id) = channel else { return Ok(()) };
                log.process_starting(at, id, command, *tty)
            }
            EventKind::ProcessFailed { error } => {
                let Some(id) = channel else { return Ok(()) };
                log.process_failed(at, id, &error.to_string())
            }
            EventKind::ProcessExited { status } => {
                let Some(id) = channel else { return Ok(()) };
                let exit = match status {
                    ExitStatus::Code(code) => Exit::Code(*code),
                    ExitStatus::Signal(signal) => Exit::Signal(signal.name()),
                };
                log.process_exited(at, id, exit)
            }
            EventKind::Closed => log.closed(at),
            // No ContainerSSH message says these (see the type's documentation).
            EventKind::ConfigAnswerRejected { .. }
            | EventKind::ConfigSectionsIgnored { .. }
            | EventKind::ConfigApplied { .. }
            | EventKind::LimitReached { .. }
            | EventKind::CertificateAccepted { .. }
            | EventKind::LoginRestricted { .. }
            | EventKind::ContainerReady { .. }
            | EventKind::ContainerFailed { .. }
            | EventKind::ContainerRemoved
            | EventKind::ContainerKept
            | EventKind::ContainerRemovalFailed { .. }
            | EventKind::ExitStatusUnknown { .. }
            | EventKind::ForwardFailed { .. }
            | EventKind::SessionEnded { .. } => Ok(()),
            // `EventKind` is non-exhaustive: events added later are not written until mapped.
            _ => Ok(()),
        }
    }

    fn record(
        &mut self,
        id: u32,
        at: SystemTime,
        record: &Record,
        intercept: &AuditIntercept,
    ) -> io::Result<()> {
        let at = unix_nanos(at);
        let forward = self.log.is_forward(id);
        match record {
            Record::Input(data) if recorded(intercept, forward, intercept.stdin) => {
                self.log.io(at, id, 0, data)
            }
            Record::Output(data) if recorded(intercept, forward, intercept.stdout) => {
                self.log.io(at, id, 1, data)
            }
            Record::ErrorOutput(data) if recorded(intercept, forward, intercept.stderr) => {
                self.log.io(at, id, 2, data)
            }
            Record::Input(_) | Record::Output(_) | Record::ErrorOutput(_) => Ok(()),
            Record::Resize(size) => self.log.window(at, id, *size),
            Record::Signal(signal) => self.log.signal(at, id, signal.name()),
            // The `ProcessExited` event says it, for tapped channels and others alike.
            Record::Exit(_) => Ok(()),
        }
    }
}

/// Whether a channel's stream is recorded: a session's as `stream_intercepted` says, a
/// forward's with `intercept.forwarding`.
fn recorded(intercept: &AuditIntercept, forward: bool, stream_intercepted: bool) -> bool {
    if forward {
        intercept.forwarding
    } else {
        stream_intercepted
    }
}

fn channel_refusal(reason: &ChannelRefusal) -> String {
    match reason {
        ChannelRefusal::MaxSessions(max) => format!("ssh.maxSessions ({max}) sessions are open"),
        ChannelRefusal::NotPermitted => "not permitted for this login".to_owned(),
        ChannelRefusal::Policy(rule) => format!("refused by the security policy ({rule})"),
    }
}

fn request_refusal(reason: &RequestRefusal) -> String {
    match reason {
        RequestRefusal::PtyNotPermitted => "pty not permitted for this login".to_owned(),
        RequestRefusal::X11NotOffered => "X11 forwarding is not offered".to_owned(),
        RequestRefusal::AgentNotOffered => "agent forwarding is not offered".to_owned(),
        RequestRefusal::UnknownSubsystem(name) => format!("unknown subsystem {name}"),
        RequestRefusal::UnknownSignal(name) => format!("unknown signal {name}"),
        RequestRefusal::EnvNotAccepted(name) => {
            format!("environment variable {name} is not in ssh.acceptEnv")
        }
        RequestRefusal::EnvTooMany(name) => {
            format!("environment variable {name}: the session has as many as it may")
        }
        RequestRefusal::Policy { rule, message } => {
            format!("refused by the security policy ({rule}): {message}")
        }
        // `RequestRefusal` is non-exhaustive.
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sshpod_core::{AuthMethod, Command, LoginRefusal, Signal, TerminalSize};

    use super::super::decode::{decode, AuditLog};
    use super::super::log_writer::GZIP_HEADER;
    use super::super::message::type_id;
    use super::super::test_items::{event, nanos, record, tapped};
    use super::*;

    /// stdin and stdout, nothing else.
    const STDIN_STDOUT: AuditIntercept = AuditIntercept {
        stdin: true,
        stdout: true,
        stderr: false,
        passwords: false,
        forwarding: false,
    };

    /// A connection: a refused password, an accepted key, a shell on a terminal with input,
    /// output, error output, a resize and a signal, a forward with bytes, the exit, the end.
    fn connection() -> Vec<Item> {
        let forward = ChannelKind::DirectTcpip {
            host: "db".to_owned(),
            port: 5432,
        };
        vec![
            event(0, None, EventKind::Connected),
            event(
                10,
                None,
                EventKind::LoginRefused {
                    credential: sshpod_core::Credential::default(),
                    user: "alice".to_owned(),
                    method: AuthMethod::Password,
                    reason: LoginRefusal::NotAccepted,
                },
            ),
            event(
                20,
                None,
                EventKind::LoginAccepted {
                    credential: sshpod_core::Credential::default(),
                    user: "alice".to_owned(),
                    method: AuthMethod::PublicKey,
                    authenticated: "alice-admin".to_owned(),
                    metadata: Vec::new(),
                },
            ),
            event(
                30,
                None,
                EventKind::ContainerReady {
                    container: sshpod_core::ContainerInfo::default(),
                },
            ),
            tapped(0, ChannelKind::Session),
            event(
                40,
                Some(0),
                EventKind::ChannelOpened {
                    kind: ChannelKind::Session,
                },
            ),
            event(
                50,
                Some(0),
                EventKind::ProcessStarting {
                    command: Command::Shell,
                    tty: true,
                },
            ),
            record(60, 0, Record::Input(b"ls\r".to_vec())),
            record(70, 0, Record::Output(b"file\r\n".to_vec())),
            record(75, 0, Record::ErrorOutput(b"not recorded".to_vec())),
            record(
                80,
                0,
                Record::Resize(TerminalSize {
                    cols: 100,
                    rows: 40,
                }),
            ),
            record(90, 0, Record::Signal(Signal::Int)),
            record(95, 0, Record::Output(b"\x00\xff binary".to_vec())),
            tapped(1, forward.clone()),
            event(100, Some(1), EventKind::ChannelOpened { kind: forward }),
            record(110, 1, Record::Input(b"SELECT 1".to_vec())),
            record(120, 1, Record::Output(b"1".to_vec())),
            event(
                130,
                Some(0),
                EventKind::ProcessExited {
                    status: ExitStatus::Code(3),
                },
            ),
            record(130, 0, Record::Exit(ExitStatus::Code(3))),
            event(140, None, EventKind::SessionEnded { reason: None }),
            event(150, None, EventKind::Closed),
        ]
    }

    fn write_all(items: &[Item], intercept: &AuditIntercept) -> Vec<u8> {
        let written = BinaryWriter::new(Vec::new(), "c0ffee").and_then(|mut writer| {
            for item in items {
                writer.write(item, intercept)?;
            }
            writer.finish()
        });
        match written {
            Ok(bytes) => bytes,
            Err(e) => panic!("writing: {e}"),
        }
    }

    fn must_decode(file: &[u8]) -> AuditLog {
        match decode(file) {
            Ok(log) => log,
            Err(e) => panic!("decoding what was written: {e}"),
        }
    }

    fn types(log: &AuditLog) -> Vec<(i32, Option<u64>)> {
        log.messages
            .iter()
            .map(|m| (m.type_id, m.channel_id))
            .collect()
    }

    #[test]
    fn a_written_connection_decodes_to_containersshs_messages() {
        let log = must_decode(&write_all(&connection(), &STDIN_STDOUT));
        assert_eq!((log.version, log.truncated), (2, false));
        assert_eq!(
            types(&log),
            [
                (type_id::CONNECT, None),
                (type_id::AUTH_PASSWORD, None),
                (type_id::AUTH_PASSWORD_FAILED, None),
                (type_id::AUTH_PUBKEY, None),
                (type_id::AUTH_PUBKEY_SUCCESSFUL, None),
                (type_id::HANDSHAKE_SUCCESSFUL, None),
                (type_id::NEW_CHANNEL_SUCCESSFUL, Some(0)),
                (type_id::CHANNEL_REQUEST_PTY, Some(0)),
                (type_id::CHANNEL_REQUEST_SHELL, Some(0)),
                (type_id::IO, Some(0)),
                (type_id::IO, Some(0)),
                (type_id::CHANNEL_REQUEST_WINDOW, Some(0)),
                (type_id::CHANNEL_REQUEST_SIGNAL, Some(0)),
                (type_id::IO, Some(0)),
                (type_id::NEW_FORWARD_CHANNEL, Some(1)),
                (type_id::NEW_CHANNEL_SUCCESSFUL, Some(1)),
                (type_id::EXIT, Some(0)),
                (type_id::CLOSE, Some(0)),
                (type_id::CLOSE, Some(1)),
                (type_id::DISCONNECT, None),
            ]
        );
        let m = &log.messages;
        assert!(m.iter().all(|m| m.connection_id == "c0ffee"));
        assert_eq!(m[0].timestamp, nanos(0));
        assert_eq!(m[0].text("remoteAddr"), Some("192.0.2.7"));
        assert_eq!(m[0].text("country"), Some("XX"));
        assert_eq!(m[2].text("username"), Some("alice"));
        assert_eq!(m[2].bytes("password"), Some(&b""[..]));
        assert_eq!(m[4].timestamp, nanos(20));
        assert_eq!(m[5].text("username"), Some("alice-admin"));
        assert_eq!(m[6].text("channelType"), Some("session"));
        assert_eq!(m[7].unsigned("requestId"), Some(0));
        assert_eq!(m[8].unsigned("requestId"), Some(1));
        assert_eq!(
            (m[9].unsigned("stream"), m[9].bytes("data")),
            (Some(0), Some(&b"ls\r"[..]))
        );
        assert_eq!(m[9].timestamp, nanos(60));
        assert_eq!(
            (m[10].unsigned("stream"), m[10].bytes("data")),
            (Some(1), Some(&b"file\r\n"[..]))
        );
        assert_eq!(
            (m[11].unsigned("columns"), m[11].unsigned("rows")),
            (Some(100), Some(40))
        );
        assert_eq!(m[11].unsigned("requestId"), Some(2));
        assert_eq!(m[12].text("signal"), Some("INT"));
        assert_eq!(m[13].bytes("data"), Some(&b"\x00\xff binary"[..]));
        assert_eq!(m[14].text("HostToConnect"), Some("db"));
        assert_eq!(m[14].unsigned("PortToConnect"), Some(5432));
        assert_eq!(m[15].text("channelType"), Some("direct-tcpip"));
        assert_eq!(m[16].unsigned("exitStatus"), Some(3));
        assert_eq!(m[19].timestamp, nanos(150));
    }

    #[test]
    fn only_the_streams_intercept_names_are_written() {
        let everything = AuditIntercept {
            stdin: true,
            stdout: true,
            stderr: true,
            passwords: true,
            forwarding: true,
        };
        let streams = |intercept: &AuditIntercept| -> Vec<(Option<u64>, Option<u64>, Vec<u8>)> {
            must_decode(&write_all(&connection(), intercept))
                .messages
                .iter()
                .filter(|m| m.type_id == type_id::IO)
                .map(|m| {
                    (
                        m.channel_id,
                        m.unsigned("stream"),
                        m.bytes("data").unwrap_or_default().to_vec(),
                    )
                })
                .collect()
        };
        assert_eq!(
            streams(&everything),
            [
                (Some(0), Some(0), b"ls\r".to_vec()),
                (Some(0), Some(1), b"file\r\n".to_vec()),
                (Some(0), Some(2), b"not recorded".to_vec()),
                (Some(0), Some(1), b"\x00\xff binary".to_vec()),
                (Some(1), Some(0), b"SELECT 1".to_vec()),
                (Some(1), Some(1), b"1".to_vec()),
            ]
        );
        let forwarding_only = AuditIntercept {
            forwarding: true,
            ..AuditIntercept::default()
        };
        assert_eq!(
            streams(&forwarding_only),
            [
                (Some(1), Some(0), b"SELECT 1".to_vec()),
                (Some(1), Some(1), b"1".to_vec())
            ]
        );
        assert!(streams(&AuditIntercept::default()).is_empty());
    }

    #[test]
    fn every_message_is_readable_as_soon_as_it_is_written() {
        let items = connection();
        let mut writer = match BinaryWriter::new(Vec::new(), "c0ffee") {
            Ok(writer) => writer,
            Err(e) => panic!("starting: {e}"),
        };
        let whole = must_decode(&write_all(&items, &STDIN_STDOUT)).messages;
        let mut seen = 0;
        for item in &items {
            if let Err(e) = writer.write(item, &STDIN_STDOUT) {
                panic!("writing: {e}");
            }
            // What a crash right now would leave behind.
            let log = must_decode(writer.get_ref());
            assert!(log.messages.len() >= seen);
            seen = log.messages.len();
            assert_eq!(log.messages[..], whole[..seen]);
            assert_eq!(log.truncated, seen < whole.len());
        }
        assert_eq!(seen, whole.len());
    }

    #[test]
    fn a_file_cut_inside_a_message_decodes_up_to_the_one_before() {
        let file = write_all(&connection(), &STDIN_STDOUT);
        let whole = must_decode(&file).messages;
        let log = must_decode(&file[..file.len() - 30]);
        assert!(log.truncated);
        assert!(!log.messages.is_empty() && log.messages.len() < whole.len());
        assert_eq!(log.messages[..], whole[..log.messages.len()]);
    }

    #[test]
    fn a_log_finished_without_its_close_is_truncated() {
        let mut items = connection();
        items.pop();
        let log = must_decode(&write_all(&items, &STDIN_STDOUT));
        assert!(log.truncated);
        let last = log.messages.last().map(|m| (m.type_id, m.channel_id));
        assert_eq!(last, Some((type_id::CLOSE, Some(0))));
    }

    #[test]
    fn nothing_is_written_after_the_disconnect() {
        let mut items = connection();
        items.push(event(200, None, EventKind::Connected));
        let log = must_decode(&write_all(&items, &STDIN_STDOUT));
        assert_eq!(
            log.messages.last().map(|m| m.type_id),
            Some(type_id::DISCONNECT)
        );
        assert_eq!(log.messages.len(), 20);
    }

    #[test]
    fn the_file_starts_as_containersshs_do() {
        let file = write_all(&[], &STDIN_STDOUT);
        assert_eq!(&file[..21], b"ContainerSSH-Auditlog");
        assert_eq!(&file[21..32], &[0u8; 11]);
        assert_eq!(&file[32..40], &2u64.to_le_bytes());
        assert_eq!(&file[40..50], &GZIP_HEADER);
    }

    #[test]
    fn logins_map_to_containersshs_attempts_and_outcomes() {
        let cause: sshpod_core::event::Cause = Arc::new(io::Error::other("webhook down"));
        let items = [
            event(
                0,
                None,
                EventKind::LoginRefused {
                    credential: sshpod_core::Credential::default(),
                    user: "bob".to_owned(),
                    method: AuthMethod::KeyboardInteractive,
                    reason: LoginRefusal::NotAccepted,
                },
            ),
            event(
                1,
                None,
                EventKind::LoginUnavailable {
                    user: "bob".to_owned(),
                    method: AuthMethod::Password,
                    cause,
                },
            ),
            event(
                2,
                None,
                EventKind::LoginRefused {
                    credential: sshpod_core::Credential::default(),
                    user: "bob".to_owned(),
                    method: AuthMethod::Certificate,
                    reason: LoginRefusal::NotAuthorized,
                },
            ),
            event(3, None, EventKind::LoginGraceOver),
            event(
                4,
                None,
                EventKind::LoginAccepted {
                    credential: sshpod_core::Credential::default(),
                    user: "bob".to_owned(),
                    method: AuthMethod::KeyboardInteractive,
                    authenticated: "bob".to_owned(),
                    metadata: Vec::new(),
                },
            ),
        ];
        let log = must_decode(&write_all(&items, &STDIN_STDOUT));
        assert_eq!(
            types(&log),
            [
                (type_id::AUTH_KEYBOARD_INTERACTIVE_FAILED, None),
                (type_id::AUTH_PASSWORD, None),
                (type_id::AUTH_PASSWORD_BACKEND_ERROR, None),
                (type_id::AUTH_PUBKEY, None),
                (type_id::AUTH_PUBKEY_FAILED, None),
                (type_id::HANDSHAKE_FAILED, None),
                (type_id::HANDSHAKE_SUCCESSFUL, None),
            ]
        );
        let m = &log.messages;
        assert_eq!(m[0].text("Username"), Some("bob"));
        assert_eq!(m[2].text("reason"), Some("webhook down"));
        assert_eq!(m[4].text("key"), Some(""));
        assert_eq!(m[5].text("reason"), Some("login grace time over"));
    }

    #[test]
    fn commands_refusals_and_signals_map_to_their_requests() {
        let items = [
            event(
                0,
                Some(2),
                EventKind::ChannelOpened {
                    kind: ChannelKind::Session,
                },
            ),
            event(
                1,
                Some(2),
                EventKind::RequestRefused {
                    reason: RequestRefusal::EnvNotAccepted("SECRET".to_owned()),
                },
            ),
            event(
                2,
                Some(2),
                EventKind::ProcessStarting {
                    command: Command::Exec("uptime".to_owned()),
                    tty: false,
                },
            ),
            event(
                3,
                Some(2),
                EventKind::ProcessExited {
                    status: ExitStatus::Signal(Signal::Term),
                },
            ),
            event(
                4,
                Some(4),
                EventKind::ChannelRefused {
                    kind: ChannelKind::Session,
                    reason: ChannelRefusal::MaxSessions(2),
                },
            ),
            event(
                5,
                Some(6),
                EventKind::ChannelOpened {
                    kind: ChannelKind::Session,
                },
            ),
            event(
                6,
                Some(6),
                EventKind::ProcessStarting {
                    command: Command::Subsystem("sftp".to_owned()),
                    tty: false,
                },
            ),
            event(7, None, EventKind::Closed),
        ];
        let log = must_decode(&write_all(&items, &STDIN_STDOUT));
        assert_eq!(
            types(&log),
            [
                (type_id::NEW_CHANNEL_SUCCESSFUL, Some(2)),
                (type_id::REQUEST_FAILED, Some(2)),
                (type_id::CHANNEL_REQUEST_EXEC, Some(2)),
                (type_id::EXIT_SIGNAL, Some(2)),
                (type_id::CLOSE, Some(2)),
                (type_id::NEW_CHANNEL_FAILED, Some(4)),
                (type_id::NEW_CHANNEL_SUCCESSFUL, Some(6)),
                (type_id::CHANNEL_REQUEST_SUBSYSTEM, Some(6)),
                (type_id::CLOSE, Some(6)),
                (type_id::DISCONNECT, None),
            ]
        );
        let m = &log.messages;
        assert_eq!(m[1].unsigned("requestId"), Some(0));
        assert!(m[1].text("reason").is_some_and(|r| r.contains("SECRET")));
        assert_eq!(
            (m[2].unsigned("requestId"), m[2].text("program")),
            (Some(1), Some("uptime"))
        );
        assert_eq!(m[3].text("signal"), Some("TERM"));
        assert_eq!(
            m[5].text("reason"),
            Some("ssh.maxSessions (2) sessions are open")
        );
        assert_eq!(m[7].text("subsystem"), Some("sftp"));
    }
}
