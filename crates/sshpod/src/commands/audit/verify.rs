//! `sshpod audit verify [ID...]`: whether recordings are as they were written.
//!
//! For each recording: the event log's hash chain ([`sshpod_audit::chain::verify`]) up to its
//! last line, its `end` line (without it the recording is still being written or its sshpod
//! stopped before closing it, and it is checked as far as it goes; a recording closed after a
//! crash has an `end` line saying `interrupted`), the data files the `end` line names, and
//! every data file named by a `recording-file` line against that line's size and SHA-256. One
//! line per recording; the exit status is 1 if any check failed.
//!
//! The chain shows a change to the log that was not followed by recomputing every later link;
//! the digest it prints is the one to compare with a copy kept elsewhere (the server's log).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write;

use anyhow::Context;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sshpod_audit::chain::{self, ChainError};
use sshpod_audit::log_lines::{self, Members, EVENTS_FILE};
use sshpod_audit::store::{is_plain_name, Store};
use sshpod_audit::summary::Status;

use super::printable::escaped;
use super::source::find;
use super::Outcome;

pub(super) async fn run(
    store: &dyn Store,
    ids: &[String],
    require_end: bool,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let ids = if ids.is_empty() {
        let mut all = store
            .list()
            .await
            .with_context(|| format!("listing {}", store.describe()))?;
        all.sort();
        if all.is_empty() {
            eprintln!("sshpod: no recordings in {}", store.describe());
        }
        all
    } else {
        ids.to_vec()
    };
    let mut outcome = Outcome::Success;
    for id in ids {
        let (id, verdict) = match find(store, &id).await {
            Ok(id) => {
                let verdict = check(store, &id).await;
                (id, verdict)
            }
            Err(error) => (id, Verdict::failed(format!("{error:#}"))),
        };
        let failed = !verdict.problems.is_empty() || (require_end && verdict.end.is_none());
        if failed {
            outcome = Outcome::Failed;
        }
        let word = if failed { "FAILED" } else { "ok" };
        writeln!(out, "{}: {word}: {}", escaped(&id), verdict.describe())?;
    }
    Ok(outcome)
}

/// What was found in one recording.
#[derive(Debug, Default)]
struct Verdict {
    /// What the `end` line says, if there is one.
    end: Option<Status>,
    /// Lines whose links were checked.
    verified: u64,
    /// The last line was cut short by an interruption.
    cut_short: bool,
    /// The last checked link (the recording's digest when it is complete).
    digest: Option<String>,
    /// Data files whose size and digest match the log.
    files: u64,
    /// Data files the log gives no digest for (allowed only when it was interrupted).
    unchecked: Vec<String>,
    /// Everything wrong, for people.
    problems: Vec<String>,
}

impl Verdict {
    fn failed(problem: String) -> Self {
        Self {
            problems: vec![problem],
            ..Self::default()
        }
    }

    fn describe(&self) -> String {
        if !self.problems.is_empty() {
            return self
                .problems
                .iter()
                .map(|problem| escaped(problem).into_owned())
                .collect::<Vec<_>>()
                .join("; ");
        }
        let files = match self.files {
            1 => "1 file".to_owned(),
            n => format!("{n} files"),
        };
        let digest = self.digest.as_deref().unwrap_or("-");
        let mut text = match self.end {
            Some(Status::Interrupted) => format!(
                "interrupted (closed after its sshpod restarted), {} lines, {files}, digest \
                 {digest}",
                self.verified
            ),
            Some(_) => format!(
                "complete, {} lines, {files}, digest {digest}",
                self.verified
            ),
            None => {
                let mut text = format!(
                    "no end line (still recording, or interrupted), verified up to line {}, \
                     {files}",
                    self.verified
                );
                if self.cut_short {
                    let _ = write!(text, "; line {} was cut short", self.verified + 1);
                }
                text
            }
        };
        if !self.unchecked.is_empty() {
            let names: Vec<String> = self
                .unchecked
                .iter()
                .map(|name| escaped(name).into_owned())
                .collect();
            let _ = write!(text, "; no digest yet for {}", names.join(", "));
        }
        text
    }
}

/// A `recording-file` line: a data file's size and digest when it was closed.
#[derive(Debug)]
struct Listed {
    line: u64,
    bytes: Option<u64>,
    sha256: Option<String>,
}

async fn check(store: &dyn Store, id: &str) -> Verdict {
    let files = match store.files(id).await {
        Ok(files) => files,
        Err(error) => return Verdict::failed(format!("cannot list its files: {error}")),
    };
    if !files.iter().any(|(name, _)| name == EVENTS_FILE) {
        return Verdict::failed(
            "no event log, so no hash chain to check (ContainerSSH's formats have none)".into(),
        );
    }
    let log = match store.read(id, EVENTS_FILE).await {
        Ok(log) => log,
        Err(error) => return Verdict::failed(format!("cannot read {EVENTS_FILE}: {error}")),
    };
    let mut verdict = Verdict::default();
    match chain::verify(&log) {
        Ok((digest, lines)) => {
            verdict.verified = lines;
            verdict.digest = Some(digest);
        }
        Err(ChainError::Truncated { line }) => {
            verdict.verified = line - 1;
            verdict.cut_short = true;
        }
        Err(error @ (ChainError::Broken { line } | ChainError::Unlinked { line })) => {
            verdict.verified = line - 1;
            verdict.problems.push(error.to_string());
        }
    }
    let listed = read_log(&log, &mut verdict);
    check_files(store, id, &files, &listed, &mut verdict).await;
    verdict
}

