//! ContainerSSH's `security` policy, enforced on each channel request: what a login's sessions
//! may run, set and ask for. It comes from the file's `security` section or the config
//! server's answer, and applies on top of the login's key and certificate restrictions: a
//! request goes through only where both allow it.
//!
//! Modes, as ContainerSSH defines them: a feature's own mode, else `defaultMode`, else
//! `enable`; forwarding modes are `disable` unless set. `enable` allows all but a deny list,
//! `filter` allows only an allow list (shells and terminals have no list, so `filter` refuses
//! them), `disable` refuses. A forced command (`forceCommand`) replaces whatever the client asks
//! to run, so the shell, command and subsystem rules do not apply to it. Two of ContainerSSH's
//! defects are not reproduced: `maxSessions` caps the sessions open at once (not the sessions
//! ever opened), and the signal rules follow `signal.mode` (not `shell.mode`).

use std::fmt;

use sshpod_config::{GatewayPorts, ListPolicy, SecurityConfig, SecurityMode};
use sshpod_core::{Command, Signal};

/// A request the policy refused, and the rule that refused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    /// The configuration key behind the refusal, for the log (`security.command.allow`).
    pub(crate) rule: &'static str,
    /// What the client is told.
    pub(crate) message: String,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

fn refused(rule: &'static str, message: impl Into<String>) -> Result<(), Refused> {
    Err(Refused {
        rule,
        message: message.into(),
    })
}

/// One login's policy.
#[derive(Debug, Clone, Default)]
pub(crate) struct SecurityPolicy {
    config: SecurityConfig,
}

impl SecurityPolicy {
    pub(crate) fn new(config: SecurityConfig) -> Self {
        Self { config }
    }

    fn mode(&self, own: SecurityMode) -> SecurityMode {
        self.config.effective(own)
    }

    /// The command that replaces every shell, exec and subsystem request, if any.
    pub(crate) fn force_command(&self) -> Option<&str> {
        Some(self.config.force_command.as_str()).filter(|c| !c.is_empty())
    }

    /// The most sessions a connection may have open at once, if the policy caps them.
    pub(crate) fn max_sessions(&self) -> Option<u32> {
        self.config.max_sessions
    }

    /// Whether the client may run `command` (before any forced command replaces it).
    pub(crate) fn run(&self, command: &Command) -> Result<(), Refused> {
        if self.force_command().is_some() {
            return Ok(());
        }
        match command {
            Command::Shell => match self.mode(self.config.shell.mode) {
                SecurityMode::Enable => Ok(()),
                _ => refused("security.shell.mode", "shells are disabled on this server"),
            },
            Command::Exec(line) => {
                let policy = &self.config.command;
                match self.mode(policy.mode) {
                    SecurityMode::Enable => Ok(()),
                    SecurityMode::Filter if policy.allow.iter().any(|a| a == line) => Ok(()),
                    SecurityMode::Filter => refused(
                        "security.command.allow",
                        "this command is not allowed on this server",
                    ),
                    _ => refused(
                        "security.command.mode",
                        "running commands is disabled on this server",
                    ),
                }
            }
            Command::Subsystem(name) => listed(
                self.mode(self.config.subsystem.mode),
                &self.config.subsystem,
                name,
                [
                    "security.subsystem.mode",
                    "security.subsystem.allow",
                    "security.subsystem.deny",
                ],
                &format!("the subsystem `{name}` is not allowed on this server"),
            ),
        }
    }

    /// Whether the client may have a terminal.
    pub(crate) fn tty(&self) -> Result<(), Refused> {
        match self.mode(self.config.tty.mode) {
            SecurityMode::Enable => Ok(()),
            _ => refused("security.tty.mode", "terminals are disabled on this server"),
        }
    }

    /// Whether the client may set the environment variable `name`.
    pub(crate) fn env(&self, name: &str) -> Result<(), Refused> {
        listed(
            self.mode(self.config.env.mode),
            &self.config.env,
            name,
            [
                "security.env.mode",
                "security.env.allow",
                "security.env.deny",
            ],
            &format!("the environment variable `{name}` is not allowed on this server"),
        )
    }

    /// Whether the client may send `signal`.
    pub(crate) fn signal(&self, signal: Signal) -> Result<(), Refused> {
        // ContainerSSH's lists name signals with or without the SIG prefix.
        let name = signal.name();
        let policy = &self.config.signal;
        let named = |list: &[String]| {
            list.iter().any(|s| {
                s.strip_prefix("SIG")
                    .unwrap_or(s)
                    .eq_ignore_ascii_case(name)
            })
        };
        match self.mode(policy.mode) {
            SecurityMode::Enable if named(&policy.deny) => refused(
                "security.signal.deny",
                format!("the signal {name} is not allowed on this server"),
            ),
            SecurityMode::Enable => Ok(()),
            SecurityMode::Filter if named(&policy.allow) => Ok(()),
            SecurityMode::Filter => refused(
                "security.signal.allow",
                format!("the signal {name} is not allowed on this server"),
            ),
            _ => refused(
                "security.signal.mode",
                "signals are disabled on this server",
            ),
        }
    }

