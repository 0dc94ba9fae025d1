//! What every accepted authentication goes through before the login is accepted: the
//! authorization webhook, then the config server, whose answer is merged into the file
//! configuration and validated.
//!
//! Metadata, environment and files flow along in that order, later answers overriding earlier
//! ones; entries marked sensitive are never logged and never sent to a later webhook. A webhook
//! that cannot answer ends the connection with "authentication unavailable"; a config server
//! answer that is not valid ends it with its own message.

use std::sync::Arc;

use russh::server::Auth;
use sshpod_config::{AuditFormat, AuditStorage};
use sshpod_core::{AuthMethod, Backend, Credential, EventKind, LoginRefusal, Webhook};
use sshpod_webhook::protocol::{AuthResponse, ConfigResponse};
use sshpod_webhook::WebhookError;

use super::outcome::outcome;
use super::webhook::{connection_metadata, observer};
use super::{Attempt, Step};
use crate::server::channel::security::SecurityPolicy;
use crate::server::connection::{ConnectionState, Login};

/// What the user is told when a webhook cannot answer.
const UNAVAILABLE: &str = "authentication unavailable, please try again later";
/// What the user is told when the config server's answer cannot be used.
const BAD_CONFIG: &str =
    "your login cannot be prepared: the configuration server's answer is not valid";

/// Turns an authentication step into the final answer: authz, config server, then accept.
pub(crate) async fn finish<B: Backend>(
    conn: &ConnectionState<B>,
    user: &str,
    attempt: Attempt,
    step: Step,
) -> Auth {
    let Attempt {
        method,
        credential,
        key,
    } = attempt;
    let (mut name, mut metadata) = match step {
        Step::Rejected => {
            return refused(conn, user, method, credential, LoginRefusal::NotAccepted)
        }
        Step::Unavailable(cause) => return unavailable(conn, user, method, cause),
        Step::Accepted { username, metadata } => (username, metadata),
    };
    let webhooks = &conn.shared.webhooks;

    if let Some(authz) = &webhooks.authz {
        let request = connection_metadata(conn, user, Some(&name), &metadata);
        let observe = observer(conn, Webhook::Authorization);
        match authz
            .call_observed::<_, AuthResponse>("/authz", &request, &observe)
            .await
        {
            Ok(mut response) if response.success => {
                metadata.merge(response.take_metadata());
                if let Some(n) = response.authenticated_as() {
                    name = n;
                }
            }
            Ok(_) => return refused(conn, user, method, credential, LoginRefusal::NotAuthorized),
            Err(e) => return unavailable(conn, user, method, Arc::new(e)),
        }
    }

    let mut config = None;
    if let Some(server) = &webhooks.config {
        let request = connection_metadata(conn, user, Some(&name), &metadata);
        let observe = observer(conn, Webhook::Config);
        let mut response = match server
            .call_observed::<_, ConfigResponse>("", &request, &observe)
            .await
        {
            Ok(r) => r,
            Err(e @ WebhookError::Malformed { .. }) => {
                return bad_config(conn, user, method, e.to_string());
            }
            Err(e) => return unavailable(conn, user, method, Arc::new(e)),
        };
        metadata.merge(response.take_metadata());
        if let Some(n) = response.authenticated_as() {
            name = n;
        }
        match sshpod_config::merge_answer(&webhooks.base, &response.config) {
            Ok((merged, _))
                if merged.backend != webhooks.base.backend
                    // Containers or not, any login can be passed on to another SSH server.
                    && merged.backend != sshpod_config::Backend::SshProxy =>
            {
                // One sshpod process runs one container backend: a different one cannot be
                // honoured.
                let reason = format!(
                    "{}: the answer chooses backend `{:?}`, but this sshpod runs `{:?}`",
                    server.url(),
                    merged.backend,
                    webhooks.base.backend
                );
                return bad_config(conn, user, method, reason);
            }
            Ok((merged, ignored)) => {
                let applied: Vec<String> = response
                    .config
                    .as_object()
                    .map(|sections| {
                        sections
                            .keys()
                            .filter(|name| !ignored.iter().any(|i| i == *name))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                if !applied.is_empty() {
                    conn.events
                        .emit(EventKind::ConfigApplied { sections: applied });
                }
                if !ignored.is_empty() {
                    conn.events.emit(EventKind::ConfigSectionsIgnored {
                        sections: ignored.iter().map(ToString::to_string).collect(),
                    });
                }
                config = Some(Arc::new(merged));
            }
            Err(e) => {
                let reason = format!("{}: {e}", server.url());
                return bad_config(conn, user, method, reason);
            }
        }
    }

    let effective = config.as_deref().unwrap_or(&webhooks.base);
    let outcome = match outcome(&metadata, effective, config.clone()) {
        Ok(o) => o,
        Err(reason) => return bad_config(conn, user, method, reason.to_string()),
    };
    conn.events.emit(EventKind::LoginAccepted {
        user: user.to_owned(),
        method,
        credential,
        authenticated: name.clone(),
        metadata: metadata
            .metadata
            .iter()
            .filter(|(_, v)| !v.sensitive)
            .map(|(k, _)| k.clone())
            .collect(),
    });
    // Only where something can be recorded: the recorder learns the login's settings here.
    let audit = &effective.audit;
    if audit.format != AuditFormat::None && audit.storage != AuditStorage::None {
        conn.events.emit(EventKind::RecordingSettings {
            enable: audit.enable,
            required: audit.required,
            intercept: audit.intercept,
        });
    }
    let login = Login {
        user: Arc::from(name),
        outcome,
        security: SecurityPolicy::new(effective.security.clone()),
        limits: effective.ssh.limits.clone(),
        key,
    };
    if conn.on_logged_in(login) {
        Auth::Accept
    } else {
        Auth::reject()
    }
}

/// A refusal of the credentials (not an outage of a webhook or config server): it counts
/// against the source if the connection never logs in (`ssh.perSourcePenalties`).
fn refused<B: Backend>(
    conn: &ConnectionState<B>,
    user: &str,
    method: AuthMethod,
    credential: Credential,
    reason: LoginRefusal,
) -> Auth {
    conn.on_login_refused();
    conn.events.emit(EventKind::LoginRefused {
        user: user.to_owned(),
        method,
        credential,
        reason,
    });
    Auth::reject()
}

fn unavailable<B: Backend>(
    conn: &ConnectionState<B>,
    user: &str,
    method: AuthMethod,
    cause: sshpod_core::event::Cause,
) -> Auth {
    conn.events.emit(EventKind::LoginUnavailable {
        user: user.to_owned(),
        method,
        cause,
    });
    conn.disconnect(UNAVAILABLE);
    Auth::reject()
}

fn bad_config<B: Backend>(
    conn: &ConnectionState<B>,
    user: &str,
    method: AuthMethod,
    reason: String,
) -> Auth {
    conn.events.emit(EventKind::ConfigAnswerRejected {
        user: user.to_owned(),
        method,
        reason,
    });
    conn.disconnect(BAD_CONFIG);
    Auth::reject()
}
