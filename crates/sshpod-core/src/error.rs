//! Why a backend operation failed, in terms both readers need: a short sentence fit for the
//! SSH user (`Display`) and, for the log, the cause (`source()`), never repeated in the
//! sentence. Each variant names what happened (a timeout, a container that went away, a
//! refused request), so the server can tell them apart without parsing text.

use std::error::Error;
use std::fmt;
use std::time::Duration;

use crate::Signal;

type BoxError = Box<dyn Error + Send + Sync>;

/// Why a backend operation failed. `Display` is short and safe to show to the SSH user;
/// the cause (for the log) is in `source()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The image is not on the engine and could not be pulled.
    #[error("cannot start your container: image `{image}` is not available on this server")]
    ImageUnavailable {
        /// The image reference from the configuration.
        image: String,
        /// What the engine said.
        #[source]
        source: BoxError,
    },
    /// The container could not be created or started.
    #[error("cannot start your container (image `{image}`): {reason}")]
    StartContainer {
        /// The image reference from the configuration.
        image: String,
        /// A short reason fit for the user.
        reason: String,
        /// What the engine said.
        #[source]
        source: Option<BoxError>,
    },
    /// The container did not become ready within the configured time.
    #[error("cannot start your container (image `{image}`): it did not start within {seconds} s")]
    StartTimeout {
        /// The image reference from the configuration.
        image: String,
        /// The configured limit.
        seconds: u64,
    },
    /// The container engine could not be reached or answered with an error.
    #[error("the container engine is unavailable")]
    Engine(#[source] BoxError),
    /// A process could not be started.
    #[error("cannot run `{program}` in your container")]
    Exec {
        /// The program that was asked for.
        program: String,
        /// What the engine said.
        #[source]
        source: BoxError,
    },
    /// A file the login brought (webhook `files`) could not be put into the container.
    #[error("cannot write {path} in your container")]
    WriteFile {
        /// Where the file was to go (several, comma-separated, when written at once).
        path: String,
        /// What the engine said.
        #[source]
        source: BoxError,
    },
    /// The backend's own settings cannot be used (an unreadable certificate, say). Reported at
    /// start-up, never to SSH users.
    #[error("{setting}: {reason}")]
    Settings {
        /// The configuration key, such as `docker.connection.cacert`.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Listening on a port inside the container failed.
    #[error("cannot listen on {host}:{port} inside your container")]
    Listen {
        /// The address asked for.
        host: String,
        /// The port asked for.
        port: u16,
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// Dialling a port inside the container failed.
    #[error("cannot connect to {host}:{port} inside your container")]
    Dial {
        /// The host asked for.
        host: String,
        /// The port asked for.
        port: u16,
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// An operation on a running container did not finish within its configured time.
    #[error("{what}")]
    Timeout {
        /// What did not finish.
        what: Deadline,
        /// The limit it had.
        after: Duration,
    },
    /// The container (or pod) went away while sshpod was using it.
    #[error("{what}")]
    Gone {
        /// What went away, and when.
        what: Vanished,
    },
    /// The engine or API server refused or failed a request about a running container.
    #[error("{what} failed")]
    Refused {
        /// The request, as a phrase such as "watching your pod".
        what: &'static str,
        /// What the engine or API server said.
        #[source]
        source: BoxError,
    },
    /// A process ended but the engine could not say how.
    #[error("{what} ended without an exit status")]
    NoExitStatus {
        /// The process, such as "the command" or "`/bin/sh`".
        what: String,
        /// What the engine reported instead, if anything.
        #[source]
        source: Option<BoxError>,
    },
    /// A signal was sent but the process did not get it (it had ended, most likely).
    #[error("could not deliver {} to the process", signal.name())]
    SignalNotDelivered {
        /// The signal.
        signal: Signal,
        /// The exit code of `kill` inside the container.
        kill_exit_code: i64,
    },
    /// The request is not possible in this configuration; nothing failed.
    #[error("{0}")]
    NotPossible(NotPossible),
    /// The login cannot be given its user or hostname (a name `/etc/passwd` cannot hold).
    #[error("{0}")]
    Identity(crate::IdentityError),
    /// Setting the user up in the container failed.
    #[error("cannot set up your user `{user}` in your container")]
    SetUpUser {
        /// The login name.
        user: String,
        /// What the setup reported.
        #[source]
        source: BoxError,
    },
    /// The SSH server a login is passed on to (`backend: sshproxy`) could not be reached, or
    /// refused the connection, its host key or sshpod's credentials.
    #[error("{reason}")]
    Upstream {
        /// A short sentence fit for the user, naming which step failed.
        reason: String,
        /// What went wrong, for the log.
        #[source]
        source: Option<BoxError>,
    },
}

/// What did not finish in time (see [`BackendError::Timeout`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Deadline {
    /// Delivering a signal to a process.
    DeliverSignal(Signal),
    /// Reading a finished process's exit status.
    ExitStatus,
    /// A helper command sshpod runs in the container (such as `kill`).
    Command {
        /// The command line.
        program: String,
    },
    /// Writing a file the login brought.
    WriteFile {
        /// The file's path in the container.
        path: String,
    },
}

impl fmt::Display for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Deadline::DeliverSignal(signal) => write!(f, "delivering {} timed out", signal.name()),
            Deadline::ExitStatus => {
                f.write_str("the process's exit status could not be read in time")
            }
            Deadline::Command { program } => write!(f, "`{program}` did not finish in time"),
            Deadline::WriteFile { path } => {
                write!(f, "the file {path} could not be written in time")
            }
        }
    }
}

