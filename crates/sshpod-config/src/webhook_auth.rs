//! Authentication settings that only have a webhook method in sshpod: `auth.authz` (ContainerSSH's
//! authorization webhook) and `auth.keyboardInteractive` (sshpod's keyboard-interactive webhook,
//! an extension; ContainerSSH's `oauth2` method is not supported yet, though its settings are
//! accepted while another method is selected).

use serde::{Deserialize, Serialize};

use crate::check::Checker;
use crate::http::{RawWebhook, WebhookConfig};
use crate::inert::RawOAuth2;

/// A method that is either off or a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum WebhookMethod {
    /// Off.
    #[default]
    #[serde(rename = "")]
    Off,
    /// Calls the webhook.
    #[serde(rename = "webhook")]
    Webhook,
}

/// `auth.authz` or `auth.keyboardInteractive`, validated.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct WebhookAuth {
    /// The method; `""` is off.
    pub method: WebhookMethod,
    /// The webhook; present exactly when `method` is `webhook`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookConfig>,
}

impl WebhookAuth {
    /// The webhook, when the method is on.
    pub fn enabled(&self) -> Option<&WebhookConfig> {
        self.webhook.as_ref()
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
enum RawAuthzMethod {
    #[default]
    #[serde(rename = "")]
    Off,
    #[serde(rename = "webhook")]
    Webhook,
}

/// `auth.authz` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawAuthz {
    method: RawAuthzMethod,
    webhook: RawWebhook,
}

impl RawAuthz {
    pub(crate) fn resolve(&self, check: &mut Checker<'_>) -> WebhookAuth {
        match self.method {
            RawAuthzMethod::Off => WebhookAuth::default(),
            RawAuthzMethod::Webhook => WebhookAuth {
                method: WebhookMethod::Webhook,
                webhook: Some(self.webhook.resolve(check, "auth.authz.webhook")),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
enum RawKeyboardInteractiveMethod {
    #[default]
    #[serde(rename = "")]
    Off,
    #[serde(rename = "webhook")]
    Webhook,
    #[serde(rename = "oauth2")]
    Oauth2,
}

/// `auth.keyboardInteractive` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawKeyboardInteractive {
    method: RawKeyboardInteractiveMethod,
    webhook: RawWebhook,
    oauth2: RawOAuth2,
}

impl RawKeyboardInteractive {
    /// Whether the file asks for keyboard-interactive authentication.
    pub(crate) fn requested(&self) -> bool {
        !matches!(self.method, RawKeyboardInteractiveMethod::Off)
    }

    pub(crate) fn resolve(&self, check: &mut Checker<'_>) -> WebhookAuth {
        match self.method {
            RawKeyboardInteractiveMethod::Off => WebhookAuth::default(),
            RawKeyboardInteractiveMethod::Oauth2 => {
                check.error(
                    "auth.keyboardInteractive.method",
                    "`oauth2` is not supported yet; use `webhook`",
                );
                WebhookAuth::default()
            }
            RawKeyboardInteractiveMethod::Webhook => WebhookAuth {
                method: WebhookMethod::Webhook,
                webhook: Some(
                    self.webhook
                        .resolve(check, "auth.keyboardInteractive.webhook"),
                ),
            },
        }
    }
}
