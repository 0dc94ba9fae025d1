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

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use russh::keys::ssh_key::Certificate;
use russh::keys::{HashAlg, PublicKey};
use russh::server::Auth;
use russh::{MethodKind, MethodSet};
use sshpod_config::{Config, WebhookConfig};
use sshpod_core::{Backend, ConnectionContext, ContainerFile};
use sshpod_webhook::protocol::{
    AuthResponse, CertificateInfo, ConfigResponse, ConnectionMetadata, KeyboardInteractiveRequest,
    KeyboardInteractiveResponse, Metadata, PasswordRequest, PublicKeyRequest,
};
use sshpod_webhook::{WebhookClient, WebhookError};

use crate::server::connection::ConnectionState;

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

/// What a successful login hands to provisioning.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    environment: Vec<(String, String)>,
    files: Vec<ContainerFile>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    config: Option<Arc<Config>>,
}

impl Outcome {
    /// Fills the webhook parts of a backend context.
    pub(crate) fn apply(&self, ctx: &mut ConnectionContext) {
        ctx.environment = self.environment.clone();
        ctx.files = self.files.clone();
        ctx.labels = self.labels.clone();
        ctx.annotations = self.annotations.clone();
        ctx.config = self.config.clone();
    }
}

/// Per-connection webhook state.
#[derive(Default)]
pub(crate) struct LoginState {
    /// The client's version line, recorded as it arrives.
    pub(crate) client_version: Arc<OnceLock<String>>,
    /// The session handle, to disconnect with a reason.
    handle: OnceLock<russh::server::Handle>,
    /// `/pubkey` answers by key, so the offer and the signed request make one call.
    keys: Mutex<HashMap<String, Step>>,
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
fn key_line(openssh: &str) -> String {
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
    let cache_key = format!("{user}\n{line}");
    if let Some(step) = conn
        .login
        .keys
        .lock()
        .ok()
        .and_then(|keys| keys.get(&cache_key).cloned())
    {
        return step;
    }
    let request = PublicKeyRequest {
        connection: connection_metadata(conn, user, None, &Metadata::default()),
        public_key: line,
        certificate,
    };
    let step = match client.call::<_, AuthResponse>("/pubkey", &request).await {
        Ok(response) => Step::from_response(user, response),
        Err(e) => Step::from_error(&e),
    };
    if !matches!(step, Step::Unavailable(_)) {
        if let Ok(mut keys) = conn.login.keys.lock() {
            keys.insert(cache_key, step.clone());
        }
    }
    step
}

/// What the certificate says, for the webhook.
fn certificate_info(certificate: &Certificate) -> CertificateInfo {
    let ca = PublicKey::from(certificate.signature_key().clone());
    let to_map = |map: &russh::keys::ssh_key::certificate::OptionsMap| {
        map.iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    let certified = PublicKey::from(certificate.public_key().clone());
    CertificateInfo {
        cert_type: if certificate.cert_type().is_host() {
            "host".to_owned()
        } else {
            "user".to_owned()
        },
        key_id: certificate.key_id().to_owned(),
        serial: certificate.serial(),
        principals: certificate.valid_principals().to_vec(),
        ca_fingerprint: ca.fingerprint(HashAlg::Sha256).to_string(),
        ca_key: ca.to_openssh().map(|l| key_line(&l)).unwrap_or_default(),
        valid_after: rfc3339(certificate.valid_after()),
        valid_before: if certificate.valid_before() == u64::MAX {
            "forever".to_owned()
        } else {
            rfc3339(certificate.valid_before())
        },
        critical_options: to_map(certificate.critical_options()),
        extensions: to_map(certificate.extensions()),
        public_key: certified
            .to_openssh()
            .map(|l| key_line(&l))
            .unwrap_or_default(),
    }
}

/// Seconds since the epoch as an RFC 3339 UTC time.
fn rfc3339(seconds: u64) -> String {
    let days = i64::try_from(seconds / 86_400).unwrap_or(i64::MAX / 2);
    let rest = seconds % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
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
    let log_refused = |reason: &str| {
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
            metadata = ?metadata.shareable().metadata.keys().collect::<Vec<_>>(),
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

/// What provisioning needs from the metadata: environment (plus metadata as environment when
/// `exposeAuthMetadataAsEnv` is on), labels (`exposeAuthMetadataAsLabels`, never from
/// sensitive entries) and decoded files.
fn outcome(
    metadata: &Metadata,
    config: &Config,
    per_connection: Option<Arc<Config>>,
) -> Result<Outcome, String> {
    let mut environment: Vec<(String, String)> = Vec::new();
    let kubernetes = config.backend == sshpod_config::Backend::Kubernetes;
    if kubernetes {
        // Kubernetes names each exposed entry (metadata key to variable name).
        environment.extend(
            config
                .kubernetes
                .pod
                .expose_auth_metadata_as_env
                .iter()
                .filter_map(|(key, name)| {
                    metadata
                        .metadata
                        .get(key)
                        .map(|v| (name.clone(), v.value.clone()))
                }),
        );
    } else if config.docker.execution.expose_auth_metadata_as_env {
        environment.extend(
            metadata
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.value.clone())),
        );
    }
    for (name, value) in &metadata.environment {
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            return Err(format!("invalid environment variable name `{name}`"));
        }
        environment.retain(|(k, _)| k != name);
        environment.push((name.clone(), value.value.clone()));
    }
    let mut files = Vec::new();
    for (path, value) in &metadata.files {
        if !path.starts_with('/') || path.contains('\0') {
            return Err(format!("file path `{path}` is not absolute"));
        }
        let content = base64::engine::general_purpose::STANDARD
            .decode(value.value.trim())
            .map_err(|_| format!("the content of file `{path}` is not base64"))?;
        files.push(ContainerFile {
            path: path.clone(),
            content,
        });
    }
    // Metadata key to label (or annotation) name; sensitive entries never.
    let exposed = |map: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        map.iter()
            .filter_map(|(key, name)| {
                metadata
                    .metadata
                    .get(key)
                    .filter(|v| !v.sensitive)
                    .map(|v| (name.clone(), v.value.clone()))
            })
            .collect()
    };
    let (labels, annotations) = if kubernetes {
        let pod = &config.kubernetes.pod;
        (
            exposed(&pod.expose_auth_metadata_as_labels),
            exposed(&pod.expose_auth_metadata_as_annotations),
        )
    } else {
        (
            exposed(&config.docker.execution.expose_auth_metadata_as_labels),
            BTreeMap::new(),
        )
    };
    Ok(Outcome {
        environment,
        files,
        labels,
        annotations,
        config: per_connection,
    })
}