/// Walks the checked lines: where `end` is, what follows it, and the data files' digests.
fn read_log(log: &[u8], verdict: &mut Verdict) -> BTreeMap<String, Listed> {
    let mut listed = BTreeMap::new();
    let mut end: Option<(u64, Map<String, Value>)> = None;
    for line in log_lines::lines(log).take(usize::try_from(verdict.verified).unwrap_or(usize::MAX))
    {
        let Ok(members) = line.content else {
            verdict
                .problems
                .push(format!("line {}: not a JSON object", line.number));
            continue;
        };
        if let Some((end_line, _)) = &end {
            verdict.problems.push(format!(
                "line {}: follows the end line (line {end_line})",
                line.number
            ));
        }
        match members.kind() {
            Some("recording-file") => match members.text("file") {
                Some(name) => {
                    let entry = Listed {
                        line: line.number,
                        bytes: members.get("bytes").and_then(Value::as_u64),
                        sha256: members.text("sha256").map(str::to_ascii_lowercase),
                    };
                    listed.insert(name.to_owned(), entry);
                }
                None => verdict.problems.push(format!(
                    "line {}: a recording-file line without its file",
                    line.number
                )),
            },
            Some("end") => end = Some((line.number, members)),
            _ => {}
        }
    }
    if let Some((line, members)) = end {
        verdict.end = Some(Status::of_end(&members));
        check_end_files(line, &members, &listed, verdict);
    }
    listed
}

/// The data files the `end` line names (or counts) against the `recording-file` lines.
fn check_end_files(
    line: u64,
    end: &Map<String, Value>,
    listed: &BTreeMap<String, Listed>,
    verdict: &mut Verdict,
) {
    match end.get("files") {
        Some(Value::Array(names)) => {
            let named: BTreeSet<&str> = names.iter().filter_map(Value::as_str).collect();
            for name in &named {
                if !listed.contains_key(*name) {
                    verdict.problems.push(format!(
                        "line {line}: the end line names {name}, which has no recording-file line"
                    ));
                }
            }
            for name in listed.keys() {
                if !named.contains(name.as_str()) {
                    verdict
                        .problems
                        .push(format!("line {line}: the end line does not name {name}"));
                }
            }
        }
        Some(Value::Number(count)) => {
            let listed_count = u64::try_from(listed.len()).unwrap_or(u64::MAX);
            if count.as_u64() != Some(listed_count) {
                verdict.problems.push(format!(
                    "line {line}: the end line counts {count} data files, the log lists \
                     {listed_count}"
                ));
            }
        }
        _ => {}
    }
}

/// Each listed file against its digest, and every data file against the list.
async fn check_files(
    store: &dyn Store,
    id: &str,
    files: &[(String, u64)],
    listed: &BTreeMap<String, Listed>,
    verdict: &mut Verdict,
) {
    for (name, entry) in listed {
        let line = entry.line;
        if !is_plain_name(name) || name == EVENTS_FILE {
            verdict
                .problems
                .push(format!("line {line}: `{name}` is not a data file's name"));
            continue;
        }
        if !files.iter().any(|(file, _)| file == name) {
            verdict
                .problems
                .push(format!("{name} is missing (its digest is at line {line})"));
            continue;
        }
        let data = match store.read(id, name).await {
            Ok(data) => data,
            Err(error) => {
                verdict
                    .problems
                    .push(format!("{name} cannot be read: {error}"));
                continue;
            }
        };
        let size = u64::try_from(data.len()).unwrap_or(u64::MAX);
        let digest = hex::encode(Sha256::digest(&data));
        if entry.bytes != Some(size) {
            verdict.problems.push(format!(
                "{name} was changed: {size} bytes, line {line} says {}",
                entry
                    .bytes
                    .map_or_else(|| "nothing".to_owned(), |bytes| bytes.to_string())
            ));
        } else if entry.sha256.as_deref() != Some(digest.as_str()) {
            verdict.problems.push(format!(
                "{name} was changed: its SHA-256 is not the one at line {line}"
            ));
        } else {
            verdict.files += 1;
        }
    }
    for (name, _) in files {
        if name == EVENTS_FILE || listed.contains_key(name) {
            continue;
        }
        if verdict.end.is_some() {
            verdict
                .problems
                .push(format!("{name} is not in the log (no recording-file line)"));
        } else {
            verdict.unchecked.push(name.clone());
        }
    }
}
