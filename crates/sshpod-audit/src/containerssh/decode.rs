//! Reading a ContainerSSH audit log: the header, then a gzip stream of CBOR. Version 1
//! (ContainerSSH 0.4) holds one array of messages; version 2 (0.5 on) a sequence of messages,
//! each flushed, so a file its writer never finished (a crash, a copy taken mid-session) reads
//! up to its last whole message.
//!
//! The file is hostile input: how much it may decompress to, and how much memory its messages
//! may take, are both capped ([`DEFAULT_LIMIT`], or the caller's limit).

use std::io::{self, BufReader, Read};

use ciborium::Value;
use ciborium_ll::{Decoder, Header};
use flate2::read::MultiGzDecoder;

use super::cbor::{self, Budget, ReadError};
use super::header;
use super::message::{type_id, Message};

/// The limit [`decode`] applies: a log may decompress to at most this many bytes, and its
/// messages may take about as much memory.
pub const DEFAULT_LIMIT: u64 = 1 << 30;

/// A decoded audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditLog {
    /// The format version the file says it has (1 or 2).
    pub version: u64,
    /// Every whole message, in order.
    pub messages: Vec<Message>,
    /// The log stops before its `disconnect` message: its writer was interrupted (a crash) or is
    /// still writing, or the file was cut short. `messages` holds every whole message before
    /// the cut.
    pub truncated: bool,
}

/// Why a file cannot be read as a ContainerSSH audit log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// It does not start with ContainerSSH's header.
    #[error("not a ContainerSSH audit log: the file does not start with its 40-byte \"ContainerSSH-Auditlog\" header")]
    NotAnAuditLog,
    /// Its version is not 1 or 2.
    #[error("ContainerSSH audit log version {version} is not supported (versions 1 and 2 are)")]
    UnsupportedVersion {
        /// The version in the header.
        version: u64,
    },
    /// The body after the header is not gzip, or its compressed data is corrupt.
    #[error("the audit log's body is not valid gzip")]
    Gzip(#[source] io::Error),
    /// The decompressed body is not laid out as the version says.
    #[error("the audit log's body is not a version {version} body: {reason}")]
    Body {
        /// The version in the header.
        version: u64,
        /// What is wrong.
        reason: String,
    },
    /// A message is not valid CBOR, or not a message.
    #[error("message {index} of the audit log is malformed: {reason}")]
    Message {
        /// Its position, from 0.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// The log decompresses to more than the limit, or its messages would take more memory.
    #[error("the audit log is larger than the {limit}-byte limit once decompressed (a decompression bomb, or a corrupt length)")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
}

/// Decodes a ContainerSSH audit log (version 1 or 2) within [`DEFAULT_LIMIT`].
pub fn decode(file: &[u8]) -> Result<AuditLog, DecodeError> {
    decode_with_limit(file, DEFAULT_LIMIT)
}

/// Decodes a ContainerSSH audit log that may decompress to at most `limit` bytes and whose
/// messages may take about `limit` bytes of memory.
pub fn decode_with_limit(file: &[u8], limit: u64) -> Result<AuditLog, DecodeError> {
    let (version, body) = header::split(file).ok_or(DecodeError::NotAnAuditLog)?;
    let mut body = Body {
        reader: Limited::new(BufReader::new(MultiGzDecoder::new(body)), limit),
        budget: Budget::new(limit),
        limit,
        messages: Vec::new(),
    };
    let cut = match version {
        1 => body.read_array()?,
        2 => body.read_sequence()?,
        version => return Err(DecodeError::UnsupportedVersion { version }),
    };
    let ended = body
        .messages
        .last()
        .is_some_and(|m| m.type_id == type_id::DISCONNECT);
    Ok(AuditLog {
        version,
        truncated: cut || !ended,
        messages: body.messages,
    })
}

/// The decompressed body being read.
struct Body<'a> {
    reader: Limited<BufReader<MultiGzDecoder<&'a [u8]>>>,
    budget: Budget,
    limit: u64,
    messages: Vec<Message>,
}

/// How reading one item ended.
enum Step<T> {
    /// It was read whole.
    Read(T),
    /// The body ended; `cut` when it ended inside the item.
    End { cut: bool },
}

