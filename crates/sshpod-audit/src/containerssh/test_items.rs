//! Items of a made-up connection, for the writers' tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sshpod_core::{ChannelInfo, ChannelKind, ConnectionId, Event, EventKind};

use crate::item::{Item, Record};

/// When the connection starts: 2023-11-14T22:13:20Z.
pub(super) const START_SECS: u64 = 1_700_000_000;

/// The client's address.
pub(super) const REMOTE: &str = "192.0.2.7:50022";

fn remote() -> SocketAddr {
    match REMOTE.parse() {
        Ok(addr) => addr,
        Err(e) => panic!("{REMOTE}: {e}"),
    }
}

/// `ms` milliseconds after the start.
pub(super) fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(START_SECS) + Duration::from_millis(ms)
}

/// The same time in nanoseconds since the epoch.
pub(super) fn nanos(ms: u64) -> i64 {
    (START_SECS * 1_000_000_000 + ms * 1_000_000) as i64
}

/// An event `ms` after the start.
pub(super) fn event(ms: u64, channel: Option<u32>, kind: EventKind) -> Item {
    Item::Event(Event {
        seq: ms,
        at: at(ms),
        connection: ConnectionId::random(),
        remote: remote(),
        user: None,
        channel,
        kind,
    })
}

/// A channel's record `ms` after the start.
pub(super) fn record(ms: u64, channel: u32, record: Record) -> Item {
    Item::Record {
        channel,
        at: at(ms),
        record,
    }
}

/// The announcement that `channel` is tapped.
pub(super) fn tapped(channel: u32, kind: ChannelKind) -> Item {
    Item::Channel(ChannelInfo {
        connection: ConnectionId::random(),
        remote: remote(),
        user: Arc::from("alice"),
        channel,
        kind,
    })
}
