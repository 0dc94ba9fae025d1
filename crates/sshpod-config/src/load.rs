//! Reading a configuration file: choosing the parser, turning parser errors into
//! [`ConfigError`]s with positions and key paths, and running validation.

use std::path::Path;

use serde::Deserialize;

use crate::audit::RawAudit;
use crate::auth::RawAuth;
use crate::check::{Checker, Positions};
use crate::docker::RawDocker;
use crate::error::{unknown_message, ConfigError, ConfigErrors};
use crate::geoip::RawGeoIp;
use crate::health::RawHealth;
use crate::homes::RawHomes;
use crate::http::RawConfigServer;
use crate::identity::RawIdentity;
use crate::kubernetes::RawKubernetes;
use crate::kuberun::RawKuberun;
use crate::log::RawLog;
use crate::metrics::RawMetrics;
use crate::nulls::{NullAsDefault, Shape};
use crate::pool::RawPool;
use crate::security::RawSecurity;
use crate::ssh::RawSsh;
use crate::sshproxy::RawSshProxy;
use crate::{Backend, Config};

/// The syntax of a configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YAML (`.yaml`, `.yml`).
    Yaml,
    /// JSON (`.json`).
    Json,
}

impl Format {
    /// The format implied by a file's extension, if any.
    pub fn from_path(path: &Path) -> Option<Self> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "yaml" | "yml" => Some(Self::Yaml),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// A successfully loaded configuration.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated configuration.
    pub config: Config,
    /// Things that are accepted but worth telling the operator (ignored keys and the like),
    /// each prefixed with `FILE:LINE:COLUMN:` when known.
    pub warnings: Vec<String>,
}

/// Reads and validates the configuration file at `path`; the extension picks YAML or JSON.
pub fn load(path: &Path) -> Result<Loaded, ConfigErrors> {
    let origin = path.display().to_string();
    let whole_file = |message: String| {
        ConfigErrors(vec![ConfigError {
            file: origin.clone(),
            line: None,
            column: None,
            key: String::new(),
            message,
        }])
    };
    let Some(format) = Format::from_path(path) else {
        return Err(whole_file(
            "unsupported file extension; use .yaml, .yml or .json".to_string(),
        ));
    };
    let text = std::fs::read_to_string(path)
        .map_err(|error| whole_file(format!("cannot read the file: {error}")))?;
    parse_str(&text, format, &origin)
}

/// Parses and validates configuration text; `origin` names the file in messages.
pub fn parse_str(text: &str, format: Format, origin: &str) -> Result<Loaded, ConfigErrors> {
    let positions = Positions::index(text);
    let raw = match format {
        Format::Yaml => parse_yaml(text, origin, &positions),
        Format::Json => parse_json(text, origin),
    }
    .map_err(|error| ConfigErrors(vec![error]))?;
    let mut check = Checker::new(origin, &positions);
    let config = raw.resolve(&mut check);
    if check.errors.is_empty() {
        Ok(Loaded {
            config,
            warnings: check.warnings,
        })
    } else {
        Err(ConfigErrors(check.errors))
    }
}

/// `backend` as written in the file.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawBackend {
    #[default]
    Docker,
    Kubernetes,
    Kuberun,
    Sshproxy,
}

/// The whole file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    ssh: RawSsh,
    backend: RawBackend,
    docker: RawDocker,
    auth: RawAuth,
    log: RawLog,
    configserver: RawConfigServer,
    metrics: RawMetrics,
    geoip: RawGeoIp,
    audit: RawAudit,
    health: RawHealth,
    security: RawSecurity,
    kubernetes: Option<RawKubernetes>,
    kuberun: Option<RawKuberun>,
    sshproxy: RawSshProxy,
    homes: RawHomes,
    identity: RawIdentity,
    pool: RawPool,
}

impl RawConfig {
    fn resolve(self, check: &mut Checker<'_>) -> Config {
        let backend = match self.backend {
            RawBackend::Docker => Backend::Docker,
            RawBackend::Kubernetes | RawBackend::Kuberun => Backend::Kubernetes,
            RawBackend::Sshproxy => Backend::SshProxy,
        };
        // Only the selected backend's section is validated (see `Checker::backend_section`).
        check.select_backend(backend);
        let metrics = self.metrics.resolve(check);
        Config {
            ssh: self.ssh.resolve(check),
            backend,
            docker: self.docker.resolve(check),
            kubernetes: match (self.kubernetes, self.kuberun) {
                (Some(_), Some(kuberun)) => {
                    check.error_at_key(
                        "kuberun",
                        "write either `kubernetes` or the legacy `kuberun`, not both",
                    );
                    kuberun.resolve(check)
                }
                (None, Some(kuberun)) => kuberun.resolve(check),
                (kubernetes, None) => kubernetes.unwrap_or_default().resolve(check),
            },
            sshproxy: self.sshproxy.resolve(check),
            auth: self.auth.resolve(check),
            log: self.log.resolve(check),
            configserver: self.configserver.resolve(check),
            security: self.security.resolve(check),
            audit: self.audit.resolve(check),
            health: self.health.resolve(check, &metrics),
            metrics,
            geoip: self.geoip.resolve(check),
            homes: self.homes.resolve(check),
            identity: self.identity.resolve(check),
            pool: self.pool.resolve(check),
        }
    }
}

/// A parser error reduced to what [`ConfigError`] needs.
struct ParseFailure {
    path: String,
    line: Option<usize>,
    column: Option<usize>,
    message: String,
}

