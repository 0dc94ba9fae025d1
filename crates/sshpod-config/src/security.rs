//! The `security` section: ContainerSSH's per-connection policy for what a client may request
//! (environment, commands, shells, subsystems, terminals, signals, forwarding, sessions).
//!
//! Keys and defaults are ContainerSSH's (`config/security.go`). Modes are `enable`, `filter`,
//! `disable` or unset (`""`); an unset mode falls back to `defaultMode`, and an unset
//! `defaultMode` means `enable`. The forwarding modes are the exception: ContainerSSH defaults
//! each of them to `disable`, so forwarding is off unless a configuration turns it on.
//!
//! This module only reads and checks the policy; the SSH server enforces it. It can come from the
//! file and from a config server's answer, which is merged like the backend sections.

use serde::{Deserialize, Serialize, Serializer};

use crate::check::Checker;

/// How one kind of request is treated (`defaultMode`, `env.mode`, `forwarding.forwardingMode`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SecurityMode {
    /// Not set (`""`): the feature follows `defaultMode`, and an unset `defaultMode` is
    /// `enable`. See [`SecurityConfig::effective`].
    #[default]
    #[serde(rename = "")]
    Unset,
    /// Allowed, except what a `deny` list names.
    #[serde(rename = "enable")]
    Enable,
    /// Only what an `allow` list names; features without an allow list (`shell`, `tty`) treat
    /// it as `disable`.
    #[serde(rename = "filter")]
    Filter,
    /// Refused.
    #[serde(rename = "disable")]
    Disable,
}

/// A feature with only a mode (`shell`, `tty`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModePolicy {
    /// The mode.
    pub mode: SecurityMode,
}

/// `security.command`: exec requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommandPolicy {
    /// The mode.
    pub mode: SecurityMode,
    /// With `filter`: the commands allowed, compared exactly with what the client sends.
    pub allow: Vec<String>,
}

/// A feature with allow and deny lists (`env`, `subsystem`, `signal`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListPolicy {
    /// The mode.
    pub mode: SecurityMode,
    /// With `filter`: the only names allowed.
    pub allow: Vec<String>,
    /// With `enable`: names refused.
    pub deny: Vec<String>,
}

/// `security.forwarding`: each mode defaults to `disable`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ForwardingPolicy {
    /// Client to container TCP connections (`ssh -L`, `-D`, `-W`).
    pub forwarding_mode: SecurityMode,
    /// Container to client TCP connections (`ssh -R`).
    pub reverse_forwarding_mode: SecurityMode,
    /// Client to a Unix socket in the container.
    pub socket_forwarding_mode: SecurityMode,
    /// Listening on a Unix socket in the container.
    pub socket_listen_mode: SecurityMode,
    /// X11 forwarding.
    pub x11_forwarding_mode: SecurityMode,
    /// Ours: agent forwarding (`ssh -A`), a socket inside the container relayed to the
    /// client's agent. `disable` unless set, like ContainerSSH's forwarding modes.
    pub agent_forwarding_mode: SecurityMode,
    /// Ours, after OpenSSH's GatewayPorts: which addresses `ssh -R` may listen on inside the
    /// container (`no`: loopback only, the default).
    pub gateway_ports: GatewayPorts,
}

/// `security.forwarding.gatewayPorts`: where remote forwards listen inside the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum GatewayPorts {
    /// Only the container's loopback: a request for `localhost`, a loopback address or the
    /// empty address listens on 127.0.0.1; any other address is refused.
    #[default]
    #[serde(rename = "no")]
    No,
    /// Every address of the container, whatever the client asks for.
    #[serde(rename = "yes")]
    Yes,
    /// The address the client asks for (empty or `*`: every address).
    #[serde(rename = "clientspecified")]
    ClientSpecified,
}

impl Default for ForwardingPolicy {
    fn default() -> Self {
        Self {
            forwarding_mode: SecurityMode::Disable,
            reverse_forwarding_mode: SecurityMode::Disable,
            socket_forwarding_mode: SecurityMode::Disable,
            socket_listen_mode: SecurityMode::Disable,
            x11_forwarding_mode: SecurityMode::Disable,
            agent_forwarding_mode: SecurityMode::Disable,
            gateway_ports: GatewayPorts::No,
        }
    }
}

