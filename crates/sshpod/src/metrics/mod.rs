//! The Prometheus metrics: every metric ContainerSSH exposes, under its name and labels, so
//! existing dashboards work, plus sshpod's own under `sshpod_`. Fed only by the server's typed
//! events and channel taps ([`Metrics`] is an [`EventSink`]); deep code never calls it.
//!
//! The registry lives in the value, not in a process-wide recorder, so two servers in one test
//! process count apart. Label values are bounded: a country is two letters, a user is labelled
//! only once authenticated and only up to [`labels::MAX_USERS`] at a time, an image only up to
//! [`labels::MAX_IMAGES`]; the rest count under `other`.

mod labels;
mod pool;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use sshpod_core::{
    AuthMethod, ChannelInfo, ChannelKind, ChannelRefusal, ChannelTap, ConnectionId,
    ConnectionRefusal, Event, EventKind, EventSink, LoginRefusal, RequestRefusal, TapRecord,
    Webhook, WebhookOutcome, WebhookRequest,
};
use tokio::time::Instant;

use crate::geoip::GeoIp;
use labels::{
    ApiLabels, AuthLabels, AuthServerFailureLabels, AuthServerLabels, BackendLabels, BoundedNames,
    ChannelLabels, ConfigServerFailureLabels, CountryLabels, LimitLabels, RefusalLabels,
    RetryLabels, StartLabels, UserLabels,
};

/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The metrics of one server.
pub struct Metrics {
    registry: Registry,
    families: Families,
    geoip: GeoIp,
    /// `docker` or `kubernetes`, for the backend labels.
    backend: &'static str,
    /// What is known of each open connection.
    connections: Mutex<Connections>,
    /// Where the backend's own request counts come from, when it keeps them.
    api_requests: std::sync::OnceLock<ApiRequestSource>,
    /// Where the recorder's backlog comes from, when connections are recorded.
    audit_backlog: std::sync::OnceLock<AuditBacklogSource>,
    /// The warm pool's metrics and where its counts come from, when there is a pool.
    pool: pool::PoolMetrics,
    pool_source: std::sync::OnceLock<pool::PoolSource>,
}

/// Reads the recorder's backlog: bytes queued for its writer, and entries waiting for upload
/// (with S3 storage).
pub type AuditBacklogSource = Box<dyn Fn() -> (u64, Option<u64>) + Send + Sync>;

/// Reads a backend's request counts by kind (`verb resource`, a fixed list).
pub type ApiRequestSource = Box<dyn Fn() -> Vec<(&'static str, u64)> + Send + Sync>;

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("backend", &self.backend)
            .field("geoip", &self.geoip)
            .finish_non_exhaustive()
    }
}

/// Every metric, by family.
#[derive(Debug)]
struct Families {
    connections: Family<CountryLabels, Counter>,
    current_connections: Family<CountryLabels, Gauge>,
    successful_handshakes: Family<CountryLabels, Counter>,
    failed_handshakes: Family<CountryLabels, Counter>,
    auth_success: Family<AuthLabels, Counter>,
    auth_failures: Family<AuthLabels, Counter>,
    auth_server_requests: Family<AuthServerLabels, Counter>,
    auth_server_failures: Family<AuthServerFailureLabels, Counter>,
    config_server_requests: Family<RetryLabels, Counter>,
    config_server_failures: Family<ConfigServerFailureLabels, Counter>,
    backend_requests: Family<BackendLabels, Counter>,
    backend_errors: Family<BackendLabels, Counter>,
    api_requests: Family<ApiLabels, Counter>,
    audit_queued: Gauge,
    audit_pending_uploads: Gauge,
    login_latency: LatencyHistogram,
    container_start: Family<StartLabels, Histogram, fn() -> Histogram>,
    user_sessions: Family<UserLabels, Gauge>,
    received: Family<ChannelLabels, Counter>,
    sent: Family<ChannelLabels, Counter>,
    refused: Family<RefusalLabels, Counter>,
    limits_reached: Family<LimitLabels, Counter>,
}

/// A histogram without labels, created with sshpod's latency buckets.
#[derive(Debug, Clone)]
struct LatencyHistogram(Histogram);

/// Buckets from 50 ms to about 100 s: a login over a fast network to a cold image pull.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.05, 2.0, 12))
}

/// Open connections, and the labels they hold.
#[derive(Debug)]
struct Connections {
    open: HashMap<ConnectionId, Connection>,
    users: BoundedNames,
    images: BoundedNames,
}

