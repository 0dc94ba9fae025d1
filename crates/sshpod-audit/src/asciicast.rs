//! Reading asciicast v2 files (a terminal session's recording: a JSON header line, then one
//! `[time, code, data]` line per event), as sshpod's recorder and ContainerSSH's `asciinema`
//! format write them, for `sshpod audit play` and the recordings page.
//!
//! The reader takes what a recorder that crashed leaves behind: a last line cut short is
//! dropped and said so ([`Cast::cut_short`]). Any other unreadable line is an error naming it.
//! Members of the header it does not use are ignored, as asciinema ignores them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// A parsed cast.
#[derive(Debug, Clone, PartialEq)]
pub struct Cast {
    /// The first line.
    pub header: Header,
    /// The events, in file order.
    pub events: Vec<Event>,
    /// Whether the last line was cut short (and dropped).
    pub cut_short: bool,
}

/// The header line.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// The terminal's width in columns.
    pub width: u32,
    /// The terminal's height in rows.
    pub height: u32,
    /// Unix seconds of the recording's start, when given.
    pub timestamp: Option<u64>,
    /// `env.TERM`, when given.
    pub term: Option<String>,
    /// `title`, when given.
    pub title: Option<String>,
}

impl Header {
    /// When the recording started, when the header says.
    pub fn start(&self) -> Option<SystemTime> {
        UNIX_EPOCH.checked_add(Duration::from_secs(self.timestamp?))
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Seconds since the start.
    pub time: f64,
    /// What happened.
    pub code: Code,
    /// Its data: the text of output or input, `COLSxROWS` of a resize, a marker's label.
    pub data: String,
}

/// An event's code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    /// `o`: what the terminal showed.
    Output,
    /// `i`: what was typed.
    Input,
    /// `r`: the terminal was resized.
    Resize,
    /// `m`: a marker.
    Marker,
    /// Any other code.
    Other(String),
}

impl Code {
    fn of(code: &str) -> Self {
        match code {
            "o" => Code::Output,
            "i" => Code::Input,
            "r" => Code::Resize,
            "m" => Code::Marker,
            other => Code::Other(other.to_owned()),
        }
    }
}

/// Why a cast cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CastError {
    /// There is nothing in it.
    #[error("the cast is empty")]
    Empty,
    /// The first line is not an asciicast header.
    #[error("line 1: not an asciicast header: {reason}")]
    Header {
        /// What is wrong with it.
        reason: String,
    },
    /// The header names another version of the format.
    #[error("asciicast version {version} (only version 2 is read)")]
    Version {
        /// The version it names.
        version: String,
    },
    /// An event line is not `[time, code, data]`.
    #[error("line {line}: not an asciicast event: {reason}")]
    Event {
        /// 1-based line number.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
}

/// Parses a whole cast file.
pub fn parse(bytes: &[u8]) -> Result<Cast, CastError> {
    let mut lines = bytes.split(|&b| b == b'\n').enumerate().peekable();
    let header = match lines.next() {
        Some((_, line)) if !line.is_empty() => header(line)?,
        _ => return Err(CastError::Empty),
    };
    let mut cast = Cast {
        header,
        events: Vec::new(),
        cut_short: false,
    };
    while let Some((index, line)) = lines.next() {
        let number = u64::try_from(index).unwrap_or(u64::MAX).saturating_add(1);
        // The text after the last newline: empty for a file that ends properly.
        let last = lines.peek().is_none();
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match event(line) {
            Ok(event) => cast.events.push(event),
            Err(_) if last => cast.cut_short = true,
            Err(reason) => {
                return Err(CastError::Event {
                    line: number,
                    reason,
                })
            }
        }
    }
    Ok(cast)
}

