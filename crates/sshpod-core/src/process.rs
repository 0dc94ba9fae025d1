//! A process running in a container, as the SSH server sees it.

use std::future::Future;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::BackendError;

/// What to run. The backend turns it into a program and arguments using its configuration
/// (shell command, subsystem table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The user's login shell (`ssh host`).
    Shell,
    /// A command line, run by `/bin/sh -c` (`ssh host 'cmd'`).
    Exec(String),
    /// A named subsystem such as `sftp`.
    Subsystem(String),
}

/// Terminal size in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalSize {
    /// Columns.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
}

/// A pseudo-terminal request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtySpec {
    /// The client's `TERM`.
    pub term: String,
    /// The initial size.
    pub size: TerminalSize,
    /// Terminal modes as `stty` arguments (for example `-echo`, `intr ^C`), applied before the
    /// program starts.
    pub stty_modes: Vec<String>,
}

/// Everything needed to start a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// What to run.
    pub command: Command,
    /// Environment variables from the client (`SetEnv`, `SendEnv`), in order.
    pub env: Vec<(String, String)>,
    /// A terminal, when the client asked for one.
    pub tty: Option<TtySpec>,
    /// X11 forwarding to pass on, for a backend that does ([`X11Forwarding::PassedOn`]);
    /// `None` otherwise, also when the server made the session's display itself.
    ///
    /// [`X11Forwarding::PassedOn`]: crate::X11Forwarding::PassedOn
    pub x11: Option<crate::X11Request>,
}

/// Signals a client may send (RFC 4254 §6.9 names, without the `SIG` prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Signal {
    Abrt,
    Alrm,
    Fpe,
    Hup,
    Ill,
    Int,
    Kill,
    Pipe,
    Quit,
    Segv,
    Term,
    Usr1,
    Usr2,
}

impl Signal {
    /// All signals, for lookups.
    pub const ALL: [Signal; 13] = [
        Signal::Abrt,
        Signal::Alrm,
        Signal::Fpe,
        Signal::Hup,
        Signal::Ill,
        Signal::Int,
        Signal::Kill,
        Signal::Pipe,
        Signal::Quit,
        Signal::Segv,
        Signal::Term,
        Signal::Usr1,
        Signal::Usr2,
    ];

    /// The SSH name (`TERM`), which is also the `kill -s` name.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Abrt => "ABRT",
            Signal::Alrm => "ALRM",
            Signal::Fpe => "FPE",
            Signal::Hup => "HUP",
            Signal::Ill => "ILL",
            Signal::Int => "INT",
            Signal::Kill => "KILL",
            Signal::Pipe => "PIPE",
            Signal::Quit => "QUIT",
            Signal::Segv => "SEGV",
            Signal::Term => "TERM",
            Signal::Usr1 => "USR1",
            Signal::Usr2 => "USR2",
        }
    }

    /// The Linux signal number.
    pub fn number(self) -> u32 {
        match self {
            Signal::Hup => 1,
            Signal::Int => 2,
            Signal::Quit => 3,
            Signal::Ill => 4,
            Signal::Abrt => 6,
            Signal::Fpe => 8,
            Signal::Kill => 9,
            Signal::Usr1 => 10,
            Signal::Segv => 11,
            Signal::Usr2 => 12,
            Signal::Pipe => 13,
            Signal::Alrm => 14,
            Signal::Term => 15,
        }
    }

    /// Looks a signal up by its SSH name.
    pub fn from_name(name: &str) -> Option<Signal> {
        Signal::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Looks a signal up by its Linux number.
    pub fn from_number(number: u32) -> Option<Signal> {
        Signal::ALL.into_iter().find(|s| s.number() == number)
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(u32),
    /// It was killed by this signal.
    Signal(Signal),
}

/// A boxed future, for the object-safe [`ProcessControl`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Controls of a running process. Object-safe, because the server keeps one per channel
/// regardless of the backend that made it.
pub trait ProcessControl: Send + Sync {
    /// Changes the terminal size (only meaningful with a TTY).
    fn resize(&self, size: TerminalSize) -> BoxFuture<'_, Result<(), BackendError>>;
    /// Delivers a signal to the process.
    fn signal(&self, signal: Signal) -> BoxFuture<'_, Result<(), BackendError>>;
    /// Waits for the process to end, after its output streams have ended.
    fn wait(&self) -> BoxFuture<'_, Result<ExitStatus, BackendError>>;
}

/// A started process: its byte streams and its controls.
pub struct Process {
    /// Writing here feeds the process's stdin; shutting it down sends EOF.
    pub stdin: Box<dyn AsyncWrite + Send + Unpin>,
    /// The process's stdout (with a TTY: the terminal's output).
    pub stdout: Box<dyn AsyncRead + Send + Unpin>,
    /// The process's stderr; `None` with a TTY, where it is merged into stdout.
    pub stderr: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// Resize, signal and wait.
    pub control: Box<dyn ProcessControl>,
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_and_numbers_round_trip() {
        for s in Signal::ALL {
            assert_eq!(Signal::from_name(s.name()), Some(s));
            assert_eq!(Signal::from_number(s.number()), Some(s));
        }
        assert_eq!(Signal::from_name("SIGTERM"), None);
        assert_eq!(Signal::Term.number(), 15);
    }
}
