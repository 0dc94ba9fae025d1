//! Following a legacy scp session (`scp -O`, or scp before OpenSSH 9.0): the remote end runs
//! `scp -t TARGET` to receive files (an upload) or `scp -f SOURCE...` to send them (a
//! download).
//!
//! One side, the source, sends records, each a line: `C<mode> <size> <name>` announces a file
//! whose bytes follow, then a status byte; `D<mode> 0 <name>` enters a directory and `E` leaves
//! it (with `-r`); `T...` carries times; `\x01message` and `\x02message` report errors. The
//! other side, the sink, answers every record but error lines with a reply: `\0` (go on) or an
//! error line. A file's bytes follow only after the sink said go on, and each side reads the
//! other's bytes in order, so records and replies pair by position, as OpenSSH's scp pairs
//! them. In an upload the source is the client (input) and the sink the server (output); in a
//! download the other way round.
//!
//! The bytes go to or come from a place worked out from the command line: the file's name under
//! the target (or the target itself), under the directories entered. When the target is one
//! path that may or may not be an existing directory, only the server knows which; the watcher
//! takes it for the file itself when its last part is the file's name and for a directory
//! otherwise.

mod command;
mod records;

use std::collections::VecDeque;

use self::command::{join, Direction, Places, ScpCommand};
use self::records::{parse_entry, take_line, Reply, ReplyReader};
use super::digest::RunDigest;
use super::FileOp;

/// The most bytes kept from the source while the sink's reply is awaited. A real source waits
/// for the reply; bytes sent ahead are kept to be read in the sink's order, up to this.
const MAX_AHEAD: usize = 64 * 1024;
/// The most replies kept ahead of the records they answer.
const MAX_REPLIES: usize = 64;
/// The longest path built (Linux's `PATH_MAX`).
const MAX_PATH: usize = 4096;

/// Follows one legacy scp channel. Feed it the channel's bytes in order, as they pass.
///
/// It keeps a record line (2 KiB), the path being written (4 KiB) and, from a source that
/// does not wait for replies, at most 64 KiB sent ahead of them.
#[derive(Debug)]
pub struct ScpWatcher {
    direction: Direction,
    places: Places,
    recursive: bool,
    step: Step,
    /// The sink's replies, read as they come and kept until their record.
    replies: VecDeque<Reply>,
    reply_reader: ReplyReader,
    /// The source's bytes not used yet (a line not whole, or sent ahead of a reply).
    ahead: Vec<u8>,
    /// The directory entered last (empty at the top).
    dir: String,
    /// For each directory entered, the length of `dir` before it.
    depth: Vec<usize>,
}

#[derive(Debug)]
enum Step {
    /// Waiting for the sink's first reply (it is ready).
    Start,
    /// Reading the source's next record.
    Record { first: bool },
    /// A record waits for the sink's reply.
    Reply(Asked),
    /// A file's bytes pass.
    Data(Transfer),
    /// The source's status after a file's bytes.
    SourceStatus(Transfer, ReplyReader),
    /// Nothing more to follow.
    Ended,
}

/// What a reply answers.
#[derive(Debug)]
enum Asked {
    Times,
    File(Transfer),
    Dir(String),
    End,
    FileDone { transfer: Transfer, source_ok: bool },
}

/// A file under way.
#[derive(Debug)]
struct Transfer {
    path: String,
    size: u64,
    left: u64,
    digest: RunDigest,
}

impl ScpWatcher {
    /// The watcher for an exec request's command line, if it runs scp's remote end: `scp` (or
    /// a path to it) with `-t` and one target, or with `-f` and the sources. `None` for
    /// anything else, and for lines that are more than one simple command.
    pub fn from_command_line(line: &str) -> Option<Self> {
        let ScpCommand {
            direction,
            places,
            recursive,
        } = ScpCommand::parse(line)?;
        Some(Self {
            direction,
            places,
            recursive,
            step: Step::Start,
            replies: VecDeque::new(),
            reply_reader: ReplyReader::default(),
            ahead: Vec::new(),
            dir: String::new(),
            depth: Vec::new(),
        })
    }

    /// Bytes from the client to the process.
    pub fn input(&mut self, data: &[u8], ops: &mut Vec<FileOp>) {
        match self.direction {
            Direction::Upload => self.source_bytes(data, ops),
            Direction::Download => self.sink_bytes(data, ops),
        }
    }

