//! Running one session channel's process: start it in the container, move bytes both ways,
//! and report how it ended.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::FutureExt;

use russh::server::{Handle, Msg};
use russh::{ChannelId, ChannelWriteHalf, Sig};
use sshpod_core::{
    Backend, Container, ExitStatus, ProcessControl, ProcessSpec, ReadBuffer, Signal,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::server::connection::ConnectionState;
use crate::server::controls::Controls;
use crate::server::flow::{noting_a_long_wait, FlowGate};
use crate::server::input::{self, InputReceiver, OnEof};

/// Where the handler finds a running process's controls (resize, signal).
pub(crate) type ControlSlot = Arc<OnceLock<Controls>>;

/// Everything a session task needs.
pub(crate) struct SessionTask<B: Backend> {
    pub(crate) conn: Arc<ConnectionState<B>>,
    pub(crate) channel: ChannelId,
    pub(crate) writer: ChannelWriteHalf<Msg>,
    pub(crate) handle: Handle,
    pub(crate) spec: ProcessSpec,
    pub(crate) input: InputReceiver,
    pub(crate) control: ControlSlot,
}

impl<B: Backend> SessionTask<B> {
    /// Runs until the process ends or the connection goes away.
    pub(crate) async fn run(self) {
        let conn = Arc::clone(&self.conn);
        let token = self.conn.token.clone();
        let channel = self.channel;
        let handle = self.handle.clone();
        tokio::select! {
            () = token.cancelled() => {}
            status = self.run_process() => {
                match status {
                    Ok(status) => report(&handle, channel, status).await,
                    Err(message) => {
                        let _ = handle
                            .extended_data(channel, 1, format!("sshpod: {message}\r\n").into_bytes())
                            .await;
                        let _ = handle.exit_status_request(channel, 1).await;
                    }
                }
                let _ = handle.eof(channel).await;
                let _ = handle.close(channel).await;
            }
        }
        conn.channel_finished(channel);
    }

    async fn run_process(self) -> Result<ExitStatus, String> {
        let container = self.conn.container().await?;
        let spec_has_tty = self.spec.tty.is_some();
        let process = container.exec(self.spec).await.map_err(|e| {
            tracing::warn!(error = &e as &dyn std::error::Error, "starting a process");
            e.to_string()
        })?;
        let control: Arc<dyn ProcessControl> = Arc::from(process.control);
        let (controls, worker) =
            Controls::start(Arc::clone(&control), Arc::clone(&self.conn.calls));
        let token = self.conn.token.clone();
        self.conn.spawn(async move {
            tokio::select! {
                () = token.cancelled() => {}
                () = worker => {}
            }
        });
        let _ = self.control.set(controls);

        let gate = &self.conn.gate;
        let on_eof = if spec_has_tty {
            OnEof::KeepOpen
        } else {
            OnEof::Close
        };
        let feed = input::pump(self.input, process.stdin, on_eof);
        let out = copy_to_channel(process.stdout, &self.writer, None, gate);
        let err = async {
            if let Some(stderr) = process.stderr {
                copy_to_channel(stderr, &self.writer, Some(1), gate).await;
            }
        };
        // Output decides when the session is over; input is abandoned at that point.
        let outputs = async { tokio::join!(out, err) };
        tokio::pin!(feed, outputs);
        tokio::select! {
            _ = &mut outputs => {}
            () = &mut feed => { outputs.await; }
        }
        control.wait().await.map_err(|e| {
            tracing::warn!(
                error = &e as &dyn std::error::Error,
                "reading the exit status"
            );
            e.to_string()
        })
    }
}

/// Copies process output to the channel (`ext` 1 is stderr). The channel writer waits for
/// the client's window (and, during a key exchange, for the exchange to end), so a slow
/// client slows the process down instead of filling memory; while a write waits, for
/// whatever reason, the flow gate keeps the client's socket read, because what it waits for
/// arrives there.
pub(crate) async fn copy_to_channel<R>(
    mut from: R,
    channel: &ChannelWriteHalf<Msg>,
    ext: Option<u32>,
    gate: &FlowGate,
) where
    R: AsyncRead + Unpin,
{
    let mut to = channel.make_writer_ext(ext);
    let mut buf = ReadBuffer::new(OUTPUT_CHUNK);
    loop {
        let n = match from.read(buf.space()).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(error = &e as &dyn std::error::Error, "output ended");
                break;
            }
        };
        if write_noting_waits(&mut to, buf.filled(n), gate)
            .await
            .is_err()
        {
            break;
        }
        buf.record(n);
    }
    let _ = to.flush().await;
}

