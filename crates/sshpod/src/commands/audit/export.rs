//! `sshpod audit export ID --format json|asciicast|containerssh [-o FILE]`: a recording in a
//! form other tools read.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use sshpod_audit::containerssh;
use sshpod_audit::log_lines::{self, LineError, EVENTS_FILE};
use sshpod_audit::store::Store;
use sshpod_audit::summary::{summarize, RecordingFormat};

use super::play::read_cast_bytes;
use super::source::find;
use super::Outcome;
use crate::cli::ExportFormat;

pub(super) async fn run(
    store: &dyn Store,
    id: &str,
    format: ExportFormat,
    channel: Option<u32>,
    output: Option<&Path>,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let id = find(store, id).await?;
    let bytes = match format {
        ExportFormat::Json => json(store, &id).await?,
        ExportFormat::Asciicast => read_cast_bytes(store, &id, channel).await?.1,
        ExportFormat::Containerssh => containerssh(store, &id).await?,
    };
    match output {
        Some(path) => {
            std::fs::write(path, &bytes).with_context(|| format!("writing {}", path.display()))?
        }
        None => out
            .write_all(&bytes)
            .context("writing to standard output")?,
    }
    Ok(Outcome::Success)
}

/// The event log as a JSON array, each line as written (its `chain` member included); a
/// ContainerSSH binary log's messages as its decoder prints them.
async fn json(store: &dyn Store, id: &str) -> anyhow::Result<Vec<u8>> {
    let summary = summarize(store, id)
        .await
        .with_context(|| format!("reading {id}"))?;
    match summary.format {
        RecordingFormat::Sshpod => {}
        RecordingFormat::Binary => return binary_json(store, id).await,
        RecordingFormat::Asciinema => {
            bail!("{id} is an asciicast, not an event log; export it with --format asciicast")
        }
        RecordingFormat::Unknown => bail!("{id} is in no format sshpod reads"),
    }
    let log = store
        .read(id, EVENTS_FILE)
        .await
        .with_context(|| format!("reading {id}/{EVENTS_FILE}"))?;
    let mut array = b"[\n".to_vec();
    let mut first = true;
    let mut rest: &[u8] = &log;
    for line in log_lines::lines(&log) {
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let text = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or_default();
        match line.content {
            Ok(_) => {
                if !first {
                    array.extend_from_slice(b",\n");
                }
                first = false;
                array.extend_from_slice(text);
            }
            Err(LineError::CutShort) => eprintln!(
                "sshpod: {id}: line {} was cut short by an interruption and is left out",
                line.number
            ),
            Err(error) => bail!(
                "{id}/{EVENTS_FILE}: line {}: {error}; the log is damaged (`sshpod audit verify \
                 {id}` says where)",
                line.number
            ),
        }
    }
    array.extend_from_slice(b"\n]\n");
    Ok(array)
}

/// A binary log's messages as a JSON array, each as ContainerSSH's decoder prints it.
async fn binary_json(store: &dyn Store, id: &str) -> anyhow::Result<Vec<u8>> {
    let file = store
        .read(id, id)
        .await
        .with_context(|| format!("reading {id}"))?;
    let log = containerssh::decode(&file).with_context(|| format!("reading {id}"))?;
    if log.truncated {
        eprintln!(
            "sshpod: {id}: the log stops before its disconnect (its writer was interrupted, is \
             still writing, or the file was cut short); exported the {} messages before",
            log.messages.len()
        );
    }
    let mut array = b"[\n".to_vec();
    for (i, message) in log.messages.iter().enumerate() {
        if i > 0 {
            array.extend_from_slice(b",\n");
        }
        array.extend_from_slice(message.to_json().to_string().as_bytes());
    }
    array.extend_from_slice(b"\n]\n");
    Ok(array)
}

/// The recording in ContainerSSH's binary format (version 2): sshpod's own recordings are
/// written from their event log and channels' data; one already in that format is exported
/// as it is.
async fn containerssh(store: &dyn Store, id: &str) -> anyhow::Result<Vec<u8>> {
    let summary = summarize(store, id)
        .await
        .with_context(|| format!("reading {id}"))?;
    match summary.format {
        RecordingFormat::Sshpod => {}
        RecordingFormat::Binary => {
            return store
                .read(id, id)
                .await
                .with_context(|| format!("reading {id}"))
        }
        RecordingFormat::Asciinema => bail!(
            "{id} is an asciicast: it holds a terminal's output only, not the events \
             ContainerSSH's binary format needs; export it with --format asciicast"
        ),
        RecordingFormat::Unknown => bail!("{id} is in no format sshpod reads"),
    }
    let log = store
        .read(id, EVENTS_FILE)
        .await
        .with_context(|| format!("reading {id}/{EVENTS_FILE}"))?;
    let mut files = BTreeMap::new();
    // Only the channels' data files (casts and streams) go into the log.
    for file in summary
        .files
        .iter()
        .filter(|file| file.name.starts_with("channel-"))
    {
        let bytes = store
            .read(id, &file.name)
            .await
            .with_context(|| format!("reading {id}/{}", file.name))?;
        files.insert(file.name.clone(), bytes);
    }
    let exported = containerssh::from_sshpod(id, &log, &files, Vec::new()).with_context(|| {
        format!("{id}: the recording is damaged (`sshpod audit verify {id}` says where)")
    })?;
    if let Some(line) = exported.cut_short_line {
        eprintln!("sshpod: {id}: line {line} was cut short by an interruption and is left out");
    }
    for cast in &exported.cut_short_casts {
        eprintln!(
            "sshpod: {id}/{cast}: the last event was cut short by an interruption and is left out"
        );
    }
    if !exported.complete {
        eprintln!(
            "sshpod: {id}: the connection's close is not in the recording (it was interrupted \
             or is still open); the log ends without its disconnect"
        );
    }
    Ok(exported.out)
}
