//! The writer thread: turns each connection's queued items into its recording, syncs what it
//! wrote at least once a second (a crash of the machine loses at most the last second), keeps
//! the entry's state file (`layout`), and closes recordings an earlier run left open. A
//! recording that failed (a full disk) is closed as a crash's would be once the disk takes
//! writes again, tried every second, so it is complete and uploaded without a restart.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Map};
use sshpod_config::{AuditFormat, AuditIntercept};
use sshpod_core::{ConnectionId, EventKind};

use super::settings::ConnectionFlags;
use crate::containerssh::{AsciinemaWriter, BinaryWriter};
use crate::item::{Item, Record};
use crate::layout::{self, EntryState};
use crate::s3::SpoolBudget;
use crate::sshpod_format::{self, SshpodWriter};

/// Data queued for the writer, the channels waiting for it to go down, and the buffers data
/// is copied into (used again once written: a stream recorded at full speed would otherwise
/// have fresh memory faulted in for every piece).
#[derive(Debug, Default)]
pub(crate) struct Queued {
    pub(crate) bytes: AtomicU64,
    caught_up: tokio::sync::Notify,
    buffers: std::sync::Mutex<Vec<Vec<u8>>>,
}

/// Buffers kept for use again, and the largest kept.
const SPARE_BUFFERS: usize = 64;
const SPARE_BUFFER_SIZE: usize = 256 << 10;

impl Queued {
    /// A copy of `data` in a spare buffer if there is one.
    pub(crate) fn copy(&self, data: &[u8]) -> Vec<u8> {
        let spare = self
            .buffers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let mut buffer = spare.unwrap_or_default();
        buffer.clear();
        buffer.extend_from_slice(data);
        buffer
    }

    /// Keeps a written item's buffer for another copy.
    fn recycle(&self, item: Item) {
        let buffer = match item {
            Item::Record {
                record: Record::Input(b) | Record::Output(b) | Record::ErrorOutput(b),
                ..
            } => b,
            _ => return,
        };
        if buffer.capacity() <= SPARE_BUFFER_SIZE {
            let mut spare = self
                .buffers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if spare.len() < SPARE_BUFFERS {
                spare.push(buffer);
            }
        }
    }

    /// The writer took `n` bytes off the queue.
    fn taken(&self, n: u64) {
        let before = self.bytes.fetch_sub(n, Ordering::Relaxed);
        if before >= super::LOW_WATER && before - n < super::LOW_WATER {
            self.caught_up.notify_waiters();
        }
    }

    /// Returns once the queue is below the low-water mark.
    pub(crate) async fn below_low_water(&self) {
        loop {
            let caught_up = self.caught_up.notified();
            tokio::pin!(caught_up);
            // Registered before the check, so a notification between the two is not missed.
            caught_up.as_mut().enable();
            if self.bytes.load(Ordering::Relaxed) < super::LOW_WATER {
                return;
            }
            caught_up.await;
        }
    }
}

/// Told the connection id of every entry whose state changed (for an uploader).
pub type Notify = Arc<dyn Fn(&str) + Send + Sync>;

/// How often written data is synced to the disk.
const SYNC_EVERY: Duration = Duration::from_secs(1);
/// Events kept of a connection whose recording is not decided yet (before its login).
const MAX_PENDING: usize = 512;

// Most messages are items: boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Message {
    /// A connection started; its recording, if it is recorded from the start.
    Attach {
        connection: ConnectionId,
        remote: SocketAddr,
        recording: Option<Box<Recording>>,
        flags: Arc<ConnectionFlags>,
    },
    /// Something to record.
    Item(ConnectionId, Item),
    /// Data the queue had no room for.
    Gap {
        connection: ConnectionId,
        channel: u32,
        bytes: u64,
    },
    /// Answer whether the connection's recording still holds everything before (false once
    /// a recording it requires failed).
    Kept {
        connection: ConnectionId,
        done: tokio::sync::oneshot::Sender<bool>,
    },
    /// The connection ended.
    End(ConnectionId),
    /// Answer once everything before is written and synced.
    Drain(mpsc::Sender<()>),
}

