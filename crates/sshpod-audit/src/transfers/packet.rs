//! SFTP packets read as they pass, from chunks cut anywhere.
//!
//! A packet is `uint32 length`, `byte type`, `uint32 id` (the version in `INIT` and `VERSION`),
//! then fields. The reader keeps at most [`MAX_FIELDS`] bytes of a packet's fields and skips
//! the rest; the file data of `WRITE` requests and `DATA` replies is never kept but handed out
//! piece by piece as it arrives, so following a session costs the same memory whatever its
//! packets' sizes.

/// The longest packet followed: four times what OpenSSH accepts in either direction
/// (256 KiB), so other implementations' larger packets are followed too. Packets are never
/// held whole; a longer length means the bytes are not SFTP (or are meant to derail).
pub(crate) const MAX_PACKET: u32 = 1024 * 1024;

/// The most bytes of a packet's fields kept: two paths of Linux's `PATH_MAX` and change. A
/// packet whose fields run longer is kept cut, and a field past the cut cannot be read.
pub(crate) const MAX_FIELDS: usize = 9 * 1024;

/// The longest handle the protocol allows (draft-ietf-secsh-filexfer-02, 3.).
pub(crate) const MAX_HANDLE: usize = 256;

/// `SSH_FXP_WRITE`: a request carrying file data.
pub(crate) const WRITE: u8 = 6;
/// `SSH_FXP_DATA`: a reply carrying file data.
pub(crate) const DATA: u8 = 103;

/// Length, type and id.
const HEAD: usize = 9;

/// Which way the packets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    /// Client to server.
    Requests,
    /// Server to client.
    Replies,
}

impl Stream {
    /// Whether packets of `kind` carry file data in this direction.
    fn carries_data(self, kind: u8) -> bool {
        match self {
            Stream::Requests => kind == WRITE,
            Stream::Replies => kind == DATA,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Stream::Requests => "request",
            Stream::Replies => "reply",
        }
    }
}

/// What the reader found in the bytes so far.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    /// A whole packet without file data. `fields` follow the id; `cut` says they were longer
    /// than [`MAX_FIELDS`] and only the first bytes are here.
    Packet {
        kind: u8,
        id: u32,
        fields: &'a [u8],
        cut: bool,
    },
    /// The start of a `WRITE` or `DATA` packet: the fields before the data (a `WRITE`'s handle
    /// and offset; nothing for `DATA`) and the data's length. [`Piece::Data`] follows, then
    /// [`Piece::DataEnd`] once the whole packet has passed.
    DataHead { id: u32, fields: &'a [u8], len: u32 },
    /// The next bytes of the data.
    Data(&'a [u8]),
    /// The data-carrying packet has passed whole.
    DataEnd,
    /// The bytes are not SFTP as followed here; the reader reads nothing more.
    Broken(Broken),
}

/// Why the reader stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Broken {
    /// A packet's length is over [`MAX_PACKET`].
    TooLong(Stream, u32),
    /// A packet is shorter than its type and id.
    TooShort(Stream),
    /// A `WRITE`'s handle is longer than [`MAX_HANDLE`].
    LongHandle(u32),
    /// A packet ends inside the fields before its data, or inside its data.
    Truncated(Stream, u8),
}

