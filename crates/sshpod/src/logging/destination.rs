//! Where log lines go: standard output, a file that can be reopened (for logrotate), or
//! syslog. A destination that fails never blocks or fails the caller: the line is dropped,
//! counted, and the loss is said on standard error at most once a second.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sshpod::log_codes;
use sshpod_config::{LogConfig, LogDestination};
use tracing::Level;
use tracing_subscriber::fmt::MakeWriter;

use super::syslog::{self, Header, Severity};

/// The severity a line of `level` is sent with, and the level name it is written with
/// (ContainerSSH's names: sshpod's info lines are what `notice`, the default level, shows).
pub(crate) fn severity(level: Level) -> Severity {
    match level {
        Level::ERROR => Severity::Error,
        Level::WARN => Severity::Warning,
        Level::INFO => Severity::Notice,
        Level::DEBUG | Level::TRACE => Severity::Debug,
    }
}

/// ContainerSSH's name of a severity.
pub(crate) fn level_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Notice => "notice",
        Severity::Debug => "debug",
    }
}

/// Counts lines a destination lost and says so, rate-limited, on standard error.
#[derive(Debug, Default)]
pub(crate) struct Losses {
    dropped: AtomicU64,
    last_said: Mutex<Option<Instant>>,
}

impl Losses {
    fn lost(&self, what: &str, error: &io::Error) {
        let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last_said.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < Duration::from_secs(1)) {
            return;
        }
        *last = Some(now);
        // Standard error is the one place left to tell; if it fails too there is nothing to do.
        let _ = writeln!(
            io::stderr(),
            "sshpod: {}: cannot write to {what}: {error}; {dropped} log lines dropped so far",
            log_codes::LOG_WRITE_FAILED
        );
    }

    /// How many lines were dropped since start.
    #[cfg(test)]
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// A log file, reopened by path on request (after logrotate renamed it).
#[derive(Debug)]
struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

fn open_append(path: &PathBuf) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Where the lines go.
#[derive(Debug)]
pub(crate) struct Destination {
    kind: Kind,
    losses: Losses,
}

#[derive(Debug)]
enum Kind {
    Stdout,
    File(LogFile),
    Syslog {
        socket: syslog::Socket,
        header: Header,
    },
}

impl Destination {
    /// Opens the destination `config` names (the file is created if missing).
    pub(crate) fn open(config: &LogConfig) -> io::Result<Self> {
        let kind = match config.destination {
            LogDestination::Stdout => Kind::Stdout,
            LogDestination::File => {
                let path = PathBuf::from(&config.file);
                let file = open_append(&path).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("opening log file {}: {e}", path.display()),
                    )
                })?;
                Kind::File(LogFile {
                    path,
                    file: Mutex::new(file),
                })
            }
            LogDestination::Syslog => {
                let syslog = &config.syslog;
                let socket = syslog::Socket::open(syslog).map_err(|e| {
                    io::Error::new(e.kind(), format!("syslog {}: {e}", syslog.destination))
                })?;
                let facility = syslog.facility_number().ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "unknown syslog facility")
                })?;
                let pid = syslog.pid.then(std::process::id);
                Kind::Syslog {
                    socket,
                    header: Header::new(facility, &syslog.tag, pid),
                }
            }
        };
        Ok(Self {
            kind,
            losses: Losses::default(),
        })
    }

    /// Whether lines carry their own time and level (syslog's header has them).
    pub(crate) fn is_syslog(&self) -> bool {
        matches!(self.kind, Kind::Syslog { .. })
    }

    /// Writes one formatted line (with or without its newline).
    pub(crate) fn write_line(&self, severity: Severity, line: &[u8]) {
        match &self.kind {
            Kind::Stdout => {
                let mut out = io::stdout().lock();
                if let Err(e) = out.write_all(line).and_then(|()| newline(&mut out, line)) {
                    self.losses.lost("standard output", &e);
                }
            }
            Kind::File(log) => {
                let mut file = log.file.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = file
                    .write_all(line)
                    .and_then(|()| newline(&mut *file, line))
                {
                    self.losses.lost(&log.path.display().to_string(), &e);
                }
            }
            Kind::Syslog { socket, header } => {
                let text = String::from_utf8_lossy(line);
                let datagram = header.message(severity, &syslog::timestamp_now(), &text);
                if let Err(e) = socket.send(&datagram) {
                    self.losses.lost("syslog", &e);
                }
            }
        }
    }

    /// Reopens the log file by its path (logrotate renamed the old one); other destinations
    /// have nothing to reopen. On error the old file stays in use.
    pub(crate) fn reopen(&self) -> io::Result<()> {
        if let Kind::File(log) = &self.kind {
            let file = open_append(&log.path)?;
            *log.file.lock().unwrap_or_else(|e| e.into_inner()) = file;
        }
        Ok(())
    }

    /// Lines lost so far.
    #[cfg(test)]
    pub(crate) fn dropped(&self) -> u64 {
        self.losses.dropped()
    }
}

