//! Owned copies of what a connection hands the recorder: its events and its channels' records.
//!
//! The server's [`Event`] and [`TapRecord`] are borrowed or shared and must be handled without
//! blocking; the recorder copies them into [`Item`]s and writes them on its own thread.

use std::time::SystemTime;

use sshpod_core::{ChannelInfo, Event, ExitStatus, Signal, TapRecord, TerminalSize};

/// One thing to record, in the connection's order.
#[derive(Debug, Clone)]
pub enum Item {
    /// A typed event.
    Event(Event),
    /// A channel was tapped: its records follow as [`Item::Record`].
    Channel(ChannelInfo),
    /// One record of a tapped channel.
    Record {
        /// The SSH channel number.
        channel: u32,
        /// When it happened.
        at: SystemTime,
        /// What happened.
        record: Record,
    },
}

/// An owned [`TapRecord`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Data from the client (the process's stdin, or what a forward sends to its target).
    Input(Vec<u8>),
    /// Data to the client (stdout or the terminal, or what a forward's target sends back).
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

impl From<TapRecord<'_>> for Record {
    fn from(record: TapRecord<'_>) -> Self {
        match record {
            TapRecord::Input(data) => Record::Input(data.to_vec()),
            TapRecord::Output(data) => Record::Output(data.to_vec()),
            TapRecord::ErrorOutput(data) => Record::ErrorOutput(data.to_vec()),
            TapRecord::Resize(size) => Record::Resize(size),
            TapRecord::Signal(signal) => Record::Signal(signal),
            TapRecord::Exit(status) => Record::Exit(status),
        }
    }
}
