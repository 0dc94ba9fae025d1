//! What happens on a connection, as typed values in order: every decision (login attempts and
//! their outcome, the config server's answer, the container) and every SSH-level event
//! (channels, requests, processes, forwards, the end).
//!
//! The server emits them; subscribers ([`EventSink`]) turn them into log lines, audit records,
//! metrics or a live view. Events carry no I/O and cost nothing when nobody subscribes. Within
//! one connection, `seq` counts from 0 and every subscriber sees events in that order.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use crate::tap::{ChannelInfo, ChannelTap};
use sshpod_config::Secret;

use crate::{BackendError, Command, ConnectionId, ExitStatus, TerminalSize};

/// A cause kept for the log, of any error type.
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

/// One thing that happened on a connection.
#[derive(Debug, Clone)]
pub struct Event {
    /// Position within the connection, from 0, without gaps.
    pub seq: u64,
    /// Wall-clock time of the event.
    pub at: SystemTime,
    /// The connection.
    pub connection: ConnectionId,
    /// The client's address.
    pub remote: SocketAddr,
    /// The authenticated user, from the login's acceptance on.
    pub user: Option<Arc<str>>,
    /// The SSH channel the event belongs to, if any.
    pub channel: Option<u32>,
    /// What happened.
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum EventKind {
    /// The connection was accepted.
    Connected,
    /// The client did not finish the key exchange and ask to log in within
    /// `ssh.handshakeTimeout`.
    HandshakeTimedOut,
    /// The client did not log in within `ssh.loginGraceTime`.
    LoginGraceOver,
    /// An authentication attempt was refused.
    LoginRefused {
        /// The name the client asked for.
        user: String,
        /// How it tried.
        method: AuthMethod,
        /// What it tried with.
        credential: Credential,
        /// Why it was refused.
        reason: LoginRefusal,
    },
    /// A webhook could not answer: the connection is closed with "authentication unavailable".
    LoginUnavailable {
        /// The name the client asked for.
        user: String,
        /// How it tried.
        method: AuthMethod,
        /// What went wrong.
        cause: Cause,
    },
    /// The config server's answer cannot be used: the connection is closed.
    ConfigAnswerRejected {
        /// The name the client asked for.
        user: String,
        /// How it logged in.
        method: AuthMethod,
        /// What is wrong with the answer.
        reason: String,
    },
    /// The config server's answer changed these sections for the connection.
    ConfigApplied {
        /// The sections' names (`docker`, `security`, ...).
        sections: Vec<String>,
    },
    /// The config server's answer had sections that do not apply to one connection.
    ConfigSectionsIgnored {
        /// The sections' names.
        sections: Vec<String>,
    },
    /// A user certificate was accepted.
    CertificateAccepted {
        /// The certificate's key id.
        key_id: String,
        /// Its serial number.
        serial: u64,
        /// The signing CA's fingerprint.
        ca: String,
        /// Which trust setting accepted it.
        via: String,
    },
    /// The accepted key or certificate restricts what the login may do.
    LoginRestricted {
        /// The restrictions, as `authorized_keys` options.
        restrictions: String,
    },
    /// The login was accepted; the container is made next.
    LoginAccepted {
        /// The name the client asked for.
        user: String,
        /// How it logged in.
        method: AuthMethod,
        /// What it logged in with.
        credential: Credential,
        /// The name it is known by from now on (a webhook may change it).
        authenticated: String,
        /// Names of the metadata the login brought (never the sensitive ones, never values).
        metadata: Vec<String>,
    },
    /// What the connection's recording keeps, once the login's settings are known (a config
    /// server may change them per user).
    RecordingSettings {
        /// Whether the connection is recorded.
        enable: bool,
        /// Whether the connection must end if its recording fails.
        required: bool,
        /// Which data is recorded besides events.
        intercept: sshpod_config::AuditIntercept,
    },
    /// The connection's container is ready.
    ContainerReady {
        /// What it is.
        container: crate::ContainerInfo,
    },
    /// The connection's container could not be made.
    ContainerFailed {
        /// Why.
        error: Arc<BackendError>,
    },
    /// The connection's container was removed.
    ContainerRemoved,
    /// The connection let go of a container that stays (`Closed::Kept`).
    ContainerKept,
    /// Removing the connection's container failed.
    ContainerRemovalFailed {
        /// Why.
        error: Arc<BackendError>,
    },
    /// A channel was opened.
    ChannelOpened {
        /// Its kind.
        kind: ChannelKind,
    },
    /// A channel open was refused.
    ChannelRefused {
        /// The kind asked for.
        kind: ChannelKind,
        /// Why.
        reason: ChannelRefusal,
    },
    /// A request on a channel was refused.
    RequestRefused {
        /// Why.
        reason: RequestRefusal,
    },
    /// A session was given a terminal.
    PtyGranted {
        /// The client's `TERM`.
        term: String,
        /// Its size.
        size: TerminalSize,
    },
    /// An environment variable was accepted for a session.
    EnvAccepted {
        /// Its name.
        name: String,
        /// Its value.
        value: String,
    },
    /// A process is being started for a session channel.
    ProcessStarting {
        /// What runs (after the login's forced command, if any).
        command: Command,
        /// Whether it has a terminal.
        tty: bool,
    },
    /// The process could not be started.
    ProcessFailed {
        /// Why.
        error: Arc<BackendError>,
    },
    /// The process ended.
    ProcessExited {
        /// How.
        status: ExitStatus,
    },
    /// How the process ended could not be read.
    ExitStatusUnknown {
        /// Why.
        error: Arc<BackendError>,
    },
    /// A forward could not be dialled inside the container.
    ForwardFailed {
        /// The host asked for.
        host: String,
        /// The port asked for.
        port: u16,
        /// Why.
        error: Arc<BackendError>,
    },
    /// A listener for the client's remote forward (`ssh -R`) is listening inside the container.
    ListenerOpened {
        /// The address the client asked for.
        address: String,
        /// The port bound (the one chosen, when the client asked for 0).
        port: u16,
    },
    /// A remote forward's listener stopped (the client cancelled it, or the connection ended).
    ListenerClosed {
        /// The address the client asked for.
        address: String,
        /// The port it was bound to.
        port: u16,
    },
    /// A remote forward could not listen inside the container.
    ListenFailed {
        /// The address the client asked for.
        address: String,
        /// The port the client asked for.
        port: u16,
        /// Why.
        error: Arc<BackendError>,
    },
    /// The SSH session ended; `reason` says why when it was not the client's orderly
    /// disconnect.
    SessionEnded {
        /// The SSH library's reason, if the session failed.
        reason: Option<String>,
    },
    /// An idle or session limit ran out (`ssh.idleTimeout`, `ssh.maxSessionDuration`,
    /// `ssh.unusedConnectionTimeout`: the connection ends; `ssh.channelTimeout`: the event's
    /// channel closes), or the login's credentials did (`auth.publicKey.disconnectExpiredCert`:
    /// its certificate expired; `auth.publicKey.revokedKeys`: its key or certificate is now
    /// revoked; the connection ends).
    LimitReached {
        /// The limit's configuration key.
        rule: &'static str,
        /// What the client is told.
        message: String,
    },
    /// Everything the connection started is gone; nothing follows.
    Closed,
}

/// What a login attempt presented, as far as it may be kept: the key's fingerprint, the
/// certificate's identity, and the password only inside a [`Secret`] (written nowhere unless
/// a recording intercepts passwords).
#[derive(Debug, Clone, Default)]
pub struct Credential {
    /// The key's SHA-256 fingerprint (`SHA256:...`), for keys and certificates.
    pub key: Option<String>,
    /// The certificate's key id and serial, for certificates.
    pub certificate: Option<(String, u64)>,
    /// The password, for password attempts.
    pub password: Option<Secret<String>>,
}

/// An authentication method, as SSH names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// `password`.
    Password,
    /// `publickey` with a plain key.
    PublicKey,
    /// `publickey` with a certificate.
    Certificate,
    /// `keyboard-interactive`.
    KeyboardInteractive,
}

