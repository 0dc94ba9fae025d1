//! Logging set-up from the `log` section: level, text or JSON lines, stdout or a file.

use std::fs::OpenOptions;
use std::sync::Mutex;

use anyhow::{Context, Result};
use sshpod_config::{LogConfig, LogDestination, LogFormat, LogLevel};
use tracing_subscriber::EnvFilter;

/// The tracing level for a ContainerSSH (syslog-style) level name.
fn directive(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Debug => "debug",
        LogLevel::Info | LogLevel::Notice => "info",
        LogLevel::Warning => "warn",
        LogLevel::Error | LogLevel::Critical | LogLevel::Alert | LogLevel::Emergency => "error",
    }
}

/// Installs the global subscriber. `SSHPOD_LOG` (EnvFilter syntax) overrides the level.
pub(crate) fn init(config: &LogConfig) -> Result<()> {
    let filter = EnvFilter::try_from_env("SSHPOD_LOG").unwrap_or_else(|_| {
        // Our crates at the configured level (a target matches by prefix, so `sshpod` covers
        // every `sshpod_*` crate); dependencies only when they warn.
        let level = directive(config.level);
        EnvFilter::new(format!("warn,sshpod={level}"))
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = match (config.destination, config.format) {
        (LogDestination::Stdout, LogFormat::Text) => builder.with_ansi(false).try_init(),
        (LogDestination::Stdout, LogFormat::Ljson) => builder.json().try_init(),
        (LogDestination::File, format) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&config.file)
                .with_context(|| format!("opening log file {}", config.file))?;
            let builder = builder.with_ansi(false).with_writer(Mutex::new(file));
            match format {
                LogFormat::Text => builder.try_init(),
                LogFormat::Ljson => builder.json().try_init(),
            }
        }
    };
    result.map_err(|e| anyhow::anyhow!("setting up logging: {e}"))
}
