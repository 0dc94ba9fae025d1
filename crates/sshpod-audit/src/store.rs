//! Reading recordings back, from a directory (the `file` storage's, or a spool) or a bucket:
//! what `sshpod audit` and the recordings page use.
//!
//! A store names recordings by connection id and their files by name within the entry
//! (`events.jsonl`, `channel-0.cast`); a recording in one of ContainerSSH's one-file formats has
//! a single file named like the connection.

use std::io;
use std::path::{Path, PathBuf};

use sshpod_core::BoxFuture;

use crate::layout::{self, STATE_DIR};

/// A place recordings can be read from.
pub trait Store: Send + Sync {
    /// The connection ids of every recording, in no particular order.
    fn list(&self) -> BoxFuture<'_, io::Result<Vec<String>>>;
    /// The names of a recording's files, sorted, with their sizes; empty if there is no such
    /// recording.
    fn files<'a>(&'a self, connection: &'a str) -> BoxFuture<'a, io::Result<Vec<(String, u64)>>>;
    /// One file of a recording, whole.
    fn read<'a>(&'a self, connection: &'a str, name: &'a str)
        -> BoxFuture<'a, io::Result<Vec<u8>>>;
    /// Where the store is, for people (`/var/log/sshpod`, `s3://bucket`).
    fn describe(&self) -> String;
}

/// Recordings in a local directory with [`layout`]'s tree.
#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    /// The store at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Its directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// Whether `name` can be a connection id or file name: no separators, no `.`/`..`, no hidden
/// names. Everything a store is asked for comes through here first (the page takes names from
/// URLs).
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The content type of a recording's file (its name or its object key): an event log, a
/// cast, or bytes.
pub fn content_type(name: &str) -> &'static str {
    let name = name.rsplit('/').next().unwrap_or(name);
    if name.ends_with(".jsonl") {
        "application/x-ndjson"
    } else if name.ends_with(".cast") {
        "application/x-asciicast"
    } else {
        "application/octet-stream"
    }
}

fn not_found(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no recording file {what}"))
}

impl Store for DirStore {
    fn list(&self) -> BoxFuture<'_, io::Result<Vec<String>>> {
        Box::pin(async move {
            let root = self.root.clone();
            tokio::task::spawn_blocking(move || {
                let mut ids = Vec::new();
                for entry in std::fs::read_dir(&root)? {
                    let name = entry?.file_name().to_string_lossy().into_owned();
                    if name != STATE_DIR && is_plain_name(&name) {
                        ids.push(name);
                    }
                }
                Ok(ids)
            })
            .await
            .map_err(io::Error::other)?
        })
    }

    fn files<'a>(&'a self, connection: &'a str) -> BoxFuture<'a, io::Result<Vec<(String, u64)>>> {
        Box::pin(async move {
            if !is_plain_name(connection) {
                return Ok(Vec::new());
            }
            let root = self.root.clone();
            let connection = connection.to_owned();
            tokio::task::spawn_blocking(move || {
                let mut files = Vec::new();
                for (key, path) in layout::entry_files(&root, &connection)? {
                    let name = key.rsplit('/').next().unwrap_or(&key).to_owned();
                    files.push((name, std::fs::metadata(&path)?.len()));
                }
                Ok(files)
            })
            .await
            .map_err(io::Error::other)?
        })
    }

    fn read<'a>(
        &'a self,
        connection: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, io::Result<Vec<u8>>> {
        Box::pin(async move {
            if !is_plain_name(connection) || !is_plain_name(name) {
                return Err(not_found(name));
            }
            let entry = layout::entry_path(&self.root, connection);
            let path = if name == connection && tokio::fs::metadata(&entry).await?.is_file() {
                entry
            } else {
                entry.join(name)
            };
            tokio::fs::read(&path).await.map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => not_found(name),
                _ => e,
            })
        })
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }
}
