//! Channel taps: the bytes and controls of a channel, in the order they happened.
//!
//! A subscriber that wants a channel's data (a session recorder, a byte counter) returns a
//! [`ChannelTap`] from [`EventSink::tap`](crate::EventSink::tap) when the channel opens. The
//! server then passes every record of that channel through it: input as it arrives from the
//! client, output as it is sent to the client, each resize and signal as the client asks, and
//! the exit. Records of one channel are delivered one at a time, so a resize is ordered
//! against the output around it. A channel nobody taps costs one branch per chunk.

use std::net::SocketAddr;

use crate::{ConnectionId, ExitStatus, Signal, TerminalSize};

/// The channel a tap is asked for.
#[derive(Debug, Clone)]
pub struct ChannelInfo {
    /// The connection.
    pub connection: ConnectionId,
    /// The client's address.
    pub remote: SocketAddr,
    /// The authenticated user.
    pub user: std::sync::Arc<str>,
    /// The SSH channel number.
    pub channel: u32,
    /// What kind of channel.
    pub kind: crate::ChannelKind,
}

/// One record of a channel. For a forwarded channel, `Input` is what the client sends to the
/// target and `Output` what the target sends back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapRecord<'a> {
    /// Data from the client (the process's stdin).
    Input(&'a [u8]),
    /// Data to the client (the process's stdout, or its terminal).
    Output(&'a [u8]),
    /// Data to the client on the error stream (stderr, without a terminal).
    ErrorOutput(&'a [u8]),
    /// The client's terminal changed size.
    Resize(TerminalSize),
    /// The client sent a signal.
    Signal(Signal),
    /// The process ended.
    Exit(ExitStatus),
}

/// A [`TapRecord`] that owns its data, for subscribers that keep records past the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedTapRecord {
    /// Data from the client.
    Input(Vec<u8>),
    /// Data to the client.
    Output(Vec<u8>),
    /// Data to the client on the error stream.
    ErrorOutput(Vec<u8>),
    /// The client's terminal changed size.
    Resize(TerminalSize),
    /// The client sent a signal.
    Signal(Signal),
    /// The process ended.
    Exit(ExitStatus),
}

impl From<TapRecord<'_>> for OwnedTapRecord {
    fn from(record: TapRecord<'_>) -> Self {
        match record {
            TapRecord::Input(data) => Self::Input(data.to_vec()),
            TapRecord::Output(data) => Self::Output(data.to_vec()),
            TapRecord::ErrorOutput(data) => Self::ErrorOutput(data.to_vec()),
            TapRecord::Resize(size) => Self::Resize(size),
            TapRecord::Signal(signal) => Self::Signal(signal),
            TapRecord::Exit(status) => Self::Exit(status),
        }
    }
}

/// Receives one channel's records. Runs on the connection's tasks: it must not block.
pub trait ChannelTap: Send + 'static {
    /// One record, in order.
    fn record(&mut self, record: TapRecord<'_>);

    /// Asked after each piece of data: a tap that cannot take more yet (a recorder whose disk
    /// is behind) returns what to wait for, and the channel's data is not read further until
    /// it is done. The session slows down instead of the record losing data. The default
    /// never waits.
    fn ready(&mut self) -> Option<crate::BoxFuture<'static, ()>> {
        None
    }

    /// Asked when the channel's process has ended, before the client is told how: a tap whose
    /// record must be safe before the client learns the outcome (a required recording)
    /// returns what to wait for, which says whether the record was kept. When it was not,
    /// the client is not told the session succeeded. The default never waits.
    fn kept(&mut self) -> Option<crate::BoxFuture<'static, bool>> {
        None
    }
}
