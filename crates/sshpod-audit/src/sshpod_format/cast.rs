//! asciicast v2 lines for a terminal session, as `asciinema play` reads them: a header, then
//! `[seconds, code, data]` events with times relative to the header's `timestamp`.

use std::time::SystemTime;

use serde_json::json;
use sshpod_core::TerminalSize;

/// The header line (with its newline) of a session that started at `started`.
pub fn header(size: TerminalSize, term: &str, started: SystemTime) -> Vec<u8> {
    let since = started
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let mut line = json!({
        "version": 2,
        "width": size.cols,
        "height": size.rows,
        "timestamp": since.as_secs(),
        "env": {"TERM": term, "SHELL": null},
    })
    .to_string()
    .into_bytes();
    line.push(b'\n');
    line
}

/// Decodes terminal bytes for an event's text, keeping a UTF-8 sequence split across chunks
/// for the next chunk rather than turning it into replacement characters.
#[derive(Debug, Default)]
pub struct Utf8Carry {
    pending: Vec<u8>,
}

impl Utf8Carry {
    /// The text of `data` (after what was carried), carrying an incomplete sequence at its end.
    pub fn text(&mut self, data: &[u8]) -> String {
        let mut bytes = std::mem::take(&mut self.pending);
        bytes.extend_from_slice(data);
        let keep = incomplete_tail(&bytes);
        self.pending = bytes.split_off(bytes.len() - keep);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// How many bytes at the end of `bytes` start a UTF-8 sequence that is not finished yet.
fn incomplete_tail(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let b = bytes[bytes.len() - back];
        if b & 0b1100_0000 == 0b1000_0000 {
            continue; // a continuation byte: look further back
        }
        let needed = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => return 0,
        };
        return if needed > back { back } else { 0 };
    }
    0
}

/// One event line (with its newline): `[seconds, code, text]`.
pub fn event(seconds: f64, code: &str, text: &str) -> Vec<u8> {
    let mut line = json!([(seconds * 1e6).round() / 1e6, code, text])
        .to_string()
        .into_bytes();
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_split_across_chunks_is_kept_whole() {
        let mut carry = Utf8Carry::default();
        let snowman = "☃".as_bytes();
        assert_eq!(carry.text(&[b'a', snowman[0]]), "a");
        assert_eq!(carry.text(&snowman[1..]), "☃");
        assert_eq!(carry.text(b"\xffz"), "\u{fffd}z");
    }

    #[test]
    fn events_are_json_arrays_with_microsecond_times() {
        assert_eq!(
            event(1.5, "o", "hi\r\n"),
            b"[1.5,\"o\",\"hi\\r\\n\"]\n".to_vec()
        );
        assert_eq!(
            event(0.1234567, "r", "80x24"),
            b"[0.123457,\"r\",\"80x24\"]\n".to_vec()
        );
    }
}
