//! `sshpod audit` as people run it: the real binary against recordings written in a temporary
//! directory the way the recorder writes them (a hash-chained `events.jsonl`, asciicast files,
//! `recording-file` digests).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sshpod_audit::chain::Chain;
use sshpod_audit::containerssh::{self, type_id, type_key, AuditLog, BinaryWriter};
use sshpod_audit::item::{Item, Record};
use sshpod_config::AuditIntercept;
use sshpod_core::{
    AuthMethod, ChannelKind, ConnectionId, Credential, Event, EventKind, ExitStatus,
};

const ALICE: &str = "a11ce000000000000000000000000001";
const BOB: &str = "b0b00000000000000000000000000002";
const RECENT: &str = "c0ffee00000000000000000000000003";

/// The terminal session of ALICE's recording, channel 0.
const CAST: &str = "{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":1740801601,\
                    \"env\":{\"TERM\":\"xterm\"}}\n\
                    [0.05,\"o\",\"$ \"]\n\
                    [0.8,\"i\",\"echo hi\\r\"]\n\
                    [0.81,\"o\",\"echo hi\\r\\n\"]\n\
                    [0.9,\"r\",\"100x30\"]\n\
                    [0.95,\"o\",\"\\u001b[1mhi\\u001b[0m\\r\\n$ \"]\n";
const CAST_OUTPUT: &str = "$ echo hi\r\n\u{1b}[1mhi\u{1b}[0m\r\n$ ";

/// A recording as the recorder writes one.
struct Recording {
    dir: PathBuf,
    id: String,
    remote: String,
    user: Option<String>,
    chain: Chain,
    log: Vec<u8>,
    files: Vec<String>,
}

impl Recording {
    fn new(root: &Path, id: &str, remote: &str) -> Self {
        let dir = root.join(id);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        Self {
            dir,
            id: id.to_owned(),
            remote: remote.to_owned(),
            user: None,
            chain: Chain::new(),
            log: Vec::new(),
            files: Vec::new(),
        }
    }

    fn event(&mut self, at: &str, channel: Option<u32>, kind: &str, own: Value) -> &mut Self {
        let mut line = json!({
            "seq": self.chain.lines(), "at": at, "connection": self.id, "remote": self.remote,
            "user": self.user, "channel": channel, "kind": kind,
        });
        if let (Some(line), Value::Object(own)) = (line.as_object_mut(), own) {
            line.extend(own);
        }
        let content = line.to_string();
        self.log.extend(self.chain.link(content.as_bytes()));
        self
    }

    fn login(&mut self, at: &str, user: &str) -> &mut Self {
        self.user = Some(user.to_owned());
        self.event(
            at,
            None,
            "login-accepted",
            json!({"method": "publickey", "authenticated": user}),
        )
    }

    /// Writes a data file and the line with its digest.
    fn data_file(&mut self, at: &str, name: &str, data: &[u8]) -> &mut Self {
        std::fs::write(self.dir.join(name), data).unwrap_or_else(|e| panic!("{e}"));
        self.files.push(name.to_owned());
        let digest = hex::encode(Sha256::digest(data));
        self.event(
            at,
            None,
            "recording-file",
            json!({"file": name, "bytes": data.len(), "sha256": digest}),
        )
    }

    /// `closed`, then `end` as the recorder writes it (`interrupted` when recovery closes it).
    fn end_with(&mut self, at: &str, interrupted: bool) -> &mut Self {
        self.event(at, None, "closed", Value::Null);
        let mut end = json!({"lines": self.chain.lines() + 1, "files": self.files});
        if interrupted {
            end["interrupted"] = true.into();
        }
        self.event(at, None, "end", end)
    }

    fn end(&mut self, at: &str) -> &mut Self {
        self.end_with(at, false)
    }

    fn write(&self) -> String {
        std::fs::write(self.dir.join("events.jsonl"), &self.log).unwrap_or_else(|e| panic!("{e}"));
        self.chain.head().to_owned()
    }
}