    /// Bytes from the process to the client.
    pub fn output(&mut self, data: &[u8], ops: &mut Vec<FileOp>) {
        match self.direction {
            Direction::Upload => self.sink_bytes(data, ops),
            Direction::Download => self.source_bytes(data, ops),
        }
    }

    /// The channel closed: tells a file cut short.
    pub fn finish(&mut self, ops: &mut Vec<FileOp>) {
        self.end(ops);
    }

    /// An estimate of the bytes this watcher holds, for tests of its bounds.
    #[cfg(test)]
    pub(crate) fn footprint(&self) -> usize {
        self.ahead.capacity()
            + self.replies.capacity()
            + self.dir.capacity()
            + self.depth.capacity() * std::mem::size_of::<usize>()
    }

    fn source_bytes(&mut self, data: &[u8], ops: &mut Vec<FileOp>) {
        if matches!(self.step, Step::Ended) {
            return;
        }
        if self.ahead.is_empty() {
            let used = self.run(data, ops);
            self.keep(&data[used..], ops);
        } else {
            let mut ahead = std::mem::take(&mut self.ahead);
            ahead.extend_from_slice(data);
            let used = self.run(&ahead, ops);
            ahead.drain(..used);
            self.ahead = ahead;
            self.check_ahead(ops);
        }
    }

    fn sink_bytes(&mut self, mut data: &[u8], ops: &mut Vec<FileOp>) {
        if matches!(self.step, Step::Ended) {
            return;
        }
        while let Some(reply) = self.reply_reader.read(&mut data) {
            if self.replies.len() >= MAX_REPLIES {
                return self.give_up(
                    format!("the scp sink sent more than {MAX_REPLIES} replies ahead"),
                    ops,
                );
            }
            self.replies.push_back(reply);
        }
        let ahead = std::mem::take(&mut self.ahead);
        let used = self.run(&ahead, ops);
        self.keep(&ahead[used..], ops);
    }

    /// Keeps the source's bytes not used yet.
    fn keep(&mut self, rest: &[u8], ops: &mut Vec<FileOp>) {
        if matches!(self.step, Step::Ended) {
            self.ahead = Vec::new();
            return;
        }
        self.ahead.clear();
        self.ahead.extend_from_slice(rest);
        self.check_ahead(ops);
    }

    fn check_ahead(&mut self, ops: &mut Vec<FileOp>) {
        if matches!(self.step, Step::Ended) {
            self.ahead = Vec::new();
        } else if self.ahead.len() > MAX_AHEAD {
            self.give_up(
                format!("the scp source sent more than {MAX_AHEAD} bytes ahead of the replies"),
                ops,
            );
        }
    }

    /// Follows the session as far as the source's bytes `src` and the replies kept allow;
    /// returns how many bytes of `src` it used.
    fn run(&mut self, src: &[u8], ops: &mut Vec<FileOp>) -> usize {
        let mut input = src;
        loop {
            // `advance` owns the step while it works; a give-up inside it returns `Ended`.
            let step = std::mem::replace(&mut self.step, Step::Ended);
            let (next, moved) = self.advance(step, &mut input, ops);
            self.step = next;
            if matches!(self.step, Step::Ended) {
                return src.len();
            }
            if !moved {
                return src.len() - input.len();
            }
        }
    }

    /// One step; `false` when it needs more bytes or a reply.
    fn advance(&mut self, step: Step, input: &mut &[u8], ops: &mut Vec<FileOp>) -> (Step, bool) {
        match step {
            Step::Start => match self.replies.pop_front() {
                None => (Step::Start, false),
                Some(Reply::Fatal) => (Step::Ended, true),
                Some(Reply::Ok | Reply::Error) => (Step::Record { first: true }, true),
            },
            Step::Record { first } => {
                if input.first() == Some(&b'\n') {
                    self.give_up("an scp record is an empty line".to_owned(), ops);
                    return (Step::Ended, true);
                }
                match take_line(input) {
                    None => (Step::Record { first }, false),
                    Some(line) => (self.record(line, first, ops), true),
                }
            }
            Step::Reply(asked) => match self.replies.pop_front() {
                None => (Step::Reply(asked), false),
                Some(reply) => (self.answered(asked, reply, ops), true),
            },
            Step::Data(mut transfer) => {
                if transfer.left == 0 {
                    return (Step::SourceStatus(transfer, ReplyReader::default()), true);
                }
                if input.is_empty() {
                    return (Step::Data(transfer), false);
                }
                let n = usize::try_from(transfer.left)
                    .map_or(input.len(), |left| left.min(input.len()));
                let (data, rest) = input.split_at(n);
                transfer.digest.update(data);
                transfer.left -= n as u64;
                *input = rest;
                (Step::Data(transfer), true)
            }
            Step::SourceStatus(transfer, mut reader) => match reader.read(input) {
                None => (Step::SourceStatus(transfer, reader), false),
                Some(Reply::Fatal) => {
                    // The sink exits once the file is written.
                    self.report(transfer, false, None, ops);
                    (Step::Ended, true)
                }
                Some(reply) => (
                    Step::Reply(Asked::FileDone {
                        transfer,
                        source_ok: reply == Reply::Ok,
                    }),
                    true,
                ),
            },
            Step::Ended => (Step::Ended, false),
        }
    }

