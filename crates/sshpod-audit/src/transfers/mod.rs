//! File transfers recognised in a session's bytes as they pass: which files an SFTP or scp
//! session read, wrote, renamed or removed, with the bytes and SHA-256 of what was written.
//!
//! The recorder hands a channel's bytes to a [`TransferWatcher`] in order, in chunks of any
//! size (a packet may be cut anywhere, several may share a chunk): [`TransferWatcher::input`]
//! for the client's bytes to the process, [`TransferWatcher::output`] for the process's bytes
//! to the client, [`TransferWatcher::finish`] when the channel closes. Watching changes nothing
//! the client sees: the watcher only reads copies.
//!
//! Both ends may be hostile (the client, and the program in the container that answers it). A
//! watcher keeps bounded memory whatever it is fed and never panics; bytes it cannot follow make
//! it say why once ([`FileOp::GaveUp`]) and follow nothing more on that channel.

mod digest;
mod packet;
mod scp;
mod sftp;
mod words;

use sshpod_core::Command;

pub use scp::ScpWatcher;
pub use sftp::SftpWatcher;

/// Something a transfer did to a file, as the server side saw it succeed.
///
/// Paths are as the client named them (SFTP clients usually send absolute paths; scp's are
/// worked out from its command line, see [`ScpWatcher`]); bytes that are not UTF-8 become
/// U+FFFD.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileOp {
    /// A file was opened for reading (told when it is closed, or when the channel ends).
    Read {
        /// The file.
        path: String,
        /// Bytes sent to the client.
        bytes: u64,
        /// SHA-256 (64 lowercase hex digits) of the bytes sent, when they were one run from
        /// offset 0, in order and without error; `None` otherwise (a resumed or partial
        /// download, reads out of order, a transfer cut short, or one the sender reported as
        /// failed). A download read to its end has the digest of the file.
        sha256: Option<String>,
    },
    /// A file was opened for writing, or written (told when it is closed, or when the channel
    /// ends).
    Written {
        /// The file.
        path: String,
        /// Bytes written (requests the server refused not counted).
        bytes: u64,
        /// SHA-256 (64 lowercase hex digits) of the bytes written, when they were one run
        /// from offset 0 and all accepted; `None` otherwise (a resumed upload, appending to a
        /// file that was not emptied, writes at other offsets, a failed write, a server-side
        /// copy into the file, a transfer cut short). When the file was emptied as it was
        /// opened (as `sftp put` and scp do) this is the digest of the file's new content.
        sha256: Option<String>,
    },
    /// A file or directory was renamed.
    Renamed {
        /// The old name.
        from: String,
        /// The new name.
        to: String,
    },
    /// A file was removed.
    Removed {
        /// The file.
        path: String,
    },
    /// A directory was created.
    DirCreated {
        /// The directory.
        path: String,
    },
    /// A directory was removed.
    DirRemoved {
        /// The directory.
        path: String,
    },
    /// A new name was made for a file.
    Linked {
        /// The new name.
        path: String,
        /// What it points to (for a symbolic link, as given, which may be relative).
        target: String,
        /// Hard or symbolic.
        kind: LinkKind,
    },
    /// The watcher stopped following the channel: bytes past a bound, or not the protocol.
    /// Nothing more is told for this channel; files open at that moment are told right after,
    /// without digests.
    GaveUp {
        /// Why, in words (numbers only, nothing the client chose as text).
        reason: String,
    },
}

/// The two kinds of links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// Another name for the same file (`hardlink@openssh.com`).
    Hard,
    /// A file that names another (`SSH_FXP_SYMLINK`).
    Symbolic,
}

/// Follows one channel's file transfers, whichever protocol it speaks.
#[derive(Debug)]
pub enum TransferWatcher {
    /// An SFTP session (the `sftp` subsystem).
    Sftp(SftpWatcher),
    /// A legacy scp session (`scp -t` or `scp -f`).
    Scp(ScpWatcher),
}

impl TransferWatcher {
    /// Bytes from the client to the process.
    pub fn input(&mut self, data: &[u8], ops: &mut Vec<FileOp>) {
        match self {
            TransferWatcher::Sftp(watcher) => watcher.input(data, ops),
            TransferWatcher::Scp(watcher) => watcher.input(data, ops),
        }
    }

    /// Bytes from the process to the client (its standard output; not its errors).
    pub fn output(&mut self, data: &[u8], ops: &mut Vec<FileOp>) {
        match self {
            TransferWatcher::Sftp(watcher) => watcher.output(data, ops),
            TransferWatcher::Scp(watcher) => watcher.output(data, ops),
        }
    }

    /// The channel closed: tells what was still under way.
    pub fn finish(&mut self, ops: &mut Vec<FileOp>) {
        match self {
            TransferWatcher::Sftp(watcher) => watcher.finish(ops),
            TransferWatcher::Scp(watcher) => watcher.finish(ops),
        }
    }
}

/// The watcher for a session running `command`, if it transfers files: the `sftp` subsystem,
/// a command running `sftp-server`, or a legacy scp command (`scp ... -t TARGET` or
/// `scp ... -f SOURCE...`, as `scp -O` sends). `None` for anything else.
pub fn watcher_for(command: &Command) -> Option<TransferWatcher> {
    match command {
        Command::Subsystem(name) if name == "sftp" => {
            Some(TransferWatcher::Sftp(SftpWatcher::new()))
        }
        Command::Exec(line) => {
            if words::runs_program(line, "sftp-server") {
                return Some(TransferWatcher::Sftp(SftpWatcher::new()));
            }
            ScpWatcher::from_command_line(line).map(TransferWatcher::Scp)
        }
        Command::Subsystem(_) | Command::Shell => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(command: Command) -> Option<&'static str> {
        watcher_for(&command).map(|watcher| match watcher {
            TransferWatcher::Sftp(_) => "sftp",
            TransferWatcher::Scp(_) => "scp",
        })
    }

    #[test]
    fn transfers_are_recognised_by_their_command() {
        assert_eq!(kind(Command::Subsystem("sftp".into())), Some("sftp"));
        assert_eq!(kind(Command::Subsystem("other".into())), None);
        assert_eq!(kind(Command::Shell), None);
        assert_eq!(
            kind(Command::Exec("/usr/lib/openssh/sftp-server".into())),
            Some("sftp")
        );
        assert_eq!(kind(Command::Exec("scp -t /tmp".into())), Some("scp"));
        assert_eq!(
            kind(Command::Exec("scp -v -r -p -d -f -- a b".into())),
            Some("scp")
        );
        assert_eq!(kind(Command::Exec("/usr/bin/scp -f x".into())), Some("scp"));
        assert_eq!(
            kind(Command::Exec("scp x host:y".into())),
            None,
            "a client, not a server"
        );
        assert_eq!(kind(Command::Exec("ls -l".into())), None);
        assert_eq!(kind(Command::Exec("scp -t x; rm -rf y".into())), None);
    }
}
