//! One recording in a few facts (who, from where, when, how long, how big, whether it ended):
//! a row of `sshpod audit ls` and of the recordings page.
//!
//! For format `sshpod` the facts come from the event log, read in one pass. ContainerSSH's
//! one-file formats say less: an asciicast gives its start and length, a binary log only its
//! size (reading it is the ContainerSSH decoder's job).

use std::io;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::asciicast;
use crate::log_lines::{self, Members, EVENTS_FILE};
use crate::store::Store;

/// The start of a ContainerSSH binary audit log.
const BINARY_MAGIC: &[u8] = b"ContainerSSH-Auditlog";

/// A recording's facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// The connection id.
    pub connection: String,
    /// How it was recorded.
    pub format: RecordingFormat,
    /// The user: the name a login was accepted as, else the last name the client tried.
    pub user: Option<String>,
    /// Whether a login was accepted.
    pub authenticated: bool,
    /// The client's address (`ip:port`).
    pub remote: Option<String>,
    /// The first event's time.
    #[serde(with = "rfc3339")]
    pub start: Option<SystemTime>,
    /// The last event's time.
    #[serde(with = "rfc3339")]
    pub end: Option<SystemTime>,
    /// Whether the recording ended properly.
    pub status: Status,
    /// Lines of the event log (format `sshpod`).
    pub events: u64,
    /// The recording's files, sorted by name.
    pub files: Vec<RecordingFile>,
    /// Their total size in bytes.
    pub size: u64,
}

impl Summary {
    /// From the first event to the last, when both are known.
    pub fn duration(&self) -> Option<Duration> {
        self.end?.duration_since(self.start?).ok()
    }

    /// The terminal sessions' cast files (`channel-<n>.cast`), by channel number.
    pub fn casts(&self) -> Vec<(u32, &str)> {
        let mut casts: Vec<(u32, &str)> = self
            .files
            .iter()
            .filter_map(|file| Some((cast_channel(&file.name)?, file.name.as_str())))
            .collect();
        casts.sort();
        casts
    }
}

/// The channel of a cast file's name (`channel-3.cast` is 3).
pub fn cast_channel(name: &str) -> Option<u32> {
    name.strip_prefix("channel-")?
        .strip_suffix(".cast")?
        .parse()
        .ok()
}

/// The name of channel `channel`'s cast file.
pub fn cast_name(channel: u32) -> String {
    format!("channel-{channel}.cast")
}

/// One file of a recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingFile {
    /// Its name within the recording.
    pub name: String,
    /// Its size in bytes.
    pub bytes: u64,
}

/// How a recording was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordingFormat {
    /// sshpod's: a directory with an event log.
    Sshpod,
    /// ContainerSSH's binary audit log, one file.
    Binary,
    /// ContainerSSH's asciicast, one file.
    Asciinema,
    /// A file that is none of these.
    Unknown,
}

/// Whether a recording ended properly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The event log ends with its `end` line: the connection ended and everything of it was
    /// written.
    Complete,
    /// The `end` line says `interrupted`: the connection's sshpod stopped (a crash, `kill -9`)
    /// and closed the recording when it started again.
    Interrupted,
    /// No `end` line yet: the connection is still being recorded, or its sshpod stopped and
    /// has not started again.
    Open,
    /// The format does not say.
    Unknown,
}

impl Status {
    /// The word `sshpod audit ls` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Complete => "complete",
            Status::Interrupted => "interrupted",
            Status::Open => "open",
            Status::Unknown => "unknown",
        }
    }

    /// The status an `end` line gives (its members), with `interrupted` set by recovery.
    pub fn of_end(end: &serde_json::Map<String, serde_json::Value>) -> Self {
        match end.get("interrupted") {
            Some(serde_json::Value::Bool(true)) => Status::Interrupted,
            _ => Status::Complete,
        }
    }
}

/// The facts of recording `connection` in `store`; `NotFound` if there is no such recording.
pub async fn summarize(store: &dyn Store, connection: &str) -> io::Result<Summary> {
    let files: Vec<RecordingFile> = store
        .files(connection)
        .await?
        .into_iter()
        .map(|(name, bytes)| RecordingFile { name, bytes })
        .collect();
    if files.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no recording {connection} in {}", store.describe()),
        ));
    }
    let mut summary = Summary {
        connection: connection.to_owned(),
        format: RecordingFormat::Unknown,
        user: None,
        authenticated: false,
        remote: None,
        start: None,
        end: None,
        status: Status::Unknown,
        events: 0,
        size: files.iter().map(|file| file.bytes).sum(),
        files,
    };
    if summary.files.iter().any(|file| file.name == EVENTS_FILE) {
        let log = store.read(connection, EVENTS_FILE).await?;
        summary.format = RecordingFormat::Sshpod;
        read_log(&mut summary, &log);
    } else if summary.files.len() == 1 && summary.files[0].name == connection {
        let file = store.read(connection, connection).await?;
        read_one_file(&mut summary, &file);
    }
    Ok(summary)
}

