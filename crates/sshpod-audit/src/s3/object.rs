//! What an uploaded object carries besides its bytes: ContainerSSH's metadata from the entry's
//! state, and a content type from the file's name.

use std::net::SocketAddr;

use object_store::{Attribute, AttributeValue, Attributes};
use sshpod_config::AuditS3Metadata;

use crate::layout::EntryState;
use crate::store::content_type;

/// The most bytes one metadata value keeps (S3 allows 2 KiB for all of an object's).
const MAX_VALUE: usize = 1024;

/// The attributes of the object with `key` in the entry `state` describes.
pub(crate) fn attributes(state: &EntryState, key: &str, wanted: AuditS3Metadata) -> Attributes {
    let mut attributes = Attributes::new();
    attributes.insert(Attribute::ContentType, content_type(key).into());
    let mut meta = |name: &'static str, value: &str| {
        attributes.insert(
            Attribute::Metadata(name.into()),
            AttributeValue::from(header_safe(value)),
        );
    };
    meta("timestamp", &state.started.to_string());
    meta(
        "authenticated",
        if state.authenticated { "true" } else { "false" },
    );
    meta("country", &state.country);
    if wanted.username {
        if let Some(username) = &state.username {
            meta("username", username);
        }
    }
    if wanted.ip {
        meta("ip", &ip_only(&state.ip));
    }
    attributes
}

/// The address without its port, as ContainerSSH's `ip` is.
fn ip_only(address: &str) -> String {
    match address.parse::<SocketAddr>() {
        Ok(socket) => socket.ip().to_string(),
        Err(_) => address.to_owned(),
    }
}

/// `value` as an HTTP header can carry it: printable ASCII but space stays, everything else
/// (and `%`) is percent-encoded as UTF-8, and the result is cut at [`MAX_VALUE`] bytes on a
/// whole character. Values come from clients (a user name), and a value S3 refuses would stop
/// the upload for good; spaces are encoded because HTTP trims them at the ends.
fn header_safe(value: &str) -> String {
    let mut safe = String::with_capacity(value.len().min(MAX_VALUE));
    let mut utf8 = [0u8; 4];
    for character in value.chars() {
        let piece = match character {
            '!'..='~' if character != '%' => character.to_string(),
            _ => character
                .encode_utf8(&mut utf8)
                .bytes()
                .map(|byte| format!("%{byte:02X}"))
                .collect(),
        };
        if safe.len() + piece.len() > MAX_VALUE {
            break;
        }
        safe.push_str(&piece);
    }
    safe
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> EntryState {
        EntryState {
            connection: "0123456789abcdef0123456789abcdef".into(),
            started: 1_796_616_000,
            complete: true,
            authenticated: true,
            username: Some("alice".into()),
            ip: "192.0.2.7:51234".into(),
            country: "XX".into(),
        }
    }

    fn value(attributes: &Attributes, attribute: Attribute) -> Option<String> {
        attributes
            .get(&attribute)
            .map(|value| value.as_ref().to_owned())
    }

    #[test]
    fn metadata_is_containerssh_s_and_names_only_what_is_asked() {
        let all = attributes(
            &state(),
            "0123456789abcdef0123456789abcdef/events.jsonl",
            AuditS3Metadata {
                ip: true,
                username: true,
            },
        );
        let meta = |name: &'static str| value(&all, Attribute::Metadata(name.into()));
        assert_eq!(meta("timestamp").as_deref(), Some("1796616000"));
        assert_eq!(meta("authenticated").as_deref(), Some("true"));
        assert_eq!(meta("country").as_deref(), Some("XX"));
        assert_eq!(meta("username").as_deref(), Some("alice"));
        assert_eq!(meta("ip").as_deref(), Some("192.0.2.7"));
        assert_eq!(
            value(&all, Attribute::ContentType).as_deref(),
            Some("application/x-ndjson")
        );

        let some = attributes(&state(), "x/channel-0.cast", AuditS3Metadata::default());
        assert_eq!(
            some.len(),
            4,
            "content type, timestamp, authenticated, country"
        );
        assert_eq!(
            value(&some, Attribute::Metadata("username".into())),
            None,
            "metadata.username is off"
        );
        assert_eq!(
            value(&some, Attribute::ContentType).as_deref(),
            Some("application/x-asciicast")
        );
    }

    #[test]
    fn content_types_follow_the_file_name() {
        assert_eq!(content_type("c/events.jsonl"), "application/x-ndjson");
        assert_eq!(content_type("c/channel-3.cast"), "application/x-asciicast");
        assert_eq!(
            content_type("c/channel-3.stdin"),
            "application/octet-stream"
        );
        assert_eq!(content_type("c"), "application/octet-stream");
    }

    #[test]
    fn hostile_values_become_safe_header_values() {
        assert_eq!(header_safe("bob\r\nX-Evil: 1"), "bob%0D%0AX-Evil:%201");
        assert_eq!(header_safe("jürgen"), "j%C3%BCrgen");
        assert_eq!(header_safe("100%"), "100%25");
        assert_eq!(header_safe(" root "), "%20root%20");
        let long = header_safe(&"é".repeat(4000));
        assert!(long.len() <= MAX_VALUE);
        assert!(long.ends_with("%C3%A9"), "cut on a whole character: {long}");
        for value in [long, header_safe(&" ".repeat(5000))] {
            assert!(value.len() <= MAX_VALUE);
            assert!(object_store::HeaderValue::from_str(&value).is_ok());
        }
    }

    #[test]
    fn an_address_without_a_port_is_kept() {
        assert_eq!(ip_only("[2001:db8::1]:22"), "2001:db8::1");
        assert_eq!(ip_only("2001:db8::1"), "2001:db8::1");
        assert_eq!(ip_only("unknown"), "unknown");
    }
}
