//! A recording in sshpod's own format, written as ContainerSSH's binary audit log version 2
//! (`sshpod audit export --format containerssh`), with the messages the live
//! [`BinaryWriter`](super::BinaryWriter) writes for the same connection: both drive the same
//! [`LogWriter`].
//!
//! The event log says what happened and when; the data comes from the channels' files. A
//! terminal session's output and input are its cast's `"o"` and `"i"` events, timed from the
//! cast header's `timestamp` (the whole second its times count from), and written in time
//! order among the log's messages once the line that started its process has been. A session without a terminal (and a forward) has raw
//! `.stdin`, `.stdout` and `.stderr` files without times: each is written as `io` messages of
//! at most [`CHUNK`] bytes just before the channel's exit (or its close), timed when the file
//! was closed (its `recording-file` line) or at that exit, whichever is earlier.
//!
//! Where the export cannot say what the live writer says: a cast holds text, so terminal bytes
//! that are not UTF-8 arrive as replacement characters, and error output arrives as output; a
//! raw stream's bytes come as one block, not as the chunks the client sent; a refusal's reason
//! is worded as the event log words it. A log cut short (no `closed` line) is written as far
//! as it goes, so ContainerSSH's readers see a truncated log, as they would of the live one.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Write};
use std::net::SocketAddr;

use serde_json::{Map, Value};
use sshpod_core::{AuthMethod, ChannelKind, Command, TerminalSize};

use super::log_writer::{Exit, LogWriter, Outcome, Presented};
use super::message::unix_nanos;
use crate::asciicast::{self, CastError, Code};
use crate::log_lines::{self, LineError, Members};

/// The most bytes of a raw stream one `io` message carries.
pub const CHUNK: usize = 64 * 1024;

/// What an export wrote.
#[derive(Debug)]
#[non_exhaustive]
pub struct Exported<W> {
    /// The output, holding the whole log.
    pub out: W,
    /// The number of the event log's last line, when a crash cut it short: it is left out.
    pub cut_short_line: Option<u64>,
    /// Cast files whose last event was cut short by a crash: it is left out.
    pub cut_short_casts: Vec<String>,
    /// Whether the event log has the connection's close: without it the export ends where the
    /// log does, without a `disconnect`, and ContainerSSH's readers see it truncated.
    pub complete: bool,
}

/// Why a recording cannot be exported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// A line of the event log (not the last one cut short) cannot be read: the log is damaged.
    #[error("line {line} of the event log cannot be read")]
    Line {
        /// 1-based line number.
        line: u64,
        /// What is wrong with it.
        #[source]
        source: LineError,
    },
    /// A cast file cannot be read.
    #[error("{file} cannot be read")]
    Cast {
        /// The file's name within the recording.
        file: String,
        /// What is wrong with it.
        #[source]
        source: CastError,
    },
    /// The output could not be written.
    #[error("writing the audit log")]
    Write(#[source] io::Error),
}

/// Writes recording `connection` (format sshpod: its event log `log`, and its data files by
/// name, `channel-0.cast`, `channel-1.stdout`, ...; other names are ignored) to `out` as
/// ContainerSSH's binary audit log version 2.
pub fn from_sshpod<W: Write>(
    connection: &str,
    log: &[u8],
    files: &BTreeMap<String, Vec<u8>>,
    out: W,
) -> Result<Exported<W>, ExportError> {
    let mut cut_short_line = None;
    let mut lines = Vec::new();
    for line in log_lines::lines(log) {
        match line.content {
            Ok(members) => lines.push(members),
            Err(LineError::CutShort) => cut_short_line = Some(line.number),
            Err(source) => {
                return Err(ExportError::Line {
                    line: line.number,
                    source,
                })
            }
        }
    }
    let mut cut_short_casts = Vec::new();
    let mut channels = read_data(files, &mut cut_short_casts)?;
    for line in &lines {
        if line.kind() != Some("recording-file") {
            continue;
        }
        let (Some(name), Some(at)) = (line.text("file"), line.at()) else {
            continue;
        };
        if let Some((id, DataFile::Stream(_))) = data_file(name) {
            if let Some(channel) = channels.get_mut(&id) {
                let at = unix_nanos(at);
                channel.streams_closed = Some(channel.streams_closed.map_or(at, |t| t.min(at)));
            }
        }
    }
    let mut export = Export {
        log: LogWriter::new(out, connection).map_err(ExportError::Write)?,
        channels,
        last_at: 0,
    };
    for line in &lines {
        export.line(line).map_err(ExportError::Write)?;
    }
    let at = export.last_at;
    export.flush_all(at).map_err(ExportError::Write)?;
    let complete = export.log.disconnected();
    let out = export.log.finish().map_err(ExportError::Write)?;
    Ok(Exported {
        out,
        cut_short_line,
        cut_short_casts,
        complete,
    })
}

