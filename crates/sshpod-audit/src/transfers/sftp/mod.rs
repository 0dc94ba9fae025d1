//! Following an SFTP session (version 3, draft-ietf-secsh-filexfer-02, which OpenSSH speaks,
//! with OpenSSH's `posix-rename@openssh.com` and `hardlink@openssh.com`) to say which files it
//! read, wrote, renamed and removed.
//!
//! Requests are paired with their replies by id, in order (a client may reuse an id; each
//! reply answers the oldest request with its id still waiting). An operation counts only when
//! the server says it succeeded: an `OPEN` opens a file when a `HANDLE` comes back, a `REMOVE`
//! removes when its `STATUS` is OK. A file's reads and writes are told when its handle is
//! closed (or when the channel ends): bytes that passed, and their SHA-256 when they passed as
//! one run from offset 0.
//!
//! The client and the server program both may be hostile: everything kept is bounded
//! ([`MAX_PENDING`], [`MAX_OPEN_FILES`], [`MAX_HELD`], and the packet reader's own bounds).
//! Past a bound, or on bytes that are not SFTP, the watcher says once why it gives up
//! ([`FileOp::GaveUp`]) and follows nothing more on the channel.

mod file;
mod request;
#[cfg(test)]
mod wire;

use std::collections::{BTreeMap, HashMap, VecDeque};

use self::file::OpenFile;
use self::request::{Asked, Malformed};
use super::packet::{Fields, PacketReader, Piece, Stream, MAX_FIELDS, MAX_HANDLE, WRITE};
use super::{FileOp, LinkKind};

// Reply types.
const VERSION: u8 = 2;
const STATUS: u8 = 101;
const HANDLE: u8 = 102;

/// `SSH_FX_OK`.
const STATUS_OK: u32 = 0;

/// The most requests waiting for their reply. OpenSSH's client keeps 64 in flight.
const MAX_PENDING: usize = 4096;
/// The most files open at once.
const MAX_OPEN_FILES: usize = 1024;
/// The most bytes of paths and handles kept, for waiting requests and open files together.
const MAX_HELD: usize = 256 * 1024;

/// Follows one SFTP channel. Feed it the channel's bytes in order, as they pass.
///
/// It keeps at most 4096 requests waiting for replies, 1024 open files, 256 KiB of their
/// paths and handles, and 9 KiB of each direction's current packet; file data is hashed as
/// it passes, never kept.
#[derive(Debug)]
pub struct SftpWatcher {
    requests: PacketReader,
    replies: PacketReader,
    session: Session,
}

impl Default for SftpWatcher {
    fn default() -> Self {
        Self::new()
    }
}

impl SftpWatcher {
    /// A watcher at the start of a channel.
    pub fn new() -> Self {
        Self {
            requests: PacketReader::new(Stream::Requests),
            replies: PacketReader::new(Stream::Replies),
            session: Session::default(),
        }
    }

    /// Bytes from the client to the server (requests).
    pub fn input(&mut self, mut data: &[u8], ops: &mut Vec<FileOp>) {
        while !self.session.stopped {
            let Some(piece) = self.requests.next(&mut data) else {
                break;
            };
            self.session.request(piece, ops);
        }
        self.let_go();
    }

    /// Bytes from the server to the client (replies).
    pub fn output(&mut self, mut data: &[u8], ops: &mut Vec<FileOp>) {
        while !self.session.stopped {
            let Some(piece) = self.replies.next(&mut data) else {
                break;
            };
            self.session.reply(piece, ops);
        }
        self.let_go();
    }

    /// The channel closed: tells the files still open. Bytes fed afterwards are ignored.
    pub fn finish(&mut self, ops: &mut Vec<FileOp>) {
        self.session.finish(ops);
        self.let_go();
    }

    /// Once stopped, keeps nothing.
    fn let_go(&mut self) {
        if self.session.stopped {
            self.requests.stop();
            self.replies.stop();
        }
    }

    /// An estimate of the bytes this watcher holds, for tests of its bounds.
    #[cfg(test)]
    pub(crate) fn footprint(&self) -> usize {
        self.requests.footprint() + self.replies.footprint() + self.session.footprint()
    }
}

