//! Telling a listening helper what to do, the same way on every backend: the command lines
//! its stdin reads (`refuse N`, `close N`, `stop`), the task that writes them, and the taken
//! connection that, dropped while its helper still relays (the client is gone, the process
//! inside keeps the connection open), has the listener close it inside, as sshd closes the
//! socket of a closed channel. Without that, a container or pod that outlives the SSH
//! connection (`mode: user`, `persistent`) would keep every such helper running.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

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
    pub fn taken<S: WindDown>(&self, stream: S, id: u64) -> TakenStream<S> {
        TakenStream {
            stream: Some(stream),
            id,
            commands: self.commands.clone(),
        }
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

/// A connection taken from a listener. Dropped, it winds its helper down and, if the helper
/// still relays after [`CLOSE_GRACE`], has the listener close the connection inside.
#[derive(Debug)]
pub struct TakenStream<S: WindDown> {
    /// `None` once dropped.
    stream: Option<S>,
    id: u64,
    commands: mpsc::Sender<ListenerCommand>,
}

impl<S: WindDown> Drop for TakenStream<S> {
    fn drop(&mut self) {
        let (Some(stream), Ok(runtime)) =
            (self.stream.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let (id, commands) = (self.id, self.commands.clone());
        runtime.spawn(async move {
            if !stream.wind_down(CLOSE_GRACE).await {
                let _ = commands.send(ListenerCommand::Close(id)).await;
            }
        });
    }
}

fn dropped() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "the connection was closed",
    )
}

impl<S: WindDown> AsyncRead for TakenStream<S> {
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

impl<S: WindDown> AsyncWrite for TakenStream<S> {
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
