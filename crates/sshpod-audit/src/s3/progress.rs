//! How far an entry's upload has come, kept beside its state (`.state/<connection>.upload`) so
//! a restarted uploader continues the same multipart uploads instead of starting over.
//!
//! The file is written whole (a temporary name, synced, renamed), after every part: it never
//! claims a part the store has not acknowledged. It may miss the last acknowledged one (a crash
//! between the two), which is then sent again under the same number.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::layout::{self, STATE_DIR};

/// The suffix of progress files (not `.json`: [`crate::layout::read_states`] reads those).
const SUFFIX: &str = ".upload";

/// The largest progress file read: 10,000 parts of a few files fit many times over. A larger
/// one is not ours, and is treated as unreadable.
const MAX_FILE: u64 = 16 * 1024 * 1024;

/// The upload progress of one entry's files, by object key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Progress {
    pub(crate) files: BTreeMap<String, FileProgress>,
}

/// The upload progress of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FileProgress {
    /// The multipart upload, once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) upload_id: Option<String>,
    /// The size of every part of this upload (the configured size when it started: a changed
    /// configuration does not change an upload under way).
    pub(crate) part_size: u64,
    /// The ETags of the parts sent, in order; part `i` holds bytes
    /// `i * part_size .. (i + 1) * part_size` (the last one of a complete file may be shorter).
    #[serde(default)]
    pub(crate) parts: Vec<String>,
    /// Bytes from the start of the file that the parts hold.
    #[serde(default)]
    pub(crate) covered: u64,
    /// The object is in the store whole.
    #[serde(default)]
    pub(crate) done: bool,
}

impl FileProgress {
    /// Nothing sent yet, with parts of `part_size` bytes.
    pub(crate) fn new(part_size: u64) -> Self {
        Self {
            upload_id: None,
            part_size,
            parts: Vec::new(),
            covered: 0,
            done: false,
        }
    }

    /// Whether the fields agree: every part but the last is whole, and the parts hold what
    /// `covered` says.
    fn consistent(&self) -> bool {
        let parts = self.parts.len() as u64;
        let most = parts.saturating_mul(self.part_size);
        let least = parts.saturating_sub(1).saturating_mul(self.part_size);
        self.part_size > 0
            && self.covered <= most
            && (parts == 0 || self.covered > least)
            && (self.upload_id.is_some() || parts == 0)
    }
}

/// The progress file of `connection` under `root`.
pub(crate) fn path(root: &Path, connection: &str) -> PathBuf {
    root.join(STATE_DIR).join(format!("{connection}{SUFFIX}"))
}

/// Reads `connection`'s progress; nothing yet if there is no file.
pub(crate) fn read(root: &Path, connection: &str) -> io::Result<Progress> {
    let file = match fs::File::open(path(root, connection)) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Progress::default()),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "upload progress file larger than 16 MiB",
        ));
    }
    let progress: Progress = serde_json::from_slice(&bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    if !progress.files.values().all(FileProgress::consistent) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "upload progress whose parts do not add up",
        ));
    }
    Ok(progress)
}

/// Writes `connection`'s progress whole.
pub(crate) fn write(root: &Path, connection: &str, progress: &Progress) -> io::Result<()> {
    fs::create_dir_all(root.join(STATE_DIR))?;
    let bytes = serde_json::to_vec(progress).map_err(io::Error::other)?;
    layout::write_whole(&path(root, connection), &bytes)
}

/// Removes `connection`'s progress, if any.
pub(crate) fn remove(root: &Path, connection: &str) -> io::Result<()> {
    match fs::remove_file(path(root, connection)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The connections with a progress file but no state: left by an uploader stopped between
/// removing an entry and removing its progress.
pub(crate) fn orphans(root: &Path) -> io::Result<Vec<String>> {
    let entries = match fs::read_dir(root.join(STATE_DIR)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut orphans = Vec::new();
    for entry in entries {
        let name = entry?.file_name();
        let Some(connection) = name.to_str().and_then(|n| n.strip_suffix(SUFFIX)) else {
            continue;
        };
        if connection.starts_with('.') {
            continue;
        }
        if !crate::layout::state_path(root, connection).exists() {
            orphans.push(connection.to_owned());
        }
    }
    Ok(orphans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{self, EntryState};

    #[test]
    fn progress_survives_a_round_trip_and_is_not_a_state() -> io::Result<()> {
        let root = tempfile::tempdir()?;
        let mut progress = Progress::default();
        progress.files.insert(
            "c/events.jsonl".into(),
            FileProgress {
                upload_id: Some("up-1".into()),
                part_size: 5,
                parts: vec!["\"e1\"".into(), "\"e2\"".into()],
                covered: 10,
                done: false,
            },
        );
        write(root.path(), "c", &progress)?;
        assert_eq!(read(root.path(), "c")?, progress);
        assert!(
            layout::read_states(root.path())?.is_empty(),
            "read_states must not see progress files"
        );
        remove(root.path(), "c")?;
        assert_eq!(read(root.path(), "c")?, Progress::default());
        remove(root.path(), "c")
    }

    #[test]
    fn a_damaged_progress_file_is_an_error_not_a_panic() -> io::Result<()> {
        let root = tempfile::tempdir()?;
        fs::create_dir_all(root.path().join(STATE_DIR))?;
        for bad in [
            &b"{\"files\":"[..],
            b"{\"files\":{\"k\":{\"partSize\":0}}}",
            b"{\"files\":{\"k\":{\"uploadId\":\"u\",\"partSize\":5,\"parts\":[\"e\"],\"covered\":6}}}",
            b"{\"files\":{\"k\":{\"partSize\":5,\"parts\":[\"e\"],\"covered\":5}}}",
            b"\xff\xfe",
        ] {
            fs::write(path(root.path(), "c"), bad)?;
            let error = read(root.path(), "c").err();
            assert_eq!(
                error.map(|e| e.kind()),
                Some(io::ErrorKind::InvalidData),
                "{bad:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn progress_without_a_state_is_an_orphan() -> io::Result<()> {
        let root = tempfile::tempdir()?;
        layout::write_state(
            root.path(),
            &EntryState {
                connection: "kept".into(),
                started: 0,
                complete: false,
                authenticated: false,
                username: None,
                ip: "192.0.2.1:1".into(),
                country: "XX".into(),
            },
        )?;
        write(root.path(), "kept", &Progress::default())?;
        write(root.path(), "gone", &Progress::default())?;
        assert_eq!(orphans(root.path())?, ["gone"]);
        Ok(())
    }
}
