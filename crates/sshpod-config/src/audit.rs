//! The `audit` section: what is recorded of every connection, in which format, and where it is
//! kept. Keys and defaults are ContainerSSH's (`config/auditlog.go`), plus sshpod's own format
//! (`format: sshpod`, the one its documentation recommends), `required` (fail closed), a spool
//! limit for S3, and `web` (the recordings page).
//!
//! As in ContainerSSH, the storage settings are checked only when they are used (recording is
//! on, or the recordings page reads them), and a `0` part size or upload count is its default.
//! Unlike ContainerSSH, `enable: true` with nothing to write (`format: none` or
//! `storage: none`) is a warning: ContainerSSH accepts it silently and records nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::check::Checker;
use crate::error::unknown_message;
use crate::http::check_url;
use crate::secret::{is_empty_secret, serialize_key_text, Secret};
use crate::ssh::parse_listen;

/// Default `audit.file.directory`.
pub const DEFAULT_AUDIT_DIRECTORY: &str = "/var/log/audit";
/// Default `audit.s3.local`.
pub const DEFAULT_AUDIT_SPOOL: &str = "/var/lib/audit";
/// The smallest part S3 accepts in a multipart upload, and ContainerSSH's default part size.
pub const MIN_UPLOAD_PART_SIZE: u64 = 5 * 1024 * 1024;
/// The largest part S3 accepts.
const MAX_UPLOAD_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// ContainerSSH's default `audit.s3.parallelUploads`.
pub const DEFAULT_PARALLEL_UPLOADS: u32 = 20;
/// Default `audit.s3.maxSpoolSize`: 10 GiB, so that a store that stays down fills the spool,
/// not the disk it shares with everything else.
pub const DEFAULT_MAX_SPOOL_SIZE: u64 = 10 * 1024 * 1024 * 1024;
/// Default `audit.web.assets`: where packages install the player's script and style.
pub const DEFAULT_PLAYER_ASSETS: &str = "/usr/share/sshpod/player";

/// S3's canned ACLs, the values `audit.s3.acl` may take.
const CANNED_ACLS: &[&str] = &[
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
    "log-delivery-write",
];

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

impl Default for AuditConfig {
    /// ContainerSSH's defaults: nothing recorded.
    fn default() -> Self {
        RawAudit::default().into_config()
    }
}

/// `audit.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditFormat {
    /// Nothing is written.
    #[serde(alias = "")]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditStorage {
    /// Nothing is kept.
    #[serde(alias = "")]
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
    #[serde(skip_serializing_if = "is_empty_secret")]
    pub access_key: Secret<String>,
    /// The secret access key.
    #[serde(skip_serializing_if = "is_empty_secret")]
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
    /// own; default 10 GiB, 0 means no limit).
    pub max_spool_size: u64,
}

/// `audit.s3.metadata`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct AuditS3Metadata {
    /// Add the client's address.
    pub ip: bool,
    /// Add the authenticated user.
    pub username: bool,
}

/// `audit.intercept`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
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
    #[serde(skip_serializing_if = "is_empty_secret")]
    pub token: Secret<String>,
    /// PEM certificate of the server (with `key`: HTTPS).
    pub cert: String,
    /// PEM private key of the server. `sshpod check-config` shows it as `<secret>` when it is
    /// written inline rather than as a file name.
    #[serde(serialize_with = "serialize_key_text")]
    pub key: String,
    /// PEM CA certificate(s) client certificates must chain to (mTLS).
    pub clientcacert: String,
    /// The directory with the player's script and style (`asciinema-player.min.js`,
    /// `asciinema-player.css`).
    pub assets: PathBuf,
}

impl AuditWebConfig {
    /// The address the page listens on; `None` when it is off. The address was checked when
    /// the configuration was loaded.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        if self.listen.is_empty() {
            None
        } else {
            parse_listen(&self.listen).ok()
        }
    }
}

/// `audit.file` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawFile {
    directory: PathBuf,
}

impl Default for RawFile {
    fn default() -> Self {
        Self {
            directory: DEFAULT_AUDIT_DIRECTORY.into(),
        }
    }
}

