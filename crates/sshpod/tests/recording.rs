//! Session recordings, in-process: the recorder subscribed to a server with a fake backend and
//! a real SSH client. What a recording holds, that it verifies, that a password stays out of
//! it, and that a recording that is required refuses or ends the sessions it cannot keep.

// A test binary: its helpers unwrap as its tests do, a failure is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sshpod_audit::recorder::Audit;
use sshpod_audit::{chain, layout};
use sshpod_config::{AuditConfig, AuditFormat, AuditIntercept, AuditStorage};
use sshpod_core::{EventKind, EventSink};
use sshpod_test_support::{FakeBackend, TestClient, TestGateway, PASSWORD};

const DEADLINE: Duration = Duration::from_secs(20);

fn audit(dir: &Path, intercept: AuditIntercept, required: bool) -> AuditConfig {
    let mut config = AuditConfig {
        enable: true,
        format: AuditFormat::Sshpod,
        storage: AuditStorage::File,
        intercept,
        required,
        ..AuditConfig::default()
    };
    config.file.directory = dir.to_owned();
    config
}

async fn gateway(config: &AuditConfig, fake: &FakeBackend) -> TestGateway {
    let recorder: Arc<dyn EventSink> = Arc::new(
        Audit::start(config, false, None, None)
            .expect("a recorder")
            .expect("recording is on"),
    );
    let audit = config.clone();
    TestGateway::start_with_sinks(fake.clone(), move |c| c.audit = audit, vec![recorder]).await
}