/// A request waiting for its reply.
#[derive(Debug)]
enum Request {
    Open {
        path: String,
        flags: u32,
    },
    Close {
        file: u64,
    },
    Read {
        file: u64,
        offset: u64,
    },
    Write {
        file: u64,
        len: u32,
    },
    /// `copy-data` into an open file: the server writes bytes that never pass.
    CopyInto {
        file: u64,
    },
    Remove {
        path: String,
    },
    Rename {
        from: String,
        to: String,
    },
    Mkdir {
        path: String,
    },
    Rmdir {
        path: String,
    },
    Link {
        path: String,
        target: String,
        kind: LinkKind,
    },
    /// A request whose outcome changes nothing followed here; kept so that replies pair with
    /// the right requests.
    Other,
}

impl Request {
    /// Bytes of paths it keeps.
    fn weight(&self) -> usize {
        match self {
            Request::Open { path, .. }
            | Request::Remove { path }
            | Request::Mkdir { path }
            | Request::Rmdir { path } => path.len(),
            Request::Rename { from, to } => from.len() + to.len(),
            Request::Link { path, target, .. } => path.len() + target.len(),
            Request::Close { .. }
            | Request::Read { .. }
            | Request::Write { .. }
            | Request::CopyInto { .. }
            | Request::Other => 0,
        }
    }
}

/// Data passing now, and the file it belongs to.
#[derive(Debug, Clone, Copy)]
struct Passing {
    file: u64,
    len: u32,
    hashed: bool,
}

/// What the watcher knows of the session.
#[derive(Debug, Default)]
struct Session {
    /// Requests waiting for a reply, oldest first.
    pending: VecDeque<(u32, Request)>,
    /// Open files by key, in the order they were opened.
    files: BTreeMap<u64, OpenFile>,
    /// The handles the client may use, to the file each names.
    handles: HashMap<Vec<u8>, u64>,
    next_file: u64,
    /// Bytes counted against [`MAX_HELD`].
    held: usize,
    /// The `WRITE` whose data is passing, if it is to an open file.
    writing: Option<Passing>,
    /// The `DATA` whose data is passing, if it answers a read of an open file.
    reading: Option<Passing>,
    stopped: bool,
}

impl Session {
    fn request(&mut self, piece: Piece<'_>, ops: &mut Vec<FileOp>) {
        match piece {
            Piece::Broken(broken) => self.give_up(broken.reason(), ops),
            Piece::Packet {
                kind,
                id,
                fields,
                cut,
            } => match request::parse(kind, fields) {
                Ok(Some(asked)) => {
                    let request = self.resolve(asked);
                    self.wait(id, request, ops);
                }
                Ok(None) => {}
                Err(Malformed) => self.give_up(unreadable("request", kind, cut), ops),
            },
            Piece::DataHead { id, fields, len } => self.write(id, fields, len, ops),
            Piece::Data(data) => {
                if let Some(Passing {
                    file, hashed: true, ..
                }) = self.writing
                {
                    if let Some(file) = self.files.get_mut(&file) {
                        file.written.digest.update(data);
                    }
                }
            }
            Piece::DataEnd => {
                if let Some(passing) = self.writing.take() {
                    if let Some(file) = self.files.get_mut(&passing.file) {
                        file.written.bytes += u64::from(passing.len);
                    }
                }
            }
        }
    }

    /// The request to wait for: what `asked` names, resolved against the open handles.
    fn resolve(&mut self, asked: Asked<'_>) -> Request {
        match asked {
            Asked::Open { path, flags } => Request::Open { path, flags },
            // The handle is gone for the client now; the server may give it out again.
            Asked::Close { handle } => match self.handles.remove(handle) {
                Some(file) => Request::Close { file },
                None => Request::Other,
            },
            Asked::Read { handle, offset } => match self.handles.get(handle) {
                Some(&file) => Request::Read { file, offset },
                None => Request::Other,
            },
            Asked::CopyInto { handle } => match self.handles.get(handle) {
                Some(&file) => Request::CopyInto { file },
                None => Request::Other,
            },
            Asked::Remove { path } => Request::Remove { path },
            Asked::Rename { from, to } => Request::Rename { from, to },
            Asked::Mkdir { path } => Request::Mkdir { path },
            Asked::Rmdir { path } => Request::Rmdir { path },
            Asked::Link { path, target, kind } => Request::Link { path, target, kind },
            Asked::Other => Request::Other,
        }
    }

