//! Where recordings live in a local directory: the `file` storage's directory, or the S3
//! storage's spool (`s3.local`), which has the same layout.
//!
//! ```text
//! <root>/<connection-id>/...            format sshpod: a directory of files
//! <root>/<connection-id>                formats binary and asciinema: one file, named as
//!                                       ContainerSSH names it
//! <root>/.state/<connection-id>.json    the entry's state: object metadata, and whether the
//!                                       recording is complete
//! ```
//!
//! A file's object key in a bucket is its path relative to the root, so a bucket holds the same
//! tree. The state file is written whole (to a temporary name, then renamed), so a reader never
//! sees half of one. An entry whose state says `complete: false` at start-up belongs to an
//! instance that stopped without finishing it (a crash, `kill -9`): the recorder closes it
//! before serving .

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The directory of state files under a root.
pub const STATE_DIR: &str = ".state";

/// What the recorder says about one connection's entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryState {
    /// The connection id (the entry's name).
    pub connection: String,
    /// Unix seconds of the connection's first event.
    pub started: i64,
    /// Whether everything of the connection has been written. An uploader finishes an entry's
    /// upload and removes it locally only once this is true.
    pub complete: bool,
    /// Whether a login was accepted.
    pub authenticated: bool,
    /// The authenticated user, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The client's address.
    pub ip: String,
    /// The client's country code (`XX` when unknown).
    pub country: String,
}

/// The entry of `connection` under `root` (a directory or a file, by format).
pub fn entry_path(root: &Path, connection: &str) -> PathBuf {
    root.join(connection)
}

/// The state file of `connection` under `root`.
pub fn state_path(root: &Path, connection: &str) -> PathBuf {
    root.join(STATE_DIR).join(format!("{connection}.json"))
}

/// Writes `state` whole: to a temporary file, synced, then renamed over the old one.
pub fn write_state(root: &Path, state: &EntryState) -> io::Result<()> {
    let dir = root.join(STATE_DIR);
    // Not `create_dir_all`: a root that has gone (an unmounted volume) is an error, not
    // something to make again underneath.
    match fs::create_dir(&dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let bytes = serde_json::to_vec(state).map_err(io::Error::other)?;
    write_whole(&state_path(root, &state.connection), &bytes)
}

/// Writes `bytes` as `path` whole: to a hidden temporary file beside it, synced, then renamed
/// over it, so a reader sees the old content or the new, never half. A temporary file a failed
/// write left is removed.
pub(crate) fn write_whole(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .map_or_else(Default::default, |n| n.to_string_lossy());
    let temporary = path.with_file_name(format!(".{name}.tmp"));
    let written = fs::File::create(&temporary).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    let placed = written.and_then(|()| fs::rename(&temporary, path));
    if placed.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    placed
}

/// Reads the state of `connection`, if it has one.
pub fn read_state(root: &Path, connection: &str) -> io::Result<Option<EntryState>> {
    match fs::read(state_path(root, connection)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every state under `root`, in no particular order; unreadable ones are skipped with their
/// error.
pub fn read_states(root: &Path) -> io::Result<Vec<Result<EntryState, (PathBuf, io::Error)>>> {
    let dir = root.join(STATE_DIR);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut states = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(connection) = name.strip_suffix(".json") else {
            continue;
        };
        if connection.starts_with('.') {
            continue;
        }
        states.push(match read_state(root, connection) {
            Ok(Some(state)) => Ok(state),
            Ok(None) => continue,
            Err(e) => Err((path, e)),
        });
    }
    Ok(states)
}

/// The files of `connection`'s entry with their object keys (paths relative to `root`, with
/// `/`), sorted by key. Empty if the entry does not exist.
pub fn entry_files(root: &Path, connection: &str) -> io::Result<Vec<(String, PathBuf)>> {
    let path = entry_path(root, connection);
    let metadata = match fs::metadata(&path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    if metadata.is_file() {
        return Ok(vec![(connection.to_owned(), path)]);
    }
    let mut files = Vec::new();
    for entry in fs::read_dir(&path)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            let name = entry.file_name().to_string_lossy().into_owned();
            files.push((format!("{connection}/{name}"), entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// Removes `connection`'s entry and its state (after an upload). The state goes last, so an
/// interrupted removal is finished at the next start.
pub fn remove_entry(root: &Path, connection: &str) -> io::Result<()> {
    let path = entry_path(root, connection);
    match fs::metadata(&path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(&path)?,
        Ok(_) => fs::remove_file(&path)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    match fs::remove_file(state_path(root, connection)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