fn parse_yaml(text: &str, origin: &str, positions: &Positions) -> Result<RawConfig, ConfigError> {
    let shape = Shape::of_yaml(text);
    let mut failed_path = None;
    let result = serde_saphyr::with_deserializer_from_str(text, |deserializer| {
        let mut track = serde_path_to_error::Track::new();
        let tracked = serde_path_to_error::Deserializer::new(deserializer, &mut track);
        let result = Option::<RawConfig>::deserialize(NullAsDefault::new(tracked, shape.as_ref()));
        if result.is_err() {
            failed_path = Some(track.path());
        }
        result
    });
    let error = match result {
        Ok(raw) => return Ok(raw.unwrap_or_default()),
        Err(error) => error,
    };
    let path = failed_path.map(|p| clean_path(&p)).unwrap_or_default();
    let location = error.location();
    let plain = error.without_snippet();
    let unknown_field = matches!(plain, serde_saphyr::Error::SerdeUnknownField { .. });
    let message = match plain {
        serde_saphyr::Error::SerdeUnknownField {
            field, expected, ..
        } => Some(unknown_key(field, expected)),
        serde_saphyr::Error::SerdeUnknownVariant {
            variant, expected, ..
        } => Some(unknown_message("value", variant, expected)),
        _ => None,
    }
    .unwrap_or_else(|| {
        serde_saphyr::MessageFormatter::format_message(&serde_saphyr::UserMessageFormatter, plain)
            .into_owned()
    });
    let mut line = location
        .and_then(|l| usize::try_from(l.line()).ok())
        .filter(|l| *l > 0);
    let mut column = location
        .and_then(|l| usize::try_from(l.column()).ok())
        .filter(|c| *c > 0);
    // A value rejected by a type's own visitor is located at its key by the parser; point at
    // the value, as for every other bad value.
    if !unknown_field && !path.is_empty() {
        if let (Some(key), Some(value)) = (positions.key(&path), positions.value(&path)) {
            if (Some(key.line), Some(key.column)) == (line, column) {
                (line, column) = (Some(value.line), Some(value.column));
            }
        }
    }
    let failure = ParseFailure {
        line,
        column,
        path,
        message,
    };
    Err(finish(failure, origin))
}

/// Checks that JSON text has the configuration's shape (known keys, right types), without
/// validating values.
pub(crate) fn parse_raw_json(text: &str, origin: &str) -> Result<(), ConfigError> {
    parse_json(text, origin).map(|_| ())
}

fn parse_json(text: &str, origin: &str) -> Result<RawConfig, ConfigError> {
    let text = if text.trim().is_empty() { "{}" } else { text };
    let shape = Shape::of_json(text);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let mut track = serde_path_to_error::Track::new();
    let tracked = serde_path_to_error::Deserializer::new(&mut deserializer, &mut track);
    let result = RawConfig::deserialize(NullAsDefault::new(tracked, shape.as_ref()));
    let (path, inner) = match result {
        Ok(raw) => match deserializer.end() {
            Ok(()) => return Ok(raw),
            Err(error) => (String::new(), error),
        },
        Err(error) => (clean_path(&track.path()), error),
    };
    let raw_message = strip_position(&inner.to_string());
    let message = rewrite_unknown(&raw_message).unwrap_or(raw_message);
    let failure = ParseFailure {
        line: Some(inner.line()).filter(|l| *l > 0),
        column: Some(inner.column()).filter(|c| *c > 0),
        path,
        message,
    };
    Err(finish(failure, origin))
}

fn finish(failure: ParseFailure, origin: &str) -> ConfigError {
    ConfigError {
        file: origin.to_string(),
        line: failure.line,
        column: failure.column,
        key: failure.path,
        message: failure.message,
    }
}

/// The message for an unknown key.
fn unknown_key(field: &str, expected: &[&str]) -> String {
    unknown_message("key", field, expected)
}

/// Rewrites serde's "unknown field `x`, expected one of `a`, `b`" (as serde_json words it).
fn rewrite_unknown(message: &str) -> Option<String> {
    let (what, rest) = if let Some(rest) = message.strip_prefix("unknown field `") {
        ("key", rest)
    } else if let Some(rest) = message.strip_prefix("unknown variant `") {
        ("value", rest)
    } else {
        return None;
    };
    let (given, rest) = rest.split_once('`')?;
    let expected: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    Some(if what == "key" {
        unknown_key(given, &expected)
    } else {
        unknown_message(what, given, &expected)
    })
}

/// The dotted key path, without serde_path_to_error's `.` (root) and `?` (unknown) segments.
fn clean_path(path: &serde_path_to_error::Path) -> String {
    let text = path.to_string();
    text.split('.')
        .filter(|segment| !segment.is_empty() && *segment != "?")
        .collect::<Vec<_>>()
        .join(".")
}

