//! The uploader: one task that empties the spool into the bucket, resuming what an earlier
//! process left, uploading long sessions as they run, and retrying a failing store forever.
//! The module documentation of [`crate::s3`] states what it promises.

use std::collections::HashMap;
use std::fs;
use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as Key;
use object_store::{ObjectStore, PutMultipartOptions, PutOptions, PutPayload};
use sshpod_config::{AuditS3Config, AuditS3Metadata};
use sshpod_core::Lifecycle;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::backoff::Backoff;
use super::budget::SpoolBudget;
use super::client::{self, Access, Bucket};
use super::object;
use super::progress::{self, FileProgress, Progress};
use super::S3Error;
use crate::layout::{self, EntryState};
use crate::store::is_plain_name;

/// S3's most parts in one upload.
const MAX_PARTS: usize = 10_000;

/// How often the uploader looks at the spool, and how it backs off a failing store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploaderTiming {
    /// The time between scans of the spool when nothing notifies (1 s).
    pub scan_interval: Duration,
    /// The wait after the first failure of the store (1 s); it doubles with each further one.
    pub first_retry: Duration,
    /// The longest wait between tries (60 s).
    pub max_retry: Duration,
}

impl Default for UploaderTiming {
    fn default() -> Self {
        Self {
            scan_interval: Duration::from_secs(1),
            first_retry: Duration::from_secs(1),
            max_retry: Duration::from_secs(60),
        }
    }
}

/// What the uploader has done so far, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploaderStats {
    /// Bytes the store acknowledged (parts and whole objects; a part sent again counts again).
    pub uploaded_bytes: u64,
    /// Entries uploaded whole and removed from the spool.
    pub uploaded_entries: u64,
    /// Entries in the spool at the last scan, less those uploaded since.
    pub pending_entries: u64,
    /// Scans in a row in which the store failed (0: it answers).
    pub failures_in_a_row: u32,
    /// Scans of the spool finished.
    pub scans: u64,
    /// The uploader has stopped (its lifecycle was cancelled).
    pub stopped: bool,
}

/// What the handle and the task share.
#[derive(Debug)]
struct Shared {
    wake: Notify,
    stats: watch::Sender<UploaderStats>,
}

/// The running uploader: how the recorder notifies it and counts the spool, and what it has
/// done. Cheap to clone. The task stops when the lifecycle it was started on is cancelled.
#[derive(Debug, Clone)]
pub struct UploaderHandle {
    shared: Arc<Shared>,
    budget: SpoolBudget,
}

impl UploaderHandle {
    /// Says that `connection`'s state changed (it started, or it is complete), so the spool is
    /// scanned now rather than at the next interval.
    pub fn notify(&self, connection: &str) {
        debug!(connection, "audit upload: notified");
        self.shared.wake.notify_one();
    }

    /// The spool's size budget, for the recorder (see [`crate::s3`]).
    pub fn budget(&self) -> &SpoolBudget {
        &self.budget
    }

    /// The counters now.
    pub fn stats(&self) -> UploaderStats {
        *self.shared.stats.borrow()
    }

    /// Bytes the store acknowledged.
    pub fn uploaded_bytes(&self) -> u64 {
        self.stats().uploaded_bytes
    }

    /// Entries still in the spool.
    pub fn pending_entries(&self) -> u64 {
        self.stats().pending_entries
    }

    /// Scans in a row in which the store failed.
    pub fn failures_in_a_row(&self) -> u32 {
        self.stats().failures_in_a_row
    }

    /// Waits until `done` holds for the counters (or the uploader stopped), and returns them.
    pub async fn wait_for(&self, mut done: impl FnMut(&UploaderStats) -> bool) -> UploaderStats {
        let mut stats = self.shared.stats.subscribe();
        let result = stats
            .wait_for(|current| current.stopped || done(current))
            .await
            .map(|current| *current);
        // The sender lives in `self`, so the channel cannot close while we wait.
        result.unwrap_or_else(|_| *stats.borrow())
    }
}

/// Empties the spool into the bucket. See [`crate::s3`] for what it promises.
#[derive(Debug)]
pub struct Uploader {
    bucket: Bucket,
    root: PathBuf,
    part_size: u64,
    parallel: usize,
    metadata: AuditS3Metadata,
    timing: UploaderTiming,
    shared: Arc<Shared>,
    budget: SpoolBudget,
}

/// Why an entry's upload stopped.
#[derive(Debug)]
enum Failure {
    /// The store failed: the whole spool waits (backoff).
    Store(object_store::Error),
    /// The spool failed for this entry: it is tried again at the next scan.
    Local(io::Error),
}