/// Which of a channel's data files a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataFile {
    /// `channel-<n>.cast`.
    Cast,
    /// `channel-<n>.stdin|stdout|stderr`: stream 0, 1 or 2.
    Stream(u8),
}

/// The channel and kind of a data file's name.
fn data_file(name: &str) -> Option<(u32, DataFile)> {
    let (channel, extension) = name.strip_prefix("channel-")?.split_once('.')?;
    let kind = match extension {
        "cast" => DataFile::Cast,
        "stdin" => DataFile::Stream(0),
        "stdout" => DataFile::Stream(1),
        "stderr" => DataFile::Stream(2),
        _ => return None,
    };
    if channel.is_empty() || !channel.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((channel.parse().ok()?, kind))
}

/// A channel's recorded data, written as the export reaches it.
#[derive(Debug, Default)]
struct ChannelData<'a> {
    /// The cast's events not written yet: nanoseconds from the cast's start, stream, bytes.
    cast: VecDeque<(i64, u8, Vec<u8>)>,
    /// When the cast started, by its header (whole seconds), in nanoseconds.
    cast_header_start: Option<i64>,
    /// When the cast's times start (its header's second), set once the line that started the
    /// process is reached: its events are written from then on.
    cast_start: Option<i64>,
    /// The raw streams not written yet.
    streams: [Option<&'a [u8]>; 3],
    /// When the first raw stream's file was closed.
    streams_closed: Option<i64>,
}

/// Every channel's data in `files`.
fn read_data<'a>(
    files: &'a BTreeMap<String, Vec<u8>>,
    cut_short: &mut Vec<String>,
) -> Result<BTreeMap<u32, ChannelData<'a>>, ExportError> {
    let mut channels: BTreeMap<u32, ChannelData<'a>> = BTreeMap::new();
    for (name, bytes) in files {
        let Some((id, kind)) = data_file(name) else {
            continue;
        };
        let channel = channels.entry(id).or_default();
        match kind {
            DataFile::Stream(stream) => channel.streams[usize::from(stream)] = Some(bytes),
            DataFile::Cast => {
                let cast = asciicast::parse(bytes).map_err(|source| ExportError::Cast {
                    file: name.clone(),
                    source,
                })?;
                if cast.cut_short {
                    cut_short.push(name.clone());
                }
                channel.cast_header_start = cast
                    .header
                    .timestamp
                    .and_then(|seconds| i64::try_from(seconds).ok())
                    .map(|seconds| seconds.saturating_mul(1_000_000_000));
                channel.cast = cast
                    .events
                    .into_iter()
                    .filter_map(|event| {
                        let stream = match event.code {
                            Code::Input => 0,
                            Code::Output => 1,
                            _ => return None,
                        };
                        // The parser keeps only finite times from zero up; `as` saturates.
                        let offset = (event.time * 1e9).round() as i64;
                        let data = event.data.into_bytes();
                        (!data.is_empty()).then_some((offset, stream, data))
                    })
                    .collect();
            }
        }
    }
    Ok(channels)
}

/// The export in progress.
struct Export<'a, W: Write> {
    log: LogWriter<W>,
    channels: BTreeMap<u32, ChannelData<'a>>,
    /// The time of the last line read, in nanoseconds.
    last_at: i64,
}