/// ALICE: a complete terminal session with a file transfer; returns its digest.
fn alice(root: &Path) -> String {
    let mut recording = Recording::new(root, ALICE, "192.0.2.7:50022");
    recording
        .event(
            "2025-03-01T04:00:00.000000001Z",
            None,
            "connected",
            Value::Null,
        )
        .login("2025-03-01T04:00:00.5Z", "alice")
        .event(
            "2025-03-01T04:00:01Z",
            Some(0),
            "channel-opened",
            json!({"channelKind": "session"}),
        )
        .event(
            "2025-03-01T04:00:01.1Z",
            Some(0),
            "pty",
            json!({"term": "xterm", "cols": 80, "rows": 24}),
        )
        .event(
            "2025-03-01T04:00:01.2Z",
            Some(0),
            "env",
            json!({"name": "LANG", "value": "C\u{1b}[2J"}),
        )
        .event(
            "2025-03-01T04:00:01.3Z",
            Some(0),
            "process-starting",
            json!({"command": "shell", "tty": true}),
        )
        .event(
            "2025-03-01T04:00:02Z",
            Some(1),
            "file-written",
            json!({"path": "/tmp/notes.txt", "bytes": 5}),
        )
        .event(
            "2025-03-01T04:01:30Z",
            Some(0),
            "process-exited",
            json!({"exitStatus": 0}),
        )
        .data_file("2025-03-01T04:01:30Z", "channel-0.cast", CAST.as_bytes())
        .data_file(
            "2025-03-01T04:01:30Z",
            "channel-2.cast",
            b"{\"version\":2,\"width\":10,\"height\":5}\n[0.1,\"o\",\"two\"]\n",
        )
        .end("2025-03-01T04:01:30Z");
    recording.write()
}

/// BOB: a connection whose sshpod was killed after the login (no end line).
fn bob(root: &Path) {
    let mut recording = Recording::new(root, BOB, "198.51.100.3:41000");
    recording
        .event("2025-03-01T06:00:00Z", None, "connected", Value::Null)
        .login("2025-03-01T06:00:01Z", "bob")
        .event(
            "2025-03-01T06:05:00Z",
            Some(0),
            "channel-opened",
            json!({"channelKind": "session"}),
        );
    recording.write();
}

/// RECENT: alice again, ten minutes ago.
fn recent(root: &Path) {
    let ten_minutes_ago = SystemTime::now() - Duration::from_secs(600);
    let at = humantime::format_rfc3339_nanos(ten_minutes_ago).to_string();
    let mut recording = Recording::new(root, RECENT, "203.0.113.9:1234");
    recording
        .event(&at, None, "connected", Value::Null)
        .login(&at, "alice")
        .end(&at);
    recording.write();
}

fn sshpod(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sshpod"))
        .args(args)
        .current_dir(dir)
        .env_remove("SSHPOD_CONFIG")
        .output()
        .unwrap_or_else(|e| panic!("running sshpod: {e}"))
}

/// Runs `sshpod audit --dir ROOT ARGS...`.
fn audit(root: &Path, args: &[&str]) -> Output {
    let mut all = vec!["audit", "--dir", root.to_str().unwrap_or_default()];
    all.extend_from_slice(args);
    sshpod(root, &all)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn succeeds(output: Output) -> String {
    assert!(
        output.status.success(),
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

fn fails(output: Output) -> (String, String) {
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout:\n{}\nstderr:\n{}",
        stdout(&output),
        stderr(&output)
    );
    (stdout(&output), stderr(&output))
}

fn root() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("a temporary directory: {e}"))
}

