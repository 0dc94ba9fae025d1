//! Reading an event log (`events.jsonl`) for the page: what the list shows of a recording, and
//! the lines the page shows beside the player. Pure functions over the log's bytes.
//!
//! A log comes from disk or a bucket and may have been tampered with or cut short by a crash:
//! a line that is not a JSON object is reported, never trusted, and a last line without its
//! newline is left out (it was being written when the writer stopped).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// What a recording's event log says about the connection.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct LogFacts {
    /// The authenticated user, if a login was accepted.
    pub(super) user: Option<String>,
    /// The client's address.
    pub(super) remote: Option<String>,
    /// The first event's time.
    pub(super) start: Option<DateTime<Utc>>,
    /// The last event's time.
    pub(super) last: Option<DateTime<Utc>>,
    /// Whole lines.
    pub(super) lines: u64,
    /// Whether the log ends with its `end` line (else the connection was interrupted).
    pub(super) complete: bool,
    /// The first thing wrong with the log, for people.
    pub(super) problem: Option<String>,
}

impl LogFacts {
    /// Seconds from the first event to the last.
    pub(super) fn duration(&self) -> Option<f64> {
        let (start, last) = (self.start?, self.last?);
        let nanos = (last - start).num_nanoseconds()?;
        Some(nanos.max(0) as f64 / 1e9)
    }
}

/// The whole lines of a log, numbered from 1; a cut-short last line is left out.
fn lines(log: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    let whole = match log.iter().rposition(|&b| b == b'\n') {
        Some(end) => &log[..end],
        None => &[][..],
    };
    let empty = whole.is_empty();
    whole
        .split(|&b| b == b'\n')
        .filter(move |_| !empty)
        .zip(1..)
        .map(|(line, number)| (number, line))
}

