//! The recorder when its disk refuses writes (full, found by the chaos run's spool-full
//! fault): a recording that could not be closed when its connection ended is closed once the
//! disk takes writes again, without a restart, and a recording that failed part-way is closed
//! as a crash's would be (its torn last line cut off), so both verify and can be uploaded.
//! A session whose recording is required learns it failed before its client learns the
//! session's outcome, even when the writer fails behind the session.

use std::error::Error;
use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use sshpod_audit::recorder::Audit;
use sshpod_audit::s3::SpoolBudget;
use sshpod_audit::{chain, layout};
use sshpod_config::{AuditConfig, AuditFormat, AuditStorage};
use std::sync::{Arc, Mutex};

use sshpod_core::{
    ChannelInfo, ChannelKind, ConnectionId, Ender, Event, EventKind, EventSink, TapRecord,
};

type TestResult = Result<(), Box<dyn Error>>;

/// The writer tries again every second; this is how long a test waits for it.
const DEADLINE: Duration = Duration::from_secs(20);

fn config(dir: &Path) -> AuditConfig {
    let mut config = AuditConfig {
        enable: true,
        format: AuditFormat::Sshpod,
        storage: AuditStorage::File,
        ..AuditConfig::default()
    };
    config.file.directory = dir.to_owned();
    config
}

fn remote() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 7], 50022))
}

fn event(connection: ConnectionId, seq: u64, kind: EventKind) -> Event {
    Event {
        seq,
        at: SystemTime::now(),
        connection,
        remote: remote(),
        user: None,
        channel: None,
        kind,
    }
}

fn start(dir: &Path, budget: Option<SpoolBudget>) -> Result<Audit, Box<dyn Error>> {
    start_with(dir, budget, false)
}

fn start_with(
    dir: &Path,
    budget: Option<SpoolBudget>,
    required: bool,
) -> Result<Audit, Box<dyn Error>> {
    let config = AuditConfig {
        required,
        ..config(dir)
    };
    match Audit::start(&config, false, None, budget)? {
        Some(audit) => Ok(audit),
        None => Err("recording is on, yet no recorder".into()),
    }
}