impl Default for Connections {
    fn default() -> Self {
        Self {
            open: HashMap::new(),
            users: BoundedNames::new(labels::MAX_USERS),
            images: BoundedNames::new(labels::MAX_IMAGES),
        }
    }
}

/// What the metrics remember of one open connection.
#[derive(Debug)]
struct Connection {
    country: String,
    accepted: Instant,
    /// The user label it counts under, once logged in.
    user: Option<String>,
    /// When the container was asked for (the login's acceptance).
    provisioning: Option<Instant>,
    /// Set by the first session output: only the first counts as the login's latency.
    first_output: Arc<AtomicBool>,
}

impl Metrics {
    /// Metrics for a server on `backend` (`docker` or `kubernetes`), with countries from
    /// `geoip`.
    pub fn new(backend: &'static str, geoip: GeoIp) -> Self {
        let families = Families {
            connections: Family::default(),
            current_connections: Family::default(),
            successful_handshakes: Family::default(),
            failed_handshakes: Family::default(),
            auth_success: Family::default(),
            auth_failures: Family::default(),
            auth_server_requests: Family::default(),
            auth_server_failures: Family::default(),
            config_server_requests: Family::default(),
            config_server_failures: Family::default(),
            backend_requests: Family::default(),
            backend_errors: Family::default(),
            api_requests: Family::default(),
            audit_queued: Gauge::default(),
            audit_pending_uploads: Gauge::default(),
            login_latency: LatencyHistogram(latency_histogram()),
            container_start: Family::new_with_constructor(latency_histogram),
            user_sessions: Family::default(),
            received: Family::default(),
            sent: Family::default(),
            refused: Family::default(),
            limits_reached: Family::default(),
        };
        let mut registry = Registry::default();
        families.register(&mut registry);
        let pool = pool::PoolMetrics::default();
        pool.register(&mut registry);
        Self {
            registry,
            families,
            geoip,
            backend,
            connections: Mutex::default(),
            api_requests: std::sync::OnceLock::new(),
            audit_backlog: std::sync::OnceLock::new(),
            pool,
            pool_source: std::sync::OnceLock::new(),
        }
    }

    /// Reports the warm pool's counts from `source`, read at each scrape. Set once.
    pub fn watch_pool(
        &self,
        source: impl Fn() -> sshpod_core::pool::PoolSnapshot + Send + Sync + 'static,
    ) {
        let _ = self.pool_source.set(Box::new(source));
    }

    /// Reports the recorder's backlog from `source`, read at each scrape. Set once.
    pub fn watch_audit_backlog(
        &self,
        source: impl Fn() -> (u64, Option<u64>) + Send + Sync + 'static,
    ) {
        let _ = self.audit_backlog.set(Box::new(source));
    }