#[cfg(test)]
mod tests {
    use sshpod_webhook::protocol::MetadataValue;

    use super::*;

    fn value(v: &str, sensitive: bool) -> MetadataValue {
        MetadataValue {
            value: v.to_owned(),
            sensitive,
        }
    }

    fn config(expose: bool) -> Config {
        let text = format!(
            "auth: {{password: {{method: htpasswd, htpasswd: {{file: /h}}}}}}\n\
             docker: {{execution: {{exposeAuthMetadataAsEnv: {expose}, \
             exposeAuthMetadataAsLabels: {{TEAM: lab.team, SECRET: lab.secret}}}}}}\n"
        );
        sshpod_config::parse_str(&text, sshpod_config::Format::Yaml, "t.yaml")
            .unwrap()
            .config
    }

    #[test]
    fn environment_files_and_metadata_as_env() {
        let mut metadata = Metadata::default();
        metadata
            .metadata
            .insert("TEAM".into(), value("blue", false));
        metadata.metadata.insert("SECRET".into(), value("x", true));
        metadata
            .environment
            .insert("TEAM".into(), value("red", false));
        metadata
            .environment
            .insert("TOKEN".into(), value("s3cret", true));
        metadata
            .files
            .insert("/home/u/.token".into(), value("aGVsbG8=", true));
        let out = outcome(&metadata, &config(true), None).unwrap();
        assert_eq!(
            out.environment,
            [
                ("SECRET".to_owned(), "x".to_owned()),
                ("TEAM".to_owned(), "red".to_owned()),
                ("TOKEN".to_owned(), "s3cret".to_owned())
            ]
        );
        assert_eq!(out.labels.len(), 1);
        assert_eq!(out.labels["lab.team"], "blue");
        assert_eq!(out.files[0].content, b"hello");
        let out = outcome(&metadata, &config(false), None).unwrap();
        assert_eq!(out.environment.len(), 2);

        metadata.files.insert("relative".into(), value("", false));
        assert!(outcome(&metadata, &config(false), None).is_err());
        metadata.files.clear();
        metadata
            .files
            .insert("/x".into(), value("not base64!", false));
        assert!(outcome(&metadata, &config(false), None)
            .unwrap_err()
            .contains("base64"));
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn key_lines_drop_the_comment() {
        assert_eq!(key_line("ssh-ed25519 AAAA user@host"), "ssh-ed25519 AAAA");
    }
}
