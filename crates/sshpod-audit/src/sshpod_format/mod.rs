//! sshpod's own recording format: one directory per connection.
//!
//! ```text
//! <id>/events.jsonl         every event, one JSON object per line, hash-chained (crate::chain)
//! <id>/channel-<n>.cast     a terminal session: asciicast v2 (output, resizes; input with
//!                           intercept.stdin), playable by `asciinema play` as it is
//! <id>/channel-<n>.stdin    a session without a terminal: the streams intercept names,
//! <id>/channel-<n>.stdout   raw
//! <id>/channel-<n>.stderr
//! ```
//!
//! When a channel's process ends (or the connection does), each of its data files is closed
//! and its size and SHA-256 are written to the log as a `recording-file` line, so the chain
//! covers the data files too. The last line is `end`; its link is the recording's digest. A
//! log without `end` was cut off by a crash and is closed by [`recover`] at the next start.

mod cast;
mod event_json;

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use sshpod_config::AuditIntercept;
use sshpod_core::{ChannelKind, Event, EventKind, TerminalSize};

use crate::chain::{self, Chain};
use crate::item::{Item, Record};
use crate::transfers::{self, FileOp, LinkKind, TransferWatcher};

pub use event_json::timestamp;

/// The event log's name in a recording.
pub use crate::log_lines::EVENTS_FILE as EVENTS;

/// Writes one connection's recording.
pub struct SshpodWriter {
    dir: PathBuf,
    log: File,
    chain: Chain,
    intercept: AuditIntercept,
    /// The connection's identity for lines the recorder adds itself (file digests, the end).
    template: Option<Event>,
    channels: BTreeMap<u32, ChannelFiles>,
    /// Names and digests of the data files closed so far.
    closed: Vec<String>,
    /// Bytes written so far, for the spool's budget.
    written: u64,
}

#[derive(Default)]
struct ChannelFiles {
    kind: Option<ChannelKind>,
    tty: Option<(String, TerminalSize)>,
    cast: Option<CastFile>,
    streams: [Option<DataFile>; 3],
    /// Follows an SFTP or scp session's files.
    transfers: Option<TransferWatcher>,
}

struct CastFile {
    file: DataFile,
    started: SystemTime,
    output: cast::Utf8Carry,
    input: cast::Utf8Carry,
}

struct DataFile {
    name: String,
    file: File,
    bytes: u64,
}

impl DataFile {
    fn create(dir: &Path, name: String) -> io::Result<Self> {
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(dir.join(&name))?;
        Ok(Self {
            name,
            file,
            bytes: 0,
        })
    }

    fn write(&mut self, data: &[u8]) -> io::Result<u64> {
        self.file.write_all(data)?;
        self.bytes += data.len() as u64;
        Ok(data.len() as u64)
    }
}

const STREAMS: [&str; 3] = ["stdin", "stdout", "stderr"];

impl SshpodWriter {
    /// Starts the recording of `connection` in `root/connection`, which must not exist yet.
    pub fn create(root: &Path, connection: &str, intercept: AuditIntercept) -> io::Result<Self> {
        let dir = root.join(connection);
        fs::create_dir(&dir)?;
        let log = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(dir.join(EVENTS))?;
        Ok(Self {
            dir,
            log,
            chain: Chain::new(),
            intercept,
            template: None,
            channels: BTreeMap::new(),
            closed: Vec::new(),
            written: 0,
        })
    }

    /// Records one item; returns the bytes it added.
    pub fn write(&mut self, item: &Item) -> io::Result<u64> {
        let before = self.written;
        match item {
            Item::Event(event) => self.event(event)?,
            Item::Channel(info) => {
                self.channels.entry(info.channel).or_default().kind = Some(info.kind.clone());
            }
            Item::Record {
                channel,
                at,
                record,
            } => self.record(*channel, *at, record)?,
        }
        Ok(self.written - before)
    }

