//! Telling a helper what to do, the same way on every backend: the command lines a listening
//! helper's stdin reads (`refuse N`, `close N`, `stop`), the task that writes them, and the
//! forwarded connection that, dropped while its helper still relays (the client is gone, the
//! process inside keeps the connection open), is closed inside, as sshd closes the socket of a
//! closed channel: a taken connection by the listener (`close N`), a dialled Unix socket by
//! its helper's close socket (`sshpod-agent close PATH`). Without that, a container or pod
//! that outlives the SSH connection (`mode: user`, `persistent`) would keep every such helper
//! running.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::{BoxFuture, MAX_REPORT_LINE};

/// Commands waiting for the helper's stdin.
const COMMANDS_QUEUED: usize = 64;

/// How long a dropped connection's helper may take to end by itself (it relayed everything
/// and the process inside closed too) before the listener closes the connection inside.
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// A line for a listening helper's stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerCommand {
    /// Closes a parked connection nobody will take.
    Refuse(u64),
    /// Closes a taken connection whose client side is gone.
    Close(u64),
    /// Stops listening; the helper exits once its connections have ended.
    Stop,
}

impl ListenerCommand {
    /// The line the helper reads.
    pub fn line(self) -> String {
        match self {
            ListenerCommand::Refuse(id) => format!("refuse {id}\n"),
            ListenerCommand::Close(id) => format!("close {id}\n"),
            ListenerCommand::Stop => "stop\n".to_owned(),
        }
    }
}

/// A helper's stream of one forwarded connection that can be let go gently.
pub trait WindDown: AsyncRead + AsyncWrite + Send + Unpin + 'static {
    /// Ends the helper's input (after what was written) and waits up to `grace` for the
    /// helper to end; whether it did.
    fn wind_down(self, grace: Duration) -> impl Future<Output = bool> + Send;
}

/// A listener's side of its helper's stdin. Dropping it tells the helper to stop listening;
/// the input stays open while connections taken from it live, so they can still be closed.
#[derive(Debug)]
pub struct ListenerControl {
    commands: mpsc::Sender<ListenerCommand>,
    _stop: DropGuard,
}

impl ListenerControl {
    /// A control writing to `stdin`, and the work that writes: run it on its own task. It ends
    /// once the control and every connection taken through it are gone (or the helper's input
    /// fails), with `stdin` shut down.
    pub fn new<W>(stdin: W) -> (Self, impl Future<Output = ()> + Send)
    where
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let (commands, queued) = mpsc::channel(COMMANDS_QUEUED);
        let stop = CancellationToken::new();
        let writing = write_commands(stdin, queued, stop.clone());
        let control = ListenerControl {
            commands,
            _stop: stop.drop_guard(),
        };
        (control, writing)
    }

    /// Closes parked connection `id` nobody will take.
    pub fn refuse(&self, id: u64) {
        // A full queue means the helper is not reading: its connections die with it anyway.
        let _ = self.commands.try_send(ListenerCommand::Refuse(id));
    }

    /// Wraps the stream of taken connection `id`, so that dropping it closes the connection
    /// inside if its helper does not end by itself.
    pub fn taken<S: WindDown>(&self, stream: S, id: u64) -> ClosedOnDrop<S> {
        let commands = self.commands.clone();
        ClosedOnDrop::new(stream, move || {
            Box::pin(async move {
                let _ = commands.send(ListenerCommand::Close(id)).await;
            })
        })
    }
}

async fn write_commands<W>(
    mut stdin: W,
    mut queued: mpsc::Receiver<ListenerCommand>,
    stopping: CancellationToken,
) where
    W: AsyncWrite + Send + Unpin,
{
    let mut stopped = false;
    loop {
        let command = tokio::select! {
            // What was asked before the stop goes first.
            biased;
            command = queued.recv() => match command {
                Some(command) => command,
                None if !stopped => {
                    stopped = true;
                    ListenerCommand::Stop
                }
                None => break,
            },
            () = stopping.cancelled(), if !stopped => {
                stopped = true;
                ListenerCommand::Stop
            }
        };
        if stdin.write_all(command.line().as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stdin.shutdown().await;
}

/// What closes a forwarded connection inside, once.
type CloseInside = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

/// A forwarded connection's stream. Dropped, it winds its helper down and, if the helper
/// still relays after [`CLOSE_GRACE`], closes the connection inside.
pub struct ClosedOnDrop<S: WindDown> {
    /// `None` once dropped.
    stream: Option<S>,
    close_inside: Option<CloseInside>,
}

impl<S: WindDown> ClosedOnDrop<S> {
    /// `stream`, whose connection `close_inside` closes inside.
    pub fn new(
        stream: S,
        close_inside: impl FnOnce() -> BoxFuture<'static, ()> + Send + 'static,
    ) -> Self {
        ClosedOnDrop {
            stream: Some(stream),
            close_inside: Some(Box::new(close_inside)),
        }
    }
}

impl<S: WindDown> std::fmt::Debug for ClosedOnDrop<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClosedOnDrop").finish_non_exhaustive()
    }
}

impl<S: WindDown> Drop for ClosedOnDrop<S> {
    fn drop(&mut self) {
        let (Some(stream), Some(close_inside), Ok(runtime)) = (
            self.stream.take(),
            self.close_inside.take(),
            tokio::runtime::Handle::try_current(),
        ) else {
            return;
        };
        runtime.spawn(async move {
            if !stream.wind_down(CLOSE_GRACE).await {
                close_inside().await;
            }
        });
    }
}

