//! A file opened through an SFTP handle: what its open allows, and the bytes read from it and
//! written to it.

use super::super::digest::RunDigest;
use super::super::FileOp;

// `OPEN` flags (`SSH_FXF_*`).
pub(super) const FXF_READ: u32 = 0x01;
pub(super) const FXF_WRITE: u32 = 0x02;
pub(super) const FXF_APPEND: u32 = 0x04;
pub(super) const FXF_CREAT: u32 = 0x08;
pub(super) const FXF_TRUNC: u32 = 0x10;
pub(super) const FXF_EXCL: u32 = 0x20;

/// A file opened through a handle.
#[derive(Debug)]
pub(super) struct OpenFile {
    path: String,
    flags: u32,
    pub(super) read: Tally,
    pub(super) written: Tally,
    /// Bytes of path and handle counted against the session's bound.
    pub(super) charge: usize,
}

/// Bytes that passed one way, and their digest.
#[derive(Debug)]
pub(super) struct Tally {
    pub(super) bytes: u64,
    pub(super) digest: RunDigest,
}

impl Tally {
    fn new() -> Self {
        Self {
            bytes: 0,
            digest: RunDigest::new(),
        }
    }
}

impl OpenFile {
    pub(super) fn new(path: String, flags: u32, charge: usize) -> Self {
        let mut written = Tally::new();
        // Appending writes land after what the file held, unless the open emptied it or
        // created it.
        let emptied =
            flags & FXF_TRUNC != 0 || flags & (FXF_CREAT | FXF_EXCL) == FXF_CREAT | FXF_EXCL;
        if flags & FXF_APPEND != 0 && !emptied {
            written.digest.interrupt();
        }
        Self {
            path,
            flags,
            read: Tally::new(),
            written,
            charge,
        }
    }

    /// Whether a write at `offset` continues the run from offset 0. The server ignores the
    /// offsets of an appending handle's writes.
    pub(super) fn write_continues_at(&self, offset: u64) -> bool {
        if self.flags & FXF_APPEND != 0 {
            self.written.digest.is_whole()
        } else {
            self.written.digest.continues_at(offset)
        }
    }

    /// Nothing more will be seen of it: no digests.
    pub(super) fn lose_sight(&mut self) {
        self.read.digest.interrupt();
        self.written.digest.interrupt();
    }

    /// What the file saw: a read if it was opened for reading or read (or opened for nothing
    /// else), a write if it was opened in a way that can change it or written.
    pub(super) fn report(self, ops: &mut Vec<FileOp>) {
        let writes = self.flags & (FXF_WRITE | FXF_APPEND | FXF_CREAT | FXF_TRUNC) != 0
            || self.written.bytes > 0;
        let reads = self.flags & FXF_READ != 0 || self.read.bytes > 0 || !writes;
        if reads {
            ops.push(FileOp::Read {
                path: self.path.clone(),
                bytes: self.read.bytes,
                sha256: self.read.digest.finish(),
            });
        }
        if writes {
            ops.push(FileOp::Written {
                path: self.path,
                bytes: self.written.bytes,
                sha256: self.written.digest.finish(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn told(file: OpenFile) -> Vec<&'static str> {
        let mut ops = Vec::new();
        file.report(&mut ops);
        ops.iter()
            .map(|op| match op {
                FileOp::Read { .. } => "read",
                FileOp::Written { .. } => "written",
                _ => "other",
            })
            .collect()
    }

    #[test]
    fn a_file_is_told_as_its_open_allows() {
        assert_eq!(told(OpenFile::new("/f".into(), FXF_READ, 0)), ["read"]);
        assert_eq!(told(OpenFile::new("/f".into(), 0, 0)), ["read"]);
        assert_eq!(
            told(OpenFile::new("/f".into(), FXF_WRITE | FXF_TRUNC, 0)),
            ["written"]
        );
        // Opened read-only but truncated: it changed.
        assert_eq!(
            told(OpenFile::new("/f".into(), FXF_READ | FXF_TRUNC, 0)),
            ["read", "written"]
        );
        assert_eq!(
            told(OpenFile::new("/f".into(), FXF_READ | FXF_WRITE, 0)),
            ["read", "written"]
        );
    }
}
