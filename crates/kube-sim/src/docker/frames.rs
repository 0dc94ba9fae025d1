//! The engine's multiplexed stdio framing (non-TTY exec, attach and logs): an 8-byte header
//! `[stream, 0, 0, 0, len:u32be]` before every chunk. TTY streams are raw and must never go
//! through this decoder.

use bytes::{Buf as _, Bytes, BytesMut};

/// Which stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// An incremental decoder: feed bytes, take complete chunks.
#[derive(Debug, Default)]
pub struct Demuxer {
    buffer: BytesMut,
}

impl Demuxer {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The buffer to read more bytes into, with room for `at_least` of them.
    pub fn space(&mut self, at_least: usize) -> &mut BytesMut {
        self.buffer.reserve(at_least);
        &mut self.buffer
    }

    /// The next complete chunk as a WebSocket channel frame: the payload preceded by the
    /// byte `channel` gives its stream, written over the last byte of the chunk's header, so
    /// the payload is not copied (output streams at the API server's pace this way).
    /// `Some(None)`: a chunk `channel` does not want, or an empty one.
    pub fn next_framed(&mut self, channel: impl Fn(Stream) -> Option<u8>) -> Option<Option<Bytes>> {
        let (stream, len) = self.header()?;
        if self.buffer.len() < 8 + len {
            return None;
        }
        self.buffer.advance(7);
        let mut frame = self.buffer.split_to(1 + len);
        match channel(stream) {
            Some(ch) if len > 0 => {
                frame[0] = ch;
                Some(Some(frame.freeze()))
            }
            _ => Some(None),
        }
    }

    fn header(&self) -> Option<(Stream, usize)> {
        let header = self.buffer.get(..8)?;
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let stream = if header[0] == 2 {
            Stream::Stderr
        } else {
            Stream::Stdout
        };
        Some((stream, len))
    }

    /// The next complete chunk, if one is buffered. Stream 0 (stdin echo) counts as stdout.
    pub fn next_chunk(&mut self) -> Option<(Stream, Vec<u8>)> {
        if self.buffer.len() < 8 {
            return None;
        }
        let len = u32::from_be_bytes([
            self.buffer[4],
            self.buffer[5],
            self.buffer[6],
            self.buffer[7],
        ]) as usize;
        if self.buffer.len() < 8 + len {
            return None;
        }
        let stream = if self.buffer[0] == 2 {
            Stream::Stderr
        } else {
            Stream::Stdout
        };
        self.buffer.advance(8);
        let payload = self.buffer.split_to(len).to_vec();
        Some((stream, payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_split_frames() {
        let mut d = Demuxer::default();
        d.push(&[1, 0, 0, 0, 0, 0, 0, 3, b'o']);
        assert_eq!(d.next_chunk(), None);
        d.push(&[b'u', b't', 2, 0, 0, 0, 0, 0, 0, 1, b'e']);
        assert_eq!(d.next_chunk(), Some((Stream::Stdout, b"out".to_vec())));
        assert_eq!(d.next_chunk(), Some((Stream::Stderr, b"e".to_vec())));
        assert_eq!(d.next_chunk(), None);
    }

    #[test]
    fn chunks_become_channel_frames_in_place() {
        let mut d = Demuxer::default();
        d.push(&[1, 0, 0, 0, 0, 0, 0, 3, b'o', b'u']);
        let channel = |s: Stream| match s {
            Stream::Stdout => Some(1),
            Stream::Stderr => None,
        };
        assert_eq!(d.next_framed(channel), None, "incomplete");
        d.push(&[b't', 2, 0, 0, 0, 0, 0, 0, 1, b'e', 1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            d.next_framed(channel),
            Some(Some(Bytes::from_static(b"\x01out")))
        );
        assert_eq!(d.next_framed(channel), Some(None), "stderr not wanted");
        assert_eq!(d.next_framed(channel), Some(None), "empty");
        assert_eq!(d.next_framed(channel), None);
    }

    #[test]
    fn empty_frames_are_chunks() {
        let mut d = Demuxer::default();
        d.push(&[1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(d.next_chunk(), Some((Stream::Stdout, vec![])));
    }
}
