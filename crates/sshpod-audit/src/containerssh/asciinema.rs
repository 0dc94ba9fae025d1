//! Writing `format: asciinema`: one asciicast v2 file per connection, as ContainerSSH writes it.
//!
//! ContainerSSH's recording is for watching, not auditing: the header (80x25 unless a terminal
//! size is known, the connection's start as `timestamp`, the command) is written when the first
//! program starts or the first output arrives, then the output of the connection's sessions
//! follows as `"o"` frames, timed from the connection's start, every session into the same
//! file. Input, resizes and everything else are left out.
//!
//! Where sshpod differs: a forwarded connection's bytes are never frames (ContainerSSH turns
//! them into output when `intercept.forwarding` is set), error output is recorded by
//! `intercept.stderr` (ContainerSSH's by `intercept.stdout`), a character split between two
//! chunks of output is written whole, time never runs backwards, a subsystem's header command is
//! its name (ContainerSSH writes `/bin/sh`), and each line is flushed as it is written.
//!
//! ContainerSSH takes the header's size and `TERM` from the terminal request and its `env` from
//! the client's variables; sshpod's events do not carry those yet, so the header has 80x25 and
//! an empty `env`. (When they do, the first terminal request before the header sets `width`,
//! `height` and `env.TERM`.)

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::time::SystemTime;

use serde::Serialize;
use sshpod_config::AuditIntercept;
use sshpod_core::{ChannelKind, Command, EventKind};

use super::message::unix_nanos;
use crate::item::{Item, Record};

/// The size ContainerSSH's header has when no terminal size is known.
const DEFAULT_SIZE: (u16, u16) = (80, 25);

/// The command ContainerSSH's header names for a shell (it does not know the user's).
const SHELL: &str = "/bin/sh";

/// The header line, its members in ContainerSSH's order.
#[derive(Debug, Serialize)]
struct Header {
    version: u8,
    width: u16,
    height: u16,
    /// Unix seconds of the connection's start.
    timestamp: i64,
    command: String,
    title: String,
    env: BTreeMap<String, String>,
}

/// Writes one connection's asciicast v2 recording, as ContainerSSH's `asciinema` format does.
#[derive(Debug)]
pub struct AsciinemaWriter<W: Write> {
    out: W,
    header: Header,
    header_written: bool,
    /// The connection's start, in nanoseconds since the epoch: frames are timed from it.
    start: Option<i64>,
    /// The last frame's time, in nanoseconds from the start.
    last: i64,
    /// Forwarded channels, whose bytes are not terminal output.
    forwards: BTreeSet<u32>,
    /// The start of a character a chunk of output ended in, per channel and stream.
    partial: BTreeMap<(u32, Stream), Vec<u8>>,
}

/// Which output stream a frame comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stream {
    Stdout,
    Stderr,
}

impl<W: Write> AsciinemaWriter<W> {
    /// A recording written to `out`. Nothing is written until the first program starts or the
    /// first output arrives.
    pub fn new(out: W) -> Self {
        Self {
            out,
            header: Header {
                version: 2,
                width: DEFAULT_SIZE.0,
                height: DEFAULT_SIZE.1,
                timestamp: 0,
                command: String::new(),
                title: String::new(),
                env: BTreeMap::new(),
            },
            header_written: false,
            start: None,
            last: 0,
            forwards: BTreeSet::new(),
            partial: BTreeMap::new(),
        }
    }