/// Fills `summary` from an event log.
fn read_log(summary: &mut Summary, log: &[u8]) {
    let mut tried = None;
    let mut accepted = None;
    summary.status = Status::Open;
    for line in log_lines::lines(log) {
        summary.events = line.number;
        let Ok(members) = line.content else {
            continue;
        };
        if let Some(at) = members.at() {
            summary.start.get_or_insert(at);
            summary.end = Some(at);
        }
        if summary.remote.is_none() {
            summary.remote = members.text("remote").map(str::to_owned);
        }
        if let Some(user) = members.text("user") {
            tried = Some(user.to_owned());
        }
        match members.kind() {
            Some("login-accepted") => {
                if let Some(name) = members.text("authenticated").or(members.text("user")) {
                    accepted = Some(name.to_owned());
                }
                summary.authenticated = true;
            }
            Some("end") => summary.status = Status::of_end(&members),
            _ => {}
        }
    }
    summary.user = accepted.or(tried);
}

/// Fills `summary` from a one-file recording in one of ContainerSSH's formats.
fn read_one_file(summary: &mut Summary, file: &[u8]) {
    if file.starts_with(BINARY_MAGIC) {
        summary.format = RecordingFormat::Binary;
        return;
    }
    let Ok(cast) = asciicast::parse(file) else {
        return;
    };
    summary.format = RecordingFormat::Asciinema;
    summary.start = cast.header.start();
    if let (Some(start), Some(last)) = (summary.start, cast.events.last()) {
        summary.end = Duration::try_from_secs_f64(last.time)
            .ok()
            .and_then(|length| start.checked_add(length));
    }
    summary.events = u64::try_from(cast.events.len()).unwrap_or(u64::MAX);
}

