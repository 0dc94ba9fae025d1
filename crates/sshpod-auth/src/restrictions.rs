//! What a login may do once it is in: one model for the options of an authorized_keys or
//! principals line and for a certificate's `force-command` and `permit-*` extensions, so the
//! server enforces them in one place.

use std::fmt;

use crate::KeyOptions;

/// Session restrictions of one login. [`Restrictions::default`] restricts nothing (a password
/// login, or a key line without options).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Restrictions {
    /// Run this command instead of whatever the client asks for (shell, exec or subsystem);
    /// the client's request goes into `SSH_ORIGINAL_COMMAND`.
    pub force_command: Option<String>,
    /// A pseudo-terminal may be allocated.
    pub pty: bool,
    /// TCP forwarding (`direct-tcpip`, `tcpip-forward`) is allowed.
    pub port_forwarding: bool,
    /// Agent forwarding (`ssh -A`) is allowed.
    pub agent_forwarding: bool,
    /// X11 forwarding (`ssh -X`, `ssh -Y`) is allowed.
    pub x11_forwarding: bool,
    /// `~/.ssh/rc` may run (sshpod never runs one).
    pub user_rc: bool,
    /// `permitopen`: the only destinations `direct-tcpip` may reach; `None` is any.
    pub permit_open: Option<Vec<PermitOpen>>,
    /// `permitlisten`: the only addresses `tcpip-forward` may listen on; `None` is any.
    pub permit_listen: Option<Vec<PermitListen>>,
}

impl Default for Restrictions {
    fn default() -> Self {
        Self {
            force_command: None,
            pty: true,
            port_forwarding: true,
            agent_forwarding: true,
            x11_forwarding: true,
            user_rc: true,
            permit_open: None,
            permit_listen: None,
        }
    }
}

/// Two sources of restrictions want different forced commands; OpenSSH refuses such a login.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the key options and the certificate force different commands")]
pub struct CommandConflict;

impl Restrictions {
    /// Everything allowed except what a certificate's extensions permit (`permit-pty`,
    /// `permit-port-forwarding`, `permit-agent-forwarding`, `permit-X11-forwarding`,
    /// `permit-user-rc`), with its `force-command`.
    pub fn from_certificate_extensions<'a>(
        extensions: impl IntoIterator<Item = &'a str>,
        force_command: Option<String>,
    ) -> Self {
        let mut restrictions = Self {
            force_command,
            pty: false,
            port_forwarding: false,
            agent_forwarding: false,
            x11_forwarding: false,
            user_rc: false,
            permit_open: None,
            permit_listen: None,
        };
        for name in extensions {
            match name {
                "permit-pty" => restrictions.pty = true,
                "permit-port-forwarding" => restrictions.port_forwarding = true,
                "permit-agent-forwarding" => restrictions.agent_forwarding = true,
                "permit-X11-forwarding" => restrictions.x11_forwarding = true,
                "permit-user-rc" => restrictions.user_rc = true,
                // Unknown extensions are ignored, as the certificate format says.
                _ => {}
            }
        }
        restrictions
    }

    /// The most restrictive combination of two sources (a certificate and the line that
    /// accepted it): a permission holds only if both grant it. Forced commands must agree.
    pub fn merge(self, other: Self) -> Result<Self, CommandConflict> {
        let force_command = match (self.force_command, other.force_command) {
            (Some(a), Some(b)) if a != b => return Err(CommandConflict),
            (a, b) => a.or(b),
        };
        Ok(Self {
            force_command,
            pty: self.pty && other.pty,
            port_forwarding: self.port_forwarding && other.port_forwarding,
            agent_forwarding: self.agent_forwarding && other.agent_forwarding,
            x11_forwarding: self.x11_forwarding && other.x11_forwarding,
            user_rc: self.user_rc && other.user_rc,
            permit_open: self.permit_open.or(other.permit_open),
            permit_listen: self.permit_listen.or(other.permit_listen),
        })
    }

    /// Whether `direct-tcpip` to `host:port` is allowed.
    pub fn may_open(&self, host: &str, port: u16) -> bool {
        self.port_forwarding
            && self
                .permit_open
                .as_ref()
                .is_none_or(|list| list.iter().any(|p| p.allows(host, port)))
    }

    /// Whether `tcpip-forward` on `host:port` is allowed (port 0: a port the server picks,
    /// which only a `*` port allows, as in OpenSSH).
    pub fn may_listen(&self, host: &str, port: u16) -> bool {
        self.port_forwarding
            && self
                .permit_listen
                .as_ref()
                .is_none_or(|list| list.iter().any(|p| p.allows(host, port)))
    }

    /// Whether nothing is restricted.
    pub fn is_unrestricted(&self) -> bool {
        *self == Self::default()
    }
}