/// Reads what a dialling helper (`sshpod-agent dial-unix`) writes after its ready byte:
/// `close PATH`, the socket that closes its connection inside. Reads byte by byte, so that
/// none of the connection's data that follows is taken; `None` for anything else.
pub async fn read_close_path<R: AsyncRead + Unpin>(output: &mut R) -> Option<String> {
    let mut line = Vec::new();
    while line.len() < MAX_REPORT_LINE as usize {
        match output.read_u8().await.ok()? {
            b'\n' => return parse_close_path(std::str::from_utf8(&line).ok()?),
            byte => line.push(byte),
        }
    }
    None
}

fn parse_close_path(line: &str) -> Option<String> {
    let path = line.strip_prefix("close ")?;
    (path.starts_with('/') && !path.contains(char::is_whitespace)).then(|| path.to_owned())
}

fn dropped() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "the connection was closed",
    )
}

impl<S: WindDown> AsyncRead for ClosedOnDrop<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.stream.as_mut() {
            Some(stream) => Pin::new(stream).poll_read(cx, buf),
            None => Poll::Ready(Err(dropped())),
        }
    }
}

impl<S: WindDown> AsyncWrite for ClosedOnDrop<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.stream.as_mut() {
            Some(stream) => Pin::new(stream).poll_write(cx, buf),
            None => Poll::Ready(Err(dropped())),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.stream.as_mut() {
            Some(stream) => Pin::new(stream).poll_flush(cx),
            None => Poll::Ready(Err(dropped())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.stream.as_mut() {
            Some(stream) => Pin::new(stream).poll_shutdown(cx),
            None => Poll::Ready(Err(dropped())),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, DuplexStream};

    use super::*;

    #[test]
    fn commands_are_the_lines_the_helper_reads() {
        assert_eq!(ListenerCommand::Refuse(3).line(), "refuse 3\n");
        assert_eq!(ListenerCommand::Close(12).line(), "close 12\n");
        assert_eq!(ListenerCommand::Stop.line(), "stop\n");
    }

    /// A helper's stream whose helper ends by itself, or not.
    struct Helper {
        io: DuplexStream,
        ends: bool,
    }

    impl WindDown for Helper {
        async fn wind_down(self, grace: Duration) -> bool {
            if !self.ends {
                tokio::time::sleep(grace).await;
            }
            self.ends
        }
    }

    impl AsyncRead for Helper {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.io).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Helper {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Pin::new(&mut self.io).poll_write(cx, buf)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.io).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.io).poll_shutdown(cx)
        }
    }

    fn helper(ends: bool) -> Helper {
        Helper {
            io: tokio::io::duplex(64).0,
            ends,
        }
    }

    /// Everything the helper's stdin received until it was shut down.
    async fn received(mut stdin: DuplexStream) -> String {
        let mut all = String::new();
        match stdin.read_to_string(&mut all).await {
            Ok(_) => all,
            Err(e) => panic!("reading the helper's input: {e}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_listener_stops_its_helper_and_ends_its_input() {
        let (ours, theirs) = tokio::io::duplex(1024);
        let (control, writing) = ListenerControl::new(ours);
        let writing = tokio::spawn(writing);
        control.refuse(4);
        drop(control);
        assert_eq!(received(theirs).await, "refuse 4\nstop\n");
        assert!(writing.await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_still_relayed_when_dropped_is_closed_inside() {
        let (ours, theirs) = tokio::io::duplex(1024);
        let (control, writing) = ListenerControl::new(ours);
        tokio::spawn(writing);
        let (stuck, finished) = (
            control.taken(helper(false), 7),
            control.taken(helper(true), 8),
        );
        drop(control);
        drop(finished);
        drop(stuck);
        // The input stays open until both dropped connections are settled: only the one
        // whose helper did not end is closed.
        assert_eq!(received(theirs).await, "stop\nclose 7\n");
    }

    #[tokio::test(start_paused = true)]
    async fn a_dialled_connection_still_relayed_when_dropped_is_closed_inside() {
        let (closed_tx, closed) = tokio::sync::oneshot::channel();
        let stuck = ClosedOnDrop::new(helper(false), move || {
            Box::pin(async move {
                let _ = closed_tx.send(());
            })
        });
        drop(stuck);
        assert!(closed.await.is_ok(), "closed inside");
        let (never_tx, never) = tokio::sync::oneshot::channel::<()>();
        let finished = ClosedOnDrop::new(helper(true), move || {
            Box::pin(async move {
                let _ = never_tx.send(());
            })
        });
        drop(finished);
        assert!(never.await.is_err(), "a helper that ended is left alone");
    }

    #[tokio::test]
    async fn the_close_path_is_read_without_taking_the_data_after_it() {
        let mut output: &[u8] = b"close /tmp/sshpod-9-a/close.sock\nHTTP/1.1 200";
        assert_eq!(
            read_close_path(&mut output).await.as_deref(),
            Some("/tmp/sshpod-9-a/close.sock")
        );
        assert_eq!(output, b"HTTP/1.1 200");
        for bad in [
            &b"close relative\n"[..],
            b"close /a b\n",
            b"closing /a\n",
            b"close /a",
            &[b'x'; 600],
        ] {
            let mut output = bad;
            assert_eq!(read_close_path(&mut output).await, None, "{bad:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_taken_stream_relays_until_dropped() {
        let (ours, _theirs) = tokio::io::duplex(1024);
        let (control, _writing) = ListenerControl::new(ours);
        let (near, mut far) = tokio::io::duplex(64);
        let mut taken = control.taken(
            Helper {
                io: near,
                ends: true,
            },
            1,
        );
        let written = taken.write_all(b"ping").await;
        assert!(written.is_ok(), "{written:?}");
        let mut got = [0u8; 4];
        let read = far.read_exact(&mut got).await;
        assert!(read.is_ok(), "{read:?}");
        assert_eq!(&got, b"ping");
    }
}
