//! One message of ContainerSSH's audit log: its envelope (connection, time, type, channel), its
//! payload kept as the CBOR it was written in, and the names ContainerSSH gives its type ids.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ciborium::Value;

/// ContainerSSH's message type ids (`auditlog/message/type.go`): the `type` of a message, which
/// says which payload it carries.
pub mod type_id {
    /// The client connected (payload `remoteAddr`, `country`).
    pub const CONNECT: i32 = 0;
    /// The connection ended (no payload); the last message of a log.
    pub const DISCONNECT: i32 = 1;
    /// A password was offered (`username`, `password`).
    pub const AUTH_PASSWORD: i32 = 100;
    /// The password was accepted (`username`, `password`).
    pub const AUTH_PASSWORD_SUCCESSFUL: i32 = 101;
    /// The password was refused (`username`, `password`).
    pub const AUTH_PASSWORD_FAILED: i32 = 102;
    /// The password could not be checked (`username`, `password`, `reason`).
    pub const AUTH_PASSWORD_BACKEND_ERROR: i32 = 103;
    /// A public key was offered (`username`, `key`).
    pub const AUTH_PUBKEY: i32 = 104;
    /// The public key was accepted (`username`, `key`).
    pub const AUTH_PUBKEY_SUCCESSFUL: i32 = 105;
    /// The public key was refused (`username`, `key`).
    pub const AUTH_PUBKEY_FAILED: i32 = 106;
    /// The public key could not be checked (`username`, `key`, `reason`).
    pub const AUTH_PUBKEY_BACKEND_ERROR: i32 = 107;
    /// A keyboard-interactive challenge was sent (`username`, `instruction`, `questions`).
    pub const AUTH_KEYBOARD_INTERACTIVE_CHALLENGE: i32 = 108;
    /// The client answered a challenge (`username`, `answers`).
    pub const AUTH_KEYBOARD_INTERACTIVE_ANSWER: i32 = 109;
    /// Keyboard-interactive authentication failed (`Username`, spelt so by ContainerSSH).
    pub const AUTH_KEYBOARD_INTERACTIVE_FAILED: i32 = 110;
    /// Keyboard-interactive authentication could not be checked (`username`, `reason`).
    pub const AUTH_KEYBOARD_INTERACTIVE_BACKEND_ERROR: i32 = 111;
    /// The SSH handshake failed (`reason`).
    pub const HANDSHAKE_FAILED: i32 = 198;
    /// The SSH handshake and the login succeeded (`username`).
    pub const HANDSHAKE_SUCCESSFUL: i32 = 199;
    /// A global request of an unknown type (`requestType`).
    pub const GLOBAL_REQUEST_UNKNOWN: i32 = 200;
    /// A global request that could not be decoded.
    pub const GLOBAL_REQUEST_DECODE_FAILED: i32 = 201;
    /// `tcpip-forward` (`BindHost`, `BindPort`).
    pub const REQUEST_REVERSE_FORWARD: i32 = 202;
    /// `cancel-tcpip-forward` (`BindHost`, `BindPort`).
    pub const REQUEST_CANCEL_REVERSE_FORWARD: i32 = 203;
    /// `streamlocal-forward@openssh.com` (`Path`).
    pub const REQUEST_STREAM_LOCAL: i32 = 204;
    /// `cancel-streamlocal-forward@openssh.com` (`Path`).
    pub const REQUEST_CANCEL_STREAM_LOCAL: i32 = 205;
    /// A channel was asked for (`channelType`).
    pub const NEW_CHANNEL: i32 = 300;
    /// A channel was opened (`channelType`).
    pub const NEW_CHANNEL_SUCCESSFUL: i32 = 301;
    /// A channel was refused (`channelType`, `reason`).
    pub const NEW_CHANNEL_FAILED: i32 = 302;
    /// A `direct-tcpip` channel (`HostToConnect`, `PortToConnect`, `OriginatorHost`,
    /// `OriginatorPort`).
    pub const NEW_FORWARD_CHANNEL: i32 = 303;
    /// A `forwarded-tcpip` channel opened by the server.
    pub const NEW_REVERSE_FORWARD_CHANNEL: i32 = 304;
    /// An `x11` channel opened by the server.
    pub const NEW_REVERSE_X11_FORWARD_CHANNEL: i32 = 305;
    /// A `direct-streamlocal@openssh.com` channel.
    pub const NEW_FORWARD_STREAM_LOCAL_CHANNEL: i32 = 306;
    /// A `forwarded-streamlocal@openssh.com` channel opened by the server.
    pub const NEW_REVERSE_STREAM_LOCAL_CHANNEL: i32 = 307;
    /// A channel request of an unknown type.
    pub const CHANNEL_REQUEST_UNKNOWN: i32 = 400;
    /// A channel request that could not be decoded.
    pub const CHANNEL_REQUEST_DECODE_FAILED: i32 = 401;
    /// `env` (`requestId`, `name`, `value`).
    pub const CHANNEL_REQUEST_SET_ENV: i32 = 402;
    /// `exec` (`requestId`, `program`).
    pub const CHANNEL_REQUEST_EXEC: i32 = 403;
    /// `pty-req` (`requestId`, `term`, `columns`, `rows`, `width`, `height`, `modelist`).
    pub const CHANNEL_REQUEST_PTY: i32 = 404;
    /// `shell` (`requestId`).
    pub const CHANNEL_REQUEST_SHELL: i32 = 405;
    /// `signal` (`requestId`, `signal`).
    pub const CHANNEL_REQUEST_SIGNAL: i32 = 406;
    /// `subsystem` (`requestId`, `subsystem`).
    pub const CHANNEL_REQUEST_SUBSYSTEM: i32 = 407;
    /// `window-change` (`requestId`, `columns`, `rows`, `width`, `height`).
    pub const CHANNEL_REQUEST_WINDOW: i32 = 408;
    /// `x11-req`.
    pub const CHANNEL_REQUEST_X11: i32 = 409;
    /// The server closed the channel for writing (no payload).
    pub const WRITE_CLOSE: i32 = 496;
    /// The channel was closed (no payload).
    pub const CLOSE: i32 = 497;
    /// The program was ended by a signal (`signal`, `coreDumped`, `errorMessage`,
    /// `languageTag`).
    pub const EXIT_SIGNAL: i32 = 498;
    /// The program exited (`exitStatus`).
    pub const EXIT: i32 = 499;
    /// Bytes of a stream (`stream`: 0 stdin, 1 stdout, 2 stderr; `data`).
    pub const IO: i32 = 500;
    /// A request failed (`requestId`, `reason`).
    pub const REQUEST_FAILED: i32 = 501;
}