impl From<&KeyOptions> for Restrictions {
    fn from(options: &KeyOptions) -> Self {
        let permit_open: Vec<PermitOpen> = options
            .permit_open
            .iter()
            .filter_map(|p| PermitOpen::parse(p))
            .collect();
        let permit_listen: Vec<PermitListen> = options
            .permit_listen
            .iter()
            .filter_map(|p| PermitListen::parse(p))
            .collect();
        Self {
            force_command: options.command.clone(),
            pty: !options.no_pty,
            port_forwarding: !options.no_port_forwarding,
            agent_forwarding: !options.no_agent_forwarding,
            x11_forwarding: !options.no_x11_forwarding,
            user_rc: !options.no_user_rc,
            permit_open: (!permit_open.is_empty()).then_some(permit_open),
            permit_listen: (!permit_listen.is_empty()).then_some(permit_listen),
        }
    }
}

/// For logs: `none`, or the restrictions in OpenSSH's option names. The forced command itself
/// is not printed (it may carry arguments the operator considers private).
impl fmt::Display for Restrictions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.force_command.is_some() {
            parts.push("command");
        }
        for (allowed, name) in [
            (self.pty, "no-pty"),
            (self.port_forwarding, "no-port-forwarding"),
            (self.agent_forwarding, "no-agent-forwarding"),
            (self.x11_forwarding, "no-X11-forwarding"),
            (self.user_rc, "no-user-rc"),
        ] {
            if !allowed {
                parts.push(name);
            }
        }
        if self.permit_open.is_some() {
            parts.push("permitopen");
        }
        if self.permit_listen.is_some() {
            parts.push("permitlisten");
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join(","))
        }
    }
}

/// One `permitopen="host:port"` entry. `*` as the port allows any port, `*` as the host any
/// host. Host names are compared as written (case-insensitively), never resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermitOpen {
    host: Option<String>,
    port: Option<u16>,
}

impl PermitOpen {
    /// Parses `host:port`, `[v6-address]:port`, with `*` for any port or any host.
    pub fn parse(text: &str) -> Option<Self> {
        let (host, port) = match text.strip_prefix('[') {
            Some(rest) => {
                let (host, rest) = rest.split_once(']')?;
                (host, rest.strip_prefix(':')?)
            }
            None => text.rsplit_once(':')?,
        };
        if host.is_empty() || host.contains([' ', '\t', '/']) {
            return None;
        }
        let port = match port {
            "*" => None,
            p => Some(p.parse::<u16>().ok().filter(|&p| p != 0)?),
        };
        let host = (host != "*").then(|| host.to_ascii_lowercase());
        Some(Self { host, port })
    }

    /// Whether this entry allows `host:port`.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.host
            .as_deref()
            .is_none_or(|h| h.eq_ignore_ascii_case(host))
            && self.port.is_none_or(|p| p == port)
    }
}

/// One `permitlisten="[host:]port"` entry: `*` as the port allows any port (and port 0, a
/// port the server picks); without a host, or with `*`, any listen address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermitListen {
    host: Option<String>,
    port: Option<u16>,
}

impl PermitListen {
    /// Parses `port`, `host:port` or `[v6-address]:port`, with `*` for any.
    pub fn parse(text: &str) -> Option<Self> {
        if !text.contains(':') {
            let port = match text {
                "*" => None,
                p => Some(p.parse::<u16>().ok().filter(|&p| p != 0)?),
            };
            return Some(Self { host: None, port });
        }
        let open = PermitOpen::parse(text)?;
        Some(Self {
            host: open.host,
            port: open.port,
        })
    }

