//! The `audit` section: what is recorded of every connection, in which format, and where it is
//! kept. Keys and defaults are ContainerSSH's (`config/auditlog.go`), plus sshpod's own format
//! (`format: sshpod`, the one its documentation recommends), `required` (fail closed), a spool
//! limit for S3, and `web` (the recordings page).

use std::path::PathBuf;

use serde::Serialize;

use crate::secret::Secret;

/// `audit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditConfig {
    /// Whether connections are recorded.
    pub enable: bool,
    /// The recording format.
    pub format: AuditFormat,
    /// Where recordings are kept.
    pub storage: AuditStorage,
    /// `file` storage.
    pub file: AuditFileConfig,
    /// `s3` storage.
    pub s3: AuditS3Config,
    /// Which data is recorded besides events.
    pub intercept: AuditIntercept,
    /// A connection that cannot be recorded is refused, and a running one is ended when its
    /// recording fails (sshpod's own).
    pub required: bool,
    /// The recordings page (sshpod's own).
    pub web: AuditWebConfig,
}

/// `audit.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditFormat {
    /// Nothing is written.
    None,
    /// ContainerSSH's binary audit log (version 2).
    Binary,
    /// asciicast v2 of the terminal sessions, as ContainerSSH writes it.
    Asciinema,
    /// sshpod's own: a hash-chained JSON-lines event log, asciicast files of terminal sessions,
    /// the intercepted streams and file transfers.
    Sshpod,
}

/// `audit.storage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditStorage {
    /// Nothing is kept.
    None,
    /// A local directory.
    File,
    /// An S3-compatible bucket, through a local spool.
    S3,
}

/// `audit.file`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditFileConfig {
    /// The directory recordings are written to (must exist).
    pub directory: PathBuf,
}

/// `audit.s3`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditS3Config {
    /// The spool: recordings are written here first and removed once uploaded (must exist).
    pub local: PathBuf,
    /// The access key id.
    pub access_key: Secret<String>,
    /// The secret access key.
    pub secret_key: Secret<String>,
    /// The bucket.
    pub bucket: String,
    /// The region (`us-east-1` when empty).
    pub region: String,
    /// The endpoint URL, for stores other than AWS (empty: AWS's).
    pub endpoint: String,
    /// PEM CA certificate(s) the endpoint's certificate must chain to (empty: the system's).
    pub cacert: String,
    /// A canned ACL set on every object (empty: none).
    pub acl: String,
    /// Path-style addressing (`endpoint/bucket/key`) instead of virtual hosts.
    pub path_style_access: bool,
    /// Bytes per multipart part (at least 5 MiB).
    pub upload_part_size: u64,
    /// Uploads at once.
    pub parallel_uploads: u32,
    /// Which connection metadata becomes object metadata.
    pub metadata: AuditS3Metadata,
    /// The most the spool may hold, in bytes; a recording that would pass it fails (sshpod's
    /// own; 0 means no limit).
    pub max_spool_size: u64,
}

/// `audit.s3.metadata`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditS3Metadata {
    /// Add the client's address.
    pub ip: bool,
    /// Add the authenticated user.
    pub username: bool,
}

/// `audit.intercept`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditIntercept {
    /// What the client sends to its processes.
    pub stdin: bool,
    /// What processes send to the client (and terminal output).
    pub stdout: bool,
    /// What processes send on the error stream.
    pub stderr: bool,
    /// Passwords of password logins.
    pub passwords: bool,
    /// The bytes of forwarded connections.
    pub forwarding: bool,
}

/// `audit.web`: the recordings page and its API, on their own HTTP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditWebConfig {
    /// `host:port` to listen on; empty: no page.
    pub listen: String,
    /// Bearer token a browser or client must present (empty: only client certificates).
    pub token: Secret<String>,
    /// PEM certificate of the server (with `key`: HTTPS).
    pub cert: String,
    /// PEM private key of the server.
    pub key: String,
    /// PEM CA certificate(s) client certificates must chain to (mTLS).
    pub clientcacert: String,
    /// The directory with the player's script and style (`asciinema-player.min.js`,
    /// `asciinema-player.css`).
    pub assets: PathBuf,
}
