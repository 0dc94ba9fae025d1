//! The metrics as a scrape shows them after synthetic events: the names and labels dashboards
//! rely on, the values going up and down with connections, and bounded labels.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sshpod_core::{
    AuthMethod, ChannelInfo, ChannelKind, ChannelRefusal, ConnectionId, ConnectionRefusal,
    ContainerInfo, Credential, Event, EventKind, EventSink, LoginRefusal, RequestRefusal,
    TapRecord, Webhook, WebhookFailure, WebhookOutcome, WebhookRequest,
};

use super::labels::MAX_USERS;
use super::Metrics;
use crate::geoip::GeoIp;

/// One connection's events, numbered and stamped.
struct Connection<'a> {
    metrics: &'a Metrics,
    id: ConnectionId,
    remote: SocketAddr,
    seq: u64,
    user: Option<Arc<str>>,
}

impl<'a> Connection<'a> {
    fn open(metrics: &'a Metrics) -> Self {
        let mut connection = Self {
            metrics,
            id: ConnectionId::random(),
            remote: SocketAddr::from(([192, 0, 2, 7], 50_000)),
            seq: 0,
            user: None,
        };
        connection.emit(EventKind::Connected);
        connection
    }

    fn emit(&mut self, kind: EventKind) {
        let event = Event {
            seq: self.seq,
            at: SystemTime::now(),
            connection: self.id,
            remote: self.remote,
            user: self.user.clone(),
            channel: None,
            kind,
        };
        self.seq += 1;
        self.metrics.event(&event);
    }

    fn log_in(&mut self, user: &str) {
        self.emit(EventKind::LoginAccepted {
            user: user.to_owned(),
            method: AuthMethod::PublicKey,
            credential: Credential::default(),
            authenticated: user.to_owned(),
            metadata: Vec::new(),
        });
        self.user = Some(user.into());
    }

    fn session(&self) -> Box<dyn sshpod_core::ChannelTap> {
        let info = ChannelInfo {
            connection: self.id,
            remote: self.remote,
            user: self.user.clone().unwrap_or_else(|| "nobody".into()),
            channel: 0,
            kind: ChannelKind::Session,
        };
        self.metrics
            .tap(&info)
            .unwrap_or_else(|| panic!("the metrics tap every channel"))
    }
}

fn metrics() -> Metrics {
    Metrics::new("docker", GeoIp::Dummy)
}

/// The value of the sample written exactly as `sample` (name and labels), if any.
fn value(metrics: &Metrics, sample: &str) -> Option<f64> {
    let text = metrics.encode();
    text.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == sample).then(|| value.parse().unwrap_or(f64::NAN))
    })
}

