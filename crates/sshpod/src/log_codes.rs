//! Every message code sshpod's log lines carry, with its meaning: the one table operators
//! search by (the README's copy is checked against it by a test).
//!
//! A line states its code as a `code` field (`tracing::info!(code = log_codes::SSH_AVAILABLE,
//! ..)`). Where ContainerSSH logs the same thing, the code is ContainerSSH's, so searches and
//! alerts written for it keep working; sshpod's own codes start with `SSHPOD_`. Lines of the
//! libraries below this crate (the backends, recordings, authentication) cannot name these
//! constants (they must not depend on the binary's crate): they get their area's code, the
//! `SSHPOD_AREA_*` entries.

/// Declares each code as a constant and lists them all in [`ALL`].
macro_rules! codes {
    ($($(#[doc = $meaning:literal])+ $name:ident = $code:literal;)+) => {
        $(
            $(#[doc = $meaning])+
            pub const $name: &str = $code;
        )+
        /// Every code with its meaning, in the order of this file.
        pub const ALL: &[(&str, &str)] = &[$(($code, concat!($($meaning),+))),+];
    };
}

codes! {
    // Start-up, reload and shutdown.
    /// The SSH server listens and accepts connections.
    SSH_AVAILABLE = "SSH_AVAILABLE";
    /// The backend (Docker engine or Kubernetes API server) answered at start-up.
    BACKEND_CONNECTED = "SSHPOD_BACKEND_CONNECTED";
    /// Containers or pods left by instances that died were removed.
    ORPHANS_REMOVED = "SSHPOD_ORPHANS_REMOVED";
    /// Looking for containers or pods left by dead instances failed; sshpod runs on.
    ORPHANS_UNKNOWN = "SSHPOD_ORPHANS_UNKNOWN";
    /// A host key or host certificate was loaded (or a missing key file generated).
    HOST_KEY = "SSHPOD_HOST_KEY";
    /// The configuration file has something worth knowing (a deprecated or ignored key).
    CONFIG_WARNING = "SSHPOD_CONFIG_WARNING";
    /// A reload found the configuration file invalid; the old configuration stays.
    CORE_CONFIG_ERROR = "CORE_CONFIG_ERROR";
    /// SIGHUP arrived: the log file is reopened and the configuration reloaded.
    RELOAD_REQUESTED = "SSHPOD_RELOAD_REQUESTED";
    /// The configuration file was read again and applies to new connections.
    RELOADED = "SSHPOD_RELOADED";
    /// A reload changed the log level (`log.level`).
    LOG_LEVEL_CHANGED = "SSHPOD_LOG_LEVEL_CHANGED";
    /// A reload found nothing changed in the configuration.
    RELOAD_UNCHANGED = "SSHPOD_RELOAD_UNCHANGED";
    /// A reload changes settings that need a restart; the old configuration stays.
    RELOAD_NEEDS_RESTART = "SSHPOD_RELOAD_NEEDS_RESTART";
    /// A reload could not be applied (a host key cannot be read, a webhook cannot be set up);
    /// the old configuration stays.
    RELOAD_FAILED = "SSHPOD_RELOAD_FAILED";
    /// The control socket (`sshpod reload`) listens, or cannot.
    CONTROL_SOCKET = "SSHPOD_CONTROL_SOCKET";
    /// A signal asked sshpod to stop; connections are closed and containers removed.
    SERVICE_STOPPING = "SERVICE_STOPPING";
    /// sshpod stopped.
    SERVICE_STOPPED = "SERVICE_STOPPED";
    /// SIGTERM started the drain: new connections are refused, terminal users are told (`ssh.drainTimeout`).
    DRAINING = "SSHPOD_DRAINING";
    /// Shutdown waited `ssh.shutdownTimeout` and some work had not finished.
    SHUTDOWN_LATE = "SSHPOD_SHUTDOWN_LATE";
    /// sshpod stopped on an error.
    SERVICE_CRASHED = "SERVICE_CRASHED";
    // The accept loop.
    /// Accepting a connection failed (out of file descriptors and the like); sshpod serves on.
    ACCEPT_FAILED = "SSHPOD_ACCEPT_FAILED";
    /// A connection was dropped: its network failed to log in too often (`ssh.perSourcePenalties`).
    REFUSED_PENALISED = "SSHPOD_REFUSED_PENALISED";
    /// A connection was dropped: too many unauthenticated connections (`ssh.maxStartups`).
    REFUSED_MAX_STARTUPS = "SSHPOD_REFUSED_MAX_STARTUPS";
    /// A connection was dropped: too many unauthenticated connections from its network (`ssh.perSourceMaxStartups`).
    REFUSED_SOURCE_STARTUPS = "SSHPOD_REFUSED_SOURCE_STARTUPS";
    /// A connection was refused with a message: the server is draining after SIGTERM.
    REFUSED_DRAINING = "SSHPOD_REFUSED_DRAINING";
    /// A connection from a trusted proxy was dropped: no valid PROXY protocol header (`ssh.proxyProtocol`).
    REFUSED_PROXY_HEADER = "SSHPOD_REFUSED_PROXY_HEADER";
    // One connection's events.
    /// A client connected.
    SSH_CONNECTED = "SSH_CONNECTED";
    /// The connection closed.
    SSH_DISCONNECTED = "SSH_DISCONNECTED";
    /// No key exchange and login request came within `ssh.handshakeTimeout`.
    HANDSHAKE_TIMEOUT = "SSHPOD_HANDSHAKE_TIMEOUT";
    /// No login succeeded within `ssh.loginGraceTime`.
    LOGIN_GRACE_OVER = "SSHPOD_LOGIN_GRACE_OVER";
    /// A login attempt was refused (wrong credentials, not authorized).
    AUTH_FAILED = "AUTH_FAILED";
    /// A login attempt could not be decided: a webhook or config server is unavailable.
    AUTH_BACKEND_ERROR = "AUTH_BACKEND_ERROR";
    /// A login was accepted.
    AUTH_SUCCESSFUL = "AUTH_SUCCESSFUL";
    /// A client certificate was accepted (key id, serial, CA).
    CERTIFICATE_ACCEPTED = "SSHPOD_CERTIFICATE_ACCEPTED";
    /// A login is restricted by its key's or certificate's options.
    LOGIN_RESTRICTED = "SSHPOD_LOGIN_RESTRICTED";
    /// The config server's answer was not valid; the login is refused.
    CONFIG_BACKEND_ERROR = "CONFIG_BACKEND_ERROR";
    /// The config server's answer was applied to the connection.
    CONFIG_RESPONSE = "CONFIG_RESPONSE";
    /// Sections of the config server's answer that do not apply per connection were ignored.
    CONFIG_SECTIONS_IGNORED = "SSHPOD_CONFIG_SECTIONS_IGNORED";
    /// The connection's container or pod runs.
    CONTAINER_READY = "SSHPOD_CONTAINER_READY";
    /// The connection's container or pod could not be started.
    CONTAINER_FAILED = "SSHPOD_CONTAINER_FAILED";
    /// The connection's container or pod was removed.
    CONTAINER_REMOVED = "SSHPOD_CONTAINER_REMOVED";
    /// The connection let go of a container that stays (`mode: user`, persistent pods).
    CONTAINER_KEPT = "SSHPOD_CONTAINER_KEPT";
    /// Removing the connection's container or pod failed.
    CONTAINER_REMOVAL_FAILED = "SSHPOD_CONTAINER_REMOVAL_FAILED";
    /// A channel (session or forwarding) was opened.
    SSH_NEW_CHANNEL = "SSH_NEW_CHANNEL";
    /// A channel was refused (not permitted for this login, or by the security policy).
    SSH_NEW_CHANNEL_REJECTED = "SSH_NEW_CHANNEL_REJECTED";
    /// A session was refused: `ssh.maxSessions` are open.
    SECURITY_MAX_SESSIONS = "SECURITY_MAX_SESSIONS";
    /// A channel request was granted (terminal, environment variable).
    SSH_CHANNEL_REQUEST_SUCCESSFUL = "SSH_CHANNEL_REQUEST_SUCCESSFUL";
    /// A channel request was refused (unknown subsystem or signal, X11 or agent forwarding).
    SSH_CHANNEL_REQUEST_FAILED = "SSH_CHANNEL_REQUEST_FAILED";
    /// A terminal was refused by the security policy or the login's restrictions.
    SECURITY_TTY_REJECTED = "SECURITY_TTY_REJECTED";
    /// An environment variable was refused (`ssh.acceptEnv`, the security policy).
    SECURITY_ENV_REJECTED = "SECURITY_ENV_REJECTED";
    /// A signal was refused by the security policy.
    SECURITY_SIGNAL_REJECTED = "SECURITY_SIGNAL_REJECTED";
    /// A shell was refused by the security policy.
    SECURITY_SHELL_REJECTED = "SECURITY_SHELL_REJECTED";
    /// A subsystem was refused by the security policy.
    SECURITY_SUBSYSTEM_REJECTED = "SECURITY_SUBSYSTEM_REJECTED";
    /// A command (or another request) was refused by the security policy.
    SECURITY_EXEC_REJECTED = "SECURITY_EXEC_REJECTED";
    /// A process is being started in the container.
    PROCESS_STARTING = "SSHPOD_PROCESS_STARTING";
    /// A process could not be started in the container.
    PROCESS_FAILED = "SSHPOD_PROCESS_FAILED";
    /// A process ended; its exit status is sent to the client.
    SSH_EXIT = "SSH_EXIT";
    /// The exit status of a process could not be read.
    SSH_EXIT_CODE_FAILED = "SSH_EXIT_CODE_FAILED";
    /// A forwarded connection (`ssh -L`) could not be made.
    FORWARD_FAILED = "SSHPOD_FORWARD_FAILED";
    /// A session channel ended.
    SESSION_ENDED = "SSHPOD_SESSION_ENDED";
    /// A limit (`idleTimeout`, `maxSessionDuration`, `channelTimeout`, `unusedConnectionTimeout`) ended a session or the connection.
    LIMIT_REACHED = "SSHPOD_LIMIT_REACHED";
    /// A connection ended because the certificate it logged in with expired (`auth.publicKey.disconnectExpiredCert`).
    CERTIFICATE_EXPIRED = "SSHPOD_CERTIFICATE_EXPIRED";
    /// A connection ended because the key or certificate it logged in with (or the certificate's CA) is now revoked (`auth.publicKey.revokedKeys`).
    KEY_REVOKED = "SSHPOD_KEY_REVOKED";
    /// The revoked keys file cannot be read or understood: every key is refused at login, running sessions go on.
    REVOKED_KEYS_UNREADABLE = "SSHPOD_REVOKED_KEYS_UNREADABLE";
    /// Another event of a connection, at debug level.
    CONNECTION_EVENT = "SSHPOD_CONNECTION_EVENT";
    // Recordings.
    /// Connections are recorded (format, storage).
    RECORDING_STARTED = "SSHPOD_RECORDING_STARTED";
    /// The recordings page listens (its address).
    RECORDINGS_PAGE = "SSHPOD_RECORDINGS_PAGE";
    /// At shutdown, the last recordings were not written in time.
    RECORDING_DRAIN_LATE = "SSHPOD_RECORDING_DRAIN_LATE";
    /// At shutdown, recordings not yet uploaded stay in the spool for the next start.
    RECORDING_UPLOAD_PENDING = "SSHPOD_RECORDING_UPLOAD_PENDING";
    // The log itself.
    /// The log file could not be reopened (after SIGHUP); lines go on to the old file.
    LOG_ROTATE_FAILED = "LOG_ROTATE_FAILED";
    /// Log lines could not be written to the destination and were dropped (said on standard
    /// error, at most once a second, with the count).
    LOG_WRITE_FAILED = "LOG_WRITE_FAILED";
    // Lines without a code of their own, by the part of sshpod that logs them.
    /// A line of the Docker backend.
    AREA_DOCKER = "SSHPOD_AREA_DOCKER";
    /// A line of the Kubernetes backend.
    AREA_KUBERNETES = "SSHPOD_AREA_KUBERNETES";
    /// A line of the recorder and recording storage.
    AREA_AUDIT = "SSHPOD_AREA_AUDIT";
    /// A line of the built-in authentication (authorized keys, htpasswd, certificates).
    AREA_AUTH = "SSHPOD_AREA_AUTH";
    /// A line of the webhook client.
    AREA_WEBHOOK = "SSHPOD_AREA_WEBHOOK";
    /// A line of the recordings page.
    AREA_WEB = "SSHPOD_AREA_WEB";
    /// A line of the SSH server.
    AREA_SERVER = "SSHPOD_AREA_SERVER";
    /// Another line of sshpod.
    AREA_SSHPOD = "SSHPOD_AREA_OTHER";
    /// A line of a library sshpod uses (the SSH or HTTP stack).
    AREA_LIBRARY = "SSHPOD_AREA_LIBRARY";
}

/// The code of a line that states none, by the module (`tracing` target) that logs it.
pub fn for_target(target: &str) -> &'static str {
    let crate_name = target.split("::").next().unwrap_or(target);
    match crate_name {
        "sshpod_docker" => AREA_DOCKER,
        "sshpod_kube" => AREA_KUBERNETES,
        "sshpod_audit" => AREA_AUDIT,
        "sshpod_auth" => AREA_AUTH,
        "sshpod_webhook" => AREA_WEBHOOK,
        "sshpod" if target.starts_with("sshpod::web") => AREA_WEB,
        "sshpod" if target.starts_with("sshpod::server") => AREA_SERVER,
        name if name.starts_with("sshpod") => AREA_SSHPOD,
        _ => AREA_LIBRARY,
    }
}

/// The table as Markdown, as the README shows it.
pub fn markdown_table() -> String {
    let mut table = String::from("| Code | Meaning |\n|---|---|\n");
    for (code, meaning) in ALL {
        table.push_str(&format!("| `{code}` | {} |\n", meaning.trim()));
    }
    table
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn codes_are_unique_and_shouted() {
        let mut seen = BTreeSet::new();
        for (code, meaning) in ALL {
            assert!(seen.insert(*code), "{code} is listed twice");
            assert!(
                code.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
                "{code}"
            );
            assert!(!meaning.trim().is_empty(), "{code} has no meaning");
        }
    }

    #[test]
    fn lines_without_a_code_get_their_area() {
        assert_eq!(for_target("sshpod_docker::exec"), AREA_DOCKER);
        assert_eq!(for_target("sshpod_kube"), AREA_KUBERNETES);
        assert_eq!(for_target("sshpod::server::io::copy"), AREA_SERVER);
        assert_eq!(for_target("sshpod::web::api"), AREA_WEB);
        assert_eq!(for_target("sshpod::recording"), AREA_SSHPOD);
        assert_eq!(for_target("russh::server"), AREA_LIBRARY);
        for code in [AREA_DOCKER, AREA_LIBRARY, AREA_SSHPOD] {
            assert!(ALL.iter().any(|(listed, _)| *listed == code));
        }
    }

    /// The README's table is this module's: a code added here and not there fails.
    #[test]
    fn readme_lists_every_code() {
        let readme_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
        let readme = std::fs::read_to_string(readme_path)
            .unwrap_or_else(|e| panic!("reading {readme_path}: {e}"));
        let table = markdown_table();
        assert!(
            readme.contains(&table),
            "the README's log code table differs from src/log_codes.rs; it should read:\n\n{table}"
        );
    }
}
