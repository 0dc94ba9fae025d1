//! The `log` section: level, format and destination of sshpod's own log.

use std::fmt;

use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde::{Deserialize, Serialize};

use crate::check::Checker;

/// Log level, using the syslog names ContainerSSH uses (default `notice`).
///
/// Read as ContainerSSH reads it: one of `debug info notice warning error crit alert emerg`, or
/// the syslog number from 0 (`emerg`) to 7 (`debug`); sshpod's earlier spellings `critical` and
/// `emergency` are accepted too. Printed with ContainerSSH's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize)]
pub enum LogLevel {
    /// Everything, including protocol details (7).
    #[serde(rename = "debug")]
    Debug,
    /// Informational messages (6).
    #[serde(rename = "info")]
    Info,
    /// Normal but significant events (5, the default).
    #[default]
    #[serde(rename = "notice")]
    Notice,
    /// Something unexpected that sshpod handled (4).
    #[serde(rename = "warning")]
    Warning,
    /// A failure of one operation (3).
    #[serde(rename = "error")]
    Error,
    /// A failure of a component (2).
    #[serde(rename = "crit")]
    Critical,
    /// Action must be taken immediately (1).
    #[serde(rename = "alert")]
    Alert,
    /// The system is unusable (0). This is also the zero value of ContainerSSH's Go type, which
    /// is how a config server that marshals a whole configuration struct writes "unset".
    #[serde(rename = "emerg")]
    Emergency,
}

impl LogLevel {
    /// ContainerSSH's names, indexed by syslog number.
    const NAMES: [&'static str; 8] = [
        "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
    ];
    const BY_NUMBER: [LogLevel; 8] = [
        LogLevel::Emergency,
        LogLevel::Alert,
        LogLevel::Critical,
        LogLevel::Error,
        LogLevel::Warning,
        LogLevel::Notice,
        LogLevel::Info,
        LogLevel::Debug,
    ];

    /// The level with syslog number `number` (0 `emerg` to 7 `debug`).
    pub fn from_number(number: u64) -> Option<Self> {
        usize::try_from(number)
            .ok()
            .and_then(|index| Self::BY_NUMBER.get(index).copied())
    }

    /// ContainerSSH's name of the level (`notice`, `crit`…).
    pub fn name(self) -> &'static str {
        let number = Self::BY_NUMBER
            .iter()
            .position(|level| *level == self)
            .unwrap_or(0);
        Self::NAMES.get(number).copied().unwrap_or("emerg")
    }

    /// The level named `name`, in ContainerSSH's or sshpod's earlier spelling.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "critical" => Some(Self::Critical),
            "emergency" => Some(Self::Emergency),
            name => Self::NAMES
                .iter()
                .position(|known| *known == name)
                .and_then(|index| Self::BY_NUMBER.get(index).copied()),
        }
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LevelVisitor;
        impl Visitor<'_> for LevelVisitor {
            type Value = LogLevel;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a log level name (debug ... emerg) or a number from 0 to 7")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<LogLevel, E> {
                LogLevel::from_name(name).ok_or_else(|| E::unknown_variant(name, &LogLevel::NAMES))
            }
            fn visit_u64<E: de::Error>(self, number: u64) -> Result<LogLevel, E> {
                LogLevel::from_number(number)
                    .ok_or_else(|| E::invalid_value(Unexpected::Unsigned(number), &self))
            }
            fn visit_i64<E: de::Error>(self, number: i64) -> Result<LogLevel, E> {
                u64::try_from(number)
                    .ok()
                    .and_then(LogLevel::from_number)
                    .ok_or_else(|| E::invalid_value(Unexpected::Signed(number), &self))
            }
        }
        deserializer.deserialize_any(LevelVisitor)
    }
}

/// Log line format (default `ljson`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    #[default]
    Ljson,
    /// Human-readable text.
    Text,
}

/// `log.destination` as written in the file.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawLogDestination {
    #[default]
    Stdout,
    File,
    Syslog,
}

/// Where the log goes (default `stdout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogDestination {
    /// Standard output.
    #[default]
    Stdout,
    /// The file named by `log.file`.
    File,
    /// A syslog daemon, as `log.syslog` says.
    Syslog,
}