/// One connection's recording in progress.
pub(crate) struct Recording {
    root: PathBuf,
    state: EntryState,
    format: FormatWriter,
}

// One per recorded connection, so the sizes of the variants do not add up.
#[allow(clippy::large_enum_variant)]
enum FormatWriter {
    Sshpod(SshpodWriter),
    /// ContainerSSH's binary audit log, in `<root>/<id>`.
    Binary(BinaryWriter<File>, AuditIntercept),
    /// ContainerSSH's asciicast, in `<root>/<id>`.
    Asciinema(AsciinemaWriter<File>, AuditIntercept),
}

/// The one file of ContainerSSH's formats.
fn entry_file(root: &Path, id: &str) -> io::Result<File> {
    OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(layout::entry_path(root, id))
}

impl Recording {
    /// Creates the entry and its state (incomplete).
    pub(crate) fn create(
        root: &Path,
        format: AuditFormat,
        connection: ConnectionId,
        remote: SocketAddr,
        intercept: AuditIntercept,
    ) -> io::Result<Self> {
        let id = connection.to_string();
        let state = EntryState {
            connection: id.clone(),
            started: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
            complete: false,
            authenticated: false,
            username: None,
            ip: remote.ip().to_string(),
            country: "XX".to_owned(),
        };
        layout::write_state(root, &state)?;
        let format = match format {
            AuditFormat::Binary => {
                FormatWriter::Binary(BinaryWriter::new(entry_file(root, &id)?, &id)?, intercept)
            }
            AuditFormat::Asciinema => {
                FormatWriter::Asciinema(AsciinemaWriter::new(entry_file(root, &id)?), intercept)
            }
            AuditFormat::Sshpod | AuditFormat::None => {
                FormatWriter::Sshpod(SshpodWriter::create(root, &id, intercept)?)
            }
        };
        Ok(Self {
            root: root.to_owned(),
            state,
            format,
        })
    }

    /// Writes `item`; returns the bytes it added (estimated for the compressed format).
    fn write(&mut self, item: &Item) -> io::Result<u64> {
        if let Item::Event(event) = item {
            if let EventKind::LoginAccepted { authenticated, .. } = &event.kind {
                self.state.authenticated = true;
                self.state.username = Some(authenticated.clone());
                layout::write_state(&self.root, &self.state)?;
            }
        }
        let estimate = data_len(item) + 256;
        match &mut self.format {
            FormatWriter::Sshpod(w) => w.write(item),
            FormatWriter::Binary(w, intercept) => {
                settle(intercept, item);
                w.write(item, intercept).map(|()| estimate)
            }
            FormatWriter::Asciinema(w, intercept) => {
                settle(intercept, item);
                w.write(item, intercept).map(|()| estimate)
            }
        }
    }

    fn gap(&mut self, channel: u32, bytes: u64) -> io::Result<()> {
        match &mut self.format {
            FormatWriter::Sshpod(w) => {
                let mut fields = Map::new();
                fields.insert("bytes".into(), json!(bytes));
                w.note(SystemTime::now(), Some(channel), "recording-gap", fields)
            }
            // ContainerSSH's formats have no way to say it; the log does.
            FormatWriter::Binary(..) | FormatWriter::Asciinema(..) => {
                tracing::warn!(
                    channel,
                    bytes,
                    "recording fell behind: data was not recorded"
                );
                Ok(())
            }
        }
    }

