//! A session proxied upstream: one session channel on the upstream connection per session
//! channel of the client, its requests replayed there, its output and its end passed back as a
//! [`Process`].

use std::sync::Arc;

use bytes::Bytes;
use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig};
use sshpod_core::{
    BackendError, BoxFuture, Command, ExitStatus, Lifecycle, Process, ProcessControl, ProcessSpec,
    Signal, TerminalSize,
};
use sshpod_russh::signals;
use tokio::io::{simplex, AsyncWriteExt, WriteHalf};
use tokio::sync::watch;

use crate::connect::Upstream;
use crate::forward::AGENT_ON_UPSTREAM;

/// How much of a stream's output waits for the server to read it before the channel's
/// messages back up (and, through russh's buffer, the upstream connection).
const STREAM_BUFFER: usize = 64 * 1024;

/// Variables the server sets for a container's process that an upstream sshd sets itself,
/// from the connection it sees.
const SET_UPSTREAM: &[&str] = &["SSH_CLIENT", "SSH_CONNECTION"];

/// Opens a session channel upstream and starts `spec` in it, with `environment` (from the
/// webhooks) before the client's own variables.
pub(crate) async fn start(
    upstream: &Upstream,
    spec: ProcessSpec,
    environment: &[(String, String)],
    lifecycle: &Lifecycle,
) -> Result<Process, BackendError> {
    let program = match &spec.command {
        Command::Shell => "a shell".to_owned(),
        Command::Exec(line) => format!("`{line}`"),
        Command::Subsystem(name) => format!("the {name} subsystem"),
    };
    let refused = |cause: Box<dyn std::error::Error + Send + Sync>| BackendError::Upstream {
        reason: format!("the SSH server behind this one could not start {program}"),
        source: Some(cause),
    };
    let failed = |error: russh::Error| refused(Box::new(error));
    let channel = upstream.channel_open_session().await.map_err(failed)?;
    if let Some(tty) = &spec.tty {
        // The terminal modes are not replayed: sshpod has turned them into `stty` arguments
        // for containers, and the upstream sshd's defaults serve a proxied terminal well.
        channel
            .request_pty(
                false,
                &tty.term,
                u32::from(tty.size.cols),
                u32::from(tty.size.rows),
                0,
                0,
                &[],
            )
            .await
            .map_err(failed)?;
    }
    // The client forwarded its agent to this session: the upstream server makes the socket.
    let agent = spec
        .env
        .iter()
        .any(|(name, value)| name == "SSH_AUTH_SOCK" && value == AGENT_ON_UPSTREAM);
    if agent {
        channel.agent_forward(false).await.map_err(failed)?;
    }
    // The client forwards X11 to this session: the upstream server makes the display and
    // writes the client's cookie, as it would for the client itself.
    if let Some(x11) = &spec.x11 {
        channel
            .request_x11(
                true,
                x11.single_connection,
                x11.protocol.as_str(),
                x11.cookie.as_str(),
                x11.screen,
            )
            .await
            .map_err(failed)?;
    }
    let variables = environment.iter().chain(&spec.env);
    let set_upstream = |name: &str| SET_UPSTREAM.contains(&name) || name == "SSH_AUTH_SOCK";
    for (name, value) in variables.filter(|(name, _)| !set_upstream(name)) {
        // No reply asked: the upstream sshd's AcceptEnv decides, as it would for the client.
        channel
            .set_env(false, name.as_str(), value.as_str())
            .await
            .map_err(failed)?;
    }
    match &spec.command {
        Command::Shell => channel.request_shell(true).await,
        Command::Exec(line) => channel.exec(true, line.as_bytes()).await,
        Command::Subsystem(name) => channel.request_subsystem(true, name.as_str()).await,
    }
    .map_err(failed)?;
    let (mut reader, writer) = channel.split();
    // What arrives before the answers (nothing, from OpenSSH) is kept for the output. They come
    // in the order of the requests: X11's first, if asked.
    let mut early = Vec::new();
    let closed = || refused("it closed the channel".into());
    if spec.x11.is_some() {
        let granted = answer(&mut reader, &mut early).await.ok_or_else(closed)?;
        if !granted {
            // As OpenSSH's client says it; the session runs on without a display.
            tracing::info!("the SSH server behind this one refused X11 forwarding");
            let line = if spec.tty.is_some() { "\r\n" } else { "\n" };
            early.push(ChannelMsg::ExtendedData {
                data: Bytes::from(format!("{X11_REFUSED}{line}")),
                ext: 1,
            });
        }
    }
    if !answer(&mut reader, &mut early).await.ok_or_else(closed)? {
        return Err(refused("it refused the request".into()));
    }
    let (stdout_reader, stdout) = simplex(STREAM_BUFFER);
    let (stderr_reader, stderr) = simplex(STREAM_BUFFER);
    let (status_tx, status) = watch::channel(None);
    let writer = Arc::new(writer);
    let pump = Pump {
        stdout: Some(stdout),
        stderr: Some(stderr),
        merge_stderr: spec.tty.is_some(),
        exit: None,
    };
    let token = lifecycle.token().clone();
    lifecycle.spawn(async move {
        let ended = tokio::select! {
            ended = pump.run(early, reader) => ended,
            () = token.cancelled() => Err("sshpod is shutting down".to_owned()),
        };
        let _ = status_tx.send(Some(ended));
    });
    Ok(Process {
        stdin: Box::new(writer.make_writer()),
        stdout: Box::new(stdout_reader),
        stderr: spec
            .tty
            .is_none()
            .then(|| Box::new(stderr_reader) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        control: Box::new(Control { writer, status }),
    })
}

/// What the user reads when the upstream server refuses a session's X11 forwarding.
const X11_REFUSED: &str = "sshpod: the SSH server behind this one refused X11 forwarding";

/// Waits for the upstream server's answer to the next request that wanted one: whether it
/// granted it, `None` if the channel closed. Other messages are kept in `early`.
async fn answer(reader: &mut ChannelReadHalf, early: &mut Vec<ChannelMsg>) -> Option<bool> {
    loop {
        match reader.wait().await {
            Some(ChannelMsg::Success) => return Some(true),
            Some(ChannelMsg::Failure) => return Some(false),
            Some(ChannelMsg::Close) | None => return None,
            Some(message) => early.push(message),
        }
    }
}

/// Carries an upstream channel's messages to the process's output streams and records how it
/// ended.
struct Pump {
    stdout: Option<WriteHalf<tokio::io::SimplexStream>>,
    stderr: Option<WriteHalf<tokio::io::SimplexStream>>,
    /// With a terminal there is no separate stderr: anything upstream sends there joins stdout.
    merge_stderr: bool,
    exit: Option<ExitStatus>,
}

impl Pump {
    async fn run(
        mut self,
        early: Vec<ChannelMsg>,
        mut reader: ChannelReadHalf,
    ) -> Result<ExitStatus, String> {
        for message in early {
            self.take(message).await;
        }
        while let Some(message) = reader.wait().await {
            if matches!(message, ChannelMsg::Close) {
                break;
            }
            self.take(message).await;
        }
        self.end_output().await;
        self.exit
            .ok_or_else(|| "the upstream channel closed without an exit status".to_owned())
    }

    async fn take(&mut self, message: ChannelMsg) {
        match message {
            ChannelMsg::Data { data } => write(&mut self.stdout, data).await,
            ChannelMsg::ExtendedData { data, ext: 1 } if self.merge_stderr => {
                write(&mut self.stdout, data).await;
            }
            ChannelMsg::ExtendedData { data, ext: 1 } => write(&mut self.stderr, data).await,
            ChannelMsg::Eof => self.end_output().await,
            ChannelMsg::ExitStatus { exit_status } => {
                self.exit = Some(ExitStatus::Code(exit_status));
            }
            ChannelMsg::ExitSignal { signal_name, .. } => {
                self.exit = Some(exit_by_signal(&signal_name));
            }
            _ => {}
        }
    }

    async fn end_output(&mut self) {
        for stream in [&mut self.stdout, &mut self.stderr] {
            if let Some(mut writer) = stream.take() {
                let _ = writer.shutdown().await;
            }
        }
    }
}

/// Writes to an output stream; a stream the server stopped reading takes nothing more.
async fn write(stream: &mut Option<WriteHalf<tokio::io::SimplexStream>>, data: Bytes) {
    if let Some(writer) = stream {
        if writer.write_all(&data).await.is_err() {
            *stream = None;
        }
    }
}

/// How a process that died of `signal` upstream ended. A signal sshpod cannot name to the
/// client (one outside RFC 4254's list) ends it with status 255, as OpenSSH's client exits.
pub(crate) fn exit_by_signal(signal: &Sig) -> ExitStatus {
    signals::from_sig(signal).map_or(ExitStatus::Code(255), ExitStatus::Signal)
}

/// Resize, signal and wait, as channel requests upstream.
struct Control {
    writer: Arc<ChannelWriteHalf<Msg>>,
    status: watch::Receiver<Option<Result<ExitStatus, String>>>,
}

impl ProcessControl for Control {
    fn resize(&self, size: TerminalSize) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            self.writer
                .window_change(u32::from(size.cols), u32::from(size.rows), 0, 0)
                .await
                .map_err(|e| BackendError::Refused {
                    what: "changing the terminal size upstream",
                    source: Box::new(e),
                })
        })
    }

    fn signal(&self, signal: Signal) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            self.writer
                .signal(signals::to_sig(signal))
                .await
                .map_err(|e| BackendError::Refused {
                    what: "passing the signal upstream",
                    source: Box::new(e),
                })
        })
    }

    fn wait(&self) -> BoxFuture<'_, Result<ExitStatus, BackendError>> {
        let mut status = self.status.clone();
        Box::pin(async move {
            let ended = match status.wait_for(Option::is_some).await {
                Ok(ended) => ended.clone(),
                // The pump is gone without a word: the runtime is shutting down.
                Err(_) => None,
            };
            match ended {
                Some(Ok(status)) => Ok(status),
                Some(Err(reason)) => Err(BackendError::NoExitStatus {
                    what: "the command".to_owned(),
                    source: Some(reason.into()),
                }),
                None => Err(BackendError::NoExitStatus {
                    what: "the command".to_owned(),
                    source: None,
                }),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_map_both_ways() {
        for signal in Signal::ALL {
            assert_eq!(
                exit_by_signal(&signals::to_sig(signal)),
                ExitStatus::Signal(signal)
            );
        }
        // A name the client cannot be told about still ends the process, as OpenSSH's client.
        assert_eq!(
            exit_by_signal(&Sig::Custom("SYS".to_owned())),
            ExitStatus::Code(255)
        );
    }
}