/// Every type id with ContainerSSH's machine-readable id and human-readable name for it
/// (`typeToID`, `typeToName`). ContainerSSH's tables lack the two handshake types, so its
/// decoder names them `invalid`; here they have names.
#[rustfmt::skip]
const TYPES: &[(i32, &str, &str)] = &[
    (type_id::CONNECT, "connect", "Connect"),
    (type_id::DISCONNECT, "disconnect", "Disconnect"),
    (type_id::AUTH_PASSWORD, "auth_password", "Password authentication"),
    (type_id::AUTH_PASSWORD_SUCCESSFUL, "auth_password_successful", "Password authentication successful"),
    (type_id::AUTH_PASSWORD_FAILED, "auth_password_failed", "Password authentication failed"),
    (type_id::AUTH_PASSWORD_BACKEND_ERROR, "auth_password_backend_error", "Password authentication backend error"),
    (type_id::AUTH_PUBKEY, "auth_pubkey", "Public key authentication"),
    (type_id::AUTH_PUBKEY_SUCCESSFUL, "auth_pubkey_successful", "Public key authentication successful"),
    (type_id::AUTH_PUBKEY_FAILED, "auth_pubkey_failed", "Public key authentication failed"),
    (type_id::AUTH_PUBKEY_BACKEND_ERROR, "auth_pubkey_backend_error", "Public key authentication backend error"),
    (type_id::AUTH_KEYBOARD_INTERACTIVE_CHALLENGE, "auth_keyboard_interactive_challenge", "Keyboard-interactive authentication challenge"),
    (type_id::AUTH_KEYBOARD_INTERACTIVE_ANSWER, "auth_keyboard_interactive_answer", "Keyboard-interactive authentication answer"),
    (type_id::AUTH_KEYBOARD_INTERACTIVE_FAILED, "auth_keyboard_interactive_failed", "Keyboard-interactive authentication failed"),
    (type_id::AUTH_KEYBOARD_INTERACTIVE_BACKEND_ERROR, "auth_keyboard_interactive_backend_error", "Keyboard-interactive authentication backend error"),
    (type_id::HANDSHAKE_FAILED, "handshake_failed", "Handshake failed"),
    (type_id::HANDSHAKE_SUCCESSFUL, "handshake_successful", "Handshake successful"),
    (type_id::GLOBAL_REQUEST_UNKNOWN, "global_request_unknown", "Unknown global request"),
    (type_id::GLOBAL_REQUEST_DECODE_FAILED, "global_request_decode_failed", "Failed to decode global request"),
    (type_id::REQUEST_REVERSE_FORWARD, "forward_tcpip", "Request reverse port forwarding"),
    (type_id::REQUEST_CANCEL_REVERSE_FORWARD, "cancel_forward_tcpip", "Request to stop reverse port forwarding"),
    (type_id::REQUEST_STREAM_LOCAL, "forward_streamlocal", "Request reverse socket forwarding"),
    (type_id::REQUEST_CANCEL_STREAM_LOCAL, "cancel_forward_streamlocal", "Request to stop reverse socket forwarding"),
    (type_id::NEW_CHANNEL, "new_channel", "New channel request"),
    (type_id::NEW_CHANNEL_SUCCESSFUL, "new_channel_successful", "New channel successful"),
    (type_id::NEW_CHANNEL_FAILED, "new_channel_failed", "New channel failed"),
    (type_id::NEW_FORWARD_CHANNEL, "new_channel_direct_tcpip", "New client-to-server port forwarding channel"),
    (type_id::NEW_REVERSE_FORWARD_CHANNEL, "new_channel_forwarded_tcpip", "New server-to-client port forwarding channel"),
    (type_id::NEW_REVERSE_X11_FORWARD_CHANNEL, "new_channel_x11", "New server-to-client X11 forwarding channel"),
    (type_id::NEW_FORWARD_STREAM_LOCAL_CHANNEL, "new_channel_direct_streamlocal", "New client-to-server unix socket forwarding channel"),
    (type_id::NEW_REVERSE_STREAM_LOCAL_CHANNEL, "new_channel_forwarded_streamlocal", "New server-to-client unix socket forwarding channel"),
    (type_id::CHANNEL_REQUEST_UNKNOWN, "channel_request_unknown", "Unknown channel request"),
    (type_id::CHANNEL_REQUEST_DECODE_FAILED, "channel_request_decode_failed", "Failed to decode channel request"),
    (type_id::CHANNEL_REQUEST_SET_ENV, "setenv", "Set environment variable"),
    (type_id::CHANNEL_REQUEST_EXEC, "exec", "Execute program"),
    (type_id::CHANNEL_REQUEST_PTY, "pty", "Request interactive terminal"),
    (type_id::CHANNEL_REQUEST_SHELL, "shell", "Run shell"),
    (type_id::CHANNEL_REQUEST_SIGNAL, "signal", "Send signal to running process"),
    (type_id::CHANNEL_REQUEST_SUBSYSTEM, "subsystem", "Request subsystem"),
    (type_id::CHANNEL_REQUEST_WINDOW, "window", "Change window size"),
    (type_id::CHANNEL_REQUEST_X11, "x11-req", "Request X11 forwarding"),
    (type_id::WRITE_CLOSE, "close_write", "Close channel for writing"),
    (type_id::CLOSE, "close", "Close channel"),
    (type_id::EXIT_SIGNAL, "exit_signal", "Program exited with signal"),
    (type_id::EXIT, "exit", "Program exited"),
    (type_id::IO, "io", "I/O"),
    (type_id::REQUEST_FAILED, "request_failed", "Request failed"),
];

