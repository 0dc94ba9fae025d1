//! Idle and session limits (`ssh.unusedConnectionTimeout`, `ssh.channelTimeout`,
//! `ssh.idleTimeout`, `ssh.maxSessionDuration`, `ssh.limitWarning`) and the drain on SIGTERM
//! (`ssh.drainTimeout`). The limits apply per connection, so a config server's answer may set
//! them for one user; OpenSSH's names and forms are used where OpenSSH has the limit.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::check::Checker;
use crate::duration;

/// Default `ssh.limitWarning`.
pub const DEFAULT_LIMIT_WARNING: Duration = Duration::from_secs(60);
/// Default `ssh.drainTimeout`: with the default `shutdownTimeout` (20s) the whole stop fits
/// Kubernetes' default 30s grace period.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The limits as written in the file (inside `ssh`).
#[derive(Debug, Clone)]
pub(crate) struct RawSessionLimits {
    pub(crate) unused_connection_timeout: Duration,
    pub(crate) channel_timeout: ChannelTimeoutText,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_session_duration: Duration,
    pub(crate) limit_warning: Duration,
}

/// `ssh.channelTimeout` as written: OpenSSH's one line (`session=5m direct-tcpip=1m`) or a
/// list of `type=interval` entries.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum ChannelTimeoutText {
    Line(String),
    List(Vec<String>),
}

impl Default for ChannelTimeoutText {
    fn default() -> Self {
        ChannelTimeoutText::Line(String::new())
    }
}

/// Idle and session limits of one connection; zero turns a limit off (the default for all).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionLimits {
    /// OpenSSH's `UnusedConnectionTimeout`: a logged-in connection with no open channel for
    /// this long is closed.
    #[serde(serialize_with = "duration::serialize")]
    pub unused_connection_timeout: Duration,
    /// OpenSSH's `ChannelTimeout`: a channel without traffic for its type's interval is closed.
    pub channel_timeout: ChannelTimeouts,
    /// A connection whose channels carried no data either way for this long is closed.
    #[serde(serialize_with = "duration::serialize")]
    pub idle_timeout: Duration,
    /// A connection is closed this long after its login.
    #[serde(serialize_with = "duration::serialize")]
    pub max_session_duration: Duration,
    /// How long before a limit ends a terminal session its user is warned (default 60s; at
    /// most half the limit, so a short limit still warns in time).
    #[serde(serialize_with = "duration::serialize")]
    pub limit_warning: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            unused_connection_timeout: Duration::ZERO,
            channel_timeout: ChannelTimeouts::default(),
            idle_timeout: Duration::ZERO,
            max_session_duration: Duration::ZERO,
            limit_warning: DEFAULT_LIMIT_WARNING,
        }
    }
}

impl SessionLimits {
    /// How long before `limit` runs out its warning is shown: `limitWarning`, but at most
    /// half the limit.
    pub fn warning_lead(&self, limit: Duration) -> Duration {
        self.limit_warning.min(limit / 2)
    }
}

/// OpenSSH's `ChannelTimeout` entries, in order; the first whose pattern matches a channel's
/// type gives its interval.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelTimeouts {
    entries: Vec<(String, Duration)>,
}

/// Channel types as OpenSSH names them in `ChannelTimeout`; sshpod opens the first three and
/// `x11-connection`.
const CHANNEL_TYPES: &[&str] = &[
    "session",
    "direct-tcpip",
    "forwarded-tcpip",
    "agent-connection",
    "x11-connection",
    "tun-connection",
    "direct-streamlocal@openssh.com",
    "forwarded-streamlocal@openssh.com",
];

impl ChannelTimeouts {
    /// The interval for channels of `kind` (`session`, `direct-tcpip`, ...), if any applies.
    pub fn for_type(&self, kind: &str) -> Option<Duration> {
        self.entries
            .iter()
            .find(|(pattern, _)| wildcard_match(pattern, kind))
            .map(|(_, interval)| *interval)
            .filter(|interval| !interval.is_zero())
    }