#[tokio::test(start_paused = true)]
async fn a_login_is_counted_from_accept_to_logout() {
    let metrics = metrics();
    let mut connection = Connection::open(&metrics);
    assert_eq!(
        value(
            &metrics,
            r#"containerssh_ssh_connections_total{country="XX"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &metrics,
            r#"containerssh_ssh_current_connections{country="XX"}"#
        ),
        Some(1.0)
    );

    tokio::time::advance(Duration::from_millis(300)).await;
    connection.log_in("alice");
    tokio::time::advance(Duration::from_millis(1500)).await;
    connection.emit(EventKind::ContainerReady {
        container: ContainerInfo {
            id: Some("c1".into()),
            image: "debian:12".into(),
        },
    });
    let mut tap = connection.session();
    tap.record(TapRecord::Input(b"ls\n"));
    tokio::time::advance(Duration::from_millis(200)).await;
    tap.record(TapRecord::Output(b"file\n"));
    tokio::time::advance(Duration::from_secs(5)).await;
    tap.record(TapRecord::ErrorOutput(b"late\n"));

    let labels = r#"{authtype="pubkey",retry="0",country="XX"}"#;
    assert_eq!(
        value(
            &metrics,
            &format!("containerssh_auth_success_total{labels}")
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &metrics,
            r#"containerssh_ssh_successful_handshakes_total{country="XX"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&metrics, r#"sshpod_user_sessions{user="alice"}"#),
        Some(1.0)
    );
    // Accept to the first output: 0.3 + 1.5 + 0.2 s, in the 2.0 s bucket, not the 1.6 s one.
    assert_eq!(
        value(&metrics, "sshpod_login_latency_seconds_count"),
        Some(1.0)
    );
    assert_eq!(
        value(&metrics, "sshpod_login_latency_seconds_sum"),
        Some(2.0)
    );
    let start = r#"{backend="docker",image="debian:12"}"#;
    assert_eq!(
        value(
            &metrics,
            &format!("sshpod_container_start_seconds_sum{start}")
        ),
        Some(1.5)
    );
    assert_eq!(
        value(
            &metrics,
            r#"sshpod_received_bytes_total{channel="session"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        value(&metrics, r#"sshpod_sent_bytes_total{channel="session"}"#),
        Some(10.0)
    );

    connection.emit(EventKind::ContainerRemoved);
    connection.emit(EventKind::Closed);
    assert_eq!(
        value(
            &metrics,
            r#"containerssh_ssh_current_connections{country="XX"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        value(&metrics, r#"sshpod_user_sessions{user="alice"}"#),
        Some(0.0)
    );
    assert_eq!(
        value(
            &metrics,
            r#"containerssh_ssh_failed_handshakes_total{country="XX"}"#
        ),
        None
    );
    assert_eq!(
        value(
            &metrics,
            r#"containerssh_backend_requests_total{backend="docker"}"#
        ),
        Some(2.0)
    );
    assert!(metrics.encode().ends_with("# EOF\n"));
}

#[tokio::test(start_paused = true)]
async fn refusals_are_counted_by_stage_and_reason() {
    let metrics = metrics();
    metrics.refused(
        SocketAddr::from(([192, 0, 2, 8], 1)),
        ConnectionRefusal::PerSourceMaxStartups,
    );
    let mut connection = Connection::open(&metrics);
    for _ in 0..2 {
        connection.emit(EventKind::LoginRefused {
            user: "root".into(),
            method: AuthMethod::Password,
            credential: Credential::default(),
            reason: LoginRefusal::NotAccepted,
        });
    }
    connection.log_in("bob");
    connection.emit(EventKind::ChannelRefused {
        kind: ChannelKind::Session,
        reason: ChannelRefusal::MaxSessions(10),
    });
    connection.emit(EventKind::RequestRefused {
        reason: RequestRefusal::EnvNotAccepted("LD_PRELOAD".into()),
    });
    connection.emit(EventKind::LimitReached {
        rule: "auth.publicKey.revokedKeys",
        message: "your key has been revoked".into(),
    });
    connection.emit(EventKind::Closed);

    for (sample, expected) in [
        (
            r#"sshpod_refused_total{stage="connection",reason="per_source_max_startups"}"#,
            1.0,
        ),
        (
            r#"sshpod_limits_reached_total{rule="auth.publicKey.revokedKeys"}"#,
            1.0,
        ),
        (
            r#"sshpod_refused_total{stage="login",reason="not_accepted"}"#,
            2.0,
        ),
        (
            r#"sshpod_refused_total{stage="channel",reason="max_sessions"}"#,
            1.0,
        ),
        (
            r#"sshpod_refused_total{stage="request",reason="env_not_accepted"}"#,
            1.0,
        ),
        (
            r#"containerssh_auth_failures_total{authtype="password",retry="0",country="XX"}"#,
            2.0,
        ),
        (r#"containerssh_ssh_connections_total{country="XX"}"#, 1.0),
    ] {
        assert_eq!(value(&metrics, sample), Some(expected), "{sample}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_never_logs_in_failed_its_handshake_and_has_no_user() {
    let metrics = metrics();
    let mut connection = Connection::open(&metrics);
    connection.emit(EventKind::LoginRefused {
        user: "attacker-chosen-name".into(),
        method: AuthMethod::PublicKey,
        credential: Credential::default(),
        reason: LoginRefusal::NotAccepted,
    });
    connection.emit(EventKind::Closed);
    let text = metrics.encode();
    assert!(!text.contains("attacker-chosen-name"), "{text}");
    assert_eq!(
        value(
            &metrics,
            r#"containerssh_ssh_failed_handshakes_total{country="XX"}"#
        ),
        Some(1.0)
    );
}

#[tokio::test(start_paused = true)]
async fn user_labels_are_bounded() {
    let metrics = metrics();
    let mut open = Vec::new();
    for n in 0..MAX_USERS + 10 {
        let mut connection = Connection::open(&metrics);
        connection.log_in(&format!("user{n}"));
        open.push(connection);
    }
    let text = metrics.encode();
    let labelled = text
        .lines()
        .filter(|l| l.starts_with("sshpod_user_sessions{"))
        .count();
    assert_eq!(
        labelled,
        MAX_USERS + 1,
        "every user up to the bound, then `other`"
    );
    assert_eq!(
        value(&metrics, r#"sshpod_user_sessions{user="other"}"#),
        Some(10.0)
    );
    for mut connection in open {
        connection.emit(EventKind::Closed);
    }
    assert_eq!(
        value(&metrics, r#"sshpod_user_sessions{user="other"}"#),
        Some(0.0)
    );
    // Room is made for a new user from the names nobody holds any more.
    let mut late = Connection::open(&metrics);
    late.log_in("late");
    assert_eq!(
        value(&metrics, r#"sshpod_user_sessions{user="late"}"#),
        Some(1.0)
    );
}

#[test]
fn webhook_requests_are_counted_as_containerssh_counts_them() {
    let metrics = metrics();
    let failed = |retrying| WebhookOutcome::Failed {
        retrying,
        reason: WebhookFailure::Unavailable,
    };
    for (hook, retry, outcome) in [
        (Webhook::PublicKey, false, failed(true)),
        (Webhook::PublicKey, true, failed(false)),
        (Webhook::Authorization, false, WebhookOutcome::Answered),
        (Webhook::Config, false, failed(true)),
        (Webhook::Config, true, WebhookOutcome::Answered),
    ] {
        metrics.webhook_request(&WebhookRequest {
            hook,
            retry,
            outcome,
        });
    }
    for (sample, expected) in [
        (
            r#"containerssh_auth_server_requests_total{authtype="pubkey",retry="0"}"#,
            1.0,
        ),
        (
            r#"containerssh_auth_server_requests_total{authtype="pubkey",retry="1"}"#,
            1.0,
        ),
        (
            r#"containerssh_auth_server_requests_total{authtype="authorization",retry="0"}"#,
            1.0,
        ),
        (
            r#"containerssh_auth_server_failures_total{type="soft",authtype="pubkey",retry="0",reason="unavailable"}"#,
            1.0,
        ),
        (
            r#"containerssh_auth_server_failures_total{type="hard",authtype="pubkey",retry="1",reason="unavailable"}"#,
            1.0,
        ),
        (
            r#"containerssh_config_server_requests_total{retry="0"}"#,
            1.0,
        ),
        (
            r#"containerssh_config_server_requests_total{retry="1"}"#,
            1.0,
        ),
        (
            r#"containerssh_config_server_failures_total{type="soft",retry="0",reason="unavailable"}"#,
            1.0,
        ),
    ] {
        assert_eq!(value(&metrics, sample), Some(expected), "{sample}");
    }
}

#[test]
fn the_backend_s_request_counts_are_read_at_each_scrape() {
    let metrics = Metrics::new("kubernetes", GeoIp::Dummy);
    let count = Arc::new(std::sync::atomic::AtomicU64::new(3));
    let source = Arc::clone(&count);
    metrics.count_api_requests(move || {
        vec![(
            "create pods",
            source.load(std::sync::atomic::Ordering::Relaxed),
        )]
    });
    let sample = r#"sshpod_backend_api_requests_total{backend="kubernetes",kind="create pods"}"#;
    assert_eq!(value(&metrics, sample), Some(3.0));
    count.store(5, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(value(&metrics, sample), Some(5.0));
}

#[test]
fn the_recorder_s_backlog_is_read_at_each_scrape() {
    let metrics = metrics();
    assert_eq!(value(&metrics, "sshpod_audit_queued_bytes"), Some(0.0));
    metrics.watch_audit_backlog(|| (4096, Some(3)));
    assert_eq!(value(&metrics, "sshpod_audit_queued_bytes"), Some(4096.0));
    assert_eq!(value(&metrics, "sshpod_audit_pending_uploads"), Some(3.0));
}

#[test]
fn the_pool_s_counts_are_read_at_each_scrape() {
    let metrics = metrics();
    assert_eq!(value(&metrics, "sshpod_pool_ready"), Some(0.0));
    let stats = Arc::new(sshpod_core::pool::PoolStats::default());
    let source = Arc::clone(&stats);
    metrics.watch_pool(move || source.snapshot());
    stats.set_size(3, 5);
    stats.claimed();
    stats.skipped(sshpod_core::pool::Skip::ConfigServer);
    assert_eq!(value(&metrics, "sshpod_pool_ready"), Some(3.0));
    assert_eq!(value(&metrics, "sshpod_pool_target"), Some(5.0));
    assert_eq!(value(&metrics, "sshpod_pool_claims_total"), Some(1.0));
    let config_server = r#"sshpod_pool_misses_total{reason="config_server"}"#;
    assert_eq!(value(&metrics, config_server), Some(1.0));
    stats.claimed();
    assert_eq!(value(&metrics, "sshpod_pool_claims_total"), Some(2.0));
}