impl<W: Write> Export<'_, W> {
    /// Writes what one line of the event log maps to, after the terminal data recorded up to
    /// its time.
    fn line(&mut self, line: &Map<String, Value>) -> io::Result<()> {
        let at = line.at().map_or(self.last_at, unix_nanos);
        self.last_at = at;
        self.flush_casts_until(at)?;
        let channel = line.channel();
        let text = |name: &str| line.text(name).unwrap_or_default();
        let log = &mut self.log;
        match (line.kind().unwrap_or_default(), channel) {
            ("connected", _) => {
                let remote = text("remote");
                let ip = remote
                    .parse::<SocketAddr>()
                    .map_or_else(|_| remote.to_owned(), |addr| addr.ip().to_string());
                log.connected(at, &ip)
            }
            ("login-refused", _) => {
                let Some(method) = auth_method(text("method")) else {
                    return Ok(());
                };
                log.login(at, text("user"), method, &presented(line), Outcome::Refused)
            }
            ("login-accepted", _) => {
                let Some(method) = auth_method(text("method")) else {
                    return Ok(());
                };
                let authenticated = line.text("authenticated").unwrap_or(text("user"));
                let outcome = Outcome::Accepted { authenticated };
                log.login(at, text("user"), method, &presented(line), outcome)
            }
            ("login-unavailable", _) => {
                let Some(method) = auth_method(text("method")) else {
                    return Ok(());
                };
                let outcome = Outcome::Unavailable {
                    reason: text("error"),
                };
                log.login(at, text("user"), method, &Presented::default(), outcome)
            }
            ("handshake-timed-out", _) => log.handshake_timed_out(at),
            ("login-grace-over", _) => log.login_grace_over(at),
            ("channel-opened", Some(id)) => log.channel_opened(at, id, &channel_kind(line)),
            ("channel-refused", _) => {
                log.channel_refused(at, channel, &channel_kind(line), text("reason"))
            }
            ("request-refused", Some(id)) => log.request_refused(at, id, text("reason")),
            ("pty", Some(id)) => log.pty(at, id, text("term"), Some(size(line))),
            ("env", Some(id)) => log.env(at, id, text("name"), text("value")),
            ("process-starting", Some(id)) => {
                let Some(command) = command(line.get("command")) else {
                    return Ok(());
                };
                let tty = line.get("tty").and_then(Value::as_bool).unwrap_or(false);
                log.process_starting(at, id, &command, tty)?;
                if tty {
                    if let Some(data) = self.channels.get_mut(&id) {
                        // A cast's times count from its header's whole second.
                        let start = data.cast_header_start.unwrap_or(at);
                        data.cast_start.get_or_insert(start);
                    }
                }
                Ok(())
            }
            ("process-failed", Some(id)) => {
                self.flush_channel(id, at)?;
                self.log.process_failed(at, id, text("error"))
            }
            ("exit-status-unknown", Some(id)) => self.flush_channel(id, at),
            ("process-exited", Some(id)) => {
                self.flush_channel(id, at)?;
                let code = line
                    .get("exitStatus")
                    .and_then(Value::as_u64)
                    .and_then(|code| u32::try_from(code).ok());
                let exit = match (code, line.text("signal")) {
                    (Some(code), _) => Exit::Code(code),
                    (None, Some(signal)) => Exit::Signal(signal),
                    (None, None) => return Ok(()),
                };
                self.log.process_exited(at, id, exit)
            }
            ("resize", Some(id)) => log.window(at, id, size(line)),
            ("signal", Some(id)) => log.signal(at, id, text("signal")),
            ("closed", _) => {
                self.flush_all(at)?;
                self.log.closed(at)
            }
            // What ContainerSSH has no message for (certificates, containers, file transfers,
            // the recording's own lines), as the live writer leaves it out.
            _ => Ok(()),
        }
    }

    /// Writes the started casts' events recorded up to `at`, in time order across channels
    /// (each cast's events in its own order).
    fn flush_casts_until(&mut self, at: i64) -> io::Result<()> {
        loop {
            let next = self
                .channels
                .iter()
                .filter_map(|(id, data)| {
                    let start = data.cast_start?;
                    let (offset, _, _) = data.cast.front()?;
                    Some((start.saturating_add(*offset), *id))
                })
                .filter(|(time, _)| *time <= at)
                .min();
            let Some((time, id)) = next else {
                return Ok(());
            };
            let event = self
                .channels
                .get_mut(&id)
                .and_then(|data| data.cast.pop_front());
            if let Some((_, stream, bytes)) = event {
                self.log.io(time, id, stream, &bytes)?;
            }
        }
    }

    /// Writes the rest of a channel's data, before its exit or close at `at`.
    fn flush_channel(&mut self, id: u32, at: i64) -> io::Result<()> {
        let Some(data) = self.channels.get_mut(&id) else {
            return Ok(());
        };
        // A cast whose process-starting line is missing is timed by its header.
        let start = data.cast_start.or(data.cast_header_start).unwrap_or(at);
        let cast = std::mem::take(&mut data.cast);
        let streams = std::mem::take(&mut data.streams);
        let streams_at = data.streams_closed.map_or(at, |closed| closed.min(at));
        for (offset, stream, bytes) in cast {
            self.log
                .io(start.saturating_add(offset), id, stream, &bytes)?;
        }
        for (stream, bytes) in (0u8..).zip(streams) {
            for chunk in bytes.unwrap_or_default().chunks(CHUNK) {
                self.log.io(streams_at, id, stream, chunk)?;
            }
        }
        Ok(())
    }

    /// Writes every channel's data not written yet: at the connection's close, or where a
    /// log cut short ends.
    fn flush_all(&mut self, at: i64) -> io::Result<()> {
        self.flush_casts_until(i64::MAX)?;
        let ids: Vec<u32> = self.channels.keys().copied().collect();
        for id in ids {
            self.flush_channel(id, at)?;
        }
        Ok(())
    }
}