/// Drops the parser's own " at line N column M" suffix; the position is reported separately.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{
        Cipher, ExecutionMode, ImagePullPolicy, Kex, LogLevel, PasswordMethod, PublicKeyMethod,
        DEFAULT_IDLE_COMMAND, DEFAULT_MEMORY, DEFAULT_NANO_CPUS, DEFAULT_PIDS_LIMIT,
    };

    const MINIMAL: &str =
        "auth:\n  password:\n    method: htpasswd\n    htpasswd:\n      file: /etc/htpasswd\n";

    fn yaml(text: &str) -> Result<Loaded, ConfigErrors> {
        parse_str(text, Format::Yaml, "test.yaml")
    }

    fn json(text: &str) -> Result<Loaded, ConfigErrors> {
        parse_str(text, Format::Json, "test.json")
    }

    fn errors(result: Result<Loaded, ConfigErrors>) -> Vec<ConfigError> {
        match result {
            Ok(loaded) => panic!("expected errors, got {loaded:#?}"),
            Err(ConfigErrors(errors)) => errors,
        }
    }

    fn single(result: Result<Loaded, ConfigErrors>) -> ConfigError {
        let mut all = errors(result);
        assert_eq!(all.len(), 1, "{all:#?}");
        all.remove(0)
    }

    #[test]
    fn minimal_file_gets_every_default() {
        let loaded = yaml(MINIMAL).unwrap();
        assert!(loaded.warnings.is_empty());
        let config = loaded.config;
        assert_eq!(config.ssh.listen.to_string(), "0.0.0.0:2222");
        assert_eq!(config.ssh.server_version, "SSH-2.0-sshpod");
        assert_eq!(config.ssh.ciphers, Cipher::DEFAULT);
        assert_eq!(config.ssh.kex, Kex::DEFAULT);
        assert_eq!(config.ssh.client_alive_count_max, 3);
        assert_eq!(config.ssh.login_grace_time, Duration::from_secs(120));
        assert_eq!(config.ssh.shutdown_timeout, Duration::from_secs(20));
        assert_eq!(config.ssh.max_startups, crate::MaxStartups::fixed(100));
        assert_eq!(config.ssh.per_source_max_startups, Some(20));
        assert_eq!(config.ssh.max_auth_tries, 6);
        assert_eq!(config.backend, Backend::Docker);
        assert_eq!(config.auth.password.method, PasswordMethod::Htpasswd);
        assert_eq!(config.auth.public_key.method, PublicKeyMethod::Off);
        assert_eq!(config.log.level, LogLevel::Notice);
        let execution = &config.docker.execution;
        assert_eq!(execution.container.image, "sshpod-guest:latest");
        assert_eq!(execution.mode, ExecutionMode::Connection);
        assert_eq!(execution.image_pull_policy, ImagePullPolicy::IfNotPresent);
        assert_eq!(execution.idle_command, DEFAULT_IDLE_COMMAND);
        assert_eq!(execution.subsystems["sftp"], "/usr/lib/openssh/sftp-server");
        assert_eq!(execution.host.security_opt, ["no-new-privileges"]);
        assert!(!execution.host.privileged);
        assert!(execution.host.cap_drop.is_empty());
        assert_eq!(execution.host.resources.memory, Some(DEFAULT_MEMORY));
        assert_eq!(
            execution.host.resources.pids_limit,
            Some(DEFAULT_PIDS_LIMIT)
        );
        assert_eq!(execution.host.resources.nano_cpus, Some(DEFAULT_NANO_CPUS));
        assert_eq!(
            config.docker.timeouts.container_start,
            Duration::from_secs(60)
        );
        assert_eq!(config.docker.timeouts.http, Duration::from_secs(15));
        assert_eq!(config.docker.connection.host, "unix:///var/run/docker.sock");
    }

    #[test]
    fn empty_file_parses_but_needs_an_auth_method() {
        for text in ["", "# nothing\n", "{}"] {
            let error = single(yaml(text));
            assert_eq!(error.key, "auth");
            assert!(
                error.message.contains("no authentication method"),
                "{error}"
            );
        }
        let error = single(json(""));
        assert_eq!(error.key, "auth");
    }

    #[test]
    fn certificates_and_revoked_keys() {
        let text =
            "ssh:\n  hostCertificates: [/etc/sshpod/host-cert.pub]\nauth:\n  publicKey:\n    \
                    trustedUserCAKeys: /etc/sshpod/ca.pub\n    \
                    authorizedPrincipalsFile: /etc/sshpod/principals/%u\n    \
                    revokedKeys: /etc/sshpod/revoked.krl\n";
        let config = yaml(text).unwrap().config;
        assert_eq!(config.ssh.host_certificates, ["/etc/sshpod/host-cert.pub"]);
        let trust = &config.auth.public_key.trust;
        assert_eq!(trust.trusted_user_ca_keys, "/etc/sshpod/ca.pub");
        assert_eq!(
            trust.authorized_principals_file,
            "/etc/sshpod/principals/%u"
        );
        assert_eq!(trust.revoked_keys, "/etc/sshpod/revoked.krl");
        // Certificates alone are an authentication method.
        assert_eq!(config.auth.public_key.method, PublicKeyMethod::Off);
        // And the effective configuration reads back the same.
        let again = yaml(&config.to_yaml()).unwrap().config;
        assert_eq!(again, config);

        let all = errors(yaml(&format!(
            "{MINIMAL}  publicKey:\n    authorizedPrincipalsFile: /p/%h\n"
        )));
        assert_eq!(all.len(), 2, "{all:#?}");
        for error in &all {
            assert_eq!(error.key, "auth.publicKey.authorizedPrincipalsFile");
            assert_eq!(error.line, Some(7));
        }
        assert!(all[0]
            .message
            .contains("without `auth.publicKey.trustedUserCAKeys`"));
        assert!(all[1].message.contains("unknown %-token"));
        let messages: Vec<String> = errors(yaml(&format!(
            "{MINIMAL}  publicKey:\n    authorizedPrincipalsFile: /p/%h\n    trustedUserCaKeys: x\n"
        )))
        .iter()
        .map(ToString::to_string)
        .collect();
        assert!(
            messages
                .iter()
                .any(|m| m.contains("unknown key `trustedUserCaKeys`")),
            "{messages:#?}"
        );
    }

    #[test]
    fn the_end_of_a_certificate_or_key_ends_its_sessions_by_default() {
        let text = "auth:\n  publicKey:\n    trustedUserCAKeys: /etc/sshpod/ca.pub\n";
        let trust = yaml(text).unwrap().config.auth.public_key.trust;
        assert!(trust.disconnect_expired_cert);
        assert_eq!(trust.revoked_keys_check_interval, Duration::from_secs(5));
        let minimal = yaml(MINIMAL).unwrap().config.auth.public_key.trust;
        assert!(
            minimal.disconnect_expired_cert,
            "without a publicKey section too"
        );
        assert_eq!(minimal.revoked_keys_check_interval, Duration::from_secs(5));

        let text = "auth:\n  publicKey:\n    trustedUserCAKeys: /etc/sshpod/ca.pub\n    \
                    disconnectExpiredCert: false\n    revokedKeysCheckInterval: 0s\n";
        let config = yaml(text).unwrap().config;
        let trust = &config.auth.public_key.trust;
        assert!(!trust.disconnect_expired_cert);
        assert_eq!(trust.revoked_keys_check_interval, Duration::ZERO);
        let again = yaml(&config.to_yaml()).unwrap().config;
        assert_eq!(again, config);

        let error = single(yaml(&format!(
            "{MINIMAL}  publicKey:\n    revokedKeysCheckInterval: often\n"
        )));
        assert_eq!(error.line, Some(7), "{error}");
    }

    #[test]
    fn unknown_key_suggests_and_points_at_it() {
        let error = single(yaml(&format!("{MINIMAL}ssh:\n  lisen: 0.0.0.0:22\n")));
        assert_eq!(error.key, "ssh.lisen");
        assert_eq!((error.line, error.column), (Some(7), Some(3)));
        assert!(error.message.contains("did you mean `listen`?"), "{error}");
        assert_eq!(
            error.to_string(),
            "test.yaml:7:3: key `ssh.lisen`: unknown key `lisen`; did you mean `listen`?"
        );
    }

    #[test]
    fn unknown_key_in_json() {
        let error = single(json("{\"auth\": {}, \"ssh\": {\"serverVersoin\": \"x\"}}"));
        assert_eq!(error.key, "ssh.serverVersoin");
        assert_eq!(error.line, Some(1));
        assert!(
            error.message.contains("did you mean `serverVersion`?"),
            "{error}"
        );
    }

    #[test]
    fn unknown_choice_suggests() {
        let error = single(yaml("log:\n  level: warn\n"));
        assert_eq!(error.key, "log.level");
        assert_eq!((error.line, error.column), (Some(2), Some(10)));
        assert!(error.message.contains("did you mean `warning`?"), "{error}");
    }

    #[test]
    fn wrong_type_has_a_position() {
        let error = single(yaml("ssh:\n  maxAuthTries: many\n"));
        assert_eq!(error.key, "ssh.maxAuthTries");
        assert_eq!((error.line, error.column), (Some(2), Some(17)));

        let error = single(json("{\n  \"ssh\": {\"hostkeys\": \"x\"}\n}"));
        assert_eq!(error.key, "ssh.hostkeys");
        assert_eq!(error.line, Some(2));
        assert!(error.message.contains("expected a sequence"), "{error}");
    }

    #[test]
    fn bad_listen_address() {
        let error = single(yaml(&format!("{MINIMAL}ssh:\n  listen: nowhere:22\n")));
        assert_eq!(error.key, "ssh.listen");
        assert_eq!((error.line, error.column), (Some(7), Some(11)));
        assert!(error.message.contains("not a socket address"), "{error}");
        let port_zero = yaml(&format!("{MINIMAL}ssh:\n  listen: 127.0.0.1:0\n")).unwrap();
        assert_eq!(port_zero.config.ssh.listen.port(), 0);
    }

    #[test]
    fn insecure_and_unknown_algorithms() {
        let text = format!(
            "{MINIMAL}ssh:\n  ciphers: [aes256-ctr, aes128-cbc]\n  macs:\n    - hmac-sha1\n    - hmac-sha2-265\n  kex: []\n"
        );
        let all = errors(yaml(&text));
        assert_eq!(all.len(), 4, "{all:#?}");
        assert_eq!(all[0].key, "ssh.ciphers[1]");
        assert_eq!((all[0].line, all[0].column), (Some(7), Some(25)));
        assert_eq!(
            all[0].message,
            "`aes128-cbc` is considered insecure and sshpod does not offer it"
        );
        assert_eq!(all[1].key, "ssh.kex");
        assert!(all[1].message.contains("at least one"));
        assert_eq!(all[2].key, "ssh.macs[0]");
        assert_eq!(
            all[2].message,
            "`hmac-sha1` is considered insecure and sshpod does not offer it"
        );
        assert_eq!(all[3].key, "ssh.macs[1]");
        assert_eq!((all[3].line, all[3].column), (Some(10), Some(7)));
        assert!(all[3]
            .message
            .contains("unknown algorithm `hmac-sha2-265`; did you mean"));
    }

    #[test]
    fn both_spellings_of_container_keys() {
        let lower = yaml(&format!(
            "{MINIMAL}docker:\n  execution:\n    container:\n      image: alpine\n      workingdir: /w\n"
        ))
        .unwrap();
        let upper = yaml(&format!(
            "{MINIMAL}docker:\n  execution:\n    container:\n      Image: alpine\n      WorkingDir: /w\n"
        ))
        .unwrap();
        assert_eq!(lower.config, upper.config);
        assert_eq!(lower.config.docker.execution.container.image, "alpine");
        assert_eq!(
            lower
                .config
                .docker
                .execution
                .container
                .working_dir
                .as_deref(),
            Some("/w")
        );

        let auth = r#""auth": {"password": {"method": "htpasswd", "htpasswd": {"file": "/h"}}}"#;
        let upper_json = json(&format!(
            r#"{{{auth}, "docker": {{"execution": {{"container": {{"Image": "alpine", "WorkingDir": "/w"}}}}}}}}"#
        ))
        .unwrap();
        let lower_json = json(&format!(
            r#"{{{auth}, "docker": {{"execution": {{"container": {{"image": "alpine", "workingdir": "/w"}}}}}}}}"#
        ))
        .unwrap();
        assert_eq!(upper_json.config.docker, lower.config.docker);
        assert_eq!(lower_json.config.docker, lower.config.docker);
    }

    #[test]
    fn missing_image_is_reported_at_the_api_spelling() {
        let all = errors(json(
            "{\"auth\": {\"publicKey\": {\"method\": \"authorizedKeys\", \"authorizedKeys\": {\"file\": \"/k/%u\"}}},\n \"docker\": {\"execution\": {\"container\": {\"Image\": \"\"}}}}",
        ));
        assert_eq!(all.len(), 1, "{all:#?}");
        assert_eq!(all[0].key, "docker.execution.container.image");
        assert_eq!((all[0].line, all[0].column), (Some(2), Some(50)));
    }

    #[test]
    fn json_durations_are_nanoseconds_or_strings() {
        let text = r#"{
  "auth": {"password": {"method": "htpasswd", "htpasswd": {"file": "/h"}}},
  "ssh": {"clientAliveInterval": 30000000000, "loginGraceTime": "1m0s"},
  "docker": {"timeouts": {"containerStart": 5000000000, "http": "500ms"}}
}"#;
        let config = json(text).unwrap().config;
        assert_eq!(config.ssh.client_alive_interval, Duration::from_secs(30));
        assert_eq!(config.ssh.login_grace_time, Duration::from_secs(60));
        assert_eq!(
            config.docker.timeouts.container_start,
            Duration::from_secs(5)
        );
        assert_eq!(config.docker.timeouts.http, Duration::from_millis(500));

        let config = yaml(&format!(
            "{MINIMAL}docker:\n  timeouts:\n    signal: 1000000000\n    window: 1m30s\n"
        ))
        .unwrap()
        .config;
        assert_eq!(config.docker.timeouts.signal, Duration::from_secs(1));
        assert_eq!(config.docker.timeouts.window, Duration::from_secs(90));

        let error = single(yaml(&format!("{MINIMAL}ssh:\n  shutdownTimeout: soon\n")));
        assert_eq!(error.key, "ssh.shutdownTimeout");
        assert_eq!((error.line, error.column), (Some(7), Some(20)));
    }

    #[test]
    fn an_instance_lease_too_short_to_renew_is_refused_where_it_is_written() {
        let config = yaml(&format!(
            "{MINIMAL}backend: kubernetes\nkubernetes:\n  timeouts:\n    instanceLease: 90s\n"
        ))
        .unwrap()
        .config;
        assert_eq!(
            config.kubernetes.timeouts.instance_lease,
            Duration::from_secs(90)
        );
        let error = single(yaml(&format!(
            "{MINIMAL}backend: kubernetes\nkubernetes:\n  timeouts:\n    instanceLease: 2s\n"
        )));
        assert_eq!(error.key, "kubernetes.timeouts.instanceLease");
        assert_eq!(error.line, Some(9));
        assert!(error.message.contains("at least 3s"), "{error}");
    }

    #[test]
    fn unsupported_sections_and_backends() {
        // Sections that ask nothing of sshpod are accepted; an unselected sshproxy block too.
        let loaded = yaml(&format!(
            "{MINIMAL}sshproxy:\n  server: x\nmetrics:\nhealth: {{enable: false}}\n\
             audit: {{enable: false, format: binary}}\ngeoip: {{provider: dummy}}\n"
        ))
        .unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

        let all = errors(yaml(&format!(
            "{MINIMAL}metrics:\n  enable: true\n\
             health: {{enable: true}}\naudit: {{enable: true}}\ngeoip: {{provider: maxmind}}\n"
        )));
        let messages: Vec<String> = all.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                // Metrics and health are served; the GeoIP database must be there.
                "test.yaml:10:8: key `geoip.maxmind-geoip2-file`: cannot read \
                 `/var/lib/GeoIP/GeoIP2-Country.mmdb`: No such file or directory (os error 2)",
            ],
        );
        let error = single(yaml(&format!("{MINIMAL}metrics:\n  enabel: true\n")));
        assert!(error.message.contains("did you mean `enable`?"), "{error}");

        let all = errors(yaml(
            "auth:\n  password:\n    method: kerberos\n  keyboardInteractive: {method: oauth2}\nlog:\n  destination: syslog\n  syslog: {destination: \"tcp://logs:514\"}\n",
        ));
        let messages: Vec<String> = all.iter().map(ToString::to_string).collect();
        assert!(messages
            .iter()
            .any(|m| m.contains("`oauth2` is not supported yet")));
        assert!(messages
            .iter()
            .any(|m| m.contains("`kerberos` is not supported yet")));
        assert!(messages
            .iter()
            .any(|m| m.contains("key `log.syslog.destination`: syslog over TCP is not supported")));
    }

    #[test]
    fn webhooks_as_containerssh_writes_them() {
        let text = "auth:\n  password:\n    method: webhook\n    webhook:\n      \
                    url: http://127.0.0.1:8080\n      timeout: 1s\n      authTimeout: 5s\n  \
                    publicKey:\n    method: webhook\n    webhook:\n      \
                    url: https://auth.example\n      cacert: /etc/ca.pem\n      cert: /c.pem\n      \
                    key: /k.pem\n      tlsVersion: \"1.2\"\n      \
                    cipher: ECDHE-RSA-AES128-GCM-SHA256:TLS_AES_128_GCM_SHA256\n      \
                    curves: [X25519]\n  authz:\n    method: webhook\n    webhook:\n      \
                    url: http://authz\n  keyboardInteractive:\n    method: webhook\n    \
                    webhook: {url: http://kbd}\nconfigserver:\n  url: http://cfg/config\n  \
                    transmitSensitiveMetadata: true\n";
        let config = yaml(text).unwrap().config;
        let password = config.auth.password.webhook.as_ref().unwrap();
        assert_eq!(config.auth.password.method, PasswordMethod::Webhook);
        assert_eq!(password.client.url.expose_secret(), "http://127.0.0.1:8080");
        assert_eq!(password.client.timeout, Duration::from_secs(1));
        assert_eq!(password.auth_timeout, Duration::from_secs(5));
        assert_eq!(password.client.tls_version, crate::TlsVersion::Tls13);
        assert_eq!(password.client.curves.len(), 4);
        let key = config.auth.public_key.webhook.as_ref().unwrap();
        assert_eq!(key.client.tls_version, crate::TlsVersion::Tls12);
        assert_eq!(key.auth_timeout, Duration::from_secs(60));
        assert_eq!(key.client.timeout, Duration::from_secs(2));
        assert_eq!(
            key.client.cipher,
            [
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_AES_128_GCM_SHA256"
            ]
        );
        assert_eq!(key.client.curves, ["x25519"]);
        assert!(config.auth.authz.enabled().is_some());
        assert!(config.auth.keyboard_interactive.enabled().is_some());
        let server = config.configserver.as_ref().unwrap();
        assert_eq!(server.client.url.expose_secret(), "http://cfg/config");
        assert!(server.transmit_sensitive_metadata);
        assert!(!format!("{config:?}").contains("/k.pem"));

        let printed = config.to_yaml();
        let again = parse_str(&printed, Format::Yaml, "printed.yaml")
            .unwrap_or_else(|errors| panic!("{errors}\n---\n{printed}"));
        assert_eq!(again.config, config);
    }

    #[test]
    fn webhook_mistakes_have_positions() {
        let all = errors(yaml(
            "auth:\n  password:\n    method: webhook\n    webhook:\n      timeout: 10ms\n      \
             cert: /c\n      tlsVersion: \"1.1\"\n      cipher: [TLS_RSA_WITH_AES_128_CBC_SHA]\n\
             configserver:\n  url: ftp://x\n  authTimeout: 1s\n",
        ));
        let messages: Vec<String> = all.iter().map(ToString::to_string).collect();
        assert_eq!(messages.len(), 1, "{messages:#?}");
        assert!(
            messages[0].contains("configserver.authTimeout"),
            "{messages:#?}"
        );

        let all = errors(yaml(
            "auth:\n  password:\n    method: webhook\n    webhook:\n      timeout: 10ms\n      \
             cert: /c\n      tlsVersion: \"1.1\"\n      cipher: [TLS_RSA_WITH_AES_128_CBC_SHA]\n\
             configserver:\n  url: ftp://x\n",
        ));
        let messages: Vec<String> = all.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "test.yaml:5:7: key `auth.password.webhook.url`: is required",
                "test.yaml:5:16: key `auth.password.webhook.timeout`: must be at least 100ms",
                "test.yaml:5:7: key `auth.password.webhook.key`: `cert` and `key` go together: \
                 give both for a client certificate, or neither",
                "test.yaml:7:19: key `auth.password.webhook.tlsVersion`: unknown TLS version \
                 `1.1`; expected `1.2` or `1.3`",
                "test.yaml:8:16: key `auth.password.webhook.cipher[0]`: \
                 `TLS_RSA_WITH_AES_128_CBC_SHA` is considered insecure and sshpod does not offer it",
                "test.yaml:10:8: key `configserver.url`: `ftp://x` is not an http:// or https:// URL",
            ]
        );
    }

    #[test]
    fn several_errors_at_once() {
        let text = "ssh:\n  listen: bad\n  serverVersion: OpenSSH\n  maxStartups: 0\n\
                    docker:\n  connection:\n    host: ftp://x\n    cert: c\n    \
                    maxParallelStarts: 0\n  execution:\n    \
                    idleCommand: []\n    container:\n      env: [NOEQUALS]\n";
        let all = errors(yaml(text));
        let keys: Vec<&str> = all.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "ssh.listen",
                "ssh.serverVersion",
                "ssh.maxStartups",
                "docker.connection.host",
                "docker.connection.maxParallelStarts",
                "docker.connection.cacert",
                "docker.connection.key",
                "docker.execution.container.env[0]",
                "docker.execution.idleCommand",
                "auth",
            ]
        );
        assert!(
            all.iter().all(|e| e.line.is_some() && e.column.is_some()),
            "{all:#?}"
        );
        assert_eq!(all[8].line, Some(11));
    }

    #[test]
    fn resources_merge_and_conflicts() {
        let base = format!("{MINIMAL}docker:\n  execution:\n    host:\n");
        let config = yaml(&format!(
            "{base}      Memory: 1073741824\n      resources:\n        cpuquota: 50000\n"
        ))
        .unwrap()
        .config;
        let resources = &config.docker.execution.host.resources;
        assert_eq!(resources.memory, Some(1 << 30));
        assert_eq!(resources.cpu_quota, Some(50000));
        assert_eq!(resources.nano_cpus, None);
        assert_eq!(resources.pids_limit, Some(DEFAULT_PIDS_LIMIT));

        let error = single(yaml(&format!(
            "{base}      resources:\n        memory: 1\n      Memory: 2\n"
        )));
        assert_eq!(error.key, "docker.execution.host.Memory");
        assert_eq!((error.line, error.column), (Some(11), Some(15)));

        let opt_out = yaml(&format!("{base}      securityopt: []\n")).unwrap();
        assert!(opt_out.config.docker.execution.host.security_opt.is_empty());
    }

    #[test]
    fn agent_keys_only_warn() {
        let loaded = yaml(&format!(
            "{MINIMAL}docker:\n  execution:\n    agentPath: /x\n    disableAgent: true\n"
        ))
        .unwrap();
        assert_eq!(
            loaded.warnings,
            [
                "test.yaml:8:5: `docker.execution.agentPath` is ignored: sshpod needs no agent \
                 in the image",
                "test.yaml:9:5: `docker.execution.disableAgent` is ignored: sshpod needs no agent \
                 in the image",
            ]
        );
    }

    #[test]
    fn registry_password_is_hidden_from_debug() {
        let loaded = yaml(&format!(
            "{MINIMAL}docker:\n  execution:\n    auth:\n      username: u\n      Password: hunter2\n"
        ))
        .unwrap();
        let auth = loaded.config.docker.execution.auth.clone().unwrap();
        assert_eq!(auth.password.expose_secret(), "hunter2");
        assert!(!format!("{:?}", loaded.config).contains("hunter2"));
    }

    #[test]
    fn to_yaml_round_trips() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/config.yaml");
        let texts = [
            MINIMAL.to_string(),
            std::fs::read_to_string(example).unwrap(),
            format!(
                "{MINIMAL}ssh:\n  listen: '[::1]:0'\n  banner: \"Welcome: 'x'\\n\"\n  \
                 hostkeys:\n    - |\n      -----BEGIN OPENSSH PRIVATE KEY-----\n      abc\n      \
                 -----END OPENSSH PRIVATE KEY-----\n  clientAliveInterval: 1m30s\n  \
                 kex: [mlkem768x25519-sha256]\ndocker:\n  connection:\n    cacert: a\n    \
                 cert: b\n    key: c\n  execution:\n    mode: session\n    agentPath: /a\n    \
                 auth: {{username: u, password: p}}\n    network:\n      EndpointsConfig:\n        \
                 net1: {{Aliases: [x], IPAMConfig: {{IPv4Address: 10.0.0.2}}}}\n    host:\n      \
                 resources: {{cpuperiod: 100000, cpuquota: 50000}}\n"
            ),
        ];
        for text in texts {
            let first = yaml(&text).unwrap();
            let printed = first.config.to_yaml();
            let second = parse_str(&printed, Format::Yaml, "printed.yaml")
                .unwrap_or_else(|errors| panic!("{errors}\n---\n{printed}"));
            assert_eq!(first.config, second.config, "{printed}");
            assert_eq!(second.config.to_yaml(), printed);
        }
    }

    #[test]
    fn example_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/config.yaml");
        let loaded = load(&path).unwrap_or_else(|errors| panic!("{errors}"));
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let config = loaded.config;
        assert_eq!(
            config.auth.public_key.method,
            PublicKeyMethod::AuthorizedKeys
        );
        assert_eq!(
            config.auth.public_key.authorized_keys.file,
            "/etc/sshpod/authorized_keys/%u"
        );
        assert_eq!(config.docker.execution.host.tmpfs["/tmp"], "rw,size=64m");
        assert_eq!(config.docker.execution.container.labels.len(), 1);
    }

    #[test]
    fn syntax_errors_have_positions() {
        for text in [
            "ssh:\n  listen: [\n",
            "ssh:\n  listen: a\n  listen: b\n",
            "ssh: {\n",
            "kubernets: {}\n",
        ] {
            let error = single(yaml(text));
            assert!(error.line.is_some(), "{error}");
        }
        for text in [
            "{\"ssh\": ",
            "{\"ssh\": {}} x",
            "{\"ssh\": {}, \"ssh\": {}}",
        ] {
            let error = single(json(text));
            assert!(error.line.is_some(), "{error}");
        }
    }

    #[test]
    fn load_by_extension() {
        let dir = tempfile::tempdir().unwrap();
        let json_path = dir.path().join("c.json");
        std::fs::write(
            &json_path,
            r#"{"auth": {"password": {"method": "htpasswd", "htpasswd": {"file": "/h"}}}}"#,
        )
        .unwrap();
        assert!(load(&json_path).is_ok());
        let yml_path = dir.path().join("c.yml");
        std::fs::write(&yml_path, MINIMAL).unwrap();
        assert!(load(&yml_path).is_ok());
        let toml_path = dir.path().join("c.toml");
        std::fs::write(&toml_path, MINIMAL).unwrap();
        let error = single(load(&toml_path));
        assert!(
            error.message.contains("unsupported file extension"),
            "{error}"
        );
        let error = single(load(&dir.path().join("missing.yaml")));
        assert!(error.message.contains("cannot read"), "{error}");
    }

    #[test]
    fn kubernetes_defaults_are_containerssh_s_with_secure_pods() {
        let loaded = yaml(&format!("{MINIMAL}backend: kubernetes\n")).unwrap();
        let kube = &loaded.config.kubernetes;
        assert_eq!(loaded.config.backend, Backend::Kubernetes);
        assert_eq!(kube.connection.host, "kubernetes.default.svc");
        assert_eq!((kube.connection.qps, kube.connection.burst), (5.0, 10));
        assert_eq!(kube.pod.namespace(), "default");
        assert_eq!(kube.pod.metadata.generate_name.as_deref(), Some("sshpod-"));
        assert!(
            !kube.pod.lifeline,
            "the instance Lease, not an attach, covers a killed sshpod"
        );
        assert_eq!(kube.timeouts.instance_lease, Duration::from_secs(60));
        let container = &kube.pod.spec.containers[0];
        assert_eq!(container.image.as_deref(), Some("sshpod-guest:latest"));
        let limits = container
            .resources
            .as_ref()
            .unwrap()
            .limits
            .as_ref()
            .unwrap();
        assert_eq!(limits["memory"].0, "512Mi");
        let pod_security = kube.pod.spec.security_context.as_ref().unwrap();
        assert_eq!(pod_security.run_as_non_root, Some(true));
        assert_eq!(kube.timeouts.pod_start, Duration::from_secs(60));
    }

    #[test]
    fn kubernetes_pod_spec_typos_and_bad_values_are_located() {
        let all = errors(yaml(&format!(
            "{MINIMAL}backend: kubernetes\nkubernetes:\n  pod:\n    consoleContainerNumber: 1\n    spec:\n      containers:\n        - name: shell\n          imagee: x\n          image: busybox\n      hostNetwork: maybe\n"
        )));
        let messages: Vec<String> = all.iter().map(ToString::to_string).collect();
        assert!(
            messages.iter().any(|m| m.starts_with(
                "test.yaml:15:20: key `kubernetes.pod.spec.hostNetwork`: invalid type"
            )),
            "{messages:#?}"
        );
        let all = errors(yaml(&format!(
            "{MINIMAL}backend: kubernetes\nkubernetes:\n  pod:\n    consoleContainerNumber: 1\n    spec:\n      containers:\n        - name: shell\n          imagee: x\n          image: busybox\n"
        )));
        let messages: Vec<String> = all.iter().map(ToString::to_string).collect();
        assert_eq!(all.len(), 2, "{messages:#?}");
        assert_eq!(
            messages[0],
            "test.yaml:13:11: key `kubernetes.pod.spec.containers[0].imagee`: unknown key `imagee` in a Kubernetes object"
        );
        assert!(
            messages[1].contains("consoleContainerNumber"),
            "{messages:#?}"
        );
    }

    #[test]
    fn kubernetes_connection_settings_are_checked_together() {
        let all = errors(yaml(&format!(
            "{MINIMAL}backend: kubernetes\nkubernetes:\n  connection:\n    cert: x\n    username: u\n    bearerToken: t\n    bearerTokenFile: /nonexistent/token\n    qps: 0\n"
        )));
        let keys: Vec<&str> = all.iter().map(|e| e.key.as_str()).collect();
        for key in [
            "kubernetes.connection.key",
            "kubernetes.connection.password",
            "kubernetes.connection.bearerTokenFile",
            "kubernetes.connection.qps",
        ] {
            assert!(keys.contains(&key), "{key} missing from {keys:?}");
        }
        let loaded = yaml(&format!(
            "{MINIMAL}backend: kubernetes\nkubernetes:\n  connection:\n    insecure: true\n"
        ))
        .unwrap();
        assert!(loaded
            .warnings
            .iter()
            .any(|w| w.to_string().contains("NOT verified")));
    }

    #[test]
    fn gateway_ports_sits_beside_containerssh_forwarding_modes() {
        let loaded = yaml(MINIMAL).unwrap();
        assert_eq!(
            loaded.config.security.forwarding.gateway_ports,
            crate::GatewayPorts::No
        );
        let loaded = yaml(&format!(
            "{MINIMAL}security:\n  forwarding:\n    reverseForwardingMode: enable\n    gatewayPorts: clientspecified\n"
        ))
        .unwrap();
        let forwarding = &loaded.config.security.forwarding;
        assert_eq!(
            forwarding.gateway_ports,
            crate::GatewayPorts::ClientSpecified
        );
        assert_eq!(
            forwarding.reverse_forwarding_mode,
            crate::SecurityMode::Enable
        );
        assert_eq!(
            forwarding.agent_forwarding_mode,
            crate::SecurityMode::Disable,
            "agent forwarding is off unless set"
        );
        let bad = single(yaml(&format!(
            "{MINIMAL}security:\n  forwarding:\n    gatewayPorts: maybe\n"
        )))
        .to_string();
        assert!(bad.starts_with("test.yaml:8:"), "{bad}");
        assert!(bad.contains("security.forwarding.gatewayPorts"), "{bad}");
    }

    #[test]
    fn legacy_kuberun_maps_onto_kubernetes() {
        let loaded = yaml(&format!(
            "{MINIMAL}backend: kuberun\nkuberun:\n  connection:\n    host: 10.0.0.1:6443\n    bearerToken: t\n    timeout: 30s\n    qps: 20\n  pod:\n    namespace: guests\n    consoleContainerNumber: 1\n    disableCommand: true\n    enableAgent: false\n    podSpec:\n      containers:\n        - name: a\n          image: busybox\n        - name: b\n          image: sshpod-guest:latest\n"
        ))
        .unwrap();
        let kube = &loaded.config.kubernetes;
        assert_eq!(loaded.config.backend, Backend::Kubernetes);
        assert_eq!(kube.connection.host, "10.0.0.1:6443");
        assert_eq!(kube.connection.qps, 20.0);
        assert_eq!(kube.timeouts.pod_start, Duration::from_secs(30));
        assert_eq!(kube.pod.namespace(), "guests");
        assert_eq!(kube.pod.console_container_number, 1);
        assert!(kube.pod.disable_command);
        assert_eq!(kube.pod.spec.containers[1].name, "b");
        let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("`kuberun` is deprecated")),
            "{warnings:?}"
        );

        let all = errors(yaml(&format!(
            "{MINIMAL}kuberun:\n  pod:\n    podspec: {{}}\n"
        )));
        assert!(
            all[0].to_string().contains("key `kuberun.pod.podspec`"),
            "{all:?}"
        );
        let all = errors(yaml(&format!(
            "{MINIMAL}kuberun:\n  pod:\n    podSpec:\n      containers: [{{name: a, image: b, imagee: c}}]\n"
        )));
        let messages: Vec<String> = all.iter().map(ToString::to_string).collect();
        assert!(
            messages
                .iter()
                .any(|m| m.contains("key `kuberun.pod.podSpec.containers[0].imagee`")),
            "{messages:#?}"
        );
        let all = errors(yaml(&format!("{MINIMAL}kuberun: {{}}\nkubernetes: {{}}\n")));
        assert!(all[0].to_string().contains("not both"), "{all:?}");
    }
}