    /// What a record line asks, checked as scp's sink checks it.
    fn record(&mut self, line: &[u8], first: bool, ops: &mut Vec<FileOp>) -> Step {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        match text.first() {
            // An error the source reports; the sink notes it and reads on.
            Some(1) => Step::Record { first: false },
            Some(2) => Step::Ended,
            Some(b'E') => Step::Reply(Asked::End),
            // The sink checks times strictly and exits with an error reply on bad ones; either
            // reply moves on the same way here.
            Some(b'T') => Step::Reply(Asked::Times),
            Some(kind @ (b'C' | b'D')) => {
                let Some((size, name)) = parse_entry(text) else {
                    self.give_up("an scp record does not read".to_owned(), ops);
                    return Step::Ended;
                };
                if *kind == b'D' && !self.recursive {
                    self.give_up("an scp directory record without -r".to_owned(), ops);
                    return Step::Ended;
                }
                let path = self.place(&name);
                if path.len() > MAX_PATH {
                    self.give_up(format!("an scp path is longer than {MAX_PATH} bytes"), ops);
                    return Step::Ended;
                }
                if *kind == b'D' {
                    Step::Reply(Asked::Dir(path))
                } else {
                    Step::Reply(Asked::File(Transfer {
                        path,
                        size,
                        left: size,
                        digest: RunDigest::new(),
                    }))
                }
            }
            _ => {
                let reason = if first {
                    "the scp source sent something other than scp records"
                } else {
                    "the scp source sent a line that is not a record"
                };
                self.give_up(reason.to_owned(), ops);
                Step::Ended
            }
        }
    }

    /// What follows the sink's reply to a record.
    fn answered(&mut self, asked: Asked, reply: Reply, ops: &mut Vec<FileOp>) -> Step {
        let go_on = reply == Reply::Ok;
        let next = match asked {
            Asked::Times => Step::Record { first: false },
            Asked::File(transfer) if go_on => Step::Data(transfer),
            Asked::File(_) => Step::Record { first: false },
            Asked::Dir(path) => {
                if go_on {
                    self.depth.push(self.dir.len());
                    self.dir = path;
                }
                // The sink reads a directory's records as it reads the top's.
                Step::Record { first: go_on }
            }
            Asked::End => match self.depth.pop() {
                Some(len) => {
                    self.dir.truncate(len);
                    Step::Record { first: false }
                }
                // Leaving the top: the sink is done.
                None => Step::Ended,
            },
            Asked::FileDone {
                transfer,
                source_ok,
            } => {
                self.report(transfer, source_ok, Some(go_on), ops);
                Step::Record { first: false }
            }
        };
        if reply == Reply::Fatal {
            return Step::Ended;
        }
        next
    }

    /// Where a file or directory named `name` in a record goes or comes from.
    fn place(&self, name: &str) -> String {
        if self.depth.is_empty() {
            self.places.top(name)
        } else {
            join(&self.dir, name)
        }
    }

    /// Tells a file: its digest only if all of it passed and neither side reported an error
    /// (for a download, only the server's side counts).
    fn report(
        &self,
        transfer: Transfer,
        source_ok: bool,
        sink_ok: Option<bool>,
        ops: &mut Vec<FileOp>,
    ) {
        let complete = transfer.left == 0 && source_ok;
        let bytes = transfer.size - transfer.left;
        ops.push(match self.direction {
            Direction::Upload => FileOp::Written {
                path: transfer.path,
                bytes,
                sha256: if complete && sink_ok == Some(true) {
                    transfer.digest.finish()
                } else {
                    None
                },
            },
            Direction::Download => FileOp::Read {
                path: transfer.path,
                bytes,
                sha256: if complete {
                    transfer.digest.finish()
                } else {
                    None
                },
            },
        });
    }