    /// Whether the client may forward a TCP connection into the container (`ssh -L`, `-W`).
    pub(crate) fn forwarding(&self) -> Result<(), Refused> {
        match self.config.forwarding.forwarding_mode {
            SecurityMode::Enable => Ok(()),
            // ContainerSSH has no filter for forwarding either; refusing is the safe reading.
            SecurityMode::Filter => refused(
                "security.forwarding.forwardingMode",
                "port forwarding is disabled on this server (the filter mode has no rules)",
            ),
            _ => refused(
                "security.forwarding.forwardingMode",
                "port forwarding is disabled on this server",
            ),
        }
    }
}

impl SecurityPolicy {
    /// Whether the client may listen on a Unix socket in the container (`ssh -R /path:...`).
    pub(crate) fn socket_listen(&self) -> Result<(), Refused> {
        enabled(
            self.config.forwarding.socket_listen_mode,
            "security.forwarding.socketListenMode",
            "socket listening",
        )
    }

    /// Whether the client may forward its agent into the container (`ssh -A`).
    pub(crate) fn agent_forwarding(&self) -> Result<(), Refused> {
        enabled(
            self.config.forwarding.agent_forwarding_mode,
            "security.forwarding.agentForwardingMode",
            "agent forwarding",
        )
    }

    /// Whether the client may forward X11 to the container's sessions (`ssh -X`, `ssh -Y`).
    pub(crate) fn x11_forwarding(&self) -> Result<(), Refused> {
        enabled(
            self.config.forwarding.x11_forwarding_mode,
            "security.forwarding.x11ForwardingMode",
            "X11 forwarding",
        )
    }

    /// Whether the client may reach a Unix socket in the container (`ssh -L ...:/path`).
    pub(crate) fn socket_forwarding(&self) -> Result<(), Refused> {
        enabled(
            self.config.forwarding.socket_forwarding_mode,
            "security.forwarding.socketForwardingMode",
            "socket forwarding",
        )
    }

    /// Where a remote forward (`ssh -R`) asked for on `requested` listens inside the container,
    /// if it may: `security.forwarding.reverseForwardingMode` must be `enable`, and
    /// `security.forwarding.gatewayPorts` decides the address.
    pub(crate) fn remote_forward(&self, requested: &str) -> Result<String, Refused> {
        const RULE: &str = "security.forwarding.reverseForwardingMode";
        match self.config.forwarding.reverse_forwarding_mode {
            SecurityMode::Enable => {}
            SecurityMode::Filter => {
                return Err(Refused {
                    rule: RULE,
                    message: "remote forwarding is disabled on this server (the filter mode has \
                              no rules)"
                        .to_owned(),
                })
            }
            _ => {
                return Err(Refused {
                    rule: RULE,
                    message: "remote forwarding is disabled on this server".to_owned(),
                })
            }
        }
        let host = requested.trim_start_matches('[').trim_end_matches(']');
        let loopback = host.is_empty()
            || host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let any = host.is_empty() || host == "*" || host == "0.0.0.0";
        match self.config.forwarding.gateway_ports {
            GatewayPorts::No if loopback => Ok("127.0.0.1".to_owned()),
            GatewayPorts::No => Err(Refused {
                rule: "security.forwarding.gatewayPorts",
                message: format!(
                    "remote forwards may listen only on localhost on this server, not on {requested}"
                ),
            }),
            GatewayPorts::Yes => Ok("0.0.0.0".to_owned()),
            GatewayPorts::ClientSpecified if any => Ok("0.0.0.0".to_owned()),
            GatewayPorts::ClientSpecified if host.eq_ignore_ascii_case("localhost") => {
                Ok("127.0.0.1".to_owned())
            }
            GatewayPorts::ClientSpecified if is_host_name(host) => Ok(host.to_owned()),
            GatewayPorts::ClientSpecified => Err(Refused {
                rule: "security.forwarding.gatewayPorts",
                message: format!("`{requested}` is not an address to listen on"),
            }),
        }
    }
}

