//! Reloading the configuration (SIGHUP, `sshpod reload`): the file is read and checked as at
//! start, then serves the connections accepted from now on. Connections already running keep
//! the configuration they were accepted with.
//!
//! Settings that are read only at start cannot change this way: a file that changes one of
//! them is refused whole, naming the keys, and the old configuration stays. They are the
//! listening address, the backend kind and its connection (the engine or API server, its
//! credentials), the admission limits (their counts live in the accept loop), the log's
//! format and destination (the level does change), and where and how recordings are kept
//! (`audit.format`, `storage`, `file`, `s3`, `web`; whether a login is recorded does change,
//! as long as the server started with its recorder).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use sshpod::log_codes;
use sshpod::server::Server;
use sshpod_config::Config;
use sshpod_core::Backend;

use crate::hostkeys;
use crate::logging::LogControl;

/// Keys whose change needs a restart, as dotted paths of the file.
const RESTART_KEYS: &[&str] = &[
    "ssh.listen",
    "backend",
    "ssh.maxStartups",
    "ssh.perSourceMaxStartups",
    "ssh.perSourceNetBlockSize",
    "ssh.perSourcePenalties",
    "ssh.perSourcePenaltyExemptList",
    "ssh.proxyProtocol",
    "log.format",
    "log.destination",
    "log.file",
    "log.syslog",
    "audit.format",
    "audit.storage",
    "audit.file",
    "audit.s3",
    "audit.web",
    "metrics",
    "health",
    "geoip",
];

/// The settings of `config` at `key` (a dotted path), if any.
fn at<'a>(config: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.')
        .try_fold(config, |value, name| value.get(name))
}

/// The keys changed from `old` to `new` that need a restart.
pub(crate) fn restart_needed(old: &Config, new: &Config) -> Vec<String> {
    let (Ok(old_value), Ok(new_value)) = (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return vec!["(the configuration cannot be compared)".into()];
    };
    // Only the backend in use is connected to.
    let connection = match old.backend {
        sshpod_config::Backend::Kubernetes => "kubernetes.connection",
        _ => "docker.connection",
    };
    RESTART_KEYS
        .iter()
        .chain(std::iter::once(&connection))
        .filter(|key| at(&old_value, key) != at(&new_value, key))
        .map(|key| (*key).to_owned())
        .collect()
}

/// Whether `config` asks for recordings while none are kept: the recorder starts only with
/// the server, so turning recording on (`audit.enable`, or a config server that may) needs a
/// restart.
fn recording_needs_restart(recording: Recording, config: &Config) -> bool {
    recording == Recording::Off
        && sshpod_audit::recorder::Audit::records(&config.audit, config.configserver.is_some())
}

/// Whether the server runs a recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recording {
    On,
    Off,
}

/// The top-level sections that differ between `old` and `new`.
fn changed_sections(old: &Config, new: &Config) -> Vec<String> {
    let (Ok(Value::Object(old)), Ok(Value::Object(new))) =
        (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return Vec::new();
    };
    let mut names: Vec<String> = old.keys().chain(new.keys()).cloned().collect();
    names.sort();
    names.dedup();
    names.retain(|name| old.get(name) != new.get(name));
    names
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The new configuration serves new connections; these sections changed.
    Applied { sections: Vec<String> },
    /// The file says what the configuration already is.
    Unchanged,
    /// The file is not valid: the errors, one per line, as `sshpod check-config` prints them.
    Invalid(String),
    /// The file changes settings that need a restart.
    NeedsRestart(Vec<String>),
    /// The file is valid but could not be put to use (a host key cannot be read…).
    Failed(String),
}

impl Outcome {
    /// The answer `sshpod reload` prints: a first word (`applied`, `unchanged`, `refused`),
    /// then why.
    pub(crate) fn answer(&self) -> String {
        match self {
            Self::Applied { sections } => {
                format!("applied: changed {}\n", sections.join(", "))
            }
            Self::Unchanged => "unchanged: the configuration file has no changes\n".into(),
            Self::Invalid(errors) => {
                format!("refused: the configuration file is invalid; the old configuration stays\n{errors}\n")
            }
            Self::NeedsRestart(keys) => format!(
                "refused: a restart is needed to change {}; the old configuration stays\n",
                keys.join(", ")
            ),
            Self::Failed(reason) => {
                format!("refused: {reason}; the old configuration stays\n")
            }
        }
    }
}

