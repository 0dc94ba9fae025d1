//! Emitting a connection's events to the subscribers, and its channels' records to their taps.
//!
//! Every decision and SSH-level event of a connection goes through [`ConnectionEvents::emit`]:
//! it numbers the event, stamps it with the connection, user and channel, and hands it to each
//! subscriber inside the connection's span, one event at a time. The log is one subscriber
//! ([`LogEvents`]); audit, metrics and a live view are others.

mod log;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::SystemTime;

use russh::ChannelId;
use sshpod_core::{
    ChannelInfo, ChannelKind, ChannelTap, ConnectionId, Ender, Event, EventKind, EventSink,
    TapRecord,
};

pub use log::LogEvents;

/// The subscribers of a server, shared by its connections.
pub(crate) type Subscribers = Arc<[Arc<dyn EventSink>]>;

/// One connection's event stream.
pub(crate) struct ConnectionEvents {
    subscribers: Subscribers,
    connection: ConnectionId,
    remote: SocketAddr,
    user: OnceLock<Arc<str>>,
    /// The next sequence number; held while subscribers run, so they see events in order.
    next: Mutex<u64>,
    span: tracing::Span,
}

impl ConnectionEvents {
    pub(crate) fn new(
        subscribers: Subscribers,
        connection: ConnectionId,
        remote: SocketAddr,
        span: tracing::Span,
    ) -> Self {
        Self {
            subscribers,
            connection,
            remote,
            user: OnceLock::new(),
            next: Mutex::new(0),
            span,
        }
    }

    /// Tells the subscribers a connection starts; the first that cannot serve it says why.
    pub(crate) fn attach(&self, ender: &Ender) -> Result<(), String> {
        self.subscribers
            .iter()
            .try_for_each(|s| s.attach(self.connection, self.remote, ender.clone()))
    }

    /// Stamps later events with the authenticated user.
    pub(crate) fn set_user(&self, user: Arc<str>) {
        let _ = self.user.set(user);
    }

    /// Emits a connection-level event.
    pub(crate) fn emit(&self, kind: EventKind) {
        self.emit_on(None, kind);
    }

    /// Emits an event of `channel` (or of the connection, for `None`).
    pub(crate) fn emit_on(&self, channel: Option<ChannelId>, kind: EventKind) {
        if self.subscribers.is_empty() {
            return;
        }
        let mut next = lock(&self.next);
        let event = Event {
            seq: *next,
            at: SystemTime::now(),
            connection: self.connection,
            remote: self.remote,
            user: self.user.get().cloned(),
            channel: channel.map(u32::from),
            kind,
        };
        *next += 1;
        self.span.in_scope(|| {
            for subscriber in self.subscribers.iter() {
                subscriber.event(&event);
            }
        });
    }

    /// The taps of a channel that opens now, or `None` when no subscriber wants its bytes.
    pub(crate) fn taps(&self, channel: ChannelId, kind: &ChannelKind) -> Option<Taps> {
        let user = self.user.get()?;
        let info = ChannelInfo {
            connection: self.connection,
            remote: self.remote,
            user: Arc::clone(user),
            channel: u32::from(channel),
            kind: kind.clone(),
        };
        let taps: Vec<Box<dyn ChannelTap>> = self
            .subscribers
            .iter()
            .filter_map(|s| s.tap(&info))
            .collect();
        (!taps.is_empty()).then(|| Taps(Arc::new(Mutex::new(taps))))
    }
}

/// The taps of one channel. Records pass them one at a time, in the order they were made.
#[derive(Clone)]
pub(crate) struct Taps(Arc<Mutex<Vec<Box<dyn ChannelTap>>>>);

impl Taps {
    pub(crate) fn record(&self, record: TapRecord<'_>) {
        for tap in lock(&self.0).iter_mut() {
            tap.record(record);
        }
    }

    /// Waits until every tap can take more data.
    pub(crate) async fn ready(&self) {
        let waits: Vec<_> = lock(&self.0).iter_mut().filter_map(|t| t.ready()).collect();
        for wait in waits {
            wait.await;
        }
    }

    /// Waits until every tap that must keep the channel's record has it written; false if
    /// one could not.
    pub(crate) async fn kept(&self) -> bool {
        let waits: Vec<_> = lock(&self.0).iter_mut().filter_map(|t| t.kept()).collect();
        let mut kept = true;
        for wait in waits {
            kept &= wait.await;
        }
        kept
    }
}

/// Records `record` if the channel is tapped: the whole cost of an untapped channel.
pub(crate) fn tap(taps: Option<&Taps>, record: TapRecord<'_>) {
    if let Some(taps) = taps {
        taps.record(record);
    }
}

/// Records a piece of data if the channel is tapped, then waits until the taps can take more.
pub(crate) async fn tap_data(taps: Option<&Taps>, record: TapRecord<'_>) {
    if let Some(taps) = taps {
        taps.record(record);
        taps.ready().await;
    }
}

/// A lock whose data stays consistent even if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