/// The connection ids of `ls`'s rows, in order.
fn listed(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|row| row.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn ls_lists_every_recording_oldest_first_and_filters_by_user_and_time() {
    let root = root();
    alice(root.path());
    bob(root.path());
    recent(root.path());
    let table = succeeds(audit(root.path(), &["ls"]));
    assert_eq!(listed(&table), [ALICE, BOB, RECENT], "{table}");
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "CONNECTION",
            "USER",
            "SOURCE",
            "START",
            "DURATION",
            "SIZE",
            "STATUS",
            "WHERE"
        ]
    );
    let alice_row = table.lines().nth(1).unwrap_or_default();
    let size: u64 = ["events.jsonl", "channel-0.cast", "channel-2.cast"]
        .iter()
        .map(|name| std::fs::metadata(root.path().join(ALICE).join(name)).map_or(0, |m| m.len()))
        .sum();
    let cells: Vec<&str> = alice_row
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        cells,
        [
            ALICE,
            "alice",
            "192.0.2.7:50022",
            "2025-03-01T04:00:00Z",
            "1m 29s",
            &format!("{:.1} KiB", size as f64 / 1024.0),
            "complete",
            &format!("{}/{ALICE}", root.path().display()),
        ]
    );
    let bob_row = table.lines().nth(2).unwrap_or_default();
    assert!(
        bob_row.contains(" bob ") && bob_row.contains("5m") && bob_row.contains(" open "),
        "{bob_row}"
    );

    let only = |args: &[&str]| {
        let mut all = vec!["ls"];
        all.extend_from_slice(args);
        listed(&succeeds(audit(root.path(), &all)))
    };
    assert_eq!(only(&["--user", "alice"]), [ALICE, RECENT]);
    assert_eq!(only(&["--user", "bob"]), [BOB]);
    assert_eq!(only(&["--user", "carol"]), Vec::<String>::new());
    assert_eq!(only(&["--since", "1h"]), [RECENT]);
    assert_eq!(only(&["--until", "2025-03-01T05:00:00Z"]), [ALICE]);
    assert_eq!(
        only(&[
            "--since",
            "2025-03-01T04:30:00Z",
            "--until",
            "2025-03-01T07:00:00Z"
        ]),
        [BOB]
    );
    assert_eq!(
        only(&[
            "--user",
            "alice",
            "--since",
            "2025-03-01T04:01:00Z",
            "--until",
            "2025-03-01T04:02:00Z"
        ]),
        [ALICE]
    );

    let error = audit(root.path(), &["ls", "--since", "the day before"]);
    assert_eq!(error.status.code(), Some(2), "{}", stderr(&error));
    assert!(
        stderr(&error).contains("nor a time ago"),
        "{}",
        stderr(&error)
    );
}

