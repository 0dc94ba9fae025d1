//! The lines of an `events.jsonl` event log, read back one at a time: what the summaries, the
//! `sshpod audit` commands and the recordings page share.
//!
//! Reading never fails as a whole: a line that is not a JSON object is reported with its number
//! and the next one is read, and a last line without its newline (a crash while it was written)
//! is reported as cut short. Lines are parsed one at a time, so a long log costs the memory of
//! its text and one line. The hash chain is not checked here (see [`crate::chain::verify`]).

use std::time::SystemTime;

use serde_json::{Map, Value};

/// The event log's name within a recording (format `sshpod`).
pub const EVENTS_FILE: &str = "events.jsonl";

/// One line of the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// 1-based line number.
    pub number: u64,
    /// Its members, or why it could not be read.
    pub content: Result<Map<String, Value>, LineError>,
}

/// Why a line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The last line has no newline: the writer stopped in the middle of it.
    #[error("cut short (no newline at the end of the log)")]
    CutShort,
    /// The line is not a JSON object.
    #[error("not a JSON object: {0}")]
    NotAnObject(String),
}

/// The lines of `log`, in order.
pub fn lines(log: &[u8]) -> impl Iterator<Item = Line> + '_ {
    let mut rest = log;
    let mut number = 0;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        number += 1;
        let (text, cut_short) = match rest.iter().position(|&b| b == b'\n') {
            Some(end) => {
                let text = &rest[..end];
                rest = &rest[end + 1..];
                (text, false)
            }
            None => (std::mem::take(&mut rest), true),
        };
        let content = if cut_short {
            Err(LineError::CutShort)
        } else {
            match serde_json::from_slice::<Value>(text) {
                Ok(Value::Object(members)) => Ok(members),
                Ok(other) => Err(LineError::NotAnObject(format!(
                    "a JSON {}",
                    json_type(&other)
                ))),
                Err(error) => Err(LineError::NotAnObject(error.to_string())),
            }
        };
        Some(Line { number, content })
    })
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The members every line has, read leniently: a missing or mistyped member is `None`.
pub trait Members {
    /// `kind` (`connected`, `pty`, `end`...).
    fn kind(&self) -> Option<&str>;
    /// `at`, the time of the event.
    fn at(&self) -> Option<SystemTime>;
    /// `channel`, the SSH channel number.
    fn channel(&self) -> Option<u32>;
    /// A string member.
    fn text(&self, name: &str) -> Option<&str>;
}

impl Members for Map<String, Value> {
    fn kind(&self) -> Option<&str> {
        self.text("kind")
    }

    fn at(&self) -> Option<SystemTime> {
        self.text("at")
            .and_then(|at| humantime::parse_rfc3339(at).ok())
    }

    fn channel(&self) -> Option<u32> {
        self.get("channel")
            .and_then(Value::as_u64)
            .and_then(|channel| u32::try_from(channel).ok())
    }

    fn text(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_is_read_or_said_to_be_unreadable() {
        let log = b"{\"kind\":\"connected\",\"at\":\"2026-12-07T04:00:00.5Z\",\"channel\":null}\n\
                    [1]\n\
                    not json\n\
                    {\"kind\":\"pty\",\"channel\":3}\n\
                    {\"kind\":\"clo";
        let read: Vec<Line> = lines(log).collect();
        assert_eq!(read.len(), 5);
        let first = match &read[0].content {
            Ok(members) => members,
            Err(error) => panic!("line 1: {error}"),
        };
        assert_eq!(first.kind(), Some("connected"));
        assert_eq!(first.channel(), None);
        assert_eq!(
            first.at(),
            humantime::parse_rfc3339("2026-12-07T04:00:00.500Z").ok()
        );
        assert_eq!(
            read[1].content,
            Err(LineError::NotAnObject("a JSON array".into()))
        );
        assert!(matches!(read[2].content, Err(LineError::NotAnObject(_))));
        assert_eq!(
            read[3].content.as_ref().ok().and_then(|m| m.channel()),
            Some(3)
        );
        assert_eq!(read[4].number, 5);
        assert_eq!(read[4].content, Err(LineError::CutShort));
        assert_eq!(lines(b"").count(), 0);
    }
}
