//! The recorder: an [`EventSink`] that copies every connection's events and channel records
//! into a queue, and a writer thread that turns them into recordings (`writer.rs`).
//!
//! The server's callbacks must not block, so the sink only copies what will be written (the
//! streams `intercept` names, a terminal session's output, an SFTP or scp session's bytes) and
//! sends it; the writer thread does the file I/O. When the writer falls behind (a slow disk)
//! by [`HIGH_WATER`] bytes, taps hold their channels' data back until it has caught up to
//! [`LOW_WATER`]: sessions slow down to the disk's pace instead of the recording losing data.
//! Only data that comes while the queue is past [`MAX_QUEUED`] regardless is dropped, and the
//! gap written to the recording (a connection whose recording is `required` is ended
//! instead). A required recording also holds each session's outcome back until the writer
//! has written everything before it ([`ChannelTap::kept`]): a write that fails behind the
//! session ends the connection before its client is told the session succeeded.

mod settings;
mod writer;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use sshpod_config::{AuditConfig, AuditFormat, AuditStorage};
use sshpod_core::{
    ChannelInfo, ChannelTap, ConnectionId, Ender, Event, EventKind, EventSink, TapRecord,
};

use crate::item::{Item, Record};
use crate::s3::SpoolBudget;
use settings::{ChannelFlags, ConnectionFlags};
pub use writer::Notify;

/// Data queued for the writer at which taps start holding their channels back.
pub const HIGH_WATER: u64 = 16 << 20;
/// Data queued for the writer at which held channels go on.
pub const LOW_WATER: u64 = 8 << 20;
/// The most data the queue holds for the writer before records are dropped.
pub const MAX_QUEUED: u64 = 64 << 20;

/// Records connections as the configuration says.
pub struct Audit {
    shared: Arc<Shared>,
}

struct Shared {
    config: AuditConfig,
    queue: mpsc::Sender<writer::Message>,
    queued: Arc<writer::Queued>,
    connections: Mutex<HashMap<ConnectionId, Arc<ConnectionFlags>>>,
}

/// Why the recorder cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Recordings left by an earlier run could not be closed.
    #[error("closing the recordings an earlier run left in {dir}: {source}")]
    Recover {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The writer thread could not be started.
    #[error("starting the recording writer: {0}")]
    Thread(std::io::Error),
}

impl Audit {
    /// The recorder for `config`, or `None` when nothing is to be recorded (no format or no
    /// storage, or recording is off and no config server can turn it on: `per_user`).
    /// Recordings an earlier run left unfinished are closed first; `notify` hears of every
    /// entry whose state changed (the S3 uploader).
    pub fn start(
        config: &AuditConfig,
        per_user: bool,
        notify: Option<Notify>,
        budget: Option<SpoolBudget>,
    ) -> Result<Option<Self>, StartError> {
        if !Self::records(config, per_user) {
            return Ok(None);
        }
        let root = root(config);
        let unclosed = writer::recover(&root).map_err(|source| StartError::Recover {
            dir: root.clone(),
            source,
        })?;
        let queued = Arc::new(writer::Queued::default());
        let queue = writer::spawn(
            root,
            config.format,
            Arc::clone(&queued),
            notify,
            budget,
            unclosed,
        )
        .map_err(StartError::Thread)?;
        Ok(Some(Self {
            shared: Arc::new(Shared {
                config: config.clone(),
                queue,
                queued,
                connections: Mutex::default(),
            }),
        }))
    }

    /// Whether `config` records anything: a format and a storage, and recording on (or a
    /// config server that may turn it on: `per_user`).
    pub fn records(config: &AuditConfig, per_user: bool) -> bool {
        config.format != AuditFormat::None
            && config.storage != AuditStorage::None
            && (config.enable || per_user)
    }

    /// Bytes of recorded data waiting for the writer (the metrics read it).
    pub fn queued_bytes(&self) -> u64 {
        self.shared.queued.bytes.load(Ordering::Relaxed)
    }

    /// Waits until everything queued so far is written and synced (at shutdown, after the
    /// last connection closed); false if `timeout` passed first.
    pub fn drain(&self, timeout: std::time::Duration) -> bool {
        let (done, written) = mpsc::channel();
        self.shared.send(writer::Message::Drain(done));
        written.recv_timeout(timeout).is_ok()
    }
}

/// Where recordings are written: the file storage's directory or the S3 spool.
pub fn root(config: &AuditConfig) -> PathBuf {
    match config.storage {
        AuditStorage::S3 => config.s3.local.clone(),
        _ => config.file.directory.clone(),
    }
}

impl Shared {
    fn flags(&self, connection: ConnectionId) -> Option<Arc<ConnectionFlags>> {
        lock(&self.connections).get(&connection).cloned()
    }

    fn send(&self, message: writer::Message) {
        // The writer thread lives as long as the process; a send fails only while it exits.
        let _ = self.queue.send(message);
    }
}

