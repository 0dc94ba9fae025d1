//! The exec and attach WebSocket (`v5.channel.k8s.io`, or `v4` where the API server offers
//! nothing newer), driven by sshpod instead of kube's `AttachedProcess`.
//!
//! kube still builds and sends the upgrade request, through the same client (authentication,
//! TLS, request counting): only the bytes after the upgrade are ours. Why not kube's loop:
//! it reads stdin in 4 KiB pieces and flushes the socket after each one (uploads ran at a
//! third of `kubectl exec`), copies every output frame into a pipe that the session then
//! copies out of again, and opens the socket with a 128 KiB read buffer that is zero-filled at
//! the first read (most of an idle session's memory). Here output frames are handed to the
//! session as they arrived, stdin goes out one frame per write, and the read buffer is small.
//!
//! Framing (pure, no I/O, in this file): one channel byte before every payload; 0 stdin,
//! 1 stdout, 2 stderr, 3 the final `Status`, 4 terminal sizes as JSON; v5 adds `ff <channel>`,
//! the end of one channel's data (sshpod sends it for stdin; with v4 the socket is closed).

use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::AttachParams;
use kube::Api;
use sshpod_core::TerminalSize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::PollSender;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// What an idle session's socket keeps, and the most one read from the TLS stream asks for:
/// tungstenite reserves a whole frame's length when its header arrives, then fills it in
/// reads of this size (a 32 KiB output frame takes four). Smaller saves memory per idle
/// session but costs reads on every frame of a bulk transfer.
const READ_BUFFER: usize = 8 * 1024;
/// The largest message accepted from the API server (it sends at most 32 KiB of output
/// per frame; the Status is small).
const MAX_MESSAGE: usize = 1024 * 1024;
/// Output frames held per stream before the socket is no longer read: a reader that does
/// not keep up slows the process down (through TCP), it does not fill memory.
const OUTPUT_FRAMES: usize = 4;
/// Input frames queued for the socket.
const INPUT_FRAMES: usize = 4;
/// Input is sent in frames of at most this many bytes (a write may be split).
const INPUT_FRAME: usize = 64 * 1024;
/// Terminal sizes queued for the socket.
const RESIZES: usize = 4;
/// An otherwise silent socket is pinged this often, so that proxies keep it open.
const PING_EVERY: Duration = Duration::from_secs(60);

/// Which subresource to open.
pub(crate) enum Subresource {
    /// `pods/exec` of this command line.
    Exec(Vec<String>),
    /// `pods/attach` to the container's main process.
    Attach,
}

/// The channel protocol the API server chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    V4,
    /// Has the close signal, so stdin can end while output still flows.
    V5,
}

/// An exec or attach in progress: its streams, its terminal and its final status.
pub(crate) struct Remote {
    pub(crate) stdin: Option<InputWriter>,
    pub(crate) stdout: Option<OutputReader>,
    pub(crate) stderr: Option<OutputReader>,
    /// Terminal sizes, when it has a terminal.
    pub(crate) resize: Option<mpsc::Sender<TerminalSize>>,
    /// The API server's final Status; resolves to `None` if the socket ended without one.
    pub(crate) status: Option<oneshot::Receiver<Status>>,
    /// The loop driving the socket; dropping it ends the exec.
    pub(crate) driver: Driver,
}

/// The task that drives the socket, aborted when dropped.
pub(crate) struct Driver(tokio::task::JoinHandle<()>);

