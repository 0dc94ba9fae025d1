//! What the fake saw, kept in a `watch` channel so tests can wait for a condition on it
//! instead of sleeping.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sshpod_core::{ConnectionContext, ConnectionId, ProcessSpec};
use tokio::sync::watch;

use super::OnConnect;

/// Everything the server asked of the fake so far. A snapshot: see
/// [`FakeBackend::record`](super::FakeBackend::record).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Record {
    /// Every context passed to `connect`, in order, including those that failed or were
    /// abandoned.
    pub connects: Vec<ConnectionContext>,
    /// Every process the server started, in order, including those that failed to start.
    pub execs: Vec<ExecRecord>,
    /// Every `dial`, in order, including refused ones.
    pub dials: Vec<DialRecord>,
    /// `close` calls per connection: the server promises exactly one per container.
    pub closes: HashMap<ConnectionId, usize>,
    /// Containers made and not yet closed.
    pub containers_alive: usize,
    /// Processes started and not yet ended.
    pub processes_running: usize,
    /// `connect` calls now waiting for [`FakeBackend::release`](super::FakeBackend::release).
    pub held_connects: usize,
    /// Held `connect` calls whose future was dropped before release (the server gave up).
    pub abandoned_connects: usize,
    /// `remove_orphans` calls.
    pub orphan_sweeps: usize,
    /// `shutdown` calls.
    pub shutdowns: usize,
}

/// One `exec`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecRecord {
    /// The container's connection.
    pub connection_id: ConnectionId,
    /// What the server asked to run.
    pub spec: ProcessSpec,
}

/// One `dial`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DialRecord {
    /// The container's connection.
    pub connection_id: ConnectionId,
    /// The host asked for.
    pub host: String,
    /// The port asked for.
    pub port: u16,
}

impl Record {
    /// `close` calls for one connection.
    pub fn closes_of(&self, id: ConnectionId) -> usize {
        self.closes.get(&id).copied().unwrap_or(0)
    }
}

/// The fake's whole mutable state: the record and the script for `connect`.
pub(crate) struct State {
    pub(crate) record: Record,
    /// How a connect behaves when `next` is empty.
    pub(crate) default: OnConnect,
    /// One-shot behaviours for the next connects, oldest first.
    pub(crate) next: VecDeque<OnConnect>,
    /// Bumped by `release`: a held connect goes once it is past the value it saw.
    pub(crate) releases: u64,
}

/// Shared handle to the state. Every change notifies the waiters.
#[derive(Clone)]
pub(crate) struct StateCell(Arc<watch::Sender<State>>);

impl StateCell {
    pub(crate) fn new(default: OnConnect) -> Self {
        Self(Arc::new(watch::Sender::new(State {
            record: Record::default(),
            default,
            next: VecDeque::new(),
            releases: 0,
        })))
    }

    /// Changes the record.
    pub(crate) fn update(&self, change: impl FnOnce(&mut Record)) {
        self.0.send_modify(|s| change(&mut s.record));
    }

    /// Changes the whole state and returns what `change` returns.
    pub(crate) fn modify<T>(&self, change: impl FnOnce(&mut State) -> T) -> T {
        let mut out = None;
        self.0.send_modify(|s| out = Some(change(s)));
        // send_modify runs the closure exactly once.
        match out {
            Some(out) => out,
            None => unreachable!("send_modify did not run its closure"),
        }
    }

    pub(crate) fn snapshot(&self) -> Record {
        self.0.borrow().record.clone()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<State> {
        self.0.subscribe()
    }

    /// Waits until `holds` is true of the record, for at most `timeout`.
    pub(crate) async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        mut holds: impl FnMut(&Record) -> bool,
    ) -> Result<Record, WaitTimedOut> {
        let mut rx = self.subscribe();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|s| holds(&s.record))).await;
        match waited {
            Ok(Ok(state)) => Ok(state.record.clone()),
            // The sender lives in `self`, so the wait cannot fail; a timeout can.
            Ok(Err(_)) | Err(_) => Err(WaitTimedOut {
                what: what.to_owned(),
                timeout,
                record: self.snapshot(),
            }),
        }
    }
}

/// A condition on the fake did not hold in time. Shows the record, to explain why.
#[derive(Debug)]
pub struct WaitTimedOut {
    /// What was waited for.
    pub what: String,
    /// How long.
    pub timeout: Duration,
    /// The record when the wait gave up.
    pub record: Record,
}

impl fmt::Display for WaitTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.record;
        write!(
            f,
            "waited {:?} for {}; the fake saw {} connects, {} execs, {} dials, closes {:?}, \
             {} containers alive, {} processes running, {} connects held",
            self.timeout,
            self.what,
            r.connects.len(),
            r.execs.len(),
            r.dials.len(),
            r.closes.values().collect::<Vec<_>>(),
            r.containers_alive,
            r.processes_running,
            r.held_connects,
        )
    }
}

impl std::error::Error for WaitTimedOut {}