/// What ContainerSSH calls a type id it does not know.
const INVALID: &str = "invalid";

/// The machine-readable id of a message type (`auth_password`), or `invalid`.
pub fn type_key(type_id: i32) -> &'static str {
    TYPES
        .iter()
        .find(|(id, _, _)| *id == type_id)
        .map_or(INVALID, |(_, key, _)| key)
}

/// The human-readable name of a message type (`Password authentication`), or `invalid`.
pub fn type_name(type_id: i32) -> &'static str {
    TYPES
        .iter()
        .find(|(id, _, _)| *id == type_id)
        .map_or(INVALID, |(_, _, name)| name)
}

/// One audit log message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The connection's id.
    pub connection_id: String,
    /// When it was written, in nanoseconds since the Unix epoch.
    pub timestamp: i64,
    /// Which message it is (see [`type_id`]).
    pub type_id: i32,
    /// The SSH channel it belongs to, if any.
    pub channel_id: Option<u64>,
    /// The payload as written: a map whose keys are ContainerSSH's (`username`, `data`, ...),
    /// with byte strings (`password`, `data`, `modelist`) kept as bytes; `Null` when the type
    /// has none.
    pub payload: Value,
}

impl Message {
    /// A payload member, by its key.
    pub fn field(&self, key: &str) -> Option<&Value> {
        match &self.payload {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_text() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// A text payload member (`username`, `channelType`, ...).
    pub fn text(&self, key: &str) -> Option<&str> {
        self.field(key).and_then(Value::as_text)
    }

    /// A byte-string payload member (`password`, `data`, `modelist`).
    pub fn bytes(&self, key: &str) -> Option<&[u8]> {
        self.field(key).and_then(Value::as_bytes).map(Vec::as_slice)
    }

    /// An unsigned integer payload member (`exitStatus`, `columns`, `stream`, ...).
    pub fn unsigned(&self, key: &str) -> Option<u64> {
        self.field(key)
            .and_then(Value::as_integer)
            .and_then(|i| u64::try_from(i).ok())
    }

    /// The message as ContainerSSH's decoder prints it: `connectionId`, `timestamp`, `type`,
    /// `typeId`, `typeName`, `payload` and `channelId`, with byte strings in base64.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "connectionId": self.connection_id,
            "timestamp": self.timestamp,
            "type": self.type_id,
            "typeId": type_key(self.type_id),
            "typeName": type_name(self.type_id),
            "payload": cbor_to_json(&self.payload),
            "channelId": self.channel_id,
        })
    }

    /// The message as CBOR, its members in the order ContainerSSH writes them.
    pub(super) fn to_cbor(&self) -> Value {
        Value::Map(vec![
            (text("connectionId"), text(&self.connection_id)),
            (text("timestamp"), Value::Integer(self.timestamp.into())),
            (text("type"), Value::Integer(self.type_id.into())),
            (text("payload"), self.payload.clone()),
            (
                text("channelId"),
                self.channel_id
                    .map_or(Value::Null, |id| Value::Integer(id.into())),
            ),
        ])
    }
}

