//! Raw "hijacked" HTTP streams to the Docker engine, for exec and attach.
//!
//! bollard decodes these streams by guessing the framing from the first byte of every read,
//! which corrupts TTY output that begins with bytes 0x00-0x02. The engine's framing is known
//! up front (raw with a TTY, multiplexed without), so sshpod speaks this one upgrade request
//! itself and decodes the stream accordingly (see `demux`).

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::client::TlsStream;

use crate::tls::EngineTls;

/// Where the engine listens, for raw connections.
#[derive(Debug, Clone)]
pub(crate) enum EngineAddress {
    Unix(PathBuf),
    /// `host:port`, plain.
    Tcp(String),
    /// `host:port`, with TLS.
    Tls(String, EngineTls),
}

impl EngineAddress {
    /// Parses `unix:///path`, or `tcp://`, `http://` or `https://` followed by `host:port`.
    /// TCP addresses come back plain: TLS is chosen by the TLS settings.
    pub(crate) fn parse(host: &str) -> Option<Self> {
        if let Some(path) = host.strip_prefix("unix://") {
            return Some(Self::Unix(PathBuf::from(path)));
        }
        let rest = ["tcp://", "http://", "https://"]
            .iter()
            .find_map(|scheme| host.strip_prefix(scheme))?;
        Some(Self::Tcp(rest.trim_end_matches('/').to_owned()))
    }
}

/// One raw connection to the engine: a Unix or TCP socket, or TLS over TCP.
pub(crate) enum EngineStream {
    Unix(UnixStream),
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for EngineStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            EngineStream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            EngineStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            EngineStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for EngineStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            EngineStream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            EngineStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            EngineStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            EngineStream::Unix(s) => Pin::new(s).poll_flush(cx),
            EngineStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            EngineStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    /// Half-closes the socket (with TLS: sends close_notify, then half-closes): the engine
    /// turns this into EOF on the process's stdin.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            EngineStream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            EngineStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            EngineStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The read half of an upgraded connection: first whatever was read beyond the response
/// head, then the socket itself. It holds no buffer of its own, so a stream that stays quiet
/// (an idle session, a lifeline attach) costs no memory; readers bring their own buffers.
pub(crate) struct EngineReader {
    /// Bytes read past the response head, not yet handed out; emptied (and freed) once read.
    head: Vec<u8>,
    consumed: usize,
    inner: tokio::io::ReadHalf<EngineStream>,
}

impl AsyncRead for EngineReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.consumed < this.head.len() {
            let rest = &this.head[this.consumed..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.consumed += n;
            if this.consumed == this.head.len() {
                this.head = Vec::new();
                this.consumed = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

/// Size of the reader for the response head; freed once the head is read.
const HEAD_BUFFER: usize = 4 * 1024;

/// The two halves of an upgraded connection.
pub(crate) struct Hijacked {
    pub(crate) reader: EngineReader,
    pub(crate) writer: tokio::io::WriteHalf<EngineStream>,
}

/// Why a hijack failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HijackError {
    #[error("connecting to the Docker engine")]
    Connect(#[source] io::Error),
    #[error("talking to the Docker engine")]
    Io(#[source] io::Error),
    #[error("the Docker engine answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("the Docker engine sent a malformed response")]
    Malformed,
}

/// Sends `POST path` with a JSON body and an upgrade request, and returns the raw stream.
pub(crate) async fn post_upgrade(
    address: &EngineAddress,
    path: &str,
    body: &str,
) -> Result<Hijacked, HijackError> {
    let stream = match address {
        EngineAddress::Unix(p) => {
            EngineStream::Unix(UnixStream::connect(p).await.map_err(HijackError::Connect)?)
        }
        EngineAddress::Tcp(a) => EngineStream::Tcp(tcp_connect(a).await?),
        EngineAddress::Tls(a, tls) => EngineStream::Tls(Box::new(
            tls.connect(tcp_connect(a).await?)
                .await
                .map_err(HijackError::Connect)?,
        )),
    };
    let (read, mut writer) = tokio::io::split(stream);
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: sshpod\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n{body}",
        body.len()
    );
    writer
        .write_all(request.as_bytes())
        .await
        .map_err(HijackError::Io)?;
    writer.flush().await.map_err(HijackError::Io)?;

    let mut reader = BufReader::with_capacity(HEAD_BUFFER, read);
    let mut status_line = String::new();
    reader
        .read_line(&mut status_line)
        .await
        .map_err(HijackError::Io)?;
    let status = parse_status(&status_line).ok_or(HijackError::Malformed)?;
    let mut content_length = None;
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).await.map_err(HijackError::Io)?;
        if n == 0 {
            return Err(HijackError::Malformed);
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.trim().parse::<usize>().ok();
            }
        }
    }
    if status == 101 || status == 200 {
        let head = reader.buffer().to_vec();
        let reader = EngineReader {
            head,
            consumed: 0,
            inner: reader.into_inner(),
        };
        return Ok(Hijacked { reader, writer });
    }
    // An error answer carries `{"message": "..."}`; read it for the log.
    let mut body = vec![0u8; content_length.unwrap_or(0).min(64 * 1024)];
    reader
        .read_exact(&mut body)
        .await
        .map_err(HijackError::Io)?;
    Err(HijackError::Status {
        status,
        message: engine_message(&body),
    })
}

async fn tcp_connect(authority: &str) -> Result<TcpStream, HijackError> {
    let s = TcpStream::connect(authority)
        .await
        .map_err(HijackError::Connect)?;
    // Interactive keystrokes must not wait for Nagle.
    s.set_nodelay(true).map_err(HijackError::Connect)?;
    Ok(s)
}

fn parse_status(line: &str) -> Option<u16> {
    let mut parts = line.split_whitespace();
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// The `message` of an engine error body, or the body itself.
fn engine_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_engine_addresses() {
        assert!(matches!(
            EngineAddress::parse("unix:///var/run/docker.sock"),
            Some(EngineAddress::Unix(p)) if p == std::path::Path::new("/var/run/docker.sock")
        ));
        assert!(matches!(
            EngineAddress::parse("tcp://127.0.0.1:2375"),
            Some(EngineAddress::Tcp(a)) if a == "127.0.0.1:2375"
        ));
        assert!(matches!(
            EngineAddress::parse("https://docker.example:2376/"),
            Some(EngineAddress::Tcp(a)) if a == "docker.example:2376"
        ));
        assert!(EngineAddress::parse("npipe:////./pipe/docker_engine").is_none());
    }

    #[test]
    fn parses_status_lines() {
        assert_eq!(parse_status("HTTP/1.1 101 UPGRADED\r\n"), Some(101));
        assert_eq!(parse_status("HTTP/1.0 404 Not Found\r\n"), Some(404));
        assert_eq!(parse_status("garbage"), None);
    }

    #[test]
    fn reads_engine_error_messages() {
        assert_eq!(
            engine_message(br#"{"message":"No such container: x"}"#),
            "No such container: x"
        );
        assert_eq!(engine_message(b"plain text\n"), "plain text");
    }
}