#[test]
fn ls_reads_the_configured_directory_by_default() {
    let root = root();
    let recordings = root.path().join("recordings");
    std::fs::create_dir(&recordings).unwrap_or_else(|e| panic!("{e}"));
    alice(&recordings);
    let config = |storage: &str| {
        format!(
            "auth:\n  password:\n    method: htpasswd\n    htpasswd:\n      file: /etc/htpasswd\n\
             audit:\n  enable: true\n  format: sshpod\n  storage: {storage}\n  \
             file:\n    directory: {}\n",
            recordings.display()
        )
    };
    std::fs::write(root.path().join("config.yaml"), config("file"))
        .unwrap_or_else(|e| panic!("{e}"));
    let table = succeeds(sshpod(root.path(), &["audit", "ls"]));
    assert_eq!(listed(&table), [ALICE], "{table}");

    std::fs::write(root.path().join("config.yaml"), config("none"))
        .unwrap_or_else(|e| panic!("{e}"));
    let (_, message) = fails(sshpod(root.path(), &["audit", "ls"]));
    assert!(message.contains("--dir DIR or --s3"), "{message}");

    std::fs::write(root.path().join("config.yaml"), "audit: {format: sshpd}\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let bad = sshpod(root.path(), &["audit", "ls"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("config.yaml:1:17: key `audit.format`"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn show_prints_one_readable_line_per_event_and_escapes_what_clients_wrote() {
    let root = root();
    alice(root.path());
    bob(root.path());
    // An unambiguous start of the id is enough.
    let text = succeeds(audit(root.path(), &["show", "a11ce"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        format!("connection {ALICE} from 192.0.2.7:50022, user alice (sshpod format, complete)")
    );
    assert_eq!(lines[1], "2025-03-01T04:00:00.000Z  -   connected");
    assert_eq!(
        lines[2],
        "2025-03-01T04:00:00.500Z  -   login-accepted      authenticated=alice method=publickey"
    );
    assert_eq!(
        lines[4],
        "2025-03-01T04:00:01.100Z  0   pty                 cols=80 rows=24 term=xterm"
    );
    // The escape sequence a client put in a variable is shown, not played.
    assert_eq!(
        lines[5],
        "2025-03-01T04:00:01.200Z  0   env                 name=LANG value=\"C\\u001b[2J\""
    );
    assert!(!text.contains('\u{1b}'));
    assert_eq!(
        lines[7],
        "2025-03-01T04:00:02.000Z  1   file-written        bytes=5 path=/tmp/notes.txt"
    );
    assert!(lines.last().is_some_and(|l| l.contains("  end ")), "{text}");
    assert_eq!(lines.len(), 1 + 12);

    let text = succeeds(audit(root.path(), &["show", BOB]));
    assert!(text.contains("(sshpod format, open)"), "{text}");
    assert!(
        text.trim_end()
            .ends_with("has not closed the recording yet)"),
        "{text}"
    );

    let (_, message) = fails(audit(root.path(), &["show", "ffff"]));
    assert!(message.contains("no recording ffff in"), "{message}");
    let (_, message) = fails(audit(root.path(), &["show", "../etc"]));
    assert!(message.contains("is not a connection id"), "{message}");
}

#[test]
fn ids_that_start_several_recordings_are_refused() {
    let root = root();
    alice(root.path());
    let mut other = Recording::new(
        root.path(),
        "a11ce999999999999999999999999999",
        "192.0.2.8:1",
    );
    other.event("2025-03-01T04:00:00Z", None, "connected", Value::Null);
    other.write();
    let (_, message) = fails(audit(root.path(), &["show", "a11ce"]));
    assert!(message.contains("starts 2 recordings' ids"), "{message}");
}

#[test]
fn export_json_is_the_event_log_as_an_array() {
    let root = root();
    alice(root.path());
    let text = succeeds(audit(root.path(), &["export", ALICE, "--format", "json"]));
    let events: Vec<Value> = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(events.len(), 12);
    assert_eq!(events[0]["kind"], "connected");
    assert_eq!(events[4]["value"], "C\u{1b}[2J");
    assert_eq!(events[11]["kind"], "end");
    assert!(events
        .iter()
        .all(|e| e["chain"].as_str().map(str::len) == Some(64)));

    let file = root.path().join("export.json");
    let printed = succeeds(audit(
        root.path(),
        &[
            "export",
            ALICE,
            "--format",
            "json",
            "-o",
            file.to_str().unwrap_or_default(),
        ],
    ));
    assert!(printed.is_empty());
    assert_eq!(std::fs::read_to_string(&file).unwrap_or_default(), text);

    // An interrupted log exports what it has, without the line the crash cut short.
    bob(root.path());
    let log = root.path().join(BOB).join("events.jsonl");
    let mut bytes = std::fs::read(&log).unwrap_or_default();
    bytes.extend_from_slice(b"{\"seq\":3,\"at\":\"2026-12");
    std::fs::write(&log, bytes).unwrap_or_else(|e| panic!("{e}"));
    let output = audit(root.path(), &["export", BOB, "--format", "json"]);
    assert!(
        stderr(&output).contains("line 4 was cut short"),
        "{}",
        stderr(&output)
    );
    let events: Vec<Value> = serde_json::from_str(&succeeds(output)).unwrap_or_default();
    assert_eq!(events.len(), 3);
}

#[test]
fn export_asciicast_is_the_terminal_session_s_cast() {
    let root = root();
    alice(root.path());
    let cast = succeeds(audit(
        root.path(),
        &["export", ALICE, "--format", "asciicast"],
    ));
    assert_eq!(cast, CAST);
    let second = succeeds(audit(
        root.path(),
        &["export", ALICE, "--format", "asciicast", "--channel", "2"],
    ));
    assert!(second.ends_with("[0.1,\"o\",\"two\"]\n"), "{second}");
    let (_, message) = fails(audit(
        root.path(),
        &["export", ALICE, "--format", "asciicast", "--channel", "1"],
    ));
    assert!(
        message.contains("no terminal session on channel 1; it has: 0, 2"),
        "{message}"
    );
}

/// Nanoseconds since the epoch of an RFC 3339 time, as ContainerSSH stamps messages.
fn nanos(text: &str) -> i64 {
    let at = humantime::parse_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
}

fn decoded(file: &[u8]) -> AuditLog {
    containerssh::decode(file).unwrap_or_else(|e| panic!("decoding the export: {e}"))
}

#[test]
fn export_containerssh_writes_the_session_as_containersshs_binary_log() {
    let root = root();
    alice(root.path());
    let file = root.path().join("alice.bin");
    let printed = succeeds(audit(
        root.path(),
        &[
            "export",
            ALICE,
            "--format",
            "containerssh",
            "-o",
            file.to_str().unwrap_or_default(),
        ],
    ));
    assert!(printed.is_empty());
    let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{e}"));
    let log = decoded(&bytes);
    assert_eq!((log.version, log.truncated), (2, false));
    let m = &log.messages;
    let types: Vec<(&str, Option<u64>)> = m
        .iter()
        .map(|m| (type_key(m.type_id), m.channel_id))
        .collect();
    assert_eq!(
        types,
        [
            ("connect", None),
            ("auth_pubkey", None),
            ("auth_pubkey_successful", None),
            ("handshake_successful", None),
            ("new_channel_successful", Some(0)),
            ("pty", Some(0)),
            ("setenv", Some(0)),
            ("shell", Some(0)),
            ("io", Some(0)),
            ("io", Some(0)),
            ("io", Some(0)),
            ("io", Some(0)),
            ("exit", Some(0)),
            ("close", Some(0)),
            // The second cast's data, though the log does not say how its channel started.
            ("io", Some(2)),
            ("disconnect", None),
        ]
    );
    assert!(m.iter().all(|m| m.connection_id == ALICE));
    assert_eq!(m[0].text("remoteAddr"), Some("192.0.2.7"));
    assert_eq!(m[0].timestamp, nanos("2025-03-01T04:00:00.000000001Z"));
    assert_eq!(m[3].text("username"), Some("alice"));
    assert_eq!(
        (
            m[5].text("term"),
            m[5].unsigned("columns"),
            m[5].unsigned("rows")
        ),
        (Some("xterm"), Some(80), Some(24))
    );
    assert_eq!(m[6].text("value"), Some("C\u{1b}[2J"));
    assert_eq!(m[7].unsigned("requestId"), Some(2));
    // The terminal's input and output, timed from the cast header's second (the shell's start,
    // 04:00:01.3, falls in it).
    let io: Vec<(Option<u64>, &[u8], i64)> = m[8..12]
        .iter()
        .map(|m| {
            let data = m.bytes("data").unwrap_or_default();
            (m.unsigned("stream"), data, m.timestamp)
        })
        .collect();
    assert_eq!(
        io,
        [
            (Some(1), &b"$ "[..], nanos("2025-03-01T04:00:01.05Z")),
            (Some(0), &b"echo hi\r"[..], nanos("2025-03-01T04:00:01.8Z")),
            (
                Some(1),
                &b"echo hi\r\n"[..],
                nanos("2025-03-01T04:00:01.81Z")
            ),
            (
                Some(1),
                "\u{1b}[1mhi\u{1b}[0m\r\n$ ".as_bytes(),
                nanos("2025-03-01T04:00:01.95Z")
            ),
        ]
    );
    assert_eq!(m[12].unsigned("exitStatus"), Some(0));
    assert_eq!(m[14].bytes("data"), Some(&b"two"[..]));

    // The same bytes on standard output.
    let output = audit(root.path(), &["export", ALICE, "--format", "containerssh"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout, bytes);
}

#[test]
fn export_containerssh_of_an_interrupted_recording_ends_where_it_does() {
    let root = root();
    bob(root.path());
    let output = audit(root.path(), &["export", BOB, "--format", "containerssh"]);
    assert!(
        stderr(&output).contains("the connection's close is not in the recording"),
        "{}",
        stderr(&output)
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let log = decoded(&output.stdout);
    assert!(log.truncated);
    let last = log.messages.last().map(|m| (m.type_id, m.channel_id));
    assert_eq!(last, Some((type_id::NEW_CHANNEL_SUCCESSFUL, Some(0))));

    // A damaged line is an error that says so.
    let events = root.path().join(BOB).join("events.jsonl");
    let mut damaged = b"not json\n".to_vec();
    damaged.extend(std::fs::read(&events).unwrap_or_default());
    std::fs::write(&events, damaged).unwrap_or_else(|e| panic!("{e}"));
    let (_, message) = fails(audit(
        root.path(),
        &["export", BOB, "--format", "containerssh"],
    ));
    assert!(message.contains("line 1 of the event log"), "{message}");
    assert!(message.contains("sshpod audit verify"), "{message}");
}

/// A connection recorded in ContainerSSH's binary format by sshpod's writer; without its close
/// when `interrupted`.
fn binary_recording(root: &Path, id: &str, interrupted: bool) {
    let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let remote = "192.0.2.9:40000"
        .parse()
        .unwrap_or_else(|e| panic!("an address: {e}"));
    let event = |ms: u64, channel: Option<u32>, kind: EventKind| {
        Item::Event(Event {
            seq: ms,
            at: start + Duration::from_millis(ms),
            connection: ConnectionId::random(),
            remote,
            user: None,
            channel,
            kind,
        })
    };
    let mut items = vec![
        event(0, None, EventKind::Connected),
        event(
            10,
            None,
            EventKind::LoginAccepted {
                credential: Credential::default(),
                user: "carol".to_owned(),
                method: AuthMethod::Password,
                authenticated: "carol".to_owned(),
                metadata: Vec::new(),
            },
        ),
        event(
            20,
            Some(0),
            EventKind::ChannelOpened {
                kind: ChannelKind::Session,
            },
        ),
        event(
            30,
            Some(0),
            EventKind::ProcessStarting {
                command: sshpod_core::Command::Exec("uptime".to_owned()),
                tty: false,
            },
        ),
        Item::Record {
            channel: 0,
            at: start + Duration::from_millis(40),
            record: Record::Output(b"up 3 days\n".to_vec()),
        },
        event(
            50,
            Some(0),
            EventKind::ProcessExited {
                status: ExitStatus::Code(0),
            },
        ),
        event(60, None, EventKind::Closed),
    ];
    if interrupted {
        items.pop();
    }
    let intercept = AuditIntercept {
        stdout: true,
        ..AuditIntercept::default()
    };
    let file = std::fs::File::create(root.join(id)).unwrap_or_else(|e| panic!("{e}"));
    let written = BinaryWriter::new(file, id).and_then(|mut writer| {
        for item in &items {
            writer.write(item, &intercept)?;
        }
        writer.finish()
    });
    if let Err(e) = written {
        panic!("writing {id}: {e}");
    }
}

#[test]
fn export_json_of_a_binary_recording_prints_containersshs_messages() {
    let root = root();
    binary_recording(root.path(), BOB, false);
    let text = succeeds(audit(root.path(), &["export", BOB, "--format", "json"]));
    let messages: Vec<Value> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let types: Vec<&str> = messages
        .iter()
        .map(|m| m["typeId"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        types,
        [
            "connect",
            "auth_password",
            "auth_password_successful",
            "handshake_successful",
            "new_channel_successful",
            "exec",
            "io",
            "exit",
            "close",
            "disconnect"
        ]
    );
    assert_eq!(
        messages[0],
        json!({
            "connectionId": BOB,
            "timestamp": 1_700_000_000_000_000_000_i64,
            "type": 0,
            "typeId": "connect",
            "typeName": "Connect",
            "payload": {"remoteAddr": "192.0.2.9", "country": "XX"},
            "channelId": null,
        })
    );
    assert_eq!(messages[5]["payload"]["program"], "uptime");
    // Bytes in base64, as ContainerSSH's decoder prints them.
    assert_eq!(messages[6]["payload"]["data"], "dXAgMyBkYXlzCg==");
    assert_eq!(messages[6]["channelId"], 0);

    // Exported to its own format, it is the file as it is.
    let output = audit(root.path(), &["export", BOB, "--format", "containerssh"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        output.stdout,
        std::fs::read(root.path().join(BOB)).unwrap_or_default()
    );

    // A log whose writer was interrupted: what it has, and a word on standard error.
    binary_recording(root.path(), RECENT, true);
    let output = audit(root.path(), &["export", RECENT, "--format", "json"]);
    assert!(
        stderr(&output).contains("stops before its disconnect"),
        "{}",
        stderr(&output)
    );
    let messages: Vec<Value> = serde_json::from_str(&succeeds(output)).unwrap_or_default();
    assert_eq!(messages.len(), 9);
    assert_eq!(messages[8]["typeId"], "close");
}

#[test]
fn play_at_max_speed_prints_the_recorded_output() {
    let root = root();
    alice(root.path());
    let output = audit(root.path(), &["play", ALICE, "--speed", "max"]);
    assert!(
        stderr(&output).contains("channels 0, 2"),
        "{}",
        stderr(&output)
    );
    assert_eq!(succeeds(output), CAST_OUTPUT);
    let second = succeeds(audit(
        root.path(),
        &["play", ALICE, "--speed", "max", "--channel", "2"],
    ));
    assert_eq!(second, "two");
    let bad = audit(root.path(), &["play", ALICE, "--speed", "fast"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn verify_passes_on_a_good_recording_and_names_what_was_changed() {
    let root = root();
    let digest = alice(root.path());
    let report = succeeds(audit(root.path(), &["verify", ALICE]));
    assert_eq!(
        report,
        format!("{ALICE}: ok: complete, 12 lines, 2 files, digest {digest}\n")
    );

    // One event changed: the chain breaks at its line.
    let log_path = root.path().join(ALICE).join("events.jsonl");
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let changed = log.replacen("\"/tmp/notes.txt\"", "\"/tmp/other.txt\"", 1);
    assert_ne!(changed, log);
    std::fs::write(&log_path, &changed).unwrap_or_else(|e| panic!("{e}"));
    let (report, _) = fails(audit(root.path(), &["verify", ALICE]));
    assert!(
        report.starts_with(&format!("{ALICE}: FAILED: line 7: the chain breaks here")),
        "{report}"
    );
    std::fs::write(&log_path, &log).unwrap_or_else(|e| panic!("{e}"));

    // The terminal session changed: the file is named.
    let cast_path = root.path().join(ALICE).join("channel-0.cast");
    std::fs::write(&cast_path, CAST.replace("hi", "ho")).unwrap_or_else(|e| panic!("{e}"));
    let (report, _) = fails(audit(root.path(), &["verify", ALICE]));
    assert_eq!(
        report,
        format!(
            "{ALICE}: FAILED: channel-0.cast was changed: its SHA-256 is not the one at line 9\n"
        )
    );
    std::fs::write(&cast_path, format!("{CAST}[2,\"o\",\"x\"]\n"))
        .unwrap_or_else(|e| panic!("{e}"));
    let (report, _) = fails(audit(root.path(), &["verify", ALICE]));
    assert!(report.contains("channel-0.cast was changed: "), "{report}");
    std::fs::remove_file(&cast_path).unwrap_or_else(|e| panic!("{e}"));
    let (report, _) = fails(audit(root.path(), &["verify", ALICE]));
    assert!(
        report.contains("channel-0.cast is missing (its digest is at line 9)"),
        "{report}"
    );
    std::fs::write(&cast_path, CAST).unwrap_or_else(|e| panic!("{e}"));

    // A file the log does not know.
    let extra = root.path().join(ALICE).join("channel-5.stdout");
    std::fs::write(&extra, "x").unwrap_or_else(|e| panic!("{e}"));
    let (report, _) = fails(audit(root.path(), &["verify", ALICE]));
    assert!(
        report.contains("channel-5.stdout is not in the log"),
        "{report}"
    );
    std::fs::remove_file(&extra).unwrap_or_else(|e| panic!("{e}"));

    // Lines cut off the end: interrupted, checked as far as it goes.
    let kept: String = log
        .lines()
        .take(9)
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(&log_path, format!("{kept}{{\"seq\":9,\"at\""))
        .unwrap_or_else(|e| panic!("{e}"));
    let report = succeeds(audit(root.path(), &["verify", ALICE]));
    assert_eq!(
        report,
        format!(
            "{ALICE}: ok: no end line (still recording, or interrupted), verified up to line 9, \
             1 file; line 10 was cut short; no digest yet for channel-2.cast\n"
        )
    );
    let (report, _) = fails(audit(root.path(), &["verify", "--require-end", ALICE]));
    assert!(
        report.starts_with(&format!("{ALICE}: FAILED: no end line")),
        "{report}"
    );
}

#[test]
fn a_recording_closed_after_a_crash_verifies_as_interrupted() {
    let root = root();
    let mut recording = Recording::new(root.path(), BOB, "198.51.100.3:41000");
    recording
        .event("2025-03-01T06:00:00Z", None, "connected", Value::Null)
        .login("2025-03-01T06:00:01Z", "bob")
        .data_file("2025-03-01T06:09:00Z", "channel-0.cast", CAST.as_bytes())
        .end_with("2025-03-01T06:09:00Z", true);
    let digest = recording.write();
    let report = succeeds(audit(root.path(), &["verify", "--require-end"]));
    assert_eq!(
        report,
        format!(
            "{BOB}: ok: interrupted (closed after its sshpod restarted), 5 lines, 1 file, digest \
             {digest}\n"
        )
    );
    let table = succeeds(audit(root.path(), &["ls"]));
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|row| row.contains(" interrupted ")),
        "{table}"
    );

    // An end line that names a file the log never gave a digest for.
    let mut recording = Recording::new(root.path(), ALICE, "192.0.2.7:50022");
    recording.files.push("channel-9.stdout".to_owned());
    recording
        .event("2025-03-01T04:00:00Z", None, "connected", Value::Null)
        .end("2025-03-01T04:00:01Z");
    recording.write();
    let (report, _) = fails(audit(root.path(), &["verify", ALICE]));
    assert_eq!(
        report,
        format!(
            "{ALICE}: FAILED: line 3: the end line names channel-9.stdout, which has no \
             recording-file line\n"
        )
    );
}

#[test]
fn verify_without_ids_checks_every_recording() {
    let root = root();
    alice(root.path());
    bob(root.path());
    let report = succeeds(audit(root.path(), &["verify"]));
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 2, "{report}");
    assert!(
        lines[0].starts_with(&format!("{ALICE}: ok: complete")),
        "{report}"
    );
    assert_eq!(
        lines[1],
        format!("{BOB}: ok: no end line (still recording, or interrupted), verified up to line 3, 0 files")
    );

    // A ContainerSSH recording has no chain to check.
    let mut binary = b"ContainerSSH-Auditlog".to_vec();
    binary.resize(40, 0);
    std::fs::write(root.path().join("d0000000000000000000000000000004"), binary)
        .unwrap_or_else(|e| panic!("{e}"));
    let (report, _) = fails(audit(root.path(), &["verify"]));
    assert!(
        report.contains("d0000000000000000000000000000004: FAILED: no event log"),
        "{report}"
    );
}