    /// Reports the backend's API (or engine) requests by kind from `source`, read at each
    /// scrape. Set once; later calls are ignored.
    pub fn count_api_requests(
        &self,
        source: impl Fn() -> Vec<(&'static str, u64)> + Send + Sync + 'static,
    ) {
        let _ = self.api_requests.set(Box::new(source));
    }

    /// The metrics in the OpenMetrics text format, ending in `# EOF`.
    pub fn encode(&self) -> String {
        if let Some(source) = self.api_requests.get() {
            // The counts only grow: bring each counter up to its count.
            for (kind, count) in source() {
                let labels = ApiLabels {
                    backend: self.backend,
                    kind,
                };
                let counter = self.families.api_requests.get_or_create(&labels);
                let shown = counter.get();
                if count > shown {
                    counter.inc_by(count - shown);
                }
            }
        }
        if let Some(source) = self.audit_backlog.get() {
            let (queued, pending) = source();
            let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
            self.families.audit_queued.set(gauge(queued));
            self.families
                .audit_pending_uploads
                .set(gauge(pending.unwrap_or(0)));
        }
        if let Some(source) = self.pool_source.get() {
            self.pool.update(&source());
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }

    fn connections(&self) -> MutexGuard<'_, Connections> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn refuse(&self, stage: &'static str, reason: &'static str) {
        self.families
            .refused
            .get_or_create(&RefusalLabels { stage, reason })
            .inc();
    }

    fn backend_request(&self, failed: bool) {
        let labels = BackendLabels {
            backend: self.backend,
        };
        self.families.backend_requests.get_or_create(&labels).inc();
        if failed {
            self.families.backend_errors.get_or_create(&labels).inc();
        }
    }

    fn connected(&self, event: &Event) {
        let country = self.geoip.country(event.remote.ip());
        let labels = CountryLabels {
            country: country.clone(),
        };
        self.families.connections.get_or_create(&labels).inc();
        self.families
            .current_connections
            .get_or_create(&labels)
            .inc();
        self.connections().open.insert(
            event.connection,
            Connection {
                country,
                accepted: Instant::now(),
                user: None,
                provisioning: None,
                first_output: Arc::default(),
            },
        );
    }

    fn login_accepted(&self, event: &Event, method: AuthMethod, authenticated: &str) {
        let mut connections = self.connections();
        let Connections { open, users, .. } = &mut *connections;
        let Some(connection) = open.get_mut(&event.connection) else {
            return;
        };
        let country = connection.country.clone();
        self.families
            .successful_handshakes
            .get_or_create(&CountryLabels {
                country: country.clone(),
            })
            .inc();
        self.families
            .auth_success
            .get_or_create(&AuthLabels::new(method, country))
            .inc();
        let user = users.admit(authenticated, |evicted| {
            self.families.user_sessions.remove(&UserLabels {
                user: evicted.to_owned(),
            });
        });
        self.families
            .user_sessions
            .get_or_create(&UserLabels { user: user.clone() })
            .inc();
        connection.user = Some(user);
        connection.provisioning = Some(Instant::now());
    }

    fn login_refused(&self, event: &Event, method: AuthMethod, reason: LoginRefusal) {
        let country = self.country_of(event);
        self.families
            .auth_failures
            .get_or_create(&AuthLabels::new(method, country))
            .inc();
        let reason = match reason {
            LoginRefusal::NotAccepted => "not_accepted",
            LoginRefusal::NotAuthorized => "not_authorized",
        };
        self.refuse("login", reason);
    }

    fn container_ready(&self, event: &Event, image: &str) {
        self.backend_request(false);
        let mut connections = self.connections();
        let Connections { open, images, .. } = &mut *connections;
        let Some(started) = open
            .get_mut(&event.connection)
            .and_then(|c| c.provisioning.take())
        else {
            return;
        };
        // Images are not given back: a histogram's count must never go down.
        let image = images.admit(image, |_| {});
        self.families
            .container_start
            .get_or_create(&StartLabels {
                backend: self.backend,
                image,
            })
            .observe(started.elapsed().as_secs_f64());
    }

    fn closed(&self, event: &Event) {
        let mut connections = self.connections();
        let Connections { open, users, .. } = &mut *connections;
        let Some(connection) = open.remove(&event.connection) else {
            return;
        };
        let country = CountryLabels {
            country: connection.country,
        };
        self.families
            .current_connections
            .get_or_create(&country)
            .dec();
        match connection.user {
            Some(user) => {
                self.families
                    .user_sessions
                    .get_or_create(&UserLabels { user: user.clone() })
                    .dec();
                users.release(&user);
            }
            // ContainerSSH's handshake includes the login: a connection that never logged in
            // failed it.
            None => {
                self.families
                    .failed_handshakes
                    .get_or_create(&country)
                    .inc();
            }
        }
    }

    fn country_of(&self, event: &Event) -> String {
        match self.connections().open.get(&event.connection) {
            Some(connection) => connection.country.clone(),
            None => self.geoip.country(event.remote.ip()),
        }
    }
}

impl Families {
    fn register(&self, registry: &mut Registry) {
        // ContainerSSH's, under its names (a counter's `_total` is added by the encoder).
        registry.register(
            "containerssh_ssh_connections",
            "Number of connections since start",
            self.connections.clone(),
        );
        registry.register(
            "containerssh_ssh_current_connections",
            "Current open SSH connections",
            self.current_connections.clone(),
        );
        registry.register(
            "containerssh_ssh_successful_handshakes",
            "Successful SSH handshakes (logins included) since start",
            self.successful_handshakes.clone(),
        );
        registry.register(
            "containerssh_ssh_failed_handshakes",
            "Failed SSH handshakes (connections that never logged in) since start",
            self.failed_handshakes.clone(),
        );
        registry.register(
            "containerssh_auth_success",
            "Accepted logins since start",
            self.auth_success.clone(),
        );
        registry.register(
            "containerssh_auth_failures",
            "Refused login attempts since start",
            self.auth_failures.clone(),
        );
        registry.register(
            "containerssh_auth_server_requests",
            "Requests to the authentication webhooks, retries included",
            self.auth_server_requests.clone(),
        );
        registry.register(
            "containerssh_auth_server_failures",
            "Failed requests to the authentication webhooks (soft: retried; hard: given up)",
            self.auth_server_failures.clone(),
        );
        registry.register(
            "containerssh_config_server_requests",
            "Requests to the configuration webhook, retries included",
            self.config_server_requests.clone(),
        );
        registry.register(
            "containerssh_config_server_failures",
            "Failed requests to the configuration webhook (soft: retried; hard: given up)",
            self.config_server_failures.clone(),
        );
        registry.register(
            "containerssh_backend_requests",
            "Requests to the backend: container starts, process starts and removals",
            self.backend_requests.clone(),
        );
        registry.register(
            "containerssh_backend_errors",
            "Failed requests to the backend",
            self.backend_errors.clone(),
        );
        // sshpod's own.
        registry.register(
            "sshpod_backend_api_requests",
            "Requests the backend made to its API server or engine for connections, by kind",
            self.api_requests.clone(),
        );
        registry.register_with_unit(
            "sshpod_audit_queued",
            "Recorded data waiting for the recorder's writer",
            Unit::Bytes,
            self.audit_queued.clone(),
        );
        registry.register(
            "sshpod_audit_pending_uploads",
            "Recordings (and their parts) waiting in the S3 spool",
            self.audit_pending_uploads.clone(),
        );
        registry.register_with_unit(
            "sshpod_login_latency",
            "From TCP accept to the first byte of the first session's output",
            Unit::Seconds,
            self.login_latency.0.clone(),
        );
        registry.register_with_unit(
            "sshpod_container_start",
            "From an accepted login to its container (or pod) being ready",
            Unit::Seconds,
            self.container_start.clone(),
        );
        registry.register(
            "sshpod_user_sessions",
            "Open logged-in connections, by user",
            self.user_sessions.clone(),
        );
        registry.register_with_unit(
            "sshpod_received",
            "Channel data received from clients",
            Unit::Bytes,
            self.received.clone(),
        );
        registry.register_with_unit(
            "sshpod_sent",
            "Channel data sent to clients",
            Unit::Bytes,
            self.sent.clone(),
        );
        registry.register(
            "sshpod_refused",
            "Connections, logins, channels and requests refused, by stage and reason",
            self.refused.clone(),
        );
        registry.register(
            "sshpod_limits_reached",
            "Connections and channels ended by a limit or by the end of the login's credentials, by configuration key",
            self.limits_reached.clone(),
        );
    }
}

impl EventSink for Metrics {
    fn event(&self, event: &Event) {
        match &event.kind {
            EventKind::Connected => self.connected(event),
            EventKind::LoginAccepted {
                method,
                authenticated,
                ..
            } => self.login_accepted(event, *method, authenticated),
            EventKind::LoginRefused { method, reason, .. } => {
                self.login_refused(event, *method, *reason)
            }
            EventKind::LoginUnavailable { .. } => self.refuse("login", "unavailable"),
            EventKind::LoginGraceOver => self.refuse("login", "grace_time_over"),
            EventKind::HandshakeTimedOut => self.refuse("connection", "handshake_timeout"),
            EventKind::ConfigAnswerRejected { .. } => self.refuse("login", "config_rejected"),
            EventKind::ContainerReady { container } => {
                self.container_ready(event, &container.image)
            }
            EventKind::ContainerFailed { .. } => self.backend_request(true),
            EventKind::ProcessStarting { .. } | EventKind::ContainerRemoved => {
                self.backend_request(false)
            }
            EventKind::ProcessFailed { .. } | EventKind::ForwardFailed { .. } => {
                self.families
                    .backend_errors
                    .get_or_create(&BackendLabels {
                        backend: self.backend,
                    })
                    .inc();
            }
            EventKind::ContainerRemovalFailed { .. } => self.backend_request(true),
            EventKind::ChannelRefused { reason, .. } => self.refuse(
                "channel",
                match reason {
                    ChannelRefusal::MaxSessions(_) => "max_sessions",
                    ChannelRefusal::NotPermitted => "not_permitted",
                    ChannelRefusal::Policy(_) => "policy",
                },
            ),
            EventKind::RequestRefused { reason } => self.refuse("request", request_reason(reason)),
            EventKind::Closed => self.closed(event),
            EventKind::LimitReached { rule, .. } => {
                self.families
                    .limits_reached
                    .get_or_create(&LimitLabels { rule })
                    .inc();
            }
            _ => {}
        }
    }

