//! Owned copies of what a connection hands the recorder: its events and its channels' records.
//!
//! The server's [`Event`] and [`TapRecord`](sshpod_core::TapRecord) are borrowed or shared and must be handled without
//! blocking; the recorder copies them into [`Item`]s and writes them on its own thread.

use std::time::SystemTime;

use sshpod_core::{ChannelInfo, Event};

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

/// A tap record the recorder keeps: it owns its data.
pub use sshpod_core::OwnedTapRecord as Record;
