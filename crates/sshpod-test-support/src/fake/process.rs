//! A fake process: a task on the fake's tracker running a [`Program`] on in-memory pipes,
//! and the [`ProcessControl`] that signals, resizes and waits for it.

use sshpod_core::{
    BackendError, BoxFuture, ExitStatus, Process, ProcessControl, Signal, TerminalSize,
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::programs::{Program, ProgramContext, ProgramIo};
use super::record::StateCell;

/// Bytes each pipe holds before the writer waits: small, so flow control shows in tests.
const PIPE_BYTES: usize = 64 * 1024;

/// What a process needs to run, besides the program.
pub(crate) struct Launch<'a> {
    /// For error messages.
    pub(crate) name: String,
    pub(crate) ctx: ProgramContext,
    pub(crate) tasks: &'a TaskTracker,
    /// Cancelled when the container closes: the process dies of SIGKILL.
    pub(crate) container_gone: CancellationToken,
    pub(crate) state: StateCell,
}

/// Starts `program` and returns its streams and controls.
pub(crate) fn start(program: Program, launch: Launch<'_>) -> Process {
    let (stdin, program_stdin) = tokio::io::duplex(PIPE_BYTES);
    let (program_stdout, stdout) = tokio::io::duplex(PIPE_BYTES);
    // With a terminal, stderr is merged into stdout, as the real backends do.
    let (program_stderr, stderr) = match launch.ctx.tty {
        Some(_) => (None, None),
        None => {
            let (w, r) = tokio::io::duplex(PIPE_BYTES);
            (Some(w), Some(r))
        }
    };
    let (signals, signal_rx) = mpsc::channel(8);
    // Unbounded so a resize never waits on a program that is not reading; a test sends few.
    let (resizes, resize_rx) = mpsc::unbounded_channel();
    let (exit_tx, exit) = watch::channel(None);
    let io = ProgramIo {
        stdin: program_stdin,
        stdout: program_stdout,
        stderr: program_stderr,
    };
    let tty = launch.ctx.tty.is_some();
    launch.state.update(|r| r.processes_running += 1);
    launch.tasks.spawn(run(
        program,
        io,
        launch.ctx,
        resize_rx,
        signal_rx,
        launch.container_gone,
        exit_tx,
        launch.state,
    ));
    Process {
        stdin: Box::new(stdin),
        stdout: Box::new(stdout),
        stderr: stderr.map(|s| Box::new(s) as _),
        control: Box::new(FakeControl {
            name: launch.name,
            tty,
            signals,
            resizes,
            exit,
        }),
    }
}

/// Runs the program until it ends, a signal ends it or its container closes; then closes its
/// pipes and publishes the exit status, in that order, so `wait` returns after the output.
#[allow(clippy::too_many_arguments)] // one call site, each argument a distinct piece
async fn run(
    program: Program,
    io: ProgramIo,
    ctx: ProgramContext,
    resizes: mpsc::UnboundedReceiver<TerminalSize>,
    mut signals: mpsc::Receiver<Signal>,
    container_gone: CancellationToken,
    exit: watch::Sender<Option<ExitStatus>>,
    state: StateCell,
) {
    let judge = program.clone();
    let mut work = Box::pin(program.run(io, ctx, resizes));
    let mut signals_open = true;
    let status = loop {
        tokio::select! {
            biased;
            status = &mut work => break status,
            () = container_gone.cancelled() => break ExitStatus::Signal(Signal::Kill),
            signal = signals.recv(), if signals_open => match signal {
                Some(signal) if judge.ends_on(signal) => break ExitStatus::Signal(signal),
                Some(_) => {}
                // The control is gone; the process runs on until it ends or its container goes.
                None => signals_open = false,
            },
        }
    };
    drop(work);
    exit.send_replace(Some(status));
    state.update(|r| r.processes_running -= 1);
}

/// Controls of a fake process.
struct FakeControl {
    name: String,
    tty: bool,
    signals: mpsc::Sender<Signal>,
    resizes: mpsc::UnboundedSender<TerminalSize>,
    exit: watch::Receiver<Option<ExitStatus>>,
}

impl ProcessControl for FakeControl {
    /// Without a terminal, or after the process ended, a resize does nothing.
    fn resize(&self, size: TerminalSize) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            if self.tty {
                let _ = self.resizes.send(size);
            }
            Ok(())
        })
    }

    /// A signal to a process that has ended is ignored.
    fn signal(&self, signal: Signal) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let _ = self.signals.send(signal).await;
            Ok(())
        })
    }

    fn wait(&self) -> BoxFuture<'_, Result<ExitStatus, BackendError>> {
        Box::pin(async move {
            let mut exit = self.exit.clone();
            let status = exit.wait_for(Option::is_some).await.map(|s| *s);
            match status {
                Ok(Some(status)) => Ok(status),
                // The task was dropped with the runtime before it ended.
                Ok(None) | Err(_) => Err(BackendError::Exec {
                    program: self.name.clone(),
                    source: "the fake process was dropped before it ended".into(),
                }),
            }
        })
    }
}