    fn event(&mut self, event: &Event) -> io::Result<()> {
        if self.template.is_none() || event.user.is_some() {
            self.template = Some(Event {
                kind: EventKind::Connected,
                ..event.clone()
            });
        }
        let (name, fields) = event_json::kind(&event.kind, self.intercept.passwords);
        self.line(event.at, event.channel, name, fields)?;
        match &event.kind {
            EventKind::RecordingSettings { intercept, .. } => self.intercept = *intercept,
            EventKind::PtyGranted { term, size } => {
                if let Some(channel) = event.channel {
                    self.channels.entry(channel).or_default().tty = Some((term.clone(), *size));
                }
            }
            EventKind::ProcessStarting { command, tty } => {
                if let Some(channel) = event.channel {
                    self.channels.entry(channel).or_default().transfers =
                        transfers::watcher_for(command);
                    if *tty {
                        self.start_cast(channel, event.at)?;
                    }
                }
            }
            EventKind::ProcessExited { .. }
            | EventKind::ProcessFailed { .. }
            | EventKind::ExitStatusUnknown { .. } => {
                if let Some(channel) = event.channel {
                    self.close_channel(channel, event.at)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn start_cast(&mut self, channel: u32, at: SystemTime) -> io::Result<()> {
        let files = self.channels.entry(channel).or_default();
        if files.cast.is_some() {
            return Ok(());
        }
        let (term, size) = files
            .tty
            .clone()
            .unwrap_or_else(|| ("xterm".to_owned(), TerminalSize { cols: 80, rows: 24 }));
        // The header's timestamp is whole seconds: event times count from that second, so an
        // event log time minus the timestamp is the player's position exactly.
        let since = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let started = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(since.as_secs());
        let mut file = DataFile::create(&self.dir, format!("channel-{channel}.cast"))?;
        self.written += file.write(&cast::header(size, &term, started))?;
        files.cast = Some(CastFile {
            file,
            started,
            output: cast::Utf8Carry::default(),
            input: cast::Utf8Carry::default(),
        });
        Ok(())
    }

    fn record(&mut self, channel: u32, at: SystemTime, record: &Record) -> io::Result<()> {
        let intercept = self.intercept;
        let dir = self.dir.clone();
        // A channel is known from its tap until its process ends; a record after that (or of a
        // channel never tapped) has nowhere to go.
        let Some(files) = self.channels.get_mut(&channel) else {
            return Ok(());
        };
        let forward = matches!(
            files.kind,
            Some(
                ChannelKind::DirectTcpip { .. }
                    | ChannelKind::ForwardedTcpip { .. }
                    | ChannelKind::DirectStreamlocal { .. }
                    | ChannelKind::ForwardedStreamlocal { .. }
                    | ChannelKind::AuthAgent
                    | ChannelKind::X11 { .. }
            )
        );
        let mut ops = Vec::new();
        if let Some(watcher) = &mut files.transfers {
            match record {
                Record::Input(data) => watcher.input(data, &mut ops),
                Record::Output(data) => watcher.output(data, &mut ops),
                _ => {}
            }
        }
        self.file_ops(channel, at, ops)?;
        self.record_data(channel, at, record, intercept, &dir, forward)
    }

    /// Writes what the channel's transfers did to files.
    fn file_ops(&mut self, channel: u32, at: SystemTime, ops: Vec<FileOp>) -> io::Result<()> {
        for op in ops {
            let (kind, fields) = file_op(op);
            self.line(at, Some(channel), kind, fields)?;
        }
        Ok(())
    }

    fn record_data(
        &mut self,
        channel: u32,
        at: SystemTime,
        record: &Record,
        intercept: AuditIntercept,
        dir: &Path,
        forward: bool,
    ) -> io::Result<()> {
        let Some(files) = self.channels.get_mut(&channel) else {
            return Ok(());
        };
        if let Some(cast) = &mut files.cast {
            let seconds = at
                .duration_since(cast.started)
                .unwrap_or_default()
                .as_secs_f64();
            let line = match record {
                Record::Output(data) | Record::ErrorOutput(data) => {
                    Some(cast::event(seconds, "o", &cast.output.text(data)))
                }
                Record::Input(data) if intercept.stdin => {
                    Some(cast::event(seconds, "i", &cast.input.text(data)))
                }
                Record::Resize(size) => Some(cast::event(
                    seconds,
                    "r",
                    &format!("{}x{}", size.cols, size.rows),
                )),
                _ => None,
            };
            if let Some(line) = line {
                self.written += cast.file.write(&line)?;
            }
        } else {
            let (stream, data) = match record {
                Record::Input(data) => (0, data),
                Record::Output(data) => (1, data),
                Record::ErrorOutput(data) => (2, data),
                _ => return self.control(channel, at, record),
            };
            let wanted = if forward {
                intercept.forwarding && stream != 2
            } else {
                [intercept.stdin, intercept.stdout, intercept.stderr][stream]
            };
            if !wanted || data.is_empty() {
                return Ok(());
            }
            let file = match &mut files.streams[stream] {
                Some(file) => file,
                slot => slot.insert(DataFile::create(
                    dir,
                    format!("channel-{channel}.{}", STREAMS[stream]),
                )?),
            };
            self.written += file.write(data)?;
            return Ok(());
        }
        self.control(channel, at, record)
    }

    /// Resizes and signals also go to the event log, terminal or not.
    fn control(&mut self, channel: u32, at: SystemTime, record: &Record) -> io::Result<()> {
        let mut fields = Map::new();
        let name = match record {
            Record::Resize(size) => {
                fields.insert("cols".into(), json!(size.cols));
                fields.insert("rows".into(), json!(size.rows));
                "resize"
            }
            Record::Signal(signal) => {
                fields.insert("signal".into(), json!(signal.name()));
                "signal"
            }
            _ => return Ok(()),
        };
        self.line(at, Some(channel), name, fields)
    }

    /// Closes a channel's data files and writes their digests to the log; the channel is
    /// forgotten (a connection may open and close channels without end).
    fn close_channel(&mut self, channel: u32, at: SystemTime) -> io::Result<()> {
        let Some(mut files) = self.channels.remove(&channel) else {
            return Ok(());
        };
        let mut ops = Vec::new();
        if let Some(mut watcher) = files.transfers.take() {
            watcher.finish(&mut ops);
        }
        let mut data: Vec<DataFile> = files.streams.iter_mut().filter_map(Option::take).collect();
        if let Some(cast) = files.cast.take() {
            data.insert(0, cast.file);
        }
        self.file_ops(channel, at, ops)?;
        for file in data {
            file.file.sync_data()?;
            let mut fields = Map::new();
            fields.insert("file".into(), json!(file.name));
            fields.insert("bytes".into(), json!(file.bytes));
            // Hashed from the disk once closed, not as it is written: the cost falls after the
            // session's data, when the writer is otherwise idle, not on the session's pace.
            fields.insert(
                "sha256".into(),
                json!(digest_file(&self.dir.join(&file.name))?),
            );
            self.closed.push(file.name);
            self.line(at, Some(channel), "recording-file", fields)?;
        }
        Ok(())
    }

    /// Writes the digests of every open data file and the `end` line; everything is synced.
    pub fn finish(&mut self, at: SystemTime) -> io::Result<String> {
        let open: Vec<u32> = self.channels.keys().copied().collect();
        for channel in open {
            self.close_channel(channel, at)?;
        }
        let mut fields = Map::new();
        fields.insert("lines".into(), json!(self.chain.lines() + 1));
        fields.insert("files".into(), json!(self.closed));
        self.line(at, None, "end", fields)?;
        self.log.sync_all()?;
        Ok(self.chain.head().to_owned())
    }

    /// Handles of the files being written (the event log and the open data files), for
    /// syncing them elsewhere.
    pub fn files(&self) -> io::Result<Vec<File>> {
        let mut files = vec![self.log.try_clone()?];
        for channel in self.channels.values() {
            if let Some(cast) = &channel.cast {
                files.push(cast.file.file.try_clone()?);
            }
            for file in channel.streams.iter().flatten() {
                files.push(file.file.try_clone()?);
            }
        }
        Ok(files)
    }

    /// Syncs what was written to the disk.
    pub fn sync(&mut self) -> io::Result<()> {
        self.log.sync_data()?;
        for files in self.channels.values_mut() {
            if let Some(cast) = &mut files.cast {
                cast.file.file.sync_data()?;
            }
            for file in files.streams.iter_mut().flatten() {
                file.file.sync_data()?;
            }
        }
        Ok(())
    }

    /// Writes a line the recorder adds itself (a gap in the data, say).
    pub fn note(
        &mut self,
        at: SystemTime,
        channel: Option<u32>,
        kind: &str,
        fields: Map<String, Value>,
    ) -> io::Result<()> {
        self.line(at, channel, kind, fields)
    }

    fn line(
        &mut self,
        at: SystemTime,
        channel: Option<u32>,
        kind: &str,
        fields: Map<String, Value>,
    ) -> io::Result<()> {
        let seq = self.chain.lines();
        let mut line = match &self.template {
            Some(template) => event_json::head(seq, at, template, channel, kind),
            None => Map::new(),
        };
        line.extend(fields);
        let content = serde_json::to_vec(&Value::Object(line)).map_err(io::Error::other)?;
        let linked = self.chain.link(&content);
        self.log.write_all(&linked)?;
        self.written += linked.len() as u64;
        Ok(())
    }
}

/// The SHA-256 of a file, read in blocks (recordings can be large).
fn digest_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hash = Sha256::new();
    let mut block = vec![0; 1 << 20];
    loop {
        match io::Read::read(&mut file, &mut block)? {
            0 => break,
            n => hash.update(&block[..n]),
        }
    }
    Ok(hex::encode(hash.finalize()))
}

/// A file operation as an event-log line.
fn file_op(op: FileOp) -> (&'static str, Map<String, Value>) {
    let mut fields = Map::new();
    let mut put = |name: &str, value: Value| {
        fields.insert(name.to_owned(), value);
    };
    let kind = match op {
        FileOp::Read {
            path,
            bytes,
            sha256,
        } => {
            put("path", json!(path));
            put("bytes", json!(bytes));
            put("sha256", json!(sha256));
            "file-read"
        }
        FileOp::Written {
            path,
            bytes,
            sha256,
        } => {
            put("path", json!(path));
            put("bytes", json!(bytes));
            put("sha256", json!(sha256));
            "file-written"
        }
        FileOp::Renamed { from, to } => {
            put("path", json!(from));
            put("to", json!(to));
            "file-renamed"
        }
        FileOp::Removed { path } => {
            put("path", json!(path));
            "file-removed"
        }
        FileOp::DirCreated { path } => {
            put("path", json!(path));
            "dir-created"
        }
        FileOp::DirRemoved { path } => {
            put("path", json!(path));
            "dir-removed"
        }
        FileOp::Linked { path, target, kind } => {
            put("path", json!(path));
            put("to", json!(target));
            put(
                "linkKind",
                json!(match kind {
                    LinkKind::Hard => "hard",
                    LinkKind::Symbolic => "symbolic",
                }),
            );
            "file-linked"
        }
        FileOp::GaveUp { reason } => {
            put("reason", json!(reason));
            "transfer-unfollowed"
        }
        #[allow(unreachable_patterns)]
        other => {
            put("detail", json!(format!("{other:?}")));
            "file-other"
        }
    };
    (kind, fields)
}

/// Closes a recording left by an instance that stopped without finishing it: cuts a last line
/// the crash left half-written, writes the digests of its data files and an `end` line saying
/// it was interrupted. Returns the digest. A recording whose `end` line was written (the
/// instance died before it could mark the recording complete) is left as it is: a line after
/// the end would break it.
pub fn recover(dir: &Path) -> io::Result<String> {
    let path = dir.join(EVENTS);
    let mut log = fs::read(&path)?;
    if let Some(last) = log.iter().rposition(|&b| b == b'\n') {
        log.truncate(last + 1);
    } else {
        log.clear();
    }
    let (head, lines) = match chain::verify(&log) {
        Ok(found) => found,
        Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
    };
    let mut template = Map::new();
    let mut digested = Vec::new();
    if let Some(last) = log.split(|&b| b == b'\n').rfind(|l| !l.is_empty()) {
        if let Ok(Value::Object(line)) = serde_json::from_slice::<Value>(last) {
            if line.get("kind") == Some(&json!("end")) {
                return Ok(head);
            }
            for key in ["connection", "remote", "user"] {
                if let Some(value) = line.get(key) {
                    template.insert(key.to_owned(), value.clone());
                }
            }
        }
    }
    for line in log.split(|&b| b == b'\n') {
        if let Ok(Value::Object(line)) = serde_json::from_slice::<Value>(line) {
            if line.get("kind") == Some(&json!("recording-file")) {
                if let Some(name) = line.get("file").and_then(Value::as_str) {
                    digested.push(name.to_owned());
                }
            }
        }
    }
    let file = OpenOptions::new().write(true).open(&path)?;
    file.set_len(log.len() as u64)?;
    drop(file);
    let mut file = OpenOptions::new().append(true).open(&path)?;
    let mut chain = Chain::resume(head, lines);
    let now = SystemTime::now();
    let mut names: Vec<String> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != EVENTS && !digested.contains(n))
        .collect();
    names.sort();
    let mut add = |kind: &str, fields: Map<String, Value>| -> io::Result<()> {
        let mut line = Map::new();
        line.insert("seq".into(), json!(chain.lines()));
        line.insert("at".into(), json!(timestamp(now)));
        line.extend(template.clone());
        line.insert("channel".into(), Value::Null);
        line.insert("kind".into(), json!(kind));
        line.extend(fields);
        let content = serde_json::to_vec(&Value::Object(line)).map_err(io::Error::other)?;
        file.write_all(&chain.link(&content))
    };
    for name in &names {
        let path = dir.join(name);
        let mut fields = Map::new();
        fields.insert("file".into(), json!(name));
        fields.insert("bytes".into(), json!(fs::metadata(&path)?.len()));
        fields.insert("sha256".into(), json!(digest_file(&path)?));
        add("recording-file", fields)?;
    }
    let total = lines + names.len() as u64 + 1;
    digested.extend(names);
    let mut fields = Map::new();
    fields.insert("lines".into(), json!(total));
    fields.insert("files".into(), json!(digested));
    fields.insert("interrupted".into(), json!(true));
    add("end", fields)?;
    file.sync_all()?;
    Ok(chain.head().to_owned())
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::{Duration, UNIX_EPOCH};

    use sshpod_core::ConnectionId;

    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    fn event(ms: u64, kind: EventKind) -> Item {
        let remote: SocketAddr = match "192.0.2.7:50022".parse() {
            Ok(addr) => addr,
            Err(e) => panic!("{e}"),
        };
        Item::Event(Event {
            seq: ms,
            at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + ms),
            connection: ConnectionId::random(),
            remote,
            user: None,
            channel: None,
            kind,
        })
    }

    /// A recording of a connection that closed, finished (with its `end`) when `finish`.
    fn recorded(root: &Path, finish: bool) -> PathBuf {
        let written =
            SshpodWriter::create(root, ID, AuditIntercept::default()).and_then(|mut w| {
                w.write(&event(1, EventKind::SessionEnded { reason: None }))?;
                w.write(&event(2, EventKind::Closed))?;
                if finish {
                    w.finish(UNIX_EPOCH + Duration::from_secs(1_700_000_001))?;
                }
                Ok(())
            });
        if let Err(e) = written {
            panic!("recording: {e}");
        }
        root.join(ID)
    }

    fn read(dir: &Path) -> Vec<u8> {
        fs::read(dir.join(EVENTS)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn ends(log: &[u8]) -> usize {
        let needle = br#""kind":"end","#;
        log.split(|&b| b == b'\n')
            .filter(|line| line.windows(needle.len()).any(|w| w == needle))
            .count()
    }

    #[test]
    fn a_recording_killed_after_its_end_line_is_kept_as_it_is() {
        // Regression (bench/chaos, seed 7): sshpod was killed after writing a recording's
        // `end` and before marking it complete; the next start added a second `end`, and
        // `sshpod audit verify` then failed the recording ("follows the end line").
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = recorded(root.path(), true);
        let before = read(&dir);
        let head = recover(&dir).unwrap_or_else(|e| panic!("{e}"));
        let after = read(&dir);
        assert_eq!(after, before);
        assert_eq!(ends(&after), 1);
        let verified = chain::verify(&after).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(verified.0, head);
    }

    #[test]
    fn a_recording_killed_before_its_end_gets_one_end_once() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = recorded(root.path(), false);
        recover(&dir).unwrap_or_else(|e| panic!("{e}"));
        let once = read(&dir);
        assert_eq!(ends(&once), 1);
        assert!(String::from_utf8_lossy(&once).contains(r#""interrupted":true"#));
        // A crash after the recovery and before its state was written: recovered again.
        recover(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read(&dir), once);
    }
}