    fn tap(&self, channel: &ChannelInfo) -> Option<Box<dyn ChannelTap>> {
        let kind = match channel.kind {
            ChannelKind::Session => "session",
            ChannelKind::DirectTcpip { .. } => "direct-tcpip",
            ChannelKind::ForwardedTcpip { .. } => "forwarded-tcpip",
            ChannelKind::DirectStreamlocal { .. } => "direct-streamlocal",
            ChannelKind::ForwardedStreamlocal { .. } => "forwarded-streamlocal",
            ChannelKind::AuthAgent => "auth-agent",
            ChannelKind::X11 { .. } => "x11",
        };
        let labels = ChannelLabels { channel: kind };
        let first_output = match channel.kind {
            ChannelKind::Session => self
                .connections()
                .open
                .get(&channel.connection)
                .filter(|c| !c.first_output.load(Ordering::Relaxed))
                .map(|c| (c.accepted, Arc::clone(&c.first_output))),
            ChannelKind::DirectTcpip { .. }
            | ChannelKind::ForwardedTcpip { .. }
            | ChannelKind::DirectStreamlocal { .. }
            | ChannelKind::ForwardedStreamlocal { .. }
            | ChannelKind::AuthAgent
            | ChannelKind::X11 { .. } => None,
        };
        Some(Box::new(CountingTap {
            received: self.families.received.get_or_create_owned(&labels),
            sent: self.families.sent.get_or_create_owned(&labels),
            first_output: first_output.map(|(accepted, seen)| FirstOutput {
                accepted,
                seen,
                latency: self.families.login_latency.0.clone(),
            }),
        }))
    }