/// Reloads a server's configuration from its file.
pub(crate) struct Reloader<B: Backend> {
    server: Arc<Server<B>>,
    config_path: PathBuf,
    log: LogControl,
    recording: Recording,
    /// The file's configuration in force; held for the whole of a reload, so two run one
    /// after the other.
    current: Mutex<Arc<Config>>,
}

impl<B: Backend> Reloader<B> {
    pub(crate) fn new(
        server: Arc<Server<B>>,
        config_path: PathBuf,
        log: LogControl,
        recording: Recording,
    ) -> Self {
        let current = Mutex::new(server.config());
        Self {
            server,
            config_path,
            log,
            recording,
            current,
        }
    }

    /// Reopens the log file, then reads the configuration file again and applies it to new
    /// connections, logging what happened. Blocking: reads files.
    pub(crate) fn reload(&self) -> Outcome {
        if let Err(e) = self.log.reopen() {
            tracing::error!(
                code = log_codes::LOG_ROTATE_FAILED,
                error = &e as &dyn std::error::Error,
                "cannot reopen the log file; writing on to the old one"
            );
        }
        let outcome = self.apply();
        log_outcome(&outcome);
        // Whatever the outcome, the revocation list may have changed: running sessions whose
        // key it now revokes end.
        self.server.recheck_revocations();
        outcome
    }

    fn apply(&self) -> Outcome {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let loaded = match sshpod_config::load(&self.config_path) {
            Ok(loaded) => loaded,
            Err(errors) => return Outcome::Invalid(errors.to_string()),
        };
        for warning in &loaded.warnings {
            tracing::warn!(code = log_codes::CONFIG_WARNING, "{warning}");
        }
        let config = loaded.config;
        let mut restart = restart_needed(&current, &config);
        if recording_needs_restart(self.recording, &config) {
            restart.push("audit.enable".into());
        }
        if !restart.is_empty() {
            return Outcome::NeedsRestart(restart);
        }
        let sections = changed_sections(&current, &config);
        if sections.is_empty() {
            return Outcome::Unchanged;
        }
        let host_keys = match hostkeys::load(&config.ssh.hostkeys, &self.config_path) {
            Ok(keys) => keys,
            Err(e) => return Outcome::Failed(format!("{e:#}")),
        };
        let certificates =
            match hostkeys::load_certificates(&config.ssh.host_certificates, &host_keys) {
                Ok(certificates) => certificates,
                Err(e) => return Outcome::Failed(format!("{e:#}")),
            };
        let config = Arc::new(config);
        if let Err(e) = self
            .server
            .reload(Arc::clone(&config), host_keys, certificates)
        {
            return Outcome::Failed(format!("{e:#}"));
        }
        match self.log.set_level(config.log.level) {
            Ok(true) => tracing::info!(
                code = log_codes::LOG_LEVEL_CHANGED,
                level = config.log.level.name(),
                "log level changed"
            ),
            Ok(false) => {}
            Err(e) => tracing::error!(code = log_codes::RELOAD_FAILED, "{e:#}"),
        }
        *current = config;
        Outcome::Applied { sections }
    }
}