impl Body<'_> {
    /// Version 2: messages one after another until the body ends. Returns whether it ended
    /// inside a message.
    fn read_sequence(&mut self) -> Result<bool, DecodeError> {
        loop {
            let start = self.reader.consumed;
            let read = cbor::read_value(&mut Decoder::from(&mut self.reader), &mut self.budget);
            match self.step(read, start)? {
                Step::Read(value) => self.keep(value)?,
                Step::End { cut } => return Ok(cut),
            }
        }
    }

    /// Version 1: one array of messages (ContainerSSH 0.4 left it open-ended and flushed
    /// after each message, so it is read item by item, and a cut is treated as in version 2).
    /// Returns whether the body ended inside the array.
    fn read_array(&mut self) -> Result<bool, DecodeError> {
        let read = Decoder::from(&mut self.reader)
            .pull()
            .map_err(ReadError::from);
        let len = match self.step(read, 0)? {
            Step::Read(Header::Array(len)) => len,
            Step::Read(_) => {
                return Err(DecodeError::Body {
                    version: 1,
                    reason: "it does not start with an array of messages".to_owned(),
                })
            }
            Step::End { cut } => return Ok(cut),
        };
        loop {
            let start = self.reader.consumed;
            let mut decoder = Decoder::from(&mut self.reader);
            let read = cbor::next_item(&mut decoder, len, self.messages.len()).and_then(|item| {
                item.map(|header| cbor::value_from(header, &mut decoder, &mut self.budget, 0))
                    .transpose()
            });
            match self.step(read, start)? {
                Step::Read(Some(value)) => self.keep(value)?,
                Step::Read(None) => return Ok(false),
                // Ending right after a whole message is still a cut: the array is not closed.
                Step::End { .. } => return Ok(true),
            }
        }
    }

    /// Sorts the outcome of reading an item that started at byte `start` of the body: the
    /// body's end is not an error, anything else is.
    fn step<T>(&self, read: Result<T, ReadError>, start: u64) -> Result<Step<T>, DecodeError> {
        match read {
            Ok(item) => Ok(Step::Read(item)),
            Err(_) if self.reader.exceeded => Err(self.too_large()),
            Err(ReadError::OverBudget) => Err(self.too_large()),
            Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Step::End {
                cut: self.reader.consumed > start,
            }),
            Err(ReadError::Io(e)) => Err(DecodeError::Gzip(e)),
            Err(ReadError::Invalid(reason)) => Err(DecodeError::Message {
                index: self.messages.len(),
                reason,
            }),
        }
    }

    /// Keeps a decoded value as the next message.
    fn keep(&mut self, value: Value) -> Result<(), DecodeError> {
        self.budget
            .charge(std::mem::size_of::<Message>() as u64)
            .map_err(|_| self.too_large())?;
        let index = self.messages.len();
        let message = message_from(value).map_err(|reason| DecodeError::Message {
            index,
            reason: reason.to_owned(),
        })?;
        self.messages.push(message);
        Ok(())
    }

    fn too_large(&self) -> DecodeError {
        DecodeError::TooLarge { limit: self.limit }
    }
}

/// A message from its CBOR map (ContainerSSH's keys; unknown keys are ignored, as its decoder
/// does).
fn message_from(value: Value) -> Result<Message, &'static str> {
    let Value::Map(entries) = value else {
        return Err("it is not a map");
    };
    let mut connection_id = None;
    let mut timestamp = None;
    let mut type_id = None;
    let mut channel_id = None;
    let mut payload = Value::Null;
    for (key, value) in entries {
        match (key.as_text(), value) {
            (Some("connectionId"), Value::Text(id)) => connection_id = Some(id),
            (Some("connectionId"), _) => return Err("connectionId is not text"),
            (Some("timestamp"), Value::Integer(t)) => {
                timestamp = Some(i64::try_from(t).map_err(|_| "timestamp is out of range")?)
            }
            (Some("timestamp"), _) => return Err("timestamp is not an integer"),
            (Some("type"), Value::Integer(t)) => {
                type_id = Some(i32::try_from(t).map_err(|_| "type is out of range")?)
            }
            (Some("type"), _) => return Err("type is not an integer"),
            (Some("channelId"), Value::Integer(id)) => {
                channel_id = Some(u64::try_from(id).map_err(|_| "channelId is out of range")?)
            }
            (Some("channelId"), Value::Null) => channel_id = None,
            (Some("channelId"), _) => return Err("channelId is not an integer"),
            (Some("payload"), value) => payload = value,
            _ => {}
        }
    }
    Ok(Message {
        connection_id: connection_id.ok_or("it has no connectionId")?,
        timestamp: timestamp.ok_or("it has no timestamp")?,
        type_id: type_id.ok_or("it has no type")?,
        channel_id,
        payload,
    })
}