/// A login line's method, by the name the log gives it.
fn auth_method(name: &str) -> Option<AuthMethod> {
    [
        AuthMethod::Password,
        AuthMethod::PublicKey,
        AuthMethod::Certificate,
        AuthMethod::KeyboardInteractive,
    ]
    .into_iter()
    .find(|method| method.as_str() == name)
}

/// What a login line says was presented: the password only when it was intercepted (the line
/// has it only then), the key's fingerprint.
fn presented(line: &Map<String, Value>) -> Presented {
    Presented {
        password: line
            .text("password")
            .map(|p| p.as_bytes().to_vec())
            .unwrap_or_default(),
        key: line.text("key").unwrap_or_default().to_owned(),
    }
}

/// A channel line's kind: `direct-tcpip` with `host` and `port`, else a session.
fn channel_kind(line: &Map<String, Value>) -> ChannelKind {
    match line.text("channelKind") {
        Some("direct-tcpip") => ChannelKind::DirectTcpip {
            host: line.text("host").unwrap_or_default().to_owned(),
            port: number(line, "port"),
        },
        _ => ChannelKind::Session,
    }
}

/// A `pty` or `resize` line's size.
fn size(line: &Map<String, Value>) -> TerminalSize {
    TerminalSize {
        cols: number(line, "cols"),
        rows: number(line, "rows"),
    }
}

/// A small number member, 0 when missing or out of range.
fn number(line: &Map<String, Value>, name: &str) -> u16 {
    line.get(name)
        .and_then(Value::as_u64)
        .and_then(|n| u16::try_from(n).ok())
        .unwrap_or(0)
}