impl Broken {
    /// Why, for a person (numbers only, nothing the client chose as text).
    pub(crate) fn reason(self) -> String {
        match self {
            Broken::TooLong(stream, len) => format!(
                "an SFTP {} of {len} bytes is longer than the {MAX_PACKET} bytes followed",
                stream.name()
            ),
            Broken::TooShort(stream) => {
                format!("an SFTP {} is shorter than its type and id", stream.name())
            }
            Broken::LongHandle(len) => {
                format!("an SFTP write names a handle of {len} bytes (at most {MAX_HANDLE})")
            }
            Broken::Truncated(stream, kind) => format!(
                "an SFTP {} of type {kind} ends inside its data",
                stream.name()
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading length, type and id.
    Head,
    /// Keeping fields until `want` bytes are kept.
    Fields { want: usize },
    /// Handing out `left` more bytes of data.
    Data { left: u32 },
    /// Skipping the rest of the packet, then announcing its end.
    Skip { then: End },
    /// Stopped for good.
    Broken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Packet,
    Data,
}

/// What a step produced, before it is turned into a [`Piece`] borrowing the reader.
enum Step<'a> {
    NeedMore,
    Packet,
    DataHead,
    Data(&'a [u8]),
    DataEnd,
    Broken(Broken),
}

/// Reads one direction's packets.
#[derive(Debug)]
pub(crate) struct PacketReader {
    stream: Stream,
    phase: Phase,
    head: [u8; HEAD],
    head_len: usize,
    kind: u8,
    id: u32,
    /// Bytes of the current packet not yet taken.
    left: u32,
    fields: Vec<u8>,
    cut: bool,
    data_len: u32,
}

impl PacketReader {
    pub(crate) fn new(stream: Stream) -> Self {
        Self {
            stream,
            phase: Phase::Head,
            head: [0; HEAD],
            head_len: 0,
            kind: 0,
            id: 0,
            left: 0,
            fields: Vec::new(),
            cut: false,
            data_len: 0,
        }
    }

    /// The next piece in `input`, taking the bytes it used from the front of `input`; `None`
    /// when `input` is used up without completing one.
    pub(crate) fn next<'s, 'a: 's>(&'s mut self, input: &mut &'a [u8]) -> Option<Piece<'s>> {
        let piece = match self.step(input) {
            Step::NeedMore => return None,
            Step::Packet => Piece::Packet {
                kind: self.kind,
                id: self.id,
                fields: &self.fields,
                cut: self.cut,
            },
            Step::DataHead => Piece::DataHead {
                id: self.id,
                // Without the data's length, the last four bytes kept.
                fields: self
                    .fields
                    .get(..self.fields.len().saturating_sub(4))
                    .unwrap_or_default(),
                len: self.data_len,
            },
            Step::Data(data) => Piece::Data(data),
            Step::DataEnd => Piece::DataEnd,
            Step::Broken(broken) => Piece::Broken(broken),
        };
        Some(piece)
    }

    /// Reads nothing more and keeps nothing.
    pub(crate) fn stop(&mut self) {
        self.phase = Phase::Broken;
        self.fields = Vec::new();
    }

    /// Bytes this reader holds.
    #[cfg(test)]
    pub(crate) fn footprint(&self) -> usize {
        self.fields.capacity()
    }

    fn step<'a>(&mut self, input: &mut &'a [u8]) -> Step<'a> {
        loop {
            match self.phase {
                Phase::Broken => return Step::NeedMore,
                Phase::Head => {
                    let n = (HEAD - self.head_len).min(input.len());
                    self.head[self.head_len..self.head_len + n].copy_from_slice(&input[..n]);
                    self.head_len += n;
                    *input = &input[n..];
                    if self.head_len < HEAD {
                        return Step::NeedMore;
                    }
                    self.head_len = 0;
                    if let Err(broken) = self.start_packet() {
                        return self.broken(broken);
                    }
                }
                Phase::Fields { want } => {
                    let n = (want - self.fields.len()).min(input.len());
                    self.fields.extend_from_slice(&input[..n]);
                    self.left -= n as u32;
                    *input = &input[n..];
                    if self.fields.len() < want {
                        return Step::NeedMore;
                    }
                    if !self.stream.carries_data(self.kind) {
                        self.cut = self.left > 0;
                        self.phase = Phase::Skip { then: End::Packet };
                        continue;
                    }
                    match self.fields_before_data() {
                        Err(broken) => return self.broken(broken),
                        Ok(total) if total > self.fields.len() => {
                            if let Err(broken) = self.want_fields(total) {
                                return self.broken(broken);
                            }
                        }
                        Ok(_) => {
                            let tail = self.fields.len().saturating_sub(4);
                            self.data_len =
                                Fields::new(&self.fields[tail..]).u32().unwrap_or_default();
                            if self.data_len > self.left {
                                return self.broken(Broken::Truncated(self.stream, self.kind));
                            }
                            self.left -= self.data_len;
                            self.phase = Phase::Data {
                                left: self.data_len,
                            };
                            return Step::DataHead;
                        }
                    }
                }
                Phase::Data { left: 0 } => self.phase = Phase::Skip { then: End::Data },
                Phase::Data { left } => {
                    if input.is_empty() {
                        return Step::NeedMore;
                    }
                    let n = (left as usize).min(input.len());
                    let (data, rest) = input.split_at(n);
                    *input = rest;
                    self.phase = Phase::Data {
                        left: left - n as u32,
                    };
                    return Step::Data(data);
                }
                Phase::Skip { then } => {
                    let n = (self.left as usize).min(input.len());
                    self.left -= n as u32;
                    *input = &input[n..];
                    if self.left > 0 {
                        return Step::NeedMore;
                    }
                    self.phase = Phase::Head;
                    return match then {
                        End::Packet => Step::Packet,
                        End::Data => Step::DataEnd,
                    };
                }
            }
        }
    }

    /// Takes a packet's length, type and id and decides how to read the rest.
    fn start_packet(&mut self) -> Result<(), Broken> {
        let [l0, l1, l2, l3, kind, i0, i1, i2, i3] = self.head;
        let len = u32::from_be_bytes([l0, l1, l2, l3]);
        if len > MAX_PACKET {
            return Err(Broken::TooLong(self.stream, len));
        }
        if len < 5 {
            return Err(Broken::TooShort(self.stream));
        }
        self.kind = kind;
        self.id = u32::from_be_bytes([i0, i1, i2, i3]);
        self.left = len - 5;
        self.fields.clear();
        self.cut = false;
        if self.stream.carries_data(kind) {
            // At least the first length: the handle's for WRITE, the data's for DATA.
            self.want_fields(4)
        } else {
            self.phase = Phase::Fields {
                want: (self.left as usize).min(MAX_FIELDS),
            };
            Ok(())
        }
    }

    /// Keeps fields up to `total` bytes, which must lie within the packet.
    fn want_fields(&mut self, total: usize) -> Result<(), Broken> {
        if total - self.fields.len() > self.left as usize {
            return Err(Broken::Truncated(self.stream, self.kind));
        }
        self.phase = Phase::Fields { want: total };
        Ok(())
    }

    /// How many bytes of fields come before a data-carrying packet's data, its length
    /// included, given the fields kept so far (at least four).
    fn fields_before_data(&self) -> Result<usize, Broken> {
        match self.stream {
            Stream::Replies => Ok(4),
            Stream::Requests => {
                let mut fields = Fields::new(&self.fields);
                let handle = fields.u32().unwrap_or_default();
                if handle as usize > MAX_HANDLE {
                    return Err(Broken::LongHandle(handle));
                }
                // handle, offset, data length
                Ok(4 + handle as usize + 8 + 4)
            }
        }
    }

    fn broken<'a>(&mut self, broken: Broken) -> Step<'a> {
        self.stop();
        Step::Broken(broken)
    }
}

/// Reads fields in order; every getter is `None` past the end.
#[derive(Debug)]
pub(crate) struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    pub(crate) fn new(fields: &'a [u8]) -> Self {
        Self { rest: fields }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(taken)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        let bytes = self.take(4)?;
        Some(u32::from_be_bytes(bytes.try_into().ok()?))
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        let bytes = self.take(8)?;
        Some(u64::from_be_bytes(bytes.try_into().ok()?))
    }