/// A reader that counts what it hands out and refuses to hand out more than a limit.
struct Limited<R> {
    inner: R,
    limit: u64,
    /// Bytes handed out so far.
    consumed: u64,
    /// Whether the stream went past the limit.
    exceeded: bool,
}

impl<R: Read> Limited<R> {
    fn new(inner: R, limit: u64) -> Self {
        Self {
            inner,
            limit,
            consumed: 0,
            exceeded: false,
        }
    }
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.limit - self.consumed;
        if left == 0 && !buf.is_empty() {
            // At the limit: only the end of the stream is fine.
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            self.exceeded = true;
            return Err(io::Error::other("the decompressed body passes the limit"));
        }
        let room = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let n = self.inner.read(&mut buf[..room])?;
        self.consumed += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::GzEncoder;
    use flate2::Compression;
    use proptest::prelude::*;

    use super::*;

    /// ContainerSSH 0.4's own test log (see `tests/data/README.md`).
    const SAMPLE_0_4: &[u8] = include_bytes!("../../tests/data/containerssh-0.4.auditlog");

    fn must_decode(file: &[u8]) -> AuditLog {
        match decode(file) {
            Ok(log) => log,
            Err(e) => panic!("decoding: {e}"),
        }
    }

    fn gzip(body: &[u8]) -> Vec<u8> {
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        let written = gz.write_all(body).and_then(|()| gz.finish());
        match written {
            Ok(bytes) => bytes,
            Err(e) => panic!("compressing: {e}"),
        }
    }

    fn file(version: u64, body: &[u8]) -> Vec<u8> {
        let mut file = header::header(version).to_vec();
        file.extend(gzip(body));
        file
    }

    fn cbor(value: &Value) -> Vec<u8> {
        let mut bytes = Vec::new();
        if let Err(e) = ciborium::into_writer(value, &mut bytes) {
            panic!("encoding: {e}");
        }
        bytes
    }

    fn message(type_id: i32, channel: Option<u64>, payload: Value) -> Message {
        Message {
            connection_id: "c0ffee".to_owned(),
            timestamp: 1_700_000_000_000_000_000 + i64::from(type_id),
            type_id,
            channel_id: channel,
            payload,
        }
    }

    #[test]
    fn decodes_containerssh_0_4s_own_log() {
        let log = must_decode(SAMPLE_0_4);
        assert_eq!(log.version, 1);
        assert!(!log.truncated);
        let types: Vec<i32> = log.messages.iter().map(|m| m.type_id).collect();
        assert_eq!(
            types,
            [
                type_id::CONNECT,
                type_id::AUTH_PASSWORD,
                type_id::AUTH_PASSWORD_SUCCESSFUL,
                type_id::HANDSHAKE_SUCCESSFUL,
                type_id::NEW_CHANNEL_SUCCESSFUL,
                type_id::CHANNEL_REQUEST_PTY,
                type_id::CHANNEL_REQUEST_SHELL,
                type_id::WRITE_CLOSE,
                type_id::EXIT,
                type_id::CLOSE,
                type_id::DISCONNECT,
            ]
        );
        assert!(log
            .messages
            .iter()
            .all(|m| m.connection_id == "b55b141aab3741d7b7858db45aa129e8"));
        assert!(log
            .messages
            .windows(2)
            .all(|w| w[0].timestamp <= w[1].timestamp));
        let [connect, password, _, handshake, channel, pty, shell, _, exit, close, disconnect] =
            &log.messages[..]
        else {
            panic!("expected 11 messages, got {}", log.messages.len());
        };
        assert_eq!(connect.text("remoteAddr"), Some("::1"));
        assert_eq!(connect.text("country"), Some("XX"));
        assert_eq!(connect.channel_id, None);
        assert_eq!(password.text("username"), Some("foo"));
        assert_eq!(password.bytes("password"), Some(&b"bar"[..]));
        assert_eq!(handshake.text("username"), Some("foo"));
        assert_eq!(channel.text("channelType"), Some("session"));
        assert_eq!(channel.channel_id, Some(0));
        assert_eq!(pty.text("term"), Some("xterm-256color"));
        assert_eq!(
            (pty.unsigned("columns"), pty.unsigned("rows")),
            (Some(120), Some(30))
        );
        assert_eq!(pty.bytes("modelist").map(<[u8]>::len), Some(11));
        assert_eq!(shell.unsigned("requestId"), Some(1));
        assert_eq!(exit.unsigned("exitStatus"), Some(0));
        assert_eq!(close.payload, Value::Null);
        assert_eq!(
            (disconnect.channel_id, &disconnect.payload),
            (None, &Value::Null)
        );
        assert_eq!(connect.timestamp, 0x168d_7292_b921_d218);
    }