/// The syslog facilities by name, with their numbers (RFC 5424 section 6.2.1).
const FACILITIES: [(&str, u8); 24] = [
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("ntp", 12),
    ("security", 13),
    ("console", 14),
    ("solaris-cron", 15),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// Where syslog messages go (`log.syslog.destination`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyslogTarget {
    /// A local datagram socket such as `/dev/log`.
    Unix(std::path::PathBuf),
    /// A syslog server over UDP, `host:port`.
    Udp(String),
}

/// `log.syslog`: where and how syslog messages are sent (as ContainerSSH: a unix datagram
/// socket or UDP; TCP is not supported).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogConfig {
    /// Syslog socket or `host:port` (default `/dev/log`).
    pub destination: String,
    /// Facility (default `auth`).
    pub facility: String,
    /// Tag (default `sshpod`).
    pub tag: String,
    /// Whether to include the process id (default false).
    pub pid: bool,
}

impl SyslogConfig {
    /// The facility's number, when `facility` names one (`auth`, `local0`…).
    pub fn facility_number(&self) -> Option<u8> {
        FACILITIES
            .iter()
            .find(|(name, _)| *name == self.facility)
            .map(|(_, number)| *number)
    }

    /// Where messages go: a path is a unix socket, `udp://host:port` a UDP server.
    pub fn target(&self) -> Result<SyslogTarget, String> {
        let destination = self.destination.trim();
        if let Some(address) = destination.strip_prefix("udp://") {
            let valid = address.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
            });
            return if valid {
                Ok(SyslogTarget::Udp(address.to_owned()))
            } else {
                Err(format!("`{destination}`: expected `udp://HOST:PORT`"))
            };
        }
        if destination.starts_with("tcp://") {
            return Err("syslog over TCP is not supported (as in ContainerSSH); use a unix socket or `udp://HOST:PORT`".into());
        }
        if destination.contains("://") {
            return Err(format!(
                "`{destination}`: expected a unix socket path or `udp://HOST:PORT`"
            ));
        }
        if !destination.starts_with('/') {
            return Err(format!(
                "`{destination}`: a unix socket path must be absolute"
            ));
        }
        Ok(SyslogTarget::Unix(destination.into()))
    }
}

impl Default for SyslogConfig {
    fn default() -> Self {
        Self {
            destination: "/dev/log".into(),
            facility: "auth".into(),
            tag: "sshpod".into(),
            pid: false,
        }
    }
}

/// The `log` section as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawLog {
    level: LogLevel,
    format: LogFormat,
    destination: RawLogDestination,
    file: String,
    syslog: SyslogConfig,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            level: LogLevel::default(),
            format: LogFormat::default(),
            destination: RawLogDestination::default(),
            file: DEFAULT_LOG_FILE.into(),
            syslog: SyslogConfig::default(),
        }
    }
}

/// Default `log.file`.
pub const DEFAULT_LOG_FILE: &str = "/var/log/sshpod/sshpod.log";

/// Logging settings (`log`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogConfig {
    /// Minimum level written.
    pub level: LogLevel,
    /// Line format.
    pub format: LogFormat,
    /// Where the log goes.
    pub destination: LogDestination,
    /// Log file, used when `destination` is `file` (default `/var/log/sshpod/sshpod.log`).
    pub file: String,
    /// Syslog settings, used when `destination` is `syslog`.
    pub syslog: SyslogConfig,
}