impl AuthMethod {
    /// The name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::PublicKey => "publickey",
            AuthMethod::Certificate => "certificate",
            AuthMethod::KeyboardInteractive => "keyboard-interactive",
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a login attempt was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefusal {
    /// The credentials were not accepted (or the user is unknown: the two look the same).
    NotAccepted,
    /// The authorization webhook said no.
    NotAuthorized,
}

impl LoginRefusal {
    /// The reason as logged.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginRefusal::NotAccepted => "not accepted",
            LoginRefusal::NotAuthorized => "the authorization webhook said no",
        }
    }
}

/// The kind of an SSH channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelKind {
    /// A session (shell, exec or subsystem).
    Session,
    /// `direct-tcpip` (`ssh -L`) to `host:port` inside the container.
    DirectTcpip {
        /// The host asked for.
        host: String,
        /// The port asked for.
        port: u16,
    },
    /// `forwarded-tcpip` (`ssh -R`): a connection to a listener inside the container, passed
    /// to the client.
    ForwardedTcpip {
        /// The address the listener was asked for.
        address: String,
        /// The port it is bound to.
        port: u16,
        /// Who connected to it, inside the container.
        originator: String,
        /// Their port.
        originator_port: u16,
    },
    /// `direct-streamlocal@openssh.com` (`ssh -L ...:/path`) to a Unix socket in the container.
    DirectStreamlocal {
        /// The socket's path.
        path: String,
    },
    /// `auth-agent@openssh.com` (`ssh -A`): a connection to the forwarded agent's socket
    /// inside the container, passed to the client's agent.
    AuthAgent,
    /// `forwarded-streamlocal@openssh.com` (`ssh -R /path:...`): a connection to a Unix socket
    /// listener inside the container, passed to the client.
    ForwardedStreamlocal {
        /// The listener's path.
        path: String,
    },
    /// `x11` (`ssh -X`, `ssh -Y`): a connection to a session's X11 display inside the
    /// container, passed to the client's X server.
    X11 {
        /// The display number (`DISPLAY=localhost:N`); `None` for a display another SSH
        /// server made (a proxied login's, [`X11Forwarding::PassedOn`]).
        ///
        /// [`X11Forwarding::PassedOn`]: crate::X11Forwarding::PassedOn
        display: Option<u16>,
        /// Who connected to it, inside the container.
        originator: String,
        /// Their port.
        originator_port: u16,
    },
}

