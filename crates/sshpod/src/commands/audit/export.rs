//! `sshpod audit export ID --format json|asciicast|containerssh [-o FILE]`: a recording in a
//! form other tools read.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
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

/// The event log as a JSON array, each line as written (its `chain` member included).
async fn json(store: &dyn Store, id: &str) -> anyhow::Result<Vec<u8>> {
    let summary = summarize(store, id)
        .await
        .with_context(|| format!("reading {id}"))?;
    match summary.format {
        RecordingFormat::Sshpod => {}
        // MERGE SEAM (integrator): ContainerSSH's binary logs become JSON through
        // `sshpod_audit::containerssh`'s reader once it is in the workspace.
        RecordingFormat::Binary => bail!(
            "{id} is in ContainerSSH's binary format; exporting it as JSON is not built into \
             this sshpod yet"
        ),
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

// MERGE SEAM (integrator): write the recording with `sshpod_audit::containerssh`'s version 2
// writer (from the event log and the channels' streams) once it is in the workspace; a
// recording already in ContainerSSH's binary format is exported as it is.
async fn containerssh(store: &dyn Store, id: &str) -> anyhow::Result<Vec<u8>> {
    let summary = summarize(store, id)
        .await
        .with_context(|| format!("reading {id}"))?;
    if summary.format == RecordingFormat::Binary {
        return store
            .read(id, id)
            .await
            .with_context(|| format!("reading {id}"));
    }
    bail!("exporting to ContainerSSH's binary format is not built into this sshpod yet")
}