/// What a scan of the spool found.
struct Scanned {
    /// Entries left in the spool (none: the spool could not be read).
    pending: Option<u64>,
    /// The store's first error, if it failed for any entry.
    store: Result<(), object_store::Error>,
}

/// What became of an entry in a scan.
enum Outcome {
    /// Uploaded whole and removed.
    Removed,
    /// Still in the spool: incomplete, or waiting for more bytes.
    Kept,
}

/// One file of an entry as the scan saw it.
struct SpoolFile {
    key: String,
    path: PathBuf,
    len: u64,
}

/// The next request for a file, decided from its progress alone.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Nothing to send now.
    Wait,
    /// The whole file in one PUT (complete, and smaller than a part).
    Put,
    /// Start a multipart upload.
    Create,
    /// Send bytes `offset..offset + len` as part `index`.
    Part { index: usize, offset: u64, len: u64 },
    /// Complete the multipart upload.
    Complete,
}

/// Decides what `file` (of `len` bytes now, in an entry that is `complete` or not) needs next.
fn next(file: &FileProgress, len: u64, complete: bool) -> io::Result<Next> {
    if file.done {
        return Ok(Next::Wait);
    }
    let covered = file.covered;
    let Some(remaining) = len.checked_sub(covered) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the file shrank to {len} bytes below the {covered} already uploaded"),
        ));
    };
    let part = file.part_size;
    if file.upload_id.is_none() {
        return Ok(if complete && len < part {
            Next::Put
        } else if remaining >= part {
            Next::Create
        } else {
            Next::Wait
        });
    }
    let index = file.parts.len();
    if remaining >= part && index + 1 < MAX_PARTS {
        return Ok(Next::Part {
            index,
            offset: covered,
            len: part,
        });
    }
    if !complete {
        return Ok(Next::Wait);
    }
    if remaining > part || index >= MAX_PARTS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the file needs more than {MAX_PARTS} parts of {part} bytes (raise audit.s3.uploadPartSize)"),
        ));
    }
    Ok(if remaining > 0 {
        Next::Part {
            index,
            offset: covered,
            len: remaining,
        }
    } else {
        Next::Complete
    })
}

impl Uploader {
    /// Starts uploading `config.local` into `config.bucket` on `lifecycle`, with the default
    /// timing: a scan every second, retries from 1 s doubling to 60 s.
    pub fn start(config: &AuditS3Config, lifecycle: &Lifecycle) -> Result<UploaderHandle, S3Error> {
        Self::start_with(config, lifecycle, UploaderTiming::default())
    }

    /// [`start`](Uploader::start) with another timing.
    pub fn start_with(
        config: &AuditS3Config,
        lifecycle: &Lifecycle,
        timing: UploaderTiming,
    ) -> Result<UploaderHandle, S3Error> {
        let bucket = client::build(config, Access::Write)?;
        let root = config.local.clone();
        let budget =
            SpoolBudget::scan(&root, config.max_spool_size).map_err(|source| S3Error::Spool {
                path: root.clone(),
                source,
            })?;
        let shared = Arc::new(Shared {
            wake: Notify::new(),
            stats: watch::Sender::new(UploaderStats::default()),
        });
        let uploader = Uploader {
            bucket,
            root,
            part_size: config.upload_part_size,
            parallel: usize::try_from(config.parallel_uploads.max(1)).unwrap_or(1),
            metadata: config.metadata,
            timing,
            shared: Arc::clone(&shared),
            budget: budget.clone(),
        };
        info!(
            bucket = %config.bucket,
            spool = %config.local.display(),
            spooled_bytes = budget.used(),
            "audit upload: started"
        );
        lifecycle.spawn(uploader.run(lifecycle.token().clone()));
        Ok(UploaderHandle { shared, budget })
    }