fn header(line: &[u8]) -> Result<Header, CastError> {
    let bad = |reason: String| CastError::Header { reason };
    let value: Value = serde_json::from_slice(line).map_err(|e| bad(e.to_string()))?;
    let Value::Object(header) = value else {
        return Err(bad("not a JSON object".to_owned()));
    };
    match header.get("version") {
        Some(version) if version.as_u64() == Some(2) => {}
        Some(version) => {
            return Err(CastError::Version {
                version: version.to_string(),
            })
        }
        None => return Err(bad("no `version`".to_owned())),
    }
    let size = |name: &str| {
        header
            .get(name)
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| bad(format!("no `{name}` (a number of cells)")))
    };
    Ok(Header {
        width: size("width")?,
        height: size("height")?,
        timestamp: header.get("timestamp").and_then(Value::as_u64),
        term: header
            .get("env")
            .and_then(|env| env.get("TERM"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        title: header
            .get("title")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

fn event(line: &[u8]) -> Result<Event, String> {
    let value: Value = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let Value::Array(items) = value else {
        return Err("not a JSON array".to_owned());
    };
    let time = items
        .first()
        .and_then(Value::as_f64)
        .filter(|t| t.is_finite() && *t >= 0.0)
        .ok_or("the time is not a number of seconds")?;
    let code = items
        .get(1)
        .and_then(Value::as_str)
        .ok_or("the code is not a string")?;
    let data = items
        .get(2)
        .and_then(Value::as_str)
        .ok_or("the data is not a string")?;
    Ok(Event {
        time,
        code: Code::of(code),
        data: data.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAST: &str = "{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":1796616000,\
                        \"env\":{\"TERM\":\"xterm-256color\",\"SHELL\":null},\"theme\":{}}\n\
                        [0.1,\"o\",\"$ \"]\n\
                        [0.9,\"i\",\"ls\\r\"]\n\
                        [1.5,\"r\",\"100x30\"]\n\
                        [2,\"o\",\"a  b\\r\\n\\u001b[1mc\\u001b[0m\\r\\n\"]\n\
                        [2.5,\"m\",\"here\"]\n";

    fn parsed(bytes: &[u8]) -> Cast {
        parse(bytes).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn header_and_events_are_read() {
        let cast = parsed(CAST.as_bytes());
        assert_eq!(
            cast.header,
            Header {
                width: 80,
                height: 24,
                timestamp: Some(1_796_616_000),
                term: Some("xterm-256color".into()),
                title: None,
            }
        );
        assert_eq!(
            cast.header.start(),
            Some(UNIX_EPOCH + Duration::from_secs(1_796_616_000))
        );
        let codes: Vec<&Code> = cast.events.iter().map(|e| &e.code).collect();
        assert_eq!(
            codes,
            [
                &Code::Output,
                &Code::Input,
                &Code::Resize,
                &Code::Output,
                &Code::Marker
            ]
        );
        assert_eq!(cast.events[3].time, 2.0);
        assert_eq!(cast.events[3].data, "a  b\r\n\u{1b}[1mc\u{1b}[0m\r\n");
        assert_eq!(cast.events[2].data, "100x30");
        assert!(!cast.cut_short);
    }

    #[test]
    fn a_last_line_cut_short_by_a_crash_is_dropped() {
        let mut bytes = CAST.as_bytes().to_vec();
        bytes.extend_from_slice(b"[3.0,\"o\",\"half a li");
        let cast = parsed(&bytes);
        assert!(cast.cut_short);
        assert_eq!(cast.events.len(), 5);

        // A complete last line without its newline is kept.
        let whole = parsed(CAST.trim_end().as_bytes());
        assert_eq!(whole.events.len(), 5);
        assert!(!whole.cut_short);
    }

    #[test]
    fn bad_files_are_refused_with_the_line() {
        assert_eq!(parse(b""), Err(CastError::Empty));
        assert!(matches!(parse(b"[1]\n"), Err(CastError::Header { .. })));
        assert!(matches!(
            parse(b"{\"version\":2,\"height\":3}\n"),
            Err(CastError::Header { reason }) if reason.contains("width")
        ));
        assert_eq!(
            parse(b"{\"version\":1,\"width\":8,\"height\":3}\n"),
            Err(CastError::Version {
                version: "1".into()
            })
        );
        let broken = format!("{CAST}[1,\"o\"]\n[-1,\"o\",\"x\"]\n");
        assert_eq!(
            parse(broken.as_bytes()),
            Err(CastError::Event {
                line: 7,
                reason: "the data is not a string".into()
            })
        );
        let negative = format!("{CAST}[-1,\"o\",\"x\"]\n");
        assert!(matches!(
            parse(negative.as_bytes()),
            Err(CastError::Event { line: 7, .. })
        ));
    }
}
