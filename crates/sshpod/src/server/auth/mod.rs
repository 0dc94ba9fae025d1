//! Logins through ContainerSSH's webhooks, and what every login goes through after its
//! authentication: the authorization webhook, then the config server.
//!
//! Order for one connection: an authentication method (built-in or webhook) says yes, `/authz`
//! may still say no, the config server's answer is merged into the file configuration and
//! validated, and only then is the login accepted and the container started. Metadata,
//! environment and files flow along in that order, later answers overriding earlier ones;
//! entries marked sensitive are never logged and never sent to a later webhook.
//!
//! A webhook that cannot answer within its deadline ends the connection with "authentication
//! unavailable"; a config server answer that is not valid ends it with its own message. Each
//! connection waits only for its own calls.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use russh::keys::ssh_key::Certificate;
use russh::keys::PublicKey;
use russh::server::Auth;
use russh::{MethodKind, MethodSet};
use sshpod_config::{Config, WebhookConfig};
use sshpod_core::Backend;
use sshpod_webhook::protocol::{
    AuthResponse, CertificateInfo, ConfigResponse, ConnectionMetadata, KeyboardInteractiveRequest,
    KeyboardInteractiveResponse, Metadata, PasswordRequest, PublicKeyRequest,
};
use sshpod_webhook::{WebhookClient, WebhookError};

use crate::server::connection::ConnectionState;

mod builtin;
mod certificate_info;
mod outcome;

pub(crate) use builtin::Authenticator;
use certificate_info::certificate_info;
use outcome::outcome;
pub(crate) use outcome::Outcome;

/// What the user is told when a webhook cannot answer.
const UNAVAILABLE: &str = "authentication unavailable, please try again later";
/// What the user is told when the config server's answer cannot be used.
const BAD_CONFIG: &str =
    "your login cannot be prepared: the configuration server's answer is not valid";
/// Rounds of one keyboard-interactive conversation before it is refused.
const MAX_ROUNDS: u32 = 10;

/// The webhook clients, built once at start-up.
pub(crate) struct Webhooks {
    password: Option<WebhookClient>,
    public_key: Option<WebhookClient>,
    keyboard: Option<WebhookClient>,
    authz: Option<WebhookClient>,
    config: Option<WebhookClient>,
    /// The file configuration, the base of config server merges.
    base: Arc<Config>,
}

/// ContainerSSH fixes the config webhook's overall deadline at 60 s.
const CONFIG_DEADLINE: Duration = Duration::from_secs(60);

fn client(webhook: Option<&WebhookConfig>, key: &str) -> anyhow::Result<Option<WebhookClient>> {
    webhook
        .map(|w| {
            WebhookClient::new(&w.client, w.auth_timeout)
                .with_context(|| format!("setting up the webhook `{key}` ({})", w.client.url))
        })
        .transpose()
}

impl Webhooks {
    pub(crate) fn from_config(config: &Arc<Config>) -> anyhow::Result<Self> {
        let auth = &config.auth;
        Ok(Self {
            password: client(auth.password.webhook.as_ref(), "auth.password.webhook")?,
            public_key: client(auth.public_key.webhook.as_ref(), "auth.publicKey.webhook")?,
            keyboard: client(
                auth.keyboard_interactive.enabled(),
                "auth.keyboardInteractive.webhook",
            )?,
            authz: client(auth.authz.enabled(), "auth.authz.webhook")?,
            config: config
                .configserver
                .as_ref()
                .map(|c| {
                    WebhookClient::new(&c.client, CONFIG_DEADLINE)
                        .with_context(|| format!("setting up the config server ({})", c.client.url))
                })
                .transpose()?,
            base: Arc::clone(config),
        })
    }

    /// Adds the methods the webhooks provide.
    pub(crate) fn add_methods(&self, methods: &mut MethodSet) {
        if self.password.is_some() {
            methods.push(MethodKind::Password);
        }
        if self.public_key.is_some() {
            methods.push(MethodKind::PublicKey);
        }
        if self.keyboard.is_some() {
            methods.push(MethodKind::KeyboardInteractive);
        }
    }