    /// A `WRITE` starts: its handle and offset are known, its data follows.
    fn write(&mut self, id: u32, fields: &[u8], len: u32, ops: &mut Vec<FileOp>) {
        let mut fields = Fields::new(fields);
        let (Some(handle), Some(offset)) = (fields.string(), fields.u64()) else {
            return self.give_up(unreadable("request", WRITE, false), ops);
        };
        let passing = match self.handles.get(handle) {
            Some(&key) => self.files.get_mut(&key).map(|file| {
                let hashed = file.write_continues_at(offset);
                if !hashed {
                    file.written.digest.interrupt();
                }
                Passing {
                    file: key,
                    len,
                    hashed,
                }
            }),
            None => None,
        };
        let request = match passing {
            Some(passing) => Request::Write {
                file: passing.file,
                len,
            },
            None => Request::Other,
        };
        self.wait(id, request, ops);
        self.writing = passing;
    }

    fn reply(&mut self, piece: Piece<'_>, ops: &mut Vec<FileOp>) {
        match piece {
            Piece::Broken(broken) => self.give_up(broken.reason(), ops),
            Piece::Packet {
                kind: VERSION,
                id: version,
                ..
            } => {
                if version != 3 {
                    self.give_up(
                        format!("the server speaks SFTP version {version}; only 3 is followed"),
                        ops,
                    );
                }
            }
            Piece::Packet {
                kind,
                id,
                fields,
                cut,
            } => {
                let Some(request) = self.answered(id) else {
                    return;
                };
                let mut fields = Fields::new(fields);
                match (kind, request) {
                    (STATUS, request) => match fields.u32() {
                        Some(code) => self.settle(request, code == STATUS_OK, ops),
                        None => self.give_up(unreadable("reply", kind, cut), ops),
                    },
                    (HANDLE, Request::Open { path, flags }) => match fields.string() {
                        Some(handle) => self.open(handle, path, flags, ops),
                        None => self.give_up(unreadable("reply", kind, cut), ops),
                    },
                    // Any other reply is not the success these requests wait for.
                    (_, request) => self.settle(request, false, ops),
                }
            }
            Piece::DataHead { id, len, .. } => {
                self.reading = match self.answered(id) {
                    Some(Request::Read { file: key, offset }) => {
                        self.files.get_mut(&key).map(|file| {
                            let hashed = file.read.digest.continues_at(offset);
                            if !hashed {
                                file.read.digest.interrupt();
                            }
                            Passing {
                                file: key,
                                len,
                                hashed,
                            }
                        })
                    }
                    Some(request) => {
                        self.settle(request, false, ops);
                        None
                    }
                    None => None,
                };
            }
            Piece::Data(data) => {
                if let Some(Passing {
                    file, hashed: true, ..
                }) = self.reading
                {
                    if let Some(file) = self.files.get_mut(&file) {
                        file.read.digest.update(data);
                    }
                }
            }
            Piece::DataEnd => {
                if let Some(passing) = self.reading.take() {
                    if let Some(file) = self.files.get_mut(&passing.file) {
                        file.read.bytes += u64::from(passing.len);
                    }
                }
            }
        }
    }

    /// Keeps `request` until the reply to `id`.
    fn wait(&mut self, id: u32, request: Request, ops: &mut Vec<FileOp>) {
        if self.pending.len() >= MAX_PENDING {
            return self.give_up(
                format!("more than {MAX_PENDING} SFTP requests wait for a reply"),
                ops,
            );
        }
        if self.hold(request.weight(), ops) {
            self.pending.push_back((id, request));
        }
    }

    /// The oldest request waiting with `id`, no longer waiting.
    fn answered(&mut self, id: u32) -> Option<Request> {
        let at = self
            .pending
            .iter()
            .position(|(waiting, _)| *waiting == id)?;
        let (_, request) = self.pending.remove(at)?;
        self.held -= request.weight();
        Some(request)
    }