    /// Whether no entry is set.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn parse(words: &[&str]) -> Result<ChannelTimeouts, String> {
        let mut entries = Vec::with_capacity(words.len());
        for word in words {
            let (pattern, interval) = word.split_once('=').ok_or_else(|| {
                format!("`{word}`: write `type=interval`, like `session=5m` or `*=10m`")
            })?;
            if !CHANNEL_TYPES.iter().any(|t| wildcard_match(pattern, t)) {
                return Err(format!(
                    "`{pattern}` matches no channel type; known: {}",
                    CHANNEL_TYPES.join(", ")
                ));
            }
            let interval = match interval {
                "none" => Duration::ZERO,
                other => duration::parse(other).map_err(|e| format!("`{word}`: {e}"))?,
            };
            entries.push((pattern.to_owned(), interval));
        }
        Ok(ChannelTimeouts { entries })
    }
}

impl std::str::FromStr for ChannelTimeouts {
    type Err = String;

    /// OpenSSH's form: `type=interval` entries separated by spaces.
    fn from_str(line: &str) -> Result<Self, String> {
        Self::parse(&line.split_whitespace().collect::<Vec<_>>())
    }
}

impl std::fmt::Display for ChannelTimeouts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for (pattern, interval) in &self.entries {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            write!(f, "{pattern}={}", duration::format(*interval))?;
        }
        Ok(())
    }
}

impl Serialize for ChannelTimeouts {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// OpenSSH's patterns: `*` any run of characters, `?` any one.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

impl RawSessionLimits {
    pub(crate) fn resolve(self, check: &mut Checker<'_>) -> SessionLimits {
        let words: Vec<&str> = match &self.channel_timeout {
            ChannelTimeoutText::Line(line) => line.split_whitespace().collect(),
            ChannelTimeoutText::List(list) => list.iter().map(|w| w.trim()).collect(),
        };
        let channel_timeout = ChannelTimeouts::parse(&words).unwrap_or_else(|message| {
            check.error("ssh.channelTimeout", message);
            ChannelTimeouts::default()
        });
        SessionLimits {
            unused_connection_timeout: self.unused_connection_timeout,
            channel_timeout,
            idle_timeout: self.idle_timeout,
            max_session_duration: self.max_session_duration,
            limit_warning: self.limit_warning,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<ChannelTimeouts, String> {
        ChannelTimeouts::parse(&line.split_whitespace().collect::<Vec<_>>())
    }

    #[test]
    fn channel_timeouts_as_openssh_writes_them() {
        let t = parse("session=5m direct-tcpip=1m *=10m").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.for_type("session"), Some(Duration::from_secs(300)));
        assert_eq!(t.for_type("direct-tcpip"), Some(Duration::from_secs(60)));
        assert_eq!(
            t.for_type("forwarded-tcpip"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(t.to_string(), "session=5m direct-tcpip=1m *=10m");
        let first = parse("*=1m session=5m").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            first.for_type("session"),
            Some(Duration::from_secs(60)),
            "the first match wins"
        );
        let off = parse("session=none").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(off.for_type("session"), None);
        let tcp = parse("*-tcpip=2m").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tcp.for_type("direct-tcpip"), Some(Duration::from_secs(120)));
        assert_eq!(tcp.for_type("session"), None);
        for bad in ["session", "shell=5m", "session=soon", "session=-1s"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn warnings_come_at_most_half_way() {
        let limits = SessionLimits::default();
        assert_eq!(
            limits.warning_lead(Duration::from_secs(1800)),
            Duration::from_secs(60)
        );
        assert_eq!(
            limits.warning_lead(Duration::from_secs(3)),
            Duration::from_millis(1500)
        );
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("s*n", "session"));
        assert!(wildcard_match("sess?on", "session"));
        assert!(!wildcard_match("sess?on", "sesion"));
        assert!(!wildcard_match("direct-*", "session"));
    }
}
