//! `sshpod audit show ID`: the event log, one readable line per event.
//!
//! ```text
//! connection 0123... from 192.0.2.7:50022, user alice (sshpod format, complete)
//! 2026-12-07T04:00:00.123Z  -   connected
//! 2026-12-07T04:00:02.000Z  0   pty                 term=xterm cols=80 rows=24
//! ```

use std::io::Write;

use anyhow::{bail, Context};
use serde_json::{Map, Value};
use sshpod_audit::log_lines::{self, LineError, Members, EVENTS_FILE};
use sshpod_audit::store::Store;
use sshpod_audit::summary::{summarize, RecordingFormat, Status};

use super::printable::{escaped, value};
use super::source::find;
use super::Outcome;

/// Members every line has, shown in the columns or the heading rather than as fields.
const COMMON: &[&str] = &[
    "seq",
    "at",
    "connection",
    "remote",
    "user",
    "channel",
    "kind",
    "chain",
];

pub(super) async fn run(
    store: &dyn Store,
    id: &str,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let id = find(store, id).await?;
    let summary = summarize(store, &id)
        .await
        .with_context(|| format!("reading {id}"))?;
    if summary.format != RecordingFormat::Sshpod {
        bail!(
            "{id} is not in sshpod's format ({}): it has no event log to show{}",
            format_name(summary.format),
            if summary.format == RecordingFormat::Asciinema {
                "; `sshpod audit play` replays it"
            } else {
                ""
            }
        );
    }
    let log = store
        .read(&id, EVENTS_FILE)
        .await
        .with_context(|| format!("reading {id}/{EVENTS_FILE}"))?;
    let unknown = "-".to_owned();
    writeln!(
        out,
        "connection {} from {}, user {} (sshpod format, {})",
        escaped(&id),
        summary
            .remote
            .as_deref()
            .map_or(unknown.clone(), |r| escaped(r).into_owned()),
        summary
            .user
            .as_deref()
            .map_or(unknown, |u| escaped(u).into_owned()),
        summary.status.as_str(),
    )?;
    for line in log_lines::lines(&log) {
        match line.content {
            Ok(members) => writeln!(out, "{}", event(&members))?,
            Err(LineError::CutShort) => writeln!(
                out,
                "line {}: cut short (the recorder stopped while writing it)",
                line.number
            )?,
            Err(error) => writeln!(
                out,
                "line {}: unreadable: {}",
                line.number,
                escaped(&error.to_string())
            )?,
        }
    }
    if summary.status == Status::Open {
        writeln!(
            out,
            "(no end line: the connection is still running, or its sshpod stopped and has not \
             closed the recording yet)"
        )?;
    }
    Ok(Outcome::Success)
}

fn format_name(format: RecordingFormat) -> &'static str {
    match format {
        RecordingFormat::Sshpod => "sshpod",
        RecordingFormat::Binary => "ContainerSSH's binary audit log",
        RecordingFormat::Asciinema => "ContainerSSH's asciicast",
        RecordingFormat::Unknown => "an unknown format",
    }
}

/// One event: time, channel, kind, then its own fields as `name=value`.
fn event(members: &Map<String, Value>) -> String {
    let time = match members.at() {
        Some(at) => humantime::format_rfc3339_millis(at).to_string(),
        None => escaped(members.text("at").unwrap_or("-")).into_owned(),
    };
    let channel = members
        .channel()
        .map_or_else(|| "-".to_owned(), |channel| channel.to_string());
    let kind = escaped(members.kind().unwrap_or("?")).into_owned();
    let mut line = format!("{time}  {channel:<3} {kind:<19}");
    for (name, field) in members {
        if !COMMON.contains(&name.as_str()) {
            line.push(' ');
            line.push_str(&escaped(name));
            line.push('=');
            line.push_str(&value(field));
        }
    }
    line.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_event_reads_as_time_channel_kind_and_its_fields() {
        let Value::Object(members) = json!({
            "seq": 4, "at": "2026-12-07T04:00:02.5Z", "connection": "c", "remote": "r",
            "user": "alice", "channel": 0, "kind": "process-starting",
            "command": {"exec": "ls -l"}, "tty": false, "chain": "00"
        }) else {
            panic!("an object");
        };
        assert_eq!(
            event(&members),
            "2026-12-07T04:00:02.500Z  0   process-starting    command={\"exec\":\"ls -l\"} tty=false"
        );
        let Value::Object(members) = json!({"at": "yesterday", "kind": "closed", "channel": null})
        else {
            panic!("an object");
        };
        assert_eq!(event(&members), "yesterday  -   closed");
    }
}