/// Waits until the recording of the gateway's first connection is complete; returns its id.
async fn complete_recording(gw: &TestGateway, dir: &Path) -> String {
    let connected = gw
        .recorder
        .wait_for_event(DEADLINE, "a connection", |k| {
            matches!(k, EventKind::Connected)
        })
        .await;
    let id = connected.connection.to_string();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Ok(Some(state)) = layout::read_state(dir, &id) {
            if state.complete {
                return id;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the recording of {id} was not completed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn lines(dir: &Path, id: &str) -> Vec<Value> {
    let log = std::fs::read(dir.join(id).join("events.jsonl")).unwrap();
    chain::verify(&log).expect("the chain verifies");
    String::from_utf8(log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The SSH channel number of the first session.
fn session_channel(lines: &[Value]) -> u64 {
    lines
        .iter()
        .find(|l| l["kind"] == "channel-opened")
        .and_then(|l| l["channel"].as_u64())
        .expect("a session was opened")
}

fn kinds(lines: &[Value]) -> Vec<&str> {
    lines.iter().filter_map(|l| l["kind"].as_str()).collect()
}

#[tokio::test]
async fn a_terminal_session_is_recorded_as_an_event_log_and_a_cast_that_verify() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBackend::new();
    let gw = gateway(&audit(dir.path(), AuditIntercept::default(), false), &fake).await;
    let mut client = TestClient::connect(gw.addr, "alice").await.unwrap();
    assert!(client.auth_publickey(gw.client_key()).await.unwrap());
    let mut session = client.open_session().await.unwrap();
    assert!(session.set_env("LANG", "C.UTF-8").await.unwrap());
    assert!(session.request_pty("xterm-256color", 80, 24).await.unwrap());
    assert!(session.exec("tty").await.unwrap());
    assert!(session.read_until_stdout_contains("cols=80").await.unwrap());
    session.window_change(100, 30).await.unwrap();
    assert!(session
        .read_until_stdout_contains("resize 100x30")
        .await
        .unwrap());
    session.signal(russh::Sig::TERM).await.unwrap();
    session.read_to_end().await.unwrap();
    client.disconnect().await.unwrap();

    let id = complete_recording(&gw, dir.path()).await;
    let log = lines(dir.path(), &id);
    let kinds = kinds(&log);
    for kind in [
        "connected",
        "login-accepted",
        "recording-settings",
        "channel-opened",
        "env",
        "pty",
        "process-starting",
        "resize",
        "signal",
        "process-exited",
        "recording-file",
        "closed",
    ] {
        assert!(kinds.contains(&kind), "no {kind} in {kinds:?}");
    }
    assert_eq!(kinds.last(), Some(&"end"));
    let accepted = log.iter().find(|l| l["kind"] == "login-accepted").unwrap();
    let fingerprint = gw
        .client_key()
        .public_key()
        .fingerprint(russh::keys::HashAlg::Sha256)
        .to_string();
    assert_eq!(accepted["key"], fingerprint);
    assert_eq!(accepted["method"], "publickey");
    let pty = log.iter().find(|l| l["kind"] == "pty").unwrap();
    assert_eq!(
        (pty["term"].as_str(), pty["cols"].as_u64()),
        (Some("xterm-256color"), Some(80))
    );
    assert!(log.iter().all(|l| l["connection"] == id.as_str()));

    // The cast plays as asciinema reads it: a header, then output and the resize in order.
    let cast_name = format!("channel-{}.cast", session_channel(&log));
    let cast = std::fs::read_to_string(dir.path().join(&id).join(&cast_name)).unwrap();
    let mut cast_lines = cast.lines();
    let header: Value = serde_json::from_str(cast_lines.next().unwrap()).unwrap();
    assert_eq!(
        (header["version"].as_u64(), header["width"].as_u64()),
        (Some(2), Some(80))
    );
    assert_eq!(header["env"]["TERM"], "xterm-256color");
    let events: Vec<Value> = cast_lines
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let at = |code: &str, text: &str| {
        events
            .iter()
            .position(|e| e[1] == code && e[2].as_str().unwrap().contains(text))
            .unwrap_or_else(|| panic!("no {code} {text:?} in {events:?}"))
    };
    assert!(at("o", "cols=80") < at("r", "100x30"));
    assert!(at("r", "100x30") < at("o", "resize 100x30"));
    let times: Vec<f64> = events.iter().map(|e| e[0].as_f64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");

    // The cast's digest is in the chained log, so changing the cast is found.
    let digest = log
        .iter()
        .find(|l| l["kind"] == "recording-file" && l["file"] == cast_name.as_str())
        .unwrap();
    assert_eq!(digest["bytes"].as_u64(), Some(cast.len() as u64));
    use sha2_check::sha256_hex;
    assert_eq!(
        digest["sha256"].as_str(),
        Some(sha256_hex(cast.as_bytes()).as_str())
    );
    gw.stop().await;
}

mod sha2_check {
    /// SHA-256 through the same tool people check files with.
    pub fn sha256_hex(data: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, data).unwrap();
        let out = std::process::Command::new("sha256sum")
            .arg(&path)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()[..64].to_owned()
    }
}

#[tokio::test]
async fn streams_without_a_terminal_are_kept_as_intercept_says_and_passwords_stay_out() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBackend::new();
    let intercept = AuditIntercept {
        stdin: true,
        stdout: true,
        ..AuditIntercept::default()
    };
    let gw = gateway(&audit(dir.path(), intercept, false), &fake).await;
    let mut client = TestClient::connect(gw.addr, "alice").await.unwrap();
    assert!(!client.auth_password("not-the-password").await.unwrap());
    assert!(client.auth_password(PASSWORD).await.unwrap());
    let mut session = client.open_session().await.unwrap();
    assert!(session.exec("cat").await.unwrap());
    session.write(b"typed by the user\n").await.unwrap();
    session.eof().await.unwrap();
    let output = session.read_to_end().await.unwrap();
    assert_eq!(output.stdout, b"typed by the user\n");
    client.disconnect().await.unwrap();

    let id = complete_recording(&gw, dir.path()).await;
    let entry = dir.path().join(&id);
    let log = lines(dir.path(), &id);
    let stream = |name: &str| entry.join(format!("channel-{}.{name}", session_channel(&log)));
    assert_eq!(
        std::fs::read(stream("stdin")).unwrap(),
        b"typed by the user\n"
    );
    assert_eq!(
        std::fs::read(stream("stdout")).unwrap(),
        b"typed by the user\n"
    );
    assert!(!stream("stderr").exists(), "stderr is not intercepted");
    let refused = log.iter().find(|l| l["kind"] == "login-refused").unwrap();
    assert_eq!(refused["method"], "password");
    for file in std::fs::read_dir(&entry).unwrap() {
        let data = std::fs::read(file.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&data);
        assert!(!text.contains(PASSWORD) && !text.contains("not-the-password"));
    }
    gw.stop().await;
}

#[tokio::test]
async fn an_intercepted_password_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBackend::new();
    let intercept = AuditIntercept {
        passwords: true,
        ..AuditIntercept::default()
    };
    let gw = gateway(&audit(dir.path(), intercept, false), &fake).await;
    let mut client = TestClient::connect(gw.addr, "alice").await.unwrap();
    assert!(!client.auth_password("guess-1").await.unwrap());
    client.disconnect().await.unwrap();
    let id = complete_recording(&gw, dir.path()).await;
    let log = lines(dir.path(), &id);
    let refused = log.iter().find(|l| l["kind"] == "login-refused").unwrap();
    assert_eq!(refused["password"], "guess-1");
    gw.stop().await;
}

#[tokio::test]
async fn a_required_recording_that_cannot_start_refuses_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBackend::new();
    let gw = gateway(&audit(dir.path(), AuditIntercept::default(), true), &fake).await;
    // The directory goes away after start-up (an unmounted volume, say).
    std::fs::remove_dir_all(dir.path()).unwrap();
    let mut client = TestClient::connect(gw.addr, "alice").await.unwrap();
    let logged_in = client
        .auth_publickey(gw.client_key())
        .await
        .unwrap_or(false);
    assert!(!logged_in);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while client.disconnect_reason().is_none() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, message) = client.disconnect_reason().expect("told why");
    assert!(message.contains("cannot be recorded"), "{message}");
    assert!(fake.connects().is_empty());
    gw.stop().await;
}