    pub(crate) fn has_password(&self) -> bool {
        self.password.is_some()
    }

    pub(crate) fn has_public_key(&self) -> bool {
        self.public_key.is_some()
    }
}

/// The result of one authentication attempt.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// Authenticated, as `username`, with what the webhook added.
    Accepted {
        username: String,
        metadata: Metadata,
    },
    /// Wrong credentials (or an unknown user).
    Rejected,
    /// The webhook could not answer; the reason is for the log.
    Unavailable(String),
}

impl Step {
    fn from_response(user: &str, mut response: AuthResponse) -> Self {
        if !response.success {
            return Step::Rejected;
        }
        let metadata = response.take_metadata();
        let username = response
            .authenticated_username
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| user.to_owned());
        Step::Accepted { username, metadata }
    }

    fn from_error(error: &WebhookError) -> Self {
        Step::Unavailable(error.to_string())
    }
}

/// A keyboard-interactive conversation in progress.
struct Conversation {
    round: u32,
    state: String,
}

/// Per-connection webhook state.
#[derive(Default)]
pub(crate) struct LoginState {
    /// The client's version line, recorded as it arrives.
    pub(crate) client_version: Arc<OnceLock<String>>,
    /// The session handle, to disconnect with a reason.
    handle: OnceLock<russh::server::Handle>,
    conversation: Mutex<Option<Conversation>>,
    outcome: OnceLock<Outcome>,
}

impl LoginState {
    pub(crate) fn set_handle(&self, handle: russh::server::Handle) {
        let _ = self.handle.set(handle);
    }

    /// What the login brought, once accepted.
    pub(crate) fn outcome(&self) -> Option<&Outcome> {
        self.outcome.get()
    }
}

/// Ends the connection with `reason` shown to the client, after the current reply (russh
/// handles the request once the authentication callback has returned).
fn disconnect<B: Backend>(conn: &ConnectionState<B>, reason: &'static str) {
    if let Some(handle) = conn.login.handle.get().cloned() {
        conn.spawn(async move {
            let _ = handle
                .disconnect(
                    russh::Disconnect::ServiceNotAvailable,
                    format!("sshpod: {reason}"),
                    String::new(),
                )
                .await;
        });
    }
}

/// The shared request fields for this connection.
fn connection_metadata<B: Backend>(
    conn: &ConnectionState<B>,
    user: &str,
    authenticated: Option<&str>,
    metadata: &Metadata,
) -> ConnectionMetadata {
    ConnectionMetadata {
        remote_address: conn.peer.to_string(),
        connection_id: conn.id.to_string(),
        client_version: conn.login.client_version.get().cloned().unwrap_or_default(),
        username: user.to_owned(),
        authenticated_username: authenticated.map(str::to_owned),
        ..Default::default()
    }
    .with_metadata(metadata)
}

/// Asks the password webhook.
pub(crate) async fn password<B: Backend>(
    conn: &ConnectionState<B>,
    user: &str,
    password: &str,
) -> Step {
    let Some(client) = &conn.shared.webhooks.password else {
        return Step::Rejected;
    };
    let request = PasswordRequest {
        connection: connection_metadata(conn, user, None, &Metadata::default()),
        password_base64: base64::engine::general_purpose::STANDARD.encode(password.as_bytes()),
    };
    match client.call::<_, AuthResponse>("/password", &request).await {
        Ok(response) => Step::from_response(user, response),
        Err(e) => Step::from_error(&e),
    }
}