fn newline(out: &mut impl Write, line: &[u8]) -> io::Result<()> {
    if line.ends_with(b"\n") {
        Ok(())
    } else {
        out.write_all(b"\n")
    }
}

/// The writer `tracing-subscriber`'s text formatter writes each line through: it keeps the
/// line and hands it to the destination whole, with its level.
pub(crate) struct LineWriter {
    destination: Arc<Destination>,
    severity: Severity,
    line: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.destination.write_line(self.severity, &self.line);
        }
    }
}

/// Makes a [`LineWriter`] per line.
#[derive(Clone)]
pub(crate) struct Lines(pub(crate) Arc<Destination>);

impl<'a> MakeWriter<'a> for Lines {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        self.writer(Severity::Notice)
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> LineWriter {
        self.writer(severity(*meta.level()))
    }
}

impl Lines {
    fn writer(&self, severity: Severity) -> LineWriter {
        LineWriter {
            destination: Arc::clone(&self.0),
            severity,
            line: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_config(path: &std::path::Path) -> LogConfig {
        let auth = r#"{"auth": {"password": {"method": "htpasswd", "htpasswd": {"file": "/h"}}}}"#;
        let mut config = sshpod_config::parse_str(auth, sshpod_config::Format::Json, "t.json")
            .unwrap_or_else(|e| panic!("{e}"))
            .config
            .log;
        config.destination = LogDestination::File;
        config.file = path.display().to_string();
        config
    }

    /// logrotate renames the file and signals: lines before go to the renamed file, lines
    /// after to a new one under the old name, none lost.
    #[test]
    fn reopen_continues_in_a_new_file() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("sshpod.log");
        let destination = Destination::open(&file_config(&path))?;
        destination.write_line(Severity::Notice, b"before\n");
        let rotated = dir.path().join("sshpod.log.1");
        std::fs::rename(&path, &rotated)?;
        destination.write_line(Severity::Notice, b"between");
        destination.reopen()?;
        destination.write_line(Severity::Notice, b"after\n");
        assert_eq!(std::fs::read_to_string(&rotated)?, "before\nbetween\n");
        assert_eq!(std::fs::read_to_string(&path)?, "after\n");
        assert_eq!(destination.dropped(), 0);
        Ok(())
    }

    /// A syslog socket that is gone costs lines, counted, and never an error to the caller.
    #[test]
    fn a_missing_syslog_socket_drops_and_counts() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut config = file_config(&dir.path().join("unused"));
        config.destination = LogDestination::Syslog;
        config.syslog.destination = dir.path().join("gone").display().to_string();
        let destination = Destination::open(&config)?;
        for _ in 0..3 {
            destination.write_line(Severity::Error, b"lost");
        }
        assert_eq!(destination.dropped(), 3);
        Ok(())
    }

    #[test]
    fn levels_are_named_as_containerssh_names_them() {
        assert_eq!(level_name(severity(Level::ERROR)), "error");
        assert_eq!(level_name(severity(Level::WARN)), "warning");
        assert_eq!(level_name(severity(Level::INFO)), "notice");
        assert_eq!(level_name(severity(Level::DEBUG)), "debug");
        assert_eq!(level_name(severity(Level::TRACE)), "debug");
    }
}
