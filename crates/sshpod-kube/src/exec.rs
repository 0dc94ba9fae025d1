//! Processes started with the pods/exec API (WebSocket v5, see [`crate::remote`]), and their
//! controls.
//!
//! The exec API has no environment and no signals: every process goes through
//! [`sshpod_core::wrapper`], which exports the environment and records the PID; a signal is
//! another exec running `kill`.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::AttachParams;
use sshpod_core::wrapper::{kill_argv, pid_file_name, wrap_argv, DeliveredSignal};
use sshpod_core::{
    BackendError, BoxFuture, Deadline, ExitStatus, Process, ProcessControl, Signal, TerminalSize,
    TtySpec, Vanished,
};
use tokio::io::AsyncReadExt as _;

use crate::pod::{self, exit_code};
use crate::remote::{self, Subresource};
use crate::requests::PodsApi;

/// Where to run a process.
pub(crate) struct Target<'a> {
    pub(crate) pods: &'a PodsApi,
    pub(crate) pod: &'a str,
    pub(crate) container: &'a str,
}

/// Starts `argv` in the target container.
pub(crate) async fn start(
    target: &Target<'_>,
    argv: Vec<String>,
    env: &[(String, String)],
    tty: Option<&TtySpec>,
    program_for_errors: String,
    signal_timeout: Duration,
) -> Result<Process, BackendError> {
    let pid_file = pid_file_name(rand::random());
    let mut env = env.to_vec();
    if let Some(t) = tty {
        env.push(("TERM".to_owned(), t.term.clone()));
    }
    let params = AttachParams {
        container: Some(target.container.to_owned()),
        stdin: true,
        stdout: true,
        stderr: tty.is_none(),
        tty: tty.is_some(),
        ..AttachParams::default()
    };
    let argv = wrap_argv(argv, &pid_file, &env, tty);
    let mut remote = remote::open(
        &target.pods.pods(),
        target.pod,
        Subresource::Exec(argv),
        &params,
    )
    .await
    .map_err(|e| BackendError::Exec {
        program: program_for_errors.clone(),
        source: Box::new(e),
    })?;
    let stdin = remote
        .stdin
        .take()
        .ok_or_else(|| missing(&program_for_errors, "stdin"))?;
    let stdout = remote
        .stdout
        .take()
        .ok_or_else(|| missing(&program_for_errors, "stdout"))?;
    let stderr = remote.stderr.take();
    let resize = remote.resize.take();
    if let (Some(t), Some(sender)) = (tty, resize.as_ref()) {
        // The first size goes out before any output is read, so the shell starts sized.
        let _ = sender.send(t.size).await;
    }
    let status = remote.status.take();
    let control = ExecControl {
        terminal: Terminal::new(resize),
        signaller: Signaller::new(target, pid_file, signal_timeout),
        status: tokio::sync::Mutex::new(status),
        _driver: remote.driver,
    };
    Ok(Process {
        stdin: Box::new(stdin),
        stdout: Box::new(stdout),
        stderr: stderr.map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        control: Box::new(control),
    })
}

/// The exec was accepted but came without a stream it was asked for.
pub(crate) fn missing(program: &str, stream: &'static str) -> BackendError {
    BackendError::Exec {
        program: program.to_owned(),
        source: format!("the API server's answer has no {stream} stream").into(),
    }
}

/// Sends terminal sizes to a process with a TTY.
pub(crate) struct Terminal(Option<tokio::sync::mpsc::Sender<TerminalSize>>);

impl Terminal {
    pub(crate) fn new(sender: Option<tokio::sync::mpsc::Sender<TerminalSize>>) -> Self {
        Self(sender)
    }

    pub(crate) async fn resize(&self, size: TerminalSize) -> Result<(), BackendError> {
        if let Some(sender) = &self.0 {
            // A process that ended has no terminal left to size: no error.
            let _ = sender.send(size).await;
        }
        Ok(())
    }
}

/// Delivers signals to a process started through the wrapper (by its PID file), and
/// remembers the last one delivered so its exit can be reported as that signal.
pub(crate) struct Signaller {
    pub(crate) pods: PodsApi,
    pub(crate) pod: String,
    pub(crate) container: String,
    pub(crate) pid_file: String,
    pub(crate) timeout: Duration,
    delivered: DeliveredSignal,
}

impl Signaller {
    pub(crate) fn new(target: &Target<'_>, pid_file: String, timeout: Duration) -> Self {
        Self {
            pods: target.pods.clone(),
            pod: target.pod.to_owned(),
            container: target.container.to_owned(),
            pid_file,
            timeout,
            delivered: DeliveredSignal::default(),
        }
    }

    pub(crate) async fn deliver(&self, signal: Signal) -> Result<(), BackendError> {
        let target = Target {
            pods: &self.pods,
            pod: &self.pod,
            container: &self.container,
        };
        let sending = self.delivered.sending(signal);
        let code = tokio::time::timeout(
            self.timeout,
            run_to_completion(&target, kill_argv(&self.pid_file, signal)),
        )
        .await
        .map_err(|_| BackendError::Timeout {
            what: Deadline::DeliverSignal(signal),
            after: self.timeout,
        })??;
        sending.record_kill(code)
    }