/// Why a channel open was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelRefusal {
    /// `ssh.maxSessions` sessions are open.
    MaxSessions(u32),
    /// The login's key or certificate does not permit it.
    NotPermitted,
    /// The `security` policy refuses it; the configuration key that does.
    Policy(&'static str),
}

/// Why a channel request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestRefusal {
    /// A terminal, which the login's key or certificate does not permit.
    PtyNotPermitted,
    /// X11 forwarding, refused by sshpod versions that did not offer it (kept so their records
    /// still read).
    X11NotOffered,
    /// Agent forwarding, refused by sshpod versions that did not offer it (kept so their
    /// records still read).
    AgentNotOffered,
    /// A subsystem the backend does not have.
    UnknownSubsystem(String),
    /// A signal sshpod does not know.
    UnknownSignal(String),
    /// An environment variable not in `ssh.acceptEnv` (or not a valid name).
    EnvNotAccepted(String),
    /// An environment variable over the session's limit.
    EnvTooMany(String),
    /// A remote forward (`tcpip-forward`), which the policy, the login's key or certificate,
    /// or a limit refuses.
    RemoteForward {
        /// The address asked for.
        address: String,
        /// The port asked for.
        port: u32,
        /// What refused it: a configuration key (`security.forwarding.reverseForwardingMode`),
        /// a key option (`no-port-forwarding`, `permitlisten`) or a limit.
        rule: &'static str,
        /// Why, in words.
        message: String,
    },
    /// The `security` policy refused the request.
    Policy {
        /// The configuration key that refused it (`security.command.mode`).
        rule: &'static str,
        /// What the client was told.
        message: String,
    },
}

/// Why the accept loop turned a connection away before it became one: no events follow, only
/// [`EventSink::refused`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionRefusal {
    /// Its source failed to log in too often (`ssh.perSourcePenalties`).
    Penalised,
    /// Too many unauthenticated connections (`ssh.maxStartups`).
    MaxStartups,
    /// Too many unauthenticated connections from its network (`ssh.perSourceMaxStartups`).
    PerSourceMaxStartups,
    /// The server is draining after SIGTERM.
    Draining,
    /// A trusted proxy sent no valid PROXY protocol header (`ssh.proxyProtocol`).
    ProxyHeader,
}

