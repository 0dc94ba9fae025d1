//! The recorder when its disk refuses writes (full, found by the chaos run's spool-full
//! fault): a recording that could not be closed when its connection ended is closed once the
//! disk takes writes again, without a restart, and a recording that failed part-way is closed
//! as a crash's would be (its torn last line cut off), so both verify and can be uploaded.

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
use sshpod_core::{ConnectionId, Ender, Event, EventKind, EventSink};

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
    match Audit::start(&config(dir), false, None, budget)? {
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