/// What went away (see [`BackendError::Gone`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Vanished {
    /// The Docker container stopped while a command ran in it.
    ContainerStopped,
    /// The pod stopped (its exec ended without a status) while a command ran in it.
    PodStopped,
    /// The pod was deleted while a command ran in it.
    PodDeleted,
}

impl fmt::Display for Vanished {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Vanished::ContainerStopped => "your container stopped while the command ran",
            Vanished::PodStopped => "your pod stopped while the command ran",
            Vanished::PodDeleted => "your pod went away while the command ran",
        })
    }
}

/// A request this configuration cannot serve (see [`BackendError::NotPossible`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotPossible {
    /// Port forwarding in session mode, where no container outlives a session.
    ForwardingInSessionMode,
    /// Forwarding to a host other than the container's own localhost, where the backend can
    /// only reach that.
    ForwardingBeyondLocalhost {
        /// The host asked for.
        host: String,
    },
    /// A listener inside the container (`ssh -R`), which this backend cannot make.
    ListeningUnsupported,
    /// Unix socket forwarding, which this backend cannot do.
    SocketForwardingUnsupported,
    /// A command (`ssh host cmd`) where the configuration allows only a shell.
    CommandsDisabled,
    /// A subsystem the configuration does not name.
    UnknownSubsystem {
        /// The subsystem asked for.
        name: String,
    },
}

impl fmt::Display for NotPossible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotPossible::ForwardingInSessionMode => {
                f.write_str("port forwarding is not available in session mode")
            }
            NotPossible::ForwardingBeyondLocalhost { host } => write!(
                f,
                "only ports on the pod's own localhost can be forwarded, not {host}"
            ),
            NotPossible::ListeningUnsupported => {
                f.write_str("remote forwarding is not available with this backend")
            }
            NotPossible::SocketForwardingUnsupported => {
                f.write_str("socket forwarding is not available with this backend")
            }
            NotPossible::CommandsDisabled => {
                f.write_str("running commands is disabled on this server; log in for a shell")
            }
            NotPossible::UnknownSubsystem { name } => {
                write!(f, "the subsystem `{name}` is not available")
            }
        }
    }
}

impl From<NotPossible> for BackendError {
    fn from(value: NotPossible) -> Self {
        BackendError::NotPossible(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_stay_out_of_the_message() {
        let e = BackendError::Refused {
            what: "watching your pod",
            source: "too old resource version".into(),
        };
        assert_eq!(e.to_string(), "watching your pod failed");
        assert_eq!(
            e.source().map(ToString::to_string).as_deref(),
            Some("too old resource version")
        );
        let e = BackendError::NoExitStatus {
            what: "the command".to_owned(),
            source: Some("stream closed".into()),
        };
        assert_eq!(e.to_string(), "the command ended without an exit status");
    }

    #[test]
    fn timeouts_and_refusals_read_as_before() {
        let timeout = |what| BackendError::Timeout {
            what,
            after: Duration::from_secs(5),
        };
        assert_eq!(
            timeout(Deadline::DeliverSignal(Signal::Term)).to_string(),
            "delivering TERM timed out"
        );
        assert_eq!(
            timeout(Deadline::WriteFile { path: "/x".into() }).to_string(),
            "the file /x could not be written in time"
        );
        assert_eq!(
            BackendError::from(NotPossible::ForwardingInSessionMode).to_string(),
            "port forwarding is not available in session mode"
        );
        assert_eq!(
            BackendError::SignalNotDelivered {
                signal: Signal::Usr1,
                kill_exit_code: 1
            }
            .to_string(),
            "could not deliver USR1 to the process"
        );
    }
}