fn log_outcome(outcome: &Outcome) {
    match outcome {
        Outcome::Applied { sections } => tracing::info!(
            code = log_codes::RELOADED,
            sections = sections.join(", "),
            "configuration reloaded: new connections use it, running ones keep theirs"
        ),
        Outcome::Unchanged => tracing::info!(
            code = log_codes::RELOAD_UNCHANGED,
            "configuration reloaded: no changes"
        ),
        Outcome::Invalid(errors) => tracing::error!(
            code = log_codes::CORE_CONFIG_ERROR,
            errors = errors.replace('\n', "; "),
            "reload refused: the configuration file is invalid; the old configuration stays"
        ),
        Outcome::NeedsRestart(keys) => tracing::error!(
            code = log_codes::RELOAD_NEEDS_RESTART,
            keys = keys.join(", "),
            "reload refused: these settings need a restart; the old configuration stays"
        ),
        Outcome::Failed(reason) => tracing::error!(
            code = log_codes::RELOAD_FAILED,
            reason,
            "reload refused: the configuration cannot be applied; the old configuration stays"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file needs a way to log in.
    const AUTH: &str = "auth: {password: {method: htpasswd, htpasswd: {file: /etc/htpasswd}}}\n";

    fn config(yaml: &str) -> Config {
        let yaml = if yaml.contains("auth:") {
            yaml.to_owned()
        } else {
            format!("{AUTH}{yaml}")
        };
        match sshpod_config::parse_str(&yaml, sshpod_config::Format::Yaml, "t.yaml") {
            Ok(loaded) => loaded.config,
            Err(errors) => panic!("{errors}"),
        }
    }

    #[test]
    fn settings_read_at_start_need_a_restart() {
        let base = config("ssh: {listen: '127.0.0.1:2222'}\n");
        let cases = [
            ("ssh: {listen: '127.0.0.1:2223'}\n", vec!["ssh.listen"]),
            (
                "ssh: {listen: '127.0.0.1:2222'}\nbackend: kubernetes\n",
                vec!["backend"],
            ),
            (
                "ssh: {listen: '127.0.0.1:2222'}\ndocker: {connection: {host: 'tcp://engine:2375'}}\n",
                vec!["docker.connection"],
            ),
            (
                "ssh: {listen: '127.0.0.1:2222', maxStartups: '3'}\nlog: {format: text}\n",
                vec!["ssh.maxStartups", "log.format"],
            ),
            (
                "ssh: {listen: '127.0.0.1:2222'}\naudit: {format: asciinema, storage: file, file: {directory: /tmp}}\n",
                vec!["audit.format", "audit.storage", "audit.file"],
            ),
        ];
        for (yaml, keys) in cases {
            assert_eq!(restart_needed(&base, &config(yaml)), keys, "{yaml}");
        }
    }

    #[test]
    fn settings_for_new_connections_do_not() {
        let base = config("ssh: {listen: '127.0.0.1:2222'}\n");
        let changed = config(
            "ssh: {listen: '127.0.0.1:2222', banner: hi, maxSessions: 3}\n\
             log: {level: debug}\n\
             auth: {publicKey: {method: authorizedKeys, authorizedKeys: {file: /keys/%u}}}\n\
             docker: {execution: {container: {image: 'busybox'}}}\n\
             security: {tty: {mode: disable}}\n\
             audit: {enable: true}\n",
        );
        assert_eq!(restart_needed(&base, &changed), Vec::<String>::new());
        assert_eq!(
            changed_sections(&base, &changed),
            ["audit", "auth", "docker", "log", "security", "ssh"]
        );
        assert_eq!(changed_sections(&base, &base), Vec::<String>::new());
    }

    #[test]
    fn turning_recording_on_needs_a_recorder() {
        let on = config(
            "audit: {enable: true, format: asciinema, storage: file, file: {directory: /tmp}}\n",
        );
        let off = config(
            "audit: {enable: false, format: asciinema, storage: file, file: {directory: /tmp}}\n",
        );
        assert!(recording_needs_restart(Recording::Off, &on));
        assert!(!recording_needs_restart(Recording::On, &on));
        assert!(!recording_needs_restart(Recording::Off, &off));
    }

    #[test]
    fn answers_start_with_the_outcome() {
        let refused = Outcome::NeedsRestart(vec!["ssh.listen".into()]).answer();
        assert_eq!(
            refused,
            "refused: a restart is needed to change ssh.listen; the old configuration stays\n"
        );
        assert!(Outcome::Invalid("t.yaml:1:1: key `x`: bad".into())
            .answer()
            .ends_with("t.yaml:1:1: key `x`: bad\n"));
        assert!(Outcome::Applied {
            sections: vec!["auth".into()]
        }
        .answer()
        .starts_with("applied: changed auth"));
    }
}