impl RawLog {
    pub(crate) fn resolve(self, check: &mut Checker<'_>) -> LogConfig {
        let destination = match self.destination {
            RawLogDestination::Stdout => LogDestination::Stdout,
            RawLogDestination::File => LogDestination::File,
            RawLogDestination::Syslog => LogDestination::Syslog,
        };
        if destination == LogDestination::Syslog {
            if let Err(message) = self.syslog.target() {
                check.error("log.syslog.destination", message);
            }
            if self.syslog.facility_number().is_none() {
                let names: Vec<&str> = FACILITIES.iter().map(|(name, _)| *name).collect();
                check.error(
                    "log.syslog.facility",
                    format!(
                        "unknown facility `{}`; one of: {}",
                        self.syslog.facility,
                        names.join(" ")
                    ),
                );
            }
            if self.syslog.tag.is_empty()
                || self.syslog.tag.len() > 48
                || !self
                    .syslog
                    .tag
                    .chars()
                    .all(|c| c.is_ascii_graphic() && c != ':' && c != '[')
            {
                check.error(
                    "log.syslog.tag",
                    "must be 1 to 48 printable characters without spaces, `:` or `[`",
                );
            }
        }
        if destination == LogDestination::File && self.file.trim().is_empty() {
            check.error(
                "log.file",
                "must not be empty when `log.destination` is `file`",
            );
        }
        LogConfig {
            level: self.level,
            format: self.format,
            destination,
            file: self.file,
            syslog: self.syslog,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containerssh_names_and_numbers() {
        let names = [
            ("debug", LogLevel::Debug),
            ("info", LogLevel::Info),
            ("notice", LogLevel::Notice),
            ("warning", LogLevel::Warning),
            ("error", LogLevel::Error),
            ("crit", LogLevel::Critical),
            ("alert", LogLevel::Alert),
            ("emerg", LogLevel::Emergency),
            ("critical", LogLevel::Critical),
            ("emergency", LogLevel::Emergency),
        ];
        for (name, level) in names {
            assert_eq!(
                serde_json::from_str::<LogLevel>(&format!("\"{name}\"")).unwrap(),
                level
            );
        }
        for (number, level) in [
            (0, LogLevel::Emergency),
            (5, LogLevel::Notice),
            (7, LogLevel::Debug),
        ] {
            assert_eq!(
                serde_json::from_str::<LogLevel>(&number.to_string()).unwrap(),
                level
            );
            assert_eq!(
                serde_saphyr::from_str::<LogLevel>(&number.to_string()).unwrap(),
                level
            );
        }
        assert_eq!(LogLevel::Critical.name(), "crit");
        assert_eq!(LogLevel::Debug.name(), "debug");
        assert_eq!(
            serde_json::to_string(&LogLevel::Critical).unwrap(),
            "\"crit\""
        );
        assert_eq!(
            serde_json::to_string(&LogLevel::Emergency).unwrap(),
            "\"emerg\""
        );
        for bad in ["8", "-1", "\"warn\"", "\"7\""] {
            assert!(serde_json::from_str::<LogLevel>(bad).is_err(), "{bad}");
        }
    }

    fn syslog(destination: &str, facility: &str, tag: &str) -> Vec<String> {
        let text = format!(
            "log:\n  destination: syslog\n  syslog:\n    destination: \"{destination}\"\n    facility: \"{facility}\"\n    tag: \"{tag}\"\n\
             auth: {{password: {{method: htpasswd, htpasswd: {{file: /etc/htpasswd}}}}}}\n"
        );
        match crate::parse_str(&text, crate::Format::Yaml, "test.yaml") {
            Ok(_) => Vec::new(),
            Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn syslog_destinations_as_containerssh_takes_them() {
        assert_eq!(syslog("/dev/log", "auth", "sshpod"), Vec::<String>::new());
        assert_eq!(
            syslog("udp://logs.example:514", "local3", "gw"),
            Vec::<String>::new()
        );
        let config = SyslogConfig {
            destination: "udp://[::1]:5514".into(),
            ..SyslogConfig::default()
        };
        assert_eq!(config.target(), Ok(SyslogTarget::Udp("[::1]:5514".into())));
        assert_eq!(
            SyslogConfig::default().target(),
            Ok(SyslogTarget::Unix("/dev/log".into()))
        );
        assert_eq!(SyslogConfig::default().facility_number(), Some(4));
    }

    #[test]
    fn bad_syslog_settings_are_refused_with_their_position() {
        let errors = syslog("tcp://logs:514", "auth", "sshpod");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("test.yaml:4:18: key `log.syslog.destination`: syslog over TCP"),
            "{errors:?}"
        );
        assert!(syslog("udp://logs", "auth", "x")[0].contains("expected `udp://HOST:PORT`"));
        assert!(syslog("dev/log", "auth", "x")[0].contains("must be absolute"));
        let errors = syslog("/dev/log", "authz", "x");
        assert!(
            errors[0].contains("key `log.syslog.facility`: unknown facility `authz`"),
            "{errors:?}"
        );
        let errors = syslog("/dev/log", "auth", "two words");
        assert!(errors[0].contains("key `log.syslog.tag`"), "{errors:?}");
    }
}
