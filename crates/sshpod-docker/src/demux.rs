//! Splits the engine's multiplexed stream (used when there is no TTY) into stdout and stderr.
//!
//! Each frame is an 8-byte header (stream id, three zero bytes, big-endian payload length)
//! followed by the payload. Output is written to bounded pipes, so a slow reader slows the
//! engine down instead of growing a buffer.

use std::io;

use sshpod_core::ReadBuffer;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Payload is passed on in pieces of up to this size.
const PAYLOAD_CHUNK: usize = 32 * 1024;

/// Which stream a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamId {
    Stdout,
    Stderr,
}

/// Decodes a frame header: the stream and the payload length. Stdin frames (id 0) never come
/// from the engine; treat them, like any unknown id, as stdout rather than dropping bytes.
pub(crate) fn parse_header(header: &[u8; 8]) -> (StreamId, usize) {
    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    let id = if header[0] == 2 {
        StreamId::Stderr
    } else {
        StreamId::Stdout
    };
    (id, len)
}

/// Copies frames from `input` to `stdout`/`stderr` until the engine closes the stream, then
/// shuts both outputs down so their readers see EOF. A reader that went away is not an error:
/// its bytes are discarded and the other stream keeps flowing.
pub(crate) async fn demux<R, W1, W2>(mut input: R, mut stdout: W1, mut stderr: W2) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W1: AsyncWrite + Unpin,
    W2: AsyncWrite + Unpin,
{
    let mut header = [0u8; 8];
    let mut buf = ReadBuffer::new(PAYLOAD_CHUNK);
    let (mut stdout_open, mut stderr_open) = (true, true);
    let result = loop {
        match input.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break Ok(()),
            Err(e) => break Err(e),
        }
        let (id, mut remaining) = parse_header(&header);
        while remaining > 0 {
            let want = remaining.min(buf.capacity());
            input.read_exact(&mut buf.space()[..want]).await?;
            let chunk = buf.filled(want);
            match id {
                StreamId::Stdout if stdout_open => {
                    stdout_open = stdout.write_all(chunk).await.is_ok();
                }
                StreamId::Stderr if stderr_open => {
                    stderr_open = stderr.write_all(chunk).await.is_ok();
                }
                StreamId::Stdout | StreamId::Stderr => {}
            }
            // A frame larger than the buffer: more is waiting, so grow.
            buf.record(remaining);
            remaining -= want;
        }
    };
    let _ = stdout.shutdown().await;
    let _ = stderr.shutdown().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(id: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![id, 0, 0, 0];
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[tokio::test]
    async fn splits_frames_by_stream_and_keeps_binary_payloads() {
        let mut input = frame(1, b"\x00\x01\x02out");
        input.extend(frame(2, b"err"));
        input.extend(frame(1, &[7u8; 100_000]));
        let (out_w, mut out_r) = tokio::io::duplex(1024);
        let (err_w, mut err_r) = tokio::io::duplex(1024);
        let task = tokio::spawn(demux(std::io::Cursor::new(input), out_w, err_w));
        let mut out = Vec::new();
        let mut err = Vec::new();
        let (a, b) = tokio::join!(out_r.read_to_end(&mut out), err_r.read_to_end(&mut err));
        a.unwrap();
        b.unwrap();
        task.await.unwrap().unwrap();
        assert_eq!(&out[..6], b"\x00\x01\x02out");
        assert_eq!(out.len(), 6 + 100_000);
        assert_eq!(err, b"err");
    }

    #[tokio::test]
    async fn a_truncated_frame_is_an_error() {
        let mut input = frame(1, b"hello");
        input.truncate(10);
        let (out_w, _out_r) = tokio::io::duplex(1024);
        let (err_w, _err_r) = tokio::io::duplex(1024);
        let r = demux(std::io::Cursor::new(input), out_w, err_w).await;
        assert!(r.is_err());
    }
}
