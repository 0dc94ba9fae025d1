//! The SSH server in-process, with a fake backend and a real SSH client (russh): login
//! decisions, the phases of a connection, teardown, taps, the order of events and PROXY
//! protocol headers. No container engine; each test takes milliseconds.

// A test binary: its helpers unwrap as its tests do, a failure is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use sshpod_config::SecurityMode;
use sshpod_core::{
    AuthMethod, ChannelKind, ChannelRefusal, Event, EventKind, ExitStatus, LoginRefusal,
    RequestRefusal, Signal, TerminalSize,
};
use sshpod_test_support::{
    ExitOutcome, FakeBackend, OnConnect, Recorded, TestClient, TestGateway, PASSWORD,
};

/// Generous: on a loaded machine, a login takes a few hundred milliseconds at worst.
const DEADLINE: Duration = Duration::from_secs(20);

/// The events' names, in order, for comparing sequences.
fn names(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(|e| name(&e.kind)).collect()
}

fn name(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::Connected => "connected",
        EventKind::HandshakeTimedOut => "handshake timed out",
        EventKind::LoginGraceOver => "login grace over",
        EventKind::LoginRefused { .. } => "login refused",
        EventKind::LoginUnavailable { .. } => "login unavailable",
        EventKind::ConfigAnswerRejected { .. } => "config answer rejected",
        EventKind::ConfigSectionsIgnored { .. } => "config sections ignored",
        EventKind::CertificateAccepted { .. } => "certificate accepted",
        EventKind::LoginRestricted { .. } => "login restricted",
        EventKind::LoginAccepted { .. } => "login accepted",
        EventKind::ContainerReady { .. } => "container ready",
        EventKind::ContainerFailed { .. } => "container failed",
        EventKind::ContainerRemoved => "container removed",
        EventKind::ContainerRemovalFailed { .. } => "container removal failed",
        EventKind::ChannelOpened { .. } => "channel opened",
        EventKind::ChannelRefused { .. } => "channel refused",
        EventKind::RequestRefused { .. } => "request refused",
        EventKind::ProcessStarting { .. } => "process starting",
        EventKind::ProcessFailed { .. } => "process failed",
        EventKind::ProcessExited { .. } => "process exited",
        EventKind::ExitStatusUnknown { .. } => "exit status unknown",
        EventKind::ForwardFailed { .. } => "forward failed",
        EventKind::SessionEnded { .. } => "session ended",
        EventKind::Closed => "closed",
        _ => "other",
    }
}

async fn logged_in(gw: &TestGateway) -> TestClient {
    let mut client = TestClient::connect(gw.addr, "alice").await.unwrap();
    assert!(client.auth_publickey(gw.client_key()).await.unwrap());
    client
}

/// Waits for the connection's last event and returns all of its events.
async fn until_closed(gw: &TestGateway) -> Vec<Event> {
    gw.recorder
        .wait_for_events(DEADLINE, "the connection's end", |events| {
            events.iter().any(|e| matches!(e.kind, EventKind::Closed))
        })
        .await
}