/// Waits until the state of `id` says complete.
fn wait_complete(dir: &Path, id: &str) -> TestResult {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(Some(state)) = layout::read_state(dir, id) {
            if state.complete {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("the recording of {id} was not closed within {DEADLINE:?}").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The event log verifies and its last line is the `end`.
fn closed_log(dir: &Path, id: &str) -> Result<Value, Box<dyn Error>> {
    let log = fs::read(layout::entry_path(dir, id).join("events.jsonl"))?;
    chain::verify(&log).map_err(|e| format!("the chain breaks: {e}"))?;
    let last = log
        .split(|&b| b == b'\n')
        .rfind(|l| !l.is_empty())
        .ok_or("an empty event log")?;
    let last: Value = serde_json::from_slice(last)?;
    if last["kind"] != "end" {
        return Err(format!("the last line is not the end: {last}").into());
    }
    Ok(last)
}

#[test]
fn a_recording_that_could_not_be_closed_is_closed_once_the_disk_takes_writes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let audit = start(dir.path(), None)?;
    let connection = ConnectionId::random();
    let id = connection.to_string();
    audit.attach(connection, remote(), Ender::new(|_| {}))?;
    audit.event(&event(connection, 0, EventKind::Connected));
    if !audit.drain(DEADLINE) {
        return Err("the writer did not catch up".into());
    }
    // The state directory stops taking writes (as a full disk would) before the end.
    let states = dir.path().join(".state");
    let saved = dir.path().join("saved-state");
    fs::rename(&states, &saved)?;
    fs::write(&states, b"not a directory")?;
    audit.event(&event(connection, 1, EventKind::Closed));
    if !audit.drain(DEADLINE) {
        return Err("the writer did not catch up".into());
    }
    // The disk takes writes again: the recording is closed without a restart.
    fs::remove_file(&states)?;
    fs::rename(&saved, &states)?;
    wait_complete(dir.path(), &id)?;
    closed_log(dir.path(), &id)?;
    Ok(())
}

#[test]
fn a_recording_that_failed_part_way_is_closed_as_interrupted_and_verifies() -> TestResult {
    let dir = tempfile::tempdir()?;
    // A spool with room for nothing: the first write fails the recording.
    let audit = start(dir.path(), Some(SpoolBudget::new(1, 0)))?;
    let connection = ConnectionId::random();
    let id = connection.to_string();
    audit.attach(connection, remote(), Ender::new(|_| {}))?;
    audit.event(&event(connection, 0, EventKind::Connected));
    if !audit.drain(DEADLINE) {
        return Err("the writer did not catch up".into());
    }
    // What a write cut short by a full disk leaves: half a line.
    fs::OpenOptions::new()
        .append(true)
        .open(layout::entry_path(dir.path(), &id).join("events.jsonl"))?
        .write_all(b"{\"seq\":1,\"at\":\"2026-")?;
    audit.event(&event(connection, 1, EventKind::Closed));
    wait_complete(dir.path(), &id)?;
    let end = closed_log(dir.path(), &id)?;
    assert_eq!(end["interrupted"], true, "{end}");
    Ok(())
}

/// A session channel's tap on `connection`.
fn session(connection: ConnectionId) -> ChannelInfo {
    ChannelInfo {
        connection,
        remote: remote(),
        user: Arc::from("alice"),
        channel: 0,
        kind: ChannelKind::Session,
    }
}

/// Runs a session whose output is 64 KiB under a recorder with a spool of `limit` bytes;
/// returns what the tap said about keeping the record and what the connection was told.
async fn session_under_spool_limit(
    limit: u64,
    required: bool,
) -> Result<(Option<bool>, Vec<String>), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let audit = start_with(dir.path(), Some(SpoolBudget::new(limit, 0)), required)?;
    let connection = ConnectionId::random();
    let told = Arc::new(Mutex::new(Vec::new()));
    let ender = {
        let told = Arc::clone(&told);
        Ender::new(move |message| told.lock().unwrap_or_else(|e| e.into_inner()).push(message))
    };
    audit.attach(connection, remote(), ender)?;
    audit.event(&event(connection, 0, EventKind::Connected));
    let mut tap = audit
        .tap(&session(connection))
        .ok_or("the session is not tapped")?;
    // Output recorded by default only for a terminal: say it is one.
    audit.event(&Event {
        channel: Some(0),
        ..event(
            connection,
            1,
            EventKind::PtyGranted {
                term: "xterm".into(),
                size: sshpod_core::TerminalSize { cols: 80, rows: 24 },
            },
        )
    });
    audit.event(&Event {
        channel: Some(0),
        ..event(
            connection,
            2,
            EventKind::ProcessStarting {
                command: sshpod_core::Command::Shell,
                tty: true,
            },
        )
    });
    tap.record(TapRecord::Output(&[b'x'; 64 << 10]));
    tap.record(TapRecord::Exit(sshpod_core::ExitStatus::Code(0)));
    // Asked at once: the writer is still behind (or not), the answer must not depend on it.
    let kept = match tap.kept() {
        Some(wait) => Some(tokio::time::timeout(DEADLINE, wait).await?),
        None => None,
    };
    let told = told.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok((kept, told))
}

#[tokio::test]
async fn a_required_recording_that_fails_behind_the_session_is_known_before_its_outcome(
) -> TestResult {
    // Room for the connection's first events, not for the session's output.
    let (kept, told) = session_under_spool_limit(4096, true).await?;
    assert_eq!(kept, Some(false), "the session's record was not kept");
    assert_eq!(told.len(), 1, "the connection is ended once: {told:?}");
    assert!(told[0].contains("recording failed"), "{told:?}");
    Ok(())
}

#[tokio::test]
async fn a_required_recording_with_room_keeps_the_session_and_says_so() -> TestResult {
    let (kept, told) = session_under_spool_limit(64 << 20, true).await?;
    assert_eq!(kept, Some(true));
    assert!(told.is_empty(), "{told:?}");
    Ok(())
}

#[tokio::test]
async fn a_recording_not_required_never_holds_a_sessions_outcome_back() -> TestResult {
    let (kept, _) = session_under_spool_limit(4096, false).await?;
    assert_eq!(kept, None, "only a required recording is waited for");
    Ok(())
}
