//! Logins through ContainerSSH's webhooks: the clients, built once, and one call per
//! authentication attempt (password, public key or certificate, keyboard-interactive round).
//! A webhook that cannot answer within its deadline gives [`Step::Unavailable`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use russh::keys::ssh_key::Certificate;
use russh::keys::PublicKey;
use russh::server::Auth;
use russh::{MethodKind, MethodSet};
use sshpod_config::{Config, WebhookConfig};
use sshpod_core::{Backend, Webhook, WebhookOutcome, WebhookRequest};
use sshpod_webhook::protocol::{
    AuthResponse, CertificateInfo, ConnectionMetadata, KeyboardInteractiveRequest,
    KeyboardInteractiveResponse, Metadata, PasswordRequest, PublicKeyRequest,
};
use sshpod_webhook::WebhookClient;

use super::certificate_info::certificate_info;
use super::Step;
use crate::server::connection::ConnectionState;

/// Rounds of one keyboard-interactive conversation before it is refused.
const MAX_ROUNDS: u32 = 10;

/// The webhook clients, built once at start-up.
pub(crate) struct Webhooks {
    password: Option<WebhookClient>,
    public_key: Option<WebhookClient>,
    keyboard: Option<WebhookClient>,
    pub(super) authz: Option<WebhookClient>,
    pub(super) config: Option<WebhookClient>,
    /// The file configuration, the base of config server merges.
    pub(super) base: Arc<Config>,
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

/// A keyboard-interactive conversation in progress.
struct Conversation {
    round: u32,
    state: String,
}

/// Per-connection login state: the keyboard-interactive conversation in progress.
#[derive(Default)]
pub(crate) struct LoginState {
    conversation: Mutex<Option<Conversation>>,
}

/// The shared request fields for this connection.
pub(super) fn connection_metadata<B: Backend>(
    conn: &ConnectionState<B>,
    user: &str,
    authenticated: Option<&str>,
    metadata: &Metadata,
) -> ConnectionMetadata {
    ConnectionMetadata {
        remote_address: conn.peer.to_string(),
        connection_id: conn.id.to_string(),
        client_version: conn.client_version.get().cloned().unwrap_or_default(),
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
    let observe = observer(conn, Webhook::Password);
    match client
        .call_observed::<_, AuthResponse>("/password", &request, &observe)
        .await
    {
        Ok(response) => Step::from_response(user, response),
        Err(e) => Step::Unavailable(Arc::new(e)),
    }
}

/// Tells the subscribers how each request of a call to `hook` went.
pub(super) fn observer<B: Backend>(
    conn: &ConnectionState<B>,
    hook: Webhook,
) -> impl Fn(bool, WebhookOutcome) + Sync + '_ {
    move |retry, outcome| {
        let request = WebhookRequest {
            hook,
            retry,
            outcome,
        };
        for subscriber in conn.shared.subscribers.iter() {
            subscriber.webhook_request(&request);
        }
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
    let observe = observer(conn, Webhook::PublicKey);
    match client
        .call_observed::<_, AuthResponse>("/pubkey", &request, &observe)
        .await
    {
        Ok(response) => Step::from_response(user, response),
        Err(e) => Step::Unavailable(Arc::new(e)),
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
    let observe = observer(conn, Webhook::KeyboardInteractive);
    let mut response = match client
        .call_observed::<_, KeyboardInteractiveResponse>(
            "/keyboard-interactive",
            &request,
            &observe,
        )
        .await
    {
        Ok(r) => r,
        Err(e) => return Err(Step::Unavailable(Arc::new(e))),
    };
    if response.questions.is_empty() {
        if !response.success {
            return Err(Step::Rejected);
        }
        let metadata = response.take_metadata();
        let username = response
            .authenticated_as()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_lines_drop_the_comment() {
        assert_eq!(key_line("ssh-ed25519 AAAA user@host"), "ssh-ed25519 AAAA");
    }
}