    /// What a request did, now that its outcome is known.
    fn settle(&mut self, request: Request, ok: bool, ops: &mut Vec<FileOp>) {
        match request {
            Request::Open { .. } | Request::Read { .. } | Request::Other => {}
            Request::Close { file } => self.close(file, ops),
            Request::Write { file, len } => {
                if let Some(file) = self.files.get_mut(&file).filter(|_| !ok) {
                    file.written.digest.interrupt();
                    file.written.bytes = file.written.bytes.saturating_sub(u64::from(len));
                }
            }
            Request::CopyInto { file } => {
                if let Some(file) = self.files.get_mut(&file).filter(|_| ok) {
                    file.written.digest.interrupt();
                }
            }
            Request::Remove { path } if ok => ops.push(FileOp::Removed { path }),
            Request::Rename { from, to } if ok => ops.push(FileOp::Renamed { from, to }),
            Request::Mkdir { path } if ok => ops.push(FileOp::DirCreated { path }),
            Request::Rmdir { path } if ok => ops.push(FileOp::DirRemoved { path }),
            Request::Link { path, target, kind } if ok => {
                ops.push(FileOp::Linked { path, target, kind })
            }
            Request::Remove { .. }
            | Request::Rename { .. }
            | Request::Mkdir { .. }
            | Request::Rmdir { .. }
            | Request::Link { .. } => {}
        }
    }

    /// The server opened `path` as `handle`.
    fn open(&mut self, handle: &[u8], path: String, flags: u32, ops: &mut Vec<FileOp>) {
        if handle.len() > MAX_HANDLE {
            return self.give_up(
                format!(
                    "the server gave a handle of {} bytes (at most {MAX_HANDLE})",
                    handle.len()
                ),
                ops,
            );
        }
        // A handle given out again: the file it named is closed, whatever we missed.
        if let Some(previous) = self.handles.remove(handle) {
            self.close(previous, ops);
        }
        if self.files.len() >= MAX_OPEN_FILES {
            return self.give_up(format!("more than {MAX_OPEN_FILES} files are open"), ops);
        }
        let charge = path.len() + handle.len();
        if !self.hold(charge, ops) {
            return;
        }
        let key = self.next_file;
        self.next_file += 1;
        self.files.insert(key, OpenFile::new(path, flags, charge));
        self.handles.insert(handle.to_vec(), key);
    }

    /// Tells what a file saw and forgets it.
    fn close(&mut self, key: u64, ops: &mut Vec<FileOp>) {
        if let Some(file) = self.files.remove(&key) {
            self.held -= file.charge;
            file.report(ops);
        }
    }

    /// Counts `bytes` against [`MAX_HELD`]; gives up past it.
    fn hold(&mut self, bytes: usize, ops: &mut Vec<FileOp>) -> bool {
        if self.held + bytes > MAX_HELD {
            self.give_up(
                format!("the paths and handles of an SFTP session pass {MAX_HELD} bytes"),
                ops,
            );
            return false;
        }
        self.held += bytes;
        true
    }

    /// Says why, tells the open files (without digests: what comes next is not seen) and
    /// follows nothing more.
    fn give_up(&mut self, reason: String, ops: &mut Vec<FileOp>) {
        if self.stopped {
            return;
        }
        ops.push(FileOp::GaveUp { reason });
        for (_, mut file) in std::mem::take(&mut self.files) {
            file.lose_sight();
            file.report(ops);
        }
        self.stop();
    }

    fn finish(&mut self, ops: &mut Vec<FileOp>) {
        if self.stopped {
            return;
        }
        // Data cut short by the end of the channel: that packet never arrived whole.
        for passing in [self.writing.take(), self.reading.take()]
            .into_iter()
            .flatten()
        {
            if let Some(file) = self.files.get_mut(&passing.file) {
                file.lose_sight();
            }
        }
        for (_, file) in std::mem::take(&mut self.files) {
            file.report(ops);
        }
        self.stop();
    }

    fn stop(&mut self) {
        *self = Session {
            stopped: true,
            ..Session::default()
        };
    }

    #[cfg(test)]
    fn footprint(&self) -> usize {
        use std::mem::size_of;
        self.held
            + self.pending.capacity() * size_of::<(u32, Request)>()
            + self.files.len() * (size_of::<OpenFile>() + 2 * size_of::<u64>())
            + self.handles.capacity() * (size_of::<Vec<u8>>() + size_of::<u64>())
    }
}