    #[test]
    fn the_samples_messages_print_as_containerssh_prints_them() {
        let log = must_decode(SAMPLE_0_4);
        let json = log.messages[1].to_json();
        assert_eq!(json["typeId"], "auth_password");
        assert_eq!(json["typeName"], "Password authentication");
        assert_eq!(json["payload"]["password"], "YmFy");
        assert_eq!(json["channelId"], serde_json::Value::Null);
        assert_eq!(log.messages[4].to_json()["channelId"], 0);
    }

    #[test]
    fn decodes_a_version_2_stream_of_maps() {
        let messages = [
            message(type_id::CONNECT, None, Value::Map(vec![])),
            message(
                type_id::IO,
                Some(3),
                Value::Map(vec![
                    (Value::Text("stream".into()), Value::Integer(1.into())),
                    (
                        Value::Text("data".into()),
                        Value::Bytes(b"\x00\xffhi".to_vec()),
                    ),
                ]),
            ),
            message(type_id::DISCONNECT, None, Value::Null),
        ];
        let body: Vec<u8> = messages.iter().flat_map(|m| cbor(&m.to_cbor())).collect();
        let log = must_decode(&file(2, &body));
        assert_eq!((log.version, log.truncated), (2, false));
        assert_eq!(log.messages, messages);
    }

    #[test]
    fn a_version_2_log_without_its_disconnect_is_truncated() {
        let connect = message(type_id::CONNECT, None, Value::Null);
        let log = must_decode(&file(2, &cbor(&connect.to_cbor())));
        assert!(log.truncated);
        assert_eq!(log.messages, [connect]);
    }

    #[test]
    fn a_log_cut_inside_a_message_keeps_the_messages_before_it() {
        let first = message(type_id::CONNECT, None, Value::Null);
        let second = message(type_id::DISCONNECT, None, Value::Null);
        let mut body = cbor(&first.to_cbor());
        let second = cbor(&second.to_cbor());
        body.extend_from_slice(&second[..second.len() / 2]);
        let log = must_decode(&file(2, &body));
        assert!(log.truncated);
        assert_eq!(log.messages, [first]);
    }

    #[test]
    fn a_version_1_array_cut_short_keeps_its_whole_messages() {
        let connect = message(type_id::CONNECT, None, Value::Null);
        // The sample's layout: an open-ended array, here never closed.
        let mut body = vec![0x9f];
        body.extend(cbor(&connect.to_cbor()));
        let log = must_decode(&file(1, &body));
        assert!(log.truncated);
        assert_eq!(log.messages, [connect]);
    }

    #[test]
    fn the_samples_compressed_stream_cut_anywhere_decodes_a_prefix() {
        let whole = must_decode(SAMPLE_0_4).messages;
        for len in header::HEADER_LEN..SAMPLE_0_4.len() {
            match decode(&SAMPLE_0_4[..len]) {
                Ok(log) => {
                    // The last bytes are a flush's marker, which holds no data.
                    assert!(log.truncated || log.messages == whole, "cut at {len}");
                    assert_eq!(
                        log.messages[..],
                        whole[..log.messages.len()],
                        "cut at {len}"
                    );
                }
                // Cut inside the gzip header.
                Err(DecodeError::Gzip(_)) => assert!(len < header::HEADER_LEN + 10, "cut at {len}"),
                Err(e) => panic!("cut at {len}: {e}"),
            }
        }
    }