/// `audit.s3` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
struct RawS3 {
    local: PathBuf,
    access_key: Secret<String>,
    secret_key: Secret<String>,
    bucket: String,
    region: String,
    endpoint: String,
    cacert: String,
    acl: String,
    path_style_access: bool,
    upload_part_size: u64,
    parallel_uploads: u32,
    metadata: AuditS3Metadata,
    max_spool_size: u64,
}

impl Default for RawS3 {
    fn default() -> Self {
        Self {
            local: DEFAULT_AUDIT_SPOOL.into(),
            access_key: Secret::default(),
            secret_key: Secret::default(),
            bucket: String::new(),
            region: String::new(),
            endpoint: String::new(),
            cacert: String::new(),
            acl: String::new(),
            path_style_access: false,
            upload_part_size: MIN_UPLOAD_PART_SIZE,
            parallel_uploads: DEFAULT_PARALLEL_UPLOADS,
            metadata: AuditS3Metadata::default(),
            max_spool_size: DEFAULT_MAX_SPOOL_SIZE,
        }
    }
}

/// `audit.web` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawWeb {
    listen: String,
    token: Secret<String>,
    cert: String,
    key: String,
    clientcacert: String,
    assets: PathBuf,
}

impl Default for RawWeb {
    fn default() -> Self {
        Self {
            listen: String::new(),
            token: Secret::default(),
            cert: String::new(),
            key: String::new(),
            clientcacert: String::new(),
            assets: DEFAULT_PLAYER_ASSETS.into(),
        }
    }
}

/// `audit` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawAudit {
    enable: bool,
    format: AuditFormat,
    storage: AuditStorage,
    file: RawFile,
    s3: RawS3,
    intercept: AuditIntercept,
    required: bool,
    web: RawWeb,
}

impl Default for RawAudit {
    fn default() -> Self {
        Self {
            enable: false,
            format: AuditFormat::None,
            storage: AuditStorage::None,
            file: RawFile::default(),
            s3: RawS3::default(),
            intercept: AuditIntercept::default(),
            required: false,
            web: RawWeb::default(),
        }
    }
}

impl RawAudit {
    pub(crate) fn resolve(mut self, check: &mut Checker<'_>) -> AuditConfig {
        // ContainerSSH gives a zero its default after reading the file.
        if self.s3.upload_part_size == 0 {
            self.s3.upload_part_size = MIN_UPLOAD_PART_SIZE;
        }
        if self.s3.parallel_uploads == 0 {
            self.s3.parallel_uploads = DEFAULT_PARALLEL_UPLOADS;
        }
        let config = self.into_config();
        check_recording(&config, check);
        let page = check_web(&config, check);
        if config.enable || page {
            match config.storage {
                AuditStorage::None => {}
                AuditStorage::File => {
                    check_directory(check, "audit.file.directory", &config.file.directory);
                }
                AuditStorage::S3 => check_s3(&config.s3, check),
            }
        }
        config
    }

    fn into_config(self) -> AuditConfig {
        AuditConfig {
            enable: self.enable,
            format: self.format,
            storage: self.storage,
            file: AuditFileConfig {
                directory: self.file.directory,
            },
            s3: AuditS3Config {
                local: self.s3.local,
                access_key: self.s3.access_key,
                secret_key: self.s3.secret_key,
                bucket: self.s3.bucket,
                region: self.s3.region,
                endpoint: self.s3.endpoint,
                cacert: self.s3.cacert,
                acl: self.s3.acl,
                path_style_access: self.s3.path_style_access,
                upload_part_size: self.s3.upload_part_size,
                parallel_uploads: self.s3.parallel_uploads,
                metadata: self.s3.metadata,
                max_spool_size: self.s3.max_spool_size,
            },
            intercept: self.intercept,
            required: self.required,
            web: AuditWebConfig {
                listen: self.web.listen,
                token: self.web.token,
                cert: self.web.cert,
                key: self.web.key,
                clientcacert: self.web.clientcacert,
                assets: self.web.assets,
            },
        }
    }
}