impl Driver {
    /// Waits until the socket has ended (the process ended or the pod went).
    pub(crate) async fn finished(mut self) {
        let _ = (&mut self.0).await;
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Opens `what` on `pod` with kube's client and starts driving the socket.
pub(crate) async fn open(
    pods: &Api<Pod>,
    pod: &str,
    what: Subresource,
    params: &AttachParams,
) -> Result<Remote, kube::Error> {
    let request = kube::core::Request::new(pods.resource_url());
    let (built, name) = match what {
        Subresource::Exec(argv) => (request.exec(pod, argv, params), "exec"),
        Subresource::Attach => (request.attach(pod, params), "attach"),
    };
    let mut request = built.map_err(kube::Error::BuildRequest)?;
    request.extensions_mut().insert(name);
    let connection = pods.clone().into_client().connect(request).await?;
    let protocol = if connection.supports_stream_close() {
        Protocol::V5
    } else {
        Protocol::V4
    };
    // Framed anew with our configuration: nothing has been read from the socket yet.
    let io = connection.into_stream().into_inner();
    let socket = WebSocketStream::from_raw_socket(io, Role::Client, Some(config())).await;

    let (stdin_tx, stdin_rx) = mpsc::channel(INPUT_FRAMES);
    let output = |wanted: bool| wanted.then(|| mpsc::channel(OUTPUT_FRAMES));
    let (stdout_tx, stdout_rx) = output(params.stdout).unzip();
    let (stderr_tx, stderr_rx) = output(params.stderr).unzip();
    let (resize_tx, resize_rx) = params.tty.then(|| mpsc::channel(RESIZES)).unzip();
    let (status_tx, status_rx) = oneshot::channel();
    let driving = Driving {
        protocol,
        stdin: params.stdin.then_some(stdin_rx),
        stdout: stdout_tx,
        stderr: stderr_tx,
        resize: resize_rx,
        status: Some(status_tx),
    };
    let driver = Driver(tokio::spawn(driving.run(socket)));
    Ok(Remote {
        stdin: params.stdin.then(|| InputWriter::new(stdin_tx)),
        stdout: stdout_rx.map(OutputReader::new),
        stderr: stderr_rx.map(OutputReader::new),
        resize: resize_tx,
        status: Some(status_rx),
        driver,
    })
}

fn config() -> WebSocketConfig {
    let mut config = WebSocketConfig::default();
    config.read_buffer_size = READ_BUFFER;
    // Every frame goes out when it is written; nothing waits in a second buffer.
    config.write_buffer_size = 0;
    config.max_message_size = Some(MAX_MESSAGE);
    config.max_frame_size = Some(MAX_MESSAGE);
    config
}

/// The state of the loop that drives one socket.
struct Driving {
    protocol: Protocol,
    /// Frames to send on stdin; `None` once stdin has ended (or was not asked for).
    stdin: Option<mpsc::Receiver<Bytes>>,
    stdout: Option<mpsc::Sender<Bytes>>,
    stderr: Option<mpsc::Sender<Bytes>>,
    resize: Option<mpsc::Receiver<TerminalSize>>,
    status: Option<oneshot::Sender<Status>>,
}

impl Driving {
    /// Reads and writes at once: a write that waits (the API server not taking stdin while
    /// the process's output is not read) must never stop the reading, or both ends wait on
    /// each other. Reading decides when the exec is over.
    async fn run<S>(self, socket: WebSocketStream<S>)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let (sink, stream) = socket.split();
        let reading = read_output(stream, self.stdout, self.stderr, self.status);
        let writing = write_input(sink, self.protocol, self.stdin, self.resize);
        tokio::select! {
            () = reading => {}
            () = writing => {}
        }
        // Dropping the output senders ends the readers (after what they hold).
    }
}

/// Hands output to its readers, one frame at a time (a reader that does not keep up holds
/// the socket back), until the Status or the end of the socket.
async fn read_output<St>(
    mut stream: St,
    stdout: Option<mpsc::Sender<Bytes>>,
    stderr: Option<mpsc::Sender<Bytes>>,
    mut status: Option<oneshot::Sender<Status>>,
) where
    St: futures_util::Stream<Item = Result<Message, WsError>> + Unpin,
{
    while let Some(message) = stream.next().await {
        match message {
            Ok(Message::Binary(frame)) => match incoming(frame) {
                Incoming::Output(channel, data) => {
                    let reader = if channel == STDOUT { &stdout } else { &stderr };
                    if let Some(reader) = reader {
                        // Nobody reads that stream any more: the frame is dropped, and the
                        // socket is still read for the Status.
                        let _ = reader.send(data).await;
                    }
                }
                Incoming::Status(payload) => {
                    if let (Some(parsed), Some(tx)) = (status_of(&payload), status.take()) {
                        let _ = tx.send(parsed);
                    }
                    return;
                }
                Incoming::Ignored => {}
            },
            Ok(Message::Close(_)) => return,
            // Pings are answered by tungstenite itself.
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = &e as &dyn std::error::Error, "exec socket failed");
                return;
            }
        }
    }
}