/// One line as a JSON object.
fn object(line: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice(line) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

fn text(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// An event's `at`.
fn time(map: &Map<String, Value>) -> Option<DateTime<Utc>> {
    let at = map.get("at")?.as_str()?;
    DateTime::parse_from_rfc3339(at)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// What the list shows of a recording, read from its log.
pub(super) fn facts(log: &[u8]) -> LogFacts {
    let mut facts = LogFacts::default();
    // The user a login was accepted for wins over the names lines carry before it.
    let mut accepted = None;
    let mut seen_user = None;
    let mut kind = None;
    let mut interrupted = false;
    for (number, line) in lines(log) {
        facts.lines = number;
        let Some(map) = object(line) else {
            facts
                .problem
                .get_or_insert_with(|| format!("line {number} is not a JSON object"));
            kind = None;
            continue;
        };
        if let Some(at) = time(&map) {
            facts.start.get_or_insert(at);
            facts.last = Some(at);
        }
        if facts.remote.is_none() {
            facts.remote = text(&map, "remote");
        }
        kind = text(&map, "kind");
        // An `end` written at the next start after a crash closes a recording that was cut.
        interrupted = map.get("interrupted").and_then(Value::as_bool) == Some(true);
        if kind.as_deref() == Some("login-accepted") && accepted.is_none() {
            accepted = text(&map, "authenticated").or_else(|| text(&map, "user"));
        }
        if let Some(user) = text(&map, "user") {
            seen_user = Some(user);
        }
    }
    facts.user = accepted.or(seen_user);
    facts.complete = kind.as_deref() == Some("end") && !interrupted;
    facts
}

/// The lines of a log as JSON objects without their `chain` member, at most `limit` of them;
/// true when there were more. A line that is not a JSON object becomes
/// `{"kind":"unreadable","line":N}`, so the page shows that something is there.
pub(super) fn events(log: &[u8], limit: usize) -> (Vec<Value>, bool) {
    let mut out = Vec::new();
    for (number, line) in lines(log) {
        if out.len() == limit {
            return (out, true);
        }
        let value = match object(line) {
            Some(mut map) => {
                map.remove("chain");
                Value::Object(map)
            }
            None => serde_json::json!({ "kind": "unreadable", "line": number }),
        };
        out.push(value);
    }
    (out, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = concat!(
        r#"{"seq":0,"at":"2026-12-07T04:00:00.250000000Z","connection":"c","remote":"192.0.2.7:5022","user":null,"channel":null,"kind":"connected","chain":"00"}"#,
        "\n",
        r#"{"seq":1,"at":"2026-12-07T04:00:01Z","remote":"192.0.2.7:5022","user":"root","kind":"login-refused","chain":"00"}"#,
        "\n",
        r#"{"seq":2,"at":"2026-12-07T04:00:02Z","user":"alice","kind":"login-accepted","authenticated":"alice@corp","method":"publickey"}"#,
        "\n",
        r#"{"seq":3,"at":"2026-12-07T04:00:12.750000000Z","user":"alice","kind":"end","lines":3,"files":0}"#,
        "\n",
    );

    #[test]
    fn the_list_reads_user_remote_start_duration_and_completeness() {
        let facts = facts(LOG.as_bytes());
        assert_eq!(facts.user.as_deref(), Some("alice@corp"));
        assert_eq!(facts.remote.as_deref(), Some("192.0.2.7:5022"));
        assert_eq!(
            facts.start.map(|t| t.to_rfc3339()),
            Some("2026-12-07T04:00:00.250+00:00".to_owned())
        );
        assert_eq!(facts.duration(), Some(12.5));
        assert_eq!(facts.lines, 4);
        assert!(facts.complete);
        assert_eq!(facts.problem, None);
    }

    #[test]
    fn an_interrupted_log_is_incomplete_and_its_cut_line_left_out() {
        let cut = &LOG[..LOG.len() - 20];
        let facts = facts(cut.as_bytes());
        assert!(!facts.complete);
        assert_eq!(facts.lines, 3);
        assert_eq!(facts.duration(), Some(1.75));
        assert_eq!(events(cut.as_bytes(), 100).0.len(), 3);
    }

    #[test]
    fn a_log_closed_after_a_crash_is_interrupted() {
        let closed = format!(
            "{LOG}{}\n",
            r#"{"seq":4,"at":"2026-12-07T04:00:03Z","kind":"end","interrupted":true}"#
        );
        assert!(!facts(closed.as_bytes()).complete);
    }

    #[test]
    fn garbage_is_reported_not_trusted() {
        let log = b"not json\n[1,2]\n{\"kind\":\"connected\",\"at\":\"yesterday\"}\n\xff\xfe\n";
        let facts = facts(log);
        assert_eq!(
            facts.problem.as_deref(),
            Some("line 1 is not a JSON object")
        );
        assert_eq!(facts.lines, 4);
        assert_eq!(facts.start, None);
        assert!(!facts.complete);
        let (events, more) = events(log, 100);
        assert!(!more);
        assert_eq!(
            events[0],
            serde_json::json!({"kind": "unreadable", "line": 1})
        );
        assert_eq!(events[2]["kind"], "connected");
        assert_eq!(events[3]["line"], 4);
        assert_eq!(super::facts(b""), LogFacts::default());
        assert_eq!(super::facts(b"{\"kind\":\"end\"}"), LogFacts::default());
    }

    #[test]
    fn events_lose_their_chain_and_stop_at_the_limit() {
        let (all, more) = events(LOG.as_bytes(), 100);
        assert!(!more);
        assert_eq!(all.len(), 4);
        assert!(all.iter().all(|e| e.get("chain").is_none()));
        assert_eq!(all[2]["authenticated"], "alice@corp");
        let (two, more) = events(LOG.as_bytes(), 2);
        assert!(more);
        assert_eq!(two.len(), 2);
        let (exact, more) = events(LOG.as_bytes(), 4);
        assert!(!more && exact.len() == 4);
    }
}
