//! The `log` section: level, format and destination of sshpod's own log.

use serde::{Deserialize, Serialize};

use crate::check::Checker;

/// Log level, using the syslog names ContainerSSH uses (default `notice`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Everything, including protocol details.
    Debug,
    /// Informational messages.
    Info,
    /// Normal but significant events (the default).
    #[default]
    Notice,
    /// Something unexpected that sshpod handled.
    Warning,
    /// A failure of one operation.
    Error,
    /// A failure of a component.
    Critical,
    /// Action must be taken immediately.
    Alert,
    /// The system is unusable.
    Emergency,
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