    async fn run(self, token: CancellationToken) {
        let backoff = Backoff::new(self.timing.first_retry, self.timing.max_retry);
        let mut outage: Option<Instant> = None;
        let mut reported = HashMap::new();
        let mut first = true;
        loop {
            let scan = tokio::select! {
                _ = token.cancelled() => break,
                scan = self.scan(&mut reported, first) => scan,
            };
            first = false;
            let failures = match scan.store {
                Ok(()) => {
                    if let Some(since) = outage.take() {
                        info!(
                            down_for = ?since.elapsed(),
                            "audit upload: the store answers again; uploading the spool"
                        );
                    }
                    0
                }
                Err(error) => {
                    let failures = self.stats().failures_in_a_row.saturating_add(1);
                    if outage.is_none() {
                        outage = Some(Instant::now());
                        warn!(
                            error = &error as &dyn std::error::Error,
                            "audit upload: the store failed; recordings stay in the spool and are retried until it answers"
                        );
                    } else {
                        debug!(failures, error = %error, "audit upload: the store still fails");
                    }
                    failures
                }
            };
            self.shared.stats.send_modify(|stats| {
                stats.failures_in_a_row = failures;
                stats.scans += 1;
                if let Some(pending) = scan.pending {
                    stats.pending_entries = pending;
                }
            });
            let wait = if failures == 0 {
                self.timing.scan_interval
            } else {
                backoff.delay(failures, rand::random::<f64>())
            };
            tokio::select! {
                _ = token.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
                _ = self.shared.wake.notified(), if failures == 0 => {}
            }
        }
        self.shared.stats.send_modify(|stats| stats.stopped = true);
        debug!("audit upload: stopped");
    }

    fn stats(&self) -> UploaderStats {
        *self.shared.stats.borrow()
    }

    /// One pass over the spool: every entry is taken as far as it can go.
    async fn scan(&self, reported: &mut HashMap<String, String>, first: bool) -> Scanned {
        let root = self.root.clone();
        let states = blocking(move || {
            if first {
                for connection in progress::orphans(&root)? {
                    progress::remove(&root, &connection)?;
                }
            }
            layout::read_states(&root)
        })
        .await;
        let states = match states {
            Ok(states) => {
                reported.remove("");
                states
            }
            Err(error) => {
                report(reported, "", &error);
                return Scanned {
                    pending: None,
                    store: Ok(()),
                };
            }
        };
        let mut entries = Vec::new();
        for state in states {
            match state {
                Ok(state) if is_plain_name(&state.connection) => entries.push(state),
                Ok(state) => {
                    debug!(connection = %state.connection, "audit upload: a state with an odd name is skipped")
                }
                Err((path, error)) => report(reported, &path.display().to_string(), &error),
            }
        }
        let pending = entries.len() as u64;
        let results: Vec<(String, Result<Outcome, Failure>)> = stream::iter(entries)
            .map(|state| async move { (state.connection.clone(), self.entry(state).await) })
            .buffer_unordered(self.parallel)
            .collect()
            .await;

        let mut removed = 0u64;
        let mut store_error = None;
        for (connection, result) in results {
            match result {
                Ok(outcome) => {
                    reported.remove(&connection);
                    if let Outcome::Removed = outcome {
                        removed += 1;
                    }
                }
                Err(Failure::Local(error)) => report(reported, &connection, &error),
                Err(Failure::Store(error)) => {
                    store_error.get_or_insert(error);
                }
            }
        }
        Scanned {
            pending: Some(pending - removed),
            store: store_error.map_or(Ok(()), Err),
        }
    }

    /// Takes one entry as far as it can go: parts of its files while it is incomplete; the rest,
    /// then its removal, once it is complete.
    async fn entry(&self, state: EntryState) -> Result<Outcome, Failure> {
        let root = self.root.clone();
        let connection = state.connection.clone();
        let (mut progress, files) = blocking(move || {
            let progress = match progress::read(&root, &connection) {
                Ok(progress) => progress,
                Err(error) if error.kind() == io::ErrorKind::InvalidData => {
                    warn!(connection, error = &error as &dyn std::error::Error, "audit upload: unreadable upload progress; the entry's files are sent again from their start");
                    // Replaced at once, so the next scan does not warn again.
                    progress::write(&root, &connection, &Progress::default())?;
                    Progress::default()
                }
                Err(error) => return Err(error),
            };
            let mut files = Vec::new();
            for (key, path) in layout::entry_files(&root, &connection)? {
                let len = fs::metadata(&path)?.len();
                files.push(SpoolFile { key, path, len });
            }
            Ok((progress, files))
        })
        .await
        .map_err(Failure::Local)?;

        for file in &files {
            self.file(&state, file, &mut progress).await?;
        }
        let done = files
            .iter()
            .all(|file| progress.files.get(&file.key).is_some_and(|p| p.done));
        if !state.complete || !done {
            return Ok(Outcome::Kept);
        }

        let bytes: u64 = files.iter().map(|file| file.len).sum();
        let root = self.root.clone();
        let connection = state.connection.clone();
        blocking(move || {
            layout::remove_entry(&root, &connection)?;
            progress::remove(&root, &connection)
        })
        .await
        .map_err(Failure::Local)?;
        self.budget.release(bytes);
        self.shared
            .stats
            .send_modify(|stats| stats.uploaded_entries += 1);
        debug!(connection = %state.connection, bytes, "audit upload: recording uploaded and removed from the spool");
        Ok(Outcome::Removed)
    }