/// A CBOR text value.
pub(super) fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

/// Nanoseconds since the Unix epoch, as ContainerSSH stamps its messages (saturating).
pub(super) fn unix_nanos(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

/// A CBOR value as JSON, as Go's `encoding/json` shows what ContainerSSH decoded: byte strings in
/// standard base64, tags dropped, map keys as text.
fn cbor_to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as Json;
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Integer(i) => {
            let wide = i128::from(*i);
            if let Ok(n) = i64::try_from(wide) {
                Json::from(n)
            } else if let Ok(n) = u64::try_from(wide) {
                Json::from(n)
            } else {
                Json::String(wide.to_string())
            }
        }
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Text(s) => Json::String(s.clone()),
        Value::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Value::Array(items) => Json::Array(items.iter().map(cbor_to_json).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| (json_key(k), cbor_to_json(v)))
                .collect(),
        ),
        Value::Tag(_, inner) => cbor_to_json(inner),
        // `Value` is non-exhaustive; nothing the decoder builds reaches here.
        _ => Json::Null,
    }
}

/// A map key as a JSON object key: text as is, anything else as its JSON text.
fn json_key(key: &Value) -> String {
    match key {
        Value::Text(s) => s.clone(),
        other => cbor_to_json(other).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(payload: Value) -> Message {
        Message {
            connection_id: "abc".to_owned(),
            timestamp: 7,
            type_id: type_id::AUTH_PASSWORD,
            channel_id: None,
            payload,
        }
    }

    #[test]
    fn names_types_as_containerssh_does_and_unknown_ones_invalid() {
        assert_eq!(type_key(type_id::IO), "io");
        assert_eq!(type_name(type_id::IO), "I/O");
        assert_eq!(type_key(type_id::CHANNEL_REQUEST_X11), "x11-req");
        assert_eq!(
            type_name(type_id::AUTH_PUBKEY_FAILED),
            "Public key authentication failed"
        );
        assert_eq!(
            type_key(type_id::HANDSHAKE_SUCCESSFUL),
            "handshake_successful"
        );
        assert_eq!(type_key(2), "invalid");
        assert_eq!(type_name(-1), "invalid");
    }

    #[test]
    fn every_type_id_is_named_once() {
        for (i, (id, _, _)) in TYPES.iter().enumerate() {
            assert!(
                TYPES[i + 1..].iter().all(|(other, _, _)| other != id),
                "type {id} is in the table twice"
            );
        }
        assert_eq!(TYPES.len(), 46);
    }

    #[test]
    fn json_has_the_decoders_members_and_base64_bytes() {
        let m = message(Value::Map(vec![
            (text("username"), text("foo")),
            (text("password"), Value::Bytes(b"bar".to_vec())),
        ]));
        let json = m.to_json();
        assert_eq!(
            json,
            serde_json::json!({
                "connectionId": "abc",
                "timestamp": 7,
                "type": 100,
                "typeId": "auth_password",
                "typeName": "Password authentication",
                "payload": {"username": "foo", "password": "YmFy"},
                "channelId": null,
            })
        );
    }

    #[test]
    fn payload_accessors_find_members_by_key() {
        let m = message(Value::Map(vec![
            (text("username"), text("foo")),
            (text("password"), Value::Bytes(b"bar".to_vec())),
            (text("exitStatus"), Value::Integer(3.into())),
        ]));
        assert_eq!(m.text("username"), Some("foo"));
        assert_eq!(m.bytes("password"), Some(&b"bar"[..]));
        assert_eq!(m.unsigned("exitStatus"), Some(3));
        assert_eq!(m.text("password"), None);
        assert_eq!(message(Value::Null).field("username"), None);
    }

    #[test]
    fn times_before_the_epoch_are_negative() {
        let later = UNIX_EPOCH + std::time::Duration::from_nanos(5);
        let earlier = UNIX_EPOCH - std::time::Duration::from_nanos(5);
        assert_eq!(unix_nanos(later), 5);
        assert_eq!(unix_nanos(earlier), -5);
    }
}
