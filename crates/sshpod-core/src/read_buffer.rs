//! A read buffer sized by the traffic it sees.
//!
//! Every session holds a few output buffers for as long as it lives, and most sessions are
//! idle most of the time. A buffer starts small and doubles each time a read fills it, up
//! to its maximum: an idle shell keeps 1 KiB per stream, a bulk transfer reaches full
//! SSH packets after a handful of reads.

/// Where reads start: what an idle stream holds (a session has up to two). A screenful of
/// output takes two or three reads the first time, then fits.
pub const INITIAL_READ_BUFFER: usize = 1024;

/// A buffer to read into, grown while reads fill it.
#[derive(Debug)]
pub struct ReadBuffer {
    buf: Vec<u8>,
    max: usize,
}

impl ReadBuffer {
    /// A buffer of [`INITIAL_READ_BUFFER`] bytes (or `max`, if smaller) that grows to `max`.
    pub fn new(max: usize) -> Self {
        Self {
            buf: vec![0; INITIAL_READ_BUFFER.min(max).max(1)],
            max: max.max(1),
        }
    }

    /// The space to read into: all of the buffer.
    pub fn space(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    /// The first `n` bytes, as filled by the last read.
    pub fn filled(&self, n: usize) -> &[u8] {
        &self.buf[..n]
    }

    /// Records that a read returned `n` bytes (or that `n` bytes were wanted): a full
    /// buffer means more was waiting, so the next read gets twice the space.
    pub fn record(&mut self, n: usize) {
        if n >= self.buf.len() && self.buf.len() < self.max {
            let grown = (self.buf.len() * 2).min(self.max);
            self.buf.resize(grown, 0);
        }
    }

    /// The current size.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_only_while_reads_fill_it_and_stops_at_the_maximum() {
        let mut b = ReadBuffer::new(32 * 1024);
        assert_eq!(b.capacity(), INITIAL_READ_BUFFER);
        b.record(10);
        assert_eq!(
            b.capacity(),
            INITIAL_READ_BUFFER,
            "a short read keeps the size"
        );
        for _ in 0..10 {
            let n = b.space().len();
            b.record(n);
        }
        assert_eq!(b.capacity(), 32 * 1024);
        assert_eq!(ReadBuffer::new(100).capacity(), 100);
    }
}