/// The validated `security` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityConfig {
    /// The mode of every feature whose own mode is unset (unset: `enable`).
    pub default_mode: SecurityMode,
    /// Run this command instead of whatever the client asks for (shell, exec or subsystem); the
    /// request goes into `SSH_ORIGINAL_COMMAND`. Empty: off.
    pub force_command: String,
    /// Environment variables the client sends.
    pub env: ListPolicy,
    /// Exec requests.
    pub command: CommandPolicy,
    /// Shell requests.
    pub shell: ModePolicy,
    /// Subsystem requests (`sftp`).
    pub subsystem: ListPolicy,
    /// Forwarding; every mode is `enable`, `filter` or `disable`, never unset.
    pub forwarding: ForwardingPolicy,
    /// Terminal (pty) requests.
    pub tty: ModePolicy,
    /// Signals the client sends to the running program.
    pub signal: ListPolicy,
    /// The most session channels one connection may have open at once; `None` is unlimited
    /// (written `-1`, ContainerSSH's default).
    #[serde(serialize_with = "serialize_max_sessions")]
    pub max_sessions: Option<u32>,
}

impl SecurityConfig {
    /// The mode that applies to a feature whose own mode is `mode`: `Enable`, `Filter` or
    /// `Disable`, never `Unset`.
    pub fn effective(&self, mode: SecurityMode) -> SecurityMode {
        match (mode, self.default_mode) {
            (SecurityMode::Unset, SecurityMode::Unset) => SecurityMode::Enable,
            (SecurityMode::Unset, default) => default,
            (mode, _) => mode,
        }
    }
}

fn serialize_max_sessions<S: Serializer>(
    value: &Option<u32>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(limit) => serializer.serialize_u32(*limit),
        None => serializer.serialize_i64(-1),
    }
}

/// `security` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub(crate) struct RawSecurity {
    default_mode: SecurityMode,
    force_command: String,
    env: ListPolicy,
    command: CommandPolicy,
    shell: ModePolicy,
    subsystem: ListPolicy,
    forwarding: ForwardingPolicy,
    tty: ModePolicy,
    signal: ListPolicy,
    max_sessions: i64,
}

impl Default for RawSecurity {
    fn default() -> Self {
        Self {
            default_mode: SecurityMode::Unset,
            force_command: String::new(),
            env: ListPolicy::default(),
            command: CommandPolicy::default(),
            shell: ModePolicy::default(),
            subsystem: ListPolicy::default(),
            forwarding: ForwardingPolicy::default(),
            tty: ModePolicy::default(),
            signal: ListPolicy::default(),
            max_sessions: -1,
        }
    }
}

impl RawSecurity {
    pub(crate) fn resolve(self, check: &mut Checker<'_>) -> SecurityConfig {
        let max_sessions = match self.max_sessions {
            -1 => None,
            // ContainerSSH fills zero values with their defaults after reading the file, so a
            // written 0 is its default, -1.
            0 => {
                check.warn(
                    "security.maxSessions",
                    "`security.maxSessions: 0` means unlimited, as in ContainerSSH; write -1 to \
                     say so, or a positive limit",
                );
                None
            }
            limit => match u32::try_from(limit) {
                Ok(limit) => Some(limit),
                Err(_) => {
                    check.error(
                        "security.maxSessions",
                        format!("`{limit}` is not a session limit; write -1 (unlimited) or a positive number"),
                    );
                    None
                }
            },
        };
        // An unset forwarding mode is ContainerSSH's default for it, `disable`.
        let or_disable = |mode: SecurityMode| match mode {
            SecurityMode::Unset => SecurityMode::Disable,
            mode => mode,
        };
        let forwarding = ForwardingPolicy {
            forwarding_mode: or_disable(self.forwarding.forwarding_mode),
            reverse_forwarding_mode: or_disable(self.forwarding.reverse_forwarding_mode),
            socket_forwarding_mode: or_disable(self.forwarding.socket_forwarding_mode),
            socket_listen_mode: or_disable(self.forwarding.socket_listen_mode),
            x11_forwarding_mode: or_disable(self.forwarding.x11_forwarding_mode),
            agent_forwarding_mode: or_disable(self.forwarding.agent_forwarding_mode),
            gateway_ports: self.forwarding.gateway_ports,
        };
        SecurityConfig {
            default_mode: self.default_mode,
            force_command: self.force_command,
            env: self.env,
            command: self.command,
            shell: self.shell,
            subsystem: self.subsystem,
            forwarding,
            tty: self.tty,
            signal: self.signal,
            max_sessions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_modes() {
        let mut config = SecurityConfig::default();
        assert_eq!(config.effective(SecurityMode::Unset), SecurityMode::Enable);
        assert_eq!(config.effective(SecurityMode::Filter), SecurityMode::Filter);
        config.default_mode = SecurityMode::Disable;
        assert_eq!(config.effective(SecurityMode::Unset), SecurityMode::Disable);
        assert_eq!(config.effective(SecurityMode::Enable), SecurityMode::Enable);
        assert_eq!(
            config.forwarding.forwarding_mode,
            SecurityMode::Disable,
            "forwarding is off by default"
        );
    }
}