/// Sends stdin, its end, terminal sizes and pings. Never returns: once the socket cannot be
/// written (or v4 closed it to end stdin), what is left to do is reading.
async fn write_input<Si>(
    mut sink: Si,
    protocol: Protocol,
    mut stdin: Option<mpsc::Receiver<Bytes>>,
    mut resize: Option<mpsc::Receiver<TerminalSize>>,
) where
    Si: futures_util::Sink<Message, Error = WsError> + Unpin,
{
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let message = tokio::select! {
            input = recv(&mut stdin), if stdin.is_some() => match input {
                Some(frame) => Message::Binary(frame),
                None => {
                    stdin = None;
                    match protocol {
                        Protocol::V5 => Message::Binary(close_signal(STDIN)),
                        // v4 has no way to end one channel: the whole socket closes.
                        Protocol::V4 => {
                            let _ = sink.close().await;
                            break;
                        }
                    }
                }
            },
            size = recv(&mut resize), if resize.is_some() => match size {
                Some(size) => Message::Binary(resize_frame(size)),
                None => {
                    resize = None;
                    continue;
                }
            },
            _ = ping.tick() => Message::Ping(Bytes::new()),
        };
        if sink.send(message).await.is_err() {
            break;
        }
    }
    std::future::pending::<()>().await;
}

/// The next item of a receiver that is there (the caller checks).
async fn recv<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// A frame from the API server, decoded.
#[derive(Debug, PartialEq)]
enum Incoming {
    /// Output on stdout (1) or stderr (2), never empty.
    Output(u8, Bytes),
    /// The Status on channel 3 (JSON).
    Status(Bytes),
    /// The empty frame sent first, or a channel sshpod does not read.
    Ignored,
}

fn incoming(frame: Bytes) -> Incoming {
    match frame.first() {
        Some(&channel @ (STDOUT | STDERR)) if frame.len() > 1 => {
            Incoming::Output(channel, frame.slice(1..))
        }
        Some(&STATUS) => Incoming::Status(frame.slice(1..)),
        _ => Incoming::Ignored,
    }
}

/// The API server's final Status (channel 3), if it is one. Its meaning (exit code or
/// failure) is read by `pod::exit_code`.
fn status_of(payload: &[u8]) -> Option<Status> {
    match serde_json::from_slice::<Status>(payload) {
        Ok(status) => Some(status),
        Err(e) => {
            tracing::debug!(
                error = &e as &dyn std::error::Error,
                "the exec's status is not a Status"
            );
            None
        }
    }
}

/// v5's end of one channel's data.
fn close_signal(channel: u8) -> Bytes {
    Bytes::from_static(match channel {
        STDIN => &[CLOSE, STDIN],
        _ => &[CLOSE, RESIZE],
    })
}

/// A terminal size on channel 4, as the API server reads it.
fn resize_frame(size: TerminalSize) -> Bytes {
    let json = format!("{{\"Width\":{},\"Height\":{}}}", size.cols, size.rows);
    let mut frame = Vec::with_capacity(json.len() + 1);
    frame.push(RESIZE);
    frame.extend_from_slice(json.as_bytes());
    frame.into()
}

/// The process's stdin: every write becomes one frame (split above [`INPUT_FRAME`]), handed
/// to the loop; shutting it down ends the process's input.
pub(crate) struct InputWriter {
    tx: PollSender<Bytes>,
}

impl InputWriter {
    fn new(tx: mpsc::Sender<Bytes>) -> Self {
        Self {
            tx: PollSender::new(tx),
        }
    }
}

fn gone() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the exec has ended")
}