impl EventSink for Audit {
    fn attach(
        &self,
        connection: ConnectionId,
        remote: SocketAddr,
        ender: Ender,
    ) -> Result<(), String> {
        let config = &self.shared.config;
        let flags = Arc::new(ConnectionFlags::new(config, ender));
        // The entry is made here, on the accepting task, so a connection that must be recorded
        // and cannot be is refused before it starts.
        let started = if config.enable {
            match writer::Recording::create(
                &root(config),
                config.format,
                connection,
                remote,
                config.intercept,
            ) {
                Ok(recording) => Some(recording),
                Err(e) if config.required => {
                    tracing::error!(error = %e, "cannot record a connection: refusing it");
                    return Err("sessions cannot be recorded now; please try again later".into());
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot record a connection");
                    flags.failed();
                    None
                }
            }
        } else {
            None
        };
        lock(&self.shared.connections).insert(connection, Arc::clone(&flags));
        self.shared.send(writer::Message::Attach {
            connection,
            remote,
            recording: started.map(Box::new),
            flags,
        });
        Ok(())
    }

    fn event(&self, event: &Event) {
        let Some(flags) = self.shared.flags(event.connection) else {
            return;
        };
        match &event.kind {
            EventKind::RecordingSettings {
                enable,
                required,
                intercept,
            } => flags.settle(*enable, *required, *intercept),
            EventKind::PtyGranted { .. } => {
                if let Some(channel) = event.channel.and_then(|c| flags.channel(c)) {
                    channel.set_tty();
                }
            }
            EventKind::ProcessStarting { command, .. } => {
                if let Some(channel) = event.channel.and_then(|c| flags.channel(c)) {
                    if settings::is_transfer(command) {
                        channel.set_transfer();
                    }
                }
            }
            // Its tap holds its own flags; the connection forgets them (a connection may open
            // and close channels without end).
            EventKind::ProcessExited { .. }
            | EventKind::ProcessFailed { .. }
            | EventKind::ExitStatusUnknown { .. } => {
                if let Some(channel) = event.channel {
                    flags.forget_channel(channel);
                }
            }
            _ => {}
        }
        if !flags.is_off() {
            self.shared.send(writer::Message::Item(
                event.connection,
                Item::Event(event.clone()),
            ));
        }
        if matches!(event.kind, EventKind::Closed) {
            lock(&self.shared.connections).remove(&event.connection);
            self.shared.send(writer::Message::End(event.connection));
        }
    }

    fn tap(&self, info: &ChannelInfo) -> Option<Box<dyn ChannelTap>> {
        let flags = self.shared.flags(info.connection)?;
        if flags.is_off() {
            return None;
        }
        let channel = flags.open_channel(info);
        self.shared.send(writer::Message::Item(
            info.connection,
            Item::Channel(info.clone()),
        ));
        Some(Box::new(AuditTap {
            shared: Arc::clone(&self.shared),
            connection: info.connection,
            number: info.channel,
            flags,
            channel,
        }))
    }
}

/// One channel's tap: copies what will be recorded and queues it.
struct AuditTap {
    shared: Arc<Shared>,
    connection: ConnectionId,
    number: u32,
    flags: Arc<ConnectionFlags>,
    channel: Arc<ChannelFlags>,
}

impl ChannelTap for AuditTap {
    fn ready(&mut self) -> Option<sshpod_core::BoxFuture<'static, ()>> {
        if self.shared.queued.bytes.load(Ordering::Relaxed) < HIGH_WATER {
            return None;
        }
        let queued = Arc::clone(&self.shared.queued);
        Some(Box::pin(async move { queued.below_low_water().await }))
    }

    fn kept(&mut self) -> Option<sshpod_core::BoxFuture<'static, bool>> {
        if !self.flags.is_required() {
            return None;
        }
        // Answered after everything queued before it is written: the writer takes its queue
        // in order.
        let (done, kept) = tokio::sync::oneshot::channel();
        self.shared.send(writer::Message::Kept {
            connection: self.connection,
            done,
        });
        Some(Box::pin(async move { kept.await.unwrap_or(false) }))
    }

    fn record(&mut self, record: TapRecord<'_>) {
        if self.flags.is_off() || !self.channel.wants(&self.flags, &record) {
            return;
        }
        let size = match record {
            TapRecord::Input(d) | TapRecord::Output(d) | TapRecord::ErrorOutput(d) => d.len(),
            _ => 0,
        } as u64;
        let queued = &self.shared.queued.bytes;
        if size > 0 && queued.load(Ordering::Relaxed) + size > MAX_QUEUED {
            self.flags.lost();
            self.shared.send(writer::Message::Gap {
                connection: self.connection,
                channel: self.number,
                bytes: size,
            });
            return;
        }
        queued.fetch_add(size, Ordering::Relaxed);
        self.shared.send(writer::Message::Item(
            self.connection,
            Item::Record {
                channel: self.number,
                at: SystemTime::now(),
                record: match record {
                    TapRecord::Input(data) => Record::Input(self.shared.queued.copy(data)),
                    TapRecord::Output(data) => Record::Output(self.shared.queued.copy(data)),
                    TapRecord::ErrorOutput(data) => {
                        Record::ErrorOutput(self.shared.queued.copy(data))
                    }
                    other => Record::from(other),
                },
            },
        ));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
