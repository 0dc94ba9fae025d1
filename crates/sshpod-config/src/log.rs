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
}

/// `log.syslog`: accepted for ContainerSSH compatibility; syslog output is not supported yet.
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
    /// Syslog settings, kept for compatibility.
    pub syslog: SyslogConfig,
}

impl RawLog {
    pub(crate) fn resolve(self, check: &mut Checker<'_>) -> LogConfig {
        let destination = match self.destination {
            RawLogDestination::Stdout => LogDestination::Stdout,
            RawLogDestination::File => LogDestination::File,
            RawLogDestination::Syslog => {
                check.error(
                    "log.destination",
                    "`syslog` is not supported yet; use `stdout` or `file`",
                );
                LogDestination::Stdout
            }
        };
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
}