    /// Records `item`: output (with `intercept.stdout`) and error output (with
    /// `intercept.stderr`) of session channels become frames.
    pub fn write(&mut self, item: &Item, intercept: &AuditIntercept) -> io::Result<()> {
        match item {
            Item::Event(event) => {
                let at = unix_nanos(event.at);
                let start = *self.start.get_or_insert(at);
                match (&event.kind, event.channel) {
                    // Frames are timed from the connection's start, as ContainerSSH's are.
                    (EventKind::Connected, _) => self.start = Some(at),
                    (EventKind::ChannelOpened { kind }, Some(id)) => self.channel_kind(id, kind),
                    // The first terminal's size and type, if it comes before the header.
                    (EventKind::PtyGranted { term, size }, _) if !self.header_written => {
                        self.header.width = size.cols;
                        self.header.height = size.rows;
                        self.header.env.insert("TERM".to_owned(), term.clone());
                    }
                    (EventKind::ProcessStarting { command, .. }, _) if !self.header_written => {
                        self.header.command = match command {
                            Command::Shell => SHELL.to_owned(),
                            Command::Exec(line) => line.clone(),
                            Command::Subsystem(name) => name.clone(),
                        };
                        self.write_header(start)?;
                    }
                    _ => {}
                }
                Ok(())
            }
            Item::Channel(info) => {
                self.channel_kind(info.channel, &info.kind);
                Ok(())
            }
            Item::Record {
                channel,
                at,
                record,
            } => {
                let stream = match record {
                    Record::Output(data) if intercept.stdout => Some((Stream::Stdout, data)),
                    Record::ErrorOutput(data) if intercept.stderr => Some((Stream::Stderr, data)),
                    _ => None,
                };
                match stream {
                    Some((stream, data)) if !self.forwards.contains(channel) => {
                        self.output(*channel, stream, *at, data)
                    }
                    _ => Ok(()),
                }
            }
        }
    }

    /// The output written to.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Writes what is still held back (the header if nothing started, a character cut short
    /// by the end) and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        let start = self.start.unwrap_or(0);
        if !self.header_written {
            self.write_header(start)?;
        }
        for tail in std::mem::take(&mut self.partial).into_values() {
            let text = String::from_utf8_lossy(&tail).into_owned();
            self.frame(self.last, &text)?;
        }
        self.out.flush()?;
        Ok(self.out)
    }

    fn channel_kind(&mut self, id: u32, kind: &ChannelKind) {
        if matches!(
            kind,
            ChannelKind::DirectTcpip { .. }
                | ChannelKind::ForwardedTcpip { .. }
                | ChannelKind::DirectStreamlocal { .. }
                | ChannelKind::ForwardedStreamlocal { .. }
                | ChannelKind::AuthAgent
                | ChannelKind::X11 { .. }
        ) {
            self.forwards.insert(id);
        }
    }

    fn output(&mut self, id: u32, stream: Stream, at: SystemTime, data: &[u8]) -> io::Result<()> {
        let at = unix_nanos(at);
        let start = *self.start.get_or_insert(at);
        if !self.header_written {
            self.header.command = SHELL.to_owned();
            self.write_header(start)?;
        }
        let mut bytes = self.partial.remove(&(id, stream)).unwrap_or_default();
        bytes.extend_from_slice(data);
        let whole = complete_prefix(&bytes);
        if whole < bytes.len() {
            self.partial.insert((id, stream), bytes[whole..].to_vec());
        }
        if whole == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&bytes[..whole]).into_owned();
        // Clocks can step back; a recording's time cannot.
        self.last = self.last.max(at.saturating_sub(start));
        self.frame(self.last, &text)
    }

    fn write_header(&mut self, start: i64) -> io::Result<()> {
        self.header.timestamp = start.div_euclid(1_000_000_000);
        let line = serde_json::to_string(&self.header)?;
        self.header_written = true;
        self.line(&line)
    }

    /// An output frame `offset` nanoseconds into the recording.
    fn frame(&mut self, offset: i64, text: &str) -> io::Result<()> {
        // Seconds with microseconds, as a JSON number.
        let seconds = (offset / 1_000) as f64 / 1_000_000.0;
        let line = serde_json::to_string(&(seconds, "o", text))?;
        self.line(&line)
    }

    fn line(&mut self, line: &str) -> io::Result<()> {
        self.out.write_all(line.as_bytes())?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }
}