    #[test]
    fn files_that_are_not_audit_logs_are_refused_clearly() {
        assert!(matches!(decode(b"hello"), Err(DecodeError::NotAnAuditLog)));
        assert!(matches!(
            decode(&[0u8; 100]),
            Err(DecodeError::NotAnAuditLog)
        ));
        let e = decode(&file(3, b"")).err();
        assert!(
            matches!(e, Some(DecodeError::UnsupportedVersion { version: 3 })),
            "{e:?}"
        );
        assert_eq!(
            e.map(|e| e.to_string()),
            Some("ContainerSSH audit log version 3 is not supported (versions 1 and 2 are)".into())
        );
        assert!(matches!(
            decode(&file(0, b"")),
            Err(DecodeError::UnsupportedVersion { .. })
        ));
        let mut not_gzip = header::header(2).to_vec();
        not_gzip.extend_from_slice(b"this is not gzip at all");
        assert!(matches!(decode(&not_gzip), Err(DecodeError::Gzip(_))));
    }

    #[test]
    fn bodies_that_are_not_messages_are_refused_clearly() {
        let e = decode(&file(2, &cbor(&Value::Array(vec![])))).err();
        assert!(
            matches!(&e, Some(DecodeError::Message { index: 0, reason }) if reason == "it is not a map"),
            "{e:?}"
        );
        let no_type = Value::Map(vec![
            (Value::Text("connectionId".into()), Value::Text("x".into())),
            (Value::Text("timestamp".into()), Value::Integer(1.into())),
        ]);
        let e = decode(&file(2, &cbor(&no_type))).err();
        assert!(
            matches!(&e, Some(DecodeError::Message { reason, .. }) if reason == "it has no type")
        );
        let e = decode(&file(1, &cbor(&Value::Map(vec![])))).err();
        assert!(
            matches!(e, Some(DecodeError::Body { version: 1, .. })),
            "{e:?}"
        );
        let e = decode(&file(2, &[0xa1, 0xff])).err();
        assert!(
            matches!(e, Some(DecodeError::Message { index: 0, .. })),
            "{e:?}"
        );
    }

    #[test]
    fn a_decompression_bomb_is_refused() {
        // A message whose byte string claims, and has, 64 MiB of zeros: a few dozen KiB
        // compressed.
        let mut body = vec![0xa1, 0x64];
        body.extend_from_slice(b"data");
        body.extend_from_slice(&[0x5a, 0x04, 0x00, 0x00, 0x00]);
        body.resize(body.len() + (64 << 20), 0);
        let file = file(2, &body);
        assert!(file.len() < 100 << 10);
        let e = decode_with_limit(&file, 16 << 20).err();
        assert!(
            matches!(e, Some(DecodeError::TooLarge { limit }) if limit == 16 << 20),
            "{e:?}"
        );
        // Zeros alone are refused before they are read far.
        let e = decode(&self::file(2, &vec![0u8; 64 << 20])).err();
        assert!(
            matches!(e, Some(DecodeError::Message { index: 0, .. })),
            "{e:?}"
        );
    }

    #[test]
    fn messages_that_would_take_too_much_memory_are_refused() {
        // One message whose payload is a million nulls: 1 MB of CBOR, tens of MB as values.
        let mut body = vec![0xa4];
        for (key, value) in [
            ("connectionId", &[0x61, b'x'][..]),
            ("timestamp", &[0x01]),
            ("type", &[0x00]),
        ] {
            body.push(0x60 + key.len() as u8);
            body.extend_from_slice(key.as_bytes());
            body.extend_from_slice(value);
        }
        body.push(0x67);
        body.extend_from_slice(b"payload");
        body.extend_from_slice(&[0x9a, 0x00, 0x0f, 0x42, 0x40]);
        body.extend(std::iter::repeat_n(0xf6, 1_000_000));
        let limit = 8 << 20;
        assert!((body.len() as u64) < limit);
        let e = decode_with_limit(&file(2, &body), limit).err();
        assert!(matches!(e, Some(DecodeError::TooLarge { .. })), "{e:?}");
        // The same message within a limit that holds it.
        let count = decode_with_limit(&file(2, &body), 1 << 30).map(|log| log.messages.len());
        assert!(matches!(count, Ok(1)), "{count:?}");
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn decoding_arbitrary_bodies_never_panics(
            version in 1u64..=2,
            body in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let _ = decode_with_limit(&file(version, &body), 1 << 20);
        }

        #[test]
        fn decoding_a_corrupted_sample_never_panics(at in 0usize..424, byte in any::<u8>()) {
            let mut bytes = SAMPLE_0_4.to_vec();
            if let Some(b) = bytes.get_mut(at) {
                *b = byte;
            }
            let _ = decode(&bytes);
        }
    }
}
