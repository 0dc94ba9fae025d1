//! ContainerSSH's `ljson` lines: one JSON object per line with `timestamp` (RFC 3339),
//! `level` (ContainerSSH's names), `code`, `message` and `details`, the line's other fields
//! and those of its spans (a connection's id, client address and user under ContainerSSH's
//! label names). Over syslog, whose header has the time and level, they are left out, as
//! ContainerSSH does.

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};
use sshpod::log_codes;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use super::destination::{level_name, severity, Destination};

/// Writes every event as an `ljson` line to the destination.
pub(crate) struct Ljson {
    destination: Arc<Destination>,
}

impl Ljson {
    pub(crate) fn new(destination: Arc<Destination>) -> Self {
        Self { destination }
    }
}

/// Fields as JSON values, by name.
#[derive(Debug, Default)]
struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        // The whole chain, as `{:#}` prints it for anyhow: the cause is often the useful part.
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        self.0.insert(field.name().into(), Value::from(text));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::from(format!("{value:?}")));
    }
}

/// ContainerSSH's label for a field of the connection span.
fn label(name: &str) -> &str {
    match name {
        "id" => "connectionId",
        "peer" => "remoteAddr",
        "user" => "username",
        other => other,
    }
}

/// One line, before it is written.
pub(crate) struct Line<'a> {
    pub(crate) timestamp: Option<String>,
    pub(crate) level: Option<&'static str>,
    pub(crate) code: &'a str,
    pub(crate) message: &'a str,
    pub(crate) details: Map<String, Value>,
}

impl Line<'_> {
    /// The JSON text, members in ContainerSSH's order (a JSON map would sort them).
    pub(crate) fn into_json(self) -> String {
        let string = |text: &str| Value::from(text).to_string();
        let mut json = String::from("{");
        if let Some(timestamp) = self.timestamp {
            json.push_str(&format!("\"timestamp\":{},", string(&timestamp)));
        }
        if let Some(level) = self.level {
            json.push_str(&format!("\"level\":{},", string(level)));
        }
        json.push_str(&format!(
            "\"code\":{},\"message\":{},\"details\":{}}}",
            string(self.code),
            string(self.message),
            Value::Object(self.details)
        ));
        json
    }
}

impl<S> Layer<S> for Ljson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<Fields>() {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut details = Map::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<Fields>() {
                    for (name, value) in &fields.0 {
                        details.insert(label(name).to_owned(), value.clone());
                    }
                }
            }
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let message = match fields.0.remove("message") {
            Some(Value::String(text)) => text,
            Some(other) => other.to_string(),
            None => String::new(),
        };
        let code = match fields.0.remove("code") {
            Some(Value::String(code)) => code,
            _ => log_codes::for_target(event.metadata().target()).to_owned(),
        };
        details.extend(fields.0);
        let severity = severity(*event.metadata().level());
        let syslog = self.destination.is_syslog();
        let line = Line {
            timestamp: (!syslog)
                .then(|| chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            level: (!syslog).then(|| level_name(severity)),
            code: &code,
            message: &message,
            details,
        };
        let mut text = line.into_json();
        text.push('\n');
        self.destination.write_line(severity, text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Lines as they reach a file: the connection span's fields under ContainerSSH's labels,
    /// the line's own code or its area's.
    #[test]
    fn events_become_lines_with_their_span_and_code() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("log");
        let mut config = sshpod_config::parse_str(
            "auth: {password: {method: htpasswd, htpasswd: {file: /h}}}\n",
            sshpod_config::Format::Yaml,
            "t.yaml",
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .config
        .log;
        config.destination = sshpod_config::LogDestination::File;
        config.file = path.display().to_string();
        let destination = Arc::new(Destination::open(&config)?);
        let subscriber = tracing_subscriber::registry().with(Ljson::new(destination));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "conn",
                id = "0123",
                peer = "127.0.0.1:5",
                user = tracing::field::Empty
            );
            let _entered = span.enter();
            span.record("user", "alice");
            tracing::warn!(
                code = log_codes::AUTH_FAILED,
                method = "password",
                "login refused"
            );
            tracing::debug!(n = 3, "uncoded");
        });
        let text = std::fs::read_to_string(&path)?;
        let lines: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["level"], "warning");
        assert_eq!(lines[0]["code"], "AUTH_FAILED");
        assert_eq!(lines[0]["message"], "login refused");
        assert_eq!(
            lines[0]["details"],
            serde_json::json!({"connectionId": "0123", "remoteAddr": "127.0.0.1:5",
                               "username": "alice", "method": "password"})
        );
        assert_eq!(lines[1]["level"], "debug");
        assert_eq!(lines[1]["code"], log_codes::AREA_SSHPOD);
        assert_eq!(lines[1]["details"]["n"], 3);
        Ok(())
    }

    #[test]
    fn members_in_containerssh_order() {
        let mut details = Map::new();
        details.insert("connectionId".into(), Value::from("0123"));
        let line = Line {
            timestamp: Some("2026-12-07T06:41:57.000Z".into()),
            level: Some("notice"),
            code: "SSH_CONNECTED",
            message: "connection accepted",
            details,
        };
        assert_eq!(
            line.into_json(),
            "{\"timestamp\":\"2026-12-07T06:41:57.000Z\",\"level\":\"notice\",\
             \"code\":\"SSH_CONNECTED\",\"message\":\"connection accepted\",\
             \"details\":{\"connectionId\":\"0123\"}}"
        );
        let syslog = Line {
            timestamp: None,
            level: None,
            code: "X",
            message: "m",
            details: Map::new(),
        };
        assert_eq!(
            syslog.into_json(),
            "{\"code\":\"X\",\"message\":\"m\",\"details\":{}}"
        );
    }
}