    /// A `string`: its length, then that many bytes.
    pub(crate) fn string(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()?;
        self.take(len as usize)
    }

    /// A path as the server takes it: a string without NUL bytes (OpenSSH's sftp-server stops
    /// on one). Bytes that are not UTF-8 become U+FFFD.
    pub(crate) fn path(&mut self) -> Option<String> {
        let bytes = self.string()?;
        if bytes.contains(&0) {
            return None;
        }
        Some(String::from_utf8_lossy(bytes).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(kind: u8, id: u32, fields: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(fields.len() as u32 + 5).to_be_bytes());
        out.push(kind);
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(fields);
        out
    }

    fn string(bytes: &[u8]) -> Vec<u8> {
        let mut out = (bytes.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(bytes);
        out
    }

    /// Every piece as owned values, data pieces joined.
    #[derive(Debug, PartialEq, Eq)]
    enum Owned {
        Packet(u8, u32, Vec<u8>, bool),
        DataHead(u32, Vec<u8>, u32),
        Data(Vec<u8>),
        DataEnd,
        Broken(Broken),
    }

    fn read_all(stream: Stream, chunks: &[&[u8]]) -> Vec<Owned> {
        let mut reader = PacketReader::new(stream);
        let mut out: Vec<Owned> = Vec::new();
        for chunk in chunks {
            let mut input = *chunk;
            while let Some(piece) = reader.next(&mut input) {
                let owned = match piece {
                    Piece::Packet {
                        kind,
                        id,
                        fields,
                        cut,
                    } => Owned::Packet(kind, id, fields.to_vec(), cut),
                    Piece::DataHead { id, fields, len } => {
                        Owned::DataHead(id, fields.to_vec(), len)
                    }
                    Piece::Data(data) => {
                        if let Some(Owned::Data(previous)) = out.last_mut() {
                            previous.extend_from_slice(data);
                            continue;
                        }
                        Owned::Data(data.to_vec())
                    }
                    Piece::DataEnd => Owned::DataEnd,
                    Piece::Broken(broken) => Owned::Broken(broken),
                };
                out.push(owned);
            }
        }
        out
    }

    fn write_request(id: u32, handle: &[u8], offset: u64, data: &[u8]) -> Vec<u8> {
        let mut fields = string(handle);
        fields.extend_from_slice(&offset.to_be_bytes());
        fields.extend_from_slice(&string(data));
        packet(WRITE, id, &fields)
    }

    #[test]
    fn packets_come_out_whole_however_the_bytes_are_cut() {
        let mut bytes = packet(4, 7, &string(b"h1"));
        bytes.extend(write_request(8, b"h1", 5, b"some data"));
        bytes.extend(packet(13, 9, &string(b"/tmp/x")));
        let whole = read_all(Stream::Requests, &[&bytes]);
        let mut head = string(b"h1");
        head.extend_from_slice(&5u64.to_be_bytes());
        assert_eq!(
            whole,
            vec![
                Owned::Packet(4, 7, string(b"h1"), false),
                Owned::DataHead(8, head, 9),
                Owned::Data(b"some data".to_vec()),
                Owned::DataEnd,
                Owned::Packet(13, 9, string(b"/tmp/x"), false),
            ]
        );
        for at in 0..bytes.len() {
            let (a, b) = bytes.split_at(at);
            assert_eq!(read_all(Stream::Requests, &[a, b]), whole, "cut at {at}");
        }
        let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(read_all(Stream::Requests, &bytewise), whole);
    }

    #[test]
    fn data_replies_are_handed_out_and_trailing_bytes_skipped() {
        let mut fields = string(b"abc");
        fields.extend_from_slice(b"trailing");
        let bytes = packet(DATA, 3, &fields);
        assert_eq!(
            read_all(Stream::Replies, &[&bytes]),
            vec![
                Owned::DataHead(3, Vec::new(), 3),
                Owned::Data(b"abc".to_vec()),
                Owned::DataEnd,
            ]
        );
        // A WRITE is nothing special in replies.
        let write = write_request(1, b"h", 0, b"x");
        assert!(matches!(
            read_all(Stream::Replies, &[&write]).as_slice(),
            [Owned::Packet(WRITE, 1, _, false)]
        ));
    }

    #[test]
    fn long_fields_are_kept_cut() {
        let path = vec![b'a'; MAX_FIELDS + 100];
        let bytes = packet(3, 1, &string(&path));
        let pieces = read_all(Stream::Requests, &[&bytes]);
        match pieces.as_slice() {
            [Owned::Packet(3, 1, fields, true)] => assert_eq!(fields.len(), MAX_FIELDS),
            other => panic!("expected one cut packet, got {other:?}"),
        }
    }

    #[test]
    fn impossible_lengths_stop_the_reader() {
        let too_long = (MAX_PACKET + 1).to_be_bytes();
        let mut bytes = too_long.to_vec();
        bytes.extend_from_slice(&[3, 0, 0, 0, 1]);
        bytes.extend(packet(13, 9, &string(b"/x")));
        assert_eq!(
            read_all(Stream::Requests, &[&bytes]),
            vec![Owned::Broken(Broken::TooLong(
                Stream::Requests,
                MAX_PACKET + 1
            ))]
        );

        let short = [0, 0, 0, 1, 3, 0, 0, 0, 0];
        assert_eq!(
            read_all(Stream::Replies, &[&short]),
            vec![Owned::Broken(Broken::TooShort(Stream::Replies))]
        );

        let mut write = write_request(1, b"h", 0, b"data");
        let declared = (write.len() as u32 - 4 - 2).to_be_bytes();
        write[..4].copy_from_slice(&declared);
        assert_eq!(
            read_all(Stream::Requests, &[&write]),
            vec![Owned::Broken(Broken::Truncated(Stream::Requests, WRITE))]
        );

        let long_handle = write_request(1, &[b'h'; MAX_HANDLE + 1], 0, b"data");
        assert_eq!(
            read_all(Stream::Requests, &[&long_handle]),
            vec![Owned::Broken(Broken::LongHandle(MAX_HANDLE as u32 + 1))]
        );
    }

    #[test]
    fn fields_read_in_order_and_refuse_to_run_past_the_end() {
        let mut bytes = 7u32.to_be_bytes().to_vec();
        bytes.extend_from_slice(&9u64.to_be_bytes());
        bytes.extend(string(b"/a\xffb"));
        bytes.extend(string(b"a\0b"));
        let mut fields = Fields::new(&bytes);
        assert_eq!(fields.u32(), Some(7));
        assert_eq!(fields.u64(), Some(9));
        assert_eq!(fields.path().as_deref(), Some("/a\u{fffd}b"));
        assert_eq!(fields.path(), None, "NUL inside a path");
        assert_eq!(fields.u32(), None);
        assert_eq!(Fields::new(&string(b"abc")[..5]).string(), None);
    }
}
