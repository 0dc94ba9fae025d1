//! Logging set-up from the `log` section: the level (changed on reload), the format (`ljson`
//! as ContainerSSH writes it, or `text`) and the destination (stdout, a file reopened on
//! SIGHUP, or syslog).

mod destination;
mod ljson;
mod syslog;

use std::sync::{Arc, Mutex};

use anyhow::Result;
use sshpod_config::{LogConfig, LogFormat, LogLevel};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

use destination::{Destination, Lines};

/// The environment variable (EnvFilter syntax) that overrides `log.level`.
const LEVEL_OVERRIDE: &str = "SSHPOD_LOG";

/// The tracing level for a ContainerSSH (syslog-style) level name.
fn directive(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Debug => "debug",
        LogLevel::Info | LogLevel::Notice => "info",
        LogLevel::Warning => "warn",
        LogLevel::Error | LogLevel::Critical | LogLevel::Alert | LogLevel::Emergency => "error",
    }
}

/// Our crates at `level` (a target matches by prefix, so `sshpod` covers every `sshpod_*`
/// crate); dependencies only when they warn.
fn filter(level: LogLevel) -> EnvFilter {
    EnvFilter::new(format!("warn,sshpod={}", directive(level)))
}

/// What can change in the running log: its level and its file.
pub(crate) struct LogControl {
    filter: reload::Handle<EnvFilter, Registry>,
    destination: Arc<Destination>,
    /// The level in force; `None` while `SSHPOD_LOG` decides.
    level: Mutex<Option<LogLevel>>,
}

impl LogControl {
    /// Sets the level of the lines written from now on. Returns whether it changed.
    pub(crate) fn set_level(&self, level: LogLevel) -> Result<bool> {
        let mut current = self.level.lock().unwrap_or_else(|e| e.into_inner());
        match *current {
            // The environment's filter stays: it is what the operator asked for explicitly.
            None => Ok(false),
            Some(old) if old == level => Ok(false),
            Some(_) => {
                self.filter
                    .reload(filter(level))
                    .map_err(|e| anyhow::anyhow!("changing the log level: {e}"))?;
                *current = Some(level);
                Ok(true)
            }
        }
    }

    /// Reopens the log file (after logrotate renamed it); nothing for other destinations.
    pub(crate) fn reopen(&self) -> std::io::Result<()> {
        self.destination.reopen()
    }
}

/// Installs the global subscriber. `SSHPOD_LOG` (EnvFilter syntax) overrides the level.
pub(crate) fn init(config: &LogConfig) -> Result<LogControl> {
    let (env_filter, level) = match EnvFilter::try_from_env(LEVEL_OVERRIDE) {
        Ok(from_env) => (from_env, None),
        Err(_) => (filter(config.level), Some(config.level)),
    };
    let (filter_layer, filter_handle) = reload::Layer::new(env_filter);
    let destination = Arc::new(Destination::open(config)?);
    let output = match config.format {
        LogFormat::Ljson => ljson::Ljson::new(Arc::clone(&destination)).boxed(),
        LogFormat::Text => {
            let text = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(Lines(Arc::clone(&destination)));
            // Syslog's header carries the time and the level.
            if destination.is_syslog() {
                text.without_time().with_level(false).boxed()
            } else {
                text.boxed()
            }
        }
    };
    Registry::default()
        .with(filter_layer)
        .with(output)
        .try_init()
        .map_err(|e| anyhow::anyhow!("setting up logging: {e}"))?;
    Ok(LogControl {
        filter: filter_handle,
        destination,
        level: Mutex::new(level),
    })
}