    /// Handles of the files being written, for syncing elsewhere.
    fn files(&self) -> io::Result<Vec<File>> {
        match &self.format {
            FormatWriter::Sshpod(w) => w.files(),
            FormatWriter::Binary(w, _) => Ok(vec![w.get_ref().try_clone()?]),
            FormatWriter::Asciinema(w, _) => Ok(vec![w.get_ref().try_clone()?]),
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        match &mut self.format {
            FormatWriter::Sshpod(w) => w.sync(),
            FormatWriter::Binary(w, _) => w.get_ref().sync_data(),
            FormatWriter::Asciinema(w, _) => w.get_ref().sync_data(),
        }
    }

    fn finish(mut self) -> io::Result<String> {
        match self.format {
            FormatWriter::Sshpod(mut w) => {
                w.finish(SystemTime::now())?;
            }
            FormatWriter::Binary(w, _) => w.finish()?.sync_all()?,
            FormatWriter::Asciinema(w, _) => w.finish()?.sync_all()?,
        }
        self.state.complete = true;
        layout::write_state(&self.root, &self.state)?;
        Ok(self.state.connection)
    }
}

/// The login's settings, for ContainerSSH's formats (sshpod's writer follows them itself).
fn settle(intercept: &mut AuditIntercept, item: &Item) {
    if let Item::Event(event) = item {
        if let EventKind::RecordingSettings { intercept: new, .. } = &event.kind {
            *intercept = *new;
        }
    }
}

struct Connection {
    remote: SocketAddr,
    flags: Arc<ConnectionFlags>,
    recording: Option<Recording>,
    /// Items before the login's settings, while the recording is undecided.
    pending: Vec<Item>,
    dirty: bool,
}

struct Writer {
    root: PathBuf,
    format: AuditFormat,
    queued: Arc<Queued>,
    notify: Option<Notify>,
    /// The S3 spool's limit; none for file storage.
    budget: Option<SpoolBudget>,
    connections: HashMap<ConnectionId, Connection>,
    /// Entries of ended connections that could not be closed yet (the disk was full).
    unclosed: Vec<String>,
}

/// Starts the writer thread; its queue is returned.
pub(crate) fn spawn(
    root: PathBuf,
    format: AuditFormat,
    queued: Arc<Queued>,
    notify: Option<Notify>,
    budget: Option<SpoolBudget>,
    unclosed: Vec<String>,
) -> io::Result<mpsc::Sender<Message>> {
    let (sender, receiver) = mpsc::channel();
    let mut writer = Writer {
        root,
        format,
        queued,
        notify,
        budget,
        connections: HashMap::new(),
        unclosed,
    };
    std::thread::Builder::new()
        .name("sshpod-audit".into())
        .spawn(move || writer.run(&receiver))?;
    Ok(sender)
}

fn data_len(item: &Item) -> u64 {
    match item {
        Item::Record {
            record: Record::Input(d) | Record::Output(d) | Record::ErrorOutput(d),
            ..
        } => d.len() as u64,
        _ => 0,
    }
}

impl Writer {
    fn run(&mut self, receiver: &mpsc::Receiver<Message>) {
        // The periodic syncs run on a thread of their own: a sync waits for the disk, and the
        // writer must go on taking data meanwhile (a session streaming into its recording
        // would otherwise stall once a second).
        let (syncs, to_sync) = mpsc::sync_channel::<Vec<File>>(1);
        let syncer = std::thread::Builder::new()
            .name("sshpod-audit-sync".into())
            .spawn(move || {
                for files in to_sync {
                    for file in files {
                        if let Err(e) = file.sync_data() {
                            tracing::error!(error = %e, "syncing a recording");
                        }
                    }
                }
            });
        if let Err(e) = &syncer {
            tracing::warn!(error = %e, "no sync thread: recordings are synced by the writer");
        }
        let mut synced = Instant::now();
        loop {
            match receiver.recv_timeout(SYNC_EVERY) {
                Ok(message) => self.handle(message),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if synced.elapsed() >= SYNC_EVERY {
                match &syncer {
                    Ok(_) => self.sync_in_background(&syncs),
                    Err(_) => self.sync(),
                }
                self.close_unclosed();
                synced = Instant::now();
            }
        }
        self.sync();
    }

    /// Hands the files written since the last sync to the sync thread; if it is still busy
    /// with the last ones, they wait for the next round.
    fn sync_in_background(&mut self, syncs: &mpsc::SyncSender<Vec<File>>) {
        let mut files = Vec::new();
        let mut taken = Vec::new();
        for (id, connection) in &mut self.connections {
            if let (true, Some(recording)) = (connection.dirty, &mut connection.recording) {
                match recording.files() {
                    Ok(handles) => files.extend(handles),
                    Err(e) => tracing::error!(error = %e, "syncing a recording"),
                }
                taken.push(*id);
            }
        }
        if files.is_empty() || syncs.try_send(files).is_err() {
            return;
        }
        for id in taken {
            if let Some(connection) = self.connections.get_mut(&id) {
                connection.dirty = false;
            }
        }
    }

    fn sync(&mut self) {
        for connection in self.connections.values_mut() {
            if let (true, Some(recording)) = (connection.dirty, &mut connection.recording) {
                if let Err(e) = recording.sync() {
                    tracing::error!(error = %e, "syncing a recording");
                }
                connection.dirty = false;
            }
        }
    }

    fn handle(&mut self, message: Message) {
        match message {
            Message::Attach {
                connection,
                remote,
                recording,
                flags,
            } => {
                self.connections.insert(
                    connection,
                    Connection {
                        remote,
                        flags,
                        recording: recording.map(|r| *r),
                        pending: Vec::new(),
                        dirty: false,
                    },
                );
            }
            Message::Item(id, item) => {
                self.queued.taken(data_len(&item));
                self.item(id, item);
            }
            Message::Gap {
                connection,
                channel,
                bytes,
            } => {
                if let Some(Connection {
                    recording: Some(recording),
                    flags,
                    ..
                }) = self.connections.get_mut(&connection)
                {
                    // A failed recording's last line may be torn: nothing goes after it.
                    if flags.is_off() {
                        return;
                    }
                    if let Err(e) = recording.gap(channel, bytes) {
                        fail(flags, &e);
                    }
                }
            }
            Message::Kept { connection, done } => {
                let kept = self
                    .connections
                    .get(&connection)
                    .is_none_or(|c| !c.flags.has_failed_required());
                let _ = done.send(kept);
            }
            Message::End(id) => self.end(id),
            Message::Drain(done) => {
                self.sync();
                let _ = done.send(());
            }
        }
    }

    fn item(&mut self, id: ConnectionId, item: Item) {
        let Some(connection) = self.connections.get_mut(&id) else {
            return;
        };
        if connection.flags.is_off() && connection.recording.is_none() {
            return;
        }
        if connection.recording.is_none() {
            let settled = match &item {
                Item::Event(event) => match &event.kind {
                    EventKind::RecordingSettings {
                        enable, intercept, ..
                    } => Some((*enable, *intercept)),
                    _ => None,
                },
                _ => None,
            };
            match settled {
                Some((true, intercept)) => {
                    match Recording::create(
                        &self.root,
                        self.format,
                        id,
                        connection.remote,
                        intercept,
                    ) {
                        Ok(recording) => connection.recording = Some(recording),
                        Err(e) => {
                            // Its state may have been written before the disk refused more.
                            self.unclosed.push(id.to_string());
                            return fail(&connection.flags, &e);
                        }
                    }
                    let pending = std::mem::take(&mut connection.pending);
                    for earlier in pending {
                        write(connection, &earlier, self.budget.as_ref());
                    }
                }
                Some((false, _)) => {
                    connection.pending = Vec::new();
                    return;
                }
                None => {
                    if connection.pending.len() < MAX_PENDING {
                        connection.pending.push(item);
                    }
                    return;
                }
            }
        }
        write(connection, &item, self.budget.as_ref());
        self.queued.recycle(item);
    }

    fn end(&mut self, id: ConnectionId) {
        let Some(connection) = self.connections.remove(&id) else {
            return;
        };
        let Some(recording) = connection.recording else {
            return;
        };
        // A recording that failed part-way may end in a torn line: it is closed the way a
        // restart closes what a crash left, which cuts the tear off first.
        let closed = if connection.flags.is_off() {
            drop(recording);
            close_left_open(&self.root, &id.to_string())
        } else {
            recording.finish().map(|_| ())
        };
        match closed {
            Ok(()) => self.notify(&id.to_string()),
            Err(e) => {
                tracing::warn!(connection = %id, error = %e,
                    "cannot close a recording now; trying again every second");
                self.unclosed.push(id.to_string());
            }
        }
    }

    fn notify(&self, entry: &str) {
        if let Some(notify) = &self.notify {
            notify(entry);
        }
    }

    /// Tries again to close the entries that could not be closed when their connection ended.
    fn close_unclosed(&mut self) {
        if self.unclosed.is_empty() {
            return;
        }
        let mut still = Vec::new();
        for entry in std::mem::take(&mut self.unclosed) {
            match close_left_open(&self.root, &entry) {
                Ok(()) => {
                    tracing::info!(
                        connection = entry,
                        "closed a recording that could not be closed before"
                    );
                    self.notify(&entry);
                }
                Err(_) => still.push(entry),
            }
        }
        self.unclosed = still;
    }
}

fn write(connection: &mut Connection, item: &Item, budget: Option<&SpoolBudget>) {
    let Some(recording) = &mut connection.recording else {
        return;
    };
    if connection.flags.is_off() {
        return;
    }
    match recording.write(item) {
        Ok(written) => {
            connection.dirty = true;
            // Counted once written (its size is known only then): the spool passes its limit
            // by one item at most, and that recording fails.
            if let Some(Err(full)) = budget.map(|b| b.try_reserve(written)) {
                fail(&connection.flags, &io::Error::other(full));
            }
        }
        Err(e) => fail(&connection.flags, &e),
    }
}

fn fail(flags: &ConnectionFlags, error: &io::Error) {
    tracing::error!(error = %error, "recording a connection failed; it is recorded no further");
    flags.failed();
}

/// Closes every recording under `root` that an earlier run left incomplete; returns those
/// that cannot be closed now (a full disk), for the writer to try again.
pub(crate) fn recover(root: &Path) -> io::Result<Vec<String>> {
    let mut later = Vec::new();
    for state in layout::read_states(root)? {
        let state = match state {
            Ok(state) => state,
            Err((path, e)) => {
                tracing::warn!(path = %path.display(), error = %e, "unreadable recording state");
                continue;
            }
        };
        if state.complete {
            continue;
        }
        let connection = state.connection.clone();
        match close(root, state) {
            Ok(()) => tracing::info!(connection, "closed a recording an earlier run left open"),
            Err(e) => {
                tracing::warn!(connection, error = %e,
                    "cannot close a recording an earlier run left open now; trying again every second");
                later.push(connection);
            }
        }
    }
    Ok(later)
}

/// Closes the entry `connection` if its state says it is incomplete (none: nothing to close).
fn close_left_open(root: &Path, connection: &str) -> io::Result<()> {
    match layout::read_state(root, connection)? {
        Some(state) if !state.complete => close(root, state),
        _ => Ok(()),
    }
}

/// Ends an incomplete recording's event log (digests, and an `end` that says `interrupted`)
/// and marks its state complete. A log that cannot be ended cleanly (its chain is broken) is
/// kept as it is and marked complete; an error writing (a full disk) leaves it incomplete.
fn close(root: &Path, mut state: EntryState) -> io::Result<()> {
    let entry = layout::entry_path(root, &state.connection);
    if entry.join(sshpod_format::EVENTS).is_file() {
        match sshpod_format::recover(&entry) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::InvalidData => tracing::warn!(
                connection = state.connection,
                error = %e,
                "a recording left open cannot be closed cleanly; kept as it is"
            ),
            Err(e) => return Err(e),
        }
    }
    state.complete = true;
    layout::write_state(root, &state)
}