    /// The exit status for `code`, as a signal where sshpod delivered that signal.
    pub(crate) fn exit_status(&self, code: i64) -> ExitStatus {
        self.delivered.exit_status(code)
    }
}

struct ExecControl {
    terminal: Terminal,
    signaller: Signaller,
    status: tokio::sync::Mutex<Option<tokio::sync::oneshot::Receiver<Status>>>,
    /// Drives the exec's WebSocket; dropping it ends the exec.
    _driver: remote::Driver,
}

impl ExecControl {
    async fn wait_exit(&self) -> Result<ExitStatus, BackendError> {
        let future = self.status.lock().await.take();
        let status = match future {
            Some(f) => f.await.ok(),
            None => None,
        };
        match status.as_ref().and_then(exit_code) {
            Some(code) => Ok(self.signaller.exit_status(code)),
            None => Err(without_exit_status(&self.signaller, status).await),
        }
    }
}

/// Why an exec ended without an exit code (a failure Status, or none at all), as the pod's
/// state tells it: the API server relays a runtime's failure the same way whether the pod
/// went or the runtime stumbled, and its socket ends the same way whether the pod stopped or
/// the API server restarted. An API server that does not answer is asked again for a while
/// (a restart takes seconds), never past the signal timeout.
async fn without_exit_status(signaller: &Signaller, status: Option<Status>) -> BackendError {
    // `Some` with what the API server said of the pod; `None` when it answered with an error
    // of its own (forbidden, say), which asking again would not change.
    let pods = signaller.pods.pods();
    let asking = async {
        loop {
            match pods.get_opt(&signaller.pod).await {
                Ok(pod) => return Some(pod),
                Err(kube::Error::Api(_)) => return None,
                Err(e) => {
                    tracing::debug!(
                        error = &e as &dyn std::error::Error,
                        "asking for the pod of an exec that ended without a status"
                    );
                    tokio::time::sleep(ASK_AGAIN).await;
                }
            }
        }
    };
    let bound = signaller.timeout.min(ASKING_AT_MOST);
    match tokio::time::timeout(bound, asking).await {
        Ok(Some(None)) => BackendError::Gone {
            what: Vanished::PodDeleted,
        },
        Ok(Some(Some(pod))) if pod.metadata.deletion_timestamp.is_some() => BackendError::Gone {
            what: Vanished::PodDeleted,
        },
        Ok(Some(Some(pod))) if !pod::container_running(&pod, &signaller.container) => {
            BackendError::Gone {
                what: Vanished::PodStopped,
            }
        }
        // The pod runs, or the API server did not say: the truth is that no status came.
        _ => BackendError::NoExitStatus {
            what: "the command".to_owned(),
            source: Some(match status.and_then(|s| s.message) {
                Some(message) => message.into(),
                None => "the API server's exec stream ended without a status".into(),
            }),
        },
    }
}

/// How long to wait before asking an API server that did not answer again.
const ASK_AGAIN: Duration = Duration::from_millis(500);
/// How long to go on asking, at most (the signal timeout, if shorter).
const ASKING_AT_MOST: Duration = Duration::from_secs(10);

impl ProcessControl for ExecControl {
    fn resize(&self, size: TerminalSize) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(self.terminal.resize(size))
    }

    fn signal(&self, signal: Signal) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(self.signaller.deliver(signal))
    }

    fn wait(&self) -> BoxFuture<'_, Result<ExitStatus, BackendError>> {
        Box::pin(self.wait_exit())
    }
}

/// Runs a helper command with no input and returns its exit code (its output is discarded).
pub(crate) async fn run_to_completion(
    target: &Target<'_>,
    argv: Vec<String>,
) -> Result<i64, BackendError> {
    let params = AttachParams {
        container: Some(target.container.to_owned()),
        stdin: false,
        stdout: true,
        stderr: true,
        tty: false,
        ..AttachParams::default()
    };
    let program = argv.first().cloned().unwrap_or_default();
    let mut attached = target
        .pods
        .pods()
        .exec(target.pod, argv, &params)
        .await
        .map_err(|e| BackendError::Exec {
            program: program.clone(),
            source: Box::new(e),
        })?;
    let drain = |reader: Option<tokio::io::ReadHalf<tokio::io::SimplexStream>>| async move {
        if let Some(mut reader) = reader {
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink).await;
        }
    };
    let status = attached.take_status();
    let (stdout, stderr) = (attached.stdout(), attached.stderr());
    let (_, _, status) = tokio::join!(drain(stdout), drain(stderr), async {
        match status {
            Some(f) => f.await,
            None => None,
        }
    });
    status
        .as_ref()
        .and_then(exit_code)
        .ok_or_else(|| BackendError::NoExitStatus {
            what: format!("`{program}`"),
            source: None,
        })
}
