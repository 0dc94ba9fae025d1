//! `sshpod audit ls`: one row per recording, oldest first.

use std::io::Write;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use futures_util::stream::{self, StreamExt};
use sshpod_audit::store::Store;
use sshpod_audit::summary::{summarize, Summary};

use super::printable::escaped;
use super::Outcome;

/// Recordings summarised at once (each reads its event log; a bucket answers slowly).
const AT_ONCE: usize = 8;

/// Which recordings to list.
#[derive(Debug, Clone, Default)]
pub(super) struct Filter {
    /// Only this user's.
    pub(super) user: Option<String>,
    /// Only those still running at or after this time.
    pub(super) since: Option<SystemTime>,
    /// Only those started at or before this time.
    pub(super) until: Option<SystemTime>,
}

impl Filter {
    fn keeps(&self, summary: &Summary) -> bool {
        if let Some(user) = &self.user {
            if summary.user.as_ref() != Some(user) {
                return false;
            }
        }
        // A recording whose times are unknown cannot be placed in a window.
        if let Some(since) = self.since {
            match summary.end.or(summary.start) {
                Some(last) if last >= since => {}
                _ => return false,
            }
        }
        if let Some(until) = self.until {
            match summary.start {
                Some(start) if start <= until => {}
                _ => return false,
            }
        }
        true
    }
}

/// `--since` and `--until`: RFC 3339 (`2026-12-07T04:00:00Z`), or a time ago (`2h`, `3days`).
pub(crate) fn parse_time(text: &str) -> Result<SystemTime, String> {
    if let Ok(time) = humantime::parse_rfc3339_weak(text) {
        return Ok(time);
    }
    let ago = humantime::parse_duration(text).map_err(|_| {
        format!("`{text}` is neither a time (`2026-12-07T04:00:00Z`) nor a time ago (`2h`)")
    })?;
    SystemTime::now()
        .checked_sub(ago)
        .ok_or_else(|| format!("`{text}` ago is before the clock's beginning"))
}

pub(super) async fn run(
    store: &dyn Store,
    filter: &Filter,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let ids = store
        .list()
        .await
        .with_context(|| format!("listing {}", store.describe()))?;
    let summaries: Vec<(String, std::io::Result<Summary>)> = stream::iter(ids)
        .map(|id| async move {
            let summary = summarize(store, &id).await;
            (id, summary)
        })
        .buffer_unordered(AT_ONCE)
        .collect()
        .await;
    let mut outcome = Outcome::Success;
    let mut rows = Vec::new();
    for (id, summary) in summaries {
        match summary {
            Ok(summary) if filter.keeps(&summary) => rows.push(summary),
            Ok(_) => {}
            // One unreadable recording does not hide the others.
            Err(error) => {
                eprintln!("sshpod: {}: {error}", escaped(&id));
                outcome = Outcome::Failed;
            }
        }
    }
    // Oldest first; recordings of unknown time last.
    rows.sort_by(|a, b| {
        (a.start.is_none(), a.start, &a.connection).cmp(&(
            b.start.is_none(),
            b.start,
            &b.connection,
        ))
    });
    let place = store.describe();
    let mut table = vec![[
        "CONNECTION",
        "USER",
        "SOURCE",
        "START",
        "DURATION",
        "SIZE",
        "STATUS",
        "WHERE",
    ]
    .map(String::from)];
    for summary in &rows {
        table.push(row(summary, &place));
    }
    write_table(out, &table)?;
    Ok(outcome)
}

fn row(summary: &Summary, place: &str) -> [String; 8] {
    let unknown = || "-".to_owned();
    [
        escaped(&summary.connection).into_owned(),
        summary
            .user
            .as_deref()
            .map_or_else(unknown, |user| escaped(user).into_owned()),
        summary
            .remote
            .as_deref()
            .map_or_else(unknown, |remote| escaped(remote).into_owned()),
        summary.start.map_or_else(unknown, |start| {
            humantime::format_rfc3339_seconds(start).to_string()
        }),
        summary.duration().map_or_else(unknown, duration),
        size(summary.size),
        summary.status.as_str().to_owned(),
        format!("{}/{}", place, escaped(&summary.connection)),
    ]
}

/// Whole seconds, as `1h 2m 3s`.
fn duration(length: Duration) -> String {
    let seconds = Duration::from_secs(length.as_secs());
    if seconds.is_zero() {
        return "0s".to_owned();
    }
    humantime::format_duration(seconds).to_string()
}

/// Bytes in binary units (`512 B`, `1.5 KiB`, `20.0 MiB`).
fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Columns padded to their widest cell, the last one not padded.
fn write_table(out: &mut impl Write, table: &[[String; 8]]) -> anyhow::Result<()> {
    let mut widths = [0; 8];
    for row in table {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in table {
        let mut line = String::new();
        for (index, (cell, width)) in row.iter().zip(widths).enumerate() {
            if index + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        writeln!(out, "{}", line.trim_end()).context("writing to standard output")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_durations_and_times_read_as_people_write_them() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(20 * 1024 * 1024), "20.0 MiB");
        assert_eq!(duration(Duration::from_millis(400)), "0s");
        assert_eq!(duration(Duration::from_millis(3_723_900)), "1h 2m 3s");
        let two_hours_ago = parse_time("2h").unwrap_or_else(|e| panic!("{e}"));
        let now = SystemTime::now();
        let elapsed = now.duration_since(two_hours_ago).unwrap_or_default();
        assert!(elapsed >= Duration::from_secs(7200), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(7300), "{elapsed:?}");
        assert_eq!(
            parse_time("2026-12-07T04:00:00Z"),
            Ok(humantime::parse_rfc3339("2026-12-07T04:00:00Z").unwrap_or(now))
        );
        assert!(parse_time("yesterday").is_err());
    }
}