/// How much of `bytes` can be written now: all but a character cut short at the end (at most
/// three bytes, kept for the next chunk). Other invalid bytes are written, as U+FFFD.
fn complete_prefix(bytes: &[u8]) -> usize {
    let mut checked = 0;
    loop {
        match std::str::from_utf8(&bytes[checked..]) {
            Ok(_) => return bytes.len(),
            Err(e) => match e.error_len() {
                // Invalid, not merely cut short: skip past it.
                Some(invalid) => checked += e.valid_up_to() + invalid,
                None => return checked + e.valid_up_to(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use sshpod_core::{ExitStatus, TerminalSize};

    use super::super::test_items::{event, record, tapped, START_SECS};
    use super::*;

    const STDOUT: AuditIntercept = AuditIntercept {
        stdin: true,
        stdout: true,
        stderr: false,
        passwords: false,
        forwarding: true,
    };

    fn write_all(items: &[Item], intercept: &AuditIntercept) -> String {
        let mut writer = AsciinemaWriter::new(Vec::new());
        let written = items
            .iter()
            .try_for_each(|item| writer.write(item, intercept))
            .and_then(|()| writer.finish());
        match written.map(String::from_utf8) {
            Ok(Ok(text)) => text,
            Ok(Err(e)) => panic!("not UTF-8: {e}"),
            Err(e) => panic!("writing: {e}"),
        }
    }

    /// Parses an asciicast v2 file as a player does: a JSON header with version 2, then lines of
    /// `[time, code, data]` with time never going back. Returns the header and the frames.
    fn parse(cast: &str) -> (serde_json::Value, Vec<(f64, String, String)>) {
        let mut lines = cast.lines();
        let header: serde_json::Value = match lines.next().map(serde_json::from_str) {
            Some(Ok(header)) => header,
            other => panic!("no header line: {other:?}"),
        };
        assert_eq!(header["version"], 2, "{header}");
        let mut frames: Vec<(f64, String, String)> = Vec::new();
        for line in lines {
            let frame: (f64, String, String) = match serde_json::from_str(line) {
                Ok(frame) => frame,
                Err(e) => panic!("not a [time, code, data] line: {line}: {e}"),
            };
            if let Some(previous) = frames.last() {
                assert!(frame.0 >= previous.0, "time went back at {line}");
            }
            frames.push(frame);
        }
        (header, frames)
    }

    fn session() -> Vec<Item> {
        vec![
            event(0, None, EventKind::Connected),
            tapped(0, ChannelKind::Session),
            event(
                5,
                Some(0),
                EventKind::ChannelOpened {
                    kind: ChannelKind::Session,
                },
            ),
            event(
                10,
                Some(0),
                EventKind::ProcessStarting {
                    command: Command::Shell,
                    tty: true,
                },
            ),
            record(20, 0, Record::Input(b"ls\r".to_vec())),
            record(1_500, 0, Record::Output(b"$ ls\r\n".to_vec())),
            record(
                1_600,
                0,
                Record::Resize(TerminalSize {
                    cols: 120,
                    rows: 50,
                }),
            ),
            // "é" (c3 a9) split between two chunks.
            record(2_000, 0, Record::Output(b"caf\xc3".to_vec())),
            record(2_250, 0, Record::Output(b"\xa9\r\n".to_vec())),
            record(2_300, 0, Record::ErrorOutput(b"warning\r\n".to_vec())),
            tapped(
                1,
                ChannelKind::DirectTcpip {
                    host: "db".into(),
                    port: 5432,
                },
            ),
            record(2_400, 1, Record::Output(b"forwarded bytes".to_vec())),
            record(3_000, 0, Record::Exit(ExitStatus::Code(0))),
            event(3_000, None, EventKind::Closed),
        ]
    }

    #[test]
    fn a_session_is_an_asciicast_v2_file_of_its_output() {
        let cast = write_all(&session(), &STDOUT);
        let (header, frames) = parse(&cast);
        assert_eq!(header["width"], 80);
        assert_eq!(header["height"], 25);
        assert_eq!(header["timestamp"], START_SECS);
        assert_eq!(header["command"], "/bin/sh");
        assert_eq!(header["env"], serde_json::json!({}));
        assert_eq!(
            frames,
            [
                (1.5, "o".to_owned(), "$ ls\r\n".to_owned()),
                (2.0, "o".to_owned(), "caf".to_owned()),
                (2.25, "o".to_owned(), "é\r\n".to_owned()),
            ]
        );
    }

    #[test]
    fn error_output_is_recorded_with_intercept_stderr() {
        let intercept = AuditIntercept {
            stderr: true,
            ..STDOUT
        };
        let (_, frames) = parse(&write_all(&session(), &intercept));
        assert!(
            frames.contains(&(2.3, "o".to_owned(), "warning\r\n".to_owned())),
            "{frames:?}"
        );
        let intercept = AuditIntercept {
            stdout: false,
            stderr: false,
            ..STDOUT
        };
        let (header, frames) = parse(&write_all(&session(), &intercept));
        assert_eq!(header["command"], "/bin/sh");
        assert!(frames.is_empty(), "{frames:?}");
    }

    #[test]
    fn time_never_runs_backwards() {
        let items = [
            event(1_000, None, EventKind::Connected),
            record(3_000, 0, Record::Output(b"one".to_vec())),
            // The clock stepped back.
            record(500, 0, Record::Output(b"two".to_vec())),
            record(4_000, 0, Record::Output(b"three".to_vec())),
        ];
        let (header, frames) = parse(&write_all(&items, &STDOUT));
        let times: Vec<f64> = frames.iter().map(|f| f.0).collect();
        assert_eq!(times, [2.0, 2.0, 3.0]);
        assert_eq!(header["timestamp"], START_SECS + 1);
    }

    #[test]
    fn an_exec_names_its_command_and_bad_bytes_are_replaced() {
        let items = [
            event(0, None, EventKind::Connected),
            event(
                1,
                Some(0),
                EventKind::ProcessStarting {
                    command: Command::Exec("cat /bin/ls".to_owned()),
                    tty: false,
                },
            ),
            record(2, 0, Record::Output(b"\x7fELF\xff\xfe\x00".to_vec())),
            // Ends in half a character, which the end of the recording cuts short.
            record(3, 0, Record::Output(b"x\xe2\x82".to_vec())),
        ];
        let (header, frames) = parse(&write_all(&items, &STDOUT));
        assert_eq!(header["command"], "cat /bin/ls");
        let text: Vec<&str> = frames.iter().map(|f| f.2.as_str()).collect();
        assert_eq!(text, ["\u{7f}ELF\u{fffd}\u{fffd}\u{0}", "x", "\u{fffd}"]);
    }

    #[test]
    fn a_connection_without_sessions_is_a_header_alone() {
        let items = [
            event(0, None, EventKind::Connected),
            event(9, None, EventKind::Closed),
        ];
        let cast = write_all(&items, &STDOUT);
        let (header, frames) = parse(&cast);
        assert!(frames.is_empty());
        assert_eq!(header["command"], "");
        assert_eq!(cast.lines().count(), 1);
    }

    #[test]
    fn complete_prefix_keeps_only_a_cut_character_back() {
        assert_eq!(complete_prefix(b"abc"), 3);
        assert_eq!(complete_prefix(b"ab\xc3"), 2);
        assert_eq!(complete_prefix(b"ab\xe2\x82"), 2);
        assert_eq!(complete_prefix(b"\xff\xfe"), 2);
        assert_eq!(complete_prefix(b"\xffa\xf0\x9f\x98"), 2);
        assert_eq!(complete_prefix(b""), 0);
    }
}