/// The authorized_keys form of a key, without its comment.
pub(super) fn key_line(openssh: &str) -> String {
    openssh
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Asks the public-key webhook about a plain key (once per key and connection).
pub(crate) async fn public_key<B: Backend>(
    conn: &ConnectionState<B>,
    user: &str,
    key: &PublicKey,
) -> Step {
    let Ok(line) = key.to_openssh() else {
        return Step::Rejected;
    };
    ask_public_key(conn, user, key_line(&line), None).await
}

/// Asks the public-key webhook about a certificate, with its details.
pub(crate) async fn certificate<B: Backend>(
    conn: &ConnectionState<B>,
    user: &str,
    certificate: &Certificate,
) -> Step {
    let Ok(line) = certificate.to_openssh() else {
        return Step::Rejected;
    };
    ask_public_key(
        conn,
        user,
        key_line(&line),
        Some(certificate_info(certificate)),
    )
    .await
}

async fn ask_public_key<B: Backend>(
    conn: &ConnectionState<B>,
    user: &str,
    line: String,
    certificate: Option<CertificateInfo>,
) -> Step {
    let Some(client) = &conn.shared.webhooks.public_key else {
        return Step::Rejected;
    };
    let request = PublicKeyRequest {
        connection: connection_metadata(conn, user, None, &Metadata::default()),
        public_key: line,
        certificate,
    };
    match client.call::<_, AuthResponse>("/pubkey", &request).await {
        Ok(response) => Step::from_response(user, response),
        Err(e) => Step::from_error(&e),
    }
}

/// One step of a keyboard-interactive conversation. `answers` is `None` when the client starts
/// the method. Returns the next prompts, or the decision.
pub(crate) async fn keyboard_interactive<B: Backend>(
    conn: &ConnectionState<B>,
    user: &str,
    answers: Option<Vec<String>>,
) -> Result<Auth, Step> {
    let Some(client) = &conn.shared.webhooks.keyboard else {
        return Err(Step::Rejected);
    };
    let (round, state) = {
        let Ok(mut slot) = conn.login.conversation.lock() else {
            return Err(Step::Rejected);
        };
        match (answers.is_some(), slot.take()) {
            (true, Some(c)) => (c.round + 1, c.state),
            // A fresh start (or answers to no question): begin again.
            _ => (1, String::new()),
        }
    };
    if round > MAX_ROUNDS {
        return Err(Step::Rejected);
    }
    let request = KeyboardInteractiveRequest {
        connection: connection_metadata(conn, user, None, &Metadata::default()),
        round,
        state,
        answers: if round == 1 {
            Vec::new()
        } else {
            answers.unwrap_or_default()
        },
    };
    let mut response = match client
        .call::<_, KeyboardInteractiveResponse>("/keyboard-interactive", &request)
        .await
    {
        Ok(r) => r,
        Err(e) => return Err(Step::from_error(&e)),
    };
    if response.questions.is_empty() {
        if !response.success {
            return Err(Step::Rejected);
        }
        let metadata = response.take_metadata();
        let username = response
            .authenticated_username
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| user.to_owned());
        return Err(Step::Accepted { username, metadata });
    }
    if let Ok(mut slot) = conn.login.conversation.lock() {
        *slot = Some(Conversation {
            round,
            state: response.state,
        });
    }
    let prompts: Vec<(std::borrow::Cow<'static, str>, bool)> = response
        .questions
        .into_iter()
        .map(|q| (q.prompt.into(), q.echo))
        .collect();
    Ok(Auth::Partial {
        name: response.name.into(),
        instructions: response.instruction.into(),
        prompts: prompts.into(),
    })
}

/// Turns an authentication step into the final answer: authz, config server, then accept.
pub(crate) async fn finish<B: Backend>(
    conn: &Arc<ConnectionState<B>>,
    user: &str,
    method: &str,
    step: Step,
) -> Auth {
    // A refusal of the credentials (not an outage of a webhook or config server) counts
    // against the source if the connection never logs in (`ssh.perSourcePenalties`).
    let log_refused = |reason: &str| {
        conn.on_login_refused();
        conn.span
            .in_scope(|| tracing::info!(user, method, reason, "login refused"));
    };
    let (mut name, mut metadata) = match step {
        Step::Rejected => {
            log_refused("not accepted");
            return Auth::reject();
        }
        Step::Unavailable(reason) => {
            conn.span.in_scope(|| {
                tracing::warn!(
                    user,
                    method,
                    reason,
                    "login refused: authentication unavailable"
                )
            });
            disconnect(conn, UNAVAILABLE);
            return Auth::reject();
        }
        Step::Accepted { username, metadata } => (username, metadata),
    };
    let webhooks = &conn.shared.webhooks;

    if let Some(authz) = &webhooks.authz {
        let request = connection_metadata(conn, user, Some(&name), &metadata);
        match authz.call::<_, AuthResponse>("/authz", &request).await {
            Ok(mut response) if response.success => {
                metadata.merge(response.take_metadata());
                if let Some(n) = response.authenticated_username.filter(|n| !n.is_empty()) {
                    name = n;
                }
            }
            Ok(_) => {
                log_refused("the authorization webhook said no");
                return Auth::reject();
            }
            Err(e) => {
                return unavailable(conn, user, method, &e);
            }
        }
    }

    let mut config = None;
    if let Some(server) = &webhooks.config {
        let request = connection_metadata(conn, user, Some(&name), &metadata);
        let mut response = match server.call::<_, ConfigResponse>("", &request).await {
            Ok(r) => r,
            Err(e @ WebhookError::Malformed { .. }) => {
                return bad_config(conn, user, method, &e.to_string());
            }
            Err(e) => return unavailable(conn, user, method, &e),
        };
        metadata.merge(response.take_metadata());
        if let Some(n) = response
            .authenticated_username
            .take()
            .filter(|n| !n.is_empty())
        {
            name = n;
        }
        match sshpod_config::merge_answer(&webhooks.base, &response.config) {
            Ok((merged, _)) if merged.backend != webhooks.base.backend => {
                // One sshpod process runs one backend: a different one cannot be honoured.
                let reason = format!(
                    "{}: the answer chooses backend `{:?}`, but this sshpod runs `{:?}`",
                    server.url(),
                    merged.backend,
                    webhooks.base.backend
                );
                return bad_config(conn, user, method, &reason);
            }
            Ok((merged, ignored)) => {
                if !ignored.is_empty() {
                    conn.span.in_scope(|| {
                        tracing::info!(
                            sections = ignored.join(", "),
                            "config server answer: sections that do not apply per connection are ignored"
                        )
                    });
                }
                config = Some(Arc::new(merged));
            }
            Err(e) => {
                let reason = format!("{}: {e}", server.url());
                return bad_config(conn, user, method, &reason);
            }
        }
    }

    let effective = config.as_deref().unwrap_or(&webhooks.base);
    let outcome = match outcome(&metadata, effective, config.clone()) {
        Ok(o) => o,
        Err(reason) => return bad_config(conn, user, method, &reason),
    };
    let _ = conn.login.outcome.set(outcome);
    conn.span.in_scope(|| {
        tracing::info!(
            user,
            method,
            authenticated = name,
            metadata = ?metadata
                .metadata
                .iter()
                .filter(|(_, v)| !v.sensitive)
                .map(|(k, _)| k)
                .collect::<Vec<_>>(),
            "login accepted"
        )
    });
    conn.on_authenticated(&name);
    Auth::Accept
}

fn unavailable<B: Backend>(
    conn: &ConnectionState<B>,
    user: &str,
    method: &str,
    error: &WebhookError,
) -> Auth {
    conn.span.in_scope(|| {
        tracing::warn!(
            user,
            method,
            error = error as &dyn std::error::Error,
            "login refused: authentication unavailable"
        )
    });
    disconnect(conn, UNAVAILABLE);
    Auth::reject()
}

fn bad_config<B: Backend>(
    conn: &ConnectionState<B>,
    user: &str,
    method: &str,
    reason: &str,
) -> Auth {
    conn.span.in_scope(|| {
        tracing::warn!(
            user,
            method,
            reason,
            "login refused: the config server's answer is not valid"
        )
    });
    disconnect(conn, BAD_CONFIG);
    Auth::reject()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_lines_drop_the_comment() {
        assert_eq!(key_line("ssh-ed25519 AAAA user@host"), "ssh-ed25519 AAAA");
    }
}
