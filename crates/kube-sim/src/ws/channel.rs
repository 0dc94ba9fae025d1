//! The `channel.k8s.io` WebSocket framing (v4 and v5): one channel byte before every payload,
//! v5's `ff <channel>` close signal, and the resize channel's JSON stream. Pure, no I/O.

use axum::http::HeaderMap;
use serde_json::Value;

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// The negotiated streaming protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    V4,
    V5,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Self::V4 => "v4.channel.k8s.io",
            Self::V5 => "v5.channel.k8s.io",
        }
    }
}

/// The first subprotocol the client offered that kube-sim speaks, from those `supported`, in
/// the client's order (the header may be repeated and comma-separated).
pub fn negotiate(headers: &HeaderMap, supported: &[Protocol]) -> Option<Protocol> {
    headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|offered| supported.iter().copied().find(|p| p.name() == offered))
}

/// A client message, decoded.
#[derive(Debug, PartialEq)]
pub enum Incoming<'a> {
    Stdin(&'a [u8]),
    Resize(&'a [u8]),
    /// v5: the client closed its side of a channel.
    Close(u8),
    /// Data on a channel the server does not read, or an empty message.
    Ignored,
    Invalid(String),
}

/// Decodes one client message.
pub fn parse(protocol: Protocol, message: &[u8]) -> Incoming<'_> {
    let Some((&channel, payload)) = message.split_first() else {
        return Incoming::Ignored;
    };
    match channel {
        STDIN => Incoming::Stdin(payload),
        RESIZE => Incoming::Resize(payload),
        CLOSE if protocol == Protocol::V5 => match payload {
            [ch] if *ch <= RESIZE => Incoming::Close(*ch),
            [ch] => Incoming::Invalid(format!("close of unknown channel {ch}")),
            _ => Incoming::Invalid("close signal must be 2 bytes".to_owned()),
        },
        _ => Incoming::Ignored,
    }
}

/// A server message on `channel`.
pub fn frame(channel: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 1);
    out.push(channel);
    out.extend_from_slice(payload);
    out
}

/// Decodes the resize channel: a stream of `{"Width":w,"Height":h}` objects, keys matched
/// case-insensitively, objects possibly split across messages.
#[derive(Debug, Default)]
pub struct ResizeDecoder {
    buffer: Vec<u8>,
}

impl ResizeDecoder {
    /// Adds bytes; returns every complete (width, height).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<(u16, u16)> {
        self.buffer.extend_from_slice(bytes);
        let mut sizes = Vec::new();
        let mut consumed = 0;
        let mut stream = serde_json::Deserializer::from_slice(&self.buffer).into_iter::<Value>();
        loop {
            match stream.next() {
                Some(Ok(value)) => {
                    consumed = stream.byte_offset();
                    let field = |name: &str| {
                        value.as_object().and_then(|m| {
                            m.iter()
                                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                                .and_then(|(_, v)| v.as_u64())
                        })
                    };
                    if let (Some(w), Some(h)) = (field("width"), field("height")) {
                        sizes.push((
                            u16::try_from(w).unwrap_or(u16::MAX),
                            u16::try_from(h).unwrap_or(u16::MAX),
                        ));
                    }
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(_)) => {
                    consumed = self.buffer.len();
                    break;
                }
                None => {
                    consumed = self.buffer.len();
                    break;
                }
            }
        }
        self.buffer.drain(..consumed);
        sizes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn negotiates_in_client_order() {
        let mut h = HeaderMap::new();
        h.insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("v5.channel.k8s.io,v4.channel.k8s.io"),
        );
        assert_eq!(
            negotiate(&h, &[Protocol::V4, Protocol::V5]),
            Some(Protocol::V5)
        );
        assert_eq!(negotiate(&h, &[Protocol::V4]), Some(Protocol::V4));
        h.insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("SPDY/3.1+portforward.k8s.io"),
        );
        assert_eq!(negotiate(&h, &[Protocol::V4, Protocol::V5]), None);
        h.insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("v3.channel.k8s.io, v4.channel.k8s.io"),
        );
        assert_eq!(
            negotiate(&h, &[Protocol::V5, Protocol::V4]),
            Some(Protocol::V4)
        );
    }

    #[test]
    fn parses_messages() {
        assert_eq!(parse(Protocol::V5, b"\x00abc"), Incoming::Stdin(b"abc"));
        assert_eq!(parse(Protocol::V5, &[255, 0]), Incoming::Close(0));
        assert!(matches!(
            parse(Protocol::V5, &[255, 0, 1]),
            Incoming::Invalid(_)
        ));
        assert_eq!(parse(Protocol::V4, &[255, 0]), Incoming::Ignored);
        assert_eq!(parse(Protocol::V5, b"\x04{}"), Incoming::Resize(b"{}"));
        assert_eq!(parse(Protocol::V5, b"\x07x"), Incoming::Ignored);
        assert_eq!(parse(Protocol::V5, b""), Incoming::Ignored);
        assert_eq!(frame(1, b"hi"), b"\x01hi".to_vec());
    }

    #[test]
    fn decodes_resize_streams() {
        let mut d = ResizeDecoder::default();
        assert_eq!(d.push(b"{\"Width\":100,\"Height\":30}\n"), vec![(100, 30)]);
        assert_eq!(d.push(b"{\"width\":80,"), vec![]);
        assert_eq!(
            d.push(b"\"HEIGHT\":24}{\"Width\":1,\"Height\":2}"),
            vec![(80, 24), (1, 2)]
        );
    }
}
