//! sshpod's webhook client: ContainerSSH's authentication (`/password`, `/pubkey`, `/authz`) and
//! configuration webhooks, plus sshpod's keyboard-interactive extension, over HTTP or HTTPS.
//!
//! It owns reqwest and rustls. It knows the wire format ([`protocol`]) and how to call an
//! endpoint reliably ([`WebhookClient`]); it must not depend on the SSH server or on backends.

mod client;
pub mod protocol;
pub mod retry;
mod tls;

use std::time::Duration;

pub use client::WebhookClient;
pub use tls::{protocol_versions, restricted_provider, NothingOffered};

/// A client cannot be built from its configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A certificate or key file cannot be read.
    #[error("cannot read the {what} file `{path}`")]
    ReadFile {
        /// Which setting (`cacert`, `cert`, `key`).
        what: &'static str,
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A certificate or key is not valid PEM.
    #[error("the {what} is not usable: {reason}")]
    Pem {
        /// Which setting.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The TLS settings cannot work.
    #[error("TLS settings: {0}")]
    Tls(String),
}

/// A webhook call failed. `Display` is for the log: it names the URL and the reason, and never
/// includes request data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// No usable answer before the deadline (unreachable, timing out, or 5xx every time).
    #[error("{url} is unavailable after {attempts} attempt(s) in {elapsed:.1?}: {reason}")]
    Unavailable {
        /// The URL called.
        url: String,
        /// How many requests were made.
        attempts: u32,
        /// How long it took.
        elapsed: Duration,
        /// The last failure.
        reason: String,
    },
    /// The server answered with a status that is not 200 and not worth retrying.
    #[error("{url} refused the request: {reason}")]
    Refused {
        /// The URL called.
        url: String,
        /// The status.
        reason: String,
    },
    /// The answer is not what the protocol says.
    #[error("{url} gave a malformed answer: {reason}")]
    Malformed {
        /// The URL called.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}