    /// Sends what `file` needs now, noting each step in `progress`.
    async fn file(
        &self,
        state: &EntryState,
        file: &SpoolFile,
        progress: &mut Progress,
    ) -> Result<(), Failure> {
        let key = Key::parse(&file.key)
            .map_err(|e| Failure::Local(io::Error::new(io::ErrorKind::InvalidData, e)))?;
        let part_size = self.part_size;
        let mut restarted = false;
        loop {
            let current = slot(progress, &file.key, part_size);
            if current.upload_id.is_none() {
                current.parts.clear();
                current.covered = 0;
            }
            let step = next(current, file.len, state.complete).map_err(Failure::Local)?;
            let upload_id = current.upload_id.clone();
            let sent = match (step, upload_id) {
                (Next::Wait, _) => return Ok(()),
                (Next::Put, _) => {
                    let body = read_range(&file.path, 0, file.len)
                        .await
                        .map_err(Failure::Local)?;
                    let options = PutOptions {
                        attributes: object::attributes(state, &file.key, self.metadata),
                        ..PutOptions::default()
                    };
                    self.bucket
                        .store
                        .put_opts(&key, PutPayload::from(body), options)
                        .await
                        .map_err(Failure::Store)?;
                    let current = slot(progress, &file.key, part_size);
                    current.done = true;
                    file.len
                }
                (Next::Create, _) => {
                    let options = PutMultipartOptions {
                        attributes: object::attributes(state, &file.key, self.metadata),
                        ..PutMultipartOptions::default()
                    };
                    let id = self
                        .bucket
                        .store
                        .create_multipart_opts(&key, options)
                        .await
                        .map_err(Failure::Store)?;
                    let current = slot(progress, &file.key, part_size);
                    current.upload_id = Some(id);
                    current.parts.clear();
                    current.covered = 0;
                    0
                }
                (Next::Part { index, offset, len }, Some(id)) => {
                    let body = read_range(&file.path, offset, len)
                        .await
                        .map_err(Failure::Local)?;
                    match self
                        .bucket
                        .store
                        .put_part(&key, &id, index, PutPayload::from(body))
                        .await
                    {
                        Ok(PartId { content_id }) => {
                            let current = slot(progress, &file.key, part_size);
                            current.parts.push(content_id);
                            current.covered += len;
                            len
                        }
                        Err(error) if !restarted && self.lost(&key, &id).await => {
                            restarted = true;
                            self.forget(state, file, progress, &error);
                            0
                        }
                        Err(error) => return Err(Failure::Store(error)),
                    }
                }
                (Next::Complete, Some(id)) => {
                    let parts = current_parts(progress, &file.key);
                    match self.bucket.store.complete_multipart(&key, &id, parts).await {
                        Ok(_) => {
                            let current = slot(progress, &file.key, part_size);
                            current.done = true;
                            current.upload_id = None;
                            current.parts.clear();
                            current.covered = 0;
                            0
                        }
                        Err(error) if !restarted && self.lost(&key, &id).await => {
                            restarted = true;
                            self.forget(state, file, progress, &error);
                            0
                        }
                        Err(error) => return Err(Failure::Store(error)),
                    }
                }
                (Next::Part { .. } | Next::Complete, None) => {
                    // `next` asks for parts only of a started upload.
                    return Err(Failure::Local(io::Error::other("a part without an upload")));
                }
            };
            self.save(&state.connection, progress)
                .await
                .map_err(Failure::Local)?;
            if sent > 0 {
                self.shared
                    .stats
                    .send_modify(|stats| stats.uploaded_bytes += sent);
            }
        }
    }

    /// Whether the multipart upload `id` of `key`, whose part or completion just failed, is
    /// gone from the store (rather than the store failing).
    async fn lost(&self, key: &Key, id: &str) -> bool {
        matches!(self.bucket.knows_upload(key, id).await, Ok(false))
    }

    /// Drops `file`'s multipart upload, which the store no longer knows (it expired, was
    /// aborted, or the store lost it): the file is sent again from its first byte.
    fn forget(
        &self,
        state: &EntryState,
        file: &SpoolFile,
        progress: &mut Progress,
        error: &object_store::Error,
    ) {
        info!(
            connection = %state.connection,
            key = %file.key,
            error = error as &dyn std::error::Error,
            "audit upload: the store no longer knows this multipart upload; sending the file again from its start"
        );
        progress
            .files
            .insert(file.key.clone(), FileProgress::new(self.part_size));
    }