/// `enable`, `required` and whether they have something to write.
fn check_recording(config: &AuditConfig, check: &mut Checker<'_>) {
    let nothing = [
        ("audit.format", config.format == AuditFormat::None, "format"),
        (
            "audit.storage",
            config.storage == AuditStorage::None,
            "storage",
        ),
    ];
    if config.required {
        if !config.enable {
            check.error(
                "audit.required",
                "needs `audit.enable: true`: a recording that is off cannot be required",
            );
        }
        for (key, none, name) in nothing {
            if none {
                check.error(
                    key,
                    format!(
                        "is `none` with `audit.required: true`: nothing could be recorded, so \
                         every connection would be refused; choose a {name}"
                    ),
                );
            }
        }
    } else if config.enable {
        for (key, none, _) in nothing {
            if none {
                check.warn(
                    key,
                    format!(
                        "`audit.enable` is true but `{key}` is `none`: nothing is recorded \
                         (ContainerSSH accepts this too); `format: sshpod` with `storage: file` \
                         or `s3` records every connection"
                    ),
                );
            }
        }
    }
}

/// `web`; returns whether the page is on.
fn check_web(config: &AuditConfig, check: &mut Checker<'_>) -> bool {
    let web = &config.web;
    if web.listen.is_empty() {
        return false;
    }
    if let Err(message) = parse_listen(&web.listen) {
        check.error("audit.web.listen", message);
    }
    if config.storage == AuditStorage::None {
        check.error(
            "audit.storage",
            "the recordings page (`audit.web.listen`) reads recordings from `file` or `s3` \
             storage; `none` keeps nothing to show",
        );
    }
    let token = !web.token.expose_secret().is_empty();
    let tls = !web.cert.is_empty() && !web.key.is_empty();
    if !token && web.clientcacert.is_empty() {
        check.error(
            "audit.web",
            "the recordings page is never open: set `token` (a bearer token) or `clientcacert` \
             (client certificates), or both",
        );
    }
    match (web.cert.is_empty(), web.key.is_empty()) {
        (false, true) => check.error(
            "audit.web.key",
            "`cert` and `key` go together: give both for HTTPS, or neither",
        ),
        (true, false) => check.error(
            "audit.web.cert",
            "`cert` and `key` go together: give both for HTTPS, or neither",
        ),
        _ => {}
    }
    if !web.clientcacert.is_empty() && !tls {
        check.error(
            "audit.web.clientcacert",
            "client certificates need HTTPS: set `cert` and `key` too",
        );
    }
    if token && !tls {
        check.warn(
            "audit.web.token",
            "the recordings page is served over plain HTTP: the token and the recordings cross \
             the network in clear; set `cert` and `key` unless a TLS proxy is in front",
        );
    }
    if !web.assets.is_dir() {
        check.warn(
            "audit.web.assets",
            format!(
                "`{}` is not a directory: the page lists recordings but cannot play them \
                 without the player's files",
                web.assets.display()
            ),
        );
    }
    true
}

fn check_s3(s3: &AuditS3Config, check: &mut Checker<'_>) {
    check_directory(check, "audit.s3.local", &s3.local);
    for (key, empty, what) in [
        (
            "audit.s3.accessKey",
            s3.access_key.expose_secret().is_empty(),
            "the access key id",
        ),
        (
            "audit.s3.secretKey",
            s3.secret_key.expose_secret().is_empty(),
            "the secret access key",
        ),
        ("audit.s3.bucket", s3.bucket.is_empty(), "the bucket's name"),
    ] {
        if empty {
            check.error(key, format!("is required with `storage: s3`: {what}"));
        }
    }
    if !s3.endpoint.is_empty() {
        if let Err(message) = check_url(&s3.endpoint) {
            check.error("audit.s3.endpoint", message);
        }
    }
    if !s3.acl.is_empty() && !CANNED_ACLS.contains(&s3.acl.as_str()) {
        check.error(
            "audit.s3.acl",
            unknown_message("canned ACL", &s3.acl, CANNED_ACLS),
        );
    }
    if !(MIN_UPLOAD_PART_SIZE..=MAX_UPLOAD_PART_SIZE).contains(&s3.upload_part_size) {
        check.error(
            "audit.s3.uploadPartSize",
            format!(
                "{} bytes is outside what S3 accepts for a part: at least {MIN_UPLOAD_PART_SIZE} \
                 (5 MiB), at most {MAX_UPLOAD_PART_SIZE} (5 GiB)",
                s3.upload_part_size
            ),
        );
    }
    if s3.max_spool_size != 0 && s3.max_spool_size < s3.upload_part_size {
        check.error(
            "audit.s3.maxSpoolSize",
            format!(
                "{} bytes cannot hold one upload part ({} bytes); write at least that, or 0 for \
                 no limit",
                s3.max_spool_size, s3.upload_part_size
            ),
        );
    }
}

