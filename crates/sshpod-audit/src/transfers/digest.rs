//! The SHA-256 of a file's bytes as they pass, kept only while they come as one run from the
//! start of the file: a transfer that skips, rewinds or loses a piece has no digest rather than
//! a wrong one.

use sha2::{Digest, Sha256};

/// Bytes counted and hashed as they pass.
#[derive(Debug, Clone)]
pub(crate) struct RunDigest {
    /// Where the run continues.
    next: u64,
    /// `None` once the bytes stopped being one run from offset 0.
    hash: Option<Sha256>,
}

impl RunDigest {
    /// A run at offset 0 with nothing in it yet.
    pub(crate) fn new() -> Self {
        Self {
            next: 0,
            hash: Some(Sha256::new()),
        }
    }

    /// Whether bytes at `offset` continue the run.
    pub(crate) fn continues_at(&self, offset: u64) -> bool {
        self.hash.is_some() && offset == self.next
    }

    /// Whether the run is still whole.
    pub(crate) fn is_whole(&self) -> bool {
        self.hash.is_some()
    }

    /// Adds the next bytes of the run.
    pub(crate) fn update(&mut self, data: &[u8]) {
        if let Some(hash) = &mut self.hash {
            hash.update(data);
            self.next = self.next.saturating_add(data.len() as u64);
        }
    }

    /// The bytes stopped being one run: there will be no digest.
    pub(crate) fn interrupt(&mut self) {
        self.hash = None;
    }

    /// The digest as 64 lowercase hex digits, if the run is whole.
    pub(crate) fn finish(self) -> Option<String> {
        self.hash.map(|hash| hex::encode(hash.finalize()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn a_run_in_pieces_hashes_like_the_whole() {
        let mut run = RunDigest::new();
        assert!(run.continues_at(0));
        run.update(b"hello ");
        assert!(run.continues_at(6));
        assert!(!run.continues_at(5));
        run.update(b"world");
        let whole = hex::encode(Sha256::digest(b"hello world"));
        assert_eq!(run.finish(), Some(whole));
    }

    #[test]
    fn nothing_is_the_empty_digest_and_an_interrupted_run_has_none() {
        assert_eq!(RunDigest::new().finish().as_deref(), Some(EMPTY));
        let mut run = RunDigest::new();
        run.update(b"abc");
        run.interrupt();
        assert!(!run.is_whole());
        assert!(!run.continues_at(3));
        assert_eq!(run.finish(), None);
    }
}
