//! The list of recordings: one [`Summary`] per connection, built from the store's file list and
//! the event log, newest first.
//!
//! Reading every log on every request would make the list cost as much as all recordings
//! together; what a log says is kept per recording and read again only when the log's size
//! changes (a live connection's log grows; a finished one never changes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::SecondsFormat;
use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use sshpod_audit::store::{is_plain_name, Store};

use super::log::{self, LogFacts};

/// The event log's name in a recording.
pub(super) const EVENT_LOG: &str = "events.jsonl";

/// The largest event log the page reads; a larger one is listed with what its files say.
pub(super) const MAX_LOG_BYTES: u64 = 64 * 1024 * 1024;

/// Logs read at once while building the list.
const PARALLEL_READS: usize = 4;

/// How a recording was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum Format {
    /// sshpod's own: a directory with an event log and asciicast files.
    Sshpod,
    /// One of ContainerSSH's one-file formats (binary or asciinema): listed, not played.
    Containerssh,
    /// Something else (a directory without an event log).
    Unknown,
}

/// One file of a recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(super) struct FileEntry {
    /// Its name within the recording.
    pub(super) name: String,
    /// Bytes.
    pub(super) size: u64,
}

/// What the list says of one recording.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Summary {
    /// The connection id.
    pub(super) id: String,
    /// How it was written.
    pub(super) format: Format,
    /// The authenticated user.
    pub(super) user: Option<String>,
    /// The client's address.
    pub(super) remote: Option<String>,
    /// The first event's time (RFC 3339).
    pub(super) start: Option<String>,
    /// Seconds from the first event to the last.
    pub(super) duration: Option<f64>,
    /// Bytes of all its files.
    pub(super) size: u64,
    /// Whether it has a terminal session to play.
    pub(super) terminal: bool,
    /// Its asciicast files (one per terminal session).
    pub(super) casts: Vec<String>,
    /// All its files.
    pub(super) files: Vec<FileEntry>,
    /// Whether its event log ends with `end`; unknown for ContainerSSH's formats.
    pub(super) complete: Option<bool>,
    /// Lines in its event log.
    pub(super) events: u64,
    /// What is wrong with it, for people.
    pub(super) problem: Option<String>,
    /// For sorting: the start as a number.
    #[serde(skip)]
    sort_key: Option<i64>,
}

/// Builds one recording's summary from its files and what its log says.
pub(super) fn summarize(id: &str, files: &[(String, u64)], log: Option<&LogFacts>) -> Summary {
    let one_file = matches!(files, [(name, _)] if name == id);
    let format = match (one_file, log.is_some()) {
        (true, _) => Format::Containerssh,
        (false, true) => Format::Sshpod,
        (false, false) => Format::Unknown,
    };
    let casts: Vec<String> = files
        .iter()
        .map(|(name, _)| name)
        .filter(|name| !one_file && name.ends_with(".cast"))
        .cloned()
        .collect();
    let facts = log.cloned().unwrap_or_default();
    Summary {
        id: id.to_owned(),
        format,
        user: facts.user.clone(),
        remote: facts.remote.clone(),
        start: facts
            .start
            .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        duration: facts.duration(),
        size: files.iter().map(|(_, size)| size).sum(),
        terminal: !casts.is_empty(),
        casts,
        files: files
            .iter()
            .map(|(name, size)| FileEntry {
                name: name.clone(),
                size: *size,
            })
            .collect(),
        complete: (format == Format::Sshpod).then_some(facts.complete),
        events: facts.lines,
        problem: facts.problem.clone(),
        sort_key: facts.start.and_then(|t| t.timestamp_nanos_opt()),
    }
}

/// What was read of one recording's log, and the log's size then.
#[derive(Debug)]
struct Kept {
    id: String,
    size: u64,
    facts: Arc<LogFacts>,
}

/// What was read of each recording's log, by connection id, with the log's size then.
#[derive(Debug, Default)]
pub(super) struct Summaries {
    known: Mutex<HashMap<String, (u64, Arc<LogFacts>)>>,
}

impl Summaries {
    fn cached(&self, id: &str, size: u64) -> Option<Arc<LogFacts>> {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known
            .get(id)
            .filter(|(known_size, _)| *known_size == size)
            .map(|(_, facts)| Arc::clone(facts))
    }