impl AsyncWrite for InputWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(this.tx.poll_reserve(cx)).map_err(|_| gone())?;
        let data = &data[..data.len().min(INPUT_FRAME)];
        let mut frame = Vec::with_capacity(data.len() + 1);
        frame.push(STDIN);
        frame.extend_from_slice(data);
        this.tx.send_item(frame.into()).map_err(|_| gone())?;
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        // The loop sends each frame as soon as it has it.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.get_mut().tx.close();
        Poll::Ready(Ok(()))
    }
}

/// One output stream: the frames as they arrived, read out in order; EOF once the socket
/// has ended.
pub(crate) struct OutputReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl OutputReader {
    fn new(rx: mpsc::Receiver<Bytes>) -> Self {
        Self {
            rx,
            current: Bytes::new(),
        }
    }
}

impl AsyncRead for OutputReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.current.is_empty() {
            match ready!(this.rx.poll_recv(cx)) {
                Some(frame) => this.current = frame,
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = this.current.len().min(buf.remaining());
        buf.put_slice(&this.current.split_to(n));
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[test]
    fn frames_are_decoded_by_channel() {
        assert_eq!(
            incoming(Bytes::from_static(b"\x01out")),
            Incoming::Output(1, Bytes::from_static(b"out"))
        );
        assert_eq!(
            incoming(Bytes::from_static(b"\x02err")),
            Incoming::Output(2, Bytes::from_static(b"err"))
        );
        assert_eq!(incoming(Bytes::from_static(b"\x01")), Incoming::Ignored);
        assert_eq!(incoming(Bytes::new()), Incoming::Ignored);
        assert_eq!(incoming(Bytes::from_static(b"\x07x")), Incoming::Ignored);
        assert_eq!(
            incoming(Bytes::from_static(b"\x03{}")),
            Incoming::Status(Bytes::from_static(b"{}"))
        );
    }

    #[test]
    fn the_status_is_parsed_and_garbage_is_not() {
        let status = status_of(br#"{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#);
        let status = status.unwrap_or_else(|| panic!("a Status"));
        assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
        assert_eq!(crate::pod::exit_code(&status), Some(3));
        assert!(status_of(b"not json").is_none());
    }

    #[test]
    fn control_frames() {
        assert_eq!(&close_signal(STDIN)[..], &[255, 0]);
        assert_eq!(
            &resize_frame(TerminalSize { cols: 80, rows: 24 })[..],
            b"\x04{\"Width\":80,\"Height\":24}"
        );
    }

    #[tokio::test]
    async fn writes_become_stdin_frames_and_shutdown_ends_them() {
        let (tx, mut rx) = mpsc::channel(INPUT_FRAMES);
        let mut writer = InputWriter::new(tx);
        writer
            .write_all(b"hello")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let big = vec![7u8; INPUT_FRAME + 10];
        let reading = async {
            let mut frames = Vec::new();
            while let Some(frame) = rx.recv().await {
                frames.push(frame);
            }
            frames
        };
        let writing = async {
            writer
                .write_all(&big)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            writer.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
            drop(writer);
        };
        let (frames, ()) = tokio::join!(reading, writing);
        assert_eq!(&frames[0][..], b"\x00hello");
        assert_eq!(frames[1].len(), INPUT_FRAME + 1, "split at the frame limit");
        assert_eq!(frames[2].len(), 11);
        assert!(frames.iter().all(|f| f[0] == STDIN));
        assert_eq!(frames.len(), 3, "shutdown ended the input");
    }

    #[tokio::test]
    async fn output_reads_out_frames_in_order_then_ends() {
        let (tx, rx) = mpsc::channel(OUTPUT_FRAMES);
        let mut reader = OutputReader::new(rx);
        tx.send(Bytes::from_static(b"abc"))
            .await
            .unwrap_or_else(|_| panic!("open"));
        tx.send(Bytes::from_static(b"defg"))
            .await
            .unwrap_or_else(|_| panic!("open"));
        drop(tx);
        let mut small = [0u8; 2];
        assert_eq!(reader.read(&mut small).await.unwrap_or(0), 2);
        assert_eq!(&small, b"ab");
        let mut rest = Vec::new();
        reader
            .read_to_end(&mut rest)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rest, b"cdefg");
    }

    /// A server end of the socket, framed like an API server's.
    async fn server(io: tokio::io::DuplexStream) -> WebSocketStream<tokio::io::DuplexStream> {
        WebSocketStream::from_raw_socket(io, Role::Server, None).await
    }

    fn driving(protocol: Protocol, params: &AttachParams) -> (Driving, Remote) {
        let (stdin_tx, stdin_rx) = mpsc::channel(INPUT_FRAMES);
        let (stdout_tx, stdout_rx) = mpsc::channel(OUTPUT_FRAMES);
        let (stderr_tx, stderr_rx) = mpsc::channel(OUTPUT_FRAMES);
        let (resize_tx, resize_rx) = mpsc::channel(RESIZES);
        let (status_tx, status_rx) = oneshot::channel();
        let driving = Driving {
            protocol,
            stdin: Some(stdin_rx),
            stdout: Some(stdout_tx),
            stderr: params.stderr.then_some(stderr_tx),
            resize: Some(resize_rx),
            status: Some(status_tx),
        };
        let remote = Remote {
            stdin: Some(InputWriter::new(stdin_tx)),
            stdout: Some(OutputReader::new(stdout_rx)),
            stderr: params.stderr.then(|| OutputReader::new(stderr_rx)),
            resize: Some(resize_tx),
            status: Some(status_rx),
            driver: Driver(tokio::spawn(std::future::pending())),
        };
        (driving, remote)
    }

    #[tokio::test]
    async fn a_v5_exec_round_trip() {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        let socket = WebSocketStream::from_raw_socket(ours, Role::Client, Some(config())).await;
        let params = AttachParams::default().stderr(true);
        let (driving, mut remote) = driving(Protocol::V5, &params);
        let task = tokio::spawn(driving.run(socket));
        let mut api = server(theirs).await;

        let mut stdin = remote.stdin.take().unwrap_or_else(|| panic!("stdin"));
        stdin
            .write_all(b"in")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let resize = remote.resize.take().unwrap_or_else(|| panic!("resize"));
        resize
            .send(TerminalSize {
                cols: 100,
                rows: 30,
            })
            .await
            .unwrap_or_else(|_| panic!("open"));
        stdin.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
        let mut seen = Vec::new();
        while seen.len() < 3 {
            match api.next().await {
                Some(Ok(Message::Binary(b))) => seen.push(b.to_vec()),
                other => panic!("unexpected {other:?}"),
            }
        }
        let at = |frame: &[u8]| seen.iter().position(|f| f == frame);
        assert!(at(b"\x04{\"Width\":100,\"Height\":30}").is_some());
        let (data, end) = (at(b"\x00in"), at(&[255, 0]));
        assert!(
            data.is_some() && end > data,
            "stdin ended after its data: {seen:?}"
        );

        for frame in [&b"\x01"[..], b"\x01out", b"\x02err", b"\x01more"] {
            api.send(Message::Binary(Bytes::copy_from_slice(frame)))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let status = br#"{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"42"}]}}"#;
        let mut frame = vec![STATUS];
        frame.extend_from_slice(status);
        api.send(Message::Binary(frame.into()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));

        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut stdout = remote.stdout.take().unwrap_or_else(|| panic!("stdout"));
        let mut stderr = remote.stderr.take().unwrap_or_else(|| panic!("stderr"));
        let (a, b) = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
        a.unwrap_or_else(|e| panic!("{e}"));
        b.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out, b"outmore");
        assert_eq!(err, b"err", "stderr kept apart");
        let status = remote
            .status
            .take()
            .unwrap_or_else(|| panic!("status"))
            .await
            .unwrap_or_else(|_| panic!("a status"));
        assert_eq!(crate::pod::exit_code(&status), Some(42));
        task.await.unwrap_or_else(|e| panic!("{e}"));
    }

    #[tokio::test(start_paused = true)]
    async fn stdin_that_waits_does_not_stop_output() {
        // An API server that sends all the output before it reads any input, over a socket
        // that holds little: the exec must keep reading while its stdin waits.
        const FRAMES: usize = 64;
        const FRAME: usize = 16 * 1024;
        let (ours, theirs) = tokio::io::duplex(4096);
        let socket = WebSocketStream::from_raw_socket(ours, Role::Client, Some(config())).await;
        let (driving, mut remote) = driving(Protocol::V5, &AttachParams::default());
        let _task = tokio::spawn(driving.run(socket));
        let api = tokio::spawn(async move {
            let mut api = server(theirs).await;
            let mut frame = vec![STDOUT; FRAME + 1];
            frame[1] = b'o';
            for _ in 0..FRAMES {
                api.send(Message::Binary(frame.clone().into())).await?;
            }
            let mut input = 0;
            while input < FRAMES * FRAME {
                match api.next().await {
                    Some(Ok(Message::Binary(b))) if b.first() == Some(&STDIN) => {
                        input += b.len() - 1
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e),
                    None => break,
                }
            }
            Ok(input)
        });
        let mut stdin = remote.stdin.take().unwrap_or_else(|| panic!("stdin"));
        let mut stdout = remote.stdout.take().unwrap_or_else(|| panic!("stdout"));
        let writing = async {
            for _ in 0..FRAMES {
                stdin.write_all(&[1u8; FRAME]).await?;
            }
            Ok::<_, std::io::Error>(())
        };
        let reading = async {
            let mut got = vec![0u8; FRAMES * FRAME];
            stdout.read_exact(&mut got).await.map(|_| got.len())
        };
        let both = async { tokio::join!(writing, reading) };
        let (written, read) = tokio::time::timeout(Duration::from_secs(30), both)
            .await
            .unwrap_or_else(|_| panic!("stdin and stdout waited on each other"));
        written.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read.unwrap_or_else(|e| panic!("{e}")), FRAMES * FRAME);
        let input = api.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(input.unwrap_or_else(|e| panic!("{e}")), FRAMES * FRAME);
    }