    async fn save(&self, connection: &str, progress: &Progress) -> io::Result<()> {
        let root = self.root.clone();
        let connection = connection.to_owned();
        let progress = progress.clone();
        blocking(move || progress::write(&root, &connection, &progress)).await
    }
}

/// The progress of `key`, new (parts of `part_size`) if it has none.
fn slot<'a>(progress: &'a mut Progress, key: &str, part_size: u64) -> &'a mut FileProgress {
    progress
        .files
        .entry(key.to_owned())
        .or_insert_with(|| FileProgress::new(part_size))
}

/// The parts of `key`'s upload, for its completion.
fn current_parts(progress: &Progress, key: &str) -> Vec<PartId> {
    progress
        .files
        .get(key)
        .map(|file| {
            file.parts
                .iter()
                .map(|etag| PartId {
                    content_id: etag.clone(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Logs a spool problem of `what` (a connection, a path; empty: the spool itself) at warn the
/// first time it is seen, and at debug while it stays the same.
fn report(reported: &mut HashMap<String, String>, what: &str, error: &io::Error) {
    let text = error.to_string();
    if reported.get(what) == Some(&text) {
        debug!(entry = what, error = %text, "audit upload: the spool still fails");
        return;
    }
    warn!(
        entry = what,
        error = error as &dyn std::error::Error,
        "audit upload: cannot read this from the spool; it is tried again at every scan"
    );
    reported.insert(what.to_owned(), text);
}

/// `len` bytes of `path` from `offset`, which the file must already hold.
async fn read_range(path: &Path, offset: u64, len: u64) -> io::Result<Bytes> {
    let size = usize::try_from(len).map_err(io::Error::other)?;
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(SeekFrom::Start(offset)).await?;
    let mut buffer = vec![0; size];
    file.read_exact(&mut buffer).await?;
    Ok(Bytes::from(buffer))
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(parts: usize, part_size: u64) -> FileProgress {
        FileProgress {
            upload_id: Some("u".into()),
            part_size,
            parts: vec!["e".into(); parts],
            covered: parts as u64 * part_size,
            done: false,
        }
    }

    #[test]
    fn a_small_complete_file_is_one_put_and_an_incomplete_one_waits() -> io::Result<()> {
        let fresh = FileProgress::new(10);
        assert_eq!(next(&fresh, 9, true)?, Next::Put);
        assert_eq!(next(&fresh, 0, true)?, Next::Put);
        assert_eq!(next(&fresh, 9, false)?, Next::Wait);
        Ok(())
    }

    #[test]
    fn a_growing_file_sends_whole_parts_of_its_written_prefix() -> io::Result<()> {
        let fresh = FileProgress::new(10);
        assert_eq!(next(&fresh, 10, false)?, Next::Create);
        assert_eq!(next(&fresh, 25, true)?, Next::Create);
        assert_eq!(
            next(&started(0, 10), 25, false)?,
            Next::Part {
                index: 0,
                offset: 0,
                len: 10
            }
        );
        assert_eq!(
            next(&started(2, 10), 25, false)?,
            Next::Wait,
            "5 bytes are not a part"
        );
        Ok(())
    }

    #[test]
    fn a_complete_file_sends_its_rest_then_completes() -> io::Result<()> {
        assert_eq!(
            next(&started(2, 10), 25, true)?,
            Next::Part {
                index: 2,
                offset: 20,
                len: 5
            }
        );
        assert_eq!(next(&started(3, 10), 30, true)?, Next::Complete);
        assert_eq!(
            next(&started(2, 10), 30, true)?,
            Next::Part {
                index: 2,
                offset: 20,
                len: 10
            }
        );
        let mut last = started(3, 10);
        last.covered = 25;
        assert_eq!(
            next(&last, 25, true)?,
            Next::Complete,
            "after a short last part"
        );
        let mut done = started(3, 10);
        done.done = true;
        assert_eq!(next(&done, 30, true)?, Next::Wait);
        Ok(())
    }

    #[test]
    fn files_that_shrink_or_outgrow_the_part_count_are_errors() {
        assert!(next(&started(3, 10), 25, true).is_err());
        let last = started(MAX_PARTS - 1, 10);
        let at = (MAX_PARTS as u64 - 1) * 10;
        assert_eq!(
            next(&last, at + 30, false).ok(),
            Some(Next::Wait),
            "the last part waits for the end"
        );
        assert_eq!(
            next(&last, at + 10, true).ok(),
            Some(Next::Part {
                index: MAX_PARTS - 1,
                offset: at,
                len: 10
            })
        );
        assert!(next(&last, at + 11, true).is_err());
    }
}
