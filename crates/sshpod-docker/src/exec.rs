//! Processes started with `docker exec`, and their controls.
//!
//! The Docker API cannot signal an exec'd process, so every process is started through the
//! `/bin/sh` wrapper of [`sshpod_core::wrapper`], and a signal is another exec running `kill`.
//! Processes without a terminal may have their stdin and stdout on FIFOs instead of the
//! engine's stream (see `local_streams`).

use std::time::Duration;

use bollard::exec::{CreateExecOptions, ResizeExecOptions};
use sshpod_core::wrapper::{kill_argv, pid_file_name, wrap_argv_after, DeliveredSignal};
use sshpod_core::{
    BackendError, BoxFuture, Deadline, ExitStatus, Process, ProcessControl, Signal, TerminalSize,
    TtySpec, Vanished,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::task::JoinHandle;

use crate::demux::demux;
use crate::engine::Engine;
use crate::hijack::{EngineReader, EngineStream, Hijacked};
use crate::local_streams::{ConnectionDir, Fifos, Stdout, NOT_VISIBLE};

/// Pipe size between the demultiplexer and the SSH channel: enough to keep the engine busy,
/// small enough to bound memory per session.
const PIPE_BYTES: usize = 256 * 1024;

/// A program to run, as the engine receives it.
pub(crate) struct ExecRequest<'a> {
    pub(crate) container_id: &'a str,
    pub(crate) argv: Vec<String>,
    /// `K=V` strings.
    pub(crate) env: Vec<String>,
    pub(crate) tty: Option<&'a TtySpec>,
    pub(crate) program_for_errors: String,
    pub(crate) exit_timeout: Duration,
    /// The `uid:gid` to run as (`identity`); `None` runs as the container's user.
    pub(crate) user: Option<String>,
    /// Shell code run before the program, after the FIFOs are opened (`identity`'s).
    pub(crate) prelude: String,
}

/// Starts a process in a running container. Without a terminal, and with `streams` (a
/// connection directory the engine sees), its stdin and stdout bypass the engine.
pub(crate) async fn start(
    engine: &Engine,
    req: ExecRequest<'_>,
    streams: Option<&ConnectionDir>,
) -> Result<Process, BackendError> {
    if let (None, Some(dir), Some(root)) = (req.tty, streams, engine.local_streams()) {
        match dir.fifos() {
            Ok(fifos) => {
                if let Some(process) = start_local(engine, &req, fifos).await? {
                    root.mark_proven();
                    return Ok(process);
                }
                root.fifos_unreachable();
            }
            Err(e) => tracing::warn!(
                error = &e as &dyn std::error::Error,
                "cannot make FIFOs; this process's streams go through the engine"
            ),
        }
    }
    start_through_engine(engine, req).await
}

/// A process whose every stream goes through the engine.
async fn start_through_engine(
    engine: &Engine,
    req: ExecRequest<'_>,
) -> Result<Process, BackendError> {
    let tty = req.tty.is_some();
    let (control, hijacked) = launch(engine, &req, None).await?;
    if let Some(t) = req.tty {
        // API 1.41 has no console size at create time: size the terminal right after start.
        // A process that already ended has no terminal left to size; that is no error.
        if let Err(e) = control.resize_now(t.size).await {
            tracing::debug!(
                error = &e as &dyn std::error::Error,
                "initial terminal size"
            );
        }
    }
    Ok(assemble(hijacked.reader, hijacked.writer, tty, control))
}

/// A process whose stdin and stdout are `fifos`; the engine carries its stderr. `None` when
/// the process's shell could not open them: the engine does not see the directory, and
/// nothing ran.
async fn start_local(
    engine: &Engine,
    req: &ExecRequest<'_>,
    mut fifos: Fifos,
) -> Result<Option<Process>, BackendError> {
    let (mut control, hijacked) = launch(engine, req, Some(&fifos.shell_prelude())).await?;
    let (err_w, err_r) = tokio::io::duplex(PIPE_BYTES);
    // Dropped when the engine's stream ends (the process exited), or with the task.
    let (exited_tx, exited) = tokio::sync::oneshot::channel::<()>();
    let mut output = AbortOnDrop(tokio::spawn(async move {
        let _exited = exited_tx;
        if let Err(e) = demux(hijacked.reader, tokio::io::sink(), err_w).await {
            tracing::debug!(
                error = &e as &dyn std::error::Error,
                "process output ended early"
            );
        }
    }));
    let handshake = async {
        tokio::select! {
            biased;
            marker = fifos.marker() => Some(marker),
            _ = &mut output.0 => None,
        }
    };
    let marker = tokio::time::timeout(req.exit_timeout, handshake)
        .await
        .map_err(|_| BackendError::Exec {
            program: req.program_for_errors.clone(),
            source: "the process did not start in time".into(),
        })?;
    control.demux_task = Some(output);
    let exec_error = |e: std::io::Error| BackendError::Exec {
        program: req.program_for_errors.clone(),
        source: Box::new(e),
    };
    let (stdin, stdout): (
        Box<dyn AsyncWrite + Send + Unpin>,
        Box<dyn AsyncRead + Send + Unpin>,
    ) = match marker {
        Some(marker) => {
            marker.map_err(exec_error)?;
            let ends = fifos.connect().map_err(exec_error)?;
            let ended = process_ended(control.engine.clone(), control.exec_id.clone(), exited);
            (
                Box::new(ends.stdin),
                Box::new(Stdout::new(ends.stdout, Box::pin(ended))),
            )
        }
        // Ended before the marker: either the FIFOs are not visible, or the shell itself
        // could not run; the latter is reported like any process's end.
        None => {
            if control.wait_exit_code().await? == NOT_VISIBLE {
                return Ok(None);
            }
            (Box::new(tokio::io::sink()), Box::new(tokio::io::empty()))
        }
    };
    Ok(Some(Process {
        stdin,
        stdout,
        stderr: Some(Box::new(err_r)),
        control: Box::new(control),
    }))
}

