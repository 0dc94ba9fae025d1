//! The engine's multiplexed stdio framing (non-TTY exec, attach and logs): an 8-byte header
//! `[stream, 0, 0, 0, len:u32be]` before every chunk. TTY streams are raw and must never go
//! through this decoder.

/// Which stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// An incremental decoder: feed bytes, take complete chunks.
#[derive(Debug, Default)]
pub struct Demuxer {
    buffer: Vec<u8>,
}

impl Demuxer {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
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
        let payload = self.buffer[8..8 + len].to_vec();
        self.buffer.drain(..8 + len);
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
    fn empty_frames_are_chunks() {
        let mut d = Demuxer::default();
        d.push(&[1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(d.next_chunk(), Some((Stream::Stdout, vec![])));
    }
}