/// A `process-starting` line's command: `"shell"`, `{"exec": line}` or `{"subsystem": name}`.
fn command(value: Option<&Value>) -> Option<Command> {
    match value? {
        Value::String(shell) if shell == "shell" => Some(Command::Shell),
        Value::Object(command) => {
            if let Some(line) = command.get("exec").and_then(Value::as_str) {
                Some(Command::Exec(line.to_owned()))
            } else {
                let name = command.get("subsystem").and_then(Value::as_str)?;
                Some(Command::Subsystem(name.to_owned()))
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use sshpod_config::{AuditIntercept, Secret};
    use sshpod_core::{ChannelRefusal, Credential, EventKind, ExitStatus, LoginRefusal};
    use sshpod_core::{RequestRefusal, Signal};

    use super::super::decode::{decode, AuditLog};
    use super::super::encode::BinaryWriter;
    use super::super::message::{type_id, Message};
    use super::super::test_items::{at, event, nanos, record, tapped};
    use super::*;
    use crate::item::{Item, Record};
    use crate::sshpod_format::{SshpodWriter, EVENTS};

    const ID: &str = "c0ffee00000000000000000000000001";

    /// Everything intercepted.
    const EVERYTHING: AuditIntercept = AuditIntercept {
        stdin: true,
        stdout: true,
        stderr: true,
        passwords: true,
        forwarding: true,
    };

    /// Terminal output only (a cast always has it).
    const STDOUT: AuditIntercept = AuditIntercept {
        stdin: false,
        stdout: true,
        stderr: false,
        passwords: false,
        forwarding: false,
    };

    /// Output of the session on channel 2, longer than one `io` message of the export.
    fn long_output() -> Vec<u8> {
        (0..CHUNK + 4464).map(|i| (i % 251) as u8).collect()
    }

    /// A connection: a refused password, an accepted key, a terminal session (pty, env,
    /// input, output, a resize, a signal), a command without a terminal with binary streams
    /// and a refused `env`, a refused channel, a forward with bytes, the exits, the end. The
    /// data of channels without a terminal comes just before their end, where the sshpod
    /// format puts it.
    fn connection() -> Vec<Item> {
        let forward = ChannelKind::DirectTcpip {
            host: "db".to_owned(),
            port: 5432,
        };
        let password = Credential {
            password: Some(Secret::new("hunter2".to_owned())),
            ..Credential::default()
        };
        let key = Credential {
            key: Some("SHA256:q2Jm8pV7o1NeVgfLZ0ArQHlsjFHKhpQN1fV5J1GJ6tI".to_owned()),
            ..Credential::default()
        };
        let session = || EventKind::ChannelOpened {
            kind: ChannelKind::Session,
        };
        vec![
            event(0, None, EventKind::Connected),
            event(
                10,
                None,
                EventKind::LoginRefused {
                    credential: password,
                    user: "alice".to_owned(),
                    method: AuthMethod::Password,
                    reason: LoginRefusal::NotAccepted,
                },
            ),
            event(
                20,
                None,
                EventKind::LoginAccepted {
                    credential: key,
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
            event(40, Some(0), session()),
            event(
                45,
                Some(0),
                EventKind::PtyGranted {
                    term: "xterm-256color".to_owned(),
                    size: TerminalSize { cols: 80, rows: 24 },
                },
            ),
            event(
                47,
                Some(0),
                EventKind::EnvAccepted {
                    name: "LANG".to_owned(),
                    value: "C.UTF-8".to_owned(),
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
            record(70, 0, Record::Output("file ☃\r\n".as_bytes().to_vec())),
            record(
                80,
                0,
                Record::Resize(TerminalSize {
                    cols: 100,
                    rows: 40,
                }),
            ),
            record(90, 0, Record::Signal(Signal::Int)),
            record(95, 0, Record::Output(b"$ ".to_vec())),
            tapped(2, ChannelKind::Session),
            event(100, Some(2), session()),
            event(
                101,
                Some(2),
                EventKind::RequestRefused {
                    reason: RequestRefusal::EnvNotAccepted("SECRET".to_owned()),
                },
            ),
            event(
                102,
                Some(2),
                EventKind::ProcessStarting {
                    command: Command::Exec("cat; echo err >&2".to_owned()),
                    tty: false,
                },
            ),
            record(103, 2, Record::Input(b"\x00\xff binary".to_vec())),
            record(104, 2, Record::Output(long_output())),
            record(105, 2, Record::ErrorOutput(b"err\n".to_vec())),
            event(
                110,
                Some(2),
                EventKind::ProcessExited {
                    status: ExitStatus::Signal(Signal::Term),
                },
            ),
            record(110, 2, Record::Exit(ExitStatus::Signal(Signal::Term))),
            event(
                115,
                Some(4),
                EventKind::ChannelRefused {
                    kind: ChannelKind::Session,
                    reason: ChannelRefusal::MaxSessions(2),
                },
            ),
            tapped(1, forward.clone()),
            event(120, Some(1), EventKind::ChannelOpened { kind: forward }),
            event(
                130,
                Some(0),
                EventKind::ProcessExited {
                    status: ExitStatus::Code(3),
                },
            ),
            record(130, 0, Record::Exit(ExitStatus::Code(3))),
            event(140, None, EventKind::SessionEnded { reason: None }),
            record(141, 1, Record::Input(b"SELECT 1".to_vec())),
            record(142, 1, Record::Output(b"1".to_vec())),
            event(150, None, EventKind::Closed),
        ]
    }

    /// What the live writer writes for `items`.
    fn live(items: &[Item], intercept: &AuditIntercept) -> AuditLog {
        let written = BinaryWriter::new(Vec::new(), ID).and_then(|mut writer| {
            for item in items {
                writer.write(item, intercept)?;
            }
            writer.finish()
        });
        match written.map(|file| decode(&file)) {
            Ok(Ok(log)) => log,
            Ok(Err(e)) => panic!("decoding the live log: {e}"),
            Err(e) => panic!("writing the live log: {e}"),
        }
    }

    /// Records `items` in sshpod's format under `root` (finished at 160 ms when `finish`).
    fn record_sshpod(root: &Path, items: &[Item], intercept: AuditIntercept, finish: bool) {
        let written = SshpodWriter::create(root, ID, intercept).and_then(|mut writer| {
            for item in items {
                writer.write(item)?;
            }
            if finish {
                writer.finish(at(160))?;
            }
            Ok(())
        });
        if let Err(e) = written {
            panic!("recording: {e}");
        }
    }

    /// The recording's event log and data files.
    fn read_recording(root: &Path) -> (Vec<u8>, BTreeMap<String, Vec<u8>>) {
        let dir = root.join(ID);
        let mut log = Vec::new();
        let mut files = BTreeMap::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => panic!("{}: {e}", dir.display()),
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let bytes = std::fs::read(entry.path()).unwrap_or_default();
            if name == EVENTS {
                log = bytes;
            } else {
                files.insert(name, bytes);
            }
        }
        (log, files)
    }

    fn export(log: &[u8], files: &BTreeMap<String, Vec<u8>>) -> (Exported<Vec<u8>>, AuditLog) {
        let exported = match from_sshpod(ID, log, files, Vec::new()) {
            Ok(exported) => exported,
            Err(e) => panic!("exporting: {e}"),
        };
        match decode(&exported.out) {
            Ok(decoded) => (exported, decoded),
            Err(e) => panic!("decoding the export: {e}"),
        }
    }

    fn temporary() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("a temporary directory: {e}"))
    }

    /// Messages as compared: type, channel and payload, with a run of `io` messages of one
    /// channel's stream as one (the export cannot know how a raw stream was chunked) and
    /// without the refusals' reasons (worded as the event log words them).
    fn comparable(messages: &[Message]) -> Vec<(i32, Option<u64>, serde_json::Value)> {
        let mut out: Vec<(i32, Option<u64>, serde_json::Value)> = Vec::new();
        let mut data: Vec<u8> = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            if m.type_id == type_id::IO {
                data.extend_from_slice(m.bytes("data").unwrap_or_default());
                let next = messages.get(i + 1);
                let continues = next.is_some_and(|n| {
                    n.type_id == type_id::IO
                        && n.channel_id == m.channel_id
                        && n.unsigned("stream") == m.unsigned("stream")
                });
                if !continues {
                    let payload = serde_json::json!({
                        "stream": m.unsigned("stream"),
                        "data": String::from_utf8_lossy(&std::mem::take(&mut data)),
                    });
                    out.push((m.type_id, m.channel_id, payload));
                }
                continue;
            }
            let mut payload = m.to_json()["payload"].clone();
            if matches!(
                m.type_id,
                type_id::NEW_CHANNEL_FAILED | type_id::REQUEST_FAILED
            ) {
                if let Some(payload) = payload.as_object_mut() {
                    payload.remove("reason");
                }
            }
            out.push((m.type_id, m.channel_id, payload));
        }
        out
    }

    /// The times of the messages, but those of raw streams' data (channels 1 and 2), which
    /// the export times at the channel's end.
    fn known_times(messages: &[Message]) -> Vec<(i32, i64)> {
        messages
            .iter()
            .filter(|m| !(m.type_id == type_id::IO && matches!(m.channel_id, Some(1 | 2))))
            .map(|m| (m.type_id, m.timestamp))
            .collect()
    }

    #[test]
    fn an_export_has_the_messages_the_live_writer_writes_for_the_same_connection() {
        for intercept in [EVERYTHING, STDOUT] {
            let root = temporary();
            let items = connection();
            record_sshpod(root.path(), &items, intercept, true);
            let (log, files) = read_recording(root.path());
            let (exported, ours) = export(&log, &files);
            let theirs = live(&items, &intercept);
            assert_eq!(comparable(&ours.messages), comparable(&theirs.messages));
            assert_eq!(known_times(&ours.messages), known_times(&theirs.messages));
            assert_eq!((ours.version, ours.truncated), (2, false));
            assert!(exported.complete);
            assert_eq!(exported.cut_short_line, None);
            assert!(exported.cut_short_casts.is_empty());
            assert!(ours.messages.iter().all(|m| m.connection_id == ID));
        }
    }

    #[test]
    fn what_the_export_knows_only_from_the_log_is_as_the_log_says_it() {
        let root = temporary();
        record_sshpod(root.path(), &connection(), EVERYTHING, true);
        let (log, files) = read_recording(root.path());
        let (_, ours) = export(&log, &files);
        let m = &ours.messages;
        let first = |type_id: i32| match m.iter().find(|m| m.type_id == type_id) {
            Some(found) => found,
            None => panic!("no message of type {type_id}"),
        };
        // The intercepted password, and the key's fingerprint.
        assert_eq!(
            first(type_id::AUTH_PASSWORD).bytes("password"),
            Some(&b"hunter2"[..])
        );
        assert_eq!(
            first(type_id::AUTH_PUBKEY_SUCCESSFUL).text("key"),
            Some("SHA256:q2Jm8pV7o1NeVgfLZ0ArQHlsjFHKhpQN1fV5J1GJ6tI")
        );
        assert_eq!(
            first(type_id::CONNECT).text("remoteAddr"),
            Some("192.0.2.7")
        );
        // Refusals say what the log says.
        assert!(first(type_id::REQUEST_FAILED)
            .text("reason")
            .is_some_and(|r| r.contains("SECRET")));
        assert_eq!(
            first(type_id::NEW_CHANNEL_FAILED).text("reason"),
            Some("ssh.maxSessions (2) are open")
        );
        // Terminal data at its recorded time; raw streams whole, in chunks, at their end.
        let io: Vec<(Option<u64>, Option<u64>, usize, i64)> = m
            .iter()
            .filter(|m| m.type_id == type_id::IO)
            .map(|m| {
                let len = m.bytes("data").map_or(0, <[u8]>::len);
                (m.channel_id, m.unsigned("stream"), len, m.timestamp)
            })
            .collect();
        assert_eq!(
            io,
            [
                (Some(0), Some(0), 3, nanos(60)),
                (Some(0), Some(1), "file ☃\r\n".len(), nanos(70)),
                (Some(0), Some(1), 2, nanos(95)),
                (Some(2), Some(0), 9, nanos(110)),
                (Some(2), Some(1), CHUNK, nanos(110)),
                (Some(2), Some(1), 4464, nanos(110)),
                (Some(2), Some(2), 4, nanos(110)),
                (Some(1), Some(0), 8, nanos(150)),
                (Some(1), Some(1), 1, nanos(150)),
            ]
        );
        let binary = m
            .iter()
            .find(|m| m.type_id == type_id::IO && m.channel_id == Some(2));
        assert_eq!(
            binary.and_then(|m| m.bytes("data")),
            Some(&b"\x00\xff binary"[..])
        );
        assert!(m.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    }

    #[test]
    fn a_password_not_intercepted_is_not_exported() {
        let root = temporary();
        record_sshpod(root.path(), &connection(), STDOUT, true);
        let (log, files) = read_recording(root.path());
        let (_, ours) = export(&log, &files);
        let attempts: Vec<&Message> = ours
            .messages
            .iter()
            .filter(|m| m.type_id == type_id::AUTH_PASSWORD)
            .collect();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].bytes("password"), Some(&b""[..]));
        assert!(!ours
            .messages
            .iter()
            .any(|m| format!("{m:?}").contains("hunter2")));
    }

    #[test]
    fn a_log_cut_short_by_a_crash_exports_what_it_has() {
        let items = connection();
        // The sshpod process died after the signal: no exit, no close, no end line, and the
        // line it was writing is half there.
        let Some(cut) = items.iter().position(|i| {
            matches!(
                i,
                Item::Record {
                    record: Record::Signal(_),
                    ..
                }
            )
        }) else {
            panic!("the connection has a signal");
        };
        let items = &items[..=cut + 1];
        let root = temporary();
        record_sshpod(root.path(), items, EVERYTHING, false);
        let (mut log, files) = read_recording(root.path());
        let lines = log.iter().filter(|&&b| b == b'\n').count() as u64;
        log.extend_from_slice(b"{\"seq\":99,\"at\":\"2023-11");
        let (exported, ours) = export(&log, &files);
        assert_eq!(exported.cut_short_line, Some(lines + 1));
        assert!(!exported.complete);
        assert!(ours.truncated);
        let theirs = live(items, &EVERYTHING);
        assert_eq!(comparable(&ours.messages), comparable(&theirs.messages));
        assert_eq!(
            ours.messages.last().map(|m| (m.type_id, m.bytes("data"))),
            Some((type_id::IO, Some(&b"$ "[..])))
        );
    }

    #[test]
    fn a_damaged_log_or_cast_is_an_error_naming_it() {
        let root = temporary();
        record_sshpod(root.path(), &connection(), EVERYTHING, true);
        let (log, files) = read_recording(root.path());

        let mut damaged = b"{\"seq\":0}\nnot json\n".to_vec();
        damaged.extend_from_slice(&log);
        match from_sshpod(ID, &damaged, &files, Vec::new()) {
            Err(ExportError::Line { line: 2, .. }) => {}
            other => panic!("a damaged line: {other:?}"),
        }

        let mut bad_cast = files.clone();
        bad_cast.insert("channel-0.cast".to_owned(), b"{\"version\":1}\n".to_vec());
        match from_sshpod(ID, &log, &bad_cast, Vec::new()) {
            Err(ExportError::Cast { file, .. }) => assert_eq!(file, "channel-0.cast"),
            other => panic!("a damaged cast: {other:?}"),
        }
    }

    #[test]
    fn hostile_lines_never_panic_and_are_written_as_far_as_they_make_sense() {
        let log = br#"{"kind":"connected","remote":"not an address","at":"2023-11-14T22:13:20Z"}
{"kind":"login-accepted","method":"telepathy","user":"x"}
{"kind":"pty","channel":0,"cols":99999999,"rows":-1}
{"kind":"process-starting","channel":0,"command":{"exec":7},"tty":true}
{"kind":"process-exited","channel":0,"signal":"NOT-A-SIGNAL"}
{"kind":"resize","channel":4294967296}
{"kind":"closed","at":"yesterday"}
"#;
        let mut files = BTreeMap::new();
        files.insert(
            "channel-0.cast".to_owned(),
            b"{\"version\":2,\"width\":1,\"height\":1}\n[1e308,\"o\",\"x\"]\n".to_vec(),
        );
        files.insert("channel-x.stdout".to_owned(), b"ignored".to_vec());
        files.insert("channel-+0.stdout".to_owned(), b"ignored".to_vec());
        let (exported, ours) = export(log, &files);
        assert!(exported.complete);
        let types: Vec<i32> = ours.messages.iter().map(|m| m.type_id).collect();
        assert_eq!(
            types,
            [
                type_id::CONNECT,
                type_id::CHANNEL_REQUEST_PTY,
                type_id::IO,
                type_id::EXIT_SIGNAL,
                type_id::CLOSE,
                type_id::DISCONNECT
            ]
        );
        assert_eq!(ours.messages[0].text("remoteAddr"), Some("not an address"));
        assert_eq!(ours.messages[1].unsigned("columns"), Some(0));
        assert_eq!(ours.messages[3].text("signal"), Some("NOT-A-SIGNAL"));
    }
}