/// `Option<SystemTime>` as an RFC 3339 string (UTC, with the fraction the time has) or null.
mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        time: &Option<SystemTime>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => {
                serializer.collect_str(&humantime::format_rfc3339_nanos(*time).to_string())
            }
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| humantime::parse_rfc3339(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::Value;

    use super::*;
    use crate::chain::Chain;
    use crate::store::DirStore;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    fn at(text: &str) -> SystemTime {
        humantime::parse_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// Writes an event log of `lines` (JSON objects without `chain`) for `ID` under `root`.
    fn write_log(root: &Path, lines: &[Value]) -> std::path::PathBuf {
        let dir = root.join(ID);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let mut chain = Chain::new();
        let mut log = Vec::new();
        for line in lines {
            log.extend(chain.link(line.to_string().as_bytes()));
        }
        std::fs::write(dir.join(EVENTS_FILE), log).unwrap_or_else(|e| panic!("{e}"));
        dir
    }

    fn event(seq: u64, time: &str, user: Value, kind: &str, own: Value) -> Value {
        let mut line = serde_json::json!({
            "seq": seq, "at": time, "connection": ID, "remote": "192.0.2.7:50022",
            "user": user, "channel": null, "kind": kind,
        });
        if let (Some(line), Value::Object(own)) = (line.as_object_mut(), own) {
            line.extend(own);
        }
        line
    }

    fn summary_of(root: &Path) -> Summary {
        let store = DirStore::new(root);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        runtime
            .block_on(summarize(&store, ID))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_complete_log_gives_who_from_where_when_and_how_long() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let null = Value::Null;
        let dir = write_log(
            root.path(),
            &[
                event(
                    0,
                    "2026-12-07T04:00:00.25Z",
                    null.clone(),
                    "connected",
                    null.clone(),
                ),
                event(
                    1,
                    "2026-12-07T04:00:01Z",
                    "root".into(),
                    "login-refused",
                    serde_json::json!({"method": "password", "reason": "wrong"}),
                ),
                event(
                    2,
                    "2026-12-07T04:00:02Z",
                    "alice".into(),
                    "login-accepted",
                    serde_json::json!({"method": "publickey", "authenticated": "alice-ops"}),
                ),
                event(
                    3,
                    "2026-12-07T04:01:30.75Z",
                    "alice".into(),
                    "closed",
                    null.clone(),
                ),
                event(
                    4,
                    "2026-12-07T04:01:30.75Z",
                    "alice".into(),
                    "end",
                    serde_json::json!({"lines": 5, "files": ["channel-0.cast", "channel-2.cast"]}),
                ),
            ],
        );
        std::fs::write(dir.join("channel-2.cast"), "{}\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("channel-0.cast"), "{}\n").unwrap_or_else(|e| panic!("{e}"));

        let summary = summary_of(root.path());
        assert_eq!(summary.connection, ID);
        assert_eq!(summary.format, RecordingFormat::Sshpod);
        assert_eq!(summary.user.as_deref(), Some("alice-ops"));
        assert!(summary.authenticated);
        assert_eq!(summary.remote.as_deref(), Some("192.0.2.7:50022"));
        assert_eq!(summary.start, Some(at("2026-12-07T04:00:00.25Z")));
        assert_eq!(summary.end, Some(at("2026-12-07T04:01:30.75Z")));
        assert_eq!(summary.duration(), Some(Duration::from_millis(90_500)));
        assert_eq!(summary.status, Status::Complete);
        assert_eq!(summary.events, 5);
        let log_size = std::fs::metadata(dir.join(EVENTS_FILE))
            .map(|m| m.len())
            .unwrap_or_default();
        assert_eq!(summary.size, log_size + 6);
        assert_eq!(
            summary.casts(),
            [(0, "channel-0.cast"), (2, "channel-2.cast")]
        );

        let json = serde_json::to_value(&summary).unwrap_or_default();
        assert_eq!(json["start"], "2026-12-07T04:00:00.250000000Z");
        assert_eq!(json["status"], "complete");
        let back: Summary = serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, summary);
    }

    #[test]
    fn a_log_without_its_end_is_open_and_a_refused_client_keeps_its_name() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let null = Value::Null;
        let dir = write_log(
            root.path(),
            &[
                event(
                    0,
                    "2026-12-07T04:00:00Z",
                    null.clone(),
                    "connected",
                    null.clone(),
                ),
                event(
                    1,
                    "2026-12-07T04:00:03Z",
                    "root".into(),
                    "login-refused",
                    serde_json::json!({"method": "password", "reason": "wrong"}),
                ),
            ],
        );
        // The crash cut the next line short.
        let mut log = std::fs::read(dir.join(EVENTS_FILE)).unwrap_or_default();
        log.extend_from_slice(b"{\"seq\":2,\"at\":\"2026-12-07T04:09");
        std::fs::write(dir.join(EVENTS_FILE), log).unwrap_or_else(|e| panic!("{e}"));

        let summary = summary_of(root.path());
        assert_eq!(summary.status, Status::Open);
        assert_eq!(summary.user.as_deref(), Some("root"));
        assert!(!summary.authenticated);
        assert_eq!(summary.end, Some(at("2026-12-07T04:00:03Z")));
        assert_eq!(summary.events, 3);
    }

    #[test]
    fn a_log_closed_after_a_crash_is_interrupted() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let null = Value::Null;
        write_log(
            root.path(),
            &[
                event(
                    0,
                    "2026-12-07T04:00:00Z",
                    null.clone(),
                    "connected",
                    null.clone(),
                ),
                event(
                    1,
                    "2026-12-07T05:00:00Z",
                    null,
                    "end",
                    serde_json::json!({"lines": 2, "files": [], "interrupted": true}),
                ),
            ],
        );
        let summary = summary_of(root.path());
        assert_eq!(summary.status, Status::Interrupted);
        assert_eq!(summary.status.as_str(), "interrupted");
        assert_eq!(summary.duration(), Some(Duration::from_secs(3600)));
    }

    #[test]
    fn containerssh_s_one_file_formats_say_what_they_can() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            root.path().join(ID),
            "{\"version\":2,\"width\":80,\"height\":25,\"timestamp\":1796616000}\n\
             [0.5,\"o\",\"$ \"]\n[12.25,\"o\",\"exit\\r\\n\"]\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let summary = summary_of(root.path());
        assert_eq!(summary.format, RecordingFormat::Asciinema);
        assert_eq!(summary.status, Status::Unknown);
        assert_eq!(summary.duration(), Some(Duration::from_millis(12_250)));
        assert_eq!(summary.events, 2);

        let mut binary = b"ContainerSSH-Auditlog".to_vec();
        binary.resize(40, 0);
        std::fs::write(root.path().join(ID), binary).unwrap_or_else(|e| panic!("{e}"));
        let summary = summary_of(root.path());
        assert_eq!(summary.format, RecordingFormat::Binary);
        assert_eq!((summary.size, summary.start), (40, None));
    }

    #[test]
    fn a_missing_recording_is_not_found() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = DirStore::new(root.path());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let error = runtime
            .block_on(summarize(&store, ID))
            .err()
            .map(|e| e.kind());
        assert_eq!(error, Some(io::ErrorKind::NotFound));
        assert_eq!(cast_channel("channel-12.cast"), Some(12));
        assert_eq!(cast_channel("channel-x.cast"), None);
        assert_eq!(cast_name(4), "channel-4.cast");
    }
}