    /// Says why and follows nothing more.
    fn give_up(&mut self, reason: String, ops: &mut Vec<FileOp>) {
        ops.push(FileOp::GaveUp { reason });
        self.end(ops);
    }

    /// Tells a file under way, if any, and stops.
    fn end(&mut self, ops: &mut Vec<FileOp>) {
        match std::mem::replace(&mut self.step, Step::Ended) {
            Step::Data(transfer) | Step::SourceStatus(transfer, _) => {
                self.report(transfer, false, None, ops)
            }
            Step::Reply(Asked::FileDone {
                transfer,
                source_ok,
            }) => self.report(transfer, source_ok, None, ops),
            Step::Start | Step::Record { .. } | Step::Reply(_) | Step::Ended => {}
        }
        self.ahead = Vec::new();
        self.replies = VecDeque::new();
        self.dir = String::new();
        self.depth = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    use super::records::MAX_LINE;
    use super::*;

    /// One side's bytes: `In` from the client, `Out` to it.
    #[derive(Debug, Clone)]
    enum Chunk {
        In(Vec<u8>),
        Out(Vec<u8>),
    }
    use Chunk::{In, Out};

    fn watcher(line: &str) -> ScpWatcher {
        match ScpWatcher::from_command_line(line) {
            Some(watcher) => watcher,
            None => panic!("{line:?} is not an scp server command"),
        }
    }

    fn run(line: &str, chunks: &[Chunk]) -> Vec<FileOp> {
        let mut watcher = watcher(line);
        let mut ops = Vec::new();
        for chunk in chunks {
            match chunk {
                In(data) => watcher.input(data, &mut ops),
                Out(data) => watcher.output(data, &mut ops),
            }
        }
        watcher.finish(&mut ops);
        ops
    }

    fn sha(data: &[u8]) -> Option<String> {
        Some(hex::encode(Sha256::digest(data)))
    }

    fn b(text: &str) -> Vec<u8> {
        text.as_bytes().to_vec()
    }

    fn written(path: &str, data: &[u8]) -> FileOp {
        FileOp::Written {
            path: path.into(),
            bytes: data.len() as u64,
            sha256: sha(data),
        }
    }

    /// An upload of `files` as OpenSSH's scp client sends them, answered yes each time.
    fn upload(files: &[(&str, &[u8])]) -> Vec<Chunk> {
        let mut chunks = vec![Out(vec![0])];
        for (name, data) in files {
            chunks.push(In(b(&format!("C0644 {} {name}\n", data.len()))));
            chunks.push(Out(vec![0]));
            chunks.push(In([*data, b"\0"].concat()));
            chunks.push(Out(vec![0]));
        }
        chunks
    }

    #[test]
    fn uploads_are_written_under_the_target_with_their_digests() {
        let ops = run(
            "scp -d -t /srv",
            &upload(&[
                ("a.txt", b"alpha"),
                ("empty", b""),
                ("b.bin", &[0, 1, 2, 255]),
            ]),
        );
        assert_eq!(
            ops,
            vec![
                written("/srv/a.txt", b"alpha"),
                written("/srv/empty", b""),
                written("/srv/b.bin", &[0, 1, 2, 255]),
            ]
        );
    }

    #[test]
    fn a_single_target_is_the_file_when_named_alike_and_a_directory_otherwise() {
        let one = upload(&[("a.txt", b"x")]);
        let path_of = |line: &str| match run(line, &one).as_slice() {
            [FileOp::Written { path, .. }] => path.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(path_of("scp -t /tmp/a.txt"), "/tmp/a.txt");
        assert_eq!(path_of("scp -t /tmp"), "/tmp/a.txt");
        assert_eq!(path_of("scp -t /tmp/"), "/tmp/a.txt");
        assert_eq!(path_of("scp -t ."), "./a.txt");
        assert_eq!(path_of("scp -t /"), "/a.txt");
        assert_eq!(path_of("scp -t -- '/my dir'"), "/my dir/a.txt");
        assert_eq!(path_of("scp -d -t /tmp/a.txt"), "/tmp/a.txt/a.txt");
    }

    #[test]
    fn refused_files_are_not_written_and_errors_leave_no_digest() {
        let ops = run(
            "scp -t /srv",
            &[
                Out(vec![0]),
                In(b("C0644 3 denied\n")),
                Out(b("\x01scp: /srv/denied: Permission denied\n")),
                // The source could not read all of it: zeros, then an error instead of `\0`.
                In(b("C0644 3 partial\n")),
                Out(vec![0]),
                In(b("ab\0\x01scp: partial: Input/output error\n")),
                Out(vec![0]),
                // The sink could not write it.
                In(b("C0644 2 full\n")),
                Out(vec![0]),
                In(b("ok\0")),
                Out(b("\x01scp: /srv/full: No space left on device\n")),
            ],
        );
        assert_eq!(
            ops,
            vec![
                FileOp::Written {
                    path: "/srv/partial".into(),
                    bytes: 3,
                    sha256: None
                },
                FileOp::Written {
                    path: "/srv/full".into(),
                    bytes: 2,
                    sha256: None
                },
            ]
        );
    }

    #[test]
    fn recursive_uploads_follow_directories_and_times() {
        let ops = run(
            "scp -r -p -t /dst",
            &[
                Out(vec![0]),
                In(b("T1700000000 0 1700000000 0\n")),
                Out(vec![0]),
                In(b("D0755 0 tree\n")),
                Out(vec![0]),
                In(b("C0644 1 top\n")),
                Out(vec![0]),
                In(b("1\0")),
                Out(vec![0]),
                In(b("D0755 0 sub\n")),
                Out(vec![0]),
                In(b("C0600 2 deep\n")),
                Out(vec![0]),
                In(b("22\0")),
                Out(vec![0]),
                In(b("E\n")),
                Out(vec![0]),
                In(b("D0755 0 refused\n")),
                Out(b("\x01scp: /dst/tree/refused: Not a directory\n")),
                In(b("C0644 1 after\n")),
                Out(vec![0]),
                In(b("3\0")),
                Out(vec![0]),
                In(b("E\n")),
                Out(vec![0]),
                In(b("E\n")),
                Out(vec![0]),
            ],
        );
        assert_eq!(
            ops,
            vec![
                written("/dst/tree/top", b"1"),
                written("/dst/tree/sub/deep", b"22"),
                written("/dst/tree/after", b"3"),
            ]
        );
    }

    #[test]
    fn downloads_are_read_from_their_sources() {
        let ops = run(
            "scp -f /etc/hostname",
            &[
                In(vec![0]),
                Out(b("C0644 4 hostname\n")),
                In(vec![0]),
                Out(b("box\n\0")),
                In(vec![0]),
            ],
        );
        assert_eq!(
            ops,
            vec![FileOp::Read {
                path: "/etc/hostname".into(),
                bytes: 4,
                sha256: sha(b"box\n")
            }]
        );

        let ops = run(
            "scp -r -f /var/log/*.log docs/",
            &[
                In(vec![0]),
                Out(b("C0644 1 syslog.log\n")),
                In(vec![0]),
                Out(b("s\0")),
                In(vec![0]),
                Out(b("\x01scp: /var/log/x.log: Permission denied\n")),
                Out(b("D0755 0 docs\n")),
                In(vec![0]),
                Out(b("C0644 1 readme\n")),
                // The client may refuse a file; the server then sends none of it.
                In(b("\x01scp: readme: Permission denied\n")),
                Out(b("E\n")),
                In(vec![0]),
            ],
        );
        assert_eq!(
            ops,
            vec![FileOp::Read {
                path: "/var/log/syslog.log".into(),
                bytes: 1,
                sha256: sha(b"s")
            }]
        );
    }

    #[test]
    fn a_transfer_cut_short_is_told_without_digest() {
        let ops = run(
            "scp -t /srv",
            &[
                Out(vec![0]),
                In(b("C0644 10 big\n")),
                Out(vec![0]),
                In(b("12345")),
            ],
        );
        assert_eq!(
            ops,
            vec![FileOp::Written {
                path: "/srv/big".into(),
                bytes: 5,
                sha256: None
            }]
        );
    }

    #[test]
    fn records_scp_refuses_stop_the_watcher() {
        for record in [
            "C644 1 a\n",
            "C0644 a b\n",
            "C0644 1 a/b\n",
            "C0644 1 ..\n",
            "C0644 99999999999999999999 a\n",
            "D0755 0 dir\n",
            "hello from .bashrc\n",
            "\n",
        ] {
            let ops = run(
                "scp -t /x",
                &[
                    Out(vec![0]),
                    In(b(record)),
                    Out(vec![0]),
                    In(b("C0644 1 z\n")),
                ],
            );
            assert!(
                matches!(ops.as_slice(), [FileOp::GaveUp { .. }]),
                "{record:?}: {ops:?}"
            );
        }
    }

    #[test]
    fn bytes_sent_ahead_are_followed_in_order_up_to_a_bound() {
        // A source that does not wait for replies: its bytes are read once the replies come.
        let mut chunks = vec![In([b("C0644 2 a\n"), b("xy\0")].concat())];
        chunks.extend([Out(vec![0]), Out(vec![0]), Out(vec![0])]);
        assert_eq!(run("scp -t /x", &chunks), vec![written("/x/a", b"xy")]);

        let ops = run("scp -t /x", &[In(vec![b'C'; MAX_AHEAD + MAX_LINE + 1])]);
        assert!(matches!(ops.as_slice(), [FileOp::GaveUp { reason }] if reason.contains("ahead")));

        let ops = run("scp -t /x", &[Out(vec![0; MAX_REPLIES + 2])]);
        assert!(
            matches!(ops.as_slice(), [FileOp::GaveUp { reason }] if reason.contains("replies"))
        );
    }

    fn side(chunk: &Chunk) -> (bool, &[u8]) {
        match chunk {
            In(data) => (true, data),
            Out(data) => (false, data),
        }
    }

    fn make(input: bool, data: &[u8]) -> Chunk {
        if input {
            In(data.to_vec())
        } else {
            Out(data.to_vec())
        }
    }

    /// Bytes that look like scp's more often than random ones do.
    fn scp_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            Just(0u8),
            Just(1),
            Just(b'\n'),
            Just(b'C'),
            Just(b'D'),
            Just(b'E'),
            Just(b' '),
            Just(b'0'),
            Just(b'7'),
            any::<u8>(),
        ]
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic_and_stay_bounded(
            line in prop::sample::select(vec!["scp -t /x", "scp -r -t /x", "scp -r -f a b"]),
            chunks in prop::collection::vec(
                (any::<bool>(), prop::collection::vec(scp_byte(), 0..64)), 0..64),
        ) {
            let mut watcher = watcher(line);
            let mut ops = Vec::new();
            for (input, data) in &chunks {
                if *input { watcher.input(data, &mut ops) } else { watcher.output(data, &mut ops) }
                prop_assert!(watcher.footprint() <= 2 * MAX_AHEAD + 9 * MAX_PATH + MAX_REPLIES);
            }
            watcher.finish(&mut ops);
            let gave_up = ops.iter().filter(|op| matches!(op, FileOp::GaveUp { .. })).count();
            prop_assert!(gave_up <= 1);
        }

        #[test]
        fn uploads_do_not_depend_on_how_bytes_are_cut(
            files in prop::collection::vec(
                ("[a-z]{1,8}", prop::collection::vec(any::<u8>(), 0..300)), 1..5),
            cuts in prop::collection::vec(any::<usize>(), 20),
        ) {
            let files: Vec<(&str, &[u8])> =
                files.iter().map(|(name, data)| (name.as_str(), data.as_slice())).collect();
            let chunks = upload(&files);
            let whole = run("scp -d -t /x", &chunks);
            let expected: Vec<FileOp> =
                files.iter().map(|(name, data)| written(&format!("/x/{name}"), data)).collect();
            prop_assert_eq!(&whole, &expected);
            let recut: Vec<Chunk> = chunks.iter().enumerate().flat_map(|(index, chunk)| {
                let (input, data) = side(chunk);
                let cut = cuts[index % cuts.len()] % (data.len() + 1);
                [make(input, &data[..cut]), make(input, &data[cut..])]
            }).collect();
            prop_assert_eq!(&run("scp -d -t /x", &recut), &whole);
            let bytewise: Vec<Chunk> = chunks.iter().flat_map(|chunk| {
                let (input, data) = side(chunk);
                data.iter().map(move |byte| make(input, &[*byte])).collect::<Vec<_>>()
            }).collect();
            prop_assert_eq!(&run("scp -d -t /x", &bytewise), &whole);
        }
    }
}