/// Writes `data` to the channel. A write that cannot finish at once is marked as waiting on
/// the client for the flow gate, and one that waits long is mentioned in the log: then it is
/// the client, not the process, that is not taking data.
async fn write_noting_waits<W: AsyncWrite + Unpin>(
    to: &mut W,
    data: &[u8],
    gate: &FlowGate,
) -> std::io::Result<()> {
    let write = to.write_all(data);
    tokio::pin!(write);
    if let Some(result) = (&mut write).now_or_never() {
        return result;
    }
    let _waiting = gate.output_waiting();
    noting_a_long_wait(
        write,
        SLOW_CLIENT_NOTICE,
        || {
            tracing::info!(
                "the client has not taken this session's output for {}s; the process waits for it",
                SLOW_CLIENT_NOTICE.as_secs()
            )
        },
        || tracing::info!("the client takes output again"),
    )
    .await
}

/// A write to the client that waits this long is mentioned in the log.
const SLOW_CLIENT_NOTICE: Duration = Duration::from_secs(30);

/// Output is read and sent in pieces of up to this size (one SSH packet's worth).
const OUTPUT_CHUNK: usize = 32 * 1024;

/// Sends exit-status or exit-signal.
async fn report(handle: &Handle, channel: russh::ChannelId, status: ExitStatus) {
    match status {
        ExitStatus::Code(code) => {
            let _ = handle.exit_status_request(channel, code).await;
        }
        ExitStatus::Signal(signal) => {
            let _ = handle
                .exit_signal_request(
                    channel,
                    to_ssh_signal(signal),
                    false,
                    String::new(),
                    String::new(),
                )
                .await;
        }
    }
}

/// SSH's name for a signal.
pub(crate) fn to_ssh_signal(signal: Signal) -> Sig {
    match signal {
        Signal::Abrt => Sig::ABRT,
        Signal::Alrm => Sig::ALRM,
        Signal::Fpe => Sig::FPE,
        Signal::Hup => Sig::HUP,
        Signal::Ill => Sig::ILL,
        Signal::Int => Sig::INT,
        Signal::Kill => Sig::KILL,
        Signal::Pipe => Sig::PIPE,
        Signal::Quit => Sig::QUIT,
        Signal::Segv => Sig::SEGV,
        Signal::Term => Sig::TERM,
        Signal::Usr1 => Sig::USR1,
        Signal::Usr2 => Sig::Custom("USR2".to_owned()),
    }
}

/// The signal a client asked for, if sshpod knows it.
pub(crate) fn from_ssh_signal(sig: &Sig) -> Option<Signal> {
    Some(match sig {
        Sig::ABRT => Signal::Abrt,
        Sig::ALRM => Signal::Alrm,
        Sig::FPE => Signal::Fpe,
        Sig::HUP => Signal::Hup,
        Sig::ILL => Signal::Ill,
        Sig::INT => Signal::Int,
        Sig::KILL => Signal::Kill,
        Sig::PIPE => Signal::Pipe,
        Sig::QUIT => Signal::Quit,
        Sig::SEGV => Signal::Segv,
        Sig::TERM => Signal::Term,
        Sig::USR1 => Signal::Usr1,
        Sig::Custom(name) => return Signal::from_name(name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_output_write_that_waits_keeps_the_socket_read() {
        let gate = FlowGate::default();
        gate.held(crate::server::flow::HELD_LIMIT, false);
        let waker = futures_util::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(!gate.poll_open(&mut cx), "input at its limit");
        // A client that takes 16 bytes and then nothing (a closed window, a key exchange).
        let (mut to_client, mut client) = tokio::io::duplex(16);
        let data = [7u8; 64];
        let write = write_noting_waits(&mut to_client, &data, &gate);
        tokio::pin!(write);
        assert!((&mut write).now_or_never().is_none(), "the write waits");
        assert!(gate.poll_open(&mut cx), "so the socket is read");
        let mut got = vec![0u8; 64];
        let (written, read) = tokio::join!(write, client.read_exact(&mut got));
        written.unwrap();
        read.unwrap();
        assert!(
            !gate.poll_open(&mut cx),
            "done waiting: the limit holds again"
        );
    }

    #[test]
    fn every_signal_survives_the_round_trip() {
        for s in Signal::ALL {
            assert_eq!(from_ssh_signal(&to_ssh_signal(s)), Some(s));
        }
        assert_eq!(from_ssh_signal(&Sig::Custom("WINCH".into())), None);
    }
}