impl ConnectionRefusal {
    /// A short name, for metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionRefusal::Penalised => "penalised",
            ConnectionRefusal::MaxStartups => "max_startups",
            ConnectionRefusal::PerSourceMaxStartups => "per_source_max_startups",
            ConnectionRefusal::Draining => "draining",
            ConnectionRefusal::ProxyHeader => "proxy_header",
        }
    }
}

/// One HTTP request to a webhook (the auth, authorization or config server); every retry is
/// one more. Told through [`EventSink::webhook_request`], not as a connection event: it is
/// about the webhook's health, and a recording has the login's outcome already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookRequest {
    /// Which webhook.
    pub hook: Webhook,
    /// Whether an earlier request of the same call failed.
    pub retry: bool,
    /// How it went.
    pub outcome: WebhookOutcome,
}

/// A webhook, by what it is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Webhook {
    /// `auth.password.webhook` (`/password`).
    Password,
    /// `auth.publicKey.webhook` (`/pubkey`).
    PublicKey,
    /// `auth.keyboardInteractive.webhook`.
    KeyboardInteractive,
    /// `auth.authz.webhook` (`/authz`).
    Authorization,
    /// `configserver`.
    Config,
}

/// How one webhook request went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// A usable answer (whatever it decides).
    Answered,
    /// No usable answer.
    Failed {
        /// Another request follows (ContainerSSH's "soft" failure); else the call gives up
        /// ("hard").
        retrying: bool,
        /// What went wrong.
        reason: WebhookFailure,
    },
}

/// What went wrong with a webhook request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookFailure {
    /// No answer: cannot connect, timed out, or a 5xx status.
    Unavailable,
    /// A status that is not worth retrying.
    Refused,
    /// An answer that does not follow the protocol.
    Malformed,
}

impl WebhookFailure {
    /// A short name, for metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFailure::Unavailable => "unavailable",
            WebhookFailure::Refused => "refused",
            WebhookFailure::Malformed => "malformed",
        }
    }
}

/// Ends a connection with a message to its user. A subscriber the connection cannot go on
/// without (a required recording) keeps the one it is given in [`EventSink::attach`] and uses
/// it when it fails.
#[derive(Clone)]
pub struct Ender(Arc<dyn Fn(String) + Send + Sync>);

impl Ender {
    /// An ender that calls `end` with the message.
    pub fn new(end: impl Fn(String) + Send + Sync + 'static) -> Self {
        Self(Arc::new(end))
    }

    /// Ends the connection, telling its user `message`.
    pub fn end(&self, message: impl Into<String>) {
        (self.0)(message.into())
    }
}

impl fmt::Debug for Ender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ender")
    }
}

/// A subscriber to connection events. `event` runs on the connection's tasks, in order, so it
/// must not block: a subscriber that writes somewhere slow queues the event and returns.
pub trait EventSink: Send + Sync + 'static {
    /// Called for every event of every connection.
    fn event(&self, event: &Event);

    /// The subscriber's tap for a channel's bytes, or `None` (the default) if it does not want
    /// them. Called when the channel opens.
    fn tap(&self, channel: &ChannelInfo) -> Option<Box<dyn ChannelTap>> {
        let _ = channel;
        None
    }

    /// Called when a connection is accepted, before its first event. A subscriber the
    /// connection cannot do without returns why it cannot serve it (the connection is then
    /// refused with that message), and may keep `ender` to end it later.
    fn attach(
        &self,
        connection: ConnectionId,
        remote: SocketAddr,
        ender: Ender,
    ) -> Result<(), String> {
        let _ = (connection, remote, ender);
        Ok(())
    }

    /// Called when the accept loop turns a connection from `remote` away before it becomes a
    /// connection (no events follow). The default ignores it.
    fn refused(&self, remote: SocketAddr, reason: ConnectionRefusal) {
        let _ = (remote, reason);
    }

    /// Called for every HTTP request to a webhook, as it ends. The default ignores it.
    fn webhook_request(&self, request: &WebhookRequest) {
        let _ = request;
    }
}