#[tokio::test]
async fn a_required_recording_that_fails_ends_the_session_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBackend::new();
    let gw = gateway(&audit(dir.path(), AuditIntercept::default(), true), &fake).await;
    let mut client = TestClient::connect(gw.addr, "alice").await.unwrap();
    assert!(client.auth_publickey(gw.client_key()).await.unwrap());
    let connected = gw
        .recorder
        .wait_for_event(DEADLINE, "a connection", |k| {
            matches!(k, EventKind::Connected)
        })
        .await;
    // The recording's directory goes away: the terminal session's cast cannot be created.
    std::fs::remove_dir_all(dir.path().join(connected.connection.to_string())).unwrap();
    let mut session = client.open_session().await.unwrap();
    assert!(session.request_pty("xterm", 80, 24).await.unwrap());
    assert!(session.exec("sleep-forever").await.unwrap());
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while client.disconnect_reason().is_none() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, message) = client.disconnect_reason().expect("told why");
    assert!(message.contains("recording failed"), "{message}");
    gw.recorder
        .wait_for_event(DEADLINE, "the container's removal", |k| {
            matches!(k, EventKind::ContainerRemoved)
        })
        .await;
    gw.stop().await;
}

#[tokio::test]
async fn containerssh_binary_recordings_decode_to_the_session_as_it_happened() {
    use sshpod_audit::containerssh::{decode, type_id};
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBackend::new();
    let intercept = AuditIntercept {
        stdout: true,
        ..AuditIntercept::default()
    };
    let mut config = audit(dir.path(), intercept, false);
    config.format = AuditFormat::Binary;
    let gw = gateway(&config, &fake).await;
    let mut client = TestClient::connect(gw.addr, "alice").await.unwrap();
    assert!(client.auth_publickey(gw.client_key()).await.unwrap());
    let mut session = client.open_session().await.unwrap();
    assert!(session.request_pty("vt100", 90, 20).await.unwrap());
    assert!(session
        .exec("echo recorded for containerssh")
        .await
        .unwrap());
    session.read_to_end().await.unwrap();
    client.disconnect().await.unwrap();

    let id = complete_recording(&gw, dir.path()).await;
    let log = decode(&std::fs::read(dir.path().join(&id)).unwrap()).expect("it decodes");
    assert!(!log.truncated);
    let types: Vec<i32> = log.messages.iter().map(|m| m.type_id).collect();
    for wanted in [
        type_id::CONNECT,
        type_id::AUTH_PUBKEY_SUCCESSFUL,
        type_id::HANDSHAKE_SUCCESSFUL,
        type_id::CHANNEL_REQUEST_PTY,
        type_id::CHANNEL_REQUEST_EXEC,
        type_id::IO,
        type_id::EXIT,
    ] {
        assert!(types.contains(&wanted), "no {wanted} in {types:?}");
    }
    assert_eq!(types.last(), Some(&type_id::DISCONNECT));
    assert!(log.messages.iter().all(|m| m.connection_id == id));
    let pty = log
        .messages
        .iter()
        .find(|m| m.type_id == type_id::CHANNEL_REQUEST_PTY)
        .unwrap();
    assert_eq!(
        (pty.text("term"), pty.unsigned("columns")),
        (Some("vt100"), Some(90))
    );
    let output: Vec<u8> = log
        .messages
        .iter()
        .filter(|m| m.type_id == type_id::IO)
        .flat_map(|m| m.bytes("data").unwrap_or_default().to_vec())
        .collect();
    assert!(String::from_utf8_lossy(&output).contains("recorded for containerssh"));
    gw.stop().await;
}