/// Why a packet's fields stop the watcher.
fn unreadable(what: &str, kind: u8, cut: bool) -> String {
    if cut {
        format!("an SFTP {what} of type {kind} has fields longer than the {MAX_FIELDS} bytes kept")
    } else {
        format!("an SFTP {what} of type {kind} does not read")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    use super::file::{FXF_APPEND, FXF_CREAT, FXF_READ, FXF_TRUNC, FXF_WRITE};
    use super::request::{CLOSE, EXTENDED, MKDIR, REMOVE, RENAME, RMDIR, SYMLINK};
    use super::wire::*;
    use super::*;

    /// One side's bytes.
    #[derive(Debug, Clone)]
    enum Chunk {
        In(Vec<u8>),
        Out(Vec<u8>),
    }

    fn run(chunks: &[Chunk]) -> Vec<FileOp> {
        let mut watcher = SftpWatcher::new();
        let mut ops = Vec::new();
        for chunk in chunks {
            match chunk {
                Chunk::In(data) => watcher.input(data, &mut ops),
                Chunk::Out(data) => watcher.output(data, &mut ops),
            }
        }
        watcher.finish(&mut ops);
        ops
    }

    fn sha(data: &[u8]) -> Option<String> {
        Some(hex::encode(Sha256::digest(data)))
    }

    const PUT: u32 = FXF_WRITE | FXF_CREAT | FXF_TRUNC;

    #[test]
    fn an_upload_is_written_with_its_digest_when_closed() {
        let ops = run(&[
            Chunk::In(init()),
            Chunk::Out(version(3)),
            Chunk::In(open(1, "/up/file", PUT)),
            Chunk::Out(handle(1, b"h")),
            Chunk::In([write(2, b"h", 0, b"hello "), write(3, b"h", 6, b"world")].concat()),
            Chunk::Out([status(2, 0), status(3, 0)].concat()),
            Chunk::In(packet(CLOSE, 4, &string(b"h"))),
            Chunk::Out(status(4, 0)),
        ]);
        assert_eq!(
            ops,
            vec![FileOp::Written {
                path: "/up/file".into(),
                bytes: 11,
                sha256: sha(b"hello world"),
            }]
        );
    }

    #[test]
    fn a_download_is_read_with_its_digest() {
        let ops = run(&[
            Chunk::In(open(1, "/etc/motd", FXF_READ)),
            Chunk::Out(handle(1, b"h")),
            Chunk::In(
                [
                    read(2, b"h", 0, 4),
                    read(3, b"h", 4, 4),
                    read(4, b"h", 8, 4),
                ]
                .concat(),
            ),
            Chunk::Out([data(2, b"abcd"), data(3, b"ef"), status(4, 1)].concat()),
            Chunk::In(packet(CLOSE, 5, &string(b"h"))),
            Chunk::Out(status(5, 0)),
        ]);
        assert_eq!(
            ops,
            vec![FileOp::Read {
                path: "/etc/motd".into(),
                bytes: 6,
                sha256: sha(b"abcdef"),
            }]
        );
    }

    #[test]
    fn writes_out_of_order_or_failed_have_no_digest() {
        let ops = run(&[
            Chunk::In(open(1, "/a", PUT)),
            Chunk::Out(handle(1, b"a")),
            Chunk::In(open(2, "/b", PUT)),
            Chunk::Out(handle(2, b"b")),
            Chunk::In(write(3, b"a", 4, b"late")),
            Chunk::In(write(4, b"a", 0, b"abcd")),
            Chunk::In(write(5, b"b", 0, b"0123")),
            Chunk::In(write(6, b"b", 4, b"4567")),
            Chunk::Out([status(3, 0), status(4, 0), status(5, 0), status(6, 4)].concat()),
            Chunk::In(packet(CLOSE, 7, &string(b"a"))),
            Chunk::In(packet(CLOSE, 8, &string(b"b"))),
            Chunk::Out([status(7, 0), status(8, 0)].concat()),
        ]);
        assert_eq!(
            ops,
            vec![
                FileOp::Written {
                    path: "/a".into(),
                    bytes: 8,
                    sha256: None
                },
                FileOp::Written {
                    path: "/b".into(),
                    bytes: 4,
                    sha256: None
                },
            ]
        );
    }

    #[test]
    fn appending_has_a_digest_only_when_the_file_started_empty() {
        let append = FXF_WRITE | FXF_APPEND;
        let ops = run(&[
            Chunk::In(open(1, "/log", append)),
            Chunk::Out(handle(1, b"l")),
            Chunk::In(open(2, "/new", append | FXF_TRUNC | FXF_CREAT)),
            Chunk::Out(handle(2, b"n")),
            Chunk::In([write(3, b"l", 0, b"x"), write(4, b"n", 77, b"y")].concat()),
            Chunk::Out([status(3, 0), status(4, 0)].concat()),
        ]);
        assert_eq!(
            ops,
            vec![
                FileOp::Written {
                    path: "/log".into(),
                    bytes: 1,
                    sha256: None
                },
                FileOp::Written {
                    path: "/new".into(),
                    bytes: 1,
                    sha256: sha(b"y")
                },
            ]
        );
    }

    #[test]
    fn failures_do_nothing() {
        let ops = run(&[
            Chunk::In(open(1, "/secret", FXF_READ)),
            Chunk::Out(status(1, 3)),
            Chunk::In(packet(REMOVE, 2, &string(b"/nope"))),
            Chunk::Out(status(2, 2)),
            Chunk::In(packet(RENAME, 3, &strings(&[b"/a", b"/b"]))),
            Chunk::Out(status(3, 4)),
            Chunk::In(packet(
                MKDIR,
                4,
                &[string(b"/d"), 0u32.to_be_bytes().to_vec()].concat(),
            )),
            Chunk::Out(status(4, 4)),
            Chunk::In(packet(RMDIR, 5, &string(b"/d"))),
            Chunk::Out(status(5, 4)),
            // A reply that is not a status answers a remove: not done either.
            Chunk::In(packet(REMOVE, 6, &string(b"/odd"))),
            Chunk::Out(handle(6, b"x")),
        ]);
        assert_eq!(ops, vec![]);
    }

    #[test]
    fn names_change_when_the_server_says_so() {
        let ops = run(&[
            Chunk::In(packet(REMOVE, 1, &string(b"/gone"))),
            Chunk::In(packet(RENAME, 2, &strings(&[b"/a", b"/b"]))),
            Chunk::In(packet(
                EXTENDED,
                3,
                &strings(&[b"posix-rename@openssh.com", b"/b", b"/c"]),
            )),
            Chunk::In(packet(
                EXTENDED,
                4,
                &strings(&[b"hardlink@openssh.com", b"/c", b"/hard"]),
            )),
            Chunk::In(packet(SYMLINK, 5, &strings(&[b"/c", b"/soft"]))),
            Chunk::In(packet(
                MKDIR,
                6,
                &[string(b"/d"), 0u32.to_be_bytes().to_vec()].concat(),
            )),
            Chunk::In(packet(RMDIR, 7, &string(b"/d"))),
            Chunk::In(packet(
                EXTENDED,
                8,
                &strings(&[b"statvfs@openssh.com", b"/"]),
            )),
            Chunk::Out((1..=8).flat_map(|id| status(id, 0)).collect()),
        ]);
        assert_eq!(
            ops,
            vec![
                FileOp::Removed {
                    path: "/gone".into()
                },
                FileOp::Renamed {
                    from: "/a".into(),
                    to: "/b".into()
                },
                FileOp::Renamed {
                    from: "/b".into(),
                    to: "/c".into()
                },
                FileOp::Linked {
                    path: "/hard".into(),
                    target: "/c".into(),
                    kind: LinkKind::Hard
                },
                FileOp::Linked {
                    path: "/soft".into(),
                    target: "/c".into(),
                    kind: LinkKind::Symbolic
                },
                FileOp::DirCreated { path: "/d".into() },
                FileOp::DirRemoved { path: "/d".into() },
            ]
        );
    }

    #[test]
    fn a_reused_id_pairs_each_reply_with_the_request_it_answers() {
        // The stat fails, the remove with the same id succeeds: the remove is done.
        let ops = run(&[
            Chunk::In(packet(17, 9, &string(b"/x"))),
            Chunk::In(packet(REMOVE, 9, &string(b"/x"))),
            Chunk::Out([status(9, 2), status(9, 0)].concat()),
        ]);
        assert_eq!(ops, vec![FileOp::Removed { path: "/x".into() }]);
    }

    #[test]
    fn a_handle_given_out_again_closes_the_file_it_named() {
        let ops = run(&[
            Chunk::In(open(1, "/one", FXF_READ)),
            Chunk::Out(handle(1, b"h")),
            Chunk::In(open(2, "/two", FXF_READ)),
            Chunk::Out(handle(2, b"h")),
        ]);
        let paths: Vec<_> = ops
            .iter()
            .map(|op| match op {
                FileOp::Read { path, .. } => path.as_str(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(paths, ["/one", "/two"]);
    }

    #[test]
    fn copy_data_leaves_the_target_without_a_digest() {
        let mut copy = strings(&[b"copy-data", b"r"]);
        copy.extend_from_slice(&0u64.to_be_bytes());
        copy.extend_from_slice(&0u64.to_be_bytes());
        copy.extend(string(b"w"));
        copy.extend_from_slice(&0u64.to_be_bytes());
        let ops = run(&[
            Chunk::In(open(1, "/from", FXF_READ)),
            Chunk::Out(handle(1, b"r")),
            Chunk::In(open(2, "/to", PUT)),
            Chunk::Out(handle(2, b"w")),
            Chunk::In(packet(EXTENDED, 3, &copy)),
            Chunk::Out(status(3, 0)),
        ]);
        assert_eq!(
            ops,
            vec![
                FileOp::Read {
                    path: "/from".into(),
                    bytes: 0,
                    sha256: sha(b"")
                },
                FileOp::Written {
                    path: "/to".into(),
                    bytes: 0,
                    sha256: None
                },
            ]
        );
    }

    #[test]
    fn a_write_cut_short_by_the_end_has_no_digest() {
        let whole = write(2, b"h", 0, b"abcdef");
        let ops = run(&[
            Chunk::In(open(1, "/f", PUT)),
            Chunk::Out(handle(1, b"h")),
            Chunk::In(whole[..whole.len() - 2].to_vec()),
        ]);
        assert_eq!(
            ops,
            vec![FileOp::Written {
                path: "/f".into(),
                bytes: 0,
                sha256: None
            }]
        );
    }

    #[test]
    fn giving_up_is_said_once_and_tells_the_open_files() {
        let mut too_long = (super::super::packet::MAX_PACKET + 1)
            .to_be_bytes()
            .to_vec();
        too_long.extend_from_slice(&[REMOVE, 0, 0, 0, 1]);
        let ops = run(&[
            Chunk::In(open(1, "/f", PUT)),
            Chunk::Out(handle(1, b"h")),
            Chunk::In(write(2, b"h", 0, b"abc")),
            Chunk::In(too_long),
            Chunk::In(packet(REMOVE, 3, &string(b"/x"))),
            Chunk::Out(status(3, 0)),
        ]);
        match ops.as_slice() {
            [FileOp::GaveUp { reason }, FileOp::Written {
                path,
                bytes: 3,
                sha256: None,
            }] => {
                assert!(reason.contains("longer than"), "{reason}");
                assert_eq!(path, "/f");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn another_protocol_version_is_not_followed() {
        let ops = run(&[
            Chunk::Out(version(6)),
            Chunk::In(packet(REMOVE, 1, &string(b"/x"))),
            Chunk::Out(status(1, 0)),
        ]);
        assert!(matches!(ops.as_slice(), [FileOp::GaveUp { .. }]), "{ops:?}");
    }

    #[test]
    fn bounds_hold_and_are_said() {
        // Requests nobody answers.
        let mut watcher = SftpWatcher::new();
        let mut ops = Vec::new();
        for id in 0..=MAX_PENDING as u32 {
            watcher.input(&packet(17, id, &string(b"/")), &mut ops);
        }
        assert!(matches!(ops.as_slice(), [FileOp::GaveUp { reason }] if reason.contains("wait")));

        // Files opened and never closed.
        let mut watcher = SftpWatcher::new();
        let mut ops = Vec::new();
        for id in 0..=MAX_OPEN_FILES as u32 {
            watcher.input(&open(id, "/f", FXF_READ), &mut ops);
            watcher.output(&handle(id, &id.to_be_bytes()), &mut ops);
        }
        assert_eq!(
            ops.len(),
            1 + MAX_OPEN_FILES,
            "a give-up, then every open file"
        );
        assert!(matches!(&ops[0], FileOp::GaveUp { reason } if reason.contains("open")));

        // Long paths waiting.
        let mut watcher = SftpWatcher::new();
        let mut ops = Vec::new();
        let path = "p".repeat(4000);
        for id in 0..100 {
            watcher.input(&packet(REMOVE, id, &string(path.as_bytes())), &mut ops);
        }
        assert!(matches!(ops.as_slice(), [FileOp::GaveUp { reason }] if reason.contains("paths")));
    }

    /// An SFTP-shaped packet with random type, id and fields, either way.
    fn any_packet() -> impl Strategy<Value = Chunk> {
        let handle = prop::sample::select(vec![b"a".to_vec(), b"b".to_vec(), vec![0, 0, 0, 1]]);
        let path = "/[a-c]{1,3}";
        let id = 0u32..6;
        prop_oneof![
            (id.clone(), path, any::<u32>())
                .prop_map(|(id, path, flags)| Chunk::In(open(id, &path, flags))),
            (
                id.clone(),
                handle.clone(),
                0u64..12,
                prop::collection::vec(any::<u8>(), 0..8)
            )
                .prop_map(|(id, h, offset, d)| Chunk::In(write(id, &h, offset, &d))),
            (id.clone(), handle.clone(), 0u64..12, 0u32..8)
                .prop_map(|(id, h, offset, len)| Chunk::In(read(id, &h, offset, len))),
            (id.clone(), handle.clone()).prop_map(|(id, h)| Chunk::In(packet(
                CLOSE,
                id,
                &string(&h)
            ))),
            (id.clone(), 0u8..=255, path).prop_map(|(id, kind, p)| Chunk::In(packet(
                kind,
                id,
                &strings(&[p.as_bytes(), b"/z"])
            ))),
            (id.clone(), 0u32..5).prop_map(|(id, code)| Chunk::Out(status(id, code))),
            (id.clone(), handle).prop_map(|(id, h)| Chunk::Out(super::wire::handle(id, &h))),
            (id.clone(), prop::collection::vec(any::<u8>(), 0..8))
                .prop_map(|(id, d)| Chunk::Out(data(id, &d))),
            (id, 0u8..=255, prop::collection::vec(any::<u8>(), 0..12))
                .prop_map(|(id, kind, f)| Chunk::Out(packet(kind, id, &f))),
        ]
    }

    fn side(chunk: &Chunk) -> (bool, &[u8]) {
        match chunk {
            Chunk::In(data) => (true, data),
            Chunk::Out(data) => (false, data),
        }
    }

    fn make(input: bool, data: &[u8]) -> Chunk {
        if input {
            Chunk::In(data.to_vec())
        } else {
            Chunk::Out(data.to_vec())
        }
    }

    /// The same session with every chunk cut at the given positions.
    fn recut(chunks: &[Chunk], cuts: &[usize]) -> Vec<Chunk> {
        let mut out = Vec::new();
        for (index, chunk) in chunks.iter().enumerate() {
            let (input, data) = side(chunk);
            let cut = cuts.get(index).copied().unwrap_or(0) % (data.len() + 1);
            out.push(make(input, &data[..cut]));
            out.push(make(input, &data[cut..]));
        }
        out
    }

    /// The same session a byte at a time.
    fn bytewise(chunks: &[Chunk]) -> Vec<Chunk> {
        let mut out = Vec::new();
        for chunk in chunks {
            let (input, data) = side(chunk);
            out.extend(data.iter().map(|byte| make(input, &[*byte])));
        }
        out
    }

    fn any_chunks() -> impl Strategy<Value = Vec<(bool, Vec<u8>)>> {
        prop::collection::vec(
            (any::<bool>(), prop::collection::vec(any::<u8>(), 0..64)),
            0..64,
        )
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic_and_stay_bounded(chunks in any_chunks()) {
            let mut watcher = SftpWatcher::new();
            let mut ops = Vec::new();
            for (input, data) in &chunks {
                if *input {
                    watcher.input(data, &mut ops);
                } else {
                    watcher.output(data, &mut ops);
                }
                prop_assert!(watcher.footprint() <= 2 * MAX_FIELDS + MAX_HELD + 4096 * 64);
            }
            watcher.finish(&mut ops);
            let gave_up = ops.iter().filter(|op| matches!(op, FileOp::GaveUp { .. })).count();
            prop_assert!(gave_up <= 1);
        }

        #[test]
        fn sftp_shaped_sessions_do_not_depend_on_how_bytes_are_cut(
            chunks in prop::collection::vec(any_packet(), 0..40),
            cuts in prop::collection::vec(any::<usize>(), 40),
        ) {
            let whole = run(&chunks);
            prop_assert_eq!(&run(&recut(&chunks, &cuts)), &whole);
            prop_assert_eq!(&run(&bytewise(&chunks)), &whole);
        }
    }
}