/// Resolves once the process has exited: after the engine's stream of it ended (`stream_ended`
/// resolves), when the engine says so. The stream also ends, process still running, when the
/// process closed its stderr; so the engine is asked, at a growing interval. Never resolves if
/// the engine cannot say: the process's output then ends only when its FIFO does.
async fn process_ended(
    engine: Engine,
    exec_id: String,
    stream_ended: tokio::sync::oneshot::Receiver<()>,
) {
    let _ = stream_ended.await;
    let mut pause = Duration::from_millis(2);
    loop {
        match engine.docker.inspect_exec(&exec_id).await {
            Ok(info) if info.running != Some(true) => return,
            Ok(_) => {}
            // The exec is gone with its container.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return,
            Err(e) => {
                tracing::debug!(
                    error = &e as &dyn std::error::Error,
                    "cannot tell whether a process ended; its output ends with its FIFO"
                );
                return std::future::pending().await;
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// Creates the exec for `req` and starts it. `fifo_prelude` is the shell code that puts the
/// process's stdin and stdout on FIFOs; without it, the engine carries them.
async fn launch(
    engine: &Engine,
    req: &ExecRequest<'_>,
    fifo_prelude: Option<&str>,
) -> Result<(ExecControl, Hijacked), BackendError> {
    let exec_error = |source: Box<dyn std::error::Error + Send + Sync>| BackendError::Exec {
        program: req.program_for_errors.clone(),
        source,
    };
    let pid_file = pid_file_name(rand::random());
    let tty = req.tty.is_some();
    let mut env = req.env.clone();
    if let Some(t) = req.tty {
        env.push(format!("TERM={}", t.term));
    }
    let prelude = format!("{}{}", fifo_prelude.unwrap_or(""), req.prelude);
    let cmd = wrap_argv_after(&prelude, req.argv.clone(), &pid_file, &[], req.tty);
    let created = engine
        .docker
        .create_exec(
            req.container_id,
            CreateExecOptions {
                attach_stdin: Some(fifo_prelude.is_none()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                tty: Some(tty),
                env: Some(env),
                cmd: Some(cmd),
                user: req.user.clone(),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| exec_error(Box::new(e)))?;
    let exec_id = created.id;
    let body = format!(r#"{{"Detach":false,"Tty":{tty}}}"#);
    let hijacked = engine
        .hijack(&format!("/exec/{exec_id}/start"), &body)
        .await
        .map_err(|e| exec_error(Box::new(e)))?;
    let control = ExecControl {
        engine: engine.clone(),
        container_id: req.container_id.to_owned(),
        exec_id,
        pid_file,
        delivered: DeliveredSignal::default(),
        exit_timeout: req.exit_timeout,
        demux_task: None,
        user: req.user.clone(),
    };
    Ok((control, hijacked))
}

/// Builds the process's streams from a hijacked connection: raw with a TTY, demultiplexed
/// without.
pub(crate) fn assemble<C: ProcessControl + DemuxOwner + 'static>(
    reader: EngineReader,
    writer: tokio::io::WriteHalf<EngineStream>,
    tty: bool,
    mut control: C,
) -> Process {
    if tty {
        return Process {
            stdin: Box::new(writer),
            stdout: Box::new(reader),
            stderr: None,
            control: Box::new(control),
        };
    }
    let (out_w, out_r) = tokio::io::duplex(PIPE_BYTES);
    let (err_w, err_r) = tokio::io::duplex(PIPE_BYTES);
    // Owned by the control: aborted when the process handle is dropped.
    let task = tokio::spawn(async move {
        if let Err(e) = demux(reader, out_w, err_w).await {
            tracing::debug!(
                error = &e as &dyn std::error::Error,
                "process output ended early"
            );
        }
    });
    control.set_demux_task(AbortOnDrop(task));
    Process {
        stdin: Box::new(writer),
        stdout: Box::new(out_r),
        stderr: Some(Box::new(err_r)),
        control: Box::new(control),
    }
}

/// A task that ends with its owner.
pub(crate) struct AbortOnDrop(pub(crate) JoinHandle<()>);

impl AbortOnDrop {
    /// Waits for the task to end.
    pub(crate) async fn finished(&mut self) {
        let _ = (&mut self.0).await;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Lets `assemble` hand the demultiplexer task to the control that outlives it.
pub(crate) trait DemuxOwner {
    fn set_demux_task(&mut self, task: AbortOnDrop);
}

struct ExecControl {
    engine: Engine,
    container_id: String,
    exec_id: String,
    pid_file: String,
    delivered: DeliveredSignal,
    exit_timeout: Duration,
    demux_task: Option<AbortOnDrop>,
    /// The user the process runs as (`identity`), whom its signals are sent as.
    user: Option<String>,
}

impl DemuxOwner for ExecControl {
    fn set_demux_task(&mut self, task: AbortOnDrop) {
        self.demux_task = Some(task);
    }
}

impl ExecControl {
    async fn resize_now(&self, size: TerminalSize) -> Result<(), BackendError> {
        self.engine
            .docker
            .resize_exec(
                &self.exec_id,
                ResizeExecOptions {
                    height: size.rows,
                    width: size.cols,
                },
            )
            .await
            .map_err(|e| BackendError::Engine(Box::new(e)))
    }

    async fn deliver(&self, signal: Signal) -> Result<(), BackendError> {
        let argv = kill_argv(&self.pid_file, signal);
        let sending = self.delivered.sending(signal);
        let code = run_to_completion(
            &self.engine,
            &self.container_id,
            argv,
            self.user.as_deref(),
            self.exit_timeout,
        )
        .await?;
        sending.record_kill(code)
    }

    async fn wait_exit_code(&self) -> Result<i64, BackendError> {
        wait_exec_exit(&self.engine, &self.exec_id, self.exit_timeout).await
    }

    async fn wait_exit(&self) -> Result<ExitStatus, BackendError> {
        let code = self.wait_exit_code().await?;
        Ok(self.delivered.exit_status(code))
    }
}

impl ProcessControl for ExecControl {
    fn resize(&self, size: TerminalSize) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(self.resize_now(size))
    }

    fn signal(&self, signal: Signal) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(self.deliver(signal))
    }

    fn wait(&self) -> BoxFuture<'_, Result<ExitStatus, BackendError>> {
        Box::pin(self.wait_exit())
    }
}

/// Waits until the engine reports the exec finished and returns its exit code. The output
/// stream has already ended when this is called, so the engine knows the answer or is about
/// to; there is no event for it, so ask again with a growing pause, within `timeout`.
pub(crate) async fn wait_exec_exit(
    engine: &Engine,
    exec_id: &str,
    timeout: Duration,
) -> Result<i64, BackendError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        let info = match engine.docker.inspect_exec(exec_id).await {
            Ok(info) => info,
            // The exec is gone with its container: say that, not "engine unavailable".
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                return Err(BackendError::Gone {
                    what: Vanished::ContainerStopped,
                })
            }
            Err(e) => return Err(BackendError::Engine(Box::new(e))),
        };
        if info.running != Some(true) {
            return Ok(info.exit_code.unwrap_or(255));
        }
        if tokio::time::Instant::now() + pause > deadline {
            return Err(BackendError::Timeout {
                what: Deadline::ExitStatus,
                after: timeout,
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Runs a short helper command (no stdin, output discarded) and returns its exit code.
pub(crate) async fn run_to_completion(
    engine: &Engine,
    container_id: &str,
    argv: Vec<String>,
    user: Option<&str>,
    timeout: Duration,
) -> Result<i64, BackendError> {
    let program = argv.join(" ");
    let work = async {
        let created = engine
            .docker
            .create_exec(
                container_id,
                CreateExecOptions {
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(argv),
                    user: user.map(str::to_owned),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| BackendError::Exec {
                program: program.clone(),
                source: Box::new(e),
            })?;
        let mut hijacked = engine
            .hijack(
                &format!("/exec/{}/start", created.id),
                r#"{"Detach":false,"Tty":false}"#,
            )
            .await
            .map_err(|e| BackendError::Exec {
                program: program.clone(),
                source: Box::new(e),
            })?;
        let mut sink = Vec::new();
        let _ = hijacked.reader.read_to_end(&mut sink).await;
        wait_exec_exit(engine, &created.id, timeout).await
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(BackendError::Timeout {
            what: Deadline::Command { program },
            after: timeout,
        }),
    }
}
