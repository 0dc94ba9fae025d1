//! A subscriber that keeps every event and every tapped record, for tests to wait on and
//! inspect.

// Test support: a set-up that fails is a failed test, said loudly where it happens.
#![allow(clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sshpod_core::{ChannelInfo, ChannelTap, ConnectionId, Event, EventKind, EventSink, TapRecord};
use tokio::sync::watch;

/// A tapped record, owned.
pub use sshpod_core::OwnedTapRecord as Recorded;

/// Keeps events and tapped records; every addition wakes waiters. Clones share them.
#[derive(Clone, Default)]
pub struct Recorder(Arc<Inner>);

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    changed: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    events: Vec<Event>,
    records: HashMap<(ConnectionId, u32), Vec<Recorded>>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }
}

impl Recorder {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock()
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<Event> {
        self.lock().events.clone()
    }

    /// The records of one channel so far.
    pub fn records(&self, connection: ConnectionId, channel: u32) -> Vec<Recorded> {
        self.lock()
            .records
            .get(&(connection, channel))
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until `done` holds for the events, or panics after `deadline` with what there
    /// is. Returns the events.
    pub async fn wait_for_events(
        &self,
        deadline: Duration,
        what: &str,
        done: impl Fn(&[Event]) -> bool,
    ) -> Vec<Event> {
        self.wait(deadline, what, |state| {
            done(&state.events).then(|| state.events.clone())
        })
        .await
    }

    /// Waits until an event matching `matches` arrived; returns it.
    pub async fn wait_for_event(
        &self,
        deadline: Duration,
        what: &str,
        matches: impl Fn(&EventKind) -> bool,
    ) -> Event {
        self.wait(deadline, what, |state| {
            state.events.iter().find(|e| matches(&e.kind)).cloned()
        })
        .await
    }

    /// Waits until `done` holds for a channel's records; returns them.
    pub async fn wait_for_records(
        &self,
        deadline: Duration,
        connection: ConnectionId,
        channel: u32,
        done: impl Fn(&[Recorded]) -> bool,
    ) -> Vec<Recorded> {
        self.wait(deadline, "channel records", |state| {
            let records = state
                .records
                .get(&(connection, channel))
                .map(Vec::as_slice)
                .unwrap_or_default();
            done(records).then(|| records.to_vec())
        })
        .await
    }

    async fn wait<T>(
        &self,
        deadline: Duration,
        what: &str,
        mut check: impl FnMut(&State) -> Option<T>,
    ) -> T {
        let mut changed = self.0.changed.subscribe();
        let waited = tokio::time::timeout(deadline, async {
            loop {
                changed.borrow_and_update();
                if let Some(found) = check(&self.lock()) {
                    return found;
                }
                if changed.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
        .await;
        match waited {
            Ok(found) => found,
            Err(_) => panic!(
                "waited {deadline:?} for {what}; events so far: {:#?}",
                self.lock()
                    .events
                    .iter()
                    .map(|e| &e.kind)
                    .collect::<Vec<_>>()
            ),
        }
    }
}

impl EventSink for Recorder {
    fn event(&self, event: &Event) {
        self.lock().events.push(event.clone());
        self.0.bump();
    }

    fn tap(&self, channel: &ChannelInfo) -> Option<Box<dyn ChannelTap>> {
        Some(Box::new(ChannelRecorder {
            key: (channel.connection, channel.channel),
            inner: Arc::clone(&self.0),
        }))
    }
}

/// One channel's tap: appends to the recorder.
struct ChannelRecorder {
    key: (ConnectionId, u32),
    inner: Arc<Inner>,
}

impl ChannelTap for ChannelRecorder {
    fn record(&mut self, record: TapRecord<'_>) {
        let mut state = self.inner.lock();
        let records = state.records.entry(self.key).or_default();
        // Consecutive data of one kind is merged: how output is cut into chunks is not
        // behaviour anyone relies on.
        match (records.last_mut(), Recorded::from(record)) {
            (Some(Recorded::Input(a)), Recorded::Input(b))
            | (Some(Recorded::Output(a)), Recorded::Output(b))
            | (Some(Recorded::ErrorOutput(a)), Recorded::ErrorOutput(b)) => a.extend(b),
            (_, new) => records.push(new),
        }
        drop(state);
        self.inner.bump();
    }
}