    #[tokio::test]
    async fn v4_ends_stdin_by_closing_the_socket() {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        let socket = WebSocketStream::from_raw_socket(ours, Role::Client, Some(config())).await;
        let (driving, mut remote) = driving(Protocol::V4, &AttachParams::default());
        let task = tokio::spawn(driving.run(socket));
        let mut api = server(theirs).await;
        let mut stdin = remote.stdin.take().unwrap_or_else(|| panic!("stdin"));
        stdin
            .write_all(b"x")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        stdin.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
        match api.next().await {
            Some(Ok(Message::Binary(b))) => assert_eq!(&b[..], b"\x00x"),
            other => panic!("unexpected {other:?}"),
        }
        match api.next().await {
            Some(Ok(Message::Close(_))) => {}
            other => panic!("expected the close, got {other:?}"),
        }
        drop(api);
        task.await.unwrap_or_else(|e| panic!("{e}"));
        let status = remote
            .status
            .take()
            .unwrap_or_else(|| panic!("status"))
            .await;
        assert!(status.is_err(), "no Status: the socket ended without one");
    }

    #[tokio::test]
    async fn a_reader_that_stopped_does_not_hold_up_the_status() {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        let socket = WebSocketStream::from_raw_socket(ours, Role::Client, Some(config())).await;
        let (driving, mut remote) = driving(Protocol::V5, &AttachParams::default());
        let task = tokio::spawn(driving.run(socket));
        let mut api = server(theirs).await;
        drop(remote.stdout.take());
        for _ in 0..(OUTPUT_FRAMES * 3) {
            api.send(Message::Binary(Bytes::from_static(b"\x01data")))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        api.send(Message::Binary(Bytes::from_static(
            b"\x03{\"status\":\"Success\"}",
        )))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let status = remote
            .status
            .take()
            .unwrap_or_else(|| panic!("status"))
            .await;
        assert_eq!(
            status.ok().and_then(|s| s.status).as_deref(),
            Some("Success")
        );
        task.await.unwrap_or_else(|e| panic!("{e}"));
    }
}