#[tokio::test]
async fn a_key_login_runs_a_command_and_removes_its_container_once() {
    let fake = FakeBackend::new();
    let gw = TestGateway::start(fake.clone()).await;
    let client = logged_in(&gw).await;
    let output = client.exec("echo hello").await.unwrap();
    assert_eq!(output.stdout_text(), "hello\n");
    assert_eq!(output.exit, Some(ExitOutcome::Code(0)));
    client.disconnect().await.unwrap();

    let events = until_closed(&gw).await;
    assert_eq!(
        names(&events),
        [
            "connected",
            "login accepted",
            "container ready",
            "channel opened",
            "process starting",
            "process exited",
            "session ended",
            "container removed",
            "closed"
        ]
    );
    let connection = events[0].connection;
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.seq, i as u64, "numbered from 0 without gaps");
        assert_eq!(event.connection, connection);
    }
    assert_eq!(events[0].user, None, "no user before the login");
    assert!(events[2..]
        .iter()
        .all(|e| e.user.as_deref() == Some("alice")));
    assert!(matches!(
        &events[1].kind,
        EventKind::LoginAccepted { method: AuthMethod::PublicKey, authenticated, .. }
            if authenticated == "alice"
    ));
    let channel = events[3]
        .channel
        .expect("a channel event names its channel");
    assert!(events[3..6].iter().all(|e| e.channel == Some(channel)));
    assert!(matches!(
        events[5].kind,
        EventKind::ProcessExited {
            status: ExitStatus::Code(0)
        }
    ));
    fake.wait_until_no_containers(DEADLINE).await.unwrap();
    assert_eq!(fake.closes(connection), 1);
    assert_eq!(fake.connects()[0].user, "alice");
    gw.stop().await;
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_makes_no_container() {
    let fake = FakeBackend::new();
    let gw = TestGateway::start(fake.clone()).await;
    let mut client = TestClient::connect(gw.addr, "alice").await.unwrap();
    assert!(!client.auth_password("wrong").await.unwrap());
    let refused = gw
        .recorder
        .wait_for_event(DEADLINE, "a refusal", |k| {
            matches!(k, EventKind::LoginRefused { .. })
        })
        .await;
    assert!(matches!(
        refused.kind,
        EventKind::LoginRefused {
            method: AuthMethod::Password,
            reason: LoginRefusal::NotAccepted,
            ..
        }
    ));
    // A mistyped password may be typed again on the same connection.
    assert!(client.auth_password(PASSWORD).await.unwrap());
    client.disconnect().await.unwrap();
    let events = until_closed(&gw).await;
    assert_eq!(
        names(&events),
        [
            "connected",
            "login refused",
            "login accepted",
            "container ready",
            "session ended",
            "container removed",
            "closed"
        ]
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_unknown_user_is_refused_like_a_wrong_key() {
    let fake = FakeBackend::new();
    let gw = TestGateway::start(fake.clone()).await;
    let mut client = TestClient::connect(gw.addr, "mallory").await.unwrap();
    assert!(!client.auth_publickey(gw.client_key()).await.unwrap());
    assert!(!client.auth_password(PASSWORD).await.unwrap());
    client.disconnect().await.unwrap();
    let events = until_closed(&gw).await;
    assert!(!events
        .iter()
        .any(|e| matches!(e.kind, EventKind::LoginAccepted { .. })));
    assert!(
        fake.connects().is_empty(),
        "no container for a refused login"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_container_that_fails_to_start_is_reported_to_each_session() {
    let fake = FakeBackend::builder()
        .on_connect(OnConnect::start_failure("no space left"))
        .build();
    let gw = TestGateway::start(fake.clone()).await;
    let client = logged_in(&gw).await;
    let output = client.exec("echo never").await.unwrap();
    assert_eq!(output.stdout_text(), "");
    assert!(
        output
            .stderr_text()
            .starts_with("sshpod: cannot start your container"),
        "{output:?}"
    );
    assert_eq!(output.exit, Some(ExitOutcome::Code(1)));
    client.disconnect().await.unwrap();
    let events = until_closed(&gw).await;
    assert!(names(&events).contains(&"container failed"));
    assert!(
        !names(&events).contains(&"container removed"),
        "nothing was made, so nothing is removed"
    );
    assert!(fake.record().closes.is_empty());
    gw.stop().await;
}

#[tokio::test]
async fn a_client_that_leaves_while_its_container_is_made_still_gets_it_removed() {
    let fake = FakeBackend::builder().on_connect(OnConnect::Hold).build();
    let gw = TestGateway::start(fake.clone()).await;
    let client = logged_in(&gw).await;
    fake.wait_for_held_connects(1, DEADLINE).await.unwrap();
    client.disconnect().await.unwrap();
    gw.recorder
        .wait_for_event(DEADLINE, "the session's end", |k| {
            matches!(k, EventKind::SessionEnded { .. })
        })
        .await;
    // The creation in flight is not abandoned: it finishes, then the container is removed.
    fake.release();
    let events = until_closed(&gw).await;
    assert_eq!(
        names(&events)[2..],
        [
            "session ended",
            "container ready",
            "container removed",
            "closed"
        ]
    );
    fake.wait_until_no_containers(DEADLINE).await.unwrap();
    assert_eq!(fake.closes(events[0].connection), 1);
    assert_eq!(fake.record().abandoned_connects, 0);
    gw.stop().await;
}

#[tokio::test]
async fn shutting_down_during_provisioning_waits_for_the_container_and_removes_it() {
    let fake = FakeBackend::builder().on_connect(OnConnect::Hold).build();
    let gw = TestGateway::start(fake.clone()).await;
    let client = logged_in(&gw).await;
    fake.wait_for_held_connects(1, DEADLINE).await.unwrap();
    let recorder = gw.recorder.clone();
    let stopping = tokio::spawn(gw.stop());
    recorder
        .wait_for_event(DEADLINE, "the session's end", |k| {
            matches!(k, EventKind::SessionEnded { .. })
        })
        .await;
    fake.release();
    stopping.await.unwrap();
    assert!(client.is_closed() || client.disconnect_reason().is_some());
    fake.wait_until_no_containers(DEADLINE).await.unwrap();
    let events = recorder.events();
    assert_eq!(names(&events).last(), Some(&"closed"));
    assert_eq!(fake.closes(events[0].connection), 1);
}

#[tokio::test]
async fn taps_see_a_sessions_bytes_resizes_and_exit_in_order() {
    let fake = FakeBackend::new();
    let gw = TestGateway::start(fake.clone()).await;
    let client = logged_in(&gw).await;
    let mut session = client.open_session().await.unwrap();
    assert!(session.request_pty("xterm", 80, 24).await.unwrap());
    assert!(session.exec("tty").await.unwrap());
    assert!(session.read_until_stdout_contains("cols=80").await.unwrap());
    session.window_change(100, 30).await.unwrap();
    assert!(session
        .read_until_stdout_contains("resize 100x30")
        .await
        .unwrap());
    session.signal(russh::Sig::TERM).await.unwrap();
    let output = session.read_to_end().await.unwrap();
    assert_eq!(output.exit, Some(ExitOutcome::Signal("TERM".into())));

    let events = gw.recorder.events();
    let opened = events
        .iter()
        .find(|e| matches!(e.kind, EventKind::ChannelOpened { .. }))
        .unwrap();
    let (connection, channel) = (opened.connection, opened.channel.unwrap());
    let records = gw
        .recorder
        .wait_for_records(DEADLINE, connection, channel, |r| {
            matches!(r.last(), Some(Recorded::Exit(_)))
        })
        .await;
    let resize = records
        .iter()
        .position(|r| {
            *r == Recorded::Resize(TerminalSize {
                cols: 100,
                rows: 30,
            })
        })
        .expect("the resize is recorded");
    let shown = |r: &Recorded, text: &str| match r {
        Recorded::Output(d) => String::from_utf8_lossy(d).contains(text),
        _ => false,
    };
    let first = records.iter().position(|r| shown(r, "cols=80")).unwrap();
    let after = records
        .iter()
        .position(|r| shown(r, "resize 100x30"))
        .unwrap();
    assert!(first < resize && resize < after, "{records:?}");
    let signal = records
        .iter()
        .position(|r| *r == Recorded::Signal(Signal::Term))
        .unwrap();
    assert!(after < signal);
    assert_eq!(
        records.last(),
        Some(&Recorded::Exit(ExitStatus::Signal(Signal::Term)))
    );
    gw.stop().await;
}

#[tokio::test]
async fn taps_see_input_and_stderr_of_a_session_without_a_terminal() {
    let fake = FakeBackend::new();
    let gw = TestGateway::start(fake.clone()).await;
    let client = logged_in(&gw).await;
    let mut session = client.open_session().await.unwrap();
    assert!(session.exec("cat").await.unwrap());
    session.write(b"typed").await.unwrap();
    session.eof().await.unwrap();
    let output = session.read_to_end().await.unwrap();
    assert_eq!(output.stdout_text(), "typed");
    let output = client.exec("stderr oops").await.unwrap();
    assert_eq!(output.stderr_text(), "oops\n");

    let events = gw.recorder.events();
    let channels: Vec<_> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::ChannelOpened { .. }))
        .map(|e| (e.connection, e.channel.unwrap()))
        .collect();
    let cat = gw
        .recorder
        .wait_for_records(DEADLINE, channels[0].0, channels[0].1, |r| {
            matches!(r.last(), Some(Recorded::Exit(_)))
        })
        .await;
    assert_eq!(
        cat,
        [
            Recorded::Input(b"typed".to_vec()),
            Recorded::Output(b"typed".to_vec()),
            Recorded::Exit(ExitStatus::Code(0))
        ]
    );
    let stderr = gw
        .recorder
        .wait_for_records(DEADLINE, channels[1].0, channels[1].1, |r| {
            matches!(r.last(), Some(Recorded::Exit(_)))
        })
        .await;
    assert_eq!(
        stderr,
        [
            Recorded::ErrorOutput(b"oops\n".to_vec()),
            Recorded::Exit(ExitStatus::Code(0))
        ]
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_forwarded_channel_is_tapped_both_ways() {
    let fake = FakeBackend::new();
    let gw = TestGateway::start_with(fake.clone(), |c| {
        c.security.forwarding.forwarding_mode = SecurityMode::Enable;
    })
    .await;
    let client = logged_in(&gw).await;
    let mut stream = client.direct_tcpip("localhost", 8080).await.unwrap();
    stream.write_all(b"ping").await.unwrap();
    let mut echoed = [0u8; 4];
    stream.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"ping");

    let opened = gw
        .recorder
        .wait_for_event(DEADLINE, "the forward", |k| {
            matches!(
                k,
                EventKind::ChannelOpened {
                    kind: ChannelKind::DirectTcpip { .. }
                }
            )
        })
        .await;
    let id = opened.channel.expect("a channel event names its channel");
    let records = gw
        .recorder
        .wait_for_records(DEADLINE, opened.connection, id, |r| r.len() >= 2)
        .await;
    assert_eq!(
        records,
        [
            Recorded::Input(b"ping".to_vec()),
            Recorded::Output(b"ping".to_vec())
        ]
    );
    gw.stop().await;
}

#[tokio::test]
async fn sessions_over_max_sessions_are_refused() {
    let fake = FakeBackend::new();
    let gw = TestGateway::start_with(fake.clone(), |c| c.ssh.max_sessions = 1).await;
    let client = logged_in(&gw).await;
    let mut first = client.open_session().await.unwrap();
    assert!(first.exec("cat").await.unwrap());
    assert!(client.open_session().await.is_err(), "a second session");
    let refused = gw
        .recorder
        .wait_for_event(DEADLINE, "the refusal", |k| {
            matches!(k, EventKind::ChannelRefused { .. })
        })
        .await;
    assert!(matches!(
        refused.kind,
        EventKind::ChannelRefused {
            kind: ChannelKind::Session,
            reason: ChannelRefusal::MaxSessions(1)
        }
    ));
    first.eof().await.unwrap();
    first.read_to_end().await.unwrap();
    gw.stop().await;
}

#[tokio::test]
async fn unknown_subsystems_and_unoffered_forwarding_are_refused_as_events() {
    let fake = FakeBackend::new();
    let gw = TestGateway::start(fake.clone()).await;
    let client = logged_in(&gw).await;
    let mut session = client.open_session().await.unwrap();
    assert!(!session.subsystem("nonesuch").await.unwrap());
    gw.recorder
        .wait_for_event(DEADLINE, "the refusal", |k| {
            matches!(
                k,
                EventKind::RequestRefused {
                    reason: RequestRefusal::UnknownSubsystem(name)
                } if name == "nonesuch"
            )
        })
        .await;
    assert!(fake.execs().is_empty(), "nothing ran");
    gw.stop().await;
}

#[tokio::test]
async fn a_client_that_never_logs_in_is_dropped_at_the_login_grace_time() {
    let fake = FakeBackend::new();
    let gw = TestGateway::start_with(fake.clone(), |c| {
        c.ssh.login_grace_time = Duration::from_millis(300);
    })
    .await;
    let client = TestClient::connect(gw.addr, "alice").await.unwrap();
    let events = until_closed(&gw).await;
    assert_eq!(names(&events), ["connected", "login grace over", "closed"]);
    assert!(fake.connects().is_empty());
    drop(client);
    gw.stop().await;
}

#[tokio::test]
async fn a_restricted_key_gets_no_terminal_and_its_forced_command_whatever_the_client_asks() {
    let fake = FakeBackend::new();
    let gw = TestGateway::start(fake.clone()).await;
    gw.set_key_options(r#"no-pty,command="echo forced""#);
    let client = logged_in(&gw).await;
    gw.recorder
        .wait_for_event(DEADLINE, "the restriction", |k| {
            matches!(k, EventKind::LoginRestricted { restrictions } if restrictions.contains("no-pty"))
        })
        .await;

    let mut session = client.open_session().await.unwrap();
    assert!(
        !session.request_pty("xterm", 80, 24).await.unwrap(),
        "no pty"
    );
    // Variables that would change what a shell runs first are not passed to a forced command.
    session.set_env("BASH_ENV", "/tmp/evil").await.unwrap();
    assert!(session.exec("echo mine").await.unwrap());
    let output = session.read_to_end().await.unwrap();
    assert_eq!(output.stdout_text(), "forced\n");
    gw.recorder
        .wait_for_event(DEADLINE, "the pty refusal", |k| {
            matches!(
                k,
                EventKind::RequestRefused {
                    reason: RequestRefusal::PtyNotPermitted
                }
            )
        })
        .await;
    let ran = fake.execs();
    assert_eq!(ran.len(), 1);
    assert!(
        ran[0].env.iter().all(|(name, _)| name != "BASH_ENV"),
        "{ran:?}"
    );
    gw.stop().await;
}

/// A public-key webhook that accepts every key, and how many times it was asked.
async fn accepting_webhook() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    tokio::task::JoinHandle<()>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let asked = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = asked.clone();
    let app = axum::Router::new().route(
        "/pubkey",
        axum::routing::post(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    r#"{"success": true}"#,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, asked, served)
}

#[tokio::test]
async fn a_revoked_key_is_refused_before_the_webhook_is_asked() {
    use std::sync::atomic::Ordering;
    let (webhook, asked, served) = accepting_webhook().await;
    let fake = FakeBackend::new();
    let auth = format!(
        "  publicKey:\n    method: webhook\n    webhook:\n      url: http://{webhook}\n    revokedKeys: {{dir}}/revoked\n"
    );
    let gw = TestGateway::start_with_auth(fake.clone(), &auth).await;
    let revoked = sshpod_test_support::ed25519_key();
    std::fs::write(
        gw.path("revoked"),
        revoked.public_key().to_openssh().unwrap(),
    )
    .unwrap();

    // A key the built-in checks do not know goes to the webhook, which accepts it.
    let mut client = TestClient::connect(gw.addr, "alice").await.unwrap();
    assert!(client.auth_publickey(gw.client_key()).await.unwrap());
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    client.disconnect().await.unwrap();

    // A revoked key never reaches it.
    let mut client = TestClient::connect(gw.addr, "alice").await.unwrap();
    assert!(!client.auth_publickey(&revoked).await.unwrap());
    let refused = gw
        .recorder
        .wait_for_event(DEADLINE, "the refusal", |k| {
            matches!(k, EventKind::LoginRefused { .. })
        })
        .await;
    assert!(matches!(
        refused.kind,
        EventKind::LoginRefused {
            method: AuthMethod::PublicKey,
            reason: LoginRefusal::NotAccepted,
            ..
        }
    ));
    assert_eq!(asked.load(Ordering::SeqCst), 1, "the webhook was not asked");
    gw.stop().await;
    served.abort();
}

#[tokio::test]
async fn a_client_that_never_finishes_the_key_exchange_is_dropped_at_the_handshake_timeout() {
    let fake = FakeBackend::new();
    let gw = TestGateway::start_with(fake.clone(), |c| {
        c.ssh.handshake_timeout = Duration::from_millis(300);
    })
    .await;
    // A client that connects and says nothing, not even its version.
    let mut silent = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let events = until_closed(&gw).await;
    assert_eq!(
        names(&events),
        ["connected", "handshake timed out", "closed"]
    );
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, silent.read_to_end(&mut rest)).await;
    gw.stop().await;
}

#[tokio::test]
async fn the_security_policy_refuses_with_a_message_and_names_its_rule() {
    let fake = FakeBackend::new();
    let gw = TestGateway::start_with(fake.clone(), |c| {
        c.security.command.mode = SecurityMode::Filter;
        c.security.command.allow = vec!["echo allowed".into(), "cat".into()];
        c.security.max_sessions = Some(1);
    })
    .await;
    let client = logged_in(&gw).await;
    let output = client.exec("echo allowed").await.unwrap();
    assert_eq!(output.stdout_text(), "allowed\n");

    let output = client.exec("echo allowed; id").await.unwrap();
    assert_eq!(
        output.stderr_text(),
        "sshpod: this command is not allowed on this server\r\n"
    );
    assert_eq!(output.exit, Some(ExitOutcome::Code(1)));
    assert_eq!(fake.execs().len(), 1, "nothing ran");
    let refused = gw
        .recorder
        .wait_for_event(DEADLINE, "the refusal", |k| {
            matches!(k, EventKind::RequestRefused { .. })
        })
        .await;
    assert!(matches!(
        refused.kind,
        EventKind::RequestRefused {
            reason: RequestRefusal::Policy {
                rule: "security.command.allow",
                ..
            }
        }
    ));

    // Forwarding is off unless the policy turns it on, as in ContainerSSH.
    assert!(client.direct_tcpip("localhost", 8080).await.is_err());
    gw.recorder
        .wait_for_event(DEADLINE, "the forwarding refusal", |k| {
            matches!(
                k,
                EventKind::ChannelRefused {
                    reason: ChannelRefusal::Policy("security.forwarding.forwardingMode"),
                    ..
                }
            )
        })
        .await;

    // security.maxSessions caps the sessions open at once, not the sessions ever opened.
    let mut first = client.open_session().await.unwrap();
    assert!(first.exec("cat").await.unwrap());
    assert!(client.open_session().await.is_err());
    first.eof().await.unwrap();
    first.read_to_end().await.unwrap();
    let output = client.exec("echo allowed").await.unwrap();
    assert_eq!(
        output.stdout_text(),
        "allowed\n",
        "a session again once the first closed"
    );
    assert_eq!(fake.execs().len(), 3);
    gw.stop().await;
}

/// A gateway that takes PROXY protocol headers from loopback (where the tests connect from).
async fn behind_a_proxy(fake: &FakeBackend) -> TestGateway {
    TestGateway::start_with(fake.clone(), |c| {
        c.ssh.proxy_protocol.enable = true;
        c.ssh.proxy_protocol.trusted_networks =
            vec![sshpod_config::Network::parse("127.0.0.0/8").unwrap()];
    })
    .await
}

/// A connection through the proxy for `client` (`203.0.113.7:40001`).
async fn proxied(gw: &TestGateway, client: &str) -> tokio::net::TcpStream {
    let (ip, port) = client.rsplit_once(':').unwrap();
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let header = format!("PROXY TCP4 {ip} 192.0.2.1 {port} 22\r\n");
    stream.write_all(header.as_bytes()).await.unwrap();
    stream
}

#[tokio::test]
async fn penalties_fall_on_the_proxied_client_not_on_everyone_behind_the_proxy() {
    let fake = FakeBackend::new();
    let gw = TestGateway::start_with(fake.clone(), |c| {
        c.ssh.proxy_protocol.enable = true;
        c.ssh.proxy_protocol.trusted_networks =
            vec![sshpod_config::Network::parse("127.0.0.0/8").unwrap()];
        c.ssh.per_source_penalties = Some(sshpod_config::Penalties {
            authfail: Duration::from_secs(60),
            ..sshpod_config::Penalties::DEFAULT
        });
    })
    .await;
    let mut guesser = TestClient::connect_stream(proxied(&gw, "203.0.113.7:40001").await, "alice")
        .await
        .unwrap();
    assert!(!guesser.auth_password("wrong").await.unwrap());
    guesser.disconnect().await.unwrap();
    until_closed(&gw).await;

    // The guesser's address is refused from now on...
    let mut again = proxied(&gw, "203.0.113.7:40002").await;
    let mut received = Vec::new();
    match tokio::time::timeout(DEADLINE, again.read_to_end(&mut received)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the penalised client was not dropped: {other:?}"),
    }
    assert!(
        received.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&received)
    );
    // ...while another client through the same proxy logs in.
    let mut other = TestClient::connect_stream(proxied(&gw, "203.0.113.8:40003").await, "alice")
        .await
        .unwrap();
    assert!(other.auth_publickey(gw.client_key()).await.unwrap());
    other.disconnect().await.unwrap();
    gw.stop().await;
}

#[tokio::test]
async fn a_trusted_proxys_header_gives_the_clients_address_to_the_container_and_the_events() {
    let fake = FakeBackend::new();
    let gw = behind_a_proxy(&fake).await;
    let stream = proxied(&gw, "203.0.113.7:40001").await;
    let mut client = TestClient::connect_stream(stream, "alice").await.unwrap();
    assert!(client.auth_publickey(gw.client_key()).await.unwrap());
    client.exec("true").await.unwrap();
    let client_addr: std::net::SocketAddr = "203.0.113.7:40001".parse().unwrap();
    assert_eq!(fake.connects()[0].remote_addr, client_addr);
    let env = &fake.execs()[0].env;
    assert!(
        env.contains(&(
            "SSH_CONNECTION".into(),
            "203.0.113.7 40001 192.0.2.1 22".into()
        )),
        "{env:?}"
    );
    client.disconnect().await.unwrap();
    let events = until_closed(&gw).await;
    assert!(events.iter().all(|e| e.remote == client_addr), "{events:?}");
    gw.stop().await;
}

#[tokio::test]
async fn a_trusted_source_without_a_header_is_closed_before_the_ssh_banner() {
    let fake = FakeBackend::new();
    let gw = behind_a_proxy(&fake).await;
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(b"SSH-2.0-OpenSSH_9.2p1\r\n")
        .await
        .unwrap();
    // Closed with the client's bytes unread: an end of stream or a reset, and nothing before.
    let mut received = Vec::new();
    let ended = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut received)).await;
    match ended {
        Ok(Ok(_)) => {}
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the connection was not closed: {other:?}"),
    }
    assert!(
        received.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&received)
    );
    assert!(fake.connects().is_empty());
    gw.stop().await;
}