/// A recorder whose record fails behind every session (as a full disk does after the
/// session's last output): it ends the connection when asked whether it kept the record.
struct FailsBehindTheSession {
    ender: std::sync::Mutex<Option<sshpod_core::Ender>>,
}

struct FailingTap(Option<sshpod_core::Ender>);

impl sshpod_core::ChannelTap for FailingTap {
    fn record(&mut self, _: sshpod_core::TapRecord<'_>) {}

    fn kept(&mut self) -> Option<sshpod_core::BoxFuture<'static, bool>> {
        if let Some(ender) = &self.0 {
            ender.end("the session's recording failed, so the session is ended");
        }
        Some(Box::pin(std::future::ready(false)))
    }
}

impl EventSink for FailsBehindTheSession {
    fn event(&self, _: &sshpod_core::Event) {}

    fn attach(
        &self,
        _: sshpod_core::ConnectionId,
        _: std::net::SocketAddr,
        ender: sshpod_core::Ender,
    ) -> Result<(), String> {
        *self.ender.lock().unwrap() = Some(ender);
        Ok(())
    }

    fn tap(&self, _: &sshpod_core::ChannelInfo) -> Option<Box<dyn sshpod_core::ChannelTap>> {
        Some(Box::new(FailingTap(self.ender.lock().unwrap().clone())))
    }
}

#[tokio::test]
async fn a_session_whose_required_record_was_not_kept_never_reports_success() {
    let fake = FakeBackend::new();
    let sink: Arc<dyn EventSink> = Arc::new(FailsBehindTheSession {
        ender: std::sync::Mutex::default(),
    });
    let gw = TestGateway::start_with_sinks(fake.clone(), |_| {}, vec![sink]).await;
    let mut client = TestClient::connect(gw.addr, "alice").await.unwrap();
    assert!(client.auth_publickey(gw.client_key()).await.unwrap());
    let output = client.exec("echo hello").await.unwrap();
    assert_eq!(
        output.exit, None,
        "no exit status for an unrecorded session"
    );
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while client.disconnect_reason().is_none() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, message) = client.disconnect_reason().expect("told why");
    assert!(message.contains("recording failed"), "{message}");
    gw.stop().await;
}