    /// Whether this entry allows listening on `host:port`.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.host
            .as_deref()
            .is_none_or(|h| h.eq_ignore_ascii_case(host))
            && self.port.is_none_or(|p| p == port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_extensions() {
        let all = Restrictions::from_certificate_extensions(
            [
                "permit-X11-forwarding",
                "permit-agent-forwarding",
                "permit-port-forwarding",
                "permit-pty",
                "permit-user-rc",
                "something-else@example.com",
            ],
            None,
        );
        assert!(all.is_unrestricted(), "{all}");
        let none = Restrictions::from_certificate_extensions([], Some("uptime".into()));
        assert_eq!(
            none.to_string(),
            "command,no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-user-rc"
        );
        let pty_only = Restrictions::from_certificate_extensions(["permit-pty"], None);
        assert!(pty_only.pty && !pty_only.port_forwarding);
    }

    #[test]
    fn merging_takes_the_stricter_side() {
        let cert = Restrictions::from_certificate_extensions(["permit-pty"], None);
        let line = Restrictions {
            pty: false,
            force_command: Some("date".into()),
            ..Restrictions::default()
        };
        let merged = cert.clone().merge(line.clone()).unwrap();
        assert!(!merged.pty && !merged.port_forwarding);
        assert_eq!(merged.force_command.as_deref(), Some("date"));
        assert_eq!(line.clone().merge(cert).unwrap(), merged);

        let same = Restrictions {
            force_command: Some("date".into()),
            ..Restrictions::default()
        };
        assert_eq!(
            same.merge(line.clone()).unwrap().force_command.as_deref(),
            Some("date")
        );
        let other = Restrictions {
            force_command: Some("id".into()),
            ..Restrictions::default()
        };
        assert_eq!(other.merge(line), Err(CommandConflict));
        assert!(Restrictions::default()
            .merge(Restrictions::default())
            .unwrap()
            .is_unrestricted());
    }

    #[test]
    fn from_key_options() {
        let options = KeyOptions {
            no_pty: true,
            command: Some("echo hi".into()),
            permit_open: vec!["db:5432".into(), "[::1]:*".into()],
            ..KeyOptions::default()
        };
        let r = Restrictions::from(&options);
        assert!(!r.pty && r.port_forwarding);
        assert_eq!(r.force_command.as_deref(), Some("echo hi"));
        assert!(r.may_open("DB", 5432));
        assert!(!r.may_open("db", 5433));
        assert!(r.may_open("::1", 80));
        assert!(r.may_open("[::1]", 22));
        assert!(!r.may_open("localhost", 80));
        assert!(Restrictions::from(&KeyOptions::default()).is_unrestricted());
    }

    #[test]
    fn no_port_forwarding_overrides_permitopen() {
        let r = Restrictions {
            port_forwarding: false,
            permit_open: Some(vec![PermitOpen::parse("*:*").unwrap()]),
            ..Restrictions::default()
        };
        assert!(!r.may_open("localhost", 80));
        assert!(Restrictions::default().may_open("anything", 1));
    }

    #[test]
    fn permitlisten_limits_remote_forwards() {
        let options = KeyOptions {
            permit_listen: vec!["8080".into(), "localhost:9000".into()],
            ..KeyOptions::default()
        };
        let r = Restrictions::from(&options);
        assert!(r.may_listen("localhost", 8080));
        assert!(r.may_listen("", 8080), "no host: any address");
        assert!(!r.may_listen("localhost", 8081));
        assert!(r.may_listen("LOCALHOST", 9000));
        assert!(!r.may_listen("0.0.0.0", 9000));
        assert!(!r.may_listen("localhost", 0), "port 0 only with *");
        assert_eq!(r.to_string(), "permitlisten");
        let any = Restrictions {
            permit_listen: PermitListen::parse("*").map(|p| vec![p]),
            ..Restrictions::default()
        };
        assert!(any.may_listen("localhost", 0) && any.may_listen("x", 1));
        let off = Restrictions {
            port_forwarding: false,
            ..any
        };
        assert!(
            !off.may_listen("localhost", 8080),
            "no-port-forwarding wins"
        );
        assert!(PermitListen::parse("0").is_none() && PermitListen::parse("x:").is_none());
    }

    #[test]
    fn permitopen_syntax() {
        for good in [
            "host:22",
            "*:80",
            "host:*",
            "[2001:db8::1]:443",
            "10.0.0.1:5432",
        ] {
            assert!(PermitOpen::parse(good).is_some(), "{good}");
        }
        for bad in [
            "host",
            "host:",
            "host:0",
            "host:99999",
            ":22",
            "[::1]22",
            "a b:1",
        ] {
            assert!(PermitOpen::parse(bad).is_none(), "{bad}");
        }
    }
}