    /// Keeps what was read now, and forgets recordings that are gone.
    fn keep(&self, read: Vec<Kept>) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        *known = read
            .into_iter()
            .map(|kept| (kept.id, (kept.size, kept.facts)))
            .collect();
    }

    /// Every recording of `store`, newest first (those without a start last, by id).
    pub(super) async fn list(&self, store: &dyn Store) -> std::io::Result<Vec<Summary>> {
        let mut ids = store.list().await?;
        ids.retain(|id| is_plain_name(id));
        let read: Vec<(Summary, Option<Kept>)> = stream::iter(ids)
            .map(|id| self.one(store, id))
            .buffer_unordered(PARALLEL_READS)
            .collect()
            .await;
        let mut summaries = Vec::with_capacity(read.len());
        let mut facts = Vec::with_capacity(read.len());
        for (summary, kept) in read {
            summaries.push(summary);
            facts.extend(kept);
        }
        self.keep(facts);
        summaries.sort_by(|a, b| {
            b.sort_key
                .is_some()
                .cmp(&a.sort_key.is_some())
                .then(b.sort_key.cmp(&a.sort_key))
                .then(a.id.cmp(&b.id))
        });
        Ok(summaries)
    }

    /// One recording's summary, and its log's facts to keep. A recording that cannot be read
    /// is listed with the problem rather than failing the whole list.
    async fn one(&self, store: &dyn Store, id: String) -> (Summary, Option<Kept>) {
        let files = match store.files(&id).await {
            Ok(files) => files,
            Err(e) => {
                tracing::warn!(recording = %id, error = &e as &dyn std::error::Error, "listing a recording's files");
                let mut summary = summarize(&id, &[], None);
                summary.problem = Some("its files could not be listed".to_owned());
                return (summary, None);
            }
        };
        let Some(&(_, size)) = files.iter().find(|(name, _)| name == EVENT_LOG) else {
            return (summarize(&id, &files, None), None);
        };
        if size > MAX_LOG_BYTES {
            let mut summary = summarize(&id, &files, Some(&LogFacts::default()));
            summary.problem = Some(format!(
                "its event log is larger than {MAX_LOG_BYTES} bytes: read it with `sshpod audit show`"
            ));
            return (summary, None);
        }
        let facts = match self.cached(&id, size) {
            Some(facts) => facts,
            None => match store.read(&id, EVENT_LOG).await {
                Ok(bytes) => Arc::new(log::facts(&bytes)),
                Err(e) => {
                    tracing::warn!(recording = %id, error = &e as &dyn std::error::Error, "reading an event log");
                    let mut summary = summarize(&id, &files, Some(&LogFacts::default()));
                    summary.problem = Some("its event log could not be read".to_owned());
                    return (summary, None);
                }
            },
        };
        let summary = summarize(&id, &files, Some(&facts));
        (summary, Some(Kept { id, size, facts }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, u64)]) -> Vec<(String, u64)> {
        list.iter().map(|(n, s)| ((*n).to_owned(), *s)).collect()
    }

    #[test]
    fn a_one_file_recording_is_listed_with_its_size_only() {
        let summary = summarize("abc", &files(&[("abc", 1234)]), None);
        assert_eq!(summary.format, Format::Containerssh);
        assert_eq!(summary.size, 1234);
        assert!(!summary.terminal);
        assert_eq!(summary.complete, None);
        assert_eq!(summary.start, None);
    }

    #[test]
    fn a_recording_lists_its_casts_and_total_size() {
        let facts = log::facts(
            b"{\"at\":\"2026-12-07T04:00:00Z\",\"kind\":\"connected\"}\n{\"at\":\"2026-12-07T04:00:03.5Z\",\"kind\":\"end\"}\n",
        );
        let summary = summarize(
            "c1",
            &files(&[
                ("channel-0.cast", 100),
                ("channel-1.stdout", 7),
                ("events.jsonl", 50),
            ]),
            Some(&facts),
        );
        assert_eq!(summary.format, Format::Sshpod);
        assert_eq!(summary.casts, vec!["channel-0.cast".to_owned()]);
        assert!(summary.terminal);
        assert_eq!(summary.size, 157);
        assert_eq!(summary.complete, Some(true));
        assert_eq!(summary.duration, Some(3.5));
        assert_eq!(summary.start.as_deref(), Some("2026-12-07T04:00:00Z"));
    }
}