/// A directory that must exist: sshpod does not create it, so a mistyped path is an error
/// rather than recordings filling some other disk.
fn check_directory(check: &mut Checker<'_>, key: &str, path: &Path) {
    if path.as_os_str().is_empty() {
        check.error(key, "must not be empty");
        return;
    }
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_dir() => {}
        Ok(_) => check.error(key, format!("`{}` is not a directory", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => check.error(
            key,
            format!("`{}` does not exist; create it first", path.display()),
        ),
        Err(error) => check.error(key, format!("`{}` cannot be used: {error}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ConfigError, ConfigErrors};
    use crate::load::{parse_str, Format, Loaded};

    const MINIMAL: &str =
        "auth:\n  password:\n    method: htpasswd\n    htpasswd:\n      file: /etc/htpasswd\n";

    /// `MINIMAL` is 5 lines long: the audit section written after it starts on line 6.
    fn yaml(audit: &str) -> Result<Loaded, ConfigErrors> {
        parse_str(&format!("{MINIMAL}{audit}"), Format::Yaml, "test.yaml")
    }

    fn messages(result: Result<Loaded, ConfigErrors>) -> Vec<String> {
        match result {
            Ok(loaded) => panic!("expected errors, got {:#?}", loaded.config.audit),
            Err(ConfigErrors(errors)) => errors.iter().map(ConfigError::to_string).collect(),
        }
    }

    fn loaded(result: Result<Loaded, ConfigErrors>) -> Loaded {
        result.unwrap_or_else(|errors| panic!("{errors}"))
    }

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("a temporary directory: {e}"))
    }

    #[test]
    fn defaults_are_containerssh_s_plus_sshpod_s_own() {
        let loaded = loaded(yaml(""));
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let audit = loaded.config.audit;
        assert!(!audit.enable);
        assert_eq!(audit.format, AuditFormat::None);
        assert_eq!(audit.storage, AuditStorage::None);
        assert_eq!(audit.file.directory, Path::new("/var/log/audit"));
        assert_eq!(audit.s3.local, Path::new("/var/lib/audit"));
        assert_eq!(audit.s3.upload_part_size, 5_242_880);
        assert_eq!(audit.s3.parallel_uploads, 20);
        assert_eq!(audit.s3.max_spool_size, 10 * 1024 * 1024 * 1024);
        assert_eq!(audit.s3.metadata, AuditS3Metadata::default());
        assert!(audit.s3.bucket.is_empty() && audit.s3.acl.is_empty());
        assert_eq!(audit.intercept, AuditIntercept::default());
        assert!(!audit.required);
        assert_eq!(audit.web.listen, "");
        assert_eq!(audit.web.listen_addr(), None);
        assert_eq!(audit.web.assets, Path::new("/usr/share/sshpod/player"));
        assert_eq!(audit, AuditConfig::default());
    }

    #[test]
    fn containerssh_s_zero_values_are_its_defaults() {
        // As a Go program that marshals its whole struct writes them.
        let loaded = loaded(yaml(
            "audit:\n  format: \"\"\n  storage: \"\"\n  file: null\n  s3:\n    \
             uploadPartSize: 0\n    parallelUploads: 0\n",
        ));
        assert_eq!(loaded.config.audit, AuditConfig::default());
    }

    #[test]
    fn sshpod_format_on_file_storage_loads_quietly() {
        let directory = dir();
        let loaded = loaded(yaml(&format!(
            "audit:\n  enable: true\n  format: sshpod\n  storage: file\n  required: true\n  \
             file:\n    directory: {}\n  intercept:\n    stdin: true\n    stdout: true\n",
            directory.path().display()
        )));
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let audit = loaded.config.audit;
        assert!(audit.enable && audit.required);
        assert_eq!(audit.format, AuditFormat::Sshpod);
        assert_eq!(audit.storage, AuditStorage::File);
        assert_eq!(audit.file.directory, directory.path());
        assert!(audit.intercept.stdin && audit.intercept.stdout && !audit.intercept.stderr);
    }

    #[test]
    fn a_file_directory_that_is_missing_or_a_file_is_refused_where_it_is_written() {
        let directory = dir();
        let file = directory.path().join("plain");
        std::fs::write(&file, "x").unwrap_or_else(|e| panic!("{e}"));
        let missing = directory.path().join("missing");
        for (path, what) in [(&missing, "does not exist"), (&file, "is not a directory")] {
            let all = messages(yaml(&format!(
                "audit:\n  enable: true\n  format: sshpod\n  storage: file\n  file:\n    \
                 directory: {}\n",
                path.display()
            )));
            assert_eq!(
                all,
                [format!(
                    "test.yaml:11:16: key `audit.file.directory`: `{}` {what}{}",
                    path.display(),
                    if what == "does not exist" {
                        "; create it first"
                    } else {
                        ""
                    }
                )]
            );
        }
        let all = messages(yaml(
            "audit:\n  enable: true\n  format: sshpod\n  storage: file\n  file:\n    \
             directory: \"\"\n",
        ));
        assert_eq!(
            all,
            ["test.yaml:11:16: key `audit.file.directory`: must not be empty"]
        );
    }

    #[test]
    fn storage_is_checked_only_when_it_is_used() {
        // As in ContainerSSH: a file that records nothing may name directories that do not
        // exist on this machine.
        let loaded = loaded(yaml(
            "audit:\n  enable: false\n  format: sshpod\n  storage: s3\n  s3:\n    \
             local: /nonexistent/spool\n",
        ));
        assert_eq!(loaded.config.audit.storage, AuditStorage::S3);
    }

    #[test]
    fn every_s3_mistake_has_its_key_and_line() {
        let all = messages(yaml(
            "audit:\n  enable: true\n  format: binary\n  storage: s3\n  s3:\n    \
             local: /nonexistent/spool\n    endpoint: ftp://store\n    acl: privat\n    \
             uploadPartSize: 1048576\n    maxSpoolSize: 1000\n",
        ));
        assert_eq!(
            all,
            [
                "test.yaml:11:12: key `audit.s3.local`: `/nonexistent/spool` does not exist; \
                 create it first",
                "test.yaml:11:5: key `audit.s3.accessKey`: is required with `storage: s3`: the \
                 access key id",
                "test.yaml:11:5: key `audit.s3.secretKey`: is required with `storage: s3`: the \
                 secret access key",
                "test.yaml:11:5: key `audit.s3.bucket`: is required with `storage: s3`: the \
                 bucket's name",
                "test.yaml:12:15: key `audit.s3.endpoint`: `ftp://store` is not an http:// or \
                 https:// URL",
                "test.yaml:13:10: key `audit.s3.acl`: unknown canned ACL `privat`; did you mean \
                 `private`?",
                "test.yaml:14:21: key `audit.s3.uploadPartSize`: 1048576 bytes is outside what S3 \
                 accepts for a part: at least 5242880 (5 MiB), at most 5368709120 (5 GiB)",
                "test.yaml:15:19: key `audit.s3.maxSpoolSize`: 1000 bytes cannot hold one upload \
                 part (1048576 bytes); write at least that, or 0 for no limit",
            ]
        );
    }

    #[test]
    fn a_complete_s3_section_loads() {
        let spool = dir();
        let loaded = loaded(yaml(&format!(
            "audit:\n  enable: true\n  format: sshpod\n  storage: s3\n  s3:\n    local: {}\n    \
             accessKey: AKIDEXAMPLE\n    secretKey: wJalrXUtnFEMI\n    bucket: recordings\n    \
             endpoint: http://127.0.0.1:9000\n    pathStyleAccess: true\n    acl: private\n    \
             uploadPartSize: 8388608\n    parallelUploads: 4\n    maxSpoolSize: 0\n    \
             metadata: {{ip: true, username: true}}\n",
            spool.path().display()
        )));
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let s3 = loaded.config.audit.s3;
        assert_eq!(s3.access_key.expose_secret(), "AKIDEXAMPLE");
        assert_eq!(s3.secret_key.expose_secret(), "wJalrXUtnFEMI");
        assert_eq!(s3.bucket, "recordings");
        assert!(s3.path_style_access);
        assert_eq!(
            (s3.upload_part_size, s3.parallel_uploads, s3.max_spool_size),
            (8_388_608, 4, 0)
        );
        assert!(s3.metadata.ip && s3.metadata.username);
    }

    #[test]
    fn enabled_with_nothing_to_write_is_a_warning_as_containerssh_accepts_it() {
        let loaded = loaded(yaml("audit:\n  enable: true\n  storage: none\n"));
        assert_eq!(loaded.config.audit.format, AuditFormat::None);
        assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
        // `format` is not written: the warning points at the section's key.
        assert!(
            loaded.warnings[0]
                .starts_with("test.yaml:6:1: `audit.enable` is true but `audit.format` is `none`"),
            "{:?}",
            loaded.warnings
        );
        assert!(
            loaded.warnings[1]
                .starts_with("test.yaml:8:3: `audit.enable` is true but `audit.storage` is `none`"),
            "{:?}",
            loaded.warnings
        );
    }

    #[test]
    fn required_needs_recording_on_and_something_to_write() {
        let all = messages(yaml("audit:\n  required: true\n  format: sshpod\n"));
        assert_eq!(
            all,
            [
                "test.yaml:7:13: key `audit.required`: needs `audit.enable: true`: a recording \
                 that is off cannot be required",
                "test.yaml:7:3: key `audit.storage`: is `none` with `audit.required: true`: \
                 nothing could be recorded, so every connection would be refused; choose a storage",
            ]
        );
    }

    #[test]
    fn the_recordings_page_is_never_open_and_its_tls_settings_go_together() {
        let directory = dir();
        let storage = format!(
            "  storage: file\n  file: {{directory: {}}}\n",
            directory.path().display()
        );
        // Lines 6 `audit:`, 7 storage, 8 file, 9 `web:`, 10 and on: the web keys.
        let page = |web: &str| yaml(&format!("audit:\n{storage}  web:\n{web}"));

        let all = messages(page("    listen: 127.0.0.1:8443\n"));
        assert_eq!(
            all,
            [
                "test.yaml:10:5: key `audit.web`: the recordings page is never open: set `token` \
              (a bearer token) or `clientcacert` (client certificates), or both"
            ]
        );

        let all = messages(page(
            "    listen: localhost\n    token: 0123456789abcdef\n    cert: /etc/sshpod/web.crt\n",
        ));
        assert_eq!(
            all,
            [
                "test.yaml:10:13: key `audit.web.listen`: `localhost` is not a socket address; \
                 write it like `0.0.0.0:2222` or `[::]:2222`",
                "test.yaml:10:5: key `audit.web.key`: `cert` and `key` go together: give both \
                 for HTTPS, or neither",
            ]
        );

        let all = messages(page(
            "    listen: 127.0.0.1:8443\n    key: /etc/sshpod/web.key\n    clientcacert: /ca.pem\n",
        ));
        assert_eq!(
            all,
            [
                "test.yaml:10:5: key `audit.web.cert`: `cert` and `key` go together: give both \
                 for HTTPS, or neither",
                "test.yaml:12:19: key `audit.web.clientcacert`: client certificates need HTTPS: \
                 set `cert` and `key` too",
            ]
        );

        // A token over plain HTTP works, with a warning; so does a missing player.
        let loaded = loaded(page(&format!(
            "    listen: ':8443'\n    token: 0123456789abcdef\n    assets: {}\n",
            directory.path().display()
        )));
        assert_eq!(
            loaded.config.audit.web.listen_addr(),
            Some(SocketAddr::from(([0, 0, 0, 0], 8443)))
        );
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        assert!(
            loaded.warnings[0]
                .starts_with("test.yaml:11:5: the recordings page is served over plain HTTP"),
            "{:?}",
            loaded.warnings
        );

        // With nowhere to read recordings from, the page is refused.
        let all = messages(yaml(
            "audit:\n  web: {listen: '127.0.0.1:8443', token: 0123456789abcdef, \
             assets: /}\n",
        ));
        assert_eq!(
            all,
            ["test.yaml:7:3: key `audit.storage`: the recordings page (`audit.web.listen`) reads \
              recordings from `file` or `s3` storage; `none` keeps nothing to show"]
        );
    }

    #[test]
    fn the_page_reads_storage_that_recording_does_not_use() {
        // Recording off, page on: its storage is checked all the same.
        let all = messages(yaml(
            "audit:\n  storage: file\n  file: {directory: /nonexistent/recordings}\n  \
             web: {listen: '127.0.0.1:0', clientcacert: /ca.pem, cert: /c.pem, key: /k.pem, \
             assets: /}\n",
        ));
        assert_eq!(
            all,
            [
                "test.yaml:8:21: key `audit.file.directory`: `/nonexistent/recordings` does not \
              exist; create it first"
            ]
        );
    }

    #[test]
    fn secrets_are_hidden_from_check_config_and_debug_but_round_trip() {
        let spool = dir();
        let text = format!(
            "{MINIMAL}audit:\n  enable: true\n  format: sshpod\n  storage: s3\n  required: true\n  \
             s3:\n    local: {}\n    accessKey: AKIDSECRETID\n    secretKey: SECRETKEYVALUE\n    \
             bucket: b\n    region: eu-west-1\n  intercept: {{stdin: true, passwords: true}}\n  \
             web:\n    listen: 127.0.0.1:8443\n    token: TOKENVALUE0123456789\n    \
             cert: /etc/sshpod/web.crt\n    key: |\n      -----BEGIN PRIVATE KEY-----\n      \
             KEYMATERIAL\n      -----END PRIVATE KEY-----\n    clientcacert: /etc/sshpod/ca.pem\n    \
             assets: /\n",
            spool.path().display()
        );
        let config = loaded(parse_str(&text, Format::Yaml, "test.yaml")).config;
        let hidden = [
            "AKIDSECRETID",
            "SECRETKEYVALUE",
            "TOKENVALUE0123456789",
            "KEYMATERIAL",
        ];
        let redacted = config.to_yaml_redacted();
        let debug = format!("{:?}", config.audit);
        for secret in hidden {
            assert!(!redacted.contains(secret), "{secret} in\n{redacted}");
        }
        for secret in &hidden[..3] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        assert!(redacted.contains("cert: /etc/sshpod/web.crt"), "{redacted}");

        let printed = config.to_yaml();
        for secret in hidden {
            assert!(printed.contains(secret), "{secret} missing from\n{printed}");
        }
        let again = parse_str(&printed, Format::Yaml, "printed.yaml")
            .unwrap_or_else(|errors| panic!("{errors}\n---\n{printed}"));
        assert_eq!(again.config, config);
        assert_eq!(again.config.to_yaml(), printed);

        // Empty secrets print as nothing, not as a `<secret>` that suggests one is set.
        let plain = loaded(yaml("")).config.to_yaml_redacted();
        assert!(!plain.contains("accessKey"), "{plain}");
        assert!(!plain.contains("<secret>"), "{plain}");
    }

    #[test]
    fn unknown_keys_and_formats_are_refused_with_a_suggestion() {
        let all = messages(yaml("audit:\n  format: sshpd\n"));
        assert_eq!(all.len(), 1);
        assert!(
            all[0].starts_with("test.yaml:7:11: key `audit.format`"),
            "{all:?}"
        );
        assert!(all[0].contains("did you mean `sshpod`?"), "{all:?}");
        let all = messages(yaml("audit:\n  s3:\n    maxSpoolSzie: 1\n"));
        assert!(all[0].contains("did you mean `maxSpoolSize`?"), "{all:?}");
        let all = messages(yaml("audit:\n  web:\n    tokn: x\n"));
        assert!(all[0].contains("did you mean `token`?"), "{all:?}");
    }
}