    fn refused(&self, _remote: SocketAddr, reason: ConnectionRefusal) {
        self.refuse("connection", reason.as_str());
    }

    fn webhook_request(&self, request: &WebhookRequest) {
        let retry = if request.retry { "1" } else { "0" };
        let failure = match request.outcome {
            WebhookOutcome::Answered => None,
            WebhookOutcome::Failed { retrying, reason } => {
                Some((if retrying { "soft" } else { "hard" }, reason.as_str()))
            }
        };
        let authtype = match request.hook {
            Webhook::Config => {
                self.families
                    .config_server_requests
                    .get_or_create(&RetryLabels { retry })
                    .inc();
                if let Some((r#type, reason)) = failure {
                    self.families
                        .config_server_failures
                        .get_or_create(&ConfigServerFailureLabels {
                            r#type,
                            retry,
                            reason,
                        })
                        .inc();
                }
                return;
            }
            Webhook::Password => "password",
            Webhook::PublicKey => "pubkey",
            Webhook::Authorization => "authorization",
            Webhook::KeyboardInteractive => "keyboard-interactive",
            _ => "other",
        };
        self.families
            .auth_server_requests
            .get_or_create(&AuthServerLabels { authtype, retry })
            .inc();
        if let Some((r#type, reason)) = failure {
            self.families
                .auth_server_failures
                .get_or_create(&AuthServerFailureLabels {
                    r#type,
                    authtype,
                    retry,
                    reason,
                })
                .inc();
        }
    }
}

/// A short name for each refused request.
fn request_reason(reason: &RequestRefusal) -> &'static str {
    match reason {
        RequestRefusal::PtyNotPermitted => "pty_not_permitted",
        RequestRefusal::X11NotOffered => "x11",
        RequestRefusal::AgentNotOffered => "agent",
        RequestRefusal::UnknownSubsystem(_) => "unknown_subsystem",
        RequestRefusal::UnknownSignal(_) => "unknown_signal",
        RequestRefusal::EnvNotAccepted(_) => "env_not_accepted",
        RequestRefusal::EnvTooMany(_) => "env_too_many",
        RequestRefusal::Policy { .. } => "policy",
        _ => "other",
    }
}

/// Counts a channel's bytes, and times the connection's first session output.
struct CountingTap {
    received: Counter,
    sent: Counter,
    first_output: Option<FirstOutput>,
}

/// The login's latency, waiting for its first output.
struct FirstOutput {
    accepted: Instant,
    seen: Arc<AtomicBool>,
    latency: Histogram,
}

impl ChannelTap for CountingTap {
    fn record(&mut self, record: TapRecord<'_>) {
        match record {
            TapRecord::Input(data) => {
                self.received.inc_by(data.len() as u64);
            }
            TapRecord::Output(data) | TapRecord::ErrorOutput(data) => {
                self.sent.inc_by(data.len() as u64);
                if data.is_empty() {
                    return;
                }
                if let Some(first) = self.first_output.take() {
                    if !first.seen.swap(true, Ordering::Relaxed) {
                        first
                            .latency
                            .observe(first.accepted.elapsed().as_secs_f64());
                    }
                }
            }
            TapRecord::Resize(_) | TapRecord::Signal(_) | TapRecord::Exit(_) => {}
        }
    }
}

#[cfg(test)]
mod tests;