/// A forwarding mode's decision: only `enable` allows (`filter` has no rules to apply).
fn enabled(mode: SecurityMode, rule: &'static str, what: &str) -> Result<(), Refused> {
    match mode {
        SecurityMode::Enable => Ok(()),
        _ => refused(rule, format!("{what} is disabled on this server")),
    }
}

/// Whether `path` may name a Unix socket to listen on or connect to: absolute, and short
/// enough for a socket address.
pub(crate) fn socket_path(path: &str) -> Result<(), Refused> {
    if path.starts_with('/') && path.len() < 108 && !path.contains('\0') {
        Ok(())
    } else {
        refused(
            "streamlocal path",
            "a forwarded socket must be an absolute path of less than 108 bytes",
        )
    }
}

/// A plausible host name or address: short, and only the characters those use.
fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '%' | '_'))
}

/// An allow/deny decision for `name` under `mode`; `rules` are the mode, allow and deny keys.
fn listed(
    mode: SecurityMode,
    policy: &ListPolicy,
    name: &str,
    rules: [&'static str; 3],
    message: &str,
) -> Result<(), Refused> {
    let [mode_rule, allow_rule, deny_rule] = rules;
    match mode {
        SecurityMode::Enable if policy.deny.iter().any(|d| d == name) => {
            refused(deny_rule, message)
        }
        SecurityMode::Enable => Ok(()),
        SecurityMode::Filter if policy.allow.iter().any(|a| a == name) => Ok(()),
        SecurityMode::Filter => refused(allow_rule, message),
        _ => refused(mode_rule, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sshpod_config::ModePolicy;

    fn policy(configure: impl FnOnce(&mut SecurityConfig)) -> SecurityPolicy {
        let mut config = SecurityConfig::default();
        configure(&mut config);
        SecurityPolicy::new(config)
    }

    fn rule(result: Result<(), Refused>) -> Option<&'static str> {
        result.err().map(|r| r.rule)
    }

    #[test]
    fn everything_but_forwarding_is_allowed_by_default() {
        let p = policy(|_| {});
        assert!(p.run(&Command::Shell).is_ok());
        assert!(p.run(&Command::Exec("ls".into())).is_ok());
        assert!(p.run(&Command::Subsystem("sftp".into())).is_ok());
        assert!(p.tty().is_ok() && p.env("LANG").is_ok() && p.signal(Signal::Int).is_ok());
        assert_eq!(
            rule(p.forwarding()),
            Some("security.forwarding.forwardingMode")
        );
        assert_eq!(p.max_sessions(), None);
    }

    #[test]
    fn the_default_mode_applies_where_a_feature_has_none() {
        let p = policy(|c| {
            c.default_mode = SecurityMode::Disable;
            c.tty = ModePolicy {
                mode: SecurityMode::Enable,
            };
        });
        assert_eq!(rule(p.run(&Command::Shell)), Some("security.shell.mode"));
        assert_eq!(
            rule(p.run(&Command::Exec("ls".into()))),
            Some("security.command.mode")
        );
        assert_eq!(rule(p.env("LANG")), Some("security.env.mode"));
        assert!(p.tty().is_ok(), "its own mode wins");
    }

    #[test]
    fn filter_allows_only_what_is_listed_and_enable_all_but_the_deny_list() {
        let p = policy(|c| {
            c.command.mode = SecurityMode::Filter;
            c.command.allow = vec!["uptime".into()];
            c.subsystem.deny = vec!["sftp".into()];
            c.env.mode = SecurityMode::Filter;
            c.env.allow = vec!["LANG".into()];
            c.shell.mode = SecurityMode::Filter;
        });
        assert!(p.run(&Command::Exec("uptime".into())).is_ok());
        assert_eq!(
            rule(p.run(&Command::Exec("uptime; id".into()))),
            Some("security.command.allow"),
            "exact match only"
        );
        assert_eq!(
            rule(p.run(&Command::Subsystem("sftp".into()))),
            Some("security.subsystem.deny")
        );
        assert!(p.run(&Command::Subsystem("other".into())).is_ok());
        assert!(p.env("LANG").is_ok());
        assert_eq!(rule(p.env("LD_PRELOAD")), Some("security.env.allow"));
        assert_eq!(
            rule(p.run(&Command::Shell)),
            Some("security.shell.mode"),
            "a shell has no list to filter by"
        );
    }

    #[test]
    fn signals_follow_their_own_mode_with_or_without_the_sig_prefix() {
        let p = policy(|c| {
            c.shell.mode = SecurityMode::Disable;
            c.signal.deny = vec!["SIGKILL".into()];
        });
        assert!(p.signal(Signal::Int).is_ok(), "not the shell's mode");
        assert_eq!(rule(p.signal(Signal::Kill)), Some("security.signal.deny"));
        let p = policy(|c| {
            c.signal.mode = SecurityMode::Filter;
            c.signal.allow = vec!["TERM".into()];
        });
        assert!(p.signal(Signal::Term).is_ok());
        assert_eq!(rule(p.signal(Signal::Hup)), Some("security.signal.allow"));
    }

    #[test]
    fn remote_forwards_need_their_mode_and_listen_on_loopback_unless_allowed() {
        let off = policy(|_| {});
        assert_eq!(
            rule(off.remote_forward("localhost").map(drop)),
            Some("security.forwarding.reverseForwardingMode")
        );
        let p = policy(|c| c.forwarding.reverse_forwarding_mode = SecurityMode::Enable);
        for loopback in ["localhost", "", "127.0.0.1", "::1", "[::1]", "LOCALHOST"] {
            assert_eq!(p.remote_forward(loopback), Ok("127.0.0.1".to_owned()));
        }
        for other in ["0.0.0.0", "*", "10.1.2.3", "example.org"] {
            assert_eq!(
                rule(p.remote_forward(other).map(drop)),
                Some("security.forwarding.gatewayPorts"),
                "{other}"
            );
        }
        let yes = policy(|c| {
            c.forwarding.reverse_forwarding_mode = SecurityMode::Enable;
            c.forwarding.gateway_ports = GatewayPorts::Yes;
        });
        assert_eq!(yes.remote_forward("localhost"), Ok("0.0.0.0".to_owned()));
        let client = policy(|c| {
            c.forwarding.reverse_forwarding_mode = SecurityMode::Enable;
            c.forwarding.gateway_ports = GatewayPorts::ClientSpecified;
        });
        assert_eq!(client.remote_forward("*"), Ok("0.0.0.0".to_owned()));
        assert_eq!(client.remote_forward(""), Ok("0.0.0.0".to_owned()));
        assert_eq!(
            client.remote_forward("localhost"),
            Ok("127.0.0.1".to_owned())
        );
        assert_eq!(client.remote_forward("10.1.2.3"), Ok("10.1.2.3".to_owned()));
        assert!(client.remote_forward("a b").is_err());
    }

    #[test]
    fn socket_forwarding_has_its_own_two_modes_and_sane_paths() {
        let off = policy(|_| {});
        assert_eq!(
            rule(off.socket_listen()),
            Some("security.forwarding.socketListenMode")
        );
        assert_eq!(
            rule(off.socket_forwarding()),
            Some("security.forwarding.socketForwardingMode")
        );
        let listen = policy(|c| c.forwarding.socket_listen_mode = SecurityMode::Enable);
        assert!(listen.socket_listen().is_ok());
        assert!(listen.socket_forwarding().is_err(), "each kind on its own");
        assert_eq!(
            rule(listen.agent_forwarding()),
            Some("security.forwarding.agentForwardingMode")
        );
        let agent = policy(|c| c.forwarding.agent_forwarding_mode = SecurityMode::Enable);
        assert!(agent.agent_forwarding().is_ok() && agent.socket_listen().is_err());
        assert!(socket_path("/tmp/app.sock").is_ok());
        for bad in ["relative.sock", "", "/nul\0.sock"] {
            assert_eq!(rule(socket_path(bad)), Some("streamlocal path"), "{bad:?}");
        }
        assert!(socket_path(&format!("/{}", "a".repeat(110))).is_err());
    }

    #[test]
    fn x11_forwarding_is_off_unless_its_mode_enables_it() {
        let rule_name = Some("security.forwarding.x11ForwardingMode");
        assert_eq!(rule(policy(|_| {}).x11_forwarding()), rule_name);
        let filter = policy(|c| c.forwarding.x11_forwarding_mode = SecurityMode::Filter);
        assert_eq!(
            rule(filter.x11_forwarding()),
            rule_name,
            "filter has no rules"
        );
        let on = policy(|c| c.forwarding.x11_forwarding_mode = SecurityMode::Enable);
        assert!(on.x11_forwarding().is_ok());
        assert!(on.forwarding().is_err() && on.agent_forwarding().is_err());
    }

    #[test]
    fn a_forced_command_replaces_what_the_rules_would_judge() {
        let p = policy(|c| {
            c.force_command = "/usr/bin/menu".into();
            c.default_mode = SecurityMode::Disable;
        });
        assert_eq!(p.force_command(), Some("/usr/bin/menu"));
        assert!(p.run(&Command::Shell).is_ok());
        assert!(p.run(&Command::Subsystem("sftp".into())).is_ok());
        assert_eq!(rule(p.tty()), Some("security.tty.mode"));
    }
}
